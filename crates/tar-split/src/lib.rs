//! tar-split: the metadata Docker keeps beside each layer so that the original layer tar can be
//! reassembled byte for byte from the unpacked `diff/` directory (format.md §7).
//!
//! - [`Crc64`]: CRC-64/GO-ISO, check("123456789") = 0xB90956C775A41001.
//! - [`Packer`]: writes gzip (Go header `1f 8b 08 00 00000000 00 ff`) NDJSON entries exactly as
//!   Go's tar-split does. Raw bytes handed to `add_segment` are buffered and coalesced until the
//!   next `add_file`, `flush_segment` or `finish`, which emit one segment entry.
//! - [`Unpacker`]: iterates the entries of a `tar-split.json.gz` stream (`name_raw` decoded).
//! - [`reassemble`]: rebuilds the tar from the entries and the files below `layer_root`, opened
//!   inside the layer root (`syscompat::Resolver`: `openat2(RESOLVE_IN_ROOT |
//!   RESOLVE_NO_MAGICLINKS)` or its userspace walk), checking each file's CRC.
//!
//! Both the packer and the unpacker reject a second file entry whose name, cleaned like Go's
//! `filepath.Clean`, repeats an earlier one, as Docker does (`duplicates of file paths not
//! supported`).
#![deny(unsafe_code)]

mod crc64;
mod name_set;
mod pack;
mod reassemble;
mod unpack;

use std::io;

pub use crc64::Crc64;
pub use name_set::NameSet;
pub use pack::Packer;
pub use reassemble::{reassemble, reassembled_len};
pub use unpack::Unpacker;

/// The `type` value of a file entry (Go's `storage.FileType`).
pub const FILE_TYPE: u8 = 1;
/// The `type` value of a segment entry (Go's `storage.SegmentType`).
pub const SEGMENT_TYPE: u8 = 2;

/// Errors of this crate. `position` is always the 0-based index of the entry in the stream, which
/// is the `position` field a well-formed stream carries; `name` is the entry name, lossily decoded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to write tar-split stream ({operation})")]
    WriteStream {
        operation: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("failed to read tar-split stream at position {position}")]
    ReadStream {
        position: u64,
        #[source]
        source: io::Error,
    },
    #[error("malformed tar-split entry at position {position}: {reason}")]
    MalformedEntry { position: u64, reason: String },
    #[error("duplicates of file paths not supported: {name:?} at position {position}")]
    DuplicatePath { name: String, position: u64 },
    #[error("file entry {name:?} at position {position} has size {size}, larger than tar allows")]
    SizeTooLarge {
        name: String,
        position: u64,
        size: u64,
    },
    #[error("file entry {name:?} at position {position} has data but no checksum")]
    MissingChecksum { name: String, position: u64 },
    #[error("failed to open {name:?} (position {position}) below the layer root")]
    OpenFile {
        name: String,
        position: u64,
        #[source]
        source: io::Error,
    },
    #[error("{name:?} (position {position}) below the layer root is not a regular file")]
    NotRegularFile { name: String, position: u64 },
    #[error("failed to read {name:?} (position {position}) below the layer root")]
    ReadFile {
        name: String,
        position: u64,
        #[source]
        source: io::Error,
    },
    #[error("{name:?} (position {position}) is shorter than its recorded size: {actual} of {expected} bytes")]
    ShortFile {
        name: String,
        position: u64,
        expected: u64,
        actual: u64,
    },
    #[error("{name:?} (position {position}) is longer than its recorded size of {expected} bytes")]
    LongFile {
        name: String,
        position: u64,
        expected: u64,
    },
    #[error(
        "file integrity checksum failed for {name:?} (position {position}): expected {expected:016x}, got {actual:016x}"
    )]
    ChecksumMismatch {
        name: String,
        position: u64,
        expected: u64,
        actual: u64,
    },
    #[error("failed to write reassembled tar at position {position}")]
    WriteOutput {
        position: u64,
        #[source]
        source: io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One tar-split record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Raw archive bytes (padding, extended headers, the next header).
    Segment { payload: Vec<u8> },
    /// A tar member whose data lives in the layer directory; `crc` is `None` when `size == 0`.
    File {
        name: Vec<u8>,
        size: u64,
        crc: Option<[u8; 8]>,
    },
}

/// Renders an entry name for error messages.
fn lossy_name(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}
