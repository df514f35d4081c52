//! PATCH bodies: the four content types Kubernetes clients send, applied to JSON objects.
//!
//! Strategic merge patch is treated as a JSON merge patch (RFC 7386): the simulated kinds'
//! lists (containers, metrics) are replaced whole rather than merged by key, which is what the
//! project's own clients need. Server-side apply is likewise a merge of the applied
//! configuration into the object (created if missing); who owns which field, and the
//! conflicts that follows from it, is [`super::fields`]' part.

use serde_json::Value;

use super::error::ApiError;

/// A parsed PATCH body.
#[derive(Clone, Debug, PartialEq)]
pub enum Patch {
    /// `application/merge-patch+json` and `application/strategic-merge-patch+json`.
    Merge(Value),
    /// `application/json-patch+json` (RFC 6902).
    Json(json_patch::Patch),
    /// `application/apply-patch+yaml`: server-side apply of this configuration.
    Apply(Value),
}

impl Patch {
    /// Parses `body` according to the request's `Content-Type`.
    pub fn parse(content_type: &str, body: &[u8]) -> Result<Self, ApiError> {
        match media_type(content_type) {
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                Ok(Patch::Merge(parse_json(None, body)?))
            }
            "application/json-patch+json" => Ok(Patch::Json(parse_json(None, body)?)),
            "application/apply-patch+yaml" => yaml_serde::from_slice(body)
                .map(Patch::Apply)
                .map_err(|e| ApiError::BadRequest(format!("error decoding YAML body: {e}"))),
            other => Err(ApiError::UnsupportedMediaType(format!(
                "unsupported patch content type `{other}`"
            ))),
        }
    }

    /// Whether this is a server-side apply (which creates a missing object).
    pub fn is_apply(&self) -> bool {
        matches!(self, Patch::Apply(_))
    }

    /// Applies the patch to `target`; a failed JSON-patch operation is `Invalid` and leaves
    /// `target` as it was.
    pub fn apply_to(&self, target: &mut Value) -> Result<(), ApiError> {
        match self {
            Patch::Merge(p) | Patch::Apply(p) => {
                json_patch::merge(target, p);
                Ok(())
            }
            Patch::Json(p) => json_patch::patch(target, &p.0)
                .map_err(|e| ApiError::Invalid(format!("the JSON patch failed: {e}"))),
        }
    }
}

/// Parses a JSON request body, naming the problem in a `BadRequest`. Bodies declared as
/// anything but JSON (kubectl's typed clients send protobuf) are refused with 415.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<T, ApiError> {
    if let Some(other) = content_type
        .map(media_type)
        .filter(|m| !m.is_empty() && *m != "application/json")
    {
        return Err(ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format ({other}); only application/json \
             is served"
        )));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("error decoding JSON request body: {e}")))
}

/// The media type of a `Content-Type` value, without parameters.
fn media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_json_and_apply_patches() {
        let doc = json!({"spec": {"minReplicas": 1, "maxReplicas": 5}});
        let mut merged = doc.clone();
        Patch::parse(
            "application/merge-patch+json",
            br#"{"spec":{"minReplicas":2,"maxReplicas":null}}"#,
        )
        .and_then(|p| p.apply_to(&mut merged))
        .expect("merge patch applies");
        assert_eq!(merged, json!({"spec": {"minReplicas": 2}}));

        let mut patched = doc.clone();
        let ops = br#"[{"op":"test","path":"/spec/minReplicas","value":1},
                       {"op":"replace","path":"/spec/minReplicas","value":3}]"#;
        Patch::parse("application/json-patch+json; charset=utf-8", ops)
            .and_then(|p| p.apply_to(&mut patched))
            .expect("json patch applies");
        assert_eq!(patched["spec"]["minReplicas"], 3);

        let failing = br#"[{"op":"test","path":"/spec/minReplicas","value":9}]"#;
        let err = Patch::parse("application/json-patch+json", failing)
            .and_then(|p| p.apply_to(&mut patched.clone()));
        assert!(matches!(err, Err(ApiError::Invalid(_))), "{err:?}");

        let mut applied = doc;
        Patch::parse("application/apply-patch+yaml", b"spec:\n  maxReplicas: 9\n")
            .and_then(|p| p.apply_to(&mut applied))
            .expect("apply merges");
        assert_eq!(applied["spec"], json!({"minReplicas": 1, "maxReplicas": 9}));
    }

    #[test]
    fn bad_bodies_are_bad_requests() {
        for (ct, body) in [
            ("application/merge-patch+json", &b"{nope"[..]),
            ("application/json-patch+json", b"{}"),
        ] {
            let err = Patch::parse(ct, body).expect_err(ct);
            assert!(matches!(err, ApiError::BadRequest(_)), "{ct}: {err:?}");
        }
        let err = Patch::parse("application/vnd.kubernetes.protobuf", b"");
        assert!(matches!(err, Err(ApiError::UnsupportedMediaType(_))));
    }
}
