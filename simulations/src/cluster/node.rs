//! Nodes and the scheduler. Nodes are objects in the store with their CPU as capacity and
//! allocatable and a Ready condition; the scheduler places a new pod on a node with room for
//! its CPU request, spreading each workload's pods: fewest pods of that workload first, then
//! least CPU requested, then by name, so placement is deterministic.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::apiserver::discovery::{NODES, PODS};
use crate::apiserver::{ApiError, ObjectSelector, ObjectStore};
use crate::scenario::NodeSpec;

/// The name of the node a scenario without `nodes:` runs on.
pub const DEFAULT_NODE: &str = "sim-node-1";

/// A node of the simulated cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct SimNode {
    /// Node name.
    pub name: String,
    /// CPU cores (capacity and allocatable alike).
    pub cores: f64,
}

/// Creates the nodes in the store.
pub fn install(store: &ObjectStore, specs: &[NodeSpec]) -> Result<Vec<SimNode>, ApiError> {
    let mut out = Vec::with_capacity(specs.len());
    for n in specs {
        let mut labels: BTreeMap<String, String> = n.labels.clone();
        labels.insert("kubernetes.io/hostname".into(), n.name.clone());
        labels.insert("kubernetes.io/os".into(), "linux".into());
        let cpu = format!("{}m", (n.cpu * 1000.0).round());
        let memory = format!("{}Mi", (n.cpu * 4096.0).round());
        let resources = json!({"cpu": cpu, "memory": memory, "pods": "110"});
        store.create(
            &NODES,
            None,
            json!({
                "metadata": {"name": n.name, "labels": labels},
                "spec": {"podCIDR": format!("10.244.{}.0/24", out.len())},
                "status": {
                    "capacity": resources,
                    "allocatable": resources,
                    "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
                    "addresses": [{"type": "InternalIP", "address": format!("192.168.0.{}", out.len() + 10)}, {"type": "Hostname", "address": n.name}],
                    "nodeInfo": {"kubeletVersion": "v1.33.0", "operatingSystem": "linux", "architecture": "amd64"}
                }
            }),
        )?;
        out.push(SimNode {
            name: n.name.clone(),
            cores: n.cpu,
        });
    }
    Ok(out)
}

/// CPU cores of a Kubernetes quantity: `500m`, `0.5`, `2`; 0 when unreadable.
pub fn cpu_cores(q: &Value) -> f64 {
    match q {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::String(s) => match s.strip_suffix('m') {
            Some(m) => m.parse::<f64>().map_or(0.0, |v| v / 1000.0),
            None => s.parse().unwrap_or(0.0),
        },
        _ => 0.0,
    }
}

/// The CPU a pod requests: the sum of its containers' requests.
pub fn pod_request(pod: &Value) -> f64 {
    pod["spec"]["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .map(|c| cpu_cores(&c["resources"]["requests"]["cpu"]))
                .sum()
        })
        .unwrap_or(0.0)
}

/// Picks a node for a pod of the workload `namespace/app` requesting `request` cores, from
/// the pods the store holds now; `None` when no node has room.
pub fn schedule(
    store: &ObjectStore,
    nodes: &[SimNode],
    namespace: &str,
    app: &str,
    request: f64,
) -> Option<String> {
    let (pods, _) = store.list(&PODS, None, &ObjectSelector::default());
    let mut requested: BTreeMap<&str, (u32, f64)> = BTreeMap::new();
    for p in &pods {
        let Some(node) = p["spec"]["nodeName"].as_str() else {
            continue;
        };
        if matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed")) {
            continue;
        }
        let entry = requested.entry(node).or_default();
        if p["metadata"]["namespace"] == namespace && p["metadata"]["labels"]["app"] == app {
            entry.0 += 1;
        }
        entry.1 += pod_request(p);
    }
    nodes
        .iter()
        .filter_map(|n| {
            let (mine, used) = requested.get(n.name.as_str()).copied().unwrap_or_default();
            // A little slack for the rounding of millicores.
            (used + request <= n.cores + 1e-9).then_some((mine, used, &n.name))
        })
        .min_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(b.2)))
        .map(|(_, _, name)| name.clone())
}
