//! OTLP/gRPC: `opentelemetry.proto.collector.metrics.v1.MetricsService/Export`.
//!
//! Why not the generated `MetricsServiceServer`: it decodes with `tonic_prost::ProstCodec`,
//! which turns a `prost::DecodeError` into `INTERNAL` (tonic-prost 0.14, `from_decode_error`).
//! OTLP wants a malformed request answered `INVALID_ARGUMENT`, which exporters treat as
//! permanent (drop the batch) where `INTERNAL` is not. A codec cannot be swapped into the
//! generated server, and a layer rewriting `INTERNAL` would also rewrite genuine internal
//! errors. So [`MetricsServer`] is the generated server's ~40 lines of routing with a codec
//! that hands the handler the raw message bytes ([`RawRequestCodec`]); the handler decodes
//! with prost and answers a failure with `INVALID_ARGUMENT`, and in the same place counts and
//! logs it. The per-call logic stays in the generated [`MetricsService`] trait, implemented
//! by [`GrpcReceiver`].
//!
//! Compression: gzip, the OpenTelemetry Collector exporters' default, is accepted, and
//! responses are gzipped when the request's `grpc-accept-encoding` lists it; tonic does both
//! (its `gzip` feature) before and after the codec. Another encoding (`zstd`, `snappy`) is
//! answered `UNIMPLEMENTED` by tonic. [`MAX_MESSAGE_BYTES`] bounds the message both as sent
//! and once inflated: tonic decompresses into a buffer capped at the decoding limit, so a
//! gzip bomb is refused with `RESOURCE_EXHAUSTED` after at most that many bytes, never
//! inflated whole. A corrupt gzip stream is refused by tonic too, with `INTERNAL` (the
//! codec never sees it; unlike an undecodable message, there is no place to answer
//! `INVALID_ARGUMENT` short of rewriting tonic's status).

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, SERVICE_NAME,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{Body, BoxFuture, Service, StdError, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use super::{IngestContext, Transport, decode_protobuf};

/// The one method's path.
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

/// Largest request accepted, as on the HTTP side (tonic's default is 4 MiB); for a
/// compressed request, this bounds both the compressed and the decompressed message.
const MAX_MESSAGE_BYTES: usize = super::MAX_BODY_BYTES;

/// The OTLP metrics service: converts each export and answers with `partial_success` when
/// points were rejected.
///
/// Also usable with the generated `MetricsServiceServer` or in-process, but serve it through
/// [`MetricsServer`] so malformed requests get `INVALID_ARGUMENT`.
#[derive(Clone, Debug)]
pub struct GrpcReceiver {
    ctx: IngestContext,
}

impl GrpcReceiver {
    /// A receiver feeding `ctx`'s sink.
    pub fn new(ctx: IngestContext) -> Self {
        GrpcReceiver { ctx }
    }
}

#[tonic::async_trait]
impl MetricsService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        Ok(Response::new(
            self.ctx.ingest(Transport::Grpc, request.get_ref()),
        ))
    }
}

/// The tonic service to add to a `tonic::transport::Server` (see the module docs for why it
/// is not the generated one).
#[derive(Clone, Debug)]
pub struct MetricsServer {
    receiver: Arc<GrpcReceiver>,
}

impl MetricsServer {
    /// A server for `ctx`.
    pub fn new(ctx: IngestContext) -> Self {
        MetricsServer {
            receiver: Arc::new(GrpcReceiver::new(ctx)),
        }
    }
}

impl NamedService for MetricsServer {
    const NAME: &'static str = SERVICE_NAME;
}

impl<B> Service<http::Request<B>> for MetricsServer
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != EXPORT_PATH {
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        }
        let export = Export(Arc::clone(&self.receiver));
        Box::pin(async move {
            let mut grpc = Grpc::new(RawRequestCodec)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(MAX_MESSAGE_BYTES);
            Ok(grpc.unary(export, req).await)
        })
    }
}

/// One export call: decode the raw message, then the [`MetricsService`] logic.
struct Export(Arc<GrpcReceiver>);

impl UnaryService<Bytes> for Export {
    type Response = ExportMetricsServiceResponse;
    type Future = BoxFuture<Response<ExportMetricsServiceResponse>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let receiver = Arc::clone(&self.0);
        Box::pin(async move {
            let (metadata, extensions, body) = request.into_parts();
            let decoded = decode_protobuf(&body).map_err(|e| {
                receiver.ctx.refuse(Transport::Grpc, &e);
                Status::invalid_argument(e.to_string())
            })?;
            receiver
                .export(Request::from_parts(metadata, extensions, decoded))
                .await
        })
    }
}

/// Decodes to the raw message bytes, so decoding errors reach the handler; encodes responses
/// with prost.
#[derive(Clone, Copy, Debug, Default)]
struct RawRequestCodec;

impl Codec for RawRequestCodec {
    type Encode = ExportMetricsServiceResponse;
    type Decode = Bytes;
    type Encoder = RawRequestCodec;
    type Decoder = RawRequestCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawRequestCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawRequestCodec
    }
}

impl Encoder for RawRequestCodec {
    type Item = ExportMetricsServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the response: {e}")))
    }
}

impl Decoder for RawRequestCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
