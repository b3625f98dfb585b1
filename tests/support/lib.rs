//! Support library of the end-to-end tests: prerequisites, the `ovl` binary, a private dockerd
//! 20.10 with its own data root and bridge, the conformance image set, and readers of the layerdb
//! that work on Docker's and ovl's data roots alike (they share the format, format.md §3).
//!
//! Everything that asserts a filesystem result goes through `treedump`; the expected side always
//! comes from Docker or from values written down here, never from ovl's output.
//!
//! This file holds the prerequisites and scratch directories; the rest is one module each: `ovl`
//! (the binary under test), `dockerd` (the private daemon), `images` (the conformance images and
//! generated layers), `layerdb` (readers of a data root), `merged` (tree dumps and comparisons),
//! `archives` (docker-archives and configs made in the tests), `gnu_time` (peak RSS) and
//! `tar_builder` (the one tar writer of the tests, [`TarBuilder`]).
#![deny(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use sha2::{Digest, Sha256};

pub use treedump::{compare, dump, format, DumpOptions, Record};

mod archives;
mod dockerd;
mod gnu_time;
mod images;
mod layerdb;
mod merged;
mod ovl;
mod registry;
pub mod tar_builder;

pub use archives::*;
pub use dockerd::*;
pub use gnu_time::*;
pub use images::*;
pub use layerdb::*;
pub use merged::*;
pub use ovl::*;
pub use registry::*;
pub use tar_builder::{Header, TarBuilder};

/// The Debian `docker.io` 20.10 daemon.
pub const DOCKERD: &str = "/usr/sbin/dockerd";
/// The 20.10 client from the same package (`/usr/local/bin/docker` is a newer client).
pub const DOCKER: &str = "/usr/bin/docker";
/// skopeo 1.9.3 from Debian.
pub const SKOPEO: &str = "/usr/bin/skopeo";
/// The static busybox of Debian's `busybox-static`, copied into the base image.
pub const BUSYBOX: &str = "/bin/busybox";
/// The tag of the base image every conformance Dockerfile starts from.
pub const BASE_IMAGE: &str = "ovl-base:1";
/// How long a private dockerd may take to answer `docker version`.
const DOCKERD_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long dockerd may take to exit after SIGTERM before it is killed.
const DOCKERD_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Paths of a container root that Docker mounts over or bind-mounts from outside the image
/// (`/dev`, `/proc`, `/sys`, the files of `containers/<id>/`) or that the init layer creates
/// (`/.dockerenv`, `/etc/mtab`): both sides of a merged-view comparison leave them out.
pub const MERGED_EXCLUDES: [&str; 8] = [
    "dev",
    "proc",
    "sys",
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
    "etc/mtab",
    ".dockerenv",
];

/// The `security.capability` value of cap_net_bind_service+ep in VFS_CAP_REVISION_2 layout:
/// magic_etc = 0x02000001 (revision 2, effective flag) little-endian, permitted[0] = 1 << 10
/// (CAP_NET_BIND_SERVICE = 10), all other words 0.
pub const CAP_NET_BIND_SERVICE_EP: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00,
];

// ------------------------------------------------------------------------------------------------
// Prerequisites

/// True when running as root; else skips (or, under CI=true, fails) `test_name`.
pub fn require_root(test_name: &str) -> bool {
    if is_root() {
        true
    } else {
        missing(test_name, "not running as root")
    }
}

/// True when running as root with dockerd 20.10, its client and the static busybox installed.
pub fn require_dockerd(test_name: &str) -> bool {
    if !require_root(test_name) {
        return false;
    }
    for (path, package) in [
        (DOCKERD, "docker.io"),
        (DOCKER, "docker.io"),
        (BUSYBOX, "busybox-static"),
    ] {
        if !Path::new(path).exists() {
            return missing(test_name, &format!("{path} missing (install {package})"));
        }
    }
    true
}

/// True when /usr/bin/skopeo is installed.
pub fn require_skopeo(test_name: &str) -> bool {
    if Path::new(SKOPEO).exists() {
        true
    } else {
        missing(test_name, "/usr/bin/skopeo missing (install skopeo)")
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether the program at `path` (from the Debian package `package`) is installed; a missing one
/// is a missing prerequisite.
pub fn require_program(test_name: &str, path: &str, package: &str) -> bool {
    Path::new(path).exists()
        || missing(
            test_name,
            &format!("{path} is missing (Debian package {package})"),
        )
}

/// Reports a missing prerequisite: a panic under CI=true, else a SKIP line; returns false.
fn missing(test_name: &str, reason: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test_name}: prerequisite missing under CI=true: {reason}");
    }
    eprintln!("SKIP {test_name}: {reason}");
    false
}

// ------------------------------------------------------------------------------------------------
// Scratch directories

static SCRATCH_COUNTER: AtomicUsize = AtomicUsize::new(0);
/// How many daemons this process has started; names the bridge of the next one.
static DOCKERD_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh, not yet created path `/var/tmp/ovl-tests-<pid>-<n>` (the same filesystem as /tmp
/// here, and one that supports overlay upper dirs).
pub fn scratch_path() -> PathBuf {
    let n = SCRATCH_COUNTER.fetch_add(1, Ordering::SeqCst);
    PathBuf::from(format!("/var/tmp/ovl-tests-{}-{n}", std::process::id()))
}

/// A scratch directory that is unmounted below and removed when dropped.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// Creates a fresh scratch directory (mode 0755, so that other users can traverse it).
    pub fn new() -> Scratch {
        let path = scratch_path();
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
        Scratch { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path/name`.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }

    /// Writes the base image's rootfs tar ([`base_rootfs_tar`]) to `path/name`; returns its path.
    pub fn write_base_tar(&self, name: &str) -> PathBuf {
        let path = self.join(name);
        fs::write(&path, base_rootfs_tar())
            .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}

impl Scratch {
    /// A data root `path/dir` holding `base:1`, imported from the base image's rootfs tar
    /// (written to `path/base.tar`).
    pub fn base_root(&self, dir: &str) -> Ovl {
        let ovl = Ovl::new(self.join(dir));
        let tarball = self.write_base_tar("base.tar");
        ovl.import(&tarball, "base:1");
        ovl
    }
}

/// The start of a test that needs root: `None` when it skips for lack of root ([`require_root`]),
/// else a fresh scratch directory.
pub fn root_scratch(test_name: &str) -> Option<Scratch> {
    if !require_root(test_name) {
        return None;
    }
    Some(Scratch::new())
}

/// [`root_scratch`] with an [`Ovl`] on the data root `dir` inside the scratch directory.
pub fn root_scratch_ovl(test_name: &str, dir: &str) -> Option<(Scratch, Ovl)> {
    let work = root_scratch(test_name)?;
    let ovl = Ovl::new(work.join(dir));
    Some((work, ovl))
}

/// [`root_scratch`] with the data root `dir` holding `base:1` ([`Scratch::base_root`]).
pub fn root_scratch_base(test_name: &str, dir: &str) -> Option<(Scratch, Ovl)> {
    let work = root_scratch(test_name)?;
    let ovl = work.base_root(dir);
    Some((work, ovl))
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        unmount_below(&self.path);
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Visits every entry below `dir`, depth first, without following symlinks (an unreadable
/// directory is passed over); `visit` gets the entry's path and says whether to descend into it.
pub fn walk_below(dir: &Path, mut visit: impl FnMut(&Path, &fs::DirEntry) -> bool) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = fs::read_dir(&current) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if visit(&path, &entry) {
                stack.push(path);
            }
        }
    }
}

/// Detaches every mount at or below `dir`, deepest first, as listed in /proc/self/mountinfo.
pub fn unmount_below(dir: &Path) {
    let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut mount_points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(OsStr::from_bytes(&unescape_mountinfo(field))))
        .filter(|mount_point| mount_point.starts_with(dir))
        .collect();
    mount_points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    mount_points.dedup();
    for mount_point in mount_points {
        // A mount point can be stacked several times; detach until it is gone or fails.
        for _ in 0..8 {
            if nix::mount::umount2(&mount_point, nix::mount::MntFlags::MNT_DETACH).is_err() {
                break;
            }
        }
    }
}

/// Undoes the octal escapes (`\040` for a space) of a mountinfo field.
fn unescape_mountinfo(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value =
                (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}
