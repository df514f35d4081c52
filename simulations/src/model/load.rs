//! The request rate a workload receives over time.
//!
//! rate(t) = normal(t) × Π event factors(t) × (1 ± noise). The normal rate is what homeostat
//! must learn and never alarm on: a constant `base` shaped by a daily and a weekly cycle, or a
//! replayed trace. The events are the incidents, so they alone are the ground truth
//! [`LoadTrace::in_event`] reports. Factors multiply: a flash crowd during a launch's step is
//! the crowd's factor on top of the launch's level, and a spike at night is smaller in
//! requests than the same spike at the daily peak.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::scenario::{LoadEvent, LoadSpec};

pub use trace::{TraceError, TraceSeries};

/// A deterministic, seeded request-rate trace.
#[derive(Debug)]
pub struct LoadTrace {
    spec: LoadSpec,
    rng: StdRng,
}

impl LoadTrace {
    /// A trace for `spec`; the same seed gives the same trace.
    pub fn new(spec: LoadSpec, seed: u64) -> Self {
        LoadTrace {
            spec,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// The noiseless rate at `t` without the events: the workload's normal behaviour, which
    /// a good detector learns and never reports.
    pub fn normal(&self, t: Duration) -> f64 {
        if let Some(trace) = &self.spec.trace {
            return trace.series.scaled(t, trace.peak);
        }
        let mut rate = self.spec.base;
        if let Some(d) = &self.spec.diurnal {
            rate *= cycle::diurnal(d, t);
        }
        if let Some(w) = &self.spec.weekly {
            rate *= cycle::weekly(w, t);
        }
        rate
    }

    /// The noiseless rate at `t` after the start, events included.
    pub fn shape(&self, t: Duration) -> f64 {
        let events: f64 = self.spec.events.iter().map(|e| e.factor(t)).product();
        self.normal(t) * events
    }

    /// The rate at `t`, with noise; call once per tick, in time order.
    pub fn next(&mut self, t: Duration) -> f64 {
        let wobble = 1.0 + self.spec.noise * (2.0 * self.rng.random::<f64>() - 1.0);
        (self.shape(t) * wobble).max(0.0)
    }

    /// Whether `t` lies within any load event (the ground truth of incidents). The daily and
    /// weekly cycles and the trace are normal behaviour, never incidents.
    pub fn in_event(&self, t: Duration) -> bool {
        self.spec.events.iter().any(|e| e.covers(t))
    }
}

impl LoadEvent {
    /// When the event is an incident: from its start up to (not including) its end, `None`
    /// when it lasts to the end of the scenario. A spike is an incident from the start of
    /// its ramp-up to the end of its ramp-down.
    pub fn window(&self) -> (Duration, Option<Duration>) {
        match *self {
            LoadEvent::Spike {
                at,
                ramp_up,
                hold,
                ramp_down,
                ..
            } => (
                at,
                at.checked_add(ramp_up)
                    .and_then(|t| t.checked_add(hold))
                    .and_then(|t| t.checked_add(ramp_down)),
            ),
            LoadEvent::Step { at, hold, .. } => (at, hold.and_then(|h| at.checked_add(h))),
            LoadEvent::Ramp { at, over, hold, .. } => {
                (at, hold.and_then(|h| at.checked_add(over)?.checked_add(h)))
            }
        }
    }

    /// Whether `t` is inside the event's [window](LoadEvent::window).
    pub fn covers(&self, t: Duration) -> bool {
        let (start, end) = self.window();
        t >= start && end.is_none_or(|end| t < end)
    }

    /// The multiple of the normal rate the event causes at `t` (1 outside it).
    pub fn factor(&self, t: Duration) -> f64 {
        if !self.covers(t) {
            return 1.0;
        }
        let s = t.as_secs_f64();
        match *self {
            LoadEvent::Spike {
                at,
                ramp_up,
                hold,
                ramp_down,
                factor,
            } => {
                let (a, u, h, d) = (
                    at.as_secs_f64(),
                    ramp_up.as_secs_f64(),
                    hold.as_secs_f64(),
                    ramp_down.as_secs_f64(),
                );
                // Inside the window, so a zero-length phase is never the one divided by.
                let frac = if s < a + u {
                    (s - a) / u
                } else if s < a + u + h {
                    1.0
                } else {
                    1.0 - (s - a - u - h) / d
                };
                1.0 + (factor - 1.0) * frac
            }
            LoadEvent::Step { factor, .. } => factor,
            LoadEvent::Ramp {
                at, over, factor, ..
            } => {
                let frac = ((s - at.as_secs_f64()) / over.as_secs_f64()).min(1.0);
                1.0 + (factor - 1.0) * frac
            }
        }
    }
}

/// The daily and weekly cycles: pure functions of the time since the start, which is
/// midnight at the start of the scenario's first day.
mod cycle {
    use std::f64::consts::{PI, TAU};
    use std::time::Duration;

    use crate::scenario::{DiurnalSpec, WeeklySpec};

    /// Seconds in a day.
    const DAY: f64 = 86_400.0;

    /// `1 + amplitude × cos(2π (t − peakAt) / day)`: 1 on average over a day.
    pub(super) fn diurnal(spec: &DiurnalSpec, t: Duration) -> f64 {
        let phase = (t.as_secs_f64() - spec.peak_at.as_secs_f64()) / DAY;
        1.0 + spec.amplitude * (TAU * phase).cos()
    }

    /// How much of the weekend factor applies at `t`: 0 on weekdays, 1 at weekends, and a
    /// half-cosine between them within `transition / 2` of the midnight that separates them.
    pub(super) fn weekendness(spec: &WeeklySpec, t: Duration) -> f64 {
        let weekend = |day: f64| {
            if spec.start_day.plus_days(day as i64).is_weekend() {
                1.0
            } else {
                0.0
            }
        };
        let s = t.as_secs_f64();
        let half = spec.transition.as_secs_f64() / 2.0;
        let midnight = (s / DAY).round();
        let from_midnight = s - midnight * DAY;
        if from_midnight.abs() < half {
            let (before, after) = (weekend(midnight - 1.0), weekend(midnight));
            let x = (from_midnight + half) / (2.0 * half);
            before + (after - before) * (1.0 - (PI * x).cos()) / 2.0
        } else {
            weekend((s / DAY).floor())
        }
    }

    /// `weekendFactor` on Saturday and Sunday, 1 on the other days, blended between them.
    pub(super) fn weekly(spec: &WeeklySpec, t: Duration) -> f64 {
        1.0 + (spec.weekend_factor - 1.0) * weekendness(spec, t)
    }
}

/// Recorded series: reading a `timestamp,value` CSV and interpolating it.
///
/// A hand parser rather than the `csv` crate: the files are two numeric columns with no
/// quoting, the errors must name the exact line (simple here, since one row is one line),
/// and it adds no dependency to the workspace.
mod trace {
    use std::fmt;
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::Duration;

    use super::timestamp;

    /// Why a trace could not be used: the file, the 1-based line (0 for the whole file) and
    /// what is wrong, printed `file:line: message` as editors and compilers do.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct TraceError {
        /// The trace file.
        pub path: PathBuf,
        /// 1-based line, 0 when the problem is the file as a whole.
        pub line: usize,
        /// What is wrong.
        pub message: String,
    }

    impl fmt::Display for TraceError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.line {
                0 => write!(f, "{}: {}", self.path.display(), self.message),
                line => write!(f, "{}:{line}: {}", self.path.display(), self.message),
            }
        }
    }

    impl std::error::Error for TraceError {}

    /// A time series, shifted so its first point is at t = 0; cheap to clone, as every run
    /// of a scenario clones its workloads' load.
    #[derive(Clone, Default, PartialEq)]
    pub struct TraceSeries {
        source: PathBuf,
        /// (seconds since the first point, value), strictly increasing in time.
        points: Arc<[(f64, f64)]>,
        max: f64,
    }

    impl fmt::Debug for TraceSeries {
        // The points would drown any scenario they are printed with.
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("TraceSeries")
                .field("source", &self.source)
                .field("points", &self.points.len())
                .field("span", &self.span())
                .field("max", &self.max)
                .finish()
        }
    }

    impl TraceSeries {
        /// Reads the CSV file at `path`, taking values from the column named `column`.
        pub fn read(path: &Path, column: &str) -> Result<Self, TraceError> {
            let text = std::fs::read_to_string(path).map_err(|e| TraceError {
                path: path.into(),
                line: 0,
                message: e.to_string(),
            })?;
            Self::parse(path, &text, column)
        }

        /// Parses CSV text; `source` names it in errors. The first non-blank line is the
        /// header, its first column the timestamps; blank lines are skipped.
        pub fn parse(source: &Path, text: &str, column: &str) -> Result<Self, TraceError> {
            let err = |line, message: String| TraceError {
                path: source.into(),
                line,
                message,
            };
            let mut lines = text
                .strip_prefix('\u{feff}')
                .unwrap_or(text)
                .lines()
                .enumerate()
                .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
                .filter(|(_, l)| !l.trim().is_empty());
            let Some((header_line, header)) = lines.next() else {
                return Err(err(
                    0,
                    "empty: expected a header such as `timestamp,value` and rows".into(),
                ));
            };
            let names = fields(header);
            let value_at = match names.iter().position(|n| *n == column) {
                Some(0) => {
                    return Err(err(
                        header_line,
                        format!(
                            "column {column:?} is the first column, which holds the timestamps"
                        ),
                    ));
                }
                Some(i) => i,
                None => {
                    return Err(err(
                        header_line,
                        format!("no column {column:?} in the header ({})", names.join(", ")),
                    ));
                }
            };
            let mut points: Vec<(f64, f64)> = Vec::new();
            let mut previous: Option<(f64, usize)> = None;
            for (line, row) in lines {
                let f = fields(row);
                if f.len() != names.len() {
                    return Err(err(
                        line,
                        format!("{} fields where the header has {}", f.len(), names.len()),
                    ));
                }
                let time = timestamp::parse(f[0])
                    .map_err(|m| err(line, format!("timestamp {:?}: {m}", f[0])))?;
                let value = f[value_at]
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .ok_or_else(|| {
                        err(
                            line,
                            format!("{column} {:?} is not a number >= 0", f[value_at]),
                        )
                    })?;
                if let Some((before, before_line)) = previous
                    && time <= before
                {
                    return Err(err(
                        line,
                        format!(
                            "timestamp {:?} is not after the one on line {before_line}: the series must move forward in time",
                            f[0]
                        ),
                    ));
                }
                previous = Some((time, line));
                points.push((time, value));
            }
            match points.len() {
                0 => return Err(err(header_line, "no rows after the header".into())),
                1 => {
                    return Err(err(
                        header_line,
                        "only one row: replay needs two or more to interpolate".into(),
                    ));
                }
                _ => {}
            }
            let max = points.iter().map(|p| p.1).fold(0.0, f64::max);
            if max <= 0.0 {
                return Err(err(
                    0,
                    format!("every {column} is 0: there is no maximum to scale to the peak"),
                ));
            }
            let first = points[0].0;
            Ok(TraceSeries {
                source: source.into(),
                points: points.iter().map(|&(t, v)| (t - first, v)).collect(),
                max,
            })
        }

        /// The file the series came from.
        pub fn source(&self) -> &Path {
            &self.source
        }

        /// Number of points.
        pub fn len(&self) -> usize {
            self.points.len()
        }

        /// Whether nothing has been read (a trace spec not yet loaded).
        pub fn is_empty(&self) -> bool {
            self.points.is_empty()
        }

        /// Time from the first point to the last: the longest scenario it can drive.
        pub fn span(&self) -> Duration {
            self.points
                .last()
                .map_or(Duration::ZERO, |p| Duration::from_secs_f64(p.0))
        }

        /// The largest value, which [`TraceSeries::scaled`] maps to the peak.
        pub fn max(&self) -> f64 {
            self.max
        }

        /// The series at `t`, linearly interpolated; held at its ends outside them.
        pub fn value_at(&self, t: Duration) -> f64 {
            let s = t.as_secs_f64();
            let after = self.points.partition_point(|p| p.0 <= s);
            match (
                after.checked_sub(1).map(|i| self.points[i]),
                self.points.get(after),
            ) {
                (Some((t0, v0)), Some(&(t1, v1))) => v0 + (v1 - v0) * (s - t0) / (t1 - t0),
                (Some((_, v)), None) | (None, Some(&(_, v))) => v,
                (None, None) => 0.0,
            }
        }

        /// The series at `t` scaled so that its maximum is `peak`.
        pub fn scaled(&self, t: Duration, peak: f64) -> f64 {
            if self.max > 0.0 {
                self.value_at(t) * peak / self.max
            } else {
                0.0
            }
        }
    }

    /// A CSV line's fields, trimmed, with one pair of surrounding quotes removed.
    fn fields(line: &str) -> Vec<&str> {
        line.split(',')
            .map(|f| {
                let f = f.trim();
                f.strip_prefix('"')
                    .and_then(|g| g.strip_suffix('"'))
                    .unwrap_or(f)
            })
            .collect()
    }
}

/// Trace timestamps: seconds, RFC 3339, or `YYYY-MM-DD HH:MM:SS` as NAB writes them. Only
/// differences matter, so a time without an offset is read as UTC.
mod timestamp {
    /// Seconds since the Unix epoch (or since whatever origin plain seconds count from).
    pub(super) fn parse(text: &str) -> Result<f64, String> {
        if let Ok(seconds) = text.parse::<f64>() {
            return if seconds.is_finite() {
                Ok(seconds)
            } else {
                Err("not a finite number of seconds".into())
            };
        }
        let (date, time) = text
            .split_once(['T', 't', ' '])
            .ok_or("expected seconds, RFC 3339 (2014-07-01T00:00:00Z) or `YYYY-MM-DD HH:MM:SS`")?;
        let days = days(date)?;
        let (clock, offset) = split_offset(time)?;
        let mut hms = clock.split(':');
        let (Some(h), Some(m), Some(s), None) = (hms.next(), hms.next(), hms.next(), hms.next())
        else {
            return Err(format!("time {clock:?} is not HH:MM:SS"));
        };
        let (h, m) = (digits(h, 2, "hour")?, digits(m, 2, "minute")?);
        let (whole, fraction) = s.split_once('.').unwrap_or((s, "0"));
        let whole = digits(whole, 2, "second")?;
        if h > 23 || m > 59 || whole > 60 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("time {clock:?} is out of range"));
        }
        let fraction: f64 = format!("0.{fraction}").parse().unwrap_or(0.0);
        Ok(
            days as f64 * 86_400.0 + f64::from(h * 3600 + m * 60 + whole) + fraction
                - f64::from(offset),
        )
    }

    /// Days from 1970-01-01 to the date `YYYY-MM-DD` (proleptic Gregorian).
    fn days(date: &str) -> Result<i64, String> {
        let mut ymd = date.split('-');
        let (Some(y), Some(m), Some(d), None) = (ymd.next(), ymd.next(), ymd.next(), ymd.next())
        else {
            return Err(format!("date {date:?} is not YYYY-MM-DD"));
        };
        let (y, m, d) = (
            i64::from(digits(y, 4, "year")?),
            digits(m, 2, "month")?,
            digits(d, 2, "day")?,
        );
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let month_days = match m {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return Err(format!("month {m} in {date:?} does not exist")),
        };
        if d == 0 || d > month_days {
            return Err(format!("day {d} in {date:?} does not exist"));
        }
        // Howard Hinnant's days_from_civil: years start in March, so leap days come last.
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let year_of_era = y - era * 400;
        let month_from_march = i64::from((m + 9) % 12);
        let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(d) - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        Ok(era * 146_097 + day_of_era - 719_468)
    }

    /// Splits `HH:MM:SS[.f]` from its offset (`Z`, `+HH:MM`, `-HH:MM` or none), the offset in
    /// seconds east of UTC.
    fn split_offset(time: &str) -> Result<(&str, i32), String> {
        if let Some(clock) = time.strip_suffix(['Z', 'z']) {
            return Ok((clock, 0));
        }
        let Some(at) = time.find(['+', '-']) else {
            return Ok((time, 0));
        };
        let (clock, offset) = time.split_at(at);
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let Some((h, m)) = offset[1..].split_once(':') else {
            return Err(format!("offset {offset:?} is not ±HH:MM"));
        };
        let (h, m) = (digits(h, 2, "offset hour")?, digits(m, 2, "offset minute")?);
        if h > 23 || m > 59 {
            return Err(format!("offset {offset:?} is out of range"));
        }
        Ok((clock, sign * (h * 3600 + m * 60) as i32))
    }

    /// A field of exactly `len` ASCII digits.
    fn digits(text: &str, len: usize, what: &str) -> Result<u32, String> {
        if text.len() != len || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{what} {text:?} is not {len} digits"));
        }
        text.parse()
            .map_err(|_| format!("{what} {text:?} is not a number"))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::scenario::{DiurnalSpec, TraceSpec, Weekday, WeeklySpec};

    const HOUR: u64 = 3600;
    const DAY: u64 = 24 * HOUR;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn spec(base: f64, events: Vec<LoadEvent>) -> LoadSpec {
        LoadSpec {
            base,
            events,
            ..LoadSpec::default()
        }
    }

    #[test]
    fn spike_ramps_holds_and_falls_back() {
        let t = LoadTrace::new(
            spec(
                100.0,
                vec![LoadEvent::Spike {
                    at: secs(100),
                    ramp_up: secs(10),
                    hold: secs(20),
                    ramp_down: secs(10),
                    factor: 5.0,
                }],
            ),
            1,
        );
        let at = |s| t.shape(secs(s));
        assert_eq!(at(50), 100.0);
        assert_eq!(at(105), 300.0);
        assert_eq!(at(120), 500.0);
        assert_eq!(at(135), 300.0);
        assert_eq!(at(140), 100.0);
        assert!(t.in_event(secs(120)) && !t.in_event(secs(150)));
    }

    #[test]
    fn in_event_is_exactly_the_window_of_each_event() {
        let events = vec![
            LoadEvent::Spike {
                at: secs(100),
                ramp_up: secs(10),
                hold: secs(20),
                ramp_down: secs(10),
                factor: 5.0,
            },
            LoadEvent::Step {
                at: secs(1000),
                hold: Some(secs(500)),
                factor: 0.5,
            },
            LoadEvent::Ramp {
                at: secs(3000),
                over: secs(1000),
                hold: None,
                factor: 3.0,
            },
        ];
        let t = LoadTrace::new(spec(100.0, events), 1);
        let inside = [100..140, 1000..1500, 3000..20_000];
        for s in 0..20_000 {
            let expected = inside.iter().any(|r| r.contains(&s));
            assert_eq!(t.in_event(secs(s)), expected, "t = {s}s");
        }
        // A drop is an incident too, and a lasting step or ramp lasts.
        assert_eq!(t.shape(secs(1200)), 50.0);
        assert_eq!(t.shape(secs(3500)), 200.0);
        assert_eq!(t.shape(secs(19_999)), 300.0);
    }

    #[test]
    fn step_holds_a_level_and_ramp_rises_linearly() {
        let step = LoadEvent::Step {
            at: secs(HOUR),
            hold: None,
            factor: 1.5,
        };
        assert_eq!(step.factor(secs(HOUR - 1)), 1.0);
        assert_eq!(step.factor(secs(HOUR)), 1.5);
        assert_eq!(step.factor(secs(100 * DAY)), 1.5);
        let ramp = LoadEvent::Ramp {
            at: secs(HOUR),
            over: secs(4 * HOUR),
            hold: Some(secs(HOUR)),
            factor: 3.0,
        };
        assert_eq!(ramp.factor(secs(HOUR)), 1.0);
        assert_eq!(ramp.factor(secs(3 * HOUR)), 2.0);
        assert_eq!(ramp.factor(secs(5 * HOUR + 10)), 3.0);
        assert_eq!(ramp.factor(secs(6 * HOUR)), 1.0);
        assert_eq!(ramp.window(), (secs(HOUR), Some(secs(6 * HOUR))));
    }

    #[test]
    fn events_multiply_with_each_other_and_the_daily_cycle() {
        let mut s = spec(
            100.0,
            vec![
                LoadEvent::Step {
                    at: secs(0),
                    hold: None,
                    factor: 2.0,
                },
                LoadEvent::Step {
                    at: secs(0),
                    hold: None,
                    factor: 3.0,
                },
            ],
        );
        s.diurnal = Some(DiurnalSpec {
            amplitude: 0.5,
            peak_at: secs(12 * HOUR),
        });
        let t = LoadTrace::new(s, 1);
        assert!((t.shape(secs(12 * HOUR)) - 900.0).abs() < 1e-9);
        assert!((t.normal(secs(12 * HOUR)) - 150.0).abs() < 1e-9);
    }

    #[test]
    fn diurnal_peaks_at_peak_at_and_bottoms_out_twelve_hours_later() {
        let d = DiurnalSpec {
            amplitude: 0.6,
            peak_at: secs(14 * HOUR),
        };
        let mut s = spec(100.0, vec![]);
        s.diurnal = Some(d.clone());
        let t = LoadTrace::new(s, 1);
        // Sample every minute for two days: the peak is at 14:00, the trough at 02:00.
        let samples: Vec<(u64, f64)> = (0..2 * DAY / 60)
            .map(|m| (m * 60, t.shape(secs(m * 60))))
            .collect();
        for day in 0..2 {
            let one = &samples[(day * 1440) as usize..((day + 1) * 1440) as usize];
            let max = one
                .iter()
                .copied()
                .fold((0, f64::MIN), |a, b| if b.1 > a.1 { b } else { a });
            let min = one
                .iter()
                .copied()
                .fold((0, f64::MAX), |a, b| if b.1 < a.1 { b } else { a });
            assert_eq!(max.0 % DAY, 14 * HOUR);
            assert_eq!(min.0 % DAY, 2 * HOUR);
            assert!((max.1 - 160.0).abs() < 1e-9 && (min.1 - 40.0).abs() < 1e-9);
            let mean = one.iter().map(|p| p.1).sum::<f64>() / one.len() as f64;
            assert!((mean - 100.0).abs() < 1e-6, "{mean}");
        }
        assert!(!(0..2 * DAY).step_by(60).any(|s| t.in_event(secs(s))));
    }

    #[test]
    fn weekend_factor_applies_on_saturday_and_sunday() {
        for (start, weekend_days) in [
            (Weekday::Monday, [5, 6]),
            (Weekday::Saturday, [0, 1]),
            (Weekday::Sunday, [0, 6]),
            (Weekday::Thursday, [2, 3]),
        ] {
            let mut s = spec(100.0, vec![]);
            s.weekly = Some(WeeklySpec {
                weekend_factor: 0.5,
                start_day: start,
                transition: secs(4 * HOUR),
            });
            let t = LoadTrace::new(s, 1);
            let weekend = |day: u64| weekend_days.contains(&(day % 7));
            for day in 0..14u64 {
                let expected = if weekend(day) { 50.0 } else { 100.0 };
                // Outside the transition, two hours either side of midnight.
                for hour in [2, 12, 21] {
                    let at = secs(day * DAY + hour * HOUR);
                    assert_eq!(t.shape(at), expected, "{start:?} + day {day}, {hour}h");
                    assert!(!t.in_event(at));
                }
                // Halfway through a change at midnight; no change between two alike days.
                let before = day.checked_sub(1).map_or(weekend(6), weekend);
                let midnight = if before == weekend(day) {
                    expected
                } else {
                    75.0
                };
                assert!(
                    (t.shape(secs(day * DAY)) - midnight).abs() < 1e-9,
                    "{start:?} + day {day}, midnight"
                );
            }
        }
    }

    #[test]
    fn the_weekend_change_is_gradual_unless_asked_otherwise() {
        let weekly = |transition| WeeklySpec {
            weekend_factor: 0.5,
            start_day: Weekday::Friday,
            transition,
        };
        // Friday 22:00 to Saturday 02:00 (240 steps of 15 s an hour): monotonic, never more
        // than 2 % in a step.
        let smooth = weekly(secs(4 * HOUR));
        let values: Vec<f64> = (22 * 240..26 * 240)
            .map(|q| cycle::weekly(&smooth, secs(q * 15)))
            .collect();
        assert_eq!((values[0], values[values.len() - 1] > 0.5), (1.0, true));
        for w in values.windows(2) {
            assert!(w[1] <= w[0] && w[0] - w[1] < 0.02 * w[0], "{w:?}");
        }
        let sudden = weekly(Duration::ZERO);
        assert_eq!(cycle::weekly(&sudden, secs(DAY - 1)), 1.0);
        assert_eq!(cycle::weekly(&sudden, secs(DAY)), 0.5);
    }

    #[test]
    fn noise_is_bounded_and_seeded() {
        let spec = spec(100.0, vec![]);
        let spec = LoadSpec { noise: 0.1, ..spec };
        let (mut a, mut b) = (LoadTrace::new(spec.clone(), 3), LoadTrace::new(spec, 3));
        for i in 0..100 {
            let t = secs(i);
            let v = a.next(t);
            assert!((90.0..=110.0).contains(&v));
            assert_eq!(v, b.next(t));
        }
    }

    fn series(text: &str) -> Result<TraceSeries, TraceError> {
        TraceSeries::parse(Path::new("t.csv"), text, "value")
    }

    #[test]
    fn trace_is_shifted_scaled_to_peak_and_interpolated() {
        let s = series(
            "timestamp,value\n2014-07-01 00:00:00,10\n2014-07-01 00:30:00,40\n2014-07-01 01:00:00,20\n",
        )
        .expect("valid");
        assert_eq!((s.len(), s.max(), s.span()), (3, 40.0, secs(HOUR)));
        let load = LoadSpec {
            trace: Some(TraceSpec {
                file: "t.csv".into(),
                peak: 900.0,
                column: "value".into(),
                series: s,
            }),
            ..LoadSpec::default()
        };
        let t = LoadTrace::new(load, 1);
        assert_eq!(t.shape(secs(0)), 225.0);
        assert_eq!(t.shape(secs(30 * 60)), 900.0);
        assert_eq!(t.shape(secs(15 * 60)), 562.5);
        assert_eq!(t.shape(secs(45 * 60)), 675.0);
        assert_eq!(t.shape(secs(HOUR)), 450.0);
        assert!(!t.in_event(secs(30 * 60)));
    }

    #[test]
    fn timestamps_in_every_accepted_form_agree() {
        let nab = timestamp::parse("2014-07-01 00:00:00").expect("nab");
        assert_eq!(nab, 1_404_172_800.0);
        for same in [
            "2014-07-01T00:00:00Z",
            "2014-07-01T02:00:00+02:00",
            "2014-06-30T20:00:00-04:00",
            "2014-07-01t00:00:00.000z",
            "1404172800",
        ] {
            assert_eq!(timestamp::parse(same), Ok(nab), "{same}");
        }
        assert_eq!(timestamp::parse("1970-01-01T00:00:00Z"), Ok(0.0));
        assert_eq!(timestamp::parse("2000-03-01 00:00:00.5"), Ok(951_868_800.5));
        for bad in [
            "2014-02-29 00:00:00",
            "2014-13-01 00:00:00",
            "2014-07-01 24:00:00",
            "2014-07-01",
            "yesterday",
            "NaN",
        ] {
            assert!(timestamp::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn trace_errors_name_the_file_and_line() {
        let cases = [
            (
                "timestamp,value\n0,1\n15,x\n",
                "t.csv:3: value \"x\" is not a number >= 0",
            ),
            (
                "timestamp,value\n0,1\n\n15,1,2\n",
                "t.csv:4: 3 fields where the header has 2",
            ),
            (
                "timestamp,value\n2014-07-01 00:00:00,1\n2014-07-01 00:60:00,2\n",
                "t.csv:3: timestamp \"2014-07-01 00:60:00\": time \"00:60:00\" is out of range",
            ),
            (
                "timestamp,value\n0,1\n30,2\n30,3\n",
                "t.csv:4: timestamp \"30\" is not after the one on line 3",
            ),
            (
                "timestamp,value\n0,-1\n",
                "t.csv:2: value \"-1\" is not a number >= 0",
            ),
            ("timestamp,value\n", "t.csv:1: no rows after the header"),
            ("timestamp,value\n0,1\n", "t.csv:1: only one row"),
            ("", "t.csv: empty"),
            (
                "timestamp,count\n0,1\n",
                "t.csv:1: no column \"value\" in the header (timestamp, count)",
            ),
            ("timestamp,value\n0,0\n1,0\n", "t.csv: every value is 0"),
        ];
        for (text, expected) in cases {
            let e = series(text).expect_err(expected).to_string();
            assert!(e.starts_with(expected), "{e}\n  wanted {expected}");
        }
        let missing = TraceSeries::read(Path::new("no/such.csv"), "value").expect_err("missing");
        assert!(
            missing.to_string().starts_with("no/such.csv: "),
            "{missing}"
        );
    }

    #[test]
    fn quotes_a_bom_and_crlf_are_tolerated() {
        let s =
            series("\u{feff}\"timestamp\",\"value\"\r\n\"0\",\"2\"\r\n60,4\r\n").expect("valid");
        assert_eq!((s.len(), s.max()), (2, 4.0));
        assert_eq!(s.value_at(secs(30)), 3.0);
        assert_eq!(s.value_at(secs(600)), 4.0);
    }
}
