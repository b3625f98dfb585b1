//! The only place in this crate that needs `unsafe`: two `*at` syscalls that act on a name in a
//! directory without following it and that rustix does not wrap, `fchmodat2` (Linux 6.6) and
//! `setxattrat` (Linux 6.13).
//!
//! They let the executor change device nodes, FIFOs and hardlinks through their parent
//! directory's descriptor, without opening them (opening a device can have side effects) and
//! without going through `/proc/self/fd`. On older kernels (`ENOSYS`, or `EPERM` from a filter that refuses them) each has a fallback that
//! still does not follow the final component; see the functions.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::fs::{AtFlags, FileType, Mode, XattrFlags};
use rustix::io::Errno;

/// The numbers of `fchmodat2` and `setxattrat`. Syscalls added since Linux 5.1 (number 424 on)
/// have one number on all architectures but Alpha and MIPS, which add a base (x86_64, aarch64,
/// riscv64 and the others are fine); `libc` defines `fchmodat2` only for a few targets and
/// `setxattrat` for almost none yet.
const SYS_FCHMODAT2: libc::c_long = 452;
const SYS_SETXATTRAT: libc::c_long = 463;

/// `struct xattr_args` of `setxattrat` (include/uapi/linux/xattr.h): the value's address and
/// length and the `XATTR_CREATE`/`XATTR_REPLACE` flags.
#[repr(C)]
struct XattrArgs {
    value: u64,
    size: u32,
    flags: u32,
}

/// Sets the permission bits (setuid, setgid and sticky included) of `name` in `dir` without
/// following it when it is a symlink.
///
/// Without `fchmodat2` the node is checked not to be a symlink and then changed with
/// `fchmodat`; only this process writes into the layer directory while a layer is unpacked, so
/// nothing can swap the checked node in between.
pub(crate) fn chmod_nofollow(dir: BorrowedFd<'_>, name: &[u8], mode: u32) -> Result<(), Errno> {
    let c_name = c_string(name)?;
    // SAFETY: `fchmodat2(int dirfd, const char *path, mode_t mode, unsigned int flags)` reads
    // only the NUL-terminated `c_name`, which outlives the call; the descriptor is borrowed and
    // open. The variadic arguments are passed as the C integer types the kernel expects.
    let ret = unsafe {
        libc::syscall(
            SYS_FCHMODAT2,
            dir.as_raw_fd() as libc::c_long,
            c_name.as_ptr(),
            mode as libc::c_long,
            libc::AT_SYMLINK_NOFOLLOW as libc::c_long,
        )
    };
    match check(ret) {
        Err(errno) if syscompat::is_unavailable(errno) => {
            let stat = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
            if FileType::from_raw_mode(stat.st_mode) == FileType::Symlink {
                return Err(Errno::OPNOTSUPP);
            }
            rustix::fs::chmodat(dir, name, Mode::from_raw_mode(mode), AtFlags::empty())
        }
        result => result,
    }
}

/// Sets the extended attribute `key` of `name` in `dir` without following it.
///
/// Without `setxattrat` the attribute is set with `lsetxattr` on `/proc/self/fd/<dir>/<name>`:
/// the magic link leads to exactly the directory `dir` holds, and the final component is not
/// followed.
pub(crate) fn setxattr_nofollow(
    dir: BorrowedFd<'_>,
    name: &[u8],
    key: &[u8],
    value: &[u8],
) -> Result<(), Errno> {
    let c_name = c_string(name)?;
    let c_key = c_string(key)?;
    let args = XattrArgs {
        value: value.as_ptr() as u64,
        size: u32::try_from(value.len()).map_err(|_| Errno::TOOBIG)?,
        flags: 0,
    };
    // SAFETY: `setxattrat(int dfd, const char *path, unsigned int at_flags, const char *name,
    // const struct xattr_args *args, size_t size)` reads the NUL-terminated `c_name` and
    // `c_key`, `size_of::<XattrArgs>()` bytes of `args`, and `args.size` bytes at `args.value`,
    // which point into `value`; all of them outlive the call, and the descriptor is open.
    let ret = unsafe {
        libc::syscall(
            SYS_SETXATTRAT,
            dir.as_raw_fd() as libc::c_long,
            c_name.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW as libc::c_long,
            c_key.as_ptr(),
            std::ptr::from_ref(&args),
            std::mem::size_of::<XattrArgs>(),
        )
    };
    match check(ret) {
        Err(errno) if syscompat::is_unavailable(errno) => {
            let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
            path.extend_from_slice(name);
            rustix::fs::lsetxattr(path.as_slice(), key, value, XattrFlags::empty())
        }
        result => result,
    }
}

fn c_string(bytes: &[u8]) -> Result<CString, Errno> {
    CString::new(bytes).map_err(|_| Errno::INVAL)
}

fn check(ret: libc::c_long) -> Result<(), Errno> {
    if ret == -1 {
        Err(Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A temp dir holding a file `f` and a symlink `s` to it, and the dir opened.
    fn file_and_symlink_to_it() -> (tempfile::TempDir, std::fs::File) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("f"), b"f").expect("write");
        std::os::unix::fs::symlink("f", dir.path().join("s")).expect("symlink");
        let dir_fd = std::fs::File::open(dir.path()).expect("open");
        (dir, dir_fd)
    }

    #[test]
    fn chmod_reaches_the_node_and_never_a_symlink_target() {
        let (dir, dir_fd) = file_and_symlink_to_it();
        chmod_nofollow(dir_fd.as_fd(), b"f", 0o1640).expect("chmod");
        let mode = std::fs::metadata(dir.path().join("f"))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o1640);
        assert!(chmod_nofollow(dir_fd.as_fd(), b"s", 0o600).is_err());
        let mode = std::fs::metadata(dir.path().join("f"))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o1640);
    }

    #[test]
    fn xattrs_reach_the_node_and_never_a_symlink_target() {
        let (dir, dir_fd) = file_and_symlink_to_it();
        setxattr_nofollow(dir_fd.as_fd(), b"f", b"user.k", b"v\0w").expect("setxattr");
        let mut buf = [0u8; 16];
        let len = rustix::fs::getxattr(dir.path().join("f").as_path(), "user.k", &mut buf)
            .expect("getxattr");
        assert_eq!(&buf[..len], b"v\0w");
        // user.* attributes are not allowed on symlinks; following would have set it on `f`.
        assert_eq!(
            setxattr_nofollow(dir_fd.as_fd(), b"s", b"user.j", b"x"),
            Err(Errno::PERM)
        );
        assert!(rustix::fs::getxattr(dir.path().join("f").as_path(), "user.j", &mut buf).is_err());
    }
}
