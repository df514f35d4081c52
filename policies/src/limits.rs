//! How much a policy lets the loop do: budgets of actions per window, the blast radius of a
//! restart, PodDisruptionBudgets, and what to do when an action did not help.

use std::fmt;

use homeostat_core::ActionKind;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::document::{ActionName, nonzero};
use crate::duration::HumanDuration;
use crate::scalar;
use crate::schema::inline_schema;

/// At most `max` actions per `per`, counted over the `scope`.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a mapping of max, per and scope"
)]
pub struct Budget {
    /// How many actions (of the kinds the policy lists) the window may hold; at least 1.
    #[serde(deserialize_with = "at_least_one")]
    #[schemars(range(min = 1))]
    pub max: u32,
    /// The sliding window, e.g. `1h`.
    #[serde(deserialize_with = "nonzero")]
    pub per: HumanDuration,
    /// What is counted together: the workload, its namespace, or the whole cluster.
    #[serde(default)]
    pub scope: BudgetScope,
}

fn at_least_one<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    scalar::integer(deserializer, "a count of at least 1", |n| {
        u32::try_from(n)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| format!("must be between 1 and {}, found {n}", u32::MAX))
    })
}

/// Over what a budget counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BudgetScope {
    /// Actions on the proposal's workload.
    #[default]
    Workload,
    /// Actions on any workload of its namespace.
    Namespace,
    /// Actions anywhere.
    Cluster,
}

impl BudgetScope {
    /// As written in a policy.
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetScope::Workload => "workload",
            BudgetScope::Namespace => "namespace",
            BudgetScope::Cluster => "cluster",
        }
    }
}

inline_schema!(
    BudgetScope,
    "BudgetScope",
    schemars::json_schema!({"type": "string", "enum": ["workload", "namespace", "cluster"]})
);

impl<'de> Deserialize<'de> for BudgetScope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        scalar::string(deserializer, "workload, namespace or cluster", |text| {
            [
                BudgetScope::Workload,
                BudgetScope::Namespace,
                BudgetScope::Cluster,
            ]
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| {
                format!("unknown budget scope {text:?}: expected workload, namespace or cluster")
            })
        })
    }
}

/// A number of a workload's pods: a count, or a percentage of its replicas rounded up (as a
/// PodDisruptionBudget rounds). `maxUnavailable` (the most pods down at once, counting the
/// one a restart takes) and `scale.maxStep` (the most pods one scaling adds) are written so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodsOrPercent {
    /// At most this many pods.
    Count(u32),
    /// At most this percentage (1–100) of the replicas.
    Percent(u8),
}

impl PodsOrPercent {
    /// The limit for a workload running `replicas`.
    pub fn of(self, replicas: u32) -> u32 {
        match self {
            PodsOrPercent::Count(n) => n,
            PodsOrPercent::Percent(p) => (u64::from(replicas) * u64::from(p))
                .div_ceil(100)
                .try_into()
                .unwrap_or(u32::MAX),
        }
    }

    fn parse_percent(text: &str) -> Result<PodsOrPercent, String> {
        let bad = || {
            format!(
                "invalid value {text:?}: expected a pod count of at least 1 or a percentage \
                 from 1% to 100%"
            )
        };
        let p: u8 = text
            .strip_suffix('%')
            .ok_or_else(bad)?
            .parse()
            .map_err(|_| bad())?;
        if (1..=100).contains(&p) {
            Ok(PodsOrPercent::Percent(p))
        } else {
            Err(bad())
        }
    }
}

impl fmt::Display for PodsOrPercent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PodsOrPercent::Count(n) => write!(f, "{n}"),
            PodsOrPercent::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl<'de> Deserialize<'de> for PodsOrPercent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(PodsOrPercentVisitor)
    }
}

struct PodsOrPercentVisitor;

impl Visitor<'_> for PodsOrPercentVisitor {
    type Value = PodsOrPercent;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a pod count or a percentage such as \"25%\"")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<PodsOrPercent, E> {
        u32::try_from(v)
            .ok()
            .filter(|n| *n >= 1)
            .map(PodsOrPercent::Count)
            .ok_or_else(|| E::custom(format!("must be between 1 and {}, found {v}", u32::MAX)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<PodsOrPercent, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::custom(format!(
                "must be between 1 and {}, found {v}",
                u32::MAX
            ))),
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<PodsOrPercent, E> {
        PodsOrPercent::parse_percent(v).map_err(E::custom)
    }
}

// Kubernetes' int-or-string, as PodDisruptionBudgets write it.
inline_schema!(
    PodsOrPercent,
    "PodsOrPercent",
    schemars::json_schema!({
        "x-kubernetes-int-or-string": true,
        "x-kubernetes-validations": [{
            "rule": "type(self) == int ? self >= 1 : self.matches('^(100|[1-9][0-9]?)%$')",
            "message": "a pod count of at least 1, or a percentage from 1% to 100%",
        }],
    })
);

/// `respectPodDisruptionBudgets`: accepted only as `true`, because restarts go through the
/// Eviction API, which the API server checks against every PodDisruptionBudget; there is
/// no way for homeostat to take a pod down past one, so the field cannot say otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlwaysTrue;

impl<'de> Deserialize<'de> for AlwaysTrue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_bool(AlwaysTrueVisitor)
    }
}

struct AlwaysTrueVisitor;

impl Visitor<'_> for AlwaysTrueVisitor {
    type Value = AlwaysTrue;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("true")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<AlwaysTrue, E> {
        if v {
            Ok(AlwaysTrue)
        } else {
            Err(E::custom(
                "cannot be false: restarts are evictions, which the API server checks against \
                 PodDisruptionBudgets (hint: leave the field out; it is always true)",
            ))
        }
    }
}

inline_schema!(
    AlwaysTrue,
    "AlwaysTrue",
    schemars::json_schema!({
        "type": "boolean",
        "x-kubernetes-validations": [{
            "rule": "self == true",
            "message": "restarts are evictions, which always respect PodDisruptionBudgets",
        }],
    })
);

/// What follows an action that has not helped.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a mapping of verifyWithin and next"
)]
pub struct Escalation {
    /// How long an action has to help before it is judged not to have.
    #[serde(deserialize_with = "nonzero")]
    pub verify_within: HumanDuration,
    /// The action to try next; missing means stop and raise an Event.
    #[serde(default, deserialize_with = "next_action")]
    #[schemars(schema_with = "crate::schema::action")]
    pub next: Option<ActionKind>,
}

fn next_action<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<ActionKind>, D::Error> {
    ActionName::deserialize(deserializer).map(|ActionName(k)| Some(k))
}

/// What the engine does once an action of some kind has not helped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextStep {
    /// Propose this kind instead.
    Try(ActionKind),
    /// Do nothing more about it; raise an Event.
    Stop,
}

impl NextStep {
    /// For reasons: the next action's name, or `stop`.
    pub fn describe(self) -> String {
        match self {
            NextStep::Try(k) => format!("next step {}", k.as_str()),
            NextStep::Stop => "stop and raise an Event".to_owned(),
        }
    }
}

impl Escalation {
    /// What follows a `kind` that did not help: `next`, unless that is `kind` itself (which
    /// would loop), else stop.
    pub fn after(&self, kind: ActionKind) -> NextStep {
        match self.next {
            Some(next) if next != kind => NextStep::Try(next),
            _ => NextStep::Stop,
        }
    }
}
