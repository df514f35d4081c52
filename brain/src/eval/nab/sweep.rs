//! The threshold that maximises a profile's raw score over a whole corpus, found by sorting
//! every scored point once and lowering the threshold one distinct score at a time, updating
//! the score incrementally: O(n log n) for the sort, O(n) per profile.

use super::{CostProfile, PointRole, SeriesLabels};

/// One profile's best threshold over a corpus and what it scores.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProfileResult {
    /// The profile.
    pub profile: CostProfile,
    /// The lowest score that counts as a detection; `f64::INFINITY` when firing never pays.
    /// Among thresholds with equal raw scores the highest is chosen, as NAB does.
    pub threshold: f64,
    /// The corpus's raw score at that threshold.
    pub raw: f64,
    /// The raw score of a detector that never fires: every window missed.
    pub null: f64,
    /// The raw score of a perfect one: every window hit on its first point, nothing else.
    pub perfect: f64,
}

impl ProfileResult {
    /// 100 × (raw − null) / (perfect − null): 0 for never firing, 100 for perfect.
    pub fn normalised(&self) -> f64 {
        let span = self.perfect - self.null;
        if span > 0.0 {
            100.0 * (self.raw - self.null) / span
        } else {
            0.0
        }
    }
}

/// A scored point outside probation: what a detection there would do.
#[derive(Clone, Copy, Debug)]
struct Hit {
    score: f64,
    /// Corpus-wide window number, or `u32::MAX` when outside every window.
    window: u32,
    /// Reward (inside) or penalty (outside), unweighted.
    value: f64,
}

/// A corpus's scored points, sorted by descending score, ready to be swept per profile.
#[derive(Clone, Debug)]
pub struct Sweep {
    hits: Vec<Hit>,
    windows: usize,
}

impl Sweep {
    /// Prepares a corpus given as (labels, scores) per series. Non-finite scores never count
    /// as detections.
    pub fn new<'a>(series: impl IntoIterator<Item = (&'a SeriesLabels, &'a [f64])>) -> Sweep {
        let mut hits = Vec::new();
        let mut windows = 0usize;
        for (labels, scores) in series {
            for (role, &score) in labels.roles.iter().zip(scores) {
                if !score.is_finite() {
                    continue;
                }
                match *role {
                    PointRole::Probation => {}
                    PointRole::InWindow { window, reward } => hits.push(Hit {
                        score,
                        window: u32::try_from(windows + window).unwrap_or(u32::MAX - 1),
                        value: reward,
                    }),
                    PointRole::Outside { penalty } => hits.push(Hit {
                        score,
                        window: u32::MAX,
                        value: penalty,
                    }),
                }
            }
            windows += labels.windows;
        }
        hits.sort_unstable_by(|a, b| b.score.total_cmp(&a.score));
        Sweep { hits, windows }
    }

    /// Windows scored in the corpus.
    pub fn windows(&self) -> usize {
        self.windows
    }

    /// The best threshold for `profile` and its scores.
    pub fn best(&self, profile: CostProfile) -> ProfileResult {
        let null = -(self.windows as f64) * profile.fn_;
        let perfect = self.windows as f64 * profile.tp;
        let mut best_reward: Vec<f64> = vec![f64::NAN; self.windows];
        let mut score = null;
        let mut best = (f64::INFINITY, null);
        let mut i = 0;
        while i < self.hits.len() {
            let threshold = self.hits[i].score;
            while i < self.hits.len() && self.hits[i].score == threshold {
                let hit = self.hits[i];
                if hit.window == u32::MAX {
                    score += hit.value * profile.fp;
                } else if let Some(slot) = best_reward.get_mut(hit.window as usize) {
                    if slot.is_nan() {
                        score += profile.fn_ + hit.value * profile.tp;
                        *slot = hit.value;
                    } else if hit.value > *slot {
                        score += (hit.value - *slot) * profile.tp;
                        *slot = hit.value;
                    }
                }
                i += 1;
            }
            if score > best.1 {
                best = (threshold, score);
            }
        }
        ProfileResult {
            profile,
            threshold: best.0,
            raw: best.1,
            null,
            perfect,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::score_series;
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// 20 points, probation 3, window over points 10..=13.
    fn labels() -> SeriesLabels {
        let ts: Vec<i64> = (0..20).collect();
        SeriesLabels::new(&ts, &[(10, 13)])
    }

    #[test]
    fn picks_the_threshold_that_catches_the_window_early_without_false_alarms() {
        let labels = labels();
        let mut scores = vec![0.1; 20];
        scores[11] = 0.9; // early in the window
        scores[5] = 0.8; // a false alarm before any window
        scores[12] = 0.7;
        let r = Sweep::new([(&labels, scores.as_slice())]).best(CostProfile::STANDARD);
        assert_eq!(r.threshold, 0.9);
        assert!(close(r.raw, 1.875f64.tanh() / 2.5f64.tanh()));
        assert_eq!((r.null, r.perfect), (-1.0, 1.0));
        assert!(close(r.normalised(), 100.0 * (r.raw + 1.0) / 2.0));
    }

    #[test]
    fn never_firing_wins_when_every_detection_is_a_false_alarm() {
        let ts: Vec<i64> = (0..20).collect();
        let quiet = SeriesLabels::new(&ts, &[]);
        let labels = labels();
        let scores = vec![0.5; 20];
        let miss = vec![0.0; 20];
        // The window's series scores nothing in its window; the other one alarms everywhere.
        let mut only_outside = miss.clone();
        only_outside[4] = 0.9;
        let r = Sweep::new([
            (&labels, only_outside.as_slice()),
            (&quiet, scores.as_slice()),
        ])
        .best(CostProfile::STANDARD);
        assert_eq!(r.threshold, f64::INFINITY);
        assert_eq!(r.raw, -1.0);
        assert_eq!(r.normalised(), 0.0);
    }

    #[test]
    fn ties_are_swept_together_and_the_higher_threshold_wins_a_tie() {
        let labels = labels();
        // Points 10 and 4 tie at 0.9: catching the window at its start (+2 over the miss)
        // also fires the false alarm (−0.11); they cannot be separated.
        let mut scores = vec![0.0; 20];
        scores[10] = 0.9;
        scores[4] = 0.9;
        let r = Sweep::new([(&labels, scores.as_slice())]).best(CostProfile::STANDARD);
        assert_eq!(r.threshold, 0.9);
        assert!(close(r.raw, 1.0 - 0.11));
        // Lowering the threshold to 0.5 adds only a later detection in the same window,
        // which changes nothing: the tie goes to the higher threshold.
        let mut tie = vec![0.0; 20];
        tie[10] = 1.0;
        tie[12] = 0.5;
        let r = Sweep::new([(&labels, tie.as_slice())]).best(CostProfile::STANDARD);
        assert_eq!(r.threshold, 1.0);
    }

    #[test]
    fn the_sweep_agrees_with_direct_scoring_at_every_threshold() {
        // A pseudo-random corpus of three series; at each distinct score the sweep's running
        // score must equal the direct one, so its maximum is the best direct score.
        let ts: Vec<i64> = (0..200).collect();
        let a = SeriesLabels::new(&ts, &[(40, 60), (120, 121), (150, 170)]);
        let b = SeriesLabels::new(&ts, &[]);
        let c = SeriesLabels::new(&ts, &[(10, 20), (190, 199)]);
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % 50) as f64 / 50.0
        };
        let sa: Vec<f64> = (0..200).map(|_| next()).collect();
        let sb: Vec<f64> = (0..200).map(|_| next()).collect();
        let sc: Vec<f64> = (0..200).map(|_| next()).collect();
        let corpus = [
            (&a, sa.as_slice()),
            (&b, sb.as_slice()),
            (&c, sc.as_slice()),
        ];
        for profile in CostProfile::ALL {
            let r = Sweep::new(corpus).best(profile);
            let direct = |t: f64| -> f64 {
                corpus
                    .iter()
                    .map(|(l, s)| score_series(l, s, t, &profile).raw)
                    .sum()
            };
            assert!(close(r.raw, direct(r.threshold)), "{profile:?}");
            let mut thresholds: Vec<f64> = sa.iter().chain(&sb).chain(&sc).copied().collect();
            thresholds.sort_by(f64::total_cmp);
            thresholds.dedup();
            for t in thresholds {
                assert!(
                    direct(t) <= r.raw + 1e-9,
                    "{} at {t} beats {}",
                    direct(t),
                    r.raw
                );
            }
            // Probation is 30 points: c's first window lies inside it and is not scored.
            assert_eq!(r.null, -4.0 * profile.fn_);
        }
    }
}
