//! The only `unsafe` of this crate: `name_to_handle_at`, `sync_file_range` and
//! `sched_setscheduler`, which rustix does not wrap, and the `pre_exec` hook of
//! [`with_original_descriptor_limit`].
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::io::Errno;

/// The id of the mount `name` in `dir` lives on (the one `/proc/self/mountinfo` lists first), from
/// `name_to_handle_at` (Linux 2.6.39), without following a final symlink. An empty `name` is
/// `dir` itself.
///
/// The handle is asked for with room for no bytes: the kernel then fails with `EOVERFLOW` but has
/// written the mount id already (fs/fhandle.c copies it after encoding the handle). A file system
/// that cannot make handles at all answers `EOPNOTSUPP` and gives no id.
pub(crate) fn mount_id(dir: BorrowedFd<'_>, name: &CStr) -> Result<u64, Errno> {
    let mut handle = libc::file_handle {
        handle_bytes: 0,
        handle_type: 0,
        f_handle: [],
    };
    let mut mount_id: libc::c_int = -1;
    let flags = if name.is_empty() {
        libc::AT_EMPTY_PATH
    } else {
        0
    };
    // SAFETY: `handle` has room for its header and, as `handle_bytes` says, no handle bytes;
    // `name` is NUL-terminated and outlives the call; `mount_id` is a valid `int` to write to.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            dir.as_raw_fd() as libc::c_long,
            name.as_ptr(),
            &mut handle as *mut libc::file_handle,
            &mut mount_id as *mut libc::c_int,
            flags as libc::c_long,
        )
    };
    let errno = if ret == 0 {
        None
    } else {
        Some(Errno::from_raw_os_error(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ))
    };
    match errno {
        None | Some(Errno::OVERFLOW) if mount_id >= 0 => Ok(mount_id as u64),
        None | Some(Errno::OVERFLOW) => Err(Errno::OPNOTSUPP),
        Some(errno) => Err(errno),
    }
}

/// Starts the writeback of every dirty page of `file` without waiting for it
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, Linux 2.6.17). Only a head start for an fsync that
/// follows: a filesystem that cannot (or a kernel that refuses) leaves all of it to that fsync.
pub(crate) fn start_writeback(file: BorrowedFd<'_>) {
    // SAFETY: a plain system call on a valid descriptor; it reads and writes no memory of ours.
    let _ = unsafe { libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
}

/// Makes the calling thread `SCHED_BATCH` (Linux 2.6.16) at its current nice value: a thread
/// that does throughput work for another one then no longer preempts it when it wakes up. Only
/// a hint: a kernel or filter that refuses it leaves the thread as it was.
pub fn helper_thread() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid `sched_param` for the call's duration; pid 0 is this thread.
    let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
}

/// Gives a child process the soft `RLIMIT_NOFILE` this process started with, when
/// `raise_descriptor_limit` raised its own (as Go's `os/exec` does): a program written for the
/// usual 1,024 (`select`, or closing every descriptor up to the limit) is not handed a million.
pub fn with_original_descriptor_limit(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let Some(soft) = crate::fdtable::original_soft_limit() else {
        return;
    };
    let hard = rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum;
    let limit = rustix::process::Rlimit {
        current: Some(soft),
        maximum: hard,
    };
    // SAFETY: the hook runs in the child between fork and exec, where only async-signal-safe
    // calls are allowed: `setrlimit` is one system call on a value copied in beforehand, and it
    // allocates nothing. A failure leaves the child the raised limit, as without the hook.
    unsafe {
        command.pre_exec(move || {
            let _ = rustix::process::setrlimit(rustix::process::Resource::Nofile, limit);
            Ok(())
        });
    }
}
