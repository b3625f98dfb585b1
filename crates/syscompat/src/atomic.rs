//! The one way ovl replaces a file: write a temp name beside it, fsync the file, rename it over
//! the target and fsync the directory, so that after a crash the target holds either its old
//! bytes or all of the new ones. A temp file that is not committed is removed when dropped.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsFd as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

/// A step of [`AtomicFile`] that failed, with the path it was working on.
#[derive(Debug, thiserror::Error)]
#[error("{step} {}: {source}", path.display())]
pub struct AtomicError {
    /// What was being done: `creating`, `chmod`, `writing`, `syncing`, `renaming into place`,
    /// `syncing directory`.
    pub step: &'static str,
    /// The temp file, the target or the directory.
    pub path: PathBuf,
    /// The system's error.
    pub source: io::Error,
}

/// A file being written under a temp name beside `path`; [`AtomicFile::commit`] puts it in
/// place.
#[derive(Debug)]
pub struct AtomicFile {
    file: File,
    temp: PathBuf,
    path: PathBuf,
    committed: bool,
}

impl AtomicFile {
    /// Creates the temp file `.<name>.tmp-<16 random hex digits>` in `path`'s directory,
    /// exclusively and without following a symlink, with `mode` (umask ignored).
    pub fn create(path: &Path, mode: u32) -> Result<AtomicFile, AtomicError> {
        let error = |step, path: &Path| {
            let path = path.to_path_buf();
            move |source| AtomicError { step, path, source }
        };
        let dir = parent_dir(path);
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))
            .map_err(error("creating", path))?;
        let mut random = [0u8; 8];
        crate::fill_random(&mut random).map_err(error("creating", path))?;
        let suffix: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
        let temp = dir.join(format!(".{}.tmp-{suffix}", name.to_string_lossy()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temp)
            .map_err(error("creating", &temp))?;
        let staged = AtomicFile {
            file,
            temp,
            path: path.to_path_buf(),
            committed: false,
        };
        staged
            .file
            .set_permissions(fs::Permissions::from_mode(mode))
            .map_err(error("chmod", &staged.temp))?;
        Ok(staged)
    }

    /// The temp file's path.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// The open temp file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// fsyncs the temp file, renames it over the target and fsyncs the directory.
    pub fn commit(self) -> Result<(), AtomicError> {
        commit_together(vec![self])
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// fsyncs `files` so that one journal commit can make them all durable: the writeback of every
/// file starts before the first fsync waits, so its block allocations join the commit that fsync
/// makes, and the fsyncs after it find their files on disk already (on ext4, N small files take
/// one commit instead of N). On failure: the index of the file whose fsync failed.
pub fn sync_together(files: &[&File]) -> Result<(), (usize, io::Error)> {
    for file in files {
        crate::sys::start_writeback(file.as_fd());
    }
    for (index, file) in files.iter().enumerate() {
        file.sync_all().map_err(|err| (index, err))?;
    }
    Ok(())
}

/// Commits several [`AtomicFile`]s with the journal commits of about one: every temp file is
/// synced together ([`sync_together`]), then each renamed over its target in order, then each
/// directory synced once. A failure stops there: targets renamed before it hold their new bytes,
/// the others their old ones, and the temp files not renamed are removed.
pub fn commit_together(files: Vec<AtomicFile>) -> Result<(), AtomicError> {
    let handles: Vec<&File> = files.iter().map(|staged| &staged.file).collect();
    sync_together(&handles).map_err(|(index, source)| AtomicError {
        step: "syncing",
        path: files[index].temp.clone(),
        source,
    })?;
    commit_synced(files)
}

/// [`commit_together`] of temp files that are durable already: the caller synced their whole
/// filesystem (`syncfs`) after they were written. Renamed in order, then each directory synced.
pub fn commit_synced(files: Vec<AtomicFile>) -> Result<(), AtomicError> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for mut staged in files {
        fs::rename(&staged.temp, &staged.path).map_err(|source| AtomicError {
            step: "renaming into place",
            path: staged.path.clone(),
            source,
        })?;
        staged.committed = true;
        let dir = parent_dir(&staged.path).to_path_buf();
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    for dir in dirs {
        File::open(&dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|source| AtomicError {
                step: "syncing directory",
                path: dir.clone(),
                source,
            })?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically with `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), AtomicError> {
    let mut staged = AtomicFile::create(path, mode)?;
    staged.write_all(bytes).map_err(|source| AtomicError {
        step: "writing",
        path: staged.temp.clone(),
        source,
    })?;
    staged.commit()
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;
    use treedump::fixture::names;

    #[test]
    fn replaces_the_file_with_the_mode_and_leaves_no_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("repositories.json");
        fs::write(&path, b"old").expect("write");
        write_atomic(&path, b"new", 0o600).expect("write_atomic");
        assert_eq!(fs::read(&path).expect("read"), b"new");
        assert_eq!(fs::metadata(&path).expect("stat").mode() & 0o7777, 0o600);
        assert_eq!(names(dir.path()), ["repositories.json"]);
    }

    #[test]
    fn an_uncommitted_file_is_removed_and_the_target_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out.tar");
        fs::write(&path, b"old").expect("write");
        let mut staged = AtomicFile::create(&path, 0o644).expect("create");
        staged.write_all(b"partial").expect("write");
        assert!(staged.temp_path().exists());
        drop(staged);
        assert_eq!(fs::read(&path).expect("read"), b"old");
        assert_eq!(names(dir.path()), ["out.tar"]);
    }

    #[test]
    fn committed_together_every_target_holds_its_bytes_and_no_temp_is_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (
            dir.path().join("config.v2.json"),
            dir.path().join("hostconfig.json"),
        );
        fs::write(&b, b"old").expect("write");
        let mut staged = Vec::new();
        for (path, bytes, mode) in [(&a, b"one", 0o600), (&b, b"two", 0o644)] {
            let mut file = AtomicFile::create(path, mode).expect("create");
            file.write_all(bytes).expect("write");
            staged.push(file);
        }
        commit_together(staged).expect("commit_together");
        assert_eq!(fs::read(&a).expect("read"), b"one");
        assert_eq!(fs::read(&b).expect("read"), b"two");
        assert_eq!(fs::metadata(&a).expect("stat").mode() & 0o7777, 0o600);
        assert_eq!(fs::metadata(&b).expect("stat").mode() & 0o7777, 0o644);
        assert_eq!(names(dir.path()), ["config.v2.json", "hostconfig.json"]);
    }

    #[test]
    fn a_failed_rename_keeps_the_later_targets_and_removes_their_temps() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::write(&b, b"old").expect("write");
        let mut first = AtomicFile::create(&a, 0o644).expect("create");
        first.write_all(b"new").expect("write");
        let mut second = AtomicFile::create(&b, 0o644).expect("create");
        second.write_all(b"new").expect("write");
        // A directory where the first target goes: its rename fails.
        fs::create_dir(&a).expect("mkdir");
        fs::write(a.join("x"), b"").expect("write");
        let err = commit_together(vec![first, second]).expect_err("rename over a directory");
        assert_eq!(err.step, "renaming into place");
        assert_eq!(fs::read(&b).expect("read"), b"old");
        assert_eq!(names(dir.path()), ["a", "b"]);
    }

    #[test]
    fn a_missing_directory_names_the_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = write_atomic(&dir.path().join("gone/file"), b"x", 0o644).expect_err("fails");
        assert_eq!(err.step, "creating");
        assert!(err.path.starts_with(dir.path().join("gone")), "{err}");
    }
}
