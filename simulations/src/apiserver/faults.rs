//! Fault injection: the simulated API server misbehaves the way a loaded or flaky real one
//! does (optimistic-concurrency conflicts, throttling, internal errors, slow answers, watch
//! streams cut short), so scenarios rehearse how homeostat's actuators cope with them.
//!
//! Faults are drawn from a seeded generator, one fixed set of draws per matching request, so
//! the same requests in the same order meet the same faults: a scenario replays identically.
//! A refused request never reaches the store, so a refusal never changes anything.
//!
//! Faults apply to resource requests only; discovery and `/version` always answer, because
//! clients fetch them once at start-up and the scenarios rehearse the loop, not the start-up.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::Method;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use super::discovery::{self, ResourceType};
use super::error::ApiError;

/// What the real API server says when a write lost an optimistic-concurrency race.
const CONFLICT_MESSAGE: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// What the real API server's max-in-flight filter says when it sheds load.
const TOO_MANY_REQUESTS_MESSAGE: &str = "Too many requests, please try again later.";

/// Which faults to inject, and where. Every field defaults to "no fault", so an empty
/// document (or `FaultConfig::default()`) is a well-behaved server; in a scenario it sits
/// under `faults: api:`.
///
/// The refusal probabilities (`conflict`, `tooManyRequests`, `internalError`) are of disjoint
/// outcomes of one draw: each is the chance of that answer on its own. Should they add up past
/// 1, the earlier one in that order wins the overlap.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct FaultConfig {
    /// Seeds the draws, so a run with the same requests meets the same faults.
    pub seed: u64,
    /// Chance that a create, update or patch is refused with 409 `Conflict`, as if another
    /// writer had got there first. Reads and deletes never see it.
    #[serde(deserialize_with = "probability")]
    pub conflict: f64,
    /// Chance that any request is refused with 429 `TooManyRequests`.
    #[serde(deserialize_with = "probability")]
    pub too_many_requests: f64,
    /// The `Retry-After` a 429 carries, in whole seconds (rounded up); `0s` leaves the pace
    /// of retries to the client's own backoff.
    #[serde(deserialize_with = "homeostat_policies::duration::deserialize")]
    pub retry_after: Duration,
    /// Chance that any request is refused with 500 `InternalError`.
    #[serde(deserialize_with = "probability")]
    pub internal_error: f64,
    /// Chance that a request is answered only after [`FaultConfig::slow_delay`] (its answer,
    /// refusal or not, is otherwise unchanged).
    #[serde(deserialize_with = "probability")]
    pub slow: f64,
    /// How late a slow answer comes.
    #[serde(deserialize_with = "homeostat_policies::duration::deserialize")]
    pub slow_delay: Duration,
    /// Whether a slow write is made at once and only its answer is late (a client that
    /// gives up waiting cannot tell whether it landed), rather than made after the wait.
    pub slow_after_write: bool,
    /// Chance, per event sent on a watch, that the stream ends right after that event, so the
    /// client must watch again from the last `resourceVersion` it saw.
    #[serde(deserialize_with = "probability")]
    pub watch_drop: f64,
    /// Only requests with one of these verbs meet faults; empty means every verb.
    pub verbs: Vec<Verb>,
    /// Only requests for these resources (plural names, such as `horizontalpodautoscalers`,
    /// subresources included) meet faults; empty means every resource.
    #[serde(deserialize_with = "served_resources")]
    pub resources: Vec<String>,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            seed: 0,
            conflict: 0.0,
            too_many_requests: 0.0,
            retry_after: Duration::from_secs(1),
            internal_error: 0.0,
            slow: 0.0,
            slow_delay: Duration::from_secs(1),
            slow_after_write: false,
            watch_drop: 0.0,
            verbs: Vec::new(),
            resources: Vec::new(),
        }
    }
}

impl FaultConfig {
    /// Whether a request with `verb` on `resource` is subject to faults at all.
    fn applies_to(&self, verb: Verb, resource: &ResourceType) -> bool {
        (self.verbs.is_empty() || self.verbs.contains(&verb))
            && (self.resources.is_empty() || self.resources.iter().any(|r| r == resource.plural))
    }
}

/// A Kubernetes API verb, as RBAC and audit logs name it, for [`FaultConfig::verbs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    /// Read one object.
    Get,
    /// Read a collection.
    List,
    /// Stream changes to a collection.
    Watch,
    /// `POST` a new object.
    Create,
    /// `PUT` a whole object.
    Update,
    /// `PATCH` an object.
    Patch,
    /// Delete one object.
    Delete,
}

impl Verb {
    /// The verbs that change something, for "only writes" filters.
    pub const WRITES: [Verb; 4] = [Verb::Create, Verb::Update, Verb::Patch, Verb::Delete];

    /// The verb of a request with `method`, on one object (`named`) or a collection, and for
    /// collections whether it asks to `watch`; `None` for combinations the API does not serve.
    pub fn of(method: &Method, named: bool, watch: bool) -> Option<Verb> {
        match (method.as_str(), named) {
            ("GET", true) => Some(Verb::Get),
            ("GET", false) if watch => Some(Verb::Watch),
            ("GET", false) => Some(Verb::List),
            ("POST", false) => Some(Verb::Create),
            ("PUT", true) => Some(Verb::Update),
            ("PATCH", true) => Some(Verb::Patch),
            ("DELETE", true) => Some(Verb::Delete),
            _ => None,
        }
    }

    /// Whether the verb changes something.
    pub fn is_write(self) -> bool {
        Verb::WRITES.contains(&self)
    }

    /// Whether the verb can lose an optimistic-concurrency race (a delete without
    /// preconditions cannot).
    fn can_conflict(self) -> bool {
        matches!(self, Verb::Create | Verb::Update | Verb::Patch)
    }
}

/// How many faults were injected, per kind, since the server started; a scenario's report
/// compares them with what the code under test saw and did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultStats {
    /// Writes refused with 409 `Conflict`.
    pub conflicts: u64,
    /// Requests refused with 429 `TooManyRequests`.
    pub too_many_requests: u64,
    /// Requests refused with 500 `InternalError`.
    pub internal_errors: u64,
    /// Requests answered late.
    pub slow_answers: u64,
    /// Watch streams ended early.
    pub dropped_watches: u64,
}

impl FaultStats {
    /// Requests refused, of any kind: each one is a request the store never saw.
    pub fn refusals(&self) -> u64 {
        self.conflicts + self.too_many_requests + self.internal_errors
    }
}

/// The live fault injector a server consults on every resource request; cloning shares it,
/// so the handle can change the faults of a running server.
#[derive(Clone, Debug)]
pub struct Faults {
    state: Arc<Mutex<State>>,
}

#[derive(Debug)]
struct State {
    config: FaultConfig,
    rng: StdRng,
    stats: FaultStats,
}

/// What befalls one request.
#[derive(Debug, Default)]
struct Fate {
    delay: Option<Duration>,
    refusal: Option<ApiError>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults::new(FaultConfig::default())
    }
}

impl Faults {
    /// An injector following `config`, its draws seeded by `config.seed`.
    pub fn new(config: FaultConfig) -> Self {
        let rng = StdRng::seed_from_u64(config.seed);
        Faults {
            state: Arc::new(Mutex::new(State {
                config,
                rng,
                stats: FaultStats::default(),
            })),
        }
    }

    /// Follows `config` from the next request on, with the draws reseeded from `config.seed`,
    /// so a window of faults replays identically however much traffic came before it. Counts
    /// carry on; open watches keep their own draws but follow the new probabilities.
    pub fn set(&self, config: FaultConfig) {
        let mut state = self.lock();
        state.rng = StdRng::seed_from_u64(config.seed);
        state.config = config;
    }

    /// The faults currently injected.
    pub fn config(&self) -> FaultConfig {
        self.lock().config.clone()
    }

    /// The faults injected so far.
    pub fn stats(&self) -> FaultStats {
        self.lock().stats
    }

    /// Decides the fate of a `verb` request on `resource` (object `name`, if the URL names
    /// one), waits out a slow answer, and returns the refusal to answer with, if any. Callers
    /// run this before touching the store, so a refusal leaves it unchanged. A slow write
    /// under [`FaultConfig::slow_after_write`] is not waited out here: the delay is returned,
    /// for the caller to wait after making the change.
    pub async fn inject(
        &self,
        verb: Verb,
        resource: &ResourceType,
        name: Option<&str>,
    ) -> Result<Option<Duration>, ApiError> {
        let (fate, after_write) = {
            let mut state = self.lock();
            let fate = state.decide(verb, resource, name);
            (fate, state.config.slow_after_write && verb.can_conflict())
        };
        match (fate.delay, fate.refusal) {
            (Some(delay), None) if after_write => Ok(Some(delay)),
            (delay, refusal) => {
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
                refusal.map_or(Ok(None), Err)
            }
        }
    }

    /// The drop decisions for one new watch on `resource`. Each watch draws from its own
    /// generator, seeded from the shared one when the watch starts, so concurrent watches
    /// and requests do not perturb each other's faults.
    pub fn watch_drops(&self, resource: &'static ResourceType) -> WatchDrops {
        let seed = self.lock().rng.random();
        WatchDrops {
            faults: self.clone(),
            resource,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent whatever panicked while holding it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    /// Draws the fate of one request: always two draws when the request matches the filters
    /// and none otherwise, so the sequence of faults depends only on the sequence of requests.
    fn decide(&mut self, verb: Verb, resource: &ResourceType, name: Option<&str>) -> Fate {
        if !self.config.applies_to(verb, resource) {
            return Fate::default();
        }
        let slow_draw: f64 = self.rng.random();
        let refusal_draw: f64 = self.rng.random();
        let config = &self.config;
        let delay = (slow_draw < config.slow).then_some(config.slow_delay);
        let conflict = if verb.can_conflict() {
            config.conflict
        } else {
            0.0
        };
        let refusal = if refusal_draw < conflict {
            self.stats.conflicts += 1;
            Some(conflict_error(resource, name))
        } else if refusal_draw < conflict + config.too_many_requests {
            self.stats.too_many_requests += 1;
            Some(ApiError::TooManyRequests {
                message: TOO_MANY_REQUESTS_MESSAGE.to_owned(),
                retry_after_seconds: whole_seconds(config.retry_after),
            })
        } else if refusal_draw < conflict + config.too_many_requests + config.internal_error {
            self.stats.internal_errors += 1;
            Some(ApiError::Internal(
                "Internal error occurred: fault injected by the simulated API server".to_owned(),
            ))
        } else {
            None
        };
        if delay.is_some() {
            self.stats.slow_answers += 1;
        }
        Fate { delay, refusal }
    }
}

/// Whether a watch stream ends early; owned by the stream, one draw per event sent.
#[derive(Debug)]
pub struct WatchDrops {
    faults: Faults,
    resource: &'static ResourceType,
    rng: StdRng,
}

impl WatchDrops {
    /// Whether to end the stream right after the event just sent (counted as a drop).
    pub fn after_event(&mut self) -> bool {
        let mut state = self.faults.lock();
        if !state.config.applies_to(Verb::Watch, self.resource) {
            return false;
        }
        let dropped = self.rng.random::<f64>() < state.config.watch_drop;
        if dropped {
            state.stats.dropped_watches += 1;
        }
        dropped
    }
}

/// The 409 the real server answers when a write carried a stale object.
fn conflict_error(resource: &ResourceType, name: Option<&str>) -> ApiError {
    let qualified = if resource.group.is_empty() {
        resource.plural.to_owned()
    } else {
        format!("{}.{}", resource.plural, resource.group)
    };
    let object = name.map_or(qualified.clone(), |n| format!("{qualified} \"{n}\""));
    ApiError::Conflict(format!(
        "Operation cannot be fulfilled on {object}: {CONFLICT_MESSAGE}"
    ))
}

/// `d` in whole seconds, rounded up, as `Retry-After` carries it.
fn whole_seconds(d: Duration) -> u32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// A probability, refused outside `[0, 1]` so a typo such as `30` for 30% is caught; the
/// signal faults read theirs with it too.
pub(crate) fn probability<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let p = f64::deserialize(deserializer)?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(D::Error::custom(format!(
            "probability {p} is not between 0 and 1"
        )))
    }
}

/// Resource names the server serves, so a misspelt filter is an error rather than a
/// filter that silently matches nothing.
fn served_resources<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let names = Vec::<String>::deserialize(deserializer)?;
    if let Some(unknown) = names
        .iter()
        .find(|n| !discovery::RESOURCES.iter().any(|r| r.plural == n.as_str()))
    {
        let served: Vec<&str> = discovery::RESOURCES.iter().map(|r| r.plural).collect();
        return Err(D::Error::custom(format!(
            "unknown resource {unknown:?}; served: {}",
            served.join(", ")
        )));
    }
    Ok(names)
}
