//! The load forecaster's cost: updates (one value in, the 5-minute forecast out) per second
//! per series on one core, for one series and for many interleaved as the brain's workloads
//! are, each beside a same-run baseline (an exponentially weighted mean) because this
//! machine's timings drift by tens of per cent from run to run; and its size per series.
//!
//! `cargo bench -p homeostat-brain --bench forecast` prints the figures. Nothing is
//! asserted: a benchmark reports, it does not pass or fail.

use std::hint::black_box;
use std::time::Instant;

use homeostat_brain::forecast::{ForecastConfig, LoadForecast};
use homeostat_core::Timestamp;

/// Something fed a value at a time and asked what comes next.
trait Forecaster {
    fn update(&mut self, t: Timestamp, x: f64) -> f64;
}

impl Forecaster for LoadForecast {
    fn update(&mut self, t: Timestamp, x: f64) -> f64 {
        self.observe(t, x);
        self.expected(300.0).unwrap_or(0.0)
    }
}

/// The baseline: an exponentially weighted mean, forecast flat.
struct Ewma(f64);

impl Forecaster for Ewma {
    fn update(&mut self, _: Timestamp, x: f64) -> f64 {
        self.0 += 0.3 * (x - self.0);
        self.0
    }
}

/// A request rate with a daily cycle and deterministic noise, one value per 15 s.
fn series(seed: u64, len: usize) -> Vec<f64> {
    (0..len)
        .map(|i| {
            let phase = i as f64 * std::f64::consts::TAU / 5760.0;
            let noise = ((i as u64 ^ seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as f64
                / (1u64 << 24) as f64;
            300.0 * (1.0 + 0.6 * phase.sin()) * (0.95 + 0.1 * noise)
        })
        .collect()
}

/// Feeds step `0`, then step `1`, … of every series to its own forecaster.
fn interleaved<F: Forecaster>(
    models: &mut [F],
    data: &[Vec<f64>],
    steps: usize,
    from: usize,
) -> f64 {
    let mut sum = 0.0;
    for step in 0..steps {
        let t = Timestamp::from_secs(((from + step) * 15) as i64);
        for (m, values) in models.iter_mut().zip(data) {
            sum += m.update(t, black_box(values[step]));
        }
    }
    sum
}

/// Median updates per second of `runs` timed passes of `pass` over `updates` values.
fn rate(runs: usize, updates: usize, mut pass: impl FnMut(usize) -> f64) -> f64 {
    let mut rates: Vec<f64> = (0..runs)
        .map(|k| {
            let start = Instant::now();
            black_box(pass(k));
            updates as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[runs / 2]
}

fn main() {
    const RUNS: usize = 7;
    let config = ForecastConfig::default();
    let long = series(1, 1_000_000);
    let mut one = [LoadForecast::new(config)];
    let single = rate(RUNS, long.len(), |k| {
        interleaved(
            &mut one,
            std::slice::from_ref(&long),
            long.len(),
            k * long.len(),
        )
    });
    let mut one_base = [Ewma(long[0])];
    let single_base = rate(RUNS, long.len(), |k| {
        interleaved(
            &mut one_base,
            std::slice::from_ref(&long),
            long.len(),
            k * long.len(),
        )
    });

    const SERIES: usize = 10_000;
    const STEPS: usize = 200;
    let data: Vec<Vec<f64>> = (0..SERIES as u64).map(|s| series(s + 2, STEPS)).collect();
    let mut models: Vec<LoadForecast> = (0..SERIES).map(|_| LoadForecast::new(config)).collect();
    let many = rate(RUNS, SERIES * STEPS, |k| {
        interleaved(&mut models, &data, STEPS, k * STEPS)
    });
    let mut baselines: Vec<Ewma> = data.iter().map(|v| Ewma(v[0])).collect();
    let many_base = rate(RUNS, SERIES * STEPS, |k| {
        interleaved(&mut baselines, &data, STEPS, k * STEPS)
    });

    let daily = LoadForecast::new(ForecastConfig {
        bucket_seconds: 15 * 60,
        ..config
    });
    println!("load forecast (update + 5-minute forecast), one core, median of {RUNS} runs");
    println!(
        "  one series, 1,000,000 updates:  {:>12.0} updates/s   (EWMA baseline {:>12.0}; {:.1}x its cost)",
        single,
        single_base,
        single_base / single
    );
    println!(
        "  {SERIES} series interleaved:     {:>12.0} updates/s   (EWMA baseline {:>12.0}; {:.1}x its cost)",
        many,
        many_base,
        many_base / many
    );
    println!(
        "  size per series: {} bytes inline + {} on the heap (with a daily profile: + {})",
        size_of::<LoadForecast>(),
        models[0].heap_bytes(),
        daily.heap_bytes()
    );
    black_box((&mut models, &mut baselines));
}
