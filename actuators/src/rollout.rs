//! Rollout restart: what `kubectl rollout restart` does — stamp the pod template with
//! `kubectl.kubernetes.io/restartedAt`, so the workload's controller replaces every pod by a
//! rolling update, never taking more down at once than the workload's own `maxUnavailable`
//! (a StatefulSet: one at a time) allows.
//!
//! For trouble the whole workload shares; one sick pod is evicted instead
//! ([`crate::restart`]). A Deployment whose strategy is `Recreate` is refused (it would take
//! every pod down at once), as are a paused Deployment and an `OnDelete` StatefulSet (the
//! template change would not roll). The time stamped is the decision's own (its ULID's),
//! so sending the same decision again changes nothing and rolls nothing.

use homeostat_core::{Action, DecisionId, ObjectRef, PatchType, Plan, Timestamp, WorkloadKind};
use kube::Client;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::workload::{api_for, count, get, workload_object};
use crate::{Actuator, ActuatorError, Applied, DECISION_ANNOTATION, FIELD_MANAGER};

/// The pod-template annotation `kubectl rollout restart` sets.
pub const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

const ACTUATOR: &str = "rollout-restarter";

/// Restarts whole workloads by a rolling update.
#[derive(Clone)]
pub struct RolloutRestarter {
    client: Client,
}

impl RolloutRestarter {
    /// A restarter talking through `client`.
    pub fn new(client: Client) -> Self {
        RolloutRestarter { client }
    }
}

/// The decision's time as `kubectl` spells `restartedAt` (RFC 3339, whole seconds).
fn restarted_at(decision: &DecisionId) -> Option<String> {
    let ulid = ulid::Ulid::from_string(&decision.0).ok()?;
    let seconds = i64::try_from(ulid.timestamp_ms() / 1000).ok()?;
    k8s_openapi::jiff::Timestamp::from_second(seconds)
        .ok()
        .map(|t| t.to_string())
}

/// How the workload's controller will roll its pods, or why it must not be restarted so.
fn pace(target: &ObjectRef, object: &Value) -> Result<String, String> {
    let spec = &object["spec"];
    let replicas = count(&spec["replicas"]).unwrap_or(1);
    match WorkloadKind::from_name(&target.kind) {
        Some(WorkloadKind::StatefulSet) => {
            let strategy = &spec["updateStrategy"];
            if strategy["type"] == "OnDelete" {
                return Err(
                    "its updateStrategy is OnDelete: a template change rolls nothing".into(),
                );
            }
            let unavailable = strategy["rollingUpdate"]["maxUnavailable"].clone();
            let at_once = if unavailable.is_null() {
                "1".to_owned()
            } else {
                unavailable.to_string().trim_matches('"').to_owned()
            };
            Ok(format!("{replicas} pods, {at_once} at a time in order"))
        }
        _ => {
            if spec["paused"] == true {
                return Err("it is paused: a template change rolls nothing".into());
            }
            let strategy = &spec["strategy"];
            if strategy["type"] == "Recreate" {
                return Err(
                    "its strategy is Recreate, which would take every pod down at once".into(),
                );
            }
            let bound = |key: &str| match &strategy["rollingUpdate"][key] {
                Value::Null => "25%".to_owned(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Ok(format!(
                "{replicas} pods, at most {} unavailable and {} extra at a time",
                bound("maxUnavailable"),
                bound("maxSurge")
            ))
        }
    }
}

impl Actuator for RolloutRestarter {
    async fn plan(&self, action: &Action, decision: &DecisionId) -> Result<Plan, ActuatorError> {
        let Action::RolloutRestart { workload } = action else {
            return Err(ActuatorError::Unsupported {
                actuator: ACTUATOR,
                action: action.kind().as_str(),
            });
        };
        let target = workload_object(workload);
        let api = api_for(&self.client, &target, ACTUATOR)?;
        let current = get(&api, &target).await?;
        let pace = pace(&target, &current.data).map_err(|reason| ActuatorError::InvalidPlan {
            target: target.to_string(),
            reason,
        })?;
        let at = restarted_at(decision).ok_or_else(|| ActuatorError::InvalidPlan {
            target: target.to_string(),
            reason: format!("decision id {decision} is not a ULID, so it has no time to stamp"),
        })?;
        let patch = json!({
            "metadata": { "annotations": { DECISION_ANNOTATION: decision.0 } },
            "spec": { "template": { "metadata": { "annotations": { RESTARTED_AT: at } } } },
        });
        Ok(Plan {
            summary: format!("rollout restart of {target} ({pace})"),
            target,
            patch_type: PatchType::Merge,
            patch: patch.to_string(),
        })
    }

    async fn apply(&self, plan: &Plan, now: Timestamp) -> Result<Applied, ActuatorError> {
        let target = plan.target.to_string();
        let api = api_for(&self.client, &plan.target, ACTUATOR)?;
        let body = crate::patch_body(plan)?;
        let template_annotations = &body["spec"]["template"]["metadata"]["annotations"];
        if plan.patch_type != PatchType::Merge || !template_annotations[RESTARTED_AT].is_string() {
            return Err(ActuatorError::InvalidPlan {
                target,
                reason: format!("not a merge patch of the pod template's {RESTARTED_AT}"),
            });
        }
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        let updated = api
            .patch(&plan.target.name, &params, &Patch::Merge(&body))
            .await
            .map_err(|e| ActuatorError::from_kube(target, e))?;
        tracing::info!(workload = %plan.target, summary = %plan.summary, "rollout restarted");
        Ok(Applied::answered(updated.metadata, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, Failure, Handle};
    use homeostat_core::WorkloadRef;
    use http::Method;

    /// A decision id: a ULID, whose first ten characters are its time.
    const DECISION: &str = "01KB0QVCGAF4ZK8C5N2DPQ3H7W";

    fn restarter() -> (RolloutRestarter, Handle) {
        let (client, handle) = testing::client();
        (RolloutRestarter::new(client), handle)
    }

    fn deployment(strategy: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": { "name": "cart", "namespace": "shop", "resourceVersion": "8" },
            "spec": { "replicas": 4, "strategy": strategy,
                "selector": { "matchLabels": { "app": "cart" } },
                "template": { "metadata": { "labels": { "app": "cart" } } } }
        })
    }

    const PATH: &str = "/apis/apps/v1/namespaces/shop/deployments/cart";

    fn restart() -> Action {
        Action::RolloutRestart {
            workload: WorkloadRef::deployment("shop", "cart"),
        }
    }

    #[test]
    fn the_stamp_is_the_decisions_time() {
        let at = restarted_at(&DecisionId(DECISION.into())).expect("a ULID");
        let ms = ulid::Ulid::from_string(DECISION)
            .expect("ulid")
            .timestamp_ms();
        let parsed: k8s_openapi::jiff::Timestamp = at.parse().expect("RFC 3339");
        assert_eq!(parsed.as_second(), i64::try_from(ms / 1000).expect("fits"));
        assert!(at.ends_with('Z') && !at.contains('.'), "{at}");
        assert_eq!(restarted_at(&DecisionId("not-a-ulid".into())), None);
    }

    #[tokio::test]
    async fn patches_the_template_annotation_with_the_decision_stamp() {
        let (restarter, mut handle) = restarter();
        let server = tokio::spawn(async move {
            let strategy = json!({"type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 1, "maxSurge": "50%"}});
            testing::answer(
                &mut handle,
                Method::GET,
                PATH,
                200,
                deployment(strategy.clone()),
            )
            .await;
            testing::answer(&mut handle, Method::PATCH, PATH, 200, deployment(strategy)).await
        });
        let id = DecisionId(DECISION.into());
        let plan = restarter.plan(&restart(), &id).await.expect("plan");
        assert_eq!(
            plan.summary,
            "rollout restart of Deployment/shop/cart (4 pods, at most 1 unavailable and 50% extra at a time)"
        );
        let applied = restarter
            .apply(&plan, Timestamp::from_secs(4))
            .await
            .expect("applied");
        let sent = server.await.expect("server");
        sent.assert_merge_patch();
        let at = restarted_at(&id).expect("stamp");
        assert_eq!(
            serde_json::from_slice::<Value>(&sent.body).expect("json"),
            json!({
                "metadata": { "annotations": { DECISION_ANNOTATION: DECISION } },
                "spec": { "template": { "metadata": { "annotations": { RESTARTED_AT: at } } } }
            })
        );
        assert_eq!(applied.resource_version.as_deref(), Some("8"));
    }

    #[tokio::test]
    async fn recreate_paused_and_on_delete_workloads_are_not_restarted() {
        let sts_path = "/apis/apps/v1/namespaces/shop/statefulsets/db";
        let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": "shop"},
            "spec": {"replicas": 3, "updateStrategy": {"type": "OnDelete"}}});
        let cases = [
            (
                PATH,
                deployment(json!({"type": "Recreate"})),
                "Recreate",
                restart(),
            ),
            (
                PATH,
                {
                    let mut d = deployment(json!({"type": "RollingUpdate"}));
                    d["spec"]["paused"] = true.into();
                    d
                },
                "paused",
                restart(),
            ),
            (
                sts_path,
                sts,
                "OnDelete",
                Action::RolloutRestart {
                    workload: WorkloadRef {
                        namespace: "shop".into(),
                        kind: WorkloadKind::StatefulSet,
                        name: "db".into(),
                    },
                },
            ),
        ];
        for (path, object, why, action) in cases {
            let (restarter, mut handle) = restarter();
            let server = tokio::spawn(async move {
                testing::answer(&mut handle, Method::GET, path, 200, object).await;
            });
            let err = restarter
                .plan(&action, &DecisionId(DECISION.into()))
                .await
                .expect_err(why);
            server.await.expect("server");
            assert!(
                matches!(&err, ActuatorError::InvalidPlan { reason, .. } if reason.contains(why)),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn each_failure_answer_is_classified_for_the_retry_loop() {
        let id = DecisionId(DECISION.into());
        let body = json!({
            "metadata": { "annotations": { DECISION_ANNOTATION: DECISION } },
            "spec": { "template": { "metadata": { "annotations": {
                RESTARTED_AT: restarted_at(&id).expect("stamp") } } } },
        });
        let plan = Plan {
            target: workload_object(&WorkloadRef::deployment("shop", "cart")),
            patch_type: PatchType::Merge,
            patch: body.to_string(),
            summary: String::new(),
        };
        testing::check_failures(Method::PATCH, PATH, |client| {
            let plan = plan.clone();
            async move {
                RolloutRestarter::new(client)
                    .apply(&plan, Timestamp::EPOCH)
                    .await
                    .map(|_| ())
            }
        })
        .await;
        let (restarter, mut handle) = restarter();
        let server = tokio::spawn(async move {
            testing::fail(&mut handle, Method::GET, PATH, Failure::Status(404)).await;
        });
        let err = restarter.plan(&restart(), &id).await.expect_err("deleted");
        server.await.expect("server");
        assert!(matches!(err, ActuatorError::NotFound { .. }), "{err}");
    }
}
