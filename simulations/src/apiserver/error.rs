//! Errors, shaped as the `metav1.Status` the real API server answers with, so clients such as
//! `kube` decode them into `kube::Error::Api` with the usual reason and code.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A refusal of an API request; each variant maps to one Kubernetes `reason` and HTTP code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The object, namespace or resource does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// A create named an object that already exists (409).
    #[error("{0}")]
    AlreadyExists(String),
    /// A write carried a stale `resourceVersion` (409).
    #[error("{0}")]
    Conflict(String),
    /// The request was well-formed but the result would not be (422), e.g. a failed JSON patch.
    #[error("{0}")]
    Invalid(String),
    /// The request itself could not be understood (400).
    #[error("{0}")]
    BadRequest(String),
    /// The verb is not served on this path (405).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The body is in an encoding the server does not speak (415), e.g. protobuf.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A watch asked for history older than the server keeps (410).
    #[error("{0}")]
    Gone(String),
    /// The server could not do what it should have (500).
    #[error("{0}")]
    Internal(String),
    /// The server sheds load and asks the client to come back later (429); the answer carries
    /// `Retry-After`, which kube's default client honours before retrying.
    #[error("{message}")]
    TooManyRequests {
        /// What the server says.
        message: String,
        /// Seconds the client should wait before trying again.
        retry_after_seconds: u32,
    },
    /// Another refusal, with the `details.causes` that say which fields or rules refused it
    /// (422s naming each invalid field, an eviction's 429 naming the disruption budget), so
    /// clients such as kubectl print them as the real server's.
    #[error("{error}")]
    WithCauses {
        /// The refusal; its code, reason and message are the answer's.
        error: Box<ApiError>,
        /// Why, cause by cause.
        causes: Vec<StatusCause>,
    },
}

/// One entry of a `metav1.Status`'s `details.causes`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StatusCause {
    /// Machine-readable kind of cause (`FieldValueRequired`, `DisruptionBudget`, ...).
    pub reason: String,
    /// What is wrong, for people.
    pub message: String,
    /// The field at fault, as a JSON path (`spec.group`); empty when no one field is.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub field: String,
}

impl ApiError {
    /// This refusal, detailed by `causes`.
    pub fn with_causes(self, causes: Vec<StatusCause>) -> ApiError {
        ApiError::WithCauses {
            error: Box::new(self),
            causes,
        }
    }

    /// The HTTP status code and Kubernetes `reason` of this error.
    pub fn code_and_reason(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::WithCauses { error, .. } => error.code_and_reason(),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "NotFound"),
            ApiError::AlreadyExists(_) => (StatusCode::CONFLICT, "AlreadyExists"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "Conflict"),
            ApiError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequest"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UnsupportedMediaType")
            }
            ApiError::Gone(_) => (StatusCode::GONE, "Expired"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "InternalError"),
            ApiError::TooManyRequests { .. } => (StatusCode::TOO_MANY_REQUESTS, "TooManyRequests"),
        }
    }

    /// This error as a `metav1.Status` object, for response bodies and watch `ERROR` events.
    pub fn to_status(&self) -> Value {
        let (code, reason) = self.code_and_reason();
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": reason,
            "code": code.as_u16(),
        });
        if let Some(seconds) = self.retry_after_seconds() {
            status["details"]["retryAfterSeconds"] = seconds.into();
        }
        if let ApiError::WithCauses { causes, .. } = self {
            status["details"]["causes"] = json!(causes);
        }
        status
    }

    /// The `Retry-After` a refusal carries; none for 0, as the real server leaves it out.
    fn retry_after_seconds(&self) -> Option<u32> {
        match self {
            ApiError::TooManyRequests {
                retry_after_seconds,
                ..
            } if *retry_after_seconds > 0 => Some(*retry_after_seconds),
            ApiError::WithCauses { error, .. } => error.retry_after_seconds(),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, _) = self.code_and_reason();
        tracing::debug!(%code, error = %self, "api request refused");
        let mut response = (code, Json(self.to_status())).into_response();
        if let Some(retry_after_seconds) = self.retry_after_seconds() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_seconds));
        }
        response
    }
}

/// Why the API server could not start or hand out what was asked of it.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding or serving the socket failed.
    #[error("api server i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The kubeconfig could not be rendered.
    #[error("rendering kubeconfig: {0}")]
    Kubeconfig(#[from] yaml_serde::Error),
    /// The server URL did not parse as a URI (it always should).
    #[error("server url: {0}")]
    Url(#[from] axum::http::uri::InvalidUri),
    /// `kube` refused to build a client.
    #[error("building kube client: {0}")]
    Client(#[from] kube::Error),
}
