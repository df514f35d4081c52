//! How fast and how cleanly the brain detects on the simulated cluster: for every scenario
//! and workload, the sampling intervals from the start of each injected incident to the first
//! step the brain judges the workload anomalous, and the anomaly episodes it reports outside
//! the incidents (each one a false alarm).
//!
//! `cargo run --release -p homeostat-simulations --example detection [SCENARIO.yaml ...]`
//! (default: every scenario in `simulations/scenarios`). Each runs once as `homeostat
//! simulate` runs it: homeostat in enforce mode with the built-in default policies.
//! `DETECT_DAYS=N` runs each for N days instead; `DETECT_TRACE=namespace/name` prints that
//! workload's ticks around each incident.

mod common;

use std::time::Duration;

use homeostat_brain::DecisionSpans;
use homeostat_core::Mode;
use homeostat_policies::PolicySet;
use homeostat_simulations::summary::episodes;
use homeostat_simulations::{Controller, DEFAULT_POLICY, RunOptions, RunResult, Scenario, run};

/// After an incident ends, the workload may take this long to settle: an episode starting
/// then is the incident's tail, counted apart from the quiet phases.
const SETTLE: Duration = Duration::from_secs(10 * 60);

/// One workload's figures.
struct Row {
    workload: String,
    /// Per incident: its start (since the run's start), and the intervals to detection with
    /// the kind the brain first named.
    delays: Vec<(Duration, Option<(usize, &'static str)>)>,
    /// Episodes starting outside incidents and their settling, with their starts.
    quiet: Vec<(Duration, String)>,
    /// Episodes starting while an incident settles.
    tails: usize,
}

fn rows(result: &RunResult) -> Vec<Row> {
    let eps = episodes(result);
    result
        .workloads
        .iter()
        .map(|w| {
            let tl = &w.timeline;
            // An anomaly names its workload `namespace/kind/name`, a run `namespace/name`.
            let ours = |name: &str| {
                let mut parts = name.split('/');
                let (ns, last) = (parts.next(), parts.next_back());
                w.name.split_once('/') == ns.zip(last)
            };
            // An incident starts where the ground truth gains a kind: a crowd arriving while a
            // node's neighbour still goes on is a second incident to detect.
            let begins = |k: usize| {
                tl[k].in_incident
                    && (k == 0
                        || !tl[k - 1].in_incident
                        || tl[k].incident.as_deref().is_some_and(|now| {
                            let before = tl[k - 1].incident.as_deref().unwrap_or_default();
                            now.split('+')
                                .any(|kind| !before.split('+').any(|b| b == kind))
                        }))
            };
            let mut delays = Vec::new();
            let mut i = 0;
            while i < tl.len() {
                if !begins(i) {
                    i += 1;
                    continue;
                }
                let start = i;
                let mut end = start + 1;
                while end < tl.len() && tl[end].in_incident && !begins(end) {
                    end += 1;
                }
                let found = (start..end).find(|&k| tl[k].anomalous).map(|k| {
                    // What the brain first called it.
                    let kind = result
                        .anomalies
                        .iter()
                        .find(|a| {
                            ours(&a.workload.to_string())
                                && a.detected.since(result.start) >= tl[k].t
                        })
                        .map_or("?", |a| a.kind.as_str());
                    (k - start, kind)
                });
                delays.push((tl[start].t, found));
                i = end;
            }
            let settling = |t: Duration| {
                tl.iter()
                    .zip(tl.iter().skip(1))
                    .any(|(a, b)| a.in_incident && !b.in_incident && t >= b.t && t < b.t + SETTLE)
            };
            let at = |t: Duration| tl.iter().find(|p| p.t >= t);
            let (mut quiet, mut tails) = (Vec::new(), 0);
            for (start, _, kind, _) in eps.iter().filter(|e| ours(&e.1)) {
                let t = start.since(result.start);
                if at(t).is_some_and(|p| p.in_incident) {
                    continue;
                }
                if settling(t) {
                    tails += 1;
                } else {
                    quiet.push((t, kind.clone()));
                }
            }
            Row {
                workload: w.name.clone(),
                delays,
                quiet,
                tails,
            }
        })
        .collect()
}

/// With `DETECT_TRACE=namespace/name`, the ticks of that workload from five minutes before
/// to ten after each incident's start and each quiet-phase episode's, and what each such
/// episode's first anomaly named: what the brain saw and made of it.
fn trace(result: &RunResult, name: &str, quiet: &[(Duration, String)]) {
    for (t, _) in quiet {
        let first = result.anomalies.iter().find(|a| {
            a.started.since(result.start) == *t && {
                let w = a.workload.to_string();
                w.starts_with(name.split('/').next().unwrap_or_default())
                    && w.ends_with(name.rsplit('/').next().unwrap_or_default())
            }
        });
        if let Some(a) = first {
            let named: Vec<String> = a
                .contributions
                .iter()
                .map(|c| {
                    format!(
                        "{}/{:?} {:.4} vs {:.4} ({:.4})",
                        c.signal, c.stat, c.value, c.baseline, c.score
                    )
                })
                .collect();
            println!(
                "  quiet {} {}: {}",
                clock(*t),
                a.kind.as_str(),
                named.join("; ")
            );
        }
    }
    for w in result.workloads.iter().filter(|w| w.name == name) {
        let tl = &w.timeline;
        for (i, p) in tl.iter().enumerate() {
            let near = tl.iter().enumerate().any(|(j, q)| {
                let starts = (q.in_incident && (j == 0 || !tl[j - 1].in_incident))
                    || quiet
                        .iter()
                        .any(|(t, _)| q.t >= *t && (j == 0 || tl[j - 1].t < *t));
                starts && i + 20 >= j && i <= j + 40
            });
            if near {
                println!(
                    "  {} {} demand {:.0}/s ready {} p99 {:.3}s score {:.4} anomalous {} in incident {}",
                    w.name,
                    clock(p.t),
                    p.demand,
                    p.ready,
                    p.p99,
                    p.anomaly_score,
                    p.anomalous,
                    p.in_incident
                );
            }
        }
    }
}

fn clock(t: Duration) -> String {
    let m = t.as_secs() / 60;
    format!("{:02}:{:02}", m / 60, m % 60)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let policies =
        PolicySet::from_str("policies/examples/default.yaml (built in)", DEFAULT_POLICY)?;
    println!(
        "{:<20} {:<22} {:>9} {:>36} {:>6} {:>5}  quiet-phase episodes (start, kind)",
        "scenario", "workload", "interval", "incident: intervals kind", "quiet", "tails"
    );
    let (mut within, mut incidents, mut quiet_total) = (0, 0, 0);
    for path in common::scenarios() {
        let mut scenario = Scenario::load(&path)?;
        // `DETECT_DAYS=14` runs each scenario that long instead (a trace's rows permitting):
        // a weekly season needs a week and a day.
        if let Some(days) = std::env::var("DETECT_DAYS")
            .ok()
            .and_then(|d| d.parse::<u64>().ok())
        {
            scenario.duration = Duration::from_secs(days * 86_400);
        }
        let controller = Controller::Homeostat {
            mode: Mode::Enforce,
            policies: policies.clone(),
            spans: DecisionSpans::disabled(),
        };
        let result = run(&scenario, RunOptions::new(controller)).await?;
        let rows = rows(&result);
        if let Ok(name) = std::env::var("DETECT_TRACE") {
            let quiet: Vec<(Duration, String)> = rows
                .iter()
                .filter(|r| r.workload == name)
                .flat_map(|r| r.quiet.iter().cloned())
                .collect();
            trace(&result, &name, &quiet);
        }
        for row in rows {
            let delays: Vec<String> = row
                .delays
                .iter()
                .map(|(t, d)| {
                    format!(
                        "{} {}",
                        clock(*t),
                        d.map_or("missed".to_owned(), |(d, kind)| format!("{d} {kind}"))
                    )
                })
                .collect();
            incidents += row.delays.len();
            within += row
                .delays
                .iter()
                .filter(|(_, d)| d.is_some_and(|(d, _)| d <= 2))
                .count();
            quiet_total += row.quiet.len();
            let quiet: Vec<String> = row
                .quiet
                .iter()
                .take(64)
                .map(|(t, k)| format!("{} {k}", clock(*t)))
                .collect();
            println!(
                "{:<20} {:<22} {:>8}s {:>36} {:>6} {:>5}  {}{}",
                scenario.name,
                row.workload,
                result.step.as_secs(),
                if delays.is_empty() {
                    "-".to_owned()
                } else {
                    delays.join(", ")
                },
                row.quiet.len(),
                row.tails,
                quiet.join(", "),
                if row.quiet.len() > 64 { ", …" } else { "" }
            );
        }
    }
    println!(
        "all: {within}/{incidents} incidents detected within two intervals; {quiet_total} quiet-phase episodes"
    );
    Ok(())
}
