//! Label and field selectors as they arrive in `labelSelector=` and `fieldSelector=`.
//!
//! Matching and printing reuse `kube::core::Selector`; only the string grammar is parsed here,
//! since kube offers no parser for it.

use std::collections::{BTreeMap, BTreeSet};

use kube::core::{Expression, Selector, SelectorExt};
use serde_json::Value;

use super::error::ApiError;

/// Which objects a list or watch wants: labels and fields must both match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectSelector {
    /// Requirements on `metadata.labels`.
    pub labels: Selector,
    /// Requirements on fields of the object.
    pub fields: Vec<FieldRequirement>,
}

/// One `path=value` or `path!=value` term of a field selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRequirement {
    /// Dotted path into the object, e.g. `metadata.name` or `involvedObject.name`.
    pub path: String,
    /// The value compared against; a missing field reads as the empty string.
    pub value: String,
    /// `true` for `!=`.
    pub negated: bool,
}

impl ObjectSelector {
    /// Parses the `labelSelector` and `fieldSelector` query values; absent means "everything".
    pub fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Self, ApiError> {
        Ok(ObjectSelector {
            labels: labels
                .map(parse_label_selector)
                .transpose()?
                .unwrap_or_default(),
            fields: fields
                .map(parse_field_selector)
                .transpose()?
                .unwrap_or_default(),
        })
    }

    /// Whether `object` is selected.
    pub fn matches(&self, object: &Value) -> bool {
        self.fields.iter().all(|f| f.matches(object))
            && (self.labels.selects_all() || self.labels.matches(&labels_of(object)))
    }
}

impl From<Selector> for ObjectSelector {
    fn from(labels: Selector) -> Self {
        ObjectSelector {
            labels,
            fields: Vec::new(),
        }
    }
}

impl FieldRequirement {
    /// Whether `object` satisfies this term.
    pub fn matches(&self, object: &Value) -> bool {
        let found = self
            .path
            .split('.')
            .try_fold(object, |v, key| v.get(key))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            })
            .unwrap_or_default();
        (found == self.value) != self.negated
    }
}

/// The labels of an object as a map (non-string values are ignored).
pub fn labels_of(object: &Value) -> BTreeMap<String, String> {
    object["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect()
}

/// Parses the label selector grammar: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`,
/// `k`, `!k`, joined by commas.
pub fn parse_label_selector(text: &str) -> Result<Selector, ApiError> {
    let mut selector = Selector::default();
    for term in split_top_level(text) {
        selector.extend(parse_label_term(term.trim(), text)?);
    }
    Ok(selector)
}

/// Parses the field selector grammar: `path=v`, `path==v`, `path!=v`, joined by commas.
pub fn parse_field_selector(text: &str) -> Result<Vec<FieldRequirement>, ApiError> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|term| {
            let (path, value, negated) = split_comparison(term)
                .ok_or_else(|| bad(text, &format!("`{term}` is not `field=value`")))?;
            valid_key(path, text)?;
            Ok(FieldRequirement {
                path: path.to_owned(),
                value: value.to_owned(),
                negated,
            })
        })
        .collect()
}

fn parse_label_term(term: &str, whole: &str) -> Result<Expression, ApiError> {
    if let Some(open) = term.find('(') {
        let close = term
            .strip_suffix(')')
            .ok_or_else(|| bad(whole, &format!("`{term}` lacks a closing parenthesis")))?;
        let values: BTreeSet<String> = close[open + 1..]
            .split(',')
            .map(|v| v.trim().to_owned())
            .collect();
        let mut head = term[..open].split_whitespace();
        let (key, op) = match (head.next(), head.next(), head.next()) {
            (Some(key), Some(op), None) => (key, op),
            _ => return Err(bad(whole, &format!("`{term}` is not `key in (...)`"))),
        };
        valid_key(key, whole)?;
        return match op {
            "in" => Ok(Expression::In(key.to_owned(), values)),
            "notin" => Ok(Expression::NotIn(key.to_owned(), values)),
            _ => Err(bad(whole, &format!("unknown set operator `{op}`"))),
        };
    }
    if let Some((key, value, negated)) = split_comparison(term) {
        valid_key(key, whole)?;
        valid_value(value, whole)?;
        let (key, value) = (key.to_owned(), value.to_owned());
        return Ok(if negated {
            Expression::NotEqual(key, value)
        } else {
            Expression::Equal(key, value)
        });
    }
    match term.strip_prefix('!') {
        Some(key) => valid_key(key.trim(), whole).map(|k| Expression::DoesNotExist(k.to_owned())),
        None => valid_key(term, whole).map(|k| Expression::Exists(k.to_owned())),
    }
}

/// Splits `key!=value`, `key==value` or `key=value` into key, value and negation.
fn split_comparison(term: &str) -> Option<(&str, &str, bool)> {
    if let Some((k, v)) = term.split_once("!=") {
        return Some((k.trim(), v.trim(), true));
    }
    let (k, v) = term.split_once("==").or_else(|| term.split_once('='))?;
    Some((k.trim(), v.trim(), false))
}

/// Splits at commas that are not inside parentheses; drops empty terms.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                terms.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms.retain(|t| !t.trim().is_empty());
    terms
}

fn valid_key<'a>(key: &'a str, whole: &str) -> Result<&'a str, ApiError> {
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
    if ok {
        Ok(key)
    } else {
        Err(bad(whole, &format!("invalid key `{key}`")))
    }
}

fn valid_value(value: &str, whole: &str) -> Result<(), ApiError> {
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Ok(())
    } else {
        Err(bad(whole, &format!("invalid value `{value}`")))
    }
}

fn bad(whole: &str, why: &str) -> ApiError {
    ApiError::BadRequest(format!("unable to parse selector `{whole}`: {why}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(labels: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns", "labels": labels}})
    }

    fn selects(selector: &str, labels: Value) -> bool {
        ObjectSelector::parse(Some(selector), None)
            .expect("selector parses")
            .matches(&pod(labels))
    }

    #[test]
    fn equality_operators() {
        let web = json!({"app": "web", "tier": "front"});
        assert!(selects("app=web", web.clone()));
        assert!(selects("app==web", web.clone()));
        assert!(!selects("app!=web", web.clone()));
        assert!(selects("app!=db", web.clone()));
        assert!(selects("app=web,tier=front", web.clone()));
        assert!(!selects("app=web,tier=back", web.clone()));
        assert!(selects("app!=db", json!({})), "!= matches a missing key");
    }

    #[test]
    fn set_and_existence_operators() {
        let web = json!({"app": "web", "tier": "front"});
        assert!(selects("app in (web, db)", web.clone()));
        assert!(!selects("app in (db)", web.clone()));
        assert!(selects("app notin (db,cache),tier", web.clone()));
        assert!(!selects("app notin (web)", web.clone()));
        assert!(selects("tier", web.clone()));
        assert!(!selects("!tier", web.clone()));
        assert!(selects("!zone", web.clone()));
        assert!(selects("app in (web),!zone,tier=front", web));
        assert!(selects("", json!({})), "empty selects everything");
    }

    #[test]
    fn printing_round_trips() {
        let text = "app in (db,web),tier!=back,!zone,ready";
        let parsed = parse_label_selector(text).expect("parses");
        assert_eq!(parse_label_selector(&parsed.to_string()), Ok(parsed));
    }

    #[test]
    fn malformed_selectors_are_bad_requests() {
        for text in ["app in (web", "app within (x)", "=web", "a b=c", "app=we b"] {
            let err = parse_label_selector(text).expect_err(text);
            assert!(matches!(err, ApiError::BadRequest(_)), "{text}: {err:?}");
        }
        assert!(parse_field_selector("metadata.name").is_err());
    }

    #[test]
    fn field_selectors() {
        let p = pod(json!({}));
        let sel = |f: &str| {
            ObjectSelector::parse(None, Some(f))
                .expect("parses")
                .matches(&p)
        };
        assert!(sel("metadata.name=p"));
        assert!(sel("metadata.name==p,metadata.namespace=ns"));
        assert!(!sel("metadata.name!=p"));
        assert!(!sel("metadata.namespace=other"));
        assert!(sel("spec.nodeName="), "a missing field reads as empty");
    }
}
