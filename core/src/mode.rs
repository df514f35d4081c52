//! How far the loop may go.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How far the loop may go: detect only, plan only, or act.
///
/// Ordered from strictest to most permissive, so the stricter of two modes is their `min`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Detect and record; propose nothing.
    Observe,
    /// Everything up to and including the actuator's plan; apply nothing.
    DryRun,
    /// Apply what policy allows.
    Enforce,
}

impl Mode {
    /// The stricter of two modes: a global and a per-policy mode combine this way.
    pub fn stricter(self, other: Mode) -> Mode {
        self.min(other)
    }

    /// The name used in configuration, spans and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Observe => "observe",
            Mode::DryRun => "dry-run",
            Mode::Enforce => "enforce",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "observe" => Ok(Mode::Observe),
            "dry-run" => Ok(Mode::DryRun),
            "enforce" => Ok(Mode::Enforce),
            other => Err(format!(
                "unknown mode {other:?}: expected observe, dry-run or enforce"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stricter_mode_wins() {
        assert_eq!(Mode::Enforce.stricter(Mode::DryRun), Mode::DryRun);
        assert_eq!(Mode::DryRun.stricter(Mode::Observe), Mode::Observe);
        assert_eq!(Mode::Enforce.stricter(Mode::Enforce), Mode::Enforce);
        assert_eq!("dry-run".parse::<Mode>(), Ok(Mode::DryRun));
        assert!("yolo".parse::<Mode>().is_err());
    }
}
