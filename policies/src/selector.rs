//! `spec.target.selector`: a Kubernetes label selector (`matchLabels` and `matchExpressions`
//! with `In`, `NotIn`, `Exists`, `DoesNotExist`), matched against a workload's labels.
//!
//! Written here rather than taken from `k8s-openapi`: its `LabelSelector` is the wire type
//! only (the operator a free string, no matching), and the loader must refuse a bad operator
//! or key at its own line and column, which a check after parsing cannot do.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::Deserializer;

use crate::scalar;
use crate::schema::inline_schema;

/// Which labels a workload must carry; every part must match (an empty selector matches
/// every workload whose labels were read).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a mapping of matchLabels and matchExpressions"
)]
pub struct LabelSelector {
    /// Labels the workload must carry with exactly these values.
    #[serde(default)]
    pub match_labels: BTreeMap<LabelKey, LabelValue>,
    /// Requirements the workload's labels must all meet.
    #[serde(default)]
    pub match_expressions: Vec<Requirement>,
}

impl LabelSelector {
    /// Whether `labels` meet every part of the selector; allocates nothing.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k.as_str()).is_some_and(|l| *l == v.0))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }
}

impl fmt::Display for LabelSelector {
    /// As `kubectl get -l` writes it: `app=web,tier in (a,b),!canary`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            let s = if first { "" } else { "," };
            first = false;
            f.write_str(s)
        };
        for (k, v) in &self.match_labels {
            sep(f)?;
            write!(f, "{}={}", k.0, v.0)?;
        }
        for r in &self.match_expressions {
            sep(f)?;
            let values = r.values.join(",");
            match r.operator {
                Operator::In => write!(f, "{} in ({values})", r.key.0)?,
                Operator::NotIn => write!(f, "{} notin ({values})", r.key.0)?,
                Operator::Exists => write!(f, "{}", r.key.0)?,
                Operator::DoesNotExist => write!(f, "!{}", r.key.0)?,
            }
        }
        Ok(())
    }
}

/// One `matchExpressions` entry: `In` and `NotIn` need values, `Exists` and `DoesNotExist`
/// take none.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "RawRequirement")]
pub struct Requirement {
    key: LabelKey,
    operator: Operator,
    values: Vec<String>,
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(self.key.as_str());
        match self.operator {
            Operator::In => value.is_some_and(|v| self.values.iter().any(|x| x == v)),
            // As Kubernetes reads it: a workload without the key is not in the set.
            Operator::NotIn => value.is_none_or(|v| self.values.iter().all(|x| x != v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

// A requirement as written, checked as a whole into a `Requirement`; its doc comment is the
// CRD's description.
/// One requirement on a label: In and NotIn need values, Exists and DoesNotExist take none.
#[derive(Deserialize, JsonSchema)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of key, operator and values"
)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.operator in ['In', 'NotIn'] ? has(self.values) && size(self.values) > 0 : !has(self.values) || size(self.values) == 0",
    "message": "In and NotIn need values; Exists and DoesNotExist take none",
}]))]
struct RawRequirement {
    /// The label key.
    key: LabelKey,
    /// In, NotIn, Exists or DoesNotExist.
    operator: Operator,
    /// The values `In` and `NotIn` compare with.
    #[serde(default)]
    values: Vec<LabelValue>,
}

impl TryFrom<RawRequirement> for Requirement {
    type Error = String;

    fn try_from(raw: RawRequirement) -> Result<Self, String> {
        let op = raw.operator.as_str();
        match (raw.operator, raw.values.is_empty()) {
            (Operator::In | Operator::NotIn, true) => Err(format!(
                "operator {op} needs at least one value (hint: use Exists to match any value)"
            )),
            (Operator::Exists | Operator::DoesNotExist, false) => Err(format!(
                "operator {op} takes no values, found {} (hint: use In to match values)",
                raw.values.len()
            )),
            _ => Ok(Requirement {
                key: raw.key,
                operator: raw.operator,
                values: raw.values.into_iter().map(|v| v.0).collect(),
            }),
        }
    }
}

impl JsonSchema for Requirement {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Requirement".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        RawRequirement::json_schema(generator)
    }
}

/// A selector operator, spelt as Kubernetes spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    /// The label's value is one of the values.
    In,
    /// The label is missing or its value is none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is missing.
    DoesNotExist,
}

const OPERATORS: [Operator; 4] = [
    Operator::In,
    Operator::NotIn,
    Operator::Exists,
    Operator::DoesNotExist,
];

impl Operator {
    /// As written in a selector.
    pub fn as_str(self) -> &'static str {
        match self {
            Operator::In => "In",
            Operator::NotIn => "NotIn",
            Operator::Exists => "Exists",
            Operator::DoesNotExist => "DoesNotExist",
        }
    }
}

impl<'de> Deserialize<'de> for Operator {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        scalar::string(deserializer, "In, NotIn, Exists or DoesNotExist", |text| {
            OPERATORS
                .into_iter()
                .find(|o| o.as_str() == text)
                .ok_or_else(|| {
                    format!(
                        "unknown operator {text:?}: expected In, NotIn, Exists or DoesNotExist \
                         (operators are case-sensitive)"
                    )
                })
        })
    }
}

inline_schema!(
    Operator,
    "Operator",
    schemars::json_schema!({"type": "string", "enum": ["In", "NotIn", "Exists", "DoesNotExist"]})
);

/// A label key: an optional DNS-subdomain prefix and `/`, then a name of at most 63
/// alphanumerics, `-`, `_` and `.`, starting and ending alphanumeric.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LabelKey(String);

impl LabelKey {
    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn parse(text: &str) -> Result<LabelKey, String> {
        let (prefix, name) = match text.split_once('/') {
            Some((p, n)) => (Some(p), n),
            None => (None, text),
        };
        if let Some(p) = prefix {
            let subdomain = !p.is_empty()
                && p.len() <= 253
                && p.split('.').all(|part| {
                    !part.is_empty()
                        && part
                            .bytes()
                            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
                        && !part.starts_with('-')
                        && !part.ends_with('-')
                });
            if !subdomain {
                return Err(format!(
                    "invalid label key {text:?}: the prefix before '/' must be a DNS subdomain \
                     such as app.kubernetes.io"
                ));
            }
        }
        if !is_label_name(name) || name.is_empty() {
            return Err(format!(
                "invalid label key {text:?}: the name must be 1 to 63 letters, digits, '-', '_' \
                 or '.', starting and ending with a letter or digit"
            ));
        }
        Ok(LabelKey(text.to_owned()))
    }
}

impl<'de> Deserialize<'de> for LabelKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        scalar::string(deserializer, "a label key", LabelKey::parse)
    }
}

inline_schema!(
    LabelKey,
    "LabelKey",
    schemars::json_schema!({"type": "string", "minLength": 1, "maxLength": 317})
);

/// A label value: empty, or at most 63 alphanumerics, `-`, `_` and `.`, starting and ending
/// alphanumeric.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelValue(String);

impl<'de> Deserialize<'de> for LabelValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        scalar::string(deserializer, "a label value", |text| {
            if is_label_name(text) {
                Ok(LabelValue(text.to_owned()))
            } else {
                Err(format!(
                    "invalid label value {text:?}: at most 63 letters, digits, '-', '_' or '.', \
                     starting and ending with a letter or digit"
                ))
            }
        })
    }
}

inline_schema!(
    LabelValue,
    "LabelValue",
    schemars::json_schema!({
        "type": "string",
        "maxLength": 63,
        "pattern": "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$",
    })
);

/// Kubernetes' label name and value syntax (empty allowed; callers refuse an empty key).
fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b.first().is_none_or(u8::is_ascii_alphanumeric)
        && b.last().is_none_or(u8::is_ascii_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(yaml: &str) -> Result<LabelSelector, String> {
        yaml_serde::from_str(yaml).map_err(|e| e.to_string())
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn matches_as_kubernetes_does() {
        let s = selector(
            "matchLabels: {app: web}\nmatchExpressions:\n- {key: tier, operator: In, values: [front, edge]}\n\
             - {key: track, operator: NotIn, values: [canary]}\n- {key: app.kubernetes.io/part-of, operator: Exists}\n\
             - {key: legacy, operator: DoesNotExist}\n",
        )
        .expect("valid");
        let base = [
            ("app", "web"),
            ("tier", "front"),
            ("app.kubernetes.io/part-of", "shop"),
        ];
        assert!(s.matches(&labels(&base)));
        assert!(s.matches(&labels(&[base[0], base[1], base[2], ("track", "stable")])));
        assert!(!s.matches(&labels(&[base[0], base[1], base[2], ("track", "canary")])));
        assert!(!s.matches(&labels(&[base[0], base[1], base[2], ("legacy", "")])));
        assert!(!s.matches(&labels(&[("app", "api"), base[1], base[2]])));
        assert!(!s.matches(&labels(&[base[0], ("tier", "back"), base[2]])));
        assert!(!s.matches(&labels(&[base[0], base[1]])));
        assert!(LabelSelector::default().matches(&BTreeMap::new()));
        assert_eq!(
            s.to_string(),
            "app=web,tier in (front,edge),track notin (canary),app.kubernetes.io/part-of,!legacy"
        );
    }

    #[test]
    fn refuses_what_kubernetes_refuses() {
        let op = selector("matchExpressions: [{key: a, operator: in, values: [x]}]")
            .expect_err("lower case");
        assert!(op.contains("unknown operator \"in\""), "{op}");
        let values = selector("matchExpressions: [{key: a, operator: Exists, values: [x]}]")
            .expect_err("values with Exists");
        assert!(values.contains("Exists takes no values"), "{values}");
        let none = selector("matchExpressions: [{key: a, operator: NotIn}]").expect_err("empty");
        assert!(none.contains("NotIn needs at least one value"), "{none}");
        for key in ["-a", "a/", "/a", "Exa mple/a", &"k".repeat(64)] {
            let e = selector(&format!("matchLabels: {{'{key}': x}}")).expect_err(key);
            assert!(e.contains("invalid label key"), "{key}: {e}");
        }
        let value = selector("matchLabels: {app: 'web tier'}").expect_err("space");
        assert!(value.contains("invalid label value"), "{value}");
        assert!(selector("matchLabels: {app: ''}").is_ok());
    }
}
