//! CEL conditions (`spec.conditions`): expressions over the anomaly, the workload, the time
//! and the recent actions that must all hold for a policy to allow anything.
//!
//! Each expression is compiled once, while its document is parsed, so a syntax error is
//! reported at the expression's line and column; it is then run once against a sample
//! proposal, so an unknown variable or field, or a result that is not a boolean, is refused
//! at load too rather than at the first proposal. At evaluation, an error or a non-boolean
//! result denies: a condition that cannot be decided never allows.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

use cel::common::types::{CelDouble, CelInt, CelMap, CelMapKey, CelString};
use cel::common::value::Val;
use cel::{Context, Env, Program, Value};
use homeostat_core::{ActionKind, AnomalyKind, AnomalySummary, ForecastSummary, WorkloadRef};
use serde::de::{Deserialize, Deserializer};

use crate::scalar;
use crate::schema::inline_schema;

/// The variables a condition may read; the hint of every condition error lists them.
pub const VARIABLES: &str = "anomaly.kind, anomaly.score, forecast.signal, \
     forecast.horizonSeconds, forecast.current, forecast.expected, forecast.ratio, \
     workload.namespace, workload.name, \
     workload.kind, workload.replicas, time.hour, time.minute, time.weekday ('mon'…'sun'), \
     recent.scaleHpa, recent.restartPods, recent.throttleSampling, recent.taintNode";

/// The standard CEL environment, built once: contexts share it.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// One compiled condition and the text it was compiled from.
#[derive(Clone)]
pub struct Condition {
    source: String,
    program: Arc<Program>,
    reads: Reads,
}

/// Which variables conditions read, so an evaluation binds (and computes) only those.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reads {
    pub anomaly: bool,
    pub forecast: bool,
    pub workload: bool,
    pub time: bool,
    pub recent: bool,
}

impl Reads {
    /// None at all.
    pub const NONE: Reads = Reads {
        anomaly: false,
        forecast: false,
        workload: false,
        time: false,
        recent: false,
    };
    const ALL: Reads = Reads {
        anomaly: true,
        forecast: true,
        workload: true,
        time: true,
        recent: true,
    };

    /// What either reads.
    pub fn and(self, other: Reads) -> Reads {
        Reads {
            anomaly: self.anomaly || other.anomaly,
            forecast: self.forecast || other.forecast,
            workload: self.workload || other.workload,
            time: self.time || other.time,
            recent: self.recent || other.recent,
        }
    }
}

impl Condition {
    /// Compiles `source` and tries it on a sample proposal; the error names the column
    /// within the expression and hints at what may be read.
    pub fn compile(source: &str) -> Result<Condition, String> {
        let program = ENV.compile(source).map_err(|e| {
            let first = e.errors.first();
            let at = first.map_or(String::new(), |p| {
                format!(" at line {} column {} of the expression", p.pos.0, p.pos.1)
            });
            let what = first.map_or_else(|| e.to_string(), |p| p.msg.clone());
            format!("invalid CEL{at}: {what} (hint: conditions read {VARIABLES})")
        })?;
        let references = program.references();
        let reads = Reads {
            anomaly: references.has_variable("anomaly"),
            forecast: references.has_variable("forecast"),
            workload: references.has_variable("workload"),
            time: references.has_variable("time"),
            recent: references.has_variable("recent"),
        };
        let condition = Condition {
            source: source.to_owned(),
            program: Arc::new(program),
            reads,
        };
        condition
            .holds(&Bindings::sample())
            .map(|_| condition.clone())
            .map_err(|e| format!("{source:?} {e} (hint: conditions read {VARIABLES})"))
    }

    /// The variables it reads.
    pub(crate) fn reads(&self) -> Reads {
        self.reads
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the condition holds under `bindings`; why not, when it cannot be decided.
    pub fn holds(&self, bindings: &Bindings) -> Result<bool, String> {
        self.holds_in(&bindings.context(Reads::ALL))
    }

    /// As [`holds`](Self::holds), in a context already built (several conditions share one).
    pub(crate) fn holds_in(&self, context: &Context<'_, '_>) -> Result<bool, String> {
        match self.program.execute(context) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "evaluates to a value of type {}, not a boolean",
                other.type_of()
            )),
            Err(e) => Err(format!("cannot be evaluated: {e}")),
        }
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Condition").field(&self.source).finish()
    }
}

impl PartialEq for Condition {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        scalar::string(deserializer, "a CEL expression", Condition::compile)
    }
}

inline_schema!(
    Condition,
    "Condition",
    schemars::json_schema!({"type": "string", "minLength": 1})
);

/// The local time a condition sees, in the policy's time zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTime {
    /// 0–23.
    pub hour: u8,
    /// 0–59.
    pub minute: u8,
    /// `mon` … `sun`.
    pub weekday: &'static str,
}

/// What a condition is evaluated against.
#[derive(Clone, Debug, PartialEq)]
pub struct Bindings {
    /// The anomaly behind the proposal; `anomaly` is undefined (and reading it denies)
    /// when there is none.
    pub anomaly: Option<AnomalySummary>,
    /// The forecast behind the proposal; `forecast` is undefined when there is none, and
    /// `forecast.ratio` when the current value is not positive.
    pub forecast: Option<ForecastSummary>,
    /// The workload.
    pub workload: WorkloadRef,
    /// Its replicas now.
    pub replicas: u32,
    /// Local time.
    pub time: LocalTime,
    /// Actions per kind on the workload in the last hour, counted as cooldowns count them.
    pub recent: [(ActionKind, u32); crate::document::ACTION_KINDS.len()],
}

impl Bindings {
    /// A plausible proposal with every variable defined, to try conditions on at load.
    fn sample() -> Bindings {
        Bindings {
            anomaly: Some(AnomalySummary {
                kind: AnomalyKind::Saturation,
                score: 0.9,
            }),
            forecast: Some(ForecastSummary {
                signal: homeostat_core::signal::RUNQUEUE_LATENCY.to_owned(),
                horizon_seconds: 600,
                current: 1.0,
                expected: 1.5,
            }),
            workload: WorkloadRef::deployment("default", "web"),
            replicas: 3,
            time: LocalTime {
                hour: 12,
                minute: 0,
                weekday: "wed",
            },
            recent: crate::document::ACTION_KINDS.map(|k| (k, 0)),
        }
    }

    /// A CEL context holding the variables of these bindings that `reads` names, built
    /// directly as CEL values borrowing the bindings' strings (no copies).
    pub(crate) fn context(&self, reads: Reads) -> Context<'_, '_> {
        let mut context = Context::with_env(Arc::clone(&ENV));
        if let Some(a) = self.anomaly.as_ref().filter(|_| reads.anomaly) {
            context.add_variable_as_val(
                "anomaly",
                map([
                    ("kind", string(a.kind.as_str())),
                    ("score", double(a.score)),
                ]),
            );
        }
        if let Some(f) = self.forecast.as_ref().filter(|_| reads.forecast) {
            let mut entries: HashMap<CelMapKey<'_>, Box<dyn Val + '_>> = HashMap::from([
                (CelMapKey::from("signal"), string(&f.signal)),
                (
                    CelMapKey::from("horizonSeconds"),
                    int(i64::try_from(f.horizon_seconds).unwrap_or(i64::MAX)),
                ),
                (CelMapKey::from("current"), double(f.current)),
                (CelMapKey::from("expected"), double(f.expected)),
            ]);
            if let Some(r) = f.ratio() {
                entries.insert(CelMapKey::from("ratio"), double(r));
            }
            context.add_variable_as_val("forecast", Box::new(CelMap::from(entries)));
        }
        let w = &self.workload;
        if reads.workload {
            context.add_variable_as_val(
                "workload",
                map([
                    ("namespace", string(&w.namespace)),
                    ("name", string(&w.name)),
                    ("kind", string(w.kind.as_str())),
                    ("replicas", int(self.replicas)),
                ]),
            );
        }
        if reads.time {
            context.add_variable_as_val(
                "time",
                map([
                    ("hour", int(self.time.hour)),
                    ("minute", int(self.time.minute)),
                    ("weekday", string(self.time.weekday)),
                ]),
            );
        }
        if reads.recent {
            context
                .add_variable_as_val("recent", map(self.recent.map(|(k, n)| (camel(k), int(n)))));
        }
        context
    }
}

fn map<'v, const N: usize>(entries: [(&'v str, Box<dyn Val + 'v>); N]) -> Box<dyn Val + 'v> {
    let entries: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = entries
        .into_iter()
        .map(|(k, v)| (CelMapKey::from(k), v))
        .collect();
    Box::new(CelMap::from(entries))
}

fn string(s: &str) -> Box<dyn Val + '_> {
    Box::new(CelString::from(s))
}

fn int(n: impl Into<i64>) -> Box<dyn Val + 'static> {
    Box::new(CelInt::from(n.into()))
}

fn double(x: f64) -> Box<dyn Val + 'static> {
    Box::new(CelDouble::from(x))
}

/// An action kind as conditions name it: `scale-hpa` reads `recent.scaleHpa`.
fn camel(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::ScaleHpa => "scaleHpa",
        ActionKind::RestartPods => "restartPods",
        ActionKind::ThrottleSampling => "throttleSampling",
        ActionKind::TaintNode => "taintNode",
        ActionKind::ScaleWorkload => "scaleWorkload",
        ActionKind::RolloutRestart => "rolloutRestart",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_once_and_decides_on_the_bindings() {
        let c = Condition::compile("anomaly.score > 0.8 && workload.namespace == 'default'")
            .expect("compiles");
        let mut b = Bindings::sample();
        assert_eq!(c.holds(&b), Ok(true));
        b.workload.namespace = "shop".into();
        assert_eq!(c.holds(&b), Ok(false));
        b.workload.namespace = "default".into();
        b.anomaly = None;
        let err = c.holds(&b).expect_err("no anomaly to read");
        assert!(err.contains("anomaly"), "{err}");
    }

    #[test]
    fn refuses_what_cannot_be_a_condition() {
        let syntax = Condition::compile("anomaly.score >").expect_err("syntax");
        assert!(
            syntax.starts_with("invalid CEL at line 1 column"),
            "{syntax}"
        );
        assert!(
            syntax.contains("hint: conditions read anomaly.kind"),
            "{syntax}"
        );
        let typo = Condition::compile("anomaly.scor > 0.5").expect_err("unknown field");
        assert!(typo.contains("No such key: scor"), "{typo}");
        let not_bool = Condition::compile("recent.scaleHpa + 1").expect_err("int");
        assert!(not_bool.contains("not a boolean"), "{not_bool}");
        let unknown = Condition::compile("node.name == 'a'").expect_err("no node");
        assert!(unknown.contains("node"), "{unknown}");
    }

    #[test]
    fn recent_counts_and_local_time_are_readable() {
        let c =
            Condition::compile("recent.restartPods < 2 && time.weekday != 'sun' && time.hour >= 8")
                .expect("compiles");
        let mut b = Bindings::sample();
        assert_eq!(c.holds(&b), Ok(true));
        b.recent[1].1 = 2;
        assert_eq!(c.holds(&b), Ok(false));
    }

    #[test]
    fn the_forecast_is_readable_and_its_ratio_only_when_it_means_something() {
        let c = Condition::compile("forecast.ratio >= 1.3 && forecast.horizonSeconds <= 900")
            .expect("compiles");
        let mut b = Bindings::sample();
        assert_eq!(c.holds(&b), Ok(true));
        let f = b.forecast.as_mut().expect("sample forecast");
        f.expected = 1.2;
        assert_eq!(c.holds(&b), Ok(false));
        b.forecast.as_mut().expect("sample forecast").current = 0.0;
        let err = c.holds(&b).expect_err("no ratio");
        assert!(err.contains("ratio"), "{err}");
        b.forecast = None;
        assert!(c.holds(&b).is_err(), "no forecast, no decision");
    }
}
