//! `homeostat sensor`: the node agent's kernel probes, printed as a table.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use homeostat_sensor::{Sensor, SensorConfig};

/// Arguments of `homeostat sensor`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one snapshot after one interval, then exit.
    #[arg(long)]
    once: bool,
    /// How long each snapshot covers, e.g. 1s, 500ms, 1m.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Export OTLP metrics to this endpoint instead of printing (not implemented yet).
    #[arg(long, env = "HOMEOSTAT_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.otlp_endpoint.is_none(),
        "OTLP export from the sensor is not implemented yet: run without --otlp-endpoint to print snapshots"
    );
    // Reading BPF maps is blocking syscalls; keep it off the async workers.
    tokio::task::spawn_blocking(move || {
        let mut sensor =
            Sensor::start(&SensorConfig::default()).context("starting the eBPF sensor")?;
        for (family, error) in sensor.failed() {
            eprintln!(
                "warning: probe family {} not loaded: {error}",
                family.name()
            );
        }
        loop {
            std::thread::sleep(args.interval);
            let snapshot = sensor.read().context("reading the probes")?;
            println!("{}", snapshot.table());
            if args.once {
                return Ok(ExitCode::SUCCESS);
            }
        }
    })
    .await?
}
