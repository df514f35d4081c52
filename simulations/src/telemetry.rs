//! The simulated pods' signals as OTLP: what an OpenTelemetry SDK in the application and
//! homeostat's node sensor would send, with the Kubernetes resource attributes.

use homeostat_core::{Timestamp, semconv, signal};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
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

/// One pod's cumulative signals.
#[derive(Clone, Debug)]
pub struct PodSignals {
    /// CPU seconds used.
    pub cpu_seconds: f64,
    /// Request durations.
    pub requests: CumulativeHistogram,
    /// Run-queue delays.
    pub runqueue: CumulativeHistogram,
}

impl Default for PodSignals {
    fn default() -> Self {
        PodSignals {
            cpu_seconds: 0.0,
            requests: CumulativeHistogram::new(REQUEST_BOUNDS.to_vec()),
            runqueue: CumulativeHistogram::new(runqueue_bounds()),
        }
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

/// The OTLP resource metrics of one pod at `now`.
pub fn pod_metrics(id: &PodIdentity<'_>, s: &PodSignals, now: Timestamp) -> ResourceMetrics {
    let cumulative = AggregationTemporality::Cumulative as i32;
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
        scope_metrics: vec![ScopeMetrics {
            scope: Some(InstrumentationScope {
                name: "homeostat-simulations".into(),
                ..Default::default()
            }),
            metrics: vec![
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
            ],
            ..Default::default()
        }],
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
        assert_eq!(rm.scope_metrics[0].metrics.len(), 3);
    }
}
