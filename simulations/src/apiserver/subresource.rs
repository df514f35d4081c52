//! Which part of an object a request addresses, and how reads and writes map onto it.
//!
//! As in Kubernetes: writes to the object leave `status` alone when a `status` subresource
//! exists, writes to `status` change only `status`, and `scale` is an `autoscaling/v1 Scale`
//! view of `spec.replicas`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::Selector;
use serde_json::{Value, json};

use super::discovery::ResourceType;
use super::error::ApiError;
use super::store::check_resource_version;

/// The part of an object a request reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The object itself.
    Object,
    /// The `status` subresource.
    Status,
    /// The `scale` subresource.
    Scale,
    /// A pod's `eviction` subresource, which is only ever created (see
    /// [`super::disruption`]).
    Eviction,
}

impl Part {
    /// The part named by the path's last segment, if `resource` serves it.
    pub fn parse(resource: &ResourceType, sub: Option<&str>) -> Result<Self, ApiError> {
        match sub {
            None => Ok(Part::Object),
            Some(s) if resource.has_subresource(s) && s == "status" => Ok(Part::Status),
            Some(s) if resource.has_subresource(s) && s == "scale" => Ok(Part::Scale),
            Some(s) if resource.has_subresource(s) && s == "eviction" => Ok(Part::Eviction),
            Some(s) => Err(ApiError::NotFound(format!(
                "the server could not find the requested resource ({}/{s})",
                resource.plural
            ))),
        }
    }

    /// What a client reads from `object` through this part.
    pub fn view(self, object: &Value) -> Value {
        match self {
            Part::Object | Part::Status | Part::Eviction => object.clone(),
            Part::Scale => scale_of(object),
        }
    }

    /// Writes `written` (a full view, as a client PUTs it or a patch produced it) back into
    /// `stored`. A `resourceVersion` in `written` must match `stored`'s.
    pub fn write_back(
        self,
        resource: &ResourceType,
        stored: &mut Value,
        mut written: Value,
    ) -> Result<(), ApiError> {
        check_resource_version(stored, &written)?;
        match self {
            Part::Object => {
                if resource.has_subresource("status") {
                    match stored.get("status") {
                        Some(status) => written["status"] = status.clone(),
                        None => {
                            if let Some(obj) = written.as_object_mut() {
                                obj.remove("status");
                            }
                        }
                    }
                }
                *stored = written;
            }
            Part::Status => stored["status"] = written["status"].take(),
            Part::Eviction => {
                return Err(ApiError::MethodNotAllowed(
                    "an eviction is created (POST), not written".into(),
                ));
            }
            Part::Scale => {
                let replicas = written["spec"]["replicas"]
                    .as_u64()
                    .filter(|&r| r <= i32::MAX as u64)
                    .ok_or_else(|| {
                        ApiError::Invalid(format!(
                            "spec.replicas: Invalid value: {}: must be a non-negative integer",
                            written["spec"]["replicas"]
                        ))
                    })?;
                stored["spec"]["replicas"] = replicas.into();
            }
        }
        Ok(())
    }
}

/// The `autoscaling/v1 Scale` of a workload object.
fn scale_of(object: &Value) -> Value {
    let meta = &object["metadata"];
    let selector = serde_json::from_value::<LabelSelector>(object["spec"]["selector"].clone())
        .ok()
        .and_then(|s| Selector::try_from(s).ok())
        .map(|s| s.to_string());
    let mut scale = json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
            "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": object["spec"]["replicas"].as_u64().unwrap_or(1)},
        "status": {"replicas": object["status"]["replicas"].as_u64().unwrap_or(0)},
    });
    if let Some(selector) = selector {
        scale["status"]["selector"] = selector.into();
    }
    scale
}

#[cfg(test)]
mod tests {
    use super::super::discovery::{DEPLOYMENTS, PODS};
    use super::*;

    fn deployment() -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "default", "resourceVersion": "7"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web", "tier": "front"}}},
            "status": {"replicas": 1},
        })
    }

    #[test]
    fn scale_views_and_writes_replicas() {
        let mut d = deployment();
        let scale = Part::Scale.view(&d);
        assert_eq!(scale["spec"]["replicas"], 2);
        assert_eq!(scale["status"]["replicas"], 1);
        assert_eq!(scale["status"]["selector"], "app=web,tier=front");
        assert_eq!(scale["metadata"]["resourceVersion"], "7");
        let mut written = scale.clone();
        written["spec"]["replicas"] = 5.into();
        Part::Scale
            .write_back(&DEPLOYMENTS, &mut d, written)
            .expect("written");
        assert_eq!(d["spec"]["replicas"], 5);
        let negative = json!({"spec": {"replicas": -1}});
        assert!(matches!(
            Part::Scale.write_back(&DEPLOYMENTS, &mut d, negative),
            Err(ApiError::Invalid(_))
        ));
        let stale = json!({"metadata": {"resourceVersion": "6"}, "spec": {"replicas": 1}});
        assert!(matches!(
            Part::Scale.write_back(&DEPLOYMENTS, &mut d, stale),
            Err(ApiError::Conflict(_))
        ));
    }

    #[test]
    fn object_writes_keep_status_and_status_writes_keep_spec() {
        let mut d = deployment();
        let mut written = deployment();
        written["spec"]["replicas"] = 4.into();
        written["status"]["replicas"] = 9.into();
        Part::Object
            .write_back(&DEPLOYMENTS, &mut d, written.clone())
            .expect("object written");
        assert_eq!(
            (
                d["spec"]["replicas"].clone(),
                d["status"]["replicas"].clone()
            ),
            (4.into(), 1.into())
        );
        written["spec"]["replicas"] = 8.into();
        Part::Status
            .write_back(&DEPLOYMENTS, &mut d, written)
            .expect("status written");
        assert_eq!(
            (
                d["spec"]["replicas"].clone(),
                d["status"]["replicas"].clone()
            ),
            (4.into(), 9.into())
        );
        assert!(Part::parse(&PODS, Some("scale")).is_err());
        assert_eq!(Part::parse(&DEPLOYMENTS, Some("scale")), Ok(Part::Scale));
    }
}
