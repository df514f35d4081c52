//! Running the simulated cluster live: in real time, or at a fixed speed-up, with no brain of
//! its own, so that the real `homeostat brain` binary, kubectl or any other controller can be
//! pointed at it through a kubeconfig and an OTLP endpoint.
//!
//! The accelerated driver ([`crate::run`]) owns the clock and calls the brain in-process once
//! per step; here the wall clock paces the steps, and whatever controls the cluster does so
//! from outside, over HTTP, on its own schedule. The cluster's own controllers (the Deployment
//! controller and the HPA model, every [`HPA_SYNC`] of simulated time) keep running.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use homeostat_core::{Clock, ManualClock, SystemClock, Timestamp};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::metrics::v1::metric;
use thiserror::Error;
use tonic::transport::{Channel, Endpoint};

use crate::apiserver::discovery::DEPLOYMENTS;
use crate::apiserver::{ApiError, ApiServer, ApiServerHandle, KUBECONFIG_NAME, ObjectStore};
use crate::apiserver::{DEFAULT_ADDR, FaultConfig, ServerError};
use crate::cluster::{HPA_SYNC, SimCluster, SimWorkload};
use crate::scenario::Scenario;
use crate::telemetry;

/// Where the kubeconfig goes unless told otherwise: the current directory, under a name that
/// says what it is, so it is never mistaken for (or written over) a real cluster's.
pub const DEFAULT_KUBECONFIG: &str = "homeostat-sim.kubeconfig";

/// How long one OTLP export may take before it counts as failed: a stalled endpoint must not
/// stall the cluster, which keeps running without it.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the API server is given to finish open requests and watches on shutdown before
/// it is dropped; a client holding a connection open must not keep the process alive.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why a live run could not start or had to stop.
#[derive(Debug, Error)]
pub enum LiveError {
    /// The speed-up is not a positive, finite number (or so small a step would never end).
    #[error("speed must be a number > 0 (simulated seconds per wall second), got {0}")]
    Speed(f64),
    /// The OTLP metrics endpoint is not a URL tonic can dial.
    #[error("OTLP metrics endpoint {endpoint:?}: {reason} (expected e.g. http://127.0.0.1:4317)")]
    Endpoint {
        /// What was given.
        endpoint: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The kubeconfig could not be written (or would overwrite a file that is not ours).
    #[error("kubeconfig {}: {reason}", path.display())]
    Kubeconfig {
        /// Where it was to be written.
        path: PathBuf,
        /// Why it was not.
        reason: String,
    },
    /// The simulated API server failed to start or stop.
    #[error("simulated API server: {0}")]
    Server(#[from] ServerError),
    /// Installing the scenario's objects failed.
    #[error("simulated cluster: {0}")]
    Cluster(#[from] ApiError),
}

/// How to run live.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// Simulated seconds per wall second; 1 is real time.
    pub speed: f64,
    /// Where the API server listens ([`DEFAULT_ADDR`]: a free loopback port).
    pub listen: SocketAddr,
    /// Where the kubeconfig for the API server is written.
    pub kubeconfig: PathBuf,
    /// Where the pods' signals go as OTLP/gRPC metrics, each endpoint the same points (several
    /// brain replicas); none sends none.
    pub otlp_metrics_endpoints: Vec<String>,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            speed: 1.0,
            listen: DEFAULT_ADDR,
            kubeconfig: PathBuf::from(DEFAULT_KUBECONFIG),
            otlp_metrics_endpoints: Vec::new(),
        }
    }
}

/// One workload at one simulated minute: what an operator watching the run wants to see.
#[derive(Clone, Debug, PartialEq)]
pub struct Status {
    /// Simulated time since the start.
    pub t: Duration,
    /// `namespace/name`.
    pub workload: String,
    /// Requests per second arriving (in simulated time).
    pub load: f64,
    /// Replicas the Deployment asks for.
    pub replicas: u32,
    /// Pods ready.
    pub ready: u32,
    /// True p99 latency over the last step, seconds.
    pub p99: f64,
    /// The HPA's `minReplicas`: what an external controller such as homeostat changes.
    pub min_replicas: u32,
    /// Whether the last export of signals succeeded (`None`: no endpoint configured).
    pub otlp_ok: Option<bool>,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.t.as_secs();
        let otlp = match self.otlp_ok {
            None => "off",
            Some(true) => "ok",
            Some(false) => "failing",
        };
        write!(
            f,
            "{:02}:{:02}:{:02}  {}  load {:.0} req/s  replicas {} ({} ready)  p99 {:.0} ms  \
             minReplicas {}  otlp {otlp}",
            s / 3600,
            s / 60 % 60,
            s % 60,
            self.workload,
            self.load,
            self.replicas,
            self.ready,
            self.p99 * 1000.0,
            self.min_replicas,
        )
    }
}

/// How a live run ended, for the closing line.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveSummary {
    /// Simulated time that ran.
    pub simulated: Duration,
    /// Whether it was stopped (signal) before the scenario's end.
    pub interrupted: bool,
    /// OTLP exports that succeeded.
    pub exports_ok: u64,
    /// OTLP exports that failed (each retried on the next step with fresh values).
    pub exports_failed: u64,
}

/// A simulated cluster serving its API, ready to be run.
///
/// Started and run in two parts so the caller can tell the user where the cluster is (URL,
/// kubeconfig) before the run blocks.
#[derive(Debug)]
pub struct Live {
    scenario: Scenario,
    speed: f64,
    clock: ManualClock,
    start: Timestamp,
    store: ObjectStore,
    server: ApiServerHandle,
    cluster: SimCluster,
    kubeconfig: PathBuf,
    written: String,
    exporters: Vec<Exporter>,
}

/// Maps a simulated instant onto the wall clock: the moment it is played.
///
/// The brain (and any other consumer) judges points by the wall clock: it closes a step's
/// bucket once its wall time has passed and drops what arrives later. Simulated time at a
/// speed-up above 1 runs ahead of that clock, so points stamped with it would sit in buckets
/// minutes in the future and be judged long after they mattered (and below 1 they would arrive
/// late and be dropped). Stamping each point with the wall-clock instant its simulated moment
/// is played keeps every point on time at any speed, and at speed 1 the two are the same, so
/// nothing changes there. What a consumer sees is the simulation compressed in time:
/// durations and latencies are unchanged, rates per second are `speed` times the simulated
/// ones.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WallMapping {
    /// Simulated start, which is also the wall-clock start.
    pub start: Timestamp,
    /// Simulated seconds per wall second.
    pub speed: f64,
}

impl WallMapping {
    /// The wall-clock instant at which simulated instant `t` is played.
    pub fn wall(&self, t: Timestamp) -> Timestamp {
        let since = t.as_nanos().saturating_sub(self.start.as_nanos()) as f64;
        Timestamp::from_nanos(
            self.start
                .as_nanos()
                .saturating_add((since / self.speed) as i64),
        )
    }

    /// Re-stamps every data point of `request` (time and start time) from simulated time to
    /// the wall clock.
    pub fn restamp(&self, request: &mut ExportMetricsServiceRequest) {
        let map = |nanos: &mut u64| {
            if *nanos == 0 {
                return;
            }
            let t = Timestamp::from_nanos(i64::try_from(*nanos).unwrap_or(i64::MAX));
            *nanos = u64::try_from(self.wall(t).as_nanos()).unwrap_or(0);
        };
        let metrics = request
            .resource_metrics
            .iter_mut()
            .flat_map(|r| &mut r.scope_metrics)
            .flat_map(|s| &mut s.metrics);
        for m in metrics {
            match &mut m.data {
                Some(metric::Data::Sum(s)) => s.data_points.iter_mut().for_each(|p| {
                    map(&mut p.time_unix_nano);
                    map(&mut p.start_time_unix_nano);
                }),
                Some(metric::Data::Gauge(g)) => g.data_points.iter_mut().for_each(|p| {
                    map(&mut p.time_unix_nano);
                    map(&mut p.start_time_unix_nano);
                }),
                Some(metric::Data::Histogram(h)) => h.data_points.iter_mut().for_each(|p| {
                    map(&mut p.time_unix_nano);
                    map(&mut p.start_time_unix_nano);
                }),
                Some(metric::Data::ExponentialHistogram(h)) => {
                    h.data_points.iter_mut().for_each(|p| {
                        map(&mut p.time_unix_nano);
                        map(&mut p.start_time_unix_nano);
                    })
                }
                Some(metric::Data::Summary(s)) => s.data_points.iter_mut().for_each(|p| {
                    map(&mut p.time_unix_nano);
                    map(&mut p.start_time_unix_nano);
                }),
                None => {}
            }
        }
    }
}

/// The OTLP client, with what it needs to say once (not every step) that the endpoint is down.
#[derive(Debug)]
struct Exporter {
    endpoint: String,
    client: MetricsServiceClient<Channel>,
    failing: bool,
    ok: u64,
    failed: u64,
}

impl Exporter {
    /// A lazily connecting client: the endpoint may come up after the cluster (a brain needs
    /// the kubeconfig first), so an unreachable endpoint is not an error at start.
    fn new(endpoint: &str) -> Result<Self, LiveError> {
        let invalid = |reason: String| LiveError::Endpoint {
            endpoint: endpoint.to_owned(),
            reason,
        };
        let scheme = endpoint.split_once("://").map(|(s, _)| s);
        match scheme {
            Some("http") => {}
            Some("https") => return Err(invalid("TLS is not supported; use http://".into())),
            _ => return Err(invalid("not an http:// URL".into())),
        }
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| invalid(e.to_string()))?
            .connect_timeout(EXPORT_TIMEOUT)
            .timeout(EXPORT_TIMEOUT)
            .connect_lazy();
        Ok(Exporter {
            endpoint: endpoint.to_owned(),
            client: MetricsServiceClient::new(channel),
            failing: false,
            ok: 0,
            failed: 0,
        })
    }

    /// Sends one request; a failure is logged on the first of a streak and the run goes on.
    async fn export(&mut self, request: ExportMetricsServiceRequest) -> bool {
        let result = tokio::time::timeout(EXPORT_TIMEOUT, self.client.export(request)).await;
        let error = match result {
            Ok(Ok(response)) => {
                if let Some(p) = response
                    .into_inner()
                    .partial_success
                    .filter(|p| p.rejected_data_points > 0)
                {
                    tracing::warn!(rejected = p.rejected_data_points, message = %p.error_message, "OTLP endpoint rejected points");
                }
                None
            }
            Ok(Err(status)) => Some(status.to_string()),
            Err(_) => Some(format!("no answer within {EXPORT_TIMEOUT:?}")),
        };
        match error {
            None => {
                if self.failing {
                    tracing::warn!(endpoint = %self.endpoint, "OTLP metrics endpoint reachable again");
                }
                self.failing = false;
                self.ok += 1;
                true
            }
            Some(e) => {
                if !self.failing {
                    tracing::warn!(endpoint = %self.endpoint, error = %e, "cannot send signals to the OTLP metrics endpoint; the cluster keeps running and every step retries");
                }
                self.failing = true;
                self.failed += 1;
                false
            }
        }
    }
}

/// Writes `yaml` to `path` through a temporary file and a rename, so a reader never sees half
/// a kubeconfig, refusing to replace a file that is not a kubeconfig this mode wrote (the path
/// might name someone's real one).
fn write_kubeconfig(path: &Path, yaml: &str) -> Result<(), LiveError> {
    let fail = |reason: String| LiveError::Kubeconfig {
        path: path.to_owned(),
        reason,
    };
    let Some(name) = path.file_name() else {
        return Err(fail("not a file name".into()));
    };
    match std::fs::read_to_string(path) {
        Ok(existing) if !existing.contains(&format!("current-context: {KUBECONFIG_NAME}")) => {
            return Err(fail(format!(
                "exists and is not a kubeconfig of a simulated cluster (context {KUBECONFIG_NAME}); \
                 refusing to overwrite it: name another path with --kubeconfig"
            )));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e.to_string())),
    }
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    if let Err(e) = std::fs::write(&tmp, yaml) {
        return Err(fail(e.to_string()));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail(e.to_string()));
    }
    Ok(())
}

impl Live {
    /// Validates the options, starts the API server, installs the scenario's workloads at the
    /// wall clock's now, and writes the kubeconfig. Nothing runs until [`Live::run`].
    pub async fn start(scenario: &Scenario, options: LiveOptions) -> Result<Self, LiveError> {
        let speed = options.speed;
        let step_ok = Duration::try_from_secs_f64(scenario.step.as_secs_f64() / speed).is_ok();
        if !(speed.is_finite() && speed > 0.0 && step_ok) {
            return Err(LiveError::Speed(speed));
        }
        let exporters = options
            .otlp_metrics_endpoints
            .iter()
            .map(|e| Exporter::new(e))
            .collect::<Result<Vec<_>, _>>()?;
        let start = SystemClock.now();
        let clock = ManualClock::new(start);
        let store = ObjectStore::new(Arc::new(clock.clone()));
        let server = ApiServer::start(store.clone(), options.listen).await?;
        let written = server.kubeconfig_yaml()?;
        write_kubeconfig(&options.kubeconfig, &written)?;
        let cluster = match SimCluster::install(&store, scenario, start) {
            Ok(c) => c,
            Err(e) => {
                remove_if_ours(&options.kubeconfig, &written);
                return Err(e.into());
            }
        };
        Ok(Live {
            scenario: scenario.clone(),
            speed,
            clock,
            start,
            store,
            server,
            cluster,
            kubeconfig: options.kubeconfig,
            written,
            exporters,
        })
    }

    /// The API server's URL.
    pub fn url(&self) -> &str {
        self.server.url()
    }

    /// Where the kubeconfig was written.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// How simulated instants map to the stamps on exported points.
    pub fn mapping(&self) -> WallMapping {
        WallMapping {
            start: self.start,
            speed: self.speed,
        }
    }

    /// Opens or closes the scenario's window of API faults for simulated time `t`, as the
    /// batch runs do.
    fn follow_fault_window(&self, t: Duration) {
        let Some(faults) = &self.scenario.faults else {
            return;
        };
        let Some(api) = &faults.api else {
            return;
        };
        let wanted = if faults.active_at(t) {
            api.clone()
        } else {
            FaultConfig::default()
        };
        if self.server.faults() != wanted {
            self.server.set_faults(wanted);
        }
    }

    /// Plays the scenario one step at a time, paced by the wall clock, until its duration is
    /// over or `stop` completes; calls `on_status` once per workload and simulated minute;
    /// then stops the API server and removes the kubeconfig it wrote (if nobody replaced it).
    ///
    /// If a step falls behind the wall clock (a slow machine, a slow endpoint), the next ones
    /// run without waiting until it has caught up, so simulated time stays tied to wall time.
    pub async fn run(
        mut self,
        stop: impl Future<Output = ()>,
        mut on_status: impl FnMut(&Status),
    ) -> Result<LiveSummary, LiveError> {
        let step = self.scenario.step;
        let ticks = (self.scenario.duration.as_nanos() / step.as_nanos().max(1)) as u64;
        let mapping = self.mapping();
        let began = Instant::now();
        let mut last_hpa_sync = Duration::ZERO;
        let mut cluster_errors: Vec<Option<String>> = vec![None; self.cluster.workloads.len()];
        let mut otlp_ok = None;
        let mut simulated = Duration::ZERO;
        let mut interrupted = false;
        tokio::pin!(stop);
        for i in 1..=ticks {
            let t = step.saturating_mul(u32::try_from(i).unwrap_or(u32::MAX));
            // Checked when the step was validated; an overflow here can only mean "never".
            let due = Duration::try_from_secs_f64(t.as_secs_f64() / self.speed)
                .ok()
                .and_then(|d| began.checked_add(d));
            let wait = async {
                match due {
                    Some(due) => tokio::time::sleep_until(due.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = &mut stop => {
                    interrupted = true;
                    break;
                }
                () = wait => {}
            }
            let now = self.start + t;
            self.clock.set(now);
            self.follow_fault_window(t);
            let reconciled = self.cluster.reconcile(&self.store, now);
            for ((w, last), r) in self
                .cluster
                .workloads
                .iter()
                .zip(&mut cluster_errors)
                .zip(reconciled)
            {
                note_cluster_error(w, last, r.err());
            }
            let (outcomes, _) = self.cluster.serve(t, step);
            if !self.exporters.is_empty() {
                let mut request = telemetry::request(self.cluster.telemetry(now));
                mapping.restamp(&mut request);
                let mut all_ok = true;
                for exporter in &mut self.exporters {
                    all_ok &= exporter.export(request.clone()).await;
                }
                otlp_ok = Some(all_ok);
            }
            if t.saturating_sub(last_hpa_sync) >= HPA_SYNC {
                last_hpa_sync = t;
                for (w, last) in self.cluster.workloads.iter_mut().zip(&mut cluster_errors) {
                    let synced = w.sync_hpa(&self.store, now, t);
                    note_cluster_error(w, last, synced.err());
                }
            }
            simulated = t;
            let minute = Duration::from_secs(60);
            if t.as_secs() / 60 > t.saturating_sub(step).as_secs() / 60 || step >= minute {
                for (w, o) in self.cluster.workloads.iter().zip(&outcomes) {
                    let replicas = self
                        .store
                        .get(&DEPLOYMENTS, Some(&w.spec.namespace), &w.spec.name)
                        .ok()
                        .and_then(|d| d["spec"]["replicas"].as_u64())
                        .unwrap_or(0);
                    on_status(&Status {
                        t,
                        workload: format!("{}/{}", w.spec.namespace, w.spec.name),
                        load: o.demand,
                        replicas: u32::try_from(replicas).unwrap_or(u32::MAX),
                        ready: w.pods.iter().filter(|p| p.ready).count() as u32,
                        p99: o.p99,
                        min_replicas: w.hpa_min(&self.store),
                        otlp_ok,
                    });
                }
            }
        }
        let (exports_ok, exports_failed) = self
            .exporters
            .iter()
            .fold((0, 0), |(ok, failed), e| (ok + e.ok, failed + e.failed));
        remove_if_ours(&self.kubeconfig, &self.written);
        if tokio::time::timeout(SHUTDOWN_GRACE, self.server.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("API server clients did not let go within {SHUTDOWN_GRACE:?}; closing");
        }
        Ok(LiveSummary {
            simulated,
            interrupted,
            exports_ok,
            exports_failed,
        })
    }
}

/// A failure of the cluster's own controllers (say, someone deleted the Deployment through
/// the API) is logged when it changes, not every step, and the run goes on: in live mode the
/// cluster belongs to whoever is pointed at it, and it should survive what they do.
fn note_cluster_error(w: &SimWorkload, last: &mut Option<String>, error: Option<ApiError>) {
    let error = error.map(|e| e.to_string());
    if error.is_some() && error != *last {
        tracing::warn!(
            workload = %format!("{}/{}", w.spec.namespace, w.spec.name),
            error = error.as_deref().unwrap_or_default(),
            "simulated controller failed; retrying every step"
        );
    }
    *last = error;
}

/// Removes the kubeconfig at `path` if it is still the one this run wrote: it names a server
/// that is gone, but a file someone put there since is theirs.
fn remove_if_ours(path: &Path, written: &str) {
    if std::fs::read_to_string(path).is_ok_and(|s| s == written)
        && let Err(e) = std::fs::remove_file(path)
    {
        tracing::warn!(path = %path.display(), error = %e, "could not remove the kubeconfig");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::{PodIdentity, PodSignals, pod_metrics};

    #[test]
    fn restamping_compresses_simulated_time_onto_the_wall_clock() {
        let start = Timestamp::from_secs(1_700_000_000);
        let mapping = WallMapping { start, speed: 20.0 };
        assert_eq!(
            mapping.wall(start + Duration::from_secs(60)),
            start + Duration::from_secs(3)
        );
        let id = PodIdentity {
            namespace: "shop",
            deployment: "web",
            pod: "web-1",
            uid: "u1",
            node: "n1",
            started: start + Duration::from_secs(20),
        };
        let mut request = telemetry::request(vec![pod_metrics(
            &id,
            &PodSignals::default(),
            start + Duration::from_secs(200),
        )]);
        mapping.restamp(&mut request);
        let secs = |n: u64| Duration::from_nanos(n).as_secs_f64() - 1_700_000_000.0;
        for m in &request.resource_metrics[0].scope_metrics[0].metrics {
            let (time, started) = match &m.data {
                Some(metric::Data::Sum(s)) => (
                    s.data_points[0].time_unix_nano,
                    s.data_points[0].start_time_unix_nano,
                ),
                Some(metric::Data::Histogram(h)) => (
                    h.data_points[0].time_unix_nano,
                    h.data_points[0].start_time_unix_nano,
                ),
                Some(metric::Data::Gauge(g)) => (
                    g.data_points[0].time_unix_nano,
                    g.data_points[0].start_time_unix_nano,
                ),
                other => panic!("unexpected {other:?}"),
            };
            assert!((secs(time) - 10.0).abs() < 1e-6, "{}", m.name);
            assert!((secs(started) - 1.0).abs() < 1e-6, "{}", m.name);
        }
        let real_time = WallMapping { start, speed: 1.0 };
        let t = start + Duration::from_millis(123_456);
        assert_eq!(
            real_time.wall(t),
            t,
            "at speed 1 simulated time is wall time"
        );
    }

    #[test]
    fn an_existing_file_that_is_not_a_simulated_kubeconfig_is_not_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config");
        std::fs::write(&path, "current-context: production\n").expect("write");
        let err = write_kubeconfig(&path, "x").expect_err("refused");
        assert!(err.to_string().contains("refusing to overwrite"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "current-context: production\n"
        );
        let missing = dir.path().join("no/such/dir/config");
        let err = write_kubeconfig(&missing, "x").expect_err("unwritable");
        assert!(err.to_string().contains("no/such/dir/config"), "{err}");
    }

    #[test]
    fn endpoints_tonic_cannot_dial_are_refused_up_front() {
        for bad in [
            "127.0.0.1:4317",
            "https://collector:4317",
            "http://bad host:1",
        ] {
            assert!(
                matches!(Exporter::new(bad), Err(LiveError::Endpoint { .. })),
                "{bad}"
            );
        }
    }
}
