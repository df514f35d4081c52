//! `?watch=true`: a newline-delimited stream of watch events, history first, then live.
//!
//! Events are filtered on the object after the change, so an object that stops matching a
//! selector is not announced as `DELETED` (the real server does that). Bookmarks are not sent;
//! clients do not need them to resume, since every event carries its `resourceVersion`.
//!
//! With fault injection a stream may end right after any event, as a broken connection or a
//! restarting server would end it; clients resume from the last version they saw.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::{StreamExt, future, stream};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;
use tokio_stream::wrappers::BroadcastStream;

use super::discovery::ResourceType;
use super::error::ApiError;
use super::faults::WatchDrops;
use super::selector::ObjectSelector;
use super::store::{ObjectStore, StoreEvent};

/// What one watch wants to see.
#[derive(Clone, Debug)]
pub struct WatchRequest {
    /// The resource watched.
    pub resource: &'static ResourceType,
    /// Only this namespace, or all.
    pub namespace: Option<String>,
    /// Only objects it selects.
    pub selector: ObjectSelector,
    /// Resume after this version; `None` starts with the current objects as `ADDED`.
    pub since: Option<u64>,
    /// When the server ends the stream (clients then resume).
    pub timeout: Duration,
}

/// One line of the stream.
#[derive(Serialize)]
struct Line<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    object: &'a Value,
}

enum Item {
    Event(Arc<StoreEvent>),
    Expired(ApiError),
}

impl Item {
    fn to_line(&self) -> Bytes {
        let status;
        let line = match self {
            Item::Event(e) => Line {
                event_type: e.event_type.as_str(),
                object: &e.object,
            },
            Item::Expired(err) => {
                status = err.to_status();
                Line {
                    event_type: "ERROR",
                    object: &status,
                }
            }
        };
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');
        Bytes::from(bytes)
    }
}

/// Streams the watch `req` until its timeout, the server's shutdown, the watcher falling so
/// far behind that it must re-list (then a final `ERROR` event with a 410 `Status`), or an
/// injected drop from `drops` right after an event.
pub fn serve(
    store: &ObjectStore,
    req: WatchRequest,
    mut shutdown: watch::Receiver<bool>,
    drops: Option<WatchDrops>,
) -> Response {
    let WatchRequest {
        resource,
        namespace,
        selector,
        since,
        timeout,
    } = req;
    let items = match store.watch(resource, since) {
        Ok(start) => {
            let live = BroadcastStream::new(start.live).map(|r| match r {
                Ok(event) => Item::Event(event),
                Err(lagged) => Item::Expired(ApiError::Gone(format!(
                    "the watch fell behind and must be restarted: {lagged}"
                ))),
            });
            stream::iter(start.backlog.into_iter().map(Item::Event))
                .chain(live)
                .boxed()
        }
        Err(err) => stream::iter([Item::Expired(err)]).boxed(),
    };
    let wanted = move |item: &Item| match item {
        Item::Event(e) => {
            e.resource.same_resource(resource)
                && namespace.as_deref().is_none_or(|ns| e.namespace() == ns)
                && selector.matches(&e.object)
        }
        Item::Expired(_) => true,
    };
    let stop = async move {
        tokio::select! {
            () = tokio::time::sleep(timeout) => {}
            _ = shutdown.wait_for(|stopping| *stopping) => {}
        }
    };
    let items = items
        .filter(move |item| future::ready(wanted(item)))
        .boxed();
    // The stream ends as soon as its last line is out, not when a further item turns up.
    let lines = stream::unfold(
        (items, drops, false),
        |(mut items, mut drops, ended)| async move {
            if ended {
                return None;
            }
            let item = items.next().await?;
            let ends = match &item {
                // Nothing follows an expiry: the client must re-list.
                Item::Expired(_) => true,
                Item::Event(_) => drops.as_mut().is_some_and(WatchDrops::after_event),
            };
            Some((Ok::<_, Infallible>(item.to_line()), (items, drops, ends)))
        },
    )
    .take_until(Box::pin(stop));
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(lines),
    )
        .into_response()
}
