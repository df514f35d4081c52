//! The request rate a workload receives over time.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::scenario::{LoadEvent, LoadSpec};

/// A deterministic, seeded request-rate trace.
#[derive(Debug)]
pub struct LoadTrace {
    spec: LoadSpec,
    rng: StdRng,
}

impl LoadTrace {
    /// A trace for `spec`; the same seed gives the same trace.
    pub fn new(spec: LoadSpec, seed: u64) -> Self {
        LoadTrace {
            spec,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// The noiseless rate at `t` after the start.
    pub fn shape(&self, t: Duration) -> f64 {
        let factor = self
            .spec
            .events
            .iter()
            .map(|e| event_factor(e, t))
            .fold(1.0, f64::max);
        self.spec.base * factor
    }

    /// The rate at `t`, with noise; call once per tick, in time order.
    pub fn next(&mut self, t: Duration) -> f64 {
        let wobble = 1.0 + self.spec.noise * (2.0 * self.rng.random::<f64>() - 1.0);
        (self.shape(t) * wobble).max(0.0)
    }

    /// Whether `t` lies within any load event (the ground truth of incidents).
    pub fn in_event(&self, t: Duration) -> bool {
        self.spec.events.iter().any(|e| event_factor(e, t) > 1.0)
    }
}

fn event_factor(e: &LoadEvent, t: Duration) -> f64 {
    match *e {
        LoadEvent::Spike {
            at,
            ramp_up,
            hold,
            ramp_down,
            factor,
        } => {
            let s = t.as_secs_f64();
            let (a, u, h, d) = (
                at.as_secs_f64(),
                ramp_up.as_secs_f64(),
                hold.as_secs_f64(),
                ramp_down.as_secs_f64(),
            );
            let frac = if s < a || s >= a + u + h + d {
                0.0
            } else if s < a + u {
                (s - a) / u
            } else if s < a + u + h {
                1.0
            } else {
                1.0 - (s - a - u - h) / d
            };
            1.0 + (factor - 1.0) * frac
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spike_ramps_holds_and_falls_back() {
        let spec = LoadSpec {
            base: 100.0,
            noise: 0.0,
            events: vec![LoadEvent::Spike {
                at: Duration::from_secs(100),
                ramp_up: Duration::from_secs(10),
                hold: Duration::from_secs(20),
                ramp_down: Duration::from_secs(10),
                factor: 5.0,
            }],
        };
        let t = LoadTrace::new(spec, 1);
        let at = |s| t.shape(Duration::from_secs(s));
        assert_eq!(at(50), 100.0);
        assert_eq!(at(105), 300.0);
        assert_eq!(at(120), 500.0);
        assert_eq!(at(135), 300.0);
        assert_eq!(at(140), 100.0);
        assert!(t.in_event(Duration::from_secs(120)) && !t.in_event(Duration::from_secs(150)));
    }

    #[test]
    fn noise_is_bounded_and_seeded() {
        let spec = LoadSpec {
            base: 100.0,
            noise: 0.1,
            events: vec![],
        };
        let (mut a, mut b) = (LoadTrace::new(spec.clone(), 3), LoadTrace::new(spec, 3));
        for i in 0..100 {
            let t = Duration::from_secs(i);
            let v = a.next(t);
            assert!((90.0..=110.0).contains(&v));
            assert_eq!(v, b.next(t));
        }
    }
}
