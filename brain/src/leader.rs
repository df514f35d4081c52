//! One actor among several brains: leader election on a `coordination.k8s.io/v1` Lease.
//!
//! client-go's algorithm, on the Lease's `resourceVersion`: read the Lease; if another holder
//! renewed it within its `leaseDurationSeconds` (timed by this replica's own clock from when
//! it last saw the record change, so clock skew between nodes does not matter), follow;
//! otherwise write ourselves in as holder with a replace conditional on the version read, so
//! of two candidates racing for an expired Lease exactly one gets a 200 and the other a 409.
//! The leader renews every `retry_period`; if it cannot renew within `renew_deadline` it steps
//! down before its Lease can expire, so two replicas never act at once. On a clean stop the
//! leader releases the Lease (empty holder) and a follower takes over at its next try.
//!
//! (kube-lease-manager, which speaks kube 5, locks with server-side-apply field-ownership
//! conflicts instead; the version precondition works the same on any conforming API server.)

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::{Api, Client};
use thiserror::Error;
use tokio::sync::watch;

/// Why a round of the election could not be run (the next round tries again).
#[derive(Debug, Error)]
#[error("lease {namespace}/{name}: {source}")]
pub struct ElectionError {
    namespace: String,
    name: String,
    #[source]
    source: kube::Error,
}

/// The election's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElectionConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (its pod name, unique among the replicas).
    pub identity: String,
    /// How long a Lease not renewed keeps its holder.
    pub lease_duration: Duration,
    /// How long the leader keeps acting without a successful renewal; shorter than
    /// `lease_duration`, so it stops before anyone else can start.
    pub renew_deadline: Duration,
    /// How often to renew or try to acquire.
    pub retry_period: Duration,
}

impl ElectionConfig {
    /// Defaults for the Lease `namespace/name`: a follower takes over within about 10 to 12 s of the
    /// leader's death (8 s of Lease, 2 s between tries).
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        ElectionConfig {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(8),
            renew_deadline: Duration::from_secs(5),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What this replica last saw of the Lease, timed by its own clock.
#[derive(Clone, Debug, PartialEq)]
struct Observed {
    holder: Option<String>,
    renew: Option<String>,
    at: Instant,
}

/// A candidate in the election.
pub struct Elector {
    api: Api<Lease>,
    config: ElectionConfig,
    observed: Option<Observed>,
    /// When this replica last renewed successfully, while it leads.
    renewed: Option<Instant>,
}

fn now_micro() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

impl Elector {
    /// A candidate talking through `client`.
    pub fn new(client: Client, config: ElectionConfig) -> Self {
        Elector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
            renewed: None,
        }
    }

    fn error(&self, source: kube::Error) -> ElectionError {
        ElectionError {
            namespace: self.config.namespace.clone(),
            name: self.config.name.clone(),
            source,
        }
    }

    fn seconds(d: Duration) -> i32 {
        i32::try_from(d.as_secs()).unwrap_or(i32::MAX).max(1)
    }

    async fn read(&self) -> Result<Option<Lease>, ElectionError> {
        self.api
            .get_opt(&self.config.name)
            .await
            .map_err(|e| self.error(e))
    }

    /// One round: acquire or renew the Lease if this replica may; returns whether it leads.
    /// A conflict (someone else wrote first) is an answer, not an error: it does not lead.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, ElectionError> {
        let me = self.config.identity.clone();
        let now = Instant::now();
        let Some(mut lease) = self.read().await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me.clone()),
                    lease_duration_seconds: Some(Self::seconds(self.config.lease_duration)),
                    acquire_time: Some(now_micro()),
                    renew_time: Some(now_micro()),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(self.led(now)),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(self.error(e)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let renew = spec.renew_time.as_ref().map(|t| t.0.to_string());
        let seen = Observed {
            holder: holder.clone(),
            renew,
            at: now,
        };
        // A record unchanged since last look keeps the time it was first seen.
        let observed_at = match &self.observed {
            Some(o) if o.holder == seen.holder && o.renew == seen.renew => o.at,
            _ => now,
        };
        self.observed = Some(Observed {
            at: observed_at,
            ..seen
        });
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.config.lease_duration, Duration::from_secs);
        let mine = holder.as_deref() == Some(me.as_str());
        if !mine && holder.is_some() && now.duration_since(observed_at) < duration {
            self.renewed = None;
            return Ok(false);
        }
        let mut spec = spec;
        if !mine {
            spec.acquire_time = Some(now_micro());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(me);
        spec.renew_time = Some(now_micro());
        spec.lease_duration_seconds = Some(Self::seconds(self.config.lease_duration));
        lease.spec = Some(spec);
        // `lease.metadata.resourceVersion` is the version read: the replace is conditional on it.
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(self.led(now)),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                self.renewed = None;
                Ok(false)
            }
            Err(e) => Err(self.error(e)),
        }
    }

    fn led(&mut self, at: Instant) -> bool {
        self.renewed = Some(at);
        true
    }

    /// Whether this replica may still act: it renewed within `renew_deadline`.
    pub fn leading(&self) -> bool {
        self.renewed
            .is_some_and(|t| t.elapsed() < self.config.renew_deadline)
    }

    /// Gives the Lease up if this replica holds it, so a follower takes over at once.
    pub async fn release(&mut self) -> Result<(), ElectionError> {
        if self.renewed.take().is_none() {
            return Ok(());
        }
        let Some(mut lease) = self.read().await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            // Someone else already wrote: nothing of ours to release.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Runs the election until `stop` turns true, publishing whether this replica leads;
    /// releases the Lease on the way out.
    pub async fn run(mut self, leading: watch::Sender<bool>, mut stop: watch::Receiver<bool>) {
        let identity = self.config.identity.clone();
        loop {
            match self.try_acquire_or_renew().await {
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "leader election round failed"),
            }
            let now_leading = self.leading();
            if *leading.borrow() != now_leading {
                if now_leading {
                    tracing::info!(%identity, lease = %self.config.name, "leading: this replica acts");
                } else {
                    tracing::info!(%identity, lease = %self.config.name, "following: this replica learns but does not act");
                }
                leading.send_replace(now_leading);
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.retry_period) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        leading.send_replace(false);
        if let Err(e) = self.release().await {
            tracing::warn!(error = %e, "could not release the lease; a follower takes over when it expires");
        }
    }
}
