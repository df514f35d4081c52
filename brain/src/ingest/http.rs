//! OTLP/HTTP: `POST /v1/metrics` and `POST /v1/logs`, binary protobuf or JSON.
//!
//! Answers follow the OTLP/HTTP spec, in the request's own encoding: 200 with an
//! `ExportMetricsServiceResponse` or `ExportLogsServiceResponse` (carrying `partial_success`
//! if points or records were rejected), or an
//! error status with a `google.rpc.Status` body (`code` 3 = INVALID_ARGUMENT, `message`):
//! 400 for an undecodable body, 413 for one over [`MAX_BODY_BYTES`], 415 for a content type
//! other than `application/x-protobuf` / `application/json` (the body then is JSON, since the
//! request's encoding is unknown) or an unsupported `Content-Encoding`.
//!
//! Compression: `Content-Encoding: gzip` (the OpenTelemetry Collector exporters' default) is
//! inflated before decoding; absent or `identity` means uncompressed; anything else is 415.
//! [`MAX_BODY_BYTES`] bounds the body both as sent and once inflated: inflation stops one
//! byte past the limit and answers 413, so a gzip bomb is never inflated beyond it. A corrupt
//! gzip stream is 400.

use std::io::Read;

use axum::Router;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use flate2::read::MultiGzDecoder;
use prost::Message;
use serde::de::DeserializeOwned;

use super::service::{LogsExport, MetricsExport, OtlpExport};
use super::{IngestContext, IngestError, OtlpSignal, Transport};

/// Where OTLP/HTTP exporters send metrics.
pub const EXPORT_PATH: &str = MetricsExport::HTTP_PATH;

/// Largest request body accepted (16 MiB), on both transports.
pub const MAX_BODY_BYTES: usize = 16 << 20;

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// The OTLP/HTTP receiver (metrics and logs) as a router, to serve alone
/// ([`serve_http`](super::serve_http)) or merge into the API's.
pub fn http_router(ctx: IngestContext) -> Router {
    Router::new()
        .route(MetricsExport::HTTP_PATH, post(export::<MetricsExport>))
        .route(LogsExport::HTTP_PATH, post(export::<LogsExport>))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(ctx)
}

/// The two OTLP/HTTP encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Protobuf,
    Json,
}

impl Format {
    /// From `Content-Type`, ignoring parameters such as `charset`.
    fn of(headers: &HeaderMap) -> Option<Format> {
        let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
        let mime = value.split(';').next()?.trim();
        if mime.eq_ignore_ascii_case(PROTOBUF) {
            Some(Format::Protobuf)
        } else if mime.eq_ignore_ascii_case(JSON) {
            Some(Format::Json)
        } else {
            None
        }
    }

    fn content_type(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Format::Protobuf => PROTOBUF,
            Format::Json => JSON,
        })
    }

    fn decode<T: Message + Default + DeserializeOwned>(
        self,
        body: &[u8],
    ) -> Result<T, IngestError> {
        Ok(match self {
            Format::Protobuf => T::decode(body)?,
            Format::Json => serde_json::from_slice(body)?,
        })
    }

    /// A body in this encoding; JSON encoding of these types cannot fail in practice, and
    /// if it did the client would get an empty body rather than a panic.
    fn encode<T: Message + serde::Serialize>(self, status: StatusCode, msg: &T) -> Response {
        let body = match self {
            Format::Protobuf => msg.encode_to_vec(),
            Format::Json => serde_json::to_vec(msg).unwrap_or_else(|e| {
                tracing::error!("encoding an OTLP/HTTP JSON answer: {e}");
                Vec::new()
            }),
        };
        (status, [(header::CONTENT_TYPE, self.content_type())], body).into_response()
    }
}

/// The `Content-Encoding`s understood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
}

impl Encoding {
    /// From `Content-Encoding`, case-insensitively: none or `identity` is uncompressed,
    /// `gzip` (or its alias `x-gzip`) is gzip. Anything else, including a chain of several
    /// codings, is `Err` with the header as sent.
    fn of(headers: &HeaderMap) -> Result<Encoding, String> {
        let sent: Vec<_> = headers
            .get_all(header::CONTENT_ENCODING)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .collect();
        let mut codings = sent
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"));
        match (codings.next(), codings.next()) {
            (None, _) => Ok(Encoding::Identity),
            (Some(c), None)
                if c.eq_ignore_ascii_case("gzip") || c.eq_ignore_ascii_case("x-gzip") =>
            {
                Ok(Encoding::Gzip)
            }
            _ => Err(sent.join(", ")),
        }
    }
}

/// Why a gzip body could not be inflated.
#[derive(Debug)]
enum GunzipError {
    /// It inflates to more than the limit.
    TooLarge,
    /// It is not a valid gzip stream.
    Corrupt(std::io::Error),
}

/// Inflates a gzip body (one or more members), refusing to produce more than `limit` bytes:
/// reading stops at `limit + 1`, whatever the stream would expand to.
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, GunzipError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    MultiGzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(GunzipError::Corrupt)?;
    if out.len() > limit {
        return Err(GunzipError::TooLarge);
    }
    Ok(out)
}

/// `google.rpc.Status`, the OTLP/HTTP error body (without `details`).
#[derive(Clone, PartialEq, Message, serde::Serialize)]
pub struct RpcStatus {
    /// The gRPC status code (3, `INVALID_ARGUMENT`, for every refusal here).
    #[prost(int32, tag = "1")]
    pub code: i32,
    /// Why.
    #[prost(string, tag = "2")]
    pub message: String,
}

/// An error answer, counted and logged as a refused request.
fn refuse(
    ctx: &IngestContext,
    signal: OtlpSignal,
    format: Format,
    status: StatusCode,
    why: String,
) -> Response {
    ctx.refuse(signal, Transport::Http, &why);
    let body = RpcStatus {
        code: tonic::Code::InvalidArgument as i32,
        message: why,
    };
    format.encode(status, &body)
}

async fn export<E: OtlpExport>(
    State(ctx): State<IngestContext>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(format) = Format::of(&headers) else {
        let got = headers
            .get(header::CONTENT_TYPE)
            .map_or("none".into(), |v| {
                String::from_utf8_lossy(v.as_bytes()).into_owned()
            });
        let why = format!("unsupported content type {got}; use {PROTOBUF} or {JSON}");
        return refuse(
            &ctx,
            E::SIGNAL,
            Format::Json,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            why,
        );
    };
    let encoding = match Encoding::of(&headers) {
        Ok(encoding) => encoding,
        Err(got) => {
            let why = format!("unsupported content encoding {got}; use gzip or identity");
            return refuse(
                &ctx,
                E::SIGNAL,
                format,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                why,
            );
        }
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) => {
            return refuse(
                &ctx,
                E::SIGNAL,
                format,
                rejection.status(),
                rejection.body_text(),
            );
        }
    };
    let body = match encoding {
        Encoding::Identity => body,
        Encoding::Gzip => match gunzip(&body, MAX_BODY_BYTES) {
            Ok(inflated) => Bytes::from(inflated),
            Err(GunzipError::TooLarge) => {
                let why = format!("gzip body inflates to more than {MAX_BODY_BYTES} bytes");
                return refuse(&ctx, E::SIGNAL, format, StatusCode::PAYLOAD_TOO_LARGE, why);
            }
            Err(GunzipError::Corrupt(e)) => {
                let why = format!("invalid gzip body: {e}");
                return refuse(&ctx, E::SIGNAL, format, StatusCode::BAD_REQUEST, why);
            }
        },
    };
    match format.decode::<E::Request>(&body) {
        Ok(req) => format.encode(StatusCode::OK, &E::export(&ctx, Transport::Http, &req)),
        Err(e) => refuse(
            &ctx,
            E::SIGNAL,
            format,
            StatusCode::BAD_REQUEST,
            e.to_string(),
        ),
    }
}
