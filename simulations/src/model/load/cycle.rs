//! The daily and weekly cycles: pure functions of the time since the start, which is
//! midnight at the start of the scenario's first day.

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
