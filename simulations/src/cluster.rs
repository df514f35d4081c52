//! The simulated cluster's own controllers: a Deployment controller that creates and deletes
//! pods and marks them ready after their start-up delay, and the HPA controller model. They
//! work on the [`ObjectStore`] directly, as controllers in the control plane would; everything
//! outside the cluster (homeostat, kubectl) goes through the HTTP API.

use std::time::Duration;

use homeostat_core::Timestamp;
use serde_json::{Value, json};

use crate::apiserver::discovery::{DEPLOYMENTS, HORIZONTAL_POD_AUTOSCALERS, NAMESPACES, PODS};
use crate::apiserver::{ApiError, ObjectStore};
use crate::model::hpa::{Behavior, HpaController, HpaInput};
use crate::model::load::LoadTrace;
use crate::model::workload::{ServingModel, TickOutcome};
use crate::scenario::WorkloadSpec;
use crate::telemetry::{PodIdentity, PodSignals, pod_metrics};

/// The simulated node every pod runs on.
pub const NODE: &str = "sim-node-1";

/// How often the HPA controller syncs (the kube-controller-manager default).
pub const HPA_SYNC: Duration = Duration::from_secs(15);

/// A pod of the simulation.
#[derive(Clone, Debug)]
pub struct SimPod {
    /// Pod name.
    pub name: String,
    /// Pod UID, from the store.
    pub uid: String,
    /// Creation time.
    pub created: Timestamp,
    /// When it becomes ready.
    pub ready_at: Timestamp,
    /// Whether the store already says it is ready.
    pub ready: bool,
    /// Its cumulative signals.
    pub signals: PodSignals,
    /// CPU utilisation during the last tick, fraction of request.
    pub utilisation: f64,
}

/// One Deployment with its pods, its load and its HPA controller.
#[derive(Debug)]
pub struct SimWorkload {
    /// What the scenario says.
    pub spec: WorkloadSpec,
    /// Its pods, oldest first.
    pub pods: Vec<SimPod>,
    load: LoadTrace,
    serving: ServingModel,
    hpa: HpaController,
    next_pod: u32,
}

/// Creates the workload's namespace, Deployment, HPA and initial (ready) pods.
pub fn install(
    store: &ObjectStore,
    spec: &WorkloadSpec,
    seed: u64,
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
    store.create(
        &DEPLOYMENTS,
        Some(&spec.namespace),
        json!({
            "metadata": {"name": spec.name, "labels": labels},
            "spec": {
                "replicas": spec.replicas,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{
                        "name": spec.name,
                        "image": format!("registry.example/{}:1.0", spec.name),
                        "resources": {"requests": {"cpu": format!("{}m", (spec.pod.cpu_request * 1000.0).round())}}
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
        load: LoadTrace::new(spec.load.clone(), seed),
        serving: ServingModel::new(),
        hpa: HpaController::new(),
        next_pod: 0,
    };
    for _ in 0..spec.replicas {
        w.create_pod(store, now, Duration::ZERO)?;
    }
    w.reconcile(store, now)?;
    Ok(w)
}

/// Sets an object's `status`, as a controller's status update does, unless it already is
/// that: an unchanged status is not written again (no new `resourceVersion`, no watch event).
fn write_status(
    store: &ObjectStore,
    resource: &crate::apiserver::discovery::ResourceType,
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

/// What one tick of one workload looked like, for the timeline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WorkloadTick {
    /// Serving outcome.
    pub outcome: TickOutcome,
    /// Replicas the Deployment asks for.
    pub desired: u32,
    /// Pods that are ready.
    pub ready: u32,
    /// The HPA's `minReplicas`.
    pub hpa_min: u32,
    /// Whether the load is inside an incident (ground truth).
    pub in_incident: bool,
}

impl SimWorkload {
    fn ns(&self) -> &str {
        &self.spec.namespace
    }

    fn create_pod(
        &mut self,
        store: &ObjectStore,
        now: Timestamp,
        delay: Duration,
    ) -> Result<(), ApiError> {
        self.next_pod += 1;
        let name = format!("{}-6d4cf56db6-{:05x}", self.spec.name, self.next_pod);
        let created = store.create(
            &PODS,
            Some(&self.spec.namespace),
            json!({
                "metadata": {
                    "name": name,
                    "labels": {"app": self.spec.name},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{}-6d4cf56db6", self.spec.name), "uid": "00000000-0000-0000-0000-000000000000", "controller": true}]
                },
                "spec": {"nodeName": NODE, "containers": [{"name": self.spec.name, "image": format!("registry.example/{}:1.0", self.spec.name)}]},
                "status": {"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}]}
            }),
        )?;
        let uid = created["metadata"]["uid"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.pods.push(SimPod {
            name,
            uid,
            created: now,
            ready_at: now + delay,
            ready: false,
            signals: PodSignals::default(),
            utilisation: 0.0,
        });
        Ok(())
    }

    /// The Deployment controller: converge pods on `spec.replicas`, and mark started pods ready.
    pub fn reconcile(&mut self, store: &ObjectStore, now: Timestamp) -> Result<(), ApiError> {
        let (desired, generation) =
            store.read(&DEPLOYMENTS, Some(self.ns()), &self.spec.name, |d| {
                (
                    d["spec"]["replicas"].as_u64().unwrap_or(1) as usize,
                    d["metadata"]["generation"].clone(),
                )
            })?;
        while self.pods.len() < desired {
            self.create_pod(store, now, self.spec.pod.startup_delay)?;
        }
        if self.pods.len() > desired {
            // Like the ReplicaSet controller: not-ready pods go first, then the youngest.
            self.pods
                .sort_by_key(|p| (p.ready, std::cmp::Reverse(p.created)));
            let doomed: Vec<SimPod> = self.pods.drain(..self.pods.len() - desired).collect();
            self.pods.sort_by_key(|p| p.created);
            for p in doomed {
                match store.delete(&PODS, Some(&self.spec.namespace), &p.name) {
                    Ok(_) | Err(ApiError::NotFound(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let ns = self.spec.namespace.clone();
        for p in self
            .pods
            .iter_mut()
            .filter(|p| !p.ready && p.ready_at <= now)
        {
            p.ready = true;
            let at = now.to_rfc3339();
            store.modify(&PODS, Some(&ns), &p.name, |o| {
                o["status"] = json!({"phase": "Running", "podIP": "10.0.0.1", "startTime": at, "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": at}]});
            })?;
        }
        let ready = self.pods.iter().filter(|p| p.ready).count();
        let status = json!({
            "observedGeneration": generation,
            "replicas": self.pods.len(), "updatedReplicas": self.pods.len(),
            "readyReplicas": ready, "availableReplicas": ready,
            "unavailableReplicas": self.pods.len() - ready,
        });
        write_status(store, &DEPLOYMENTS, &ns, &self.spec.name, status)
    }

    /// Serves one tick of load on the ready pods and accumulates every pod's signals.
    pub fn serve(&mut self, since_start: Duration, dt: Duration) -> TickOutcome {
        let demand = self.load.next(since_start);
        let ready = self.pods.iter().filter(|p| p.ready).count() as u32;
        let secs = dt.as_secs_f64();
        let service = self.spec.pod.base_latency.as_secs_f64();
        let o = self
            .serving
            .tick(demand, ready, self.spec.pod.capacity, service, secs);
        let per_pod = if ready > 0 {
            o.served / f64::from(ready)
        } else {
            0.0
        };
        for p in &mut self.pods {
            // A starting pod burns a little CPU and serves nothing.
            p.utilisation = if p.ready { o.utilisation } else { 0.05 };
            p.signals.cpu_seconds += p.utilisation * self.spec.pod.cpu_request * secs;
            if p.ready {
                p.signals
                    .requests
                    .add_shifted_exponential(per_pod, o.fixed_latency, o.queue_wait);
            }
            // Context switches grow with work; their run-queue delay with CPU pressure.
            let switches = (200.0 + 2000.0 * p.utilisation) * secs;
            p.signals.runqueue.add_shifted_exponential(
                switches,
                0.0,
                if p.ready { o.runqueue_mean } else { 50e-6 },
            );
        }
        o
    }

    /// The HPA controller's sync: reads the HPA, sets the Deployment's replicas, writes status.
    pub fn sync_hpa(
        &mut self,
        store: &ObjectStore,
        now: Timestamp,
        since_start: Duration,
    ) -> Result<u32, ApiError> {
        let ns = self.spec.namespace.clone();
        let (min, max, target, last_scale, behavior) = store.read(
            &HORIZONTAL_POD_AUTOSCALERS,
            Some(&ns),
            &self.spec.name,
            |hpa| {
                let spec = &hpa["spec"];
                let min = spec["minReplicas"].as_u64().unwrap_or(1) as u32;
                let max = spec["maxReplicas"].as_u64().unwrap_or(u64::from(min)) as u32;
                let target = spec["metrics"][0]["resource"]["target"]["averageUtilization"]
                    .as_f64()
                    .unwrap_or(80.0)
                    / 100.0;
                let last_scale = hpa["status"]["lastScaleTime"].as_str().map(str::to_owned);
                // A behaviour the API server accepted but this model cannot read falls back to
                // the defaults, as fields left out do.
                let behavior = serde_json::from_value(spec["behavior"].clone()).ok();
                (
                    min,
                    max,
                    target,
                    last_scale,
                    Behavior::from_spec(behavior.as_ref()),
                )
            },
        )?;
        let current = store.read(&DEPLOYMENTS, Some(&ns), &self.spec.name, |d| {
            d["spec"]["replicas"].as_u64().unwrap_or(1) as u32
        })?;
        let ready_utilisation: Vec<f64> = self
            .pods
            .iter()
            .filter(|p| p.ready)
            .map(|p| p.utilisation)
            .collect();
        let unready = self.pods.iter().filter(|p| !p.ready).count() as u32;
        let average = if ready_utilisation.is_empty() {
            0.0
        } else {
            ready_utilisation.iter().sum::<f64>() / ready_utilisation.len() as f64
        };
        let input = HpaInput {
            current,
            ready_utilisation,
            unready,
            target,
            min,
            max,
            behavior,
        };
        let desired = self.hpa.sync(since_start, &input);
        if desired != current {
            store.modify(&DEPLOYMENTS, Some(&ns), &self.spec.name, |o| {
                o["spec"]["replicas"] = json!(desired)
            })?;
        }
        let last_scale = if desired != current {
            Some(now.to_rfc3339())
        } else {
            last_scale
        };
        let status = json!({
            "currentReplicas": current,
            "desiredReplicas": desired,
            "lastScaleTime": last_scale,
            "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": (average * 100.0).round() as i64}}}],
        });
        write_status(
            store,
            &HORIZONTAL_POD_AUTOSCALERS,
            &ns,
            &self.spec.name,
            status,
        )?;
        Ok(desired)
    }

    /// The HPA's `minReplicas` as stored now.
    pub fn hpa_min(&self, store: &ObjectStore) -> u32 {
        store
            .read(
                &HORIZONTAL_POD_AUTOSCALERS,
                Some(&self.spec.namespace),
                &self.spec.name,
                |h: &Value| h["spec"]["minReplicas"].as_u64(),
            )
            .ok()
            .flatten()
            .unwrap_or(1) as u32
    }

    /// Whether `t` is inside one of the scenario's incidents.
    pub fn in_incident(&self, t: Duration) -> bool {
        self.load.in_event(t)
    }

    /// Every pod's OTLP resource metrics at `now`.
    pub fn telemetry(
        &self,
        now: Timestamp,
    ) -> Vec<opentelemetry_proto::tonic::metrics::v1::ResourceMetrics> {
        self.pods
            .iter()
            .map(|p| {
                let id = PodIdentity {
                    namespace: &self.spec.namespace,
                    deployment: &self.spec.name,
                    pod: &p.name,
                    uid: &p.uid,
                    node: NODE,
                    started: p.created,
                };
                pod_metrics(&id, &p.signals, now)
            })
            .collect()
    }
}
