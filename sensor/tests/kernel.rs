//! The real probes on the running kernel: children that exit, crash, spin, write, connect
//! and run out of memory in cgroups the test creates, counted exactly per cgroup.
//!
//! Needs root and kernel BTF; elsewhere each test prints why it skips and passes. The tests
//! take a lock so that one sensor runs at a time (the `bpftool` check needs that, and two
//! cores do not need more contention).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use homeostat_core::signal;
use homeostat_sensor::{EventKind, Probe, ProbeConfig, Sensor, SensorConfig, Snapshot, preflight};

#[path = "../../tests/support/cgroup.rs"]
mod cgroup;

use cgroup::TestCgroup;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The lock, or `None` (with the reason printed) when BPF cannot run here.
fn bpf_or_skip(test: &str) -> Option<MutexGuard<'static, ()>> {
    if let Some(why) = preflight::unavailable() {
        eprintln!("SKIP {test}: {why}");
        return None;
    }
    Some(ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner()))
}

fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn start(probes: &[Probe]) -> Sensor {
    let sensor = Sensor::start(&SensorConfig::only(probes)).expect("sensor starts");
    assert!(sensor.failed().is_empty(), "{:?}", sensor.failed());
    sensor
}

/// Reads until `done` holds for the accumulated readings, or `limit` passes.
fn read_until(
    sensor: &mut Sensor,
    limit: Duration,
    done: impl Fn(&[Snapshot]) -> bool,
) -> Vec<Snapshot> {
    let start = Instant::now();
    let mut all = Vec::new();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        all.push(sensor.read().unwrap());
        if done(&all) || start.elapsed() > limit {
            return all;
        }
    }
}

fn total(snaps: &[Snapshot], cgroup: u64, signal: &str, attribute: Option<&str>) -> f64 {
    snaps
        .iter()
        .map(|s| s.increase(cgroup, signal, attribute))
        .sum()
}

#[test]
fn exits_are_counted_by_kind_and_crashes_recorded() {
    let Some(_lock) = bpf_or_skip("exits_are_counted_by_kind_and_crashes_recorded") else {
        return;
    };
    let mut sensor = start(&[Probe::Exits]);
    let cg = TestCgroup::new(sensor.cgroup_root(), "exits");
    let began = unix_nanos();
    for _ in 0..3 {
        assert_eq!(cg.run("exit 0").code(), Some(0));
    }
    for _ in 0..2 {
        assert_eq!(cg.run("exit 3").code(), Some(3));
    }
    assert!(cg.run("kill -KILL $$").code().is_none());
    assert!(cg.run("kill -TERM $$").code().is_none());
    assert!(cg.run("kill -SEGV $$").code().is_none());

    let snaps = read_until(&mut sensor, Duration::from_secs(5), |s| {
        total(s, cg.id, signal::PROCESS_EXITS, Some("signal")) >= 3.0
    });
    let kinds =
        ["ok", "error", "signal"].map(|k| total(&snaps, cg.id, signal::PROCESS_EXITS, Some(k)));
    assert_eq!(
        kinds,
        [3.0, 2.0, 3.0],
        "ok/error/signal exits in the test cgroup"
    );

    let events: Vec<_> = snaps
        .iter()
        .flat_map(|s| &s.events)
        .filter(|e| e.cgroup_id == cg.id)
        .collect();
    assert_eq!(events.len(), 5, "{events:?}");
    assert!(events.iter().all(|e| e.comm == "sh" && e.pid > 0));
    // Stamped by the kernel's monotonic clock, moved onto the wall clock, in order; and the
    // cgroup named by its path.
    let ended = unix_nanos();
    let times: Vec<u64> = events.iter().map(|e| e.unix_nanos).collect();
    assert!(
        times.is_sorted() && times[0] >= began && times[4] <= ended,
        "{times:?} not within [{began}, {ended}]"
    );
    let dir = cg.dir.file_name().unwrap().to_str().unwrap();
    assert!(
        events
            .iter()
            .all(|e| e.path.as_deref() == Some(&format!("/{dir}"))),
        "{events:?}"
    );
    let signals: Vec<u8> = events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Signal { signal, .. } => Some(signal),
            _ => None,
        })
        .collect();
    assert_eq!(signals, vec![9, 15, 11]);
    assert!(
        events
            .iter()
            .filter(|e| e.kind == EventKind::ExitError { status: 3 })
            .count()
            == 2
    );
    println!("{}", snaps.last().unwrap().table());
}

#[test]
fn a_probe_switched_off_at_run_time_counts_nothing() {
    let Some(_lock) = bpf_or_skip("a_probe_switched_off_at_run_time_counts_nothing") else {
        return;
    };
    let mut sensor = start(&[Probe::Exits]);
    let cg = TestCgroup::new(sensor.cgroup_root(), "switch");
    sensor.configure(&SensorConfig::only(&[])).unwrap();
    cg.run("exit 0");
    let off = total(
        &[sensor.read().unwrap()],
        cg.id,
        signal::PROCESS_EXITS,
        Some("ok"),
    );
    sensor
        .configure(&SensorConfig::only(&[Probe::Exits]))
        .unwrap();
    cg.run("exit 0");
    let on = total(
        &[sensor.read().unwrap()],
        cg.id,
        signal::PROCESS_EXITS,
        Some("ok"),
    );
    assert_eq!((off, on), (0.0, 1.0));
}

#[test]
fn ten_thousand_exits_are_counted_exactly() {
    let Some(_lock) = bpf_or_skip("ten_thousand_exits_are_counted_exactly") else {
        return;
    };
    let mut sensor = start(&[Probe::Exits]);
    let cg = TestCgroup::new(sensor.cgroup_root(), "burst");
    let started = Instant::now();
    let status = cg.run("i=0; while [ $i -lt 10000 ]; do /bin/true; i=$((i+1)); done; exit 0");
    assert!(status.success());
    let spent = started.elapsed();
    // 10,000 of /bin/true and the shell itself.
    let snaps = read_until(&mut sensor, Duration::from_secs(5), |s| {
        total(s, cg.id, signal::PROCESS_EXITS, Some("ok")) >= 10_001.0
    });
    assert_eq!(
        total(&snaps, cg.id, signal::PROCESS_EXITS, Some("ok")),
        10_001.0
    );
    assert_eq!(
        total(&snaps, cg.id, signal::PROCESS_EXITS, Some("error")),
        0.0
    );
    println!("10,001 exits in {spent:?}, all counted");
}

#[test]
fn resets_and_connect_latency_on_loopback() {
    let Some(_lock) = bpf_or_skip("resets_and_connect_latency_on_loopback") else {
        return;
    };
    let mut sensor = start(&[Probe::TcpResets, Probe::TcpConnect]);
    let cg = TestCgroup::new(sensor.cgroup_root(), "tcp");
    // A port nobody listens on: bind, note it, close.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open_port = open.local_addr().unwrap().port();
    let connect = |port: u16| {
        format!(
            "perl -MIO::Socket::INET -e 'IO::Socket::INET->new(PeerAddr => \"127.0.0.1:{port}\")'"
        )
    };
    for _ in 0..3 {
        cg.run(&connect(closed));
        cg.run(&connect(open_port));
    }
    let snaps = read_until(&mut sensor, Duration::from_secs(5), |s| {
        total(s, cg.id, signal::TCP_RESETS, Some("received")) >= 3.0
    });
    assert_eq!(
        total(&snaps, cg.id, signal::TCP_RESETS, Some("received")),
        3.0
    );
    let connects: u64 = snaps
        .iter()
        .filter_map(|s| s.latencies(cg.id, signal::TCP_CONNECT_LATENCY))
        .map(|h| h.count)
        .sum();
    assert_eq!(connects, 3, "three established connections");
    // The refusing side has no socket: its resets are counted under cgroup 0.
    assert!(total(&snaps, 0, signal::TCP_RESETS, Some("sent")) >= 3.0);
}

#[test]
fn a_busy_child_has_cpu_time_and_run_queue_latency() {
    let Some(_lock) = bpf_or_skip("a_busy_child_has_cpu_time_and_run_queue_latency") else {
        return;
    };
    let mut sensor = start(&[Probe::RunQueue, Probe::CpuTime]);
    let cg = TestCgroup::new(sensor.cgroup_root(), "busy");
    let started = Instant::now();
    // Two spinners on two cores shared with others: they will queue.
    cg.run("s() { i=0; while [ $i -lt 400000 ]; do i=$((i+1)); done; }; s & s & wait");
    let wall = started.elapsed();
    let snaps = read_until(&mut sensor, Duration::from_secs(2), |_| false);
    let cpu = total(&snaps, cg.id, signal::CPU_TIME, None);
    let runq: Vec<_> = snaps
        .iter()
        .filter_map(|s| s.latencies(cg.id, signal::RUNQUEUE_LATENCY))
        .collect();
    let n: u64 = runq.iter().map(|h| h.count).sum();
    println!("busy child: {cpu:.3} s of CPU in {wall:?} wall, {n} run-queue waits");
    assert!(cpu > 0.2, "cpu time {cpu}");
    assert!(
        cpu < 2.2 * wall.as_secs_f64() + 0.1,
        "more CPU than two cores could give: {cpu}"
    );
    assert!(n >= 3, "run-queue waits {n}");
}

/// Runs `rounds` round trips of a ping-pong over two FIFOs in `cg`, both ends pinned to CPU 0:
/// each end blocks in `read` every round, so each round ends (at least) two runs of the
/// cgroup's tasks, each with the run-queue wait that preceded it.
fn ping_pong(cg: &TestCgroup, rounds: u32) {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hs-ping-pong-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (a, b) = (
        dir.join("a").display().to_string(),
        dir.join("b").display().to_string(),
    );
    let status = cg.run(&format!(
        "taskset -pc 0 $$ >/dev/null && rm -f {a} {b} && mkfifo {a} {b} || exit 1; \
         ( exec 3<{a} 4>{b}; while read -r x <&3; do echo >&4; done ) & \
         exec 4>{a} 3<{b}; i=0; \
         while [ $i -lt {rounds} ]; do echo >&4; read -r x <&3; i=$((i+1)); done; \
         exec 4>&-; wait"
    ));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "ping-pong: {status}");
}

#[test]
fn sampled_run_queue_latency_counts_one_wait_in_n() {
    let Some(_lock) = bpf_or_skip("sampled_run_queue_latency_counts_one_wait_in_n") else {
        return;
    };
    let probes = [Probe::RunQueue, Probe::CpuTime];
    let mut sensor = start(&probes);
    let cg = TestCgroup::new(sensor.cgroup_root(), "sampled");
    // Waits reach the maps at a CPU's next flush (at most 100 ms on): read for a second.
    let waits = |sensor: &mut Sensor| -> u64 {
        read_until(sensor, Duration::from_secs(1), |_| false)
            .iter()
            .filter_map(|s| s.latencies(cg.id, signal::RUNQUEUE_LATENCY))
            .map(|h| h.count)
            .sum()
    };
    ping_pong(&cg, 2000);
    let every = waits(&mut sensor);
    let mut config = SensorConfig::only(&probes);
    config.probes.insert(
        Probe::RunQueue,
        ProbeConfig {
            enabled: true,
            sample_every: 4,
        },
    );
    sensor.configure(&config).unwrap();
    ping_pong(&cg, 2000);
    // Scaled back up by the sensor: about the same count, from a quarter of the records.
    let sampled = waits(&mut sensor);
    println!("2,000 round trips: {every} waits unsampled, {sampled} sampled 1 in 4 and scaled");
    assert!(every >= 4000, "two runs a round trip at least: {every}");
    let ratio = sampled as f64 / every as f64;
    assert!(
        (0.6..1.6).contains(&ratio),
        "sampled and scaled {sampled} against {every} unsampled"
    );
}

#[test]
fn block_io_from_write_and_fsync() {
    let Some(_lock) = bpf_or_skip("block_io_from_write_and_fsync") else {
        return;
    };
    let mut sensor = start(&[Probe::BlockIo]);
    let cg = TestCgroup::new(sensor.cgroup_root(), "block");
    let file =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hs-block-{}", std::process::id()));
    let status = cg.run(&format!(
        "dd if=/dev/urandom of={} bs=64k count=64 conv=fsync 2>/dev/null",
        file.display()
    ));
    let _ = std::fs::remove_file(&file);
    assert!(status.success());
    let snaps = read_until(&mut sensor, Duration::from_secs(3), |s| {
        s.iter()
            .any(|s| s.latencies(cg.id, signal::BLOCK_IO_LATENCY).is_some())
    });
    let mine: u64 = snaps
        .iter()
        .filter_map(|s| s.latencies(cg.id, signal::BLOCK_IO_LATENCY))
        .map(|h| h.count)
        .sum();
    let elsewhere: Vec<String> = snaps
        .iter()
        .flat_map(|s| &s.readings)
        .filter(|r| r.cgroup_id != cg.id)
        .map(|r| r.owner.to_string())
        .collect();
    println!("block I/O: {mine} requests from the test cgroup; also seen from {elsewhere:?}");
    assert!(
        mine >= 1,
        "no block I/O attributed to the writer's cgroup (others: {elsewhere:?})"
    );
}

#[test]
fn oom_kill_in_a_small_memory_cgroup() {
    let Some(_lock) = bpf_or_skip("oom_kill_in_a_small_memory_cgroup") else {
        return;
    };
    let mut sensor = start(&[Probe::OomKills, Probe::Exits]);
    let cg = TestCgroup::new(sensor.cgroup_root(), "oom");
    // Memory limits live wherever the memory controller is: v2 on pure-v2 machines, v1 on
    // hybrid ones like these VMs. The victim is attributed by its v2 cgroup either way.
    let v2_memory = std::fs::read_to_string(sensor.cgroup_root().join("cgroup.controllers"))
        .unwrap_or_default()
        .contains("memory");
    let (limit_dir, limit_file) = if v2_memory {
        let _ = std::fs::write(
            sensor.cgroup_root().join("cgroup.subtree_control"),
            "+memory",
        );
        (cg.dir.clone(), "memory.max")
    } else {
        let d = PathBuf::from(format!(
            "/sys/fs/cgroup/memory/homeostat-test-oom-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        (d, "memory.limit_in_bytes")
    };
    std::fs::write(limit_dir.join(limit_file), "33554432").unwrap();
    let join_v1 = if v2_memory {
        String::new()
    } else {
        format!("echo $$ > {}/cgroup.procs && ", limit_dir.display())
    };
    let status = cg.run(&format!(
        "{join_v1}exec perl -e '$x = \"a\" x (512 * 1024 * 1024)'"
    ));
    if !v2_memory {
        for _ in 0..50 {
            if std::fs::remove_dir(&limit_dir).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(9),
        "the hog was OOM-killed: {status:?}"
    );
    let snaps = read_until(&mut sensor, Duration::from_secs(3), |s| {
        total(s, cg.id, signal::OOM_KILLS, None) >= 1.0
    });
    assert_eq!(total(&snaps, cg.id, signal::OOM_KILLS, None), 1.0);
    let victims: Vec<_> = snaps
        .iter()
        .flat_map(|s| &s.events)
        .filter(|e| e.kind == EventKind::OomKilled)
        .collect();
    assert_eq!(victims.len(), 1, "{victims:?}");
    assert_eq!(
        (victims[0].cgroup_id, victims[0].comm.as_str()),
        (cg.id, "perl")
    );
}

/// Runs a command, panicking with its output if it fails.
fn sh(cmd: &str) {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two network namespaces joined by a veth pair; removed on drop.
struct LossyLink {
    a: String,
    b: String,
}

impl Drop for LossyLink {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.a]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.b]).status();
    }
}

#[test]
fn retransmits_on_a_lossy_veth_pair() {
    let Some(_lock) = bpf_or_skip("retransmits_on_a_lossy_veth_pair") else {
        return;
    };
    if Command::new("nft").arg("--version").output().is_err() {
        eprintln!(
            "SKIP retransmits_on_a_lossy_veth_pair: nft not installed (apt-get install -y nftables)"
        );
        return;
    }
    let pid = std::process::id();
    let link = LossyLink {
        a: format!("hs-a-{pid}"),
        b: format!("hs-b-{pid}"),
    };
    let (a, b) = (&link.a, &link.b);
    sh(&format!("ip netns add {a} && ip netns add {b}"));
    sh(&format!(
        "ip link add hsva{pid} netns {a} type veth peer name hsvb{pid} netns {b}"
    ));
    sh(&format!(
        "ip -n {a} addr add 10.203.0.1/24 dev hsva{pid} && ip -n {a} link set hsva{pid} up && ip -n {a} link set lo up"
    ));
    sh(&format!(
        "ip -n {b} addr add 10.203.0.2/24 dev hsvb{pid} && ip -n {b} link set hsvb{pid} up && ip -n {b} link set lo up"
    ));
    sh(&format!(
        "ip netns exec {b} nft 'add table inet hs; add chain inet hs in {{ type filter hook input priority 0; }}; add rule inet hs in numgen random mod 100 < 30 drop'"
    ));
    let mut server = Command::new("ip")
        .args(["netns", "exec", b, "perl", "-MIO::Socket::INET", "-e"])
        .arg("alarm 30; $s = IO::Socket::INET->new(LocalAddr => '10.203.0.2:5000', Listen => 5, ReuseAddr => 1) or die; $c = $s->accept; 1 while sysread($c, $b, 65536)")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    let mut sensor = start(&[Probe::TcpRetransmits]);
    let cg = TestCgroup::new(sensor.cgroup_root(), "retrans");
    let status = cg.run(&format!(
        "exec ip netns exec {a} perl -MIO::Socket::INET -e '$SIG{{PIPE}} = \"IGNORE\"; alarm 30; $c = IO::Socket::INET->new(PeerAddr => \"10.203.0.2:5000\") or die; print $c \"x\" x 65536 for 1 .. 32; close $c'"
    ));
    let _ = server.kill();
    let _ = server.wait();
    // Only the retransmits matter; a connection reset on a link this bad is no failure.
    println!("client: {status:?}");
    let snaps = read_until(&mut sensor, Duration::from_secs(3), |s| {
        total(s, cg.id, signal::TCP_RETRANSMITS, None) >= 1.0
    });
    let n = total(&snaps, cg.id, signal::TCP_RETRANSMITS, None);
    println!("2 MiB over a link dropping 30%: {n} retransmits attributed to the sender");
    assert!(n >= 1.0);
}

fn bpftool_hs_programs() -> Option<Vec<String>> {
    let out = Command::new("bpftool")
        .args(["prog", "show"])
        .output()
        .ok()?;
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "name").nth(1))
            .filter(|n| n.starts_with("hs_"))
            .map(str::to_owned)
            .collect(),
    )
}

/// The kernel frees a program shortly after its last reference goes (RCU), so an unloaded
/// program can linger in the listing for a while (a tracing program's trampoline waits for
/// an RCU-tasks grace period, seconds on a busy machine): wait for it to go.
fn hs_programs_once_settled() -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = bpftool_hs_programs().unwrap_or_default();
        if now.is_empty() || Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bpftool_sees_the_programs_while_running_and_none_after() {
    let Some(_lock) = bpf_or_skip("bpftool_sees_the_programs_while_running_and_none_after") else {
        return;
    };
    if bpftool_hs_programs().is_none() {
        eprintln!("SKIP bpftool check: bpftool not installed (apt-get install -y bpftool)");
        return;
    }
    let before = hs_programs_once_settled();
    assert!(
        before.is_empty(),
        "hs_ programs left over from elsewhere: {before:?}"
    );
    let sensor = Sensor::start(&SensorConfig::default()).unwrap();
    let mut running = bpftool_hs_programs().unwrap();
    running.sort();
    let mut expected: Vec<String> = sensor.programs().iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(running, expected);
    assert_eq!(running.len(), 9, "one program per tracepoint");
    drop(sensor);
    assert_eq!(hs_programs_once_settled(), Vec::<String>::new());
}
