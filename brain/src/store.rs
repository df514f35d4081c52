//! The series store: folds per-pod points into per-workload samples on a fixed step.
//!
//! Pods come and go and report at their own times; the brain reasons about workloads. Each
//! point's increase since the same pod's previous point (counters and histograms are
//! cumulative on the wire) is added into the workload's bucket for the step it falls in. When a
//! bucket closes, it yields samples: counters as rates, histograms as rate, mean, p50 and
//! p99, gauges as their mean. Like linkerd's index, it is a pure state machine: fed points,
//! asked for samples, tested without any I/O.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use homeostat_core::{Sample, Stat, Timestamp, WorkloadRef};

use crate::point::{Point, PointValue};

/// Per-pod memory of the previous cumulative value, to turn cumulative values into increases.
#[derive(Clone, Debug)]
enum Previous {
    Counter {
        start: Timestamp,
        value: f64,
    },
    Histogram {
        start: Timestamp,
        count: u64,
        sum: f64,
        counts: Vec<u64>,
    },
}

/// What one workload accumulated within one step.
#[derive(Clone, Debug, Default)]
struct Bucket {
    counters: HashMap<String, f64>,
    histograms: HashMap<String, HistogramDelta>,
    gauges: HashMap<String, (f64, u32)>,
}

#[derive(Clone, Debug)]
struct HistogramDelta {
    count: u64,
    sum: f64,
    bounds: Vec<f64>,
    counts: Vec<u64>,
}

/// Counts of what the store did with what it was given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Points folded into a bucket.
    pub accepted: u64,
    /// Points whose bucket had already closed.
    pub late: u64,
    /// First points of a cumulative series (they only set the reference) and resets.
    pub references: u64,
}

/// Folds per-pod points into per-workload samples.
#[derive(Debug)]
pub struct SeriesStore {
    step: Duration,
    previous: HashMap<(String, String), Previous>,
    buckets: BTreeMap<WorkloadRef, BTreeMap<i64, Bucket>>,
    closed_until: Timestamp,
    last_seen: HashMap<WorkloadRef, Timestamp>,
    stats: StoreStats,
}

impl SeriesStore {
    /// A store that aggregates on `step` (15 s is the usual scrape interval).
    pub fn new(step: Duration) -> Self {
        SeriesStore {
            step: step.max(Duration::from_millis(1)),
            previous: HashMap::new(),
            buckets: BTreeMap::new(),
            closed_until: Timestamp::EPOCH,
            last_seen: HashMap::new(),
            stats: StoreStats::default(),
        }
    }

    /// The aggregation step.
    pub fn step(&self) -> Duration {
        self.step
    }

    /// What the store has done so far.
    pub fn stats(&self) -> StoreStats {
        self.stats
    }

    /// When each workload last sent anything: the engine's measure of staleness.
    pub fn last_seen(&self, workload: &WorkloadRef) -> Option<Timestamp> {
        self.last_seen.get(workload).copied()
    }

    /// Folds points in.
    pub fn ingest(&mut self, points: impl IntoIterator<Item = Point>) {
        for p in points {
            self.ingest_one(p);
        }
    }

    fn bucket_end(&self, t: Timestamp) -> i64 {
        let step = i64::try_from(self.step.as_nanos()).unwrap_or(i64::MAX);
        // A point at time t describes the interval ending at t: it belongs to the step (end - step, end].
        (t.0 + step - 1).div_euclid(step) * step
    }

    fn ingest_one(&mut self, p: Point) {
        let end = self.bucket_end(p.time);
        if end <= self.closed_until.0 {
            self.stats.late += 1;
            return;
        }
        let workload = p.entity.workload.clone();
        let seen = self.last_seen.entry(workload.clone()).or_insert(p.time);
        *seen = (*seen).max(p.time);
        let pod = p
            .entity
            .pod_uid
            .clone()
            .or(p.entity.pod.clone())
            .unwrap_or_default();
        let key = (pod, p.signal.clone());
        let bucket = self
            .buckets
            .entry(workload)
            .or_default()
            .entry(end)
            .or_default();
        match p.value {
            PointValue::Gauge(v) => {
                let g = bucket.gauges.entry(p.signal).or_insert((0.0, 0));
                g.0 += v;
                g.1 += 1;
            }
            PointValue::Counter { value, cumulative } => {
                let delta = if cumulative {
                    let prev = self.previous.insert(
                        key,
                        Previous::Counter {
                            start: p.start_time,
                            value,
                        },
                    );
                    match prev {
                        Some(Previous::Counter {
                            start,
                            value: before,
                        }) if start == p.start_time && value >= before => Some(value - before),
                        // A new start time means the counter restarted: its whole value is new.
                        Some(Previous::Counter { start, .. }) if start != p.start_time => {
                            Some(value)
                        }
                        _ => None,
                    }
                } else {
                    Some(value)
                };
                match delta {
                    Some(d) => {
                        *bucket.counters.entry(p.signal).or_insert(0.0) += d;
                        self.stats.accepted += 1;
                    }
                    None => self.stats.references += 1,
                }
                return;
            }
            PointValue::Histogram {
                count,
                sum,
                bounds,
                counts,
                cumulative,
            } => {
                let delta = if cumulative {
                    let prev = self.previous.insert(
                        key,
                        Previous::Histogram {
                            start: p.start_time,
                            count,
                            sum,
                            counts: counts.clone(),
                        },
                    );
                    match prev {
                        Some(Previous::Histogram {
                            start,
                            count: c0,
                            sum: s0,
                            counts: k0,
                        }) if start == p.start_time && count >= c0 && k0.len() == counts.len() => {
                            let ks: Option<Vec<u64>> = counts
                                .iter()
                                .zip(&k0)
                                .map(|(now, before)| now.checked_sub(*before))
                                .collect();
                            ks.map(|ks| (count - c0, sum - s0, ks))
                        }
                        Some(Previous::Histogram { start, .. }) if start != p.start_time => {
                            Some((count, sum, counts))
                        }
                        _ => None,
                    }
                } else {
                    Some((count, sum, counts))
                };
                match delta {
                    Some((dc, ds, dk)) => {
                        let h =
                            bucket
                                .histograms
                                .entry(p.signal)
                                .or_insert_with(|| HistogramDelta {
                                    count: 0,
                                    sum: 0.0,
                                    bounds: bounds.clone(),
                                    counts: vec![0; dk.len()],
                                });
                        if h.bounds == bounds {
                            h.count += dc;
                            h.sum += ds;
                            h.counts.iter_mut().zip(&dk).for_each(|(a, b)| *a += b);
                        }
                        self.stats.accepted += 1;
                    }
                    None => self.stats.references += 1,
                }
                return;
            }
        }
        self.stats.accepted += 1;
    }

    /// Closes every bucket that ends at or before `until` and returns its samples in time order.
    pub fn close(&mut self, until: Timestamp) -> Vec<Sample> {
        let secs = self.step.as_secs_f64();
        let mut out = Vec::new();
        for (workload, buckets) in &mut self.buckets {
            let open = buckets.split_off(&(until.0 + 1));
            let closed = std::mem::replace(buckets, open);
            for (end, b) in closed {
                let t = Timestamp(end);
                let mut push = |signal: &str, stat: Stat, v: f64| {
                    if let Some(s) = Sample::new(signal, stat, workload.clone(), t, v) {
                        out.push(s);
                    }
                };
                for (signal, delta) in &b.counters {
                    push(signal, Stat::Rate, delta / secs);
                }
                for (signal, (sum, n)) in &b.gauges {
                    push(signal, Stat::Value, sum / f64::from(*n));
                }
                for (signal, h) in &b.histograms {
                    push(signal, Stat::Rate, h.count as f64 / secs);
                    if h.count > 0 {
                        push(signal, Stat::Mean, h.sum / h.count as f64);
                        push(signal, Stat::P50, quantile(&h.bounds, &h.counts, 0.5));
                        push(signal, Stat::P99, quantile(&h.bounds, &h.counts, 0.99));
                    }
                }
            }
        }
        self.buckets.retain(|_, b| !b.is_empty());
        self.closed_until = self.closed_until.max(until);
        out.sort_by(|a, b| {
            (a.time, &a.workload, &a.signal, a.stat).cmp(&(b.time, &b.workload, &b.signal, b.stat))
        });
        out
    }
}

/// The `q` quantile of an explicit-bucket histogram, interpolating linearly within the bucket
/// (as Prometheus' `histogram_quantile` does); the open last bucket answers its lower bound.
pub fn quantile(bounds: &[f64], counts: &[u64], q: f64) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return f64::NAN;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut seen = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        if c > 0 && (seen + c) as f64 >= rank {
            let lower = if i == 0 {
                0.0_f64.min(bounds.first().copied().unwrap_or(0.0))
            } else {
                bounds[i - 1]
            };
            let Some(&upper) = bounds.get(i) else {
                return lower;
            };
            let within = (rank - seen as f64) / c as f64;
            return lower + (upper - lower) * within;
        }
        seen += c;
    }
    bounds.last().copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use homeostat_core::Entity;

    fn entity(pod: &str) -> Entity {
        let mut e = Entity::workload(WorkloadRef::deployment("shop", "web"));
        e.pod = Some(pod.into());
        e
    }

    fn counter(pod: &str, t: i64, v: f64) -> Point {
        Point {
            entity: entity(pod),
            signal: "c".into(),
            time: Timestamp::from_secs(t),
            start_time: Timestamp::from_secs(0),
            value: PointValue::Counter {
                value: v,
                cumulative: true,
            },
        }
    }

    fn find(samples: &[Sample], signal: &str, stat: Stat) -> Vec<(i64, f64)> {
        samples
            .iter()
            .filter(|s| s.signal == signal && s.stat == stat)
            .map(|s| (s.time.0 / 1_000_000_000, s.value))
            .collect()
    }

    #[test]
    fn cumulative_counters_of_several_pods_become_one_workload_rate() {
        let mut store = SeriesStore::new(Duration::from_secs(10));
        store.ingest([counter("a", 10, 100.0), counter("b", 10, 50.0)]);
        store.ingest([counter("a", 20, 200.0), counter("b", 20, 100.0)]);
        let s = store.close(Timestamp::from_secs(20));
        // First points only set the reference; the second step saw +100 and +50 in 10 s.
        assert_eq!(find(&s, "c", Stat::Rate), vec![(20, 15.0)]);
        assert_eq!(store.stats().references, 2);
    }

    #[test]
    fn a_restarted_counter_counts_from_zero_and_late_points_are_dropped() {
        let mut store = SeriesStore::new(Duration::from_secs(10));
        store.ingest([counter("a", 10, 100.0)]);
        let mut restarted = counter("a", 20, 30.0);
        restarted.start_time = Timestamp::from_secs(15);
        store.ingest([restarted]);
        assert_eq!(
            find(&store.close(Timestamp::from_secs(20)), "c", Stat::Rate),
            vec![(20, 3.0)]
        );
        store.ingest([counter("a", 19, 500.0)]);
        assert_eq!(store.stats().late, 1);
        assert!(store.close(Timestamp::from_secs(30)).is_empty());
    }

    #[test]
    fn histograms_yield_rate_mean_and_quantiles_from_their_increase() {
        let mut store = SeriesStore::new(Duration::from_secs(10));
        let h = |t: i64, counts: Vec<u64>, sum: f64| Point {
            entity: entity("a"),
            signal: "h".into(),
            time: Timestamp::from_secs(t),
            start_time: Timestamp::EPOCH,
            value: PointValue::Histogram {
                count: counts.iter().sum(),
                sum,
                bounds: vec![0.1, 0.2, 0.4],
                counts,
                cumulative: true,
            },
        };
        store.ingest([
            h(10, vec![10, 0, 0, 0], 0.5),
            h(20, vec![10, 100, 0, 0], 15.5),
        ]);
        let s = store.close(Timestamp::from_secs(20));
        assert_eq!(find(&s, "h", Stat::Rate), vec![(20, 10.0)]);
        assert_eq!(find(&s, "h", Stat::Mean), vec![(20, 0.15)]);
        let p99 = find(&s, "h", Stat::P99)[0].1;
        assert!((p99 - 0.199).abs() < 1e-9, "{p99}");
    }

    #[test]
    fn quantile_interpolates_within_buckets() {
        assert_eq!(quantile(&[1.0, 2.0], &[0, 10, 0], 0.5), 1.5);
        assert_eq!(quantile(&[1.0, 2.0], &[0, 0, 10], 0.99), 2.0);
        assert!(quantile(&[1.0], &[0, 0], 0.5).is_nan());
    }
}
