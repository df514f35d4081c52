//! The evaluator: a pure function from a policy set, a proposal, the global mode, past
//! actions and the time to a [`Verdict`] naming the rule that decided it.
//!
//! Rules run in a fixed order (`scope`/`no-policy`, `mode`, `stale-data`, `cooldown`,
//! `replica-ceiling`, `allowed`) and the first that refuses decides, so the same inputs always
//! give the same verdict and the verdict says why.

use std::time::Duration;

use homeostat_core::{
    Action, ActionKind, Mode, Proposal, Timestamp, Verdict, VerdictKind, WorkloadRef,
};

use crate::duration::format_compact;
use crate::load::{Policy, PolicySet};

/// An earlier action on a workload, as the caller's journal recorded it; cooldowns are
/// measured from these.
///
/// List actions that were applied (`applied: true`) and actions planned in dry-run
/// (`applied: false`). Leave out denied proposals: they did nothing and planned nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PastAction {
    /// The workload acted on.
    pub workload: WorkloadRef,
    /// What kind of action.
    pub kind: ActionKind,
    /// When it was applied or planned.
    pub time: Timestamp,
    /// Whether it changed the cluster; `false` for a dry-run plan.
    pub applied: bool,
}

/// Decides what may be done about `proposal`.
///
/// Cooldown in dry-run counts dry-run plans as if they had been applied, so a dry-run shows
/// exactly the actions enforce would take; in enforce only applied actions count, since a
/// plan changed nothing.
pub fn evaluate(
    set: &PolicySet,
    proposal: &Proposal,
    global_mode: Mode,
    history: &[PastAction],
    now: Timestamp,
) -> Verdict {
    let kind = proposal.action.kind();
    let Some(policy) = set.policies().iter().find(|p| covers(p, proposal)) else {
        return Verdict {
            kind: VerdictKind::Deny,
            policy: None,
            rule: "no-policy".to_owned(),
            reason: format!(
                "no policy allows {} for {}",
                kind.as_str(),
                proposal.workload
            ),
            action: proposal.action.clone(),
        };
    };
    let decide = |verdict: VerdictKind, rule: &str, reason: String, action: &Action| Verdict {
        kind: verdict,
        policy: Some(policy.name.to_string()),
        rule: rule.to_owned(),
        reason,
        action: action.clone(),
    };
    let deny =
        |rule: &str, reason: String| decide(VerdictKind::Deny, rule, reason, &proposal.action);

    let mode = global_mode.stricter(policy.spec.mode);
    let allowed = match mode {
        Mode::Observe => {
            return decide(
                VerdictKind::Observe,
                "mode",
                format!(
                    "effective mode is observe (global {global_mode}, policy {}): record only",
                    policy.spec.mode
                ),
                &proposal.action,
            );
        }
        Mode::DryRun => VerdictKind::DryRun,
        Mode::Enforce => VerdictKind::Act,
    };

    let bounded = bound(policy, &proposal.action);
    let destructive = proposal.action.is_destructive()
        || matches!(&bounded, Bound::Clamped { action, .. } if action.is_destructive());
    if let Some(reason) = stale(policy, proposal, destructive, now) {
        return deny("stale-data", reason);
    }
    if let Some(reason) = cooling_down(policy, proposal, mode, history, now) {
        return deny("cooldown", reason);
    }
    let by = format!("allowed by {} ({mode})", policy.name);
    match bounded {
        Bound::Unchanged => decide(allowed, "allowed", by, &proposal.action),
        Bound::Clamped { action, from, to } => decide(
            allowed,
            "replica-ceiling",
            format!("{by}; minReplicas bounded from {from} to the ceiling of {to}"),
            &action,
        ),
        Bound::Refused(reason) => deny("replica-ceiling", reason),
    }
}

/// Whether `policy` allows this kind of action on this workload.
fn covers(policy: &Policy, proposal: &Proposal) -> bool {
    let target = &policy.spec.target;
    let w = &proposal.workload;
    let listed = |names: &[crate::ObjectName], name: &str| names.iter().any(|n| n.as_str() == name);
    policy.spec.actions.contains(&proposal.action.kind())
        && (target.namespaces.is_empty() || listed(&target.namespaces, &w.namespace))
        && (target.workloads.is_empty() || listed(&target.workloads, &w.name))
        && !listed(&target.exclude, &w.name)
}

/// Why the evidence is too old to act on, if it is. Destructive actions need evidence half
/// as old as `maxDataAge`: taking capacity away on a stale picture is the costliest mistake.
/// `destructive` covers the action as proposed and as the ceiling would bound it.
fn stale(
    policy: &Policy,
    proposal: &Proposal,
    destructive: bool,
    now: Timestamp,
) -> Option<String> {
    let max_age = policy.spec.max_data_age.get();
    if proposal.evidence_time == Timestamp::EPOCH {
        return Some(
            "the proposal carries no evidence time: refusing to act without data".to_owned(),
        );
    }
    let age = now.since(proposal.evidence_time);
    if age > max_age {
        return Some(format!(
            "evidence is {} old, more than maxDataAge {}",
            format_compact(age),
            format_compact(max_age)
        ));
    }
    let destructive_max = max_age / 2;
    if destructive && age > destructive_max {
        return Some(format!(
            "evidence is {} old; a destructive {} needs evidence at most {} old (half of maxDataAge {})",
            format_compact(age),
            proposal.action.kind().as_str(),
            format_compact(destructive_max),
            format_compact(max_age)
        ));
    }
    None
}

/// Why the workload is still cooling down from the same kind of action, if it is.
fn cooling_down(
    policy: &Policy,
    proposal: &Proposal,
    mode: Mode,
    history: &[PastAction],
    now: Timestamp,
) -> Option<String> {
    let cooldown = policy.spec.cooldown.get();
    let kind = proposal.action.kind();
    let last = history
        .iter()
        .filter(|p| p.kind == kind && p.workload == proposal.workload)
        .filter(|p| p.applied || mode == Mode::DryRun)
        .fold(None::<&PastAction>, |latest, p| match latest {
            Some(l) if l.time >= p.time => Some(l),
            _ => Some(p),
        })?;
    let ago: Duration = now.since(last.time);
    (ago < cooldown).then(|| {
        format!(
            "cooldown: last {}{} {} ago, cooldown {}",
            kind.as_str(),
            if last.applied { "" } else { " (dry-run)" },
            format_compact(ago),
            format_compact(cooldown)
        )
    })
}

/// What the replica ceiling does to an action.
enum Bound {
    /// Nothing to bound.
    Unchanged,
    /// `minReplicas` lowered from `from` to the ceiling `to`.
    Clamped { action: Action, from: u32, to: u32 },
    /// Nothing left to do within the ceiling, or no ceiling to bound by.
    Refused(String),
}

fn bound(policy: &Policy, action: &Action) -> Bound {
    let Action::ScaleHpa {
        hpa,
        min_replicas,
        previous_min_replicas,
    } = action
    else {
        return Bound::Unchanged;
    };
    let Some(ceiling) = policy.spec.max_replicas.map(|c| c.get()) else {
        return Bound::Refused(format!(
            "policy {} sets no maxReplicas, so scale-hpa has no ceiling",
            policy.name
        ));
    };
    if *min_replicas <= ceiling {
        return Bound::Unchanged;
    }
    if *min_replicas > *previous_min_replicas && ceiling <= *previous_min_replicas {
        return Bound::Refused(format!(
            "already at the ceiling of {ceiling}: minReplicas is {previous_min_replicas}"
        ));
    }
    Bound::Clamped {
        action: Action::ScaleHpa {
            hpa: hpa.clone(),
            min_replicas: ceiling,
            previous_min_replicas: *previous_min_replicas,
        },
        from: *min_replicas,
        to: ceiling,
    }
}
