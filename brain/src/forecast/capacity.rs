//! What one ready replica of a workload serves, learned from what it was seen to serve: the
//! request rate per ready replica while latency was normal (a replica demonstrably serves
//! that much well), and the rate per ready replica while the workload was saturated (the most
//! it serves at all). The engine turns a load into the replicas it needs with it.
//!
//! Both are kept as hourly maxima over the last `hours`, so a capacity changed by a new
//! release or node type is relearned within a day, in a few hundred bytes.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use homeostat_core::Timestamp;

/// Tunables.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CapacityConfig {
    /// Hours of readings kept.
    pub hours: usize,
    /// Readings needed before a capacity is stated.
    pub min_readings: u32,
    /// The share of the saturated throughput a replica is taken to serve at normal latency:
    /// queueing delay climbs steeply beyond it (at 75 % busy a request waits three service
    /// times on average, at 90 % nine), and an HPA's usual CPU target (70 %) sits below it.
    pub usable_share: f64,
}

impl Default for CapacityConfig {
    fn default() -> Self {
        CapacityConfig {
            hours: 24,
            min_readings: 10,
            usable_share: 0.75,
        }
    }
}

/// One hour's highest readings per ready replica: normal and saturated.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Hour {
    index: i64,
    normal: Option<f32>,
    saturated: Option<f32>,
}

/// The learned capacity of one workload's replicas.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Capacity {
    config: CapacityConfig,
    hours: VecDeque<Hour>,
    readings: u32,
}

impl Capacity {
    /// Nothing seen yet.
    pub fn new(config: CapacityConfig) -> Self {
        Capacity {
            config,
            hours: VecDeque::with_capacity(config.hours),
            readings: 0,
        }
    }

    /// Notes that `ready` replicas served `rate` at `t`, `saturated` or with normal latency.
    /// Readings without a ready replica, not finite, or older than the newest hour kept are
    /// ignored.
    pub fn observe(&mut self, t: Timestamp, rate: f64, ready: u32, saturated: bool) {
        if ready == 0 || !rate.is_finite() || rate <= 0.0 {
            return;
        }
        let per = (rate / f64::from(ready)) as f32;
        let index = t.as_nanos().div_euclid(3_600_000_000_000);
        let hour = match self.hours.back_mut() {
            Some(h) if h.index == index => h,
            Some(h) if h.index > index => return,
            _ => {
                if self.hours.len() == self.config.hours {
                    self.hours.pop_front();
                }
                self.hours.push_back(Hour {
                    index,
                    normal: None,
                    saturated: None,
                });
                self.hours.back_mut().expect("just pushed")
            }
        };
        let slot = if saturated {
            &mut hour.saturated
        } else {
            &mut hour.normal
        };
        *slot = Some(slot.map_or(per, |s| s.max(per)));
        self.readings = self.readings.saturating_add(1);
        let oldest = index - self.config.hours as i64 + 1;
        while self.hours.front().is_some_and(|h| h.index < oldest) {
            self.hours.pop_front();
        }
    }

    fn max_of(&self, f: impl Fn(&Hour) -> Option<f32>) -> Option<f64> {
        self.hours
            .iter()
            .filter_map(f)
            .reduce(f32::max)
            .map(f64::from)
    }

    /// The most one replica was seen to serve while saturated: its throughput ceiling.
    pub fn ceiling(&self) -> Option<f64> {
        (self.readings >= self.config.min_readings).then(|| self.max_of(|h| h.saturated))?
    }

    /// What one ready replica serves at normal latency: the most it was seen to serve so,
    /// or the usable share of its ceiling when that is more.
    pub fn per_replica(&self) -> Option<f64> {
        if self.readings < self.config.min_readings {
            return None;
        }
        let normal = self.max_of(|h| h.normal);
        let usable = self.ceiling().map(|c| c * self.config.usable_share);
        match (normal, usable) {
            (Some(n), Some(u)) => Some(n.max(u)),
            (n, u) => n.or(u),
        }
    }

    /// The replicas `load` needs at normal latency with `headroom` (1.1 for 10 % spare).
    pub fn needed(&self, load: f64, headroom: f64) -> Option<u32> {
        let per = self.per_replica()?;
        if !load.is_finite() || load < 0.0 || per <= 0.0 {
            return None;
        }
        let n = (load * headroom / per).ceil();
        Some(n.clamp(1.0, f64::from(u32::MAX)) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> Timestamp {
        Timestamp::from_secs(minutes * 60)
    }

    #[test]
    fn nothing_is_stated_before_enough_readings() {
        let mut c = Capacity::new(CapacityConfig::default());
        for m in 0..9 {
            c.observe(at(m), 120.0, 4, false);
        }
        assert_eq!(c.per_replica(), None);
        assert_eq!(c.needed(300.0, 1.1), None);
        c.observe(at(9), 120.0, 4, false);
        assert_eq!(c.per_replica(), Some(30.0));
        // 300/s with 10 % spare at 30/s a replica: 11.
        assert_eq!(c.needed(300.0, 1.1), Some(11));
    }

    #[test]
    fn a_saturated_ceiling_counts_at_its_usable_share() {
        let mut c = Capacity::new(CapacityConfig::default());
        for m in 0..10 {
            c.observe(at(m), 120.0, 4, false);
        }
        c.observe(at(11), 200.0, 4, true);
        assert_eq!(c.ceiling(), Some(50.0));
        assert_eq!(c.per_replica(), Some(37.5));
    }

    #[test]
    fn bad_and_old_readings_are_ignored_and_old_hours_forgotten() {
        let mut c = Capacity::new(CapacityConfig::default());
        for m in 0..10 {
            c.observe(at(120 + m), 100.0, 4, false);
        }
        c.observe(at(126), f64::NAN, 4, false);
        c.observe(at(126), 1000.0, 0, false);
        c.observe(at(0), 1000.0, 4, false);
        assert_eq!(c.per_replica(), Some(25.0));
        // A day later the first hour has gone: only the new readings count.
        c.observe(at(120 + 24 * 60), 40.0, 4, false);
        assert_eq!(c.per_replica(), Some(10.0));
    }

    #[test]
    fn the_learned_state_survives_serialisation_unchanged() {
        let mut c = Capacity::new(CapacityConfig::default());
        for m in 0..30 {
            c.observe(at(m * 7), 100.0 + m as f64, 4, m % 9 == 0);
        }
        let back: Capacity = serde_json::from_slice(&serde_json::to_vec(&c).expect("serialises"))
            .expect("deserialises");
        assert_eq!(back.per_replica(), c.per_replica());
        assert_eq!(back.ceiling(), c.ceiling());
        assert_eq!(back.hours, c.hours);
    }
}
