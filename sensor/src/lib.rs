//! homeostat's node agent: kernel signals per cgroup, attributed to pods.
//!
//! The probes (`sensor-ebpf/`, CO-RE C) aggregate in the kernel per v2 cgroup id; this crate
//! loads them with aya ([`Sensor::start`]), reads their maps on demand ([`Sensor::read`]) into
//! a [`Snapshot`] of increases and latency histograms, and names the owner of each cgroup
//! (pod and container, systemd unit, or path; [`cgroup`]). [`Snapshot::samples`] speaks the
//! core vocabulary. Where BPF cannot run, [`preflight::unavailable`] says why.

pub mod cgroup;
pub mod error;
pub mod histogram;
mod loader;
pub mod local_config;
mod maps;
pub mod otlp;
pub mod preflight;
pub mod probes;
pub mod snapshot;
pub mod throttle;

pub use cgroup::{CgroupIndex, Owner};
pub use error::SensorError;
pub use histogram::Log2Histogram;
pub use loader::{AttachedObject, ProgramStats, Sensor};
pub use probes::{Family, Probe, ProbeConfig, SensorConfig};
pub use snapshot::{Event, EventKind, Reading, Snapshot, Value};
pub use throttle::Throttle;
