//! homeostat's shared vocabulary.
//!
//! Every other crate speaks in these types: what a workload is, what a signal sample is, what
//! an anomaly, a proposal, a verdict and a decision are, and how time is read. Nothing here
//! does I/O, so detectors and policies built on it stay pure functions of their inputs and a
//! [`Clock`].
#![forbid(unsafe_code)]

pub mod action;
pub mod anomaly;
pub mod clock;
pub mod decision;
pub mod entity;
pub mod forecast;
pub mod mode;
pub mod sample;
pub mod semconv;
pub mod signal;
pub mod verdict;

pub use action::{Action, ActionKind, ObjectRef, PatchType, Plan, Proposal};
pub use anomaly::{Anomaly, AnomalyKind, AnomalySummary, Contribution};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use decision::{Decision, DecisionId, Outcome, Verification};
pub use entity::{Entity, WorkloadKind, WorkloadRef};
pub use forecast::ForecastSummary;
pub use mode::Mode;
pub use sample::{Sample, Stat};
pub use verdict::{Verdict, VerdictKind};
