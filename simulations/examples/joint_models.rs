//! Measures the candidate joint models (PCA reconstruction error, Gaussian-mixture
//! likelihood, one-class SVM) on what the simulator's scenarios make the brain see.
//!
//! Each scenario runs once with the brain observing (the HPA alone scales); the brain's joint
//! features of every workload at every tick are then streamed through each candidate exactly
//! as the brain does it: learn the ticks neither it nor the brain judged anomalous, refit when
//! due, score every tick. Ground truth is the scenario's incidents.
//!
//! `cargo run --release -p homeostat-simulations --example joint_models [SCENARIO.yaml ...]`
//! (default: every scenario in `simulations/scenarios`). With `JOINT_CACHE=DIR` the runs'
//! ticks are kept in (and read back from) `DIR/<scenario>.json`, to compare settings quickly.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use homeostat_brain::DecisionSpans;
use homeostat_brain::detect::{JointConfig, JointMethod, JointModel};
use homeostat_core::Mode;
use homeostat_policies::PolicySet;
use homeostat_simulations::{Controller, RunOptions, Scenario, run};
use serde::{Deserialize, Serialize};

/// What the measurement needs of one tick of one workload.
#[derive(Serialize, Deserialize)]
struct Tick {
    t: Duration,
    in_incident: bool,
    /// Whether the brain judged the workload anomalous.
    anomalous: bool,
    features: Option<(u32, Vec<f64>)>,
}

/// After an incident ends, the workload may take this long to settle; not counted either way.
const SETTLE: Duration = Duration::from_secs(10 * 60);

#[derive(Default)]
struct Tally {
    /// Scored ticks outside incidents (and their settling), and those flagged.
    quiet: usize,
    false_alarms: usize,
    /// Runs of false alarms (ticks apart by more than five minutes start a new one).
    false_episodes: usize,
    /// Incidents, those found, and the delays (ticks) to the first flag.
    incidents: usize,
    found: usize,
    delays: Vec<usize>,
    /// (score, in incident) of every scored tick, for the AUC.
    scores: Vec<(f64, bool)>,
    fit: Duration,
    fits: usize,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.quiet += other.quiet;
        self.false_alarms += other.false_alarms;
        self.false_episodes += other.false_episodes;
        self.incidents += other.incidents;
        self.found += other.found;
        self.delays.extend(other.delays);
        self.scores.extend(other.scores);
        self.fit += other.fit;
        self.fits += other.fits;
    }

    /// Probability that an incident tick scores above a quiet one (ties count half).
    fn auc(&self) -> Option<f64> {
        let mut s = self.scores.clone();
        s.sort_by(|a, b| a.0.total_cmp(&b.0));
        let pos = s.iter().filter(|x| x.1).count() as f64;
        let neg = s.len() as f64 - pos;
        if pos == 0.0 || neg == 0.0 {
            return None;
        }
        // Mann–Whitney U with average ranks for ties.
        let mut rank_sum = 0.0;
        let mut i = 0;
        while i < s.len() {
            let mut j = i;
            while j < s.len() && s[j].0 == s[i].0 {
                j += 1;
            }
            let avg = (i + j + 1) as f64 / 2.0;
            rank_sum += avg * s[i..j].iter().filter(|x| x.1).count() as f64;
            i = j;
        }
        Some((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
    }
}

/// Streams `timeline` through a model of `config`.
fn measure(config: JointConfig, timeline: &[Tick]) -> Tally {
    let method = config.method;
    let mut model = JointModel::new(config);
    let mut t = Tally::default();
    let mut incident_start: Option<usize> = None;
    let mut flagged_in_incident = false;
    let mut last_incident_end: Option<Duration> = None;
    let mut last_false: Option<Duration> = None;
    for (i, p) in timeline.iter().enumerate() {
        if p.in_incident && incident_start.is_none() {
            incident_start = Some(i);
            flagged_in_incident = false;
            t.incidents += 1;
        }
        if !p.in_incident && incident_start.take().is_some() {
            last_incident_end = Some(p.t);
        }
        let Some((mask, x)) = &p.features else {
            continue;
        };
        let score = model.score(*mask, x);
        if let Some(s) = &score {
            let settling = last_incident_end.is_some_and(|end| p.t < end + SETTLE);
            if p.in_incident {
                t.scores.push((s.score, true));
                if s.anomalous && !flagged_in_incident {
                    flagged_in_incident = true;
                    t.found += 1;
                    t.delays.push(i - incident_start.unwrap_or(i));
                }
            } else if !settling {
                t.scores.push((s.score, false));
                t.quiet += 1;
                if s.anomalous {
                    t.false_alarms += 1;
                    if last_false.is_none_or(|l| p.t > l + Duration::from_secs(300)) {
                        t.false_episodes += 1;
                    }
                    last_false = Some(p.t);
                }
            }
        }
        let anomalous = score.is_some_and(|s| s.anomalous) || p.anomalous;
        if !anomalous {
            model.learn(*mask, x);
        }
        if let Some(training) = model.training() {
            let started = Instant::now();
            let fit = training.fit();
            t.fit += started.elapsed();
            t.fits += 1;
            if let Err(e) = model.install(fit) {
                eprintln!("{method:?}: {e}");
            }
        }
    }
    t
}

/// Every workload's ticks of one run of `path`'s scenario (from the cache when there).
async fn ticks(path: &Path) -> anyhow::Result<(String, Vec<Vec<Tick>>)> {
    let scenario = Scenario::load(path)?;
    let cache = std::env::var_os("JOINT_CACHE")
        .map(|d| PathBuf::from(d).join(format!("{}.json", scenario.name)));
    if let Some(text) = cache.as_ref().and_then(|c| std::fs::read(c).ok()) {
        return Ok((scenario.name, serde_json::from_slice(&text)?));
    }
    let controller = Controller::Homeostat {
        mode: Mode::Observe,
        policies: PolicySet::default(),
        spans: DecisionSpans::disabled(),
    };
    let result = run(&scenario, RunOptions::new(controller)).await?;
    let workloads: Vec<Vec<Tick>> = result
        .workloads
        .into_iter()
        .map(|w| {
            w.timeline
                .into_iter()
                .map(|p| Tick {
                    t: p.t,
                    in_incident: p.in_incident,
                    anomalous: p.anomalous,
                    features: p.joint_features,
                })
                .collect()
        })
        .collect();
    if let Some(c) = cache {
        std::fs::write(c, serde_json::to_vec(&workloads)?)?;
    }
    Ok((scenario.name, workloads))
}

/// The settings compared: each method with the defaults, then PCA without the day-long
/// window (one vector kept in one: the last two hours only) and with a margin of 3.
fn candidates() -> Vec<(String, JointConfig)> {
    let pca = JointConfig::default();
    let mut out: Vec<(String, JointConfig)> =
        [JointMethod::Pca, JointMethod::Gmm, JointMethod::OneClassSvm]
            .into_iter()
            .map(|method| (format!("{method:?}"), JointConfig { method, ..pca }))
            .collect();
    out.push(("Pca 2h".into(), JointConfig { stride: 1, ..pca }));
    out.push(("Pca margin 3".into(), JointConfig { margin: 3.0, ..pca }));
    // `JOINT_CANDIDATES=a,b` keeps only the settings whose labels are listed.
    if let Ok(only) = std::env::var("JOINT_CANDIDATES") {
        let only: Vec<&str> = only.split(',').collect();
        out.retain(|c| only.contains(&c.0.as_str()));
    }
    out
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let methods = candidates();
    let mut totals: Vec<Tally> = methods.iter().map(|_| Tally::default()).collect();
    println!(
        "{:<20} {:<13} {:>6} {:>7} {:>5} {:>6} {:>6} {:>6} {:>7}",
        "scenario", "model", "quiet", "false", "runs", "found", "delay", "AUC", "fit ms"
    );
    for path in common::scenarios() {
        let (name, workloads) = ticks(&path).await?;
        for ((label, config), total) in methods.iter().zip(&mut totals) {
            let mut t = Tally::default();
            for w in &workloads {
                t.add(measure(*config, w));
            }
            print_row(&name, label, &t);
            total.add(t);
        }
    }
    for ((label, _), total) in methods.iter().zip(&totals) {
        print_row("all", label, total);
    }
    Ok(())
}

fn print_row(name: &str, label: &str, t: &Tally) {
    let delay = if t.delays.is_empty() {
        "-".to_owned()
    } else {
        let mut d = t.delays.clone();
        d.sort_unstable();
        format!("{}", d[d.len() / 2])
    };
    println!(
        "{:<20} {:<13} {:>6} {:>7} {:>5} {:>6} {:>6} {:>6} {:>7.1}",
        name,
        label,
        t.quiet,
        t.false_alarms,
        t.false_episodes,
        format!("{}/{}", t.found, t.incidents),
        delay,
        t.auc().map_or("-".to_owned(), |a| format!("{a:.3}")),
        t.fit.as_secs_f64() * 1000.0 / t.fits.max(1) as f64,
    );
}
