//! Small file helpers that set modes explicitly (the umask may be anything) and write atomically.
//!
//! None of them follows a symlink in the last component of its path: a directory is created or
//! accepted only as a real directory, a file is read, written or created with `O_NOFOLLOW` and
//! read only when it is a regular file, and a tree is removed through directory descriptors
//! (`below`). The directories above are the callers' to verify: the layout by
//! [`crate::check_layout`], a layer dir by `DataRoot::checked_overlay_dir`.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::{Error, Result};

pub(crate) fn io_error<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// `open(2)`'s `O_NOFOLLOW` for `OpenOptionsExt::custom_flags`.
pub(crate) fn nofollow_flag() -> i32 {
    libc_flag(rustix::fs::OFlags::NOFOLLOW)
}

fn libc_flag(flag: rustix::fs::OFlags) -> i32 {
    i32::try_from(flag.bits()).unwrap_or(0)
}

/// The type of what `lstat` described.
fn kind_of(meta: &fs::Metadata) -> rustix::fs::FileType {
    use std::os::unix::fs::MetadataExt;
    rustix::fs::FileType::from_raw_mode(meta.mode())
}

/// Whether `path` is a real directory (`Ok(true)`) or missing (`Ok(false)`); a symlink (even to
/// a directory), a file or anything else there is [`Error::NotReal`], naming the path.
pub(crate) fn real_dir(path: &Path) -> Result<bool> {
    real(path, rustix::fs::FileType::Directory)
}

/// Whether `path` is a regular file (`Ok(true)`) or missing (`Ok(false)`); anything else there
/// is [`Error::NotReal`], naming the path.
pub(crate) fn real_file(path: &Path) -> Result<bool> {
    real(path, rustix::fs::FileType::RegularFile)
}

/// Whether `path` is of the type `expected` (`lstat`), missing, or (an error) something else.
fn real(path: &Path, expected: rustix::fs::FileType) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(meta) if kind_of(&meta) == expected => Ok(true),
        Ok(meta) => Err(Error::NotReal {
            path: path.to_path_buf(),
            expected: if expected == rustix::fs::FileType::Directory {
                "directory"
            } else {
                "regular file"
            },
            found: type_name(kind_of(&meta)),
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(io_error("reading", path)(err)),
    }
}

/// Creates `path` with `mode` unless it exists; sets the mode only on a new directory. An
/// existing entry must be a real directory (a symlink to one is refused).
pub(crate) fn create_dir_mode(path: &Path, mode: u32) -> Result<bool> {
    match fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => {
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
                .map_err(io_error("chmod", path))?;
            Ok(true)
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            real_dir(path)?;
            Ok(false)
        }
        Err(err) => Err(Error::Io {
            op: "creating directory",
            path: path.to_path_buf(),
            source: err,
        }),
    }
}

/// Creates `path` and its missing parents (the parents 0755, `path` itself `mode`).
pub(crate) fn create_dir_all_mode(path: &Path, mode: u32) -> Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        if !parent.as_os_str().is_empty() && !parent.is_dir() {
            create_dir_all_mode(parent, 0o755)?;
        }
    }
    create_dir_mode(path, mode).map(|_| ())
}

/// Writes a new file with `mode` (no temp file, no fsync): Docker's plain writes. A symlink at
/// `path` is refused (`O_NOFOLLOW`), never written through. Returns the open file (for
/// [`sync_together`] where it must be durable).
pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<File> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .custom_flags(nofollow_flag())
        .open(path)
        .map_err(|err| refused_link(path, err, "creating"))?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_error("chmod", path))?;
    file.write_all(bytes).map_err(io_error("writing", path))?;
    Ok(file)
}

/// fsyncs files just written with about one journal commit for all (see
/// `syscompat::atomic::sync_together`); `files` pairs each with its path for the error.
pub(crate) fn sync_together(files: &[(std::path::PathBuf, File)]) -> Result<()> {
    let handles: Vec<&File> = files.iter().map(|(_, file)| file).collect();
    syscompat::atomic::sync_together(&handles)
        .map_err(|(index, err)| io_error("syncing", &files[index].0)(err))
}

/// The one atomic file writer of ovl's storage crates: writes a temp name in the same directory
/// (random, opened with `O_NOFOLLOW`), fsyncs it, sets `mode`, renames it over `path` and fsyncs
/// the directory, so that after a crash `path` holds either its old bytes or `bytes`. The temp
/// file is removed when a step fails.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    syscompat::atomic::write_atomic(path, bytes, mode).map_err(atomic_error)
}

fn atomic_error(err: syscompat::atomic::AtomicError) -> Error {
    Error::Io {
        op: err.step,
        path: err.path,
        source: err.source,
    }
}

/// A file written to a temp name, renamed over its target by [`commit_together`].
pub(crate) type Staged = syscompat::atomic::AtomicFile;

/// Several [`write_atomic`]s, first half: every file written to its temp name, to be committed
/// with [`commit_together`].
pub(crate) fn stage_atomic(files: &[(&Path, &[u8], u32)]) -> Result<Vec<Staged>> {
    let mut staged = Vec::with_capacity(files.len());
    for &(path, bytes, mode) in files {
        let mut file = Staged::create(path, mode).map_err(atomic_error)?;
        file.write_all(bytes)
            .map_err(io_error("writing", file.temp_path()))?;
        staged.push(file);
    }
    Ok(staged)
}

/// Several [`write_atomic`]s, second half: about one journal commit for the files and one for
/// their directory (see `syscompat::atomic::commit_together`), renamed in the order given.
pub(crate) fn commit_together(staged: Vec<Staged>) -> Result<()> {
    syscompat::atomic::commit_together(staged).map_err(atomic_error)
}

/// [`commit_together`] of files a `syncfs` of their filesystem made durable after they were
/// written: renamed in order, directories synced.
pub(crate) fn commit_synced(staged: Vec<Staged>) -> Result<()> {
    syscompat::atomic::commit_synced(staged).map_err(atomic_error)
}

/// Whether `paths` all lie on the filesystem of `first` (`st_dev`, symlinks not followed).
pub(crate) fn same_filesystem(first: &Path, paths: &[&Path]) -> Result<bool> {
    let device = |path: &Path| {
        fs::symlink_metadata(path)
            .map(|metadata| std::os::unix::fs::MetadataExt::dev(&metadata))
            .map_err(io_error("reading", path))
    };
    let first = device(first)?;
    for path in paths {
        if device(path)? != first {
            return Ok(false);
        }
    }
    Ok(true)
}

/// fsync of a directory, so that a rename in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("syncing directory", dir))
}

/// Reads a small metadata file; `Ok(None)` when it does not exist. Only a regular file is read:
/// a symlink is refused (`O_NOFOLLOW`) and a FIFO or device is never waited on (`O_NONBLOCK`).
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>> {
    read_bytes_optional(path).map(|bytes| bytes.map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// [`read_optional`] as bytes.
pub(crate) fn read_bytes_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    use std::io::Read;
    // Opened as a path only and described first: a FIFO would block a read, and opening a
    // device node can act on the device, so only a regular file is opened for reading.
    let mut file = match open_regular(path) {
        Ok(file) => file,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None)
        }
        Err(err) => return Err(err),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(io_error("reading", path))?;
    Ok(Some(bytes))
}

/// Opens the regular file at `path` for reading without following a symlink in its last
/// component and without opening anything else (a FIFO, a device node): those are refused, naming
/// the path, as a symlink is.
pub fn open_regular(path: &Path) -> Result<fs::File> {
    let node = syscompat::Node::open_path(path)
        .map_err(|errno| refused_link(path, errno.into(), "opening"))?;
    match node.with_regular() {
        Ok((_, Some(file))) => Ok(fs::File::from(file)),
        Ok((node, None)) => Err(Error::NotReal {
            path: path.to_path_buf(),
            expected: "regular file",
            found: type_name(node.file_type()),
        }),
        Err(errno) => Err(io_error("opening", path)(errno.into())),
    }
}

/// How an error names a file type.
fn type_name(file_type: rustix::fs::FileType) -> &'static str {
    match file_type {
        rustix::fs::FileType::Symlink => "a symlink",
        rustix::fs::FileType::Directory => "a directory",
        rustix::fs::FileType::RegularFile => "a regular file",
        rustix::fs::FileType::Fifo => "a FIFO",
        rustix::fs::FileType::Socket => "a socket",
        _ => "a device node",
    }
}

/// The error of an `O_NOFOLLOW` open: `ELOOP` is a symlink where the format has a file.
fn refused_link(path: &Path, err: std::io::Error, op: &'static str) -> Error {
    if err.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        Error::NotReal {
            path: path.to_path_buf(),
            expected: "regular file",
            found: "a symlink",
        }
    } else {
        io_error(op, path)(err)
    }
}

/// Removes a directory tree (or a file, or a symlink itself); a missing one is fine. The tree is
/// removed through directory descriptors: no symlink in it is followed and no mount point
/// crossed (`below::remove_at`).
pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    crate::below::remove_path(path)
}

/// Removes a file; a missing one is fine.
pub(crate) fn remove_file(path: &Path) -> Result<()> {
    missing_is_fine(fs::remove_file(path), path)
}

fn missing_is_fine(result: std::io::Result<()>, path: &Path) -> Result<()> {
    match result {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
            op: "removing",
            path: path.to_path_buf(),
            source: err,
        }),
        _ => Ok(()),
    }
}

/// The entries of `dir` named by 64 lower-case hex digits (Docker ignores every other name there),
/// sorted; a missing `dir` has none.
pub(crate) fn hex64_entries(dir: &Path) -> Result<Vec<(String, fs::DirEntry)>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => {
            return Err(Error::Io {
                op: "listing",
                path: dir.to_path_buf(),
                source: err,
            })
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error("listing", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if crate::ids::is_hex64(&name) {
            out.push((name, entry));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The names in `dir`, sorted, as far as they can be read: a missing or unreadable `dir` has
/// none and an entry that cannot be read is passed over (for reports that go on past damage).
pub(crate) fn readable_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The names in `dir`, sorted; a missing `dir` has none. Names that are not UTF-8 are reported by
/// the callers' checks as unknown (their lossy form never matches an id).
pub(crate) fn sorted_names(dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(io_error("listing", dir)(err)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_error("listing", dir))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}
