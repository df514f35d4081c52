//! The node sensors' side of sampling control: each node's sensor follows the ConfigMap
//! `homeostat-sensor` in its namespace (key `node.<node>.yaml`, else `sensor.yaml`), as the
//! real `homeostat sensor` does, and its cost falls with the run-queue sampling it is told.

use serde::Deserialize;

use serde_json::json;

use crate::apiserver::discovery::{CONFIGMAPS, NAMESPACES};
use crate::apiserver::{ApiError, ObjectStore};
use crate::telemetry::SENSOR_NAMESPACE;

/// The ConfigMap the sensors follow.
pub const CONFIGMAP: &str = "homeostat-sensor";

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Settings {
    #[serde(default)]
    probes: Probes,
}

#[derive(Debug, Default, Deserialize)]
struct Probes {
    runqueue: Option<Probe>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    sample_every: Option<u32>,
}

/// Creates the namespace the sensors run in, where their ConfigMap goes.
pub fn install(store: &ObjectStore) -> Result<(), ApiError> {
    match store.create(
        &NAMESPACES,
        None,
        json!({"metadata": {"name": SENSOR_NAMESPACE}}),
    ) {
        Ok(_) | Err(ApiError::AlreadyExists(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// One run-queue event in how many `node`'s sensor samples: 1 unless the ConfigMap says
/// otherwise. A key that does not parse is ignored, as the sensor keeps its last good
/// settings (here: none).
pub fn runqueue_sample_every(store: &ObjectStore, node: &str) -> u32 {
    let keys = [format!("node.{node}.yaml"), "sensor.yaml".to_owned()];
    let text = store
        .read(&CONFIGMAPS, Some(SENSOR_NAMESPACE), CONFIGMAP, |cm| {
            keys.iter()
                .find_map(|k| cm["data"][k.as_str()].as_str().map(str::to_owned))
        })
        .ok()
        .flatten();
    text.and_then(|t| yaml_serde::from_str::<Settings>(&t).ok())
        .and_then(|s| s.probes.runqueue)
        .and_then(|p| p.sample_every)
        .unwrap_or(1)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use homeostat_core::{ManualClock, Timestamp};

    #[test]
    fn a_nodes_key_wins_over_the_shared_one_and_bad_text_is_ignored() {
        let store = ObjectStore::new(Arc::new(ManualClock::new(Timestamp::from_secs(0))));
        assert_eq!(runqueue_sample_every(&store, "node-a"), 1, "no ConfigMap");
        store
            .create(
                &NAMESPACES,
                None,
                json!({"metadata": {"name": SENSOR_NAMESPACE}}),
            )
            .expect("namespace");
        store
            .create(
                &CONFIGMAPS,
                Some(SENSOR_NAMESPACE),
                json!({"metadata": {"name": CONFIGMAP}, "data": {
                    "sensor.yaml": "probes:\n  runqueue:\n    sampleEvery: 2\n",
                    "node.node-c.yaml": "probes:\n  runqueue: {sampleEvery: 8}\n",
                    "node.node-b.yaml": "probes: [not, a, map]",
                }}),
            )
            .expect("configmap");
        assert_eq!(runqueue_sample_every(&store, "node-c"), 8);
        assert_eq!(runqueue_sample_every(&store, "node-a"), 2);
        assert_eq!(runqueue_sample_every(&store, "node-b"), 1);
    }
}
