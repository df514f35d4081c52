//! Replaying proposals through a policy set: what the set would have allowed and denied, with
//! the history each verdict leaves for the cooldowns of the ones after it.
//!
//! The history follows the decision journal's rule (`Journal::past_actions` in the brain): an
//! action applied counts, an action planned in dry-run counts as planned, a denied or
//! observed proposal counts for nothing. A replay cannot run actuators, so an `act` verdict is
//! taken to have been applied at its time.

use std::time::Duration;

use homeostat_core::{Mode, Proposal, Timestamp, Verdict, VerdictKind};

use crate::evaluate::evaluate;
use crate::history::PastAction;
use crate::load::PolicySet;

/// A proposal and when it was made.
#[derive(Clone, Debug, PartialEq)]
pub struct Proposed {
    /// When the engine made it: the clock the verdict is evaluated at.
    pub time: Timestamp,
    /// What it proposed.
    pub proposal: Proposal,
}

/// A proposal and the verdict the replayed set gave it.
#[derive(Clone, Debug, PartialEq)]
pub struct Replayed {
    /// When it was evaluated.
    pub time: Timestamp,
    /// What was proposed.
    pub proposal: Proposal,
    /// What the set said.
    pub verdict: Verdict,
}

impl PastAction {
    /// The history a verdict leaves, as the journal records it once the decision's outcome
    /// is known: `act` applied, `dry-run` planned, nothing for `observe` or `deny`.
    pub fn left_by(proposal: &Proposal, verdict: &Verdict, time: Timestamp) -> Option<Self> {
        let applied = match verdict.kind {
            VerdictKind::Act => true,
            VerdictKind::DryRun => false,
            VerdictKind::Observe | VerdictKind::Deny => return None,
        };
        Some(PastAction {
            workload: proposal.workload.clone(),
            kind: verdict.action.kind(),
            time,
            applied,
            helped: None,
        })
    }
}

/// Evaluates `proposals` in the order given (the engine's order: time, then workload) under
/// `global_mode`, each at its own time and against the history the earlier verdicts left,
/// of which only the last `window` counts (the engine reads the journal that far back).
pub fn replay(
    set: &PolicySet,
    proposals: &[Proposed],
    global_mode: Mode,
    window: Duration,
) -> Vec<Replayed> {
    let mut history: Vec<PastAction> = Vec::new();
    let mut out = Vec::with_capacity(proposals.len());
    for p in proposals {
        let since = p.time - window;
        let recent: Vec<PastAction> = history
            .iter()
            .filter(|a| a.time >= since)
            .cloned()
            .collect();
        let verdict = evaluate(set, &p.proposal, global_mode, &recent, p.time);
        history.extend(PastAction::left_by(&p.proposal, &verdict, p.time));
        out.push(Replayed {
            time: p.time,
            proposal: p.proposal.clone(),
            verdict,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use homeostat_core::{Action, WorkloadRef};

    const T0: Timestamp = Timestamp::from_secs(1_700_000_000);

    fn set(mode: &str) -> PolicySet {
        let text = format!(
            "apiVersion: homeostat.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: p\nspec:\n  \
             mode: {mode}\n  actions: [taint-node]\n  cooldown: 2m\n  maxDataAge: 1m\n"
        );
        PolicySet::from_str("p.yaml", &text).expect("loads")
    }

    /// A taint proposed `at` seconds after T0, on evidence `age` seconds old.
    fn taint(at: u64, age: u64) -> Proposed {
        let time = T0 + Duration::from_secs(at);
        Proposed {
            time,
            proposal: Proposal::new(
                WorkloadRef::deployment("shop", "web"),
                Action::TaintNode {
                    node: "n1".into(),
                    remove: false,
                },
                "contended",
                time - Duration::from_secs(age),
                2,
            ),
        }
    }

    fn rules(trail: &[Replayed]) -> Vec<String> {
        trail
            .iter()
            .map(|r| format!("{} {}", r.verdict.kind.as_str(), r.verdict.rule))
            .collect()
    }

    #[test]
    fn each_verdict_leaves_the_history_the_journal_would() {
        let day = Duration::from_secs(86_400);
        // A denial counts for nothing, an action for its cooldown.
        let proposals = [taint(0, 600), taint(30, 0), taint(90, 0), taint(150, 0)];
        assert_eq!(
            rules(&replay(&set("enforce"), &proposals, Mode::Enforce, day)),
            [
                "deny stale-data",
                "act allowed",
                "deny cooldown",
                "act allowed"
            ]
        );
        // Plans cool down a dry-run the way actions cool down enforce…
        assert_eq!(
            rules(&replay(&set("dry-run"), &proposals, Mode::Enforce, day)),
            [
                "deny stale-data",
                "dry-run allowed",
                "deny cooldown",
                "dry-run allowed"
            ]
        );
        // …and observe leaves nothing to cool down from.
        assert_eq!(
            rules(&replay(&set("observe"), &proposals, Mode::Enforce, day)),
            ["observe mode"; 4]
        );
        // What falls out of the window is forgotten.
        let short = Duration::from_secs(45);
        assert_eq!(
            rules(&replay(&set("enforce"), &proposals, Mode::Enforce, short)),
            [
                "deny stale-data",
                "act allowed",
                "act allowed",
                "act allowed"
            ]
        );
    }
}
