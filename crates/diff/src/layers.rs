//! Access to layer directories and trees: the [`Layers`] operations both comparisons are written
//! against, their implementation on disk ([`Disk`]), and the reading of the xattrs that matter.

use std::ffi::{CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::FileType;
use rustix::io::Errno;

use crate::meta::Meta;
use crate::{sys, Error, Result};

/// The file capability xattr; Docker compares its bytes (absent and empty are equal).
const CAPABILITY_XATTR: &CStr = c"security.capability";

/// The opaque-directory markers: `trusted.` on a normal mount, `user.` on a `userxattr` mount.
/// Only the value `y` makes a directory opaque (`x` marks a directory holding xattr whiteouts).
const OPAQUE_XATTRS: [&CStr; 2] = [c"trusted.overlay.opaque", c"user.overlay.opaque"];

/// The xattrs that make the kernel look up names other than the layer's own (a directory renamed
/// under `redirect_dir=on`) or take data from another layer (a `metacopy=on` copy-up). Where one
/// shows up, a walk of the layer directories cannot reproduce the merged view.
/// See <https://docs.kernel.org/filesystems/overlayfs.html#redirect-dir> and `#metadata-only-copy-up`.
const NEEDS_FULL_COMPARISON_XATTRS: [&str; 4] = [
    "trusted.overlay.redirect",
    "trusted.overlay.metacopy",
    "user.overlay.redirect",
    "user.overlay.metacopy",
];

/// One name of a directory listing.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) name: CString,
    /// The listing's type says character device or nothing: the entry may be a whiteout and
    /// needs a stat to tell.
    pub(crate) maybe_whiteout: bool,
}

/// The xattrs of one entry that the comparisons use.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Xattrs {
    /// `security.capability`; an empty value counts as none.
    pub(crate) capability: Option<Vec<u8>>,
    /// `overlay.opaque` is `y` (meaningful on directories only).
    pub(crate) opaque: bool,
    /// The name of a redirect or metacopy xattr, if the entry has one.
    pub(crate) needs_full_comparison: Option<&'static str>,
}

impl Xattrs {
    /// Interprets an xattr name list (NUL-separated, as `listxattr` gives it), reading only the
    /// values that matter with `get`.
    pub(crate) fn from_list(
        list: &[u8],
        mut get: impl FnMut(&CStr) -> Result<Option<Vec<u8>>>,
    ) -> Result<Xattrs> {
        let mut xattrs = Xattrs::default();
        for name in list
            .split(|&byte| byte == 0)
            .filter(|name| !name.is_empty())
        {
            if name == CAPABILITY_XATTR.to_bytes() {
                xattrs.capability = get(CAPABILITY_XATTR)?.filter(|value| !value.is_empty());
            } else if let Some(&opaque) = OPAQUE_XATTRS.iter().find(|x| x.to_bytes() == name) {
                if get(opaque)?.as_deref() == Some(b"y") {
                    xattrs.opaque = true;
                }
            } else if let Some(&feature) = NEEDS_FULL_COMPARISON_XATTRS
                .iter()
                .find(|x| x.as_bytes() == name)
            {
                xattrs.needs_full_comparison.get_or_insert(feature);
            }
        }
        Ok(xattrs)
    }
}

/// The operations the comparisons need on a tree of directories. `Dir` is an opened directory;
/// every other entry is named by its directory and its name.
pub(crate) trait Layers {
    type Dir;

    /// The names in `dir`, in no particular order.
    fn entries(&self, dir: &Self::Dir) -> Result<Vec<Entry>>;

    /// `lstat` of `name` in `dir`; `None` if there is no such name (any more).
    fn stat(&self, dir: &Self::Dir, name: &CStr) -> Result<Option<Meta>>;

    /// Opens the directory `name` of `dir`.
    fn open_dir(&self, dir: &Self::Dir, name: &CStr) -> Result<Self::Dir>;

    /// The xattrs of an opened directory.
    fn dir_xattrs(&self, dir: &Self::Dir) -> Result<Xattrs>;

    /// The xattrs of the regular file `name` of `dir`.
    fn file_xattrs(&self, dir: &Self::Dir, name: &CStr) -> Result<Xattrs>;
}

/// The file system, through directory descriptors.
#[derive(Debug)]
pub(crate) struct Disk;

/// A directory opened by [`Disk`]; the path only names it in errors.
#[derive(Debug)]
pub(crate) struct DiskDir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Disk {
    /// Opens a tree's root given by path.
    pub(crate) fn open_root(&self, path: &Path) -> Result<DiskDir> {
        let fd = sys::open_root(path).map_err(|err| io_error("opening directory", path, err))?;
        Ok(DiskDir {
            fd,
            path: path.to_owned(),
        })
    }

    fn xattrs_of(&self, fd: &OwnedFd, path: &Path) -> Result<Xattrs> {
        let list = sys::list_xattrs(fd.as_fd())
            .map_err(|err| io_error("listing the xattrs of", path, err))?;
        Xattrs::from_list(&list, |name| {
            sys::get_xattr(fd.as_fd(), name)
                .map_err(|err| io_error("reading an xattr of", path, err))
        })
    }
}

impl Layers for Disk {
    type Dir = DiskDir;

    fn entries(&self, dir: &DiskDir) -> Result<Vec<Entry>> {
        let entries = sys::read_dir(dir.fd.as_fd())
            .map_err(|err| io_error("reading directory", &dir.path, err))?;
        Ok(entries
            .into_iter()
            .map(|(name, file_type)| Entry {
                name,
                maybe_whiteout: matches!(file_type, FileType::CharacterDevice | FileType::Unknown),
            })
            .collect())
    }

    fn stat(&self, dir: &DiskDir, name: &CStr) -> Result<Option<Meta>> {
        let stat = sys::stat_at(dir.fd.as_fd(), name)
            .map_err(|err| io_error("lstat", &join(&dir.path, name), err))?;
        Ok(stat.as_ref().map(Meta::from_stat))
    }

    fn open_dir(&self, dir: &DiskDir, name: &CStr) -> Result<DiskDir> {
        let path = join(&dir.path, name);
        let fd = sys::open_dir_at(dir.fd.as_fd(), name)
            .map_err(|err| io_error("opening directory", &path, err))?;
        Ok(DiskDir { fd, path })
    }

    fn dir_xattrs(&self, dir: &DiskDir) -> Result<Xattrs> {
        self.xattrs_of(&dir.fd, &dir.path)
    }

    fn file_xattrs(&self, dir: &DiskDir, name: &CStr) -> Result<Xattrs> {
        let path = join(&dir.path, name);
        // Only a regular file is opened; a name that has become anything else since it was
        // described is reported, never opened.
        let fd = match syscompat::open_regular_at(dir.fd.as_fd(), name) {
            Ok((_, Some(fd))) => fd,
            Ok((_, None)) => return Err(Error::Changed { path }),
            Err(err) => return Err(io_error("opening file", &path, err)),
        };
        self.xattrs_of(&fd, &path)
    }
}

fn join(dir: &Path, name: &CStr) -> PathBuf {
    dir.join(OsStr::from_bytes(name.to_bytes()))
}

fn io_error(operation: &'static str, path: &Path, source: Errno) -> Error {
    Error::Io {
        operation,
        path: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(name: &CStr) -> Result<Option<Vec<u8>>> {
        Ok(match name.to_bytes() {
            b"security.capability" => Some(vec![1, 0, 0, 2]),
            b"trusted.overlay.opaque" => Some(b"y".to_vec()),
            b"user.overlay.opaque" => Some(b"x".to_vec()),
            _ => None,
        })
    }

    #[test]
    fn reads_capability_and_opaque_and_flags_redirects() {
        let list = b"user.foo\0security.capability\0trusted.overlay.opaque\0\
                     trusted.overlay.redirect\0trusted.overlay.metacopy\0";
        let xattrs = Xattrs::from_list(list, values).expect("xattrs");
        assert_eq!(
            xattrs,
            Xattrs {
                capability: Some(vec![1, 0, 0, 2]),
                opaque: true,
                needs_full_comparison: Some("trusted.overlay.redirect"),
            }
        );
    }

    #[test]
    fn only_the_value_y_is_opaque() {
        let xattrs = Xattrs::from_list(b"user.overlay.opaque\0", values).expect("xattrs");
        assert_eq!(xattrs, Xattrs::default());
        let userxattr = Xattrs::from_list(b"user.overlay.opaque\0", |_| Ok(Some(b"y".to_vec())))
            .expect("xattrs");
        assert!(userxattr.opaque);
    }

    #[test]
    fn user_namespace_forms_need_a_full_comparison_too() {
        for name in ["user.overlay.redirect", "user.overlay.metacopy"] {
            let list = format!("{name}\0");
            let xattrs = Xattrs::from_list(list.as_bytes(), values).expect("xattrs");
            assert_eq!(xattrs.needs_full_comparison, Some(name));
        }
    }

    #[test]
    fn empty_capability_counts_as_none_and_values_are_read_only_when_listed() {
        let mut reads = Vec::new();
        let xattrs = Xattrs::from_list(b"security.capability\0", |name| {
            reads.push(name.to_owned());
            Ok(Some(Vec::new()))
        })
        .expect("xattrs");
        assert_eq!(xattrs.capability, None);
        assert_eq!(reads, vec![c"security.capability".to_owned()]);
        let none = Xattrs::from_list(b"", |_| panic!("nothing listed, nothing read"));
        assert_eq!(none.expect("xattrs"), Xattrs::default());
    }
}
