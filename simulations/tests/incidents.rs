//! The physics of the incident models, the nodes and the ReplicaSets, driven tick by tick on
//! the simulated cluster's store without a brain or an HPA in the way (replicas stay as the
//! scenario sets them, so what changes is the incident's doing).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use homeostat_core::{ManualClock, Timestamp, signal};
use homeostat_simulations::Scenario;
use homeostat_simulations::apiserver::discovery::{DEPLOYMENTS, NODES, PODS, REPLICA_SETS};
use homeostat_simulations::apiserver::{ObjectSelector, ObjectStore};
use homeostat_simulations::cluster::{NodeTick, SimCluster, SimPod};
use homeostat_simulations::model::incident::backoff;
use homeostat_simulations::model::incident::memory::{MIB, WANDER};
use homeostat_simulations::model::workload::TickOutcome;
use homeostat_simulations::telemetry::ExitKind;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::metric;
use serde_json::Value;

const MIN: u64 = 60;

fn load(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// A scenario's cluster, stepped by hand.
struct Sim {
    store: ObjectStore,
    clock: ManualClock,
    cluster: SimCluster,
    start: Timestamp,
    step: Duration,
    t: Duration,
}

impl Sim {
    fn new(s: &Scenario) -> Self {
        let start = Timestamp::from_secs(1_700_000_000);
        let clock = ManualClock::new(start);
        let store = ObjectStore::new(Arc::new(clock.clone()));
        let cluster = SimCluster::install(&store, s, start).expect("install");
        Sim {
            store,
            clock,
            cluster,
            start,
            step: s.step,
            t: Duration::ZERO,
        }
    }

    fn tick(&mut self) -> (Vec<TickOutcome>, Vec<NodeTick>) {
        self.t += self.step;
        let now = self.start + self.t;
        self.clock.set(now);
        for r in self.cluster.reconcile(&self.store, now) {
            r.expect("reconcile");
        }
        self.cluster.serve(self.t, self.step)
    }

    /// Ticks until `t` (inclusive) and returns the last tick's outcome.
    fn until(&mut self, t: Duration) -> (Vec<TickOutcome>, Vec<NodeTick>) {
        let mut last = (Vec::new(), Vec::new());
        while self.t < t {
            last = self.tick();
        }
        last
    }

    fn pods(&self, w: usize) -> &[SimPod] {
        &self.cluster.workloads[w].pods
    }

    fn stored_pods(&self, ns: &str) -> Vec<Value> {
        self.store
            .list(&PODS, Some(ns), &ObjectSelector::default())
            .0
    }

    fn replica_sets(&self, ns: &str) -> Vec<Value> {
        self.store
            .list(&REPLICA_SETS, Some(ns), &ObjectSelector::default())
            .0
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Whether a working set of `mib` is `level` give or take a pod's wander (five of its
/// standard deviations).
fn near(mib: f64, level: f64) -> bool {
    (mib / level - 1.0).abs() < 5.0 * WANDER
}

#[test]
fn a_leak_kills_every_48_minutes_with_its_signals_and_restarts() {
    let s = load("memory-leak.yaml");
    let mut sim = Sim::new(&s);
    // 8 MiB/min from 128 to 512 MiB: 48 minutes from the leak's start at 00:30.
    let first = 30 * MIN + 48 * MIN;
    sim.until(secs(first - 15));
    for p in sim.pods(0) {
        assert_eq!(p.signals.oom_kills, 0.0);
        let ws = p.signals.working_set_bytes / MIB;
        assert!(near(ws, 128.0 + 8.0 * 47.75) && ws <= 512.0, "{ws}");
    }
    sim.until(secs(first));
    for p in sim.pods(0) {
        assert_eq!(p.signals.oom_kills, 1.0, "{}", p.name);
        assert_eq!(p.signals.exits[ExitKind::Signal as usize], 1.0);
        assert_eq!(p.signals.exits[ExitKind::Error as usize], 0.0);
        assert!(!p.ready);
    }
    let stored = sim.stored_pods("shop");
    assert_eq!(stored.len(), 4);
    for p in &stored {
        let c = &p["status"]["containerStatuses"][0];
        assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff", "{c}");
        assert_eq!(c["lastState"]["terminated"]["reason"], "OOMKilled");
        assert_eq!(c["restartCount"], 0);
        assert_eq!(p["status"]["conditions"][3]["status"], "False");
    }
    // Restarted after the 10 s back-off, ready 90 s after that.
    sim.until(secs(first + 15));
    for p in &sim.stored_pods("shop") {
        assert_eq!(p["status"]["containerStatuses"][0]["restartCount"], 1);
        assert!(p["status"]["containerStatuses"][0]["state"]["running"].is_object());
    }
    assert!(sim.pods(0).iter().all(|p| !p.ready));
    sim.until(secs(first + 90));
    assert!(sim.pods(0).iter().all(|p| !p.ready));
    let (outcome, _) = sim.until(secs(first + 105));
    assert!(sim.pods(0).iter().all(|p| p.ready));
    assert!(outcome[0].backlog > 0.0 || outcome[0].served > 0.0);
    for p in sim.pods(0) {
        let ws = p.signals.working_set_bytes / MIB;
        assert!(near(ws, 128.0 + 8.0 * 95.0 / 60.0), "{ws}");
    }
    // Every 48 minutes and 10 s after that (the back-off reset: each ran 48 minutes), until
    // the leak ends at 03:30.
    let second = first + 10 + 48 * MIN;
    let third = second + 10 + 48 * MIN;
    assert!(third + 10 + 48 * MIN > 210 * MIN);
    sim.until(secs(second - 10));
    assert!(sim.pods(0).iter().all(|p| p.signals.oom_kills == 1.0));
    sim.until(secs(second + 10));
    assert!(sim.pods(0).iter().all(|p| p.signals.oom_kills == 2.0));
    sim.until(s.duration);
    for p in sim.pods(0) {
        assert_eq!((p.signals.oom_kills, p.restarts), (3.0, 3), "{}", p.name);
        // After the leak, the working set stays at the baseline.
        assert!(near(p.signals.working_set_bytes / MIB, 128.0));
    }
    // The HPA saw nothing: CPU does not grow with a leak.
    assert_eq!(sim.pods(0).len(), 4);
}

/// Exits of a container that crashes `after` every start, restarted under the back-off,
/// within `elapsed` of its first start.
fn expected_crashes(after: Duration, elapsed: Duration) -> u32 {
    let (mut t, mut delay, mut n) = (Duration::ZERO, backoff::INITIAL, 0);
    loop {
        t += after;
        if t > elapsed {
            return n;
        }
        n += 1;
        t += delay;
        delay = (delay * 2).min(backoff::MAX);
    }
}

#[test]
fn a_crashing_rollout_stalls_at_max_unavailable_and_undo_restores_the_old_replica_set() {
    let s = load("crash-loop.yaml");
    let mut sim = Sim::new(&s);
    sim.until(secs(59 * MIN));
    let before = sim.replica_sets("shop");
    assert_eq!(before.len(), 1);
    let old_name = before[0]["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // The rollout begins at 01:00; watch it for the forty minutes of the incident.
    let mut first_seen: std::collections::HashMap<String, Duration> = Default::default();
    while sim.t < secs(100 * MIN - 15) {
        sim.tick();
        let w = &sim.cluster.workloads[0];
        let old = w.pods.iter().filter(|p| !p.crashes()).count();
        let old_ready = w.pods.iter().filter(|p| !p.crashes() && p.ready).count();
        assert!(
            old >= 3 && old_ready >= 3,
            "old fell to {old} at {:?}",
            sim.t
        );
        assert!(w.pods.len() <= 5, "surge beyond 25 %");
        for p in w.pods.iter().filter(|p| p.crashes()) {
            assert!(!p.ready, "a crashing pod became ready");
            first_seen.entry(p.name.clone()).or_insert(sim.t);
        }
    }
    let w = &sim.cluster.workloads[0];
    let new: Vec<&SimPod> = w.pods.iter().filter(|p| p.crashes()).collect();
    assert_eq!(new.len(), 2, "the rollout stalls with two new pods");
    assert_eq!(w.pods.len() - new.len(), 3);
    for p in &new {
        let expected = expected_crashes(Duration::from_secs(5), sim.t - first_seen[&p.name]);
        let exits = p.signals.exits[ExitKind::Error as usize] as u32;
        assert!(exits.abs_diff(expected) <= 1, "{exits} vs {expected}");
        assert!(exits >= 10, "{exits}");
        assert_eq!(p.signals.oom_kills, 0.0);
    }
    let rss = sim.replica_sets("shop");
    assert_eq!(rss.len(), 2);
    let find = |name: &str| rss.iter().find(|r| r["metadata"]["name"] == name).cloned();
    let old_rs = find(&old_name).expect("old RS");
    assert_eq!(old_rs["spec"]["replicas"], 3);
    assert_eq!(
        old_rs["status"]["observedGeneration"],
        old_rs["metadata"]["generation"]
    );
    let new_rs = rss
        .iter()
        .find(|r| r["metadata"]["name"] != old_name.as_str())
        .expect("new RS");
    assert_eq!(new_rs["spec"]["replicas"], 2);
    assert_eq!(new_rs["status"]["availableReplicas"], 0);
    assert!(
        new_rs["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .is_some_and(|i| i.ends_with(":2.0-bad"))
    );
    let d = sim
        .store
        .get(&DEPLOYMENTS, Some("shop"), "checkout")
        .expect("deployment");
    assert_eq!(d["status"]["updatedReplicas"], 2);
    assert_eq!(d["status"]["availableReplicas"], 3);
    assert_eq!(d["status"]["replicas"], 5);
    // Undone at 01:40: the old ReplicaSet is back to four, the bad one to none.
    sim.until(secs(110 * MIN));
    let rss = sim.replica_sets("shop");
    let old_rs = rss
        .iter()
        .find(|r| r["metadata"]["name"] == old_name.as_str())
        .expect("old RS");
    assert_eq!(old_rs["spec"]["replicas"], 4);
    assert_eq!(old_rs["status"]["readyReplicas"], 4);
    assert!(
        rss.iter()
            .filter(|r| r["metadata"]["name"] != old_name.as_str())
            .all(|r| r["spec"]["replicas"] == 0)
    );
    let w = &sim.cluster.workloads[0];
    assert_eq!(w.pods.len(), 4);
    assert!(w.pods.iter().all(|p| p.ready && !p.crashes()));
}

#[test]
fn pods_are_owned_by_their_replica_set_and_it_by_the_deployment() {
    let s = load("crash-loop.yaml");
    let mut sim = Sim::new(&s);
    sim.until(secs(62 * MIN));
    let d = sim
        .store
        .get(&DEPLOYMENTS, Some("shop"), "checkout")
        .expect("deployment");
    let d_uid = &d["metadata"]["uid"];
    let rss = sim.replica_sets("shop");
    assert_eq!(rss.len(), 2);
    for rs in &rss {
        let owner = &rs["metadata"]["ownerReferences"][0];
        assert_eq!(
            (&owner["kind"], &owner["uid"]),
            (&Value::from("Deployment"), d_uid)
        );
        let hash = &rs["metadata"]["labels"]["pod-template-hash"];
        assert_eq!(
            rs["metadata"]["name"],
            format!("checkout-{}", hash.as_str().unwrap_or_default())
        );
        assert_eq!(
            rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"],
            *hash
        );
    }
    let pods = sim.stored_pods("shop");
    assert_eq!(pods.len(), 5);
    for p in &pods {
        let owner = &p["metadata"]["ownerReferences"][0];
        let rs = rss
            .iter()
            .find(|r| r["metadata"]["uid"] == owner["uid"])
            .expect("the pod's owner is a stored ReplicaSet");
        assert_eq!(owner["name"], rs["metadata"]["name"]);
        assert_eq!(
            p["metadata"]["labels"]["pod-template-hash"],
            rs["metadata"]["labels"]["pod-template-hash"]
        );
    }
}

#[test]
fn pods_deleted_through_the_store_are_replaced() {
    let s = load("load-spike.yaml");
    let mut sim = Sim::new(&s);
    sim.until(secs(5 * MIN));
    let doomed: Vec<String> = sim
        .stored_pods("shop")
        .iter()
        .take(2)
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    for name in &doomed {
        sim.store.delete(&PODS, Some("shop"), name).expect("delete");
    }
    sim.tick();
    let names: Vec<String> = sim
        .stored_pods("shop")
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(doomed.iter().all(|d| !names.contains(d)));
    assert_eq!(sim.pods(0).len(), 4);
    assert_eq!(sim.pods(0).iter().filter(|p| p.ready).count(), 2);
    // Ready after their start-up delay.
    sim.until(secs(5 * MIN + 15 + 90));
    assert_eq!(sim.pods(0).iter().filter(|p| p.ready).count(), 4);
}

fn runqueue_mean_since(before: &[(f64, f64)], pods: &[SimPod]) -> Vec<f64> {
    pods.iter()
        .zip(before)
        .map(|(p, (n0, s0))| (p.signals.runqueue.sum() - s0) / (p.signals.runqueue.count() - n0))
        .collect()
}

fn runqueue_totals(pods: &[SimPod]) -> Vec<(f64, f64)> {
    pods.iter()
        .map(|p| (p.signals.runqueue.count(), p.signals.runqueue.sum()))
        .collect()
}

#[test]
fn the_scheduler_spreads_a_workload_over_the_nodes_and_stops_at_their_cpu() {
    let s = load("noisy-neighbour.yaml");
    let sim = Sim::new(&s);
    let nodes = sim.store.list(&NODES, None, &ObjectSelector::default()).0;
    assert_eq!(nodes.len(), 3);
    for n in &nodes {
        assert_eq!(n["status"]["allocatable"]["cpu"], "2000m");
        assert_eq!(n["status"]["conditions"][0]["type"], "Ready");
        assert_eq!(n["status"]["conditions"][0]["status"], "True");
    }
    let mut per_node = std::collections::BTreeMap::<String, u32>::new();
    for p in sim.stored_pods("shop") {
        *per_node
            .entry(p["spec"]["nodeName"].as_str().unwrap_or("none").to_owned())
            .or_default() += 1;
    }
    assert_eq!(
        per_node.into_iter().collect::<Vec<_>>(),
        [
            ("node-a".into(), 2),
            ("node-b".into(), 2),
            ("node-c".into(), 2)
        ]
    );
    // Telemetry carries the pod's real node.
    for rm in sim.cluster.telemetry(sim.start + secs(15)) {
        let attrs = rm.resource.expect("resource").attributes;
        let get = |k: &str| {
            attrs
                .iter()
                .find(|a| a.key == k)
                .and_then(|a| match &a.value.as_ref()?.value {
                    Some(any_value::Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
        };
        let node = get("k8s.node.name").expect("node attribute");
        if let Some(pod) = get("k8s.pod.name").filter(|p| p.starts_with("checkout")) {
            let stored = sim.store.get(&PODS, Some("shop"), &pod).expect("pod");
            assert_eq!(stored["spec"]["nodeName"], node.as_str());
        }
    }
    // Twelve pods of 0.5 cores fill three 2-core nodes; a thirteenth waits, unscheduled.
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/noisy-neighbour.yaml"),
    )
    .expect("read")
    .replace("replicas: 6\n", "replicas: 13\n")
    .replace("maxReplicas: 12 ", "maxReplicas: 13 ");
    let full = Scenario::parse("full.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
    let sim = Sim::new(&full);
    let pending: Vec<Value> = sim
        .stored_pods("shop")
        .into_iter()
        .filter(|p| p["spec"]["nodeName"].is_null())
        .collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["status"]["phase"], "Pending");
    assert_eq!(
        pending[0]["status"]["conditions"][0]["reason"],
        "Unschedulable"
    );
}

#[test]
fn a_noisy_neighbour_slows_only_the_pods_on_its_node() {
    let s = load("noisy-neighbour.yaml");
    let mut sim = Sim::new(&s);
    let (_, calm_nodes) = sim.until(secs(50 * MIN));
    assert!(calm_nodes.iter().all(|n| n.share == 1.0));
    let rq0 = runqueue_totals(sim.pods(0));
    let cpu0: Vec<f64> = sim.pods(0).iter().map(|p| p.signals.cpu_seconds).collect();
    sim.until(secs(60 * MIN));
    let calm = runqueue_mean_since(&rq0, sim.pods(0));
    let cpu_calm: Vec<f64> = sim
        .pods(0)
        .iter()
        .zip(&cpu0)
        .map(|(p, c)| p.signals.cpu_seconds - c)
        .collect();
    let rq1 = runqueue_totals(sim.pods(0));
    let cpu1: Vec<f64> = sim.pods(0).iter().map(|p| p.signals.cpu_seconds).collect();
    let (_, nodes) = sim.until(secs(70 * MIN));
    let noisy = runqueue_mean_since(&rq1, sim.pods(0));
    // node-b: 0.2 of 2 cores left for pods wanting about 0.6.
    assert!(
        nodes[1].share < 0.4 && nodes[1].share > 0.2,
        "{:?}",
        nodes[1]
    );
    assert!(nodes[0].share == 1.0 && nodes[2].share == 1.0);
    for (k, p) in sim.pods(0).iter().enumerate() {
        let got = p.signals.cpu_seconds - cpu1[k];
        if p.node.as_deref() == Some("node-b") {
            assert!(
                noisy[k] > 10.0 * calm[k],
                "{}: {} vs {}",
                p.name,
                noisy[k],
                calm[k]
            );
            assert!(
                got < 0.5 * cpu_calm[k],
                "{}: CPU {got} vs {}",
                p.name,
                cpu_calm[k]
            );
        } else {
            assert!(
                noisy[k] < 3.0 * calm[k],
                "{}: {} vs {}",
                p.name,
                noisy[k],
                calm[k]
            );
            assert!(got > cpu_calm[k], "the others take up the slack");
        }
    }
    // Ground truth: checkout has pods on node-b during the incident, not before.
    assert_eq!(sim.cluster.ground_truth(0, secs(59 * MIN)), None);
    assert_eq!(
        sim.cluster.ground_truth(0, secs(60 * MIN)).as_deref(),
        Some("noisyNeighbour")
    );
    assert_eq!(sim.cluster.ground_truth(0, secs(100 * MIN)), None);
}

#[test]
fn packet_loss_retransmits_and_delays_only_the_affected_workload() {
    let s = load("network-degradation.yaml");
    let mut sim = Sim::new(&s);
    let (calm, _) = sim.until(secs(60 * MIN - 15));
    for w in 0..2 {
        for p in sim.pods(w) {
            assert_eq!((p.signals.retransmits, p.signals.resets), (0.0, 0.0));
            assert_eq!(p.signals.connects.count_above(0.8), 0.0);
            assert!(p.signals.connects.count() > 0.0);
        }
    }
    let cpu0: f64 = sim.pods(0).iter().map(|p| p.signals.cpu_seconds).sum();
    let served0: f64 = sim.pods(0).iter().map(|p| p.signals.requests.count()).sum();
    let (lossy, _) = sim.until(secs(89 * MIN));
    let cpu1: f64 = sim.pods(0).iter().map(|p| p.signals.cpu_seconds).sum();
    let served1: f64 = sim.pods(0).iter().map(|p| p.signals.requests.count()).sum();
    let retransmits: f64 = sim.pods(0).iter().map(|p| p.signals.retransmits).sum();
    // 12 segments a request, 8 % of them lost.
    let expected = (served1 - served0) * 12.0 * 0.08;
    assert!(
        (retransmits / expected - 1.0).abs() < 0.01,
        "{retransmits} vs {expected}"
    );
    assert!(sim.pods(0).iter().all(|p| p.signals.resets > 0.0));
    assert!(
        sim.pods(0)
            .iter()
            .all(|p| p.signals.connects.count_above(0.8) > 0.0)
    );
    for p in sim.pods(1) {
        assert_eq!((p.signals.retransmits, p.signals.resets), (0.0, 0.0));
    }
    assert!(
        calm[0].p99 < 0.2 && lossy[0].p99 > 0.3,
        "{} -> {}",
        calm[0].p99,
        lossy[0].p99
    );
    assert!(lossy[1].p99 < 0.2);
    // CPU per request is what it was: 30 minutes of the same load.
    let before = cpu0 / served0;
    let during = (cpu1 - cpu0) / (served1 - served0);
    assert!((during / before - 1.0).abs() < 0.1, "{before} vs {during}");
    assert_eq!(
        sim.cluster.ground_truth(0, secs(60 * MIN)).as_deref(),
        Some("networkDegradation")
    );
    assert_eq!(sim.cluster.ground_truth(1, secs(60 * MIN)), None);
}

/// The sensor gauge of `node` in a telemetry batch.
fn sensor_gauge(sim: &Sim, node: &str) -> Option<f64> {
    sim.cluster
        .telemetry(sim.start + sim.t)
        .into_iter()
        .filter(|rm| {
            rm.resource.as_ref().is_some_and(|r| {
                r.attributes.iter().any(|a| {
                    a.key == "k8s.node.name"
                        && matches!(&a.value.as_ref().and_then(|v| v.value.clone()),
                            Some(any_value::Value::StringValue(s)) if s == node)
                }) && r.attributes.iter().any(|a| a.key == "k8s.daemonset.name")
            })
        })
        .flat_map(|rm| rm.scope_metrics)
        .flat_map(|s| s.metrics)
        .find(|m| m.name == signal::SENSOR_OVERHEAD)
        .and_then(|m| match m.data {
            Some(metric::Data::Gauge(g)) => g.data_points.first().and_then(|p| match p.value {
                Some(
                    opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(v),
                ) => Some(v),
                _ => None,
            }),
            _ => None,
        })
}

#[test]
fn an_overloaded_sensor_reports_its_overhead_and_takes_it_from_the_pods() {
    let s = load("sensor-overload.yaml");
    let mut sim = Sim::new(&s);
    sim.until(secs(50 * MIN));
    for n in ["node-a", "node-b", "node-c"] {
        assert_eq!(sensor_gauge(&sim, n), Some(0.002), "{n}");
    }
    let cpu0: Vec<f64> = sim.pods(0).iter().map(|p| p.signals.cpu_seconds).collect();
    sim.until(secs(60 * MIN - 15));
    let calm: Vec<f64> = sim
        .pods(0)
        .iter()
        .zip(&cpu0)
        .map(|(p, c)| p.signals.cpu_seconds - c)
        .collect();
    let cpu1: Vec<f64> = sim.pods(0).iter().map(|p| p.signals.cpu_seconds).collect();
    let (_, nodes) = sim.until(secs(70 * MIN - 15));
    assert_eq!(sensor_gauge(&sim, "node-c"), Some(1.7));
    assert_eq!(sensor_gauge(&sim, "node-a"), Some(0.002));
    assert!(
        (nodes[2].taken - 1.7).abs() < 1e-12 && nodes[2].share < 0.6,
        "{:?}",
        nodes[2]
    );
    for (k, p) in sim.pods(0).iter().enumerate() {
        let got = p.signals.cpu_seconds - cpu1[k];
        if p.node.as_deref() == Some("node-c") {
            assert!(got < 0.7 * calm[k], "{}: {got} vs {}", p.name, calm[k]);
        } else {
            assert!(got > calm[k], "{}: {got} vs {}", p.name, calm[k]);
        }
    }
    sim.until(secs(106 * MIN));
    assert_eq!(sensor_gauge(&sim, "node-c"), Some(0.002));
    // The implicit node of a scenario without nodes keeps its sensor quiet.
    let quiet = Sim::new(&load("load-spike.yaml"));
    assert_eq!(sensor_gauge(&quiet, "sim-node-1"), None);
}

#[test]
fn a_node_incident_lasts_for_a_workload_moved_off_the_node_until_it_ends() {
    let mut sim = Sim::new(&load("noisy-neighbour.yaml"));
    sim.until(secs(65 * MIN));
    // Move checkout off node-b, as homeostat does: taint the node, evict its pods there.
    sim.store
        .modify(&NODES, None, "node-b", |n| {
            n["spec"]["taints"] = serde_json::json!([{"key": "k", "effect": "NoSchedule"}]);
        })
        .expect("tainted");
    let on_b: Vec<String> = sim
        .pods(0)
        .iter()
        .filter(|p| p.node.as_deref() == Some("node-b"))
        .map(|p| p.name.clone())
        .collect();
    assert!(!on_b.is_empty(), "checkout has a pod on node-b");
    for name in &on_b {
        sim.store
            .delete(&PODS, Some("shop"), name)
            .expect("evicted");
    }
    sim.until(secs(75 * MIN));
    assert!(
        sim.pods(0)
            .iter()
            .all(|p| p.node.as_deref() != Some("node-b")),
        "moved off"
    );
    // The neighbour still takes node-b's CPU: moving away mitigated it, it did not end it.
    assert_eq!(
        sim.cluster.ground_truth(0, secs(75 * MIN)).as_deref(),
        Some("noisyNeighbour")
    );
    assert_eq!(sim.cluster.ground_truth(0, secs(59 * MIN)), None);
    sim.until(secs(100 * MIN));
    assert_eq!(sim.cluster.ground_truth(0, secs(100 * MIN)), None);
}

#[test]
fn composed_ground_truth_is_per_workload_and_labelled_by_kind() {
    let s = load("composed.yaml");
    let mut sim = Sim::new(&s);
    sim.until(secs(2 * 3600));
    let truth = |k: usize, m: u64| sim.cluster.ground_truth(k, secs(m * MIN));
    assert_eq!(truth(0, 59), None);
    assert_eq!(truth(1, 61).as_deref(), Some("memoryLeak"));
    assert_eq!(truth(2, 61), None);
    assert_eq!(truth(0, 100).as_deref(), Some("noisyNeighbour"));
    assert_eq!(truth(0, 115).as_deref(), Some("load spike+noisyNeighbour"));
    assert_eq!(truth(1, 100).as_deref(), Some("memoryLeak+noisyNeighbour"));
    assert_eq!(truth(2, 100).as_deref(), Some("noisyNeighbour"));
    // Three workloads of three pods each, one of each on every node.
    for w in &sim.cluster.workloads {
        let mut nodes: Vec<&str> = w.pods.iter().filter_map(|p| p.node.as_deref()).collect();
        nodes.sort();
        nodes.dedup();
        assert_eq!(nodes.len(), 3, "{}", w.spec.name);
    }
    assert!(sim.pods(1).iter().all(|p| p.signals.oom_kills == 1.0));
}

#[test]
fn the_quiet_week_stays_incident_free() {
    let s = load("quiet-week.yaml");
    assert!(s.incidents.is_empty() && s.nodes.is_empty());
    let nodes = s.node_specs();
    assert_eq!(nodes.len(), 1);
    // Room for 60 + 15 pods of half a core, twice over.
    assert!(nodes[0].cpu >= 75.0, "{}", nodes[0].cpu);
}

#[test]
fn bad_incidents_are_refused_where_they_are_written() {
    let base = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/noisy-neighbour.yaml"),
    )
    .expect("read");
    let incidents_line = base
        .lines()
        .position(|l| l.starts_with("incidents:"))
        .expect("incidents")
        + 2;
    for (from, to, message, line) in [
        (
            "node: node-b\n    at: 1h",
            "node: node-z\n    at: 1h",
            "no node node-z (nodes: node-a, node-b, node-c)",
            incidents_line,
        ),
        (
            "cores: 1.8",
            "cores: 3",
            "burns 3 cores but node node-b has fewer",
            incidents_line,
        ),
        (
            "cores: 1.8",
            "cores: -1",
            "noisyNeighbour cores must be a positive number",
            0,
        ),
        (
            "duration: 40m\n",
            "duration: 40m\n    until: 2h\n",
            "give `duration` or `until`, not both",
            0,
        ),
        (
            "kind: noisyNeighbour",
            "kind: earthquake",
            "unknown variant `earthquake`",
            0,
        ),
        (
            "    cores: 1.8\n",
            "    cores: 1.8\n    severity: 3\n",
            "unknown field `severity`",
            0,
        ),
    ] {
        assert!(base.contains(from), "{from}");
        let text = base.replacen(from, to, 1);
        let e = Scenario::parse("x.yaml", &text)
            .expect_err(message)
            .to_string();
        assert!(e.contains(message), "{e}");
        let at: usize = e
            .strip_prefix("x.yaml:")
            .and_then(|r| r.split(':').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if line > 0 {
            assert_eq!(at, line, "{e}");
        } else {
            // Serde's own errors point into the incidents list.
            assert!(at >= incidents_line, "{e}");
        }
    }
    let unknown = base.replace(
        "kind: noisyNeighbour\n    node: node-b",
        "kind: crashLoop\n    workload: shop/payments\n    until: 2h\n    node: node-b",
    );
    let e = Scenario::parse("x.yaml", &unknown)
        .expect_err("unknown field")
        .to_string();
    assert!(e.contains("unknown field `node`"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_scores_each_incident_under_its_kind() {
    use homeostat_simulations::report::score;
    use homeostat_simulations::{Controller, RunOptions, run};
    let s = load("composed.yaml");
    let result = run(&s, RunOptions::new(Controller::HpaOnly))
        .await
        .expect("the run completes");
    let card = score(&result);
    let kinds = |w: usize| -> Vec<(String, f64, f64)> {
        card.workloads[w]
            .incidents
            .iter()
            .map(|i| (i.kind.clone(), i.start_seconds, i.end_seconds))
            .collect()
    };
    let h = 3600.0;
    // The frontend's crowd (01:50-02:17) lies inside the noisy neighbour (01:30-02:15) but
    // outlasts it: one window, both kinds.
    assert_eq!(
        kinds(0),
        [(
            "load spike+noisyNeighbour".into(),
            1.5 * h,
            2.0 * h + 17.0 * 60.0
        )]
    );
    assert_eq!(kinds(1), [("memoryLeak+noisyNeighbour".into(), h, 3.5 * h)]);
    assert_eq!(kinds(2), [("noisyNeighbour".into(), 1.5 * h, 2.25 * h)]);
    let cart = &result.workloads[1].timeline;
    assert!(
        cart.iter()
            .filter(|p| p.t < secs(3600))
            .all(|p| p.incident.is_none())
    );
}

#[test]
fn packet_loss_on_a_node_hits_every_workload_with_pods_there() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/network-degradation.yaml"),
    )
    .expect("read")
    .replace(
        "    workload: shop/checkout\n    at: 1h",
        "    node: sim-node-1\n    at: 1h",
    );
    let s = Scenario::parse("node-loss.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
    let mut sim = Sim::new(&s);
    sim.until(secs(70 * MIN));
    for w in 0..2 {
        assert!(sim.pods(w).iter().all(|p| p.signals.retransmits > 0.0));
        assert_eq!(
            sim.cluster.ground_truth(w, secs(70 * MIN)).as_deref(),
            Some("networkDegradation")
        );
    }
}
