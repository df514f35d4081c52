//! Hot reload of policies: the engine reads the set in force through a [`PolicyHandle`],
//! and a [`Reloader`] swaps it whole when a source changes — the policy files ([`files`],
//! polled) or the cluster's `Policy` objects ([`objects`], watched).
//!
//! The set in force is the files' policies first, in file order, then the objects' in name
//! order. An object may not reuse a file policy's name: the file wins and the object is
//! refused, since the files are what the brain was deployed with, and because policies are
//! asked in order, an object can only decide what no file policy covers. A change that does
//! not load is refused whole: the last good policies of that source stay in force, and the
//! refusal is counted, logged and recorded as a `PolicyRejected` Event: on the refused
//! object, or for files on the brain's own Pod (when it knows it, from `POD_NAME`).

pub mod files;
pub mod objects;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use homeostat_actuators::EventRecorder;
use homeostat_core::{Clock, ObjectRef};
use homeostat_policies::{Policy, PolicySet};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, watch};

use crate::metrics::ReloadMetrics;

/// A policy set and what identifies it in decisions.
#[derive(Debug)]
pub struct ActiveSet {
    /// The policies.
    pub set: PolicySet,
    /// The first 12 hex digits of a SHA-256 of the parsed policies, so a journaled decision
    /// says which set decided it; the same policies give the same id.
    pub id: String,
}

impl ActiveSet {
    /// `set`, identified by its content.
    pub fn new(set: PolicySet) -> Self {
        let digest = Sha256::digest(format!("{:?}", set.policies()).as_bytes());
        let id = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        ActiveSet { set, id }
    }
}

/// What the engine reads the policies in force through: a read is an `Arc` clone, and a
/// reload replaces the whole set at once, so a pass never sees half of a change.
pub type PolicyHandle = watch::Receiver<Arc<ActiveSet>>;

/// A handle to `set` that never changes: for brains whose policies are fixed (simulations).
pub fn fixed(set: PolicySet) -> PolicyHandle {
    watch::channel(Arc::new(ActiveSet::new(set))).1
}

/// Where a change came from, as the metrics label it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The policy files.
    File,
    /// The cluster's `Policy` objects.
    Crd,
}

impl Source {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::File => "file",
            Source::Crd => "crd",
        }
    }
}

/// How one set differs from another, by policy name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Policies that are new.
    pub added: Vec<String>,
    /// Policies that are gone.
    pub removed: Vec<String>,
    /// Policies whose spec differs.
    pub changed: Vec<String>,
}

impl Changes {
    /// From `old` to `new`.
    pub fn between(old: &PolicySet, new: &PolicySet) -> Self {
        let mut c = Changes::default();
        for p in new.policies() {
            match old.get(p.name.as_str()) {
                None => c.added.push(p.name.to_string()),
                Some(o) if o.spec != p.spec => c.changed.push(p.name.to_string()),
                Some(_) => {}
            }
        }
        for p in old.policies() {
            if new.get(p.name.as_str()).is_none() {
                c.removed.push(p.name.to_string());
            }
        }
        c
    }

    /// Whether nothing differs.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

impl fmt::Display for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |names: &[String]| {
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        };
        write!(
            f,
            "added: {}; removed: {}; changed: {}",
            list(&self.added),
            list(&self.removed),
            list(&self.changed)
        )
    }
}

/// The set in force: `files`' policies, then `objects`' in name order, leaving out (and
/// returning the names of) objects named like a file policy.
pub fn merge(files: &PolicySet, objects: &BTreeMap<String, Policy>) -> (PolicySet, Vec<String>) {
    let mut set = files.clone();
    let mut clashes = Vec::new();
    for (name, policy) in objects {
        if set.push(policy.clone()).is_err() {
            clashes.push(name.clone());
        }
    }
    (set, clashes)
}

/// The last good policies of each source.
struct State {
    files: PolicySet,
    /// Valid objects, by name.
    objects: BTreeMap<String, Policy>,
    /// Objects left out because a file policy has their name, already reported.
    clashing: BTreeSet<String>,
    /// Objects refused, with what their authors wrote, so the same content is reported
    /// once, not again on every re-list or status change.
    refused: BTreeMap<String, serde_json::Value>,
    /// Each object's `metadata.uid`, for the Events that refuse it.
    uids: BTreeMap<String, String>,
}

/// Keeps the last good policies of each source and publishes their union to the engine.
#[derive(Clone)]
pub struct Reloader {
    state: Arc<Mutex<State>>,
    tx: Arc<watch::Sender<Arc<ActiveSet>>>,
    metrics: ReloadMetrics,
    clock: Arc<dyn Clock>,
    /// Records refusals on the refused object; none without a cluster.
    events: Option<EventRecorder>,
    /// The brain's own Pod, which refusals of policy files are recorded on.
    pod: Option<ObjectRef>,
}

impl Reloader {
    /// Starts from the policy files loaded at start-up.
    pub fn new(
        files: PolicySet,
        metrics: ReloadMetrics,
        clock: Arc<dyn Clock>,
        events: Option<EventRecorder>,
    ) -> Self {
        metrics
            .loaded
            .with_label_values(&["file"])
            .set(count(&files));
        metrics.last_applied.set(clock.now().as_secs_f64());
        let (tx, _) = watch::channel(Arc::new(ActiveSet::new(files.clone())));
        Reloader {
            state: Arc::new(Mutex::new(State {
                files,
                objects: BTreeMap::new(),
                clashing: BTreeSet::new(),
                refused: BTreeMap::new(),
                uids: BTreeMap::new(),
            })),
            tx: Arc::new(tx),
            metrics,
            clock,
            events,
            pod: None,
        }
    }

    /// Records refusals of the policy files as Events on `pod`, the brain's own.
    pub fn with_pod(self, pod: ObjectRef) -> Self {
        Reloader {
            pod: Some(pod),
            ..self
        }
    }

    /// A handle on the set in force, for the engine.
    pub fn handle(&self) -> PolicyHandle {
        self.tx.subscribe()
    }

    /// The set in force now.
    pub fn current(&self) -> Arc<ActiveSet> {
        self.tx.borrow().clone()
    }

    /// The files changed and load: their policies replace the files' last good ones.
    pub async fn apply_files(&self, files: PolicySet) {
        let mut state = self.state.lock().await;
        self.metrics
            .loaded
            .with_label_values(&["file"])
            .set(count(&files));
        state.files = files;
        self.applied(Source::File);
        self.publish(&mut state, Source::File).await;
    }

    /// The files changed and do not load: the last good policies stay.
    pub async fn reject_files(&self, error: &str) {
        self.rejected(Source::File);
        tracing::warn!(
            source = "file",
            "policy files refused; the last good policies stay in force:\n{error}"
        );
        if let Some(pod) = &self.pod {
            let message =
                format!("policy files refused; the last good policies stay in force: {error}");
            self.record(pod, None, &message).await;
        }
    }

    /// A `Policy` object was created or changed (`object` as the API server serves it).
    pub async fn apply_object(&self, object: &serde_json::Value) {
        let mut state = self.state.lock().await;
        if self.judge(&mut state, object).await {
            self.publish(&mut state, Source::Crd).await;
        }
    }

    /// A `Policy` object was deleted.
    pub async fn remove_object(&self, name: &str) {
        let mut state = self.state.lock().await;
        state.clashing.remove(name);
        state.refused.remove(name);
        state.uids.remove(name);
        if state.objects.remove(name).is_some() {
            tracing::info!(source = "crd", policy = name, "policy object deleted");
            self.publish(&mut state, Source::Crd).await;
        }
    }

    /// All the `Policy` objects there are, after a (re-)list: those not among them are gone.
    pub async fn replace_objects(&self, objects: &[serde_json::Value]) {
        let mut state = self.state.lock().await;
        let listed: BTreeSet<&str> = objects
            .iter()
            .filter_map(|o| o["metadata"]["name"].as_str())
            .collect();
        state
            .objects
            .retain(|name, _| listed.contains(name.as_str()));
        state.clashing.retain(|name| listed.contains(name.as_str()));
        state
            .refused
            .retain(|name, _| listed.contains(name.as_str()));
        state.uids.retain(|name, _| listed.contains(name.as_str()));
        for object in objects {
            self.judge(&mut state, object).await;
        }
        self.publish(&mut state, Source::Crd).await;
    }

    /// Loads one object into `state`, or refuses it; whether anything changed. An object
    /// already judged as it is (a re-list, a change of status) is neither counted nor logged.
    async fn judge(&self, state: &mut State, object: &serde_json::Value) -> bool {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        if let Some(uid) = object["metadata"]["uid"].as_str() {
            state.uids.insert(name.to_owned(), uid.to_owned());
        }
        match homeostat_policies::from_object(object) {
            Ok(policy) => {
                state.refused.remove(name);
                if state.objects.get(name) == Some(&policy) {
                    return false;
                }
                state.objects.insert(name.to_owned(), policy);
                state.clashing.remove(name);
                self.applied(Source::Crd);
                true
            }
            Err(e) => {
                let authored = serde_json::json!([
                    object["spec"],
                    object["metadata"]["labels"],
                    object["metadata"]["annotations"],
                ]);
                if state.refused.get(name) != Some(&authored) {
                    // The last good version of the object stays in force.
                    let uid = state.uids.get(name).map(String::as_str);
                    self.refuse_object(name, uid, &e.to_string()).await;
                    state.refused.insert(name.to_owned(), authored);
                }
                false
            }
        }
    }

    /// Counts, logs and records as an Event on the object the refusal of `name`.
    async fn refuse_object(&self, name: &str, uid: Option<&str>, error: &str) {
        self.rejected(Source::Crd);
        tracing::warn!(
            source = "crd",
            policy = name,
            "policy object refused; its last good version, if any, stays in force: {error}"
        );
        let target = ObjectRef {
            api_version: homeostat_policies::document::API_VERSION.into(),
            kind: homeostat_policies::document::KIND.into(),
            namespace: String::new(),
            name: name.to_owned(),
        };
        let message = format!("refused; the last good policies stay in force: {error}");
        self.record(&target, uid, &message).await;
    }

    /// Records a `PolicyRejected` Warning on `target`, if there is a cluster to record it in.
    async fn record(&self, target: &ObjectRef, uid: Option<&str>, message: &str) {
        let Some(events) = &self.events else { return };
        if let Err(e) = events
            .warning(
                target,
                uid,
                "PolicyRejected",
                "Load",
                message,
                self.clock.now(),
            )
            .await
        {
            tracing::warn!(%target, error = %e, "could not record the PolicyRejected Event");
        }
    }

    fn applied(&self, source: Source) {
        self.metrics
            .reloads
            .with_label_values(&[source.as_str(), "applied"])
            .inc();
        self.metrics
            .last_applied
            .set(self.clock.now().as_secs_f64());
    }

    fn rejected(&self, source: Source) {
        self.metrics
            .reloads
            .with_label_values(&[source.as_str(), "rejected"])
            .inc();
    }

    /// Merges the sources, refuses objects newly clashing with a file policy, and swaps the
    /// set in force if it changed.
    async fn publish(&self, state: &mut State, source: Source) {
        let (set, clashes) = merge(&state.files, &state.objects);
        for name in &clashes {
            if state.clashing.insert(name.clone()) {
                let file = state
                    .files
                    .get(name)
                    .map_or_else(String::new, |p| p.file.clone());
                self.refuse_object(
                    name,
                    state.uids.get(name).map(String::as_str),
                    &format!("metadata.name: the policy file {file} already defines a policy {name:?}, which wins"),
                )
                .await;
            }
        }
        state.clashing.retain(|n| clashes.contains(n));
        self.metrics
            .loaded
            .with_label_values(&["crd"])
            .set(i64::try_from(state.objects.len() - clashes.len()).unwrap_or(i64::MAX));
        let old = self.current();
        let changes = Changes::between(&old.set, &set);
        let active = ActiveSet::new(set);
        if active.id == old.id {
            return;
        }
        tracing::info!(
            source = source.as_str(),
            policies = active.set.len(),
            set = %active.id,
            previous = %old.id,
            "policies reloaded; {changes}"
        );
        self.tx.send_replace(Arc::new(active));
    }
}

fn count(set: &PolicySet) -> i64 {
    i64::try_from(set.len()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(source: &str, policies: &[(&str, &str)]) -> PolicySet {
        let text: Vec<String> = policies
            .iter()
            .map(|(name, mode)| {
                format!(
                    "apiVersion: homeostat.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: {name}\n\
                     spec:\n  mode: {mode}\n  actions: [restart-pods]\n  cooldown: 5m\n"
                )
            })
            .collect();
        PolicySet::from_str(source, &text.join("---\n")).expect("test policies load")
    }

    #[test]
    fn changes_name_what_was_added_removed_and_changed() {
        let old = set(
            "a.yaml",
            &[
                ("keep", "enforce"),
                ("edit", "enforce"),
                ("drop", "enforce"),
            ],
        );
        let new = set(
            "a.yaml",
            &[("keep", "enforce"), ("edit", "observe"), ("new", "enforce")],
        );
        let c = Changes::between(&old, &new);
        assert_eq!(c.to_string(), "added: new; removed: drop; changed: edit");
        assert!(Changes::between(&new, &new).is_empty());
    }

    #[test]
    fn files_come_first_and_win_a_name_clash() {
        let files = set("files.yaml", &[("web", "enforce")]);
        let objects: BTreeMap<String, Policy> =
            set("objects", &[("web", "observe"), ("batch", "observe")])
                .policies()
                .iter()
                .map(|p| (p.name.to_string(), p.clone()))
                .collect();
        let (merged, clashes) = merge(&files, &objects);
        let names: Vec<&str> = merged.policies().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["web", "batch"]);
        assert_eq!(
            merged.get("web").map(|p| p.file.as_str()),
            Some("files.yaml")
        );
        assert_eq!(clashes, ["web"]);
    }

    fn reloader(files: PolicySet) -> (Reloader, ReloadMetrics) {
        let metrics = ReloadMetrics::register(&prometheus::Registry::new()).expect("metrics");
        let clock = Arc::new(homeostat_core::ManualClock::new(
            homeostat_core::Timestamp::from_secs(1_700_000_000),
        ));
        (Reloader::new(files, metrics.clone(), clock, None), metrics)
    }

    fn object(name: &str, cooldown: &str) -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "homeostat.dev/v1alpha1",
            "kind": "Policy",
            "metadata": {"name": name, "resourceVersion": "7"},
            "spec": {"mode": "enforce", "actions": ["restart-pods"], "cooldown": cooldown},
        })
    }

    fn count(m: &ReloadMetrics, source: &str, result: &str) -> u64 {
        m.reloads.with_label_values(&[source, result]).get()
    }

    fn names(handle: &PolicyHandle) -> Vec<String> {
        let active = handle.borrow().clone();
        active
            .set
            .policies()
            .iter()
            .map(|p| p.name.to_string())
            .collect()
    }

    #[tokio::test]
    async fn objects_join_the_files_and_a_bad_one_leaves_the_last_good() {
        let (reloader, metrics) = reloader(set("files.yaml", &[("web", "enforce")]));
        let handle = reloader.handle();
        let first = handle.borrow().id.clone();

        reloader.replace_objects(&[object("batch", "5m")]).await;
        assert_eq!(names(&handle), ["web", "batch"]);
        assert_ne!(handle.borrow().id, first);
        assert_eq!(count(&metrics, "crd", "applied"), 1);

        // A re-list of the same objects changes nothing and counts nothing.
        reloader.replace_objects(&[object("batch", "5m")]).await;
        assert_eq!(count(&metrics, "crd", "applied"), 1);

        // A broken edit is refused, once however often it is seen; the object's last good
        // version stays in force.
        let before = handle.borrow().id.clone();
        reloader.apply_object(&object("batch", "soon")).await;
        reloader.replace_objects(&[object("batch", "soon")]).await;
        assert_eq!(count(&metrics, "crd", "rejected"), 1);
        assert_eq!(handle.borrow().id, before);
        assert_eq!(
            handle
                .borrow()
                .set
                .get("batch")
                .map(|p| p.spec.cooldown.0.as_secs()),
            Some(300)
        );

        // A clash with a file policy is refused, once; the file's stays.
        reloader.apply_object(&object("web", "1m")).await;
        reloader
            .apply_files(set("files.yaml", &[("web", "observe")]))
            .await;
        assert_eq!(count(&metrics, "crd", "rejected"), 2);
        assert_eq!(
            handle.borrow().set.get("web").map(|p| p.spec.mode),
            Some(homeostat_core::Mode::Observe)
        );
        assert_eq!(metrics.loaded.with_label_values(&["crd"]).get(), 1);
        assert_eq!(metrics.loaded.with_label_values(&["file"]).get(), 1);

        reloader.remove_object("batch").await;
        assert_eq!(names(&handle), ["web"]);
        reloader.replace_objects(&[]).await;
        assert_eq!(metrics.loaded.with_label_values(&["crd"]).get(), 0);
    }

    #[tokio::test]
    async fn a_rewritten_file_is_reloaded_and_a_broken_one_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("p.yaml");
        let write = |mode: &str| {
            let text = format!(
                "apiVersion: homeostat.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: web\n\
                 spec:\n  mode: {mode}\n  actions: [restart-pods]\n  cooldown: 5m\n"
            );
            std::fs::write(&file, text).expect("write");
        };
        write("enforce");
        let paths = vec![dir.path().to_path_buf()];
        let seen = files::fingerprint(&paths);
        let loaded = crate::runtime::load_policies(&paths).expect("loads");
        let (reloader, metrics) = reloader(loaded);
        let mut handle = reloader.handle();
        let (stop, shutdown) = watch::channel(false);
        let poll = tokio::spawn(files::poll(
            paths,
            std::time::Duration::from_millis(20),
            seen,
            reloader,
            shutdown,
        ));

        write("observe");
        tokio::time::timeout(std::time::Duration::from_secs(10), handle.changed())
            .await
            .expect("reloaded within 10 s")
            .expect("the reloader lives");
        let mode = |h: &PolicyHandle| h.borrow().set.get("web").map(|p| p.spec.mode);
        assert_eq!(mode(&handle), Some(homeostat_core::Mode::Observe));
        assert_eq!(count(&metrics, "file", "applied"), 1);

        write("yolo");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while count(&metrics, "file", "rejected") == 0 {
            assert!(std::time::Instant::now() < deadline, "never refused");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // Judged once: later polls of the same broken content count nothing more.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert_eq!(count(&metrics, "file", "rejected"), 1);
        assert_eq!(mode(&handle), Some(homeostat_core::Mode::Observe));
        assert!(!handle.has_changed().expect("the reloader lives"));

        stop.send_replace(true);
        poll.await.expect("the poll ends on shutdown");
    }

    #[test]
    fn the_id_follows_the_content() {
        let a = ActiveSet::new(set("a.yaml", &[("web", "enforce")]));
        let same = ActiveSet::new(set("a.yaml", &[("web", "enforce")]));
        let other = ActiveSet::new(set("a.yaml", &[("web", "observe")]));
        assert_eq!(a.id, same.id);
        assert_ne!(a.id, other.id);
        assert_eq!(a.id.len(), 12);
    }
}
