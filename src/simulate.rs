//! `homeostat simulate`: a scenario end to end in simulated time.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use homeostat_brain::{DecisionSpans, Journal};
use homeostat_policies::PolicySet;
use homeostat_simulations::{
    Controller, DEFAULT_POLICY, DEFAULT_SCENARIO, RunOptions, Scenario, summary,
};
use indicatif::{ProgressBar, ProgressStyle};

/// Arguments of `homeostat simulate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Scenario file (YAML). Default: the built-in load spike (simulations/scenarios/load-spike.yaml).
    scenario: Option<PathBuf>,
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
    /// Keep the decision journal in this directory (default: in memory).
    #[arg(long)]
    journal: Option<PathBuf>,
}

fn progress(label: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>22} [{bar:40}] {pos}/{len} steps {elapsed}")
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

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let scenario = match &args.scenario {
        Some(path) => Scenario::load(path)?,
        None => Scenario::parse("load-spike.yaml (built in)", DEFAULT_SCENARIO)?,
    };
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
    let journal = match &args.journal {
        Some(dir) => {
            Some(Journal::open(dir).with_context(|| format!("journal {}", dir.display()))?)
        }
        None => None,
    };
    println!("scenario {}: {}", scenario.name, scenario.description);

    let bar = progress("homeostat");
    let controller = Controller::Homeostat {
        mode: args.mode.into(),
        policies,
        spans: spans.clone(),
    };
    let with = homeostat_simulations::run(&scenario, options(controller, journal, &bar)).await?;
    bar.finish();
    let bar = progress("HPA alone");
    let without =
        homeostat_simulations::run(&scenario, options(Controller::HpaOnly, None, &bar)).await?;
    bar.finish();
    spans.shutdown().await?;
    print!("\n{}", summary::render(&with, &without));
    Ok(ExitCode::SUCCESS)
}
