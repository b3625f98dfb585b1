//! Archive members as Docker's tar writer (moby `pkg/archive`, Go `archive/tar`) writes the
//! files of its save directory: `tar.FileInfoHeader` fields with the file-type bits in the mode,
//! owner root (uid and gid 0, names `root`), whole-second mtimes, USTAR headers encoded by
//! [`gotar`], and two zero blocks at the end.

use std::io::{self, Write};
use std::path::Path;

use crate::{Error, Result};

/// `S_IFDIR | 0755`: the mode Go's `tar.FileInfoHeader` records for Docker's save directories.
const DIR_MODE: i64 = 0o40755;
/// `S_IFREG | 0644`: the files Docker's save writes with `ioutil.WriteFile(…, 0644)`.
const FILE_MODE: i64 = 0o100644;
/// `S_IFLNK | 0777`: a symlink.
const SYMLINK_MODE: i64 = 0o120777;
/// The owner name Go's writer looks up for uid and gid 0.
const ROOT_NAME: &[u8] = b"root";

/// A tar being written to `out`; errors name `output`.
pub(crate) struct TarWriter<'a> {
    out: &'a mut dyn Write,
    output: &'a Path,
}

impl<'a> TarWriter<'a> {
    pub(crate) fn new(out: &'a mut dyn Write, output: &'a Path) -> TarWriter<'a> {
        TarWriter { out, output }
    }

    /// The output stream, for member data written by the caller after [`Self::file_header`].
    pub(crate) fn out(&mut self) -> &mut dyn Write {
        self.out
    }

    /// The output as named in error messages.
    pub(crate) fn output(&self) -> &Path {
        self.output
    }

    /// A directory member; `name` ends with `/`.
    pub(crate) fn dir(&mut self, name: &str, mtime: i64) -> Result<()> {
        self.header(name, gotar::typeflag::DIR, DIR_MODE, 0, mtime, "")
    }

    /// A regular file member with its data.
    pub(crate) fn file(&mut self, name: &str, data: &[u8], mtime: i64) -> Result<()> {
        self.file_header(name, data.len() as u64, mtime)?;
        self.write_all(name, data)?;
        self.pad(name, data.len() as u64)
    }

    /// A symlink member.
    pub(crate) fn symlink(&mut self, name: &str, target: &str, mtime: i64) -> Result<()> {
        self.header(
            name,
            gotar::typeflag::SYMLINK,
            SYMLINK_MODE,
            0,
            mtime,
            target,
        )
    }

    /// The header of a regular file of `size` bytes; the caller writes the data, then calls
    /// [`Self::pad`].
    pub(crate) fn file_header(&mut self, name: &str, size: u64, mtime: i64) -> Result<()> {
        let size = i64::try_from(size).map_err(|_| {
            self.error(
                name,
                io::Error::new(io::ErrorKind::InvalidInput, "member too large"),
            )
        })?;
        self.header(name, gotar::typeflag::REG, FILE_MODE, size, mtime, "")
    }

    /// The zero bytes that complete the last block of a member of `size` bytes.
    pub(crate) fn pad(&mut self, name: &str, size: u64) -> Result<()> {
        let padding = [0u8; gotar::BLOCK_LEN];
        let n_padding = gotar::padding(size);
        self.write_all(name, &padding[..n_padding])
    }

    /// The end-of-archive marker.
    pub(crate) fn finish(self) -> Result<()> {
        self.out
            .write_all(&gotar::END_OF_ARCHIVE)
            .and_then(|()| self.out.flush())
            .map_err(|source| Error::Write {
                output: self.output.to_path_buf(),
                operation: "writing the end of the archive".to_string(),
                source,
            })
    }

    fn header(
        &mut self,
        name: &str,
        typeflag: u8,
        mode: i64,
        size: i64,
        mtime: i64,
        linkname: &str,
    ) -> Result<()> {
        let header = gotar::Header {
            name: name.as_bytes().to_vec(),
            typeflag,
            mode,
            size,
            mtime,
            linkname: linkname.as_bytes().to_vec(),
            uname: ROOT_NAME.to_vec(),
            gname: ROOT_NAME.to_vec(),
            ..gotar::Header::default()
        };
        let bytes = header
            .encode()
            .map_err(|err| self.error(name, io::Error::other(err)))?;
        self.write_all(name, &bytes)
    }

    fn write_all(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|source| self.error(name, source))
    }

    fn error(&self, member: &str, source: io::Error) -> Error {
        Error::Write {
            output: self.output.to_path_buf(),
            operation: format!("writing member {member}"),
            source,
        }
    }
}
