//! diff: the change list `docker diff` prints for a container (format.md §6.4), computed from the
//! overlay layer directories without mounting anything.
//!
//! Docker 20.10 answers `docker diff` by comparing two merged trees completely: the container's
//! view (its upperdir over the `-init` layer over the image layers) and the `-init` layer's view
//! (moby `pkg/archive/changes.go`, the "naive" comparison). This crate gives the same answer in
//! two ways:
//!
//! - [`upper_changes`] walks only the container's upperdir and looks up, name by name, the lower
//!   entries it needs, following the overlay rules for whiteouts and opaque directories. Its cost
//!   is the size of the upperdir times the lookups in the lower layers, not the size of the image.
//! - [`tree_changes`] is Docker's comparison itself, on two directory trees the caller has
//!   mounted (or any two plain trees). [`upper_changes`] returns
//!   [`Error::NeedsFullComparison`] when the layers carry overlay redirects or metacopy files,
//!   which an upperdir walk cannot follow; the caller then mounts the two merged views and calls
//!   [`tree_changes`].
//!
//! Both return the changes sorted by path bytes, one per path. Paths are absolute (`/etc/hosts`)
//! and raw bytes, since names need not be UTF-8.
//!
//! **Architecture invariant:** this crate never mounts, never writes and never follows a symlink
//! found in a tree; every access goes through a directory file descriptor and a single name.
#![deny(unsafe_code)]

mod layers;
mod meta;
mod sys;
mod tree;
mod upper;

#[cfg(test)]
mod memfs;

use std::path::{Path, PathBuf};

use rustix::io::Errno;

/// How a path differs, with the numbers of the Docker API's `Kind` field
/// (`GET /containers/{id}/changes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// The path exists in both trees and differs (`C`), or is a directory with changes below it.
    Modify = 0,
    /// The path exists only in the container's tree (`A`).
    Add = 1,
    /// The path exists only in the baseline tree (`D`).
    Delete = 2,
}

impl ChangeKind {
    /// The letter `docker diff` prints: `C`, `A` or `D`.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Modify => 'C',
            ChangeKind::Add => 'A',
            ChangeKind::Delete => 'D',
        }
    }

    /// The number of the Docker API's `Kind` field: 0, 1 or 2.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// One line of `docker diff`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Change {
    /// The absolute path in the container (`/d1/a`), raw bytes.
    pub path: Vec<u8>,
    pub kind: ChangeKind,
}

/// Errors of this crate; each names the path and what was being done to it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{operation} {path}")]
    Io {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: Errno,
    },
    /// A file changed type between being described and being read: a process of the container
    /// replaced it meanwhile. Nothing of the new node was opened.
    #[error("{path} changed while it was read (is a process of the container changing it?)")]
    Changed { path: PathBuf },
    /// A layer entry carries an overlay xattr (`reason` is its name) that makes the kernel look
    /// beyond the layer directories' own names: a redirected directory or a metacopy file; or
    /// the lower stacks at `path` would take the walk over its share of `RLIMIT_NOFILE`
    /// (`reason` says so). The merged views must be mounted and compared with [`tree_changes`].
    #[error(
        "found {reason} at {}: the layer directories alone do not describe the changes, \
         a full comparison of the merged trees is needed",
        String::from_utf8_lossy(.path)
    )]
    NeedsFullComparison {
        /// The absolute path in the container where the xattr was found.
        path: Vec<u8>,
        /// The xattr's name, for example `trusted.overlay.redirect`, or the descriptor limit.
        reason: &'static str,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The changes of a container from its layer directories, without mounting.
///
/// `upper` is the container layer's upperdir (`<home>/<mount-id>/diff`); `lowers` are the lower
/// layer directories top first, as in the mount's `lowerdir` option: the `-init` layer's `diff`
/// (if there is one), then the image layers' from top to bottom. The baseline is the merged view
/// of `lowers`, so files of the `-init` layer never show up, as in Docker.
///
/// Returns [`Error::NeedsFullComparison`] when an upper entry, or a lower directory or file the
/// walk reads, carries `trusted.overlay.redirect` or `trusted.overlay.metacopy` (or their
/// `user.overlay.` forms): then only [`tree_changes`] on the mounted views gives the answer.
///
/// The walk keeps one descriptor open per directory level of the upperdir plus one per lower
/// directory merged at that level, at most half of `RLIMIT_NOFILE` for the lower ones: a walk
/// that would need more (a directory that hundreds of layers have, a few levels down) returns
/// [`Error::NeedsFullComparison`] as well.
pub fn upper_changes(upper: &Path, lowers: &[&Path]) -> Result<Vec<Change>> {
    let changes = upper::upper_changes(&layers::Disk, upper, lowers)?;
    Ok(sorted(changes))
}

/// Docker's comparison of two directory trees: `new_root` (the container's merged view) against
/// `old_root` (the baseline, the `-init` layer's merged view). Both trees are read completely,
/// as Docker does; the two roots themselves are not compared and `/` is never reported.
pub fn tree_changes(new_root: &Path, old_root: &Path) -> Result<Vec<Change>> {
    let (new_tree, old_tree) = std::thread::scope(|scope| {
        let old_reader = scope.spawn(|| tree::read_tree(&layers::Disk, old_root));
        let new_tree = tree::read_tree(&layers::Disk, new_root);
        let old_tree = match old_reader.join() {
            Ok(result) => result,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        (new_tree, old_tree)
    });
    Ok(sorted(tree::compare_trees(&new_tree?, &old_tree?)))
}

/// Sorts by path bytes and keeps one entry per path.
fn sorted(mut changes: Vec<Change>) -> Vec<Change> {
    changes.sort_unstable_by(|a, b| a.path.cmp(&b.path));
    changes.dedup_by(|later, earlier| later.path == earlier.path);
    changes
}

/// Fails with `ENAMETOOLONG` when the container path `path` does not fit in `PATH_MAX`. Docker's
/// walk (`lstat` of each path) fails there, and so do the walks here, naming the path: a
/// container may nest directories without end through descriptors, and every level is a frame
/// of a walk's recursion and a longer path in the list (15,000 levels listed 225 MB of paths).
fn check_path_len(path: &[u8]) -> Result<()> {
    if path.len() < syscompat::PATH_MAX {
        return Ok(());
    }
    use std::os::unix::ffi::OsStrExt as _;
    Err(Error::Io {
        operation: "walking",
        path: PathBuf::from(std::ffi::OsStr::from_bytes(path)),
        source: rustix::io::Errno::NAMETOOLONG,
    })
}

/// `parent/name` for a path that is empty for the root, so that children of the root come out as
/// `/name`.
fn child_path(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = Vec::with_capacity(parent.len() + 1 + name.len());
    path.extend_from_slice(parent);
    path.push(b'/');
    path.extend_from_slice(name);
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_letters_and_codes_follow_the_docker_api() {
        assert_eq!(
            [ChangeKind::Modify, ChangeKind::Add, ChangeKind::Delete]
                .map(|k| (k.letter(), k.code())),
            [('C', 0), ('A', 1), ('D', 2)]
        );
    }

    #[test]
    fn sorted_orders_by_path_bytes_and_drops_repeated_paths() {
        let change = |path: &[u8], kind| Change {
            path: path.to_vec(),
            kind,
        };
        let changes = vec![
            change(b"/d1/a", ChangeKind::Add),
            change(b"/d1", ChangeKind::Modify),
            change(b"/d1-x", ChangeKind::Delete),
            change(b"/\xff", ChangeKind::Add),
            change(b"/d1", ChangeKind::Modify),
        ];
        assert_eq!(
            sorted(changes),
            vec![
                change(b"/d1", ChangeKind::Modify),
                change(b"/d1-x", ChangeKind::Delete),
                change(b"/d1/a", ChangeKind::Add),
                change(b"/\xff", ChangeKind::Add),
            ]
        );
    }

    #[test]
    fn needs_full_comparison_message_names_the_path_and_xattr() {
        let err = Error::NeedsFullComparison {
            path: b"/moved".to_vec(),
            reason: "trusted.overlay.redirect",
        };
        assert_eq!(
            err.to_string(),
            "found trusted.overlay.redirect at /moved: the layer directories alone do not \
             describe the changes, a full comparison of the merged trees is needed"
        );
    }
}
