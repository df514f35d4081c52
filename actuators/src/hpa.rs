//! Scaling through a HorizontalPodAutoscaler: homeostat moves the HPA's bounds and lets the
//! HPA move the replicas, so it never fights the autoscaler the cluster already runs.
//!
//! The change is a server-side apply as field manager `homeostat` of exactly two fields,
//! `spec.minReplicas` and the decision-id annotation, so `managedFields` shows who set the
//! bound. It is *forced*: an HPA's `minReplicas` usually belongs to whoever applied the HPA
//! (`kubectl`, Helm), and an unforced apply would be refused with a conflict (409) on every
//! HPA so made, so a change policy allowed could never happen. Forcing moves the ownership of
//! the fields named in the applied configuration only — `maxReplicas`, the metrics and the
//! scale target stay their owner's. The owner's next `kubectl apply --server-side` then
//! conflicts on `minReplicas` until homeostat has put it back (or the owner forces), which is
//! the visible hand-over SSA is for; a client-side apply or `helm upgrade` just takes the
//! field back, and homeostat's next plan reads the value as it then is. Applying the same
//! configuration again changes nothing, so a repeated decision is a no-op.

use homeostat_core::{
    Action, DecisionId, ObjectRef, PatchType, Plan, Timestamp, WorkloadKind, WorkloadRef,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use crate::{Actuator, ActuatorError, Applied, DECISION_ANNOTATION, FIELD_MANAGER};

const API_VERSION: &str = "autoscaling/v2";
const KIND: &str = "HorizontalPodAutoscaler";

/// What an HPA says about its workload right now.
#[derive(Clone, Debug, PartialEq)]
pub struct HpaState {
    /// The HPA.
    pub hpa: ObjectRef,
    /// `spec.minReplicas` (1 when unset, as the API server defaults it).
    pub min_replicas: u32,
    /// `spec.maxReplicas`.
    pub max_replicas: u32,
    /// `status.currentReplicas`.
    pub current_replicas: u32,
    /// Ready pods of the scale target, when it could be read.
    pub ready_replicas: Option<u32>,
}

/// Changes HPAs' `minReplicas` through the Kubernetes API.
#[derive(Clone)]
pub struct HpaScaler {
    client: Client,
}

impl HpaScaler {
    /// A scaler talking through `client`.
    pub fn new(client: Client) -> Self {
        HpaScaler { client }
    }

    /// The HPA whose scale target is `workload`, if there is one.
    pub async fn find_for(
        &self,
        workload: &WorkloadRef,
    ) -> Result<Option<HpaState>, ActuatorError> {
        let api: Api<HorizontalPodAutoscaler> =
            Api::namespaced(self.client.clone(), &workload.namespace);
        let list = api.list(&ListParams::default()).await.map_err(|e| {
            ActuatorError::from_kube(format!("{KIND}s in {}", workload.namespace), e)
        })?;
        let Some(mut state) = list
            .items
            .iter()
            .find(|h| {
                h.spec.as_ref().is_some_and(|spec| {
                    spec.scale_target_ref.kind == workload.kind.as_str()
                        && spec.scale_target_ref.name == workload.name
                })
            })
            .map(|h| state_of(h, &workload.namespace))
        else {
            return Ok(None);
        };
        if workload.kind == WorkloadKind::Deployment {
            let deployments: Api<Deployment> =
                Api::namespaced(self.client.clone(), &workload.namespace);
            match deployments.get_opt(&workload.name).await {
                Ok(d) => {
                    state.ready_replicas = d
                        .and_then(|d| d.status)
                        .and_then(|s| s.ready_replicas)
                        .map(clamp_u32);
                }
                Err(e) => {
                    tracing::warn!(workload = %workload, error = %e, "cannot read ready replicas")
                }
            }
        }
        Ok(Some(state))
    }

    async fn get(&self, hpa: &ObjectRef) -> Result<HorizontalPodAutoscaler, ActuatorError> {
        let api: Api<HorizontalPodAutoscaler> =
            Api::namespaced(self.client.clone(), &hpa.namespace);
        api.get(&hpa.name)
            .await
            .map_err(|e| ActuatorError::from_kube(hpa.to_string(), e))
    }
}

fn state_of(h: &HorizontalPodAutoscaler, namespace: &str) -> HpaState {
    let spec = h.spec.as_ref();
    HpaState {
        hpa: hpa_ref(namespace, h.metadata.name.as_deref().unwrap_or_default()),
        min_replicas: spec.and_then(|s| s.min_replicas).map_or(1, clamp_u32),
        max_replicas: spec.map_or(0, |s| clamp_u32(s.max_replicas)),
        current_replicas: h
            .status
            .as_ref()
            .and_then(|s| s.current_replicas)
            .map_or(0, clamp_u32),
        ready_replicas: None,
    }
}

fn clamp_u32(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

/// An `ObjectRef` to an autoscaling/v2 HPA.
pub fn hpa_ref(namespace: &str, name: &str) -> ObjectRef {
    ObjectRef {
        api_version: API_VERSION.into(),
        kind: KIND.into(),
        namespace: namespace.into(),
        name: name.into(),
    }
}

impl Actuator for HpaScaler {
    async fn plan(&self, action: &Action, decision: &DecisionId) -> Result<Plan, ActuatorError> {
        let Action::ScaleHpa {
            hpa, min_replicas, ..
        } = action
        else {
            return Err(ActuatorError::Unsupported {
                actuator: "hpa-scaler",
                action: action.kind().as_str(),
            });
        };
        let current = state_of(&self.get(hpa).await?, &hpa.namespace);
        // The API server refuses minReplicas above maxReplicas; never plan what it would refuse.
        let target = (*min_replicas).clamp(1, current.max_replicas.max(1));
        let patch = json!({
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {
                "name": hpa.name,
                "namespace": hpa.namespace,
                "annotations": { DECISION_ANNOTATION: decision.0 },
            },
            "spec": { "minReplicas": target },
        });
        let bounded = if target == *min_replicas {
            String::new()
        } else {
            format!(" (bounded by maxReplicas {})", current.max_replicas)
        };
        Ok(Plan {
            target: hpa.clone(),
            patch_type: PatchType::Apply,
            patch: patch.to_string(),
            summary: format!(
                "set {hpa} minReplicas {} -> {target}{bounded}",
                current.min_replicas
            ),
        })
    }

    async fn apply(&self, plan: &Plan, now: Timestamp) -> Result<Applied, ActuatorError> {
        let target = plan.target.to_string();
        if plan.target.kind != KIND
            || plan.target.api_version != API_VERSION
            || plan.patch_type != PatchType::Apply
        {
            return Err(ActuatorError::InvalidPlan {
                target,
                reason: "not a server-side apply of an autoscaling/v2 HPA".into(),
            });
        }
        let body = crate::patch_body(plan)?;
        let api: Api<HorizontalPodAutoscaler> =
            Api::namespaced(self.client.clone(), &plan.target.namespace);
        // Forced, on the plan's two fields only: see the module's documentation.
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let updated = api
            .patch(&plan.target.name, &params, &Patch::Apply(&body))
            .await
            .map_err(|e| ActuatorError::from_kube(target, e))?;
        tracing::info!(hpa = %plan.target, patch = %plan.patch, "applied");
        Ok(Applied::answered(updated.metadata, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, Handle};
    use http::{Method, Response};
    use kube::client::Body;

    fn hpa_json(min: i32, max: i32) -> serde_json::Value {
        json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": { "name": "checkout", "namespace": "shop", "resourceVersion": "7" },
            "spec": {
                "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout" },
                "minReplicas": min, "maxReplicas": max
            },
            "status": { "currentReplicas": 3, "desiredReplicas": 3 }
        })
    }

    fn scaler() -> (HpaScaler, Handle) {
        let (client, handle) = testing::client();
        (HpaScaler::new(client), handle)
    }

    /// Answers with 200, checking that a patch is a forced server-side apply as homeostat;
    /// returns the body sent.
    async fn answer(
        handle: &mut Handle,
        method: Method,
        path: &str,
        reply: serde_json::Value,
    ) -> Vec<u8> {
        let patch = method == Method::PATCH;
        let received = testing::answer(handle, method, path, 200, reply).await;
        if patch {
            received.assert_forced_apply();
        }
        received.body
    }

    const PATH: &str = "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers/checkout";

    fn raise(to: u32) -> Action {
        Action::ScaleHpa {
            hpa: hpa_ref("shop", "checkout"),
            min_replicas: to,
            previous_min_replicas: 3,
        }
    }

    #[tokio::test]
    async fn plan_reads_the_hpa_and_bounds_by_max_replicas() {
        let (scaler, mut handle) = scaler();
        let id = DecisionId("01JTEST".into());
        let server = tokio::spawn(async move {
            answer(&mut handle, Method::GET, PATH, hpa_json(3, 10)).await;
        });
        let plan = scaler.plan(&raise(15), &id).await.expect("plan");
        server.await.expect("server");
        let patch: serde_json::Value = serde_json::from_str(&plan.patch).expect("patch is json");
        assert_eq!(plan.patch_type, PatchType::Apply);
        // Exactly the two fields homeostat owns, and what SSA needs to find the object.
        assert_eq!(
            patch,
            json!({
                "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": { "name": "checkout", "namespace": "shop",
                    "annotations": { DECISION_ANNOTATION: "01JTEST" } },
                "spec": { "minReplicas": 10 }
            })
        );
        assert!(
            plan.summary.contains("3 -> 10 (bounded by maxReplicas 10)"),
            "{}",
            plan.summary
        );
    }

    #[tokio::test]
    async fn apply_sends_exactly_the_planned_patch() {
        let (scaler, mut handle) = scaler();
        let plan = ssa_plan();
        let server =
            tokio::spawn(
                async move { answer(&mut handle, Method::PATCH, PATH, hpa_json(6, 10)).await },
            );
        let applied = scaler
            .apply(&plan, Timestamp::from_secs(5))
            .await
            .expect("apply");
        let sent = server.await.expect("server");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&sent).expect("json"),
            serde_json::from_str::<serde_json::Value>(&plan.patch).expect("json")
        );
        assert_eq!(applied.resource_version.as_deref(), Some("7"));
    }

    fn ssa_plan() -> Plan {
        Plan {
            target: hpa_ref("shop", "checkout"),
            patch_type: PatchType::Apply,
            patch: json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "checkout", "namespace": "shop"},
                "spec": {"minReplicas": 6}})
            .to_string(),
            summary: String::new(),
        }
    }

    #[tokio::test]
    async fn each_failure_answer_is_classified_for_the_retry_loop() {
        // With the apply forced, a 409 is no field conflict but the object changing under
        // the request: re-read and re-planned.
        testing::check_failures(Method::PATCH, PATH, |client| async move {
            HpaScaler::new(client)
                .apply(&ssa_plan(), Timestamp::EPOCH)
                .await
                .map(|_| ())
        })
        .await;
    }

    #[tokio::test]
    async fn a_missing_hpa_is_not_found_and_a_foreign_plan_is_refused() {
        let (scaler, mut handle) = scaler();
        let server = tokio::spawn(async move {
            let (_req, send) = handle.next_request().await.expect("a request");
            let status = json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"not found","reason":"NotFound","code":404});
            send.send_response(
                Response::builder()
                    .status(404)
                    .body(Body::from(serde_json::to_vec(&status).expect("json")))
                    .expect("response"),
            );
        });
        let err = scaler
            .plan(&raise(5), &DecisionId("x".into()))
            .await
            .expect_err("404");
        server.await.expect("server");
        assert!(matches!(err, ActuatorError::NotFound { .. }), "{err}");

        let foreign = Plan {
            patch_type: PatchType::Merge,
            ..ssa_plan()
        };
        let err = scaler
            .apply(&foreign, Timestamp::EPOCH)
            .await
            .expect_err("refused");
        assert!(matches!(err, ActuatorError::InvalidPlan { .. }), "{err}");
    }
}
