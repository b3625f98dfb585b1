//! The tree a layer tar leaves in its directory, from the tar alone, and the comparison of a
//! layer directory with it: what `fsck --verify-content` adds to the DiffID of the reassembled
//! tar, which only reads the files the tar names and so cannot see an entry added to the
//! directory, one removed or replaced by another kind, or changed owners and modes.
//!
//! The model follows the members as unpacking applies them (`apply.rs`): a later member replaces
//! an earlier one and what lay below it unless both are directories, a whiteout replaces its
//! name, an opaque marker marks its directory, and missing parents are directories. What it does
//! not hold: times (unpacking sets them, but a directory's may move with its children), xattrs
//! but the opaque marker, and the metadata of an inode with several names (each link's member
//! changes it, as in Docker).

use std::collections::BTreeMap;
use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;
use syscompat::dir::{get_xattr, open_dir_at, read_dir};

use crate::apply::Failure;
use crate::archive::{EntryData, Sink};
use crate::plan::{Action, Components, Metadata, Node};

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What one path of a layer directory is, as its tar made it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Dir,
    File { size: u64 },
    Symlink { target: Vec<u8> },
    CharDevice { major: u32, minor: u32 },
    BlockDevice { major: u32, minor: u32 },
    Fifo,
}

#[derive(Debug, Clone)]
struct Expected {
    kind: Kind,
    /// Mode bits (`None`: not checked, such as a symlink's), uid and gid; `None` for a directory
    /// unpacking made as a missing parent and for the names of a hardlinked inode.
    owner_mode: Option<(Option<u32>, u32, u32)>,
    /// Whether the directory is opaque: by a `.wh..wh..opq` member; `None` (either) when only its
    /// header's xattrs say so, which ovl drops and dockerd sets.
    opaque: Option<bool>,
}

/// The tree a layer tar leaves, by path relative to the layer root (components joined by `/`).
#[derive(Debug, Default)]
pub struct ExpectedTree {
    entries: BTreeMap<Vec<u8>, Expected>,
    /// A member's path looped through symlinks: unpacking refuses such a tar, and nothing is
    /// compared.
    given_up: bool,
}

/// Builds an [`ExpectedTree`] from the members of a tar, reading file data only to skip it.
#[derive(Default)]
pub(crate) struct TreeSink {
    pub(crate) tree: ExpectedTree,
}

impl TreeSink {
    /// `dir` resolved; `None` (and the tree given up) for a symlink loop, which unpacking
    /// refuses: such a tar has no directory to compare with.
    fn resolve(&mut self, dir: &[Vec<u8>]) -> Option<Components> {
        if self.tree.given_up {
            return None;
        }
        let resolved = self.tree.resolve(dir);
        if resolved.is_none() {
            self.tree.given_up = true;
        }
        resolved
    }
}

impl Sink for TreeSink {
    fn apply(&mut self, action: &Action, data: &mut EntryData<'_>) -> Result<(), Failure> {
        match action {
            Action::Skip(_) => {}
            Action::Opaque { dir } => {
                let Some(dir) = self.resolve(dir) else {
                    return Ok(());
                };
                self.tree.parents(&dir);
                if let Some(entry) = self.tree.entries.get_mut(&key(&dir)) {
                    entry.opaque = Some(true);
                }
            }
            Action::Whiteout {
                parent,
                name,
                uid,
                gid,
            } => {
                let Some(parent) = self.resolve(parent) else {
                    return Ok(());
                };
                let path = self.tree.replace(&parent, name);
                self.tree.entries.insert(
                    path,
                    Expected {
                        kind: Kind::CharDevice { major: 0, minor: 0 },
                        owner_mode: Some((None, *uid, *gid)),
                        opaque: Some(false),
                    },
                );
            }
            Action::Create {
                parent,
                name,
                node,
                meta,
            } => {
                let size = data.skip_file(node)?;
                let Some(parent) = self.resolve(parent) else {
                    return Ok(());
                };
                // A hardlink's target, resolved like any path but its last component.
                let link = match node {
                    Node::Hardlink { target } => {
                        let Some((last, target_parent)) = target.split_last() else {
                            return Ok(());
                        };
                        let Some(mut target) = self.resolve(target_parent) else {
                            return Ok(());
                        };
                        target.push(last.clone());
                        Some(key(&target))
                    }
                    _ => None,
                };
                self.tree.create(&parent, name, node, meta, size, link);
            }
        }
        Ok(())
    }
}

/// The path of `components` below the layer root, empty for the root.
fn key(components: &[Vec<u8>]) -> Vec<u8> {
    components.join(&b'/')
}

fn child_path(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = parent.to_vec();
    if !path.is_empty() {
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path
}

/// Symlinks followed in one path before unpacking gives up with `ELOOP`, as the kernel does.
const MAX_SYMLINK_HOPS: usize = 40;

impl ExpectedTree {
    /// The physical path of the directory `components` names, through the symlinks members made
    /// before, resolved inside the layer root as unpacking resolves them (an absolute target
    /// starts at the root, `..` stops there); `None` for a loop.
    fn resolve(&self, components: &[Vec<u8>]) -> Option<Components> {
        let mut pending: std::collections::VecDeque<Vec<u8>> = components.iter().cloned().collect();
        let mut resolved: Components = Vec::new();
        let mut hops = 0;
        while let Some(component) = pending.pop_front() {
            match component.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    resolved.pop();
                    continue;
                }
                _ => {}
            }
            resolved.push(component);
            if let Some(Expected {
                kind: Kind::Symlink { target },
                ..
            }) = self.entries.get(&key(&resolved))
            {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return None;
                }
                resolved.pop();
                if target.starts_with(b"/") {
                    resolved.clear();
                }
                for part in target.split(|&b| b == b'/').rev() {
                    pending.push_front(part.to_vec());
                }
            }
        }
        Some(resolved)
    }

    /// Makes the missing directories of `dir` (its ancestors and itself).
    fn parents(&mut self, dir: &[Vec<u8>]) {
        for depth in 1..=dir.len() {
            self.entries.entry(key(&dir[..depth])).or_insert(Expected {
                kind: Kind::Dir,
                owner_mode: None,
                opaque: Some(false),
            });
        }
    }

    /// Removes `parent/name` and everything below it; returns its path.
    fn replace(&mut self, parent: &Components, name: &[u8]) -> Vec<u8> {
        self.parents(parent);
        let path = child_path(&key(parent), name);
        let mut prefix = path.clone();
        prefix.push(b'/');
        let below: Vec<Vec<u8>> = self
            .entries
            .range(prefix.clone()..)
            .take_while(|(key, _)| key.starts_with(&prefix))
            .map(|(key, _)| key.clone())
            .collect();
        for key in below {
            self.entries.remove(&key);
        }
        self.entries.remove(&path);
        path
    }

    fn create(
        &mut self,
        parent: &Components,
        name: &[u8],
        node: &Node,
        meta: &Metadata,
        size: u64,
        link: Option<Vec<u8>>,
    ) {
        let opaque = match meta
            .xattrs
            .iter()
            .any(|(key, value)| key == OPAQUE_XATTR.as_bytes() && value == b"y")
        {
            true => None,
            false => Some(false),
        };
        let owned = |mode| Some((mode, meta.uid, meta.gid));
        let (kind, owner_mode) = match node {
            Node::Dir => {
                self.parents(parent);
                let path = child_path(&key(parent), name);
                if let Some(existing) = self.entries.get_mut(&path) {
                    if existing.kind == Kind::Dir {
                        // A directory stays, with this member's owner and mode.
                        existing.owner_mode = owned(Some(meta.mode));
                        if opaque.is_none() && existing.opaque == Some(false) {
                            existing.opaque = None;
                        }
                        return;
                    }
                }
                (Kind::Dir, owned(Some(meta.mode)))
            }
            Node::File | Node::SparseFile { .. } => (Kind::File { size }, owned(Some(meta.mode))),
            Node::Symlink { target } => (
                Kind::Symlink {
                    target: target.clone(),
                },
                owned(None),
            ),
            Node::CharDevice { major, minor } => (
                Kind::CharDevice {
                    major: *major,
                    minor: *minor,
                },
                owned(Some(meta.mode)),
            ),
            Node::BlockDevice { major, minor } => (
                Kind::BlockDevice {
                    major: *major,
                    minor: *minor,
                },
                owned(Some(meta.mode)),
            ),
            Node::Fifo => (Kind::Fifo, owned(Some(meta.mode))),
            Node::Hardlink { .. } => {
                // Another name of the target's inode, whose owner and mode this member changes:
                // neither name's are checked.
                let kind = match link.and_then(|target| self.entries.get_mut(&target)) {
                    Some(entry) => {
                        entry.owner_mode = None;
                        entry.kind.clone()
                    }
                    None => Kind::File { size: 0 },
                };
                (kind, None)
            }
        };
        let path = self.replace(parent, name);
        self.entries.insert(
            path,
            Expected {
                kind,
                owner_mode,
                opaque,
            },
        );
    }

    /// Compares the layer directory `root` with the tree; returns what differs, one line per
    /// path, at most `limit` lines (and how many more there were).
    pub fn compare(mut self, root: BorrowedFd<'_>, limit: usize) -> Result<Mismatches, Errno> {
        let mut walk = Walk {
            found: Mismatches::default(),
            limit,
        };
        if self.given_up {
            return Ok(walk.found);
        }
        walk.dir(&mut self.entries, root, b"")?;
        // What the walk did not find.
        for path in self.entries.keys() {
            walk.report(path, "is in the layer's tar but not in its directory");
        }
        Ok(walk.found)
    }
}

/// What [`ExpectedTree::compare`] found.
#[derive(Debug, Default)]
pub struct Mismatches {
    pub lines: Vec<String>,
    pub n_more: usize,
}

struct Walk {
    found: Mismatches,
    limit: usize,
}

impl Walk {
    fn report(&mut self, path: &[u8], problem: &str) {
        if self.found.lines.len() < self.limit {
            self.found
                .lines
                .push(format!("/{} {problem}", String::from_utf8_lossy(path)));
        } else {
            self.found.n_more += 1;
        }
    }

    /// Checks every entry of `dir` against (and takes it out of) `expected`, and descends into
    /// the directories that are directories in both.
    fn dir(
        &mut self,
        expected: &mut BTreeMap<Vec<u8>, Expected>,
        dir: BorrowedFd<'_>,
        prefix: &[u8],
    ) -> Result<(), Errno> {
        let mut names = read_dir(dir)?;
        // In byte order, so that a report lists the same paths the same way every time.
        names.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        for (name, _) in names {
            let path = child_path(prefix, name.to_bytes());
            let stat = rustix::fs::statat(dir, &name, AtFlags::SYMLINK_NOFOLLOW)?;
            let Some(want) = expected.remove(&path) else {
                self.report(&path, "is in the layer's directory but not in its tar");
                continue;
            };
            let file_type = FileType::from_raw_mode(stat.st_mode);
            let kind_matches = match &want.kind {
                Kind::Dir => file_type == FileType::Directory,
                Kind::File { .. } => file_type == FileType::RegularFile,
                Kind::Symlink { .. } => file_type == FileType::Symlink,
                Kind::CharDevice { .. } => file_type == FileType::CharacterDevice,
                Kind::BlockDevice { .. } => file_type == FileType::BlockDevice,
                Kind::Fifo => file_type == FileType::Fifo,
            };
            if !kind_matches {
                self.report(
                    &path,
                    &format!(
                        "is a {} where the tar has {}",
                        describe(file_type),
                        want.kind.name()
                    ),
                );
                continue;
            }
            self.check(&want, &stat, dir, &name, &path)?;
            if file_type == FileType::Directory {
                let child = open_dir_at(dir, &name)?;
                let opaque = get_xattr(child.as_fd(), OPAQUE_XATTR)?.as_deref() == Some(b"y");
                match want.opaque {
                    Some(true) if !opaque => {
                        self.report(&path, "is not opaque where the tar marks it so")
                    }
                    Some(false) if opaque => {
                        self.report(&path, "is opaque where the tar does not mark it so")
                    }
                    _ => {}
                }
                self.dir(expected, child.as_fd(), &path)?;
            }
        }
        Ok(())
    }

    fn check(
        &mut self,
        want: &Expected,
        stat: &rustix::fs::Stat,
        dir: BorrowedFd<'_>,
        name: &CStr,
        path: &[u8],
    ) -> Result<(), Errno> {
        match &want.kind {
            Kind::File { size } if stat.st_size as u64 != *size => self.report(
                path,
                &format!("has {} bytes where the tar has {size}", stat.st_size),
            ),
            Kind::Symlink { target } => {
                let actual = rustix::fs::readlinkat(dir, name, Vec::new())?;
                if actual.as_bytes() != target.as_slice() {
                    self.report(
                        path,
                        &format!(
                            "links to {} where the tar has {}",
                            String::from_utf8_lossy(actual.as_bytes()),
                            String::from_utf8_lossy(target)
                        ),
                    );
                }
            }
            Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor }
                if (
                    rustix::fs::major(stat.st_rdev),
                    rustix::fs::minor(stat.st_rdev),
                ) != (*major, *minor) =>
            {
                self.report(
                    path,
                    &format!(
                        "is device {}:{} where the tar has {major}:{minor}",
                        rustix::fs::major(stat.st_rdev),
                        rustix::fs::minor(stat.st_rdev)
                    ),
                );
            }
            _ => {}
        }
        let shared = want.kind != Kind::Dir && stat.st_nlink > 1;
        if let (Some((mode, uid, gid)), false) = (want.owner_mode, shared) {
            if (stat.st_uid, stat.st_gid) != (uid, gid) {
                self.report(
                    path,
                    &format!(
                        "is owned by {}:{} where the tar has {uid}:{gid}",
                        stat.st_uid, stat.st_gid
                    ),
                );
            }
            if let Some(mode) = mode {
                if stat.st_mode & 0o7777 != mode {
                    self.report(
                        path,
                        &format!(
                            "has mode {:04o} where the tar has {mode:04o}",
                            stat.st_mode & 0o7777
                        ),
                    );
                }
            }
        }
        Ok(())
    }
}

impl Kind {
    fn name(&self) -> &'static str {
        match self {
            Kind::Dir => "a directory",
            Kind::File { .. } => "a regular file",
            Kind::Symlink { .. } => "a symlink",
            Kind::CharDevice { major: 0, minor: 0 } => "a whiteout",
            Kind::CharDevice { .. } => "a character device",
            Kind::BlockDevice { .. } => "a block device",
            Kind::Fifo => "a FIFO",
        }
    }
}

fn describe(file_type: FileType) -> &'static str {
    match file_type {
        FileType::Directory => "directory",
        FileType::RegularFile => "regular file",
        FileType::Symlink => "symlink",
        FileType::CharacterDevice => "character device",
        FileType::BlockDevice => "block device",
        FileType::Fifo => "FIFO",
        FileType::Socket => "socket",
        FileType::Unknown => "file of unknown type",
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use gotar::{typeflag, Header, END_OF_ARCHIVE};

    use crate::{expected_tree, UnpackOptions};

    fn member(name: &str, flag: u8, mode: i64, linkname: &str, data: &[u8]) -> Vec<u8> {
        let header = Header {
            name: name.as_bytes().to_vec(),
            typeflag: flag,
            mode,
            uid: i64::from(rustix::process::getuid().as_raw()),
            gid: i64::from(rustix::process::getgid().as_raw()),
            size: data.len() as i64,
            linkname: linkname.as_bytes().to_vec(),
            ..Header::default()
        };
        let mut bytes = header.encode().expect("header");
        bytes.extend_from_slice(data);
        bytes.resize(bytes.len().div_ceil(512) * 512, 0);
        bytes
    }

    /// A tar whose members go through a symlink it made, with a hardlink, and the directory
    /// unpacking it leaves.
    fn layer() -> (Vec<u8>, tempfile::TempDir) {
        let mut tar = Vec::new();
        tar.extend(member("a/", typeflag::DIR, 0o750, "", b""));
        tar.extend(member("l", typeflag::SYMLINK, 0o777, "/a", b""));
        tar.extend(member("l/f", typeflag::REG, 0o640, "", b"data"));
        tar.extend(member("h", typeflag::LINK, 0o640, "l/f", b""));
        tar.extend(member("d", typeflag::REG, 0o600, "", b"x"));
        tar.extend(END_OF_ARCHIVE);
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir(root.join("a")).expect("a");
        rustix::fs::chmod(root.join("a"), rustix::fs::Mode::from_raw_mode(0o750)).expect("chmod");
        std::os::unix::fs::symlink("/a", root.join("l")).expect("l");
        std::fs::write(root.join("a/f"), "data").expect("a/f");
        rustix::fs::chmod(root.join("a/f"), rustix::fs::Mode::from_raw_mode(0o640)).expect("chmod");
        std::fs::hard_link(root.join("a/f"), root.join("h")).expect("h");
        std::fs::write(root.join("d"), "x").expect("d");
        rustix::fs::chmod(root.join("d"), rustix::fs::Mode::from_raw_mode(0o600)).expect("chmod");
        (tar, dir)
    }

    fn mismatches(tar: &[u8], dir: &std::path::Path) -> Vec<String> {
        let (_, tree) = expected_tree(tar, &UnpackOptions::default()).expect("read tar");
        let root = std::fs::File::open(dir).expect("open");
        tree.compare(root.as_fd(), 10).expect("compare").lines
    }

    #[test]
    fn a_directory_as_its_tar_made_it_matches() {
        let (tar, dir) = layer();
        assert_eq!(mismatches(&tar, dir.path()), Vec::<String>::new());
    }

    #[test]
    fn each_difference_is_named_by_path() {
        let (tar, dir) = layer();
        let root = dir.path();
        std::fs::write(root.join("a/extra"), "").expect("extra");
        std::fs::remove_file(root.join("l")).expect("rm l");
        std::os::unix::fs::symlink("a", root.join("l")).expect("l");
        rustix::fs::chmod(root.join("d"), rustix::fs::Mode::from_raw_mode(0o644)).expect("chmod");
        std::fs::create_dir(root.join("d2")).expect("d2");
        assert_eq!(
            mismatches(&tar, root),
            vec![
                "/a/extra is in the layer's directory but not in its tar".to_string(),
                "/d has mode 0644 where the tar has 0600".to_string(),
                "/d2 is in the layer's directory but not in its tar".to_string(),
                "/l links to a where the tar has /a".to_string(),
            ]
        );
        std::fs::remove_file(root.join("a/f")).expect("rm a/f");
        std::fs::remove_file(root.join("h")).expect("rm h");
        let lines = mismatches(&tar, root);
        assert!(
            lines.contains(&"/a/f is in the layer's tar but not in its directory".to_string())
                && lines.contains(&"/h is in the layer's tar but not in its directory".to_string()),
            "{lines:?}"
        );
    }
}
