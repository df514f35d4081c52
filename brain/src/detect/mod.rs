//! Detectors: streaming models of a series' normal behaviour that score each new value.
//!
//! A detector is a pure state machine fed one value at a time; it never reads a clock or does
//! I/O, so replaying a series replays its scores exactly.

mod baseline;
mod change;
mod context_memory;
mod events;
mod joint;
mod novelty;
mod onset;
mod queueing;
mod refractory;
mod season;
mod stats;
mod trend;
mod univariate;

pub use baseline::{BaselineConfig, Direction, RobustBaseline, Score};
pub use change::{Change, ChangePoint};
pub use events::{EventConfig, EventRate, EventScore};
pub use joint::{Fitted, JointConfig, JointError, JointMethod, JointModel, JointScore, Training};
pub use novelty::{Novelty, NoveltyConfig};
pub use queueing::{Queueing, QueueingConfig};
pub use season::{Season, SeasonConfig};
pub use trend::{Trend, TrendConfig, TrendScore};
pub use univariate::{Univariate, UnivariateConfig};
