//! The evaluator: a pure function from a policy set, a proposal, the global mode, past
//! actions and the time to a [`Verdict`] naming the rule that decided it.
//!
//! The first policy whose scope covers the proposal decides (`no-policy` when none does; its
//! reason names the policies whose label selector alone left the workload out). A policy
//! with a label selector never covers a proposal whose workload labels were not read.
//! Its rules then run in this fixed order, and the first that refuses decides, so the same
//! inputs always give the same verdict and the verdict says why:
//!
//! 1. `mode` — observe records only;
//! 2. `stale-data` — evidence older than `maxDataAge` (half for destructive actions);
//! 3. `schedule` — a deny window, or a destructive action outside every maintenance window;
//! 4. `trigger` — the policy has triggers and the proposal meets none (putting back an
//!    earlier change needs none);
//! 5. `condition` — a CEL condition false, failing, or not a boolean;
//! 6. `escalation` — the policy escalates, and the last action of this kind on the workload
//!    did not help (putting back an earlier change is never refused);
//! 7. `cooldown` — the same kind on the same workload too recently;
//! 8. `budget` — a budget's window already full;
//! 9. `blast-radius` — a restart would take more pods down than `maxUnavailable`;
//! 10. `throttle` — a probe `throttle.probes` leaves out, or a rate below `throttle.minRate`;
//! 11. the replica bounds, last because they may change the action rather than refuse it:
//!     `replica-ceiling` (`maxReplicas` cuts or refuses a raise), `max-step` (`scale.maxStep`
//!     cuts a raise) and `needed-replicas` (`scale.neverBelowNeed` refuses a lowering below
//!     the load's need);
//! 12. `allowed`.

use std::time::Duration;

use homeostat_core::{Action, ActionKind, Mode, Proposal, Timestamp, Verdict, VerdictKind};

use crate::condition::{Bindings, LocalTime, Reads};
use crate::document::DEFAULT_MAX_UNAVAILABLE;
use crate::duration::format_compact;
use crate::history::{ActionLog, ActionLogError, PastAction};
use crate::limits::BudgetScope;
use crate::load::{Policy, PolicySet};

/// How far back `recent` in conditions counts.
pub const RECENT_WINDOW: Duration = Duration::from_secs(3600);

/// Decides what may be done about `proposal`.
///
/// Cooldowns, budgets and `recent` in dry-run count dry-run plans as if they had been
/// applied, so a dry-run shows exactly the actions enforce would take; in enforce only
/// applied actions count, since a plan changed nothing.
pub fn evaluate(
    set: &PolicySet,
    proposal: &Proposal,
    global_mode: Mode,
    history: &[PastAction],
    now: Timestamp,
) -> Verdict {
    let kind = proposal.action.kind();
    let Some(policy) = set
        .policies()
        .iter()
        .find(|p| covers(p, proposal) && selects(p, proposal))
    else {
        return Verdict {
            kind: VerdictKind::Deny,
            policy: None,
            rule: "no-policy".to_owned(),
            reason: format!(
                "no policy allows {} for {}{}",
                kind.as_str(),
                proposal.workload,
                unselected(set, proposal)
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
    let bounded = bound(policy, proposal);
    let destructive = proposal.action.is_destructive()
        || matches!(&bounded, Bound::Clamped { action, .. } if action.is_destructive());
    if let Some(reason) = stale(policy, proposal, destructive, now) {
        return deny("stale-data", reason);
    }
    let local = policy.spec.schedule.time_zone.local(now);
    if let Some(reason) = off_schedule(policy, local, destructive) {
        return deny("schedule", reason);
    }
    if let Some(triggers) = &policy.spec.triggers
        && !proposal.action.restores()
        && let Some(reason) = triggers.unmet(proposal)
    {
        return deny("trigger", reason);
    }
    let counted = Counted::new(history, mode, proposal, horizon(policy), now);
    if let Some(reason) = unmet_condition(policy, proposal, local, &counted, now) {
        return deny("condition", reason);
    }
    if let Some(reason) = did_not_help(policy, proposal, &counted) {
        return deny("escalation", reason);
    }
    if let Some(reason) = cooling_down(policy, proposal, &counted, now) {
        return deny("cooldown", reason);
    }
    if let Some(reason) = over_budget(policy, proposal, &counted, now) {
        return deny("budget", reason);
    }
    let action = match &bounded {
        Bound::Clamped { action, .. } => action,
        _ => &proposal.action,
    };
    if let Some(reason) = blast_radius(policy, proposal, action) {
        return deny("blast-radius", reason);
    }
    if let (Some(bounds), Action::ThrottleSampling { probe, rate, .. }) =
        (&policy.spec.throttle, action)
        && let Some(reason) = bounds.refuses(probe, *rate)
    {
        return deny("throttle", reason);
    }
    let by = format!("allowed by {} ({mode})", policy.name);
    match bounded {
        Bound::Unchanged => decide(allowed, "allowed", by, &proposal.action),
        Bound::Clamped {
            action,
            rule,
            reason,
        } => decide(allowed, rule, format!("{by}; {reason}"), &action),
        Bound::Refused { rule, reason } => deny(rule, reason),
    }
}

/// [`evaluate`] with the history read from `log` as far back as `since`: the engine's way
/// in, with its journal as the log.
pub fn evaluate_logged(
    set: &PolicySet,
    proposal: &Proposal,
    global_mode: Mode,
    log: &dyn ActionLog,
    since: Timestamp,
    now: Timestamp,
) -> Result<Verdict, ActionLogError> {
    let history = log.actions_since(since)?;
    Ok(evaluate(set, proposal, global_mode, &history, now))
}

/// Whether `policy`'s label selector, if it has one, selects the workload: never when its
/// labels were not read.
fn selects(policy: &Policy, proposal: &Proposal) -> bool {
    policy.spec.target.selector.as_ref().is_none_or(|s| {
        proposal
            .workload_labels
            .as_ref()
            .is_some_and(|l| s.matches(l))
    })
}

/// For a `no-policy` reason: the policies that would have covered the proposal but for
/// their label selector, and why it left the workload out.
fn unselected(set: &PolicySet, proposal: &Proposal) -> String {
    let notes: Vec<String> = set
        .policies()
        .iter()
        .filter(|p| covers(p, proposal) && !selects(p, proposal))
        .filter_map(|p| {
            let selector = p.spec.target.selector.as_ref()?;
            Some(match proposal.workload_labels {
                None => format!(
                    "{} selects by label ({selector}) and the workload's labels were not read",
                    p.name
                ),
                Some(_) => format!(
                    "{}'s selector ({selector}) does not match its labels",
                    p.name
                ),
            })
        })
        .collect();
    if notes.is_empty() {
        String::new()
    } else {
        format!(": {}", notes.join("; "))
    }
}

/// Whether `policy` allows this kind of action on this workload, by name and namespace.
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

/// What counts as having happened in `mode`: applied actions, and in dry-run the plans too.
///
/// Gathered in one pass, since comparing names is most of a verdict's cost: those within the
/// `horizon` (the longest window a rule reads) in the proposal's namespace, those of them on
/// its workload, and the latest of the proposal's kind on its workload at any age (for
/// escalation). Older entries are skipped on their time, kind and `helped` alone unless one
/// of the kind did not help.
struct Counted<'a> {
    history: &'a [PastAction],
    mode: Mode,
    namespace: Vec<&'a PastAction>,
    mine: Vec<&'a PastAction>,
    latest: Option<&'a PastAction>,
}

impl<'a> Counted<'a> {
    fn new(
        history: &'a [PastAction],
        mode: Mode,
        proposal: &Proposal,
        horizon: Duration,
        now: Timestamp,
    ) -> Self {
        let (workload, kind) = (&proposal.workload, proposal.action.kind());
        let mut counted = Counted {
            history,
            mode,
            namespace: Vec::new(),
            mine: Vec::new(),
            latest: None,
        };
        // `Timestamp` compares inline; `since` is a call per entry.
        let cutoff = now - horizon;
        // Beyond the horizon only escalation looks, and only if the latest of the kind there
        // did not help: names are compared for such entries alone, then for what is newer.
        let mut failed_before: Option<&PastAction> = None;
        for p in counted.iter() {
            if p.time <= cutoff {
                if p.kind == kind
                    && p.helped == Some(false)
                    && failed_before.is_none_or(|f| p.time > f.time)
                    && p.workload == *workload
                {
                    failed_before = Some(p);
                }
                continue;
            }
            if p.workload.namespace != workload.namespace {
                continue;
            }
            counted.namespace.push(p);
            if p.workload.name != workload.name || p.workload.kind != workload.kind {
                continue;
            }
            counted.mine.push(p);
            if p.kind == kind && counted.latest.is_none_or(|l| p.time > l.time) {
                counted.latest = Some(p);
            }
        }
        if counted.latest.is_none()
            && let Some(failed) = failed_before
        {
            counted.latest = Some(
                counted
                    .iter()
                    .filter(|p| p.kind == kind && p.time > failed.time && p.time <= cutoff)
                    .filter(|p| p.workload == *workload)
                    .fold(failed, |l, p| if p.time > l.time { p } else { l }),
            );
        }
        counted
    }

    fn iter(&self) -> impl Iterator<Item = &'a PastAction> + use<'a> {
        let mode = self.mode;
        self.history
            .iter()
            .filter(move |p| p.applied || mode == Mode::DryRun)
    }
}

/// The longest window `policy`'s rules read history over, but for the latest action of a
/// kind (which cooldown and escalation read at any age).
fn horizon(policy: &Policy) -> Duration {
    policy
        .spec
        .budgets
        .iter()
        .map(|b| b.per.get())
        .fold(policy.spec.cooldown.get().max(RECENT_WINDOW), Duration::max)
}

/// Why the workload is still cooling down from the same kind of action, if it is.
fn cooling_down(
    policy: &Policy,
    proposal: &Proposal,
    history: &Counted<'_>,
    now: Timestamp,
) -> Option<String> {
    let cooldown = policy.spec.cooldown.get();
    let kind = proposal.action.kind();
    let last = history.latest?;
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

/// Why a deny window, or the lack of a maintenance window, forbids acting now.
fn off_schedule(policy: &Policy, local: LocalTime, destructive: bool) -> Option<String> {
    let schedule = &policy.spec.schedule;
    let at = format!(
        "{} {:02}:{:02} {}",
        local.weekday,
        local.hour,
        local.minute,
        schedule.time_zone.name()
    );
    if let Some(window) = schedule.denied(local) {
        return Some(format!("{at} is inside the deny window {window}"));
    }
    (destructive && !schedule.in_maintenance(local)).then(|| {
        let windows: Vec<String> = schedule.maintenance.iter().map(|w| w.to_string()).collect();
        format!(
            "{at} is outside every maintenance window ({}); destructive actions wait for one",
            windows.join("; ")
        )
    })
}

/// The first condition that is not true, and why.
fn unmet_condition(
    policy: &Policy,
    proposal: &Proposal,
    local: LocalTime,
    history: &Counted<'_>,
    now: Timestamp,
) -> Option<String> {
    let conditions = &policy.spec.conditions;
    if conditions.is_empty() {
        return None;
    }
    let reads = conditions.iter().fold(Reads::NONE, |r, c| r.and(c.reads()));
    let mut recent = crate::document::ACTION_KINDS.map(|kind| (kind, 0u32));
    if reads.recent {
        for p in history
            .mine
            .iter()
            .filter(|p| now.since(p.time) < RECENT_WINDOW)
        {
            if let Some((_, n)) = recent.iter_mut().find(|(k, _)| *k == p.kind) {
                *n = n.saturating_add(1);
            }
        }
    }
    let bindings = Bindings {
        anomaly: proposal.anomaly,
        forecast: proposal.forecast.clone().filter(|_| reads.forecast),
        workload: proposal.workload.clone(),
        replicas: proposal.current_replicas,
        time: local,
        recent,
    };
    let context = bindings.context(reads);
    conditions.iter().find_map(|c| match c.holds_in(&context) {
        Ok(true) => None,
        Ok(false) => Some(format!("condition {:?} is false", c.source())),
        Err(e) => Some(format!("condition {:?} {e}: denied", c.source())),
    })
}

/// Why the same action is not tried again: its last run on the workload did not help, and
/// the policy escalates. Without an `escalation` the cooldown alone paces a repeat; putting
/// back an earlier change is never refused.
fn did_not_help(policy: &Policy, proposal: &Proposal, history: &Counted<'_>) -> Option<String> {
    let escalation = policy.spec.escalation.as_ref()?;
    if proposal.action.restores() {
        return None;
    }
    let kind = proposal.action.kind();
    let last = history.latest?;
    (last.helped == Some(false)).then(|| {
        let next = escalation.after(kind);
        format!(
            "the last {} on {} did not help: not repeated; {}",
            kind.as_str(),
            proposal.workload,
            next.describe()
        )
    })
}

/// The first budget whose window is already full.
fn over_budget(
    policy: &Policy,
    proposal: &Proposal,
    history: &Counted<'_>,
    now: Timestamp,
) -> Option<String> {
    let w = &proposal.workload;
    policy.spec.budgets.iter().find_map(|b| {
        let per = b.per.get();
        let in_window =
            |p: &&PastAction| policy.spec.actions.contains(&p.kind) && now.since(p.time) < per;
        let used = match b.scope {
            BudgetScope::Workload => history.mine.iter().copied().filter(in_window).count(),
            BudgetScope::Namespace => history.namespace.iter().copied().filter(in_window).count(),
            BudgetScope::Cluster => history.iter().filter(in_window).count(),
        };
        (used >= b.max as usize).then(|| {
            let over = match b.scope {
                BudgetScope::Workload => format!("on {w}"),
                BudgetScope::Namespace => format!("in namespace {}", w.namespace),
                BudgetScope::Cluster => "in the cluster".to_owned(),
            };
            format!(
                "{used} actions {over} in the last {}: the budget is {} per {} ({})",
                format_compact(per),
                b.max,
                format_compact(per),
                b.scope.as_str()
            )
        })
    })
}

/// Why a restart would take down more of the workload than `maxUnavailable` allows.
fn blast_radius(policy: &Policy, proposal: &Proposal, action: &Action) -> Option<String> {
    if action.kind() != ActionKind::RestartPods {
        return None;
    }
    let limit = policy
        .spec
        .max_unavailable
        .unwrap_or(DEFAULT_MAX_UNAVAILABLE);
    let max = limit.of(proposal.current_replicas);
    let Some(unavailable) = proposal.unavailable_replicas else {
        return Some(
            "the proposal does not say how many pods are unavailable: refusing to restart blind"
                .to_owned(),
        );
    };
    let after = unavailable.saturating_add(1);
    (after > max).then(|| {
        format!(
            "{unavailable} of {} pods already unavailable; a restart makes {after}, more than \
             maxUnavailable {limit} ({max})",
            proposal.current_replicas
        )
    })
}

/// `action` (a scaling one) asking for `n` instead.
fn with_replicas(action: &Action, n: u32) -> Action {
    let mut bounded = action.clone();
    match &mut bounded {
        Action::ScaleHpa { min_replicas, .. } => *min_replicas = n,
        Action::ScaleWorkload { replicas, .. } => *replicas = n,
        _ => {}
    }
    bounded
}

/// What the replica bounds do to a scaling action.
enum Bound {
    /// Nothing to bound.
    Unchanged,
    /// Cut to what the bounds allow; `rule` is the bound that set the final value.
    Clamped {
        action: Action,
        rule: &'static str,
        reason: String,
    },
    /// Nothing left to do within the bounds, or no ceiling to bound by.
    Refused { rule: &'static str, reason: String },
}

/// `maxReplicas`, then `scale.maxStep`, then `scale.neverBelowNeed`, on a scaling action.
fn bound(policy: &Policy, proposal: &Proposal) -> Bound {
    let action = &proposal.action;
    // What is bounded: the field, the value asked for and the value before.
    let (field, wanted, previous) = match action {
        Action::ScaleHpa {
            min_replicas,
            previous_min_replicas,
            ..
        } => ("minReplicas", *min_replicas, *previous_min_replicas),
        Action::ScaleWorkload {
            replicas,
            previous_replicas,
            ..
        } => ("replicas", *replicas, *previous_replicas),
        _ => return Bound::Unchanged,
    };
    let Some(ceiling) = policy.spec.max_replicas.map(|c| c.get()) else {
        return Bound::Refused {
            rule: "replica-ceiling",
            reason: format!(
                "policy {} sets no maxReplicas, so {} has no ceiling",
                policy.name,
                action.kind().as_str()
            ),
        };
    };
    let (mut to, mut rule, mut notes) = (wanted, "", Vec::new());
    if wanted > ceiling {
        if wanted > previous && ceiling <= previous {
            return Bound::Refused {
                rule: "replica-ceiling",
                reason: format!("already at the ceiling of {ceiling}: {field} is {previous}"),
            };
        }
        notes.push(format!(
            "{field} bounded from {wanted} to the ceiling of {ceiling}"
        ));
        (to, rule) = (ceiling, "replica-ceiling");
    }
    let Some(scale) = &policy.spec.scale else {
        return clamped(action, wanted, to, rule, notes);
    };
    let current = proposal.current_replicas;
    let base = previous.max(current);
    if to > previous
        && let Some(limit) = scale.step_limit(base, current)
        && to > limit
    {
        notes.push(format!(
            "{field} bounded from {to} to {limit} by maxStep {} from {base}",
            scale.max_step.map_or(String::new(), |s| s.to_string())
        ));
        (to, rule) = (limit, "max-step");
    }
    if scale.never_below_need
        && to < previous
        && let Some(need) = proposal.needed_replicas
        && to < need
    {
        return Bound::Refused {
            rule: "needed-replicas",
            reason: format!(
                "lowering {field} from {previous} to {to} would go below the {need} replicas \
                 the load needs (scale.neverBelowNeed)"
            ),
        };
    }
    clamped(action, wanted, to, rule, notes)
}

/// `action` with its replicas cut from `wanted` to `to`, or unchanged.
fn clamped(action: &Action, wanted: u32, to: u32, rule: &'static str, notes: Vec<String>) -> Bound {
    if to == wanted {
        Bound::Unchanged
    } else {
        Bound::Clamped {
            action: with_replicas(action, to),
            rule,
            reason: notes.join("; "),
        }
    }
}
