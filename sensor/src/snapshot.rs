//! One interval's worth of kernel signals, per cgroup, in the catalogue's terms.

use std::fmt::Write as _;
use std::time::Duration;

use homeostat_core::signal;
use homeostat_core::{Sample, Stat, Timestamp, WorkloadRef};

use crate::cgroup::Owner;
use crate::histogram::Log2Histogram;

/// What one reading measured over the interval.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A counter's increase, in the signal's unit (events, or seconds for CPU time).
    Increase(f64),
    /// The latencies recorded in the interval.
    Latencies(Box<Log2Histogram>),
}

/// One signal of one cgroup over the interval.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    /// The v2 cgroup id (inode of its directory); 0 for events with no cgroup (a reset sent
    /// for a segment that matched no socket).
    pub cgroup_id: u64,
    /// The cgroup's path in the v2 hierarchy, if it still exists.
    pub path: Option<String>,
    /// Who the cgroup belongs to.
    pub owner: Owner,
    /// The catalogue name (`homeostat.process.exits`, …).
    pub signal: &'static str,
    /// The data-point attribute that splits the signal, e.g. `("exit.kind", "signal")`.
    pub attribute: Option<(&'static str, &'static str)>,
    /// What was measured.
    pub value: Value,
}

/// A process that ended badly, or an OOM victim, read from the ring buffers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Its v2 cgroup id.
    pub cgroup_id: u64,
    /// The cgroup's path in the v2 hierarchy, if it still existed when the event was read.
    pub path: Option<String>,
    /// Who the cgroup belongs to.
    pub owner: Owner,
    /// When it happened, in nanoseconds since the Unix epoch (the kernel's monotonic stamp,
    /// moved onto the wall clock when read).
    pub unix_nanos: u64,
    /// Process id.
    pub pid: u32,
    /// Command name (16 bytes at most, as the kernel keeps it).
    pub comm: String,
    /// What happened.
    pub kind: EventKind,
}

impl Event {
    /// One line for people: `sh (pid 4242) killed by signal 11 (SIGSEGV), core dumped`.
    pub fn describe(&self) -> String {
        let what = match self.kind {
            EventKind::ExitError { status } => format!("exited with status {status}"),
            EventKind::Signal {
                signal,
                core_dumped,
            } => format!(
                "killed by signal {signal}{}{}",
                signal_name(signal).map_or(String::new(), |n| format!(" ({n})")),
                if core_dumped { ", core dumped" } else { "" }
            ),
            EventKind::OomKilled => "killed by the OOM killer".to_owned(),
        };
        format!("{} (pid {}) {what}", self.comm, self.pid)
    }
}

/// The name of a Linux signal (`SIGSEGV` for 11), for the numbers every architecture the
/// sensor builds for agrees on (x86-64, arm64); `None` for others (real-time signals).
pub fn signal_name(signal: u8) -> Option<&'static str> {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    NAMES.get(usize::from(signal).checked_sub(1)?).copied()
}

/// The kind of an [`Event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Exited with a non-zero status.
    ExitError {
        /// The exit status.
        status: u8,
    },
    /// Killed by a signal.
    Signal {
        /// The signal number.
        signal: u8,
        /// Whether it dumped core.
        core_dumped: bool,
    },
    /// Chosen by the OOM killer.
    OomKilled,
}

impl EventKind {
    /// Decodes a wait(2)-style exit code; `None` for a clean exit.
    pub fn from_exit_code(code: u32) -> Option<Self> {
        let signal = (code & 0x7f) as u8;
        let status = ((code >> 8) & 0xff) as u8;
        if signal != 0 {
            Some(EventKind::Signal {
                signal,
                core_dumped: code & 0x80 != 0,
            })
        } else if status != 0 {
            Some(EventKind::ExitError { status })
        } else {
            None
        }
    }
}

/// Everything read in one interval.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// How long the interval was.
    pub interval: Duration,
    /// Per-cgroup readings; only cgroups where something happened.
    pub readings: Vec<Reading>,
    /// Crashes and OOM victims, in the order the kernel recorded them.
    pub events: Vec<Event>,
    /// Ring-buffer records the kernel had to drop since the last read (reader too slow).
    pub dropped_events: u64,
    /// The probes' own CPU cost over the interval, as a fraction of one CPU
    /// (`homeostat.sensor.overhead`); `None` unless BPF run-time statistics were on for most
    /// of the interval ([`crate::Sensor::measure_cost`]).
    pub overhead: Option<f64>,
}

impl Snapshot {
    /// The readings of one cgroup.
    pub fn of_cgroup(&self, cgroup_id: u64) -> impl Iterator<Item = &Reading> {
        self.readings
            .iter()
            .filter(move |r| r.cgroup_id == cgroup_id)
    }

    /// The increase of a counter for one cgroup (0 if nothing happened).
    pub fn increase(&self, cgroup_id: u64, signal: &str, attribute: Option<&str>) -> f64 {
        self.of_cgroup(cgroup_id)
            .filter(|r| r.signal == signal && r.attribute.map(|a| a.1) == attribute)
            .map(|r| match r.value {
                Value::Increase(v) => v,
                Value::Latencies(_) => 0.0,
            })
            .sum()
    }

    /// The latencies of a histogram signal for one cgroup, if any were recorded.
    pub fn latencies(&self, cgroup_id: u64, signal: &str) -> Option<Log2Histogram> {
        self.of_cgroup(cgroup_id).find_map(|r| match &r.value {
            Value::Latencies(h) if r.signal == signal => Some(**h),
            _ => None,
        })
    }

    /// Core samples, for the workloads `workload_of` can name (the sensor knows pods by UID;
    /// which Deployment owns a pod is the API server's knowledge). Counters become per-second
    /// rates, histograms a rate, a mean, a median and a 99th percentile, in seconds.
    pub fn samples(
        &self,
        time: Timestamp,
        mut workload_of: impl FnMut(&Owner) -> Option<WorkloadRef>,
    ) -> Vec<Sample> {
        let secs = self.interval.as_secs_f64();
        let mut out = Vec::new();
        for r in &self.readings {
            let Some(workload) = workload_of(&r.owner) else {
                continue;
            };
            let attrs: Vec<(&str, &str)> = r.attribute.into_iter().collect();
            let name = signal::series_name(r.signal, &attrs);
            let mut push = |stat, v: Option<f64>| {
                if let Some(s) =
                    v.and_then(|v| Sample::new(name.clone(), stat, workload.clone(), time, v))
                {
                    out.push(s);
                }
            };
            match &r.value {
                Value::Increase(v) => push(Stat::Rate, Some(v / secs)),
                Value::Latencies(h) => {
                    push(Stat::Rate, Some(h.count as f64 / secs));
                    push(Stat::Mean, h.mean_seconds());
                    push(Stat::P50, h.quantile_seconds(0.5));
                    push(Stat::P99, h.quantile_seconds(0.99));
                }
            }
        }
        out
    }

    /// A readable table: owner, signal, value; then the events.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, String, String)> = self
            .readings
            .iter()
            .map(|r| {
                let signal = match r.attribute {
                    Some((k, v)) => format!("{}{{{k}={v}}}", r.signal),
                    None => r.signal.to_owned(),
                };
                let value = match &r.value {
                    Value::Increase(v) if r.signal == signal::CPU_TIME => format!("{v:.3} s"),
                    Value::Increase(v) => format!("{v}"),
                    Value::Latencies(h) => format!(
                        "n={} p50={} p99={} mean={}",
                        h.count,
                        human(h.quantile_seconds(0.5)),
                        human(h.quantile_seconds(0.99)),
                        human(h.mean_seconds())
                    ),
                };
                (r.owner.to_string(), signal, value)
            })
            .collect();
        rows.sort();
        let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(8);
        let w1 = rows
            .iter()
            .map(|r| r.1.len())
            .max()
            .unwrap_or(0)
            .max(signal::SENSOR_OVERHEAD.len());
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:w0$}  {:w1$}  VALUE (over {:?})",
            "OWNER", "SIGNAL", self.interval
        );
        for (o, sig, v) in rows {
            let _ = writeln!(s, "{o:w0$}  {sig:w1$}  {v}");
        }
        if let Some(o) = self.overhead {
            let _ = writeln!(
                s,
                "{:w0$}  {:w1$}  {:.4} CPU",
                "(sensor)",
                signal::SENSOR_OVERHEAD,
                o
            );
        }
        for e in &self.events {
            let _ = writeln!(s, "event: {}: {}", e.owner, e.describe());
        }
        if self.dropped_events > 0 {
            let _ = writeln!(
                s,
                "({} events dropped: ring buffer full)",
                self.dropped_events
            );
        }
        s
    }
}

fn human(seconds: Option<f64>) -> String {
    match seconds {
        None => "-".into(),
        Some(s) if s < 1e-3 => format!("{:.1}µs", s * 1e6),
        Some(s) if s < 1.0 => format!("{:.2}ms", s * 1e3),
        Some(s) => format!("{s:.2}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_describe_themselves() {
        let event = |kind| Event {
            cgroup_id: 1,
            path: None,
            owner: Owner::Unit("cron.service".into()),
            unix_nanos: 0,
            pid: 4242,
            comm: "sh".into(),
            kind,
        };
        let crash = EventKind::Signal {
            signal: 11,
            core_dumped: true,
        };
        assert_eq!(
            event(crash).describe(),
            "sh (pid 4242) killed by signal 11 (SIGSEGV), core dumped"
        );
        assert_eq!(
            event(EventKind::ExitError { status: 3 }).describe(),
            "sh (pid 4242) exited with status 3"
        );
        assert_eq!(signal_name(9), Some("SIGKILL"));
        assert_eq!(signal_name(31), Some("SIGSYS"));
        assert_eq!((signal_name(0), signal_name(34)), (None, None));
    }

    #[test]
    fn decodes_exit_codes() {
        assert_eq!(EventKind::from_exit_code(0), None);
        assert_eq!(
            EventKind::from_exit_code(3 << 8),
            Some(EventKind::ExitError { status: 3 })
        );
        assert_eq!(
            EventKind::from_exit_code(9),
            Some(EventKind::Signal {
                signal: 9,
                core_dumped: false
            })
        );
        assert_eq!(
            EventKind::from_exit_code(0x80 | 11),
            Some(EventKind::Signal {
                signal: 11,
                core_dumped: true
            })
        );
    }

    #[test]
    fn counters_become_rates_and_histograms_quantiles() {
        let mut h = Log2Histogram::default();
        h.slots[13] = 10; // 8–16 µs
        h.count = 10;
        h.sum_ns = 100_000;
        let owner = Owner::Pod {
            uid: "u".into(),
            qos: "burstable",
            container_id: None,
        };
        let snap = Snapshot {
            interval: Duration::from_secs(2),
            readings: vec![
                Reading {
                    cgroup_id: 7,
                    path: None,
                    owner: owner.clone(),
                    signal: signal::PROCESS_EXITS,
                    attribute: Some((signal::EXIT_KIND, "error")),
                    value: Value::Increase(4.0),
                },
                Reading {
                    cgroup_id: 7,
                    path: None,
                    owner: Owner::Unit("x.service".into()),
                    signal: signal::RUNQUEUE_LATENCY,
                    attribute: None,
                    value: Value::Latencies(Box::new(h)),
                },
            ],
            ..Default::default()
        };
        let w = WorkloadRef::deployment("shop", "web");
        let samples = snap.samples(Timestamp::EPOCH, |o| {
            matches!(o, Owner::Pod { .. }).then(|| w.clone())
        });
        assert_eq!(samples.len(), 1);
        assert_eq!(
            samples[0].signal,
            "homeostat.process.exits{exit.kind=error}"
        );
        assert_eq!((samples[0].stat, samples[0].value), (Stat::Rate, 2.0));
        let all = snap.samples(Timestamp::EPOCH, |_| Some(w.clone()));
        assert_eq!(all.len(), 5);
        assert!(snap.table().contains("n=10 p50="));
        assert_eq!(snap.increase(7, signal::PROCESS_EXITS, Some("error")), 4.0);
    }
}
