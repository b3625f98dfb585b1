//! A container's changes as `docker diff` lists them (format.md §6.4).

use std::path::Path;

use crate::error::{Context, Result};
use mount::OverlayDefaults;
use store::DataRoot;

use crate::{container, resolve, views};

/// The sorted change list of the container `text` names (name, id or unique id prefix). The root
/// is opened read-only; only when the comparison views must be mounted are ovl's lock and the
/// dockerd guard taken (`access::lock_opened`).
pub fn changes(root_path: &Path, text: &str) -> Result<Vec<diff::Change>> {
    let root = DataRoot::open(root_path)?;
    let record = resolve::container(&root, text)?;
    let defaults = mount::OverlayDefaults::read();
    container_changes(&root, &record.id, defaults, Lock::Take(root_path))
        .container_context("listing the changes of container", &record.id)
}

/// Whether the caller holds the root's lock, or the lock (and the dockerd check) is to be taken
/// before comparison views are mounted.
pub enum Lock<'a> {
    Held,
    Take(&'a Path),
}

/// The sorted change list of a container: from its upperdir when that says everything (and
/// `defaults` enables neither redirects nor metacopy), else from Docker's full comparison of the
/// mounted container and init views.
pub fn container_changes(
    root: &DataRoot,
    container_id: &str,
    defaults: OverlayDefaults,
    lock: Lock<'_>,
) -> Result<Vec<diff::Change>> {
    let entry = container::mounts_entry(root, container_id)?;
    if let Some(feature) = defaults.first_enabled() {
        tracing::debug!(
            container = container_id,
            feature,
            "overlay {feature} is enabled by default: comparing the full merged trees"
        );
        return full_changes(root, &entry, lock);
    }
    let dirs = views::layer_dirs(root, &entry)?;
    let lowers: Vec<&Path> = dirs.lowers.iter().map(|p| p.as_path()).collect();
    match diff::upper_changes(&dirs.upper, &lowers) {
        Ok(changes) => Ok(changes),
        Err(diff::Error::NeedsFullComparison { path, reason }) => {
            tracing::debug!(
                container = container_id,
                path = %String::from_utf8_lossy(&path),
                reason,
                "the upperdir alone does not describe the changes: comparing the full merged trees"
            );
            full_changes(root, &entry, lock)
        }
        Err(err) => Err(err.into()),
    }
}

fn full_changes(
    root: &DataRoot,
    entry: &store::MountsEntry,
    lock: Lock<'_>,
) -> Result<Vec<diff::Change>> {
    // Mounting views changes the root (mount points, a `merged` dir): like every command that
    // changes it, only under the lock and with no dockerd using the root.
    let _lock = match lock {
        Lock::Held => None,
        Lock::Take(root_path) => Some(crate::access::lock_opened(
            root,
            root_path,
            "mount the comparison views of a container",
        )?),
    };
    let views = views::MergedViews::mount(root, entry)?;
    let changes = diff::tree_changes(&views.container_root, &views.baseline_root)?;
    Ok(changes)
}
