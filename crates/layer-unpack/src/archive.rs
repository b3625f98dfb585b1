//! The single streaming pass: every byte read is hashed, headers are decoded block by block,
//! each member is planned and applied while its data streams through, and the raw archive bytes
//! that are not file data are recorded as tar-split segments with Docker's segmentation.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::path::Path;

use tar_split::Crc64;

use crate::apply::{Applier, ApplyError, Failure};
use crate::header::{
    block_padding, c_string, typeflag, Format, Member, PaxRecords, RawHeader, BLOCK_LEN,
    MAX_SPECIAL_FILE_LEN,
};
use crate::plan::{go_clean, plan, Action};
use crate::read_ahead::{chunk_channel, ChunkReader};
use crate::{Error, Result, UnpackOptions, UnpackReport};

/// Data after the end-of-archive marker is recorded in segments of at most this size, like
/// tar-split's `paddingChunkSize` (1 MiB).
const TRAILING_CHUNK_LEN: usize = 1 << 20;

/// Number of (offset, length) entries in an old GNU sparse extension block.
const GNU_EXT_SPARSE_ENTRIES: usize = 21;

pub(crate) fn unpack<W: Write>(
    tar: impl Read + Send,
    diff_dir: &Path,
    tar_split: &mut tar_split::Packer<W>,
    options: &UnpackOptions,
) -> Result<UnpackReport> {
    let mut applier =
        Applier::open(diff_dir, options.writers(), options.resolver).map_err(|source| {
            Error::OpenLayerDir {
                path: diff_dir.to_path_buf(),
                source,
            }
        })?;
    let (chunk_writer, mut input) = chunk_channel();
    let (applied, summary) = std::thread::scope(|scope| {
        let reading = std::thread::Builder::new()
            .name("layer-reader".into())
            .spawn_scoped(scope, move || chunk_writer.run(tar));
        let applied = match &reading {
            Ok(_) => apply_stream(&mut input, &mut applier, tar_split),
            Err(_) => Ok(0),
        };
        // An early failure leaves the reading thread blocked on a full channel until this end
        // is gone.
        drop(input);
        let summary = match reading {
            Ok(handle) => handle
                .join()
                .map_err(|_| "the layer reading thread panicked"),
            Err(_) => Err("the layer reading thread could not be started"),
        };
        (applied, summary)
    });
    let n_entries = applied?;
    let summary = summary.map_err(|reason| Error::Reader { reason })?;
    applier
        .finish()
        .map_err(|(dir, ApplyError { operation, source })| Error::Apply {
            entry: String::from_utf8_lossy(&dir).into_owned(),
            operation,
            source,
        })?;
    tracing::debug!(diff_id = %summary.diff_id, tar_bytes = summary.n_bytes, n_entries, "unpacked layer");
    Ok(UnpackReport {
        diff_id: summary.diff_id,
        tar_bytes: summary.n_bytes,
        n_entries,
    })
}

/// Parses the stream member by member, applies each and records tar-split; reads the input to
/// its end. Returns the number of tar-split file entries.
fn apply_stream<W: Write>(
    input: &mut ChunkReader,
    applier: &mut Applier,
    tar_split: &mut tar_split::Packer<W>,
) -> Result<u64> {
    // Raw bytes since the last file entry: padding, extended headers and their data, headers.
    let mut raw: Vec<u8> = Vec::new();
    let mut n_entries: u64 = 0;
    // Padding still to be read after the previous member's data.
    let mut pad: u64 = 0;
    // Every member's name as tar-split compares them, so that a repeated path is refused before
    // it changes the layer (the packer refuses it as well, but only after the data).
    let mut seen_names: HashSet<Vec<u8>> = HashSet::new();

    while let Some(next) = read_member(input, &mut raw, &mut pad)? {
        let entry = String::from_utf8_lossy(&next.member.name).into_owned();
        // Warnings from applying the member (such as dropped overlay xattrs) carry its name.
        let _span = tracing::debug_span!("member", entry = %entry).entered();
        if !seen_names.insert(go_clean(&next.member.name)) {
            return Err(Error::DuplicatePath { entry });
        }
        tar_split
            .add_segment(&raw)
            .map_err(|source| tar_split_error(&entry, source))?;
        raw.clear();

        let action = plan(&next.member).map_err(|reason| Error::InvalidEntry {
            entry: entry.clone(),
            reason: reason.to_string(),
        })?;
        match &action {
            Action::Skip(reason) => tracing::debug!(entry = %entry, reason, "skipping member"),
            _ => tracing::trace!(entry = %entry, "applying member"),
        }
        let mut data = EntryData::new(input, next.data_len, next.member.sparse.as_deref());
        let applied = applier.apply(&action, &mut data);
        data.check(&entry)?;
        applied.map_err(|failure| match failure {
            Failure::This(ApplyError { operation, source }) => Error::Apply {
                entry: entry.clone(),
                operation,
                source,
            },
            Failure::Earlier(earlier, ApplyError { operation, source }) => Error::Apply {
                entry: String::from_utf8_lossy(&earlier).into_owned(),
                operation,
                source,
            },
        })?;
        // Whatever the action did not consume still belongs to the member's checksum.
        data.drain(&entry)?;
        let crc = data.finish(u64::try_from(next.member.size).unwrap_or(0));

        let size = u64::try_from(next.member.size).map_err(|_| Error::InvalidEntry {
            entry: entry.clone(),
            reason: format!("negative size {}", next.member.size),
        })?;
        tar_split
            .add_file(&next.member.name, size, (size > 0).then_some(crc))
            .map_err(|source| tar_split_error(&entry, source))?;
        n_entries += 1;
        // A global header leaves the padding of its records pending; data padding adds to it.
        pad += block_padding(next.data_len);
    }

    // Docker records what its tar reader consumed at the end (padding and the zero blocks) as
    // one segment, skipped when empty, then every later read of the drained input as its own.
    if !raw.is_empty() {
        tar_split
            .add_segment(&raw)
            .and_then(|()| tar_split.flush_segment())
            .map_err(|source| tar_split_error("end of archive", source))?;
    }
    let mut chunk = vec![0u8; TRAILING_CHUNK_LEN];
    loop {
        let offset = input.offset();
        let n_read =
            read_full(input, &mut chunk).map_err(|source| Error::Read { offset, source })?;
        if n_read == 0 {
            break;
        }
        tar_split
            .add_segment(&chunk[..n_read])
            .and_then(|()| tar_split.flush_segment())
            .map_err(|source| tar_split_error("trailing data", source))?;
    }

    Ok(n_entries)
}

/// A member with everything that preceded it in the archive merged in.
struct NextMember {
    member: Member,
    /// The number of data bytes following the header in the archive.
    data_len: u64,
}

/// Reads headers up to the next member, appending every raw byte to `raw`. Returns `None` at
/// the end of the archive: two zero blocks, or end of input where Go's reader accepts it (at a
/// header boundary, after one zero block, or inside padding).
fn read_member(
    input: &mut ChunkReader,
    raw: &mut Vec<u8>,
    pad: &mut u64,
) -> Result<Option<NextMember>> {
    let mut pax: Option<PaxRecords> = None;
    let mut long_name: Option<Vec<u8>> = None;
    let mut long_link: Option<Vec<u8>> = None;
    let mut block = [0u8; BLOCK_LEN];
    loop {
        if *pad > 0 {
            // The padding is shorter than a block.
            let want = *pad as usize;
            let n_read = read_input(input, &mut block[..want])?;
            raw.extend_from_slice(&block[..n_read]);
            *pad = 0;
            if n_read < want {
                return Ok(None);
            }
        }

        let header_offset = input.offset();
        let n_read = read_input(input, &mut block)?;
        raw.extend_from_slice(&block[..n_read]);
        if n_read == 0 {
            return Ok(None);
        }
        if n_read < BLOCK_LEN {
            return Err(Error::Truncated {
                entry: "header".into(),
                offset: header_offset,
            });
        }
        if block.iter().all(|&byte| byte == 0) {
            let n_read = read_input(input, &mut block)?;
            raw.extend_from_slice(&block[..n_read]);
            if n_read == 0 {
                return Ok(None);
            }
            if n_read < BLOCK_LEN {
                return Err(Error::Truncated {
                    entry: "end-of-archive marker".into(),
                    offset: header_offset + BLOCK_LEN as u64,
                });
            }
            if block.iter().any(|&byte| byte != 0) {
                return Err(Error::InvalidHeader {
                    offset: header_offset + BLOCK_LEN as u64,
                    reason: "a zero block is followed by a non-zero block".into(),
                });
            }
            return Ok(None);
        }

        let header = RawHeader::parse(&block).map_err(|error| Error::InvalidHeader {
            offset: header_offset,
            reason: error.0,
        })?;
        match header.typeflag {
            typeflag::PAX_LOCAL | typeflag::PAX_GLOBAL => {
                let data = read_special(input, &header, raw, pad)?;
                let records = PaxRecords::parse(&data).map_err(|error| Error::InvalidHeader {
                    offset: header_offset,
                    reason: error.0,
                })?;
                if header.typeflag == typeflag::PAX_LOCAL {
                    pax = Some(records);
                    continue;
                }
                // Go returns a global header to the caller as a member of its own, without
                // size, and tar-split records it as a file entry.
                let mut member =
                    Member::new(header, Some(&records), None, None).map_err(|error| {
                        Error::InvalidHeader {
                            offset: header_offset,
                            reason: error.0,
                        }
                    })?;
                member.typeflag = typeflag::PAX_GLOBAL;
                member.size = 0;
                return Ok(Some(NextMember {
                    member,
                    data_len: 0,
                }));
            }
            typeflag::GNU_LONG_NAME | typeflag::GNU_LONG_LINK => {
                let data = read_special(input, &header, raw, pad)?;
                let value = c_string(&data).to_vec();
                if header.typeflag == typeflag::GNU_LONG_NAME {
                    long_name = Some(value);
                } else {
                    long_link = Some(value);
                }
                continue;
            }
            _ => {}
        }

        let format = header.format;
        let mut member =
            Member::new(header, pax.as_ref(), long_name, long_link).map_err(|error| {
                Error::InvalidHeader {
                    offset: header_offset,
                    reason: error.0,
                }
            })?;
        let entry = || String::from_utf8_lossy(&member.name).into_owned();
        if member.size < 0 {
            return Err(Error::InvalidEntry {
                entry: entry(),
                reason: format!("negative size {}", member.size),
            });
        }
        let data_len = if member.is_header_only() {
            0
        } else {
            member.size as u64
        };
        if member.typeflag == typeflag::GNU_SPARSE {
            if format != Format::Gnu {
                return Err(Error::InvalidEntry {
                    entry: entry(),
                    reason: "old GNU sparse member without GNU header".into(),
                });
            }
            let (fragments, real_size) = read_old_gnu_sparse_map(input, &block, raw, &entry)?;
            validate_sparse(&fragments, real_size, data_len).map_err(|reason| {
                Error::InvalidEntry {
                    entry: entry(),
                    reason: reason.into(),
                }
            })?;
            member.sparse = Some(fragments);
            // Like Go, the member's size becomes the real (logical) size.
            member.size = real_size;
        }
        return Ok(Some(NextMember { member, data_len }));
    }
}

/// Reads the data of a PAX header or GNU long name (at most 1 MiB) into `raw` and returns it.
fn read_special(
    input: &mut ChunkReader,
    header: &RawHeader,
    raw: &mut Vec<u8>,
    pad: &mut u64,
) -> Result<Vec<u8>> {
    let entry = || String::from_utf8_lossy(&header.name).into_owned();
    let len = u64::try_from(header.size)
        .ok()
        .filter(|len| *len <= MAX_SPECIAL_FILE_LEN)
        .ok_or_else(|| Error::InvalidEntry {
            entry: entry(),
            reason: format!("extended header size {} out of range", header.size),
        })?;
    let mut data = vec![0u8; len as usize];
    let offset = input.offset();
    let n_read = read_input(input, &mut data)?;
    raw.extend_from_slice(&data[..n_read]);
    if n_read < data.len() {
        return Err(Error::Truncated {
            entry: entry(),
            offset: offset + n_read as u64,
        });
    }
    *pad = block_padding(len);
    Ok(data)
}

/// Reads the sparse map of an old GNU sparse header and its extension blocks (recorded in
/// `raw`), returning the fragments and the real size.
fn read_old_gnu_sparse_map(
    input: &mut ChunkReader,
    block: &[u8; BLOCK_LEN],
    raw: &mut Vec<u8>,
    entry: &dyn Fn() -> String,
) -> Result<(Vec<(u64, u64)>, i64)> {
    let invalid = |what: &str| Error::InvalidEntry {
        entry: entry(),
        reason: format!("invalid GNU sparse {what}"),
    };
    let number = |field: &[u8]| crate::header::parse_numeric(field);
    let header = tar::Header::from_byte_slice(block);
    let Some(gnu) = header.as_gnu() else {
        return Err(invalid("header"));
    };
    let real_size = number(&gnu.realsize).map_err(|()| invalid("real size"))?;
    let mut fragments = Vec::new();
    let mut collect = |entries: &[tar::GnuSparseHeader]| -> Result<()> {
        for sparse in entries {
            // GNU and BSD tar stop at the first entry whose offset field is empty.
            if sparse.offset[0] == 0 {
                break;
            }
            let offset = number(&sparse.offset).map_err(|()| invalid("offset"))?;
            let len = number(&sparse.numbytes).map_err(|()| invalid("length"))?;
            let offset = u64::try_from(offset).map_err(|_| invalid("offset"))?;
            let len = u64::try_from(len).map_err(|_| invalid("length"))?;
            fragments.push((offset, len));
        }
        Ok(())
    };
    collect(&gnu.sparse)?;
    let mut extended = gnu.isextended[0] != 0;
    let mut ext_block = [0u8; BLOCK_LEN];
    while extended {
        let offset = input.offset();
        let n_read = read_input(input, &mut ext_block)?;
        raw.extend_from_slice(&ext_block[..n_read]);
        if n_read < BLOCK_LEN {
            return Err(Error::Truncated {
                entry: entry(),
                offset,
            });
        }
        // An extension block is 21 (offset, length) pairs of 12-byte fields, then the flag.
        let mut entries = Vec::with_capacity(GNU_EXT_SPARSE_ENTRIES);
        for idx in 0..GNU_EXT_SPARSE_ENTRIES {
            let start = idx * 24;
            let mut sparse = tar::GnuSparseHeader {
                offset: [0; 12],
                numbytes: [0; 12],
            };
            sparse.offset.copy_from_slice(&ext_block[start..start + 12]);
            sparse
                .numbytes
                .copy_from_slice(&ext_block[start + 12..start + 24]);
            entries.push(sparse);
        }
        collect(&entries)?;
        extended = ext_block[GNU_EXT_SPARSE_ENTRIES * 24] != 0;
    }
    Ok((fragments, real_size))
}

/// Checks a sparse map as Go's `validateSparseEntries` does, plus that the fragments add up to
/// the data in the archive.
fn validate_sparse(
    fragments: &[(u64, u64)],
    real_size: i64,
    data_len: u64,
) -> Result<(), &'static str> {
    let real_size = u64::try_from(real_size).map_err(|_| "negative real size")?;
    let mut previous_end = 0u64;
    let mut total = 0u64;
    for &(offset, len) in fragments {
        let end = offset.checked_add(len).ok_or("sparse fragment overflows")?;
        if end > real_size {
            return Err("sparse fragment beyond the real size");
        }
        if offset < previous_end {
            return Err("sparse fragments overlap or are out of order");
        }
        previous_end = end;
        total += len;
    }
    if total != data_len {
        return Err("sparse fragments do not add up to the member's data");
    }
    Ok(())
}

fn tar_split_error(entry: &str, source: tar_split::Error) -> Error {
    match source {
        tar_split::Error::DuplicatePath { .. } => Error::DuplicatePath {
            entry: entry.to_owned(),
        },
        source => Error::TarSplit {
            entry: entry.to_owned(),
            source,
        },
    }
}

fn read_input(input: &mut ChunkReader, buf: &mut [u8]) -> Result<usize> {
    let offset = input.offset();
    read_full(input, buf).map_err(|source| Error::Read { offset, source })
}

/// Reads until `buf` is full or the input ends, returning the number of bytes read.
pub(crate) fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n_read) => filled += n_read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// The data of one member: reads stop at its end, a premature end of input is remembered as
/// truncation, and the CRC-64 tar-split stores is computed on the way.
struct EntryData<'input> {
    input: &'input mut ChunkReader,
    remaining: u64,
    crc: Crc64,
    /// For old GNU sparse members, the CRC covers the logical content with its holes.
    sparse: Option<SparseCrc<'input>>,
    truncated: bool,
    read_error: Option<io::Error>,
}

impl<'input> EntryData<'input> {
    fn new(input: &'input mut ChunkReader, len: u64, sparse: Option<&'input [(u64, u64)]>) -> Self {
        EntryData {
            input,
            remaining: len,
            crc: Crc64::new(),
            sparse: sparse.map(|fragments| SparseCrc {
                fragments,
                idx: 0,
                used: 0,
                logical_len: 0,
            }),
            truncated: false,
            read_error: None,
        }
    }

    /// Turns a remembered input failure into the error that explains the member's failure.
    fn check(&mut self, entry: &str) -> Result<()> {
        let offset = self.input.offset();
        if let Some(source) = self.read_error.take() {
            return Err(Error::Read { offset, source });
        }
        if self.truncated {
            return Err(Error::Truncated {
                entry: entry.to_owned(),
                offset,
            });
        }
        Ok(())
    }

    /// Reads the rest of the data.
    fn drain(&mut self, entry: &str) -> Result<()> {
        let mut scratch = [0u8; 8192];
        while self.remaining > 0 {
            if self.read(&mut scratch).is_err() {
                break;
            }
        }
        self.check(entry)
    }

    /// The checksum tar-split records; `size` is the member's logical size.
    fn finish(mut self, size: u64) -> [u8; 8] {
        if let Some(sparse) = self.sparse.as_mut() {
            // The holes after the last fragment, up to the real size.
            sparse.feed_zeros(&mut self.crc, size.saturating_sub(sparse.logical_len));
        }
        self.crc.finish_bytes()
    }
}

impl Read for EntryData<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n_read = loop {
            match self.input.read(&mut buf[..want]) {
                Ok(n_read) => break n_read,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => {
                    let kind = error.kind();
                    self.read_error = Some(error);
                    return Err(kind.into());
                }
            }
        };
        if n_read == 0 {
            self.truncated = true;
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let bytes = &buf[..n_read];
        match self.sparse.as_mut() {
            Some(sparse) => sparse.update(&mut self.crc, bytes),
            None => self.crc.update(bytes),
        }
        self.remaining -= n_read as u64;
        Ok(n_read)
    }
}

/// Maps the physical data of a sparse member to its logical content for the checksum, feeding
/// zeros for the holes as Go's sparse reader returns them.
struct SparseCrc<'fragments> {
    fragments: &'fragments [(u64, u64)],
    /// The fragment the next data byte belongs to.
    idx: usize,
    /// Bytes of that fragment already seen.
    used: u64,
    /// Logical bytes checksummed so far.
    logical_len: u64,
}

impl SparseCrc<'_> {
    fn update(&mut self, crc: &mut Crc64, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let Some(&(offset, len)) = self.fragments.get(self.idx) else {
                // Validation made the fragments add up to the data; nothing is left over.
                crc.update(bytes);
                return;
            };
            if self.used == 0 {
                self.feed_zeros(crc, offset.saturating_sub(self.logical_len));
            }
            let take = usize::try_from(len - self.used)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            crc.update(&bytes[..take]);
            self.used += take as u64;
            self.logical_len += take as u64;
            bytes = &bytes[take..];
            if self.used == len {
                self.idx += 1;
                self.used = 0;
            }
        }
    }

    fn feed_zeros(&mut self, crc: &mut Crc64, mut n_zeros: u64) {
        const ZEROS: [u8; 8192] = [0; 8192];
        self.logical_len += n_zeros;
        while n_zeros > 0 {
            let take = n_zeros.min(ZEROS.len() as u64) as usize;
            crc.update(&ZEROS[..take]);
            n_zeros -= take as u64;
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        // Writing to a String cannot fail.
        let _ = write!(text, "{byte:02x}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_crc_covers_holes() {
        // Logical content: 3 zeros, "ab", 2 zeros, "c", 1 zero (real size 9).
        let fragments = [(3, 2), (7, 1)];
        let mut sparse = SparseCrc {
            fragments: &fragments,
            idx: 0,
            used: 0,
            logical_len: 0,
        };
        let mut crc = Crc64::new();
        sparse.update(&mut crc, b"a");
        sparse.update(&mut crc, b"bc");
        sparse.feed_zeros(&mut crc, 9 - sparse.logical_len);
        assert_eq!(crc.finish(), Crc64::checksum(b"\0\0\0ab\0\0c\0"));
    }

    #[test]
    fn sparse_maps_are_validated() {
        assert_eq!(validate_sparse(&[(0, 2), (4, 2)], 8, 4), Ok(()));
        assert!(validate_sparse(&[(4, 2), (0, 2)], 8, 4).is_err());
        assert!(validate_sparse(&[(0, 2), (7, 2)], 8, 4).is_err());
        assert!(validate_sparse(&[(0, 2)], 8, 4).is_err());
    }
}
