//! Field ownership, as the real API server records it in `metadata.managedFields`: each
//! manager's entry lists, in the `FieldsV1` form (`{"f:spec": {"f:minReplicas": {}}}`), the
//! fields it last set, by server-side apply (`operation: Apply`) or by any other write that
//! named a `fieldManager` (`operation: Update`).
//!
//! As in Kubernetes: an apply that would change a field another manager owns is refused with
//! a 409 naming the conflicts, unless forced, which moves those fields (and only those) to the
//! applier; applying the value a field already has makes the appliers co-owners; an update
//! takes the fields it changed from whoever held them, without conflict; a write that changes
//! nothing leaves the entries (and their times) as they were. A write through the `scale`
//! subresource owns the workload's `spec.replicas`, in an entry marked `subresource: scale`.
//!
//! Simplified: lists are atomic (owned whole, as `+listType=atomic` lists are; the keyed
//! lists of containers or ports are not merged by key), of `metadata` only labels and
//! annotations are tracked, and `status` is not.

use serde_json::{Map, Value, json};

use super::error::ApiError;

/// A field: the keys from the object's root to it.
type Path = Vec<String>;

/// How a manager wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Server-side apply; `force` takes contested fields.
    Apply {
        /// Whether conflicts are overridden.
        force: bool,
    },
    /// Any other write (create, update, a merge or JSON patch).
    Update,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Apply { .. } => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One write to account for.
pub struct Write<'a> {
    /// The field manager.
    pub manager: &'a str,
    /// How it wrote.
    pub operation: Operation,
    /// `Some("scale")` for a write through that subresource.
    pub subresource: Option<&'a str>,
    /// The applied configuration (for an apply), in the object's shape.
    pub config: Option<&'a Value>,
    /// The time to stamp (RFC 3339).
    pub time: &'a str,
}

/// Whether a top-level or `metadata` key is a field a manager can own.
fn tracked(path: &[String]) -> bool {
    match path {
        [] => true,
        [top, ..] if top == "apiVersion" || top == "kind" || top == "status" => false,
        [meta] if meta == "metadata" => true,
        [meta, key, ..] if meta == "metadata" => key == "labels" || key == "annotations",
        _ => true,
    }
}

/// The leaf fields `value` sets.
fn leaves(value: &Value) -> Vec<Path> {
    fn walk(value: &Value, path: &mut Path, out: &mut Vec<Path>) {
        if !tracked(path) {
            return;
        }
        match value.as_object() {
            Some(map) if !map.is_empty() => {
                for (k, v) in map {
                    path.push(k.clone());
                    walk(v, path, out);
                    path.pop();
                }
            }
            _ if !path.is_empty() => out.push(path.clone()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, &mut Vec::new(), &mut out);
    out
}

/// The leaves whose values differ between `before` and `after` (set, changed or removed).
fn changed(before: &Value, after: &Value) -> Vec<Path> {
    fn walk(a: Option<&Value>, b: Option<&Value>, path: &mut Path, out: &mut Vec<Path>) {
        if !tracked(path) || a == b {
            return;
        }
        let empty = Map::new();
        let old = match a {
            None => Some(&empty),
            Some(v) => v.as_object(),
        };
        if let (Some(x), Some(y)) = (old, b.and_then(Value::as_object).filter(|y| !y.is_empty())) {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                path.push(k.clone());
                walk(x.get(k), y.get(k), path, out);
                path.pop();
            }
        } else if !path.is_empty() {
            out.push(path.clone());
        }
    }
    let mut out = Vec::new();
    walk(Some(before), Some(after), &mut Vec::new(), &mut out);
    out
}

/// The leaves of an object value, relative to it.
fn leaves_under(value: &Value) -> Vec<Path> {
    let mut out = Vec::new();
    if let Some(map) = value.as_object() {
        for (k, v) in map {
            match v.as_object() {
                Some(m) if !m.is_empty() => {
                    for mut rest in leaves_under(v) {
                        let mut p = vec![k.clone()];
                        p.append(&mut rest);
                        out.push(p);
                    }
                }
                _ => out.push(vec![k.clone()]),
            }
        }
    }
    out
}

fn value_at<'a>(object: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(object, |v, k| v.get(k))
}

/// The `FieldsV1` set of `paths`.
fn fields_v1(paths: &[Path]) -> Value {
    let mut root = Map::new();
    for path in paths {
        let mut node = &mut root;
        for key in path {
            node = node
                .entry(format!("f:{key}"))
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("fields are objects");
        }
    }
    Value::Object(root)
}

/// The leaf paths of a `FieldsV1` set.
fn paths_of(fields: &Value) -> Vec<Path> {
    let mut out = Vec::new();
    for mut p in leaves_under(fields) {
        for k in &mut p {
            if let Some(name) = k.strip_prefix("f:") {
                *k = name.to_owned();
            }
        }
        out.push(p);
    }
    out
}

/// Whether a set of owned paths covers `path` (it or an ancestor of it, owned whole).
fn owns(owned: &[Path], path: &[String]) -> bool {
    owned
        .iter()
        .any(|o| path.starts_with(o) || o.starts_with(path))
}

fn dotted(path: &[String]) -> String {
    path.iter().map(|k| format!(".{k}")).collect()
}

/// Accounts for `write`, which turned `before` into `after`, in `after`'s managedFields.
/// An unforced apply that would change another manager's field is refused.
pub fn record(before: &Value, after: &mut Value, write: &Write<'_>) -> Result<(), ApiError> {
    let mut entries: Vec<Value> = before["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let api_version = after["apiVersion"].clone();
    let same_entry = |e: &Value| {
        e["manager"] == write.manager
            && e["operation"] == write.operation.name()
            && e["subresource"].as_str() == write.subresource
    };
    let mine: Vec<Path> = match (write.operation, write.config) {
        (Operation::Apply { .. }, Some(config)) => leaves(config)
            .into_iter()
            .filter(|p| write.subresource.is_none() || p.first().is_some_and(|k| k == "spec"))
            .collect(),
        _ => changed(before, after),
    };
    // Fields this write sets to a new value, which other managers give up (or contest).
    let moved: Vec<Path> = mine
        .iter()
        .filter(|p| value_at(before, p) != value_at(after, p))
        .cloned()
        .collect();
    if let Operation::Apply { force: false } = write.operation {
        let conflicts: Vec<String> = entries
            .iter()
            .filter(|e| !same_entry(e))
            .flat_map(|e| {
                let owned = paths_of(&e["fieldsV1"]);
                moved.iter().filter(move |p| owns(&owned, p)).map(move |p| {
                    format!(
                        "conflict with \"{}\" using {}: {}",
                        e["manager"].as_str().unwrap_or_default(),
                        e["apiVersion"].as_str().unwrap_or_default(),
                        dotted(p)
                    )
                })
            })
            .collect();
        if !conflicts.is_empty() {
            let n = conflicts.len();
            let s = if n == 1 { "" } else { "s" };
            return Err(ApiError::Conflict(format!(
                "Apply failed with {n} conflict{s}: {}",
                conflicts.join("\n")
            )));
        }
    }
    let mut touched = false;
    for e in entries.iter_mut().filter(|e| !same_entry(e)) {
        let owned = paths_of(&e["fieldsV1"]);
        let kept: Vec<Path> = owned
            .iter()
            .filter(|o| !moved.iter().any(|p| o.starts_with(p) || p.starts_with(o)))
            .cloned()
            .collect();
        if kept.len() != owned.len() {
            e["fieldsV1"] = fields_v1(&kept);
            touched = true;
        }
    }
    entries.retain(|e| same_entry(e) || !paths_of(&e["fieldsV1"]).is_empty());
    let previous = entries.iter().position(same_entry);
    let mut owned: Vec<Path> = match (write.operation, previous) {
        // An apply owns exactly what it applied; an update adds to what it had.
        (Operation::Update, Some(i)) => paths_of(&entries[i]["fieldsV1"]),
        _ => Vec::new(),
    };
    for p in mine {
        if value_at(after, &p).is_some() && !owned.contains(&p) {
            owned.push(p);
        }
    }
    let moved_any = !moved.is_empty();
    owned.sort();
    let fields = fields_v1(&owned);
    let unchanged = previous.is_some_and(|i| entries[i]["fieldsV1"] == fields);
    if unchanged && !touched && !moved_any {
        // Nothing changed hands and no value moved: no write, no new time.
        after["metadata"]["managedFields"] = before["metadata"]["managedFields"].clone();
        return Ok(());
    }
    let mut entry = json!({
        "manager": write.manager,
        "operation": write.operation.name(),
        "apiVersion": api_version,
        "time": write.time,
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    });
    if let Some(sub) = write.subresource {
        entry["subresource"] = sub.into();
    }
    match previous {
        Some(i) if owned.is_empty() => {
            entries.remove(i);
        }
        Some(i) => entries[i] = entry,
        None if owned.is_empty() => {}
        None => entries.push(entry),
    }
    match after["metadata"].as_object_mut() {
        Some(meta) if entries.is_empty() => {
            meta.remove("managedFields");
        }
        _ => after["metadata"]["managedFields"] = Value::Array(entries),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = "2026-11-25T20:00:00Z";
    const T1: &str = "2026-11-25T20:05:00Z";

    fn hpa() -> Value {
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "3"},
            "spec": {"minReplicas": 2, "maxReplicas": 10,
                "scaleTargetRef": {"kind": "Deployment", "name": "web"}}})
    }

    fn apply(before: &Value, config: Value, force: bool, time: &str) -> Result<Value, ApiError> {
        let mut after = before.clone();
        json_patch::merge(&mut after, &config);
        let write = Write {
            manager: "homeostat",
            operation: Operation::Apply { force },
            subresource: None,
            config: Some(&config),
            time,
        };
        record(before, &mut after, &write).map(|()| after)
    }

    fn created_by_helm() -> Value {
        let mut h = hpa();
        let write = Write {
            manager: "helm",
            operation: Operation::Update,
            subresource: None,
            config: None,
            time: T0,
        };
        record(&json!({}), &mut h, &write).expect("recorded");
        h
    }

    #[test]
    fn an_update_owns_what_it_wrote() {
        let h = created_by_helm();
        let fields = &h["metadata"]["managedFields"];
        assert_eq!(fields.as_array().map(Vec::len), Some(1));
        assert_eq!(fields[0]["manager"], "helm");
        assert_eq!(fields[0]["operation"], "Update");
        assert_eq!(
            fields[0]["fieldsV1"],
            json!({"f:spec": {"f:maxReplicas": {}, "f:minReplicas": {},
                "f:scaleTargetRef": {"f:kind": {}, "f:name": {}}}})
        );
    }

    #[test]
    fn an_unforced_apply_of_anothers_field_conflicts_and_a_forced_one_takes_only_it() {
        let h = created_by_helm();
        let config = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "shop",
                "annotations": {"homeostat.dev/decision-id": "01D"}},
            "spec": {"minReplicas": 6}});
        let err = apply(&h, config.clone(), false, T1).expect_err("conflict");
        assert_eq!(
            err,
            ApiError::Conflict(
                "Apply failed with 1 conflict: conflict with \"helm\" using autoscaling/v2: .spec.minReplicas".into()
            )
        );
        let after = apply(&h, config.clone(), true, T1).expect("forced");
        let fields = after["metadata"]["managedFields"]
            .as_array()
            .expect("entries");
        assert_eq!(fields.len(), 2);
        assert_eq!(
            fields[0]["fieldsV1"],
            json!({"f:spec": {"f:maxReplicas": {}, "f:scaleTargetRef": {"f:kind": {}, "f:name": {}}}}),
            "helm keeps what homeostat did not set"
        );
        assert_eq!(fields[1]["manager"], "homeostat");
        assert_eq!(fields[1]["operation"], "Apply");
        assert_eq!(
            fields[1]["fieldsV1"],
            json!({"f:metadata": {"f:annotations": {"f:homeostat.dev/decision-id": {}}},
                "f:spec": {"f:minReplicas": {}}})
        );
        // Applying the same again changes nothing, not even the time.
        let again = apply(&after, config, false, "2026-11-25T21:00:00Z").expect("no conflict");
        assert_eq!(again, after);
        // A value equal to the owner's is shared, not contested.
        let same = json!({"spec": {"maxReplicas": 10}});
        assert!(apply(&h, same, false, T1).is_ok());
    }

    #[test]
    fn a_scale_write_owns_spec_replicas_of_the_workload() {
        let mut before = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"}, "spec": {"replicas": 2, "paused": false}});
        record(
            &json!({}),
            &mut before,
            &Write {
                manager: "kubectl",
                operation: Operation::Update,
                subresource: None,
                config: None,
                time: T0,
            },
        )
        .expect("created");
        let config = json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": "web"}, "spec": {"replicas": 4}});
        let mut after = before.clone();
        after["spec"]["replicas"] = 4.into();
        let write = Write {
            manager: "homeostat",
            operation: Operation::Apply { force: true },
            subresource: Some("scale"),
            config: Some(&config),
            time: T1,
        };
        record(&before, &mut after, &write).expect("forced");
        let fields = &after["metadata"]["managedFields"];
        assert_eq!(fields[0]["fieldsV1"], json!({"f:spec": {"f:paused": {}}}));
        assert_eq!(fields[1]["subresource"], "scale");
        assert_eq!(fields[1]["apiVersion"], "apps/v1");
        assert_eq!(fields[1]["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    }
}
