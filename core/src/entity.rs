//! Who a signal, an anomaly or an action is about.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What owns a workload's processes: the Kubernetes controller of its pods, or, on a plain
/// Linux host (`homeostat brain --local`), a cgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum WorkloadKind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
    /// `apps/v1` DaemonSet.
    DaemonSet,
    /// A cgroup of a host without Kubernetes, named by its systemd unit (`nginx.service`) or
    /// else its path; the namespace is the host's name. Nothing acts on it.
    Cgroup,
}

impl WorkloadKind {
    /// The Kubernetes kind name.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::Cgroup => "Cgroup",
        }
    }

    /// The kind [`as_str`](Self::as_str) spells `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            WorkloadKind::Deployment,
            WorkloadKind::StatefulSet,
            WorkloadKind::DaemonSet,
            WorkloadKind::Cgroup,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }
}

/// A workload: the unit the brain learns about and acts on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WorkloadRef {
    /// Kubernetes namespace; for a [`WorkloadKind::Cgroup`], the host's name.
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

    /// A cgroup (systemd unit or path) on a host without Kubernetes.
    pub fn cgroup(host: impl Into<String>, name: impl Into<String>) -> Self {
        WorkloadRef {
            namespace: host.into(),
            kind: WorkloadKind::Cgroup,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_back_as_they_are_spelled() {
        for kind in [
            WorkloadKind::Deployment,
            WorkloadKind::StatefulSet,
            WorkloadKind::DaemonSet,
            WorkloadKind::Cgroup,
        ] {
            assert_eq!(WorkloadKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(WorkloadKind::from_name("deployment"), None);
        assert_eq!(
            WorkloadRef::cgroup("vm1", "nginx.service").to_string(),
            "vm1/Cgroup/nginx.service"
        );
    }
}
