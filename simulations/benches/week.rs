//! A simulated week of one workload, timed: the HPA-only run (the baseline: cluster, workload
//! model and HPA, no brain) and the homeostat run (the same plus an OTLP export over gRPC
//! loopback and an evaluation pass every tick), with their ratio: homeostat's overhead.
//!
//! ```sh
//! cargo bench -p homeostat-simulations --bench week                  # quiet-week, 3 runs each
//! cargo bench -p homeostat-simulations --bench week -- [SCENARIO.yaml] [RUNS]
//! ```
//!
//! The issue's target: a week of cluster time in under a minute for one workload (2 cores,
//! release). Wall times are per run; the median of the runs is what is compared.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use homeostat_brain::DecisionSpans;
use homeostat_core::Mode;
use homeostat_policies::PolicySet;
use homeostat_simulations::{Controller, DEFAULT_POLICY, RunOptions, Scenario, run};

/// The issue's budget for a simulated week of one workload.
const BUDGET: Duration = Duration::from_secs(60);

struct Timed {
    label: &'static str,
    walls: Vec<Duration>,
    slo_minutes: f64,
    pod_hours: f64,
    decisions: usize,
}

impl Timed {
    fn median(&self) -> Duration {
        let mut w = self.walls.clone();
        w.sort();
        w[w.len() / 2]
    }
}

fn main() -> ExitCode {
    // `cargo bench` passes `--bench`; anything else positional is ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let path = args
        .iter()
        .find(|a| a.parse::<usize>().is_err() && *a != "hpa" && *a != "homeostat")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios/quiet-week.yaml")
        });
    let runs: usize = args.iter().find_map(|n| n.parse().ok()).unwrap_or(3).max(1);
    let scenario = match Scenario::load(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench(&scenario, runs)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn bench(scenario: &Scenario, runs: usize) -> Result<(), Box<dyn std::error::Error>> {
    let policies =
        PolicySet::from_str("policies/examples/default.yaml (built in)", DEFAULT_POLICY)?;
    let ticks = (scenario.duration.as_nanos() / scenario.step.as_nanos()) as f64;
    let workloads = scenario.workloads.len();
    println!(
        "scenario {}: {} simulated, step {:?}, {} ticks, {} workload(s), {} run(s) each, cores {}",
        scenario.name,
        hours(scenario.duration),
        scenario.step,
        ticks,
        workloads,
        runs,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let mut timed = Vec::new();
    // `hpa` or `homeostat` among the arguments runs only that one (for profiling).
    let only: Vec<&'static str> = ["hpa", "homeostat"]
        .into_iter()
        .filter(|l| std::env::args().any(|a| a == *l))
        .collect();
    for label in ["hpa", "homeostat"] {
        if !only.is_empty() && !only.contains(&label) {
            continue;
        }
        let mut t = Timed {
            label,
            walls: Vec::new(),
            slo_minutes: 0.0,
            pod_hours: 0.0,
            decisions: 0,
        };
        for i in 0..runs {
            let controller = match label {
                "hpa" => Controller::HpaOnly,
                _ => Controller::Homeostat {
                    mode: Mode::Enforce,
                    policies: policies.clone(),
                    spans: DecisionSpans::disabled(),
                },
            };
            let result = run(scenario, RunOptions::new(controller)).await?;
            println!(
                "  {label:<10} run {}: {:>7.2} s wall, {:>8.0} ticks/s",
                i + 1,
                result.wall.as_secs_f64(),
                ticks / result.wall.as_secs_f64()
            );
            t.walls.push(result.wall);
            t.slo_minutes = result.slo_violation_minutes();
            t.pod_hours = result.pod_hours();
            t.decisions = result.decisions.len();
        }
        timed.push(t);
    }
    println!();
    println!(
        "{:<10} {:>10} {:>10} {:>12} {:>12} {:>10}",
        "run", "median s", "ticks/s", "SLO min", "pod-hours", "decisions"
    );
    for t in &timed {
        let m = t.median().as_secs_f64();
        println!(
            "{:<10} {:>10.2} {:>10.0} {:>12.2} {:>12.2} {:>10}",
            t.label,
            m,
            ticks / m,
            t.slo_minutes,
            t.pod_hours,
            t.decisions
        );
    }
    if let [hpa, homeostat] = timed.as_slice() {
        let (base, with) = (hpa.median(), homeostat.median());
        println!();
        println!(
            "homeostat / hpa (baseline): {:.2}x wall; brain overhead {:.2} s, {:.0} µs per tick",
            with.as_secs_f64() / base.as_secs_f64(),
            with.saturating_sub(base).as_secs_f64(),
            with.saturating_sub(base).as_secs_f64() * 1e6 / ticks
        );
        println!(
            "target (a week of one workload under {} s): homeostat {:.2} s = {:.0} % of budget, {}",
            BUDGET.as_secs(),
            with.as_secs_f64(),
            100.0 * with.as_secs_f64() / BUDGET.as_secs_f64(),
            if with < BUDGET { "met" } else { "NOT met" }
        );
    }
    Ok(())
}

fn hours(d: Duration) -> String {
    let m = d.as_secs() / 60;
    format!("{}:{:02}", m / 60, m % 60)
}
