//! layer-unpack: one streaming pass over a layer tar — sha256 (DiffID), tar parse, apply into the
//! layer's `diff/` with overlay whiteouts, tar-split record (spec §4.1, §5).
//!
//! CONTRACT:
//! - `Compression::detect` by magic; `decompress` wraps a reader accordingly.
//! - `unpack` reads an uncompressed tar, writes into `diff_dir` only through a directory fd with
//!   `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` / `O_NOFOLLOW`, records tar-split, drains the
//!   input to EOF, and returns the DiffID of every byte read.
//! - `diff_size` is Docker's native directory size (spec §1.2).
#![deny(unsafe_code)]

use std::io::{BufRead, Read, Write};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("layer-unpack: {0}")]
    Todo(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub fn detect(_prefix: &[u8]) -> Compression {
        todo!()
    }
}

/// Peeks at the stream's magic and returns a reader of the decompressed bytes.
pub fn decompress<'a>(_input: impl BufRead + 'a) -> Result<(Compression, Box<dyn Read + 'a>)> {
    todo!()
}

#[derive(Debug, Clone, Default)]
pub struct UnpackOptions {}

#[derive(Debug, Clone)]
pub struct UnpackReport {
    /// `sha256:<hex>` of the uncompressed tar stream.
    pub diff_id: String,
    pub tar_bytes: u64,
    pub n_entries: u64,
}

pub fn unpack<W: Write>(
    _tar: impl Read,
    _diff_dir: &Path,
    _tar_split: &mut tar_split::Packer<W>,
    _options: &UnpackOptions,
) -> Result<UnpackReport> {
    todo!()
}

/// Sum of `st_size` of every non-directory with size > 0 below `diff_dir`, each inode once.
pub fn diff_size(_diff_dir: &Path) -> Result<i64> {
    todo!()
}
