//! How a workload's latency answers its load: a queue's delay grows with how busy its servers
//! are, steeply near the knee, so a morning rush lengthens latency before the autoscaler
//! catches up, with nothing wrong. A baseline of latency alone that has only seen the night
//! calls that first rush an anomaly; a model of latency *given the load per pod* does not,
//! and still calls a slow dependency (latency up at the same load) one.
//!
//! The model is a line through `ln(latency)` against the request rate per serving pod,
//! fitted by exponentially weighted least squares over about [`QueueingConfig::memory`]
//! normal steps: a queue's delay is close to exponential in its utilisation below the knee
//! (the simulated cluster's p99 is within 6 % of such a line from 40 % to 73 % busy), and a
//! line needs five numbers. It vouches for a latency only where it has seen enough and
//! varied enough load to have learned a slope, within [`QueueingConfig::reach`] of the
//! busiest load it remembers, and only up to [`QueueingConfig::margin`] (or three residual
//! spreads, if more) above its line.

use serde::{Deserialize, Serialize};

/// Tunables.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueingConfig {
    /// Steps the fit remembers (the weight of a step halves in about 0.7 of it): twelve hours
    /// at 15 s, so the morning still knows the night's loads.
    pub memory: f64,
    /// Weight of steps needed before the model vouches for anything: an hour at 15 s.
    pub min_weight: f64,
    /// The least coefficient of variation of the load seen: below it the slope is noise.
    pub min_load_variation: f64,
    /// The least share of latency's variance the load must explain.
    pub min_r_squared: f64,
    /// How far beyond the busiest load remembered the line may be followed, as a multiple.
    pub reach: f64,
    /// The least rise above the line allowed, as a fraction: the p99 of 15 s of requests
    /// scatters by a tenth, and a line bends less than a queue near its knee (followed from
    /// 20-30 requests/s per pod to 36, it is a fifth low on the steeper test queue below).
    /// Alone, a latency must rise by half to be an anomaly; a rise of more than this above
    /// what the load explains still is one.
    pub margin: f64,
}

impl Default for QueueingConfig {
    fn default() -> Self {
        QueueingConfig {
            memory: 2880.0,
            min_weight: 240.0,
            min_load_variation: 0.05,
            min_r_squared: 0.5,
            reach: 1.5,
            margin: 0.25,
        }
    }
}

/// The fit of one latency series against the load per pod.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Queueing {
    config: QueueingConfig,
    /// Sum of the weights.
    weight: f64,
    /// Weighted means of the load and of ln(latency).
    mean_x: f64,
    mean_y: f64,
    /// Weighted co-moments about the means.
    sxx: f64,
    sxy: f64,
    syy: f64,
    /// The busiest load remembered, drifting down to the mean over the memory.
    max_x: f64,
}

impl Default for Queueing {
    fn default() -> Self {
        Queueing::new(QueueingConfig::default())
    }
}

impl Queueing {
    /// Nothing learned.
    pub fn new(config: QueueingConfig) -> Self {
        Queueing {
            config,
            weight: 0.0,
            mean_x: 0.0,
            mean_y: 0.0,
            sxx: 0.0,
            sxy: 0.0,
            syy: 0.0,
            max_x: 0.0,
        }
    }

    /// Learns that a normal step had `latency` at `load` requests per second per pod. Values
    /// that are not finite and positive are ignored.
    pub fn learn(&mut self, load: f64, latency: f64) {
        if !(load.is_finite() && load > 0.0 && latency.is_finite() && latency > 0.0) {
            return;
        }
        let (x, y) = (load, latency.ln());
        let keep = 1.0 - 1.0 / self.config.memory.max(1.0);
        let before = keep * self.weight;
        self.weight = before + 1.0;
        let (dx, dy) = (x - self.mean_x, y - self.mean_y);
        self.mean_x += dx / self.weight;
        self.mean_y += dy / self.weight;
        // The weighted Welford update: the old co-moments fade, the new point adds its
        // deviation times its deviation from the updated mean.
        let share = before / self.weight;
        self.sxx = keep * self.sxx + share * dx * dx;
        self.sxy = keep * self.sxy + share * dx * dy;
        self.syy = keep * self.syy + share * dy * dy;
        self.max_x = if x >= self.max_x {
            x
        } else {
            self.max_x - (self.max_x - self.mean_x).max(0.0) / self.config.memory.max(1.0)
        };
    }

    /// The latency the fit expects at `load`, and how far above it (a factor) is still its
    /// scatter; `None` where the fit does not know enough to say.
    pub fn expected(&self, load: f64) -> Option<(f64, f64)> {
        let c = &self.config;
        if self.weight < c.min_weight || !load.is_finite() || load <= 0.0 {
            return None;
        }
        if load > c.reach * self.max_x || self.sxx <= 0.0 || self.syy <= 0.0 {
            return None;
        }
        let sd_x = (self.sxx / self.weight).sqrt();
        if sd_x < c.min_load_variation * self.mean_x.abs() {
            return None;
        }
        let slope = self.sxy / self.sxx;
        let r_squared = self.sxy * self.sxy / (self.sxx * self.syy);
        if slope <= 0.0 || r_squared < c.min_r_squared {
            return None;
        }
        let residual = ((self.syy - slope * self.sxy).max(0.0) / self.weight).sqrt();
        let y = self.mean_y + slope * (load - self.mean_x);
        let allowance = (3.0 * residual).max(c.margin.ln_1p());
        Some((y.exp(), allowance.exp()))
    }

    /// Whether `latency` at `load` is what the fit expects of that load: at most its scatter
    /// above the line. `false` wherever the fit cannot say.
    pub fn explains(&self, load: f64, latency: f64) -> bool {
        self.expected(load)
            .is_some_and(|(expected, scatter)| latency <= expected * scatter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue's p99 at `load` requests/s per pod that each serve 50/s at most: steep near
    /// the knee, like the simulated cluster's.
    fn p99(load: f64) -> f64 {
        0.02 / (1.0 - load / 50.0).powf(1.4)
    }

    /// A night: load per pod wandering between 20 and 30 for twelve hours.
    fn night() -> Queueing {
        let mut q = Queueing::default();
        for i in 0..2880 {
            let load = 25.0 + 5.0 * (f64::from(i) / 300.0).sin();
            q.learn(load, p99(load) * (1.0 + 0.03 * (f64::from(i) * 1.7).sin()));
        }
        q
    }

    #[test]
    fn the_rush_after_a_night_is_what_the_load_explains() {
        let q = night();
        for load in [30.0, 34.0, 36.5] {
            assert!(q.explains(load, p99(load)), "load {load}");
        }
    }

    #[test]
    fn a_slower_answer_at_the_same_load_is_not_explained() {
        let q = night();
        for load in [22.0, 27.0, 32.0] {
            assert!(!q.explains(load, 1.5 * p99(load)), "load {load}");
        }
    }

    #[test]
    fn it_vouches_for_nothing_it_has_not_learned() {
        // Far beyond the busiest load seen: the line says nothing there.
        assert!(!night().explains(46.0, p99(46.0)));
        // Too little seen.
        let mut short = Queueing::default();
        for i in 0..200 {
            let load = 25.0 + 5.0 * (f64::from(i) / 30.0).sin();
            short.learn(load, p99(load));
        }
        assert_eq!(short.expected(25.0), None);
        // A load that never varied has taught no slope.
        let mut flat = Queueing::default();
        for i in 0..1000 {
            flat.learn(25.0, p99(25.0) * (1.0 + 0.05 * (f64::from(i) * 1.7).sin()));
        }
        assert_eq!(flat.expected(30.0), None);
    }

    #[test]
    fn latency_that_ignores_the_load_teaches_no_slope() {
        let mut q = Queueing::default();
        for i in 0..2880 {
            let load = 25.0 + 5.0 * (f64::from(i) / 300.0).sin();
            q.learn(load, 0.1 * (1.0 + 0.2 * (f64::from(i) * 1.7).sin()));
        }
        assert_eq!(q.expected(30.0), None);
    }

    #[test]
    fn values_that_are_not_finite_and_positive_are_ignored() {
        let mut q = night();
        let before = q;
        for (load, latency) in [
            (f64::NAN, 0.1),
            (25.0, f64::INFINITY),
            (0.0, 0.1),
            (25.0, 0.0),
        ] {
            q.learn(load, latency);
        }
        assert_eq!(q, before);
        assert!(!q.explains(f64::NAN, 0.1));
    }
}
