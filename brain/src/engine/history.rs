//! The actions this brain did not journal itself: taken by the replica that led before it, or
//! by this pod before it lost its volume. The cluster's Events carry them
//! ([`homeostat_actuators::history`]); they are read once per stretch of leadership, so the
//! cooldowns and budgets those actions started hold across a hand-over.

use homeostat_core::{Action, Timestamp, WorkloadRef};
use homeostat_policies::PastAction;

use super::{Engine, EngineError};

impl Engine {
    /// Reads the recent actions from the cluster, the first time a leading pass needs them,
    /// and restores the episodes of the HPAs raised by them or by this journal's actions.
    /// `Ok(false)` when they could not be read: the pass must not act, since a cooldown it
    /// cannot see is a cooldown it could break. The next pass tries again.
    pub(super) async fn know_cluster_history(
        &mut self,
        now: Timestamp,
    ) -> Result<bool, EngineError> {
        if self.cluster_history.is_some() {
            return Ok(true);
        }
        let records = match self.action_history.since(now - self.config.history).await {
            Ok(records) => records,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read homeostat's past actions from the cluster's Events; not acting until they are known");
                return Ok(false);
            }
        };
        // Those this journal holds are counted from the journal already.
        let mut foreign = Vec::new();
        for r in records {
            if self.journal.get(&r.decision)?.is_none() {
                foreign.push(r);
            }
        }
        if !foreign.is_empty() {
            tracing::info!(
                actions = foreign.len(),
                "read past actions this journal does not hold from the cluster's Events"
            );
        }
        // The raises to put back once their episodes end, whoever made them.
        let journal = self.journal.all()?;
        let mut landed: Vec<(&WorkloadRef, Timestamp, &Action)> = journal
            .iter()
            .filter(|d| super::recover::landed(d))
            .map(|d| (&d.proposal.workload, d.time, &d.verdict.action))
            .chain(foreign.iter().map(|r| (&r.workload, r.time, &r.action)))
            .collect();
        landed.sort_by_key(|(_, time, _)| *time);
        self.restore_episodes(landed);
        self.cluster_history = Some(
            foreign
                .into_iter()
                .map(|r| PastAction {
                    workload: r.workload,
                    kind: r.action.kind(),
                    time: r.time,
                    applied: true,
                })
                .collect(),
        );
        Ok(true)
    }

    /// The actions since `since` that cooldowns and budgets count: the journal's and the
    /// cluster's.
    pub(super) fn past_actions(&self, since: Timestamp) -> Result<Vec<PastAction>, EngineError> {
        let mut past = self.journal.past_actions(since)?;
        if let Some(cluster) = &self.cluster_history {
            past.extend(cluster.iter().filter(|p| p.time >= since).cloned());
        }
        Ok(past)
    }
}
