//! Walking and removing below the data root without following symlinks: the one descriptor
//! walker of the store. Every directory is opened `O_DIRECTORY | O_NOFOLLOW` from its parent's
//! descriptor, from the data root down, so a symlink (relative or absolute) or a file where the
//! format has a directory fails with its path instead of leading out of the root; trees are
//! removed with `unlinkat` on those descriptors and never across a mount point.

use std::collections::BTreeSet;
use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use syscompat::{MountKey, NodeStat};

use crate::{Error, Result};

/// Flags for every directory opened below the data root: a symlink in any component fails with
/// `ELOOP` instead of being followed.
pub(crate) const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// What a walk should do at a mount point inside the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Crossing {
    /// Note it and do not enter it (garbage with a mount inside is left alone).
    Refuse,
    /// Walk on, as Docker's `directory.Size` does.
    Enter,
}

/// What a walk of one tree found.
#[derive(Debug, Default)]
pub(crate) struct TreeFacts {
    /// Whether the tree exists.
    pub(crate) found: bool,
    /// Docker's `directory.Size` (moby pkg/directory): `st_size` of every entry that is not a
    /// directory, each inode counted once.
    pub(crate) size: u64,
    inodes: BTreeSet<u64>,
    /// The first mount point met (an absolute path), when the walk refuses to cross them.
    pub(crate) mount: Option<PathBuf>,
}

/// The data root, opened once; directories below it are opened one component at a time.
pub(crate) struct Below {
    root_path: PathBuf,
    root: OwnedFd,
}

impl Below {
    pub(crate) fn open(root_path: &Path) -> Result<Below> {
        // The root itself may be a symlink (`/var/lib/docker -> /data/docker`): it is what the
        // user named. Nothing below it is followed.
        let root = rustix::fs::open(
            root_path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(sys_error("opening", root_path))?;
        Ok(Below {
            root_path: root_path.to_path_buf(),
            root,
        })
    }

    /// The directory `rel` (`a/b/c`); `None` when a component is missing. A component that is a
    /// symlink is refused.
    pub(crate) fn dir(&self, rel: &str) -> Result<Option<OwnedFd>> {
        let path = self.root_path.join(rel);
        let mut fd = rustix::fs::openat(&self.root, ".", DIR_FLAGS, Mode::empty())
            .map_err(sys_error("opening", &self.root_path))?;
        for component in rel.split('/').filter(|c| !c.is_empty()) {
            fd = match rustix::fs::openat(&fd, component, DIR_FLAGS, Mode::empty()) {
                Ok(next) => next,
                Err(Errno::NOENT) => return Ok(None),
                Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
                    return Err(Error::Io {
                        op: "refusing to follow a symlink (or a non-directory) at",
                        path,
                        source: Errno::LOOP.into(),
                    })
                }
                Err(errno) => return Err(sys_error("opening", &path)(errno)),
            };
        }
        Ok(Some(fd))
    }

    /// Walks `parent_rel/name` (which need not exist).
    pub(crate) fn measure(
        &self,
        parent_rel: &str,
        name: &str,
        crossing: Crossing,
    ) -> Result<TreeFacts> {
        let mut facts = TreeFacts::default();
        let Some(parent) = self.dir(parent_rel)? else {
            return Ok(facts);
        };
        let parent_path = self.root_path.join(parent_rel);
        let parent_mount = stat_self(&parent, &parent_path)?.mount;
        let name = OsStr::new(name);
        walk(
            parent.as_fd(),
            parent_mount,
            name,
            &parent_path.join(name),
            crossing,
            &mut facts,
        )?;
        Ok(facts)
    }

    /// Fails with [`Error::Mounted`] when a file system is mounted at or inside `parent_rel/name`.
    pub(crate) fn refuse_mounts(&self, parent_rel: &str, name: &str) -> Result<()> {
        match self.measure(parent_rel, name, Crossing::Refuse)?.mount {
            Some(path) => Err(Error::Mounted { path }),
            None => Ok(()),
        }
    }

    /// Removes `parent_rel/name` (a file, symlink or directory tree) without following symlinks
    /// or crossing mount points; a missing one is fine.
    pub(crate) fn remove(&self, parent_rel: &str, name: &str) -> Result<()> {
        let Some(parent) = self.dir(parent_rel)? else {
            return Ok(());
        };
        let parent_path = self.root_path.join(parent_rel);
        let parent_mount = stat_self(&parent, &parent_path)?.mount;
        let name = OsStr::new(name);
        remove_at(parent.as_fd(), parent_mount, name, &parent_path.join(name))
    }

    /// Removes `parent_rel/name`, a symlink, while it still points at `expected`; a missing one
    /// is fine.
    pub(crate) fn remove_link(&self, parent_rel: &str, name: &str, expected: &Path) -> Result<()> {
        let Some(dir) = self.dir(parent_rel)? else {
            return Ok(());
        };
        let path = self.root_path.join(parent_rel).join(name);
        let target = match rustix::fs::readlinkat(&dir, name, Vec::new()) {
            Ok(target) => PathBuf::from(OsStr::from_bytes(target.as_bytes())),
            Err(Errno::NOENT) => return Ok(()),
            Err(errno) => return Err(sys_error("reading link", &path)(errno)),
        };
        if target != expected {
            return Err(Error::Io {
                op: "not removing a link changed since it was planned",
                path,
                source: std::io::Error::other(format!("it now points at {}", target.display())),
            });
        }
        rustix::fs::unlinkat(&dir, name, AtFlags::empty()).map_err(sys_error("removing", &path))
    }
}

/// Removes `path` (a file, a symlink itself, or a directory tree) without following symlinks or
/// crossing mount points; a missing one is fine. Its parent directory is opened as named: the
/// caller has verified it (the layout, a layer dir).
pub(crate) fn remove_path(path: &Path) -> Result<()> {
    let (Some(parent_path), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Error::InvalidId {
            what: "path to remove",
            value: path.display().to_string(),
        });
    };
    let parent_path = if parent_path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent_path
    };
    let parent = match rustix::fs::open(parent_path, DIR_FLAGS, Mode::empty()) {
        Ok(parent) => parent,
        Err(Errno::NOENT) => return Ok(()),
        Err(errno) => return Err(sys_error("opening", parent_path)(errno)),
    };
    let parent_mount = stat_self(&parent, parent_path)?.mount;
    remove_at(parent.as_fd(), parent_mount, name, path)
}

/// Walks `name` in `parent`, adding to `facts`.
fn walk(
    parent: BorrowedFd<'_>,
    parent_mount: MountKey,
    name: &OsStr,
    path: &Path,
    crossing: Crossing,
    facts: &mut TreeFacts,
) -> Result<()> {
    let stat = match stat_at(parent, name) {
        Ok(stat) => stat,
        // Gone while walked: Docker's walk skips it too.
        Err(Errno::NOENT) => return Ok(()),
        Err(errno) => return Err(sys_error("reading", path)(errno)),
    };
    facts.found = true;
    if stat.file_type != FileType::Directory {
        if stat.size > 0 && facts.inodes.insert(stat.ino) {
            facts.size += stat.size;
        }
        return Ok(());
    }
    let own_mount = stat.mount;
    if own_mount != parent_mount && crossing == Crossing::Refuse {
        facts.mount.get_or_insert_with(|| path.to_path_buf());
        return Ok(());
    }
    let dir = match rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty()) {
        Ok(dir) => dir,
        Err(Errno::NOENT) => return Ok(()),
        Err(errno) => return Err(sys_error("opening", path)(errno)),
    };
    for child in list(&dir, path)? {
        let child = OsStr::from_bytes(child.as_bytes());
        walk(
            dir.as_fd(),
            own_mount,
            child,
            &path.join(child),
            crossing,
            facts,
        )?;
    }
    Ok(())
}

/// Removes `name` in `parent`: unlinks a non-directory, empties and removes a directory.
pub(crate) fn remove_at(
    parent: BorrowedFd<'_>,
    parent_mount: MountKey,
    name: &OsStr,
    path: &Path,
) -> Result<()> {
    let stat = match stat_at(parent, name) {
        Ok(stat) => stat,
        Err(Errno::NOENT) => return Ok(()),
        Err(errno) => return Err(sys_error("reading", path)(errno)),
    };
    if stat.file_type != FileType::Directory {
        return match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(errno) => Err(sys_error("removing", path)(errno)),
        };
    }
    let own_mount = stat.mount;
    if own_mount != parent_mount {
        return Err(Error::Mounted {
            path: path.to_path_buf(),
        });
    }
    let dir = rustix::fs::openat(parent, name, DIR_FLAGS, Mode::empty())
        .map_err(sys_error("opening", path))?;
    for child in list(&dir, path)? {
        let child = OsStr::from_bytes(child.as_bytes());
        remove_at(dir.as_fd(), own_mount, child, &path.join(child))?;
    }
    match rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(errno) => Err(sys_error("removing", path)(errno)),
    }
}

/// The entries of an open directory, without `.` and `..`.
fn list(dir: &OwnedFd, path: &Path) -> Result<Vec<CString>> {
    let mut reader = rustix::fs::Dir::read_from(dir).map_err(sys_error("listing", path))?;
    let mut names = Vec::new();
    while let Some(entry) = reader.read() {
        let entry = entry.map_err(sys_error("listing", path))?;
        let name: &CStr = entry.file_name();
        if name.to_bytes() != b"." && name.to_bytes() != b".." {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// Type, size, inode and mount of `name` in `parent`, not following it (statx where the kernel
/// has it; see `syscompat::stat_node`).
fn stat_at(parent: BorrowedFd<'_>, name: &OsStr) -> rustix::io::Result<NodeStat> {
    syscompat::stat_node(parent, name)
}

pub(crate) fn stat_self(dir: &OwnedFd, path: &Path) -> Result<NodeStat> {
    syscompat::stat_node(dir.as_fd(), OsStr::new("")).map_err(sys_error("reading", path))
}

pub(crate) fn sys_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(Errno) -> Error + 'a {
    move |errno| Error::Io {
        op,
        path: path.to_path_buf(),
        source: errno.into(),
    }
}
