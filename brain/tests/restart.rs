//! A brain restarted on its journal scores as if it had never stopped: what its detectors
//! learned (baselines and the workload's joint model) comes back from sled, and its first
//! scores after the restart equal those the brain before the restart gives the same samples.

use std::sync::Arc;
use std::time::Duration;

use homeostat_brain::point::{Point, PointValue};
use homeostat_brain::runtime::Brain;
use homeostat_brain::{DecisionSpans, EngineConfig, Journal};
use homeostat_core::{Entity, ManualClock, Mode, Sample, Stat, Timestamp, WorkloadRef, signal};
use homeostat_policies::PolicySet;

const STEP: Duration = Duration::from_secs(15);
const START: i64 = 1_800_000_000;

/// A client for a brain with nothing to act on (observe mode never calls it).
fn no_cluster() -> kube::Client {
    let refuse = |_req: http::Request<kube::client::Body>| async move {
        Err::<http::Response<kube::client::Body>, _>("no cluster in this test")
    };
    kube::Client::new(tower::service_fn(refuse), "default")
}

fn brain(journal: Journal, clock: &ManualClock) -> Brain {
    Brain::assemble(
        EngineConfig {
            mode: Mode::Observe,
            ..EngineConfig::default()
        },
        STEP,
        Arc::new(clock.clone()),
        PolicySet::default(),
        no_cluster(),
        journal,
        DecisionSpans::disabled(),
    )
    .expect("brain")
}

fn workload() -> WorkloadRef {
    WorkloadRef::deployment("shop", "web")
}

/// Cumulative histograms and CPU counters of two pods at step `k`: latency, run-queue delay and CPU that wobble
/// deterministically, so baselines have a spread to learn.
fn points(k: i64) -> Vec<Point> {
    let mut out = Vec::new();
    for (pod, phase) in [("web-a", 0.0), ("web-b", 1.3)] {
        let mut e = Entity::workload(workload());
        e.pod = Some(pod.into());
        let wobble = |i: i64| ((i as f64) * 0.7 + phase).sin();
        // Per step, 100 requests split between the buckets by the wobble.
        let (mut fast, mut slow) = (0u64, 0u64);
        for i in 1..=k {
            let s = (20.0 + 10.0 * wobble(i)).round() as u64;
            slow += s;
            fast += 100 - s;
        }
        for (name, bounds) in [
            (signal::HTTP_SERVER_REQUEST_DURATION, vec![0.05, 0.2, 1.0]),
            (signal::RUNQUEUE_LATENCY, vec![0.0001, 0.001, 0.01]),
        ] {
            out.push(Point {
                entity: e.clone(),
                signal: name.into(),
                attributes: Vec::new(),
                time: Timestamp::from_secs(START + k * 15),
                start_time: Timestamp::from_secs(START),
                value: PointValue::Histogram {
                    count: fast + slow,
                    sum: fast as f64 * bounds[0] + slow as f64 * bounds[1],
                    bounds: bounds.clone(),
                    counts: vec![fast, slow, 0, 0],
                    cumulative: true,
                },
            });
        }
        // CPU seconds, about one a step, following the requests' wobble.
        let cpu: f64 = (1..=k).map(|i| 1.0 + 0.1 * wobble(i)).sum();
        out.push(Point {
            entity: e.clone(),
            signal: signal::CPU_TIME.into(),
            attributes: Vec::new(),
            time: Timestamp::from_secs(START + k * 15),
            start_time: Timestamp::from_secs(START),
            value: PointValue::Counter {
                value: cpu,
                cumulative: true,
            },
        });
    }
    out
}

/// Runs steps `from..=to` through `brain`, one evaluation per step.
async fn run(brain: &mut Brain, clock: &ManualClock, from: i64, to: i64) {
    for k in from..=to {
        brain.store.lock().expect("store").ingest(points(k));
        clock.set(Timestamp::from_secs(START + k * 15 + 6));
        brain.engine.evaluate().await.expect("pass");
    }
}

fn scores(brain: &Brain) -> Vec<(String, Stat, Option<f64>, Option<f64>)> {
    let state = brain.engine.workload(&workload()).expect("tracked");
    [
        (signal::HTTP_SERVER_REQUEST_DURATION, Stat::P99),
        (signal::HTTP_SERVER_REQUEST_DURATION, Stat::Mean),
        (signal::RUNQUEUE_LATENCY, Stat::P99),
    ]
    .into_iter()
    .map(|(sig, stat)| {
        let l = state.latest(sig, stat).expect("scored series");
        (
            sig.to_owned(),
            stat,
            l.score.map(|s| s.score),
            l.score.map(|s| s.level),
        )
    })
    .collect()
}

#[tokio::test]
async fn a_restarted_brain_resumes_its_baselines_and_scores_as_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(Timestamp::from_secs(START));

    // A brain learns 199 steps (its joint model is fitted after 120) and stops cleanly; what
    // it knew is kept aside to compare.
    let mut first = brain(Journal::open(dir.path()).expect("journal"), &clock);
    run(&mut first, &clock, 1, 199).await;
    let mut before = first
        .engine
        .workload(&workload())
        .cloned()
        .expect("tracked");

    assert!(
        before.joint_fitted(),
        "the joint model was fitted before the stop"
    );
    first.engine.keep_learned().await.expect("kept");
    drop(first);

    // A new brain on the same journal. Its first points (step 200) only set the reference of
    // each pod's cumulative series, as after any restart; step 201 is its first scored step.
    let mut restarted = brain(Journal::open(dir.path()).expect("reopened"), &clock);
    run(&mut restarted, &clock, 200, 201).await;
    let after = scores(&restarted);
    assert!(
        after.iter().all(|(_, _, score, _)| score.is_some()),
        "no warm-up after the restart: {after:?}"
    );

    // The brain before the restart, shown the same samples, scores them exactly the same.
    let state = restarted.engine.workload(&workload()).expect("tracked");
    let at = state.last_sample.expect("samples");
    let mut series: Vec<(&str, Stat)> = homeostat_brain::assess::JOINT
        .iter()
        .map(|(sig, stat, _)| (*sig, *stat))
        .collect();
    for (sig, stat, _, _) in &after {
        if !series.contains(&(sig.as_str(), *stat)) {
            series.push((sig.as_str(), *stat));
        }
    }
    for (sig, stat) in series {
        if let Some(l) = state.latest(sig, stat).filter(|l| l.time == at) {
            let sample = Sample::new(sig, stat, workload(), l.time, l.value).expect("finite");
            before.observe(&sample);
        }
    }
    before.assess(at);
    let joint_after = state
        .joint_score(at)
        .expect("the joint model scores at once");
    assert_eq!(
        Some(joint_after),
        before.joint_score(at),
        "the joint model's first score after the restart"
    );
    let expected: Vec<_> = after
        .iter()
        .map(|(sig, stat, _, _)| {
            let l = before.latest(sig, *stat).expect("scored");
            (
                sig.clone(),
                *stat,
                l.score.map(|s| s.score),
                l.score.map(|s| s.level),
            )
        })
        .collect();
    assert_eq!(after, expected, "the first scores after the restart");
    // The forecast of the load, kept with the baselines, goes on from where it was.
    assert!(before.load.expected(300.0).is_some());
    assert_eq!(
        state.load.expected(300.0),
        before.load.expected(300.0),
        "the load forecast after the restart"
    );

    // A brain on an empty journal would still be warming up at that step.
    let fresh_dir = tempfile::tempdir().expect("tempdir");
    let mut fresh = brain(Journal::open(fresh_dir.path()).expect("journal"), &clock);
    run(&mut fresh, &clock, 200, 201).await;
    let state = fresh.engine.workload(&workload());
    assert!(
        state.is_none_or(|s| s
            .latest(signal::HTTP_SERVER_REQUEST_DURATION, Stat::P99)
            .is_none_or(|l| l.score.is_none())
            && s.joint_score(at).is_none()),
        "without the journal nothing is learned yet"
    );
}
