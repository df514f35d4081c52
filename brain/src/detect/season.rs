//! Daily and weekly seasons, found when the data has them: a series is kept as the highest
//! value of each half hour over the last week (and an hour), and whenever a half hour closes
//! the correlation of those maxima with the same maxima a day and a week earlier is measured.
//! When one is strong, the series has a season, and a value no higher than what the same time
//! of the cycle usually reached is normal there, however far it is from the last half hour's
//! level: the morning ramp of a busy service is not an incident because it happens every
//! morning.
//!
//! A week of half hours is 336 buckets; each is a 16-bit float relative to the largest value
//! seen (three significant digits, far finer than the 10 % tolerance), so the whole profile
//! is 676 bytes. A week earlier is then the bucket about to be overwritten, so the
//! weekly correlation is accumulated as the buckets close (exponentially forgetting, over
//! about a week of pairs) rather than kept as two weeks of history.

use half::f16;
use serde::{Deserialize, Serialize};

use super::stats::median;
use homeostat_core::Timestamp;

/// Tunables.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeasonConfig {
    /// Bucket length, seconds (a divisor of a day).
    pub bucket_seconds: u32,
    /// Correlation at a cycle's lag from which the series has that season (it keeps it down
    /// to half this).
    pub min_autocorrelation: f32,
    /// Cycles looked back at (the median of what each reached at that time is used, so one
    /// odd day does not set the norm); a weekly season has one, all the profile holds.
    pub cycles: u8,
    /// A value up to this fraction above what the cycle usually reached is still normal.
    pub tolerance: f32,
    /// Buckets either side of the same time looked at: what an autoscaler does at 09:00 one
    /// day it may do at 09:40 the next (2 × 30 min: within the hour).
    pub spread: u8,
}

impl Default for SeasonConfig {
    fn default() -> Self {
        SeasonConfig {
            bucket_seconds: 30 * 60,
            min_autocorrelation: 0.5,
            cycles: 3,
            tolerance: 0.1,
            spread: 2,
        }
    }
}

/// Seconds in a day.
const DAY: i64 = 86_400;

/// Days in a week.
const WEEK_DAYS: i64 = 7;

/// Exponentially forgotten sums of pairs (a, b), for their correlation.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct Pairs {
    /// Pairs seen (not forgotten): evidence enough only from a cycle's worth.
    n: u32,
    weight: f64,
    a: f64,
    b: f64,
    aa: f64,
    bb: f64,
    ab: f64,
}

impl Pairs {
    fn add(&mut self, a: f64, b: f64, keep: f64) {
        self.n = self.n.saturating_add(1);
        self.weight = self.weight * keep + 1.0;
        self.a = self.a * keep + a;
        self.b = self.b * keep + b;
        self.aa = self.aa * keep + a * a;
        self.bb = self.bb * keep + b * b;
        self.ab = self.ab * keep + a * b;
    }

    /// Pearson's correlation; `None` from fewer than `min` pairs or without variation.
    fn correlation(&self, min: u32) -> Option<f64> {
        if self.n < min {
            return None;
        }
        let w = self.weight;
        let var_a = self.aa / w - (self.a / w).powi(2);
        let var_b = self.bb / w - (self.b / w).powi(2);
        let cov = self.ab / w - self.a * self.b / (w * w);
        (var_a > 0.0 && var_b > 0.0).then(|| cov / (var_a * var_b).sqrt())
    }
}

/// The profile of one series and the season found in it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Season {
    // Every field is named apart from the eight-day layout's (`config`, `last`, `open`,
    // `period`): a record of that layout reads back as a season that starts over, never as a
    // mix of the two.
    #[serde(rename = "settings", default)]
    config: SeasonConfig,
    /// Bucket maxima relative to `scale` (f16 bits, NaN where there was no data): bucket `i`
    /// in slot `i mod len`, the last week and `spread` buckets.
    #[serde(default)]
    maxima: Box<[u16]>,
    /// A power of two at or above every magnitude seen (0 before any non-zero one): what
    /// `maxima` are relative to, so they keep three significant digits down to a
    /// thousandth of it.
    #[serde(default)]
    scale: f64,
    /// Index (time / bucket length) of the first and the newest closed bucket.
    #[serde(default)]
    first: Option<i64>,
    #[serde(default, rename = "newest")]
    last: Option<i64>,
    /// The bucket being filled: index and maximum.
    #[serde(default, rename = "filling")]
    open: Option<(i64, f64)>,
    /// Each bucket's maximum with the maximum a week earlier.
    #[serde(default)]
    weekly: Pairs,
    /// The season's length in buckets, when one was found.
    #[serde(default, rename = "cycle")]
    period: Option<u32>,
}

impl Season {
    /// No history yet.
    pub fn new(config: SeasonConfig) -> Self {
        let mut season = Season {
            config,
            maxima: Box::default(),
            scale: 0.0,
            first: None,
            last: None,
            open: None,
            weekly: Pairs::default(),
            period: None,
        };
        season.maxima = vec![f16::NAN.to_bits(); season.slots()].into_boxed_slice();
        season
    }

    /// Heap bytes held (the profile); add `size_of::<Season>()` for the whole.
    pub fn heap_bytes(&self) -> usize {
        size_of_val(&*self.maxima)
    }

    fn per_day(&self) -> i64 {
        DAY / i64::from(self.config.bucket_seconds.max(1))
    }

    /// Slots the profile needs: a week, and `spread` more so that the same time a week ago
    /// is there on both sides.
    fn slots(&self) -> usize {
        (WEEK_DAYS * self.per_day()) as usize + usize::from(self.config.spread)
    }

    /// The season found, in seconds (a day or a week).
    pub fn period(&self) -> Option<i64> {
        self.period
            .map(|p| i64::from(p) * i64::from(self.config.bucket_seconds))
    }

    /// Adds `x` at `t`; values older than the open bucket and non-finite ones are ignored.
    pub fn observe(&mut self, t: Timestamp, x: f64) {
        if !x.is_finite() {
            return;
        }
        if self.maxima.len() != self.slots() {
            // Read back from an older layout: start over.
            *self = Season::new(self.config);
        }
        let index = self.index(t);
        match &mut self.open {
            Some((i, max)) if *i == index => *max = max.max(x),
            Some((i, ..)) if *i > index => {}
            _ => {
                self.close();
                self.open = Some((index, x));
            }
        }
    }

    fn index(&self, t: Timestamp) -> i64 {
        t.as_nanos().div_euclid(1_000_000_000) / i64::from(self.config.bucket_seconds.max(1))
    }

    fn close(&mut self) {
        let Some((index, max)) = self.open.take() else {
            return;
        };
        if max.abs() > self.scale {
            self.rescale(max.abs());
        }
        let len = self.maxima.len() as i64;
        if let Some(last) = self.last {
            for gap in (last + 1).max(index - len + 1)..index {
                self.store(gap, f64::NAN);
            }
        }
        let week = WEEK_DAYS * self.per_day();
        if let Some(before) = self.at(index - week) {
            let keep = 1.0 - 1.0 / week as f64;
            let clip = self.clip();
            let now = max / self.scale.max(f64::MIN_POSITIVE);
            self.weekly.add(before.min(clip), now.min(clip), keep);
        }
        self.store(index, max);
        self.first.get_or_insert(index);
        self.last = Some(index);
        self.period = self.find_period();
    }

    /// Makes the scale the power of two at or above `magnitude`, rescaling what is kept
    /// (exactly: by a power of two).
    fn rescale(&mut self, magnitude: f64) {
        let scale = 2f64.powi(magnitude.log2().ceil() as i32);
        if self.scale > 0.0 {
            let factor = self.scale / scale;
            for m in self.maxima.iter_mut() {
                *m = f16::from_f64(f64::from(f16::from_bits(*m)) * factor).to_bits();
            }
            let w = &mut self.weekly;
            (w.a, w.b) = (w.a * factor, w.b * factor);
            let squared = factor * factor;
            (w.aa, w.bb, w.ab) = (w.aa * squared, w.bb * squared, w.ab * squared);
        }
        self.scale = scale;
    }

    fn store(&mut self, index: i64, x: f64) {
        let slot = index.rem_euclid(self.maxima.len() as i64) as usize;
        let relative = if self.scale > 0.0 { x / self.scale } else { x };
        self.maxima[slot] = f16::from_f64(relative).to_bits();
    }

    /// The maximum of bucket `index` relative to the scale, if the profile still holds it and
    /// it had data.
    fn at(&self, index: i64) -> Option<f64> {
        let (first, last) = (self.first?, self.last?);
        let len = self.maxima.len() as i64;
        if index < first || index > last || index <= last - len {
            return None;
        }
        let v = f64::from(f16::from_bits(self.maxima[index.rem_euclid(len) as usize]));
        v.is_finite().then_some(v)
    }

    /// The stronger of a week and a day whose correlation passes the bar (half the bar for
    /// the season already found).
    fn find_period(&self) -> Option<u32> {
        let per_day = self.per_day();
        let daily = self.daily_correlation().map(|r| (per_day, r));
        let weekly = self
            .weekly
            .correlation(per_day as u32)
            .map(|r| (WEEK_DAYS * per_day, r));
        // A season once found is kept until its correlation falls below half the bar: one odd
        // day (a launch, an outage) in the week held weakens it without ending it.
        let bar = |lag: i64| {
            let min = f64::from(self.config.min_autocorrelation);
            if self.period.is_some_and(|p| i64::from(p) == lag) {
                min / 2.0
            } else {
                min
            }
        };
        [weekly, daily]
            .into_iter()
            .flatten()
            .filter(|(lag, r)| *r >= bar(*lag))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .and_then(|(lag, _)| u32::try_from(lag).ok())
    }

    /// Whether `x` is no higher than the series' daily range: the median of the half-hour
    /// maxima of the last day, that is a height it reached in half of that day's half hours
    /// (with the tolerance). `false` before half a day is held. What an autoscaler does to
    /// latency in a quiet hour (remove a pod, so the rest work at its target) brings it back
    /// to where it spends its days, which is no trouble at any hour; a rise to above most of
    /// a day's highs still is.
    pub fn within_daily_range(&self, x: f64) -> bool {
        let (Some(first), Some(last)) = (self.first, self.last) else {
            return false;
        };
        let per_day = self.per_day();
        if last - first + 1 < per_day / 2 {
            return false;
        }
        let mut highs: Vec<f64> = (last - per_day + 1..=last)
            .filter_map(|i| self.at(i))
            .collect();
        if highs.len() < (per_day / 2) as usize {
            return false;
        }
        let typical = median(&mut highs) * self.scale.max(f64::MIN_POSITIVE);
        x <= typical * (1.0 + f64::from(self.config.tolerance))
    }

    /// Whether the history is too short to measure a daily correlation (under two days).
    fn unmeasured(&self) -> bool {
        match (self.first, self.last) {
            (Some(first), Some(last)) => last - first + 1 < 2 * self.per_day(),
            _ => true,
        }
    }

    /// Correlation of the maxima with those a day earlier, from at least a day of pairs.
    fn daily_correlation(&self) -> Option<f64> {
        let (first, last) = (self.first?, self.last?);
        let per_day = self.per_day();
        let from = first.max(last - self.maxima.len() as i64 + 1) + per_day;
        let clip = self.clip();
        let mut pairs = Pairs::default();
        for i in from..=last {
            if let (Some(a), Some(b)) = (self.at(i - per_day), self.at(i)) {
                pairs.add(a.min(clip), b.min(clip), 1.0);
            }
        }
        pairs.correlation(per_day as u32)
    }

    /// The bound maxima are clipped to before they are correlated: four times their median
    /// (relative). Maxima are an extreme statistic; an incident's hours at fifty times the
    /// usual would otherwise decide the correlation of a whole week.
    fn clip(&self) -> f64 {
        let mut present: Vec<f64> = self
            .maxima
            .iter()
            .map(|&m| f64::from(f16::from_bits(m)))
            .filter(|v| v.is_finite())
            .collect();
        let m = median(&mut present);
        if m > 0.0 { 4.0 * m } else { f64::INFINITY }
    }

    /// Whether `x` at `t` is no higher than what the same time of the season usually reached
    /// (the median over the last cycles of the highest value within `spread` buckets of that
    /// time). `false` without a season or without the history: two cycles of a daily
    /// season, the one the profile holds of a weekly one.
    ///
    /// Until a season can be measured at all (a day of pairs takes two days of history), the
    /// day before vouches for a repeat of itself: no higher than it reached within the hour of
    /// that time is not new. Once the correlation is measured, only a season found vouches.
    pub fn usual_at(&self, t: Timestamp, x: f64) -> bool {
        let provisional = self.period.is_none() && self.unmeasured();
        let Some(period) = self
            .period
            .map(i64::from)
            .or_else(|| provisional.then(|| self.per_day()))
        else {
            return false;
        };
        let index = self.index(t);
        let spread = i64::from(self.config.spread);
        let mut reached: Vec<f64> = (1..=i64::from(self.config.cycles))
            .filter_map(|k| {
                let centre = index - k * period;
                (centre - spread..=centre + spread)
                    .filter_map(|i| self.at(i))
                    .reduce(f64::max)
            })
            .collect();
        let needed = if !provisional && 2 * period + spread < self.maxima.len() as i64 {
            2
        } else {
            1
        };
        if reached.len() < needed {
            return false;
        }
        let usual = median(&mut reached) * self.scale.max(f64::MIN_POSITIVE);
        x <= usual * (1.0 + f64::from(self.config.tolerance))
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
    fn on_the_second_day_the_first_vouches_for_a_repeat_of_itself_until_measured() {
        let feed = |s: &mut Season, from: i64, to: i64| {
            for k in from / 15..to / 15 {
                s.observe(Timestamp::from_secs(k * 15), daily(k * 15));
            }
        };
        let mut s = Season::new(SeasonConfig::default());
        feed(&mut s, 0, 7 * 3600);
        let day1 = |h: f64| Timestamp::from_secs((h * 3600.0) as i64);
        assert!(!s.usual_at(day1(8.5), 0.4), "no day before the first");
        feed(&mut s, 7 * 3600, DAY + 7 * 3600);
        let day2 = |h: f64| Timestamp::from_secs(DAY + (h * 3600.0) as i64);
        assert_eq!(s.period(), None, "not measurable yet");
        assert!(s.usual_at(day2(8.5), 0.4), "yesterday's peak again");
        assert!(!s.usual_at(day2(8.5), 0.8), "twice yesterday's");
        assert!(!s.usual_at(day2(14.0), 0.4), "not at this hour yesterday");
        // Two days of a series whose days are unlike each other: measured, no season, and
        // yesterday vouches for nothing.
        let odd = |t: i64| {
            let bucket = t / 1800;
            if (bucket * 7919) % 11 < 3 { 0.4 } else { 0.2 }
        };
        let mut s = Season::new(SeasonConfig::default());
        for k in 0..(2 * DAY + 3600) / 15 {
            s.observe(Timestamp::from_secs(k * 15), odd(k * 15));
        }
        assert_eq!(s.period(), None);
        let high_yesterday = (0..48)
            .map(|b| 2 * DAY + b * 1800)
            .find(|t| odd(t - DAY) == 0.4)
            .expect("a high bucket");
        assert!(!s.usual_at(Timestamp::from_secs(high_yesterday), 0.4));
    }

    #[test]
    fn a_height_reached_through_half_of_the_last_day_is_within_its_range() {
        // Low at night (0.1), at 0.2 from 06:00 to 22:00 (the autoscaler's target), 0.4 at a
        // morning peak.
        let day = |t: i64| {
            let hour = t.rem_euclid(DAY) as f64 / 3600.0;
            match hour {
                h if (8.0..9.0).contains(&h) => 0.4,
                h if (6.0..22.0).contains(&h) => 0.2,
                _ => 0.1,
            }
        };
        assert!(!fed(0, day).within_daily_range(0.0), "nothing held");
        let mut s = Season::new(SeasonConfig::default());
        for k in 0..(10 * 3600) / 15 {
            s.observe(Timestamp::from_secs(k * 15), day(k * 15));
        }
        assert!(!s.within_daily_range(0.1), "under half a day held");
        let s = fed(1, day);
        assert!(
            s.within_daily_range(0.2),
            "where its days are spent, at any hour"
        );
        assert!(s.within_daily_range(0.21));
        assert!(!s.within_daily_range(0.3), "above most of a day's highs");
        assert!(
            !s.within_daily_range(0.4),
            "the peak of one hour is not the range"
        );
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

    /// Weekdays (the week starts on day 0) have the morning peak of [`daily`]; weekends are
    /// flat at the weekday level until 12:00 and then peak at 0.3 for an hour.
    fn weekly(t: i64) -> f64 {
        if t.div_euclid(DAY).rem_euclid(7) < 5 {
            return daily(t);
        }
        let hour = t.rem_euclid(DAY) as f64 / 3600.0;
        if (12.0..13.0).contains(&hour) {
            0.3
        } else {
            daily(t + 12 * 3600)
        }
    }

    fn feed(s: &mut Season, from: i64, to: i64, f: impl Fn(i64) -> f64) {
        for t in (from..to).step_by(15) {
            s.observe(Timestamp::from_secs(t), f(t));
        }
    }

    #[test]
    fn a_weekly_season_is_found_once_a_week_has_repeated() {
        let mut s = Season::new(SeasonConfig::default());
        feed(&mut s, 0, 7 * DAY, weekly);
        assert_eq!(
            s.period(),
            Some(DAY),
            "a week in, only the daily cycle is known"
        );
        feed(&mut s, 7 * DAY, 14 * DAY, weekly);
        assert_eq!(s.period(), Some(7 * DAY));
        // Monday: the weekday peak is usual, at its hour only.
        let monday = |h: f64| Timestamp::from_secs(14 * DAY + (h * 3600.0) as i64);
        assert!(s.usual_at(monday(8.5), 0.4));
        assert!(!s.usual_at(monday(14.0), 0.4));
        // Saturday: not the weekday peak, which a daily season would vouch for, but its own.
        feed(&mut s, 14 * DAY, 19 * DAY + 8 * 3600, weekly);
        let saturday = |h: f64| Timestamp::from_secs(19 * DAY + (h * 3600.0) as i64);
        assert!(
            !s.usual_at(saturday(8.5), 0.4),
            "the weekday peak on a Saturday"
        );
        feed(&mut s, 19 * DAY + 8 * 3600, 19 * DAY + 12 * 3600, weekly);
        assert!(s.usual_at(saturday(12.5), 0.3));
        assert!(!s.usual_at(saturday(12.5), 0.6));
    }

    #[test]
    fn the_profile_keeps_its_precision_as_the_scale_grows() {
        // The series starts a thousand times smaller, so the profile is rescaled as it grows:
        // the morning is still judged against its own peak to within a per cent.
        let mut s = Season::new(SeasonConfig::default());
        feed(&mut s, 0, 1800, |_| 0.0002);
        feed(&mut s, 1800, 4 * DAY, daily);
        assert_eq!(s.period(), Some(DAY));
        let at = |h: f64| Timestamp::from_secs(4 * DAY + (h * 3600.0) as i64);
        // The peak reaches 0.408 (with its wobble); 10 % above it is 0.449.
        assert!(s.usual_at(at(8.5), 0.445));
        assert!(!s.usual_at(at(8.5), 0.455));
        assert!(!s.usual_at(at(14.0), 0.4));
    }

    #[test]
    fn a_record_of_the_old_layout_reads_back_as_a_fresh_start() {
        let old = r#"{"config":{"bucket_seconds":900,"history":768,"min_autocorrelation":0.5,
            "cycles":3,"tolerance":0.1,"spread":4},"buckets":[[0.2,0.3]],"last":5,
            "open":null,"period":96}"#;
        let mut s: Season = serde_json::from_str(old).expect("reads");
        assert_eq!(s.period(), None);
        feed(&mut s, 0, 4 * DAY, daily);
        assert_eq!(s.period(), Some(DAY));
        let back: Season =
            serde_json::from_str(&serde_json::to_string(&s).expect("writes")).expect("reads");
        let at = Timestamp::from_secs(4 * DAY + 8 * 3600 + 1800);
        assert!(back.usual_at(at, 0.4) && !back.usual_at(at, 0.8));
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
