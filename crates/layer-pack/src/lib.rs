//! layer-pack: the tar Docker 20.10's overlay2 `Diff` makes of a container layer (format.md §6.3),
//! which `docker commit` registers as the new image layer, streamed to any writer.
//!
//! The upperdir is walked depth-first with the names of each directory in byte order; headers are
//! built from `lstat` as Go's `tar.FileInfoHeader` and Docker's `addTarFile` build them (mode with
//! file-type bits, uname/gname from the host's `/etc/passwd` and `/etc/group`, mtime in whole
//! seconds, `security.capability` as a PAX record, hardlinks by inode) and encoded by `gotar`.
//! Overlay whiteouts (0/0 character devices) become `.wh.<name>` files, opaque directories get a
//! `.wh..wh..opq` entry right after them. [`pack_changes`] is Docker's other exporter, for mounts
//! whose upperdir alone is not the change: entries read from the merged tree for a change list.
//! [`pack_tree`] is `docker export`'s: a whole mounted root filesystem as it is.
//!
//! **Architecture invariant:** reads only, and only through directory descriptors: every
//! directory and file is opened relative to its parent with `O_NOFOLLOW`, never by a path string;
//! a symlink found in a layer is emitted, never followed.
#![deny(unsafe_code)]

mod names;
mod settle;
mod walk;

use std::io::Write;

pub use walk::{pack_changes, pack_tree, pack_upper};

/// Errors, each naming the layer path involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{operation} {path}")]
    Io {
        operation: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("file {path} changed while it was read: {expected} bytes at stat, {actual} read")]
    SizeChanged {
        path: String,
        expected: u64,
        actual: u64,
    },
    #[error(
        "{path} carries the overlay xattr {xattr}: the upperdir alone does not hold the change"
    )]
    NeedsMergedExport { path: String, xattr: &'static str },
    #[error("encoding the tar header of {path}")]
    Header {
        path: String,
        #[source]
        source: gotar::Error,
    },
    #[error("writing the layer tar")]
    Write {
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Options of both exporters.
#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    /// Reproducible output: every mtime becomes `min(mtime, clamp)` (the opaque marker stays 0,
    /// a deletion's whiteout gets the clamp), and whiteouts carry no link name even where the
    /// kernel shares one inode between them, so equal upperdirs give equal bytes.
    pub clamp_mtime: Option<i64>,
    /// Where user and group names come from: the host's `/etc/passwd` and `/etc/group` when
    /// `None` (Docker's layer diff runs in the daemon), these files' text otherwise (`docker
    /// export` runs its tar chrooted into the container, so the container's own files name
    /// owners).
    pub names: Option<NameFiles>,
    /// For [`pack_upper`]: make the upperdir, entry by entry as it is packed, the tree that
    /// unpacking the tar creates (`settle`: xattrs the tar does not carry removed, capabilities
    /// as exported, whole-second times, one inode per whiteout, no sockets, the root as a new
    /// layer's), so that it can become the layer's `diff/` as it is. Only for a directory
    /// nothing else writes; the tar is the same either way.
    pub settle: bool,
}

/// The text of a passwd and a group file (empty for a missing file).
#[derive(Debug, Clone, Default)]
pub struct NameFiles {
    pub passwd: Vec<u8>,
    pub group: Vec<u8>,
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackReport {
    pub n_entries: u64,
    pub n_bytes: u64,
}

/// The kind of one change given to [`pack_changes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Modify,
    Add,
    Delete,
}

/// Counts what goes through to the output.
struct CountingWriter<'a> {
    inner: &'a mut dyn Write,
    n_bytes: u64,
}

impl CountingWriter<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.inner
            .write_all(bytes)
            .map_err(|source| Error::Write { source })?;
        self.n_bytes += bytes.len() as u64;
        Ok(())
    }
}

fn lossy(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

#[cfg(test)]
mod tests;
