//! Docker's size of a layer directory (format.md §3.2): the sum of `st_size` over every
//! non-directory below it with a size above zero, each inode counted once, walked through
//! descriptors without following symlinks.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType};
use rustix::io::Errno;
use syscompat::dir::{open_dir_at, open_tree_root, read_dir, DirectorySize};

type SizeError = (&'static str, io::Error);

pub(crate) fn dir_size(root: &Path) -> Result<i64, SizeError> {
    let root = open_tree_root(root).map_err(|errno| ("open directory", errno.into()))?;
    let mut size = DirectorySize::new();
    walk(root.as_fd(), &mut size)?;
    Ok(i64::try_from(size.total()).unwrap_or(i64::MAX))
}

fn walk(dir: BorrowedFd<'_>, size: &mut DirectorySize) -> Result<(), SizeError> {
    let entries = read_dir(dir).map_err(|errno| ("read directory", errno.into()))?;
    for (name, _) in entries {
        let stat = match rustix::fs::statat(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            // Like Docker, entries that vanish during the walk are ignored.
            Err(Errno::NOENT) => continue,
            Err(errno) => return Err(("stat entry", errno.into())),
        };
        if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
            let child = match open_dir_at(dir, name.as_c_str()) {
                Ok(child) => child,
                Err(Errno::NOENT) => continue,
                Err(errno) => return Err(("open directory", errno.into())),
            };
            walk(child.as_fd(), size)?;
        } else {
            size.add(
                stat.st_dev,
                stat.st_ino,
                stat.st_nlink,
                u64::try_from(stat.st_size).unwrap_or(0),
            );
        }
    }
    Ok(())
}
