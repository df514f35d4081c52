//! What a forecast of a load signal says, small enough to travel with a proposal.

use serde::{Deserialize, Serialize};

/// A load signal's expected value a little ahead, behind a proposal that acts before a
/// predictable rise (or stops holding capacity before a predictable fall). Policies trigger
/// on it (`triggers.forecast`) and read it in conditions (`forecast`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ForecastSummary {
    /// The forecast signal, a name from [`crate::signal`].
    pub signal: String,
    /// How far ahead, in seconds.
    pub horizon_seconds: u64,
    /// The signal's value now (smoothed).
    pub current: f64,
    /// Its expected value at the horizon (the largest expected within it, for a rise).
    pub expected: f64,
}

impl ForecastSummary {
    /// Expected over current: above 1 for a rise; `None` when the current value is not
    /// positive, so no ratio means anything.
    pub fn ratio(&self) -> Option<f64> {
        (self.current > 0.0 && self.expected.is_finite()).then(|| self.expected / self.current)
    }
}
