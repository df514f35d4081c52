//! Restarting pods by eviction: the pod's controller replaces it, and the API server refuses
//! (429) whenever a PodDisruptionBudget would be broken, so homeostat can never take more of a
//! workload down than its owners allow. A refusal is a deferral, not an error.

use homeostat_core::{
    Action, DecisionId, ObjectRef, PatchType, Plan, Timestamp, WorkloadKind, WorkloadRef,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use kube::core::Status;
use kube::{Api, Client};
use serde_json::json;

use crate::{Actuator, ActuatorError, Applied, quantity};

/// One pod of a workload, as far as restarting it goes.
#[derive(Clone, Debug, PartialEq)]
pub struct PodInfo {
    /// Name.
    pub name: String,
    /// UID.
    pub uid: Option<String>,
    /// Whether its Ready condition is true.
    pub ready: bool,
    /// Whether it is already being deleted.
    pub terminating: bool,
    /// Creation time (seconds since the epoch), to find the oldest.
    pub created: Option<i64>,
    /// The node it runs on, once scheduled.
    pub node: Option<String>,
}

/// What restarting a workload's pods needs to know about it now.
#[derive(Clone, Debug, PartialEq)]
pub struct RestartState {
    /// Its pods, oldest first.
    pub pods: Vec<PodInfo>,
    /// The pod template's memory limit, bytes (the sum over its containers), when every
    /// container has one.
    pub memory_limit: Option<f64>,
}

impl RestartState {
    /// Whether every pod is ready and none is going away: only then may one more be taken
    /// down, so at most one pod is ever unavailable because of homeostat.
    pub fn all_ready(&self) -> bool {
        !self.pods.is_empty() && self.pods.iter().all(|p| p.ready && !p.terminating)
    }

    /// How many pods are unavailable now (not ready, or going away): what a policy's blast
    /// radius counts a restart on top of.
    pub fn unavailable(&self) -> u32 {
        let n = self
            .pods
            .iter()
            .filter(|p| !p.ready || p.terminating)
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// The oldest ready pod: under a leak, the one that has leaked the most.
    pub fn oldest(&self) -> Option<&PodInfo> {
        self.pods.iter().find(|p| p.ready && !p.terminating)
    }
}

/// Evicts pods through the Kubernetes API.
#[derive(Clone)]
pub struct PodRestarter {
    client: Client,
}

impl PodRestarter {
    /// A restarter talking through `client`.
    pub fn new(client: Client) -> Self {
        PodRestarter { client }
    }

    /// The Deployment's pods and memory limit; `None` when there is no such Deployment or it
    /// selects pods by expressions only (which this reader does not evaluate).
    pub async fn find_for(
        &self,
        workload: &WorkloadRef,
    ) -> Result<Option<RestartState>, ActuatorError> {
        if workload.kind != WorkloadKind::Deployment {
            return Ok(None);
        }
        let deployments: Api<Deployment> =
            Api::namespaced(self.client.clone(), &workload.namespace);
        let target = workload.to_string();
        let Some(deployment) = deployments
            .get_opt(&workload.name)
            .await
            .map_err(|e| ActuatorError::from_kube(target.clone(), e))?
        else {
            return Ok(None);
        };
        let Some(spec) = deployment.spec else {
            return Ok(None);
        };
        let Some(labels) = spec.selector.match_labels.filter(|l| !l.is_empty()) else {
            return Ok(None);
        };
        let selector: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let memory_limit = spec
            .template
            .spec
            .as_ref()
            .map(|s| {
                s.containers
                    .iter()
                    .map(|c| {
                        c.resources
                            .as_ref()
                            .and_then(|r| r.limits.as_ref())
                            .and_then(|l| l.get("memory"))
                            .and_then(|q| quantity::parse(&q.0))
                    })
                    .sum::<Option<f64>>()
            })
            .unwrap_or(None);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &workload.namespace);
        let list = pods
            .list(&ListParams::default().labels(&selector.join(",")))
            .await
            .map_err(|e| ActuatorError::from_kube(format!("pods of {target}"), e))?;
        let mut pods: Vec<PodInfo> = list.items.iter().map(pod_info).collect();
        pods.sort_by_key(|p| (p.created.is_none(), p.created, p.name.clone()));
        Ok(Some(RestartState { pods, memory_limit }))
    }
}

fn pod_info(p: &Pod) -> PodInfo {
    let ready = p
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    PodInfo {
        name: p.metadata.name.clone().unwrap_or_default(),
        uid: p.metadata.uid.clone(),
        ready,
        terminating: p.metadata.deletion_timestamp.is_some(),
        created: p
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second()),
        node: p.spec.as_ref().and_then(|s| s.node_name.clone()),
    }
}

/// An `ObjectRef` to a core/v1 Pod.
pub fn pod_ref(namespace: &str, name: &str) -> ObjectRef {
    ObjectRef {
        api_version: "v1".into(),
        kind: "Pod".into(),
        namespace: namespace.into(),
        name: name.into(),
    }
}

impl Actuator for PodRestarter {
    async fn plan(&self, action: &Action, _decision: &DecisionId) -> Result<Plan, ActuatorError> {
        let Action::RestartPods { workload, pod, uid } = action else {
            return Err(ActuatorError::Unsupported {
                actuator: "pod-restarter",
                action: action.kind().as_str(),
            });
        };
        let target = pod_ref(&workload.namespace, pod);
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &workload.namespace);
        let current = api
            .get(pod)
            .await
            .map_err(|e| ActuatorError::from_kube(target.to_string(), e))?;
        if uid.is_some() && current.metadata.uid != *uid {
            // The pod of that name is another one now: the one the decision was about is gone.
            return Err(ActuatorError::NotFound {
                target: format!("{target} with uid {}", uid.as_deref().unwrap_or_default()),
            });
        }
        if current.metadata.deletion_timestamp.is_some() {
            return Err(ActuatorError::InvalidPlan {
                target: target.to_string(),
                reason: "the pod is already terminating".into(),
            });
        }
        let uid = current.metadata.uid.clone();
        let body = json!({
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": { "name": pod, "namespace": workload.namespace },
            "deleteOptions": { "preconditions": { "uid": uid } },
        });
        Ok(Plan {
            summary: format!("evict {target}; its ReplicaSet starts a fresh one"),
            target,
            patch_type: PatchType::Eviction,
            patch: body.to_string(),
        })
    }

    async fn apply(&self, plan: &Plan, now: Timestamp) -> Result<Applied, ActuatorError> {
        let target = plan.target.to_string();
        if plan.target.kind != "Pod"
            || plan.target.api_version != "v1"
            || plan.patch_type != PatchType::Eviction
        {
            return Err(ActuatorError::InvalidPlan {
                target,
                reason: "not an eviction of a core/v1 Pod".into(),
            });
        }
        let path = format!(
            "/api/v1/namespaces/{}/pods/{}/eviction",
            plan.target.namespace, plan.target.name
        );
        let request = http::Request::post(path)
            .header(
                http::header::CONTENT_TYPE,
                PatchType::Eviction.content_type(),
            )
            .body(plan.patch.clone().into_bytes())
            .map_err(|e| ActuatorError::InvalidPlan {
                target: target.clone(),
                reason: e.to_string(),
            })?;
        match self.client.request::<Status>(request).await {
            Ok(_) => {
                tracing::info!(pod = %plan.target, "evicted");
                Ok(Applied {
                    resource_version: None,
                    uid: None,
                    at: now,
                })
            }
            Err(kube::Error::Api(status)) if status.code == 429 => Err(ActuatorError::Deferred {
                target,
                reason: status.message.clone(),
            }),
            Err(e) => Err(ActuatorError::from_kube(target, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, Handle};
    use http::Method;

    fn restarter() -> (PodRestarter, Handle) {
        let (client, handle) = testing::client();
        (PodRestarter::new(client), handle)
    }

    /// Answers the next request, checking its method and path, and returns its JSON body.
    async fn answer(
        handle: &mut Handle,
        method: Method,
        path: &str,
        status: u16,
        reply: serde_json::Value,
    ) -> serde_json::Value {
        let received = testing::answer(handle, method, path, status, reply).await;
        serde_json::from_slice(&received.body).unwrap_or(serde_json::Value::Null)
    }

    fn pod_json(name: &str, uid: &str, created: &str, ready: bool) -> serde_json::Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": name, "namespace": "shop", "uid": uid, "creationTimestamp": created },
            "status": { "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }] }
        })
    }

    fn status(code: u16, reason: &str, message: &str) -> serde_json::Value {
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":message,"reason":reason,"code":code})
    }

    #[tokio::test]
    async fn finds_pods_oldest_first_and_the_memory_limit() {
        let (restarter, mut handle) = restarter();
        let server = tokio::spawn(async move {
            let deployment = json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": { "name": "checkout", "namespace": "shop" },
                "spec": {
                    "selector": { "matchLabels": { "app": "checkout" } },
                    "template": { "spec": { "containers": [
                        { "name": "app", "resources": { "limits": { "memory": "512Mi" } } },
                        { "name": "proxy", "resources": { "limits": { "memory": "64Mi" } } }
                    ] } }
                }
            });
            answer(
                &mut handle,
                Method::GET,
                "/apis/apps/v1/namespaces/shop/deployments/checkout",
                200,
                deployment,
            )
            .await;
            let pods = json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [
                pod_json("checkout-b", "u-b", "2026-01-01T00:10:00Z", true),
                pod_json("checkout-a", "u-a", "2026-01-01T00:00:00Z", true),
                pod_json("checkout-c", "u-c", "2026-01-01T00:20:00Z", false),
            ]});
            let list = testing::answer(
                &mut handle,
                Method::GET,
                "/api/v1/namespaces/shop/pods",
                200,
                pods,
            )
            .await;
            assert_eq!(list.query.as_deref(), Some("&labelSelector=app%3Dcheckout"));
        });
        let state = restarter
            .find_for(&WorkloadRef::deployment("shop", "checkout"))
            .await
            .expect("read")
            .expect("a deployment");
        server.await.expect("server");
        let names: Vec<&str> = state.pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["checkout-a", "checkout-b", "checkout-c"]);
        assert_eq!(state.memory_limit, Some(576.0 * 1024.0 * 1024.0));
        assert!(!state.all_ready(), "checkout-c is not ready");
        assert_eq!(state.oldest().map(|p| p.name.as_str()), Some("checkout-a"));
    }

    fn restart(uid: Option<&str>) -> Action {
        Action::RestartPods {
            workload: WorkloadRef::deployment("shop", "checkout"),
            pod: "checkout-a".into(),
            uid: uid.map(str::to_owned),
        }
    }

    const POD: &str = "/api/v1/namespaces/shop/pods/checkout-a";

    #[tokio::test]
    async fn plans_an_eviction_conditional_on_the_uid_and_posts_exactly_it() {
        let (restarter, mut handle) = restarter();
        let server = tokio::spawn(async move {
            answer(
                &mut handle,
                Method::GET,
                POD,
                200,
                pod_json("checkout-a", "u-a", "2026-01-01T00:00:00Z", true),
            )
            .await;
            answer(
                &mut handle,
                Method::POST,
                "/api/v1/namespaces/shop/pods/checkout-a/eviction",
                201,
                json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","code":201}),
            )
            .await
        });
        let plan = restarter
            .plan(&restart(Some("u-a")), &DecisionId("d".into()))
            .await
            .expect("plan");
        assert_eq!(plan.target, pod_ref("shop", "checkout-a"));
        let applied = restarter
            .apply(&plan, Timestamp::from_secs(9))
            .await
            .expect("evicted");
        let sent = server.await.expect("server");
        assert_eq!(
            sent,
            json!({
                "apiVersion": "policy/v1", "kind": "Eviction",
                "metadata": { "name": "checkout-a", "namespace": "shop" },
                "deleteOptions": { "preconditions": { "uid": "u-a" } }
            })
        );
        assert_eq!(applied.at, Timestamp::from_secs(9));
    }

    #[tokio::test]
    async fn a_disruption_budget_defers_and_a_replaced_pod_is_not_evicted() {
        let (restarter, mut handle) = restarter();
        let server = tokio::spawn(async move {
            answer(
                &mut handle,
                Method::POST,
                "/api/v1/namespaces/shop/pods/checkout-a/eviction",
                429,
                status(
                    429,
                    "TooManyRequests",
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                ),
            )
            .await;
            answer(
                &mut handle,
                Method::GET,
                POD,
                200,
                pod_json("checkout-a", "u-new", "2026-01-01T01:00:00Z", true),
            )
            .await;
        });
        let plan = Plan {
            target: pod_ref("shop", "checkout-a"),
            patch_type: PatchType::Eviction,
            patch: "{}".into(),
            summary: String::new(),
        };
        let err = restarter
            .apply(&plan, Timestamp::from_secs(1))
            .await
            .expect_err("429");
        assert!(
            matches!(&err, ActuatorError::Deferred { reason, .. } if reason.contains("disruption budget")),
            "{err}"
        );
        let err = restarter
            .plan(&restart(Some("u-a")), &DecisionId("d".into()))
            .await
            .expect_err("another pod now");
        server.await.expect("server");
        assert!(matches!(err, ActuatorError::NotFound { .. }), "{err}");
        let foreign = Plan {
            patch_type: PatchType::Merge,
            ..plan
        };
        assert!(matches!(
            restarter.apply(&foreign, Timestamp::from_secs(1)).await,
            Err(ActuatorError::InvalidPlan { .. })
        ));
    }

    #[tokio::test]
    async fn a_server_error_or_a_lost_answer_is_tried_again_and_a_conflict_planned_again() {
        use crate::Retry;
        use crate::testing::{Failure, fail};
        let plan = Plan {
            target: pod_ref("shop", "checkout-a"),
            patch_type: PatchType::Eviction,
            patch: "{}".into(),
            summary: String::new(),
        };
        // An eviction is conditional on the pod's uid: a 409 means the pod changed, so it is
        // planned again, which refuses a different pod under the same name (above). A 429 is
        // a deferral, above too.
        for (failure, expected) in [
            (Failure::Status(500), Retry::Later),
            (Failure::Timeout, Retry::Later),
            (Failure::Status(409), Retry::Replan),
        ] {
            let (client, mut handle) = crate::testing::client();
            let server = tokio::spawn(async move {
                fail(
                    &mut handle,
                    Method::POST,
                    "/api/v1/namespaces/shop/pods/checkout-a/eviction",
                    failure,
                )
                .await
            });
            let err = PodRestarter::new(client)
                .apply(&plan, Timestamp::from_secs(1))
                .await
                .expect_err("failed");
            server.await.expect("server");
            assert_eq!(err.retry(), expected, "{failure:?}: {err}");
        }
    }
}
