//! The JSON schema of a policy's `spec`, generated with schemars from the very types the loader
//! deserializes, then rewritten into the structural form the Kubernetes API server requires.

use homeostat_core::{ActionKind, Mode};
use schemars::generate::SchemaSettings;
use schemars::transform::{Transform, transform_subschemas};
use schemars::{Schema, SchemaGenerator, json_schema};
use serde_json::Value;

use crate::document::{ACTION_KINDS, MODES, PolicySpec};

/// The schema of [`PolicySpec`]: OpenAPI 3.0 as Kubernetes reads it, every subschema inlined
/// (a CRD schema has no `$ref`), field descriptions from the doc comments.
pub fn policy_spec() -> Value {
    let generator = SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
            s.transforms.push(Box::new(Structural));
        })
        .into_generator();
    let mut schema = generator.into_root_schema_for::<PolicySpec>();
    // The type's name means nothing to a reader of `kubectl explain`.
    schema.remove("title");
    schema.to_value()
}

/// Implements `JsonSchema` for a type written as one inline schema (a CRD has no `$ref`):
/// `inline_schema!(Type, "Name", schema)`.
macro_rules! inline_schema {
    ($ty:ty, $name:literal, $schema:expr) => {
        impl schemars::JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }

            fn inline_schema() -> bool {
                true
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                $schema
            }
        }
    };
}
pub(crate) use inline_schema;

/// `spec.mode`: one of core's modes.
pub(crate) fn mode(_: &mut SchemaGenerator) -> Schema {
    let names: Vec<&str> = MODES.iter().map(|m| m.as_str()).collect();
    json_schema!({"type": "string", "enum": names})
}

/// `spec.actions`: at least one of core's action kinds.
pub(crate) fn actions(_: &mut SchemaGenerator) -> Schema {
    let names: Vec<&str> = ACTION_KINDS.iter().map(|k| k.as_str()).collect();
    json_schema!({
        "type": "array",
        "minItems": 1,
        "items": {"type": "string", "enum": names},
    })
}

/// `spec.escalation.next`: one of core's action kinds.
pub(crate) fn action(_: &mut SchemaGenerator) -> Schema {
    let names: Vec<&str> = ACTION_KINDS.iter().map(|k| k.as_str()).collect();
    json_schema!({"type": "string", "enum": names})
}

/// Fails to compile when core gains a mode or an action kind that [`MODES`] or
/// [`ACTION_KINDS`] (and so the loader and the schema) do not list yet.
#[allow(dead_code)]
fn every_variant_is_listed(mode: Mode, kind: ActionKind) {
    match mode {
        Mode::Observe | Mode::DryRun | Mode::Enforce => {}
    }
    match kind {
        ActionKind::ScaleHpa
        | ActionKind::RestartPods
        | ActionKind::ThrottleSampling
        | ActionKind::TaintNode
        | ActionKind::ScaleWorkload
        | ActionKind::RolloutRestart => {}
    }
}

/// What Kubernetes' structural schemas forbid and schemars emits: `additionalProperties:
/// false` beside `properties` (from `deny_unknown_fields`). The API server prunes unknown
/// fields itself, and refuses them under strict field validation, as the loader does.
#[derive(Clone, Debug)]
struct Structural;

impl Transform for Structural {
    fn transform(&mut self, schema: &mut Schema) {
        if let Some(object) = schema.as_object_mut()
            && object.contains_key("properties")
            && object.get("additionalProperties") == Some(&Value::Bool(false))
        {
            object.remove("additionalProperties");
        }
        transform_subschemas(self, schema);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every schema: the root, each property's and each array's items', depth first.
    fn walk<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
        out.push(v);
        if let Some(properties) = v["properties"].as_object() {
            properties.values().for_each(|p| walk(p, out));
        }
        if v["items"].is_object() {
            walk(&v["items"], out);
        }
    }

    #[test]
    fn the_spec_schema_is_structural_and_follows_the_loader() {
        let spec = policy_spec();
        let mut all = Vec::new();
        walk(&spec, &mut all);
        for node in &all {
            if let Value::Object(m) = node {
                for banned in ["$ref", "$schema", "definitions", "$defs", "anyOf", "oneOf"] {
                    assert!(!m.contains_key(banned), "{banned} in {node}");
                }
                assert!(
                    !(m.contains_key("properties") && m.contains_key("additionalProperties")),
                    "additionalProperties beside properties in {node}"
                );
            }
            assert!(
                node["type"].is_string() || node["x-kubernetes-int-or-string"] == true,
                "a structural schema types every node: {node}"
            );
        }
        assert_eq!(
            all.len(),
            62,
            "spec and its 15 fields; the items of actions, conditions and budgets; target's 4 \
             fields and the items of its 3 lists; the selector's 2 fields, the expressions' \
             items, their 3 fields and the values' items; triggers' 2 fields, the anomalies' \
             items and their 2 fields, the forecast's 1; a budget's 3 fields; scale's 2 and \
             throttle's 2 fields, the probes' items; schedule's 3 fields and its 2 window \
             lists, each with its items, their 3 fields and the days' items; escalation's 2"
        );
        assert_eq!(
            spec["x-kubernetes-validations"][0]["rule"],
            "!self.actions.exists(a, a == 'scale-hpa' || a == 'scale-workload') || has(self.maxReplicas)"
        );
        let rules: Vec<&str> = spec["x-kubernetes-validations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["rule"].as_str())
            .collect();
        assert!(
            rules.iter().any(|r| r.starts_with("!has(self.throttle)")),
            "{rules:?}"
        );
        let requirement = &spec["properties"]["target"]["properties"]["selector"]["properties"]["matchExpressions"]
            ["items"];
        assert!(
            requirement["x-kubernetes-validations"][0]["rule"]
                .as_str()
                .is_some_and(|r| r.contains("size(self.values) > 0")),
            "{requirement}"
        );
        assert_eq!(
            spec["properties"]["throttle"]["properties"]["probes"]["items"]["enum"],
            serde_json::json!(["runqueue", "tcp-connect", "block-io"])
        );
        let window = &spec["properties"]["schedule"]["properties"]["deny"]["items"];
        assert_eq!(
            window["x-kubernetes-validations"][0]["rule"],
            "self.from < self.to"
        );
        assert_eq!(
            spec["properties"]["budgets"]["items"]["properties"]["scope"]["enum"],
            serde_json::json!(["workload", "namespace", "cluster"])
        );
        assert_eq!(
            spec["properties"]["maxUnavailable"]["x-kubernetes-int-or-string"],
            true
        );
        assert_eq!(spec["type"], "object");
        assert_eq!(
            spec["required"],
            serde_json::json!(["mode", "actions", "cooldown"])
        );
        assert_eq!(
            spec["properties"]["mode"]["enum"],
            serde_json::json!(["observe", "dry-run", "enforce"])
        );
        assert_eq!(spec["properties"]["actions"]["minItems"], 1);
        assert_eq!(spec["properties"]["maxReplicas"]["minimum"], 1);
        assert_eq!(
            spec["properties"]["target"]["properties"]["exclude"]["items"]["pattern"],
            "^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$"
        );
        assert!(
            spec["properties"]["cooldown"]["description"]
                .as_str()
                .is_some_and(|d| d.contains("flapping")),
            "field docs become descriptions: {}",
            spec["properties"]["cooldown"]
        );
    }
}
