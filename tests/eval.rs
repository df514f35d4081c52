//! `homeostat eval` end to end: a small benchmark in NAB's layout is written to a temporary
//! directory and the real binary scores it.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn homeostat(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_homeostat"))
        .args(args)
        .output()
        .expect("run homeostat")
}

/// `homeostat eval --nab NAB FLAG DIR`, which must succeed; its standard output.
fn eval_ok(nab: &Path, flag: &str, dir: &Path) -> String {
    let out = homeostat(&[
        "eval",
        "--nab",
        nab.to_str().unwrap(),
        flag,
        dir.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn timestamp(i: usize) -> String {
    // One point every five minutes from 2014-04-01 00:00.
    let minutes = i * 5;
    format!(
        "2014-04-{:02} {:02}:{:02}:00",
        1 + minutes / 1440,
        minutes / 60 % 24,
        minutes % 60
    )
}

/// 100 points in `g/a.csv` (probation 15) with one window over points 60..=69.
fn write_benchmark(dir: &Path) {
    fs::create_dir_all(dir.join("data/g")).expect("mkdir");
    let mut csv = String::from("timestamp,value\n");
    for i in 0..100 {
        csv.push_str(&format!("{},{}\n", timestamp(i), 10.0 + (i % 7) as f64));
    }
    fs::write(dir.join("data/g/a.csv"), csv).expect("write data");
    let windows = format!(
        "{{\"g/a.csv\": [[\"{}.000000\", \"{}.000000\"]]}}",
        timestamp(60),
        timestamp(69)
    );
    fs::write(dir.join("combined_windows.json"), windows).expect("write windows");
}

/// Result rows with an anomaly score of 1 at `detections`, 0 elsewhere.
fn write_results(dir: &Path, detections: &[usize]) {
    fs::create_dir_all(dir.join("g")).expect("mkdir");
    let mut csv = String::from("timestamp,value,anomaly_score,label\n");
    for i in 0..100 {
        let score = if detections.contains(&i) { 1.0 } else { 0.0 };
        csv.push_str(&format!("{},0,{score},0\n", timestamp(i)));
    }
    fs::write(dir.join("g/det_a.csv"), csv).expect("write results");
}

/// The normalised score printed on a profile's row.
fn normalised(stdout: &str, profile: &str) -> f64 {
    let row = stdout
        .lines()
        .find(|l| l.starts_with(profile))
        .unwrap_or_else(|| panic!("no {profile} row in:\n{stdout}"));
    row.split_whitespace()
        .nth(1)
        .expect("column")
        .parse()
        .expect("number")
}

#[test]
fn scores_result_files_as_nab_does() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let nab = tmp.path().join("nab");
    let results = tmp.path().join("det");
    write_benchmark(&nab);

    // A detection on the window's first point and nothing else is perfect.
    write_results(&results, &[60]);
    let stdout = eval_ok(&nab, "--results", &results);
    for profile in ["standard", "reward_low_FP_rate", "reward_low_FN_rate"] {
        assert!(
            (normalised(&stdout, profile) - 100.0).abs() < 1e-3,
            "{stdout}"
        );
    }

    // Plus a false alarm before the window, at the same score: raw 1 − fp weight.
    // Normalised: 100 × (0.89 + 1) / 2, 100 × (0.78 + 1) / 2, 100 × (0.89 + 2) / 3.
    write_results(&results, &[20, 60]);
    let stdout = eval_ok(&nab, "--results", &results);
    assert!(
        (normalised(&stdout, "standard") - 94.5).abs() < 1e-3,
        "{stdout}"
    );
    assert!(
        (normalised(&stdout, "reward_low_FP_rate") - 89.0).abs() < 1e-3,
        "{stdout}"
    );
    assert!(
        (normalised(&stdout, "reward_low_FN_rate") - 96.3333).abs() < 1e-3,
        "{stdout}"
    );
}

/// Deterministic noise in [−1, 1).
fn noise(i: usize) -> f64 {
    let h = (i as u64 + 1)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .rotate_left(29)
        .wrapping_mul(0xbf58_476d_1ce4_e5b9);
    (h >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

/// 2000 points of a noisy daily cycle (288 five-minute steps a day) in two files: `g/a.csv`
/// steps up by 30 at point 1600, inside a window over points 1550..=1700; `g/b.csv` has no
/// anomaly and no window.
fn write_detector_benchmark(dir: &Path) {
    fs::create_dir_all(dir.join("data/g")).expect("mkdir");
    for (file, shift_at) in [("a", 1600), ("b", usize::MAX)] {
        let mut csv = String::from("timestamp,value\n");
        for i in 0..2000 {
            let cycle = 10.0 * (i as f64 * std::f64::consts::TAU / 288.0).sin();
            let shift = if i >= shift_at { 30.0 } else { 0.0 };
            let value = 50.0 + cycle + 2.0 * noise(i) + shift;
            csv.push_str(&format!("{},{value:.3}\n", timestamp(i)));
        }
        fs::write(dir.join(format!("data/g/{file}.csv")), csv).expect("write data");
    }
    let windows = format!(
        "{{\"g/a.csv\": [[\"{}.000000\", \"{}.000000\"]], \"g/b.csv\": []}}",
        timestamp(1550),
        timestamp(1700)
    );
    fs::write(dir.join("combined_windows.json"), windows).expect("write windows");
}

#[test]
fn runs_the_detector_and_writes_nab_result_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let nab = tmp.path().join("nab");
    write_detector_benchmark(&nab);
    let out_dir = tmp.path().join("out");
    let stdout = eval_ok(&nab, "--out", &out_dir);
    // The step is caught where it happens, with nothing else as loud: at point 1600 of a
    // 151-point window the reward is 0.94 of a perfect detection's.
    for profile in ["standard", "reward_low_FP_rate", "reward_low_FN_rate"] {
        let score = normalised(&stdout, profile);
        assert!(score > 95.0, "{profile}: {stdout}");
    }
    let written = fs::read_to_string(out_dir.join("g/homeostat_a.csv")).expect("result file");
    let mut lines = written.lines();
    assert_eq!(lines.next(), Some("timestamp,value,anomaly_score,label"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2000);
    let score = |row: &str| -> f64 {
        row.split(',')
            .nth(2)
            .expect("score column")
            .parse()
            .expect("number")
    };
    assert!(score(rows[1600]) > 0.9, "{}", rows[1600]);
    assert!(rows[1600].ends_with(",1") && rows[1500].ends_with(",0"));
    assert!(rows.iter().all(|r| (0.0..=1.0).contains(&score(r))));
}

#[test]
fn reports_how_the_scores_hold_up_on_files_they_were_not_set_on() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let nab = tmp.path().join("nab");
    write_detector_benchmark(&nab);
    let out = homeostat(&["eval", "--nab", nab.to_str().unwrap(), "--robustness"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    for line in [
        "threshold set on the other files (4 folds)",
        "threshold set on the other groups",
        "nearby settings, standard: min",
    ] {
        assert!(stdout.contains(line), "no {line:?} in:\n{stdout}");
    }
}

#[test]
fn a_bad_row_is_named_by_file_and_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let nab = tmp.path().join("nab");
    write_benchmark(&nab);
    let path = nab.join("data/g/a.csv");
    let mut text = fs::read_to_string(&path).expect("read");
    text = text.replacen(",11\n", ",eleven\n", 1);
    fs::write(&path, text).expect("write");
    let out = homeostat(&["eval", "--nab", nab.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("a.csv:3:") && stderr.contains("\"eleven\""),
        "{stderr}"
    );

    fs::write(
        nab.join("combined_windows.json"),
        "{\"g/a.csv\": [[\"x\"]]}",
    )
    .expect("write");
    let out = homeostat(&["eval", "--nab", nab.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("combined_windows.json:1"), "{stderr}");
}
