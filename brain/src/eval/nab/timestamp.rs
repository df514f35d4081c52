//! NAB's timestamps, `YYYY-MM-DD HH:MM:SS` with optional fractional seconds, as microseconds
//! since the Unix epoch: windows and data rows are matched by instant, not by text, because
//! the windows file writes `.000000` where the data files write nothing.

/// Microseconds since 1970-01-01T00:00:00 (no time zone: NAB's are naive); `None` if `text`
/// is not of that form.
pub fn parse_timestamp(text: &str) -> Option<i64> {
    let text = text.trim();
    let (date, time) = text.split_once([' ', 'T'])?;
    let mut d = date.splitn(3, '-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    let (hms, frac) = match time.split_once('.') {
        Some((hms, frac)) => (hms, frac),
        None => (time, ""),
    };
    let mut t = hms.splitn(3, ':');
    let hour: i64 = t.next()?.parse().ok()?;
    let minute: i64 = t.next()?.parse().ok()?;
    let second: i64 = t.next().unwrap_or("0").parse().ok()?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || !(0..24).contains(&hour)
        || !(0..60).contains(&minute)
        || !(0..=60).contains(&second)
        || frac.len() > 9
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let micros: i64 = if frac.is_empty() {
        0
    } else {
        let padded = format!("{frac:0<9}");
        padded.parse::<i64>().ok()? / 1000
    };
    let days = days_from_civil(year, month, day);
    Some((((days * 24 + hour) * 60 + minute) * 60 + second) * 1_000_000 + micros)
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse_timestamp;

    #[test]
    fn data_and_window_spellings_of_one_instant_agree() {
        let a = parse_timestamp("2014-04-10 07:15:00").expect("valid");
        let b = parse_timestamp("2014-04-10 07:15:00.000000").expect("valid");
        assert_eq!(a, b);
        assert_eq!(parse_timestamp("1970-01-01 00:00:01"), Some(1_000_000));
        assert_eq!(
            parse_timestamp("1970-01-02 00:00:00.5"),
            Some(86_400_500_000)
        );
        assert_eq!(
            parse_timestamp("2000-03-01 00:00:00").expect("valid")
                - parse_timestamp("2000-02-28 00:00:00").expect("valid"),
            2 * 86_400_000_000,
            "2000 is a leap year"
        );
    }

    #[test]
    fn rejects_what_is_not_a_timestamp() {
        for bad in [
            "",
            "2014-04-10",
            "2014-13-01 00:00:00",
            "x 00:00:00",
            "2014-01-01 25:00:00",
        ] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }
}
