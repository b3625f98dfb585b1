//! What `ovl diff` and `ovl commit` read of a container: its upperdir and lower layer dirs (the
//! normal, upperdir-cost path), or — when overlay's `redirect_dir` or `metacopy` may have been in
//! effect, so that the upperdir alone does not say what changed — the two merged trees Docker
//! compares: the container's root and the view of its init layer over the image.

use std::path::PathBuf;

use crate::error::{Context, Result};
use mount::OverlaySpec;
use store::{DataRoot, MountsEntry};

use crate::container;

/// The container layer's upperdir and its lower layer dirs, nearest first (init layer, then the
/// image's layers top to bottom).
pub struct LayerDirs {
    pub upper: PathBuf,
    pub lowers: Vec<PathBuf>,
}

/// Both are checked first: the layer dir and its `diff/` real directories, every `l/` link
/// `../<id>/diff` of a real layer dir (`DataRoot::checked_lowers`), so that nothing outside the
/// data root is read as a layer.
pub fn layer_dirs(root: &DataRoot, entry: &MountsEntry) -> Result<LayerDirs> {
    let home = root.overlay_home();
    let upper = root.existing_overlay_dir(&entry.mount_id)?.join("diff");
    let lowers = root
        .checked_lowers(&entry.mount_id)
        .layer_context("reading the lower file of container layer", &entry.mount_id)?
        .iter()
        .map(|lower| home.join(lower))
        .collect();
    Ok(LayerDirs { upper, lowers })
}

/// The mounted merged trees of a container and of its baseline (init layer over the image),
/// unmounted again on drop where this value mounted them.
pub struct MergedViews {
    pub container_root: PathBuf,
    pub baseline_root: PathBuf,
    /// Mount points this value mounted, with whether to remove their directory afterwards.
    unmount: Vec<PathBuf>,
}

impl MergedViews {
    /// Mounts what is not mounted yet: the container read-write as `run-rootfs` does, the
    /// baseline read-only at the init layer's `merged` dir (or, without an init layer and with a
    /// single image layer, that layer's `diff` dir as it is).
    pub fn mount(root: &DataRoot, entry: &MountsEntry) -> Result<MergedViews> {
        container::require_root()?;
        let mut views = MergedViews {
            container_root: PathBuf::new(),
            baseline_root: PathBuf::new(),
            unmount: Vec::new(),
        };
        let features = container::probe(root)?;
        let merged = root.existing_overlay_dir(&entry.mount_id)?.join("merged");
        if merged.is_dir() && mount::is_mountpoint(&merged)? {
            views.container_root = merged;
        } else {
            container::ensure_not_held(root, entry)?;
            views.container_root = container::mount_layer(root, &features, &entry.mount_id)?;
            views.unmount.push(views.container_root.clone());
        }

        let home = root.overlay_home();
        let lowers = root.checked_lowers(&entry.mount_id)?;
        match lowers.as_slice() {
            [] => {
                let empty = root.tmp_dir().join(format!("empty-{}", entry.mount_id));
                container::create_dir_mode(&empty, 0o700)?;
                views.baseline_root = empty;
            }
            [only] => views.baseline_root = home.join(only),
            _ => {
                // Docker mounts the init layer at its own `merged` dir; a container without an
                // init layer (a 500-layer image) gets the view inside its own layer dir.
                let (id, target) = match &entry.init_id {
                    Some(init_id) => (init_id.clone(), format!("{init_id}/merged")),
                    None => (
                        entry.mount_id.clone(),
                        format!("{}/baseline", entry.mount_id),
                    ),
                };
                root.existing_overlay_dir(&id)?;
                container::create_dir_mode(&home.join(&target), 0o700)?;
                let spec = OverlaySpec {
                    home: home.clone(),
                    lowers,
                    upper: None,
                    work: None,
                    target: target.clone(),
                };
                let plan = mount::plan(&spec, &features)
                    .layer_context("planning the read-only mount of", &id)?;
                if let Err(err) = mount::execute(&spec, &plan) {
                    let _ = std::fs::remove_dir(home.join(&target));
                    return Err(err).layer_context(
                        "mounting the init view of container layer",
                        &entry.mount_id,
                    );
                }
                views.baseline_root = home.join(target);
                views.unmount.push(views.baseline_root.clone());
            }
        }
        Ok(views)
    }
}

impl Drop for MergedViews {
    fn drop(&mut self) {
        for target in self.unmount.iter().rev() {
            if let Err(err) = mount::unmount(target) {
                tracing::warn!(path = %target.display(), error = %err, "unmounting a comparison view");
            }
            let _ = std::fs::remove_dir(target);
        }
        let empty = self.baseline_root.file_name().and_then(|n| n.to_str());
        if empty.is_some_and(|n| n.starts_with("empty-")) {
            let _ = std::fs::remove_dir(&self.baseline_root);
        }
    }
}
