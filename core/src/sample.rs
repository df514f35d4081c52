//! A sample: one value of one statistic of one signal of one workload at one time.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::entity::WorkloadRef;

/// Which statistic of a signal a sample holds: counters become rates, histograms quantiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stat {
    /// A gauge's value.
    Value,
    /// Per second: a counter's increase, or a histogram's count.
    Rate,
    /// A histogram's mean.
    Mean,
    /// A histogram's median.
    P50,
    /// A histogram's 99th percentile.
    P99,
    /// A gauge's largest value across the workload's pods: the pod nearest a limit matters
    /// more than the average one.
    Max,
}

impl Stat {
    /// The short name used in series keys and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Stat::Value => "value",
            Stat::Rate => "rate",
            Stat::Mean => "mean",
            Stat::P50 => "p50",
            Stat::P99 => "p99",
            Stat::Max => "max",
        }
    }
}

/// One observation, already aggregated to the workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Signal name from the catalogue (or any application metric).
    pub signal: String,
    /// Which statistic of the signal.
    pub stat: Stat,
    /// The workload observed.
    pub workload: WorkloadRef,
    /// End of the interval the value describes.
    pub time: Timestamp,
    /// The value; finite by construction (see [`Sample::new`]).
    pub value: f64,
    /// For a [`Stat::Max`] over pods, the node of the pod that had it: a node-level cause
    /// (the node's sensor, a neighbour) is acted on where it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl Sample {
    /// A sample, or `None` when the value is NaN or infinite: such a value is never stored.
    pub fn new(
        signal: impl Into<String>,
        stat: Stat,
        workload: WorkloadRef,
        time: Timestamp,
        value: f64,
    ) -> Option<Self> {
        value.is_finite().then(|| Sample {
            signal: signal.into(),
            stat,
            workload,
            time,
            value,
            node: None,
        })
    }

    /// The same sample, attributed to `node`.
    pub fn on_node(mut self, node: Option<String>) -> Self {
        self.node = node;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_are_refused() {
        let w = WorkloadRef::deployment("ns", "web");
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert!(Sample::new("x", Stat::Value, w.clone(), Timestamp::EPOCH, v).is_none());
        }
        assert!(Sample::new("x", Stat::Value, w, Timestamp::EPOCH, 1.5).is_some());
    }
}
