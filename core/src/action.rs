//! What could be done, and exactly how.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::anomaly::AnomalySummary;
use crate::clock::Timestamp;
use crate::entity::WorkloadRef;
use crate::forecast::ForecastSummary;

/// A Kubernetes object; cluster-scoped ones (a Node) have an empty namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObjectRef {
    /// `group/version`, or `v1` for the core group.
    pub api_version: String,
    /// Kind, e.g. `HorizontalPodAutoscaler`.
    pub kind: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind, self.name)
        } else {
            write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// The kinds of action homeostat can take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    /// Change an HPA's bounds.
    ScaleHpa,
    /// Restart a workload's pods.
    RestartPods,
    /// Change a node sensor's sampling.
    ThrottleSampling,
    /// Mark a node as one new pods should avoid (a `PreferNoSchedule` taint), or unmark it.
    TaintNode,
    /// Set the replicas of a workload that no HPA scales, through its `scale` subresource.
    ScaleWorkload,
    /// Replace all of a workload's pods by a rolling update of its template.
    RolloutRestart,
}

impl ActionKind {
    /// The name used in policies, spans and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::ScaleHpa => "scale-hpa",
            ActionKind::RestartPods => "restart-pods",
            ActionKind::ThrottleSampling => "throttle-sampling",
            ActionKind::TaintNode => "taint-node",
            ActionKind::ScaleWorkload => "scale-workload",
            ActionKind::RolloutRestart => "rollout-restart",
        }
    }
}

/// An action with its parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Action {
    /// Set an HPA's `minReplicas`; raising it makes the HPA scale up at once.
    ScaleHpa {
        /// The HPA.
        hpa: ObjectRef,
        /// The new `minReplicas`.
        min_replicas: u32,
        /// `minReplicas` before the change, to restore it later.
        previous_min_replicas: u32,
    },
    /// Restart one of a workload's pods by evicting it, so its controller replaces it and
    /// PodDisruptionBudgets are honoured; one pod per decision keeps the blast radius at one.
    RestartPods {
        /// The workload.
        workload: WorkloadRef,
        /// The pod to restart.
        pod: String,
        /// Its UID: the eviction is conditional on it, so a pod recreated under the same name
        /// is never evicted by a decision about its predecessor.
        uid: Option<String>,
    },
    /// Set a sensor probe's sampling rate on a node.
    ThrottleSampling {
        /// Node name.
        node: String,
        /// Probe name.
        probe: String,
        /// Fraction of events sampled, in (0, 1].
        rate: f64,
    },
    /// Put homeostat's `PreferNoSchedule` taint on a node whose CPU something outside the
    /// workloads takes, so the scheduler places new pods elsewhere (and pods restarted off it
    /// do not come back); or take it off again. Soft: a pod still lands there when no other
    /// node has room, and nothing already running is touched.
    TaintNode {
        /// Node name.
        node: String,
        /// Take the taint off rather than put it on.
        remove: bool,
    },
    /// Set `spec.replicas` of a Deployment or StatefulSet that no HPA scales (an HPA would
    /// undo it at its next sync), through its `scale` subresource.
    ScaleWorkload {
        /// The workload.
        workload: WorkloadRef,
        /// The new replicas.
        replicas: u32,
        /// Replicas before the change, to restore them later.
        previous_replicas: u32,
    },
    /// Replace every pod of a workload by a rolling update, as `kubectl rollout restart`
    /// does: for trouble the whole workload shares (most pods crash-looping), where evicting
    /// one pod at a time would not end it. The workload's own `maxUnavailable`/`maxSurge` bound
    /// how many pods are down at once.
    RolloutRestart {
        /// The workload.
        workload: WorkloadRef,
    },
}

impl Action {
    /// This action's kind.
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::ScaleHpa { .. } => ActionKind::ScaleHpa,
            Action::RestartPods { .. } => ActionKind::RestartPods,
            Action::ThrottleSampling { .. } => ActionKind::ThrottleSampling,
            Action::TaintNode { .. } => ActionKind::TaintNode,
            Action::ScaleWorkload { .. } => ActionKind::ScaleWorkload,
            Action::RolloutRestart { .. } => ActionKind::RolloutRestart,
        }
    }

    /// Whether the action puts back what an earlier one changed (a lowered floor, a lifted
    /// throttle or taint): escalation never refuses it, since that would leave the earlier
    /// change in place for good.
    pub fn restores(&self) -> bool {
        match self {
            Action::ScaleHpa { .. } | Action::ScaleWorkload { .. } => self.lowers_replicas(),
            Action::ThrottleSampling { rate, .. } => *rate >= 1.0,
            Action::TaintNode { remove, .. } => *remove,
            Action::RestartPods { .. } | Action::RolloutRestart { .. } => false,
        }
    }

    /// Whether the action sets fewer replicas (or a lower floor) than before.
    fn lowers_replicas(&self) -> bool {
        match self {
            Action::ScaleHpa {
                min_replicas,
                previous_min_replicas,
                ..
            } => min_replicas < previous_min_replicas,
            Action::ScaleWorkload {
                replicas,
                previous_replicas,
                ..
            } => replicas < previous_replicas,
            _ => false,
        }
    }

    /// Whether the action can take capacity away (and so must never follow stale data).
    pub fn is_destructive(&self) -> bool {
        match self {
            Action::ScaleHpa { .. } | Action::ScaleWorkload { .. } => self.lowers_replicas(),
            Action::RestartPods { .. } | Action::RolloutRestart { .. } => true,
            Action::ThrottleSampling { .. } | Action::TaintNode { .. } => false,
        }
    }
}

/// What the decision engine suggests, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// The workload it is for.
    pub workload: WorkloadRef,
    /// The suggested action.
    pub action: Action,
    /// Why, in a sentence a person accepts.
    pub reason: String,
    /// Time of the newest data the proposal rests on; policies refuse stale evidence.
    pub evidence_time: Timestamp,
    /// Replicas the workload runs now.
    pub current_replicas: u32,
    /// The anomaly behind the proposal, for policy conditions; `None` when none is (a
    /// restore after calm).
    #[serde(default)]
    pub anomaly: Option<AnomalySummary>,
    /// The workload's pods not ready now (starting, terminating, crashing), for a policy's
    /// blast radius; `None` when the proposer did not read the pods.
    #[serde(default)]
    pub unavailable_replicas: Option<u32>,
    /// The replicas the workload's current (or forecast) load needs, when the brain can tell
    /// from its learned capacity per replica; policies never let scaling go below it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needed_replicas: Option<u32>,
    /// The forecast behind a proposal that acts ahead of the load; `None` for one that
    /// answers an anomaly or restores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<ForecastSummary>,
    /// The workload's labels, for policies that select workloads by label; `None` when they
    /// were not read (a policy with a label selector then does not match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_labels: Option<BTreeMap<String, String>>,
}

impl Proposal {
    /// A proposal with no context beyond what every one has; proposers that know more (the
    /// anomaly, the need, a forecast) set those fields with struct update syntax.
    pub fn new(
        workload: WorkloadRef,
        action: Action,
        reason: impl Into<String>,
        evidence_time: Timestamp,
        current_replicas: u32,
    ) -> Self {
        Proposal {
            workload,
            action,
            reason: reason.into(),
            evidence_time,
            current_replicas,
            anomaly: None,
            unavailable_replicas: None,
            needed_replicas: None,
            forecast: None,
            workload_labels: None,
        }
    }
}

/// How a plan's body is sent: as a patch of the target, read one of three ways, or as an
/// Eviction of the target pod, which the API server checks against PodDisruptionBudgets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PatchType {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/apply-patch+yaml` (server-side apply).
    Apply,
    /// A `policy/v1` Eviction posted to the pod's `eviction` subresource.
    Eviction,
}

impl PatchType {
    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Merge => "application/merge-patch+json",
            PatchType::Json => "application/json-patch+json",
            PatchType::Apply => "application/apply-patch+yaml",
            PatchType::Eviction => "application/json",
        }
    }
}

/// The exact change an actuator will make: shown in dry-run, journaled, and put on the span.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The object to change.
    pub target: ObjectRef,
    /// How the patch is to be read.
    pub patch_type: PatchType,
    /// The body, as sent: the patch, or the Eviction.
    pub patch: String,
    /// One line for people.
    pub summary: String,
}
