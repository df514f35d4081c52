//! Child processes in end-to-end tests: started with their output kept for failure
//! messages, stopped as Kubernetes stops a pod (SIGTERM, then a bounded wait); and the ports
//! and metrics they are reached and read by. Each test crate uses part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Sends SIGTERM to `child` and waits up to 15 s for it to exit; fails the test naming `what`
/// and showing `output()` if it does not.
pub async fn terminate(child: &mut Child, what: &str, output: impl Fn() -> String) -> ExitStatus {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not stop on SIGTERM:\n{}",
            output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A port free on 127.0.0.1 a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A child process, its output collected for failure messages, killed if the test fails.
pub struct Proc {
    name: &'static str,
    pub child: Child,
    output: Arc<Mutex<String>>,
}

impl Proc {
    pub fn spawn(name: &'static str, mut command: Command) -> Proc {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let output = Arc::new(Mutex::new(String::new()));
        let pipes: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("stdout")),
            Box::new(child.stderr.take().expect("stderr")),
        ];
        for pipe in pipes {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut o = output.lock().unwrap_or_else(|p| p.into_inner());
                    o.push_str(&line);
                    o.push('\n');
                }
            });
        }
        Proc {
            name,
            child,
            output,
        }
    }

    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    pub async fn terminate(&mut self) -> ExitStatus {
        let output = self.output.clone();
        terminate(&mut self.child, self.name, move || {
            output.lock().unwrap_or_else(|p| p.into_inner()).clone()
        })
        .await
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sum of the samples of `name` whose labels contain every one of `labels`.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            n == name && labels.iter().all(|want| rest.contains(want))
        })
        .filter_map(|(_, v)| v.parse::<f64>().ok())
        .fold(0.0, |sum, v| sum + v)
}

/// Waits up to 30 s for `url` to answer 2xx.
pub async fn wait_ready(http: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "brain not ready at {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits up to 20 s for `homeostat simulate --live` (`sim`) to write its kubeconfig at `path`,
/// then returns a client for the simulated cluster.
pub async fn live_cluster_client(sim: &mut Proc, path: &std::path::Path) -> kube::Client {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let deadline = Instant::now() + Duration::from_secs(20);
    let kubeconfig = loop {
        if let Ok(k) = Kubeconfig::read_from(path) {
            break k;
        }
        assert!(
            sim.running() && Instant::now() < deadline,
            "no kubeconfig written:\n{}",
            sim.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig is usable");
    kube::Client::try_from(config).expect("client")
}

/// A brain's configuration file, listening on fresh loopback ports, its journal beside it.
pub struct BrainConfig {
    /// The file (`brain.yaml`).
    pub path: std::path::PathBuf,
    /// OTLP/gRPC port.
    pub grpc: u16,
    /// OTLP/HTTP port.
    pub otlp_http: u16,
    /// HTTP API port.
    pub api: u16,
}

impl BrainConfig {
    /// Writes `dir/brain.yaml`: `mode`, the example policies, an evaluation every second, the
    /// journal in `dir/journal`.
    pub fn write(dir: &std::path::Path, mode: &str) -> BrainConfig {
        Self::write_named(dir, "brain", mode, "")
    }

    /// Writes `dir/<name>.yaml` as [`BrainConfig::write`] does, with its journal in
    /// `dir/<name>-journal` (so several replicas can share `dir`) and `extra` YAML appended.
    pub fn write_named(dir: &std::path::Path, name: &str, mode: &str, extra: &str) -> BrainConfig {
        let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/policies/examples");
        Self::write_with_policies(dir, name, mode, std::path::Path::new(examples), extra)
    }

    /// Writes `dir/<name>.yaml` as [`BrainConfig::write_named`] does, with the policies of
    /// `policies` (a file or a directory) instead of the examples.
    pub fn write_with_policies(
        dir: &std::path::Path,
        name: &str,
        mode: &str,
        policies: &std::path::Path,
        extra: &str,
    ) -> BrainConfig {
        let (grpc, otlp_http, api) = (free_port(), free_port(), free_port());
        let path = dir.join(format!("{name}.yaml"));
        let journal = if name == "brain" {
            dir.join("journal")
        } else {
            dir.join(format!("{name}-journal"))
        };
        let text = format!(
            "mode: {mode}\notlp:\n  grpcListen: 127.0.0.1:{grpc}\n  httpListen: 127.0.0.1:{otlp_http}\n\
             api:\n  listen: 127.0.0.1:{api}\njournal:\n  path: {}\npolicies: [{}]\n\
             evaluationInterval: 1s\n{extra}",
            journal.display(),
            policies.display()
        );
        std::fs::write(&path, text).expect("writing the brain's config");
        BrainConfig {
            path,
            grpc,
            otlp_http,
            api,
        }
    }

    /// `homeostat brain --config <this>` against the cluster of `kubeconfig`, started.
    pub fn spawn_brain(&self, kubeconfig: &std::path::Path) -> Proc {
        Proc::spawn("homeostat brain", self.brain_command(kubeconfig))
    }

    /// [`BrainConfig::spawn_brain`] as the Pod `pod` (its `POD_NAME`, as the Deployment sets).
    pub fn spawn_brain_as(&self, kubeconfig: &std::path::Path, pod: &str) -> Proc {
        let mut brain = self.brain_command(kubeconfig);
        brain.env("POD_NAME", pod);
        Proc::spawn("homeostat brain", brain)
    }

    fn brain_command(&self, kubeconfig: &std::path::Path) -> Command {
        let mut brain = Command::new(env!("CARGO_BIN_EXE_homeostat"));
        brain
            .args(["brain", "--config"])
            .arg(&self.path)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("POD_NAME");
        brain
    }

    /// The API's base URL, `http://127.0.0.1:<api>`.
    pub fn api_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.api)
    }
}

/// GET `url` as JSON; fails the test on an error status.
pub async fn get_json(http: &reqwest::Client, url: &str) -> serde_json::Value {
    let resp = http.get(url).send().await.expect("get");
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    resp.json().await.expect("json")
}

/// GET `url` as text (a `/metrics` page); fails the test on an error status.
pub async fn get_text(http: &reqwest::Client, url: &str) -> String {
    let resp = http.get(url).send().await.expect("get");
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    resp.text().await.expect("text")
}

/// Polls `check` every 200 ms for up to 40 s; fails with `process`'s output if it never holds.
pub async fn eventually<T>(
    process: &Proc,
    what: &str,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never happened; {} said:\n{}",
            process.name,
            process.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A scenario of the checkout workload of `simulations/scenarios/load-spike.yaml` whose load
/// grows six-fold at `at` and holds for `hold`, `duration` long in all: what the tests that
/// run the real binaries against `simulate --live` play.
pub fn crowd_scenario(name: &str, at: &str, hold: &str, duration: &str) -> String {
    format!(
        "name: {name}
description: Six-fold flash crowd on checkout at {at}.
duration: {duration}
step: 15s
seed: 7
workloads:
  - namespace: shop
    name: checkout
    replicas: 4
    pod:
      capacity: 50
      cpuRequest: 0.5
      startupDelay: 90s
      baseLatency: 20ms
    hpa:
      minReplicas: 4
      maxReplicas: 60
      targetCpuUtilization: 70
    load:
      base: 120
      noise: 0.05
      events:
        - kind: spike
          at: {at}
          rampUp: 1m
          hold: {hold}
          rampDown: 2m
          factor: 6
    slo:
      latencyP99: 500ms
"
    )
}
