//! The brain's HTTP API: health, readiness, Prometheus metrics, the decision journal, the
//! recent events of each workload and what each workload sends.

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

use crate::heard::WorkloadsHeard;
use crate::journal::Journal;
use crate::recent::RecentEvents;

/// What the API serves from.
#[derive(Clone)]
pub struct ApiState {
    /// The decision journal.
    pub journal: Journal,
    /// The newest events (OTLP log records) of each workload.
    pub events: Arc<RecentEvents>,
    /// What each workload has sent.
    pub heard: Arc<WorkloadsHeard>,
    /// Every metric of the process.
    pub registry: Registry,
    /// Set once receivers listen and policies are loaded.
    pub ready: Arc<AtomicBool>,
}

/// `/healthz`, `/readyz`, `/metrics`, `/api/v1/decisions`, `/api/v1/decisions/{id}`,
/// `/api/v1/events` and `/api/v1/workloads`.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/decisions", get(decisions))
        .route("/api/v1/decisions/{id}", get(decision))
        .route("/api/v1/events", get(events))
        .route("/api/v1/workloads", get(workloads))
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
    match crate::metrics::exposition(&s.registry) {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                TextEncoder::new().format_type().to_owned(),
            )],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// Query of `GET /api/v1/decisions` and `GET /api/v1/events`.
#[derive(Debug, Deserialize)]
struct ListQuery {
    /// Most items returned, newest first (default 100, at most 10,000).
    limit: Option<usize>,
    /// `namespace/name` of a Deployment, or `namespace/Kind/name` of any workload.
    workload: Option<String>,
}

impl ListQuery {
    fn limit(&self) -> usize {
        self.limit.unwrap_or(100).min(10_000)
    }

    fn workload(&self) -> Result<Option<WorkloadRef>, String> {
        self.workload.as_deref().map(parse_workload).transpose()
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

async fn decisions(State(s): State<ApiState>, Query(q): Query<ListQuery>) -> Response {
    let workload = match q.workload() {
        Ok(w) => w,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    match s.journal.recent(q.limit(), workload.as_ref()) {
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

/// The newest events, of one workload or all: `{"items": [...]}`.
async fn events(State(s): State<ApiState>, Query(q): Query<ListQuery>) -> Response {
    match q.workload() {
        Ok(workload) => {
            Json(json!({ "items": s.events.recent(q.limit(), workload.as_ref()) })).into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

/// Every workload heard from, with the series, pods and nodes it sent from.
async fn workloads(State(s): State<ApiState>) -> Response {
    let items: Vec<_> = s
        .heard
        .list()
        .into_iter()
        .map(|(workload, heard)| json!({ "workload": workload, "id": workload.to_string(), "heard": heard }))
        .collect();
    Json(json!({ "items": items })).into_response()
}

/// `namespace/name` (a Deployment, as the journal's API always took it) or
/// `namespace/Kind/name`, as a workload prints (`vm1/Cgroup/nginx.service`; a cgroup's path
/// may follow the kind: `vm1/Cgroup//user.slice`).
fn parse_workload(s: &str) -> Result<WorkloadRef, String> {
    let parts: Vec<&str> = s.splitn(3, '/').collect();
    let (namespace, kind, name) = match parts[..] {
        [ns, name] => (ns, Some(WorkloadKind::Deployment), name),
        [ns, kind, name] => (ns, WorkloadKind::from_name(kind), name),
        _ => ("", None, ""),
    };
    match kind {
        Some(kind) if !namespace.is_empty() && !name.is_empty() => Ok(WorkloadRef {
            namespace: namespace.into(),
            kind,
            name: name.into(),
        }),
        _ => Err(format!(
            "workload {s:?}: expected namespace/name (a Deployment) or namespace/Kind/name \
             with Kind one of Deployment, StatefulSet, DaemonSet, Cgroup"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workloads_are_named_as_they_print() {
        assert_eq!(
            parse_workload("shop/web"),
            Ok(WorkloadRef::deployment("shop", "web"))
        );
        let unit = WorkloadRef::cgroup("vm1", "nginx.service");
        assert_eq!(parse_workload(&unit.to_string()), Ok(unit));
        let path = WorkloadRef::cgroup("vm1", "/user.slice");
        assert_eq!(parse_workload(&path.to_string()), Ok(path));
        for bad in ["nonsense", "a/b/c", "/web", "shop/", "shop/Cgroup/"] {
            let e = parse_workload(bad).expect_err(bad);
            assert!(e.contains("expected namespace/name"), "{e}");
        }
    }
}
