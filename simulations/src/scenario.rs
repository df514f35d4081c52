//! Scenarios: YAML files that say which workloads run, what load they see, and what
//! objective they are held to.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

/// Why a scenario was refused.
#[derive(Debug, Error)]
pub enum ScenarioError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid scenario.
    #[error("{source_name}:{line}:{column}: {message}")]
    Invalid {
        /// The file, or a name for inline text.
        source_name: String,
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// What is wrong.
        message: String,
    },
}

/// A scenario.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Scenario {
    /// Short name, used in reports.
    pub name: String,
    /// What it rehearses.
    #[serde(default)]
    pub description: String,
    /// Simulated time the scenario covers.
    #[serde(deserialize_with = "homeostat_policies::duration::deserialize")]
    pub duration: Duration,
    /// Simulated time between two ticks (signals, HPA sync, brain pass).
    #[serde(
        deserialize_with = "homeostat_policies::duration::deserialize",
        default = "default_step"
    )]
    pub step: Duration,
    /// Seed of the load noise, so a scenario replays identically.
    #[serde(default)]
    pub seed: u64,
    /// The workloads.
    pub workloads: Vec<WorkloadSpec>,
}

/// One Deployment, its pods, its HPA, its load and its objective.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WorkloadSpec {
    /// Namespace (created if missing).
    pub namespace: String,
    /// Deployment name.
    pub name: String,
    /// Replicas at the start.
    pub replicas: u32,
    /// What one pod can do.
    pub pod: PodSpec,
    /// The HPA in front of it.
    pub hpa: HpaSpec,
    /// The request rate it receives.
    pub load: LoadSpec,
    /// The latency objective.
    pub slo: SloSpec,
}

/// What one pod can do.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PodSpec {
    /// Requests per second one pod serves at 100 % of its CPU request.
    pub capacity: f64,
    /// CPU request, cores.
    pub cpu_request: f64,
    /// From creation to ready.
    #[serde(deserialize_with = "homeostat_policies::duration::deserialize")]
    pub startup_delay: Duration,
    /// Service time of one request on an idle pod.
    #[serde(deserialize_with = "homeostat_policies::duration::deserialize")]
    pub base_latency: Duration,
}

/// The HPA (autoscaling/v2, CPU utilisation target).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HpaSpec {
    /// `minReplicas`.
    pub min_replicas: u32,
    /// `maxReplicas`.
    pub max_replicas: u32,
    /// Target average CPU utilisation, percent of request.
    pub target_cpu_utilization: u32,
}

/// The request rate a workload receives.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LoadSpec {
    /// Requests per second outside any event.
    pub base: f64,
    /// Relative noise (0.05 = ±5 %).
    #[serde(default)]
    pub noise: f64,
    /// What happens to it.
    #[serde(default)]
    pub events: Vec<LoadEvent>,
}

/// A change in load.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "kind"
)]
pub enum LoadEvent {
    /// The rate ramps up to `factor` × base, holds, and ramps back down.
    Spike {
        /// When the ramp-up starts.
        #[serde(deserialize_with = "homeostat_policies::duration::deserialize")]
        at: Duration,
        /// Ramp-up time.
        #[serde(
            deserialize_with = "homeostat_policies::duration::deserialize",
            default
        )]
        ramp_up: Duration,
        /// Time at the peak.
        #[serde(deserialize_with = "homeostat_policies::duration::deserialize")]
        hold: Duration,
        /// Ramp-down time.
        #[serde(
            deserialize_with = "homeostat_policies::duration::deserialize",
            default
        )]
        ramp_down: Duration,
        /// Peak multiple of the base rate.
        factor: f64,
    },
}

/// The latency objective.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SloSpec {
    /// p99 latency must stay at or below this.
    #[serde(deserialize_with = "homeostat_policies::duration::deserialize")]
    pub latency_p99: Duration,
}

fn default_step() -> Duration {
    Duration::from_secs(15)
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.into(),
            source,
        })?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// Parses scenario text; `source_name` only names it in errors.
    pub fn parse(source_name: &str, text: &str) -> Result<Self, ScenarioError> {
        let invalid = |line, column, message: String| ScenarioError::Invalid {
            source_name: source_name.into(),
            line,
            column,
            message,
        };
        let s: Scenario = yaml_serde::from_str(text).map_err(|e| {
            let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
            invalid(line, column, e.to_string())
        })?;
        if s.step.is_zero() || s.duration < s.step {
            return Err(invalid(
                0,
                0,
                "step must be positive and no longer than duration".into(),
            ));
        }
        for w in &s.workloads {
            let at = |what: &str| format!("workload {}/{}: {what}", w.namespace, w.name);
            if !(w.pod.capacity > 0.0 && w.pod.cpu_request > 0.0) {
                return Err(invalid(
                    0,
                    0,
                    at("pod capacity and cpuRequest must be positive"),
                ));
            }
            if w.hpa.min_replicas == 0
                || w.hpa.min_replicas > w.hpa.max_replicas
                || w.hpa.target_cpu_utilization == 0
            {
                return Err(invalid(
                    0,
                    0,
                    at("hpa needs 1 <= minReplicas <= maxReplicas and a positive target"),
                ));
            }
            if !(w.load.base >= 0.0 && (0.0..1.0).contains(&w.load.noise)) {
                return Err(invalid(
                    0,
                    0,
                    at("load base must be >= 0 and noise in [0, 1)"),
                ));
            }
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_load_spike_scenario_parses() {
        let s = Scenario::parse(
            "load-spike.yaml",
            include_str!("../scenarios/load-spike.yaml"),
        )
        .expect("valid");
        assert_eq!(s.name, "load-spike");
        assert_eq!(s.workloads.len(), 1);
        assert!(
            matches!(s.workloads[0].load.events[0], LoadEvent::Spike { factor, .. } if factor > 1.0)
        );
    }

    #[test]
    fn errors_say_where() {
        let e = Scenario::parse("x.yaml", "name: x\nduration: 1 fortnight\nworkloads: []\n")
            .expect_err("bad");
        assert!(e.to_string().starts_with("x.yaml:2:"), "{e}");
    }
}
