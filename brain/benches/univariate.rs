//! The univariate detector's cost: samples scored per second on one core, and memory per
//! tracked series, each beside a same-run baseline (a plain EWMA z-score) because this
//! machine's timings drift by tens of per cent from run to run; and the memory of a series
//! the brain watches (its robust baseline with its daily/weekly profile).
//!
//! `cargo bench -p homeostat-brain --bench univariate` prints the figures; targets are
//! ≥ 1,000,000 samples/s per core and ≤ 2 KiB per series. Nothing is asserted: a benchmark
//! reports, it does not pass or fail.

use std::hint::black_box;
use std::time::Instant;

use homeostat_brain::detect::{
    BaselineConfig, RobustBaseline, Season, SeasonConfig, Univariate, UnivariateConfig,
};
use homeostat_core::Timestamp;

mod common;

use common::live;

/// Something that scores a stream, one value at a time.
trait Scorer {
    fn score(&mut self, x: f64) -> f64;
}

impl Scorer for Univariate {
    fn score(&mut self, x: f64) -> f64 {
        self.observe(x)
    }
}

/// The baseline: an exponentially weighted mean and variance, scored by z².
struct Ewma {
    mean: f64,
    var: f64,
}

impl Ewma {
    fn new(first: f64) -> Self {
        Ewma {
            mean: first,
            var: 1.0,
        }
    }
}

impl Scorer for Ewma {
    fn score(&mut self, x: f64) -> f64 {
        let d = x - self.mean;
        let z2 = d * d / self.var.max(1e-12);
        self.mean += 0.01 * d;
        self.var += 0.01 * (d * d - self.var);
        1.0 - (-0.5 * z2).exp()
    }
}

/// Feeds step `0`, then step `1`, … of every series to its own scorer, as a store sees
/// samples arrive: each value touches a different scorer's state.
fn interleaved<S: Scorer>(scorers: &mut [S], data: &[Vec<f64>], steps: usize) -> f64 {
    let mut sum = 0.0;
    for step in 0..steps {
        for (scorer, values) in scorers.iter_mut().zip(data) {
            sum += scorer.score(black_box(values[step]));
        }
    }
    sum
}

/// A deterministic gauge: a daily-like cycle with noise, occasional spikes and level shifts,
/// so every path of the detector (new levels, stays, transitions, alarms) is exercised.
fn series(seed: u64, len: usize) -> Vec<f64> {
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut shift = 0.0;
    (0..len)
        .map(|i| {
            let r = uniform();
            if r < 0.0005 {
                shift += 20.0 * (uniform() - 0.5);
            }
            let spike = if r > 0.999 { 50.0 } else { 0.0 };
            let phase = i as f64 * std::f64::consts::TAU / 288.0;
            100.0 + shift + 10.0 * phase.sin() + 3.0 * (uniform() - 0.5) + spike
        })
        .collect()
}

/// Median of the samples per second of `runs` timed passes of `pass` over `samples` values.
fn rate(runs: usize, samples: usize, mut pass: impl FnMut() -> f64) -> f64 {
    let mut rates: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            black_box(pass());
            samples as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[runs / 2]
}

fn main() {
    const RUNS: usize = 7;
    let config = UnivariateConfig::default();

    // One long series through one detector: the detector's own cost, cache-hot.
    let long = series(1, 2_000_000);
    let single = rate(RUNS, long.len(), || {
        interleaved(
            &mut [Univariate::new(config)],
            std::slice::from_ref(&long),
            long.len(),
        )
    });
    let single_base = rate(RUNS, long.len(), || {
        interleaved(
            &mut [Ewma::new(long[0])],
            std::slice::from_ref(&long),
            long.len(),
        )
    });

    // Many series, interleaved as a store sees them: each sample touches a different
    // detector, so the state comes from memory rather than cache.
    const SERIES: usize = 10_000;
    const STEPS: usize = 200;
    let data: Vec<Vec<f64>> = (0..SERIES as u64).map(|s| series(s + 2, STEPS)).collect();
    let before = live();
    let mut detectors: Vec<Univariate> = (0..SERIES).map(|_| Univariate::new(config)).collect();
    let allocated = live() - before;
    let many = rate(RUNS, SERIES * STEPS, || {
        interleaved(&mut detectors, &data, STEPS)
    });
    let grown = live() as i64 - (before + allocated) as i64;
    let mut baselines: Vec<Ewma> = data.iter().map(|v| Ewma::new(v[0])).collect();
    let many_base = rate(RUNS, SERIES * STEPS, || {
        interleaved(&mut baselines, &data, STEPS)
    });

    let per_series = allocated as f64 / SERIES as f64;
    println!("univariate detector, one core, median of {RUNS} runs");
    println!(
        "  one series, 2,000,000 samples:   {:>12.0} samples/s   (EWMA baseline {:>12.0}; {:.1}x its cost)",
        single,
        single_base,
        single_base / single
    );
    println!(
        "  {SERIES} series interleaved:      {:>12.0} samples/s   (EWMA baseline {:>12.0}; {:.1}x its cost)",
        many,
        many_base,
        many_base / many
    );
    println!(
        "  memory per series: {:.0} bytes ({} inline + {} heap; EWMA baseline {} bytes); {} bytes allocated while streaming",
        per_series,
        size_of::<Univariate>(),
        detectors[0].heap_bytes(),
        size_of::<Ewma>(),
        grown
    );
    println!("  targets: >= 1,000,000 samples/s per core, <= 2048 bytes per series");
    black_box(&mut detectors);
    drop(detectors);

    // A series the brain watches for anomalies (latency, run-queue delay): its robust
    // baseline and its daily/weekly profile, streamed a sample every ten minutes for 33 hours
    // so the baseline's window is full and the profile has closed buckets and a season.
    let before = live();
    let mut watched: Vec<(RobustBaseline, Season)> = (0..SERIES)
        .map(|_| {
            (
                RobustBaseline::new(BaselineConfig::default()),
                Season::new(SeasonConfig::default()),
            )
        })
        .collect();
    for step in 0..STEPS {
        let t = Timestamp::from_secs(step as i64 * 600);
        for ((baseline, season), values) in watched.iter_mut().zip(&data) {
            let x = values[step];
            black_box(baseline.observe(x, true));
            season.observe(t, x);
        }
    }
    let held = live() - before;
    let (baseline, season) = &watched[0];
    println!(
        "  watched series (baseline + season): {:.0} bytes per series ({} + {} inline, {} + {} heap)",
        held as f64 / SERIES as f64,
        size_of::<RobustBaseline>(),
        size_of::<Season>(),
        baseline.heap_bytes(),
        season.heap_bytes()
    );
    black_box(&mut watched);
}
