//! The joint models are fitted off the scoring path: a pass hands the due training windows to
//! a blocking task and goes on scoring; the next pass puts the fitted models in use. The next
//! pass awaits the task rather than polling it, so a run replays exactly on any machine.

use homeostat_core::WorkloadRef;

use super::Engine;
use crate::detect::{Fitted, JointError};

/// Joint models being fitted: which workloads, and the task fitting them.
pub(super) type Fitting = (
    Vec<WorkloadRef>,
    tokio::task::JoinHandle<Vec<Result<Fitted, JointError>>>,
);

impl Engine {
    /// Puts in use the joint models the previous pass started fitting.
    pub(super) async fn install_fitted(&mut self) {
        let Some((workloads, task)) = self.fitting.take() else {
            return;
        };
        let fits = match task.await {
            Ok(fits) => fits,
            Err(e) => workloads
                .iter()
                .map(|_| {
                    Err(JointError::Fit {
                        method: crate::detect::JointConfig::default().method,
                        reason: format!("the fitting task ended abnormally: {e}"),
                    })
                })
                .collect(),
        };
        for (w, fit) in workloads.into_iter().zip(fits) {
            if let Some(state) = self.workloads.get_mut(&w)
                && let Err(e) = state.install_joint(fit)
            {
                tracing::warn!(workload = %w, error = %e, "joint model not refitted; the previous one stays");
            }
        }
    }

    /// Starts fitting the joint models that are due, on a blocking task.
    pub(super) fn start_fitting(&mut self) {
        if self.fitting.is_some() {
            return;
        }
        let (workloads, trainings): (Vec<_>, Vec<_>) = self
            .workloads
            .iter_mut()
            .filter_map(|(w, state)| state.joint_training().map(|t| (w.clone(), t)))
            .unzip();
        if workloads.is_empty() {
            return;
        }
        let task = tokio::task::spawn_blocking(move || trainings.iter().map(|t| t.fit()).collect());
        self.fitting = Some((workloads, task));
    }
}
