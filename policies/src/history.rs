//! The past actions the stateful limits (cooldowns, budgets, escalation, `recent` in
//! conditions) are measured from, and the store they are read from.
//!
//! The evaluator itself never reads a store: the caller reads the window it needs through
//! [`ActionLog`] and hands the evaluator a slice, so a verdict stays a pure function of its
//! inputs. The brain's journal (sled) implements [`ActionLog`], so limits survive a restart;
//! [`MemoryLog`] serves replays and tests.

use homeostat_core::{ActionKind, Timestamp, WorkloadRef};

/// An earlier action on a workload, as the caller's journal recorded it.
///
/// List actions that were applied (`applied: true`) and actions planned in dry-run
/// (`applied: false`). Leave out denied proposals: they did nothing and planned nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PastAction {
    /// The workload acted on.
    pub workload: WorkloadRef,
    /// What kind of action.
    pub kind: ActionKind,
    /// When it was applied or planned.
    pub time: Timestamp,
    /// Whether it changed the cluster; `false` for a dry-run plan.
    pub applied: bool,
    /// Whether it helped, once verified (`escalation.verifyWithin` after it); `None` until
    /// then, or when nothing verifies it.
    pub helped: Option<bool>,
}

/// Why past actions could not be read: the caller must not act without them.
#[derive(Debug, thiserror::Error)]
#[error("cannot read past actions: {0}")]
pub struct ActionLogError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Where past actions are kept.
pub trait ActionLog {
    /// Every action at or after `since`, in any order.
    fn actions_since(&self, since: Timestamp) -> Result<Vec<PastAction>, ActionLogError>;
}

impl ActionLog for [PastAction] {
    fn actions_since(&self, since: Timestamp) -> Result<Vec<PastAction>, ActionLogError> {
        Ok(self.iter().filter(|a| a.time >= since).cloned().collect())
    }
}

/// Past actions kept in memory, for replays and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemoryLog {
    actions: Vec<PastAction>,
}

impl MemoryLog {
    /// An empty log.
    pub fn new() -> Self {
        MemoryLog::default()
    }

    /// Adds an action.
    pub fn record(&mut self, action: PastAction) {
        self.actions.push(action);
    }

    /// Everything recorded, in order.
    pub fn all(&self) -> &[PastAction] {
        &self.actions
    }
}

impl ActionLog for MemoryLog {
    fn actions_since(&self, since: Timestamp) -> Result<Vec<PastAction>, ActionLogError> {
        self.actions.as_slice().actions_since(since)
    }
}
