//! Nodes and the scheduler. Nodes are objects in the store with their CPU as capacity and
//! allocatable and a Ready condition; the scheduler places a new pod on a node with room for
//! its CPU request and no `NoSchedule` taint, spreading each workload's pods: untainted nodes
//! before `PreferNoSchedule` ones, then fewest pods of that workload, then least CPU
//! requested, then by name, so placement is deterministic. (The simulated pods tolerate
//! nothing.)

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

/// How a node's taints bear on scheduling an intolerant pod there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Taints {
    None,
    PreferNoSchedule,
    NoSchedule,
}

fn taints(node: &Value) -> Taints {
    node["spec"]["taints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| match t["effect"].as_str() {
            Some("NoSchedule" | "NoExecute") => Taints::NoSchedule,
            Some("PreferNoSchedule") => Taints::PreferNoSchedule,
            _ => Taints::None,
        })
        .max()
        .unwrap_or(Taints::None)
}

/// Picks a node for a pod of the workload `namespace/app` requesting `request` cores, from
/// the pods and node taints the store holds now; `None` when no node has room.
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
    let (stored, _) = store.list(&NODES, None, &ObjectSelector::default());
    let tainted: BTreeMap<&str, Taints> = stored
        .iter()
        .filter_map(|n| Some((n["metadata"]["name"].as_str()?, taints(n))))
        .collect();
    nodes
        .iter()
        .filter_map(|n| {
            let (mine, used) = requested.get(n.name.as_str()).copied().unwrap_or_default();
            let taint = tainted
                .get(n.name.as_str())
                .copied()
                .unwrap_or(Taints::None);
            // A little slack for the rounding of millicores.
            (used + request <= n.cores + 1e-9 && taint < Taints::NoSchedule)
                .then_some((taint, mine, used, &n.name))
        })
        .min_by(|a, b| {
            (a.0, a.1)
                .cmp(&(b.0, b.1))
                .then(a.2.total_cmp(&b.2))
                .then(a.3.cmp(b.3))
        })
        .map(|(_, _, _, name)| name.clone())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use homeostat_core::{ManualClock, Timestamp};

    use super::*;
    use crate::apiserver::discovery::NAMESPACES;

    fn cluster() -> (ObjectStore, Vec<SimNode>) {
        let store = ObjectStore::new(Arc::new(ManualClock::new(Timestamp::from_secs(0))));
        let specs: Vec<NodeSpec> = ["node-a", "node-b"]
            .map(|name| NodeSpec {
                name: name.into(),
                cpu: 1.0,
                labels: BTreeMap::new(),
            })
            .into();
        let nodes = install(&store, &specs).expect("nodes");
        store
            .create(&NAMESPACES, None, json!({"metadata": {"name": "shop"}}))
            .expect("namespace");
        (store, nodes)
    }

    fn taint(store: &ObjectStore, node: &str, effect: &str) {
        store
            .modify(&NODES, None, node, |n| {
                n["spec"]["taints"] = json!([{"key": "k", "effect": effect}]);
            })
            .expect("tainted");
    }

    fn place(store: &ObjectStore, nodes: &[SimNode], n: usize) -> Vec<Option<String>> {
        let (existing, _) = store.list(&PODS, None, &ObjectSelector::default());
        (existing.len()..existing.len() + n)
            .map(|i| {
                let node = schedule(store, nodes, "shop", "web", 0.25);
                store
                    .create(
                        &PODS,
                        Some("shop"),
                        json!({"metadata": {"name": format!("web-{i}"), "labels": {"app": "web"}},
                               "spec": {"nodeName": node, "containers": [{"name": "c",
                                   "resources": {"requests": {"cpu": "250m"}}}]}}),
                    )
                    .expect("pod");
                node
            })
            .collect()
    }

    #[test]
    fn pods_spread_and_avoid_tainted_nodes_while_others_have_room() {
        let (store, nodes) = cluster();
        let spread = place(&store, &nodes, 2);
        assert_eq!(spread, [Some("node-a".into()), Some("node-b".into())]);
        taint(&store, "node-b", "PreferNoSchedule");
        let placed = place(&store, &nodes, 4);
        assert_eq!(
            placed,
            [
                Some("node-a".into()),
                Some("node-a".into()),
                Some("node-a".into()),
                Some("node-b".into())
            ],
            "node-a until it is full, then the preference yields"
        );
        place(&store, &nodes, 2);
        assert_eq!(schedule(&store, &nodes, "shop", "web", 0.25), None, "full");
    }

    #[test]
    fn no_schedule_is_a_refusal() {
        let (store, nodes) = cluster();
        taint(&store, "node-a", "NoSchedule");
        let placed = place(&store, &nodes, 4);
        assert!(placed.iter().all(|n| n.as_deref() == Some("node-b")));
        assert_eq!(schedule(&store, &nodes, "shop", "web", 0.25), None);
    }
}
