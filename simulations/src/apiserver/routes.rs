//! HTTP routes: discovery documents and the generic resource handler.
//!
//! Resource paths are resolved by hand rather than by axum patterns, because
//! `/api/v1/namespaces/{name}` (a namespace) and `/api/v1/namespaces/{ns}/{plural}` (a list)
//! only differ by which table entry the segments name.
//!
//! Injected faults are decided once the request is understood and before the store is
//! touched, inside the audit middleware, so the audit log records every injected answer.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::audit::{AuditLog, AuditRecord};
use super::discovery::{self, ResourceType};
use super::error::ApiError;
use super::faults::{Faults, Verb};
use super::patch::{self, Patch};
use super::selector::ObjectSelector;
use super::store::ObjectStore;
use super::subresource::Part;
use super::watch::{self as watch_stream, WatchRequest};

/// How long a watch runs when the client does not say, like the real server's default.
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// What every handler shares.
#[derive(Clone)]
struct AppState {
    store: ObjectStore,
    shutdown: watch::Receiver<bool>,
    faults: Faults,
}

/// The query parameters the server understands; others are ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Params {
    label_selector: Option<String>,
    field_selector: Option<String>,
    watch: Option<String>,
    resource_version: Option<String>,
    timeout_seconds: Option<String>,
    field_manager: Option<String>,
}

/// The object or collection a resource path names.
#[derive(Debug)]
struct Target {
    resource: &'static ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    part: Part,
}

/// The API server's router over `store`; watches end when `shutdown` turns true; every
/// request is recorded in `audit`.
pub fn router(store: ObjectStore, shutdown: watch::Receiver<bool>, audit: AuditLog) -> Router {
    router_with_faults(store, shutdown, audit, Faults::default())
}

/// Like [`router`], with resource requests subject to `faults` (which the caller keeps a
/// clone of, to change them while the server runs).
pub fn router_with_faults(
    store: ObjectStore,
    shutdown: watch::Receiver<bool>,
    audit: AuditLog,
    faults: Faults,
) -> Router {
    Router::new()
        .route("/version", get(|| async { Json(discovery::version()) }))
        .route("/api", get(|| async { Json(discovery::core_versions()) }))
        .route("/apis", get(|| async { Json(discovery::group_list()) }))
        .route("/api/{version}", get(core_resource_list))
        .route("/apis/{group}/{version}", get(group_resource_list))
        .fallback(resource_handler)
        .layer(middleware::from_fn_with_state(audit, log_request))
        .with_state(AppState {
            store,
            shutdown,
            faults,
        })
}

async fn log_request(State(audit): State<AuditLog>, request: Request, next: Next) -> Response {
    let (method, uri) = (request.method().clone(), request.uri().clone());
    let (content_type, user_agent) = {
        let header = |name: header::HeaderName| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        (header(header::CONTENT_TYPE), header(header::USER_AGENT))
    };
    let response = next.run(request).await;
    tracing::debug!(%method, %uri, status = %response.status(), "api request");
    audit.record(AuditRecord {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        content_type,
        user_agent,
        status: response.status().as_u16(),
    });
    response
}

async fn core_resource_list(Path(version): Path<String>) -> Result<Json<Value>, ApiError> {
    discovery::resource_list("", &version)
        .map(Json)
        .ok_or_else(|| unknown_path(&format!("/api/{version}")))
}

async fn group_resource_list(
    Path((group, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    discovery::resource_list(&group, &version)
        .map(Json)
        .ok_or_else(|| unknown_path(&format!("/apis/{group}/{version}")))
}

async fn resource_handler(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    params: Result<Query<Params>, QueryRejection>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let target = parse_path(uri.path())?;
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let watching = is_true(params.watch.as_deref());
    let verb = Verb::of(&method, target.name.is_some(), watching)
        .filter(|v| *v != Verb::Delete || target.part == Part::Object);
    if let Some(verb) = verb {
        state
            .faults
            .inject(verb, target.resource, target.name.as_deref())
            .await?;
    }
    let store = &state.store;
    let ns = target.namespace.as_deref();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let Some(name) = target.name.as_deref() else {
        return match method {
            Method::GET if watching => {
                let req = watch_request(&target, &params)?;
                let drops = state.faults.watch_drops(target.resource);
                Ok(watch_stream::serve(
                    store,
                    req,
                    state.shutdown.clone(),
                    Some(drops),
                ))
            }
            Method::GET => list(store, &target, &params),
            Method::POST => create(store, &target, content_type, &body),
            _ => Err(not_allowed(&method, uri.path())),
        };
    };
    let (resource, part) = (target.resource, target.part);
    let object = match method {
        Method::GET => store.get(resource, ns, name)?,
        Method::PUT => {
            let written: Value = patch::parse_json(content_type, &body)?;
            let written = with_name(written, name)?;
            store
                .try_modify(resource, ns, name, |stored| {
                    part.write_back(resource, stored, written)
                })?
                .0
        }
        Method::PATCH => {
            let patch = Patch::parse(content_type.unwrap_or(""), &body)?;
            patch_object(
                store,
                &target,
                name,
                &patch,
                params.field_manager.as_deref(),
            )?
        }
        Method::DELETE if part == Part::Object => store.delete(resource, ns, name)?,
        _ => return Err(not_allowed(&method, uri.path())),
    };
    Ok(Json(part.view(&object)).into_response())
}

fn list(store: &ObjectStore, target: &Target, params: &Params) -> Result<Response, ApiError> {
    let selector = ObjectSelector::parse(
        params.label_selector.as_deref(),
        params.field_selector.as_deref(),
    )?;
    let resource = target.resource;
    let (items, rv) = store.list(resource, target.namespace.as_deref(), &selector);
    Ok(Json(json!({
        "kind": format!("{}List", resource.kind),
        "apiVersion": resource.api_version(),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items,
    }))
    .into_response())
}

fn create(
    store: &ObjectStore,
    target: &Target,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let mut object: Value = patch::parse_json(content_type, body)?;
    let resource = target.resource;
    let ns = target.namespace.as_deref();
    if let (Some(ns), Some(body_ns)) = (ns, object["metadata"]["namespace"].as_str())
        && ns != body_ns
    {
        return Err(ApiError::BadRequest(format!(
            "the namespace of the provided object ({body_ns}) does not match the namespace \
             sent on the request ({ns})"
        )));
    }
    if resource.has_subresource("status")
        && let Some(obj) = object.as_object_mut()
    {
        obj.remove("status");
    }
    let created = store.create(resource, ns, object)?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Applies `patch` to the addressed part of the object; a server-side apply of a missing
/// object creates it.
fn patch_object(
    store: &ObjectStore,
    target: &Target,
    name: &str,
    patch: &Patch,
    field_manager: Option<&str>,
) -> Result<Value, ApiError> {
    let (resource, part, ns) = (target.resource, target.part, target.namespace.as_deref());
    let manager = match (patch.is_apply(), field_manager) {
        (true, None) => {
            return Err(ApiError::BadRequest(
                "PATCH requests with the apply content type require a fieldManager".into(),
            ));
        }
        (true, Some(m)) => Some((m, store.timestamp())),
        (false, _) => None,
    };
    let result = store.try_modify(resource, ns, name, |stored| {
        let mut view = part.view(stored);
        patch.apply_to(&mut view)?;
        if let Some((manager, time)) = &manager {
            patch::record_apply_manager(&mut view, manager, time);
        }
        part.write_back(resource, stored, view)
    });
    match (result, patch, &manager) {
        (Ok((object, ())), _, _) => Ok(object),
        (Err(ApiError::NotFound(_)), Patch::Apply(config), Some((manager, time)))
            if part == Part::Object =>
        {
            let mut object = with_name(config.clone(), name)?;
            object["apiVersion"] = resource.api_version().into();
            patch::record_apply_manager(&mut object, manager, time);
            store.create(resource, ns, object)
        }
        (Err(e), _, _) => Err(e),
    }
}

/// Resolves `/api/v1/...` and `/apis/{group}/{version}/...` to a served resource.
fn parse_path(path: &str) -> Result<Target, ApiError> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segments.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(unknown_path(path)),
    };
    let (namespace, plural, name, sub) = match rest {
        ["namespaces", ns, plural, tail @ ..] if tail.len() <= 2 => {
            (Some(*ns), *plural, tail.first(), tail.get(1))
        }
        [plural, tail @ ..] if tail.len() <= 2 => (None, *plural, tail.first(), tail.get(1)),
        _ => return Err(unknown_path(path)),
    };
    let resource = discovery::lookup(group, version, plural).ok_or_else(|| unknown_path(path))?;
    if namespace.is_some() && !resource.namespaced
        || namespace.is_none() && name.is_some() && resource.namespaced
    {
        return Err(unknown_path(path));
    }
    Ok(Target {
        resource,
        namespace: namespace.map(str::to_owned),
        name: name.map(|n| (*n).to_owned()),
        part: Part::parse(resource, sub.copied())?,
    })
}

fn watch_request(target: &Target, params: &Params) -> Result<WatchRequest, ApiError> {
    let since = match params.resource_version.as_deref() {
        None | Some("" | "0") => None,
        Some(rv) => Some(rv.parse().map_err(|_| {
            ApiError::BadRequest(format!("resourceVersion `{rv}` is not a version"))
        })?),
    };
    let timeout = match params.timeout_seconds.as_deref() {
        None => DEFAULT_WATCH_TIMEOUT,
        Some(s) => Duration::from_secs(s.parse().map_err(|_| {
            ApiError::BadRequest(format!("timeoutSeconds `{s}` is not a whole number"))
        })?),
    };
    Ok(WatchRequest {
        resource: target.resource,
        namespace: target.namespace.clone(),
        selector: ObjectSelector::parse(
            params.label_selector.as_deref(),
            params.field_selector.as_deref(),
        )?,
        since,
        timeout,
    })
}

/// `written` with `metadata.name` set to `name`, or `BadRequest` if it names another object.
fn with_name(mut written: Value, name: &str) -> Result<Value, ApiError> {
    match written["metadata"]["name"].as_str() {
        Some(n) if n != name => Err(ApiError::BadRequest(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        ))),
        _ if !written.is_object() => Err(ApiError::BadRequest(
            "the request body is not a JSON object".into(),
        )),
        _ => {
            written["metadata"]["name"] = name.into();
            Ok(written)
        }
    }
}

fn is_true(flag: Option<&str>) -> bool {
    matches!(flag, Some("true" | "1"))
}

fn unknown_path(path: &str) -> ApiError {
    ApiError::NotFound(format!(
        "the server could not find the requested resource ({path})"
    ))
}

fn not_allowed(method: &Method, path: &str) -> ApiError {
    ApiError::MethodNotAllowed(format!("{method} is not supported on {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_to_resources() {
        let t = parse_path("/api/v1/namespaces/default").expect("a namespace");
        assert_eq!(
            (t.resource.plural, t.name.as_deref()),
            ("namespaces", Some("default"))
        );
        let t = parse_path("/api/v1/namespaces/default/pods").expect("a pod list");
        assert_eq!(
            (t.resource.plural, t.namespace.as_deref(), t.name),
            ("pods", Some("default"), None)
        );
        let t = parse_path("/apis/apps/v1/namespaces/ns/deployments/web/scale").expect("scale");
        assert_eq!((t.name.as_deref(), t.part), (Some("web"), Part::Scale));
        let t = parse_path("/apis/autoscaling/v2/horizontalpodautoscalers").expect("all hpas");
        assert_eq!((t.namespace, t.name), (None, None));
        for bad in [
            "/api/v1/widgets",
            "/api/v1/pods/x",
            "/api/v1/namespaces/a/namespaces",
            "/apis/apps/v1/namespaces/ns/deployments/web/nope",
            "/apis/apps/v1/namespaces/ns/deployments/web/scale/x",
            "/healthz",
        ] {
            assert!(
                matches!(parse_path(bad), Err(ApiError::NotFound(_))),
                "{bad}"
            );
        }
    }
}
