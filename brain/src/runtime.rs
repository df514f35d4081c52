//! Assembling a brain from its parts, and running one as a long-lived process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use homeostat_core::{Clock, Mode, ObjectRef, SystemClock};
use homeostat_policies::{PolicyError, PolicySet};
use prometheus::Registry;
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::StoreSink;
use crate::api::{self, ApiState};
use crate::config::{BrainConfig, ConfigError, LeaderElectionConfig};
use crate::engine::{Engine, EngineConfig, EngineError};
use crate::heard::{HeardSink, WorkloadsHeard};
use crate::ingest::{self, IngestContext, IngestError};
use crate::journal::{Journal, JournalError};
use crate::leader::{ElectionConfig, Elector};
use crate::metrics::BrainMetrics;
use crate::metrics::ReloadMetrics;
use crate::recent::RecentEvents;
use crate::reload::{self, Reloader};
use crate::spans::{DecisionSpans, SpanError};
use crate::store::SeriesStore;

/// Why a brain could not be assembled or run.
#[derive(Debug, Error)]
pub enum BrainError {
    /// The configuration file was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A policy file was refused.
    #[error("policies refused:\n{0}")]
    Policies(#[from] PolicyError),
    /// A policy path could not be read.
    #[error("policy path {path}: {source}")]
    PolicyPath {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The journal could not be opened or written.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// An evaluation pass failed as a whole.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// No Kubernetes client could be made from the kubeconfig or the in-cluster environment.
    #[error("Kubernetes client: {0}")]
    Kube(#[from] kube::Error),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A metric could not be registered.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Span export could not be set up.
    #[error(transparent)]
    Spans(#[from] SpanError),
    /// A receiver failed.
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// A mode that proposes actions was asked for where there is nothing to act on.
    #[error(
        "mode {0} needs a Kubernetes cluster to plan and apply actions; without one the brain \
         runs in observe mode only"
    )]
    NoCluster(Mode),
}

/// What the brain acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cluster {
    /// The cluster of the current kubeconfig, or the in-cluster service account's.
    Kubernetes,
    /// None: a plain host (`homeostat brain --local`). Only observe mode runs; no kubeconfig
    /// is read and no API server is ever called.
    None,
}

/// A brain's parts, wired but not yet serving: the simulator drives them tick by tick, and
/// [`run`] serves them on the network.
pub struct Brain {
    /// Where received points are folded.
    pub store: Arc<Mutex<SeriesStore>>,
    /// The decision engine.
    pub engine: Engine,
    /// The decision journal.
    pub journal: Journal,
    /// Every metric of the brain.
    pub registry: Registry,
    /// Decision span export.
    pub spans: DecisionSpans,
    /// What the OTLP receivers hand points and log records to.
    pub ingest: IngestContext,
    /// The newest events of each workload (OTLP log records).
    pub events: Arc<RecentEvents>,
    /// What each workload has sent.
    pub heard: Arc<WorkloadsHeard>,
}

impl Brain {
    /// Wires a brain; `step` is the aggregation step of the series store.
    pub fn assemble(
        config: EngineConfig,
        step: Duration,
        clock: Arc<dyn Clock>,
        policies: PolicySet,
        client: kube::Client,
        journal: Journal,
        spans: DecisionSpans,
    ) -> Result<Self, BrainError> {
        let registry = Registry::new();
        let metrics = BrainMetrics::register(&registry)?;
        let store = Arc::new(Mutex::new(SeriesStore::new(step)));
        let events = Arc::new(RecentEvents::new());
        let heard = Arc::new(WorkloadsHeard::default());
        let sink = HeardSink {
            inner: Arc::new(StoreSink {
                store: store.clone(),
                clock: clock.clone(),
            }),
            heard: heard.clone(),
        };
        let ingest = IngestContext::new(Arc::new(sink), &registry)?.with_events(events.clone());
        let engine = Engine::new(
            config,
            clock,
            store.clone(),
            policies,
            client,
            journal.clone(),
            spans.clone(),
            metrics,
        );
        Ok(Brain {
            store,
            engine,
            journal,
            registry,
            spans,
            ingest,
            events,
            heard,
        })
    }
}

/// Loads every policy file named, reading directories for their `*.yaml` and `*.yml` files.
pub fn load_policies(paths: &[PathBuf]) -> Result<PolicySet, BrainError> {
    Ok(PolicySet::load_files(&reload::files::expand(paths)?)?)
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, BrainError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| BrainError::Bind { addr, source })
}

/// Completes when `shutdown` turns true (or its sender is gone).
async fn stopped(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

/// A kube client for a brain with no cluster: it answers every request with an error naming
/// why, without a network call. Observe mode never makes a request; the client is there
/// because the engine is wired with its actuators whatever the mode.
fn no_cluster_client() -> kube::Client {
    let refuse = |req: http::Request<kube::client::Body>| async move {
        Err::<http::Response<kube::client::Body>, _>(format!(
            "{} {}: there is no Kubernetes cluster (homeostat brain --local observes only)",
            req.method(),
            req.uri()
        ))
    };
    kube::Client::new(tower::service_fn(refuse), "default")
}

/// Runs the brain against the cluster of the current kubeconfig (or the in-cluster
/// service account) until `shutdown` turns true.
pub async fn run(config: BrainConfig, shutdown: watch::Receiver<bool>) -> Result<(), BrainError> {
    start(config, Cluster::Kubernetes, shutdown)
        .await?
        .run()
        .await
}

/// A brain serving its receivers and API, before its evaluation loop ([`Running::run`]):
/// a source in the same process can be handed [`Running::ingest`] in between.
pub struct Running {
    brain: Brain,
    config: BrainConfig,
    shutdown: watch::Receiver<bool>,
    ready: Arc<AtomicBool>,
    receivers: Vec<tokio::task::JoinHandle<Result<(), IngestError>>>,
    api: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The leader election, which releases the Lease when it stops.
    election: Option<tokio::task::JoinHandle<()>>,
    /// The policy reloaders: the files' poll and the Policy objects' watch.
    reloads: Vec<tokio::task::JoinHandle<()>>,
}

/// The election settings of a [`LeaderElectionConfig`], with this replica's identity.
fn election_config(le: &LeaderElectionConfig) -> ElectionConfig {
    let identity = le.identity.clone().unwrap_or_else(|| {
        std::env::var("POD_NAME").unwrap_or_else(|_| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "homeostat".into());
            format!("{host}-{}", std::process::id())
        })
    });
    ElectionConfig {
        lease_duration: le.lease_duration,
        renew_deadline: le.renew_deadline,
        retry_period: le.retry_period,
        ..ElectionConfig::new(&le.namespace, &le.lease_name, &identity)
    }
}

/// Assembles a brain acting on `cluster` and starts its receivers and API, which stop when
/// `shutdown` turns true. Without a cluster the mode must be observe.
pub async fn start(
    config: BrainConfig,
    cluster: Cluster,
    shutdown: watch::Receiver<bool>,
) -> Result<Running, BrainError> {
    if cluster == Cluster::None && config.mode != Mode::Observe {
        return Err(BrainError::NoCluster(config.mode));
    }
    // Fingerprinted before loading, so an edit in between is seen by the first poll.
    let fingerprint = reload::files::fingerprint(&config.policies);
    let policies = load_policies(&config.policies)?;
    if policies.is_empty() && config.mode != Mode::Observe {
        tracing::warn!("no policies loaded: every proposal will be denied");
    }
    let journal = Journal::open(&config.journal.path)?;
    if cluster == Cluster::None {
        // Nothing to ask whether they landed; with a cluster the engine asks it.
        let abandoned = journal.reconcile().await?;
        if abandoned > 0 {
            tracing::warn!(abandoned, "closed decisions left pending by an earlier run");
        }
    }
    let spans = match &config.tracing.otlp_endpoint {
        Some(endpoint) => DecisionSpans::otlp(endpoint, "homeostat-brain")?,
        None => DecisionSpans::disabled(),
    };
    let client = match cluster {
        Cluster::Kubernetes => kube::Client::try_default().await?,
        Cluster::None => no_cluster_client(),
    };
    let election = match (&config.leader_election, cluster) {
        (Some(le), Cluster::Kubernetes) => Some(Elector::new(client.clone(), election_config(le))),
        _ => None,
    };
    let engine_config = EngineConfig {
        mode: config.mode,
        verify_window: config.verify_window,
        change_allowance: config.detection.change_point.map(|c| c.allowance),
        ..EngineConfig::default()
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut brain = Brain::assemble(
        engine_config,
        config.evaluation_interval,
        clock.clone(),
        policies.clone(),
        client.clone(),
        journal,
        spans,
    )?;
    let reloads = start_reloads(
        &config,
        cluster,
        &mut brain,
        policies,
        fingerprint,
        client,
        clock,
        &shutdown,
    )?;
    let election = election.map(|elector| {
        let (leading_tx, leading) = watch::channel(false);
        brain.engine.follow(leading);
        tokio::spawn(elector.run(leading_tx, shutdown.clone()))
    });

    let grpc = bind(config.otlp.grpc_listen).await?;
    let http = bind(config.otlp.http_listen).await?;
    let api_listener = bind(config.api.listen).await?;
    let ready = Arc::new(AtomicBool::new(false));
    let stop = stopped;
    let receivers = vec![
        tokio::spawn(ingest::serve_grpc(
            grpc,
            brain.ingest.clone(),
            stop(shutdown.clone()),
        )),
        tokio::spawn(ingest::serve_http(
            http,
            brain.ingest.clone(),
            stop(shutdown.clone()),
        )),
    ];
    let api_state = ApiState {
        journal: brain.journal.clone(),
        events: brain.events.clone(),
        heard: brain.heard.clone(),
        registry: brain.registry.clone(),
        ready: ready.clone(),
    };
    let api_stop = stop(shutdown.clone());
    let api = tokio::spawn(async move {
        axum::serve(api_listener, api::router(api_state))
            .with_graceful_shutdown(api_stop)
            .await
    });
    ready.store(true, Ordering::SeqCst);
    tracing::info!(
        mode = %config.mode,
        cluster = ?cluster,
        otlp_grpc = %config.otlp.grpc_listen,
        otlp_http = %config.otlp.http_listen,
        api = %config.api.listen,
        "brain running"
    );
    Ok(Running {
        brain,
        config,
        shutdown,
        ready,
        receivers,
        api,
        election,
        reloads,
    })
}

/// Hands the engine a reloading handle on its policies and starts what reloads them: a poll
/// of the files and, with a cluster, a watch of the Policy objects (see [`reload`]).
#[allow(clippy::too_many_arguments)]
fn start_reloads(
    config: &BrainConfig,
    cluster: Cluster,
    brain: &mut Brain,
    policies: PolicySet,
    fingerprint: String,
    client: kube::Client,
    clock: Arc<dyn Clock>,
    shutdown: &watch::Receiver<bool>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, BrainError> {
    let metrics = ReloadMetrics::register(&brain.registry)?;
    let events = (cluster == Cluster::Kubernetes)
        .then(|| homeostat_actuators::EventRecorder::new(client.clone()));
    let mut reloader = Reloader::new(policies, metrics, clock, events);
    if let (Cluster::Kubernetes, Ok(pod)) = (cluster, std::env::var("POD_NAME")) {
        reloader = reloader.with_pod(ObjectRef {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: client.default_namespace().to_owned(),
            name: pod,
        });
    }
    brain.engine.use_policies(reloader.handle());
    let mut tasks = Vec::new();
    let every = config.policy_reload.interval;
    if !every.is_zero() && !config.policies.is_empty() {
        tasks.push(tokio::spawn(reload::files::poll(
            config.policies.clone(),
            every,
            fingerprint,
            reloader.clone(),
            shutdown.clone(),
        )));
    }
    if cluster == Cluster::Kubernetes && config.policy_reload.objects {
        tasks.push(tokio::spawn(reload::objects::watch(
            client,
            reloader.clone(),
            shutdown.clone(),
        )));
    }
    Ok(tasks)
}

impl Running {
    /// What the receivers hand points and log records to: an in-process source feeds it
    /// directly (counted as transport `in-process`).
    pub fn ingest(&self) -> &IngestContext {
        &self.brain.ingest
    }

    /// Evaluates every interval until shutdown, then stops the receivers and the API.
    pub async fn run(mut self) -> Result<(), BrainError> {
        let mut ticks = tokio::time::interval(self.config.evaluation_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let shutdown = stopped(self.shutdown.clone());
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    if let Err(e) = self.brain.engine.evaluate().await {
                        tracing::error!(error = %e, "evaluation pass failed; nothing was acted on");
                    }
                }
                _ = &mut shutdown => break,
            }
        }
        self.ready.store(false, Ordering::SeqCst);
        if let Err(e) = self.brain.engine.keep_learned().await {
            tracing::warn!(error = %e, "could not keep what the detectors learned; the next start re-learns");
        }
        for task in self.receivers {
            if let Ok(Err(e)) = task.await {
                tracing::warn!(error = %e, "receiver stopped with an error");
            }
        }
        if let Ok(Err(e)) = self.api.await {
            tracing::warn!(error = %e, "API server stopped with an error");
        }
        for task in self.reloads {
            let _ = task.await;
        }
        if let Some(election) = self.election {
            // It releases the Lease on the way out, so a follower takes over at once.
            let _ = election.await;
        }
        self.brain.spans.shutdown().await?;
        Ok(())
    }
}
