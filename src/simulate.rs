//! `homeostat simulate`: scenarios end to end in simulated time, each run three ways on the
//! same trace (no autoscaling, the HPA alone, homeostat in front of the HPA), compared in a
//! text summary and scorecard, and optionally in an HTML report with plots.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use homeostat_brain::{DecisionSpans, Journal};
use homeostat_policies::PolicySet;
use homeostat_simulations::live::{DEFAULT_KUBECONFIG, Live, LiveOptions};
use homeostat_simulations::report::{self, ScenarioRuns, scorecard};
use homeostat_simulations::summary::{self, ThreeWays};
use homeostat_simulations::{
    Controller, DEFAULT_POLICY, DEFAULT_SCENARIO, RunOptions, RunResult, Scenario,
};
use indicatif::{ProgressBar, ProgressStyle};

/// Where `--all` looks for scenarios when `--scenarios-dir` does not say.
const SCENARIOS_DIR: &str = "simulations/scenarios";

/// Arguments of `homeostat simulate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scenario files (YAML). Default: the built-in load spike (simulations/scenarios/load-spike.yaml).
    scenarios: Vec<PathBuf>,
    /// Run every scenario file (*.yaml, *.yml) in simulations/scenarios/ (relative to the
    /// current directory), or in --scenarios-dir.
    #[arg(long, conflicts_with = "scenarios")]
    all: bool,
    /// The directory of scenario files to run; implies --all.
    #[arg(long, value_name = "DIR", conflicts_with = "scenarios")]
    scenarios_dir: Option<PathBuf>,
    /// Write DIR/index.html (plots of every run, the scorecard) and DIR/scorecard.json.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// Global mode of homeostat in the run.
    #[arg(long, value_enum, default_value = "enforce")]
    mode: super::ModeArg,
    /// Policy files or directories. Default: the built-in policy for the `shop` namespace
    /// (policies/examples/default.yaml).
    #[arg(long = "policy")]
    policies: Vec<PathBuf>,
    /// Send decision spans to this OTLP/gRPC endpoint, e.g. http://localhost:4317.
    #[arg(long, env = "HOMEOSTAT_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Keep the decision journal in this directory (default: in memory); with several
    /// scenarios, in one subdirectory per scenario.
    #[arg(long)]
    journal: Option<PathBuf>,
    /// Live mode's options, boxed: they are many and seldom used, and a command enum holds
    /// the largest of its variants inline.
    #[command(flatten)]
    live: Box<LiveArgs>,
}

/// Arguments of `homeostat simulate --live`.
#[derive(Debug, clap::Args)]
struct LiveArgs {
    /// Run the scenario live instead: in real time (or --speed times faster), with no
    /// built-in brain, until its duration is over or Ctrl-C/SIGTERM. Point the real
    /// `homeostat brain`, kubectl or any controller at the cluster through --kubeconfig, and
    /// have the pods' signals pushed to a brain with --otlp-metrics-endpoint. Prints one
    /// status line per simulated minute.
    #[arg(
        long = "live",
        id = "live",
        conflicts_with_all = ["all", "scenarios_dir", "report", "policies", "journal", "mode"],
        help_heading = "Live mode"
    )]
    enabled: bool,
    /// Simulated seconds per wall second (> 0; 1 = real time). Exported points are stamped
    /// with the wall-clock moment each simulated instant is played (at 1, simulated time
    /// itself), so a brain on the wall clock accepts them at any speed; above 1 it sees the
    /// run compressed in time: latencies unchanged, rates per second --speed times higher.
    #[arg(
        long,
        value_name = "X",
        default_value = "1",
        value_parser = parse_speed,
        allow_negative_numbers = true,
        requires = "live",
        help_heading = "Live mode"
    )]
    speed: f64,
    /// Write the kubeconfig of the simulated cluster here (KUBECONFIG=PATH kubectl ...). An
    /// existing file is replaced only if it is a kubeconfig of a simulated cluster; the file is
    /// removed on exit.
    #[arg(
        long,
        value_name = "PATH",
        default_value = DEFAULT_KUBECONFIG,
        requires = "live",
        help_heading = "Live mode"
    )]
    kubeconfig: PathBuf,
    /// Where the simulated Kubernetes API server listens (port 0: a free port; the URL is
    /// printed).
    #[arg(
        long,
        value_name = "ADDR",
        default_value = "127.0.0.1:0",
        requires = "live",
        help_heading = "Live mode"
    )]
    listen: std::net::SocketAddr,
    /// Push the pods' signals as OTLP metrics over gRPC to this endpoint every simulated step,
    /// e.g. http://127.0.0.1:4317 where `homeostat brain` listens; repeat it to feed several
    /// brain replicas the same points. Without it no signals are sent. An unreachable endpoint
    /// is reported once and retried every step; the cluster keeps running.
    #[arg(
        long,
        value_name = "URL",
        requires = "live",
        help_heading = "Live mode"
    )]
    otlp_metrics_endpoint: Vec<String>,
}

/// `--speed`: a positive, finite number, refused with a reason before anything starts.
fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        Ok(_) => Err("must be a finite number > 0 (simulated seconds per wall second)".into()),
        Err(e) => Err(format!("{e}: must be a number > 0, e.g. 1 or 10")),
    }
}

/// Completes on the first Ctrl-C or SIGTERM; both handlers are installed before it returns,
/// so a signal that arrives while the cluster is starting is not lost.
fn stop_signal() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// `--live`: one scenario, played in real time (or sped up) until its end or a signal.
async fn live(args: &Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.scenarios.len() <= 1,
        "--live runs one scenario; {} given",
        args.scenarios.len()
    );
    let Some(scenario) = scenarios(args)?.into_iter().next() else {
        anyhow::bail!("no scenario to run");
    };
    let stop = stop_signal()?;
    let options = LiveOptions {
        speed: args.live.speed,
        listen: args.live.listen,
        kubeconfig: args.live.kubeconfig.clone(),
        otlp_metrics_endpoints: args.live.otlp_metrics_endpoint.clone(),
    };
    let live = Live::start(&scenario, options).await?;
    println!("scenario {}: {}", scenario.name, scenario.description);
    println!("simulated cluster: {}", live.url());
    println!(
        "kubeconfig: {}  (e.g. KUBECONFIG={} kubectl get deployments,hpa -A)",
        live.kubeconfig().display(),
        live.kubeconfig().display()
    );
    let signals = if args.live.otlp_metrics_endpoint.is_empty() {
        "no signals sent (no --otlp-metrics-endpoint)".to_owned()
    } else {
        format!("signals to {}", args.live.otlp_metrics_endpoint.join(", "))
    };
    println!(
        "speed {}x, {}; running for {} simulated (Ctrl-C to stop)",
        args.live.speed,
        signals,
        hms(scenario.duration)
    );
    let summary = live.run(stop, |status| println!("{status}")).await?;
    let how = if summary.interrupted {
        "stopped"
    } else {
        "scenario over"
    };
    let exports = if args.live.otlp_metrics_endpoint.is_empty() {
        String::new()
    } else {
        format!(
            ", {} exports sent, {} failed",
            summary.exports_ok, summary.exports_failed
        )
    };
    println!("{how} after {} simulated{exports}", hms(summary.simulated));
    Ok(ExitCode::SUCCESS)
}

/// A duration as h:mm:ss, as the status lines show time.
fn hms(d: std::time::Duration) -> String {
    let s = d.as_secs();
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn progress(label: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>32} [{bar:40}] {pos}/{len} steps {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_owned());
    bar
}

fn options(controller: Controller, journal: Option<Journal>, bar: &ProgressBar) -> RunOptions {
    let bar = bar.clone();
    RunOptions {
        journal,
        on_tick: Some(Box::new(move |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })),
        ..RunOptions::new(controller)
    }
}

/// The scenario files of a directory, sorted, so `--all` runs in a stable order.
fn scenario_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        let relative = match std::env::current_dir() {
            Ok(cwd) if dir.is_relative() => format!(" (relative to {})", cwd.display()),
            _ => String::new(),
        };
        anyhow::bail!(
            "scenario directory {}{relative} not found: run from the repository root or name \
             the directory with --scenarios-dir",
            dir.display()
        );
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let path = entry.with_context(|| format!("{}", dir.display()))?.path();
        let yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
        if yaml && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    anyhow::ensure!(
        !files.is_empty(),
        "no scenario files (*.yaml, *.yml) in {}",
        dir.display()
    );
    Ok(files)
}

fn scenarios(args: &Args) -> anyhow::Result<Vec<Scenario>> {
    let files = if args.all || args.scenarios_dir.is_some() {
        let dir = args
            .scenarios_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(SCENARIOS_DIR));
        scenario_files(&dir)?
    } else {
        args.scenarios.clone()
    };
    if files.is_empty() {
        return Ok(vec![Scenario::parse(
            "load-spike.yaml (built in)",
            DEFAULT_SCENARIO,
        )?]);
    }
    super::existing(&files)?;
    files
        .iter()
        .map(|f| Scenario::load(f).map_err(anyhow::Error::from))
        .collect()
}

/// The three runs of one scenario, in report order: none, HPA alone, homeostat.
async fn three_ways(
    scenario: &Scenario,
    homeostat: Controller,
    journal: Option<Journal>,
) -> anyhow::Result<Vec<RunResult>> {
    let label = |way: &str| format!("{} · {way}", scenario.name);
    let bar = progress(&label("homeostat"));
    let with = homeostat_simulations::run(scenario, options(homeostat, journal, &bar)).await?;
    bar.finish();
    let bar = progress(&label("HPA alone"));
    let hpa =
        homeostat_simulations::run(scenario, options(Controller::HpaOnly, None, &bar)).await?;
    bar.finish();
    let bar = progress(&label("no autoscaling"));
    let none = homeostat_simulations::run(scenario, options(Controller::None, None, &bar)).await?;
    bar.finish();
    Ok(vec![none, hpa, with])
}

/// Runs every chosen scenario three ways, prints the comparison and scorecard of each, and
/// writes the report when asked; the exit code is success once everything ran.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.live.enabled {
        return live(&args).await;
    }
    let scenarios = scenarios(&args)?;
    let policies = if args.policies.is_empty() {
        PolicySet::from_str("policies/examples/default.yaml (built in)", DEFAULT_POLICY)?
    } else {
        super::existing(&args.policies)?;
        homeostat_brain::runtime::load_policies(&args.policies)?
    };
    let spans = match &args.otlp_endpoint {
        Some(endpoint) => DecisionSpans::otlp(endpoint, "homeostat-simulate")?,
        None => DecisionSpans::disabled(),
    };

    let mut results: Vec<Vec<RunResult>> = Vec::with_capacity(scenarios.len());
    for scenario in &scenarios {
        let journal = match &args.journal {
            Some(dir) => {
                // Scenarios must not see each other's decisions (cooldowns read the journal).
                let dir = if scenarios.len() > 1 {
                    dir.join(report::slug(&scenario.name))
                } else {
                    dir.clone()
                };
                Some(Journal::open(&dir).with_context(|| format!("journal {}", dir.display()))?)
            }
            None => None,
        };
        println!("scenario {}: {}", scenario.name, scenario.description);
        let controller = Controller::Homeostat {
            mode: args.mode.into(),
            policies: policies.clone(),
            spans: spans.clone(),
        };
        let runs = three_ways(scenario, controller, journal).await?;
        if let [none, hpa, homeostat] = runs.as_slice() {
            print!(
                "\n{}",
                summary::render(ThreeWays {
                    homeostat,
                    hpa,
                    none
                })
            );
        }
        let cards: Vec<_> = runs.iter().map(report::score).collect();
        println!("\nscorecard:\n{}", scorecard::render_text(&cards));
        results.push(runs);
    }
    spans.shutdown().await?;

    if let Some(dir) = &args.report {
        let sets: Vec<ScenarioRuns<'_>> = scenarios
            .iter()
            .zip(&results)
            .map(|(scenario, runs)| ScenarioRuns { scenario, runs })
            .collect();
        let written = report::write(dir, &sets)?;
        println!(
            "report: {} and {}",
            written.index.display(),
            written.scorecard.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
