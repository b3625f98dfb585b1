//! What a tree walk that must not cross mount points needs to know of a node: `statx` with
//! `STATX_MNT_ID` (Linux 5.8; `statx` itself 4.11), else `fstatat` and the mount id of
//! `name_to_handle_at` (Linux 2.6.39).

use std::ffi::{CString, OsStr};
use std::os::fd::BorrowedFd;
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, StatxFlags};
use rustix::io::Errno;

use crate::sys;

/// A node's type, size, inode, link count and mount, never following a final symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeStat {
    pub file_type: FileType,
    pub size: u64,
    /// The device of the file system the inode lives on (`st_dev`).
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    /// The mount the node lives on.
    pub mount: MountKey,
}

/// Which mount a node lives on: the kernel's mount id where it can tell (every kernel, but for
/// file systems that cannot make file handles on kernels before 5.8), else the device, which
/// misses bind mounts of the same file system. Keys of different kinds never compare equal, so a
/// walk that stops at a change of key stops there too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MountKey {
    Id(u64),
    Device(u64),
}

/// Stats `name` in `dir` (an empty `name` is `dir` itself) without following it.
pub fn stat_node(dir: BorrowedFd<'_>, name: &OsStr) -> Result<NodeStat, Errno> {
    let at_flags = if name.is_empty() {
        AtFlags::EMPTY_PATH
    } else {
        AtFlags::SYMLINK_NOFOLLOW
    };
    let mask = StatxFlags::TYPE
        | StatxFlags::SIZE
        | StatxFlags::INO
        | StatxFlags::NLINK
        | StatxFlags::MNT_ID;
    match rustix::fs::statx(dir, name, at_flags, mask) {
        Ok(stat) => {
            let device = rustix::fs::makedev(stat.stx_dev_major, stat.stx_dev_minor);
            let mount = if stat.stx_mask & StatxFlags::MNT_ID.bits() != 0 {
                MountKey::Id(stat.stx_mnt_id)
            } else {
                mount_key_of(dir, name, device)
            };
            Ok(NodeStat {
                file_type: FileType::from_raw_mode(u32::from(stat.stx_mode)),
                size: stat.stx_size,
                dev: device,
                ino: stat.stx_ino,
                nlink: u64::from(stat.stx_nlink),
                mount,
            })
        }
        Err(errno) if crate::is_unavailable(errno) => {
            let stat = rustix::fs::statat(dir, name, at_flags)?;
            Ok(NodeStat {
                file_type: FileType::from_raw_mode(stat.st_mode),
                size: stat.st_size as u64,
                dev: stat.st_dev,
                ino: stat.st_ino,
                #[allow(clippy::useless_conversion)]
                nlink: u64::from(stat.st_nlink),
                mount: mount_key_of(dir, name, stat.st_dev),
            })
        }
        Err(errno) => Err(errno),
    }
}

/// The mount id where `name_to_handle_at` gives one (the name is copied into a C string only
/// here, on kernels whose `statx` does not report the mount id).
fn mount_key_of(dir: BorrowedFd<'_>, name: &OsStr, device: u64) -> MountKey {
    let Ok(name) = CString::new(name.as_bytes()) else {
        return MountKey::Device(device);
    };
    match sys::mount_id(dir, &name) {
        Ok(id) => MountKey::Id(id),
        Err(_) => MountKey::Device(device),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// The fallback's mount id is the one statx reports.
    #[test]
    fn handle_mount_id_matches_statx() {
        let dir = rustix::fs::open("/", rustix::fs::OFlags::PATH, rustix::fs::Mode::empty())
            .expect("open /");
        let stat = stat_node(dir.as_fd(), OsStr::new("")).expect("stat /");
        let from_handle = sys::mount_id(dir.as_fd(), c"").expect("name_to_handle_at");
        if let MountKey::Id(id) = stat.mount {
            assert_eq!(id, from_handle);
        }
        assert_eq!(stat.file_type, FileType::Directory);
        let proc_stat = stat_node(dir.as_fd(), OsStr::new("proc")).expect("stat /proc");
        assert_ne!(proc_stat.mount, stat.mount, "/proc is a mount of its own");
    }
}
