//! Recorded series: reading a `timestamp,value` CSV and interpolating it.
//!
//! A hand parser rather than the `csv` crate: the files are two numeric columns with no
//! quoting, the errors must name the exact line (simple here, since one row is one line),
//! and it adds no dependency to the workspace.

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
                    format!("column {column:?} is the first column, which holds the timestamps"),
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
