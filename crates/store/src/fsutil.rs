//! Small file helpers that set modes explicitly (the umask may be anything) and write atomically.

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

/// Creates `path` with `mode` unless it exists; sets the mode only on a new directory.
pub(crate) fn create_dir_mode(path: &Path, mode: u32) -> Result<bool> {
    match fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => {
            fs::set_permissions(path, fs::Permissions::from_mode(mode))
                .map_err(io_error("chmod", path))?;
            Ok(true)
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(false),
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

/// Writes a new file with `mode` (no temp file), optionally fsync'ed: Docker's plain writes.
pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32, sync: bool) -> Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(io_error("creating", path))?;
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_error("chmod", path))?;
    file.write_all(bytes).map_err(io_error("writing", path))?;
    if sync {
        file.sync_all().map_err(io_error("syncing", path))?;
    }
    Ok(())
}

/// Write temp in the same directory, fsync, chmod, rename, fsync directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().ok_or_else(|| Error::InvalidId {
        what: "path",
        value: path.display().to_string(),
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let suffix = crate::ids::random_hex(8)?;
    let temp = dir.join(format!(".tmp-{name}{suffix}"));
    let result = (|| {
        write_new(&temp, bytes, mode, true)?;
        fs::rename(&temp, path).map_err(io_error("renaming into place", path))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// fsync of a directory, so that a rename in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("syncing directory", dir))
}

/// Reads a small metadata file; `Ok(None)` when it does not exist.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(Error::Io {
            op: "reading",
            path: path.to_path_buf(),
            source: err,
        }),
    }
}

/// Removes a directory tree; a missing one is fine.
pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    missing_is_fine(fs::remove_dir_all(path), path)
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
