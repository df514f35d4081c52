//! The signal catalogue: metric names the brain understands (DESIGN.md, "Signals").

/// Run-queue latency, wakeup to switch; histogram, seconds.
pub const RUNQUEUE_LATENCY: &str = "homeostat.sched.runqueue.latency";
/// CPU time; counter, seconds.
pub const CPU_TIME: &str = "homeostat.cpu.time";
/// Process exits; counter, attribute `exit.kind`.
pub const PROCESS_EXITS: &str = "homeostat.process.exits";
/// OOM kills; counter.
pub const OOM_KILLS: &str = "homeostat.memory.oom_kills";
/// TCP retransmits; counter.
pub const TCP_RETRANSMITS: &str = "homeostat.tcp.retransmits";
/// TCP resets; counter.
pub const TCP_RESETS: &str = "homeostat.tcp.resets";
/// TCP connect latency; histogram, seconds.
pub const TCP_CONNECT_LATENCY: &str = "homeostat.tcp.connect.latency";
/// Block I/O latency; histogram, seconds.
pub const BLOCK_IO_LATENCY: &str = "homeostat.block.io.latency";
/// The sensor's own cost; gauge, fraction of a CPU.
pub const SENSOR_OVERHEAD: &str = "homeostat.sensor.overhead";
/// A pod's working set memory (OpenTelemetry Kubernetes semantic conventions); gauge, bytes.
/// Its climb towards the container's limit is what precedes an OOM kill.
pub const K8S_POD_MEMORY_WORKING_SET: &str = "k8s.pod.memory.working_set";
/// Application request duration (OpenTelemetry HTTP semantic conventions); histogram, seconds.
/// Its count is the request rate.
pub const HTTP_SERVER_REQUEST_DURATION: &str = "http.server.request.duration";
/// Pods of a workload that served at least one request within a step; gauge. Not sent by
/// anyone: the brain derives it from the per-pod request-duration histograms, so that the
/// load per pod is known at every step without asking the API server.
pub const SERVING_PODS: &str = "homeostat.workload.serving_pods";

/// Event (OTLP log record `event_name`): a process exited with an error status or was killed
/// by a signal.
pub const PROCESS_CRASH_EVENT: &str = "homeostat.process.crash";
/// Event (OTLP log record `event_name`): the kernel's OOM killer chose a process.
pub const OOM_KILL_EVENT: &str = "homeostat.memory.oom_kill";

/// Data-point attribute of [`PROCESS_EXITS`]: `ok`, `error` or `signal`.
pub const EXIT_KIND: &str = "exit.kind";

/// Data-point attributes that split a signal into separate series: an error exit and a clean
/// one mean different things, so they are never summed. Other attributes are summed over.
pub const SPLIT_BY: &[(&str, &str)] = &[(PROCESS_EXITS, EXIT_KIND)];

/// The name of the series a data point of `signal` with `attributes` belongs to:
/// `signal{key=value}` for the attributes in [`SPLIT_BY`], the bare name otherwise.
pub fn series_name<K: AsRef<str>, V: AsRef<str>>(signal: &str, attributes: &[(K, V)]) -> String {
    let mut name = signal.to_owned();
    let split: Vec<String> = attributes
        .iter()
        .filter(|(k, _)| SPLIT_BY.contains(&(signal, k.as_ref())))
        .map(|(k, v)| format!("{}={}", k.as_ref(), v.as_ref()))
        .collect();
    if !split.is_empty() {
        name.push('{');
        name.push_str(&split.join(","));
        name.push('}');
    }
    name
}

/// Every name in the catalogue, kernel and application.
pub const CATALOGUE: &[&str] = &[
    RUNQUEUE_LATENCY,
    CPU_TIME,
    PROCESS_EXITS,
    OOM_KILLS,
    TCP_RETRANSMITS,
    TCP_RESETS,
    TCP_CONNECT_LATENCY,
    BLOCK_IO_LATENCY,
    SENSOR_OVERHEAD,
    K8S_POD_MEMORY_WORKING_SET,
    HTTP_SERVER_REQUEST_DURATION,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_catalogued_attributes_split_a_series() {
        let exits = [("exit.kind", "error"), ("process.command", "java")];
        assert_eq!(
            series_name(PROCESS_EXITS, &exits),
            "homeostat.process.exits{exit.kind=error}"
        );
        assert_eq!(
            series_name(HTTP_SERVER_REQUEST_DURATION, &[("exit.kind", "error")]),
            HTTP_SERVER_REQUEST_DURATION
        );
        assert_eq!(series_name::<&str, &str>(OOM_KILLS, &[]), OOM_KILLS);
    }
}
