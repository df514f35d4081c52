//! What homeostat did, as the cluster remembers it: every applied action's Event carries a
//! label and a record of the action, so a brain without that part of the journal (a replica
//! that just took the lead, a pod rescheduled onto an empty volume) reads the recent actions
//! back and keeps the cooldowns and budgets they started.
//!
//! Events expire (the API server's `--event-ttl`, one hour by default), so this covers the
//! recent past only; the journal remains the record of everything.

use homeostat_core::{Action, DecisionId, Timestamp, WorkloadRef};
use k8s_openapi::api::core::v1::Event;
use kube::api::ListParams;
use kube::{Api, Client};
use serde::{Deserialize, Serialize};

use crate::ActuatorError;

/// Label on the Event of every applied action, valued with the action's kind.
pub const ACTION_LABEL: &str = "homeostat.dev/action";
/// Annotation on that Event holding its [`ActionRecord`] as JSON.
pub const RECORD_ANNOTATION: &str = "homeostat.dev/action-record";

/// One applied action, as its Event carries it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionRecord {
    /// The decision that applied it.
    pub decision: DecisionId,
    /// The workload it was for.
    pub workload: WorkloadRef,
    /// The action as applied: enough to undo it (a raised HPA's earlier minReplicas).
    pub action: Action,
    /// When it was decided.
    pub time: Timestamp,
}

/// Reads [`ActionRecord`]s back from the cluster's Events.
#[derive(Clone)]
pub struct ActionHistory {
    client: Client,
}

impl ActionHistory {
    /// A reader talking through `client`.
    pub fn new(client: Client) -> Self {
        ActionHistory { client }
    }

    /// Every action recorded at or after `since`, in all namespaces, oldest first. An Event
    /// whose record cannot be read (edited by hand, another version) is skipped with a
    /// warning: it cannot start a cooldown, but it cannot stop the others either.
    pub async fn since(&self, since: Timestamp) -> Result<Vec<ActionRecord>, ActuatorError> {
        let api: Api<Event> = Api::all(self.client.clone());
        let list = api
            .list(&ListParams::default().labels(ACTION_LABEL))
            .await
            .map_err(|e| ActuatorError::from_kube("homeostat's action Events".to_owned(), e))?;
        let mut records: Vec<ActionRecord> = list
            .items
            .iter()
            .filter_map(|event| {
                let text = event
                    .metadata
                    .annotations
                    .as_ref()?
                    .get(RECORD_ANNOTATION)?;
                serde_json::from_str(text)
                    .inspect_err(|e| {
                        tracing::warn!(
                            event = event.metadata.name.as_deref().unwrap_or_default(),
                            namespace = event.metadata.namespace.as_deref().unwrap_or_default(),
                            error = %e,
                            "an action Event's record is unreadable; ignored"
                        );
                    })
                    .ok()
            })
            .filter(|r: &ActionRecord| r.time >= since)
            .collect();
        records.sort_by_key(|r| r.time);
        Ok(records)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{answer, client};
    use homeostat_core::{ObjectRef, WorkloadKind};
    use http::Method;
    use serde_json::json;

    fn record(decision: &str, secs: i64) -> ActionRecord {
        ActionRecord {
            decision: DecisionId(decision.into()),
            workload: WorkloadRef {
                namespace: "shop".into(),
                kind: WorkloadKind::Deployment,
                name: "checkout".into(),
            },
            action: Action::ScaleHpa {
                hpa: ObjectRef {
                    api_version: "autoscaling/v2".into(),
                    kind: "HorizontalPodAutoscaler".into(),
                    namespace: "shop".into(),
                    name: "checkout".into(),
                },
                min_replicas: 6,
                previous_min_replicas: 2,
            },
            time: Timestamp::from_secs(secs),
        }
    }

    fn event(name: &str, annotation: Option<String>) -> serde_json::Value {
        let mut meta = json!({"name": name, "namespace": "shop",
                              "labels": {ACTION_LABEL: "scale-hpa"}});
        if let Some(a) = annotation {
            meta["annotations"] = json!({ RECORD_ANNOTATION: a });
        }
        json!({"metadata": meta, "involvedObject": {}})
    }

    #[tokio::test]
    async fn lists_labelled_events_everywhere_and_keeps_the_readable_recent_ones() {
        let (client, mut handle) = client();
        let history = ActionHistory::new(client);
        let reading = tokio::spawn(async move { history.since(Timestamp::from_secs(100)).await });
        let old = serde_json::to_string(&record("01OLD", 50)).expect("json");
        let newer = serde_json::to_string(&record("01NEW", 300)).expect("json");
        let recent = serde_json::to_string(&record("01MID", 200)).expect("json");
        let got = answer(
            &mut handle,
            Method::GET,
            "/api/v1/events",
            200,
            json!({"apiVersion": "v1", "kind": "EventList", "metadata": {}, "items": [
                event("a", Some(old)),
                event("b", Some(newer)),
                event("c", Some("{not json".into())),
                event("d", None),
                event("e", Some(recent)),
            ]}),
        )
        .await;
        assert_eq!(
            got.query.as_deref(),
            Some("&labelSelector=homeostat.dev%2Faction")
        );
        let records = reading.await.expect("task").expect("list");
        assert_eq!(records, vec![record("01MID", 200), record("01NEW", 300)]);
    }

    #[tokio::test]
    async fn an_applied_actions_event_carries_its_label_and_record() {
        let (client, mut handle) = client();
        let recorder = crate::EventRecorder::new(client);
        let target = ObjectRef {
            api_version: "autoscaling/v2".into(),
            kind: "HorizontalPodAutoscaler".into(),
            namespace: "shop".into(),
            name: "checkout".into(),
        };
        let rec = record("01ABC", 1_000);
        let sent = rec.clone();
        let recording = tokio::spawn(async move {
            recorder
                .applied(&target, Some("uid-7"), "raised", &sent)
                .await
        });
        let got = answer(
            &mut handle,
            Method::POST,
            "/api/v1/namespaces/shop/events",
            201,
            json!({"metadata": {"name": "checkout.1", "namespace": "shop"}, "involvedObject": {}}),
        )
        .await;
        recording.await.expect("task").expect("created");
        let body: serde_json::Value = serde_json::from_slice(&got.body).expect("json body");
        assert_eq!(body["metadata"]["labels"][ACTION_LABEL], "scale-hpa");
        let carried: ActionRecord = serde_json::from_str(
            body["metadata"]["annotations"][RECORD_ANNOTATION]
                .as_str()
                .expect("record annotation"),
        )
        .expect("record");
        assert_eq!(carried, rec);
        assert_eq!(body["reason"], "HomeostatScaled");
        assert_eq!(body["involvedObject"]["uid"], "uid-7");
    }

    #[tokio::test]
    async fn a_refused_list_is_an_error_naming_what_was_read() {
        let (client, mut handle) = client();
        let history = ActionHistory::new(client);
        let reading = tokio::spawn(async move { history.since(Timestamp::from_secs(0)).await });
        answer(
            &mut handle,
            Method::GET,
            "/api/v1/events",
            403,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                   "reason": "Forbidden", "code": 403, "message": "events is forbidden"}),
        )
        .await;
        let err = reading.await.expect("task").expect_err("forbidden");
        assert!(err.to_string().contains("action Events"), "{err}");
    }
}
