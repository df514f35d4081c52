//! CustomResourceDefinitions: validating them, and serving the kinds they define.
//!
//! The served custom resources are a function of the stored CRDs: after every CRD write the
//! server calls [`sync_custom_resources`], which rebuilds the store's registry from them (a
//! dropped one takes its objects along) and writes each CRD's `status`.
//!
//! Custom objects are stored as sent: no schema validation, pruning or defaulting, and no
//! conversion between versions (each served version keeps its own objects).
//!
//! A [`ResourceType`] names its strings `&'static` so the built-in ones are `const` and every
//! part of the server passes them by reference; a custom one's strings are therefore leaked,
//! once per distinct definition, through a process-wide interner: re-creating or re-syncing a
//! CRD reuses its descriptors, and the interner refuses new definitions past
//! [`INTERN_LIMIT`], so what is leaked stays small and bounded whatever clients send.

use std::sync::Mutex;

use serde_json::{Value, json};

use super::discovery::{self, CUSTOM_RESOURCE_DEFINITIONS, ResourceType};
use super::error::{ApiError, StatusCause};
use super::selector::ObjectSelector;
use super::store::ObjectStore;

/// The most distinct custom resource descriptors a process serves over its life.
pub const INTERN_LIMIT: usize = 1024;

/// Every custom resource descriptor made so far, shared by all stores of the process.
static INTERNED: Mutex<Vec<&'static ResourceType>> = Mutex::new(Vec::new());

/// What one served version of a CRD serves, in owned form before interning.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Definition {
    group: String,
    version: String,
    plural: String,
    singular: String,
    kind: String,
    namespaced: bool,
    short_names: Vec<String>,
    status: bool,
}

/// Refuses (422 `Invalid`, with a cause per field) a CRD the real server would refuse for
/// what the simulation reads of it: group, names, scope, versions and the object's name.
pub fn validate(crd: &Value) -> Result<(), ApiError> {
    let mut causes = Vec::new();
    let spec = &crd["spec"];
    let mut required = |field: &str, value: &Value| {
        if value.as_str().is_none_or(str::is_empty) {
            causes.push(cause("FieldValueRequired", "Required value", field));
        }
    };
    required("spec.group", &spec["group"]);
    required("spec.names.plural", &spec["names"]["plural"]);
    required("spec.names.kind", &spec["names"]["kind"]);
    match spec["scope"].as_str() {
        Some("Namespaced" | "Cluster") => {}
        None => causes.push(cause("FieldValueRequired", "Required value", "spec.scope")),
        Some(other) => causes.push(cause(
            "FieldValueNotSupported",
            &format!(
                "Unsupported value: \"{other}\": supported values: \"Cluster\", \"Namespaced\""
            ),
            "spec.scope",
        )),
    }
    let versions = spec["versions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if versions.is_empty() {
        causes.push(cause(
            "FieldValueInvalid",
            "Invalid value: []: must have exactly one version marked as storage version",
            "spec.versions",
        ));
    } else if versions.iter().filter(|v| v["storage"] == true).count() != 1 {
        causes.push(cause(
            "FieldValueInvalid",
            "Invalid value: \"versions\": must have exactly one version marked as storage \
             version",
            "spec.versions",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        if v["name"].as_str().is_none_or(str::is_empty) {
            causes.push(cause(
                "FieldValueRequired",
                "Required value",
                &format!("spec.versions[{i}].name"),
            ));
        }
    }
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    if let (Some(plural), Some(group)) = (spec["names"]["plural"].as_str(), spec["group"].as_str())
        && name != format!("{plural}.{group}")
    {
        causes.push(cause(
            "FieldValueInvalid",
            &format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
            "metadata.name",
        ));
    }
    if causes.is_empty() {
        return Ok(());
    }
    let listed: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect();
    let listed = match listed.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    let message =
        format!("CustomResourceDefinition.apiextensions.k8s.io \"{name}\" is invalid: {listed}");
    Err(ApiError::Invalid(message).with_causes(causes))
}

/// Serves exactly the kinds the stored, valid CRDs define (objects of kinds no longer
/// defined are deleted) and marks each CRD established with its accepted names.
pub fn sync_custom_resources(store: &ObjectStore) -> Result<(), ApiError> {
    let (crds, _) = store.list(
        &CUSTOM_RESOURCE_DEFINITIONS,
        None,
        &ObjectSelector::default(),
    );
    let mut served = Vec::new();
    let now = store.timestamp();
    for crd in &crds {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default();
        if let Err(e) = validate(crd) {
            tracing::warn!(name, error = %e, "custom resource definition not served");
            continue;
        }
        let definitions = definitions_of(crd);
        if definitions
            .iter()
            .any(|d| discovery::lookup(&d.group, &d.version, &d.plural).is_some())
        {
            tracing::warn!(
                name,
                "custom resource definition shadows a built-in resource"
            );
            continue;
        }
        for definition in definitions {
            served.push(intern(definition)?);
        }
        store.modify(&CUSTOM_RESOURCE_DEFINITIONS, None, name, |stored| {
            stored["status"] = status_of(stored, &now);
        })?;
    }
    store.set_custom_resources(served);
    Ok(())
}

/// The served versions of a valid CRD.
fn definitions_of(crd: &Value) -> Vec<Definition> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let kind = text(&names["kind"]);
    let singular = names["singular"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map_or_else(|| kind.to_lowercase(), str::to_owned);
    let short_names: Vec<String> = names["shortNames"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect();
    spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["served"] == true)
        .map(|v| Definition {
            group: text(&spec["group"]),
            version: text(&v["name"]),
            plural: text(&names["plural"]),
            singular: singular.clone(),
            kind: kind.clone(),
            namespaced: spec["scope"] == "Namespaced",
            short_names: short_names.clone(),
            status: v["subresources"]["status"].is_object(),
        })
        .collect()
}

/// The CRD's status: established, its names accepted as asked, its storage version stored;
/// condition times kept from before.
fn status_of(crd: &Value, now: &str) -> Value {
    let names = &crd["spec"]["names"];
    let kind = names["kind"].as_str().unwrap_or_default();
    let mut accepted = names.clone();
    if accepted["singular"].is_null() {
        accepted["singular"] = kind.to_lowercase().into();
    }
    if accepted["listKind"].is_null() {
        accepted["listKind"] = format!("{kind}List").into();
    }
    let since = |kind: &str| {
        crd["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == kind && c["status"] == "True")
            .map_or(json!(now), |c| c["lastTransitionTime"].clone())
    };
    let stored: Vec<&Value> = crd["spec"]["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["storage"] == true)
        .map(|v| &v["name"])
        .collect();
    json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
             "message": "no conflicts found", "lastTransitionTime": since("NamesAccepted")},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
             "message": "the initial names have been accepted",
             "lastTransitionTime": since("Established")},
        ],
        "acceptedNames": accepted,
        "storedVersions": stored,
    })
}

/// The one `'static` descriptor for `definition`: the one made before, or a new one while
/// fewer than [`INTERN_LIMIT`] exist.
fn intern(definition: Definition) -> Result<&'static ResourceType, ApiError> {
    let mut interned = INTERNED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = interned.iter().find(|r| definition.describes(r)) {
        return Ok(found);
    }
    if interned.len() >= INTERN_LIMIT {
        return Err(ApiError::Internal(format!(
            "the simulated API server serves at most {INTERN_LIMIT} distinct custom resource \
             definitions per process"
        )));
    }
    let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
    let short_names: Vec<&'static str> = definition.short_names.into_iter().map(leak).collect();
    let resource: &'static ResourceType = Box::leak(Box::new(ResourceType {
        group: leak(definition.group),
        version: leak(definition.version),
        plural: leak(definition.plural),
        singular: leak(definition.singular),
        kind: leak(definition.kind),
        namespaced: definition.namespaced,
        short_names: Box::leak(short_names.into_boxed_slice()),
        subresources: if definition.status { &["status"] } else { &[] },
    }));
    interned.push(resource);
    Ok(resource)
}

impl Definition {
    fn describes(&self, r: &ResourceType) -> bool {
        r.group == self.group
            && r.version == self.version
            && r.plural == self.plural
            && r.singular == self.singular
            && r.kind == self.kind
            && r.namespaced == self.namespaced
            && r.short_names.iter().eq(self.short_names.iter())
            && r.has_subresource("status") == self.status
    }
}

fn cause(reason: &str, message: &str, field: &str) -> StatusCause {
    StatusCause {
        reason: reason.to_owned(),
        message: message.to_owned(),
        field: field.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy_crd() -> Value {
        json!({
            "metadata": {"name": "policies.homeostat.dev"},
            "spec": {
                "group": "homeostat.dev",
                "names": {"plural": "policies", "kind": "Policy", "shortNames": ["pol"]},
                "scope": "Namespaced",
                "versions": [
                    {"name": "v1alpha1", "served": true, "storage": true,
                     "subresources": {"status": {}}},
                    {"name": "v1alpha0", "served": false, "storage": false},
                ],
            },
        })
    }

    #[test]
    fn valid_crds_define_their_served_versions_once() {
        let crd = policy_crd();
        assert_eq!(validate(&crd), Ok(()));
        let defs = definitions_of(&crd);
        assert_eq!(defs.len(), 1);
        let first = intern(defs[0].clone()).expect("interned");
        let again = intern(defs[0].clone()).expect("interned");
        assert!(std::ptr::eq(first, again), "one descriptor per definition");
        assert_eq!(
            (first.singular, first.kind, first.short_names),
            ("policy", "Policy", &["pol"][..])
        );
        assert!(first.namespaced && first.has_subresource("status"));
        let status = status_of(&crd, "t");
        assert_eq!(status["acceptedNames"]["listKind"], "PolicyList");
        assert_eq!(status["storedVersions"], json!(["v1alpha1"]));
    }

    #[test]
    fn invalid_crds_name_each_field() {
        let crd = json!({"metadata": {"name": "wrong"}, "spec": {
            "group": "homeostat.dev", "names": {"plural": "policies"}, "scope": "Galaxy",
            "versions": [{"name": "v1", "served": true, "storage": false}],
        }});
        let Err(ApiError::WithCauses { error, causes }) = validate(&crd) else {
            panic!("refused with causes");
        };
        assert!(matches!(*error, ApiError::Invalid(_)));
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.names.kind",
                "spec.scope",
                "spec.versions",
                "metadata.name"
            ]
        );
    }
}
