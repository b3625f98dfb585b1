//! store: the Docker 20.10 overlay2 data root (format.md §2–§4, §8, §10): layerdb, overlay2 layer dirs and
//! `l/` links, imagedb, repositories.json, layerdb mounts entries and container records.
//!
//! Every file is written with the mode and the trailing-newline rule Docker uses; metadata that
//! Docker writes atomically is written atomically (temp file, fsync, rename, fsync of the dir); a
//! layer becomes visible only by the rename of its layerdb write-set (the commit point). The crate
//! never mounts and never parses tar: a layer's content arrives through a callback.
#![deny(unsafe_code)]

mod below;
mod containers;
mod daemon;
mod distribution;
mod fsck;
mod fsutil;
mod gc;
mod ids;
mod images;
mod layers;
mod moves;
mod overlay;
mod references;
mod survey;
mod usage;

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use fsutil::nofollow_flag;

pub use daemon::{live_dockerd, LiveDaemon};
pub use distribution::V2Metadata;
pub use fsck::{CheckCounts, CheckReport, Finding, Severity};
pub use fsutil::{open_regular, write_atomic};
pub use gc::{GarbageItem, GarbageKind, GcPlan, LeftAlone};
pub use ids::{chain_id, chain_ids, now_rfc3339_nano, random_id, rfc3339_nano, sha256_digest};
pub use layers::{LayerParent, PendingLayer, MAX_LAYER_DEPTH};
pub use moves::MoveRecord;
pub use overlay::MAX_LOWERS;
pub use references::{split_domain, Named, Reference};
pub use survey::{survey, RootSurvey};
pub use usage::{ContainerAttachments, ContainerMountPoint, LocalVolume};

/// Errors of the store, each naming the file, layer, image or reference involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a data root: {reason}")]
    NotADataRoot { path: PathBuf, reason: &'static str },
    #[error("{path} is a data root of Docker's {driver} storage driver; ovl reads and writes only overlay2")]
    OtherDriver { path: PathBuf, driver: String },
    #[error("invalid {what} {value:?}")]
    InvalidId { what: &'static str, value: String },
    #[error("layer {chain_id} is not in the data root")]
    MissingLayer { chain_id: String },
    #[error("applying layer on top of {parent}")]
    Apply { parent: String, source: ApplyError },
    #[error("registering a layer on top of {parent}: {step}")]
    Register {
        parent: String,
        step: &'static str,
        source: Box<Error>,
    },
    #[error("max depth exceeded on top of {parent}: {depth} layers")]
    MaxDepth { parent: String, depth: usize },
    #[error("failed to verify image {image_id}: its config hashes to {actual}")]
    ImageVerify { image_id: String, actual: String },
    #[error("no such image: {image_id}")]
    NoSuchImage { image_id: String },
    #[error("invalid image config {image_id}")]
    InvalidImage {
        image_id: String,
        source: serde_json::Error,
    },
    #[error("invalid reference format {reference:?}: {reason}")]
    InvalidReference {
        reference: String,
        reason: &'static str,
    },
    #[error("invalid {path}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("layer dir {path} has a file system mounted inside it")]
    Mounted { path: PathBuf },
    #[error("random bytes")]
    Random { source: std::io::Error },
    /// Where the format has a directory (or a file), something else: a symlink, relative or
    /// absolute, a file, a device. ovl never follows it, never creates, removes or mounts
    /// through it; `ovl fsck` reports it as corrupt.
    #[error("refusing {path}: the data root's format has a {expected} there, not {found}")]
    NotReal {
        path: PathBuf,
        expected: &'static str,
        found: &'static str,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Whether this is a write that found the filesystem full (no space or no inodes left,
    /// `ENOSPC`) or the quota used up (`EDQUOT`).
    pub fn is_out_of_space(&self) -> bool {
        let Error::Io { source, .. } = self else {
            return false;
        };
        let raw = source.raw_os_error();
        raw == Some(rustix::io::Errno::NOSPC.raw_os_error())
            || raw == Some(rustix::io::Errno::DQUOT.raw_os_error())
    }
}

/// Error type a layer-apply callback may return.
pub type ApplyError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An opened data root (`ROOT`). Opening for writing creates the layout with format.md §2 modes.
#[derive(Debug, Clone)]
pub struct DataRoot {
    root: PathBuf,
}

/// An exclusive lock on the data root held by one ovl process (flock on `ROOT/ovl.lock`).
#[derive(Debug)]
pub struct RootLock {
    _file: std::fs::File,
}

/// A registered read-only layer (one `layerdb/sha256/<chain>` entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// `sha256:<hex>`.
    pub chain_id: String,
    /// `sha256:<hex>`.
    pub diff_id: String,
    /// Parent ChainID, `sha256:<hex>`.
    pub parent: Option<String>,
    /// The overlay2 directory name.
    pub cache_id: String,
    pub size: i64,
}

/// What an apply callback reports after filling the new layer's `diff/`.
#[derive(Debug, Clone)]
pub struct AppliedLayer {
    pub diff_id: String,
    pub size: i64,
}

/// The `layerdb/mounts/<container-id>` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountsEntry {
    pub container_id: String,
    pub mount_id: String,
    pub init_id: Option<String>,
    /// The image's top ChainID, `sha256:<hex>`.
    pub parent: Option<String>,
}

/// Parsed subset of an image config (the bytes stay authoritative).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, Default)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub author: Option<String>,
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    pub rootfs: RootFs,
    #[serde(default)]
    pub history: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize, Default)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// What a container record (containers/<id>/config.v2.json + hostconfig.json) holds for ovl.
#[derive(Debug, Clone)]
pub struct ContainerRecord {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub image_id: String,
    /// RFC3339Nano.
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    /// The image's config (`Env`, `Cmd`, `WorkingDir`, ...) merged with the run options, as `Config`.
    pub config: serde_json::Value,
    pub running: bool,
    /// What Docker recorded of the container's runs (all zero for a container that never ran).
    pub state: ContainerState,
}

/// The run state Docker keeps in config.v2.json `State` (moby `container.State`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerState {
    pub paused: bool,
    pub restarting: bool,
    pub removal_in_progress: bool,
    pub dead: bool,
    pub exit_code: i64,
    /// RFC3339Nano; Go's zero time `0001-01-01T00:00:00Z` when it never started.
    pub started_at: String,
    /// RFC3339Nano; Go's zero time when it never stopped.
    pub finished_at: String,
}

/// The strings of a JSON array (`Env`, `Cmd`, `Args`, ...); anything else, or a missing value,
/// gives none, and non-string items are skipped.
pub fn json_strings(value: Option<&serde_json::Value>) -> Vec<String> {
    value
        .and_then(serde_json::Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Go json.Marshal-compatible encoding (compact, HTML escapes of <, >, &, U+2028, U+2029).
pub fn go_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    gocompat::json::to_vec(value).map_err(|source| Error::Json {
        path: PathBuf::from("<value>"),
        source,
    })
}

/// Directories of the layout with their format.md §2 modes, relative to ROOT, parents first.
const LAYOUT: [(&str, u32); 14] = [
    ("overlay2", 0o710),
    ("overlay2/l", 0o700),
    ("image", 0o700),
    ("image/overlay2", 0o700),
    ("image/overlay2/imagedb", 0o700),
    ("image/overlay2/imagedb/content", 0o700),
    ("image/overlay2/imagedb/content/sha256", 0o700),
    ("image/overlay2/imagedb/metadata", 0o700),
    ("image/overlay2/imagedb/metadata/sha256", 0o700),
    ("image/overlay2/layerdb", 0o700),
    ("image/overlay2/layerdb/sha256", 0o755),
    ("image/overlay2/layerdb/mounts", 0o755),
    ("image/overlay2/layerdb/tmp", 0o755),
    ("containers", 0o710),
];

/// Checks that every directory of the layout that exists below `root` is a real directory (not a
/// symlink, relative or absolute, nor a file), parents first, so that a path of the layout is
/// verified component by component from the data root down. The root itself is what the user
/// named and may be a symlink (`/var/lib/docker -> /data/docker`). Missing directories are fine.
pub fn check_layout(root: &Path) -> Result<()> {
    match layout_damage(root).into_iter().next() {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// Every layout directory below `root` that is not a real directory, as [`check_layout`] sees it.
pub(crate) fn layout_damage(root: &Path) -> Vec<Error> {
    LAYOUT
        .iter()
        .map(|(dir, _)| *dir)
        .chain(["tmp"])
        .filter_map(|dir| fsutil::real_dir(&root.join(dir)).err())
        .collect()
}

impl DataRoot {
    /// Opens an existing data root read-only (nothing is created). A layout directory that is
    /// not a real directory is refused, naming it (see [`check_layout`]); [`DataRoot::open_damaged`]
    /// opens such a root for `fsck`.
    pub fn open(root: &Path) -> Result<DataRoot> {
        let data_root = DataRoot::open_damaged(root)?;
        check_layout(root)?;
        Ok(data_root)
    }

    /// Opens an existing data root without checking its layout, for [`DataRoot::check`], which
    /// reports a damaged layout as corrupt and reads nothing below it.
    pub fn open_damaged(root: &Path) -> Result<DataRoot> {
        let found = survey::survey(root);
        if !root.join("overlay2").is_dir() && !root.join("image/overlay2").is_dir() {
            if let Some(driver) = found.other_drivers.first() {
                return Err(Error::OtherDriver {
                    path: root.to_path_buf(),
                    driver: driver.clone(),
                });
            }
            let reason = match std::fs::read_dir(root) {
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => "it does not exist",
                Err(err) if err.kind() == std::io::ErrorKind::NotADirectory => {
                    "it is not a directory"
                }
                Err(_) => "it cannot be listed",
                Ok(entries) => {
                    if entries.count() == 0 {
                        "it is empty"
                    } else {
                        "it has neither overlay2/ nor image/overlay2/"
                    }
                }
            };
            return Err(Error::NotADataRoot {
                path: root.to_path_buf(),
                reason,
            });
        }
        survey::report(root, &found);
        Ok(DataRoot {
            root: root.to_path_buf(),
        })
    }

    /// Opens for writing, creating the format.md §2 layout with its modes where missing.
    pub fn open_or_create(root: &Path) -> Result<DataRoot> {
        let found = survey::survey(root);
        if !root.join("image/overlay2").is_dir() {
            if let Some(driver) = found.other_drivers.first() {
                return Err(Error::OtherDriver {
                    path: root.to_path_buf(),
                    driver: driver.clone(),
                });
            }
        }
        survey::report(root, &found);
        check_layout(root)?;
        fsutil::create_dir_all_mode(root, 0o710)?;
        for (dir, mode) in LAYOUT {
            fsutil::create_dir_mode(&root.join(dir), mode)?;
        }
        fsutil::create_dir_mode(&root.join("tmp"), 0o700)?;
        let data_root = DataRoot {
            root: root.to_path_buf(),
        };
        let repositories = data_root.repositories_path();
        if !repositories.exists() {
            write_atomic(&repositories, br#"{"Repositories":{}}"#, 0o600)?;
        }
        Ok(data_root)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `ROOT/overlay2` (the driver home, H).
    pub fn overlay_home(&self) -> PathBuf {
        self.root.join("overlay2")
    }

    /// Scratch space inside the data root (`ROOT/tmp`), for archive staging.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// [`DataRoot::tmp_dir`], made (0700) when missing; an entry there that is not a real
    /// directory is refused.
    pub fn create_tmp_dir(&self) -> Result<PathBuf> {
        let dir = self.tmp_dir();
        fsutil::create_dir_all_mode(&dir, 0o700)?;
        Ok(dir)
    }

    /// Takes the data root's exclusive lock, waiting for another ovl process to release it.
    pub fn lock(&self) -> Result<RootLock> {
        self.lock_reporting_wait().map(|(lock, _)| lock)
    }

    /// [`DataRoot::lock`], and whether another process held the lock so that this one waited.
    pub fn lock_reporting_wait(&self) -> Result<(RootLock, bool)> {
        let path = self.root.join("ovl.lock");
        // `O_NOFOLLOW`: a planted `ovl.lock` symlink would make the lock create a file outside.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .custom_flags(nofollow_flag())
            .open(&path)
            .map_err(|source| Error::Io {
                op: "opening lock file",
                path: path.clone(),
                source,
            })?;
        let waited =
            match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => false,
                Err(rustix::io::Errno::WOULDBLOCK) => {
                    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).map_err(
                        |errno| Error::Io {
                            op: "locking",
                            path: path.clone(),
                            source: errno.into(),
                        },
                    )?;
                    true
                }
                Err(errno) => {
                    return Err(Error::Io {
                        op: "locking",
                        path,
                        source: errno.into(),
                    })
                }
            };
        Ok((RootLock { _file: file }, waited))
    }

    pub(crate) fn image_dir(&self) -> PathBuf {
        self.root.join("image/overlay2")
    }
}
