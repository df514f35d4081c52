//! A brain killed (SIGKILL) between intent and outcome, then restarted on the same journal:
//! the interrupted decision is closed from the cluster's state — recovered if its patch
//! landed, abandoned if not — and the raise happens exactly once.
//!
//! The simulated API server makes every HPA patch at once but answers it 8 s late, so the
//! kill lands while the decision is journaled as pending and the change is already on the
//! cluster: the ambiguous case, where a brain that retried blindly would act twice. The
//! restarted brain resumes its detectors, sees the crowd go on and proposes more, and the
//! cooldown that began before the restart refuses it.

#[path = "support/process.rs"]
mod process;

use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Api;
use process::{BrainConfig, Proc, get_json};
use serde_json::Value;

/// API faults of the crash scenario: HPA patches made at once, answered 8 s late.
const LATE_PATCHES: &str = "\
faults:
  api:
    verbs: [patch]
    resources: [horizontalpodautoscalers]
    slow: 1.0
    slowDelay: 8s
    slowAfterWrite: true
";

/// The journal's decisions, newest first.
async fn decisions(http: &reqwest::Client, config: &BrainConfig) -> Vec<Value> {
    match http
        .get(format!("{}/api/v1/decisions?limit=100", config.api_url()))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => r.json::<Value>().await.unwrap_or_default()["items"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn state(d: &Value) -> &str {
    d["outcome"]["state"].as_str().unwrap_or_default()
}

/// Raises of minReplicas that are on the cluster: applied, or recovered after the crash.
fn landed_raises(ds: &[Value]) -> Vec<&Value> {
    ds.iter()
        .filter(|d| {
            let a = &d["verdict"]["action"];
            a["kind"] == "scale-hpa"
                && a["min_replicas"].as_u64() > a["previous_min_replicas"].as_u64()
                && matches!(state(d), "applied" | "recovered")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brain_killed_between_intent_and_outcome_acts_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("crash-spike.yaml");
    let text = process::crowd_scenario("crash-spike", "10m", "45m", "60m") + LATE_PATCHES;
    std::fs::write(&scenario, text).expect("scenario");
    let kubeconfig = dir.path().join("sim.kubeconfig");
    let config = BrainConfig::write(dir.path(), "enforce");
    let mut sim = Command::new(env!("CARGO_BIN_EXE_homeostat"));
    sim.args(["simulate", "--live", "--speed", "20", "--kubeconfig"])
        .arg(&kubeconfig)
        .args([
            "--otlp-metrics-endpoint",
            &format!("http://127.0.0.1:{}", config.grpc),
        ])
        .arg(&scenario);
    let mut sim = Proc::spawn("homeostat simulate --live", sim);
    let client = process::live_cluster_client(&mut sim, &kubeconfig).await;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client, "shop");
    let http = reqwest::Client::new();

    // The first brain decides to raise; while its patch is in flight, it is killed.
    let mut brain = config.spawn_brain(&kubeconfig);
    let deadline = Instant::now() + Duration::from_secs(90);
    let interrupted = loop {
        let ds = decisions(&http, &config).await;
        if let Some(d) = ds
            .iter()
            .find(|d| state(d) == "pending" && d["verdict"]["action"]["kind"] == "scale-hpa")
        {
            break d.clone();
        }
        assert!(
            Instant::now() < deadline && brain.running(),
            "no decision went pending:\n{}",
            brain.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    brain.child.kill().expect("SIGKILL");
    let _ = brain.child.wait();
    let id = interrupted["id"].as_str().expect("id").to_owned();

    // Whatever the server did with the patch in flight is settled after its delay.
    tokio::time::sleep(Duration::from_secs(9)).await;
    let hpa = hpas.get("checkout").await.expect("HPA");
    let stamped = hpa
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("homeostat.dev/decision-id"))
        .is_some_and(|d| *d == id);

    // The second brain, on the same journal, closes the decision from the cluster's state.
    let mut brain = config.spawn_brain(&kubeconfig);
    let deadline = Instant::now() + Duration::from_secs(30);
    let closed = loop {
        let ds = decisions(&http, &config).await;
        if let Some(d) = ds.iter().find(|d| d["id"] == id.as_str())
            && state(d) != "pending"
        {
            break state(d).to_owned();
        }
        assert!(
            Instant::now() < deadline && brain.running(),
            "decision {id} was never closed:\n{}",
            brain.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(stamped, "the patch was made before its late answer");
    assert_eq!(closed, "recovered", "the HPA carries the decision's stamp");
    let single = get_json(
        &http,
        &format!("{}/api/v1/decisions/{id}", config.api_url()),
    )
    .await;
    assert_eq!(single["outcome"]["state"], closed.as_str());

    // Exactly once: the recovered raise counts, for the cooldown too, and is not repeated
    // while the new brain warms up and watches the crowd.
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let ds = decisions(&http, &config).await;
        assert!(landed_raises(&ds).len() <= 1, "raised twice: {ds:#?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ds = decisions(&http, &config).await;
    let raises = landed_raises(&ds);
    assert_eq!(raises.len(), 1, "{}", brain.output());
    // The restarted brain, warm at once from what it had learned, saw the crowd go on and
    // proposed more: the cooldown that started before the restart refused it.
    let refused: Vec<&Value> = ds
        .iter()
        .filter(|d| d["verdict"]["kind"] == "deny" && d["verdict"]["rule"] == "cooldown")
        .collect();
    assert!(
        !refused.is_empty(),
        "no proposal was refused by the cooldown: {ds:#?}"
    );
    eprintln!(
        "refused by the cooldown after the restart: {}",
        refused[0]["verdict"]["reason"]
    );
    let raise = raises[0];
    let hpa = hpas.get("checkout").await.expect("HPA");
    assert_eq!(
        hpa.spec.and_then(|s| s.min_replicas).map(i64::from),
        raise["verdict"]["action"]["min_replicas"].as_i64(),
        "the HPA shows the one raise"
    );
    eprintln!("interrupted decision {id}: {closed}; raises on the cluster: 1");
    let status = brain.terminate().await;
    assert!(status.success(), "{}", brain.output());
    let status = sim.terminate().await;
    assert!(status.success(), "{}", sim.output());
}
