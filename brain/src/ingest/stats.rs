//! The receivers' Prometheus counters.

use prometheus::{IntCounterVec, Opts, Registry};

/// Which wire a request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP, protobuf or JSON.
    Http,
    /// No wire: a source in the brain's own process (the sensor of `homeostat brain --local`).
    InProcess,
}

impl Transport {
    /// Every transport.
    pub const ALL: [Transport; 3] = [Transport::Grpc, Transport::Http, Transport::InProcess];

    /// The `transport` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::Http => "http",
            Transport::InProcess => "in-process",
        }
    }
}

/// Which kind of OpenTelemetry data a request carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OtlpSignal {
    /// `MetricsService/Export`, `/v1/metrics`.
    Metrics,
    /// `LogsService/Export`, `/v1/logs`.
    Logs,
}

impl OtlpSignal {
    /// The `signal` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            OtlpSignal::Metrics => "metrics",
            OtlpSignal::Logs => "logs",
        }
    }
}

/// How a request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestResult {
    /// Every point accepted.
    Ok,
    /// Readable, but some points rejected (answered with `partial_success`).
    Partial,
    /// Refused whole: undecodable, too large, or of an unsupported content type.
    Invalid,
}

impl RequestResult {
    /// The `result` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestResult::Ok => "ok",
            RequestResult::Partial => "partial",
            RequestResult::Invalid => "invalid",
        }
    }
}

/// `homeostat_otlp_requests_total`, `homeostat_otlp_points_total` and
/// `homeostat_otlp_log_records_total`, registered in a registry the caller owns (no globals,
/// so tests and embedders each get their own).
#[derive(Clone, Debug)]
pub struct IngestStats {
    requests: IntCounterVec,
    points: IntCounterVec,
    log_records: IntCounterVec,
}

impl IngestStats {
    /// Creates the counters and registers them; fails if they already are.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "homeostat_otlp_requests_total",
                "OTLP export requests received, by signal (metrics, logs), transport and result.",
            ),
            &["signal", "transport", "result"],
        )?;
        let points = IntCounterVec::new(
            Opts::new(
                "homeostat_otlp_points_total",
                "OTLP metric data points received, by result.",
            ),
            &["result"],
        )?;
        let log_records = IntCounterVec::new(
            Opts::new(
                "homeostat_otlp_log_records_total",
                "OTLP log records received, by result.",
            ),
            &["result"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(points.clone()))?;
        registry.register(Box::new(log_records.clone()))?;
        // Expose every series from the start, so rates and alerts see zeros, not gaps.
        for s in [OtlpSignal::Metrics, OtlpSignal::Logs] {
            for t in Transport::ALL {
                for r in [
                    RequestResult::Ok,
                    RequestResult::Partial,
                    RequestResult::Invalid,
                ] {
                    requests.with_label_values(&[s.as_str(), t.as_str(), r.as_str()]);
                }
            }
        }
        for r in ["accepted", "rejected"] {
            points.with_label_values(&[r]);
            log_records.with_label_values(&[r]);
        }
        Ok(IngestStats {
            requests,
            points,
            log_records,
        })
    }

    /// Counts one request.
    pub fn record_request(&self, signal: OtlpSignal, transport: Transport, result: RequestResult) {
        self.requests
            .with_label_values(&[signal.as_str(), transport.as_str(), result.as_str()])
            .inc();
    }

    /// Counts the data points of one readable metrics request.
    pub fn record_points(&self, accepted: u64, rejected: u64) {
        record(&self.points, accepted, rejected);
    }

    /// Counts the log records of one readable logs request.
    pub fn record_log_records(&self, accepted: u64, rejected: u64) {
        record(&self.log_records, accepted, rejected);
    }

    /// Requests of `signal` seen so far with this transport and result.
    pub fn requests(&self, signal: OtlpSignal, transport: Transport, result: RequestResult) -> u64 {
        self.requests
            .with_label_values(&[signal.as_str(), transport.as_str(), result.as_str()])
            .get()
    }

    /// Metric data points seen so far: `(accepted, rejected)`.
    pub fn points(&self) -> (u64, u64) {
        totals(&self.points)
    }

    /// Log records seen so far: `(accepted, rejected)`.
    pub fn log_records(&self) -> (u64, u64) {
        totals(&self.log_records)
    }
}

fn record(counter: &IntCounterVec, accepted: u64, rejected: u64) {
    counter.with_label_values(&["accepted"]).inc_by(accepted);
    counter.with_label_values(&["rejected"]).inc_by(rejected);
}

fn totals(counter: &IntCounterVec) -> (u64, u64) {
    (
        counter.with_label_values(&["accepted"]).get(),
        counter.with_label_values(&["rejected"]).get(),
    )
}
