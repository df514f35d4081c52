//! homeostat's brain: takes signals in over OTLP, learns each workload's normal behaviour,
//! notices departures, and turns them into policy-gated, journaled, traced decisions.
//!
//! The data flow reads top to bottom: [`ingest`] receives OTLP points, [`store`] folds them
//! into per-workload samples, [`assess`] scores them with [`detect`]ors, [`engine`] proposes,
//! asks policy, and acts, [`journal`] and [`spans`] record every decision, [`api`] serves them.
//! Discrete events (crashes, OOM kills, as OTLP logs) go to [`recent`], which the API serves
//! too, as it does [`heard`]: who sends what. [`reload`] keeps the policies in force current
//! with their files and the cluster's `Policy` objects.
#![forbid(unsafe_code)]

pub mod api;
pub mod assess;
pub mod config;
pub mod detect;
pub mod engine;
pub mod eval;
pub mod event;
pub mod forecast;
pub mod heard;
pub mod ingest;
pub mod journal;
pub mod leader;
pub mod metrics;
pub mod point;
pub mod quantile;
pub mod recent;
pub mod reload;
pub mod runtime;
pub mod spans;
pub mod store;

use std::sync::{Arc, Mutex};

pub use config::BrainConfig;
pub use engine::{Engine, EngineConfig, PassReport};
pub use journal::Journal;
pub use runtime::{Brain, BrainError};
pub use spans::DecisionSpans;
pub use store::SeriesStore;

/// Hands received points to a shared [`SeriesStore`], judging how far ahead they may be by
/// the brain's clock.
#[derive(Clone, Debug)]
pub struct StoreSink {
    /// The store.
    pub store: Arc<Mutex<SeriesStore>>,
    /// The brain's clock.
    pub clock: Arc<dyn homeostat_core::Clock>,
}

impl point::PointSink for StoreSink {
    fn accept(&self, points: Vec<point::Point>) {
        let now = self.clock.now();
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .ingest_at(points, now);
    }
}
