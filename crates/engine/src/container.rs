//! Containers: create and mount (`run-rootfs`), unmount, remove.
//!
//! The sequence follows Docker's CreateRWLayer (format.md §4.5): an `-init` layer on the image's top
//! layer, populated through a read-write overlay mount of it, then the container layer on the init
//! layer, then the `layerdb/mounts` entry and the container record, then the mount.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::error::{Context, Error, Result};
use mount::{KernelFeatures, MountPlan, OverlaySpec};
use store::{ContainerRecord, DataRoot, Layer, MountsEntry};

use crate::access::{self, Create};
use crate::{resolve, Event, Events};

/// The kernel's overlay stack limit (OVL_MAX_STACK in fs/overlayfs/params.h): at most 500 lower
/// layers in one mount. A container needs its image layers plus the init layer below its upperdir.
const MAX_LOWERS: usize = 500;

/// What `run-rootfs` creates: a container of `image` (`name:tag`, id or unique id prefix).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub image: String,
    /// The container's name (an existing container of that name and image is mounted again).
    pub name: Option<String>,
    /// Where to write the container id (which must not exist), as `docker run --cidfile`.
    pub cidfile: Option<PathBuf>,
    /// What the container runs, where it differs from the image (`docker run`'s options).
    pub run: RunOverrides,
    /// Also write an OCI runtime bundle of the container into this directory
    /// ([`crate::bundle`]).
    pub bundle: Option<PathBuf>,
}

/// `docker run`'s options for the container's process, merged into the image's config as
/// dockerd merges them (moby `daemon.merge`) and kept in the container's record.
#[derive(Debug, Clone, Default)]
pub struct RunOverrides {
    /// The command (replaces the image's `Cmd`).
    pub command: Vec<String>,
    /// `--entrypoint` (`Some("")` clears the image's).
    pub entrypoint: Option<String>,
    /// `-e KEY=VALUE`, in order (the caller resolves a bare `KEY` from its environment).
    pub env: Vec<String>,
    /// `-u USER[:GROUP]`.
    pub user: Option<String>,
    /// `-w DIR` (absolute).
    pub workdir: Option<String>,
}

impl RunOverrides {
    fn is_empty(&self) -> bool {
        self.command.is_empty()
            && self.entrypoint.is_none()
            && self.env.is_empty()
            && self.user.is_none()
            && self.workdir.is_none()
    }
}

/// Creates a container (Docker's CreateRWLayer: init layer, container layer, mounts entry,
/// record) and mounts its root filesystem; returns the mounted path. A failure removes what the
/// call created.
pub fn run_rootfs(root_path: &Path, args: &CreateOptions) -> Result<PathBuf> {
    require_root()?;
    if let Some(cidfile) = &args.cidfile {
        if cidfile.exists() {
            return Err(Error::invalid(format!(
                "container ID file found, make sure the other container isn't running or delete {}",
                cidfile.display()
            )));
        }
    }
    let (root, _lock) = access::open_for_change(root_path, Create::Yes, "create a container")?;
    let image_id = resolve::image(&root, &args.image)?;
    if let Some(name) = &args.name {
        validate_name(name)?;
        if let Ok(existing) = resolve::container(&root, name) {
            if existing.name != *name {
                // A prefix of another container's id, not a name: a new container may take it.
            } else if existing.image_id != image_id {
                return Err(Error::NameInUse {
                    name: name.clone(),
                    container_id: existing.id,
                });
            } else if !args.run.is_empty() {
                return Err(Error::invalid(format!(
                    "container {name} exists already: its command, environment, user and \
                     working directory are those it was created with"
                )));
            } else {
                let merged = mount_container(&root, &existing.id)?;
                if let Some(dir) = &args.bundle {
                    crate::bundle::write(&existing, &merged, dir)
                        .container_context("writing the runtime bundle of container", name)?;
                }
                write_cidfile(args.cidfile.as_deref(), &existing.id)?;
                return Ok(merged);
            }
        }
    }
    if let Some(workdir) = &args.run.workdir {
        if !workdir.starts_with('/') {
            return Err(Error::invalid(format!(
                "the working directory '{workdir}' is invalid, it needs to be an absolute path"
            )));
        }
    }
    let config = root.image_config(&image_id)?;
    let chain_ids = store::chain_ids(&config.rootfs.diff_ids);
    let top = match chain_ids.last() {
        Some(top_chain) => Some(root.layer(top_chain)?.ok_or_else(|| {
            Error::inconsistent(format!(
                "image {} names layer {top_chain}, which is not in the data root",
                args.image
            ))
        })?),
        None => None,
    };
    let features = probe(&root)?;
    let container_id = store::random_id()?;
    let name = match &args.name {
        Some(name) => name.clone(),
        None => generate_name(&root)?,
    };
    let mut created = Created::new(&root, &container_id);
    let mount_id = store::random_id()?;
    // An image as deep as the kernel's stack limit leaves no room for an init layer: its init
    // entries then go into the container layer itself (Docker accepts a mounts entry without init-id).
    let with_init = chain_ids.len() < MAX_LOWERS;
    // The image's lower entries are checked once for both mounts (init layer, container).
    let mut checked_lowers = CheckedLowers::default();
    let init_id = format!("{mount_id}-init");
    let container_parent = if with_init {
        created.overlay_dirs.push(init_id.clone());
        root.create_overlay_dir(&init_id, top.as_ref().map(|layer| layer.cache_id.as_str()))?;
        populate_init(&root, &features, &init_id, &mut checked_lowers)?;
        Some(init_id.as_str())
    } else {
        top.as_ref().map(|layer| layer.cache_id.as_str())
    };
    created.overlay_dirs.push(mount_id.clone());
    root.create_overlay_dir(&mount_id, container_parent)?;
    let mounts_entry = MountsEntry {
        container_id: container_id.clone(),
        mount_id: mount_id.clone(),
        init_id: with_init.then(|| init_id.clone()),
        parent: top.as_ref().map(|layer: &Layer| layer.chain_id.clone()),
    };
    let record = container_record(
        &container_id,
        &name,
        &image_id,
        &args.image,
        config.config.as_ref(),
        &args.run,
    );
    created.mounts_entry = true;
    created.record = true;
    root.write_new_container(&mounts_entry, &record)?;
    let merged = mount_layer_once(&root, &features, &mount_id, &mut checked_lowers, false)?;
    if !with_init {
        mount::populate_init_layer(&merged, crate::kernel::resolver()?)
            .context("populating the init entries of the container layer")?;
    }
    if let Some(dir) = &args.bundle {
        crate::bundle::write(&record, &merged, dir)
            .container_context("writing the runtime bundle of container", &name)?;
    }
    write_cidfile(args.cidfile.as_deref(), &container_id)?;
    created.keep();
    Ok(merged)
}

/// The image of a container as moby's list names it (`refreshImage` in daemon/list.go): the name
/// the container was created with while it still names the container's image, else the image id.
pub fn listed_image(root: &DataRoot, record: &ContainerRecord) -> String {
    let named = record
        .config
        .get("Image")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    if named.is_empty() || named == record.image_id {
        return record.image_id.clone();
    }
    match resolve::image(root, named) {
        Ok(image_id) if image_id == record.image_id => named.to_string(),
        _ => record.image_id.clone(),
    }
}

/// Mounts the existing containers `texts` name (those mounted already stay as they are),
/// reporting [`Event::Mounted`] for each.
pub fn mount(root_path: &Path, texts: &[String], events: Events<'_>) -> Result<()> {
    require_root()?;
    let (root, _lock) = access::open_for_change(root_path, Create::No, "mount containers")?;
    for text in texts {
        let container = resolve::container(&root, text)?;
        let path =
            mount_container(&root, &container.id).container_context("mounting container", text)?;
        events(Event::Mounted {
            container_id: container.id,
            path,
        })?;
    }
    Ok(())
}

/// Unmounts the containers `texts` name, in order, reporting [`Event::Unmounted`] for each.
pub fn umount(root_path: &Path, texts: &[String], events: Events<'_>) -> Result<()> {
    require_root()?;
    let (root, _lock) = access::open_for_change(root_path, Create::No, "unmount containers")?;
    for text in texts {
        let container = resolve::container(&root, text)?;
        let entry = mounts_entry(&root, &container.id)?;
        unmount_layer(&root, &entry.mount_id).container_context("container", text)?;
        events(Event::Unmounted { text: text.clone() })?;
    }
    Ok(())
}

/// Removes the containers `texts` name, in order, reporting [`Event::ContainerRemoved`] for
/// each; a mounted one only with `force` (it is unmounted first).
pub fn rm(root_path: &Path, texts: &[String], force: bool, events: Events<'_>) -> Result<()> {
    let (root, _lock) = access::open_for_change(root_path, Create::No, "remove containers")?;
    for text in texts {
        let container = resolve::container(&root, text)?;
        if is_mounted(&root, &container.id) {
            if !force {
                return Err(Error::ContainerMounted {
                    reference: text.clone(),
                });
            }
            require_root()?;
        }
        remove_container(&root, &container.id).container_context("removing container", text)?;
        events(Event::ContainerRemoved { text: text.clone() })?;
    }
    Ok(())
}

/// Unmounts (if needed) and removes a container's layers, mounts entry and record, in Docker's
/// order: the record first says the removal is in progress, the record goes last, and every step
/// accepts that an earlier, interrupted removal already did it.
///
/// On a full data root the mark cannot be written (it is a new file renamed over the record);
/// the removal then goes on without it, as Docker's does (it logs that it could not save the
/// dying container), since removing the container is what frees the space.
///
/// Its layer dirs are checked before anything changes (`DataRoot::checked_overlay_dir`): a
/// symlinked layer dir, `merged/`, `diff/` or `work/` is refused naming it, with nothing removed.
pub fn remove_container(root: &DataRoot, container_id: &str) -> Result<()> {
    if let Some(entry) = root.mounts_entry(container_id)? {
        for id in std::iter::once(&entry.mount_id).chain(entry.init_id.iter()) {
            root.checked_overlay_dir(id)?;
        }
    }
    if let Err(err) = root.mark_removal_in_progress(container_id) {
        if !err.is_out_of_space() {
            return Err(err.into());
        }
        tracing::warn!(
            container = container_id,
            error = %err,
            "the data root is full: removing the container without marking it first"
        );
    }
    if let Some(entry) = root.mounts_entry(container_id)? {
        unmount_layer(root, &entry.mount_id)?;
        root.remove_overlay_dir(&entry.mount_id)?;
        if let Some(init_id) = &entry.init_id {
            root.remove_overlay_dir(init_id)?;
        }
    }
    // Also when an earlier, interrupted removal left the entry without its mount-id.
    root.remove_mounts_entry(container_id)?;
    root.remove_container(container_id)?;
    Ok(())
}

/// The container layer's size and that plus the image's (moby `GetContainerLayerSize`): `-1`
/// for what cannot be measured, `(0, 0)` for a container without a mounts entry.
pub fn layer_sizes(root: &DataRoot, container_id: &str) -> (i64, i64) {
    let Ok(Some(entry)) = root.mounts_entry(container_id) else {
        return (0, 0);
    };
    let size_rw = root.layer_diff_size(&entry.mount_id).unwrap_or(-1);
    let image_size = match &entry.parent {
        None => return (size_rw, 0),
        Some(top) => root
            .layer_chain(top)
            .map(|chain| chain.iter().map(|layer| layer.size).sum::<i64>()),
    };
    match image_size {
        Ok(size) if size_rw != -1 => (size_rw, size + size_rw),
        Ok(size) => (size_rw, size),
        Err(_) => (size_rw, -1),
    }
}

/// Whether the container's merged dir is mounted now.
pub fn is_mounted(root: &DataRoot, container_id: &str) -> bool {
    let Ok(Some(entry)) = root.mounts_entry(container_id) else {
        return false;
    };
    let Ok(Some(dir)) = root.checked_overlay_dir(&entry.mount_id) else {
        return false;
    };
    let merged = dir.join("merged");
    merged.is_dir() && mount::is_mountpoint(&merged).unwrap_or(false)
}

pub(crate) fn mounts_entry(root: &DataRoot, container_id: &str) -> Result<MountsEntry> {
    root.mounts_entry(container_id)?.ok_or_else(|| {
        Error::inconsistent(format!(
            "container {container_id} has no layerdb/mounts entry"
        ))
    })
}

/// Mounts an existing container (again) and returns its merged path.
pub(crate) fn mount_container(root: &DataRoot, container_id: &str) -> Result<PathBuf> {
    let entry = mounts_entry(root, container_id)?;
    let merged = root.existing_overlay_dir(&entry.mount_id)?.join("merged");
    if merged.is_dir() && mount::is_mountpoint(&merged)? {
        return Ok(merged);
    }
    let features = probe(root)?;
    ensure_not_held(root, &entry)?;
    mount_layer(root, &features, &entry.mount_id)
}

/// Whether an overlay still holds the container's upperdir, as the kernel answers
/// (`mount::upper_in_use`, with the driver's `l/` as the probe's lower).
pub(crate) fn upper_use(root: &DataRoot, entry: &MountsEntry) -> Result<mount::UpperUse> {
    let dir = root.existing_overlay_dir(&entry.mount_id)?;
    Ok(mount::upper_in_use(
        &root.overlay_home().join("l"),
        &dir.join("diff"),
        &dir.join("work"),
    ))
}

/// Refuses to mount a container again while an overlay of it lives on where this process cannot
/// see it (`mount::upper_in_use`): two overlays on one upper and work directory are undefined,
/// and the new mount empties the work directory the live one uses. Where the kernel cannot say,
/// the container is mounted as before.
pub(crate) fn ensure_not_held(root: &DataRoot, entry: &MountsEntry) -> Result<()> {
    match upper_use(root, entry)? {
        mount::UpperUse::InUse => Err(Error::ContainerHeld {
            reference: entry.container_id.clone(),
        }),
        mount::UpperUse::Free | mount::UpperUse::Unknown(_) => Ok(()),
    }
}

pub(crate) fn probe(root: &DataRoot) -> Result<KernelFeatures> {
    // Probed once per boot, as dockerd probes once when it starts (`ovl info` always probes).
    let features =
        KernelFeatures::probe_cached(&root.overlay_home(), &root.root().join("ovl.probe"))
            .context("checking overlay support of the data root's filesystem")?;
    crate::kernel::restrict(features)
}

/// Mounts `H/<id>` read-write on its lowers at `H/<id>/merged` and returns that path. The layer
/// dir is checked first (`DataRoot::existing_overlay_dir`) and its `lower` entries read as text;
/// `mount::execute` then checks every path on the descriptors it mounts through (real
/// directories, each lower link a relative `../<id>/diff`), refusing a symlink anywhere in them
/// by its name, and removes `merged/` again when it refuses.
pub(crate) fn mount_layer(root: &DataRoot, features: &KernelFeatures, id: &str) -> Result<PathBuf> {
    mount_layer_once(root, features, id, &mut CheckedLowers::default(), false)
}

/// Lower entries that one command checked already on descriptors (`mount::execute_once`), for
/// its later mounts. Only for mounts under the root's lock, which nothing else changes.
#[derive(Default)]
struct CheckedLowers {
    mount: HashSet<String>,
}

/// [`mount_layer`] for one of several mounts of the same command (see [`CheckedLowers`]);
/// `volatile` as `mount::plan_volatile` says.
fn mount_layer_once(
    root: &DataRoot,
    features: &KernelFeatures,
    id: &str,
    checked: &mut CheckedLowers,
    volatile: bool,
) -> Result<PathBuf> {
    let home = root.overlay_home();
    let merged = root.existing_overlay_dir(id)?.join("merged");
    let lowers = root.lower_entries(id)?;
    if lowers.is_empty() {
        return Err(Error::inconsistent(format!(
            "layer {id} has no lower layers to mount"
        )));
    }
    create_dir_mode(&merged, 0o700)?;
    let spec = OverlaySpec {
        home: home.clone(),
        lowers,
        upper: Some(format!("{id}/diff")),
        work: Some(format!("{id}/work")),
        target: format!("{id}/merged"),
    };
    let plan = if volatile {
        mount::plan_volatile(&spec, features)
    } else {
        mount::plan(&spec, features)
    }
    .layer_context("planning the mount of layer", id)?;
    tracing::debug!(?plan, "mounting");
    if let Err(err) = mount::execute_once(&spec, &plan, &mut checked.mount) {
        let _ = std::fs::remove_dir(&merged);
        return Err(Error::MountLayer {
            id: id.to_string(),
            n_lowers: spec.lowers.len(),
            plan: plan_kind(&plan),
            source: Box::new(err),
        });
    }
    Ok(merged)
}

fn plan_kind(plan: &MountPlan) -> &'static str {
    match plan {
        MountPlan::Absolute { .. } => "absolute lowerdir paths",
        MountPlan::Relative { .. } => "relative lowerdir paths",
        MountPlan::LowerdirPlus { .. } => "lowerdir+",
    }
}

/// Unmounts `H/<id>/merged` if mounted (lazily when it is busy) and removes the directory, as
/// Docker's Put does.
pub(crate) fn unmount_layer(root: &DataRoot, id: &str) -> Result<()> {
    unmount_layer_with(root, id, mount::unmount)
}

/// [`unmount_layer`] that fails on a busy mount instead of detaching it: afterwards nothing can
/// write the layer's upperdir through it any more.
pub(crate) fn unmount_layer_now(root: &DataRoot, id: &str) -> Result<()> {
    unmount_layer_with(root, id, mount::unmount_now)
}

fn unmount_layer_with(
    root: &DataRoot,
    id: &str,
    unmount: fn(&Path) -> mount::Result<()>,
) -> Result<()> {
    let Some(dir) = root.checked_overlay_dir(id)? else {
        return Ok(());
    };
    let merged = dir.join("merged");
    if !merged.is_dir() {
        return Ok(());
    }
    if mount::is_mountpoint(&merged)? {
        unmount(&merged)?;
    }
    std::fs::remove_dir(&merged).map_err(|source| Error::io("removing", &merged, source))?;
    Ok(())
}

/// Populates the init layer through a read-write overlay mount of it, as Docker does, so that
/// copy-ups of existing image directories keep their lower mode, owner and times. The mount is
/// `volatile` where the kernel takes it: its unmount does not sync the data root's filesystem,
/// which the caller syncs once for everything the new container writes
/// (`DataRoot::write_new_container`) before its record is published.
fn populate_init(
    root: &DataRoot,
    features: &KernelFeatures,
    init_id: &str,
    checked: &mut CheckedLowers,
) -> Result<()> {
    let lowers = root.lower_entries(init_id)?;
    if lowers.is_empty() {
        // An image without layers: the init layer has no parent and is written directly.
        return mount::populate_init_layer(
            &root.overlay_dir(init_id).join("diff"),
            crate::kernel::resolver()?,
        )
        .layer_context("populating init layer", init_id);
    }
    let merged = mount_layer_once(root, features, init_id, checked, true)?;
    let populated = mount::populate_init_layer(&merged, crate::kernel::resolver()?)
        .layer_context("populating init layer", init_id);
    // Lazily when busy, as Docker's Put: the volatile mark is only read when a mount starts.
    let unmounted = unmount_layer(root, init_id);
    populated?;
    unmounted?;
    mount::clear_volatile(&root.overlay_dir(init_id).join("work"))
        .layer_context("clearing the volatile mark of init layer", init_id)
}

/// The container record: the image's config with its `Image` set to what the user named.
fn container_record(
    container_id: &str,
    name: &str,
    image_id: &str,
    image_text: &str,
    image_config: Option<&serde_json::Value>,
    run: &RunOverrides,
) -> ContainerRecord {
    let mut config = image_config
        .cloned()
        .unwrap_or_else(|| serde_json::json!({}));
    if let Some(object) = config.as_object_mut() {
        merge_run_options(object, run);
    }
    // Docker names the host after the first 12 characters of the id (`stringid.TruncateID`).
    let hostname = container_id.get(..12).unwrap_or(container_id).to_string();
    let mut path = String::new();
    let mut args = Vec::new();
    if let Some(object) = config.as_object_mut() {
        object.insert("Hostname".into(), serde_json::Value::String(hostname));
        object.insert(
            "Image".into(),
            serde_json::Value::String(image_text.to_string()),
        );
        // Docker's create merges the image's labels into the run's (always a map, maybe empty).
        if object.get("Labels").is_none_or(serde_json::Value::is_null) {
            object.insert("Labels".into(), serde_json::json!({}));
        }
        let mut command = store::json_strings(object.get("Entrypoint"));
        command.extend(store::json_strings(object.get("Cmd")));
        if let Some((first, rest)) = command.split_first() {
            path = first.clone();
            args = rest.to_vec();
        }
    }
    ContainerRecord {
        id: container_id.to_string(),
        name: name.to_string(),
        image_id: image_id.to_string(),
        created: store::now_rfc3339_nano(),
        path,
        args,
        config,
        running: false,
        state: Default::default(),
    }
}

/// Merges `docker run`'s options into the image's config as moby's `daemon.merge` does: the
/// run's command replaces `Cmd`; a non-empty `--entrypoint` replaces `Entrypoint` and drops the
/// image's `Cmd`; the run's variables come first, then the image's whose names the run does not
/// set.
fn merge_run_options(config: &mut serde_json::Map<String, serde_json::Value>, run: &RunOverrides) {
    use serde_json::Value;
    let strings =
        |items: &[String]| Value::Array(items.iter().cloned().map(Value::String).collect());
    if let Some(entrypoint) = &run.entrypoint {
        if entrypoint.is_empty() {
            config.insert("Entrypoint".into(), Value::Array(Vec::new()));
        } else {
            config.insert(
                "Entrypoint".into(),
                strings(std::slice::from_ref(entrypoint)),
            );
            config.insert("Cmd".into(), Value::Null);
        }
    }
    if !run.command.is_empty() {
        config.insert("Cmd".into(), strings(&run.command));
    }
    if !run.env.is_empty() {
        let key = |variable: &str| variable.split('=').next().unwrap_or_default().to_string();
        let mut env = run.env.clone();
        let image_env = store::json_strings(config.get("Env"));
        for variable in image_env {
            if !run.env.iter().any(|own| key(own) == key(&variable)) {
                env.push(variable);
            }
        }
        config.insert("Env".into(), strings(&env));
    }
    if let Some(user) = &run.user {
        config.insert("User".into(), Value::String(user.clone()));
    }
    if let Some(workdir) = &run.workdir {
        config.insert("WorkingDir".into(), Value::String(workdir.clone()));
    }
}

/// Docker's container name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let valid_first = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let valid_rest =
        chars.clone().count() >= 1 && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !(valid_first && valid_rest) {
        return Err(Error::invalid(format!(
            "invalid container name \"{name}\", only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    Ok(())
}

/// A Docker-style `adjective_name` not used by another container.
fn generate_name(root: &DataRoot) -> Result<String> {
    const ADJECTIVES: [&str; 16] = [
        "brave", "calm", "eager", "fervent", "gallant", "happy", "jolly", "keen", "lucid",
        "modest", "nifty", "quirky", "serene", "tender", "vibrant", "zealous",
    ];
    const NAMES: [&str; 16] = [
        "babbage", "curie", "dijkstra", "euler", "feynman", "goldberg", "hopper", "knuth",
        "lamport", "lovelace", "noether", "ritchie", "shannon", "thompson", "turing", "wozniak",
    ];
    let taken: Vec<String> = root.containers()?.into_iter().map(|c| c.name).collect();
    for attempt in 0..64u32 {
        let random = store::random_id()?;
        let byte = |idx: usize| usize::from_str_radix(&random[idx..idx + 2], 16).unwrap_or(0);
        let mut name = format!("{}_{}", ADJECTIVES[byte(0) % 16], NAMES[byte(2) % 16]);
        if attempt > 0 {
            name.push_str(&(byte(4) % 10).to_string());
        }
        if !taken.contains(&name) {
            return Ok(name);
        }
    }
    Err(Error::NoFreeName)
}

fn write_cidfile(cidfile: Option<&Path>, container_id: &str) -> Result<()> {
    if let Some(path) = cidfile {
        std::fs::write(path, container_id)
            .map_err(|source| Error::io("writing container ID file", path, source))?;
    }
    Ok(())
}

pub(crate) fn create_dir_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .map_err(|source| Error::io("chmod", path, source))?;
            Ok(())
        }
        // Only a real directory: a symlink in its place is refused, never used.
        Err(err)
            if err.kind() == std::io::ErrorKind::AlreadyExists
                && std::fs::symlink_metadata(path).is_ok_and(|meta| meta.is_dir()) =>
        {
            Ok(())
        }
        Err(err) => Err(Error::io("creating", path, err)),
    }
}

pub(crate) fn require_root() -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        return Err(Error::NeedsRoot);
    }
    Ok(())
}

/// What a failed `run-rootfs` created, removed again on drop unless kept.
struct Created<'a> {
    root: &'a DataRoot,
    container_id: String,
    overlay_dirs: Vec<String>,
    mounts_entry: bool,
    record: bool,
    keep: bool,
}

impl<'a> Created<'a> {
    fn new(root: &'a DataRoot, container_id: &str) -> Self {
        Created {
            root,
            container_id: container_id.to_string(),
            overlay_dirs: Vec::new(),
            mounts_entry: false,
            record: false,
            keep: false,
        }
    }
    fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for Created<'_> {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        for id in self.overlay_dirs.iter().rev() {
            let _ = unmount_layer(self.root, id);
            if let Err(err) = self.root.remove_overlay_dir(id) {
                tracing::error!(%id, error = %err, "removing a layer dir of a failed run-rootfs");
            }
        }
        if self.mounts_entry {
            let _ = self.root.remove_mounts_entry(&self.container_id);
        }
        if self.record {
            let _ = self.root.remove_container(&self.container_id);
        }
    }
}
