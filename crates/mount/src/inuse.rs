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

use rustix::io::Errno;
use rustix::mount::FsOpenFlags;

use rustix::fd::AsFd;

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
/// root (the root's origin) and `work/index`.
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
    let before = match Leftovers::read(upper, work) {
        Ok(before) => before,
        Err(reason) => return UpperUse::Unknown(reason),
    };
    let answer = create_superblock(&lower_text, &upper_text, &work_text);
    // Refused as in use, the superblock changed nothing; any other answer may have.
    if answer != UpperUse::InUse {
        if let Err(reason) = before.restore(upper, work) {
            tracing::warn!(upper = %upper.display(), "{reason}");
        }
    }
    answer
}

fn create_superblock(lower: &str, upper: &str, work: &str) -> UpperUse {
    let fs_fd = match rustix::mount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) {
        Ok(fd) => fd,
        Err(errno) => return UpperUse::Unknown(format!("fsopen(\"overlay\"): {errno}")),
    };
    for (key, value) in [
        ("source", "overlay"),
        ("lowerdir", lower),
        ("upperdir", upper),
        ("workdir", work),
        ("index", "on"),
    ] {
        if let Err(errno) = rustix::mount::fsconfig_set_string(&fs_fd, key, value) {
            return UpperUse::Unknown(format!("fsconfig {key}: {errno}"));
        }
    }
    match rustix::mount::fsconfig_create(&fs_fd) {
        // Closing the context drops the superblock, which nothing mounted.
        Ok(()) => UpperUse::Free,
        Err(Errno::BUSY) => UpperUse::InUse,
        Err(errno) => UpperUse::Unknown(format!(
            "an overlay with index=on: {errno}{}",
            super::kernel_log(&fs_fd)
        )),
    }
}

/// What was there before the probe: the overlay xattrs of the upper root and whether
/// `work/index` existed.
struct Leftovers {
    xattrs: Vec<Vec<u8>>,
    index_dir: bool,
}

const INDEX_DIR: &std::ffi::CStr = c"index";

impl Leftovers {
    fn read(upper: &Path, work: &Path) -> Result<Leftovers, String> {
        let upper_fd = open_tree_root(upper).map_err(|errno| opening(upper, errno))?;
        let work_fd = open_tree_root(work).map_err(|errno| opening(work, errno))?;
        Ok(Leftovers {
            xattrs: overlay_xattrs(upper_fd.as_fd(), upper)?,
            index_dir: exists(work_fd.as_fd(), work)?,
        })
    }

    fn restore(&self, upper: &Path, work: &Path) -> Result<(), String> {
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
            let work_fd = open_tree_root(work).map_err(|errno| opening(work, errno))?;
            match rustix::fs::unlinkat(&work_fd, INDEX_DIR, rustix::fs::AtFlags::REMOVEDIR) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(errno) => return Err(format!("removing {}/index: {errno}", work.display())),
            }
        }
        Ok(())
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

fn exists(dir: rustix::fd::BorrowedFd<'_>, path: &Path) -> Result<bool, String> {
    match rustix::fs::statat(dir, INDEX_DIR, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
        Ok(_) => Ok(true),
        Err(Errno::NOENT) => Ok(false),
        Err(errno) => Err(format!("stat {}/index: {errno}", path.display())),
    }
}

fn opening(path: &Path, errno: Errno) -> String {
    format!("opening {}: {errno}", path.display())
}
