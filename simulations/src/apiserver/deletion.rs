//! What a delete carries (`DeleteOptions`: preconditions and a propagation policy) and the
//! owner-reference bookkeeping the store's garbage collection is made of.

use serde::Deserialize;
use serde_json::Value;

use super::discovery::ResourceType;
use super::error::ApiError;

/// What becomes of the objects that a deleted object owns (`metadata.ownerReferences`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum Propagation {
    /// Dependents are deleted after the owner (the default for most kinds).
    #[default]
    Background,
    /// Dependents are deleted before the owner; here, in the same write (see the store).
    Foreground,
    /// Dependents stay, without the owner reference.
    Orphan,
}

/// Conditions the object must meet for a delete to go ahead.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Preconditions {
    /// The object's `metadata.uid` must be this.
    pub uid: Option<String>,
    /// The object's `metadata.resourceVersion` must be this.
    pub resource_version: Option<String>,
}

/// A `meta.k8s.io/v1 DeleteOptions`, as far as the simulation honours it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteOptions {
    /// What happens to dependents.
    #[serde(default, rename = "propagationPolicy")]
    pub propagation: Propagation,
    /// What must hold of the object.
    #[serde(default)]
    pub preconditions: Preconditions,
}

impl DeleteOptions {
    /// The options of a DELETE: its body (a `DeleteOptions`, possibly empty) and its
    /// `propagationPolicy` query parameter, which wins over the body's like the real server's.
    pub fn parse(body: &[u8], query_propagation: Option<&str>) -> Result<Self, ApiError> {
        let mut options = if body.iter().all(u8::is_ascii_whitespace) {
            DeleteOptions::default()
        } else {
            Self::from_value(serde_json::from_slice(body).map_err(|e| {
                ApiError::BadRequest(format!("the DeleteOptions body is not JSON: {e}"))
            })?)?
        };
        if let Some(policy) = query_propagation.filter(|p| !p.is_empty()) {
            options.propagation = parse_propagation(policy)?;
        }
        Ok(options)
    }

    /// Reads a `DeleteOptions` object (as an eviction embeds one); `null` means the defaults.
    pub fn from_value(value: Value) -> Result<Self, ApiError> {
        if value.is_null() {
            return Ok(DeleteOptions::default());
        }
        serde_json::from_value(value)
            .map_err(|e| ApiError::BadRequest(format!("invalid DeleteOptions: {e}")))
    }
}

impl Preconditions {
    /// `Conflict`, in the real server's words, if `object` does not meet these.
    pub fn check(&self, resource: &ResourceType, object: &Value) -> Result<(), ApiError> {
        let meta = &object["metadata"];
        let failed = |what: &str, wanted: &str, found: &Value| {
            ApiError::Conflict(format!(
                "Operation cannot be fulfilled on {} \"{}\": Precondition failed: {what} in \
                 precondition: {wanted}, {what} in object meta: {}",
                resource.plural,
                meta["name"].as_str().unwrap_or_default(),
                found.as_str().unwrap_or_default()
            ))
        };
        if let Some(uid) = &self.uid
            && meta["uid"].as_str() != Some(uid)
        {
            return Err(failed("UID", uid, &meta["uid"]));
        }
        if let Some(rv) = &self.resource_version
            && meta["resourceVersion"].as_str() != Some(rv)
        {
            return Err(failed("ResourceVersion", rv, &meta["resourceVersion"]));
        }
        Ok(())
    }
}

fn parse_propagation(policy: &str) -> Result<Propagation, ApiError> {
    match policy {
        "Background" => Ok(Propagation::Background),
        "Foreground" => Ok(Propagation::Foreground),
        "Orphan" => Ok(Propagation::Orphan),
        other => Err(ApiError::BadRequest(format!(
            "propagationPolicy: Unsupported value: \"{other}\": supported values: \
             \"Background\", \"Foreground\", \"Orphan\""
        ))),
    }
}

/// The uids `object`'s owner references name.
pub fn owner_uids(object: &Value) -> impl Iterator<Item = &str> {
    object["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str())
}

/// Whether `object` names `uid` among its owners.
pub fn owned_by(object: &Value, uid: &str) -> bool {
    owner_uids(object).any(|u| u == uid)
}

/// Removes the owner references to `uid` from `object` (and the list, once empty).
pub fn remove_owner(object: &mut Value, uid: &str) {
    let Some(meta) = object["metadata"].as_object_mut() else {
        return;
    };
    let Some(refs) = meta
        .get_mut("ownerReferences")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    refs.retain(|r| r["uid"].as_str() != Some(uid));
    if refs.is_empty() {
        meta.remove("ownerReferences");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::discovery::PODS;
    use super::*;

    #[test]
    fn options_come_from_body_and_query() {
        let body = br#"{"kind":"DeleteOptions","propagationPolicy":"Orphan",
            "preconditions":{"uid":"u1"}}"#;
        let options = DeleteOptions::parse(body, None).expect("parses");
        assert_eq!(options.propagation, Propagation::Orphan);
        assert_eq!(options.preconditions.uid.as_deref(), Some("u1"));
        let options = DeleteOptions::parse(body, Some("Foreground")).expect("parses");
        assert_eq!(options.propagation, Propagation::Foreground);
        assert_eq!(
            DeleteOptions::parse(b"", None),
            Ok(DeleteOptions::default())
        );
        assert!(DeleteOptions::parse(b"", Some("Sometimes")).is_err());
        assert!(DeleteOptions::parse(b"{", None).is_err());
    }

    #[test]
    fn preconditions_and_owner_references() {
        let mut pod = json!({"metadata": {"name": "p", "uid": "u1", "resourceVersion": "5",
            "ownerReferences": [{"uid": "rs1"}, {"uid": "rs2"}]}});
        let wrong_uid = Preconditions {
            uid: Some("u2".into()),
            resource_version: None,
        };
        assert!(matches!(
            wrong_uid.check(&PODS, &pod),
            Err(ApiError::Conflict(m)) if m.contains("UID in precondition: u2")
        ));
        let right = Preconditions {
            uid: Some("u1".into()),
            resource_version: Some("5".into()),
        };
        assert_eq!(right.check(&PODS, &pod), Ok(()));
        assert!(owned_by(&pod, "rs2") && !owned_by(&pod, "u1"));
        remove_owner(&mut pod, "rs1");
        assert_eq!(owner_uids(&pod).collect::<Vec<_>>(), ["rs2"]);
        remove_owner(&mut pod, "rs2");
        assert!(pod["metadata"].get("ownerReferences").is_none());
    }
}
