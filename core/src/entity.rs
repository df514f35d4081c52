//! Who a signal, an anomaly or an action is about.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The kind of controller that owns a workload's pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WorkloadKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
    /// `apps/v1` DaemonSet.
    DaemonSet,
}

impl WorkloadKind {
    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
        }
    }
}

/// A workload: the unit the brain learns about and acts on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WorkloadRef {
    /// Kubernetes namespace.
    pub namespace: String,
    /// Owning controller kind.
    pub kind: WorkloadKind,
    /// Owning controller name.
    pub name: String,
}

impl WorkloadRef {
    /// A Deployment in a namespace.
    pub fn deployment(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        WorkloadRef {
            namespace: namespace.into(),
            kind: WorkloadKind::Deployment,
            name: name.into(),
        }
    }
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.kind.as_str(), self.name)
    }
}

/// Where exactly a signal came from: the workload, and as much below it as is known.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Entity {
    /// The workload the pod belongs to.
    pub workload: WorkloadRef,
    /// Pod name.
    pub pod: Option<String>,
    /// Pod UID, stable across a pod's renames in telemetry.
    pub pod_uid: Option<String>,
    /// Container name.
    pub container: Option<String>,
    /// Node name.
    pub node: Option<String>,
}

impl Entity {
    /// An entity known only down to its workload.
    pub fn workload(workload: WorkloadRef) -> Self {
        Entity {
            workload,
            pod: None,
            pod_uid: None,
            container: None,
            node: None,
        }
    }
}
