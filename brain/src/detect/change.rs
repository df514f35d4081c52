//! Change points: a shift of level too small for any one value to stand out, found by
//! accumulating the evidence of many (Page's one-sided CUSUM on standardised residuals).
//!
//! `S ← max(0, S + z − k)`: each value more than `k` spreads above the level adds to `S`, each
//! below takes away. The score is calibrated like every other detector's: under the normal
//! model the baseline's own score assumes, a value's score is one minus its per-step p-value,
//! so 0.999 is a false alarm once in a thousand steps. For the CUSUM the same meaning is one
//! minus one over the average run length in control to reach `S` (Siegmund's approximation,
//! `ARL₀(S) ≈ (e^{2kb} − 2kb − 1) / 2k²` with `b = S + 1.166`): reaching `S` by chance happens
//! once in `ARL₀(S)` steps, so `S` with `ARL₀ = 1000` scores 0.999. `S` is capped at that
//! level, so once a shift has been called it stays called only while values stay above the
//! level by `k` spreads, and the first value that does not ends it.

use serde::{Deserialize, Serialize};

/// Siegmund's correction for the overshoot of a normal random walk over its boundary.
const OVERSHOOT: f64 = 1.166;

/// Page's CUSUM for upward shifts of a standardised series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChangePoint {
    /// The accumulated evidence `S`, in spreads.
    sum: f64,
    /// Values since `S` last left zero, and the sum of their departures from the level (in
    /// the series' units): the size of the shift, for the "does it matter" test.
    run: u32,
    departure: f64,
}

/// What the CUSUM makes of one value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Change {
    /// Calibrated score in [0, 1].
    pub score: f64,
    /// Mean departure from the level since the evidence began to accumulate.
    pub shift: f64,
}

impl ChangePoint {
    /// Adds a value `z` spreads from the level (`departure` in the series' units); `k` is the
    /// allowance in spreads (half the smallest shift worth finding fast) and `threshold` the
    /// score at which `S` is capped.
    pub fn observe(&mut self, z: f64, departure: f64, k: f64, threshold: f64) -> Change {
        if !z.is_finite() || !departure.is_finite() {
            return self.current(k);
        }
        let cap = boundary(threshold, k);
        self.sum = (self.sum + z - k).clamp(0.0, cap);
        if self.sum == 0.0 {
            self.run = 0;
            self.departure = 0.0;
        } else {
            self.run = self.run.saturating_add(1);
            self.departure += departure;
        }
        self.current(k)
    }

    fn current(&self, k: f64) -> Change {
        Change {
            score: calibrated(self.sum, k),
            shift: if self.run == 0 {
                0.0
            } else {
                self.departure / f64::from(self.run)
            },
        }
    }
}

/// Average run length in control to reach `s` (Siegmund), at least one step.
fn arl0(s: f64, k: f64) -> f64 {
    let x = 2.0 * k * (s + OVERSHOOT);
    ((x.exp() - x - 1.0) / (2.0 * k * k)).max(1.0)
}

/// One minus the chance per step of reaching `s` in control: 0 at 0.
pub fn calibrated(s: f64, k: f64) -> f64 {
    if s <= 0.0 {
        return 0.0;
    }
    (1.0 - 1.0 / arl0(s, k)).clamp(0.0, 1.0)
}

/// The `S` that scores `threshold` (bisection: the score rises with `S`).
fn boundary(threshold: f64, k: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, 64.0);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if calibrated(mid, k) < threshold {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

#[cfg(test)]
mod tests {
    use super::super::stats::standard_normals as normals;
    use super::*;

    #[test]
    fn the_boundary_matches_the_published_average_run_lengths() {
        // Tables for k = 0.5 (Montgomery): h = 4 → ARL₀ 336, h = 5 → 930.
        assert!((arl0(4.0, 0.5) - 336.0).abs() < 10.0, "{}", arl0(4.0, 0.5));
        assert!((arl0(5.0, 0.5) - 930.0).abs() < 20.0, "{}", arl0(5.0, 0.5));
        let h = boundary(0.999, 0.5);
        assert!(
            (calibrated(h, 0.5) - 0.999).abs() < 1e-9 && (5.0..5.2).contains(&h),
            "{h}"
        );
    }

    #[test]
    fn in_control_it_alarms_as_often_as_its_score_says() {
        // 0.999 claims one alarm in a thousand steps; count how often S climbs to the cap
        // from zero over 400,000 in-control steps (restarting after each alarm, as the
        // average run length assumes).
        let (k, threshold) = (0.5, 0.999);
        let mut cusum = ChangePoint::default();
        let mut alarms = 0;
        for z in normals(7, 400_000) {
            if cusum.observe(z, z, k, threshold).score >= threshold {
                alarms += 1;
                cusum = ChangePoint::default();
            }
        }
        assert!(
            (300..=600).contains(&alarms),
            "{alarms} alarms, 400 expected"
        );
    }

    #[test]
    fn a_shift_of_one_spread_is_found_in_a_dozen_steps_and_ends_with_it() {
        let (k, threshold) = (0.5, 0.999);
        let mut cusum = ChangePoint::default();
        let z = normals(11, 400);
        for &x in &z[..200] {
            cusum.observe(x, x, k, threshold);
        }
        let found = (200..300)
            .find(|&i| cusum.observe(z[i] + 1.0, z[i] + 1.0, k, threshold).score >= threshold)
            .expect("found");
        assert!(found - 200 <= 16, "after {} steps", found - 200);
        let c = cusum.observe(1.2, 1.2, k, threshold);
        assert!((0.5..1.6).contains(&c.shift), "{c:?}");
        // Back to the level: the next value below the allowance ends the alarm.
        assert!(cusum.observe(-0.2, -0.2, k, threshold).score < threshold);
    }

    #[test]
    fn non_finite_input_changes_nothing() {
        let mut cusum = ChangePoint::default();
        cusum.observe(3.0, 3.0, 0.5, 0.999);
        let before = cusum;
        cusum.observe(f64::NAN, 1.0, 0.5, 0.999);
        cusum.observe(1.0, f64::INFINITY, 0.5, 0.999);
        assert_eq!(cusum, before);
    }
}
