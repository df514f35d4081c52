//! Two replicas of the real `homeostat brain` against one live simulated cluster: both receive
//! every point and learn, only the holder of the leader Lease acts, and when it is killed
//! (SIGKILL, no goodbye) the other takes the Lease within 15 seconds.

#[path = "support/process.rs"]
mod process;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use process::{BrainConfig, Proc, metric};

struct Replica {
    name: &'static str,
    proc: Proc,
    api: u16,
}

impl Replica {
    /// Writes replica `name`'s configuration (leader election on, its own ports and journal).
    fn configure(name: &str, dir: &Path) -> BrainConfig {
        let election = format!("leaderElection:\n  identity: {name}\n");
        BrainConfig::write_named(dir, name, "enforce", &election)
    }

    fn start(name: &'static str, config: &BrainConfig, kubeconfig: &Path) -> Replica {
        Replica {
            name,
            proc: config.spawn_brain(kubeconfig),
            api: config.api,
        }
    }

    async fn metrics(&self, http: &reqwest::Client) -> String {
        match http
            .get(format!("http://127.0.0.1:{}/metrics", self.api))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => r.text().await.unwrap_or_default(),
            _ => String::new(),
        }
    }
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("homeostat-brain")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
}

fn decisions(metrics: &str) -> f64 {
    metric(metrics, "homeostat_decisions_total", &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_acts_and_the_other_takes_over_within_15_seconds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenario = dir.path().join("replicas-spike.yaml");
    // The crowd comes at 10 simulated minutes (30 wall seconds at --speed 20, after the
    // brains' detectors are warm) and holds for the rest of the test.
    std::fs::write(
        &scenario,
        process::crowd_scenario("replicas-spike", "10m", "45m", "60m"),
    )
    .expect("scenario");
    let kubeconfig = dir.path().join("sim.kubeconfig");
    let (config_a, config_b) = (
        Replica::configure("brain-a", dir.path()),
        Replica::configure("brain-b", dir.path()),
    );
    let (grpc_a, grpc_b) = (config_a.grpc, config_b.grpc);
    let mut sim = Command::new(env!("CARGO_BIN_EXE_homeostat"));
    sim.args(["simulate", "--live", "--speed", "20", "--kubeconfig"])
        .arg(&kubeconfig)
        .args([
            "--otlp-metrics-endpoint",
            &format!("http://127.0.0.1:{grpc_a}"),
        ])
        .args([
            "--otlp-metrics-endpoint",
            &format!("http://127.0.0.1:{grpc_b}"),
        ])
        .arg(&scenario);
    let mut sim = Proc::spawn("homeostat simulate --live", sim);
    let client = process::live_cluster_client(&mut sim, &kubeconfig).await;
    let leases: Api<Lease> = Api::namespaced(client, "homeostat-system");

    let mut a = Replica::start("brain-a", &config_a, &kubeconfig);
    let mut b = Replica::start("brain-b", &config_b, &kubeconfig);
    let http = reqwest::Client::new();

    // One of them leads; wait until the leader has acted on the crowd.
    let deadline = Instant::now() + Duration::from_secs(75);
    let (leader, follower) = loop {
        let (ma, mb) = (a.metrics(&http).await, b.metrics(&http).await);
        let acted = match holder(&leases).await.as_deref() {
            Some("brain-a") if decisions(&ma) > 0.0 => Some((ma, mb, true)),
            Some("brain-b") if decisions(&mb) > 0.0 => Some((mb, ma, false)),
            _ => None,
        };
        if let Some((leading, following, a_leads)) = acted {
            // The follower learned all along and decided nothing.
            assert!(
                metric(&following, "homeostat_samples_scored_total", &[]) > 0.0,
                "{following}"
            );
            assert_eq!(decisions(&following), 0.0, "{following}");
            assert_eq!(metric(&following, "homeostat_leader", &[]), 0.0);
            assert_eq!(metric(&leading, "homeostat_leader", &[]), 1.0);
            break if a_leads {
                (&mut a, &mut b)
            } else {
                (&mut b, &mut a)
            };
        }
        assert!(
            Instant::now() < deadline,
            "no replica acted within 75 s\n--- a:\n{}\n--- b:\n{}\n--- simulate:\n{}",
            a.proc.output(),
            b.proc.output(),
            sim.output()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    // SIGKILL: the leader leaves its Lease held; the follower takes it when it expires.
    leader.proc.child.kill().expect("kill");
    let killed = Instant::now();
    let _ = leader.proc.child.wait();
    loop {
        if holder(&leases).await.as_deref() == Some(follower.name) {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(15),
            "{} did not take over within 15 s\n{}",
            follower.name,
            follower.proc.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = killed.elapsed();
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&follower.metrics(&http).await, "homeostat_leader", &[]) != 1.0 {
        assert!(Instant::now() < deadline, "{}", follower.proc.output());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "{} took over {:.1} s after {} was killed",
        follower.name,
        took.as_secs_f64(),
        leader.name
    );
    assert!(
        follower
            .proc
            .output()
            .contains("leading: this replica acts")
    );

    // The new leader's journal holds none of the old leader's actions, but the cluster's
    // Events do: the raise its predecessor made keeps its cooldown, so the crowd that goes on
    // is not answered with a second raise straight away.
    let url = format!(
        "http://127.0.0.1:{}/api/v1/decisions?limit=100",
        follower.api
    );
    let deadline = Instant::now() + Duration::from_secs(45);
    let refused = loop {
        let ds = process::get_json(&http, &url).await["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let scale: Vec<_> = ds
            .iter()
            .filter(|d| d["verdict"]["action"]["kind"] == "scale-hpa")
            .collect();
        assert!(
            !scale.iter().any(|d| d["outcome"]["state"] == "applied"
                && d["verdict"]["action"]["min_replicas"].as_u64()
                    > d["verdict"]["action"]["previous_min_replicas"].as_u64()),
            "the new leader raised again inside its predecessor's cooldown: {scale:#?}"
        );
        if let Some(d) = scale
            .iter()
            .find(|d| d["verdict"]["kind"] == "deny" && d["verdict"]["rule"] == "cooldown")
        {
            break d["verdict"]["reason"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "the new leader proposed no raise to refuse: {ds:#?}\n{}",
            follower.proc.output()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!("the new leader's raise refused: {refused}");
    // And it knows the raise is its to put back when the crowd has gone.
    let output = follower.proc.output();
    assert!(
        output.contains("read past actions this journal does not hold")
            && output.contains("remembering a raised minReplicas to put back"),
        "{output}"
    );

    // A clean stop gives the Lease up at once.
    let status = follower.proc.terminate().await;
    assert!(status.success(), "{}", follower.proc.output());
    assert_eq!(holder(&leases).await, None, "released on SIGTERM");
    let status = sim.terminate().await;
    assert!(status.success(), "{}", sim.output());
}
