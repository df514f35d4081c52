//! Rare events: counts of things that normally (almost) never happen — error exits, OOM
//! kills, TCP retransmits — judged against a learned Poisson rate.
//!
//! A median/MAD baseline is useless here: a series of zeros has no spread, so the first event
//! would be infinitely surprising. Instead the normal rate is learned (an exponentially
//! weighted mean, never taken below a floor) and the count over a short sliding window is
//! scored by its Poisson tail probability (statrs): one event in a quiet hour is not an
//! incident, several within minutes are.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use statrs::distribution::{DiscreteCDF, Poisson};

/// Tunables; the defaults suit 15-second steps.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventConfig {
    /// Steps summed into the judged count (20 × 15 s = 5 min).
    pub window: usize,
    /// Steps seen before any score is given.
    pub warmup: usize,
    /// Normal rate assumed at least, events per second (one an hour): what a workload with no
    /// history of events is allowed without alarm.
    pub floor_per_second: f64,
    /// Weight of a new normal step in the learned rate (≈ 1 / 240 steps = one hour).
    pub learning_rate: f64,
    /// Score at or above which the count is anomalous.
    pub threshold: f64,
    /// Events in the window needed to be anomalous, whatever the probability.
    pub min_events: f64,
}

impl Default for EventConfig {
    fn default() -> Self {
        EventConfig {
            window: 20,
            warmup: 20,
            floor_per_second: 1.0 / 3600.0,
            learning_rate: 1.0 / 240.0,
            threshold: 0.999,
            min_events: 3.0,
        }
    }
}

/// A count's score against the learned rate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EventScore {
    /// In [0, 1]: one minus the probability of at least this many events in the window.
    pub score: f64,
    /// Events in the window.
    pub count: f64,
    /// Events the learned rate expects in the window.
    pub expected: f64,
    /// Whether the count is anomalous.
    pub anomalous: bool,
}

/// The learned event rate of one series, and its recent counts (kept across restarts).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EventRate {
    config: EventConfig,
    /// Recent steps as (events, seconds).
    recent: VecDeque<(f64, f64)>,
    /// Learned normal rate, events per second.
    rate: f64,
    seen: usize,
    /// Events and seconds seen during warm-up, whose mean rate starts the learned one.
    warmup_total: (f64, f64),
}

impl EventRate {
    /// A series with no history: its rate starts at the floor.
    pub fn new(config: EventConfig) -> Self {
        EventRate {
            config,
            recent: VecDeque::with_capacity(config.window),
            rate: config.floor_per_second,
            seen: 0,
            warmup_total: (0.0, 0.0),
        }
    }

    /// Takes one step of `events` (≥ 0) over `seconds` (> 0), scores the window it completes
    /// and, if that is normal and `learn` is set, learns the step's rate. Non-finite or
    /// negative input is ignored and returns `None`, as does any step during warm-up.
    pub fn observe(&mut self, events: f64, seconds: f64, learn: bool) -> Option<EventScore> {
        if !(events.is_finite() && events >= 0.0 && seconds.is_finite() && seconds > 0.0) {
            return None;
        }
        if self.recent.len() == self.config.window {
            self.recent.pop_front();
        }
        self.recent.push_back((events, seconds));
        self.seen += 1;
        if self.seen <= self.config.warmup {
            // Warm-up: whatever happens is the workload's normal, as far as anyone knows.
            self.warmup_total.0 += events;
            self.warmup_total.1 += seconds;
            self.rate =
                (self.warmup_total.0 / self.warmup_total.1).max(self.config.floor_per_second);
            return None;
        }
        let score = self.score();
        if learn && !score.anomalous {
            let a = self.config.learning_rate;
            self.rate =
                ((1.0 - a) * self.rate + a * events / seconds).max(self.config.floor_per_second);
        }
        Some(score)
    }

    /// The learned normal rate, events per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    fn score(&self) -> EventScore {
        let (count, seconds) = self
            .recent
            .iter()
            .fold((0.0, 0.0), |(c, s), (e, dt)| (c + e, s + dt));
        let expected = self.rate * seconds;
        // P(X >= k) = 1 - P(X <= k - 1); counts arrive as rates × seconds, so round them.
        let k = count.round();
        let score = match Poisson::new(expected) {
            Ok(p) if k >= 1.0 => p.cdf(k as u64 - 1),
            Ok(_) => 0.0,
            Err(_) => 0.0,
        };
        EventScore {
            score,
            count,
            expected,
            anomalous: score >= self.config.threshold && count >= self.config.min_events,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warm(config: EventConfig) -> EventRate {
        let mut e = EventRate::new(config);
        for _ in 0..config.warmup {
            assert_eq!(e.observe(0.0, 15.0, true), None, "silent while warming up");
        }
        e
    }

    #[test]
    fn one_event_in_a_quiet_hour_is_normal_a_burst_is_not() {
        let mut e = warm(EventConfig::default());
        let one = e.observe(1.0, 15.0, true).expect("warm");
        assert!(!one.anomalous, "{one:?}");
        assert!(one.score > 0.9 && one.score < 0.999, "{one:?}");
        for _ in 0..3 {
            e.observe(0.0, 15.0, true);
        }
        let burst = e.observe(3.0, 15.0, true).expect("warm");
        assert!(burst.anomalous && burst.count == 4.0, "{burst:?}");
    }

    #[test]
    fn the_window_forgets_and_a_busy_normal_is_learned() {
        let config = EventConfig::default();
        let mut e = warm(config);
        assert!(e.observe(5.0, 15.0, true).expect("warm").anomalous);
        for _ in 0..config.window - 1 {
            e.observe(0.0, 15.0, true);
        }
        assert!(
            !e.observe(0.0, 15.0, true).expect("warm").anomalous,
            "the burst left the window"
        );
        // A workload that always retransmits a little: two a step is its normal.
        let mut busy = EventRate::new(config);
        for _ in 0..200 {
            busy.observe(2.0, 15.0, true);
        }
        assert!((busy.rate() - 2.0 / 15.0).abs() < 1e-9, "{}", busy.rate());
        assert!(!busy.observe(4.0, 15.0, true).expect("warm").anomalous);
        assert!(busy.observe(40.0, 15.0, true).expect("warm").anomalous);
    }

    #[test]
    fn bad_input_is_ignored() {
        let mut e = warm(EventConfig::default());
        assert_eq!(e.observe(f64::NAN, 15.0, true), None);
        assert_eq!(e.observe(-1.0, 15.0, true), None);
        assert_eq!(e.observe(1.0, 0.0, true), None);
        assert_eq!(e.rate(), EventConfig::default().floor_per_second);
    }
}
