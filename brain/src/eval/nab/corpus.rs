//! A benchmark in NAB's layout on disk: `data/<group>/<file>.csv` (`timestamp,value`),
//! `combined_windows.json`, and result files `<detector>/<group>/<detector>_<file>.csv`.
//!
//! The files are plain comma-separated text without quoting, as NAB writes them; every error
//! names the file and, where there is one, the line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use super::{SeriesLabels, parse_timestamp};

/// Why a benchmark could not be read or results not written.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A file's content is not what NAB's layout promises.
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 when the file as a whole is at fault).
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// One labelled series.
#[derive(Clone, Debug)]
pub struct Series {
    /// Path under `data/`, with `/` separators, as keyed in `combined_windows.json`.
    pub name: String,
    /// Each row's timestamp as written, to be echoed into result files.
    pub timestamp_text: Vec<String>,
    /// Each row's value as written.
    pub value_text: Vec<String>,
    /// The values, in time order (non-finite where the file says so).
    pub values: Vec<f64>,
    /// Whether each row lies inside an anomaly window (NAB's `label` column).
    pub in_window: Vec<bool>,
    /// Each row's role for scoring.
    pub labels: SeriesLabels,
}

/// Every series of a benchmark, sorted by name.
#[derive(Clone, Debug)]
pub struct Corpus {
    /// The series.
    pub series: Vec<Series>,
}

/// Reads `dir/data/**/*.csv` and `dir/combined_windows.json`. A data file without an entry in
/// the windows file is an error: it could not be scored.
pub fn load_corpus(dir: &Path) -> Result<Corpus, CorpusError> {
    let windows_path = dir.join("combined_windows.json");
    let windows = read_windows(&windows_path)?;
    let data_dir = dir.join("data");
    let mut files = Vec::new();
    collect_csv(&data_dir, &mut files)?;
    files.sort();
    if files.is_empty() {
        return Err(parse_error(&data_dir, 0, "no .csv files under it"));
    }
    let mut series = Vec::with_capacity(files.len());
    for path in files {
        let name = relative_name(&data_dir, &path);
        let Some(limits) = windows.get(&name) else {
            return Err(parse_error(
                &windows_path,
                0,
                format!("no entry for data file {name:?}"),
            ));
        };
        series.push(read_series(&path, name, limits)?);
    }
    for name in windows.keys() {
        if !series.iter().any(|s| &s.name == name) {
            tracing::warn!(%name, "combined_windows.json names a file not under data/");
        }
    }
    Ok(Corpus { series })
}

/// Where a detector's results for `series_name` live under `dir`, in NAB's naming:
/// `dir/<group>/<detector>_<file>.csv`.
pub fn result_path(dir: &Path, detector: &str, series_name: &str) -> PathBuf {
    let (group, file) = series_name.rsplit_once('/').unwrap_or(("", series_name));
    dir.join(group).join(format!("{detector}_{file}"))
}

/// Reads the `anomaly_score` column of a result file for `series`, paired with the data rows
/// by position: it must have exactly as many rows.
pub fn load_result_scores(path: &Path, series: &Series) -> Result<Vec<f64>, CorpusError> {
    let text = read(path)?;
    let mut lines = numbered_lines(&text);
    let (_, header) = lines
        .next()
        .ok_or_else(|| parse_error(path, 1, "empty file, expected a header"))?;
    let column = header
        .split(',')
        .position(|h| unquote(h) == "anomaly_score")
        .ok_or_else(|| parse_error(path, 1, "no anomaly_score column in the header"))?;
    let mut scores = Vec::with_capacity(series.values.len());
    for (line, row) in lines {
        let field = row
            .split(',')
            .nth(column)
            .ok_or_else(|| parse_error(path, line, "too few fields for anomaly_score"))?;
        let score: f64 = unquote(field).parse().map_err(|_| {
            parse_error(
                path,
                line,
                format!("anomaly_score {field:?} is not a number"),
            )
        })?;
        scores.push(score);
    }
    if scores.len() != series.values.len() {
        return Err(parse_error(
            path,
            0,
            format!(
                "{} rows but data/{} has {}: results are paired with data rows by position",
                scores.len(),
                series.name,
                series.values.len()
            ),
        ));
    }
    Ok(scores)
}

/// Writes one NAB result file per series under `dir` (`timestamp,value,anomaly_score,label`).
pub fn write_results(
    dir: &Path,
    detector: &str,
    corpus: &Corpus,
    scores: &[Vec<f64>],
) -> Result<(), CorpusError> {
    for (series, scores) in corpus.series.iter().zip(scores) {
        let path = result_path(dir, detector, &series.name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|source| CorpusError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let mut text = String::with_capacity(series.values.len() * 48);
        text.push_str("timestamp,value,anomaly_score,label\n");
        for i in 0..series.values.len() {
            let _ = writeln!(
                text,
                "{},{},{},{}",
                series.timestamp_text[i],
                series.value_text[i],
                scores.get(i).copied().unwrap_or(0.0),
                u8::from(series.in_window[i])
            );
        }
        fs::write(&path, text).map_err(|source| CorpusError::Io { path, source })?;
    }
    Ok(())
}

fn read_windows(path: &Path) -> Result<BTreeMap<String, Vec<(i64, i64)>>, CorpusError> {
    let text = read(path)?;
    let raw: BTreeMap<String, Vec<(String, String)>> = serde_json::from_str(&text)
        .map_err(|e| parse_error(path, e.line(), format!("not a NAB windows file: {e}")))?;
    let mut windows = BTreeMap::new();
    for (name, limits) in raw {
        let mut parsed = Vec::with_capacity(limits.len());
        for (start, end) in limits {
            let instant = |t: &str| {
                parse_timestamp(t).ok_or_else(|| {
                    parse_error(
                        path,
                        0,
                        format!("{name}: window bound {t:?} is not a timestamp"),
                    )
                })
            };
            parsed.push((instant(&start)?, instant(&end)?));
        }
        windows.insert(name, parsed);
    }
    Ok(windows)
}

fn read_series(path: &Path, name: String, limits: &[(i64, i64)]) -> Result<Series, CorpusError> {
    let text = read(path)?;
    let mut lines = numbered_lines(&text);
    let (_, header) = lines
        .next()
        .ok_or_else(|| parse_error(path, 1, "empty file, expected a header"))?;
    let columns: Vec<&str> = header.split(',').map(unquote).collect();
    let find = |wanted: &str| {
        columns
            .iter()
            .position(|c| *c == wanted)
            .ok_or_else(|| parse_error(path, 1, format!("no {wanted} column in the header")))
    };
    let (ts_col, value_col) = (find("timestamp")?, find("value")?);
    let mut series = Series {
        name,
        timestamp_text: Vec::new(),
        value_text: Vec::new(),
        values: Vec::new(),
        in_window: Vec::new(),
        labels: SeriesLabels::new(&[], &[]),
    };
    let mut timestamps = Vec::new();
    for (line, row) in lines {
        let fields: Vec<&str> = row.split(',').map(unquote).collect();
        let (Some(ts_text), Some(value_text)) = (fields.get(ts_col), fields.get(value_col)) else {
            return Err(parse_error(path, line, "too few fields"));
        };
        let ts = parse_timestamp(ts_text).ok_or_else(|| {
            parse_error(
                path,
                line,
                format!("timestamp {ts_text:?} is not YYYY-MM-DD HH:MM:SS"),
            )
        })?;
        let value: f64 = value_text.parse().map_err(|_| {
            parse_error(path, line, format!("value {value_text:?} is not a number"))
        })?;
        timestamps.push(ts);
        series.timestamp_text.push((*ts_text).to_owned());
        series.value_text.push((*value_text).to_owned());
        series.values.push(value);
        series
            .in_window
            .push(limits.iter().any(|&(a, b)| a <= ts && ts <= b));
    }
    series.labels = SeriesLabels::new(&timestamps, limits);
    Ok(series)
}

fn collect_csv(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CorpusError> {
    let io = |source| CorpusError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            collect_csv(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "csv") {
            out.push(path);
        }
    }
    Ok(())
}

fn relative_name(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn read(path: &Path) -> Result<String, CorpusError> {
    fs::read_to_string(path).map_err(|source| CorpusError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Non-empty lines with their 1-based numbers, without trailing `\r`.
fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty())
}

fn unquote(field: &str) -> &str {
    let f = field.trim();
    f.strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .unwrap_or(f)
}

fn parse_error(path: &Path, line: usize, message: impl Into<String>) -> CorpusError {
    CorpusError::Parse {
        path: path.to_path_buf(),
        line,
        message: message.into(),
    }
}
