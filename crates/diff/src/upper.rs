//! The upperdir walk: Docker's answer from the container layer alone plus per-name lookups in
//! the lower layers.
//!
//! Below a path, the container's merged view and the baseline (the merged view of the lower
//! layers) can only differ where the upperdir has something, so the walk visits the upperdir
//! only. For each upper directory it keeps the baseline's *lower stack* at the same path: the
//! lower directories that make up the merged lower directory there, top first, as the kernel
//! builds it (<https://docs.kernel.org/filesystems/overlayfs.html#directories>): the first layer
//! that has a name decides what it is; a whiteout hides it; if it is a directory, the same name
//! in the following layers of the stack joins it until a layer has a non-directory or a
//! whiteout there, or until an opaque directory, which still joins.

use std::collections::HashSet;
use std::ffi::{CStr, CString};
use std::path::Path;

use crate::layers::{Disk, Layers, Xattrs};
use crate::meta::{stat_different, Meta};
use crate::{check_path_len, child_path, Change, ChangeKind, Error, Result};

/// What [`Error::NeedsFullComparison`] names when the lower stacks the walk would keep open
/// exceed its share of the descriptor limit.
const TOO_MANY_LOWERS: &str = "more lower directories to keep open than RLIMIT_NOFILE allows";

/// How many lower directories the walk may keep open at once: half of the descriptors the process
/// may open. Every level of the walk keeps the lower stack of its directory: a directory that all
/// 500 layers of an image have, three levels down, is 2,000 descriptors, more than the default
/// soft limit of 1,024 (`EMFILE` before); beyond the share the changes come from the full
/// comparison of the mounted views, which keeps one descriptor per level.
fn max_open_lowers() -> usize {
    usize::try_from(syscompat::descriptor_limit() / 2).unwrap_or(usize::MAX)
}

/// The changes of the upperdir at `upper` over the lower layer dirs `lowers` (top first), in no
/// particular order.
pub(crate) fn upper_changes(fs: &Disk, upper: &Path, lowers: &[&Path]) -> Result<Vec<Change>> {
    let max_open = max_open_lowers();
    if lowers.len() > max_open {
        return Err(too_many_lowers(b"/"));
    }
    let upper_root = fs.open_root(upper)?;
    let lower_roots = lowers
        .iter()
        .map(|lower| fs.open_root(lower))
        .collect::<Result<Vec<_>>>()?;
    walk(fs, &upper_root, lower_roots, max_open)
}

/// Walks the upper tree `upper_root` over the lower layers' roots (top first), keeping at most
/// `max_open` lower directories open (the roots included). The roots are never opaque: the
/// kernel builds the root's stack from all layers, whatever their xattrs say.
pub(crate) fn walk<L: Layers>(
    fs: &L,
    upper_root: &L::Dir,
    lower_roots: Vec<L::Dir>,
    max_open: usize,
) -> Result<Vec<Change>> {
    let stack: Vec<LowerDir<L::Dir>> = lower_roots
        .into_iter()
        .enumerate()
        .map(|(layer_idx, dir)| LowerDir { layer_idx, dir })
        .collect();
    if stack.len() > max_open {
        return Err(too_many_lowers(b"/"));
    }
    let mut walker = Walker {
        fs,
        changes: Vec::new(),
        open_lowers: stack.len(),
        max_open_lowers: max_open,
    };
    walker.walk_dir(b"", upper_root, &stack, false)?;
    Ok(walker.changes)
}

/// Stops the walk at `path`, whose lower stack would take the walk over its share of the
/// descriptor limit.
fn too_many_lowers(path: &[u8]) -> Error {
    tracing::debug!(
        path = %String::from_utf8_lossy(path),
        "the lower stacks exceed the walk's share of RLIMIT_NOFILE"
    );
    Error::NeedsFullComparison {
        path: if path.is_empty() {
            b"/".to_vec()
        } else {
            path.to_vec()
        },
        reason: TOO_MANY_LOWERS,
    }
}

/// One directory of a lower stack.
struct LowerDir<D> {
    /// Position of its layer in the lower layers, top first (for logs).
    layer_idx: usize,
    dir: D,
}

/// What the baseline has at a name.
enum Lookup {
    /// Nothing: no layer of the stack has the name, or the first one has a whiteout.
    Absent,
    /// The entry of the stack's directory at `stack_idx`.
    Found { stack_idx: usize, meta: Meta },
}

/// Where an entry whose xattrs were read lives, for the fallback's log.
#[derive(Clone, Copy)]
enum Layer {
    Upper,
    Lower(usize),
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Layer::Upper => f.write_str("upper"),
            Layer::Lower(layer_idx) => write!(f, "lower {layer_idx}"),
        }
    }
}

struct Walker<'fs, L: Layers> {
    fs: &'fs L,
    changes: Vec<Change>,
    /// Lower directories open in the stacks of the walk's current path, and how many may be.
    open_lowers: usize,
    max_open_lowers: usize,
}

impl<L: Layers> Walker<'_, L> {
    fn push(&mut self, path: Vec<u8>, kind: ChangeKind) {
        self.changes.push(Change { path, kind });
    }

    /// Compares the upper directory `upper` at `path` with the baseline's directory whose lower
    /// stack is `stack` (empty if the baseline has no directory there). `upper_only` says that
    /// the container's view shows only upper content here: this directory or one above it is
    /// opaque. Returns whether any change was found at or below `path`'s entries.
    fn walk_dir(
        &mut self,
        path: &[u8],
        upper: &L::Dir,
        stack: &[LowerDir<L::Dir>],
        upper_only: bool,
    ) -> Result<bool> {
        let n_before = self.changes.len();
        let mut upper_names = HashSet::new();
        for entry in self.fs.entries(upper)? {
            let Some(new) = self.fs.stat(upper, &entry.name)? else {
                continue;
            };
            if new.is_whiteout() {
                // Hides the baseline's entry, if any. Under an opaque directory the baseline's
                // entries missing from the upper directory are all deleted, handled below.
                if !upper_only && matches!(self.lookup(stack, &entry.name)?, Lookup::Found { .. }) {
                    self.push(child_path(path, entry.name.to_bytes()), ChangeKind::Delete);
                }
                continue;
            }
            self.compare_entry(path, upper, &entry.name, &new, stack, upper_only)?;
            if upper_only {
                upper_names.insert(entry.name);
            }
        }
        if upper_only {
            for name in self.visible_names(stack)? {
                if !upper_names.contains(&name) {
                    self.push(child_path(path, name.to_bytes()), ChangeKind::Delete);
                }
            }
        }
        Ok(self.changes.len() > n_before)
    }

    /// Compares the upper entry `name` of the directory `upper_parent` at `parent_path`, which is
    /// not a whiteout, with the baseline's entry of that name.
    fn compare_entry(
        &mut self,
        parent_path: &[u8],
        upper_parent: &L::Dir,
        name: &CStr,
        new: &Meta,
        stack: &[LowerDir<L::Dir>],
        upper_only: bool,
    ) -> Result<()> {
        let path = child_path(parent_path, name.to_bytes());
        check_path_len(&path)?;
        let (upper_dir, new_xattrs) = self.open_upper(upper_parent, name, new, &path)?;
        let Lookup::Found {
            stack_idx,
            meta: old,
        } = self.lookup(stack, name)?
        else {
            self.push(path.clone(), ChangeKind::Add);
            if let Some(upper_dir) = upper_dir {
                self.add_all(&path, &upper_dir)?;
            }
            return Ok(());
        };
        // The baseline's directory here matters when Docker looks at its children: when the
        // new entry is "dir-like" (a directory, or a socket or block device).
        let child_stack = if old.is_dir() && new.is_dir_like() {
            Some(self.child_stack(stack, stack_idx, name, &path)?)
        } else {
            None
        };
        // Open until this entry is compared (an error ends the walk).
        let n_child_lowers = child_stack.as_ref().map_or(0, |(dirs, _)| dirs.len());
        self.open_lowers += n_child_lowers;

        let changed = stat_different(&old, new) || {
            let old_capability = match &child_stack {
                Some((_, top_xattrs)) => top_xattrs.capability.clone(),
                None if old.may_carry_capability() => {
                    let lower = &stack[stack_idx];
                    let xattrs = self.fs.file_xattrs(&lower.dir, name)?;
                    check_fallback(&xattrs, &path, Layer::Lower(lower.layer_idx))?;
                    xattrs.capability
                }
                None => None,
            };
            old_capability != new_xattrs.capability
        };
        if changed {
            self.push(path.clone(), ChangeKind::Modify);
        }
        match (upper_dir, child_stack) {
            (Some(upper_dir), Some((child_stack, _))) => {
                let upper_only = upper_only || new_xattrs.opaque;
                let below = self.walk_dir(&path, &upper_dir, &child_stack, upper_only)?;
                if below && !changed {
                    self.push(path, ChangeKind::Modify);
                }
            }
            // A directory over a non-directory: everything in it is new.
            (Some(upper_dir), None) => self.add_all(&path, &upper_dir)?,
            // A socket or block device over a directory: Docker compares the directory's
            // children with the (no) children of the new entry.
            (None, Some((child_stack, _))) => {
                for child in self.visible_names(&child_stack)? {
                    self.push(child_path(&path, child.to_bytes()), ChangeKind::Delete);
                }
            }
            // Anything else over a non-directory, or a non-directory over a directory: the
            // baseline's children are not looked at.
            (None, None) => {}
        }
        self.open_lowers -= n_child_lowers;
        Ok(())
    }

    /// Opens an upper entry that is a directory and reads the xattrs of directories and regular
    /// files, stopping the walk if they carry a redirect or metacopy.
    fn open_upper(
        &self,
        upper_parent: &L::Dir,
        name: &CStr,
        new: &Meta,
        path: &[u8],
    ) -> Result<(Option<L::Dir>, Xattrs)> {
        let (upper_dir, xattrs) = if new.is_dir() {
            let dir = self.fs.open_dir(upper_parent, name)?;
            let xattrs = self.fs.dir_xattrs(&dir)?;
            (Some(dir), xattrs)
        } else if new.may_carry_capability() {
            (None, self.fs.file_xattrs(upper_parent, name)?)
        } else {
            (None, Xattrs::default())
        };
        check_fallback(&xattrs, path, Layer::Upper)?;
        Ok((upper_dir, xattrs))
    }

    /// Reports everything below the added upper directory `upper` at `path` as added.
    fn add_all(&mut self, path: &[u8], upper: &L::Dir) -> Result<()> {
        for entry in self.fs.entries(upper)? {
            let Some(new) = self.fs.stat(upper, &entry.name)? else {
                continue;
            };
            if new.is_whiteout() {
                continue;
            }
            let path = child_path(path, entry.name.to_bytes());
            check_path_len(&path)?;
            let (upper_dir, _) = self.open_upper(upper, &entry.name, &new, &path)?;
            self.push(path.clone(), ChangeKind::Add);
            if let Some(upper_dir) = upper_dir {
                self.add_all(&path, &upper_dir)?;
            }
        }
        Ok(())
    }

    /// The baseline's entry `name` in the directory whose lower stack is `stack`.
    fn lookup(&self, stack: &[LowerDir<L::Dir>], name: &CStr) -> Result<Lookup> {
        for (stack_idx, lower) in stack.iter().enumerate() {
            match self.fs.stat(&lower.dir, name)? {
                None => continue,
                Some(meta) if meta.is_whiteout() => return Ok(Lookup::Absent),
                Some(meta) => return Ok(Lookup::Found { stack_idx, meta }),
            }
        }
        Ok(Lookup::Absent)
    }

    /// The lower stack of the baseline's directory `name`, found first in `stack[stack_idx]`,
    /// and the xattrs of that top directory.
    fn child_stack(
        &self,
        stack: &[LowerDir<L::Dir>],
        stack_idx: usize,
        name: &CStr,
        path: &[u8],
    ) -> Result<(Vec<LowerDir<L::Dir>>, Xattrs)> {
        let top = &stack[stack_idx];
        if self.open_lowers >= self.max_open_lowers {
            return Err(too_many_lowers(path));
        }
        let top_dir = self.fs.open_dir(&top.dir, name)?;
        let top_xattrs = self.fs.dir_xattrs(&top_dir)?;
        check_fallback(&top_xattrs, path, Layer::Lower(top.layer_idx))?;
        let mut child_stack = vec![LowerDir {
            layer_idx: top.layer_idx,
            dir: top_dir,
        }];
        if top_xattrs.opaque {
            return Ok((child_stack, top_xattrs));
        }
        for lower in &stack[stack_idx + 1..] {
            match self.fs.stat(&lower.dir, name)? {
                None => continue,
                Some(meta) if meta.is_dir() => {
                    if self.open_lowers + child_stack.len() >= self.max_open_lowers {
                        return Err(too_many_lowers(path));
                    }
                    let dir = self.fs.open_dir(&lower.dir, name)?;
                    let xattrs = self.fs.dir_xattrs(&dir)?;
                    check_fallback(&xattrs, path, Layer::Lower(lower.layer_idx))?;
                    child_stack.push(LowerDir {
                        layer_idx: lower.layer_idx,
                        dir,
                    });
                    if xattrs.opaque {
                        break;
                    }
                }
                // A whiteout or a non-directory ends the merge.
                Some(_) => break,
            }
        }
        Ok((child_stack, top_xattrs))
    }

    /// The names the baseline's directory with lower stack `stack` shows: every name of the
    /// stack's directories whose first occurrence is not a whiteout.
    fn visible_names(&self, stack: &[LowerDir<L::Dir>]) -> Result<Vec<CString>> {
        let mut seen = HashSet::new();
        let mut visible = Vec::new();
        for lower in stack {
            for entry in self.fs.entries(&lower.dir)? {
                if seen.contains(&entry.name) {
                    continue;
                }
                let hidden = entry.maybe_whiteout
                    && self
                        .fs
                        .stat(&lower.dir, &entry.name)?
                        .is_none_or(|meta| meta.is_whiteout());
                if !hidden {
                    visible.push(entry.name.clone());
                }
                seen.insert(entry.name);
            }
        }
        Ok(visible)
    }
}

/// Stops the walk where an entry carries a redirect or metacopy xattr.
fn check_fallback(xattrs: &Xattrs, path: &[u8], layer: Layer) -> Result<()> {
    let Some(reason) = xattrs.needs_full_comparison else {
        return Ok(());
    };
    tracing::debug!(
        path = %String::from_utf8_lossy(path),
        xattr = reason,
        %layer,
        "overlay redirect or metacopy found: the upperdir walk cannot describe the changes"
    );
    Err(Error::NeedsFullComparison {
        path: path.to_vec(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memfs::{self, lines, meta, MemNode};

    fn upper_lines(upper: &MemNode, lowers: &[&MemNode]) -> Vec<String> {
        lines(memfs::walk(upper, lowers).expect("walk"))
    }

    /// The bottom layer of most tests: `/d1/{a,b,c}`, `/d2/{x,sub/y}`, `/f`, `/keep/k`.
    fn bottom() -> MemNode {
        MemNode::root()
            .with("d1", MemNode::dir(0o755).with_files(&["a", "b", "c"]))
            .with(
                "d2",
                MemNode::dir(0o755)
                    .with_files(&["x"])
                    .with("sub", MemNode::dir(0o755).with_files(&["y"])),
            )
            .with("f", MemNode::file(0o644, 1))
            .with("keep", MemNode::dir(0o755).with_files(&["k"]))
    }

    /// The walk keeps at most its bound of lower directories open: within it the answer is the
    /// unbounded walk's; beyond it the walk asks for the full comparison instead of opening more
    /// (three roots, then three directories for `/d2` and three for `/d2/sub`: nine in all).
    #[test]
    fn lower_stacks_beyond_the_bound_ask_for_the_full_comparison() {
        let layers = [bottom(), bottom(), bottom()];
        let lowers: Vec<&MemNode> = layers.iter().collect();
        let upper = MemNode::root().with(
            "d2",
            MemNode::dir(0o755).with("sub", MemNode::dir(0o755).with_files(&["new"])),
        );
        let unbounded = upper_lines(&upper, &lowers);
        assert!(
            unbounded.contains(&"A /d2/sub/new".to_string()),
            "{unbounded:?}"
        );
        let within = memfs::walk_within(&upper, &lowers, 9).expect("walk within 9");
        assert_eq!(lines(within), unbounded);
        for max_open in [0, 2, 3, 5, 8] {
            match memfs::walk_within(&upper, &lowers, max_open) {
                Err(Error::NeedsFullComparison { reason, .. }) => {
                    assert_eq!(reason, TOO_MANY_LOWERS, "bound {max_open}");
                }
                other => panic!("bound {max_open}: {other:?}"),
            }
        }
    }

    /// Deeper than PATH_MAX the walk stops with `ENAMETOOLONG` naming the path, as Docker's
    /// `lstat` does; 2,000 levels (a 4,000-byte path) are listed. On a thread with room for the
    /// recursion of a debug build.
    #[test]
    fn paths_longer_than_path_max_stop_the_walk() {
        let nested = |depth: usize| {
            let mut node = MemNode::dir(0o755).with_files(&["leaf"]);
            for _ in 1..depth {
                node = MemNode::dir(0o755).with("d", node);
            }
            MemNode::root().with("d", node)
        };
        let walked = std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn(move || {
                let within = upper_lines(&nested(2000), &[&bottom()]);
                let beyond = memfs::walk(&nested(2100), &[&bottom()]);
                (within, beyond)
            })
            .expect("spawn")
            .join()
            .expect("walk thread");
        let leaf = format!("A /{}leaf", "d/".repeat(2000));
        assert!(walked.0.contains(&leaf), "{} lines", walked.0.len());
        match walked.1 {
            Err(Error::Io { source, path, .. }) => {
                assert_eq!(source, rustix::io::Errno::NAMETOOLONG);
                assert!(path.as_os_str().len() > 4095, "{}", path.display());
            }
            other => panic!("{:?}", other.map(|changes| changes.len())),
        }
    }

    #[test]
    fn empty_upper_has_no_changes() {
        assert!(upper_lines(&MemNode::root(), &[&bottom()]).is_empty());
    }

    #[test]
    fn additions_modifications_and_deletions() {
        let upper = MemNode::root()
            .with(
                "d1",
                MemNode::dir(0o755)
                    .with("a", MemNode::file(0o644, 2))
                    .with("c", MemNode::whiteout())
                    .with("n", MemNode::file(0o644, 1)),
            )
            .with("new", MemNode::dir(0o755).with_files(&["x"]))
            .with("keep", MemNode::whiteout());
        assert_eq!(
            upper_lines(&upper, &[&bottom()]),
            ["C /d1", "C /d1/a", "D /d1/c", "A /d1/n", "D /keep", "A /new", "A /new/x"]
        );
    }

    #[test]
    fn copy_up_without_change_is_invisible() {
        let upper = MemNode::root()
            .with("d1", MemNode::dir(0o755).with("b", MemNode::file(0o644, 1)))
            .with("f", MemNode::file(0o644, 1));
        assert!(upper_lines(&upper, &[&bottom()]).is_empty());
    }

    #[test]
    fn opaque_directory_deletes_every_lower_child_it_does_not_have() {
        assert_eq!(
            opaque_d2_lines(|d2| d2
                .with("x", MemNode::file(0o644, 1))
                .with("new", MemNode::file(0o644, 1))),
            ["C /d2", "A /d2/new", "D /d2/sub"]
        );
    }

    /// The changes of an upper layer whose only entry is an opaque `d2`, filled by `fill`.
    fn opaque_d2_lines(fill: impl FnOnce(MemNode) -> MemNode) -> Vec<String> {
        let upper = MemNode::root().with("d2", fill(MemNode::dir(0o755).opaque()));
        upper_lines(&upper, &[&bottom()])
    }

    #[test]
    fn below_an_opaque_directory_lower_children_are_deleted_too() {
        assert_eq!(
            opaque_d2_lines(|d2| d2.with("sub", MemNode::dir(0o755).with_files(&["z"]))),
            [
                "C /d2",
                "C /d2/sub",
                "D /d2/sub/y",
                "A /d2/sub/z",
                "D /d2/x"
            ]
        );
    }

    #[test]
    fn type_changes() {
        let upper = MemNode::root()
            .with("d1", MemNode::file(0o644, 1))
            .with("f", MemNode::dir(0o755).with_files(&["x"]))
            .with("keep", MemNode::symlink(4))
            .with("d2", MemNode::node(meta::socket()));
        assert_eq!(
            upper_lines(&upper, &[&bottom()]),
            [
                "C /d1",
                "C /d2",
                "D /d2/sub",
                "D /d2/x",
                "C /f",
                "A /f/x",
                "C /keep"
            ]
        );
    }

    #[test]
    fn whiteout_of_a_name_the_baseline_lacks_is_nothing() {
        let upper = MemNode::root()
            .with("ghost", MemNode::whiteout())
            .with("new", MemNode::dir(0o755).with("w", MemNode::whiteout()));
        assert_eq!(upper_lines(&upper, &[&bottom()]), ["A /new"]);
    }

    #[test]
    fn lower_whiteouts_and_opaque_dirs_shape_the_baseline() {
        // mid hides /f, replaces /d2 by an opaque dir with `m`, adds `/d1/m`, and shadows the
        // directory /keep with a file.
        let mid = MemNode::root()
            .with("f", MemNode::whiteout())
            .with("d2", MemNode::dir(0o755).opaque().with_files(&["m"]))
            .with("d1", MemNode::dir(0o755).with_files(&["m"]))
            .with("keep", MemNode::file(0o600, 3));
        let upper = MemNode::root()
            // /f is absent from the baseline: added, not modified.
            .with("f", MemNode::file(0o644, 1))
            // /d2/x is hidden by the opaque mid dir: added; /d2/m deleted.
            .with(
                "d2",
                MemNode::dir(0o755)
                    .with("x", MemNode::file(0o644, 1))
                    .with("m", MemNode::whiteout()),
            )
            // /d1 merges mid and bottom: deleting a bottom name and a mid name.
            .with(
                "d1",
                MemNode::dir(0o755)
                    .with("a", MemNode::whiteout())
                    .with("m", MemNode::whiteout()),
            )
            // /keep is a file in the baseline: a directory over it has only additions.
            .with("keep", MemNode::dir(0o755).with_files(&["k"]));
        assert_eq!(
            upper_lines(&upper, &[&mid, &bottom()]),
            [
                "C /d1",
                "D /d1/a",
                "D /d1/m",
                "C /d2",
                "D /d2/m",
                "A /d2/x",
                "A /f",
                "C /keep",
                "A /keep/k"
            ]
        );
    }

    #[test]
    fn a_directory_under_a_lower_file_is_not_merged() {
        // mid's file /keep hides bottom's directory /keep, so /keep/k is not in the baseline.
        let mid = MemNode::root().with("keep", MemNode::file(0o644, 1));
        let top = MemNode::root().with("keep", MemNode::dir(0o755).with_files(&["j"]));
        let upper = MemNode::root().with(
            "keep",
            MemNode::dir(0o755)
                .with("k", MemNode::file(0o644, 1))
                .with("j", MemNode::whiteout()),
        );
        assert_eq!(
            upper_lines(&upper, &[&top, &mid, &bottom()]),
            ["C /keep", "D /keep/j", "A /keep/k"]
        );
    }

    #[test]
    fn lower_root_opaque_marks_are_ignored() {
        let mid = MemNode::root().opaque().with_files(&["m"]);
        let upper = MemNode::root().with("d1", MemNode::whiteout());
        assert_eq!(upper_lines(&upper, &[&mid, &bottom()]), ["D /d1"]);
    }

    #[test]
    fn capability_changes_count() {
        let lower = MemNode::root()
            .with("cap", MemNode::file(0o755, 1).capability(&[1, 2]))
            .with("dir", MemNode::dir(0o755).capability(&[1, 2]));
        let upper = MemNode::root()
            .with("cap", MemNode::file(0o755, 1))
            .with("dir", MemNode::dir(0o755).capability(&[3]));
        assert_eq!(upper_lines(&upper, &[&lower]), ["C /cap", "C /dir"]);
    }

    #[test]
    fn redirect_and_metacopy_stop_the_walk() {
        let cases = [
            (
                MemNode::root().with(
                    "moved",
                    MemNode::dir(0o755).xattr("trusted.overlay.redirect", b"/d1"),
                ),
                "/moved",
                "trusted.overlay.redirect",
            ),
            (
                MemNode::root().with(
                    "new",
                    MemNode::dir(0o755).with(
                        "f",
                        MemNode::file(0o644, 1).xattr("user.overlay.metacopy", b""),
                    ),
                ),
                "/new/f",
                "user.overlay.metacopy",
            ),
        ];
        for (upper, path, xattr) in cases {
            match memfs::walk(&upper, &[&bottom()]) {
                Err(Error::NeedsFullComparison { path: at, reason }) => {
                    assert_eq!((at.as_slice(), reason), (path.as_bytes(), xattr));
                }
                other => panic!("expected a fallback at {path}, got {other:?}"),
            }
        }
    }

    #[test]
    fn redirect_in_a_merged_lower_directory_stops_the_walk() {
        let mid = MemNode::root().with(
            "d1",
            MemNode::dir(0o755).xattr("trusted.overlay.redirect", b"/old"),
        );
        let upper = MemNode::root().with("d1", MemNode::dir(0o755).with_files(&["n"]));
        assert!(matches!(
            memfs::walk(&upper, &[&mid, &bottom()]),
            Err(Error::NeedsFullComparison { .. })
        ));
    }

    #[test]
    fn agrees_with_the_full_comparison_of_merged_trees() {
        memfs::cross_check(|upper, lowers| {
            let lowers: Vec<&MemNode> = lowers.iter().collect();
            memfs::walk(upper, &lowers)
        });
    }
}
