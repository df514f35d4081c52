//! The newest events of each workload, kept for the HTTP API (`/api/v1/events`): who crashed,
//! with which code, when. Bounded twice, so a crash loop or a flood of workloads cannot grow
//! it: [`RecentEvents::PER_WORKLOAD`] per workload, and [`RecentEvents::MAX_WORKLOADS`]
//! workloads, the one heard from least recently going first.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use homeostat_core::WorkloadRef;

use crate::event::{EventSink, LogEvent};

/// The newest events per workload.
#[derive(Debug, Default)]
pub struct RecentEvents {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Per workload: the arrival number of its newest event, and its events, oldest first.
    by_workload: BTreeMap<WorkloadRef, (u64, VecDeque<LogEvent>)>,
    arrivals: u64,
}

impl RecentEvents {
    /// Events kept per workload.
    pub const PER_WORKLOAD: usize = 100;
    /// Workloads kept.
    pub const MAX_WORKLOADS: usize = 10_000;

    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Up to `limit` events, newest first (by event time), of one workload or of all.
    pub fn recent(&self, limit: usize, workload: Option<&WorkloadRef>) -> Vec<LogEvent> {
        let inner = self.lock();
        let mut out: Vec<LogEvent> = match workload {
            Some(w) => inner
                .by_workload
                .get(w)
                .into_iter()
                .flat_map(|(_, events)| events.iter().cloned())
                .collect(),
            None => inner
                .by_workload
                .values()
                .flat_map(|(_, events)| events.iter().cloned())
                .collect(),
        };
        out.sort_by_key(|e| std::cmp::Reverse(e.time));
        out.truncate(limit);
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl EventSink for RecentEvents {
    fn accept(&self, events: Vec<LogEvent>) {
        let mut inner = self.lock();
        for event in events {
            inner.arrivals += 1;
            let arrival = inner.arrivals;
            let workload = event.entity.workload.clone();
            make_room(&mut inner.by_workload, &workload, Self::MAX_WORKLOADS);
            let (last, kept) = inner.by_workload.entry(workload).or_default();
            *last = arrival;
            if kept.len() == Self::PER_WORKLOAD {
                kept.pop_front();
            }
            kept.push_back(event);
        }
    }
}

/// Before `key` goes into `map`, which holds at most `max` keys: removes the key whose stamp
/// (the `u64`, larger is more recent) is the oldest, if `key` is new and the map full.
pub(crate) fn make_room<K: Ord + Clone, V>(map: &mut BTreeMap<K, (u64, V)>, key: &K, max: usize) {
    if map.len() < max || map.contains_key(key) {
        return;
    }
    let stalest = map
        .iter()
        .min_by_key(|(_, (stamp, _))| *stamp)
        .map(|(k, _)| k.clone());
    if let Some(k) = stalest {
        map.remove(&k);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use homeostat_core::{Entity, Timestamp};

    fn event(workload: &WorkloadRef, secs: i64) -> LogEvent {
        LogEvent {
            entity: Entity::workload(workload.clone()),
            time: Timestamp::from_secs(secs),
            observed_time: None,
            name: Some("homeostat.process.crash".into()),
            severity: None,
            body: None,
            attributes: BTreeMap::new(),
        }
    }

    #[test]
    fn keeps_the_newest_per_workload_newest_first() {
        let store = RecentEvents::new();
        let web = WorkloadRef::deployment("shop", "web");
        let db = WorkloadRef::cgroup("vm1", "postgres.service");
        let n = RecentEvents::PER_WORKLOAD as i64;
        // Out of order within a batch: the answer is still newest first.
        store.accept((0..n + 5).rev().map(|s| event(&web, s)).collect());
        store.accept(vec![event(&db, 1_000)]);
        let web_events = store.recent(usize::MAX, Some(&web));
        assert_eq!(web_events.len(), RecentEvents::PER_WORKLOAD);
        // Arrival decides what is kept, time only the order of the answer: the first five to
        // arrive (seconds n+4 down to n) were pushed out by the last hundred (n-1 down to 0).
        assert_eq!(web_events[0].time, Timestamp::from_secs(n - 1));
        assert_eq!(web_events.last().unwrap().time, Timestamp::from_secs(0));
        let all = store.recent(2, None);
        assert_eq!(all[0].entity.workload, db);
        assert_eq!(all[1].time, Timestamp::from_secs(n - 1));
        assert!(
            store
                .recent(10, Some(&WorkloadRef::deployment("x", "y")))
                .is_empty()
        );
    }

    #[test]
    fn forgets_the_workload_heard_from_least_recently() {
        let store = RecentEvents::new();
        let w = |i: usize| WorkloadRef::deployment("ns", format!("w{i}"));
        for i in 0..RecentEvents::MAX_WORKLOADS {
            store.accept(vec![event(&w(i), 1)]);
        }
        // w0 speaks again: w1 is now the stalest, and goes when a new workload arrives.
        store.accept(vec![event(&w(0), 2)]);
        store.accept(vec![event(&w(RecentEvents::MAX_WORKLOADS), 3)]);
        assert_eq!(store.recent(usize::MAX, Some(&w(0))).len(), 2);
        assert!(store.recent(usize::MAX, Some(&w(1))).is_empty());
        assert_eq!(
            store.recent(usize::MAX, None).len(),
            RecentEvents::MAX_WORKLOADS + 1
        );
    }
}
