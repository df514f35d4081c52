//! `homeostat brain`: the long-running brain.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use homeostat_brain::BrainConfig;

/// Arguments of `homeostat brain`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The brain's configuration file (YAML; see deploy/manifests/30-configmap.yaml).
    #[arg(long, short, env = "HOMEOSTAT_CONFIG")]
    config: Option<PathBuf>,
    /// Override the configuration's global mode.
    #[arg(long, value_enum)]
    mode: Option<super::ModeArg>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => BrainConfig::load(path)?,
        None => BrainConfig::default(),
    };
    if let Some(mode) = args.mode {
        config.mode = mode.into();
    }
    let (stop, rx) = tokio::sync::watch::channel(false);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; shutting down"),
            _ = terminate.recv() => tracing::info!("terminated; shutting down"),
        }
        stop.send_replace(true);
    });
    homeostat_brain::runtime::run(config, rx)
        .await
        .context("brain")?;
    Ok(ExitCode::SUCCESS)
}
