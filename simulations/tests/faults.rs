//! Fault injection end to end: the scenario's API and signal faults reach homeostat over real
//! loopback HTTP and gRPC, and the loop degrades gracefully — failed writes are journaled
//! with their cause and leave nothing half-applied, bad points are rejected rather than
//! believed, and missing data never leads to an action.

use std::path::Path;
use std::time::Duration;

use homeostat_brain::DecisionSpans;
use homeostat_core::{Action, Decision, Mode, Outcome};
use homeostat_policies::PolicySet;
use homeostat_simulations::apiserver::FaultConfig;
use homeostat_simulations::apiserver::discovery::HORIZONTAL_POD_AUTOSCALERS;
use homeostat_simulations::scenario::FaultsSpec;
use homeostat_simulations::signal_faults::SignalFaultConfig;
use homeostat_simulations::{Controller, DEFAULT_POLICY, RunOptions, RunResult, Scenario, run};

/// The HPA's `minReplicas` at the start of the shipped load-spike scenarios.
const INITIAL_MIN: u64 = 4;

fn load(name: &str) -> Scenario {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name);
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn homeostat() -> Controller {
    Controller::Homeostat {
        mode: Mode::Enforce,
        policies: PolicySet::from_str("default.yaml", DEFAULT_POLICY).expect("default policy"),
        spans: DecisionSpans::disabled(),
    }
}

async fn run_homeostat(scenario: &Scenario, keep_cluster: bool) -> RunResult {
    run(
        scenario,
        RunOptions {
            keep_cluster,
            ..RunOptions::new(homeostat())
        },
    )
    .await
    .expect("the run completes despite the faults")
}

fn min_replicas_set(d: &Decision) -> Option<u32> {
    match &d.verdict.action {
        Action::ScaleHpa { min_replicas, .. } => Some(*min_replicas),
        _ => None,
    }
}

fn with_signal_faults(mut scenario: Scenario, signals: SignalFaultConfig) -> Scenario {
    scenario.faults = Some(FaultsSpec {
        signals: Some(signals),
        ..FaultsSpec::default()
    });
    scenario
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_faults_fail_decisions_with_their_status_and_leave_nothing_half_applied() {
    // The shipped api-faults scenario, at rates high enough that some decision must fail.
    let mut scenario = load("api-faults.yaml");
    let faults = scenario.faults.as_mut().expect("the scenario has faults");
    faults.api = Some(FaultConfig {
        conflict: 0.3,
        too_many_requests: 0.15,
        internal_error: 0.15,
        ..faults.api.clone().expect("api faults")
    });
    let result = run_homeostat(&scenario, true).await;

    assert!(
        result.api_faults.refusals() > 0 && result.api_faults.slow_answers > 0,
        "{:?}",
        result.api_faults
    );
    let failed: Vec<&str> = result
        .decisions
        .iter()
        .filter_map(|d| match &d.outcome {
            Outcome::Failed { error } => Some(error.as_str()),
            _ => None,
        })
        .collect();
    assert!(!failed.is_empty(), "no decision met a fault");
    for error in &failed {
        assert!(
            ["409", "429", "500"]
                .iter()
                .any(|code| error.contains(code)),
            "a failed decision does not name the HTTP status: {error}"
        );
    }

    // Whatever failed, the HPA holds exactly what the last applied decision set.
    let expected = result
        .decisions
        .iter()
        .filter(|d| matches!(d.outcome, Outcome::Applied { .. }))
        .filter_map(min_replicas_set)
        .next_back()
        .map_or(INITIAL_MIN, u64::from);
    let cluster = result.cluster.as_ref().expect("cluster kept");
    let hpa = cluster
        .store()
        .get(&HORIZONTAL_POD_AUTOSCALERS, Some("shop"), "checkout")
        .expect("the HPA");
    assert_eq!(hpa["spec"]["minReplicas"].as_u64(), Some(expected));
    if let Some(cluster) = result.cluster {
        cluster.shutdown().await.expect("cluster stops");
    }
}

/// At the shipped scenario's rates (a fifth of HPA requests refused, a fifth slow), the
/// jittered retries of each apply (re-planned after a 409) get every decision through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_carry_decisions_through_the_shipped_api_faults() {
    let result = run_homeostat(&load("api-faults.yaml"), false).await;
    assert!(result.api_faults.refusals() > 0, "{:?}", result.api_faults);
    let outcomes: Vec<&str> = result
        .decisions
        .iter()
        .map(|d| d.outcome.as_str())
        .collect();
    assert!(outcomes.contains(&"applied"), "{outcomes:?}");
    assert!(!outcomes.contains(&"failed"), "{outcomes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nan_points_are_rejected_and_never_reach_a_decision() {
    let result = run_homeostat(&load("signal-faults.yaml"), false).await;

    let injected = result.signal_faults;
    assert!(
        injected.gaps > 0
            && injected.stale > 0
            && injected.nan_points > 0
            && injected.skewed_pods > 0,
        "{injected:?}"
    );
    assert!(
        result.ingest.rejected_points >= injected.nan_points,
        "every NaN point is rejected: {:?} vs {injected:?}",
        result.ingest
    );
    assert!(result.ingest.partial_exports > 0);
    assert!(
        result.ingest.late_points + result.ingest.stale_points > 0,
        "stale re-sends are dropped, as late or as no newer than what came before: {:?}",
        result.ingest
    );
    for d in &result.decisions {
        let json = serde_json::to_string(d).expect("decision serialises");
        assert!(!json.contains("NaN"), "{json}");
        if let Some(a) = &d.anomaly {
            let anomaly = serde_json::to_string(a).expect("anomaly serialises");
            // serde_json writes a non-finite number as null; an anomaly has no optional field.
            assert!(!anomaly.contains("null"), "{anomaly}");
        }
    }
    for a in &result.anomalies {
        assert!(
            a.score.is_finite() && a.contributions.iter().all(|c| c.score.is_finite()),
            "{a:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_point_is_nan_homeostat_does_nothing() {
    let scenario = with_signal_faults(
        load("load-spike.yaml"),
        SignalFaultConfig {
            nan: 1.0,
            ..SignalFaultConfig::default()
        },
    );
    let result = run_homeostat(&scenario, false).await;
    assert!(result.signal_faults.nan_points > 0);
    assert_eq!(
        result.ingest.rejected_points,
        result.signal_faults.nan_points
    );
    assert!(
        result.decisions.is_empty(),
        "acted on no data: {:?}",
        result.decisions
    );
    assert!(result.anomalies.is_empty(), "{:?}", result.anomalies);
    assert!(result.workloads[0].timeline.iter().all(|p| p.hpa_min == 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_decision_is_taken_while_every_pod_is_silent() {
    // Silence from the spike's start until well into it.
    let (from, until) = (Duration::from_secs(100 * 60), Duration::from_secs(115 * 60));
    let mut scenario = with_signal_faults(
        load("load-spike.yaml"),
        SignalFaultConfig {
            gap: 1.0,
            ..SignalFaultConfig::default()
        },
    );
    if let Some(f) = scenario.faults.as_mut() {
        f.from = Some(from);
        f.until = Some(until);
    }
    let result = run_homeostat(&scenario, false).await;
    assert!(result.signal_faults.gaps > 0);
    let (from, until) = (result.start + from, result.start + until);
    let during: Vec<_> = result
        .decisions
        .iter()
        .filter(|d| d.time >= from && d.time < until)
        .collect();
    assert!(during.is_empty(), "decided on no data: {during:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_replays_the_same_faults() {
    let mut scenario = load("signal-faults.yaml");
    let api = load("api-faults.yaml")
        .faults
        .and_then(|f| f.api)
        .expect("api faults");
    if let Some(f) = scenario.faults.as_mut() {
        f.api = Some(api);
    }
    let first = run_homeostat(&scenario, false).await;
    let second = run_homeostat(&scenario, false).await;
    assert!(first.signal_faults.nan_points > 0 && first.api_faults.slow_answers > 0);
    assert_eq!(first.signal_faults, second.signal_faults);
    assert_eq!(first.api_faults, second.api_faults);
    assert_eq!(first.ingest, second.ingest);
}

/// After a gap, a pod's first point carries everything counted during the gap; folded into
/// one step, it makes the brain judge the workload on minutes-old latency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_action_on_what_accumulated_during_a_gap() {
    // The pods fall silent as the spike starts; by the time they speak again the HPA alone
    // has caught up (p99 is back near 120 ms), so there is nothing left to raise.
    let until = Duration::from_secs(115 * 60);
    let mut scenario = with_signal_faults(
        load("load-spike.yaml"),
        SignalFaultConfig {
            gap: 1.0,
            ..SignalFaultConfig::default()
        },
    );
    if let Some(f) = scenario.faults.as_mut() {
        f.from = Some(Duration::from_secs(100 * 60));
        f.until = Some(until);
    }
    let result = run_homeostat(&scenario, false).await;
    let until = result.start + until;
    let raises: Vec<_> = result
        .decisions
        .iter()
        .filter(|d| d.time >= until && d.proposal.reason.starts_with("saturated"))
        .collect();
    assert!(raises.is_empty(), "acted on stale data: {raises:?}");
}

/// `scenario` with the API server refusing and delaying a share of every request the brain
/// makes, on every resource, for the whole run.
fn with_api_faults_everywhere(mut scenario: Scenario) -> Scenario {
    scenario.faults = Some(FaultsSpec {
        api: Some(FaultConfig {
            seed: 5,
            conflict: 0.1,
            too_many_requests: 0.05,
            internal_error: 0.05,
            slow: 0.1,
            slow_delay: Duration::from_millis(200),
            ..FaultConfig::default()
        }),
        ..FaultsSpec::default()
    });
    scenario
}

/// What homeostat left on the cluster that it owns: its node taints and the sensors'
/// ConfigMap.
fn homeostat_state(result: &RunResult) -> (Vec<String>, Option<serde_json::Value>) {
    use homeostat_simulations::apiserver::ObjectSelector;
    use homeostat_simulations::apiserver::discovery::{CONFIGMAPS, NODES};
    let store = result.cluster.as_ref().expect("cluster kept").store();
    let mut taints: Vec<String> = store
        .list(&NODES, None, &ObjectSelector::default())
        .0
        .iter()
        .flat_map(|node| {
            let name = node["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            node["spec"]["taints"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|t| {
                    t["key"]
                        .as_str()
                        .is_some_and(|k| k.starts_with("homeostat.dev/"))
                })
                .map(move |t| format!("{name}:{}", t["key"]))
        })
        .collect();
    taints.sort();
    let sensors = store
        .get(&CONFIGMAPS, Some("homeostat-system"), "homeostat-sensor")
        .ok()
        .map(|cm| cm["data"].clone());
    (taints, sensors)
}

/// The other actuators through a flaky API server (a tenth of requests refused with 409, a
/// tenth with 429 or 500, a tenth slow, on every resource): evictions, taints and throttles
/// end where they end without faults, none is doubled, and every failure names its status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_actuator_ends_as_without_faults_and_never_doubles_an_action() {
    for name in [
        "memory-leak.yaml",
        "noisy-neighbour.yaml",
        "sensor-overload.yaml",
    ] {
        let clean = run_homeostat(&load(name), true).await;
        let faulty = run_homeostat(&with_api_faults_everywhere(load(name)), true).await;
        assert!(
            faulty.api_faults.refusals() > 0,
            "{name}: no fault met: {:?}",
            faulty.api_faults
        );
        for d in &faulty.decisions {
            if let Outcome::Failed { error } = &d.outcome {
                assert!(
                    ["409", "429", "500"].iter().any(|c| error.contains(c)),
                    "{name}: a failure that does not name its status: {error}"
                );
            }
        }
        let applied: Vec<&Action> = faulty
            .decisions
            .iter()
            .filter(|d| matches!(d.outcome, Outcome::Applied { .. }))
            .map(|d| &d.verdict.action)
            .collect();
        // No pod evicted twice; no node tainted twice without being untainted between.
        let mut evicted = std::collections::BTreeSet::new();
        let mut tainted = std::collections::BTreeMap::new();
        for action in &applied {
            match action {
                Action::RestartPods { pod, uid, .. } => assert!(
                    evicted.insert((pod.clone(), uid.clone())),
                    "{name}: {pod} evicted twice"
                ),
                Action::TaintNode { node, remove } => {
                    let was = tainted.insert(node.clone(), !*remove);
                    assert_ne!(was, Some(!*remove), "{name}: {action:?} twice in a row");
                }
                _ => {}
            }
        }
        let count = |r: &RunResult, kind: &str| {
            r.decisions
                .iter()
                .filter(|d| matches!(d.outcome, Outcome::Applied { .. }))
                .filter(|d| d.verdict.action.kind().as_str() == kind)
                .count()
        };
        for kind in ["restart-pods", "taint-node", "throttle-sampling"] {
            let (c, f) = (count(&clean, kind), count(&faulty, kind));
            assert!(
                f.abs_diff(c) <= 1,
                "{name}: {kind} applied {f} times through faults, {c} without"
            );
        }
        assert_eq!(
            homeostat_state(&faulty),
            homeostat_state(&clean),
            "{name}: the cluster ends otherwise than without faults"
        );
        eprintln!(
            "{name}: {} refusals, {} slow answers; applied {:?}",
            faulty.api_faults.refusals(),
            faulty.api_faults.slow_answers,
            applied
                .iter()
                .map(|a| a.kind().as_str())
                .collect::<Vec<_>>()
        );
        for r in [clean, faulty] {
            if let Some(cluster) = r.cluster {
                cluster.shutdown().await.expect("cluster stops");
            }
        }
    }
}
