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
