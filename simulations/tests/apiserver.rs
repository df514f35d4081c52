//! The simulated API server driven over real HTTP by `kube::Client`, as the actuators drive it.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use homeostat_core::clock::{ManualClock, Timestamp};
use homeostat_simulations::apiserver::{ApiServer, ApiServerHandle, DEFAULT_ADDR, ObjectStore};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::{Client, Error, ResourceExt};
use serde_json::{Value, json};

type TestResult = Result<(), Box<dyn std::error::Error>>;

async fn server() -> Result<(ApiServerHandle, Client), Box<dyn std::error::Error>> {
    let clock = ManualClock::new(Timestamp::from_secs(1_700_000_000));
    let handle = ApiServer::start(ObjectStore::new(Arc::new(clock)), DEFAULT_ADDR).await?;
    let client = handle.kube_client()?;
    Ok((handle, client))
}

fn deployment(name: &str, replicas: i32) -> Result<Deployment, serde_json::Error> {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name, "tier": "back"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": name, "image": "nginx"}]},
            },
        },
    }))
}

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

/// The HTTP code of a `kube::Error::Api`, or `None` for any other outcome.
fn api_code<T: std::fmt::Debug>(result: Result<T, Error>) -> Option<(u16, String)> {
    match result {
        Err(Error::Api(status)) => Some((status.code, status.reason.clone())),
        other => {
            eprintln!("not an API error: {other:?}");
            None
        }
    }
}

/// Named so that `cargo test apiserver` selects these tests too.
mod apiserver {
    use super::*;

    #[tokio::test]
    async fn deployments_create_get_list_with_selectors_and_delete() -> TestResult {
        let (server, client) = server().await?;
        let api: Api<Deployment> = Api::namespaced(client, "default");
        let pp = PostParams::default();
        let web = api.create(&pp, &deployment("web", 2)?).await?;
        api.create(&pp, &deployment("db", 1)?).await?;
        assert_eq!(web.metadata.generation, Some(1));
        assert!(web.metadata.uid.is_some());
        assert_eq!(
            web.metadata.creation_timestamp.map(|t| t.0.to_string()),
            Some("2023-11-14T22:13:20Z".to_owned()),
            "creation time comes from the store's clock"
        );

        let got = api.get("web").await?;
        assert_eq!(got.spec.as_ref().and_then(|s| s.replicas), Some(2));
        assert_eq!(got.metadata.resource_version, web.metadata.resource_version);

        let names = |list: kube::core::ObjectList<Deployment>| {
            list.items.iter().map(|d| d.name_any()).collect::<Vec<_>>()
        };
        assert_eq!(
            names(api.list(&ListParams::default()).await?),
            ["db", "web"]
        );
        let lp = ListParams::default().labels("app=web");
        assert_eq!(names(api.list(&lp).await?), ["web"]);
        let lp = ListParams::default().labels("app in (db,cache),tier");
        assert_eq!(names(api.list(&lp).await?), ["db"]);
        let lp = ListParams::default().labels("app=none");
        assert!(api.list(&lp).await?.items.is_empty());
        let lp = ListParams::default().labels("app!=web,!zone");
        assert_eq!(names(api.list(&lp).await?), ["db"]);
        let lp = ListParams::default().fields("metadata.name=web");
        assert_eq!(names(api.list(&lp).await?), ["web"]);

        let gone = api.delete("web", &DeleteParams::default()).await?;
        assert_eq!(gone.left().map(|d| d.name_any()), Some("web".to_owned()));
        assert_eq!(
            api_code(api.get("web").await),
            Some((404, "NotFound".into()))
        );
        server.shutdown().await?;
        Ok(())
    }

    #[tokio::test]
    async fn duplicates_and_stale_writes_conflict() -> TestResult {
        let (_server, client) = server().await?;
        let api: Api<Deployment> = Api::namespaced(client, "default");
        let pp = PostParams::default();
        let first = api.create(&pp, &deployment("web", 1)?).await?;
        assert_eq!(
            api_code(api.create(&pp, &deployment("web", 1)?).await),
            Some((409, "AlreadyExists".into()))
        );

        let mut fresh = first.clone();
        if let Some(spec) = fresh.spec.as_mut() {
            spec.replicas = Some(4);
        }
        let replaced = api.replace("web", &pp, &fresh).await?;
        assert_eq!(replaced.spec.as_ref().and_then(|s| s.replicas), Some(4));
        assert_eq!(replaced.metadata.generation, Some(2));

        let mut stale = first;
        if let Some(spec) = stale.spec.as_mut() {
            spec.replicas = Some(7);
        }
        assert_eq!(
            api_code(api.replace("web", &pp, &stale).await),
            Some((409, "Conflict".into()))
        );
        assert_eq!(
            api.get("web").await?.spec.as_ref().and_then(|s| s.replicas),
            Some(4)
        );
        Ok(())
    }

    #[tokio::test]
    async fn hpa_merge_and_json_patches() -> TestResult {
        let (_server, client) = server().await?;
        let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "default");
        api.create(&PostParams::default(), &hpa("web")?).await?;
        let pp = PatchParams::default();

        let merge = Patch::Merge(json!({"spec": {"minReplicas": 3}}));
        let merged = api.patch("web", &pp, &merge).await?;
        assert_eq!(merged.spec.as_ref().and_then(|s| s.min_replicas), Some(3));
        assert_eq!(
            api.get("web")
                .await?
                .spec
                .as_ref()
                .and_then(|s| s.min_replicas),
            Some(3)
        );

        let ops = json!([
            {"op": "test", "path": "/spec/minReplicas", "value": 3},
            {"op": "replace", "path": "/spec/minReplicas", "value": 5},
        ]);
        let patched = json_patch_hpa(&client, "web", &ops).await?;
        assert_eq!(patched.spec.as_ref().and_then(|s| s.min_replicas), Some(5));
        let read = api.get("web").await?;
        assert_eq!(read.spec.as_ref().and_then(|s| s.min_replicas), Some(5));
        assert_eq!(read.spec.as_ref().map(|s| s.max_replicas), Some(10));
        assert_eq!(read.metadata.generation, Some(3));

        let failing = json!([{"op": "test", "path": "/spec/minReplicas", "value": 1}]);
        assert_eq!(
            api_code(json_patch_hpa(&client, "web", &failing).await),
            Some((422, "Invalid".into()))
        );
        let bad_path = json!([{"op": "replace", "path": "/spec/nope/deeper", "value": 1}]);
        assert_eq!(
            api_code(json_patch_hpa(&client, "web", &bad_path).await),
            Some((422, "Invalid".into()))
        );
        Ok(())
    }

    /// Sends an RFC 6902 patch through the kube client. kube's `Patch::Json` needs its
    /// `jsonpatch` feature, which the workspace does not enable, so the request is built by hand.
    async fn json_patch_hpa(
        client: &Client,
        name: &str,
        ops: &Value,
    ) -> Result<HorizontalPodAutoscaler, Error> {
        let path =
            format!("/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/{name}");
        let request = axum::http::Request::patch(path)
            .header("content-type", "application/json-patch+json")
            .body(serde_json::to_vec(ops).map_err(Error::SerdeError)?)
            .map_err(Error::HttpError)?;
        client.request(request).await
    }

    #[tokio::test]
    async fn status_subresource_is_separate_from_spec() -> TestResult {
        let (_server, client) = server().await?;
        let api: Api<HorizontalPodAutoscaler> = Api::namespaced(client, "default");
        api.create(&PostParams::default(), &hpa("web")?).await?;
        let pp = PatchParams::default();
        let status = Patch::Merge(json!({
            "spec": {"minReplicas": 9},
            "status": {"currentReplicas": 4, "desiredReplicas": 6},
        }));
        let after = api.patch_status("web", &pp, &status).await?;
        let got = after
            .status
            .as_ref()
            .map(|s| (s.current_replicas, s.desired_replicas));
        assert_eq!(got, Some((Some(4), 6)));
        assert_eq!(
            after.spec.as_ref().and_then(|s| s.min_replicas),
            Some(1),
            "status writes leave spec alone"
        );
        assert_eq!(after.metadata.generation, Some(1));

        let main = Patch::Merge(json!({"status": {"desiredReplicas": 1}}));
        let after = api.patch("web", &pp, &main).await?;
        assert_eq!(after.status.map(|s| s.desired_replicas), Some(6));
        Ok(())
    }

    #[tokio::test]
    async fn scale_subresource_sets_deployment_replicas() -> TestResult {
        let (server, client) = server().await?;
        let api: Api<Deployment> = Api::namespaced(client, "default");
        api.create(&PostParams::default(), &deployment("web", 2)?)
            .await?;
        let scale = api.get_scale("web").await?;
        assert_eq!(scale.spec.as_ref().and_then(|s| s.replicas), Some(2));
        assert_eq!(
            scale.status.as_ref().and_then(|s| s.selector.clone()),
            Some("app=web".to_owned())
        );

        let patch = Patch::Merge(json!({"spec": {"replicas": 5}}));
        let scaled = api
            .patch_scale("web", &PatchParams::default(), &patch)
            .await?;
        assert_eq!(scaled.spec.and_then(|s| s.replicas), Some(5));
        assert_eq!(
            api.get_scale("web").await?.spec.and_then(|s| s.replicas),
            Some(5)
        );
        let d = api.get("web").await?;
        assert_eq!(
            (
                d.spec.as_ref().and_then(|s| s.replicas),
                d.metadata.generation
            ),
            (Some(5), Some(2))
        );

        server.store().modify(
            &homeostat_simulations::apiserver::discovery::DEPLOYMENTS,
            Some("default"),
            "web",
            |d| d["status"]["replicas"] = 5.into(),
        )?;
        let status = api.get_scale("web").await?.status.map(|s| s.replicas);
        assert_eq!(
            status,
            Some(5),
            "in-process status writes show through the API"
        );
        Ok(())
    }

    #[tokio::test]
    async fn watch_from_a_version_sees_only_later_changes() -> TestResult {
        let (_server, client) = server().await?;
        let api: Api<Deployment> = Api::namespaced(client, "default");
        api.create(&PostParams::default(), &deployment("web", 1)?)
            .await?;
        let pp = PatchParams::default();
        let before = api
            .patch("web", &pp, &Patch::Merge(json!({"spec": {"replicas": 2}})))
            .await?;
        let rv = before.resource_version().ok_or("no resourceVersion")?;

        let wp = WatchParams::default().timeout(10);
        let mut events = api.watch(&wp, &rv).await?.boxed();
        api.patch("web", &pp, &Patch::Merge(json!({"spec": {"replicas": 3}})))
            .await?;
        let first = tokio::time::timeout(Duration::from_secs(5), events.try_next()).await??;
        match first {
            Some(WatchEvent::Modified(d)) => {
                assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(3));
                assert!(d.resource_version() > Some(rv));
            }
            other => panic!("expected MODIFIED with 3 replicas, got {other:?}"),
        }

        let wp = WatchParams::default().labels("app=web").timeout(1);
        let mut from_start = api.watch(&wp, "0").await?.boxed();
        let added = tokio::time::timeout(Duration::from_secs(5), from_start.try_next()).await??;
        assert!(matches!(added, Some(WatchEvent::Added(_))), "{added:?}");
        let ended = tokio::time::timeout(Duration::from_secs(5), from_start.try_next()).await??;
        assert!(ended.is_none(), "timeoutSeconds ends the stream: {ended:?}");
        Ok(())
    }

    #[tokio::test]
    async fn namespaces_pods_and_server_side_apply() -> TestResult {
        let (_server, client) = server().await?;
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "shop"}}))?;
        namespaces.create(&PostParams::default(), &ns).await?;
        let names: Vec<String> = namespaces
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .map(|n| n.name_any())
            .collect();
        assert_eq!(names, ["default", "shop"]);

        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"generateName": "web-", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]},
        }))?;
        let created = Api::<Pod>::namespaced(client.clone(), "shop")
            .create(&PostParams::default(), &pod)
            .await?;
        assert!(created.name_any().starts_with("web-"));
        let missing = Api::<Pod>::namespaced(client.clone(), "nowhere")
            .create(&PostParams::default(), &pod)
            .await;
        assert_eq!(api_code(missing), Some((404, "NotFound".into())));
        let all_pods = Api::<Pod>::all(client.clone())
            .list(&ListParams::default())
            .await?;
        assert_eq!(all_pods.items.len(), 1);

        let cms: Api<ConfigMap> = Api::namespaced(client, "shop");
        let ssa = PatchParams::apply("homeostat");
        let config = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "tuning"}, "data": {"a": "1"},
        });
        let applied = cms.patch("tuning", &ssa, &Patch::Apply(&config)).await?;
        assert_eq!(
            applied.data.and_then(|d| d.get("a").cloned()),
            Some("1".into())
        );
        let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"b": "2"}});
        let applied = cms.patch("tuning", &ssa, &Patch::Apply(&config)).await?;
        let managers: Vec<_> = applied
            .managed_fields()
            .iter()
            .filter_map(|m| m.manager.clone())
            .collect();
        assert_eq!(managers, ["homeostat"]);
        assert_eq!(applied.data.map(|d| d.len()), Some(2));
        Ok(())
    }

    #[tokio::test]
    async fn malformed_requests_get_status_errors() -> TestResult {
        let (server, client) = server().await?;
        let post = |path: &str, content_type: &str, body: &str| {
            axum::http::Request::post(format!("{}{path}", server.url()))
                .header("content-type", content_type)
                .body(body.as_bytes().to_vec())
        };
        let bad_json = post(
            "/apis/apps/v1/namespaces/default/deployments",
            "application/json",
            "{\"metadata\": ",
        )?;
        let result = client.request_text(bad_json).await;
        assert_eq!(api_code(result), Some((400, "BadRequest".into())));

        let unknown = post(
            "/apis/apps/v1/namespaces/default/widgets",
            "application/json",
            "{}",
        )?;
        assert_eq!(
            api_code(client.request_text(unknown).await),
            Some((404, "NotFound".into()))
        );

        let bad_selector = axum::http::Request::get(format!(
            "{}/api/v1/namespaces/default/pods?labelSelector=app%20in%20(web",
            server.url()
        ))
        .body(Vec::new())?;
        assert_eq!(
            api_code(client.request_text(bad_selector).await),
            Some((400, "BadRequest".into()))
        );
        Ok(())
    }

    #[tokio::test]
    async fn kubeconfig_and_discovery_work_for_kube() -> TestResult {
        let (server, _) = server().await?;
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("kubeconfig");
        server.write_kubeconfig(&path)?;
        let kubeconfig = kube::config::Kubeconfig::read_from(&path)?;
        assert_eq!(kubeconfig.current_context.as_deref(), Some("homeostat-sim"));
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
        let client = Client::try_from(config)?;

        let version = client.apiserver_version().await?;
        assert_eq!(
            (version.major.as_str(), version.minor.as_str()),
            ("1", "33")
        );

        let discovery = kube::Discovery::new(client).run().await?;
        let (deploy, caps) = discovery
            .resolve_gvk(&kube::core::GroupVersionKind::gvk(
                "apps",
                "v1",
                "Deployment",
            ))
            .ok_or("deployments not discovered")?;
        assert_eq!(deploy.plural, "deployments");
        assert!(caps.supports_operation(kube::discovery::verbs::WATCH));
        let subresources: Vec<&str> = caps
            .subresources
            .iter()
            .map(|(r, _)| r.plural.as_str())
            .collect();
        assert!(subresources.contains(&"scale"), "{subresources:?}");
        let hpa = discovery.resolve_gvk(&kube::core::GroupVersionKind::gvk(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
        ));
        assert!(hpa.is_some());
        let raw: Value = yaml_serde::from_str(&std::fs::read_to_string(&path)?)?;
        assert_eq!(raw["clusters"][0]["cluster"]["server"], server.url());
        Ok(())
    }
}

/// A real kubectl against the server: `scripts/install-tools` puts kubectl 1.37 in `.tools/bin`
/// (`HOMEOSTAT_KUBECTL` may name another); without one the test fails rather than pass
/// unchecked. kubectl's typed
/// commands (`create deployment`, `autoscale`) send protobuf, which the server refuses with
/// 415, so objects are created from manifests, as the generic commands send JSON. `drain`
/// sends its cordon patch and its evictions as JSON, so it runs against the server.
mod apiserver_kubectl {
    use std::process::Command;

    use super::*;

    const MANIFESTS: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 5
";

    /// Nodes, a budget that protects the web pods and a lease, as manifests.
    const CLUSTER: &str = "\
apiVersion: v1
kind: Node
metadata: {name: node-1, labels: {kubernetes.io/hostname: node-1}}
spec: {}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  minAvailable: 2
  selector: {matchLabels: {app: web}}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: homeostat-leader}
spec: {holderIdentity: brain-0, leaseDurationSeconds: 15}
";

    /// A CustomResourceDefinition for homeostat's `Policy` kind and one object of it.
    const POLICY_CRD: &str = "\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: policies.homeostat.dev}
spec:
  group: homeostat.dev
  scope: Namespaced
  names: {plural: policies, singular: policy, kind: Policy, shortNames: [pol]}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
    subresources: {status: {}}
";
    const POLICY: &str = "\
apiVersion: homeostat.dev/v1alpha1
kind: Policy
metadata: {name: calm}
spec: {maxReplicas: 5}
";

    /// What one kubectl invocation must do: succeed and print `expected` (empty: nothing).
    type Step<'a> = (&'a [&'a str], &'a str);

    /// Runs kubectl against the test's server with its own discovery cache.
    struct Kubectl {
        binary: std::path::PathBuf,
        kubeconfig: std::path::PathBuf,
        cache: std::path::PathBuf,
    }

    impl Kubectl {
        fn run(&self, args: &[&str]) -> std::io::Result<std::process::Output> {
            Command::new(&self.binary)
                .arg("--kubeconfig")
                .arg(&self.kubeconfig)
                .arg("--cache-dir")
                .arg(&self.cache)
                .args(args)
                .output()
        }

        /// Runs each step in turn; the first that fails or prints something else is the error.
        fn steps(&self, steps: &[Step<'_>]) -> Result<(), Box<dyn std::error::Error>> {
            for (args, expected) in steps {
                let out = self.run(args)?;
                let stdout = String::from_utf8_lossy(&out.stdout);
                let stderr = String::from_utf8_lossy(&out.stderr);
                // An empty expectation means the output must be empty, not merely anything.
                // Column padding is kubectl's business: compare with whitespace collapsed.
                let collapsed = stdout.split_whitespace().collect::<Vec<_>>().join(" ");
                let matched = if expected.is_empty() {
                    collapsed.is_empty()
                } else {
                    collapsed.contains(expected)
                };
                if !out.status.success() || !matched {
                    return Err(format!(
                        "kubectl {args:?}: expected {expected:?}, got {stdout:?} {stderr}"
                    )
                    .into());
                }
            }
            Ok(())
        }
    }

    /// A Running, Ready pod of `app` on `node`, owned by `owner`.
    fn owned_pod(name: &str, app: &str, node: &str, owner: &Value) -> Value {
        json!({
            "metadata": {"name": name, "labels": {"app": app}, "ownerReferences": [{
                "apiVersion": owner["apiVersion"], "kind": owner["kind"],
                "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"],
                "controller": true,
            }]},
            "spec": {"nodeName": node, "containers": [{"name": app, "image": "nginx"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kubectl_drives_the_simulated_cluster() -> TestResult {
        use homeostat_simulations::apiserver::discovery::{DEPLOYMENTS, PODS, REPLICA_SETS};

        let binary = std::env::var_os("HOMEOSTAT_KUBECTL").map_or_else(
            || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/bin/kubectl"),
            std::path::PathBuf::from,
        );
        assert!(
            binary.exists(),
            "{} is missing: run scripts/install-tools (or set HOMEOSTAT_KUBECTL)",
            binary.display()
        );
        let (server, _) = server().await?;
        let dir = tempfile::tempdir()?;
        let kubectl = Kubectl {
            binary,
            kubeconfig: dir.path().join("kubeconfig"),
            cache: dir.path().join("cache"),
        };
        server.write_kubeconfig(&kubectl.kubeconfig)?;
        let write = |name: &str, text: &str| -> std::io::Result<String> {
            let path = dir.path().join(name);
            std::fs::write(&path, text)?;
            Ok(path.to_string_lossy().into_owned())
        };
        let workloads = write("web.yaml", MANIFESTS)?;
        let config_map = write(
            "cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tuning\ndata:\n  a: \"1\"\n",
        )?;
        let cluster = write("cluster.yaml", CLUSTER)?;
        let crd = write("crd.yaml", POLICY_CRD)?;
        let policy = write("policy.yaml", POLICY)?;
        let workload_steps: &[Step<'_>] = &[
            (&["get", "namespaces"], "default"),
            (&["create", "--validate=false", "-f", &workloads], "created"),
            (
                &["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"],
                "2",
            ),
            (&["scale", "deployment", "web", "--replicas=4"], "scaled"),
            (
                &["get", "deploy", "-o", "jsonpath={.items[0].spec.replicas}"],
                "4",
            ),
            (&["label", "deploy", "web", "tier=front"], "labeled"),
            (
                &["get", "deploy", "-l", "tier=front", "-o", "name"],
                "deployment.apps/web",
            ),
            (
                &["get", "deploy", "-l", "tier notin (front)", "-o", "name"],
                "",
            ),
            (
                &["get", "hpa", "web", "-o", "jsonpath={.spec.maxReplicas}"],
                "5",
            ),
            (
                &["patch", "hpa", "web", "-p", r#"{"spec":{"maxReplicas":7}}"#],
                "patched",
            ),
            (
                &["get", "hpa", "-o", "jsonpath={.items[0].spec.maxReplicas}"],
                "7",
            ),
            (
                &[
                    "apply",
                    "--server-side",
                    "--validate=false",
                    "-f",
                    &config_map,
                ],
                "serverside-applied",
            ),
            (&["get", "cm", "tuning", "-o", "jsonpath={.data.a}"], "1"),
            (
                &["describe", "hpa", "web"],
                "Reference: Deployment/web Metrics: ( current / target ) Min replicas: 2 Max replicas: 7",
            ),
            (&["describe", "deploy", "web"], "Replicas: 4 desired"),
        ];
        // kubectl blocks; the server keeps running on the other worker thread.
        tokio::task::block_in_place(|| kubectl.steps(workload_steps))?;

        // The deployment's replica set and pods, as its controllers would have made them.
        let store = server.store();
        let ns = Some("default");
        let deployment = store.get(&DEPLOYMENTS, ns, "web")?;
        let rs = json!({"metadata": {"name": "web-6d4cf", "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
            "uid": deployment["metadata"]["uid"], "controller": true,
        }]}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}}});
        let rs = store.create(&REPLICA_SETS, ns, rs)?;
        for name in ["web-6d4cf-a", "web-6d4cf-b"] {
            store.create(&PODS, ns, owned_pod(name, "web", "node-1", &rs))?;
        }

        let cluster_steps: &[Step<'_>] = &[
            (
                &["apply", "--validate=false", "-f", &cluster],
                "poddisruptionbudget.policy/web created",
            ),
            (
                &["get", "rs,pdb,leases", "-o", "name"],
                "replicaset.apps/web-6d4cf poddisruptionbudget.policy/web lease.coordination.k8s.io/homeostat-leader",
            ),
            (&["get", "rs,pdb,leases"], "web-6d4cf"),
            (
                &["describe", "pdb", "web"],
                "Min available: 2 Selector: app=web Status: Allowed disruptions: 0 Current: 2 Desired: 2 Total: 2",
            ),
            (
                &["apply", "--validate=false", "-f", &crd],
                "customresourcedefinition.apiextensions.k8s.io/policies.homeostat.dev created",
            ),
            (
                &["apply", "--validate=false", "-f", &policy],
                "policy.homeostat.dev/calm created",
            ),
            (
                &["get", "policies.homeostat.dev", "-o", "name"],
                "policy.homeostat.dev/calm",
            ),
            (
                &["get", "pol", "calm", "-o", "jsonpath={.spec.maxReplicas}"],
                "5",
            ),
        ];
        tokio::task::block_in_place(|| kubectl.steps(cluster_steps))?;

        // A drain cordons the node, then evicts its pods; the budget refuses and kubectl
        // retries until its timeout.
        let drain = tokio::task::block_in_place(|| {
            kubectl.run(&["drain", "node-1", "--pod-selector=app=web", "--timeout=5s"])
        })?;
        let stderr = String::from_utf8_lossy(&drain.stderr);
        assert!(
            !drain.status.success(),
            "the budget blocks the drain: {stderr}"
        );
        assert!(
            stderr.contains("Cannot evict pod as it would violate the pod's disruption budget."),
            "{stderr}"
        );

        let cleanup_steps: &[Step<'_>] = &[
            (
                &[
                    "get",
                    "node",
                    "node-1",
                    "-o",
                    "jsonpath={.spec.unschedulable}",
                ],
                "true",
            ),
            (
                &["get", "pods", "-o", "name"],
                "pod/web-6d4cf-a pod/web-6d4cf-b",
            ),
            (&["delete", "deployment", "web"], "deleted"),
            (&["get", "deploy,rs,pods", "-o", "name"], ""),
            (&["delete", "crd", "policies.homeostat.dev"], "deleted"),
            (&["get", "crd", "-o", "name"], ""),
        ];
        tokio::task::block_in_place(|| kubectl.steps(cleanup_steps))?;
        Ok(())
    }
}
