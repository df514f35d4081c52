//! Kubernetes Events on the objects homeostat changes, so `kubectl describe` shows what it
//! did and why, next to what the HPA controller did.
//!
//! `kubectl describe` finds an object's Events by `involvedObject.uid` as well as its name
//! and kind, so every Event carries the target's uid: the one the change's answer returned,
//! or, for a workload or pod, one read back before the Event is written. An Event whose uid
//! cannot be read is still written (`kubectl get events` shows it): the story is never lost
//! for want of a uid.

use homeostat_core::{Action, ObjectRef, Timestamp};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::{Api, Client};

use crate::history::{ACTION_LABEL, ActionRecord, RECORD_ANNOTATION};
use crate::{ActuatorError, FIELD_MANAGER};

/// The Event an applied action leaves: its `reason` (what happened, CamelCase as Kubernetes
/// reasons are) and its `action` (what homeostat did), one pair per kind of action.
pub fn describe(action: &Action) -> (&'static str, &'static str) {
    match action {
        Action::ScaleHpa { .. } => ("HomeostatScaled", "SetMinReplicas"),
        Action::RestartPods { .. } => ("HomeostatRestarted", "EvictPod"),
        Action::ThrottleSampling { .. } => ("HomeostatThrottled", "ThrottleSampling"),
        Action::TaintNode { remove: false, .. } => ("HomeostatTainted", "TaintNode"),
        Action::TaintNode { remove: true, .. } => ("HomeostatUntainted", "UntaintNode"),
        Action::ScaleWorkload { .. } => ("HomeostatScaled", "ScaleReplicas"),
        Action::RolloutRestart { .. } => ("HomeostatRolloutRestarted", "RolloutRestart"),
    }
}

/// Records core/v1 Events.
#[derive(Clone)]
pub struct EventRecorder {
    client: Client,
}

impl EventRecorder {
    /// A recorder talking through `client`.
    pub fn new(client: Client) -> Self {
        EventRecorder { client }
    }

    /// Records a `Normal` event of `action` on `target`, its reason and action named by
    /// [`describe`].
    pub async fn normal(
        &self,
        target: &ObjectRef,
        uid: Option<&str>,
        action: &Action,
        message: &str,
        now: Timestamp,
    ) -> Result<(), ActuatorError> {
        let (reason, action) = describe(action);
        self.create(target, uid, ("Normal", reason, action), message, now, None)
            .await
    }

    /// Records a `Warning` event on `target`: something homeostat refused or could not do
    /// (`action`, e.g. `Load`), for whoever owns `target` to fix.
    pub async fn warning(
        &self,
        target: &ObjectRef,
        uid: Option<&str>,
        reason: &str,
        action: &str,
        message: &str,
        now: Timestamp,
    ) -> Result<(), ActuatorError> {
        self.create(target, uid, ("Warning", reason, action), message, now, None)
            .await
    }

    /// Records the `Normal` event of an applied action, named by [`describe`], labelled and
    /// carrying `record`, so [`ActionHistory`](crate::history::ActionHistory) can read the
    /// action back.
    pub async fn applied(
        &self,
        target: &ObjectRef,
        uid: Option<&str>,
        message: &str,
        record: &ActionRecord,
    ) -> Result<(), ActuatorError> {
        let (reason, action) = describe(&record.action);
        self.create(
            target,
            uid,
            ("Normal", reason, action),
            message,
            record.time,
            Some(record),
        )
        .await
    }

    /// `target`'s uid, read from the cluster when it is a workload or a pod (the kinds whose
    /// Events homeostat writes without having just changed them); `None` when it cannot be.
    async fn uid_of(&self, target: &ObjectRef) -> Option<String> {
        let (group, version) = match target.api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", target.api_version.as_str()),
        };
        let readable = matches!(
            (group, version, target.kind.as_str()),
            ("apps", "v1", "Deployment" | "StatefulSet") | ("", "v1", "Pod")
        );
        if !readable || target.namespace.is_empty() {
            return None;
        }
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, &target.kind));
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &target.namespace, &resource);
        match api.get(&target.name).await {
            Ok(object) => object.metadata.uid,
            Err(e) => {
                tracing::debug!(%target, error = %e, "cannot read the uid for an Event; writing it without");
                None
            }
        }
    }

    async fn create(
        &self,
        target: &ObjectRef,
        uid: Option<&str>,
        (type_, reason, action): (&str, &str, &str),
        message: &str,
        now: Timestamp,
        record: Option<&ActionRecord>,
    ) -> Result<(), ActuatorError> {
        let labels = record.map(|r| {
            [(ACTION_LABEL.to_owned(), r.action.kind().as_str().to_owned())]
                .into_iter()
                .collect()
        });
        // Plain data: serialising it cannot fail.
        let annotations = record
            .and_then(|r| serde_json::to_string(r).ok())
            .map(|json| [(RECORD_ANNOTATION.to_owned(), json)].into_iter().collect());
        let time = k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(now.as_nanos())).ok();
        // A cluster-scoped object's (a Node's) events live in `default`, as the kubelet's do.
        let (namespace, involved_namespace) = if target.namespace.is_empty() {
            ("default", None)
        } else {
            (target.namespace.as_str(), Some(target.namespace.clone()))
        };
        let uid = match uid {
            Some(uid) => Some(uid.to_owned()),
            None => self.uid_of(target).await,
        };
        let event = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}.", target.name)),
                namespace: Some(namespace.to_owned()),
                labels,
                annotations,
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some(target.api_version.clone()),
                kind: Some(target.kind.clone()),
                name: Some(target.name.clone()),
                namespace: involved_namespace,
                uid,
                ..ObjectReference::default()
            },
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            type_: Some(type_.to_owned()),
            action: Some(action.to_owned()),
            count: Some(1),
            first_timestamp: time.map(Time),
            last_timestamp: time.map(Time),
            event_time: time.map(MicroTime),
            reporting_component: Some(FIELD_MANAGER.to_owned()),
            reporting_instance: Some(FIELD_MANAGER.to_owned()),
            source: Some(EventSource {
                component: Some(FIELD_MANAGER.to_owned()),
                host: None,
            }),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), namespace);
        api.create(&PostParams::default(), &event)
            .await
            .map_err(|e| ActuatorError::from_kube(format!("Event on {target}"), e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use homeostat_core::WorkloadRef;
    use http::Method;

    /// Accepts the Event posted in `namespace` and returns what was sent.
    async fn accept_event(handle: &mut testing::Handle, namespace: &str) -> serde_json::Value {
        let received = testing::answer(
            handle,
            Method::POST,
            &format!("/api/v1/namespaces/{namespace}/events"),
            201,
            serde_json::json!({"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": "e.1", "namespace": namespace}, "involvedObject": {}}),
        )
        .await;
        serde_json::from_slice(&received.body).expect("json")
    }

    #[tokio::test]
    async fn each_kind_of_action_names_itself_in_the_event() {
        let workload = WorkloadRef::deployment("shop", "cart");
        let target = crate::workload::workload_object(&workload);
        let cases = [
            (
                Action::ScaleWorkload {
                    workload: workload.clone(),
                    replicas: 4,
                    previous_replicas: 2,
                },
                "HomeostatScaled",
                "ScaleReplicas",
            ),
            (
                Action::RolloutRestart {
                    workload: workload.clone(),
                },
                "HomeostatRolloutRestarted",
                "RolloutRestart",
            ),
            (
                Action::ScaleHpa {
                    hpa: crate::hpa::hpa_ref("shop", "cart"),
                    min_replicas: 4,
                    previous_min_replicas: 2,
                },
                "HomeostatScaled",
                "SetMinReplicas",
            ),
        ];
        for (action, reason, verb) in cases {
            let (client, mut handle) = testing::client();
            let server = tokio::spawn(async move { accept_event(&mut handle, "shop").await });
            EventRecorder::new(client)
                .normal(
                    &target,
                    Some("u-1"),
                    &action,
                    "why",
                    Timestamp::from_secs(1),
                )
                .await
                .expect("recorded");
            let sent = server.await.expect("server");
            assert_eq!(
                (sent["reason"].as_str(), sent["action"].as_str()),
                (Some(reason), Some(verb))
            );
            assert_eq!(sent["involvedObject"]["kind"], "Deployment");
            assert_eq!(sent["involvedObject"]["uid"], "u-1");
        }
    }

    /// An Event on a workload whose uid the caller does not have (the Deployment whose pod
    /// was evicted) reads it first, so `kubectl describe` finds the Event; a failed read
    /// still records the Event, without the uid.
    #[tokio::test]
    async fn a_workloads_uid_is_read_for_its_event_and_its_absence_loses_nothing() {
        let workload = WorkloadRef::deployment("shop", "cart");
        let target = crate::workload::workload_object(&workload);
        let action = Action::RolloutRestart {
            workload: workload.clone(),
        };
        for (answer, uid) in [
            (
                (
                    200,
                    serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "cart", "namespace": "shop", "uid": "d-42"}}),
                ),
                serde_json::json!("d-42"),
            ),
            (
                (500, testing::status(500, "InternalError", "etcd timed out")),
                serde_json::Value::Null,
            ),
        ] {
            let (client, mut handle) = testing::client();
            let server = tokio::spawn(async move {
                testing::answer(
                    &mut handle,
                    Method::GET,
                    "/apis/apps/v1/namespaces/shop/deployments/cart",
                    answer.0,
                    answer.1,
                )
                .await;
                accept_event(&mut handle, "shop").await
            });
            EventRecorder::new(client)
                .normal(&target, None, &action, "why", Timestamp::from_secs(1))
                .await
                .expect("recorded");
            let sent = server.await.expect("server");
            assert_eq!(sent["involvedObject"]["uid"], uid);
            assert_eq!(sent["involvedObject"]["name"], "cart");
        }
    }

    /// A Node's Event needs no read: its uid comes with the answer to the change, and a
    /// cluster-scoped kind is not read back.
    #[tokio::test]
    async fn an_event_without_a_uid_on_a_kind_not_read_back_is_written_at_once() {
        let (client, mut handle) = testing::client();
        let target = ObjectRef {
            api_version: "v1".into(),
            kind: "Node".into(),
            namespace: String::new(),
            name: "node-1".into(),
        };
        let server = tokio::spawn(async move { accept_event(&mut handle, "default").await });
        EventRecorder::new(client)
            .warning(
                &target,
                None,
                "Why",
                "Look",
                "message",
                Timestamp::from_secs(1),
            )
            .await
            .expect("recorded");
        let sent = server.await.expect("server");
        assert!(sent["involvedObject"].get("uid").is_none(), "{sent}");
    }
}
