//! The system calls std does not offer: xattr listing and reading, wait4 with rusage.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

/// Every xattr of `path` (not following a symlink), sorted by name.
pub fn list_xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let c_path = c_path(path)?;
    let mut names = vec![0u8; 64 * 1024];
    // SAFETY: `llistxattr` writes at most `names.len()` bytes into `names`, which lives for
    // the call; `c_path` is NUL-terminated.
    let len = unsafe { libc::llistxattr(c_path.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if len < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut xattrs = Vec::new();
    for name in names[..len as usize].split(|&byte| byte == 0) {
        if name.is_empty() {
            continue;
        }
        let c_name = CString::new(name).map_err(|_| io::ErrorKind::InvalidData)?;
        let value = get(&c_path, &c_name)?.unwrap_or_default();
        xattrs.push((name.to_vec(), value));
    }
    xattrs.sort();
    Ok(xattrs)
}

/// The xattr `name` of `path` (not following a symlink), `None` when it has none.
pub fn get_xattr(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let c_name = CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
    get(&c_path(path)?, &c_name)
}

fn get(c_path: &CString, c_name: &CString) -> io::Result<Option<Vec<u8>>> {
    let mut value = vec![0u8; 256 * 1024];
    // SAFETY: `lgetxattr` writes at most `value.len()` bytes into `value`; both strings are
    // NUL-terminated and outlive the call.
    let len = unsafe {
        libc::lgetxattr(
            c_path.as_ptr(),
            c_name.as_ptr(),
            value.as_mut_ptr().cast(),
            value.len(),
        )
    };
    if len < 0 {
        let error = io::Error::last_os_error();
        return match error.raw_os_error() {
            Some(libc::ENODATA) => Ok(None),
            _ => Err(error),
        };
    }
    value.truncate(len as usize);
    Ok(Some(value))
}

/// Reaps the child `pid`: its wait status, or `None` when `no_hang` and it still runs.
pub fn wait4(pid: i32, no_hang: bool) -> io::Result<Option<i32>> {
    let mut status: libc::c_int = 0;
    let flags = if no_hang { libc::WNOHANG } else { 0 };
    loop {
        // SAFETY: `status` is valid for writes for the duration of the call; a null `rusage`
        // pointer asks for no resource usage.
        let ret = unsafe { libc::wait4(pid, &mut status, flags, std::ptr::null_mut()) };
        if ret == -1 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(error);
        }
        return Ok((ret != 0).then_some(status));
    }
}
