//! The cluster's `Policy` objects (`policies.homeostat.dev`, cluster-scoped), watched with
//! kube-rs's watcher: it lists, then watches, and lists again after a lost watch, with
//! backoff while the API server refuses (the CRD not installed, say).

use futures::StreamExt;
use homeostat_policies::crd::{GROUP, PLURAL, VERSION};
use homeostat_policies::document::KIND;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::watch;

use super::Reloader;

/// The `Policy` resource as kube's dynamic API names it.
pub fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, KIND), PLURAL)
}

/// Watches `Policy` objects through `client` and hands every change to `reloader`, until
/// `shutdown` turns true. A failure to list or watch is logged once until it changes or
/// the watch recovers; the policies in force stay meanwhile.
pub async fn watch(client: Client, reloader: Reloader, mut shutdown: watch::Receiver<bool>) {
    let api: Api<DynamicObject> = Api::all_with(client, &resource());
    let events = watcher::watcher(api, watcher::Config::default()).default_backoff();
    tokio::pin!(events);
    let mut listed = Vec::new();
    let mut failing: Option<String> = None;
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let event = match event {
            None => return,
            Some(Ok(event)) => event,
            Some(Err(e)) => {
                let error = e.to_string();
                if failing.as_deref() != Some(error.as_str()) {
                    tracing::warn!(
                        resource = %format!("{PLURAL}.{GROUP}"),
                        %error,
                        "cannot watch Policy objects (is the CRD installed and the brain allowed to list and watch it?); retrying, the policies in force stay"
                    );
                    failing = Some(error);
                }
                continue;
            }
        };
        match event {
            Event::Init => listed.clear(),
            Event::InitApply(object) => listed.extend(to_json(&object)),
            Event::InitDone => {
                if failing.take().is_some() {
                    tracing::info!("watching Policy objects again");
                }
                reloader.replace_objects(&std::mem::take(&mut listed)).await;
            }
            Event::Apply(object) => {
                if let Some(object) = to_json(&object) {
                    reloader.apply_object(&object).await;
                }
            }
            Event::Delete(object) => {
                if let Some(name) = &object.metadata.name {
                    reloader.remove_object(name).await;
                }
            }
        }
    }
}

fn to_json(object: &DynamicObject) -> Option<serde_json::Value> {
    serde_json::to_value(object)
        .inspect_err(|e| tracing::warn!(error = %e, "a Policy object could not be read"))
        .ok()
}
