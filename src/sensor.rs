//! `homeostat sensor`: the node agent's kernel probes, printed as a table or exported as
//! OTLP metrics with the Kubernetes attributes of the pods they belong to.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use homeostat_core::semconv;
use homeostat_sensor::local_config::{self, ConfigWatcher, Reload};
use homeostat_sensor::{
    Owner, Probe, ProbeConfig, Sensor, SensorConfig, Snapshot, Throttle, otlp, throttle,
};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use tokio::runtime::Handle;

mod overrides;

use overrides::Overrides;

/// How often the brain's overrides (ConfigMap `homeostat-sensor`) are fetched.
const OVERRIDES_EVERY: Duration = Duration::from_secs(10);

/// Arguments of `homeostat sensor`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one snapshot after one interval, then exit.
    #[arg(long)]
    once: bool,
    /// How long each snapshot covers, e.g. 1s, 500ms, 1m.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Export OTLP metrics (gRPC) to this endpoint, e.g. http://homeostat-brain:4317, instead
    /// of printing. Pods are named from the Kubernetes API (current kubeconfig or in-cluster).
    #[arg(long, env = "HOMEOSTAT_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
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
    /// This node's name, for `k8s.node.name` and to list only this node's pods.
    #[arg(long, env = "NODE_NAME")]
    node_name: Option<String>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let exporter = match &args.otlp_endpoint {
        Some(endpoint) => Some(Exporter::connect(endpoint, node_name(&args)).await?),
        None => None,
    };
    let handle = Handle::current();
    // Reading BPF maps is blocking syscalls; keep it off the async workers.
    tokio::task::spawn_blocking(move || {
        let mut base = SensorConfig::default();
        for probe in Probe::ALL.into_iter().filter(|p| p.is_latency()) {
            let sampled = ProbeConfig {
                enabled: true,
                sample_every: args.sample_every,
            };
            base.probes.insert(probe, sampled);
        }
        let mut local = args
            .config
            .as_deref()
            .map(ConfigWatcher::open)
            .transpose()?;
        let mut throttle = Throttle::new(args.overhead_budget);
        // In a cluster, the brain's throttle action arrives as a ConfigMap.
        let mut overrides = exporter.as_ref().map(|e| {
            let namespace = std::env::var("POD_NAMESPACE")
                .unwrap_or_else(|_| otlp::SENSOR_NAMESPACE.to_owned());
            Overrides::new(e.kube.clone(), &namespace, &e.node)
        });
        if let Some(o) = &mut overrides
            && let Err(e) = handle.block_on(o.poll())
        {
            tracing::warn!(error = format!("{e:#}"), "sensor overrides not read; none in force");
        }
        let mut wanted = settings(&base, local.as_ref(), overrides.as_ref(), &mut throttle);
        let poll_every = (OVERRIDES_EVERY.as_millis() / args.interval.as_millis().max(1)).max(1);
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
            sensor
                .measure_cost(args.once || intervals.is_multiple_of(args.measure_every.into()));
            let stats = sensor.program_stats();
            std::thread::sleep(args.interval);
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
            if args.once {
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
    args.node_name.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default()
    })
}

/// Sends snapshots to an OTLP receiver, naming pods from the API server.
struct Exporter {
    client: MetricsServiceClient<tonic::transport::Channel>,
    pods: Api,
    kube: kube::Client,
    node: String,
    /// The sensor's own resource, for `homeostat.sensor.overhead`.
    own: Vec<(String, String)>,
    by_uid: HashMap<String, Pod>,
}

type Api = kube::Api<Pod>;

impl Exporter {
    async fn connect(endpoint: &str, node: String) -> anyhow::Result<Self> {
        let client = MetricsServiceClient::connect(endpoint.to_owned())
            .await
            .with_context(|| format!("connecting to the OTLP receiver at {endpoint}"))?;
        let kube = kube::Client::try_default()
            .await
            .context("a Kubernetes client (kubeconfig or in-cluster) to name pods")?;
        // POD_NAME and POD_NAMESPACE come from the DaemonSet's downward API.
        let namespace =
            std::env::var("POD_NAMESPACE").unwrap_or_else(|_| otlp::SENSOR_NAMESPACE.to_owned());
        let pod = std::env::var("POD_NAME").unwrap_or_else(|_| format!("homeostat-sensor-{node}"));
        Ok(Exporter {
            client,
            pods: kube::Api::all(kube.clone()),
            kube,
            own: otlp::sensor_resource(&namespace, &pod, &node),
            node,
            by_uid: HashMap::new(),
        })
    }

    /// Lists this node's pods again when the snapshot has a pod not seen before.
    async fn refresh(&mut self, snapshot: &Snapshot) -> anyhow::Result<()> {
        let unknown = snapshot.readings.iter().any(|r| match &r.owner {
            Owner::Pod { uid, .. } => !self.by_uid.contains_key(uid),
            _ => false,
        });
        if !unknown {
            return Ok(());
        }
        let params = ListParams::default().fields(&format!("spec.nodeName={}", self.node));
        let list = self
            .pods
            .list(&params)
            .await
            .context("listing this node's pods")?;
        self.by_uid = list
            .items
            .into_iter()
            .filter_map(|p| Some((p.metadata.uid.clone()?, p)))
            .collect();
        Ok(())
    }

    async fn export(&mut self, snapshot: &Snapshot) -> anyhow::Result<()> {
        self.refresh(snapshot).await?;
        let end = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let (by_uid, node, own) = (&self.by_uid, self.node.as_str(), &self.own);
        let request = otlp::export_request(
            snapshot,
            end,
            &mut |owner| match owner {
                Owner::Pod {
                    uid, container_id, ..
                } => Some(pod_attributes(
                    by_uid.get(uid)?,
                    container_id.as_deref(),
                    node,
                )),
                _ => None,
            },
            Some(own),
        );
        if request.resource_metrics.is_empty() {
            return Ok(());
        }
        let response = self.client.export(request).await?.into_inner();
        if let Some(partial) = response
            .partial_success
            .filter(|p| p.rejected_data_points > 0)
        {
            tracing::warn!(
                rejected = partial.rejected_data_points,
                why = partial.error_message,
                "the receiver rejected data points"
            );
        }
        Ok(())
    }
}

/// The OpenTelemetry Kubernetes resource attributes of a pod (and one of its containers):
/// namespace, pod, node, and the owning Deployment / StatefulSet / DaemonSet. A ReplicaSet
/// made by a Deployment is named `<deployment>-<pod-template-hash>`.
fn pod_attributes(pod: &Pod, container_id: Option<&str>, node: &str) -> Vec<(String, String)> {
    let meta = &pod.metadata;
    let mut attrs = vec![(semconv::K8S_NODE_NAME.to_owned(), node.to_owned())];
    let mut put = |k: &str, v: Option<&String>| {
        if let Some(v) = v {
            attrs.push((k.to_owned(), v.clone()));
        }
    };
    put(semconv::K8S_NAMESPACE_NAME, meta.namespace.as_ref());
    put(semconv::K8S_POD_NAME, meta.name.as_ref());
    put(semconv::K8S_POD_UID, meta.uid.as_ref());
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true));
    if let Some(owner) = controller {
        let hash = meta
            .labels
            .as_ref()
            .and_then(|l| l.get("pod-template-hash"));
        match owner.kind.as_str() {
            "ReplicaSet" => {
                let deployment = hash
                    .and_then(|h| owner.name.strip_suffix(&format!("-{h}")))
                    .map(str::to_owned);
                put(semconv::K8S_DEPLOYMENT_NAME, deployment.as_ref());
            }
            "StatefulSet" => put(semconv::K8S_STATEFULSET_NAME, Some(&owner.name)),
            "DaemonSet" => put(semconv::K8S_DAEMONSET_NAME, Some(&owner.name)),
            _ => {}
        }
    }
    if let Some(id) = container_id {
        put("container.id", Some(&id.to_owned()));
        let statuses = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref());
        let name = statuses.into_iter().flatten().find(|c| {
            c.container_id
                .as_deref()
                .and_then(|full| full.split_once("://"))
                .is_some_and(|(_, cid)| cid == id)
        });
        put(semconv::K8S_CONTAINER_NAME, name.map(|c| &c.name));
    }
    attrs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_deployment_and_container_of_a_pod() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "web-7c9f8d6b5-x2x4q", "namespace": "shop", "uid": "u-1",
                "labels": {"pod-template-hash": "7c9f8d6b5"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "web-7c9f8d6b5", "uid": "rs", "controller": true}]
            },
            "status": {"containerStatuses": [{"name": "app", "containerID": "containerd://abc123",
                "image": "i", "imageID": "", "ready": true, "restartCount": 0}]}
        }))
        .unwrap();
        let attrs = pod_attributes(&pod, Some("abc123"), "node-1");
        let get = |k: &str| {
            attrs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("k8s.deployment.name"), Some("web"));
        assert_eq!(get("k8s.namespace.name"), Some("shop"));
        assert_eq!(get("k8s.container.name"), Some("app"));
        assert_eq!(get("k8s.node.name"), Some("node-1"));
        assert_eq!(get("k8s.pod.uid"), Some("u-1"));
    }
}
