//! Trace timestamps: seconds, RFC 3339, or `YYYY-MM-DD HH:MM:SS` as NAB writes them. Only
//! differences matter, so a time without an offset is read as UTC.

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
    let (Some(h), Some(m), Some(s), None) = (hms.next(), hms.next(), hms.next(), hms.next()) else {
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
    let (Some(y), Some(m), Some(d), None) = (ymd.next(), ymd.next(), ymd.next(), ymd.next()) else {
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
