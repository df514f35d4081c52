//! The receivers' Prometheus counters.

use prometheus::{IntCounterVec, Opts, Registry};

/// Which wire a request came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// OTLP/gRPC.
    Grpc,
    /// OTLP/HTTP, protobuf or JSON.
    Http,
}

impl Transport {
    /// The `transport` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Grpc => "grpc",
            Transport::Http => "http",
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

/// `homeostat_otlp_requests_total` and `homeostat_otlp_points_total`, registered in a
/// registry the caller owns (no globals, so tests and embedders each get their own).
#[derive(Clone, Debug)]
pub struct IngestStats {
    requests: IntCounterVec,
    points: IntCounterVec,
}

impl IngestStats {
    /// Creates the counters and registers them; fails if they already are.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "homeostat_otlp_requests_total",
                "OTLP metrics export requests received, by transport and result.",
            ),
            &["transport", "result"],
        )?;
        let points = IntCounterVec::new(
            Opts::new(
                "homeostat_otlp_points_total",
                "OTLP metric data points received, by result.",
            ),
            &["result"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(points.clone()))?;
        // Expose every series from the start, so rates and alerts see zeros, not gaps.
        for t in [Transport::Grpc, Transport::Http] {
            for r in [
                RequestResult::Ok,
                RequestResult::Partial,
                RequestResult::Invalid,
            ] {
                requests.with_label_values(&[t.as_str(), r.as_str()]);
            }
        }
        for r in ["accepted", "rejected"] {
            points.with_label_values(&[r]);
        }
        Ok(IngestStats { requests, points })
    }

    /// Counts one request.
    pub fn record_request(&self, transport: Transport, result: RequestResult) {
        self.requests
            .with_label_values(&[transport.as_str(), result.as_str()])
            .inc();
    }

    /// Counts the points of one readable request.
    pub fn record_points(&self, accepted: u64, rejected: u64) {
        self.points
            .with_label_values(&["accepted"])
            .inc_by(accepted);
        self.points
            .with_label_values(&["rejected"])
            .inc_by(rejected);
    }

    /// Requests seen so far with this transport and result.
    pub fn requests(&self, transport: Transport, result: RequestResult) -> u64 {
        self.requests
            .with_label_values(&[transport.as_str(), result.as_str()])
            .get()
    }

    /// Points seen so far: `(accepted, rejected)`.
    pub fn points(&self) -> (u64, u64) {
        (
            self.points.with_label_values(&["accepted"]).get(),
            self.points.with_label_values(&["rejected"]).get(),
        )
    }
}
