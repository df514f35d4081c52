//! The manifests' roles as data, and the API calls the brain makes as RBAC sees them: shared
//! by the manifest checks and the actuators' end-to-end tests, which both hold the code to
//! the roles.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::validator::{documents, repo_root};

/// Where every namespaced object lives.
pub const NAMESPACE: &str = "homeostat-system";

pub fn manifests_dir() -> PathBuf {
    repo_root().join("deploy").join("manifests")
}

/// Every file under `deploy/manifests/`, recursively, sorted.
pub fn manifest_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&manifests_dir(), &mut files);
    files.sort();
    assert!(
        !files.is_empty(),
        "no files under {}",
        manifests_dir().display()
    );
    files
}

/// Every object in `deploy/manifests/`, keyed by (kind, name).
pub fn objects() -> BTreeMap<(String, String), Value> {
    let mut all = BTreeMap::new();
    for file in manifest_files() {
        for doc in documents(&file) {
            let kind = doc["kind"].as_str().expect("kind").to_owned();
            let name = doc["metadata"]["name"]
                .as_str()
                .expect("metadata.name")
                .to_owned();
            let previous = all.insert((kind.clone(), name.clone()), doc);
            assert!(previous.is_none(), "{kind}/{name} is defined twice");
        }
    }
    all
}

pub fn object<'a>(all: &'a BTreeMap<(String, String), Value>, kind: &str, name: &str) -> &'a Value {
    all.get(&(kind.to_owned(), name.to_owned()))
        .unwrap_or_else(|| panic!("no {kind}/{name} in deploy/manifests"))
}

pub fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a list, got {v}"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("expected a string, got {s}"))
        })
        .collect()
}

/// What a role grants: (apiGroup, resource, resourceNames) -> verbs; resourceNames empty
/// for a rule that names no object.
pub type Grants = BTreeMap<(String, String, Vec<String>), BTreeSet<String>>;

pub fn grants(role: &Value) -> Grants {
    let mut granted = Grants::new();
    for rule in role["rules"].as_array().expect("rules") {
        let keys: BTreeSet<&str> = rule
            .as_object()
            .expect("rule")
            .keys()
            .map(String::as_str)
            .collect();
        let allowed = BTreeSet::from(["apiGroups", "resources", "resourceNames", "verbs"]);
        assert!(
            keys.is_subset(&allowed) && keys.len() >= 3,
            "unexpected rule shape (nonResourceURLs?): {rule}"
        );
        let names: Vec<String> = match rule.get("resourceNames") {
            Some(n) => strings(n).into_iter().map(str::to_owned).collect(),
            None => Vec::new(),
        };
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                let verbs = granted
                    .entry((group.to_owned(), resource.to_owned(), names.clone()))
                    .or_default();
                verbs.extend(strings(&rule["verbs"]).into_iter().map(str::to_owned));
            }
        }
    }
    granted
}

/// One Kubernetes API call as RBAC sees it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Call {
    pub group: String,
    /// `pods`, or `pods/eviction` for a subresource.
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub verb: &'static str,
}

/// The RBAC view of a request the simulated API server recorded.
pub fn call(r: &homeostat_simulations::apiserver::AuditRecord) -> Call {
    let parts: Vec<&str> = r.path.trim_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", _version, rest @ ..] => (String::new(), rest),
        ["apis", group, _version, rest @ ..] => ((*group).to_owned(), rest),
        _ => panic!("not a resource path: {}", r.path),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        _ => (None, rest),
    };
    let (resource, name) = match rest {
        [resource] => ((*resource).to_owned(), None),
        [resource, name] => ((*resource).to_owned(), Some((*name).to_owned())),
        [resource, name, sub] => (format!("{resource}/{sub}"), Some((*name).to_owned())),
        _ => panic!("not a resource path: {}", r.path),
    };
    let watch = r
        .query
        .as_deref()
        .is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
    let verb = match (r.method.as_str(), name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        (m, _) => panic!("unexpected method {m} on {}", r.path),
    };
    Call {
        group,
        resource,
        namespace,
        name,
        verb,
    }
}

/// Whether `grants` allow `call`: a rule naming no object allows the verb on all of them; a
/// rule naming objects, only on those (and never `create`, which has no name yet).
pub fn allows(grants: &Grants, call: &Call) -> bool {
    grants.iter().any(|((group, resource, names), verbs)| {
        *group == call.group
            && *resource == call.resource
            && verbs.contains(call.verb)
            && (names.is_empty()
                || call.verb != "create" && call.name.as_ref().is_some_and(|n| names.contains(n)))
    })
}

/// Asserts that the brain's roles grant every request in `records`: its ClusterRole, or its
/// Role in its own namespace.
pub fn assert_brain_may(records: &[homeostat_simulations::apiserver::AuditRecord]) {
    let all = objects();
    let cluster = grants(object(&all, "ClusterRole", "homeostat-brain"));
    let local = grants(object(&all, "Role", "homeostat-brain"));
    for record in records {
        let c = call(record);
        assert!(
            allows(&cluster, &c) || c.namespace.as_deref() == Some(NAMESPACE) && allows(&local, &c),
            "the brain sent {} {} ({c:?}), which its roles do not grant",
            record.method,
            record.path
        );
    }
}
