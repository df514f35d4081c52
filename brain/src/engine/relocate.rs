//! Moving a workload's pods off a contended node instead of buying more of them.
//!
//! When the workload's run queue is long on one node only, something there (a neighbour, a
//! system daemon) takes the CPU. Replicas would make up for the starved pods, but cost pods
//! for as long as the neighbour stays. The pod-neutral remedy, the descheduler's: taint the
//! node `PreferNoSchedule`, then restart the workload's pods there one at a time (by
//! eviction, so PodDisruptionBudgets hold), so their replacements start on other nodes.
//! Scaling waits while this is under way, and takes over if it is not allowed, or fails, or
//! the workload is still saturated once it is done. The taint is lifted after
//! `EngineConfig::taint_hold` in which no workload showed the node contended: with no pods
//! left there, nothing else can tell that the neighbour is gone, and a soft taint costs
//! little while it stays.

use std::time::Duration;

use homeostat_core::{
    Action, Anomaly, AnomalyKind, Decision, Outcome, Proposal, Timestamp, WorkloadKind, WorkloadRef,
};

use homeostat_policies::duration::format_compact;

use super::Engine;
use crate::assess::RUNQUEUE_SATURATED;

/// A node homeostat tainted.
#[derive(Clone, Debug)]
pub(super) struct Tainted {
    /// When the taint was put on (or found).
    pub(super) since: Timestamp,
    /// When a workload last showed it contended.
    pub(super) last_hot: Timestamp,
    /// Since when the workloads with pods there have all seen a short run queue on it.
    pub(super) calm_since: Option<Timestamp>,
    /// The workload whose evidence led to the taint, which lifts it under its policy;
    /// `None` for a taint found on the cluster at start, which any workload may lift.
    pub(super) by: Option<WorkloadRef>,
}

/// What relocation means for a workload this pass.
pub(super) enum Relocation {
    /// Do this.
    Propose(Box<Proposal>),
    /// Relocation is under way: propose nothing else (scaling would buy the pods it saves).
    Wait,
    /// Not a relocation case, or relocation cannot help now: go on as usual.
    Nothing,
}

/// After a pod is moved, how long its replacement is given to start and the latency to settle
/// before anything else is proposed for the workload.
const RELOCATE_SETTLE: Duration = Duration::from_secs(180);
/// After relocation was refused (by policy, the API server or a disruption budget), how long
/// it is not tried again for the workload, so scaling can do the job.
const RELOCATE_RETRY: Duration = Duration::from_secs(15 * 60);

impl Engine {
    /// Notes what the workload's pods see on the tainted nodes at `at`: contention, or calm.
    pub(super) fn note_contention(&mut self, workload: &WorkloadRef, at: Timestamp) {
        let (Some(state), Some(tainted)) = (self.workloads.get(workload), self.tainted.as_mut())
        else {
            return;
        };
        for (node, t) in tainted.iter_mut() {
            match state.runqueue_on(node, at) {
                Some(p99) if p99 >= RUNQUEUE_SATURATED => {
                    t.last_hot = at;
                    t.calm_since = None;
                }
                Some(_) => {
                    t.calm_since.get_or_insert(at);
                }
                None => {}
            }
        }
    }

    pub(super) async fn propose_relocation(
        &mut self,
        workload: &WorkloadRef,
        anomaly: Option<&Anomaly>,
        at: Timestamp,
    ) -> Relocation {
        // Only a Deployment's pods start again elsewhere (a DaemonSet's belong to their node).
        let short_of_cpu = workload.kind == WorkloadKind::Deployment
            && anomaly.is_some_and(|a| {
                matches!(a.kind, AnomalyKind::Saturation | AnomalyKind::CpuContention)
            });
        if !short_of_cpu
            || self
                .relocation_refused
                .get(workload)
                .is_some_and(|t| at.since(*t) < RELOCATE_RETRY)
        {
            return Relocation::Nothing;
        }
        if self.throttle_settling(at)
            || self
                .relocated
                .get(workload)
                .is_some_and(|t| at.since(*t) < RELOCATE_SETTLE)
        {
            // A throttled sensor may be what took the CPU: see what its throttle gives back
            // first. A moved pod's replacement needs time to start.
            return Relocation::Wait;
        }
        let (Some(state), Some(tainted)) = (self.workloads.get(workload), &self.tainted) else {
            // Which nodes carry the taint is not known yet: no relocation on a guess.
            return Relocation::Nothing;
        };
        let Some((node, worst, elsewhere)) = state.contended_node(at) else {
            return Relocation::Nothing;
        };
        let node = node.to_owned();
        let evidence = format!(
            "run-queue delay p99 {:.1} ms on {node} against at most {:.1} ms on the workload's other nodes",
            worst * 1e3,
            elsewhere * 1e3
        );
        if !tainted.contains_key(&node) {
            return self.relocation_step(Proposal::new(
                    workload.clone(),
                    Action::TaintNode {
                    node: node.clone(),
                    remove: false,
                },
                    format!(
                    "CPU contention: {evidence}; something on {node} takes the CPU, so new pods should start elsewhere"
                ),
                    at,
                    0,
                ));
        }
        let pods = match self.restarter.find_for(workload).await {
            Ok(Some(pods)) => pods,
            Ok(None) => return Relocation::Nothing,
            Err(e) => {
                tracing::warn!(workload = %workload, error = %e, "cannot read the workload's pods; not relocating");
                return Relocation::Nothing;
            }
        };
        let Some(pod) = pods
            .pods
            .iter()
            .find(|p| p.node.as_deref() == Some(node.as_str()) && !p.terminating)
        else {
            // Nothing of ours left there: whatever still hurts, relocation cannot fix.
            return Relocation::Nothing;
        };
        if !pods.all_ready() {
            return Relocation::Wait;
        }
        self.relocation_step(Proposal {
            unavailable_replicas: Some(pods.unavailable()),
            ..Proposal::new(
                workload.clone(),
                Action::RestartPods {
                workload: workload.clone(),
                pod: pod.name.clone(),
                uid: pod.uid.clone(),
            },
                format!(
                "CPU contention: {evidence}; restart {} so that it starts again off {node}, which is tainted",
                pod.name
            ),
                at,
                u32::try_from(pods.pods.len()).unwrap_or(u32::MAX),
            )
        })
    }

    fn relocation_step(&mut self, proposal: Proposal) -> Relocation {
        self.relocation_proposed = Some(proposal.action.clone());
        Relocation::Propose(Box::new(proposal))
    }

    /// Reads which nodes carry homeostat's taint, once: a restarted brain takes over the
    /// taints it left (and lifts them in time) instead of forgetting them.
    pub(super) async fn load_taints(&mut self, now: Timestamp) {
        if self.tainted.is_some() {
            return;
        }
        match self.tainter.tainted().await {
            Ok(nodes) => {
                if !nodes.is_empty() {
                    tracing::info!(?nodes, "taking over homeostat's taints on these nodes");
                }
                self.tainted = Some(
                    nodes
                        .into_iter()
                        .map(|n| {
                            let t = Tainted {
                                since: now,
                                last_hot: now,
                                calm_since: None,
                                by: None,
                            };
                            (n, t)
                        })
                        .collect(),
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the nodes' taints; not relocating pods until it can")
            }
        }
    }

    /// Follows a decision's outcome into the relocation state.
    pub(super) fn note_outcome(&mut self, decision: &Decision) {
        let applied = matches!(decision.outcome, Outcome::Applied { .. });
        if let (true, Action::TaintNode { node, remove }, Some(tainted)) =
            (applied, &decision.verdict.action, self.tainted.as_mut())
        {
            if *remove {
                tainted.remove(node);
            } else {
                tainted.insert(
                    node.clone(),
                    Tainted {
                        since: decision.time,
                        last_hot: decision.time,
                        calm_since: None,
                        by: Some(decision.proposal.workload.clone()),
                    },
                );
            }
        }
        if self.relocation_proposed.as_ref() != Some(&decision.proposal.action) {
            return;
        }
        self.relocation_proposed = None;
        let workload = decision.proposal.workload.clone();
        match (&decision.outcome, &decision.proposal.action) {
            (Outcome::Applied { .. }, Action::RestartPods { .. }) => {
                self.relocated.insert(workload, decision.time);
            }
            (Outcome::Applied { .. }, _) => {}
            // Denied, deferred, failed or only planned: scaling does the job for a while.
            _ => {
                self.relocation_refused.insert(workload, decision.time);
            }
        }
    }

    /// Lifts a taint once the pods still on the node have seen it calm for `restore_after`,
    /// or, with none there to tell, once no workload has shown it contended for `taint_hold`;
    /// in either case only after `hold_after_raise`.
    pub(super) fn propose_untaint(
        &self,
        workload: &WorkloadRef,
        at: Timestamp,
    ) -> Option<Proposal> {
        let (node, why) = self.tainted.as_ref()?.iter().find_map(|(node, t)| {
            // Never sooner than `hold_after_raise`: a taint and its lifting are not a flap.
            if t.by.as_ref().is_some_and(|w| w != workload)
                || at.since(t.since) < self.config.hold_after_raise
            {
                return None;
            }
            let why = match t.calm_since {
                Some(calm) if at.since(calm) >= self.config.restore_after => format!(
                    "the run queue on {node} has been short for {}",
                    format_compact(at.since(calm))
                ),
                _ if at.since(t.last_hot) >= self.config.taint_hold => format!(
                    "no workload has shown CPU contention on {node} for {}",
                    format_compact(at.since(t.last_hot))
                ),
                _ => return None,
            };
            Some((node, why))
        })?;
        Some(Proposal::new(
            workload.clone(),
            Action::TaintNode {
                node: node.clone(),
                remove: true,
            },
            format!("{why}: new pods may start there again"),
            at,
            0,
        ))
    }
}
