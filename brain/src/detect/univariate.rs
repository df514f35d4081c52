//! One number per step, judged with no other context: the detector the NAB evaluation runs,
//! and a cheap first opinion on any gauge.
//!
//! It combines [`Novelty`] (how much of the current value, the time spent at its level and
//! the way it got there has never been seen, weighed by how rarely this series shows anything
//! new) with a refractory gate (a surprise counts only when it is the largest of the last
//! `refractory` steps, so an incident raises one alarm, and another only if it worsens). The
//! score is `1 − e^(−surprise)`: 0 for nothing new, towards 1 for news from a series that
//! seldom has any.
//!
//! Per value: a handful of hash probes into a one-kilobyte context memory, O(1) time, about
//! 1.3 KiB per series in all. Non-finite values, samples out of time order and the first
//! `warmup` values score 0; non-finite and out-of-order ones never reach the state, and a gap
//! in time resets the stay being measured rather than counting as one long stay.

use homeostat_core::Timestamp;

use super::novelty::{Novelty, NoveltyConfig};
use super::refractory::Refractory;

/// Tunables. The defaults are deliberately generic: no setting depends on a series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UnivariateConfig {
    /// Values learned before any score is given.
    pub warmup: u32,
    /// A surprise must exceed every surprise of this many previous steps to be reported.
    pub refractory: u32,
    /// A gap longer than this many typical sampling intervals (see
    /// [`Univariate::observe_at`]) breaks the stay being measured.
    pub gap_factor: f64,
    /// The context novelty model.
    pub novelty: NoveltyConfig,
}

impl Default for UnivariateConfig {
    fn default() -> Self {
        UnivariateConfig {
            warmup: 200,
            refractory: 1000,
            gap_factor: 5.0,
            novelty: NoveltyConfig::default(),
        }
    }
}

/// The univariate detector's state for one series.
#[derive(Clone, Debug)]
pub struct Univariate {
    config: UnivariateConfig,
    seen: u32,
    novelty: Novelty,
    gate: Refractory,
    /// Time of the last accepted sample, and the typical interval between samples (ns).
    last_time: Option<Timestamp>,
    interval: Option<f64>,
}

impl Univariate {
    /// A detector that has seen nothing.
    pub fn new(config: UnivariateConfig) -> Self {
        Univariate {
            config,
            seen: 0,
            novelty: Novelty::new(config.novelty),
            gate: Refractory::new(config.refractory),
            last_time: None,
            interval: None,
        }
    }

    /// Heap bytes held (the context memory); add `size_of::<Univariate>()` for the whole.
    pub fn heap_bytes(&self) -> usize {
        self.novelty.heap_bytes()
    }

    /// Scores the next value of an evenly sampled series in [0, 1] and learns it; 0 during
    /// warm-up and for a non-finite value, which is not learned.
    pub fn observe(&mut self, x: f64) -> f64 {
        if !x.is_finite() {
            return 0.0;
        }
        self.seen = self.seen.saturating_add(1);
        let surprise = self.novelty.observe(x);
        let surprise = if self.seen > self.config.warmup && surprise.is_finite() {
            surprise
        } else {
            0.0
        };
        if self.gate.admit(surprise) {
            (1.0 - (-surprise).exp()).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// Like [`Univariate::observe`] for a sample taken at `time`: a sample not after the last
    /// accepted one scores 0 and is ignored, and one after a gap of more than `gap_factor`
    /// typical intervals restarts the measuring of stays.
    pub fn observe_at(&mut self, time: Timestamp, x: f64) -> f64 {
        if !x.is_finite() {
            return 0.0;
        }
        if let Some(last) = self.last_time {
            if time <= last {
                return 0.0;
            }
            let dt = time.as_nanos().saturating_sub(last.as_nanos()) as f64;
            match self.interval {
                Some(typical) if dt > self.config.gap_factor * typical => self.novelty.break_runs(),
                // The typical interval follows the recent ones, gaps excluded.
                Some(typical) => self.interval = Some(typical + 0.05 * (dt - typical)),
                None => self.interval = Some(dt),
            }
        }
        self.last_time = Some(time);
        self.observe(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic noise in [−1, 1).
    fn noise(i: u32) -> f64 {
        let h = u64::from(i)
            .wrapping_add(1)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(23)
            .wrapping_mul(0xbf58_476d_1ce4_e5b9);
        (h >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }

    /// A noisy daily-like cycle: 100 ± 10, period 96, plus noise of ±3.
    fn normal(i: u32) -> f64 {
        100.0 + 10.0 * (f64::from(i) * std::f64::consts::TAU / 96.0).sin() + 3.0 * noise(i)
    }

    fn run(values: impl IntoIterator<Item = f64>) -> (Univariate, Vec<f64>) {
        let mut d = Univariate::new(UnivariateConfig::default());
        let scores = values.into_iter().map(|x| d.observe(x)).collect();
        (d, scores)
    }

    /// The highest score in `from..to` and where it is.
    fn peak(scores: &[f64], from: usize, to: usize) -> (f64, usize) {
        scores[from..to]
            .iter()
            .enumerate()
            .fold(
                (0.0, from),
                |(m, at), (i, &s)| {
                    if s > m { (s, from + i) } else { (m, at) }
                },
            )
    }

    #[test]
    fn silent_in_warm_up_and_nearly_so_on_familiar_noise_after_learning() {
        let (_, scores) = run((0..6000).map(normal));
        assert!(scores[..200].iter().all(|&s| s == 0.0));
        assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
        // Bounded noise still reaches a new extreme now and then (here once, at a trough);
        // that may raise a weak alarm, never a strong one.
        let (late, at) = peak(&scores, 1000, 6000);
        assert!(late < 0.8, "stable noise alarmed at {at}: {late}");
        let weak = scores[1000..].iter().filter(|&&s| s >= 0.5).count();
        assert!(weak <= 1, "{weak} alarms on stable noise");
    }

    #[test]
    fn a_spike_is_detected_at_once_and_alarms_once() {
        let mut values: Vec<f64> = (0..4000).map(normal).collect();
        values[3000] = 180.0;
        let (_, scores) = run(values);
        let before = peak(&scores, 1000, 3000).0;
        assert!(scores[3000] > 0.95, "{}", scores[3000]);
        assert!(before < 0.8, "{before}");
        let (after, at) = peak(&scores, 3001, 4000);
        assert!(after < 0.5, "the spike alarmed again at {at}: {after}");
    }

    #[test]
    fn a_level_shift_is_detected_at_once_and_alarms_once() {
        let values = (0..4000).map(|i| normal(i) + if i >= 3000 { 40.0 } else { 0.0 });
        let (_, scores) = run(values);
        assert!(scores[3000] > 0.95, "{}", scores[3000]);
        // The new level is news for a while, but it is one incident: one alarm.
        let (later, at) = peak(&scores, 3001, 4000);
        assert!(later < 0.5, "alarmed again at {at}: {later}");
    }

    #[test]
    fn a_daily_peak_that_does_not_come_is_detected() {
        // 30 steps high, 66 low; once the high phase is skipped.
        let square = |i: u32| {
            let base = if i % 96 < 30 { 80.0 } else { 20.0 };
            base + noise(i)
        };
        let values = (0..4000).map(|i| {
            if (2880..2976).contains(&i) {
                20.0 + noise(i)
            } else {
                square(i)
            }
        });
        let (_, scores) = run(values);
        let before = peak(&scores, 1500, 2880).0;
        let (missing, at) = peak(&scores, 2880, 3000);
        assert!(
            missing > 0.3 && missing > 2.0 * before,
            "{missing} at {at}, before {before}"
        );
    }

    #[test]
    fn non_finite_values_never_reach_the_state() {
        let clean: Vec<f64> = (0..3000).map(normal).collect();
        let mut dirty = Vec::new();
        for (i, &x) in clean.iter().enumerate() {
            dirty.push(x);
            if i % 97 == 0 {
                dirty.extend([f64::NAN, f64::INFINITY, f64::NEG_INFINITY]);
            }
        }
        let (_, clean_scores) = run(clean);
        let (_, dirty_scores) = run(dirty.iter().copied());
        let kept: Vec<f64> = dirty
            .iter()
            .zip(&dirty_scores)
            .filter(|(x, _)| x.is_finite())
            .map(|(_, &s)| s)
            .collect();
        assert_eq!(kept, clean_scores);
        assert!(
            dirty
                .iter()
                .zip(&dirty_scores)
                .all(|(x, &s)| x.is_finite() || s == 0.0)
        );
    }

    #[test]
    fn replaying_a_series_replays_its_scores() {
        let values: Vec<f64> = (0..3000)
            .map(|i| normal(i) * if i % 500 == 0 { 3.0 } else { 1.0 })
            .collect();
        let (_, a) = run(values.iter().copied());
        let (_, b) = run(values.iter().copied());
        assert_eq!(a, b);
        assert!(a.iter().any(|&s| s > 0.0));
    }

    #[test]
    fn out_of_order_samples_are_ignored_and_a_gap_is_not_a_long_stay() {
        let step = 15_000_000_000i64;
        let at = |i: i64| Timestamp::from_nanos(1_700_000_000_000_000_000 + i * step);
        let mut d = Univariate::new(UnivariateConfig::default());
        let mut reference = Univariate::new(UnivariateConfig::default());
        for i in 0..2000 {
            let x = normal(i as u32);
            assert_eq!(d.observe_at(at(i), x), reference.observe(x));
            // A late duplicate of an earlier sample changes nothing.
            if i % 100 == 50 {
                assert_eq!(d.observe_at(at(i - 3), 500.0), 0.0);
            }
        }
        // A square wave (40 steps at each level) is learned; then the series stops 30 steps
        // into a phase for a long time and resumes with the 40 steps of a whole phase. Across
        // the gap that would be a stay of 70, longer than any seen; measured from the gap it
        // is an ordinary one.
        let square = |i: i64| if (i / 40) % 2 == 0 { 10.0 } else { 30.0 };
        let mut timed = Univariate::new(UnivariateConfig::default());
        let mut untimed = Univariate::new(UnivariateConfig::default());
        for i in 0..3990 {
            timed.observe_at(at(i), square(i));
            untimed.observe(square(i));
        }
        let (mut with_gap, mut without) = (0.0f64, 0.0f64);
        for k in 0..40 {
            with_gap = with_gap.max(timed.observe_at(at(20_000 + k), 30.0));
            without = without.max(untimed.observe(30.0));
        }
        assert_eq!(with_gap, 0.0);
        assert!(without > 0.0, "the untimed detector should see a long stay");
    }
}
