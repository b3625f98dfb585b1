//! `ovl prune [--dry-run] [-f]`: removes what interrupted operations left behind, dangling images
//! and layers nothing uses (the plan is `store`'s [`DataRoot::plan_gc`]), printing each item as
//! Docker's prune commands print what they delete, and the space reclaimed.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{Context, Result};
use store::{DataRoot, GarbageKind, GcPlan};

use crate::access::{self, Create};
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
    let (root, _lock) = access::open_for_change(root_path, Create::No, "prune the data root")?;
    let plan = root
        .plan_gc()
        .with_context(|| format!("planning the prune of {}", root_path.display()))?;
    report_left_alone(&plan);
    let mut out = crate::out::stdout();
    let mut reclaimed = 0u64;
    let mut write_error = None;
    let executed = root.execute_gc(&plan, &mut |item| {
        reclaimed += item.size;
        if write_error.is_none() {
            if let Err(err) = writeln!(out, "Deleted {}: {}", noun(item.kind), item.name) {
                write_error = Some(err);
            }
        }
    });
    writeln!(
        out,
        "Total reclaimed space: {}",
        human_size(size_i64(reclaimed))
    )?;
    executed.with_context(|| format!("pruning {}", root_path.display()))?;
    if let Some(err) = write_error {
        return Err(err.into());
    }
    Ok(())
}

/// Plans and prints without changing anything: no lock file is created (an existing one is taken,
/// so that the listing is not one of another ovl process's half-done work), and a live dockerd is
/// only warned about.
fn dry_run(root_path: &Path) -> Result<()> {
    let root = DataRoot::open(root_path)
        .with_context(|| format!("opening data root {}", root_path.display()))?;
    if let Some(live) = store::live_dockerd(root_path) {
        crate::out::errln!(
            "warning: data root {} is in use by {live}; what it is doing right now may be listed",
            root_path.display()
        );
    }
    let _lock = if root_path.join("ovl.lock").is_file() {
        Some(root.lock()?)
    } else {
        None
    };
    let plan = root
        .plan_gc()
        .with_context(|| format!("planning the prune of {}", root_path.display()))?;
    report_left_alone(&plan);
    let mut out = crate::out::stdout();
    for item in &plan.items {
        writeln!(out, "Would delete {}: {}", noun(item.kind), item.name)?;
        tracing::debug!(name = %item.name, reason = %item.reason, size = item.size, "garbage");
    }
    writeln!(
        out,
        "Total reclaimed space: {}",
        human_size(size_i64(plan.total_size()))
    )?;
    Ok(())
}

/// Names what the plan leaves in place, on stderr.
fn report_left_alone(plan: &GcPlan) {
    for left in &plan.left_alone {
        crate::out::errln!("Left alone {}: {}", left.path.display(), left.reason);
    }
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
