//! Writing `tar-split.json.gz` streams byte for byte as Go's tar-split `jsonPacker` does.

use std::io::Write;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use flate2::write::GzEncoder;
use flate2::{Compression, GzBuilder};

use crate::name_set::NameSet;
use crate::{lossy_name, Error, Result, FILE_TYPE, SEGMENT_TYPE};
use gocompat::path::clean;

/// The deflate level of `tar-split.json.gz`: zlib's fast strategy, several times quicker than
/// the default level 6 on tar-split's base64 payloads for a slightly larger file. Level 2 still
/// gets XFL 0 in the gzip header, which level 1 ("fastest") would change.
const DEFLATE_LEVEL: u32 = 2;

/// Writes tar-split entries as gzip'd newline-delimited JSON.
///
/// Segment bytes handed to [`Packer::add_segment`] are buffered and emitted as one segment entry
/// right before the next file entry, at [`Packer::flush_segment`], and at [`Packer::finish`].
///
/// Docker's exact segmentation is reproduced by: `add_segment(raw header bytes)` before each
/// `add_file`; after the end of the archive `add_segment(padding + zero blocks)` and
/// `flush_segment()` (Docker skips that entry when the bytes are empty); `add_segment(chunk)` and
/// `flush_segment()` for each non-final ≤ 1 MiB read of trailing data; and finally `finish()`,
/// which writes the last read (usually empty) as the closing segment.
pub struct Packer<W: Write> {
    encoder: GzEncoder<W>,
    /// Segment bytes not yet written.
    segment: Vec<u8>,
    /// Whether `add_segment` was called since the last segment entry was written.
    segment_pending: bool,
    /// The `position` of the next entry.
    position: u64,
    /// Cleaned names of all file entries so far.
    seen_names: NameSet,
    /// The name [`Packer::claim_name`] took for the next file entry, when `has_claim`.
    claimed: Vec<u8>,
    has_claim: bool,
    /// Scratch buffer for one JSON line.
    line: Vec<u8>,
}

impl<W: Write> std::fmt::Debug for Packer<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Packer")
            .field("buffered_segment_len", &self.segment.len())
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl<W: Write> Packer<W> {
    /// Starts a stream. The gzip header is the one Go's `compress/gzip` writes at its default
    /// level: no name, mtime 0, OS 255 ("unknown"), XFL 0. The deflate level is a faster one
    /// ([`DEFLATE_LEVEL`]); Docker only ever decompresses this file.
    pub fn new(out: W) -> Packer<W> {
        let encoder = GzBuilder::new()
            .mtime(0)
            .operating_system(255)
            .write(out, Compression::new(DEFLATE_LEVEL));
        Packer {
            encoder,
            segment: Vec::new(),
            segment_pending: false,
            position: 0,
            seen_names: NameSet::new(),
            claimed: Vec::new(),
            has_claim: false,
            line: Vec::with_capacity(256),
        }
    }

    /// Takes `name` (cleaned as Go's `filepath.Clean` does) for the next file entry, before the
    /// entry's work is done: false if an earlier entry had it, which [`Packer::add_file`] would
    /// refuse. The name is then not checked again when that entry is added.
    pub fn claim_name(&mut self, name: &[u8]) -> bool {
        if !self.seen_names.insert(&clean(name)) {
            return false;
        }
        self.claimed.clear();
        self.claimed.extend_from_slice(name);
        self.has_claim = true;
        true
    }

    /// Buffers raw archive bytes for the next segment entry.
    pub fn add_segment(&mut self, raw: &[u8]) -> Result<()> {
        self.segment.extend_from_slice(raw);
        self.segment_pending = true;
        Ok(())
    }

    /// Writes the buffered segment bytes as one segment entry now, even if they are empty.
    pub fn flush_segment(&mut self) -> Result<()> {
        self.line.clear();
        self.line
            .extend_from_slice(format!("{{\"type\":{SEGMENT_TYPE},\"payload\":\"").as_bytes());
        let encoded = BASE64.encode(&self.segment);
        self.line.extend_from_slice(encoded.as_bytes());
        self.line.push(b'"');
        self.segment.clear();
        self.segment_pending = false;
        self.end_line()
    }

    /// Writes a file entry, preceded by the buffered segment if `add_segment` was called since
    /// the last segment entry. `crc` is the big-endian CRC-64/GO-ISO of the data, `None` (JSON
    /// `null`) for entries without data.
    pub fn add_file(&mut self, name: &[u8], size: u64, crc: Option<[u8; 8]>) -> Result<()> {
        if size > i64::MAX as u64 {
            // Go's `Entry.Size` is an int64.
            return Err(Error::SizeTooLarge {
                name: lossy_name(name),
                position: self.position,
                size,
            });
        }
        if self.segment_pending {
            self.flush_segment()?;
        }
        let claimed = std::mem::take(&mut self.has_claim) && self.claimed == name;
        if !claimed && !self.seen_names.insert(&clean(name)) {
            return Err(Error::DuplicatePath {
                name: lossy_name(name),
                position: self.position,
            });
        }
        self.line.clear();
        self.line
            .extend_from_slice(format!("{{\"type\":{FILE_TYPE}").as_bytes());
        match std::str::from_utf8(name) {
            Ok("") => {}
            Ok(text) => {
                self.line.extend_from_slice(b",\"name\":");
                gocompat::json::write_string(&mut self.line, text).map_err(|source| {
                    Error::WriteStream {
                        operation: "encode entry name",
                        source,
                    }
                })?;
            }
            Err(_) => {
                // Go's `Entry.SetName` keeps names that are not valid UTF-8 in `name_raw`.
                self.line.extend_from_slice(b",\"name_raw\":\"");
                self.line.extend_from_slice(BASE64.encode(name).as_bytes());
                self.line.push(b'"');
            }
        }
        if size > 0 {
            self.line
                .extend_from_slice(format!(",\"size\":{size}").as_bytes());
        }
        match crc {
            None => self.line.extend_from_slice(b",\"payload\":null"),
            Some(crc) => {
                self.line.extend_from_slice(b",\"payload\":\"");
                self.line.extend_from_slice(BASE64.encode(crc).as_bytes());
                self.line.push(b'"');
            }
        }
        self.end_line()
    }

    /// Writes the buffered segment bytes as the closing segment entry (always, even if empty) and
    /// the gzip trailer, returning the underlying writer.
    pub fn finish(mut self) -> Result<W> {
        self.flush_segment()?;
        self.encoder.finish().map_err(|source| Error::WriteStream {
            operation: "finish gzip stream",
            source,
        })
    }

    /// Appends `,"position":N}` and a newline to the line in progress and writes it out.
    fn end_line(&mut self) -> Result<()> {
        self.line
            .extend_from_slice(format!(",\"position\":{}}}\n", self.position).as_bytes());
        self.encoder
            .write_all(&self.line)
            .map_err(|source| Error::WriteStream {
                operation: "write entry",
                source,
            })?;
        self.position += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn ndjson(packer: Packer<Vec<u8>>) -> String {
        let gz = packer.finish().expect("finish");
        let mut text = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut text)
            .expect("gunzip");
        text
    }

    #[test]
    fn gzip_header_is_gos() {
        let gz = Packer::new(Vec::new()).finish().expect("finish");
        assert_eq!(
            &gz[..10],
            &[0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff]
        );
    }

    #[test]
    fn empty_stream_is_one_empty_segment() {
        assert_eq!(
            ndjson(Packer::new(Vec::new())),
            "{\"type\":2,\"payload\":\"\",\"position\":0}\n"
        );
    }

    #[test]
    fn entries_are_encoded_like_go_tar_split() {
        let mut packer = Packer::new(Vec::new());
        packer.add_segment(b"ab").expect("segment");
        packer.add_segment(b"c").expect("segment");
        packer.add_file(b"bin/", 0, None).expect("file");
        packer.add_segment(b"\0").expect("segment");
        packer
            .add_file(b"etc/x", 5, Some([0, 1, 2, 3, 4, 5, 6, 7]))
            .expect("file");
        packer
            .add_file(b"a<b&c>\xe2\x80\xa8", 0, None)
            .expect("file");
        packer.add_file(b"bad\xff", 0, None).expect("file");
        packer.add_segment(b"end").expect("segment");
        let expected = concat!(
            "{\"type\":2,\"payload\":\"YWJj\",\"position\":0}\n",
            "{\"type\":1,\"name\":\"bin/\",\"payload\":null,\"position\":1}\n",
            "{\"type\":2,\"payload\":\"AA==\",\"position\":2}\n",
            "{\"type\":1,\"name\":\"etc/x\",\"size\":5,\"payload\":\"AAECAwQFBgc=\",\"position\":3}\n",
            "{\"type\":1,\"name\":\"a\\u003cb\\u0026c\\u003e\\u2028\",\"payload\":null,\"position\":4}\n",
            "{\"type\":1,\"name_raw\":\"YmFk/w==\",\"payload\":null,\"position\":5}\n",
            "{\"type\":2,\"payload\":\"ZW5k\",\"position\":6}\n",
        );
        assert_eq!(ndjson(packer), expected);
    }

    #[test]
    fn flush_segment_emits_even_when_empty() {
        let mut packer = Packer::new(Vec::new());
        packer.add_segment(b"x").expect("segment");
        packer.flush_segment().expect("flush");
        assert_eq!(
            ndjson(packer),
            concat!(
                "{\"type\":2,\"payload\":\"eA==\",\"position\":0}\n",
                "{\"type\":2,\"payload\":\"\",\"position\":1}\n",
            )
        );
    }

    #[test]
    fn duplicate_paths_after_cleaning_are_rejected() {
        let mut packer = Packer::new(Vec::new());
        packer.add_file(b"a/b/", 0, None).expect("file");
        let err = packer.add_file(b"./a//b", 0, None).expect_err("duplicate");
        assert!(
            matches!(err, Error::DuplicatePath { ref name, position: 1 } if name == "./a//b"),
            "{err}"
        );
    }

    #[test]
    fn a_claimed_name_is_added_once_and_refused_after() {
        let mut packer = Packer::new(Vec::new());
        assert!(packer.claim_name(b"a/b"));
        packer.add_file(b"a/b", 0, None).expect("the claimed entry");
        assert!(
            !packer.claim_name(b"./a//b/"),
            "a second claim of the same path"
        );
        let err = packer
            .add_file(b"a/b", 0, None)
            .expect_err("unclaimed duplicate");
        assert!(matches!(err, Error::DuplicatePath { .. }), "{err}");
        // A claim covers only the entry added right after it, under the same name.
        assert!(packer.claim_name(b"c"));
        packer.add_file(b"d", 0, None).expect("another name");
        let err = packer
            .add_file(b"c", 0, None)
            .expect_err("claimed, then a later duplicate");
        assert!(matches!(err, Error::DuplicatePath { .. }), "{err}");
    }
}
