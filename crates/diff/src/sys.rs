//! The system calls of this crate, all through rustix and, below a tree's root, all relative to a
//! directory descriptor and a single name: nothing here follows a symlink or resolves a path.

use std::ffi::CStr;

use rustix::fd::BorrowedFd;
use rustix::fs::{AtFlags, Stat};
use rustix::io::Errno;

// Directories are opened, listed and their xattrs read by the steps every tree walk shares.
pub(crate) use syscompat::dir::{
    get_xattr, list_xattrs, open_dir_at, open_tree_root as open_root, read_dir,
};

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`; `None` if the name does not exist.
pub(crate) fn stat_at(dir: BorrowedFd<'_>, name: &CStr) -> Result<Option<Stat>, Errno> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(stat)),
        Err(Errno::NOENT) => Ok(None),
        Err(err) => Err(err),
    }
}
