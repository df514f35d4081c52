//! Where the sensor's snapshots go — an OTLP receiver over gRPC or HTTP, or the brain in the
//! same process — and how each cgroup is named there: as the pod the Kubernetes API says it
//! is, or, on a plain host, as a cgroup of that host.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use homeostat_brain::ingest::{IngestContext, RpcStatus, Transport};
use homeostat_core::semconv;
use homeostat_sensor::{Owner, Snapshot, otlp};
use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;
use tonic::transport::Channel;

/// The OTLP transport, as `OTEL_EXPORTER_OTLP_PROTOCOL` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// OTLP/gRPC (port 4317 by convention).
    Grpc,
    /// OTLP/HTTP with protobuf bodies, to `<endpoint>/v1/metrics` and `/v1/logs` (port 4318).
    #[value(name = "http/protobuf")]
    HttpProtobuf,
}

/// Where snapshots are sent.
enum Sink {
    Grpc(Box<GrpcClients>),
    Http {
        client: reqwest::Client,
        metrics: String,
        logs: String,
    },
    /// The brain of `homeostat brain --local`: no wire, the receivers' own path.
    InProcess(IngestContext),
}

/// One gRPC channel's two OTLP clients.
struct GrpcClients {
    metrics: MetricsServiceClient<Channel>,
    logs: LogsServiceClient<Channel>,
}

/// What the receiver refused of an export: how many items, and its message.
struct Refused(i64, String);

impl Sink {
    async fn connect(endpoint: &str, protocol: Protocol) -> anyhow::Result<Self> {
        Ok(match protocol {
            Protocol::Grpc => {
                let channel = Channel::from_shared(endpoint.to_owned())
                    .with_context(|| format!("OTLP endpoint {endpoint}"))?
                    .connect()
                    .await
                    .with_context(|| format!("connecting to the OTLP receiver at {endpoint}"))?;
                Sink::Grpc(Box::new(GrpcClients {
                    metrics: MetricsServiceClient::new(channel.clone()),
                    logs: LogsServiceClient::new(channel),
                }))
            }
            Protocol::HttpProtobuf => {
                let base = endpoint.trim_end_matches('/');
                anyhow::ensure!(
                    base.starts_with("http://"),
                    "OTLP endpoint {endpoint}: OTLP/HTTP needs an http:// URL (no TLS here)"
                );
                Sink::Http {
                    client: reqwest::Client::new(),
                    metrics: format!("{base}/v1/metrics"),
                    logs: format!("{base}/v1/logs"),
                }
            }
        })
    }

    async fn metrics(&mut self, req: ExportMetricsServiceRequest) -> anyhow::Result<Refused> {
        let partial = match self {
            Sink::Grpc(clients) => {
                clients
                    .metrics
                    .export(req)
                    .await?
                    .into_inner()
                    .partial_success
            }
            Sink::Http {
                client, metrics, ..
            } => {
                post::<_, ExportMetricsServiceResponse>(client, metrics, &req)
                    .await?
                    .partial_success
            }
            Sink::InProcess(ctx) => ctx.ingest(Transport::InProcess, &req).partial_success,
        };
        Ok(partial.map_or(Refused(0, String::new()), |p| {
            Refused(p.rejected_data_points, p.error_message)
        }))
    }

    async fn logs(&mut self, req: ExportLogsServiceRequest) -> anyhow::Result<Refused> {
        let partial = match self {
            Sink::Grpc(clients) => clients.logs.export(req).await?.into_inner().partial_success,
            Sink::Http { client, logs, .. } => {
                post::<_, ExportLogsServiceResponse>(client, logs, &req)
                    .await?
                    .partial_success
            }
            Sink::InProcess(ctx) => ctx.ingest_logs(Transport::InProcess, &req).partial_success,
        };
        Ok(partial.map_or(Refused(0, String::new()), |p| {
            Refused(p.rejected_log_records, p.error_message)
        }))
    }
}

/// One OTLP/HTTP protobuf export: the answer, or an error with what the error status said
/// (its `google.rpc.Status` message).
async fn post<Req: Message, Resp: Message + Default>(
    client: &reqwest::Client,
    url: &str,
    req: &Req,
) -> anyhow::Result<Resp> {
    let resp = client
        .post(url)
        .header("content-type", "application/x-protobuf")
        .body(req.encode_to_vec())
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    let body = resp.bytes().await.with_context(|| format!("POST {url}"))?;
    if !status.is_success() {
        let message = RpcStatus::decode(body)
            .map(|s| s.message)
            .unwrap_or_else(|_| "(no readable status)".into());
        anyhow::bail!("POST {url}: {status}: {message}");
    }
    Resp::decode(body).with_context(|| format!("POST {url}: the answer"))
}

/// How cgroups are named on the wire.
enum Naming {
    /// Pods from the Kubernetes API, listed again when an unknown pod turns up; systemd
    /// units and other cgroups are left out.
    Kubernetes(Box<Pods>),
    /// A plain host: every cgroup is a workload of the host (`host.name`), by its systemd
    /// unit or path (`homeostat.cgroup.name`).
    Host,
}

/// This node's pods, by UID, and how to list them again.
struct Pods {
    api: kube::Api<Pod>,
    by_uid: HashMap<String, Pod>,
}

/// Sends snapshots (metrics, then crash and OOM events as logs) and names their cgroups.
pub struct Exporter {
    sink: Sink,
    naming: Naming,
    node: String,
    /// The Kubernetes client, to read the brain's overrides; none on a plain host.
    pub kube: Option<kube::Client>,
    /// The sensor's own resource, for `homeostat.sensor.overhead`.
    own: Vec<(String, String)>,
}

impl Exporter {
    /// An exporter to the OTLP receiver at `endpoint`, naming pods from the Kubernetes API
    /// (current kubeconfig or in-cluster).
    pub async fn to_otlp(endpoint: &str, protocol: Protocol, node: String) -> anyhow::Result<Self> {
        let sink = Sink::connect(endpoint, protocol).await?;
        let kube = kube::Client::try_default()
            .await
            .context("a Kubernetes client (kubeconfig or in-cluster) to name pods")?;
        // POD_NAME and POD_NAMESPACE come from the DaemonSet's downward API.
        let namespace = sensor_namespace();
        let pod = std::env::var("POD_NAME").unwrap_or_else(|_| format!("homeostat-sensor-{node}"));
        Ok(Exporter {
            sink,
            naming: Naming::Kubernetes(Box::new(Pods {
                api: kube::Api::all(kube.clone()),
                by_uid: HashMap::new(),
            })),
            kube: Some(kube),
            own: otlp::sensor_resource(&namespace, &pod, &node),
            node,
        })
    }

    /// An exporter into the brain of this process, on a plain host named `node`.
    pub fn in_process(ingest: IngestContext, node: String) -> Self {
        Exporter {
            sink: Sink::InProcess(ingest),
            naming: Naming::Host,
            kube: None,
            own: host_resource(&node, otlp::SENSOR_DAEMONSET),
            node,
        }
    }

    /// This node's (or host's) name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Lists this node's pods again when the snapshot has a pod not seen before.
    async fn refresh(&mut self, snapshot: &Snapshot) -> anyhow::Result<()> {
        let Naming::Kubernetes(pods) = &mut self.naming else {
            return Ok(());
        };
        let unknown = snapshot
            .readings
            .iter()
            .map(|r| &r.owner)
            .chain(snapshot.events.iter().map(|e| &e.owner))
            .any(|owner| match owner {
                Owner::Pod { uid, .. } => !pods.by_uid.contains_key(uid),
                _ => false,
            });
        if !unknown {
            return Ok(());
        }
        let params = ListParams::default().fields(&format!("spec.nodeName={}", self.node));
        let list = pods
            .api
            .list(&params)
            .await
            .context("listing this node's pods")?;
        pods.by_uid = list
            .items
            .into_iter()
            .filter_map(|p| Some((p.metadata.uid.clone()?, p)))
            .collect();
        Ok(())
    }

    /// Sends one snapshot: its readings as metrics, its events as log records.
    pub async fn export(&mut self, snapshot: &Snapshot) -> anyhow::Result<()> {
        self.refresh(snapshot).await?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let (naming, node) = (&self.naming, self.node.as_str());
        let mut resource_of = |owner: &Owner| resource(naming, owner, node);
        let metrics = otlp::export_request(snapshot, now, &mut resource_of, Some(&self.own));
        let logs = otlp::logs_request(&snapshot.events, now, &mut resource_of);
        if !metrics.resource_metrics.is_empty() {
            let Refused(n, why) = self.sink.metrics(metrics).await?;
            if n > 0 {
                tracing::warn!(rejected = n, why, "the receiver rejected data points");
            }
        }
        if !logs.resource_logs.is_empty() {
            let Refused(n, why) = self.sink.logs(logs).await.context("exporting events")?;
            if n > 0 {
                tracing::warn!(rejected = n, why, "the receiver rejected log records");
            }
        }
        Ok(())
    }
}

/// The namespace the sensor runs in: `POD_NAMESPACE` (downward API) or the default.
pub fn sensor_namespace() -> String {
    std::env::var("POD_NAMESPACE").unwrap_or_else(|_| otlp::SENSOR_NAMESPACE.to_owned())
}

/// The resource attributes of `owner`'s cgroup, or `None` to leave it out.
fn resource(naming: &Naming, owner: &Owner, node: &str) -> Option<Vec<(String, String)>> {
    match (naming, owner) {
        (
            Naming::Kubernetes(pods),
            Owner::Pod {
                uid, container_id, ..
            },
        ) => Some(pod_attributes(
            pods.by_uid.get(uid)?,
            container_id.as_deref(),
            node,
        )),
        (Naming::Kubernetes(_), _) => None,
        // A cgroup gone before it was read, or a reset sent for no socket: nothing to name.
        (Naming::Host, Owner::Path(p)) if p.starts_with('(') => None,
        (Naming::Host, owner) => Some(host_resource(node, &owner.to_string())),
    }
}

/// A host's cgroup as a workload: `host.name` and `homeostat.cgroup.name`.
fn host_resource(host: &str, cgroup: &str) -> Vec<(String, String)> {
    vec![
        (semconv::HOST_NAME.to_owned(), host.to_owned()),
        (semconv::HOMEOSTAT_CGROUP_NAME.to_owned(), cgroup.to_owned()),
    ]
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

    fn get<'a>(attrs: &'a [(String, String)], key: &str) -> Option<&'a str> {
        attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

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
        assert_eq!(get(&attrs, "k8s.deployment.name"), Some("web"));
        assert_eq!(get(&attrs, "k8s.namespace.name"), Some("shop"));
        assert_eq!(get(&attrs, "k8s.container.name"), Some("app"));
        assert_eq!(get(&attrs, "k8s.node.name"), Some("node-1"));
        assert_eq!(get(&attrs, "k8s.pod.uid"), Some("u-1"));
    }

    #[test]
    fn on_a_plain_host_every_named_cgroup_is_a_workload_of_the_host() {
        let unit = resource(&Naming::Host, &Owner::Unit("cron.service".into()), "vm1")
            .expect("a unit is named");
        assert_eq!(get(&unit, "host.name"), Some("vm1"));
        assert_eq!(get(&unit, "homeostat.cgroup.name"), Some("cron.service"));
        let path = resource(&Naming::Host, &Owner::Path("/user.slice".into()), "vm1").unwrap();
        assert_eq!(get(&path, "homeostat.cgroup.name"), Some("/user.slice"));
        let gone = Owner::Path("(gone cgroup 42)".into());
        assert_eq!(resource(&Naming::Host, &gone, "vm1"), None);
    }
}
