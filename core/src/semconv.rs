//! Attribute names on the wire: the OpenTelemetry Kubernetes resource attributes and
//! homeostat's own `homeostat.*` span attributes.

/// `k8s.namespace.name`
pub const K8S_NAMESPACE_NAME: &str = "k8s.namespace.name";
/// `k8s.deployment.name`
pub const K8S_DEPLOYMENT_NAME: &str = "k8s.deployment.name";
/// `k8s.statefulset.name`
pub const K8S_STATEFULSET_NAME: &str = "k8s.statefulset.name";
/// `k8s.daemonset.name`
pub const K8S_DAEMONSET_NAME: &str = "k8s.daemonset.name";
/// `k8s.pod.name`
pub const K8S_POD_NAME: &str = "k8s.pod.name";
/// `k8s.pod.uid`
pub const K8S_POD_UID: &str = "k8s.pod.uid";
/// `k8s.container.name`
pub const K8S_CONTAINER_NAME: &str = "k8s.container.name";
/// `k8s.node.name`
pub const K8S_NODE_NAME: &str = "k8s.node.name";
/// `host.name`: the host a [`WorkloadKind::Cgroup`](crate::WorkloadKind::Cgroup) workload
/// runs on.
pub const HOST_NAME: &str = "host.name";
/// `homeostat.cgroup.name`: a host cgroup as a workload, by its systemd unit or else its path
/// in the v2 hierarchy. OpenTelemetry names no attribute for a cgroup as a resource.
pub const HOMEOSTAT_CGROUP_NAME: &str = "homeostat.cgroup.name";
/// `process.pid` (int), OpenTelemetry process attribute.
pub const PROCESS_PID: &str = "process.pid";
/// `process.executable.name`: the kernel's command name (`comm`, 15 characters at most).
pub const PROCESS_EXECUTABLE_NAME: &str = "process.executable.name";
/// `process.exit.code` (int): the status a process exited with.
pub const PROCESS_EXIT_CODE: &str = "process.exit.code";
/// `process.linux.cgroup`: the process's cgroup as `/proc/<pid>/cgroup` shows it (`0::/path`).
pub const PROCESS_LINUX_CGROUP: &str = "process.linux.cgroup";
/// `homeostat.process.signal` (int): the signal that killed a process. OpenTelemetry has no
/// attribute for it.
pub const HOMEOSTAT_PROCESS_SIGNAL: &str = "homeostat.process.signal";
/// `homeostat.process.core_dumped` (bool): whether a process killed by a signal dumped core.
pub const HOMEOSTAT_PROCESS_CORE_DUMPED: &str = "homeostat.process.core_dumped";
/// `k8s.hpa.name`
pub const K8S_HPA_NAME: &str = "k8s.hpa.name";

/// `homeostat.mode`: observe, dry-run or enforce.
pub const HOMEOSTAT_MODE: &str = "homeostat.mode";
/// `homeostat.action`: the action's kind.
pub const HOMEOSTAT_ACTION: &str = "homeostat.action";
/// `homeostat.verdict`: act, dry-run, observe or deny.
pub const HOMEOSTAT_VERDICT: &str = "homeostat.verdict";
/// `homeostat.policy`: the policy that decided.
pub const HOMEOSTAT_POLICY: &str = "homeostat.policy";
/// `homeostat.rule`: the rule within the policy that decided.
pub const HOMEOSTAT_RULE: &str = "homeostat.rule";
/// `homeostat.reason`: why the verdict is what it is.
pub const HOMEOSTAT_REASON: &str = "homeostat.reason";
/// `homeostat.anomaly.score`: in [0, 1].
pub const HOMEOSTAT_ANOMALY_SCORE: &str = "homeostat.anomaly.score";
/// `homeostat.anomaly.kind`
pub const HOMEOSTAT_ANOMALY_KIND: &str = "homeostat.anomaly.kind";
/// `homeostat.decision.id`: the journal key.
pub const HOMEOSTAT_DECISION_ID: &str = "homeostat.decision.id";
/// `homeostat.plan.patch`: the exact patch planned.
pub const HOMEOSTAT_PLAN_PATCH: &str = "homeostat.plan.patch";
/// `homeostat.plan.patch_type`
pub const HOMEOSTAT_PLAN_PATCH_TYPE: &str = "homeostat.plan.patch_type";
/// `homeostat.outcome`
pub const HOMEOSTAT_OUTCOME: &str = "homeostat.outcome";
