//! Prune: removes what interrupted operations left behind, dangling images and layers nothing
//! uses. The plan is `store`'s [`DataRoot::plan_gc`] and its executor `DataRoot::execute_gc`.

use std::path::Path;

use crate::error::{Context, Error, Result};
use store::{DataRoot, GcPlan};

use crate::access::{self, Create};
use crate::{Event, Events};

/// What a prune removed, and how it ended.
#[derive(Debug)]
pub struct Pruned {
    /// The bytes the removed items freed (Docker's `directory.Size` rule).
    pub reclaimed: u64,
    /// The executor's error: items before it were removed (and reported) all the same.
    pub failure: Option<Error>,
}

/// Plans and removes, reporting [`Event::LeftAlone`] for what the plan leaves in place, then
/// [`Event::Garbage`] for each item as it is removed. An error of the event callback does not
/// stop the removal (the first one is returned once it is done).
pub fn prune(root_path: &Path, events: Events<'_>) -> Result<Pruned> {
    let (root, _lock) = access::open_for_change(root_path, Create::No, "prune the data root")?;
    let plan = root
        .plan_gc()
        .root_context("planning the prune of", root_path)?;
    report_left_alone(&plan, events)?;
    let mut reclaimed = 0u64;
    let mut event_error = None;
    let executed = root.execute_gc(&plan, &mut |item| {
        reclaimed += item.size;
        if event_error.is_none() {
            if let Err(err) = events(Event::Garbage {
                item: item.clone(),
                dry_run: false,
            }) {
                event_error = Some(err);
            }
        }
    });
    if let Some(err) = event_error {
        return Err(err.into());
    }
    Ok(Pruned {
        reclaimed,
        failure: executed.root_context("pruning", root_path).err(),
    })
}

/// Plans without changing anything: no lock file is created (an existing one is taken, so that
/// the listing is not one of another ovl process's half-done work), and a live dockerd is only
/// reported ([`Event::DockerdInUse`]). Reports [`Event::LeftAlone`], then [`Event::Garbage`] for
/// each item that would go, and returns the plan.
pub fn dry_run(root_path: &Path, events: Events<'_>) -> Result<GcPlan> {
    let root = DataRoot::open(root_path).root_context("opening data root", root_path)?;
    if let Some(live) = store::live_dockerd(root_path) {
        events(Event::DockerdInUse {
            root: root_path.to_path_buf(),
            live: live.to_string(),
        })?;
    }
    let _lock = if root_path.join("ovl.lock").is_file() {
        Some(root.lock()?)
    } else {
        None
    };
    let plan = root
        .plan_gc()
        .root_context("planning the prune of", root_path)?;
    report_left_alone(&plan, events)?;
    for item in &plan.items {
        events(Event::Garbage {
            item: item.clone(),
            dry_run: true,
        })?;
        tracing::debug!(name = %item.name, reason = %item.reason, size = item.size, "garbage");
    }
    Ok(plan)
}

fn report_left_alone(plan: &GcPlan, events: Events<'_>) -> Result<()> {
    for left in &plan.left_alone {
        events(Event::LeftAlone {
            path: left.path.clone(),
            reason: left.reason.clone(),
        })?;
    }
    Ok(())
}
