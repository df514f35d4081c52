//! Offline checks of the plain manifests in `deploy/manifests/`.
//!
//! * every file validates with `kubernetes-validate --strict` against Kubernetes 1.33 (the
//!   API level `k8s-openapi` is built for in this workspace);
//! * the validator really rejects an unknown field, so the first check cannot pass vacuously;
//! * the brain's and the sensor's roles grant exactly what each touches, nothing more, bound
//!   to their own service accounts only; and every request the brain really sends, in runs
//!   that exercise each actuator against the simulated cluster, is granted by them;
//! * the Deployment, ConfigMap, brain config and Service agree with one another;
//! * the sensor DaemonSet has what the probes need (hostPID, the BPF capabilities and no
//!   others, the node's cgroup, bpffs and tracefs mounts), its node name from the downward
//!   API, and sends to the brain's Service;
//! * the code and the manifests name one namespace, `homeostat-system`.
//!
//! The validator is installed by `scripts/install-tools` into `.tools/`; when it is missing
//! these tests fail (they never skip) and say how to install it.

#[path = "support/policy_crd.rs"]
mod policy_crd;
#[path = "support/rbac.rs"]
mod rbac;
#[path = "support/validator.rs"]
mod validator;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use validator::{assert_passed, describe, repo_root, validate};

use rbac::{
    Call, Grants, NAMESPACE, allows, call, grants, manifest_files, manifests_dir, object, objects,
    strings,
};

#[test]
fn manifests_pass_strict_validation() {
    let files = manifest_files();
    // Not vacuous: every file had at least one resource validated, and nothing was skipped.
    assert_passed(&files, &validate(&files));

    // And the objects we promise are all there.
    let all = objects();
    for (kind, name) in [
        ("Namespace", NAMESPACE),
        ("ServiceAccount", "homeostat-brain"),
        ("ClusterRole", "homeostat-brain"),
        ("ClusterRoleBinding", "homeostat-brain"),
        ("Role", "homeostat-brain"),
        ("RoleBinding", "homeostat-brain"),
        ("ConfigMap", "homeostat-brain"),
        ("Deployment", "homeostat-brain"),
        ("Service", "homeostat-brain"),
        ("ServiceAccount", "homeostat-sensor"),
        ("ClusterRole", "homeostat-sensor"),
        ("ClusterRoleBinding", "homeostat-sensor"),
        ("Role", "homeostat-sensor"),
        ("RoleBinding", "homeostat-sensor"),
        ("DaemonSet", "homeostat-sensor"),
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
                obj["metadata"]["namespace"], NAMESPACE,
                "{kind}/{name} namespace"
            );
        }
    }
    // And nothing is left in another namespace.
    for ((kind, name), obj) in &all {
        if let Some(ns) = obj["metadata"]["namespace"].as_str() {
            assert_eq!(ns, NAMESPACE, "{kind}/{name} is in namespace {ns}");
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

/// One expected rule: apiGroup, resource, resourceNames, verbs.
type Rule<'a> = (&'a str, &'a str, &'a [&'a str], &'a [&'a str]);

fn expected(rules: &[Rule<'_>]) -> Grants {
    rules
        .iter()
        .map(|(g, r, names, verbs)| {
            (
                (
                    g.to_string(),
                    r.to_string(),
                    names.iter().map(|n| n.to_string()).collect(),
                ),
                verbs.iter().map(|v| v.to_string()).collect(),
            )
        })
        .collect()
}

/// `kind` (`ClusterRoleBinding` or `RoleBinding`) `name` binds the role of its own name, of
/// the matching kind, to the service account of that name in [`NAMESPACE`], and to nothing
/// else.
fn assert_bound_to_its_own_account(
    all: &BTreeMap<(String, String), Value>,
    kind: &str,
    name: &str,
) {
    let binding = object(all, kind, name);
    let role_kind = kind.trim_end_matches("Binding");
    assert_eq!(binding["roleRef"]["kind"], role_kind, "{kind}/{name}");
    assert_eq!(binding["roleRef"]["name"], name, "{kind}/{name}");
    let subjects = binding["subjects"].as_array().expect("subjects");
    assert_eq!(subjects.len(), 1, "{kind}/{name}: {subjects:?}");
    assert_eq!(subjects[0]["kind"], "ServiceAccount");
    assert_eq!(subjects[0]["name"], name);
    assert_eq!(subjects[0]["namespace"], NAMESPACE);
}

#[test]
fn roles_grant_exactly_what_the_brain_and_the_sensor_touch() {
    let all = objects();
    let configmap = homeostat_actuators::throttle::SENSOR_CONFIGMAP;
    let lease = "homeostat-brain";
    let cases: [(&str, &str, &[Rule<'_>]); 4] = [
        (
            "ClusterRole",
            "homeostat-brain",
            &[
                (
                    "autoscaling",
                    "horizontalpodautoscalers",
                    &[],
                    &["get", "list", "patch"],
                ),
                ("", "events", &[], &["create", "list"]),
                ("apps", "deployments", &[], &["get", "patch"]),
                ("apps", "statefulsets", &[], &["get", "patch"]),
                ("apps", "deployments/scale", &[], &["get", "patch"]),
                ("apps", "statefulsets/scale", &[], &["get", "patch"]),
                ("", "pods", &[], &["get", "list"]),
                ("", "pods/eviction", &[], &["create"]),
                ("", "nodes", &[], &["get", "list", "patch"]),
                ("homeostat.dev", "policies", &[], &["list", "watch"]),
            ],
        ),
        (
            // The throttle's server-side apply: a patch of that one ConfigMap, which may
            // create it; and leader election on the brain's Lease.
            "Role",
            "homeostat-brain",
            &[
                ("", "configmaps", &[configmap], &["patch"]),
                ("", "configmaps", &[], &["create"]),
                (
                    "coordination.k8s.io",
                    "leases",
                    &[lease],
                    &["get", "update"],
                ),
                ("coordination.k8s.io", "leases", &[], &["create"]),
            ],
        ),
        (
            "ClusterRole",
            "homeostat-sensor",
            &[("", "pods", &[], &["list"])],
        ),
        (
            "Role",
            "homeostat-sensor",
            &[("", "configmaps", &[configmap], &["get"])],
        ),
    ];
    for (kind, name, rules) in cases {
        assert_eq!(
            grants(object(&all, kind, name)),
            expected(rules),
            "{kind} {name} grants something else"
        );
        assert_bound_to_its_own_account(&all, &format!("{kind}Binding"), name);
    }
}

/// The namespace and object names the code uses are the manifests'.
#[test]
fn the_code_and_the_manifests_name_one_namespace() {
    let all = objects();
    for (what, namespace) in [
        (
            "actuators::throttle",
            homeostat_actuators::throttle::SENSOR_NAMESPACE,
        ),
        ("sensor::otlp", homeostat_sensor::otlp::SENSOR_NAMESPACE),
        (
            "simulations::telemetry",
            homeostat_simulations::telemetry::SENSOR_NAMESPACE,
        ),
    ] {
        assert_eq!(namespace, NAMESPACE, "{what}::SENSOR_NAMESPACE");
    }
    object(&all, "Namespace", NAMESPACE);
    object(&all, "DaemonSet", homeostat_sensor::otlp::SENSOR_DAEMONSET);
}

#[test]
fn the_sensor_daemonset_has_what_the_probes_need() {
    let all = objects();
    let daemonset = object(&all, "DaemonSet", "homeostat-sensor");
    let brain = object(&all, "Deployment", "homeostat-brain");
    let service = object(&all, "Service", "homeostat-brain");
    let pod = &daemonset["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let sensor = &containers[0];

    assert_eq!(pod["serviceAccountName"], "homeostat-sensor");
    assert_eq!(pod["automountServiceAccountToken"], true);
    assert_eq!(pod["hostPID"], true, "crash events carry the node's pids");
    assert_eq!(
        pod["hostNetwork"],
        Value::Null,
        "no need for the node's network"
    );
    assert_eq!(
        pod["tolerations"],
        serde_json::json!([{"operator": "Exists"}]),
        "one sensor on every node, tainted ones too"
    );
    assert_eq!(
        sensor["image"],
        brain["spec"]["template"]["spec"]["containers"][0]["image"]
    );
    assert_eq!(strings(&sensor["args"]), ["sensor"]);
    let selector = &daemonset["spec"]["selector"]["matchLabels"];
    for (label, value) in selector.as_object().expect("matchLabels") {
        assert_eq!(
            &daemonset["spec"]["template"]["metadata"]["labels"][label], value,
            "selector {label} does not match the pod"
        );
    }

    // Root with exactly the capabilities the probes use; not privileged.
    let sc = &sensor["securityContext"];
    assert_eq!(sc["runAsUser"], 0);
    assert_eq!(sc["privileged"], false);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    let added: BTreeSet<&str> = strings(&sc["capabilities"]["add"]).into_iter().collect();
    assert_eq!(
        added,
        BTreeSet::from(["BPF", "PERFMON", "SYS_ADMIN", "SYS_RESOURCE"])
    );

    // The node's cgroup hierarchy, bpffs and tracefs, each at its own path, read-only.
    let mut host_paths = BTreeMap::new();
    for v in pod["volumes"].as_array().expect("volumes") {
        let path = v["hostPath"]["path"]
            .as_str()
            .expect("only hostPath volumes");
        assert_eq!(v["hostPath"]["type"], "Directory", "{v}");
        host_paths.insert(v["name"].as_str().unwrap(), path);
    }
    let mut mounted = BTreeMap::new();
    for m in sensor["volumeMounts"].as_array().expect("volumeMounts") {
        let from = host_paths[m["name"].as_str().unwrap()];
        let at = m["mountPath"].as_str().unwrap();
        assert_eq!(from, at, "{m}: the node's path, at the same path");
        assert_eq!(m["readOnly"], true, "{m}");
        mounted.insert(at, from);
    }
    assert_eq!(
        mounted.keys().copied().collect::<Vec<_>>(),
        ["/sys/fs/bpf", "/sys/fs/cgroup", "/sys/kernel/tracing"]
    );

    // Who it is (downward API), and where it sends: the brain Service's OTLP/gRPC port.
    let mut env = BTreeMap::new();
    for e in sensor["env"].as_array().expect("env") {
        env.insert(e["name"].as_str().unwrap(), e);
    }
    for (name, field) in [
        ("NODE_NAME", "spec.nodeName"),
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        assert_eq!(
            env[name]["valueFrom"]["fieldRef"]["fieldPath"], field,
            "{name}"
        );
    }
    let grpc_port = service["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == "otlp-grpc")
        .and_then(|p| p["port"].as_u64())
        .expect("the Service's otlp-grpc port");
    assert_eq!(
        env["HOMEOSTAT_OTLP_ENDPOINT"]["value"],
        format!(
            "http://{}.{}.svc:{grpc_port}",
            service["metadata"]["name"].as_str().unwrap(),
            service["metadata"]["namespace"].as_str().unwrap()
        )
    );
    assert_eq!(env["OTEL_EXPORTER_OTLP_PROTOCOL"]["value"], "grpc");

    // Requests and limits for both CPU and memory.
    let resources = &sensor["resources"];
    for kind in ["requests", "limits"] {
        for r in ["cpu", "memory"] {
            assert!(resources[kind][r].is_string(), "resources.{kind}.{r}");
        }
    }
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

/// The roles are checked against the code, not only against a list: the brain runs the
/// scenarios that exercise every actuator (scale, restart, taint, throttle) against the
/// simulated cluster, and every request it sent must be granted by its ClusterRole, or by
/// its Role in its own namespace. A new API call without its RBAC rule fails here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_call_the_brain_makes_is_granted_by_its_roles() {
    use homeostat_brain::DecisionSpans;
    use homeostat_core::Mode;
    use homeostat_policies::PolicySet;
    use homeostat_simulations::{Controller, DEFAULT_POLICY, RunOptions, Scenario, run};

    let all = objects();
    let cluster = grants(object(&all, "ClusterRole", "homeostat-brain"));
    let local = grants(object(&all, "Role", "homeostat-brain"));
    let scenarios = [
        "load-spike.yaml",
        "memory-leak.yaml",
        "noisy-neighbour.yaml",
        "sensor-overload.yaml",
    ];
    let mut made: BTreeSet<(String, String, &str)> = BTreeSet::new();
    for file in scenarios {
        let path = repo_root().join("simulations/scenarios").join(file);
        let text = std::fs::read_to_string(&path).expect("scenario");
        let scenario = Scenario::parse(file, &text).expect("scenario parses");
        let policies = PolicySet::from_str("default.yaml", DEFAULT_POLICY).expect("policy");
        let result = run(
            &scenario,
            RunOptions::new(Controller::Homeostat {
                mode: Mode::Enforce,
                policies,
                spans: DecisionSpans::disabled(),
            }),
        )
        .await
        .expect("homeostat run");
        for record in &result.audit {
            let c = call(record);
            let granted = allows(&cluster, &c)
                || c.namespace.as_deref() == Some(NAMESPACE) && allows(&local, &c);
            assert!(
                granted,
                "{file}: the brain sent {} {} ({c:?}), which its roles do not grant",
                record.method, record.path
            );
            made.insert((c.group, c.resource, c.verb));
        }
    }
    // The runs did exercise every actuator, so the check above covered their calls.
    for (group, resource, verb) in [
        ("autoscaling", "horizontalpodautoscalers", "patch"),
        ("", "pods/eviction", "create"),
        ("", "nodes", "patch"),
        ("", "configmaps", "patch"),
        ("", "events", "create"),
    ] {
        assert!(
            made.contains(&(group.to_owned(), resource.to_owned(), verb)),
            "no {verb} of {group}/{resource} in the runs: {made:?}"
        );
    }
}

/// The watch on Policy objects is checked the same way: the brain's watcher lists and
/// watches them on the simulated API server and records an Event refusing a broken one, and
/// every request it sent must be granted by its ClusterRole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_watch_is_granted_by_its_roles() {
    use std::time::{Duration, Instant};

    use homeostat_actuators::EventRecorder;
    use homeostat_brain::metrics::ReloadMetrics;
    use homeostat_brain::reload::{Reloader, objects};
    use homeostat_policies::PolicySet;
    use kube::api::{Api, DynamicObject, PostParams};

    let (server, clock, client) = policy_crd::server_with_policy_crd().await;
    let policies: Api<DynamicObject> = Api::all_with(client.clone(), &objects::resource());
    for (name, cooldown) in [("good", "5m"), ("broken", "soon")] {
        let object: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "homeostat.dev/v1alpha1",
            "kind": "Policy",
            "metadata": {"name": name},
            "spec": {"mode": "observe", "actions": ["restart-pods"], "cooldown": cooldown},
        }))
        .expect("an object");
        policies
            .create(&PostParams::default(), &object)
            .await
            .expect("Policy created");
    }
    // From here on, every request is the brain's.
    let before = server.audit().len();
    let metrics = ReloadMetrics::register(&prometheus::Registry::new()).expect("metrics");
    let reloader = Reloader::new(
        PolicySet::default(),
        metrics,
        clock,
        Some(EventRecorder::new(client.clone())),
    );
    let mut handle = reloader.handle();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let watch = tokio::spawn(objects::watch(client, reloader, shutdown));
    tokio::time::timeout(Duration::from_secs(20), handle.changed())
        .await
        .expect("the listed policy is in force within 20 s")
        .expect("the reloader lives");
    assert!(handle.borrow().set.get("good").is_some());
    let deadline = Instant::now() + Duration::from_secs(20);
    let calls = loop {
        let calls: Vec<Call> = server.audit()[before..].iter().map(call).collect();
        if calls.iter().any(|c| c.verb == "watch") {
            break calls;
        }
        assert!(
            Instant::now() < deadline,
            "no watch after the list: {calls:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.send_replace(true);
    watch.await.expect("the watch ends on shutdown");

    let all = objects();
    let granted = grants(object(&all, "ClusterRole", "homeostat-brain"));
    for c in &calls {
        assert!(allows(&granted, c), "the brain's {c:?} is not granted");
    }
    let made: BTreeSet<(&str, &str, &str)> = calls
        .iter()
        .map(|c| (c.group.as_str(), c.resource.as_str(), c.verb))
        .collect();
    for want in [
        ("homeostat.dev", "policies", "list"),
        ("homeostat.dev", "policies", "watch"),
        ("", "events", "create"),
    ] {
        assert!(made.contains(&want), "no {want:?} among {made:?}");
    }
    server.shutdown().await.expect("shutdown");
}
