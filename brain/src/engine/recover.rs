//! A restarted brain picks up where the last one stopped: decisions interrupted between
//! intent and outcome are closed from the cluster's state, and the minReplicas it raised are
//! remembered, so they are put back in time rather than left raised for ever.

use homeostat_core::{Decision, Outcome, Timestamp};

use super::{Engine, EngineError};
use crate::assess::{Episode, Learned, WorkloadState};

/// Every this many passes what the detectors learned is written to the journal (and on a
/// clean stop): a crash forgets at most these passes' learning.
const KEEP_EVERY: u64 = 4;

impl Engine {
    /// Before the first pass: resumes what the detectors had learned when the last brain on
    /// this journal stopped, so a restart neither re-learns from scratch (and takes the
    /// incident under way as normal) nor scores differently.
    pub(super) fn resume_learned(&mut self) -> Result<(), EngineError> {
        if self.resumed {
            return Ok(());
        }
        self.resumed = true;
        let step = self.step();
        let learned: Vec<Learned> = self.journal.learned()?;
        if !learned.is_empty() {
            tracing::info!(
                workloads = learned.len(),
                "resuming what the detectors had learned"
            );
        }
        for l in learned {
            self.workloads
                .entry(l.workload.clone())
                .or_insert_with(|| WorkloadState::resume(l, step));
        }
        Ok(())
    }

    /// Writes what the detectors of the workloads seen this pass have learned, every
    /// [`KEEP_EVERY`] passes.
    pub(super) async fn keep_learned_now_and_then(
        &mut self,
        seen: impl Iterator<Item = &homeostat_core::WorkloadRef>,
    ) -> Result<(), EngineError> {
        self.passes += 1;
        if !self.passes.is_multiple_of(KEEP_EVERY) {
            return Ok(());
        }
        for w in seen {
            if let Some(state) = self.workloads.get(w) {
                self.journal
                    .keep_learned(&w.to_string(), &state.learned())?;
            }
        }
        self.journal.flush().await?;
        Ok(())
    }

    /// Writes what every workload's detectors have learned, durably: on a clean stop.
    pub async fn keep_learned(&self) -> Result<(), EngineError> {
        for (w, state) in &self.workloads {
            self.journal
                .keep_learned(&w.to_string(), &state.learned())?;
        }
        self.journal.flush().await?;
        Ok(())
    }

    /// Runs once, before the first proposal: closes interrupted decisions (asking the
    /// cluster whether each landed) and restores the episodes of raised HPAs. A decision whose
    /// landing cannot be checked now (the API server is unwell) stays pending, which counts
    /// as done for cooldowns, and is checked again at the next pass.
    pub(super) async fn recover(&mut self, now: Timestamp) -> Result<(), EngineError> {
        if self.recovered {
            return Ok(());
        }
        let mut unknown = 0;
        for mut d in self.journal.pending()? {
            let Some(plan) = d.plan.clone() else {
                d.outcome = Outcome::Abandoned {
                    reason: "interrupted before a plan was made".into(),
                };
                self.journal.write(&d).await?;
                continue;
            };
            match homeostat_actuators::landed::landed(&self.client, &plan, &d.id).await {
                Ok(true) => {
                    tracing::warn!(decision = %d.id, target = %plan.target, "an interrupted decision had landed: recorded as done");
                    d.outcome = Outcome::Recovered { at: now };
                    self.journal.write(&d).await?;
                }
                Ok(false) => {
                    tracing::warn!(decision = %d.id, target = %plan.target, "an interrupted decision never landed: closed, not repeated");
                    d.outcome = Outcome::Abandoned {
                        reason: format!(
                            "the brain stopped between intent and outcome, and {} does not show the change",
                            plan.target
                        ),
                    };
                    self.journal.write(&d).await?;
                }
                Err(e) => {
                    tracing::warn!(decision = %d.id, error = %e, "cannot tell yet whether an interrupted decision landed");
                    unknown += 1;
                }
            }
        }
        if unknown > 0 {
            return Ok(());
        }
        let decisions = self.journal.all()?;
        self.restore_episodes(&decisions);
        self.resume_watches(&decisions, now);
        self.recovered = true;
        Ok(())
    }

    /// Re-creates, from the journal, the episode of every HPA whose minReplicas homeostat
    /// raised and has not put back.
    fn restore_episodes(&mut self, decisions: &[Decision]) {
        let mut raised: std::collections::BTreeMap<_, Episode> = Default::default();
        for d in decisions {
            let landed = matches!(
                d.outcome,
                Outcome::Applied { .. } | Outcome::Recovered { .. }
            );
            let Some((min_replicas, previous_min_replicas)) = super::scaling(&d.verdict.action)
            else {
                continue;
            };
            if !landed {
                continue;
            }
            let workload = d.proposal.workload.clone();
            if min_replicas < previous_min_replicas {
                raised.remove(&workload);
                continue;
            }
            let e = raised.entry(workload).or_insert(Episode {
                started: d.time,
                last_anomalous: d.time,
                raised_from: Some(previous_min_replicas),
                last_target: None,
                last_raise: None,
            });
            e.last_anomalous = d.time;
            e.last_target = Some(min_replicas);
            e.last_raise = Some(d.time);
        }
        let step = self.step();
        for (workload, episode) in raised {
            tracing::info!(workload = %workload, from = ?episode.raised_from, "remembering a raised minReplicas to put back");
            self.workloads
                .entry(workload.clone())
                .or_insert_with(|| WorkloadState::new(workload, step))
                .episode = Some(episode);
        }
    }
}
