//! The policy document as written: Kubernetes-shaped (`apiVersion`, `kind`, `metadata`, `spec`)
//! so it can become a CRD without changing what authors write.
//!
//! Every check that can run on one value runs inside deserialization, so the YAML parser
//! attaches the line and column of the offending value to the error.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use homeostat_core::{ActionKind, Mode};
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::Deserializer;

use crate::bounds::{ScaleBounds, ThrottleBounds};
use crate::condition::Condition;
use crate::duration::HumanDuration;
use crate::limits::{AlwaysTrue, Budget, Escalation, PodsOrPercent};
use crate::names::ObjectName;
use crate::scalar;
use crate::schedule::Schedule;
use crate::schema::inline_schema;
use crate::selector::LabelSelector;
use crate::trigger::Triggers;

/// The only `apiVersion` this crate reads.
pub const API_VERSION: &str = "homeostat.dev/v1alpha1";
/// The only `kind` this crate reads.
pub const KIND: &str = "Policy";
/// `maxDataAge` when a policy does not set it.
pub const DEFAULT_MAX_DATA_AGE: Duration = Duration::from_secs(120);

/// One YAML document, fully validated field by field.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a Policy: a mapping of apiVersion, kind, metadata and spec"
)]
pub(crate) struct PolicyDocument {
    #[allow(dead_code)] // read for validation only
    pub api_version: ApiVersion,
    #[allow(dead_code)] // read for validation only
    pub kind: Kind,
    pub metadata: Metadata,
    pub spec: PolicySpec,
}

/// Accepts exactly [`API_VERSION`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct ApiVersion;

impl<'de> Deserialize<'de> for ApiVersion {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        scalar::string(deserializer, API_VERSION, |got| expect(got, API_VERSION))
            .map(|()| ApiVersion)
    }
}

/// Accepts exactly [`KIND`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Kind;

impl<'de> Deserialize<'de> for Kind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        scalar::string(deserializer, KIND, |got| expect(got, KIND)).map(|()| Kind)
    }
}

/// Refuses any value but `want`, saying what was found.
fn expect(got: &str, want: &str) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("expected {want:?}, found {got:?}"))
    }
}

/// Kubernetes object metadata; labels and annotations are accepted so manifests can carry them.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a mapping of name, labels and annotations"
)]
pub(crate) struct Metadata {
    pub name: ObjectName,
    #[serde(default)]
    #[allow(dead_code)] // accepted, not used yet
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    #[allow(dead_code)] // accepted, not used yet
    pub annotations: BTreeMap<String, String>,
}

// This type also describes `spec` in the CustomResourceDefinition (`crate::crd`): its doc
// comments and its fields' are what `kubectl explain policy.spec` shows.
/// What a policy allows, where, how often and how far.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a mapping of mode, actions, target, triggers, conditions, cooldown, budgets, \
                 maxReplicas, maxUnavailable, respectPodDisruptionBudgets, scale, throttle, \
                 maxDataAge, schedule and escalation"
)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!self.actions.exists(a, a == 'scale-hpa' || a == 'scale-workload') || has(self.maxReplicas)",
    "message": "maxReplicas is required when actions include scale-hpa or scale-workload",
}, {
    "rule": "!has(self.scale) || self.actions.exists(a, a == 'scale-hpa' || a == 'scale-workload')",
    "message": "scale bounds scale-hpa and scale-workload only, which actions do not include",
}, {
    "rule": "!has(self.throttle) || self.actions.exists(a, a == 'throttle-sampling')",
    "message": "throttle bounds throttle-sampling only, which actions do not include",
}]))]
pub struct PolicySpec {
    /// The most this policy lets the loop do; the global mode can only make it stricter.
    #[serde(deserialize_with = "mode")]
    #[schemars(schema_with = "crate::schema::mode")]
    pub mode: Mode,
    /// The action kinds this policy allows; never empty.
    #[serde(deserialize_with = "actions")]
    #[schemars(schema_with = "crate::schema::actions")]
    pub actions: Vec<ActionKind>,
    /// Which workloads it covers; all when missing.
    #[serde(default)]
    pub target: Target,
    /// What must be behind a proposal: an anomaly of a listed kind and score, or a forecast
    /// rise; anything when missing. Putting back an earlier change needs no trigger.
    #[serde(default)]
    pub triggers: Option<Triggers>,
    /// CEL expressions that must all be true for the policy to allow anything; they read
    /// `anomaly` (kind, score), `forecast` (signal, horizonSeconds, current, expected,
    /// ratio), `workload` (namespace, name, kind, replicas), `time` (hour, minute, weekday
    /// in the schedule's time zone) and `recent` (actions per kind on the workload in the
    /// last hour, e.g. `recent.scaleHpa`).
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Least time between two actions of one kind on one workload, to stop flapping.
    pub cooldown: HumanDuration,
    /// Most actions (of the kinds listed in `actions`) per window, per workload, namespace
    /// or cluster.
    #[serde(default)]
    pub budgets: Vec<Budget>,
    /// Ceiling for an HPA's `minReplicas` and a workload's `replicas`; required when `actions`
    /// include `scale-hpa` or `scale-workload`.
    #[serde(default)]
    pub max_replicas: Option<ReplicaCeiling>,
    /// Most of a workload's pods unavailable at once, counting the one a restart takes down:
    /// a count or a percentage of its replicas (rounded up); 1 when missing.
    #[serde(default)]
    pub max_unavailable: Option<PodsOrPercent>,
    /// Always true: restarts are evictions, which the API server checks against
    /// PodDisruptionBudgets. Accepted so manifests can say so; `false` is refused.
    #[serde(default)]
    pub respect_pod_disruption_budgets: Option<AlwaysTrue>,
    /// Bounds on scaling: the largest step up, and never below the load's need.
    #[serde(default)]
    pub scale: Option<ScaleBounds>,
    /// Bounds on throttling the sensor: which probes, and the lowest rate.
    #[serde(default)]
    pub throttle: Option<ThrottleBounds>,
    /// Evidence older than this is never acted on (destructive actions: half); 2m when missing.
    #[serde(default = "default_max_data_age", deserialize_with = "nonzero")]
    pub max_data_age: HumanDuration,
    /// Deny windows and maintenance windows, in a time zone.
    #[serde(default)]
    pub schedule: Schedule,
    /// What follows an action that has not helped within a time: the next action, or stop.
    #[serde(default)]
    pub escalation: Option<Escalation>,
}

/// The blast radius when a policy sets none: one pod at a time.
pub const DEFAULT_MAX_UNAVAILABLE: PodsOrPercent = PodsOrPercent::Count(1);

/// Which workloads a policy covers: empty lists mean "all".
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a mapping of namespaces, workloads, selector and exclude"
)]
pub struct Target {
    /// Namespaces covered; all when empty.
    #[serde(default)]
    pub namespaces: Vec<ObjectName>,
    /// Workload names covered; all when empty.
    #[serde(default)]
    pub workloads: Vec<ObjectName>,
    /// Labels the workload must carry (Kubernetes label selector semantics); a workload
    /// whose labels were not read never matches a policy with a selector.
    #[serde(default)]
    pub selector: Option<LabelSelector>,
    /// Workload names never touched, whatever else matches.
    #[serde(default)]
    pub exclude: Vec<ObjectName>,
}

/// The most `minReplicas` a policy will ever set; at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReplicaCeiling(u32);

impl ReplicaCeiling {
    /// A ceiling, refused when zero (a zero ceiling would forbid every HPA).
    pub fn new(n: u32) -> Result<Self, String> {
        if n >= 1 {
            Ok(ReplicaCeiling(n))
        } else {
            Err(format!("must be at least 1, found {n}"))
        }
    }

    /// The ceiling.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for ReplicaCeiling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

inline_schema!(
    ReplicaCeiling,
    "ReplicaCeiling",
    schemars::json_schema!({"type": "integer", "minimum": 1, "maximum": u32::MAX})
);

impl<'de> Deserialize<'de> for ReplicaCeiling {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        scalar::integer(deserializer, "a replica count of at least 1", |n| {
            u32::try_from(n)
                .map_err(|_| format!("must be between 1 and {}, found {n}", u32::MAX))
                .and_then(ReplicaCeiling::new)
        })
    }
}

fn default_max_data_age() -> HumanDuration {
    HumanDuration(DEFAULT_MAX_DATA_AGE)
}

/// Every mode, strictest first, as the schema lists them.
pub(crate) const MODES: [Mode; 3] = [Mode::Observe, Mode::DryRun, Mode::Enforce];

fn mode<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Mode, D::Error> {
    scalar::string(deserializer, "observe, dry-run or enforce", str::parse)
}

pub(crate) fn nonzero<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<HumanDuration, D::Error> {
    scalar::string(deserializer, "a duration longer than zero", |text| {
        let d = HumanDuration::parse(text)?;
        if d.get().is_zero() {
            Err(format!("{text:?}: must be longer than zero"))
        } else {
            Ok(d)
        }
    })
}

/// An action name from core's vocabulary, with a message listing the known ones.
pub(crate) struct ActionName(pub(crate) ActionKind);

/// Every action kind, in the order messages and the schema list them.
pub(crate) const ACTION_KINDS: [ActionKind; 6] = [
    ActionKind::ScaleHpa,
    ActionKind::RestartPods,
    ActionKind::ThrottleSampling,
    ActionKind::TaintNode,
    ActionKind::ScaleWorkload,
    ActionKind::RolloutRestart,
];

impl<'de> Deserialize<'de> for ActionName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        scalar::string(deserializer, "an action name", |text| {
            ACTION_KINDS
                .into_iter()
                .find(|k| k.as_str() == text)
                .map(ActionName)
                .ok_or_else(|| {
                    let known: Vec<&str> = ACTION_KINDS.iter().map(|k| k.as_str()).collect();
                    format!(
                        "unknown action {text:?}: expected one of {}",
                        known.join(", ")
                    )
                })
        })
    }
}

fn actions<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<ActionKind>, D::Error> {
    let names: Vec<ActionName> = scalar::non_empty_seq(
        deserializer,
        "a list of action names",
        "must name at least one action",
    )?;
    let mut kinds: Vec<ActionKind> = Vec::with_capacity(names.len());
    for ActionName(kind) in names {
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}
