//! The scans the planner starts from: `l/` links, the layerdb, the mounts entries and the images,
//! each read once, with what cannot be read named and left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use super::plan::Planner;
use super::{CONTAINERS, IMAGEDB, LAYERDB_MOUNTS, LAYERDB_SHA256, LINKS, REMOVING_SUFFIX};
use crate::fsutil::{self, sorted_names};
use crate::ids::{self, is_digest, is_hex64, is_layer_dir_id};
use crate::{Layer, MountsEntry, Result};

/// One `l/` link as scanned.
pub(super) struct LinkInfo {
    pub(super) target: PathBuf,
    /// The layer dir of a `../<id>/diff` target.
    pub(super) dir: Option<String>,
    pub(super) size: u64,
}

/// The layerdb as scanned.
#[derive(Default)]
pub(super) struct LayerScan {
    /// The layers Docker loads, by ChainID.
    pub(super) loaded: BTreeMap<String, Layer>,
    /// The parent of every entry that names a valid one, loaded or not.
    pub(super) parents: BTreeMap<String, String>,
    /// Entries that do not load.
    pub(super) broken: BTreeSet<String>,
    /// The valid `cache-id`s of entries that do not load.
    pub(super) broken_dirs: BTreeSet<String>,
    /// Removal markers: dir name and the valid `cache-id` it names.
    pub(super) markers: Vec<(String, Option<String>)>,
}

/// The images as scanned.
#[derive(Default)]
pub(super) struct ImageScan {
    /// Images whose config verifies, with their DiffIDs.
    pub(super) configs: BTreeMap<String, Vec<String>>,
    /// Images Docker loads: the config verifies and the top layer loads.
    pub(super) loaded: BTreeSet<String>,
    pub(super) parent_of: BTreeMap<String, String>,
    pub(super) children_of: BTreeMap<String, BTreeSet<String>>,
    pub(super) tags_of: BTreeMap<String, Vec<String>>,
    pub(super) digests_of: BTreeMap<String, Vec<String>>,
    pub(super) n_containers_of: BTreeMap<String, usize>,
}

impl Planner<'_> {
    /// `overlay2/l`: every symlink, with the layer dir of a `../<id>/diff` target.
    pub(super) fn scan_links(&mut self) -> Result<BTreeMap<String, LinkInfo>> {
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
    pub(super) fn scan_layerdb(&mut self) -> Result<LayerScan> {
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
    pub(super) fn scan_mounts(&mut self) -> Result<Vec<MountsEntry>> {
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

    pub(super) fn scan_images(&mut self, layers: &LayerScan) -> Result<ImageScan> {
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
}
