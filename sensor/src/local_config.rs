//! `--config FILE`: the sensor's local settings (probe switches, sampling, overhead budget),
//! re-read when the file changes. A bad edit is reported with its file, line and column and
//! the last good settings stay in force: a typo must not switch a node's probes off.
//!
//! ```yaml
//! overheadBudget: 0.01        # fraction of one CPU the probes may use
//! probes:
//!   runqueue: { sampleEvery: 4 }
//!   block-io: { enabled: false }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Deserialize;

use crate::probes::{Probe, ProbeConfig, SensorConfig};

/// The file's contents, checked.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LocalConfig {
    /// The probes' CPU budget, a fraction of one CPU; unset = the command line's.
    pub overhead_budget: Option<Budget>,
    /// Per-probe settings, by [`Probe::name`]; a probe not listed keeps the command line's.
    #[serde(default)]
    pub probes: BTreeMap<ProbeName, ProbeSettings>,
}

/// A probe named in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProbeName(pub Probe);

impl<'de> Deserialize<'de> for ProbeName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Probe::from_name(&name).map(ProbeName).ok_or_else(|| {
            let known: Vec<&str> = Probe::ALL.iter().map(|p| p.name()).collect();
            serde::de::Error::custom(format!(
                "unknown probe `{name}`, expected one of {}",
                known.join(", ")
            ))
        })
    }
}

/// One probe's settings; unset fields keep the command line's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProbeSettings {
    /// Whether the probe records at all.
    pub enabled: Option<bool>,
    /// For latency probes, measure 1 event in this many (at least 1).
    pub sample_every: Option<NonZeroU32>,
}

/// A CPU budget: a fraction of one CPU, above 0 and at most 1.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(try_from = "f64")]
pub struct Budget(pub f64);

impl TryFrom<f64> for Budget {
    type Error = String;
    fn try_from(v: f64) -> Result<Self, String> {
        if v > 0.0 && v <= 1.0 {
            Ok(Budget(v))
        } else {
            Err(format!(
                "overheadBudget {v} is not a fraction of one CPU (above 0, at most 1; 0.01 = 1 %)"
            ))
        }
    }
}

impl LocalConfig {
    /// Parses the file's text; `path` only names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        // An empty file is a valid "nothing to override".
        if text.trim().is_empty() {
            return Ok(LocalConfig::default());
        }
        yaml_serde::from_str(text).map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            let message = e.to_string();
            let suffix = format!(" at line {line} column {column}");
            let message = message.replacen(&suffix, "", 1);
            ConfigError::Invalid {
                path: path.into(),
                line,
                column,
                message,
            }
        })
    }

    /// `base` (from the command line) with the file's probe settings laid over it.
    pub fn apply(&self, base: &SensorConfig) -> SensorConfig {
        let mut out = base.clone();
        for (ProbeName(probe), s) in &self.probes {
            let current = base.probe(*probe);
            out.probes.insert(
                *probe,
                ProbeConfig {
                    enabled: s.enabled.unwrap_or(current.enabled),
                    sample_every: s.sample_every.map_or(current.sample_every, NonZeroU32::get),
                },
            );
        }
        out
    }
}

/// Why the file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}", path = path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid YAML for these settings.
    #[error("{path}:{line}:{column}: {message}", path = path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 if unknown).
        line: usize,
        /// 1-based column (0 if unknown).
        column: usize,
        /// What is wrong.
        message: String,
    },
}

/// Re-reads a config file when its modification time changes, keeping the last good one.
pub struct ConfigWatcher {
    path: PathBuf,
    seen: Option<SystemTime>,
    current: LocalConfig,
}

/// What a [`ConfigWatcher::poll`] found.
#[derive(Debug)]
pub enum Reload {
    /// The file is unchanged.
    Unchanged,
    /// The file changed and its new settings are in force.
    Changed,
    /// The file changed but is bad: the previous settings stay in force.
    Rejected(ConfigError),
}

impl fmt::Debug for ConfigWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigWatcher")
            .field("path", &self.path)
            .finish()
    }
}

impl ConfigWatcher {
    /// Reads the file once; at start a bad file is an error, not a silent default.
    pub fn open(path: &Path) -> Result<Self, ConfigError> {
        let seen = modified(path);
        let current = read(path)?;
        Ok(ConfigWatcher {
            path: path.into(),
            seen,
            current,
        })
    }

    /// The settings in force.
    pub fn current(&self) -> &LocalConfig {
        &self.current
    }

    /// Re-reads the file if its modification time changed.
    pub fn poll(&mut self) -> Reload {
        let now = modified(&self.path);
        if now == self.seen {
            return Reload::Unchanged;
        }
        self.seen = now;
        match read(&self.path) {
            Ok(c) if c == self.current => Reload::Unchanged,
            Ok(c) => {
                self.current = c;
                Reload::Changed
            }
            Err(e) => Reload::Rejected(e),
        }
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn read(path: &Path) -> Result<LocalConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    LocalConfig::parse(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<LocalConfig, ConfigError> {
        LocalConfig::parse(Path::new("sensor.yaml"), text)
    }

    #[test]
    fn a_full_file_lays_over_the_command_line() {
        let c = parse(
            "overheadBudget: 0.02\nprobes:\n  runqueue: { sampleEvery: 4 }\n  block-io:\n    enabled: false\n",
        )
        .unwrap();
        assert_eq!(c.overhead_budget, Some(Budget(0.02)));
        let base = SensorConfig::only(&[Probe::RunQueue, Probe::BlockIo, Probe::Exits]);
        let applied = c.apply(&base);
        assert_eq!(
            applied.probe(Probe::RunQueue),
            ProbeConfig {
                enabled: true,
                sample_every: 4
            }
        );
        assert!(!applied.probe(Probe::BlockIo).enabled);
        assert!(applied.probe(Probe::Exits).enabled);
        assert!(!applied.probe(Probe::TcpResets).enabled);
        assert_eq!(parse("").unwrap(), LocalConfig::default());
    }

    #[test]
    fn errors_say_file_line_and_column() {
        let e = parse("probes:\n  runq: { sampleEvery: 4 }\n").unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("sensor.yaml:2:"), "{text}");
        assert!(text.contains("unknown probe `runq`"), "{text}");
        assert!(text.contains("runqueue"), "{text}");

        let e = parse("probes:\n  runqueue:\n    sampleEvery: 0\n").unwrap_err();
        assert!(e.to_string().starts_with("sensor.yaml:3:"), "{e}");

        let e = parse("overheadBudget: 5\n").unwrap_err();
        assert!(e.to_string().contains("not a fraction of one CPU"), "{e}");

        let e = parse("probes:\n  runqueue: { sampleEvry: 2 }\n").unwrap_err();
        assert!(e.to_string().contains("sampleEvry"), "{e}");
    }

    #[test]
    fn a_bad_edit_keeps_the_last_good_settings() {
        let dir = std::env::temp_dir().join(format!("hs-local-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sensor.yaml");
        std::fs::write(&path, "overheadBudget: 0.02\n").unwrap();
        let mut w = ConfigWatcher::open(&path).unwrap();
        assert!(matches!(w.poll(), Reload::Unchanged));

        // Modification times can be coarse: set them explicitly.
        let touch = |secs: u64| {
            let f = std::fs::File::options().write(true).open(&path).unwrap();
            f.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
                .unwrap();
        };
        std::fs::write(&path, "overheadBudget: [\n").unwrap();
        touch(1_000);
        assert!(matches!(w.poll(), Reload::Rejected(_)));
        assert_eq!(w.current().overhead_budget, Some(Budget(0.02)));

        std::fs::write(&path, "overheadBudget: 0.05\n").unwrap();
        touch(2_000);
        assert!(matches!(w.poll(), Reload::Changed));
        assert_eq!(w.current().overhead_budget, Some(Budget(0.05)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
