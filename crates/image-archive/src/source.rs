//! Member access: a tar archive indexed once and read by offset, or an OCI layout directory read
//! through `openat` without following symlinks.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use rustix::fs::{Mode, OFlags, CWD};

use crate::digest::MAX_JSON_SIZE;
use crate::{Error, Result};

/// The gzip magic number (RFC 1952, section 2.3.1).
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
/// The zstd frame magic number, little-endian 0xFD2FB528 (RFC 8878, section 3.1.1).
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
/// Tar archives are made of 512-byte blocks; every member's data is padded to a whole block.
const TAR_BLOCK_SIZE: u64 = 512;
/// How many links a member lookup follows before giving up, as Linux does for paths (MAXSYMLINKS).
const MAX_LINK_HOPS: usize = 40;

/// Where members come from.
#[derive(Debug)]
pub(crate) enum Source {
    Tar(TarSource),
    Dir(DirSource),
}

impl Source {
    /// Opens a directory as an OCI layout, or indexes a file as a (possibly compressed) tar.
    pub(crate) fn open(path: &Path, scratch_dir: &Path) -> Result<Source> {
        let io_err = |operation, source| Error::Io {
            archive: path.to_path_buf(),
            operation,
            source,
        };
        let metadata = std::fs::metadata(path).map_err(|e| io_err("reading metadata", e))?;
        if metadata.is_dir() {
            let dir = rustix::fs::openat(
                CWD,
                path,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| io_err("opening layout directory", e.into()))?;
            return Ok(Source::Dir(DirSource { dir }));
        }
        let mut file = File::open(path).map_err(|e| io_err("opening", e))?;
        let mut magic = [0u8; 4];
        let n_magic = read_up_to(&mut file, &mut magic).map_err(|e| io_err("reading", e))?;
        let magic = &magic[..n_magic];
        file.seek(SeekFrom::Start(0))
            .map_err(|e| io_err("seeking", e))?;
        let (file, temp) = if magic.starts_with(GZIP_MAGIC) {
            tracing::debug!(archive = %path.display(), "decompressing gzip'd archive into scratch dir");
            let decoder = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
            let temp = decompress_to_temp(path, scratch_dir, decoder)?;
            (
                temp.as_file()
                    .try_clone()
                    .map_err(|e| io_err("cloning temp file handle", e))?,
                Some(temp),
            )
        } else if magic.starts_with(ZSTD_MAGIC) {
            tracing::debug!(archive = %path.display(), "decompressing zstd archive into scratch dir");
            let decoder =
                zstd::stream::read::Decoder::new(file).map_err(|e| io_err("starting zstd", e))?;
            let temp = decompress_to_temp(path, scratch_dir, decoder)?;
            (
                temp.as_file()
                    .try_clone()
                    .map_err(|e| io_err("cloning temp file handle", e))?,
                Some(temp),
            )
        } else {
            (file, None)
        };
        let mut file = file;
        // The decompressed copy shares its offset with the handle that wrote it.
        file.seek(SeekFrom::Start(0))
            .map_err(|e| io_err("seeking", e))?;
        let members = index_tar(path, &file)?;
        Ok(Source::Tar(TarSource {
            file: Arc::new(file),
            members,
            _temp: temp,
        }))
    }
}

/// A tar archive indexed by normalized member name.
#[derive(Debug)]
pub(crate) struct TarSource {
    file: Arc<File>,
    members: HashMap<String, TarMember>,
    /// The decompressed copy of a compressed archive; deleted when dropped.
    _temp: Option<tempfile::NamedTempFile>,
}

impl TarSource {
    pub(crate) fn contains(&self, name: &str) -> bool {
        self.members.contains_key(name)
    }
}

#[derive(Debug, Clone)]
struct TarMember {
    offset: u64,
    size: u64,
    kind: MemberKind,
}

#[derive(Debug, Clone)]
enum MemberKind {
    File,
    /// A symlink with its target, relative to the member's own directory.
    Symlink(String),
    /// A hard link with its target, relative to the archive root.
    HardLink(String),
    Other,
}

/// An OCI layout directory, held open so that later lookups cannot be redirected.
#[derive(Debug)]
pub(crate) struct DirSource {
    dir: OwnedFd,
}

/// Member access with the archive path at hand for error messages.
pub(crate) struct MemberReader<'a> {
    pub(crate) archive: &'a Path,
    pub(crate) source: &'a Source,
}

impl MemberReader<'_> {
    /// Validates a member path named by manifest.json or index.json and returns it normalized
    /// (`./x` and `x` are the same member). Absolute paths and `..` components are refused.
    pub(crate) fn checked_reference(&self, name: &str) -> Result<String> {
        normalize_reference(name).ok_or_else(|| Error::UnsafeMemberPath {
            archive: self.archive.to_path_buf(),
            member: name.to_string(),
        })
    }

    /// Opens a member (already normalized) as a bounded reader and returns it with its size.
    pub(crate) fn open(&self, member: &str) -> Result<(Box<dyn Read + Send>, u64)> {
        match self.source {
            Source::Tar(tar) => {
                let found = self.resolve(tar, member)?;
                let reader = BoundedReader {
                    file: Arc::clone(&tar.file),
                    offset: found.offset,
                    remaining: found.size,
                };
                Ok((Box::new(reader), found.size))
            }
            Source::Dir(dir) => {
                let file = self.open_in_dir(dir, member)?;
                let size = file
                    .metadata()
                    .map_err(|source| self.member_io(member, "reading metadata", source))?
                    .len();
                Ok((Box::new(file), size))
            }
        }
    }

    /// Whether `member` can be opened as a regular file (following links inside the archive).
    pub(crate) fn check(&self, member: &str) -> Result<()> {
        self.open(member).map(drop)
    }

    /// Reads a whole JSON member, refusing members larger than [`MAX_JSON_SIZE`].
    pub(crate) fn read_json_bytes(&self, member: &str) -> Result<Vec<u8>> {
        let (reader, size) = self.open(member)?;
        let too_large = |size| Error::TooLarge {
            archive: self.archive.to_path_buf(),
            member: member.to_string(),
            size,
            limit: MAX_JSON_SIZE,
        };
        if size > MAX_JSON_SIZE {
            return Err(too_large(size));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        // One byte more than the limit tells a file that grew after its size was read.
        reader
            .take(MAX_JSON_SIZE + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| self.member_io(member, "reading", source))?;
        if bytes.len() as u64 > MAX_JSON_SIZE {
            return Err(too_large(bytes.len() as u64));
        }
        Ok(bytes)
    }

    /// Parses JSON bytes read from `member`, naming it on error.
    pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
        &self,
        member: &str,
        bytes: &[u8],
    ) -> Result<T> {
        serde_json::from_slice(bytes).map_err(|source| Error::InvalidJson {
            archive: self.archive.to_path_buf(),
            member: member.to_string(),
            source,
        })
    }

    fn member_io(&self, member: &str, operation: &'static str, source: std::io::Error) -> Error {
        Error::MemberIo {
            archive: self.archive.to_path_buf(),
            member: member.to_string(),
            operation,
            source,
        }
    }

    /// Follows symlinks and hard links inside the archive until a regular file is reached.
    fn resolve<'t>(&self, tar: &'t TarSource, member: &str) -> Result<&'t TarMember> {
        let mut current = member.to_string();
        for _ in 0..MAX_LINK_HOPS {
            let found = tar
                .members
                .get(&current)
                .ok_or_else(|| Error::MissingMember {
                    archive: self.archive.to_path_buf(),
                    member: if current == member {
                        current.clone()
                    } else {
                        format!("{current} (link target of {member})")
                    },
                })?;
            let link_error = |target: &str, absolute: bool| {
                let (archive, member, link, target) = (
                    self.archive.to_path_buf(),
                    member.to_string(),
                    current.clone(),
                    target.to_string(),
                );
                if absolute {
                    Error::AbsoluteLink {
                        archive,
                        member,
                        link,
                        target,
                    }
                } else {
                    Error::LinkOutsideArchive {
                        archive,
                        member,
                        link,
                        target,
                    }
                }
            };
            current = match &found.kind {
                MemberKind::File => return Ok(found),
                MemberKind::Other => {
                    return Err(Error::NotAFile {
                        archive: self.archive.to_path_buf(),
                        member: current,
                    })
                }
                MemberKind::Symlink(target) => {
                    if target.starts_with('/') {
                        return Err(link_error(target, true));
                    }
                    let mut parts: Vec<&str> = current.split('/').collect();
                    parts.pop();
                    for component in target.split('/') {
                        match component {
                            "" | "." => {}
                            ".." => {
                                if parts.pop().is_none() {
                                    return Err(link_error(target, false));
                                }
                            }
                            name => parts.push(name),
                        }
                    }
                    parts.join("/")
                }
                MemberKind::HardLink(target) => {
                    if target.starts_with('/') {
                        return Err(link_error(target, true));
                    }
                    normalize_reference(target).ok_or_else(|| link_error(target, false))?
                }
            };
        }
        Err(Error::LinkLoop {
            archive: self.archive.to_path_buf(),
            member: member.to_string(),
        })
    }

    /// Opens a layout file one component at a time, never following a symlink.
    fn open_in_dir(&self, dir: &DirSource, member: &str) -> Result<File> {
        let components: Vec<&str> = member.split('/').collect();
        let convert = |errno: rustix::io::Errno| -> Error {
            if errno == rustix::io::Errno::NOENT {
                Error::MissingMember {
                    archive: self.archive.to_path_buf(),
                    member: member.to_string(),
                }
            } else if errno == rustix::io::Errno::LOOP || errno == rustix::io::Errno::NOTDIR {
                // With O_NOFOLLOW a symlink in the way shows up as ELOOP (final component) or
                // ENOTDIR (a directory component opened with O_DIRECTORY).
                Error::NotAFile {
                    archive: self.archive.to_path_buf(),
                    member: member.to_string(),
                }
            } else {
                self.member_io(member, "opening", errno.into())
            }
        };
        let Some((file_name, parents)) = components.split_last() else {
            return Err(Error::UnsafeMemberPath {
                archive: self.archive.to_path_buf(),
                member: member.to_string(),
            });
        };
        let mut current: Option<OwnedFd> = None;
        for component in parents {
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::DIRECTORY | OFlags::CLOEXEC;
            let fd = match &current {
                None => rustix::fs::openat(&dir.dir, *component, flags, Mode::empty()),
                Some(parent) => rustix::fs::openat(parent, *component, flags, Mode::empty()),
            }
            .map_err(convert)?;
            current = Some(fd);
        }
        // The file itself is opened only if it is a regular file: a FIFO or device node in a
        // layout directory is refused without being opened (which could block, or act).
        let name = std::ffi::CString::new(*file_name).map_err(|_| Error::UnsafeMemberPath {
            archive: self.archive.to_path_buf(),
            member: member.to_string(),
        })?;
        let parent = current.as_ref().map_or(dir.dir.as_fd(), |fd| fd.as_fd());
        let (_, file) = syscompat::open_regular_at(parent, &name).map_err(convert)?;
        let Some(file) = file else {
            return Err(Error::NotAFile {
                archive: self.archive.to_path_buf(),
                member: member.to_string(),
            });
        };
        Ok(File::from(file))
    }
}

/// Normalizes a relative member path: drops `.` and empty components; refuses absolute paths,
/// `..` components and paths that name nothing.
fn normalize_reference(name: &str) -> Option<String> {
    if name.starts_with('/') {
        return None;
    }
    let mut parts = Vec::new();
    for component in name.split('/') {
        match component {
            "" | "." => {}
            ".." => return None,
            part => parts.push(part),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// A member's data: `remaining` bytes at `offset` of the shared archive file. Positioned reads
/// keep readers of different members independent of each other.
struct BoundedReader {
    file: Arc<File>,
    offset: u64,
    remaining: u64,
}

impl Read for BoundedReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let n_read = self.file.read_at(&mut buf[..want], self.offset)?;
        if n_read == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "archive ends inside the member",
            ));
        }
        self.offset += n_read as u64;
        self.remaining -= n_read as u64;
        Ok(n_read)
    }
}

/// Reads into `buf` until it is full or the input ends; returns how much was read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Decompresses a whole archive into a temp file inside `scratch_dir`.
fn decompress_to_temp(
    path: &Path,
    scratch_dir: &Path,
    mut decoder: impl Read,
) -> Result<tempfile::NamedTempFile> {
    let mut temp = tempfile::Builder::new()
        .prefix("image-archive-")
        .tempfile_in(scratch_dir)
        .map_err(|source| Error::Io {
            archive: path.to_path_buf(),
            operation: "creating temp file in scratch dir",
            source,
        })?;
    let mut writer = std::io::BufWriter::new(temp.as_file_mut());
    std::io::copy(&mut decoder, &mut writer)
        .and_then(|_| writer.flush())
        .map_err(|source| Error::Io {
            archive: path.to_path_buf(),
            operation: "decompressing archive",
            source,
        })?;
    drop(writer);
    Ok(temp)
}

/// Indexes a tar archive without unpacking it: name → data offset, size, type, link target.
/// Every member's data (with its block padding) must lie within the file, so a truncated archive
/// is reported here rather than half-way through a load.
fn index_tar(path: &Path, file: &File) -> Result<HashMap<String, TarMember>> {
    let tar_error = |source| Error::Tar {
        archive: path.to_path_buf(),
        source,
    };
    let file_len = file
        .metadata()
        .map_err(|source| Error::Io {
            archive: path.to_path_buf(),
            operation: "reading metadata",
            source,
        })?
        .len();
    let mut archive = tar::Archive::new(file);
    let mut members = HashMap::new();
    // Where the data of the last member (with its padding) ends: the end-of-archive marker must
    // follow there.
    let mut end_of_members = 0;
    let mut last_member = None;
    for entry in archive.entries_with_seek().map_err(tar_error)? {
        let entry = entry.map_err(tar_error)?;
        let raw_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let offset = entry.raw_file_position();
        let size = entry.size();
        let needed = size
            .div_ceil(TAR_BLOCK_SIZE)
            .checked_mul(TAR_BLOCK_SIZE)
            .and_then(|padded| padded.checked_add(offset))
            .unwrap_or(u64::MAX);
        if needed > file_len {
            return Err(Error::Truncated {
                archive: path.to_path_buf(),
                member: raw_name,
                needed,
                available: file_len,
            });
        }
        end_of_members = end_of_members.max(needed);
        last_member = Some(raw_name.clone());
        let entry_type = entry.header().entry_type();
        let link_target = || {
            entry
                .link_name_bytes()
                .map(|target| String::from_utf8_lossy(&target).into_owned())
                .unwrap_or_default()
        };
        let kind = match entry_type {
            tar::EntryType::Regular | tar::EntryType::Continuous => MemberKind::File,
            tar::EntryType::Symlink => MemberKind::Symlink(link_target()),
            tar::EntryType::Link => MemberKind::HardLink(link_target()),
            _ => MemberKind::Other,
        };
        // Member names in the archive itself are taken as tar does: a leading `/` is dropped.
        // Names with `..` can never be referenced and are left out of the index.
        let Some(name) = normalize_reference(raw_name.trim_start_matches('/')) else {
            tracing::debug!(archive = %path.display(), member = %raw_name, "skipping unreachable member");
            continue;
        };
        // Like extraction, a later member of the same name replaces an earlier one.
        members.insert(name, TarMember { offset, size, kind });
    }
    // The tar crate, like Go's archive/tar, takes end of file at a block boundary for the end of
    // the archive. Every writer of image archives ends them with zero blocks, so a file that stops
    // right after a member's data was cut there, and what followed (manifest.json, last in
    // `docker save` output) is missing.
    if file_len < end_of_members.saturating_add(TAR_BLOCK_SIZE) {
        return Err(Error::MissingEndOfArchive {
            archive: path.to_path_buf(),
            last_member,
            offset: end_of_members,
        });
    }
    Ok(members)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_reference_handles_dot_and_refuses_escapes() {
        assert_eq!(normalize_reference("./a/b").as_deref(), Some("a/b"));
        assert_eq!(normalize_reference("a//./b/").as_deref(), Some("a/b"));
        assert_eq!(normalize_reference("../a"), None);
        assert_eq!(normalize_reference("a/../../b"), None);
        assert_eq!(normalize_reference("/etc/passwd"), None);
        assert_eq!(normalize_reference("./"), None);
        assert_eq!(normalize_reference(""), None);
    }
}
