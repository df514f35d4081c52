//! Hot reload of policies in the real `homeostat brain` binary, running against
//! `homeostat simulate --live` with a flash crowd that keeps it proposing a scale-up every
//! pass (the HPA's ceiling of 6 is below the crowd's need, so the saturation lasts):
//!
//! * a policy file rewritten while the brain runs decides the next decisions; a broken
//!   rewrite is refused, counted on `/metrics`, logged with file, line and column and
//!   recorded as a Warning Event on the brain's Pod, and the last good policy keeps deciding;
//! * a `Policy` object created through the API decides the next decisions, an edit of it
//!   too, and a broken one is refused with a `PolicyRejected` Warning Event on it, read back
//!   through the API.

#[path = "support/policy_crd.rs"]
mod policy_crd;
#[path = "support/process.rs"]
mod process;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, PostParams};
use process::{BrainConfig, Proc, eventually, get_text, metric};
use serde_json::{Value, json};

/// The crowd of the other live tests, from 30 wall seconds on (10 simulated minutes at
/// `--speed 20`, once the detectors are warm), on an HPA that cannot reach what it needs.
fn scenario(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("reload-spike.yaml");
    let text = process::crowd_scenario("reload-spike", "10m", "50m", "60m")
        .replace("maxReplicas: 60", "maxReplicas: 6");
    std::fs::write(&path, text).expect("scenario");
    path
}

/// A policy allowing scale-hpa in `shop`, named `name`, with `mode` and `cooldown`.
fn policy(name: &str, mode: &str, cooldown: &str) -> Value {
    json!({
        "apiVersion": "homeostat.dev/v1alpha1",
        "kind": "Policy",
        "metadata": {"name": name},
        "spec": {
            "mode": mode,
            "actions": ["scale-hpa"],
            "target": {"namespaces": ["shop"]},
            "cooldown": cooldown,
            "maxReplicas": 40,
        },
    })
}

/// The brain's Pod name, as the Deployment passes it in `POD_NAME`.
const BRAIN_POD: &str = "homeostat-brain-7c9d-x2x4q";

/// The simulation and a brain on it, the brain in dry-run with the policies of `policies`.
struct Setup {
    sim: Proc,
    brain: Proc,
    config: BrainConfig,
    client: kube::Client,
    http: reqwest::Client,
}

async fn start(
    dir: &Path,
    policies: &Path,
    before_brain: impl AsyncFnOnce(&kube::Client),
) -> Setup {
    let kubeconfig = dir.join("sim.kubeconfig");
    let config = BrainConfig::write_with_policies(
        dir,
        "brain",
        "dry-run",
        policies,
        "policyReload:\n  interval: 1s\n",
    );
    let mut sim = Command::new(env!("CARGO_BIN_EXE_homeostat"));
    sim.args(["simulate", "--live", "--speed", "20", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg("--otlp-metrics-endpoint")
        .arg(format!("http://127.0.0.1:{}", config.grpc))
        .arg(scenario(dir));
    let mut sim = Proc::spawn("homeostat simulate --live", sim);
    let client = process::live_cluster_client(&mut sim, &kubeconfig).await;
    before_brain(&client).await;
    let brain = config.spawn_brain_as(&kubeconfig, BRAIN_POD);
    Setup {
        sim,
        brain,
        config,
        client,
        http: reqwest::Client::new(),
    }
}

impl Setup {
    /// The journal's decisions, newest first.
    async fn decisions(&self) -> Vec<Value> {
        let url = format!("{}/api/v1/decisions?limit=200", self.config.api_url());
        match self.http.get(url).send().await {
            Ok(r) if r.status().is_success() => {
                r.json::<Value>().await.unwrap_or_default()["items"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            }
            _ => Vec::new(),
        }
    }

    /// The ids of the decisions journaled so far.
    async fn seen(&self) -> BTreeSet<String> {
        self.decisions().await.iter().map(id).collect()
    }

    /// Waits for `n` decisions not in `seen`, oldest first.
    async fn next_decisions(&self, seen: &BTreeSet<String>, n: usize) -> Vec<Value> {
        eventually(&self.brain, &format!("{n} new decisions"), async || {
            let mut new: Vec<Value> = self
                .decisions()
                .await
                .into_iter()
                .filter(|d| !seen.contains(&id(d)))
                .collect();
            new.reverse();
            (new.len() >= n).then_some(new)
        })
        .await
    }

    async fn metrics(&self) -> String {
        get_text(&self.http, &format!("{}/metrics", self.config.api_url())).await
    }

    /// Waits until `homeostat_policy_reloads_total{source, result}` reaches `at_least`.
    async fn reloads(&self, source: &str, result: &str, at_least: f64) {
        let labels = [
            format!("source=\"{source}\""),
            format!("result=\"{result}\""),
        ];
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        eventually(
            &self.brain,
            &format!("{source} reload {result}"),
            async || {
                let text = self.metrics().await;
                (metric(&text, "homeostat_policy_reloads_total", &labels) >= at_least).then_some(())
            },
        )
        .await;
    }

    /// Waits for the `PolicyRejected` Event (in `default`: the kubeconfig's namespace, and
    /// where a cluster-scoped object's go) and checks it is a Warning.
    async fn rejected_event(&self) -> Event {
        let events: Api<Event> = Api::namespaced(self.client.clone(), "default");
        let event = eventually(&self.brain, "a PolicyRejected Event", async || {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("PolicyRejected"))
        })
        .await;
        assert_eq!(event.type_.as_deref(), Some("Warning"), "{event:?}");
        event
    }

    async fn stop(mut self) {
        let status = self.brain.terminate().await;
        assert!(status.success(), "brain: {status}\n{}", self.brain.output());
        let status = self.sim.terminate().await;
        assert!(
            status.success(),
            "simulate: {status}\n{}",
            self.sim.output()
        );
    }
}

fn id(d: &Value) -> String {
    d["id"].as_str().unwrap_or_default().to_owned()
}

/// What decided `d`: (verdict kind, policy, policy set).
fn decided_by(d: &Value) -> (String, String, String) {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (
        s(&d["verdict"]["kind"]),
        s(&d["verdict"]["policy"]),
        s(&d["policy_set"]),
    )
}

fn yaml(policy: &Value) -> String {
    yaml_serde::to_string(policy).expect("a policy renders as YAML")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_policy_file_decides_the_next_decision_and_a_broken_one_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).expect("policies dir");
    let file = policies.join("shop.yaml");
    std::fs::write(&file, yaml(&policy("shop-watch", "observe", "5m"))).expect("policy");
    let setup = start(dir.path(), &policies, async |_| {}).await;

    // The crowd is proposed about, and the observe-only policy records it.
    let first = setup.next_decisions(&BTreeSet::new(), 1).await;
    let (kind, by, set) = decided_by(&first[0]);
    assert_eq!((kind.as_str(), by.as_str()), ("observe", "shop-watch"));
    assert_eq!(
        set.len(),
        12,
        "the policy set's id is journaled: {:#}",
        first[0]
    );

    // A broken rewrite: refused, counted, logged with where it is broken; the last good
    // policy goes on deciding.
    let broken = yaml(&policy("shop-watch", "observe", "soon"));
    let line = broken
        .lines()
        .position(|l| l.contains("cooldown"))
        .expect("a cooldown line")
        + 1;
    std::fs::write(&file, &broken).expect("broken policy");
    setup.reloads("file", "rejected", 1.0).await;
    let located = format!("{}:{line}:", file.display());
    let out = setup.brain.output();
    assert!(
        out.contains(&located) && out.contains("spec.cooldown: invalid duration \"soon\""),
        "the refusal is logged with file:line:column and what is wrong:\n{out}"
    );
    // …and recorded as a Warning Event on the brain's Pod (the kubeconfig's namespace).
    let event = setup.rejected_event().await;
    assert_eq!(event.involved_object.kind.as_deref(), Some("Pod"));
    assert_eq!(event.involved_object.name.as_deref(), Some(BRAIN_POD));
    let message = event.message.unwrap_or_default();
    assert!(message.contains(&located), "{message}");
    let seen = setup.seen().await;
    for d in setup.next_decisions(&seen, 2).await {
        assert_eq!(
            decided_by(&d),
            (kind.clone(), by.clone(), set.clone()),
            "the last good policy decides after a refusal"
        );
    }
    let text = setup.metrics().await;
    assert_eq!(
        metric(
            &text,
            "homeostat_policy_reloads_total",
            &["source=\"file\"", "result=\"applied\""]
        ),
        0.0
    );
    assert_eq!(
        metric(&text, "homeostat_policies_loaded", &["source=\"file\""]),
        1.0
    );

    // A valid rewrite: the next decisions follow the new policy, under a new set id.
    std::fs::write(&file, yaml(&policy("shop-scale", "dry-run", "1h"))).expect("new policy");
    setup.reloads("file", "applied", 1.0).await;
    let seen = setup.seen().await;
    let after = setup.next_decisions(&seen, 2).await;
    for d in &after {
        let (kind, by, new_set) = decided_by(d);
        assert_eq!(by, "shop-scale", "{d:#}");
        assert!(kind == "dry-run" || kind == "deny", "{d:#}");
        assert_ne!(new_set, set, "a new policy set decided: {d:#}");
    }
    let out = setup.brain.output();
    assert!(
        out.contains("policies reloaded; added: shop-scale; removed: shop-watch; changed: none"),
        "the reload says what changed:\n{out}"
    );
    eprintln!(
        "decisions after the reload: {:?}",
        after.iter().map(decided_by).collect::<Vec<_>>()
    );
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_object_decides_the_next_decision_and_a_broken_one_gets_an_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).expect("an empty policies dir");
    let install = async |client: &kube::Client| {
        let crd: CustomResourceDefinition =
            serde_json::from_value(homeostat_policies::crd::definition()).expect("a typed CRD");
        Api::<CustomResourceDefinition>::all(client.clone())
            .create(&PostParams::default(), &crd)
            .await
            .expect("the CRD is installed");
    };
    let setup = start(dir.path(), &policies, install).await;
    let objects: Api<DynamicObject> = Api::all_with(
        setup.client.clone(),
        &homeostat_brain::reload::objects::resource(),
    );
    let create = async |policy: Value| {
        let object: DynamicObject = serde_json::from_value(policy).expect("an object");
        objects
            .create(&PostParams::default(), &object)
            .await
            .expect("Policy created");
    };

    // No policy: the crowd's proposals are denied.
    let first = setup.next_decisions(&BTreeSet::new(), 1).await;
    assert_eq!(first[0]["verdict"]["rule"], "no-policy", "{:#}", first[0]);

    // A Policy object: the next decisions are its.
    create(policy("crd-watch", "observe", "5m")).await;
    setup.reloads("crd", "applied", 1.0).await;
    let seen = setup.seen().await;
    for d in setup.next_decisions(&seen, 2).await {
        let (kind, by, _) = decided_by(&d);
        assert_eq!(
            (kind.as_str(), by.as_str()),
            ("observe", "crd-watch"),
            "{d:#}"
        );
    }

    // An edit of it: the next decisions follow the edit.
    let edit = json!({"spec": {"mode": "dry-run", "cooldown": "1h"}});
    objects
        .patch("crd-watch", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .expect("Policy edited");
    setup.reloads("crd", "applied", 2.0).await;
    let seen = setup.seen().await;
    for d in setup.next_decisions(&seen, 2).await {
        let (kind, by, _) = decided_by(&d);
        assert_eq!(by, "crd-watch", "{d:#}");
        assert!(kind == "dry-run" || kind == "deny", "{d:#}");
    }

    // A broken object: refused, with a Warning Event on it.
    create(policy("crd-broken", "enforce", "soon")).await;
    setup.reloads("crd", "rejected", 1.0).await;
    let event = setup.rejected_event().await;
    assert_eq!(event.involved_object.kind.as_deref(), Some("Policy"));
    assert_eq!(event.involved_object.name.as_deref(), Some("crd-broken"));
    let broken = objects.get("crd-broken").await.expect("the broken Policy");
    assert_eq!(
        event.involved_object.uid, broken.metadata.uid,
        "`kubectl describe policy` finds the Event by the object's uid"
    );
    assert_eq!(
        event.involved_object.api_version.as_deref(),
        Some("homeostat.dev/v1alpha1")
    );
    let message = event.message.unwrap_or_default();
    assert!(
        message
            .contains("policy.homeostat.dev/crd-broken: spec.cooldown: invalid duration \"soon\""),
        "{message}"
    );
    let text = setup.metrics().await;
    assert_eq!(
        metric(&text, "homeostat_policies_loaded", &["source=\"crd\""]),
        1.0
    );
    eprintln!("Event: {message}");
    setup.stop().await;
}

/// The Policy watch through a flaky API server: streams dropped after a third of their
/// events, two in five lists and watches answered 500 or 429. The watcher lists and watches
/// again from where it was, and every change still takes effect, in order, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_changes_arrive_through_dropped_watches_and_failed_lists() {
    use std::time::{Duration, Instant};

    use homeostat_brain::metrics::ReloadMetrics;
    use homeostat_brain::reload::{Reloader, objects};
    use homeostat_policies::PolicySet;
    use homeostat_simulations::apiserver::{FaultConfig, Verb};

    let (server, clock, client) = policy_crd::server_with_policy_crd().await;
    let policies: Api<DynamicObject> = Api::all_with(client.clone(), &objects::resource());
    let policy = |cooldown: u32| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "homeostat.dev/v1alpha1",
            "kind": "Policy",
            "metadata": {"name": "flaky"},
            "spec": {"mode": "observe", "actions": ["restart-pods"], "cooldown": format!("{cooldown}m")},
        }))
        .expect("an object")
    };
    policies
        .create(&PostParams::default(), &policy(1))
        .await
        .expect("created");

    // From here on the brain's lists and watches meet faults.
    server.set_faults(FaultConfig {
        seed: 3,
        internal_error: 0.2,
        too_many_requests: 0.2,
        watch_drop: 0.35,
        verbs: vec![Verb::List, Verb::Watch],
        ..FaultConfig::default()
    });
    let metrics = ReloadMetrics::register(&prometheus::Registry::new()).expect("metrics");
    let reloader = Reloader::new(PolicySet::default(), metrics, clock, None);
    let handle = reloader.handle();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let watch = tokio::spawn(objects::watch(client, reloader, shutdown));
    let cooldown = || {
        handle
            .borrow()
            .set
            .get("flaky")
            .map(|p| p.spec.cooldown.get())
    };
    for minutes in 1..=12u32 {
        if minutes > 1 {
            // The test's own get and update meet no faults: only lists and watches do.
            let mut next = policy(minutes);
            next.metadata.resource_version = policies
                .get("flaky")
                .await
                .expect("read")
                .metadata
                .resource_version;
            policies
                .replace("flaky", &PostParams::default(), &next)
                .await
                .expect("replaced");
        }
        let want = Duration::from_secs(u64::from(minutes) * 60);
        let deadline = Instant::now() + Duration::from_secs(30);
        while cooldown() != Some(want) {
            assert!(
                Instant::now() < deadline,
                "cooldown {minutes}m never took effect (in force: {:?}; faults so far {:?})",
                cooldown(),
                server.fault_stats()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let stats = server.fault_stats();
    assert!(
        stats.dropped_watches > 0 && stats.refusals() > 0,
        "the faults never met the watcher: {stats:?}"
    );
    eprintln!("12 changes through {stats:?}");
    stop.send_replace(true);
    watch.await.expect("the watch ends on shutdown");
    server.shutdown().await.expect("shutdown");
}
