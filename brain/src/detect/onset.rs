//! A leak's onset: the first steps of a climb, called before a rank test can be sure of it.
//!
//! Mann–Kendall ([`super::trend`]) needs about eight rising values for p < 0.001, since two
//! rising values happen by chance one time in two. Sizes say more than ranks: a working set's
//! step-to-step change has a usual centre and spread (median and MAD of its differences), and
//! a leak changes it at once. Two consecutive steps that each rise more than [`SPREADS`]
//! robust spreads beyond the usual change, to a new high of the window, at a rate that kept up
//! for [`HORIZON`] steps would add [`MIN_RISE`] of the level, are an onset. With independent
//! Gaussian steps two such rises come once in 1/Φ̄(3)² ≈ 550,000 steps; a working set that
//! wanders around its level has anti-correlated steps and fewer (the unit tests count them).
//! One step up, however large (a cache filled), is not an onset, nor a step up and then flat.
//!
//! The centre and spread are taken over the differences *before* the climb, so the climb does
//! not vouch for itself, and the spread is never below a slow mean of the window's own; no
//! onset is called until [`REFERENCE`] differences are known and the slow mean has taken in
//! as many windows. Once
//! called, the climb stays called while its whole rise is still [`SPREADS`] spreads beyond the
//! usual change for its length (a z-test on the sum of its steps), it is still above
//! everything before it, and its newer half still climbs at the rate that matters; when its
//! start leaves the reference too short, the rank test has long had the window to itself.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, Normal};

use super::stats::{MAD_TO_SIGMA, median};

/// How many robust spreads beyond the usual change each of the two first steps must rise.
pub const SPREADS: f64 = 3.0;

/// Differences before the climb needed to know the usual change (20, five minutes at 15 s),
/// and windows whose spreads the slow mean must have taken in before the first onset: no
/// onset is called before the 43rd value (10.5 minutes at 15 s), when the rank test's window
/// of 40 has just filled.
pub const REFERENCE: usize = 20;

/// The steps over which a rise must matter: an hour at 15 s.
pub const HORIZON: f64 = 240.0;

/// What a climb must add to the level within [`HORIZON`], as a fraction of it, to matter.
pub const MIN_RISE: f64 = 0.5;

/// The least spread, as a fraction of the level, so that a series that never moved (a
/// simulator's flat line, a gauge that only changes in pages) does not make every rise
/// infinitely many spreads.
const SPREAD_FLOOR: f64 = 1e-4;

/// How many steps the slow mean of the spread remembers: half an hour at 15 s.
const SPREAD_MEMORY: u16 = 120;

/// The onset test's state for one series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Onset {
    /// Steps since the start of the climb called at the newest value; 0 for none.
    #[serde(default)]
    climbing: u16,
    /// How many windows' spreads the slow mean has taken in (up to [`SPREAD_MEMORY`]).
    #[serde(default)]
    learned: u16,
    /// A slow mean of the window's spread of differences, as a fraction of its level. The
    /// spread used is never below it: the MAD of 20 to 37 differences is low by a third now
    /// and then, and two rises then look like six spreads that are three (3.5 times the
    /// single steps beyond three spreads, and 17 onsets instead of one in 400,000 steps of
    /// noise, in the unit test below).
    #[serde(default)]
    spread: f32,
}
/// A climb called by the onset test.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OnsetScore {
    /// Steps since the last value before the climb.
    pub steps: u16,
    /// Its average rise per step, units per step.
    pub rate: f64,
    /// One minus the chance under no leak of a climb this far beyond the usual change, in
    /// [0, 1]: of both first steps (taken as independent) when it starts, of its whole rise
    /// after.
    pub score: f64,
}

/// The usual change before a climb: centre and spread of the differences, and the level.
#[derive(Clone, Copy, Debug)]
struct Usual {
    centre: f64,
    /// The differences' own robust spread.
    spread: f64,
    /// The median value, whose fraction [`MIN_RISE`] a climb must add within [`HORIZON`].
    level: f64,
    /// The highest value.
    high: f64,
}

impl Usual {
    /// Of `values` (oldest first, all finite), if they hold [`REFERENCE`] differences and a
    /// positive level (a working set of nothing has no leak to call).
    fn of(values: &[f64]) -> Option<Usual> {
        if values.len() <= REFERENCE {
            return None;
        }
        let mut sorted = values.to_vec();
        let level = median(&mut sorted);
        let high = sorted[sorted.len() - 1];
        if level <= 0.0 {
            return None;
        }
        let mut differences: Vec<f64> = values.windows(2).map(|w| w[1] - w[0]).collect();
        let centre = median(&mut differences);
        for d in &mut differences {
            *d = (*d - centre).abs();
        }
        Some(Usual {
            centre,
            spread: MAD_TO_SIGMA * median(&mut differences),
            level,
            high,
        })
    }

    /// The least rate per step that matters.
    fn min_rate(&self) -> f64 {
        MIN_RISE * self.level / HORIZON
    }
}

impl Onset {
    /// Judges the newest of `values` (oldest first, all finite, one a step); `standard` is
    /// the standard normal distribution, for the score.
    pub fn observe(&mut self, values: &[f64], standard: &Normal) -> Option<OnsetScore> {
        let called = (self.climbing > 0)
            .then(|| self.goes_on(values, self.climbing.checked_add(1)?, standard))
            .flatten()
            .or_else(|| self.starts(values, standard));
        self.climbing = called.map_or(0, |c| c.steps);
        called
    }

    /// Forgets the climb and the spread: what they were about has restarted.
    pub fn reset(&mut self) {
        *self = Onset::default();
    }

    /// How many spreads `rise` over `steps` steps is beyond the usual change for that long.
    fn z(&self, usual: &Usual, rise: f64, steps: u16) -> f64 {
        let spread = usual
            .spread
            .max(f64::from(self.spread) * usual.level)
            .max(SPREAD_FLOOR * usual.level);
        let steps = f64::from(steps);
        (rise - steps * usual.centre) / (spread * steps.sqrt())
    }

    /// The onset test proper, on the two newest steps; learns the spread when it calls none.
    fn starts(&mut self, values: &[f64], standard: &Normal) -> Option<OnsetScore> {
        let &[.., base, middle, newest] = values else {
            return None;
        };
        let usual = Usual::of(&values[..values.len() - 2])?;
        let first = self.z(&usual, middle - base, 1);
        let second = self.z(&usual, newest - middle, 1);
        let rate = (newest - base) / 2.0;
        if self.learned >= REFERENCE as u16
            && first > SPREADS
            && second > SPREADS
            && newest > usual.high
            && rate >= usual.min_rate()
        {
            return Some(OnsetScore {
                steps: 2,
                rate,
                score: 1.0 - standard.sf(first) * standard.sf(second),
            });
        }
        // The mean of the windows seen, then of about the last SPREAD_MEMORY.
        self.learned = (self.learned + 1).min(SPREAD_MEMORY);
        let own = (usual.spread / usual.level) as f32;
        self.spread += (own - self.spread) / f32::from(self.learned);
        None
    }

    /// Whether a climb of `steps` steps so far goes on at the newest value.
    fn goes_on(&self, values: &[f64], steps: u16, standard: &Normal) -> Option<OnsetScore> {
        let n = values.len();
        let base = n.checked_sub(1 + usize::from(steps))?;
        let usual = Usual::of(&values[..=base])?;
        let newest = values[n - 1];
        let rise = newest - values[base];
        let z = self.z(&usual, rise, steps);
        let half = base + (n - 1 - base) / 2;
        let recent = (newest - values[half]) / (n - 1 - half) as f64;
        let rate = rise / f64::from(steps);
        let min_rate = usual.min_rate();
        (z >= SPREADS && newest > usual.high && rate >= min_rate && recent >= min_rate).then(|| {
            OnsetScore {
                steps,
                rate,
                score: 1.0 - standard.sf(z),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::stats::standard_normals;

    const LEVEL: f64 = 128.0;
    const WINDOW: usize = 40;

    /// Runs the onset test over `series` as the trend window sees it (the newest 40 values):
    /// whether a climb is called at each value, and how many single steps were more than
    /// [`SPREADS`] spreads beyond the usual change as the test measured it.
    fn called(series: &[f64]) -> (Vec<bool>, usize) {
        let standard = Normal::standard();
        let mut onset = Onset::default();
        let mut beyond = 0;
        let calls = (0..series.len())
            .map(|i| {
                let values = &series[(i + 1).saturating_sub(WINDOW)..=i];
                if i >= WINDOW
                    && let Some(usual) = Usual::of(&values[..values.len() - 1])
                {
                    beyond += usize::from(onset.z(&usual, series[i] - series[i - 1], 1) > SPREADS);
                }
                onset.observe(values, &standard).is_some()
            })
            .collect();
        (calls, beyond)
    }

    /// Climbs called, each counted once however long it is called.
    fn onsets(calls: &[bool]) -> usize {
        calls.windows(2).filter(|w| !w[0] && w[1]).count() + usize::from(calls[0])
    }

    /// White noise of `sigma` (a fraction of the level) around the level.
    fn wandering(seed: u64, n: usize, sigma: f64) -> Vec<f64> {
        standard_normals(seed, n)
            .into_iter()
            .map(|z| LEVEL * (1.0 + sigma * z))
            .collect()
    }

    /// A level that walks: steps of `sigma` (a fraction of the level), independent, pulled
    /// back 2 % a step, so its step-to-step changes are nearly independent — the case the
    /// bound 1/Φ̄(3)² is for.
    fn walking(seed: u64, n: usize, sigma: f64) -> Vec<f64> {
        let mut x = 0.0;
        standard_normals(seed, n)
            .into_iter()
            .map(|z| {
                x = 0.98 * x + sigma * z;
                LEVEL * (1.0 + x)
            })
            .collect()
    }

    #[test]
    fn noise_alone_is_an_onset_about_as_rarely_as_two_independent_three_sigma_rises() {
        let steps = 400_000;
        let standard = Normal::standard();
        let single = steps as f64 * standard.sf(SPREADS);
        for (name, series) in [
            ("wander 0.1 %", wandering(1, steps, 0.001)),
            ("wander 0.25 %", wandering(2, steps, 0.0025)),
            ("wander 1 %", wandering(3, steps, 0.01)),
            ("walk 0.25 %", walking(4, steps, 0.0025)),
        ] {
            let (calls, beyond) = called(&series);
            let found = onsets(&calls);
            eprintln!(
                "{name}: {beyond} single steps beyond {SPREADS} spreads (normal: {single:.0}), {found} onsets"
            );
            // Single steps beyond three spreads: as often as a normal tail says, so the spread
            // is the steps' own (the window's MAD alone gave 3.5 times more: 1,877 to 2,138).
            assert!(
                (0.75 * single..1.5 * single).contains(&(beyond as f64)),
                "{name}: {beyond} single steps beyond, {single:.0} expected"
            );
            // Two independent such steps: 400,000 × Φ̄(3)² = 0.73 expected (the window's MAD
            // alone gave 17 on the walk); fewer on a wander, whose steps are anti-correlated.
            assert!(
                found <= 4,
                "{name}: {found} onsets in {steps} steps of noise"
            );
        }
    }

    /// The step at which a climb is first called, counted from its first step.
    fn found_at(series: &[f64], start: usize) -> Option<usize> {
        let (calls, _) = called(series);
        assert!(!calls[..start].contains(&true), "called before the climb");
        calls[start..].iter().position(|&c| c).map(|i| i + 1)
    }

    #[test]
    fn one_step_up_is_not_an_onset_nor_a_step_up_then_flat_nor_a_slow_drift() {
        let sigma = 0.0025;
        for seed in 0..50 {
            let mut series = wandering(100 + seed, 120, sigma);
            // A cache filled in one step: +20 % of the level, then flat.
            for x in &mut series[60..] {
                *x += 0.2 * LEVEL;
            }
            assert_eq!(found_at(&series, 60), None, "seed {seed}");
            // A step up over two steps, the second small, then flat.
            let mut series = wandering(200 + seed, 120, sigma);
            series[60] += 0.1 * LEVEL;
            for x in &mut series[61..] {
                *x += 0.1 * LEVEL + 0.5 * sigma * LEVEL;
            }
            assert_eq!(found_at(&series, 60), None, "seed {seed}");
            // Steep enough for the noise, too slow to matter: 0.15 % of the level a step
            // (a fifth of its level in an hour) on a wander twenty times quieter.
            let mut series = wandering(300 + seed, 120, sigma / 20.0);
            for (k, x) in series[60..].iter_mut().enumerate() {
                *x += 0.0015 * LEVEL * (k + 1) as f64;
            }
            assert_eq!(found_at(&series, 60), None, "seed {seed}");
        }
    }

    #[test]
    fn a_leak_of_four_spreads_a_step_is_called_within_two_steps_half_the_time_of_six_nearly_always()
    {
        // On a wander of 0.25 %, the steps' spread is sqrt(2) × 0.25 % of the level.
        let sigma = 0.0025;
        let spread = std::f64::consts::SQRT_2 * sigma * LEVEL;
        let leaks = 400;
        // Measured (400 leaks each): 3 spreads 0.165 at step 2; 4: 0.542; 5: 0.848; 6: 0.968;
        // 8: 1.000. What the onset test misses the rank test finds later.
        for (spreads, at_two, within_four) in [(4.0, 0.45, 0.7), (6.0, 0.95, 0.99)] {
            let found: Vec<Option<usize>> = (0..leaks)
                .map(|seed| {
                    let mut series = wandering(1000 + seed, 100, sigma);
                    for (k, x) in series[60..].iter_mut().enumerate() {
                        *x += spreads * spread * (k + 1) as f64;
                    }
                    found_at(&series, 60)
                })
                .collect();
            let share = |steps: usize| {
                found
                    .iter()
                    .filter(|f| f.is_some_and(|f| f <= steps))
                    .count() as f64
                    / leaks as f64
            };
            eprintln!(
                "{spreads} spreads a step: called at step 2 {:.3}, by 3 {:.3}, by 4 {:.3}, by 40 {:.3}",
                share(2),
                share(3),
                share(4),
                share(40)
            );
            // Each step beyond three spreads with chance Φ(1) = 0.84 at four: both 0.71 if
            // independent; a wander's steps are anti-correlated, which costs a little.
            assert!(share(2) >= at_two, "{spreads}: {}", share(2));
            assert!(share(4) >= within_four, "{spreads}: {}", share(4));
        }
    }
}
