//! The in-memory object store behind the simulated API server.
//!
//! Objects are plain JSON so every kind is handled by the same code. Like etcd, one global
//! counter versions every write; each write is appended to a bounded history and broadcast, so
//! a watch can resume from a `resourceVersion` without gaps or repeats. In-process controllers
//! of the simulation call this directly; HTTP clients reach it through the routes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use homeostat_core::clock::{Clock, Timestamp};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::deletion::{DeleteOptions, Propagation};
use super::discovery::{self, NAMESPACES, ResourceType};
use super::error::ApiError;
use super::selector::ObjectSelector;

/// How many past events a watch can resume from.
pub const DEFAULT_HISTORY: usize = 10_000;
/// How far a live watcher may fall behind before it is told to re-list.
const BROADCAST_CAPACITY: usize = 4_096;

/// What happened to an object, as watch events name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// The object was created.
    Added,
    /// The object was changed.
    Modified,
    /// The object was deleted.
    Deleted,
}

impl EventType {
    /// The wire name (`ADDED`, `MODIFIED`, `DELETED`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change to the store, as kept in the history and sent to watchers.
#[derive(Clone, Debug)]
pub struct StoreEvent {
    /// What happened.
    pub event_type: EventType,
    /// Which resource the object belongs to.
    pub resource: ResourceType,
    /// The object after the change (before it, for deletions, with the deletion's version).
    pub object: Value,
    /// The `resourceVersion` of this change.
    pub resource_version: u64,
}

impl StoreEvent {
    /// The namespace of the object; empty for cluster-scoped objects.
    pub fn namespace(&self) -> &str {
        self.object["metadata"]["namespace"].as_str().unwrap_or("")
    }
}

/// What a watch starts from: the events it must replay, then a live feed.
pub struct WatchStart {
    /// Events to send before the live ones, oldest first.
    pub backlog: Vec<Arc<StoreEvent>>,
    /// Every later change to the store (all resources; the caller filters).
    pub live: broadcast::Receiver<Arc<StoreEvent>>,
}

/// `(group, version, plural)`: the identity of a resource in the store.
type ResourceKey<'a> = (&'a str, &'a str, &'a str);
/// `(namespace, name)`, namespace empty for cluster-scoped objects.
type ObjectKey = (String, String);

#[derive(Debug)]
struct Inner {
    objects: HashMap<ResourceKey<'static>, BTreeMap<ObjectKey, Value>>,
    resource_version: u64,
    history: VecDeque<Arc<StoreEvent>>,
    history_limit: usize,
    /// The newest version no longer in the history; watches from before it get 410 Gone.
    forgotten: u64,
    /// Resources served besides the built-in ones: those CustomResourceDefinitions define.
    custom: Vec<&'static ResourceType>,
}

/// A shared, cloneable handle on the simulated cluster's objects.
#[derive(Clone, Debug)]
pub struct ObjectStore {
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<Arc<StoreEvent>>,
    clock: Arc<dyn Clock>,
}

fn key_of(resource: &ResourceType) -> ResourceKey<'static> {
    (resource.group, resource.version, resource.plural)
}

impl ObjectStore {
    /// An empty store but for the `default` namespace, stamping times from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_history(clock, DEFAULT_HISTORY)
    }

    /// Like [`ObjectStore::new`], keeping only the last `history_limit` events for watches.
    pub fn with_history(clock: Arc<dyn Clock>, history_limit: usize) -> Self {
        let store = ObjectStore {
            inner: Arc::new(Mutex::new(Inner {
                objects: HashMap::new(),
                resource_version: 0,
                history: VecDeque::new(),
                history_limit: history_limit.max(1),
                forgotten: 0,
                custom: Vec::new(),
            })),
            events: broadcast::channel(BROADCAST_CAPACITY).0,
            clock,
        };
        let default_ns = json!({"metadata": {"name": "default"}, "status": {"phase": "Active"}});
        // Cannot fail: the store is empty and namespaces need no namespace.
        if let Err(e) = store.create(&NAMESPACES, None, default_ns) {
            tracing::error!(error = %e, "creating the default namespace");
        }
        store
    }

    /// The clock that stamps creation times.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The newest `resourceVersion`, as lists report it.
    pub fn resource_version(&self) -> u64 {
        self.lock().resource_version
    }

    /// The served resource with this group, version and plural: a built-in one or one a
    /// CustomResourceDefinition defines.
    pub fn resolve(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<&'static ResourceType> {
        self.lock().resolve((group, version, plural))
    }

    /// Every resource served now: the built-in ones, then the custom ones.
    pub fn served(&self) -> Vec<&'static ResourceType> {
        let inner = self.lock();
        discovery::RESOURCES
            .iter()
            .chain(inner.custom.iter().copied())
            .collect()
    }

    /// Serves exactly `resources` besides the built-in ones from now on; the objects of a
    /// custom resource no longer served are deleted (with what they own), as when a
    /// CustomResourceDefinition goes.
    pub(crate) fn set_custom_resources(&self, resources: Vec<&'static ResourceType>) {
        let mut inner = self.lock();
        let dropped: Vec<&'static ResourceType> = inner
            .custom
            .iter()
            .copied()
            .filter(|old| !resources.iter().any(|r| r.same_resource(old)))
            .collect();
        inner.custom = resources;
        let mut owners = Vec::new();
        for resource in dropped {
            let keys: Vec<ObjectKey> = inner
                .objects
                .get(&key_of(resource))
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            for key in keys {
                if let Ok(removed) = inner.remove(&self.events, resource, &key) {
                    owners.extend(uid_of(&removed));
                }
            }
            inner.objects.remove(&key_of(resource));
        }
        inner.collect_garbage(&self.events, owners, Propagation::Background);
    }

    /// One object, or `NotFound`.
    pub fn get(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let key = object_key(resource, namespace, name)?;
        self.lock()
            .objects
            .get(&key_of(resource))
            .and_then(|m| m.get(&key))
            .cloned()
            .ok_or_else(|| not_found(resource, name))
    }

    /// Reads one object in place under the store's lock, without copying it: what `f` returns
    /// from the stored object, or `NotFound`. For in-process controllers that need a few fields.
    pub fn read<T>(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        f: impl FnOnce(&Value) -> T,
    ) -> Result<T, ApiError> {
        let key = object_key(resource, namespace, name)?;
        self.lock()
            .objects
            .get(&key_of(resource))
            .and_then(|m| m.get(&key))
            .map(f)
            .ok_or_else(|| not_found(resource, name))
    }

    /// The objects of a resource, in one namespace or (`None`) all, that `selector` selects,
    /// sorted by namespace and name, with the store's `resourceVersion` at the time.
    pub fn list(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        selector: &ObjectSelector,
    ) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let items = inner
            .objects
            .get(&key_of(resource))
            .into_iter()
            .flat_map(|m| m.iter())
            .filter(|((ns, _), obj)| {
                namespace.is_none_or(|want| !resource.namespaced || ns == want)
                    && selector.matches(obj)
            })
            .map(|(_, obj)| obj.clone())
            .collect();
        (items, inner.resource_version)
    }

    /// Creates an object. The namespace comes from `namespace` or else the object's metadata;
    /// `metadata.generateName` is honoured; uid, creation time, version and generation are set.
    pub fn create(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        mut object: Value,
    ) -> Result<Value, ApiError> {
        let now = self.timestamp();
        let mut inner = self.lock();
        let meta = metadata_mut(&mut object)?;
        let namespace = match (resource.namespaced, namespace) {
            (false, _) => None,
            (true, Some(ns)) => Some(ns.to_owned()),
            (true, None) => Some(
                meta.get("namespace")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| ApiError::BadRequest("a namespace is required".into()))?
                    .to_owned(),
            ),
        };
        let name = match meta.get("name").and_then(Value::as_str) {
            Some(name) if !name.is_empty() => name.to_owned(),
            _ => match meta.get("generateName").and_then(Value::as_str) {
                Some(prefix) if !prefix.is_empty() => format!("{prefix}{}", random_suffix()),
                _ => return Err(ApiError::Invalid("metadata.name: Required value".into())),
            },
        };
        if let Some(ns) = &namespace {
            let ns_key = (String::new(), ns.clone());
            if !inner
                .objects
                .get(&key_of(&NAMESPACES))
                .is_some_and(|m| m.contains_key(&ns_key))
            {
                return Err(ApiError::NotFound(format!("namespaces \"{ns}\" not found")));
            }
        }
        let key = (namespace.clone().unwrap_or_default(), name.clone());
        if inner
            .objects
            .get(&key_of(resource))
            .is_some_and(|m| m.contains_key(&key))
        {
            return Err(ApiError::AlreadyExists(format!(
                "{} \"{name}\" already exists",
                resource.plural
            )));
        }
        meta.insert("name".into(), name.into());
        match namespace {
            Some(ns) => meta.insert("namespace".into(), ns.into()),
            None => meta.remove("namespace"),
        };
        meta.insert("uid".into(), random_uid().into());
        meta.insert("creationTimestamp".into(), now.into());
        meta.insert("generation".into(), 1.into());
        stamp_type(resource, &mut object);
        Ok(inner.commit(&self.events, resource, key, EventType::Added, object))
    }

    /// Replaces an object. A non-empty `metadata.resourceVersion` must match the stored one
    /// (else `Conflict`); uid and creation time are kept; generation moves when the spec does.
    pub fn replace(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        object: Value,
    ) -> Result<Value, ApiError> {
        let name = object["metadata"]["name"]
            .as_str()
            .ok_or_else(|| ApiError::Invalid("metadata.name: Required value".into()))?
            .to_owned();
        self.try_modify(resource, namespace, &name, |current| {
            *current = object;
            Ok(())
        })
        .map(|(obj, ())| obj)
    }

    /// Read-modify-write under the store's lock, so it never conflicts: `f` sees the current
    /// object and changes it in place. Returns the stored result. A change that leaves the
    /// object as it was is no write at all, as in a real API server: no new `resourceVersion`,
    /// no watch event.
    pub fn modify(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Result<Value, ApiError> {
        self.try_modify(resource, namespace, name, |obj| {
            f(obj);
            Ok(())
        })
        .map(|(obj, ())| obj)
    }

    /// Like [`ObjectStore::modify`] for changes that can fail (patches): an error from `f`
    /// leaves the object untouched. A `resourceVersion` that `f` sets acts as a precondition.
    /// A result equal to the stored object (whatever `resourceVersion` `f` left) is not
    /// written: the stored object is returned unchanged.
    pub fn try_modify<T>(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        f: impl FnOnce(&mut Value) -> Result<T, ApiError>,
    ) -> Result<(Value, T), ApiError> {
        let key = object_key(resource, namespace, name)?;
        let mut inner = self.lock();
        let current = inner
            .objects
            .get(&key_of(resource))
            .and_then(|m| m.get(&key))
            .ok_or_else(|| not_found(resource, name))?;
        let mut next = current.clone();
        let out = f(&mut next)?;
        check_resource_version(current, &next)?;
        if next["metadata"]["name"].as_str() != Some(name) {
            return Err(ApiError::BadRequest(format!(
                "the name of the object does not match the name on the request ({name})"
            )));
        }
        let generation = current["metadata"]["generation"].as_i64().unwrap_or(1);
        let spec_changed = !same_without_meta_and_status(current, &next);
        let meta = metadata_mut(&mut next)?;
        for field in ["uid", "creationTimestamp", "namespace"] {
            match current["metadata"].get(field) {
                Some(v) => meta.insert(field.into(), v.clone()),
                None => meta.remove(field),
            };
        }
        let generation = generation + i64::from(spec_changed);
        meta.insert("generation".into(), generation.into());
        // What commit would stamp; equal to the stored version, the write changes nothing.
        match current["metadata"].get("resourceVersion") {
            Some(v) => meta.insert("resourceVersion".into(), v.clone()),
            None => meta.remove("resourceVersion"),
        };
        stamp_type(resource, &mut next);
        if !spec_changed && next == *current {
            return Ok((next, out));
        }
        let stored = inner.commit(&self.events, resource, key, EventType::Modified, next);
        Ok((stored, out))
    }

    /// Deletes an object and returns it as it was, with the deletion's `resourceVersion`.
    /// Deleting a namespace deletes what is in it; what the deleted objects own goes too (see
    /// [`ObjectStore::delete_with`]).
    pub fn delete(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.delete_with(resource, namespace, name, &DeleteOptions::default())
    }

    /// Like [`ObjectStore::delete`], as `options` say: their preconditions must hold (else
    /// `Conflict`), and their propagation policy decides what becomes of the objects whose
    /// `metadata.ownerReferences` name a deleted one, as the garbage collector would.
    pub fn delete_with(
        &self,
        resource: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Value, ApiError> {
        let key = object_key(resource, namespace, name)?;
        let mut inner = self.lock();
        if let Some(current) = inner
            .objects
            .get(&key_of(resource))
            .and_then(|m| m.get(&key))
        {
            options.preconditions.check(resource, current)?;
        }
        let removed = inner.remove(&self.events, resource, &key)?;
        let mut owners: Vec<String> = uid_of(&removed).into_iter().collect();
        if *resource == NAMESPACES {
            let contained: Vec<(ResourceKey, ObjectKey)> = inner
                .objects
                .iter()
                .flat_map(|(r, m)| m.keys().map(move |k| (*r, k.clone())))
                .filter(|(_, (ns, _))| ns == name)
                .collect();
            for (r, k) in contained {
                if let Some(rt) = inner.resolve(r)
                    && let Ok(gone) = inner.remove(&self.events, rt, &k)
                {
                    owners.extend(uid_of(&gone));
                }
            }
        }
        inner.collect_garbage(&self.events, owners, options.propagation);
        Ok(removed)
    }

    /// Every change from now on, for in-process observers. A lagging receiver loses events.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoreEvent>> {
        self.events.subscribe()
    }

    /// Starts a watch of `resource`: from `since` replays the history after that version, or,
    /// with `None`, replays the current objects as `ADDED`; then follows live changes, with no
    /// gap or repeat in between. `Gone` if `since` is older than the history keeps.
    pub fn watch(
        &self,
        resource: &ResourceType,
        since: Option<u64>,
    ) -> Result<WatchStart, ApiError> {
        let inner = self.lock();
        let live = self.events.subscribe();
        let backlog = match since {
            Some(rv) if rv < inner.forgotten => {
                return Err(ApiError::Gone(format!(
                    "too old resource version: {rv} ({})",
                    inner.forgotten
                )));
            }
            Some(rv) => inner
                .history
                .iter()
                .filter(|e| e.resource_version > rv && e.resource.same_resource(resource))
                .cloned()
                .collect(),
            None => inner
                .objects
                .get(&key_of(resource))
                .into_iter()
                .flat_map(|m| m.values())
                .map(|obj| {
                    Arc::new(StoreEvent {
                        event_type: EventType::Added,
                        resource: *resource,
                        object: obj.clone(),
                        resource_version: version_of(obj),
                    })
                })
                .collect(),
        };
        Ok(WatchStart { backlog, live })
    }

    /// The clock's current time at the API's one-second precision (RFC 3339), as stamped on
    /// objects.
    pub fn timestamp(&self) -> String {
        let secs = self.clock.now().as_nanos().div_euclid(1_000_000_000);
        Timestamp::from_secs(secs).to_rfc3339()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data (writes are single inserts).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    /// The served resource stored under `key`.
    fn resolve(&self, (group, version, plural): ResourceKey<'_>) -> Option<&'static ResourceType> {
        discovery::RESOURCES
            .iter()
            .chain(self.custom.iter().copied())
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    /// What the garbage collector does once the objects with uids `owners` are gone: with
    /// `Orphan`, their dependents lose the owner references to them; otherwise dependents
    /// with no other owner left are deleted, and theirs in turn, while dependents that still
    /// have an owner only lose the reference.
    ///
    /// `Foreground` deletes at once like `Background`: the real server would keep the owner,
    /// marked for deletion, until its dependents are gone; here they go in the same write.
    fn collect_garbage(
        &mut self,
        events: &broadcast::Sender<Arc<StoreEvent>>,
        mut owners: Vec<String>,
        propagation: Propagation,
    ) {
        while let Some(owner) = owners.pop() {
            let dependents: Vec<(ResourceKey<'static>, ObjectKey, bool)> = self
                .objects
                .iter()
                .flat_map(|(r, m)| m.iter().map(move |(k, o)| (*r, k, o)))
                .filter(|(_, _, o)| super::deletion::owned_by(o, &owner))
                .map(|(r, k, o)| {
                    let orphan = propagation == Propagation::Orphan
                        || super::deletion::owner_uids(o)
                            .any(|uid| uid != owner && self.holds_uid(uid));
                    (r, k.clone(), orphan)
                })
                .collect();
            for (r, key, orphan) in dependents {
                let Some(resource) = self.resolve(r) else {
                    continue;
                };
                if orphan {
                    self.drop_owner_reference(events, resource, key, &owner);
                } else if let Ok(removed) = self.remove(events, resource, &key) {
                    owners.extend(uid_of(&removed));
                }
            }
        }
    }

    /// Whether any stored object has this uid.
    fn holds_uid(&self, uid: &str) -> bool {
        self.objects
            .values()
            .flat_map(BTreeMap::values)
            .any(|o| o["metadata"]["uid"].as_str() == Some(uid))
    }

    fn drop_owner_reference(
        &mut self,
        events: &broadcast::Sender<Arc<StoreEvent>>,
        resource: &ResourceType,
        key: ObjectKey,
        owner: &str,
    ) {
        let Some(mut object) = self
            .objects
            .get(&key_of(resource))
            .and_then(|m| m.get(&key))
            .cloned()
        else {
            return;
        };
        super::deletion::remove_owner(&mut object, owner);
        self.commit(events, resource, key, EventType::Modified, object);
    }

    /// Stores `object` under a fresh version, records and broadcasts the change.
    fn commit(
        &mut self,
        events: &broadcast::Sender<Arc<StoreEvent>>,
        resource: &ResourceType,
        key: ObjectKey,
        event_type: EventType,
        mut object: Value,
    ) -> Value {
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = self.resource_version.to_string().into();
        self.objects
            .entry(key_of(resource))
            .or_default()
            .insert(key, object.clone());
        self.record(events, resource, event_type, object.clone());
        object
    }

    fn remove(
        &mut self,
        events: &broadcast::Sender<Arc<StoreEvent>>,
        resource: &ResourceType,
        key: &ObjectKey,
    ) -> Result<Value, ApiError> {
        let mut object = self
            .objects
            .get_mut(&key_of(resource))
            .and_then(|m| m.remove(key))
            .ok_or_else(|| not_found(resource, &key.1))?;
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = self.resource_version.to_string().into();
        self.record(events, resource, EventType::Deleted, object.clone());
        Ok(object)
    }

    fn record(
        &mut self,
        events: &broadcast::Sender<Arc<StoreEvent>>,
        resource: &ResourceType,
        event_type: EventType,
        object: Value,
    ) {
        let event = Arc::new(StoreEvent {
            event_type,
            resource: *resource,
            object,
            resource_version: self.resource_version,
        });
        while self.history.len() >= self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.forgotten = old.resource_version;
            }
        }
        self.history.push_back(event.clone());
        // No receivers is fine: nobody is watching.
        let _ = events.send(event);
    }
}

/// `Conflict` unless `proposed` carries no `resourceVersion` or the one `current` has.
pub(crate) fn check_resource_version(current: &Value, proposed: &Value) -> Result<(), ApiError> {
    match proposed["metadata"]["resourceVersion"].as_str() {
        Some(rv)
            if !rv.is_empty() && Some(rv) != current["metadata"]["resourceVersion"].as_str() =>
        {
            Err(ApiError::Conflict(format!(
                "Operation cannot be fulfilled on {}: the object has been modified; please apply \
                 your changes to the latest version and try again",
                current["metadata"]["name"].as_str().unwrap_or("object")
            )))
        }
        _ => Ok(()),
    }
}

/// The `metadata.uid` of an object, if it has one.
fn uid_of(object: &Value) -> Option<String> {
    object["metadata"]["uid"].as_str().map(str::to_owned)
}

/// The `resourceVersion` of a stored object as a number.
pub(crate) fn version_of(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|rv| rv.parse().ok())
        .unwrap_or(0)
}

fn object_key(
    resource: &ResourceType,
    namespace: Option<&str>,
    name: &str,
) -> Result<ObjectKey, ApiError> {
    match (resource.namespaced, namespace) {
        (false, _) => Ok((String::new(), name.to_owned())),
        (true, Some(ns)) => Ok((ns.to_owned(), name.to_owned())),
        (true, None) => Err(ApiError::BadRequest(format!(
            "{} are namespaced: a namespace is required",
            resource.plural
        ))),
    }
}

fn not_found(resource: &ResourceType, name: &str) -> ApiError {
    let group = if resource.group.is_empty() {
        String::new()
    } else {
        format!(".{}", resource.group)
    };
    ApiError::NotFound(format!("{}{group} \"{name}\" not found", resource.plural))
}

fn metadata_mut(object: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let root = object
        .as_object_mut()
        .ok_or_else(|| ApiError::BadRequest("the object is not a JSON object".into()))?;
    root.entry("metadata")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| ApiError::BadRequest("metadata is not an object".into()))
}

fn stamp_type(resource: &ResourceType, object: &mut Value) {
    object["apiVersion"] = resource.api_version().into();
    object["kind"] = resource.kind.into();
}

/// Whether two objects are equal but for `metadata` and `status` (what moves
/// `metadata.generation` when changed), compared in place. A non-object counts as empty.
fn same_without_meta_and_status(a: &Value, b: &Value) -> bool {
    let empty = Map::new();
    let a = a.as_object().unwrap_or(&empty);
    let b = b.as_object().unwrap_or(&empty);
    let counted = |k: &String| k.as_str() != "metadata" && k.as_str() != "status";
    a.keys().filter(|k| counted(k)).count() == b.keys().filter(|k| counted(k)).count()
        && a.iter()
            .filter(|(k, _)| counted(k))
            .all(|(k, v)| b.get(k) == Some(v))
}

/// A random RFC 4122 version-4 UUID.
fn random_uid() -> String {
    let n = rand::random::<u128>() & !(0xF << 76) & !(0x3 << 62) | (0x4 << 76) | (0x2 << 62);
    let hex = format!("{n:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Five lowercase alphanumerics, as the API server appends to `generateName`.
fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use homeostat_core::clock::ManualClock;

    use super::super::deletion::Preconditions;
    use super::super::discovery::{DEPLOYMENTS, PODS, REPLICA_SETS};
    use super::*;

    fn store() -> ObjectStore {
        ObjectStore::with_history(
            Arc::new(ManualClock::new(Timestamp::from_secs(1_700_000_000))),
            4,
        )
    }

    fn deployment(name: &str) -> Value {
        json!({"metadata": {"name": name, "labels": {"app": name}}, "spec": {"replicas": 1}})
    }

    #[test]
    fn create_fills_system_fields_from_the_clock() {
        let s = store();
        let d = s
            .create(&DEPLOYMENTS, Some("default"), deployment("web"))
            .expect("created");
        assert_eq!(d["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(d["metadata"]["generation"], 1);
        assert_eq!(d["metadata"]["namespace"], "default");
        assert_eq!(d["kind"], "Deployment");
        assert_eq!(d["apiVersion"], "apps/v1");
        assert_eq!(d["metadata"]["uid"].as_str().map(str::len), Some(36));
        assert_eq!(version_of(&d), 2, "the default namespace took version 1");
        let again = s.create(&DEPLOYMENTS, Some("default"), deployment("web"));
        assert!(matches!(again, Err(ApiError::AlreadyExists(_))));
        let nowhere = s.create(&DEPLOYMENTS, Some("nowhere"), deployment("web"));
        assert!(matches!(nowhere, Err(ApiError::NotFound(_))));
        let generated = s
            .create(
                &PODS,
                Some("default"),
                json!({"metadata": {"generateName": "web-"}}),
            )
            .expect("generated");
        assert_eq!(
            generated["metadata"]["name"].as_str().map(str::len),
            Some(9)
        );
    }

    #[test]
    fn generation_moves_with_spec_only_and_stale_versions_conflict() {
        let s = store();
        let d = s
            .create(&DEPLOYMENTS, Some("default"), deployment("web"))
            .expect("created");
        let d2 = s
            .modify(&DEPLOYMENTS, Some("default"), "web", |o| {
                o["status"] = json!({"replicas": 1})
            })
            .expect("status written");
        assert_eq!(d2["metadata"]["generation"], 1);
        let d3 = s
            .modify(&DEPLOYMENTS, Some("default"), "web", |o| {
                o["spec"]["replicas"] = 3.into()
            })
            .expect("spec written");
        assert_eq!(d3["metadata"]["generation"], 2);
        assert_eq!(d3["metadata"]["uid"], d["metadata"]["uid"]);
        let stale = s.replace(&DEPLOYMENTS, Some("default"), d);
        assert!(matches!(stale, Err(ApiError::Conflict(_))), "{stale:?}");
        let deleted = s
            .delete(&DEPLOYMENTS, Some("default"), "web")
            .expect("deleted");
        assert!(version_of(&deleted) > version_of(&d3));
        assert!(matches!(
            s.get(&DEPLOYMENTS, Some("default"), "web"),
            Err(ApiError::NotFound(_))
        ));
    }

    #[test]
    fn a_write_that_changes_nothing_is_no_write() {
        let s = store();
        let d = s
            .create(&DEPLOYMENTS, Some("default"), deployment("web"))
            .expect("created");
        let mut live = s.subscribe();
        let same = s
            .modify(&DEPLOYMENTS, Some("default"), "web", |o| {
                o["spec"]["replicas"] = 1.into()
            })
            .expect("no-op");
        assert_eq!(same, d, "returned as stored");
        let replaced = s
            .replace(&DEPLOYMENTS, Some("default"), d.clone())
            .expect("same object");
        assert_eq!(version_of(&replaced), version_of(&d));
        assert_eq!(s.resource_version(), version_of(&d), "no version bump");
        assert!(live.try_recv().is_err(), "no event");
        let read = s
            .read(&DEPLOYMENTS, Some("default"), "web", |o| {
                o["spec"]["replicas"].as_u64()
            })
            .expect("found");
        assert_eq!(read, Some(1));
        let changed = s
            .modify(&DEPLOYMENTS, Some("default"), "web", |o| {
                o["status"] = json!({"replicas": 1})
            })
            .expect("status written");
        assert_eq!(version_of(&changed), version_of(&d) + 1);
        assert_eq!(changed["metadata"]["generation"], 1);
        assert!(live.try_recv().is_ok(), "an event for a real change");
    }

    #[test]
    fn watch_resumes_from_history_and_expires() {
        let s = store();
        let d = s
            .create(&DEPLOYMENTS, Some("default"), deployment("web"))
            .expect("created");
        let rv = version_of(&d);
        s.modify(&DEPLOYMENTS, Some("default"), "web", |o| {
            o["spec"]["replicas"] = 2.into()
        })
        .expect("modified");
        let start = s.watch(&DEPLOYMENTS, Some(rv)).expect("in history");
        assert_eq!(start.backlog.len(), 1);
        assert_eq!(start.backlog[0].event_type, EventType::Modified);
        let fresh = s.watch(&DEPLOYMENTS, None).expect("always possible");
        assert_eq!(fresh.backlog.len(), 1);
        assert_eq!(fresh.backlog[0].event_type, EventType::Added);
        for n in 0..5 {
            s.modify(&DEPLOYMENTS, Some("default"), "web", |o| {
                o["spec"]["replicas"] = n.into()
            })
            .expect("modified");
        }
        assert!(matches!(
            s.watch(&DEPLOYMENTS, Some(rv)),
            Err(ApiError::Gone(_))
        ));
    }

    #[test]
    fn list_filters_by_namespace_and_labels() {
        let s = store();
        s.create(&NAMESPACES, None, json!({"metadata": {"name": "other"}}))
            .expect("namespace");
        for (ns, name) in [("default", "a"), ("default", "b"), ("other", "a")] {
            s.create(&DEPLOYMENTS, Some(ns), deployment(name))
                .expect("created");
        }
        let all = ObjectSelector::default();
        assert_eq!(s.list(&DEPLOYMENTS, None, &all).0.len(), 3);
        assert_eq!(s.list(&DEPLOYMENTS, Some("other"), &all).0.len(), 1);
        let only_a = ObjectSelector::parse(Some("app=a"), None).expect("parses");
        assert_eq!(s.list(&DEPLOYMENTS, None, &only_a).0.len(), 2);
        s.delete(&NAMESPACES, None, "other").expect("deleted");
        assert_eq!(s.list(&DEPLOYMENTS, None, &all).0.len(), 2);
    }

    fn owned(name: &str, owners: &[&Value]) -> Value {
        let refs: Vec<Value> = owners
            .iter()
            .map(|o| json!({"kind": o["kind"], "name": o["metadata"]["name"], "uid": o["metadata"]["uid"]}))
            .collect();
        json!({"metadata": {"name": name, "ownerReferences": refs}})
    }

    #[test]
    fn deletes_take_dependents_along_unless_orphaned() {
        let s = store();
        let ns = Some("default");
        let d = s
            .create(&DEPLOYMENTS, ns, deployment("web"))
            .expect("deployment");
        let rs = s
            .create(&REPLICA_SETS, ns, owned("web-1", &[&d]))
            .expect("rs");
        let other = s
            .create(&REPLICA_SETS, ns, owned("other", &[]))
            .expect("rs");
        s.create(&PODS, ns, owned("a", &[&rs])).expect("pod");
        s.create(&PODS, ns, owned("shared", &[&rs, &other]))
            .expect("pod");

        let wrong = DeleteOptions {
            preconditions: Preconditions {
                uid: Some("not-it".into()),
                resource_version: None,
            },
            ..DeleteOptions::default()
        };
        let refused = s.delete_with(&DEPLOYMENTS, ns, "web", &wrong);
        assert!(matches!(refused, Err(ApiError::Conflict(_))), "{refused:?}");

        s.delete(&DEPLOYMENTS, ns, "web").expect("deleted");
        let all = ObjectSelector::default();
        let names = |r: &ResourceType| -> Vec<String> {
            s.list(r, ns, &all)
                .0
                .iter()
                .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_owned))
                .collect()
        };
        assert_eq!(names(&REPLICA_SETS), ["other"], "its replica set went");
        assert_eq!(names(&PODS), ["shared"], "a pod with another owner stays");
        let shared = s.get(&PODS, ns, "shared").expect("kept");
        assert_eq!(
            shared["metadata"]["ownerReferences"][0]["name"], "other",
            "without the reference to the deleted owner"
        );

        let orphan = DeleteOptions {
            propagation: Propagation::Orphan,
            ..DeleteOptions::default()
        };
        s.delete_with(&REPLICA_SETS, ns, "other", &orphan)
            .expect("deleted");
        let shared = s.get(&PODS, ns, "shared").expect("orphaned, not deleted");
        assert!(shared["metadata"].get("ownerReferences").is_none());
    }
}
