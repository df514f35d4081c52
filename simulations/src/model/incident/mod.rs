//! Incidents that are not load: a leaking container, a bad rollout, a node whose CPU is taken
//! by something else, a lossy network, homeostat's own sensor running hot. Each has a
//! ground-truth window `[at, end)` and a target (a workload or a node); the physics of each
//! lives in its own module, pure functions of time the cluster model calls.
//!
//! In a scenario, under `incidents:` (times since the start; a window is `at` plus
//! `duration` or `until`, never both, and lasts to the end when neither is given):
//!
//! ```yaml
//! incidents:
//!   - {kind: memoryLeak, workload: shop/cart, at: 30m, until: 3h, rate: 8, limit: 512, baseline: 128}  # MiB/min, MiB, MiB
//!   - {kind: crashLoop, workload: shop/checkout, at: 1h, until: 1h40m}       # until = the undo
//!   - {kind: noisyNeighbour, node: node-b, at: 1h, duration: 40m, cores: 1.8}
//!   - {kind: networkDegradation, workload: shop/checkout, at: 1h, duration: 30m, loss: 0.08}  # or node:
//!   - {kind: sensorOverload, node: node-c, at: 1h, duration: 45m, overhead: 1.7}  # CPUs
//! ```
//!
//! Ground truth: an incident on a workload is an incident of that workload; one on a node
//! is an incident of every workload with a pod on the node while it lasts.

use std::time::Duration;

use serde::Deserialize;

pub mod backoff;
pub mod cpu;
pub mod memory;
pub mod network;

/// What an incident hits: a workload (`namespace/name`) or a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A Deployment, as `namespace/name`.
    Workload(String),
    /// A node by name.
    Node(String),
}

/// One incident of a scenario, as validated: its kind with parameters, target and window.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "RawIncident")]
pub struct IncidentSpec {
    /// What happens.
    pub kind: IncidentKind,
    /// Whom it happens to.
    pub target: Target,
    /// When it starts (time since the scenario's start).
    pub at: Duration,
    /// When it ends (exclusive); `None` lasts to the end of the scenario.
    pub end: Option<Duration>,
}

/// The kinds of incident, with what each needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum IncidentKind {
    /// Every container of the workload leaks memory from its start until OOM-killed.
    MemoryLeak(memory::Leak),
    /// The Deployment is rolled to an image whose containers exit with code 1 shortly after
    /// starting; at the end the rollout is undone.
    CrashLoop,
    /// Something outside the workloads burns `cores` of the node's CPU.
    NoisyNeighbour {
        /// Cores burned.
        cores: f64,
    },
    /// Packets to and from the target's pods are lost with probability `loss`.
    NetworkDegradation {
        /// Packet loss probability.
        loss: f64,
    },
    /// homeostat's node sensor costs `overhead` of a CPU, taken from the node's pods.
    SensorOverload {
        /// Fraction of a CPU.
        overhead: f64,
    },
}

impl IncidentKind {
    /// The kind's name as a scenario writes it, to label ground truth in reports.
    pub fn name(&self) -> &'static str {
        match self {
            IncidentKind::MemoryLeak(_) => "memoryLeak",
            IncidentKind::CrashLoop => "crashLoop",
            IncidentKind::NoisyNeighbour { .. } => "noisyNeighbour",
            IncidentKind::NetworkDegradation { .. } => "networkDegradation",
            IncidentKind::SensorOverload { .. } => "sensorOverload",
        }
    }
}

impl IncidentSpec {
    /// Whether `t` is inside the incident's ground-truth window.
    pub fn covers(&self, t: Duration) -> bool {
        t >= self.at && self.end.is_none_or(|end| t < end)
    }

    /// Whether the incident targets the workload `namespace/name`.
    pub fn targets_workload(&self, namespace: &str, name: &str) -> bool {
        matches!(&self.target, Target::Workload(w)
            if w.split_once('/') == Some((namespace, name)))
    }

    /// Whether the incident targets the node `node`.
    pub fn targets_node(&self, node: &str) -> bool {
        matches!(&self.target, Target::Node(n) if n == node)
    }
}

/// `incidents:` items as written, before the rules between their fields are checked.
#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "kind"
)]
enum RawIncident {
    MemoryLeak {
        workload: String,
        #[serde(deserialize_with = "homeostat_policies::duration::deserialize")]
        at: Duration,
        #[serde(default, deserialize_with = "optional_duration")]
        duration: Option<Duration>,
        #[serde(default, deserialize_with = "optional_duration")]
        until: Option<Duration>,
        /// MiB per minute.
        rate: f64,
        /// MiB.
        limit: f64,
        /// MiB.
        baseline: f64,
    },
    CrashLoop {
        workload: String,
        #[serde(deserialize_with = "homeostat_policies::duration::deserialize")]
        at: Duration,
        #[serde(deserialize_with = "homeostat_policies::duration::deserialize")]
        until: Duration,
    },
    NoisyNeighbour {
        node: String,
        #[serde(deserialize_with = "homeostat_policies::duration::deserialize")]
        at: Duration,
        #[serde(default, deserialize_with = "optional_duration")]
        duration: Option<Duration>,
        #[serde(default, deserialize_with = "optional_duration")]
        until: Option<Duration>,
        cores: f64,
    },
    NetworkDegradation {
        #[serde(default)]
        workload: Option<String>,
        #[serde(default)]
        node: Option<String>,
        #[serde(deserialize_with = "homeostat_policies::duration::deserialize")]
        at: Duration,
        #[serde(default, deserialize_with = "optional_duration")]
        duration: Option<Duration>,
        #[serde(default, deserialize_with = "optional_duration")]
        until: Option<Duration>,
        loss: f64,
    },
    SensorOverload {
        node: String,
        #[serde(deserialize_with = "homeostat_policies::duration::deserialize")]
        at: Duration,
        #[serde(default, deserialize_with = "optional_duration")]
        duration: Option<Duration>,
        #[serde(default, deserialize_with = "optional_duration")]
        until: Option<Duration>,
        overhead: f64,
    },
}

fn optional_duration<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    homeostat_policies::duration::deserialize(deserializer).map(Some)
}

/// The end of a window given as `duration` or `until` (never both); `None` for open-ended.
fn end_of(
    at: Duration,
    duration: Option<Duration>,
    until: Option<Duration>,
) -> Result<Option<Duration>, String> {
    match (duration, until) {
        (Some(_), Some(_)) => Err("give `duration` or `until`, not both".into()),
        (Some(d), None) if d.is_zero() => Err("`duration` must be positive".into()),
        (Some(d), None) => Ok(at.checked_add(d)),
        (None, Some(u)) if u <= at => Err("`until` must come after `at`".into()),
        (None, u) => Ok(u),
    }
}

fn workload_target(w: String) -> Result<Target, String> {
    match w.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok(Target::Workload(w))
        }
        _ => Err(format!("workload `{w}` must be `namespace/name`")),
    }
}

fn positive(what: &str, v: f64) -> Result<f64, String> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("{what} must be a positive number"))
    }
}

impl TryFrom<RawIncident> for IncidentSpec {
    type Error = String;

    fn try_from(raw: RawIncident) -> Result<Self, String> {
        let (kind, target, at, end) = match raw {
            RawIncident::MemoryLeak {
                workload,
                at,
                duration,
                until,
                rate,
                limit,
                baseline,
            } => {
                let leak = memory::Leak {
                    rate_mib_per_min: positive("memoryLeak rate (MiB/min)", rate)?,
                    limit_mib: positive("memoryLeak limit (MiB)", limit)?,
                    baseline_mib: positive("memoryLeak baseline (MiB)", baseline)?,
                };
                if leak.baseline_mib >= leak.limit_mib {
                    return Err("memoryLeak baseline must be below its limit".into());
                }
                (
                    IncidentKind::MemoryLeak(leak),
                    workload_target(workload)?,
                    at,
                    end_of(at, duration, until)?,
                )
            }
            RawIncident::CrashLoop {
                workload,
                at,
                until,
            } => (
                IncidentKind::CrashLoop,
                workload_target(workload)?,
                at,
                end_of(at, None, Some(until))?,
            ),
            RawIncident::NoisyNeighbour {
                node,
                at,
                duration,
                until,
                cores,
            } => (
                IncidentKind::NoisyNeighbour {
                    cores: positive("noisyNeighbour cores", cores)?,
                },
                Target::Node(node),
                at,
                end_of(at, duration, until)?,
            ),
            RawIncident::NetworkDegradation {
                workload,
                node,
                at,
                duration,
                until,
                loss,
            } => {
                if !(loss > 0.0 && loss < 1.0) {
                    return Err("networkDegradation loss must be in (0, 1)".into());
                }
                let target = match (workload, node) {
                    (Some(w), None) => workload_target(w)?,
                    (None, Some(n)) => Target::Node(n),
                    _ => {
                        return Err(
                            "networkDegradation needs a `workload` or a `node`, not both".into(),
                        );
                    }
                };
                (
                    IncidentKind::NetworkDegradation { loss },
                    target,
                    at,
                    end_of(at, duration, until)?,
                )
            }
            RawIncident::SensorOverload {
                node,
                at,
                duration,
                until,
                overhead,
            } => (
                IncidentKind::SensorOverload {
                    overhead: positive("sensorOverload overhead (fraction of a CPU)", overhead)?,
                },
                Target::Node(node),
                at,
                end_of(at, duration, until)?,
            ),
        };
        Ok(IncidentSpec {
            kind,
            target,
            at,
            end,
        })
    }
}
