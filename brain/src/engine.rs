//! The decision engine: closes the store's steps, scores them, and for each workload that
//! needs something proposes it, asks policy, and has the actuator plan and apply it — writing
//! intent to the journal before the actuator runs and the outcome after.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use homeostat_actuators::retry::RetryPolicy;
use homeostat_actuators::{
    ActionHistory, ActionRecord, Actuator, ActuatorError, Applied, EventRecorder, HpaScaler,
    NodeTainter, PodRestarter, Retry, RolloutRestarter, SamplingThrottler, WorkloadScaler,
};
use homeostat_core::{
    Action, Anomaly, Clock, Decision, DecisionId, Mode, Outcome, Proposal, Timestamp, Verdict,
    VerdictKind, Verification, WorkloadRef,
};
use homeostat_policies::PolicySet;
use thiserror::Error;

use crate::assess::WorkloadState;
use crate::journal::{Journal, JournalError};
use crate::metrics::BrainMetrics;
use crate::reload::PolicyHandle;
use crate::spans::{DecisionSpans, StepTimings};
use crate::store::SeriesStore;

mod escalate;
mod history;
mod propose;
mod recover;
mod relocate;
mod train;
mod verify;

use propose::Throttle;
use relocate::Tainted;
use verify::Watch;

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
    /// A node homeostat tainted for CPU contention is untainted once no workload has shown
    /// it contended for this long.
    pub taint_hold: Duration,
    /// How long an applied action is given to help: within it, the signals that triggered
    /// it must fall back under their detectors' thresholds for the action to count as helped.
    pub verify_window: Duration,
    /// The CUSUM's allowance on every series the detectors score, in spreads; `None` (the
    /// default) leaves change-point detection off.
    pub change_allowance: Option<f64>,
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
            taint_hold: Duration::from_secs(45 * 60),
            verify_window: Duration::from_secs(5 * 60),
            change_allowance: None,
        }
    }
}

/// How long to wait after `failures` consecutive failures before proposing the same kind of
/// action for the same workload again: 30 s, doubling, at most 8 minutes.
fn failure_backoff(failures: u32) -> Duration {
    Duration::from_secs(30) * 2u32.pow(failures.saturating_sub(1).min(4))
}

/// Why an evaluation pass failed as a whole (a single workload's failure is a decision's
/// `Failed` outcome instead).
#[derive(Debug, Error)]
pub enum EngineError {
    /// The journal could not be read or written: acting without it is not allowed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Past actions could not be read for the policies' limits: no verdict without them.
    #[error(transparent)]
    History(#[from] homeostat_policies::ActionLogError),
}

/// What one pass saw and did.
#[derive(Clone, Debug, Default)]
pub struct PassReport {
    /// Anomalies judged this pass.
    pub anomalies: Vec<Anomaly>,
    /// Decisions taken this pass.
    pub decisions: Vec<Decision>,
    /// Earlier decisions judged this pass: whether their change helped.
    pub verifications: Vec<(DecisionId, Verification)>,
}

/// The decision engine.
pub struct Engine {
    config: EngineConfig,
    clock: Arc<dyn Clock>,
    store: Arc<Mutex<SeriesStore>>,
    /// The policies in force, read afresh by every decision so a reload counts at once.
    policies: PolicyHandle,
    scaler: HpaScaler,
    workload_scaler: WorkloadScaler,
    restarter: PodRestarter,
    rollout: RolloutRestarter,
    throttler: SamplingThrottler,
    tainter: NodeTainter,
    /// Nodes whose sensor homeostat throttled.
    throttled: BTreeMap<String, Throttle>,
    /// Nodes homeostat tainted for CPU contention; `None` until read from the cluster, so a
    /// restarted brain takes over the taints it left.
    tainted: Option<BTreeMap<String, Tainted>>,
    /// The relocation step proposed last, to know its decision when it comes back.
    relocation_proposed: Option<Action>,
    /// When a pod of the workload was last moved off a contended node.
    relocated: BTreeMap<WorkloadRef, Timestamp>,
    /// When relocation was last refused or failed for the workload.
    relocation_refused: BTreeMap<WorkloadRef, Timestamp>,
    /// Applied decisions whose verify window is still open.
    watches: Vec<Watch>,
    /// Next steps owed to workloads whose last action did not help.
    escalations: BTreeMap<WorkloadRef, escalate::Escalation>,
    /// Consecutive failures of an action kind on a workload, and the last one's time.
    failures: BTreeMap<(WorkloadRef, homeostat_core::ActionKind), (u32, Timestamp)>,
    events: EventRecorder,
    /// The cluster's record of applied actions, for those the journal does not hold.
    action_history: ActionHistory,
    /// Those actions, read once per stretch of leadership; `None` until then.
    cluster_history: Option<Vec<homeostat_policies::PastAction>>,
    journal: Journal,
    spans: DecisionSpans,
    metrics: BrainMetrics,
    workloads: BTreeMap<WorkloadRef, WorkloadState>,
    /// Whether this replica leads, when several run: a follower learns and proposes nothing.
    leading: Option<tokio::sync::watch::Receiver<bool>>,
    /// The cluster, to ask after a crash whether an interrupted decision landed.
    client: kube::Client,
    /// Whether interrupted decisions and raised HPAs have been taken over from the journal.
    recovered: bool,
    /// Whether the detectors' learning has been read back from the journal.
    resumed: bool,
    /// Passes run, to keep the learning now and then.
    passes: u64,
    /// Joint models being fitted since the last pass.
    fitting: Option<train::Fitting>,
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
            policies: crate::reload::fixed(policies),
            scaler: HpaScaler::new(client.clone()),
            workload_scaler: WorkloadScaler::new(client.clone()),
            restarter: PodRestarter::new(client.clone()),
            rollout: RolloutRestarter::new(client.clone()),
            throttler: SamplingThrottler::new(
                client.clone(),
                homeostat_actuators::throttle::SENSOR_NAMESPACE,
            ),
            tainter: NodeTainter::new(client.clone()),
            throttled: BTreeMap::new(),
            tainted: None,
            relocation_proposed: None,
            relocated: BTreeMap::new(),
            relocation_refused: BTreeMap::new(),
            watches: Vec::new(),
            escalations: BTreeMap::new(),
            failures: BTreeMap::new(),
            events: EventRecorder::new(client.clone()),
            action_history: ActionHistory::new(client.clone()),
            cluster_history: None,
            journal,
            spans,
            metrics,
            workloads: BTreeMap::new(),
            leading: None,
            client,
            recovered: false,
            resumed: false,
            passes: 0,
            fitting: None,
        }
    }

    /// The store's aggregation step.
    fn step(&self) -> Duration {
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .step()
    }

    /// Acts only while `leading` says this replica leads (see [`crate::leader`]); until then,
    /// and whenever it follows, it keeps learning every workload's normal but proposes nothing.
    pub fn follow(&mut self, leading: tokio::sync::watch::Receiver<bool>) {
        self.leading = Some(leading);
    }

    /// Reads its policies through `policies` from now on, so a reload takes effect on the
    /// next decision without a restart.
    pub fn use_policies(&mut self, policies: PolicyHandle) {
        self.policies = policies;
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
        self.resume_learned()?;
        self.install_fitted().await;
        let mut steps: BTreeMap<WorkloadRef, Timestamp> = BTreeMap::new();
        for s in &samples {
            let state = self.workloads.entry(s.workload.clone()).or_insert_with(|| {
                WorkloadState::new(s.workload.clone(), step)
                    .with_change_allowance(self.config.change_allowance)
            });
            if state.observe(s) {
                self.metrics.samples.inc();
            }
            let step = steps.entry(s.workload.clone()).or_insert(s.time);
            *step = (*step).max(s.time);
        }
        self.metrics
            .workloads
            .set(i64::try_from(self.workloads.len()).unwrap_or(i64::MAX));

        let seen: Vec<WorkloadRef> = steps.keys().cloned().collect();
        let mut report = PassReport::default();
        if self.config.mode != Mode::Observe {
            self.recover(now).await?;
        }
        let follower = self.leading.as_ref().is_some_and(|l| !*l.borrow());
        self.metrics.leader.set(i64::from(!follower));
        if follower {
            // Whoever leads meanwhile acts; on taking the lead again, read what it did.
            self.cluster_history = None;
        }
        let mut history_known = true;
        if self.config.mode != Mode::Observe && !follower && !steps.is_empty() {
            // Only once interrupted decisions are settled: they may be raises to put back.
            history_known = self.recovered && self.know_cluster_history(now).await?;
            self.load_taints(now).await;
        }
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
            if self.config.mode == Mode::Observe || follower || !history_known {
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
        report.verifications = self.verify(now).await?;
        if !follower {
            self.escalate(&report.verifications, now).await?;
        }
        self.start_fitting();
        self.keep_learned_now_and_then(seen.iter()).await?;
        self.metrics
            .evaluation_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(report)
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
            Action::TaintNode { .. } => self.tainter.plan(action, id).await,
            Action::ScaleWorkload { .. } => self.workload_scaler.plan(action, id).await,
            Action::RolloutRestart { .. } => self.rollout.plan(action, id).await,
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
            Action::TaintNode { .. } => self.tainter.apply(plan, now).await,
            Action::ScaleWorkload { .. } => self.workload_scaler.apply(plan, now).await,
            Action::RolloutRestart { .. } => self.rollout.apply(plan, now).await,
        }
    }

    /// Applies `plan`, retrying what retrying can fix: after a conflict (409) the target is
    /// read and planned again, and the new plan journaled as the intent before it is sent;
    /// after a throttle, a server error or a lost answer the same plan is sent again. At most
    /// [`RetryPolicy::retries`] retries, each after a jittered wait. A target gone meanwhile
    /// ends the decision with the planning error. Returns the last result and plan.
    async fn apply_with_retries(
        &self,
        decision: &mut Decision,
        mut plan: homeostat_core::Plan,
        now: Timestamp,
    ) -> Result<(Result<Applied, ActuatorError>, homeostat_core::Plan), EngineError> {
        let policy = RetryPolicy::default();
        let action = decision.verdict.action.clone();
        let mut attempt = 0;
        loop {
            let error = match self.apply_plan(&action, &plan, now).await {
                Ok(applied) => return Ok((Ok(applied), plan)),
                Err(e) => e,
            };
            let how = error.retry();
            if how == Retry::Never || attempt >= policy.retries {
                return Ok((Err(error), plan));
            }
            attempt += 1;
            tracing::info!(decision = %decision.id, attempt, error = %error, "retrying the change");
            tokio::time::sleep(policy.delay(&decision.id.0, attempt)).await;
            if how == Retry::Replan {
                match self.plan_for(&action, &decision.id).await {
                    Ok(p) => {
                        plan = p;
                        decision.plan = Some(plan.clone());
                        self.journal.write(decision).await?;
                    }
                    Err(e) => return Ok((Err(e), plan)),
                }
            }
        }
    }

    async fn decide(
        &mut self,
        proposal: Proposal,
        anomaly: Option<Anomaly>,
        now: Timestamp,
    ) -> Result<Decision, EngineError> {
        let id = DecisionId(ulid::Ulid::from_datetime(now.to_system_time()).to_string());
        let history = self.past_actions(now - self.config.history)?;
        let policies = self.policies.borrow().clone();
        let t0 = Instant::now();
        let verdict =
            homeostat_policies::evaluate(&policies.set, &proposal, self.config.mode, &history, now);
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
            policy_set: Some(policies.id.clone()),
            verification: None,
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
                        let (result, plan) =
                            self.apply_with_retries(&mut decision, plan, now).await?;
                        let uid = result.as_ref().ok().and_then(|a| a.uid.clone());
                        decision.outcome = match result {
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
                            let action = &decision.verdict.action;
                            let (target, uid) = match action {
                                // The pod is gone: the story belongs on its Deployment, whose
                                // uid the recorder reads.
                                Action::RestartPods { workload, .. } => (
                                    homeostat_actuators::workload::workload_object(workload),
                                    None,
                                ),
                                _ => (plan.target.clone(), uid),
                            };
                            let record = ActionRecord {
                                decision: decision.id.clone(),
                                workload: decision.proposal.workload.clone(),
                                action: action.clone(),
                                time: decision.time,
                            };
                            if let Err(e) = self
                                .events
                                .applied(&target, uid.as_deref(), &message, &record)
                                .await
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
            policy_set = %policies.id,
            "decision"
        );
        if let Outcome::Failed { error } = &decision.outcome {
            tracing::warn!(decision = %decision.id, workload = %decision.proposal.workload, action = decision.verdict.action.kind().as_str(), %error, "action failed");
        }
        self.note_outcome(&decision);
        self.watch(&decision);
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
        if let (Outcome::Applied { .. }, Some((min_replicas, previous_min_replicas))) =
            (&decision.outcome, scaling(&decision.verdict.action))
            && let Some(state) = self.workloads.get_mut(&decision.proposal.workload)
        {
            let ahead = decision.proposal.forecast.is_some();
            if min_replicas < previous_min_replicas {
                // Restored: the episode is over.
                state.episode = None;
                state.raised_ahead = false;
            } else {
                state.raised_ahead = ahead && (state.raised_ahead || !state.intervened());
                if state.episode.is_none() && ahead {
                    // A raise ahead of the load opens an episode of its own, to be restored.
                    state.episode = Some(crate::assess::Episode {
                        started: decision.time,
                        last_anomalous: decision.time,
                        raised_from: None,
                        last_target: None,
                        last_raise: None,
                    });
                }
                if let Some(e) = state.episode.as_mut() {
                    e.raised_from.get_or_insert(previous_min_replicas);
                    e.last_target = Some(min_replicas);
                    e.last_raise = Some(decision.time);
                }
            }
        }
        Ok(decision)
    }
}

/// The replicas a scaling action sets and those it replaces: an HPA's `minReplicas`, or the
/// replicas of a workload no HPA scales. Either way the episode remembers what to put back.
fn scaling(action: &Action) -> Option<(u32, u32)> {
    match action {
        Action::ScaleHpa {
            min_replicas,
            previous_min_replicas,
            ..
        } => Some((*min_replicas, *previous_min_replicas)),
        Action::ScaleWorkload {
            replicas,
            previous_replicas,
            ..
        } => Some((*replicas, *previous_replicas)),
        _ => None,
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
