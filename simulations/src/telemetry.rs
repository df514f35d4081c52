//! The simulated pods' signals as OTLP: what an OpenTelemetry SDK in the application and
//! homeostat's node sensor would send, with the Kubernetes resource attributes.

use homeostat_core::{Timestamp, semconv, signal};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::model::workload::latency_cdf;

/// Bucket bounds the OpenTelemetry HTTP semantic conventions recommend for request duration.
pub const REQUEST_BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Log2 bounds from 1 µs to about 1 s, as the sensor's in-kernel histograms bucket delays.
pub fn runqueue_bounds() -> Vec<f64> {
    (0..21).map(|k| 1e-6 * f64::from(1u32 << k)).collect()
}

/// A cumulative explicit-bucket histogram kept as fractional counts, reported rounded down.
#[derive(Clone, Debug)]
pub struct CumulativeHistogram {
    bounds: Vec<f64>,
    counts: Vec<f64>,
    sum: f64,
}

impl CumulativeHistogram {
    /// An empty histogram over `bounds`.
    pub fn new(bounds: Vec<f64>) -> Self {
        let n = bounds.len() + 1;
        CumulativeHistogram {
            bounds,
            counts: vec![0.0; n],
            sum: 0.0,
        }
    }

    /// Adds `n` observations distributed as a fixed time `s` plus an exponential of mean `w`.
    pub fn add_shifted_exponential(&mut self, n: f64, s: f64, w: f64) {
        if n <= 0.0 {
            return;
        }
        let mut below = 0.0;
        for (i, b) in self.bounds.iter().enumerate() {
            let f = latency_cdf(*b, s, w);
            self.counts[i] += n * (f - below);
            below = f;
        }
        if let Some(last) = self.counts.last_mut() {
            *last += n * (1.0 - below);
        }
        self.sum += n * (s + w);
    }

    /// Observations so far (fractional, as accumulated).
    pub fn count(&self) -> f64 {
        self.counts.iter().sum()
    }

    /// Sum of the observations so far.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Observations above `bound` so far (those in buckets whose lower bound is at least it).
    pub fn count_above(&self, bound: f64) -> f64 {
        self.bounds
            .iter()
            .zip(&self.counts[1..])
            .filter(|(b, _)| **b >= bound)
            .map(|(_, c)| c)
            .sum()
    }

    fn point(&self, start: Timestamp, now: Timestamp) -> HistogramDataPoint {
        let bucket_counts: Vec<u64> = self.counts.iter().map(|c| c.floor() as u64).collect();
        HistogramDataPoint {
            start_time_unix_nano: nanos(start),
            time_unix_nano: nanos(now),
            count: bucket_counts.iter().sum(),
            sum: Some(self.sum),
            bucket_counts,
            explicit_bounds: self.bounds.clone(),
            ..Default::default()
        }
    }
}

/// Log2 bounds from 100 µs to about 6.5 s: a connect within the cluster takes under a
/// millisecond, one whose SYN was lost a second more.
pub fn connect_bounds() -> Vec<f64> {
    (0..17).map(|k| 1e-4 * f64::from(1u32 << k)).collect()
}

/// How a process ended, the `exit.kind` attribute of `homeostat.process.exits`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    /// Exit code 0.
    Ok = 0,
    /// A non-zero exit code.
    Error = 1,
    /// Killed by a signal (the OOM killer's SIGKILL among them).
    Signal = 2,
}

impl ExitKind {
    /// Every kind, in the order data points are sent.
    pub const ALL: [ExitKind; 3] = [ExitKind::Ok, ExitKind::Error, ExitKind::Signal];

    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            ExitKind::Ok => "ok",
            ExitKind::Error => "error",
            ExitKind::Signal => "signal",
        }
    }
}

/// One pod's cumulative signals: every counter of the catalogue from the pod's start, zero
/// while nothing happens, so the series exist in quiet times too.
#[derive(Clone, Debug)]
pub struct PodSignals {
    /// CPU seconds used.
    pub cpu_seconds: f64,
    /// Request durations.
    pub requests: CumulativeHistogram,
    /// Run-queue delays.
    pub runqueue: CumulativeHistogram,
    /// Process exits by [`ExitKind`].
    pub exits: [f64; 3],
    /// OOM kills.
    pub oom_kills: f64,
    /// TCP segments retransmitted.
    pub retransmits: f64,
    /// TCP resets.
    pub resets: f64,
    /// Outbound TCP connect latencies.
    pub connects: CumulativeHistogram,
    /// Working set now, bytes (a gauge).
    pub working_set_bytes: f64,
}

impl Default for PodSignals {
    fn default() -> Self {
        PodSignals {
            cpu_seconds: 0.0,
            requests: CumulativeHistogram::new(REQUEST_BOUNDS.to_vec()),
            runqueue: CumulativeHistogram::new(runqueue_bounds()),
            exits: [0.0; 3],
            oom_kills: 0.0,
            retransmits: 0.0,
            resets: 0.0,
            connects: CumulativeHistogram::new(connect_bounds()),
            working_set_bytes: 0.0,
        }
    }
}

impl PodSignals {
    /// Counts one process exit of `kind`.
    pub fn exit(&mut self, kind: ExitKind) {
        self.exits[kind as usize] += 1.0;
    }
}

/// Who a pod is, for its resource attributes.
#[derive(Clone, Debug)]
pub struct PodIdentity<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// Deployment.
    pub deployment: &'a str,
    /// Pod name.
    pub pod: &'a str,
    /// Pod UID.
    pub uid: &'a str,
    /// Node.
    pub node: &'a str,
    /// When the pod started: the cumulative series' start time.
    pub started: Timestamp,
}

fn nanos(t: Timestamp) -> u64 {
    u64::try_from(t.as_nanos()).unwrap_or(0)
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

fn number(
    start: Timestamp,
    now: Timestamp,
    value: f64,
    attributes: Vec<KeyValue>,
) -> NumberDataPoint {
    NumberDataPoint {
        start_time_unix_nano: nanos(start),
        time_unix_nano: nanos(now),
        value: Some(number_data_point::Value::AsDouble(value)),
        attributes,
        ..Default::default()
    }
}

/// A cumulative monotonic sum.
fn counter(name: &str, description: &str, unit: &str, data_points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        description: description.into(),
        unit: unit.into(),
        data: Some(metric::Data::Sum(Sum {
            data_points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    }
}

fn gauge(name: &str, description: &str, unit: &str, point: NumberDataPoint) -> Metric {
    Metric {
        name: name.into(),
        description: description.into(),
        unit: unit.into(),
        data: Some(metric::Data::Gauge(Gauge {
            data_points: vec![point],
        })),
        ..Default::default()
    }
}

fn scope(metrics: Vec<Metric>) -> Vec<ScopeMetrics> {
    vec![ScopeMetrics {
        scope: Some(InstrumentationScope {
            name: "homeostat-simulations".into(),
            ..Default::default()
        }),
        metrics,
        ..Default::default()
    }]
}

/// The OTLP resource metrics of one pod at `now`.
pub fn pod_metrics(id: &PodIdentity<'_>, s: &PodSignals, now: Timestamp) -> ResourceMetrics {
    let cumulative = AggregationTemporality::Cumulative as i32;
    let point = |value: f64| number(id.started, now, value, Vec::new());
    // One point per kind, zero while it has not happened, so every series exists from the
    // start (a detector warms up on the quiet before the first crash). The brain keeps the
    // kinds apart by the `exit.kind` attribute.
    let exits: Vec<NumberDataPoint> = ExitKind::ALL
        .into_iter()
        .map(|k| {
            number(
                id.started,
                now,
                s.exits[k as usize],
                vec![attr(signal::EXIT_KIND, k.as_str())],
            )
        })
        .collect();
    let histogram = |name: &str, description: &str, h: &CumulativeHistogram| Metric {
        name: name.into(),
        description: description.into(),
        unit: "s".into(),
        data: Some(metric::Data::Histogram(Histogram {
            data_points: vec![h.point(id.started, now)],
            aggregation_temporality: cumulative,
        })),
        ..Default::default()
    };
    let cpu = Metric {
        name: signal::CPU_TIME.into(),
        description: "CPU time used by the pod's processes.".into(),
        unit: "s".into(),
        data: Some(metric::Data::Sum(Sum {
            data_points: vec![NumberDataPoint {
                start_time_unix_nano: nanos(id.started),
                time_unix_nano: nanos(now),
                value: Some(number_data_point::Value::AsDouble(s.cpu_seconds)),
                ..Default::default()
            }],
            aggregation_temporality: cumulative,
            is_monotonic: true,
        })),
        ..Default::default()
    };
    ResourceMetrics {
        resource: Some(Resource {
            attributes: vec![
                attr(semconv::K8S_NAMESPACE_NAME, id.namespace),
                attr(semconv::K8S_DEPLOYMENT_NAME, id.deployment),
                attr(semconv::K8S_POD_NAME, id.pod),
                attr(semconv::K8S_POD_UID, id.uid),
                attr(semconv::K8S_CONTAINER_NAME, id.deployment),
                attr(semconv::K8S_NODE_NAME, id.node),
                attr("service.name", id.deployment),
            ],
            ..Default::default()
        }),
        scope_metrics: scope(vec![
            cpu,
            histogram(
                signal::RUNQUEUE_LATENCY,
                "Time runnable threads waited for a CPU.",
                &s.runqueue,
            ),
            histogram(
                signal::HTTP_SERVER_REQUEST_DURATION,
                "Duration of HTTP server requests.",
                &s.requests,
            ),
            counter(
                signal::PROCESS_EXITS,
                "Processes of the pod that exited, by how.",
                "{process}",
                exits,
            ),
            counter(
                signal::OOM_KILLS,
                "Processes of the pod the OOM killer ended.",
                "{process}",
                vec![point(s.oom_kills)],
            ),
            counter(
                signal::TCP_RETRANSMITS,
                "TCP segments the pod retransmitted.",
                "{segment}",
                vec![point(s.retransmits)],
            ),
            counter(
                signal::TCP_RESETS,
                "TCP connections of the pod reset.",
                "{connection}",
                vec![point(s.resets)],
            ),
            histogram(
                signal::TCP_CONNECT_LATENCY,
                "Time the pod's outbound TCP connects took.",
                &s.connects,
            ),
            gauge(
                signal::K8S_POD_MEMORY_WORKING_SET,
                "The pod's working set memory.",
                "By",
                number(id.started, now, s.working_set_bytes, Vec::new()),
            ),
        ]),
        ..Default::default()
    }
}

/// The namespace and DaemonSet homeostat's node sensor runs as.
pub const SENSOR_NAMESPACE: &str = "homeostat-system";
/// The sensor's DaemonSet and `service.name`.
pub const SENSOR_NAME: &str = "homeostat-sensor";

/// The OTLP resource metrics of a node's homeostat sensor at `now`: what the sensor costs,
/// as a fraction of a CPU.
pub fn sensor_metrics(
    node: &str,
    overhead: f64,
    started: Timestamp,
    now: Timestamp,
) -> ResourceMetrics {
    let pod = format!("{SENSOR_NAME}-{node}");
    ResourceMetrics {
        resource: Some(Resource {
            attributes: vec![
                attr(semconv::K8S_NAMESPACE_NAME, SENSOR_NAMESPACE),
                attr(semconv::K8S_DAEMONSET_NAME, SENSOR_NAME),
                attr(semconv::K8S_POD_NAME, &pod),
                attr(semconv::K8S_CONTAINER_NAME, "sensor"),
                attr(semconv::K8S_NODE_NAME, node),
                attr("service.name", SENSOR_NAME),
            ],
            ..Default::default()
        }),
        scope_metrics: scope(vec![gauge(
            signal::SENSOR_OVERHEAD,
            "CPU the sensor's own programs use, fraction of a CPU.",
            "1",
            number(started, now, overhead, Vec::new()),
        )]),
        ..Default::default()
    }
}

/// One export request for many pods.
pub fn request(resource_metrics: Vec<ResourceMetrics>) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest { resource_metrics }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_follow_the_distribution_and_stay_consistent() {
        let mut h = CumulativeHistogram::new(REQUEST_BOUNDS.to_vec());
        h.add_shifted_exponential(1000.0, 0.02, 0.03);
        let p = h.point(Timestamp::EPOCH, Timestamp::from_secs(1));
        assert_eq!(p.count, p.bucket_counts.iter().sum::<u64>());
        assert!(
            p.count >= 995,
            "rounding loses at most one per bucket: {}",
            p.count
        );
        assert_eq!(
            p.bucket_counts[..2],
            [0, 0],
            "nothing faster than the service time"
        );
        assert!((p.sum.unwrap_or_default() - 50.0).abs() < 1e-9);
    }

    fn exit_points(s: &PodSignals) -> Vec<(String, f64)> {
        let id = PodIdentity {
            namespace: "shop",
            deployment: "web",
            pod: "web-1",
            uid: "u1",
            node: "n1",
            started: Timestamp::from_secs(1),
        };
        let rm = pod_metrics(&id, s, Timestamp::from_secs(2));
        let m = rm.scope_metrics[0]
            .metrics
            .iter()
            .find(|m| m.name == signal::PROCESS_EXITS)
            .cloned();
        let Some(metric::Data::Sum(sum)) = m.and_then(|m| m.data) else {
            return Vec::new();
        };
        sum.data_points
            .iter()
            .map(|p| {
                let kind = match p.attributes[0].value.as_ref().and_then(|v| v.value.clone()) {
                    Some(any_value::Value::StringValue(k)) => k,
                    _ => String::new(),
                };
                let v = match p.value {
                    Some(number_data_point::Value::AsDouble(v)) => v,
                    _ => f64::NAN,
                };
                (kind, v)
            })
            .collect()
    }

    #[test]
    fn exits_are_counted_by_kind_each_kind_a_series_from_the_start() {
        let mut s = PodSignals::default();
        let kinds = |ok: f64, error: f64, signal: f64| {
            vec![
                ("ok".to_owned(), ok),
                ("error".to_owned(), error),
                ("signal".to_owned(), signal),
            ]
        };
        assert_eq!(exit_points(&s), kinds(0.0, 0.0, 0.0));
        s.exit(ExitKind::Error);
        s.exit(ExitKind::Error);
        assert_eq!(exit_points(&s), kinds(0.0, 2.0, 0.0));
        s.exit(ExitKind::Signal);
        assert_eq!(exit_points(&s), kinds(0.0, 2.0, 1.0));
    }

    #[test]
    fn a_pod_carries_the_kubernetes_resource_attributes() {
        let id = PodIdentity {
            namespace: "shop",
            deployment: "web",
            pod: "web-1",
            uid: "u1",
            node: "n1",
            started: Timestamp::from_secs(1),
        };
        let rm = pod_metrics(&id, &PodSignals::default(), Timestamp::from_secs(2));
        let keys: Vec<&str> = rm
            .resource
            .as_ref()
            .map(|r| r.attributes.iter().map(|a| a.key.as_str()).collect())
            .unwrap_or_default();
        for k in [
            semconv::K8S_NAMESPACE_NAME,
            semconv::K8S_DEPLOYMENT_NAME,
            semconv::K8S_POD_NAME,
            semconv::K8S_POD_UID,
            semconv::K8S_NODE_NAME,
        ] {
            assert!(keys.contains(&k), "{k} missing");
        }
        let names: Vec<&str> = rm.scope_metrics[0]
            .metrics
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        for name in [
            signal::CPU_TIME,
            signal::RUNQUEUE_LATENCY,
            signal::PROCESS_EXITS,
            signal::OOM_KILLS,
            signal::TCP_RETRANSMITS,
            signal::TCP_RESETS,
            signal::TCP_CONNECT_LATENCY,
            signal::K8S_POD_MEMORY_WORKING_SET,
            signal::HTTP_SERVER_REQUEST_DURATION,
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
    }
}
