//! Garbage in a data root, and the sizes `docker system df` reports (format.md §3.4–§3.6, §4.1, §4.4,
//! §8.2, §8.3).
//!
//! [`DataRoot::plan_gc`] computes, without changing anything, what is garbage and why:
//! - what an operation cut short leaves behind: `layerdb/sha256/<chain>-<random>-removing` dirs
//!   with the overlay2 dir their `cache-id` names, `layerdb/tmp/write-set-*` dirs,
//!   `overlay2/<id>` dirs that no layer and no container names, and `overlay2/l/<LID>` links whose
//!   dir is gone (Docker removes `-removing` dirs at its shutdown only, the write-sets and orphan
//!   dirs never, format.md §3.5);
//! - the images `docker image prune` removes (no tag, no container, no child image) and, as moby's
//!   `imageDeleteHelper` does after them, their parents that have no reference, no container and no
//!   other child;
//! - layers that no remaining image chain and no container needs.
//!
//! Each item carries the bytes its removal frees. [`DataRoot::execute_gc`] removes exactly the
//! items of a plan, each the way the store removes things: a layer's layerdb entry first (renamed
//! to a `-removing` marker), then its overlay2 dir and link; a marker's overlay2 dir before the
//! marker; a layer dir's `l/` links before the dir. Every item is safe on its own, so a plan may
//! be cut down to some of its items; one that would then remove a layer that something staying
//! needs is refused before anything goes.
//!
//! What the scan does not understand (names no Docker 20.10 writes, symlinks, entries that do not
//! load, file systems mounted inside) is left alone and named in the plan. When an entry that could
//! hold layers or overlay2 dirs cannot be read, nothing of that kind is removed at all. Leftovers
//! are removed through directory descriptors opened from the data root down with `O_NOFOLLOW`:
//! no symlink is ever followed and no mount point crossed.
//!
//! `scan` reads the root once and `plan` decides from what it read; `execute` is the executor;
//! sizes come from the store's one walker (`below`). What `docker system df` measures is in
//! `usage`, beside this module.

mod execute;
mod plan;
mod scan;
#[cfg(test)]
mod tests;

use std::path::PathBuf;

/// What kind of garbage an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GarbageKind {
    /// An image `docker image prune` removes: no tag, no container, no child image (or the
    /// unreferenced parent of such an image).
    DanglingImage,
    /// A registered layer that no remaining image chain and no container needs.
    UnusedLayer,
    /// `layerdb/sha256/<chain>-<random>-removing`: a layer removal cut short, with the overlay2
    /// dir its `cache-id` names.
    InterruptedRemoval,
    /// `layerdb/tmp/write-set-*`: a layer registration that never reached its commit point.
    WriteSet,
    /// `overlay2/<id>` that no layer and no container names, with the `l/` links to it.
    OrphanLayerDir,
    /// `overlay2/l/<LID>` whose layer dir is gone.
    DanglingLink,
}

/// One thing a plan removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GarbageItem {
    pub kind: GarbageKind,
    /// `sha256:<hex>` for an image (its id) or a layer (its ChainID); otherwise the path relative
    /// to the data root.
    pub name: String,
    /// Why it is garbage.
    pub reason: String,
    /// The bytes its removal frees: a layer's `size` (what Docker's prune reports), nothing for an
    /// image config, and Docker's `directory.Size` of everything removed for a leftover.
    pub size: u64,
    target: Target,
}

/// Something the scan met and leaves in place.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LeftAlone {
    /// Relative to the data root.
    pub path: PathBuf,
    pub reason: String,
}

/// What [`DataRoot::plan_gc`] found: the items to remove, in the order they are removed, and what
/// it leaves alone.
#[derive(Debug, Clone, Default)]
pub struct GcPlan {
    pub items: Vec<GarbageItem>,
    pub left_alone: Vec<LeftAlone>,
}

impl GcPlan {
    /// The bytes all items free together.
    pub fn total_size(&self) -> u64 {
        self.items.iter().map(|item| item.size).sum()
    }
}

/// What removing an item takes; the `l/` links are kept with the target they pointed at when
/// planned, and are removed only while they still do.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Image {
        image_id: String,
        digest_references: Vec<String>,
    },
    Layer {
        chain_id: String,
        extra_links: Vec<PlannedLink>,
    },
    Removal {
        marker: String,
        layer_dir: Option<String>,
        links: Vec<PlannedLink>,
    },
    WriteSet {
        name: String,
    },
    LayerDir {
        id: String,
        links: Vec<PlannedLink>,
    },
    Link(PlannedLink),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct PlannedLink {
    name: String,
    target: PathBuf,
}

/// The parts of the layout that garbage lives in, relative to the data root. Each must be a real
/// directory: a symlink among them would lead removals out of the data root.
const LAYERDB_SHA256: &str = "image/overlay2/layerdb/sha256";
const LAYERDB_TMP: &str = "image/overlay2/layerdb/tmp";
const LAYERDB_MOUNTS: &str = "image/overlay2/layerdb/mounts";
const IMAGEDB: &str = "image/overlay2/imagedb";
const OVERLAY_HOME: &str = "overlay2";
const LINKS: &str = "overlay2/l";
const CONTAINERS: &str = "containers";
const CHECKED_LAYOUT: [&str; 9] = [
    LAYERDB_SHA256,
    LAYERDB_TMP,
    LAYERDB_MOUNTS,
    "image/overlay2/imagedb/content/sha256",
    "image/overlay2/imagedb/metadata/sha256",
    OVERLAY_HOME,
    LINKS,
    CONTAINERS,
    "tmp",
];

/// The name prefix of layerdb staging dirs (moby layer/filestore.go `StartTransaction`:
/// `ioutil.TempDir(tmpDir, "write-set-")`).
const WRITE_SET_PREFIX: &str = "write-set-";
/// The suffix of a layer removal marker (moby layer/layer_store.go `deleteLayer`).
const REMOVING_SUFFIX: &str = "-removing";

/// A path relative to the data root as a plan names it.
fn path_text(path: &std::path::Path) -> String {
    path.to_string_lossy().into_owned()
}
