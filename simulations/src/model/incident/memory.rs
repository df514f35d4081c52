//! A memory leak: a container's working set grows linearly from its start (or from the leak's
//! start, if later) until it reaches the container's memory limit, where the kernel's OOM
//! killer ends it. The restarted container begins again at the baseline. Leaking or not, a
//! running container's working set wanders a little around its level ([`wander`]).

use std::time::Duration;

use homeostat_core::Timestamp;

/// Bytes in a MiB.
pub const MIB: f64 = 1024.0 * 1024.0;

/// Working set of a container that does not leak, MiB.
pub const DEFAULT_WORKING_SET_MIB: f64 = 128.0;

/// A leak's parameters, as a scenario gives them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Leak {
    /// Growth, MiB per minute.
    pub rate_mib_per_min: f64,
    /// The container's memory limit, MiB: reaching it is an OOM kill.
    pub limit_mib: f64,
    /// Working set right after the container starts, MiB.
    pub baseline_mib: f64,
}

impl Leak {
    /// Working set in MiB after growing for `growing` (capped at the limit).
    pub fn working_set_mib(&self, growing: Duration) -> f64 {
        (self.baseline_mib + self.rate_mib_per_min * growing.as_secs_f64() / 60.0)
            .min(self.limit_mib)
    }

    /// How long a container grows from the baseline before it is OOM-killed.
    pub fn time_to_oom(&self) -> Duration {
        Duration::from_secs_f64(
            ((self.limit_mib - self.baseline_mib) / self.rate_mib_per_min * 60.0).max(0.0),
        )
    }
}

/// How far a steady container's working set strays from its level at a sample, as a
/// fraction of it (one standard deviation).
///
/// A working set is never flat: allocations come and go between samples, the allocator keeps
/// and returns pages, page cache is charged and reclaimed. A quiet service's sample-to-sample
/// change is a few tenths of a per cent of its working set (0.3 MiB on 128 MiB at 0.25 %); a
/// garbage-collected heap saws far more, which only makes a leak's onset take longer to tell
/// from it (docs/detection.md, "Memory leaks"). Without any wander, a detector that calls two
/// rising samples a leak would look perfect here and prove nothing.
pub const WANDER: f64 = 0.0025;

/// The factor, about 1 ± [`WANDER`] (Gaussian, independent from sample to sample and from
/// pod to pod), by which `pod`'s working set differs from its level at `at`. A hash of the
/// two, so it is the same in every run and draws nothing from the scenario's random stream:
/// every other figure of a scenario is what it was without it.
pub fn wander(pod: &str, at: Timestamp) -> f64 {
    // FNV-1a of the name, then SplitMix64's finaliser for two independent uniforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in pod.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let first = split_mix(h ^ at.as_nanos() as u64);
    let second = split_mix(first);
    // Box–Muller: u1 in (0, 1], u2 in [0, 1).
    let unit = |x: u64| (x >> 11) as f64 / (1u64 << 53) as f64;
    let (u1, u2) = (1.0 - unit(first), unit(second));
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    1.0 + WANDER * z
}

/// SplitMix64's output function: nearby inputs give unrelated outputs.
fn split_mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wander_is_a_quarter_per_cent_independent_from_step_to_step_and_pod_to_pod() {
        let steps = 20_000;
        let at = |i: i64| Timestamp::from_secs(1_800_000_000 + 15 * i);
        let a: Vec<f64> = (0..steps)
            .map(|i| wander("cart-7f9c-00001", at(i)) - 1.0)
            .collect();
        let b: Vec<f64> = (0..steps)
            .map(|i| wander("cart-7f9c-00002", at(i)) - 1.0)
            .collect();
        let n = steps as f64;
        let mean = a.iter().sum::<f64>() / n;
        let sd = (a.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        // The sample's own error: 0.0025 / sqrt(20,000) = 1.8e-5 for the mean, 0.5 % for sd.
        assert!(mean.abs() < 1e-4, "mean {mean}");
        assert!((sd / WANDER - 1.0).abs() < 0.03, "sd {sd}");
        let correlation = |x: &[f64], y: &[f64]| {
            x.iter().zip(y).map(|(p, q)| p * q).sum::<f64>() / (n * WANDER * WANDER)
        };
        // Independent: |r| under 4 / sqrt(n) = 0.028.
        let lag = correlation(&a[1..], &a[..steps as usize - 1]);
        let pods = correlation(&a, &b);
        assert!(
            lag.abs() < 0.03 && pods.abs() < 0.03,
            "lag {lag}, pods {pods}"
        );
        let beyond = a.iter().filter(|x| x.abs() > 3.0 * WANDER).count();
        // Gaussian tails: 0.27 % beyond three sigmas, 54 expected.
        assert!((25..=90).contains(&beyond), "{beyond} beyond 3 sigmas");
    }

    #[test]
    fn the_working_set_reaches_the_limit_when_rate_and_limit_say() {
        let leak = Leak {
            rate_mib_per_min: 8.0,
            limit_mib: 512.0,
            baseline_mib: 128.0,
        };
        assert_eq!(leak.time_to_oom(), Duration::from_secs(48 * 60));
        assert_eq!(leak.working_set_mib(Duration::from_secs(30 * 60)), 368.0);
        assert_eq!(leak.working_set_mib(Duration::from_secs(3600)), 512.0);
    }
}
