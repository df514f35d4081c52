//! A restarted brain picks up where the last one stopped: decisions interrupted between
//! intent and outcome are closed from the cluster's state, and the minReplicas it raised are
//! remembered, so they are put back in time rather than left raised for ever.

use homeostat_core::{Action, Decision, Outcome, Timestamp, WorkloadRef};

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
        let (step, allowance) = (self.step(), self.config.change_allowance);
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
                .or_insert_with(|| WorkloadState::resume(l, step).with_change_allowance(allowance));
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
        self.resume_watches(&decisions, now);
        self.recovered = true;
        Ok(())
    }

    /// Re-creates the episode of every HPA whose minReplicas (or workload whose replicas)
    /// homeostat raised and has not put back, from the landed actions given oldest first (the journal's, and those of another
    /// replica the cluster remembers), so it is put back in time rather than left raised.
    pub(super) fn restore_episodes<'a>(
        &mut self,
        landed: impl IntoIterator<Item = (&'a WorkloadRef, Timestamp, &'a Action)>,
    ) {
        let mut raised: std::collections::BTreeMap<WorkloadRef, Episode> = Default::default();
        for (workload, time, action) in landed {
            let Some((min_replicas, previous_min_replicas)) = super::scaling(action) else {
                continue;
            };
            if min_replicas < previous_min_replicas {
                raised.remove(workload);
                continue;
            }
            let e = raised.entry(workload.clone()).or_insert(Episode {
                started: time,
                last_anomalous: time,
                raised_from: Some(previous_min_replicas),
                last_target: None,
                last_raise: None,
            });
            e.last_anomalous = time;
            e.last_target = Some(min_replicas);
            e.last_raise = Some(time);
        }
        let (step, allowance) = (self.step(), self.config.change_allowance);
        for (workload, restored) in raised {
            tracing::info!(workload = %workload, from = ?restored.raised_from, "remembering a raised minReplicas to put back");
            let state = self.workloads.entry(workload.clone()).or_insert_with(|| {
                WorkloadState::new(workload, step).with_change_allowance(allowance)
            });
            // A replica that followed saw the anomaly itself: keep what it saw, add the raise.
            state.episode = Some(match state.episode.take() {
                Some(seen) => Episode {
                    started: seen.started.min(restored.started),
                    last_anomalous: seen.last_anomalous.max(restored.last_anomalous),
                    raised_from: seen.raised_from.or(restored.raised_from),
                    last_target: restored.last_target,
                    last_raise: restored.last_raise,
                },
                None => restored,
            });
        }
    }
}

/// Whether a decision's change is on the cluster.
pub(super) fn landed(d: &Decision) -> bool {
    matches!(
        d.outcome,
        Outcome::Applied { .. } | Outcome::Recovered { .. }
    )
}
