//! Settling an upperdir in place (`PackOptions::settle`): while [`crate::pack_upper`] writes the
//! tar of a directory, each entry is made what unpacking that tar would create, so that the
//! directory itself can become the layer (the moving commit) instead of a copy of it.
//!
//! What unpacking the tar gives and an upperdir may hold otherwise (format.md §6):
//! - xattrs: only `security.capability` (revision 2, as exported) and `trusted.overlay.opaque=y`
//!   on opaque directories; overlay's own bookkeeping (`origin`, `impure`, `nlink`, ...), other
//!   `trusted.*` and `user.*` xattrs and ACLs are not in the tar and are removed. `security.*`
//!   labels other than capabilities are kept: a security module gives new files its own. A
//!   directory opaque by `user.overlay.opaque` gets `trusted.overlay.opaque`.
//! - times: the header's whole-second mtime as mtime and atime;
//! - whiteouts: one 0/0 device each, where the kernel may share one inode between several;
//! - sockets: none (tar cannot hold them);
//! - the root: mode 0755, owned by root, as the store creates a layer's `diff/`.
//!
//! Only for a directory that nothing else writes while it is settled.
//!
//! The walk hands the journalled inode updates of each entry (xattrs removed, times set) to a
//! thread of its own ([`Settler`]), in the order it finds the entries, so that they run beside
//! the reads and the tar instead of after each of them; a directory's times are queued after its
//! children. What changes a directory (a whiteout made afresh, a socket removed) is done at once
//! by the walk, before the directory's times are queued, and before a later name of a shared
//! whiteout inode is looked at, whose link count then says what it did.
//!
//! When the thread is behind, the walk settles the batch in hand itself instead of waiting for
//! room in the queue. Waiting made the two threads hand one CPU back and forth, each asleep while
//! the other ran. The updates of different entries do not depend on each other's order: each
//! changes only its own inode (two names of one inode get the same changes, and an xattr already
//! removed is no error), and a directory's times are only queued once the walk has read it.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use rustix::fs::{AtFlags, FileType, Gid, Mode, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;

use crate::walk::VfsCapability;
use crate::{lossy, Error, Result};

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const CAPABILITY_XATTR: &str = "security.capability";

/// The mode of a layer's root directory as the store creates it.
const LAYER_ROOT_MODE: u32 = 0o755;

/// Entries handed to the settling thread at once (one wake-up each), and batches queued for it
/// at most: each entry holds a descriptor open until it is settled, so that at most three
/// batches' worth are open (one filling or being settled by the walk, one queued, one being
/// settled by the thread).
const BATCH_LEN: usize = 32;
const QUEUE_LEN: usize = 1;

/// [`BATCH_LEN`], or less under a low `RLIMIT_NOFILE`: the three batches in flight keep to
/// about a tenth of the descriptors the process may open, the rest being left to the walk (one
/// per directory level) and everything else. Under a soft limit of 64 a commit of 10,000 files
/// failed with `EMFILE` while its 96 entries in flight stayed open.
fn batch_len() -> usize {
    usize::try_from(syscompat::descriptor_limit() / 32)
        .unwrap_or(BATCH_LEN)
        .clamp(1, BATCH_LEN)
}

/// One entry's settling, as the walk queues it.
pub(crate) enum Op {
    /// A regular file or directory, through its descriptor: its xattrs, when given with the
    /// names it has and whether the tar marks it opaque, then its times, when given.
    Fd {
        fd: Arc<OwnedFd>,
        xattrs: Option<(Vec<u8>, bool)>,
        mtime: Option<i64>,
        relative: Vec<u8>,
    },
    /// Anything else that stays (a symlink, a device, a FIFO), by name in its directory: its
    /// xattrs, then its times.
    At {
        dir: Arc<OwnedFd>,
        name: CString,
        mtime: i64,
        relative: Vec<u8>,
    },
}

impl Op {
    /// [`Op::At`] for the entry `name` of `dir`.
    pub(crate) fn at(dir: &Arc<OwnedFd>, name: &CStr, mtime: i64, relative: &[u8]) -> Op {
        Op::At {
            dir: Arc::clone(dir),
            name: name.to_owned(),
            mtime,
            relative: relative.to_vec(),
        }
    }

    pub(crate) fn run(self) -> Result<()> {
        match self {
            Op::Fd {
                fd,
                xattrs: listed,
                mtime,
                relative,
            } => {
                let target = Target::Fd(fd.as_fd());
                if let Some((names, opaque)) = listed {
                    xattrs(target, opaque, Some(&names), &relative)?;
                }
                match mtime {
                    Some(mtime) => times(target, mtime, &relative),
                    None => Ok(()),
                }
            }
            Op::At {
                dir,
                name,
                mtime,
                relative,
            } => {
                let target = Target::At(dir.as_fd(), &name);
                xattrs(target, false, None, &relative)?;
                times(target, mtime, &relative)
            }
        }
    }
}

/// The settling thread: runs the queued [`Op`]s in order and stops at the first that fails.
/// Dropping it waits for the thread, so that nothing changes the directory after the walk has
/// returned.
pub(crate) struct Settler {
    batch: Vec<Op>,
    batch_len: usize,
    queue: Option<SyncSender<Vec<Op>>>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Settler {
    pub(crate) fn start() -> Result<Settler> {
        let (queue, ops) = sync_channel(QUEUE_LEN);
        let thread = std::thread::Builder::new()
            .name("layer-settle".to_string())
            .spawn(move || Settler::run(ops))
            .map_err(|source| Error::Io {
                operation: "starting the thread that settles",
                path: "/".to_string(),
                source,
            })?;
        let batch_len = batch_len();
        Ok(Settler {
            batch: Vec::with_capacity(batch_len),
            batch_len,
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    fn run(batches: Receiver<Vec<Op>>) -> Result<()> {
        for batch in batches {
            for op in batch {
                op.run()?;
            }
        }
        Ok(())
    }

    /// Queues `op`; a failure the thread met (it takes no more) is this call's error.
    pub(crate) fn send(&mut self, op: Op) -> Result<()> {
        self.batch.push(op);
        if self.batch.len() < self.batch_len {
            return Ok(());
        }
        self.hand_over()
    }

    fn hand_over(&mut self) -> Result<()> {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(self.batch_len));
        if let Some(queue) = &self.queue {
            match queue.try_send(batch) {
                Ok(()) => return Ok(()),
                // The thread is behind: the walk settles this batch itself rather than wait
                // (see the module's doc).
                Err(TrySendError::Full(batch)) => {
                    for op in batch {
                        op.run()?;
                    }
                    return Ok(());
                }
                Err(TrySendError::Disconnected(_)) => {}
            }
        }
        self.join()?;
        Err(Error::Io {
            operation: "settling",
            path: "/".to_string(),
            source: std::io::Error::other("the settling thread has stopped"),
        })
    }

    /// Waits until everything queued is settled.
    pub(crate) fn finish(mut self) -> Result<()> {
        if !self.batch.is_empty() {
            self.hand_over()?;
        }
        self.join()
    }

    fn join(&mut self) -> Result<()> {
        drop(self.queue.take());
        match self.thread.take() {
            None => Ok(()),
            Some(thread) => thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
        }
    }
}

impl Drop for Settler {
    fn drop(&mut self) {
        if std::thread::panicking() {
            drop(self.queue.take());
            let _ = self.thread.take().map(JoinHandle::join);
        } else {
            // An error the walk returns already says what failed; the thread's is the same or a
            // later one.
            let _ = self.join();
        }
    }
}

/// Whether an xattr of an upperdir entry stays in the layer as it is.
fn kept(name: &[u8]) -> bool {
    name.starts_with(b"security.") && name != CAPABILITY_XATTR.as_bytes()
}

/// Where an entry's xattrs and times are changed: through a descriptor of the entry (regular
/// files and directories) or by name in its directory, never following it (everything else).
#[derive(Clone, Copy)]
pub(crate) enum Target<'a> {
    Fd(BorrowedFd<'a>),
    At(BorrowedFd<'a>, &'a CStr),
}

impl Target<'_> {
    /// `/proc/self/fd/<dir>/<name>`: the `l*xattr` calls act on that name without following it.
    fn proc_path(dir: BorrowedFd<'_>, name: &CStr) -> CString {
        let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
        path.extend_from_slice(name.to_bytes());
        CString::new(path).expect("no NUL in a directory entry name")
    }

    fn list(self) -> std::result::Result<Vec<u8>, Errno> {
        match self {
            Target::Fd(fd) => syscompat::dir::list_xattrs(fd),
            Target::At(dir, name) => {
                let path = Target::proc_path(dir, name);
                let mut buffer = vec![0_u8; 4096];
                loop {
                    match rustix::fs::llistxattr(path.as_c_str(), &mut buffer[..]) {
                        Ok(len) => {
                            buffer.truncate(len);
                            return Ok(buffer);
                        }
                        Err(Errno::RANGE) => {
                            let len = buffer.len();
                            buffer.resize(len * 4, 0);
                        }
                        Err(Errno::NOTSUP) => return Ok(Vec::new()),
                        Err(errno) => return Err(errno),
                    }
                }
            }
        }
    }

    fn remove(self, xattr: &[u8]) -> std::result::Result<(), Errno> {
        let name = CString::new(xattr).map_err(|_| Errno::INVAL)?;
        let removed = match self {
            Target::Fd(fd) => rustix::fs::fremovexattr(fd, name.as_c_str()),
            Target::At(dir, entry) => {
                rustix::fs::lremovexattr(Target::proc_path(dir, entry).as_c_str(), name.as_c_str())
            }
        };
        match removed {
            Ok(()) | Err(Errno::NODATA) => Ok(()),
            Err(errno) => Err(errno),
        }
    }

    fn set_times(self, mtime: i64) -> std::result::Result<(), Errno> {
        let at = Timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        };
        let times = Timestamps {
            last_access: at,
            last_modification: at,
        };
        match self {
            Target::Fd(fd) => rustix::fs::futimens(fd, &times),
            Target::At(dir, name) => {
                rustix::fs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW)
            }
        }
    }
}

/// Removes the xattrs the tar does not carry, rewrites a capability as exported and marks an
/// opaque directory the way unpacking does. `opaque` says whether the tar marks it so; `listed`
/// is the entry's list of xattr names when the caller has it already.
fn xattrs(target: Target<'_>, opaque: bool, listed: Option<&[u8]>, relative: &[u8]) -> Result<()> {
    let fail = |operation| move |errno: Errno| io(operation, relative, errno);
    let listed_here;
    let listed = match listed {
        Some(listed) => listed,
        None => {
            listed_here = target.list().map_err(fail("listing xattrs of"))?;
            &listed_here[..]
        }
    };
    for name in listed.split(|&b| b == 0).filter(|name| !name.is_empty()) {
        if kept(name) || (opaque && name == OPAQUE_XATTR.as_bytes()) {
            continue;
        }
        if name == CAPABILITY_XATTR.as_bytes() {
            let Target::Fd(fd) = target else {
                // Only regular files and directories carry capabilities into the tar.
                target.remove(name).map_err(fail("removing xattrs of"))?;
                continue;
            };
            if let Some(value) = syscompat::dir::get_xattr(fd, CAPABILITY_XATTR)
                .map_err(fail("reading xattrs of"))?
            {
                let exported = VfsCapability::exported(value.clone());
                if exported != value {
                    rustix::fs::fsetxattr(fd, CAPABILITY_XATTR, &exported, XattrFlags::empty())
                        .map_err(fail("rewriting the capability of"))?;
                }
            }
            continue;
        }
        target.remove(name).map_err(fail("removing xattrs of"))?;
    }
    if opaque {
        if let Target::Fd(fd) = target {
            if syscompat::dir::get_xattr(fd, OPAQUE_XATTR)
                .map_err(fail("reading xattrs of"))?
                .as_deref()
                != Some(b"y")
            {
                rustix::fs::fsetxattr(fd, OPAQUE_XATTR, b"y", XattrFlags::empty())
                    .map_err(fail("marking opaque"))?;
            }
        }
    }
    Ok(())
}

/// Sets mtime and atime to the header's whole-second mtime.
fn times(target: Target<'_>, mtime: i64, relative: &[u8]) -> Result<()> {
    target
        .set_times(mtime)
        .map_err(|errno| io("setting times of", relative, errno))
}

/// Gives a whiteout that shares its inode with others (`nlink > 1`) an inode of its own, as
/// unpacking creates one per `.wh.` member.
pub(crate) fn whiteout(
    dir: BorrowedFd<'_>,
    name: &CStr,
    nlink: u64,
    uid: u32,
    gid: u32,
    relative: &[u8],
) -> Result<()> {
    if nlink <= 1 {
        return Ok(());
    }
    let fail = |operation| move |errno: Errno| io(operation, relative, errno);
    rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(fail("replacing whiteout"))?;
    rustix::fs::mknodat(dir, name, FileType::CharacterDevice, Mode::empty(), 0)
        .map_err(fail("creating whiteout"))?;
    rustix::fs::chownat(
        dir,
        name,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(fail("chown whiteout"))
}

/// Removes a socket: the tar has no entry for it.
pub(crate) fn socket(dir: BorrowedFd<'_>, name: &CStr, relative: &[u8]) -> Result<()> {
    rustix::fs::unlinkat(dir, name, AtFlags::empty())
        .map_err(|errno| io("removing socket", relative, errno))
}

/// The root directory: mode, owner and xattrs of a new layer's `diff/`.
pub(crate) fn root(root: BorrowedFd<'_>) -> Result<()> {
    let fd = syscompat::dir::open_dir_at(root, c".").map_err(|errno| io("opening", b"/", errno))?;
    xattrs(Target::Fd(fd.as_fd()), false, None, b"/")?;
    rustix::fs::fchown(&fd, Some(Uid::ROOT), Some(Gid::ROOT))
        .map_err(|errno| io("chown", b"/", errno))?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(LAYER_ROOT_MODE))
        .map_err(|errno| io("chmod", b"/", errno))
}

fn io(operation: &'static str, path: &[u8], errno: Errno) -> Error {
    Error::Io {
        operation,
        path: lossy(path),
        source: errno.into(),
    }
}
