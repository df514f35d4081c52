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

impl Received {
    /// Asserts it was a forced server-side apply as homeostat.
    pub fn assert_forced_apply(&self) {
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        assert_eq!(
            self.query.as_deref(),
            Some("&force=true&fieldManager=homeostat")
        );
    }

    /// Asserts it was a merge patch as homeostat.
    pub fn assert_merge_patch(&self) {
        assert_eq!(
            self.content_type.as_deref(),
            Some("application/merge-patch+json")
        );
        assert_eq!(self.query.as_deref(), Some("&fieldManager=homeostat"));
    }
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

/// A Kubernetes `Status` of failure.
pub fn status(code: u16, reason: &str, message: &str) -> serde_json::Value {
    serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code})
}

/// How the API server fails a request.
#[derive(Clone, Copy, Debug)]
pub enum Failure {
    /// It answers with this status code and a `Status` body.
    Status(u16),
    /// No answer comes: the connection times out.
    Timeout,
}

/// Fails the next request as `failure` after checking its method and path.
pub async fn fail(handle: &mut Handle, method: Method, path: &str, failure: Failure) {
    let (code, reason) = match failure {
        Failure::Timeout => {
            let (req, send) = handle.next_request().await.expect("a request");
            assert_eq!(req.method(), method);
            assert_eq!(req.uri().path(), path);
            send.send_error(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "operation timed out",
            ));
            return;
        }
        Failure::Status(409) => (409, "Conflict"),
        Failure::Status(429) => (429, "TooManyRequests"),
        Failure::Status(404) => (404, "NotFound"),
        Failure::Status(code) => (code, "InternalError"),
    };
    let reply = status(code, reason, &format!("the simulated {reason}"));
    answer(handle, method, path, code, reply).await;
}

/// Runs `request` once per failure answer (409, 429, 500, a timeout) to `method` `path`, and
/// checks that each is classified as the retry loop must treat it: a conflict is re-read and
/// re-planned, throttling, a server error and a lost answer are sent again later.
pub async fn check_failures<F, Fut>(method: Method, path: &'static str, request: F)
where
    F: Fn(kube::Client) -> Fut,
    Fut: std::future::Future<Output = Result<(), crate::ActuatorError>>,
{
    use crate::Retry;
    for (failure, expected) in [
        (Failure::Status(409), Retry::Replan),
        (Failure::Status(429), Retry::Later),
        (Failure::Status(500), Retry::Later),
        (Failure::Timeout, Retry::Later),
    ] {
        let (client, mut handle) = client();
        let m = method.clone();
        let server = tokio::spawn(async move { fail(&mut handle, m, path, failure).await });
        let err = request(client).await.expect_err("the request failed");
        server.await.expect("server");
        assert_eq!(err.retry(), expected, "{failure:?}: {err}");
    }
}
