//! Offline checks of the plain manifests in `deploy/manifests/`.
//!
//! * every file validates with `kubernetes-validate --strict` against Kubernetes 1.33 (the
//!   API level `k8s-openapi` is built for in this workspace);
//! * the validator really rejects an unknown field, so the first check cannot pass vacuously;
//! * the ClusterRole grants exactly what the brain touches, nothing more;
//! * the Deployment, ConfigMap, brain config and Service agree with one another.
//!
//! The validator is installed by `scripts/install-tools` into `.tools/`; when it is missing
//! these tests fail (they never skip) and say how to install it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use serde_json::Value;

const KUBERNETES_VERSION: &str = "1.33.0";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn manifests_dir() -> PathBuf {
    repo_root().join("deploy").join("manifests")
}

/// Every file under `deploy/manifests/`, recursively, sorted.
fn manifest_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&manifests_dir(), &mut files);
    files.sort();
    assert!(
        !files.is_empty(),
        "no files under {}",
        manifests_dir().display()
    );
    files
}

fn validator() -> PathBuf {
    let path = repo_root()
        .join(".tools")
        .join("bin")
        .join("kubernetes-validate");
    assert!(
        path.exists(),
        "{} is missing: run `scripts/install-tools` from the repository root \
         (installs kubernetes-validate, kubectl and helm into .tools/)",
        path.display()
    );
    path
}

fn validate(files: &[PathBuf]) -> Output {
    Command::new(validator())
        .arg("--strict")
        .arg("-k")
        .arg(KUBERNETES_VERSION)
        .args(files)
        .output()
        .expect("running kubernetes-validate")
}

fn describe(out: &Output) -> String {
    format!(
        "exit status: {}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// All YAML documents of one file, as JSON values (empty documents dropped).
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    yaml_serde::Deserializer::from_str(&text)
        .map(|doc| {
            Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// Every object in `deploy/manifests/`, keyed by (kind, name).
fn objects() -> BTreeMap<(String, String), Value> {
    let mut all = BTreeMap::new();
    for file in manifest_files() {
        for doc in documents(&file) {
            let kind = doc["kind"].as_str().expect("kind").to_owned();
            let name = doc["metadata"]["name"]
                .as_str()
                .expect("metadata.name")
                .to_owned();
            let previous = all.insert((kind.clone(), name.clone()), doc);
            assert!(previous.is_none(), "{kind}/{name} is defined twice");
        }
    }
    all
}

fn object<'a>(all: &'a BTreeMap<(String, String), Value>, kind: &str, name: &str) -> &'a Value {
    all.get(&(kind.to_owned(), name.to_owned()))
        .unwrap_or_else(|| panic!("no {kind}/{name} in deploy/manifests"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a list, got {v}"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("expected a string, got {s}"))
        })
        .collect()
}

#[test]
fn manifests_pass_strict_validation() {
    let files = manifest_files();
    let out = validate(&files);
    let report = describe(&out);
    assert!(
        out.status.success(),
        "kubernetes-validate rejected deploy/manifests:\n{report}"
    );

    // Not vacuous: every file had at least one resource validated, and nothing was skipped.
    let stdout = String::from_utf8_lossy(&out.stdout);
    for file in &files {
        let shown = file.display().to_string();
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(&shown) && l.contains(" passed for resource ")),
            "no resource of {shown} was reported as validated:\n{report}"
        );
    }
    for line in stdout
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
    {
        assert!(
            !line.starts_with("ERROR") && !line.starts_with("WARN"),
            "validator complained: {line}\n{report}"
        );
    }

    // And the objects we promise are all there.
    let all = objects();
    for (kind, name) in [
        ("Namespace", "homeostat"),
        ("ServiceAccount", "homeostat-brain"),
        ("ClusterRole", "homeostat-brain"),
        ("ClusterRoleBinding", "homeostat-brain"),
        ("ConfigMap", "homeostat-brain"),
        ("Deployment", "homeostat-brain"),
        ("Service", "homeostat-brain"),
    ] {
        let obj = object(&all, kind, name);
        let labels = &obj["metadata"]["labels"];
        for label in ["app.kubernetes.io/name", "app.kubernetes.io/part-of"] {
            assert!(
                labels[label].is_string(),
                "{kind}/{name} lacks label {label}"
            );
        }
        if kind != "Namespace" && kind != "ClusterRole" && kind != "ClusterRoleBinding" {
            assert_eq!(
                obj["metadata"]["namespace"], "homeostat",
                "{kind}/{name} namespace"
            );
        }
    }
}

#[test]
fn validator_rejects_an_unknown_field() {
    let deployment = manifests_dir().join("40-deployment.yaml");
    let text = std::fs::read_to_string(&deployment).expect("read the Deployment manifest");
    let needle = "\n  replicas: 1\n";
    assert!(
        text.contains(needle),
        "the Deployment no longer has `  replicas: 1`; update this test"
    );
    let broken = text.replacen(needle, "\n  replicas: 1\n  replicaz: 2\n", 1);

    let dir = tempfile::Builder::new()
        .prefix("homeostat-manifests-")
        .tempdir()
        .expect("tempdir");
    let path = dir.path().join("deployment-with-unknown-field.yaml");
    std::fs::write(&path, broken).expect("write the broken Deployment");

    let out = validate(std::slice::from_ref(&path));
    let report = describe(&out);
    assert!(
        !out.status.success(),
        "kubernetes-validate accepted an unknown field:\n{report}"
    );
    assert!(
        report.contains("replicaz"),
        "kubernetes-validate failed, but not because of the unknown field:\n{report}"
    );

    // The same validator, on the untouched copy, passes: the failure above is the field.
    let pristine = dir.path().join("deployment.yaml");
    std::fs::copy(&deployment, &pristine).expect("copy the Deployment");
    let out = validate(&[pristine]);
    assert!(
        out.status.success(),
        "the pristine copy failed:\n{}",
        describe(&out)
    );
}

#[test]
fn cluster_role_grants_exactly_what_the_brain_touches() {
    let all = objects();
    let role = object(&all, "ClusterRole", "homeostat-brain");

    // (apiGroup, resource) -> verbs
    let mut granted: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for rule in role["rules"].as_array().expect("rules") {
        let keys: BTreeSet<&str> = rule
            .as_object()
            .expect("rule")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from(["apiGroups", "resources", "verbs"]),
            "unexpected rule shape (resourceNames/nonResourceURLs?): {rule}"
        );
        for group in strings(&rule["apiGroups"]) {
            for resource in strings(&rule["resources"]) {
                let verbs = granted
                    .entry((group.to_owned(), resource.to_owned()))
                    .or_default();
                verbs.extend(strings(&rule["verbs"]).into_iter().map(str::to_owned));
            }
        }
    }

    let expected: BTreeMap<(String, String), BTreeSet<String>> = [
        (
            "autoscaling",
            "horizontalpodautoscalers",
            &["get", "list", "patch"][..],
        ),
        ("", "events", &["create"][..]),
        ("apps", "deployments", &["get"][..]),
        ("", "pods", &["get", "list"][..]),
        ("", "pods/eviction", &["create"][..]),
        ("", "configmaps", &["get", "create", "patch"][..]),
        ("", "nodes", &["get", "list", "patch"][..]),
    ]
    .into_iter()
    .map(|(g, r, v)| {
        (
            (g.to_owned(), r.to_owned()),
            v.iter().map(|s| s.to_string()).collect(),
        )
    })
    .collect();
    assert_eq!(
        granted, expected,
        "ClusterRole homeostat-brain grants something else"
    );

    // Bound to the brain's ServiceAccount, and only to it.
    let binding = object(&all, "ClusterRoleBinding", "homeostat-brain");
    assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
    assert_eq!(binding["roleRef"]["name"], "homeostat-brain");
    let subjects = binding["subjects"].as_array().expect("subjects");
    assert_eq!(subjects.len(), 1, "{subjects:?}");
    assert_eq!(subjects[0]["kind"], "ServiceAccount");
    assert_eq!(subjects[0]["name"], "homeostat-brain");
    assert_eq!(subjects[0]["namespace"], "homeostat");
}

#[test]
fn deployment_config_and_service_agree() {
    let all = objects();
    let deployment = object(&all, "Deployment", "homeostat-brain");
    let config_map = object(&all, "ConfigMap", "homeostat-brain");
    let service = object(&all, "Service", "homeostat-brain");
    let pod = &deployment["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let brain = &containers[0];

    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(pod["serviceAccountName"], "homeostat-brain");
    assert_eq!(pod["automountServiceAccountToken"], true);
    assert_eq!(brain["image"], "ghcr.io/homeostat/homeostat:0.1.0");
    assert_eq!(
        strings(&brain["args"]),
        ["brain", "--config", "/etc/homeostat/brain.yaml"]
    );
    let sc = &brain["securityContext"];
    assert_eq!(sc["runAsNonRoot"], true);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");

    // Where each volume is mounted.
    let mut mounts = BTreeMap::new();
    for m in brain["volumeMounts"].as_array().expect("volumeMounts") {
        mounts.insert(
            m["name"].as_str().unwrap(),
            m["mountPath"].as_str().unwrap(),
        );
    }
    // The files the config volume projects, as absolute paths, and the ConfigMap keys behind them.
    let mut projected = BTreeMap::new();
    for v in pod["volumes"].as_array().expect("volumes") {
        if v["configMap"]["name"] == "homeostat-brain" {
            let base = mounts[v["name"].as_str().unwrap()];
            for item in v["configMap"]["items"].as_array().expect("configMap items") {
                let key = item["key"].as_str().unwrap();
                assert!(
                    config_map["data"][key].is_string(),
                    "ConfigMap has no key {key}"
                );
                projected.insert(format!("{base}/{}", item["path"].as_str().unwrap()), key);
            }
        }
    }

    // The --config file is projected, parses, and points where the volumes are.
    let config_key = projected
        .get("/etc/homeostat/brain.yaml")
        .expect("brain.yaml not mounted");
    let config: Value = yaml_serde::from_str(config_map["data"][*config_key].as_str().unwrap())
        .expect("brain.yaml");
    let mode = config["mode"].as_str().expect("mode");
    assert!(
        ["observe", "dry-run", "enforce"].contains(&mode),
        "mode {mode}"
    );
    let journal = config["journal"]["path"].as_str().expect("journal.path");
    assert!(
        journal.starts_with(&format!("{}/", mounts["journal"])),
        "journal.path {journal} is not on the journal volume ({})",
        mounts["journal"]
    );
    let policy_dirs = strings(&config["policies"]);
    let policies: Vec<_> = projected
        .iter()
        .filter(|(path, _)| {
            policy_dirs
                .iter()
                .any(|d| path.starts_with(&format!("{d}/")))
        })
        .collect();
    assert!(
        !policies.is_empty(),
        "no policy file is projected under {policy_dirs:?}"
    );
    for (path, key) in policies {
        let policy: Value =
            yaml_serde::from_str(config_map["data"][*key].as_str().unwrap()).expect("policy");
        assert_eq!(policy["kind"], "Policy", "{path}");
        assert_eq!(policy["apiVersion"], "homeostat.dev/v1alpha1", "{path}");
    }

    // Container ports match the listen addresses in the config, and the Service's named ports.
    let mut container_ports = BTreeMap::new();
    for p in brain["ports"].as_array().expect("ports") {
        container_ports.insert(
            p["name"].as_str().unwrap(),
            p["containerPort"].as_u64().unwrap(),
        );
    }
    for (name, listen) in [
        ("otlp-grpc", &config["otlp"]["grpcListen"]),
        ("otlp-http", &config["otlp"]["httpListen"]),
        ("http", &config["api"]["listen"]),
    ] {
        let port: u64 = listen
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(
            container_ports.get(name),
            Some(&port),
            "container port {name} vs {listen}"
        );
    }
    let mut app_protocols = BTreeMap::new();
    for p in service["spec"]["ports"].as_array().expect("service ports") {
        let target = p["targetPort"].as_str().expect("named targetPort");
        assert_eq!(
            container_ports.get(target),
            p["port"].as_u64().as_ref(),
            "service port {p}"
        );
        app_protocols.insert(target, p["appProtocol"].as_str().expect("appProtocol"));
    }
    assert_eq!(
        app_protocols,
        BTreeMap::from([
            ("http", "http"),
            ("otlp-grpc", "grpc"),
            ("otlp-http", "http")
        ])
    );
    for (key, value) in service["spec"]["selector"].as_object().expect("selector") {
        assert_eq!(
            &deployment["spec"]["template"]["metadata"]["labels"][key], value,
            "Service selector {key} does not match the pod"
        );
    }
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(
        annotations["prometheus.io/port"],
        container_ports["http"].to_string()
    );
}
