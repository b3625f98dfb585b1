//! The descriptor steps every tree walk of ovl is made of: a directory opened from its parent's
//! descriptor by one name without following a symlink, its listing from `getdents64`, and its
//! xattrs through the descriptor. Nothing here resolves a path below a tree's root: a walk that
//! holds a directory's descriptor keeps walking that directory whatever happens to its name.
//!
//! The walks themselves stay with what they decide at each entry: the store's `below` (sizes
//! and removals, with mount points), `diff`'s upper walk (an upper directory against its stack
//! of lower ones) and `layer-pack`'s export (each entry described through a [`crate::Node`]).

use std::collections::HashSet;
use std::ffi::CString;
use std::mem::MaybeUninit;
use std::path::Path;

use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::fs::{FileType, Mode, OFlags, RawDir, SeekFrom};
use rustix::io::Errno;
use rustix::path::Arg;

/// Flags for every directory opened below a tree's root: a symlink fails with `ELOOP` and a
/// non-directory with `ENOTDIR` instead of being followed or opened.
pub const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Opens the directory `path` as a path only (`O_PATH | O_DIRECTORY`), following symlinks as
/// usual: the root a walk or an in-root resolution starts from, which the caller names itself.
pub fn open_dir_path(path: &Path) -> Result<OwnedFd, Errno> {
    rustix::fs::open(
        path,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Bytes read per `getdents64` call; any single entry (a name is at most 255 bytes) fits.
const DIRENT_BUFFER_LEN: usize = 32 * 1024;

/// First guess for an xattr list or value; `security.capability` is 20 or 24 bytes.
const XATTR_BUFFER_LEN: usize = 256;

/// Opens the root of a tree given by the caller. Symlinks in that path are followed (it is what
/// the caller named, as `mount` would follow it); nothing below it is opened by path.
pub fn open_tree_root(path: &Path) -> Result<OwnedFd, Errno> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Opens the directory `name` inside `dir` ([`DIR_FLAGS`]): a symlink or anything but a
/// directory is refused.
pub fn open_dir_at<P: Arg>(dir: BorrowedFd<'_>, name: P) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty())
}

/// The names in `dir` (without `.` and `..`) with the type the listing gives (`Unknown` where
/// the file system has no `d_type`), in directory order. The listing starts from the beginning
/// whatever happened to the descriptor's offset before.
pub fn read_dir(dir: BorrowedFd<'_>) -> Result<Vec<(CString, FileType)>, Errno> {
    rustix::fs::seek(dir, SeekFrom::Start(0))?;
    let mut buffer = vec![MaybeUninit::<u8>::uninit(); DIRENT_BUFFER_LEN];
    let mut raw = RawDir::new(dir, &mut buffer);
    let mut entries = Vec::new();
    while let Some(entry) = raw.next() {
        let entry = entry?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        entries.push((name.to_owned(), entry.file_type()));
    }
    Ok(entries)
}

/// The NUL-separated names of the xattrs of `fd` (`flistxattr`); empty where the file system has
/// no xattrs.
pub fn list_xattrs(fd: BorrowedFd<'_>) -> Result<Vec<u8>, Errno> {
    let mut buffer = vec![0_u8; XATTR_BUFFER_LEN];
    loop {
        match rustix::fs::flistxattr(fd, &mut buffer[..]) {
            Ok(len) => {
                buffer.truncate(len);
                return Ok(buffer);
            }
            Err(Errno::RANGE) => {
                let needed = rustix::fs::flistxattr_query(fd)?;
                buffer.resize(needed.max(buffer.len() * 2), 0);
            }
            Err(Errno::NOTSUP) => return Ok(Vec::new()),
            Err(err) => return Err(err),
        }
    }
}

/// The value of the xattr `name` of `fd` (`fgetxattr`); `None` if it has none or the file
/// system has no xattrs.
pub fn get_xattr<P: Arg + Copy>(fd: BorrowedFd<'_>, name: P) -> Result<Option<Vec<u8>>, Errno> {
    let mut buffer = vec![0_u8; XATTR_BUFFER_LEN];
    loop {
        match rustix::fs::fgetxattr(fd, name, &mut buffer[..]) {
            Ok(len) => {
                buffer.truncate(len);
                return Ok(Some(buffer));
            }
            Err(Errno::RANGE) => {
                let needed = rustix::fs::fgetxattr_query(fd, name)?;
                buffer.resize(needed.max(buffer.len() * 2), 0);
            }
            Err(Errno::NODATA | Errno::NOTSUP) => return Ok(None),
            Err(err) => return Err(err),
        }
    }
}

/// Docker's `directory.Size` (moby pkg/directory, format.md §3.2): the sum of `st_size` over every
/// non-directory of a tree with a size above zero, each inode counted once. The one place that
/// decides when two entries are the same inode; a walk calls [`DirectorySize::add`] for each
/// non-directory it meets.
#[derive(Debug, Default)]
pub struct DirectorySize {
    total: u64,
    /// Inodes met so far, as `(dev, ino)`; `dev` is 0 when identity is the inode number alone.
    seen: HashSet<(u64, u64)>,
    by_inode_number: bool,
}

impl DirectorySize {
    /// Identity is `(dev, ino)`: an inode is the same only on the same file system. Only inodes
    /// with more than one link can be met again, so only those are remembered.
    pub fn new() -> DirectorySize {
        DirectorySize::default()
    }

    /// Identity is the inode number alone, as moby's `directory.Size` keys its map
    /// (`Stat_t.Ino`): for a walk that enters mount points and whose total `docker system df`
    /// prints, where a file on another file system with an inode number already met is not
    /// counted by Docker either. Every inode is remembered, whatever its link count.
    pub fn by_inode_number() -> DirectorySize {
        DirectorySize {
            by_inode_number: true,
            ..DirectorySize::default()
        }
    }

    /// Counts a non-directory with its device, inode number, link count and size.
    pub fn add(&mut self, dev: u64, ino: u64, nlink: u64, size: u64) {
        if size == 0 {
            return;
        }
        let new = if self.by_inode_number {
            self.seen.insert((0, ino))
        } else {
            nlink < 2 || self.seen.insert((dev, ino))
        };
        if new {
            self.total = self.total.saturating_add(size);
        }
    }

    /// The bytes counted so far.
    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_listing_restarts_and_a_symlink_is_never_opened_as_a_directory() {
        let tmp = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(tmp.path().join("d")).expect("mkdir");
        std::fs::write(tmp.path().join("f"), b"x").expect("write");
        std::os::unix::fs::symlink("d", tmp.path().join("link")).expect("symlink");
        let root = open_tree_root(tmp.path()).expect("open");
        let names = |fd: BorrowedFd<'_>| {
            let mut names: Vec<CString> = read_dir(fd)
                .expect("list")
                .into_iter()
                .map(|(name, _)| name)
                .collect();
            names.sort();
            names
        };
        let first = names(root.as_fd());
        assert_eq!(first, [c"d", c"f", c"link"].map(CString::from));
        assert_eq!(names(root.as_fd()), first);
        assert!(open_dir_at(root.as_fd(), c"d").is_ok());
        // `O_DIRECTORY | O_NOFOLLOW` on a symlink fails with `ENOTDIR` (or `ELOOP`).
        assert!(matches!(
            open_dir_at(root.as_fd(), c"link"),
            Err(Errno::LOOP | Errno::NOTDIR)
        ));
        assert_eq!(open_dir_at(root.as_fd(), c"f").err(), Some(Errno::NOTDIR));
    }

    #[test]
    fn an_inode_counts_once_and_identity_is_the_device_and_inode() {
        let mut size = DirectorySize::new();
        size.add(1, 10, 2, 5);
        size.add(1, 10, 2, 5);
        size.add(2, 10, 2, 7);
        size.add(1, 11, 1, 3);
        size.add(1, 12, 1, 0);
        assert_eq!(size.total(), 15);
        let mut docker = DirectorySize::by_inode_number();
        docker.add(1, 10, 2, 5);
        docker.add(2, 10, 1, 7);
        docker.add(1, 11, 1, 3);
        assert_eq!(docker.total(), 8);
    }
}
