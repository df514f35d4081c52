//! What the probes cost the workloads they watch: `perf bench sched messaging` and
//! `perf bench sched pipe` (a context switch is the scheduler probes' worst case), the latter
//! also with both ends pinned to one CPU (`pipe-1cpu`, immune to a VM's cross-CPU wakeup
//! latency), each run
//! with and without the sensor attached, interleaved over several rounds (noise on shared
//! VMs is ±20 % run to run), reported as medians and the median slowdown; plus each
//! program's mean cost per run from BPF run-time statistics. Both wall time and the CPU
//! time of the benchmark's tasks are compared; on a loaded machine trust the CPU time.
//!
//! ```text
//! sudo cargo bench -p homeostat-sensor --bench overhead -- [--rounds 7] [--pipe-loops 100000]
//!     [--messaging-loops 100] [--sample-every 1]
//! ```

use std::collections::BTreeMap;
use std::process::ExitCode;

mod common;
use common::{Run, loadavg, median};

use homeostat_sensor::{Probe, ProbeConfig, ProgramStats, Sensor, SensorConfig};

struct Options {
    rounds: usize,
    pipe_loops: u32,
    messaging_loops: u32,
    sample_every: u32,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        rounds: 7,
        pipe_loops: 100_000,
        messaging_loops: 100,
        sample_every: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| -> Result<u32, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .filter(|&v| v > 0)
                .ok_or_else(|| format!("{name} needs a positive number"))
        };
        match a.as_str() {
            "--rounds" => o.rounds = value("--rounds")? as usize,
            "--pipe-loops" => o.pipe_loops = value("--pipe-loops")?,
            "--messaging-loops" => o.messaging_loops = value("--messaging-loops")?,
            "--sample-every" => o.sample_every = value("--sample-every")?,
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(o)
}

/// A benchmark: `perf bench sched <sched>`, on one CPU when `pinned`.
#[derive(Clone, Copy)]
struct Bench {
    name: &'static str,
    sched: &'static str,
    loops: u32,
    pinned: bool,
}

fn main() -> ExitCode {
    common::main(options, run)
}

fn run(o: &Options) -> Result<(), String> {
    let mut config = SensorConfig::default();
    config.probes.insert(
        Probe::RunQueue,
        ProbeConfig {
            enabled: true,
            sample_every: o.sample_every,
        },
    );
    // pipe-1cpu: both ends of the pipe on one CPU. Every round trip is then two direct
    // task-to-task switches, the densest sched_switch rate, and no wakeup crosses CPUs: on a
    // VM a cross-CPU wakeup is an IPI through the hypervisor, whose latency follows the
    // host's load (unpinned pipe has taken from 0.75 s to 6 s for 100,000 round trips on
    // the same VM within one day) and drowns the probe's cost in noise.
    let benches = [
        Bench {
            name: "messaging",
            sched: "messaging",
            loops: o.messaging_loops,
            pinned: false,
        },
        Bench {
            name: "pipe",
            sched: "pipe",
            loops: o.pipe_loops,
            pinned: false,
        },
        Bench {
            name: "pipe-1cpu",
            sched: "pipe",
            loops: o.pipe_loops,
            pinned: true,
        },
    ];
    // bench -> (without, with) runs.
    let mut times: BTreeMap<&str, (Vec<Run>, Vec<Run>)> = BTreeMap::new();
    let load_before = loadavg();
    for round in 0..o.rounds {
        for &bench in &benches {
            // Alternate which goes first, so a drift in the machine's load hits both alike.
            for with in [round % 2 == 0, round % 2 != 0] {
                // As deployed: the sensor measures its own cost only now and then, and BPF
                // run-time statistics are off while it does not.
                let sensor = with
                    .then(|| Sensor::start(&config))
                    .transpose()
                    .map_err(|e| e.to_string())?;
                let t = common::perf(bench.sched, bench.loops, bench.pinned)?;
                drop(sensor);
                let entry = times.entry(bench.name).or_default();
                if with { &mut entry.1 } else { &mut entry.0 }.push(t);
                eprintln!(
                    "round {}/{}: {:9} {:7} {:.3} s wall, {:.3} s CPU",
                    round + 1,
                    o.rounds,
                    bench.name,
                    if with { "sensor" } else { "bare" },
                    t.wall,
                    t.cpu
                );
            }
        }
    }

    // program -> (run time ns, runs): one more run of each benchmark, with statistics on.
    let mut cost: BTreeMap<&str, (f64, u64)> = BTreeMap::new();
    for &bench in &benches {
        let mut sensor = Sensor::start(&config).map_err(|e| e.to_string())?;
        if !sensor.measure_cost(true) {
            return Err("BPF run-time statistics could not be turned on".into());
        }
        let before = sensor.program_stats();
        common::perf(bench.sched, bench.loops, bench.pinned)?;
        for after in sensor.program_stats() {
            let earlier = before.iter().find(|b| b.name == after.name);
            add_cost(&mut cost, &after, earlier);
        }
    }

    println!(
        "\nperf bench sched, {} interleaved rounds, run-queue latency sampled 1 in {}; \
         load average {} before, {} after",
        o.rounds,
        o.sample_every,
        load_before,
        loadavg()
    );
    println!(
        "{:10} {:5} {:>10} {:>10} {:>9}   (each run, bare | sensor)",
        "BENCH", "TIME", "BARE", "SENSOR", "SLOWDOWN"
    );
    for (bench, (bare, with)) in &times {
        for (what, pick) in [
            ("wall", (|r: &Run| r.wall) as fn(&Run) -> f64),
            ("cpu", |r| r.cpu),
        ] {
            let bare: Vec<f64> = bare.iter().map(pick).collect();
            let with: Vec<f64> = with.iter().map(pick).collect();
            let (b, w) = (median(&bare), median(&with));
            let fmt = |v: &[f64]| {
                v.iter()
                    .map(|t| format!("{t:.3}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            println!(
                "{bench:10} {what:5} {b:>8.3} s {w:>8.3} s {:>7.1} %   {} | {}",
                (w / b - 1.0) * 100.0,
                fmt(&bare),
                fmt(&with)
            );
        }
    }
    println!(
        "\nper program, over one more run of each benchmark with BPF run-time statistics on \
         (which add their own cost; runs include every other task's switches)"
    );
    println!("{:16} {:>10} {:>14}", "PROGRAM", "NS/RUN", "RUNS");
    for (name, (ns, runs)) in &cost {
        if *runs > 0 {
            println!("{name:16} {:>10.0} {runs:>14}", ns / *runs as f64);
        }
    }
    println!(
        "\nreproduce: sudo cargo bench -p homeostat-sensor --bench overhead -- --rounds {} \
         --pipe-loops {} --messaging-loops {} --sample-every {}",
        o.rounds, o.pipe_loops, o.messaging_loops, o.sample_every
    );
    Ok(())
}

fn add_cost(
    cost: &mut BTreeMap<&'static str, (f64, u64)>,
    after: &ProgramStats,
    before: Option<&ProgramStats>,
) {
    let (t0, n0) = before.map_or((0, 0), |b| (b.run_time.as_nanos(), b.run_count));
    let entry = cost.entry(after.name).or_default();
    entry.0 += after.run_time.as_nanos().saturating_sub(t0) as f64;
    entry.1 += after.run_count.saturating_sub(n0);
}
