//! How far one action may go: `spec.scale` (the largest step up, and never below the load's
//! need) and `spec.throttle` (which sensor probes may be sampled less, and how far).
//!
//! Both blocks are optional, and a missing block bounds nothing beyond the rest of the
//! policy (`maxReplicas` still caps scaling). Within a `scale` block `neverBelowNeed` is on
//! unless set to false: whoever writes the block asked for bounds.

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::Deserializer;

use crate::limits::PodsOrPercent;
use crate::scalar;
use crate::schema::inline_schema;

/// Bounds on `scale-hpa` and `scale-workload`.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a mapping of maxStep and neverBelowNeed"
)]
pub struct ScaleBounds {
    /// The most pods one action adds above what runs now (or the floor, if higher): a count,
    /// or a percentage of the replicas running now (rounded up, at least one pod). A larger
    /// step is cut to it. No limit when missing.
    #[serde(default)]
    pub max_step: Option<PodsOrPercent>,
    /// Never lower `minReplicas` or `replicas` below what the current (or forecast) load
    /// needs, when the proposal knows that need; true when missing.
    #[serde(default = "yes")]
    pub never_below_need: bool,
}

fn yes() -> bool {
    true
}

impl ScaleBounds {
    /// The most `field` may be set to in one action, from `base` (the larger of the floor
    /// and the replicas now), `None` when unbounded.
    pub fn step_limit(&self, base: u32, current: u32) -> Option<u32> {
        let step = self.max_step?.of(current).max(1);
        Some(base.saturating_add(step))
    }
}

/// Bounds on `throttle-sampling`.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a mapping of probes and minRate"
)]
pub struct ThrottleBounds {
    /// The probes that may be sampled less; every sampled probe when missing. Only latency
    /// probes sample (runqueue, tcp-connect, block-io): counters always count every event.
    #[serde(default, deserialize_with = "probes")]
    #[schemars(schema_with = "probe_names")]
    pub probes: Vec<SampledProbe>,
    /// The lowest sampling rate allowed, in (0, 1] (0.015625: one event in 64); no floor
    /// when missing.
    #[serde(default)]
    pub min_rate: Option<Rate>,
}

impl ThrottleBounds {
    /// Why throttling `probe` to `rate` is out of bounds, if it is. Lifting a throttle
    /// (`rate` 1) is always in bounds.
    pub fn refuses(&self, probe: &str, rate: f64) -> Option<String> {
        if rate >= 1.0 {
            return None;
        }
        if !self.probes.is_empty() && !self.probes.iter().any(|p| p.0 == probe) {
            let allowed: Vec<&str> = self.probes.iter().map(|p| p.0).collect();
            return Some(format!(
                "probe {probe:?} may not be throttled: the policy allows {}",
                allowed.join(", ")
            ));
        }
        let min = self.min_rate?.get();
        (rate < min)
            .then(|| format!("rate {rate} for probe {probe:?} is below the policy's minRate {min}"))
    }
}

/// The sensor's probe catalogue (`homeostat-sensor`'s `Probe::name`), each with whether it
/// samples; a test at the workspace root keeps the two the same.
pub const PROBES: [(&str, bool); 8] = [
    ("runqueue", true),
    ("cpu", false),
    ("exits", false),
    ("oom", false),
    ("tcp-retransmits", false),
    ("tcp-resets", false),
    ("tcp-connect", true),
    ("block-io", true),
];

/// A probe from [`PROBES`] that samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SampledProbe(&'static str);

impl SampledProbe {
    /// Its name.
    pub fn name(self) -> &'static str {
        self.0
    }
}

impl<'de> Deserialize<'de> for SampledProbe {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        scalar::string(deserializer, "a probe name", |text| {
            let sampled: Vec<&str> = PROBES.iter().filter(|p| p.1).map(|p| p.0).collect();
            match PROBES.iter().find(|(name, _)| *name == text) {
                Some((name, true)) => Ok(SampledProbe(name)),
                Some(_) => Err(format!(
                    "probe {text:?} counts every event and is never sampled (hint: sampled \
                     probes are {})",
                    sampled.join(", ")
                )),
                None => Err(format!(
                    "unknown probe {text:?}: expected one of {}",
                    sampled.join(", ")
                )),
            }
        })
    }
}

fn probes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<SampledProbe>, D::Error> {
    scalar::non_empty_seq(
        deserializer,
        "a list of probe names",
        "must name at least one probe (hint: leave probes out to allow every sampled probe)",
    )
}

fn probe_names(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let names: Vec<&str> = PROBES.iter().filter(|p| p.1).map(|p| p.0).collect();
    schemars::json_schema!({
        "type": "array",
        "minItems": 1,
        "items": {"type": "string", "enum": names},
    })
}

/// A sampling rate in (0, 1].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate(f64);

impl Rate {
    /// The rate.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        scalar::number(deserializer, "a sampling rate in (0, 1]", |x| {
            if x > 0.0 && x <= 1.0 {
                Ok(Rate(x))
            } else {
                Err(format!(
                    "must be a sampling rate above 0 and at most 1, found {x} (hint: 0.015625 \
                     samples one event in 64)"
                ))
            }
        })
    }
}

inline_schema!(
    Rate,
    "Rate",
    schemars::json_schema!({
        "type": "number",
        "minimum": 0.0,
        "exclusiveMinimum": true,
        "maximum": 1.0,
    })
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_is_a_count_or_a_share_of_the_replicas_and_at_least_one_pod() {
        let count: ScaleBounds = yaml_serde::from_str("maxStep: 3").expect("count");
        assert!(count.never_below_need);
        assert_eq!(count.step_limit(4, 4), Some(7));
        let share: ScaleBounds =
            yaml_serde::from_str("maxStep: 50%\nneverBelowNeed: false").expect("share");
        assert!(!share.never_below_need);
        assert_eq!(share.step_limit(5, 5), Some(8));
        assert_eq!(share.step_limit(0, 0), Some(1));
        let none: ScaleBounds = yaml_serde::from_str("{}").expect("empty");
        assert_eq!(none.step_limit(4, 4), None);
    }

    #[test]
    fn throttles_only_the_listed_sampled_probes_down_to_the_floor() {
        let b: ThrottleBounds =
            yaml_serde::from_str("probes: [runqueue]\nminRate: 0.015625").expect("valid");
        assert_eq!(b.refuses("runqueue", 0.25), None);
        assert_eq!(b.refuses("runqueue", 0.015625), None);
        assert_eq!(
            b.refuses("block-io", 1.0),
            None,
            "lifting is always allowed"
        );
        let low = b.refuses("runqueue", 0.01).expect("below");
        assert_eq!(
            low,
            "rate 0.01 for probe \"runqueue\" is below the policy's minRate 0.015625"
        );
        let other = b.refuses("block-io", 0.5).expect("unlisted");
        assert!(
            other.contains("\"block-io\" may not be throttled"),
            "{other}"
        );
        let counter = yaml_serde::from_str::<ThrottleBounds>("probes: [cpu]")
            .expect_err("counter")
            .to_string();
        assert!(counter.contains("never sampled"), "{counter}");
        let unknown = yaml_serde::from_str::<ThrottleBounds>("probes: [sched]")
            .expect_err("unknown")
            .to_string();
        assert!(unknown.contains("unknown probe \"sched\""), "{unknown}");
        let zero = yaml_serde::from_str::<ThrottleBounds>("minRate: 0")
            .expect_err("zero")
            .to_string();
        assert!(zero.contains("above 0 and at most 1, found 0"), "{zero}");
    }
}
