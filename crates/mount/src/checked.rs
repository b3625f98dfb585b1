//! The paths of an [`OverlaySpec`] checked on the file system just before the mount: the one
//! place where this crate decides what it may mount and onto what.
//!
//! A data root may be copied from another machine or crafted. Every directory of a spec is
//! therefore opened from the driver home's descriptor one component at a time with `O_PATH |
//! O_NOFOLLOW | O_DIRECTORY`: a symlink (relative or absolute) or a file anywhere below the home
//! is refused, naming the path. The only symlink a spec may pass is the last component of a lower
//! entry (Docker's `l/<LID>`), and only when its target is relative and names a layer's `diff`
//! right below the home (`../<id>/diff`); what it names is then checked in the same way. The mount itself goes onto the
//! target's descriptor (`/proc/self/fd/N`, or `move_mount` with the descriptor), so that the
//! directory mounted over is the one that was checked. Only calls of Linux 2.6.39 (`O_PATH`) and
//! older are needed here; where the kernel has `openat2`, a directory is opened with one call
//! (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`) instead of a call per name.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::{Error, OverlaySpec, Result};

const PATH_FLAGS: OFlags = OFlags::PATH.union(OFlags::NOFOLLOW).union(OFlags::CLOEXEC);
const DIR_FLAGS: OFlags = PATH_FLAGS.union(OFlags::DIRECTORY);

/// The checked target of a spec: an `O_PATH` descriptor of the real directory to mount onto.
#[derive(Debug)]
pub(crate) struct CheckedTarget {
    fd: OwnedFd,
    /// The path as errors name it (`home/target`).
    pub(crate) shown: PathBuf,
}

impl CheckedTarget {
    /// `/proc/self/fd/N`: a path the kernel resolves to exactly the checked directory.
    pub(crate) fn proc_path(&self) -> PathBuf {
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    pub(crate) fn fd(&self) -> &OwnedFd {
        &self.fd
    }
}

/// Checks every path of `spec` below its home (see the module documentation), but the lower
/// entries in `verified` (added to it when checked), and opens the target.
pub(crate) fn check(spec: &OverlaySpec, verified: &mut HashSet<String>) -> Result<CheckedTarget> {
    let home = syscompat::dir::open_dir_path(&spec.home).map_err(|source| Error::Sys {
        operation: "opening the driver home",
        path: spec.home.clone(),
        source,
    })?;
    // Lower entries share their parent (`l/`): it is opened once for all of them.
    let mut parents: Option<(Vec<String>, OwnedFd)> = None;
    for lower in &spec.lowers {
        if !verified.contains(lower) {
            check_lower(&home, &spec.home, lower, &mut parents)?;
            verified.insert(lower.clone());
        }
    }
    for dir in spec.upper.iter().chain(spec.work.iter()) {
        open_real_dir(&home, &spec.home, &components(&spec.home, dir)?)?;
    }
    let fd = open_real_dir(&home, &spec.home, &components(&spec.home, &spec.target)?)?;
    Ok(CheckedTarget {
        fd,
        shown: spec.home.join(&spec.target),
    })
}

/// A lower entry: real directories all the way, or real directories up to a last component that
/// is a symlink with a relative target naming a layer's `diff` right below the home
/// (`../<id>/diff`), which leads to real directories.
///
/// `parent` keeps the last entry's parent directory (its names and descriptor) for the next.
fn check_lower(
    home: &OwnedFd,
    home_path: &Path,
    entry: &str,
    parent: &mut Option<(Vec<String>, OwnedFd)>,
) -> Result<()> {
    let names = components(home_path, entry)?;
    let Some((last, parents)) = names.split_last() else {
        return Err(refused(home_path, entry, "is empty"));
    };
    if parent
        .as_ref()
        .is_none_or(|(kept, _)| kept.as_slice() != parents)
    {
        *parent = Some((parents.to_vec(), open_real_dir(home, home_path, parents)?));
    }
    let Some((_, parent)) = parent.as_ref() else {
        unreachable!("the parent was opened above")
    };
    // `readlinkat` fails with EINVAL on anything but a symlink: a symlink is read in one call,
    // and anything else is then looked at without following it.
    match rustix::fs::readlinkat(parent, last.as_str(), Vec::new()) {
        Err(Errno::INVAL) => {
            let node = rustix::fs::openat(parent, last.as_str(), PATH_FLAGS, Mode::empty())
                .map_err(|source| sys("opening the lower", home_path.join(entry), source))?;
            let stat = rustix::fs::fstat(&node)
                .map_err(|source| sys("reading the lower", home_path.join(entry), source))?;
            match FileType::from_raw_mode(stat.st_mode) {
                FileType::Directory => Ok(()),
                _ => Err(refused(home_path, entry, "is not a directory")),
            }
        }
        Err(source) => Err(sys("reading the link", home_path.join(entry), source)),
        Ok(target) => {
            let target = Path::new(OsStr::from_bytes(target.as_bytes()));
            let mut resolved: Vec<String> = parents.to_vec();
            for component in target.components() {
                match component {
                    Component::Normal(name) => resolved.push(name.to_string_lossy().into_owned()),
                    Component::CurDir => {}
                    Component::ParentDir if resolved.pop().is_some() => {}
                    Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                        return Err(refused(
                            home_path,
                            entry,
                            &format!(
                                "is a link to {} outside the driver home; only a relative link \
                                 inside it (../<id>/diff) may be a lower layer",
                                target.display()
                            ),
                        ));
                    }
                }
            }
            // Docker's links name a layer's diff directory right below the home
            // (`../<id>/diff`); a link to any other directory there is not a lower layer.
            if !matches!(resolved.as_slice(), [_, diff] if diff == "diff") {
                return Err(refused(
                    home_path,
                    entry,
                    &format!(
                        "is a link to {}, not to a layer's diff directory (../<id>/diff)",
                        target.display()
                    ),
                ));
            }
            open_real_dir(home, home_path, &resolved).map(drop)
        }
    }
}

/// Opens `names` below `home`, each a real directory (never following a symlink): with one
/// `openat2` (Linux 5.6) that refuses every symlink and never leaves `home` (`RESOLVE_BENEATH |
/// RESOLVE_NO_SYMLINKS`) where the kernel has it, else, and whenever that fails, one `openat` per
/// name, which names the component it refuses. A mount of 120 lowers opens 120 of these.
fn open_real_dir(home: &OwnedFd, home_path: &Path, names: &[String]) -> Result<OwnedFd> {
    if !names.is_empty() {
        if let Ok(fd) = rustix::fs::openat2(
            home,
            names.join("/").as_str(),
            DIR_FLAGS,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        ) {
            return Ok(fd);
        }
    }
    let mut fd: Option<OwnedFd> = None;
    let mut path = home_path.to_path_buf();
    for name in names {
        path.push(name);
        let from = fd.as_ref().unwrap_or(home);
        fd =
            Some(
                match rustix::fs::openat(from.as_fd(), name.as_str(), DIR_FLAGS, Mode::empty()) {
                    Ok(next) => next,
                    Err(Errno::LOOP) | Err(Errno::NOTDIR) => return Err(Error::Refused {
                        path,
                        reason:
                            "is a symlink or not a directory, where the data root's format has a \
                             directory: never followed"
                                .to_owned(),
                    }),
                    Err(source) => return Err(sys("opening", path, source)),
                },
            );
    }
    match fd {
        Some(fd) => Ok(fd),
        None => rustix::fs::openat(home, ".", DIR_FLAGS, Mode::empty())
            .map_err(|source| sys("opening", home_path.to_path_buf(), source)),
    }
}

/// The names of a relative spec entry; `.`, `..` and absolute entries are refused.
fn components(home_path: &Path, entry: &str) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for component in Path::new(entry).components() {
        match component {
            Component::Normal(name) => names.push(name.to_string_lossy().into_owned()),
            _ => return Err(refused(home_path, entry, "is not a plain relative path")),
        }
    }
    Ok(names)
}

fn refused(home_path: &Path, entry: &str, reason: &str) -> Error {
    Error::Refused {
        path: home_path.join(entry),
        reason: reason.to_owned(),
    }
}

fn sys(operation: &'static str, path: PathBuf, source: Errno) -> Error {
    Error::Sys {
        operation,
        path,
        source,
    }
}
