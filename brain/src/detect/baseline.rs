//! A robust streaming baseline: median and MAD over a sliding window of normal values.
//!
//! Median and MAD ignore the outliers that would drag a mean and standard deviation towards
//! them, so one spike does not hide the next. A value's robust z-score is turned into a
//! p-value-like score under a normal model (statrs), in [0, 1]; values judged anomalous are
//! kept out of the window, so an incident does not teach the baseline that it is normal.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use super::stats::median;

/// Which departures matter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    /// Only values above the baseline (latency, run-queue delay, error rate).
    Up,
    /// Only values below it (throughput).
    Down,
    /// Both.
    Both,
}

/// Tunables; the defaults suit 15-second samples.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaselineConfig {
    /// Normal values remembered (120 × 15 s = 30 min).
    pub window: usize,
    /// Values seen before any score is given.
    pub warmup: usize,
    /// Spread never taken below this fraction of |median|, so a flat series does not turn
    /// every wobble into an alarm.
    pub min_relative_spread: f64,
    /// Score at or above which a value is anomalous (0.999 ≈ 3.1 robust sigmas one-sided).
    pub threshold: f64,
    /// A value must also differ from the level by at least this fraction of it to be
    /// anomalous: statistically significant is not enough, it must matter (0.5 = 50 %).
    pub min_relative_effect: f64,
    /// Which departures matter.
    pub direction: Direction,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            window: 120,
            warmup: 20,
            min_relative_spread: 0.05,
            threshold: 0.999,
            min_relative_effect: 0.5,
            direction: Direction::Up,
        }
    }
}

/// A value's score against the baseline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Score {
    /// In [0, 1]: one minus the p-value of a value this far out.
    pub score: f64,
    /// Robust z-score (signed).
    pub z: f64,
    /// The baseline's level (median).
    pub level: f64,
    /// Whether `score` reached the threshold.
    pub anomalous: bool,
}

/// The baseline of one series; what it learned is kept across restarts (serde).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RobustBaseline {
    config: BaselineConfig,
    window: VecDeque<f64>,
    #[serde(skip, default = "super::stats::standard_normal")]
    standard: Normal,
}

/// MAD of a normal distribution is 0.6745 σ; this turns a MAD into a σ estimate.
const MAD_TO_SIGMA: f64 = 1.4826;

impl RobustBaseline {
    /// An empty baseline.
    pub fn new(config: BaselineConfig) -> Self {
        let standard = Normal::standard();
        RobustBaseline {
            config,
            window: VecDeque::with_capacity(config.window),
            standard,
        }
    }

    /// Whether it has seen enough to score.
    pub fn is_warm(&self) -> bool {
        self.window.len() >= self.config.warmup
    }

    /// Scores `x` and, when it looks normal and `learn` is set, learns it. Non-finite values
    /// are ignored and return `None`, as does any value during warm-up.
    pub fn observe(&mut self, x: f64, learn: bool) -> Option<Score> {
        if !x.is_finite() {
            return None;
        }
        let score = self.score(x);
        if learn && !score.is_some_and(|s| s.anomalous) {
            self.learn(x);
        }
        score
    }

    /// Learns `x` as normal whatever its score (another model vouched for it); non-finite
    /// values are ignored.
    pub fn learn(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        if self.window.len() == self.config.window {
            self.window.pop_front();
        }
        self.window.push_back(x);
    }

    /// Scores `x` without learning it.
    pub fn score(&self, x: f64) -> Option<Score> {
        if !self.is_warm() || !x.is_finite() {
            return None;
        }
        let mut sorted: Vec<f64> = self.window.iter().copied().collect();
        let level = median(&mut sorted);
        let mut deviations: Vec<f64> = sorted.iter().map(|v| (v - level).abs()).collect();
        let sigma = (MAD_TO_SIGMA * median(&mut deviations))
            .max(self.config.min_relative_spread * level.abs())
            .max(f64::MIN_POSITIVE);
        let z = (x - level) / sigma;
        let score = match self.config.direction {
            Direction::Up => self.standard.cdf(z),
            Direction::Down => self.standard.cdf(-z),
            Direction::Both => 1.0 - 2.0 * self.standard.cdf(-z.abs()),
        };
        let effect = (x - level).abs() / level.abs().max(f64::MIN_POSITIVE);
        let anomalous = score >= self.config.threshold && effect >= self.config.min_relative_effect;
        Some(Score {
            score,
            z,
            level,
            anomalous,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noisy(i: usize) -> f64 {
        // Deterministic wobble of about ±5 % around 100.
        100.0 + 5.0 * ((i as f64) * 1.7).sin()
    }

    #[test]
    fn warms_up_silently_then_flags_a_spike_but_not_the_wobble() {
        let mut b = RobustBaseline::new(BaselineConfig::default());
        for i in 0..20 {
            assert_eq!(b.observe(noisy(i), true), None, "no score during warm-up");
        }
        for i in 20..200 {
            let s = b.observe(noisy(i), true).expect("warm");
            assert!(!s.anomalous, "wobble at {i} flagged: {s:?}");
        }
        let small = b.score(130.0).expect("warm");
        assert!(
            small.score > 0.999 && !small.anomalous,
            "significant but too small to matter: {small:?}"
        );
        let spike = b.observe(160.0, true).expect("warm");
        assert!(spike.anomalous && spike.score > 0.999, "{spike:?}");
        assert!((spike.level - 100.0).abs() < 2.0);
    }

    #[test]
    fn anomalies_are_not_learned_and_non_finite_values_are_ignored() {
        let mut b = RobustBaseline::new(BaselineConfig {
            warmup: 10,
            ..BaselineConfig::default()
        });
        for i in 0..50 {
            b.observe(noisy(i), true);
        }
        for _ in 0..500 {
            assert!(
                b.observe(400.0, true).expect("warm").anomalous,
                "a long incident stays anomalous"
            );
        }
        assert_eq!(b.observe(f64::NAN, true), None);
        assert_eq!(b.observe(f64::INFINITY, true), None);
        assert!(!b.observe(101.0, true).expect("warm").anomalous);
    }

    #[test]
    fn nothing_is_learned_when_told_not_to() {
        let mut b = RobustBaseline::new(BaselineConfig {
            warmup: 10,
            ..BaselineConfig::default()
        });
        for i in 0..50 {
            b.observe(noisy(i), true);
        }
        for _ in 0..500 {
            b.observe(50.0, false);
        }
        let s = b.score(100.0).expect("warm");
        assert!((s.level - 100.0).abs() < 2.0 && !s.anomalous, "{s:?}");
    }

    #[test]
    fn direction_decides_which_departures_count() {
        let mut down = RobustBaseline::new(BaselineConfig {
            direction: Direction::Down,
            warmup: 10,
            ..BaselineConfig::default()
        });
        for i in 0..50 {
            down.observe(noisy(i), true);
        }
        assert!(!down.score(200.0).expect("warm").anomalous);
        assert!(down.score(10.0).expect("warm").anomalous);
    }
}
