//! Why an actuator could not plan or apply.

use thiserror::Error;

/// Why an actuator could not plan or apply.
#[derive(Debug, Error)]
pub enum ActuatorError {
    /// This actuator does not perform that kind of action.
    #[error("{actuator} cannot perform {action}")]
    Unsupported {
        /// The actuator.
        actuator: &'static str,
        /// The action kind asked for.
        action: &'static str,
    },
    /// The target does not exist (any more).
    #[error("{target} not found")]
    NotFound {
        /// The object.
        target: String,
    },
    /// The API server refused or failed the request.
    #[error("Kubernetes API error on {target}: {source}")]
    Api {
        /// The object.
        target: String,
        /// kube's error, with the server's status when there was one.
        #[source]
        source: kube::Error,
    },
    /// The API server asked to wait (a PodDisruptionBudget refused an eviction): try again
    /// later, nothing is wrong.
    #[error("{target}: deferred: {reason}")]
    Deferred {
        /// The object.
        target: String,
        /// What the server said.
        reason: String,
    },
    /// A plan that this actuator did not make, or that was altered.
    #[error("invalid plan for {target}: {reason}")]
    InvalidPlan {
        /// The object.
        target: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// What to do about a failed apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Someone else changed the target since it was read (409): read it again, plan again.
    Replan,
    /// The server is busy or unwell, or the answer did not come (429, 5xx, a timeout or a
    /// broken connection): the same plan may succeed in a moment.
    Later,
    /// Retrying cannot help (refused as invalid, forbidden, not found, deferred by a
    /// disruption budget, a plan that is wrong).
    Never,
}

impl ActuatorError {
    /// Whether and how a failure of `apply` is worth retrying.
    pub fn retry(&self) -> Retry {
        match self {
            ActuatorError::Api { source, .. } => match source {
                kube::Error::Api(status) if status.code == 409 => Retry::Replan,
                kube::Error::Api(status) if status.code == 429 || status.code >= 500 => {
                    Retry::Later
                }
                kube::Error::Api(_) => Retry::Never,
                // Transport trouble: the request may not have been answered at all.
                kube::Error::HyperError(_) | kube::Error::Service(_) => Retry::Later,
                _ => Retry::Never,
            },
            _ => Retry::Never,
        }
    }

    pub(crate) fn from_kube(target: String, source: kube::Error) -> Self {
        match &source {
            kube::Error::Api(status) if status.code == 404 => ActuatorError::NotFound { target },
            _ => ActuatorError::Api { target, source },
        }
    }
}
