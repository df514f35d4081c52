//! The Helm chart in `deploy/helm/homeostat`, checked offline with the real `helm` 4 that
//! `scripts/install-tools` puts in `.tools/bin`:
//!
//! * `helm lint --strict` passes, and bad values are refused by the chart's schema;
//! * its default rendering validates with `kubernetes-validate --strict` and holds the same
//!   objects as `deploy/manifests`, field for field (only Helm's own labels and the config
//!   checksum differ), so the two ways of installing cannot drift apart;
//! * its CRD is `deploy/crds/policy.yaml`, byte for byte;
//! * values do what they say: mode, replicas, no sensor, a persistent journal, extra policies
//!   (which pass `homeostat policy check`), and a config change rolls the brain's pod;
//! * a release outside `homeostat-system` is refused with a message saying where to install.

#[path = "support/validator.rs"]
mod validator;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use serde_json::Value;
use validator::{assert_passed, describe, documents, repo_root, validate};

const NAMESPACE: &str = "homeostat-system";

fn chart() -> PathBuf {
    repo_root().join("deploy").join("helm").join("homeostat")
}

fn helm() -> PathBuf {
    let path = repo_root().join(".tools").join("bin").join("helm");
    assert!(
        path.exists(),
        "{} is missing: run `scripts/install-tools` from the repository root",
        path.display()
    );
    path
}

fn run_helm(args: &[&str]) -> Output {
    Command::new(helm())
        .args(args)
        .output()
        .expect("running helm")
}

/// `helm template homeostat CHART -n NAMESPACE EXTRA...`, which must succeed.
fn render(extra: &[&str]) -> String {
    let chart = chart();
    let mut args = vec![
        "template",
        "homeostat",
        chart.to_str().expect("utf-8 path"),
        "-n",
        NAMESPACE,
    ];
    args.extend_from_slice(extra);
    let out = run_helm(&args);
    assert!(
        out.status.success(),
        "helm template failed:\n{}",
        describe(&out)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn parse(yaml: &str) -> Vec<Value> {
    yaml_serde::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("helm rendered invalid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn by_kind_and_name(docs: impl IntoIterator<Item = Value>) -> BTreeMap<(String, String), Value> {
    let mut all = BTreeMap::new();
    for doc in docs {
        let key = (
            doc["kind"].as_str().expect("kind").to_owned(),
            doc["metadata"]["name"].as_str().expect("name").to_owned(),
        );
        assert!(all.insert(key.clone(), doc).is_none(), "{key:?} twice");
    }
    all
}

fn rendered(extra: &[&str]) -> BTreeMap<(String, String), Value> {
    by_kind_and_name(parse(&render(extra)))
}

fn manifests() -> BTreeMap<(String, String), Value> {
    let dir = repo_root().join("deploy").join("manifests");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("deploy/manifests")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    by_kind_and_name(files.iter().flat_map(|f| documents(f)))
}

/// What may differ between the chart and the plain manifests by design: Helm's own labels,
/// the config checksum that rolls the pod, and YAML text (embedded documents are compared
/// as data, so comments and key order in `brain.yaml` do not count).
fn normalise(mut obj: Value) -> Value {
    fn labels(meta: &mut Value) {
        if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
            labels.remove("helm.sh/chart");
            labels.insert("app.kubernetes.io/managed-by".into(), "any".into());
        }
        if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            annotations.remove("checksum/config");
        }
    }
    labels(&mut obj["metadata"]);
    if obj["spec"]["template"]["metadata"].is_object() {
        labels(&mut obj["spec"]["template"]["metadata"]);
    }
    if obj["kind"] == "ConfigMap"
        && let Some(data) = obj.get_mut("data").and_then(Value::as_object_mut)
    {
        for text in data.values_mut() {
            let parsed: Value =
                yaml_serde::from_str(text.as_str().expect("string data")).expect("embedded YAML");
            *text = parsed;
        }
    }
    obj
}

#[test]
fn the_chart_lints_strictly() {
    let chart = chart();
    let out = run_helm(&[
        "lint",
        "--strict",
        chart.to_str().expect("utf-8"),
        "-n",
        NAMESPACE,
    ]);
    assert!(
        out.status.success(),
        "helm lint failed:\n{}",
        describe(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 chart(s) failed"),
        "{}",
        describe(&out)
    );
}

#[test]
fn the_default_rendering_is_the_plain_manifests() {
    let chart = rendered(&["--set", "namespace.create=true"]);
    let plain = manifests();
    let names = |m: &BTreeMap<(String, String), Value>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&chart), names(&plain), "objects differ");
    for (key, obj) in chart {
        assert_eq!(
            normalise(obj),
            normalise(plain[&key].clone()),
            "{key:?} differs between deploy/helm/homeostat and deploy/manifests"
        );
    }
}

#[test]
fn the_default_rendering_passes_strict_validation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("homeostat.yaml");
    std::fs::write(&file, render(&["--set", "namespace.create=true"])).expect("write");
    assert_passed(
        std::slice::from_ref(&file),
        &validate(std::slice::from_ref(&file)),
    );
}

#[test]
fn the_chart_ships_the_generated_crd() {
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
    assert_eq!(
        read(&chart().join("crds").join("policy.yaml")),
        read(&repo_root().join("deploy").join("crds").join("policy.yaml")),
        "deploy/helm/homeostat/crds/policy.yaml is stale: copy deploy/crds/policy.yaml there"
    );
}

#[test]
fn values_do_what_they_say() {
    let policy = r#"{"apiVersion":"homeostat.dev/v1alpha1","kind":"Policy","metadata":{"name":"restart-shop"},"spec":{"mode":"enforce","actions":["restart-pods"],"target":{"namespaces":["shop"]},"cooldown":"10m","maxDataAge":"1m"}}"#;
    let set_json = format!("brain.policies.restart={policy}");
    let objects = rendered(&[
        "--set",
        "brain.mode=enforce",
        "--set",
        "brain.replicas=2",
        "--set",
        "sensor.enabled=false",
        "--set",
        "brain.journal.persistentVolumeClaim=homeostat-journal",
        "--set",
        "brain.tracingEndpoint=",
        "--set-json",
        &set_json,
    ]);
    assert!(
        !objects.keys().any(|(_, name)| name == "homeostat-sensor"),
        "sensor.enabled=false still renders sensor objects"
    );
    assert!(
        !objects.contains_key(&("Namespace".into(), NAMESPACE.into())),
        "the Namespace is rendered though namespace.create defaults to false"
    );

    let deployment = &objects[&("Deployment".into(), "homeostat-brain".into())];
    assert_eq!(deployment["spec"]["replicas"], 2);
    let volumes = deployment["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .expect("volumes");
    let journal = volumes
        .iter()
        .find(|v| v["name"] == "journal")
        .expect("journal");
    assert_eq!(
        journal["persistentVolumeClaim"]["claimName"],
        "homeostat-journal"
    );
    assert!(journal.get("emptyDir").is_none(), "{journal}");
    let config = volumes
        .iter()
        .find(|v| v["name"] == "config")
        .expect("config");
    let paths: Vec<_> = config["configMap"]["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["path"].as_str().expect("path").to_owned())
        .collect();
    assert_eq!(
        paths,
        [
            "brain.yaml",
            "policies/default.yaml",
            "policies/restart.yaml"
        ]
    );

    let map = &objects[&("ConfigMap".into(), "homeostat-brain".into())];
    let brain: Value =
        yaml_serde::from_str(map["data"]["brain.yaml"].as_str().expect("brain.yaml"))
            .expect("yaml");
    assert_eq!(brain["mode"], "enforce");
    assert!(
        brain.get("tracing").is_none(),
        "empty tracingEndpoint kept: {brain}"
    );

    // Every policy the chart writes is one the brain accepts.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files = Vec::new();
    for (key, text) in map["data"].as_object().expect("data") {
        if key.starts_with("policy-") {
            let file = dir.path().join(key);
            std::fs::write(&file, text.as_str().expect("text")).expect("write");
            files.push(file);
        }
    }
    assert_eq!(files.len(), 2, "{map}");
    let check = Command::new(env!("CARGO_BIN_EXE_homeostat"))
        .args(["policy", "check"])
        .args(&files)
        .output()
        .expect("homeostat policy check");
    assert!(check.status.success(), "{}", describe(&check));

    // A config change rolls the pod; the same config does not.
    let checksum = |extra: &[&str]| {
        rendered(extra)[&("Deployment".into(), "homeostat-brain".into())]["spec"]["template"]
            ["metadata"]["annotations"]["checksum/config"]
            .as_str()
            .expect("checksum")
            .to_owned()
    };
    assert_eq!(checksum(&[]), checksum(&[]));
    assert_ne!(checksum(&[]), checksum(&["--set", "brain.mode=observe"]));
}

#[test]
fn bad_values_and_namespaces_are_refused_with_the_reason() {
    let chart = chart();
    let chart = chart.to_str().expect("utf-8");
    let out = run_helm(&[
        "template",
        "homeostat",
        chart,
        "-n",
        NAMESPACE,
        "--set",
        "brain.mode=enforcing",
    ]);
    assert!(!out.status.success(), "a bad mode rendered");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/brain/mode"), "{err}");

    let out = run_helm(&["template", "homeostat", chart, "-n", "default"]);
    assert!(!out.status.success(), "rendered into namespace default");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("install homeostat into namespace homeostat-system"),
        "{err}"
    );
}
