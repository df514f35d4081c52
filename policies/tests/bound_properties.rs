//! Properties of the per-action bounds over random policies and random sequences of
//! proposals and clock steps, replayed as the engine meets them: whatever a verdict lets
//! through never scales past `maxReplicas` or `scale.maxStep`, never lowers below the load's
//! need under `scale.neverBelowNeed`, never throttles a probe `throttle.probes` leaves out
//! or below `throttle.minRate`, and never acts for a workload its selector does not select
//! or without a trigger the policy names.

use std::collections::BTreeMap;
use std::time::Duration;

use homeostat_core::{
    Action, AnomalyKind, AnomalySummary, Mode, Proposal, Timestamp, VerdictKind, WorkloadRef,
};
use homeostat_policies::{PolicySet, Proposed, replay};
use proptest::prelude::*;

const T0: Timestamp = Timestamp::from_secs(1_700_000_000);
const PROBES: [&str; 3] = ["runqueue", "tcp-connect", "block-io"];

/// The bounds as the model knows them, written out from the documentation.
#[derive(Clone, Debug)]
struct Bounds {
    ceiling: u32,
    /// `maxStep`: a count, or a percentage when the flag is set.
    step: Option<(u32, bool)>,
    never_below_need: bool,
    probes: Vec<&'static str>,
    min_rate: Option<f64>,
    /// `matchLabels: {tier: <value>}`.
    tier: Option<&'static str>,
    /// `triggers.anomalies: [{kind: saturation, minScore: <value>}]`.
    min_score: Option<f64>,
}

impl Bounds {
    fn yaml(&self) -> String {
        let mut doc = format!(
            "apiVersion: homeostat.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: p\nspec:\n  \
             mode: enforce\n  actions: [scale-workload, throttle-sampling]\n  cooldown: 0s\n  \
             maxReplicas: {}\n  scale:\n    neverBelowNeed: {}\n",
            self.ceiling, self.never_below_need
        );
        if let Some((n, percent)) = self.step {
            let step = if percent {
                format!("\"{n}%\"")
            } else {
                n.to_string()
            };
            doc.push_str(&format!("    maxStep: {step}\n"));
        }
        doc.push_str("  throttle:\n");
        if !self.probes.is_empty() {
            doc.push_str(&format!("    probes: [{}]\n", self.probes.join(", ")));
        }
        if let Some(r) = self.min_rate {
            doc.push_str(&format!("    minRate: {r}\n"));
        }
        if let Some(tier) = self.tier {
            doc.push_str(&format!(
                "  target:\n    selector:\n      matchLabels: {{tier: {tier}}}\n"
            ));
        }
        if let Some(s) = self.min_score {
            doc.push_str(&format!(
                "  triggers:\n    anomalies: [{{kind: saturation, minScore: {s}}}]\n"
            ));
        }
        doc
    }

    /// The most a raise from `previous` may reach with `current` replicas running.
    fn raise_limit(&self, previous: u32, current: u32) -> u32 {
        let step = self.step.map_or(u32::MAX, |(n, percent)| {
            if percent {
                (current * n).div_ceil(100).max(1)
            } else {
                n
            }
        });
        self.ceiling.min(previous.max(current).saturating_add(step))
    }
}

fn bounds() -> impl Strategy<Value = Bounds> {
    (
        1u32..30,
        prop_oneof![
            Just(None),
            (1u32..6).prop_map(|n| Some((n, false))),
            (1u32..=100).prop_map(|p| Some((p, true))),
        ],
        any::<bool>(),
        proptest::sample::subsequence(PROBES.to_vec(), 0..=2),
        proptest::option::of(proptest::sample::select(vec![0.015625, 0.125, 0.5])),
        proptest::option::of(proptest::sample::select(vec!["front", "back"])),
        proptest::option::of(proptest::sample::select(vec![0.0, 0.5, 0.9])),
    )
        .prop_map(
            |(ceiling, step, never_below_need, probes, min_rate, tier, min_score)| Bounds {
                ceiling,
                step,
                never_below_need,
                probes,
                min_rate,
                tier,
                min_score,
            },
        )
}

/// What a proposal may be, before its time is known.
#[derive(Clone, Debug)]
enum Shape {
    Scale {
        previous: u32,
        to: u32,
        current: u32,
        need: Option<u32>,
    },
    Throttle {
        probe: &'static str,
        rate: f64,
    },
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        (0u32..40, 0u32..60, 0u32..40, proptest::option::of(0u32..40)).prop_map(
            |(previous, to, current, need)| Shape::Scale {
                previous,
                to,
                current,
                need,
            }
        ),
        (
            proptest::sample::select(PROBES.to_vec()),
            proptest::sample::select(vec![0.0078125, 0.015625, 0.25, 0.5, 1.0]),
        )
            .prop_map(|(probe, rate)| Shape::Throttle { probe, rate }),
    ]
}

fn proposal(
    shape: &Shape,
    tier: Option<&'static str>,
    score: Option<f64>,
    at: Timestamp,
) -> Proposal {
    let workload = WorkloadRef::deployment("shop", "web");
    let (action, current, need) = match *shape {
        Shape::Scale {
            previous,
            to,
            current,
            need,
        } => (
            Action::ScaleWorkload {
                workload: workload.clone(),
                replicas: to,
                previous_replicas: previous,
            },
            current,
            need,
        ),
        Shape::Throttle { probe, rate } => (
            Action::ThrottleSampling {
                node: "n1".into(),
                probe: probe.into(),
                rate,
            },
            1,
            None,
        ),
    };
    Proposal {
        anomaly: score.map(|score| AnomalySummary {
            kind: AnomalyKind::Saturation,
            score,
        }),
        unavailable_replicas: Some(0),
        needed_replicas: need,
        workload_labels: tier.map(|t| BTreeMap::from([("tier".to_owned(), t.to_owned())])),
        ..Proposal::new(workload, action, "random", at, current)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn what_is_let_through_stays_within_every_bound(
        b in bounds(),
        steps in proptest::collection::vec(
            (
                shape(),
                proptest::option::of(proptest::sample::select(vec!["front", "back"])),
                proptest::option::of(proptest::sample::select(vec![0.3, 0.6, 0.95])),
                0u64..120,
            ),
            1..24,
        ),
    ) {
        let set = PolicySet::from_str("p.yaml", &b.yaml()).expect("generated policy loads");
        let mut at = T0;
        let proposals: Vec<Proposed> = steps
            .iter()
            .map(|(shape, tier, score, step)| {
                at = at + Duration::from_secs(*step);
                Proposed { time: at, proposal: proposal(shape, *tier, *score, at) }
            })
            .collect();
        for r in replay(&set, &proposals, Mode::Enforce, Duration::from_secs(86_400)) {
            if r.verdict.kind == VerdictKind::Deny {
                continue;
            }
            prop_assert_eq!(r.verdict.kind, VerdictKind::Act);
            let p = &r.proposal;
            if let Some(tier) = b.tier {
                let labels = p.workload_labels.as_ref();
                prop_assert!(
                    labels.and_then(|l| l.get("tier")).is_some_and(|t| t == tier),
                    "{:?} selected without tier={}", labels, tier
                );
            }
            match (&r.verdict.action, &p.action) {
                (
                    Action::ScaleWorkload { replicas, previous_replicas, .. },
                    Action::ScaleWorkload { replicas: wanted, .. },
                ) => {
                    let (to, previous) = (*replicas, *previous_replicas);
                    prop_assert!(to <= (*wanted).max(b.ceiling), "{}", r.verdict.reason);
                    if *wanted > previous {
                        prop_assert!(to <= b.raise_limit(previous, p.current_replicas),
                            "raise {} -> {} past the bounds: {}", previous, to, r.verdict.reason);
                        if let Some(min) = b.min_score {
                            prop_assert!(p.anomaly.is_some_and(|a| a.score >= min));
                        }
                    }
                    if to < previous && b.never_below_need {
                        prop_assert!(p.needed_replicas.is_none_or(|n| to >= n),
                            "lowered {} -> {} below the need {:?}", previous, to,
                            p.needed_replicas);
                    }
                }
                (Action::ThrottleSampling { probe, rate, .. }, _) => {
                    prop_assert_eq!(&r.verdict.action, &p.action, "throttles are never cut");
                    if *rate < 1.0 {
                        prop_assert!(b.probes.is_empty() || b.probes.contains(&probe.as_str()),
                            "{} throttled outside {:?}", probe, b.probes);
                        prop_assert!(b.min_rate.is_none_or(|m| *rate >= m),
                            "rate {} below {:?}", rate, b.min_rate);
                        if let Some(min) = b.min_score {
                            prop_assert!(p.anomaly.is_some_and(|a| a.score >= min));
                        }
                    }
                }
                (other, _) => prop_assert!(false, "unexpected action {:?}", other),
            }
        }
    }
}
