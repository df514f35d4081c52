//! The record of one pass of the loop that proposed something.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::action::{Plan, Proposal};
use crate::anomaly::Anomaly;
use crate::clock::Timestamp;
use crate::mode::Mode;
use crate::verdict::Verdict;

/// A decision's id: a ULID, so ids sort by time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DecisionId(pub String);

impl fmt::Display for DecisionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What became of a decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Outcome {
    /// Intent recorded; the actuator has not reported yet.
    Pending,
    /// The plan was applied.
    Applied {
        /// When the API server accepted it.
        at: Timestamp,
    },
    /// Planned only (dry-run).
    Planned,
    /// Nothing was done, and why (denied, observe mode).
    Skipped {
        /// Why.
        reason: String,
    },
    /// The actuator failed.
    Failed {
        /// The error.
        error: String,
    },
    /// Found pending after a restart, and the cluster shows the change landed (its target
    /// carries the decision's id, or the evicted pod is gone): done, and counted as done.
    Recovered {
        /// When the brain found it landed.
        at: Timestamp,
    },
    /// Found pending after a restart, and the change is not on the cluster (or there is no
    /// cluster to ask): closed rather than repeated; the loop decides afresh on new evidence.
    Abandoned {
        /// Why.
        reason: String,
    },
}

impl Outcome {
    /// The name used in spans, metrics and the API.
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Applied { .. } => "applied",
            Outcome::Planned => "planned",
            Outcome::Skipped { .. } => "skipped",
            Outcome::Failed { .. } => "failed",
            Outcome::Recovered { .. } => "recovered",
            Outcome::Abandoned { .. } => "abandoned",
        }
    }
}

/// One decision, journaled before the actuator runs and updated after.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Journal key.
    pub id: DecisionId,
    /// When it was taken.
    pub time: Timestamp,
    /// The anomaly behind it, if one was.
    pub anomaly: Option<Anomaly>,
    /// What was proposed.
    pub proposal: Proposal,
    /// What policy said.
    pub verdict: Verdict,
    /// The effective mode (the stricter of global and policy mode).
    pub mode: Mode,
    /// The exact change, when the verdict allowed planning.
    pub plan: Option<Plan>,
    /// What became of it.
    pub outcome: Outcome,
    /// Which policy set was in force (a content hash), since policies reload while the
    /// brain runs; absent in records written before reloading existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_set: Option<String>,
    /// Whether an applied change helped, once its verify window has passed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Verification>,
}

/// Whether an applied change helped: judged on the signals that triggered it, once the
/// action's verify window has passed (or as soon as they recovered within it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// When it was judged.
    pub at: Timestamp,
    /// Whether the triggering signals recovered (scored under the detector's threshold, or
    /// the anomaly ended) within the window.
    pub helped: bool,
    /// What was seen, in a sentence.
    pub detail: String,
}

impl Verification {
    /// The name used in spans, metrics and the API: `helped` or `not-helped`.
    pub fn result(&self) -> &'static str {
        if self.helped { "helped" } else { "not-helped" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::action::Action;
    use crate::entity::WorkloadRef;

    #[test]
    fn new_actions_and_a_verification_read_back_as_written() {
        let actions = [
            Action::ScaleWorkload {
                workload: WorkloadRef::deployment("shop", "cart"),
                replicas: 4,
                previous_replicas: 2,
            },
            Action::RolloutRestart {
                workload: WorkloadRef::deployment("shop", "cart"),
            },
        ];
        for (action, kind) in actions.iter().zip(["scale-workload", "rollout-restart"]) {
            let json = serde_json::to_value(action).expect("serialises");
            assert_eq!(json["kind"], kind);
            assert_eq!(action.kind().as_str(), kind);
            let back: Action = serde_json::from_value(json).expect("reads back");
            assert_eq!(&back, action);
        }
        assert!(
            !actions[0].is_destructive(),
            "scaling up takes nothing away"
        );
        assert!(actions[1].is_destructive(), "every pod is replaced");
        let down = Action::ScaleWorkload {
            workload: WorkloadRef::deployment("shop", "cart"),
            replicas: 2,
            previous_replicas: 4,
        };
        assert!(down.is_destructive());

        let v = Verification {
            at: Timestamp::from_secs(600),
            helped: false,
            detail: "latency still 4.1 σ above baseline".into(),
        };
        assert_eq!(v.result(), "not-helped");
        let back: Verification =
            serde_json::from_str(&serde_json::to_string(&v).expect("json")).expect("reads back");
        assert_eq!(back, v);
    }
}
