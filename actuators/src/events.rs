//! Kubernetes Events on the objects homeostat changes, so `kubectl describe` shows what it
//! did and why, next to what the HPA controller did.

use homeostat_core::{Action, ObjectRef, Timestamp};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::PostParams;
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
        action: &Action,
        message: &str,
        now: Timestamp,
    ) -> Result<(), ActuatorError> {
        let (reason, action) = describe(action);
        self.create(target, ("Normal", reason, action), message, now, None)
            .await
    }

    /// Records a `Warning` event on `target`: something homeostat refused or could not do
    /// (`action`, e.g. `Load`), for whoever owns `target` to fix.
    pub async fn warning(
        &self,
        target: &ObjectRef,
        reason: &str,
        action: &str,
        message: &str,
        now: Timestamp,
    ) -> Result<(), ActuatorError> {
        self.create(target, ("Warning", reason, action), message, now, None)
            .await
    }

    /// Records the `Normal` event of an applied action, named by [`describe`], labelled and
    /// carrying `record`, so [`ActionHistory`](crate::history::ActionHistory) can read the
    /// action back.
    pub async fn applied(
        &self,
        target: &ObjectRef,
        message: &str,
        record: &ActionRecord,
    ) -> Result<(), ActuatorError> {
        let (reason, action) = describe(&record.action);
        self.create(
            target,
            ("Normal", reason, action),
            message,
            record.time,
            Some(record),
        )
        .await
    }

    async fn create(
        &self,
        target: &ObjectRef,
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
            let server = tokio::spawn(async move {
                testing::answer(
                    &mut handle,
                    Method::POST,
                    "/api/v1/namespaces/shop/events",
                    201,
                    serde_json::json!({"apiVersion": "v1", "kind": "Event",
                        "metadata": {"name": "cart.1", "namespace": "shop"},
                        "involvedObject": {}}),
                )
                .await
            });
            EventRecorder::new(client)
                .normal(&target, &action, "why", Timestamp::from_secs(1))
                .await
                .expect("recorded");
            let sent: serde_json::Value =
                serde_json::from_slice(&server.await.expect("server").body).expect("json");
            assert_eq!(
                (sent["reason"].as_str(), sent["action"].as_str()),
                (Some(reason), Some(verb))
            );
            assert_eq!(sent["involvedObject"]["kind"], "Deployment");
        }
    }
}
