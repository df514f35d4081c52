//! Fault injection in the simulated API server, seen over real HTTP by `kube::Client`, as the
//! actuators would see it.

mod support;

use std::time::{Duration, Instant};
use support::server;

use futures::{StreamExt, TryStreamExt};
use homeostat_simulations::apiserver::{FaultConfig, FaultStats, Verb};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Api, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Client, Error, ResourceExt};
use serde_json::json;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const HPA_PATH: &str = "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers";

fn hpa(name: &str) -> Result<HorizontalPodAutoscaler, serde_json::Error> {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": 1,
            "maxReplicas": 10,
        },
    }))
}

fn deployment(name: &str) -> Result<Deployment, serde_json::Error> {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": "nginx"}]},
            },
        },
    }))
}

/// The HTTP code of an answer as kube reports it: 200 for success.
fn code<T>(result: &Result<T, Error>) -> Option<u16> {
    match result {
        Ok(_) => Some(200),
        Err(Error::Api(status)) => Some(status.code),
        Err(_) => None,
    }
}

fn min_replicas(hpa: &HorizontalPodAutoscaler) -> Option<i32> {
    hpa.spec.as_ref().and_then(|s| s.min_replicas)
}

/// Sends a raw GET and returns the status code, `Retry-After` and body.
async fn raw_get(
    client: &Client,
    path: &str,
) -> Result<(u16, Option<String>, serde_json::Value), Box<dyn std::error::Error>> {
    let request = axum::http::Request::get(path).body(kube::client::Body::empty())?;
    let response = client.send(request).await?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(axum::http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.into_body().collect_bytes().await?;
    Ok((status, retry_after, serde_json::from_slice(&body)?))
}

#[tokio::test]
async fn conflicts_refuse_writes_without_changing_anything() -> TestResult {
    let (server, client) = server(FaultConfig::default()).await?;
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client, "default");
    let created = api.create(&PostParams::default(), &hpa("web")?).await?;

    server.set_faults(FaultConfig {
        conflict: 1.0,
        ..FaultConfig::default()
    });
    let merge = Patch::Merge(json!({"spec": {"minReplicas": 3}}));
    match api.patch("web", &PatchParams::default(), &merge).await {
        Err(Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
            assert!(
                status
                    .message
                    .contains("horizontalpodautoscalers.autoscaling \"web\"")
                    && status.message.contains("the object has been modified"),
                "{}",
                status.message
            );
        }
        other => panic!("expected a 409 Conflict, got {other:?}"),
    }
    let mut replaced = created.clone();
    replaced.spec.as_mut().ok_or("no spec")?.min_replicas = Some(4);
    assert_eq!(
        code(&api.replace("web", &PostParams::default(), &replaced).await),
        Some(409)
    );
    assert_eq!(
        code(&api.create(&PostParams::default(), &hpa("db")?).await),
        Some(409)
    );

    let read = api.get("web").await?;
    assert_eq!(
        min_replicas(&read),
        Some(1),
        "the refused writes changed nothing"
    );
    assert_eq!(read.resource_version(), created.resource_version());
    assert_eq!(
        code(&api.get("db").await),
        Some(404),
        "the refused create created nothing"
    );
    assert_eq!(
        server.fault_stats(),
        FaultStats {
            conflicts: 3,
            ..FaultStats::default()
        }
    );
    let statuses: Vec<(String, u16)> = server
        .audit()
        .iter()
        .map(|r| (r.method.clone(), r.status))
        .collect();
    assert_eq!(
        statuses[1..4],
        [("PATCH", 409), ("PUT", 409), ("POST", 409)].map(|(m, s)| (m.to_owned(), s)),
        "the audit log records the injected answers: {statuses:?}"
    );

    server.set_faults(FaultConfig::default());
    assert_eq!(server.faults(), FaultConfig::default());
    let patched = api.patch("web", &PatchParams::default(), &merge).await?;
    assert_eq!(
        min_replicas(&patched),
        Some(3),
        "faults off, writes go through"
    );
    Ok(())
}

#[tokio::test]
async fn throttling_answers_429_with_retry_after() -> TestResult {
    let (server, client) = server(FaultConfig {
        too_many_requests: 1.0,
        retry_after: Duration::from_millis(2500),
        ..FaultConfig::default()
    })
    .await?;
    let (status, retry_after, body) = raw_get(&client, &format!("{HPA_PATH}/web")).await?;
    assert_eq!(status, 429);
    assert_eq!(
        retry_after.as_deref(),
        Some("3"),
        "whole seconds, rounded up"
    );
    assert_eq!(body["reason"], "TooManyRequests");
    assert_eq!(body["details"]["retryAfterSeconds"], 3);

    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "default");
    match api.create(&PostParams::default(), &hpa("web")?).await {
        Err(Error::Api(status)) => {
            assert_eq!(
                (status.code, status.reason.as_str()),
                (429, "TooManyRequests")
            );
            let retry = status.details.map(|d| d.retry_after_seconds);
            assert_eq!(retry, Some(3));
        }
        other => panic!("expected a 429, got {other:?}"),
    }
    assert_eq!(server.fault_stats().too_many_requests, 2);

    server.set_faults(FaultConfig::default());
    api.create(&PostParams::default(), &hpa("web")?).await?;
    let (status, retry_after, _) = raw_get(&client, &format!("{HPA_PATH}/web")).await?;
    assert_eq!((status, retry_after), (200, None));
    Ok(())
}

#[tokio::test]
async fn kube_default_client_rides_out_throttling() -> TestResult {
    let (server, _) = server(FaultConfig {
        seed: 3,
        too_many_requests: 0.5,
        retry_after: Duration::ZERO,
        ..FaultConfig::default()
    })
    .await?;
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(server.kube_client()?, "default");
    api.create(&PostParams::default(), &hpa("web")?).await?;
    for _ in 0..10 {
        api.get("web").await?;
    }
    let throttled = server.audit().iter().filter(|r| r.status == 429).count();
    assert!(throttled > 0, "some requests were throttled and retried");
    assert_eq!(server.fault_stats().too_many_requests, throttled as u64);
    assert_eq!(server.audit().len(), 11 + throttled);
    Ok(())
}

#[tokio::test]
async fn internal_errors_answer_500() -> TestResult {
    let (server, client) = server(FaultConfig {
        internal_error: 1.0,
        ..FaultConfig::default()
    })
    .await?;
    let (status, _, body) = raw_get(&client, HPA_PATH).await?;
    assert_eq!(
        (status, body["reason"].as_str()),
        (500, Some("InternalError"))
    );
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client, "default");
    match api.create(&PostParams::default(), &hpa("web")?).await {
        Err(Error::Api(status)) => {
            assert_eq!(
                (status.code, status.reason.as_str()),
                (500, "InternalError")
            );
        }
        other => panic!("expected a 500, got {other:?}"),
    }
    server.set_faults(FaultConfig::default());
    assert_eq!(
        code(&api.get("web").await),
        Some(404),
        "the refused create created nothing"
    );
    assert_eq!(server.fault_stats().internal_errors, 2);
    assert_eq!(
        server.audit().iter().map(|r| r.status).collect::<Vec<_>>(),
        [500, 500, 404]
    );
    Ok(())
}

#[tokio::test]
async fn slow_answers_come_late() -> TestResult {
    let (server, client) = server(FaultConfig {
        slow: 1.0,
        slow_delay: Duration::from_millis(300),
        ..FaultConfig::default()
    })
    .await?;
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client, "default");
    let started = Instant::now();
    assert_eq!(
        code(&api.get("web").await),
        Some(404),
        "late, and otherwise unchanged"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        server.fault_stats(),
        FaultStats {
            slow_answers: 1,
            ..FaultStats::default()
        }
    );

    server.set_faults(FaultConfig::default());
    let started = Instant::now();
    api.list(&Default::default()).await?;
    assert!(started.elapsed() < Duration::from_millis(300));
    Ok(())
}

#[tokio::test]
async fn a_write_slow_after_it_is_made_lands_though_its_client_gave_up() -> TestResult {
    let (server, client) = server(FaultConfig::default()).await?;
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &hpa("web")?).await?;
    server.set_faults(FaultConfig {
        slow: 1.0,
        slow_delay: Duration::from_secs(5),
        slow_after_write: true,
        verbs: vec![Verb::Patch],
        ..FaultConfig::default()
    });
    let patch = Patch::Merge(json!({"spec": {"minReplicas": 7}}));
    let gave_up = tokio::time::timeout(
        Duration::from_millis(300),
        api.patch("web", &PatchParams::default(), &patch),
    )
    .await;
    assert!(gave_up.is_err(), "the answer is late");
    let started = Instant::now();
    let stored = api.get("web").await?;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "reads are not slowed"
    );
    assert_eq!(
        stored.spec.and_then(|s| s.min_replicas),
        Some(7),
        "yet it landed"
    );
    Ok(())
}

#[tokio::test]
async fn dropped_watches_resume_without_loss_or_duplication() -> TestResult {
    let (server, client) = server(FaultConfig::default()).await?;
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client, "default");
    for name in ["a", "b", "c"] {
        api.create(&PostParams::default(), &hpa(name)?).await?;
    }
    server.set_faults(FaultConfig {
        watch_drop: 1.0,
        ..FaultConfig::default()
    });

    let pp = PatchParams::default();
    let wp = WatchParams::default().timeout(10);
    let mut seen: Vec<(String, String, Option<i32>)> = Vec::new();
    let mut last = "0".to_owned();
    let mut streams = 0;
    while seen.len() < 6 {
        streams += 1;
        assert!(streams <= 6, "every stream carries one event: {seen:?}");
        // Changes made while no watch is open must still arrive, from the history.
        if seen.len() == 3 {
            api.patch("a", &pp, &Patch::Merge(json!({"spec": {"minReplicas": 2}})))
                .await?;
        }
        let mut events = api.watch(&wp, &last).await?.boxed();
        if seen.len() == 4 {
            api.patch("b", &pp, &Patch::Merge(json!({"spec": {"minReplicas": 3}})))
                .await?;
        }
        if seen.len() == 5 {
            api.patch("c", &pp, &Patch::Merge(json!({"spec": {"minReplicas": 4}})))
                .await?;
        }
        let next = tokio::time::timeout(Duration::from_secs(5), events.try_next()).await??;
        let (kind, object) = match next {
            Some(WatchEvent::Added(o)) => ("ADDED", o),
            Some(WatchEvent::Modified(o)) => ("MODIFIED", o),
            other => panic!("expected an event, got {other:?}"),
        };
        last = object.resource_version().ok_or("no resourceVersion")?;
        seen.push((kind.to_owned(), object.name_any(), min_replicas(&object)));
        let after = tokio::time::timeout(Duration::from_secs(5), events.try_next()).await??;
        assert!(
            after.is_none(),
            "the stream ends after its first event: {after:?}"
        );
    }
    let expected = [
        ("ADDED", "a", 1),
        ("ADDED", "b", 1),
        ("ADDED", "c", 1),
        ("MODIFIED", "a", 2),
        ("MODIFIED", "b", 3),
        ("MODIFIED", "c", 4),
    ]
    .map(|(k, n, m)| (k.to_owned(), n.to_owned(), Some(m)));
    assert_eq!(seen, expected);
    assert_eq!(server.fault_stats().dropped_watches, 6);

    server.set_faults(FaultConfig::default());
    let mut events = api
        .watch(&WatchParams::default().timeout(1), &last)
        .await?
        .boxed();
    api.patch("a", &pp, &Patch::Merge(json!({"spec": {"minReplicas": 5}})))
        .await?;
    api.patch("b", &pp, &Patch::Merge(json!({"spec": {"minReplicas": 6}})))
        .await?;
    let mut kept = 0;
    while let Some(event) =
        tokio::time::timeout(Duration::from_secs(5), events.try_next()).await??
    {
        assert!(matches!(event, WatchEvent::Modified(_)), "{event:?}");
        kept += 1;
    }
    assert_eq!(
        kept, 2,
        "without faults one stream carries every change until its timeout"
    );
    assert_eq!(server.fault_stats().dropped_watches, 6);
    Ok(())
}

/// The codes 200 mixed reads and writes meet under `faults`.
async fn fault_sequence(
    faults: FaultConfig,
) -> Result<(Vec<u16>, FaultStats), Box<dyn std::error::Error>> {
    let (server, client) = server(FaultConfig::default()).await?;
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client, "default");
    api.create(&PostParams::default(), &hpa("web")?).await?;
    server.set_faults(faults);
    let mut codes = Vec::new();
    for i in 0..200 {
        let answer = if i % 2 == 0 {
            code(&api.get("web").await)
        } else {
            let merge = Patch::Merge(json!({"spec": {"minReplicas": i % 7 + 1}}));
            code(&api.patch("web", &PatchParams::default(), &merge).await)
        };
        codes.push(answer.ok_or("not an API answer")?);
    }
    Ok((codes, server.fault_stats()))
}

#[tokio::test]
async fn the_same_seed_replays_the_same_faults() -> TestResult {
    let faults = |seed| FaultConfig {
        seed,
        conflict: 0.3,
        too_many_requests: 0.3,
        internal_error: 0.3,
        ..FaultConfig::default()
    };
    let (first, stats) = fault_sequence(faults(7)).await?;
    let (again, stats_again) = fault_sequence(faults(7)).await?;
    let (other, _) = fault_sequence(faults(8)).await?;
    assert_eq!(first, again);
    assert_eq!(stats, stats_again);
    assert_ne!(first, other, "another seed, other faults");

    let count = |code: u16| first.iter().filter(|c| **c == code).count() as u64;
    assert_eq!(
        stats,
        FaultStats {
            conflicts: count(409),
            too_many_requests: count(429),
            internal_errors: count(500),
            ..FaultStats::default()
        },
        "the counts are what the client saw"
    );
    let reads = || first.iter().step_by(2);
    assert!(reads().all(|c| *c != 409), "reads never conflict");
    // Each kind has probability 0.3 (conflicts: of the 100 writes only).
    assert!((15..=45).contains(&count(409)), "{first:?}");
    assert!((30..=90).contains(&count(429)), "{first:?}");
    assert!((30..=90).contains(&count(500)), "{first:?}");
    assert!(count(200) > 0, "{first:?}");
    Ok(())
}

#[tokio::test]
async fn filters_confine_faults_to_verbs_and_resources() -> TestResult {
    let (server, client) = server(FaultConfig::default()).await?;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "default");
    let deployments: Api<Deployment> = Api::namespaced(client, "default");
    hpas.create(&PostParams::default(), &hpa("web")?).await?;
    deployments
        .create(&PostParams::default(), &deployment("web")?)
        .await?;
    server.set_faults(FaultConfig {
        internal_error: 1.0,
        verbs: Verb::WRITES.to_vec(),
        resources: vec!["horizontalpodautoscalers".into()],
        ..FaultConfig::default()
    });
    let merge = Patch::Merge(json!({"spec": {"minReplicas": 2}}));
    let pp = PatchParams::default();
    assert_eq!(code(&hpas.get("web").await), Some(200));
    assert_eq!(code(&hpas.patch("web", &pp, &merge).await), Some(500));
    assert_eq!(
        code(&hpas.patch_status("web", &pp, &merge).await),
        Some(500),
        "subresources too"
    );
    let scale = Patch::Merge(json!({"spec": {"replicas": 2}}));
    assert_eq!(
        code(&deployments.patch("web", &pp, &scale).await),
        Some(200)
    );
    assert_eq!(server.fault_stats().internal_errors, 2);
    Ok(())
}

#[test]
fn fault_config_reads_from_scenario_yaml() -> TestResult {
    let config: FaultConfig = yaml_serde::from_str(
        "seed: 9\nconflict: 0.1\ntooManyRequests: 0.05\nretryAfter: 2s\ninternalError: 0.01\n\
         slow: 0.2\nslowDelay: 1500ms\nslowAfterWrite: true\nwatchDrop: 1\nverbs: [patch, update]\n\
         resources: [horizontalpodautoscalers]\n",
    )?;
    assert_eq!(
        config,
        FaultConfig {
            seed: 9,
            conflict: 0.1,
            too_many_requests: 0.05,
            retry_after: Duration::from_secs(2),
            internal_error: 0.01,
            slow: 0.2,
            slow_delay: Duration::from_millis(1500),
            slow_after_write: true,
            watch_drop: 1.0,
            verbs: vec![Verb::Patch, Verb::Update],
            resources: vec!["horizontalpodautoscalers".into()],
        }
    );
    assert_eq!(
        yaml_serde::from_str::<FaultConfig>("{}")?,
        FaultConfig::default()
    );
    for (bad, says) in [
        ("conflict: 30", "between 0 and 1"),
        ("slowDelay: soon", "invalid duration"),
        ("resources: [hpa]", "unknown resource \"hpa\""),
        ("verbs: [escalate]", "unknown variant"),
        ("conflicts: 0.1", "unknown field"),
    ] {
        let err = yaml_serde::from_str::<FaultConfig>(bad)
            .err()
            .ok_or(format!("{bad} was accepted"))?;
        assert!(err.to_string().contains(says), "{bad}: {err}");
    }
    Ok(())
}
