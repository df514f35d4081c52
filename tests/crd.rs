//! The Policy CustomResourceDefinition in `deploy/crds/policy.yaml`:
//!
//! * it is exactly what `homeostat policy crd` generates from the Rust types, so it cannot go
//!   stale;
//! * it passes `kubernetes-validate --strict` and reads as k8s-openapi's typed CRD;
//! * the simulated API server accepts it and then serves the example policies as `Policy`
//!   objects, to kube-rs and to a real kubectl, with their specs as written.

#[path = "support/kubectl.rs"]
mod kubectl;
#[path = "support/validator.rs"]
mod validator;

use std::path::PathBuf;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use serde_json::Value;
use validator::{assert_passed, documents, repo_root, validate};

fn crd_file() -> PathBuf {
    repo_root().join("deploy").join("crds").join("policy.yaml")
}

fn example_file() -> PathBuf {
    repo_root()
        .join("policies")
        .join("examples")
        .join("default.yaml")
}

#[test]
fn the_committed_crd_is_what_the_code_generates() {
    // What `homeostat policy crd` prints.
    let generated = homeostat_policies::crd::to_yaml();
    let committed = std::fs::read_to_string(crd_file()).expect("deploy/crds/policy.yaml");
    if generated != committed {
        let first = generated
            .lines()
            .zip(committed.lines())
            .position(|(g, c)| g != c)
            .map_or_else(
                || "one is a prefix of the other".to_owned(),
                |i| format!("first difference at line {}", i + 1),
            );
        panic!(
            "deploy/crds/policy.yaml is stale ({first}): regenerate it with\n  \
             cargo run -- policy crd > deploy/crds/policy.yaml"
        );
    }
}

#[test]
fn the_crd_passes_strict_validation() {
    let files = [crd_file()];
    assert_passed(&files, &validate(&files));
}

fn policies_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(
            homeostat_policies::crd::GROUP,
            homeostat_policies::crd::VERSION,
            "Policy",
        ),
        homeostat_policies::crd::PLURAL,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_api_server_serves_the_example_policies() {
    use homeostat_core::{ManualClock, Timestamp};
    use homeostat_simulations::apiserver::{ApiServer, DEFAULT_ADDR, ObjectStore};

    let store = ObjectStore::new(std::sync::Arc::new(ManualClock::new(Timestamp::from_secs(
        1_700_000_000,
    ))));
    let server = ApiServer::start(store, DEFAULT_ADDR).await.expect("server");
    let client = server.kube_client().expect("client");

    // The CRD, as committed, reads as the typed object and is accepted and established.
    let [crd]: [Value; 1] = documents(&crd_file()).try_into().expect("one document");
    let crd: CustomResourceDefinition = serde_json::from_value(crd).expect("a typed CRD");
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("the simulated API server accepts the CRD");
    let stored = crds
        .get("policies.homeostat.dev")
        .await
        .expect("CRD read back");
    let established = stored
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .any(|c| c.type_ == "Established" && c.status == "True");
    assert!(established, "the CRD is established");

    // Every example policy is accepted as a cluster-scoped Policy and read back as written.
    let policies: Api<DynamicObject> = Api::all_with(client.clone(), &policies_resource());
    let examples = documents(&example_file());
    assert_eq!(examples.len(), 4, "the example's documents");
    for doc in &examples {
        let object: DynamicObject = serde_json::from_value(doc.clone()).expect("an object");
        policies
            .create(&PostParams::default(), &object)
            .await
            .unwrap_or_else(|e| panic!("Policy {:?} refused: {e}", doc["metadata"]["name"]));
    }
    let listed = policies
        .list(&ListParams::default())
        .await
        .expect("list policies");
    assert_eq!(listed.items.len(), examples.len());
    for doc in &examples {
        let name = doc["metadata"]["name"].as_str().expect("a name");
        let back = policies.get(name).await.expect("read back");
        assert_eq!(back.data["spec"], doc["spec"], "{name}");
        assert_eq!(back.metadata.namespace, None, "{name} is cluster-scoped");
    }

    // A real kubectl finds the kind through discovery.
    let run = |args: &[&str]| kubectl::run(&server, args);
    let names = run(&["get", "policies", "-o", "name"]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "policy.homeostat.dev/sensor-self-protection",
            "policy.homeostat.dev/shop-contention",
            "policy.homeostat.dev/shop-restart-pods",
            "policy.homeostat.dev/shop-saturation",
        ]
    );
    let ceiling = run(&[
        "get",
        "policy",
        "shop-saturation",
        "-o",
        "jsonpath={.spec.maxReplicas}",
    ]);
    assert_eq!(ceiling, "40");
    server.shutdown().await.expect("shutdown");
}
