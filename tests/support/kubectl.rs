//! A real kubectl (installed by `scripts/install-tools` into `.tools/bin`) against a
//! simulated API server.

use std::process::Command;

use homeostat_simulations::apiserver::ApiServerHandle;

/// Runs kubectl with `args` against `server`, with a kubeconfig and discovery cache of its
/// own, and returns what it printed; fails the test if it is missing or fails. Blocks, so
/// the caller's runtime needs another worker to serve the request.
pub fn run(server: &ApiServerHandle, args: &[&str]) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let kubectl = root.join(".tools").join("bin").join("kubectl");
    assert!(
        kubectl.exists(),
        "{} is missing: run scripts/install-tools",
        kubectl.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    server.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let out = tokio::task::block_in_place(|| {
        Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(args)
            .output()
            .expect("kubectl runs")
    });
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
