//! What the sensor's benches share: their entry, one `perf bench sched` run under
//! `perf stat`, medians, the load average.

use std::process::{Command, ExitCode};

use homeostat_sensor::preflight;

/// A bench's entry: its options, then, where BPF can run (root, BTF; elsewhere it says why
/// and succeeds), the bench; errors are printed and fail it.
pub fn main<O>(options: fn() -> Result<O, String>, run: fn(&O) -> Result<(), String>) -> ExitCode {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(why) = preflight::unavailable() {
        eprintln!("skipped: {why}");
        return ExitCode::SUCCESS;
    }
    match run(&o) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One benchmark run: wall time (what perf bench reports) and the CPU time its tasks used
/// (perf stat's task-clock), both in seconds. CPU time is the steadier figure on a machine
/// shared with others: waiting for someone else's task to get off the CPU is not in it, and
/// the probes' cost is (a program runs in the context of the task switching out).
#[derive(Clone, Copy)]
pub struct Run {
    /// Seconds, as perf bench reports them.
    pub wall: f64,
    /// Seconds of CPU time of the benchmark's tasks.
    pub cpu: f64,
}

/// Runs one `perf bench sched <sched> -l <loops>` under `perf stat -e task-clock`; pinned,
/// both under `taskset -c 0`, so every task it starts stays on CPU 0.
pub fn perf(sched: &str, loops: u32, pinned: bool) -> Result<Run, String> {
    let loops = loops.to_string();
    let mut command = if pinned {
        let mut c = Command::new("taskset");
        c.args(["-c", "0", "perf"]);
        c
    } else {
        Command::new("perf")
    };
    let out = command
        .args([
            "stat",
            "-x,",
            "-e",
            "task-clock",
            "--",
            "perf",
            "bench",
            "-f",
            "simple",
        ])
        .args(["sched", sched, "-l", &loops])
        .output()
        .map_err(|e| {
            format!("running perf (Debian: apt-get install -y linux-perf util-linux): {e}")
        })?;
    if !out.status.success() {
        return Err(format!(
            "perf bench sched {sched} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let wall = text
        .lines()
        .rev()
        .find_map(|l| l.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("no time in perf bench's output: {text:?}"))?;
    let stats = String::from_utf8_lossy(&out.stderr);
    let cpu_ms = stats
        .lines()
        .find(|l| l.contains("task-clock"))
        .and_then(|l| l.split(',').next()?.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("no task-clock in perf stat's output: {stats:?}"))?;
    Ok(Run {
        wall,
        cpu: cpu_ms / 1e3,
    })
}

/// The median (NaN for none).
pub fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The 1-minute load average, as /proc/loadavg has it.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}
