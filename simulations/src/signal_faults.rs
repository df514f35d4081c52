//! Signal faults: the simulated pods' telemetry misbehaves the way real exporters do (a pod
//! that misses a scrape, an exporter that re-sends a stale batch, a broken instrument that
//! reports NaN, a node whose clock is off), so scenarios rehearse how the brain copes with
//! bad data before it ever sees any in production.
//!
//! Like the API faults ([`crate::apiserver::faults`]), faults are drawn from a seeded
//! generator with a fixed number of draws per pod and per point, so the same telemetry meets
//! the same faults and a scenario replays identically. Faults are applied to the OTLP
//! resource metrics just before they are exported, so the brain receives them over gRPC
//! exactly as it would from a faulty exporter.

use std::collections::HashMap;
use std::time::Duration;

use homeostat_core::semconv;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::{ResourceMetrics, metric, number_data_point};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use crate::apiserver::faults::probability;

/// Which signal faults to inject. Every field defaults to "no fault"; in a scenario it sits
/// under `faults: signals:`. Probabilities are per tick per pod (`gap`, `stale`) or per data
/// point (`nan`), so a scenario states rates rather than a script of failures.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct SignalFaultConfig {
    /// Seeds the draws, so the same telemetry meets the same faults.
    pub seed: u64,
    /// Chance, per tick and pod, that the pod sends nothing that tick (a missed export).
    #[serde(deserialize_with = "probability")]
    pub gap: f64,
    /// Chance, per tick and pod, that the pod re-sends its previous tick's points, with their
    /// old timestamps, instead of fresh ones (an exporter retrying a stale batch).
    #[serde(deserialize_with = "probability")]
    pub stale: f64,
    /// Chance, per data point, that its value (the counter's value, the histogram's sum) is
    /// replaced with NaN (a broken instrument).
    #[serde(deserialize_with = "probability")]
    pub nan: f64,
    /// How far the clocks of skewed pods are off (`+30s` ahead, `-45s` behind); every point
    /// they send is shifted by it.
    #[serde(deserialize_with = "signed_duration")]
    pub clock_skew: SignedDuration,
    /// Fraction of pods, in order of first appearance, whose clock is skewed (0.25: one pod
    /// in four).
    #[serde(deserialize_with = "probability")]
    pub skewed_fraction: f64,
}

/// A duration with a sign, for clock skews that run ahead or behind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SignedDuration {
    /// Whether the clock is behind (points carry earlier times than true).
    pub negative: bool,
    /// How far.
    pub magnitude: Duration,
}

impl SignedDuration {
    /// Parses `+30s`, `-45s` or `30s` (ahead), in the notation of every other duration of a
    /// scenario, so a skew reads like the rest of the file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (negative, rest) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let magnitude = homeostat_policies::duration::HumanDuration::parse(rest)?.get();
        Ok(SignedDuration {
            negative,
            magnitude,
        })
    }

    /// The skew in nanoseconds, signed, saturating, to shift OTLP timestamps by.
    pub fn as_nanos(self) -> i128 {
        let n = i128::try_from(self.magnitude.as_nanos()).unwrap_or(i128::MAX);
        if self.negative { -n } else { n }
    }

    /// Whether there is any skew at all.
    pub fn is_zero(self) -> bool {
        self.magnitude.is_zero()
    }
}

/// How many signal faults were injected, per kind; a run reports them next to what the brain
/// rejected and dropped, so a reader can tell a fault the brain absorbed from one it missed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignalFaultStats {
    /// Pod-ticks that sent nothing.
    pub gaps: u64,
    /// Pod-ticks that re-sent the previous tick's points instead of fresh ones.
    pub stale: u64,
    /// Data points whose value was replaced with NaN.
    pub nan_points: u64,
    /// Pods whose clock is skewed.
    pub skewed_pods: u64,
    /// Data points sent with a skewed timestamp.
    pub skewed_points: u64,
}

/// The live signal-fault injector; it remembers each pod's previous points (for `stale`) and
/// which pods are skewed, so one injector must see every tick of a run.
#[derive(Debug)]
pub struct SignalFaults {
    config: SignalFaultConfig,
    rng: StdRng,
    stats: SignalFaultStats,
    previous: HashMap<String, ResourceMetrics>,
    skewed: HashMap<String, bool>,
}

impl SignalFaults {
    /// An injector following `config`, its draws seeded by `config.seed`.
    pub fn new(config: SignalFaultConfig) -> Self {
        let rng = StdRng::seed_from_u64(config.seed);
        SignalFaults {
            config,
            rng,
            stats: SignalFaultStats::default(),
            previous: HashMap::new(),
            skewed: HashMap::new(),
        }
    }

    /// The faults injected so far.
    pub fn stats(&self) -> SignalFaultStats {
        self.stats
    }

    /// Applies the faults to one tick's telemetry, one resource per pod. When `active` is
    /// false (outside the scenario's fault window) nothing is changed and nothing drawn, but
    /// the pods' points are still remembered, so a stale re-send at the window's start sends
    /// the true previous tick.
    pub fn apply(&mut self, tick: Vec<ResourceMetrics>, active: bool) -> Vec<ResourceMetrics> {
        let mut out = Vec::with_capacity(tick.len());
        let mut seen = HashMap::with_capacity(tick.len());
        for rm in tick {
            let Some(pod) = pod_key(&rm) else {
                // Not a pod's resource: nothing to remember or skew it by; pass it on.
                out.push(rm);
                continue;
            };
            let previous = self.previous.get(&pod).cloned();
            seen.insert(pod.clone(), rm.clone());
            if !active {
                out.push(rm);
                continue;
            }
            // Always two draws per pod, so one pod's fate does not shift the next pod's.
            let gap_draw: f64 = self.rng.random();
            let stale_draw: f64 = self.rng.random();
            if gap_draw < self.config.gap {
                self.stats.gaps += 1;
                continue;
            }
            let mut sent = match previous {
                Some(previous) if stale_draw < self.config.stale => {
                    self.stats.stale += 1;
                    previous
                }
                _ => rm,
            };
            self.poison(&mut sent);
            if self.is_skewed(&pod) {
                let skew = self.config.clock_skew.as_nanos();
                self.stats.skewed_points += shift_times(&mut sent, skew);
            }
            out.push(sent);
        }
        self.previous = seen;
        out
    }

    /// Replaces values with NaN, one draw per data point.
    fn poison(&mut self, rm: &mut ResourceMetrics) {
        let p = self.config.nan;
        for m in rm
            .scope_metrics
            .iter_mut()
            .flat_map(|s| s.metrics.iter_mut())
        {
            match &mut m.data {
                Some(metric::Data::Sum(s)) => {
                    for point in &mut s.data_points {
                        if self.rng.random::<f64>() < p {
                            point.value = Some(number_data_point::Value::AsDouble(f64::NAN));
                            self.stats.nan_points += 1;
                        }
                    }
                }
                Some(metric::Data::Gauge(g)) => {
                    for point in &mut g.data_points {
                        if self.rng.random::<f64>() < p {
                            point.value = Some(number_data_point::Value::AsDouble(f64::NAN));
                            self.stats.nan_points += 1;
                        }
                    }
                }
                Some(metric::Data::Histogram(h)) => {
                    for point in &mut h.data_points {
                        if self.rng.random::<f64>() < p {
                            point.sum = Some(f64::NAN);
                            self.stats.nan_points += 1;
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Whether `pod`'s clock is skewed, decided the first time the pod is seen: the k-th pod
    /// is skewed when it takes the count of skewed pods to the next whole multiple of
    /// `skewedFraction`, so exactly that fraction of pods is skewed, without a draw.
    fn is_skewed(&mut self, pod: &str) -> bool {
        if self.config.clock_skew.is_zero() || self.config.skewed_fraction <= 0.0 {
            return false;
        }
        if let Some(&skewed) = self.skewed.get(pod) {
            return skewed;
        }
        let k = self.skewed.len() as f64;
        let f = self.config.skewed_fraction;
        let skewed = ((k + 1.0) * f).floor() > (k * f).floor();
        self.skewed.insert(pod.to_owned(), skewed);
        if skewed {
            self.stats.skewed_pods += 1;
        }
        skewed
    }
}

/// The pod a resource describes (its UID, else its name).
fn pod_key(rm: &ResourceMetrics) -> Option<String> {
    let attrs = &rm.resource.as_ref()?.attributes;
    [semconv::K8S_POD_UID, semconv::K8S_POD_NAME]
        .into_iter()
        .find_map(|key| {
            attrs.iter().find(|kv| kv.key == key).and_then(|kv| {
                match kv.value.as_ref()?.value.as_ref()? {
                    any_value::Value::StringValue(s) if !s.is_empty() => Some(s.clone()),
                    _ => None,
                }
            })
        })
}

/// Shifts every point's time and start time by `skew` nanoseconds (as a skewed clock would
/// stamp them), clamped to the representable range; returns how many points it shifted.
fn shift_times(rm: &mut ResourceMetrics, skew: i128) -> u64 {
    let shift = |t: &mut u64| {
        if *t != 0 {
            *t = u64::try_from((i128::from(*t) + skew).max(1)).unwrap_or(u64::MAX);
        }
    };
    let mut n = 0;
    for m in rm
        .scope_metrics
        .iter_mut()
        .flat_map(|s| s.metrics.iter_mut())
    {
        match &mut m.data {
            Some(metric::Data::Sum(s)) => {
                for p in &mut s.data_points {
                    shift(&mut p.time_unix_nano);
                    shift(&mut p.start_time_unix_nano);
                    n += 1;
                }
            }
            Some(metric::Data::Gauge(g)) => {
                for p in &mut g.data_points {
                    shift(&mut p.time_unix_nano);
                    shift(&mut p.start_time_unix_nano);
                    n += 1;
                }
            }
            Some(metric::Data::Histogram(h)) => {
                for p in &mut h.data_points {
                    shift(&mut p.time_unix_nano);
                    shift(&mut p.start_time_unix_nano);
                    n += 1;
                }
            }
            _ => {}
        }
    }
    n
}

/// `+30s` / `-45s` in a scenario.
fn signed_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SignedDuration, D::Error> {
    let text = String::deserialize(deserializer)?;
    SignedDuration::parse(&text).map_err(D::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::{PodIdentity, PodSignals, pod_metrics};
    use homeostat_core::Timestamp;

    fn pods(now: Timestamp) -> Vec<ResourceMetrics> {
        (0..4)
            .map(|i| {
                let name = format!("web-{i}");
                let id = PodIdentity {
                    namespace: "shop",
                    deployment: "web",
                    pod: &name,
                    uid: &name,
                    node: "n1",
                    started: Timestamp::from_secs(1),
                };
                pod_metrics(&id, &PodSignals::default(), now)
            })
            .collect()
    }

    fn times(rms: &[ResourceMetrics]) -> Vec<u64> {
        rms.iter()
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|s| &s.metrics)
            .filter_map(|m| match &m.data {
                Some(metric::Data::Sum(s)) => s.data_points.first().map(|p| p.time_unix_nano),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn skews_parse_with_their_sign() {
        let plus = SignedDuration::parse("+30s").expect("valid");
        let minus = SignedDuration::parse("-45s").expect("valid");
        assert_eq!(plus.as_nanos(), 30_000_000_000);
        assert_eq!(minus.as_nanos(), -45_000_000_000);
        assert_eq!(
            SignedDuration::parse("20s").map(|d| d.as_nanos()),
            Ok(20_000_000_000)
        );
        assert!(SignedDuration::parse("+soon").is_err());
    }

    #[test]
    fn a_quarter_of_pods_are_skewed_and_every_point_of_theirs_shifts() {
        let mut f = SignalFaults::new(SignalFaultConfig {
            clock_skew: SignedDuration::parse("+20s").expect("valid"),
            skewed_fraction: 0.25,
            ..Default::default()
        });
        let now = Timestamp::from_secs(100);
        let out = f.apply(pods(now), true);
        let shifted = times(&out)
            .into_iter()
            .filter(|&t| t == 120_000_000_000)
            .count();
        // One pod of four: its five counters (CPU, exits, OOM kills, retransmits, resets)...
        assert_eq!(shifted, 5);
        assert_eq!(f.stats().skewed_pods, 1);
        // ... and all its eleven points: those (exits has one point per kind), three
        // histograms and the working-set gauge.
        assert_eq!(f.stats().skewed_points, 11);
    }

    #[test]
    fn stale_resends_the_previous_tick_and_inactive_changes_nothing() {
        let mut f = SignalFaults::new(SignalFaultConfig {
            stale: 1.0,
            ..Default::default()
        });
        let first = f.apply(pods(Timestamp::from_secs(100)), false);
        assert_eq!(first, pods(Timestamp::from_secs(100)));
        let second = f.apply(pods(Timestamp::from_secs(115)), true);
        assert_eq!(times(&second), vec![100_000_000_000; 4 * 5]);
        assert_eq!(f.stats().stale, 4);
    }

    #[test]
    fn gaps_and_nans_are_counted_and_replay_with_the_seed() {
        let config = SignalFaultConfig {
            seed: 3,
            gap: 0.3,
            nan: 0.2,
            ..Default::default()
        };
        let run = || {
            let mut f = SignalFaults::new(config.clone());
            let sent: usize = (0..50)
                .map(|i| f.apply(pods(Timestamp::from_secs(15 * i)), true).len())
                .sum();
            (sent, f.stats())
        };
        let (sent, stats) = run();
        assert_eq!(sent as u64 + stats.gaps, 200);
        assert!(stats.gaps > 0 && stats.nan_points > 0, "{stats:?}");
        assert_eq!(run(), (sent, stats));
    }
}
