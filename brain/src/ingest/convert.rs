//! OTLP metrics → [`Point`]s: decoding, Kubernetes identity, and per-point validation.
//!
//! Validation is per data point, because OTLP wants a readable request answered with
//! `partial_success` (how many points were dropped, and why) rather than refused: one bad
//! point must not cost an exporter the rest of its batch.

use homeostat_core::{Entity, Timestamp, WorkloadKind, WorkloadRef, semconv};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, DataPointFlags, HistogramDataPoint, Metric, NumberDataPoint, metric,
    number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use super::IngestError;
use crate::point::{Point, PointValue};

/// How many rejection messages are kept per request; the count is always exact.
pub const MAX_ERROR_EXAMPLES: usize = 5;

/// The outcome of converting one request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Converted {
    /// Points that passed validation, in request order.
    pub points: Vec<Point>,
    /// How many data points were rejected.
    pub rejected: u64,
    /// Why, for the first [`MAX_ERROR_EXAMPLES`] rejections (or groups of them).
    pub errors: Vec<String>,
}

impl Converted {
    /// The OTLP `error_message`: the count and a few examples, or `None` if nothing was
    /// rejected.
    pub fn error_message(&self) -> Option<String> {
        rejection_message(self.rejected, &self.errors, "data point(s)")
    }

    /// The OTLP answer: empty on full success, `partial_success` otherwise.
    pub fn response(&self) -> ExportMetricsServiceResponse {
        ExportMetricsServiceResponse {
            partial_success: self.error_message().map(|error_message| {
                ExportMetricsPartialSuccess {
                    rejected_data_points: i64::try_from(self.rejected).unwrap_or(i64::MAX),
                    error_message,
                }
            }),
        }
    }

    /// Counts `n` rejected points under one message (built only if it will be kept).
    fn reject(&mut self, n: usize, msg: impl FnOnce() -> String) {
        note_rejection(&mut self.rejected, &mut self.errors, n, msg);
    }
}

/// The OTLP `error_message` for `rejected` items of `what` with a few example `errors`.
pub(super) fn rejection_message(rejected: u64, errors: &[String], what: &str) -> Option<String> {
    if rejected == 0 {
        return None;
    }
    let mut msg = format!("{rejected} {what} rejected");
    if !errors.is_empty() {
        msg.push_str(": ");
        msg.push_str(&errors.join("; "));
    }
    Some(msg)
}

/// Counts `n` rejections under one message, kept while fewer than [`MAX_ERROR_EXAMPLES`] are.
pub(super) fn note_rejection(
    rejected: &mut u64,
    errors: &mut Vec<String>,
    n: usize,
    msg: impl FnOnce() -> String,
) {
    if n == 0 {
        return;
    }
    *rejected = rejected.saturating_add(n as u64);
    if errors.len() < MAX_ERROR_EXAMPLES {
        errors.push(msg());
    }
}

/// Reads an OTLP/gRPC or OTLP/HTTP binary body.
pub fn decode_protobuf(body: &[u8]) -> Result<ExportMetricsServiceRequest, IngestError> {
    Ok(ExportMetricsServiceRequest::decode(body)?)
}

/// Reads an OTLP/HTTP JSON body (hex trace ids, int64s as strings or numbers).
pub fn decode_json(body: &[u8]) -> Result<ExportMetricsServiceRequest, IngestError> {
    Ok(serde_json::from_slice(body)?)
}

/// Converts every gauge, sum and explicit histogram data point of a decoded request.
///
/// Infallible by design: a decodable request is a valid request, and whatever is wrong inside
/// it is reported per point in [`Converted::rejected`] / [`Converted::errors`]. A point is
/// rejected when its resource has no `k8s.namespace.name` or workload name, its time is 0
/// or out of range, its value is missing, NaN or infinite (or negative for a monotonic sum),
/// its temporality is unspecified (or delta for a non-monotonic sum, which is not a level),
/// its histogram has no sum, non-finite or non-increasing bounds, a bucket count that is not
/// bounds + 1 or buckets that do not add up to its count, or when it is an exponential
/// histogram or a summary. Points flagged "no recorded value" (staleness markers) are
/// skipped silently: they are not errors.
pub fn convert(req: &ExportMetricsServiceRequest) -> Converted {
    let mut out = Converted::default();
    for rm in &req.resource_metrics {
        let entity = entity_of(rm.resource.as_ref());
        for metric in rm.scope_metrics.iter().flat_map(|sm| &sm.metrics) {
            match &entity {
                Ok(entity) => convert_metric(metric, entity, &mut out),
                Err(why) => out.reject(point_count(metric), || {
                    format!("`{}`: resource {why}", metric.name)
                }),
            }
        }
    }
    out
}

/// The workload identity carried by a resource, or what is missing from it: a Kubernetes
/// workload, or a host's cgroup (`host.name` and `homeostat.cgroup.name`, from a sensor on a
/// plain host).
pub(super) fn entity_of(resource: Option<&Resource>) -> Result<Entity, String> {
    let attrs = resource
        .map(|r| r.attributes.as_slice())
        .unwrap_or_default();
    let get = |key: &str| string_attr(attrs, key);
    if get(semconv::K8S_NAMESPACE_NAME).is_none()
        && let (Some(host), Some(cgroup)) =
            (get(semconv::HOST_NAME), get(semconv::HOMEOSTAT_CGROUP_NAME))
    {
        return Ok(Entity {
            node: Some(host.to_owned()),
            ..Entity::workload(WorkloadRef::cgroup(host, cgroup))
        });
    }
    let namespace = get(semconv::K8S_NAMESPACE_NAME).ok_or_else(|| {
        format!(
            "has no {} (nor {} and {}){}",
            semconv::K8S_NAMESPACE_NAME,
            semconv::HOST_NAME,
            semconv::HOMEOSTAT_CGROUP_NAME,
            describe(attrs)
        )
    })?;
    let (kind, name) = [
        (WorkloadKind::Deployment, semconv::K8S_DEPLOYMENT_NAME),
        (WorkloadKind::StatefulSet, semconv::K8S_STATEFULSET_NAME),
        (WorkloadKind::DaemonSet, semconv::K8S_DAEMONSET_NAME),
    ]
    .into_iter()
    .find_map(|(kind, key)| get(key).map(|name| (kind, name)))
    .ok_or_else(|| {
        format!(
            "in namespace {namespace} has no {}, {} or {}{}",
            semconv::K8S_DEPLOYMENT_NAME,
            semconv::K8S_STATEFULSET_NAME,
            semconv::K8S_DAEMONSET_NAME,
            describe(attrs)
        )
    })?;
    Ok(Entity {
        workload: WorkloadRef {
            namespace: namespace.to_owned(),
            kind,
            name: name.to_owned(),
        },
        pod: get(semconv::K8S_POD_NAME).map(str::to_owned),
        pod_uid: get(semconv::K8S_POD_UID).map(str::to_owned),
        container: get(semconv::K8S_CONTAINER_NAME).map(str::to_owned),
        node: get(semconv::K8S_NODE_NAME).map(str::to_owned),
    })
}

/// A non-empty string attribute.
pub(super) fn string_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) if !s.is_empty() => Some(s.as_str()),
            _ => None,
        }
    })
}

/// A hint at which resource an anonymous one is, for error messages.
fn describe(attrs: &[KeyValue]) -> String {
    ["service.name", semconv::K8S_POD_NAME]
        .into_iter()
        .find_map(|key| string_attr(attrs, key).map(|v| format!(" ({key}={v})")))
        .unwrap_or_default()
}

fn point_count(metric: &Metric) -> usize {
    match &metric.data {
        None => 0,
        Some(metric::Data::Gauge(g)) => g.data_points.len(),
        Some(metric::Data::Sum(s)) => s.data_points.len(),
        Some(metric::Data::Histogram(h)) => h.data_points.len(),
        Some(metric::Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(metric::Data::Summary(s)) => s.data_points.len(),
    }
}

/// How a number data point becomes a [`PointValue`].
#[derive(Clone, Copy)]
enum NumberKind {
    Gauge,
    Counter { cumulative: bool },
}

fn convert_metric(metric: &Metric, entity: &Entity, out: &mut Converted) {
    let name = metric.name.as_str();
    let fail = |out: &mut Converted, n: usize, problem: &str| {
        out.reject(n, || {
            format!("`{name}` from {}: {problem}", entity.workload)
        });
    };
    match &metric.data {
        None => {}
        Some(metric::Data::Gauge(g)) => {
            for p in &g.data_points {
                let attrs = point_attributes(&p.attributes);
                push(out, entity, name, attrs, number_point(p, NumberKind::Gauge));
            }
        }
        Some(metric::Data::Sum(s)) => {
            let kind = match (s.is_monotonic, temporality(s.aggregation_temporality)) {
                (_, None) => {
                    return fail(out, s.data_points.len(), "unspecified temporality");
                }
                (true, Some(cumulative)) => NumberKind::Counter { cumulative },
                (false, Some(true)) => NumberKind::Gauge,
                (false, Some(false)) => {
                    return fail(out, s.data_points.len(), "non-monotonic delta sum");
                }
            };
            for p in &s.data_points {
                let attrs = point_attributes(&p.attributes);
                push(out, entity, name, attrs, number_point(p, kind));
            }
        }
        Some(metric::Data::Histogram(h)) => {
            let Some(cumulative) = temporality(h.aggregation_temporality) else {
                return fail(out, h.data_points.len(), "unspecified temporality");
            };
            for p in &h.data_points {
                let attrs = point_attributes(&p.attributes);
                push(out, entity, name, attrs, histogram_point(p, cumulative));
            }
        }
        Some(metric::Data::ExponentialHistogram(h)) => fail(
            out,
            h.data_points.len(),
            "exponential histograms are not supported",
        ),
        Some(metric::Data::Summary(s)) => {
            fail(out, s.data_points.len(), "summaries are not supported")
        }
    }
}

/// `Some(true)` for cumulative, `Some(false)` for delta, `None` if unspecified or unknown.
fn temporality(raw: i32) -> Option<bool> {
    match AggregationTemporality::try_from(raw).ok()? {
        AggregationTemporality::Cumulative => Some(true),
        AggregationTemporality::Delta => Some(false),
        AggregationTemporality::Unspecified => None,
    }
}

/// A converted point, a skipped one (`Ok(None)`), or why it was rejected.
type PointResult = Result<Option<(Timestamp, Timestamp, PointValue)>, String>;

/// A data point's string attributes, sorted by key; other value types do not name series.
fn point_attributes(attrs: &[KeyValue]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = attrs
        .iter()
        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(v) => Some((kv.key.clone(), v.clone())),
            _ => None,
        })
        .collect();
    out.sort_unstable();
    out
}

fn push(
    out: &mut Converted,
    entity: &Entity,
    signal: &str,
    attributes: Vec<(String, String)>,
    result: PointResult,
) {
    match result {
        Ok(Some((time, start_time, value))) => out.points.push(Point {
            entity: entity.clone(),
            signal: signal.to_owned(),
            attributes,
            time,
            start_time,
            value,
        }),
        Ok(None) => {}
        Err(problem) => out.reject(1, || {
            format!("`{signal}` from {}: {problem}", entity.workload)
        }),
    }
}

fn no_recorded_value(flags: u32) -> bool {
    flags & DataPointFlags::NoRecordedValueMask as u32 != 0
}

/// `time_unix_nano` and `start_time_unix_nano` as timestamps; the former must be set.
pub(super) fn times(time: u64, start: u64) -> Result<(Timestamp, Timestamp), String> {
    if time == 0 {
        return Err("time_unix_nano is 0".into());
    }
    let ts = |nanos: u64| {
        i64::try_from(nanos)
            .map(Timestamp::from_nanos)
            .map_err(|_| format!("time {nanos} out of range"))
    };
    Ok((ts(time)?, ts(start)?))
}

fn number_point(p: &NumberDataPoint, kind: NumberKind) -> PointResult {
    if no_recorded_value(p.flags) {
        return Ok(None);
    }
    let (time, start_time) = times(p.time_unix_nano, p.start_time_unix_nano)?;
    let v = match p.value {
        Some(number_data_point::Value::AsDouble(v)) => v,
        Some(number_data_point::Value::AsInt(v)) => v as f64,
        None => return Err("no value".into()),
    };
    if !v.is_finite() {
        return Err(format!("value is {v}"));
    }
    let value = match kind {
        NumberKind::Gauge => PointValue::Gauge(v),
        NumberKind::Counter { .. } if v < 0.0 => {
            return Err(format!("monotonic sum is negative ({v})"));
        }
        NumberKind::Counter { cumulative } => PointValue::Counter {
            value: v,
            cumulative,
        },
    };
    Ok(Some((time, start_time, value)))
}

fn histogram_point(p: &HistogramDataPoint, cumulative: bool) -> PointResult {
    if no_recorded_value(p.flags) {
        return Ok(None);
    }
    let (time, start_time) = times(p.time_unix_nano, p.start_time_unix_nano)?;
    let sum = p.sum.ok_or("histogram has no sum")?;
    if !sum.is_finite() {
        return Err(format!("histogram sum is {sum}"));
    }
    let bounds = &p.explicit_bounds;
    if bounds.iter().any(|b| !b.is_finite()) {
        return Err("histogram bounds are not finite".into());
    }
    if bounds.windows(2).any(|w| w[0] >= w[1]) {
        return Err("histogram bounds are not increasing".into());
    }
    let counts = &p.bucket_counts;
    // Both empty is a histogram without distribution (count and sum only), which OTLP allows.
    if !(counts.is_empty() && bounds.is_empty()) {
        if counts.len() != bounds.len() + 1 {
            return Err(format!(
                "{} bucket counts for {} bounds",
                counts.len(),
                bounds.len()
            ));
        }
        let total: u128 = counts.iter().map(|&c| u128::from(c)).sum();
        if total != u128::from(p.count) {
            return Err(format!("buckets add up to {total}, count is {}", p.count));
        }
    }
    let value = PointValue::Histogram {
        count: p.count,
        sum,
        bounds: bounds.clone(),
        counts: counts.clone(),
        cumulative,
    };
    Ok(Some((time, start_time, value)))
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use opentelemetry_proto::tonic::metrics::v1::{
        ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram, ResourceMetrics,
        ScopeMetrics, Sum, Summary, SummaryDataPoint,
    };

    use super::*;

    const T: u64 = 1_700_000_000_000_000_000;
    const CUMULATIVE: i32 = AggregationTemporality::Cumulative as i32;
    const DELTA: i32 = AggregationTemporality::Delta as i32;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    fn k8s_attrs() -> Vec<KeyValue> {
        vec![
            kv(semconv::K8S_NAMESPACE_NAME, "shop"),
            kv(semconv::K8S_DEPLOYMENT_NAME, "cart"),
            kv(semconv::K8S_POD_NAME, "cart-7d9f-abcde"),
            kv(semconv::K8S_POD_UID, "0f3a"),
            kv(semconv::K8S_CONTAINER_NAME, "app"),
            kv(semconv::K8S_NODE_NAME, "node-1"),
        ]
    }

    fn request(attrs: Vec<KeyValue>, metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: attrs,
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn metric(name: &str, data: metric::Data) -> Metric {
        Metric {
            name: name.into(),
            data: Some(data),
            ..Default::default()
        }
    }

    fn number(time: u64, v: number_data_point::Value) -> NumberDataPoint {
        NumberDataPoint {
            time_unix_nano: time,
            start_time_unix_nano: T - 10,
            value: Some(v),
            ..Default::default()
        }
    }

    fn gauge(v: f64) -> Metric {
        metric(
            "g",
            metric::Data::Gauge(Gauge {
                data_points: vec![number(T, number_data_point::Value::AsDouble(v))],
            }),
        )
    }

    fn sum(monotonic: bool, temporality: i32, v: number_data_point::Value) -> Metric {
        metric(
            "s",
            metric::Data::Sum(Sum {
                data_points: vec![number(T, v)],
                aggregation_temporality: temporality,
                is_monotonic: monotonic,
            }),
        )
    }

    fn hist(bounds: Vec<f64>, counts: Vec<u64>, count: u64, sum: Option<f64>) -> Metric {
        metric(
            "h",
            metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    time_unix_nano: T,
                    start_time_unix_nano: T - 10,
                    count,
                    sum,
                    bucket_counts: counts,
                    explicit_bounds: bounds,
                    ..Default::default()
                }],
                aggregation_temporality: DELTA,
            }),
        )
    }

    fn one(m: Metric) -> Converted {
        convert(&request(k8s_attrs(), vec![m]))
    }

    /// Asserts exactly one rejection whose message contains `needle`.
    fn rejected_with(c: &Converted, needle: &str) {
        assert!(c.points.is_empty(), "{c:?}");
        assert_eq!(c.rejected, 1, "{c:?}");
        assert!(
            c.errors[0].contains(needle),
            "{:?} lacks {needle:?}",
            c.errors
        );
    }

    #[test]
    fn maps_kubernetes_resource_attributes_to_the_entity() {
        let c = one(gauge(0.25));
        assert_eq!(c.rejected, 0);
        let p = &c.points[0];
        assert_eq!(p.entity.workload, WorkloadRef::deployment("shop", "cart"));
        assert_eq!(p.entity.pod.as_deref(), Some("cart-7d9f-abcde"));
        assert_eq!(p.entity.pod_uid.as_deref(), Some("0f3a"));
        assert_eq!(p.entity.container.as_deref(), Some("app"));
        assert_eq!(p.entity.node.as_deref(), Some("node-1"));
        assert_eq!(p.signal, "g");
        assert_eq!(p.time, Timestamp::from_nanos(T as i64));
        assert_eq!(p.start_time, Timestamp::from_nanos((T - 10) as i64));
        assert_eq!(p.value, PointValue::Gauge(0.25));
    }

    #[test]
    fn statefulset_and_daemonset_kinds_and_optional_pod_fields() {
        for (key, kind) in [
            (semconv::K8S_STATEFULSET_NAME, WorkloadKind::StatefulSet),
            (semconv::K8S_DAEMONSET_NAME, WorkloadKind::DaemonSet),
        ] {
            let attrs = vec![kv(semconv::K8S_NAMESPACE_NAME, "db"), kv(key, "pg")];
            let c = convert(&request(attrs, vec![gauge(1.0)]));
            let e = &c.points[0].entity;
            assert_eq!(e.workload.kind, kind);
            assert_eq!(e.workload.name, "pg");
            assert_eq!((e.pod.as_ref(), e.node.as_ref()), (None, None));
        }
    }

    #[test]
    fn a_host_cgroup_is_a_workload_of_its_host() {
        let attrs = vec![
            kv(semconv::HOST_NAME, "vm1"),
            kv(semconv::HOMEOSTAT_CGROUP_NAME, "nginx.service"),
        ];
        let c = convert(&request(attrs.clone(), vec![gauge(1.0)]));
        let e = &c.points[0].entity;
        assert_eq!(e.workload, WorkloadRef::cgroup("vm1", "nginx.service"));
        assert_eq!(e.node.as_deref(), Some("vm1"));
        // Kubernetes attributes win when both are there; the host alone names nothing.
        let both = [attrs.clone(), k8s_attrs()].concat();
        let c = convert(&request(both, vec![gauge(1.0)]));
        assert_eq!(
            c.points[0].entity.workload,
            WorkloadRef::deployment("shop", "cart")
        );
        let c = convert(&request(attrs[..1].to_vec(), vec![gauge(1.0)]));
        rejected_with(
            &c,
            "has no k8s.namespace.name (nor host.name and homeostat.cgroup.name)",
        );
    }

    #[test]
    fn string_data_point_attributes_are_kept_sorted_and_others_ignored() {
        let mut m = sum(true, CUMULATIVE, number_data_point::Value::AsInt(3));
        if let Some(metric::Data::Sum(s)) = m.data.as_mut() {
            s.data_points[0].attributes = vec![
                kv("exit.kind", "signal"),
                KeyValue {
                    key: "exit.code".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::IntValue(137)),
                    }),
                    ..Default::default()
                },
                kv("container.id", "abc"),
            ];
        }
        let c = one(m);
        assert_eq!(
            c.points[0].attributes,
            [
                ("container.id".to_owned(), "abc".to_owned()),
                ("exit.kind".to_owned(), "signal".to_owned())
            ]
        );
    }

    #[test]
    fn sums_become_counters_or_gauges_and_ints_are_read() {
        use number_data_point::Value::{AsDouble, AsInt};
        let c = one(sum(true, CUMULATIVE, AsInt(42)));
        let want = PointValue::Counter {
            value: 42.0,
            cumulative: true,
        };
        assert_eq!(c.points[0].value, want);
        let c = one(sum(true, DELTA, AsDouble(1.5)));
        let want = PointValue::Counter {
            value: 1.5,
            cumulative: false,
        };
        assert_eq!(c.points[0].value, want);
        let c = one(sum(false, CUMULATIVE, AsInt(-3)));
        assert_eq!(c.points[0].value, PointValue::Gauge(-3.0));
    }

    #[test]
    fn explicit_histograms_are_kept_whole() {
        let c = one(hist(vec![0.1, 1.0], vec![3, 2, 1], 6, Some(4.2)));
        let want = PointValue::Histogram {
            count: 6,
            sum: 4.2,
            bounds: vec![0.1, 1.0],
            counts: vec![3, 2, 1],
            cumulative: false,
        };
        assert_eq!(c.points[0].value, want);
        // Count and sum only, no distribution: allowed.
        assert_eq!(one(hist(vec![], vec![], 6, Some(4.2))).rejected, 0);
    }

    #[test]
    fn rejects_non_finite_values() {
        rejected_with(&one(gauge(f64::NAN)), "value is NaN");
        rejected_with(&one(gauge(f64::INFINITY)), "value is inf");
        rejected_with(&one(hist(vec![], vec![], 1, Some(f64::NAN))), "sum is NaN");
        rejected_with(
            &one(hist(vec![f64::INFINITY], vec![0, 1], 1, Some(1.0))),
            "finite",
        );
    }

    #[test]
    fn rejects_bad_histogram_shapes() {
        rejected_with(
            &one(hist(vec![1.0, 2.0], vec![1, 1], 2, Some(1.0))),
            "2 bucket counts for 2 bounds",
        );
        rejected_with(
            &one(hist(vec![2.0, 1.0], vec![1, 1, 1], 3, Some(1.0))),
            "not increasing",
        );
        rejected_with(
            &one(hist(vec![1.0, 1.0], vec![1, 1, 1], 3, Some(1.0))),
            "not increasing",
        );
        rejected_with(
            &one(hist(vec![1.0], vec![1, 1], 5, Some(1.0))),
            "add up to 2, count is 5",
        );
        rejected_with(&one(hist(vec![1.0], vec![1, 1], 2, None)), "no sum");
    }

    #[test]
    fn rejects_zero_time_and_missing_values() {
        let mut m = gauge(1.0);
        if let Some(metric::Data::Gauge(g)) = &mut m.data {
            g.data_points[0].time_unix_nano = 0;
        }
        rejected_with(&one(m), "time_unix_nano is 0");
        let mut m = gauge(1.0);
        if let Some(metric::Data::Gauge(g)) = &mut m.data {
            g.data_points[0].value = None;
        }
        rejected_with(&one(m), "no value");
        use number_data_point::Value::AsInt;
        rejected_with(&one(sum(true, CUMULATIVE, AsInt(-1))), "negative");
        rejected_with(&one(sum(true, 0, AsInt(1))), "unspecified temporality");
        rejected_with(&one(sum(false, DELTA, AsInt(1))), "non-monotonic delta");
    }

    #[test]
    fn rejects_resources_without_namespace_or_workload() {
        let attrs = vec![
            kv(semconv::K8S_DEPLOYMENT_NAME, "cart"),
            kv("service.name", "cart"),
        ];
        let c = convert(&request(attrs, vec![gauge(1.0), gauge(2.0)]));
        assert_eq!(c.rejected, 2);
        assert!(
            c.errors[0].contains(
                "no k8s.namespace.name (nor host.name and homeostat.cgroup.name) (service.name=cart)"
            ),
            "{c:?}"
        );
        let attrs = vec![kv(semconv::K8S_NAMESPACE_NAME, "shop")];
        let c = convert(&request(attrs, vec![gauge(1.0)]));
        rejected_with(&c, "in namespace shop has no k8s.deployment.name");
        rejected_with(
            &convert(&request(vec![], vec![gauge(1.0)])),
            "no k8s.namespace.name",
        );
    }

    #[test]
    fn rejects_exponential_histograms_and_summaries_per_point() {
        let m = metric(
            "eh",
            metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: vec![ExponentialHistogramDataPoint::default(); 2],
                aggregation_temporality: DELTA,
            }),
        );
        let c = one(m);
        assert_eq!((c.rejected, c.errors.len()), (2, 1));
        assert!(c.errors[0].contains("exponential histograms are not supported"));
        let m = metric(
            "sm",
            metric::Data::Summary(Summary {
                data_points: vec![SummaryDataPoint::default()],
            }),
        );
        rejected_with(&one(m), "summaries are not supported");
    }

    #[test]
    fn skips_points_without_recorded_value() {
        let mut m = gauge(f64::NAN);
        if let Some(metric::Data::Gauge(g)) = &mut m.data {
            g.data_points[0].flags = DataPointFlags::NoRecordedValueMask as u32;
        }
        assert_eq!(one(m), Converted::default());
    }

    #[test]
    fn empty_request_is_fine_and_messages_are_capped() {
        let c = convert(&ExportMetricsServiceRequest::default());
        assert_eq!(c, Converted::default());
        assert_eq!(c.response().partial_success, None);

        let bad: Vec<Metric> = (0..8).map(|_| gauge(f64::NAN)).collect();
        let c = convert(&request(k8s_attrs(), [bad, vec![gauge(1.0)]].concat()));
        assert_eq!((c.points.len(), c.rejected), (1, 8));
        assert_eq!(c.errors.len(), MAX_ERROR_EXAMPLES);
        let ps = c.response().partial_success.unwrap();
        assert_eq!(ps.rejected_data_points, 8);
        assert!(
            ps.error_message.starts_with(
                "8 data point(s) rejected: `g` from shop/Deployment/cart: value is NaN;"
            )
        );
    }

    #[test]
    fn decodes_otlp_json_with_string_int64s_and_hex_ids() {
        let json = r#"{"resourceMetrics":[{"resource":{"attributes":[
            {"key":"k8s.namespace.name","value":{"stringValue":"shop"}},
            {"key":"k8s.deployment.name","value":{"stringValue":"cart"}}]},
          "scopeMetrics":[{"metrics":[{"name":"homeostat.cpu.time","sum":{
            "aggregationTemporality":2,"isMonotonic":true,"dataPoints":[{
              "timeUnixNano":"1700000000000000000","startTimeUnixNano":"1699999990000000000",
              "asInt":"12",
              "exemplars":[{"timeUnixNano":"1700000000000000000","asDouble":1.0,
                "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}]}]}}]}]}]}"#;
        let req = decode_json(json.as_bytes()).unwrap();
        let Some(metric::Data::Sum(s)) = &req.resource_metrics[0].scope_metrics[0].metrics[0].data
        else {
            panic!("not a sum: {req:?}");
        };
        let exemplar = &s.data_points[0].exemplars[0];
        assert_eq!(exemplar.trace_id.len(), 16);
        assert_eq!(
            exemplar.span_id,
            [0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74]
        );
        let c = convert(&req);
        assert_eq!(c.rejected, 0, "{c:?}");
        assert_eq!(c.points[0].time, Timestamp::from_nanos(T as i64));
        let want = PointValue::Counter {
            value: 12.0,
            cumulative: true,
        };
        assert_eq!(c.points[0].value, want);
        assert!(decode_json(b"{\"resourceMetrics\": 3}").is_err());
        assert!(decode_protobuf(&[0x0a, 0x05, 0x01]).is_err());
    }
}
