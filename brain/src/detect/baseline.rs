//! A robust streaming baseline: median and MAD over a sliding window of normal values.
//!
//! Median and MAD ignore the outliers that would drag a mean and standard deviation towards
//! them, so one spike does not hide the next. A value's robust z-score is turned into a
//! p-value-like score under a normal model (statrs), in [0, 1]; values judged anomalous are
//! kept out of the window, so an incident does not teach the baseline that it is normal.
//!
//! Median and MAD also ignore a minority of values that is normal: a p99 read off a coarse
//! histogram sits just under a bucket bound most of the time and, when a few more requests
//! cross it, jumps well into the next bucket (`0.245 s` to `0.30`–`0.40 s` with the
//! OpenTelemetry bounds, for a true p99 moving from 0.24 to 0.28 s). So the spread is never
//! taken below what the window's own tail implies: its second most extreme normal value
//! (leaving out the last two minutes') is put at its plotting position under the normal model,
//! and a value is an outlier only if it lies well beyond what the series has recently done
//! as a matter of course.
//!
//! The median/MAD z-scores feed a CUSUM ([`super::change`]), calibrated to the same scale, so
//! a shift that no single value shows is found from several; the score is the larger of the
//! two.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use super::change::ChangePoint;
use super::stats::{MAD_TO_SIGMA, median};

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
    /// The CUSUM's allowance, in spreads: half the shift it finds fastest (0.5: a shift of
    /// one spread is found in about ten steps). `None` (the default) turns it off: on the
    /// simulation lab's library it found no incident sooner and made actions the defaults do
    /// not (a false one among them); the brain's `detection.changePoint` turns it on.
    #[serde(default)]
    pub change_allowance: Option<f64>,
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
            change_allowance: None,
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
    /// The CUSUM's calibrated score, in [0, 1] (already in `score`).
    pub change: f64,
    /// The baseline's level (median).
    pub level: f64,
    /// Whether `score` reached the threshold.
    pub anomalous: bool,
}

/// The baseline of one series; what it learned is kept across restarts (serde).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RobustBaseline {
    config: BaselineConfig,
    /// Single precision: seven significant digits are far finer than any spread it measures,
    /// and half the memory of a tracked series.
    window: VecDeque<f32>,
    /// The CUSUMs for rises and for falls, as `direction` asks.
    #[serde(default)]
    up: ChangePoint,
    #[serde(default)]
    down: ChangePoint,
    #[serde(skip, default = "super::stats::standard_normal")]
    standard: Normal,
}

/// The rank, from the extreme, of the window's value that bounds the spread from below (see
/// the module's doc): the second, so that one odd value learned does not widen it.
const TAIL_RANK: usize = 2;

/// The newest values of the window left out of its tail: a shift's first steps, each within
/// the bar and learned, must not vouch for the next (two minutes at 15 s).
const TAIL_RECENT: usize = 8;

impl RobustBaseline {
    /// An empty baseline.
    pub fn new(config: BaselineConfig) -> Self {
        let standard = Normal::standard();
        RobustBaseline {
            config,
            window: VecDeque::with_capacity(config.window),
            up: ChangePoint::default(),
            down: ChangePoint::default(),
            standard,
        }
    }

    /// What it was built with (and since changed by [`RobustBaseline::set_change_allowance`]).
    pub fn config(&self) -> &BaselineConfig {
        &self.config
    }

    /// Turns the CUSUM on (with this allowance) or off, as the brain is configured now rather
    /// than as it was when the baseline was learned; a change starts its evidence afresh.
    pub fn set_change_allowance(&mut self, allowance: Option<f64>) {
        if self.config.change_allowance != allowance {
            self.config.change_allowance = allowance;
            self.up = ChangePoint::default();
            self.down = ChangePoint::default();
        }
    }

    /// Heap bytes held (the window); add `size_of::<RobustBaseline>()` for the whole.
    pub fn heap_bytes(&self) -> usize {
        self.window.capacity() * size_of::<f32>()
    }

    /// Whether it has seen enough to score.
    pub fn is_warm(&self) -> bool {
        self.window.len() >= self.config.warmup
    }

    /// Scores `x` and, when it looks normal and `learn` is set, learns it. Non-finite values
    /// are ignored and return `None`, as does any value during warm-up.
    pub fn observe(&mut self, x: f64, learn: bool) -> Option<Score> {
        let score = self.judge(x);
        if learn && !score.is_some_and(|s| s.anomalous) {
            self.learn(x);
        }
        score
    }

    /// Scores `x` and adds it to the CUSUMs' evidence, without learning it; `None` (and no
    /// change) for a non-finite value or during warm-up.
    pub fn judge(&mut self, x: f64) -> Option<Score> {
        let (score, up, down) = self.assess(x)?;
        (self.up, self.down) = (up, down);
        Some(score)
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
        self.window.push_back(x as f32);
    }

    /// Scores `x` without learning it or adding it to the CUSUMs' evidence.
    pub fn score(&self, x: f64) -> Option<Score> {
        self.assess(x).map(|(score, ..)| score)
    }

    /// The spread at which the [`TAIL_RANK`]th most extreme value (in the directions that
    /// matter) of the window but its [`TAIL_RECENT`] newest is where a normal sample of that
    /// size would put it; 0 while the window is too short to have a tail.
    fn tail_spread(&self, level: f64) -> f64 {
        let n = self.window.len().saturating_sub(TAIL_RECENT);
        if n < 4 * TAIL_RANK {
            return 0.0;
        }
        let mut older: Vec<f64> = self.window.iter().take(n).map(|&v| f64::from(v)).collect();
        // The plotting position of the k-th largest of n: 1 − k/(n + 1).
        let quantile = self
            .standard
            .inverse_cdf(1.0 - TAIL_RANK as f64 / (n as f64 + 1.0));
        // Selections rather than a sort, and only of the tails that matter: this runs for
        // every value scored.
        let mut nth = |k: usize| *older.select_nth_unstable_by(k, f64::total_cmp).1;
        let departure = match self.config.direction {
            Direction::Up => nth(n - TAIL_RANK) - level,
            Direction::Down => level - nth(TAIL_RANK - 1),
            Direction::Both => (nth(n - TAIL_RANK) - level).max(level - nth(TAIL_RANK - 1)),
        };
        (departure / quantile).max(0.0)
    }

    /// The score of `x`, and the CUSUMs as they would be after it.
    fn assess(&self, x: f64) -> Option<(Score, ChangePoint, ChangePoint)> {
        if !self.is_warm() || !x.is_finite() {
            return None;
        }
        let mut sorted: Vec<f64> = self.window.iter().map(|&v| f64::from(v)).collect();
        let level = median(&mut sorted);
        let mut deviations: Vec<f64> = sorted.iter().map(|v| (v - level).abs()).collect();
        let spread = (MAD_TO_SIGMA * median(&mut deviations))
            .max(self.config.min_relative_spread * level.abs())
            .max(f64::MIN_POSITIVE);
        // The CUSUM sums the core's z-scores: a shift's first values, learned as normal,
        // would otherwise widen the tail and hide the shift they belong to.
        let core_z = (x - level) / spread;
        let z = (x - level) / spread.max(self.tail_spread(level));
        let point = match self.config.direction {
            Direction::Up => self.standard.cdf(z),
            Direction::Down => self.standard.cdf(-z),
            Direction::Both => 1.0 - 2.0 * self.standard.cdf(-z.abs()),
        };
        let magnitude = level.abs().max(f64::MIN_POSITIVE);
        let threshold = self.config.threshold;
        let matters =
            |departure: f64| departure.abs() / magnitude >= self.config.min_relative_effect;
        let anomalous = point >= threshold && matters(x - level);
        let (mut up, mut down) = (self.up, self.down);
        let mut change = 0.0f64;
        let mut shifted = false;
        if let Some(k) = self.config.change_allowance.filter(|k| k.is_finite()) {
            if self.config.direction != Direction::Down {
                let c = up.observe(core_z, x - level, k, threshold);
                change = change.max(c.score);
                shifted |= c.score >= threshold && matters(c.shift);
            }
            if self.config.direction != Direction::Up {
                let c = down.observe(-core_z, level - x, k, threshold);
                change = change.max(c.score);
                shifted |= c.score >= threshold && matters(c.shift);
            }
        }
        let score = Score {
            score: point.max(change),
            z,
            change,
            level,
            anomalous: anomalous || shifted,
        };
        Some((score, up, down))
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
    fn a_shift_no_single_value_shows_is_found_by_the_cusum_within_eight_steps() {
        // Noise of 25 % around 100; from step 2000 the level is 60 % higher: each value is
        // only about 2.4 spreads up, below the 3.1 a single value needs.
        let noise = super::super::stats::standard_normals(3, 2200);
        let mut b = RobustBaseline::new(BaselineConfig {
            change_allowance: Some(0.5),
            ..BaselineConfig::default()
        });
        let mut point_only = RobustBaseline::new(BaselineConfig::default());
        // Learned without a CUSUM, given one before the shift (a brain restarted with
        // `detection.changePoint` on a journal that had none).
        let mut late = RobustBaseline::new(BaselineConfig::default());
        let (mut false_alarms, mut point_false) = (0, 0);
        for &e in &noise[..2000] {
            let x = 100.0 + 25.0 * e;
            false_alarms += usize::from(b.observe(x, true).is_some_and(|s| s.anomalous));
            point_false += usize::from(point_only.observe(x, true).is_some_and(|s| s.anomalous));
            late.observe(x, true);
        }
        late.set_change_allowance(Some(0.5));
        // Single values beyond 3.1 spreads come once in a thousand; the CUSUM adds none.
        assert!(
            false_alarms <= point_false,
            "{false_alarms} alarms on the noise, {point_false} from single values"
        );
        let shifted = |i: usize| 160.0 + 25.0 * noise[i];
        let found = (2000..2200)
            .find(|&i| b.observe(shifted(i), true).is_some_and(|s| s.anomalous))
            .expect("the shift is found");
        assert!(found - 2000 <= 8, "found {} steps in", found - 2000);
        let late_found = (2000..2200)
            .find(|&i| late.observe(shifted(i), true).is_some_and(|s| s.anomalous))
            .expect("the shift is found once the CUSUM is on");
        assert_eq!(late_found, found);
        let point_found = (2000..2010)
            .filter(|&i| {
                point_only
                    .observe(shifted(i), true)
                    .is_some_and(|s| s.anomalous)
            })
            .count();
        assert!(
            point_found <= 2,
            "{point_found} of ten values alone stand out"
        );
        let s = b.score(shifted(2199)).expect("warm");
        assert!(s.change >= 0.999 && s.score >= s.change, "{s:?}");
    }

    #[test]
    fn jumps_the_series_makes_as_a_matter_of_course_are_not_outliers() {
        // A p99 read off histogram buckets: just under the 0.25 s bound, and one step in ten
        // a few more requests cross it and the interpolation lands at 0.30–0.34 s. The
        // median and MAD see only the lower mode (a spread of 0.012, the floor).
        let quantised = |i: usize| {
            if i % 10 == 7 {
                0.30 + 0.01 * ((i / 10) % 5) as f64
            } else {
                0.244 + 0.002 * ((i as f64) * 1.7).sin()
            }
        };
        let mut b = RobustBaseline::new(BaselineConfig::default());
        for i in 0..240 {
            let s = b.observe(quantised(i), true);
            assert!(!s.is_some_and(|s| s.anomalous), "step {i}: {s:?}");
        }
        // 1.5 times the level, 9 % above the highest jump of the last half hour.
        let jump = b.score(0.37).expect("warm");
        assert!(!jump.anomalous && jump.z < 3.0, "{jump:?}");
        // Twice the level is far beyond anything the window has done.
        let twice = b.score(0.49).expect("warm");
        assert!(twice.anomalous, "{twice:?}");
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
