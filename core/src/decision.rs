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
}
