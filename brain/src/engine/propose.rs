//! What the engine proposes for a workload it has just assessed: raise or restore an HPA's
//! `minReplicas` (or, for a workload no HPA scales, its replicas), restart a leaking pod or,
//! when most of a workload's pods crash-loop, all of them, throttle an overloaded sensor. Each proposal states
//! its reason in words a person accepts; policy then decides whether it may be done.

use std::time::Duration;

use homeostat_actuators::{HpaState, ScaleState};
use homeostat_core::{
    Action, Anomaly, AnomalyKind, AnomalySummary, ForecastSummary, Proposal, Stat, Timestamp,
    WorkloadRef, signal,
};

use super::Engine;
use super::relocate::Relocation;

const MIB: f64 = 1024.0 * 1024.0;

/// A throttle homeostat put on a node's sensor.
#[derive(Clone, Copy, Debug)]
pub(super) struct Throttle {
    /// One scheduler event sampled in this many.
    pub(super) every: u32,
    /// When it was set.
    pub(super) since: Timestamp,
    /// Since when no sensor has been over budget.
    pub(super) calm_since: Option<Timestamp>,
}

/// The probe a throttle samples less: the scheduler's, which runs on every context switch.
const THROTTLED_PROBE: &str = "runqueue";
/// The first throttle: one run-queue event in four.
const THROTTLE_FIRST: u32 = 4;
/// The most a throttle goes: one in 64.
const THROTTLE_MAX: u32 = 64;
/// How long a throttle is given to take effect before it is judged (and before scaling).
const THROTTLE_SETTLE: Duration = Duration::from_secs(120);

/// How far ahead the load forecast is looked at. A raise helps only once its pods are ready:
/// a pass, scheduling, the image and the readiness probe take one to three minutes (90 s of
/// start-up in the simulated library), so five minutes leaves them time to be ready before
/// the load arrives; further ahead a trend's extrapolation is more guess than forecast
/// (docs/detection.md, "Forecasting").
const HORIZON: Duration = Duration::from_secs(5 * 60);
/// The forecast rise that is worth acting on ahead: a fifth more within the horizon. The
/// steepest daily ramp of an ordinary service (a cycle of ±60 % over the day) climbs about
/// 1.3 % in five minutes, and an HPA follows that comfortably; 20 % is ten times the
/// forecast's usual error in quiet times.
const MIN_RISE: f64 = 1.2;
/// How many typical one-step errors of the forecast a rise must clear: less is the series'
/// own wobble (points lost in gaps and their rebound, noise), not a rise.
const RISE_OVER_SPREAD: f64 = 3.0;
/// Spare capacity a raise sized to the current load adds, for its noise (±5 % in the
/// simulated library). A forecast peak needs none: it is already the most expected.
const HEADROOM: f64 = 1.1;
/// How often, at most, a workload's replicas are read to learn what one serves.
const CAPACITY_READ_EVERY: Duration = Duration::from_secs(60);
/// A saturated workload whose replicas each serve this share of their learned ceiling is
/// capped: the rate seen is what they manage, not what is asked, so the load's real size is
/// unknown and a raise falls back to the scale factor.
const CAPPED_SHARE: f64 = 0.95;

/// A rise of the load the forecast sees coming: now and its peak within the horizon.
#[derive(Clone, Copy, Debug)]
struct Rise {
    current: f64,
    peak: f64,
}

impl Rise {
    fn summary(&self) -> ForecastSummary {
        ForecastSummary {
            signal: signal::HTTP_SERVER_REQUEST_DURATION.into(),
            horizon_seconds: HORIZON.as_secs(),
            current: self.current,
            expected: self.peak,
        }
    }
}

/// What the forecast of `state`'s request rate says at `at`: a rise when one worth acting on
/// is coming. `None` when the rate is not fresh at `at` (missing or stale data never acts).
fn rise(state: &crate::assess::WorkloadState, at: Timestamp) -> Option<Rise> {
    if state.load.last() != Some(at) || !state.load.warm() {
        return None;
    }
    let current = state.load.current()?;
    let peak = state.load.peak_within(HORIZON.as_secs_f64())?;
    let clear = peak - current >= RISE_OVER_SPREAD * state.load.spread();
    (current > 0.0 && peak >= current * MIN_RISE && clear).then_some(Rise { current, peak })
}

/// The replicas the load needs: the current load with [`HEADROOM`], or the forecast peak
/// within the horizon when that is more.
fn needed(capacity: &crate::forecast::Capacity, load: f64, peak: Option<f64>) -> Option<u32> {
    let now = capacity.needed(load, HEADROOM)?;
    Some(
        peak.and_then(|p| capacity.needed(p, 1.0))
            .map_or(now, |p| p.max(now)),
    )
}

/// The request rate served at `at`, when it was measured then.
fn served(state: &crate::assess::WorkloadState, at: Timestamp) -> Option<f64> {
    state
        .latest(signal::HTTP_SERVER_REQUEST_DURATION, Stat::Rate)
        .filter(|l| l.time == at && l.value.is_finite())
        .map(|l| l.value)
}

/// How the workload's replicas are set: by its HPA's `minReplicas`, or directly.
pub(super) enum Scaling {
    Hpa(HpaState),
    Direct(ScaleState),
}

impl Scaling {
    /// The floor homeostat moves: minReplicas, or the replicas themselves.
    pub(super) fn floor(&self) -> u32 {
        match self {
            Scaling::Hpa(h) => h.min_replicas,
            Scaling::Direct(s) => s.replicas,
        }
    }

    pub(super) fn ready(&self) -> u32 {
        match self {
            Scaling::Hpa(h) => h.ready_replicas.unwrap_or(h.current_replicas),
            Scaling::Direct(s) => s.ready_replicas,
        }
    }

    pub(super) fn current(&self) -> u32 {
        match self {
            Scaling::Hpa(h) => h.current_replicas,
            Scaling::Direct(s) => s.replicas,
        }
    }

    /// The action setting the floor to `to`, and the name of what it sets.
    pub(super) fn set(&self, workload: &WorkloadRef, to: u32) -> (Action, &'static str) {
        match self {
            Scaling::Hpa(h) => (
                Action::ScaleHpa {
                    hpa: h.hpa.clone(),
                    min_replicas: to,
                    previous_min_replicas: h.min_replicas,
                },
                "minReplicas",
            ),
            Scaling::Direct(s) => (
                Action::ScaleWorkload {
                    workload: workload.clone(),
                    replicas: to,
                    previous_replicas: s.replicas,
                },
                "replicas (no HPA scales it)",
            ),
        }
    }
}

impl Engine {
    /// How `workload` is scaled: through its HPA if it has one, else directly; `None` when
    /// that cannot be read (nothing is proposed on missing data).
    pub(super) async fn scaling_for(&self, workload: &WorkloadRef) -> Option<Scaling> {
        match self.scaler.find_for(workload).await {
            Ok(Some(hpa)) => return Some(Scaling::Hpa(hpa)),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(workload = %workload, error = %e, "cannot read the workload's HPA; proposing nothing");
                return None;
            }
        }
        match self.workload_scaler.find_for(workload).await {
            Ok(state) => state.map(Scaling::Direct),
            Err(e) => {
                tracing::warn!(workload = %workload, error = %e, "cannot read the workload's replicas; proposing nothing");
                None
            }
        }
    }

    /// The workload's pods; `None` (and nothing is proposed) when they cannot be read.
    pub(super) async fn pods_of(
        &self,
        workload: &WorkloadRef,
    ) -> Option<homeostat_actuators::RestartState> {
        match self.restarter.find_for(workload).await {
            Ok(pods) => pods,
            Err(e) => {
                tracing::warn!(workload = %workload, error = %e, "cannot read the workload's pods; proposing nothing");
                None
            }
        }
    }

    /// What to do about `workload`, if anything, with the anomaly behind it and the
    /// workload's labels attached for the policies' conditions, triggers and selectors.
    pub(super) async fn propose(
        &mut self,
        workload: &WorkloadRef,
        anomaly: Option<&Anomaly>,
        at: Timestamp,
        now: Timestamp,
    ) -> Option<Proposal> {
        let mut proposal = self.propose_action(workload, anomaly, at, now).await?;
        proposal.anomaly = anomaly.map(AnomalySummary::from);
        // For policies that select by label; unread labels match no selector, never all.
        proposal.workload_labels = match self.workload_scaler.labels_of(workload, now).await {
            Ok(labels) => labels,
            Err(e) => {
                tracing::debug!(%workload, error = %e, "workload labels not read");
                None
            }
        };
        Some(proposal)
    }

    async fn propose_action(
        &mut self,
        workload: &WorkloadRef,
        anomaly: Option<&Anomaly>,
        at: Timestamp,
        now: Timestamp,
    ) -> Option<Proposal> {
        if let Some(p) = self.propose_throttle(workload, anomaly, at) {
            return Some(p);
        }
        if let Some(p) = self.propose_escalation(workload, anomaly, at).await {
            return Some(p);
        }
        self.note_contention(workload, at);
        match self.propose_relocation(workload, anomaly, at).await {
            Relocation::Propose(p) => return Some(*p),
            Relocation::Wait => return None,
            Relocation::Nothing => {}
        }
        if let Some(p) = self.propose_untaint(workload, at) {
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
                && rise(state, at).is_none()
                && state
                    .normal_since
                    .is_some_and(|since| at.since(since) >= self.config.restore_after)
        };
        if !saturated
            && !restore_due
            && let Some(p) = self.propose_ahead(workload, anomaly, at).await
        {
            return Some(p);
        }
        if !saturated && !restore_due {
            if let Some(p) = self.propose_rollout_restart(workload, anomaly, at).await {
                return Some(p);
            }
            return self.propose_restart(workload, anomaly, at).await;
        }
        let scaling = self.scaling_for(workload).await?;
        let state = self.workloads.get_mut(workload)?;
        if saturated {
            let ready = scaling.ready();
            let last_target = state.episode.as_ref().and_then(|e| e.last_target);
            if last_target.is_some_and(|t| ready < t) {
                // The last raise has not taken effect yet: judge it before raising again.
                return None;
            }
            if last_target.is_some() && state.recovering() {
                // Latency is falling: the capacity is there and the queue is draining.
                return None;
            }
            let current = ready.max(scaling.floor()).max(1);
            let load = served(state, at);
            if let Some(load) = load {
                state.capacity.observe(at, load, ready, true);
                state.capacity_read = Some(at);
            }
            let blind = (f64::from(current) * self.config.scale_factor).ceil() as u32;
            // Not the forecast: while saturated, the rate follows the pods that arrive, not
            // the demand, and its trend says nothing about what is coming.
            let needed = load.and_then(|l| needed(&state.capacity, l, None));
            let capped = match (load, state.capacity.ceiling()) {
                (Some(l), Some(c)) => l / f64::from(ready.max(1)) >= CAPPED_SHARE * c,
                _ => true,
            };
            let mut target = match needed {
                // The rate is the load: give it what it needs.
                Some(n) if !capped && n > current => n,
                // The replicas serve all they can: the load is more than the rate says.
                Some(n) => blind.max(n),
                None => blind,
            };
            if let Scaling::Hpa(hpa) = &scaling {
                target = target.min(hpa.max_replicas);
            }
            if target <= scaling.floor() {
                return None;
            }
            let (action, what) = scaling.set(workload, target);
            let sizing = match (load, state.capacity.per_replica(), needed) {
                (Some(l), Some(per), Some(n)) if !capped && n > current => {
                    format!("; serving {l:.0}/s at ~{per:.0}/s a replica it needs {n}")
                }
                (Some(l), _, _) => format!("; serving all {l:.0}/s its replicas can"),
                _ => String::new(),
            };
            return Some(Proposal {
                needed_replicas: needed,
                ..Proposal::new(
                    workload.clone(),
                    action,
                    format!(
                        "saturated: latency and run-queue delay above baseline at {current} replicas{sizing}; raise {what} to {target}"
                    ),
                    at,
                    scaling.current(),
                )
            });
        }
        let original = state.episode.as_ref().and_then(|e| e.raised_from)?;
        if scaling.floor() <= original {
            state.episode = None;
            return None;
        }
        let normal_for = state.normal_since.map(|s| now.since(s)).unwrap_or_default();
        let (action, what) = scaling.set(workload, original);
        let pace = match scaling {
            Scaling::Hpa(_) => "the HPA scales down at its own pace",
            Scaling::Direct(_) => "the Deployment controller takes the extra pods away",
        };
        Some(Proposal::new(
            workload.clone(),
            action,
            format!(
                "normal for {}: restore {what} to {original}; {pace}",
                homeostat_policies::duration::format_compact(normal_for)
            ),
            at,
            scaling.current(),
        ))
    }

    /// Scaling ahead: when the forecast sees the request rate rise past what the ready
    /// replicas serve within [`HORIZON`], raise the floor to what the expected load needs, so
    /// the pods are ready when it comes rather than after the saturation it causes. While
    /// calm, the replicas are read now and then to learn what one serves. Nothing without a
    /// fresh rate, a warm forecast, a learned capacity and readable replicas; never lower.
    async fn propose_ahead(
        &mut self,
        workload: &WorkloadRef,
        anomaly: Option<&Anomaly>,
        at: Timestamp,
    ) -> Option<Proposal> {
        let state = self.workloads.get(workload)?;
        let load = served(state, at)?;
        // Calm as judged by warm detectors, not merely unflagged by cold ones. Capacity is only
        // learned then, so a capacity known means detectors that have been warm for a while.
        let calm = anomaly.is_none() && state.normal_since.is_some();
        // Latency creeping up as the load climbs is the rise itself; any other kind of
        // trouble is answered by its own remedy. Once a raise for saturation is in effect,
        // though, the rate climbs with the pods that arrive and drain the queue rather than
        // with the demand: no forecast of it means anything until it is restored.
        let may_raise = anomaly.is_none_or(|a| a.kind == AnomalyKind::Unclassified)
            && (!state.intervened() || state.raised_ahead);
        let coming =
            rise(state, at).filter(|_| may_raise && state.capacity.per_replica().is_some());
        let read_due = state
            .capacity_read
            .is_none_or(|t| at.since(t) >= CAPACITY_READ_EVERY);
        if coming.is_none() && !(calm && read_due) {
            return None;
        }
        let scaling = self.scaling_for(workload).await?;
        let ready = scaling.ready();
        let state = self.workloads.get_mut(workload)?;
        state.capacity_read = Some(at);
        if calm && ready >= scaling.current() {
            // Every pod ready and latency normal: they serve this much well.
            state.capacity.observe(at, load, ready, false);
        }
        let coming = coming?;
        let per = state.capacity.per_replica()?;
        let serves = f64::from(ready) * per;
        if coming.peak <= serves {
            return None;
        }
        if state
            .episode
            .as_ref()
            .and_then(|e| e.last_target)
            .is_some_and(|t| ready < t)
        {
            // The last raise has not taken effect yet.
            return None;
        }
        let needed = needed(&state.capacity, load, Some(coming.peak))?;
        let mut target = needed;
        if let Scaling::Hpa(hpa) = &scaling {
            target = target.min(hpa.max_replicas);
        }
        if target <= scaling.floor().max(scaling.current()) {
            return None;
        }
        let (action, what) = scaling.set(workload, target);
        Some(Proposal {
            needed_replicas: Some(needed),
            forecast: Some(coming.summary()),
            ..Proposal::new(
                workload.clone(),
                action,
                format!(
                    "forecast: request rate {:.0}/s → {:.0}/s within {}; {ready} replicas serve ~{serves:.0}/s; raise {what} to {target}",
                    coming.current,
                    coming.peak,
                    homeostat_policies::duration::format_compact(HORIZON)
                ),
                at,
                scaling.current(),
            )
        })
    }

    /// Most of a workload's pods crash-looping: replace them all by a rollout restart, which
    /// the workload's own rollout bounds pace. Only when most are failing — a bad rollout
    /// that stalled with the old pods still serving is not (a restart would roll the bad
    /// template again) — and never again while the last one's verify window is open.
    async fn propose_rollout_restart(
        &mut self,
        workload: &WorkloadRef,
        anomaly: Option<&Anomaly>,
        at: Timestamp,
    ) -> Option<Proposal> {
        if !anomaly.is_some_and(|a| a.kind == AnomalyKind::CrashLoop)
            || self.verifying(workload, homeostat_core::ActionKind::RolloutRestart)
        {
            return None;
        }
        let pods = self.pods_of(workload).await?;
        let failing = pods
            .pods
            .iter()
            .filter(|p| !p.ready && !p.terminating)
            .count();
        let total = pods.pods.iter().filter(|p| !p.terminating).count();
        if total == 0 || failing * 2 <= total {
            return None;
        }
        Some(Proposal::new(
            workload.clone(),
            Action::RolloutRestart {
                workload: workload.clone(),
            },
            format!(
                "crash loop: {failing} of {total} pods not ready and exiting with errors; restart them all by a rolling update"
            ),
            at,
            u32::try_from(total).unwrap_or(u32::MAX),
        ))
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
            return Some(Proposal::new(
                workload.clone(),
                Action::ThrottleSampling {
                    node: hot.clone(),
                    probe: THROTTLED_PROBE.into(),
                    rate: 1.0 / f64::from(every),
                },
                format!(
                    "the sensor on {hot} costs {:.1} % of a CPU, {how} its budget of {:.1} %: sample 1 run-queue event in {every}",
                    cost * 100.0,
                    budget * 100.0
                ),
                at,
                0,
            ));
        }
        let (node, _) = self.throttled.iter().find(|(_, t)| {
            at.since(t.since) >= self.config.hold_after_raise
                && t.calm_since
                    .is_some_and(|c| at.since(c) >= self.config.restore_after)
        })?;
        Some(Proposal::new(
            workload.clone(),
            Action::ThrottleSampling {
                node: node.clone(),
                probe: THROTTLED_PROBE.into(),
                rate: 1.0,
            },
            format!(
                "no sensor has been over its budget of {:.1} % of a CPU for a while: the one on {node} samples every event again",
                budget * 100.0
            ),
            at,
            0,
        ))
    }

    /// Whether a throttle of a sensor is still taking effect: scaling waits for it, since the
    /// CPU it gives back may end the saturation without a single new pod.
    pub(super) fn throttle_settling(&self, at: Timestamp) -> bool {
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
        let pods = self.pods_of(workload).await?;
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
            unavailable_replicas: Some(pods.unavailable()),
            ..Proposal::new(
                workload.clone(),
                Action::RestartPods {
                    workload: workload.clone(),
                    pod: oldest.name.clone(),
                    uid: oldest.uid.clone(),
                },
                format!(
                    "memory leak: {projection}; restart the oldest pod, {}, before it is killed",
                    oldest.name
                ),
                at,
                u32::try_from(pods.pods.len()).unwrap_or(u32::MAX),
            )
        })
    }
}
