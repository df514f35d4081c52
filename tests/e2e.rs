//! One whole pass of the loop over real protocols: the simulated cluster serves the
//! Kubernetes API on loopback, its pods send OTLP metrics over gRPC to the brain, the brain's
//! actuator patches the HPA through `kube::Client`, the journal records intent and outcome,
//! and decision spans arrive at an OTLP trace receiver.

mod support;

use homeostat_brain::{DecisionSpans, Journal};
use homeostat_core::{Mode, Outcome, VerdictKind};
use homeostat_policies::PolicySet;
use homeostat_simulations::{
    Controller, DEFAULT_POLICY, DEFAULT_SCENARIO, RunOptions, RunResult, Scenario, run,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::ListParams;
use support::trace_receiver::{Received, TraceReceiver};

const HPA_PATH: &str = "/apis/autoscaling/v2/namespaces/shop/horizontalpodautoscalers/checkout";

fn scenario() -> Scenario {
    Scenario::parse("load-spike.yaml", DEFAULT_SCENARIO).expect("the shipped scenario parses")
}

async fn run_with_homeostat(mode: Mode, receiver: &TraceReceiver, journal: &Journal) -> RunResult {
    let spans = DecisionSpans::otlp(&receiver.endpoint(), "homeostat-e2e").expect("span exporter");
    let policies = PolicySet::from_str("default.yaml", DEFAULT_POLICY).expect("default policy");
    let controller = Controller::Homeostat {
        mode,
        policies,
        spans: spans.clone(),
    };
    let result = run(
        &scenario(),
        RunOptions {
            journal: Some(journal.clone()),
            keep_cluster: true,
            ..RunOptions::new(controller)
        },
    )
    .await
    .expect("scenario runs");
    spans.shutdown().await.expect("spans flushed");
    result
}

/// Every record is a PATCH of `content_type` sent as homeostat (its field manager), accepted.
fn assert_patches_by_homeostat(
    writes: &[&homeostat_simulations::apiserver::AuditRecord],
    content_type: &str,
) {
    for w in writes {
        assert_eq!(w.method, "PATCH", "{w:?}");
        assert_eq!(w.content_type.as_deref(), Some(content_type), "{w:?}");
        assert!(
            w.query
                .as_deref()
                .unwrap_or_default()
                .contains("fieldManager=homeostat"),
            "{w:?}"
        );
        assert_eq!(w.status, 200, "{w:?}");
    }
}

fn decide_spans(spans: &[Received]) -> Vec<&Received> {
    spans
        .iter()
        .filter(|s| s.span.name == "homeostat.decide")
        .collect()
}

fn children<'a>(spans: &'a [Received], parent: &Received) -> Vec<&'a str> {
    let mut names: Vec<&str> = spans
        .iter()
        .filter(|s| {
            s.span.trace_id == parent.span.trace_id && s.span.parent_span_id == parent.span.span_id
        })
        .map(|s| s.span.name.as_str())
        .collect();
    names.sort_unstable();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_raises_min_replicas_through_the_api_journals_and_traces_it() {
    let receiver = TraceReceiver::start().await;
    let journal = Journal::temporary().expect("journal");
    let result = run_with_homeostat(Mode::Enforce, &receiver, &journal).await;

    // The HPA was changed through the HTTP API, by homeostat's server-side applies.
    let patches: Vec<_> = result
        .audit
        .iter()
        .filter(|r| r.is_write() && r.path == HPA_PATH)
        .collect();
    assert!(
        !patches.is_empty(),
        "no write to the HPA reached the API server"
    );
    assert_patches_by_homeostat(&patches, "application/apply-patch+yaml");
    let timeline = &result.workloads[0].timeline;
    let peak_min = timeline.iter().map(|p| p.hpa_min).max().unwrap_or(0);
    assert!(peak_min > 4, "minReplicas was never raised above 4");

    // The journal holds each applied decision with intent written before the outcome.
    let applied = applied(&journal);
    assert_eq!(
        applied.len(),
        patches.len(),
        "one applied decision per patch"
    );
    for d in &applied {
        assert_eq!(
            journal.history(&d.id).expect("history"),
            vec![Outcome::Pending, d.outcome.clone()],
            "intent, then outcome"
        );
        assert_eq!(d.verdict.kind, VerdictKind::Act);
        assert_eq!(d.mode, Mode::Enforce);
        assert!(
            d.plan
                .as_ref()
                .is_some_and(|p| p.patch.contains("minReplicas")),
            "{:?}",
            d.plan
        );
    }
    let first = &applied[0];
    assert!(
        first
            .anomaly
            .as_ref()
            .is_some_and(|a| a.kind.as_str() == "saturation" && a.score >= 0.999),
        "{:?}",
        first.anomaly
    );

    // Every raise was judged within its verify window, and a restore, which no anomaly
    // triggered, is not. The spike outgrew the first doubling, so the first raise did not
    // help (a second one followed while its window was open); the last raise did: the
    // latency and run-queue delay that triggered it fell back under their thresholds.
    let raises: Vec<_> = applied.iter().filter(|d| d.anomaly.is_some()).collect();
    for d in &applied {
        match (&d.anomaly, &d.verification) {
            (Some(_), Some(v)) => {
                assert!(v.at > d.time && v.at <= d.time + std::time::Duration::from_secs(300));
            }
            (None, None) => {}
            other => panic!("{}: {other:?}", d.id),
        }
    }
    let (last, earlier) = raises.split_last().expect("a raise");
    let verdict = last.verification.as_ref().expect("judged");
    assert!(verdict.helped, "{verdict:?}");
    assert!(
        verdict.detail.contains("back under the detector threshold"),
        "{}",
        verdict.detail
    );
    for d in earlier {
        let v = d.verification.as_ref().expect("judged");
        assert!(
            !v.helped && v.detail.starts_with("still anomalous after 5m"),
            "a raise followed by another within its window: {v:?}"
        );
    }
    // …and the brain counted them so.
    let mut counted = vec![("helped", 1)];
    if !earlier.is_empty() {
        counted.push(("not-helped", earlier.len()));
    }
    for (judged, count) in counted {
        let line = format!(
            "homeostat_verifications_total{{action=\"scale-hpa\",result=\"{judged}\"}} {count}"
        );
        assert!(
            result.metrics.lines().any(|l| l == line),
            "no `{line}` in:\n{}",
            result.metrics
        );
    }

    // The last applied decision stamped the HPA, read back through the API.
    let cluster = result.cluster.as_ref().expect("cluster kept");
    let hpa =
        Api::<HorizontalPodAutoscaler>::namespaced(cluster.kube_client().expect("client"), "shop")
            .get("checkout")
            .await
            .expect("hpa");
    let stamped = hpa
        .metadata
        .annotations
        .unwrap_or_default()
        .get("homeostat.dev/decision-id")
        .cloned();
    assert_eq!(stamped.as_deref(), applied.last().map(|d| d.id.0.as_str()));

    // Each applied change left a Kubernetes Event on the HPA naming its decision.
    let events = Api::<Event>::namespaced(cluster.kube_client().expect("client"), "shop")
        .list(&Default::default())
        .await
        .expect("events");
    for d in &applied {
        let found = events.items.iter().any(|e| {
            e.reason.as_deref() == Some("HomeostatScaled")
                && e.involved_object.kind.as_deref() == Some("HorizontalPodAutoscaler")
                && e.involved_object.name.as_deref() == Some("checkout")
                && e.message.as_deref().is_some_and(|m| m.contains(&d.id.0))
        });
        assert!(found, "no Event for {}", d.id);
    }

    // Each applied decision arrived as a homeostat.decide span with its children.
    let spans = receiver.spans();
    for d in &applied {
        let span = decide_spans(&spans)
            .into_iter()
            .find(|s| s.attr("homeostat.decision.id").as_deref() == Some(d.id.0.as_str()))
            .unwrap_or_else(|| panic!("no span for {}", d.id));
        assert_eq!(span.attr("k8s.namespace.name").as_deref(), Some("shop"));
        assert_eq!(
            span.attr("k8s.deployment.name").as_deref(),
            Some("checkout")
        );
        assert_eq!(span.attr("k8s.hpa.name").as_deref(), Some("checkout"));
        assert_eq!(span.attr("homeostat.verdict").as_deref(), Some("act"));
        assert_eq!(span.attr("homeostat.action").as_deref(), Some("scale-hpa"));
        assert_eq!(span.attr("homeostat.mode").as_deref(), Some("enforce"));
        assert_eq!(span.attr("homeostat.outcome").as_deref(), Some("applied"));
        assert_eq!(
            span.resource_attr("service.name").as_deref(),
            Some("homeostat-e2e")
        );
        let mut expected = vec!["homeostat.actuate", "homeostat.policy.evaluate"];
        if let Some(v) = &d.verification {
            expected.push("homeostat.verify");
            let verify = spans
                .iter()
                .find(|s| {
                    s.span.name == "homeostat.verify" && s.span.parent_span_id == span.span.span_id
                })
                .expect("the verify span");
            assert_eq!(
                verify.attr("homeostat.verification.result").as_deref(),
                Some(v.result())
            );
        }
        assert_eq!(children(&spans, span), expected);
    }
    cluster_shutdown(result).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_changes_nothing_and_still_emits_the_planned_patch() {
    let receiver = TraceReceiver::start().await;
    let journal = Journal::temporary().expect("journal");
    let result = run_with_homeostat(Mode::DryRun, &receiver, &journal).await;

    let writes: Vec<_> = result
        .audit
        .iter()
        .filter(|r| r.is_write() && r.path.contains("horizontalpodautoscalers"))
        .collect();
    assert!(
        writes.is_empty(),
        "dry-run wrote to the cluster: {writes:?}"
    );
    assert!(
        result.workloads[0].timeline.iter().all(|p| p.hpa_min == 4),
        "minReplicas moved in dry-run"
    );
    let reads = result
        .audit
        .iter()
        .filter(|r| r.method == "GET" && r.path == HPA_PATH)
        .count();
    assert!(
        reads > 0,
        "the plan is made from the HPA as read through the API"
    );

    let planned: Vec<_> = journal
        .all()
        .expect("journal")
        .into_iter()
        .filter(|d| d.outcome == Outcome::Planned)
        .collect();
    assert!(!planned.is_empty(), "dry-run planned nothing");
    let spans = receiver.spans();
    for d in &planned {
        assert_eq!(d.verdict.kind, VerdictKind::DryRun);
        let plan = d.plan.as_ref().expect("a planned decision has its plan");
        let span = decide_spans(&spans)
            .into_iter()
            .find(|s| s.attr("homeostat.decision.id").as_deref() == Some(d.id.0.as_str()))
            .unwrap_or_else(|| panic!("no span for {}", d.id));
        assert_eq!(span.attr("homeostat.verdict").as_deref(), Some("dry-run"));
        assert_eq!(span.attr("homeostat.mode").as_deref(), Some("dry-run"));
        assert_eq!(
            span.attr("homeostat.plan.patch").as_deref(),
            Some(plan.patch.as_str())
        );
        assert_eq!(
            span.attr("homeostat.plan.patch_type").as_deref(),
            Some("application/apply-patch+yaml")
        );
        assert!(plan.patch.contains("\"minReplicas\":"), "{}", plan.patch);
    }
    // The first plan doubles the 4 ready replicas, exactly as enforce would have.
    assert!(
        planned[0]
            .plan
            .as_ref()
            .is_some_and(|p| p.patch.contains("\"minReplicas\":8")),
        "{:?}",
        planned[0].plan
    );
    cluster_shutdown(result).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn homeostat_violates_the_latency_objective_less_than_the_hpa_alone() {
    let scenario = scenario();
    let policies = PolicySet::from_str("default.yaml", DEFAULT_POLICY).expect("default policy");
    let controller = Controller::Homeostat {
        mode: Mode::Enforce,
        policies,
        spans: DecisionSpans::disabled(),
    };
    let with = run(&scenario, RunOptions::new(controller))
        .await
        .expect("homeostat run");
    let without = run(&scenario, RunOptions::new(Controller::HpaOnly))
        .await
        .expect("hpa run");
    assert!(
        without.slo_violation_minutes() > 0.0,
        "the scenario must hurt the HPA alone"
    );
    assert!(
        with.slo_violation_minutes() < without.slo_violation_minutes(),
        "homeostat {} min vs HPA alone {} min",
        with.slo_violation_minutes(),
        without.slo_violation_minutes()
    );
    assert!(
        without.decisions.is_empty()
            && without
                .audit
                .iter()
                .all(|r| !r.path.contains("horizontalpodautoscalers"))
    );
}

async fn cluster_shutdown(result: RunResult) {
    if let Some(cluster) = result.cluster {
        cluster.shutdown().await.expect("cluster stops");
    }
}

/// `scenario` with homeostat enforcing the default policies, journaling into `journal`.
async fn enforce(scenario: &Scenario, journal: &Journal, keep_cluster: bool) -> RunResult {
    let policies = PolicySet::from_str("default.yaml", DEFAULT_POLICY).expect("default policy");
    run(
        scenario,
        RunOptions {
            journal: Some(journal.clone()),
            keep_cluster,
            ..RunOptions::new(Controller::Homeostat {
                mode: Mode::Enforce,
                policies,
                spans: DecisionSpans::disabled(),
            })
        },
    )
    .await
    .expect("homeostat run")
}

/// The scenario run with the HPA alone, then with homeostat enforcing (journal returned);
/// both clusters are kept for inspection when `keep_cluster`.
async fn hpa_then_homeostat(
    name: &str,
    yaml: &str,
    keep_cluster: bool,
) -> (RunResult, RunResult, Journal) {
    let scenario = Scenario::parse(name, yaml).expect("scenario parses");
    let hpa = run(
        &scenario,
        RunOptions {
            keep_cluster,
            ..RunOptions::new(Controller::HpaOnly)
        },
    )
    .await
    .expect("HPA run");
    let journal = Journal::temporary().expect("journal");
    let homeostat = enforce(&scenario, &journal, keep_cluster).await;
    (hpa, homeostat, journal)
}

/// The journal's applied decisions, oldest first.
fn applied(journal: &Journal) -> Vec<homeostat_core::Decision> {
    journal
        .all()
        .expect("journal")
        .into_iter()
        .filter(|d| matches!(d.outcome, Outcome::Applied { .. }))
        .collect()
}

const MEMORY_LEAK: &str = include_str!("../simulations/scenarios/memory-leak.yaml");

/// Pods of `cart` that the kernel OOM-killed at least once, read back through the API.
async fn oom_killed_pods(result: &RunResult) -> usize {
    let cluster = result.cluster.as_ref().expect("cluster kept");
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(
        cluster.kube_client().expect("client"),
        "shop",
    )
    .list(&Default::default())
    .await
    .expect("pods");
    pods.items
        .iter()
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .into_iter()
                .flatten()
                .any(|c| {
                    c.last_state
                        .as_ref()
                        .and_then(|s| s.terminated.as_ref())
                        .is_some_and(|t| t.reason.as_deref() == Some("OOMKilled"))
                })
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_restarts_leaking_pods_one_at_a_time_before_the_oom_killer() {
    let (hpa, homeostat, journal) = hpa_then_homeostat("memory-leak.yaml", MEMORY_LEAK, true).await;

    // Left alone, every pod is OOM-killed and the workload has moments with no pod ready.
    assert_eq!(oom_killed_pods(&hpa).await, 4);
    assert_eq!(
        hpa.workloads[0].timeline.iter().map(|p| p.ready).min(),
        Some(0)
    );
    // With homeostat, no pod ever reaches its limit, and never more than one is down.
    assert_eq!(oom_killed_pods(&homeostat).await, 0);
    assert!(
        homeostat.workloads[0]
            .timeline
            .iter()
            .all(|p| p.ready + 1 >= 4),
        "more than one pod down at once"
    );
    assert!(homeostat.slo_violation_minutes() < hpa.slo_violation_minutes());

    // Each restart was an Eviction through the API, conditional on the pod's uid.
    let evictions: Vec<_> = homeostat
        .audit
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/eviction"))
        .collect();
    assert!(evictions.len() >= 4, "{} evictions", evictions.len());
    assert!(evictions.iter().all(|r| r.status == 201), "{evictions:?}");
    let applied = applied(&journal);
    assert_eq!(applied.len(), evictions.len(), "one applied decision each");
    let mut pods: Vec<&str> = Vec::new();
    for d in &applied {
        assert_eq!(d.verdict.policy.as_deref(), Some("shop-restart-pods"));
        let plan = d.plan.as_ref().expect("plan journaled");
        assert!(plan.patch.contains("\"preconditions\""), "{}", plan.patch);
        assert!(
            d.proposal.reason.starts_with("memory leak: memory"),
            "{}",
            d.proposal.reason
        );
        pods.push(plan.target.name.as_str());
    }
    let mut distinct = pods.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        pods.len(),
        "a pod restarted twice: {pods:?}"
    );

    // The story is on the Deployment for `kubectl describe`, which selects its Events by
    // the Deployment's uid (the pods evicted are gone; the uid is read for the Event).
    let cluster = homeostat.cluster.as_ref().expect("cluster kept");
    let client = cluster.kube_client().expect("client");
    let uid = Api::<Deployment>::namespaced(client.clone(), "shop")
        .get("cart")
        .await
        .expect("deployment")
        .metadata
        .uid
        .expect("uid");
    let selected = ListParams::default().fields(&format!(
        "involvedObject.kind=Deployment,involvedObject.name=cart,involvedObject.uid={uid}"
    ));
    let events = Api::<Event>::namespaced(client, "shop")
        .list(&selected)
        .await
        .expect("events");
    let restarted = events
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("HomeostatRestarted"))
        .count();
    assert_eq!(restarted, applied.len());
    cluster_shutdown(hpa).await;
    cluster_shutdown(homeostat).await;
}

const SENSOR_OVERLOAD: &str = include_str!("../simulations/scenarios/sensor-overload.yaml");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_sensor_is_throttled_first_and_no_pod_is_added() {
    let (hpa, homeostat, journal) =
        hpa_then_homeostat("sensor-overload.yaml", SENSOR_OVERLOAD, false).await;

    // The sensor's ConfigMap was written by server-side apply as homeostat, each change told
    // by an Event, and nothing else was written.
    let events = homeostat
        .audit
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/api/v1/namespaces/homeostat-system/events")
        .count();
    let writes: Vec<_> = homeostat
        .audit
        .iter()
        .filter(|r| r.is_write() && !r.path.ends_with("/events"))
        .collect();
    assert!(!writes.is_empty());
    assert_eq!(events, writes.len());
    for w in &writes {
        assert_eq!(
            w.path, "/api/v1/namespaces/homeostat-system/configmaps/homeostat-sensor",
            "{w:?}"
        );
    }
    assert_patches_by_homeostat(&writes, "application/apply-patch+yaml");
    let applied = applied(&journal);
    assert_eq!(applied.len(), writes.len());
    let first = applied.first().expect("a throttle");
    assert_eq!(
        first.verdict.policy.as_deref(),
        Some("sensor-self-protection")
    );
    assert!(
        first
            .plan
            .as_ref()
            .is_some_and(|p| p.patch.contains("sampleEvery: 4")),
        "{:?}",
        first.plan
    );
    assert!(
        applied
            .last()
            .and_then(|d| d.plan.as_ref())
            .is_some_and(|p| p.patch.contains("sampleEvery: 1")),
        "the throttle is lifted after the overload"
    );
    // The freed CPU was all checkout missed: no replica added, fewer SLO minutes than the HPA.
    let pods = |r: &RunResult| r.workloads[0].timeline.iter().map(|p| p.pods).max();
    assert_eq!(pods(&homeostat), pods(&hpa));
    assert!(
        homeostat.slo_violation_minutes() < hpa.slo_violation_minutes(),
        "{} vs {}",
        homeostat.slo_violation_minutes(),
        hpa.slo_violation_minutes()
    );
}

const NOISY_NEIGHBOUR: &str = include_str!("../simulations/scenarios/noisy-neighbour.yaml");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_move_off_a_contended_node_and_no_pod_is_added() {
    let (hpa, homeostat, journal) =
        hpa_then_homeostat("noisy-neighbour.yaml", NOISY_NEIGHBOUR, true).await;

    // No replica was bought: minReplicas never moved, and the pods cost what the HPA's did.
    let timeline = &homeostat.workloads[0].timeline;
    assert!(timeline.iter().all(|p| p.hpa_min == 6), "minReplicas moved");
    assert!((homeostat.pod_hours() - hpa.pod_hours()).abs() < 1e-9);
    assert!(
        homeostat.slo_violation_minutes() < hpa.slo_violation_minutes() / 4.0,
        "{} vs {}",
        homeostat.slo_violation_minutes(),
        hpa.slo_violation_minutes()
    );

    // node-b was tainted, then untainted, by conditional merge patches as homeostat; the
    // pods homeostat moved were evicted through the Eviction API.
    let node_writes: Vec<_> = homeostat
        .audit
        .iter()
        .filter(|r| r.is_write() && r.path == "/api/v1/nodes/node-b")
        .collect();
    assert_eq!(node_writes.len(), 2, "{node_writes:?}");
    assert_patches_by_homeostat(&node_writes, "application/merge-patch+json");
    let evictions: Vec<_> = homeostat
        .audit
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/eviction"))
        .collect();
    assert!(
        !evictions.is_empty() && evictions.len() <= 2,
        "{evictions:?}"
    );
    assert!(evictions.iter().all(|r| r.status == 201), "{evictions:?}");

    let applied = applied(&journal);
    assert_eq!(applied.len(), node_writes.len() + evictions.len());
    let taint = &applied[0];
    assert_eq!(taint.verdict.policy.as_deref(), Some("shop-contention"));
    assert!(
        taint.proposal.reason.contains("on node-b against at most"),
        "{}",
        taint.proposal.reason
    );
    for d in &applied[1..=evictions.len()] {
        assert_eq!(d.verdict.policy.as_deref(), Some("shop-restart-pods"));
        assert!(
            d.proposal.reason.starts_with("CPU contention:"),
            "{}",
            d.proposal.reason
        );
    }
    let lifted = applied.last().expect("lifted");
    assert!(
        matches!(
            lifted.verdict.action,
            homeostat_core::Action::TaintNode { remove: true, .. }
        ),
        "{lifted:?}"
    );

    // The cluster's end state: the moved pods run elsewhere, the node carries no taint of
    // ours, and the story is in the Node's Events.
    let cluster = homeostat.cluster.as_ref().expect("cluster kept");
    let client = cluster.kube_client().expect("client");
    let pods = Api::<k8s_openapi::api::core::v1::Pod>::namespaced(client.clone(), "shop")
        .list(&Default::default())
        .await
        .expect("pods");
    let on_b = pods
        .items
        .iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some("node-b"))
        .count();
    assert_eq!(on_b, 2 - evictions.len(), "pods left on node-b");
    let node = Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .get("node-b")
        .await
        .expect("node");
    assert!(
        node.spec
            .and_then(|s| s.taints)
            .unwrap_or_default()
            .is_empty(),
        "taint left behind"
    );
    let events = Api::<Event>::namespaced(client, "default")
        .list(&Default::default())
        .await
        .expect("events");
    // Events have generated names, so the list is not in time order: sort by when.
    let mut on_node: Vec<_> = events
        .items
        .iter()
        .filter(|e| {
            e.involved_object.kind.as_deref() == Some("Node")
                && e.involved_object.name.as_deref() == Some("node-b")
        })
        .map(|e| (e.first_timestamp.as_ref().map(|t| t.0), e.reason.as_deref()))
        .collect();
    on_node.sort();
    let reasons: Vec<_> = on_node.into_iter().map(|(_, r)| r).collect();
    assert_eq!(
        reasons,
        [Some("HomeostatTainted"), Some("HomeostatUntainted")]
    );
    cluster_shutdown(hpa).await;
    cluster_shutdown(homeostat).await;
}
