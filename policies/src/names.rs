//! Kubernetes object names, checked while parsing so a typo (`Checkout`) is refused at its line
//! instead of silently matching nothing.

use std::fmt;

use serde::de::{Deserialize, Deserializer};

use crate::scalar;
use crate::schema::inline_schema;

/// A name that is a valid DNS-1123 subdomain, the rule Kubernetes applies to object names:
/// policy names, namespaces and workload names alike.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectName(String);

/// The longest name [`ObjectName::new`] accepts.
const MAX_LEN: usize = 253;

/// The check of [`ObjectName::new`] as a regular expression, for the CRD's schema.
const PATTERN: &str = "^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$";

impl ObjectName {
    /// Checks `name` against DNS-1123 (lowercase alphanumerics, `-` and `.`, at most 253 bytes,
    /// starting and ending alphanumeric).
    pub fn new(name: &str) -> Result<Self, String> {
        let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        let ok = !name.is_empty()
            && name.len() <= MAX_LEN
            && name.chars().all(|c| alnum(c) || c == '-' || c == '.')
            && name.starts_with(alnum)
            && name.ends_with(alnum);
        if ok {
            Ok(ObjectName(name.to_owned()))
        } else {
            Err(format!(
                "invalid name {name:?}: must be a DNS-1123 name (lowercase letters, digits, '-' \
                 and '.', starting and ending with a letter or digit, at most 253 characters)"
            ))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

inline_schema!(
    ObjectName,
    "ObjectName",
    schemars::json_schema!({
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_LEN,
        "pattern": PATTERN,
    })
);

impl<'de> Deserialize<'de> for ObjectName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        scalar::string(deserializer, "a Kubernetes object name", ObjectName::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_1123_names() {
        for good in ["web", "web-saturation", "a", "shop.v2", "0abc"] {
            assert!(ObjectName::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Web",
            "-web",
            "web-",
            "web_x",
            "web saturation",
            &"a".repeat(254),
        ] {
            assert!(ObjectName::new(bad).is_err(), "{bad}");
        }
    }
}
