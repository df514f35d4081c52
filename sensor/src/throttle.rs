//! Self-throttling: the sensor measures what its own programs cost each interval (BPF
//! run-time statistics) and, while that exceeds a budget, samples its costliest latency probe
//! more sparsely, one doubling per interval; when well under budget for a while it recovers,
//! one halving at a time. Counters are never sampled (a sampled count would be a guess), so
//! the throttle can only do so much: when every latency probe is at the limit and the cost is
//! still over budget it says so, and the brain's throttle action (or a person) decides more.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::loader::ProgramStats;
use crate::probes::{Probe, ProbeConfig, SensorConfig};

/// The sparsest the throttle samples a latency probe: 1 event in this many times the
/// configured rate.
pub const MAX_FACTOR: u32 = 1024;

/// Intervals in a row under half the budget before one step of recovery.
const CALM_INTERVALS: u32 = 3;

/// The latency probe whose sampling decides how much of a program's work is done; `None`
/// for programs that only count.
pub fn sampled_probe(program: &str) -> Option<Probe> {
    match program {
        "hs_sched_switch" => Some(Probe::RunQueue),
        "hs_tcp_state" => Some(Probe::TcpConnect),
        "hs_bio_issue" | "hs_bio_done" => Some(Probe::BlockIo),
        _ => None,
    }
}

/// What each latency probe's programs cost between two [`Sensor::program_stats`] readings.
///
/// [`Sensor::program_stats`]: crate::Sensor::program_stats
pub fn latency_costs(before: &[ProgramStats], after: &[ProgramStats]) -> BTreeMap<Probe, Duration> {
    let mut costs = BTreeMap::new();
    for a in after {
        let Some(probe) = sampled_probe(a.name) else {
            continue;
        };
        let earlier = before
            .iter()
            .find(|b| b.name == a.name)
            .map_or(Duration::ZERO, |b| b.run_time);
        *costs.entry(probe).or_default() += a.run_time.saturating_sub(earlier);
    }
    costs
}

/// A change the throttle made, for the log.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Change {
    /// Over budget: the probe now samples `factor` times more sparsely than configured.
    Raised {
        /// The probe.
        probe: Probe,
        /// Its new extra divisor.
        factor: u32,
        /// The interval's overhead that prompted it, fraction of a CPU.
        overhead: f64,
    },
    /// Well under budget: one step back towards the configured rate.
    Lowered {
        /// The probe.
        probe: Probe,
        /// Its new extra divisor (1 = as configured).
        factor: u32,
        /// The interval's overhead, fraction of a CPU.
        overhead: f64,
    },
    /// Over budget with every latency probe already at [`MAX_FACTOR`] (or none loaded):
    /// nothing left to sample away. Reported once until the cost falls under budget.
    Exhausted {
        /// The interval's overhead, fraction of a CPU.
        overhead: f64,
    },
}

/// The throttle's state: a budget and an extra sampling divisor per latency probe.
#[derive(Clone, Debug)]
pub struct Throttle {
    budget: f64,
    factor: BTreeMap<Probe, u32>,
    calm: u32,
    exhausted: bool,
}

impl Throttle {
    /// A throttle with `budget` as the fraction of one CPU the probes may use.
    pub fn new(budget: f64) -> Self {
        Throttle {
            budget,
            factor: BTreeMap::new(),
            calm: 0,
            exhausted: false,
        }
    }

    /// The budget, fraction of one CPU.
    pub fn budget(&self) -> f64 {
        self.budget
    }

    /// Changes the budget (the config file was edited); the divisors adapt from here.
    pub fn set_budget(&mut self, budget: f64) {
        self.budget = budget;
    }

    /// The extra divisor of a probe (1 = as configured).
    pub fn factor(&self, probe: Probe) -> u32 {
        self.factor.get(&probe).copied().unwrap_or(1)
    }

    /// Takes one interval's overhead and what each latency probe cost in it; returns the
    /// change made, if any (apply it with [`Throttle::apply`]).
    pub fn observe(&mut self, overhead: f64, costs: &BTreeMap<Probe, Duration>) -> Option<Change> {
        if overhead > self.budget {
            self.calm = 0;
            let costliest = costs
                .iter()
                .filter(|(p, cost)| !cost.is_zero() && self.factor(**p) < MAX_FACTOR)
                .max_by_key(|(_, cost)| **cost)
                .map(|(p, _)| *p);
            return match costliest {
                Some(probe) => {
                    let factor = self.factor(probe) * 2;
                    self.factor.insert(probe, factor);
                    Some(Change::Raised {
                        probe,
                        factor,
                        overhead,
                    })
                }
                None if self.exhausted => None,
                None => {
                    self.exhausted = true;
                    Some(Change::Exhausted { overhead })
                }
            };
        }
        self.exhausted = false;
        if overhead >= self.budget / 2.0 {
            self.calm = 0;
            return None;
        }
        self.calm += 1;
        if self.calm < CALM_INTERVALS {
            return None;
        }
        self.calm = 0;
        let (&probe, &factor) = self.factor.iter().max_by_key(|(_, f)| **f)?;
        let factor = factor / 2;
        if factor <= 1 {
            self.factor.remove(&probe);
        } else {
            self.factor.insert(probe, factor);
        }
        Some(Change::Lowered {
            probe,
            factor: factor.max(1),
            overhead,
        })
    }

    /// `base` with the throttle's divisors multiplied into the latency probes' sampling.
    pub fn apply(&self, base: &SensorConfig) -> SensorConfig {
        let mut out = base.clone();
        for (&probe, &factor) in &self.factor {
            let c = base.probe(probe);
            out.probes.insert(
                probe,
                ProbeConfig {
                    enabled: c.enabled,
                    sample_every: c.sample_every.max(1).saturating_mul(factor),
                },
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn costs(runq_us: u64, block_us: u64) -> BTreeMap<Probe, Duration> {
        BTreeMap::from([
            (Probe::RunQueue, Duration::from_micros(runq_us)),
            (Probe::BlockIo, Duration::from_micros(block_us)),
        ])
    }

    #[test]
    fn over_budget_doubles_the_costliest_probe_step_by_step() {
        let mut t = Throttle::new(0.01);
        assert_eq!(
            t.observe(0.03, &costs(900, 100)),
            Some(Change::Raised {
                probe: Probe::RunQueue,
                factor: 2,
                overhead: 0.03
            })
        );
        t.observe(0.02, &costs(500, 100));
        assert_eq!(t.factor(Probe::RunQueue), 4);
        // Now the block probe is the costlier one.
        t.observe(0.015, &costs(50, 200));
        assert_eq!(
            (t.factor(Probe::RunQueue), t.factor(Probe::BlockIo)),
            (4, 2)
        );
        let base = SensorConfig::default();
        let applied = t.apply(&base);
        assert_eq!(applied.probe(Probe::RunQueue).sample_every, 4);
        assert_eq!(applied.probe(Probe::BlockIo).sample_every, 2);
        assert_eq!(applied.probe(Probe::TcpConnect).sample_every, 1);
    }

    #[test]
    fn within_budget_nothing_changes_and_well_under_it_recovers_slowly() {
        let mut t = Throttle::new(0.01);
        for _ in 0..3 {
            t.observe(0.05, &costs(900, 0));
        }
        assert_eq!(t.factor(Probe::RunQueue), 8);
        // Between half the budget and the budget: hold.
        for _ in 0..10 {
            assert_eq!(t.observe(0.007, &costs(900, 0)), None);
        }
        // Well under: one halving per three calm intervals.
        assert_eq!(t.observe(0.001, &costs(10, 0)), None);
        assert_eq!(t.observe(0.001, &costs(10, 0)), None);
        assert!(matches!(
            t.observe(0.001, &costs(10, 0)),
            Some(Change::Lowered { factor: 4, .. })
        ));
        for _ in 0..6 {
            t.observe(0.001, &costs(10, 0));
        }
        assert_eq!(t.factor(Probe::RunQueue), 1);
        assert_eq!(t.observe(0.001, &costs(10, 0)), None);
        assert_eq!(t.observe(0.001, &costs(10, 0)), None);
        assert_eq!(
            t.observe(0.001, &costs(10, 0)),
            None,
            "nothing left to recover"
        );
    }

    #[test]
    fn at_the_limit_it_says_so_once() {
        let mut t = Throttle::new(0.01);
        for _ in 0..10 {
            t.observe(0.5, &costs(900, 0));
        }
        assert_eq!(t.factor(Probe::RunQueue), MAX_FACTOR);
        assert_eq!(
            t.observe(0.5, &costs(900, 0)),
            Some(Change::Exhausted { overhead: 0.5 })
        );
        assert_eq!(t.observe(0.5, &costs(900, 0)), None);
    }

    #[test]
    fn program_costs_are_summed_per_latency_probe() {
        let s = |name, us, n| ProgramStats {
            name,
            run_time: Duration::from_micros(us),
            run_count: n,
        };
        let before = [s("hs_bio_issue", 10, 1), s("hs_exit", 5, 1)];
        let after = [
            s("hs_bio_issue", 30, 2),
            s("hs_bio_done", 15, 2),
            s("hs_exit", 50, 9),
        ];
        let c = latency_costs(&before, &after);
        assert_eq!(c.get(&Probe::BlockIo), Some(&Duration::from_micros(35)));
        assert_eq!(c.len(), 1);
    }
}
