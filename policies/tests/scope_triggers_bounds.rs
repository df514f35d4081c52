//! Label selectors in scope, triggers, and the bounds on one action (`scale`, `throttle`),
//! through the evaluator: the verdict, the rule and the reason each yields.

use std::collections::BTreeMap;
use std::time::Duration;

use homeostat_core::{
    Action, AnomalyKind, AnomalySummary, ForecastSummary, Mode, Proposal, Timestamp, Verdict,
    VerdictKind, WorkloadRef,
};
use homeostat_policies::{PolicySet, evaluate};

mod support;
use support::check;

const NOW: Timestamp = Timestamp::from_secs(1_700_000_000);

fn set(spec: &str) -> PolicySet {
    let text = format!(
        "apiVersion: homeostat.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: web\nspec:\n  \
         mode: enforce\n  cooldown: 5m\n{spec}"
    );
    PolicySet::from_str("test.yaml", &text).expect("test policy loads")
}

/// The verdict in enforce, with no history.
fn judge(set: &PolicySet, p: &Proposal) -> Verdict {
    evaluate(set, p, Mode::Enforce, &[], NOW)
}

fn proposal(action: Action, current: u32) -> Proposal {
    Proposal {
        anomaly: Some(AnomalySummary {
            kind: AnomalyKind::Saturation,
            score: 0.9,
        }),
        unavailable_replicas: Some(0),
        ..Proposal::new(
            WorkloadRef::deployment("shop", "web"),
            action,
            "test",
            NOW - Duration::from_secs(5),
            current,
        )
    }
}

/// `replicas` of shop/web from `from` to `to`, the workload running `from`.
fn scale(from: u32, to: u32) -> Proposal {
    proposal(
        Action::ScaleWorkload {
            workload: WorkloadRef::deployment("shop", "web"),
            replicas: to,
            previous_replicas: from,
        },
        from,
    )
}

fn throttle(probe: &str, rate: f64) -> Proposal {
    let mut p = proposal(
        Action::ThrottleSampling {
            node: "n1".into(),
            probe: probe.into(),
            rate,
        },
        1,
    );
    p.anomaly = Some(AnomalySummary {
        kind: AnomalyKind::SensorOverload,
        score: 0.99,
    });
    p
}

fn labels(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}

fn replicas(action: &Action) -> u32 {
    match action {
        Action::ScaleWorkload { replicas, .. } => *replicas,
        other => panic!("not a scaling: {other:?}"),
    }
}

#[test]
fn a_selector_covers_only_workloads_whose_labels_were_read_and_match() {
    let policies = set(
        "  actions: [scale-workload]\n  maxReplicas: 20\n  target:\n    selector:\n      \
         matchLabels: {app: web}\n      matchExpressions:\n        \
         - {key: track, operator: NotIn, values: [canary]}\n",
    );
    let mut p = scale(2, 3);
    let v = judge(&policies, &p);
    check(
        &v,
        VerdictKind::Deny,
        "no-policy",
        "no policy allows scale-workload for shop/Deployment/web: web selects by label \
         (app=web,track notin (canary)) and the workload's labels were not read",
    );
    p.workload_labels = labels(&[("app", "web"), ("track", "canary")]);
    let v = judge(&policies, &p);
    check(
        &v,
        VerdictKind::Deny,
        "no-policy",
        "no policy allows scale-workload for shop/Deployment/web: web's selector \
         (app=web,track notin (canary)) does not match its labels",
    );
    p.workload_labels = labels(&[("app", "web"), ("track", "stable")]);
    let v = judge(&policies, &p);
    check(&v, VerdictKind::Act, "allowed", "allowed by web (enforce)");
}

#[test]
fn with_triggers_only_a_matching_anomaly_or_forecast_acts_and_restores_need_none() {
    let policies = set(
        "  actions: [scale-workload]\n  maxReplicas: 20\n  triggers:\n    anomalies:\n      \
         - {kind: saturation, minScore: 0.95}\n    forecast: {minRise: 1.3}\n",
    );
    let mut p = scale(2, 3);
    let v = judge(&policies, &p);
    check(
        &v,
        VerdictKind::Deny,
        "trigger",
        "the proposal rests on a saturation anomaly scoring 0.90; triggers are saturation \
         from 0.95, a forecast rise of 1.3x",
    );
    p.anomaly = None;
    p.forecast = Some(ForecastSummary {
        signal: "http.server.request.rate".into(),
        horizon_seconds: 600,
        current: 100.0,
        expected: 140.0,
    });
    let v = judge(&policies, &p);
    check(&v, VerdictKind::Act, "allowed", "allowed by web (enforce)");
    p.forecast.as_mut().expect("set above").expected = 120.0;
    let v = judge(&policies, &p);
    assert_eq!(v.rule, "trigger", "{}", v.reason);
    let mut restore = scale(3, 2);
    restore.anomaly = None;
    let v = judge(&policies, &restore);
    check(&v, VerdictKind::Act, "allowed", "allowed by web (enforce)");
}

#[test]
fn forecasts_are_readable_in_conditions() {
    let policies = set(
        "  actions: [scale-workload]\n  maxReplicas: 20\n  conditions:\n    \
         - \"has(forecast.ratio) && forecast.ratio >= 1.5\"\n",
    );
    let mut p = scale(2, 3);
    p.forecast = Some(ForecastSummary {
        signal: "rps".into(),
        horizon_seconds: 300,
        current: 10.0,
        expected: 16.0,
    });
    assert_eq!(judge(&policies, &p).rule, "allowed");
    p.forecast.as_mut().expect("set above").expected = 12.0;
    let v = judge(&policies, &p);
    assert_eq!(v.rule, "condition", "{}", v.reason);
}

#[test]
fn max_step_cuts_a_raise_to_a_count_or_share_of_the_replicas_above_the_ceiling_cut() {
    let count = set("  actions: [scale-workload]\n  maxReplicas: 20\n  scale: {maxStep: 3}\n");
    let v = judge(&count, &scale(4, 12));
    check(
        &v,
        VerdictKind::Act,
        "max-step",
        "allowed by web (enforce); replicas bounded from 12 to 7 by maxStep 3 from 4",
    );
    assert_eq!(replicas(&v.action), 7);
    let share = set("  actions: [scale-workload]\n  maxReplicas: 9\n  scale: {maxStep: 50%}\n");
    let v = judge(&share, &scale(5, 30));
    check(
        &v,
        VerdictKind::Act,
        "max-step",
        "allowed by web (enforce); replicas bounded from 30 to the ceiling of 9; replicas \
         bounded from 9 to 8 by maxStep 50% from 5",
    );
    let v = judge(&share, &scale(5, 7));
    check(&v, VerdictKind::Act, "allowed", "allowed by web (enforce)");
}

#[test]
fn never_below_need_denies_a_lowering_under_the_need_and_says_the_need() {
    let policies = set("  actions: [scale-workload]\n  maxReplicas: 20\n  scale: {}\n");
    let mut p = scale(6, 2);
    p.anomaly = None;
    p.needed_replicas = Some(4);
    let v = judge(&policies, &p);
    check(
        &v,
        VerdictKind::Deny,
        "needed-replicas",
        "lowering replicas from 6 to 2 would go below the 4 replicas the load needs \
         (scale.neverBelowNeed)",
    );
    p.needed_replicas = Some(2);
    assert_eq!(judge(&policies, &p).rule, "allowed");
    p.needed_replicas = None;
    assert_eq!(
        judge(&policies, &p).rule,
        "allowed",
        "an unknown need bounds nothing"
    );
    let off =
        set("  actions: [scale-workload]\n  maxReplicas: 20\n  scale: {neverBelowNeed: false}\n");
    p.needed_replicas = Some(4);
    assert_eq!(judge(&off, &p).rule, "allowed");
}

#[test]
fn throttle_bounds_name_the_probe_and_the_floor_and_never_hold_back_a_lift() {
    let policies = set(
        "  actions: [throttle-sampling]\n  throttle:\n    probes: [runqueue]\n    \
         minRate: 0.015625\n",
    );
    for (probe, rate, kind, rule, reason) in [
        (
            "runqueue",
            0.25,
            VerdictKind::Act,
            "allowed",
            "allowed by web (enforce)",
        ),
        (
            "runqueue",
            0.0078125,
            VerdictKind::Deny,
            "throttle",
            "rate 0.0078125 for probe \"runqueue\" is below the policy's minRate 0.015625",
        ),
        (
            "block-io",
            0.5,
            VerdictKind::Deny,
            "throttle",
            "probe \"block-io\" may not be throttled: the policy allows runqueue",
        ),
        (
            "block-io",
            1.0,
            VerdictKind::Act,
            "allowed",
            "allowed by web (enforce)",
        ),
    ] {
        check(
            &judge(&policies, &throttle(probe, rate)),
            kind,
            rule,
            reason,
        );
    }
}
