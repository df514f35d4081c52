//! What can go wrong receiving OTLP.

/// A request that cannot be read at all, or a receiver that cannot run.
///
/// Bad data points inside a readable request are not errors: OTLP answers them with
/// `partial_success` (see [`Converted`](super::Converted)).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The body is not an OTLP export request in protobuf.
    #[error("invalid OTLP protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// The body is not an OTLP export request in OTLP/JSON.
    #[error("invalid OTLP JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The ingest metrics could not be registered (usually: registered twice).
    #[error("registering ingest metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The gRPC server failed.
    #[error("OTLP gRPC server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// The HTTP server failed.
    #[error("OTLP HTTP server: {0}")]
    Http(#[source] std::io::Error),
}
