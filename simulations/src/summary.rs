//! The summary `homeostat simulate` prints: what was found, what was decided, replicas over
//! time, and the latency objective with homeostat and with the HPA alone.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use homeostat_core::{Outcome, Timestamp};

use crate::run::RunResult;

fn clock(t: Duration) -> String {
    let m = t.as_secs() / 60;
    format!("{:02}:{:02}", m / 60, m % 60)
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

/// A readable comparison of a homeostat run with the HPA-only run of the same scenario.
pub fn render(homeostat: &RunResult, hpa: &RunResult) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "scenario {}: {} simulated in {:.1}s (homeostat) + {:.1}s (HPA alone)\n",
        homeostat.scenario,
        clock(
            homeostat
                .workloads
                .first()
                .and_then(|w| w.timeline.last())
                .map_or(Duration::ZERO, |p| p.t)
        ),
        homeostat.wall.as_secs_f64(),
        hpa.wall.as_secs_f64()
    );

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

    for (h, b) in homeostat.workloads.iter().zip(&hpa.workloads) {
        let _ = writeln!(
            out,
            "\nreplicas over time, {} (every 10 min, and at each change of homeostat's minReplicas):",
            h.name
        );
        let _ = writeln!(
            out,
            "  time   load/s  hpa-alone  homeostat  minReplicas  p99 hpa-alone  p99 homeostat"
        );
        let mut last_min = None;
        for (p, q) in h.timeline.iter().zip(&b.timeline) {
            let tick = p.t.as_secs() % 600 == 0;
            if tick || last_min != Some(p.hpa_min) {
                let _ = writeln!(
                    out,
                    "  {}  {:>6.0}  {:>9}  {:>9}  {:>11}  {:>12.0}ms  {:>12.0}ms{}",
                    clock(p.t),
                    p.demand,
                    q.pods,
                    p.pods,
                    p.hpa_min,
                    q.p99 * 1000.0,
                    p.p99 * 1000.0,
                    if p.in_incident { "  (incident)" } else { "" }
                );
            }
            last_min = Some(p.hpa_min);
        }
    }

    let _ = writeln!(out, "\nlatency objective (p99), minutes violated:");
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
