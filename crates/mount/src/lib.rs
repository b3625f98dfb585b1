//! mount: kernel feature probes, overlay mount plans and their executor, and the Docker `-init`
//! layer content (spec §2.2, §2.5, §3).
//!
//! CONTRACT (the CLI depends on these signatures; extend, don't change):
#![deny(unsafe_code)]

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("mount: {0}")]
    Todo(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the kernel and the backing filesystem offer, found by trying (never by version numbers).
#[derive(Debug, Clone)]
pub struct KernelFeatures {
    pub backing_fs: String,
    pub d_type: bool,
    /// `/sys/module/overlay/parameters/index` exists: pass `index=off` as Docker does.
    pub index_param: bool,
    /// The new mount API accepts `lowerdir+` (Linux 6.8+).
    pub lowerdir_plus: bool,
    pub page_size: usize,
}

impl KernelFeatures {
    /// Probes in a temp dir below `test_dir` (a real two-lower overlay mount, getdents d_type,
    /// fsopen/fsconfig lowerdir+). Errors name the remedy (`mkfs.xfs -n ftype=1` for d_type).
    pub fn probe(_test_dir: &Path) -> Result<KernelFeatures> {
        todo!()
    }
}

/// What to mount, paths relative to `home` (the overlay2 driver dir H), nearest lower first.
#[derive(Debug, Clone)]
pub struct OverlaySpec {
    pub home: PathBuf,
    /// `l/<LID>` or `<id>/diff` entries, relative to `home`.
    pub lowers: Vec<String>,
    /// `<id>/diff`, relative to `home`; `None` for a read-only mount.
    pub upper: Option<String>,
    /// `<id>/work`, relative to `home`.
    pub work: Option<String>,
    /// `<id>/merged`, relative to `home`.
    pub target: String,
}

/// A checked mount plan: plain data, unit-testable without root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountPlan {
    /// Docker's form: absolute `H/l/<LID>` lowerdir option string (fits in page_size - 1 bytes).
    Absolute { options: String, target: PathBuf },
    /// Docker's page-size fallback: options relative to `home`, mounted after chdir(home).
    Relative { home: PathBuf, options: String, target: String },
    /// New mount API: one `lowerdir+` fsconfig per lower, no option-length limit.
    LowerdirPlus { home: PathBuf, lowers: Vec<PathBuf>, upper: Option<PathBuf>, work: Option<PathBuf>, index_off: bool, target: PathBuf },
}

pub fn plan(_spec: &OverlaySpec, _features: &KernelFeatures) -> Result<MountPlan> {
    todo!()
}

pub fn execute(_plan: &MountPlan) -> Result<()> {
    todo!()
}

/// Lazy (`MNT_DETACH`) unmount.
pub fn unmount(_target: &Path) -> Result<()> {
    todo!()
}

/// Whether `path` is a mount point (from /proc/self/mountinfo).
pub fn is_mountpoint(_path: &Path) -> Result<bool> {
    todo!()
}

/// Populates a merged (RW overlay) root with Docker's init entries (spec §2.5).
pub fn populate_init_layer(_merged_root: &Path) -> Result<()> {
    todo!()
}
