//! `homeostat policy`: check policy files, print their CRD, explain a journaled decision,
//! and test policies against a scenario's proposals.

mod describe;
mod explain;
mod replay;

use std::path::PathBuf;
use std::process::ExitCode;

use homeostat_brain::runtime::load_policies;

/// `homeostat policy` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Validate policy files; print each problem as FILE:LINE:COLUMN: REASON and exit 1 if any.
    Check {
        /// Policy files or directories of them.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the Policy CustomResourceDefinition, generated from the policy document's types
    /// (deploy/crds/policy.yaml is this output).
    Crd,
    /// Show a journaled decision's trail: the anomaly behind it, the proposal and its reason,
    /// the verdict with the policy and rule that decided it and why, the mode, the plan, the
    /// outcome, and the states the journal recorded it in.
    Explain(explain::Args),
    /// Replay a scenario's proposals through policy files: what they would have allowed and
    /// denied, with the rule and the reason for each.
    Test(replay::Args),
}

pub async fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Check { files } => check(&files),
        Command::Crd => {
            print!("{}", homeostat_policies::crd::to_yaml());
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain(args) => explain::run(&args),
        Command::Test(args) => replay::run(&args).await,
    }
}

fn check(files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    super::existing(files)?;
    match load_policies(files) {
        Ok(set) => {
            for p in set.policies() {
                println!(
                    "ok  {}  {} ({}, {})",
                    p.file,
                    p.name.as_str(),
                    p.spec.mode,
                    p.spec
                        .actions
                        .iter()
                        .map(|a| a.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
