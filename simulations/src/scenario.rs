//! Scenarios: YAML files that say which workloads run, what load they see, and what
//! objective they are held to.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::apiserver::FaultConfig;
use crate::model::incident::{IncidentKind, IncidentSpec, Target};
use crate::model::load::{TraceError, TraceSeries};
use crate::signal_faults::SignalFaultConfig;

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
    /// A workload's load trace could not be read; the trace error names its file and line.
    #[error("{source} (load trace of workload {workload} in {source_name})")]
    Trace {
        /// The scenario file, or a name for inline text.
        source_name: String,
        /// `namespace/name` of the workload.
        workload: String,
        /// What is wrong with the trace.
        #[source]
        source: TraceError,
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
    /// Faults injected into the API server and the pods' signals; none when left out.
    #[serde(default)]
    pub faults: Option<FaultsSpec>,
    /// The cluster's nodes; one node big enough for every workload when left out.
    #[serde(default)]
    pub nodes: Vec<NodeSpec>,
    /// Incidents other than load: each is ground truth for the workloads it affects.
    #[serde(default)]
    pub incidents: Vec<IncidentSpec>,
}

/// A node of the simulated cluster.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeSpec {
    /// Node name.
    pub name: String,
    /// CPU cores, capacity and allocatable alike.
    pub cpu: f64,
    /// Labels, on top of `kubernetes.io/hostname`.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// Faults a scenario injects, at rates it sets, so it rehearses how homeostat copes with a
/// flaky API server and bad telemetry rather than only with load.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FaultsSpec {
    /// Faults of the simulated API server (only the brain's requests go through it).
    #[serde(default)]
    pub api: Option<FaultConfig>,
    /// Faults of the pods' OTLP signals.
    #[serde(default)]
    pub signals: Option<SignalFaultConfig>,
    /// When the faults start (time since the scenario's start); from the start when left out.
    #[serde(default, deserialize_with = "optional_duration")]
    pub from: Option<Duration>,
    /// When they stop; at the end when left out.
    #[serde(default, deserialize_with = "optional_duration")]
    pub until: Option<Duration>,
}

impl FaultsSpec {
    /// Whether the faults are in effect at `t` since the start: the window is `[from, until)`,
    /// so a tick at `until` is already clean.
    pub fn active_at(&self, t: Duration) -> bool {
        self.from.is_none_or(|from| t >= from) && self.until.is_none_or(|until| t < until)
    }
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

/// The request rate a workload receives: normal behaviour (a `base` rate shaped by daily and
/// weekly cycles, or a replayed `trace`), times the `events` that are incidents, times noise.
///
/// Deserialized through `RawLoadSpec` so that the rules tying fields together (a base rate
/// or a trace, never both) are checked while the parser still knows where `load:` is.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(try_from = "RawLoadSpec")]
pub struct LoadSpec {
    /// Requests per second outside any event: the daily mean under `diurnal`, the weekday
    /// level under `weekly`; 0 when a `trace` gives the rate instead.
    pub base: f64,
    /// Relative noise (0.05 = ±5 %).
    pub noise: f64,
    /// A smooth daily cycle around `base`; normal behaviour, never an incident.
    pub diurnal: Option<DiurnalSpec>,
    /// Weekends scaled against weekdays; normal behaviour, never an incident.
    pub weekly: Option<WeeklySpec>,
    /// A recorded time series replayed as the rate, in place of `base` and the cycles.
    pub trace: Option<TraceSpec>,
    /// What happens to it: each event is an incident, the ground truth detection is judged
    /// against. Their factors multiply, with each other and with the normal rate.
    pub events: Vec<LoadEvent>,
}

/// `load:` as written, before the rules between its fields are checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawLoadSpec {
    base: Option<f64>,
    #[serde(default)]
    noise: f64,
    diurnal: Option<DiurnalSpec>,
    weekly: Option<WeeklySpec>,
    trace: Option<TraceSpec>,
    #[serde(default)]
    events: Vec<LoadEvent>,
}

impl TryFrom<RawLoadSpec> for LoadSpec {
    type Error = String;

    fn try_from(raw: RawLoadSpec) -> Result<Self, String> {
        let base = match (&raw.trace, raw.base) {
            (None, None) => return Err("load needs a base rate (requests/s) or a trace".into()),
            (Some(_), Some(_)) => {
                return Err(
                    "load takes a base rate or a trace, not both: the trace gives the rate".into(),
                );
            }
            (Some(_), None) => 0.0,
            (None, Some(base)) => base,
        };
        let spec = LoadSpec {
            base,
            noise: raw.noise,
            diurnal: raw.diurnal,
            weekly: raw.weekly,
            trace: raw.trace,
            events: raw.events,
        };
        spec.check()?;
        Ok(spec)
    }
}

impl LoadSpec {
    /// The rules a parsed `load:` must follow, each refused with a message naming the field.
    fn check(&self) -> Result<(), String> {
        if !(self.base.is_finite() && self.base >= 0.0) {
            return Err("load base must be a number >= 0".into());
        }
        if !(0.0..1.0).contains(&self.noise) {
            return Err("load noise must be in [0, 1)".into());
        }
        if let Some(d) = &self.diurnal {
            if !(0.0..=1.0).contains(&d.amplitude) {
                return Err("diurnal amplitude must be in [0, 1]".into());
            }
            if d.peak_at >= DAY {
                return Err("diurnal peakAt is a time of day: it must be below 24h".into());
            }
        }
        if let Some(w) = &self.weekly {
            if !(w.weekend_factor.is_finite() && w.weekend_factor >= 0.0) {
                return Err("weekly weekendFactor must be a number >= 0".into());
            }
            if w.transition > DAY {
                return Err("weekly transition must be at most 24h".into());
            }
        }
        if let Some(t) = &self.trace {
            if self.diurnal.is_some() || self.weekly.is_some() {
                return Err(
                    "a trace brings its own daily and weekly cycles: drop diurnal and weekly"
                        .into(),
                );
            }
            if !(t.peak.is_finite() && t.peak > 0.0) {
                return Err("trace peak must be a positive number of requests/s".into());
            }
        }
        for e in &self.events {
            let factor = match *e {
                LoadEvent::Spike { factor, .. } | LoadEvent::Step { factor, .. } => factor,
                LoadEvent::Ramp { factor, over, .. } => {
                    if over.is_zero() {
                        return Err(
                            "a ramp needs a positive `over` (use a step for a sudden change)"
                                .into(),
                        );
                    }
                    factor
                }
            };
            if !(factor.is_finite() && factor >= 0.0) {
                return Err("event factor must be a number >= 0".into());
            }
        }
        Ok(())
    }
}

/// One day, the period of [`DiurnalSpec`] and the unit of [`WeeklySpec`].
const DAY: Duration = Duration::from_secs(86_400);

/// A smooth daily cycle: `base × (1 + amplitude × cos(2π (time of day − peakAt) / 24h))`, so
/// the daily mean stays `base` and the trough falls 12 hours after the peak. The scenario
/// starts at midnight.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DiurnalSpec {
    /// Relative swing, in [0, 1]: 0.6 gives 1.6 × base at the peak and 0.4 × at the trough.
    pub amplitude: f64,
    /// Time of day of the peak (`14h` is 14:00).
    #[serde(deserialize_with = "homeostat_policies::duration::deserialize")]
    pub peak_at: Duration,
}

/// Weekends differ from weekdays: Saturday and Sunday are scaled by `weekendFactor`. Real
/// traffic does not switch at the stroke of midnight (a doubling within one step would be an
/// incident), so the change is spread over `transition`, centred on the midnight between a
/// weekday and a weekend day.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct WeeklySpec {
    /// Weekend rate as a multiple of the weekday rate (0.5 = half the traffic).
    pub weekend_factor: f64,
    /// The day the scenario starts on, at midnight.
    #[serde(default)]
    pub start_day: Weekday,
    /// How long the change between weekday and weekend takes (0 for a sudden switch, at most
    /// 24h); default 4h, from 22:00 to 02:00.
    #[serde(
        default = "default_transition",
        deserialize_with = "homeostat_policies::duration::deserialize"
    )]
    pub transition: Duration,
}

fn default_transition() -> Duration {
    Duration::from_secs(4 * 3600)
}

/// A day of the week, so a scenario can say where in the week it starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    /// Monday, the default start.
    #[default]
    Monday,
    /// Tuesday.
    Tuesday,
    /// Wednesday.
    Wednesday,
    /// Thursday.
    Thursday,
    /// Friday.
    Friday,
    /// Saturday, weekend.
    Saturday,
    /// Sunday, weekend.
    Sunday,
}

impl Weekday {
    const ALL: [Weekday; 7] = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
        Weekday::Saturday,
        Weekday::Sunday,
    ];

    /// The day `days` after this one (before it, when negative), so day `n` of a scenario is
    /// `start_day.plus_days(n)`.
    pub fn plus_days(self, days: i64) -> Weekday {
        let from = Weekday::ALL.iter().position(|d| *d == self).unwrap_or(0) as i64;
        Weekday::ALL[(from + days).rem_euclid(7) as usize]
    }

    /// Whether the day gets the weekend factor.
    pub fn is_weekend(self) -> bool {
        matches!(self, Weekday::Saturday | Weekday::Sunday)
    }
}

/// A recorded request-rate series replayed as a workload's load (real traffic has shapes no
/// formula has). Timestamps are shifted so the first is t = 0, values are scaled so the
/// series' maximum is `peak`, and the rate between two rows is interpolated linearly.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TraceSpec {
    /// CSV file with a header; the first column is the timestamp (RFC 3339,
    /// `YYYY-MM-DD HH:MM:SS` as NAB writes it, or seconds). A relative path is resolved
    /// against the scenario file's directory by [`Scenario::load`], and against the current
    /// directory by [`Scenario::parse`].
    pub file: PathBuf,
    /// Requests per second the series' maximum maps to.
    pub peak: f64,
    /// Name of the value column in the header.
    #[serde(default = "default_trace_column")]
    pub column: String,
    /// The series read from `file`, filled in when the scenario is loaded; empty (a silent
    /// workload) until then.
    #[serde(skip)]
    pub series: TraceSeries,
}

fn default_trace_column() -> String {
    "value".into()
}

/// `hold: 2h` for fields where leaving it out means "until the end of the scenario".
fn optional_duration<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    homeostat_policies::duration::deserialize(deserializer).map(Some)
}

/// A change in load: an incident. [`LoadEvent::window`] is when it counts as one.
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
    /// The rate jumps to `factor` × its level at `at` and stays there (a launch, a client
    /// moved onto this service), for `hold` or to the end of the scenario.
    Step {
        /// When the level changes.
        #[serde(deserialize_with = "homeostat_policies::duration::deserialize")]
        at: Duration,
        /// How long the new level lasts; to the end of the scenario when left out.
        #[serde(default, deserialize_with = "optional_duration")]
        hold: Option<Duration>,
        /// Multiple of the level (below 1 for a drop).
        factor: f64,
    },
    /// The rate rises (or falls) linearly to `factor` × its level over `over` (slow organic
    /// growth, a leak of retries), then stays there for `hold` or to the end of the scenario.
    Ramp {
        /// When the rise starts.
        #[serde(deserialize_with = "homeostat_policies::duration::deserialize")]
        at: Duration,
        /// How long the rise takes.
        #[serde(deserialize_with = "homeostat_policies::duration::deserialize")]
        over: Duration,
        /// How long the new level lasts after the rise; to the end of the scenario when left
        /// out.
        #[serde(default, deserialize_with = "optional_duration")]
        hold: Option<Duration>,
        /// Multiple of the level at the end of the rise.
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

/// The `(line, column)` of item `index` of the top-level list `key` in `text` (1-based),
/// or of the key itself when the list is written inline; `(0, 0)` when not found. Rules
/// that tie a list item to the rest of the scenario are checked after parsing, and this
/// points them at the item all the same.
fn locate_item(text: &str, key: &str, index: usize) -> (usize, usize) {
    let mut lines = text.lines().enumerate();
    let Some((key_line, rest)) = lines.by_ref().find_map(|(n, l)| {
        l.strip_prefix(key)
            .and_then(|r| r.strip_prefix(':'))
            .map(|r| (n, r))
    }) else {
        return (0, 0);
    };
    if !rest.trim().is_empty() && !rest.trim_start().starts_with('#') {
        return (key_line + 1, 1);
    }
    let mut seen = 0;
    for (n, l) in lines {
        let trimmed = l.trim_start();
        if !l.is_empty() && !l.starts_with(' ') && !l.starts_with('-') && !trimmed.starts_with('#')
        {
            break;
        }
        if trimmed.starts_with("- ") || trimmed == "-" {
            if seen == index {
                return (n + 1, l.len() - trimmed.len() + 1);
            }
            seen += 1;
        }
    }
    (key_line + 1, 1)
}

impl Scenario {
    /// The nodes to create: the scenario's, or one node with room for every workload at its
    /// HPA's maximum plus a rollout's surge, twice over, so CPU contention never shows on it
    /// and scenarios written before nodes existed run as they did.
    pub fn node_specs(&self) -> Vec<NodeSpec> {
        if !self.nodes.is_empty() {
            return self.nodes.clone();
        }
        let wanted: f64 = self
            .workloads
            .iter()
            .map(|w| {
                let max = w.hpa.max_replicas.max(w.replicas);
                f64::from(max + max.div_ceil(4)) * w.pod.cpu_request
            })
            .sum();
        vec![NodeSpec {
            name: crate::cluster::DEFAULT_NODE.into(),
            cpu: (2.0 * wanted).ceil().max(8.0),
            labels: Default::default(),
        }]
    }

    /// Checks `nodes:` and `incidents:` against the rest of the scenario.
    fn check_nodes_and_incidents(&self, text: &str) -> Result<(), (usize, usize, String)> {
        for (i, n) in self.nodes.iter().enumerate() {
            let at = |m: String| {
                let (l, c) = locate_item(text, "nodes", i);
                (l, c, format!("nodes[{i}] ({}): {m}", n.name))
            };
            if n.name.is_empty() {
                return Err(at("a node needs a name".into()));
            }
            if !(n.cpu.is_finite() && n.cpu > 0.0) {
                return Err(at("cpu must be a positive number of cores".into()));
            }
            if self.nodes[..i].iter().any(|m| m.name == n.name) {
                return Err(at("node names must be unique".into()));
            }
        }
        let nodes = self.node_specs();
        for (i, inc) in self.incidents.iter().enumerate() {
            let at = |m: String| {
                let (l, c) = locate_item(text, "incidents", i);
                (l, c, format!("incidents[{i}] ({}): {m}", inc.kind.name()))
            };
            match &inc.target {
                Target::Workload(w) => {
                    if !self
                        .workloads
                        .iter()
                        .any(|s| inc.targets_workload(&s.namespace, &s.name))
                    {
                        return Err(at(format!("no workload {w} in this scenario")));
                    }
                }
                Target::Node(n) => {
                    if !nodes.iter().any(|m| &m.name == n) {
                        return Err(at(format!(
                            "no node {n} (nodes: {})",
                            nodes
                                .iter()
                                .map(|m| m.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )));
                    }
                }
            }
            if inc.at >= self.duration {
                return Err(at("starts after the scenario ends".into()));
            }
            if let IncidentKind::NoisyNeighbour { cores } = inc.kind
                && let Target::Node(n) = &inc.target
                && nodes.iter().any(|m| &m.name == n && cores > m.cpu)
            {
                return Err(at(format!("burns {cores} cores but node {n} has fewer")));
            }
            let workload_incident = |kind: &IncidentKind| {
                matches!(kind, IncidentKind::MemoryLeak(_) | IncidentKind::CrashLoop)
            };
            if workload_incident(&inc.kind)
                && self.incidents[..i].iter().any(|o| {
                    std::mem::discriminant(&o.kind) == std::mem::discriminant(&inc.kind)
                        && o.target == inc.target
                })
            {
                return Err(at(format!("one {} per workload", inc.kind.name())));
            }
        }
        Ok(())
    }

    /// Reads and validates a scenario file; a trace file is resolved against the scenario
    /// file's directory, so a scenario and its traces move together.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.into(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new(""));
        Self::parse_in(&path.display().to_string(), &text, dir)
    }

    /// Parses scenario text; `source_name` only names it in errors. Having no file, it
    /// resolves a relative trace path against the current directory.
    pub fn parse(source_name: &str, text: &str) -> Result<Self, ScenarioError> {
        Self::parse_in(source_name, text, Path::new(""))
    }

    /// Parses scenario text as if it were a file in `dir`: relative trace paths are resolved
    /// against `dir` (for text that comes from elsewhere than its file, e.g. `include_str!`).
    pub fn parse_in(source_name: &str, text: &str, dir: &Path) -> Result<Self, ScenarioError> {
        let invalid = |line, column, message: String| ScenarioError::Invalid {
            source_name: source_name.into(),
            line,
            column,
            message,
        };
        let mut s: Scenario = yaml_serde::from_str(text).map_err(|e| {
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
        let duration = s.duration;
        if let Err((line, column, message)) = s.check_nodes_and_incidents(text) {
            return Err(invalid(line, column, message));
        }
        if let Some(f) = &s.faults
            && let (Some(from), Some(until)) = (f.from, f.until)
            && from >= until
        {
            return Err(invalid(
                0,
                0,
                "faults: `from` must come before `until`".into(),
            ));
        }
        for w in &mut s.workloads {
            let name = format!("{}/{}", w.namespace, w.name);
            let at = |what: &str| format!("workload {name}: {what}");
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
            if let Some(trace) = &mut w.load.trace {
                trace.series =
                    TraceSeries::read(&dir.join(&trace.file), &trace.column).map_err(|source| {
                        ScenarioError::Trace {
                            source_name: source_name.into(),
                            workload: name.clone(),
                            source,
                        }
                    })?;
                if trace.series.span() < duration {
                    return Err(invalid(
                        0,
                        0,
                        at(&format!(
                            "trace {} covers {} but the scenario runs {}",
                            trace.series.source().display(),
                            homeostat_policies::duration::format_compact(trace.series.span()),
                            homeostat_policies::duration::format_compact(duration),
                        )),
                    ));
                }
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

    fn with_load(load: &str) -> String {
        format!(
            "name: x\nduration: 1h\nworkloads:\n  - namespace: shop\n    name: checkout\n    replicas: 1\n    pod: {{capacity: 50, cpuRequest: 0.5, startupDelay: 90s, baseLatency: 20ms}}\n    hpa: {{minReplicas: 1, maxReplicas: 4, targetCpuUtilization: 70}}\n    load:\n{load}    slo: {{latencyP99: 500ms}}\n"
        )
    }

    #[test]
    fn load_shapes_parse_with_their_defaults() {
        let s = Scenario::parse(
            "x.yaml",
            &with_load(
                "      base: 100\n      diurnal: {amplitude: 0.6, peakAt: 14h}\n      weekly: {weekendFactor: 0.5}\n      events:\n        - {kind: step, at: 30m, factor: 2}\n        - {kind: ramp, at: 10m, over: 20m, hold: 5m, factor: 1.5}\n",
            ),
        )
        .expect("valid");
        let load = &s.workloads[0].load;
        assert_eq!(
            load.diurnal,
            Some(DiurnalSpec {
                amplitude: 0.6,
                peak_at: Duration::from_secs(14 * 3600)
            })
        );
        let weekly = load.weekly.as_ref().expect("weekly");
        assert_eq!(
            (weekly.start_day, weekly.transition),
            (Weekday::Monday, Duration::from_secs(4 * 3600))
        );
        assert!(matches!(
            load.events[0],
            LoadEvent::Step {
                hold: None,
                factor: 2.0,
                ..
            }
        ));
        assert!(matches!(
            load.events[1],
            LoadEvent::Ramp {
                hold: Some(h),
                ..
            } if h == Duration::from_secs(300)
        ));
    }

    #[test]
    fn load_rules_are_refused_near_their_line() {
        for (load, message) in [
            (
                "      noise: 0.1\n",
                "needs a base rate (requests/s) or a trace",
            ),
            (
                "      base: 10\n      trace: {file: t.csv, peak: 100}\n",
                "a base rate or a trace, not both",
            ),
            (
                "      trace: {file: t.csv, peak: 100}\n      weekly: {weekendFactor: 0.5}\n",
                "drop diurnal and weekly",
            ),
            (
                "      base: 10\n      noise: 1.5\n",
                "noise must be in [0, 1)",
            ),
            (
                "      base: 10\n      diurnal: {amplitude: 0.6, peakAt: 25h}\n",
                "below 24h",
            ),
            (
                "      base: 10\n      weekly: {weekendFactor: 0.5, startDay: someday}\n",
                "unknown variant `someday`",
            ),
            (
                "      base: 10\n      events: [{kind: ramp, at: 1m, over: 0s, factor: 2}]\n",
                "positive `over`",
            ),
            ("      base: 10\n      surge: 3\n", "unknown field `surge`"),
        ] {
            let e = Scenario::parse("x.yaml", &with_load(load)).expect_err(message);
            let text = e.to_string();
            assert!(text.contains(message), "{text}");
            // Located at the workload (line 4), whose `load:` broke the rule, not at 0:0.
            let line: usize = text
                .strip_prefix("x.yaml:")
                .and_then(|r| r.split(':').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            assert!(line >= 4 && text.contains("workloads[0]"), "{text}");
        }
    }

    #[test]
    fn weekdays_count_forwards_and_backwards() {
        assert_eq!(Weekday::Monday.plus_days(5), Weekday::Saturday);
        assert_eq!(Weekday::Monday.plus_days(-1), Weekday::Sunday);
        assert_eq!(Weekday::Sunday.plus_days(15), Weekday::Monday);
        assert!(Weekday::Sunday.is_weekend() && !Weekday::Friday.is_weekend());
    }

    #[test]
    fn a_faults_section_parses_with_its_window_and_a_reversed_window_is_refused() {
        let base = with_load("      base: 10\n");
        let faults = "faults:\n  from: 90m\n  until: 130m\n  api: {conflict: 0.1, resources: [horizontalpodautoscalers]}\n  signals: {gap: 0.1, clockSkew: -45s, skewedFraction: 0.25}\n";
        let s = Scenario::parse("x.yaml", &format!("{base}{faults}")).expect("valid");
        let f = s.faults.expect("faults");
        assert_eq!(f.api.as_ref().map(|a| a.conflict), Some(0.1));
        let signals = f.signals.as_ref().expect("signals");
        assert_eq!(signals.clock_skew.as_nanos(), -45_000_000_000);
        assert!(!f.active_at(Duration::from_secs(89 * 60)));
        assert!(f.active_at(Duration::from_secs(90 * 60)));
        assert!(!f.active_at(Duration::from_secs(130 * 60)));
        let reversed = "faults:\n  from: 2h\n  until: 1h\n";
        let e = Scenario::parse("x.yaml", &format!("{base}{reversed}")).expect_err("reversed");
        assert!(
            e.to_string().contains("`from` must come before `until`"),
            "{e}"
        );
        let typo = "faults:\n  signals: {gap: 10}\n";
        let e = Scenario::parse("x.yaml", &format!("{base}{typo}")).expect_err("typo");
        assert!(e.to_string().contains("not between 0 and 1"), "{e}");
    }

    #[test]
    fn errors_say_where() {
        let e = Scenario::parse("x.yaml", "name: x\nduration: 1 fortnight\nworkloads: []\n")
            .expect_err("bad");
        assert!(e.to_string().starts_with("x.yaml:2:"), "{e}");
    }
}
