//! `homeostat policy explain` and `homeostat policy test`, run as a user runs them: explain on
//! the journal a real simulation wrote, test on a real scenario's proposals.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use homeostat_brain::Journal;
use homeostat_core::{Decision, Outcome, VerdictKind};

fn homeostat() -> Command {
    Command::new(env!("CARGO_BIN_EXE_homeostat"))
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refusal(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn explain(id: &str, journal: &Path) -> Output {
    homeostat()
        .args(["policy", "explain", id, "--journal"])
        .arg(journal)
        .output()
        .expect("runs")
}

/// Runs the built-in load spike with its journal in `dir`; returns every decision it holds.
fn simulate_into(dir: &Path) -> Vec<Decision> {
    stdout(
        &homeostat()
            .args(["simulate", "--journal"])
            .arg(dir)
            .output()
            .expect("runs"),
    );
    Journal::open(dir)
        .expect("journal")
        .all()
        .expect("decisions")
}

#[test]
fn explain_shows_a_journaled_decisions_whole_trail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let decisions = simulate_into(dir.path());
    let applied = decisions
        .iter()
        .find(|d| matches!(d.outcome, Outcome::Applied { .. }) && d.anomaly.is_some())
        .expect("the load spike applies a raise on an anomaly");
    let denied = decisions
        .iter()
        .find(|d| d.verdict.kind == VerdictKind::Deny)
        .expect("the load spike has a denied proposal");

    let text = stdout(&explain(&applied.id.0, dir.path()));
    let anomaly = applied.anomaly.as_ref().expect("anomaly");
    let plan = applied
        .plan
        .as_ref()
        .expect("an applied decision has a plan");
    let verified = applied
        .verification
        .as_ref()
        .expect("a raise is judged after its window");
    assert_all_in(
        &text,
        [
            format!("decision  {} at {}", applied.id, applied.time),
            format!("workload  {}", applied.proposal.workload),
            format!(
                "anomaly   {}, score {:.3}, since {}",
                anomaly.kind.as_str(),
                anomaly.score,
                anomaly.started
            ),
            format!(
                "          {} {}",
                anomaly.contributions[0].signal,
                anomaly.contributions[0].stat.as_str()
            ),
            "proposal  scale-hpa HorizontalPodAutoscaler/shop/checkout: minReplicas".to_owned(),
            format!("          because {}", applied.proposal.reason),
            verdict_lines(applied)[0].clone(),
            verdict_lines(applied)[1].clone(),
            "mode      enforce".to_owned(),
            format!("plan      {}", plan.summary),
            format!("          {}", plan.patch),
            "outcome   applied at".to_owned(),
            format!(
                "verified  {} at {}: {}",
                verified.result(),
                verified.at,
                verified.detail
            ),
            "journal   written as pending → applied".to_owned(),
        ],
    );

    let text = stdout(&explain(&denied.id.0, dir.path()));
    assert_all_in(
        &text,
        [
            verdict_lines(denied)[0].clone(),
            verdict_lines(denied)[1].clone(),
            "plan      none: nothing was planned".to_owned(),
            format!("outcome   skipped: {}", denied.verdict.reason),
            "journal   written as skipped\n".to_owned(),
        ],
    );
}

/// The two lines a trail gives the verdict: who decided, and why.
fn verdict_lines(d: &Decision) -> [String; 2] {
    [
        format!(
            "verdict   {} by policy {}, rule {}",
            d.verdict.kind.as_str(),
            d.verdict.policy.as_deref().expect("a policy"),
            d.verdict.rule
        ),
        format!("          because {}", d.verdict.reason),
    ]
}

fn assert_all_in(text: &str, needles: impl IntoIterator<Item = String>) {
    for needle in needles {
        assert!(text.contains(&needle), "{needle:?} missing from:\n{text}");
    }
}

#[test]
fn explain_names_what_is_wrong_with_the_id_or_the_journal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let decisions = simulate_into(dir.path());
    let newest = decisions.last().expect("decisions");

    let unknown = refusal(&explain("01ZZZZZZZZZZZZZZZZZZZZZZZZ", dir.path()));
    assert!(
        unknown.contains(&format!(
            "no decision \"01ZZZZZZZZZZZZZZZZZZZZZZZZ\" in the journal at {}; the newest are {}",
            dir.path().display(),
            newest.id
        )),
        "{unknown}"
    );
    let malformed = refusal(&explain("42", dir.path()));
    assert!(
        malformed.contains("(decision ids are 26-character ULIDs)"),
        "{malformed}"
    );

    let missing = dir.path().join("nothing-here");
    let text = refusal(&explain(&newest.id.0, &missing));
    assert!(
        text.contains(&format!("no journal at {}", missing.display())),
        "{text}"
    );
    assert!(!missing.exists(), "explain never creates a journal");
    let not_a_journal = tempfile::tempdir().expect("tempdir");
    let text = refusal(&explain(&newest.id.0, not_a_journal.path()));
    assert!(text.contains("is not a homeostat journal"), "{text}");

    // A brain running on the journal holds sled's lock; this test process stands in for it.
    let held = Journal::open(dir.path()).expect("open");
    let text = refusal(&explain(&newest.id.0, dir.path()));
    assert!(
        text.contains(&format!(
            "the journal at {} is locked by another process (pid {}",
            dir.path().display(),
            std::process::id()
        )) && text.contains("GET /api/v1/decisions/ID"),
        "{text}"
    );
    drop(held);
    stdout(&explain(&newest.id.0, dir.path()));
}

/// One verdict line of `policy test`: seconds since the start, verdict, action text.
struct Line {
    at: Duration,
    verdict: String,
    action: String,
}

/// Runs `policy test` on the load spike with `policy` as its only file and `extra` arguments.
fn policy_test(policy: &str, extra: &[&str]) -> (Vec<Line>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, policy).expect("write");
    let out = homeostat()
        .args(["policy", "test"])
        .arg(&file)
        .args(["--scenario", "simulations/scenarios/load-spike.yaml"])
        .args(extra)
        .output()
        .expect("runs");
    let text = stdout(&out);
    let lines = text
        .lines()
        .filter_map(|l| {
            let (clock, rest) = l.split_once("  ")?;
            let parts: Vec<u64> = clock
                .split(':')
                .map(|p| p.parse().ok())
                .collect::<Option<_>>()?;
            let [h, m, s] = parts[..] else { return None };
            let (verdict, action) = rest.trim_start().split_once(' ')?;
            Some(Line {
                at: Duration::from_secs(h * 3600 + m * 60 + s),
                verdict: verdict.to_owned(),
                action: action.trim_start().to_owned(),
            })
        })
        .collect();
    (lines, text)
}

fn policy(spec: &str) -> String {
    format!(
        "apiVersion: homeostat.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: trial\nspec:\n{spec}"
    )
}

/// The number after "→" in a scale-hpa action.
fn target(action: &str) -> u32 {
    action
        .rsplit("→ ")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no target in {action:?}"))
}

#[test]
fn policy_test_judges_a_scenarios_proposals_by_the_given_files() {
    // A tighter policy than the default: a 3-minute cooldown and a ceiling of 10.
    let (lines, text) = policy_test(
        &policy("  mode: enforce\n  actions: [scale-hpa]\n  cooldown: 3m\n  maxReplicas: 10\n"),
        &[],
    );
    let header = text.lines().next().expect("header");
    assert!(
        header.starts_with(&format!(
            "scenario load-spike: {} proposals judged by 1 policies",
            lines.len()
        )),
        "{text}"
    );
    let acts: Vec<&Line> = lines.iter().filter(|l| l.verdict == "act").collect();
    assert!(!acts.is_empty() && acts.len() < lines.len(), "{text}");
    for pair in acts.windows(2) {
        assert!(
            pair[1].at - pair[0].at >= Duration::from_secs(180),
            "two actions within the cooldown:\n{text}"
        );
    }
    for a in &acts {
        assert!(
            target(&a.action) <= 10,
            "above the ceiling: {}\n{text}",
            a.action
        );
    }
    assert!(
        text.contains("act by rule replica-ceiling") && text.contains("deny by rule cooldown"),
        "{text}"
    );
    assert!(
        text.contains("policy trial, rule cooldown: cooldown: last scale-hpa"),
        "{text}"
    );
    let denied = lines.iter().filter(|l| l.verdict == "deny").count();
    assert!(
        text.contains(&format!(
            "allowed {} (act {}, dry-run 0), observed 0, denied {denied}",
            acts.len(),
            acts.len()
        )),
        "{text}"
    );

    // The same proposals under a global dry-run are planned, never acted on; under a policy
    // for another namespace, all are denied for want of a policy.
    let (dry, text) = policy_test(
        &policy("  mode: enforce\n  actions: [scale-hpa]\n  cooldown: 3m\n  maxReplicas: 10\n"),
        &["--mode", "dry-run"],
    );
    assert_eq!(dry.len(), lines.len(), "the same proposals");
    assert!(dry.iter().all(|l| l.verdict != "act"), "{text}");
    assert!(dry.iter().any(|l| l.verdict == "dry-run"), "{text}");
    let (elsewhere, text) = policy_test(
        &policy(
            "  mode: enforce\n  actions: [scale-hpa]\n  target:\n    namespaces: [billing]\n  cooldown: 1m\n  maxReplicas: 10\n",
        ),
        &[],
    );
    assert!(elsewhere.iter().all(|l| l.verdict == "deny"), "{text}");
    assert!(
        text.contains(&format!("{} × deny by rule no-policy", elsewhere.len())),
        "{text}"
    );
}

#[test]
fn policy_test_closed_loop_verifies_what_the_policy_applied() {
    let spec = policy(
        "  mode: enforce\n  actions: [scale-hpa]\n  cooldown: 3m\n  maxReplicas: 10\n  \
         escalation:\n    verifyWithin: 5m\n",
    );
    let (lines, text) = policy_test(&spec, &["--closed-loop"]);
    let acts = lines.iter().filter(|l| l.verdict == "act").count();
    assert!(acts > 0, "{text}");
    let verified: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("verified: "))
        .collect();
    assert!(
        !verified.is_empty() && verified.len() <= acts,
        "every verification is of an applied action:\n{text}"
    );
    let helped = verified
        .iter()
        .filter(|v| v.starts_with("helped: "))
        .count();
    let not_helped = verified
        .iter()
        .filter(|v| v.starts_with("not-helped: "))
        .count();
    assert_eq!(helped + not_helped, verified.len(), "{text}");
    assert!(
        text.contains(&format!(
            "verified {}: helped {helped}, not helped {not_helped}",
            verified.len()
        )),
        "{text}"
    );
    // The open replay of the same file verifies nothing: nothing was applied.
    let (_, open) = policy_test(&spec, &[]);
    assert!(!open.contains("verified"), "{open}");
}

#[test]
fn proposals_carry_the_workloads_labels_for_selectors() {
    // The simulated cluster labels each Deployment `app: <name>`; the brain reads them
    // through the API server and a selector picks the workload by them.
    let selected = |app: &str| {
        policy(&format!(
            "  mode: enforce\n  actions: [scale-hpa]\n  target:\n    selector:\n      \
             matchLabels: {{app: {app}}}\n  cooldown: 3m\n  maxReplicas: 10\n"
        ))
    };
    let (lines, text) = policy_test(&selected("checkout"), &[]);
    assert!(lines.iter().any(|l| l.verdict == "act"), "{text}");
    let (lines, text) = policy_test(&selected("search"), &[]);
    assert!(
        !lines.is_empty() && lines.iter().all(|l| l.verdict == "deny"),
        "{text}"
    );
    assert!(
        text.contains("trial's selector (app=search) does not match its labels"),
        "{text}"
    );
}

#[test]
fn policy_test_refuses_a_broken_file_with_its_location() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("broken.yaml");
    std::fs::write(
        &file,
        policy("  mode: sometimes\n  actions: [scale-hpa]\n  cooldown: 1m\n  maxReplicas: 3\n"),
    )
    .expect("write");
    let out = homeostat()
        .args(["policy", "test"])
        .arg(&file)
        .args(["--scenario", "simulations/scenarios/load-spike.yaml"])
        .output()
        .expect("runs");
    let text = refusal(&out);
    assert!(
        text.contains(&format!(
            "{}:6:9: spec.mode: unknown mode \"sometimes\"",
            file.display()
        )),
        "{text}"
    );
}

/// The fenced YAML blocks of a Markdown file that hold a Policy.
fn policy_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```yaml") => current = Some(String::new()),
            (Some(block), "```") => {
                if block.contains("kind: Policy\n") {
                    blocks.push(block.clone());
                }
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_example_policy_passes_policy_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut examples: Vec<std::path::PathBuf> = std::fs::read_dir("policies/examples")
        .expect("policies/examples")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(!examples.is_empty());
    // The policy the plain manifests ship in the brain's ConfigMap.
    let config_map: serde_json::Value = yaml_serde::from_str(
        &std::fs::read_to_string("deploy/manifests/30-configmap.yaml").expect("ConfigMap"),
    )
    .expect("ConfigMap YAML");
    let shipped = dir.path().join("configmap-policy-default.yaml");
    std::fs::write(
        &shipped,
        config_map["data"]["policy-default.yaml"]
            .as_str()
            .expect("a policy-default.yaml key"),
    )
    .expect("write");
    examples.push(shipped);
    // The README's.
    let readme = policy_blocks(&std::fs::read_to_string("README.md").expect("README.md"));
    assert!(!readme.is_empty(), "the README shows a policy");
    for (i, block) in readme.iter().enumerate() {
        let path = dir.path().join(format!("readme-{i}.yaml"));
        std::fs::write(&path, block).expect("write");
        examples.push(path);
    }
    for example in &examples {
        let out = homeostat()
            .args(["policy", "check"])
            .arg(example)
            .output()
            .expect("runs");
        let text = stdout(&out);
        let documents = std::fs::read_to_string(example)
            .expect("read")
            .matches("\nkind: Policy")
            .count();
        assert!(documents > 0, "{} holds no policy", example.display());
        assert_eq!(
            text.lines().filter(|l| l.starts_with("ok  ")).count(),
            documents,
            "{}: {text}",
            example.display()
        );
    }
}

#[test]
fn policy_check_prints_each_corpus_problem_with_its_file_line_and_column() {
    let corpus = Path::new("policies/tests/corpus");
    let mut cases: Vec<std::path::PathBuf> = std::fs::read_dir(corpus)
        .expect("corpus")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            p.strip_prefix("policies")
                .expect("under policies")
                .to_owned()
        })
        .collect();
    cases.sort();
    // From the crate's directory, where the expectations' file names are relative to.
    let out = homeostat()
        .current_dir("policies")
        .args(["policy", "check"])
        .args(&cases)
        .output()
        .expect("runs");
    let text = refusal(&out);
    for case in &cases {
        let expected =
            std::fs::read_to_string(Path::new("policies").join(case).with_extension("expected"))
                .expect("expectation");
        for line in expected.lines().filter(|l| !l.is_empty()) {
            let want = format!("{}:{line}", case.display());
            assert!(
                text.lines().any(|l| l == want),
                "{want:?} missing from:\n{text}"
            );
        }
    }
}

#[test]
fn the_probes_a_policy_may_name_are_the_sensors_catalogue() {
    use homeostat_sensor::probes::Probe;
    let sensor: Vec<(&str, bool)> = Probe::ALL
        .iter()
        .map(|p| (p.name(), p.is_latency()))
        .collect();
    assert_eq!(
        homeostat_policies::bounds::PROBES.to_vec(),
        sensor,
        "policies' probe catalogue (name, sampled) drifted from the sensor's"
    );
}
