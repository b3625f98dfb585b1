//! layerdb: reading, registering and removing read-only layers (format.md §3.2–§3.5).

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::fsutil::{self, io_error};
use crate::ids::{self, is_digest};
use crate::overlay::check_layer_dir_id;
use crate::{AppliedLayer, ApplyError, DataRoot, Error, Layer, Result};

/// The deepest chain ovl registers: the kernel's overlay stack limit (OVL_MAX_STACK = 500 in
/// fs/overlayfs/params.h), the most layers one mount can stack. Docker's layer store stops at 125
/// (`maxLayerDepth` in moby layer/layer_store.go); ovl deliberately goes further.
pub const MAX_LAYER_DEPTH: usize = 500;

/// Buffer for the tar-split stream: the callback writes it in small gzip chunks.
const TAR_SPLIT_BUFFER: usize = 64 * 1024;

impl DataRoot {
    fn layerdb(&self) -> PathBuf {
        self.image_dir().join("layerdb")
    }

    fn layer_dir(&self, chain_id: &str) -> Result<PathBuf> {
        Ok(self
            .layerdb()
            .join("sha256")
            .join(ids::digest_hex("chain id", chain_id)?))
    }

    /// The layer with this ChainID, or `None` when it is missing or its metadata is broken (which
    /// makes Docker skip it too; the reason is logged at debug level).
    /// The layer's `tar-split.json.gz` (from which its tar is reassembled).
    /// Both the entry and the file are checked: a symlink in either place is refused.
    pub fn tar_split_path(&self, chain_id: &str) -> Result<PathBuf> {
        let dir = self.layer_dir(chain_id)?;
        fsutil::real_dir(&dir)?;
        let path = dir.join("tar-split.json.gz");
        fsutil::real_file(&path)?;
        Ok(path)
    }

    pub fn layer(&self, chain_id: &str) -> Result<Option<Layer>> {
        let dir = self.layer_dir(chain_id)?;
        if !fsutil::real_dir(&dir)? {
            return Ok(None);
        }
        match read_layer(&dir, chain_id) {
            Ok(layer) => Ok(Some(layer)),
            Err(reason) => {
                tracing::debug!(%chain_id, %reason, "skipping a layer with broken metadata");
                Ok(None)
            }
        }
    }

    /// Every layer Docker would load: valid entries whose parents load too.
    pub fn layers(&self) -> Result<Vec<Layer>> {
        let sha_dir = self.layerdb().join("sha256");
        let mut candidates = std::collections::BTreeMap::new();
        for (name, entry) in fsutil::hex64_entries(&sha_dir)? {
            // A symlink is never followed (`ovl fsck` reports it); only real directories load.
            if !entry.file_type().is_ok_and(|file_type| file_type.is_dir()) {
                continue;
            }
            let chain_id = format!("sha256:{name}");
            match read_layer(&entry.path(), &chain_id) {
                Ok(layer) => {
                    candidates.insert(chain_id, layer);
                }
                Err(reason) => {
                    tracing::debug!(%chain_id, %reason, "skipping a layer with broken metadata")
                }
            }
        }
        let mut layers = Vec::with_capacity(candidates.len());
        for layer in candidates.values() {
            let mut cursor = layer.parent.as_deref();
            let mut complete = true;
            while let Some(parent) = cursor {
                match candidates.get(parent) {
                    Some(found) => cursor = found.parent.as_deref(),
                    None => {
                        complete = false;
                        break;
                    }
                }
            }
            if complete {
                layers.push(layer.clone());
            }
        }
        Ok(layers)
    }

    /// The chain from `top` down to the bottom layer, top first.
    pub fn layer_chain(&self, top_chain_id: &str) -> Result<Vec<Layer>> {
        let mut chain = Vec::new();
        let mut cursor = Some(top_chain_id.to_string());
        while let Some(chain_id) = cursor {
            let layer = self
                .layer(&chain_id)?
                .ok_or(Error::MissingLayer { chain_id })?;
            cursor = layer.parent.clone();
            chain.push(layer);
        }
        Ok(chain)
    }

    /// Registers a layer on top of `parent` following format.md §3.3: creates the overlay2 dir, a
    /// `layerdb/tmp/write-set-*` staging dir, calls `apply(diff_dir, tar_split_gz_file)`, writes the
    /// metadata files, then renames the write-set to `layerdb/sha256/<chain>` as the commit point.
    /// Any error removes everything created (and the parent's `committed` file if this call wrote
    /// it). An already registered ChainID is returned as is and the new copy is dropped.
    pub fn register_layer(
        &self,
        parent: Option<&Layer>,
        apply: &mut dyn FnMut(&Path, &mut dyn Write) -> Result<AppliedLayer, ApplyError>,
    ) -> Result<Layer> {
        let parent = parent.map(LayerParent::from);
        let mut pending = self.begin_layer(parent.as_ref())?;
        pending.apply(apply)?;
        pending.commit(false)
    }

    /// The first half of [`DataRoot::register_layer`]: the overlay2 dir (with its `link`, `l/`
    /// symlink and `lower` file) and the write-set. The parent may itself be pending: a chain of
    /// layers can be begun bottom up, applied in any order or at once, and committed bottom up.
    /// Dropping the result before its commit removes what it created.
    pub fn begin_layer(&self, parent: Option<&LayerParent>) -> Result<PendingLayer<'_>> {
        let parent_name = parent_name(parent);
        let at = at_step(&parent_name);
        if let Some(parent) = parent {
            // The parent's `lower` file lists every layer below it: its depth without a chain walk.
            let depth = self
                .lower_entries(&parent.cache_id)
                .map_err(at("reading the parent's lower file"))?
                .len()
                + 1;
            if depth >= MAX_LAYER_DEPTH {
                return Err(Error::MaxDepth {
                    parent: parent_name.clone(),
                    depth,
                });
            }
        }

        let cache_id = ids::random_id()?;
        let mut guard = RegisterGuard {
            root: self,
            overlay_id: None,
            write_set: None,
            committed: None,
        };
        if let Some(parent) = parent {
            let committed = self
                .existing_overlay_dir(&parent.cache_id)
                .map_err(at("checking the parent's overlay2 dir"))?
                .join("committed");
            if !fsutil::real_file(&committed).map_err(at("checking the parent's committed file"))? {
                guard.committed = Some(committed);
            }
        }
        self.create_overlay_dir(&cache_id, parent.map(|p| p.cache_id.as_str()))
            .map_err(at("creating the overlay2 dir"))?;
        guard.overlay_id = Some(cache_id.clone());

        let write_set = self
            .layerdb()
            .join("tmp")
            .join(format!("write-set-{}", random_digits()?));
        if !fsutil::create_dir_mode(&write_set, 0o700).map_err(at("creating the write-set"))? {
            return Err(at("creating the write-set")(Error::Io {
                op: "creating",
                path: write_set,
                source: std::io::ErrorKind::AlreadyExists.into(),
            }));
        }
        guard.write_set = Some(write_set.clone());
        Ok(PendingLayer {
            guard,
            parent: parent.cloned(),
            cache_id,
            write_set,
            applied: None,
        })
    }

    /// Makes the layers committed with [`PendingLayer::commit_synced_batch`] durable.
    pub fn sync_layerdb(&self) -> Result<()> {
        fsutil::sync_dir(&self.layerdb().join("sha256"))
    }

    /// Flushes the filesystem of the data root (`syncfs`): after it, every pending layer's files
    /// are on disk and [`PendingLayer::commit`] may skip its own sync.
    pub fn sync_filesystem(&self) -> Result<()> {
        let home = self.overlay_home();
        File::open(&home)
            .map_err(io_error("opening", &home))
            .and_then(|dir| {
                rustix::fs::syncfs(&dir).map_err(|errno| Error::Io {
                    op: "syncing",
                    path: home.clone(),
                    source: errno.into(),
                })
            })
    }

    /// Removes a layer (format.md §3.4) when nothing references it; the caller checks references.
    /// The layerdb entry goes first (renamed to a `-removing` marker), so a crash leaves at worst
    /// an orphan overlay2 dir that no image can use.
    pub fn remove_layer(&self, chain_id: &str) -> Result<()> {
        let dir = self.layer_dir(chain_id)?;
        let Some(layer) = self.layer(chain_id)? else {
            return Err(Error::MissingLayer {
                chain_id: chain_id.to_string(),
            });
        };
        // Checked before the entry is renamed: a layer dir that is not what the format has
        // (a symlink out of the root, ...) is refused with nothing changed.
        self.checked_overlay_dir(&layer.cache_id)?;
        let marker = dir.with_file_name(format!(
            "{}-{}-removing",
            ids::digest_hex("chain id", chain_id)?,
            ids::random_hex(32)?
        ));
        fs::rename(&dir, &marker).map_err(io_error("renaming for removal", &dir))?;
        self.remove_overlay_dir(&layer.cache_id)?;
        fsutil::remove_tree(&marker)
    }
}

/// Parses one layerdb entry the way Docker's loader does (format.md §3.5).
fn read_layer(dir: &Path, chain_id: &str) -> std::result::Result<Layer, String> {
    let read = |name: &str| -> std::result::Result<Option<String>, String> {
        fsutil::read_optional(&dir.join(name)).map_err(|err| err.to_string())
    };
    let diff_id = read("diff")?.ok_or("no diff file")?.trim().to_string();
    if !is_digest(&diff_id) {
        return Err(format!("invalid diff {diff_id:?}"));
    }
    // Docker parses `size` without trimming: "2\n" makes the layer fail to load.
    let size_text = read("size")?.ok_or("no size file")?;
    let size: i64 = size_text
        .parse()
        .map_err(|_| format!("invalid size {size_text:?}"))?;
    let cache_id = read("cache-id")?
        .ok_or("no cache-id file")?
        .trim()
        .to_string();
    if check_layer_dir_id(&cache_id).is_err() {
        return Err(format!("invalid cache-id {cache_id:?}"));
    }
    let parent = match read("parent")? {
        Some(text) => {
            let parent = text.trim().to_string();
            if !is_digest(&parent) {
                return Err(format!("invalid parent {parent:?}"));
            }
            Some(parent)
        }
        None => None,
    };
    Ok(Layer {
        chain_id: chain_id.to_string(),
        diff_id,
        parent,
        cache_id,
        size,
    })
}

/// A decimal suffix for write-set dirs, as Docker's `ioutil.TempDir` pattern gives.
fn random_digits() -> Result<String> {
    let hex = ids::random_hex(8)?;
    Ok(u64::from_str_radix(&hex, 16).unwrap_or(0).to_string())
}

/// What a new layer needs of its parent: the parent's ChainID (its `parent` file) and overlay2
/// dir (its `lower` file). A pending parent's ChainID is the one its expected DiffID gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerParent {
    pub chain_id: String,
    pub cache_id: String,
}

impl From<&Layer> for LayerParent {
    fn from(layer: &Layer) -> LayerParent {
        LayerParent {
            chain_id: layer.chain_id.clone(),
            cache_id: layer.cache_id.clone(),
        }
    }
}

fn parent_name(parent: Option<&LayerParent>) -> String {
    parent.map_or_else(|| "an empty chain".to_string(), |p| p.chain_id.clone())
}

fn at_step(parent_name: &str) -> impl Fn(&'static str) -> Box<dyn FnOnce(Error) -> Error> + '_ {
    move |step| {
        let parent = parent_name.to_string();
        Box::new(move |source: Error| Error::Register {
            parent,
            step,
            source: Box::new(source),
        })
    }
}

/// A layer between [`DataRoot::begin_layer`] and [`PendingLayer::commit`]: invisible to every
/// reader, removed again when dropped uncommitted.
#[derive(Debug)]
pub struct PendingLayer<'a> {
    guard: RegisterGuard<'a>,
    parent: Option<LayerParent>,
    cache_id: String,
    write_set: PathBuf,
    applied: Option<AppliedLayer>,
}

impl PendingLayer<'_> {
    /// The overlay2 dir id (the cache-id) of the layer.
    pub fn cache_id(&self) -> &str {
        &self.cache_id
    }

    /// Calls `apply(diff_dir, tar_split_gz_file)` once and keeps what it reports.
    pub fn apply(
        &mut self,
        apply: &mut dyn FnMut(&Path, &mut dyn Write) -> Result<AppliedLayer, ApplyError>,
    ) -> Result<()> {
        let parent_name = parent_name(self.parent.as_ref());
        let at = at_step(&parent_name);
        let tar_split_path = self.write_set.join("tar-split.json.gz");
        let file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tar_split_path)
            .map_err(io_error("creating", &tar_split_path))
            .map_err(at("creating tar-split.json.gz"))?;
        file.set_permissions(fs::Permissions::from_mode(0o644))
            .map_err(io_error("chmod", &tar_split_path))
            .map_err(at("creating tar-split.json.gz"))?;
        let mut writer = BufWriter::with_capacity(TAR_SPLIT_BUFFER, file);
        let diff_dir = self.guard.root.overlay_dir(&self.cache_id).join("diff");
        let applied = apply(&diff_dir, &mut writer).map_err(|source| Error::Apply {
            parent: parent_name.clone(),
            source,
        })?;
        let file = writer
            .into_inner()
            .map_err(|err| Error::Io {
                op: "writing",
                path: tar_split_path.clone(),
                source: err.into_error(),
            })
            .map_err(at("writing tar-split.json.gz"))?;
        // Dropping the file closes it; a write-back error surfaces in the `syncfs` that comes
        // before the commit point.
        drop(file);
        if !is_digest(&applied.diff_id) {
            return Err(at("checking the diff id")(Error::InvalidId {
                what: "diff id",
                value: applied.diff_id,
            }));
        }
        // The metadata files are written now, not at the commit, so that the one `syncfs` after
        // the apply makes the whole write-set durable: no file of it needs an fsync of its own.
        let size = applied.size.to_string();
        let parent_chain = self.parent.as_ref().map(|p| p.chain_id.clone());
        let mut files = vec![
            ("diff", applied.diff_id.as_str()),
            ("size", size.as_str()),
            ("cache-id", self.cache_id.as_str()),
        ];
        if let Some(parent_chain) = &parent_chain {
            files.push(("parent", parent_chain.as_str()));
        }
        for (name, value) in files {
            fsutil::write_new(&self.write_set.join(name), value.as_bytes(), 0o644)
                .map_err(at("writing the layer metadata"))?;
        }
        self.applied = Some(applied);
        Ok(())
    }

    /// Writes the metadata files and renames the write-set to `layerdb/sha256/<chain>`: the
    /// layer exists from then on. Its parent must be committed first. `synced` says that
    /// [`DataRoot::sync_filesystem`] ran after the layer was applied; otherwise this syncs.
    pub fn commit(self, synced: bool) -> Result<Layer> {
        self.commit_with(synced, true)
    }

    /// [`PendingLayer::commit`] of one of several layers applied and synced together: the
    /// rename into `layerdb/sha256` is made durable by one [`DataRoot::sync_layerdb`] after the
    /// last of them, before anything refers to them.
    pub fn commit_synced_batch(self) -> Result<Layer> {
        self.commit_with(true, false)
    }

    fn commit_with(mut self, synced: bool, sync_layerdb: bool) -> Result<Layer> {
        let root = self.guard.root;
        let parent_name = parent_name(self.parent.as_ref());
        let at = at_step(&parent_name);
        let applied = self.applied.take().ok_or_else(|| {
            at("committing")(Error::InvalidId {
                what: "layer never applied, cache-id",
                value: self.cache_id.clone(),
            })
        })?;
        let write_set = self.write_set.clone();
        let parent_chain = self.parent.as_ref().map(|p| p.chain_id.as_str());
        let chain_id = ids::chain_id(parent_chain, &applied.diff_id);
        if let Some(existing) = root
            .layer(&chain_id)
            .map_err(at("looking up the chain id"))?
        {
            // The guard removes the new overlay2 dir and the write-set.
            tracing::debug!(%chain_id, "layer already registered; dropping the new copy");
            return Ok(existing);
        }
        if !synced {
            // The layer's files and its write-set reach the disk before the layer becomes
            // visible.
            root.sync_filesystem()
                .map_err(at("syncing the layer content"))?;
        }
        let sha_dir = root.layerdb().join("sha256");
        fsutil::create_dir_mode(&sha_dir, 0o755).map_err(at("creating layerdb/sha256"))?;
        let final_dir = root.layer_dir(&chain_id)?;
        fs::rename(&write_set, &final_dir)
            .map_err(io_error("renaming the write-set to", &final_dir))
            .map_err(at("committing"))?;
        // Past the commit point the layer exists: nothing may be undone any more.
        self.guard.write_set = None;
        self.guard.overlay_id = None;
        self.guard.committed = None;
        if sync_layerdb {
            if let Err(err) = fsutil::sync_dir(&sha_dir) {
                tracing::warn!(error = %err, %chain_id, "layer committed but its directory was not synced");
            }
        }
        tracing::debug!(%chain_id, cache_id = %self.cache_id, size = applied.size, "layer registered");
        Ok(Layer {
            chain_id,
            diff_id: applied.diff_id,
            parent: parent_chain.map(str::to_string),
            cache_id: self.cache_id.clone(),
            size: applied.size,
        })
    }
}

/// Undoes a registration that did not reach its commit point.
#[derive(Debug)]
struct RegisterGuard<'a> {
    root: &'a DataRoot,
    overlay_id: Option<String>,
    write_set: Option<PathBuf>,
    committed: Option<PathBuf>,
}

impl Drop for RegisterGuard<'_> {
    fn drop(&mut self) {
        if let Some(write_set) = self.write_set.take() {
            if let Err(err) = fsutil::remove_tree(&write_set) {
                tracing::error!(error = %err, "removing a layerdb write-set");
            }
        }
        if let Some(id) = self.overlay_id.take() {
            if let Err(err) = self.root.remove_overlay_dir(&id) {
                tracing::error!(error = %err, "removing the layer dir of a failed registration");
            }
        }
        if let Some(committed) = self.committed.take() {
            let _ = fsutil::remove_file(&committed);
        }
    }
}
