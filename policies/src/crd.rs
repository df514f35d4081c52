//! The `Policy` CustomResourceDefinition, generated from the document types ([`schema`]) so
//! the API server and the loader agree on what a policy is.
//!
//! `deploy/crds/policy.yaml` is [`to_yaml`]'s output (`homeostat policy crd`); a test fails
//! while the two differ. Policies are cluster-scoped: a document has no namespace, and
//! `spec.target.namespaces` names the namespaces it covers.
//!
//! [`schema`]: crate::schema

use serde_json::{Value, json};

use crate::document::{API_VERSION, KIND};
use crate::schema;

/// The API group of [`API_VERSION`].
pub const GROUP: &str = "homeostat.dev";
/// The version of [`API_VERSION`].
pub const VERSION: &str = "v1alpha1";
/// The resource name in URLs and `kubectl get policies`.
pub const PLURAL: &str = "policies";
/// The singular resource name.
pub const SINGULAR: &str = "policy";

/// The CRD's object name, `policies.homeostat.dev`.
pub fn name() -> String {
    format!("{PLURAL}.{GROUP}")
}

/// The CustomResourceDefinition (`apiextensions.k8s.io/v1`) as a JSON value.
pub fn definition() -> Value {
    let column =
        |name: &str, kind: &str, path: &str| json!({"name": name, "type": kind, "jsonPath": path});
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": name(),
            "labels": {
                "app.kubernetes.io/name": "homeostat",
                "app.kubernetes.io/part-of": "homeostat",
            },
        },
        "spec": {
            "group": GROUP,
            "scope": "Cluster",
            "names": {
                "kind": KIND,
                "listKind": format!("{KIND}List"),
                "plural": PLURAL,
                "singular": SINGULAR,
            },
            "versions": [{
                "name": VERSION,
                "served": true,
                "storage": true,
                "additionalPrinterColumns": [
                    column("Mode", "string", ".spec.mode"),
                    column("Actions", "string", ".spec.actions"),
                    column("Cooldown", "string", ".spec.cooldown"),
                    column("Max replicas", "integer", ".spec.maxReplicas"),
                    column("Age", "date", ".metadata.creationTimestamp"),
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "description": format!(
                            "A homeostat policy ({API_VERSION}): which actions the loop may \
                             take on which workloads, how often and how far. Cluster-scoped: \
                             spec.target names the namespaces it covers."
                        ),
                        "required": ["spec"],
                        "properties": {"spec": schema::policy_spec()},
                    },
                },
            }],
        },
    })
}

/// What `deploy/crds/policy.yaml` holds: a header saying where it comes from, then
/// [`definition`] with keys sorted, so the text depends on nothing but the code.
pub fn to_yaml() -> String {
    let body =
        yaml_serde::to_string(&sorted(definition())).expect("a JSON value always has a YAML form");
    format!(
        "# The {KIND} CustomResourceDefinition ({API_VERSION}), generated from the Rust types in\n\
         # policies/src/document.rs. Do not edit: regenerate with\n\
         #   cargo run -- policy crd > deploy/crds/policy.yaml\n\
         # tests/crd.rs fails while this file differs from what the code generates.\n\
         {body}"
    )
}

/// `v` with every object's keys in sorted order, whatever map serde_json was built with.
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_and_version_make_the_documents_api_version() {
        assert_eq!(format!("{GROUP}/{VERSION}"), API_VERSION);
    }

    #[test]
    fn the_yaml_reads_back_as_the_definition() {
        let text = to_yaml();
        let back: Value = yaml_serde::from_str(&text).expect("the YAML parses");
        assert_eq!(back, definition());
        assert_eq!(
            back["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"],
            schema::policy_spec()
        );
    }
}
