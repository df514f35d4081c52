//! Verify: whether an applied action helped. The signals whose anomaly triggered it are
//! watched for the action's verify window; it helped if they fall back under their
//! detectors' thresholds within it (or, where the request latency — the SLO signal — was
//! among them, if that recovered). The judgement is journaled on the decision, counted, and
//! traced as the decision's `homeostat.verify` span, so policy can later escalate what did
//! not help.

use homeostat_core::{
    ActionKind, Decision, DecisionId, Outcome, Stat, Timestamp, Verification, WorkloadRef, signal,
};

use super::{Engine, EngineError};
use crate::assess::WorkloadState;

/// Passes in a row the triggering signals must be back before the action counts as helped
/// early, so one quiet step of a noisy signal is not taken for recovery.
const BACK_PASSES: u32 = 2;

/// An applied decision whose verify window is open.
#[derive(Clone, Debug)]
pub(super) struct Watch {
    id: DecisionId,
    workload: WorkloadRef,
    action: ActionKind,
    /// The series whose anomaly triggered the action.
    triggers: Vec<(String, Stat)>,
    applied: Timestamp,
    deadline: Timestamp,
    /// Passes in a row at which every trigger (or the SLO signal) was back.
    back_passes: u32,
}

impl Watch {
    /// A watch over `d`, if it is an applied change an anomaly triggered and not yet judged.
    /// An event series (error exits, OOM kills) is judged by a count over the last
    /// `event_lookback`, which cannot fall before that long after the events stop: its
    /// window is longer by as much.
    fn of(
        d: &Decision,
        window: std::time::Duration,
        event_lookback: std::time::Duration,
    ) -> Option<Watch> {
        if d.verification.is_some()
            || !matches!(
                d.outcome,
                Outcome::Applied { .. } | Outcome::Recovered { .. }
            )
        {
            return None;
        }
        let mut triggers: Vec<(String, Stat)> = d
            .anomaly
            .as_ref()?
            .contributions
            .iter()
            .map(|c| (c.signal.clone(), c.stat))
            .collect();
        triggers.sort_by(|a, b| (&a.0, a.1.as_str()).cmp(&(&b.0, b.1.as_str())));
        triggers.dedup();
        if triggers.is_empty() {
            return None;
        }
        let window = if triggers.iter().any(|(_, stat)| *stat == Stat::Rate) {
            window + event_lookback
        } else {
            window
        };
        Some(Watch {
            id: d.id.clone(),
            workload: d.proposal.workload.clone(),
            action: d.verdict.action.kind(),
            triggers,
            applied: d.time,
            deadline: d.time + window,
            back_passes: 0,
        })
    }
}

fn is_slo(series: &str) -> bool {
    series == signal::HTTP_SERVER_REQUEST_DURATION
}

fn name(series: &str, stat: Stat) -> String {
    format!("{series} {}", stat.as_str())
}

/// Judges `w` at `now` from the workload's detectors; `None` while the window is open and
/// the triggers are not (yet) back. Moves the watch's streak along.
fn judge(w: &mut Watch, state: Option<&WorkloadState>, now: Timestamp) -> Option<Verification> {
    let mut back = Vec::new();
    let mut still = Vec::new();
    let mut unseen = Vec::new();
    for (series, stat) in &w.triggers {
        match state
            .and_then(|s| s.judged(series, *stat))
            .filter(|(t, _, _)| *t > w.applied)
        {
            None => unseen.push(name(series, *stat)),
            Some((_, score, true)) => {
                still.push(format!("{} (score {score:.4})", name(series, *stat)))
            }
            Some((t, _, false)) => back.push((series.as_str(), *stat, t)),
        }
    }
    let slo: Vec<_> = w.triggers.iter().filter(|(s, _)| is_slo(s)).collect();
    let slo_back = !slo.is_empty()
        && slo
            .iter()
            .all(|(s, st)| back.iter().any(|(b, bst, _)| b == s && bst == st));
    let all_back = back.len() == w.triggers.len();
    w.back_passes = if all_back || slo_back {
        w.back_passes + 1
    } else {
        0
    };
    let window = homeostat_policies::duration::format_compact(w.deadline.since(w.applied));
    if w.back_passes >= BACK_PASSES || (w.back_passes > 0 && now >= w.deadline) {
        let recovered: Vec<String> = back
            .iter()
            .filter(|(s, _, _)| all_back || is_slo(s))
            .map(|(s, st, _)| name(s, *st))
            .collect();
        let after = back.iter().map(|(_, _, t)| *t).max().unwrap_or(now);
        return Some(Verification {
            at: now,
            helped: true,
            detail: format!(
                "{} back under the detector threshold {} after the change",
                recovered.join(", "),
                homeostat_policies::duration::format_compact(after.since(w.applied))
            ),
        });
    }
    if now < w.deadline {
        return None;
    }
    let detail = if still.is_empty() {
        format!(
            "no judgement of {} since the change, within {window}: not shown to help",
            unseen.join(", ")
        )
    } else {
        format!("still anomalous after {window}: {}", still.join(", "))
    };
    Some(Verification {
        at: now,
        helped: false,
        detail,
    })
}

impl Engine {
    /// How far back an event series' detector counts.
    fn event_lookback(&self) -> std::time::Duration {
        let steps = u32::try_from(crate::detect::EventConfig::default().window).unwrap_or(u32::MAX);
        self.step() * steps
    }

    /// Starts the verify window of `d` if it is an applied change an anomaly triggered.
    /// How long `d`'s action has to help: its policy's `escalation.verifyWithin`, or the
    /// brain's `verifyWindow`.
    fn window_of(&self, d: &Decision) -> std::time::Duration {
        d.verdict
            .policy
            .as_deref()
            .and_then(|p| self.policies.borrow().set.verify_within(p))
            .unwrap_or(self.config.verify_window)
    }

    pub(super) fn watch(&mut self, d: &Decision) {
        if let Some(w) = Watch::of(d, self.window_of(d), self.event_lookback()) {
            self.watches.push(w);
        }
    }

    /// After a restart: reopens the windows of applied decisions not judged yet. Those whose
    /// window closed while no brain was watching stay unjudged: what happened then is not
    /// known, and a guess either way would mislead escalation.
    pub(super) fn resume_watches(&mut self, decisions: &[Decision], now: Timestamp) {
        for d in decisions {
            if let Some(w) = Watch::of(d, self.window_of(d), self.event_lookback())
                && w.deadline > now
                && !self.watches.iter().any(|o| o.id == w.id)
            {
                self.watches.push(w);
            }
        }
    }

    /// Judges every open window that can be judged at `now`: records each verdict on its
    /// decision in the journal, counts it, and traces it.
    pub(super) async fn verify(
        &mut self,
        now: Timestamp,
    ) -> Result<Vec<(DecisionId, Verification)>, EngineError> {
        let mut judged = Vec::new();
        let mut open = Vec::new();
        for mut w in std::mem::take(&mut self.watches) {
            let state = self.workloads.get(&w.workload);
            let Some(v) = judge(&mut w, state, now) else {
                open.push(w);
                continue;
            };
            let Some(d) = self.journal.verify(&w.id, v.clone()).await? else {
                continue;
            };
            self.spans.record_verification(&d);
            self.metrics
                .verifications
                .with_label_values(&[w.action.as_str(), v.result()])
                .inc();
            tracing::info!(decision = %w.id, workload = %w.workload, action = w.action.as_str(), result = v.result(), detail = %v.detail, "verified");
            judged.push((w.id, v));
        }
        self.watches = open;
        Ok(judged)
    }

    /// Whether an action of `kind` on `workload` is still within its verify window: another
    /// like it waits for the verdict on the first.
    pub(super) fn verifying(&self, workload: &WorkloadRef, kind: ActionKind) -> bool {
        self.watches
            .iter()
            .any(|w| &w.workload == workload && w.action == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use homeostat_core::{
        Action, Anomaly, AnomalyKind, Contribution, Mode, Proposal, Sample, Verdict, VerdictKind,
    };
    use std::time::Duration;

    const STEP: Duration = Duration::from_secs(15);

    fn workload() -> WorkloadRef {
        WorkloadRef::deployment("shop", "web")
    }

    fn feed(state: &mut WorkloadState, t: i64, latency: f64) {
        let at = Timestamp::from_secs(t);
        for (stat, v) in [(Stat::P99, latency), (Stat::Mean, latency / 3.0)] {
            let s = Sample::new(
                signal::HTTP_SERVER_REQUEST_DURATION,
                stat,
                workload(),
                at,
                v,
            )
            .expect("finite");
            state.observe(&s);
        }
        state.assess(at);
    }

    fn decision(at: i64) -> Decision {
        let contribution = Contribution {
            signal: signal::HTTP_SERVER_REQUEST_DURATION.into(),
            stat: Stat::P99,
            value: 0.6,
            baseline: 0.1,
            score: 1.0,
        };
        let action = Action::RolloutRestart {
            workload: workload(),
        };
        Decision {
            id: DecisionId("01D".into()),
            time: Timestamp::from_secs(at),
            anomaly: Some(Anomaly {
                workload: workload(),
                kind: AnomalyKind::Unclassified,
                score: 1.0,
                started: Timestamp::from_secs(at),
                detected: Timestamp::from_secs(at),
                contributions: vec![contribution.clone(), contribution],
            }),
            proposal: Proposal::new(
                workload(),
                action.clone(),
                String::new(),
                Timestamp::from_secs(at),
                3,
            ),
            verdict: Verdict {
                kind: VerdictKind::Act,
                action,
                policy: None,
                rule: String::new(),
                reason: String::new(),
            },
            mode: Mode::Enforce,
            plan: None,
            outcome: Outcome::Applied {
                at: Timestamp::from_secs(at),
            },
            policy_set: None,
            verification: None,
        }
    }

    fn learned() -> WorkloadState {
        let mut s = WorkloadState::new(workload(), STEP);
        for i in 0..40 {
            let wobble = 1.0 + 0.02 * ((i as f64) * 0.9).sin();
            feed(&mut s, i * 15, 0.1 * wobble);
        }
        s
    }

    #[test]
    fn helped_once_the_trigger_is_back_two_passes_running() {
        let mut s = learned();
        feed(&mut s, 600, 0.6);
        let mut w =
            Watch::of(&decision(600), Duration::from_secs(300), Duration::ZERO).expect("watched");
        assert_eq!(w.triggers.len(), 1, "one series, named twice");
        assert_eq!(judge(&mut w, Some(&s), Timestamp::from_secs(600)), None);
        feed(&mut s, 615, 0.6);
        assert_eq!(judge(&mut w, Some(&s), Timestamp::from_secs(615)), None);
        feed(&mut s, 630, 0.1);
        assert_eq!(
            judge(&mut w, Some(&s), Timestamp::from_secs(630)),
            None,
            "one quiet step is not yet recovery"
        );
        feed(&mut s, 645, 0.1);
        let v = judge(&mut w, Some(&s), Timestamp::from_secs(645)).expect("judged");
        assert!(v.helped, "{v:?}");
        assert!(v.detail.contains("45s after the change"), "{}", v.detail);
    }

    #[test]
    fn not_helped_when_still_anomalous_or_unseen_at_the_deadline() {
        let mut s = learned();
        let mut w =
            Watch::of(&decision(600), Duration::from_secs(60), Duration::ZERO).expect("watched");
        for t in [615, 630, 645] {
            feed(&mut s, t, 0.6);
            assert_eq!(judge(&mut w, Some(&s), Timestamp::from_secs(t)), None);
        }
        feed(&mut s, 660, 0.6);
        let v = judge(&mut w, Some(&s), Timestamp::from_secs(660)).expect("deadline");
        assert!(!v.helped);
        assert!(
            v.detail.starts_with("still anomalous after 1m"),
            "{}",
            v.detail
        );

        let mut w =
            Watch::of(&decision(600), Duration::from_secs(60), Duration::ZERO).expect("watched");
        let v = judge(&mut w, None, Timestamp::from_secs(660)).expect("deadline");
        assert!(
            !v.helped && v.detail.starts_with("no judgement"),
            "{}",
            v.detail
        );

        let mut crash = decision(600);
        if let Some(a) = crash.anomaly.as_mut() {
            a.contributions[1].signal = "homeostat.process.exits{exit.kind=error}".into();
            a.contributions[1].stat = Stat::Rate;
        }
        let w =
            Watch::of(&crash, Duration::from_secs(60), Duration::from_secs(300)).expect("watched");
        assert_eq!(
            w.deadline,
            Timestamp::from_secs(960),
            "an event count needs its lookback to fall"
        );

        let mut planned = decision(600);
        planned.outcome = Outcome::Planned;
        assert!(
            Watch::of(&planned, Duration::from_secs(60), Duration::ZERO).is_none(),
            "nothing applied"
        );
    }
}
