//! The sensor's OTLP is what the brain's receivers accept: every data point of a real
//! snapshot (kernel probes, when BPF can run here) passes the brain's validation; and, with
//! both binaries running, a process crashing in a pod's container cgroup reaches the brain
//! as an OTLP log record over gRPC and over HTTP, named after its pod by the (simulated)
//! Kubernetes API.
//!
//! Both tests load the probes: run them apart from the sensor's kernel tests.

#[path = "support/cgroup.rs"]
mod cgroup;
#[path = "support/process.rs"]
mod process;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cgroup::TestCgroup;
use homeostat_brain::ingest::convert;
use homeostat_core::SystemClock;
use homeostat_sensor::{Owner, Sensor, SensorConfig, Snapshot, otlp, preflight};
use homeostat_simulations::apiserver::discovery::{NAMESPACES, PODS, REPLICA_SETS};
use homeostat_simulations::apiserver::{ApiServer, ApiServerHandle, DEFAULT_ADDR, ObjectStore};
use process::{BrainConfig, Proc, eventually, get_json, get_text, metric, wait_ready};
use serde_json::{Value, json};

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Every owner as a pod of Deployment `test/<owner>`: what the sensor's API lookup supplies.
fn as_pod(owner: &Owner) -> Option<Vec<(String, String)>> {
    Some(vec![
        ("k8s.namespace.name".into(), "test".into()),
        (
            "k8s.deployment.name".into(),
            owner.to_string().replace('/', "_"),
        ),
        ("k8s.pod.name".into(), "p".into()),
    ])
}

/// The points the brain accepts, with the sensor's own overhead gauge among them.
fn accepted(snapshot: &Snapshot) -> usize {
    let own = otlp::sensor_resource(otlp::SENSOR_NAMESPACE, "homeostat-sensor-abcde", "node-1");
    let request = otlp::export_request(snapshot, now_ns(), &mut as_pod, Some(&own));
    let converted = convert(&request);
    assert_eq!(converted.rejected, 0, "{:?}", converted.errors);
    if snapshot.overhead.is_some() {
        let own_points = format!("{:?}", converted.points);
        assert!(
            own_points.contains("homeostat.sensor.overhead"),
            "{own_points}"
        );
    }
    converted.points.len()
}

#[test]
fn a_live_snapshot_is_accepted_by_the_brain() {
    if let Some(why) = preflight::unavailable() {
        eprintln!("SKIP a_live_snapshot_is_accepted_by_the_brain: {why}");
        return;
    }
    let mut sensor = Sensor::start(&SensorConfig::default()).unwrap();
    // Measure the probes' own cost, so it is exported too.
    assert!(sensor.measure_cost(true));
    for code in [0, 1] {
        let _ = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("exit {code}"))
            .status();
    }
    let _ = std::net::TcpStream::connect(
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    let snapshot = sensor.read().unwrap();
    let kinds: std::collections::BTreeSet<&str> =
        snapshot.readings.iter().map(|r| r.signal).collect();
    assert!(
        snapshot.overhead.is_some(),
        "measured over the whole interval"
    );
    let points = accepted(&snapshot);
    println!(
        "{} readings of {kinds:?} -> {points} points, none rejected",
        snapshot.readings.len()
    );
    assert!(kinds.contains("homeostat.process.exits") && kinds.contains("homeostat.cpu.time"));
    assert!(points >= snapshot.readings.len());
}

/// Deployment `shop/web`'s pod on `node`, its container `app` with `container_id`, in the
/// simulated API server's store; its uid.
fn make_pod(server: &ApiServerHandle, node: &str, container_id: &str) -> String {
    let store = server.store();
    let ns = Some("shop");
    store
        .create(&NAMESPACES, None, json!({"metadata": {"name": "shop"}}))
        .expect("namespace");
    let rs = store
        .create(
            &REPLICA_SETS,
            ns,
            json!({"metadata": {"name": "web-5d8f7c9b4"},
                   "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}}}),
        )
        .expect("replica set");
    let pod = store
        .create(
            &PODS,
            ns,
            json!({
                "metadata": {"name": "web-5d8f7c9b4-x7k2p",
                    "labels": {"app": "web", "pod-template-hash": "5d8f7c9b4"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                        "name": "web-5d8f7c9b4", "uid": rs["metadata"]["uid"], "controller": true}]},
                "spec": {"nodeName": node, "containers": [{"name": "app", "image": "nginx"}]},
                "status": {"phase": "Running", "containerStatuses": [{"name": "app",
                    "containerID": format!("containerd://{container_id}"), "image": "nginx",
                    "imageID": "", "ready": true, "restartCount": 0}]},
            }),
        )
        .expect("pod");
    pod["metadata"]["uid"].as_str().expect("uid").to_owned()
}

/// Polls the brain's events of shop/web until one of `pid` is there.
async fn event_of(brain: &Proc, http: &reqwest::Client, api: &str, pid: u32) -> Value {
    let url = format!("{api}/api/v1/events?workload=shop/web");
    eventually(brain, &format!("an event of pid {pid}"), async || {
        let events = get_json(http, &url).await;
        let items = events["items"].as_array()?;
        items
            .iter()
            .find(|e| e["attributes"]["process.pid"] == pid)
            .cloned()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_in_a_pod_reaches_the_brain_as_a_log_record_over_grpc_and_http() {
    let test = "a_crash_in_a_pod_reaches_the_brain_as_a_log_record_over_grpc_and_http";
    if let Some(why) = preflight::unavailable() {
        eprintln!("SKIP {test}: {why}");
        return;
    }
    let server = ApiServer::start(ObjectStore::new(Arc::new(SystemClock)), DEFAULT_ADDR)
        .await
        .expect("api server");
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let node = "node-test";
    let container_id = format!("{:016x}{:048x}", std::process::id(), now_ns());
    let uid = make_pod(&server, node, &container_id);
    // The pod's container cgroup, as the kubelet's systemd driver and containerd lay it out.
    let cgroup = TestCgroup::at(
        &TestCgroup::v2_root(),
        &format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/\
             cri-containerd-{container_id}.scope",
            uid.replace('-', "_")
        ),
    );
    let run = |script: &str| {
        let (pid, status) = cgroup.run_pid(script);
        assert!(!status.success(), "{script}: {status}");
        pid
    };
    let config = BrainConfig::write(dir.path(), "observe");
    let mut brain = config.spawn_brain(&kubeconfig);
    let http = reqwest::Client::new();
    let api = config.api_url();
    wait_ready(&http, &format!("{api}/readyz")).await;

    let endpoints = [
        ("grpc", config.grpc, 7),
        ("http/protobuf", config.otlp_http, 9),
    ];
    for (protocol, port, status) in endpoints {
        let mut sensor = Command::new(env!("CARGO_BIN_EXE_homeostat"));
        sensor
            .args(["sensor", "--interval", "500ms", "--node-name", node])
            .args(["--otlp-protocol", protocol, "--otlp-endpoint"])
            .arg(format!("http://127.0.0.1:{port}"))
            .env("KUBECONFIG", &kubeconfig)
            .env("HOMEOSTAT_LOG", "info");
        let mut sensor = Proc::spawn("homeostat sensor", sensor);
        let attached = Instant::now() + Duration::from_secs(30);
        while !sensor.output().contains("probes attached") {
            assert!(sensor.running(), "the sensor stopped:\n{}", sensor.output());
            assert!(Instant::now() < attached, "no probes:\n{}", sensor.output());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let exited = run(&format!("exit {status}"));
        let killed = run("kill -TERM $$");

        let e = event_of(&brain, &http, &api, exited).await;
        assert_eq!(e["name"], "homeostat.process.crash", "{e}");
        assert_eq!(
            e["attributes"]["process.exit.code"], status,
            "{protocol}: {e}"
        );
        assert_eq!(e["attributes"]["process.executable.name"], "sh", "{e}");
        assert_eq!(
            e["attributes"]["process.linux.cgroup"],
            format!("0::{}", cgroup.path),
            "{e}"
        );
        let entity = &e["entity"];
        assert_eq!(entity["workload"]["namespace"], "shop", "{e}");
        assert_eq!(entity["workload"]["kind"], "Deployment", "{e}");
        assert_eq!(entity["workload"]["name"], "web", "{e}");
        assert_eq!(entity["pod"], "web-5d8f7c9b4-x7k2p", "{e}");
        assert_eq!(entity["pod_uid"], uid.as_str(), "{e}");
        assert_eq!(entity["container"], "app", "{e}");
        assert_eq!(entity["node"], node, "{e}");
        let e = event_of(&brain, &http, &api, killed).await;
        assert_eq!(
            e["attributes"]["homeostat.process.signal"], 15,
            "{protocol}: {e}"
        );
        assert_eq!(e["attributes"]["process.exit.code"], Value::Null, "{e}");
        assert_eq!(e["severity"], "ERROR", "{e}");

        let stopped = sensor.terminate().await;
        assert!(stopped.success(), "{stopped}\n{}", sensor.output());
    }

    let metrics = get_text(&http, &format!("{api}/metrics")).await;
    for transport in ["grpc", "http"] {
        let labels = [
            r#"signal="logs""#,
            &format!(r#"transport="{transport}""#),
            r#"result="ok""#,
        ];
        assert!(
            metric(&metrics, "homeostat_otlp_requests_total", &labels) >= 1.0,
            "{transport}:\n{metrics}"
        );
    }
    assert!(
        metric(
            &metrics,
            "homeostat_otlp_log_records_total",
            &[r#"result="accepted""#]
        ) >= 4.0,
        "{metrics}"
    );
    let status = brain.terminate().await;
    assert!(status.success(), "{status}\n{}", brain.output());
    drop(cgroup);
    server.shutdown().await.expect("api server stops");
}
