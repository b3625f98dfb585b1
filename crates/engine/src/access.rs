//! Opening the data root for a command that changes it.
//!
//! A dockerd keeps its image, layer and container stores in memory and rewrites them as it
//! pleases, so a change made beside a live daemon is lost or half-overwritten. Commands that
//! change the root refuse while a dockerd uses it (checked before anything is created, and again
//! once the lock is held if another ovl process held it first); read-only commands work either way. They also refuse a backing
//! filesystem without d_type (xfs `ftype=0`), as Docker's overlay2 driver does, writing nothing. Concurrent ovl processes are
//! serialized by `ovl.lock`, a file of ovl's own that dockerd never looks at.

use std::path::Path;

use crate::error::{Context, Error, Result};
use store::{DataRoot, RootLock};

/// Whether the command may create the data root's layout when it is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    Yes,
    No,
}

/// Opens the data root for `action` (e.g. "load images") and takes ovl's lock.
pub fn open_for_change(
    root_path: &Path,
    create: Create,
    action: &str,
) -> Result<(DataRoot, RootLock)> {
    refuse_live_dockerd(root_path, action)?;
    // A layout directory that is a symlink or a file is refused before anything reads or
    // creates through it (the d_type check below may write a test file in `overlay2/`).
    store::check_layout(root_path).map_err(|err| refused(action, root_path, err.into()))?;
    // Docker's overlay2 driver refuses to start on a filesystem without d_type; ovl refuses to
    // change a root there, before creating anything.
    mount::require_d_type(&root_path.join("overlay2"))
        .map_err(|err| refused(action, root_path, err.into()))?;
    let root = match create {
        Create::Yes => DataRoot::open_or_create(root_path),
        Create::No => DataRoot::open(root_path),
    }
    .root_context("opening data root", root_path)?;
    let (lock, waited) = root.lock_reporting_wait()?;
    if waited {
        // A dockerd may have started while this process waited for the lock.
        refuse_live_dockerd(root_path, action)?;
    }
    // A crash during `commit --rm` may have left a container's changes in a new layer dir:
    // given back (or the commit finished) before anything else can remove that dir.
    crate::commit::recover_interrupted_moves(&root)
        .root_context("recovering an interrupted commit --rm in", root_path)?;
    Ok((root, lock))
}

/// Takes the lock of a root a read-only command opened, for the moment it changes something
/// after all (`diff` mounting comparison views): the same dockerd check as `open_for_change`.
pub fn lock_opened(root: &DataRoot, root_path: &Path, action: &str) -> Result<RootLock> {
    refuse_live_dockerd(root_path, action)?;
    let (lock, waited) = root.lock_reporting_wait()?;
    if waited {
        refuse_live_dockerd(root_path, action)?;
    }
    Ok(lock)
}

fn refused(action: &str, root_path: &Path, source: Error) -> Error {
    Error::Refused {
        action: action.to_string(),
        root: root_path.to_path_buf(),
        source: Box::new(source),
    }
}

fn refuse_live_dockerd(root_path: &Path, action: &str) -> Result<()> {
    if let Some(live) = store::live_dockerd(root_path) {
        return Err(Error::DockerdRunning {
            action: action.to_string(),
            root: root_path.to_path_buf(),
            live: live.to_string(),
        });
    }
    Ok(())
}
