//! What the scheduler probe costs per context switch, build against build: BPF run-time
//! statistics (mean ns per run of `hs_sched_switch`) while `perf bench sched pipe` runs with
//! both ends pinned to CPU 0 (two task-to-task switches a round trip, nothing else between),
//! for each build attached in turn, interleaved over several rounds. Only comparisons within
//! one run count: on a shared machine the absolute figures drift with the load.
//!
//! The builds: `empty` (a program that returns at once: the floor, the cost of the
//! tracepoint's dispatch and of the statistics themselves), the sched family's object at each
//! `--rev` (its `sensor-ebpf/` taken from git and compiled with the flags of this build),
//! each `--object LABEL=PATH`, `current` (the object this crate embeds), and with `--sensor`
//! the whole sensor as the overhead bench attaches it (every probe family, this build).
//!
//! With `--wall`, statistics stay off (as deployed) and each build's cost per switch is the
//! benchmark's wall and CPU time less that of `bare` runs (nothing attached), over two switches
//! a round trip: the whole price, tracepoint dispatch included, but noisy on a shared machine.
//!
//! ```text
//! sudo cargo bench -p homeostat-sensor --bench switch_cost -- [--rev 97dc843] [--rounds 9]
//!     [--loops 100000] [--sample-every 1] [--object LABEL=PATH] [--sensor] [--wall]
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

mod common;
use common::{Run, loadavg, median};

use homeostat_sensor::{
    AttachedObject, Family, Probe, ProbeConfig, ProgramStats, Sensor, SensorConfig,
};

/// The program every build must have.
const PROGRAM: &str = "hs_sched_switch";

/// The floor: the same attachment and config table, no work.
const EMPTY: &str = r#"#include "hs_common.h"
char LICENSE[] SEC("license") = "GPL";
SEC("tp_btf/sched_switch")
int hs_sched_switch(__u64 *ctx)
{
	return 0;
}
"#;

struct Options {
    /// Wall time per switch instead of run-time statistics.
    wall: bool,
    /// Also the whole sensor.
    sensor: bool,
    rounds: usize,
    loops: u32,
    sample_every: u32,
    revs: Vec<String>,
    objects: Vec<(String, PathBuf)>,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        wall: false,
        sensor: false,
        rounds: 9,
        loops: 100_000,
        sample_every: 1,
        revs: Vec::new(),
        objects: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut text = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let number = |name: &str, v: String| {
            v.parse::<u32>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{name} needs a positive number, not {v:?}"))
        };
        match a.as_str() {
            "--rounds" => o.rounds = number("--rounds", text("--rounds")?)? as usize,
            "--loops" => o.loops = number("--loops", text("--loops")?)?,
            "--sample-every" => o.sample_every = number("--sample-every", text("--sample-every")?)?,
            "--rev" => o.revs.push(text("--rev")?),
            "--wall" => o.wall = true,
            "--sensor" => o.sensor = true,
            "--object" => {
                let v = text("--object")?;
                let (label, path) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--object needs LABEL=PATH, not {v:?}"))?;
                o.objects.push((label.into(), path.into()));
            }
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    common::main(options, run)
}

/// What a build attaches.
enum Attach {
    /// Nothing (`bare`, `--wall` only).
    Nothing,
    /// A build of the sched family's object.
    Object(Vec<u8>),
    /// The whole sensor.
    Sensor,
}

/// Something attached, for as long as it lives.
enum Attached {
    Object(AttachedObject),
    Sensor(Box<Sensor>),
}

impl Attached {
    fn program_stats(&self) -> Vec<ProgramStats> {
        match self {
            Attached::Object(a) => a.program_stats(),
            Attached::Sensor(s) => s.program_stats(),
        }
    }
}

/// A build under comparison.
struct Build {
    label: String,
    attach: Attach,
    /// Per round: mean ns per run (both fields), or (`--wall`) the benchmark's times.
    runs: Vec<Run>,
}

fn build(label: &str, attach: Attach) -> Build {
    Build {
        label: label.into(),
        attach,
        runs: Vec::new(),
    }
}

fn run(o: &Options) -> Result<(), String> {
    let scratch =
        std::env::temp_dir().join(format!("homeostat-switch-cost-{}", std::process::id()));
    let result = compare(o, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn compare(o: &Options, scratch: &Path) -> Result<(), String> {
    std::fs::create_dir_all(scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let include = workspace.join("sensor-ebpf/include");
    let mut builds = Vec::new();
    if o.wall {
        builds.push(build("bare", Attach::Nothing));
    }
    let empty = compile_empty(&include, scratch)?;
    builds.push(build("empty", Attach::Object(empty)));
    for rev in &o.revs {
        let object = compile_rev(&workspace, rev, scratch)?;
        builds.push(build(rev, Attach::Object(object)));
    }
    for (label, path) in &o.objects {
        let object = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        builds.push(build(label, Attach::Object(object)));
    }
    let current = Family::Sched.object().to_vec();
    builds.push(build("current", Attach::Object(current)));
    if o.sensor {
        builds.push(build("sensor", Attach::Sensor));
    }

    let config = SensorConfig {
        probes: [(Probe::RunQueue, o.sample_every), (Probe::CpuTime, 1)]
            .into_iter()
            .map(|(p, sample_every)| {
                let c = ProbeConfig {
                    enabled: true,
                    sample_every,
                };
                (p, c)
            })
            .collect(),
    };
    // On for the whole run: every build pays the statistics' two clock reads alike. Off for
    // wall time, as deployed.
    let _stats = (!o.wall)
        .then(|| aya::sys::enable_stats(aya::sys::Stats::RunTime))
        .transpose()
        .map_err(|e| format!("turning BPF run-time statistics on: {e}"))?;
    let load_before = loadavg();
    let n = builds.len();
    for round in 0..o.rounds {
        // Each build goes first in turn, so a drift in the machine's load hits all alike.
        for i in (0..n).map(|k| (k + round) % n) {
            let b = &mut builds[i];
            let attached = match &b.attach {
                Attach::Nothing => Ok(None),
                Attach::Object(object) => AttachedObject::attach(Family::Sched, object, &config)
                    .map(|a| Some(Attached::Object(a))),
                Attach::Sensor => {
                    let mut everything = SensorConfig::default();
                    everything
                        .probes
                        .insert(Probe::RunQueue, config.probe(Probe::RunQueue));
                    Sensor::start(&everything).map(|s| Some(Attached::Sensor(Box::new(s))))
                }
            }
            .map_err(|e| format!("{}: {e}", b.label))?;
            let figures = match &attached {
                Some(a) if !o.wall => {
                    let ns = ns_per_run(a, || common::perf("pipe", o.loops, true).map(drop))
                        .map_err(|e| format!("{}: {e}", b.label))?;
                    Run { wall: ns, cpu: ns }
                }
                _ => common::perf("pipe", o.loops, true)?,
            };
            drop(attached);
            if o.wall {
                eprintln!(
                    "round {}/{}: {:12} {:.3} s wall, {:.3} s CPU",
                    round + 1,
                    o.rounds,
                    b.label,
                    figures.wall,
                    figures.cpu
                );
            } else {
                eprintln!(
                    "round {}/{}: {:12} {:.1} ns a run",
                    round + 1,
                    o.rounds,
                    b.label,
                    figures.wall
                );
            }
            b.runs.push(figures);
        }
    }

    println!(
        "\n{PROGRAM} under `taskset -c 0 perf bench sched pipe -l {}`, {} interleaved rounds, \
         run-queue latency sampled 1 in {}; load average {} before, {} after",
        o.loops,
        o.rounds,
        o.sample_every,
        load_before,
        loadavg()
    );
    if o.wall {
        // Two switches a round trip; the time a build adds to bare's, per switch.
        let switches = 2.0 * f64::from(o.loops);
        for (what, pick) in [
            ("wall", (|r: &Run| r.wall) as fn(&Run) -> f64),
            ("cpu", |r| r.cpu),
        ] {
            println!("\n{what} time per switch over bare's, ns (statistics off; each round in s)");
            table(&builds, pick, |m, bare| (m - bare) * 1e9 / switches, 3);
        }
    } else {
        println!("\nmean ns a run (BPF run-time statistics on; each round in ns)");
        table(&builds, |r| r.wall, |m, _| m, 1);
    }
    let reproduce: Vec<String> = [(o.wall, " --wall"), (o.sensor, " --sensor")]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, flag)| flag.to_string())
        .chain(o.revs.iter().map(|r| format!(" --rev {r}")))
        .chain(
            o.objects
                .iter()
                .map(|(l, p)| format!(" --object {l}={}", p.display())),
        )
        .collect();
    println!(
        "\nreproduce: sudo cargo bench -p homeostat-sensor --bench switch_cost --{} --rounds {} \
         --loops {} --sample-every {}",
        reproduce.concat(),
        o.rounds,
        o.loops,
        o.sample_every
    );
    Ok(())
}

/// Prints each build's median as ns (`ns(median, first build's median)`), less the first
/// build's, and against the first build compared (after `bare` and `empty`); then its rounds
/// with `decimals`.
fn table(builds: &[Build], pick: fn(&Run) -> f64, ns: impl Fn(f64, f64) -> f64, decimals: usize) {
    let reference = builds
        .iter()
        .position(|b| matches!(b.attach, Attach::Object(_)) && b.label != "empty");
    let medians: Vec<f64> = builds
        .iter()
        .map(|b| median(&b.runs.iter().map(pick).collect::<Vec<_>>()))
        .collect();
    let floor = medians[0];
    let base = ns(floor, floor);
    let first = reference.map(|i| ns(medians[i], floor));
    println!(
        "{:12} {:>8} {:>10} {:>10}   each round",
        "BUILD",
        "NS",
        format!("-{}", builds[0].label.to_uppercase()),
        format!("VS {}", reference.map_or("", |i| &builds[i].label))
    );
    for (i, (b, &m)) in builds.iter().zip(&medians).enumerate() {
        let v = ns(m, floor);
        let versus = match first {
            Some(f) if reference.is_some_and(|r| i >= r) => format!("{:+.1}", v - f),
            _ => String::new(),
        };
        let rounds: Vec<String> = b
            .runs
            .iter()
            .map(|r| format!("{:.decimals$}", pick(r)))
            .collect();
        println!(
            "{:12} {v:8.1} {:10.1} {versus:>10}   {}",
            b.label,
            v - base,
            rounds.join(" ")
        );
    }
}

/// Mean ns per run of the program while `workload` runs.
fn ns_per_run(
    attached: &Attached,
    workload: impl FnOnce() -> Result<(), String>,
) -> Result<f64, String> {
    let before = stats(attached)?;
    workload()?;
    let after = stats(attached)?;
    let runs = after.1.saturating_sub(before.1);
    if runs == 0 {
        return Err(format!("{PROGRAM} never ran"));
    }
    Ok(after.0.saturating_sub(before.0) as f64 / runs as f64)
}

/// The program's run time in ns and run count so far.
fn stats(attached: &Attached) -> Result<(u128, u64), String> {
    attached
        .program_stats()
        .into_iter()
        .find(|s| s.name == PROGRAM)
        .map(|s| (s.run_time.as_nanos(), s.run_count))
        .ok_or_else(|| format!("no statistics for {PROGRAM}"))
}

/// Compiles C with the clang and flags this crate's build script used for the probes.
fn clang(include: &Path, source: &Path, object: &Path) -> Result<Vec<u8>, String> {
    let out = Command::new(env!("HOMEOSTAT_BPF_CLANG"))
        .args(env!("HOMEOSTAT_BPF_CFLAGS").split(' '))
        .arg("-I")
        .arg(include)
        .arg("-c")
        .arg(source)
        .arg("-o")
        .arg(object)
        .output()
        .map_err(|e| format!("running {}: {e}", env!("HOMEOSTAT_BPF_CLANG")))?;
    if !out.status.success() {
        return Err(format!(
            "compiling {}: {}",
            source.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::fs::read(object).map_err(|e| format!("{}: {e}", object.display()))
}

fn compile_empty(include: &Path, scratch: &Path) -> Result<Vec<u8>, String> {
    let source = scratch.join("empty.bpf.c");
    std::fs::write(&source, EMPTY).map_err(|e| format!("{}: {e}", source.display()))?;
    clang(include, &source, &scratch.join("empty.bpf.o"))
}

/// `sensor-ebpf/` as of `rev` (git archive), compiled.
fn compile_rev(workspace: &Path, rev: &str, scratch: &Path) -> Result<Vec<u8>, String> {
    let dir = scratch.join(rev.replace(['/', '.'], "_"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let archive = Command::new("git")
        .arg("-C")
        .arg(workspace)
        .args(["archive", rev, "sensor-ebpf"])
        .output()
        .map_err(|e| format!("running git: {e}"))?;
    if !archive.status.success() {
        return Err(format!(
            "git archive {rev}: {}",
            String::from_utf8_lossy(&archive.stderr)
        ));
    }
    let mut tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(&dir)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running tar: {e}"))?;
    if let Some(mut stdin) = tar.stdin.take() {
        std::io::Write::write_all(&mut stdin, &archive.stdout)
            .map_err(|e| format!("feeding tar: {e}"))?;
    }
    let status = tar.wait().map_err(|e| format!("tar: {e}"))?;
    if !status.success() {
        return Err(format!("unpacking sensor-ebpf at {rev}: tar {status}"));
    }
    let ebpf = dir.join("sensor-ebpf");
    clang(
        &ebpf.join("include"),
        &ebpf.join("src/sched.bpf.c"),
        &dir.join("sched.bpf.o"),
    )
}
