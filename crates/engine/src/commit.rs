//! Commit: a container's changes as a new layer and image, like `docker commit` (format.md §9).
//!
//! The layer is the tar Docker's overlay2 `Diff` makes of the container's upperdir (format.md §6.3),
//! produced by `layer-pack` on one thread and consumed through an in-process pipe by `layer-unpack`, which
//! hashes it (the DiffID), applies it into the new layer's `diff/` and records its tar-split while
//! the store registers the layer: one pass, nothing written twice.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Context, Error, Result};
use store::{AppliedLayer, DataRoot, Layer, Reference};

use crate::access::{self, Create};
use crate::chunk_pipe::through_pipe;
use crate::config::{self, ContainerConfig, History, ImageConfig, ParentImage, RootFs};
use crate::layers::with_early_writeback;
use crate::{changes, container, dockerfile, resolve, views};

/// The DiffID of a tar of two zero blocks: Docker adds no layer for it (`layer.IsEmpty`).
const EMPTY_LAYER_DIFF_ID: &str =
    "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

/// What `commit` records besides the container's changes.
#[derive(Debug, Clone)]
pub struct CommitOptions {
    /// Author (e.g. "John Hannibal Smith <hannibal@a-team.com>").
    pub author: Option<String>,
    /// Commit message.
    pub message: Option<String>,
    /// Dockerfile instructions applied to the image config (see [`dockerfile`]), in order.
    pub changes: Vec<String>,
    /// Clamp every mtime to SOURCE_DATE_EPOCH (default: the parent image's creation time) and
    /// date the image at that time.
    pub reproducible: bool,
    /// Fail when the layer's tar grows past this many bytes.
    pub max_layer_size: Option<u64>,
    /// Tag the new image `REPO[:TAG]`.
    pub reference: Option<String>,
    /// Parses the parent image's `created` time (RFC 3339) for `reproducible`: Go's time
    /// parsing belongs to the caller's Go-compatibility code.
    pub parse_time: fn(&str) -> Option<std::time::SystemTime>,
    /// Remove the container once its image exists (`commit --rm`); a mounted one is unmounted
    /// first. Its upperdir then becomes the new layer by rename where it can ([`register_moved`]).
    pub remove: bool,
}

/// Commits the changes of the container `container` (name, id or unique id prefix) as a new layer
/// and image, like `docker commit`; returns the image id. A failure removes the new layer.
pub fn commit(root_path: &Path, container: &str, args: &CommitOptions) -> Result<String> {
    let reference = args
        .reference
        .as_deref()
        .map(|text| Reference::parse(text).image_context("image name", text))
        .transpose()?;
    let (root, _lock) = access::open_for_change(root_path, Create::No, "commit a container")?;
    let record = resolve::container(&root, container)?;
    let entry = container::mounts_entry(&root, &record.id)?;
    let parent_bytes =
        root.image_config_bytes(&record.image_id)
            .map_err(|err| Error::ContainerImage {
                image_id: record.image_id.clone(),
                container_id: record.id.clone(),
                source: Box::new(err.into()),
            })?;
    let parent: ParentImage = serde_json::from_slice(&parent_bytes)
        .image_context("parsing the config of image", &record.image_id)?;

    let source_date_epoch = source_date_epoch()?;
    let clamp = if args.reproducible || source_date_epoch.is_some() {
        Some(source_date_epoch.unwrap_or_else(|| parent_created(&parent, args.parse_time)))
    } else {
        None
    };

    // The config is built (and the changes checked) before any layer is written.
    let container_config = ContainerConfig::from_value(&record.config)
        .container_context("parsing the config of container", &record.id)?;
    let mut new_config = container_config.clone();
    dockerfile::apply_changes(&mut new_config, &args.changes)?;
    new_config.labels.get_or_insert_with(BTreeMap::new);

    let parent_layer = match entry.parent.as_deref() {
        Some(chain_id) => Some(root.layer(chain_id)?.ok_or_else(|| {
            Error::inconsistent(format!(
                "layer {chain_id} of image {} is missing",
                record.image_id
            ))
        })?),
        None => None,
    };
    if args.remove && container::is_mounted(&root, &record.id) {
        // Not lazily: a container a process still uses keeps its mount, and nothing changes.
        container::require_root()?;
        container::unmount_layer_now(&root, &entry.mount_id)
            .container_context("unmounting container", &record.id)?;
    }
    let dirs = views::layer_dirs(&root, &entry)?;
    // Read once: the upperdir export and a fallback's change list see the same defaults.
    let defaults = mount::OverlayDefaults::read();
    // The overlay2 dir id of a new layer made of the container's upperdir by rename.
    let mut moved_into: Option<String> = None;
    let registered = if is_empty_dir(&dirs.upper)? {
        None
    } else {
        let export = |force_merged| {
            register(
                &root,
                &entry,
                parent_layer.as_ref(),
                &dirs.upper,
                clamp,
                args.max_layer_size,
                Export {
                    defaults,
                    force_merged,
                },
            )
        };
        let copy_from_upper = || match export(false) {
            Err(err) if needs_merged_export(&err) => {
                tracing::debug!(
                    container = %record.id,
                    error = %crate::error::chain_text(&err),
                    "the upperdir alone does not hold the changes: exporting from the merged tree"
                );
                export(true)
            }
            other => other,
        };
        let movable = args.remove && clamp.is_none() && defaults.first_enabled().is_none();
        let moved = match movable {
            true => Some(register_moved(
                &root,
                &entry,
                parent_layer.as_ref(),
                args.max_layer_size,
                args.reference.as_deref(),
            )),
            false => None,
        };
        let registered = match moved {
            Some(Ok(Moved::Layer { layer, moved })) => {
                if moved {
                    moved_into = Some(layer.cache_id.clone());
                }
                // A layer that existed already kept the upperdir out of it.
                Ok(Registered { layer, new: moved })
            }
            Some(Ok(Moved::NotMovable)) => {
                tracing::debug!(
                    container = %record.id,
                    "the upperdir holds redirects or metacopy files: copying from the merged tree"
                );
                export(true)
            }
            Some(Ok(Moved::Held(held))) => {
                match held {
                    mount::UpperUse::InUse => tracing::warn!(
                        container = %record.id,
                        "an overlay still uses the container's upperdir (a process left in a \
                         lazily unmounted container, or a container runtime's own mount): \
                         copying its changes instead of moving them"
                    ),
                    other => tracing::debug!(
                        container = %record.id,
                        answer = ?other,
                        "the kernel cannot say whether an overlay still uses the upperdir: copying"
                    ),
                }
                copy_from_upper()
            }
            Some(Err(err)) => Err(err),
            None => copy_from_upper(),
        };
        Some(registered.container_context("committing the changes of container", &record.id)?)
    };
    let diff_id = registered
        .as_ref()
        .map_or(EMPTY_LAYER_DIFF_ID.to_string(), |r| r.layer.diff_id.clone());

    let created = match clamp {
        Some(epoch) => store::rfc3339_nano(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch.max(0) as u64),
        ),
        None => store::now_rfc3339_nano(),
    };
    let image = (|| -> Result<String> {
        let config = child_config(ChildConfig {
            parent: &parent,
            diff_id: &diff_id,
            author: args.author.as_deref().unwrap_or(""),
            comment: args.message.as_deref().unwrap_or(""),
            created: &created,
            container_id: &record.id,
            container_config,
            config: new_config,
        })?;
        Ok(root.publish_image(&config, Some(&record.image_id), reference.as_ref())?)
    })();
    match image {
        Ok(image_id) => {
            if args.remove {
                container::remove_container(&root, &record.id)
                    .and_then(|()| Ok(root.forget_move(&record.id)?))
                    .map_err(|err| Error::Container {
                        op: "the image is committed, but removing failed for container",
                        reference: record.id.clone(),
                        source: Box::new(err),
                    })?;
            }
            Ok(image_id)
        }
        Err(err) => {
            if let Some(Registered { layer, .. }) = registered.filter(|r| r.new) {
                // A layer made of the container's upperdir gives it back first.
                let given_back = match &moved_into {
                    Some(cache_id) => root
                        .move_diff(cache_id, &entry.mount_id)
                        .and_then(|()| root.forget_move(&record.id)),
                    None => Ok(()),
                };
                match given_back {
                    Ok(()) => {
                        if let Err(cleanup) = root.remove_layer(&layer.chain_id) {
                            tracing::warn!(layer = %layer.chain_id, error = %cleanup, "removing the new layer");
                        }
                    }
                    Err(back) => {
                        tracing::error!(
                            layer = %layer.chain_id,
                            error = %back,
                            "the container's changes stay in the new layer: its diff/ could not be moved back"
                        );
                    }
                }
            }
            Err(Error::Container {
                op: "creating the image of container",
                reference: record.id,
                source: Box::new(err),
            })
        }
    }
}

/// Registers the container's changes as a layer on `parent`.
fn register(
    root: &DataRoot,
    entry: &store::MountsEntry,
    parent: Option<&Layer>,
    upper: &Path,
    clamp: Option<i64>,
    max_layer_size: Option<u64>,
    export: Export,
) -> Result<Registered> {
    let Export {
        defaults,
        force_merged,
    } = export;
    let options = layer_pack::PackOptions {
        clamp_mtime: clamp,
        ..Default::default()
    };
    let fallback = match defaults.first_enabled() {
        Some(feature) => Some(feature),
        None if force_merged => Some("redirect_dir or metacopy"),
        None => None,
    };
    let merged_views = match fallback {
        Some(feature) => {
            tracing::debug!(
                container = %entry.container_id,
                feature,
                "overlay {feature} is enabled by default: exporting the changes from the merged tree"
            );
            let change_list = changes::container_changes(
                root,
                &entry.container_id,
                defaults,
                changes::Lock::Held,
            )?;
            let views = views::MergedViews::mount(root, entry)?;
            Some((views, change_list))
        }
        None => None,
    };
    let upper: PathBuf = upper.to_path_buf();
    let unpack_options = layer_unpack::UnpackOptions {
        max_layer_size,
        ..crate::kernel::unpack_options()?
    };
    let parent = parent.map(store::LayerParent::from);
    with_early_writeback(root, COMMIT_WRITEBACK_INTERVAL, || {
        // `DataRoot::register_layer`, keeping the new layer dir's id to tell a new layer from one
        // that existed (whose copy the commit drops).
        let mut pending = root.begin_layer(parent.as_ref())?;
        let cache_id = pending.cache_id().to_string();
        pending.apply(&mut |diff_dir, tar_split| {
            let mut packer = tar_split::Packer::new(tar_split);
            let report = through_pipe(
                max_layer_size,
                |out| match &merged_views {
                    Some((views, change_list)) => {
                        let list: Vec<(Vec<u8>, layer_pack::ChangeKind)> = change_list
                            .iter()
                            .map(|change| (change.path.clone(), pack_kind(change.kind)))
                            .collect();
                        layer_pack::pack_changes(&views.container_root, &list, out, &options)
                            .map(drop)
                    }
                    None => layer_pack::pack_upper(&upper, out, &options).map(drop),
                },
                |tar| layer_unpack::unpack(tar, diff_dir, &mut packer, &unpack_options),
            )?;
            packer.finish()?;
            Ok(AppliedLayer {
                diff_id: report.diff_id,
                size: report.size,
            })
        })?;
        let layer = pending.commit(false)?;
        Ok(Registered {
            new: layer.cache_id == cache_id,
            layer,
        })
    })
}

/// A layer of the container's changes, and whether this commit made it (`false`: the same layer
/// existed, and stays should the image fail to be made).
struct Registered {
    layer: Layer,
    new: bool,
}

/// How often the copying commit's files are flushed while it writes them (see
/// `with_early_writeback`): a commit of 10,000 small files takes well under a second, and a
/// flush every 100 ms took about 12 % off it here; every 50 ms took it from 0.360 s to 0.337 s
/// (medians of nine). At 100,000 files (3.1 s) every 30 ms did no better than every 100 ms.
const COMMIT_WRITEBACK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// How often the moving commit flushes while it settles the upperdir. It writes no file data,
/// but every entry it settles is an inode update in the journal, which the `syncfs` before the
/// layer is published writes in one go: 10 ms for 10,000 entries here, after a walk of about
/// 100 ms. Flushing every 30 ms writes most of it during the walk: a commit of 10,000 changes
/// took 0.114 s instead of 0.124 s (medians of five; 0.123 s against 0.130 s in six more
/// pairs), of 100,000 changes 1.05 s instead of 1.13 s (of three); every 100 ms gained little
/// at 10,000 (0.122 s), every 10 ms less than every 30 ms.
const MOVE_WRITEBACK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(30);

/// The moving commit (`commit --rm`): the container's upperdir becomes the new layer's `diff/`
/// by rename, and one read of it makes the layer's tar (hashed into the DiffID and recorded as
/// tar-split, never written) while settling each entry into what unpacking that tar would
/// create (`layer_pack::PackOptions::settle`). The container must be unmounted (nothing else
/// writes its upperdir), without an mtime clamp and on a kernel whose overlay defaults leave
/// `redirect_dir` and `metacopy` off; [`Moved::NotMovable`] hands an upperdir that turns out to
/// hold redirects or metacopy files back for the copying export.
///
/// Until the layer is committed the upperdir is given back to the container on any failure;
/// should that fail too, the new layer dir is kept (not removed) and the error names it.
fn register_moved(
    root: &DataRoot,
    entry: &store::MountsEntry,
    parent: Option<&Layer>,
    max_layer_size: Option<u64>,
    reference: Option<&str>,
) -> Result<Moved> {
    // Unmounted here is not unmounted everywhere: an overlay that lives on (detached lazily
    // with a process left in it, or in a container runtime's mount namespace) could still
    // write the layer after its DiffID is computed. The kernel knows.
    match container::upper_use(root, entry)? {
        mount::UpperUse::Free => {}
        held => return Ok(Moved::Held(held)),
    }
    let parent = parent.map(store::LayerParent::from);
    let mut pending = root.begin_layer(parent.as_ref())?;
    let cache_id = pending.cache_id().to_string();
    // Recorded first: after a crash from here on, the next command finds the upperdir again
    // (`recover_interrupted_moves`).
    root.record_move(&store::MoveRecord {
        container_id: entry.container_id.clone(),
        mount_id: entry.mount_id.clone(),
        cache_id: cache_id.clone(),
        reference: reference.map(str::to_string),
    })?;
    if let Err(err) = root.move_diff(&entry.mount_id, &cache_id) {
        root.forget_move(&entry.container_id)?;
        return Err(err.into());
    }
    let options = layer_pack::PackOptions {
        settle: true,
        ..Default::default()
    };
    let record_options = layer_unpack::UnpackOptions {
        max_layer_size,
        ..crate::kernel::unpack_options()?
    };
    let mut diff_id = String::new();
    let applied = with_early_writeback(root, MOVE_WRITEBACK_INTERVAL, || {
        pending.apply(&mut |diff_dir, tar_split| {
            let mut packer = tar_split::Packer::new(tar_split);
            let report = through_pipe(
                max_layer_size,
                |out| layer_pack::pack_upper(diff_dir, out, &options).map(drop),
                |tar| layer_unpack::record(tar, &mut packer, &record_options),
            )?;
            packer.finish()?;
            diff_id = report.diff_id.clone();
            Ok(AppliedLayer {
                diff_id: report.diff_id,
                size: report.size,
            })
        })
    });
    let parent_chain = parent.as_ref().map(|p| p.chain_id.as_str());
    // The same layer may exist already: its content is the container's changes, and the new
    // layer dir is dropped at the commit, so the upperdir goes back first.
    let give_back = match &applied {
        Err(_) => true,
        Ok(()) => root
            .layer(&store::chain_id(parent_chain, &diff_id))?
            .is_some(),
    };
    if give_back {
        if let Err(back) = root
            .move_diff(&cache_id, &entry.mount_id)
            .and_then(|()| root.forget_move(&entry.container_id))
        {
            // Dropping the pending layer would remove the changes with it.
            std::mem::forget(pending);
            return Err(Error::inconsistent(format!(
                "the changes of container {} are in layer dir {} and could not be moved back ({back}); \
                 move its diff/ back to the container's layer dir {} by hand",
                entry.container_id,
                root.overlay_dir(&cache_id).display(),
                root.overlay_dir(&entry.mount_id).display(),
            )));
        }
    }
    match applied {
        Err(err) => {
            let err = Error::from(err);
            if needs_merged_export(&err) {
                Ok(Moved::NotMovable)
            } else {
                Err(err)
            }
        }
        Ok(()) => {
            let layer = pending.commit(false)?;
            Ok(Moved::Layer {
                layer,
                moved: !give_back,
            })
        }
    }
}

/// What [`register_moved`] did.
enum Moved {
    /// The layer, made of the container's upperdir when `moved` (otherwise the same layer
    /// existed, and the upperdir is back in the container).
    Layer { layer: Layer, moved: bool },
    /// The upperdir holds redirects or metacopy files: back in the container for the copy.
    NotMovable,
    /// An overlay may still write the upperdir (the kernel's answer): nothing was moved.
    Held(mount::UpperUse),
}

/// Where `register` takes the changes from: the upperdir, unless the overlay defaults or
/// `force_merged` (the upperdir carries redirects or metacopy files) send it to the merged tree.
#[derive(Debug, Clone, Copy)]
struct Export {
    defaults: mount::OverlayDefaults,
    force_merged: bool,
}

/// Whether `err` says that the upperdir carries overlay redirects or metacopy files.
fn needs_merged_export(err: &Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(err) = cause {
        let pack = err.downcast_ref::<layer_pack::Error>().or_else(|| {
            match err
                .downcast_ref::<Error>()
                .or_else(|| err.downcast_ref::<Box<Error>>().map(|boxed| &**boxed))
            {
                Some(Error::Pack(pack)) => Some(pack),
                _ => None,
            }
        });
        if matches!(pack, Some(layer_pack::Error::NeedsMergedExport { .. })) {
            return true;
        }
        cause = err.source();
    }
    false
}

fn pack_kind(kind: diff::ChangeKind) -> layer_pack::ChangeKind {
    match kind {
        diff::ChangeKind::Modify => layer_pack::ChangeKind::Modify,
        diff::ChangeKind::Add => layer_pack::ChangeKind::Add,
        diff::ChangeKind::Delete => layer_pack::ChangeKind::Delete,
    }
}

fn is_empty_dir(path: &Path) -> Result<bool> {
    let mut entries =
        std::fs::read_dir(path).map_err(|source| Error::io("reading", path, source))?;
    Ok(entries.next().is_none())
}

/// `SOURCE_DATE_EPOCH`, when set: whole seconds since the epoch.
fn source_date_epoch() -> Result<Option<i64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) if !text.is_empty() => {
            text.trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|source| Error::InvalidNumber {
                    message: format!("SOURCE_DATE_EPOCH={text:?} is not a number of seconds"),
                    source,
                })
        }
        _ => Ok(None),
    }
}

/// The parent image's `created` time in whole seconds (0 when it has none).
fn parent_created(
    parent: &ParentImage,
    parse_time: fn(&str) -> Option<std::time::SystemTime>,
) -> i64 {
    parent
        .created
        .as_deref()
        .and_then(parse_time)
        .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |since| since.as_secs() as i64)
}

struct ChildConfig<'a> {
    parent: &'a ParentImage,
    diff_id: &'a str,
    author: &'a str,
    comment: &'a str,
    created: &'a str,
    container_id: &'a str,
    container_config: ContainerConfig,
    config: ContainerConfig,
}

/// Docker's `image.NewChildImage` marshalled as `image.Image` is (top-level keys sorted, empty
/// optional fields left out): the parent's diff_ids plus the new one unless the layer is empty,
/// the parent's history plus one entry, architecture/variant/os fields from the parent.
fn child_config(child: ChildConfig<'_>) -> Result<Vec<u8>> {
    let parent = child.parent;
    let is_empty_layer = child.diff_id == EMPTY_LAYER_DIFF_ID;
    let mut diff_ids = parent
        .rootfs
        .as_ref()
        .map(|rootfs| rootfs.diff_ids.clone())
        .unwrap_or_default();
    if !is_empty_layer {
        diff_ids.push(child.diff_id.to_string());
    }
    let created_by = child
        .container_config
        .cmd
        .as_deref()
        .unwrap_or_default()
        .join(" ");
    let non_empty = |text: &str| (!text.is_empty()).then(|| text.to_string());
    let entry = History {
        created: child.created.to_string(),
        author: non_empty(child.author),
        created_by: non_empty(&created_by),
        comment: non_empty(child.comment),
        empty_layer: is_empty_layer.then_some(true),
    };
    let mut history = parent.history.clone();
    history.push(serde_json::to_value(&entry)?);
    let image = ImageConfig {
        architecture: non_empty(&parent.architecture).unwrap_or_else(config::host_architecture),
        author: child.author.to_string(),
        comment: None,
        config: child.config,
        container: child.container_id.to_string(),
        container_config: child.container_config,
        created: child.created.to_string(),
        docker_version: config::DOCKER_VERSION.to_string(),
        history,
        os: non_empty(&parent.os).unwrap_or_else(|| "linux".to_string()),
        os_features: config::carried_over(&parent.os_features),
        os_version: config::carried_over(&parent.os_version),
        rootfs: RootFs {
            kind: "layers".to_string(),
            diff_ids,
        },
        variant: config::carried_over(&parent.variant),
    };
    Ok(store::go_json(&image)?)
}

/// Finishes or undoes the moving commits a crash interrupted (`DataRoot::interrupted_moves`),
/// before a command changes the root: a container whose upperdir sits in a new layer dir gets it
/// back, unless an image already uses that layer (then the commit is complete and the container,
/// which `--rm` was removing, is removed). Returns what was done, one line each.
pub(crate) fn recover_interrupted_moves(root: &DataRoot) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for record in root.interrupted_moves()? {
        let upper_home = root.overlay_dir(&record.mount_id).join("diff");
        let layer_diff = root.overlay_dir(&record.cache_id).join("diff");
        let present = |path: &Path| std::fs::symlink_metadata(path).is_ok();
        if present(&upper_home) || !present(&layer_diff) {
            // Given back already, or never moved: nothing to do but forget.
            root.forget_move(&record.container_id)?;
            continue;
        }
        let published = root
            .layers()?
            .into_iter()
            .find(|layer| layer.cache_id == record.cache_id);
        let user = match &published {
            Some(layer) => image_using_layer(root, &layer.chain_id)?,
            None => None,
        };
        if let Some(image_id) = user {
            // The image exists: what the crash cut short is its tag (set right after it) or the
            // container's removal.
            if let Some(text) = &record.reference {
                // Setting the tag again is harmless when the commit got that far.
                let reference = Reference::parse(text).image_context("image name", text)?;
                root.add_reference(&reference, &image_id)?;
                root.set_last_updated(&image_id)?;
            }
            let exists = root
                .containers()?
                .iter()
                .any(|container| container.id == record.container_id);
            if exists {
                container::remove_container(root, &record.container_id)?;
            }
            root.forget_move(&record.container_id)?;
            done.push(format!(
                "finished the commit --rm of container {}: its image exists, the container is removed",
                record.container_id
            ));
            continue;
        }
        root.move_diff(&record.cache_id, &record.mount_id)?;
        match &published {
            Some(layer) => root.remove_layer(&layer.chain_id)?,
            None => root.remove_overlay_dir(&record.cache_id)?,
        }
        root.forget_move(&record.container_id)?;
        done.push(format!(
            "gave container {} its changes back after an interrupted commit --rm",
            record.container_id
        ));
    }
    for line in &done {
        tracing::warn!("{line}");
    }
    Ok(done)
}

/// An image whose layer chain includes `chain_id`.
fn image_using_layer(root: &DataRoot, chain_id: &str) -> Result<Option<String>> {
    for image_id in root.images()? {
        let config = root.image_config(&image_id)?;
        if store::chain_ids(&config.rootfs.diff_ids)
            .iter()
            .any(|id| id == chain_id)
        {
            return Ok(Some(image_id));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const FIXTURE: &[u8] = include_bytes!("../tests/data/image-config-commit.json");

    fn fixture() -> Value {
        serde_json::from_slice(FIXTURE).expect("Docker's commit config parses")
    }

    /// Rebuilds the config of Docker's own `docker commit` (the fixture) from its parent's parts
    /// and the commit inputs, and must reproduce its bytes.
    #[test]
    fn child_config_reproduces_dockers_commit_config() {
        let docker = fixture();
        let mut parent: ParentImage = serde_json::from_slice(FIXTURE).expect("parent");
        parent.history.pop();
        let new_diff_id = parent
            .rootfs
            .as_mut()
            .and_then(|rootfs| rootfs.diff_ids.pop())
            .expect("a diff id");
        let container_config =
            ContainerConfig::from_value(&docker["container_config"]).expect("container config");
        let mut config = container_config.clone();
        dockerfile::apply_changes(&mut config, &["LABEL spec=1".to_string()]).expect("change");

        let bytes = child_config(ChildConfig {
            parent: &parent,
            diff_id: &new_diff_id,
            author: "spec author",
            comment: "spec commit",
            created: docker["created"].as_str().unwrap_or_default(),
            container_id: docker["container"].as_str().unwrap_or_default(),
            container_config,
            config,
        })
        .expect("config");
        let mut expected = String::from_utf8_lossy(FIXTURE)
            .replace("20.10.24+dfsg1", config::DOCKER_VERSION)
            .into_bytes();
        while expected.last() == Some(&b'\n') {
            expected.pop();
        }
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            String::from_utf8_lossy(&expected)
        );
    }

    #[test]
    fn an_empty_change_adds_no_diff_id_and_an_empty_layer_history_entry() {
        let parent: ParentImage = serde_json::from_slice(FIXTURE).expect("parent");
        let bytes = child_config(ChildConfig {
            parent: &parent,
            diff_id: EMPTY_LAYER_DIFF_ID,
            author: "",
            comment: "",
            created: "2026-01-01T00:00:00Z",
            container_id: "c",
            container_config: ContainerConfig::default(),
            config: ContainerConfig::default(),
        })
        .expect("config");
        let config: Value = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(
            config["rootfs"]["diff_ids"].as_array().map(Vec::len),
            fixture()["rootfs"]["diff_ids"].as_array().map(Vec::len)
        );
        let last = config["history"].as_array().and_then(|h| h.last()).cloned();
        assert_eq!(
            last,
            Some(serde_json::json!({"created": "2026-01-01T00:00:00Z", "empty_layer": true}))
        );
        assert!(config.get("author").is_none());
    }

    /// A key `container.Config` does not have survives a commit, after the known ones.
    #[test]
    fn unknown_container_config_keys_survive_after_the_known_ones() {
        let with_unknown = serde_json::json!({"Zeta": [1], "Cmd": ["sh"], "Alpha": {"x": true}});
        let config = ContainerConfig::from_value(&with_unknown).expect("config");
        let bytes = store::go_json(&config).expect("json");
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            text.ends_with(r#""Labels":null,"Zeta":[1],"Alpha":{"x":true}}"#),
            "{text}"
        );
    }
}
