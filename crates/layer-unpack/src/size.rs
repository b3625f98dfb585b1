//! Docker's size of a layer directory (spec §1.2): the sum of `st_size` over every
//! non-directory below it with a size above zero, each inode counted once, walked through
//! descriptors without following symlinks.

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, CWD};
use rustix::io::Errno;

use crate::apply::read_dir_names;

type SizeError = (&'static str, io::Error);

pub(crate) fn dir_size(root: &Path) -> Result<i64, SizeError> {
    let root = rustix::fs::openat(
        CWD,
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| ("open directory", errno.into()))?;
    let mut seen = HashSet::new();
    let mut total: i64 = 0;
    walk(root.as_fd(), &mut seen, &mut total)?;
    Ok(total)
}

fn walk(
    dir: BorrowedFd<'_>,
    seen: &mut HashSet<(u64, u64)>,
    total: &mut i64,
) -> Result<(), SizeError> {
    let names = read_dir_names(dir).map_err(|errno| ("read directory", errno.into()))?;
    for name in names {
        let stat = match rustix::fs::statat(dir, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            // Like Docker, entries that vanish during the walk are ignored.
            Err(Errno::NOENT) => continue,
            Err(errno) => return Err(("stat entry", errno.into())),
        };
        if FileType::from_raw_mode(stat.st_mode) == FileType::Directory {
            let child = match rustix::fs::openat(
                dir,
                name.as_slice(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(child) => child,
                Err(Errno::NOENT) => continue,
                Err(errno) => return Err(("open directory", errno.into())),
            };
            walk(child.as_fd(), seen, total)?;
        } else if stat.st_size > 0 && (stat.st_nlink < 2 || seen.insert((stat.st_dev, stat.st_ino)))
        {
            // Only an inode with several links can be met again: only those are remembered.
            *total += stat.st_size;
        }
    }
    Ok(())
}
