//! The Kubernetes HPA controller's algorithm for a CPU-utilisation target, as documented:
//! desired = ceil(current × utilisation / target), nothing within a 10 % tolerance, not-ready
//! pods counted as idle when scaling up, scale-up limited to max(100 %, 4 pods) per 15 s, and
//! scale-down to the highest recommendation of the last 5 minutes.

use std::collections::VecDeque;
use std::time::Duration;

/// The HPA controller's tolerance around the target.
pub const TOLERANCE: f64 = 0.1;
/// Scale-down stabilisation window.
pub const DOWNSCALE_STABILISATION: Duration = Duration::from_secs(300);

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
}

/// One HPA's controller state: its recent recommendations.
#[derive(Clone, Debug, Default)]
pub struct HpaController {
    recommendations: VecDeque<(Duration, u32)>,
}

impl HpaController {
    /// A controller with no history.
    pub fn new() -> Self {
        HpaController::default()
    }

    /// The replica count this sync at `now` (time since start) sets.
    pub fn sync(&mut self, now: Duration, input: &HpaInput) -> u32 {
        let raw = raw_recommendation(input);
        self.recommendations.push_back((now, raw));
        while self
            .recommendations
            .front()
            .is_some_and(|(t, _)| now.saturating_sub(*t) > DOWNSCALE_STABILISATION)
        {
            self.recommendations.pop_front();
        }
        // Scale down only as far as the highest recommendation within the window allows.
        let stabilised = if raw < input.current {
            self.recommendations
                .iter()
                .map(|(_, r)| *r)
                .max()
                .unwrap_or(raw)
                .min(input.current)
        } else {
            raw
        };
        // Scale up at most max(100 %, 4 pods) per sync.
        let up_limit = (input.current.saturating_mul(2)).max(input.current + 4);
        stabilised.min(up_limit).clamp(input.min, input.max)
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
