//! Loads the probe families into the kernel, attaches them, and reads them into snapshots.
//! Dropping the [`Sensor`] detaches and unloads everything.

use std::collections::{HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aya::maps::{MapData, RingBuf};
use aya::programs::BtfTracePoint;
use aya::{Btf, Ebpf, EbpfLoader};
use homeostat_core::signal;

use crate::cgroup::{CgroupIndex, owner_of};
use crate::error::SensorError;
use crate::histogram::Log2Histogram;
use crate::maps::{self, ExitCounts, Hist, RawEvent, TcpCounts};
use crate::preflight;
use crate::probes::{Family, Probe, SensorConfig};
use crate::snapshot::{Event, EventKind, Reading, Snapshot, Value};

/// The histogram signals and the probes that sample them.
const LATENCY_SIGNALS: [(&str, Probe); 3] = [
    (signal::RUNQUEUE_LATENCY, Probe::RunQueue),
    (signal::TCP_CONNECT_LATENCY, Probe::TcpConnect),
    (signal::BLOCK_IO_LATENCY, Probe::BlockIo),
];

/// Kernels before 5.11 charge BPF maps to the locked-memory limit, which is small by default
/// (64 KiB in many containers): lift it, as libbpf does. Later kernels charge the memory
/// cgroup and ignore it. Raising it needs CAP_SYS_RESOURCE; failing is logged, not fatal
/// (loading then says what is short).
fn lift_memlock_limit() {
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit only reads the rlimit it is given, which outlives the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &unlimited) } != 0 {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "locked-memory limit not lifted"
        );
    }
}

/// Moves CLOCK_MONOTONIC nanoseconds (the probes' `bpf_ktime_get_ns()`) onto the wall clock,
/// by the two clocks' difference now; if the monotonic clock cannot be read, every stamp
/// becomes now.
fn monotonic_to_unix() -> impl Fn(u64) -> u64 {
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given, which outlives the call.
    let read = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } == 0;
    let monotonic = (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64);
    move |stamp| {
        if read {
            wall.saturating_sub(monotonic.saturating_sub(stamp))
        } else {
            wall
        }
    }
}

/// What one attached program has cost so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramStats {
    /// The program (`hs_…`).
    pub name: &'static str,
    /// Time spent running it, summed over CPUs.
    pub run_time: Duration,
    /// How many times it ran.
    pub run_count: u64,
}

impl ProgramStats {
    /// Mean cost of one run over the runs since `earlier` (`None` if it did not run).
    pub fn ns_per_run_since(&self, earlier: Option<&ProgramStats>) -> Option<f64> {
        let (t0, n0) = earlier.map_or((Duration::ZERO, 0), |e| (e.run_time, e.run_count));
        let runs = self.run_count.checked_sub(n0).filter(|&n| n > 0)?;
        Some(self.run_time.saturating_sub(t0).as_nanos() as f64 / runs as f64)
    }
}

/// A loaded probe family: its object, and its ring buffer if it has one.
struct Loaded {
    family: Family,
    ebpf: Ebpf,
    events: Option<RingBuf<MapData>>,
}

/// Cumulative map contents at the last read, to turn totals into increases.
#[derive(Default)]
struct Totals {
    runq: HashMap<u64, Log2Histogram>,
    cpu_ns: HashMap<u64, u64>,
    exits: HashMap<u64, ExitCounts>,
    oom: HashMap<u64, u64>,
    tcp: HashMap<u64, TcpCounts>,
    connect: HashMap<u64, Log2Histogram>,
    block: HashMap<u64, Log2Histogram>,
    drops: u64,
    run_time: Duration,
}

/// The running sensor: programs attached, maps read on demand.
pub struct Sensor {
    loaded: Vec<Loaded>,
    failed: Vec<(Family, SensorError)>,
    cgroups: CgroupIndex,
    totals: Totals,
    last_read: Instant,
    /// 1-in-N sampling of each latency signal, to scale its counts back up.
    sample_every: HashMap<&'static str, u32>,
    /// Events read while taking the baseline, handed out with the first snapshot.
    pending: Vec<Event>,
    /// Holds kernel.bpf_stats_enabled on while the sensor measures its own cost, and since
    /// when. Off by default: the statistics cost every BPF program run two clock reads, which
    /// on a context-switch-heavy load is more than the probes themselves (see the README).
    stats: Option<(OwnedFd, Instant)>,
}

impl Sensor {
    /// Checks the machine, loads and attaches every family `config` needs, and writes the
    /// probe switches. A family that fails to load is logged and listed in
    /// [`Sensor::failed`]; only if all fail is it an error.
    pub fn start(config: &SensorConfig) -> Result<Self, SensorError> {
        preflight::check()?;
        for problem in preflight::ensure_mounts() {
            tracing::warn!(%problem, "continuing: the probes attach by BTF and do not need it");
        }
        lift_memlock_limit();
        let cgroups = CgroupIndex::discover()?;
        let btf = Btf::from_sys_fs()?;
        let started = Instant::now();
        let mut loaded = Vec::new();
        let mut failed = Vec::new();
        for family in config.families() {
            match load_family(family, config, &btf) {
                Ok(l) => loaded.push(l),
                Err(e) => {
                    tracing::warn!(family = family.name(), error = %e, "probe family not loaded");
                    failed.push((family, e));
                }
            }
        }
        if loaded.is_empty() && !failed.is_empty() {
            let (_, first) = failed.swap_remove(0);
            return Err(SensorError::NothingLoaded(Box::new(first)));
        }
        tracing::info!(
            families = loaded.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            cgroup2 = %cgroups.root().display(),
            "probes attached"
        );
        let mut sensor = Sensor {
            loaded,
            failed,
            cgroups,
            totals: Totals::default(),
            last_read: Instant::now(),
            sample_every: LATENCY_SIGNALS
                .into_iter()
                .map(|(s, p)| (s, config.probe(p).sample_every.max(1)))
                .collect(),
            pending: Vec::new(),
            stats: None,
        };
        // The families attached one after another over a few hundred milliseconds: take the
        // totals now as the baseline, so the first snapshot covers exactly its interval.
        // Crash records from the loading itself are kept for the first read.
        let baseline = sensor.read()?;
        sensor.pending = baseline.events;
        Ok(sensor)
    }

    /// Switches probes on or off and changes their sampling while attached, e.g. to throttle
    /// the sensor's own cost. Families not loaded at start stay unloaded.
    pub fn configure(&mut self, config: &SensorConfig) -> Result<(), SensorError> {
        for l in &mut self.loaded {
            maps::write_config(&mut l.ebpf, l.family, config)?;
        }
        for (signal, probe) in LATENCY_SIGNALS {
            self.sample_every
                .insert(signal, config.probe(probe).sample_every.max(1));
        }
        Ok(())
    }

    /// The families that could not be loaded, and why.
    pub fn failed(&self) -> &[(Family, SensorError)] {
        &self.failed
    }

    /// The names of the attached programs (`hs_…`).
    pub fn programs(&self) -> Vec<&'static str> {
        self.loaded
            .iter()
            .flat_map(|l| l.family.programs().iter().map(|(p, _)| *p))
            .collect()
    }

    /// Turns the measurement of the probes' own cost (BPF run-time statistics) on or off.
    /// While on, each [`Snapshot::overhead`] of an interval it covered (most of) is the
    /// probes' CPU time over it; turn it on for one interval in several to keep its own cost down.
    /// Returns whether it is on (the kernel may refuse: then the overhead stays unknown).
    pub fn measure_cost(&mut self, on: bool) -> bool {
        match (on, self.stats.is_some()) {
            (true, false) => match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
                Ok(fd) => self.stats = Some((fd, Instant::now())),
                Err(e) => tracing::warn!(error = %e, "BPF run-time statistics unavailable"),
            },
            (false, true) => self.stats = None,
            _ => {}
        }
        self.stats.is_some()
    }

    /// Each attached program's run time and run count so far, from BPF run-time statistics
    /// (they grow only while statistics are on: [`Sensor::measure_cost`], or
    /// `sysctl kernel.bpf_stats_enabled=1`).
    pub fn program_stats(&self) -> Vec<ProgramStats> {
        self.loaded
            .iter()
            .flat_map(|l| family_stats(l.family, &l.ebpf))
            .collect()
    }

    /// Where the v2 cgroup hierarchy is mounted.
    pub fn cgroup_root(&self) -> &std::path::Path {
        self.cgroups.root()
    }

    /// Everything that happened since the last read (or since start).
    pub fn read(&mut self) -> Result<Snapshot, SensorError> {
        let now = Instant::now();
        let interval = now - self.last_read;
        self.last_read = now;

        let mut current = Totals::default();
        let mut raw_events = Vec::new();
        for l in &mut self.loaded {
            let f = l.family;
            let e = &l.ebpf;
            match f {
                Family::Sched => {
                    current.runq = hist_map(e, f, "hs_runq_hist")?;
                    current.cpu_ns = maps::read_per_cgroup(e, f, "hs_cpu_ns")?;
                }
                Family::Exit => current.exits = maps::read_per_cgroup(e, f, "hs_exit_counts")?,
                Family::Oom => current.oom = maps::read_per_cgroup(e, f, "hs_oom_counts")?,
                Family::Tcp => {
                    current.tcp = maps::read_per_cgroup(e, f, "hs_tcp_counts")?;
                    current.connect = hist_map(e, f, "hs_conn_hist")?;
                }
                Family::Block => current.block = hist_map(e, f, "hs_bio_hist")?,
            }
            current.drops += maps::read_drops(e, f).unwrap_or(0);
            if let Some(rb) = &mut l.events {
                while let Some(item) = rb.next() {
                    if let Some(ev) = RawEvent::parse(&item) {
                        raw_events.push((f, ev));
                    }
                }
            }
            current.run_time += run_time(e, f);
        }

        let mut readings = Vec::new();
        counters(&mut readings, &current.cpu_ns, &self.totals.cpu_ns, |v| {
            vec![(signal::CPU_TIME, None, *v as f64 / 1e9)]
        });
        counters(&mut readings, &current.oom, &self.totals.oom, |v| {
            vec![(signal::OOM_KILLS, None, *v as f64)]
        });
        let exit_kind = |k| Some((signal::EXIT_KIND, k));
        counters(&mut readings, &current.exits, &self.totals.exits, |v| {
            vec![
                (signal::PROCESS_EXITS, exit_kind("ok"), v.ok as f64),
                (signal::PROCESS_EXITS, exit_kind("error"), v.error as f64),
                (signal::PROCESS_EXITS, exit_kind("signal"), v.signal as f64),
            ]
        });
        counters(&mut readings, &current.tcp, &self.totals.tcp, |v| {
            vec![
                (signal::TCP_RETRANSMITS, None, v.retransmits as f64),
                (
                    signal::TCP_RESETS,
                    Some(("direction", "sent")),
                    v.resets_sent as f64,
                ),
                (
                    signal::TCP_RESETS,
                    Some(("direction", "received")),
                    v.resets_received as f64,
                ),
            ]
        });
        for (signal, now, before) in [
            (signal::RUNQUEUE_LATENCY, &current.runq, &self.totals.runq),
            (
                signal::TCP_CONNECT_LATENCY,
                &current.connect,
                &self.totals.connect,
            ),
            (signal::BLOCK_IO_LATENCY, &current.block, &self.totals.block),
        ] {
            let n = self.sample_every.get(signal).copied().unwrap_or(1);
            histograms(&mut readings, signal, now, before, n);
        }

        let ids: HashSet<u64> = readings
            .iter()
            .map(|r| r.cgroup_id)
            .chain(raw_events.iter().map(|(_, e)| e.cgroup_id))
            .collect();
        let paths = self.cgroups.resolve_all(ids);
        let owner = |id: u64| match paths.get(&id).cloned().flatten() {
            Some(p) => owner_of(&p),
            None if id == 0 => crate::cgroup::Owner::Path("(no socket)".into()),
            None => crate::cgroup::Owner::Path(format!("(gone cgroup {id})")),
        };
        for r in &mut readings {
            r.path = paths.get(&r.cgroup_id).cloned().flatten();
            r.owner = owner(r.cgroup_id);
        }
        let mut events = std::mem::take(&mut self.pending);
        let to_unix = monotonic_to_unix();
        events.extend(raw_events.into_iter().filter_map(|(f, e)| {
            let kind = if f == Family::Oom {
                EventKind::OomKilled
            } else {
                EventKind::from_exit_code(e.code)?
            };
            Some(Event {
                cgroup_id: e.cgroup_id,
                path: paths.get(&e.cgroup_id).cloned().flatten(),
                owner: owner(e.cgroup_id),
                unix_nanos: to_unix(e.time_ns),
                pid: e.pid,
                comm: e.comm,
                kind,
            })
        }));

        // Run times grow only while statistics are on: divide by that part of the interval,
        // if it is most of it (switched on just after the last read is the usual case).
        let measured_for = self
            .stats
            .as_ref()
            .map(|(_, since)| now.saturating_duration_since((*since).max(now - interval)));
        let overhead = measured_for
            .filter(|d| !d.is_zero() && *d >= interval / 2)
            .map(|d| {
                current
                    .run_time
                    .saturating_sub(self.totals.run_time)
                    .as_secs_f64()
                    / d.as_secs_f64()
            });
        let snapshot = Snapshot {
            interval,
            readings,
            events,
            dropped_events: current.drops.saturating_sub(self.totals.drops),
            overhead,
        };
        self.forget_gone_cgroups(&current);
        self.totals = current;
        Ok(snapshot)
    }

    /// Deletes map entries of cgroups that no longer exist, once their last counts are read.
    fn forget_gone_cgroups(&mut self, current: &Totals) {
        let gone = |ids: Vec<u64>| -> Vec<u64> {
            ids.into_iter()
                .filter(|id| *id != 0 && self.cgroups.path(*id).is_none())
                .collect()
        };
        let sched = gone(
            current
                .cpu_ns
                .keys()
                .chain(current.runq.keys())
                .copied()
                .collect(),
        );
        let exit = gone(current.exits.keys().copied().collect());
        let tcp = gone(
            current
                .tcp
                .keys()
                .chain(current.connect.keys())
                .copied()
                .collect(),
        );
        let block = gone(current.block.keys().copied().collect());
        let oom = gone(current.oom.keys().copied().collect());
        for l in &mut self.loaded {
            let (f, e) = (l.family, &mut l.ebpf);
            let _ = match f {
                Family::Sched => maps::forget_cgroups::<u64>(e, f, "hs_cpu_ns", &sched)
                    .and_then(|_| maps::forget_cgroups::<Hist>(e, f, "hs_runq_hist", &sched)),
                Family::Exit => maps::forget_cgroups::<ExitCounts>(e, f, "hs_exit_counts", &exit),
                Family::Oom => maps::forget_cgroups::<u64>(e, f, "hs_oom_counts", &oom),
                Family::Tcp => maps::forget_cgroups::<TcpCounts>(e, f, "hs_tcp_counts", &tcp)
                    .and_then(|_| maps::forget_cgroups::<Hist>(e, f, "hs_conn_hist", &tcp)),
                Family::Block => maps::forget_cgroups::<Hist>(e, f, "hs_bio_hist", &block),
            };
        }
    }
}

fn load_family(family: Family, config: &SensorConfig, btf: &Btf) -> Result<Loaded, SensorError> {
    let mut ebpf = load_object(family, family.object(), config, btf)?;
    let ring = match family {
        Family::Exit => Some("hs_exit_events"),
        Family::Oom => Some("hs_oom_events"),
        _ => None,
    };
    let events = match ring {
        Some(name) => {
            let map = ebpf.take_map(name).ok_or_else(|| SensorError::Map {
                family: family.name(),
                map: name,
                reason: "not in the object".into(),
            })?;
            Some(RingBuf::try_from(map).map_err(|e| SensorError::Map {
                family: family.name(),
                map: name,
                reason: e.to_string(),
            })?)
        }
        None => None,
    };
    Ok(Loaded {
        family,
        ebpf,
        events,
    })
}

/// Loads a build of `family`'s object, writes its probe switches and attaches its programs.
fn load_object(
    family: Family,
    object: &[u8],
    config: &SensorConfig,
    btf: &Btf,
) -> Result<Ebpf, SensorError> {
    // Reuse the parsed kernel BTF: parsing it again for every family costs ~200 ms each.
    let mut ebpf = EbpfLoader::new()
        .btf(Some(btf))
        .load(object)
        .map_err(|source| SensorError::Load {
            family: family.name(),
            source,
        })?;
    maps::write_config(&mut ebpf, family, config)?;
    for (name, tracepoint) in family.programs() {
        let program_error = |source| SensorError::Program {
            family: family.name(),
            program: name,
            source,
        };
        let program: &mut BtfTracePoint = ebpf
            .program_mut(name)
            .ok_or_else(|| SensorError::Map {
                family: family.name(),
                map: name,
                reason: "program not in the object".into(),
            })?
            .try_into()
            .map_err(program_error)?;
        program.load(tracepoint, btf).map_err(program_error)?;
        program.attach().map_err(program_error)?;
    }
    Ok(ebpf)
}

/// Each of `family`'s programs' run time and run count so far.
fn family_stats(family: Family, ebpf: &Ebpf) -> impl Iterator<Item = ProgramStats> + '_ {
    family.programs().iter().filter_map(|(name, _)| {
        let info = ebpf.program(name)?.info().ok()?;
        Some(ProgramStats {
            name,
            run_time: info.run_time(),
            run_count: info.run_count(),
        })
    })
}

/// One build of a probe family's object, loaded and attached on its own (no maps read, no
/// cgroups named): for comparing what different builds of the programs cost on the same
/// workload (`benches/switch_cost.rs`). Dropping it detaches and unloads the programs.
pub struct AttachedObject {
    family: Family,
    ebpf: Ebpf,
}

impl AttachedObject {
    /// Loads `object`, which must have `family`'s programs and an `hs_config` map, writes
    /// `config` into it and attaches the programs.
    pub fn attach(
        family: Family,
        object: &[u8],
        config: &SensorConfig,
    ) -> Result<Self, SensorError> {
        preflight::check()?;
        lift_memlock_limit();
        let btf = Btf::from_sys_fs()?;
        let ebpf = load_object(family, object, config, &btf)?;
        Ok(AttachedObject { family, ebpf })
    }

    /// Its programs' run time and run count so far (see [`Sensor::program_stats`]).
    pub fn program_stats(&self) -> Vec<ProgramStats> {
        family_stats(self.family, &self.ebpf).collect()
    }
}

fn hist_map(
    e: &Ebpf,
    f: Family,
    name: &'static str,
) -> Result<HashMap<u64, Log2Histogram>, SensorError> {
    Ok(maps::read_per_cgroup::<Hist>(e, f, name)?
        .into_iter()
        .map(|(k, v)| (k, v.into()))
        .collect())
}

/// Total run time of a family's programs so far (0 when statistics are off).
fn run_time(e: &Ebpf, f: Family) -> Duration {
    family_stats(f, e).map(|s| s.run_time).sum()
}

type Split = Option<(&'static str, &'static str)>;

/// Appends a reading for every counter of every cgroup that grew since `before`.
fn counters<V>(
    out: &mut Vec<Reading>,
    now: &HashMap<u64, V>,
    before: &HashMap<u64, V>,
    values: impl Fn(&V) -> Vec<(&'static str, Split, f64)>,
) {
    for (id, v) in now {
        let earlier = before.get(id).map(&values);
        for (i, (signal, attribute, total)) in values(v).into_iter().enumerate() {
            let prev = earlier.as_ref().and_then(|e| e.get(i)).map_or(0.0, |e| e.2);
            // A smaller total means the entry was deleted and recreated: count afresh.
            let increase = if total >= prev { total - prev } else { total };
            if increase > 0.0 {
                out.push(reading(*id, signal, attribute, Value::Increase(increase)));
            }
        }
    }
}

fn histograms(
    out: &mut Vec<Reading>,
    signal: &'static str,
    now: &HashMap<u64, Log2Histogram>,
    before: &HashMap<u64, Log2Histogram>,
    sample_every: u32,
) {
    for (id, h) in now {
        let d = before
            .get(id)
            .map_or(*h, |b| h.since(b))
            .scaled(sample_every);
        if d.count > 0 {
            out.push(reading(*id, signal, None, Value::Latencies(Box::new(d))));
        }
    }
}

fn reading(cgroup_id: u64, signal: &'static str, attribute: Split, value: Value) -> Reading {
    Reading {
        cgroup_id,
        path: None,
        owner: crate::cgroup::Owner::Path(String::new()),
        signal,
        attribute,
        value,
    }
}
