//! Per-workload assessment: the detectors of one workload's series, and the rule that turns
//! their scores into an anomaly of a kind. Pure: fed samples, asked at a time.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use homeostat_core::{
    Anomaly, AnomalyKind, Contribution, Sample, Stat, Timestamp, WorkloadRef, signal,
};

use crate::detect::{BaselineConfig, Direction, RobustBaseline, Score};

/// The series the saturation rule reads, and which way is bad.
const WATCHED: &[(&str, Stat, Direction)] = &[
    (
        signal::HTTP_SERVER_REQUEST_DURATION,
        Stat::P99,
        Direction::Up,
    ),
    (
        signal::HTTP_SERVER_REQUEST_DURATION,
        Stat::Mean,
        Direction::Up,
    ),
    (signal::RUNQUEUE_LATENCY, Stat::P99, Direction::Up),
];

/// The latest score of one series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Latest {
    /// Sample time.
    pub time: Timestamp,
    /// The value.
    pub value: f64,
    /// Its score, once the detector is warm.
    pub score: Option<Score>,
}

/// An episode: consecutive time during which the workload was anomalous, and what was done.
#[derive(Clone, Debug, PartialEq)]
pub struct Episode {
    /// When it began.
    pub started: Timestamp,
    /// Last time it was seen anomalous.
    pub last_anomalous: Timestamp,
    /// The HPA's minReplicas before homeostat first raised it in this episode.
    pub raised_from: Option<u32>,
    /// The minReplicas homeostat last set in this episode: no further raise until that many
    /// pods are ready, so one raise is seen to work (or not) before the next.
    pub last_target: Option<u32>,
    /// When homeostat last raised minReplicas in this episode.
    pub last_raise: Option<Timestamp>,
}

/// What the brain knows about one workload.
#[derive(Clone, Debug)]
pub struct WorkloadState {
    workload: WorkloadRef,
    detectors: HashMap<(String, Stat), RobustBaseline>,
    latest: HashMap<(String, Stat), Latest>,
    /// The current or last episode.
    pub episode: Option<Episode>,
    /// Since when every assessed step has been normal (None while anomalous or before data).
    pub normal_since: Option<Timestamp>,
    /// Newest sample time.
    pub last_sample: Option<Timestamp>,
    /// Mean request latency of the last few steps, oldest first.
    recent_latency: VecDeque<(Timestamp, f64)>,
}

/// Run-queue delay (p99, seconds) from which CPU contention is real whatever the workload's
/// history: a baseline alone would call a quiet workload's modest rise "saturation" (say, when
/// the HPA scales a calm night down by a pod), and the loop would add replicas nobody needs.
pub const RUNQUEUE_SATURATED: f64 = 0.002;

/// Steps of mean latency kept to judge its trend.
const TREND_STEPS: usize = 3;

impl WorkloadState {
    /// A workload not seen before.
    pub fn new(workload: WorkloadRef) -> Self {
        WorkloadState {
            workload,
            detectors: HashMap::new(),
            latest: HashMap::new(),
            episode: None,
            normal_since: None,
            last_sample: None,
            recent_latency: VecDeque::with_capacity(TREND_STEPS),
        }
    }

    /// Whether mean request latency has fallen over each of the last steps: a saturated
    /// workload whose latency falls has enough capacity and is draining its queue, so more
    /// replicas would only be paid for, not needed.
    pub fn recovering(&self) -> bool {
        self.recent_latency.len() == TREND_STEPS
            && self
                .recent_latency
                .iter()
                .zip(self.recent_latency.iter().skip(1))
                .all(|(a, b)| b.1 < a.1)
    }

    /// Whether homeostat has changed this workload's scaling in the current episode: while it
    /// has, what the workload does is not its own normal, and baselines do not learn from it.
    pub fn intervened(&self) -> bool {
        self.episode
            .as_ref()
            .is_some_and(|e| e.raised_from.is_some())
    }

    /// Scores a sample against its series' baseline (and learns it if normal and homeostat has
    /// not intervened). Samples of series the rules do not watch are remembered, not scored.
    pub fn observe(&mut self, s: &Sample) -> Option<Score> {
        let learn = !self.intervened();
        let key = (s.signal.clone(), s.stat);
        let direction = WATCHED
            .iter()
            .find(|(n, st, _)| *n == s.signal && *st == s.stat)
            .map(|w| w.2);
        let score = direction.and_then(|direction| {
            self.detectors
                .entry(key.clone())
                .or_insert_with(|| {
                    RobustBaseline::new(BaselineConfig {
                        direction,
                        ..BaselineConfig::default()
                    })
                })
                .observe(s.value, learn)
        });
        self.latest.insert(
            key,
            Latest {
                time: s.time,
                value: s.value,
                score,
            },
        );
        self.last_sample = Some(self.last_sample.map_or(s.time, |t| t.max(s.time)));
        if s.signal == signal::HTTP_SERVER_REQUEST_DURATION && s.stat == Stat::Mean {
            if self
                .recent_latency
                .back()
                .is_some_and(|(t, _)| *t >= s.time)
            {
                self.recent_latency.clear();
            }
            if self.recent_latency.len() == TREND_STEPS {
                self.recent_latency.pop_front();
            }
            self.recent_latency.push_back((s.time, s.value));
        }
        score
    }

    /// The latest value of a series.
    pub fn latest(&self, signal: &str, stat: Stat) -> Option<Latest> {
        self.latest.get(&(signal.to_owned(), stat)).copied()
    }

    /// Judges the newest step at `at`: an anomaly when latency is anomalous, of kind
    /// saturation when run-queue delay is too (the pods are short of CPU, not waiting on
    /// something else). Also moves the episode and the normal streak along.
    pub fn assess(&mut self, at: Timestamp) -> Option<Anomaly> {
        let current = |sig: &str, stat: Stat| self.latest(sig, stat).filter(|l| l.time == at);
        let contributions: Vec<Contribution> = WATCHED
            .iter()
            .filter_map(|(sig, stat, _)| {
                let l = current(sig, *stat)?;
                let s = l.score?;
                s.anomalous.then(|| Contribution {
                    signal: (*sig).into(),
                    stat: *stat,
                    value: l.value,
                    baseline: s.level,
                    score: s.score,
                })
            })
            .collect();
        let scored = WATCHED
            .iter()
            .any(|(sig, stat, _)| current(sig, *stat).is_some_and(|l| l.score.is_some()));
        let latency = contributions
            .iter()
            .any(|c| c.signal == signal::HTTP_SERVER_REQUEST_DURATION);
        let runqueue = contributions
            .iter()
            .any(|c| c.signal == signal::RUNQUEUE_LATENCY && c.value >= RUNQUEUE_SATURATED);
        if !latency {
            if scored {
                self.normal_since.get_or_insert(at);
            }
            return None;
        }
        self.normal_since = None;
        let kind = if runqueue {
            AnomalyKind::Saturation
        } else {
            AnomalyKind::Unclassified
        };
        let episode = match &mut self.episode {
            // While homeostat's change is in effect the episode goes on, however long the calm
            // in between: a new one would forget what to restore.
            Some(e) if at.since(e.last_anomalous) <= EPISODE_GAP || e.raised_from.is_some() => e,
            slot => slot.insert(Episode {
                started: at,
                last_anomalous: at,
                raised_from: None,
                last_target: None,
                last_raise: None,
            }),
        };
        episode.last_anomalous = at;
        let mut contributions = contributions;
        contributions.sort_by(|a, b| b.score.total_cmp(&a.score));
        let score = contributions.iter().map(|c| c.score).fold(0.0, f64::max);
        Some(Anomaly {
            workload: self.workload.clone(),
            kind,
            score,
            started: episode.started,
            detected: at,
            contributions,
        })
    }
}

/// Two anomalous steps this close together belong to one episode.
pub const EPISODE_GAP: Duration = Duration::from_secs(5 * 60);

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(state: &mut WorkloadState, t: i64, latency: f64, runqueue: f64) -> Option<Anomaly> {
        let w = WorkloadRef::deployment("shop", "web");
        let at = Timestamp::from_secs(t);
        for (sig, stat, v) in [
            (signal::HTTP_SERVER_REQUEST_DURATION, Stat::P99, latency),
            (
                signal::HTTP_SERVER_REQUEST_DURATION,
                Stat::Mean,
                latency / 3.0,
            ),
            (signal::RUNQUEUE_LATENCY, Stat::P99, runqueue),
        ] {
            state.observe(&Sample::new(sig, stat, w.clone(), at, v).expect("finite"));
        }
        state.assess(at)
    }

    #[test]
    fn latency_and_runqueue_together_are_saturation_latency_alone_is_not() {
        let mut s = WorkloadState::new(WorkloadRef::deployment("shop", "web"));
        for i in 0..40 {
            let wobble = 1.0 + 0.02 * ((i as f64) * 0.9).sin();
            assert_eq!(feed(&mut s, i * 15, 0.1 * wobble, 0.0002 * wobble), None);
        }
        assert_eq!(
            s.normal_since,
            Some(Timestamp::from_secs(20 * 15)),
            "normal streak starts once scored"
        );
        let a = feed(&mut s, 40 * 15, 0.5, 0.0002).expect("latency anomaly");
        assert_eq!(a.kind, AnomalyKind::Unclassified);
        let a = feed(&mut s, 41 * 15, 0.6, 0.005).expect("saturation");
        assert_eq!(a.kind, AnomalyKind::Saturation);
        assert_eq!(a.started, Timestamp::from_secs(40 * 15), "one episode");
        assert!(a.score >= 0.999 && a.contributions.len() == 3, "{a:?}");
        assert_eq!(s.normal_since, None);
        assert_eq!(feed(&mut s, 42 * 15, 0.1, 0.0002), None);
        assert_eq!(s.normal_since, Some(Timestamp::from_secs(42 * 15)));
    }

    #[test]
    fn a_run_queue_rise_below_real_contention_is_not_saturation() {
        let mut s = WorkloadState::new(WorkloadRef::deployment("shop", "web"));
        for i in 0..40 {
            let wobble = 1.0 + 0.02 * ((i as f64) * 0.9).sin();
            feed(&mut s, i * 15, 0.1 * wobble, 0.0002 * wobble);
        }
        // Far above its baseline of 0.2 ms, but 1 ms is no CPU famine.
        let a = feed(&mut s, 40 * 15, 0.6, 0.001).expect("latency anomaly");
        assert_eq!(a.kind, AnomalyKind::Unclassified);
    }

    #[test]
    fn an_episode_with_a_change_in_effect_outlives_the_gap() {
        let mut s = WorkloadState::new(WorkloadRef::deployment("shop", "web"));
        for i in 0..40 {
            let wobble = 1.0 + 0.02 * ((i as f64) * 0.9).sin();
            feed(&mut s, i * 15, 0.1 * wobble, 0.0002 * wobble);
        }
        let first = feed(&mut s, 40 * 15, 0.6, 0.005).expect("saturation");
        if let Some(e) = s.episode.as_mut() {
            e.raised_from = Some(4);
        }
        let later = 40 * 15 + EPISODE_GAP.as_secs() as i64 + 60;
        let again = feed(&mut s, later, 0.6, 0.005).expect("saturation again");
        assert_eq!(again.started, first.started, "the same episode");
        assert_eq!(
            s.episode.as_ref().and_then(|e| e.raised_from),
            Some(4),
            "what to restore is kept"
        );
    }

    #[test]
    fn falling_latency_over_the_last_steps_is_recovery() {
        let mut s = WorkloadState::new(WorkloadRef::deployment("shop", "web"));
        for (i, latency) in [9.0, 8.0, 7.0].into_iter().enumerate() {
            feed(&mut s, i as i64 * 15, latency, 0.005);
        }
        assert!(s.recovering());
        feed(&mut s, 45, 7.5, 0.005);
        assert!(!s.recovering(), "a rise ends it");
    }

    #[test]
    fn nothing_is_judged_without_fresh_samples() {
        let mut s = WorkloadState::new(WorkloadRef::deployment("shop", "web"));
        for i in 0..30 {
            feed(&mut s, i * 15, 0.1, 0.0002);
        }
        assert_eq!(s.assess(Timestamp::from_secs(10_000)), None);
    }
}
