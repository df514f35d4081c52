//! homeostat's simulated cluster: a Kubernetes API on loopback, models of workloads and of
//! the HPA controller, and scenarios that rehearse incidents against homeostat and against
//! the HPA alone.
#![forbid(unsafe_code)]

pub mod apiserver;
pub mod cluster;
pub mod live;
pub mod model;
pub mod report;
pub mod run;
pub mod scenario;
pub mod signal_faults;
pub mod summary;
pub mod telemetry;

pub use run::{Controller, RunOptions, RunResult, run};
pub use scenario::Scenario;

/// The scenario `homeostat simulate` runs when none is named.
pub const DEFAULT_SCENARIO: &str = include_str!("../scenarios/load-spike.yaml");

/// The policy simulations use when none is given.
pub const DEFAULT_POLICY: &str = include_str!("../../policies/examples/default.yaml");
