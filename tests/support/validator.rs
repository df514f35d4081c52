//! `kubernetes-validate`, the offline manifest validator `scripts/install-tools` puts in
//! `.tools/bin`, run the way the manifest tests run it: strict, against one Kubernetes version.
//! When it is missing the tests fail (they never skip) and say how to install it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde::Deserialize;
use serde_json::Value;

/// The API level `k8s-openapi` is built for in this workspace.
pub const KUBERNETES_VERSION: &str = "1.33.0";

/// The repository's root, where `.tools/` is.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The validator's path; fails the test with how to install it when it is missing.
pub fn validator() -> PathBuf {
    let path = repo_root()
        .join(".tools")
        .join("bin")
        .join("kubernetes-validate");
    assert!(
        path.exists(),
        "{} is missing: run `scripts/install-tools` from the repository root \
         (installs kubernetes-validate, kubectl and helm into .tools/)",
        path.display()
    );
    path
}

/// `kubernetes-validate --strict -k KUBERNETES_VERSION FILES`.
pub fn validate(files: &[PathBuf]) -> Output {
    Command::new(validator())
        .arg("--strict")
        .arg("-k")
        .arg(KUBERNETES_VERSION)
        .args(files)
        .output()
        .expect("running kubernetes-validate")
}

/// Exit status, stdout and stderr, for failure messages.
pub fn describe(out: &Output) -> String {
    format!(
        "exit status: {}\n--- stdout ---\n{}--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Fails unless the validator passed `file` with a resource reported as validated and no
/// error or warning: a run that validated nothing does not count.
pub fn assert_passed(files: &[PathBuf], out: &Output) {
    let report = describe(out);
    assert!(
        out.status.success(),
        "kubernetes-validate rejected:\n{report}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for file in files {
        let shown = file.display().to_string();
        assert!(
            stdout
                .lines()
                .any(|l| l.contains(&shown) && l.contains(" passed for resource ")),
            "no resource of {shown} was reported as validated:\n{report}"
        );
    }
    for line in stdout
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
    {
        assert!(
            !line.starts_with("ERROR") && !line.starts_with("WARN"),
            "validator complained: {line}\n{report}"
        );
    }
}

/// All YAML documents of one file, as JSON values (empty documents dropped).
pub fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    yaml_serde::Deserializer::from_str(&text)
        .map(|doc| {
            Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
        })
        .filter(|v| !v.is_null())
        .collect()
}
