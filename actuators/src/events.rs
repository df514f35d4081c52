//! Kubernetes Events on the objects homeostat changes, so `kubectl describe` shows what it
//! did and why, next to what the HPA controller did.

use homeostat_core::{ObjectRef, Timestamp};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::PostParams;
use kube::{Api, Client};

use crate::history::{ACTION_LABEL, ActionRecord, RECORD_ANNOTATION};
use crate::{ActuatorError, FIELD_MANAGER};

/// The type and action of the Events of what homeostat did.
const NORMAL: (&str, &str) = ("Normal", "Scale");

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

    /// Records a `Normal` event with `reason` (CamelCase, as Kubernetes reasons are) on
    /// `target`.
    pub async fn normal(
        &self,
        target: &ObjectRef,
        reason: &str,
        message: &str,
        now: Timestamp,
    ) -> Result<(), ActuatorError> {
        self.create(target, NORMAL, reason, message, now, None)
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
        self.create(target, ("Warning", action), reason, message, now, None)
            .await
    }

    /// Records the `Normal` event of an applied action, labelled and carrying `record`, so
    /// [`ActionHistory`](crate::history::ActionHistory) can read the action back.
    pub async fn applied(
        &self,
        target: &ObjectRef,
        reason: &str,
        message: &str,
        record: &ActionRecord,
    ) -> Result<(), ActuatorError> {
        self.create(target, NORMAL, reason, message, record.time, Some(record))
            .await
    }

    /// The second argument is the Event's type and action: [`NORMAL`] for what homeostat did.
    async fn create(
        &self,
        target: &ObjectRef,
        (type_, action): (&str, &str),
        reason: &str,
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
