//! `homeostat policy`: check policy files.

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
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Check { files } => {
            super::existing(&files)?;
            match load_policies(&files) {
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
    }
}
