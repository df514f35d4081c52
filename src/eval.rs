//! `homeostat eval`: scores homeostat's univariate detector, or any detector's published
//! outputs, on a benchmark in the Numenta Anomaly Benchmark's layout.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use homeostat_brain::detect::{Univariate, UnivariateConfig};
use homeostat_brain::eval::nab::{
    Corpus, CostProfile, ProfileResult, Series, Sweep, load_corpus, load_result_scores,
    result_path, score_series, write_results,
};

/// The name homeostat's results are filed under, as NAB files each detector's.
const DETECTOR: &str = "homeostat";

/// Arguments of `homeostat eval`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  homeostat eval --nab ~/NAB --out /tmp/results/homeostat
      run homeostat's detector over every series and score it
  homeostat eval --nab ~/NAB --results ~/NAB/results/numenta
      score a detector's published result files instead
  homeostat eval --nab ~/NAB --robustness
      also score homeostat with thresholds set on other files, and under nearby settings

Scores are NAB's: per profile, the threshold that maximises the raw score over the whole
corpus; normalised = 100 × (raw − null) / (perfect − null), 0 for a detector that never
fires and 100 for a perfect one.")]
pub struct Args {
    /// A benchmark in NAB's layout: DIR/data/<group>/<file>.csv (timestamp,value) and
    /// DIR/combined_windows.json.
    #[arg(long, value_name = "DIR")]
    nab: PathBuf,
    /// Write homeostat's scores as NAB result files under OUT/<group>/homeostat_<file>.csv.
    #[arg(long, value_name = "OUT", conflicts_with = "results")]
    out: Option<PathBuf>,
    /// Score existing result files instead of running the detector:
    /// RESULTS_DIR/<group>/<prefix>_<file>.csv, paired with the data rows by position, scored
    /// by their anomaly_score column.
    #[arg(long, value_name = "RESULTS_DIR")]
    results: Option<PathBuf>,
    /// The detector name prefixing result file names [default: RESULTS_DIR's own name].
    #[arg(long, requires = "results")]
    prefix: Option<String>,
    /// Also print how robust the scores are: with each file's threshold set on the other
    /// files only, and (for homeostat's own detector) with each setting moved a little from
    /// its default.
    #[arg(long)]
    robustness: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let corpus = load_corpus(&args.nab).context("reading the benchmark")?;
    let (name, scores) = match &args.results {
        Some(dir) => {
            let prefix = match &args.prefix {
                Some(p) => p.clone(),
                None => dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .with_context(|| {
                        format!(
                            "{}: cannot tell the detector's name; give --prefix",
                            dir.display()
                        )
                    })?,
            };
            (prefix.clone(), read_results(dir, &prefix, &corpus)?)
        }
        None => {
            let scores = detect(&corpus, UnivariateConfig::default());
            if let Some(out) = &args.out {
                write_results(out, DETECTOR, &corpus, &scores).context("writing results")?;
            }
            (DETECTOR.to_owned(), scores)
        }
    };
    print_table(&name, &corpus, &scores);
    if args.robustness {
        print_robustness(&corpus, &scores, args.results.is_none());
    }
    Ok(ExitCode::SUCCESS)
}

/// Streams each series through a fresh detector, in time order.
fn detect(corpus: &Corpus, config: UnivariateConfig) -> Vec<Vec<f64>> {
    corpus
        .series
        .iter()
        .map(|s| {
            let mut d = Univariate::new(config);
            s.values.iter().map(|&x| d.observe(x)).collect()
        })
        .collect()
}

/// The whole corpus's scored points, ready for choosing thresholds.
fn sweep(corpus: &Corpus, scores: &[Vec<f64>]) -> Sweep {
    Sweep::new(
        corpus
            .series
            .iter()
            .map(|s| &s.labels)
            .zip(scores.iter().map(Vec::as_slice)),
    )
}

/// The normalised score of each profile, thresholds chosen over the whole corpus.
fn normalised_scores(corpus: &Corpus, scores: &[Vec<f64>]) -> [f64; 3] {
    let sweep = sweep(corpus, scores);
    CostProfile::ALL.map(|p| sweep.best(p).normalised())
}

/// Each profile's normalised score when the series of each fold are scored at the threshold
/// that is best over the other folds: how well the threshold, and so the detector, carries
/// over to series it was not set on.
fn held_out_scores(corpus: &Corpus, scores: &[Vec<f64>], fold: &[usize]) -> [f64; 3] {
    let folds = fold.iter().copied().max().map_or(0, |m| m + 1);
    let windows: usize = corpus.series.iter().map(|s| s.labels.windows).sum();
    CostProfile::ALL.map(|profile| {
        let mut raw = 0.0;
        for f in 0..folds {
            let others = (0..corpus.series.len()).filter(|&i| fold[i] != f);
            let sweep =
                Sweep::new(others.map(|i| (&corpus.series[i].labels, scores[i].as_slice())));
            let threshold = sweep.best(profile).threshold;
            raw += (0..corpus.series.len())
                .filter(|&i| fold[i] == f)
                .map(|i| {
                    score_series(&corpus.series[i].labels, &scores[i], threshold, &profile).raw
                })
                .sum::<f64>();
        }
        let null = -(windows as f64) * profile.fn_;
        let perfect = windows as f64 * profile.tp;
        100.0 * (raw - null) / (perfect - null)
    })
}

/// The defaults with one setting moved each way, by about half as much again.
fn nearby_settings() -> Vec<(String, UnivariateConfig)> {
    let d = UnivariateConfig::default();
    let n = d.novelty;
    let scaled = |v: u32, f: f64| (f64::from(v) * f).round() as u32;
    let mut out = Vec::new();
    for f in [2.0 / 3.0, 1.5] {
        let mut c = d;
        c.warmup = scaled(d.warmup, f);
        out.push((format!("warmup {}", c.warmup), c));
        let mut c = d;
        c.refractory = scaled(d.refractory, f);
        out.push((format!("refractory {}", c.refractory), c));
        let mut c = d;
        c.novelty.bins = (n.bins * f).round();
        out.push((format!("bins {}", c.novelty.bins), c));
        let mut c = d;
        c.novelty.rate_horizon = (n.rate_horizon * f).round();
        out.push((format!("rate horizon {}", c.novelty.rate_horizon), c));
        let mut c = d;
        c.novelty.scale_after = scaled(n.scale_after, f);
        out.push((format!("scale after {}", c.novelty.scale_after), c));
        let mut c = d;
        c.novelty.scale_until = scaled(n.scale_until, f);
        out.push((format!("scale until {}", c.novelty.scale_until), c));
        let mut c = d;
        c.novelty.memory = (n.memory as f64 * f).round() as usize;
        out.push((format!("memory {} contexts", c.novelty.memory), c));
    }
    out
}

/// How much the scores owe to thresholds and settings fitted to this very corpus.
fn print_robustness(corpus: &Corpus, scores: &[Vec<f64>], vary_settings: bool) {
    let row = |label: &str, s: [f64; 3]| {
        println!("  {label:<44} {:>9.2} {:>9.2} {:>9.2}", s[0], s[1], s[2]);
    };
    println!();
    println!("robustness                                     standard    low FP    low FN");
    row(
        "thresholds set over all files",
        normalised_scores(corpus, scores),
    );
    let by_file: Vec<usize> = (0..corpus.series.len()).map(|i| i % 4).collect();
    row(
        "threshold set on the other files (4 folds)",
        held_out_scores(corpus, scores, &by_file),
    );
    // NAB's groups (artificial, ad exchange, known-cause, …): a harder split than by file.
    fn group(s: &Series) -> &str {
        s.name.split('/').next().unwrap_or("")
    }
    let mut groups: Vec<&str> = corpus.series.iter().map(group).collect();
    groups.sort_unstable();
    groups.dedup();
    let by_group: Vec<usize> = corpus
        .series
        .iter()
        .map(|s| groups.binary_search(&group(s)).unwrap_or(0))
        .collect();
    row(
        "threshold set on the other groups",
        held_out_scores(corpus, scores, &by_group),
    );
    if !vary_settings {
        return;
    }
    let mut standard = Vec::new();
    for (label, config) in nearby_settings() {
        let s = normalised_scores(corpus, &detect(corpus, config));
        standard.push(s[0]);
        row(&label, s);
    }
    standard.sort_by(f64::total_cmp);
    if let (Some(lo), Some(hi)) = (standard.first(), standard.last()) {
        println!(
            "  nearby settings, standard: min {lo:.2}, median {:.2}, max {hi:.2}",
            standard[standard.len() / 2]
        );
    }
}

fn read_results(dir: &Path, prefix: &str, corpus: &Corpus) -> anyhow::Result<Vec<Vec<f64>>> {
    corpus
        .series
        .iter()
        .map(|s| {
            let path = result_path(dir, prefix, &s.name);
            load_result_scores(&path, s).context("reading results")
        })
        .collect()
}

fn print_table(name: &str, corpus: &Corpus, scores: &[Vec<f64>]) {
    let sweep = sweep(corpus, scores);
    println!(
        "NAB scores of {name}: {} series, {} windows, {} points",
        corpus.series.len(),
        sweep.windows(),
        corpus.series.iter().map(|s| s.values.len()).sum::<usize>()
    );
    println!(
        "{:<20} {:>10} {:>16} {:>10} {:>8} {:>8} {:>6} {:>6} {:>6}",
        "profile", "normalised", "threshold", "raw", "null", "perfect", "hit", "missed", "fp"
    );
    for profile in CostProfile::ALL {
        let r: ProfileResult = sweep.best(profile);
        let (mut hit, mut missed, mut fp) = (0, 0, 0);
        for (s, sc) in corpus.series.iter().zip(scores) {
            let one = score_series(&s.labels, sc, r.threshold, &profile);
            hit += one.hit;
            missed += one.missed;
            fp += one.false_positives;
        }
        let threshold = if r.threshold.is_finite() {
            format!("{:.12}", r.threshold)
        } else {
            "never".to_owned()
        };
        println!(
            "{:<20} {:>10.4} {:>16} {:>10.4} {:>8.2} {:>8.2} {:>6} {:>6} {:>6}",
            profile.name,
            r.normalised(),
            threshold,
            r.raw,
            r.null,
            r.perfect,
            hit,
            missed,
            fp
        );
    }
}
