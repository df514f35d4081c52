//! A cgroup made for one test in the v2 hierarchy the sensor watches, with whatever
//! directories above it were missing; everything it made is emptied and removed on drop.
//! Shared by the root crate's tests and the sensor's kernel tests.
#![allow(dead_code)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

/// A test's cgroup.
pub struct TestCgroup {
    /// Its directory.
    pub dir: PathBuf,
    /// Its path in the v2 hierarchy (`/kubepods.slice/…`), as the sensor reports it.
    pub path: String,
    /// Its v2 cgroup id (the directory's inode), as the kernel reports it.
    pub id: u64,
    /// The directories made, outermost first.
    made: Vec<PathBuf>,
}

impl TestCgroup {
    /// `homeostat-test-<name>-<pid>`, right below `root`.
    pub fn new(root: &Path, name: &str) -> Self {
        Self::at(
            root,
            &format!("/homeostat-test-{name}-{}", std::process::id()),
        )
    }

    /// The cgroup at `path` below `root`, made with its missing parents.
    pub fn at(root: &Path, path: &str) -> Self {
        let mut made = Vec::new();
        let mut dir = root.to_path_buf();
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            dir.push(segment);
            if !dir.exists() {
                std::fs::create_dir(&dir)
                    .unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
                made.push(dir.clone());
            }
        }
        let id = std::fs::metadata(&dir).expect("the cgroup").ino();
        TestCgroup {
            dir,
            path: path.to_owned(),
            id,
            made,
        }
    }

    /// The v2 hierarchy's mount point, from this process's mountinfo.
    pub fn v2_root() -> PathBuf {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        homeostat_sensor::cgroup::cgroup2_mount(&mountinfo).expect("a cgroup2 mount")
    }

    /// Runs `script` with sh, moved into this cgroup before anything else.
    pub fn run(&self, script: &str) -> ExitStatus {
        self.run_pid(script).1
    }

    /// [`run`](Self::run), with the pid sh ran as.
    pub fn run_pid(&self, script: &str) -> (u32, ExitStatus) {
        let procs = self.dir.join("cgroup.procs");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("echo $$ > {} && {script}", procs.display()))
            .stdout(Stdio::null())
            .spawn()
            .expect("sh");
        (child.id(), child.wait().expect("wait"))
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("cgroup.kill"), "1");
        for dir in self.made.iter().rev() {
            let removed = (0..50).any(|_| {
                let gone = std::fs::remove_dir(dir).is_ok();
                if !gone {
                    std::thread::sleep(Duration::from_millis(20));
                }
                gone
            });
            if !removed {
                eprintln!("could not remove {}", dir.display());
            }
        }
    }
}
