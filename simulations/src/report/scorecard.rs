//! The scorecard: the numbers that say whether a way of running a scenario was better than
//! another, computed from the run's timeline and decisions alone, so any two runs of the same
//! trace compare like for like.
//!
//! The rules, per workload:
//!
//! - **Incidents** are the maximal runs of ticks whose `in_incident` is set (the scenario's
//!   ground truth), each the window `[start, end)`, `end` being the first tick after it, and
//!   labelled with the kinds of incident seen in it (`load spike`, `memoryLeak`, …).
//! - **SLO-violation minutes**: ticks whose true p99 latency is over the objective, times the
//!   step.
//! - **Latency**: every tick has one p99 latency (of the requests served in that tick); the
//!   scorecard gives the median (p50) and the 99th percentile (nearest rank) of those per-tick
//!   p99s over the whole run.
//! - **Pod-hours**: pods existing each tick (ready or not: all are paid for), times the step.
//! - **Actions**: decisions about the workload that were applied, or planned (dry-run).
//! - **Time to detect**: from an incident's start to the first tick the brain judged the
//!   workload anomalous, looking from the start until [`GRACE`] after the end (and never into
//!   the next incident); none when nothing was found (and always none without a brain).
//! - **Time to mitigate**: zero when latency stayed within the objective all through the
//!   incident; else from the start to the first tick after the incident's first violation from
//!   which latency stays within the objective for [`MITIGATION_HOLD`] — or until the incident
//!   ends, if that comes sooner; none when that never happens before the next incident or the
//!   end of the run.
//! - **False actions**: actions at a time outside every incident window. An action that gives
//!   capacity back (lowers `minReplicas`) or lifts a node taint is also allowed up to
//!   [`GRACE`] after an incident ends, since putting things back is part of handling it; any
//!   other action is not.
//! - **Flaps**: consecutive `minReplicas` changes or node taints (applied or planned) in
//!   opposite directions no more than [`FLAP_WINDOW`] apart.

use std::fmt::Write as _;
use std::time::Duration;

use homeostat_core::{Action, Decision, Outcome};
use serde::Serialize;

use crate::run::{RunResult, TimelinePoint, WorkloadRun};

/// How long after an incident a restoring action, or a late detection, still belongs to it.
pub const GRACE: Duration = Duration::from_secs(30 * 60);

/// How long latency must stay within the objective for an incident to count as mitigated.
pub const MITIGATION_HOLD: Duration = Duration::from_secs(5 * 60);

/// Two `minReplicas` changes in opposite directions this close together are a flap.
pub const FLAP_WINDOW: Duration = Duration::from_secs(10 * 60);

/// The scores of one run of one scenario: what reports compare across the three ways.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scorecard {
    /// Scenario name.
    pub scenario: String,
    /// Who controlled replicas (the run's label).
    pub run: String,
    /// One entry per workload, in the scenario's order.
    pub workloads: Vec<WorkloadScore>,
}

/// The scores of one workload in one run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorkloadScore {
    /// `namespace/name`.
    pub workload: String,
    /// Minutes with the tick's p99 latency over the objective.
    pub slo_violation_minutes: f64,
    /// Median over ticks of the per-tick p99 latency, milliseconds.
    pub latency_p99_median_ms: f64,
    /// 99th percentile over ticks of the per-tick p99 latency, milliseconds.
    pub latency_p99_p99_ms: f64,
    /// Pod-hours paid for.
    pub pod_hours: f64,
    /// Applied (or, in dry-run, planned) actions.
    pub actions: usize,
    /// Actions outside every incident window (see the module's rules).
    pub false_actions: usize,
    /// Direction changes of `minReplicas` within [`FLAP_WINDOW`].
    pub flaps: usize,
    /// Every incident with how fast it was found and handled.
    pub incidents: Vec<IncidentScore>,
}

/// One incident of one workload.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IncidentScore {
    /// What it was: the kinds of incident in the window, joined by `+`.
    pub kind: String,
    /// Start, seconds since the start of the run.
    pub start_seconds: f64,
    /// End (exclusive), seconds since the start of the run.
    pub end_seconds: f64,
    /// Seconds from the start to the first anomaly; none if none was found.
    pub time_to_detect_seconds: Option<f64>,
    /// Seconds from the start until latency was back within the objective to stay; none if
    /// it never was.
    pub time_to_mitigate_seconds: Option<f64>,
}

/// An incident window, as offsets from the start of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incident {
    /// First tick inside.
    pub start: Duration,
    /// First tick after (or one step past the last tick).
    pub end: Duration,
    /// The kinds of incident seen in the window, sorted, joined by `+` (`incident` when the
    /// timeline does not say).
    pub kind: String,
}

/// Adds the kinds of `label` (joined by `+`) to `kinds`.
fn add_kinds(kinds: &mut Vec<String>, label: Option<&str>) {
    for k in label.unwrap_or("incident").split('+') {
        if !kinds.iter().any(|x| x == k) {
            kinds.push(k.to_owned());
        }
    }
}

fn close(start: Duration, end: Duration, mut kinds: Vec<String>) -> Incident {
    kinds.sort();
    Incident {
        start,
        end,
        kind: kinds.join("+"),
    }
}

/// The maximal runs of `in_incident` ticks of a timeline.
pub fn incidents(timeline: &[TimelinePoint], step: Duration) -> Vec<Incident> {
    let mut out: Vec<Incident> = Vec::new();
    let mut open: Option<(Duration, Vec<String>)> = None;
    for p in timeline {
        match (p.in_incident, &mut open) {
            (true, None) => {
                let mut kinds = Vec::new();
                add_kinds(&mut kinds, p.incident.as_deref());
                open = Some((p.t, kinds));
            }
            (true, Some((_, kinds))) => add_kinds(kinds, p.incident.as_deref()),
            (false, Some(_)) => {
                if let Some((start, kinds)) = open.take() {
                    out.push(close(start, p.t, kinds));
                }
            }
            (false, None) => {}
        }
    }
    if let (Some((start, kinds)), Some(last)) = (open, timeline.last()) {
        out.push(close(start, last.t + step, kinds));
    }
    out
}

/// An action taken on a workload: when, and whether it gave capacity back.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Taken {
    at: Duration,
    /// +1 raised `minReplicas`, -1 lowered it, 0 anything else.
    direction: i8,
}

/// Whether a decision did (or in dry-run, would have done) something.
pub fn is_action(d: &Decision) -> bool {
    matches!(d.outcome, Outcome::Applied { .. } | Outcome::Planned)
}

/// Whether a decision concerns the workload named `namespace/name`.
pub fn concerns(d: &Decision, workload: &str) -> bool {
    let w = &d.proposal.workload;
    workload
        .split_once('/')
        .is_some_and(|(ns, name)| w.namespace == ns && w.name == name)
}

fn taken(run: &RunResult, workload: &str) -> Vec<Taken> {
    let mut out: Vec<Taken> = run
        .decisions
        .iter()
        .filter(|d| is_action(d) && concerns(d, workload))
        .map(|d| Taken {
            at: d.time.since(run.start),
            direction: match d.verdict.action {
                Action::ScaleHpa {
                    min_replicas,
                    previous_min_replicas,
                    ..
                } => match min_replicas.cmp(&previous_min_replicas) {
                    std::cmp::Ordering::Greater => 1,
                    std::cmp::Ordering::Less => -1,
                    std::cmp::Ordering::Equal => 0,
                },
                // Steering pods away is a step up; lifting it gives back.
                Action::TaintNode { remove, .. } => {
                    if remove {
                        -1
                    } else {
                        1
                    }
                }
                _ => 0,
            },
        })
        .collect();
    out.sort_by_key(|t| t.at);
    out
}

/// Nearest-rank percentile `q` in [0, 1] of `values` (0 when empty).
fn percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn time_to_detect(w: &WorkloadRun, i: &Incident, limit: Duration) -> Option<Duration> {
    w.timeline
        .iter()
        .find(|p| p.t >= i.start && p.t < limit && p.anomalous)
        .map(|p| p.t - i.start)
}

fn time_to_mitigate(w: &WorkloadRun, i: &Incident, limit: Duration) -> Option<Duration> {
    let tl = &w.timeline;
    let Some(first_bad) = tl
        .iter()
        .position(|p| p.t >= i.start && p.t < i.end && p.violated)
    else {
        return Some(Duration::ZERO);
    };
    (first_bad..tl.len())
        .take_while(|&k| tl[k].t < limit)
        .find(|&k| {
            let from = tl[k].t;
            let hold_until = if from < i.end {
                (from + MITIGATION_HOLD).min(i.end)
            } else {
                from + MITIGATION_HOLD
            };
            tl[k..]
                .iter()
                .take_while(|p| p.t < hold_until.max(from + Duration::from_nanos(1)))
                .all(|p| !p.violated)
        })
        .map(|k| tl[k].t - i.start)
}

fn is_false(t: &Taken, windows: &[Incident]) -> bool {
    !windows.iter().any(|i| {
        let end = if t.direction < 0 {
            i.end + GRACE
        } else {
            i.end
        };
        t.at >= i.start && t.at < end
    })
}

fn flaps(taken: &[Taken]) -> usize {
    let changes: Vec<&Taken> = taken.iter().filter(|t| t.direction != 0).collect();
    changes
        .windows(2)
        .filter(|p| p[0].direction != p[1].direction && p[1].at - p[0].at <= FLAP_WINDOW)
        .count()
}

/// Scores one workload of a run.
pub fn score_workload(run: &RunResult, w: &WorkloadRun) -> WorkloadScore {
    let windows = incidents(&w.timeline, run.step);
    let run_end = w.timeline.last().map_or(Duration::ZERO, |p| p.t + run.step);
    let incidents = windows
        .iter()
        .enumerate()
        .map(|(k, i)| {
            let next = windows.get(k + 1).map_or(run_end, |n| n.start);
            let detect_limit = (i.end + GRACE).min(next);
            IncidentScore {
                kind: i.kind.clone(),
                start_seconds: i.start.as_secs_f64(),
                end_seconds: i.end.as_secs_f64(),
                time_to_detect_seconds: time_to_detect(w, i, detect_limit).map(|d| d.as_secs_f64()),
                time_to_mitigate_seconds: time_to_mitigate(w, i, next).map(|d| d.as_secs_f64()),
            }
        })
        .collect();
    let p99s: Vec<f64> = w.timeline.iter().map(|p| p.p99).collect();
    let taken = taken(run, &w.name);
    WorkloadScore {
        workload: w.name.clone(),
        slo_violation_minutes: w.slo_violation_minutes,
        latency_p99_median_ms: percentile(&p99s, 0.5) * 1000.0,
        latency_p99_p99_ms: percentile(&p99s, 0.99) * 1000.0,
        pod_hours: w.pod_hours,
        actions: taken.len(),
        false_actions: taken.iter().filter(|t| is_false(t, &windows)).count(),
        flaps: flaps(&taken),
        incidents,
    }
}

/// Scores a run: a pure function of its timeline and decisions.
pub fn score(run: &RunResult) -> Scorecard {
    Scorecard {
        scenario: run.scenario.clone(),
        run: run.controller.clone(),
        workloads: run
            .workloads
            .iter()
            .map(|w| score_workload(run, w))
            .collect(),
    }
}

/// A duration in seconds for people: `45s`, `3m15s`, or `—` when there is none.
pub fn human_seconds(s: Option<f64>) -> String {
    match s {
        None => "—".into(),
        Some(s) => {
            let s = s.round() as u64;
            match (s / 60, s % 60) {
                (0, s) => format!("{s}s"),
                (m, 0) => format!("{m}m"),
                (m, s) => format!("{m}m{s:02}s"),
            }
        }
    }
}

/// One cell per incident, joined: `15s` or `15s, 2m`.
pub fn per_incident(w: &WorkloadScore, field: impl Fn(&IncidentScore) -> Option<f64>) -> String {
    if w.incidents.is_empty() {
        return "no incident".into();
    }
    w.incidents
        .iter()
        .map(|i| human_seconds(field(i)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The kinds of every incident, joined: `memoryLeak, load spike+noisyNeighbour`.
pub fn incident_kinds(w: &WorkloadScore) -> String {
    if w.incidents.is_empty() {
        return "none".into();
    }
    w.incidents
        .iter()
        .map(|i| i.kind.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The scorecards as a plain-text table, one row per run and workload, with each
/// workload's incidents (their kinds) listed once below its scenario's rows.
pub fn render_text(cards: &[Scorecard]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "  {:<20} {:<16} {:>8} {:>9} {:>9} {:>9} {:>7} {:>6} {:>6} {:>9} {:>9}",
        "run",
        "workload",
        "SLO min",
        "p99 p50",
        "p99 p99",
        "pod-h",
        "actions",
        "false",
        "flaps",
        "detect",
        "mitigate"
    );
    for c in cards {
        for w in &c.workloads {
            let _ = writeln!(
                out,
                "  {:<20} {:<16} {:>8.2} {:>7.0}ms {:>7.0}ms {:>9.2} {:>7} {:>6} {:>6} {:>9} {:>9}",
                c.run,
                w.workload,
                w.slo_violation_minutes,
                w.latency_p99_median_ms,
                w.latency_p99_p99_ms,
                w.pod_hours,
                w.actions,
                w.false_actions,
                w.flaps,
                per_incident(w, |i| i.time_to_detect_seconds),
                per_incident(w, |i| i.time_to_mitigate_seconds),
            );
        }
    }
    if let Some(first) = cards.first() {
        for w in first.workloads.iter().filter(|w| !w.incidents.is_empty()) {
            let _ = writeln!(out, "  incidents of {}: {}", w.workload, incident_kinds(w));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(minute: u64, in_incident: bool, violated: bool, anomalous: bool) -> TimelinePoint {
        TimelinePoint {
            t: Duration::from_secs(minute * 60),
            demand: 1.0,
            desired: 1,
            ready: 1,
            pods: 1,
            p99: if violated { 1.0 } else { 0.1 },
            hpa_min: 1,
            in_incident,
            incident: in_incident.then(|| "load spike".to_owned()),
            violated,
            anomaly_score: if anomalous { 1.0 } else { 0.0 },
            anomalous,
            joint_features: None,
        }
    }

    fn workload(points: Vec<TimelinePoint>) -> WorkloadRun {
        WorkloadRun {
            name: "shop/web".into(),
            timeline: points,
            slo_violation_minutes: 0.0,
            pod_hours: 0.0,
            objective_p99: Duration::from_millis(500),
        }
    }

    fn minutes(m: u64) -> Duration {
        Duration::from_secs(m * 60)
    }

    /// Minutes 10..20 are an incident; latency is bad for minutes 11..14; an anomaly at 12.
    fn one_incident() -> WorkloadRun {
        workload(
            (0..60)
                .map(|m| {
                    point(
                        m,
                        (10..20).contains(&m),
                        (11..14).contains(&m),
                        m == 12 || m == 13,
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn incidents_are_maximal_runs_of_incident_ticks() {
        let w = workload(
            (0..10)
                .map(|m| point(m, matches!(m, 2..=3 | 8..=9), false, false))
                .collect(),
        );
        assert_eq!(
            incidents(&w.timeline, minutes(1)),
            vec![
                Incident {
                    start: minutes(2),
                    end: minutes(4),
                    kind: "load spike".into(),
                },
                Incident {
                    start: minutes(8),
                    end: minutes(10),
                    kind: "load spike".into(),
                },
            ]
        );
    }

    #[test]
    fn detection_is_the_first_anomaly_from_the_start() {
        let w = one_incident();
        let windows = incidents(&w.timeline, minutes(1));
        let i = &windows[0];
        assert_eq!(time_to_detect(&w, i, minutes(60)), Some(minutes(2)));
        assert_eq!(time_to_detect(&w, i, minutes(12)), None);
    }

    #[test]
    fn mitigation_waits_for_five_good_minutes_or_the_incident_end() {
        let w = one_incident();
        let windows = incidents(&w.timeline, minutes(1));
        let i = &windows[0];
        // Bad at 11, 12, 13; good from 14 on, through 19 (≥ 5 minutes).
        assert_eq!(time_to_mitigate(&w, i, minutes(60)), Some(minutes(4)));
        // Bad until the last minute of the incident: the incident's end cuts the hold short.
        let w = workload(
            (0..60)
                .map(|m| point(m, (10..20).contains(&m), (11..19).contains(&m), false))
                .collect(),
        );
        assert_eq!(time_to_mitigate(&w, i, minutes(60)), Some(minutes(9)));
        // Never bad: nothing to mitigate.
        let w = workload(
            (0..60)
                .map(|m| point(m, (10..20).contains(&m), false, false))
                .collect(),
        );
        assert_eq!(time_to_mitigate(&w, i, minutes(60)), Some(Duration::ZERO));
        // Bad to the end of the run: never mitigated.
        let w = workload(
            (0..60)
                .map(|m| point(m, (10..20).contains(&m), m >= 11, false))
                .collect(),
        );
        assert_eq!(time_to_mitigate(&w, i, minutes(60)), None);
    }

    #[test]
    fn restoring_actions_have_a_grace_period_and_raises_do_not() {
        let windows = [Incident {
            start: minutes(10),
            end: minutes(20),
            kind: "load spike".into(),
        }];
        let at = |m, direction| Taken {
            at: minutes(m),
            direction,
        };
        assert!(!is_false(&at(10, 1), &windows));
        assert!(is_false(&at(9, 1), &windows));
        assert!(is_false(&at(25, 1), &windows));
        assert!(!is_false(&at(25, -1), &windows));
        assert!(!is_false(&at(49, -1), &windows));
        assert!(is_false(&at(50, -1), &windows));
    }

    #[test]
    fn flaps_are_quick_reversals() {
        let at = |m, direction| Taken {
            at: minutes(m),
            direction,
        };
        assert_eq!(flaps(&[at(0, 1), at(2, 1), at(4, 1), at(16, -1)]), 0);
        assert_eq!(flaps(&[at(0, 1), at(5, -1), at(8, 1), at(30, -1)]), 2);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        assert_eq!(human_seconds(Some(195.0)), "3m15s");
        assert_eq!(human_seconds(Some(15.0)), "15s");
        assert_eq!(human_seconds(None), "—");
    }
}
