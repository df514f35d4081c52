//! The brain's configuration file (YAML).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use homeostat_core::Mode;
use serde::Deserialize;
use thiserror::Error;

/// Why a configuration file was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid configuration; the message carries line and column.
    #[error("{path}:{line}:{column}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// What is wrong.
        message: String,
    },
}

/// The brain's configuration.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct BrainConfig {
    /// The global mode: observe, dry-run (default) or enforce.
    pub mode: Mode,
    /// OTLP receivers.
    pub otlp: OtlpConfig,
    /// The HTTP API.
    pub api: ApiConfig,
    /// The decision journal.
    pub journal: JournalConfig,
    /// Policy files or directories.
    pub policies: Vec<PathBuf>,
    /// How policies are reloaded while the brain runs.
    pub policy_reload: PolicyReloadConfig,
    /// Where decision spans go.
    pub tracing: TracingConfig,
    /// How often the decision engine runs; also the aggregation step.
    #[serde(deserialize_with = "homeostat_policies::duration::deserialize")]
    pub evaluation_interval: Duration,
    /// Leader election among several replicas; absent, this brain acts alone.
    pub leader_election: Option<LeaderElectionConfig>,
    /// How long an applied action is given to help before it is judged (default 5m).
    #[serde(deserialize_with = "homeostat_policies::duration::deserialize")]
    pub verify_window: Duration,
    /// Optional detectors beyond the defaults.
    pub detection: DetectionConfig,
}

/// Optional detectors. Each is off unless configured, because on the simulation lab's library
/// it found no incident sooner and made actions the defaults do not (`docs/detection.md`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct DetectionConfig {
    /// A CUSUM on every watched series, for a lasting level shift too small for any single
    /// value to stand out.
    pub change_point: Option<ChangePointConfig>,
}

/// The CUSUM's one setting.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChangePointConfig {
    /// Half the shift, in robust spreads, that it should find fastest (0.5: a shift of one
    /// spread is found in about ten steps); in (0, 5].
    pub allowance: f64,
}

/// Leader election on a Lease: of the replicas sharing it, only the holder acts.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct LeaderElectionConfig {
    /// Namespace of the Lease (default `homeostat-system`).
    pub namespace: String,
    /// Name of the Lease (default `homeostat-brain`).
    pub lease_name: String,
    /// This replica's identity; default the `POD_NAME` environment variable, else the host
    /// name and process id.
    pub identity: Option<String>,
    /// How long an unrenewed Lease keeps its holder (default 8s): a follower takes over
    /// within about this plus `retryPeriod` of the leader's death.
    #[serde(deserialize_with = "homeostat_policies::duration::deserialize")]
    pub lease_duration: Duration,
    /// How long the leader acts without a renewal (default 5s, less than `leaseDuration`).
    #[serde(deserialize_with = "homeostat_policies::duration::deserialize")]
    pub renew_deadline: Duration,
    /// How often to renew or try (default 2s).
    #[serde(deserialize_with = "homeostat_policies::duration::deserialize")]
    pub retry_period: Duration,
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        LeaderElectionConfig {
            namespace: "homeostat-system".into(),
            lease_name: "homeostat-brain".into(),
            identity: None,
            lease_duration: Duration::from_secs(8),
            renew_deadline: Duration::from_secs(5),
            retry_period: Duration::from_secs(2),
        }
    }
}

impl Default for BrainConfig {
    fn default() -> Self {
        BrainConfig {
            mode: Mode::DryRun,
            otlp: OtlpConfig::default(),
            api: ApiConfig::default(),
            journal: JournalConfig::default(),
            policies: Vec::new(),
            policy_reload: PolicyReloadConfig::default(),
            tracing: TracingConfig::default(),
            evaluation_interval: Duration::from_secs(15),
            leader_election: None,
            verify_window: Duration::from_secs(5 * 60),
            detection: DetectionConfig::default(),
        }
    }
}

/// Reloading policies while the brain runs: a valid change takes effect on the next pass,
/// an invalid one is refused and the last good policies stay in force.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct PolicyReloadConfig {
    /// How often the policy files are read again and compared by content (default 5s; 0s
    /// never). Polling, not file-system notifications: a ConfigMap volume is updated by
    /// swapping a `..data` symlink, which a watch on the file itself never sees.
    #[serde(deserialize_with = "homeostat_policies::duration::deserialize")]
    pub interval: Duration,
    /// Whether to watch `Policy` objects (`policies.homeostat.dev`) in the cluster (default
    /// true); they are added after the files' policies, whose names they may not reuse.
    pub objects: bool,
}

impl Default for PolicyReloadConfig {
    fn default() -> Self {
        PolicyReloadConfig {
            interval: Duration::from_secs(5),
            objects: true,
        }
    }
}

/// OTLP receivers' addresses.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct OtlpConfig {
    /// OTLP/gRPC (default 0.0.0.0:4317).
    pub grpc_listen: SocketAddr,
    /// OTLP/HTTP (default 0.0.0.0:4318).
    pub http_listen: SocketAddr,
}

impl Default for OtlpConfig {
    fn default() -> Self {
        OtlpConfig {
            grpc_listen: SocketAddr::from(([0, 0, 0, 0], 4317)),
            http_listen: SocketAddr::from(([0, 0, 0, 0], 4318)),
        }
    }
}

/// The HTTP API's address.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct ApiConfig {
    /// Default 0.0.0.0:8080.
    pub listen: SocketAddr,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
        }
    }
}

/// Where the journal lives.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct JournalConfig {
    /// A directory sled owns (default `./homeostat-journal`).
    pub path: PathBuf,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            path: PathBuf::from("homeostat-journal"),
        }
    }
}

/// Span export.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct TracingConfig {
    /// OTLP/gRPC endpoint for decision spans, e.g. `http://collector:4317`; none = no spans.
    pub otlp_endpoint: Option<String>,
}

impl BrainConfig {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Parses configuration text; `path` only names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let config: BrainConfig = yaml_serde::from_str(text).map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            ConfigError::Invalid {
                path: path.into(),
                line,
                column,
                message: e.to_string(),
            }
        })?;
        if config.evaluation_interval < Duration::from_secs(1) {
            return Err(ConfigError::Invalid {
                path: path.into(),
                line: line_of(text, "evaluationInterval"),
                column: 1,
                message: "evaluationInterval must be at least 1s".into(),
            });
        }
        if let Some(cp) = config.detection.change_point
            && !(cp.allowance > 0.0 && cp.allowance <= 5.0)
        {
            return Err(ConfigError::Invalid {
                path: path.into(),
                line: line_of(text, "allowance"),
                column: 1,
                message: format!(
                    "detection.changePoint.allowance must be in (0, 5] spreads, not {}",
                    cp.allowance
                ),
            });
        }
        Ok(config)
    }
}

fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| l.trim_start().starts_with(&format!("{key}:")))
        .map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_a_full_file() {
        let c = BrainConfig::parse(Path::new("b.yaml"), "{}").expect("empty is fine");
        assert_eq!(c, BrainConfig::default());
        let c = BrainConfig::parse(
            Path::new("b.yaml"),
            "mode: enforce\notlp:\n  grpcListen: 127.0.0.1:14317\npolicies: [/etc/p]\npolicyReload:\n  interval: 0s\n  objects: false\nevaluationInterval: 30s\ntracing:\n  otlpEndpoint: http://c:4317\n",
        )
        .expect("valid");
        assert_eq!(c.mode, Mode::Enforce);
        assert_eq!(c.otlp.grpc_listen.port(), 14317);
        assert_eq!(c.evaluation_interval, Duration::from_secs(30));
        assert_eq!(c.policy_reload.interval, Duration::ZERO);
        assert!(!c.policy_reload.objects);
        assert_eq!(c.tracing.otlp_endpoint.as_deref(), Some("http://c:4317"));
    }

    #[test]
    fn errors_name_file_line_and_problem() {
        let e = BrainConfig::parse(
            Path::new("b.yaml"),
            "mode: enforce\nevaluationInterval: soon\n",
        )
        .expect_err("bad");
        let msg = e.to_string();
        assert!(msg.starts_with("b.yaml:2:"), "{msg}");
        assert!(msg.contains("invalid duration \"soon\""), "{msg}");
        let msg = BrainConfig::parse(Path::new("b.yaml"), "mode: yolo\n")
            .expect_err("bad")
            .to_string();
        assert!(
            msg.starts_with("b.yaml:1:") && msg.contains("yolo"),
            "{msg}"
        );
        let msg = BrainConfig::parse(Path::new("b.yaml"), "mdoe: enforce\n")
            .expect_err("bad")
            .to_string();
        assert!(msg.contains("unknown field `mdoe`"), "{msg}");
        let msg = BrainConfig::parse(Path::new("b.yaml"), "evaluationInterval: 10ms\n")
            .expect_err("bad")
            .to_string();
        assert_eq!(msg, "b.yaml:1:1: evaluationInterval must be at least 1s");
        let msg = BrainConfig::parse(
            Path::new("b.yaml"),
            "mode: observe\ndetection:\n  changePoint:\n    allowance: 0\n",
        )
        .expect_err("bad")
        .to_string();
        assert_eq!(
            msg,
            "b.yaml:4:1: detection.changePoint.allowance must be in (0, 5] spreads, not 0"
        );
        let msg = BrainConfig::parse(Path::new("b.yaml"), "detection:\n  changePoint: {}\n")
            .expect_err("bad")
            .to_string();
        assert!(msg.contains("missing field `allowance`"), "{msg}");
    }

    #[test]
    fn change_points_are_off_unless_configured() {
        let c = BrainConfig::parse(Path::new("b.yaml"), "{}").expect("empty is fine");
        assert_eq!(c.detection.change_point, None);
        let c = BrainConfig::parse(
            Path::new("b.yaml"),
            "detection:\n  changePoint:\n    allowance: 0.5\n",
        )
        .expect("valid");
        assert_eq!(
            c.detection.change_point,
            Some(ChangePointConfig { allowance: 0.5 })
        );
    }
}
