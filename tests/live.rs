//! `homeostat simulate --live` with the real `homeostat brain` pointed at it: two processes
//! on loopback, wired only by the kubeconfig the simulation writes and the OTLP endpoint the
//! brain listens on, as a user would run them.
//!
//! The simulation runs at `--speed 20`, so it exports points stamped with the wall-clock
//! moment each simulated instant is played. The test proves those stamps land on the brain's
//! clock: its detectors become warm (`homeostat_samples_scored_total` > 0), which takes 20
//! closed one-second steps. Stamped with simulated time instead, the points would run twenty
//! times ahead of the brain's clock and a step would close only every 15 wall seconds, five
//! minutes for the warm-up, far beyond this test's minute.
//!
//! Whether the brain acts is not required: the spike starts at 3 simulated minutes (9 wall
//! seconds), before its detectors are warm (about 20 wall seconds, 7 simulated minutes), so
//! they learn the spike as normal. If it does act, the raised `minReplicas` must be visible
//! through the API.

#[path = "support/process.rs"]
mod process;

use std::process::Command;
use std::time::{Duration, Instant};

use process::{BrainConfig, Proc, metric};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Api;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_brain_binary_runs_against_a_live_simulation_at_speed_20() {
    let began = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("live-spike.yaml");
    // Spike at 3 minutes, 20 simulated minutes in all (one wall minute at --speed 20): the
    // simulation is still running when the brain's detectors are warm and the test stops it.
    std::fs::write(
        &scenario,
        process::crowd_scenario("live-spike", "3m", "20m", "20m"),
    )
    .expect("scenario");
    let kubeconfig = dir.path().join("sim.kubeconfig");
    let config = BrainConfig::write(dir.path(), "enforce");

    let mut sim = Command::new(env!("CARGO_BIN_EXE_homeostat"));
    sim.args(["simulate", "--live", "--speed", "20", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg("--otlp-metrics-endpoint")
        .arg(format!("http://127.0.0.1:{}", config.grpc))
        .arg(&scenario);
    let mut sim = Proc::spawn("homeostat simulate --live", sim);
    let client = process::live_cluster_client(&mut sim, &kubeconfig).await;

    let mut brain = config.spawn_brain(&kubeconfig);

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "shop");
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client, "shop");
    let http = reqwest::Client::new();
    let metrics_url = format!("{}/metrics", config.api_url());
    let deadline = began + Duration::from_secs(60);
    let mut max_min_replicas = 0;
    let metrics = loop {
        let deployment = deployments.get("checkout").await.expect("deployment read");
        let replicas = deployment
            .spec
            .and_then(|s| s.replicas)
            .expect("spec.replicas");
        assert!(replicas >= 4, "{replicas}");
        let hpa = hpas.get("checkout").await.expect("HPA read");
        let spec = hpa.spec.expect("HPA spec");
        assert_eq!(spec.scale_target_ref.name, "checkout");
        max_min_replicas = max_min_replicas.max(spec.min_replicas.unwrap_or(1));

        let text = match http.get(&metrics_url).send().await {
            Ok(r) if r.status().is_success() => r.text().await.unwrap_or_default(),
            _ => String::new(),
        };
        let accepted = metric(
            &text,
            "homeostat_otlp_points_total",
            &["result=\"accepted\""],
        );
        let scored = metric(&text, "homeostat_samples_scored_total", &[]);
        if accepted > 0.0 && scored > 0.0 {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no points accepted and scored within a minute (accepted {accepted}, scored \
             {scored}):\n--- simulate:\n{}\n--- brain:\n{}",
            sim.output(),
            brain.output()
        );
        assert!(
            sim.running() && brain.running(),
            "a process ended early:\n--- simulate:\n{}\n--- brain:\n{}",
            sim.output(),
            brain.output()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(
        metric(&metrics, "homeostat_workloads", &[]),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "homeostat_dropped_points_total", &[]),
        0.0,
        "points stamped on the brain's clock are never dropped:\n{metrics}"
    );
    let applied = metric(
        &metrics,
        "homeostat_decisions_total",
        &["outcome=\"applied\""],
    );
    if applied > 0.0 {
        let hpa = hpas.get("checkout").await.expect("HPA read");
        let now = hpa.spec.and_then(|s| s.min_replicas).unwrap_or(1);
        assert!(
            max_min_replicas.max(now) > 4,
            "the brain applied {applied} decision(s) but minReplicas stayed 4"
        );
    }
    eprintln!(
        "brain warm after {:.1}s wall; decisions applied: {applied}; highest minReplicas seen: {max_min_replicas}",
        began.elapsed().as_secs_f64()
    );

    assert!(
        sim.running(),
        "the simulation ended before SIGTERM:\n{}",
        sim.output()
    );
    let status = sim.terminate().await;
    let out = sim.output();
    assert!(status.success(), "simulate exited with {status}:\n{out}");
    assert!(
        out.contains("minReplicas 4") && out.contains("stopped after"),
        "{out}"
    );
    assert!(
        !kubeconfig.exists(),
        "the kubeconfig it wrote is removed on exit"
    );
    let status = brain.terminate().await;
    assert!(
        status.success(),
        "brain exited with {status}:\n{}",
        brain.output()
    );
}
