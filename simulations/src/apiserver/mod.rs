//! The simulated cluster's Kubernetes API server: an in-memory [`ObjectStore`] served over
//! loopback HTTP in the shapes `kube::Client` and `kubectl` expect, so homeostat's actuators
//! run end to end against it unchanged.
//!
//! In-process parts of the simulation (workload and HPA models) use the store directly; the
//! code under test reaches the same objects through [`ApiServerHandle::kube_client`] or a
//! kubeconfig from [`ApiServerHandle::write_kubeconfig`].
//!
//! Besides storing objects it does what a real cluster's control plane does at once: evictions
//! honour PodDisruptionBudgets ([`disruption`]), deletes collect what the deleted objects own
//! ([`deletion`]), and CustomResourceDefinitions serve new kinds ([`crd`]).

pub mod audit;
pub mod crd;
pub mod deletion;
pub mod discovery;
pub mod disruption;
pub mod error;
pub mod faults;
pub mod fields;
pub mod patch;
pub mod routes;
pub mod selector;
pub mod store;
pub mod subresource;
pub mod watch;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use serde_json::json;
use tokio::sync::watch as signal;
use tokio::task::JoinHandle;

pub use audit::{AuditLog, AuditRecord};
pub use crd::sync_custom_resources;
pub use deletion::{DeleteOptions, Propagation};
pub use discovery::ResourceType;
pub use disruption::refresh_disruption_budgets;
pub use error::{ApiError, ServerError, StatusCause};
pub use faults::{FaultConfig, FaultStats, Faults, Verb};
pub use selector::ObjectSelector;
pub use store::{EventType, ObjectStore, StoreEvent};

/// The name of the cluster, user and context in written kubeconfigs.
pub const KUBECONFIG_NAME: &str = "homeostat-sim";

/// Loopback on a free port: where the server listens unless told otherwise.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// Starts API servers.
#[derive(Debug)]
pub struct ApiServer;

impl ApiServer {
    /// Serves `store` on `addr` (use [`DEFAULT_ADDR`] for a free loopback port) until the
    /// returned handle is shut down or dropped.
    pub async fn start(
        store: ObjectStore,
        addr: SocketAddr,
    ) -> Result<ApiServerHandle, ServerError> {
        Self::start_with_faults(store, addr, FaultConfig::default()).await
    }

    /// Like [`ApiServer::start`], misbehaving as `faults` says from the first request on, so
    /// a scenario rehearses a flaky API server from the start (use
    /// [`ApiServerHandle::set_faults`] to open a window of faults later).
    pub async fn start_with_faults(
        store: ObjectStore,
        addr: SocketAddr,
        faults: FaultConfig,
    ) -> Result<ApiServerHandle, ServerError> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopping) = signal::channel(false);
        let audit = AuditLog::default();
        let faults = Faults::new(faults);
        let app = routes::router_with_faults(
            store.clone(),
            stopping.clone(),
            audit.clone(),
            faults.clone(),
        );
        let mut stopped = stopping;
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    // An error means the handle is gone, which is a stop too.
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await
        });
        tracing::info!(%addr, "simulated kubernetes api server listening");
        Ok(ApiServerHandle {
            url: format!("http://{addr}"),
            addr,
            store,
            audit,
            faults,
            stop,
            task: Some(task),
        })
    }
}

/// A running API server; dropping it stops the server (without waiting for it).
#[derive(Debug)]
pub struct ApiServerHandle {
    url: String,
    addr: SocketAddr,
    store: ObjectStore,
    audit: AuditLog,
    faults: Faults,
    stop: signal::Sender<bool>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl ApiServerHandle {
    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The store the server serves, for in-process controllers.
    pub fn store(&self) -> &ObjectStore {
        &self.store
    }

    /// Every request answered so far.
    pub fn audit(&self) -> Vec<AuditRecord> {
        self.audit.records()
    }

    /// Changes the injected faults from the next request on, reseeding their draws from
    /// `config.seed`; `FaultConfig::default()` makes the server well-behaved again.
    pub fn set_faults(&self, config: FaultConfig) {
        self.faults.set(config);
    }

    /// The faults currently injected.
    pub fn faults(&self) -> FaultConfig {
        self.faults.config()
    }

    /// The faults injected since the server started, per kind.
    pub fn fault_stats(&self) -> FaultStats {
        self.faults.stats()
    }

    /// A client for this server, as the code under test would build from a kubeconfig.
    pub fn kube_client(&self) -> Result<kube::Client, ServerError> {
        let config = kube::Config::new(self.url.parse()?);
        Ok(kube::Client::try_from(config)?)
    }

    /// A kubeconfig (YAML) pointing at this server over plain HTTP, with a cluster, user and
    /// context all named [`KUBECONFIG_NAME`].
    pub fn kubeconfig_yaml(&self) -> Result<String, ServerError> {
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": KUBECONFIG_NAME, "cluster": {"server": self.url}}],
            "users": [{"name": KUBECONFIG_NAME, "user": {}}],
            "contexts": [{
                "name": KUBECONFIG_NAME,
                "context": {"cluster": KUBECONFIG_NAME, "user": KUBECONFIG_NAME, "namespace": "default"},
            }],
            "current-context": KUBECONFIG_NAME,
            "preferences": {},
        });
        Ok(yaml_serde::to_string(&config)?)
    }

    /// Writes [`ApiServerHandle::kubeconfig_yaml`] to `path`, for `KUBECONFIG` and kubectl.
    pub fn write_kubeconfig(&self, path: impl AsRef<Path>) -> Result<(), ServerError> {
        std::fs::write(path, self.kubeconfig_yaml()?)?;
        Ok(())
    }

    /// Stops accepting requests, ends open watches and waits for the server to finish.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(result) => result?,
                Err(e) => return Err(ServerError::Io(std::io::Error::other(e))),
            }
        }
        tracing::info!(addr = %self.addr, "simulated kubernetes api server stopped");
        Ok(())
    }
}

impl Drop for ApiServerHandle {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}
