//! One series scored at one threshold: the direct definition, which the sweep must agree with.

use super::{CostProfile, PointRole, SeriesLabels};

/// A series' NAB score at one threshold.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SeriesScore {
    /// Rewards minus penalties, weighted by the profile.
    pub raw: f64,
    /// Windows with a detection.
    pub hit: usize,
    /// Windows without one.
    pub missed: usize,
    /// Detections outside every window (after probation).
    pub false_positives: usize,
}

/// Scores `scores` (one per point) against `labels`: a point is a detection when its score is
/// finite and at least `threshold`; each window earns its earliest detection's reward or costs a miss,
/// every detection outside a window costs its penalty.
pub fn score_series(
    labels: &SeriesLabels,
    scores: &[f64],
    threshold: f64,
    profile: &CostProfile,
) -> SeriesScore {
    let mut best: Vec<Option<f64>> = vec![None; labels.windows];
    let mut fp_sum = 0.0;
    let mut false_positives = 0;
    for (role, &score) in labels.roles.iter().zip(scores) {
        if !score.is_finite() || score < threshold {
            continue;
        }
        match *role {
            PointRole::Probation => {}
            PointRole::InWindow { window, reward } => {
                let slot = &mut best[window];
                if slot.is_none() {
                    *slot = Some(reward);
                }
            }
            PointRole::Outside { penalty } => {
                fp_sum += penalty;
                false_positives += 1;
            }
        }
    }
    let hit = best.iter().flatten().count();
    let rewards: f64 = best.iter().flatten().sum();
    SeriesScore {
        raw: rewards * profile.tp - (labels.windows - hit) as f64 * profile.fn_
            + fp_sum * profile.fp,
        hit,
        missed: labels.windows - hit,
        false_positives,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STD: CostProfile = CostProfile::STANDARD;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// 20 points at t = 0..20, probation 3, one window over points 10..=13.
    fn labels() -> SeriesLabels {
        let ts: Vec<i64> = (0..20).collect();
        SeriesLabels::new(&ts, &[(10, 13)])
    }

    fn with_detections(at: &[usize]) -> Vec<f64> {
        let mut s = vec![0.0; 20];
        for &i in at {
            s[i] = 1.0;
        }
        s
    }

    #[test]
    fn no_detection_costs_a_miss() {
        let s = score_series(&labels(), &with_detections(&[]), 0.5, &STD);
        assert_eq!((s.hit, s.missed, s.false_positives), (0, 1, 0));
        assert!(close(s.raw, -1.0));
        let low_fn = score_series(
            &labels(),
            &with_detections(&[]),
            0.5,
            &CostProfile::REWARD_LOW_FN,
        );
        assert!(close(low_fn.raw, -2.0));
    }

    #[test]
    fn detection_on_the_first_point_earns_the_full_weight() {
        let s = score_series(&labels(), &with_detections(&[10]), 0.5, &STD);
        assert!(close(s.raw, 1.0), "{s:?}");
    }

    #[test]
    fn detection_on_the_last_point_earns_little() {
        // tanh(5/8) / tanh(5/2) = 0.55459 / 0.98661.
        let s = score_series(&labels(), &with_detections(&[13]), 0.5, &STD);
        assert!(close(s.raw, 0.625f64.tanh() / 2.5f64.tanh()), "{s:?}");
        assert!((s.raw - 0.562124).abs() < 1e-6);
    }

    #[test]
    fn only_the_earliest_of_two_detections_in_a_window_counts() {
        let one = score_series(&labels(), &with_detections(&[11]), 0.5, &STD);
        let two = score_series(&labels(), &with_detections(&[11, 12]), 0.5, &STD);
        assert_eq!(one, two);
        // Position −3/4: tanh(15/8) / tanh(5/2).
        assert!(close(one.raw, 1.875f64.tanh() / 2.5f64.tanh()));
    }

    #[test]
    fn detections_in_probation_count_for_nothing() {
        let s = score_series(&labels(), &with_detections(&[0, 1, 2]), 0.5, &STD);
        assert_eq!(s.false_positives, 0);
        assert!(close(s.raw, -1.0));
    }

    #[test]
    fn false_positive_right_after_a_window_costs_less_than_one_far_after() {
        // Point 14: distance 1 / (4 − 1); point 19: distance 6 / 3 = 2.
        let near = score_series(&labels(), &with_detections(&[10, 14]), 0.5, &STD);
        let far = score_series(&labels(), &with_detections(&[10, 19]), 0.5, &STD);
        assert!(close(near.raw, 1.0 - 0.11 * (5.0f64 / 6.0).tanh()));
        assert!(close(far.raw, 1.0 - 0.11 * 5.0f64.tanh()));
        assert!(near.raw > far.raw);
        // Before any window the penalty is the full fp weight.
        let before = score_series(&labels(), &with_detections(&[5]), 0.5, &STD);
        assert!(close(before.raw, -1.0 - 0.11));
        assert_eq!(before.false_positives, 1);
    }

    #[test]
    fn a_series_without_windows_only_loses() {
        let ts: Vec<i64> = (0..20).collect();
        let labels = SeriesLabels::new(&ts, &[]);
        assert_eq!(labels.windows, 0);
        assert!(close(
            score_series(&labels, &with_detections(&[]), 0.5, &STD).raw,
            0.0
        ));
        let s = score_series(
            &labels,
            &with_detections(&[3, 4]),
            0.5,
            &CostProfile::REWARD_LOW_FP,
        );
        assert!(close(s.raw, -0.44));
    }

    #[test]
    fn a_score_equal_to_the_threshold_is_a_detection() {
        let mut scores = vec![0.0; 20];
        scores[10] = 0.7;
        assert!(close(score_series(&labels(), &scores, 0.7, &STD).raw, 1.0));
        assert!(close(
            score_series(&labels(), &scores, 0.7000001, &STD).raw,
            -1.0
        ));
    }
}
