//! The HPA's scaling behaviour (`spec.behavior`): stabilisation windows and rate limits, with
//! the defaults Kubernetes applies when a field is left out.

use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};

/// How several policies of one direction combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectPolicy {
    /// The policy that allows the most change.
    Max,
    /// The policy that allows the least change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// A rate limit: at most `value` pods, or `value` percent, per `period`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalingPolicy {
    /// Absolute pods per period.
    Pods {
        /// Pods.
        value: u32,
        /// Period.
        period: Duration,
    },
    /// Percent of the replicas at the start of the period.
    Percent {
        /// Percent.
        value: u32,
        /// Period.
        period: Duration,
    },
}

impl ScalingPolicy {
    fn period(self) -> Duration {
        match self {
            ScalingPolicy::Pods { period, .. } | ScalingPolicy::Percent { period, .. } => period,
        }
    }
}

/// One direction's rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalingRules {
    /// Recommendations considered: up takes the lowest within it, down the highest.
    pub stabilization: Duration,
    /// How the policies combine.
    pub select: SelectPolicy,
    /// The rate limits.
    pub policies: Vec<ScalingPolicy>,
}

/// Both directions' rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Behavior {
    /// Scaling up.
    pub scale_up: ScalingRules,
    /// Scaling down.
    pub scale_down: ScalingRules,
}

impl Default for Behavior {
    /// Kubernetes' defaults: up at once by max(100 %, 4 pods) per 15 s; down by up to 100 %
    /// per 15 s, to the highest recommendation of the last 5 minutes.
    fn default() -> Self {
        let per_15s = Duration::from_secs(15);
        Behavior {
            scale_up: ScalingRules {
                stabilization: Duration::ZERO,
                select: SelectPolicy::Max,
                policies: vec![
                    ScalingPolicy::Percent {
                        value: 100,
                        period: per_15s,
                    },
                    ScalingPolicy::Pods {
                        value: 4,
                        period: per_15s,
                    },
                ],
            },
            scale_down: ScalingRules {
                stabilization: Duration::from_secs(300),
                select: SelectPolicy::Max,
                policies: vec![ScalingPolicy::Percent {
                    value: 100,
                    period: per_15s,
                }],
            },
        }
    }
}

impl Behavior {
    /// The behaviour an HPA's `spec.behavior` asks for, each missing field at its default.
    pub fn from_spec(spec: Option<&HorizontalPodAutoscalerBehavior>) -> Self {
        let defaults = Behavior::default();
        let Some(spec) = spec else { return defaults };
        Behavior {
            scale_up: rules(spec.scale_up.as_ref(), defaults.scale_up),
            scale_down: rules(spec.scale_down.as_ref(), defaults.scale_down),
        }
    }

    /// The longest time any rule looks back.
    pub fn horizon(&self) -> Duration {
        [&self.scale_up, &self.scale_down]
            .iter()
            .flat_map(|r| {
                std::iter::once(r.stabilization).chain(r.policies.iter().map(|p| p.period()))
            })
            .max()
            .unwrap_or_default()
    }
}

fn rules(spec: Option<&HPAScalingRules>, default: ScalingRules) -> ScalingRules {
    let Some(spec) = spec else { return default };
    let secs = |s: i32| Duration::from_secs(u64::try_from(s).unwrap_or(0));
    ScalingRules {
        stabilization: spec
            .stabilization_window_seconds
            .map_or(default.stabilization, secs),
        select: match spec.select_policy.as_deref() {
            Some("Min") => SelectPolicy::Min,
            Some("Disabled") => SelectPolicy::Disabled,
            Some(_) => SelectPolicy::Max,
            None => default.select,
        },
        policies: match &spec.policies {
            Some(policies) if !policies.is_empty() => policies
                .iter()
                .map(|p| {
                    let value = u32::try_from(p.value).unwrap_or(0);
                    let period = secs(p.period_seconds);
                    if p.type_ == "Pods" {
                        ScalingPolicy::Pods { value, period }
                    } else {
                        ScalingPolicy::Percent { value, period }
                    }
                })
                .collect(),
            _ => default.policies,
        },
    }
}

/// The most replicas a scale-up may reach now, given the replicas added within each policy's
/// period (`added_within`).
pub fn scale_up_limit(
    rules: &ScalingRules,
    current: u32,
    added_within: impl Fn(Duration) -> u32,
) -> u32 {
    let limits = rules.policies.iter().map(|p| {
        let start = current.saturating_sub(added_within(p.period()));
        match *p {
            ScalingPolicy::Pods { value, .. } => start.saturating_add(value),
            ScalingPolicy::Percent { value, .. } => {
                (f64::from(start) * (1.0 + f64::from(value) / 100.0)).ceil() as u32
            }
        }
    });
    match rules.select {
        SelectPolicy::Max => limits.max().unwrap_or(current),
        SelectPolicy::Min => limits.min().unwrap_or(current),
        SelectPolicy::Disabled => current,
    }
}

/// The fewest replicas a scale-down may reach now, given the replicas removed within each
/// policy's period (`removed_within`).
pub fn scale_down_limit(
    rules: &ScalingRules,
    current: u32,
    removed_within: impl Fn(Duration) -> u32,
) -> u32 {
    let limits = rules.policies.iter().map(|p| {
        let start = current.saturating_add(removed_within(p.period()));
        match *p {
            ScalingPolicy::Pods { value, .. } => start.saturating_sub(value),
            ScalingPolicy::Percent { value, .. } => {
                (f64::from(start) * (1.0 - f64::from(value.min(100)) / 100.0)).ceil() as u32
            }
        }
    });
    match rules.select {
        // The most change is the lowest floor.
        SelectPolicy::Max => limits.min().unwrap_or(current),
        SelectPolicy::Min => limits.max().unwrap_or(current),
        SelectPolicy::Disabled => current,
    }
}
