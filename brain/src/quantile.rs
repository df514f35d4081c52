//! Quantiles read off explicit-bucket histograms, the form OpenTelemetry and the sensor send
//! latencies in.
//!
//! The body of a distribution is interpolated linearly within its bucket, as Prometheus'
//! `histogram_quantile` does. The tail is not: latency tails decay roughly exponentially, so
//! the few requests that cross a bound crowd its low end, and a linear reading spreads them
//! over the whole bucket. A p99 a few per cent over the 0.25 s bound reads 0.30–0.40 s that
//! way: a 50 % jump the detectors must call an anomaly although the true p99 moved by a tenth.
//! In the tail the logarithm of the survival function (the share of requests above a value)
//! is interpolated instead, which is exact for an exponential tail; where too little lies
//! above the bucket to say how fast the tail decays in it, the decay of the bucket below is
//! carried on, never past the bound.

/// Quantiles from this one up are read as tail quantiles.
pub const TAIL: f64 = 0.9;

/// Requests above a bucket needed to place its upper end on the tail: one or two stragglers
/// (a real histogram has them by chance, an exporter's rounding by turns) would swing a p99
/// by a tenth from one step to the next.
const MIN_ABOVE: u64 = 10;

/// The `q` quantile of an explicit-bucket histogram (`counts` has one more entry than
/// `bounds`, the last bucket open); NaN when it is empty. The open last bucket answers its
/// lower bound, the first bucket's lower bound is 0 (or its upper, if negative).
pub fn quantile(bounds: &[f64], counts: &[u64], q: f64) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return f64::NAN;
    }
    let q = q.clamp(0.0, 1.0);
    let rank = q * total as f64;
    let lower_of = |i: usize| {
        if i == 0 {
            0.0_f64.min(bounds.first().copied().unwrap_or(0.0))
        } else {
            // Counts beyond bounds + 1 are rejected at ingest; read them as the last bound.
            bounds.get(i - 1).or(bounds.last()).copied().unwrap_or(0.0)
        }
    };
    let mut seen = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        if c > 0 && (seen + c) as f64 >= rank {
            let lower = lower_of(i);
            let Some(&upper) = bounds.get(i) else {
                return lower;
            };
            let linear = lower + (upper - lower) * (rank - seen as f64) / c as f64;
            if q < TAIL {
                return linear;
            }
            // Shares of all requests above the bucket's bounds, and the share wanted above.
            let share = |n: u64| n as f64 / total as f64;
            let above_lower = share(total - seen);
            let above_upper = share(total - seen - c);
            let wanted = 1.0 - q;
            if wanted <= 0.0 {
                return upper;
            }
            let above = total - seen - c;
            // The exponential through both ends.
            let through_ends = || {
                lower
                    + (upper - lower) * (above_lower / wanted).ln()
                        / (above_lower / above_upper).ln()
            };
            // The bucket below's rate of decay carried on, when it has one.
            let carried = || {
                (i > 0 && counts[i - 1] > 0).then(|| {
                    let below = lower_of(i - 1);
                    let above_below = share(total - seen + counts[i - 1]);
                    let rate = (above_below / above_lower).ln() / (lower - below);
                    (lower + (above_lower / wanted).ln() / rate).min(upper)
                })
            };
            // Both ends when enough lies above to place the upper one; else the decay below;
            // with nothing below to learn from, both ends however few lie above.
            let tail = (above >= MIN_ABOVE)
                .then(through_ends)
                .or_else(carried)
                .or_else(|| (above > 0).then(through_ends));
            return tail.filter(|x| x.is_finite()).unwrap_or(linear);
        }
        seen += c;
    }
    bounds.last().copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OpenTelemetry HTTP semantic conventions' request-duration bounds.
    const BOUNDS: [f64; 14] = [
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ];

    /// `n` requests of a distribution given by its CDF, bucketed and rounded down, as an
    /// exporter's integer counts are.
    fn bucketed(n: f64, cdf: impl Fn(f64) -> f64) -> Vec<u64> {
        let mut below = 0.0;
        let mut counts: Vec<u64> = BOUNDS
            .iter()
            .map(|&b| {
                let f = cdf(b);
                let c = (n * (f - below)).floor() as u64;
                below = f;
                c
            })
            .collect();
        counts.push((n * (1.0 - below)).floor() as u64);
        counts
    }

    fn linear(counts: &[u64], q: f64) -> f64 {
        // The body's reading, asked of the tail.
        let total: u64 = counts.iter().sum();
        let rank = q * total as f64;
        let mut seen = 0;
        for (i, &c) in counts.iter().enumerate() {
            if c > 0 && (seen + c) as f64 >= rank {
                let lower = if i == 0 { 0.0 } else { BOUNDS[i - 1] };
                return lower + (BOUNDS[i] - lower) * (rank - seen as f64) / c as f64;
            }
            seen += c;
        }
        unreachable!()
    }

    #[test]
    fn the_body_is_interpolated_linearly_and_edges_hold() {
        assert_eq!(quantile(&[1.0, 2.0], &[0, 10, 0], 0.5), 1.5);
        assert_eq!(quantile(&[1.0, 2.0], &[0, 0, 10], 0.99), 2.0);
        assert!(quantile(&[1.0], &[0, 0], 0.5).is_nan());
        // A tail quantile in a bucket with nothing below it to take a decay from.
        assert_eq!(quantile(&[1.0, 2.0], &[0, 10, 0], 0.99), 1.99);
        // The largest value is the bucket's upper bound, whatever the shape.
        assert_eq!(quantile(&[1.0, 2.0], &[5, 10, 0], 1.0), 2.0);
    }

    #[test]
    fn a_p99_just_over_a_bound_is_read_near_it() {
        // 20 ms of service and an exponential wait of mean 56.5 ms: true p99 0.280 s, 1.7 % of
        // requests above the 0.25 s bound and almost none above 0.5 s.
        let (s, w) = (0.02, 0.0565);
        let truth = s + w * 100f64.ln();
        let counts = bucketed(1650.0, |x| {
            if x < s {
                0.0
            } else {
                1.0 - (-(x - s) / w).exp()
            }
        });
        let read = quantile(&BOUNDS, &counts, 0.99);
        assert!((read - truth).abs() < 0.01, "read {read}, true {truth}");
        let old = linear(&counts, 0.99);
        assert!(old > 0.33, "the linear reading was {old}");
    }

    #[test]
    fn a_straggler_above_the_bucket_does_not_swing_the_p99() {
        // A step read off an exporter: 3,316 requests, p99 in the 0.1–0.25 s bucket, and above
        // 0.25 s none, one or six by the turns of rounding (counts from the simulator).
        let with = |above: u64| {
            let mut counts = vec![0, 0, 454, 1484, 714, 343, 315, above, 0, 0, 0, 0, 0, 0, 0];
            counts[6] += 6 - above;
            quantile(&BOUNDS, &counts, 0.99)
        };
        let (none, one, six) = (with(0), with(1), with(6));
        assert!((one / none - 1.0).abs() < 0.01, "{none} {one}");
        assert!((six / none - 1.0).abs() < 0.01, "{none} {six}");
    }

    #[test]
    fn tail_quantiles_are_closer_than_linear_ones_for_common_latency_shapes() {
        // Exponential, log-normal and Pareto tails over a range of scales, a busy step's worth
        // of requests each: the tail reading's error, summed, is under a third of the linear
        // one's (measured: 0.15 against 6.71, 0.80 against 5.90, 1.24 against 5.06 over 40 scales).
        let normal = statrs::distribution::Normal::standard();
        use statrs::distribution::ContinuousCDF;
        let mut errors = [(0.0, 0.0); 3];
        for k in 0..40 {
            let scale = 0.01 * 1.1f64.powi(k);
            let shapes: [Box<dyn Fn(f64) -> f64>; 3] = [
                Box::new(move |x| 1.0 - (-x / scale).exp()),
                Box::new(move |x| {
                    if x <= 0.0 {
                        0.0
                    } else {
                        normal.cdf((x / scale).ln() / 0.8)
                    }
                }),
                Box::new(move |x| {
                    if x < scale {
                        0.0
                    } else {
                        1.0 - (scale / x).powf(2.5)
                    }
                }),
            ];
            let truths = [
                scale * 100f64.ln(),
                scale * (0.8_f64 * 2.326_347_874).exp(),
                scale * 100f64.powf(1.0 / 2.5),
            ];
            for ((shape, truth), e) in shapes.iter().zip(truths).zip(&mut errors) {
                if truth >= BOUNDS[BOUNDS.len() - 1] {
                    continue;
                }
                let counts = bucketed(5000.0, shape);
                e.0 += (quantile(&BOUNDS, &counts, 0.99) / truth).ln().abs();
                e.1 += (linear(&counts, 0.99) / truth).ln().abs();
            }
        }
        for (shape, (tail, lin)) in ["exponential", "log-normal", "Pareto"].iter().zip(errors) {
            assert!(tail < 0.3 * lin, "{shape}: tail {tail:.3}, linear {lin:.3}");
        }
    }
}
