//! Docker's init layer content (format.md §4.5), written into a merged (read-write overlay) root.
//!
//! The image below is hostile: its `/etc` may be a symlink to `/` or to any host path. Every path
//! is therefore resolved from a directory fd of the merged root with a `syscompat::Resolver`
//! (`openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, or its userspace walk), which treats
//! absolute symlinks and `..` as relative to that root, and entries are created with `*at` calls
//! on the resolved parent.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Gid, Mode, OFlags, Uid, CWD};
use rustix::io::Errno;
use syscompat::Resolver;

use crate::{Error, Result};

/// What one init entry is.
#[derive(Debug, Clone, Copy)]
enum InitEntry {
    Dir,
    File,
    Symlink(&'static str),
}

/// The entries of daemon/initlayer in moby 20.10, paths relative to the merged root.
const INIT_ENTRIES: [(&str, InitEntry); 10] = [
    ("dev/pts", InitEntry::Dir),
    ("dev/shm", InitEntry::Dir),
    ("proc", InitEntry::Dir),
    ("sys", InitEntry::Dir),
    (".dockerenv", InitEntry::File),
    ("etc/resolv.conf", InitEntry::File),
    ("etc/hosts", InitEntry::File),
    ("etc/hostname", InitEntry::File),
    ("dev/console", InitEntry::File),
    ("etc/mtab", InitEntry::Symlink("/proc/mounts")),
];

/// Mode of every created directory and empty file (Docker creates the files with 0755 too).
const ENTRY_MODE: u32 = 0o755;

/// Populates a merged (RW overlay) root with Docker's init entries (format.md §4.5).
///
/// For each entry, every path component that is not a directory is unlinked first (through the
/// overlay this leaves a whiteout over the image's file or symlink); then, only if the path does
/// not exist, missing parents are created 0755 and the entry itself. Existing directories keep
/// their mode and owner. Everything created is owned by root:root with its mode set explicitly,
/// whatever the umask.
pub fn populate_init_layer(merged_root: &Path, resolver: Resolver) -> Result<()> {
    let root = rustix::fs::openat(
        CWD,
        merged_root,
        // The caller names a checked directory; a symlink in its place is still not followed.
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|source| Error::InitLayer {
        root: merged_root.to_path_buf(),
        path: String::new(),
        operation: "open",
        source,
    })?;
    let populator = Populator {
        root,
        resolver,
        root_path: merged_root,
    };
    for (path, entry) in INIT_ENTRIES {
        populator.populate(path, entry)?;
    }
    Ok(())
}

struct Populator<'a> {
    root: OwnedFd,
    resolver: Resolver,
    root_path: &'a Path,
}

impl Populator<'_> {
    fn error(&self, path: &str, operation: &'static str) -> impl FnOnce(Errno) -> Error + '_ {
        let path = path.to_owned();
        move |source| Error::InitLayer {
            root: self.root_path.to_path_buf(),
            path,
            operation,
            source,
        }
    }

    /// Resolves `path` (relative, `""` is the root itself) inside the merged root.
    fn resolve(&self, path: &str, flags: OFlags) -> rustix::io::Result<OwnedFd> {
        let path = if path.is_empty() { "." } else { path };
        self.resolver
            .open(self.root.as_fd(), path.as_bytes(), flags)
    }

    fn resolve_dir(&self, path: &str) -> rustix::io::Result<OwnedFd> {
        self.resolve(path, OFlags::PATH | OFlags::DIRECTORY)
    }

    fn populate(&self, path: &str, entry: InitEntry) -> Result<()> {
        let components: Vec<&str> = path.split('/').collect();
        self.unlink_non_directories(&components)?;

        match self.resolve(path, OFlags::PATH) {
            Ok(_) => {
                tracing::debug!(path, "init entry exists already");
                return Ok(());
            }
            Err(Errno::NOENT) => {}
            Err(source) => return Err(self.error(path, "look up")(source)),
        }

        let (dir_components, name) = match entry {
            InitEntry::Dir => (&components[..], None),
            InitEntry::File | InitEntry::Symlink(_) => match components.split_last() {
                Some((name, parents)) => (parents, Some(*name)),
                None => return Ok(()),
            },
        };
        let parent = self.make_dirs(dir_components)?;
        let Some(name) = name else {
            return Ok(());
        };
        match entry {
            InitEntry::Dir => Ok(()),
            InitEntry::File => {
                let file = rustix::fs::openat(
                    &parent,
                    name,
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW,
                    Mode::from_raw_mode(ENTRY_MODE),
                )
                .map_err(self.error(path, "create file"))?;
                self.make_root_owned(&file, path)?;
                tracing::debug!(path, "created init file");
                Ok(())
            }
            InitEntry::Symlink(target) => {
                rustix::fs::symlinkat(target, &parent, name)
                    .map_err(self.error(path, "create symlink"))?;
                rustix::fs::chownat(
                    &parent,
                    name,
                    Some(Uid::ROOT),
                    Some(Gid::ROOT),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(self.error(path, "chown symlink"))?;
                tracing::debug!(path, target, "created init symlink");
                Ok(())
            }
        }
    }

    /// Unlinks every component of the path that is not a directory, top down, so that a symlinked
    /// `/etc` is replaced before anything below it is looked at. unlink(2) refuses directories
    /// with EISDIR, which is how directories survive.
    fn unlink_non_directories(&self, components: &[&str]) -> Result<()> {
        for depth in 1..=components.len() {
            let parent_path = components[..depth - 1].join("/");
            let prefix = components[..depth].join("/");
            let name = components[depth - 1];
            let parent = match self.resolve_dir(&parent_path) {
                Ok(parent) => parent,
                Err(Errno::NOENT) => return Ok(()),
                Err(source) => return Err(self.error(&parent_path, "look up")(source)),
            };
            match rustix::fs::unlinkat(&parent, name, AtFlags::empty()) {
                Ok(()) => tracing::debug!(path = prefix, "removed non-directory from the image"),
                Err(Errno::ISDIR | Errno::NOENT) => {}
                Err(source) => return Err(self.error(&prefix, "unlink")(source)),
            }
        }
        Ok(())
    }

    /// Opens the directory `components` below the root, creating missing ones 0755 root:root.
    fn make_dirs(&self, components: &[&str]) -> Result<OwnedFd> {
        let mut dir = self
            .resolve_dir("")
            .map_err(self.error("", "open the merged root"))?;
        for depth in 1..=components.len() {
            let prefix = components[..depth].join("/");
            let name = components[depth - 1];
            dir = match self.resolve_dir(&prefix) {
                Ok(existing) => existing,
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(&dir, name, Mode::from_raw_mode(ENTRY_MODE)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(source) => return Err(self.error(&prefix, "create directory")(source)),
                    }
                    let created = rustix::fs::openat(
                        &dir,
                        name,
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(self.error(&prefix, "open created directory"))?;
                    self.make_root_owned(&created, &prefix)?;
                    tracing::debug!(path = prefix, "created init directory");
                    created
                }
                Err(source) => return Err(self.error(&prefix, "look up")(source)),
            };
        }
        Ok(dir)
    }

    fn make_root_owned(&self, fd: impl AsFd, path: &str) -> Result<()> {
        rustix::fs::fchown(&fd, Some(Uid::ROOT), Some(Gid::ROOT))
            .map_err(self.error(path, "chown"))?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(ENTRY_MODE)).map_err(self.error(path, "chmod"))
    }
}
