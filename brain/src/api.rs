//! The brain's HTTP API: health, readiness, Prometheus metrics and the decision journal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use homeostat_core::{DecisionId, WorkloadKind, WorkloadRef};
use prometheus::{Encoder, Registry, TextEncoder};
use serde::Deserialize;
use serde_json::json;

use crate::journal::Journal;

/// What the API serves from.
#[derive(Clone)]
pub struct ApiState {
    /// The decision journal.
    pub journal: Journal,
    /// Every metric of the process.
    pub registry: Registry,
    /// Set once receivers listen and policies are loaded.
    pub ready: Arc<AtomicBool>,
}

/// `/healthz`, `/readyz`, `/metrics`, `/api/v1/decisions` and `/api/v1/decisions/{id}`.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/decisions", get(decisions))
        .route("/api/v1/decisions/{id}", get(decision))
        .with_state(state)
}

async fn readyz(State(s): State<ApiState>) -> Response {
    if s.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
    }
}

async fn metrics(State(s): State<ApiState>) -> Response {
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    match encoder.encode(&s.registry.gather(), &mut body) {
        Ok(()) => (
            [(header::CONTENT_TYPE, encoder.format_type().to_owned())],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Query of `GET /api/v1/decisions`.
#[derive(Debug, Deserialize)]
struct DecisionsQuery {
    /// Most decisions returned, newest first (default 100, at most 10,000).
    limit: Option<usize>,
    /// `namespace/name` of a Deployment.
    workload: Option<String>,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn decisions(State(s): State<ApiState>, Query(q): Query<DecisionsQuery>) -> Response {
    let limit = q.limit.unwrap_or(100).min(10_000);
    let workload = match q.workload.as_deref().map(parse_workload).transpose() {
        Ok(w) => w,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match s.journal.recent(limit, workload.as_ref()) {
        Ok(items) => Json(json!({ "items": items })).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn decision(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    match s.journal.get(&DecisionId(id.clone())) {
        Ok(Some(d)) => Json(d).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no decision {id}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn parse_workload(s: &str) -> Result<WorkloadRef, String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(WorkloadRef {
                namespace: ns.into(),
                kind: WorkloadKind::Deployment,
                name: name.into(),
            })
        }
        _ => Err(format!("workload {s:?}: expected namespace/name")),
    }
}
