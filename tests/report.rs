//! The HTML report as a reader sees it: `homeostat simulate --report DIR` on the built-in
//! scenario, then DIR/index.html rendered by Debian's headless Chromium. The DOM Chromium
//! builds must hold every plot of every run, each an `<svg>` with drawn lines and text, and
//! a screenshot must come out as a real image. Chromium is installed by `scripts/setup`; when
//! it is missing this test fails and says so rather than passing without having looked.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SCENARIO: &str = "load-spike";
const RUNS: [&str; 3] = ["none", "hpa", "homeostat-enforce"];
const PLOTS: [&str; 4] = ["load", "replicas", "latency", "anomaly"];
const SCREEN: (u32, u32) = (1100, 2400);

fn chromium() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "chromium is not installed, so the HTML report cannot be checked in a browser: \
         run scripts/setup as root (it installs Debian's chromium), then re-run"
    );
}

/// Runs headless Chromium on `page` with `extra` arguments, stdout to `out`; fails after two
/// minutes rather than hanging the suite.
fn run_chromium(page: &Path, profile: &Path, extra: &[String], out: &Path) {
    let stdout = File::create(out).expect("create chromium output file");
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            assert!(status.success(), "chromium {extra:?} failed: {status}");
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {extra:?} did not finish within two minutes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of attribute `name` in an opening tag.
fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let len = tag[start..].find('"')?;
    Some(&tag[start..start + len])
}

/// Every `<svg>` of the DOM that carries `data-plot`: (scenario, run, plot, element text).
fn plots(dom: &str) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    let mut rest = dom;
    while let Some(i) = rest.find("<svg") {
        rest = &rest[i..];
        let tag_end = rest.find('>').unwrap_or(rest.len());
        let tag = &rest[..tag_end];
        let end = rest
            .find("</svg>")
            .map_or(rest.len(), |e| e + "</svg>".len());
        if let Some(plot) = attribute(tag, "data-plot") {
            out.push((
                attribute(tag, "data-scenario")
                    .unwrap_or_default()
                    .to_owned(),
                attribute(tag, "data-run").unwrap_or_default().to_owned(),
                plot.to_owned(),
                rest[..end].to_owned(),
            ));
        }
        rest = &rest[end..];
    }
    out
}

#[test]
fn the_report_renders_every_plot_in_a_browser() {
    // Fail first, and clearly, when the browser is missing.
    chromium();
    let tmp = tempfile::tempdir().expect("tempdir");
    let report = tmp.path().join("report");
    let out = Command::new(env!("CARGO_BIN_EXE_homeostat"))
        .arg("simulate")
        .arg("--report")
        .arg(&report)
        .env("HOMEOSTAT_LOG", "error")
        .output()
        .expect("run homeostat simulate");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "scorecard:",
        "no autoscaling:",
        "HPA alone:",
        "with homeostat:",
    ] {
        assert!(
            stdout.contains(needle),
            "{needle:?} missing from:\n{stdout}"
        );
    }

    // scorecard.json: one scorecard per run, in report order.
    let cards: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(report.join("scorecard.json")).expect("scorecard.json"),
    )
    .expect("scorecard.json is JSON");
    let runs: Vec<&str> = cards
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|c| c["run"].as_str())
        .collect();
    assert_eq!(runs, ["none", "hpa", "homeostat (enforce)"]);
    for c in cards.as_array().into_iter().flatten() {
        let w = &c["workloads"][0];
        assert_eq!(w["workload"], "shop/checkout", "{c}");
        assert!(w["slo_violation_minutes"].as_f64().is_some(), "{c}");
        assert_eq!(w["incidents"].as_array().map(Vec::len), Some(1), "{c}");
    }

    // Self-contained: nothing fetched from elsewhere, no scripts.
    let index = report.join("index.html");
    let html = std::fs::read_to_string(&index).expect("index.html");
    assert!(html.starts_with("<!DOCTYPE html>"), "not HTML5");
    for banned in [
        "<script",
        "<link",
        "src=\"http",
        "href=\"http",
        "@import",
        "url(",
    ] {
        assert!(!html.contains(banned), "index.html contains {banned:?}");
    }

    // The DOM a browser builds from it holds every plot, drawn.
    let dom_file = tmp.path().join("dom.html");
    run_chromium(
        &index,
        &tmp.path().join("profile-dom"),
        &["--dump-dom".to_owned()],
        &dom_file,
    );
    let dom = std::fs::read_to_string(&dom_file).expect("dumped DOM");
    let found = plots(&dom);
    assert_eq!(
        found.len(),
        RUNS.len() * PLOTS.len(),
        "plots in the DOM: {:?}",
        found
            .iter()
            .map(|(s, r, p, _)| format!("{s}/{r}/{p}"))
            .collect::<Vec<_>>()
    );
    for run in RUNS {
        for plot in PLOTS {
            let (_, _, _, svg) = found
                .iter()
                .find(|(s, r, p, _)| s == SCENARIO && r == run && p == plot)
                .unwrap_or_else(|| panic!("no {plot} plot of run {run} in the rendered DOM"));
            let lines = svg.matches("<polyline").count() + svg.matches("<path").count();
            assert!(lines >= 2, "{run}/{plot}: {lines} lines drawn");
            assert!(svg.contains("<text"), "{run}/{plot}: no axis labels");
            assert!(svg.contains("simulated time"), "{run}/{plot}: no time axis");
        }
    }
    // Homeostat acted in this scenario, so its plots carry decision markers.
    let (_, _, _, latency) = found
        .iter()
        .find(|(_, r, p, _)| r == "homeostat-enforce" && p == "latency")
        .expect("homeostat latency plot");
    assert!(latency.contains("act "), "no decision marker label");
    assert!(latency.contains("objective"), "no objective line label");

    // And it paints: a screenshot of the page is a real PNG, not a blank page.
    let shot = tmp.path().join("report.png");
    run_chromium(
        &index,
        &tmp.path().join("profile-shot"),
        &[
            format!("--screenshot={}", shot.display()),
            format!("--window-size={},{}", SCREEN.0, SCREEN.1),
        ],
        &tmp.path().join("screenshot.log"),
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "screenshot is not a PNG"
    );
    let be32 = |at: usize| u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]);
    assert_eq!((be32(16), be32(20)), SCREEN, "screenshot size");
    // A blank page of this size compresses to a few kilobytes; plots to far more.
    assert!(png.len() > 50_000, "screenshot only {} bytes", png.len());
}
