//! Per-workload assessment: the detectors of one workload's series, and the rules that turn
//! their scores into an anomaly of a kind. Pure: fed samples, asked at a time.
//!
//! Latency and run-queue delay say *that* the workload suffers; the kind says *why*, from
//! the evidence beside them: error exits (a crash loop), OOM kills or a steady climb of
//! memory (a leak), TCP retransmits and resets (the network), the sensor's own cost, and
//! whether the workload got more CPU than usual (saturation) or less (contention).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use homeostat_core::{
    Anomaly, AnomalyKind, Contribution, Sample, Stat, Timestamp, WorkloadRef, signal,
};
use serde::{Deserialize, Serialize};

use crate::detect::{
    BaselineConfig, Direction, EventConfig, EventRate, EventScore, Fitted, JointConfig, JointError,
    JointModel, JointScore, Queueing, RobustBaseline, Score, Season, SeasonConfig, Training, Trend,
    TrendConfig, TrendScore,
};
use crate::forecast::{Capacity, CapacityConfig, ForecastConfig, LoadForecast};

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

/// The series the joint model reads, with the floor below which a value is taken as the floor
/// (its logarithm would otherwise make noise of nothing): load and what it costs, whose
/// relation (CPU per request) the model learns. Latency was measured and left out: mean and
/// p99 latency and run-queue delay follow the autoscaler's steps and the traffic's mix more
/// than the load, and raised false alarms in the quiet weeks (docs/detection.md).
pub const JOINT: &[(&str, Stat, f64)] = &[
    (signal::HTTP_SERVER_REQUEST_DURATION, Stat::Rate, 1e-3),
    (signal::CPU_TIME, Stat::Rate, 1e-3),
];

/// The latency statistics whose answer to the load per pod is learned ([`Queueing`]): a rise
/// of them alone that the load explains is the load's, not an anomaly.
const LOAD_EXPLAINED: [Stat; 2] = [Stat::P99, Stat::Mean];

/// Series of events that should (almost) never happen, and the kind each points to.
fn event_kind(series: &str) -> Option<AnomalyKind> {
    if series == signal::OOM_KILLS {
        Some(AnomalyKind::MemoryLeak)
    } else if series == signal::TCP_RETRANSMITS || series == signal::TCP_RESETS {
        Some(AnomalyKind::Network)
    } else if matches!(
        series.strip_prefix(signal::PROCESS_EXITS),
        Some("{exit.kind=error}" | "{exit.kind=signal}")
    ) {
        // The names `signal::series_name` gives error and signal exits; matched without
        // building them, since this runs for every rate sample.
        Some(AnomalyKind::CrashLoop)
    } else {
        None
    }
}

/// The sensor's CPU budget, a fraction of one CPU: above it the sensor costs more than the
/// insight is worth (the default of 1 %).
pub const SENSOR_BUDGET: f64 = 0.01;

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

/// A steady climb of a workload's largest memory working set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Leak {
    /// How fast, bytes per second (Theil–Sen).
    pub bytes_per_second: f64,
    /// When the climb was last significant.
    pub seen: Timestamp,
}

/// An event series' detector and its newest score.
#[derive(Clone, Debug)]
struct EventSeries {
    detector: EventRate,
    latest: Option<(Timestamp, EventScore)>,
}

/// What the brain knows about one workload.
#[derive(Clone, Debug)]
pub struct WorkloadState {
    workload: WorkloadRef,
    /// Length of one step of the series: a rate times it is the step's count.
    step: Duration,
    detectors: HashMap<(String, Stat), RobustBaseline>,
    /// The daily or weekly seasons of the watched series, once found.
    seasons: HashMap<(String, Stat), Season>,
    latest: HashMap<(String, Stat), Latest>,
    events: HashMap<String, EventSeries>,
    memory: Trend,
    memory_latest: Option<(Timestamp, f64, TrendScore)>,
    /// The last steady climb of memory seen: a leak does not stop because a restart reset
    /// the pod that showed it, so its rate outlives the trend window.
    leak: Option<Leak>,
    /// The node whose sensor cost the most at the last step, and what it cost.
    sensor_hot: Option<(Timestamp, String, f64)>,
    /// The run-queue delay (p99, seconds) of the workload's pods on each node, and when.
    runqueue_by_node: HashMap<String, (Timestamp, f64)>,
    /// The current or last episode.
    pub episode: Option<Episode>,
    /// Since when every assessed step has been normal (None while anomalous or before data).
    pub normal_since: Option<Timestamp>,
    /// Newest sample time.
    pub last_sample: Option<Timestamp>,
    /// Mean request latency of the last few steps, oldest first.
    recent_latency: VecDeque<(Timestamp, f64)>,
    /// The model of how the [`JOINT`] series move together.
    joint: JointModel,
    /// Its newest score.
    joint_latest: Option<(Timestamp, JointScore)>,
    /// How each [`LOAD_EXPLAINED`] latency answers the load per pod.
    queueing: [Queueing; 2],
    /// The forecast of the workload's request rate.
    pub load: LoadForecast,
    /// What one of its ready replicas serves.
    pub capacity: Capacity,
    /// When the engine last read its replicas to learn the capacity.
    pub capacity_read: Option<Timestamp>,
    /// Whether every raise in effect was made ahead of a forecast rise (none for saturation),
    /// so the request rate is still the demand's and its forecast still means something.
    pub raised_ahead: bool,
    /// The CUSUM allowance of its baselines; `None` for none.
    change_allowance: Option<f64>,
}

/// Series scored for context: they decide the kind, never raise an anomaly by themselves.
const CONTEXT: &[(&str, Stat, Direction)] = &[(signal::CPU_TIME, Stat::Rate, Direction::Both)];

/// Run-queue delay (p99, seconds) from which CPU contention is real whatever the workload's
/// history: a baseline alone would call a quiet workload's modest rise "saturation" (say, when
/// the HPA scales a calm night down by a pod), and the loop would add replicas nobody needs.
pub const RUNQUEUE_SATURATED: f64 = 0.002;

/// How many times longer one node's run queue must be than on every other node of the
/// workload for the trouble to be that node's.
pub const CONTENTION_RATIO: f64 = 4.0;

/// The rise of latency above its level (a fraction of it) that is an anomaly when one node's
/// run queue is [`CONTENTION_RATIO`] times every other node's. Alone a series must rise by the
/// baseline's 50 % to matter; here the kernel has said independently that something takes the
/// CPU of one node, so a rise users notice, and beyond the series' noise, is enough. A busy
/// hour lengthens every node's queue and is never such a rise.
pub const CORROBORATED_EFFECT: f64 = 0.2;

/// Steps of mean latency kept to judge its trend.
const TREND_STEPS: usize = 3;

/// What a workload's detectors have learned, as kept across restarts: the baselines of its
/// series, its event rates and its memory trend. What only holds for a moment (the latest
/// scores, the episode) is not kept; the journal restores the episode.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Learned {
    /// The workload.
    pub workload: WorkloadRef,
    baselines: Vec<(String, Stat, RobustBaseline)>,
    events: Vec<(String, EventRate)>,
    memory: Trend,
    #[serde(default)]
    seasons: Vec<(String, Stat, Season)>,
    #[serde(default = "default_joint")]
    joint: JointModel,
    #[serde(default = "default_load")]
    load: LoadForecast,
    #[serde(default = "default_capacity")]
    capacity: Capacity,
    #[serde(default)]
    queueing: [Queueing; 2],
}

fn default_load() -> LoadForecast {
    LoadForecast::new(ForecastConfig::default())
}

fn default_capacity() -> Capacity {
    Capacity::new(CapacityConfig::default())
}

fn default_joint() -> JointModel {
    JointModel::new(JointConfig::default())
}

impl WorkloadState {
    /// A workload not seen before, whose series come in steps of `step`.
    pub fn new(workload: WorkloadRef, step: Duration) -> Self {
        WorkloadState {
            workload,
            step,
            detectors: HashMap::new(),
            seasons: HashMap::new(),
            latest: HashMap::new(),
            events: HashMap::new(),
            memory: Trend::new(TrendConfig::default()),
            memory_latest: None,
            leak: None,
            sensor_hot: None,
            runqueue_by_node: HashMap::new(),
            episode: None,
            normal_since: None,
            last_sample: None,
            recent_latency: VecDeque::with_capacity(TREND_STEPS),
            joint: default_joint(),
            joint_latest: None,
            queueing: Default::default(),
            load: default_load(),
            capacity: default_capacity(),
            capacity_read: None,
            raised_ahead: false,
            change_allowance: None,
        }
    }

    /// Gives every baseline, those learned already and those to come, a CUSUM with this
    /// allowance (`None`: none), as the brain is configured now.
    pub fn with_change_allowance(mut self, allowance: Option<f64>) -> Self {
        self.change_allowance = allowance;
        for d in self.detectors.values_mut() {
            d.set_change_allowance(allowance);
        }
        self
    }

    /// What the detectors have learned, to be kept across a restart.
    pub fn learned(&self) -> Learned {
        let mut events: Vec<(String, EventRate)> = self
            .events
            .iter()
            .map(|(series, e)| (series.clone(), e.detector.clone()))
            .collect();
        events.sort_by(|a, b| a.0.cmp(&b.0));
        Learned {
            seasons: by_series(&self.seasons),
            workload: self.workload.clone(),
            baselines: by_series(&self.detectors),
            events,
            memory: self.memory.clone(),
            joint: self.joint.clone(),
            load: self.load.clone(),
            capacity: self.capacity.clone(),
            queueing: self.queueing,
        }
    }

    /// A workload that resumes what `learned` holds.
    pub fn resume(learned: Learned, step: Duration) -> Self {
        let mut state = WorkloadState::new(learned.workload, step);
        state.detectors = learned
            .baselines
            .into_iter()
            .map(|(signal, stat, d)| ((signal, stat), d))
            .collect();
        state.events = learned
            .events
            .into_iter()
            .map(|(series, detector)| {
                let e = EventSeries {
                    detector,
                    latest: None,
                };
                (series, e)
            })
            .collect();
        state.memory = learned.memory;
        state.seasons = learned
            .seasons
            .into_iter()
            .map(|(signal, stat, s)| ((signal, stat), s))
            .collect();
        state.joint = learned.joint;
        state.load = learned.load;
        state.capacity = learned.capacity;
        state.queueing = learned.queueing;
        state
    }

    /// Requests per second per pod that served any at `at`: what queues in each.
    pub fn load_per_pod(&self, at: Timestamp) -> Option<f64> {
        let rate = self
            .latest(signal::HTTP_SERVER_REQUEST_DURATION, Stat::Rate)
            .filter(|l| l.time == at)?;
        let pods = self
            .latest(signal::SERVING_PODS, Stat::Value)
            .filter(|l| l.time == at && l.value >= 1.0)?;
        Some(rate.value / pods.value).filter(|x| x.is_finite() && *x > 0.0)
    }

    /// The [`LOAD_EXPLAINED`] latencies measured at `at`, in that order.
    fn latencies_at(&self, at: Timestamp) -> [Option<f64>; 2] {
        LOAD_EXPLAINED.map(|stat| {
            self.latest(signal::HTTP_SERVER_REQUEST_DURATION, stat)
                .filter(|l| l.time == at)
                .map(|l| l.value)
        })
    }

    /// The [`JOINT`] series present at `at` (bit i for the i-th) and their logarithms.
    pub fn joint_features(&self, at: Timestamp) -> Option<(u32, Vec<f64>)> {
        let mut mask = 0;
        let mut x = Vec::with_capacity(JOINT.len());
        for (i, (sig, stat, floor)) in JOINT.iter().enumerate() {
            if let Some(l) = self.latest(sig, *stat).filter(|l| l.time == at)
                && l.value.is_finite()
            {
                mask |= 1 << i;
                x.push(l.value.max(*floor).ln());
            }
        }
        (x.len() >= 2).then_some((mask, x))
    }

    /// The joint model's score at `at`, once it is fitted.
    pub fn joint_score(&self, at: Timestamp) -> Option<&JointScore> {
        self.joint_latest
            .as_ref()
            .filter(|(t, _)| *t == at)
            .map(|(_, s)| s)
    }

    /// A snapshot of the joint model's window when a refit is due, to fit off the scoring
    /// path and hand back with [`WorkloadState::install_joint`].
    pub fn joint_training(&mut self) -> Option<Training> {
        self.joint.training()
    }

    /// Puts a joint model fitted from [`WorkloadState::joint_training`] in use.
    pub fn install_joint(&mut self, fitted: Result<Fitted, JointError>) -> Result<(), JointError> {
        self.joint.install(fitted)
    }

    /// Whether the joint model has been fitted.
    pub fn joint_fitted(&self) -> bool {
        self.joint.is_fitted()
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

    /// Scores a sample against its series' model (and learns it if normal and homeostat has
    /// not intervened). Returns whether the sample was scored. Samples of series no rule reads
    /// are remembered, not scored.
    pub fn observe(&mut self, s: &Sample) -> bool {
        let learn = !self.intervened();
        self.last_sample = Some(self.last_sample.map_or(s.time, |t| t.max(s.time)));
        if let Some(node) = &s.node
            && s.signal == signal::RUNQUEUE_LATENCY
            && s.stat == Stat::P99
        {
            // One node's share of the workload-wide series: where, not whether.
            self.runqueue_by_node
                .insert(node.clone(), (s.time, s.value));
            return false;
        }
        if s.stat == Stat::Rate && event_kind(&s.signal).is_some() {
            let seconds = self.step.as_secs_f64();
            let series = self
                .events
                .entry(s.signal.clone())
                .or_insert_with(|| EventSeries {
                    detector: EventRate::new(EventConfig::default()),
                    latest: None,
                });
            let score = series.detector.observe(s.value * seconds, seconds, learn);
            if let Some(score) = score {
                series.latest = Some((s.time, score));
            }
            return score.is_some();
        }
        if s.signal == signal::K8S_POD_MEMORY_WORKING_SET && s.stat == Stat::Max {
            let score = self.memory.observe(s.value);
            self.latest.insert(
                (s.signal.clone(), s.stat),
                Latest {
                    time: s.time,
                    value: s.value,
                    score: None,
                },
            );
            if let Some(score) = score {
                self.memory_latest = Some((s.time, s.value, score));
                if score.rising {
                    self.leak = Some(Leak {
                        bytes_per_second: score.slope / self.step.as_secs_f64(),
                        seen: s.time,
                    });
                }
            }
            return score.is_some();
        }
        if s.signal == signal::SENSOR_OVERHEAD
            && s.stat == Stat::Max
            && let Some(node) = &s.node
        {
            self.sensor_hot = Some((s.time, node.clone(), s.value));
        }
        if s.signal == signal::HTTP_SERVER_REQUEST_DURATION && s.stat == Stat::Rate {
            // Served requests are the load, whatever homeostat did to the replicas.
            self.load.observe(s.time, s.value);
        }
        let key = (s.signal.clone(), s.stat);
        let direction = WATCHED
            .iter()
            .chain(CONTEXT)
            .find(|(n, st, _)| *n == s.signal && *st == s.stat)
            .map(|w| w.2);
        let watched = WATCHED
            .iter()
            .any(|(n, st, _)| *n == s.signal && *st == s.stat);
        let score = direction.and_then(|direction| {
            let baseline = self.detectors.entry(key.clone()).or_insert_with(|| {
                RobustBaseline::new(BaselineConfig {
                    direction,
                    change_allowance: self.change_allowance,
                    ..BaselineConfig::default()
                })
            });
            if !watched {
                return baseline.observe(s.value, learn);
            }
            let season = self
                .seasons
                .entry(key.clone())
                .or_insert_with(|| Season::new(SeasonConfig::default()));
            let mut score = baseline.judge(s.value);
            if let Some(sc) = &mut score
                && sc.anomalous
                && direction == Direction::Up
                && (season.usual_at(s.time, s.value) || season.within_daily_range(s.value))
            {
                // As high as this time of day (or week) usually is, or as the series spends its
                // days at: its season or its range, not trouble.
                sc.anomalous = false;
            }
            if learn {
                season.observe(s.time, s.value);
                if !score.is_some_and(|sc| sc.anomalous) {
                    baseline.learn(s.value);
                }
            }
            score
        });
        self.latest.insert(
            key,
            Latest {
                time: s.time,
                value: s.value,
                score,
            },
        );
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
        score.is_some()
    }

    /// Whether the run queue at `at` is back under the saturation floor. A workload whose
    /// run queue is not measured at all passes; one whose measurement is missing at `at`
    /// does not, since missing data must not lead to taking capacity away.
    pub fn cpu_pressure_gone(&self, at: Timestamp) -> bool {
        match self.latest(signal::RUNQUEUE_LATENCY, Stat::P99) {
            None => true,
            Some(l) => l.time == at && l.value < RUNQUEUE_SATURATED,
        }
    }

    /// The node whose sensor cost the most at `at`, with that cost (fraction of a CPU).
    pub fn sensor_hot_node(&self, at: Timestamp) -> Option<(&str, f64)> {
        self.sensor_hot
            .as_ref()
            .filter(|(t, _, _)| *t == at)
            .map(|(_, node, cost)| (node.as_str(), *cost))
    }

    /// The one node on which the workload's run queue is long at `at` while its pods on the
    /// other nodes wait at most a [`CONTENTION_RATIO`]th as long: something there takes the
    /// CPU, and moving pods off it helps where more replicas would only partly. Returns the
    /// node, its delay and the longest delay elsewhere (p99, seconds). `None` with fewer than
    /// two nodes measured at `at`, or when the delay is spread (demand, not a node).
    pub fn contended_node(&self, at: Timestamp) -> Option<(&str, f64, f64)> {
        let mut now: Vec<(&str, f64)> = self
            .runqueue_by_node
            .iter()
            .filter(|(_, (t, v))| *t == at && v.is_finite())
            .map(|(n, (_, v))| (n.as_str(), *v))
            .collect();
        now.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
        let (&(node, worst), rest) = now.split_first()?;
        let next = rest.first()?.1;
        (worst >= RUNQUEUE_SATURATED && worst >= CONTENTION_RATIO * next)
            .then_some((node, worst, next))
    }

    /// The run-queue delay (p99, seconds) of the workload's pods on `node` at `at`.
    pub fn runqueue_on(&self, node: &str, at: Timestamp) -> Option<f64> {
        self.runqueue_by_node
            .get(node)
            .filter(|(t, _)| *t == at)
            .map(|(_, v)| *v)
    }

    /// The memory leak last seen, if it was seen within `within` of `at`.
    pub fn leak(&self, at: Timestamp, within: Duration) -> Option<Leak> {
        self.leak.filter(|l| at.since(l.seen) <= within)
    }

    /// The newest judgement of one series by its detector, whichever kind it is: when, its
    /// score, and whether that reached the detector's threshold. `None` before the detector
    /// has judged anything. What verifies an action reads.
    pub fn judged(&self, series: &str, stat: Stat) -> Option<(Timestamp, f64, bool)> {
        if stat == Stat::Rate
            && let Some(e) = self.events.get(series)
        {
            return e.latest.map(|(t, s)| (t, s.score, s.anomalous));
        }
        if series == signal::K8S_POD_MEMORY_WORKING_SET && stat == Stat::Max {
            return self.memory_latest.map(|(t, _, s)| (t, s.score, s.rising));
        }
        let l = self.latest(series, stat)?;
        if series == signal::SENSOR_OVERHEAD && stat == Stat::Max {
            // A budget rather than a baseline.
            return Some((l.time, l.value / SENSOR_BUDGET, l.value > SENSOR_BUDGET));
        }
        l.score.map(|s| (l.time, s.score, s.anomalous))
    }

    /// The latest value of a series.
    pub fn latest(&self, signal: &str, stat: Stat) -> Option<Latest> {
        self.latest.get(&(signal.to_owned(), stat)).copied()
    }

    /// Judges the newest step at `at`: an anomaly when latency is anomalous or other evidence
    /// (events, memory, the sensor's cost) is, of the kind the evidence points to. Also moves
    /// the episode and the normal streak along.
    pub fn assess(&mut self, at: Timestamp) -> Option<Anomaly> {
        let current = |sig: &str, stat: Stat| self.latest(sig, stat).filter(|l| l.time == at);
        let threshold = BaselineConfig::default().threshold;
        // Which node is contended matters only to a latency rise beyond the noise; most
        // steps have none, and are spared the look across nodes.
        let significant = WATCHED.iter().any(|(sig, stat, _)| {
            *sig == signal::HTTP_SERVER_REQUEST_DURATION
                && current(sig, *stat)
                    .and_then(|l| l.score)
                    .is_some_and(|s| s.score >= threshold)
        });
        let contended = significant && self.contended_node(at).is_some();
        let mut contributions: Vec<Contribution> = WATCHED
            .iter()
            .filter_map(|(sig, stat, _)| {
                let l = current(sig, *stat)?;
                let s = l.score?;
                let corroborated = contended
                    && *sig == signal::HTTP_SERVER_REQUEST_DURATION
                    && s.score >= threshold
                    && l.value - s.level >= CORROBORATED_EFFECT * s.level.abs();
                (s.anomalous || corroborated).then(|| Contribution {
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
        let load = self.load_per_pod(at);
        // Latency whose every anomalous statistic is what a queue does with this load per pod.
        let load_explains = latency
            && load.is_some_and(|x| {
                contributions
                    .iter()
                    .filter(|c| c.signal == signal::HTTP_SERVER_REQUEST_DURATION)
                    .all(|c| {
                        LOAD_EXPLAINED
                            .iter()
                            .position(|s| *s == c.stat)
                            .is_some_and(|i| self.queueing[i].explains(x, c.value))
                    })
            });
        let runqueue = contended
            || contributions
                .iter()
                .any(|c| c.signal == signal::RUNQUEUE_LATENCY && c.value >= RUNQUEUE_SATURATED);
        let evidence = self.evidence(at);
        let kinds: Vec<AnomalyKind> = evidence.iter().map(|(k, _)| *k).collect();
        contributions.extend(evidence.into_iter().map(|(_, c)| c));
        let features = self.joint_features(at);
        let joint = features
            .as_ref()
            .and_then(|(mask, x)| self.joint.score(*mask, x));
        let joint_anomalous = joint.as_ref().is_some_and(|j| j.anomalous);
        if let (Some(j), Some((mask, x))) = (&joint, &features)
            && j.anomalous
        {
            contributions.extend(joint_contributions(*mask, x, j, &contributions));
        }

        let kind = if latency && runqueue {
            // Short of CPU: because demand grew (saturation, which replicas fix), or because
            // something else on the nodes took the CPU (contention, which they may not).
            let more_cpu = current(signal::CPU_TIME, Stat::Rate)
                .and_then(|l| l.score)
                .is_none_or(|s| s.z > 0.0);
            Some(if more_cpu {
                AnomalyKind::Saturation
            } else {
                AnomalyKind::CpuContention
            })
        } else {
            [
                AnomalyKind::MemoryLeak,
                AnomalyKind::CrashLoop,
                AnomalyKind::SensorOverload,
                AnomalyKind::Network,
            ]
            .into_iter()
            .find(|k| kinds.contains(k))
            .or(((latency && !load_explains) || joint_anomalous)
                .then_some(AnomalyKind::Unclassified))
        };
        self.joint_latest = joint.map(|j| (at, j));
        let Some(kind) = kind else {
            if scored {
                self.normal_since.get_or_insert(at);
            }
            if !self.intervened() {
                if let Some((mask, x)) = features {
                    self.joint.learn(mask, &x);
                }
                if let Some(x) = load {
                    let latencies = self.latencies_at(at);
                    for (fit, latency) in self.queueing.iter_mut().zip(latencies) {
                        if let Some(latency) = latency {
                            fit.learn(x, latency);
                        }
                    }
                }
            }
            return None;
        };
        self.normal_since = None;
        if joint_anomalous && kind == AnomalyKind::Unclassified && !latency && kinds.is_empty() {
            self.joint.objected_alone();
        }
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

    /// What besides latency is anomalous at `at`, with the kind each points to.
    fn evidence(&self, at: Timestamp) -> Vec<(AnomalyKind, Contribution)> {
        let mut out = Vec::new();
        let window = EventConfig::default().window as f64 * self.step.as_secs_f64();
        for (series, e) in &self.events {
            let (Some(kind), Some((t, s))) = (event_kind(series), e.latest) else {
                continue;
            };
            if t == at && s.anomalous {
                out.push((
                    kind,
                    Contribution {
                        signal: series.clone(),
                        stat: Stat::Rate,
                        value: s.count / window,
                        baseline: s.expected / window,
                        score: s.score,
                    },
                ));
            }
        }
        if let Some((t, value, s)) = self.memory_latest
            && t == at
            && s.rising
        {
            out.push((
                AnomalyKind::MemoryLeak,
                Contribution {
                    signal: signal::K8S_POD_MEMORY_WORKING_SET.into(),
                    stat: Stat::Max,
                    value,
                    baseline: s.level,
                    score: s.score,
                },
            ));
        }
        if let Some(l) = self.latest(signal::SENSOR_OVERHEAD, Stat::Max)
            && l.time == at
            && l.value > SENSOR_BUDGET
        {
            // A budget, not a baseline: over it is too much however it got there.
            out.push((
                AnomalyKind::SensorOverload,
                Contribution {
                    signal: signal::SENSOR_OVERHEAD.into(),
                    stat: Stat::Max,
                    value: l.value,
                    baseline: SENSOR_BUDGET,
                    score: 1.0,
                },
            ));
        }
        out.sort_by(|a, b| a.1.signal.cmp(&b.1.signal));
        out
    }
}

/// What is kept per series, as a list in series order (the journal's bytes do not depend on a
/// hash map's order).
fn by_series<T: Clone>(map: &HashMap<(String, Stat), T>) -> Vec<(String, Stat, T)> {
    let mut out: Vec<(String, Stat, T)> = map
        .iter()
        .map(|((signal, stat), v)| (signal.clone(), *stat, v.clone()))
        .collect();
    out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    out
}

/// The [`JOINT`] series that stray furthest from what the joint model expects of them given
/// the others, those within half the largest departure, skipping series already listed.
fn joint_contributions(
    mask: u32,
    x: &[f64],
    joint: &JointScore,
    listed: &[Contribution],
) -> Vec<Contribution> {
    let present = JOINT
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1 << i) != 0)
        .map(|(_, j)| j);
    let departures: Vec<(&(&str, Stat, f64), f64, f64)> = present
        .zip(x.iter().zip(&joint.expected))
        .map(|(j, (v, e))| (j, *v, *e))
        .collect();
    let largest = departures
        .iter()
        .map(|(_, v, e)| (v - e).abs())
        .fold(0.0, f64::max);
    departures
        .into_iter()
        .filter(|(_, v, e)| (v - e).abs() >= 0.5 * largest)
        .filter(|((sig, stat, _), _, _)| {
            !listed.iter().any(|c| c.signal == *sig && c.stat == *stat)
        })
        .map(|((sig, stat, _), v, e)| Contribution {
            signal: (*sig).into(),
            stat: *stat,
            value: v.exp(),
            baseline: e.exp(),
            score: joint.score,
        })
        .collect()
}

/// Two anomalous steps this close together belong to one episode.
pub const EPISODE_GAP: Duration = Duration::from_secs(5 * 60);

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: Duration = Duration::from_secs(15);

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
        let mut s = WorkloadState::new(WorkloadRef::deployment("shop", "web"), STEP);
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
        let mut s = WorkloadState::new(WorkloadRef::deployment("shop", "web"), STEP);
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
        let mut s = WorkloadState::new(WorkloadRef::deployment("shop", "web"), STEP);
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
        let mut s = WorkloadState::new(WorkloadRef::deployment("shop", "web"), STEP);
        for (i, latency) in [9.0, 8.0, 7.0].into_iter().enumerate() {
            feed(&mut s, i as i64 * 15, latency, 0.005);
        }
        assert!(s.recovering());
        feed(&mut s, 45, 7.5, 0.005);
        assert!(!s.recovering(), "a rise ends it");
    }

    fn sample(sig: &str, stat: Stat, t: i64, v: f64) -> Sample {
        let w = WorkloadRef::deployment("shop", "web");
        Sample::new(sig, stat, w, Timestamp::from_secs(t), v).expect("finite")
    }

    /// Forty calm steps of latency, run-queue delay and CPU, plus `extra` each step.
    fn calm(extra: impl Fn(i64) -> Vec<Sample>) -> WorkloadState {
        let mut s = WorkloadState::new(WorkloadRef::deployment("shop", "web"), STEP);
        for i in 0..40 {
            let wobble = 1.0 + 0.02 * ((i as f64) * 0.9).sin();
            s.observe(&sample(signal::CPU_TIME, Stat::Rate, i * 15, 2.0 * wobble));
            for x in extra(i) {
                s.observe(&x);
            }
            assert_eq!(feed(&mut s, i * 15, 0.1 * wobble, 0.0002 * wobble), None);
        }
        s
    }

    fn error_exits() -> String {
        signal::series_name(signal::PROCESS_EXITS, &[(signal::EXIT_KIND, "error")])
    }

    #[test]
    fn the_configured_cusum_reaches_the_baselines_learned_and_those_to_come() {
        let s = calm(|_| vec![]);
        assert!(
            s.detectors
                .values()
                .all(|d| d.config().change_allowance.is_none())
        );
        let resumed = WorkloadState::resume(s.learned(), STEP).with_change_allowance(Some(0.5));
        let mut fresh = WorkloadState::new(WorkloadRef::deployment("shop", "web"), STEP)
            .with_change_allowance(Some(0.5));
        fresh.observe(&sample(signal::CPU_TIME, Stat::Rate, 0, 2.0));
        feed(&mut fresh, 0, 0.1, 0.0002);
        for s in [resumed, fresh] {
            assert_eq!(s.detectors.len(), WATCHED.len() + CONTEXT.len());
            assert!(
                s.detectors
                    .values()
                    .all(|d| d.config().change_allowance == Some(0.5))
            );
        }
    }

    #[test]
    fn a_burst_of_error_exits_is_a_crash_loop_even_with_calm_latency() {
        let mut s = calm(|i| vec![sample(&error_exits(), Stat::Rate, i * 15, 0.0)]);
        // One error exit a step (pods restarting in a loop): 1/15 per second.
        let mut found = None;
        for i in 40..44 {
            s.observe(&sample(&error_exits(), Stat::Rate, i * 15, 1.0 / 15.0));
            found = found.or(feed(&mut s, i * 15, 0.1, 0.0002));
        }
        let a = found.expect("crash loop found within four steps");
        assert_eq!(a.kind, AnomalyKind::CrashLoop);
        assert_eq!(a.contributions[0].signal, error_exits());
        assert_eq!(s.normal_since, None);
    }

    #[test]
    fn oom_kills_and_a_steady_memory_climb_are_a_memory_leak() {
        let mib = 1024.0 * 1024.0;
        let mut s = calm(|i| {
            vec![
                sample(signal::OOM_KILLS, Stat::Rate, i * 15, 0.0),
                sample(
                    signal::K8S_POD_MEMORY_WORKING_SET,
                    Stat::Max,
                    i * 15,
                    (200.0 + ((i as f64) * 1.3).sin()) * mib,
                ),
            ]
        });
        let mut found = None;
        for i in 40..80 {
            let leaked = 2.0 * (i - 40) as f64;
            s.observe(&sample(signal::OOM_KILLS, Stat::Rate, i * 15, 0.0));
            s.observe(&sample(
                signal::K8S_POD_MEMORY_WORKING_SET,
                Stat::Max,
                i * 15,
                (200.0 + leaked) * mib,
            ));
            if let Some(a) = feed(&mut s, i * 15, 0.1, 0.0002) {
                found.get_or_insert((i, a));
            }
        }
        let (i, a) = found.expect("the climb is found before any OOM kill");
        assert_eq!(a.kind, AnomalyKind::MemoryLeak);
        assert!(
            i < 65,
            "found at step {i}: within 25 steps of the climb starting"
        );
        let mut oom = calm(|i| vec![sample(signal::OOM_KILLS, Stat::Rate, i * 15, 0.0)]);
        oom.observe(&sample(signal::OOM_KILLS, Stat::Rate, 600, 3.0 / 15.0));
        let a = feed(&mut oom, 600, 0.1, 0.0002).expect("three OOM kills at once");
        assert_eq!(a.kind, AnomalyKind::MemoryLeak);
    }

    #[test]
    fn retransmits_are_network_and_the_sensor_over_budget_is_overload() {
        let mut s = calm(|i| vec![sample(signal::TCP_RETRANSMITS, Stat::Rate, i * 15, 0.2)]);
        s.observe(&sample(signal::TCP_RETRANSMITS, Stat::Rate, 600, 20.0));
        let a = feed(&mut s, 600, 0.4, 0.0002).expect("network");
        assert_eq!(a.kind, AnomalyKind::Network);
        let mut sensor = calm(|i| vec![sample(signal::SENSOR_OVERHEAD, Stat::Max, i * 15, 0.002)]);
        sensor.observe(&sample(signal::SENSOR_OVERHEAD, Stat::Max, 600, 0.08));
        let a = feed(&mut sensor, 600, 0.1, 0.0002).expect("over budget");
        assert_eq!(a.kind, AnomalyKind::SensorOverload);
        assert_eq!((a.contributions[0].value, a.score), (0.08, 1.0));
    }

    #[test]
    fn short_of_cpu_with_less_cpu_than_usual_is_contention_with_more_is_saturation() {
        let mut s = calm(|_| Vec::new());
        s.observe(&sample(signal::CPU_TIME, Stat::Rate, 600, 1.5));
        let a = feed(&mut s, 600, 0.6, 0.005).expect("short of CPU");
        assert_eq!(a.kind, AnomalyKind::CpuContention);
        let mut s = calm(|_| Vec::new());
        s.observe(&sample(signal::CPU_TIME, Stat::Rate, 600, 3.0));
        let a = feed(&mut s, 600, 0.6, 0.005).expect("short of CPU");
        assert_eq!(a.kind, AnomalyKind::Saturation);
    }

    /// One step of a workload whose load swings between 50 and 150 req/s, CPU following it
    /// at `cpu_per_request` core-seconds a request, latency steady.
    fn step_at(s: &mut WorkloadState, i: i64, load: f64, cpu_per_request: f64) -> Option<Anomaly> {
        let wobble = 1.0 + 0.03 * ((i as f64) * 1.7).sin();
        let t = i * 15;
        for (sig, stat, v) in [
            (signal::HTTP_SERVER_REQUEST_DURATION, Stat::Rate, load),
            (
                signal::CPU_TIME,
                Stat::Rate,
                load * cpu_per_request * wobble,
            ),
            (
                signal::HTTP_SERVER_REQUEST_DURATION,
                Stat::Mean,
                0.03 * wobble,
            ),
            (
                signal::HTTP_SERVER_REQUEST_DURATION,
                Stat::P99,
                0.1 * wobble,
            ),
            (signal::RUNQUEUE_LATENCY, Stat::P99, 0.0002 * wobble),
        ] {
            s.observe(&sample(sig, stat, t, v));
        }
        let a = s.assess(Timestamp::from_secs(t));
        if let Some(training) = s.joint_training() {
            s.install_joint(training.fit()).expect("fit");
        }
        a
    }

    #[test]
    fn cpu_per_request_doubling_within_every_signals_range_is_found_by_the_joint_model() {
        let mut s = WorkloadState::new(WorkloadRef::deployment("shop", "web"), STEP);
        let load = |i: i64| 100.0 + 50.0 * ((i as f64) * 0.05).sin();
        for i in 0..400 {
            assert_eq!(step_at(&mut s, i, load(i), 0.01), None, "normal step {i}");
        }
        assert!(s.joint_fitted());
        let cpu = s
            .latest(signal::CPU_TIME, Stat::Rate)
            .and_then(|l| l.score)
            .expect("CPU scored");
        // 70 req/s and 1.4 cores: both inside the ranges seen (50–150, 0.5–1.5), so no
        // univariate baseline objects, but CPU per request has doubled.
        let a = step_at(&mut s, 400, 70.0, 0.02).expect("joint anomaly");
        let at = Timestamp::from_secs(400 * 15);
        for (sig, stat, _) in WATCHED.iter().chain(CONTEXT) {
            let l = s.latest(sig, *stat).expect("scored");
            assert!(!l.score.expect("warm").anomalous, "{sig} {stat:?} alone");
        }
        assert!(!cpu.anomalous);
        assert_eq!(a.kind, AnomalyKind::Unclassified);
        let joint = s.joint_score(at).expect("joint score");
        assert!(joint.anomalous && a.score >= 0.999, "{joint:?}");
        let signals: Vec<(&str, Stat)> = a
            .contributions
            .iter()
            .map(|c| (c.signal.as_str(), c.stat))
            .collect();
        assert!(
            signals.contains(&(signal::CPU_TIME, Stat::Rate)),
            "CPU explains it: {a:?}"
        );
        let c = a
            .contributions
            .iter()
            .find(|c| c.signal == signal::CPU_TIME)
            .expect("CPU");
        assert!(
            c.value > 1.2 * c.baseline,
            "CPU above what the load calls for: {c:?}"
        );
        // Back to normal: no anomaly, and the model keeps learning.
        assert_eq!(step_at(&mut s, 401, load(401), 0.01), None);
    }

    #[test]
    fn a_peak_that_comes_every_morning_is_an_anomaly_only_the_first_morning() {
        const DAY: i64 = 86_400;
        let mut s = WorkloadState::new(WorkloadRef::deployment("shop", "web"), STEP);
        // Latency doubles from 08:00 to 08:30 every day.
        let mut anomalous_days = Vec::new();
        for k in 0..4 * DAY / 15 {
            let t = k * 15;
            let hour = t.rem_euclid(DAY) as f64 / 3600.0;
            let wobble = 1.0 + 0.02 * ((k as f64) * 0.9).sin();
            let peak = if (8.0..8.5).contains(&hour) { 2.0 } else { 1.0 };
            if feed(&mut s, t, 0.1 * peak * wobble, 0.0002 * wobble).is_some()
                && anomalous_days.last() != Some(&(t / DAY))
            {
                anomalous_days.push(t / DAY);
            }
        }
        assert_eq!(
            anomalous_days,
            vec![0],
            "the first morning vouches for the second, the season measured from the third"
        );
        // A peak twice the usual one at that hour is still trouble.
        let t = 4 * DAY + 8 * 3600 + 600;
        let a = feed(&mut s, t, 0.45, 0.0002).expect("an unusual peak");
        assert_eq!(a.kind, AnomalyKind::Unclassified);
    }

    /// One step of a workload whose four pods each serve `per_pod` requests/s at a p99 of
    /// `p99` (and a mean a third of it); without `pods_known` the pods serving are not said.
    fn serve(s: &mut WorkloadState, t: i64, per_pod: f64, p99: f64, pods_known: bool) -> bool {
        let mut samples = vec![
            sample(
                signal::HTTP_SERVER_REQUEST_DURATION,
                Stat::Rate,
                t,
                4.0 * per_pod,
            ),
            sample(signal::HTTP_SERVER_REQUEST_DURATION, Stat::P99, t, p99),
            sample(
                signal::HTTP_SERVER_REQUEST_DURATION,
                Stat::Mean,
                t,
                p99 / 3.0,
            ),
            sample(signal::RUNQUEUE_LATENCY, Stat::P99, t, 0.0002),
        ];
        if pods_known {
            samples.push(sample(signal::SERVING_PODS, Stat::Value, t, 4.0));
        }
        for x in &samples {
            s.observe(x);
        }
        s.assess(Timestamp::from_secs(t)).is_some()
    }

    #[test]
    fn a_first_rush_the_load_per_pod_explains_is_no_anomaly_a_slower_answer_is() {
        // A queue's p99 at a load per pod, each pod serving 50/s at most.
        let queue = |x: f64| 0.02 / (1.0 - x / 50.0).powf(1.4);
        let wobble = |k: i64| 1.0 + 0.03 * (k as f64 * 1.7).sin();
        let night = |pods_known: bool| {
            let mut s = WorkloadState::new(WorkloadRef::deployment("shop", "web"), STEP);
            // Six hours of a night: the evening's load per pod falls from 30 to 20 in two
            // hours and then wanders about 20.
            for k in 0..1440 {
                let x = if k < 480 {
                    30.0 - 10.0 * k as f64 / 480.0
                } else {
                    20.0 + (k as f64 / 40.0).sin()
                };
                assert!(!serve(&mut s, k * 15, x, queue(x) * wobble(k), pods_known));
            }
            s
        };
        // Then the first rush: in fifteen minutes, to 36.5 per pod (73 % busy) before any pod
        // is added, the p99 three times the night's usual.
        let rush = |s: &mut WorkloadState, pods_known: bool| {
            (1440..1500)
                .filter(|k| {
                    let x = 20.0 + 16.5 * (*k - 1440) as f64 / 60.0;
                    serve(s, k * 15, x, queue(x) * wobble(*k), pods_known)
                })
                .count()
        };
        let known = night(true);
        // What the night taught is kept across a restart, as the journal keeps it.
        let kept = serde_json::to_vec(&known.learned()).expect("encodes");
        let learned: Learned = serde_json::from_slice(&kept).expect("decodes");
        let mut resumed = WorkloadState::resume(learned, STEP);
        assert_eq!(resumed.queueing, known.queueing);
        assert_eq!(rush(&mut resumed, true), 0, "the load explains the rush");
        // Without the pods serving there is no load per pod, and the rush is an anomaly.
        assert!(rush(&mut night(false), false) > 0);
        // At the night's load, twice the latency is not the load's.
        let mut slow = night(true);
        let slower = (1440..1450)
            .filter(|k| serve(&mut slow, k * 15, 20.0, 2.0 * queue(20.0), true))
            .count();
        assert!(slower > 0, "a slow answer at the usual load is an anomaly");
    }

    #[test]
    fn cpu_pressure_is_gone_only_when_a_fresh_run_queue_says_so() {
        let mut s = WorkloadState::new(WorkloadRef::deployment("shop", "web"), STEP);
        assert!(s.cpu_pressure_gone(Timestamp::from_secs(0)), "not measured");
        feed(&mut s, 15, 0.1, 0.004);
        assert!(!s.cpu_pressure_gone(Timestamp::from_secs(15)), "still long");
        feed(&mut s, 30, 0.1, 0.0002);
        assert!(s.cpu_pressure_gone(Timestamp::from_secs(30)));
        assert!(
            !s.cpu_pressure_gone(Timestamp::from_secs(45)),
            "missing at the time asked"
        );
    }

    #[test]
    fn nothing_is_judged_without_fresh_samples() {
        let mut s = WorkloadState::new(WorkloadRef::deployment("shop", "web"), STEP);
        for i in 0..30 {
            feed(&mut s, i * 15, 0.1, 0.0002);
        }
        assert_eq!(s.assess(Timestamp::from_secs(10_000)), None);
    }

    #[test]
    fn a_moderate_latency_rise_is_contention_when_one_node_is_contended_not_in_a_busy_hour() {
        let w = WorkloadRef::deployment("shop", "web");
        let mut s = WorkloadState::new(w.clone(), STEP);
        let mut step = |i: i64, latency: f64, nodes: [f64; 3]| {
            let at = Timestamp::from_secs(i * 15);
            let mut obs = |sig: &str, stat: Stat, v: f64, node: Option<&str>| {
                let sample = Sample::new(sig, stat, w.clone(), at, v).expect("finite");
                s.observe(&sample.on_node(node.map(str::to_owned)));
            };
            obs(
                signal::HTTP_SERVER_REQUEST_DURATION,
                Stat::P99,
                latency,
                None,
            );
            obs(
                signal::HTTP_SERVER_REQUEST_DURATION,
                Stat::Mean,
                latency / 3.0,
                None,
            );
            obs(signal::CPU_TIME, Stat::Rate, 1.0, None);
            let worst = nodes.iter().copied().fold(0.0, f64::max);
            obs(signal::RUNQUEUE_LATENCY, Stat::P99, worst, None);
            for (node, v) in ["a", "b", "c"].into_iter().zip(nodes) {
                obs(signal::RUNQUEUE_LATENCY, Stat::P99, v, Some(node));
            }
            s.assess(at)
        };
        for i in 0..40 {
            let wobble = 1.0 + 0.02 * ((i as f64) * 0.9).sin();
            assert_eq!(step(i, 0.1 * wobble, [0.0004 * wobble; 3]), None);
        }
        // A quarter slower: beyond the noise, short of the 50 % a series needs alone.
        assert_eq!(
            step(40, 0.125, [0.003, 0.0035, 0.003]),
            None,
            "every node's queue longer: a busy hour"
        );
        assert_eq!(
            step(41, 0.11, [0.0004, 0.02, 0.0005]),
            None,
            "a tenth slower does not matter, contended or not"
        );
        let a = step(42, 0.125, [0.0004, 0.02, 0.0005]).expect("contention");
        assert_eq!(a.kind, AnomalyKind::CpuContention);
        assert!(
            a.contributions
                .iter()
                .any(|c| c.signal == signal::HTTP_SERVER_REQUEST_DURATION && c.value == 0.125),
            "{a:?}"
        );
    }

    #[test]
    fn one_node_with_a_long_run_queue_is_contended_a_spread_delay_is_not() {
        let w = WorkloadRef::deployment("shop", "web");
        let mut s = WorkloadState::new(w.clone(), STEP);
        let at = Timestamp::from_secs(15);
        let rq = |node: &str, v: f64| {
            Sample::new(signal::RUNQUEUE_LATENCY, Stat::P99, w.clone(), at, v)
                .expect("finite")
                .on_node(Some(node.into()))
        };
        assert!(!s.observe(&rq("a", 0.0004)), "a node's share is not scored");
        assert_eq!(s.contended_node(at), None, "one node says nothing");
        s.observe(&rq("b", 0.02));
        s.observe(&rq("c", 0.0006));
        assert_eq!(s.contended_node(at), Some(("b", 0.02, 0.0006)));
        assert_eq!(s.runqueue_on("c", at), Some(0.0006));
        assert_eq!(s.runqueue_on("c", Timestamp::from_secs(30)), None, "stale");
        assert_eq!(s.latest(signal::RUNQUEUE_LATENCY, Stat::P99), None);
        s.observe(&rq("c", 0.01));
        assert_eq!(s.contended_node(at), None, "two slow nodes: demand");
        s.observe(&rq("b", 0.0015));
        s.observe(&rq("c", 0.0001));
        assert_eq!(s.contended_node(at), None, "below the saturation floor");
    }
}
