//! A pod as its kubelet sees it: one container that starts, becomes ready after the start-up
//! delay, and may exit (a crashing image, the OOM killer) to be restarted under
//! CrashLoopBackOff. Events fall at their exact times within a tick, so restart counts and
//! kill times are what the rates imply, not rounded to ticks.

use std::time::Duration;

use homeostat_core::Timestamp;
use serde_json::{Value, json};

use crate::model::incident::backoff::BackOff;
use crate::model::incident::memory::{DEFAULT_WORKING_SET_MIB, Leak, MIB, wander};
use crate::telemetry::{ExitKind, PodSignals};

/// How long a container of a crashing image runs before it exits with code 1.
pub const CRASH_AFTER: Duration = Duration::from_secs(5);

/// A memory leak in effect for a workload: its parameters and ground-truth window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeakWindow {
    /// The leak.
    pub leak: Leak,
    /// When it starts.
    pub from: Timestamp,
    /// When it ends, if it does.
    pub until: Option<Timestamp>,
}

/// What the container is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerState {
    /// Not started: the pod waits for a node.
    Pending,
    /// Running since then.
    Running(Timestamp),
    /// Exited; restarts then (CrashLoopBackOff).
    BackOff(Timestamp),
}

/// How the container last ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Termination {
    /// When it had started.
    pub started: Timestamp,
    /// When it ended.
    pub finished: Timestamp,
    /// Exit code (137 for the OOM killer's SIGKILL).
    pub code: i32,
}

impl Termination {
    fn reason(&self) -> &'static str {
        if self.code == 137 {
            "OOMKilled"
        } else {
            "Error"
        }
    }
}

/// A pod of the simulation.
#[derive(Clone, Debug)]
pub struct SimPod {
    /// Pod name.
    pub name: String,
    /// Pod UID, from the store.
    pub uid: String,
    /// The `pod-template-hash` of its ReplicaSet.
    pub hash: String,
    /// Its container's image.
    pub image: String,
    /// The node it runs on, once scheduled.
    pub node: Option<String>,
    /// Creation time.
    pub created: Timestamp,
    /// From a container's start to ready, for the first container of the pod.
    pub first_startup: Duration,
    /// From a container's start to ready, for restarted containers.
    pub startup: Duration,
    /// The container.
    pub state: ContainerState,
    /// Container restarts.
    pub restarts: u32,
    /// The back-off between restarts.
    pub backoff: BackOff,
    /// How the container last ended.
    pub last_termination: Option<Termination>,
    /// Whether the pod is ready (as last written to the store).
    pub ready: bool,
    /// Whether its status changed since it was last written to the store.
    pub dirty: bool,
    /// Its address, for the status.
    pub ip: String,
    /// Its cumulative signals.
    pub signals: PodSignals,
    /// CPU used during the last tick, fraction of its request.
    pub utilisation: f64,
}

impl SimPod {
    /// Whether its container is running.
    pub fn running(&self) -> bool {
        matches!(self.state, ContainerState::Running(_))
    }

    /// Whether the image exits shortly after every start.
    pub fn crashes(&self) -> bool {
        self.image.ends_with("-bad")
    }

    /// When the running container becomes ready.
    fn ready_at(&self, since: Timestamp) -> Timestamp {
        since
            + if self.restarts == 0 {
                self.first_startup
            } else {
                self.startup
            }
    }

    /// Advances the container to `now`: exits (crash, OOM kill) and restarts at their exact
    /// times; then sets readiness and the working set. Returns whether the pod's status
    /// changed.
    pub fn advance(&mut self, now: Timestamp, leak: Option<&LeakWindow>) -> bool {
        let before = (self.state, self.restarts, self.ready);
        loop {
            match self.state {
                ContainerState::Pending => break,
                ContainerState::BackOff(until) if until <= now => {
                    self.restarts += 1;
                    self.state = ContainerState::Running(until);
                }
                ContainerState::BackOff(_) => break,
                ContainerState::Running(since) => {
                    let crash = self.crashes().then(|| since + CRASH_AFTER);
                    let oom = leak.and_then(|l| oom_time(l, since));
                    let exit = match (crash, oom) {
                        (Some(c), Some(o)) if o < c => Some((o, 137)),
                        (Some(c), _) => Some((c, 1)),
                        (None, Some(o)) => Some((o, 137)),
                        (None, None) => None,
                    };
                    match exit {
                        Some((at, code)) if at <= now => {
                            if code == 137 {
                                self.signals.oom_kills += 1.0;
                                self.signals.exit(ExitKind::Signal);
                            } else {
                                self.signals.exit(ExitKind::Error);
                            }
                            let delay = self.backoff.on_exit(at.since(since));
                            self.last_termination = Some(Termination {
                                started: since,
                                finished: at,
                                code,
                            });
                            self.state = ContainerState::BackOff(at + delay);
                        }
                        _ => break,
                    }
                }
            }
        }
        self.ready =
            matches!(self.state, ContainerState::Running(since) if self.ready_at(since) <= now);
        self.signals.working_set_bytes = match self.state {
            ContainerState::Running(since) => working_set_mib(leak, since, now, &self.name) * MIB,
            _ => 0.0,
        };
        let changed = before != (self.state, self.restarts, self.ready);
        self.dirty |= changed;
        changed
    }

    /// The pod's `status`, as the kubelet reports it.
    pub fn status(&self, node_ip: &str) -> Value {
        let container_ready = self.ready;
        let (state, started) = match self.state {
            ContainerState::Pending => (json!({"waiting": {"reason": "ContainerCreating"}}), false),
            ContainerState::Running(since) => {
                (json!({"running": {"startedAt": since.to_rfc3339()}}), true)
            }
            ContainerState::BackOff(until) => (
                json!({"waiting": {"reason": "CrashLoopBackOff", "message": format!("back-off restarting failed container until {}", until.to_rfc3339())}}),
                false,
            ),
        };
        let last_state = self.last_termination.map_or(json!({}), |t| {
            json!({"terminated": {"exitCode": t.code, "reason": t.reason(), "startedAt": t.started.to_rfc3339(), "finishedAt": t.finished.to_rfc3339()}})
        });
        let ready = if container_ready { "True" } else { "False" };
        if self.node.is_none() {
            return json!({
                "phase": "Pending",
                "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes are available: Insufficient cpu."}],
            });
        }
        json!({
            "phase": "Running",
            "hostIP": node_ip,
            "podIP": self.ip,
            "startTime": self.created.to_rfc3339(),
            "conditions": [
                {"type": "PodScheduled", "status": "True"},
                {"type": "Initialized", "status": "True"},
                {"type": "ContainersReady", "status": ready},
                {"type": "Ready", "status": ready},
            ],
            "containerStatuses": [{
                "name": "app",
                "image": self.image,
                "ready": container_ready,
                "started": started,
                "restartCount": self.restarts,
                "state": state,
                "lastState": last_state,
            }],
        })
    }
}

/// When a container running since `since` is OOM-killed by `leak`, if it is.
fn oom_time(l: &LeakWindow, since: Timestamp) -> Option<Timestamp> {
    let growth_start = if since > l.from { since } else { l.from };
    let at = growth_start + l.leak.time_to_oom();
    l.until.is_none_or(|until| at < until).then_some(at)
}

/// The working set of `pod`'s container running since `since`, at `now`, MiB: its level
/// (grown by the leak, if one is going on) with the pod's wander, never above the limit.
fn working_set_mib(leak: Option<&LeakWindow>, since: Timestamp, now: Timestamp, pod: &str) -> f64 {
    let wander = wander(pod, now);
    match leak {
        Some(l) if now >= l.from && l.until.is_none_or(|u| now < u) => {
            let growth_start = if since > l.from { since } else { l.from };
            (l.leak.working_set_mib(now.since(growth_start)) * wander).min(l.leak.limit_mib)
        }
        Some(l) => (l.leak.baseline_mib * wander).min(l.leak.limit_mib),
        None => DEFAULT_WORKING_SET_MIB * wander,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::incident::memory::WANDER;

    fn pod(image: &str) -> SimPod {
        SimPod {
            name: "web-x-1".into(),
            uid: "u".into(),
            hash: "x".into(),
            image: image.into(),
            node: Some("n".into()),
            created: Timestamp::from_secs(0),
            first_startup: Duration::ZERO,
            startup: Duration::from_secs(30),
            state: ContainerState::Running(Timestamp::from_secs(0)),
            restarts: 0,
            backoff: BackOff::default(),
            last_termination: None,
            ready: false,
            dirty: true,
            ip: "10.244.0.2".into(),
            signals: PodSignals::default(),
            utilisation: 0.0,
        }
    }

    #[test]
    fn a_crashing_container_restarts_with_growing_back_off() {
        let mut p = pod("web:2.0-bad");
        // Exits at 5 s, back at 15, exits at 20, back at 40, exits at 45, back at 85.
        p.advance(Timestamp::from_secs(44), None);
        assert_eq!(p.restarts, 2);
        assert_eq!(p.signals.exits[ExitKind::Error as usize], 2.0);
        assert!(!p.ready);
        p.advance(Timestamp::from_secs(86), None);
        assert_eq!(
            (p.restarts, p.state),
            (3, ContainerState::Running(Timestamp::from_secs(85)))
        );
        assert_eq!(p.signals.exits[ExitKind::Error as usize], 3.0);
        assert_eq!(p.status("n")["containerStatuses"][0]["restartCount"], 3);
    }

    #[test]
    fn a_leak_kills_at_the_limit_and_the_restart_begins_at_the_baseline() {
        let mut p = pod("web:1.0");
        let l = LeakWindow {
            leak: Leak {
                rate_mib_per_min: 10.0,
                limit_mib: 300.0,
                baseline_mib: 100.0,
            },
            from: Timestamp::from_secs(600),
            until: None,
        };
        p.advance(Timestamp::from_secs(600 + 1199), Some(&l));
        assert!(p.ready && p.signals.oom_kills == 0.0);
        // The leak's level, give or take the pod's wander (five of its standard deviations).
        let near = |mib: f64, level: f64| (mib / level - 1.0).abs() < 5.0 * WANDER;
        let grown = 100.0 + 10.0 * 1199.0 / 60.0;
        assert!(near(p.signals.working_set_bytes / MIB, grown));
        p.advance(Timestamp::from_secs(600 + 1200), Some(&l));
        assert_eq!(p.signals.oom_kills, 1.0);
        assert_eq!(p.signals.exits[ExitKind::Signal as usize], 1.0);
        assert_eq!(p.signals.working_set_bytes, 0.0);
        let status = p.status("n");
        assert_eq!(
            status["containerStatuses"][0]["state"]["waiting"]["reason"],
            "CrashLoopBackOff"
        );
        assert_eq!(
            status["containerStatuses"][0]["lastState"]["terminated"]["reason"],
            "OOMKilled"
        );
        // Back after 10 s, ready 30 s later, at the baseline again.
        p.advance(Timestamp::from_secs(1800 + 10 + 29), Some(&l));
        assert!(!p.ready && p.restarts == 1);
        p.advance(Timestamp::from_secs(1800 + 10 + 30), Some(&l));
        assert!(p.ready);
        assert!(near(p.signals.working_set_bytes / MIB, 105.0));
    }
}
