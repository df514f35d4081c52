//! A discrete event as it arrives (an OTLP log record: a crash, an OOM kill), before the
//! brain keeps it with its workload.

use std::collections::BTreeMap;

use homeostat_core::{Entity, Timestamp};
use serde::Serialize;

/// One OTLP log record, reduced to what the brain keeps.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogEvent {
    /// Who it is about (from the OTLP resource attributes).
    pub entity: Entity,
    /// When it happened (`time_unix_nano`, or else when it was observed).
    pub time: Timestamp,
    /// When the sender observed it (`observed_time_unix_nano`), if it said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_time: Option<Timestamp>,
    /// The event's name (`event_name`, e.g. `homeostat.process.crash`); none for a plain log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The severity text, or else the name of the severity number (`ERROR`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<String>,
    /// The body: a string as sent, anything else as JSON text; at most [`MAX_BODY_CHARS`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The record's attributes (`process.pid`, `process.exit.code`, …) as JSON values.
    pub attributes: BTreeMap<String, serde_json::Value>,
}

/// Longest body kept, in characters; a longer one is cut and ends in `…`.
pub const MAX_BODY_CHARS: usize = 4096;

/// Where the receivers hand the log records they accepted.
pub trait EventSink: Send + Sync + 'static {
    /// Takes records that passed validation.
    fn accept(&self, events: Vec<LogEvent>);
}
