//! Log2 latency histograms as the kernel keeps them, and the statistics drawn from them.

/// Number of slots: slot `i` counts latencies in `[2^i, 2^(i+1))` ns, the last one all above.
pub const SLOTS: usize = 36;

/// A latency histogram with power-of-two nanosecond buckets, plus count and sum for the mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Log2Histogram {
    /// Number of latencies recorded.
    pub count: u64,
    /// Their sum, ns.
    pub sum_ns: u64,
    /// Counts per bucket.
    pub slots: [u64; SLOTS],
}

impl Default for Log2Histogram {
    fn default() -> Self {
        Log2Histogram {
            count: 0,
            sum_ns: 0,
            slots: [0; SLOTS],
        }
    }
}

impl Log2Histogram {
    /// What was added since `earlier` (counters only grow; a reset reads as a fresh start).
    pub fn since(&self, earlier: &Log2Histogram) -> Log2Histogram {
        if self.count < earlier.count {
            return *self;
        }
        let mut d = Log2Histogram {
            count: self.count - earlier.count,
            sum_ns: self.sum_ns.saturating_sub(earlier.sum_ns),
            slots: [0; SLOTS],
        };
        for (i, s) in d.slots.iter_mut().enumerate() {
            *s = self.slots[i].saturating_sub(earlier.slots[i]);
        }
        d
    }

    /// An estimate of all events from 1-in-`n` sampled ones: every count times `n`
    /// (quantiles and the mean are unchanged; rates come out right).
    pub fn scaled(&self, n: u32) -> Log2Histogram {
        let n = u64::from(n.max(1));
        let mut h = *self;
        h.count = h.count.saturating_mul(n);
        h.sum_ns = h.sum_ns.saturating_mul(n);
        for s in &mut h.slots {
            *s = s.saturating_mul(n);
        }
        h
    }

    /// Mean latency, seconds; `None` when empty.
    pub fn mean_seconds(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_ns as f64 / self.count as f64 / 1e9)
    }

    /// The `q` quantile (0..=1), seconds, interpolated linearly inside its bucket; `None` when
    /// empty. The error is at most the bucket's width: a factor of two, enough to tell 50 µs
    /// from 5 ms.
    pub fn quantile_seconds(&self, q: f64) -> Option<f64> {
        let total: u64 = self.slots.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, &n) in self.slots.iter().enumerate() {
            if n == 0 {
                continue;
            }
            if (below + n) as f64 >= rank {
                let lo = if i == 0 { 0.0 } else { (1u64 << i) as f64 };
                let hi = (1u64 << (i + 1)) as f64;
                let within = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
                return Some((lo + within * (hi - lo)) / 1e9);
            }
            below += n;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(values_ns: &[u64]) -> Log2Histogram {
        let mut h = Log2Histogram::default();
        for &v in values_ns {
            let slot = (63 - v.max(1).leading_zeros() as usize).min(SLOTS - 1);
            h.slots[slot] += 1;
            h.count += 1;
            h.sum_ns += v;
        }
        h
    }

    /// The slot the kernel side gives a latency: `hs_slot()` of `hs_common.h`, a de Bruijn
    /// multiply and table taken from the header itself.
    fn kernel_slot(header: &str, v: u64) -> usize {
        let after = |marker: &str| {
            let at = header.find(marker).expect(marker) + marker.len();
            &header[at..]
        };
        let table: Vec<usize> = after("hs_log2_table[64] = {")
            .split("};")
            .next()
            .unwrap()
            .split(',')
            .filter_map(|n| n.trim().parse().ok())
            .collect();
        assert_eq!(table.len(), 64);
        let hex: String = after("(v * 0x")
            .chars()
            .take_while(|c| c.is_ascii_hexdigit())
            .collect();
        let debruijn = u64::from_str_radix(&hex, 16).unwrap();
        let mut smeared = v;
        for shift in [1, 2, 4, 8, 16, 32] {
            smeared |= smeared >> shift;
        }
        table[(smeared.wrapping_mul(debruijn) >> 58) as usize].min(SLOTS - 1)
    }

    #[test]
    fn the_kernel_buckets_latencies_as_this_side_reads_them() {
        let header = include_str!("../../sensor-ebpf/include/hs_common.h");
        let mut values = vec![0, 1, u64::MAX];
        for k in 0..64 {
            let p = 1u64 << k;
            values.extend([p - 1, p, p + 1, p | (p >> 1)]);
        }
        // And a spread of others (a 64-bit LCG).
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..10_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            values.push(x >> (x % 64));
        }
        for v in values {
            let here = (63 - v.max(1).leading_zeros() as usize).min(SLOTS - 1);
            assert_eq!(kernel_slot(header, v), here, "latency {v} ns");
        }
    }

    #[test]
    fn quantiles_land_in_the_right_bucket() {
        // 99 latencies of ~10 µs and one of ~10 ms.
        let mut v = vec![10_000; 99];
        v.push(10_000_000);
        let h = with(&v);
        let p50 = h.quantile_seconds(0.5).unwrap();
        assert!((8.192e-6..16.384e-6).contains(&p50), "{p50}");
        let max = h.quantile_seconds(1.0).unwrap();
        assert!((8.388e-3..16.78e-3).contains(&max), "{max}");
        assert!((h.mean_seconds().unwrap() - 0.0001099).abs() < 1e-6);
    }

    #[test]
    fn scaling_keeps_the_shape() {
        let h = with(&[1000, 2000, 1_000_000]);
        let s = h.scaled(10);
        assert_eq!(s.count, 30);
        assert_eq!(s.quantile_seconds(0.5), h.quantile_seconds(0.5));
        assert_eq!(s.mean_seconds(), h.mean_seconds());
    }

    #[test]
    fn empty_has_no_statistics() {
        let h = Log2Histogram::default();
        assert_eq!(h.quantile_seconds(0.5), None);
        assert_eq!(h.mean_seconds(), None);
    }

    #[test]
    fn since_subtracts_bucketwise() {
        let a = with(&[100, 1000]);
        let b = with(&[100, 1000, 1000, 5_000_000]);
        let d = b.since(&a);
        assert_eq!(d.count, 2);
        assert_eq!(d, with(&[1000, 5_000_000]));
        // A map that was reset (restarted sensor) is a fresh start, not a negative count.
        assert_eq!(a.since(&b), a);
    }
}
