//! store: the Docker 20.10 overlay2 data root (spec §0–§2, §6, §8): layerdb, overlay2 layer dirs and
//! `l/` links, imagedb, repositories.json, layerdb mounts and container records.
//!
//! CONTRACT (the CLI depends on these signatures; extend, don't change):
#![deny(unsafe_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("store: {0}")]
    Todo(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Error type a layer-apply callback may return.
pub type ApplyError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An opened data root (`ROOT`). Opening for writing creates the layout with spec §0 modes.
#[derive(Debug, Clone)]
pub struct DataRoot {
    root: PathBuf,
}

/// An exclusive lock on the data root held by one ovl process (flock on `ROOT/ovl.lock`).
#[derive(Debug)]
pub struct RootLock {}

/// A registered read-only layer (one `layerdb/sha256/<chain>` entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub chain_id: String,
    pub diff_id: String,
    pub parent: Option<String>,
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

/// A normalized image reference: familiar repository name and tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Familiar repository (`busybox`, `localhost:5000/x/y`): `docker.io/library/` stripped.
    pub repo: String,
    pub tag: String,
}

impl Reference {
    /// Parses `name[:tag]` (default tag `latest`), validating it like Docker's reference grammar.
    pub fn parse(_text: &str) -> Result<Reference> {
        todo!()
    }
    /// `repo:tag`, the key used in repositories.json.
    pub fn familiar(&self) -> String {
        todo!()
    }
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
}

/// `sha256:` + hex of sha256(bytes).
pub fn sha256_digest(_bytes: &[u8]) -> String {
    todo!()
}

/// ChainID(n) = sha256(ChainID(n-1) + " " + DiffID(n)) (spec §1.1).
pub fn chain_id(_parent_chain: Option<&str>, _diff_id: &str) -> String {
    todo!()
}

/// ChainIDs of a whole diff_id list, bottom first.
pub fn chain_ids(_diff_ids: &[String]) -> Vec<String> {
    todo!()
}

/// 32 random bytes as 64 lower-case hex, regenerated while the first 12 chars are all digits.
pub fn random_id() -> Result<String> {
    todo!()
}

/// Go `time.Now().UTC().Format(time.RFC3339Nano)`.
pub fn now_rfc3339_nano() -> String {
    todo!()
}

/// Go json.Marshal-compatible encoding (compact, HTML escapes of <, >, &, U+2028, U+2029).
pub fn go_json<T: serde::Serialize>(_value: &T) -> Result<Vec<u8>> {
    todo!()
}

/// Write temp in the same directory, fsync, chmod, rename, fsync directory.
pub fn write_atomic(_path: &Path, _bytes: &[u8], _mode: u32) -> Result<()> {
    todo!()
}

impl DataRoot {
    /// Opens an existing data root read-only (nothing is created).
    pub fn open(_root: &Path) -> Result<DataRoot> {
        todo!()
    }
    /// Opens for writing, creating the spec §0 layout with its modes where missing.
    pub fn open_or_create(_root: &Path) -> Result<DataRoot> {
        todo!()
    }
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `ROOT/overlay2` (the driver home, H).
    pub fn overlay_home(&self) -> PathBuf {
        todo!()
    }
    /// Scratch space inside the data root (`ROOT/tmp`), for archive staging.
    pub fn tmp_dir(&self) -> PathBuf {
        todo!()
    }
    pub fn lock(&self) -> Result<RootLock> {
        todo!()
    }

    // ---- layers (spec §1) ----
    pub fn layer(&self, _chain_id: &str) -> Result<Option<Layer>> {
        todo!()
    }
    pub fn layers(&self) -> Result<Vec<Layer>> {
        todo!()
    }
    /// Registers a layer on top of `parent` following spec §1.3: creates the overlay2 dir, a
    /// `layerdb/tmp/write-set-*` staging dir, calls `apply(diff_dir, tar_split_gz_file)`, writes the
    /// metadata files, then renames the write-set to `layerdb/sha256/<chain>` as the commit point.
    /// Any error removes everything created. An already registered ChainID is returned as is.
    pub fn register_layer(
        &self,
        _parent: Option<&Layer>,
        _apply: &mut dyn FnMut(&Path, &mut dyn Write) -> Result<AppliedLayer, ApplyError>,
    ) -> Result<Layer> {
        todo!()
    }
    /// Removes a layer (spec §1.4) when nothing references it.
    pub fn remove_layer(&self, _chain_id: &str) -> Result<()> {
        todo!()
    }
    /// The chain from `top` down to the bottom layer, top first.
    pub fn layer_chain(&self, _top_chain_id: &str) -> Result<Vec<Layer>> {
        todo!()
    }

    // ---- overlay2 dirs (spec §2) ----
    /// `H/<id>`.
    pub fn overlay_dir(&self, _id: &str) -> PathBuf {
        todo!()
    }
    /// Spec §2.1 Create(id, parent): diff/, link, l/<LID>, and for a parent: work/, lower, parent's committed.
    pub fn create_overlay_dir(&self, _id: &str, _parent_id: Option<&str>) -> Result<()> {
        todo!()
    }
    /// Spec §2.4.
    pub fn remove_overlay_dir(&self, _id: &str) -> Result<()> {
        todo!()
    }
    /// The `lower` entries of `H/<id>` (`l/<LID>`, nearest first); empty without a lower file.
    pub fn lower_entries(&self, _id: &str) -> Result<Vec<String>> {
        todo!()
    }
    /// Spec §2.3 GetMetadata: LowerDir (resolved diff dirs), MergedDir, UpperDir, WorkDir.
    pub fn graph_driver_data(&self, _id: &str) -> Result<serde_json::Map<String, serde_json::Value>> {
        todo!()
    }

    // ---- images (spec §6) ----
    /// Stores config bytes verbatim; returns `sha256:<hex>`.
    pub fn put_image(&self, _config: &[u8]) -> Result<String> {
        todo!()
    }
    /// Reads and re-verifies the config bytes.
    pub fn image_config_bytes(&self, _image_id: &str) -> Result<Vec<u8>> {
        todo!()
    }
    pub fn image_config(&self, _image_id: &str) -> Result<ImageConfig> {
        todo!()
    }
    /// All image ids (`sha256:<hex>`).
    pub fn images(&self) -> Result<Vec<String>> {
        todo!()
    }
    pub fn set_image_parent(&self, _image_id: &str, _parent_id: &str) -> Result<()> {
        todo!()
    }
    pub fn set_last_updated(&self, _image_id: &str) -> Result<()> {
        todo!()
    }
    pub fn delete_image(&self, _image_id: &str) -> Result<()> {
        todo!()
    }

    // ---- repositories.json (spec §6.3) ----
    /// (familiar ref `repo:tag`, image id) pairs.
    pub fn references(&self) -> Result<Vec<(String, String)>> {
        todo!()
    }
    pub fn add_reference(&self, _reference: &Reference, _image_id: &str) -> Result<()> {
        todo!()
    }
    pub fn remove_reference(&self, _reference: &Reference) -> Result<()> {
        todo!()
    }

    // ---- containers (spec §1.6, §8) ----
    pub fn write_mounts_entry(&self, _entry: &MountsEntry) -> Result<()> {
        todo!()
    }
    pub fn mounts_entry(&self, _container_id: &str) -> Result<Option<MountsEntry>> {
        todo!()
    }
    pub fn remove_mounts_entry(&self, _container_id: &str) -> Result<()> {
        todo!()
    }
    /// Writes config.v2.json (with NetworkSettings) and hostconfig.json atomically.
    pub fn write_container(&self, _record: &ContainerRecord) -> Result<()> {
        todo!()
    }
    pub fn containers(&self) -> Result<Vec<ContainerRecord>> {
        todo!()
    }
    pub fn remove_container(&self, _container_id: &str) -> Result<()> {
        todo!()
    }
}
