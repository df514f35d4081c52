//! OTLP/gRPC: `opentelemetry.proto.collector.metrics.v1.MetricsService/Export` and
//! `opentelemetry.proto.collector.logs.v1.LogsService/Export`.
//!
//! Why not the generated `MetricsServiceServer`: it decodes with `tonic_prost::ProstCodec`,
//! which turns a `prost::DecodeError` into `INTERNAL` (tonic-prost 0.14, `from_decode_error`).
//! OTLP wants a malformed request answered `INVALID_ARGUMENT`, which exporters treat as
//! permanent (drop the batch) where `INTERNAL` is not. A codec cannot be swapped into the
//! generated server, and a layer rewriting `INTERNAL` would also rewrite genuine internal
//! errors. So [`OtlpServer`] is the generated servers' ~40 lines of routing with a codec
//! that hands the handler the raw message bytes ([`RawRequestCodec`]); the handler decodes
//! with prost and answers a failure with `INVALID_ARGUMENT`, and in the same place counts and
//! logs it. The per-call logic is [`OtlpExport::export`]; [`GrpcReceiver`] also implements the
//! generated [`MetricsService`] trait, for a comparison with the generated server in a test.
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
use std::marker::PhantomData;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::MetricsService;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::{Body, BoxFuture, Service, StdError, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use super::service::{LogsExport, MetricsExport, OtlpExport};
use super::{IngestContext, IngestError, Transport};

/// Largest request accepted, as on the HTTP side (tonic's default is 4 MiB); for a
/// compressed request, this bounds both the compressed and the decompressed message.
const MAX_MESSAGE_BYTES: usize = super::MAX_BODY_BYTES;

/// The OTLP metrics service as the generated trait wants it: converts each export and
/// answers with `partial_success` when points were rejected.
///
/// Serve [`MetricsServer`] instead, so malformed requests get `INVALID_ARGUMENT`.
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

/// The tonic service of one OTLP export method, to add to a `tonic::transport::Server` (see
/// the module docs for why it is not the generated one).
pub struct OtlpServer<E> {
    ctx: IngestContext,
    export: PhantomData<fn() -> E>,
}

/// `MetricsService/Export`.
pub type MetricsServer = OtlpServer<MetricsExport>;
/// `LogsService/Export`.
pub type LogsServer = OtlpServer<LogsExport>;

impl<E> OtlpServer<E> {
    /// A server for `ctx`.
    pub fn new(ctx: IngestContext) -> Self {
        OtlpServer {
            ctx,
            export: PhantomData,
        }
    }
}

impl<E> Clone for OtlpServer<E> {
    fn clone(&self) -> Self {
        OtlpServer::new(self.ctx.clone())
    }
}

impl<E: OtlpExport> NamedService for OtlpServer<E> {
    const NAME: &'static str = E::SERVICE;
}

impl<E, B> Service<http::Request<B>> for OtlpServer<E>
where
    E: OtlpExport,
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
        if req.uri().path() != E::GRPC_PATH {
            return Box::pin(async { Ok(Status::unimplemented("").into_http()) });
        }
        let export = Export::<E>(self.ctx.clone(), PhantomData);
        Box::pin(async move {
            let mut grpc = Grpc::new(RawRequestCodec::<E::Response>::default())
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(MAX_MESSAGE_BYTES);
            Ok(grpc.unary(export, req).await)
        })
    }
}

/// One export call: decode the raw message, then [`OtlpExport::export`].
struct Export<E>(IngestContext, PhantomData<fn() -> E>);

impl<E: OtlpExport> UnaryService<Bytes> for Export<E> {
    type Response = E::Response;
    type Future = BoxFuture<Response<E::Response>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let ctx = self.0.clone();
        Box::pin(async move {
            let decoded = E::Request::decode(request.into_inner()).map_err(|e| {
                let e = IngestError::from(e);
                ctx.refuse(E::SIGNAL, Transport::Grpc, &e);
                Status::invalid_argument(e.to_string())
            })?;
            Ok(Response::new(E::export(&ctx, Transport::Grpc, &decoded)))
        })
    }
}

/// Decodes to the raw message bytes, so decoding errors reach the handler; encodes responses
/// (`R`) with prost.
struct RawRequestCodec<R>(PhantomData<fn() -> R>);

impl<R> Default for RawRequestCodec<R> {
    fn default() -> Self {
        RawRequestCodec(PhantomData)
    }
}

impl<R: Message + Send + 'static> Codec for RawRequestCodec<R> {
    type Encode = R;
    type Decode = Bytes;
    type Encoder = RawRequestCodec<R>;
    type Decoder = RawRequestCodec<R>;

    fn encoder(&mut self) -> Self::Encoder {
        RawRequestCodec::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawRequestCodec::default()
    }
}

impl<R: Message> Encoder for RawRequestCodec<R> {
    type Item = R;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the response: {e}")))
    }
}

impl<R> Decoder for RawRequestCodec<R> {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
