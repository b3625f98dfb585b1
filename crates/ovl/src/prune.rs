//! `ovl prune [--dry-run] [-f]`: removes what interrupted operations left behind, dangling images
//! and layers nothing uses (the work is `engine::prune`), printing each item as
//! Docker's prune commands print what they delete, and the space reclaimed.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{Context, Result};
use engine::Event;
use store::GarbageKind;

use crate::format::go_units_human_size as human_size;

#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// List what would be removed, changing nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    force: bool,
}

/// What the confirmation prompt says will go, as `docker system prune` words its warning.
const WARNING: &str = "WARNING! This will remove:
  - all dangling images (no tag, no container, no child image)
  - all layers that no image and no container uses
  - all leftovers of interrupted operations (layer removals and registrations cut short,
    layer dirs and l/ links that nothing uses)
Are you sure you want to continue? [y/N] ";

pub fn prune(root_path: &Path, args: &PruneArgs) -> Result<()> {
    if args.dry_run {
        return dry_run(root_path);
    }
    if !args.force && !confirmed()? {
        // Docker's prune commands report nothing reclaimed when the answer is no.
        crate::out::outln!("Total reclaimed space: {}", human_size(0));
        return Ok(());
    }
    let mut write_error = None;
    let pruned = engine::prune::prune(root_path, &mut |event| {
        match event {
            Event::LeftAlone { path, reason } => left_alone(&path, &reason),
            Event::Garbage { item, .. } if write_error.is_none() => {
                if let Err(err) = writeln!(
                    crate::out::stdout(),
                    "Deleted {}: {}",
                    noun(item.kind),
                    item.name
                ) {
                    write_error = Some(err);
                }
            }
            _ => {}
        }
        Ok(())
    })?;
    writeln!(
        crate::out::stdout(),
        "Total reclaimed space: {}",
        human_size(size_i64(pruned.reclaimed))
    )?;
    if let Some(err) = pruned.failure {
        return Err(err.into());
    }
    if let Some(err) = write_error {
        return Err(err.into());
    }
    Ok(())
}

/// Lists without changing anything (see `engine::prune::dry_run`).
fn dry_run(root_path: &Path) -> Result<()> {
    let plan = engine::prune::dry_run(root_path, &mut |event| {
        match event {
            Event::DockerdInUse { root, live } => crate::out::errln!(
                "warning: data root {} is in use by {live}; what it is doing right now may be listed",
                root.display()
            ),
            Event::LeftAlone { path, reason } => left_alone(&path, &reason),
            Event::Garbage { item, .. } => crate::out::outln!(
                "Would delete {}: {}",
                noun(item.kind),
                item.name
            ),
            _ => {}
        }
        Ok(())
    })?;
    crate::out::outln!(
        "Total reclaimed space: {}",
        human_size(size_i64(plan.total_size()))
    );
    Ok(())
}

/// Names what the plan leaves in place, on stderr.
fn left_alone(path: &Path, reason: &str) {
    crate::out::errln!("Left alone {}: {}", path.display(), reason);
}

/// The word for an item in `Deleted <noun>: <name>`.
fn noun(kind: GarbageKind) -> &'static str {
    match kind {
        GarbageKind::DanglingImage => "image",
        GarbageKind::UnusedLayer => "layer",
        GarbageKind::InterruptedRemoval => "interrupted layer removal",
        GarbageKind::WriteSet => "write-set",
        GarbageKind::OrphanLayerDir => "layer dir",
        GarbageKind::DanglingLink => "link",
    }
}

fn size_i64(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

/// Docker's `PromptForConfirmation`: the warning on stdout, then a line from stdin; only `y` or
/// `Y` proceeds (end of input is a no).
fn confirmed() -> Result<bool> {
    let mut out = crate::out::stdout();
    out.write_all(WARNING.as_bytes())?;
    out.flush()?;
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .context("reading the answer")?;
    Ok(answer
        .trim_end_matches(['\n', '\r'])
        .eq_ignore_ascii_case("y"))
}
