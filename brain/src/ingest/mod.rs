//! OTLP receivers (gRPC and HTTP) for metrics and logs.
//!
//! Anything that speaks OTLP with the Kubernetes resource attributes can feed the brain
//! (DESIGN.md, "Signals"): the sensor, the simulator, an OpenTelemetry Collector. Both
//! transports decode, then share one path per signal ([`IngestContext::ingest`] for metrics,
//! [`IngestContext::ingest_logs`] for logs): convert, hand the accepted
//! [`Point`](crate::point::Point)s to the [`PointSink`] (or the
//! [`LogEvent`](crate::event::LogEvent)s to the [`EventSink`]), count, and answer with
//! `partial_success` when some were rejected. Only an unreadable request is refused whole.
//!
//! The functions take listeners, not addresses; the conventional ports are 4317 (gRPC) and
//! 4318 (HTTP).

mod convert;
mod error;
mod grpc;
mod http;
mod logs;
mod service;
mod stats;

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prometheus::Registry;
use tokio::net::TcpListener;

pub use convert::{Converted, MAX_ERROR_EXAMPLES, convert, decode_json, decode_protobuf};
pub use error::IngestError;
pub use grpc::{GrpcReceiver, LogsServer, MetricsServer, OtlpServer};
pub use http::{EXPORT_PATH as HTTP_EXPORT_PATH, MAX_BODY_BYTES, RpcStatus, http_router};
pub use logs::{ConvertedLogs, convert_logs};
pub use service::{LogsExport, MetricsExport, OtlpExport};
pub use stats::{IngestStats, OtlpSignal, RequestResult, Transport};

use crate::event::EventSink;
use crate::point::PointSink;

/// What both receivers share: where accepted points and log records go, and the counters.
#[derive(Clone)]
pub struct IngestContext {
    sink: Arc<dyn PointSink>,
    events: Option<Arc<dyn EventSink>>,
    stats: IngestStats,
}

impl fmt::Debug for IngestContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IngestContext")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl IngestContext {
    /// A context feeding `sink`, with its counters registered in `registry`.
    pub fn new(sink: Arc<dyn PointSink>, registry: &Registry) -> Result<Self, IngestError> {
        Ok(IngestContext {
            sink,
            events: None,
            stats: IngestStats::register(registry)?,
        })
    }

    /// The same, handing accepted log records to `events`; without, they are counted and
    /// dropped.
    pub fn with_events(self, events: Arc<dyn EventSink>) -> Self {
        IngestContext {
            events: Some(events),
            ..self
        }
    }

    /// The counters.
    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    /// Converts a decoded request, delivers what passed, counts, and returns the OTLP answer.
    ///
    /// Public so an in-process source (the sensor of `homeostat brain --local`) can skip the
    /// wire yet get the same validation and accounting.
    pub fn ingest(
        &self,
        transport: Transport,
        req: &ExportMetricsServiceRequest,
    ) -> ExportMetricsServiceResponse {
        let mut converted = convert(req);
        let response = converted.response();
        let points = std::mem::take(&mut converted.points);
        let (accepted, rejected) = (points.len() as u64, converted.rejected);
        if !points.is_empty() {
            self.sink.accept(points);
        }
        self.stats.record_points(accepted, rejected);
        self.answered(
            OtlpSignal::Metrics,
            transport,
            response.partial_success.as_ref().map(|p| &p.error_message),
            accepted,
            rejected,
        );
        response
    }

    /// Converts a decoded logs request, delivers what passed, counts, and returns the OTLP
    /// answer; public for in-process sources, like [`ingest`](Self::ingest).
    pub fn ingest_logs(
        &self,
        transport: Transport,
        req: &ExportLogsServiceRequest,
    ) -> ExportLogsServiceResponse {
        let mut converted = convert_logs(req);
        let response = converted.response();
        let events = std::mem::take(&mut converted.events);
        let (accepted, rejected) = (events.len() as u64, converted.rejected);
        if let Some(sink) = &self.events
            && !events.is_empty()
        {
            sink.accept(events);
        }
        self.stats.record_log_records(accepted, rejected);
        self.answered(
            OtlpSignal::Logs,
            transport,
            response.partial_success.as_ref().map(|p| &p.error_message),
            accepted,
            rejected,
        );
        response
    }

    /// Counts (and, for a partial success, logs) one readable request.
    fn answered(
        &self,
        signal: OtlpSignal,
        transport: Transport,
        partial: Option<&String>,
        accepted: u64,
        rejected: u64,
    ) {
        let result = match partial {
            Some(why) => {
                tracing::debug!(
                    signal = signal.as_str(),
                    transport = transport.as_str(),
                    accepted,
                    rejected,
                    "OTLP export partially accepted: {why}"
                );
                RequestResult::Partial
            }
            None => RequestResult::Ok,
        };
        self.stats.record_request(signal, transport, result);
    }

    /// Counts and logs a request refused whole.
    fn refuse(&self, signal: OtlpSignal, transport: Transport, why: &dyn fmt::Display) {
        tracing::warn!(
            signal = signal.as_str(),
            transport = transport.as_str(),
            "OTLP export refused: {why}"
        );
        self.stats
            .record_request(signal, transport, RequestResult::Invalid);
    }
}

/// Serves OTLP/gRPC `MetricsService/Export` and `LogsService/Export` on `listener` until
/// `shutdown` completes.
pub async fn serve_grpc(
    listener: TcpListener,
    ctx: IngestContext,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), IngestError> {
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tonic::transport::Server::builder()
        .add_service(MetricsServer::new(ctx.clone()))
        .add_service(LogsServer::new(ctx))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

/// Serves OTLP/HTTP `POST /v1/metrics` and `POST /v1/logs` on `listener` until `shutdown`
/// completes.
///
/// For a shared port, merge [`http_router`] into the API's router instead.
pub async fn serve_http(
    listener: TcpListener,
    ctx: IngestContext,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), IngestError> {
    axum::serve(listener, http_router(ctx))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(IngestError::Http)
}
