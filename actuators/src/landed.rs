//! After a crash between intent and outcome: did the change land?
//!
//! Every patch homeostat sends stamps its target with the decision's id
//! ([`DECISION_ANNOTATION`]), so the target itself says whether that decision's change was
//! applied. An eviction leaves no stamp; it landed if the pod it named (by uid) is gone or
//! going; a scale through the `scale` subresource, which keeps no annotations, landed if the
//! workload's replicas are the planned ones. With this the brain closes an interrupted decision as done or as never applied,
//! from the cluster's state rather than a guess, and never repeats it blindly.

use homeostat_core::{DecisionId, PatchType, Plan};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Client};

use crate::{ActuatorError, DECISION_ANNOTATION};

/// Whether `plan`, made for `decision`, is in effect on the cluster now.
pub async fn landed(
    client: &Client,
    plan: &Plan,
    decision: &DecisionId,
) -> Result<bool, ActuatorError> {
    let target = &plan.target;
    let body = serde_json::from_str::<serde_json::Value>(&plan.patch).unwrap_or_default();
    if plan.patch_type == PatchType::Apply && body["kind"] == "Scale" {
        return crate::scale::at_planned_replicas(client, plan).await;
    }
    let (group, version) = match target.api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", target.api_version.as_str()),
    };
    let resource =
        ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, target.kind.as_str()));
    let api: Api<DynamicObject> = if target.namespace.is_empty() {
        Api::all_with(client.clone(), &resource)
    } else {
        Api::namespaced_with(client.clone(), &target.namespace, &resource)
    };
    let current = api
        .get_opt(&target.name)
        .await
        .map_err(|e| ActuatorError::from_kube(target.to_string(), e))?;
    if plan.patch_type == PatchType::Eviction {
        let evicted_uid = body["deleteOptions"]["preconditions"]["uid"]
            .as_str()
            .map(str::to_owned);
        return Ok(match current {
            None => true,
            Some(pod) => {
                pod.metadata.deletion_timestamp.is_some()
                    || evicted_uid.is_some_and(|uid| pod.metadata.uid.as_deref() != Some(&uid))
            }
        });
    }
    Ok(current.is_some_and(|o| {
        o.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DECISION_ANNOTATION))
            .is_some_and(|id| *id == decision.0)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;
    use homeostat_core::ObjectRef;
    use http::Method;
    use serde_json::json;

    fn plan(kind: &str, api_version: &str, namespace: &str, patch_type: PatchType) -> Plan {
        Plan {
            target: ObjectRef {
                api_version: api_version.into(),
                kind: kind.into(),
                namespace: namespace.into(),
                name: "x".into(),
            },
            patch_type,
            patch: json!({"deleteOptions": {"preconditions": {"uid": "u1"}}}).to_string(),
            summary: String::new(),
        }
    }

    async fn ask(plan: Plan, path: &'static str, status: u16, reply: serde_json::Value) -> bool {
        let (client, mut handle) = testing::client();
        let server = tokio::spawn(async move {
            testing::answer(&mut handle, Method::GET, path, status, reply).await;
        });
        let landed = landed(&client, &plan, &DecisionId("01D".into()))
            .await
            .expect("asked");
        server.await.expect("server");
        landed
    }

    #[tokio::test]
    async fn a_patch_landed_when_its_target_carries_the_decision_id() {
        let hpa = || {
            plan(
                "HorizontalPodAutoscaler",
                "autoscaling/v2",
                "shop",
                PatchType::Merge,
            )
        };
        let path = "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers/x";
        let stamped = |id: &str| {
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": "x", "annotations": {DECISION_ANNOTATION: id}}})
        };
        assert!(ask(hpa(), path, 200, stamped("01D")).await);
        assert!(
            !ask(hpa(), path, 200, stamped("01C")).await,
            "an older decision's stamp"
        );
        let gone = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "reason": "NotFound", "code": 404, "message": "not found"});
        assert!(!ask(hpa(), path, 404, gone).await, "a deleted target");
        let node = plan("Node", "v1", "", PatchType::Merge);
        let n = json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "x", "annotations": {DECISION_ANNOTATION: "01D"}}});
        assert!(ask(node, "/api/v1/nodes/x", 200, n).await, "cluster-scoped");
    }

    #[tokio::test]
    async fn a_scale_landed_when_the_workload_has_the_planned_replicas() {
        let scale = || Plan {
            target: crate::workload::workload_object(&homeostat_core::WorkloadRef::deployment(
                "shop", "x",
            )),
            patch_type: PatchType::Apply,
            patch: json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {"name": "x", "namespace": "shop"}, "spec": {"replicas": 4}})
            .to_string(),
            summary: String::new(),
        };
        let path = "/apis/apps/v1/namespaces/shop/deployments/x";
        let deployment = |replicas: u32| {
            json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "x", "namespace": "shop"}, "spec": {"replicas": replicas}})
        };
        assert!(ask(scale(), path, 200, deployment(4)).await);
        assert!(!ask(scale(), path, 200, deployment(2)).await, "not yet");
        let gone = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "reason": "NotFound", "code": 404, "message": "not found"});
        assert!(!ask(scale(), path, 404, gone).await, "a deleted workload");
    }

    #[tokio::test]
    async fn an_eviction_landed_when_its_pod_is_gone_going_or_replaced() {
        let evict = || plan("Pod", "v1", "shop", PatchType::Eviction);
        let path = "/api/v1/namespaces/shop/pods/x";
        let pod = |uid: &str, deleting: bool| {
            let mut p = json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "x", "uid": uid}});
            if deleting {
                p["metadata"]["deletionTimestamp"] = json!("2026-11-25T20:00:00Z");
            }
            p
        };
        assert!(
            !ask(evict(), path, 200, pod("u1", false)).await,
            "still running"
        );
        assert!(
            ask(evict(), path, 200, pod("u1", true)).await,
            "terminating"
        );
        assert!(
            ask(evict(), path, 200, pod("u2", false)).await,
            "a new pod of that name"
        );
        let gone = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "reason": "NotFound", "code": 404, "message": "not found"});
        assert!(ask(evict(), path, 404, gone).await);
    }
}
