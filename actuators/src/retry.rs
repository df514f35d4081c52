//! How often and how long to retry a failed apply: a few attempts, exponentially further
//! apart, each wait drawn within its bound (full jitter), so replicas or many decisions that
//! failed together do not come back together. The draw is a hash of the decision and the
//! attempt rather than a random number, so a run replays exactly.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

/// Bounds of the retries of one decision's apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// The bound of the first wait; doubled for each next one.
    pub base: Duration,
    /// No wait is bounded above this.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 3,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry `attempt` (1-based) of the decision `key`: uniform-ish in
    /// [0, min(cap, base × 2^(attempt−1))].
    pub fn delay(&self, key: &str, attempt: u32) -> Duration {
        let bound = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.cap);
        let mut h = DefaultHasher::new();
        (key, attempt).hash(&mut h);
        let fraction = (h.finish() >> 11) as f64 / (1u64 << 53) as f64;
        bound.mul_f64(fraction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_within_their_bounds_are_spread_and_replay() {
        let p = RetryPolicy::default();
        for attempt in 1..=6 {
            let bound = (p.base * 2u32.pow(attempt - 1)).min(p.cap);
            for k in 0..50 {
                let d = p.delay(&format!("01D{k}"), attempt);
                assert!(d <= bound, "{d:?} > {bound:?}");
                assert_eq!(d, p.delay(&format!("01D{k}"), attempt), "replays");
            }
        }
        let spread: std::collections::BTreeSet<Duration> =
            (0..50).map(|k| p.delay(&format!("01D{k}"), 3)).collect();
        assert!(
            spread.len() > 40,
            "jittered: {} distinct waits",
            spread.len()
        );
    }
}
