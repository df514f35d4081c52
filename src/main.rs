//! `homeostat`: the command line of the self-healing control loop.

mod brain;
mod eval;
mod policy;
mod sensor;
mod simulate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use homeostat_core::Mode;

/// A self-healing control loop for Kubernetes: kernel and application signals in, learned
/// baselines, policy-gated actions out, every decision journaled and traced.
#[derive(Debug, Parser)]
#[command(
    name = "homeostat",
    version,
    propagate_version = true,
    after_help = "Logs go to stderr. HOMEOSTAT_LOG sets what is logged (default: warn for simulate, \
info for brain), e.g. HOMEOSTAT_LOG=info,homeostat_brain=debug."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run scenarios end to end in simulated time, three ways: no autoscaling, the HPA alone,
    /// and homeostat in front of the HPA.
    ///
    /// Starts a simulated Kubernetes API server and the brain on loopback, replays each
    /// scenario's load, and prints what was found, what was decided, replicas over time, the
    /// minutes the latency objective was violated each way, and a scorecard. --report writes
    /// an HTML page with plots of every run.
    Simulate(simulate::Args),
    /// Run the brain against the cluster of the current kubeconfig (or in-cluster), or with
    /// --local on this plain Linux host, with the eBPF sensor, observing only.
    ///
    /// Receives OTLP metrics and logs on 4317 (gRPC) and 4318 (HTTP), serves /healthz,
    /// /readyz, /metrics, /api/v1/decisions, /api/v1/events and /api/v1/workloads on 8080,
    /// and decides every evaluation interval.
    Brain(brain::Args),
    /// Run the eBPF sensor on this node (root, kernel BTF): per-cgroup kernel signals,
    /// attributed to pods, printed as a table every interval, or exported as OTLP metrics
    /// (and crash and OOM events as OTLP logs).
    Sensor(sensor::Args),
    /// Work with policies: check files, print their CRD, explain a journaled decision, test
    /// policies against a scenario's proposals.
    #[command(subcommand)]
    Policy(policy::Command),
    /// Score anomaly detection on a labelled benchmark in the Numenta Anomaly Benchmark's
    /// layout: homeostat's univariate detector, or another detector's result files.
    ///
    /// Prints NAB's three normalised scores (standard, reward low FP, reward low FN) with the
    /// threshold and raw score behind each.
    Eval(eval::Args),
}

/// A mode given on the command line.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ModeArg {
    /// Detect and record; propose nothing.
    Observe,
    /// Plan everything, apply nothing.
    DryRun,
    /// Apply what policy allows.
    Enforce,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Observe => Mode::Observe,
            ModeArg::DryRun => Mode::DryRun,
            ModeArg::Enforce => Mode::Enforce,
        }
    }
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HOMEOSTAT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    let result = runtime.block_on(async {
        match cli.command {
            Command::Simulate(args) => {
                init_logging("warn");
                simulate::run(args).await
            }
            Command::Brain(args) => {
                init_logging("info");
                brain::run(args).await
            }
            Command::Sensor(args) => {
                init_logging("warn");
                sensor::run(args).await
            }
            Command::Policy(cmd) => {
                init_logging("warn");
                policy::run(cmd).await
            }
            Command::Eval(args) => {
                init_logging("warn");
                eval::run(args)
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A stop flag that SIGINT or SIGTERM raises (as Kubernetes stops a pod); the sender too, for
/// stopping for other reasons.
fn stop_on_signal() -> anyhow::Result<(
    std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    tokio::sync::watch::Receiver<bool>,
)> {
    use anyhow::Context;
    use tokio::signal::unix::{SignalKind, signal};
    let (stop, rx) = tokio::sync::watch::channel(false);
    let stop = std::sync::Arc::new(stop);
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let on_signal = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; shutting down"),
            _ = terminate.recv() => tracing::info!("terminated; shutting down"),
        }
        on_signal.send_replace(true);
    });
    Ok((stop, rx))
}

/// Files given on the command line that must exist.
fn existing(paths: &[PathBuf]) -> anyhow::Result<()> {
    for p in paths {
        anyhow::ensure!(p.exists(), "{}: no such file or directory", p.display());
    }
    Ok(())
}
