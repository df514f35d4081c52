//! Stopping a child process as Kubernetes stops a pod: SIGTERM, then a bounded wait.

use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// Sends SIGTERM to `child` and waits up to 15 s for it to exit; fails the test naming `what`
/// and showing `output()` if it does not.
pub async fn terminate(child: &mut Child, what: &str, output: impl Fn() -> String) -> ExitStatus {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not stop on SIGTERM:\n{}",
            output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
