//! Running a scenario end to end in simulated time.
//!
//! The simulated cluster serves the Kubernetes API on loopback; its pods' signals go to the
//! brain as OTLP over gRPC on loopback; the brain's actuator changes the HPA through
//! `kube::Client` over HTTP. Nothing is short-circuited: only time is simulated, advancing
//! one step per tick, so a day runs in seconds and every run of a scenario is the same.

use std::sync::Arc;
use std::time::Duration;

use homeostat_brain::ingest::{self, IngestError};
use homeostat_brain::{Brain, BrainError, DecisionSpans, EngineConfig, Journal};
use homeostat_core::{
    Anomaly, Clock, Decision, ManualClock, Mode, Stat, Timestamp, WorkloadRef, signal,
};
use homeostat_policies::PolicySet;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use thiserror::Error;
use tokio::sync::watch;

use crate::apiserver::AuditRecord;
use crate::apiserver::{
    ApiError, ApiServer, ApiServerHandle, DEFAULT_ADDR, FaultConfig, FaultStats, ObjectStore,
    ServerError,
};
use crate::cluster::{HPA_SYNC, SimCluster};
use crate::scenario::Scenario;
use crate::signal_faults::{SignalFaultStats, SignalFaults};
use crate::telemetry;

/// Why a run failed.
#[derive(Debug, Error)]
pub enum RunError {
    /// The simulated API server failed.
    #[error("simulated API server: {0}")]
    Server(#[from] ServerError),
    /// The simulated cluster refused a change of its own controllers.
    #[error("simulated cluster: {0}")]
    Cluster(#[from] ApiError),
    /// The brain failed.
    #[error("brain: {0}")]
    Brain(#[from] BrainError),
    /// The OTLP receiver failed.
    #[error("OTLP receiver: {0}")]
    Ingest(#[from] IngestError),
    /// Sending signals to the brain failed.
    #[error("sending signals to the brain: {0}")]
    Export(String),
    /// Binding a loopback port failed.
    #[error("binding a loopback port: {0}")]
    Io(#[from] std::io::Error),
}

/// Who controls replicas in a run.
#[derive(Clone, Debug)]
pub enum Controller {
    /// Nobody: the HPA controller does not sync, so replicas stay as the scenario set them.
    /// The floor every autoscaler is measured against.
    None,
    /// The HPA alone: the baseline.
    HpaOnly,
    /// The HPA with homeostat in front of it.
    Homeostat {
        /// Global mode.
        mode: Mode,
        /// The policies.
        policies: PolicySet,
        /// Where decision spans go.
        spans: DecisionSpans,
    },
}

impl Controller {
    /// A short label for reports.
    pub fn label(&self) -> String {
        match self {
            Controller::None => "none".into(),
            Controller::HpaOnly => "hpa".into(),
            Controller::Homeostat { mode, .. } => format!("homeostat ({mode})"),
        }
    }
}

/// One tick of one workload, as the timeline records it.
#[derive(Clone, Debug, PartialEq)]
pub struct TimelinePoint {
    /// Time since the start.
    pub t: Duration,
    /// Requests per second that arrived.
    pub demand: f64,
    /// Replicas the Deployment asked for.
    pub desired: u32,
    /// Pods ready.
    pub ready: u32,
    /// Pods existing (what is paid for).
    pub pods: u32,
    /// True p99 latency, seconds.
    pub p99: f64,
    /// The HPA's minReplicas.
    pub hpa_min: u32,
    /// Whether the tick is inside an incident (ground truth).
    pub in_incident: bool,
    /// What the incident is (its kinds joined by `+`, e.g. `memoryLeak` or
    /// `load spike+noisyNeighbour`), when the tick is inside one.
    pub incident: Option<String>,
    /// Whether the latency objective was violated.
    pub violated: bool,
    /// The brain's score of the workload this tick, in [0, 1]: the anomaly's score when it
    /// judged one, else the highest score of the series its rules watch (0 without a brain or
    /// before its detectors are warm). Plotted so a reader sees how close a call was.
    pub anomaly_score: f64,
    /// Whether the brain judged the workload anomalous this tick.
    pub anomalous: bool,
    /// The brain's joint features of the workload this tick (which of its `JOINT` series,
    /// as bits, and their logarithms), so multivariate models can be measured on a run.
    pub joint_features: Option<(u32, Vec<f64>)>,
}

/// One workload's run.
#[derive(Clone, Debug)]
pub struct WorkloadRun {
    /// `namespace/name`.
    pub name: String,
    /// Every tick.
    pub timeline: Vec<TimelinePoint>,
    /// Minutes with p99 latency over the objective.
    pub slo_violation_minutes: f64,
    /// Pod-hours used.
    pub pod_hours: f64,
    /// The p99 latency objective, so a run can be scored and plotted without its scenario.
    pub objective_p99: Duration,
}

/// The result of a run.
#[derive(Debug)]
pub struct RunResult {
    /// Scenario name.
    pub scenario: String,
    /// Who controlled replicas.
    pub controller: String,
    /// Simulated start time.
    pub start: Timestamp,
    /// Simulated time between two ticks, to turn tick counts into minutes.
    pub step: Duration,
    /// Per workload.
    pub workloads: Vec<WorkloadRun>,
    /// Anomalies the brain judged, one per step while anomalous.
    pub anomalies: Vec<Anomaly>,
    /// Every decision the brain took.
    pub decisions: Vec<Decision>,
    /// Wall time the run took.
    pub wall: Duration,
    /// Every request the simulated API server answered.
    pub audit: Vec<AuditRecord>,
    /// The simulated cluster, still serving, when [`RunOptions::keep_cluster`] asked for it.
    pub cluster: Option<ApiServerHandle>,
    /// Faults the simulated API server injected, to compare with the decisions that failed.
    pub api_faults: FaultStats,
    /// Faults injected into the pods' signals, to compare with what the brain rejected.
    pub signal_faults: SignalFaultStats,
    /// What the brain made of the signals it was sent (all zero without a brain).
    pub ingest: IngestCounts,
    /// The brain's Prometheus metrics at the end of the run, as its `/metrics` would serve
    /// them (empty without a brain).
    pub metrics: String,
}

/// What the brain did with the points the pods sent it: a fault the brain absorbed shows up
/// here, one it missed shows up in the decisions instead.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IngestCounts {
    /// Export requests answered with an OTLP `partial_success`.
    pub partial_exports: u64,
    /// Data points the brain rejected (NaN values, for one), as its `partial_success` said.
    pub rejected_points: u64,
    /// Points the brain's store dropped because their step had already closed (clocks
    /// running behind).
    pub late_points: u64,
    /// Re-sent points the store ignored, no newer than the series' previous point.
    pub stale_points: u64,
    /// Points stamped too far ahead of the brain's clock.
    pub future_points: u64,
}

impl RunResult {
    /// Total SLO-violation minutes.
    pub fn slo_violation_minutes(&self) -> f64 {
        self.workloads.iter().map(|w| w.slo_violation_minutes).sum()
    }

    /// Total pod-hours.
    pub fn pod_hours(&self) -> f64 {
        self.workloads.iter().map(|w| w.pod_hours).sum()
    }
}

/// Options of a run.
pub struct RunOptions {
    /// Who controls replicas.
    pub controller: Controller,
    /// Where decisions are journaled (a temporary journal when `None`).
    pub journal: Option<Journal>,
    /// Called after every tick with (done, total).
    pub on_tick: Option<Box<dyn FnMut(u64, u64) + Send>>,
    /// Keep the simulated cluster serving after the run, to inspect it through the API.
    pub keep_cluster: bool,
}

impl RunOptions {
    /// Options for `controller` with everything else at its default.
    pub fn new(controller: Controller) -> Self {
        RunOptions {
            controller,
            journal: None,
            on_tick: None,
            keep_cluster: false,
        }
    }
}

/// The in-process brain of a homeostat run, with its OTLP receiver on loopback.
struct LoopbackBrain {
    brain: Brain,
    client: MetricsServiceClient<tonic::transport::Channel>,
    stop: watch::Sender<bool>,
    receiver: tokio::task::JoinHandle<Result<(), IngestError>>,
}

impl LoopbackBrain {
    async fn start(
        clock: &ManualClock,
        step: Duration,
        server: &ApiServerHandle,
        mode: Mode,
        policies: PolicySet,
        spans: DecisionSpans,
        journal: Journal,
    ) -> Result<Self, RunError> {
        let config = EngineConfig {
            mode,
            lateness: Duration::ZERO,
            ..EngineConfig::default()
        };
        let clock: Arc<dyn Clock> = Arc::new(clock.clone());
        let brain = Brain::assemble(
            config,
            step,
            clock,
            policies,
            server.kube_client()?,
            journal,
            spans,
        )?;
        let listener = tokio::net::TcpListener::bind(DEFAULT_ADDR).await?;
        let addr = listener.local_addr()?;
        let (stop, rx) = watch::channel(false);
        let mut rx2 = rx.clone();
        let receiver = tokio::spawn(ingest::serve_grpc(
            listener,
            brain.ingest.clone(),
            async move {
                let _ = rx2.wait_for(|s| *s).await;
            },
        ));
        drop(rx);
        let client = MetricsServiceClient::connect(format!("http://{addr}"))
            .await
            .map_err(|e| RunError::Export(e.to_string()))?;
        Ok(LoopbackBrain {
            brain,
            client,
            stop,
            receiver,
        })
    }

    async fn stop(self) -> Result<Brain, RunError> {
        self.stop.send_replace(true);
        drop(self.client);
        if let Ok(result) = self.receiver.await {
            result?;
        }
        Ok(self.brain)
    }
}

/// The simulated start: the wall clock's time, so spans and objects carry plausible times,
/// rounded down to a whole step, so ticks fall on the brain's step boundaries.
fn start_time(step: Duration) -> Timestamp {
    let now = homeostat_core::SystemClock.now().as_nanos();
    let step = i64::try_from(step.as_nanos()).unwrap_or(i64::MAX).max(1);
    Timestamp::from_nanos(now - now.rem_euclid(step))
}

/// The highest score among the newest samples of the series the brain's rules watch: what a
/// tick without an anomaly scored, so a plot shows how close it came.
fn detector_score(engine: &homeostat_brain::Engine, workload: &WorkloadRef) -> f64 {
    let Some(state) = engine.workload(workload) else {
        return 0.0;
    };
    [
        (signal::HTTP_SERVER_REQUEST_DURATION, Stat::P99),
        (signal::HTTP_SERVER_REQUEST_DURATION, Stat::Mean),
        (signal::RUNQUEUE_LATENCY, Stat::P99),
    ]
    .into_iter()
    .filter_map(|(name, stat)| state.latest(name, stat))
    .filter(|l| Some(l.time) == state.last_sample)
    .filter_map(|l| l.score.map(|s| s.score))
    .fold(0.0, f64::max)
}

/// Runs `scenario` once.
pub async fn run(scenario: &Scenario, mut options: RunOptions) -> Result<RunResult, RunError> {
    let wall = std::time::Instant::now();
    let start = start_time(scenario.step);
    let clock = ManualClock::new(start);
    let store = ObjectStore::new(Arc::new(clock.clone()));
    let faults = scenario.faults.clone().unwrap_or_default();
    let api_faults = faults.api.clone().unwrap_or_default();
    let mut api_faults_on = faults.api.is_some() && faults.active_at(Duration::ZERO);
    let server = ApiServer::start_with_faults(
        store.clone(),
        DEFAULT_ADDR,
        if api_faults_on {
            api_faults.clone()
        } else {
            FaultConfig::default()
        },
    )
    .await?;
    let mut signal_faults = faults.signals.clone().map(SignalFaults::new);
    let mut ingest_counts = IngestCounts::default();
    let mut sim = SimCluster::install(&store, scenario, start)?;
    let mut brain = match &options.controller {
        Controller::None | Controller::HpaOnly => None,
        Controller::Homeostat {
            mode,
            policies,
            spans,
        } => {
            let journal = match options.journal.take() {
                Some(j) => j,
                None => Journal::temporary().map_err(BrainError::from)?,
            };
            Some(
                LoopbackBrain::start(
                    &clock,
                    scenario.step,
                    &server,
                    *mode,
                    policies.clone(),
                    spans.clone(),
                    journal,
                )
                .await?,
            )
        }
    };

    let ticks = (scenario.duration.as_nanos() / scenario.step.as_nanos()) as u64;
    let mut timelines: Vec<Vec<TimelinePoint>> =
        vec![Vec::with_capacity(ticks as usize); sim.workloads.len()];
    let mut anomalies = Vec::new();
    let mut decisions = Vec::new();
    let mut last_hpa_sync = Duration::ZERO;
    let hpa_syncs = !matches!(options.controller, Controller::None);
    for i in 1..=ticks {
        let t = scenario.step * u32::try_from(i).unwrap_or(u32::MAX);
        let now = start + t;
        clock.set(now);
        let faults_active = faults.active_at(t);
        if faults.api.is_some() && faults_active != api_faults_on {
            api_faults_on = faults_active;
            server.set_faults(if faults_active {
                api_faults.clone()
            } else {
                FaultConfig::default()
            });
        }
        for r in sim.reconcile(&store, now) {
            r?;
        }
        let (outcomes, _) = sim.serve(t, scenario.step);
        let mut scores = vec![(0.0, false, None); sim.workloads.len()];
        if let Some(b) = &mut brain {
            let mut points = sim.telemetry(now);
            if let Some(f) = &mut signal_faults {
                points = f.apply(points, faults_active);
            }
            let request = telemetry::request(points);
            let response = b
                .client
                .export(request)
                .await
                .map_err(|e| RunError::Export(e.to_string()))?
                .into_inner();
            if let Some(partial) = response
                .partial_success
                .filter(|p| p.rejected_data_points > 0)
            {
                // Expected under signal faults, so counted for the result and logged quietly;
                // the run goes on, as an exporter would.
                ingest_counts.partial_exports += 1;
                ingest_counts.rejected_points = ingest_counts
                    .rejected_points
                    .saturating_add(u64::try_from(partial.rejected_data_points).unwrap_or(0));
                tracing::debug!(rejected = partial.rejected_data_points, message = %partial.error_message, "brain rejected points");
            }
            let report = b.brain.engine.evaluate().await.map_err(BrainError::from)?;
            for (w, score) in sim.workloads.iter().zip(&mut scores) {
                let workload = WorkloadRef::deployment(&w.spec.namespace, &w.spec.name);
                let (value, anomalous) =
                    match report.anomalies.iter().find(|a| a.workload == workload) {
                        Some(a) => (a.score, true),
                        None => (detector_score(&b.brain.engine, &workload), false),
                    };
                let features =
                    b.brain.engine.workload(&workload).and_then(|state| {
                        state.last_sample.and_then(|at| state.joint_features(at))
                    });
                *score = (value, anomalous, features);
            }
            anomalies.extend(report.anomalies);
            decisions.extend(report.decisions);
        }
        if hpa_syncs && t.saturating_sub(last_hpa_sync) >= HPA_SYNC {
            last_hpa_sync = t;
            for w in &mut sim.workloads {
                w.sync_hpa(&store, now, t)?;
            }
        }
        for (k, (((w, o), timeline), (anomaly_score, anomalous, joint_features))) in sim
            .workloads
            .iter()
            .zip(&outcomes)
            .zip(&mut timelines)
            .zip(scores)
            .enumerate()
        {
            let incident = sim.ground_truth(k, t);
            let deployment = store.get(
                &crate::apiserver::discovery::DEPLOYMENTS,
                Some(&w.spec.namespace),
                &w.spec.name,
            )?;
            timeline.push(TimelinePoint {
                t,
                demand: o.demand,
                desired: deployment["spec"]["replicas"].as_u64().unwrap_or(0) as u32,
                ready: w.pods.iter().filter(|p| p.ready).count() as u32,
                pods: w.pods.len() as u32,
                p99: o.p99,
                hpa_min: w.hpa_min(&store),
                in_incident: incident.is_some(),
                incident,
                violated: o.p99 > w.spec.slo.latency_p99.as_secs_f64(),
                anomaly_score,
                anomalous,
                joint_features,
            });
        }
        if let Some(f) = options.on_tick.as_mut() {
            f(i, ticks);
        }
    }
    let mut metrics = String::new();
    if let Some(b) = brain.take() {
        let brain = b.stop().await?;
        metrics =
            homeostat_brain::metrics::exposition(&brain.registry).map_err(BrainError::from)?;
        let stats = brain
            .store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stats();
        ingest_counts.late_points = stats.late;
        ingest_counts.stale_points = stats.stale;
        ingest_counts.future_points = stats.future;
        brain.spans.flush().await.map_err(BrainError::from)?;
    }
    let audit = server.audit();
    let api_fault_stats = server.fault_stats();
    let signal_fault_stats = signal_faults
        .as_ref()
        .map(SignalFaults::stats)
        .unwrap_or_default();
    let cluster = if options.keep_cluster {
        Some(server)
    } else {
        server.shutdown().await?;
        None
    };

    let step_minutes = scenario.step.as_secs_f64() / 60.0;
    let workloads = sim
        .workloads
        .iter()
        .zip(timelines)
        .map(|(w, timeline)| WorkloadRun {
            name: format!("{}/{}", w.spec.namespace, w.spec.name),
            slo_violation_minutes: timeline.iter().filter(|p| p.violated).count() as f64
                * step_minutes,
            pod_hours: timeline.iter().map(|p| f64::from(p.pods)).sum::<f64>() * step_minutes
                / 60.0,
            timeline,
            objective_p99: w.spec.slo.latency_p99,
        })
        .collect();
    Ok(RunResult {
        scenario: scenario.name.clone(),
        controller: options.controller.label(),
        start,
        step: scenario.step,
        workloads,
        anomalies,
        decisions,
        wall: wall.elapsed(),
        audit,
        cluster,
        api_faults: api_fault_stats,
        signal_faults: signal_fault_stats,
        ingest: ingest_counts,
        metrics,
    })
}
