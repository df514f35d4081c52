//! OTLP logs → [`LogEvent`]s: the Kubernetes (or host cgroup) identity of each record's
//! resource, its time, name, severity, body and attributes.
//!
//! As with metrics, a readable request is answered with `partial_success` for the records it
//! could not take (no workload identity, no time), never refused whole.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use homeostat_core::Entity;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, SeverityNumber};
use serde_json::Value;

use super::convert::{entity_of, note_rejection, rejection_message, string_attr, times};
use crate::event::{LogEvent, MAX_BODY_CHARS};

/// The outcome of converting one logs request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConvertedLogs {
    /// Records that passed validation, in request order.
    pub events: Vec<LogEvent>,
    /// How many records were rejected.
    pub rejected: u64,
    /// Why, for the first [`MAX_ERROR_EXAMPLES`](super::MAX_ERROR_EXAMPLES) rejections.
    pub errors: Vec<String>,
}

impl ConvertedLogs {
    /// The OTLP answer: empty on full success, `partial_success` otherwise.
    pub fn response(&self) -> ExportLogsServiceResponse {
        ExportLogsServiceResponse {
            partial_success: rejection_message(self.rejected, &self.errors, "log record(s)").map(
                |error_message| ExportLogsPartialSuccess {
                    rejected_log_records: i64::try_from(self.rejected).unwrap_or(i64::MAX),
                    error_message,
                },
            ),
        }
    }
}

/// Converts every log record of a decoded request. A record is rejected when its resource has
/// no workload identity (see [`convert`](super::convert)) or it has neither `time_unix_nano`
/// nor `observed_time_unix_nano` (or one out of range).
pub fn convert_logs(req: &ExportLogsServiceRequest) -> ConvertedLogs {
    let mut out = ConvertedLogs::default();
    for rl in &req.resource_logs {
        let entity = entity_of(rl.resource.as_ref());
        for sl in &rl.scope_logs {
            let entity = match &entity {
                Ok(entity) => entity,
                Err(why) => {
                    note_rejection(
                        &mut out.rejected,
                        &mut out.errors,
                        sl.log_records.len(),
                        || format!("log records: resource {why}"),
                    );
                    continue;
                }
            };
            for record in &sl.log_records {
                match log_event(record, entity) {
                    Ok(event) => out.events.push(event),
                    Err(why) => note_rejection(&mut out.rejected, &mut out.errors, 1, || {
                        let name = if record.event_name.is_empty() {
                            "log record"
                        } else {
                            &record.event_name
                        };
                        format!("`{name}` from {}: {why}", entity.workload)
                    }),
                }
            }
        }
    }
    out
}

fn log_event(record: &LogRecord, entity: &Entity) -> Result<LogEvent, String> {
    let (at, observed) = (record.time_unix_nano, record.observed_time_unix_nano);
    if at == 0 && observed == 0 {
        return Err("time_unix_nano and observed_time_unix_nano are 0".into());
    }
    let (time, observed_time) = times(if at != 0 { at } else { observed }, observed)?;
    let name = Some(record.event_name.as_str())
        .filter(|n| !n.is_empty())
        .or_else(|| string_attr(&record.attributes, "event.name"))
        .map(str::to_owned);
    let severity = Some(record.severity_text.clone())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            SeverityNumber::try_from(record.severity_number)
                .ok()
                .filter(|n| *n != SeverityNumber::Unspecified)
                .map(|n| {
                    let name = n.as_str_name();
                    name.strip_prefix("SEVERITY_NUMBER_")
                        .unwrap_or(name)
                        .to_owned()
                })
        });
    let body = record.body.as_ref().map(|b| match &b.value {
        Some(any_value::Value::StringValue(s)) => truncate(s),
        _ => truncate(&json(Some(b)).to_string()),
    });
    let attributes: BTreeMap<String, Value> = record
        .attributes
        .iter()
        .map(|kv| (kv.key.clone(), json(kv.value.as_ref())))
        .collect();
    Ok(LogEvent {
        entity: entity.clone(),
        time,
        observed_time: (observed != 0).then_some(observed_time),
        name,
        severity,
        body,
        attributes,
    })
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(MAX_BODY_CHARS) {
        Some((end, _)) => format!("{}…", &s[..end]),
        None => s.to_owned(),
    }
}

/// An OTLP value as JSON: bytes as hex, a non-finite double as null.
fn json(value: Option<&AnyValue>) -> Value {
    match value.and_then(|v| v.value.as_ref()) {
        None | Some(any_value::Value::StringValueStrindex(_)) => Value::Null,
        Some(any_value::Value::StringValue(s)) => Value::from(s.as_str()),
        Some(any_value::Value::BoolValue(b)) => Value::from(*b),
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number)
        }
        Some(any_value::Value::ArrayValue(a)) => {
            Value::Array(a.values.iter().map(|v| json(Some(v))).collect())
        }
        Some(any_value::Value::KvlistValue(kvs)) => Value::Object(
            kvs.values
                .iter()
                .map(|kv| (kv.key.clone(), json(kv.value.as_ref())))
                .collect(),
        ),
        Some(any_value::Value::BytesValue(bytes)) => {
            Value::from(bytes.iter().fold(String::new(), |mut hex, b| {
                let _ = write!(hex, "{b:02x}");
                hex
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use homeostat_core::{Timestamp, WorkloadRef, semconv};
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValue};
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    const T: u64 = 1_700_000_000_000_000_000;

    fn kv(key: &str, value: any_value::Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    fn s(v: &str) -> any_value::Value {
        any_value::Value::StringValue(v.into())
    }

    fn request(resource: Vec<KeyValue>, records: Vec<LogRecord>) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: resource,
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn pod() -> Vec<KeyValue> {
        vec![
            kv(semconv::K8S_NAMESPACE_NAME, s("shop")),
            kv(semconv::K8S_DEPLOYMENT_NAME, s("cart")),
            kv(semconv::K8S_POD_NAME, s("cart-1")),
        ]
    }

    #[test]
    fn a_crash_record_keeps_its_workload_name_severity_body_and_attributes() {
        let record = LogRecord {
            time_unix_nano: T,
            observed_time_unix_nano: T + 5,
            severity_number: SeverityNumber::Error as i32,
            event_name: "homeostat.process.crash".into(),
            body: Some(AnyValue {
                value: Some(s("sh (pid 7) exited with status 3")),
            }),
            attributes: vec![
                kv("process.pid", any_value::Value::IntValue(7)),
                kv("process.exit.code", any_value::Value::IntValue(3)),
                kv(
                    "homeostat.process.core_dumped",
                    any_value::Value::BoolValue(false),
                ),
                kv(
                    "tags",
                    any_value::Value::ArrayValue(ArrayValue {
                        values: vec![AnyValue {
                            value: Some(any_value::Value::DoubleValue(0.5)),
                        }],
                    }),
                ),
                kv("raw", any_value::Value::BytesValue(vec![0xde, 0xad])),
            ],
            ..Default::default()
        };
        let c = convert_logs(&request(pod(), vec![record]));
        assert_eq!((c.rejected, c.events.len()), (0, 1));
        let e = &c.events[0];
        assert_eq!(e.entity.workload, WorkloadRef::deployment("shop", "cart"));
        assert_eq!(e.entity.pod.as_deref(), Some("cart-1"));
        assert_eq!(e.time, Timestamp::from_nanos(T as i64));
        assert_eq!(e.observed_time, Some(Timestamp::from_nanos(T as i64 + 5)));
        assert_eq!(e.name.as_deref(), Some("homeostat.process.crash"));
        assert_eq!(e.severity.as_deref(), Some("ERROR"));
        assert_eq!(e.body.as_deref(), Some("sh (pid 7) exited with status 3"));
        assert_eq!(e.attributes["process.exit.code"], 3);
        assert_eq!(e.attributes["homeostat.process.core_dumped"], false);
        assert_eq!(e.attributes["tags"], serde_json::json!([0.5]));
        assert_eq!(e.attributes["raw"], "dead");
        assert_eq!(c.response().partial_success, None);
    }

    #[test]
    fn records_without_identity_or_time_are_rejected_with_reasons() {
        let timed = LogRecord {
            observed_time_unix_nano: T,
            ..Default::default()
        };
        let untimed = LogRecord::default();
        let c = convert_logs(&request(pod(), vec![timed.clone(), untimed]));
        assert_eq!(c.events.len(), 1);
        // Only the observed time: that is the time.
        assert_eq!(c.events[0].time, Timestamp::from_nanos(T as i64));
        assert_eq!(c.rejected, 1);
        assert!(
            c.errors[0].contains("time_unix_nano and observed_time_unix_nano are 0"),
            "{:?}",
            c.errors
        );
        let c = convert_logs(&request(
            vec![kv("service.name", s("checkout"))],
            vec![timed.clone(), timed],
        ));
        assert_eq!(c.rejected, 2);
        let partial = c.response().partial_success.expect("partial success");
        assert_eq!(partial.rejected_log_records, 2);
        assert!(
            partial
                .error_message
                .contains("has no k8s.namespace.name (nor host.name and homeostat.cgroup.name) (service.name=checkout)"),
            "{}",
            partial.error_message
        );
    }

    #[test]
    fn a_long_body_is_cut() {
        let record = LogRecord {
            time_unix_nano: T,
            body: Some(AnyValue {
                value: Some(s(&"é".repeat(MAX_BODY_CHARS + 10))),
            }),
            ..Default::default()
        };
        let c = convert_logs(&request(pod(), vec![record]));
        let body = c.events[0].body.as_deref().unwrap();
        assert_eq!(body.chars().count(), MAX_BODY_CHARS + 1);
        assert!(body.ends_with('…'));
    }
}
