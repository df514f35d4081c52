//! `homeostat policy explain ID`: one journaled decision's whole trail, from the anomaly behind
//! it to what became of it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use homeostat_brain::Journal;
use homeostat_brain::config::JournalConfig;
use homeostat_core::{Decision, DecisionId, Outcome};

use super::describe;

/// Arguments of `homeostat policy explain`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The decision's id: a ULID, as the brain's API (/api/v1/decisions), its logs and its
    /// Kubernetes Events name it.
    id: String,
    /// The brain's journal directory (`journal.path` in its config). Read it while no brain
    /// runs on it: a running brain holds its lock (ask its API instead).
    #[arg(long, value_name = "DIR", default_value_os_t = JournalConfig::default().path)]
    journal: PathBuf,
}

/// Prints the trail of one decision.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let journal = open(&args.journal)?;
    let id = DecisionId(args.id.clone());
    let decision = journal
        .get(&id)
        .with_context(|| format!("reading decision {id} from {}", args.journal.display()))?;
    let Some(decision) = decision else {
        anyhow::bail!("{}", unknown(&journal, &args.id, &args.journal));
    };
    let history = journal
        .history(&id)
        .with_context(|| format!("reading the log of decision {id}"))?;
    print!("{}", trail(&decision, &history));
    Ok(ExitCode::SUCCESS)
}

/// Opens an existing journal: never creates one where there is none, and says who holds it
/// when it is locked.
fn open(dir: &Path) -> anyhow::Result<Journal> {
    anyhow::ensure!(
        dir.is_dir(),
        "no journal at {}: name the brain's journal directory (`journal.path` in its config) \
         with --journal",
        dir.display()
    );
    let db = dir.join("db");
    anyhow::ensure!(
        db.is_file(),
        "{} is not a homeostat journal: it holds no sled database (no file `db`)",
        dir.display()
    );
    Journal::open(dir).map_err(|e| {
        if !e.is_locked() {
            return anyhow::anyhow!("cannot open the journal at {}: {e}", dir.display());
        }
        let holder = match lock_holder(&db) {
            Some((pid, cmdline)) if !cmdline.is_empty() => format!(" (pid {pid}: {cmdline})"),
            Some((pid, _)) => format!(" (pid {pid})"),
            None => String::new(),
        };
        anyhow::anyhow!(
            "the journal at {} is locked by another process{holder}, most likely a running \
             brain: ask it over HTTP instead (GET /api/v1/decisions/ID on its port 8080), or \
             stop it first",
            dir.display()
        )
    })
}

/// The message for an id the journal does not have, with the newest ids it does have.
fn unknown(journal: &Journal, id: &str, dir: &Path) -> String {
    let mut message = format!("no decision {id:?} in the journal at {}", dir.display());
    if ulid::Ulid::from_string(id).is_err() {
        message.push_str(" (decision ids are 26-character ULIDs)");
    }
    match journal.recent(3, None) {
        Ok(newest) if newest.is_empty() => message.push_str("; the journal is empty"),
        Ok(newest) => {
            let ids: Vec<String> = newest.iter().map(|d| d.id.to_string()).collect();
            let _ = write!(message, "; the newest are {}", ids.join(", "));
        }
        Err(_) => {}
    }
    message
}

/// The decision's trail as people read it: one labelled block per stage.
pub fn trail(d: &Decision, history: &[Outcome]) -> String {
    let mut out = String::new();
    let mut line = |label: &str, text: &str| {
        let _ = writeln!(out, "{label:<9} {text}");
    };
    line("decision", &format!("{} at {}", d.id, d.time));
    line("workload", &d.proposal.workload.to_string());
    match &d.anomaly {
        Some(a) => {
            line(
                "anomaly",
                &format!(
                    "{}, score {:.3}, since {}, last seen {}",
                    a.kind.as_str(),
                    a.score,
                    a.started,
                    a.detected
                ),
            );
            for c in &a.contributions {
                line(
                    "",
                    &format!(
                        "{} {} = {:.4} against a baseline of {:.4} (score {:.3})",
                        c.signal,
                        c.stat.as_str(),
                        c.value,
                        c.baseline,
                        c.score
                    ),
                );
            }
        }
        None => line("anomaly", "none: proposed without a current anomaly"),
    }
    let p = &d.proposal;
    line("proposal", &describe::action(&p.action));
    line("", &format!("because {}", p.reason));
    let evidence = if p.evidence_time == homeostat_core::Timestamp::EPOCH {
        "no evidence time".to_owned()
    } else {
        format!(
            "evidence of {} ({} before the decision)",
            p.evidence_time,
            homeostat_policies::duration::format_compact(d.time.since(p.evidence_time))
        )
    };
    line(
        "",
        &format!("{evidence}; {} replicas running", p.current_replicas),
    );
    let v = &d.verdict;
    line(
        "verdict",
        &format!("{} by {}", v.kind.as_str(), describe::decided_by(v)),
    );
    line("", &format!("because {}", v.reason));
    if v.action != p.action {
        line("", &format!("allowed as {}", describe::action(&v.action)));
    }
    line("mode", d.mode.as_str());
    match &d.plan {
        Some(plan) => {
            line("plan", &plan.summary);
            line(
                "",
                &format!(
                    "sent as {} to {} ({})",
                    plan.patch_type.content_type(),
                    plan.target,
                    plan.target.api_version
                ),
            );
            line("", &plan.patch);
        }
        None => line("plan", "none: nothing was planned"),
    }
    let outcome = match &d.outcome {
        Outcome::Applied { at } => format!("applied at {at}"),
        Outcome::Skipped { reason } => format!("skipped: {reason}"),
        Outcome::Failed { error } => format!("failed: {error}"),
        Outcome::Recovered { at } => {
            format!("recovered at {at}: after a restart, found to have landed on the cluster")
        }
        Outcome::Abandoned { reason } => format!("abandoned: {reason}"),
        other => other.as_str().to_owned(),
    };
    line("outcome", &outcome);
    if let Some(v) = &d.verification {
        line(
            "verified",
            &format!("{} at {}: {}", v.result(), v.at, v.detail),
        );
    }
    let states: Vec<&str> = history.iter().map(Outcome::as_str).collect();
    line("journal", &format!("written as {}", states.join(" → ")));
    out
}

/// The process holding an flock on `file` and its command line, from `/proc/locks`.
fn lock_holder(file: &Path) -> Option<(u32, String)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(file).ok()?;
    let dev = meta.dev();
    // glibc's major()/minor() of a dev_t, as /proc/locks prints them (hex).
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let wanted = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    // "1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234 0 EOF": the pid precedes the file's id.
    let pid = locks.lines().find_map(|l| {
        let fields: Vec<&str> = l.split_whitespace().collect();
        let at = fields.iter().position(|f| *f == wanted)?;
        fields.get(at.checked_sub(1)?)?.parse::<u32>().ok()
    })?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            raw.split(|b| *b == 0)
                .filter(|part| !part.is_empty())
                .map(|part| String::from_utf8_lossy(part).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    Some((pid, cmdline))
}
