//! The table of served resources and the discovery documents built from it.
//!
//! One table drives discovery, routing and the store, so adding a kind is one entry here.

use serde_json::{Value, json};

/// A kind of object the simulated cluster serves; `const` so in-process controllers can name one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResourceType {
    /// API group; empty for the core group.
    pub group: &'static str,
    /// API version within the group.
    pub version: &'static str,
    /// Plural name, the path segment.
    pub plural: &'static str,
    /// Singular name, for discovery.
    pub singular: &'static str,
    /// `kind` of one object.
    pub kind: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Abbreviations kubectl accepts (`deploy`, `hpa`, ...).
    pub short_names: &'static [&'static str],
    /// Subresources served besides the object itself (`status`, `scale`).
    pub subresources: &'static [&'static str],
}

impl ResourceType {
    /// `apiVersion` of its objects: `v1` for the core group, else `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether `sub` is served for this resource.
    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.contains(&sub)
    }
}

/// Core v1 namespaces (cluster-scoped).
pub const NAMESPACES: ResourceType = ResourceType {
    group: "",
    version: "v1",
    plural: "namespaces",
    singular: "namespace",
    kind: "Namespace",
    namespaced: false,
    short_names: &["ns"],
    subresources: &[],
};

/// Core v1 pods.
pub const PODS: ResourceType = ResourceType {
    group: "",
    version: "v1",
    plural: "pods",
    singular: "pod",
    kind: "Pod",
    namespaced: true,
    short_names: &["po"],
    subresources: &[],
};

/// Core v1 events.
pub const EVENTS: ResourceType = ResourceType {
    group: "",
    version: "v1",
    plural: "events",
    singular: "event",
    kind: "Event",
    namespaced: true,
    short_names: &["ev"],
    subresources: &[],
};

/// Core v1 config maps.
pub const CONFIGMAPS: ResourceType = ResourceType {
    group: "",
    version: "v1",
    plural: "configmaps",
    singular: "configmap",
    kind: "ConfigMap",
    namespaced: true,
    short_names: &["cm"],
    subresources: &[],
};

/// apps/v1 deployments, with `status` and `scale`.
pub const DEPLOYMENTS: ResourceType = ResourceType {
    group: "apps",
    version: "v1",
    plural: "deployments",
    singular: "deployment",
    kind: "Deployment",
    namespaced: true,
    short_names: &["deploy"],
    subresources: &["status", "scale"],
};

/// autoscaling/v2 horizontal pod autoscalers, with `status`.
pub const HORIZONTAL_POD_AUTOSCALERS: ResourceType = ResourceType {
    group: "autoscaling",
    version: "v2",
    plural: "horizontalpodautoscalers",
    singular: "horizontalpodautoscaler",
    kind: "HorizontalPodAutoscaler",
    namespaced: true,
    short_names: &["hpa"],
    subresources: &["status"],
};

/// Core v1 nodes (cluster-scoped), with `status`.
pub const NODES: ResourceType = ResourceType {
    group: "",
    version: "v1",
    plural: "nodes",
    singular: "node",
    kind: "Node",
    namespaced: false,
    short_names: &["no"],
    subresources: &["status"],
};

/// apps/v1 replica sets, with `status` and `scale`.
pub const REPLICA_SETS: ResourceType = ResourceType {
    group: "apps",
    version: "v1",
    plural: "replicasets",
    singular: "replicaset",
    kind: "ReplicaSet",
    namespaced: true,
    short_names: &["rs"],
    subresources: &["status", "scale"],
};

/// policy/v1 pod disruption budgets, with `status`.
pub const POD_DISRUPTION_BUDGETS: ResourceType = ResourceType {
    group: "policy",
    version: "v1",
    plural: "poddisruptionbudgets",
    singular: "poddisruptionbudget",
    kind: "PodDisruptionBudget",
    namespaced: true,
    short_names: &["pdb"],
    subresources: &["status"],
};

/// coordination.k8s.io/v1 leases, for leader election.
pub const LEASES: ResourceType = ResourceType {
    group: "coordination.k8s.io",
    version: "v1",
    plural: "leases",
    singular: "lease",
    kind: "Lease",
    namespaced: true,
    short_names: &[],
    subresources: &[],
};

/// Every resource the server serves.
pub const RESOURCES: &[ResourceType] = &[
    NAMESPACES,
    NODES,
    PODS,
    EVENTS,
    CONFIGMAPS,
    DEPLOYMENTS,
    REPLICA_SETS,
    HORIZONTAL_POD_AUTOSCALERS,
    POD_DISRUPTION_BUDGETS,
    LEASES,
];

/// Verbs every resource supports.
const VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
/// Verbs every subresource supports.
const SUBRESOURCE_VERBS: &[&str] = &["get", "patch", "update"];

/// The Kubernetes version the server claims; matches the k8s-openapi feature in use.
const MAJOR: &str = "1";
const MINOR: &str = "33";

/// The served resource with this group, version and plural.
pub fn lookup(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// `GET /version`: a `version.Info`.
pub fn version() -> Value {
    json!({
        "major": MAJOR,
        "minor": MINOR,
        "gitVersion": format!("v{MAJOR}.{MINOR}.0-homeostat"),
        "gitCommit": "homeostat-simulation",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "none",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    })
}

/// `GET /api`: the legacy core group's versions.
pub fn core_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [],
    })
}

/// `GET /apis`: every named group with its versions.
pub fn group_list() -> Value {
    let mut groups: Vec<(&str, &str)> = RESOURCES
        .iter()
        .filter(|r| !r.group.is_empty())
        .map(|r| (r.group, r.version))
        .collect();
    groups.sort_unstable();
    groups.dedup();
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(group, version)| {
            let gv = json!({"groupVersion": format!("{group}/{version}"), "version": version});
            json!({"name": group, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /api/v1` or `/apis/{group}/{version}`: the resources of one group version, or `None`
/// if no resource is served there.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in RESOURCES
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        resources.push(json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
            "shortNames": r.short_names,
        }));
        for sub in r.subresources {
            let (sub_group, sub_version, kind) = match *sub {
                "scale" => ("autoscaling", "v1", "Scale"),
                _ => (r.group, r.version, r.kind),
            };
            resources.push(json!({
                "name": format!("{}/{sub}", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "group": sub_group,
                "version": sub_version,
                "kind": kind,
                "verbs": SUBRESOURCE_VERBS,
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_lists_every_resource_and_subresource() {
        let core = resource_list("", "v1").expect("core v1 is served");
        let names: Vec<&str> = core["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert_eq!(
            names,
            [
                "namespaces",
                "nodes",
                "nodes/status",
                "pods",
                "events",
                "configmaps"
            ]
        );
        let apps = resource_list("apps", "v1").expect("apps/v1 is served");
        assert_eq!(apps["resources"][2]["name"], "deployments/scale");
        assert_eq!(apps["resources"][2]["group"], "autoscaling");
        assert!(resource_list("batch", "v1").is_none());
        let groups = group_list();
        assert_eq!(groups["groups"][0]["name"], "apps");
        assert_eq!(groups["groups"][1]["preferredVersion"]["version"], "v2");
        assert_eq!(lookup("apps", "v1", "deployments"), Some(&DEPLOYMENTS));
        assert_eq!(HORIZONTAL_POD_AUTOSCALERS.api_version(), "autoscaling/v2");
        assert_eq!(PODS.api_version(), "v1");
    }
}
