//! The `homeostat` binary as a user runs it.

#[path = "support/process.rs"]
mod process;

use process::{BrainConfig, wait_ready};

use std::process::{Child, Command, Stdio};

use homeostat_core::ManualClock;
use homeostat_simulations::apiserver::{ApiServer, DEFAULT_ADDR, ObjectStore};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;

fn homeostat() -> Command {
    Command::new(env!("CARGO_BIN_EXE_homeostat"))
}

#[test]
fn policy_check_names_file_line_and_reason_of_a_broken_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "apiVersion: homeostat.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: web\nspec:\n  mode: enforce\n  actions: [scale-hpa]\n  cooldown: 5 parsecs\n  maxReplicas: 10\n",
    )
    .expect("write");
    let out = homeostat()
        .args(["policy", "check"])
        .arg(&broken)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let expected = format!(
        "{}:8:13: spec.cooldown: invalid duration \"5 parsecs\"",
        broken.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");

    let ok = homeostat()
        .args(["policy", "check", "policies/examples/default.yaml"])
        .output()
        .expect("runs");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("shop-saturation"));
}

#[test]
fn simulate_prints_the_comparison_with_the_hpa_alone() {
    let out = homeostat().arg("simulate").output().expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "anomalies found: 1",
        "saturation",
        "verdict act, outcome applied",
        "replicas over time",
        "HPA alone:",
        "with homeostat:",
    ] {
        assert!(
            stdout.contains(needle),
            "{needle:?} missing from:\n{stdout}"
        );
    }
}

#[test]
fn simulate_reports_the_faults_a_scenario_injected_and_what_the_brain_did_with_them() {
    let out = homeostat()
        .args(["simulate", "simulations/scenarios/signal-faults.yaml"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("faults met by homeostat:"), "{stdout}");
    let nan = stdout
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("signals: ")
                .and_then(|rest| rest.split(" NaN points").next())
                .and_then(|head| head.rsplit(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
        })
        .expect("a signals line with a NaN count");
    let rejected = stdout
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("brain: ")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
        })
        .expect("a brain line with a rejected count");
    assert!(
        nan > 0 && rejected >= nan,
        "every NaN point is rejected: {nan} NaN, {rejected} rejected\n{stdout}"
    );

    let clean = homeostat().arg("simulate").output().expect("runs");
    assert!(
        !String::from_utf8_lossy(&clean.stdout).contains("faults met"),
        "no fault section without faults"
    );
}

#[test]
fn a_broken_brain_config_is_refused_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("brain.yaml");
    std::fs::write(&config, "mode: enforce\nevaluationInterval: soon\n").expect("write");
    let out = homeostat()
        .args(["brain", "--config"])
        .arg(&config)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:2:", config.display()))
            && stderr.contains("invalid duration \"soon\""),
        "{stderr}"
    );
}

struct Brain(Child);

impl Drop for Brain {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_brain_binary_serves_otlp_and_its_api_and_stops_on_sigterm() {
    let clock = ManualClock::new(homeostat_core::Timestamp::from_secs(1_700_000_000));
    let server = ApiServer::start(ObjectStore::new(std::sync::Arc::new(clock)), DEFAULT_ADDR)
        .await
        .expect("api server");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let config = BrainConfig::write(dir.path(), "dry-run");
    let child = homeostat()
        .args(["brain", "--config"])
        .arg(&config.path)
        .env("KUBECONFIG", &kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut brain = Brain(child);
    let http = reqwest::Client::new();
    let api_url = config.api_url();
    wait_ready(&http, &format!("{api_url}/readyz")).await;

    // Malformed OTLP is refused with 400, and the brain keeps serving.
    let otlp = format!("http://127.0.0.1:{}/v1/metrics", config.otlp_http);
    let bad = http
        .post(&otlp)
        .header("content-type", "application/x-protobuf")
        .body(vec![0xff, 0xff, 0xff])
        .send()
        .await
        .expect("post");
    assert_eq!(bad.status().as_u16(), 400);
    let good = ExportMetricsServiceRequest {
        resource_metrics: vec![],
    }
    .encode_to_vec();
    let ok = http
        .post(&otlp)
        .header("content-type", "application/x-protobuf")
        .body(good)
        .send()
        .await
        .expect("post");
    assert_eq!(ok.status().as_u16(), 200);

    let decisions: serde_json::Value = http
        .get(format!("{api_url}/api/v1/decisions"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(decisions["items"], serde_json::json!([]));
    let bad_query = http
        .get(format!("{api_url}/api/v1/decisions?workload=nonsense"))
        .send()
        .await
        .expect("get");
    assert_eq!(bad_query.status().as_u16(), 400);
    let metrics = http
        .get(format!("{api_url}/metrics"))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("homeostat_otlp_requests_total{result=\"invalid\",signal=\"metrics\",transport=\"http\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "homeostat_otlp_requests_total{result=\"ok\",signal=\"metrics\",transport=\"http\"} 1"
        ),
        "{metrics}"
    );
    assert_eq!(
        http.get(format!("{api_url}/healthz"))
            .send()
            .await
            .expect("get")
            .status()
            .as_u16(),
        200
    );

    let status = process::terminate(&mut brain.0, "brain", String::new).await;
    assert!(status.success(), "brain exited with {status}");
    server.shutdown().await.expect("api server stops");
}
