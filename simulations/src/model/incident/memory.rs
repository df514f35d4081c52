//! A memory leak: a container's working set grows linearly from its start (or from the leak's
//! start, if later) until it reaches the container's memory limit, where the kernel's OOM
//! killer ends it. The restarted container begins again at the baseline.

use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;

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
