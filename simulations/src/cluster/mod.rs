//! The simulated cluster's own controllers and machines: nodes with a scheduler, the
//! Deployment and ReplicaSet controllers, the kubelets running each pod's container, the HPA
//! controller model, and the incidents that strike them. They work on the [`ObjectStore`]
//! directly, as controllers in the control plane would; everything outside the cluster
//! (homeostat, kubectl) goes through the HTTP API.

use std::collections::HashMap;
use std::time::Duration;

use homeostat_core::Timestamp;
use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;

use crate::apiserver::{ApiError, ObjectStore};
use crate::model::incident::network::{self, LossEffect};
use crate::model::incident::{IncidentKind, IncidentSpec, cpu};
use crate::model::workload::{RUNQUEUE_BASE, TickOutcome};
use crate::scenario::Scenario;
use crate::telemetry::{PodIdentity, pod_metrics, sensor_metrics};

mod hpa;
pub mod node;
pub mod pod;
pub mod rollout;
pub mod sensor;
mod workload;

pub use node::{DEFAULT_NODE, SimNode};
pub use pod::{ContainerState, LeakWindow, SimPod};
pub use workload::{SimReplicaSet, SimWorkload, bad_image, image};

/// How often the HPA controller syncs (the kube-controller-manager default).
pub const HPA_SYNC: Duration = Duration::from_secs(15);

/// CPU a pod uses while its container starts, fraction of its request.
const STARTING_CPU: f64 = 0.05;

/// The simulated cluster: its nodes, its workloads and the incidents of the scenario.
#[derive(Debug)]
pub struct SimCluster {
    /// The nodes.
    pub nodes: Vec<SimNode>,
    /// The workloads, in the scenario's order.
    pub workloads: Vec<SimWorkload>,
    incidents: Vec<IncidentSpec>,
    /// Which incidents' changes to the cluster (a rollout, its undo) were made.
    applied: Vec<(bool, bool)>,
    /// Since when each workload (by index) has been exposed to each node incident (by index):
    /// from the first tick one of its pods ran on the node while the incident went on.
    exposed: HashMap<(usize, usize), Duration>,
    start: Timestamp,
    /// Per node, what its sensor cost during the last tick.
    sensor_overhead: Vec<f64>,
    /// Per node, whether its sensor reports its overhead (see [`SimCluster::install`]).
    sensor_reports: Vec<bool>,
    /// Per node, one run-queue event in how many its sensor samples (what it was told).
    sensor_sample_every: Vec<u32>,
}

/// What the nodes looked like during a tick, for each node in order.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NodeTick {
    /// CPU share the node's pods got of what they wanted.
    pub share: f64,
    /// CPU asked of the node (pods and anything else) over its cores.
    pub load: f64,
    /// Cores taken by something other than the pods.
    pub taken: f64,
}

impl SimCluster {
    /// Creates the scenario's nodes and workloads in `store`.
    ///
    /// Every node's sensor costs CPU, but only the nodes a scenario declares (or a node a
    /// `sensorOverload` targets) send `homeostat.sensor.overhead`: the implicit node of a
    /// scenario written before nodes existed stays silent, so the brain sees the same
    /// workloads in those scenarios as it did before (the sensor is a DaemonSet workload of
    /// its own to the brain).
    pub fn install(
        store: &ObjectStore,
        scenario: &Scenario,
        start: Timestamp,
    ) -> Result<Self, ApiError> {
        let nodes = node::install(store, &scenario.node_specs())?;
        sensor::install(store)?;
        let mut workloads = Vec::with_capacity(scenario.workloads.len());
        for (i, spec) in scenario.workloads.iter().enumerate() {
            let leak = scenario.incidents.iter().find_map(|inc| match inc.kind {
                IncidentKind::MemoryLeak(leak)
                    if inc.targets_workload(&spec.namespace, &spec.name) =>
                {
                    Some(LeakWindow {
                        leak,
                        from: start + inc.at,
                        until: inc.end.map(|e| start + e),
                    })
                }
                _ => None,
            });
            workloads.push(workload::install(
                store,
                spec,
                scenario.seed.wrapping_add(i as u64),
                &nodes,
                leak,
                start,
            )?);
        }
        let sensor_reports = nodes
            .iter()
            .map(|n| {
                !scenario.nodes.is_empty()
                    || scenario.incidents.iter().any(|i| {
                        matches!(i.kind, IncidentKind::SensorOverload { .. })
                            && i.targets_node(&n.name)
                    })
            })
            .collect();
        Ok(SimCluster {
            sensor_reports,
            sensor_sample_every: vec![1; nodes.len()],
            sensor_overhead: vec![cpu::SENSOR_BASELINE; nodes.len()],
            nodes,
            workloads,
            applied: vec![(false, false); scenario.incidents.len()],
            exposed: HashMap::new(),
            incidents: scenario.incidents.clone(),
            start,
        })
    }

    /// Makes the changes incidents make through the API (a bad rollout at its start, its
    /// undo at its end), then runs every workload's controllers; one result per workload, so
    /// one workload's trouble does not stop the others.
    pub fn reconcile(&mut self, store: &ObjectStore, now: Timestamp) -> Vec<Result<(), ApiError>> {
        let t = now.since(self.start);
        let mut results: Vec<Result<(), ApiError>> =
            self.workloads.iter().map(|_| Ok(())).collect();
        for (inc, applied) in self.incidents.iter().zip(&mut self.applied) {
            if inc.kind != IncidentKind::CrashLoop {
                continue;
            }
            let Some(k) = self
                .workloads
                .iter()
                .position(|w| inc.targets_workload(&w.spec.namespace, &w.spec.name))
            else {
                continue;
            };
            let w = &self.workloads[k];
            if !applied.0 && t >= inc.at {
                applied.0 = true;
                results[k] = w.set_image(store, &bad_image(&w.spec.name));
            }
            if !applied.1 && inc.end.is_some_and(|end| t >= end) {
                applied.1 = true;
                results[k] = w.set_image(store, &image(&w.spec.name));
            }
        }
        self.sensor_sample_every = self
            .nodes
            .iter()
            .map(|n| sensor::runqueue_sample_every(store, &n.name))
            .collect();
        for (w, r) in self.workloads.iter_mut().zip(&mut results) {
            let reconciled = w.reconcile(store, &self.nodes, now);
            if r.is_ok() {
                *r = reconciled;
            }
        }
        results
    }

    /// Cores taken on node `n` at `t` by anything but the pods, and what its sensor costs.
    fn taken(&self, node: &str, t: Duration) -> (f64, f64) {
        let mut sensor = cpu::SENSOR_BASELINE;
        let mut other = 0.0;
        for inc in self
            .incidents
            .iter()
            .filter(|i| i.targets_node(node) && i.covers(t))
        {
            match inc.kind {
                IncidentKind::NoisyNeighbour { cores } => other += cores,
                IncidentKind::SensorOverload { overhead } => sensor = sensor.max(overhead),
                _ => {}
            }
        }
        // The sensor's cost is its scheduler probe's, which falls with what it samples.
        let every = self
            .nodes
            .iter()
            .position(|n| n.name == node)
            .and_then(|i| self.sensor_sample_every.get(i))
            .copied()
            .unwrap_or(1);
        let sensor = sensor / f64::from(every);
        (other + sensor, sensor)
    }

    /// Packet loss a pod of workload `w` on `node` sees at `t`.
    fn loss(&self, w: &SimWorkload, node: Option<&str>, t: Duration) -> f64 {
        self.incidents
            .iter()
            .filter(|i| i.covers(t))
            .filter(|i| {
                i.targets_workload(&w.spec.namespace, &w.spec.name)
                    || node.is_some_and(|n| i.targets_node(n))
            })
            .filter_map(|i| match i.kind {
                IncidentKind::NetworkDegradation { loss } => Some(loss),
                _ => None,
            })
            .fold(0.0, f64::max)
    }

    /// Serves one tick of load on every workload's ready pods and accumulates every pod's
    /// signals. The nodes first: what the pods want of each node's CPU (the CPU their load
    /// would use unhindered) against what is left after anything else on it; then each
    /// workload's queue, served by its ready pods' capacity times their node's share.
    pub fn serve(&mut self, t: Duration, dt: Duration) -> (Vec<TickOutcome>, Vec<NodeTick>) {
        self.note_exposure(t);
        let secs = dt.as_secs_f64();
        let demands: Vec<f64> = self.workloads.iter_mut().map(|w| w.load.next(t)).collect();
        let node_index = |node: Option<&str>| -> Option<usize> {
            node.and_then(|n| self.nodes.iter().position(|m| m.name == n))
        };
        let mut wanted = vec![0.0; self.nodes.len()];
        for (w, demand) in self.workloads.iter().zip(&demands) {
            let full: f64 = w.pods.iter().filter(|p| p.ready).count() as f64 * w.spec.pod.capacity;
            let rho = if full > 0.0 {
                ((demand * secs + w.serving.backlog()) / (full * secs)).min(1.0)
            } else {
                0.0
            };
            for p in &w.pods {
                if let Some(n) = node_index(p.node.as_deref()) {
                    let fraction = match (p.running(), p.ready) {
                        (true, true) => rho,
                        (true, false) => STARTING_CPU,
                        _ => 0.0,
                    };
                    wanted[n] += fraction * w.spec.pod.cpu_request;
                }
            }
        }
        let nodes: Vec<NodeTick> = self
            .nodes
            .iter()
            .zip(&wanted)
            .map(|(n, &want)| {
                let (taken, _) = self.taken(&n.name, t);
                NodeTick {
                    share: cpu::share(n.cores, taken, want),
                    load: (want + taken) / n.cores,
                    taken,
                }
            })
            .collect();
        self.sensor_overhead = self
            .nodes
            .iter()
            .map(|n| self.taken(&n.name, t).1)
            .collect();
        let losses: Vec<Vec<f64>> = self
            .workloads
            .iter()
            .map(|w| {
                w.pods
                    .iter()
                    .map(|p| self.loss(w, p.node.as_deref(), t))
                    .collect()
            })
            .collect();
        let node_of: Vec<Vec<Option<usize>>> = self
            .workloads
            .iter()
            .map(|w| {
                w.pods
                    .iter()
                    .map(|p| node_index(p.node.as_deref()))
                    .collect()
            })
            .collect();
        let mut outcomes = Vec::with_capacity(self.workloads.len());
        for (((w, demand), losses), node_of) in self
            .workloads
            .iter_mut()
            .zip(demands)
            .zip(losses)
            .zip(node_of)
        {
            let share = |k: usize| node_of[k].map_or(1.0, |n| nodes[n].share);
            let capacity_of = |k: usize, p: &SimPod| {
                if p.ready {
                    w.spec.pod.capacity * share(k)
                } else {
                    0.0
                }
            };
            let capacity: f64 = w
                .pods
                .iter()
                .enumerate()
                .map(|(k, p)| capacity_of(k, p))
                .sum();
            let service = w.spec.pod.base_latency.as_secs_f64();
            let mut o = w.serving.tick(demand, capacity, service, secs);
            let request = w.spec.pod.cpu_request;
            // Served-weighted latency components over the pods, for the workload's p99.
            let mut components = [(0.0, 0.0); 3];
            let mut lossy = false;
            for (k, p) in w.pods.iter_mut().enumerate() {
                let cap = if p.ready {
                    w.spec.pod.capacity * share(k)
                } else {
                    0.0
                };
                let served = if capacity > 0.0 {
                    o.served * cap / capacity
                } else {
                    0.0
                };
                let node_factor = node_of[k].map_or(1.0, |n| cpu::runqueue_factor(nodes[n].load));
                p.utilisation = match (p.running(), p.ready) {
                    (true, true) => o.utilisation * share(k),
                    (true, false) => STARTING_CPU * share(k).max(0.0),
                    _ => 0.0,
                };
                p.signals.cpu_seconds += p.utilisation * request * secs;
                let effect = LossEffect::of(losses[k]);
                lossy |= losses[k] > 0.0;
                if p.ready {
                    for (c, (f, extra)) in components.iter_mut().zip(effect.components()) {
                        c.0 += served * f;
                        c.1 = extra;
                        p.signals.requests.add_shifted_exponential(
                            served * f,
                            o.fixed_latency + extra,
                            o.queue_wait,
                        );
                    }
                    p.signals.retransmits += served * effect.retransmits_per_request;
                    p.signals.resets += served * effect.resets_per_request;
                    let connects = served * network::CONNECTIONS_PER_REQUEST;
                    p.signals.connects.add_shifted_exponential(
                        connects * (1.0 - effect.syn_retried),
                        network::CONNECT_RTT,
                        network::CONNECT_JITTER,
                    );
                    p.signals.connects.add_shifted_exponential(
                        connects * effect.syn_retried,
                        network::CONNECT_RTT + network::SYN_RTO,
                        network::CONNECT_JITTER,
                    );
                }
                if p.running() {
                    // Context switches grow with work; their run-queue delay with the pod's
                    // CPU pressure and its node's.
                    let switches = (200.0 + 2000.0 * p.utilisation) * secs;
                    let own = if p.ready {
                        o.runqueue_mean
                    } else {
                        RUNQUEUE_BASE
                    };
                    p.signals
                        .runqueue
                        .add_shifted_exponential(switches, 0.0, own * node_factor);
                }
            }
            let total: f64 = components.iter().map(|c| c.0).sum();
            if lossy && total > 0.0 {
                let parts: Vec<(f64, f64)> = components
                    .iter()
                    .map(|&(n, extra)| (n / total, extra))
                    .collect();
                o.p99 = network::quantile(0.99, o.fixed_latency, o.queue_wait, &parts);
            }
            outcomes.push(o);
        }
        (outcomes, nodes)
    }

    /// Every pod's OTLP resource metrics at `now`, and every node's sensor's.
    pub fn telemetry(&self, now: Timestamp) -> Vec<ResourceMetrics> {
        let mut out: Vec<ResourceMetrics> = self
            .workloads
            .iter()
            .flat_map(|w| {
                w.pods.iter().map(move |p| {
                    let id = PodIdentity {
                        namespace: &w.spec.namespace,
                        deployment: &w.spec.name,
                        pod: &p.name,
                        uid: &p.uid,
                        node: p.node.as_deref().unwrap_or_default(),
                        started: p.created,
                    };
                    pod_metrics(&id, &p.signals, now)
                })
            })
            .collect();
        for ((n, overhead), reports) in self
            .nodes
            .iter()
            .zip(&self.sensor_overhead)
            .zip(&self.sensor_reports)
        {
            if *reports {
                out.push(sensor_metrics(&n.name, *overhead, self.start, now));
            }
        }
        out
    }

    /// Notes which workloads have pods on the node of a node incident going on at `t`.
    fn note_exposure(&mut self, t: Duration) {
        for (i, inc) in self
            .incidents
            .iter()
            .enumerate()
            .filter(|(_, i)| i.covers(t))
        {
            for (k, w) in self.workloads.iter().enumerate() {
                if on_node_of(w, inc) {
                    self.exposed.entry((k, i)).or_insert(t);
                }
            }
        }
    }

    /// The ground truth of workload `k` at `t`: the kinds of what is happening to it (its
    /// load events, incidents targeting it, node incidents on a node where it has or had pods
    /// since the incident began), joined by `+`; `None` when nothing is. Moving the pods off
    /// the node mitigates a node's incident; it is over for the workload when it is over.
    pub fn ground_truth(&self, k: usize, t: Duration) -> Option<String> {
        let w = self.workloads.get(k)?;
        let mut kinds: Vec<&'static str> = w.load.events_at(t).map(|e| e.kind_name()).collect();
        for (i, inc) in self
            .incidents
            .iter()
            .enumerate()
            .filter(|(_, i)| i.covers(t))
        {
            let hits = inc.targets_workload(&w.spec.namespace, &w.spec.name)
                || on_node_of(w, inc)
                || self.exposed.get(&(k, i)).is_some_and(|since| *since <= t);
            if hits {
                kinds.push(inc.kind.name());
            }
        }
        kinds.sort_unstable();
        kinds.dedup();
        (!kinds.is_empty()).then(|| kinds.join("+"))
    }
}

/// Whether a pod of `w` runs on the node `inc` strikes.
fn on_node_of(w: &SimWorkload, inc: &IncidentSpec) -> bool {
    w.pods
        .iter()
        .any(|p| p.node.as_deref().is_some_and(|n| inc.targets_node(n)))
}
