//! The only place in this crate that needs `unsafe`: the raw syscalls whose safe wrappers are
//! deprecated or missing in rustix.
#![allow(unsafe_code)]

use rustix::io::Errno;
use rustix::thread::UnshareFlags;

/// Gives the calling thread its own copy of the filesystem attributes (cwd, root, umask) with
/// `unshare(CLONE_FS)`, so that a later `chdir` in this thread leaves the rest of the process
/// where it was.
pub(crate) fn unshare_fs_attributes() -> Result<(), Errno> {
    // SAFETY: `unshare_unsafe` is unsafe only because `CLONE_FILES` would split the file
    // descriptor table between threads; `CLONE_FS` touches just the cwd, root and umask of the
    // calling thread, so no thread can observe a descriptor from another table.
    unsafe { rustix::thread::unshare_unsafe(UnshareFlags::FS) }
}
