//! The series store: folds per-pod points into per-workload samples on a fixed step.
//!
//! Pods come and go and report at their own times; the brain reasons about workloads. Each
//! point's increase since the same pod's previous point (counters and histograms are
//! cumulative on the wire) is added into the workload's bucket for the step it falls in. When a
//! bucket closes, it yields samples: counters as rates, histograms as rate, mean, p50 and
//! p99, gauges as their mean. Like linkerd's index, it is a pure state machine: fed points,
//! asked for samples, tested without any I/O.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use homeostat_core::{Sample, Stat, Timestamp, WorkloadRef, signal};

use crate::point::{Point, PointValue};
use crate::quantile::quantile;

/// Per-pod memory of the previous cumulative value, to turn cumulative values into increases.
#[derive(Clone, Debug)]
struct Previous {
    /// When it was observed.
    time: Timestamp,
    /// Start of its cumulative interval.
    start: Timestamp,
    value: PreviousValue,
}

#[derive(Clone, Debug)]
enum PreviousValue {
    Counter(f64),
    Histogram {
        count: u64,
        sum: f64,
        counts: Vec<u64>,
    },
}

/// What a cumulative point means next to the same series' previous point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Continuity {
    /// No usable previous point: this one only becomes the reference.
    Reference,
    /// Not newer than the previous point (a re-send): ignored.
    Stale,
    /// Same cumulative interval, one step or so later: the difference is this step's.
    Continues,
    /// Restarted since the previous point: its whole value is this step's.
    Restarted,
}

/// Points further apart than this many steps do not difference: what accumulated across a
/// gap cannot be placed in the one step the resuming point falls in.
const MAX_STEPS_APART: u32 = 2;

fn continuity(
    prev: Option<&Previous>,
    time: Timestamp,
    start: Timestamp,
    step: Duration,
) -> Continuity {
    match prev {
        None => Continuity::Reference,
        Some(p) if time <= p.time => Continuity::Stale,
        Some(p) if time.since(p.time) > step * MAX_STEPS_APART => Continuity::Reference,
        Some(p) if p.start == start => Continuity::Continues,
        Some(p) if start >= p.time => Continuity::Restarted,
        Some(_) => Continuity::Reference,
    }
}

/// What one workload accumulated within one step.
#[derive(Clone, Debug, Default)]
struct Bucket {
    counters: HashMap<String, f64>,
    histograms: HashMap<String, HistogramDelta>,
    gauges: HashMap<String, GaugeAcc>,
    /// The run-queue delay again, per node: contention is a node's trouble, and the workload's
    /// pods elsewhere dilute it in the workload-wide histogram.
    runqueue_by_node: HashMap<String, HistogramDelta>,
    /// The pods that served requests: the load per pod is the request rate over them.
    serving: HashSet<String>,
}

/// A gauge's values in one step, across pods: their sum and count for the mean, their max.
#[derive(Clone, Debug)]
struct GaugeAcc {
    sum: f64,
    n: u32,
    max: f64,
    /// The node of the pod that had the max.
    max_node: Option<String>,
}

#[derive(Clone, Debug)]
struct HistogramDelta {
    count: u64,
    sum: f64,
    bounds: Vec<f64>,
    counts: Vec<u64>,
}

impl HistogramDelta {
    fn empty(bounds: &[f64]) -> Self {
        HistogramDelta {
            count: 0,
            sum: 0.0,
            bounds: bounds.to_vec(),
            counts: vec![0; bounds.len() + 1],
        }
    }

    /// Adds an increase; one with other bounds cannot be added and is left out.
    fn add(&mut self, bounds: &[f64], count: u64, sum: f64, counts: &[u64]) {
        if self.bounds == bounds && self.counts.len() == counts.len() {
            self.count += count;
            self.sum += sum;
            self.counts
                .iter_mut()
                .zip(counts)
                .for_each(|(a, b)| *a += b);
        }
    }
}

/// Counts of what the store did with what it was given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Points folded into a bucket.
    pub accepted: u64,
    /// Points whose bucket had already closed.
    pub late: u64,
    /// First points of a cumulative series, and points after a gap or an unplaceable
    /// reset: they only set the reference.
    pub references: u64,
    /// Re-sent points, no newer than the series' previous point.
    pub stale: u64,
    /// Points stamped further ahead of the clock than [`MAX_AHEAD`].
    pub future: u64,
}

/// How far ahead of the brain's clock a point may be stamped (a sender's clock skew); beyond
/// it, the point would fill steps that have not happened yet.
pub const MAX_AHEAD: Duration = Duration::from_secs(60);

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

    /// Folds points in, refusing those stamped more than [`MAX_AHEAD`] after `now`.
    pub fn ingest_at(&mut self, points: impl IntoIterator<Item = Point>, now: Timestamp) {
        let horizon = now + MAX_AHEAD;
        for p in points {
            if p.time > horizon {
                self.stats.future += 1;
            } else {
                self.ingest_one(p);
            }
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
        // The point is ours: its strings move into the store's keys rather than being copied.
        let Point {
            entity,
            signal,
            attributes,
            time,
            start_time,
            value,
        } = p;
        // Cumulative state is per pod and per attribute set; the bucket per series.
        let series = signal::series_name(&signal, &attributes);
        let requests = signal == signal::HTTP_SERVER_REQUEST_DURATION;
        let state_key = if attributes.is_empty() {
            signal
        } else {
            let attrs: Vec<String> = attributes.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{signal}{{{}}}", attrs.join(","))
        };
        let workload = entity.workload;
        match self.last_seen.get_mut(&workload) {
            Some(seen) => *seen = (*seen).max(time),
            None => {
                self.last_seen.insert(workload.clone(), time);
            }
        }
        let node = entity.node;
        let pod = entity.pod_uid.or(entity.pod).unwrap_or_default();
        let server = requests.then(|| pod.clone());
        let bucket = self
            .buckets
            .entry(workload)
            .or_default()
            .entry(end)
            .or_default();
        match value {
            PointValue::Gauge(v) => {
                let g = bucket.gauges.entry(series).or_insert(GaugeAcc {
                    sum: 0.0,
                    n: 0,
                    max: f64::NEG_INFINITY,
                    max_node: None,
                });
                g.sum += v;
                g.n += 1;
                if v > g.max {
                    g.max = v;
                    g.max_node = node;
                }
            }
            PointValue::Counter { value, cumulative } => {
                let delta = if cumulative {
                    let key = (pod, state_key);
                    let prev = self.previous.get_mut(&key);
                    let delta = match continuity(prev.as_deref(), time, start_time, self.step) {
                        Continuity::Stale => {
                            self.stats.stale += 1;
                            return;
                        }
                        Continuity::Continues => match prev.as_deref() {
                            Some(Previous {
                                value: PreviousValue::Counter(before),
                                ..
                            }) if value >= *before => Some(value - before),
                            _ => None,
                        },
                        // A new start time means the counter restarted: its whole value is new.
                        Continuity::Restarted => Some(value),
                        Continuity::Reference => None,
                    };
                    let next = Previous {
                        time,
                        start: start_time,
                        value: PreviousValue::Counter(value),
                    };
                    match prev {
                        Some(p) => *p = next,
                        None => {
                            self.previous.insert(key, next);
                        }
                    }
                    delta
                } else {
                    Some(value)
                };
                match delta {
                    Some(d) => {
                        *bucket.counters.entry(series).or_insert(0.0) += d;
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
                    let key = (pod, state_key);
                    let prev = self.previous.get_mut(&key);
                    let how = continuity(prev.as_deref(), time, start_time, self.step);
                    let delta = match how {
                        Continuity::Stale => {
                            self.stats.stale += 1;
                            return;
                        }
                        Continuity::Continues => match prev.as_deref() {
                            Some(Previous {
                                value:
                                    PreviousValue::Histogram {
                                        count: c0,
                                        sum: s0,
                                        counts: k0,
                                    },
                                ..
                            }) if count >= *c0 && k0.len() == counts.len() => {
                                let ks: Option<Vec<u64>> = counts
                                    .iter()
                                    .zip(k0)
                                    .map(|(now, before)| now.checked_sub(*before))
                                    .collect();
                                ks.map(|ks| (count - c0, sum - s0, ks))
                            }
                            _ => None,
                        },
                        Continuity::Restarted => Some((count, sum, counts.clone())),
                        Continuity::Reference => None,
                    };
                    match prev {
                        // The usual case, updated in place: the buckets' vector is reused.
                        Some(Previous {
                            time: t0,
                            start: st0,
                            value:
                                PreviousValue::Histogram {
                                    count: c0,
                                    sum: s0,
                                    counts: k0,
                                },
                        }) => {
                            *t0 = time;
                            *st0 = start_time;
                            *c0 = count;
                            *s0 = sum;
                            k0.clone_from(&counts);
                        }
                        _ => {
                            self.previous.insert(
                                key,
                                Previous {
                                    time,
                                    start: start_time,
                                    value: PreviousValue::Histogram { count, sum, counts },
                                },
                            );
                        }
                    }
                    delta
                } else {
                    Some((count, sum, counts))
                };
                match delta {
                    Some((dc, ds, dk)) => {
                        if let Some(node) = node.filter(|_| series == signal::RUNQUEUE_LATENCY) {
                            bucket
                                .runqueue_by_node
                                .entry(node)
                                .or_insert_with(|| HistogramDelta::empty(&bounds))
                                .add(&bounds, dc, ds, &dk);
                        }
                        if let Some(pod) = server.filter(|_| dc > 0) {
                            bucket.serving.insert(pod);
                        }
                        bucket
                            .histograms
                            .entry(series)
                            .or_insert_with(|| HistogramDelta::empty(&bounds))
                            .add(&bounds, dc, ds, &dk);
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
                let mut push = |signal: &str, stat: Stat, v: f64, node: Option<&String>| {
                    if let Some(s) = Sample::new(signal, stat, workload.clone(), t, v) {
                        out.push(s.on_node(node.cloned()));
                    }
                };
                for (signal, delta) in &b.counters {
                    push(signal, Stat::Rate, delta / secs, None);
                }
                for (signal, g) in &b.gauges {
                    push(signal, Stat::Value, g.sum / f64::from(g.n), None);
                    push(signal, Stat::Max, g.max, g.max_node.as_ref());
                }
                for (signal, h) in &b.histograms {
                    push(signal, Stat::Rate, h.count as f64 / secs, None);
                    if h.count > 0 {
                        push(signal, Stat::Mean, h.sum / h.count as f64, None);
                        push(signal, Stat::P50, quantile(&h.bounds, &h.counts, 0.5), None);
                        push(
                            signal,
                            Stat::P99,
                            quantile(&h.bounds, &h.counts, 0.99),
                            None,
                        );
                    }
                }
                if !b.serving.is_empty() {
                    push(
                        signal::SERVING_PODS,
                        Stat::Value,
                        b.serving.len() as f64,
                        None,
                    );
                }
                for (node, h) in &b.runqueue_by_node {
                    if h.count > 0 {
                        let p99 = quantile(&h.bounds, &h.counts, 0.99);
                        push(signal::RUNQUEUE_LATENCY, Stat::P99, p99, Some(node));
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
            attributes: Vec::new(),
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
    fn what_accumulated_across_a_gap_is_not_put_in_one_step() {
        let mut store = SeriesStore::new(Duration::from_secs(10));
        store.ingest([counter("a", 10, 100.0), counter("a", 20, 110.0)]);
        // Silent from 20 s to 100 s: the 890 that accumulated cannot be placed.
        store.ingest([counter("a", 100, 1000.0), counter("a", 110, 1010.0)]);
        let s = store.close(Timestamp::from_secs(110));
        assert_eq!(find(&s, "c", Stat::Rate), vec![(20, 1.0), (110, 1.0)]);
        assert_eq!(store.stats().references, 2);
    }

    #[test]
    fn a_re_sent_point_is_ignored_and_does_not_move_the_reference() {
        let mut store = SeriesStore::new(Duration::from_secs(10));
        store.ingest([counter("a", 10, 100.0), counter("a", 20, 110.0)]);
        store.ingest([counter("a", 20, 110.0), counter("a", 15, 105.0)]);
        store.ingest([counter("a", 30, 130.0)]);
        let s = store.close(Timestamp::from_secs(30));
        assert_eq!(find(&s, "c", Stat::Rate), vec![(20, 1.0), (30, 2.0)]);
        assert_eq!(store.stats().stale, 2);
    }

    #[test]
    fn points_stamped_too_far_ahead_are_refused() {
        let mut store = SeriesStore::new(Duration::from_secs(10));
        let now = Timestamp::from_secs(1000);
        store.ingest_at(
            [counter("a", 1000 + 30, 1.0), counter("a", 1000 + 600, 2.0)],
            now,
        );
        assert_eq!(store.stats().future, 1);
        assert_eq!(
            store.stats().references,
            1,
            "the skewed-but-plausible point is kept"
        );
    }

    #[test]
    fn histograms_yield_rate_mean_and_quantiles_from_their_increase() {
        let mut store = SeriesStore::new(Duration::from_secs(10));
        let h = |t: i64, counts: Vec<u64>, sum: f64| Point {
            attributes: Vec::new(),
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
    fn the_pods_that_served_requests_are_counted() {
        let mut store = SeriesStore::new(Duration::from_secs(10));
        let served = |pod: &str, t: i64, count: u64| Point {
            attributes: Vec::new(),
            entity: entity(pod),
            signal: signal::HTTP_SERVER_REQUEST_DURATION.into(),
            time: Timestamp::from_secs(t),
            start_time: Timestamp::EPOCH,
            value: PointValue::Histogram {
                count,
                sum: 0.01 * count as f64,
                bounds: vec![0.1],
                counts: vec![count, 0],
                cumulative: true,
            },
        };
        // Three pods report; `c` served nothing in the second step, and a point of another
        // signal from `d` is no request.
        store.ingest([served("a", 10, 5), served("b", 10, 5), served("c", 10, 5)]);
        store.ingest([
            served("a", 20, 9),
            served("b", 20, 6),
            served("c", 20, 5),
            counter("d", 20, 1.0),
        ]);
        let s = store.close(Timestamp::from_secs(20));
        assert_eq!(find(&s, signal::SERVING_PODS, Stat::Value), vec![(20, 2.0)]);
        assert_eq!(
            find(&s, signal::HTTP_SERVER_REQUEST_DURATION, Stat::Rate),
            vec![(20, 0.5)]
        );
    }

    #[test]
    fn attributes_keep_cumulative_series_apart_and_split_only_catalogued_ones() {
        let exits = |t: i64, kind: &str, command: &str, v: f64| Point {
            signal: signal::PROCESS_EXITS.into(),
            attributes: vec![
                ("exit.kind".into(), kind.into()),
                ("process.command".into(), command.into()),
            ],
            ..counter("a", t, v)
        };
        let mut store = SeriesStore::new(Duration::from_secs(10));
        store.ingest([
            exits(10, "error", "java", 5.0),
            exits(10, "error", "sh", 100.0),
            exits(10, "ok", "java", 1000.0),
        ]);
        store.ingest([
            exits(20, "error", "java", 7.0),
            exits(20, "error", "sh", 103.0),
            exits(20, "ok", "java", 1010.0),
        ]);
        let s = store.close(Timestamp::from_secs(20));
        // Per attribute set the deltas are 2, 3 and 10: summed over `process.command` only.
        let rate = |kind: &str| {
            find(
                &s,
                &format!("homeostat.process.exits{{exit.kind={kind}}}"),
                Stat::Rate,
            )
        };
        assert_eq!(rate("error"), vec![(20, 0.5)]);
        assert_eq!(rate("ok"), vec![(20, 1.0)]);
        assert_eq!(store.stats().stale, 0);
    }

    #[test]
    fn gauges_give_the_mean_and_the_max_over_pods() {
        let gauge = |pod: &str, v: f64| {
            let mut p = Point {
                signal: "g".into(),
                value: PointValue::Gauge(v),
                ..counter(pod, 10, 0.0)
            };
            p.entity.node = Some(format!("node-{pod}"));
            p
        };
        let mut store = SeriesStore::new(Duration::from_secs(10));
        store.ingest([gauge("a", 1.0), gauge("b", 5.0)]);
        let s = store.close(Timestamp::from_secs(10));
        assert_eq!(find(&s, "g", Stat::Value), vec![(10, 3.0)]);
        assert_eq!(find(&s, "g", Stat::Max), vec![(10, 5.0)]);
        let max = s
            .iter()
            .find(|s| s.stat == Stat::Max)
            .map(|s| s.node.as_deref());
        assert_eq!(max, Some(Some("node-b")), "the max says where it was");
    }

    #[test]
    fn the_run_queue_is_also_given_per_node() {
        let mut store = SeriesStore::new(Duration::from_secs(10));
        let rq = |pod: &str, node: &str, t: i64, fast: u64, slow: u64| {
            let mut e = entity(pod);
            e.node = Some(node.into());
            Point {
                attributes: Vec::new(),
                entity: e,
                signal: signal::RUNQUEUE_LATENCY.into(),
                time: Timestamp::from_secs(t),
                start_time: Timestamp::EPOCH,
                value: PointValue::Histogram {
                    count: fast + slow,
                    sum: 0.0,
                    bounds: vec![0.001, 0.01],
                    counts: vec![fast, 0, slow],
                    cumulative: true,
                },
            }
        };
        store.ingest([
            rq("a", "n1", 10, 100, 0),
            rq("b", "n2", 10, 100, 0),
            rq("a", "n1", 20, 200, 0),
            rq("b", "n2", 20, 200, 50),
        ]);
        let s = store.close(Timestamp::from_secs(20));
        let p99 = |node: Option<&str>| -> Vec<f64> {
            s.iter()
                .filter(|x| x.signal == signal::RUNQUEUE_LATENCY && x.stat == Stat::P99)
                .filter(|x| x.node.as_deref() == node)
                .map(|x| x.value)
                .collect()
        };
        assert_eq!(p99(Some("n2")), [0.01], "n2's slow third shows in full");
        assert!(p99(Some("n1"))[0] < 0.001, "{:?}", p99(Some("n1")));
        assert_eq!(p99(None), [0.01], "the workload's as before");
    }
}
