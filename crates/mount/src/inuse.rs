//! Whether an overlay still uses a container's upperdir.
//!
//! An unmount in this mount namespace does not end an overlay: one unmounted lazily while a
//! process still had a file or its working directory in it lives on, and so does one that an
//! OCI runtime bind-mounted into a container's own mount namespace (unmounting the original
//! then succeeds at once, not even `EBUSY`). Either can still write the upperdir. Since
//! Linux 4.13 an overlay superblock takes exclusive ownership of its upper and work
//! directories, and a new one with `index=on` is refused with `EBUSY` while another holds them
//! (`upperdir is in-use`), in any mount namespace: asking for one, without mounting it
//! anywhere, is the kernel's own answer.

use std::path::Path;

use std::ffi::CStr;

use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::FsOpenFlags;

use syscompat::dir::{list_xattrs, open_tree_root};

/// What the kernel says about an upperdir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpperUse {
    /// No overlay uses it: nothing can write it but this process.
    Free,
    /// An overlay superblock still holds it.
    InUse,
    /// The kernel cannot say (no new mount API, no exclusive ownership before Linux 4.13, or
    /// `index=on` refused for another reason): why.
    Unknown(String),
}

/// Asks the kernel whether an overlay still holds `upper` or `work` by creating an overlay
/// superblock on them with `index=on`, which is dropped again without being mounted. `lower` is
/// any directory on a filesystem with file handles that overlaps neither. What the new
/// superblock leaves behind is removed: the `trusted.overlay.*` xattrs it adds to `upper`'s
/// root (the root's origin), `work/index` and `work/work/incompat/volatile/dirty`.
///
/// The superblock is `volatile` where the kernel has it (Linux 5.10): dropping any other one
/// syncs the whole filesystem under `upper` (`ovl_sync_fs`), which took 15–50 ms of a moving
/// commit on an idle machine and would write back every dirty page of a busy one. A `volatile`
/// superblock marks its work dir with `work/work/incompat/volatile`, which makes every later
/// overlay on it fail to mount until removed; [`PROBE_MARKER`] in `work` says, should the probe
/// not get to remove it, that the mark is the probe's and not a crashed volatile overlay's.
pub fn upper_in_use(lower: &Path, upper: &Path, work: &Path) -> UpperUse {
    let paths = [lower, upper, work].map(|path| path.to_str().map(str::to_owned));
    let [Some(lower_text), Some(upper_text), Some(work_text)] = paths else {
        return UpperUse::Unknown("a path is not UTF-8".to_owned());
    };
    // The overlay parses these as mount options on kernels before 6.5.
    if ![&lower_text, &upper_text, &work_text]
        .iter()
        .all(|path| super::legacy_safe(path))
    {
        return UpperUse::Unknown("a path holds `,`, `:` or `\\`".to_owned());
    }
    let work_fd = match open_tree_root(work) {
        Ok(fd) => fd,
        Err(errno) => return UpperUse::Unknown(opening(work, errno)),
    };
    let probed = (|| {
        // A probe that did not finish left its mark: removed before this one trips over it.
        if exists(work_fd.as_fd(), PROBE_MARKER, work)? {
            remove_volatile_mark(work)?;
        }
        let before = Leftovers::read(upper, work_fd.as_fd(), work)?;
        rustix::fs::openat(
            &work_fd,
            PROBE_MARKER,
            OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::RUSR | Mode::WUSR,
        )
        .map_err(|errno| format!("creating {}/ovl-probe: {errno}", work.display()))?;
        let mut answer = create_superblock(&lower_text, &upper_text, &work_text, true);
        if matches!(answer, Probed::Refused(Errno::INVAL, _)) {
            // Before Linux 5.10 `volatile` is an unknown option.
            before.restore(upper, work_fd.as_fd(), work)?;
            answer = create_superblock(&lower_text, &upper_text, &work_text, false);
        }
        let answer = answer.into_use();
        // Refused as in use, the superblock changed nothing; any other answer may have.
        if answer != UpperUse::InUse {
            before.restore(upper, work_fd.as_fd(), work)?;
        }
        match rustix::fs::unlinkat(&work_fd, PROBE_MARKER, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(answer),
            Err(errno) => Err(format!("removing {}/ovl-probe: {errno}", work.display())),
        }
    })();
    probed.unwrap_or_else(|reason| {
        tracing::warn!(upper = %upper.display(), "{reason}");
        UpperUse::Unknown(reason)
    })
}

/// The file in the work dir that says a probe is under way (see [`upper_in_use`]).
const PROBE_MARKER: &CStr = c"ovl-probe";

/// What creating the probe's superblock gave.
enum Probed {
    Free,
    InUse,
    /// Refused for another reason: the errno and what the kernel said.
    Refused(Errno, String),
    /// The superblock could not be asked for.
    NotAsked(String),
}

impl Probed {
    fn into_use(self) -> UpperUse {
        match self {
            Probed::Free => UpperUse::Free,
            Probed::InUse => UpperUse::InUse,
            Probed::Refused(errno, log) => {
                UpperUse::Unknown(format!("an overlay with index=on: {errno}{log}"))
            }
            Probed::NotAsked(reason) => UpperUse::Unknown(reason),
        }
    }
}

fn create_superblock(lower: &str, upper: &str, work: &str, volatile: bool) -> Probed {
    let fs_fd = match rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) {
        Ok(fd) => fd,
        Err(errno) => return Probed::NotAsked(format!("fsopen(\"overlay\"): {errno}")),
    };
    for (key, value) in [
        ("source", "overlay"),
        ("lowerdir", lower),
        ("upperdir", upper),
        ("workdir", work),
        ("index", "on"),
    ] {
        if let Err(errno) = rustix::mount::fsconfig_set_string(&fs_fd, key, value) {
            return Probed::NotAsked(format!("fsconfig {key}: {errno}"));
        }
    }
    if volatile {
        // Kernels before 6.5 take any flag here and refuse an unknown one at the creation.
        if let Err(errno) = rustix::mount::fsconfig_set_flag(&fs_fd, "volatile") {
            return Probed::Refused(errno, String::new());
        }
    }
    match rustix::mount::fsconfig_create(&fs_fd) {
        // Closing the context drops the superblock, which nothing mounted.
        Ok(()) => Probed::Free,
        Err(Errno::BUSY) => Probed::InUse,
        Err(errno) => Probed::Refused(errno, super::kernel_log(&fs_fd)),
    }
}

/// What was there before the probe: the overlay xattrs of the upper root, whether `work/index`
/// existed and whether `work/work/incompat` did.
struct Leftovers {
    xattrs: Vec<Vec<u8>>,
    index_dir: bool,
    incompat_dir: bool,
}

const INDEX_DIR: &CStr = c"index";
const WORK_DIR: &CStr = c"work";
const INCOMPAT_DIR: &CStr = c"incompat";

impl Leftovers {
    fn read(upper: &Path, work_fd: BorrowedFd<'_>, work: &Path) -> Result<Leftovers, String> {
        let upper_fd = open_tree_root(upper).map_err(|errno| opening(upper, errno))?;
        Ok(Leftovers {
            xattrs: overlay_xattrs(upper_fd.as_fd(), upper)?,
            index_dir: exists(work_fd, INDEX_DIR, work)?,
            incompat_dir: match open_below(work_fd, WORK_DIR, work)? {
                Some(inner) => exists(inner.as_fd(), INCOMPAT_DIR, work)?,
                None => false,
            },
        })
    }

    fn restore(&self, upper: &Path, work_fd: BorrowedFd<'_>, work: &Path) -> Result<(), String> {
        let upper_fd = open_tree_root(upper).map_err(|errno| opening(upper, errno))?;
        for name in overlay_xattrs(upper_fd.as_fd(), upper)? {
            if self.xattrs.contains(&name) {
                continue;
            }
            let text = String::from_utf8_lossy(&name).into_owned();
            match rustix::fs::fremovexattr(&upper_fd, text.as_str()) {
                Ok(()) | Err(Errno::NODATA) => {}
                Err(errno) => {
                    return Err(format!("removing {text} of {}: {errno}", upper.display()))
                }
            }
        }
        if !self.index_dir {
            match rustix::fs::unlinkat(work_fd, INDEX_DIR, AtFlags::REMOVEDIR) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(errno) => return Err(format!("removing {}/index: {errno}", work.display())),
            }
        }
        if !self.incompat_dir {
            remove_volatile_mark(work)?;
        }
        Ok(())
    }
}

/// Removes the mark a `volatile` superblock leaves in the work dir (see [`super::clear_volatile`]).
fn remove_volatile_mark(work: &Path) -> Result<(), String> {
    super::clear_volatile(work).map_err(|err| err.to_string())
}

/// The directory `name` in `dir`, `None` when there is none.
fn open_below(
    dir: BorrowedFd<'_>,
    name: &CStr,
    work: &Path,
) -> Result<Option<rustix::fd::OwnedFd>, String> {
    match syscompat::dir::open_dir_at(dir, name) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::NOENT) => Ok(None),
        Err(errno) => Err(format!(
            "opening {name:?} below {}: {errno}",
            work.display()
        )),
    }
}

fn overlay_xattrs(fd: rustix::fd::BorrowedFd<'_>, path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let listed = list_xattrs(fd)
        .map_err(|errno| format!("listing xattrs of {}: {errno}", path.display()))?;
    Ok(listed
        .split(|&b| b == 0)
        .filter(|name| name.starts_with(b"trusted.overlay."))
        .map(<[u8]>::to_vec)
        .collect())
}

/// Whether the entry `name` of `dir` (a directory below the work dir `path`) exists.
fn exists(dir: BorrowedFd<'_>, name: &CStr, path: &Path) -> Result<bool, String> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(_) => Ok(true),
        Err(Errno::NOENT) => Ok(false),
        Err(errno) => Err(format!("stat {name:?} below {}: {errno}", path.display())),
    }
}

fn opening(path: &Path, errno: Errno) -> String {
    format!("opening {}: {errno}", path.display())
}
