//! The workload objects homeostat scales and restarts directly: Deployments and StatefulSets,
//! read and written through one dynamic API so both kinds share a code path.

use homeostat_core::{ObjectRef, WorkloadKind, WorkloadRef};
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Api, Client};

use crate::ActuatorError;

/// The `ObjectRef` of a workload's controller object (`apps/v1`).
pub fn workload_object(workload: &WorkloadRef) -> ObjectRef {
    ObjectRef {
        api_version: "apps/v1".into(),
        kind: workload.kind.as_str().into(),
        namespace: workload.namespace.clone(),
        name: workload.name.clone(),
    }
}

/// The API of `target`'s kind in its namespace, if it is a kind homeostat scales and
/// restarts (a DaemonSet has no replicas to scale, a cgroup no API).
pub(crate) fn api_for(
    client: &Client,
    target: &ObjectRef,
    actuator: &'static str,
) -> Result<Api<DynamicObject>, ActuatorError> {
    let supported = target.api_version == "apps/v1"
        && matches!(
            WorkloadKind::from_name(&target.kind),
            Some(WorkloadKind::Deployment | WorkloadKind::StatefulSet)
        );
    if !supported {
        return Err(ActuatorError::InvalidPlan {
            target: target.to_string(),
            reason: format!("{actuator} acts on apps/v1 Deployments and StatefulSets only"),
        });
    }
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", &target.kind));
    Ok(Api::namespaced_with(
        client.clone(),
        &target.namespace,
        &resource,
    ))
}

/// Reads `target`, mapping a 404 to [`ActuatorError::NotFound`].
pub(crate) async fn get(
    api: &Api<DynamicObject>,
    target: &ObjectRef,
) -> Result<DynamicObject, ActuatorError> {
    api.get(&target.name)
        .await
        .map_err(|e| ActuatorError::from_kube(target.to_string(), e))
}

/// A non-negative count at `value`, if there is one.
pub(crate) fn count(value: &serde_json::Value) -> Option<u32> {
    value.as_u64().and_then(|v| u32::try_from(v).ok())
}
