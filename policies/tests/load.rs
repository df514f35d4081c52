//! Loading: the shipped example loads; problems across files (duplicates, unreadable files)
//! are all reported. Single broken documents are in the corpus (`tests/corpus.rs`).

use std::path::PathBuf;
use std::time::Duration;

use homeostat_core::{ActionKind, Mode};
use homeostat_policies::limits::{BudgetScope, PodsOrPercent};
use homeostat_policies::{NextStep, PolicyError, PolicySet};

/// Fixture paths relative to the crate, as tests run from there, so messages are stable.
fn fixture(name: &str) -> PathBuf {
    PathBuf::from("tests/fixtures").join(name)
}

fn refusal(files: &[&str]) -> String {
    let paths: Vec<PathBuf> = files.iter().map(|f| fixture(f)).collect();
    match PolicySet::load_files(&paths) {
        Ok(set) => panic!("{files:?} loaded: {set:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_shipped_default_policy_loads() {
    let set = PolicySet::load_dir("examples").expect("the examples load");
    assert_eq!(set.len(), 6);
    let p = set.get("shop-saturation").expect("named shop-saturation");
    assert_eq!(p.spec.mode, Mode::Enforce);
    assert_eq!(p.spec.actions, vec![ActionKind::ScaleHpa]);
    let namespaces: Vec<&str> = p
        .spec
        .target
        .namespaces
        .iter()
        .map(|n| n.as_str())
        .collect();
    assert_eq!(namespaces, ["shop", "web"]);
    assert!(p.spec.target.workloads.is_empty() && p.spec.target.exclude.is_empty());
    assert_eq!(p.spec.cooldown.get(), Duration::from_secs(120));
    assert_eq!(p.spec.max_replicas.map(|c| c.get()), Some(40));
    assert_eq!(p.spec.max_data_age.get(), Duration::from_secs(120));
    assert_eq!(p.file, "examples/default.yaml");
    assert_eq!(p.location.line, 7);
    let restart = set
        .get("shop-restart-pods")
        .expect("named shop-restart-pods");
    assert_eq!(restart.spec.actions, vec![ActionKind::RestartPods]);
    assert_eq!(restart.spec.cooldown.get(), Duration::from_secs(180));
    assert_eq!(restart.spec.max_data_age.get(), Duration::from_secs(60));
    assert_eq!(restart.spec.max_unavailable, Some(PodsOrPercent::Count(1)));
    let contention = set.get("shop-contention").expect("named shop-contention");
    assert_eq!(contention.spec.actions, vec![ActionKind::TaintNode]);
    let sensor = set
        .get("sensor-self-protection")
        .expect("named sensor-self-protection");
    assert_eq!(sensor.spec.actions, vec![ActionKind::ThrottleSampling]);
    let bounds = sensor
        .spec
        .throttle
        .as_ref()
        .expect("the sensor's throttle is bounded");
    let probes: Vec<&str> = bounds.probes.iter().map(|p| p.name()).collect();
    assert_eq!(probes, ["runqueue"]);
    assert_eq!(bounds.min_rate.map(|r| r.get()), Some(1.0 / 64.0));
    assert_eq!(
        sensor.spec.target.namespaces[0].as_str(),
        "homeostat-system"
    );
}

#[test]
fn the_web_tier_and_crash_loop_examples_use_the_gates_limits() {
    let set = PolicySet::load_dir("examples").expect("the examples load");
    // File-name order: crash-loop-restart.yaml, default.yaml, web-autoscale.yaml.
    let names: Vec<&str> = set.policies().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names[0], "crash-loop-restart");
    assert_eq!(names[5], "storefront-autoscale");

    let web = &set.policies()[5].spec;
    assert_eq!(web.conditions.len(), 1);
    assert!(web.target.selector.is_some());
    let triggers = web.triggers.as_ref().expect("web triggers");
    assert_eq!(triggers.anomalies[0].min_score, 0.8);
    assert_eq!(
        triggers.forecast.as_ref().map(|f| f.min_rise.get()),
        Some(1.3)
    );
    let step = web.scale.as_ref().and_then(|s| s.max_step);
    assert_eq!(step, Some(PodsOrPercent::Percent(50)));
    assert_eq!(web.budgets.len(), 2);
    assert_eq!(web.budgets[1].scope, BudgetScope::Namespace);
    assert_eq!(web.schedule.time_zone.name(), "Europe/Berlin");
    assert_eq!(web.schedule.deny.len(), 1);
    assert_eq!(
        set.next_step("storefront-autoscale", ActionKind::ScaleHpa),
        Some(NextStep::Stop)
    );

    let crash = &set.policies()[0].spec;
    assert_eq!(crash.max_unavailable, Some(PodsOrPercent::Percent(25)));
    assert_eq!(crash.max_unavailable.map(|m| m.of(10)), Some(3));
    assert_eq!(crash.schedule.maintenance.len(), 1);
    assert_eq!(crash.budgets[1].scope, BudgetScope::Cluster);
    assert_eq!(
        set.verify_within("crash-loop-restart"),
        Some(Duration::from_secs(600))
    );
}

#[test]
fn duplicate_names_across_files_name_both_files() {
    assert_eq!(
        refusal(&["dup-a.yaml", "dup-b.yaml"]),
        "tests/fixtures/dup-b.yaml:5:3: metadata.name: duplicate policy name \"web\", first \
         defined at tests/fixtures/dup-a.yaml:4:3"
    );
}

#[test]
fn all_errors_of_all_files_are_collected() {
    let paths: Vec<PathBuf> = [
        "tests/corpus/wrong-kind.yaml",
        "tests/fixtures/missing.yaml",
        "tests/corpus/duration-unknown-unit.yaml",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    let PolicyError { diagnostics } = PolicySet::load_files(&paths).expect_err("refused");
    let files: Vec<&str> = diagnostics.iter().map(|d| d.file.as_str()).collect();
    assert_eq!(
        files,
        [
            "tests/corpus/wrong-kind.yaml",
            "tests/fixtures/missing.yaml",
            "tests/corpus/duration-unknown-unit.yaml"
        ]
    );
    assert!(diagnostics[1].location.is_none());
    assert!(diagnostics[1].message.starts_with("cannot read file: "));
}

const GOOD: &str = "\
apiVersion: homeostat.dev/v1alpha1
kind: Policy
metadata:
  name: first
spec:
  mode: dry-run
  actions: [restart-pods, restart-pods]
  cooldown: 10m
---
---
apiVersion: homeostat.dev/v1alpha1
kind: Policy
metadata: {name: second}
spec: {mode: observe, actions: [throttle-sampling], cooldown: 0s, maxDataAge: 30s}
";

#[test]
fn several_documents_load_in_order_and_empty_ones_are_skipped() {
    let set = PolicySet::from_str("inline", GOOD).expect("loads");
    let names: Vec<&str> = set.policies().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["first", "second"]);
    assert_eq!(
        set.policies()[0].spec.actions,
        vec![ActionKind::RestartPods]
    );
    assert_eq!(set.policies()[1].location.line, 11);
    assert_eq!(
        set.policies()[1].spec.max_data_age.get(),
        Duration::from_secs(30)
    );
    assert!(
        PolicySet::from_str("empty", "")
            .expect("empty loads")
            .is_empty()
    );
}

#[test]
fn semantic_checks_inside_flow_mappings_keep_their_position() {
    let text = "apiVersion: homeostat.dev/v1alpha1\nkind: Policy\nmetadata: {name: x}\n\
                spec: {mode: enforce, actions: [], cooldown: 1m, maxDataAge: 0s}\n";
    assert_eq!(
        PolicySet::from_str("t.yaml", text)
            .expect_err("refused")
            .to_string(),
        "t.yaml:4:32: spec.actions: must name at least one action"
    );
    let text = text.replace("actions: []", "actions: [restart-pods]");
    assert_eq!(
        PolicySet::from_str("t.yaml", &text)
            .expect_err("refused")
            .to_string(),
        "t.yaml:4:74: spec.maxDataAge: \"0s\": must be longer than zero"
    );
}

#[test]
fn load_dir_reads_yaml_and_yml_sorted_and_ignores_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let doc = |name: &str| {
        GOOD.split("---\n")
            .next()
            .unwrap_or_default()
            .replace("first", name)
    };
    std::fs::write(dir.path().join("b.yaml"), doc("bee")).expect("write");
    std::fs::write(dir.path().join("a.yml"), doc("ay")).expect("write");
    std::fs::write(dir.path().join("notes.txt"), "not: a policy").expect("write");
    let set = PolicySet::load_dir(dir.path()).expect("loads");
    let names: Vec<&str> = set.policies().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["ay", "bee"]);
}
