//! Properties of the evaluator over random policy sets and random sequences of proposals and
//! clock steps, replayed the way the engine meets them (each verdict's history feeding the
//! next): no cooldown, budget, blast-radius, replica ceiling or data-age limit is ever
//! exceeded, every verdict is
//! the one an independent model of the rules gives, a denied proposal is never one the engine
//! would plan, and the same inputs always give the same verdict trail.

use std::time::Duration;

use homeostat_core::{
    Action, ActionKind, Mode, ObjectRef, Proposal, Timestamp, VerdictKind, WorkloadRef,
};
use homeostat_policies::{PastAction, PolicySet, Proposed, Replayed, evaluate, replay};
use proptest::prelude::*;
use proptest::sample::subsequence;

const T0: Timestamp = Timestamp::from_secs(1_700_000_000);
const NAMESPACES: [&str; 3] = ["shop", "web", "other"];
const WORKLOADS: [&str; 3] = ["a", "b", "c"];
const KINDS: [ActionKind; 4] = [
    ActionKind::ScaleHpa,
    ActionKind::RestartPods,
    ActionKind::ThrottleSampling,
    ActionKind::TaintNode,
];
const MODES: [Mode; 3] = [Mode::Observe, Mode::DryRun, Mode::Enforce];

/// A policy as the model knows it; rendered to YAML and loaded for the real evaluator.
#[derive(Clone, Debug)]
struct ModelPolicy {
    mode: Mode,
    actions: Vec<ActionKind>,
    namespaces: Vec<&'static str>,
    workloads: Vec<&'static str>,
    exclude: Vec<&'static str>,
    cooldown: Duration,
    max_replicas: Option<u32>,
    max_data_age: Duration,
    /// (max, per, scope)
    budgets: Vec<(u32, Duration, Scope)>,
    /// `maxUnavailable`: a count or a percentage; only with restart-pods.
    max_unavailable: Option<Unavailable>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Scope {
    Workload,
    Namespace,
    Cluster,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Unavailable {
    Count(u32),
    Percent(u32),
}

impl Unavailable {
    fn yaml(self) -> String {
        match self {
            Unavailable::Count(n) => n.to_string(),
            Unavailable::Percent(p) => format!("\"{p}%\""),
        }
    }

    /// Written out from the documentation: a percentage of the replicas, rounded up.
    fn limit(self, replicas: u32) -> u32 {
        match self {
            Unavailable::Count(n) => n,
            Unavailable::Percent(p) => (replicas * p).div_ceil(100),
        }
    }
}

impl ModelPolicy {
    fn yaml(&self, name: &str) -> String {
        let list = |v: &[&str]| format!("[{}]", v.join(", "));
        let actions: Vec<&str> = self.actions.iter().map(|k| k.as_str()).collect();
        let mut doc = format!(
            "apiVersion: homeostat.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: {name}\n\
             spec:\n  mode: {}\n  actions: {}\n  target:\n    namespaces: {}\n    \
             workloads: {}\n    exclude: {}\n  cooldown: {}s\n  maxDataAge: {}s\n",
            self.mode,
            list(&actions),
            list(&self.namespaces),
            list(&self.workloads),
            list(&self.exclude),
            self.cooldown.as_secs(),
            self.max_data_age.as_secs(),
        );
        if let Some(n) = self.max_replicas {
            doc.push_str(&format!("  maxReplicas: {n}\n"));
        }
        if let Some(u) = self.max_unavailable {
            doc.push_str(&format!("  maxUnavailable: {}\n", u.yaml()));
        }
        if !self.budgets.is_empty() {
            doc.push_str("  budgets:\n");
            for (max, per, scope) in &self.budgets {
                let scope = format!("{scope:?}").to_lowercase();
                doc.push_str(&format!(
                    "    - {{max: {max}, per: {}s, scope: {scope}}}\n",
                    per.as_secs()
                ));
            }
        }
        doc
    }

    fn covers(&self, p: &Proposal) -> bool {
        let w = &p.workload;
        self.actions.contains(&p.action.kind())
            && (self.namespaces.is_empty() || self.namespaces.contains(&w.namespace.as_str()))
            && (self.workloads.is_empty() || self.workloads.contains(&w.name.as_str()))
            && !self.exclude.contains(&w.name.as_str())
    }
}

fn budget() -> impl Strategy<Value = (u32, Duration, Scope)> {
    (
        1u32..4,
        (1u64..1800).prop_map(Duration::from_secs),
        proptest::sample::select(vec![Scope::Workload, Scope::Namespace, Scope::Cluster]),
    )
}

fn policy() -> impl Strategy<Value = ModelPolicy> {
    (
        (
            proptest::sample::select(MODES.to_vec()),
            subsequence(KINDS.to_vec(), 1..=4),
            subsequence(NAMESPACES.to_vec(), 0..=2),
            subsequence(WORKLOADS.to_vec(), 0..=2),
            subsequence(WORKLOADS.to_vec(), 0..=2),
            0u64..600,
            1u32..30,
            1u64..300,
        ),
        proptest::collection::vec(budget(), 0..=2),
        prop_oneof![
            1 => Just(None),
            2 => (1u32..4).prop_map(|n| Some(Unavailable::Count(n))),
            1 => (1u32..=100).prop_map(|p| Some(Unavailable::Percent(p))),
        ],
    )
        .prop_map(
            |(
                (mode, actions, namespaces, workloads, mut exclude, cooldown, ceiling, age),
                budgets,
                max_unavailable,
            )| {
                exclude.retain(|e| !workloads.contains(e));
                let max_replicas = actions.contains(&ActionKind::ScaleHpa).then_some(ceiling);
                let max_unavailable =
                    max_unavailable.filter(|_| actions.contains(&ActionKind::RestartPods));
                ModelPolicy {
                    budgets,
                    max_unavailable,
                    mode,
                    actions,
                    namespaces,
                    workloads,
                    exclude,
                    cooldown: Duration::from_secs(cooldown),
                    max_replicas,
                    max_data_age: Duration::from_secs(age),
                }
            },
        )
}

/// What one step proposes.
#[derive(Clone, Debug)]
enum Act {
    Scale { previous: u32, min: u32 },
    Restart,
    Throttle,
    Taint { remove: bool },
}

/// One step: the clock moves, then one proposal is made.
#[derive(Clone, Debug)]
struct Step {
    advance: Duration,
    namespace: &'static str,
    workload: &'static str,
    act: Act,
    /// Seconds between the evidence and the step (negative: from the future); `None`: no
    /// evidence time at all.
    evidence_age: Option<i64>,
    /// The workload's replicas, and how many are unavailable (`None`: not said).
    replicas: u32,
    unavailable: Option<u32>,
}

fn step() -> impl Strategy<Value = Step> {
    let act = prop_oneof![
        (1u32..40, 1u32..60).prop_map(|(previous, min)| Act::Scale { previous, min }),
        Just(Act::Restart),
        Just(Act::Throttle),
        any::<bool>().prop_map(|remove| Act::Taint { remove }),
    ];
    (
        prop_oneof![3 => 0u64..200, 1 => 200u64..900].prop_map(Duration::from_secs),
        proptest::sample::select(NAMESPACES.to_vec()),
        proptest::sample::select(WORKLOADS.to_vec()),
        act,
        prop_oneof![1 => Just(None), 12 => (-30i64..400).prop_map(Some)],
        1u32..8,
        prop_oneof![1 => Just(None), 8 => (0u32..4).prop_map(Some)],
    )
        .prop_map(
            |(advance, namespace, workload, act, evidence_age, replicas, unavailable)| Step {
                advance,
                namespace,
                workload,
                act,
                evidence_age,
                replicas,
                unavailable,
            },
        )
}

/// The proposals of a run of steps, each stamped with its time.
fn proposals(steps: &[Step]) -> Vec<Proposed> {
    let mut now = T0;
    steps
        .iter()
        .map(|s| {
            now = now + s.advance;
            let workload = WorkloadRef::deployment(s.namespace, s.workload);
            let action = match s.act {
                Act::Scale { previous, min } => Action::ScaleHpa {
                    hpa: ObjectRef {
                        api_version: "autoscaling/v2".into(),
                        kind: "HorizontalPodAutoscaler".into(),
                        namespace: s.namespace.into(),
                        name: s.workload.into(),
                    },
                    min_replicas: min,
                    previous_min_replicas: previous,
                },
                Act::Restart => Action::RestartPods {
                    workload: workload.clone(),
                    pod: format!("{}-0", s.workload),
                    uid: None,
                },
                Act::Throttle => Action::ThrottleSampling {
                    node: "node-1".into(),
                    probe: "runqueue".into(),
                    rate: 0.25,
                },
                Act::Taint { remove } => Action::TaintNode {
                    node: "node-1".into(),
                    remove,
                },
            };
            let evidence_time = match s.evidence_age {
                None => Timestamp::EPOCH,
                Some(age) => Timestamp::from_nanos(now.as_nanos() - age * 1_000_000_000),
            };
            Proposed {
                time: now,
                proposal: Proposal {
                    unavailable_replicas: s.unavailable,
                    ..Proposal::new(workload, action, "generated", evidence_time, s.replicas)
                },
            }
        })
        .collect()
}

/// What the model expects: verdict kind, rule, deciding policy's index, and the action as
/// allowed.
#[derive(Clone, Debug, PartialEq)]
struct Expected {
    kind: VerdictKind,
    rule: &'static str,
    policy: Option<usize>,
    action: Action,
}

/// The rules, written out again from their description in `policies/src/evaluate.rs`'s
/// documentation rather than from its code, with a history of their own.
struct Model<'a> {
    policies: &'a [ModelPolicy],
    global: Mode,
    window: Duration,
    /// (workload, kind, time, applied) for every `act` and `dry-run` so far.
    history: Vec<(WorkloadRef, ActionKind, Timestamp, bool)>,
}

impl Model<'_> {
    fn decide(&mut self, now: Timestamp, p: &Proposal) -> Expected {
        let deny = |rule, policy| Expected {
            kind: VerdictKind::Deny,
            rule,
            policy,
            action: p.action.clone(),
        };
        let Some(i) = self.policies.iter().position(|m| m.covers(p)) else {
            return deny("no-policy", None);
        };
        let m = &self.policies[i];
        let mode = self.global.min(m.mode);
        if mode == Mode::Observe {
            return Expected {
                kind: VerdictKind::Observe,
                rule: "mode",
                policy: Some(i),
                action: p.action.clone(),
            };
        }
        // The ceiling: Some(Ok(bounded)) clamps, Some(Err(())) refuses, None leaves it.
        let ceiling = match &p.action {
            Action::ScaleHpa {
                hpa,
                min_replicas: min,
                previous_min_replicas: prev,
            } => {
                let c = m.max_replicas.expect("scale-hpa policies have a ceiling");
                if *min <= c {
                    None
                } else if min > prev && c <= *prev {
                    Some(Err(()))
                } else {
                    Some(Ok(Action::ScaleHpa {
                        hpa: hpa.clone(),
                        min_replicas: c,
                        previous_min_replicas: *prev,
                    }))
                }
            }
            _ => None,
        };
        let takes_capacity = |a: &Action| match a {
            Action::ScaleHpa {
                min_replicas,
                previous_min_replicas,
                ..
            } => min_replicas < previous_min_replicas,
            Action::RestartPods { .. } => true,
            _ => false,
        };
        let destructive =
            takes_capacity(&p.action) || matches!(&ceiling, Some(Ok(a)) if takes_capacity(a));
        if p.evidence_time == Timestamp::EPOCH {
            return deny("stale-data", Some(i));
        }
        let age = Duration::from_nanos((now.as_nanos() - p.evidence_time.as_nanos()).max(0) as u64);
        let limit = if destructive {
            m.max_data_age / 2
        } else {
            m.max_data_age
        };
        if age > limit {
            return deny("stale-data", Some(i));
        }
        let kind = p.action.kind();
        let since = now - self.window;
        let last = self
            .history
            .iter()
            .filter(|(w, k, t, applied)| {
                *w == p.workload && *k == kind && *t >= since && (*applied || mode == Mode::DryRun)
            })
            .map(|(_, _, t, _)| *t)
            .max();
        if last.is_some_and(|t| now.since(t) < m.cooldown) {
            return deny("cooldown", Some(i));
        }
        for (max, per, scope) in &m.budgets {
            let used = self
                .history
                .iter()
                .filter(|(w, k, t, applied)| {
                    m.actions.contains(k)
                        && in_scope(*scope, w, &p.workload)
                        && *t >= since
                        && now.since(*t) < *per
                        && (*applied || mode == Mode::DryRun)
                })
                .count();
            if used >= *max as usize {
                return deny("budget", Some(i));
            }
        }
        let bounded_kind = match &ceiling {
            Some(Ok(a)) => a.kind(),
            _ => kind,
        };
        if bounded_kind == ActionKind::RestartPods {
            let limit = m
                .max_unavailable
                .unwrap_or(Unavailable::Count(1))
                .limit(p.current_replicas);
            match p.unavailable_replicas {
                Some(u) if u < limit => {}
                _ => return deny("blast-radius", Some(i)),
            }
        }
        let (rule, action) = match ceiling {
            Some(Err(())) => return deny("replica-ceiling", Some(i)),
            Some(Ok(bounded)) => ("replica-ceiling", bounded),
            None => ("allowed", p.action.clone()),
        };
        let kind_of = if mode == Mode::Enforce {
            VerdictKind::Act
        } else {
            VerdictKind::DryRun
        };
        self.history
            .push((p.workload.clone(), kind, now, kind_of == VerdictKind::Act));
        Expected {
            kind: kind_of,
            rule,
            policy: Some(i),
            action,
        }
    }
}

fn in_scope(scope: Scope, past: &WorkloadRef, now: &WorkloadRef) -> bool {
    match scope {
        Scope::Workload => past == now,
        Scope::Namespace => past.namespace == now.namespace,
        Scope::Cluster => true,
    }
}

/// The index of policy `p{i}`.
fn policy_index(name: Option<&str>) -> Option<usize> {
    name.and_then(|n| n.strip_prefix('p'))
        .and_then(|i| i.parse().ok())
}

fn load(policies: &[ModelPolicy]) -> PolicySet {
    let text: Vec<String> = policies
        .iter()
        .enumerate()
        .map(|(i, p)| p.yaml(&format!("p{i}")))
        .collect();
    PolicySet::from_str("generated.yaml", &text.join("---\n"))
        .unwrap_or_else(|e| panic!("generated policies load: {e}\n{}", text.join("---\n")))
}

/// Whether the engine would hand the verdict's action to an actuator (plan, and in enforce
/// apply): only for `act` and `dry-run`, as `brain/src/engine.rs` matches on the kind.
fn reaches_actuator(kind: VerdictKind) -> bool {
    matches!(kind, VerdictKind::Act | VerdictKind::DryRun)
}

fn window() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::from_secs(24 * 3600)),
        Just(Duration::from_secs(10 * 60))
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Every verdict is the model's, and none oversteps a limit.
    #[test]
    fn verdicts_follow_the_rules_and_never_overstep_a_limit(
        policies in proptest::collection::vec(policy(), 1..4),
        global in proptest::sample::select(MODES.to_vec()),
        steps in proptest::collection::vec(step(), 1..60),
        window in window(),
    ) {
        let set = load(&policies);
        let proposed = proposals(&steps);
        let trail = replay(&set, &proposed, global, window);
        let mut model = Model { policies: &policies, global, window, history: Vec::new() };
        for r in &trail {
            let want = model.decide(r.time, &r.proposal);
            let v = &r.verdict;
            prop_assert_eq!(
                (v.kind, v.rule.as_str(), policy_index(v.policy.as_deref()), &v.action),
                (want.kind, want.rule, want.policy, &want.action),
                "at {}: {:?}", r.time, r
            );
        }
        check_limits(&policies, global, window, &trail)?;
    }

    /// A global observe mode lets nothing through, whatever the policies say.
    #[test]
    fn observe_lets_nothing_reach_an_actuator(
        policies in proptest::collection::vec(policy(), 1..4),
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        let trail = replay(&load(&policies), &proposals(&steps), Mode::Observe, Duration::from_secs(86_400));
        for r in &trail {
            prop_assert!(!reaches_actuator(r.verdict.kind), "{:?}", r);
        }
    }

    /// The same inputs give the same trail, and a verdict does not depend on the order the
    /// history is listed in.
    #[test]
    fn the_same_inputs_give_the_same_verdicts(
        policies in proptest::collection::vec(policy(), 1..4),
        global in proptest::sample::select(MODES.to_vec()),
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        let set = load(&policies);
        let proposed = proposals(&steps);
        let window = Duration::from_secs(86_400);
        let first = replay(&set, &proposed, global, window);
        let second = replay(&load(&policies), &proposed, global, window);
        prop_assert_eq!(&first, &second);

        let mut history: Vec<PastAction> = Vec::new();
        for r in &first {
            let mut reversed = history.clone();
            reversed.reverse();
            let again = evaluate(&set, &r.proposal, global, &reversed, r.time);
            prop_assert_eq!(&again, &r.verdict);
            history.extend(PastAction::left_by(&r.proposal, &r.verdict, r.time));
        }
    }
}

/// Whether an earlier verdict counts against limits in `mode`: applied; or planned too, in
/// dry-run.
fn counts(e: &Replayed, mode: Mode) -> bool {
    match e.verdict.kind {
        VerdictKind::Act => true,
        VerdictKind::DryRun => mode == Mode::DryRun,
        _ => false,
    }
}

/// The limits, checked on the trail alone: what reached an actuator respected the cooldown
/// since the last counted action of its kind on its workload, the replica ceiling and the
/// data-age limits of the policy that allowed it; what was denied kept the proposal's action.
fn check_limits(
    policies: &[ModelPolicy],
    global: Mode,
    window: Duration,
    trail: &[Replayed],
) -> Result<(), TestCaseError> {
    for (i, r) in trail.iter().enumerate() {
        let v = &r.verdict;
        if !reaches_actuator(v.kind) {
            prop_assert_eq!(&v.action, &r.proposal.action, "a refusal bounds nothing");
            continue;
        }
        let index = policy_index(v.policy.as_deref()).expect("an allowed verdict names its policy");
        let m = &policies[index];
        let mode = global.min(m.mode);
        prop_assert!(mode != Mode::Observe);
        // Cooldown: the last earlier action of this kind on this workload that counts in
        // this mode (applied; or planned too, in dry-run) is at least a cooldown ago.
        let kind = v.action.kind();
        let last = trail[..i]
            .iter()
            .filter(|e| e.proposal.workload == r.proposal.workload)
            .filter(|e| e.verdict.action.kind() == kind && e.time >= r.time - window)
            .filter(|e| counts(e, mode))
            .map(|e| e.time)
            .max();
        if let Some(t) = last {
            prop_assert!(
                r.time.since(t) >= m.cooldown,
                "{kind:?} on {} {:?} after the last, cooldown {:?}",
                r.proposal.workload,
                r.time.since(t),
                m.cooldown
            );
        }
        // Budgets: fewer earlier counted actions of the policy's kinds in each budget's
        // window and scope than its max.
        for (max, per, scope) in &m.budgets {
            let used = trail[..i]
                .iter()
                .filter(|e| counts(e, mode) && e.time >= r.time - window)
                .filter(|e| m.actions.contains(&e.verdict.action.kind()))
                .filter(|e| in_scope(*scope, &e.proposal.workload, &r.proposal.workload))
                .filter(|e| r.time.since(e.time) < *per)
                .count();
            prop_assert!(
                used < *max as usize,
                "{used} actions within {per:?} ({scope:?}) before one more, budget {max}"
            );
        }
        // Blast radius: a restart never takes more pods down than maxUnavailable allows.
        if kind == ActionKind::RestartPods {
            let limit = m
                .max_unavailable
                .unwrap_or(Unavailable::Count(1))
                .limit(r.proposal.current_replicas);
            let unavailable = r.proposal.unavailable_replicas;
            prop_assert!(
                unavailable.is_some_and(|u| u < limit),
                "restart with {unavailable:?} of {} unavailable, limit {limit}",
                r.proposal.current_replicas
            );
        }
        // Ceiling: never above it, never above what was proposed.
        if let (
            Action::ScaleHpa { min_replicas, .. },
            Action::ScaleHpa {
                min_replicas: proposed,
                ..
            },
        ) = (&v.action, &r.proposal.action)
        {
            let ceiling = m.max_replicas.expect("ceiling");
            prop_assert!(*min_replicas <= ceiling, "{min_replicas} above {ceiling}");
            prop_assert!(min_replicas <= proposed);
        }
        // Data age: some evidence, no older than maxDataAge, half that for taking capacity.
        prop_assert!(r.proposal.evidence_time != Timestamp::EPOCH);
        let age = r.time.since(r.proposal.evidence_time);
        prop_assert!(age <= m.max_data_age);
        if v.action.is_destructive() || r.proposal.action.is_destructive() {
            prop_assert!(age <= m.max_data_age / 2);
        }
    }
    Ok(())
}
