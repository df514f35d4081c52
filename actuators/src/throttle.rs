//! Throttling the node sensor's sampling: homeostat writes one node's probe settings into the
//! ConfigMap the sensor on that node follows (`homeostat-sensor`, key `node.<node>.yaml`, the
//! sensor's own config format), by server-side apply, so the key is visibly homeostat's and
//! whatever else the ConfigMap holds is left alone.

use homeostat_core::{Action, DecisionId, ObjectRef, PatchType, Plan, Timestamp};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use crate::{Actuator, ActuatorError, Applied, DECISION_ANNOTATION, FIELD_MANAGER};

/// The namespace the sensor runs in unless told otherwise.
pub const SENSOR_NAMESPACE: &str = "homeostat-system";
/// The ConfigMap the sensors follow.
pub const SENSOR_CONFIGMAP: &str = "homeostat-sensor";

/// The key holding one node's overrides.
pub fn node_key(node: &str) -> String {
    format!("node.{node}.yaml")
}

/// Samples one event in this many for a sampled fraction `rate` in (0, 1].
pub fn sample_every(rate: f64) -> u32 {
    if rate.is_finite() && rate > 0.0 {
        (1.0 / rate.min(1.0))
            .round()
            .clamp(1.0, f64::from(u32::MAX)) as u32
    } else {
        1
    }
}

/// Writes sensor sampling overrides through the Kubernetes API.
#[derive(Clone)]
pub struct SamplingThrottler {
    client: Client,
    namespace: String,
}

impl SamplingThrottler {
    /// A throttler for sensors in `namespace`, talking through `client`.
    pub fn new(client: Client, namespace: impl Into<String>) -> Self {
        SamplingThrottler {
            client,
            namespace: namespace.into(),
        }
    }

    fn target(&self) -> ObjectRef {
        ObjectRef {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: self.namespace.clone(),
            name: SENSOR_CONFIGMAP.into(),
        }
    }
}

impl Actuator for SamplingThrottler {
    async fn plan(&self, action: &Action, decision: &DecisionId) -> Result<Plan, ActuatorError> {
        let Action::ThrottleSampling { node, probe, rate } = action else {
            return Err(ActuatorError::Unsupported {
                actuator: "sampling-throttler",
                action: action.kind().as_str(),
            });
        };
        if node.is_empty() || probe.is_empty() {
            return Err(ActuatorError::InvalidPlan {
                target: self.target().to_string(),
                reason: "a throttle needs a node and a probe".into(),
            });
        }
        let every = sample_every(*rate);
        let settings = format!("probes:\n  {probe}:\n    sampleEvery: {every}\n");
        let body = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": SENSOR_CONFIGMAP,
                "namespace": self.namespace,
                "annotations": { DECISION_ANNOTATION: decision.0 },
            },
            "data": { node_key(node): settings },
        });
        let target = self.target();
        Ok(Plan {
            summary: if every == 1 {
                format!("{target}: sensor on {node} samples every {probe} event again")
            } else {
                format!("{target}: sensor on {node} samples 1 {probe} event in {every}")
            },
            target,
            patch_type: PatchType::Apply,
            patch: body.to_string(),
        })
    }

    async fn apply(&self, plan: &Plan, now: Timestamp) -> Result<Applied, ActuatorError> {
        let target = plan.target.to_string();
        if plan.target != self.target() || plan.patch_type != PatchType::Apply {
            return Err(ActuatorError::InvalidPlan {
                target,
                reason: "not a server-side apply of the sensors' ConfigMap".into(),
            });
        }
        let body = crate::patch_body(plan)?;
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        // Forced: the key is homeostat's to set; a person editing it by hand is overridden,
        // and the managed fields show who set it last.
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let updated = api
            .patch(SENSOR_CONFIGMAP, &params, &Patch::Apply(&body))
            .await
            .map_err(|e| ActuatorError::from_kube(target, e))?;
        tracing::info!(configmap = %plan.target, summary = %plan.summary, "applied");
        Ok(Applied::answered(updated.metadata, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{self, Handle};
    use http::Method;

    fn throttler() -> (SamplingThrottler, Handle) {
        let (client, handle) = testing::client();
        (SamplingThrottler::new(client, SENSOR_NAMESPACE), handle)
    }

    #[test]
    fn rates_become_divisors() {
        assert_eq!(sample_every(1.0), 1);
        assert_eq!(sample_every(0.25), 4);
        assert_eq!(sample_every(0.3), 3);
        assert_eq!(sample_every(7.0), 1);
        assert_eq!(sample_every(0.0), 1);
        assert_eq!(sample_every(f64::NAN), 1);
    }

    #[tokio::test]
    async fn plans_and_applies_one_nodes_key_by_forced_server_side_apply() {
        let (throttler, mut handle) = throttler();
        let action = Action::ThrottleSampling {
            node: "node-c".into(),
            probe: "runqueue".into(),
            rate: 0.25,
        };
        let plan = throttler
            .plan(&action, &DecisionId("01D".into()))
            .await
            .expect("plan reads nothing");
        assert!(
            plan.summary.ends_with("samples 1 runqueue event in 4"),
            "{}",
            plan.summary
        );
        let server = tokio::spawn(async move {
            let reply = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": SENSOR_CONFIGMAP, "namespace": SENSOR_NAMESPACE, "resourceVersion": "12"}});
            testing::answer(
                &mut handle,
                Method::PATCH,
                "/api/v1/namespaces/homeostat-system/configmaps/homeostat-sensor",
                200,
                reply,
            )
            .await
        });
        let applied = throttler
            .apply(&plan, Timestamp::from_secs(3))
            .await
            .expect("applied");
        let sent = server.await.expect("server");
        sent.assert_forced_apply();
        let body: serde_json::Value = serde_json::from_slice(&sent.body).expect("json");
        assert_eq!(
            body["data"]["node.node-c.yaml"],
            "probes:\n  runqueue:\n    sampleEvery: 4\n"
        );
        assert_eq!(body["metadata"]["annotations"][DECISION_ANNOTATION], "01D");
        assert_eq!(applied.resource_version.as_deref(), Some("12"));
        let restart = Action::RestartPods {
            workload: homeostat_core::WorkloadRef::deployment("shop", "web"),
            pod: "web-0".into(),
            uid: None,
        };
        assert!(matches!(
            throttler.plan(&restart, &DecisionId("x".into())).await,
            Err(ActuatorError::Unsupported { .. })
        ));
    }

    #[tokio::test]
    async fn each_failure_answer_is_classified_for_the_retry_loop() {
        let (throttler, _handle) = throttler();
        let action = Action::ThrottleSampling {
            node: "node-c".into(),
            probe: "runqueue".into(),
            rate: 0.5,
        };
        let plan = throttler
            .plan(&action, &DecisionId("01D".into()))
            .await
            .expect("plan reads nothing");
        testing::check_failures(
            Method::PATCH,
            "/api/v1/namespaces/homeostat-system/configmaps/homeostat-sensor",
            |client| {
                let plan = plan.clone();
                async move {
                    SamplingThrottler::new(client, SENSOR_NAMESPACE)
                        .apply(&plan, Timestamp::EPOCH)
                        .await
                        .map(|_| ())
                }
            },
        )
        .await;
    }
}
