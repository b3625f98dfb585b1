//! The system calls of a lane: installing its seccomp filter.
#![allow(unsafe_code)]

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use crate::SECCOMP_MODE_FILTER;

/// Installs `program` in `command`'s child just before it executes the program.
pub(crate) fn install_filter_before_exec(command: &mut Command, program: [libc::sock_filter; 6]) {
    // SAFETY: between fork and exec the closure only calls `prctl`, which is async-signal-safe,
    // on a program built before the fork; it allocates nothing.
    unsafe {
        command.pre_exec(move || install_filter(&program));
    }
}

/// Installs `program` as the calling thread's seccomp filter, after `PR_SET_NO_NEW_PRIVS`.
pub(crate) fn install_filter(program: &[libc::sock_filter]) -> io::Result<()> {
    if !cfg!(target_arch = "x86_64") {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "ABI lanes are written for x86_64 system call numbers",
        ));
    }
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: plain prctl calls; `fprog` points at `program`, which outlives the call, and the
    // kernel copies the program before returning.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::prctl(
            libc::PR_SET_SECCOMP,
            SECCOMP_MODE_FILTER,
            &fprog as *const libc::sock_fprog,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
