//! The API server side of kube's `tower-test` pattern, shared by the actuators' unit tests.

use http::{Method, Request, Response};
use kube::client::Body;
use tower_test::mock;

/// The test's end of the mock connection.
pub type Handle = mock::Handle<Request<Body>, Response<Body>>;

/// A client whose requests arrive at the returned handle.
pub fn client() -> (kube::Client, Handle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, "default"), handle)
}

/// One request as it arrived.
pub struct Received {
    /// Its query string, if any.
    pub query: Option<String>,
    /// Its `Content-Type`, if any.
    pub content_type: Option<String>,
    /// Its body.
    pub body: Vec<u8>,
}

/// Answers the next request with `status` and `reply`, after checking its method and path.
pub async fn answer(
    handle: &mut Handle,
    method: Method,
    path: &str,
    status: u16,
    reply: serde_json::Value,
) -> Received {
    let (req, send) = handle.next_request().await.expect("a request");
    assert_eq!(req.method(), method);
    assert_eq!(req.uri().path(), path);
    let query = req.uri().query().map(str::to_owned);
    let content_type = req
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned());
    let body = req
        .into_body()
        .collect_bytes()
        .await
        .expect("body")
        .to_vec();
    send.send_response(
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(&reply).expect("json")))
            .expect("response"),
    );
    Received {
        query,
        content_type,
        body,
    }
}
