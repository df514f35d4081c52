//! A steady climb: the Mann–Kendall test for a monotonic trend, with the Theil–Sen slope as
//! its size, over a sliding window. It finds a memory leak long before the limit is hit, and,
//! being rank-based, shrugs off the noise and the odd spike that fool a straight-line fit.
//! Beside it, the onset test ([`super::onset`]) calls a climb from its first two steps when
//! they are far larger than the series' usual change; the rank test confirms it later.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use super::onset::Onset;
use super::stats::median;

/// Tunables; the defaults suit 15-second steps.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrendConfig {
    /// Values in the window (40 × 15 s = 10 min).
    pub window: usize,
    /// Score (one minus the one-sided p-value) at or above which a rise is significant.
    pub threshold: f64,
    /// The rise over the window, as a fraction of its median, needed to matter.
    pub min_relative_rise: f64,
}

impl Default for TrendConfig {
    fn default() -> Self {
        TrendConfig {
            window: 40,
            threshold: 0.999,
            min_relative_rise: 0.05,
        }
    }
}

/// A window's trend.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrendScore {
    /// In [0, 1]: one minus the p-value of a rise this consistent under no trend (the rank
    /// test's), or of a climb's onset this far beyond the usual change when the onset test
    /// calls one and says more.
    pub score: f64,
    /// Theil–Sen slope, units per step: of the whole window, or of its newest quarter when
    /// that is steeper (a climb that has just begun); while only the onset test calls the
    /// climb, its average rise per step.
    pub slope: f64,
    /// The window's median.
    pub level: f64,
    /// Whether the rise is significant and large enough.
    pub rising: bool,
}

/// The recent values of one series.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Trend {
    config: TrendConfig,
    values: VecDeque<f64>,
    /// The onset test's state; records written before it read as a test that starts afresh.
    #[serde(default)]
    onset: Onset,
    #[serde(skip, default = "super::stats::standard_normal")]
    standard: Normal,
}

impl Trend {
    /// An empty window.
    pub fn new(config: TrendConfig) -> Self {
        Trend {
            config,
            values: VecDeque::with_capacity(config.window),
            onset: Onset::default(),
            standard: Normal::standard(),
        }
    }

    /// Adds `x` and judges the window once it is full, or sooner when the onset test calls a
    /// climb (which it does from the 43rd value, so only in a window longer than that);
    /// non-finite values are ignored. Values are taken as one a step: a gap makes one
    /// difference span several steps, which alone is never an onset (that takes two steps).
    pub fn observe(&mut self, x: f64) -> Option<TrendScore> {
        if !x.is_finite() {
            return None;
        }
        if self.values.len() == self.config.window {
            self.values.pop_front();
        }
        self.values.push_back(x);
        let values = self.values.make_contiguous();
        let onset = self.onset.observe(values, &self.standard);
        if self.values.len() < self.config.window {
            return onset.map(|o| {
                let mut sorted = self.values.iter().copied().collect::<Vec<_>>();
                TrendScore {
                    score: o.score,
                    slope: o.rate,
                    level: median(&mut sorted),
                    rising: true,
                }
            });
        }
        let ranked = self.score();
        Some(match onset {
            Some(o) if !ranked.rising => TrendScore {
                score: ranked.score.max(o.score),
                slope: o.rate,
                rising: true,
                ..ranked
            },
            _ => ranked,
        })
    }

    /// Forgets the window: after a restart of what it measures, the old climb is history.
    pub fn reset(&mut self) {
        self.values.clear();
        self.onset.reset();
    }

    fn score(&self) -> TrendScore {
        let v: Vec<f64> = self.values.iter().copied().collect();
        let n = v.len();
        let mut s = 0i64;
        let mut slopes = Vec::with_capacity(n * (n - 1) / 2);
        for i in 0..n {
            for j in i + 1..n {
                let d = v[j] - v[i];
                s += i64::from(d > 0.0) - i64::from(d < 0.0);
                slopes.push(d / (j - i) as f64);
            }
        }
        let nf = n as f64;
        let variance = nf * (nf - 1.0) * (2.0 * nf + 5.0) / 18.0;
        // Continuity correction, one-sided: only rises matter.
        let z = if s > 0 {
            (s as f64 - 1.0) / variance.sqrt()
        } else {
            0.0
        };
        let score = self.standard.cdf(z);
        // A climb that began a few steps ago has moved only the newest values: most pairs of
        // the window are still flat, so their median slope reads zero until half the window
        // has climbed. The newest quarter's own slope sees it as soon as the test is sure.
        let recent = n - (n / 4).max(2);
        let mut recent_slopes = Vec::with_capacity((n - recent) * (n - recent - 1) / 2);
        for i in recent..n {
            for j in i + 1..n {
                recent_slopes.push((v[j] - v[i]) / (j - i) as f64);
            }
        }
        let slope = median(&mut slopes).max(median(&mut recent_slopes));
        let mut sorted = v;
        let level = median(&mut sorted);
        let rise = slope * (nf - 1.0) / level.abs().max(f64::MIN_POSITIVE);
        TrendScore {
            score,
            slope,
            level,
            rising: score >= self.config.threshold && rise >= self.config.min_relative_rise,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wobble(i: usize) -> f64 {
        3.0 * ((i as f64) * 1.3).sin()
    }

    #[test]
    fn a_leak_is_rising_noise_and_a_plateau_are_not() {
        let mut t = Trend::new(TrendConfig::default());
        for i in 0..39 {
            assert_eq!(t.observe(200.0 + wobble(i)), None, "not judged until full");
        }
        let flat = t.observe(200.0).expect("full");
        assert!(!flat.rising, "{flat:?}");
        let mut leak = Trend::new(TrendConfig::default());
        let mut last = None;
        for i in 0..40 {
            // 1.5 MiB a step on 200 MiB: +30 % in ten minutes.
            last = leak.observe(200.0 + 1.5 * i as f64 + wobble(i));
        }
        let s = last.expect("full");
        assert!(s.rising && s.score > 0.999, "{s:?}");
        assert!((s.slope - 1.5).abs() < 0.3, "{s:?}");
    }

    #[test]
    fn a_climb_from_a_flat_line_is_called_at_its_second_step_and_confirmed_at_its_eighth() {
        let mut t = Trend::new(TrendConfig::default());
        for _ in 0..45 {
            t.observe(128.0);
        }
        // 2 MiB a step (8 MiB a minute) from 128 MiB: its onset at the second step, with the
        // climb's own rate; Mann–Kendall is sure after 8 steps.
        let (scores, ranked): (Vec<TrendScore>, Vec<TrendScore>) = (1..=20)
            .map(|k| {
                let s = t.observe(128.0 + 2.0 * k as f64).expect("full");
                (s, t.score())
            })
            .unzip();
        let called = scores.iter().position(|s| s.rising).expect("found") + 1;
        assert_eq!(called, 2, "{scores:?}");
        assert!((scores[1].slope - 2.0).abs() < 1e-9, "{:?}", scores[1]);
        assert!(
            scores[1..].iter().all(|s| s.rising),
            "called until confirmed"
        );
        let confirmed = ranked.iter().position(|s| s.rising).expect("ranked") + 1;
        assert_eq!(confirmed, 8, "the rank test alone: {ranked:?}");
        let s = t.observe(128.0 + 2.0 * 21.0).expect("full");
        assert!((s.slope - 2.0).abs() < 1e-9, "the climb's own rate: {s:?}");
    }

    /// White noise of 0.25 % around 128.
    fn wander(seed: u64, n: usize) -> Vec<f64> {
        crate::detect::stats::standard_normals(seed, n)
            .into_iter()
            .map(|z| 128.0 * (1.0 + 0.0025 * z))
            .collect()
    }

    #[test]
    fn a_leak_slower_than_the_noise_is_left_to_mann_kendall_which_finds_it_later() {
        // 0.6 MiB a step on a wander whose steps spread 0.45 MiB: 1.3 spreads, an onset the
        // test cannot tell from noise, but 36 MiB an hour, which matters.
        let noise = wander(7, 200);
        let mut t = Trend::new(TrendConfig::default());
        for x in &noise[..100] {
            assert!(t.observe(*x).is_none_or(|s| !s.rising), "noise");
        }
        let scores: Vec<TrendScore> = (1..=40)
            .map(|k| t.observe(noise[99 + k] + 0.6 * k as f64).expect("full"))
            .collect();
        let found = scores.iter().position(|s| s.rising).expect("found") + 1;
        assert!((5..=20).contains(&found), "{found}: {scores:?}");
        let s = scores[found - 1];
        assert!(s.score >= 0.999, "by the rank test: {s:?}");
    }

    #[test]
    fn no_onset_before_the_window_is_known_and_none_after_a_reset() {
        let noise = wander(11, 200);
        let mut t = Trend::new(TrendConfig::default());
        // A steep climb from the 25th value: not judged before the window is full.
        for (i, x) in noise[..39].iter().enumerate() {
            let climbed = if i >= 25 { 3.0 * (i - 24) as f64 } else { 0.0 };
            assert_eq!(t.observe(x + climbed), None, "warming up: {i}");
        }
        t.reset();
        for (i, x) in noise[60..99].iter().enumerate() {
            let climbed = if i >= 30 { 3.0 * (i - 29) as f64 } else { 0.0 };
            assert_eq!(t.observe(x + climbed), None, "warming up again: {i}");
        }
    }

    #[test]
    fn a_record_from_before_the_onset_test_reads_and_judges() {
        let mut t = Trend::new(TrendConfig::default());
        let noise = wander(3, 100);
        for x in &noise[..50] {
            t.observe(*x);
        }
        let mut json = serde_json::to_value(&t).expect("serialises");
        json.as_object_mut().expect("object").remove("onset");
        let mut old: Trend = serde_json::from_value(json).expect("an old record reads");
        // It warms the onset test up again, then calls a climb of 4 MiB a step in two.
        for x in &noise[50..90] {
            assert!(old.observe(*x).is_none_or(|s| !s.rising));
        }
        let first = old.observe(noise[90] + 4.0).expect("full");
        let second = old.observe(noise[91] + 8.0).expect("full");
        assert!(second.rising, "{first:?} {second:?}");
    }

    #[test]
    fn a_significant_but_small_drift_does_not_matter() {
        let mut t = Trend::new(TrendConfig::default());
        let mut last = None;
        for i in 0..40 {
            last = t.observe(200.0 + 0.2 * i as f64);
        }
        let s = last.expect("full");
        assert!(s.score > 0.999 && !s.rising, "{s:?}");
        t.reset();
        assert_eq!(t.observe(f64::NAN), None);
        assert_eq!(t.observe(1.0), None, "empty again after reset");
    }
}
