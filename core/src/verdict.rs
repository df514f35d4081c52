//! What policy says about a proposal.

use serde::{Deserialize, Serialize};

use crate::action::Action;

/// The policy's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictKind {
    /// Apply the (possibly bounded) action.
    Act,
    /// Plan it, apply nothing.
    DryRun,
    /// Record it only.
    Observe,
    /// Refused.
    Deny,
}

impl VerdictKind {
    /// The name used in spans, metrics and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictKind::Act => "act",
            VerdictKind::DryRun => "dry-run",
            VerdictKind::Observe => "observe",
            VerdictKind::Deny => "deny",
        }
    }
}

/// A verdict, with the rule that decided it and the action as policy bounded it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The answer.
    pub kind: VerdictKind,
    /// The policy that decided, if any matched.
    pub policy: Option<String>,
    /// The rule within it (`mode`, `cooldown`, `replica-ceiling`, `scope`, …).
    pub rule: String,
    /// Why, for people.
    pub reason: String,
    /// The action as allowed: policy may have bounded the proposal's.
    pub action: Action,
}
