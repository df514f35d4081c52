//! Evaluation: every rule, in order, with the verdict kind, rule name and reason it yields.

use std::time::Duration;

use homeostat_core::{
    Action, ActionKind, AnomalyKind, AnomalySummary, Mode, ObjectRef, Proposal, Timestamp,
    VerdictKind, WorkloadRef,
};
use homeostat_policies::{PastAction, PolicySet, evaluate};

const NOW: Timestamp = Timestamp::from_secs(1_700_000_000);

fn set(spec: &str) -> PolicySet {
    let text = format!(
        "apiVersion: homeostat.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: web\nspec:\n{spec}"
    );
    PolicySet::from_str("test.yaml", &text).expect("test policy loads")
}

/// Enforce, scale-hpa and restart-pods, shop namespace, legacy excluded, cooldown 5m,
/// ceiling 20, maxDataAge 2m.
fn web() -> PolicySet {
    set(
        "  mode: enforce\n  actions: [scale-hpa, restart-pods]\n  target:\n    \
         namespaces: [shop]\n    exclude: [legacy]\n  cooldown: 5m\n  maxReplicas: 20\n  \
         maxDataAge: 2m\n",
    )
}

fn scale(workload: &str, from: u32, to: u32) -> Proposal {
    let w = WorkloadRef::deployment("shop", workload);
    Proposal {
        anomaly: Some(AnomalySummary {
            kind: AnomalyKind::Saturation,
            score: 0.9,
        }),
        ..Proposal::new(
            w.clone(),
            Action::ScaleHpa {
                hpa: ObjectRef {
                    api_version: "autoscaling/v2".into(),
                    kind: "HorizontalPodAutoscaler".into(),
                    namespace: w.namespace.clone(),
                    name: w.name.clone(),
                },
                min_replicas: to,
                previous_min_replicas: from,
            },
            "saturated",
            NOW - Duration::from_secs(10),
            from,
        )
    }
}

fn restart(workload: &str, age: Duration) -> Proposal {
    let w = WorkloadRef::deployment("shop", workload);
    Proposal {
        anomaly: Some(AnomalySummary {
            kind: AnomalyKind::MemoryLeak,
            score: 0.95,
        }),
        unavailable_replicas: Some(0),
        ..Proposal::new(
            w.clone(),
            Action::RestartPods {
                workload: w,
                pod: format!("{workload}-0"),
                uid: None,
            },
            "stuck",
            NOW - age,
            3,
        )
    }
}

fn past(workload: &str, kind: ActionKind, ago: Duration, applied: bool) -> PastAction {
    PastAction {
        workload: WorkloadRef::deployment("shop", workload),
        kind,
        time: NOW - ago,
        applied,
        helped: None,
    }
}

mod support;
use support::check;

#[test]
fn allowed_in_enforce_acts_with_the_proposed_action() {
    let p = scale("checkout", 3, 6);
    let v = evaluate(&web(), &p, Mode::Enforce, &[], NOW);
    check(&v, VerdictKind::Act, "allowed", "allowed by web (enforce)");
    assert_eq!(v.policy.as_deref(), Some("web"));
    assert_eq!(v.action, p.action);
}

#[test]
fn no_policy_for_another_namespace_or_action() {
    let mut p = scale("checkout", 3, 6);
    p.workload.namespace = "billing".into();
    let v = evaluate(&web(), &p, Mode::Enforce, &[], NOW);
    check(
        &v,
        VerdictKind::Deny,
        "no-policy",
        "no policy allows scale-hpa for billing/Deployment/checkout",
    );
    assert_eq!(v.policy, None);

    let only_restarts = set("  mode: enforce\n  actions: [restart-pods]\n  cooldown: 1m\n");
    let v = evaluate(
        &only_restarts,
        &scale("checkout", 3, 6),
        Mode::Enforce,
        &[],
        NOW,
    );
    assert_eq!((v.kind, v.rule.as_str()), (VerdictKind::Deny, "no-policy"));
}

#[test]
fn listed_workloads_only_and_excluded_ones_never() {
    let v = evaluate(&web(), &scale("legacy", 3, 6), Mode::Enforce, &[], NOW);
    check(
        &v,
        VerdictKind::Deny,
        "no-policy",
        "no policy allows scale-hpa for shop/Deployment/legacy",
    );
    let listed = set(
        "  mode: enforce\n  actions: [scale-hpa]\n  target:\n    workloads: [cart]\n  \
                      cooldown: 1m\n  maxReplicas: 9\n",
    );
    let miss = evaluate(&listed, &scale("checkout", 3, 6), Mode::Enforce, &[], NOW);
    assert_eq!(miss.rule, "no-policy");
    let hit = evaluate(&listed, &scale("cart", 3, 6), Mode::Enforce, &[], NOW);
    assert_eq!(hit.kind, VerdictKind::Act);
}

#[test]
fn the_first_matching_policy_in_load_order_decides() {
    let text = "apiVersion: homeostat.dev/v1alpha1\nkind: Policy\nmetadata: {name: cart-only}\n\
                spec: {mode: dry-run, actions: [scale-hpa], target: {workloads: [cart]}, \
                cooldown: 1m, maxReplicas: 5}\n---\n\
                apiVersion: homeostat.dev/v1alpha1\nkind: Policy\nmetadata: {name: all}\n\
                spec: {mode: enforce, actions: [scale-hpa], cooldown: 1m, maxReplicas: 50}\n";
    let s = PolicySet::from_str("t.yaml", text).expect("loads");
    let cart = evaluate(&s, &scale("cart", 1, 2), Mode::Enforce, &[], NOW);
    assert_eq!(
        (cart.kind, cart.policy.as_deref()),
        (VerdictKind::DryRun, Some("cart-only"))
    );
    let other = evaluate(&s, &scale("checkout", 1, 2), Mode::Enforce, &[], NOW);
    assert_eq!(
        (other.kind, other.policy.as_deref()),
        (VerdictKind::Act, Some("all"))
    );
}

#[test]
fn the_stricter_mode_wins() {
    let p = scale("checkout", 3, 6);
    let v = evaluate(&web(), &p, Mode::DryRun, &[], NOW);
    check(
        &v,
        VerdictKind::DryRun,
        "allowed",
        "allowed by web (dry-run)",
    );

    let observe =
        set("  mode: observe\n  actions: [scale-hpa]\n  cooldown: 1m\n  maxReplicas: 9\n");
    let v = evaluate(&observe, &p, Mode::Enforce, &[], NOW);
    check(
        &v,
        VerdictKind::Observe,
        "mode",
        "effective mode is observe (global enforce, policy observe): record only",
    );
    let v = evaluate(&web(), &p, Mode::Observe, &[], NOW);
    assert_eq!((v.kind, v.rule.as_str()), (VerdictKind::Observe, "mode"));
}

#[test]
fn stale_evidence_is_denied() {
    let mut p = scale("checkout", 3, 6);
    p.evidence_time = NOW - Duration::from_secs(190);
    let v = evaluate(&web(), &p, Mode::Enforce, &[], NOW);
    check(
        &v,
        VerdictKind::Deny,
        "stale-data",
        "evidence is 3m10s old, more than maxDataAge 2m",
    );
    p.evidence_time = NOW - Duration::from_secs(120);
    assert_eq!(
        evaluate(&web(), &p, Mode::Enforce, &[], NOW).kind,
        VerdictKind::Act
    );
    p.evidence_time = Timestamp::EPOCH;
    let v = evaluate(&web(), &p, Mode::Enforce, &[], NOW);
    assert_eq!((v.kind, v.rule.as_str()), (VerdictKind::Deny, "stale-data"));
}

#[test]
fn destructive_actions_need_fresher_evidence() {
    let v = evaluate(
        &web(),
        &restart("checkout", Duration::from_secs(70)),
        Mode::Enforce,
        &[],
        NOW,
    );
    check(
        &v,
        VerdictKind::Deny,
        "stale-data",
        "evidence is 1m10s old; a destructive restart-pods needs evidence at most 1m old \
         (half of maxDataAge 2m)",
    );
    let v = evaluate(
        &web(),
        &restart("checkout", Duration::from_secs(60)),
        Mode::Enforce,
        &[],
        NOW,
    );
    assert_eq!(v.kind, VerdictKind::Act);
    let mut lower = scale("checkout", 6, 3);
    lower.evidence_time = NOW - Duration::from_secs(70);
    assert_eq!(
        evaluate(&web(), &lower, Mode::Enforce, &[], NOW).rule,
        "stale-data"
    );
}

#[test]
fn cooldown_counts_applied_actions_up_to_its_boundary() {
    let p = scale("checkout", 3, 6);
    let recent = [past(
        "checkout",
        ActionKind::ScaleHpa,
        Duration::from_secs(120),
        true,
    )];
    let v = evaluate(&web(), &p, Mode::Enforce, &recent, NOW);
    check(
        &v,
        VerdictKind::Deny,
        "cooldown",
        "cooldown: last scale-hpa 2m ago, cooldown 5m",
    );
    let just_inside = [past(
        "checkout",
        ActionKind::ScaleHpa,
        Duration::from_secs(299),
        true,
    )];
    assert_eq!(
        evaluate(&web(), &p, Mode::Enforce, &just_inside, NOW).rule,
        "cooldown"
    );
    let boundary = [past(
        "checkout",
        ActionKind::ScaleHpa,
        Duration::from_secs(300),
        true,
    )];
    assert_eq!(
        evaluate(&web(), &p, Mode::Enforce, &boundary, NOW).kind,
        VerdictKind::Act
    );
    let unrelated = [
        past("cart", ActionKind::ScaleHpa, Duration::from_secs(10), true),
        past(
            "checkout",
            ActionKind::RestartPods,
            Duration::from_secs(10),
            true,
        ),
    ];
    assert_eq!(
        evaluate(&web(), &p, Mode::Enforce, &unrelated, NOW).kind,
        VerdictKind::Act
    );
}

#[test]
fn dry_run_plans_cool_down_in_dry_run_but_not_in_enforce() {
    let p = scale("checkout", 3, 6);
    let planned = [
        past(
            "checkout",
            ActionKind::ScaleHpa,
            Duration::from_secs(240),
            true,
        ),
        past(
            "checkout",
            ActionKind::ScaleHpa,
            Duration::from_secs(60),
            false,
        ),
    ];
    let v = evaluate(&web(), &p, Mode::DryRun, &planned, NOW);
    check(
        &v,
        VerdictKind::Deny,
        "cooldown",
        "cooldown: last scale-hpa (dry-run) 1m ago, cooldown 5m",
    );
    let v = evaluate(&web(), &p, Mode::Enforce, &planned, NOW);
    check(
        &v,
        VerdictKind::Deny,
        "cooldown",
        "cooldown: last scale-hpa 4m ago, cooldown 5m",
    );
    let only_planned = &planned[1..];
    assert_eq!(
        evaluate(&web(), &p, Mode::Enforce, only_planned, NOW).kind,
        VerdictKind::Act
    );
}

#[test]
fn scale_ups_are_clamped_to_the_ceiling() {
    let v = evaluate(&web(), &scale("checkout", 8, 30), Mode::Enforce, &[], NOW);
    check(
        &v,
        VerdictKind::Act,
        "replica-ceiling",
        "allowed by web (enforce); minReplicas bounded from 30 to the ceiling of 20",
    );
    assert!(matches!(
        v.action,
        Action::ScaleHpa {
            min_replicas: 20,
            previous_min_replicas: 8,
            ..
        }
    ));
    let v = evaluate(&web(), &scale("checkout", 8, 20), Mode::Enforce, &[], NOW);
    assert_eq!((v.kind, v.rule.as_str()), (VerdictKind::Act, "allowed"));
}

#[test]
fn a_workload_scaled_without_an_hpa_has_the_same_ceiling() {
    let policies =
        set("  mode: enforce\n  actions: [scale-workload]\n  cooldown: 5m\n  maxReplicas: 20\n");
    let mut p = scale("cart", 8, 30);
    p.action = Action::ScaleWorkload {
        workload: p.workload.clone(),
        replicas: 30,
        previous_replicas: 8,
    };
    let v = evaluate(&policies, &p, Mode::Enforce, &[], NOW);
    check(
        &v,
        VerdictKind::Act,
        "replica-ceiling",
        "allowed by web (enforce); replicas bounded from 30 to the ceiling of 20",
    );
    assert!(matches!(
        v.action,
        Action::ScaleWorkload {
            replicas: 20,
            previous_replicas: 8,
            ..
        }
    ));
    p.action = Action::ScaleWorkload {
        workload: p.workload.clone(),
        replicas: 30,
        previous_replicas: 20,
    };
    let v = evaluate(&policies, &p, Mode::Enforce, &[], NOW);
    check(
        &v,
        VerdictKind::Deny,
        "replica-ceiling",
        "already at the ceiling of 20: replicas is 20",
    );
    // And a policy allowing it without a ceiling does not load.
    let text = "apiVersion: homeostat.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: web\nspec:\n  \
                mode: enforce\n  actions: [scale-workload]\n  cooldown: 5m\n";
    let err = PolicySet::from_str("test.yaml", text).expect_err("no ceiling");
    assert!(
        err.to_string()
            .contains("spec.maxReplicas: required when spec.actions includes scale-workload"),
        "{err}"
    );
}

#[test]
fn nothing_left_below_the_ceiling_is_denied() {
    for from in [20, 25] {
        let v = evaluate(
            &web(),
            &scale("checkout", from, 30),
            Mode::Enforce,
            &[],
            NOW,
        );
        check(
            &v,
            VerdictKind::Deny,
            "replica-ceiling",
            &format!("already at the ceiling of 20: minReplicas is {from}"),
        );
    }
}

#[test]
fn a_clamp_that_lowers_capacity_needs_fresh_evidence() {
    // 25 -> 25 asks for nothing, but the ceiling would lower it to 20: a destructive change.
    let mut p = scale("checkout", 25, 25);
    p.evidence_time = NOW - Duration::from_secs(70);
    assert_eq!(
        evaluate(&web(), &p, Mode::Enforce, &[], NOW).rule,
        "stale-data"
    );
}

#[test]
fn same_inputs_same_verdict() {
    let p = scale("checkout", 8, 30);
    let h = [past(
        "checkout",
        ActionKind::ScaleHpa,
        Duration::from_secs(900),
        true,
    )];
    let first = evaluate(&web(), &p, Mode::DryRun, &h, NOW);
    for _ in 0..10 {
        assert_eq!(evaluate(&web(), &p, Mode::DryRun, &h, NOW), first);
    }
}
