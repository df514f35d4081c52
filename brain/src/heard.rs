//! Which workloads the brain hears from and what each sends, for a person asking "is my
//! workload reporting, and under which name?" (`/api/v1/workloads`). The receivers' points
//! pass through [`HeardSink`] on their way to the series store. Bounded like the recent
//! events: [`WorkloadsHeard::MAX_WORKLOADS`], the one heard from least recently going first,
//! and [`WorkloadsHeard::MAX_SERIES`] series each.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use homeostat_core::{Timestamp, WorkloadRef, signal};
use serde::Serialize;

use crate::point::{Point, PointSink};
use crate::recent::make_room;

/// What one workload has sent.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadHeard {
    /// Points received, all series together.
    pub points: u64,
    /// The newest point's time (as its sender stamped it).
    pub last_point: Timestamp,
    /// Per series (`homeostat.process.exits{exit.kind=error}`): points and the newest time.
    pub series: BTreeMap<String, SeriesHeard>,
    /// The pods, containers and nodes the points came from.
    pub pods: BTreeSet<String>,
    /// See [`pods`](Self::pods).
    pub containers: BTreeSet<String>,
    /// See [`pods`](Self::pods).
    pub nodes: BTreeSet<String>,
}

/// What one series of a workload has sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeriesHeard {
    /// Points received.
    pub points: u64,
    /// The newest point's time.
    pub last_point: Timestamp,
}

/// Every workload heard from.
#[derive(Debug, Default)]
pub struct WorkloadsHeard {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Per workload: the number of the batch it was last in, and what it sent.
    by_workload: BTreeMap<WorkloadRef, (u64, WorkloadHeard)>,
    batches: u64,
}

impl WorkloadsHeard {
    /// Workloads kept.
    pub const MAX_WORKLOADS: usize = 10_000;
    /// Series kept per workload (in name order; points of others still count).
    pub const MAX_SERIES: usize = 256;
    /// Pods, containers and nodes kept per workload.
    pub const MAX_SOURCES: usize = 64;

    /// Notes a batch of accepted points.
    pub fn note(&self, points: &[Point]) {
        let mut inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        inner.batches += 1;
        let batch = inner.batches;
        for p in points {
            let workload = &p.entity.workload;
            make_room(&mut inner.by_workload, workload, Self::MAX_WORKLOADS);
            let (last, heard) = inner.by_workload.entry(workload.clone()).or_default();
            *last = batch;
            heard.points += 1;
            heard.last_point = heard.last_point.max(p.time);
            let name = signal::series_name(&p.signal, &p.attributes);
            if heard.series.len() < Self::MAX_SERIES || heard.series.contains_key(&name) {
                let series = heard.series.entry(name).or_default();
                series.points += 1;
                series.last_point = series.last_point.max(p.time);
            }
            for (set, value) in [
                (&mut heard.pods, &p.entity.pod),
                (&mut heard.containers, &p.entity.container),
                (&mut heard.nodes, &p.entity.node),
            ] {
                if let Some(v) = value
                    && set.len() < Self::MAX_SOURCES
                    && !set.contains(v)
                {
                    set.insert(v.clone());
                }
            }
        }
    }

    /// Every workload heard from, in name order.
    pub fn list(&self) -> Vec<(WorkloadRef, WorkloadHeard)> {
        let inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        inner
            .by_workload
            .iter()
            .map(|(w, (_, heard))| (w.clone(), heard.clone()))
            .collect()
    }
}

/// Notes points in a [`WorkloadsHeard`], then hands them on.
pub struct HeardSink {
    /// Where the points go next.
    pub inner: Arc<dyn PointSink>,
    /// Where they are noted.
    pub heard: Arc<WorkloadsHeard>,
}

impl PointSink for HeardSink {
    fn accept(&self, points: Vec<Point>) {
        self.heard.note(&points);
        self.inner.accept(points);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::point::PointValue;
    use homeostat_core::Entity;

    fn point(workload: &WorkloadRef, kind: &str, secs: i64) -> Point {
        Point {
            entity: Entity {
                pod: Some("web-1".into()),
                node: Some("node-1".into()),
                ..Entity::workload(workload.clone())
            },
            signal: signal::PROCESS_EXITS.into(),
            attributes: vec![(signal::EXIT_KIND.into(), kind.into())],
            time: Timestamp::from_secs(secs),
            start_time: Timestamp::from_secs(secs - 1),
            value: PointValue::Counter {
                value: 1.0,
                cumulative: false,
            },
        }
    }

    #[test]
    fn counts_points_per_workload_and_series() {
        let heard = WorkloadsHeard::default();
        let web = WorkloadRef::deployment("shop", "web");
        let unit = WorkloadRef::cgroup("vm1", "cron.service");
        heard.note(&[point(&web, "error", 10), point(&web, "ok", 12)]);
        heard.note(&[point(&web, "error", 11), point(&unit, "signal", 5)]);
        let list = heard.list();
        assert_eq!(
            list.iter().map(|(w, _)| w).collect::<Vec<_>>(),
            [&web, &unit]
        );
        let w = &list[0].1;
        assert_eq!((w.points, w.last_point), (3, Timestamp::from_secs(12)));
        let errors = w.series["homeostat.process.exits{exit.kind=error}"];
        assert_eq!(
            (errors.points, errors.last_point),
            (2, Timestamp::from_secs(11))
        );
        assert_eq!(w.pods.iter().collect::<Vec<_>>(), ["web-1"]);
        assert_eq!(w.nodes.iter().collect::<Vec<_>>(), ["node-1"]);
        assert!(w.containers.is_empty());
    }
}
