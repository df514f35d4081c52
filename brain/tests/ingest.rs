//! The OTLP receivers over real sockets on 127.0.0.1: tonic clients for gRPC, reqwest for HTTP.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{Buf, BufMut, Bytes};
use homeostat_brain::event::{EventSink, LogEvent};
use homeostat_brain::ingest::{
    GrpcReceiver, HTTP_EXPORT_PATH, IngestContext, MAX_BODY_BYTES, OtlpSignal, RequestResult,
    RpcStatus, Transport, serve_grpc, serve_http,
};
use homeostat_brain::point::{Point, PointSink, PointValue};
use homeostat_core::signal as semconv_signal;
use homeostat_core::{Entity, Timestamp, WorkloadRef, semconv};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::MetricsServiceServer;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prometheus::{Encoder as _, Registry, TextEncoder};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

const T: u64 = 1_700_000_000_000_000_000;
const START: u64 = T - 60_000_000_000;
const EXPORT: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";

/// Keeps what a receiver delivers: points or log records.
struct Collect<T>(Mutex<Vec<T>>);

impl<T> Default for Collect<T> {
    fn default() -> Self {
        Collect(Mutex::new(Vec::new()))
    }
}

impl<T> Collect<T> {
    fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl PointSink for Collect<Point> {
    fn accept(&self, points: Vec<Point>) {
        self.0.lock().unwrap().extend(points);
    }
}

impl EventSink for Collect<LogEvent> {
    fn accept(&self, events: Vec<LogEvent>) {
        self.0.lock().unwrap().extend(events);
    }
}

type CollectSink = Collect<Point>;
type CollectEvents = Collect<LogEvent>;

/// A receiver on an ephemeral port; stops when dropped.
struct Server {
    addr: SocketAddr,
    sink: Arc<CollectSink>,
    events: Arc<CollectEvents>,
    ctx: IngestContext,
    registry: Registry,
    _stop: oneshot::Sender<()>,
}

impl Server {
    async fn start(transport: Transport) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let sink = Arc::new(CollectSink::default());
        let registry = Registry::new();
        let events = Arc::new(CollectEvents::default());
        let ctx = IngestContext::new(sink.clone(), &registry)
            .unwrap()
            .with_events(events.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async {
            let _ = stopped.await;
        };
        let serving = ctx.clone();
        tokio::spawn(async move {
            match transport {
                Transport::Grpc => serve_grpc(listener, serving, shutdown).await.unwrap(),
                Transport::Http => serve_http(listener, serving, shutdown).await.unwrap(),
                Transport::InProcess => unreachable!("no wire to serve"),
            }
        });
        Server {
            addr,
            sink,
            events,
            ctx,
            registry,
            _stop: stop,
        }
    }

    async fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    fn url(&self) -> String {
        format!("http://{}{HTTP_EXPORT_PATH}", self.addr)
    }

    fn metrics_text(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .unwrap();
        String::from_utf8(out).unwrap()
    }
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn entity() -> Entity {
    Entity {
        workload: WorkloadRef::deployment("shop", "cart"),
        pod: Some("cart-7d9f-abcde".into()),
        pod_uid: Some("3c5e7f0a-1111-2222-3333-444455556666".into()),
        container: Some("app".into()),
        node: Some("node-1".into()),
    }
}

fn number(v: f64) -> NumberDataPoint {
    NumberDataPoint {
        start_time_unix_nano: START,
        time_unix_nano: T,
        value: Some(number_data_point::Value::AsDouble(v)),
        ..Default::default()
    }
}

/// A gauge (with the given values), a cumulative counter and a histogram from shop/cart.
fn request(gauge_values: &[f64]) -> ExportMetricsServiceRequest {
    let metrics = vec![
        Metric {
            name: "homeostat.sensor.overhead".into(),
            data: Some(metric::Data::Gauge(Gauge {
                data_points: gauge_values.iter().map(|&v| number(v)).collect(),
            })),
            ..Default::default()
        },
        Metric {
            name: "homeostat.cpu.time".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: vec![NumberDataPoint {
                    value: Some(number_data_point::Value::AsInt(12)),
                    ..number(0.0)
                }],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        },
        Metric {
            name: "homeostat.sched.runqueue.latency".into(),
            data: Some(metric::Data::Histogram(Histogram {
                data_points: vec![HistogramDataPoint {
                    start_time_unix_nano: START,
                    time_unix_nano: T,
                    count: 10,
                    sum: Some(0.05),
                    bucket_counts: vec![7, 2, 1],
                    explicit_bounds: vec![0.001, 0.01],
                    ..Default::default()
                }],
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            })),
            ..Default::default()
        },
    ];
    let e = entity();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv(semconv::K8S_NAMESPACE_NAME, &e.workload.namespace),
                    kv(semconv::K8S_DEPLOYMENT_NAME, &e.workload.name),
                    kv(semconv::K8S_POD_NAME, e.pod.as_deref().unwrap()),
                    kv(semconv::K8S_POD_UID, e.pod_uid.as_deref().unwrap()),
                    kv(semconv::K8S_CONTAINER_NAME, e.container.as_deref().unwrap()),
                    kv(semconv::K8S_NODE_NAME, e.node.as_deref().unwrap()),
                    kv("service.name", "cart"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The points `request(&[0.02])` must produce.
fn expected_points() -> Vec<Point> {
    let point = |signal: &str, value| Point {
        entity: entity(),
        signal: signal.into(),
        attributes: Vec::new(),
        time: Timestamp::from_nanos(T as i64),
        start_time: Timestamp::from_nanos(START as i64),
        value,
    };
    vec![
        point(semconv_signal::SENSOR_OVERHEAD, PointValue::Gauge(0.02)),
        point(
            semconv_signal::CPU_TIME,
            PointValue::Counter {
                value: 12.0,
                cumulative: true,
            },
        ),
        point(
            semconv_signal::RUNQUEUE_LATENCY,
            PointValue::Histogram {
                count: 10,
                sum: 0.05,
                bounds: vec![0.001, 0.01],
                counts: vec![7, 2, 1],
                cumulative: true,
            },
        ),
    ]
}

/// Sends raw bytes as the body of a gRPC message, whatever they are.
#[derive(Clone, Copy, Default)]
struct RawBytes;

impl Codec for RawBytes {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawBytes;
    type Decoder = RawBytes;
    fn encoder(&mut self) -> RawBytes {
        RawBytes
    }
    fn decoder(&mut self) -> RawBytes {
        RawBytes
    }
}

impl Encoder for RawBytes {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

impl Decoder for RawBytes {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// Field 1 (resource_metrics), length 5, then only one byte: truncated protobuf.
const GARBAGE: &[u8] = &[0x0a, 0x05, 0x01];

async fn send_raw(channel: Channel, body: &'static [u8]) -> Result<Bytes, Status> {
    send_raw_to(channel, EXPORT, body).await
}

/// Sends raw bytes to the gRPC method at `path`.
async fn send_raw_to(
    channel: Channel,
    path: &'static str,
    body: &'static [u8],
) -> Result<Bytes, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let req = tonic::Request::new(Bytes::from_static(body));
    grpc.unary(req, PathAndQuery::from_static(path), RawBytes)
        .await
        .map(tonic::Response::into_inner)
}

/// Like [`send_raw`], gzip-compressed by tonic.
async fn send_raw_gzip(channel: Channel, body: Bytes) -> Result<Bytes, Status> {
    let mut grpc = tonic::client::Grpc::new(channel)
        .send_compressed(CompressionEncoding::Gzip)
        .max_encoding_message_size(usize::MAX);
    grpc.ready().await.unwrap();
    grpc.unary(
        tonic::Request::new(body),
        PathAndQuery::from_static(EXPORT),
        RawBytes,
    )
    .await
    .map(tonic::Response::into_inner)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

#[tokio::test]
async fn grpc_export_delivers_points_with_their_entity() {
    let server = Server::start(Transport::Grpc).await;
    let mut client = MetricsServiceClient::new(server.channel().await);
    let resp = client.export(request(&[0.02])).await.unwrap().into_inner();
    assert_eq!(resp.partial_success, None);
    assert_eq!(server.sink.take(), expected_points());
    let stats = server.ctx.stats();
    assert_eq!(
        stats.requests(OtlpSignal::Metrics, Transport::Grpc, RequestResult::Ok),
        1
    );
    assert_eq!(stats.points(), (3, 0));

    // No resource metrics at all is a valid, empty export.
    let resp = client
        .export(ExportMetricsServiceRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.partial_success, None);
    assert!(server.sink.take().is_empty());
}

#[tokio::test]
async fn grpc_nan_point_is_partial_success_and_good_points_are_delivered() {
    let server = Server::start(Transport::Grpc).await;
    let mut client = MetricsServiceClient::new(server.channel().await);
    let resp = client
        .export(request(&[f64::NAN, 0.02]))
        .await
        .unwrap()
        .into_inner();
    let ps = resp.partial_success.expect("partial success");
    assert_eq!(ps.rejected_data_points, 1);
    assert!(
        ps.error_message
            .contains("`homeostat.sensor.overhead` from shop/Deployment/cart: value is NaN"),
        "{}",
        ps.error_message
    );
    assert_eq!(server.sink.take(), expected_points());
    let stats = server.ctx.stats();
    assert_eq!(
        stats.requests(OtlpSignal::Metrics, Transport::Grpc, RequestResult::Partial),
        1
    );
    assert_eq!(stats.points(), (3, 1));
}

#[tokio::test]
async fn grpc_garbage_is_invalid_argument_and_the_server_keeps_serving() {
    let server = Server::start(Transport::Grpc).await;
    let channel = server.channel().await;
    let err = send_raw(channel.clone(), GARBAGE).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("invalid OTLP protobuf"), "{err:?}");

    // The same connection, and a valid request on it, still work.
    let ok = send_raw(channel.clone(), b"").await.unwrap();
    assert_eq!(
        ExportMetricsServiceResponse::decode(ok).unwrap(),
        Default::default()
    );
    let mut client = MetricsServiceClient::new(channel);
    let resp = client.export(request(&[0.02])).await.unwrap().into_inner();
    assert_eq!(resp.partial_success, None);
    assert_eq!(server.sink.take(), expected_points());

    let text = server.metrics_text();
    for line in [
        r#"homeostat_otlp_requests_total{result="invalid",signal="metrics",transport="grpc"} 1"#,
        r#"homeostat_otlp_requests_total{result="ok",signal="metrics",transport="grpc"} 2"#,
        r#"homeostat_otlp_points_total{result="accepted"} 3"#,
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
}

#[tokio::test]
async fn grpc_gzip_export_delivers_points_and_is_answered_in_gzip() {
    let server = Server::start(Transport::Grpc).await;
    let mut client = MetricsServiceClient::new(server.channel().await)
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    let resp = client.export(request(&[0.02])).await.unwrap();
    assert_eq!(
        resp.metadata()
            .get("grpc-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip"),
        "{:?}",
        resp.metadata()
    );
    assert_eq!(resp.into_inner().partial_success, None);
    assert_eq!(server.sink.take(), expected_points());

    // A client that does not accept gzip gets an uncompressed answer.
    let mut plain = MetricsServiceClient::new(server.channel().await)
        .send_compressed(CompressionEncoding::Gzip);
    let resp = plain.export(request(&[0.02])).await.unwrap();
    assert_eq!(resp.metadata().get("grpc-encoding"), None);
    assert_eq!(server.sink.take(), expected_points());
    let stats = server.ctx.stats();
    assert_eq!(
        stats.requests(OtlpSignal::Metrics, Transport::Grpc, RequestResult::Ok),
        2
    );
}

/// tonic inflates into a buffer capped at the decoding limit: exactly the limit gets through
/// to the codec (and, being zeros, is invalid protobuf), one byte more is refused without
/// being inflated whole, and the connection keeps serving.
#[tokio::test]
async fn grpc_gzip_bomb_is_resource_exhausted_and_the_server_keeps_serving() {
    let server = Server::start(Transport::Grpc).await;
    let channel = server.channel().await;

    let bomb = Bytes::from(vec![0u8; 20 << 20]);
    let err = send_raw_gzip(channel.clone(), bomb).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("size limit"), "{err:?}");

    let over = Bytes::from(vec![0u8; MAX_BODY_BYTES + 1]);
    let err = send_raw_gzip(channel.clone(), over).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");

    let at_limit = Bytes::from(vec![0u8; MAX_BODY_BYTES]);
    let err = send_raw_gzip(channel.clone(), at_limit).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");

    let mut client = MetricsServiceClient::new(channel).send_compressed(CompressionEncoding::Gzip);
    let resp = client.export(request(&[0.02])).await.unwrap().into_inner();
    assert_eq!(resp.partial_success, None);
    assert_eq!(server.sink.take(), expected_points());
}

/// Why `MetricsServer` exists: the generated server answers a decode error with INTERNAL. If
/// this starts failing, tonic-prost changed and the custom server may be dropped.
#[tokio::test]
async fn the_generated_server_would_answer_garbage_with_internal() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ctx = IngestContext::new(Arc::new(CollectSink::default()), &Registry::new()).unwrap();
    let generated = MetricsServiceServer::new(GrpcReceiver::new(ctx));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(generated)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let err = send_raw(channel, GARBAGE).await.unwrap_err();
    assert_eq!(err.code(), Code::Internal, "{err:?}");
}

async fn post(server: &Server, content_type: &str, body: Vec<u8>) -> (u16, String, Bytes) {
    post_encoded(server, content_type, None, body).await
}

/// A POST with `Content-Encoding: encoding` (the body as given, already encoded).
async fn post_encoded(
    server: &Server,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (u16, String, Bytes) {
    post_to(&server.url(), content_type, encoding, body).await
}

/// A POST of `body` to `url`.
async fn post_to(
    url: &str,
    content_type: &str,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> (u16, String, Bytes) {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", content_type);
    if let Some(encoding) = encoding {
        req = req.header("content-encoding", encoding);
    }
    let resp = req.body(body).send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, resp.bytes().await.unwrap())
}

#[tokio::test]
async fn http_protobuf_export_and_errors() {
    let server = Server::start(Transport::Http).await;
    let (status, ct, body) = post(
        &server,
        "application/x-protobuf",
        request(&[0.02]).encode_to_vec(),
    )
    .await;
    assert_eq!((status, ct.as_str()), (200, "application/x-protobuf"));
    let resp = ExportMetricsServiceResponse::decode(body).unwrap();
    assert_eq!(resp.partial_success, None);
    assert_eq!(server.sink.take(), expected_points());

    let (status, ct, body) = post(&server, "application/x-protobuf", GARBAGE.to_vec()).await;
    assert_eq!((status, ct.as_str()), (400, "application/x-protobuf"));
    let st = RpcStatus::decode(body).unwrap();
    assert_eq!(st.code, Code::InvalidArgument as i32);
    assert!(st.message.starts_with("invalid OTLP protobuf"), "{st:?}");

    let (status, _, body) = post(&server, "text/plain", b"hello".to_vec()).await;
    assert_eq!(status, 415);
    let st: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        st["message"].as_str().unwrap().contains("text/plain"),
        "{st}"
    );

    let (status, _, _) = post(
        &server,
        "application/x-protobuf",
        vec![0; MAX_BODY_BYTES + 1],
    )
    .await;
    assert_eq!(status, 413);

    // Still serving.
    let (status, _, _) = post(
        &server,
        "application/x-protobuf",
        request(&[0.02]).encode_to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    let stats = server.ctx.stats();
    assert_eq!(
        stats.requests(OtlpSignal::Metrics, Transport::Http, RequestResult::Ok),
        2
    );
    assert_eq!(
        stats.requests(OtlpSignal::Metrics, Transport::Http, RequestResult::Invalid),
        3
    );
}

#[tokio::test]
async fn http_json_export_with_string_int64s_and_partial_success() {
    let server = Server::start(Transport::Http).await;
    let json = format!(
        r#"{{"resourceMetrics":[{{"resource":{{"attributes":[
            {{"key":"k8s.namespace.name","value":{{"stringValue":"shop"}}}},
            {{"key":"k8s.deployment.name","value":{{"stringValue":"cart"}}}}]}},
          "scopeMetrics":[{{"metrics":[
            {{"name":"homeostat.cpu.time","sum":{{"aggregationTemporality":2,"isMonotonic":true,
              "dataPoints":[{{"timeUnixNano":"{T}","startTimeUnixNano":"{START}","asInt":"12",
                "exemplars":[{{"timeUnixNano":"{T}","asDouble":0.5,
                  "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174"}}]}}]}}}},
            {{"name":"homeostat.sched.runqueue.latency","histogram":{{"aggregationTemporality":1,
              "dataPoints":[{{"timeUnixNano":"{T}","count":"3","sum":0.5,
                "bucketCounts":["1","1"],"explicitBounds":[0.1,0.2]}}]}}}}]}}]}}]}}"#
    );
    let (status, ct, body) = post(&server, "application/json; charset=utf-8", json.into()).await;
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    let resp: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(resp["partialSuccess"]["rejectedDataPoints"], 1, "{resp}");
    let msg = resp["partialSuccess"]["errorMessage"].as_str().unwrap();
    assert!(msg.contains("2 bucket counts for 2 bounds"), "{msg}");

    let points = server.sink.take();
    assert_eq!(points.len(), 1);
    assert_eq!(
        points[0].entity,
        Entity::workload(WorkloadRef::deployment("shop", "cart"))
    );
    assert_eq!(
        points[0].value,
        PointValue::Counter {
            value: 12.0,
            cumulative: true
        }
    );
    assert_eq!(points[0].start_time, Timestamp::from_nanos(START as i64));

    let (status, ct, body) = post(&server, "application/json", b"{not json".to_vec()).await;
    assert_eq!((status, ct.as_str()), (400, "application/json"));
    let st: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(st["code"], 3);
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid OTLP JSON"),
        "{st}"
    );
}

#[tokio::test]
async fn http_gzip_export_delivers_points() {
    let server = Server::start(Transport::Http).await;
    let body = gzip(&request(&[0.02]).encode_to_vec());
    for encoding in ["gzip", "GZip", "x-gzip"] {
        let (status, ct, resp) = post_encoded(
            &server,
            "application/x-protobuf",
            Some(encoding),
            body.clone(),
        )
        .await;
        assert_eq!(
            (status, ct.as_str()),
            (200, "application/x-protobuf"),
            "{encoding}"
        );
        let resp = ExportMetricsServiceResponse::decode(resp).unwrap();
        assert_eq!(resp.partial_success, None);
        assert_eq!(server.sink.take(), expected_points(), "{encoding}");
    }

    // Two concatenated gzip members are one valid gzip body.
    let encoded = request(&[0.02]).encode_to_vec();
    let (head, tail) = encoded.split_at(encoded.len() / 2);
    let two_members = [gzip(head), gzip(tail)].concat();
    let (status, _, _) =
        post_encoded(&server, "application/x-protobuf", Some("gzip"), two_members).await;
    assert_eq!(status, 200);
    assert_eq!(server.sink.take(), expected_points());

    // `identity` is no compression.
    let (status, _, _) = post_encoded(
        &server,
        "application/x-protobuf",
        Some("identity"),
        request(&[0.02]).encode_to_vec(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(server.sink.take(), expected_points());

    // JSON too.
    let (status, ct, resp) = post_encoded(
        &server,
        "application/json",
        Some("gzip"),
        gzip(&serde_json::to_vec(&request(&[0.02])).unwrap()),
    )
    .await;
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    let resp: serde_json::Value = serde_json::from_slice(&resp).unwrap();
    assert!(resp["partialSuccess"].is_null(), "{resp}");
    assert_eq!(server.sink.take(), expected_points());
    let stats = server.ctx.stats();
    assert_eq!(
        stats.requests(OtlpSignal::Metrics, Transport::Http, RequestResult::Ok),
        6
    );
}

#[tokio::test]
async fn http_gzip_errors_and_the_server_keeps_serving() {
    let server = Server::start(Transport::Http).await;
    let good = request(&[0.02]).encode_to_vec();

    // Not gzip at all, and a truncated stream.
    let truncated = {
        let mut gz = gzip(&good);
        gz.truncate(gz.len() - 10);
        gz
    };
    for body in [good.clone(), truncated] {
        let (status, ct, resp) =
            post_encoded(&server, "application/x-protobuf", Some("gzip"), body).await;
        assert_eq!((status, ct.as_str()), (400, "application/x-protobuf"));
        let st = RpcStatus::decode(resp).unwrap();
        assert_eq!(st.code, Code::InvalidArgument as i32);
        assert!(st.message.starts_with("invalid gzip body"), "{st:?}");
    }

    // A gzip bomb: 20 KiB on the wire, 20 MiB inflated.
    let bomb = gzip(&vec![0; 20 << 20]);
    assert!(bomb.len() < 100 << 10, "{}", bomb.len());
    let (status, ct, resp) =
        post_encoded(&server, "application/x-protobuf", Some("gzip"), bomb).await;
    assert_eq!((status, ct.as_str()), (413, "application/x-protobuf"));
    let st = RpcStatus::decode(resp).unwrap();
    assert!(
        st.message
            .contains(&format!("more than {MAX_BODY_BYTES} bytes")),
        "{st:?}"
    );
    // One byte over, refused; exactly the limit, inflated and decoded (zeros: invalid).
    let (status, _, _) = post_encoded(
        &server,
        "application/x-protobuf",
        Some("gzip"),
        gzip(&vec![0; MAX_BODY_BYTES + 1]),
    )
    .await;
    assert_eq!(status, 413);
    let (status, _, resp) = post_encoded(
        &server,
        "application/x-protobuf",
        Some("gzip"),
        gzip(&vec![0; MAX_BODY_BYTES]),
    )
    .await;
    assert_eq!(status, 400);
    let st = RpcStatus::decode(resp).unwrap();
    assert!(st.message.starts_with("invalid OTLP protobuf"), "{st:?}");

    // Unknown encodings, or a chain of them, are 415 naming what was sent.
    for encoding in ["br", "gzip, br", "deflate"] {
        let (status, _, resp) =
            post_encoded(&server, "application/json", Some(encoding), b"{}".to_vec()).await;
        assert_eq!(status, 415, "{encoding}");
        let st: serde_json::Value = serde_json::from_slice(&resp).unwrap();
        let msg = st["message"].as_str().unwrap();
        assert!(
            msg.contains(&format!("unsupported content encoding {encoding};")),
            "{msg}"
        );
    }

    // Still serving.
    let (status, _, _) =
        post_encoded(&server, "application/x-protobuf", Some("gzip"), gzip(&good)).await;
    assert_eq!(status, 200);
    assert_eq!(server.sink.take(), expected_points());
    let stats = server.ctx.stats();
    assert_eq!(
        stats.requests(OtlpSignal::Metrics, Transport::Http, RequestResult::Ok),
        1
    );
    assert_eq!(
        stats.requests(OtlpSignal::Metrics, Transport::Http, RequestResult::Invalid),
        8
    );
}

const LOGS_EXPORT: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

/// A crash of `sh` in shop/cart's pod, and a record from a resource with no workload.
fn logs_request() -> ExportLogsServiceRequest {
    let e = entity();
    let crash = LogRecord {
        time_unix_nano: T,
        observed_time_unix_nano: T + 1_000,
        severity_number: SeverityNumber::Warn as i32,
        event_name: "homeostat.process.crash".into(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(
                "sh (pid 4242) exited with status 3".into(),
            )),
        }),
        attributes: vec![
            KeyValue {
                key: "process.pid".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::IntValue(4242)),
                }),
                ..Default::default()
            },
            kv("process.executable.name", "sh"),
        ],
        ..Default::default()
    };
    let resource = |attributes| {
        Some(Resource {
            attributes,
            ..Default::default()
        })
    };
    ExportLogsServiceRequest {
        resource_logs: vec![
            ResourceLogs {
                resource: resource(vec![
                    kv(semconv::K8S_NAMESPACE_NAME, &e.workload.namespace),
                    kv(semconv::K8S_DEPLOYMENT_NAME, &e.workload.name),
                    kv(semconv::K8S_POD_NAME, e.pod.as_deref().unwrap()),
                ]),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![crash.clone()],
                    ..Default::default()
                }],
                ..Default::default()
            },
            ResourceLogs {
                resource: resource(vec![kv("service.name", "batch")]),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![crash],
                    ..Default::default()
                }],
                ..Default::default()
            },
        ],
    }
}

/// The one record `logs_request()` delivers.
fn assert_the_crash_arrived(events: &[LogEvent]) {
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e.entity.workload, WorkloadRef::deployment("shop", "cart"));
    assert_eq!(e.entity.pod.as_deref(), Some("cart-7d9f-abcde"));
    assert_eq!(e.name.as_deref(), Some("homeostat.process.crash"));
    assert_eq!(e.severity.as_deref(), Some("WARN"));
    assert_eq!(e.time, Timestamp::from_nanos(T as i64));
    assert_eq!(e.attributes["process.pid"], 4242);
    assert_eq!(e.attributes["process.executable.name"], "sh");
}

#[tokio::test]
async fn grpc_logs_reach_the_event_sink_and_are_counted() {
    let server = Server::start(Transport::Grpc).await;
    let channel = server.channel().await;
    let mut client = LogsServiceClient::new(channel.clone());
    let resp = client.export(logs_request()).await.unwrap().into_inner();
    let partial = resp
        .partial_success
        .expect("the anonymous record is rejected");
    assert_eq!(partial.rejected_log_records, 1);
    assert!(
        partial.error_message.contains("(service.name=batch)"),
        "{}",
        partial.error_message
    );
    assert_the_crash_arrived(&server.events.take());
    assert!(server.sink.take().is_empty(), "logs are no metric points");

    let err = send_raw_to(channel, LOGS_EXPORT, GARBAGE)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("invalid OTLP protobuf"), "{err:?}");

    let stats = server.ctx.stats();
    assert_eq!(stats.log_records(), (1, 1));
    assert_eq!(
        stats.requests(OtlpSignal::Logs, Transport::Grpc, RequestResult::Partial),
        1
    );
    let text = server.metrics_text();
    for line in [
        r#"homeostat_otlp_requests_total{result="invalid",signal="logs",transport="grpc"} 1"#,
        r#"homeostat_otlp_requests_total{result="ok",signal="metrics",transport="grpc"} 0"#,
        r#"homeostat_otlp_log_records_total{result="accepted"} 1"#,
        r#"homeostat_otlp_log_records_total{result="rejected"} 1"#,
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
}

#[tokio::test]
async fn http_logs_in_protobuf_and_json_and_clear_errors() {
    let server = Server::start(Transport::Http).await;
    let url = format!("http://{}/v1/logs", server.addr);
    let (status, ct, body) = post_to(
        &url,
        "application/x-protobuf",
        None,
        logs_request().encode_to_vec(),
    )
    .await;
    assert_eq!((status, ct.as_str()), (200, "application/x-protobuf"));
    let resp = ExportLogsServiceResponse::decode(body).unwrap();
    assert_eq!(
        resp.partial_success.map(|p| p.rejected_log_records),
        Some(1)
    );
    assert_the_crash_arrived(&server.events.take());

    let json = serde_json::to_vec(&logs_request()).unwrap();
    let (status, ct, body) = post_to(&url, "application/json", Some("gzip"), gzip(&json)).await;
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    let resp: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(resp["partialSuccess"]["rejectedLogRecords"], 1, "{resp}");
    assert_the_crash_arrived(&server.events.take());

    let (status, ct, body) = post_to(&url, "application/x-protobuf", None, GARBAGE.to_vec()).await;
    assert_eq!((status, ct.as_str()), (400, "application/x-protobuf"));
    let st = RpcStatus::decode(body).unwrap();
    assert_eq!(st.code, Code::InvalidArgument as i32);
    assert!(st.message.starts_with("invalid OTLP protobuf"), "{st:?}");
    let (status, _, body) = post_to(&url, "application/json", None, b"[1,2".to_vec()).await;
    assert_eq!(status, 400);
    let st: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid OTLP JSON"),
        "{st}"
    );
    let (status, _, _) = post_to(&url, "text/plain", None, b"crash".to_vec()).await;
    assert_eq!(status, 415);

    let stats = server.ctx.stats();
    assert_eq!(stats.log_records(), (2, 2));
    assert_eq!(
        stats.requests(OtlpSignal::Logs, Transport::Http, RequestResult::Invalid),
        3
    );
    assert_eq!(
        stats.requests(OtlpSignal::Metrics, Transport::Http, RequestResult::Invalid),
        0,
        "logs are counted as logs"
    );
    assert!(server.sink.take().is_empty());
}
