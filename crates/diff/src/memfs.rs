//! Test support: layer trees in memory, a model of the kernel's merged view built eagerly from
//! them, and a randomized cross-check of the upperdir walk against Docker's full comparison of
//! the modelled merged views. Whiteouts, opaque markers and capabilities need root on disk; here
//! they are plain data.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{CStr, CString};

use crate::layers::{Entry, Layers, Xattrs};
use crate::meta::Meta;
use crate::tree::{compare_trees, Children, Node};
use crate::{Change, Result};

/// Builders for the [`Meta`] of each entry type.
pub(crate) mod meta {
    use super::Meta;

    fn with_mode(mode: u32) -> Meta {
        Meta {
            mode,
            uid: 0,
            gid: 0,
            rdev: 0,
            size: 0,
            mtime_sec: 1_600_000_000,
            mtime_nsec: 0,
        }
    }

    pub(crate) fn dir(permissions: u32) -> Meta {
        Meta {
            size: 4096,
            ..with_mode(0o040_000 | permissions)
        }
    }

    pub(crate) fn file(permissions: u32, size: i64, mtime_sec: i64) -> Meta {
        Meta {
            size,
            mtime_sec,
            ..with_mode(0o100_000 | permissions)
        }
    }

    pub(crate) fn symlink(size: i64) -> Meta {
        Meta {
            size,
            ..with_mode(0o120_777)
        }
    }

    pub(crate) fn whiteout() -> Meta {
        with_mode(0o020_000)
    }

    pub(crate) fn char_device(major: u32, minor: u32) -> Meta {
        Meta {
            rdev: rustix::fs::makedev(major, minor),
            ..with_mode(0o020_644)
        }
    }

    pub(crate) fn block_device(major: u32, minor: u32) -> Meta {
        Meta {
            rdev: rustix::fs::makedev(major, minor),
            ..with_mode(0o060_644)
        }
    }

    pub(crate) fn socket() -> Meta {
        with_mode(0o140_755)
    }

    pub(crate) fn fifo() -> Meta {
        with_mode(0o010_644)
    }
}

/// `docker diff` lines (`C /d1`), for readable assertions.
pub(crate) fn lines(changes: Vec<Change>) -> Vec<String> {
    changes
        .into_iter()
        .map(|change| {
            format!(
                "{} {}",
                change.kind.letter(),
                String::from_utf8_lossy(&change.path)
            )
        })
        .collect()
}

/// One entry of an in-memory layer.
#[derive(Debug, Clone)]
pub(crate) struct MemNode {
    pub(crate) meta: Meta,
    pub(crate) xattrs: BTreeMap<String, Vec<u8>>,
    pub(crate) children: BTreeMap<CString, MemNode>,
}

impl MemNode {
    pub(crate) fn node(meta: Meta) -> MemNode {
        MemNode {
            meta,
            xattrs: BTreeMap::new(),
            children: BTreeMap::new(),
        }
    }

    pub(crate) fn root() -> MemNode {
        MemNode::dir(0o755)
    }

    pub(crate) fn dir(permissions: u32) -> MemNode {
        MemNode::node(meta::dir(permissions))
    }

    pub(crate) fn file(permissions: u32, size: i64) -> MemNode {
        MemNode::node(meta::file(permissions, size, 1_600_000_000))
    }

    pub(crate) fn symlink(size: i64) -> MemNode {
        MemNode::node(meta::symlink(size))
    }

    pub(crate) fn whiteout() -> MemNode {
        MemNode::node(meta::whiteout())
    }

    pub(crate) fn with(mut self, name: &str, child: MemNode) -> MemNode {
        self.children
            .insert(CString::new(name).expect("name without NUL"), child);
        self
    }

    /// Adds files `0644`, one byte, all with the same mtime.
    pub(crate) fn with_files(self, names: &[&str]) -> MemNode {
        names
            .iter()
            .fold(self, |dir, name| dir.with(name, MemNode::file(0o644, 1)))
    }

    pub(crate) fn xattr(mut self, name: &str, value: &[u8]) -> MemNode {
        self.xattrs.insert(name.to_owned(), value.to_vec());
        self
    }

    pub(crate) fn opaque(self) -> MemNode {
        self.xattr("trusted.overlay.opaque", b"y")
    }

    pub(crate) fn capability(self, value: &[u8]) -> MemNode {
        self.xattr("security.capability", value)
    }

    fn read_xattrs(&self) -> Result<Xattrs> {
        let mut list = Vec::new();
        for name in self.xattrs.keys() {
            list.extend_from_slice(name.as_bytes());
            list.push(0);
        }
        Xattrs::from_list(&list, |name| {
            Ok(name
                .to_str()
                .ok()
                .and_then(|name| self.xattrs.get(name))
                .cloned())
        })
    }

    fn child(&self, name: &CStr) -> Option<&MemNode> {
        self.children.get(name)
    }
}

/// [`Layers`] over [`MemNode`] trees; an opened directory is a copy of its subtree.
#[derive(Debug)]
pub(crate) struct MemFs;

impl Layers for MemFs {
    type Dir = MemNode;

    fn entries(&self, dir: &MemNode) -> Result<Vec<Entry>> {
        Ok(dir
            .children
            .iter()
            .map(|(name, child)| Entry {
                name: name.clone(),
                maybe_whiteout: child.meta.mode & 0o170_000 == 0o020_000,
            })
            .collect())
    }

    fn stat(&self, dir: &MemNode, name: &CStr) -> Result<Option<Meta>> {
        Ok(dir.child(name).map(|child| child.meta))
    }

    fn open_dir(&self, dir: &MemNode, name: &CStr) -> Result<MemNode> {
        let child = dir.child(name).expect("open_dir of a missing name");
        assert!(child.meta.is_dir(), "open_dir of a non-directory");
        Ok(child.clone())
    }

    fn dir_xattrs(&self, dir: &MemNode) -> Result<Xattrs> {
        dir.read_xattrs()
    }

    fn file_xattrs(&self, dir: &MemNode, name: &CStr) -> Result<Xattrs> {
        let child = dir.child(name).expect("file_xattrs of a missing name");
        assert!(child.meta.is_regular(), "file_xattrs of a non-regular file");
        child.read_xattrs()
    }
}

/// Runs the upperdir walk on in-memory layers.
pub(crate) fn walk(upper: &MemNode, lowers: &[&MemNode]) -> Result<Vec<Change>> {
    walk_within(upper, lowers, usize::MAX)
}

/// [`walk`] keeping at most `max_open` lower directories open at once.
pub(crate) fn walk_within(
    upper: &MemNode,
    lowers: &[&MemNode],
    max_open: usize,
) -> Result<Vec<Change>> {
    let lowers = lowers.iter().map(|&lower| lower.clone()).collect();
    crate::upper::walk(&MemFs, upper, lowers, max_open).map(crate::sorted)
}

/// The merged view of `layers` (top first) as the kernel shows it, built eagerly: the model the
/// walk's lazy lower stacks are checked against.
pub(crate) fn merged_view(layers: &[&MemNode]) -> Children {
    merge_dirs(layers)
}

fn merge_dirs(stack: &[&MemNode]) -> Children {
    let names: BTreeSet<&CString> = stack.iter().flat_map(|dir| dir.children.keys()).collect();
    let mut merged = Children::new();
    for name in names {
        let Some((first_idx, first)) = stack
            .iter()
            .enumerate()
            .find_map(|(idx, dir)| dir.children.get(name).map(|child| (idx, child)))
        else {
            continue;
        };
        if first.meta.is_whiteout() {
            continue;
        }
        let children = if first.meta.is_dir() {
            let mut sub_stack = vec![first];
            let mut opaque = is_opaque(first);
            for dir in &stack[first_idx + 1..] {
                if opaque {
                    break;
                }
                match dir.children.get(name) {
                    None => continue,
                    Some(child) if child.meta.is_dir() => {
                        sub_stack.push(child);
                        opaque = is_opaque(child);
                    }
                    Some(_) => break,
                }
            }
            merge_dirs(&sub_stack)
        } else {
            Children::new()
        };
        let capability = first
            .xattrs
            .get("security.capability")
            .filter(|value| !value.is_empty() && first.meta.may_carry_capability())
            .cloned();
        merged.insert(
            name.clone(),
            Node {
                meta: first.meta,
                capability,
                children,
            },
        );
    }
    merged
}

fn is_opaque(dir: &MemNode) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| dir.xattrs.get(*name).map(Vec::as_slice) == Some(b"y"))
}

/// A small deterministic generator (xorshift64*), so failures name a reproducible seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

const NAMES: [&str; 3] = ["a", "b", "c"];
const MAX_DEPTH: usize = 3;

fn random_dir(rng: &mut Rng, depth: usize) -> MemNode {
    let mut dir = MemNode::dir(rng.pick(&[0o755, 0o755, 0o700]));
    if rng.below(4) == 0 {
        dir = dir.opaque();
    }
    if rng.below(10) == 0 {
        dir = dir.capability(&[rng.pick(&[1, 2])]);
    }
    for name in NAMES {
        if rng.below(2) == 0 {
            continue;
        }
        let child = match rng.below(20) {
            0..=6 if depth < MAX_DEPTH => random_dir(rng, depth + 1),
            0..=10 => {
                let mut file = MemNode::node(meta::file(
                    rng.pick(&[0o644, 0o644, 0o600]),
                    rng.pick(&[1, 1, 2]),
                    rng.pick(&[100, 100, 101]),
                ));
                file.meta.mtime_nsec = rng.pick(&[0, 5, 5, 7]);
                file.meta.uid = rng.pick(&[0, 0, 1]);
                if rng.below(8) == 0 {
                    file = file.capability(&[rng.pick(&[1, 2])]);
                }
                file
            }
            11..=13 => MemNode::whiteout(),
            14 => MemNode::symlink(rng.pick(&[3, 4])),
            15 => MemNode::node(meta::socket()),
            16 => MemNode::node(meta::block_device(7, rng.pick(&[0, 1]) as u32)),
            17 => MemNode::node(meta::fifo()),
            _ => MemNode::node(meta::char_device(1, rng.pick(&[3, 5]) as u32)),
        };
        dir = dir.with(name, child);
    }
    dir
}

/// Checks `walk` against Docker's comparison of the modelled merged views on random layers.
pub(crate) fn cross_check(walk: impl Fn(&MemNode, &[MemNode]) -> Result<Vec<Change>>) {
    const N_CASES: u64 = 10_000;
    for seed in 1..=N_CASES {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let n_lowers = 1 + rng.below(4) as usize;
        let lowers: Vec<MemNode> = (0..n_lowers).map(|_| random_dir(&mut rng, 0)).collect();
        let upper = random_dir(&mut rng, 0);
        let lower_refs: Vec<&MemNode> = lowers.iter().collect();
        let container_layers: Vec<&MemNode> =
            std::iter::once(&upper).chain(lowers.iter()).collect();
        let expected = crate::sorted(compare_trees(
            &merged_view(&container_layers),
            &merged_view(&lower_refs),
        ));
        let actual = walk(&upper, &lowers).expect("walk");
        assert_eq!(
            lines(actual),
            lines(expected),
            "seed {seed}: upper {upper:#?}\nlowers {lowers:#?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_view_follows_whiteouts_opaque_dirs_and_non_dir_shadows() {
        let bottom = MemNode::root()
            .with("d", MemNode::dir(0o755).with_files(&["b1"]))
            .with("o", MemNode::dir(0o755).with_files(&["b2"]))
            .with("s", MemNode::dir(0o755).with_files(&["b3"]))
            .with("w", MemNode::file(0o644, 1));
        let top = MemNode::root()
            .with("d", MemNode::dir(0o700).with_files(&["t1"]))
            .with("o", MemNode::dir(0o755).opaque().with_files(&["t2"]))
            .with("s", MemNode::file(0o644, 1))
            .with("w", MemNode::whiteout());
        let merged = merged_view(&[&top, &bottom]);
        let names = |children: &Children| -> Vec<String> {
            children
                .keys()
                .map(|name| name.to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names(&merged), ["d", "o", "s"]);
        assert_eq!(names(&merged[c"d"].children), ["b1", "t1"]);
        assert_eq!(merged[c"d"].meta, meta::dir(0o700));
        assert_eq!(names(&merged[c"o"].children), ["t2"]);
        assert!(merged[c"s"].children.is_empty());
    }
}
