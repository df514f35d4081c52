//! The shipped scenario library: every scenario parses, its ground truth is what its comments
//! say, and the shipped trace is the one the generator below makes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use homeostat_simulations::Scenario;
use homeostat_simulations::model::load::LoadTrace;
use homeostat_simulations::scenario::{LoadEvent, ScenarioError};

const HOUR: u64 = 3600;
const DAY: u64 = 24 * HOUR;

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

fn load(name: &str) -> Scenario {
    let path = scenarios_dir().join(name);
    Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// The ground truth of every tick of the first workload, as the runner asks for it.
fn ticks(s: &Scenario) -> impl Iterator<Item = (Duration, bool)> {
    let trace = LoadTrace::new(s.workloads[0].load.clone(), s.seed);
    let n = (s.duration.as_nanos() / s.step.as_nanos()) as u32;
    let step = s.step;
    (1..=n).map(move |i| (step * i, trace.in_event(step * i)))
}

#[test]
fn every_shipped_scenario_parses() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(scenarios_dir()).expect("scenarios/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                !s.description.is_empty(),
                "{} has no description",
                path.display()
            );
            names.push(s.name);
        }
    }
    // Others may be added; these are the ones this library promises.
    for name in [
        "composed",
        "crash-loop",
        "diurnal-week",
        "flash-crowd",
        "load-spike",
        "memory-leak",
        "network-degradation",
        "noisy-neighbour",
        "quiet-week",
        "sensor-overload",
        "trace-replay",
    ] {
        assert!(
            names.iter().any(|n| n == name),
            "{name} missing from {names:?}"
        );
    }
}

#[test]
fn the_quiet_week_has_no_incident_but_has_its_cycles() {
    let s = load("quiet-week.yaml");
    assert_eq!(s.duration, Duration::from_secs(7 * DAY));
    assert!(ticks(&s).all(|(_, incident)| !incident));
    assert!(s.incidents.is_empty(), "{:?}", s.incidents);
    let trace = LoadTrace::new(s.workloads[0].load.clone(), s.seed);
    let at = |day: u64, hour: u64| trace.shape(Duration::from_secs(day * DAY + hour * HOUR));
    // Monday 14:00 is the weekday peak, 02:00 the trough; Saturday is half of Monday.
    assert!((at(0, 14) - 480.0).abs() < 1e-9 && (at(0, 2) - 120.0).abs() < 1e-9);
    assert!((at(5, 14) - 240.0).abs() < 1e-9 && (at(6, 14) - 240.0).abs() < 1e-9);
    assert!((at(4, 14) - 480.0).abs() < 1e-9);
}

#[test]
fn the_diurnal_week_incident_is_wednesday_ten_to_six() {
    let s = load("diurnal-week.yaml");
    let (start, end) = (
        Duration::from_secs(58 * HOUR),
        Duration::from_secs(66 * HOUR),
    );
    assert_eq!(s.workloads[0].load.events.len(), 1);
    assert_eq!(s.workloads[0].load.events[0].window(), (start, Some(end)));
    for (t, incident) in ticks(&s) {
        assert_eq!(incident, t >= start && t < end, "t = {t:?}");
    }
    let trace = LoadTrace::new(s.workloads[0].load.clone(), s.seed);
    let (before, during) = (start - Duration::from_secs(15), start);
    assert!((trace.shape(during) / trace.shape(before) - 1.8).abs() < 0.01);
}

#[test]
fn the_flash_crowd_is_sharper_and_bigger_than_the_load_spike() {
    let crowd = load("flash-crowd.yaml");
    let spike = load("load-spike.yaml");
    let shape = |s: &Scenario| match s.workloads[0].load.events[0] {
        LoadEvent::Spike {
            ramp_up, factor, ..
        } => (ramp_up, factor),
        ref other => panic!("{other:?}"),
    };
    let ((crowd_ramp, crowd_factor), (spike_ramp, spike_factor)) = (shape(&crowd), shape(&spike));
    assert!(crowd_ramp < spike_ramp && crowd_factor > spike_factor);
    // Incident from 01:40 to 02:05:30, as its comment says.
    let (start, end) = (
        Duration::from_secs(100 * 60),
        Duration::from_secs(125 * 60 + 30),
    );
    for (t, incident) in ticks(&crowd) {
        assert_eq!(incident, t >= start && t < end, "t = {t:?}");
    }
}

#[test]
fn the_trace_replay_maps_the_maximum_to_peak_and_has_no_incident() {
    let s = load("trace-replay.yaml");
    let load = &s.workloads[0].load;
    let trace = load.trace.as_ref().expect("a trace");
    assert_eq!(trace.series.len(), 14 * 48);
    assert_eq!(trace.series.span(), Duration::from_secs(14 * DAY - 1800));
    assert!(ticks(&s).all(|(_, incident)| !incident));
    let replay = LoadTrace::new(load.clone(), s.seed);
    // Over the whole trace, at its rows (where the maxima are), the largest rate is the peak.
    let rows = (0..14 * 48).map(|i| replay.shape(Duration::from_secs(i * 1800)));
    let max = rows.fold(0.0, f64::max);
    assert!((max - 900.0).abs() < 1e-9, "{max}");
    // Halfway between two rows, the rate is halfway between theirs.
    let (a, b) = (
        replay.shape(Duration::from_secs(1800)),
        replay.shape(Duration::from_secs(3600)),
    );
    assert!((replay.shape(Duration::from_secs(2700)) - (a + b) / 2.0).abs() < 1e-9);
}

#[test]
fn trace_paths_resolve_against_the_scenario_file_or_the_current_directory() {
    let text = std::fs::read_to_string(scenarios_dir().join("trace-replay.yaml")).expect("read");
    // Inline text: relative to the current directory, which cargo sets to the package root.
    let e = Scenario::parse("inline", &text).expect_err("no traces/ in the package root");
    assert!(
        e.to_string().starts_with("traces/nyc-taxi-like.csv: "),
        "{e}"
    );
    let inline = text.replace("traces/", "scenarios/traces/");
    let s = Scenario::parse("inline", &inline).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        s.workloads[0].load.trace.as_ref().map(|t| t.series.len()),
        Some(672)
    );
    // Or relative to a directory given for it.
    let s = Scenario::parse_in("inline", &text, &scenarios_dir()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s, load("trace-replay.yaml"));
}

fn scenario_with_trace(trace: &str, duration: &str) -> String {
    format!(
        "name: t\nduration: {duration}\nworkloads:\n  - namespace: shop\n    name: checkout\n    replicas: 1\n    pod: {{capacity: 50, cpuRequest: 0.5, startupDelay: 90s, baseLatency: 20ms}}\n    hpa: {{minReplicas: 1, maxReplicas: 4, targetCpuUtilization: 70}}\n    load: {{trace: {{file: {trace}, peak: 100}}}}\n    slo: {{latencyP99: 500ms}}\n"
    )
}

#[test]
fn a_bad_trace_row_is_named_by_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("traces")).expect("mkdir");
    let csv = dir.path().join("traces/bad.csv");
    std::fs::write(
        &csv,
        "timestamp,value\n2024-01-01 00:00:00,10\n2024-01-01 00:30:00,ten\n",
    )
    .expect("write");
    let yaml = dir.path().join("s.yaml");
    std::fs::write(&yaml, scenario_with_trace("traces/bad.csv", "10m")).expect("write");
    let e = Scenario::load(&yaml).expect_err("bad row");
    assert!(matches!(e, ScenarioError::Trace { .. }), "{e:?}");
    let expected = format!("{}:3: value \"ten\" is not a number >= 0", csv.display());
    assert!(e.to_string().starts_with(&expected), "{e}");
    assert!(e.to_string().contains("shop/checkout"), "{e}");

    std::fs::write(&csv, "timestamp,value\n0,1\n1800,2\n").expect("write");
    std::fs::write(&yaml, scenario_with_trace("traces/bad.csv", "1h")).expect("write");
    let e = Scenario::load(&yaml).expect_err("too short");
    assert!(
        e.to_string()
            .ends_with("trace traces/bad.csv covers 30m but the scenario runs 1h")
            || e.to_string()
                .ends_with("covers 30m but the scenario runs 1h"),
        "{e}"
    );
}

// The shipped trace, `scenarios/traces/nyc-taxi-like.csv`, is made here rather than copied
// from anywhere: two weeks from Monday 2025-03-03 at 30-minute resolution of a city's taxi
// demand as a sum of daily rushes (a weekday morning and evening rush, a weekend's late
// mornings and late nights) on a night-time floor, with ±5 % noise from a fixed seed.

/// A small, fixed PRNG (SplitMix64), so the trace does not change with the `rand` crate.
struct SplitMix(u64);

impl SplitMix {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The rushes of one day (0 = Monday) as (hour of that day, width in hours, height); hours
/// past 24 are the night that follows.
fn rushes(weekday: i64) -> &'static [(f64, f64, f64)] {
    match weekday {
        0..=3 => &[
            (8.5, 1.3, 0.45),
            (13.5, 3.5, 0.45),
            (19.0, 2.0, 0.75),
            (23.0, 1.5, 0.2),
        ],
        4 => &[
            (8.5, 1.3, 0.42),
            (13.5, 3.5, 0.45),
            (19.5, 2.2, 0.8),
            (24.5, 2.2, 0.45),
        ],
        5 => &[(14.0, 4.0, 0.6), (20.5, 2.5, 0.55), (25.0, 2.2, 0.5)],
        _ => &[(14.0, 4.0, 0.55), (19.5, 2.5, 0.45), (23.0, 1.5, 0.1)],
    }
}

/// Demand at `hour` hours after the first Monday's midnight, before noise.
fn taxi_demand(hour: f64) -> f64 {
    let today = (hour / 24.0).floor() as i64;
    let rushes: f64 = (today - 1..=today + 1)
        .flat_map(|day| {
            rushes(day.rem_euclid(7))
                .iter()
                .map(move |&(at, width, height)| {
                    let d = (hour - (day as f64 * 24.0 + at)) / width;
                    height * (-0.5 * d * d).exp()
                })
        })
        .sum();
    0.08 + rushes
}

/// The shipped trace's text.
fn nyc_taxi_like_csv() -> String {
    let mut rng = SplitMix(20_250_303);
    let mut out = String::from("timestamp,value\n");
    for slot in 0..14 * 48u32 {
        let hour = f64::from(slot) / 2.0;
        let noise = 1.0 + 0.05 * ((0..4).map(|_| rng.uniform()).sum::<f64>() - 2.0);
        let value = (25_000.0 * taxi_demand(hour) * noise).round();
        let (day, minute) = (3 + slot / 48, (slot % 48) * 30);
        out.push_str(&format!(
            "2025-03-{day:02} {:02}:{:02}:00,{value}\n",
            minute / 60,
            minute % 60
        ));
    }
    out
}

fn shipped_trace() -> PathBuf {
    scenarios_dir().join("traces/nyc-taxi-like.csv")
}

/// `HOMEOSTAT_REGENERATE_TRACE=1 cargo test -p homeostat-simulations --test scenarios`
/// rewrites the shipped trace from the generator before comparing.
#[test]
fn the_shipped_trace_is_what_the_generator_makes() {
    if std::env::var_os("HOMEOSTAT_REGENERATE_TRACE").is_some() {
        std::fs::write(shipped_trace(), nyc_taxi_like_csv()).expect("write the trace");
    }
    let shipped = std::fs::read_to_string(shipped_trace()).expect("read the trace");
    let made = nyc_taxi_like_csv();
    assert_eq!(shipped.lines().count(), made.lines().count());
    // Within one unit: the last digit of exp() may differ between platforms' maths libraries.
    for (line, (a, b)) in shipped.lines().zip(made.lines()).enumerate().skip(1) {
        let (ta, va) = a.split_once(',').expect("two fields");
        let (tb, vb) = b.split_once(',').expect("two fields");
        let (va, vb): (f64, f64) = (va.parse().expect("value"), vb.parse().expect("value"));
        assert!(
            ta == tb && (va - vb).abs() <= 1.0,
            "line {}: {a} vs {b}",
            line + 1
        );
    }
}

#[test]
fn the_shipped_trace_looks_like_a_city() {
    let s = load("trace-replay.yaml");
    let replay = LoadTrace::new(s.workloads[0].load.clone(), s.seed);
    let at = |day: u64, hour: u64| replay.shape(Duration::from_secs(day * DAY + hour * HOUR));
    for day in 0..14 {
        // Nights are quiet, evenings busy.
        assert!(
            at(day, 5) < 0.35 * at(day, 19).max(at(day, 20)),
            "day {day}"
        );
    }
    // A weekday's morning rush; a weekend has none but a busier late night.
    assert!(at(1, 8) > 1.5 * at(5, 8));
    assert!(at(5, 1) > 1.5 * at(1, 1));
}
