//! A departure from a workload's normal behaviour, and what it is made of.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::entity::WorkloadRef;
use crate::sample::Stat;

/// What kind of trouble an anomaly looks like; it decides which actions make sense.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AnomalyKind {
    /// More demand than the running pods can serve: latency and run-queue delay climb.
    Saturation,
    /// The workload's processes keep exiting with errors or signals: a bad rollout or a
    /// crash loop. More replicas would crash too.
    CrashLoop,
    /// Memory grows towards the limit or the kernel already OOM-kills the workload.
    MemoryLeak,
    /// Latency and run-queue delay climb while the workload gets no more CPU than usual:
    /// something else on its nodes takes the CPU.
    CpuContention,
    /// TCP retransmits or resets above normal: the network, not the workload, is failing.
    Network,
    /// homeostat's own sensor costs more CPU than its budget.
    SensorOverload,
    /// Something is off, but no more specific kind fits.
    Unclassified,
}

impl AnomalyKind {
    /// The name used in spans and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::Saturation => "saturation",
            AnomalyKind::CrashLoop => "crash-loop",
            AnomalyKind::MemoryLeak => "memory-leak",
            AnomalyKind::CpuContention => "cpu-contention",
            AnomalyKind::Network => "network",
            AnomalyKind::SensorOverload => "sensor-overload",
            AnomalyKind::Unclassified => "unclassified",
        }
    }
}

/// One signal's part in an anomaly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    /// Signal name.
    pub signal: String,
    /// Statistic of the signal.
    pub stat: Stat,
    /// The value seen.
    pub value: f64,
    /// What was expected: the baseline's level.
    pub baseline: f64,
    /// This signal's score in [0, 1].
    pub score: f64,
}

/// A workload behaving unlike itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// The workload.
    pub workload: WorkloadRef,
    /// What it looks like.
    pub kind: AnomalyKind,
    /// How sure: in [0, 1], one minus a p-value under the baseline.
    pub score: f64,
    /// When the episode began.
    pub started: Timestamp,
    /// When it was last seen.
    pub detected: Timestamp,
    /// The signals behind it, most telling first.
    pub contributions: Vec<Contribution>,
}

/// What policy conditions see of an anomaly: its kind and score, small enough to travel
/// with every proposal.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnomalySummary {
    /// What it looks like.
    pub kind: AnomalyKind,
    /// How sure, in [0, 1].
    pub score: f64,
}

impl From<&Anomaly> for AnomalySummary {
    fn from(a: &Anomaly) -> Self {
        AnomalySummary {
            kind: a.kind,
            score: a.score,
        }
    }
}
