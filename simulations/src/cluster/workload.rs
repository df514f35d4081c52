//! One Deployment of the simulated cluster: the Deployment controller (a ReplicaSet per pod
//! template, rolling updates between them), the ReplicaSet controller (pods owned by their
//! ReplicaSet, reconciled from the pods the store holds, so pods deleted by anyone are
//! replaced), the kubelet's view of each pod, and the HPA controller model.

use std::cmp::Reverse;
use std::time::Duration;

use homeostat_core::Timestamp;
use serde_json::{Value, json};

use super::node::{self, SimNode};
use super::pod::{ContainerState, LeakWindow, SimPod};
use super::rollout::{self, RsCount};
use crate::apiserver::discovery::{
    DEPLOYMENTS, HORIZONTAL_POD_AUTOSCALERS, NAMESPACES, PODS, REPLICA_SETS, ResourceType,
};
use crate::apiserver::{ApiError, ObjectStore};
use crate::model::hpa::HpaController;
use crate::model::incident::backoff::BackOff;
use crate::model::load::LoadTrace;
use crate::model::workload::ServingModel;
use crate::scenario::WorkloadSpec;
use crate::telemetry::PodSignals;

/// The image a workload runs normally.
pub fn image(name: &str) -> String {
    format!("registry.example/{name}:1.0")
}

/// The image of a bad rollout: its containers exit with code 1 shortly after starting.
pub fn bad_image(name: &str) -> String {
    format!("registry.example/{name}:2.0-bad")
}

/// A ReplicaSet of a workload, as its Deployment controller keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct SimReplicaSet {
    /// `<deployment>-<hash>`.
    pub name: String,
    /// Its `pod-template-hash`.
    pub hash: String,
    /// Its UID in the store.
    pub uid: String,
    /// Its pods' image.
    pub image: String,
    /// `spec.replicas`.
    pub replicas: u32,
    /// Its pod template (with the hash label).
    template: Value,
}

/// One Deployment with its ReplicaSets, pods, load and HPA controller.
#[derive(Debug)]
pub struct SimWorkload {
    /// What the scenario says.
    pub spec: WorkloadSpec,
    /// Its pods, oldest first.
    pub pods: Vec<SimPod>,
    /// Its ReplicaSets, oldest first.
    pub replica_sets: Vec<SimReplicaSet>,
    /// A memory leak in effect, if the scenario has one for it.
    pub leak: Option<LeakWindow>,
    pub(super) load: LoadTrace,
    pub(super) serving: ServingModel,
    pub(super) hpa: HpaController,
    deployment_uid: String,
    next_pod: u32,
}

/// Sets an object's `status`, as a controller's status update does, unless it already is
/// that: an unchanged status is not written again (no new `resourceVersion`, no watch event).
pub(super) fn write_status(
    store: &ObjectStore,
    resource: &ResourceType,
    namespace: &str,
    name: &str,
    status: Value,
) -> Result<(), ApiError> {
    if store.read(resource, Some(namespace), name, |o| o["status"] == status)? {
        return Ok(());
    }
    store.modify(resource, Some(namespace), name, |o| o["status"] = status)?;
    Ok(())
}

/// Creates the workload's namespace, Deployment and HPA, and its first ReplicaSet with its
/// pods already running and ready (the scenario starts from a settled cluster).
pub(super) fn install(
    store: &ObjectStore,
    spec: &WorkloadSpec,
    seed: u64,
    nodes: &[SimNode],
    leak: Option<LeakWindow>,
    now: Timestamp,
) -> Result<SimWorkload, ApiError> {
    match store.create(
        &NAMESPACES,
        None,
        json!({"metadata": {"name": spec.namespace}}),
    ) {
        Ok(_) | Err(ApiError::AlreadyExists(_)) => {}
        Err(e) => return Err(e),
    }
    let labels = json!({"app": spec.name});
    let mut resources =
        json!({"requests": {"cpu": format!("{}m", (spec.pod.cpu_request * 1000.0).round())}});
    if let Some(l) = &leak {
        resources["limits"] = json!({"memory": format!("{}Mi", l.leak.limit_mib.round())});
    }
    let deployment = store.create(
        &DEPLOYMENTS,
        Some(&spec.namespace),
        json!({
            "metadata": {"name": spec.name, "labels": labels},
            "spec": {
                "replicas": spec.replicas,
                "selector": {"matchLabels": labels},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{
                        "name": "app",
                        "image": image(&spec.name),
                        "resources": resources,
                    }]}
                }
            }
        }),
    )?;
    store.create(
        &HORIZONTAL_POD_AUTOSCALERS,
        Some(&spec.namespace),
        json!({
            "metadata": {"name": spec.name, "labels": labels},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
                "minReplicas": spec.hpa.min_replicas,
                "maxReplicas": spec.hpa.max_replicas,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": spec.hpa.target_cpu_utilization}}}]
            }
        }),
    )?;
    let mut w = SimWorkload {
        spec: spec.clone(),
        pods: Vec::new(),
        replica_sets: Vec::new(),
        leak,
        load: LoadTrace::new(spec.load.clone(), seed),
        serving: ServingModel::new(),
        hpa: HpaController::new(),
        deployment_uid: deployment["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        next_pod: 0,
    };
    let template = deployment["spec"]["template"].clone();
    let rs = w.ensure_replica_set(store, &template, spec.replicas)?;
    for _ in 0..spec.replicas {
        w.create_pod(store, nodes, rs, now, Duration::ZERO)?;
    }
    w.reconcile(store, nodes, now)?;
    Ok(w)
}

impl SimWorkload {
    fn ns(&self) -> &str {
        &self.spec.namespace
    }

    /// The index of the ReplicaSet for `template`, created if there is none (or if someone
    /// deleted it from the store).
    fn ensure_replica_set(
        &mut self,
        store: &ObjectStore,
        template: &Value,
        replicas: u32,
    ) -> Result<usize, ApiError> {
        let hash = rollout::template_hash(template);
        let existing = self.replica_sets.iter().position(|r| r.hash == hash);
        if let Some(i) = existing {
            let rs = &self.replica_sets[i];
            match store.read(&REPLICA_SETS, Some(self.ns()), &rs.name, |_| ()) {
                Ok(()) => return Ok(i),
                Err(ApiError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let name = format!("{}-{hash}", self.spec.name);
        let mut template = template.clone();
        template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
        let replicas = existing.map_or(replicas, |i| self.replica_sets[i].replicas);
        let created = store.create(
            &REPLICA_SETS,
            Some(&self.spec.namespace),
            json!({
                "metadata": {
                    "name": name,
                    "labels": {"app": self.spec.name, "pod-template-hash": hash},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": self.spec.name, "uid": self.deployment_uid, "controller": true, "blockOwnerDeletion": true}]
                },
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": self.spec.name, "pod-template-hash": hash}},
                    "template": template,
                }
            }),
        )?;
        let rs = SimReplicaSet {
            name,
            uid: created["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            image: template["spec"]["containers"][0]["image"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            hash,
            replicas,
            template,
        };
        Ok(match existing {
            Some(i) => {
                self.replica_sets[i] = rs;
                i
            }
            None => {
                self.replica_sets.push(rs);
                self.replica_sets.len() - 1
            }
        })
    }

    fn create_pod(
        &mut self,
        store: &ObjectStore,
        nodes: &[SimNode],
        rs: usize,
        now: Timestamp,
        startup: Duration,
    ) -> Result<(), ApiError> {
        self.next_pod += 1;
        let set = &self.replica_sets[rs];
        let name = format!("{}-{:05x}", set.name, self.next_pod);
        let node = node::schedule(
            store,
            nodes,
            &self.spec.namespace,
            &self.spec.name,
            self.spec.pod.cpu_request,
        );
        let mut pod = json!({
            "metadata": {
                "name": name,
                "labels": set.template["metadata"]["labels"],
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": set.name, "uid": set.uid, "controller": true, "blockOwnerDeletion": true}]
            },
            "spec": set.template["spec"],
            "status": {"phase": "Pending"}
        });
        if let Some(n) = &node {
            pod["spec"]["nodeName"] = json!(n);
        }
        let created = store.create(&PODS, Some(&self.spec.namespace), pod)?;
        let node_index = node
            .as_ref()
            .and_then(|n| nodes.iter().position(|m| &m.name == n))
            .unwrap_or(0);
        self.pods.push(SimPod {
            dirty: true,
            ip: format!("10.244.{node_index}.{}", self.next_pod % 250 + 2),
            name,
            uid: created["metadata"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            hash: set.hash.clone(),
            image: set.image.clone(),
            state: if node.is_some() {
                ContainerState::Running(now)
            } else {
                ContainerState::Pending
            },
            node,
            created: now,
            first_startup: startup,
            startup: self.spec.pod.startup_delay,
            restarts: 0,
            backoff: BackOff::default(),
            last_termination: None,
            ready: false,
            signals: PodSignals::default(),
            utilisation: 0.0,
        });
        Ok(())
    }

    /// Forgets pods the store no longer holds, or is deleting: someone deleted or evicted
    /// them, and their ReplicaSet will replace them.
    fn forget_deleted_pods(&mut self, store: &ObjectStore) -> Result<(), ApiError> {
        let ns = self.spec.namespace.clone();
        let mut gone = Vec::new();
        for p in &self.pods {
            match store.read(&PODS, Some(&ns), &p.name, |o| {
                !o["metadata"]["deletionTimestamp"].is_null()
            }) {
                Ok(false) => {}
                Ok(true) | Err(ApiError::NotFound(_)) => gone.push(p.name.clone()),
                Err(e) => return Err(e),
            }
        }
        self.pods.retain(|p| !gone.contains(&p.name));
        Ok(())
    }

    fn counts(&self, hash: &str) -> RsCount {
        let mine = self.pods.iter().filter(|p| p.hash == hash);
        RsCount {
            replicas: self
                .replica_sets
                .iter()
                .find(|r| r.hash == hash)
                .map_or(0, |r| r.replicas),
            available: mine.filter(|p| p.ready).count() as u32,
        }
    }

    /// The Deployment and ReplicaSet controllers and the kubelets: converge ReplicaSets on
    /// the Deployment (rolling between templates), pods on their ReplicaSets, and advance
    /// every container to `now`, writing what changed to the store.
    pub fn reconcile(
        &mut self,
        store: &ObjectStore,
        nodes: &[SimNode],
        now: Timestamp,
    ) -> Result<(), ApiError> {
        let (desired, generation, template) =
            store.read(&DEPLOYMENTS, Some(self.ns()), &self.spec.name, |d| {
                (
                    d["spec"]["replicas"].as_u64().unwrap_or(1) as u32,
                    d["metadata"]["generation"].clone(),
                    d["spec"]["template"].clone(),
                )
            })?;
        self.forget_deleted_pods(store)?;
        // The kubelets first, so availability is what it is now.
        let leak = self.leak;
        for p in &mut self.pods {
            p.advance(now, leak.as_ref());
        }
        let new = self.ensure_replica_set(store, &template, 0)?;
        let new_hash = self.replica_sets[new].hash.clone();
        let old: Vec<usize> = (0..self.replica_sets.len()).filter(|&i| i != new).collect();
        let old_counts: Vec<RsCount> = old
            .iter()
            .map(|&i| self.counts(&self.replica_sets[i].hash))
            .collect();
        let (new_replicas, old_replicas) =
            rollout::roll(desired, self.counts(&new_hash), &old_counts);
        self.replica_sets[new].replicas = new_replicas;
        for (&i, r) in old.iter().zip(old_replicas) {
            self.replica_sets[i].replicas = r;
        }
        for i in 0..self.replica_sets.len() {
            self.sync_replica_set(store, nodes, i, now)?;
        }
        // Pods waiting for room try again.
        for i in 0..self.pods.len() {
            if self.pods[i].node.is_none()
                && let Some(n) = node::schedule(
                    store,
                    nodes,
                    &self.spec.namespace,
                    &self.spec.name,
                    self.spec.pod.cpu_request,
                )
            {
                let name = self.pods[i].name.clone();
                store.modify(&PODS, Some(&self.spec.namespace), &name, |o| {
                    o["spec"]["nodeName"] = json!(n)
                })?;
                self.pods[i].node = Some(n);
                self.pods[i].state = ContainerState::Running(now);
                self.pods[i].dirty = true;
            }
        }
        self.write_pod_statuses(store, nodes)?;
        self.write_statuses(store, generation, &new_hash)
    }

    /// The ReplicaSet controller for one ReplicaSet: create or delete its pods.
    fn sync_replica_set(
        &mut self,
        store: &ObjectStore,
        nodes: &[SimNode],
        i: usize,
        now: Timestamp,
    ) -> Result<(), ApiError> {
        let hash = self.replica_sets[i].hash.clone();
        let want = self.replica_sets[i].replicas as usize;
        let have = self.pods.iter().filter(|p| p.hash == hash).count();
        for _ in have..want {
            self.create_pod(store, nodes, i, now, self.spec.pod.startup_delay)?;
        }
        if have > want {
            // Like the ReplicaSet controller: unscheduled, then not-ready pods go first, then
            // the youngest.
            let mut mine: Vec<(bool, bool, Reverse<Timestamp>, String)> = self
                .pods
                .iter()
                .filter(|p| p.hash == hash)
                .map(|p| {
                    (
                        p.node.is_some(),
                        p.ready,
                        Reverse(p.created),
                        p.name.clone(),
                    )
                })
                .collect();
            mine.sort();
            for (_, _, _, name) in mine.into_iter().take(have - want) {
                match store.delete(&PODS, Some(&self.spec.namespace), &name) {
                    Ok(_) | Err(ApiError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
                self.pods.retain(|p| p.name != name);
            }
        }
        let rs = &self.replica_sets[i];
        let ns = self.spec.namespace.clone();
        let replicas = rs.replicas;
        let stored = store.modify(&REPLICA_SETS, Some(&ns), &rs.name, |o| {
            o["spec"]["replicas"] = json!(replicas)
        })?;
        let generation = stored["metadata"]["generation"].clone();
        let count = self.pods.iter().filter(|p| p.hash == hash).count();
        let ready = self
            .pods
            .iter()
            .filter(|p| p.hash == hash && p.ready)
            .count();
        write_status(
            store,
            &REPLICA_SETS,
            &ns,
            &self.replica_sets[i].name,
            json!({"replicas": count, "fullyLabeledReplicas": count, "readyReplicas": ready, "availableReplicas": ready, "observedGeneration": generation}),
        )
    }

    /// Writes the status of every pod whose status changed (the kubelet's status update).
    fn write_pod_statuses(
        &mut self,
        store: &ObjectStore,
        nodes: &[SimNode],
    ) -> Result<(), ApiError> {
        for p in self.pods.iter_mut().filter(|p| p.dirty) {
            let node_index = p
                .node
                .as_ref()
                .and_then(|n| nodes.iter().position(|m| &m.name == n))
                .unwrap_or(0);
            let status = p.status(&format!("192.168.0.{}", node_index + 10));
            match write_status(store, &PODS, &self.spec.namespace, &p.name, status) {
                Ok(()) | Err(ApiError::NotFound(_)) => p.dirty = false,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn write_statuses(
        &self,
        store: &ObjectStore,
        generation: Value,
        new_hash: &str,
    ) -> Result<(), ApiError> {
        let desired = store.read(&DEPLOYMENTS, Some(self.ns()), &self.spec.name, |d| {
            d["spec"]["replicas"].as_u64().unwrap_or(1) as usize
        })?;
        let ready = self.pods.iter().filter(|p| p.ready).count();
        let updated = self.pods.iter().filter(|p| p.hash == new_hash).count();
        let status = json!({
            "observedGeneration": generation,
            "replicas": self.pods.len(), "updatedReplicas": updated,
            "readyReplicas": ready, "availableReplicas": ready,
            "unavailableReplicas": desired.saturating_sub(ready),
        });
        write_status(store, &DEPLOYMENTS, self.ns(), &self.spec.name, status)
    }

    /// Sets the image of the Deployment's pod template, as `kubectl set image` does: a
    /// rollout when it changes.
    pub fn set_image(&self, store: &ObjectStore, image: &str) -> Result<(), ApiError> {
        store.modify(&DEPLOYMENTS, Some(self.ns()), &self.spec.name, |d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image)
        })?;
        Ok(())
    }
}
