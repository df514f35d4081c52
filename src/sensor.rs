//! `homeostat sensor`: the node agent's kernel probes, printed as a table or exported as
//! OTLP metrics (and crash and OOM events as OTLP logs) with the Kubernetes attributes of the
//! pods they belong to; or, in `homeostat brain --local`, handed to the brain in-process.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args as _, FromArgMatches as _};
use homeostat_brain::ingest::IngestContext;
use homeostat_sensor::local_config::{self, ConfigWatcher, Reload};
use homeostat_sensor::{Probe, ProbeConfig, Sensor, SensorConfig, Throttle, throttle};
use tokio::runtime::Handle;
use tokio::sync::watch;

mod export;
mod overrides;

use export::Exporter;
pub use export::Protocol;
use overrides::Overrides;

/// How often the brain's overrides (ConfigMap `homeostat-sensor`) are fetched.
const OVERRIDES_EVERY: Duration = Duration::from_secs(10);

/// Arguments of `homeostat sensor`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one snapshot after one interval, then exit.
    #[arg(long)]
    once: bool,
    #[command(flatten)]
    probing: Probing,
    /// Export OTLP metrics, and crash and OOM events as OTLP logs, to this endpoint (e.g.
    /// http://homeostat-brain.homeostat-system:4317) instead of printing. Pods are named from
    /// the Kubernetes API (current kubeconfig or in-cluster).
    #[arg(long, env = "HOMEOSTAT_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// The OTLP transport: grpc (port 4317), or http/protobuf (port 4318; /v1/metrics and
    /// /v1/logs are appended to the endpoint).
    #[arg(
        long,
        env = "OTEL_EXPORTER_OTLP_PROTOCOL",
        value_enum,
        default_value = "grpc"
    )]
    otlp_protocol: Protocol,
    /// This node's name, for `k8s.node.name` and to list only this node's pods.
    #[arg(long, env = "NODE_NAME")]
    node_name: Option<String>,
}

/// How the probes sample and measure themselves.
#[derive(Clone, Debug, clap::Args)]
pub struct Probing {
    /// How long each snapshot covers, e.g. 1s, 500ms, 1m.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Measure 1 in N events of the latency probes (run queue, connect, block I/O); counters
    /// always count everything. The self-throttle samples more sparsely still when over budget.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    sample_every: u32,
    /// The probes' CPU budget, a fraction of one CPU (0.01 = 1 %). Over it, the sensor samples
    /// its costliest latency probe more sparsely, step by step; well under it, it recovers.
    #[arg(long, default_value_t = 0.01, value_parser = parse_budget)]
    overhead_budget: f64,
    /// Measure the probes' own cost (BPF run-time statistics, which slow every program run
    /// down) over one interval in this many; the overhead gauge and the throttle follow it.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    measure_every: u32,
    /// A YAML file of probe settings (`probes: {runqueue: {enabled, sampleEvery}}`) and
    /// `overheadBudget`, laid over the flags and re-read when it changes; a bad edit is
    /// reported and the last good settings kept.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl Default for Probing {
    /// The flags' defaults, as clap gives them.
    fn default() -> Self {
        let command = Probing::augment_args(clap::Command::new("sensor"));
        Probing::from_arg_matches(&command.get_matches_from(["sensor"]))
            .expect("the probing flags' defaults parse")
    }
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let exporter = match &args.otlp_endpoint {
        Some(endpoint) => {
            Some(Exporter::to_otlp(endpoint, args.otlp_protocol, node_name(&args)).await?)
        }
        None => None,
    };
    let (_, stop) = super::stop_on_signal()?;
    probe(args.probing, exporter, args.once, Some(stop)).await
}

/// The sensor of `homeostat brain --local`: every probe at its defaults, each snapshot handed
/// to `ingest` in this process, cgroups named as workloads of this host, until `stop`.
pub async fn run_in_process(
    ingest: IngestContext,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let exporter = Exporter::in_process(ingest, host_name());
    probe(Probing::default(), Some(exporter), false, Some(stop)).await?;
    Ok(())
}

/// The loop: load the probes, then every interval read, re-configure if asked, and print or
/// export the snapshot; once, or until `stop` turns true.
async fn probe(
    probing: Probing,
    exporter: Option<Exporter>,
    once: bool,
    stop: Option<watch::Receiver<bool>>,
) -> anyhow::Result<ExitCode> {
    let handle = Handle::current();
    // Reading BPF maps is blocking syscalls; keep it off the async workers.
    tokio::task::spawn_blocking(move || {
        let mut base = SensorConfig::default();
        for probe in Probe::ALL.into_iter().filter(|p| p.is_latency()) {
            let sampled = ProbeConfig {
                enabled: true,
                sample_every: probing.sample_every,
            };
            base.probes.insert(probe, sampled);
        }
        let mut local = probing
            .config
            .as_deref()
            .map(ConfigWatcher::open)
            .transpose()?;
        let mut throttle = Throttle::new(probing.overhead_budget);
        // In a cluster, the brain's throttle action arrives as a ConfigMap.
        let mut overrides = exporter.as_ref().and_then(|e| {
            let kube = e.kube.clone()?;
            Some(Overrides::new(kube, &export::sensor_namespace(), e.node()))
        });
        if let Some(o) = &mut overrides
            && let Err(e) = handle.block_on(o.poll())
        {
            tracing::warn!(error = format!("{e:#}"), "sensor overrides not read; none in force");
        }
        let mut wanted = settings(&base, local.as_ref(), overrides.as_ref(), &mut throttle);
        let poll_every = (OVERRIDES_EVERY.as_millis() / probing.interval.as_millis().max(1)).max(1);
        let mut intervals: u128 = 0;
        let mut sensor = Sensor::start(&wanted).context("starting the eBPF sensor")?;
        for (family, error) in sensor.failed() {
            eprintln!(
                "warning: probe family {} not loaded: {error}",
                family.name()
            );
        }
        let mut exporter = exporter;
        loop {
            // The cost measurement costs too: on for one interval in --measure-every.
            sensor.measure_cost(once || intervals.is_multiple_of(probing.measure_every.into()));
            let stats = sensor.program_stats();
            std::thread::sleep(probing.interval);
            if stop.as_ref().is_some_and(|s| *s.borrow()) {
                return Ok(ExitCode::SUCCESS);
            }
            let snapshot = sensor.read().context("reading the probes")?;
            // Zero unless measured; the throttle only looks when the overhead is known.
            let costs = throttle::latency_costs(&stats, &sensor.program_stats());
            let mut changed = false;
            intervals += 1;
            if let Some(o) = &mut overrides
                && intervals.is_multiple_of(poll_every)
            {
                match handle.block_on(o.poll()) {
                    Ok(true) => {
                        tracing::info!(layers = o.layers().len(), "sensor overrides changed: applying them");
                        changed = true;
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(
                        error = format!("{e:#}"),
                        "sensor overrides not read: keeping the last good ones"
                    ),
                }
            }
            if let Some(watcher) = &mut local {
                match watcher.poll() {
                    Reload::Unchanged => {}
                    Reload::Changed => {
                        tracing::info!("config file changed: applying it");
                        changed = true;
                    }
                    Reload::Rejected(e) => {
                        tracing::error!(error = %e, "config file rejected: keeping the last good settings");
                    }
                }
            }
            if let Some(overhead) = snapshot.overhead
                && let Some(change) = throttle.observe(overhead, &costs)
            {
                log_change(&change, &throttle);
                changed = true;
            }
            if changed {
                wanted = settings(&base, local.as_ref(), overrides.as_ref(), &mut throttle);
                sensor.configure(&wanted).context("reconfiguring the probes")?;
            }
            match &mut exporter {
                Some(e) => {
                    if let Err(err) = handle.block_on(e.export(&snapshot)) {
                        // A brain that is down must not stop the sensor; the next interval retries.
                        tracing::warn!(error = format!("{err:#}"), "OTLP export failed");
                    }
                }
                None => println!("{}", snapshot.table()),
            }
            if once {
                return Ok(ExitCode::SUCCESS);
            }
        }
    })
    .await?
}

fn parse_budget(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    local_config::Budget::try_from(v).map(|b| b.0)
}

/// What the probes should be set to: the flags, the config file over them, the brain's
/// overrides over that, the throttle's divisors last. The last budget set wins too.
fn settings(
    base: &SensorConfig,
    local: Option<&ConfigWatcher>,
    overrides: Option<&Overrides>,
    throttle: &mut Throttle,
) -> SensorConfig {
    let layers = local
        .map(|w| w.current())
        .into_iter()
        .chain(overrides.into_iter().flat_map(|o| o.layers()));
    let mut configured = base.clone();
    for layer in layers {
        if let Some(b) = layer.overhead_budget {
            throttle.set_budget(b.0);
        }
        configured = layer.apply(&configured);
    }
    throttle.apply(&configured)
}

fn log_change(change: &throttle::Change, throttle: &Throttle) {
    let budget = throttle.budget();
    match *change {
        throttle::Change::Raised {
            probe,
            factor,
            overhead,
        } => tracing::warn!(
            probe = probe.name(),
            factor,
            overhead,
            budget,
            "over the overhead budget: sampling this probe more sparsely"
        ),
        throttle::Change::Lowered {
            probe,
            factor,
            overhead,
        } => tracing::info!(
            probe = probe.name(),
            factor,
            overhead,
            budget,
            "well under the overhead budget: sampling this probe more densely again"
        ),
        throttle::Change::Exhausted { overhead } => tracing::warn!(
            overhead,
            budget,
            "over the overhead budget with every latency probe sampled as sparsely as it goes; \
             counters are never sampled: switch probes off (--config) to go lower"
        ),
    }
}

fn node_name(args: &Args) -> String {
    args.node_name.clone().unwrap_or_else(host_name)
}

/// This machine's host name (empty if it cannot be read).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}
