//! Forecasts of a workload's load, and what one of its replicas serves: what the decision
//! engine needs to size a raise to the load and to make it before a rise instead of after.
//!
//! Like the detectors, each model is a pure state machine fed one sample at a time; it never
//! reads a clock, so replaying a series replays its forecasts exactly, and it is small enough
//! to be kept with the rest of what a workload's detectors learned.

mod capacity;
mod holt;

pub use capacity::{Capacity, CapacityConfig};
pub use holt::{ForecastConfig, LoadForecast};
