//! Garbage in a data root, and the sizes `docker system df` reports (spec §1.4–§1.6, §2.1, §2.4,
//! §6.2, §6.3).
//!
//! [`DataRoot::plan_gc`] computes, without changing anything, what is garbage and why:
//! - what an operation cut short leaves behind: `layerdb/sha256/<chain>-<random>-removing` dirs
//!   with the overlay2 dir their `cache-id` names, `layerdb/tmp/write-set-*` dirs,
//!   `overlay2/<id>` dirs that no layer and no container names, and `overlay2/l/<LID>` links whose
//!   dir is gone (Docker removes `-removing` dirs at its shutdown only, the write-sets and orphan
//!   dirs never, spec §1.5);
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

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use crate::below::{Below, Crossing};
use crate::fsutil;
use crate::ids::{self, is_digest, is_hex64, is_layer_dir_id};
use crate::{DataRoot, Error, Layer, MountsEntry, Result};

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

/// A local volume as `docker system df` counts it: `ROOT/volumes/<name>/` without mount options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalVolume {
    pub name: String,
    /// Docker's `directory.Size` of `_data`; -1 when it cannot be measured (as Docker reports).
    pub size: i64,
}

/// One entry of a container's `MountPoints` (config.v2.json).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerMountPoint {
    /// The volume name; empty for a bind mount.
    pub name: String,
    /// The volume driver (`local`); empty for a bind mount.
    pub driver: String,
    /// The host path of a bind mount.
    pub source: String,
}

/// What `docker system df -v` shows of a container beyond its record: its mount points and the
/// networks it is attached to (config.v2.json `MountPoints`, `NetworkSettings.Networks`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerAttachments {
    /// Sorted by volume name.
    pub mount_points: Vec<ContainerMountPoint>,
    /// Sorted.
    pub networks: Vec<String>,
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
const VOLUMES: &str = "volumes";
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

impl DataRoot {
    /// Computes what is garbage (see the module documentation); reads only.
    pub fn plan_gc(&self) -> Result<GcPlan> {
        let below = Below::open(&self.root)?;
        for dir in CHECKED_LAYOUT {
            below.dir(dir)?;
        }
        let mut planner = Planner {
            root: self,
            below,
            plan: GcPlan::default(),
            dirs_unknown: None,
            layers_unknown: None,
            images_unknown: None,
        };
        planner.run()?;
        planner.plan.left_alone.sort();
        Ok(planner.plan)
    }

    /// Removes the items of `plan`, in its order, calling `removed` after each; stops at the first
    /// failure (what was removed before stays removed, the item that failed is left as the store's
    /// own protocols leave it, so that a new plan finds the rest). The plan must have been made
    /// under the same lock. A plan may be cut down to some of its items; one that would then remove
    /// a layer that a remaining layer, image or container needs is refused before anything goes.
    pub fn execute_gc(&self, plan: &GcPlan, removed: &mut dyn FnMut(&GarbageItem)) -> Result<()> {
        let below = Below::open(&self.root)?;
        for dir in CHECKED_LAYOUT {
            below.dir(dir)?;
        }
        self.refuse_removing_layers_in_use(plan)?;
        // A layer whose overlay2 dir is not what the format has (a symlink out of the root, a
        // symlinked diff/ or merged/, ...) is refused before anything of the plan goes.
        for item in &plan.items {
            if let Target::Layer { chain_id, .. } = &item.target {
                if let Some(layer) = self.layer(chain_id)? {
                    self.checked_overlay_dir(&layer.cache_id)?;
                }
            }
        }
        for item in &plan.items {
            match &item.target {
                Target::Image {
                    image_id,
                    digest_references,
                } => {
                    self.remove_digest_references(digest_references)?;
                    self.delete_image(image_id)?;
                }
                Target::Layer {
                    chain_id,
                    extra_links,
                } => {
                    if let Some(layer) = self.layer(chain_id)? {
                        below.refuse_mounts(OVERLAY_HOME, &layer.cache_id)?;
                        self.remove_layer(chain_id)?;
                    }
                    for link in extra_links {
                        below.remove_link(LINKS, &link.name, &link.target)?;
                    }
                }
                Target::Removal {
                    marker,
                    layer_dir,
                    links,
                } => {
                    for link in links {
                        below.remove_link(LINKS, &link.name, &link.target)?;
                    }
                    if let Some(id) = layer_dir {
                        below.remove(OVERLAY_HOME, id)?;
                    }
                    below.remove(LAYERDB_SHA256, marker)?;
                }
                Target::WriteSet { name } => below.remove(LAYERDB_TMP, name)?,
                Target::LayerDir { id, links } => {
                    for link in links {
                        below.remove_link(LINKS, &link.name, &link.target)?;
                    }
                    below.remove(OVERLAY_HOME, id)?;
                }
                Target::Link(link) => below.remove_link(LINKS, &link.name, &link.target)?,
            }
            tracing::info!(kind = ?item.kind, name = %item.name, size = item.size, "removed");
            removed(item);
        }
        Ok(())
    }

    /// Fails when `plan` removes a layer that a layer, image or container outside the plan needs.
    fn refuse_removing_layers_in_use(&self, plan: &GcPlan) -> Result<()> {
        let mut removing_layers = BTreeSet::new();
        let mut removing_images = BTreeSet::new();
        for item in &plan.items {
            match &item.target {
                Target::Layer { chain_id, .. } => {
                    removing_layers.insert(chain_id.as_str());
                }
                Target::Image { image_id, .. } => {
                    removing_images.insert(image_id.as_str());
                }
                _ => {}
            }
        }
        if removing_layers.is_empty() {
            return Ok(());
        }
        let in_use = |chain_id: &str, user: String| {
            let hex = chain_id.trim_start_matches("sha256:");
            Error::Io {
                op: "refusing to remove a layer in use:",
                path: self.root.join(LAYERDB_SHA256).join(hex),
                source: std::io::Error::other(format!("{user} needs it")),
            }
        };
        for layer in self.layers()? {
            if let Some(parent) = &layer.parent {
                if removing_layers.contains(parent.as_str())
                    && !removing_layers.contains(layer.chain_id.as_str())
                {
                    return Err(in_use(parent, format!("layer {}", layer.chain_id)));
                }
            }
        }
        for image_id in self.images()? {
            if removing_images.contains(image_id.as_str()) {
                continue;
            }
            if let Ok(config) = self.image_config(&image_id) {
                for chain_id in ids::chain_ids(&config.rootfs.diff_ids) {
                    if removing_layers.contains(chain_id.as_str()) {
                        return Err(in_use(&chain_id, format!("image {image_id}")));
                    }
                }
            }
        }
        for (container_id, _) in fsutil::hex64_entries(&self.root.join(LAYERDB_MOUNTS))? {
            if let Ok(Some(entry)) = self.mounts_entry(&container_id) {
                if let Some(parent) = entry.parent {
                    if removing_layers.contains(parent.as_str()) {
                        return Err(in_use(&parent, format!("container {container_id}")));
                    }
                }
            }
        }
        Ok(())
    }

    /// Docker's `directory.Size` of `H/<id>/diff`: what overlay2's `DiffSize` returns for a
    /// container layer on the native diff path (moby daemon/graphdriver/overlay2 `DiffSize`).
    pub fn layer_diff_size(&self, id: &str) -> Result<i64> {
        crate::overlay::check_layer_dir_id(id)?;
        let below = Below::open(&self.root)?;
        let parent = format!("{OVERLAY_HOME}/{id}");
        let facts = below.measure(&parent, "diff", Crossing::Enter)?;
        if !facts.found {
            let path = self.overlay_dir(id).join("diff");
            return Err(fsutil::io_error("measuring", &path)(
                std::io::ErrorKind::NotFound.into(),
            ));
        }
        Ok(i64::try_from(facts.size).unwrap_or(i64::MAX))
    }

    /// The local volumes `docker system df` counts (moby volume/service `LocalVolumesSize`): every
    /// directory in `ROOT/volumes` without mount options in its `opts.json`, sorted by name.
    pub fn local_volumes(&self) -> Result<Vec<LocalVolume>> {
        let dir = self.root.join(VOLUMES);
        let below = Below::open(&self.root)?;
        let mut volumes = Vec::new();
        for name in sorted_names(&dir)? {
            let path = dir.join(&name);
            if !fs::symlink_metadata(&path).is_ok_and(|meta| meta.is_dir()) {
                continue;
            }
            if has_mount_options(&path.join("opts.json")) {
                continue;
            }
            let size = match below.measure(&format!("{VOLUMES}/{name}"), "_data", Crossing::Enter) {
                Ok(facts) if facts.found => i64::try_from(facts.size).unwrap_or(i64::MAX),
                Ok(_) => -1,
                Err(err) => {
                    tracing::warn!(volume = %name, error = %err, "failed to measure a volume");
                    -1
                }
            };
            volumes.push(LocalVolume { name, size });
        }
        Ok(volumes)
    }

    /// The mount points and networks of a container's config.v2.json.
    pub fn container_attachments(&self, container_id: &str) -> Result<ContainerAttachments> {
        if !is_hex64(container_id) {
            return Err(Error::InvalidId {
                what: "container id",
                value: container_id.to_string(),
            });
        }
        let path = self
            .root
            .join(CONTAINERS)
            .join(container_id)
            .join("config.v2.json");
        let bytes = fsutil::read_bytes_optional(&path)?.ok_or_else(|| {
            fsutil::io_error("reading", &path)(std::io::ErrorKind::NotFound.into())
        })?;
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|source| Error::Json {
                path: path.clone(),
                source,
            })?;
        let text = |point: &serde_json::Value, key: &str| {
            point
                .get(key)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut mount_points: Vec<ContainerMountPoint> = value
            .get("MountPoints")
            .and_then(serde_json::Value::as_object)
            .map(|points| {
                points
                    .values()
                    .map(|point| ContainerMountPoint {
                        name: text(point, "Name"),
                        driver: text(point, "Driver"),
                        source: text(point, "Source"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        mount_points.sort_by(|a, b| a.name.cmp(&b.name).then(a.source.cmp(&b.source)));
        let mut networks: Vec<String> = value
            .pointer("/NetworkSettings/Networks")
            .and_then(serde_json::Value::as_object)
            .map(|networks| networks.keys().cloned().collect())
            .unwrap_or_default();
        networks.sort();
        Ok(ContainerAttachments {
            mount_points,
            networks,
        })
    }

    /// Removes `name@sha256:<digest>` references from repositories.json (the store's tag API
    /// handles `name:tag` only), dropping repositories left empty, as moby's reference store does.
    fn remove_digest_references(&self, references: &[String]) -> Result<()> {
        if references.is_empty() {
            return Ok(());
        }
        let path = self.repositories_path();
        let text = fsutil::read_optional(&path)?.unwrap_or_default();
        let mut repositories: Repositories =
            serde_json::from_str(&text).map_err(|source| Error::Json {
                path: path.clone(),
                source,
            })?;
        for reference in references {
            let repo = reference.split_once('@').map_or("", |(repo, _)| repo);
            if let Some(refs) = repositories.repositories.get_mut(repo) {
                refs.remove(reference);
                if refs.is_empty() {
                    repositories.repositories.remove(repo);
                }
            }
        }
        fsutil::write_atomic(&path, &crate::go_json(&repositories)?, 0o600)
    }
}

/// repositories.json (spec §6.3).
#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Repositories {
    #[serde(rename = "Repositories", default)]
    repositories: BTreeMap<String, BTreeMap<String, String>>,
}

/// Whether a volume's `opts.json` sets any option; Docker leaves such volumes out of its disk usage
/// (and treats an all-empty options file as none).
fn has_mount_options(path: &Path) -> bool {
    let Ok(Some(bytes)) = fsutil::read_bytes_optional(path) else {
        return false;
    };
    let Ok(serde_json::Value::Object(options)) = serde_json::from_slice(&bytes) else {
        return true;
    };
    options.values().any(|value| match value {
        serde_json::Value::Null => false,
        serde_json::Value::String(text) => !text.is_empty(),
        serde_json::Value::Number(number) => number.as_f64() != Some(0.0),
        serde_json::Value::Object(fields) => !fields.is_empty(),
        serde_json::Value::Array(items) => !items.is_empty(),
        serde_json::Value::Bool(flag) => *flag,
    })
}

/// One `l/` link as scanned.
struct LinkInfo {
    target: PathBuf,
    /// The layer dir of a `../<id>/diff` target.
    dir: Option<String>,
    size: u64,
}

/// The layerdb as scanned.
#[derive(Default)]
struct LayerScan {
    /// The layers Docker loads, by ChainID.
    loaded: BTreeMap<String, Layer>,
    /// The parent of every entry that names a valid one, loaded or not.
    parents: BTreeMap<String, String>,
    /// Entries that do not load.
    broken: BTreeSet<String>,
    /// The valid `cache-id`s of entries that do not load.
    broken_dirs: BTreeSet<String>,
    /// Removal markers: dir name and the valid `cache-id` it names.
    markers: Vec<(String, Option<String>)>,
}

/// The images as scanned.
#[derive(Default)]
struct ImageScan {
    /// Images whose config verifies, with their DiffIDs.
    configs: BTreeMap<String, Vec<String>>,
    /// Images Docker loads: the config verifies and the top layer loads.
    loaded: BTreeSet<String>,
    parent_of: BTreeMap<String, String>,
    children_of: BTreeMap<String, BTreeSet<String>>,
    tags_of: BTreeMap<String, Vec<String>>,
    digests_of: BTreeMap<String, Vec<String>>,
    n_containers_of: BTreeMap<String, usize>,
}

struct Planner<'a> {
    root: &'a DataRoot,
    below: Below,
    plan: GcPlan,
    /// Why the owner of some overlay2 dir cannot be known (then no dir is removed as an orphan).
    dirs_unknown: Option<String>,
    /// Why the users of some layer cannot be known (then no layer is removed).
    layers_unknown: Option<String>,
    /// Why the tags, children or containers of some image cannot be known (then no image is
    /// removed).
    images_unknown: Option<String>,
}

impl Planner<'_> {
    fn run(&mut self) -> Result<()> {
        let links = self.scan_links()?;
        let layers = self.scan_layerdb()?;
        let mounts = self.scan_mounts()?;
        let images = self.scan_images(&layers)?;
        let pruned = self.dangling_images(&images);
        let unused = self.unused_layers(&layers, &mounts, &images, &pruned, &links)?;
        // The dirs every registered layer, every entry that does not load and every container
        // reaches, unused layers included: an item stays safe on its own even when the layers
        // of the same plan are not removed.
        let mut base: BTreeSet<String> = layers
            .loaded
            .values()
            .map(|layer| layer.cache_id.clone())
            .collect();
        base.extend(layers.broken_dirs.iter().cloned());
        for entry in &mounts {
            base.insert(entry.mount_id.clone());
            base.extend(entry.init_id.clone());
        }
        let held_dirs = self.close_under_lowers(base, &links)?;

        let pruned_chains: BTreeSet<String> = pruned
            .iter()
            .filter_map(|id| images.configs.get(id))
            .flat_map(|diff_ids| ids::chain_ids(diff_ids))
            .collect();
        for image_id in &pruned {
            let is_head = images
                .children_of
                .get(image_id)
                .is_none_or(BTreeSet::is_empty);
            let reason = if is_head {
                "no tag, no container and no child image"
            } else {
                "an untagged parent of a pruned image, with no container and no other child"
            };
            self.plan.items.push(GarbageItem {
                kind: GarbageKind::DanglingImage,
                name: image_id.clone(),
                reason: reason.to_string(),
                size: 0,
                target: Target::Image {
                    image_id: image_id.clone(),
                    digest_references: images.digests_of.get(image_id).cloned().unwrap_or_default(),
                },
            });
        }
        let depth = |chain_id: &String| {
            let mut n = 0usize;
            let mut cursor = layers.parents.get(chain_id);
            while let Some(parent) = cursor {
                n += 1;
                if n > layers.parents.len() {
                    break;
                }
                cursor = layers.parents.get(parent);
            }
            n
        };
        let mut unused_sorted: Vec<&String> = unused.iter().collect();
        unused_sorted.sort_by(|a, b| depth(b).cmp(&depth(a)).then(a.cmp(b)));
        let mut removed_dirs: BTreeSet<String> = BTreeSet::new();
        for chain_id in unused_sorted {
            let layer = &layers.loaded[chain_id];
            let dir = self.root.overlay_dir(&layer.cache_id);
            let own_link = fsutil::read_optional(&dir.join("link"))?
                .map(|text| text.trim().to_string())
                .unwrap_or_default();
            let extra_links = links_to(&links, &layer.cache_id)
                .into_iter()
                .filter(|link| link.name != own_link)
                .collect();
            let reason = if pruned_chains.contains(chain_id) {
                "only images pruned here used it"
            } else {
                "no image and no container uses it"
            };
            removed_dirs.insert(layer.cache_id.clone());
            self.plan.items.push(GarbageItem {
                kind: GarbageKind::UnusedLayer,
                name: chain_id.clone(),
                reason: reason.to_string(),
                size: u64::try_from(layer.size).unwrap_or(0),
                target: Target::Layer {
                    chain_id: chain_id.clone(),
                    extra_links,
                },
            });
        }
        let loaded_dirs: BTreeSet<&String> = layers
            .loaded
            .values()
            .map(|layer| &layer.cache_id)
            .collect();

        for (marker, cache_id) in &layers.markers {
            let marker_path = Path::new(LAYERDB_SHA256).join(marker);
            let facts = self
                .below
                .measure(LAYERDB_SHA256, marker, Crossing::Refuse)?;
            if let Some(mount) = facts.mount {
                self.leave(
                    marker_path,
                    format!("a file system is mounted at {}", mount.display()),
                );
                continue;
            }
            let mut size = facts.size;
            let mut reason = "a layer removal that was cut short".to_string();
            let mut layer_dir = None;
            let mut marker_links = Vec::new();
            if let Some(id) = cache_id {
                let exists = fs::symlink_metadata(self.root.overlay_dir(id)).is_ok();
                if !exists {
                    reason.push_str(&format!(" (its overlay2 dir {id} is already gone)"));
                } else if held_dirs.contains(id) || loaded_dirs.contains(id) {
                    reason.push_str(&format!(
                        " (its overlay2 dir {id} is in use by a layer or container and stays)"
                    ));
                } else if let Some(why) = self.dirs_unknown.clone() {
                    self.leave(
                        marker_path,
                        format!(
                            "a layer removal that was cut short, left with its overlay2 dir \
                             {id} because {why}"
                        ),
                    );
                    continue;
                } else {
                    let dir_facts = self.below.measure(OVERLAY_HOME, id, Crossing::Refuse)?;
                    if let Some(mount) = dir_facts.mount {
                        self.leave(
                            marker_path,
                            format!(
                                "its overlay2 dir {id} has a file system mounted at {}",
                                mount.display()
                            ),
                        );
                        continue;
                    }
                    marker_links = links_to(&links, id);
                    size += dir_facts.size
                        + marker_links
                            .iter()
                            .map(|link| links[&link.name].size)
                            .sum::<u64>();
                    reason.push_str(&format!(", with its overlay2 dir {id}"));
                    removed_dirs.insert(id.clone());
                    layer_dir = Some(id.clone());
                }
            }
            self.plan.items.push(GarbageItem {
                kind: GarbageKind::InterruptedRemoval,
                name: path_text(&marker_path),
                reason,
                size,
                target: Target::Removal {
                    marker: marker.clone(),
                    layer_dir,
                    links: marker_links,
                },
            });
        }

        self.plan_write_sets()?;
        self.plan_orphan_dirs(&links, &held_dirs, &loaded_dirs, &mut removed_dirs)?;
        self.plan_dangling_links(&links, &removed_dirs)?;
        Ok(())
    }

    fn leave(&mut self, path: impl Into<PathBuf>, reason: impl Into<String>) {
        self.plan.left_alone.push(LeftAlone {
            path: path.into(),
            reason: reason.into(),
        });
    }

    /// `overlay2/l`: every symlink, with the layer dir of a `../<id>/diff` target.
    fn scan_links(&mut self) -> Result<BTreeMap<String, LinkInfo>> {
        let dir = self.root.root.join(LINKS);
        let mut links = BTreeMap::new();
        for name in sorted_names(&dir)? {
            let rel = Path::new(LINKS).join(&name);
            let path = dir.join(&name);
            let meta = match fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(err) => return Err(fsutil::io_error("reading", &path)(err)),
            };
            if !meta.file_type().is_symlink() {
                self.leave(rel, "not a symlink; only links to layer dirs belong in l/");
                continue;
            }
            let target = fs::read_link(&path).map_err(fsutil::io_error("reading link", &path))?;
            let dir_id = target.to_str().and_then(|text| {
                let id = text.strip_prefix("../")?.strip_suffix("/diff")?;
                is_layer_dir_id(id).then(|| id.to_string())
            });
            if dir_id.is_none() {
                self.leave(
                    rel,
                    format!("its target {} is not ../<layer dir>/diff", target.display()),
                );
            }
            links.insert(
                name,
                LinkInfo {
                    target,
                    dir: dir_id,
                    size: meta.len(),
                },
            );
        }
        Ok(links)
    }

    /// `layerdb/sha256`: loaded layers, entries that do not load, removal markers.
    fn scan_layerdb(&mut self) -> Result<LayerScan> {
        let mut scan = LayerScan {
            loaded: self
                .root
                .layers()?
                .into_iter()
                .map(|layer| (layer.chain_id.clone(), layer))
                .collect(),
            ..LayerScan::default()
        };
        let dir = self.root.root.join(LAYERDB_SHA256);
        for name in sorted_names(&dir)? {
            let rel = Path::new(LAYERDB_SHA256).join(&name);
            let path = dir.join(&name);
            let is_dir = fs::symlink_metadata(&path).is_ok_and(|meta| meta.is_dir());
            let is_marker =
                name.ends_with(REMOVING_SUFFIX) && name.split('-').next().is_some_and(is_hex64);
            if !is_dir || !(is_hex64(&name) || is_marker) {
                self.leave(rel, "not a layer entry Docker 20.10 or ovl writes");
                continue;
            }
            let read_id = |file: &str, valid: fn(&str) -> bool| -> Result<Option<String>> {
                Ok(fsutil::read_optional(&path.join(file))?
                    .map(|text| text.trim().to_string())
                    .filter(|text| valid(text)))
            };
            if is_marker {
                scan.markers
                    .push((name.clone(), read_id("cache-id", is_layer_dir_id)?));
                continue;
            }
            let chain_id = format!("sha256:{name}");
            if let Some(layer) = scan.loaded.get(&chain_id) {
                if let Some(parent) = &layer.parent {
                    scan.parents.insert(chain_id, parent.clone());
                }
                continue;
            }
            if let Some(parent) = read_id("parent", is_digest)? {
                scan.parents.insert(chain_id.clone(), parent);
            }
            scan.broken.insert(chain_id);
            match read_id("cache-id", is_layer_dir_id)? {
                Some(cache_id) => {
                    scan.broken_dirs.insert(cache_id);
                    self.leave(rel, "a layer entry that does not load (ovl fsck tells why)");
                }
                None => {
                    let why = format!("layer entry {} names no valid cache-id", rel.display());
                    self.dirs_unknown.get_or_insert(why);
                    self.leave(
                        rel,
                        "a layer entry that does not load and names no valid cache-id",
                    );
                }
            }
        }
        Ok(scan)
    }

    /// `layerdb/mounts`: the container layers' entries.
    fn scan_mounts(&mut self) -> Result<Vec<MountsEntry>> {
        let dir = self.root.root.join(LAYERDB_MOUNTS);
        let mut entries = Vec::new();
        for name in sorted_names(&dir)? {
            let rel = Path::new(LAYERDB_MOUNTS).join(&name);
            let is_dir = fs::symlink_metadata(dir.join(&name)).is_ok_and(|meta| meta.is_dir());
            if !is_dir || !is_hex64(&name) {
                self.leave(rel, "not a mounts entry Docker 20.10 or ovl writes");
                continue;
            }
            let problem = match self.root.mounts_entry(&name) {
                Ok(Some(entry)) => {
                    let record = self.root.root.join(CONTAINERS).join(&name);
                    if fs::symlink_metadata(record.join("config.v2.json")).is_err() {
                        // Docker and ovl write the mounts entry before the record: a creation cut
                        // short. Its layer dirs stay in use until someone decides.
                        self.leave(
                            rel,
                            "a container layer without a container record (a creation cut short)",
                        );
                    }
                    entries.push(entry);
                    continue;
                }
                Ok(None) => "it has no mount-id".to_string(),
                Err(err) => err.to_string(),
            };
            let why = format!("mounts entry {} does not load: {problem}", rel.display());
            self.dirs_unknown.get_or_insert(why.clone());
            self.layers_unknown.get_or_insert(why);
            self.leave(rel, format!("a mounts entry that does not load: {problem}"));
        }
        Ok(entries)
    }

    fn scan_images(&mut self, layers: &LayerScan) -> Result<ImageScan> {
        let mut scan = ImageScan::default();
        for image_id in self.root.images()? {
            let hex = image_id.trim_start_matches("sha256:");
            match self.root.image_config(&image_id) {
                Ok(config) => {
                    let complete = ids::chain_ids(&config.rootfs.diff_ids)
                        .last()
                        .is_none_or(|top| layers.loaded.contains_key(top));
                    if complete {
                        scan.loaded.insert(image_id.clone());
                    } else {
                        self.leave(
                            Path::new(IMAGEDB).join("content/sha256").join(hex),
                            format!("image {image_id} misses layers, so Docker does not load it"),
                        );
                    }
                    scan.configs
                        .insert(image_id.clone(), config.rootfs.diff_ids);
                }
                Err(err) => {
                    let why = format!("image config {image_id} does not load: {err}");
                    self.layers_unknown.get_or_insert(why);
                    self.leave(
                        Path::new(IMAGEDB).join("content/sha256").join(hex),
                        format!("an image config that does not load: {err}"),
                    );
                }
            }
            match self.root.image_parent(&image_id) {
                Ok(Some(parent)) => {
                    let parent = if parent.starts_with("sha256:") {
                        parent
                    } else {
                        format!("sha256:{parent}")
                    };
                    scan.children_of
                        .entry(parent.clone())
                        .or_default()
                        .insert(image_id.clone());
                    scan.parent_of.insert(image_id.clone(), parent);
                }
                Ok(None) => {}
                Err(err) => {
                    let why = format!("the parent of image {image_id} cannot be read: {err}");
                    self.images_unknown.get_or_insert(why);
                }
            }
        }
        match self.root.references() {
            Ok(references) => {
                for (name, image_id) in references {
                    let list = if name.contains('@') {
                        &mut scan.digests_of
                    } else {
                        &mut scan.tags_of
                    };
                    list.entry(image_id).or_default().push(name);
                }
            }
            Err(err) => {
                let why = format!("repositories.json does not load: {err}");
                self.images_unknown.get_or_insert(why);
            }
        }
        let records = self.root.containers()?;
        let n_dirs = fsutil::hex64_entries(&self.root.root.join(CONTAINERS))?.len();
        if records.len() != n_dirs {
            let why = format!(
                "{} container records cannot be read",
                n_dirs.saturating_sub(records.len())
            );
            self.images_unknown.get_or_insert(why);
        }
        for record in records {
            *scan.n_containers_of.entry(record.image_id).or_default() += 1;
        }
        Ok(scan)
    }

    /// The images `docker image prune` removes (moby daemon/images/image_prune.go `ImagesPrune`
    /// and image_delete.go `imageDeleteHelper`), children before parents: images without a tag,
    /// a container or a child image; then, as each one goes, its parent when that has no
    /// reference at all, no container and no child left.
    fn dangling_images(&mut self, images: &ImageScan) -> Vec<String> {
        if let Some(why) = self.images_unknown.clone() {
            let reason = format!("dangling images are not pruned because {why}");
            self.leave(IMAGEDB, reason);
            return Vec::new();
        }
        let no_containers = |id: &String| images.n_containers_of.get(id).is_none_or(|n| *n == 0);
        let no_tags = |id: &String| images.tags_of.get(id).is_none_or(Vec::is_empty);
        let no_digests = |id: &String| images.digests_of.get(id).is_none_or(Vec::is_empty);
        let mut pruned = BTreeSet::new();
        let mut order = Vec::new();
        let mut work = VecDeque::new();
        for image_id in &images.loaded {
            let no_children = images
                .children_of
                .get(image_id)
                .is_none_or(BTreeSet::is_empty);
            if no_children && no_tags(image_id) && no_containers(image_id) {
                pruned.insert(image_id.clone());
                order.push(image_id.clone());
                work.push_back(image_id.clone());
            }
        }
        while let Some(image_id) = work.pop_front() {
            let Some(parent) = images.parent_of.get(&image_id) else {
                continue;
            };
            let children_gone = images
                .children_of
                .get(parent)
                .is_none_or(|children| children.iter().all(|child| pruned.contains(child)));
            if !pruned.contains(parent)
                && images.loaded.contains(parent)
                && no_tags(parent)
                && no_digests(parent)
                && no_containers(parent)
                && children_gone
            {
                pruned.insert(parent.clone());
                order.push(parent.clone());
                work.push_back(parent.clone());
            }
        }
        order
    }

    /// The loaded layers no remaining image, container, entry that does not load or kept layer dir
    /// needs.
    fn unused_layers(
        &mut self,
        layers: &LayerScan,
        mounts: &[MountsEntry],
        images: &ImageScan,
        pruned: &[String],
        links: &BTreeMap<String, LinkInfo>,
    ) -> Result<BTreeSet<String>> {
        let pruned: BTreeSet<&String> = pruned.iter().collect();
        let mut keep: BTreeSet<String> = BTreeSet::new();
        for (image_id, diff_ids) in &images.configs {
            if !pruned.contains(image_id) {
                keep.extend(ids::chain_ids(diff_ids));
            }
        }
        keep.extend(mounts.iter().filter_map(|entry| entry.parent.clone()));
        keep.extend(
            layers
                .broken
                .iter()
                .filter_map(|chain_id| layers.parents.get(chain_id).cloned()),
        );
        let mut mounted_checked: BTreeMap<String, Option<PathBuf>> = BTreeMap::new();
        loop {
            close_under_parents(&mut keep, &layers.parents);
            let unused: BTreeSet<String> = if self.layers_unknown.is_some() {
                BTreeSet::new()
            } else {
                layers
                    .loaded
                    .keys()
                    .filter(|chain_id| !keep.contains(*chain_id))
                    .cloned()
                    .collect()
            };
            let mut base: BTreeSet<String> = layers
                .loaded
                .iter()
                .filter(|(chain_id, _)| !unused.contains(*chain_id))
                .map(|(_, layer)| layer.cache_id.clone())
                .collect();
            base.extend(layers.broken_dirs.iter().cloned());
            for entry in mounts {
                base.insert(entry.mount_id.clone());
                base.extend(entry.init_id.clone());
            }
            let held = self.close_under_lowers(base, links)?;
            if let Some(why) = self.layers_unknown.clone() {
                if !unused.is_empty() {
                    // Learned while closing over the lower files: plan again with nothing unused.
                    continue;
                }
                let reason = format!("unused layers are not removed because {why}");
                self.leave("image/overlay2/layerdb", reason);
                return Ok(unused);
            }
            let mut changed = false;
            for chain_id in &unused {
                let cache_id = &layers.loaded[chain_id].cache_id;
                if held.contains(cache_id) {
                    keep.insert(chain_id.clone());
                    changed = true;
                    continue;
                }
                if !mounted_checked.contains_key(cache_id) {
                    let facts = self
                        .below
                        .measure(OVERLAY_HOME, cache_id, Crossing::Refuse)?;
                    mounted_checked.insert(cache_id.clone(), facts.mount);
                }
                if let Some(mount) = &mounted_checked[cache_id] {
                    keep.insert(chain_id.clone());
                    changed = true;
                    let reason = format!(
                        "layer {chain_id} is unused, but a file system is mounted at {}",
                        mount.display()
                    );
                    self.leave(Path::new(OVERLAY_HOME).join(cache_id), reason);
                }
            }
            if !changed {
                return Ok(unused);
            }
        }
    }

    /// `base` and every layer dir the `lower` files of the dirs in it reach through `l/` links.
    fn close_under_lowers(
        &mut self,
        base: BTreeSet<String>,
        links: &BTreeMap<String, LinkInfo>,
    ) -> Result<BTreeSet<String>> {
        let mut held = BTreeSet::new();
        let mut work: Vec<String> = base.into_iter().collect();
        while let Some(id) = work.pop() {
            if !held.insert(id.clone()) {
                continue;
            }
            if fs::symlink_metadata(self.root.overlay_dir(&id)).is_err() {
                continue;
            }
            match self.root.lower_entries(&id) {
                Ok(entries) => {
                    for entry in entries {
                        let lid = entry.trim_start_matches("l/");
                        if let Some(dir) = links.get(lid).and_then(|link| link.dir.clone()) {
                            work.push(dir);
                        }
                    }
                }
                Err(err) => {
                    let why = format!("the lower file of overlay2 dir {id} does not load: {err}");
                    self.dirs_unknown.get_or_insert(why.clone());
                    self.layers_unknown.get_or_insert(why);
                }
            }
        }
        Ok(held)
    }

    fn plan_write_sets(&mut self) -> Result<()> {
        let dir = self.root.root.join(LAYERDB_TMP);
        for name in sorted_names(&dir)? {
            let rel = Path::new(LAYERDB_TMP).join(&name);
            let is_dir = fs::symlink_metadata(dir.join(&name)).is_ok_and(|meta| meta.is_dir());
            if !is_dir || !name.starts_with(WRITE_SET_PREFIX) {
                self.leave(rel, "not a layerdb staging dir Docker 20.10 or ovl writes");
                continue;
            }
            let facts = self.below.measure(LAYERDB_TMP, &name, Crossing::Refuse)?;
            if let Some(mount) = facts.mount {
                self.leave(
                    rel,
                    format!("a file system is mounted at {}", mount.display()),
                );
                continue;
            }
            self.plan.items.push(GarbageItem {
                kind: GarbageKind::WriteSet,
                name: path_text(&rel),
                reason: "a layer registration that never committed".to_string(),
                size: facts.size,
                target: Target::WriteSet { name },
            });
        }
        Ok(())
    }

    fn plan_orphan_dirs(
        &mut self,
        links: &BTreeMap<String, LinkInfo>,
        held: &BTreeSet<String>,
        loaded_dirs: &BTreeSet<&String>,
        removed_dirs: &mut BTreeSet<String>,
    ) -> Result<()> {
        let dir = self.root.root.join(OVERLAY_HOME);
        for name in sorted_names(&dir)? {
            if name == "l" {
                continue;
            }
            let rel = Path::new(OVERLAY_HOME).join(&name);
            let is_dir = fs::symlink_metadata(dir.join(&name)).is_ok_and(|meta| meta.is_dir());
            if !is_dir || !is_layer_dir_id(&name) {
                self.leave(rel, "not a layer dir Docker 20.10 or ovl makes");
                continue;
            }
            if held.contains(&name) || loaded_dirs.contains(&name) || removed_dirs.contains(&name) {
                continue;
            }
            if let Some(why) = self.dirs_unknown.clone() {
                let reason = format!("no layer and no container names it, but {why}");
                self.leave(rel, reason);
                continue;
            }
            let facts = self.below.measure(OVERLAY_HOME, &name, Crossing::Refuse)?;
            if let Some(mount) = facts.mount {
                self.leave(
                    rel,
                    format!("a file system is mounted at {}", mount.display()),
                );
                continue;
            }
            let dir_links = links_to(links, &name);
            let size = facts.size
                + dir_links
                    .iter()
                    .map(|link| links[&link.name].size)
                    .sum::<u64>();
            removed_dirs.insert(name.clone());
            self.plan.items.push(GarbageItem {
                kind: GarbageKind::OrphanLayerDir,
                name: path_text(&rel),
                reason: "no layer and no container uses it".to_string(),
                size,
                target: Target::LayerDir {
                    id: name,
                    links: dir_links,
                },
            });
        }
        Ok(())
    }

    /// Links whose layer dir does not exist, unless a remaining dir names them in its `link` or
    /// `lower` file.
    fn plan_dangling_links(
        &mut self,
        links: &BTreeMap<String, LinkInfo>,
        removed_dirs: &BTreeSet<String>,
    ) -> Result<()> {
        let home = self.root.root.join(OVERLAY_HOME);
        let mut named: BTreeMap<String, String> = BTreeMap::new();
        for name in sorted_names(&home)? {
            if name == "l" || removed_dirs.contains(&name) {
                continue;
            }
            let dir = home.join(&name);
            if !fs::symlink_metadata(&dir).is_ok_and(|meta| meta.is_dir()) {
                continue;
            }
            let mut names: Vec<String> = Vec::new();
            if let Some(link) = fsutil::read_optional(&dir.join("link"))? {
                names.push(link.trim().to_string());
            }
            if let Some(lower) = fsutil::read_optional(&dir.join("lower"))? {
                names.extend(
                    lower
                        .trim()
                        .split(':')
                        .map(|entry| entry.trim_start_matches("l/").to_string()),
                );
            }
            for link in names {
                named.entry(link).or_insert_with(|| name.clone());
            }
        }
        for (name, info) in links {
            let Some(dir) = &info.dir else {
                continue;
            };
            if fs::symlink_metadata(home.join(dir)).is_ok() {
                continue;
            }
            let rel = Path::new(LINKS).join(name);
            if let Some(owner) = named.get(name) {
                let reason = format!("its dir {dir} is gone, but overlay2/{owner} names it");
                self.leave(rel, reason);
                continue;
            }
            self.plan.items.push(GarbageItem {
                kind: GarbageKind::DanglingLink,
                name: path_text(&rel),
                reason: format!("its layer dir {dir} is gone"),
                size: info.size,
                target: Target::Link(PlannedLink {
                    name: name.clone(),
                    target: info.target.clone(),
                }),
            });
        }
        Ok(())
    }
}

/// Adds every ancestor (by the entries' `parent` files) of the ChainIDs in `keep`.
fn close_under_parents(keep: &mut BTreeSet<String>, parents: &BTreeMap<String, String>) {
    let mut work: Vec<String> = keep.iter().cloned().collect();
    while let Some(chain_id) = work.pop() {
        if let Some(parent) = parents.get(&chain_id) {
            if keep.insert(parent.clone()) {
                work.push(parent.clone());
            }
        }
    }
}

/// The `l/` links pointing at layer dir `id`.
fn links_to(links: &BTreeMap<String, LinkInfo>, id: &str) -> Vec<PlannedLink> {
    links
        .iter()
        .filter(|(_, info)| info.dir.as_deref() == Some(id))
        .map(|(name, info)| PlannedLink {
            name: name.clone(),
            target: info.target.clone(),
        })
        .collect()
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The names in `dir`, sorted; a missing `dir` has none. Names that are not UTF-8 are reported by
/// the callers' checks as unknown (their lossy form never matches an id).
fn sorted_names(dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(fsutil::io_error("listing", dir)(err)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(fsutil::io_error("listing", dir))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AppliedLayer, ContainerRecord, Reference};
    use std::os::unix::fs::symlink;

    /// A fresh data root in a temp dir.
    fn new_root() -> (tempfile::TempDir, DataRoot) {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = DataRoot::open_or_create(&dir.path().join("root")).expect("data root");
        (dir, root)
    }

    /// Registers a layer holding `files`; its DiffID is a digest of `tag` (the content is not a
    /// tar here, only the store's bookkeeping matters).
    fn add_layer(
        root: &DataRoot,
        parent: Option<&Layer>,
        tag: &str,
        files: &[(&str, &[u8])],
    ) -> Layer {
        root.register_layer(
            parent,
            &mut |diff: &Path, _tar_split: &mut dyn std::io::Write| {
                for (name, bytes) in files {
                    fs::write(diff.join(name), bytes)?;
                }
                Ok(AppliedLayer {
                    diff_id: ids::sha256_digest(tag.as_bytes()),
                    size: files.iter().map(|(_, bytes)| bytes.len() as i64).sum(),
                })
            },
        )
        .expect("register layer")
    }

    fn add_image(root: &DataRoot, layers: &[&Layer], created: &str) -> String {
        let diff_ids: Vec<&str> = layers.iter().map(|layer| layer.diff_id.as_str()).collect();
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux", "created": created, "config": {},
            "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": []
        });
        root.put_image(&serde_json::to_vec(&config).expect("json"))
            .expect("put image")
    }

    fn tag(root: &DataRoot, name: &str, image_id: &str) {
        root.add_reference(&Reference::parse(name).expect("ref"), image_id)
            .expect("tag");
    }

    /// A container of `image_id` on `top` with an init dir and a container dir, as run-rootfs
    /// makes them.
    fn add_container(root: &DataRoot, image_id: &str, top: &Layer) -> MountsEntry {
        let container_id = ids::random_id().expect("id");
        let mount_id = ids::random_id().expect("id");
        let init_id = format!("{mount_id}-init");
        root.create_overlay_dir(&init_id, Some(&top.cache_id))
            .expect("init dir");
        root.create_overlay_dir(&mount_id, Some(&init_id))
            .expect("container dir");
        let entry = MountsEntry {
            container_id: container_id.clone(),
            mount_id,
            init_id: Some(init_id),
            parent: Some(top.chain_id.clone()),
        };
        root.write_mounts_entry(&entry).expect("mounts entry");
        root.write_container(&ContainerRecord {
            id: container_id,
            name: "c".into(),
            image_id: image_id.to_string(),
            created: "2026-01-01T00:00:00Z".into(),
            path: "/bin/sh".into(),
            args: vec![],
            config: serde_json::json!({}),
            running: false,
            state: Default::default(),
        })
        .expect("record");
        entry
    }

    fn kinds_and_names(plan: &GcPlan) -> Vec<(GarbageKind, String)> {
        plan.items
            .iter()
            .map(|item| (item.kind, item.name.clone()))
            .collect()
    }

    /// `../<id>/diff`, the target of every `l/` link (spec §2.1).
    fn link_len(id: &str) -> u64 {
        format!("../{id}/diff").len() as u64
    }

    /// A tagged image with a container, used by most tests.
    fn base(root: &DataRoot) -> (Layer, String, MountsEntry) {
        let layer = add_layer(root, None, "base", &[("a", b"12345")]);
        let image = add_image(root, &[&layer], "2026-01-01T00:00:00Z");
        tag(root, "base:1", &image);
        let container = add_container(root, &image, &layer);
        (layer, image, container)
    }

    #[test]
    fn clean_root_has_no_garbage() {
        let (_dir, root) = new_root();
        base(&root);
        let plan = root.plan_gc().expect("plan");
        assert_eq!(kinds_and_names(&plan), vec![]);
        assert_eq!(plan.left_alone, vec![]);
        assert_eq!(plan.total_size(), 0);
    }

    #[test]
    fn leftovers_are_found_with_their_sizes() {
        let (_dir, root) = new_root();
        base(&root);
        let home = root.overlay_home();
        let sha = root.root().join(LAYERDB_SHA256);

        // A write-set with one 10-byte file.
        let write_set = root.root().join(LAYERDB_TMP).join("write-set-123");
        fs::create_dir(&write_set).expect("mkdir");
        fs::write(write_set.join("diff"), b"sha256:abc").expect("write");

        // An interrupted removal: the renamed entry and the layer dir its cache-id names, with a
        // 3-byte file.
        let removed_id = "c".repeat(64);
        root.create_overlay_dir(&removed_id, None).expect("dir");
        fs::write(home.join(&removed_id).join("diff/f"), b"xyz").expect("write");
        let marker = format!("{}-{}-removing", "d".repeat(64), "e".repeat(64));
        fs::create_dir(sha.join(&marker)).expect("mkdir");
        fs::write(sha.join(&marker).join("cache-id"), &removed_id).expect("write");

        // An orphan dir with a 4-byte file, and a dangling link.
        let orphan_id = "f".repeat(64);
        root.create_overlay_dir(&orphan_id, None).expect("dir");
        fs::write(home.join(&orphan_id).join("diff/g"), b"1234").expect("write");
        let gone = "a".repeat(64);
        symlink(
            format!("../{gone}/diff"),
            home.join("l/DANGLINGDANGLINGDANGLING22"),
        )
        .expect("link");

        let plan = root.plan_gc().expect("plan");
        assert_eq!(
            kinds_and_names(&plan),
            vec![
                (
                    GarbageKind::InterruptedRemoval,
                    format!("{LAYERDB_SHA256}/{marker}")
                ),
                (
                    GarbageKind::WriteSet,
                    format!("{LAYERDB_TMP}/write-set-123")
                ),
                (GarbageKind::OrphanLayerDir, format!("overlay2/{orphan_id}")),
                (
                    GarbageKind::DanglingLink,
                    "overlay2/l/DANGLINGDANGLINGDANGLING22".to_string()
                ),
            ]
        );
        // Sizes by Docker's directory.Size rule: file sizes, the 26-byte `link` file, the link's
        // target length; directories count nothing.
        let sizes: Vec<u64> = plan.items.iter().map(|item| item.size).collect();
        assert_eq!(
            sizes,
            vec![
                64 + 26 + 3 + link_len(&removed_id),
                10,
                26 + 4 + link_len(&orphan_id),
                link_len(&gone),
            ]
        );
        assert_eq!(plan.total_size(), sizes.iter().sum::<u64>());
        assert_eq!(plan.left_alone, vec![]);
    }

    #[test]
    fn dangling_images_follow_docker_image_prune() {
        let (_dir, root) = new_root();
        let (base_layer, base_image, _) = base(&root);
        // An untagged child of the tagged base: dangling.
        let child_layer = add_layer(&root, Some(&base_layer), "child", &[("b", b"1234567")]);
        let child = add_image(&root, &[&base_layer, &child_layer], "2026-01-02T00:00:00Z");
        root.set_image_parent(&child, &base_image).expect("parent");
        // An untagged intermediate with an untagged head on it: both go, the head first.
        let mid_layer = add_layer(&root, Some(&base_layer), "mid", &[("m", b"mm")]);
        let mid = add_image(&root, &[&base_layer, &mid_layer], "2026-01-03T00:00:00Z");
        let head_layer = add_layer(&root, Some(&mid_layer), "head", &[("h", b"hhh")]);
        let head = add_image(
            &root,
            &[&base_layer, &mid_layer, &head_layer],
            "2026-01-04T00:00:00Z",
        );
        root.set_image_parent(&head, &mid).expect("parent");
        // An untagged image a container uses, and an untagged intermediate under a tagged image:
        // both stay.
        let used_layer = add_layer(&root, None, "used", &[("u", b"u")]);
        let used = add_image(&root, &[&used_layer], "2026-01-05T00:00:00Z");
        add_container(&root, &used, &used_layer);
        let below_tag = add_image(&root, &[&base_layer], "2026-01-06T00:00:00Z");
        let tagged = add_image(&root, &[&base_layer], "2026-01-07T00:00:00Z");
        root.set_image_parent(&tagged, &below_tag).expect("parent");
        tag(&root, "tagged:1", &tagged);

        let plan = root.plan_gc().expect("plan");
        let mut images: Vec<String> = plan
            .items
            .iter()
            .filter(|item| item.kind == GarbageKind::DanglingImage)
            .map(|item| item.name.clone())
            .collect();
        let head_at = images
            .iter()
            .position(|id| *id == head)
            .expect("head pruned");
        let mid_at = images.iter().position(|id| *id == mid).expect("mid pruned");
        assert!(
            head_at < mid_at,
            "a child goes before its parent: {images:?}"
        );
        images.sort();
        let mut expected = vec![child.clone(), mid.clone(), head.clone()];
        expected.sort();
        assert_eq!(images, expected);
        // Their own layers go too, children first; the base layer stays.
        let layers: Vec<(String, u64)> = plan
            .items
            .iter()
            .filter(|item| item.kind == GarbageKind::UnusedLayer)
            .map(|item| (item.name.clone(), item.size))
            .collect();
        let head_at = layers.iter().position(|(id, _)| *id == head_layer.chain_id);
        let mid_at = layers.iter().position(|(id, _)| *id == mid_layer.chain_id);
        assert!(head_at < mid_at, "{layers:?}");
        let mut layers = layers;
        layers.sort();
        let mut expected = vec![
            (child_layer.chain_id.clone(), 7),
            (mid_layer.chain_id.clone(), 2),
            (head_layer.chain_id.clone(), 3),
        ];
        expected.sort();
        assert_eq!(layers, expected);
        assert_eq!(plan.total_size(), 12);
    }

    #[test]
    fn layers_no_image_or_container_needs_are_unused() {
        let (_dir, root) = new_root();
        let (base_layer, _, _) = base(&root);
        // A chain of two layers no image names, on the base layer; and a layer only a container
        // without image (a mounts entry) names.
        let lone = add_layer(&root, Some(&base_layer), "lone", &[("x", b"xx")]);
        let lone_top = add_layer(&root, Some(&lone), "lone-top", &[("y", b"yyy")]);
        let held = add_layer(&root, None, "held", &[("z", b"z")]);
        let mount_id = ids::random_id().expect("id");
        root.create_overlay_dir(&mount_id, Some(&held.cache_id))
            .expect("dir");
        root.write_mounts_entry(&MountsEntry {
            container_id: "9".repeat(63) + "a",
            mount_id,
            init_id: None,
            parent: Some(held.chain_id.clone()),
        })
        .expect("mounts");
        let plan = root.plan_gc().expect("plan");
        assert_eq!(
            kinds_and_names(&plan),
            vec![
                (GarbageKind::UnusedLayer, lone_top.chain_id.clone()),
                (GarbageKind::UnusedLayer, lone.chain_id.clone()),
            ]
        );
        assert_eq!(plan.total_size(), 5);
    }

    #[test]
    fn a_container_layer_without_record_is_kept_and_named() {
        let (_dir, root) = new_root();
        let (base_layer, image, _) = base(&root);
        let entry = add_container(&root, &image, &base_layer);
        fs::remove_dir_all(root.root().join(CONTAINERS).join(&entry.container_id)).expect("rm");
        let plan = root.plan_gc().expect("plan");
        assert_eq!(kinds_and_names(&plan), vec![]);
        assert_eq!(
            plan.left_alone
                .iter()
                .map(|left| path_text(&left.path))
                .collect::<Vec<_>>(),
            vec![format!("{LAYERDB_MOUNTS}/{}", entry.container_id)]
        );
    }

    #[test]
    fn a_dir_a_kept_lower_file_reaches_is_not_an_orphan() {
        let (_dir, root) = new_root();
        let (_, _, container) = base(&root);
        // The init dir of the container loses its place in the mounts entry: the container
        // layer's `lower` still reaches it, so it stays.
        let init_id = container.init_id.clone().expect("init");
        let entry_dir = root
            .root()
            .join(LAYERDB_MOUNTS)
            .join(&container.container_id);
        fs::remove_file(entry_dir.join("init-id")).expect("rm");
        let plan = root.plan_gc().expect("plan");
        assert_eq!(kinds_and_names(&plan), vec![]);
        assert!(root.overlay_dir(&init_id).is_dir());
    }

    #[test]
    fn what_cannot_be_read_blocks_removals_of_its_kind() {
        let (_dir, root) = new_root();
        let (base_layer, _, _) = base(&root);
        let lone = add_layer(&root, Some(&base_layer), "lone", &[("x", b"xx")]);
        let orphan_id = "f".repeat(64);
        root.create_overlay_dir(&orphan_id, None).expect("dir");
        // An image config that no longer hashes to its name: it may need `lone`.
        let broken = add_image(&root, &[&base_layer, &lone], "2026-01-02T00:00:00Z");
        let content = root
            .root()
            .join("image/overlay2/imagedb/content/sha256")
            .join(broken.trim_start_matches("sha256:"));
        let mut bytes = fs::read(&content).expect("read");
        bytes.push(b' ');
        fs::write(&content, bytes).expect("write");
        // A mounts entry without mount-id: it may own the orphan dir.
        let mounts = root.root().join(LAYERDB_MOUNTS).join("7".repeat(64));
        fs::create_dir(&mounts).expect("mkdir");
        // Names nobody writes.
        fs::create_dir(root.root().join(LAYERDB_TMP).join("mystery")).expect("mkdir");
        fs::write(root.overlay_home().join("notes.txt"), b"x").expect("write");

        let plan = root.plan_gc().expect("plan");
        assert_eq!(kinds_and_names(&plan), vec![]);
        let left: Vec<String> = plan
            .left_alone
            .iter()
            .map(|left| path_text(&left.path))
            .collect();
        for expected in [
            "image/overlay2/layerdb".to_string(),
            format!("{LAYERDB_MOUNTS}/{}", "7".repeat(64)),
            format!("{LAYERDB_TMP}/mystery"),
            "overlay2/notes.txt".to_string(),
            format!("overlay2/{orphan_id}"),
        ] {
            assert!(left.contains(&expected), "{expected} not in {left:?}");
        }
        assert!(root.layer(&lone.chain_id).expect("read").is_some());
    }

    #[test]
    fn symlinks_are_never_followed() {
        let (dir, root) = new_root();
        base(&root);
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).expect("mkdir");
        fs::write(outside.join("precious"), b"keep me").expect("write");
        // A write-set that is a symlink is left alone; a real one holding a symlink to the outside
        // is removed without touching what the symlink points at.
        let tmp = root.root().join(LAYERDB_TMP);
        symlink(&outside, tmp.join("write-set-1")).expect("link");
        fs::create_dir(tmp.join("write-set-2")).expect("mkdir");
        symlink(&outside, tmp.join("write-set-2/escape")).expect("link");
        let plan = root.plan_gc().expect("plan");
        assert_eq!(
            kinds_and_names(&plan),
            vec![(GarbageKind::WriteSet, format!("{LAYERDB_TMP}/write-set-2"))]
        );
        assert_eq!(
            plan.left_alone
                .iter()
                .map(|left| path_text(&left.path))
                .collect::<Vec<_>>(),
            vec![format!("{LAYERDB_TMP}/write-set-1")]
        );
        root.execute_gc(&plan, &mut |_| {}).expect("execute");
        assert_eq!(
            fs::read(outside.join("precious")).expect("read"),
            b"keep me"
        );
        assert!(fs::symlink_metadata(tmp.join("write-set-1")).is_ok());
        assert!(fs::symlink_metadata(tmp.join("write-set-2")).is_err());

        // A symlink in the layout itself refuses the whole plan.
        let links = root.overlay_home().join("l");
        fs::rename(&links, dir.path().join("moved-l")).expect("mv");
        symlink(dir.path().join("moved-l"), &links).expect("link");
        let err = root.plan_gc().expect_err("a symlinked l/ must be refused");
        assert!(err.to_string().contains("symlink"), "{err}");
    }

    #[test]
    fn execution_removes_exactly_the_plan() {
        let (_dir, root) = new_root();
        let (base_layer, base_image, container) = base(&root);
        let child_layer = add_layer(&root, Some(&base_layer), "child", &[("b", b"1234567")]);
        let child = add_image(&root, &[&base_layer, &child_layer], "2026-01-02T00:00:00Z");
        root.set_image_parent(&child, &base_image).expect("parent");
        // The dangling image also has a digest reference, as after a pull whose tag moved on.
        let repositories = root.repositories_path();
        let mut value: serde_json::Value =
            serde_json::from_slice(&fs::read(&repositories).expect("read")).expect("json");
        let digest_ref = format!("pulled@sha256:{}", "1".repeat(64));
        value["Repositories"]["pulled"] = serde_json::json!({ digest_ref.clone(): child });
        fs::write(&repositories, serde_json::to_vec(&value).expect("json")).expect("write");
        fs::create_dir(root.root().join(LAYERDB_TMP).join("write-set-9")).expect("mkdir");
        let orphan_id = "f".repeat(64);
        root.create_overlay_dir(&orphan_id, None).expect("dir");

        let plan = root.plan_gc().expect("plan");
        assert_eq!(
            kinds_and_names(&plan),
            vec![
                (GarbageKind::DanglingImage, child.clone()),
                (GarbageKind::UnusedLayer, child_layer.chain_id.clone()),
                (GarbageKind::WriteSet, format!("{LAYERDB_TMP}/write-set-9")),
                (GarbageKind::OrphanLayerDir, format!("overlay2/{orphan_id}")),
            ]
        );
        let mut seen = Vec::new();
        root.execute_gc(&plan, &mut |item| seen.push(item.name.clone()))
            .expect("execute");
        assert_eq!(seen.len(), 4);
        assert_eq!(root.images().expect("images"), vec![base_image.clone()]);
        assert_eq!(
            root.references().expect("refs"),
            vec![("base:1".to_string(), base_image)]
        );
        assert!(root.layer(&child_layer.chain_id).expect("read").is_none());
        assert!(!root.overlay_dir(&child_layer.cache_id).exists());
        assert!(root.layer(&base_layer.chain_id).expect("read").is_some());
        assert!(root.overlay_dir(&container.mount_id).is_dir());
        assert!(!root.overlay_dir(&orphan_id).exists());
        // Every `l/` link left resolves.
        for entry in fs::read_dir(root.overlay_home().join("l")).expect("ls") {
            let path = entry.expect("entry").path();
            assert!(path.join(".").is_dir(), "{} dangles", path.display());
        }
        let again = root.plan_gc().expect("plan");
        assert_eq!(kinds_and_names(&again), vec![]);
        assert_eq!(again.left_alone, vec![]);
    }

    #[test]
    fn a_cut_down_plan_never_breaks_what_stays() {
        let (_dir, root) = new_root();
        let (base_layer, _, _) = base(&root);
        // An unused chain of two layers; the upper one's `lower` also reaches a dir no layerdb
        // entry names (as after a lost entry).
        let lower = add_layer(&root, Some(&base_layer), "lower", &[("x", b"xx")]);
        let upper = add_layer(&root, Some(&lower), "upper", &[("y", b"y")]);
        let stray_id = "5".repeat(63) + "b";
        root.create_overlay_dir(&stray_id, None).expect("dir");
        let stray_link =
            fs::read_to_string(root.overlay_dir(&stray_id).join("link")).expect("link");
        let upper_lower = root.overlay_dir(&upper.cache_id).join("lower");
        let text = fs::read_to_string(&upper_lower).expect("lower");
        fs::write(&upper_lower, format!("{text}:l/{stray_link}")).expect("write");

        let plan = root.plan_gc().expect("plan");
        // The stray dir is reached by a registered layer: not an orphan while that layer exists.
        assert_eq!(
            kinds_and_names(&plan),
            vec![
                (GarbageKind::UnusedLayer, upper.chain_id.clone()),
                (GarbageKind::UnusedLayer, lower.chain_id.clone()),
            ]
        );
        // Only the lower layer, without the one on top of it: refused, nothing removed.
        let mut cut = plan.clone();
        cut.items.retain(|item| item.name == lower.chain_id);
        let err = root
            .execute_gc(&cut, &mut |_| {})
            .expect_err("removing a parent of a remaining layer must be refused");
        assert!(
            err.to_string()
                .contains("refusing to remove a layer in use"),
            "{err}"
        );
        assert!(root.layer(&lower.chain_id).expect("read").is_some());
        // The whole plan goes; then the stray dir is an orphan.
        root.execute_gc(&plan, &mut |_| {}).expect("execute");
        let again = root.plan_gc().expect("plan");
        assert_eq!(
            kinds_and_names(&again),
            vec![(GarbageKind::OrphanLayerDir, format!("overlay2/{stray_id}"))]
        );
    }

    #[test]
    fn volume_options_and_sizes_as_docker_counts_them() {
        let (_dir, root) = new_root();
        let volumes = root.root().join(VOLUMES);
        for (name, data, options) in [
            ("plain", Some(&b"abc"[..]), None),
            (
                "empty-options",
                Some(&b"de"[..]),
                Some(r#"{"Type":"","o":"","device":""}"#),
            ),
            (
                "tmpfs",
                Some(&b"x"[..]),
                Some(r#"{"Type":"tmpfs","o":"size=1m","device":"tmpfs"}"#),
            ),
            ("no-data", None, None),
        ] {
            fs::create_dir_all(volumes.join(name)).expect("mkdir");
            if let Some(data) = data {
                fs::create_dir(volumes.join(name).join("_data")).expect("mkdir");
                fs::write(volumes.join(name).join("_data/f"), data).expect("write");
                fs::hard_link(
                    volumes.join(name).join("_data/f"),
                    volumes.join(name).join("_data/hard"),
                )
                .expect("link");
            }
            if let Some(options) = options {
                fs::write(volumes.join(name).join("opts.json"), options).expect("write");
            }
        }
        fs::write(volumes.join("metadata.db"), b"bolt").expect("write");
        assert_eq!(
            root.local_volumes().expect("volumes"),
            vec![
                LocalVolume {
                    name: "empty-options".into(),
                    size: 2
                },
                LocalVolume {
                    name: "no-data".into(),
                    size: -1
                },
                LocalVolume {
                    name: "plain".into(),
                    size: 3
                },
            ]
        );
    }
}
