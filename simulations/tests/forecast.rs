//! Scaling ahead of a predictable rise: a load that climbs steadily for minutes is seen coming
//! by the brain's forecast, which raises minReplicas before the workload saturates, sized to
//! the load from the capacity per replica it learned in the calm hour before.

use homeostat_brain::DecisionSpans;
use homeostat_core::{Action, Mode, Outcome};
use homeostat_policies::PolicySet;
use homeostat_simulations::{Controller, DEFAULT_POLICY, RunOptions, Scenario, run};

/// An hour of calm at 120/s, then a six-fold rise over half an hour (steady, so predictable
/// once under way), ten minutes at the top and a slow return. The HPA alone, one round at a
/// time, falls behind the climb.
const RAMP: &str = r#"
name: ramp
description: A steady six-fold climb of checkout's load over half an hour.
duration: 110m
step: 15s
seed: 5
workloads:
  - namespace: shop
    name: checkout
    replicas: 4
    pod:
      capacity: 50
      cpuRequest: 0.5
      startupDelay: 90s
      baseLatency: 20ms
    hpa:
      minReplicas: 4
      maxReplicas: 60
      targetCpuUtilization: 70
    load:
      base: 120
      noise: 0.05
      events:
        - kind: spike
          at: 60m
          rampUp: 30m
          hold: 10m
          rampDown: 10m
          factor: 6
    slo:
      latencyP99: 500ms
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_rise_is_met_by_a_forecast_raise_before_the_workload_saturates() {
    let scenario = Scenario::parse("ramp.yaml", RAMP).expect("scenario parses");
    let policies = PolicySet::from_str("default.yaml", DEFAULT_POLICY).expect("default policy");
    let homeostat = run(
        &scenario,
        RunOptions::new(Controller::Homeostat {
            mode: Mode::Enforce,
            policies,
            spans: DecisionSpans::disabled(),
        }),
    )
    .await
    .expect("homeostat run");
    let hpa = run(&scenario, RunOptions::new(Controller::HpaOnly))
        .await
        .expect("HPA run");

    let raises: Vec<_> = homeostat
        .decisions
        .iter()
        .filter(|d| matches!(d.outcome, Outcome::Applied { .. }))
        .filter(|d| {
            matches!(d.verdict.action, Action::ScaleHpa { min_replicas, previous_min_replicas, .. }
                if min_replicas > previous_min_replicas)
        })
        .collect();
    let first = raises.first().expect("homeostat raised minReplicas");
    let forecast = first.proposal.forecast.as_ref().unwrap_or_else(|| {
        panic!(
            "the first raise is not a forecast's: {}",
            first.proposal.reason
        )
    });
    assert!(forecast.expected > forecast.current * 1.2, "{forecast:?}");
    assert!(
        first.proposal.reason.starts_with("forecast: request rate"),
        "{}",
        first.proposal.reason
    );
    let needed = first.proposal.needed_replicas.expect("sized to the load");
    assert!(needed > 4, "{needed}");

    // Before the saturation: no step of the workload had violated its objective, nor been
    // judged saturated, when the raise was made.
    let raised_at = first.time.since(homeostat.start);
    let w = &homeostat.workloads[0];
    let violated_before = w.timeline.iter().any(|p| p.t <= raised_at && p.violated);
    assert!(
        !violated_before,
        "raised at {raised_at:?}, after a violation"
    );
    assert!(
        homeostat
            .anomalies
            .iter()
            .all(|a| a.kind != homeostat_core::AnomalyKind::Saturation
                || a.detected.since(homeostat.start) > raised_at),
        "raised at {raised_at:?}, after a saturation"
    );
    // And the rise really does hurt without it: the HPA alone violates the objective.
    assert!(
        hpa.slo_violation_minutes() > homeostat.slo_violation_minutes(),
        "HPA alone {} min, homeostat {} min",
        hpa.slo_violation_minutes(),
        homeostat.slo_violation_minutes()
    );
    for d in &homeostat.decisions {
        eprintln!("{:?} {}", d.time.since(homeostat.start), d.proposal.reason);
    }
    eprintln!(
        "SLO minutes HPA {} homeostat {}; pod-hours HPA {:.2} homeostat {:.2}",
        hpa.slo_violation_minutes(),
        homeostat.slo_violation_minutes(),
        hpa.workloads[0].pod_hours,
        w.pod_hours
    );
}
