//! `ovl diff`: a container's changes as `docker diff` lists them.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context, Result};
use store::DataRoot;

use crate::{container, resolve, views};

#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// The container: name, id or unique id prefix.
    container: String,
    /// `text` (default: `A /path` lines) or `json` (`[{"Path":..,"Kind":..}]` as the Docker API).
    #[arg(long, default_value = "text")]
    format: String,
}

pub fn diff(root_path: &Path, args: &DiffArgs) -> Result<()> {
    if args.format != "text" && args.format != "json" {
        bail!("unknown --format {}: use text or json", args.format);
    }
    let root = DataRoot::open(root_path)?;
    let record = resolve::container(&root, &args.container)?;
    let changes = container_changes(&root, &record.id, Lock::Take(root_path))
        .with_context(|| format!("listing the changes of container {}", record.id))?;

    let mut out = std::io::BufWriter::new(crate::out::stdout());
    if args.format == "json" {
        let items: Vec<serde_json::Value> = changes
            .iter()
            .map(|change| {
                serde_json::json!({
                    "Path": String::from_utf8_lossy(&change.path),
                    "Kind": change.kind.code(),
                })
            })
            .collect();
        out.write_all(&store::go_json(&items)?)?;
        out.write_all(b"\n")?;
    } else {
        for change in &changes {
            out.write_all(&[change.kind.letter() as u8, b' '])?;
            out.write_all(&change.path)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Whether the caller holds the root's lock, or the lock (and the dockerd check) is to be taken
/// before comparison views are mounted.
pub enum Lock<'a> {
    Held,
    Take(&'a Path),
}

/// The sorted change list of a container: from its upperdir when that says everything, else
/// from Docker's full comparison of the mounted container and init views.
pub fn container_changes(
    root: &DataRoot,
    container_id: &str,
    lock: Lock<'_>,
) -> Result<Vec<diff::Change>> {
    let entry = container::mounts_entry(root, container_id)?;
    if let Some(feature) = views::kernel_default_redirects() {
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
