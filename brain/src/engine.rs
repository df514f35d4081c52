//! The decision engine: closes the store's steps, scores them, and for each workload that
//! needs something proposes it, asks policy, and has the actuator plan and apply it — writing
//! intent to the journal before the actuator runs and the outcome after.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use homeostat_actuators::{
    Actuator, ActuatorError, Applied, EventRecorder, HpaScaler, HpaState, PodRestarter,
    SamplingThrottler,
};
use homeostat_core::ObjectRef;
use homeostat_core::{
    Action, Anomaly, AnomalyKind, Clock, Decision, DecisionId, Mode, Outcome, Proposal, Timestamp,
    Verdict, VerdictKind, WorkloadRef,
};
use homeostat_policies::PolicySet;
use thiserror::Error;

use crate::assess::WorkloadState;
use crate::journal::{Journal, JournalError};
use crate::metrics::BrainMetrics;
use crate::spans::{DecisionSpans, StepTimings};
use crate::store::SeriesStore;

/// Tunables of the decision engine.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    /// The global mode; a policy's mode can only make it stricter.
    pub mode: Mode,
    /// How far behind `now` a step closes, to let late points in.
    pub lateness: Duration,
    /// On saturation, minReplicas is raised to this multiple of the current replicas.
    pub scale_factor: f64,
    /// After this long without an anomaly, a raised minReplicas is put back…
    pub restore_after: Duration,
    /// …but never sooner than this after the last raise, so a raise and its undoing are not
    /// a flap.
    pub hold_after_raise: Duration,
    /// How far back the journal is read for cooldowns and budgets.
    pub history: Duration,
    /// A leaking workload's oldest pod is restarted once its memory is projected to reach
    /// the limit within this long: early enough for its replacement to be ready first.
    pub restart_horizon: Duration,
    /// How long a leak, once seen, is remembered without being seen again.
    pub leak_memory: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            mode: Mode::DryRun,
            lateness: Duration::from_secs(5),
            scale_factor: 2.0,
            restore_after: Duration::from_secs(5 * 60),
            hold_after_raise: Duration::from_secs(15 * 60),
            history: Duration::from_secs(24 * 3600),
            restart_horizon: Duration::from_secs(10 * 60),
            leak_memory: Duration::from_secs(3600),
        }
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// How long to wait after `failures` consecutive failures before proposing the same kind of
/// action for the same workload again: 30 s, doubling, at most 8 minutes.
fn failure_backoff(failures: u32) -> Duration {
    Duration::from_secs(30) * 2u32.pow(failures.saturating_sub(1).min(4))
}

/// A throttle homeostat put on a node's sensor.
#[derive(Clone, Copy, Debug)]
struct Throttle {
    /// One scheduler event sampled in this many.
    every: u32,
    /// When it was set.
    since: Timestamp,
    /// Since when no sensor has been over budget.
    calm_since: Option<Timestamp>,
}

/// The probe a throttle samples less: the scheduler's, which runs on every context switch.
const THROTTLED_PROBE: &str = "runqueue";
/// The first throttle: one run-queue event in four.
const THROTTLE_FIRST: u32 = 4;
/// The most a throttle goes: one in 64.
const THROTTLE_MAX: u32 = 64;
/// How long a throttle is given to take effect before it is judged (and before scaling).
const THROTTLE_SETTLE: Duration = Duration::from_secs(120);

/// Why an evaluation pass failed as a whole (a single workload's failure is a decision's
/// `Failed` outcome instead).
#[derive(Debug, Error)]
pub enum EngineError {
    /// The journal could not be read or written: acting without it is not allowed.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// What one pass saw and did.
#[derive(Clone, Debug, Default)]
pub struct PassReport {
    /// Anomalies judged this pass.
    pub anomalies: Vec<Anomaly>,
    /// Decisions taken this pass.
    pub decisions: Vec<Decision>,
}

/// The decision engine.
pub struct Engine {
    config: EngineConfig,
    clock: Arc<dyn Clock>,
    store: Arc<Mutex<SeriesStore>>,
    policies: PolicySet,
    scaler: HpaScaler,
    restarter: PodRestarter,
    throttler: SamplingThrottler,
    /// Nodes whose sensor homeostat throttled.
    throttled: BTreeMap<String, Throttle>,
    /// Consecutive failures of an action kind on a workload, and the last one's time.
    failures: BTreeMap<(WorkloadRef, homeostat_core::ActionKind), (u32, Timestamp)>,
    events: EventRecorder,
    journal: Journal,
    spans: DecisionSpans,
    metrics: BrainMetrics,
    workloads: BTreeMap<WorkloadRef, WorkloadState>,
}

impl Engine {
    /// Wires an engine; it acts on the cluster `client` talks to.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: EngineConfig,
        clock: Arc<dyn Clock>,
        store: Arc<Mutex<SeriesStore>>,
        policies: PolicySet,
        client: kube::Client,
        journal: Journal,
        spans: DecisionSpans,
        metrics: BrainMetrics,
    ) -> Self {
        Engine {
            config,
            clock,
            store,
            policies,
            scaler: HpaScaler::new(client.clone()),
            restarter: PodRestarter::new(client.clone()),
            throttler: SamplingThrottler::new(
                client.clone(),
                homeostat_actuators::throttle::SENSOR_NAMESPACE,
            ),
            throttled: BTreeMap::new(),
            failures: BTreeMap::new(),
            events: EventRecorder::new(client),
            journal,
            spans,
            metrics,
            workloads: BTreeMap::new(),
        }
    }

    /// The engine's view of one workload.
    pub fn workload(&self, w: &WorkloadRef) -> Option<&WorkloadState> {
        self.workloads.get(w)
    }

    /// One pass of the loop.
    pub async fn evaluate(&mut self) -> Result<PassReport, EngineError> {
        let started = Instant::now();
        let now = self.clock.now();
        let (samples, step) = {
            let mut store = self
                .store
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let samples = store.close(now - self.config.lateness);
            // The store counts since start; the counters move by what is new.
            let stats = store.stats();
            for (reason, total) in [
                ("late", stats.late),
                ("stale", stats.stale),
                ("future", stats.future),
            ] {
                let counter = self.metrics.dropped_points.with_label_values(&[reason]);
                counter.inc_by(total.saturating_sub(counter.get()));
            }
            (samples, store.step())
        };
        let mut steps: BTreeMap<WorkloadRef, Timestamp> = BTreeMap::new();
        for s in &samples {
            let state = self
                .workloads
                .entry(s.workload.clone())
                .or_insert_with(|| WorkloadState::new(s.workload.clone(), step));
            if state.observe(s) {
                self.metrics.samples.inc();
            }
            let step = steps.entry(s.workload.clone()).or_insert(s.time);
            *step = (*step).max(s.time);
        }
        self.metrics
            .workloads
            .set(i64::try_from(self.workloads.len()).unwrap_or(i64::MAX));

        let mut report = PassReport::default();
        for (workload, at) in steps {
            let Some(state) = self.workloads.get_mut(&workload) else {
                continue;
            };
            let had_episode = state
                .episode
                .as_ref()
                .is_some_and(|e| at.since(e.last_anomalous) <= crate::assess::EPISODE_GAP);
            let anomaly = state.assess(at);
            if let Some(a) = &anomaly {
                if !had_episode {
                    self.metrics
                        .anomalies
                        .with_label_values(&[a.kind.as_str()])
                        .inc();
                    tracing::info!(workload = %workload, kind = a.kind.as_str(), score = a.score, "anomaly");
                }
                report.anomalies.push(a.clone());
            }
            if self.config.mode == Mode::Observe {
                continue;
            }
            let Some(proposal) = self.propose(&workload, anomaly.as_ref(), at, now).await else {
                continue;
            };
            let key = (workload.clone(), proposal.action.kind());
            if let Some(&(failures, last)) = self.failures.get(&key)
                && now.since(last) < failure_backoff(failures)
            {
                // It just failed: the API server is unwell or the target is odd; trying again
                // every pass would only hammer it and fill the journal.
                continue;
            }
            let decision = self.decide(proposal, anomaly, now).await?;
            match decision.outcome {
                Outcome::Failed { .. } => {
                    let entry = self.failures.entry(key).or_insert((0, now));
                    *entry = (entry.0 + 1, now);
                }
                Outcome::Applied { .. } | Outcome::Planned => {
                    self.failures.remove(&key);
                }
                _ => {}
            }
            report.decisions.push(decision);
        }
        self.metrics
            .evaluation_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(report)
    }

    async fn hpa_for(&self, workload: &WorkloadRef) -> Option<HpaState> {
        match self.scaler.find_for(workload).await {
            Ok(hpa) => hpa,
            Err(e) => {
                tracing::warn!(workload = %workload, error = %e, "cannot read the workload's HPA; proposing nothing");
                None
            }
        }
    }

    async fn propose(
        &mut self,
        workload: &WorkloadRef,
        anomaly: Option<&Anomaly>,
        at: Timestamp,
        now: Timestamp,
    ) -> Option<Proposal> {
        if let Some(p) = self.propose_throttle(workload, anomaly, at) {
            return Some(p);
        }
        let saturated = anomaly.is_some_and(|a| a.kind == AnomalyKind::Saturation)
            && !self.throttle_settling(at);
        let restore_due = {
            let state = self.workloads.get(workload)?;
            let episode = state.episode.as_ref();
            let raised = episode.and_then(|e| e.raised_from);
            let held = episode
                .and_then(|e| e.last_raise)
                .is_none_or(|t| at.since(t) >= self.config.hold_after_raise);
            // Calm because of the added pods is not calm: while the run queue is still long
            // the CPU pressure that caused the raise (a neighbour, the sensor) is still there,
            // and restoring would only bring the trouble back — a flap.
            let pressure_gone = state.cpu_pressure_gone(at);
            raised.is_some()
                && held
                && pressure_gone
                && state
                    .normal_since
                    .is_some_and(|since| at.since(since) >= self.config.restore_after)
        };
        if !saturated && !restore_due {
            return self.propose_restart(workload, anomaly, at).await;
        }
        let hpa = self.hpa_for(workload).await?;
        let state = self.workloads.get_mut(workload)?;
        if saturated {
            let ready = hpa.ready_replicas.unwrap_or(hpa.current_replicas);
            let last_target = state.episode.as_ref().and_then(|e| e.last_target);
            if last_target.is_some_and(|t| ready < t) {
                // The last raise has not taken effect yet: judge it before raising again.
                return None;
            }
            if last_target.is_some() && state.recovering() {
                // Latency is falling: the capacity is there and the queue is draining.
                return None;
            }
            let current = ready.max(hpa.min_replicas).max(1);
            let target = ((f64::from(current) * self.config.scale_factor).ceil() as u32)
                .min(hpa.max_replicas);
            if target <= hpa.min_replicas {
                return None;
            }
            return Some(Proposal {
                workload: workload.clone(),
                action: Action::ScaleHpa {
                    hpa: hpa.hpa,
                    min_replicas: target,
                    previous_min_replicas: hpa.min_replicas,
                },
                reason: format!(
                    "saturated: latency and run-queue delay above baseline at {current} replicas; raise minReplicas to {target}"
                ),
                evidence_time: at,
                current_replicas: hpa.current_replicas,
            });
        }
        let original = state.episode.as_ref().and_then(|e| e.raised_from)?;
        if hpa.min_replicas <= original {
            state.episode = None;
            return None;
        }
        let normal_for = state.normal_since.map(|s| now.since(s)).unwrap_or_default();
        Some(Proposal {
            workload: workload.clone(),
            action: Action::ScaleHpa {
                hpa: hpa.hpa,
                min_replicas: original,
                previous_min_replicas: hpa.min_replicas,
            },
            reason: format!(
                "normal for {}: restore minReplicas to {original}; the HPA scales down at its own pace",
                homeostat_policies::duration::format_compact(normal_for)
            ),
            evidence_time: at,
            current_replicas: hpa.current_replicas,
        })
    }

    /// homeostat's own sensor over its CPU budget on a node: sample its scheduler probe less
    /// (1 in 4, then halving again while it stays over budget, down to 1 in 64). The cheapest
    /// remedy comes first: it costs no pods, and the CPU it frees may be all the node's
    /// workloads were missing. A throttle is lifted once it has held for `hold_after_raise`
    /// and no sensor has been over budget for `restore_after`. (Only the busiest node's cost
    /// is seen, so whether the throttled node could afford full sampling is not known: if
    /// the overload comes back, so does the throttle.)
    fn propose_throttle(
        &mut self,
        workload: &WorkloadRef,
        anomaly: Option<&Anomaly>,
        at: Timestamp,
    ) -> Option<Proposal> {
        let state = self.workloads.get(workload)?;
        let (hot, cost) = state.sensor_hot_node(at)?;
        let hot = hot.to_owned();
        let overloaded = anomaly.is_some_and(|a| a.kind == AnomalyKind::SensorOverload);
        let budget = crate::assess::SENSOR_BUDGET;
        for t in self.throttled.values_mut() {
            if overloaded {
                t.calm_since = None;
            } else {
                t.calm_since.get_or_insert(at);
            }
        }
        let next = match (overloaded, self.throttled.get(&hot)) {
            (true, None) => Some((THROTTLE_FIRST, "over")),
            (true, Some(t)) if t.every < THROTTLE_MAX && at.since(t.since) >= THROTTLE_SETTLE => {
                Some((t.every * 2, "still over"))
            }
            _ => None,
        };
        if let Some((every, how)) = next {
            return Some(Proposal {
                workload: workload.clone(),
                action: Action::ThrottleSampling {
                    node: hot.clone(),
                    probe: THROTTLED_PROBE.into(),
                    rate: 1.0 / f64::from(every),
                },
                reason: format!(
                    "the sensor on {hot} costs {:.1} % of a CPU, {how} its budget of {:.1} %: sample 1 run-queue event in {every}",
                    cost * 100.0,
                    budget * 100.0
                ),
                evidence_time: at,
                current_replicas: 0,
            });
        }
        let (node, _) = self.throttled.iter().find(|(_, t)| {
            at.since(t.since) >= self.config.hold_after_raise
                && t.calm_since
                    .is_some_and(|c| at.since(c) >= self.config.restore_after)
        })?;
        Some(Proposal {
            workload: workload.clone(),
            action: Action::ThrottleSampling {
                node: node.clone(),
                probe: THROTTLED_PROBE.into(),
                rate: 1.0,
            },
            reason: format!(
                "no sensor has been over its budget of {:.1} % of a CPU for a while: the one on {node} samples every event again",
                budget * 100.0
            ),
            evidence_time: at,
            current_replicas: 0,
        })
    }

    /// Whether a throttle of a sensor is still taking effect: scaling waits for it, since the
    /// CPU it gives back may end the saturation without a single new pod.
    fn throttle_settling(&self, at: Timestamp) -> bool {
        self.throttled
            .values()
            .any(|t| at.since(t.since) < THROTTLE_SETTLE)
    }

    /// A leaking workload: restart its oldest pod before the kernel OOM-kills it, one pod at
    /// a time and only when all the others are ready. The projection uses the leak's rate and
    /// the pod template's memory limit; without a limit, only OOM kills already happening
    /// justify a restart.
    async fn propose_restart(
        &mut self,
        workload: &WorkloadRef,
        anomaly: Option<&Anomaly>,
        at: Timestamp,
    ) -> Option<Proposal> {
        use homeostat_core::{Stat, signal};
        let state = self.workloads.get(workload)?;
        let oom = anomaly.is_some_and(|a| {
            a.kind == AnomalyKind::MemoryLeak
                && a.contributions
                    .iter()
                    .any(|c| c.signal == signal::OOM_KILLS)
        });
        let leak = state.leak(at, self.config.leak_memory);
        if leak.is_none() && !oom {
            return None;
        }
        let memory = state
            .latest(signal::K8S_POD_MEMORY_WORKING_SET, Stat::Max)
            .filter(|l| l.time == at)?;
        let pods = match self.restarter.find_for(workload).await {
            Ok(Some(pods)) => pods,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(workload = %workload, error = %e, "cannot read the workload's pods; proposing nothing");
                return None;
            }
        };
        if !pods.all_ready() {
            // A pod is starting or going: one restart at a time, each seen through.
            return None;
        }
        let projection = match (leak, pods.memory_limit) {
            (Some(leak), Some(limit)) if leak.bytes_per_second > 0.0 => {
                let seconds = ((limit - memory.value) / leak.bytes_per_second).max(0.0);
                if seconds > self.config.restart_horizon.as_secs_f64() {
                    return None;
                }
                format!(
                    "memory {:.0} MiB of a {:.0} MiB limit, growing {:.2} MiB/min: the limit in {}",
                    memory.value / MIB,
                    limit / MIB,
                    leak.bytes_per_second * 60.0 / MIB,
                    homeostat_policies::duration::format_compact(Duration::from_secs_f64(seconds))
                )
            }
            _ if oom => "the kernel is OOM-killing its pods".to_owned(),
            _ => return None,
        };
        let oldest = pods.oldest()?;
        Some(Proposal {
            workload: workload.clone(),
            action: Action::RestartPods {
                workload: workload.clone(),
                pod: oldest.name.clone(),
                uid: oldest.uid.clone(),
            },
            reason: format!(
                "memory leak: {projection}; restart the oldest pod, {}, before it is killed",
                oldest.name
            ),
            evidence_time: at,
            current_replicas: u32::try_from(pods.pods.len()).unwrap_or(u32::MAX),
        })
    }

    async fn plan_for(
        &self,
        action: &Action,
        id: &DecisionId,
    ) -> Result<homeostat_core::Plan, ActuatorError> {
        match action {
            Action::RestartPods { .. } => self.restarter.plan(action, id).await,
            Action::ThrottleSampling { .. } => self.throttler.plan(action, id).await,
            Action::ScaleHpa { .. } => self.scaler.plan(action, id).await,
        }
    }

    async fn apply_plan(
        &self,
        action: &Action,
        plan: &homeostat_core::Plan,
        now: Timestamp,
    ) -> Result<Applied, ActuatorError> {
        match action {
            Action::RestartPods { .. } => self.restarter.apply(plan, now).await,
            Action::ThrottleSampling { .. } => self.throttler.apply(plan, now).await,
            Action::ScaleHpa { .. } => self.scaler.apply(plan, now).await,
        }
    }

    async fn decide(
        &mut self,
        proposal: Proposal,
        anomaly: Option<Anomaly>,
        now: Timestamp,
    ) -> Result<Decision, EngineError> {
        let id = DecisionId(ulid::Ulid::from_datetime(now.to_system_time()).to_string());
        let history = self.journal.past_actions(now - self.config.history)?;
        let t0 = Instant::now();
        let verdict = homeostat_policies::evaluate(
            &self.policies,
            &proposal,
            self.config.mode,
            &history,
            now,
        );
        let evaluate = t0.elapsed();
        let mode = effective_mode(&verdict, self.config.mode);
        let mut decision = Decision {
            id,
            time: now,
            anomaly,
            proposal,
            verdict,
            mode,
            plan: None,
            outcome: Outcome::Pending,
        };
        let t1 = Instant::now();
        match decision.verdict.kind {
            VerdictKind::Observe | VerdictKind::Deny => {
                decision.outcome = Outcome::Skipped {
                    reason: decision.verdict.reason.clone(),
                };
                self.journal.write(&decision).await?;
            }
            VerdictKind::DryRun | VerdictKind::Act => {
                match self.plan_for(&decision.verdict.action, &decision.id).await {
                    Err(e) => {
                        decision.outcome = Outcome::Failed {
                            error: format!("planning: {e}"),
                        };
                        self.journal.write(&decision).await?;
                    }
                    Ok(plan) if decision.verdict.kind == VerdictKind::DryRun => {
                        decision.plan = Some(plan);
                        decision.outcome = Outcome::Planned;
                        self.journal.write(&decision).await?;
                    }
                    Ok(plan) => {
                        decision.plan = Some(plan.clone());
                        // Intent first: a crash from here on is visible in the journal.
                        self.journal.write(&decision).await?;
                        decision.outcome =
                            match self.apply_plan(&decision.verdict.action, &plan, now).await {
                                Ok(applied) => Outcome::Applied { at: applied.at },
                                // The cluster asked to wait (a disruption budget): nothing changed.
                                Err(e @ ActuatorError::Deferred { .. }) => Outcome::Skipped {
                                    reason: e.to_string(),
                                },
                                Err(e) => Outcome::Failed {
                                    error: e.to_string(),
                                },
                            };
                        self.journal.write(&decision).await?;
                        if matches!(decision.outcome, Outcome::Applied { .. }) {
                            let message = format!(
                                "{} (decision {}): {}",
                                plan.summary, decision.id, decision.proposal.reason
                            );
                            let (target, reason) = match &decision.verdict.action {
                                // The pod is gone: the story belongs on its Deployment.
                                Action::RestartPods { workload, .. } => (
                                    ObjectRef {
                                        api_version: "apps/v1".into(),
                                        kind: workload.kind.as_str().into(),
                                        namespace: workload.namespace.clone(),
                                        name: workload.name.clone(),
                                    },
                                    "HomeostatRestarted",
                                ),
                                Action::ThrottleSampling { .. } => {
                                    (plan.target.clone(), "HomeostatThrottled")
                                }
                                Action::ScaleHpa { .. } => (plan.target.clone(), "HomeostatScaled"),
                            };
                            if let Err(e) = self.events.normal(&target, reason, &message, now).await
                            {
                                tracing::warn!(decision = %decision.id, error = %e, "the change was applied but its Event could not be recorded");
                            }
                        }
                    }
                }
            }
        }
        let timings = StepTimings {
            evaluate,
            actuate: t1.elapsed(),
        };
        self.spans.record(&decision, timings);
        self.metrics
            .decisions
            .with_label_values(&[
                decision.verdict.kind.as_str(),
                decision.verdict.action.kind().as_str(),
                decision.outcome.as_str(),
            ])
            .inc();
        tracing::info!(
            decision = %decision.id,
            workload = %decision.proposal.workload,
            verdict = decision.verdict.kind.as_str(),
            outcome = decision.outcome.as_str(),
            reason = %decision.verdict.reason,
            "decision"
        );
        if let Outcome::Failed { error } = &decision.outcome {
            tracing::warn!(decision = %decision.id, workload = %decision.proposal.workload, action = decision.verdict.action.kind().as_str(), %error, "action failed");
        }
        if let (Outcome::Applied { .. }, Action::ThrottleSampling { node, rate, .. }) =
            (&decision.outcome, &decision.verdict.action)
        {
            let every = homeostat_actuators::throttle::sample_every(*rate);
            if every > 1 {
                self.throttled.insert(
                    node.clone(),
                    Throttle {
                        every,
                        since: decision.time,
                        calm_since: None,
                    },
                );
            } else {
                self.throttled.remove(node);
            }
        }
        if let (
            Outcome::Applied { .. },
            Action::ScaleHpa {
                min_replicas,
                previous_min_replicas,
                ..
            },
        ) = (&decision.outcome, &decision.verdict.action)
            && let Some(state) = self.workloads.get_mut(&decision.proposal.workload)
        {
            if min_replicas < previous_min_replicas {
                // Restored: the episode is over.
                state.episode = None;
            } else if let Some(e) = state.episode.as_mut() {
                e.raised_from.get_or_insert(*previous_min_replicas);
                e.last_target = Some(*min_replicas);
                e.last_raise = Some(decision.time);
            }
        }
        Ok(decision)
    }
}

fn effective_mode(verdict: &Verdict, global: Mode) -> Mode {
    match verdict.kind {
        VerdictKind::Act => Mode::Enforce,
        VerdictKind::DryRun => Mode::DryRun,
        VerdictKind::Observe => Mode::Observe,
        VerdictKind::Deny => global,
    }
}
