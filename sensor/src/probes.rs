//! The probe catalogue: which kernel programs exist, what they measure, where they attach,
//! and how each is switched on and sampled (the `hs_config` map).

use std::collections::BTreeMap;

/// One measurement the kernel side makes; the index is its slot in `hs_config`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Probe {
    /// Run-queue latency, runnable (woken, new or preempted) to switch-in.
    RunQueue,
    /// CPU time, switch-in to switch-out.
    CpuTime,
    /// Process exits by kind, and crash records.
    Exits,
    /// OOM kills and victim records.
    OomKills,
    /// Retransmitted TCP segments.
    TcpRetransmits,
    /// TCP resets sent and received.
    TcpResets,
    /// TCP connect latency, SYN_SENT to ESTABLISHED.
    TcpConnect,
    /// Block I/O latency, issue to completion.
    BlockIo,
}

impl Probe {
    /// Every probe, in `hs_config` order.
    pub const ALL: [Probe; 8] = [
        Probe::RunQueue,
        Probe::CpuTime,
        Probe::Exits,
        Probe::OomKills,
        Probe::TcpRetransmits,
        Probe::TcpResets,
        Probe::TcpConnect,
        Probe::BlockIo,
    ];

    /// Slot in `hs_config` (`enum hs_probe` in `hs_common.h`).
    pub fn index(self) -> u32 {
        self as u32
    }

    /// Short name for the command line and logs.
    pub fn name(self) -> &'static str {
        match self {
            Probe::RunQueue => "runqueue",
            Probe::CpuTime => "cpu",
            Probe::Exits => "exits",
            Probe::OomKills => "oom",
            Probe::TcpRetransmits => "tcp-retransmits",
            Probe::TcpResets => "tcp-resets",
            Probe::TcpConnect => "tcp-connect",
            Probe::BlockIo => "block-io",
        }
    }

    /// The probe with this [`Probe::name`].
    pub fn from_name(name: &str) -> Option<Probe> {
        Probe::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether the probe measures latencies, so that sampling applies to it. Counters always
    /// count every event: a sampled count would be an estimate passed off as a fact.
    pub fn is_latency(self) -> bool {
        matches!(self, Probe::RunQueue | Probe::TcpConnect | Probe::BlockIo)
    }

    /// The family (BPF object) that implements the probe.
    pub fn family(self) -> Family {
        match self {
            Probe::RunQueue | Probe::CpuTime => Family::Sched,
            Probe::Exits => Family::Exit,
            Probe::OomKills => Family::Oom,
            Probe::TcpRetransmits | Probe::TcpResets | Probe::TcpConnect => Family::Tcp,
            Probe::BlockIo => Family::Block,
        }
    }
}

/// Switch and sampling rate of one probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeConfig {
    /// Whether the probe records anything.
    pub enabled: bool,
    /// For latency probes, measure 1 event in this many (1 = all). Ignored by counters.
    pub sample_every: u32,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            enabled: true,
            sample_every: 1,
        }
    }
}

/// What the sensor loads and how each probe is configured; every probe on, unsampled, by default.
#[derive(Clone, Debug, Default)]
pub struct SensorConfig {
    /// Per-probe settings; a probe not listed gets [`ProbeConfig::default`].
    pub probes: BTreeMap<Probe, ProbeConfig>,
}

impl SensorConfig {
    /// The settings of one probe.
    pub fn probe(&self, probe: Probe) -> ProbeConfig {
        self.probes.get(&probe).copied().unwrap_or_default()
    }

    /// Only these probes on (the others off): their families alone are loaded.
    pub fn only(probes: &[Probe]) -> Self {
        let probes = Probe::ALL
            .iter()
            .map(|&p| {
                let enabled = probes.contains(&p);
                (
                    p,
                    ProbeConfig {
                        enabled,
                        sample_every: 1,
                    },
                )
            })
            .collect();
        SensorConfig { probes }
    }

    /// The families with at least one probe on.
    pub fn families(&self) -> Vec<Family> {
        let mut families: Vec<Family> = Probe::ALL
            .iter()
            .filter(|&&p| self.probe(p).enabled)
            .map(|p| p.family())
            .collect();
        families.dedup();
        families
    }
}

/// A BPF object: one C file in `sensor-ebpf/src`, loaded (or failing) as a unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// `sched.bpf.c`: run-queue latency and CPU time.
    Sched,
    /// `exit.bpf.c`: process exits.
    Exit,
    /// `oom.bpf.c`: OOM kills.
    Oom,
    /// `tcp.bpf.c`: retransmits, resets, connect latency.
    Tcp,
    /// `block.bpf.c`: block I/O latency.
    Block,
}

impl Family {
    /// The file stem of the C source and object.
    pub fn name(self) -> &'static str {
        match self {
            Family::Sched => "sched",
            Family::Exit => "exit",
            Family::Oom => "oom",
            Family::Tcp => "tcp",
            Family::Block => "block",
        }
    }

    /// The compiled object, embedded at build time.
    pub fn object(self) -> &'static [u8] {
        match self {
            Family::Sched => {
                aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sched.bpf.o"))
            }
            Family::Exit => aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/exit.bpf.o")),
            Family::Oom => aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/oom.bpf.o")),
            Family::Tcp => aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/tcp.bpf.o")),
            Family::Block => {
                aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/block.bpf.o"))
            }
        }
    }

    /// Its programs and the tp_btf tracepoint each attaches to. Names start with `hs_` so
    /// `bpftool prog show` tells them apart (the kernel keeps 15 characters).
    pub fn programs(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Family::Sched => &[("hs_sched_switch", "sched_switch")],
            Family::Exit => &[("hs_exit", "sched_process_exit")],
            Family::Oom => &[("hs_oom_victim", "mark_victim")],
            Family::Tcp => &[
                ("hs_tcp_retrans", "tcp_retransmit_skb"),
                ("hs_tcp_send_rst", "tcp_send_reset"),
                ("hs_tcp_recv_rst", "tcp_receive_reset"),
                ("hs_tcp_state", "inet_sock_set_state"),
            ],
            Family::Block => &[
                ("hs_bio_issue", "block_rq_issue"),
                ("hs_bio_done", "block_rq_complete"),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_follow_the_c_enum() {
        for (i, p) in Probe::ALL.iter().enumerate() {
            assert_eq!(p.index() as usize, i);
        }
    }

    #[test]
    fn only_loads_the_families_asked_for() {
        let c = SensorConfig::only(&[Probe::Exits, Probe::TcpResets]);
        assert_eq!(c.families(), vec![Family::Exit, Family::Tcp]);
        assert_eq!(SensorConfig::default().families().len(), 5);
    }

    #[test]
    fn program_names_fit_the_kernel() {
        for f in [
            Family::Sched,
            Family::Exit,
            Family::Oom,
            Family::Tcp,
            Family::Block,
        ] {
            for (name, _) in f.programs() {
                assert!(name.starts_with("hs_") && name.len() <= 15, "{name}");
            }
        }
    }
}
