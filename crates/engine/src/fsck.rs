//! The engine part of fsck: the check of the data root against the format, content
//! verification, and the repair of what an interrupted operation left.

use std::io::BufReader;
use std::os::fd::AsFd;
use std::path::Path;

use crate::error::{Context, Error, Result};
use store::{CheckReport, DataRoot, GarbageKind, Severity};

use crate::access::{self, Create};
use crate::{container, Event, Events};

/// What `fsck` found: the store's findings (with content verification failures added, sorted)
/// and how many layers' content was verified.
#[derive(Debug)]
pub struct Checked {
    pub report: CheckReport,
    pub n_verified: usize,
}

/// Checks the data root against the format; with `verify_content`, also reassembles every layer
/// from its tar-split and `diff/` and checks it against its DiffID. With `repair`, first finishes
/// interrupted container removals, removes what interrupted operations left and restores lost
/// `l/` links (reported as [`Event::Repaired`]), under the lock and the dockerd guard.
pub fn fsck(
    root_path: &Path,
    verify_content: bool,
    repair_first: bool,
    events: Events<'_>,
) -> Result<Checked> {
    let (root, _lock) = if repair_first {
        access::open_for_change(root_path, Create::No, "repair the data root")?
    } else {
        // A root whose layout is damaged (a symlinked `overlay2/`, `overlay2/l`, ...) is opened
        // all the same: the check reports each such path as corrupt and reads nothing below it.
        let root = DataRoot::open_damaged(root_path)?;
        let lock = root.lock()?;
        (root, lock)
    };
    if repair_first {
        repair(&root, events)?;
    }
    let mut report = root.check()?;
    let mut n_verified = 0;
    if verify_content && store::check_layout(root_path).is_ok() {
        for layer in root.layers()? {
            n_verified += 1;
            if let Err(err) = verify_layer(&root, &layer) {
                report.findings.push(store::Finding {
                    severity: Severity::Corruption,
                    path: root.overlay_dir(&layer.cache_id).join("diff"),
                    problem: format!(
                        "layer {}: {}",
                        layer.chain_id,
                        crate::error::chain_text(&err)
                    ),
                });
            }
        }
        report.findings.sort();
    }
    Ok(Checked { report, n_verified })
}

/// The leftovers of interrupted operations, removed the way `ovl prune` removes them.
const LEFTOVER_KINDS: [GarbageKind; 4] = [
    GarbageKind::InterruptedRemoval,
    GarbageKind::WriteSet,
    GarbageKind::OrphanLayerDir,
    GarbageKind::DanglingLink,
];

fn repair(root: &DataRoot, events: Events<'_>) -> Result<()> {
    for container in root.containers()? {
        if container.state.removal_in_progress {
            container::remove_container(root, &container.id)
                .container_context("finishing the removal of container", &container.id)?;
            events(Event::Repaired {
                what: format!("finished removing container {}", container.id),
            })?;
        }
    }
    let mut plan = root.plan_gc()?;
    plan.items
        .retain(|item| LEFTOVER_KINDS.contains(&item.kind));
    root.execute_gc(&plan, &mut |item| {
        let _ = events(Event::Repaired {
            what: format!("removed {} ({})", item.name, item.reason),
        });
    })?;
    for layer in root.layers()? {
        if root.restore_link(&layer.cache_id)? {
            events(Event::Repaired {
                what: format!("restored the l/ link of layer {}", layer.chain_id),
            })?;
        }
    }
    for container in root.containers()? {
        if let Some(entry) = root.mounts_entry(&container.id)? {
            for id in std::iter::once(&entry.mount_id).chain(entry.init_id.as_ref()) {
                if root.restore_link(id)? {
                    events(Event::Repaired {
                        what: format!("restored the l/ link of {id} (container {})", container.id),
                    })?;
                }
            }
        }
    }
    Ok(())
}

/// Reassembles the layer's tar and compares its sha256 with the DiffID.
fn verify_layer(root: &DataRoot, layer: &store::Layer) -> Result<()> {
    let tar_split = root.tar_split_path(&layer.chain_id)?;
    let file = store::open_regular(&tar_split).path_context("opening", &tar_split)?;
    let diff = root.existing_overlay_dir(&layer.cache_id)?.join("diff");
    let diff_dir = rustix::fs::open(
        &diff,
        rustix::fs::OFlags::RDONLY
            | rustix::fs::OFlags::DIRECTORY
            | rustix::fs::OFlags::NOFOLLOW
            | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|errno| Error::io("opening", &diff, errno.into()))?;
    let resolver = crate::kernel::resolver()?;
    let options = crate::kernel::unpack_options()?;
    // The reassembled tar goes through the pipe into the reader that hashes it and builds the
    // tree it leaves, which the directory is then compared with.
    let (report, tree) = crate::chunk_pipe::through_pipe(
        None,
        |out| {
            tar_split::reassemble(BufReader::new(file), diff_dir.as_fd(), resolver, out).map(drop)
        },
        |tar| layer_unpack::expected_tree(tar, &options),
    )
    .map_err(|source| Error::Context {
        context: "reassembling and reading its tar",
        source: Box::new(Error::inconsistent(crate::error::chain_text(
            source.as_ref(),
        ))),
    })?;
    if report.diff_id != layer.diff_id {
        return Err(Error::inconsistent(format!(
            "its content hashes to {}, not its DiffID {}",
            report.diff_id, layer.diff_id
        )));
    }
    let mismatches = tree
        .compare(diff_dir.as_fd(), MISMATCHES_SHOWN)
        .map_err(|errno| Error::io("comparing with its tar", &diff, errno.into()))?;
    if !mismatches.lines.is_empty() {
        let more = match mismatches.n_more {
            0 => String::new(),
            n => format!("; and {n} more"),
        };
        return Err(Error::inconsistent(format!(
            "its directory is not what its tar makes: {}{more}",
            mismatches.lines.join("; ")
        )));
    }
    Ok(())
}

/// How many differences between a layer directory and its tar one finding names.
const MISMATCHES_SHOWN: usize = 5;
