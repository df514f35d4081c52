//! What can stop the sensor, each saying what is missing and how to fix it.

use std::path::PathBuf;

/// Why the sensor cannot run, or could not read what it loaded.
#[derive(Debug, thiserror::Error)]
pub enum SensorError {
    /// Loading BPF programs needs root, CAP_SYS_ADMIN, or CAP_BPF with CAP_PERFMON.
    #[error(
        "not running as root (effective uid {euid}): loading eBPF tracing programs needs root, \
         CAP_SYS_ADMIN, or CAP_BPF with CAP_PERFMON; run with sudo or grant the capabilities"
    )]
    NotRoot {
        /// The effective uid found.
        euid: u32,
    },
    /// CO-RE relocation and tp_btf programs need the kernel's BTF.
    #[error(
        "no kernel BTF at {path}: the probes are CO-RE and need a kernel built with \
         CONFIG_DEBUG_INFO_BTF=y (Debian, Ubuntu, Fedora and cloud kernels have it)"
    )]
    NoBtf {
        /// Where BTF was looked for.
        path: PathBuf,
    },
    /// BPF ring buffers and tp_btf need a newer kernel than the one running.
    #[error(
        "kernel {found} is too old: the sensor needs Linux {needed} or later (BPF ring buffer, tp_btf)"
    )]
    KernelTooOld {
        /// The running kernel's release.
        found: String,
        /// The oldest release that works.
        needed: &'static str,
    },
    /// No cgroup v2 hierarchy is mounted, so cgroup ids cannot be attributed.
    #[error(
        "no cgroup v2 hierarchy in /proc/self/mountinfo: mount one \
         (mount -t cgroup2 none /sys/fs/cgroup/unified) or boot with systemd's unified or hybrid cgroups"
    )]
    NoCgroup2,
    /// A pseudo file system the sensor needs is not mounted and could not be mounted.
    #[error(
        "{fs} is not mounted at {path} and mounting it failed ({reason}); run: mount -t {fs} {fs} {path}"
    )]
    NotMounted {
        /// File system type, e.g. `tracefs`.
        fs: &'static str,
        /// Where it belongs.
        path: PathBuf,
        /// Why mounting failed.
        reason: String,
    },
    /// Every probe family failed to load; the first error says why.
    #[error("no probe family could be loaded; first failure: {0}")]
    NothingLoaded(Box<SensorError>),
    /// The kernel refused a program or its object (verifier, missing tracepoint, CO-RE).
    #[error("loading probe family {family}: {source}")]
    Load {
        /// The family (`sched`, `exit`, …).
        family: &'static str,
        /// aya's error.
        #[source]
        source: aya::EbpfError,
    },
    /// A program could not be loaded or attached.
    #[error("program {program} of family {family}: {source}")]
    Program {
        /// The family.
        family: &'static str,
        /// The program name (`hs_…`).
        program: &'static str,
        /// aya's error.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// A map is missing or has the wrong shape (the C and Rust layouts disagree).
    #[error("map {map} of family {family}: {reason}")]
    Map {
        /// The family.
        family: &'static str,
        /// The map name (`hs_…`).
        map: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// Reading the kernel's BTF failed.
    #[error("reading kernel BTF: {0}")]
    Btf(#[from] aya::BtfError),
    /// A file under /proc or /sys could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}
