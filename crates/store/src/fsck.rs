//! Checking a data root against the format (format.md §3–§4, §8, §10), without changing anything.
//!
//! Every finding is a [`Finding`]: a `Corruption` is something that breaks an image, layer or
//! container (a layerdb entry that does not parse, a ChainID that does not match its `diff` and
//! `parent`, a missing `cache-id` dir, an image config that does not hash to its name, a tag of a
//! missing image, ...); a `Leftover` is what an interrupted operation leaves and Docker ignores
//! (write-sets, `-removing` dirs, orphan overlay2 dirs, dangling `l/` links). Layer content is
//! verified elsewhere (it needs the tar-split reassembly, which this crate does not do).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use crate::fsutil;
use crate::ids::{self, is_digest, is_hex64, is_layer_dir_id, is_lower_entry};
use crate::{DataRoot, Result};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Breaks an image, layer or container.
    Corruption,
    /// Left by an interrupted operation; harmless, and removed by a repair.
    Leftover,
    /// Not something Docker writes: reported, and left alone by a repair.
    Unknown,
}

/// One thing found wrong, with the path it concerns.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub severity: Severity,
    pub path: PathBuf,
    pub problem: String,
}

/// What the check saw, for its summary line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckCounts {
    pub n_layers: usize,
    pub n_images: usize,
    pub n_tags: usize,
    pub n_containers: usize,
}

/// Everything the check found.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    pub findings: Vec<Finding>,
    pub counts: CheckCounts,
}

impl CheckReport {
    pub fn corruptions(&self) -> impl Iterator<Item = &Finding> {
        self.findings
            .iter()
            .filter(|finding| finding.severity == Severity::Corruption)
    }

    fn add(&mut self, severity: Severity, path: impl Into<PathBuf>, problem: impl Into<String>) {
        self.findings.push(Finding {
            severity,
            path: path.into(),
            problem: problem.into(),
        });
    }
}

impl DataRoot {
    /// Checks the whole data root; reading errors become findings, not failures.
    pub fn check(&self) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        // A layout directory that is a symlink (or a file) would lead every read below it out of
        // the root: it is reported, and nothing below the root is read.
        let damage = crate::layout_damage(&self.root);
        if !damage.is_empty() {
            for err in damage {
                let path = match &err {
                    crate::Error::NotReal { path, .. } | crate::Error::Io { path, .. } => {
                        path.clone()
                    }
                    _ => self.root.clone(),
                };
                report.add(Severity::Corruption, path, err.to_string());
            }
            report.findings.sort();
            return Ok(report);
        }
        let layers = self.check_layerdb(&mut report);
        let owners = self.check_mounts(&mut report, &layers);
        self.check_overlay_dirs(&mut report, &layers, &owners);
        let images = self.check_images(&mut report, &layers);
        self.check_tags(&mut report, &images);
        self.check_containers(&mut report, &images);
        report.findings.sort();
        Ok(report)
    }

    /// layerdb/sha256 and layerdb/tmp; returns the parsed layers by ChainID.
    fn check_layerdb(&self, report: &mut CheckReport) -> BTreeMap<String, CheckedLayer> {
        use Severity::{Corruption, Leftover};
        let layerdb = self.image_dir().join("layerdb");
        let tmp = layerdb.join("tmp");
        for name in fsutil::readable_names(&tmp) {
            report.add(
                Leftover,
                tmp.join(&name),
                "a layer registration that never committed",
            );
        }
        let sha = layerdb.join("sha256");
        let mut layers = BTreeMap::new();
        for name in fsutil::readable_names(&sha) {
            let path = sha.join(&name);
            if let Some(problem) = not_real_dir(&path) {
                report.add(Corruption, path, problem);
                continue;
            }
            if name.ends_with("-removing") {
                report.add(Leftover, path, "a layer removal that was interrupted");
                continue;
            }
            if !is_hex64(&name) {
                report.add(Leftover, path, "not a ChainID (Docker ignores this entry)");
                continue;
            }
            let chain_id = format!("sha256:{name}");
            let read = |file: &str| read_text(&path.join(file));
            let Some(diff_id) = read("diff").map(|text| text.trim().to_string()) else {
                report.add(Corruption, path.join("diff"), "missing");
                continue;
            };
            if !is_digest(&diff_id) {
                report.add(
                    Corruption,
                    path.join("diff"),
                    format!("invalid DiffID {diff_id:?}"),
                );
                continue;
            }
            let parent = read("parent").map(|text| text.trim().to_string());
            if let Some(parent) = &parent {
                if !is_digest(parent) {
                    report.add(
                        Corruption,
                        path.join("parent"),
                        format!("invalid ChainID {parent:?}"),
                    );
                    continue;
                }
            }
            let expected = ids::chain_id(parent.as_deref(), &diff_id);
            if expected != chain_id {
                report.add(
                    Corruption,
                    &path,
                    format!("its diff and parent give ChainID {expected}, not its name"),
                );
            }
            match read("size") {
                None => report.add(Corruption, path.join("size"), "missing"),
                // Docker parses the size without trimming.
                Some(text) if text.parse::<i64>().is_err() => report.add(
                    Corruption,
                    path.join("size"),
                    format!("invalid size {text:?}"),
                ),
                Some(_) => {}
            }
            let cache_id = read("cache-id").map(|text| text.trim().to_string());
            let cache_id = match cache_id {
                Some(id) if is_layer_dir_id(&id) => id,
                Some(id) => {
                    report.add(
                        Corruption,
                        path.join("cache-id"),
                        format!("invalid cache-id {id:?}"),
                    );
                    continue;
                }
                None => {
                    report.add(Corruption, path.join("cache-id"), "missing");
                    continue;
                }
            };
            if !matches!(fsutil::real_file(&path.join("tar-split.json.gz")), Ok(true)) {
                report.add(
                    Corruption,
                    path.join("tar-split.json.gz"),
                    "missing: the layer cannot be saved or pushed",
                );
            }
            layers.insert(
                chain_id,
                CheckedLayer {
                    entry: path,
                    parent,
                    cache_id,
                },
            );
        }
        for (chain_id, layer) in &layers {
            if let Some(parent) = &layer.parent {
                if !layers.contains_key(parent) {
                    report.add(
                        Corruption,
                        layer.entry.join("parent"),
                        format!(
                            "layer {chain_id} names parent {parent}, which is not in the layerdb"
                        ),
                    );
                }
            }
        }
        report.counts.n_layers = layers.len();
        layers
    }

    /// layerdb/mounts; returns the overlay2 dirs each container owns.
    fn check_mounts(
        &self,
        report: &mut CheckReport,
        layers: &BTreeMap<String, CheckedLayer>,
    ) -> BTreeMap<String, String> {
        let mut owners = BTreeMap::new();
        let mounts = self.image_dir().join("layerdb/mounts");
        for name in fsutil::readable_names(&mounts) {
            let path = mounts.join(&name);
            if let Some(problem) = not_real_dir(&path) {
                report.add(Severity::Corruption, path, problem);
                continue;
            }
            let read = |file: &str| read_text(&path.join(file));
            let record_dir = self.root.join("containers").join(&name);
            let has_record = matches!(fsutil::real_dir(&record_dir), Ok(true))
                && matches!(
                    fsutil::real_file(&record_dir.join("config.v2.json")),
                    Ok(true)
                );
            if !has_record {
                report.add(
                    Severity::Leftover,
                    &path,
                    "a mounts entry without its container (a creation or removal cut short)",
                );
            }
            if !has_record || self.removal_in_progress(&name) {
                // What is left of it is reported with the container; its layer dirs are half
                // removed by design.
                for file in ["mount-id", "init-id"] {
                    if let Some(id) = read(file).map(|text| text.trim().to_string()) {
                        owners.insert(id, REMOVING.to_string());
                    }
                }
                continue;
            }
            match read("mount-id").map(|text| text.trim().to_string()) {
                Some(id) if is_layer_dir_id(&id) => {
                    owners.insert(id, format!("container {name}"));
                }
                Some(id) => report.add(
                    Severity::Corruption,
                    path.join("mount-id"),
                    format!("invalid mount-id {id:?}"),
                ),
                None => report.add(Severity::Corruption, path.join("mount-id"), "missing"),
            }
            if let Some(id) = read("init-id").map(|text| text.trim().to_string()) {
                if is_layer_dir_id(&id) {
                    owners.insert(id, format!("container {name}"));
                } else {
                    report.add(
                        Severity::Corruption,
                        path.join("init-id"),
                        format!("invalid init-id {id:?}"),
                    );
                }
            }
            if let Some(parent) = read("parent").map(|text| text.trim().to_string()) {
                if !layers.contains_key(&parent) {
                    report.add(
                        Severity::Corruption,
                        path.join("parent"),
                        format!(
                            "container {name} is on layer {parent}, which is not in the layerdb"
                        ),
                    );
                }
            }
        }
        for (chain_id, layer) in layers {
            owners.insert(layer.cache_id.clone(), format!("layer {chain_id}"));
        }
        owners
    }

    /// overlay2/<id> and overlay2/l.
    fn check_overlay_dirs(
        &self,
        report: &mut CheckReport,
        layers: &BTreeMap<String, CheckedLayer>,
        owners: &BTreeMap<String, String>,
    ) {
        use Severity::{Corruption, Leftover};
        let home = self.overlay_home();
        let links_dir = home.join("l");
        // Link id → the dir its symlink points at.
        let mut links = BTreeMap::new();
        for name in fsutil::readable_names(&links_dir) {
            let path = links_dir.join(&name);
            let is_link =
                fs::symlink_metadata(&path).is_ok_and(|meta| meta.file_type().is_symlink());
            if !is_link {
                report.add(
                    Corruption,
                    path,
                    "not a symlink: an l/ entry is the link ../<id>/diff",
                );
                continue;
            }
            let target = fs::read_link(&path).ok();
            let Some(id) = target.as_deref().and_then(crate::overlay::link_target_id) else {
                if target.as_deref().is_some_and(stays_in_overlay2) {
                    report.add(
                        Severity::Unknown,
                        path,
                        format!("a link Docker does not write (-> {target:?})"),
                    );
                } else {
                    // An absolute link, or one leaving overlay2/: it would make any directory a
                    // lower layer, so it is never used as one.
                    report.add(
                        Corruption,
                        path,
                        format!(
                            "points outside overlay2/ (-> {target:?}); never used as a lower layer"
                        ),
                    );
                }
                continue;
            };
            match self.checked_overlay_dir(&id) {
                Ok(Some(dir)) if matches!(fsutil::real_dir(&dir.join("diff")), Ok(true)) => {
                    links.insert(name, id);
                }
                Ok(_) => report.add(Leftover, path, format!("dangling link (-> {target:?})")),
                Err(err) => {
                    report.add(Corruption, path, format!("its layer dir is damaged: {err}"))
                }
            }
        }
        let linked: BTreeSet<&String> = links.values().collect();
        for name in fsutil::readable_names(&home) {
            if name == "l" {
                continue;
            }
            let path = home.join(&name);
            if let Some(problem) = not_real_dir(&path) {
                report.add(Corruption, path, problem);
                continue;
            }
            if !owners.contains_key(&name) {
                report.add(
                    Leftover,
                    &path,
                    "an overlay2 dir that no layer and no container uses",
                );
                continue;
            }
            if owners[&name] == REMOVING {
                continue;
            }
            if let Err(err) = self.checked_overlay_dir(&name) {
                let bad = match &err {
                    crate::Error::NotReal { path, .. } => path.clone(),
                    _ => path.clone(),
                };
                report.add(Corruption, bad, format!("{err} ({})", owners[&name]));
                continue;
            }
            if !matches!(fsutil::real_dir(&path.join("diff")), Ok(true)) {
                report.add(
                    Corruption,
                    path.join("diff"),
                    format!("missing ({})", owners[&name]),
                );
            }
            match read_text(&path.join("link")).ok_or(()) {
                Ok(link) if links.get(link.trim()) == Some(&name) => {}
                Ok(link) => report.add(
                    Corruption,
                    path.join("link"),
                    format!(
                        "l/{} does not point at this dir ({})",
                        link.trim(),
                        owners[&name]
                    ),
                ),
                Err(_) if !linked.contains(&name) => report.add(
                    Corruption,
                    path.join("link"),
                    format!("missing, and no l/ link points here ({})", owners[&name]),
                ),
                Err(_) => report.add(Corruption, path.join("link"), "missing"),
            }
            if let Some(lower) = read_text(&path.join("lower")) {
                for entry in lower.trim().split(':') {
                    let resolves = entry
                        .strip_prefix("l/")
                        .is_some_and(|link| is_lower_entry(entry) && links.contains_key(link));
                    if !resolves {
                        report.add(
                            Corruption,
                            path.join("lower"),
                            format!("lower entry {entry:?} does not resolve ({})", owners[&name]),
                        );
                    }
                }
            }
        }
        for (chain_id, layer) in layers {
            if !matches!(fsutil::real_dir(&home.join(&layer.cache_id)), Ok(true)) {
                report.add(
                    Corruption,
                    home.join(&layer.cache_id),
                    format!("missing: the cache-id dir of layer {chain_id}"),
                );
            }
        }
    }

    /// imagedb; returns the image ids whose config verifies.
    fn check_images(
        &self,
        report: &mut CheckReport,
        layers: &BTreeMap<String, CheckedLayer>,
    ) -> BTreeSet<String> {
        let content = self.image_dir().join("imagedb/content/sha256");
        let mut images = BTreeSet::new();
        for name in fsutil::readable_names(&content) {
            let path = content.join(&name);
            if !is_hex64(&name) {
                // Docker's atomic writes leave temp files beside the configs.
                report.add(Severity::Leftover, path, "not an image id");
                continue;
            }
            let image_id = format!("sha256:{name}");
            let config = match self.image_config(&image_id) {
                Ok(config) => config,
                Err(err) => {
                    report.add(Severity::Corruption, path, err.to_string());
                    continue;
                }
            };
            if let Some(top) = ids::chain_ids(&config.rootfs.diff_ids).last() {
                if !layers.contains_key(top) {
                    report.add(
                        Severity::Corruption,
                        path,
                        format!("image {image_id} needs layer {top}, which is not in the layerdb"),
                    );
                    continue;
                }
            }
            images.insert(image_id);
        }
        let metadata = self.image_dir().join("imagedb/metadata/sha256");
        for name in fsutil::readable_names(&metadata) {
            if let Some(problem) = not_real_dir(&metadata.join(&name)) {
                report.add(Severity::Corruption, metadata.join(&name), problem);
                continue;
            }
            let parent_file = metadata.join(&name).join("parent");
            if let Some(parent) = read_text(&parent_file) {
                let parent = parent.trim();
                let known = parent
                    .strip_prefix("sha256:")
                    .is_some_and(|hex| matches!(fsutil::real_file(&content.join(hex)), Ok(true)));
                if !known {
                    report.add(
                        Severity::Leftover,
                        parent_file,
                        format!("parent image {parent} is gone (Docker ignores it)"),
                    );
                }
            }
        }
        report.counts.n_images = images.len();
        images
    }

    fn check_tags(&self, report: &mut CheckReport, images: &BTreeSet<String>) {
        let path = self.repositories_path();
        match self.references() {
            Ok(references) => {
                for (name, image_id) in &references {
                    if !images.contains(image_id) {
                        report.add(
                            Severity::Corruption,
                            &path,
                            format!(
                                "tag {name} names image {image_id}, which is missing or broken"
                            ),
                        );
                    }
                }
                report.counts.n_tags = references.len();
            }
            Err(err) => report.add(Severity::Corruption, &path, err.to_string()),
        }
    }

    fn check_containers(&self, report: &mut CheckReport, images: &BTreeSet<String>) {
        let dir = self.root.join("containers");
        for name in fsutil::readable_names(&dir) {
            let path = dir.join(&name);
            if let Some(problem) = not_real_dir(&path) {
                report.add(Severity::Corruption, path, problem);
                continue;
            }
            if !is_hex64(&name) {
                report.add(Severity::Leftover, path, "not a container id");
                continue;
            }
            let config = path.join("config.v2.json");
            let value: serde_json::Value = match fsutil::read_bytes_optional(&config)
                .map_err(|err| err.to_string())
                .and_then(|bytes| bytes.ok_or_else(|| "missing".to_string()))
                .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|err| err.to_string()))
            {
                Ok(value) => value,
                Err(err) => {
                    report.add(Severity::Corruption, config, err);
                    continue;
                }
            };
            report.counts.n_containers += 1;
            if value["State"]["RemovalInProgress"] == serde_json::Value::Bool(true) {
                report.add(
                    Severity::Leftover,
                    &path,
                    format!(
                        "container {name}: a removal that was interrupted (`ovl rm` finishes it)"
                    ),
                );
                continue;
            }
            let image = value["Image"].as_str().unwrap_or_default();
            if !images.contains(image) {
                report.add(
                    Severity::Corruption,
                    &config,
                    format!("container {name} is of image {image:?}, which is missing or broken"),
                );
            }
            let mounts = self.image_dir().join("layerdb/mounts").join(&name);
            if not_real_dir(&mounts).is_some() {
                // Reported with the mounts entries.
                continue;
            }
            match read_text(&mounts.join("mount-id")).ok_or(()) {
                Ok(mount_id) if self.layer_dir_is_sound(mount_id.trim()) => {}
                Ok(mount_id) if self.checked_overlay_dir(mount_id.trim()).is_err() => {
                    // Reported with the overlay2 dirs.
                }
                Ok(mount_id) => report.add(
                    Severity::Corruption,
                    mounts.join("mount-id"),
                    format!(
                        "container {name}'s layer dir {} is missing",
                        mount_id.trim()
                    ),
                ),
                Err(_) => report.add(
                    Severity::Corruption,
                    &mounts,
                    format!("container {name} has no mounts entry"),
                ),
            }
        }
    }
}

/// The owner of the layer dirs of a container whose removal was interrupted.
const REMOVING: &str = "a container being removed";

impl DataRoot {
    /// Whether the container's record says a removal of it is under way.
    fn removal_in_progress(&self, container_id: &str) -> bool {
        let dir = self.root.join("containers").join(container_id);
        if not_real_dir(&dir).is_some() {
            return false;
        }
        fsutil::read_bytes_optional(&dir.join("config.v2.json"))
            .ok()
            .flatten()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .is_some_and(|value| {
                value["State"]["RemovalInProgress"] == serde_json::Value::Bool(true)
            })
    }
}

impl DataRoot {
    /// Whether `H/<id>` passes [`DataRoot::checked_overlay_dir`] and has its `diff/`.
    fn layer_dir_is_sound(&self, id: &str) -> bool {
        matches!(self.checked_overlay_dir(id), Ok(Some(dir)) if matches!(fsutil::real_dir(&dir.join("diff")), Ok(true)))
    }
}

/// Why `path`, which exists, is not a real directory (a symlink is never followed); `None` when
/// it is one or is missing.
fn not_real_dir(path: &Path) -> Option<String> {
    fsutil::real_dir(path)
        .err()
        .map(|err| format!("{err}; never followed"))
}

/// Whether an `l/` link's target, taken from `overlay2/l`, stays inside `overlay2/`: relative,
/// and no `..` beyond it.
fn stays_in_overlay2(target: &Path) -> bool {
    use std::path::Component;
    // Depth below overlay2/: the link sits in `l/`.
    let mut depth = 1usize;
    for component in target.components() {
        match component {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir if depth > 0 => depth -= 1,
            _ => return false,
        }
    }
    true
}

/// A small metadata file's text, read without following a symlink; `None` when it is missing or
/// cannot be read as a regular file.
fn read_text(path: &Path) -> Option<String> {
    fsutil::read_optional(path).ok().flatten()
}

/// A layerdb entry as far as the check parsed it.
struct CheckedLayer {
    entry: PathBuf,
    parent: Option<String>,
    cache_id: String,
}
