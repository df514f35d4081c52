//! OTLP metrics receivers (gRPC and HTTP).
//!
//! Anything that speaks OTLP with the Kubernetes resource attributes can feed the brain
//! (DESIGN.md, "Signals"): the sensor, the simulator, an OpenTelemetry Collector. Both
//! transports decode, then share one path ([`IngestContext::ingest`]): convert, hand the
//! accepted [`Point`](crate::point::Point)s to the [`PointSink`], count, and answer with
//! `partial_success` when points were rejected. Only an unreadable request is refused whole.
//!
//! The functions take listeners, not addresses; the conventional ports are 4317 (gRPC) and
//! 4318 (HTTP).

mod convert;
mod error;
mod grpc;
mod http;
mod stats;

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prometheus::Registry;
use tokio::net::TcpListener;

pub use convert::{Converted, MAX_ERROR_EXAMPLES, convert, decode_json, decode_protobuf};
pub use error::IngestError;
pub use grpc::{GrpcReceiver, MetricsServer};
pub use http::{EXPORT_PATH as HTTP_EXPORT_PATH, MAX_BODY_BYTES, http_router};
pub use stats::{IngestStats, RequestResult, Transport};

use crate::point::PointSink;

/// What both receivers share: where accepted points go, and the counters.
#[derive(Clone)]
pub struct IngestContext {
    sink: Arc<dyn PointSink>,
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
            stats: IngestStats::register(registry)?,
        })
    }

    /// The counters.
    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    /// Converts a decoded request, delivers what passed, counts, and returns the OTLP answer.
    ///
    /// Public so an in-process source (the simulator) can skip the wire yet get the same
    /// validation and accounting.
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
        if let Some(ps) = &response.partial_success {
            tracing::debug!(
                transport = transport.as_str(),
                accepted,
                rejected,
                "OTLP export partially accepted: {}",
                ps.error_message
            );
            self.stats.record_request(transport, RequestResult::Partial);
        } else {
            self.stats.record_request(transport, RequestResult::Ok);
        }
        response
    }

    /// Counts and logs a request refused whole.
    fn refuse(&self, transport: Transport, why: &dyn fmt::Display) {
        tracing::warn!(transport = transport.as_str(), "OTLP export refused: {why}");
        self.stats.record_request(transport, RequestResult::Invalid);
    }
}

/// Serves OTLP/gRPC `MetricsService/Export` on `listener` until `shutdown` completes.
pub async fn serve_grpc(
    listener: TcpListener,
    ctx: IngestContext,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), IngestError> {
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tonic::transport::Server::builder()
        .add_service(MetricsServer::new(ctx))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await?;
    Ok(())
}

/// Serves OTLP/HTTP `POST /v1/metrics` on `listener` until `shutdown` completes.
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
