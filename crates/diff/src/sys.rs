//! The system calls of this crate, all through rustix and, below a tree's root, all relative to a
//! directory descriptor and a single name: nothing here follows a symlink or resolves a path.

use std::ffi::{CStr, CString};
use std::mem::MaybeUninit;
use std::path::Path;

use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RawDir, SeekFrom, Stat};
use rustix::io::Errno;

/// Bytes read per `getdents64` call; any single entry (a name is at most 255 bytes) fits.
const DIRENT_BUFFER_LEN: usize = 32 * 1024;

/// First guess for an xattr list or value; `security.capability` is 20 or 24 bytes.
const XATTR_BUFFER_LEN: usize = 256;

/// Opens the root of a tree given by the caller. Symlinks in that path are followed, as `mount`
/// would follow them; nothing below it is opened by path.
pub(crate) fn open_root(path: &Path) -> Result<OwnedFd, Errno> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Opens the directory `name` inside `dir`, refusing a symlink.
pub(crate) fn open_dir_at(dir: BorrowedFd<'_>, name: &CStr) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`; `None` if the name does not exist.
pub(crate) fn stat_at(dir: BorrowedFd<'_>, name: &CStr) -> Result<Option<Stat>, Errno> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(stat)),
        Err(Errno::NOENT) => Ok(None),
        Err(err) => Err(err),
    }
}

/// The names in `dir` (without `.` and `..`) with their `d_type`, in directory order.
pub(crate) fn read_dir(dir: BorrowedFd<'_>) -> Result<Vec<(CString, FileType)>, Errno> {
    // The listing reads from the descriptor's own offset; start from the beginning whatever
    // happened to it before.
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
pub(crate) fn list_xattrs(fd: BorrowedFd<'_>) -> Result<Vec<u8>, Errno> {
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

/// The value of the xattr `name` of `fd` (`fgetxattr`); `None` if it has none.
pub(crate) fn get_xattr(fd: BorrowedFd<'_>, name: &CStr) -> Result<Option<Vec<u8>>, Errno> {
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
