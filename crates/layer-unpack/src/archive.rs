//! The single streaming pass: every byte read is hashed, headers are decoded block by block,
//! each member is planned and applied while its data streams through, and the raw archive bytes
//! that are not file data are recorded as tar-split segments with Docker's segmentation.

use std::io::{self, BufRead, Read, Write};
use std::path::Path;

use tar_split::Crc64;

use crate::apply::{Applier, ApplyError, Failure};
use crate::header::{
    block_padding, c_string, is_header_only_type, parse_sparse_map_1x0, typeflag, validate_sparse,
    HeaderError, Member, PaxRecords, PaxSparse, RawHeader, Strictness, BLOCK_LEN,
    MAX_SPECIAL_FILE_LEN,
};
use crate::plan::{plan, Action, Node};
use crate::read_ahead::{chunk_channel, ChunkReader, StreamSummary};
use crate::{Error, Result, UnpackOptions, UnpackReport};

/// Data after the end-of-archive marker is recorded in segments of at most this size, like
/// tar-split's `paddingChunkSize` (1 MiB).
const TRAILING_CHUNK_LEN: usize = 1 << 20;

/// The data of a sparse member is recorded in tar-split segments of at most this size.
const SPARSE_SEGMENT_LEN: usize = 1 << 20;

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
    let (n_entries, summary) = read_stream(tar, &mut applier, tar_split, options)?;
    let stream_size = applier.stream_size();
    applier
        .finish()
        .map_err(|(dir, ApplyError { operation, source })| Error::Apply {
            entry: String::from_utf8_lossy(&dir).into_owned(),
            operation,
            source,
        })?;
    // The size the members declared is what a walk would find unless a member removed or
    // replaced something an earlier one wrote; then the layer is walked.
    let size = match stream_size {
        Some(size) => i64::try_from(size).unwrap_or(i64::MAX),
        None => {
            tracing::debug!("a member replaced earlier content: walking the layer for its size");
            crate::diff_size(diff_dir)?
        }
    };
    tracing::debug!(diff_id = %summary.diff_id, tar_bytes = summary.n_bytes, n_entries, size, "unpacked layer");
    Ok(UnpackReport {
        diff_id: summary.diff_id,
        tar_bytes: summary.n_bytes,
        n_entries,
        size,
    })
}

pub(crate) fn record<W: Write>(
    tar: impl Read + Send,
    tar_split: &mut tar_split::Packer<W>,
    options: &UnpackOptions,
) -> Result<UnpackReport> {
    let mut recorder = Recorder::default();
    let (n_entries, summary) = read_stream(tar, &mut recorder, tar_split, options)?;
    let size = i64::try_from(recorder.size).unwrap_or(i64::MAX);
    tracing::debug!(diff_id = %summary.diff_id, tar_bytes = summary.n_bytes, n_entries, size, "recorded layer");
    Ok(UnpackReport {
        diff_id: summary.diff_id,
        tar_bytes: summary.n_bytes,
        n_entries,
        size,
    })
}

/// Reads `tar` as [`record`] does, into the tree it leaves (`tree`).
pub(crate) fn expected_tree(
    tar: impl Read + Send,
    options: &UnpackOptions,
) -> Result<(UnpackReport, crate::tree::ExpectedTree)> {
    let mut sink = crate::tree::TreeSink::default();
    let mut tar_split = tar_split::Packer::new(io::sink());
    let (n_entries, summary) = read_stream(tar, &mut sink, &mut tar_split, options)?;
    let report = UnpackReport {
        diff_id: summary.diff_id,
        tar_bytes: summary.n_bytes,
        n_entries,
        size: 0,
    };
    Ok((report, sink.tree))
}

/// Reads `tar` on a thread of its own (decompressing and hashing it) while this thread parses
/// it and hands every member to `sink`.
fn read_stream<W: Write>(
    tar: impl Read + Send,
    sink: &mut dyn Sink,
    tar_split: &mut tar_split::Packer<W>,
    options: &UnpackOptions,
) -> Result<(u64, StreamSummary)> {
    let (chunk_writer, mut input) = chunk_channel();
    let (applied, summary) = std::thread::scope(|scope| {
        let reading = std::thread::Builder::new()
            .name("layer-reader".into())
            .spawn_scoped(scope, move || {
                syscompat::helper_thread();
                chunk_writer.run(tar)
            });
        let applied = match &reading {
            Ok(_) => apply_stream(
                &mut input,
                sink,
                tar_split,
                options.max_layer_size.unwrap_or(u64::MAX),
            ),
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
    Ok((n_entries, summary))
}

/// What is done with each member: applied into a layer directory ([`Applier`]) or only counted
/// ([`Recorder`]).
pub(crate) trait Sink {
    fn apply(
        &mut self,
        action: &Action,
        data: &mut EntryData<'_>,
    ) -> std::result::Result<(), Failure>;
}

impl Sink for Applier {
    fn apply(
        &mut self,
        action: &Action,
        data: &mut EntryData<'_>,
    ) -> std::result::Result<(), Failure> {
        Applier::apply(self, action, data)
    }
}

/// Counts Docker's `size` of the tree a tar describes without writing it: regular files' lengths,
/// sparse files' real sizes, symlinks' target lengths (hardlinks add no inode). That is the size
/// of the tree the tar was made of when no member replaces another, as in the tar of one
/// directory tree (the tar-split packer already refuses a path named twice).
#[derive(Default)]
struct Recorder {
    size: u64,
}

impl Sink for Recorder {
    fn apply(
        &mut self,
        action: &Action,
        data: &mut EntryData<'_>,
    ) -> std::result::Result<(), Failure> {
        match action {
            Action::Skip(_) | Action::Opaque { .. } | Action::Whiteout { .. } => {}
            Action::Create { node, .. } => {
                self.size += match node {
                    Node::Symlink { target } => target.len() as u64,
                    _ => data.skip_file(node)?,
                };
            }
        }
        Ok(())
    }
}

/// Parses the stream member by member, applies each and records tar-split; reads the input to
/// its end. Returns the number of tar-split file entries. The real sizes sparse members declare
/// may add up to at most `max_layer_size` bytes.
fn apply_stream<W: Write>(
    input: &mut ChunkReader,
    applier: &mut dyn Sink,
    tar_split: &mut tar_split::Packer<W>,
    max_layer_size: u64,
) -> Result<u64> {
    // Raw bytes since the last file entry: padding, extended headers and their data, headers.
    let mut raw: Vec<u8> = Vec::new();
    let mut n_entries: u64 = 0;
    // Padding still to be read after the previous member's data.
    let mut pad: u64 = 0;
    // The real sizes sparse members declared so far: the bytes Docker would write for them.
    let mut sparse_len: u64 = 0;

    while let Some(next) = read_member(input, &mut raw, &mut pad)? {
        let entry = String::from_utf8_lossy(&next.member.name).into_owned();
        // Warnings from applying the member (such as dropped overlay xattrs) carry its name.
        let _span = tracing::debug_span!("member", entry = %entry).entered();
        // A repeated path is refused before it changes the layer (the packer, which remembers
        // every name, would refuse it only after the data).
        if !tar_split.claim_name(&next.member.name) {
            return Err(Error::DuplicatePath { entry });
        }
        tar_split
            .add_segment(&raw)
            .map_err(|source| tar_split_error(&entry, source))?;
        raw.clear();
        if next.member.sparse.is_some() {
            // Checked before any of the member's work: a hole costs nothing to declare.
            sparse_len = sparse_len.saturating_add(u64::try_from(next.member.size).unwrap_or(0));
            if sparse_len > max_layer_size {
                return Err(Error::InvalidEntry {
                    entry,
                    reason: format!(
                        "the sparse file's real size of {} bytes takes the layer past the limit of {max_layer_size} bytes (--max-layer-size)",
                        next.member.size
                    ),
                });
            }
        }

        let action = plan(&next.member).map_err(|reason| Error::InvalidEntry {
            entry: entry.clone(),
            reason: reason.to_string(),
        })?;
        match &action {
            Action::Skip(reason) => tracing::debug!(entry = %entry, reason, "skipping member"),
            _ => tracing::trace!(entry = %entry, "applying member"),
        }
        // A sparse member's data is kept in tar-split as it is in the archive (its map and
        // fragments), so that reassembly gives back the member's bytes; the file entry then has
        // no data of its own.
        let recorder = next
            .member
            .sparse
            .is_some()
            .then_some(&mut *tar_split as &mut dyn SegmentSink);
        let mut data = EntryData::new(input, next.data_len, recorder);
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
        let crc = data.finish(&entry)?;

        // The file entry's size is what reassembly reads from the layer: the data of a plain
        // member, nothing for members whose type has no data (whatever their size field says,
        // as Go reads them) and for sparse members (their data is in the segments).
        let size = if next.member.sparse.is_some() {
            0
        } else {
            next.data_len
        };
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
        if !read_block(input, &mut block, raw, "header", header_offset)? {
            return Ok(None);
        }
        if block.iter().all(|&byte| byte == 0) {
            let marker_offset = header_offset + BLOCK_LEN as u64;
            if !read_block(
                input,
                &mut block,
                raw,
                "end-of-archive marker",
                marker_offset,
            )? {
                return Ok(None);
            }
            if block.iter().any(|&byte| byte != 0) {
                return Err(Error::InvalidHeader {
                    offset: marker_offset,
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
            typeflag::PAX | typeflag::PAX_GLOBAL => {
                let data = read_special(input, &header, raw, pad)?;
                let records = PaxRecords::parse(&data).map_err(|error| Error::InvalidHeader {
                    offset: header_offset,
                    reason: error.0,
                })?;
                if header.typeflag == typeflag::PAX {
                    pax = Some(records);
                    continue;
                }
                // Go returns a global header to the caller as a member of its own, without
                // size, and tar-split records it as a file entry. Its records only name it: one
                // that does not parse is ignored, as Go ignores `mergePAX`'s error there.
                let mut member = Member::new(header, None, None, None).map_err(|error| {
                    Error::InvalidHeader {
                        offset: header_offset,
                        reason: error.0,
                    }
                })?;
                member
                    .merge_pax(&records, Strictness::Lenient)
                    .map_err(|error| Error::InvalidHeader {
                        offset: header_offset,
                        reason: error.0,
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

        // Go sets up the member's data from the header alone first: a negative size is refused
        // there, before PAX records could replace it, unless the type has no data.
        if header.size < 0 && !is_header_only_type(header.typeflag) {
            return Err(Error::InvalidEntry {
                entry: String::from_utf8_lossy(&header.name).into_owned(),
                reason: format!("negative size {}", header.size),
            });
        }
        let invalid_header = |error: HeaderError| Error::InvalidHeader {
            offset: header_offset,
            reason: error.0,
        };
        let mut member =
            Member::new(header, pax.as_ref(), long_name, long_link).map_err(invalid_header)?;
        let entry = |member: &Member| String::from_utf8_lossy(&member.name).into_owned();
        if member.typeflag == typeflag::GNU_SPARSE {
            // Go's reader expands old GNU sparse members, but dockerd 20.10 then refuses the
            // type; so does ovl, before reading the sparse map or any data.
            return Err(Error::InvalidEntry {
                entry: entry(&member),
                reason: "unhandled tar header type 83 ('S'): old GNU sparse files are not supported, as in dockerd 20.10".into(),
            });
        }
        if member.size < 0 && !member.is_header_only() {
            return Err(Error::InvalidEntry {
                entry: entry(&member),
                reason: format!("negative size {}", member.size),
            });
        }
        let mut data_len = if member.is_header_only() {
            0
        } else {
            member.size as u64
        };
        let sparse = member.apply_pax_sparse(pax.as_ref());
        let fragments = match sparse.map_err(|error| Error::InvalidEntry {
            entry: entry(&member),
            reason: error.0,
        })? {
            PaxSparse::None => return Ok(Some(NextMember { member, data_len })),
            PaxSparse::Map(fragments) => fragments,
            PaxSparse::InData => {
                let map_offset = input.offset();
                let mut map_len: u64 = 0;
                let fragments = parse_sparse_map_1x0(|block| {
                    // The map is part of the member's data: it may not run past it.
                    if data_len - map_len < BLOCK_LEN as u64 {
                        return Err(HeaderError(
                            "the GNU sparse 1.0 map runs past the member's data".into(),
                        ));
                    }
                    let n_read = read_full(input, block).map_err(|error| {
                        HeaderError(format!("reading the GNU sparse 1.0 map: {error}"))
                    })?;
                    raw.extend_from_slice(&block[..n_read]);
                    if n_read < BLOCK_LEN {
                        return Err(HeaderError("truncated GNU sparse 1.0 map".into()));
                    }
                    map_len += BLOCK_LEN as u64;
                    Ok(())
                })
                .map_err(|error| Error::InvalidEntry {
                    entry: format!("{} (sparse map at offset {map_offset})", entry(&member)),
                    reason: error.0,
                })?;
                data_len -= map_len;
                fragments
            }
        };
        let (fragments, real_size) =
            validate_sparse(&fragments, member.size, data_len).map_err(|reason| {
                Error::InvalidEntry {
                    entry: entry(&member),
                    reason: reason.into(),
                }
            })?;
        tracing::debug!(
            entry = %entry(&member),
            real_size,
            n_fragments = fragments.len(),
            data_len,
            "PAX sparse member"
        );
        member.sparse = Some(fragments);
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

/// Reads one whole block, appending it to `raw`. `false` at the end of input; a block cut short
/// is [`Error::Truncated`] naming `entry` at `offset`.
fn read_block(
    input: &mut ChunkReader,
    block: &mut [u8; BLOCK_LEN],
    raw: &mut Vec<u8>,
    entry: &str,
    offset: u64,
) -> Result<bool> {
    let n_read = read_input(input, block)?;
    raw.extend_from_slice(&block[..n_read]);
    if n_read == 0 {
        return Ok(false);
    }
    if n_read < BLOCK_LEN {
        return Err(Error::Truncated {
            entry: entry.into(),
            offset,
        });
    }
    Ok(true)
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

/// Where the raw data of a sparse member goes: tar-split segments.
trait SegmentSink {
    fn record(&mut self, bytes: &[u8]) -> tar_split::Result<()>;
    fn flush(&mut self) -> tar_split::Result<()>;
}

impl<W: Write> SegmentSink for tar_split::Packer<W> {
    fn record(&mut self, bytes: &[u8]) -> tar_split::Result<()> {
        self.add_segment(bytes)
    }

    fn flush(&mut self) -> tar_split::Result<()> {
        self.flush_segment()
    }
}

/// The data of one member: reads stop at its end, a premature end of input is remembered as
/// truncation, and the CRC-64 tar-split stores is computed on the way (or, for a sparse member,
/// the raw bytes are recorded as segments).
pub(crate) struct EntryData<'input> {
    input: &'input mut ChunkReader,
    remaining: u64,
    crc: Crc64,
    /// For sparse members: where the raw data is recorded, and how much is not flushed yet.
    recorder: Option<(&'input mut dyn SegmentSink, usize)>,
    truncated: bool,
    read_error: Option<io::Error>,
    record_error: Option<tar_split::Error>,
}

impl<'input> EntryData<'input> {
    fn new(
        input: &'input mut ChunkReader,
        len: u64,
        recorder: Option<&'input mut dyn SegmentSink>,
    ) -> Self {
        EntryData {
            input,
            remaining: len,
            crc: Crc64::new(),
            recorder: recorder.map(|sink| (sink, 0)),
            truncated: false,
            read_error: None,
            record_error: None,
        }
    }

    /// Turns a remembered input failure into the error that explains the member's failure.
    fn check(&mut self, entry: &str) -> Result<()> {
        let offset = self.input.offset();
        if let Some(source) = self.read_error.take() {
            return Err(Error::Read { offset, source });
        }
        if let Some(source) = self.record_error.take() {
            return Err(tar_split_error(entry, source));
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
        let _ = self.skip_rest();
        self.check(entry)
    }

    /// Reads the rest of the data where it lies in the input, without copying it (a sparse
    /// member's data, which is recorded, goes through [`Read`]); returns how many bytes it read.
    /// A failure is remembered as a failed `read` remembers it.
    /// The length of the file `node` (this member's) makes, its data read past: a regular
    /// file's, a sparse file's real size, 0 for anything else.
    pub(crate) fn skip_file(&mut self, node: &Node) -> std::result::Result<u64, Failure> {
        match node {
            Node::File => self.skip_rest().map_err(|source| {
                Failure::This(ApplyError {
                    operation: "read file data",
                    source,
                })
            }),
            Node::SparseFile { real_size, .. } => Ok(*real_size),
            _ => Ok(0),
        }
    }

    fn skip_rest(&mut self) -> io::Result<u64> {
        let mut n_skipped: u64 = 0;
        if self.recorder.is_some() {
            let mut scratch = [0u8; 8192];
            while self.remaining > 0 {
                n_skipped += self.read(&mut scratch)? as u64;
            }
            return Ok(n_skipped);
        }
        while self.remaining > 0 {
            let available = match self.input.fill_buf() {
                Ok(available) => available,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    let kind = error.kind();
                    self.read_error = Some(error);
                    return Err(kind.into());
                }
            };
            if available.is_empty() {
                self.truncated = true;
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let n_taken = usize::try_from(self.remaining)
                .unwrap_or(usize::MAX)
                .min(available.len());
            self.crc.update(&available[..n_taken]);
            self.input.consume(n_taken);
            self.remaining -= n_taken as u64;
            n_skipped += n_taken as u64;
        }
        Ok(n_skipped)
    }

    /// The checksum tar-split records for the data; recorded segments are flushed.
    fn finish(mut self, entry: &str) -> Result<[u8; 8]> {
        if let Some((sink, pending)) = self.recorder.as_mut() {
            if *pending > 0 {
                sink.flush()
                    .map_err(|source| tar_split_error(entry, source))?;
            }
        }
        Ok(self.crc.finish_bytes())
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
        match self.recorder.as_mut() {
            Some((sink, pending)) => {
                let mut recorded = sink.record(bytes);
                *pending += n_read;
                if recorded.is_ok() && *pending >= SPARSE_SEGMENT_LEN {
                    recorded = sink.flush();
                    *pending = 0;
                }
                if let Err(error) = recorded {
                    self.record_error = Some(error);
                    return Err(io::Error::other("recording tar-split failed"));
                }
            }
            None => self.crc.update(bytes),
        }
        self.remaining -= n_read as u64;
        Ok(n_read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_only_types_follow_go() {
        for flag in *b"123456" {
            assert!(is_header_only_type(flag));
        }
        for flag in *b"\x0007xgLKS" {
            assert!(!is_header_only_type(flag));
        }
    }
}
