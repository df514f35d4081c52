//! Verdict latency with a realistic set of 100 policies loaded, timed one verdict at a time on
//! one core, with p50 and p99 per verdict; the baseline, in the same run, is one policy and no
//! history (the least work a verdict can be).
//!
//! ```sh
//! cargo bench -p homeostat-policies --bench verdict            # 200,000 verdicts a case
//! cargo bench -p homeostat-policies --bench verdict -- 50000    # fewer
//! ```
//!
//! The set: 40 team namespaces, 100 policies (two or three a team: one for scaling and
//! restarts, one for throttling and tainting), a third covering a second namespace, a quarter
//! naming workloads, a fifth excluding some, in mixed modes, loaded from YAML like any other.
//! In the full set every policy also has one to three CEL conditions (compiled at load), two
//! budgets (workload and namespace), a weekend deny window in one of four time zones, and
//! the restart policies a `maxUnavailable` and a maintenance window; half the scaling
//! policies have triggers, a third `scale` bounds, the throttling ones `throttle` bounds, and
//! a third of all a label selector; the plain set is the same without them, to show what
//! they cost. The proposals cycle over 600 workloads of those namespaces plus some in
//! namespaces no policy covers (a `no-policy` verdict scans all 100), with evidence of mixed
//! age, an anomaly, pod counts, the workload's labels and, for scaling, the load's need. The history is 1,000
//! past actions over the last day (the engine hands the evaluator its journal's whole
//! window). The issue's target: p99 under 10 µs.

use std::hint::black_box;
use std::time::{Duration, Instant};

use homeostat_core::{
    Action, AnomalyKind, AnomalySummary, Mode, ObjectRef, Proposal, Timestamp, WorkloadRef,
};
use homeostat_policies::{PastAction, PolicySet, evaluate};

const NOW: Timestamp = Timestamp::from_secs(1_800_000_000);
const TARGET_P99: Duration = Duration::from_micros(10);
const NAMESPACES: usize = 40;
const WORKLOADS_PER_NAMESPACE: usize = 15;

/// A tiny deterministic generator (xorshift64), so every run measures the same inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const ACTIONS: [&str; 4] = [
    "scale-hpa",
    "restart-pods",
    "throttle-sampling",
    "taint-node",
];
const MODES: [&str; 3] = ["enforce", "enforce", "dry-run"];

fn namespace(i: usize) -> String {
    format!("team-{i:02}")
}

fn workload(i: usize) -> String {
    format!("svc-{i:02}")
}

/// Conditions a team would write, one to three a policy.
const CONDITIONS: [&str; 5] = [
    "anomaly.score > 0.8",
    "anomaly.kind in ['saturation', 'memory-leak', 'crash-loop']",
    "recent.scaleHpa < 4 && workload.replicas < 40",
    "!(time.weekday == 'fri' && time.hour >= 16)",
    "workload.kind == 'Deployment' && !workload.name.startsWith('batch-')",
];
const ZONES: [&str; 4] = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"];

/// What one policy adds in the full set: triggers and bounds on one action.
fn bounds(i: usize, scaling: bool) -> String {
    let mut out = String::new();
    if scaling && i.is_multiple_of(2) {
        out.push_str(
            "\n  triggers:\n    anomalies:\n      - {kind: saturation, minScore: 0.7}\n      \
             - {kind: memory-leak, minScore: 0.9}\n    forecast: {minRise: 1.3}",
        );
    }
    if scaling && i.is_multiple_of(3) {
        out.push_str("\n  scale: {maxStep: \"50%\", neverBelowNeed: true}");
    }
    if !scaling {
        out.push_str("\n  throttle: {probes: [runqueue], minRate: 0.015625}");
    }
    out
}

/// A label selector a team would write, on every third policy of the full set.
fn selector(i: usize, team: &str) -> String {
    if i % 3 == 1 {
        format!(
            "\n    selector:\n      matchLabels: {{app.kubernetes.io/part-of: {team}}}\n      \
             matchExpressions: [{{key: track, operator: NotIn, values: [canary]}}]"
        )
    } else {
        String::new()
    }
}

/// What one policy adds in the full set: conditions, budgets, a schedule and a blast radius.
fn limits(i: usize, restarts: bool) -> String {
    let conditions: Vec<String> = (0..1 + i % 3)
        .map(|k| format!("\n    - \"{}\"", CONDITIONS[(i + k) % CONDITIONS.len()]))
        .collect();
    let maintenance = if restarts {
        "\n    maintenance:\n      - {days: [mon, tue, wed, thu, fri], from: \"00:00\", to: \"24:00\"}"
    } else {
        ""
    };
    let blast = if restarts {
        ["\n  maxUnavailable: 1", "\n  maxUnavailable: \"25%\""][i % 2]
    } else {
        ""
    };
    format!(
        "\n  conditions:{}\n  budgets:\n    - {{max: 3, per: 1h}}\n    \
         - {{max: 20, per: 1h, scope: namespace}}\n  schedule:\n    timeZone: {}\n    \
         deny:\n      - {{days: [sun], from: \"02:00\", to: \"04:00\"}}{maintenance}{blast}",
        conditions.concat(),
        ZONES[i % ZONES.len()],
    )
}

/// 100 policy documents, as authors would write them for 40 teams; with `full`, with
/// conditions, budgets, schedules and blast radius too.
fn hundred_policies(rng: &mut Rng, full: bool) -> String {
    let mut docs = Vec::new();
    for i in 0..100 {
        let ns_a = namespace(i % NAMESPACES);
        let ns_b = namespace(rng.below(NAMESPACES));
        let namespaces = if i % 3 == 0 {
            format!("[{ns_a}, {ns_b}]")
        } else {
            format!("[{ns_a}]")
        };
        let workloads = if i % 4 == 0 {
            let names: Vec<String> = (0..5)
                .map(|_| workload(rng.below(WORKLOADS_PER_NAMESPACE)))
                .collect();
            format!("\n    workloads: [{}]", names.join(", "))
        } else {
            String::new()
        };
        let exclude = if i % 5 == 0 {
            "\n    exclude: [legacy, batch-import]"
        } else {
            ""
        };
        // Each team's first policy allows scaling and restarts, its second throttling and
        // tainting; the last 20 add a second opinion that the first match shadows.
        let pair = (i / NAMESPACES) % 2;
        let (a, b) = (ACTIONS[2 * pair], ACTIONS[2 * pair + 1]);
        docs.push(format!(
            "apiVersion: homeostat.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: policy-{i:03}\n\
             spec:\n  mode: {}\n  actions: [{a}, {b}]\n  target:\n    namespaces: {namespaces}{workloads}{exclude}{}\n  \
             cooldown: {}m\n  maxReplicas: {}\n  maxDataAge: 2m{}\n",
            MODES[i % 3],
            if full { selector(i, &ns_a) } else { String::new() },
            1 + i % 10,
            10 + i % 50,
            if full {
                limits(i, pair == 0) + &bounds(i, pair == 0)
            } else {
                String::new()
            },
        ));
    }
    docs.join("---\n")
}

/// One policy allowing everything everywhere.
fn one_policy() -> String {
    "apiVersion: homeostat.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: all\nspec:\n  \
     mode: enforce\n  actions: [scale-hpa, restart-pods, throttle-sampling, taint-node]\n  \
     cooldown: 2m\n  maxReplicas: 50\n"
        .to_owned()
}

fn proposal(rng: &mut Rng) -> Proposal {
    // One in ten in a namespace no policy covers.
    let ns = if rng.below(10) == 0 {
        format!("other-{}", rng.below(5))
    } else {
        namespace(rng.below(NAMESPACES))
    };
    let name = workload(rng.below(WORKLOADS_PER_NAMESPACE));
    let w = WorkloadRef::deployment(&ns, &name);
    let labels = std::collections::BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), name.clone()),
        ("app.kubernetes.io/part-of".to_owned(), ns.clone()),
        (
            "track".to_owned(),
            ["stable", "stable", "canary"][rng.below(3)].to_owned(),
        ),
    ]);
    let action = match rng.below(5) {
        0 | 1 => {
            let previous = 2 + rng.below(20) as u32;
            Action::ScaleHpa {
                hpa: ObjectRef {
                    api_version: "autoscaling/v2".into(),
                    kind: "HorizontalPodAutoscaler".into(),
                    namespace: ns.clone(),
                    name: name.clone(),
                },
                min_replicas: previous * 2,
                previous_min_replicas: previous,
            }
        }
        2 => Action::RestartPods {
            workload: w.clone(),
            pod: format!("{name}-7d9f8-abcde"),
            uid: Some("5b7f0c4e-2d1a-4c3b-9e8f-0a1b2c3d4e5f".into()),
        },
        3 => Action::TaintNode {
            node: format!("node-{}", rng.below(20)),
            remove: false,
        },
        _ => Action::ThrottleSampling {
            node: format!("node-{}", rng.below(20)),
            probe: ["runqueue", "block-io"][rng.below(2)].to_owned(),
            rate: [0.25, 0.0078125][rng.below(2)],
        },
    };
    Proposal {
        anomaly: Some(AnomalySummary {
            kind: [AnomalyKind::Saturation, AnomalyKind::MemoryLeak][rng.below(2)],
            score: 0.5 + rng.below(50) as f64 / 100.0,
        }),
        unavailable_replicas: Some(rng.below(2) as u32),
        needed_replicas: Some(2 + rng.below(6) as u32),
        workload_labels: Some(labels),
        ..Proposal::new(
            w,
            action,
            "saturated: latency and run-queue delay above baseline",
            NOW - Duration::from_secs(rng.below(150) as u64),
            4,
        )
    }
}

/// 1,000 actions over the last day, on the same workloads the proposals name.
fn history(rng: &mut Rng) -> Vec<PastAction> {
    (0..1000)
        .map(|_| {
            let p = proposal(rng);
            PastAction {
                workload: p.workload,
                kind: p.action.kind(),
                time: NOW - Duration::from_secs(rng.below(86_400) as u64),
                applied: rng.below(4) != 0,
                helped: None,
            }
        })
        .collect()
}

struct Figures {
    p50: Duration,
    p99: Duration,
    p999: Duration,
    max: Duration,
    mean: Duration,
}

/// Times `n` verdicts one by one, cycling over `proposals`; the verdict is dropped inside the
/// timed region, as a caller drops it.
fn time(set: &PolicySet, proposals: &[Proposal], history: &[PastAction], n: usize) -> Figures {
    let mut samples = Vec::with_capacity(n);
    for p in proposals.iter().cycle().take(n / 10) {
        black_box(evaluate(set, p, Mode::Enforce, history, NOW));
    }
    for p in proposals.iter().cycle().take(n) {
        let t0 = Instant::now();
        let v = evaluate(
            black_box(set),
            black_box(p),
            Mode::Enforce,
            black_box(history),
            NOW,
        );
        drop(black_box(v));
        samples.push(t0.elapsed());
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
    Figures {
        p50: at(0.50),
        p99: at(0.99),
        p999: at(0.999),
        max: samples[samples.len() - 1],
        mean: samples.iter().sum::<Duration>() / samples.len() as u32,
    }
}

/// Pins the process to the CPU it runs on, so every verdict is timed on one core.
fn pin_to_one_core() -> Option<usize> {
    // SAFETY: sched_getcpu has no preconditions; the cpu_set_t is zeroed, then one CPU set,
    // and passed by reference with its own size for the calling thread (pid 0).
    unsafe {
        let cpu = usize::try_from(libc::sched_getcpu()).ok()?;
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        (libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0)
            .then_some(cpu)
    }
}

fn micros(d: Duration) -> String {
    format!("{:.2} µs", d.as_secs_f64() * 1e6)
}

fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000)
        .max(1000);
    let cpu = pin_to_one_core();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let plain = PolicySet::from_str("plain.yaml", &hundred_policies(&mut rng, false))
        .expect("100 plain policies load");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let hundred = PolicySet::from_str("hundred.yaml", &hundred_policies(&mut rng, true))
        .expect("100 policies load");
    let one = PolicySet::from_str("one.yaml", &one_policy()).expect("one policy loads");
    let proposals: Vec<Proposal> = (0..4096).map(|_| proposal(&mut rng)).collect();
    let past = history(&mut rng);

    let mut verdicts = std::collections::BTreeMap::<String, usize>::new();
    for p in &proposals {
        let v = evaluate(&hundred, p, Mode::Enforce, &past, NOW);
        *verdicts
            .entry(format!("{} {}", v.kind.as_str(), v.rule))
            .or_default() += 1;
    }
    let timer = {
        let mut s: Vec<Duration> = (0..n)
            .map(|_| {
                let t0 = Instant::now();
                t0.elapsed()
            })
            .collect();
        s.sort_unstable();
        s[s.len() / 2]
    };

    println!(
        "verdict latency, {n} verdicts a case, {} (timer overhead p50 {})",
        cpu.map_or_else(|| "not pinned".to_owned(), |c| format!("pinned to CPU {c}")),
        micros(timer)
    );
    println!(
        "{} policies, {} proposals cycled, {} past actions; their verdicts: {}",
        hundred.len(),
        proposals.len(),
        past.len(),
        verdicts
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "{:<38} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "case", "p50", "p99", "p99.9", "max", "mean"
    );
    let cases: [(&str, &PolicySet, &[PastAction]); 4] = [
        ("baseline: 1 policy, no history", &one, &[]),
        ("100 plain policies, 1,000 past actions", &plain, &past),
        ("100 full policies, no history", &hundred, &[]),
        ("100 full policies, 1,000 past actions", &hundred, &past),
    ];
    let mut last = None;
    for (label, set, history) in cases {
        let f = time(set, &proposals, history, n);
        println!(
            "{label:<38} {:>10} {:>10} {:>10} {:>10} {:>10}",
            micros(f.p50),
            micros(f.p99),
            micros(f.p999),
            micros(f.max),
            micros(f.mean)
        );
        last = Some(f);
    }
    if let Some(f) = last {
        println!(
            "target p99 < {} with 100 full policies and a day's history: {} ({})",
            micros(TARGET_P99),
            if f.p99 < TARGET_P99 { "met" } else { "MISSED" },
            micros(f.p99)
        );
    }
}
