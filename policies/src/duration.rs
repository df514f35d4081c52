//! Durations as policy authors write them (`5m`, `90s`) and as reasons print them (`3m10s`).

use std::fmt;
use std::time::Duration;

use serde::de::{Deserialize, Deserializer};

use crate::scalar;
use crate::schema::inline_schema;

/// A duration written in humantime notation; parsing happens during deserialization so a bad
/// value is reported at its line and column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// Parses `5m`, `1h 30m`, `90s`; the error reads well after a `field: ` prefix.
    pub fn parse(text: &str) -> Result<Self, String> {
        humantime::parse_duration(text.trim())
            .map(HumanDuration)
            .map_err(|e| format!("invalid duration {text:?}: {}", describe(&e)))
    }

    /// The duration itself.
    pub fn get(self) -> Duration {
        self.0
    }
}

/// humantime's messages, shortened where they list every unit it knows.
fn describe(e: &humantime::DurationError) -> String {
    match e {
        humantime::DurationError::UnknownUnit { unit, .. } if !unit.is_empty() => {
            format!("unknown time unit {unit:?}")
        }
        other => other.to_string(),
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_compact(self.0))
    }
}

/// For `#[serde(deserialize_with = "...")]` on plain `Duration` fields of other documents
/// (the brain's configuration, scenarios), with the same notation and located errors.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    HumanDuration::deserialize(deserializer).map(HumanDuration::get)
}

// A string: humantime's grammar (`5m`, `1h 30m`, `90s`) is checked by the loader, which
// says what is wrong with a value, not by a pattern.
inline_schema!(
    HumanDuration,
    "HumanDuration",
    schemars::json_schema!({"type": "string", "minLength": 1})
);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        scalar::string(deserializer, "a duration such as 5m", HumanDuration::parse)
    }
}

/// Formats a duration the way people write it in a policy (`3m10s`, `2m`, `1h5m`, `250ms`), so
/// reasons can be compared with the document at a glance. Whole seconds only above a second.
pub fn format_compact(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_formatting() {
        assert_eq!(format_compact(Duration::from_secs(190)), "3m10s");
        assert_eq!(format_compact(Duration::from_secs(120)), "2m");
        assert_eq!(format_compact(Duration::from_secs(3_900)), "1h5m");
        assert_eq!(format_compact(Duration::from_millis(250)), "250ms");
        assert_eq!(format_compact(Duration::ZERO), "0s");
        assert_eq!(format_compact(Duration::from_secs(90_061)), "1d1h1m1s");
    }

    #[test]
    fn parse_reports_unknown_units_briefly() {
        assert_eq!(
            HumanDuration::parse("5m"),
            Ok(HumanDuration(Duration::from_secs(300)))
        );
        assert_eq!(
            HumanDuration::parse("5 parsecs"),
            Err(r#"invalid duration "5 parsecs": unknown time unit "parsecs""#.to_owned())
        );
    }
}
