//! The OTLP export services the receivers serve, metrics and logs: what the gRPC and HTTP
//! front ends need to know of each (paths, message types, the handler), so both front ends
//! are written once for both.

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse, logs_service_server,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse, metrics_service_server,
};
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{IngestContext, OtlpSignal, Transport};

/// One OTLP `Export` method.
pub trait OtlpExport: Send + Sync + 'static {
    /// What it counts as.
    const SIGNAL: OtlpSignal;
    /// The gRPC service name.
    const SERVICE: &'static str;
    /// The gRPC method path.
    const GRPC_PATH: &'static str;
    /// The OTLP/HTTP path.
    const HTTP_PATH: &'static str;
    /// The request message.
    type Request: Message + Default + DeserializeOwned + Send + 'static;
    /// The response message.
    type Response: Message + Default + Serialize + Send + 'static;
    /// Handles a decoded request: convert, deliver, count, answer.
    fn export(ctx: &IngestContext, transport: Transport, req: &Self::Request) -> Self::Response;
}

/// `opentelemetry.proto.collector.metrics.v1.MetricsService/Export`, `POST /v1/metrics`.
#[derive(Clone, Copy, Debug)]
pub struct MetricsExport;

impl OtlpExport for MetricsExport {
    const SIGNAL: OtlpSignal = OtlpSignal::Metrics;
    const SERVICE: &'static str = metrics_service_server::SERVICE_NAME;
    const GRPC_PATH: &'static str =
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    const HTTP_PATH: &'static str = "/v1/metrics";
    type Request = ExportMetricsServiceRequest;
    type Response = ExportMetricsServiceResponse;

    fn export(ctx: &IngestContext, transport: Transport, req: &Self::Request) -> Self::Response {
        ctx.ingest(transport, req)
    }
}

/// `opentelemetry.proto.collector.logs.v1.LogsService/Export`, `POST /v1/logs`.
#[derive(Clone, Copy, Debug)]
pub struct LogsExport;

impl OtlpExport for LogsExport {
    const SIGNAL: OtlpSignal = OtlpSignal::Logs;
    const SERVICE: &'static str = logs_service_server::SERVICE_NAME;
    const GRPC_PATH: &'static str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
    const HTTP_PATH: &'static str = "/v1/logs";
    type Request = ExportLogsServiceRequest;
    type Response = ExportLogsServiceResponse;

    fn export(ctx: &IngestContext, transport: Transport, req: &Self::Request) -> Self::Response {
        ctx.ingest_logs(transport, req)
    }
}
