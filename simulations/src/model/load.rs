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

mod cycle;
mod timestamp;
mod trace;

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

    /// The events `t` lies within, to label the ground truth.
    pub fn events_at(&self, t: Duration) -> impl Iterator<Item = &LoadEvent> {
        self.spec.events.iter().filter(move |e| e.covers(t))
    }
}

impl LoadEvent {
    /// The event's kind for reports: `load spike`, `load step` or `load ramp`.
    pub fn kind_name(&self) -> &'static str {
        match self {
            LoadEvent::Spike { .. } => "load spike",
            LoadEvent::Step { .. } => "load step",
            LoadEvent::Ramp { .. } => "load ramp",
        }
    }

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
