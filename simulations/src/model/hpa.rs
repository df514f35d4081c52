//! The Kubernetes HPA controller's algorithm for a CPU-utilisation target, as documented:
//! desired = ceil(current × utilisation / target), nothing within a 10 % tolerance, not-ready
//! pods counted as idle when scaling up, then the HPA's `behavior`: stabilisation windows
//! (scale-down to the highest recommendation of the last 5 minutes by default) and rate limits
//! (scale-up by max(100 %, 4 pods) per 15 s by default).

use std::collections::VecDeque;
use std::time::Duration;

pub mod behavior;

pub use behavior::Behavior;
use behavior::{scale_down_limit, scale_up_limit};

/// The HPA controller's tolerance around the target.
pub const TOLERANCE: f64 = 0.1;

/// What one HPA sync sees.
#[derive(Clone, Debug, PartialEq)]
pub struct HpaInput {
    /// `spec.replicas` of the target now.
    pub current: u32,
    /// CPU utilisation of each ready pod, fraction of its request.
    pub ready_utilisation: Vec<f64>,
    /// Pods that exist but are not ready yet.
    pub unready: u32,
    /// Target utilisation, fraction.
    pub target: f64,
    /// `spec.minReplicas`.
    pub min: u32,
    /// `spec.maxReplicas`.
    pub max: u32,
    /// `spec.behavior`, defaults filled in.
    pub behavior: Behavior,
}

/// One HPA's controller state: its recent recommendations and scale events.
#[derive(Clone, Debug, Default)]
pub struct HpaController {
    recommendations: VecDeque<(Duration, u32)>,
    /// (time, replicas added; negative when removed).
    events: VecDeque<(Duration, i64)>,
}

impl HpaController {
    /// A controller with no history.
    pub fn new() -> Self {
        HpaController::default()
    }

    /// The replica count this sync at `now` (time since start) sets.
    pub fn sync(&mut self, now: Duration, input: &HpaInput) -> u32 {
        let rules = &input.behavior;
        let horizon = rules.horizon();
        let raw = raw_recommendation(input);
        self.recommendations.push_back((now, raw));
        while self
            .recommendations
            .front()
            .is_some_and(|(t, _)| now.saturating_sub(*t) > horizon)
        {
            self.recommendations.pop_front();
        }
        while self
            .events
            .front()
            .is_some_and(|(t, _)| now.saturating_sub(*t) > horizon)
        {
            self.events.pop_front();
        }
        // Stabilisation: up to the lowest recommendation of the up window, down to the highest
        // of the down window.
        let within = |window: Duration| {
            self.recommendations
                .iter()
                .filter(move |(t, _)| now.saturating_sub(*t) <= window)
                .map(|(_, r)| *r)
        };
        let up = within(rules.scale_up.stabilization).min().unwrap_or(raw);
        let down = within(rules.scale_down.stabilization).max().unwrap_or(raw);
        let mut desired = input.current;
        if desired < up {
            desired = up;
        }
        if desired > down {
            desired = down;
        }
        // Rate limits, counting what earlier syncs already changed within each period.
        let changed = |period: Duration, sign: i64| -> u32 {
            let total: i64 = self
                .events
                .iter()
                .filter(|(t, d)| now.saturating_sub(*t) < period && d.signum() == sign)
                .map(|(_, d)| d.abs())
                .sum();
            u32::try_from(total).unwrap_or(u32::MAX)
        };
        if desired > input.current {
            desired = desired.min(scale_up_limit(&rules.scale_up, input.current, |p| {
                changed(p, 1)
            }));
        } else if desired < input.current {
            desired = desired.max(scale_down_limit(&rules.scale_down, input.current, |p| {
                changed(p, -1)
            }));
        }
        let desired = desired.clamp(input.min, input.max);
        if desired != input.current {
            self.events
                .push_back((now, i64::from(desired) - i64::from(input.current)));
        }
        desired
    }
}

fn raw_recommendation(input: &HpaInput) -> u32 {
    let ready = input.ready_utilisation.len() as f64;
    if ready == 0.0 || input.target <= 0.0 {
        return input.current;
    }
    let sum: f64 = input.ready_utilisation.iter().sum();
    let ratio = sum / ready / input.target;
    if (ratio - 1.0).abs() <= TOLERANCE {
        return input.current;
    }
    let ratio = if ratio > 1.0 && input.unready > 0 {
        // Not-ready pods are assumed idle when scaling up, damping the reaction while they start.
        let adjusted = sum / (ready + f64::from(input.unready)) / input.target;
        if adjusted <= 1.0 + TOLERANCE {
            return input.current;
        }
        adjusted
    } else {
        ratio
    };
    let pods = if ratio > 1.0 && input.unready > 0 {
        ready + f64::from(input.unready)
    } else {
        ready
    };
    (ratio * pods).ceil().max(1.0) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(current: u32, util: f64, unready: u32) -> HpaInput {
        HpaInput {
            current,
            ready_utilisation: vec![util; (current - unready) as usize],
            unready,
            target: 0.7,
            min: 2,
            max: 20,
            behavior: Behavior::default(),
        }
    }

    #[test]
    fn scales_by_the_ratio_outside_the_tolerance() {
        let mut h = HpaController::new();
        assert_eq!(h.sync(Duration::ZERO, &input(4, 0.75, 0)), 4, "within 10 %");
        assert_eq!(
            h.sync(Duration::from_secs(15), &input(4, 1.0, 0)),
            6,
            "ceil(4 × 1.0 / 0.7)"
        );
    }

    #[test]
    fn a_behavior_slows_scale_up_and_shortens_the_down_window() {
        let slow = Behavior::from_spec(Some(
            &serde_json::from_value(serde_json::json!({
                "scaleUp": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]},
                "scaleDown": {"stabilizationWindowSeconds": 30}
            }))
            .expect("behavior"),
        ));
        let mut h = HpaController::new();
        let hot = |current| HpaInput {
            behavior: slow.clone(),
            ..input(current, 1.0, 0)
        };
        assert_eq!(h.sync(Duration::ZERO, &hot(4)), 5, "one pod per minute");
        assert_eq!(
            h.sync(Duration::from_secs(15), &hot(5)),
            5,
            "the minute is not over"
        );
        assert_eq!(h.sync(Duration::from_secs(60), &hot(5)), 6);
        assert_eq!(
            slow.scale_up.select,
            behavior::SelectPolicy::Max,
            "unset fields keep their defaults"
        );
        let mut h = HpaController::new();
        let calm = |current| HpaInput {
            behavior: slow.clone(),
            ..input(current, 0.2, 0)
        };
        assert_eq!(h.sync(Duration::ZERO, &input(10, 0.7, 0)), 10);
        assert_eq!(
            h.sync(Duration::from_secs(15), &calm(10)),
            10,
            "within the 30 s window"
        );
        assert_eq!(h.sync(Duration::from_secs(60), &calm(10)), 3, "past it");
    }

    #[test]
    fn unready_pods_damp_scale_up() {
        let mut h = HpaController::new();
        // 4 ready at 100 %, 2 starting: (4 × 1.0) / 6 / 0.7 = 0.95, within tolerance.
        assert_eq!(h.sync(Duration::ZERO, &input(6, 1.0, 2)), 6);
    }

    #[test]
    fn scale_up_is_rate_limited_and_scale_down_stabilised() {
        let mut h = HpaController::new();
        let mut hot = input(2, 1.0, 0);
        hot.ready_utilisation = vec![7.0; 2];
        assert_eq!(h.sync(Duration::ZERO, &hot), 6, "max(2 × 2, 2 + 4)");
        let mut h = HpaController::new();
        assert_eq!(h.sync(Duration::ZERO, &input(10, 0.7, 0)), 10);
        assert_eq!(
            h.sync(Duration::from_secs(60), &input(10, 0.2, 0)),
            10,
            "held by the 5-minute window"
        );
        assert_eq!(
            h.sync(Duration::from_secs(361), &input(10, 0.2, 0)),
            3,
            "ceil(10 × 0.2 / 0.7) once the window passed"
        );
    }
}
