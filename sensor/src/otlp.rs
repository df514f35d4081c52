//! Snapshots as OTLP: metrics, one resource per pod or container (the Kubernetes attributes
//! the brain keys workloads by), delta sums for counters, explicit-bucket delta histograms
//! for latencies with the kernel's power-of-two bounds; and each crash or OOM kill as a log
//! record (an event, by `event_name`) under the same resource.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use homeostat_core::{semconv, signal};

use crate::cgroup::Owner;
use crate::histogram::{Log2Histogram, SLOTS};
use crate::snapshot::{Event, EventKind, Reading, Snapshot, Value};

/// Resource attributes (`k8s.namespace.name`, `k8s.deployment.name`, `k8s.pod.uid`, …) of
/// an owner, or `None` to leave its readings out (a systemd unit is no workload).
pub type ResourceOf<'a> = dyn FnMut(&Owner) -> Option<Vec<(String, String)>> + 'a;

type Attributes = Vec<(String, String)>;
type BySignal<'a> = BTreeMap<&'a str, Vec<&'a Reading>>;

/// The namespace and DaemonSet the sensor runs as, unless told otherwise: the brain sees the
/// sensor's own cost as the workload `homeostat-system/homeostat-sensor`.
pub const SENSOR_NAMESPACE: &str = "homeostat-system";
/// See [`SENSOR_NAMESPACE`].
pub const SENSOR_DAEMONSET: &str = "homeostat-sensor";

/// The sensor's own resource attributes, for `homeostat.sensor.overhead`.
pub fn sensor_resource(namespace: &str, pod: &str, node: &str) -> Vec<(String, String)> {
    vec![
        (semconv::K8S_NAMESPACE_NAME.into(), namespace.into()),
        (semconv::K8S_DAEMONSET_NAME.into(), SENSOR_DAEMONSET.into()),
        (semconv::K8S_POD_NAME.into(), pod.into()),
        (semconv::K8S_NODE_NAME.into(), node.into()),
    ]
}

/// An OTLP export request for `snapshot`, whose interval ended at `end_unix_nano`; with
/// `sensor` (the sensor's own resource, [`sensor_resource`]) it also carries the probes' cost
/// as the gauge `homeostat.sensor.overhead`.
pub fn export_request(
    snapshot: &Snapshot,
    end_unix_nano: u64,
    resource_of: &mut ResourceOf<'_>,
    sensor: Option<&[(String, String)]>,
) -> ExportMetricsServiceRequest {
    let start = end_unix_nano.saturating_sub(snapshot.interval.as_nanos() as u64);
    // Group readings by resource, and within it by signal, so each metric appears once.
    let mut by_resource: BTreeMap<Attributes, BySignal<'_>> = BTreeMap::new();
    for r in &snapshot.readings {
        let Some(mut attrs) = resource_of(&r.owner) else {
            continue;
        };
        attrs.sort();
        by_resource
            .entry(attrs)
            .or_default()
            .entry(r.signal)
            .or_default()
            .push(r);
    }
    let resource_metrics = by_resource
        .into_iter()
        .map(|(attrs, signals)| ResourceMetrics {
            resource: Some(Resource {
                attributes: attrs.iter().map(|(k, v)| kv(k, v)).collect(),
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: scope(),
                metrics: signals
                    .into_iter()
                    .map(|(name, readings)| metric(name, &readings, start, end_unix_nano))
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect::<Vec<_>>();
    let mut resource_metrics = resource_metrics;
    if let (Some(attrs), Some(overhead)) = (sensor, snapshot.overhead) {
        resource_metrics.push(overhead_metrics(attrs, overhead, end_unix_nano));
    }
    ExportMetricsServiceRequest { resource_metrics }
}

/// An OTLP logs export request with one record per event, observed at `observed_unix_nano`,
/// under the resource `resource_of` names for its cgroup's owner (events of owners it cannot
/// name are left out, as their readings are). Empty when there is nothing to send.
pub fn logs_request(
    events: &[Event],
    observed_unix_nano: u64,
    resource_of: &mut ResourceOf<'_>,
) -> ExportLogsServiceRequest {
    let mut by_resource: BTreeMap<Attributes, Vec<LogRecord>> = BTreeMap::new();
    for e in events {
        let Some(mut attrs) = resource_of(&e.owner) else {
            continue;
        };
        attrs.sort();
        by_resource
            .entry(attrs)
            .or_default()
            .push(log_record(e, observed_unix_nano));
    }
    ExportLogsServiceRequest {
        resource_logs: by_resource
            .into_iter()
            .map(|(attrs, log_records)| ResourceLogs {
                resource: Some(Resource {
                    attributes: attrs.iter().map(|(k, v)| kv(k, v)).collect(),
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: scope(),
                    log_records,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
}

/// One event as a log record: `homeostat.process.crash` (WARN for an error status, ERROR for
/// a signal) or `homeostat.memory.oom_kill` (ERROR), with the OpenTelemetry process
/// attributes and a one-line body.
fn log_record(e: &Event, observed_unix_nano: u64) -> LogRecord {
    let int = |key: &str, v: i64| KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(v)),
        }),
        ..Default::default()
    };
    let mut attributes = vec![
        int(semconv::PROCESS_PID, i64::from(e.pid)),
        kv(semconv::PROCESS_EXECUTABLE_NAME, &e.comm),
    ];
    if let Some(path) = &e.path {
        attributes.push(kv(semconv::PROCESS_LINUX_CGROUP, &format!("0::{path}")));
    }
    let (name, severity) = match e.kind {
        EventKind::ExitError { status } => {
            attributes.push(int(semconv::PROCESS_EXIT_CODE, i64::from(status)));
            (signal::PROCESS_CRASH_EVENT, SeverityNumber::Warn)
        }
        EventKind::Signal {
            signal: number,
            core_dumped,
        } => {
            attributes.push(int(semconv::HOMEOSTAT_PROCESS_SIGNAL, i64::from(number)));
            attributes.push(KeyValue {
                key: semconv::HOMEOSTAT_PROCESS_CORE_DUMPED.to_owned(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::BoolValue(core_dumped)),
                }),
                ..Default::default()
            });
            (signal::PROCESS_CRASH_EVENT, SeverityNumber::Error)
        }
        EventKind::OomKilled => (signal::OOM_KILL_EVENT, SeverityNumber::Error),
    };
    let severity_text = match severity {
        SeverityNumber::Warn => "WARN",
        _ => "ERROR",
    };
    LogRecord {
        time_unix_nano: e.unix_nanos,
        observed_time_unix_nano: observed_unix_nano,
        severity_number: severity as i32,
        severity_text: severity_text.to_owned(),
        event_name: name.to_owned(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(e.describe())),
        }),
        attributes,
        ..Default::default()
    }
}

fn scope() -> Option<InstrumentationScope> {
    Some(InstrumentationScope {
        name: "homeostat-sensor".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    })
}

/// `homeostat.sensor.overhead`: a gauge, fraction of one CPU, under the sensor's resource.
fn overhead_metrics(attrs: &[(String, String)], overhead: f64, end: u64) -> ResourceMetrics {
    let mut attrs = attrs.to_vec();
    attrs.sort();
    ResourceMetrics {
        resource: Some(Resource {
            attributes: attrs.iter().map(|(k, v)| kv(k, v)).collect(),
            ..Default::default()
        }),
        scope_metrics: vec![ScopeMetrics {
            scope: scope(),
            metrics: vec![Metric {
                name: signal::SENSOR_OVERHEAD.into(),
                unit: "1".into(),
                description: "CPU used by the sensor's eBPF programs, fraction of one CPU".into(),
                data: Some(metric::Data::Gauge(Gauge {
                    data_points: vec![NumberDataPoint {
                        time_unix_nano: end,
                        value: Some(number_data_point::Value::AsDouble(overhead)),
                        ..Default::default()
                    }],
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

fn point_attributes(r: &Reading) -> Vec<KeyValue> {
    r.attribute.iter().map(|(k, v)| kv(k, v)).collect()
}

fn metric(name: &str, readings: &[&Reading], start: u64, end: u64) -> Metric {
    let unit = match name {
        signal::CPU_TIME
        | signal::RUNQUEUE_LATENCY
        | signal::TCP_CONNECT_LATENCY
        | signal::BLOCK_IO_LATENCY => "s",
        _ => "1",
    };
    let delta = AggregationTemporality::Delta as i32;
    let data = if readings
        .iter()
        .any(|r| matches!(r.value, Value::Latencies(_)))
    {
        metric::Data::Histogram(Histogram {
            aggregation_temporality: delta,
            data_points: readings
                .iter()
                .filter_map(|r| match &r.value {
                    Value::Latencies(h) => {
                        Some(histogram_point(h, point_attributes(r), start, end))
                    }
                    Value::Increase(_) => None,
                })
                .collect(),
        })
    } else {
        metric::Data::Sum(Sum {
            aggregation_temporality: delta,
            is_monotonic: true,
            data_points: readings
                .iter()
                .filter_map(|r| match r.value {
                    Value::Increase(v) => Some(NumberDataPoint {
                        attributes: point_attributes(r),
                        start_time_unix_nano: start,
                        time_unix_nano: end,
                        value: Some(number_data_point::Value::AsDouble(v)),
                        ..Default::default()
                    }),
                    Value::Latencies(_) => None,
                })
                .collect(),
        })
    };
    Metric {
        name: name.to_owned(),
        unit: unit.to_owned(),
        data: Some(data),
        ..Default::default()
    }
}

/// The kernel's buckets as OTLP explicit bounds: slot `i` is `[2^i, 2^(i+1))` ns, so the
/// upper bounds are `2^1 … 2^(SLOTS-1)` ns, in seconds, and the last bucket is open.
pub fn explicit_bounds() -> Vec<f64> {
    (1..SLOTS).map(|i| (1u64 << i) as f64 / 1e9).collect()
}

fn histogram_point(
    h: &Log2Histogram,
    attributes: Vec<KeyValue>,
    start: u64,
    end: u64,
) -> HistogramDataPoint {
    let bucket_counts = h.slots.to_vec();
    HistogramDataPoint {
        attributes,
        start_time_unix_nano: start,
        time_unix_nano: end,
        count: bucket_counts.iter().sum(),
        sum: Some(h.sum_ns as f64 / 1e9),
        bucket_counts,
        explicit_bounds: explicit_bounds(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn crashes_and_oom_kills_become_log_records_under_their_pod() {
        let pod = Owner::Pod {
            uid: "u1".into(),
            qos: "burstable",
            container_id: Some("c1".into()),
        };
        let event = |owner: &Owner, pid, kind| Event {
            cgroup_id: 9,
            path: Some("/kubepods.slice/x.scope".into()),
            owner: owner.clone(),
            unix_nanos: 1_000,
            pid,
            comm: "java".into(),
            kind,
        };
        let events = [
            event(&pod, 1, EventKind::ExitError { status: 3 }),
            event(
                &pod,
                2,
                EventKind::Signal {
                    signal: 9,
                    core_dumped: false,
                },
            ),
            event(&pod, 3, EventKind::OomKilled),
            event(&Owner::Unit("cron.service".into()), 4, EventKind::OomKilled),
        ];
        let mut pods = |o: &Owner| match o {
            Owner::Pod { uid, .. } => Some(vec![("k8s.pod.uid".into(), uid.clone())]),
            _ => None,
        };
        let req = logs_request(&events, 2_000, &mut pods);
        assert_eq!(req.resource_logs.len(), 1, "the unit is left out");
        let records = &req.resource_logs[0].scope_logs[0].log_records;
        assert_eq!(records.len(), 3);
        let attr = |r: &LogRecord, key: &str| {
            r.attributes
                .iter()
                .find(|a| a.key == key)
                .and_then(|a| a.value.clone()?.value)
        };
        let int = |v: i64| Some(any_value::Value::IntValue(v));
        let [exit, killed, oom] = [&records[0], &records[1], &records[2]];
        assert_eq!(exit.event_name, "homeostat.process.crash");
        assert_eq!(
            (exit.time_unix_nano, exit.observed_time_unix_nano),
            (1_000, 2_000)
        );
        assert_eq!(attr(exit, "process.exit.code"), int(3));
        assert_eq!(attr(exit, "process.pid"), int(1));
        assert_eq!(
            attr(exit, "process.executable.name"),
            Some(any_value::Value::StringValue("java".into()))
        );
        assert_eq!(
            attr(exit, "process.linux.cgroup"),
            Some(any_value::Value::StringValue(
                "0::/kubepods.slice/x.scope".into()
            ))
        );
        assert_eq!(exit.severity_text, "WARN");
        assert_eq!(attr(killed, "homeostat.process.signal"), int(9));
        assert_eq!(attr(killed, "process.exit.code"), None);
        assert_eq!(killed.severity_number, SeverityNumber::Error as i32);
        assert_eq!(oom.event_name, "homeostat.memory.oom_kill");
        assert_eq!(
            oom.body.clone().and_then(|b| b.value),
            Some(any_value::Value::StringValue(
                "java (pid 3) killed by the OOM killer".into()
            ))
        );
        assert!(logs_request(&[], 2_000, &mut pods).resource_logs.is_empty());
    }

    #[test]
    fn readings_become_sums_and_histograms_per_resource() {
        let pod = Owner::Pod {
            uid: "u1".into(),
            qos: "burstable",
            container_id: Some("c1".into()),
        };
        let mut h = Log2Histogram::default();
        h.slots[10] = 4;
        h.count = 4;
        h.sum_ns = 4 * 1500;
        let reading = |signal, attribute, value| Reading {
            cgroup_id: 1,
            path: None,
            owner: pod.clone(),
            signal,
            attribute,
            value,
        };
        let snap = Snapshot {
            interval: Duration::from_secs(1),
            readings: vec![
                reading(
                    signal::PROCESS_EXITS,
                    Some((signal::EXIT_KIND, "ok")),
                    Value::Increase(3.0),
                ),
                reading(
                    signal::PROCESS_EXITS,
                    Some((signal::EXIT_KIND, "signal")),
                    Value::Increase(1.0),
                ),
                reading(
                    signal::RUNQUEUE_LATENCY,
                    None,
                    Value::Latencies(Box::new(h)),
                ),
                Reading {
                    owner: Owner::Unit("sshd.service".into()),
                    ..reading(signal::CPU_TIME, None, Value::Increase(0.5))
                },
            ],
            overhead: Some(0.004),
            ..Default::default()
        };
        let mut pods = |o: &Owner| match o {
            Owner::Pod { uid, .. } => Some(vec![("k8s.pod.uid".into(), uid.clone())]),
            _ => None,
        };
        let req = export_request(&snap, 2_000_000_000, &mut pods, None);
        assert_eq!(req.resource_metrics.len(), 1, "the unit is left out");
        let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
        assert_eq!(metrics.len(), 2);
        let Some(metric::Data::Sum(exits)) = &metrics[0].data else {
            panic!("{metrics:?}")
        };
        assert_eq!(exits.data_points.len(), 2);
        assert_eq!(exits.data_points[0].start_time_unix_nano, 1_000_000_000);
        let Some(metric::Data::Histogram(runq)) = &metrics[1].data else {
            panic!()
        };
        let p = &runq.data_points[0];
        assert_eq!(p.bucket_counts.len(), p.explicit_bounds.len() + 1);
        assert_eq!((p.count, p.sum), (4, Some(6e-6)));

        // With the sensor's own resource, its overhead comes along as a gauge.
        let me = sensor_resource(SENSOR_NAMESPACE, "homeostat-sensor-x7k2p", "node-1");
        let req = export_request(&snap, 2_000_000_000, &mut pods, Some(&me));
        assert_eq!(req.resource_metrics.len(), 2);
        let own = &req.resource_metrics[1];
        let attrs: Vec<_> = own.resource.as_ref().unwrap().attributes.iter().collect();
        assert!(attrs.iter().any(|a| a.key == "k8s.daemonset.name"));
        let m = &own.scope_metrics[0].metrics[0];
        assert_eq!(m.name, signal::SENSOR_OVERHEAD);
        let Some(metric::Data::Gauge(g)) = &m.data else {
            panic!("{m:?}")
        };
        assert_eq!(
            g.data_points[0].value,
            Some(number_data_point::Value::AsDouble(0.004))
        );
    }
}
