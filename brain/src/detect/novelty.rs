//! Context novelty: how much of what a series shows now has it never shown before, and how
//! rare is that for this series.
//!
//! After the idea of the Contextual Anomaly Detector (discretised values, anomaly = the share
//! of contexts never seen): each value is placed on a grid at several resolutions, and three
//! kinds of context are remembered —
//!
//! - the value's bin (a level never visited: spikes, dips, shifts, a flat line at an
//!   in-between level);
//! - the bin with how long the series has stayed in it, in doublings (a stay longer than
//!   any before: a missing daily peak, a stuck sensor);
//! - on leaving a bin, the bin left, how long it was held, and the bin entered (a transition
//!   after an unusual stay: spikes arriving closer together, a cycle cut short).
//!
//! The grid's finest width is a power of two near a twentieth of six spreads, learned from
//! the first values and then frozen, so a context keeps its meaning for the life of the
//! series. Three views at successive octaves of the grid (each with its own three
//! resolutions and its own dwell contexts) each give the fraction of their contexts that are
//! new; a fraction is weighed by −ln of the view's usual novelty rate, so news from a series
//! that rarely shows any outweighs the constant churn of a noisy one. The surprise is the
//! views' mean, in nats. Averaging octaves keeps the result from hinging on where one grid's
//! bin edges happen to fall.
//!
//! Memory is bounded: the contexts live in a fixed-size context memory (`context_memory.rs`),
//! the rest is a few dozen numbers.

use super::context_memory::ContextMemory;

/// Octave views averaged.
const VIEWS: usize = 3;
/// Resolutions per view: the view's finest grid, twice and four times as wide.
const RESOLUTIONS: usize = 3;
/// Distinct grid widths across the views (they share all but their ends).
const LEVELS: usize = VIEWS + RESOLUTIONS - 1;

/// E|X − μ| = σ √(2/π) for a normal variable; this turns a mean absolute deviation into σ.
const MAD_MEAN_TO_SIGMA: f64 = 1.253_314_137_315_500_3;

/// Tunables; the defaults are generic, set on the development benchmark over whole
/// neighbourhoods of values rather than at one point (see the README's evaluation section).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NoveltyConfig {
    /// Values seen before the grid is first set and contexts start to be learned.
    pub scale_after: u32,
    /// Values after which the grid stops coarsening: later contexts keep their meaning.
    pub scale_until: u32,
    /// The finest grid of the middle view splits about six spreads into this many bins
    /// (rounded to a power-of-two width, so bins at successive octaves nest).
    pub bins: f64,
    /// Contexts remembered, one byte each: the detector's memory bound.
    pub memory: usize,
    /// Steps over which each view's usual novelty rate is averaged.
    pub rate_horizon: f64,
}

impl Default for NoveltyConfig {
    fn default() -> Self {
        NoveltyConfig {
            scale_after: 20,
            scale_until: 1000,
            bins: 20.0,
            memory: 1024,
            rate_horizon: 4000.0,
        }
    }
}

/// One series' context novelty.
#[derive(Clone, Debug)]
pub struct Novelty {
    config: NoveltyConfig,
    /// Values observed.
    seen: u32,
    /// Running mean and mean absolute deviation, until the grid freezes.
    mean: f64,
    mad: f64,
    /// log₂ of the coarsest finest-bin width wanted so far; the grid of level `l` has width
    /// 2^(exponent − 1 + l).
    exponent: Option<i32>,
    /// Each level's current bin and how many steps it has been held (0: no bin yet).
    bin: [i64; LEVELS],
    held: [u32; LEVELS],
    memory: ContextMemory,
    /// Each view's exponentially decayed sum of novelty fractions, and the decayed step count
    /// they are a rate over.
    novel_mass: [f64; VIEWS],
    steps: f64,
}

/// What a context is about; part of its hash.
#[derive(Clone, Copy)]
enum Kind {
    Level = 1,
    Dwell = 2,
    Transition = 3,
}

/// A 64-bit finaliser (the xor-shift-multiply mix used by MurmurHash3): nearby inputs give
/// unrelated outputs, deterministically.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The hash of a context: its kind, its grid and up to three integers.
fn context(kind: Kind, exponent: i32, a: i64, b: u32, c: i64) -> u64 {
    let mut h = mix((kind as u64) << 32 ^ u64::from(exponent as u32));
    h = mix(h ^ a as u64);
    h = mix(h ^ u64::from(b));
    mix(h ^ c as u64)
}

/// How long a bin has been held, in doublings: 1, 2–3, 4–7, …
fn doublings(steps: u32) -> u32 {
    u32::BITS - steps.leading_zeros()
}

impl Novelty {
    /// A detector that has seen nothing.
    pub fn new(config: NoveltyConfig) -> Self {
        Novelty {
            config,
            seen: 0,
            mean: 0.0,
            mad: 0.0,
            exponent: None,
            bin: [0; LEVELS],
            held: [0; LEVELS],
            memory: ContextMemory::new(config.memory),
            novel_mass: [0.0; VIEWS],
            steps: 0.0,
        }
    }

    /// Heap bytes held: the context memory.
    pub fn heap_bytes(&self) -> usize {
        self.memory.heap_bytes()
    }

    /// Forgets how long the current bins have been held, after a gap in the data: a stay
    /// measured across missing samples means nothing.
    pub fn break_runs(&mut self) {
        self.held = [0; LEVELS];
    }

    /// The surprise of `x` in nats (0 when nothing about it is new), then learns it. `x` must
    /// be finite.
    pub fn observe(&mut self, x: f64) -> f64 {
        debug_assert!(x.is_finite());
        self.seen = self.seen.saturating_add(1);
        let c = self.config;
        if self.seen <= c.scale_until {
            self.learn_scale(x);
        }
        let Some(exponent) = self.exponent else {
            return 0.0;
        };

        let mut level_new = [false; LEVELS];
        let mut dwell_new = [0u32; LEVELS];
        let mut dwell_seen = [0u32; LEVELS];
        for level in 0..LEVELS {
            let e = exponent - 1 + level as i32;
            let b = (x / 2f64.powi(e)).floor() as i64;
            level_new[level] = !self.memory.seen_before(context(Kind::Level, e, b, 0, 0));
            let (previous, held_before) = (self.bin[level], self.held[level]);
            let changed = held_before == 0 || b != previous;
            self.bin[level] = b;
            self.held[level] = if changed {
                1
            } else {
                held_before.saturating_add(1)
            };
            // Dwell and transitions are read on each view's coarsest grid, where noise
            // seldom moves the value across an edge.
            if level + 1 < RESOLUTIONS {
                continue;
            }
            let dwell = context(Kind::Dwell, e, b, doublings(self.held[level]), 0);
            dwell_seen[level] += 1;
            dwell_new[level] += u32::from(!self.memory.seen_before(dwell));
            if changed && held_before > 0 {
                let transition = context(Kind::Transition, e, previous, doublings(held_before), b);
                dwell_seen[level] += 1;
                dwell_new[level] += u32::from(!self.memory.seen_before(transition));
            }
        }

        let decay = 1.0 - 1.0 / c.rate_horizon.max(1.0);
        let mut surprise = 0.0;
        for view in 0..VIEWS {
            let top = view + RESOLUTIONS - 1;
            let new = level_new[view..=top].iter().filter(|&&n| n).count() as u32 + dwell_new[top];
            let total = RESOLUTIONS as u32 + dwell_seen[top];
            let fraction = f64::from(new) / f64::from(total);
            // A rate with half a novelty of prior, so the first news is not infinitely rare.
            let rate = (self.novel_mass[view] + 0.5) / (self.steps + 1.0);
            if fraction > 0.0 {
                surprise += -rate.ln() * fraction;
            }
            self.novel_mass[view] = self.novel_mass[view] * decay + fraction;
        }
        self.steps = self.steps * decay + 1.0;
        surprise / VIEWS as f64
    }

    /// Learns the spread from the first values and coarsens the grid to it; the grid is set
    /// once `scale_after` values are in and never refined, so learned contexts stay valid.
    fn learn_scale(&mut self, x: f64) {
        let n = f64::from(self.seen);
        if self.seen == 1 {
            self.mean = x;
        }
        let deviation = x - self.mean;
        self.mean += deviation / n;
        self.mad += (deviation.abs() - self.mad) / n;
        if self.seen < self.config.scale_after {
            return;
        }
        let span = (6.0 * MAD_MEAN_TO_SIGMA * self.mad)
            .max(1e-9 * self.mean.abs())
            .max(1e-12);
        let wanted = (span / self.config.bins.max(1.0)).log2().floor() as i32;
        if self.exponent.is_none_or(|e| wanted > e) {
            self.exponent = Some(wanted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wobble(i: u32) -> f64 {
        100.0 + 5.0 * (f64::from(i) * 1.7).sin()
    }

    fn trained(values: impl Iterator<Item = f64>) -> Novelty {
        let mut d = Novelty::new(NoveltyConfig::default());
        for x in values {
            d.observe(x);
        }
        d
    }

    #[test]
    fn a_familiar_stream_stops_being_news_and_a_new_level_is() {
        let mut d = trained((0..3000).map(wobble));
        let late: f64 = (3000..4000).map(|i| d.observe(wobble(i))).sum();
        assert!(late < 5.0, "familiar values still surprising: {late}");
        let shifted = d.observe(160.0);
        assert!(shifted > 3.0, "{shifted}");
    }

    #[test]
    fn an_unprecedented_stay_is_news_even_at_a_familiar_level() {
        // A square wave: 50 steps low, 50 high; then the low phase lasts four times as long.
        let square = |i: u32| {
            if (i / 50).is_multiple_of(2) {
                10.0
            } else {
                20.0
            }
        };
        let mut d = trained((0..4000).map(square));
        let surprises: Vec<f64> = (0..200).map(|_| d.observe(10.0)).collect();
        let peak = surprises.iter().copied().fold(0.0, f64::max);
        assert!(surprises[..40].iter().all(|&s| s == 0.0), "{surprises:?}");
        assert!(peak > 1.0, "the long stay went unnoticed: {peak}");
    }

    #[test]
    fn the_grid_scale_follows_the_data_and_a_flat_line_has_a_fine_one() {
        let flat = trained(std::iter::repeat_n(7.0, 500));
        let noisy = trained((0..500).map(wobble));
        let (Some(f), Some(n)) = (flat.exponent, noisy.exponent) else {
            panic!("no grid");
        };
        assert!(f < n - 10, "{f} {n}");
        assert_eq!(flat.heap_bytes(), 1024);
    }
}
