//! A data point as it arrives, per pod, before the series store folds it into workload series.

use homeostat_core::{Entity, Timestamp};

/// One OTLP data point, reduced to what the brain uses.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Who it is about (from the OTLP resource attributes).
    pub entity: Entity,
    /// Metric name.
    pub signal: String,
    /// The data point's own attributes (string-valued ones), sorted by key: they tell one
    /// cumulative series of a pod from another (`exit.kind=error` from `exit.kind=ok`).
    pub attributes: Vec<(String, String)>,
    /// Time the value was observed (`time_unix_nano`).
    pub time: Timestamp,
    /// Start of the cumulative interval (`start_time_unix_nano`); a change means a reset.
    pub start_time: Timestamp,
    /// The value.
    pub value: PointValue,
}

/// The value of a point, by metric type.
#[derive(Clone, Debug, PartialEq)]
pub enum PointValue {
    /// A gauge, or a non-monotonic sum.
    Gauge(f64),
    /// A monotonic sum.
    Counter {
        /// The sum.
        value: f64,
        /// Cumulative since `start_time` (true) or the increase over this interval (false).
        cumulative: bool,
    },
    /// An explicit-bucket histogram.
    Histogram {
        /// Number of observations.
        count: u64,
        /// Sum of observations.
        sum: f64,
        /// Upper bounds of all buckets but the last (which is unbounded).
        bounds: Vec<f64>,
        /// Observations per bucket; one more than `bounds`.
        counts: Vec<u64>,
        /// Cumulative since `start_time` (true) or for this interval only (false).
        cumulative: bool,
    },
}

/// Where the receivers hand what they accepted.
pub trait PointSink: Send + Sync + 'static {
    /// Takes points that passed validation.
    fn accept(&self, points: Vec<Point>);
}
