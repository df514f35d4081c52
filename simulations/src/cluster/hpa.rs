//! The HPA controller's side of a workload: its sync reads the HPA, sets the Deployment's
//! replicas from the ready pods' CPU utilisation, and writes the HPA's status.

use std::time::Duration;

use homeostat_core::Timestamp;
use serde_json::{Value, json};

use super::workload::{SimWorkload, write_status};
use crate::apiserver::discovery::{DEPLOYMENTS, HORIZONTAL_POD_AUTOSCALERS};
use crate::apiserver::{ApiError, ObjectStore};
use crate::model::hpa::{Behavior, HpaInput};

impl SimWorkload {
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
}
