//! cgroup ids → paths → owners: which pod and container, or which systemd unit, a kernel
//! count belongs to.
//!
//! The kernel keys every map by the v2 cgroup id, which is the inode number of the cgroup's
//! directory in the v2 hierarchy. That hierarchy is at `/sys/fs/cgroup` on pure-v2 nodes
//! (most Kubernetes nodes) and at `/sys/fs/cgroup/unified` on hybrid ones; mountinfo says which.

use std::collections::HashMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::SensorError;

/// The mount point of the cgroup v2 hierarchy in a `/proc/self/mountinfo` text, preferring
/// `/sys/fs/cgroup`, then `/sys/fs/cgroup/unified`, then any other.
pub fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    let mounts: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| {
            // "36 35 0:30 / /sys/fs/cgroup rw,... shared:9 - cgroup2 cgroup2 rw,..."
            let (left, right) = line.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            let mount_point = left.split_whitespace().nth(4)?;
            (fstype == "cgroup2").then(|| PathBuf::from(unescape_mountinfo(mount_point)))
        })
        .collect();
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .iter()
        .find_map(|p| mounts.iter().find(|m| m.as_path() == Path::new(p)).cloned())
        .or_else(|| mounts.into_iter().next())
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Who a cgroup belongs to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Owner {
    /// A Kubernetes pod, and the container within it when the cgroup is a container's.
    Pod {
        /// The pod's UID, with dashes (`1b4e28ba-2fa1-11d2-883f-0016d3cca427`).
        uid: String,
        /// The QoS class from the path: `guaranteed`, `burstable` or `besteffort`.
        qos: &'static str,
        /// The container runtime's id of the container, if the cgroup is below the pod's.
        container_id: Option<String>,
    },
    /// A systemd unit (`sshd.service`, `session-3.scope`).
    Unit(String),
    /// Anything else: the path in the v2 hierarchy (`/` for the root).
    Path(String),
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Pod {
                uid,
                container_id: Some(c),
                ..
            } => write!(f, "pod {uid} container {}", &c[..c.len().min(12)]),
            Owner::Pod { uid, .. } => write!(f, "pod {uid}"),
            Owner::Unit(u) => f.write_str(u),
            Owner::Path(p) => f.write_str(p),
        }
    }
}

/// A pod UID as it appears in a cgroup name, normalised to dashes; `None` if it is not one
/// (36 characters of hex and dashes, or 32 hex digits for a static pod's config hash).
fn pod_uid(raw: &str) -> Option<String> {
    let uid = raw.replace('_', "-");
    let hex = |c: char| c.is_ascii_hexdigit();
    let ok = match uid.len() {
        36 => uid.chars().all(|c| hex(c) || c == '-') && uid.matches('-').count() == 4,
        32 => uid.chars().all(hex),
        _ => false,
    };
    ok.then_some(uid)
}

/// The pod UID of a pod-level cgroup name: `kubepods-burstable-pod<uid>.slice` (systemd
/// driver, any prefix such as `kubelet-kubepods-…`) or `pod<uid>` (cgroupfs driver).
fn pod_segment(segment: &str) -> Option<String> {
    if let Some(stem) = segment.strip_suffix(".slice") {
        let (prefix, raw) = stem.rsplit_once("-pod")?;
        return prefix.contains("kubepods").then(|| pod_uid(raw)).flatten();
    }
    pod_uid(segment.strip_prefix("pod")?)
}

/// The container id of a container-level cgroup name: `cri-containerd-<id>.scope`,
/// `crio-<id>.scope`, `docker-<id>.scope`, or a bare `<id>` (cgroupfs driver). CRI-O's
/// `crio-conmon-<id>.scope` is the runtime's monitor, not the container.
fn container_segment(segment: &str) -> Option<String> {
    let stem = segment.strip_suffix(".scope").unwrap_or(segment);
    if stem.starts_with("crio-conmon-") {
        return None;
    }
    let id = ["cri-containerd-", "crio-", "docker-", "cri-dockerd-"]
        .iter()
        .find_map(|p| stem.strip_prefix(p))
        .unwrap_or(stem);
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric())).then(|| id.to_owned())
}

/// Who owns the cgroup at `path` (relative to the v2 root, starting with `/`).
pub fn owner_of(path: &str) -> Owner {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let in_kubepods = |upto: usize| segments[..upto].iter().any(|s| s.contains("kubepods"));
    for (i, segment) in segments.iter().enumerate() {
        let Some(uid) = pod_segment(segment) else {
            continue;
        };
        if !(segment.contains("kubepods") || in_kubepods(i)) {
            continue;
        }
        let qos = if segments[..=i].iter().any(|s| s.contains("besteffort")) {
            "besteffort"
        } else if segments[..=i].iter().any(|s| s.contains("burstable")) {
            "burstable"
        } else {
            "guaranteed"
        };
        let container_id = segments.get(i + 1).and_then(|s| container_segment(s));
        return Owner::Pod {
            uid,
            qos,
            container_id,
        };
    }
    if let Some(unit) = segments
        .iter()
        .rev()
        .find(|s| s.ends_with(".service") || s.ends_with(".scope"))
    {
        return Owner::Unit((*unit).to_owned());
    }
    Owner::Path(if path.is_empty() {
        "/".into()
    } else {
        path.to_owned()
    })
}

/// The v2 hierarchy's cgroups by id, rescanned when an unknown id turns up.
#[derive(Debug)]
pub struct CgroupIndex {
    root: PathBuf,
    paths: HashMap<u64, String>,
}

impl CgroupIndex {
    /// Finds the v2 hierarchy from `/proc/self/mountinfo` and scans it.
    pub fn discover() -> Result<Self, SensorError> {
        let path = PathBuf::from("/proc/self/mountinfo");
        let text =
            std::fs::read_to_string(&path).map_err(|source| SensorError::Io { path, source })?;
        let root = cgroup2_mount(&text).ok_or(SensorError::NoCgroup2)?;
        Ok(Self::at(root))
    }

    /// An index of the hierarchy mounted at `root`.
    pub fn at(root: PathBuf) -> Self {
        let mut index = CgroupIndex {
            root,
            paths: HashMap::new(),
        };
        index.rescan();
        index
    }

    /// Where the v2 hierarchy is mounted.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Walks the hierarchy again; cgroups come and go with pods.
    pub fn rescan(&mut self) {
        self.paths.clear();
        let mut stack = vec![(self.root.clone(), String::from("/"))];
        while let Some((dir, rel)) = stack.pop() {
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            self.paths.insert(meta.ino(), rel.clone());
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let child = if rel == "/" {
                        format!("/{name}")
                    } else {
                        format!("{rel}/{name}")
                    };
                    stack.push((entry.path(), child));
                }
            }
        }
    }

    /// The path of a cgroup id, if it was there at the last scan.
    pub fn path(&self, id: u64) -> Option<&str> {
        self.paths.get(&id).map(String::as_str)
    }

    /// Resolves ids, rescanning once if any is unknown; unknown ids left are gone cgroups.
    pub fn resolve_all(
        &mut self,
        ids: impl IntoIterator<Item = u64>,
    ) -> HashMap<u64, Option<String>> {
        let ids: Vec<u64> = ids.into_iter().collect();
        if ids
            .iter()
            .any(|id| *id != 0 && !self.paths.contains_key(id))
        {
            self.rescan();
        }
        ids.into_iter()
            .map(|id| (id, self.paths.get(&id).cloned()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
    const CID: &str = "4e1f9b0d1a0b3c8f7e6d5c4b3a29180706f5e4d3c2b1a09f8e7d6c5b4a392817";

    fn pod(qos: &'static str, container: Option<&str>) -> Owner {
        Owner::Pod {
            uid: UID.into(),
            qos,
            container_id: container.map(str::to_owned),
        }
    }

    #[test]
    fn systemd_driver_paths() {
        let u = UID.replace('-', "_");
        let cases = [
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice/cri-containerd-{CID}.scope"
                ),
                pod("burstable", Some(CID)),
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{u}.slice/crio-{CID}.scope"
                ),
                pod("besteffort", Some(CID)),
            ),
            (
                format!("/kubepods.slice/kubepods-pod{u}.slice/cri-containerd-{CID}.scope"),
                pod("guaranteed", Some(CID)),
            ),
            (
                format!("/kubepods.slice/kubepods-pod{u}.slice/docker-{CID}.scope"),
                pod("guaranteed", Some(CID)),
            ),
            (
                format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice"),
                pod("burstable", None),
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice/crio-conmon-{CID}.scope"
                ),
                pod("burstable", None),
            ),
            // Nested cgroups inside a container (systemd in a pod, cgroup namespaces).
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{u}.slice/cri-containerd-{CID}.scope/init.scope"
                ),
                pod("burstable", Some(CID)),
            ),
            // kind and other kubelets with a cgroup root of their own.
            (
                format!(
                    "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{u}.slice/cri-containerd-{CID}.scope"
                ),
                pod("besteffort", Some(CID)),
            ),
        ];
        for (path, want) in cases {
            assert_eq!(owner_of(&path), want, "{path}");
        }
    }

    #[test]
    fn cgroupfs_driver_paths() {
        let cases = [
            (
                format!("/kubepods/burstable/pod{UID}/{CID}"),
                pod("burstable", Some(CID)),
            ),
            (
                format!("/kubepods/besteffort/pod{UID}/{CID}"),
                pod("besteffort", Some(CID)),
            ),
            (
                format!("/kubepods/pod{UID}/{CID}"),
                pod("guaranteed", Some(CID)),
            ),
            (format!("/kubepods/pod{UID}"), pod("guaranteed", None)),
            (
                format!("/kubepods/burstable/pod{UID}/crio-{CID}"),
                pod("burstable", Some(CID)),
            ),
            // Docker-in-docker and kind nodes nest kubepods below their own cgroup.
            (
                format!("/docker/{CID}/kubepods/burstable/pod{UID}/{CID}"),
                pod("burstable", Some(CID)),
            ),
        ];
        for (path, want) in cases {
            assert_eq!(owner_of(&path), want, "{path}");
        }
    }

    #[test]
    fn static_pods_have_hash_uids() {
        let hash = "6f3c2b1a09f8e7d6c5b4a39281706f5e";
        let owner = owner_of(&format!("/kubepods/burstable/pod{hash}/{CID}"));
        assert!(matches!(owner, Owner::Pod { uid, .. } if uid == hash));
    }

    #[test]
    fn non_pods_are_units_or_paths() {
        assert_eq!(
            owner_of("/system.slice/containerd.service"),
            Owner::Unit("containerd.service".into())
        );
        assert_eq!(
            owner_of("/system.slice/kubelet.service"),
            Owner::Unit("kubelet.service".into())
        );
        assert_eq!(
            owner_of("/user.slice/user-0.slice/session-3.scope"),
            Owner::Unit("session-3.scope".into())
        );
        assert_eq!(
            owner_of("/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service"),
            Owner::Unit("foo.service".into())
        );
        assert_eq!(owner_of("/"), Owner::Path("/".into()));
        assert_eq!(owner_of(""), Owner::Path("/".into()));
        assert_eq!(
            owner_of("/homeostat-test/exits"),
            Owner::Path("/homeostat-test/exits".into())
        );
        // A "pod" lookalike outside kubepods is not a pod.
        assert_eq!(
            owner_of(&format!("/machine/pod{UID}")),
            Owner::Path(format!("/machine/pod{UID}"))
        );
        // Not a UID.
        assert_eq!(
            owner_of("/kubepods/burstable/podcast"),
            Owner::Path("/kubepods/burstable/podcast".into())
        );
        assert_eq!(
            owner_of("/kubepods.slice"),
            Owner::Path("/kubepods.slice".into())
        );
    }

    #[test]
    fn finds_the_v2_mount_pure_and_hybrid() {
        let pure = "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        assert_eq!(cgroup2_mount(pure), Some(PathBuf::from("/sys/fs/cgroup")));
        let hybrid = "\
25 24 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:4 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:5 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:6 - cgroup cgroup rw,xattr,name=systemd
28 25 0:25 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:7 - cgroup cgroup rw,memory
";
        assert_eq!(
            cgroup2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let odd = "30 23 0:26 / /mnt/cg\\040two rw shared:4 - cgroup2 none rw\n";
        assert_eq!(cgroup2_mount(odd), Some(PathBuf::from("/mnt/cg two")));
        assert_eq!(
            cgroup2_mount("25 24 0:22 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"),
            None
        );
    }

    #[test]
    fn indexes_a_directory_tree_by_inode() {
        let dir = std::env::temp_dir().join(format!("hs-cg-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        let index = CgroupIndex::at(dir.clone());
        let ino = std::fs::metadata(dir.join("a/b")).unwrap().ino();
        assert_eq!(index.path(ino), Some("/a/b"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
