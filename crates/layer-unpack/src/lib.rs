//! layer-unpack: one streaming pass over a layer tar — sha256 (DiffID), tar parse, apply into the
//! layer's `diff/` with overlay whiteouts, tar-split record (format.md §6.1, §7).
//!
//! - [`Compression::detect`] recognises gzip and zstd by their magic; [`decompress`] wraps a
//!   reader accordingly.
//! - [`unpack`] reads an uncompressed tar, writes into `diff_dir` only through a directory fd with
//!   paths resolved inside it (`syscompat::Resolver`: `openat2(RESOLVE_IN_ROOT |
//!   RESOLVE_NO_MAGICLINKS)` or its userspace walk) and `O_NOFOLLOW`, records tar-split exactly as
//!   Docker segments it, drains the input to EOF, and returns the DiffID of every byte read.
//! - [`diff_size`] is Docker's native directory size (format.md §3.2).
//!
//! Inside, a reading thread reads, decompresses and hashes the stream (`read_ahead`), and the
//! calling thread applies it; the work there is split into decoding headers with Go's `archive/tar` rules (`header`),
//! deciding what a member does to the layer without touching it (`plan`), and an executor that
//! only uses descriptors (`apply`); `archive` drives the three over the stream. The two raw
//! syscalls the executor needs (`fchmodat2`, `setxattrat`) are in `sys`.
#![deny(unsafe_code)]

mod apply;
pub use tree::{ExpectedTree, Mismatches};
mod archive;
mod header;
mod plan;
mod read_ahead;
mod size;
mod sys;
mod tree;
mod writers;

use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};

/// Errors of this crate. `entry` is the member name as decoded from the archive, lossily
/// converted to UTF-8; `offset` is a byte offset in the uncompressed tar stream.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to open layer directory {path}")]
    OpenLayerDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("failed to read layer tar at offset {offset}")]
    Read {
        offset: u64,
        #[source]
        source: io::Error,
    },
    #[error("failed to read the layer stream: {reason}")]
    Reader { reason: &'static str },
    #[error("layer tar is truncated in {entry:?} at offset {offset}")]
    Truncated { entry: String, offset: u64 },
    #[error("invalid tar header at offset {offset}: {reason}")]
    InvalidHeader { offset: u64, reason: String },
    #[error("invalid tar entry {entry:?}: {reason}")]
    InvalidEntry { entry: String, reason: String },
    #[error("duplicates of file paths not supported: {entry:?}")]
    DuplicatePath { entry: String },
    #[error("failed to {operation} for {entry:?}")]
    Apply {
        entry: String,
        operation: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("failed to record tar-split for {entry:?}")]
    TarSplit {
        entry: String,
        #[source]
        source: tar_split::Error,
    },
    #[error("failed to set up decompression ({operation})")]
    Decompress {
        operation: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("failed to measure the size of {path} ({operation})")]
    Size {
        path: PathBuf,
        operation: &'static str,
        #[source]
        source: io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The compression of a layer blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The gzip member header's first two bytes (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// The zstd frame magic number 0xFD2FB528, little-endian (RFC 8878).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

impl Compression {
    /// Recognises the compression from the first bytes of a stream (four are enough); anything
    /// else, including a shorter prefix, is taken as uncompressed.
    pub fn detect(prefix: &[u8]) -> Compression {
        if prefix.starts_with(&GZIP_MAGIC) {
            Compression::Gzip
        } else if prefix.starts_with(&ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Peeks at the stream's magic and returns a reader of the decompressed bytes. Concatenated gzip
/// members and zstd frames are all decoded.
pub fn decompress<'a>(
    mut input: impl BufRead + Send + 'a,
) -> Result<(Compression, Box<dyn Read + Send + 'a>)> {
    // `fill_buf` may hold fewer bytes than the magic has, so the prefix is read and put back in
    // front of the rest of the stream.
    let mut prefix = [0u8; ZSTD_MAGIC.len()];
    let n_prefix =
        archive::read_full(&mut input, &mut prefix).map_err(|source| Error::Decompress {
            operation: "read magic",
            source,
        })?;
    let compression = Compression::detect(&prefix[..n_prefix]);
    let stream = io::Cursor::new(prefix[..n_prefix].to_vec()).chain(input);
    let reader: Box<dyn Read + Send + 'a> = match compression {
        Compression::None => Box::new(stream),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(stream)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(stream).map_err(
            |source| Error::Decompress {
                operation: "start zstd decoder",
                source,
            },
        )?),
    };
    Ok((compression, reader))
}

/// Options of [`unpack`].
#[derive(Debug, Clone, Default)]
pub struct UnpackOptions {
    /// Writer threads that finish small files (data, owner, mode, times) while the archive is
    /// read: `None` picks one per CPU beyond the first, at most [`MAX_WRITERS`]; `Some(0)` does
    /// everything on the calling thread.
    pub writers: Option<usize>,
    /// How member paths are resolved inside the layer directory.
    pub resolver: syscompat::Resolver,
    /// The most bytes the sparse files of the layer may declare (their real sizes added up),
    /// checked before each one is written: the CLI's `--max-layer-size`. `None` is no limit
    /// (then the file system's largest file size still bounds each of them).
    pub max_layer_size: Option<u64>,
}

/// More writer threads than this do not help: file creation itself stays on one thread.
pub const MAX_WRITERS: usize = 4;

impl UnpackOptions {
    pub(crate) fn writers(&self) -> usize {
        self.writers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, std::num::NonZeroUsize::get)
                .saturating_sub(1)
                .clamp(1, MAX_WRITERS)
        })
    }
}

#[derive(Debug, Clone)]
pub struct UnpackReport {
    /// `sha256:<hex>` of the uncompressed tar stream.
    pub diff_id: String,
    /// The number of bytes read, trailing data after the end-of-archive marker included.
    pub tar_bytes: u64,
    /// The number of members recorded as tar-split file entries (PAX global headers included).
    pub n_entries: u64,
    /// Docker's `size` of the layer (format.md §3.2), what [`diff_size`] finds: taken from the
    /// members as they were written (file lengths, sparse files' real sizes, symlink target
    /// lengths; hardlinks add no inode), or from a walk of the layer when a member removed or
    /// replaced something an earlier one had written.
    pub size: i64,
}

/// Applies the uncompressed layer tar `tar` to `diff_dir` and records its tar-split entries.
///
/// All of `tar` is read, also past the end-of-archive marker, and hashed, on a thread of its own:
/// pass the decompressing reader of [`decompress`] so that decompression runs there as well. The caller finishes
/// `tar_split` afterwards with [`tar_split::Packer::finish`], which writes the closing (empty)
/// segment as Docker does. On error, `diff_dir` holds a partial layer and should be discarded.
pub fn unpack<W: Write>(
    tar: impl Read + Send,
    diff_dir: &Path,
    tar_split: &mut tar_split::Packer<W>,
    options: &UnpackOptions,
) -> Result<UnpackReport> {
    archive::unpack(tar, diff_dir, tar_split, options)
}

/// Reads the uncompressed layer tar `tar` as [`unpack`] does (hashed, checked, recorded into
/// `tar_split`) without writing any file: the record of a tar whose tree already exists, such as
/// the tar of a directory that becomes a layer as it is. The report's `size` is counted from the
/// members, which is the tree's size when the tar is one tree's (no member replaces another).
pub fn record<W: Write>(
    tar: impl Read + Send,
    tar_split: &mut tar_split::Packer<W>,
    options: &UnpackOptions,
) -> Result<UnpackReport> {
    archive::record(tar, tar_split, options)
}

/// Reads the uncompressed layer tar `tar` as [`record`] does into the tree unpacking it leaves
/// ([`ExpectedTree`], without times and most xattrs), to compare a layer directory with. The
/// report's `size` is 0.
pub fn expected_tree(
    tar: impl Read + Send,
    options: &UnpackOptions,
) -> Result<(UnpackReport, ExpectedTree)> {
    archive::expected_tree(tar, options)
}

/// Sum of `st_size` of every non-directory with size > 0 below `diff_dir`, each inode once.
pub fn diff_size(diff_dir: &Path) -> Result<i64> {
    size::dir_size(diff_dir).map_err(|(operation, source)| Error::Size {
        path: diff_dir.to_path_buf(),
        operation,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_compression_by_magic() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8, 0]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(&[0x28, 0xb5, 0x2f]), Compression::None);
        assert_eq!(Compression::detect(b"ustar"), Compression::None);
        assert_eq!(Compression::detect(&[]), Compression::None);
    }
}
