//! Steering new pods away from a contended node: homeostat's own `PreferNoSchedule` taint,
//! put on a node whose CPU something outside the workloads takes and taken off again later.
//!
//! The descheduler's way, in two steps: the taint makes the scheduler prefer other nodes, and
//! the pods homeostat then restarts (by eviction, one at a time) come back elsewhere, so the
//! workload keeps its replica count instead of buying more pods to make up for the starved
//! ones. `PreferNoSchedule` is soft: when no other node has room a pod still lands there,
//! and nothing already running is touched by the taint itself.
//!
//! `spec.taints` is one atomic list that other controllers write too, so it is not server-side
//! applied (a forced apply would take the whole list); the plan is a merge patch of the list
//! as read plus or minus homeostat's entry, conditional on the node's `resourceVersion`: if
//! anyone changed the node in between, the server answers 409 and nothing is lost.

use homeostat_core::{Action, DecisionId, ObjectRef, PatchType, Plan, Timestamp};
use k8s_openapi::api::core::v1::{Node, Taint};
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use crate::{Actuator, ActuatorError, Applied, DECISION_ANNOTATION, FIELD_MANAGER};

/// The key of homeostat's taint.
pub const CONTENTION_TAINT: &str = "homeostat.dev/cpu-contention";
/// Its effect: a preference, never a refusal.
pub const CONTENTION_EFFECT: &str = "PreferNoSchedule";

/// Puts homeostat's taint on nodes and takes it off.
#[derive(Clone)]
pub struct NodeTainter {
    client: Client,
}

/// An `ObjectRef` to a Node (cluster-scoped: no namespace).
pub fn node_ref(name: &str) -> ObjectRef {
    ObjectRef {
        api_version: "v1".into(),
        kind: "Node".into(),
        namespace: String::new(),
        name: name.into(),
    }
}

fn is_ours(t: &Taint) -> bool {
    t.key == CONTENTION_TAINT && t.effect == CONTENTION_EFFECT
}

impl NodeTainter {
    /// A tainter talking through `client`.
    pub fn new(client: Client) -> Self {
        NodeTainter { client }
    }

    /// The nodes that carry homeostat's taint now: what a restarted brain has to take over.
    pub async fn tainted(&self) -> Result<Vec<String>, ActuatorError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let list = nodes
            .list(&Default::default())
            .await
            .map_err(|e| ActuatorError::from_kube("nodes".into(), e))?;
        Ok(list
            .items
            .into_iter()
            .filter(|n| {
                n.spec
                    .as_ref()
                    .and_then(|s| s.taints.as_ref())
                    .is_some_and(|ts| ts.iter().any(is_ours))
            })
            .filter_map(|n| n.metadata.name)
            .collect())
    }
}

impl Actuator for NodeTainter {
    async fn plan(&self, action: &Action, decision: &DecisionId) -> Result<Plan, ActuatorError> {
        let Action::TaintNode { node, remove } = action else {
            return Err(ActuatorError::Unsupported {
                actuator: "node-tainter",
                action: action.kind().as_str(),
            });
        };
        let target = node_ref(node);
        let nodes: Api<Node> = Api::all(self.client.clone());
        let current = nodes
            .get(node)
            .await
            .map_err(|e| ActuatorError::from_kube(target.to_string(), e))?;
        let Some(version) = current.metadata.resource_version else {
            return Err(ActuatorError::InvalidPlan {
                target: target.to_string(),
                reason: "the node has no resourceVersion to make the change conditional on".into(),
            });
        };
        // Everyone else's taints stay as they are, in their order.
        let mut taints: Vec<Taint> = current
            .spec
            .and_then(|s| s.taints)
            .unwrap_or_default()
            .into_iter()
            .filter(|t| !is_ours(t))
            .collect();
        if !remove {
            taints.push(Taint {
                key: CONTENTION_TAINT.into(),
                effect: CONTENTION_EFFECT.into(),
                ..Taint::default()
            });
        }
        let body = json!({
            "metadata": {
                "resourceVersion": version,
                "annotations": { DECISION_ANNOTATION: decision.0 },
            },
            "spec": { "taints": if taints.is_empty() { serde_json::Value::Null } else { json!(taints) } },
        });
        Ok(Plan {
            summary: if *remove {
                format!("{target}: remove taint {CONTENTION_TAINT}:{CONTENTION_EFFECT}")
            } else {
                format!(
                    "{target}: taint {CONTENTION_TAINT}:{CONTENTION_EFFECT} (new pods prefer other nodes)"
                )
            },
            target,
            patch_type: PatchType::Merge,
            patch: body.to_string(),
        })
    }

    async fn apply(&self, plan: &Plan, now: Timestamp) -> Result<Applied, ActuatorError> {
        let target = plan.target.to_string();
        if plan.target.kind != "Node"
            || !plan.target.namespace.is_empty()
            || plan.patch_type != PatchType::Merge
        {
            return Err(ActuatorError::InvalidPlan {
                target,
                reason: "not a merge patch of a Node".into(),
            });
        }
        let body = crate::patch_body(plan)?;
        let nodes: Api<Node> = Api::all(self.client.clone());
        let updated = nodes
            .patch(
                &plan.target.name,
                &PatchParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..PatchParams::default()
                },
                &Patch::Merge(&body),
            )
            .await
            .map_err(|e| ActuatorError::from_kube(target, e))?;
        tracing::info!(node = %plan.target.name, summary = %plan.summary, "applied");
        Ok(Applied::answered(updated.metadata, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, Handle};
    use http::Method;

    fn node(version: &str, taints: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "node-b", "resourceVersion": version},
            "spec": {"taints": taints}})
    }

    async fn planned(action: &Action, taints: serde_json::Value) -> (NodeTainter, Handle, Plan) {
        let (client, mut handle) = testing::client();
        let tainter = NodeTainter::new(client);
        let server = tokio::spawn(async move {
            testing::answer(
                &mut handle,
                Method::GET,
                "/api/v1/nodes/node-b",
                200,
                node("41", taints),
            )
            .await;
            handle
        });
        let plan = tainter
            .plan(action, &DecisionId("01T".into()))
            .await
            .expect("planned");
        (tainter, server.await.expect("server"), plan)
    }

    #[tokio::test]
    async fn taints_keep_everyone_elses_and_are_conditional_on_the_version_read() {
        let other = json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]);
        let action = Action::TaintNode {
            node: "node-b".into(),
            remove: false,
        };
        let (tainter, mut handle, plan) = planned(&action, other).await;
        assert_eq!(plan.target.to_string(), "Node/node-b");
        assert_eq!(plan.patch_type, PatchType::Merge);
        let body: serde_json::Value = serde_json::from_str(&plan.patch).expect("json");
        assert_eq!(body["metadata"]["resourceVersion"], "41");
        assert_eq!(body["metadata"]["annotations"][DECISION_ANNOTATION], "01T");
        assert_eq!(
            body["spec"]["taints"],
            json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
                   {"key": CONTENTION_TAINT, "effect": "PreferNoSchedule"}])
        );
        let server = tokio::spawn(async move {
            testing::answer(
                &mut handle,
                Method::PATCH,
                "/api/v1/nodes/node-b",
                200,
                node("42", json!([])),
            )
            .await
        });
        let applied = tainter
            .apply(&plan, Timestamp::from_secs(9))
            .await
            .expect("applied");
        let sent = server.await.expect("server");
        sent.assert_merge_patch();
        let sent: serde_json::Value = serde_json::from_slice(&sent.body).expect("json");
        assert_eq!(sent, body, "the plan is sent as planned");
        assert_eq!(applied.resource_version.as_deref(), Some("42"));
    }

    #[tokio::test]
    async fn removing_takes_only_homeostats_taint_off() {
        let action = Action::TaintNode {
            node: "node-b".into(),
            remove: true,
        };
        let ours = json!([{"key": CONTENTION_TAINT, "effect": "PreferNoSchedule"}]);
        let (_, _, plan) = planned(&action, ours).await;
        let body: serde_json::Value = serde_json::from_str(&plan.patch).expect("json");
        assert_eq!(body["spec"]["taints"], serde_json::Value::Null);
        assert!(plan.summary.contains("remove taint"), "{}", plan.summary);

        let mixed = json!([{"key": CONTENTION_TAINT, "effect": "PreferNoSchedule"},
                           {"key": CONTENTION_TAINT, "effect": "NoSchedule"}]);
        let (_, _, plan) = planned(&action, mixed).await;
        let body: serde_json::Value = serde_json::from_str(&plan.patch).expect("json");
        assert_eq!(
            body["spec"]["taints"],
            json!([{"key": CONTENTION_TAINT, "effect": "NoSchedule"}]),
            "a taint with our key but another effect is someone else's"
        );
    }

    #[tokio::test]
    async fn a_conflict_is_an_api_error_and_a_missing_node_is_not_found() {
        let action = Action::TaintNode {
            node: "node-b".into(),
            remove: false,
        };
        let (tainter, mut handle, plan) = planned(&action, json!([])).await;
        let server = tokio::spawn(async move {
            let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "Conflict", "code": 409,
                "message": "Operation cannot be fulfilled on nodes \"node-b\": the object has been modified"});
            testing::answer(
                &mut handle,
                Method::PATCH,
                "/api/v1/nodes/node-b",
                409,
                status,
            )
            .await;
            let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "NotFound", "code": 404, "message": "nodes \"node-b\" not found"});
            testing::answer(
                &mut handle,
                Method::GET,
                "/api/v1/nodes/node-b",
                404,
                status,
            )
            .await;
        });
        let err = tainter
            .apply(&plan, Timestamp::from_secs(9))
            .await
            .expect_err("conflict");
        assert!(err.to_string().contains("modified"), "{err}");
        let err = tainter
            .plan(&action, &DecisionId("01U".into()))
            .await
            .expect_err("gone");
        assert!(
            matches!(err, ActuatorError::NotFound { ref target } if target == "Node/node-b"),
            "{err}"
        );
        server.await.expect("server");
    }

    #[tokio::test]
    async fn each_failure_answer_is_classified_for_the_retry_loop() {
        let plan = Plan {
            target: ObjectRef {
                api_version: "v1".into(),
                kind: "Node".into(),
                namespace: String::new(),
                name: "node-b".into(),
            },
            summary: String::new(),
            patch_type: PatchType::Merge,
            patch: json!({"metadata": {"resourceVersion": "7"},
                          "spec": {"taints": [{"key": CONTENTION_TAINT, "effect": CONTENTION_EFFECT}]}})
            .to_string(),
        };
        // The patch is conditional on the version read: a 409 is a Node changed meanwhile,
        // read and planned again.
        testing::check_failures(Method::PATCH, "/api/v1/nodes/node-b", |client| {
            let plan = plan.clone();
            async move {
                NodeTainter::new(client)
                    .apply(&plan, Timestamp::EPOCH)
                    .await
                    .map(|_| ())
            }
        })
        .await;
    }
}
