//! When a policy may act (`spec.schedule`): deny windows in which it never acts, and
//! maintenance windows outside which it takes no destructive action, read in an IANA time
//! zone from the tz database bundled into the binary (so a node's own zoneinfo, or its
//! absence, changes nothing).

use std::fmt;

use homeostat_core::Timestamp;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::Deserializer;

use crate::condition::LocalTime;
use crate::scalar;
use crate::schema::inline_schema;

/// A policy's schedule.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a mapping of timeZone, deny and maintenance"
)]
pub struct Schedule {
    /// IANA time zone the windows (and conditions' `time`) are read in; UTC when missing.
    #[serde(default)]
    pub time_zone: Zone,
    /// Windows in which the policy allows nothing at all.
    #[serde(default)]
    pub deny: Vec<Window>,
    /// When given, destructive actions are allowed only inside one of these windows.
    #[serde(default)]
    pub maintenance: Vec<Window>,
}

/// A time zone, by its IANA name.
#[derive(Clone)]
pub struct Zone {
    name: String,
    tz: jiff::tz::TimeZone,
}

impl Zone {
    /// The zone called `name` in the bundled tz database (`UTC`, `Europe/Berlin`).
    pub fn new(name: &str) -> Result<Zone, String> {
        jiff::tz::TimeZone::get(name)
            .map(|tz| Zone {
                name: name.to_owned(),
                tz,
            })
            .map_err(|_| {
                format!(
                    "unknown time zone {name:?} (hint: an IANA name such as \"UTC\" or \
                     \"Europe/Berlin\")"
                )
            })
    }

    /// The IANA name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `now` on the wall clock of this zone.
    pub fn local(&self, now: Timestamp) -> LocalTime {
        let zoned = jiff::Timestamp::from_nanosecond(i128::from(now.as_nanos()))
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .to_zoned(self.tz.clone());
        let day = Day::from_monday(zoned.weekday().to_monday_zero_offset());
        LocalTime {
            hour: u8::try_from(zoned.hour()).unwrap_or(0),
            minute: u8::try_from(zoned.minute()).unwrap_or(0),
            weekday: day.as_str(),
        }
    }
}

impl Default for Zone {
    fn default() -> Self {
        Zone {
            name: "UTC".to_owned(),
            tz: jiff::tz::TimeZone::UTC,
        }
    }
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        scalar::string(deserializer, "an IANA time zone name", Zone::new)
    }
}

inline_schema!(
    Zone,
    "Zone",
    schemars::json_schema!({"type": "string", "minLength": 1})
);

/// Days and a time range within each, `from` inclusive, `to` exclusive.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(
    deny_unknown_fields,
    rename_all = "camelCase",
    expecting = "a mapping of days, from and to"
)]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.from < self.to",
    "message": "from must be before to; split a window that crosses midnight in two",
}]))]
pub struct Window {
    /// The days it applies on (`mon` … `sun`); every day when missing.
    #[serde(default = "every_day")]
    pub days: Vec<Day>,
    /// Start, `HH:MM`.
    pub from: TimeOfDay,
    /// End, `HH:MM` up to `24:00`; after `from`.
    #[serde(deserialize_with = "end_of_window")]
    pub to: TimeOfDay,
}

impl Window {
    /// Whether `local` falls inside.
    pub fn contains(&self, local: LocalTime) -> bool {
        let minute = u16::from(local.hour) * 60 + u16::from(local.minute);
        self.days.iter().any(|d| d.as_str() == local.weekday)
            && self.from.0 <= minute
            && minute < self.to.0
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days: Vec<&str> = self.days.iter().map(|d| d.as_str()).collect();
        write!(f, "[{}] {}–{}", days.join(","), self.from, self.to)
    }
}

fn every_day() -> Vec<Day> {
    DAYS.to_vec()
}

/// A day of the week, as schedules and conditions spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

const DAYS: [Day; 7] = [
    Day::Mon,
    Day::Tue,
    Day::Wed,
    Day::Thu,
    Day::Fri,
    Day::Sat,
    Day::Sun,
];

impl Day {
    /// `mon` … `sun`.
    pub fn as_str(self) -> &'static str {
        match self {
            Day::Mon => "mon",
            Day::Tue => "tue",
            Day::Wed => "wed",
            Day::Thu => "thu",
            Day::Fri => "fri",
            Day::Sat => "sat",
            Day::Sun => "sun",
        }
    }

    fn from_monday(offset: i8) -> Day {
        DAYS[usize::try_from(offset).unwrap_or(0) % 7]
    }
}

inline_schema!(Day, "Day", {
    let names: Vec<&str> = DAYS.iter().map(|d| d.as_str()).collect();
    schemars::json_schema!({"type": "string", "enum": names})
});

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        scalar::string(deserializer, "a day: mon … sun", |text| {
            DAYS.into_iter()
                .find(|d| d.as_str() == text)
                .ok_or_else(|| {
                    format!(
                        "unknown day {text:?}: expected one of mon, tue, wed, thu, fri, sat, sun"
                    )
                })
        })
    }
}

/// A time of day, minutes since midnight; `24:00` (1440) only ends a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    /// `HH:MM`, 00:00 to 24:00.
    pub fn parse(text: &str) -> Result<TimeOfDay, String> {
        let bad = || format!("invalid time {text:?}: expected HH:MM between 00:00 and 24:00");
        let (h, m) = text.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(bad());
        }
        let h: u16 = h.parse().map_err(|_| bad())?;
        let m: u16 = m.parse().map_err(|_| bad())?;
        if m >= 60 || h > 24 || (h == 24 && m != 0) {
            return Err(bad());
        }
        Ok(TimeOfDay(h * 60 + m))
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.0 / 60, self.0 % 60)
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        scalar::string(deserializer, "a time of day, HH:MM", |text| {
            let t = TimeOfDay::parse(text)?;
            if t.0 == 24 * 60 {
                Err(format!(
                    "invalid time {text:?}: 24:00 may only end a window (use it in `to`)"
                ))
            } else {
                Ok(t)
            }
        })
    }
}

fn end_of_window<'de, D: Deserializer<'de>>(deserializer: D) -> Result<TimeOfDay, D::Error> {
    scalar::string(deserializer, "a time of day, HH:MM", |text| {
        let t = TimeOfDay::parse(text)?;
        if t.0 == 0 {
            Err(format!(
                "invalid end {text:?}: a window cannot end at midnight's start (hint: 24:00 ends \
                 a day)"
            ))
        } else {
            Ok(t)
        }
    })
}

inline_schema!(
    TimeOfDay,
    "TimeOfDay",
    schemars::json_schema!({
        "type": "string",
        "pattern": "^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$",
    })
);

impl Schedule {
    /// The deny window `now` falls in, if any.
    pub fn denied(&self, local: LocalTime) -> Option<&Window> {
        self.deny.iter().find(|w| w.contains(local))
    }

    /// Whether a destructive action may run at `local`: always when no maintenance window
    /// is given, else only inside one.
    pub fn in_maintenance(&self, local: LocalTime) -> bool {
        self.maintenance.is_empty() || self.maintenance.iter().any(|w| w.contains(local))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_of_day() {
        assert_eq!(TimeOfDay::parse("00:00"), Ok(TimeOfDay(0)));
        assert_eq!(TimeOfDay::parse("24:00"), Ok(TimeOfDay(1440)));
        assert_eq!(
            TimeOfDay::parse("09:30").map(|t| t.to_string()),
            Ok("09:30".into())
        );
        for bad in ["9:30", "24:01", "12:60", "noon", "12-30", ""] {
            assert!(TimeOfDay::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn local_time_follows_the_zone_and_its_summer_time() {
        let berlin = Zone::new("Europe/Berlin").expect("bundled tzdb");
        // 2026-01-10 (a Saturday) 23:30 UTC is Sunday 00:30 in Berlin (UTC+1).
        let winter = Timestamp::from_secs(1_768_087_800);
        assert_eq!(
            berlin.local(winter),
            LocalTime {
                hour: 0,
                minute: 30,
                weekday: "sun"
            }
        );
        assert_eq!(Zone::default().local(winter).weekday, "sat");
        // 2026-07-01 12:00 UTC is 14:00 in Berlin (UTC+2).
        assert_eq!(berlin.local(Timestamp::from_secs(1_782_907_200)).hour, 14);
        assert!(Zone::new("Mars/Olympus").is_err());
    }
}
