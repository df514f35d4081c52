//! `spec.triggers`: what must be behind a proposal for a policy to allow it — an anomaly of
//! a listed kind and score, or a forecast of a large enough rise. A policy without triggers
//! allows whatever its other rules allow; putting back an earlier change is never held back
//! by them, since it answers no anomaly.

use std::fmt;

use homeostat_core::{AnomalyKind, Proposal};
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::Deserializer;

use crate::scalar;
use crate::schema::inline_schema;

/// The anomalies and forecasts that let a policy act; at least one of the two.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a mapping of anomalies and forecast"
)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.anomalies) && size(self.anomalies) > 0) || has(self.forecast)",
    "message": "triggers need at least one anomaly or a forecast",
}]))]
pub struct Triggers {
    /// Anomaly kinds that trigger, each from a least score.
    #[serde(default)]
    pub anomalies: Vec<AnomalyTrigger>,
    /// A forecast rise that triggers.
    #[serde(default)]
    pub forecast: Option<ForecastTrigger>,
}

/// An anomaly of `kind` scoring at least `minScore`.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a mapping of kind and minScore"
)]
pub struct AnomalyTrigger {
    /// The anomaly kind, e.g. `saturation`.
    #[serde(deserialize_with = "anomaly_kind")]
    #[schemars(schema_with = "anomaly_kinds")]
    pub kind: AnomalyKind,
    /// The least score, in [0, 1]; 0 when missing.
    #[serde(default, deserialize_with = "score")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_score: f64,
}

/// A forecast whose expected value is at least `minRise` times the current one.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a mapping of minRise"
)]
pub struct ForecastTrigger {
    /// The least expected-over-current ratio, at least 1 (1.3: a 30% rise).
    pub min_rise: Rise,
}

/// An expected-over-current ratio of at least 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rise(f64);

impl Rise {
    /// The ratio.
    pub fn get(self) -> f64 {
        self.0
    }
}

impl<'de> Deserialize<'de> for Rise {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        scalar::number(deserializer, "a ratio of at least 1", |x| {
            if x.is_finite() && x >= 1.0 {
                Ok(Rise(x))
            } else {
                Err(format!(
                    "must be a ratio of at least 1, found {x} (hint: 1.3 is a 30% rise)"
                ))
            }
        })
    }
}

inline_schema!(
    Rise,
    "Rise",
    schemars::json_schema!({"type": "number", "minimum": 1.0})
);

impl Triggers {
    /// `None` when `proposal` meets a trigger, else why not (no per-verdict allocation on
    /// the way to a match).
    pub fn unmet(&self, proposal: &Proposal) -> Option<String> {
        let anomaly = proposal.anomaly.as_ref();
        if let Some(a) = anomaly
            && self
                .anomalies
                .iter()
                .any(|t| t.kind == a.kind && a.score >= t.min_score)
        {
            return None;
        }
        let ratio = proposal.forecast.as_ref().and_then(|f| f.ratio());
        if let (Some(t), Some(r)) = (&self.forecast, ratio)
            && r >= t.min_rise.get()
        {
            return None;
        }
        let seen = match (anomaly, &proposal.forecast) {
            (Some(a), _) => format!("a {} anomaly scoring {:.2}", a.kind.as_str(), a.score),
            (None, Some(f)) => match ratio {
                Some(r) => format!("a forecast of {} rising {r:.2}x", f.signal),
                None => format!("a forecast of {} from a current value of 0", f.signal),
            },
            (None, None) => "neither an anomaly nor a forecast".to_owned(),
        };
        Some(format!("the proposal rests on {seen}; triggers are {self}"))
    }
}

impl fmt::Display for Triggers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = self
            .anomalies
            .iter()
            .map(|t| format!("{} from {}", t.kind.as_str(), t.min_score))
            .collect();
        if let Some(t) = &self.forecast {
            parts.push(format!("a forecast rise of {}x", t.min_rise.get()));
        }
        f.write_str(&parts.join(", "))
    }
}

/// Every anomaly kind, in the order messages and the schema list them.
pub(crate) const ANOMALY_KINDS: [AnomalyKind; 7] = [
    AnomalyKind::Saturation,
    AnomalyKind::CrashLoop,
    AnomalyKind::MemoryLeak,
    AnomalyKind::CpuContention,
    AnomalyKind::Network,
    AnomalyKind::SensorOverload,
    AnomalyKind::Unclassified,
];

/// Fails to compile when core gains an anomaly kind [`ANOMALY_KINDS`] does not list.
#[allow(dead_code)]
fn every_kind_is_listed(kind: AnomalyKind) {
    match kind {
        AnomalyKind::Saturation
        | AnomalyKind::CrashLoop
        | AnomalyKind::MemoryLeak
        | AnomalyKind::CpuContention
        | AnomalyKind::Network
        | AnomalyKind::SensorOverload
        | AnomalyKind::Unclassified => {}
    }
}

fn anomaly_kind<'de, D: Deserializer<'de>>(deserializer: D) -> Result<AnomalyKind, D::Error> {
    scalar::string(deserializer, "an anomaly kind", |text| {
        ANOMALY_KINDS
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| {
                let known: Vec<&str> = ANOMALY_KINDS.iter().map(|k| k.as_str()).collect();
                format!(
                    "unknown anomaly kind {text:?}: expected one of {}",
                    known.join(", ")
                )
            })
    })
}

fn anomaly_kinds(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let names: Vec<&str> = ANOMALY_KINDS.iter().map(|k| k.as_str()).collect();
    schemars::json_schema!({"type": "string", "enum": names})
}

fn score<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    scalar::number(deserializer, "a score from 0 to 1", |x| {
        if (0.0..=1.0).contains(&x) {
            Ok(x)
        } else {
            Err(format!("must be a score from 0 to 1, found {x}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use homeostat_core::{Action, AnomalySummary, ForecastSummary, Timestamp, WorkloadRef};

    fn proposal(anomaly: Option<(AnomalyKind, f64)>, rise: Option<f64>) -> Proposal {
        Proposal {
            anomaly: anomaly.map(|(kind, score)| AnomalySummary { kind, score }),
            forecast: rise.map(|r| ForecastSummary {
                signal: "rps".into(),
                horizon_seconds: 600,
                current: 100.0,
                expected: 100.0 * r,
            }),
            ..Proposal::new(
                WorkloadRef::deployment("shop", "web"),
                Action::RolloutRestart {
                    workload: WorkloadRef::deployment("shop", "web"),
                },
                String::new(),
                Timestamp::from_secs(1),
                2,
            )
        }
    }

    #[test]
    fn an_anomaly_of_a_listed_kind_and_score_or_a_large_enough_rise_triggers() {
        let t: Triggers = yaml_serde::from_str(
            "anomalies: [{kind: saturation, minScore: 0.8}, {kind: crash-loop}]\nforecast: {minRise: 1.3}",
        )
        .expect("valid");
        assert_eq!(
            t.unmet(&proposal(Some((AnomalyKind::Saturation, 0.8)), None)),
            None
        );
        assert_eq!(
            t.unmet(&proposal(Some((AnomalyKind::CrashLoop, 0.1)), None)),
            None
        );
        assert_eq!(t.unmet(&proposal(None, Some(1.3))), None);
        let low = t
            .unmet(&proposal(Some((AnomalyKind::Saturation, 0.79)), Some(1.2)))
            .expect("neither");
        assert_eq!(
            low,
            "the proposal rests on a saturation anomaly scoring 0.79; triggers are saturation \
             from 0.8, crash-loop from 0, a forecast rise of 1.3x"
        );
        let none = t.unmet(&proposal(None, None)).expect("nothing");
        assert!(none.contains("neither an anomaly nor a forecast"), "{none}");
    }

    #[test]
    fn bad_triggers_are_refused() {
        let kind = yaml_serde::from_str::<Triggers>("anomalies: [{kind: slow}]")
            .expect_err("kind")
            .to_string();
        assert!(kind.contains("unknown anomaly kind \"slow\""), "{kind}");
        let score = yaml_serde::from_str::<Triggers>("anomalies: [{kind: network, minScore: 2}]")
            .expect_err("score")
            .to_string();
        assert!(score.contains("score from 0 to 1, found 2"), "{score}");
        let rise = yaml_serde::from_str::<Triggers>("forecast: {minRise: 0.5}")
            .expect_err("fall")
            .to_string();
        assert!(rise.contains("at least 1, found 0.5"), "{rise}");
    }
}
