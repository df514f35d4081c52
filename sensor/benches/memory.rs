//! The sensor's resident memory on a node with many cgroups: creates N v2 cgroups (1,000 by
//! default), runs a short-lived process in each that is scheduled, has a TCP connection
//! refused and exits with an error (so the CPU, run-queue, exit and TCP maps, and the crash
//! ring buffer, all get N entries), reads snapshots, and prints VmRSS and VmHWM from
//! /proc/self/status. The target is under 64 MiB. The cgroups are removed at the end.
//!
//! ```text
//! sudo cargo bench -p homeostat-sensor --bench memory -- [--cgroups 1000]
//! ```

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use homeostat_sensor::{Sensor, SensorConfig, Snapshot, preflight};

/// Status fields of this process, in KiB.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("?".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0))
}

/// The parent directory of the test cgroups; removes them (and kills what is left) on drop.
struct Cgroups {
    parent: PathBuf,
    dirs: Vec<PathBuf>,
}

impl Cgroups {
    fn create(root: &Path, n: usize) -> std::io::Result<Self> {
        let parent = root.join(format!("homeostat-bench-memory-{}", std::process::id()));
        std::fs::create_dir(&parent)?;
        let mut me = Cgroups {
            parent,
            dirs: Vec::with_capacity(n),
        };
        for i in 0..n {
            let dir = me.parent.join(format!("cg-{i}"));
            std::fs::create_dir(&dir)?;
            me.dirs.push(dir);
        }
        Ok(me)
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        for dir in self.dirs.iter().rev() {
            let _ = std::fs::write(dir.join("cgroup.kill"), "1");
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if let Err(e) = std::fs::remove_dir(&self.parent) {
            eprintln!("could not remove {}: {e}", self.parent.display());
        }
    }
}

/// A process that moves itself into `dir`, has a connection to a closed loopback port
/// refused (a reset received, counted under its cgroup), and exits with status 3.
fn spawn_in(dir: &Path) -> std::io::Result<Child> {
    let procs = dir.join("cgroup.procs");
    Command::new("bash")
        .arg("-c")
        .arg(format!(
            "echo $$ > {} && {{ exec 3<>/dev/tcp/127.0.0.1/1; }} 2>/dev/null; exit 3",
            procs.display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

fn main() -> ExitCode {
    let mut n = 1000usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--cgroups" => match args.next().and_then(|v| v.parse().ok()) {
                Some(v) => n = v,
                None => {
                    eprintln!("error: --cgroups needs a number");
                    return ExitCode::FAILURE;
                }
            },
            "--bench" => {}
            other => {
                eprintln!("error: unknown argument {other}");
                return ExitCode::FAILURE;
            }
        }
    }
    if let Some(why) = preflight::unavailable() {
        eprintln!("skipped: {why}");
        return ExitCode::SUCCESS;
    }
    match run(n) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(n: usize) -> Result<(), String> {
    let rss_before = status_kib("VmRSS");
    let mut sensor = Sensor::start(&SensorConfig::default()).map_err(|e| e.to_string())?;
    let rss_started = status_kib("VmRSS");
    let cgroups = Cgroups::create(sensor.cgroup_root(), n)
        .map_err(|e| format!("creating {n} cgroups: {e}"))?;
    let ids: HashSet<u64> = cgroups
        .dirs
        .iter()
        .filter_map(|d| std::fs::metadata(d).ok().map(|m| m.ino()))
        .collect();

    let started = Instant::now();
    let mut snapshots: Vec<Snapshot> = Vec::new();
    // 50 at a time: enough to be quick, few enough for two cores shared with others.
    for batch in cgroups.dirs.chunks(50) {
        let children: Vec<Child> = batch
            .iter()
            .map(|d| spawn_in(d))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("spawning bash: {e}"))?;
        for mut c in children {
            let _ = c.wait();
        }
        // Read as the agent would, every so often, so the ring buffer does not overflow.
        snapshots.push(sensor.read().map_err(|e| e.to_string())?);
    }
    // Give every CPU's buffered scheduler counts a chance to reach the maps.
    std::thread::sleep(Duration::from_millis(300));
    snapshots.push(sensor.read().map_err(|e| e.to_string())?);
    let read_started = Instant::now();
    for _ in 0..3 {
        snapshots.push(sensor.read().map_err(|e| e.to_string())?);
    }
    let read_time = read_started.elapsed() / 3;

    let mut per_signal: HashMap<&str, HashSet<u64>> = HashMap::new();
    for s in &snapshots {
        for r in s.readings.iter().filter(|r| ids.contains(&r.cgroup_id)) {
            per_signal.entry(r.signal).or_default().insert(r.cgroup_id);
        }
    }
    let events = snapshots
        .iter()
        .flat_map(|s| &s.events)
        .filter(|e| ids.contains(&e.cgroup_id))
        .count();
    let rss = status_kib("VmRSS");
    let hwm = status_kib("VmHWM");

    println!(
        "\n{n} cgroups, one short-lived process each, in {:.1?}",
        started.elapsed()
    );
    let mut signals: Vec<_> = per_signal.into_iter().collect();
    signals.sort_by_key(|(s, _)| *s);
    for (signal, cgs) in signals {
        println!("  {signal:36} {:>5} cgroups", cgs.len());
    }
    println!("  {:36} {events:>5} records", "crash events (ring buffer)");
    println!("a read of the maps with {n} cgroups takes {read_time:.1?}");
    println!(
        "VmRSS before start {}, after start {}, with {n} cgroups {} (peak VmHWM {}); target < 64 MiB",
        mib(rss_before),
        mib(rss_started),
        mib(rss),
        mib(hwm)
    );
    println!("\nreproduce: sudo cargo bench -p homeostat-sensor --bench memory -- --cgroups {n}");
    drop(cgroups);
    Ok(())
}
