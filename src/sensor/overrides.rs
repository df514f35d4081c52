//! The brain's throttle action as the sensor sees it: the ConfigMap `homeostat-sensor` in
//! the sensor's namespace. Key `sensor.yaml` applies to every node and `node.<name>.yaml` to
//! one node, laid over it; both in the `--config` file's format (`overheadBudget`,
//! `probes.<name>.enabled/sampleEvery`). Polled, because a sensor only needs to follow within
//! seconds and a GET is the simplest thing that survives API-server restarts. A key that does
//! not parse is reported and the last good overrides stay in force.

use homeostat_sensor::local_config::LocalConfig;
use k8s_openapi::api::core::v1::ConfigMap;
use std::path::Path;

/// The ConfigMap's name.
pub const CONFIGMAP: &str = "homeostat-sensor";
/// The key that applies to every node.
pub const CLUSTER_KEY: &str = "sensor.yaml";

/// The key that applies to one node.
pub fn node_key(node: &str) -> String {
    format!("node.{node}.yaml")
}

/// The overrides in force for this node, and how to fetch them again.
pub struct Overrides {
    api: kube::Api<ConfigMap>,
    namespace: String,
    node: String,
    resource_version: Option<String>,
    layers: Vec<LocalConfig>,
}

impl Overrides {
    /// Overrides for `node`, from the ConfigMap in `namespace`; none until the first poll.
    pub fn new(client: kube::Client, namespace: &str, node: &str) -> Self {
        Overrides {
            api: kube::Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            node: node.to_owned(),
            resource_version: None,
            layers: Vec::new(),
        }
    }

    /// The layers in force, cluster-wide first.
    pub fn layers(&self) -> &[LocalConfig] {
        &self.layers
    }

    /// Fetches the ConfigMap; `Ok(true)` when the overrides changed. No ConfigMap means no
    /// overrides. On error (API unreachable, a key that does not parse) the overrides in
    /// force stay.
    pub async fn poll(&mut self) -> anyhow::Result<bool> {
        let Some(cm) = self.api.get_opt(CONFIGMAP).await? else {
            let changed = !self.layers.is_empty();
            self.layers.clear();
            self.resource_version = None;
            return Ok(changed);
        };
        if cm.metadata.resource_version.is_some()
            && cm.metadata.resource_version == self.resource_version
        {
            return Ok(false);
        }
        let data = cm.data.unwrap_or_default();
        let mut layers = Vec::new();
        for key in [CLUSTER_KEY.to_owned(), node_key(&self.node)] {
            if let Some(text) = data.get(&key) {
                let name = format!("configmap {}/{CONFIGMAP} key {key}", self.namespace);
                layers.push(LocalConfig::parse(Path::new(&name), text)?);
            }
        }
        self.resource_version = cm.metadata.resource_version;
        let changed = layers != self.layers;
        self.layers = layers;
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use homeostat_sensor::{Probe, SensorConfig};
    use http::{Request, Response, StatusCode};
    use kube::client::Body;
    use tower_test::mock;

    type Handle = mock::Handle<Request<Body>, Response<Body>>;

    const PATH: &str = "/api/v1/namespaces/homeostat-system/configmaps/homeostat-sensor";

    fn applied(o: &Overrides) -> SensorConfig {
        o.layers()
            .iter()
            .fold(SensorConfig::default(), |c, l| l.apply(&c))
    }

    fn overrides() -> (Overrides, Handle) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "default");
        (Overrides::new(client, "homeostat-system", "node-1"), handle)
    }

    async fn answer(handle: &mut Handle, status: StatusCode, reply: serde_json::Value) {
        let (req, send) = handle.next_request().await.expect("a request");
        assert_eq!(req.method(), http::Method::GET);
        assert_eq!(req.uri().path(), PATH);
        send.send_response(
            Response::builder()
                .status(status)
                .body(Body::from(serde_json::to_vec(&reply).expect("json")))
                .expect("response"),
        );
    }

    fn configmap(version: &str, data: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CONFIGMAP, "namespace": "homeostat-system",
                         "resourceVersion": version},
            "data": data,
        })
    }

    #[tokio::test]
    async fn the_node_key_is_laid_over_the_cluster_key_and_bad_edits_are_refused() {
        let (mut o, mut handle) = overrides();
        let server = tokio::spawn(async move {
            answer(
                &mut handle,
                StatusCode::OK,
                configmap(
                    "1",
                    serde_json::json!({
                        "sensor.yaml": "probes:\n  runqueue: { sampleEvery: 2 }\n  block-io: { sampleEvery: 3 }\n",
                        "node.node-1.yaml": "probes:\n  runqueue: { sampleEvery: 16 }\n",
                        "node.node-2.yaml": "probes:\n  runqueue: { enabled: false }\n",
                    }),
                ),
            )
            .await;
            // The same version again: nothing to parse.
            answer(
                &mut handle,
                StatusCode::OK,
                configmap("1", serde_json::json!({})),
            )
            .await;
            // A bad edit.
            answer(
                &mut handle,
                StatusCode::OK,
                configmap(
                    "2",
                    serde_json::json!({"node.node-1.yaml": "probes:\n  runq: {}\n"}),
                ),
            )
            .await;
            // Deleted.
            answer(
                &mut handle,
                StatusCode::NOT_FOUND,
                serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "reason": "NotFound", "code": 404, "message": "not found"}),
            )
            .await;
        });

        assert!(o.poll().await.expect("first poll"));
        let c = applied(&o);
        assert_eq!(
            c.probe(Probe::RunQueue).sample_every,
            16,
            "node over cluster"
        );
        assert_eq!(c.probe(Probe::BlockIo).sample_every, 3);
        assert!(c.probe(Probe::RunQueue).enabled, "node-2's key is not ours");

        assert!(!o.poll().await.expect("unchanged"));

        let e = o.poll().await.expect_err("bad key");
        let text = format!("{e:#}");
        assert!(
            text.contains("configmap homeostat-system/homeostat-sensor key node.node-1.yaml:2:"),
            "{text}"
        );
        assert_eq!(applied(&o).probe(Probe::RunQueue).sample_every, 16);

        assert!(o.poll().await.expect("gone"));
        assert!(o.layers().is_empty());
        server.await.expect("server");
    }
}
