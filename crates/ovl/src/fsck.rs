//! `ovl fsck [--verify-content] [--repair]`: checks the data root against the format, and repairs
//! what an interrupted operation left.

use std::io::{BufReader, Write};
use std::os::fd::AsFd;
use std::path::Path;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use store::{DataRoot, GarbageKind, Severity};

use crate::access::{self, Create};
use crate::container;

#[derive(clap::Args, Debug)]
pub struct FsckArgs {
    /// Also reassemble every layer from its tar-split and `diff/` and check it against its DiffID.
    #[arg(long)]
    verify_content: bool,
    /// First finish interrupted container removals, remove what interrupted operations left
    /// (write-sets, `-removing` layers, orphan overlay2 dirs, dangling `l/` links) and restore
    /// lost `l/` links; never removes a layer, image or container that is referenced.
    #[arg(long)]
    repair: bool,
}

/// Prints one line per finding (`corrupt:` or `leftover:`, the path, the problem) and a summary;
/// fails when anything is corrupt. Leftovers are what `ovl prune` removes.
pub fn fsck(root_path: &Path, args: &FsckArgs) -> Result<()> {
    let (root, _lock) = if args.repair {
        access::open_for_change(root_path, Create::No, "repair the data root")?
    } else {
        // A root whose layout is damaged (a symlinked `overlay2/`, `overlay2/l`, ...) is opened
        // all the same: the check reports each such path as corrupt and reads nothing below it.
        let root = DataRoot::open_damaged(root_path)?;
        let lock = root.lock()?;
        (root, lock)
    };
    if args.repair {
        repair(&root)?;
    }
    let mut report = root.check()?;
    let mut n_verified = 0;
    if args.verify_content && store::check_layout(root_path).is_ok() {
        for layer in root.layers()? {
            n_verified += 1;
            if let Err(err) = verify_layer(&root, &layer) {
                report.findings.push(store::Finding {
                    severity: Severity::Corruption,
                    path: root.overlay_dir(&layer.cache_id).join("diff"),
                    problem: format!("layer {}: {err:#}", layer.chain_id),
                });
            }
        }
        report.findings.sort();
    }
    let mut out = crate::out::stdout();
    for finding in &report.findings {
        let kind = match finding.severity {
            Severity::Corruption => "corrupt",
            Severity::Leftover => "leftover",
            Severity::Unknown => "unknown",
        };
        writeln!(
            out,
            "{kind}: {}: {}",
            finding.path.display(),
            finding.problem
        )?;
    }
    let count = |severity: Severity| {
        report
            .findings
            .iter()
            .filter(|finding| finding.severity == severity)
            .count()
    };
    let n_corrupt = count(Severity::Corruption);
    let n_leftovers = count(Severity::Leftover);
    let n_unknown = count(Severity::Unknown);
    let counts = &report.counts;
    writeln!(
        out,
        "{} layers, {} images, {} tags, {} containers checked{}: {n_corrupt} corrupt, {n_leftovers} leftovers{}",
        counts.n_layers,
        counts.n_images,
        counts.n_tags,
        counts.n_containers,
        if args.verify_content {
            format!(" ({n_verified} layers' content verified)")
        } else {
            String::new()
        },
        if n_unknown > 0 {
            format!(", {n_unknown} unknown entries left alone")
        } else {
            String::new()
        }
    )?;
    out.flush()?;
    if n_corrupt > 0 {
        bail!(
            "data root {} has {n_corrupt} corrupt entries",
            root_path.display()
        );
    }
    Ok(())
}

/// The leftovers of interrupted operations, removed the way `ovl prune` removes them.
const LEFTOVER_KINDS: [GarbageKind; 4] = [
    GarbageKind::InterruptedRemoval,
    GarbageKind::WriteSet,
    GarbageKind::OrphanLayerDir,
    GarbageKind::DanglingLink,
];

fn repair(root: &DataRoot) -> Result<()> {
    let mut out = crate::out::stdout();
    for container in root.containers()? {
        if container.state.removal_in_progress {
            container::remove_container(root, &container.id)
                .with_context(|| format!("finishing the removal of container {}", container.id))?;
            writeln!(
                out,
                "repaired: finished removing container {}",
                container.id
            )?;
        }
    }
    let mut plan = root.plan_gc()?;
    plan.items
        .retain(|item| LEFTOVER_KINDS.contains(&item.kind));
    root.execute_gc(&plan, &mut |item| {
        let _ = writeln!(out, "repaired: removed {} ({})", item.name, item.reason);
    })?;
    for layer in root.layers()? {
        if root.restore_link(&layer.cache_id)? {
            writeln!(
                out,
                "repaired: restored the l/ link of layer {}",
                layer.chain_id
            )?;
        }
    }
    for container in root.containers()? {
        if let Some(entry) = root.mounts_entry(&container.id)? {
            for id in std::iter::once(&entry.mount_id).chain(entry.init_id.as_ref()) {
                if root.restore_link(id)? {
                    writeln!(
                        out,
                        "repaired: restored the l/ link of {id} (container {})",
                        container.id
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// Reassembles the layer's tar and compares its sha256 with the DiffID.
fn verify_layer(root: &DataRoot, layer: &store::Layer) -> Result<()> {
    let tar_split = root.tar_split_path(&layer.chain_id)?;
    let file = store::open_regular(&tar_split)
        .with_context(|| format!("opening {}", tar_split.display()))?;
    let diff = root.existing_overlay_dir(&layer.cache_id)?.join("diff");
    let diff_dir = rustix::fs::open(
        &diff,
        rustix::fs::OFlags::RDONLY
            | rustix::fs::OFlags::DIRECTORY
            | rustix::fs::OFlags::NOFOLLOW
            | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .with_context(|| format!("opening {}", diff.display()))?;
    let mut hasher = HashWriter(Sha256::new());
    tar_split::reassemble(
        BufReader::new(file),
        diff_dir.as_fd(),
        crate::kernel::resolver()?,
        &mut hasher,
    )
    .context("reassembling its tar")?;
    let actual = format!("sha256:{:x}", hasher.0.finalize());
    if actual != layer.diff_id {
        bail!(
            "its content hashes to {actual}, not its DiffID {}",
            layer.diff_id
        );
    }
    Ok(())
}

struct HashWriter(Sha256);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
