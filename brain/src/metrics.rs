//! The brain's Prometheus metrics, registered into a registry it is handed (no globals).

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// Everything in `registry`, in the Prometheus text format, as `/metrics` serves it.
pub fn exposition(registry: &Registry) -> Result<String, prometheus::Error> {
    let mut body = Vec::new();
    TextEncoder::new().encode(&registry.gather(), &mut body)?;
    String::from_utf8(body).map_err(|e| prometheus::Error::Msg(e.to_string()))
}

/// The brain's own metrics.
#[derive(Clone, Debug)]
pub struct BrainMetrics {
    /// Decisions by verdict, action and outcome.
    pub decisions: IntCounterVec,
    /// Anomaly episodes opened, by kind.
    pub anomalies: IntCounterVec,
    /// Applied actions judged after their verify window, by action and result.
    pub verifications: IntCounterVec,
    /// Workload samples scored by a detector.
    pub samples: IntCounter,
    /// Points that arrived after their step had closed.
    pub dropped_points: IntCounterVec,
    /// Workloads the brain currently tracks.
    pub workloads: IntGauge,
    /// 1 while this replica leads (or acts alone), 0 while it follows.
    pub leader: IntGauge,
    /// Time one evaluation pass took.
    pub evaluation_seconds: Histogram,
}

impl BrainMetrics {
    /// Creates the metrics and registers them into `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = BrainMetrics {
            decisions: IntCounterVec::new(
                Opts::new(
                    "homeostat_decisions_total",
                    "Decisions taken, by policy verdict, action and outcome.",
                ),
                &["verdict", "action", "outcome"],
            )?,
            anomalies: IntCounterVec::new(
                Opts::new(
                    "homeostat_anomalies_total",
                    "Anomaly episodes opened, by kind.",
                ),
                &["kind"],
            )?,
            verifications: IntCounterVec::new(
                Opts::new(
                    "homeostat_verifications_total",
                    "Applied actions judged after their verify window, by action and result (helped, not-helped).",
                ),
                &["action", "result"],
            )?,
            samples: IntCounter::new(
                "homeostat_samples_scored_total",
                "Workload samples scored by a detector.",
            )?,
            dropped_points: IntCounterVec::new(
                Opts::new(
                    "homeostat_dropped_points_total",
                    "Points the series store dropped: late (their step had closed), stale (a re-send), future (stamped too far ahead).",
                ),
                &["reason"],
            )?,
            workloads: IntGauge::new(
                "homeostat_workloads",
                "Workloads the brain currently tracks.",
            )?,
            leader: IntGauge::new(
                "homeostat_leader",
                "1 while this brain replica may act (it holds the leader Lease, or runs alone); 0 while it follows.",
            )?,
            evaluation_seconds: Histogram::with_opts(HistogramOpts::new(
                "homeostat_evaluation_duration_seconds",
                "Time one evaluation pass of the decision engine took.",
            ))?,
        };
        registry.register(Box::new(m.decisions.clone()))?;
        registry.register(Box::new(m.anomalies.clone()))?;
        registry.register(Box::new(m.verifications.clone()))?;
        registry.register(Box::new(m.samples.clone()))?;
        registry.register(Box::new(m.dropped_points.clone()))?;
        registry.register(Box::new(m.workloads.clone()))?;
        registry.register(Box::new(m.leader.clone()))?;
        registry.register(Box::new(m.evaluation_seconds.clone()))?;
        Ok(m)
    }
}

/// The metrics of policy reloading, registered by the brain that reloads (a simulated brain,
/// whose policies are fixed, has none).
#[derive(Clone, Debug)]
pub struct ReloadMetrics {
    /// Reloads by source (`file`, `crd`) and result (`applied`, `rejected`).
    pub reloads: IntCounterVec,
    /// Policies in force, by source.
    pub loaded: IntGaugeVec,
    /// When a reload was last applied, in seconds since the Unix epoch.
    pub last_applied: Gauge,
}

impl ReloadMetrics {
    /// Creates the metrics, every series at zero, and registers them into `registry`.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let m = ReloadMetrics {
            reloads: IntCounterVec::new(
                Opts::new(
                    "homeostat_policy_reloads_total",
                    "Policy reloads, by source (file, crd) and result (applied, rejected: the last good policies stay in force).",
                ),
                &["source", "result"],
            )?,
            loaded: IntGaugeVec::new(
                Opts::new(
                    "homeostat_policies_loaded",
                    "Policies in force, by source (file, crd).",
                ),
                &["source"],
            )?,
            last_applied: Gauge::new(
                "homeostat_policy_last_reload_success_timestamp_seconds",
                "When a policy change was last applied (or the policies first loaded), in seconds since the Unix epoch.",
            )?,
        };
        for source in ["file", "crd"] {
            m.loaded.with_label_values(&[source]);
            for result in ["applied", "rejected"] {
                m.reloads.with_label_values(&[source, result]);
            }
        }
        registry.register(Box::new(m.reloads.clone()))?;
        registry.register(Box::new(m.loaded.clone()))?;
        registry.register(Box::new(m.last_applied.clone()))?;
        Ok(m)
    }
}
