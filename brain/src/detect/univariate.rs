//! One number per step, judged with no other context: the detector the NAB evaluation runs,
//! and a cheap first opinion on any gauge.
//!
//! Three views of the same stream, each turned into a surprise (−ln of the probability of
//! something at least as extreme under a normal model) so they can be compared:
//! the value against a robust exponentially weighted level and spread (spikes and dips), the
//! first difference against its own (sudden jumps, including on noisy series whose level
//! wanders), and a two-sided CUSUM of the value's standardised residuals (small sustained
//! shifts no single point reveals). The largest surprise, when it exceeds what was already
//! reported recently, becomes a score in [0, 1]: an incident raises one alarm rather than a hundred.
//!
//! Everything is O(1) per value and a few dozen bytes per series; non-finite values are
//! skipped and never reach the state.

/// Tunables. The defaults are deliberately generic: no setting depends on a series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UnivariateConfig {
    /// Values learned before any score is given.
    pub warmup: u32,
    /// Weight of a new value in the level and spread (1/α ≈ the memory in steps).
    pub alpha: f64,
    /// Residuals are clipped at this many spreads before they are learned, so a spike moves
    /// the baseline little (a Huber-style update).
    pub clip: f64,
    /// CUSUM slack, in spreads: shifts smaller than this are not accumulated.
    pub cusum_slack: f64,
    /// How quickly the memory of a reported surprise fades, per step.
    pub refractory_decay: f64,
    /// Factor by which a surprise must exceed the last reported one to be reported again.
    pub refractory_growth: f64,
    /// Surprise (nats) mapped to a score of 0.5.
    pub half_score_surprise: f64,
}

impl Default for UnivariateConfig {
    fn default() -> Self {
        UnivariateConfig {
            warmup: 100,
            alpha: 0.003,
            clip: 3.0,
            cusum_slack: 0.5,
            refractory_decay: 0.9995,
            refractory_growth: 2.0,
            half_score_surprise: 10.0,
        }
    }
}

/// A robust exponentially weighted level and spread.
#[derive(Clone, Copy, Debug, Default)]
struct Ewm {
    level: f64,
    /// Mean absolute deviation scaled to a normal σ.
    spread: f64,
}

/// E|X − μ| = σ √(2/π) for a normal variable; this turns a mean absolute deviation into σ.
const MAD_MEAN_TO_SIGMA: f64 = 1.253_314_137_315_500_3;

impl Ewm {
    fn spread_floor(&self) -> f64 {
        self.spread.max(1e-6 * self.level.abs()).max(1e-12)
    }

    /// The standardised residual of `x`, then learns it.
    fn update(&mut self, x: f64, alpha: f64, clip: f64) -> f64 {
        let sigma = self.spread_floor();
        let z = (x - self.level) / sigma;
        let r = z.clamp(-clip, clip) * sigma;
        self.level += alpha * r;
        self.spread += alpha * (MAD_MEAN_TO_SIGMA * r.abs() - self.spread);
        z
    }
}

/// The univariate detector's state for one series.
#[derive(Clone, Debug)]
pub struct Univariate {
    config: UnivariateConfig,
    seen: u32,
    previous: f64,
    value: Ewm,
    diff: Ewm,
    cusum_up: f64,
    cusum_down: f64,
    reported: f64,
}

impl Univariate {
    /// A detector that has seen nothing.
    pub fn new(config: UnivariateConfig) -> Self {
        Univariate {
            config,
            seen: 0,
            previous: f64::NAN,
            value: Ewm::default(),
            diff: Ewm::default(),
            cusum_up: 0.0,
            cusum_down: 0.0,
            reported: 0.0,
        }
    }

    /// Scores `x` in [0, 1] (0 during warm-up and for non-finite values) and learns it.
    pub fn observe(&mut self, x: f64) -> f64 {
        if !x.is_finite() {
            return 0.0;
        }
        let c = self.config;
        if self.seen == 0 {
            self.value.level = x;
            self.previous = x;
            self.seen = 1;
            return 0.0;
        }
        if self.seen == 1 {
            self.diff.level = x - self.previous;
        }
        // In warm-up every value weighs equally and nothing is clipped: there is no spread
        // yet to clip by.
        let warming = self.seen <= c.warmup;
        let (alpha, clip) = if warming {
            (c.alpha.max(1.0 / f64::from(self.seen)), f64::INFINITY)
        } else {
            (c.alpha, c.clip)
        };
        let z_value = self.value.update(x, alpha, clip);
        let z_diff = self.diff.update(x - self.previous, alpha, clip);
        self.previous = x;
        let zc = z_value.clamp(-c.clip * 2.0, c.clip * 2.0);
        self.cusum_up = (self.cusum_up + zc - c.cusum_slack).max(0.0);
        self.cusum_down = (self.cusum_down - zc - c.cusum_slack).max(0.0);
        self.seen = self.seen.saturating_add(1);
        if warming {
            self.cusum_up = 0.0;
            self.cusum_down = 0.0;
            return 0.0;
        }
        // A CUSUM with slack k on unit-variance noise exceeds h with probability about
        // e^(−2kh): its surprise is 2kh nats.
        let cusum = 2.0 * c.cusum_slack * self.cusum_up.max(self.cusum_down);
        let surprise = two_sided_surprise(z_value)
            .max(two_sided_surprise(z_diff))
            .max(cusum);
        // Only a surprise beyond what was recently reported is news; once reported, it must
        // grow by `refractory_growth` to be reported again, so a rising incident raises a
        // handful of alarms, not one per step.
        let fresh = if surprise > self.reported {
            surprise
        } else {
            0.0
        };
        self.reported = if fresh > 0.0 {
            surprise * c.refractory_growth
        } else {
            (self.reported * c.refractory_decay).max(surprise)
        };
        let score = fresh / (fresh + c.half_score_surprise);
        if score.is_finite() { score } else { 0.0 }
    }
}

/// −ln P(|Z| ≥ |z|) for a standard normal Z, accurate in the far tail where the probability
/// itself underflows.
fn two_sided_surprise(z: f64) -> f64 {
    let a = z.abs();
    if !a.is_finite() {
        return 0.0;
    }
    if a < 8.0 {
        let p = statrs::function::erf::erfc(a / std::f64::consts::SQRT_2);
        -p.max(f64::MIN_POSITIVE).ln()
    } else {
        // Mills ratio: P(|Z| ≥ a) ≈ 2φ(a)/a.
        a * a / 2.0 + (a * (std::f64::consts::PI / 2.0).sqrt()).ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wobble(i: u32) -> f64 {
        100.0 + 5.0 * (f64::from(i) * 1.7).sin()
    }

    #[test]
    fn silent_in_warm_up_quiet_on_noise_loud_on_a_spike_once() {
        let mut d = Univariate::new(UnivariateConfig::default());
        for i in 0..100 {
            assert_eq!(d.observe(wobble(i)), 0.0);
        }
        for i in 100..1000 {
            let s = d.observe(wobble(i));
            assert!(s < 0.3, "wobble at {i} scored {s}");
        }
        let spike = d.observe(200.0);
        assert!(spike > 0.8, "{spike}");
        let after = d.observe(wobble(1001));
        assert!(after < 0.3, "{after}");
    }

    #[test]
    fn a_small_sustained_shift_is_found_by_the_cusum() {
        let mut d = Univariate::new(UnivariateConfig::default());
        for i in 0..1000 {
            d.observe(wobble(i));
        }
        let peak = (1000..1100)
            .map(|i| d.observe(wobble(i) + 4.0))
            .fold(0.0, f64::max);
        assert!(peak > 0.5, "{peak}");
    }

    #[test]
    fn non_finite_values_never_reach_the_state() {
        let mut d = Univariate::new(UnivariateConfig::default());
        for i in 0..500 {
            d.observe(wobble(i));
        }
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(d.observe(bad), 0.0);
        }
        let s = d.observe(wobble(500));
        assert!(s.is_finite() && s < 0.3, "{s}");
        let mut flat = Univariate::new(UnivariateConfig::default());
        for _ in 0..500 {
            assert_eq!(flat.observe(0.0), 0.0, "a flat line is never surprising");
        }
        assert!(flat.observe(1.0) > 0.9);
    }

    #[test]
    fn surprise_is_continuous_across_the_tail_switch() {
        let below = two_sided_surprise(7.999_999);
        let above = two_sided_surprise(8.0);
        assert!((below - above).abs() / above < 0.02, "{below} {above}");
        assert!((two_sided_surprise(1.959_964) - 0.05f64.recip().ln()).abs() < 1e-3);
    }
}
