//! The gate's newer rules, one at a time and in their order: `schedule`, `condition`,
//! `escalation`, `budget`, `blast-radius`; and the history read through an `ActionLog`.
//!
//! NOW is Tuesday 2023-11-14 22:13:20 UTC, 23:13:20 in Berlin.

use std::time::Duration;

use homeostat_core::{
    Action, ActionKind, AnomalyKind, AnomalySummary, Mode, ObjectRef, Proposal, Timestamp,
    VerdictKind, WorkloadRef,
};
use homeostat_policies::{MemoryLog, NextStep, PastAction, PolicySet, evaluate, evaluate_logged};

const NOW: Timestamp = Timestamp::from_secs(1_700_000_000);
const MIN: Duration = Duration::from_secs(60);

/// A policy `web` allowing scale-hpa and restart-pods in enforce, cooldown 5m, ceiling 20,
/// with `extra` appended to its spec.
fn set(extra: &str) -> PolicySet {
    let text = format!(
        "apiVersion: homeostat.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: web\nspec:\n  \
         mode: enforce\n  actions: [scale-hpa, restart-pods]\n  cooldown: 5m\n  \
         maxReplicas: 20\n{extra}"
    );
    PolicySet::from_str("gate.yaml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn scale(namespace: &str, workload: &str) -> Proposal {
    Proposal {
        anomaly: Some(AnomalySummary {
            kind: AnomalyKind::Saturation,
            score: 0.9,
        }),
        ..Proposal::new(
            WorkloadRef::deployment(namespace, workload),
            Action::ScaleHpa {
                hpa: ObjectRef {
                    api_version: "autoscaling/v2".into(),
                    kind: "HorizontalPodAutoscaler".into(),
                    namespace: namespace.into(),
                    name: workload.into(),
                },
                min_replicas: 6,
                previous_min_replicas: 3,
            },
            "saturated",
            NOW - Duration::from_secs(10),
            3,
        )
    }
}

fn restart(replicas: u32, unavailable: Option<u32>) -> Proposal {
    let w = WorkloadRef::deployment("shop", "web");
    Proposal {
        anomaly: Some(AnomalySummary {
            kind: AnomalyKind::CrashLoop,
            score: 0.99,
        }),
        unavailable_replicas: unavailable,
        ..Proposal::new(
            w.clone(),
            Action::RestartPods {
                workload: w,
                pod: "web-0".into(),
                uid: None,
            },
            "crash loop",
            NOW - Duration::from_secs(10),
            replicas,
        )
    }
}

fn past(namespace: &str, workload: &str, kind: ActionKind, ago: Duration) -> PastAction {
    PastAction {
        workload: WorkloadRef::deployment(namespace, workload),
        kind,
        time: NOW - ago,
        applied: true,
        helped: None,
    }
}

mod support;
use support::check;

#[test]
fn conditions_allow_only_when_all_hold() {
    let s = set(
        "  conditions:\n    - \"anomaly.score > 0.8 && workload.namespace == 'shop'\"\n    \
         - \"recent.scaleHpa < 2\"\n",
    );
    let v = evaluate(&s, &scale("shop", "web"), Mode::Enforce, &[], NOW);
    check(&v, VerdictKind::Act, "allowed", "allowed by web (enforce)");

    let v = evaluate(&s, &scale("billing", "web"), Mode::Enforce, &[], NOW);
    check(
        &v,
        VerdictKind::Deny,
        "condition",
        "condition \"anomaly.score > 0.8 && workload.namespace == 'shop'\" is false",
    );

    // Two scale-ups in the last hour (past their cooldown): `recent.scaleHpa` is 2.
    let h = [
        past("shop", "web", ActionKind::ScaleHpa, 10 * MIN),
        past("shop", "web", ActionKind::ScaleHpa, 40 * MIN),
        past("shop", "web", ActionKind::ScaleHpa, 70 * MIN),
    ];
    let v = evaluate(&s, &scale("shop", "web"), Mode::Enforce, &h, NOW);
    check(
        &v,
        VerdictKind::Deny,
        "condition",
        "condition \"recent.scaleHpa < 2\" is false",
    );
}

#[test]
fn a_condition_that_cannot_be_decided_denies() {
    let s = set("  conditions: [\"anomaly.score > 0.5\"]\n");
    let mut p = scale("shop", "web");
    p.anomaly = None;
    let v = evaluate(&s, &p, Mode::Enforce, &[], NOW);
    check(
        &v,
        VerdictKind::Deny,
        "condition",
        "condition \"anomaly.score > 0.5\" cannot be evaluated: Undeclared reference to \
         'anomaly': denied",
    );
}

#[test]
fn conditions_read_the_time_in_the_schedules_zone() {
    // 22:13 UTC is 23:13 in Berlin: only the Berlin policy sees hour 23.
    let utc = set("  conditions: [\"time.hour == 23 && time.weekday == 'tue'\"]\n");
    let berlin = set(
        "  conditions: [\"time.hour == 23 && time.weekday == 'tue'\"]\n  schedule:\n    \
         timeZone: Europe/Berlin\n",
    );
    let p = scale("shop", "web");
    assert_eq!(
        evaluate(&utc, &p, Mode::Enforce, &[], NOW).rule,
        "condition"
    );
    assert_eq!(
        evaluate(&berlin, &p, Mode::Enforce, &[], NOW).rule,
        "allowed"
    );
}

#[test]
fn deny_windows_refuse_everything_inside_them() {
    let s = set(
        "  schedule:\n    timeZone: Europe/Berlin\n    deny:\n      \
         - {days: [sat, sun], from: \"00:00\", to: \"24:00\"}\n      \
         - {days: [tue], from: \"23:00\", to: \"23:30\"}\n",
    );
    let v = evaluate(&s, &scale("shop", "web"), Mode::Enforce, &[], NOW);
    check(
        &v,
        VerdictKind::Deny,
        "schedule",
        "tue 23:13 Europe/Berlin is inside the deny window [tue] 23:00–23:30",
    );
    // Twenty minutes later the window is over.
    let later = NOW + 20 * MIN;
    let mut p = scale("shop", "web");
    p.evidence_time = later;
    assert_eq!(evaluate(&s, &p, Mode::Enforce, &[], later).rule, "allowed");
}

#[test]
fn maintenance_windows_hold_back_destructive_actions_only() {
    let s = set("  maxUnavailable: 1\n  schedule:\n    maintenance:\n      \
         - {days: [sat, sun], from: \"02:00\", to: \"06:00\"}\n");
    let v = evaluate(&s, &restart(3, Some(0)), Mode::Enforce, &[], NOW);
    check(
        &v,
        VerdictKind::Deny,
        "schedule",
        "tue 22:13 UTC is outside every maintenance window ([sat,sun] 02:00–06:00); \
         destructive actions wait for one",
    );
    // Adding capacity is not destructive: it does not wait.
    let v = evaluate(&s, &scale("shop", "web"), Mode::Enforce, &[], NOW);
    assert_eq!(v.rule, "allowed");
}

#[test]
fn an_action_that_did_not_help_is_not_repeated_and_names_the_next_step() {
    let s = set("  escalation:\n    verifyWithin: 10m\n    next: restart-pods\n");
    let mut failed = past("shop", "web", ActionKind::ScaleHpa, 30 * MIN);
    failed.helped = Some(false);
    let v = evaluate(
        &s,
        &scale("shop", "web"),
        Mode::Enforce,
        &[failed.clone()],
        NOW,
    );
    check(
        &v,
        VerdictKind::Deny,
        "escalation",
        "the last scale-hpa on shop/Deployment/web did not help: not repeated; next step \
         restart-pods",
    );
    // Another workload is not held back by it.
    let v = evaluate(
        &s,
        &scale("shop", "cart"),
        Mode::Enforce,
        &[failed.clone()],
        NOW,
    );
    assert_eq!(v.rule, "allowed");
    // A later scale-up that has not been judged yet is the one that counts.
    let h = [failed, past("shop", "web", ActionKind::ScaleHpa, 3 * MIN)];
    let v = evaluate(&s, &scale("shop", "web"), Mode::Enforce, &h, NOW);
    assert_eq!(v.rule, "cooldown");

    // However long ago: a failure three hours back still holds, unless a newer scale-up came
    // after it.
    let mut long_ago = past("shop", "web", ActionKind::ScaleHpa, 180 * MIN);
    long_ago.helped = Some(false);
    let other = past("shop", "cart", ActionKind::ScaleHpa, 120 * MIN);
    let h = [other.clone(), long_ago.clone()];
    let v = evaluate(&s, &scale("shop", "web"), Mode::Enforce, &h, NOW);
    assert_eq!(v.rule, "escalation");
    let newer = past("shop", "web", ActionKind::ScaleHpa, 120 * MIN);
    let h = [newer, long_ago, other];
    let v = evaluate(&s, &scale("shop", "web"), Mode::Enforce, &h, NOW);
    assert_eq!(v.rule, "allowed");

    // What the engine asks: the next step after each kind; a restart escalates to itself,
    // which would loop, so it stops.
    assert_eq!(
        s.next_step("web", ActionKind::ScaleHpa),
        Some(NextStep::Try(ActionKind::RestartPods))
    );
    assert_eq!(
        s.next_step("web", ActionKind::RestartPods),
        Some(NextStep::Stop)
    );
    assert_eq!(s.verify_within("web"), Some(10 * MIN));
    assert_eq!(set("").next_step("web", ActionKind::ScaleHpa), None);
}

#[test]
fn without_an_escalation_only_the_cooldown_paces_a_repeat() {
    let mut failed = past("shop", "web", ActionKind::ScaleHpa, 30 * MIN);
    failed.helped = Some(false);
    let v = evaluate(
        &set(""),
        &scale("shop", "web"),
        Mode::Enforce,
        &[failed],
        NOW,
    );
    check(&v, VerdictKind::Act, "allowed", "allowed by web (enforce)");
}

#[test]
fn putting_back_what_did_not_help_is_never_refused() {
    let mut failed = past("shop", "web", ActionKind::ScaleHpa, 30 * MIN);
    failed.helped = Some(false);
    let s = set("  escalation:\n    verifyWithin: 10m\n");
    let mut restore = scale("shop", "web");
    restore.action = Action::ScaleHpa {
        hpa: ObjectRef {
            api_version: "autoscaling/v2".into(),
            kind: "HorizontalPodAutoscaler".into(),
            namespace: "shop".into(),
            name: "web".into(),
        },
        min_replicas: 3,
        previous_min_replicas: 6,
    };
    let v = evaluate(&s, &restore, Mode::Enforce, &[failed.clone()], NOW);
    check(&v, VerdictKind::Act, "allowed", "allowed by web (enforce)");
    // While another raise is refused.
    let v = evaluate(&s, &scale("shop", "web"), Mode::Enforce, &[failed], NOW);
    check(
        &v,
        VerdictKind::Deny,
        "escalation",
        "the last scale-hpa on shop/Deployment/web did not help: not repeated; stop and \
         raise an Event",
    );
}

#[test]
fn budgets_count_the_policys_kinds_over_their_scope_and_window() {
    let s = set(
        "  budgets:\n    - {max: 2, per: 1h}\n    - {max: 3, per: 1h, scope: namespace}\n    \
         - {max: 4, per: 2h, scope: cluster}\n",
    );
    let p = scale("shop", "web");
    // (namespace, workload, kind, minutes ago)
    type Past = (&'static str, &'static str, ActionKind, u32);
    let cases: [(&[Past], &str); 3] = [
        // One restart and one scale-up on the workload this hour (a taint is not a kind
        // this policy allows; 61 minutes ago is out of the window): its budget of 2 is spent.
        (
            &[
                ("shop", "web", ActionKind::RestartPods, 20),
                ("shop", "web", ActionKind::ScaleHpa, 50),
                ("shop", "web", ActionKind::ScaleHpa, 61),
                ("shop", "web", ActionKind::TaintNode, 5),
            ],
            "2 actions on shop/Deployment/web in the last 1h: the budget is 2 per 1h (workload)",
        ),
        // Three in the namespace, on other workloads.
        (
            &[
                ("shop", "cart", ActionKind::ScaleHpa, 20),
                ("shop", "cart", ActionKind::RestartPods, 30),
                ("shop", "search", ActionKind::ScaleHpa, 40),
            ],
            "3 actions in namespace shop in the last 1h: the budget is 3 per 1h (namespace)",
        ),
        // Four in the cluster over two hours.
        (
            &[
                ("a", "x", ActionKind::ScaleHpa, 20),
                ("b", "x", ActionKind::ScaleHpa, 50),
                ("c", "x", ActionKind::ScaleHpa, 80),
                ("d", "x", ActionKind::ScaleHpa, 110),
            ],
            "4 actions in the cluster in the last 2h: the budget is 4 per 2h (cluster)",
        ),
    ];
    for (actions, reason) in cases {
        let h: Vec<PastAction> = actions
            .iter()
            .map(|(ns, w, kind, ago)| past(ns, w, *kind, *ago * MIN))
            .collect();
        let v = evaluate(&s, &p, Mode::Enforce, &h, NOW);
        check(&v, VerdictKind::Deny, "budget", reason);
        // One fewer and the budget holds.
        let v = evaluate(&s, &p, Mode::Enforce, &h[1..], NOW);
        assert_eq!(v.rule, "allowed", "{reason}");
    }
    // Dry-run plans count in dry-run only, as for cooldowns.
    let planned: Vec<PastAction> = [20, 30]
        .map(|m| PastAction {
            applied: false,
            ..past("shop", "web", ActionKind::RestartPods, m * MIN)
        })
        .to_vec();
    assert_eq!(
        evaluate(&s, &p, Mode::Enforce, &planned, NOW).rule,
        "allowed"
    );
    assert_eq!(evaluate(&s, &p, Mode::DryRun, &planned, NOW).rule, "budget");
}

#[test]
fn blast_radius_counts_the_restarted_pod() {
    // maxUnavailable 1 (the default): only with every pod available.
    let s = set("");
    assert_eq!(
        evaluate(&s, &restart(3, Some(0)), Mode::Enforce, &[], NOW).rule,
        "allowed"
    );
    check(
        &evaluate(&s, &restart(3, Some(1)), Mode::Enforce, &[], NOW),
        VerdictKind::Deny,
        "blast-radius",
        "1 of 3 pods already unavailable; a restart makes 2, more than maxUnavailable 1 (1)",
    );
    check(
        &evaluate(&s, &restart(3, None), Mode::Enforce, &[], NOW),
        VerdictKind::Deny,
        "blast-radius",
        "the proposal does not say how many pods are unavailable: refusing to restart blind",
    );
    // 25% of 10 is 2.5, rounded up to 3.
    let s = set("  maxUnavailable: \"25%\"\n  respectPodDisruptionBudgets: true\n");
    assert_eq!(
        evaluate(&s, &restart(10, Some(2)), Mode::Enforce, &[], NOW).rule,
        "allowed"
    );
    check(
        &evaluate(&s, &restart(10, Some(3)), Mode::Enforce, &[], NOW),
        VerdictKind::Deny,
        "blast-radius",
        "3 of 10 pods already unavailable; a restart makes 4, more than maxUnavailable 25% (3)",
    );
    // Scaling takes no pod down.
    let mut p = scale("shop", "web");
    p.unavailable_replicas = Some(3);
    assert_eq!(evaluate(&s, &p, Mode::Enforce, &[], NOW).rule, "allowed");
}

#[test]
fn the_first_refusing_rule_decides_in_the_documented_order() {
    // Everything is wrong at once; each fix reveals the next rule.
    let s = set(
        "  conditions: [\"anomaly.score > 0.95\"]\n  budgets: [{max: 1, per: 1h}]\n  \
         schedule:\n    deny: [{days: [tue], from: \"22:00\", to: \"23:00\"}]\n  \
         escalation: {verifyWithin: 5m}\n",
    );
    let mut p = restart(3, Some(1));
    p.anomaly = Some(AnomalySummary {
        kind: AnomalyKind::CrashLoop,
        score: 0.9,
    });
    let mut failed = past("shop", "web", ActionKind::RestartPods, 2 * MIN);
    failed.helped = Some(false);
    let mut h = vec![failed];
    let mut now = NOW;
    let mut rules = Vec::new();
    let mut evidence_age = 2 * MIN;
    let mut run = |p: &Proposal, h: &[PastAction], now: Timestamp, age: Duration| {
        let mut p = p.clone();
        p.evidence_time = now - age;
        rules.push(evaluate(&s, &p, Mode::Enforce, h, now).rule);
    };
    run(&p, &h, now, evidence_age); // 2m-old evidence for a restart: stale
    evidence_age = Duration::from_secs(10);
    run(&p, &h, now, evidence_age); // tue 22:13: inside the deny window
    now = NOW + 50 * MIN;
    h[0].time = now - 2 * MIN;
    run(&p, &h, now, evidence_age); // score 0.9
    p.anomaly = Some(AnomalySummary {
        kind: AnomalyKind::CrashLoop,
        score: 0.99,
    });
    run(&p, &h, now, evidence_age); // the last restart did not help
    h[0].helped = None;
    run(&p, &h, now, evidence_age); // the last restart 2m ago
    h[0].time = now - 30 * MIN;
    run(&p, &h, now, evidence_age); // one action this hour
    h[0].time = now - 2 * 60 * MIN;
    run(&p, &h, now, evidence_age); // a pod already down
    p.unavailable_replicas = Some(0);
    run(&p, &h, now, evidence_age);
    assert_eq!(
        rules,
        [
            "stale-data",
            "schedule",
            "condition",
            "escalation",
            "cooldown",
            "budget",
            "blast-radius",
            "allowed",
        ]
    );
}

#[test]
fn the_history_can_come_from_an_action_log() {
    let s = set("  budgets: [{max: 1, per: 1h}]\n");
    let p = scale("shop", "web");
    let mut log = MemoryLog::new();
    let since = NOW - Duration::from_secs(86_400);
    let v = evaluate_logged(&s, &p, Mode::Enforce, &log, since, NOW).expect("reads");
    assert_eq!(v.rule, "allowed");
    log.record(past("shop", "web", ActionKind::RestartPods, 20 * MIN));
    let v = evaluate_logged(&s, &p, Mode::Enforce, &log, since, NOW).expect("reads");
    assert_eq!(v.rule, "budget");
    // What the log holds before `since` is not read.
    let v = evaluate_logged(&s, &p, Mode::Enforce, &log, NOW - 10 * MIN, NOW).expect("reads");
    assert_eq!(v.rule, "allowed");
    assert_eq!(log.all().len(), 1);
}
