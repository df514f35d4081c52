//! Scaling a workload no HPA scales: a server-side apply of `spec.replicas` to the
//! Deployment's or StatefulSet's `scale` subresource, as field manager `homeostat`.
//!
//! Only for workloads without an HPA: one would set the replicas back at its next sync, and
//! the two controllers would fight. Through `scale` rather than the object itself, so the
//! brain needs `patch` on `deployments/scale` and `statefulsets/scale` only, and nothing else
//! of the workload can be changed by mistake. The apply is forced for the same reason as the
//! HPA's (see [`crate::hpa`]): `spec.replicas` of a workload applied by `kubectl` or Helm is
//! theirs, and the force takes that one field only.
//!
//! The `scale` subresource keeps no annotations, so the change cannot carry the decision's
//! id; it is its own proof instead: it landed when the workload's `spec.replicas` is the
//! planned value (see [`crate::landed`]), and applying the same value again changes nothing.
//!
//! The scaler also reads a workload's labels, for policies that select by label: the same
//! object and the same `get` permission, cached for a minute so a proposal is not a request.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use homeostat_core::{Action, DecisionId, ObjectRef, PatchType, Plan, Timestamp, WorkloadRef};
use kube::Client;
use kube::api::{DynamicObject, Patch, PatchParams};
use serde_json::json;

use crate::workload::{api_for, count, get, workload_object};
use crate::{Actuator, ActuatorError, Applied, FIELD_MANAGER};

const ACTUATOR: &str = "workload-scaler";

/// How long a workload's labels are taken as read: labels rarely change, and a policy that
/// selects on a change a minute late errs only by a minute.
pub const LABELS_TTL: Duration = Duration::from_secs(60);

/// What a workload's replicas are right now.
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleState {
    /// The workload's object.
    pub target: ObjectRef,
    /// `spec.replicas` (1 when unset, as the API server defaults it).
    pub replicas: u32,
    /// `status.readyReplicas`.
    pub ready_replicas: u32,
}

/// Scales Deployments and StatefulSets through their `scale` subresource.
#[derive(Clone)]
pub struct WorkloadScaler {
    client: Client,
    labels: Arc<Mutex<HashMap<WorkloadRef, ReadLabels>>>,
}

/// A workload's labels and when they were read.
type ReadLabels = (Timestamp, BTreeMap<String, String>);

impl WorkloadScaler {
    /// A scaler talking through `client`.
    pub fn new(client: Client) -> Self {
        WorkloadScaler {
            client,
            labels: Arc::default(),
        }
    }

    /// The workload's `metadata.labels` (empty when it has none), read at most once per
    /// [`LABELS_TTL`]; `None` when it does not exist or is not a Deployment or StatefulSet.
    /// A failed read is not cached, so the next proposal tries again.
    pub async fn labels_of(
        &self,
        workload: &WorkloadRef,
        now: Timestamp,
    ) -> Result<Option<BTreeMap<String, String>>, ActuatorError> {
        if let Some((read, labels)) = self.cached(workload)
            && now.since(read) < LABELS_TTL
        {
            return Ok(Some(labels));
        }
        let Some((_, object)) = self.object(workload).await? else {
            return Ok(None);
        };
        let labels = object.metadata.labels.unwrap_or_default();
        if let Ok(mut cache) = self.labels.lock() {
            cache.insert(workload.clone(), (now, labels.clone()));
        }
        Ok(Some(labels))
    }

    /// The workload's object and its reference; `None` when it does not exist or is not a
    /// Deployment or StatefulSet.
    async fn object(
        &self,
        workload: &WorkloadRef,
    ) -> Result<Option<(ObjectRef, DynamicObject)>, ActuatorError> {
        let target = workload_object(workload);
        let Ok(api) = api_for(&self.client, &target, ACTUATOR) else {
            return Ok(None);
        };
        let object = api
            .get_opt(&workload.name)
            .await
            .map_err(|e| ActuatorError::from_kube(target.to_string(), e))?;
        Ok(object.map(|o| (target, o)))
    }

    fn cached(&self, workload: &WorkloadRef) -> Option<ReadLabels> {
        self.labels.lock().ok()?.get(workload).cloned()
    }

    /// The workload's replicas; `None` when it does not exist or is not a kind with replicas.
    pub async fn find_for(
        &self,
        workload: &WorkloadRef,
    ) -> Result<Option<ScaleState>, ActuatorError> {
        let Some((target, object)) = self.object(workload).await? else {
            return Ok(None);
        };
        Ok(Some(ScaleState {
            target,
            replicas: count(&object.data["spec"]["replicas"]).unwrap_or(1),
            ready_replicas: count(&object.data["status"]["readyReplicas"]).unwrap_or(0),
        }))
    }
}

impl Actuator for WorkloadScaler {
    async fn plan(&self, action: &Action, _decision: &DecisionId) -> Result<Plan, ActuatorError> {
        let Action::ScaleWorkload {
            workload, replicas, ..
        } = action
        else {
            return Err(ActuatorError::Unsupported {
                actuator: ACTUATOR,
                action: action.kind().as_str(),
            });
        };
        let target = workload_object(workload);
        let api = api_for(&self.client, &target, ACTUATOR)?;
        let scale = api
            .get_scale(&workload.name)
            .await
            .map_err(|e| ActuatorError::from_kube(target.to_string(), e))?;
        let current = scale
            .spec
            .and_then(|s| s.replicas)
            .and_then(|r| u32::try_from(r).ok())
            .unwrap_or(1);
        let patch = json!({
            "apiVersion": "autoscaling/v1",
            "kind": "Scale",
            "metadata": { "name": workload.name, "namespace": workload.namespace },
            "spec": { "replicas": replicas },
        });
        Ok(Plan {
            summary: format!("scale {target} replicas {current} -> {replicas}"),
            target,
            patch_type: PatchType::Apply,
            patch: patch.to_string(),
        })
    }

    async fn apply(&self, plan: &Plan, now: Timestamp) -> Result<Applied, ActuatorError> {
        let target = plan.target.to_string();
        let api = api_for(&self.client, &plan.target, ACTUATOR)?;
        let body = crate::patch_body(plan)?;
        if plan.patch_type != PatchType::Apply || body["kind"] != "Scale" {
            return Err(ActuatorError::InvalidPlan {
                target,
                reason: "not a server-side apply of a Scale".into(),
            });
        }
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let scale = api
            .patch_scale(&plan.target.name, &params, &Patch::Apply(&body))
            .await
            .map_err(|e| ActuatorError::from_kube(target, e))?;
        tracing::info!(workload = %plan.target, summary = %plan.summary, "scaled");
        Ok(Applied::answered(scale.metadata, now))
    }
}

/// Reads the target of a plan and tells whether it is at the planned replicas.
pub(crate) async fn at_planned_replicas(
    client: &Client,
    plan: &Plan,
) -> Result<bool, ActuatorError> {
    let api = api_for(client, &plan.target, ACTUATOR)?;
    let planned = serde_json::from_str::<serde_json::Value>(&plan.patch)
        .ok()
        .and_then(|b| count(&b["spec"]["replicas"]));
    let current = match get(&api, &plan.target).await {
        Ok(o) => count(&o.data["spec"]["replicas"]),
        Err(ActuatorError::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(e),
    };
    Ok(planned.is_some() && planned == current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, Failure, Handle};
    use http::Method;

    fn scaler() -> (WorkloadScaler, Handle) {
        let (client, handle) = testing::client();
        (WorkloadScaler::new(client), handle)
    }

    fn scale_json(replicas: u32) -> serde_json::Value {
        json!({
            "apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": { "name": "cart", "namespace": "shop", "resourceVersion": "41" },
            "spec": { "replicas": replicas },
            "status": { "replicas": replicas, "selector": "app=cart" }
        })
    }

    fn action(workload: WorkloadRef, replicas: u32) -> Action {
        Action::ScaleWorkload {
            workload,
            replicas,
            previous_replicas: 2,
        }
    }

    fn statefulset(name: &str) -> WorkloadRef {
        WorkloadRef {
            namespace: "shop".into(),
            kind: homeostat_core::WorkloadKind::StatefulSet,
            name: name.into(),
        }
    }

    const DEPLOYMENT_SCALE: &str = "/apis/apps/v1/namespaces/shop/deployments/cart/scale";
    const STATEFULSET_SCALE: &str = "/apis/apps/v1/namespaces/shop/statefulsets/cart/scale";

    #[tokio::test]
    async fn plans_from_the_scale_and_applies_exactly_the_replicas_by_forced_ssa() {
        for (workload, path) in [
            (WorkloadRef::deployment("shop", "cart"), DEPLOYMENT_SCALE),
            (statefulset("cart"), STATEFULSET_SCALE),
        ] {
            let (scaler, mut handle) = scaler();
            let server = tokio::spawn(async move {
                testing::answer(&mut handle, Method::GET, path, 200, scale_json(2)).await;
                testing::answer(&mut handle, Method::PATCH, path, 200, scale_json(4)).await
            });
            let plan = scaler
                .plan(&action(workload.clone(), 4), &DecisionId("01D".into()))
                .await
                .expect("plan");
            assert_eq!(plan.target, workload_object(&workload));
            assert!(
                plan.summary.ends_with("replicas 2 -> 4"),
                "{}",
                plan.summary
            );
            let applied = scaler
                .apply(&plan, Timestamp::from_secs(7))
                .await
                .expect("applied");
            let sent = server.await.expect("server");
            sent.assert_forced_apply();
            assert_eq!(
                serde_json::from_slice::<serde_json::Value>(&sent.body).expect("json"),
                json!({
                    "apiVersion": "autoscaling/v1", "kind": "Scale",
                    "metadata": { "name": "cart", "namespace": "shop" },
                    "spec": { "replicas": 4 }
                })
            );
            assert_eq!(applied.resource_version.as_deref(), Some("41"));
        }
    }

    #[tokio::test]
    async fn each_failure_answer_is_classified_for_the_retry_loop() {
        let plan = Plan {
            target: workload_object(&WorkloadRef::deployment("shop", "cart")),
            patch_type: PatchType::Apply,
            patch: json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {"name": "cart", "namespace": "shop"}, "spec": {"replicas": 4}})
            .to_string(),
            summary: String::new(),
        };
        testing::check_failures(Method::PATCH, DEPLOYMENT_SCALE, |client| {
            let plan = plan.clone();
            async move {
                WorkloadScaler::new(client)
                    .apply(&plan, Timestamp::EPOCH)
                    .await
                    .map(|_| ())
            }
        })
        .await;
        // A scale of a deleted workload ends the decision: not found, never retried.
        let (scaler, mut handle) = scaler();
        let server = tokio::spawn(async move {
            testing::fail(
                &mut handle,
                Method::GET,
                DEPLOYMENT_SCALE,
                Failure::Status(404),
            )
            .await;
        });
        let err = scaler
            .plan(
                &action(WorkloadRef::deployment("shop", "cart"), 4),
                &DecisionId("x".into()),
            )
            .await
            .expect_err("gone");
        server.await.expect("server");
        assert!(matches!(err, ActuatorError::NotFound { .. }), "{err}");
    }

    #[tokio::test]
    async fn labels_are_read_from_the_workload_once_per_ttl() {
        const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/shop/deployments/cart";
        let (scaler, mut handle) = scaler();
        let deployment = |tier: &str| {
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": { "name": "cart", "namespace": "shop",
                              "labels": { "app": "cart", "tier": tier } },
                "spec": { "replicas": 2 }
            })
        };
        let server = tokio::spawn(async move {
            testing::answer(
                &mut handle,
                Method::GET,
                DEPLOYMENT,
                200,
                deployment("front"),
            )
            .await;
            testing::answer(
                &mut handle,
                Method::GET,
                DEPLOYMENT,
                200,
                deployment("back"),
            )
            .await;
            handle
        });
        let cart = WorkloadRef::deployment("shop", "cart");
        let t0 = Timestamp::from_secs(1_000);
        let tier =
            |labels: Option<BTreeMap<String, String>>| labels.and_then(|l| l.get("tier").cloned());
        let first = scaler.labels_of(&cart, t0).await.expect("read");
        assert_eq!(tier(first), Some("front".to_owned()));
        // Within the TTL the cache answers: a request would be answered with tier "back".
        let cached = scaler
            .labels_of(&cart, t0 + LABELS_TTL - Duration::from_secs(1))
            .await
            .expect("cached");
        assert_eq!(tier(cached), Some("front".to_owned()));
        let again = scaler
            .labels_of(&cart, t0 + LABELS_TTL)
            .await
            .expect("reread");
        assert_eq!(tier(again), Some("back".to_owned()));
        server.await.expect("server");
    }

    #[tokio::test]
    async fn daemonsets_and_foreign_plans_are_refused_without_a_request() {
        let (scaler, _handle) = scaler();
        let daemonset = WorkloadRef {
            namespace: "shop".into(),
            kind: homeostat_core::WorkloadKind::DaemonSet,
            name: "agent".into(),
        };
        assert!(matches!(
            scaler
                .plan(&action(daemonset.clone(), 3), &DecisionId("x".into()))
                .await,
            Err(ActuatorError::InvalidPlan { .. })
        ));
        assert_eq!(scaler.find_for(&daemonset).await.expect("no error"), None);
        let labels = scaler.labels_of(&daemonset, Timestamp::EPOCH).await;
        assert_eq!(labels.expect("no error"), None);
        let merge = Plan {
            target: workload_object(&WorkloadRef::deployment("shop", "cart")),
            patch_type: PatchType::Merge,
            patch: r#"{"spec":{"replicas":3}}"#.into(),
            summary: String::new(),
        };
        assert!(matches!(
            scaler.apply(&merge, Timestamp::EPOCH).await,
            Err(ActuatorError::InvalidPlan { .. })
        ));
    }
}
