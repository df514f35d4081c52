//! `homeostat eval`: scores homeostat's univariate detector, or any detector's published
//! outputs, on a benchmark in the Numenta Anomaly Benchmark's layout.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use homeostat_brain::detect::{Univariate, UnivariateConfig};
use homeostat_brain::eval::nab::{
    Corpus, CostProfile, ProfileResult, Sweep, load_corpus, load_result_scores, result_path,
    score_series, write_results,
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
            let scores = detect(&corpus);
            if let Some(out) = &args.out {
                write_results(out, DETECTOR, &corpus, &scores).context("writing results")?;
            }
            (DETECTOR.to_owned(), scores)
        }
    };
    print_table(&name, &corpus, &scores);
    Ok(ExitCode::SUCCESS)
}

/// Streams each series through a fresh detector, in time order.
fn detect(corpus: &Corpus) -> Vec<Vec<f64>> {
    corpus
        .series
        .iter()
        .map(|s| {
            let mut d = Univariate::new(UnivariateConfig::default());
            s.values.iter().map(|&x| d.observe(x)).collect()
        })
        .collect()
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
    let sweep = Sweep::new(
        corpus
            .series
            .iter()
            .map(|s| &s.labels)
            .zip(scores.iter().map(Vec::as_slice)),
    );
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
