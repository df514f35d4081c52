//! `homeostat brain`: the long-running brain, against a cluster or (`--local`) on a plain
//! Linux host with the sensor in the same process.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use homeostat_brain::BrainConfig;
use homeostat_brain::runtime::{self, Cluster};
use homeostat_core::Mode;

/// Arguments of `homeostat brain`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The brain's configuration file (YAML; see deploy/manifests/30-configmap.yaml).
    #[arg(long, short, env = "HOMEOSTAT_CONFIG")]
    config: Option<PathBuf>,
    /// Override the configuration's global mode.
    #[arg(long, value_enum)]
    mode: Option<super::ModeArg>,
    /// Watch the loop on this machine: no Kubernetes, the eBPF sensor in this process,
    /// observe mode only.
    ///
    /// Runs the sensor (root, kernel BTF) and the brain together on a plain Linux host. The
    /// sensor hands each interval's signals and crash and OOM events straight to the brain,
    /// without a network hop; each cgroup is a workload of this host, named by its systemd
    /// unit (`nginx.service`, `session-3.scope`) or its path. The brain learns, detects and
    /// journals as in a cluster and proposes nothing: there is nothing to act on, so no
    /// kubeconfig is read and `--mode` may only be observe (a configured mode is overridden).
    /// Listeners whose configured address is unspecified (0.0.0.0) bind to 127.0.0.1; other
    /// OTLP sources on this host can still send to them. Watch it at
    /// http://127.0.0.1:8080/api/v1/workloads (who sends what), /api/v1/events (crashes, OOM
    /// kills) and /metrics.
    #[arg(long)]
    local: bool,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => BrainConfig::load(path)?,
        None => BrainConfig::default(),
    };
    if let Some(mode) = args.mode {
        config.mode = mode.into();
    }
    if args.local {
        local_config(&mut config, args.mode.map(Mode::from))?;
        // Say what is missing (root, BTF, kernel) before anything listens.
        homeostat_sensor::preflight::check().context("--local runs the eBPF sensor")?;
    }
    let (stop, rx) = super::stop_on_signal()?;
    let cluster = if args.local {
        Cluster::None
    } else {
        Cluster::Kubernetes
    };
    let running = runtime::start(config, cluster, rx.clone())
        .await
        .context("brain")?;
    if !args.local {
        running.run().await.context("brain")?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut sensor = tokio::spawn(crate::sensor::run_in_process(running.ingest().clone(), rx));
    let mut brain = tokio::spawn(running.run());
    // Each runs until the stop signal or its own failure; either way both stop.
    let (brain_result, sensor_result) = tokio::select! {
        b = &mut brain => {
            stop.send_replace(true);
            (b, sensor.await)
        }
        s = &mut sensor => {
            stop.send_replace(true);
            (brain.await, s)
        }
    };
    sensor_result
        .context("the sensor task")?
        .context("sensor")?;
    brain_result.context("the brain task")?.context("brain")?;
    Ok(ExitCode::SUCCESS)
}

/// What `--local` changes: observe mode (refusing another `--mode`), loopback listeners.
fn local_config(config: &mut BrainConfig, flag: Option<Mode>) -> anyhow::Result<()> {
    if let Some(mode) = flag.filter(|m| *m != Mode::Observe) {
        anyhow::bail!(
            "--local observes only: --mode {mode} needs a Kubernetes cluster to act on (drop \
             --mode, or run `homeostat brain --mode {mode}` against a cluster)"
        );
    }
    if config.mode != Mode::Observe {
        tracing::info!(configured = %config.mode, "--local: observe mode, nothing to act on");
        config.mode = Mode::Observe;
    }
    for addr in [
        &mut config.otlp.grpc_listen,
        &mut config.otlp.http_listen,
        &mut config.api.listen,
    ] {
        if addr.ip().is_unspecified() {
            addr.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_means_observe_on_loopback() {
        let mut config = BrainConfig::default();
        config.api.listen = "192.0.2.7:9000".parse().unwrap();
        local_config(&mut config, None).unwrap();
        assert_eq!(config.mode, Mode::Observe);
        assert_eq!(config.otlp.grpc_listen.to_string(), "127.0.0.1:4317");
        assert_eq!(config.otlp.http_listen.to_string(), "127.0.0.1:4318");
        assert_eq!(
            config.api.listen.to_string(),
            "192.0.2.7:9000",
            "as configured"
        );
        let e = local_config(&mut config, Some(Mode::Enforce)).unwrap_err();
        assert!(e.to_string().starts_with("--local observes only"), "{e}");
        assert!(local_config(&mut config, Some(Mode::Observe)).is_ok());
    }
}
