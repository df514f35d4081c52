//! Policies from the API server: a `Policy` custom resource, as JSON, goes through the same
//! loader as a file, so an object and a file are held to exactly the same rules.
//!
//! The API server adds metadata of its own (`uid`, `resourceVersion`, `managedFields`, …)
//! and keeps no source text, so only the fields an author writes are kept, and messages name
//! the object and the field path (`policy.homeostat.dev/web: spec.cooldown: …`) without a
//! line and column, which would point into a rendering nobody wrote.

use serde_json::{Map, Value};

use crate::crd::{GROUP, SINGULAR};
use crate::error::{Diagnostic, PolicyError};
use crate::load::{Policy, PolicySet};

/// How messages and verdicts name a Policy object: `policy.homeostat.dev/<name>`, as
/// `kubectl get policies -o name` prints it.
pub fn object_source(name: &str) -> String {
    format!("{SINGULAR}.{GROUP}/{name}")
}

/// The policy a `Policy` object describes, or every problem with it.
pub fn from_object(object: &Value) -> Result<Policy, PolicyError> {
    let name = object["metadata"]["name"].as_str().unwrap_or("<unnamed>");
    let source = object_source(name);
    let mut metadata = Map::new();
    for key in ["name", "labels", "annotations"] {
        if let Some(v) = object["metadata"].get(key) {
            metadata.insert(key.to_owned(), v.clone());
        }
    }
    let mut document = Map::new();
    for key in ["apiVersion", "kind", "spec"] {
        if let Some(v) = object.get(key) {
            document.insert(key.to_owned(), v.clone());
        }
    }
    document.insert("metadata".to_owned(), Value::Object(metadata));
    let text = yaml_serde::to_string(&Value::Object(document)).map_err(|e| PolicyError {
        diagnostics: vec![Diagnostic {
            file: source.clone(),
            location: None,
            message: format!("cannot be read as a document: {e}"),
        }],
    })?;
    let set = PolicySet::from_str(&source, &text).map_err(|e| PolicyError {
        diagnostics: e
            .diagnostics
            .into_iter()
            .map(|d| Diagnostic {
                location: None,
                ..d
            })
            .collect(),
    })?;
    let mut policies = set.policies().to_vec();
    match policies.pop() {
        Some(policy) if policies.is_empty() => Ok(policy),
        _ => Err(PolicyError {
            diagnostics: vec![Diagnostic {
                file: source,
                location: None,
                message: "expected exactly one policy".to_owned(),
            }],
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(spec: Value) -> Value {
        json!({
            "apiVersion": "homeostat.dev/v1alpha1",
            "kind": "Policy",
            "metadata": {
                "name": "web",
                "uid": "5f1c",
                "resourceVersion": "42",
                "creationTimestamp": "2026-11-25T10:00:00Z",
                "labels": {"team": "shop"},
            },
            "spec": spec,
        })
    }

    #[test]
    fn server_metadata_is_ignored_and_the_spec_is_loaded() {
        let policy = from_object(&object(json!({
            "mode": "enforce",
            "actions": ["restart-pods"],
            "cooldown": "10m",
        })))
        .expect("a valid object");
        assert_eq!(policy.name.as_str(), "web");
        assert_eq!(policy.file, "policy.homeostat.dev/web");
        assert_eq!(policy.spec.cooldown.0.as_secs(), 600);
    }

    #[test]
    fn problems_name_the_object_and_the_field_without_a_position() {
        let err = from_object(&object(json!({
            "mode": "enforce",
            "actions": ["scale-hpa"],
            "cooldown": "soon",
        })))
        .expect_err("a bad duration");
        assert_eq!(
            err.to_string(),
            "policy.homeostat.dev/web: spec.cooldown: invalid duration \"soon\": expected number at 0"
        );
        let err = from_object(&object(json!({
            "mode": "enforce",
            "actions": ["scale-hpa"],
            "cooldown": "5m",
        })))
        .expect_err("no ceiling");
        assert_eq!(
            err.to_string(),
            "policy.homeostat.dev/web: spec.maxReplicas: required when spec.actions includes scale-hpa"
        );
    }
}
