//! The sensor's OTLP metrics are what the brain's receiver accepts: every data point of a
//! real snapshot (kernel probes, when BPF can run here) passes the brain's validation.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use homeostat_brain::ingest::convert;
use homeostat_sensor::{Owner, Sensor, SensorConfig, Snapshot, otlp, preflight};

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Every owner as a pod of Deployment `test/<owner>`: what the sensor's API lookup supplies.
fn as_pod(owner: &Owner) -> Option<Vec<(String, String)>> {
    Some(vec![
        ("k8s.namespace.name".into(), "test".into()),
        (
            "k8s.deployment.name".into(),
            owner.to_string().replace('/', "_"),
        ),
        ("k8s.pod.name".into(), "p".into()),
    ])
}

/// The points the brain accepts, with the sensor's own overhead gauge among them.
fn accepted(snapshot: &Snapshot) -> usize {
    let own = otlp::sensor_resource(otlp::SENSOR_NAMESPACE, "homeostat-sensor-abcde", "node-1");
    let request = otlp::export_request(snapshot, now_ns(), &mut as_pod, Some(&own));
    let converted = convert(&request);
    assert_eq!(converted.rejected, 0, "{:?}", converted.errors);
    if snapshot.overhead.is_some() {
        let own_points = format!("{:?}", converted.points);
        assert!(
            own_points.contains("homeostat.sensor.overhead"),
            "{own_points}"
        );
    }
    converted.points.len()
}

#[test]
fn a_live_snapshot_is_accepted_by_the_brain() {
    if let Some(why) = preflight::unavailable() {
        eprintln!("SKIP a_live_snapshot_is_accepted_by_the_brain: {why}");
        return;
    }
    let mut sensor = Sensor::start(&SensorConfig::default()).unwrap();
    // Measure the probes' own cost, so it is exported too.
    assert!(sensor.measure_cost(true));
    for code in [0, 1] {
        let _ = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("exit {code}"))
            .status();
    }
    let _ = std::net::TcpStream::connect(
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(500));
    let snapshot = sensor.read().unwrap();
    let kinds: std::collections::BTreeSet<&str> =
        snapshot.readings.iter().map(|r| r.signal).collect();
    assert!(
        snapshot.overhead.is_some(),
        "measured over the whole interval"
    );
    let points = accepted(&snapshot);
    println!(
        "{} readings of {kinds:?} -> {points} points, none rejected",
        snapshot.readings.len()
    );
    assert!(kinds.contains("homeostat.process.exits") && kinds.contains("homeostat.cpu.time"));
    assert!(points >= snapshot.readings.len());
}
