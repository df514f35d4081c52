//! What the simulated API server does beyond storing objects, over real HTTP with
//! `kube::Client`: evictions that honour PodDisruptionBudgets, garbage collection by owner
//! references, CustomResourceDefinitions that serve new kinds, and the optimistic
//! concurrency leader election relies on.

mod support;

use std::time::Duration;
use support::server;

use futures::{StreamExt, TryStreamExt};
use homeostat_simulations::apiserver::{FaultConfig, Verb};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, DeleteParams, DynamicObject, EvictParams, ListParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use kube::core::{GroupVersionKind, Status};
use kube::{Client, Error, ResourceExt};
use serde_json::{Value, json};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The `Status` of a refusal, or what came instead.
fn refusal<T: std::fmt::Debug>(result: Result<T, Error>) -> Result<Box<Status>, String> {
    match result {
        Err(Error::Api(status)) => Ok(status),
        other => Err(format!("expected a refusal, got {other:?}")),
    }
}

/// A pod labelled `app`, Running and Ready as `ready` says (or Pending with `None`).
fn pod(name: &str, app: &str, ready: Option<bool>) -> Result<Pod, serde_json::Error> {
    let status = match ready {
        None => json!({"phase": "Pending"}),
        Some(ready) => json!({"phase": "Running", "conditions": [
            {"type": "Ready", "status": if ready { "True" } else { "False" }},
        ]}),
    };
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
        "status": status,
    }))
}

fn pdb(name: &str, app: &str, spec: Value) -> Result<PodDisruptionBudget, serde_json::Error> {
    let mut spec = spec;
    spec["selector"] = json!({"matchLabels": {"app": app}});
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec}))
}

/// `(expectedPods, currentHealthy, desiredHealthy, disruptionsAllowed)` of a budget.
async fn budget_numbers(
    api: &Api<PodDisruptionBudget>,
    name: &str,
) -> Result<(i32, i32, i32, i32), Error> {
    let status = api.get(name).await?.status.unwrap_or_default();
    Ok((
        status.expected_pods,
        status.current_healthy,
        status.desired_healthy,
        status.disruptions_allowed,
    ))
}

/// Named so that `cargo test apiserver` selects these tests too.
mod apiserver {
    use super::*;

    #[tokio::test]
    async fn evictions_honour_the_disruption_budget() -> TestResult {
        let (_server, client) = server(FaultConfig::default()).await?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
        let pp = PostParams::default();
        for name in ["web-0", "web-1", "web-2"] {
            pods.create(&pp, &pod(name, "web", Some(true))?).await?;
        }
        pods.create(&pp, &pod("web-sick", "web", Some(false))?)
            .await?;
        pods.create(&pp, &pod("web-new", "web", None)?).await?;
        budgets
            .create(&pp, &pdb("web", "web", json!({"minAvailable": 2}))?)
            .await?;
        assert_eq!(budget_numbers(&budgets, "web").await?, (5, 3, 2, 1));
        let condition = budgets.get("web").await?.status.and_then(|s| s.conditions);
        let condition = condition.as_deref().and_then(|c| c.first()).cloned();
        assert_eq!(
            condition.map(|c| (c.type_, c.status, c.reason)),
            Some((
                "DisruptionAllowed".into(),
                "True".into(),
                "SufficientPods".into()
            ))
        );

        let evicted = pods.evict("web-0", &EvictParams::default()).await?;
        assert_eq!(
            evicted.status,
            Some(kube::core::response::StatusSummary::Success)
        );
        assert!(
            pods.get_opt("web-0").await?.is_none(),
            "evicted pods are deleted"
        );
        assert_eq!(budget_numbers(&budgets, "web").await?, (4, 2, 2, 0));

        let blocked = refusal(pods.evict("web-1", &EvictParams::default()).await)?;
        assert_eq!(
            (blocked.code, blocked.reason.as_str()),
            (429, "TooManyRequests")
        );
        assert_eq!(
            blocked.message,
            "Cannot evict pod as it would violate the pod's disruption budget."
        );
        assert!(
            pods.get_opt("web-1").await?.is_some(),
            "a refused eviction deletes nothing"
        );
        // kube's Status drops `details.causes`; read them raw.
        let raw = evict_raw(&client, "web-1", json!({})).await?;
        assert_eq!(raw.0, 429);
        assert_eq!(
            raw.1["details"]["causes"],
            json!([{"reason": "DisruptionBudget",
                "message": "The disruption budget web needs 2 healthy pods and has 2 currently"}])
        );

        pods.evict("web-sick", &EvictParams::default()).await?;
        pods.evict("web-new", &EvictParams::default()).await?;
        assert!(
            pods.get_opt("web-sick").await?.is_none(),
            "unready pods are evictable"
        );
        assert!(
            pods.get_opt("web-new").await?.is_none(),
            "pending pods are evictable"
        );
        let missing = refusal(pods.evict("web-9", &EvictParams::default()).await)?;
        assert_eq!(missing.code, 404);

        let budget = refusal(pods.evict("web-1", &EvictParams::default()).await)?;
        assert_eq!(budget.code, 429, "still protected");
        budgets
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"minAvailable": null, "maxUnavailable": "50%"}})),
            )
            .await?;
        assert_eq!(
            budget_numbers(&budgets, "web").await?,
            (2, 2, 1, 1),
            "50% of 2 unavailable leaves 1 desired"
        );
        pods.evict("web-1", &EvictParams::default()).await?;
        Ok(())
    }

    /// POSTs an eviction body by hand: kube's `EvictParams` sends `delete_options`, which the
    /// real server ignores, so preconditions can only be sent this way.
    async fn evict_raw(
        client: &Client,
        name: &str,
        delete_options: Value,
    ) -> Result<(u16, Value), Box<dyn std::error::Error>> {
        let body = json!({
            "apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": name, "namespace": "default"},
            "deleteOptions": delete_options,
        });
        let url = format!("/api/v1/namespaces/default/pods/{name}/eviction");
        let request = axum::http::Request::post(url)
            .header("content-type", "application/json")
            .body(kube::client::Body::from(serde_json::to_vec(&body)?))?;
        let response = client.send(request).await?;
        let code = response.status().as_u16();
        let bytes =
            axum::body::to_bytes(axum::body::Body::new(response.into_body()), 1 << 20).await?;
        Ok((code, serde_json::from_slice(&bytes)?))
    }

    #[tokio::test]
    async fn evictions_check_preconditions_and_refuse_two_budgets() -> TestResult {
        let (_server, client) = server(FaultConfig::default()).await?;
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let budgets: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), "default");
        let pp = PostParams::default();
        let web = pods.create(&pp, &pod("web-0", "web", Some(true))?).await?;

        let (code, status) = evict_raw(
            &client,
            "web-0",
            json!({"preconditions": {"uid": "someone-else"}}),
        )
        .await?;
        assert_eq!((code, status["reason"].as_str()), (409, Some("Conflict")));
        assert!(pods.get_opt("web-0").await?.is_some());
        let (code, status) = evict_raw(
            &client,
            "web-0",
            json!({"preconditions": {"uid": web.uid(), "resourceVersion": web.resource_version()}}),
        )
        .await?;
        assert_eq!((code, status["status"].as_str()), (201, Some("Success")));
        assert!(pods.get_opt("web-0").await?.is_none());

        pods.create(&pp, &pod("web-1", "web", Some(true))?).await?;
        budgets
            .create(&pp, &pdb("one", "web", json!({"minAvailable": 0}))?)
            .await?;
        budgets
            .create(&pp, &pdb("two", "web", json!({"maxUnavailable": 1}))?)
            .await?;
        let two = refusal(pods.evict("web-1", &EvictParams::default()).await)?;
        assert_eq!((two.code, two.reason.as_str()), (500, "InternalError"));
        assert!(
            two.message.contains(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource \
                 does not support."
            ),
            "{}",
            two.message
        );
        assert!(pods.get_opt("web-1").await?.is_some());
        Ok(())
    }

    #[tokio::test]
    async fn evictions_meet_injected_faults_as_creates() -> TestResult {
        let (server, client) = server(FaultConfig {
            internal_error: 1.0,
            verbs: vec![Verb::Create],
            resources: vec!["pods".into()],
            ..FaultConfig::default()
        })
        .await?;
        server.store().create(
            &homeostat_simulations::apiserver::discovery::PODS,
            Some("default"),
            serde_json::to_value(pod("web-0", "web", Some(true))?)?,
        )?;
        let pods: Api<Pod> = Api::namespaced(client, "default");
        let refused = refusal(pods.evict("web-0", &EvictParams::default()).await)?;
        assert_eq!(refused.code, 500);
        assert!(
            pods.get_opt("web-0").await?.is_some(),
            "a refused request changes nothing"
        );
        assert_eq!(server.fault_stats().internal_errors, 1);
        Ok(())
    }

    fn owned_by<K: kube::Resource<DynamicType = ()>>(
        owner: &K,
    ) -> Result<Value, Box<dyn std::error::Error>> {
        Ok(json!([{
            "apiVersion": K::api_version(&()), "kind": K::kind(&()),
            "name": owner.meta().name.clone().ok_or("unnamed owner")?,
            "uid": owner.meta().uid.clone().ok_or("owner without uid")?,
            "controller": true,
        }]))
    }

    /// A deployment `name` owning a replica set owning two pods.
    async fn workload(
        client: &Client,
        name: &str,
    ) -> Result<(Deployment, ReplicaSet), Box<dyn std::error::Error>> {
        let pp = PostParams::default();
        let deployment: Deployment = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}}},
        }))?;
        let deployment = Api::<Deployment>::namespaced(client.clone(), "default")
            .create(&pp, &deployment)
            .await?;
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": format!("{name}-1"), "ownerReferences": owned_by(&deployment)?},
            "spec": {"selector": {"matchLabels": {"app": name}}},
        }))?;
        let rs = Api::<ReplicaSet>::namespaced(client.clone(), "default")
            .create(&pp, &rs)
            .await?;
        for i in 0..2 {
            let mut p = serde_json::to_value(pod(&format!("{name}-1-{i}"), name, Some(true))?)?;
            p["metadata"]["ownerReferences"] = owned_by(&rs)?;
            Api::<Pod>::namespaced(client.clone(), "default")
                .create(&pp, &serde_json::from_value(p)?)
                .await?;
        }
        Ok((deployment, rs))
    }

    #[tokio::test]
    async fn deleting_an_owner_collects_or_orphans_its_dependents() -> TestResult {
        let (_server, client) = server(FaultConfig::default()).await?;
        workload(&client, "web").await?;
        workload(&client, "db").await?;
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let names = |list: Vec<String>| list.join(",");
        let pod_names = || async {
            let list = pods.list(&ListParams::default()).await?;
            Ok::<_, Error>(names(list.items.iter().map(|p| p.name_any()).collect()))
        };
        assert_eq!(pod_names().await?, "db-1-0,db-1-1,web-1-0,web-1-1");

        deployments
            .delete("web", &DeleteParams::background())
            .await?;
        assert!(
            replica_sets.get_opt("web-1").await?.is_none(),
            "its replica set went"
        );
        assert_eq!(pod_names().await?, "db-1-0,db-1-1", "and that one's pods");

        deployments.delete("db", &DeleteParams::orphan()).await?;
        let rs = replica_sets.get("db-1").await?;
        assert!(rs.metadata.owner_references.is_none(), "orphaned: {rs:?}");
        assert_eq!(pod_names().await?, "db-1-0,db-1-1");
        let pod = pods.get("db-1-0").await?;
        assert_eq!(
            pod.owner_references().first().map(|r| r.name.as_str()),
            Some("db-1"),
            "grandchildren keep their own owner"
        );
        replica_sets
            .delete("db-1", &DeleteParams::foreground())
            .await?;
        assert_eq!(pod_names().await?, "");
        Ok(())
    }

    const GROUP: &str = "homeostat.dev";

    fn policy_crd(scope: &str) -> Result<CustomResourceDefinition, serde_json::Error> {
        serde_json::from_value(json!({
            "metadata": {"name": "policies.homeostat.dev"},
            "spec": {
                "group": GROUP,
                "names": {"plural": "policies", "singular": "policy", "kind": "Policy",
                          "shortNames": ["pol"]},
                "scope": scope,
                "versions": [{
                    "name": "v1alpha1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object",
                        "x-kubernetes-preserve-unknown-fields": true}},
                    "subresources": {"status": {}},
                }],
            },
        }))
    }

    #[tokio::test]
    async fn custom_resource_definitions_serve_new_kinds_until_deleted() -> TestResult {
        let (_server, client) = server(FaultConfig::default()).await?;
        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let created = crds
            .create(&PostParams::default(), &policy_crd("Namespaced")?)
            .await?;
        let conditions: Vec<(String, String)> = created
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.type_, c.status))
            .collect();
        assert_eq!(
            conditions,
            [
                ("NamesAccepted".to_owned(), "True".to_owned()),
                ("Established".to_owned(), "True".to_owned())
            ]
        );

        let gvk = GroupVersionKind::gvk(GROUP, "v1alpha1", "Policy");
        let discovery = kube::Discovery::new(client.clone()).run().await?;
        let (resource, caps) = discovery.resolve_gvk(&gvk).ok_or("Policy not discovered")?;
        assert_eq!(resource.plural, "policies");
        assert!(caps.supports_operation(kube::discovery::verbs::WATCH));
        let subresources: Vec<&str> = caps
            .subresources
            .iter()
            .map(|(r, _)| r.plural.as_str())
            .collect();
        assert_eq!(subresources, ["status"]);

        let policies: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), "default", &resource);
        let mut events = policies
            .watch(&WatchParams::default().timeout(10), "0")
            .await?
            .boxed();
        let mut policy = DynamicObject::new("calm", &resource);
        policy.data = json!({"spec": {"maxReplicas": 5}});
        let created = policies.create(&PostParams::default(), &policy).await?;
        assert_eq!(
            created.types.as_ref().map(|t| t.kind.as_str()),
            Some("Policy")
        );
        let added = tokio::time::timeout(Duration::from_secs(5), events.try_next()).await??;
        match added {
            Some(WatchEvent::Added(o)) => assert_eq!(o.name_any(), "calm"),
            other => panic!("expected ADDED calm, got {other:?}"),
        }
        let pp = PatchParams::default();
        let status = Patch::Merge(json!({"spec": {"maxReplicas": 9}, "status": {"phase": "On"}}));
        let after = policies.patch_status("calm", &pp, &status).await?;
        assert_eq!(
            (
                after.data["spec"]["maxReplicas"].clone(),
                after.data["status"]["phase"].clone()
            ),
            (json!(5), json!("On")),
            "status writes change only status"
        );
        let spec = Patch::Merge(json!({"spec": {"maxReplicas": 7}, "status": {"phase": "Off"}}));
        let after = policies.patch("calm", &pp, &spec).await?;
        assert_eq!(
            (
                after.data["spec"]["maxReplicas"].clone(),
                after.data["status"]["phase"].clone()
            ),
            (json!(7), json!("On")),
            "object writes leave status alone"
        );
        assert_eq!(policies.list(&ListParams::default()).await?.items.len(), 1);

        crds.delete("policies.homeostat.dev", &DeleteParams::default())
            .await?;
        let gone = refusal(policies.get("calm").await)?;
        assert_eq!(gone.code, 404);
        let gone = refusal(policies.list(&ListParams::default()).await)?;
        assert_eq!(gone.code, 404, "the kind is no longer served");
        let discovery = kube::Discovery::new(client.clone()).run().await?;
        assert!(!discovery.has_group(GROUP));

        crds.create(&PostParams::default(), &policy_crd("Cluster")?)
            .await?;
        let discovery = kube::Discovery::new(client.clone()).run().await?;
        let (resource, _) = discovery
            .resolve_gvk(&gvk)
            .ok_or("Policy not rediscovered")?;
        let cluster_wide: Api<DynamicObject> = Api::all_with(client, &resource);
        assert!(
            cluster_wide
                .list(&ListParams::default())
                .await?
                .items
                .is_empty(),
            "the objects went with the definition"
        );
        cluster_wide
            .create(
                &PostParams::default(),
                &DynamicObject::new("global", &resource),
            )
            .await?;
        Ok(())
    }

    #[tokio::test]
    async fn invalid_custom_resource_definitions_are_refused_field_by_field() -> TestResult {
        let (server, client) = server(FaultConfig::default()).await?;
        let body = json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "policies"},
            "spec": {"names": {"plural": "policies"}, "scope": "Namespaced",
                     "versions": [{"name": "v1", "served": true, "storage": false}]},
        });
        let url = format!(
            "{}/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            server.url()
        );
        let request = axum::http::Request::post(url)
            .header("content-type", "application/json")
            .body(kube::client::Body::from(serde_json::to_vec(&body)?))?;
        let response = client.send(request).await?;
        assert_eq!(response.status().as_u16(), 422);
        let bytes =
            axum::body::to_bytes(axum::body::Body::new(response.into_body()), 1 << 20).await?;
        let status: Value = serde_json::from_slice(&bytes)?;
        assert_eq!(status["reason"], "Invalid");
        let fields: Vec<&str> = status["details"]["causes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["field"].as_str())
            .collect();
        assert_eq!(fields, ["spec.group", "spec.names.kind", "spec.versions"]);
        assert!(
            status["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("CustomResourceDefinition.apiextensions.k8s.io \"policies\" is invalid: [spec.group: Required value")),
            "{status}"
        );

        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        let mut misnamed = policy_crd("Namespaced")?;
        misnamed.metadata.name = Some("policy.homeostat.dev".into());
        let refused = refusal(crds.create(&PostParams::default(), &misnamed).await)?;
        assert_eq!((refused.code, refused.reason.as_str()), (422, "Invalid"));
        assert!(
            refused.message.contains("metadata.name"),
            "{}",
            refused.message
        );

        crds.create(&PostParams::default(), &policy_crd("Namespaced")?)
            .await?;
        let unscoped = Patch::Merge(json!({"spec": {"scope": "Galaxy"}}));
        let refused = refusal(
            crds.patch("policies.homeostat.dev", &PatchParams::default(), &unscoped)
                .await,
        )?;
        assert_eq!(refused.code, 422, "updates are validated too");
        assert!(crds.list(&ListParams::default()).await?.items.len() == 1);
        Ok(())
    }

    fn lease(holder: &str) -> Result<Lease, serde_json::Error> {
        serde_json::from_value(json!({
            "metadata": {"name": "homeostat-leader"},
            "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15},
        }))
    }

    #[tokio::test]
    async fn exactly_one_of_two_racing_clients_takes_the_lease() -> TestResult {
        let (server, first) = server(FaultConfig::default()).await?;
        let second = server.kube_client()?;
        let a: Api<Lease> = Api::namespaced(first, "default");
        let b: Api<Lease> = Api::namespaced(second, "default");
        let pp = PostParams::default();
        let (lease_a, lease_b) = (lease("a")?, lease("b")?);
        let (ra, rb) = tokio::join!(a.create(&pp, &lease_a), b.create(&pp, &lease_b));
        let (winner, loser) = match (ra, rb) {
            (Ok(won), lost) | (lost, Ok(won)) => (won, lost),
            (ra, rb) => return Err(format!("nobody created the lease: {ra:?} {rb:?}").into()),
        };
        let lost = refusal(loser)?;
        assert_eq!((lost.code, lost.reason.as_str()), (409, "AlreadyExists"));

        // Both see the same version and try to take it over; the second write is stale.
        let seen = a.get("homeostat-leader").await?;
        assert_eq!(seen.resource_version(), winner.resource_version());
        let take = |holder: &str| {
            let mut l = seen.clone();
            if let Some(spec) = l.spec.as_mut() {
                spec.holder_identity = Some(holder.to_owned());
            }
            l
        };
        let (for_a, for_b) = (take("a2"), take("b2"));
        let (ra, rb) = tokio::join!(
            a.replace("homeostat-leader", &pp, &for_a),
            b.replace("homeostat-leader", &pp, &for_b)
        );
        let holder = match (ra, rb) {
            (Ok(l), lost) | (lost, Ok(l)) => {
                let lost = refusal(lost)?;
                assert_eq!((lost.code, lost.reason.as_str()), (409, "Conflict"));
                l.spec.and_then(|s| s.holder_identity)
            }
            (ra, rb) => return Err(format!("nobody took the lease: {ra:?} {rb:?}").into()),
        };
        let stored = a.get("homeostat-leader").await?;
        assert_eq!(stored.spec.and_then(|s| s.holder_identity), holder);
        Ok(())
    }
}
