//! Daily and weekly seasons, found when the data has them: a series is kept as 15-minute
//! buckets (mean and maximum) over the last eight days, and whenever a bucket closes its
//! autocorrelation at one day and at one week is measured. When one is strong, the series
//! has a season, and a value no higher than what the same time of the cycle usually reached
//! is normal there, however far it is from the last half hour's level: the morning ramp of a
//! busy service is not an incident because it happens every morning.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::stats::median;
use homeostat_core::Timestamp;

/// Tunables.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeasonConfig {
    /// Bucket length, seconds.
    pub bucket_seconds: i64,
    /// Buckets kept (8 days of 15 minutes).
    pub history: usize,
    /// Autocorrelation at a cycle's lag from which the series has that season.
    pub min_autocorrelation: f64,
    /// Cycles looked back at (the median of what each reached at that time is used, so one
    /// odd day does not set the norm).
    pub cycles: usize,
    /// A value up to this fraction above what the cycle usually reached is still normal.
    pub tolerance: f64,
    /// Buckets either side of the same time looked at: what an autoscaler does at 09:00 one
    /// day it may do at 09:40 the next (4 × 15 min: within the hour).
    pub spread: i64,
}

impl Default for SeasonConfig {
    fn default() -> Self {
        SeasonConfig {
            bucket_seconds: 15 * 60,
            history: 8 * 96,
            min_autocorrelation: 0.5,
            cycles: 3,
            tolerance: 0.1,
            spread: 4,
        }
    }
}

/// Seconds in a day.
const DAY: i64 = 86_400;

/// The buckets of one series and the season found in them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Season {
    config: SeasonConfig,
    /// Closed buckets, oldest first: (mean, maximum), NaN where there was no data.
    buckets: VecDeque<(f32, f32)>,
    /// Index (time / bucket length) of the newest closed bucket.
    last: Option<i64>,
    /// The bucket being filled: index, sum, count, maximum.
    open: Option<(i64, f64, u32, f64)>,
    /// The season's length in buckets, when one was found.
    period: Option<usize>,
}

impl Season {
    /// No history yet.
    pub fn new(config: SeasonConfig) -> Self {
        Season {
            config,
            buckets: VecDeque::with_capacity(config.history),
            last: None,
            open: None,
            period: None,
        }
    }

    /// The season found, in seconds (a day or a week).
    pub fn period(&self) -> Option<i64> {
        self.period.map(|p| p as i64 * self.config.bucket_seconds)
    }

    /// Adds `x` at `t`; values older than the open bucket and non-finite ones are ignored.
    pub fn observe(&mut self, t: Timestamp, x: f64) {
        if !x.is_finite() {
            return;
        }
        let index = t.as_nanos().div_euclid(1_000_000_000) / self.config.bucket_seconds;
        match &mut self.open {
            Some((i, sum, n, max)) if *i == index => {
                *sum += x;
                *n += 1;
                *max = max.max(x);
            }
            Some((i, ..)) if *i > index => {}
            _ => {
                self.close();
                self.open = Some((index, x, 1, x));
            }
        }
    }

    fn close(&mut self) {
        let Some((index, sum, n, max)) = self.open.take() else {
            return;
        };
        if let Some(last) = self.last {
            let gap = (index - last - 1).clamp(0, self.config.history as i64) as usize;
            for _ in 0..gap {
                self.push((f32::NAN, f32::NAN));
            }
        }
        self.push(((sum / f64::from(n)) as f32, max as f32));
        self.last = Some(index);
        self.period = self.find_period();
    }

    fn push(&mut self, bucket: (f32, f32)) {
        if self.buckets.len() == self.config.history {
            self.buckets.pop_front();
        }
        self.buckets.push_back(bucket);
    }

    /// The strongest of a week and a day whose autocorrelation passes the bar.
    fn find_period(&self) -> Option<usize> {
        let per_day = (DAY / self.config.bucket_seconds) as usize;
        [7 * per_day, per_day]
            .into_iter()
            .filter_map(|lag| Some((lag, self.autocorrelation(lag)?)))
            .filter(|(_, r)| *r >= self.config.min_autocorrelation)
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(lag, _)| lag)
    }

    /// Autocorrelation of the bucket means at `lag`, from at least a day of pairs.
    fn autocorrelation(&self, lag: usize) -> Option<f64> {
        let per_day = (DAY / self.config.bucket_seconds) as usize;
        let means: Vec<f64> = self.buckets.iter().map(|b| f64::from(b.0)).collect();
        if means.len() < lag + per_day {
            return None;
        }
        let present: Vec<f64> = means.iter().copied().filter(|v| v.is_finite()).collect();
        let mean = present.iter().sum::<f64>() / present.len() as f64;
        let var = present.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / present.len() as f64;
        if var <= 0.0 {
            return None;
        }
        let pairs: Vec<(f64, f64)> = means
            .iter()
            .zip(&means[lag..])
            .filter(|(a, b)| a.is_finite() && b.is_finite())
            .map(|(a, b)| (*a, *b))
            .collect();
        if pairs.len() < per_day {
            return None;
        }
        let cov = pairs
            .iter()
            .map(|(a, b)| (a - mean) * (b - mean))
            .sum::<f64>()
            / pairs.len() as f64;
        Some(cov / var)
    }

    /// Whether `x` at `t` is no higher than what the same time of the season usually reached
    /// (the median over the last cycles of the highest value within `spread` buckets of that
    /// time).
    /// `false` without a season or without two cycles of history at that time.
    pub fn usual_at(&self, t: Timestamp, x: f64) -> bool {
        let (Some(period), Some(last)) = (self.period, self.last) else {
            return false;
        };
        let index = t.as_nanos().div_euclid(1_000_000_000) / self.config.bucket_seconds;
        let mut reached: Vec<f64> = (1..=self.config.cycles)
            .filter_map(|k| {
                let centre = index - (k * period) as i64;
                (centre - self.config.spread..=centre + self.config.spread)
                    .filter_map(|i| {
                        let back = usize::try_from(last - i).ok()?;
                        let pos = self.buckets.len().checked_sub(1 + back)?;
                        let max = f64::from(self.buckets[pos].1);
                        max.is_finite().then_some(max)
                    })
                    .reduce(f64::max)
            })
            .collect();
        if reached.len() < 2 {
            return false;
        }
        x <= median(&mut reached) * (1.0 + self.config.tolerance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daily cycle sampled every 15 s: a morning peak (08:00–09:00) that reaches 0.4 on
    /// a level of 0.2, with a little wobble.
    fn daily(t: i64) -> f64 {
        let hour = t.rem_euclid(DAY) as f64 / 3600.0;
        let wobble = 1.0 + 0.02 * ((t / 15) as f64 * 0.7).sin();
        let peak = if (8.0..9.0).contains(&hour) { 2.0 } else { 1.0 };
        0.2 * peak * wobble
    }

    fn fed(days: i64, f: impl Fn(i64) -> f64) -> Season {
        let mut s = Season::new(SeasonConfig::default());
        for k in 0..days * DAY / 15 {
            s.observe(Timestamp::from_secs(k * 15), f(k * 15));
        }
        s
    }

    #[test]
    fn a_daily_peak_is_found_and_is_usual_at_its_hour_only() {
        let s = fed(4, daily);
        assert_eq!(s.period(), Some(DAY));
        let at = |h: f64| Timestamp::from_secs(4 * DAY + (h * 3600.0) as i64);
        assert!(s.usual_at(at(8.5), 0.4), "the morning peak");
        assert!(
            !s.usual_at(at(14.0), 0.4),
            "the same height in the afternoon"
        );
        assert!(s.usual_at(at(9.9), 0.4), "within the hour");
        assert!(!s.usual_at(at(10.3), 0.4), "not beyond");
        assert!(!s.usual_at(at(8.5), 0.8), "twice the usual peak");
    }

    #[test]
    fn noise_and_a_short_history_have_no_season() {
        let s = fed(4, |t| 0.2 * (1.0 + 0.05 * ((t / 15) as f64 * 1.3).sin()));
        assert_eq!(s.period(), None);
        assert!(!s.usual_at(Timestamp::from_secs(4 * DAY), 0.2));
        let young = fed(1, daily);
        assert_eq!(
            young.period(),
            None,
            "one day is no evidence of a daily cycle"
        );
    }

    #[test]
    fn gaps_keep_the_buckets_aligned() {
        // The third day is missing: the cycle is still found at its hour.
        let mut s = Season::new(SeasonConfig::default());
        for k in 0..5 * DAY / 15 {
            let t = k * 15;
            if !(2 * DAY..3 * DAY).contains(&t) {
                s.observe(Timestamp::from_secs(t), daily(t));
            }
        }
        assert_eq!(s.period(), Some(DAY));
        assert!(s.usual_at(Timestamp::from_secs(5 * DAY + 8 * 3600 + 1800), 0.4));
        s.observe(Timestamp::from_secs(10), f64::NAN);
        s.observe(Timestamp::from_secs(10), 5.0);
        assert!(
            s.usual_at(Timestamp::from_secs(5 * DAY + 8 * 3600 + 1800), 0.4),
            "old and NaN ignored"
        );
    }
}
