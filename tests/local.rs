//! `homeostat brain --local` as a user runs it on a plain Linux host: the real binary, as
//! root with kernel BTF, its journal in a temporary directory, its listeners on loopback
//! ports, no kubeconfig. Children in a cgroup the test makes (a `.scope`, as systemd names
//! a transient unit) exit with status 3 and die of SIGSEGV; the brain's HTTP API and metrics
//! must show the exits and the crash events attributed to that cgroup, and no decision
//! (observe mode, although the configuration asks for enforce).
//!
//! Where BPF cannot run the test says why and passes. It loads the probes: run it apart from
//! the sensor's kernel tests (`bpftool_sees_the_programs…` counts programs).

#[path = "support/cgroup.rs"]
mod cgroup;
#[path = "support/process.rs"]
mod process;

use std::process::Command;

use cgroup::TestCgroup;
use process::{BrainConfig, Proc, eventually, get_json, get_text, metric, wait_ready};
use serde_json::Value;

fn homeostat() -> Command {
    Command::new(env!("CARGO_BIN_EXE_homeostat"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_brain_sees_crashes_of_a_host_cgroup_and_never_acts() {
    if let Some(why) = homeostat_sensor::preflight::unavailable() {
        eprintln!("SKIP local_brain_sees_crashes_of_a_host_cgroup_and_never_acts: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // enforce, with a policy that allows scaling: --local must observe all the same.
    let config = BrainConfig::write(dir.path(), "enforce");
    let mut command = homeostat();
    command
        .args(["brain", "--local", "--config"])
        .arg(&config.path)
        .env("KUBECONFIG", dir.path().join("no-such-kubeconfig"))
        .env("HOMEOSTAT_LOG", "info")
        .env("NO_COLOR", "1");
    let mut brain = Proc::spawn("homeostat brain --local", command);
    let http = reqwest::Client::new();
    let base = config.api_url();
    wait_ready(&http, &format!("{base}/readyz")).await;
    // The probes attach a moment after the listeners: crashes before would go unseen.
    eventually(&brain, "the probes attaching", async || {
        brain.output().contains("probes attached").then_some(())
    })
    .await;

    let unit = format!("homeostat-local-test-{}.scope", std::process::id());
    let cgroup = TestCgroup::at(&TestCgroup::v2_root(), &format!("/{unit}"));
    let mut exited = Vec::new();
    for _ in 0..3 {
        let (pid, status) = cgroup.run_pid("exit 3");
        assert_eq!(status.code(), Some(3));
        exited.push(pid);
    }
    let (segfaulted, status) = cgroup.run_pid("kill -SEGV $$");
    assert!(status.code().is_none(), "{status}");

    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let workload = format!("{}/Cgroup/{unit}", host.trim());
    let events_url = format!("{base}/api/v1/events?workload={workload}");
    let events = eventually(&brain, "four crash events of the test cgroup", async || {
        let items = get_json(&http, &events_url).await["items"].clone();
        (items.as_array()?.len() >= 4).then_some(items)
    })
    .await;
    let events = events.as_array().expect("items");
    assert_eq!(events.len(), 4, "{events:#?}");
    let pid_of = |e: &Value| e["attributes"]["process.pid"].as_u64().expect("pid") as u32;
    for e in events {
        assert_eq!(e["name"], "homeostat.process.crash", "{e}");
        assert_eq!(e["entity"]["workload"]["kind"], "Cgroup", "{e}");
        assert_eq!(e["entity"]["workload"]["name"], unit.as_str(), "{e}");
        assert_eq!(
            e["attributes"]["process.linux.cgroup"],
            format!("0::{}", cgroup.path),
            "{e}"
        );
        assert_eq!(e["attributes"]["process.executable.name"], "sh", "{e}");
    }
    let mut exit_pids: Vec<u32> = events
        .iter()
        .filter(|e| e["attributes"]["process.exit.code"] == 3)
        .map(pid_of)
        .collect();
    exit_pids.sort_unstable();
    exited.sort_unstable();
    assert_eq!(exit_pids, exited, "{events:#?}");
    let killed: Vec<&Value> = events
        .iter()
        .filter(|e| e["attributes"]["homeostat.process.signal"] == 11)
        .collect();
    assert_eq!(killed.len(), 1, "{events:#?}");
    assert_eq!(pid_of(killed[0]), segfaulted);
    assert_eq!(killed[0]["severity"], "ERROR");

    // The exits arrived as metrics too, split by kind, under the same workload.
    let heard = eventually(&brain, "the exit counters of the test cgroup", async || {
        let list = get_json(&http, &format!("{base}/api/v1/workloads")).await;
        let item = list["items"]
            .as_array()?
            .iter()
            .find(|i| i["id"] == workload.as_str())?
            .clone();
        let series = &item["heard"]["series"];
        (series["homeostat.process.exits{exit.kind=error}"].is_object()
            && series["homeostat.process.exits{exit.kind=signal}"].is_object())
        .then_some(item)
    })
    .await;
    assert_eq!(heard["workload"]["namespace"], host.trim());
    assert_eq!(heard["heard"]["nodes"], serde_json::json!([host.trim()]));

    // Once the detectors are warm (20 one-second steps) the engine scores samples of the
    // host's cgroups, and still proposes nothing.
    let metrics = eventually(&brain, "samples scored", async || {
        let text = get_text(&http, &format!("{base}/metrics")).await;
        (metric(&text, "homeostat_samples_scored_total", &[]) > 0.0).then_some(text)
    })
    .await;
    let in_process = |signal: &str| {
        let labels = [signal, r#"transport="in-process""#, r#"result="ok""#];
        metric(&metrics, "homeostat_otlp_requests_total", &labels)
    };
    assert!(in_process(r#"signal="metrics""#) > 0.0, "{metrics}");
    assert!(in_process(r#"signal="logs""#) > 0.0, "{metrics}");
    assert!(
        metric(
            &metrics,
            "homeostat_otlp_log_records_total",
            &[r#"result="accepted""#]
        ) >= 4.0,
        "{metrics}"
    );
    assert!(
        !metrics.contains("homeostat_decisions_total{"),
        "a decision was counted:\n{metrics}"
    );
    let decisions = get_json(&http, &format!("{base}/api/v1/decisions")).await;
    assert_eq!(decisions["items"], serde_json::json!([]));
    assert!(
        dir.path()
            .join("journal")
            .read_dir()
            .expect("journal dir")
            .count()
            > 0,
        "the journal was opened in the temporary directory"
    );

    let status = brain.terminate().await;
    assert!(status.success(), "{status}\n{}", brain.output());
    let output = brain.output();
    assert!(output.contains("mode=observe"), "{output}");
}

#[test]
fn local_refuses_a_mode_that_acts_and_help_explains_it() {
    let out = homeostat()
        .args(["brain", "--local", "--mode", "enforce"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--local observes only: --mode enforce needs a Kubernetes cluster"),
        "{stderr}"
    );
    let help = homeostat()
        .args(["brain", "--help"])
        .output()
        .expect("runs");
    let help = String::from_utf8_lossy(&help.stdout);
    for needle in ["--local", "observe mode only", "/api/v1/events", "systemd"] {
        assert!(help.contains(needle), "{needle:?} not in:\n{help}");
    }
}
