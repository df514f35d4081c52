//! homeostat's actuators: where a decision becomes a change to the cluster.
//!
//! Every actuator works in two steps. [`Actuator::plan`] reads the target and returns the exact
//! change it would make (shown in dry-run, journaled, and put on the decision's span);
//! [`Actuator::apply`] sends that change and nothing else.
#![forbid(unsafe_code)]

pub mod error;
pub mod events;
pub mod history;
pub mod hpa;
pub mod landed;
pub mod quantity;
pub mod restart;
pub mod retry;
pub mod rollout;
pub mod scale;
pub mod taint;
#[cfg(test)]
mod testing;
pub mod throttle;
pub mod workload;

use std::future::Future;

use homeostat_core::{Action, DecisionId, Plan, Timestamp};

pub use error::{ActuatorError, Retry};
pub use events::EventRecorder;
pub use history::{ActionHistory, ActionRecord};
pub use hpa::{HpaScaler, HpaState};
pub use restart::{PodInfo, PodRestarter, RestartState};
pub use rollout::RolloutRestarter;
pub use scale::{ScaleState, WorkloadScaler};
pub use taint::NodeTainter;
pub use throttle::SamplingThrottler;

/// The annotation that stamps a changed object with the decision that changed it.
pub const DECISION_ANNOTATION: &str = "homeostat.dev/decision-id";

/// The field manager homeostat writes as, so field ownership is visible in the cluster.
pub const FIELD_MANAGER: &str = "homeostat";

/// The body of `plan` as JSON; a plan whose body is not JSON was not made by an actuator.
pub(crate) fn patch_body(plan: &Plan) -> Result<serde_json::Value, ActuatorError> {
    serde_json::from_str(&plan.patch).map_err(|e| ActuatorError::InvalidPlan {
        target: plan.target.to_string(),
        reason: e.to_string(),
    })
}

/// What the API server said when a plan was applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    /// The target's resourceVersion after the change.
    pub resource_version: Option<String>,
    /// The target's `metadata.uid`, for the Event that tells of the change (`kubectl describe`
    /// finds an object's Events by uid); `None` when the answer carries none (an eviction).
    pub uid: Option<String>,
    /// When the change was accepted.
    pub at: Timestamp,
}

impl Applied {
    /// A change the API server accepted, with the target's metadata from its answer.
    pub fn answered(metadata: kube::api::ObjectMeta, at: Timestamp) -> Self {
        Applied {
            resource_version: metadata.resource_version,
            uid: metadata.uid,
            at,
        }
    }
}

/// Turns an [`Action`] into a [`Plan`], and a plan into a change.
pub trait Actuator: Send + Sync {
    /// The exact change `action` would make now; reads, never writes.
    fn plan(
        &self,
        action: &Action,
        decision: &DecisionId,
    ) -> impl Future<Output = Result<Plan, ActuatorError>> + Send;

    /// Sends `plan` to the cluster.
    fn apply(
        &self,
        plan: &Plan,
        now: Timestamp,
    ) -> impl Future<Output = Result<Applied, ActuatorError>> + Send;
}
