//! The table of served resources and the discovery documents built from it.
//!
//! One table drives discovery, routing and the store, so adding a kind is one entry here.
//! Kinds defined at run time by CustomResourceDefinitions (see [`super::crd`]) join the
//! built-in table in the store's registry; the document builders take either.

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

    /// Whether both name the same collection (group, version and plural), whatever else a
    /// redefined custom resource changed (short names, subresources).
    pub fn same_resource(&self, other: &ResourceType) -> bool {
        (self.group, self.version, self.plural) == (other.group, other.version, other.plural)
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

/// Core v1 pods, with `eviction` (policy/v1 `Eviction`, see [`super::disruption`]).
pub const PODS: ResourceType = ResourceType {
    group: "",
    version: "v1",
    plural: "pods",
    singular: "pod",
    kind: "Pod",
    namespaced: true,
    short_names: &["po"],
    subresources: &["eviction"],
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

/// apps/v1 stateful sets, with `status` and `scale` (served and stored; no controller runs
/// their pods).
pub const STATEFUL_SETS: ResourceType = ResourceType {
    group: "apps",
    version: "v1",
    plural: "statefulsets",
    singular: "statefulset",
    kind: "StatefulSet",
    namespaced: true,
    short_names: &["sts"],
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

/// apiextensions.k8s.io/v1 custom resource definitions (cluster-scoped), with `status`;
/// creating one serves a new kind (see [`super::crd`]).
pub const CUSTOM_RESOURCE_DEFINITIONS: ResourceType = ResourceType {
    group: "apiextensions.k8s.io",
    version: "v1",
    plural: "customresourcedefinitions",
    singular: "customresourcedefinition",
    kind: "CustomResourceDefinition",
    namespaced: false,
    short_names: &["crd", "crds"],
    subresources: &["status"],
};

/// Every built-in resource the server serves.
pub const RESOURCES: &[ResourceType] = &[
    NAMESPACES,
    NODES,
    PODS,
    EVENTS,
    CONFIGMAPS,
    DEPLOYMENTS,
    REPLICA_SETS,
    STATEFUL_SETS,
    HORIZONTAL_POD_AUTOSCALERS,
    POD_DISRUPTION_BUDGETS,
    LEASES,
    CUSTOM_RESOURCE_DEFINITIONS,
];

/// Verbs every resource supports.
const VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
/// Verbs every subresource supports, but `eviction`.
const SUBRESOURCE_VERBS: &[&str] = &["get", "patch", "update"];
/// Verbs of `pods/eviction`: an eviction is only ever created.
const EVICTION_VERBS: &[&str] = &["create"];

/// The Kubernetes version the server claims; matches the k8s-openapi feature in use.
const MAJOR: &str = "1";
const MINOR: &str = "33";

/// The built-in resource with this group, version and plural (the store's
/// [`super::ObjectStore::resolve`] also finds custom ones).
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

/// `GET /apis`: every named group of the built-in resources with its versions.
pub fn group_list() -> Value {
    group_list_of(RESOURCES)
}

/// `GET /apis` for a set of served resources: each named group with its versions in the
/// order first served, the first one preferred.
pub fn group_list_of<'a>(resources: impl IntoIterator<Item = &'a ResourceType>) -> Value {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for r in resources.into_iter().filter(|r| !r.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) if versions.contains(&r.version) => {}
            Some((_, versions)) => versions.push(r.version),
            None => groups.push((r.group, vec![r.version])),
        }
    }
    groups.sort_unstable_by_key(|(g, _)| *g);
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .into_iter()
                .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
                .collect();
            json!({"name": group, "preferredVersion": versions[0], "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /api/v1` or `/apis/{group}/{version}` for the built-in resources, or `None` if none
/// is served there.
pub fn resource_list(group: &str, version: &str) -> Option<Value> {
    resource_list_of(RESOURCES, group, version)
}

/// `GET /api/v1` or `/apis/{group}/{version}`: the resources among `resources` of one group
/// version, or `None` if none is served there.
pub fn resource_list_of<'a>(
    resources: impl IntoIterator<Item = &'a ResourceType>,
    group: &str,
    version: &str,
) -> Option<Value> {
    let mut listed = Vec::new();
    for r in resources
        .into_iter()
        .filter(|r| r.group == group && r.version == version)
    {
        listed.push(json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
            "shortNames": r.short_names,
        }));
        for sub in r.subresources {
            let (sub_group, sub_version, kind, verbs) = match *sub {
                "scale" => ("autoscaling", "v1", "Scale", SUBRESOURCE_VERBS),
                "eviction" => ("policy", "v1", "Eviction", EVICTION_VERBS),
                _ => (r.group, r.version, r.kind, SUBRESOURCE_VERBS),
            };
            listed.push(json!({
                "name": format!("{}/{sub}", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "group": sub_group,
                "version": sub_version,
                "kind": kind,
                "verbs": verbs,
            }));
        }
    }
    if listed.is_empty() {
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
        "resources": listed,
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
                "pods/eviction",
                "events",
                "configmaps"
            ]
        );
        let apps = resource_list("apps", "v1").expect("apps/v1 is served");
        assert_eq!(apps["resources"][2]["name"], "deployments/scale");
        assert_eq!(apps["resources"][2]["group"], "autoscaling");
        assert!(resource_list("batch", "v1").is_none());
        assert_eq!(core["resources"][4]["kind"], "Eviction");
        assert_eq!(core["resources"][4]["verbs"], json!(["create"]));
        let groups = group_list();
        assert_eq!(groups["groups"][0]["name"], "apiextensions.k8s.io");
        assert_eq!(groups["groups"][1]["name"], "apps");
        assert_eq!(groups["groups"][2]["preferredVersion"]["version"], "v2");
        assert_eq!(lookup("apps", "v1", "deployments"), Some(&DEPLOYMENTS));
        assert_eq!(HORIZONTAL_POD_AUTOSCALERS.api_version(), "autoscaling/v2");
        assert_eq!(PODS.api_version(), "v1");
    }
}
