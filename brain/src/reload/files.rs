//! Policy files, read again every few seconds and compared by content.
//!
//! Polling rather than file-system notifications: Kubernetes updates a ConfigMap volume by
//! writing a new directory and swapping the `..data` symlink to it, so a watch on the file
//! the brain was given never fires, and a watch on the directory sees only renames of
//! hidden entries. Reading a few small files every few seconds costs next to nothing, works
//! on every file system, and the kubelet itself takes up to a minute to sync a ConfigMap.

use std::path::PathBuf;
use std::time::Duration;

use homeostat_policies::PolicySet;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::Reloader;
use crate::runtime::BrainError;

/// The files `paths` name: a directory stands for its `*.yaml` and `*.yml` files, in name
/// order, so the first-match rule does not depend on the file system's listing order.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, BrainError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|source| BrainError::PolicyPath {
                    path: path.clone(),
                    source,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// What the policy files hold now: a SHA-256 of every file's name and content (or of why
/// it cannot be read), so any edit, new file or removal changes it.
pub fn fingerprint(paths: &[PathBuf]) -> String {
    let mut hash = Sha256::new();
    match expand(paths) {
        Ok(files) => {
            for file in files {
                hash.update(file.as_os_str().as_encoded_bytes());
                match std::fs::read(&file) {
                    Ok(bytes) => {
                        hash.update((bytes.len() as u64).to_le_bytes());
                        hash.update(bytes);
                    }
                    Err(e) => hash.update(format!("\0unreadable: {e}")),
                }
            }
        }
        Err(e) => hash.update(format!("\0{e}")),
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Every `every`, until `shutdown` turns true: when the files' content differs from
/// `seen` (the fingerprint of what is loaded), loads them and hands the result to
/// `reloader`. Each content is judged once, so a broken file is reported once, not every
/// poll.
pub async fn poll(
    paths: Vec<PathBuf>,
    every: Duration,
    mut seen: String,
    reloader: Reloader,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let (paths_now, last) = (paths.clone(), seen.clone());
        let read = tokio::task::spawn_blocking(move || {
            let now = fingerprint(&paths_now);
            (now != last).then(|| {
                let loaded = expand(&paths_now)
                    .and_then(|files| PolicySet::load_files(&files).map_err(BrainError::from));
                (now, loaded)
            })
        })
        .await;
        let Ok(Some((now, loaded))) = read else {
            continue;
        };
        seen = now;
        match loaded {
            Ok(set) => reloader.apply_files(set).await,
            // The loader's own message already says they were refused.
            Err(BrainError::Policies(e)) => reloader.reject_files(&e.to_string()).await,
            Err(e) => reloader.reject_files(&e.to_string()).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn policy(cooldown: &str) -> String {
        format!(
            "apiVersion: homeostat.dev/v1alpha1\nkind: Policy\nmetadata:\n  name: web\n\
             spec:\n  mode: enforce\n  actions: [restart-pods]\n  cooldown: {cooldown}\n"
        )
    }

    /// Writes a ConfigMap volume's next version the way the kubelet does: a new timestamped
    /// directory, a `..data_tmp` symlink to it renamed over `..data`.
    fn kubelet_write(volume: &std::path::Path, version: &str, cooldown: &str) {
        let dir = volume.join(format!("..{version}"));
        std::fs::create_dir(&dir).expect("version dir");
        std::fs::write(dir.join("default.yaml"), policy(cooldown)).expect("policy");
        let tmp = volume.join("..data_tmp");
        symlink(format!("..{version}"), &tmp).expect("..data_tmp");
        std::fs::rename(&tmp, volume.join("..data")).expect("swap ..data");
    }

    #[test]
    fn a_configmap_volume_update_changes_the_fingerprint_and_the_policies() {
        let volume = tempfile::tempdir().expect("tempdir");
        kubelet_write(volume.path(), "2026_11_25_10_00_00.1", "5m");
        symlink("..data/default.yaml", volume.path().join("default.yaml")).expect("key link");
        let paths = vec![volume.path().to_path_buf()];
        let cooldown = || {
            let files = expand(&paths).expect("listed");
            let set = PolicySet::load_files(&files).expect("loads");
            set.get("web").map(|p| p.spec.cooldown.0.as_secs())
        };
        let before = fingerprint(&paths);
        assert_eq!(
            fingerprint(&paths),
            before,
            "unchanged content, same fingerprint"
        );
        assert_eq!(cooldown(), Some(300));

        kubelet_write(volume.path(), "2026_11_25_10_01_00.2", "7m");
        assert_ne!(fingerprint(&paths), before);
        assert_eq!(cooldown(), Some(420));
    }
}
