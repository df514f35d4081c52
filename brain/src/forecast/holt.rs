//! Holt–Winters exponential smoothing of a load signal: a level, a damped trend and, once a
//! day has been seen, a daily profile of multiplicative factors by time of day (15-minute
//! buckets). Forecasts a few minutes ahead, which is what scaling ahead needs: far enough
//! for new pods to start, near enough for the trend to still mean something.
//!
//! Time is the samples' own: steps of any length are handled (the trend is per second), a
//! gap longer than `max_gap_seconds` restarts the trend from the new level (what happened
//! during the gap is not known), and values that are not finite or not newer than the last
//! one are ignored.

use serde::{Deserialize, Serialize};

use homeostat_core::Timestamp;

/// Seconds in a day.
const DAY: i64 = 86_400;

/// Tunables; the defaults were chosen by measurement (docs/detection.md, "Forecasting").
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForecastConfig {
    /// Weight of a new value in the level, per `step_seconds`.
    pub alpha: f64,
    /// Weight of a new level change in the trend, per `step_seconds`.
    pub beta: f64,
    /// Weight of a new value in its time-of-day factor.
    pub gamma: f64,
    /// How much of the trend is kept each further step ahead (damping): a rise goes on for
    /// a while, not for ever.
    pub phi: f64,
    /// The step the smoothing weights are given for, seconds.
    pub step_seconds: f64,
    /// Length of a time-of-day bucket of the daily profile, seconds; 0 for no profile.
    pub bucket_seconds: i64,
    /// A gap longer than this restarts the trend, seconds.
    pub max_gap_seconds: f64,
    /// Values needed since the start (or a gap) before the forecast is warm.
    #[serde(default = "default_min_run")]
    pub min_run: u32,
}

fn default_min_run() -> u32 {
    20
}

impl Default for ForecastConfig {
    fn default() -> Self {
        ForecastConfig {
            alpha: 0.3,
            beta: 0.1,
            gamma: 0.02,
            phi: 0.98,
            step_seconds: 15.0,
            bucket_seconds: 0,
            max_gap_seconds: 5.0 * 60.0,
            min_run: default_min_run(),
        }
    }
}

/// The smoothed state of one load series.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoadForecast {
    config: ForecastConfig,
    /// Level without the time-of-day factor, and trend per second.
    level: f64,
    trend: f64,
    /// Time of the newest value used; `None` before the first.
    last: Option<Timestamp>,
    /// Time of the first value, to know when a whole day has been seen.
    first: Option<Timestamp>,
    /// Time-of-day factors, 1 where nothing is known yet.
    profile: Vec<f32>,
    /// Values used since the level last started afresh: a trend from a handful is noise.
    #[serde(default)]
    run: u32,
    /// Mean square of the one-step errors (exponentially weighted by `beta`): how far the
    /// series strays from its own forecast, so a rise is told from a wobble.
    #[serde(default)]
    mse: f64,
}

impl LoadForecast {
    /// A series not seen yet.
    pub fn new(config: ForecastConfig) -> Self {
        let buckets = if config.bucket_seconds > 0 {
            (DAY / config.bucket_seconds) as usize
        } else {
            0
        };
        LoadForecast {
            config,
            level: 0.0,
            trend: 0.0,
            last: None,
            first: None,
            profile: vec![1.0; buckets],
            run: 0,
            mse: 0.0,
        }
    }

    /// Time of the newest value used.
    pub fn last(&self) -> Option<Timestamp> {
        self.last
    }

    /// Whether the trend rests on `min_run` values since the level last started afresh.
    pub fn warm(&self) -> bool {
        self.run >= self.config.min_run
    }

    /// The smoothed value now (level times the factor of this time of day).
    pub fn current(&self) -> Option<f64> {
        let last = self.last?;
        Some(self.level * self.factor(last))
    }

    /// Bytes on the heap beside the inline state: the daily profile's factors.
    pub fn heap_bytes(&self) -> usize {
        self.profile.capacity() * size_of::<f32>()
    }

    /// The typical one-step error (root mean square): the wobble a forecast rise must
    /// clear to be a rise.
    pub fn spread(&self) -> f64 {
        self.mse.sqrt()
    }

    /// The trend, per second.
    pub fn trend(&self) -> f64 {
        self.trend
    }

    fn bucket(&self, t: Timestamp) -> Option<usize> {
        if self.profile.is_empty() {
            return None;
        }
        let secs = t.as_nanos().div_euclid(1_000_000_000).rem_euclid(DAY);
        Some((secs / self.config.bucket_seconds) as usize % self.profile.len())
    }

    /// Whether a whole day has been seen, so that the daily profile means something.
    fn profile_known(&self) -> bool {
        matches!((self.first, self.last), (Some(f), Some(l)) if l.since(f).as_secs() as i64 >= DAY)
    }

    fn factor(&self, t: Timestamp) -> f64 {
        match self.bucket(t) {
            Some(b) if self.profile_known() => f64::from(self.profile[b]),
            _ => 1.0,
        }
    }

    /// Adds `x` observed at `t`.
    pub fn observe(&mut self, t: Timestamp, x: f64) {
        if !x.is_finite() || x < 0.0 {
            return;
        }
        let Some(last) = self
            .last
            .filter(|l| t.since(*l).as_secs_f64() <= self.config.max_gap_seconds)
        else {
            if self.last.is_some_and(|l| t <= l) {
                return;
            }
            // The first value, or the first after a gap: a new level, no trend yet.
            self.level = x / self.factor(t).max(f64::MIN_POSITIVE);
            self.trend = 0.0;
            self.run = 1;
            self.mse = 0.0;
            self.first.get_or_insert(t);
            self.last = Some(t);
            return;
        };
        if t <= last {
            return;
        }
        let dt = t.since(last).as_secs_f64();
        // Weights given per nominal step, applied as often as this step holds nominal ones.
        let steps = dt / self.config.step_seconds;
        let a = 1.0 - (1.0 - self.config.alpha).powf(steps);
        let b = 1.0 - (1.0 - self.config.beta).powf(steps);
        let s = self.factor(t);
        let y = if s > 0.0 { x / s } else { x };
        let predicted = self.level + self.trend * dt;
        let miss = x - predicted * s;
        self.mse = b * miss * miss + (1.0 - b) * self.mse;
        let level = a * y + (1.0 - a) * predicted;
        self.trend = b * (level - self.level) / dt + (1.0 - b) * self.trend;
        self.level = level.max(0.0);
        if let Some(k) = self.bucket(t)
            && self.level > 0.0
        {
            let ratio = (x / self.level) as f32;
            let g = self.config.gamma as f32;
            self.profile[k] = (1.0 - g) * self.profile[k] + g * ratio;
        }
        self.run = self.run.saturating_add(1);
        self.last = Some(t);
    }

    /// The expected value `seconds` after the newest one.
    pub fn expected(&self, seconds: f64) -> Option<f64> {
        let last = self.last?;
        let steps = (seconds / self.config.step_seconds).max(0.0);
        let phi = self.config.phi;
        // Σ φ^k for k = 1..=steps: how many steps of trend a damped trend adds up to.
        let damped = if phi >= 1.0 {
            steps
        } else {
            phi * (1.0 - phi.powf(steps)) / (1.0 - phi)
        };
        let ahead = last + std::time::Duration::from_secs_f64(seconds.max(0.0));
        let level = self.level + self.trend * self.config.step_seconds * damped;
        Some(level.max(0.0) * self.factor(ahead))
    }

    /// The largest value expected within `seconds` of the newest one (looked at every step).
    pub fn peak_within(&self, seconds: f64) -> Option<f64> {
        let n = (seconds / self.config.step_seconds).ceil().max(1.0) as u32;
        (1..=n)
            .filter_map(|k| self.expected(seconds * f64::from(k) / f64::from(n)))
            .reduce(f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A daily cycle like the simulated checkout's: a mean of 300, peaking at 14:00 at 480.
    fn daily(t: i64) -> f64 {
        let phase = (t.rem_euclid(DAY) as f64 / DAY as f64 - 14.0 / 24.0) * std::f64::consts::TAU;
        300.0 * (1.0 + 0.6 * phase.cos())
    }

    /// ±5 % of deterministic wobble.
    fn noisy(t: i64) -> f64 {
        daily(t) * (1.0 + 0.05 * ((t / 15) as f64 * 1.7).sin())
    }

    fn fed(from: i64, to: i64, f: impl Fn(i64) -> f64) -> LoadForecast {
        let mut m = LoadForecast::new(ForecastConfig::default());
        for t in (from..to).step_by(15) {
            m.observe(Timestamp::from_secs(t), f(t));
        }
        m
    }

    #[test]
    fn a_daily_cycle_is_forecast_five_minutes_ahead_within_its_noise() {
        // Two days to learn, then every 5-minute forecast of the third day is checked against
        // the cycle without its ±5 % noise: on average within 2.5 %, at worst within 5 %.
        let mut m = fed(0, 2 * DAY, noisy);
        let (mut worst, mut sum, mut n): (f64, f64, f64) = (0.0, 0.0, 0.0);
        for t in (2 * DAY..3 * DAY).step_by(15) {
            m.observe(Timestamp::from_secs(t), noisy(t));
            let expected = m.expected(300.0).expect("warm");
            let truth = daily(t + 300);
            let error = (expected - truth).abs() / truth;
            worst = worst.max(error);
            sum += error;
            n += 1.0;
        }
        let mean = sum / n;
        assert!(mean < 0.025, "mean error {:.2} %", mean * 100.0);
        assert!(worst < 0.05, "worst error {:.2} %", worst * 100.0);
    }

    #[test]
    fn a_steady_ramp_is_extrapolated_and_the_peak_is_ahead() {
        // 100/s rising 1/s each second: in five minutes, about 300 more.
        let m = fed(0, 600, |t| 100.0 + t as f64);
        let now = m.current().expect("warm");
        assert!((now - 685.0).abs() < 15.0, "{now}");
        let ahead = m.peak_within(300.0).expect("warm");
        // Damping keeps it short of the straight line (985) but well above now.
        assert!(ahead > 900.0 && ahead < 985.0, "{ahead}");
        assert!((m.trend() - 1.0).abs() < 0.05, "{}", m.trend());
        // A clean ramp strays little from its forecast: the rise stands far above it.
        assert!(ahead - now > 20.0 * m.spread(), "spread {}", m.spread());
    }

    #[test]
    fn a_dip_and_its_rebound_are_wobble_not_a_rise() {
        // A level of 120 whose measurement loses half its points now and then (gaps in the
        // pods' reports): the rebounds trend upwards, but no more than the misses are wide.
        let m = fed(0, 3600, |t| if (t / 15) % 7 == 3 { 60.0 } else { 120.0 });
        let rise = m.peak_within(300.0).expect("warm") - m.current().expect("warm");
        assert!(
            rise < 3.0 * m.spread(),
            "rise {rise}, spread {}",
            m.spread()
        );
    }

    #[test]
    fn nan_old_and_repeated_values_are_ignored_and_a_gap_restarts_the_trend() {
        let mut m = fed(0, 600, |t| 100.0 + t as f64);
        let before = (m.current(), m.trend(), m.last());
        m.observe(Timestamp::from_secs(700), f64::NAN);
        m.observe(Timestamp::from_secs(705), f64::INFINITY);
        m.observe(Timestamp::from_secs(705), -3.0);
        m.observe(Timestamp::from_secs(300), 1e6);
        m.observe(before.2.expect("fed"), 1e6);
        assert_eq!((m.current(), m.trend(), m.last()), before);
        // An hour without data: the level starts afresh and the old trend is dropped.
        m.observe(Timestamp::from_secs(4200), 50.0);
        assert_eq!(m.current(), Some(50.0));
        assert_eq!(m.trend(), 0.0);
        assert_eq!(m.expected(300.0), Some(50.0));
        assert!(!m.warm(), "a new level is not a trend yet");
        for k in 1..20 {
            m.observe(Timestamp::from_secs(4200 + 15 * k), 50.0);
        }
        assert!(m.warm());
    }

    #[test]
    fn nothing_is_forecast_before_the_first_value() {
        let m = LoadForecast::new(ForecastConfig::default());
        assert!(!m.warm());
        assert_eq!(m.expected(300.0), None);
        assert_eq!(m.peak_within(300.0), None);
        assert_eq!(m.current(), None);
    }

    #[test]
    fn the_learned_state_survives_serialisation_unchanged() {
        let m = fed(0, DAY + 3600, noisy);
        let bytes = serde_json::to_vec(&m).expect("serialises");
        let back: LoadForecast = serde_json::from_slice(&bytes).expect("deserialises");
        assert_eq!(back.expected(300.0), m.expected(300.0));
        assert_eq!(back.profile, m.profile);
        assert_eq!(back.last(), m.last());
    }
}
