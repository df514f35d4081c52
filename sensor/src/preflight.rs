//! Can BPF run here? Checks before loading anything, so the failure names what is missing
//! instead of surfacing as an EPERM from deep inside the loader.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::SensorError;

/// Oldest kernel with everything the probes use (BPF ring buffer: 5.8).
pub const MIN_KERNEL: (u32, u32) = (5, 8);
const MIN_KERNEL_TEXT: &str = "5.8";
/// Where the kernel publishes its own BTF.
pub const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

/// Why BPF cannot run on this machine, or `None` if it can; for tests that must skip.
pub fn unavailable() -> Option<SensorError> {
    check().err()
}

/// Root (or the BPF capabilities), kernel BTF and kernel version: what loading needs.
pub fn check() -> Result<(), SensorError> {
    let status = read("/proc/self/status")?;
    let euid = parse_euid(&status).unwrap_or(u32::MAX);
    if euid != 0 && !parse_cap_eff(&status).is_some_and(may_load_bpf) {
        return Err(SensorError::NotRoot { euid });
    }
    if !Path::new(KERNEL_BTF).exists() {
        return Err(SensorError::NoBtf {
            path: PathBuf::from(KERNEL_BTF),
        });
    }
    let release = read("/proc/sys/kernel/osrelease")?;
    let release = release.trim();
    if parse_release(release).is_some_and(|v| v < MIN_KERNEL) {
        return Err(SensorError::KernelTooOld {
            found: release.to_owned(),
            needed: MIN_KERNEL_TEXT,
        });
    }
    Ok(())
}

/// Mounts tracefs and bpffs where they belong if they are missing. The probes attach by BTF
/// and need neither, but bpftool, perf and anyone debugging the sensor do; so a failure is
/// reported, not fatal.
pub fn ensure_mounts() -> Vec<SensorError> {
    let mut problems = Vec::new();
    for (fs, path, marker) in [
        ("tracefs", "/sys/kernel/tracing", "events"),
        ("bpf", "/sys/fs/bpf", ""),
    ] {
        let mounted = match std::fs::read_to_string("/proc/self/mounts") {
            Ok(m) => m.lines().any(|l| {
                let mut f = l.split_whitespace();
                let (_, mp, ty) = (f.next(), f.next(), f.next());
                mp == Some(path) && ty == Some(fs)
            }),
            Err(_) => Path::new(path).join(marker).exists(),
        };
        if mounted {
            continue;
        }
        let result = Command::new("mount").args(["-t", fs, fs, path]).output();
        match result {
            Ok(o) if o.status.success() => tracing::info!(fs, path, "mounted"),
            Ok(o) => problems.push(SensorError::NotMounted {
                fs: if fs == "bpf" { "bpf" } else { "tracefs" },
                path: PathBuf::from(path),
                reason: String::from_utf8_lossy(&o.stderr).trim().to_owned(),
            }),
            Err(e) => problems.push(SensorError::NotMounted {
                fs: if fs == "bpf" { "bpf" } else { "tracefs" },
                path: PathBuf::from(path),
                reason: e.to_string(),
            }),
        }
    }
    problems
}

fn read(path: &str) -> Result<String, SensorError> {
    std::fs::read_to_string(path).map_err(|source| SensorError::Io {
        path: PathBuf::from(path),
        source,
    })
}

/// The effective uid, from `/proc/self/status` (`Uid: real effective saved fs`).
fn parse_euid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The effective capability set, from `/proc/self/status` (`CapEff: 000001ffffffffff`).
fn parse_cap_eff(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.split_whitespace().nth(1)?, 16).ok()
}

/// CAP_SYS_ADMIN alone, or CAP_BPF with CAP_PERFMON (tracing programs need both).
fn may_load_bpf(caps: u64) -> bool {
    const SYS_ADMIN: u64 = 1 << 21;
    const PERFMON: u64 = 1 << 38;
    const BPF: u64 = 1 << 39;
    caps & SYS_ADMIN != 0 || caps & (BPF | PERFMON) == BPF | PERFMON
}

/// `6.18.44-fc-v657` → `(6, 18)`.
fn parse_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_releases_and_uids() {
        assert_eq!(parse_release("6.18.44-fc-v657"), Some((6, 18)));
        assert_eq!(parse_release("5.4.0-150-generic"), Some((5, 4)));
        assert!(parse_release("5.4.0").unwrap() < MIN_KERNEL);
        assert_eq!(parse_release("garbage"), None);
        assert_eq!(parse_euid("Name:\tx\nUid:\t1000\t0\t0\t0\n"), Some(0));
        let caps = |s: &str| parse_cap_eff(&format!("CapEff:\t{s}\n"));
        assert!(caps("000001ffffffffff").is_some_and(may_load_bpf));
        assert!(caps("000000c000000000").is_some_and(may_load_bpf));
        assert!(!caps("0000004000000000").is_some_and(may_load_bpf));
        assert!(!caps("0000000000000000").is_some_and(may_load_bpf));
    }
}
