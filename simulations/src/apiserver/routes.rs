//! HTTP routes: discovery documents and the generic resource handler.
//!
//! Resource paths are resolved by hand rather than by axum patterns, because
//! `/api/v1/namespaces/{name}` (a namespace) and `/api/v1/namespaces/{ns}/{plural}` (a list)
//! only differ by which table entry the segments name.
//!
//! Injected faults are decided once the request is understood and before the store is
//! touched, inside the audit middleware, so the audit log records every injected answer.

use std::sync::Arc;
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
use super::crd;
use super::deletion::DeleteOptions;
use super::discovery::{
    self, CUSTOM_RESOURCE_DEFINITIONS, POD_DISRUPTION_BUDGETS, PODS, ResourceType,
};
use super::disruption::{self, Evictions};
use super::error::ApiError;
use super::faults::{Faults, Verb};
use super::fields;
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
    evictions: Arc<Evictions>,
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
    force: Option<String>,
    propagation_policy: Option<String>,
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
        .route("/apis", get(group_list))
        .route("/api/{version}", get(core_resource_list))
        .route("/apis/{group}/{version}", get(group_resource_list))
        .fallback(resource_handler)
        .layer(middleware::from_fn_with_state(audit, log_request))
        .with_state(AppState {
            store,
            shutdown,
            faults,
            evictions: Arc::default(),
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

async fn group_list(State(state): State<AppState>) -> Json<Value> {
    Json(discovery::group_list_of(state.store.served()))
}

async fn core_resource_list(
    State(state): State<AppState>,
    Path(version): Path<String>,
) -> Result<Json<Value>, ApiError> {
    discovery::resource_list_of(state.store.served(), "", &version)
        .map(Json)
        .ok_or_else(|| unknown_path(&format!("/api/{version}")))
}

async fn group_resource_list(
    State(state): State<AppState>,
    Path((group, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    discovery::resource_list_of(state.store.served(), &group, &version)
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
    let target = parse_path(uri.path(), |g, v, p| state.store.resolve(g, v, p))?;
    let Query(params) = params.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let watching = is_true(params.watch.as_deref());
    let verb = match target.part {
        // Creating an eviction, as RBAC and audit name it.
        Part::Eviction => (method == Method::POST).then_some(Verb::Create),
        part => Verb::of(&method, target.name.is_some(), watching)
            .filter(|v| *v != Verb::Delete || part == Part::Object),
    };
    let late = match verb {
        Some(verb) => {
            state
                .faults
                .inject(verb, target.resource, target.name.as_deref())
                .await?
        }
        None => None,
    };
    let answer = answer(
        &state, method, &uri, &headers, params, watching, target, body,
    )
    .await;
    if let Some(delay) = late {
        // The change is made; only its answer is late (a client that gives up meanwhile
        // cannot know whether it landed).
        tokio::time::sleep(delay).await;
    }
    answer
}

/// The answer to a request that met no refusal.
#[allow(clippy::too_many_arguments)]
async fn answer(
    state: &AppState,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    params: Params,
    watching: bool,
    target: Target,
    body: Bytes,
) -> Result<Response, ApiError> {
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
            Method::POST => create(
                store,
                &target,
                content_type,
                &body,
                params.field_manager.as_deref(),
            ),
            _ => Err(not_allowed(&method, uri.path())),
        };
    };
    let (resource, part) = (target.resource, target.part);
    let object = match method {
        Method::POST if part == Part::Eviction => {
            let ns = ns.ok_or_else(|| not_allowed(&method, uri.path()))?;
            let status = state.evictions.evict(store, ns, name, &body)?;
            return Ok((StatusCode::CREATED, Json(status)).into_response());
        }
        Method::GET if part != Part::Eviction => store.get(resource, ns, name)?,
        Method::PUT => {
            let written: Value = patch::parse_json(content_type, &body)?;
            let written = with_name(written, name)?;
            store
                .try_modify(resource, ns, name, |stored| {
                    part.write_back(resource, stored, written)?;
                    admit(resource, stored)
                })?
                .0
        }
        Method::PATCH => {
            let patch = Patch::parse(content_type.unwrap_or(""), &body)?;
            let force = params.force.as_deref() == Some("true");
            patch_object(
                store,
                &target,
                name,
                &patch,
                params.field_manager.as_deref(),
                force,
            )?
        }
        Method::DELETE if part == Part::Object => {
            let options = DeleteOptions::parse(&body, params.propagation_policy.as_deref())?;
            store.delete_with(resource, ns, name, &options)?
        }
        _ => return Err(not_allowed(&method, uri.path())),
    };
    if method != Method::GET {
        after_write(store, resource);
    }
    Ok(Json(part.view(&object)).into_response())
}

/// Refuses an object of `resource` the real server would not store (for now, invalid
/// CustomResourceDefinitions).
fn admit(resource: &ResourceType, object: &Value) -> Result<(), ApiError> {
    if *resource == CUSTOM_RESOURCE_DEFINITIONS {
        crd::validate(object)?;
    }
    Ok(())
}

/// What the real cluster's controllers would do at once after a successful write to
/// `resource`: serve what CRDs define, recount disruption budgets. Their failures are
/// logged, not answered: the write itself went through.
fn after_write(store: &ObjectStore, resource: &ResourceType) {
    let result = if *resource == CUSTOM_RESOURCE_DEFINITIONS {
        crd::sync_custom_resources(store)
    } else if *resource == PODS || *resource == POD_DISRUPTION_BUDGETS {
        disruption::refresh_disruption_budgets(store)
    } else {
        Ok(())
    };
    if let Err(e) = result {
        tracing::warn!(resource = resource.plural, error = %e, "follow-up of a write failed");
    }
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
    field_manager: Option<&str>,
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
    if let Some(manager) = field_manager {
        let time = store.timestamp();
        let before = json!({});
        let write = fields::Write {
            manager,
            operation: fields::Operation::Update,
            subresource: None,
            config: None,
            time: &time,
        };
        object["apiVersion"] = resource.api_version().into();
        fields::record(&before, &mut object, &write)?;
    }
    admit(resource, &object)?;
    let created = store.create(resource, ns, object)?;
    after_write(store, resource);
    // What the follow-up wrote (a CRD's or budget's status) shows in the answer, as it would
    // have by the time a real client reads back.
    let name = created["metadata"]["name"].as_str().unwrap_or_default();
    let created = store.get(resource, ns, name).unwrap_or(created);
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Applies `patch` to the addressed part of the object, and records who changed which fields
/// (see [`fields`]); a server-side apply of a missing object creates it.
fn patch_object(
    store: &ObjectStore,
    target: &Target,
    name: &str,
    patch: &Patch,
    field_manager: Option<&str>,
    force: bool,
) -> Result<Value, ApiError> {
    let (resource, part, ns) = (target.resource, target.part, target.namespace.as_deref());
    let (manager, operation, config) = match (patch, field_manager) {
        (Patch::Apply(_), None) => {
            return Err(ApiError::BadRequest(
                "PATCH requests with the apply content type require a fieldManager".into(),
            ));
        }
        (Patch::Apply(config), Some(m)) => {
            (Some(m), fields::Operation::Apply { force }, Some(config))
        }
        (_, m) => (m, fields::Operation::Update, None),
    };
    let time = store.timestamp();
    let write = manager.map(|manager| fields::Write {
        manager,
        operation,
        subresource: (part == Part::Scale).then_some("scale"),
        config,
        time: &time,
    });
    let result = store.try_modify(resource, ns, name, |stored| {
        let before = stored.clone();
        let mut view = part.view(stored);
        patch.apply_to(&mut view)?;
        part.write_back(resource, stored, view)?;
        if let Some(write) = &write {
            fields::record(&before, stored, write)?;
        }
        admit(resource, stored)
    });
    match (result, config, &write) {
        (Ok((object, ())), _, _) => Ok(object),
        (Err(ApiError::NotFound(_)), Some(config), Some(write)) if part == Part::Object => {
            let mut object = with_name(config.clone(), name)?;
            object["apiVersion"] = resource.api_version().into();
            fields::record(&json!({}), &mut object, write)?;
            admit(resource, &object)?;
            store.create(resource, ns, object)
        }
        (Err(e), _, _) => Err(e),
    }
}

/// Resolves `/api/v1/...` and `/apis/{group}/{version}/...` to a resource that `served`
/// finds by group, version and plural.
fn parse_path(
    path: &str,
    served: impl Fn(&str, &str, &str) -> Option<&'static ResourceType>,
) -> Result<Target, ApiError> {
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
    let resource = served(group, version, plural).ok_or_else(|| unknown_path(path))?;
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

    fn parse_path_builtin(path: &str) -> Result<Target, ApiError> {
        parse_path(path, discovery::lookup)
    }

    #[test]
    fn paths_resolve_to_resources() {
        let t = parse_path_builtin("/api/v1/namespaces/default").expect("a namespace");
        assert_eq!(
            (t.resource.plural, t.name.as_deref()),
            ("namespaces", Some("default"))
        );
        let t = parse_path_builtin("/api/v1/namespaces/default/pods").expect("a pod list");
        assert_eq!(
            (t.resource.plural, t.namespace.as_deref(), t.name),
            ("pods", Some("default"), None)
        );
        let t =
            parse_path_builtin("/apis/apps/v1/namespaces/ns/deployments/web/scale").expect("scale");
        assert_eq!((t.name.as_deref(), t.part), (Some("web"), Part::Scale));
        let t =
            parse_path_builtin("/apis/autoscaling/v2/horizontalpodautoscalers").expect("all hpas");
        assert_eq!((t.namespace, t.name), (None, None));
        let t = parse_path_builtin("/api/v1/namespaces/ns/pods/web-1/eviction").expect("eviction");
        assert_eq!(t.part, Part::Eviction);
        for bad in [
            "/api/v1/widgets",
            "/api/v1/pods/x",
            "/api/v1/namespaces/a/namespaces",
            "/apis/apps/v1/namespaces/ns/deployments/web/nope",
            "/apis/apps/v1/namespaces/ns/deployments/web/scale/x",
            "/healthz",
        ] {
            assert!(
                matches!(parse_path_builtin(bad), Err(ApiError::NotFound(_))),
                "{bad}"
            );
        }
    }
}
