//! The decision journal (sled): intent before the actuator runs, outcome after.
//!
//! Keys are decision ids (ULIDs), so iteration is in time order. Besides the current state of
//! each decision, an append-only log keeps every state it was written in, so an auditor can
//! see that intent was recorded before the outcome. A decision still `Pending` when the brain
//! starts was interrupted between intent and outcome: the engine asks the cluster whether it
//! landed, and [`Journal::reconcile`] closes it as abandoned where there is no cluster to ask.
//! Beside the decisions it keeps what the detectors learned, so a restarted brain scores as
//! the one before it did.

use std::path::Path;

use homeostat_core::{ActionKind, Decision, DecisionId, Outcome, Timestamp, WorkloadRef};
use homeostat_policies::{ActionLog, ActionLogError, PastAction};
use sled::Transactional;
use thiserror::Error;

/// Why the journal could not be read or written.
#[derive(Debug, Error)]
pub enum JournalError {
    /// sled failed.
    #[error("journal storage: {0}")]
    Storage(#[from] sled::Error),
    /// A record could not be encoded or decoded.
    #[error("journal record {id}: {source}")]
    Codec {
        /// The record's key.
        id: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
}

impl JournalError {
    /// Whether another holder (a running brain) has the journal's directory locked.
    pub fn is_locked(&self) -> bool {
        // sled reports it only in the message of an I/O error.
        matches!(self, JournalError::Storage(sled::Error::Io(e))
            if e.to_string().contains("could not acquire lock"))
    }
}

/// The decision journal.
#[derive(Clone, Debug)]
pub struct Journal {
    db: sled::Db,
    decisions: sled::Tree,
    log: sled::Tree,
    learned: sled::Tree,
}

/// One write of a decision, as the append-only log keeps it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LogEntry {
    /// The decision.
    pub id: DecisionId,
    /// The state it was written in.
    pub outcome: Outcome,
    /// Whether the change helped, once that was judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helped: Option<bool>,
}

/// An applied action and whether it helped, as escalation reads them back.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedAction {
    /// The decision.
    pub id: DecisionId,
    /// The workload it was for.
    pub workload: WorkloadRef,
    /// The kind of action.
    pub kind: ActionKind,
    /// When it was decided.
    pub time: Timestamp,
    /// Whether it helped within its verify window.
    pub helped: bool,
}

impl Journal {
    /// Opens (or creates) the journal at `path`.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        // sled's worker threads can hold a journal this process dropped for a moment after its
        // last write, and with it the directory's lock: wait for them briefly rather than fail
        // a restart. Another process's lock is still refused, after the wait.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        loop {
            // Every write flushes before it returns, so sled's background flusher is not needed.
            let opened = sled::Config::new()
                .path(path)
                .flush_every_ms(None)
                .open()
                .map_err(JournalError::from)
                .and_then(Self::from_db);
            match opened {
                Err(e) if e.is_locked() && std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                opened => return opened,
            }
        }
    }

    /// A journal that lives in memory only, for simulations and tests.
    pub fn temporary() -> Result<Self, JournalError> {
        Self::from_db(sled::Config::new().temporary(true).open()?)
    }

    fn from_db(db: sled::Db) -> Result<Self, JournalError> {
        let decisions = db.open_tree("decisions")?;
        let log = db.open_tree("log")?;
        let learned = db.open_tree("learned")?;
        Ok(Journal {
            db,
            decisions,
            log,
            learned,
        })
    }

    /// Keeps `value` (what one workload's detectors learned) under `key`, replacing what was
    /// kept there; durable at the next [`Journal::flush`].
    pub fn keep_learned<T: serde::Serialize>(
        &self,
        key: &str,
        value: &T,
    ) -> Result<(), JournalError> {
        let bytes = serde_json::to_vec(value).map_err(|source| JournalError::Codec {
            id: key.to_owned(),
            source,
        })?;
        self.learned.insert(key, bytes)?;
        Ok(())
    }

    /// Everything kept with [`Journal::keep_learned`].
    pub fn learned<T: serde::de::DeserializeOwned>(&self) -> Result<Vec<T>, JournalError> {
        self.learned
            .iter()
            .map(|entry| {
                let (k, v) = entry?;
                serde_json::from_slice(&v).map_err(|source| JournalError::Codec {
                    id: String::from_utf8_lossy(&k).into_owned(),
                    source,
                })
            })
            .collect()
    }

    /// Makes everything written so far durable.
    pub async fn flush(&self) -> Result<(), JournalError> {
        self.db.flush_async().await?;
        Ok(())
    }

    /// Writes a decision and makes it durable before returning: called with the intent before
    /// the actuator runs, and again with the outcome.
    pub async fn write(&self, decision: &Decision) -> Result<(), JournalError> {
        let codec = |source| JournalError::Codec {
            id: decision.id.0.clone(),
            source,
        };
        let bytes = serde_json::to_vec(decision).map_err(codec)?;
        let entry = serde_json::to_vec(&LogEntry {
            id: decision.id.clone(),
            outcome: decision.outcome.clone(),
            helped: decision.verification.as_ref().map(|v| v.helped),
        })
        .map_err(codec)?;
        let seq = self.db.generate_id()?;
        (&self.decisions, &self.log)
            .transaction(|(decisions, log)| {
                decisions.insert(decision.id.0.as_bytes(), bytes.as_slice())?;
                log.insert(&seq.to_be_bytes(), entry.as_slice())?;
                Ok(())
            })
            .map_err(|e: sled::transaction::TransactionError<()>| match e {
                sled::transaction::TransactionError::Storage(e) => JournalError::Storage(e),
                sled::transaction::TransactionError::Abort(()) => JournalError::Storage(
                    sled::Error::ReportableBug("journal transaction aborted".into()),
                ),
            })?;
        self.db.flush_async().await?;
        Ok(())
    }

    /// Every state `id` was written in, oldest first (the write of its verification, which
    /// changes no state, is not one).
    pub fn history(&self, id: &DecisionId) -> Result<Vec<Outcome>, JournalError> {
        let mut out = Vec::new();
        for entry in self.log.iter() {
            let (_, v) = entry?;
            let e: LogEntry = serde_json::from_slice(&v).map_err(|source| JournalError::Codec {
                id: id.0.clone(),
                source,
            })?;
            if &e.id == id && e.helped.is_none() {
                out.push(e.outcome);
            }
        }
        Ok(out)
    }

    /// One decision.
    pub fn get(&self, id: &DecisionId) -> Result<Option<Decision>, JournalError> {
        self.decisions
            .get(id.0.as_bytes())?
            .map(|v| decode(&id.0, &v))
            .transpose()
    }

    /// The newest `limit` decisions, newest first, optionally for one workload.
    pub fn recent(
        &self,
        limit: usize,
        workload: Option<&WorkloadRef>,
    ) -> Result<Vec<Decision>, JournalError> {
        let mut out = Vec::new();
        for entry in self.decisions.iter().rev() {
            let (k, v) = entry?;
            let d = decode(&String::from_utf8_lossy(&k), &v)?;
            if workload.is_none_or(|w| &d.proposal.workload == w) {
                out.push(d);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Every decision, oldest first.
    pub fn all(&self) -> Result<Vec<Decision>, JournalError> {
        let mut out = self.recent(usize::MAX, None)?;
        out.reverse();
        Ok(out)
    }

    /// The actions taken or planned since `since`, as policies need them for cooldowns.
    pub fn past_actions(&self, since: Timestamp) -> Result<Vec<PastAction>, JournalError> {
        let mut out = Vec::new();
        for d in self.newest_since(since) {
            let d = d?;
            let applied = match &d.outcome {
                Outcome::Applied { .. } | Outcome::Recovered { .. } | Outcome::Pending => true,
                Outcome::Planned => false,
                _ => continue,
            };
            out.push(PastAction {
                workload: d.proposal.workload.clone(),
                kind: d.verdict.action.kind(),
                time: d.time,
                applied,
                helped: d.verification.as_ref().map(|v| v.helped),
            });
        }
        Ok(out)
    }

    /// Records whether decision `id`'s change helped; returns the decision as now written,
    /// or `None` if the journal does not hold it.
    pub async fn verify(
        &self,
        id: &DecisionId,
        verification: homeostat_core::Verification,
    ) -> Result<Option<Decision>, JournalError> {
        let Some(mut d) = self.get(id)? else {
            return Ok(None);
        };
        d.verification = Some(verification);
        self.write(&d).await?;
        Ok(Some(d))
    }

    /// The actions decided since `since` whose verify window has been judged, newest first:
    /// what escalation reads to tell an action that helped from one that did not.
    pub fn verified(&self, since: Timestamp) -> Result<Vec<VerifiedAction>, JournalError> {
        let mut out = Vec::new();
        for d in self.newest_since(since) {
            let d = d?;
            if let Some(v) = &d.verification {
                out.push(VerifiedAction {
                    kind: d.verdict.action.kind(),
                    workload: d.proposal.workload,
                    id: d.id,
                    time: d.time,
                    helped: v.helped,
                });
            }
        }
        Ok(out)
    }

    /// The decisions taken since `since`, newest first.
    fn newest_since(
        &self,
        since: Timestamp,
    ) -> impl Iterator<Item = Result<Decision, JournalError>> + '_ {
        self.decisions
            .iter()
            .rev()
            .map(|entry| {
                let (k, v) = entry?;
                decode(&String::from_utf8_lossy(&k), &v)
            })
            .take_while(move |d| d.as_ref().map_or(true, |d| d.time >= since))
    }

    /// Decisions whose intent was written but not their outcome: a crash in between.
    pub fn pending(&self) -> Result<Vec<Decision>, JournalError> {
        Ok(self
            .all()?
            .into_iter()
            .filter(|d| d.outcome == Outcome::Pending)
            .collect())
    }

    /// Closes decisions left pending by a crash; returns how many. Without a cluster to ask
    /// (`homeostat brain --local`) the brain cannot know whether the change landed, so it
    /// neither repeats nor assumes it; with one, the engine asks the cluster instead.
    pub async fn reconcile(&self) -> Result<usize, JournalError> {
        let mut closed = 0;
        for d in self.all()? {
            if d.outcome == Outcome::Pending {
                let mut d = d;
                d.outcome = Outcome::Abandoned {
                    reason: "the brain stopped between intent and outcome".into(),
                };
                tracing::warn!(decision = %d.id, workload = %d.proposal.workload, "closing an interrupted decision as abandoned");
                self.write(&d).await?;
                closed += 1;
            }
        }
        Ok(closed)
    }
}

fn decode(id: &str, bytes: &[u8]) -> Result<Decision, JournalError> {
    serde_json::from_slice(bytes).map_err(|source| JournalError::Codec {
        id: id.to_owned(),
        source,
    })
}

/// The journal is where policies' cooldowns and budgets are read from, so they survive a
/// restart of the brain.
impl ActionLog for Journal {
    fn actions_since(
        &self,
        since: homeostat_core::Timestamp,
    ) -> Result<Vec<PastAction>, ActionLogError> {
        self.past_actions(since)
            .map_err(|e| ActionLogError(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use homeostat_core::{Action, Mode, ObjectRef, Proposal, Timestamp, Verdict, VerdictKind};

    fn decision(id: &str, t: i64) -> Decision {
        let hpa = ObjectRef {
            api_version: "autoscaling/v2".into(),
            kind: "HorizontalPodAutoscaler".into(),
            namespace: "shop".into(),
            name: "web".into(),
        };
        let action = Action::ScaleHpa {
            hpa,
            min_replicas: 8,
            previous_min_replicas: 4,
        };
        Decision {
            id: DecisionId(id.into()),
            time: Timestamp::from_secs(t),
            anomaly: None,
            proposal: Proposal::new(
                WorkloadRef::deployment("shop", "web"),
                action.clone(),
                "test",
                Timestamp::from_secs(t),
                4,
            ),
            verdict: Verdict {
                kind: VerdictKind::Act,
                policy: Some("p".into()),
                rule: "allowed".into(),
                reason: "ok".into(),
                action,
            },
            mode: Mode::Enforce,
            plan: None,
            outcome: Outcome::Pending,
            policy_set: None,
            verification: None,
        }
    }

    #[tokio::test]
    async fn a_verification_is_kept_logged_and_read_back_for_escalation() {
        let j = Journal::temporary().expect("journal");
        let mut d = decision("01V", 100);
        d.outcome = Outcome::Applied {
            at: Timestamp::from_secs(100),
        };
        j.write(&d).await.expect("written");
        j.write(&decision("01W", 200)).await.expect("written");
        let v = homeostat_core::Verification {
            at: Timestamp::from_secs(400),
            helped: true,
            detail: "back".into(),
        };
        let written = j
            .verify(&d.id, v.clone())
            .await
            .expect("verified")
            .expect("held");
        assert_eq!(written.verification.as_ref(), Some(&v));
        assert_eq!(
            j.get(&d.id).expect("read").and_then(|d| d.verification),
            Some(v)
        );
        assert_eq!(
            j.verified(Timestamp::from_secs(50)).expect("read"),
            vec![VerifiedAction {
                id: d.id.clone(),
                workload: WorkloadRef::deployment("shop", "web"),
                kind: ActionKind::ScaleHpa,
                time: Timestamp::from_secs(100),
                helped: true,
            }]
        );
        assert!(
            j.verified(Timestamp::from_secs(150))
                .expect("read")
                .is_empty()
        );
        assert_eq!(
            j.verify(
                &DecisionId("01X".into()),
                written.verification.clone().expect("v")
            )
            .await
            .expect("no error"),
            None
        );
        let states = j.history(&d.id).expect("history");
        assert_eq!(states.len(), 1, "a verification is no new state");
    }

    #[tokio::test]
    async fn intent_then_outcome_is_logged_and_survives_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let j = Journal::open(dir.path()).expect("open");
            let mut d = decision("01A", 10);
            j.write(&d).await.expect("intent");
            d.outcome = Outcome::Applied {
                at: Timestamp::from_secs(11),
            };
            j.write(&d).await.expect("outcome");
        }
        let j = Journal::open(dir.path()).expect("reopen");
        let id = DecisionId("01A".into());
        assert_eq!(
            j.history(&id).expect("history"),
            vec![
                Outcome::Pending,
                Outcome::Applied {
                    at: Timestamp::from_secs(11)
                }
            ]
        );
        assert_eq!(
            j.get(&id).expect("get").map(|d| d.outcome),
            Some(Outcome::Applied {
                at: Timestamp::from_secs(11)
            })
        );
        let past = j.past_actions(Timestamp::from_secs(0)).expect("past");
        assert_eq!(past.len(), 1);
        assert!(past[0].applied);
    }

    #[tokio::test]
    async fn a_crash_between_intent_and_outcome_is_closed_as_abandoned_not_repeated() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let j = Journal::open(dir.path()).expect("open");
            j.write(&decision("01A", 10)).await.expect("intent");
            // The process dies here, before the actuator reports.
        }
        let j = Journal::open(dir.path()).expect("reopen");
        assert_eq!(j.reconcile().await.expect("reconcile"), 1);
        assert_eq!(
            j.reconcile().await.expect("again"),
            0,
            "reconciling twice changes nothing"
        );
        let d = j
            .get(&DecisionId("01A".into()))
            .expect("get")
            .expect("present");
        assert!(
            matches!(d.outcome, Outcome::Abandoned { .. }),
            "{:?}",
            d.outcome
        );
        assert!(
            j.past_actions(Timestamp::from_secs(0))
                .expect("past")
                .is_empty(),
            "an abandoned action does not count as done"
        );
    }

    #[test]
    fn recent_filters_by_workload_newest_first() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt");
        let j = Journal::temporary().expect("temp");
        rt.block_on(async {
            j.write(&decision("01A", 1)).await.expect("w");
            j.write(&decision("01B", 2)).await.expect("w");
        });
        let ids: Vec<String> = j
            .recent(10, None)
            .expect("recent")
            .into_iter()
            .map(|d| d.id.0)
            .collect();
        assert_eq!(ids, ["01B", "01A"]);
        assert!(
            j.recent(10, Some(&WorkloadRef::deployment("shop", "other")))
                .expect("recent")
                .is_empty()
        );
        assert_eq!(j.recent(1, None).expect("recent").len(), 1);
    }
}
