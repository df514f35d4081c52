//! The actuators against the simulated cluster, over real HTTP: the HPA's minReplicas by
//! server-side apply, with the field's ownership visible to a real kubectl; a workload no HPA
//! scales, scaled through its `scale` subresource and brought up by the simulated Deployment
//! controller; a rollout restart rolled within the Deployment's own surge and unavailability
//! bounds. Each change is shown to be idempotent (sent again, nothing moves) and to be
//! recognised as landed after a crash, and every request the actuators send is one the
//! brain's roles in `deploy/manifests` grant. Last, the whole engine: fed a saturated
//! workload that no HPA scales, it scales it through `scale` and judges the change.

#[path = "support/kubectl.rs"]
mod kubectl;
#[path = "support/rbac.rs"]
mod rbac;
#[path = "support/validator.rs"]
mod validator;

use std::sync::Arc;
use std::time::Duration;

use homeostat_actuators::landed::landed;
use homeostat_actuators::rollout::RESTARTED_AT;
use homeostat_actuators::{Actuator, HpaScaler, RolloutRestarter, WorkloadScaler};
use homeostat_brain::point::{Point, PointValue};
use homeostat_brain::{Brain, DecisionSpans, EngineConfig, Journal};
use homeostat_core::{
    Action, Clock, DecisionId, Entity, ManualClock, Mode, Timestamp, WorkloadRef, signal,
};
use homeostat_policies::PolicySet;
use homeostat_simulations::Scenario;
use homeostat_simulations::apiserver::{ApiServer, ApiServerHandle, DEFAULT_ADDR, ObjectStore};
use homeostat_simulations::cluster::SimCluster;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

const STEP: Duration = Duration::from_secs(15);

/// One Deployment `shop/cart` of `replicas` pods that start in 30 s, with an HPA.
fn scenario(replicas: u32) -> Scenario {
    let text = format!(
        "name: actuate\nduration: 1h\nstep: 15s\nseed: 7\nworkloads:\n  - namespace: shop\n    name: cart\n    replicas: {replicas}\n    pod: {{capacity: 50, cpuRequest: 0.1, startupDelay: 30s, baseLatency: 20ms}}\n    hpa: {{minReplicas: {replicas}, maxReplicas: 8, targetCpuUtilization: 70}}\n    load: {{base: 20, noise: 0.05}}\n    slo: {{latencyP99: 500ms}}\n"
    );
    Scenario::parse("actuate.yaml", &text).expect("scenario parses")
}

/// The simulated cluster: its API server and its controllers, stepped by hand.
struct Lab {
    clock: ManualClock,
    server: ApiServerHandle,
    cluster: SimCluster,
    client: kube::Client,
}

impl Lab {
    async fn start(replicas: u32) -> Lab {
        let clock = ManualClock::new(Timestamp::from_secs(1_790_000_000));
        let store = ObjectStore::new(Arc::new(clock.clone()));
        let cluster =
            SimCluster::install(&store, &scenario(replicas), clock.now()).expect("installed");
        let server = ApiServer::start(store, DEFAULT_ADDR)
            .await
            .expect("API server");
        let client = server.kube_client().expect("client");
        let mut lab = Lab {
            clock,
            server,
            cluster,
            client,
        };
        lab.steps(4);
        lab
    }

    /// Runs the cluster's controllers for `n` steps.
    fn steps(&mut self, n: usize) {
        for _ in 0..n {
            self.clock.advance(STEP);
            for r in self
                .cluster
                .reconcile(self.server.store(), self.clock.now())
            {
                r.expect("controllers run");
            }
        }
    }

    /// Deletes the workload's HPA, as its owner would to scale it by hand.
    async fn delete_hpa(&self) {
        let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(self.client.clone(), "shop");
        hpas.delete("cart", &DeleteParams::default())
            .await
            .expect("HPA deleted");
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.client.clone(), "shop")
    }

    async fn deployment(&self) -> Deployment {
        self.deployments().get("cart").await.expect("deployment")
    }

    /// The workload's pods: (template hash, ready), skipping those being deleted.
    async fn pods(&self) -> Vec<(String, bool)> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), "shop");
        pods.list(&ListParams::default().labels("app=cart"))
            .await
            .expect("pods")
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| {
                let hash = p
                    .metadata
                    .labels
                    .unwrap_or_default()
                    .get("pod-template-hash")
                    .cloned()
                    .unwrap_or_default();
                let ready = p
                    .status
                    .and_then(|s| s.conditions)
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                (hash, ready)
            })
            .collect()
    }

    /// Requests the server has answered so far.
    fn requests(&self) -> usize {
        self.server.audit().len()
    }

    /// Asserts the brain's roles grant every request answered since `from`.
    fn assert_granted_since(&self, from: usize) {
        rbac::assert_brain_may(&self.server.audit()[from..]);
    }

    /// A decision id of now, as the engine makes them.
    fn decision(&self) -> DecisionId {
        DecisionId(ulid::Ulid::from_datetime(self.clock.now().to_system_time()).to_string())
    }
}

/// `manager/operation/subresource: fields` of each managedFields entry, as kubectl shows them.
fn managers(lab: &Lab, resource: &str) -> Vec<String> {
    let out = kubectl::run(
        &lab.server,
        &[
            "get",
            resource,
            "-n",
            "shop",
            "--show-managed-fields",
            "-o",
            "json",
        ],
    );
    let object: Value = serde_json::from_str(&out).expect("kubectl prints JSON");
    object["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .map(|e| {
            format!(
                "{}/{}/{}: {}",
                e["manager"].as_str().unwrap_or_default(),
                e["operation"].as_str().unwrap_or_default(),
                e["subresource"].as_str().unwrap_or_default(),
                e["fieldsV1"]
            )
        })
        .collect()
}

/// Asserts that `kubectl describe deployment/cart` (which selects Events by the object's uid,
/// name and kind) lists a Normal Event from homeostat of decision `id` saying all of `words`.
fn assert_described(lab: &Lab, id: &DecisionId, words: &[&str]) {
    let out = kubectl::run(&lab.server, &["describe", "-n", "shop", "deployment/cart"]);
    let events = out
        .split_once("\nEvents:")
        .map(|(_, events)| events)
        .unwrap_or_default();
    let id = id.to_string();
    assert!(
        events
            .lines()
            .map(str::trim)
            .any(|l| l.starts_with("Normal")
                && l.contains("homeostat")
                && l.contains(&id)
                && words.iter().all(|w| l.contains(w))),
        "no such Event in kubectl describe:\n{events}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_replicas_is_applied_server_side_and_kubectl_shows_homeostat_owns_it() {
    let lab = Lab::start(2).await;
    // The HPA as its owner applies it: every field of its spec is kubectl's.
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(lab.client.clone(), "shop");
    let owner = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "cart", "namespace": "shop"},
        "spec": {"minReplicas": 2, "maxReplicas": 8,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "cart"}}});
    hpas.patch(
        "cart",
        &PatchParams::apply("kubectl"),
        &Patch::Apply(&owner),
    )
    .await
    .expect("the owner's apply");

    // Unforced, homeostat's apply would be refused: the field is the owner's.
    let mine = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "cart", "namespace": "shop"}, "spec": {"minReplicas": 4}});
    match hpas
        .patch(
            "cart",
            &PatchParams::apply("homeostat"),
            &Patch::Apply(&mine),
        )
        .await
    {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 409);
            assert!(
                s.message
                    .contains("conflict with \"kubectl\" using autoscaling/v2: .spec.minReplicas"),
                "{}",
                s.message
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }

    let from = lab.requests();
    let scaler = HpaScaler::new(lab.client.clone());
    let id = lab.decision();
    let action = Action::ScaleHpa {
        hpa: homeostat_actuators::hpa::hpa_ref("shop", "cart"),
        min_replicas: 4,
        previous_min_replicas: 2,
    };
    let plan = scaler.plan(&action, &id).await.expect("plan");
    let applied = scaler.apply(&plan, lab.clock.now()).await.expect("applied");
    assert!(landed(&lab.client, &plan, &id).await.expect("asked"));
    // Sent again (a retry after a lost answer), it changes nothing.
    let again = scaler.apply(&plan, lab.clock.now()).await.expect("again");
    assert_eq!(again.resource_version, applied.resource_version);
    lab.assert_granted_since(from);
    let hpa = hpas.get("cart").await.expect("hpa");
    assert_eq!(hpa.spec.as_ref().and_then(|s| s.min_replicas), Some(4));
    assert_eq!(hpa.spec.as_ref().map(|s| s.max_replicas), Some(8));

    // kubectl shows who owns what: homeostat minReplicas and its stamp, kubectl the rest.
    assert_eq!(
        managers(&lab, "hpa/cart"),
        [
            r#"kubectl/Apply/: {"f:spec":{"f:maxReplicas":{},"f:scaleTargetRef":{"f:apiVersion":{},"f:kind":{},"f:name":{}}}}"#,
            r#"homeostat/Apply/: {"f:metadata":{"f:annotations":{"f:homeostat.dev/decision-id":{}}},"f:spec":{"f:minReplicas":{}}}"#,
        ]
    );
    lab.server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_without_an_hpa_is_scaled_through_its_scale_subresource() {
    let mut lab = Lab::start(2).await;
    // No HPA scales it; its replicas are what its owner applied.
    lab.delete_hpa().await;
    let owner = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "cart", "namespace": "shop"}, "spec": {"replicas": 2}});
    lab.deployments()
        .patch(
            "cart",
            &PatchParams::apply("kubectl"),
            &Patch::Apply(&owner),
        )
        .await
        .expect("the owner's apply");
    let workload = WorkloadRef::deployment("shop", "cart");
    let from = lab.requests();
    assert_eq!(
        HpaScaler::new(lab.client.clone())
            .find_for(&workload)
            .await
            .expect("read"),
        None
    );

    let scaler = WorkloadScaler::new(lab.client.clone());
    let state = scaler
        .find_for(&workload)
        .await
        .expect("read")
        .expect("a deployment");
    assert_eq!((state.replicas, state.ready_replicas), (2, 2));
    let id = lab.decision();
    let action = Action::ScaleWorkload {
        workload: workload.clone(),
        replicas: 4,
        previous_replicas: 2,
    };
    let plan = scaler.plan(&action, &id).await.expect("plan");
    assert_eq!(plan.summary, "scale Deployment/shop/cart replicas 2 -> 4");
    assert!(
        !landed(&lab.client, &plan, &id).await.expect("asked"),
        "not yet"
    );
    let applied = scaler.apply(&plan, lab.clock.now()).await.expect("applied");
    assert!(landed(&lab.client, &plan, &id).await.expect("asked"));
    let again = scaler.apply(&plan, lab.clock.now()).await.expect("again");
    assert_eq!(
        again.resource_version, applied.resource_version,
        "a repeat is a no-op"
    );
    lab.assert_granted_since(from);

    // The request went to the subresource, as homeostat's forced apply.
    let writes: Vec<_> = lab
        .server
        .audit()
        .into_iter()
        .filter(|r| r.is_write() && r.path.ends_with("/deployments/cart/scale"))
        .collect();
    assert_eq!(writes.len(), 2, "{writes:?}");
    for w in &writes {
        assert_eq!(w.method, "PATCH");
        assert_eq!(
            w.content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        assert_eq!(
            w.query.as_deref(),
            Some("&force=true&fieldManager=homeostat")
        );
        assert_eq!(w.status, 200);
    }

    // The Deployment controller brings the two new pods up.
    lab.steps(4);
    let d = lab.deployment().await;
    assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(4));
    assert_eq!(d.status.and_then(|s| s.ready_replicas), Some(4));
    assert_eq!(lab.pods().await.len(), 4);

    // kubectl: spec.replicas is homeostat's, through the scale subresource.
    assert_eq!(
        managers(&lab, "deployment/cart"),
        [r#"homeostat/Apply/scale: {"f:spec":{"f:replicas":{}}}"#],
        "kubectl's apply owned nothing else, so its entry is gone"
    );
    lab.server.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_restart_replaces_every_pod_within_the_rollout_bounds() {
    let mut lab = Lab::start(4).await;
    let before = lab.pods().await;
    assert_eq!(before.len(), 4);
    assert!(before.iter().all(|(_, ready)| *ready), "{before:?}");
    let old_hash = before[0].0.clone();

    let from = lab.requests();
    let restarter = RolloutRestarter::new(lab.client.clone());
    let id = lab.decision();
    let action = Action::RolloutRestart {
        workload: WorkloadRef::deployment("shop", "cart"),
    };
    let plan = restarter.plan(&action, &id).await.expect("plan");
    assert_eq!(
        plan.summary,
        "rollout restart of Deployment/shop/cart (4 pods, at most 25% unavailable and 25% extra at a time)"
    );
    restarter
        .apply(&plan, lab.clock.now())
        .await
        .expect("applied");
    assert!(landed(&lab.client, &plan, &id).await.expect("asked"));
    lab.assert_granted_since(from);
    let template = lab
        .deployment()
        .await
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.annotations)
        .unwrap_or_default();
    assert!(
        template.contains_key(RESTARTED_AT),
        "the template is stamped: {template:?}"
    );

    // Step by step: never fewer than 3 ready (maxUnavailable 1) nor more than 5 pods
    // (maxSurge 1), until every pod is of the new template.
    let mut replaced = false;
    for _ in 0..40 {
        lab.steps(1);
        let pods = lab.pods().await;
        let ready = pods.iter().filter(|(_, r)| *r).count();
        assert!(ready >= 3, "{ready} ready: {pods:?}");
        assert!(pods.len() <= 5, "{} pods: {pods:?}", pods.len());
        if pods.len() == 4 && pods.iter().all(|(h, r)| *r && *h != old_hash) {
            replaced = true;
            break;
        }
    }
    assert!(
        replaced,
        "the rollout did not finish: {:?}",
        lab.pods().await
    );

    // The same decision sent again rolls nothing.
    let rv = lab.deployment().await.metadata.resource_version;
    restarter
        .apply(&plan, lab.clock.now())
        .await
        .expect("again");
    assert_eq!(lab.deployment().await.metadata.resource_version, rv);
    lab.server.shutdown().await.expect("shutdown");
}

/// A whole brain acting on the lab under one policy, stepped by hand: what it did and judged.
struct Acting {
    brain: Brain,
    journal: Journal,
    /// The first step, on a multiple of the step since the epoch, as the store closes them.
    start: Timestamp,
    /// The step at which it first applied a change.
    acted: Option<i64>,
    /// The first judgement of a change.
    verified: Option<(DecisionId, homeostat_core::Verification)>,
}

impl Acting {
    fn new(lab: &Lab, policy: &str) -> Acting {
        let journal = Journal::temporary().expect("journal");
        let brain = Brain::assemble(
            EngineConfig {
                mode: Mode::Enforce,
                ..EngineConfig::default()
            },
            STEP,
            Arc::new(lab.clock.clone()),
            PolicySet::from_str("policy.yaml", policy).expect("policy"),
            lab.client.clone(),
            journal.clone(),
            DecisionSpans::disabled(),
        )
        .expect("brain");
        let start = Timestamp::from_secs((lab.clock.now().as_secs_f64() as i64 / 15 + 1) * 15);
        Acting {
            brain,
            journal,
            start,
            acted: None,
            verified: None,
        }
    }

    /// The time of step `k`.
    fn at(&self, k: i64) -> Timestamp {
        self.start + STEP * u32::try_from(k).expect("small")
    }

    /// Step `k`: the brain gets `points`, the cluster's controllers run (unless held), the
    /// brain evaluates. Returns whether a change has been judged.
    async fn step(&mut self, lab: &mut Lab, k: i64, points: Vec<Point>, controllers: bool) -> bool {
        self.brain.store.lock().expect("store").ingest(points);
        lab.clock.set(self.at(k) + Duration::from_secs(6));
        if controllers {
            for r in lab.cluster.reconcile(lab.server.store(), lab.clock.now()) {
                r.expect("controllers run");
            }
        }
        let pass = self.brain.engine.evaluate().await.expect("pass");
        let applied = pass
            .decisions
            .iter()
            .any(|d| matches!(d.outcome, homeostat_core::Outcome::Applied { .. }));
        if self.acted.is_none() && applied {
            self.acted = Some(k);
        }
        self.verified = self.verified.take().or(pass.verifications.first().cloned());
        self.verified.is_some()
    }

    /// The one change it applied.
    fn only_applied(&self) -> homeostat_core::Decision {
        let decisions = self.journal.all().expect("journal");
        let applied: Vec<_> = decisions
            .iter()
            .filter(|d| matches!(d.outcome, homeostat_core::Outcome::Applied { .. }))
            .collect();
        assert_eq!(
            applied.len(),
            1,
            "one change, not one a pass: {decisions:#?}"
        );
        applied[0].clone()
    }
}

/// Cumulative request-latency and run-queue histograms of the workload's one pod, fed a step
/// at a time: calm steps wobble around 20 % slow requests, saturated ones are mostly slow and
/// wait long for a CPU.
#[derive(Default)]
struct Signals {
    requests: [u64; 3],
    waits: [u64; 3],
}

impl Signals {
    fn step(&mut self, k: i64, saturated: bool, at: Timestamp, start: Timestamp) -> Vec<Point> {
        let slow = if saturated {
            95
        } else {
            (20.0 + 10.0 * ((k as f64) * 0.7).sin()).round() as u64
        };
        // Calm: the slow share of requests waits a little; saturated: nearly all wait long.
        let (fast, slow) = if saturated {
            (5, 95)
        } else {
            (100 - slow, slow)
        };
        self.requests[0] += fast;
        self.requests[1] += slow;
        self.waits[0] += fast;
        self.waits[if saturated { 2 } else { 1 }] += slow;
        let mut entity = Entity::workload(WorkloadRef::deployment("shop", "cart"));
        entity.pod = Some("cart-0".into());
        let histogram = |name: &str, counts: [u64; 3], bounds: [f64; 3]| Point {
            entity: entity.clone(),
            signal: name.into(),
            attributes: Vec::new(),
            time: at,
            start_time: start,
            value: PointValue::Histogram {
                count: counts.iter().sum(),
                sum: counts[0] as f64 * bounds[0]
                    + counts[1] as f64 * bounds[1]
                    + counts[2] as f64 * bounds[2],
                bounds: bounds.to_vec(),
                counts: vec![counts[0], counts[1], counts[2], 0],
                cumulative: true,
            },
        };
        vec![
            histogram(
                signal::HTTP_SERVER_REQUEST_DURATION,
                self.requests,
                [0.05, 0.4, 1.0],
            ),
            histogram(signal::RUNQUEUE_LATENCY, self.waits, [0.0001, 0.0005, 0.02]),
        ]
    }
}

const SCALE_WORKLOAD_POLICY: &str = "apiVersion: homeostat.dev/v1alpha1
kind: Policy
metadata:
  name: shop-replicas
spec:
  mode: enforce
  actions: [scale-workload]
  target:
    namespaces: [shop]
  cooldown: 10m
  maxReplicas: 12
  maxDataAge: 2m
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_scales_a_workload_without_an_hpa_and_judges_that_it_helped() {
    let mut lab = Lab::start(2).await;
    lab.delete_hpa().await;
    let mut acting = Acting::new(&lab, SCALE_WORKLOAD_POLICY);
    // 40 calm steps to learn the normal, then saturation until homeostat acts, then calm.
    let mut signals = Signals::default();
    for k in 1..=80 {
        let saturated = k > 40 && acting.acted.is_none_or(|a| k <= a + 2);
        let points = signals.step(k, saturated, acting.at(k), acting.start);
        if acting.step(&mut lab, k, points, true).await {
            break;
        }
    }
    let d = acting.only_applied();
    assert_eq!(
        d.verdict.action,
        Action::ScaleWorkload {
            workload: WorkloadRef::deployment("shop", "cart"),
            replicas: 4,
            previous_replicas: 2,
        }
    );
    assert!(
        d.proposal
            .reason
            .contains("raise replicas (no HPA scales it) to 4"),
        "{}",
        d.proposal.reason
    );
    let plan = d.plan.as_ref().expect("plan");
    assert!(
        plan.target.to_string() == "Deployment/shop/cart",
        "{plan:?}"
    );
    assert_eq!(
        lab.deployment().await.spec.and_then(|s| s.replicas),
        Some(4),
        "scaled through the API"
    );
    assert!(
        lab.server
            .audit()
            .iter()
            .any(|r| r.method == "PATCH" && r.path.ends_with("/deployments/cart/scale")),
        "through the scale subresource"
    );
    // `kubectl describe` tells the story on the Deployment.
    assert_described(
        &lab,
        &d.id,
        &["HomeostatScaled", "raise replicas (no HPA scales it) to 4"],
    );

    // The signals calmed two steps after the change (this test scripts them so): judged
    // helped once they were back two passes running, and so journaled.
    let (id, v) = acting.verified.clone().expect("judged within the window");
    assert_eq!(id, d.id);
    assert!(v.helped, "{v:?}");
    assert_eq!(
        acting
            .journal
            .get(&id)
            .expect("read")
            .and_then(|d| d.verification),
        Some(v)
    );
    lab.server.shutdown().await.expect("shutdown");
}

const ROLLOUT_RESTART_POLICY: &str = "apiVersion: homeostat.dev/v1alpha1
kind: Policy
metadata:
  name: shop-rollout-restart
spec:
  mode: enforce
  actions: [rollout-restart]
  target:
    namespaces: [shop]
  cooldown: 30m
  maxDataAge: 1m
";

/// The workload's error exits so far, as its pod's cumulative counter.
fn error_exits(total: f64, at: Timestamp, start: Timestamp) -> Point {
    let mut entity = Entity::workload(WorkloadRef::deployment("shop", "cart"));
    entity.pod = Some("cart-0".into());
    Point {
        entity,
        signal: signal::PROCESS_EXITS.into(),
        attributes: vec![(signal::EXIT_KIND.into(), "error".into())],
        time: at,
        start_time: start,
        value: PointValue::Counter {
            value: total,
            cumulative: true,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_restarts_a_workload_whose_pods_mostly_crash_and_judges_the_restart() {
    let mut lab = Lab::start(2).await;
    let mut acting = Acting::new(&lab, ROLLOUT_RESTART_POLICY);
    let pods: Api<Pod> = Api::namespaced(lab.client.clone(), "shop");
    let mut exits = 0.0;
    for k in 1..=100 {
        // From step 41 both pods crash and are not ready, until the restart replaces them.
        let crashing = k > 40 && acting.acted.is_none();
        if crashing {
            exits += 4.0;
            for p in pods.list(&ListParams::default()).await.expect("pods").items {
                let name = p.metadata.name.clone().expect("name");
                let down =
                    json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}});
                pods.patch(&name, &PatchParams::default(), &Patch::Merge(&down))
                    .await
                    .expect("marked not ready");
            }
        }
        let points = vec![error_exits(exits, acting.at(k), acting.start)];
        if acting.step(&mut lab, k, points, !crashing).await {
            break;
        }
    }
    let d = acting.only_applied();
    assert_eq!(
        d.verdict.action,
        Action::RolloutRestart {
            workload: WorkloadRef::deployment("shop", "cart")
        }
    );
    assert!(
        d.proposal
            .reason
            .starts_with("crash loop: 2 of 2 pods not ready"),
        "{}",
        d.proposal.reason
    );
    let template = lab
        .deployment()
        .await
        .spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.annotations)
        .unwrap_or_default();
    assert!(template.contains_key(RESTARTED_AT), "{template:?}");
    assert_described(
        &lab,
        &d.id,
        &[
            "HomeostatRolloutRestarted",
            "crash loop: 2 of 2 pods not ready",
        ],
    );
    let (id, v) = acting.verified.clone().expect("judged within the window");
    assert_eq!(id, d.id);
    assert!(v.helped, "{v:?}");
    assert!(
        v.detail
            .starts_with("homeostat.process.exits{exit.kind=error} rate back under"),
        "{}",
        v.detail
    );
    lab.server.shutdown().await.expect("shutdown");
}

const ESCALATING_POLICY: &str = "apiVersion: homeostat.dev/v1alpha1
kind: Policy
metadata:
  name: shop-escalating
spec:
  mode: enforce
  actions: [scale-workload, rollout-restart]
  target:
    namespaces: [shop]
  cooldown: 10m
  maxReplicas: 12
  maxDataAge: 2m
  escalation:
    verifyWithin: 2m
    next: rollout-restart
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_that_does_not_help_escalates_once_and_then_stops() {
    let mut lab = Lab::start(2).await;
    lab.delete_hpa().await;
    let mut acting = Acting::new(&lab, ESCALATING_POLICY);
    // 40 calm steps to learn the normal, then saturation that nothing homeostat does cures.
    let mut signals = Signals::default();
    for k in 1..=110 {
        let points = signals.step(k, k > 40, acting.at(k), acting.start);
        acting.step(&mut lab, k, points, true).await;
    }
    let decisions = acting.journal.all().expect("journal");
    let applied: Vec<_> = decisions
        .iter()
        .filter(|d| matches!(d.outcome, homeostat_core::Outcome::Applied { .. }))
        .collect();
    let kinds: Vec<&str> = applied
        .iter()
        .map(|d| d.verdict.action.kind().as_str())
        .collect();
    // The scale, judged not to help within 2 minutes; then the policy's next step, once;
    // then nothing more: no loop.
    assert_eq!(
        kinds,
        ["scale-workload", "rollout-restart"],
        "{decisions:#?}"
    );
    let (scale, restart) = (applied[0], applied[1]);
    let judged = scale.verification.as_ref().expect("the scale was judged");
    assert!(!judged.helped, "{judged:?}");
    assert!(
        restart.proposal.reason.starts_with(&format!(
            "escalation: scale-workload (decision {}) did not help",
            scale.id
        )),
        "{}",
        restart.proposal.reason
    );
    assert!(
        restart.time >= judged.at,
        "the next step follows the judgement"
    );
    assert_eq!(
        restart.verification.as_ref().map(|v| v.helped),
        Some(false),
        "the restart did not help either"
    );
    // The scale that did not help is not proposed into action again: the evaluator refuses it.
    let refused = decisions.iter().find(|d| {
        d.verdict.action.kind().as_str() == "scale-workload"
            && d.verdict.rule == "escalation"
            && d.time > judged.at
    });
    let refused =
        refused.unwrap_or_else(|| panic!("no scale refused by escalation: {decisions:#?}"));
    assert!(
        refused.verdict.reason.contains("next step rollout-restart"),
        "{}",
        refused.verdict.reason
    );
    // The last step did not help: a person is told, on the workload.
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(lab.client.clone(), "shop");
    let stopped: Vec<_> = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("HomeostatEscalationStopped"))
        .collect();
    assert_eq!(stopped.len(), 1, "{stopped:#?}");
    assert_eq!(stopped[0].type_.as_deref(), Some("Warning"));
    assert_eq!(stopped[0].involved_object.name.as_deref(), Some("cart"));
    let message = stopped[0].message.clone().unwrap_or_default();
    assert!(
        message.contains(&format!(
            "rollout-restart (decision {}) did not help",
            restart.id
        )),
        "{message}"
    );
    lab.server.shutdown().await.expect("shutdown");
}
