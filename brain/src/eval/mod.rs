//! Evaluation harnesses: how well the detectors do on labelled public benchmarks.
//!
//! Scoring is pure (slices in, numbers out); reading a benchmark's files is kept in its own
//! module so the scorer can be tested on series built in memory.

pub mod nab;
