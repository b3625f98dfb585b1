//! Walking and removing below the data root without following symlinks: the one descriptor
//! walker of the store. Every directory is opened `O_DIRECTORY | O_NOFOLLOW` from its parent's
//! descriptor, from the data root down, so a symlink (relative or absolute) or a file where the
//! format has a directory fails with its path instead of leading out of the root; trees are
//! removed with `unlinkat` on those descriptors and never across a mount point.
//!
//! Measuring and removing are one traversal (`traverse`) with what each does at an entry
//! (`Visit`); directories are opened and listed by the steps every walk of ovl shares
//! (`syscompat::dir`), and sizes follow Docker's `directory.Size` through
//! `syscompat::dir::DirectorySize`.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use syscompat::dir::{open_dir_at, read_dir, DirectorySize, DIR_FLAGS};
use syscompat::{MountKey, NodeStat};

use crate::{Error, Result};

/// What a walk should do at a mount point inside the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Crossing {
    /// Note it and do not enter it (garbage with a mount inside is left alone).
    Refuse,
    /// Walk on, as Docker's `directory.Size` does.
    Enter,
}

/// What a walk of one tree found.
#[derive(Debug)]
pub(crate) struct TreeFacts {
    /// Whether the tree exists.
    pub(crate) found: bool,
    /// Docker's `directory.Size` (moby pkg/directory): `st_size` of every entry that is not a
    /// directory, each inode counted once.
    pub(crate) size: u64,
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
        let mut fd =
            open_dir_at(self.root.as_fd(), ".").map_err(sys_error("opening", &self.root_path))?;
        for component in rel.split('/').filter(|c| !c.is_empty()) {
            fd = match open_dir_at(fd.as_fd(), component) {
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

    /// Walks `parent_rel/name` (which need not exist). A walk that enters mount points counts
    /// inodes by number alone, as Docker's `directory.Size` does for the totals `docker system
    /// df` prints; one that stops at them stays on one file system, and counts by `(dev, ino)`.
    pub(crate) fn measure(
        &self,
        parent_rel: &str,
        name: &str,
        crossing: Crossing,
    ) -> Result<TreeFacts> {
        let mut measure = Measure {
            crossing,
            size: match crossing {
                Crossing::Enter => DirectorySize::by_inode_number(),
                Crossing::Refuse => DirectorySize::new(),
            },
            mount: None,
        };
        let found = match self.dir(parent_rel)? {
            None => false,
            Some(parent) => {
                let parent_path = self.root_path.join(parent_rel);
                let parent_mount = stat_self(&parent, &parent_path)?.mount;
                let name = OsStr::new(name);
                let path = parent_path.join(name);
                traverse(parent.as_fd(), parent_mount, name, &path, &mut measure)?
            }
        };
        Ok(TreeFacts {
            found,
            size: measure.size.total(),
            mount: measure.mount,
        })
    }

    /// Fails with [`Error::Mounted`] when a file system is mounted at or inside `parent_rel/name`.
    pub(crate) fn refuse_mounts(&self, parent_rel: &str, name: &str) -> Result<()> {
        match self.measure(parent_rel, name, Crossing::Refuse)?.mount {
            Some(path) => Err(Error::Mounted { path }),
            None => Ok(()),
        }
    }

    /// Fails with [`Error::Mounted`] when one of `names` in `dir_rel` is a mount point (on another
    /// mount than `dir_rel` itself); a missing one is fine. Only those names are looked at, not
    /// the trees below them: the check a layer dir gets before anything of it is removed.
    pub(crate) fn refuse_mount_points(&self, dir_rel: &str, names: &[&str]) -> Result<()> {
        let Some(dir) = self.dir(dir_rel)? else {
            return Ok(());
        };
        let dir_path = self.root_path.join(dir_rel);
        let own_mount = stat_self(&dir, &dir_path)?.mount;
        for name in names {
            let path = dir_path.join(name);
            match stat_at(dir.as_fd(), OsStr::new(name)) {
                Ok(stat) if stat.mount != own_mount => return Err(Error::Mounted { path }),
                Ok(_) | Err(Errno::NOENT) => {}
                Err(errno) => return Err(sys_error("reading", &path)(errno)),
            }
        }
        Ok(())
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

/// What the one traversal of this module does at the entries it meets.
trait Visit {
    /// A non-directory `name` in `parent`.
    fn other(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        stat: &NodeStat,
        path: &Path,
    ) -> Result<()>;
    /// A directory on another mount than its parent; `Ok(true)` walks into it.
    fn mount_point(&mut self, path: &Path) -> Result<bool>;
    /// A directory `name` in `parent` after all its entries.
    fn after_dir(&mut self, parent: BorrowedFd<'_>, name: &OsStr, path: &Path) -> Result<()>;
}

/// Walks `name` in `parent` (at `path`, for messages), depth first: every directory is opened
/// from its parent's descriptor with `O_DIRECTORY | O_NOFOLLOW`, a symlink is never followed,
/// and an entry gone since it was listed is passed over, as Docker's walks pass it over. Returns
/// whether `name` existed.
fn traverse(
    parent: BorrowedFd<'_>,
    parent_mount: MountKey,
    name: &OsStr,
    path: &Path,
    visit: &mut impl Visit,
) -> Result<bool> {
    let stat = match stat_at(parent, name) {
        Ok(stat) => stat,
        Err(Errno::NOENT) => return Ok(false),
        Err(errno) => return Err(sys_error("reading", path)(errno)),
    };
    if stat.file_type != FileType::Directory {
        visit.other(parent, name, &stat, path)?;
        return Ok(true);
    }
    if stat.mount != parent_mount && !visit.mount_point(path)? {
        return Ok(true);
    }
    let dir = match open_dir_at(parent, name) {
        Ok(dir) => dir,
        Err(Errno::NOENT) => return Ok(true),
        Err(errno) => return Err(sys_error("opening", path)(errno)),
    };
    let entries = read_dir(dir.as_fd()).map_err(sys_error("listing", path))?;
    for (child, _) in entries {
        let child = OsStr::from_bytes(child.as_bytes());
        traverse(dir.as_fd(), stat.mount, child, &path.join(child), visit)?;
    }
    visit.after_dir(parent, name, path)?;
    Ok(true)
}

/// Sizes a tree by Docker's `directory.Size` rule.
struct Measure {
    crossing: Crossing,
    size: DirectorySize,
    /// The first mount point met, when the walk refuses to cross them.
    mount: Option<PathBuf>,
}

impl Visit for Measure {
    fn other(&mut self, _: BorrowedFd<'_>, _: &OsStr, stat: &NodeStat, _: &Path) -> Result<()> {
        self.size.add(stat.dev, stat.ino, stat.nlink, stat.size);
        Ok(())
    }

    fn mount_point(&mut self, path: &Path) -> Result<bool> {
        match self.crossing {
            Crossing::Enter => Ok(true),
            Crossing::Refuse => {
                self.mount.get_or_insert_with(|| path.to_path_buf());
                Ok(false)
            }
        }
    }

    fn after_dir(&mut self, _: BorrowedFd<'_>, _: &OsStr, _: &Path) -> Result<()> {
        Ok(())
    }
}

/// Removes a tree: unlinks every non-directory, removes every directory once it is empty, and
/// stops at a mount point.
struct Remove;

impl Visit for Remove {
    fn other(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        _: &NodeStat,
        path: &Path,
    ) -> Result<()> {
        match rustix::fs::unlinkat(parent, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(errno) => Err(sys_error("removing", path)(errno)),
        }
    }

    fn mount_point(&mut self, path: &Path) -> Result<bool> {
        Err(Error::Mounted {
            path: path.to_path_buf(),
        })
    }

    fn after_dir(&mut self, parent: BorrowedFd<'_>, name: &OsStr, path: &Path) -> Result<()> {
        match rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(errno) => Err(sys_error("removing", path)(errno)),
        }
    }
}

/// Removes `name` in `parent`: unlinks a non-directory, empties and removes a directory, never
/// across a mount point.
pub(crate) fn remove_at(
    parent: BorrowedFd<'_>,
    parent_mount: MountKey,
    name: &OsStr,
    path: &Path,
) -> Result<()> {
    traverse(parent, parent_mount, name, path, &mut Remove).map(drop)
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
