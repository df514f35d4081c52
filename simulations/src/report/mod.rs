//! Reports of simulation runs: the scorecard that compares the ways a scenario was run, and
//! a self-contained HTML page with a plot of every run, for people to see *why* one way did
//! better than another.

pub mod html;
pub mod plot;
pub mod scorecard;

use std::path::{Path, PathBuf};

use thiserror::Error;

pub use plot::{PlotError, PlotKind};
pub use scorecard::{Scorecard, score};

use crate::run::RunResult;
use crate::scenario::Scenario;

/// Why a report could not be written.
#[derive(Debug, Error)]
pub enum ReportError {
    /// A file or directory could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A plot could not be drawn.
    #[error(transparent)]
    Plot(#[from] PlotError),
    /// The scorecards could not be serialised.
    #[error("scorecard.json: {0}")]
    Json(#[from] serde_json::Error),
}

/// A scenario and every way it was run: the unit a report compares.
#[derive(Clone, Copy, Debug)]
pub struct ScenarioRuns<'a> {
    /// The scenario.
    pub scenario: &'a Scenario,
    /// Its runs, in the order the report shows them.
    pub runs: &'a [RunResult],
}

impl ScenarioRuns<'_> {
    /// The scorecard of every run.
    pub fn scorecards(&self) -> Vec<Scorecard> {
        self.runs.iter().map(score).collect()
    }
}

/// What [`write`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// The HTML page.
    pub index: PathBuf,
    /// Every scorecard, as JSON.
    pub scorecard: PathBuf,
}

/// Writes `dir/index.html` and `dir/scorecard.json` (creating `dir`), replacing earlier ones.
pub fn write(dir: &Path, scenarios: &[ScenarioRuns<'_>]) -> Result<Written, ReportError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ReportError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let cards: Vec<Vec<Scorecard>> = scenarios.iter().map(ScenarioRuns::scorecards).collect();
    let page = html::page(scenarios, &cards)?;
    let index = dir.join("index.html");
    std::fs::write(&index, page).map_err(io(&index))?;
    let scorecard = dir.join("scorecard.json");
    let flat: Vec<&Scorecard> = cards.iter().flatten().collect();
    let json = serde_json::to_string_pretty(&flat)?;
    std::fs::write(&scorecard, json + "\n").map_err(io(&scorecard))?;
    Ok(Written { index, scorecard })
}

/// A name made safe for ids and attributes: lower case, runs of anything but letters and
/// digits as one `-`. `homeostat (enforce)` becomes `homeostat-enforce`.
pub fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_stable_ids() {
        assert_eq!(slug("homeostat (enforce)"), "homeostat-enforce");
        assert_eq!(slug("shop/checkout"), "shop-checkout");
        assert_eq!(slug("hpa"), "hpa");
        assert_eq!(slug("  Load Spike! "), "load-spike");
    }
}
