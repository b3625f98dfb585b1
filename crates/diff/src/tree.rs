//! Docker's full comparison of two trees (moby `pkg/archive/changes.go`, `ChangesDirs`): read
//! both trees completely, then compare them name by name.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::Path;

use crate::layers::{Disk, Layers};
use crate::meta::{stat_different, Meta};
use crate::{check_path_len, child_path, Change, ChangeKind, Result};

/// The entries of a directory by name.
pub(crate) type Children = BTreeMap<CString, Node>;

/// One entry of a tree as Docker records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    pub(crate) meta: Meta,
    pub(crate) capability: Option<Vec<u8>>,
    /// Empty unless the entry is a directory.
    pub(crate) children: Children,
}

/// Reads the whole tree below `root` (the root's own attributes are never compared).
pub(crate) fn read_tree(fs: &Disk, root: &Path) -> Result<Children> {
    let dir = fs.open_root(root)?;
    read_children(fs, &dir, &mut Vec::new())
}

/// Reads every entry below `dir` (at the container path `path`, empty for the root, which each
/// level extends by a name and gives back as it was), holding one open directory per level.
pub(crate) fn read_children<L: Layers>(
    fs: &L,
    dir: &L::Dir,
    path: &mut Vec<u8>,
) -> Result<Children> {
    let mut children = Children::new();
    for entry in fs.entries(dir)? {
        let Some(meta) = fs.stat(dir, &entry.name)? else {
            // Removed since the listing: it is not part of the tree any more.
            continue;
        };
        let parent_len = path.len();
        path.push(b'/');
        path.extend_from_slice(entry.name.to_bytes());
        check_path_len(path)?;
        let (capability, grandchildren) = if meta.is_dir() {
            let sub_dir = fs.open_dir(dir, &entry.name)?;
            let capability = fs.dir_xattrs(&sub_dir)?.capability;
            (capability, read_children(fs, &sub_dir, path)?)
        } else if meta.may_carry_capability() {
            (
                fs.file_xattrs(dir, &entry.name)?.capability,
                Children::new(),
            )
        } else {
            (None, Children::new())
        };
        path.truncate(parent_len);
        children.insert(
            entry.name,
            Node {
                meta,
                capability,
                children: grandchildren,
            },
        );
    }
    Ok(children)
}

/// The changes from the tree `old_root` to the tree `new_root`, in no particular order.
pub(crate) fn compare_trees(new_root: &Children, old_root: &Children) -> Vec<Change> {
    let mut changes = Vec::new();
    compare_children(b"", new_root, Some(old_root), &mut changes);
    changes
}

/// Compares the entries of the new directory at `path` with those of its old counterpart.
/// `old_children` is `None` when the new entry has no counterpart, or when Docker does not look
/// at the old entry's children (the new entry is not "dir-like").
fn compare_children(
    path: &[u8],
    new_children: &Children,
    old_children: Option<&Children>,
    changes: &mut Vec<Change>,
) {
    for (name, new) in new_children {
        let path = child_path(path, name.to_bytes());
        let Some(old) = old_children.and_then(|old_children| old_children.get(name)) else {
            // Added, and so is everything below it.
            changes.push(Change {
                path: path.clone(),
                kind: ChangeKind::Add,
            });
            compare_children(&path, &new.children, None, changes);
            continue;
        };
        let changed = stat_different(&old.meta, &new.meta) || old.capability != new.capability;
        if changed {
            changes.push(Change {
                path: path.clone(),
                kind: ChangeKind::Modify,
            });
        }
        let n_before = changes.len();
        let old_grandchildren = new.meta.is_dir_like().then_some(&old.children);
        compare_children(&path, &new.children, old_grandchildren, changes);
        // A directory with changes below it is reported as modified even when it is not.
        if changes.len() > n_before && !changed && new.meta.is_dir_like() {
            changes.push(Change {
                path,
                kind: ChangeKind::Modify,
            });
        }
    }
    if let Some(old_children) = old_children {
        for name in old_children.keys() {
            if !new_children.contains_key(name) {
                // Deleted; nothing below a deleted directory is reported.
                changes.push(Change {
                    path: child_path(path, name.to_bytes()),
                    kind: ChangeKind::Delete,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memfs::{lines, meta};

    fn node(meta: Meta) -> Node {
        Node {
            meta,
            capability: None,
            children: Children::new(),
        }
    }

    fn dir(mode: u32, children: Vec<(&str, Node)>) -> Node {
        Node {
            meta: meta::dir(mode),
            capability: None,
            children: tree(children),
        }
    }

    fn tree(children: Vec<(&str, Node)>) -> Children {
        children
            .into_iter()
            .map(|(name, node)| (CString::new(name).expect("name"), node))
            .collect()
    }

    fn changes(new: &Children, old: &Children) -> Vec<String> {
        lines(crate::sorted(compare_trees(new, old)))
    }

    fn file(size: i64) -> Node {
        node(meta::file(0o644, size, 100))
    }

    #[test]
    fn identical_trees_have_no_changes() {
        let t = tree(vec![
            ("etc", dir(0o755, vec![("hosts", file(3))])),
            ("f", file(1)),
        ]);
        assert!(changes(&t, &t).is_empty());
    }

    #[test]
    fn added_directories_report_everything_below_them() {
        let old = tree(vec![]);
        let new = tree(vec![(
            "d",
            dir(
                0o755,
                vec![("e", dir(0o700, vec![("f", file(1))])), ("g", file(2))],
            ),
        )]);
        assert_eq!(
            changes(&new, &old),
            ["A /d", "A /d/e", "A /d/e/f", "A /d/g"]
        );
    }

    #[test]
    fn deleted_directories_report_only_their_own_path() {
        let old = tree(vec![
            ("d", dir(0o755, vec![("f", file(1))])),
            ("k", file(1)),
        ]);
        let new = tree(vec![("k", file(1))]);
        assert_eq!(changes(&new, &old), ["D /d"]);
    }

    #[test]
    fn unchanged_parents_of_changes_are_reported_modified_up_to_but_not_the_root() {
        let old = tree(vec![(
            "a",
            dir(
                0o755,
                vec![("b", dir(0o755, vec![("f", file(1)), ("g", file(1))]))],
            ),
        )]);
        let new = tree(vec![(
            "a",
            dir(
                0o755,
                vec![("b", dir(0o755, vec![("f", file(2)), ("h", file(1))]))],
            ),
        )]);
        assert_eq!(
            changes(&new, &old),
            ["C /a", "C /a/b", "C /a/b/f", "D /a/b/g", "A /a/b/h"]
        );
    }

    #[test]
    fn a_modified_directory_is_reported_once() {
        let old = tree(vec![("d", dir(0o755, vec![("f", file(1))]))]);
        let new = tree(vec![("d", dir(0o700, vec![("f", file(2))]))]);
        assert_eq!(changes(&new, &old), ["C /d", "C /d/f"]);
    }

    #[test]
    fn file_replacing_a_directory_hides_its_deletions() {
        let old = tree(vec![("d", dir(0o755, vec![("f", file(1))]))]);
        let new = tree(vec![("d", file(1))]);
        assert_eq!(changes(&new, &old), ["C /d"]);
    }

    #[test]
    fn directory_replacing_a_file_adds_its_children() {
        let old = tree(vec![("d", file(1))]);
        let new = tree(vec![("d", dir(0o755, vec![("f", file(1))]))]);
        assert_eq!(changes(&new, &old), ["C /d", "A /d/f"]);
    }

    #[test]
    fn socket_or_block_device_replacing_a_directory_deletes_its_children() {
        // Docker's `isDir` is a bit test that sockets and block devices pass.
        let old = tree(vec![(
            "d",
            dir(0o755, vec![("f", file(1)), ("s", dir(0o755, vec![]))]),
        )]);
        for new_meta in [meta::socket(), meta::block_device(7, 0)] {
            let new = tree(vec![("d", node(new_meta))]);
            assert_eq!(changes(&new, &old), ["C /d", "D /d/f", "D /d/s"]);
        }
        let fifo = tree(vec![("d", node(meta::fifo()))]);
        assert_eq!(changes(&fifo, &old), ["C /d"]);
    }

    #[test]
    fn capability_bytes_count_and_absent_equals_empty() {
        let old = tree(vec![("f", file(1)), ("g", file(1))]);
        let mut with_cap = file(1);
        with_cap.capability = Some(vec![1, 0, 0, 2]);
        let new = tree(vec![("f", with_cap), ("g", file(1))]);
        assert_eq!(changes(&new, &old), ["C /f"]);
        assert_eq!(changes(&old, &new), ["C /f"]);
    }

    #[test]
    fn directory_size_and_mtime_do_not_count() {
        let mut old_dir = dir(0o755, vec![]);
        old_dir.meta.size = 4096;
        let mut new_dir = dir(0o755, vec![]);
        new_dir.meta.size = 8192;
        new_dir.meta.mtime_sec += 100;
        assert!(changes(&tree(vec![("d", new_dir)]), &tree(vec![("d", old_dir)])).is_empty());
    }
}
