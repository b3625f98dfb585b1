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

/// `struct xfs_fsop_geom_v1` (include/uapi/linux/xfs_fs.h in xfsprogs): 112 bytes, the `flags`
/// word at byte 92. Its `XFS_IOC_FSGEOMETRY_V1` ioctl has existed since Linux 2.6.
const XFS_GEOM_V1_LEN: usize = 112;
const XFS_GEOM_V1_FLAGS_OFFSET: usize = 92;

/// The geometry flags of the XFS filesystem `fd` is on (`XFS_IOC_FSGEOMETRY_V1`).
pub(crate) fn xfs_geometry_flags(fd: std::os::fd::BorrowedFd<'_>) -> Result<u32, Errno> {
    const OPCODE: rustix::ioctl::Opcode =
        rustix::ioctl::opcode::read::<[u8; XFS_GEOM_V1_LEN]>(b'X', 100);
    // SAFETY: the opcode encodes the size of the output buffer, [u8; 112], which is exactly
    // `struct xfs_fsop_geom_v1`; the kernel writes no more than that, and any bytes are valid.
    let geometry = unsafe {
        rustix::ioctl::ioctl(
            fd,
            rustix::ioctl::Getter::<OPCODE, [u8; XFS_GEOM_V1_LEN]>::new(),
        )?
    };
    let mut flags = [0u8; 4];
    flags.copy_from_slice(&geometry[XFS_GEOM_V1_FLAGS_OFFSET..XFS_GEOM_V1_FLAGS_OFFSET + 4]);
    Ok(u32::from_ne_bytes(flags))
}
