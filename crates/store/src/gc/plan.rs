//! The planner: what is garbage and why, as plain data; reads only.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use super::scan::{ImageScan, LayerScan, LinkInfo};
use super::{
    path_text, GarbageItem, GarbageKind, GcPlan, LeftAlone, PlannedLink, Target, CHECKED_LAYOUT,
    IMAGEDB, LAYERDB_SHA256, LAYERDB_TMP, LINKS, OVERLAY_HOME, WRITE_SET_PREFIX,
};
use crate::below::{Below, Crossing, TreeFacts};
use crate::fsutil::{self, sorted_names};
use crate::ids::{self, is_layer_dir_id};
use crate::{DataRoot, MountsEntry, Result};

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
}

pub(super) struct Planner<'a> {
    pub(super) root: &'a DataRoot,
    pub(super) below: Below,
    pub(super) plan: GcPlan,
    /// Why the owner of some overlay2 dir cannot be known (then no dir is removed as an orphan).
    pub(super) dirs_unknown: Option<String>,
    /// Why the users of some layer cannot be known (then no layer is removed).
    pub(super) layers_unknown: Option<String>,
    /// Why the tags, children or containers of some image cannot be known (then no image is
    /// removed).
    pub(super) images_unknown: Option<String>,
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
            let Some(facts) = self.measure_unmounted(LAYERDB_SHA256, marker, &marker_path)? else {
                continue;
            };
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

    /// Measures `parent_rel/name` without crossing mount points; `None`, with `rel` left alone,
    /// when a file system is mounted below it.
    fn measure_unmounted(
        &mut self,
        parent_rel: &str,
        name: &str,
        rel: &Path,
    ) -> Result<Option<TreeFacts>> {
        let facts = self.below.measure(parent_rel, name, Crossing::Refuse)?;
        if let Some(mount) = &facts.mount {
            self.leave(
                rel,
                format!("a file system is mounted at {}", mount.display()),
            );
            return Ok(None);
        }
        Ok(Some(facts))
    }

    pub(super) fn leave(&mut self, path: impl Into<PathBuf>, reason: impl Into<String>) {
        self.plan.left_alone.push(LeftAlone {
            path: path.into(),
            reason: reason.into(),
        });
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
            let Some(facts) = self.measure_unmounted(LAYERDB_TMP, &name, &rel)? else {
                continue;
            };
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
            let Some(facts) = self.measure_unmounted(OVERLAY_HOME, &name, &rel)? else {
                continue;
            };
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
