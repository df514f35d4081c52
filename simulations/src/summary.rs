//! The summary `homeostat simulate` prints: what was found, what was decided, replicas over
//! time, and the latency objective with homeostat, with the HPA alone and with no autoscaling.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use homeostat_core::{Outcome, Timestamp};

use crate::run::RunResult;

fn clock(t: Duration) -> String {
    let m = t.as_secs() / 60;
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// Seconds between two regular rows of the replicas table: ten minutes, or more for long runs
/// so a week stays about two dozen rows.
fn row_interval(run: &RunResult) -> u64 {
    let span = run
        .workloads
        .first()
        .and_then(|w| w.timeline.last())
        .map_or(0, |p| p.t.as_secs());
    (span / 24).div_ceil(600).max(1) * 600
}

fn offset(start: Timestamp, t: Timestamp) -> String {
    clock(t.since(start))
}

/// Anomaly episodes as (start, kind, peak score): consecutive anomalous steps of a workload.
pub fn episodes(run: &RunResult) -> Vec<(Timestamp, String, String, f64)> {
    let mut by_start: BTreeMap<(Timestamp, String), (String, f64)> = BTreeMap::new();
    for a in &run.anomalies {
        let e = by_start
            .entry((a.started, a.workload.to_string()))
            .or_insert((a.kind.as_str().to_owned(), 0.0));
        if a.kind.as_str() == "saturation" {
            e.0 = "saturation".into();
        }
        e.1 = e.1.max(a.score);
    }
    by_start
        .into_iter()
        .map(|((t, w), (k, s))| (t, w, k, s))
        .collect()
}

/// The three runs of one scenario on the same trace that the summary compares.
#[derive(Clone, Copy, Debug)]
pub struct ThreeWays<'a> {
    /// With homeostat in front of the HPA.
    pub homeostat: &'a RunResult,
    /// The HPA alone.
    pub hpa: &'a RunResult,
    /// No autoscaling at all.
    pub none: &'a RunResult,
}

/// A readable comparison of a homeostat run with the HPA-only and the unscaled runs of the
/// same scenario.
pub fn render(runs: ThreeWays<'_>) -> String {
    let ThreeWays {
        homeostat,
        hpa,
        none,
    } = runs;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "scenario {}: {} simulated in {:.1}s (homeostat) + {:.1}s (HPA alone) + {:.1}s (no autoscaling)\n",
        homeostat.scenario,
        clock(
            homeostat
                .workloads
                .first()
                .and_then(|w| w.timeline.last())
                .map_or(Duration::ZERO, |p| p.t)
        ),
        homeostat.wall.as_secs_f64(),
        hpa.wall.as_secs_f64(),
        none.wall.as_secs_f64()
    );

    faults(&mut out, homeostat);
    let eps = episodes(homeostat);
    let _ = writeln!(out, "anomalies found: {}", eps.len());
    for (t, w, kind, score) in &eps {
        let _ = writeln!(
            out,
            "  {}  {w}  {kind}  score {score:.4}",
            offset(homeostat.start, *t)
        );
    }

    let mut by_verdict: BTreeMap<(String, String), usize> = BTreeMap::new();
    for d in &homeostat.decisions {
        *by_verdict
            .entry((
                d.verdict.kind.as_str().to_owned(),
                d.outcome.as_str().to_owned(),
            ))
            .or_default() += 1;
    }
    let _ = writeln!(out, "\ndecisions: {}", homeostat.decisions.len());
    for ((verdict, outcome), n) in &by_verdict {
        let _ = writeln!(out, "  {n:>4} × verdict {verdict}, outcome {outcome}");
    }
    for d in homeostat.decisions.iter().filter(|d| {
        matches!(
            d.outcome,
            Outcome::Applied { .. } | Outcome::Planned | Outcome::Failed { .. }
        )
    }) {
        let what = d
            .plan
            .as_ref()
            .map_or_else(|| d.proposal.reason.clone(), |p| p.summary.clone());
        let _ = writeln!(
            out,
            "  {}  {}  {}: {what}",
            offset(homeostat.start, d.time),
            d.verdict.kind.as_str(),
            d.outcome.as_str()
        );
    }

    let every = row_interval(homeostat);
    for ((h, b), n) in homeostat
        .workloads
        .iter()
        .zip(&hpa.workloads)
        .zip(&none.workloads)
    {
        let _ = writeln!(
            out,
            "\nreplicas over time, {} (every {} min, and at each change of homeostat's minReplicas):",
            h.name,
            every / 60
        );
        let _ = writeln!(
            out,
            "  time   load/s  no-scaling  hpa-alone  homeostat  minReplicas  p99 no-scaling  p99 hpa-alone  p99 homeostat"
        );
        let mut last_min = None;
        for ((p, q), r) in h.timeline.iter().zip(&b.timeline).zip(&n.timeline) {
            let tick = p.t.as_secs() % every == 0;
            if tick || last_min != Some(p.hpa_min) {
                let _ = writeln!(
                    out,
                    "  {}  {:>6.0}  {:>10}  {:>9}  {:>9}  {:>11}  {:>13.0}ms  {:>12.0}ms  {:>12.0}ms{}",
                    clock(p.t),
                    p.demand,
                    r.pods,
                    q.pods,
                    p.pods,
                    p.hpa_min,
                    r.p99 * 1000.0,
                    q.p99 * 1000.0,
                    p.p99 * 1000.0,
                    p.incident
                        .as_deref()
                        .map_or(String::new(), |k| format!("  ({k})"))
                );
            }
            last_min = Some(p.hpa_min);
        }
    }

    let _ = writeln!(out, "\nlatency objective (p99), minutes violated:");
    let _ = writeln!(
        out,
        "  no autoscaling:   {:>7.2} min   {:>7.2} pod-hours",
        none.slo_violation_minutes(),
        none.pod_hours()
    );
    let _ = writeln!(
        out,
        "  HPA alone:        {:>7.2} min   {:>7.2} pod-hours",
        hpa.slo_violation_minutes(),
        hpa.pod_hours()
    );
    let _ = writeln!(
        out,
        "  with homeostat:   {:>7.2} min   {:>7.2} pod-hours",
        homeostat.slo_violation_minutes(),
        homeostat.pod_hours()
    );
    out
}

/// What faults the homeostat run met and what the brain made of them; nothing when none.
fn faults(out: &mut String, run: &RunResult) {
    let (api, signals, brain) = (run.api_faults, run.signal_faults, run.ingest);
    if api == Default::default() && signals == Default::default() && brain == Default::default() {
        return;
    }
    let _ = writeln!(out, "faults met by homeostat:");
    let _ = writeln!(
        out,
        "  API: {} conflicts, {} too many requests, {} internal errors, {} slow answers, {} dropped watches",
        api.conflicts,
        api.too_many_requests,
        api.internal_errors,
        api.slow_answers,
        api.dropped_watches
    );
    let _ = writeln!(
        out,
        "  signals: {} gaps, {} stale re-sends, {} NaN points, {} skewed pods ({} points)",
        signals.gaps, signals.stale, signals.nan_points, signals.skewed_pods, signals.skewed_points
    );
    let _ = writeln!(
        out,
        "  brain: {} points rejected in {} partial-success exports; dropped {} late, {} stale, {} future\n",
        brain.rejected_points,
        brain.partial_exports,
        brain.late_points,
        brain.stale_points,
        brain.future_points
    );
}
