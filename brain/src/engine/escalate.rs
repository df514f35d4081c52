//! Escalation: when verification finds that an applied action did not help, the policy that
//! allowed it says what comes next: another kind of action, proposed once while the workload
//! is still anomalous, or stop and tell a person with a Warning Event. It never loops: the
//! evaluator refuses to repeat the action that did not help (rule `escalation`), and each
//! step is proposed once.

use homeostat_core::{
    Action, ActionKind, Anomaly, DecisionId, ObjectRef, Proposal, Timestamp, Verification,
    WorkloadRef,
};
use homeostat_policies::NextStep;

use super::{Engine, EngineError};

/// A next step owed to a workload.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Escalation {
    /// The kind of action to propose.
    kind: ActionKind,
    /// The action that did not help, and its decision.
    after: (ActionKind, DecisionId),
    /// What verification saw.
    detail: String,
}

impl Engine {
    /// Acts on this pass's verifications: each action that did not help is escalated as its
    /// policy says.
    pub(super) async fn escalate(
        &mut self,
        judged: &[(DecisionId, Verification)],
        now: Timestamp,
    ) -> Result<(), EngineError> {
        for (id, v) in judged.iter().filter(|(_, v)| !v.helped) {
            let Some(d) = self.journal.get(id)? else {
                continue;
            };
            let Some(policy) = d.verdict.policy.as_deref() else {
                continue;
            };
            let kind = d.verdict.action.kind();
            let workload = d.proposal.workload.clone();
            let next = self.policies.borrow().set.next_step(policy, kind);
            match next {
                // No escalation in the policy: its cooldown alone paces a repeat.
                None => {}
                Some(NextStep::Try(next)) => {
                    tracing::info!(decision = %id, workload = %workload, did = kind.as_str(), next = next.as_str(), "escalating: the action did not help");
                    self.escalations.insert(
                        workload,
                        Escalation {
                            kind: next,
                            after: (kind, id.clone()),
                            detail: v.detail.clone(),
                        },
                    );
                }
                Some(NextStep::Stop) => {
                    let message = format!(
                        "{} (decision {id}) did not help: {}. Policy {policy} escalates no further: homeostat will not repeat it; a person should look.",
                        kind.as_str(),
                        v.detail
                    );
                    tracing::warn!(decision = %id, workload = %workload, "{message}");
                    let target = ObjectRef {
                        api_version: "apps/v1".into(),
                        kind: workload.kind.as_str().into(),
                        namespace: workload.namespace.clone(),
                        name: workload.name.clone(),
                    };
                    if let Err(e) = self
                        .events
                        .warning(
                            &target,
                            None,
                            "HomeostatEscalationStopped",
                            "Escalate",
                            &message,
                            now,
                        )
                        .await
                    {
                        tracing::warn!(decision = %id, error = %e, "the escalation's Event could not be recorded");
                    }
                }
            }
        }
        Ok(())
    }

    /// The next step owed to `workload`, proposed once, while it is still anomalous; an
    /// episode that ended meanwhile owes nothing.
    pub(super) async fn propose_escalation(
        &mut self,
        workload: &WorkloadRef,
        anomaly: Option<&Anomaly>,
        at: Timestamp,
    ) -> Option<Proposal> {
        if !self.escalations.contains_key(workload) {
            return None;
        }
        if anomaly.is_none() {
            self.escalations.remove(workload);
            return None;
        }
        let step = self.escalations.remove(workload)?;
        let why = format!(
            "escalation: {} (decision {}) did not help ({})",
            step.after.0.as_str(),
            step.after.1,
            step.detail
        );
        let proposal =
            |action: Action, reason: String, current: u32, unavailable: Option<u32>| Proposal {
                unavailable_replicas: unavailable,
                ..Proposal::new(workload.clone(), action, reason, at, current)
            };
        match step.kind {
            ActionKind::RestartPods => {
                let pods = self.pods_of(workload).await?;
                let pod = pods.oldest()?;
                Some(proposal(
                    Action::RestartPods {
                        workload: workload.clone(),
                        pod: pod.name.clone(),
                        uid: pod.uid.clone(),
                    },
                    format!("{why}; restart the oldest pod, {}", pod.name),
                    u32::try_from(pods.pods.len()).unwrap_or(u32::MAX),
                    Some(pods.unavailable()),
                ))
            }
            ActionKind::RolloutRestart => {
                let pods = self.pods_of(workload).await?;
                Some(proposal(
                    Action::RolloutRestart {
                        workload: workload.clone(),
                    },
                    format!("{why}; replace every pod by a rolling update"),
                    u32::try_from(pods.pods.len()).unwrap_or(u32::MAX),
                    Some(pods.unavailable()),
                ))
            }
            ActionKind::ScaleHpa | ActionKind::ScaleWorkload => {
                let scaling = self.scaling_for(workload).await?;
                let current = scaling.ready().max(scaling.floor()).max(1);
                let target = (f64::from(current) * self.config.scale_factor).ceil() as u32;
                let (action, what) = scaling.set(workload, target);
                (action.kind() == step.kind).then(|| {
                    proposal(
                        action,
                        format!("{why}; raise {what} to {target}"),
                        scaling.current(),
                        None,
                    )
                })
            }
            ActionKind::ThrottleSampling | ActionKind::TaintNode => {
                tracing::warn!(workload = %workload, next = step.kind.as_str(), "an escalation names a node action, which is not proposed for a workload; stopping");
                None
            }
        }
    }
}
