//! The Numenta Anomaly Benchmark's scoring: windows around labelled anomalies, a reward for
//! the first detection in each that grows the earlier it comes, a penalty for each detection
//! outside them, three cost profiles, and a threshold swept over the whole corpus.
//!
//! The figures match NAB v1.1's scorer (checked against published detector outputs), so a
//! number printed here can be set beside the published scoreboard of the same corpus.

mod corpus;
mod profile;
mod score;
mod sweep;
mod timestamp;
mod windows;

pub use corpus::{
    Corpus, CorpusError, Series, load_corpus, load_result_scores, result_path, write_results,
};
pub use profile::CostProfile;
pub use score::{SeriesScore, score_series};
pub use sweep::{ProfileResult, Sweep};
pub use timestamp::parse_timestamp;
pub use windows::{PointRole, SeriesLabels, probation_len, scaled_sigmoid};
