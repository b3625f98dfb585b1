//! System calls newer than the oldest kernel ovl supports (CentOS 7's 3.10), each with a
//! fallback that is as strict as the call it replaces, in one place:
//!
//! - [`Resolver`]: opening a path inside a root directory with every symlink and `..` kept
//!   inside it: `openat2(RESOLVE_IN_ROOT)` (Linux 5.6), else a walk in userspace.
//! - [`fill_random`]: `getrandom` (Linux 3.17), else `/dev/urandom`.
//! - [`stat_node`]: type, size, inode and the mount an inode lives on: `statx` with
//!   `STATX_MNT_ID` (Linux 4.11/5.8), else `fstatat` with the mount id of
//!   `name_to_handle_at` (Linux 2.6.39).
//! - [`Node`] and [`open_regular_at`]: a name described through an `O_PATH | O_NOFOLLOW`
//!   descriptor and opened for reading only when that inode is a regular file, so that no
//!   device or FIFO a container planted under a file's name is ever opened.
//! - [`reserve_descriptors`]: the descriptor table grown once, before any thread starts;
//!   [`descriptor_limit`]: how many descriptors the process may open; [`raise_descriptor_limit`]
//!   the soft limit raised to the hard one at startup, [`with_original_descriptor_limit`] the
//!   original given back to a child.
//! - [`helper_thread`]: `SCHED_BATCH` for a thread that works for another one (Linux 2.6.16),
//!   a hint that is ignored where it is refused.
//! - [`dir`]: the descriptor steps of every tree walk (a directory opened by one name from its
//!   parent's descriptor with `O_NOFOLLOW`, its `getdents64` listing, its xattrs), so that the
//!   walks of the store, `diff` and `layer-pack` open and list directories the same way.
//!
//! Nothing here compares version numbers. Each call tries the newer system call and falls back
//! when it is missing (`ENOSYS`) or refused (`EPERM`, as a seccomp filter may answer), at every
//! call, so that a feature taken away after a probe still works.

#![deny(unsafe_code)]

pub mod atomic;
pub mod dir;
mod fdtable;
mod in_root;
mod node;
mod random;
mod stat;
mod sys;

pub use fdtable::{descriptor_limit, raise_descriptor_limit, reserve_descriptors};
pub use in_root::{Resolver, PATH_MAX};
pub use node::{open_regular_at, open_unshared_regular, Node};
pub use random::fill_random;
pub use stat::{stat_node, MountKey, NodeStat};
pub use sys::{helper_thread, with_original_descriptor_limit};

use rustix::io::Errno;

/// Whether `errno` says the system call itself is not available: unknown to the kernel, or
/// refused by a filter (seccomp, a container runtime's profile).
pub fn is_unavailable(errno: Errno) -> bool {
    errno == Errno::NOSYS || errno == Errno::PERM
}
