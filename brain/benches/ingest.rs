//! The brain's cost end to end on one thread, from OTLP protobuf bytes to scores: decode,
//! convert and fold each pod's export into the series store through the receivers' own path
//! ([`IngestContext::ingest`] into the store and the heard-from list, as `Brain::assemble`
//! wires them), then per step close the store and feed every workload's samples to its
//! [`WorkloadState`] (`observe`, then `assess`), in the engine's order. The engine's other
//! work (policies, the journal, the cluster, fitting the joint models off the scoring path)
//! and the network are left out.
//!
//! Beside it, a same-run baseline: prost decoding alone of the same bytes, so a reader sees
//! what share of the cost is the protocol. And the memory per tracked series: the heap the
//! store and the workload states hold once warm, counted by the allocator.
//!
//! `cargo bench -p homeostat-brain --bench ingest` prints the figures. Nothing is asserted: a
//! benchmark reports, it does not pass or fail.

use std::collections::{BTreeMap, HashSet};
use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use homeostat_brain::StoreSink;
use homeostat_brain::assess::WorkloadState;
use homeostat_brain::engine::EngineConfig;
use homeostat_brain::heard::{HeardSink, WorkloadsHeard};
use homeostat_brain::ingest::{IngestContext, Transport};
use homeostat_brain::store::SeriesStore;
use homeostat_core::{ManualClock, Stat, Timestamp, WorkloadRef, semconv, signal};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

mod common;

use common::live;

/// The scrape and evaluation step.
const STEP: Duration = Duration::from_secs(15);
/// Pods per workload.
const PODS: usize = 3;
/// Pods per node.
const PODS_PER_NODE: usize = 30;
/// Steps streamed before timing: the baselines' warm-up is 20 values, their window 120.
const WARMUP: usize = 200;
/// Timed windows, and steps in each; the figures are their medians.
const WINDOWS: usize = 7;
const WINDOW_STEPS: usize = 20;
/// A day in steps, for the load's daily cycle.
const DAY: f64 = 86_400.0 / 15.0;
/// When the stream starts (2023-11-14), in seconds.
const START: u64 = 1_700_000_000;

/// xorshift64: deterministic, and cheap next to what it feeds.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A cumulative explicit-bucket histogram of a shifted exponential (a fixed time plus a wait),
/// its counts kept fractional and sent rounded down.
struct Cumulative {
    bounds: Vec<f64>,
    counts: Vec<f64>,
    sum: f64,
}

impl Cumulative {
    fn new(bounds: Vec<f64>) -> Self {
        let counts = vec![0.0; bounds.len() + 1];
        Cumulative {
            bounds,
            counts,
            sum: 0.0,
        }
    }

    /// `n` more observations of `fixed` plus an exponential wait of mean `wait`.
    fn add(&mut self, n: f64, fixed: f64, wait: f64) {
        let mut below = 0.0;
        for (count, bound) in self.counts.iter_mut().zip(&self.bounds) {
            let cdf = if *bound <= fixed {
                0.0
            } else {
                1.0 - (-(bound - fixed) / wait).exp()
            };
            *count += n * (cdf - below);
            below = cdf;
        }
        if let Some(last) = self.counts.last_mut() {
            *last += n * (1.0 - below);
        }
        self.sum += n * (fixed + wait);
    }

    fn point(&self, start: u64, now: u64) -> HistogramDataPoint {
        let bucket_counts: Vec<u64> = self.counts.iter().map(|c| c.floor() as u64).collect();
        HistogramDataPoint {
            start_time_unix_nano: start,
            time_unix_nano: now,
            count: bucket_counts.iter().sum(),
            sum: Some(self.sum),
            bucket_counts,
            explicit_bounds: self.bounds.clone(),
            ..Default::default()
        }
    }
}

/// `n` bounds doubling from `first`, as the sensor's in-kernel histograms bucket delays.
fn log2_bounds(first: f64, n: u32) -> Vec<f64> {
    (0..n).map(|k| first * f64::from(1u32 << k)).collect()
}

/// One pod's cumulative signals, as its SDK and the node's sensor count them.
struct Pod {
    resource: Resource,
    /// Start of its cumulative series, nanoseconds.
    started: u64,
    /// Seconds into each step at which it exports.
    offset: u64,
    cpu_seconds: f64,
    requests: Cumulative,
    runqueue: Cumulative,
    connects: Cumulative,
    /// Exits by `exit.kind`: ok, error, signal.
    exits: [f64; 3],
    oom_kills: f64,
    retransmits: f64,
    resets: f64,
    working_set: f64,
}

/// A Deployment: its load per pod and latency, and when (if ever) it has an incident.
struct Workload {
    rate: f64,
    fixed: f64,
    wait: f64,
    incident: Option<std::ops::Range<usize>>,
    pods: Vec<Pod>,
}

fn attr(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn number(start: u64, now: u64, value: f64, attributes: Vec<KeyValue>) -> NumberDataPoint {
    NumberDataPoint {
        start_time_unix_nano: start,
        time_unix_nano: now,
        value: Some(number_data_point::Value::AsDouble(value)),
        attributes,
        ..Default::default()
    }
}

fn metric(name: &str, unit: &str, data: metric::Data) -> Metric {
    Metric {
        name: name.into(),
        unit: unit.into(),
        data: Some(data),
        ..Default::default()
    }
}

fn counter(name: &str, unit: &str, data_points: Vec<NumberDataPoint>) -> Metric {
    let sum = Sum {
        data_points,
        aggregation_temporality: AggregationTemporality::Cumulative as i32,
        is_monotonic: true,
    };
    metric(name, unit, metric::Data::Sum(sum))
}

fn histogram(name: &str, point: HistogramDataPoint) -> Metric {
    let h = Histogram {
        data_points: vec![point],
        aggregation_temporality: AggregationTemporality::Cumulative as i32,
    };
    metric(name, "s", metric::Data::Histogram(h))
}

fn gauge(name: &str, unit: &str, point: NumberDataPoint) -> Metric {
    let g = Gauge {
        data_points: vec![point],
    };
    metric(name, unit, metric::Data::Gauge(g))
}

/// One export's bytes, and how many data points it carries.
fn export(resource: &Resource, metrics: Vec<Metric>) -> (Vec<u8>, usize) {
    let req = ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource.clone()),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (req.encode_to_vec(), points(&req))
}

impl Pod {
    /// One step of work at `rate` requests per second, then its export at `now`.
    fn step(
        &mut self,
        w: &Workload,
        rate: f64,
        incident: bool,
        rng: &mut Rng,
        now: u64,
    ) -> (Vec<u8>, usize) {
        let secs = STEP.as_secs_f64();
        let requests = rate * secs * (0.9 + 0.2 * rng.uniform());
        let (wait, queued) = if incident {
            (w.wait * 5.0, 600e-6)
        } else {
            (w.wait, 30e-6)
        };
        self.requests.add(requests, w.fixed, wait);
        let cpu = secs * 0.02 + requests * 0.002;
        self.cpu_seconds += cpu;
        self.runqueue.add(cpu * 1_000.0, 2e-6, queued);
        self.connects.add(requests * 0.02, 2e-4, 3e-4);
        for (exits, p) in self.exits.iter_mut().zip([0.02, 0.002, 0.0005]) {
            *exits += f64::from(rng.uniform() < p);
        }
        self.oom_kills += f64::from(rng.uniform() < 0.0002);
        self.retransmits += (requests * 0.002 + rng.uniform()).floor();
        self.resets += (requests * 0.0005 + rng.uniform()).floor();
        self.working_set += 50_000.0 * (rng.uniform() - 0.5);
        let (start, point) = (self.started, |v| number(self.started, now, v, Vec::new()));
        let exits = ["ok", "error", "signal"]
            .into_iter()
            .zip(self.exits)
            .map(|(kind, v)| number(start, now, v, vec![attr(signal::EXIT_KIND, kind)]))
            .collect();
        let metrics = vec![
            counter(signal::CPU_TIME, "s", vec![point(self.cpu_seconds)]),
            histogram(signal::RUNQUEUE_LATENCY, self.runqueue.point(start, now)),
            histogram(
                signal::HTTP_SERVER_REQUEST_DURATION,
                self.requests.point(start, now),
            ),
            counter(signal::PROCESS_EXITS, "{process}", exits),
            counter(signal::OOM_KILLS, "{process}", vec![point(self.oom_kills)]),
            counter(
                signal::TCP_RETRANSMITS,
                "{segment}",
                vec![point(self.retransmits)],
            ),
            counter(signal::TCP_RESETS, "{connection}", vec![point(self.resets)]),
            histogram(signal::TCP_CONNECT_LATENCY, self.connects.point(start, now)),
            gauge(
                signal::K8S_POD_MEMORY_WORKING_SET,
                "By",
                point(self.working_set),
            ),
        ];
        export(&self.resource, metrics)
    }
}

/// Every pod of `workloads` Deployments, and a sensor on each node reporting its own cost.
struct Fleet {
    workloads: Vec<Workload>,
    sensors: Vec<Resource>,
    rng: Rng,
}

impl Fleet {
    fn new(workloads: usize) -> Self {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ workloads as u64);
        let nodes = (workloads * PODS).div_ceil(PODS_PER_NODE);
        let node = |i: usize| format!("node-{}", i % nodes);
        let started = START * 1_000_000_000;
        let workloads = (0..workloads)
            .map(|i| {
                let (namespace, name) = (format!("team-{}", i % 10), format!("svc-{i}"));
                let pods = (0..PODS)
                    .map(|p| {
                        let pod = format!("{name}-7d9f{i:x}-{p}");
                        Pod {
                            resource: Resource {
                                attributes: vec![
                                    attr(semconv::K8S_NAMESPACE_NAME, &namespace),
                                    attr(semconv::K8S_DEPLOYMENT_NAME, &name),
                                    attr(semconv::K8S_POD_NAME, &pod),
                                    attr(semconv::K8S_POD_UID, &format!("uid-{i}-{p}")),
                                    attr(semconv::K8S_CONTAINER_NAME, &name),
                                    attr(semconv::K8S_NODE_NAME, &node(i * PODS + p)),
                                    attr("service.name", &name),
                                ],
                                ..Default::default()
                            },
                            started,
                            offset: 1 + ((i * PODS + p) % 13) as u64,
                            cpu_seconds: 0.0,
                            requests: Cumulative::new(vec![
                                0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                                5.0, 7.5, 10.0,
                            ]),
                            runqueue: Cumulative::new(log2_bounds(1e-6, 21)),
                            connects: Cumulative::new(log2_bounds(1e-4, 17)),
                            exits: [0.0; 3],
                            oom_kills: 0.0,
                            retransmits: 0.0,
                            resets: 0.0,
                            working_set: 150e6 + 100e6 * rng.uniform(),
                        }
                    })
                    .collect();
                // One workload in ten has an incident once warm: latency and run queue rise.
                let incident = (i % 10 == 3).then(|| {
                    let at = WARMUP + (i * 37) % (WINDOWS * WINDOW_STEPS);
                    at..at + 12
                });
                Workload {
                    rate: 2.0 + 100.0 * rng.uniform(),
                    fixed: 0.005 + 0.02 * rng.uniform(),
                    wait: 0.01 + 0.04 * rng.uniform(),
                    incident,
                    pods,
                }
            })
            .collect();
        let sensors = (0..nodes)
            .map(|n| Resource {
                attributes: vec![
                    attr(semconv::K8S_NAMESPACE_NAME, "homeostat-system"),
                    attr(semconv::K8S_DAEMONSET_NAME, "homeostat-sensor"),
                    attr(semconv::K8S_POD_NAME, &format!("homeostat-sensor-{n}")),
                    attr(semconv::K8S_NODE_NAME, &node(n)),
                ],
                ..Default::default()
            })
            .collect();
        Fleet {
            workloads,
            sensors,
            rng,
        }
    }

    /// The exports of step `k`, one request per pod and per node's sensor, as bytes, and
    /// the data points they carry.
    fn step(&mut self, k: usize) -> (Vec<Vec<u8>>, usize) {
        let base = (START + k as u64 * STEP.as_secs()) * 1_000_000_000;
        let daily = 1.0 + 0.3 * (k as f64 * std::f64::consts::TAU / DAY).sin();
        let (mut out, mut points) = (Vec::new(), 0);
        let mut push = |(bytes, n)| {
            out.push(bytes);
            points += n;
        };
        for w in &mut self.workloads {
            let incident = w.incident.as_ref().is_some_and(|r| r.contains(&k));
            let mut pods = std::mem::take(&mut w.pods);
            for pod in &mut pods {
                let now = base + pod.offset * 1_000_000_000;
                push(pod.step(w, w.rate * daily, incident, &mut self.rng, now));
            }
            w.pods = pods;
        }
        for sensor in &self.sensors {
            let overhead = 0.003 + 0.002 * self.rng.uniform();
            let point = number(
                START * 1_000_000_000,
                base + 1_000_000_000,
                overhead,
                vec![],
            );
            let metrics = vec![gauge(signal::SENSOR_OVERHEAD, "1", point)];
            push(export(sensor, metrics));
        }
        (out, points)
    }
}

/// The brain's parts the bench drives, wired as `Brain::assemble` wires them.
struct Pipeline {
    clock: ManualClock,
    store: Arc<Mutex<SeriesStore>>,
    heard: Arc<WorkloadsHeard>,
    ingest: IngestContext,
    states: BTreeMap<WorkloadRef, WorkloadState>,
    config: EngineConfig,
}

/// What one step did.
#[derive(Default)]
struct Step {
    rejected: i64,
    samples: usize,
    scored: usize,
    anomalies: usize,
    /// Decode, convert and fold (into the store and the heard-from list), seconds.
    ingest: f64,
    /// Close, observe and assess, seconds.
    score: f64,
    /// The distinct series sampled: workload, signal, statistic, and the node for a node's
    /// share of the run-queue delay.
    series: HashSet<(WorkloadRef, String, Stat, Option<String>)>,
}

impl Pipeline {
    fn new() -> Self {
        let clock = ManualClock::new(Timestamp::from_secs(START as i64));
        let store = Arc::new(Mutex::new(SeriesStore::new(STEP)));
        let heard = Arc::new(WorkloadsHeard::default());
        let sink = HeardSink {
            inner: Arc::new(StoreSink {
                store: store.clone(),
                clock: Arc::new(clock.clone()),
            }),
            heard: heard.clone(),
        };
        let registry = prometheus::Registry::new();
        let ingest = match IngestContext::new(Arc::new(sink), &registry) {
            Ok(ingest) => ingest,
            Err(e) => panic!("ingest counters: {e}"),
        };
        Pipeline {
            clock,
            store,
            heard,
            ingest,
            states: BTreeMap::new(),
            config: EngineConfig::default(),
        }
    }

    /// Step `k`: its exports arrive by the step's end; the engine evaluates `lateness` after.
    fn step(&mut self, k: usize, exports: &[Vec<u8>], track: bool) -> Step {
        let end = Timestamp::from_secs((START + (k as u64 + 1) * STEP.as_secs()) as i64);
        let mut out = Step::default();
        self.clock.set(end);
        let started = Instant::now();
        for bytes in exports {
            let req = match ExportMetricsServiceRequest::decode(bytes.as_slice()) {
                Ok(req) => req,
                Err(e) => panic!("the bench's own export does not decode: {e}"),
            };
            let answer = self.ingest.ingest(Transport::Grpc, &req);
            out.rejected += answer.partial_success.map_or(0, |p| p.rejected_data_points);
        }
        let folded = Instant::now();
        let now = end + self.config.lateness;
        self.clock.set(now);
        let samples = self
            .store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .close(now - self.config.lateness);
        let mut steps: BTreeMap<WorkloadRef, Timestamp> = BTreeMap::new();
        for s in &samples {
            let state = self.states.entry(s.workload.clone()).or_insert_with(|| {
                WorkloadState::new(s.workload.clone(), STEP)
                    .with_change_allowance(self.config.change_allowance)
            });
            out.scored += usize::from(state.observe(s));
            let at = steps.entry(s.workload.clone()).or_insert(s.time);
            *at = (*at).max(s.time);
        }
        for (workload, at) in steps {
            if let Some(state) = self.states.get_mut(&workload) {
                out.anomalies += usize::from(state.assess(at).is_some());
            }
        }
        out.score = folded.elapsed().as_secs_f64();
        out.ingest = (folded - started).as_secs_f64();
        out.samples = samples.len();
        if track {
            out.series = samples
                .into_iter()
                .map(|s| {
                    let per_node = s.signal == signal::RUNQUEUE_LATENCY && s.stat == Stat::P99;
                    let node = s.node.filter(|_| per_node);
                    (s.workload, s.signal, s.stat, node)
                })
                .collect();
        }
        out
    }
}

/// The data points of a request.
fn points(req: &ExportMetricsServiceRequest) -> usize {
    req.resource_metrics
        .iter()
        .flat_map(|rm| &rm.scope_metrics)
        .flat_map(|sm| &sm.metrics)
        .map(|m| match &m.data {
            Some(metric::Data::Gauge(g)) => g.data_points.len(),
            Some(metric::Data::Sum(s)) => s.data_points.len(),
            Some(metric::Data::Histogram(h)) => h.data_points.len(),
            _ => 0,
        })
        .sum()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Streams `workloads` Deployments through warm-up and the timed windows, then prints.
fn run(workloads: usize) {
    let mut fleet = Fleet::new(workloads);
    let mut brain = Pipeline::new();
    for k in 0..WARMUP {
        let (exports, _) = fleet.step(k);
        brain.step(k, &exports, false);
    }
    // Per window: end-to-end seconds, decode-alone seconds, ingest-side seconds, and counts.
    let mut e2e_points = Vec::new();
    let mut e2e_samples = Vec::new();
    let mut e2e_scored = Vec::new();
    let mut decode_points = Vec::new();
    let mut decode_share = Vec::new();
    let mut ingest_share = Vec::new();
    let (mut anomalies, mut rejected, mut step_points, mut step_requests) = (0, 0, 0, 0);
    let mut series = HashSet::new();
    for window in 0..WINDOWS {
        let (mut total, mut decode, mut ingest) = (0.0, 0.0, 0.0);
        let (mut pts, mut samples, mut scored) = (0, 0, 0);
        for j in 0..WINDOW_STEPS {
            let k = WARMUP + window * WINDOW_STEPS + j;
            let (exports, points) = fleet.step(k);
            // The baseline first, over the very bytes the brain is about to read.
            let started = Instant::now();
            for bytes in &exports {
                black_box(ExportMetricsServiceRequest::decode(bytes.as_slice()).ok());
            }
            decode += started.elapsed().as_secs_f64();
            let last = window + 1 == WINDOWS && j + 1 == WINDOW_STEPS;
            let step = brain.step(k, &exports, last);
            total += step.ingest + step.score;
            ingest += step.ingest;
            pts += points;
            samples += step.samples;
            scored += step.scored;
            anomalies += step.anomalies;
            rejected += step.rejected;
            (step_points, step_requests) = (points, exports.len());
            if last {
                series = step.series;
            }
        }
        e2e_points.push(pts as f64 / total);
        e2e_samples.push(samples as f64 / total);
        e2e_scored.push(scored as f64 / total);
        decode_points.push(pts as f64 / decode);
        decode_share.push(decode / total);
        ingest_share.push(ingest / total);
    }
    let steps = WARMUP + WINDOWS * WINDOW_STEPS;
    let incident_steps: usize = fleet
        .workloads
        .iter()
        .filter_map(|w| w.incident.as_ref())
        .map(|r| r.clone().filter(|k| (WARMUP..steps).contains(k)).count())
        .sum();
    let wire_series = step_points;

    // What the store and the workload states hold: the heap freed when each is dropped.
    let Pipeline {
        clock,
        store,
        heard,
        ingest,
        states,
        ..
    } = brain;
    drop((ingest, clock));
    let before = live();
    drop(states);
    let states_bytes = before.saturating_sub(live());
    let before = live();
    drop(store);
    let store_bytes = before.saturating_sub(live());
    let before = live();
    drop(heard);
    let heard_bytes = before.saturating_sub(live());
    let held = states_bytes + store_bytes;

    println!(
        "end to end on one thread, {workloads} workloads x {PODS} pods: {step_requests} OTLP exports \
         ({step_points} data points) per 15 s step; median of {WINDOWS} windows of {WINDOW_STEPS} \
         steps after {WARMUP} warm-up steps"
    );
    println!(
        "  OTLP data points: {:>9.0} points/s end to end (prost decode alone: {:.0} points/s, {:.0}% of the end-to-end time)",
        median(e2e_points),
        median(decode_points),
        100.0 * median(decode_share)
    );
    println!(
        "  samples scored:   {:>9.0} samples/s per core end to end (homeostat_samples_scored_total); \
         {:.0} samples/s closed, observed and assessed in all",
        median(e2e_scored),
        median(e2e_samples)
    );
    println!(
        "  time: decode + convert + fold {:.0}%, close + observe + assess {:.0}%; anomalous workload-steps \
         {anomalies} (incident steps injected {incident_steps}); points rejected {rejected}",
        100.0 * median(ingest_share.clone()),
        100.0 * (1.0 - median(ingest_share))
    );
    println!(
        "  memory after {steps} steps: {:.0} bytes per tracked series: store {store_bytes} + workload \
         states {states_bytes} bytes over {} series (workload x signal x statistic, x node for a \
         node's run-queue delay)",
        held as f64 / series.len() as f64,
        series.len(),
    );
    println!(
        "    = {:.0} bytes per wire series (pod x metric x attributes: {wire_series}); the heard-from \
         list holds {heard_bytes} bytes more",
        held as f64 / wire_series as f64,
    );
}

fn main() {
    for workloads in [100, 1_000] {
        run(workloads);
    }
}
