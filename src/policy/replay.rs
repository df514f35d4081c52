//! `homeostat policy test FILE... --scenario S`: what FILE would have allowed and denied of
//! the proposals the engine makes in a scenario.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use homeostat_brain::{DecisionSpans, EngineConfig, Journal};
use homeostat_core::{Decision, Mode, Timestamp, VerdictKind, Verification};
use homeostat_policies::{PolicySet, Proposed, Replayed, replay};
use homeostat_simulations::{Controller, DEFAULT_POLICY, RunOptions, Scenario};

use super::describe;

/// How the proposals are collected and judged; `policy test --help` shows it.
pub const SEMANTICS: &str = "\
How it works:
  1. The scenario runs once in the simulator (as `homeostat simulate` runs it) with the brain
     in dry-run mode under the built-in default policy (policies/examples/default.yaml). Every
     proposal the engine makes is collected with the simulated time it was made at, whatever
     the default policy said of it. Nothing is applied in that run, so the simulated cluster
     never reacts to an action: the proposals after one that FILE would allow are those of a
     cluster where it did not happen.
  2. Each proposal is then evaluated against FILE..., in the order the engine made them, under
     --mode (the stricter of it and a policy's own mode applies), at the time it was made,
     against the history the earlier verdicts left, built as the brain's journal builds it:
     an `act` verdict counts as applied at its time (a replay cannot know whether an actuator
     would have succeeded), a `dry-run` verdict as planned (cooldowns count plans only in
     dry-run mode), `observe` and `deny` count nothing, and actions older than the engine's
     history window (24h) are forgotten.
  3. Every verdict is printed with its time since the start of the run, the workload, the
     action (as the policy bounded it), the policy and rule that decided, and why; then the
     totals. The exit code is 0 once the replay ran, whatever was denied.

  This replay cannot honour verification or escalation: nothing is applied in the collecting
  run, so the brain verifies nothing (it judges applied changes only) and no action is known
  to have helped or not, and the next step of an escalation is a proposal the engine makes
  from such a judgement, which a fixed list of proposals cannot contain.

With --closed-loop the scenario runs instead with FILE... in force under --mode, as the
brain would run them: what they allow is applied to the simulated cluster (in enforce), the
cluster reacts, every applied change is verified after its policy's escalation.verifyWithin
and escalated as the policy says. Every decision is printed as above, with its verification
(helped or not, and what was seen) where there is one. The proposals are then those of a
cluster the policy acted on, so they differ from the open replay's.";

/// Arguments of `homeostat policy test`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = SEMANTICS)]
pub struct Args {
    /// Policy files or directories of them.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The scenario whose proposals are replayed (a file as `homeostat simulate` takes, e.g.
    /// simulations/scenarios/load-spike.yaml).
    #[arg(long, value_name = "FILE")]
    scenario: PathBuf,
    /// The global mode the proposals are judged under.
    #[arg(long, value_enum, default_value = "enforce")]
    mode: crate::ModeArg,
    /// Run the scenario with FILE... in force instead of replaying its proposals, so
    /// verification and escalation happen as in the brain (see below).
    #[arg(long)]
    closed_loop: bool,
}

/// Collects the scenario's proposals and replays them through the files.
pub async fn run(args: &Args) -> anyhow::Result<ExitCode> {
    crate::existing(&args.files)?;
    crate::existing(std::slice::from_ref(&args.scenario))?;
    let set = match homeostat_brain::runtime::load_policies(&args.files) {
        Ok(set) => set,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let scenario = Scenario::load(&args.scenario)?;
    let mode: Mode = args.mode.into();
    if args.closed_loop {
        eprintln!(
            "running {} ({} simulated) with the given policies in force, global mode {mode}",
            scenario.name,
            humantime::format_duration(scenario.duration)
        );
        let (start, decisions) = closed_loop(&scenario, set.clone(), mode).await?;
        let trail: Vec<Replayed> = decisions
            .iter()
            .map(|d| Replayed {
                time: d.time,
                proposal: d.proposal.clone(),
                verdict: d.verdict.clone(),
            })
            .collect();
        let verified: Vec<Option<&Verification>> =
            decisions.iter().map(|d| d.verification.as_ref()).collect();
        print!(
            "{}",
            render(&scenario.name, &set, mode, start, &trail, &verified)
        );
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "collecting proposals: {} ({} simulated) in dry-run under the default policy",
        scenario.name,
        humantime::format_duration(scenario.duration)
    );
    let (start, proposed) = collect(&scenario).await?;
    let trail = replay(&set, &proposed, mode, EngineConfig::default().history);
    print!("{}", render(&scenario.name, &set, mode, start, &trail, &[]));
    Ok(ExitCode::SUCCESS)
}

/// One run of `scenario` with `policies` in force under `mode`, and every decision it
/// journaled, oldest first, with the verifications written after it.
async fn closed_loop(
    scenario: &Scenario,
    policies: PolicySet,
    mode: Mode,
) -> anyhow::Result<(Timestamp, Vec<Decision>)> {
    let journal = Journal::temporary()?;
    let controller = Controller::Homeostat {
        mode,
        policies,
        spans: DecisionSpans::disabled(),
    };
    let mut options = RunOptions::new(controller);
    options.journal = Some(journal.clone());
    let result = homeostat_simulations::run(scenario, options)
        .await
        .with_context(|| format!("running scenario {}", scenario.name))?;
    Ok((result.start, journal.all()?))
}

/// Every proposal of one dry-run of `scenario` under the default policy, in the engine's
/// order, and the run's start.
async fn collect(scenario: &Scenario) -> anyhow::Result<(Timestamp, Vec<Proposed>)> {
    let policies =
        PolicySet::from_str("policies/examples/default.yaml (built in)", DEFAULT_POLICY)?;
    let controller = Controller::Homeostat {
        mode: Mode::DryRun,
        policies,
        spans: DecisionSpans::disabled(),
    };
    let result = homeostat_simulations::run(scenario, RunOptions::new(controller))
        .await
        .with_context(|| format!("running scenario {}", scenario.name))?;
    let proposed = result
        .decisions
        .into_iter()
        .map(|d| Proposed {
            time: d.time,
            proposal: d.proposal,
        })
        .collect();
    Ok((result.start, proposed))
}

/// The verdicts, one block each (with the verification of the same index in `verified`,
/// if any), then the totals.
fn render(
    scenario: &str,
    set: &PolicySet,
    mode: Mode,
    start: Timestamp,
    trail: &[Replayed],
    verified: &[Option<&Verification>],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "scenario {scenario}: {} proposals judged by {} policies, global mode {mode}\n",
        trail.len(),
        set.len()
    );
    let mut by_rule: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (i, r) in trail.iter().enumerate() {
        let v = &r.verdict;
        let elapsed = r.time.since(start).as_secs();
        let _ = writeln!(
            out,
            "{:02}:{:02}:{:02}  {:<7}  {}  {}",
            elapsed / 3600,
            elapsed / 60 % 60,
            elapsed % 60,
            v.kind.as_str(),
            r.proposal.workload,
            describe::action(&v.action)
        );
        let _ = writeln!(out, "          {}: {}", describe::decided_by(v), v.reason);
        if let Some(Some(check)) = verified.get(i) {
            let _ = writeln!(
                out,
                "          verified: {}: {}",
                check.result(),
                check.detail
            );
        }
        *by_rule
            .entry((v.kind.as_str(), v.rule.as_str()))
            .or_default() += 1;
    }
    let count = |kinds: &[VerdictKind]| {
        trail
            .iter()
            .filter(|r| kinds.contains(&r.verdict.kind))
            .count()
    };
    let _ = writeln!(
        out,
        "\nallowed {} (act {}, dry-run {}), observed {}, denied {}",
        count(&[VerdictKind::Act, VerdictKind::DryRun]),
        count(&[VerdictKind::Act]),
        count(&[VerdictKind::DryRun]),
        count(&[VerdictKind::Observe]),
        count(&[VerdictKind::Deny]),
    );
    for ((kind, rule), n) in &by_rule {
        let _ = writeln!(out, "  {n:>4} × {kind} by rule {rule}");
    }
    if !verified.is_empty() {
        let judged: Vec<&Verification> = verified.iter().flatten().copied().collect();
        let helped = judged.iter().filter(|v| v.helped).count();
        let _ = writeln!(
            out,
            "verified {}: helped {helped}, not helped {}",
            judged.len(),
            judged.len() - helped
        );
    }
    out
}
