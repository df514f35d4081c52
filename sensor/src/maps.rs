//! The kernel maps' value layouts (mirroring `sensor-ebpf/include/hs_common.h` and the
//! family files) and the reads that sum their per-CPU values.

use std::collections::HashMap;

use aya::Ebpf;
use aya::maps::{Array, MapData, PerCpuHashMap};

use crate::error::SensorError;
use crate::histogram::{Log2Histogram, SLOTS};
use crate::probes::{Family, Probe};

/// `struct hs_probe_cfg`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ProbeCfg {
    pub enabled: u32,
    pub sample_every: u32,
}

/// `struct hs_hist`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hist {
    pub count: u64,
    pub sum_ns: u64,
    pub slots: [u64; SLOTS],
}

/// `struct hs_exit_counts`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct ExitCounts {
    pub ok: u64,
    pub error: u64,
    pub signal: u64,
}

/// `struct hs_tcp_counts`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TcpCounts {
    pub retransmits: u64,
    pub resets_sent: u64,
    pub resets_received: u64,
}

// SAFETY: plain `#[repr(C)]` structs of integers with no padding, valid for any bit pattern,
// exactly as the C side lays them out.
unsafe impl aya::Pod for ProbeCfg {}
// SAFETY: as above.
unsafe impl aya::Pod for Hist {}
// SAFETY: as above.
unsafe impl aya::Pod for ExitCounts {}
// SAFETY: as above.
unsafe impl aya::Pod for TcpCounts {}

impl From<Hist> for Log2Histogram {
    fn from(h: Hist) -> Self {
        Log2Histogram {
            count: h.count,
            sum_ns: h.sum_ns,
            slots: h.slots,
        }
    }
}

/// A value that per-CPU copies of add up into.
pub(crate) trait Summable: aya::Pod + Default {
    fn add(&mut self, other: &Self);
}

impl Summable for u64 {
    fn add(&mut self, other: &Self) {
        *self = self.wrapping_add(*other);
    }
}

impl Summable for ExitCounts {
    fn add(&mut self, o: &Self) {
        self.ok += o.ok;
        self.error += o.error;
        self.signal += o.signal;
    }
}

impl Summable for TcpCounts {
    fn add(&mut self, o: &Self) {
        self.retransmits += o.retransmits;
        self.resets_sent += o.resets_sent;
        self.resets_received += o.resets_received;
    }
}

impl Default for Hist {
    fn default() -> Self {
        Hist {
            count: 0,
            sum_ns: 0,
            slots: [0; SLOTS],
        }
    }
}

impl Summable for Hist {
    fn add(&mut self, o: &Self) {
        self.count += o.count;
        self.sum_ns += o.sum_ns;
        for (a, b) in self.slots.iter_mut().zip(o.slots.iter()) {
            *a += b;
        }
    }
}

fn map_error(family: Family, map: &'static str, reason: impl ToString) -> SensorError {
    SensorError::Map {
        family: family.name(),
        map,
        reason: reason.to_string(),
    }
}

/// Every cgroup's value in a per-CPU hash map keyed by cgroup id, summed over CPUs.
pub(crate) fn read_per_cgroup<V: Summable>(
    ebpf: &Ebpf,
    family: Family,
    name: &'static str,
) -> Result<HashMap<u64, V>, SensorError> {
    let map = ebpf
        .map(name)
        .ok_or_else(|| map_error(family, name, "not in the object"))?;
    let map: PerCpuHashMap<&MapData, u64, V> =
        PerCpuHashMap::try_from(map).map_err(|e| map_error(family, name, e))?;
    let mut out = HashMap::new();
    for entry in map.iter() {
        // An entry deleted between the key walk and the lookup is simply gone.
        let Ok((cgroup, per_cpu)) = entry else {
            continue;
        };
        let mut total = V::default();
        for v in per_cpu.iter() {
            total.add(v);
        }
        out.insert(cgroup, total);
    }
    Ok(out)
}

/// Removes cgroups that no longer exist from a per-cgroup map, so it never fills up with the
/// dead pods of a busy node.
pub(crate) fn forget_cgroups<V: aya::Pod>(
    ebpf: &mut Ebpf,
    family: Family,
    name: &'static str,
    cgroups: &[u64],
) -> Result<(), SensorError> {
    let map = ebpf
        .map_mut(name)
        .ok_or_else(|| map_error(family, name, "not in the object"))?;
    let mut map: PerCpuHashMap<&mut MapData, u64, V> =
        PerCpuHashMap::try_from(map).map_err(|e| map_error(family, name, e))?;
    for id in cgroups {
        let _ = map.remove(id);
    }
    Ok(())
}

/// The sum of a one-slot per-CPU array of u64 (`hs_rb_drops`).
pub(crate) fn read_drops(ebpf: &Ebpf, family: Family) -> Result<u64, SensorError> {
    const NAME: &str = "hs_rb_drops";
    let map = ebpf
        .map(NAME)
        .ok_or_else(|| map_error(family, NAME, "not in the object"))?;
    let map: aya::maps::PerCpuArray<&MapData, u64> =
        aya::maps::PerCpuArray::try_from(map).map_err(|e| map_error(family, NAME, e))?;
    let values = map.get(&0, 0).map_err(|e| map_error(family, NAME, e))?;
    Ok(values.iter().sum())
}

/// Writes every probe's switch and sampling rate into the object's `hs_config` table: a
/// global, so the one-element map of its data section `.data.hs_config`; in builds before
/// 2026-11-26 (which `benches/switch_cost.rs` still loads) an array map `hs_config`.
pub(crate) fn write_config(
    ebpf: &mut Ebpf,
    family: Family,
    config: &crate::probes::SensorConfig,
) -> Result<(), SensorError> {
    const NAME: &str = ".data.hs_config";
    const OLD_NAME: &str = "hs_config";
    let table = Probe::ALL.map(|probe| {
        let c = config.probe(probe);
        ProbeCfg {
            enabled: u32::from(c.enabled),
            sample_every: c.sample_every.max(1),
        }
    });
    if ebpf.map(NAME).is_none()
        && let Some(map) = ebpf.map_mut(OLD_NAME)
    {
        let mut array: Array<&mut MapData, ProbeCfg> =
            Array::try_from(map).map_err(|e| map_error(family, OLD_NAME, e))?;
        for (i, value) in table.into_iter().enumerate() {
            array
                .set(i as u32, value, 0)
                .map_err(|e| map_error(family, OLD_NAME, e))?;
        }
        return Ok(());
    }
    let map = ebpf
        .map_mut(NAME)
        .ok_or_else(|| map_error(family, NAME, "not in the object"))?;
    let mut array: Array<&mut MapData, [ProbeCfg; Probe::ALL.len()]> =
        Array::try_from(map).map_err(|e| map_error(family, NAME, e))?;
    array
        .set(0, table, 0)
        .map_err(|e| map_error(family, NAME, e))
}

/// Reads a native-endian u64 at `at` from a ring-buffer record.
fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn comm_at(bytes: &[u8], at: usize) -> Option<String> {
    let raw = bytes.get(at..at + 16)?;
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    Some(String::from_utf8_lossy(&raw[..end]).into_owned())
}

/// A ring-buffer record of `hs_exit_events` or `hs_oom_events`; both share this layout:
/// `{ u64 cgroup_id; u64 time_ns; u32 pid; u32 exit_code_or_pad; char comm[16]; }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RawEvent {
    pub cgroup_id: u64,
    /// CLOCK_MONOTONIC, as `bpf_ktime_get_ns()` reads it.
    pub time_ns: u64,
    pub pid: u32,
    pub code: u32,
    pub comm: String,
}

impl RawEvent {
    /// Parses a record; `None` when it is too short (a layout mismatch).
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        Some(RawEvent {
            cgroup_id: u64_at(bytes, 0)?,
            time_ns: u64_at(bytes, 8)?,
            pid: u32_at(bytes, 16)?,
            code: u32_at(bytes, 20)?,
            comm: comm_at(bytes, 24)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_event_record() {
        let mut b = Vec::new();
        b.extend_from_slice(&42u64.to_ne_bytes());
        b.extend_from_slice(&7u64.to_ne_bytes());
        b.extend_from_slice(&1234u32.to_ne_bytes());
        b.extend_from_slice(&(3u32 << 8).to_ne_bytes());
        b.extend_from_slice(b"sh\0\0\0\0\0\0\0\0\0\0\0\0\0\0");
        let e = RawEvent::parse(&b).unwrap();
        assert_eq!(
            (e.cgroup_id, e.time_ns, e.pid, e.code, e.comm.as_str()),
            (42, 7, 1234, 768, "sh")
        );
        assert!(RawEvent::parse(&b[..30]).is_none());
    }

    #[test]
    fn layouts_match_the_c_structs() {
        assert_eq!(std::mem::size_of::<Hist>(), 8 * (2 + SLOTS));
        assert_eq!(std::mem::size_of::<ExitCounts>(), 24);
        assert_eq!(std::mem::size_of::<ProbeCfg>(), 8);
    }
}
