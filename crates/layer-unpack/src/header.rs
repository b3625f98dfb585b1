//! Decoding tar headers with the semantics of Go's `archive/tar` reader, which is what Docker and
//! tar-split use: numeric fields (octal or base-256), format detection, checksum validation, PAX
//! records and GNU long names. The raw block layouts come from the `tar` crate; the decoding rules
//! are Go's, so that names, sizes and times agree with Docker byte for byte.

use std::collections::BTreeMap;

/// The size of a tar block; headers, padding and the end-of-archive marker are all made of them.
pub(crate) const BLOCK_LEN: usize = 512;

/// The largest PAX or GNU long-name payload accepted, as Go's `maxSpecialFileSize` (1 MiB).
pub(crate) const MAX_SPECIAL_FILE_LEN: u64 = 1 << 20;

pub(crate) use gotar::typeflag;

/// The PAX record key prefix carrying extended attributes (`SCHILY.xattr.<name>`).
const PAX_XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";
/// The PAX record holding a GNU sparse 0.1 map (and the 0.0 records Go gathers into it).
const PAX_GNU_SPARSE_MAP: &[u8] = b"GNU.sparse.map";

/// The header formats Go tells apart by the magic field (`block.getFormat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Pre-POSIX: no magic, no user/group names, no device numbers, no prefix.
    V7,
    /// POSIX ustar (and PAX): `ustar\0` magic, whatever the version field holds; names may be
    /// split into prefix and name.
    Ustar,
    /// Schily's star: `ustar\0` magic and `tar\0` in the last four bytes; a shorter prefix
    /// followed by atime and ctime.
    Star,
    /// Old GNU: `ustar ` magic with version ` \0`; atime, ctime and sparse data where ustar has
    /// the prefix.
    Gnu,
}

/// A point in time in nanoseconds since the Unix epoch (may be negative).
pub(crate) type TimeNs = i128;

/// One header block decoded on its own: a [`Member`] before PAX records or GNU long names are
/// merged, with its type flag as stored, no xattrs and no sparse map.
pub(crate) type RawHeader = Member;

/// Why a header could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderError(pub String);

/// Byte ranges of the header fields (POSIX ustar, with star's and old GNU's reuse of the prefix
/// area), as Go's `archive/tar` `headerV7`, `headerUSTAR`, `headerSTAR` and `headerGNU` lay them out.
mod field {
    use std::ops::Range;
    pub const NAME: Range<usize> = 0..100;
    pub const MODE: Range<usize> = 100..108;
    pub const UID: Range<usize> = 108..116;
    pub const GID: Range<usize> = 116..124;
    pub const SIZE: Range<usize> = 124..136;
    pub const MTIME: Range<usize> = 136..148;
    pub const CHKSUM: Range<usize> = 148..156;
    pub const TYPEFLAG: usize = 156;
    pub const LINKNAME: Range<usize> = 157..257;
    pub const MAGIC: Range<usize> = 257..263;
    pub const VERSION: Range<usize> = 263..265;
    pub const DEV_MAJOR: Range<usize> = 329..337;
    pub const DEV_MINOR: Range<usize> = 337..345;
    /// The ustar prefix, 155 bytes.
    pub const USTAR_PREFIX: Range<usize> = 345..500;
    /// Star's prefix is 131 bytes, then atime and ctime, then (at 508) the `tar\0` trailer.
    pub const STAR_PREFIX: Range<usize> = 345..476;
    pub const STAR_ATIME: Range<usize> = 476..488;
    pub const STAR_CTIME: Range<usize> = 488..500;
    pub const STAR_TRAILER: Range<usize> = 508..512;
    /// Old GNU puts atime and ctime where ustar's prefix starts.
    pub const GNU_ATIME: Range<usize> = 345..357;
    pub const GNU_CTIME: Range<usize> = 357..369;
}

impl RawHeader {
    /// Decodes one 512-byte header block as Go's `Reader.readHeader` does: the checksum and the
    /// magic decide the format, every numeric field that format has must parse, and the name is
    /// joined with the prefix the format has.
    pub fn parse(block: &[u8; BLOCK_LEN]) -> Result<RawHeader, HeaderError> {
        let format = detect_format(block)?;
        let field = |name: &'static str, range: std::ops::Range<usize>| {
            parse_numeric(&block[range])
                .map_err(|()| HeaderError(format!("invalid numeric field {name}")))
        };
        let mut raw = RawHeader {
            typeflag: block[field::TYPEFLAG],
            name: c_string(&block[field::NAME]).to_vec(),
            link_name: c_string(&block[field::LINKNAME]).to_vec(),
            size: field("size", field::SIZE)?,
            mode: field("mode", field::MODE)?,
            uid: field("uid", field::UID)?,
            gid: field("gid", field::GID)?,
            mtime: i128::from(field("mtime", field::MTIME)?) * NANOS_PER_SEC,
            atime: None,
            dev_major: 0,
            dev_minor: 0,
            xattrs: BTreeMap::new(),
            sparse: None,
        };
        if format == Format::V7 {
            return Ok(raw);
        }
        // Every format but V7 has user and group names (unused here) and device numbers.
        raw.dev_major = field("devmajor", field::DEV_MAJOR)?;
        raw.dev_minor = field("devminor", field::DEV_MINOR)?;
        let prefix: &[u8] = match format {
            Format::V7 | Format::Ustar => c_string(&block[field::USTAR_PREFIX]),
            Format::Star => {
                raw.atime = Some(i128::from(field("atime", field::STAR_ATIME)?) * NANOS_PER_SEC);
                field("ctime", field::STAR_CTIME)?;
                c_string(&block[field::STAR_PREFIX])
            }
            Format::Gnu => {
                // Go reads the GNU atime and ctime only when set. Before Go 1.8 its writer put a
                // ustar prefix there, so when either does not parse Go drops both times and takes
                // the area as a prefix if it is ASCII (golang issues 12594 and 21005).
                let time = |range: std::ops::Range<usize>| match block[range.start] {
                    0 => Ok(None),
                    _ => parse_numeric(&block[range]).map(Some),
                };
                match (time(field::GNU_ATIME), time(field::GNU_CTIME)) {
                    (Ok(atime), Ok(_)) => {
                        raw.atime = atime.map(|secs| i128::from(secs) * NANOS_PER_SEC);
                        &[]
                    }
                    _ => {
                        let prefix = c_string(&block[field::USTAR_PREFIX]);
                        if prefix.is_ascii() {
                            prefix
                        } else {
                            &[]
                        }
                    }
                }
            }
        };
        if !prefix.is_empty() {
            let mut joined = prefix.to_vec();
            joined.push(b'/');
            joined.extend_from_slice(&raw.name);
            raw.name = joined;
        }
        Ok(raw)
    }
}

/// The format of a header block as Go's `block.getFormat` guesses it; a checksum that does not
/// parse or does not match either way of summing is an error.
fn detect_format(block: &[u8; BLOCK_LEN]) -> Result<Format, HeaderError> {
    let stored = parse_octal(&block[field::CHKSUM])
        .map_err(|()| HeaderError("invalid checksum field".into()))?;
    let (unsigned_sum, signed_sum) = checksums(block);
    if stored != unsigned_sum && stored != signed_sum {
        return Err(HeaderError(format!(
            "checksum mismatch: header says {stored}, block sums to {unsigned_sum}"
        )));
    }
    let magic = &block[field::MAGIC];
    Ok(
        if magic == b"ustar\0" && &block[field::STAR_TRAILER] == b"tar\0" {
            Format::Star
        } else if magic == b"ustar\0" {
            Format::Ustar
        } else if magic == b"ustar " && &block[field::VERSION] == b" \0" {
            Format::Gnu
        } else {
            Format::V7
        },
    )
}

/// A member of the archive as Go's `tar.Reader.Next` returns it: extended headers merged.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// The name exactly as decoded: PAX `path` or GNU long name applied, nothing cleaned.
    pub name: Vec<u8>,
    pub link_name: Vec<u8>,
    /// The type flag after Go's legacy conversion (`\0` becomes `0` or `5`); as stored in a
    /// [`RawHeader`].
    pub typeflag: u8,
    /// `hdr.Size`: the logical size (for PAX sparse files the real size, see
    /// [`Member::apply_pax_sparse`]).
    pub size: i64,
    pub mode: i64,
    pub uid: i64,
    pub gid: i64,
    pub mtime: TimeNs,
    pub atime: Option<TimeNs>,
    pub dev_major: i64,
    pub dev_minor: i64,
    /// Extended attributes from `SCHILY.xattr.*` PAX records, sorted by name.
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// For PAX sparse files: the (offset, length) fragments of the data, in order.
    pub sparse: Option<Vec<(u64, u64)>>,
}

impl Member {
    /// Merges the PAX records and GNU long names collected before `raw` into a member, in Go's
    /// order: PAX records first, then GNU long names override, then the legacy type conversion.
    pub fn new(
        raw: RawHeader,
        pax: Option<&PaxRecords>,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
    ) -> Result<Member, HeaderError> {
        let mut member = raw;
        if let Some(pax) = pax {
            member.merge_pax(pax, Strictness::Strict)?;
        }
        // Go applies a GNU long name or link only when it is not empty.
        if let Some(name) = long_name.filter(|name| !name.is_empty()) {
            member.name = name;
        }
        if let Some(link) = long_link.filter(|link| !link.is_empty()) {
            member.link_name = link;
        }
        if member.typeflag == typeflag::REG_A {
            member.typeflag = if member.name.ends_with(b"/") {
                typeflag::DIR
            } else {
                typeflag::REG
            };
        }
        Ok(member)
    }

    /// Applies PAX records as Go's `mergePAX` does: empty values keep the header's value.
    /// With [`Strictness::Lenient`] a record whose value does not parse is skipped: Go reads a
    /// global header so, ignoring `mergePAX`'s error, and dockerd 20.10 loads such a layer.
    pub fn merge_pax(
        &mut self,
        pax: &PaxRecords,
        strictness: Strictness,
    ) -> Result<(), HeaderError> {
        for (key, value) in &pax.records {
            if value.is_empty() {
                continue;
            }
            if strictness == Strictness::Lenient {
                let mut alone = PaxRecords::default();
                alone.records.insert(key.clone(), value.clone());
                let mut copy = self.clone();
                if copy.merge_pax(&alone, Strictness::Strict).is_ok() {
                    *self = copy;
                }
                continue;
            }
            let bad = || {
                HeaderError(format!(
                    "invalid PAX record {}",
                    String::from_utf8_lossy(key)
                ))
            };
            match key.as_slice() {
                b"path" => self.name = value.clone(),
                b"linkpath" => self.link_name = value.clone(),
                b"uid" => self.uid = parse_decimal(value).ok_or_else(bad)?,
                b"gid" => self.gid = parse_decimal(value).ok_or_else(bad)?,
                b"size" => self.size = parse_decimal(value).ok_or_else(bad)?,
                b"mtime" => self.mtime = parse_pax_time(value).ok_or_else(bad)?,
                b"atime" => self.atime = Some(parse_pax_time(value).ok_or_else(bad)?),
                b"ctime" => {
                    parse_pax_time(value).ok_or_else(bad)?;
                }
                _ => {
                    if let Some(xattr) = key.strip_prefix(PAX_XATTR_PREFIX) {
                        self.xattrs.insert(xattr.to_vec(), value.clone());
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether the member carries no data in the archive whatever its size field says.
    pub fn is_header_only(&self) -> bool {
        is_header_only_type(self.typeflag)
    }

    /// Reads the GNU sparse PAX records (formats 0.0, 0.1 and 1.0) as Go's
    /// `readGNUSparsePAXHeaders` does: `GNU.sparse.name` replaces the name, `GNU.sparse.size` or
    /// `GNU.sparse.realsize` becomes the size, and the map of a 0.x file is parsed here. Records
    /// of an unknown version leave the member a plain file whose data is stored as is.
    pub fn apply_pax_sparse(&mut self, pax: Option<&PaxRecords>) -> Result<PaxSparse, HeaderError> {
        let Some(pax) = pax else {
            return Ok(PaxSparse::None);
        };
        let record = |key: &[u8]| -> &[u8] { pax.records.get(key).map_or(&[][..], Vec::as_slice) };
        let in_data = match (record(b"GNU.sparse.major"), record(b"GNU.sparse.minor")) {
            (b"0", b"0" | b"1") => false,
            (b"1", b"0") => true,
            (b"", b"") if !record(PAX_GNU_SPARSE_MAP).is_empty() => false,
            _ => return Ok(PaxSparse::None),
        };
        let bad = |what: &str| HeaderError(format!("invalid GNU sparse PAX record {what}"));
        if self.is_header_only() {
            return Err(HeaderError(
                "GNU sparse PAX records on a member without data".into(),
            ));
        }
        let name = record(b"GNU.sparse.name");
        if !name.is_empty() {
            self.name = name.to_vec();
        }
        let size = match record(b"GNU.sparse.size") {
            b"" => record(b"GNU.sparse.realsize"),
            size => size,
        };
        if !size.is_empty() {
            self.size = parse_decimal(size).ok_or_else(|| bad("real size"))?;
        }
        if in_data {
            return Ok(PaxSparse::InData);
        }
        // Format 0.x: `GNU.sparse.numblocks` pairs in the comma-separated `GNU.sparse.map`.
        let n_entries = parse_decimal(record(b"GNU.sparse.numblocks"))
            .and_then(|n_entries| usize::try_from(n_entries).ok())
            .ok_or_else(|| bad("GNU.sparse.numblocks"))?;
        let map = record(PAX_GNU_SPARSE_MAP);
        let numbers: Vec<&[u8]> = if map.is_empty() {
            Vec::new()
        } else {
            map.split(|&byte| byte == b',').collect()
        };
        if Some(numbers.len()) != n_entries.checked_mul(2) {
            return Err(bad("GNU.sparse.map"));
        }
        let fragments = numbers
            .chunks_exact(2)
            .map(|pair| Some((parse_decimal(pair[0])?, parse_decimal(pair[1])?)))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad("GNU.sparse.map"))?;
        Ok(PaxSparse::Map(fragments))
    }
}

/// The (offset, length) data fragments of a sparse file, in order.
pub(crate) type Fragments = Vec<(u64, u64)>;

/// Go's `isHeaderOnlyType`: the types whose data is ignored whatever the size field says.
pub(crate) fn is_header_only_type(flag: u8) -> bool {
    matches!(
        flag,
        typeflag::LINK
            | typeflag::SYMLINK
            | typeflag::CHAR
            | typeflag::BLOCK
            | typeflag::DIR
            | typeflag::FIFO
    )
}

/// What the GNU sparse PAX records of a member say about its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PaxSparse {
    /// Not a sparse file: the data is the content.
    None,
    /// Format 0.0 or 0.1: the (offset, length) fragments, as signed numbers still to validate.
    Map(Vec<(i64, i64)>),
    /// Format 1.0: the map is at the start of the data.
    InData,
}

/// Parses the sparse map of a format 1.0 PAX sparse file from the start of its data, read in
/// whole blocks by `read_block` (Go's `readGNUSparseMap1x0`): newline-terminated decimal numbers,
/// the count of entries, then an offset and a length per entry. At most
/// [`MAX_SPECIAL_FILE_LEN`] bytes are read: Go 1.19 (dockerd 20.10) reads a map of any length
/// into memory, newer Go releases stop at 1 MiB (`errSparseTooLong`), and so does ovl.
pub(crate) fn parse_sparse_map_1x0(
    mut read_block: impl FnMut(&mut [u8; BLOCK_LEN]) -> Result<(), HeaderError>,
) -> Result<Vec<(i64, i64)>, HeaderError> {
    let bad = || HeaderError("invalid GNU sparse 1.0 map".into());
    let mut buf: Vec<u8> = Vec::new();
    let mut consumed = 0usize;
    let mut n_newlines: u64 = 0;
    let mut block = [0u8; BLOCK_LEN];
    let mut feed = |buf: &mut Vec<u8>, n_newlines: &mut u64, wanted: u64| {
        while *n_newlines < wanted {
            if (buf.len() + BLOCK_LEN) as u64 > MAX_SPECIAL_FILE_LEN {
                return Err(HeaderError("GNU sparse 1.0 map too long".into()));
            }
            read_block(&mut block)?;
            buf.extend_from_slice(&block);
            *n_newlines += block.iter().filter(|&&byte| byte == b'\n').count() as u64;
        }
        Ok(())
    };
    let mut next_token = |buf: &[u8], n_newlines: &mut u64| -> Option<i64> {
        *n_newlines -= 1;
        let end = consumed + buf[consumed..].iter().position(|&byte| byte == b'\n')?;
        let token = &buf[consumed..end];
        consumed = end + 1;
        parse_decimal(token)
    };
    feed(&mut buf, &mut n_newlines, 1)?;
    let n_entries = next_token(&buf, &mut n_newlines)
        .and_then(|n_entries| u64::try_from(n_entries).ok())
        .ok_or_else(bad)?;
    let wanted = n_entries.checked_mul(2).ok_or_else(bad)?;
    feed(&mut buf, &mut n_newlines, wanted)?;
    let mut fragments = Vec::new();
    for _ in 0..n_entries {
        let offset = next_token(&buf, &mut n_newlines);
        let len = next_token(&buf, &mut n_newlines);
        fragments.push((offset.ok_or_else(bad)?, len.ok_or_else(bad)?));
    }
    Ok(fragments)
}

/// Checks a sparse map against the real size as Go's `validateSparseEntries` does (no negative
/// numbers, no overflow, inside the file, in order without overlap) and that the fragments add
/// up to the `data_len` bytes of data the archive holds (Go's sparse reader fails the read
/// otherwise: `errMissData`, `errUnrefData`). Returns the fragments and the real size.
pub(crate) fn validate_sparse(
    fragments: &[(i64, i64)],
    real_size: i64,
    data_len: u64,
) -> Result<(Fragments, u64), &'static str> {
    let real_size = u64::try_from(real_size).map_err(|_| "negative real size")?;
    let mut previous_end = 0u64;
    let mut total = 0u64;
    let mut checked = Vec::with_capacity(fragments.len());
    for &(offset, len) in fragments {
        let offset = u64::try_from(offset).map_err(|_| "negative sparse offset")?;
        let len = u64::try_from(len).map_err(|_| "negative sparse length")?;
        let end = offset
            .checked_add(len)
            .filter(|end| i64::try_from(*end).is_ok())
            .ok_or("sparse fragment overflows")?;
        if end > real_size {
            return Err("sparse fragment beyond the real size");
        }
        if offset < previous_end {
            return Err("sparse fragments overlap or are out of order");
        }
        previous_end = end;
        total += len;
        checked.push((offset, len));
    }
    if total != data_len {
        return Err("sparse fragments do not add up to the member's data");
    }
    Ok((checked, real_size))
}

/// Whether [`Member::merge_pax`] fails on a record that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strictness {
    Strict,
    Lenient,
}

/// The records of one PAX extended header; a later record with the same key replaces the earlier.
#[derive(Debug, Clone, Default)]
pub(crate) struct PaxRecords {
    pub records: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl PaxRecords {
    /// Parses `"<len> <key>=<value>\n"` records by their length prefix, as Go's `parsePAX` does
    /// (values may contain newlines, e.g. binary `security.capability` xattrs).
    pub fn parse(mut data: &[u8]) -> Result<PaxRecords, HeaderError> {
        let bad = |why: &str| HeaderError(format!("malformed PAX record: {why}"));
        let mut records = BTreeMap::new();
        let mut sparse_map: Vec<&[u8]> = Vec::new();
        while !data.is_empty() {
            let space = data
                .iter()
                .position(|&byte| byte == b' ')
                .ok_or_else(|| bad("no length"))?;
            let len = std::str::from_utf8(&data[..space])
                .ok()
                .and_then(|text| text.parse::<usize>().ok())
                .ok_or_else(|| bad("invalid length"))?;
            // The shortest record, "5 k=\n", has 5 bytes.
            if len < 5 || len > data.len() || len <= space + 1 {
                return Err(bad("length out of range"));
            }
            let record = &data[space + 1..len];
            let Some((&b'\n', record)) = record.split_last() else {
                return Err(bad("missing newline"));
            };
            let equals = record
                .iter()
                .position(|&byte| byte == b'=')
                .ok_or_else(|| bad("no '='"))?;
            let (key, value) = (&record[..equals], &record[equals + 1..]);
            let value_may_not_hold_nul = matches!(key, b"path" | b"linkpath" | b"uname" | b"gname");
            if key.is_empty()
                || (value_may_not_hold_nul && value.contains(&0))
                || (!value_may_not_hold_nul && key.contains(&0))
            {
                return Err(bad("invalid key or value"));
            }
            data = &data[len..];
            // GNU sparse format 0.0 repeats offset and numbytes records; Go gathers them, in
            // strict alternation and without commas, into a 0.1 map.
            if key == b"GNU.sparse.offset" || key == b"GNU.sparse.numbytes" {
                let expected: &[u8] = if sparse_map.len().is_multiple_of(2) {
                    b"GNU.sparse.offset"
                } else {
                    b"GNU.sparse.numbytes"
                };
                if key != expected || value.contains(&b',') {
                    return Err(bad("GNU sparse 0.0 records out of order"));
                }
                sparse_map.push(value);
                continue;
            }
            records.insert(key.to_vec(), value.to_vec());
        }
        if !sparse_map.is_empty() {
            records.insert(
                PAX_GNU_SPARSE_MAP.to_vec(),
                sparse_map.join(&b',')[..].to_vec(),
            );
        }
        Ok(PaxRecords { records })
    }

    #[cfg(test)]
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.records.get(key).map(Vec::as_slice)
    }
}

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// The bytes of a NUL-terminated field up to the first NUL (Go's `parseString`).
pub(crate) fn c_string(field: &[u8]) -> &[u8] {
    match field.iter().position(|&byte| byte == 0) {
        Some(end) => &field[..end],
        None => field,
    }
}

/// The two header checksums tar writers have used: the sum of all bytes as unsigned and as
/// signed values, with the checksum field itself counted as eight spaces.
fn checksums(block: &[u8; BLOCK_LEN]) -> (i64, i64) {
    /// The checksum field occupies bytes 148..156 of the header.
    const CHKSUM_RANGE: std::ops::Range<usize> = 148..156;
    let mut unsigned_sum: i64 = 0;
    let mut signed_sum: i64 = 0;
    for (idx, &byte) in block.iter().enumerate() {
        let byte = if CHKSUM_RANGE.contains(&idx) {
            b' '
        } else {
            byte
        };
        unsigned_sum += i64::from(byte);
        signed_sum += i64::from(byte as i8);
    }
    (unsigned_sum, signed_sum)
}

/// Parses a numeric header field as Go's `parseNumeric`: base-256 (two's complement, first bit
/// set) or octal padded with spaces and NULs.
pub(crate) fn parse_numeric(field: &[u8]) -> Result<i64, ()> {
    let Some(&first) = field.first() else {
        return Ok(0);
    };
    if first & 0x80 == 0 {
        return parse_octal(field);
    }
    // Negative numbers have the second bit set; their bytes are inverted so that the magnitude
    // can be accumulated as an unsigned number (-a-1 == !a).
    let invert: u8 = if first & 0x40 != 0 { 0xff } else { 0 };
    let mut value: u64 = 0;
    for (idx, &byte) in field.iter().enumerate() {
        let mut byte = byte ^ invert;
        if idx == 0 {
            byte &= 0x7f;
        }
        if value >> 56 != 0 {
            return Err(());
        }
        value = (value << 8) | u64::from(byte);
    }
    let value = i64::try_from(value).map_err(|_| ())?;
    Ok(if invert == 0xff { !value } else { value })
}

/// Parses an octal field, ignoring leading and trailing spaces and NULs (Go's `parseOctal`).
fn parse_octal(field: &[u8]) -> Result<i64, ()> {
    let is_pad = |byte: &u8| *byte == b' ' || *byte == 0;
    let start = field.iter().position(|byte| !is_pad(byte));
    let Some(start) = start else {
        return Ok(0);
    };
    let end = field
        .iter()
        .rposition(|byte| !is_pad(byte))
        .map_or(start, |end| end + 1);
    let digits = c_string(&field[start..end]);
    // Go's `strconv.ParseUint` takes digits only; Rust's would also take a leading `+`.
    if !digits.iter().all(|byte| (b'0'..=b'7').contains(byte)) {
        return Err(());
    }
    let text = std::str::from_utf8(digits).map_err(|_| ())?;
    let value = u64::from_str_radix(text, 8).map_err(|_| ())?;
    i64::try_from(value).map_err(|_| ())
}

/// Parses a signed decimal PAX value.
fn parse_decimal(value: &[u8]) -> Option<i64> {
    std::str::from_utf8(value).ok()?.parse::<i64>().ok()
}

/// Parses a PAX time `<seconds>[.<fraction>]` as Go's `parsePAXTime`: the fraction is cut or
/// padded to nanoseconds and takes the sign of the seconds.
fn parse_pax_time(value: &[u8]) -> Option<TimeNs> {
    /// Nanoseconds have nine decimal digits.
    const NANO_DIGITS: usize = 9;
    let text = std::str::from_utf8(value).ok()?;
    let (secs_text, fraction) = match text.split_once('.') {
        Some((secs, fraction)) => (secs, fraction),
        None => (text, ""),
    };
    let secs = i128::from(secs_text.parse::<i64>().ok()?);
    if !fraction.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let mut digits: String = fraction.chars().take(NANO_DIGITS).collect();
    while digits.len() < NANO_DIGITS {
        digits.push('0');
    }
    let nanos = i128::from(digits.parse::<u32>().ok()?);
    if secs_text.starts_with('-') {
        Some(secs * NANOS_PER_SEC - nanos)
    } else {
        Some(secs * NANOS_PER_SEC + nanos)
    }
}

/// The number of zero bytes that pad `len` bytes of data to a whole block.
pub(crate) fn block_padding(len: u64) -> u64 {
    let block = BLOCK_LEN as u64;
    (block - len % block) % block
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_fields_follow_go() {
        assert_eq!(parse_numeric(b"0000644\0"), Ok(0o644));
        assert_eq!(parse_numeric(b"  644 \0"), Ok(0o644));
        assert_eq!(parse_numeric(b"\0\0\0\0"), Ok(0));
        assert_eq!(parse_numeric(b"12\x0034"), Ok(0o12));
        assert_eq!(parse_numeric(b"0000009\0"), Err(()));
        // Base-256: 0x80 marker then big-endian bytes.
        assert_eq!(
            parse_numeric(&[0x80, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00, 0x00, 0x00]),
            Ok(1 << 32)
        );
        // Negative base-256 (-1 is all ones).
        assert_eq!(parse_numeric(&[0xff; 8]), Ok(-1));
        // Overflowing base-256.
        assert_eq!(
            parse_numeric(&[0x80, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(())
        );
    }

    #[test]
    fn pax_times_follow_go() {
        assert_eq!(parse_pax_time(b"1"), Some(1_000_000_000));
        assert_eq!(parse_pax_time(b"1.5"), Some(1_500_000_000));
        assert_eq!(parse_pax_time(b"1.1234567891"), Some(1_123_456_789));
        assert_eq!(parse_pax_time(b"-1.5"), Some(-1_500_000_000));
        assert_eq!(parse_pax_time(b"1.x"), None);
    }

    #[test]
    fn pax_records_are_parsed_by_length() {
        // A value holding a newline, as binary xattrs do.
        let data = b"28 SCHILY.xattr.user.a=x\ny\n\n11 path=ab\n";
        let pax = PaxRecords::parse(data).expect("parse");
        assert_eq!(pax.get(b"SCHILY.xattr.user.a"), Some(&b"x\ny\n"[..]));
        assert_eq!(pax.get(b"path"), Some(&b"ab"[..]));
        assert!(PaxRecords::parse(b"12 path=ab\n").is_err());
        assert!(PaxRecords::parse(b"9 path\n").is_err());
        assert!(PaxRecords::parse(b"12 path=a\0b\n").is_err());
    }

    /// A ustar header block for `name` (4 bytes of data) with `edit` applied, then checksummed.
    fn block(name: &[u8], edit: impl FnOnce(&mut [u8; BLOCK_LEN])) -> [u8; BLOCK_LEN] {
        let mut block = [0u8; BLOCK_LEN];
        block[..name.len()].copy_from_slice(name);
        block[100..108].copy_from_slice(b"0000644\0");
        block[124..136].copy_from_slice(b"00000000004\0");
        block[156] = b'0';
        block[257..265].copy_from_slice(b"ustar\x0000");
        edit(&mut block);
        block[148..156].copy_from_slice(b"        ");
        let sum: u32 = block.iter().map(|&byte| u32::from(byte)).sum();
        block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        block
    }

    fn name_of(block: &[u8; BLOCK_LEN]) -> Vec<u8> {
        RawHeader::parse(block).expect("parse").name
    }

    /// A [`block`] for `f` with each `(offset, bytes)` of `edits` written over it.
    fn block_with(edits: &[(usize, &[u8])]) -> [u8; BLOCK_LEN] {
        block(b"f", |b| {
            for (offset, bytes) in edits {
                b[*offset..offset + bytes.len()].copy_from_slice(bytes);
            }
        })
    }

    #[test]
    fn prefixes_follow_go_per_format() {
        // Expected names written from Go's `readHeader`.
        const GNU_MAGIC: (usize, &[u8]) = (257, b"ustar  \0");
        const PREFIX: (usize, &[u8]) = (345, b"pre");
        // What the case is, the edits of the block, the name Go reads.
        type Case<'a> = (&'a str, &'a [(usize, &'a [u8])], &'a [u8]);
        let names: [Case; 6] = [
            ("ustar", &[PREFIX], b"pre/f"),
            // Any version after the `ustar\0` magic is ustar.
            ("any version", &[(263, b"\0\0"), PREFIX], b"pre/f"),
            // Old GNU with text in atime: the area is a prefix (golang issues 12594, 21005).
            ("gnu text", &[GNU_MAGIC, PREFIX], b"pre/f"),
            // Old GNU with a non-ASCII area that does not parse: no prefix.
            ("gnu binary", &[GNU_MAGIC, (345, &[0xe9])], b"f"),
            // star: 131-byte prefix, atime and ctime must parse.
            (
                "star",
                &[(345, b"star"), (476, b"00000000010\0"), (508, b"tar\0")],
                b"star/f",
            ),
            // V7: no prefix, no device numbers read.
            ("v7", &[(257, &[0; 8]), (329, b"zzz"), PREFIX], b"f"),
        ];
        for (what, edits, expected) in names {
            assert_eq!(name_of(&block_with(edits)), expected, "{what}");
        }
        // Old GNU whose atime parses but whose ctime does not: also a prefix.
        let gnu_ctime = block_with(&[GNU_MAGIC, (345, b"00000000001\0"), (357, b"xyz")]);
        let header = RawHeader::parse(&gnu_ctime).expect("parse");
        assert_eq!(header.atime, None);
        assert!(header.name.starts_with(b"00000000001"));
        // Old GNU with octal times: no prefix, the atime is read.
        let octal_time: &[u8] = b"00000000010\0";
        let gnu_times = block_with(&[GNU_MAGIC, (345, octal_time), (357, octal_time)]);
        let header = RawHeader::parse(&gnu_times).expect("parse");
        assert_eq!(
            (header.name.as_slice(), header.atime),
            (&b"f"[..], Some(8 * NANOS_PER_SEC))
        );
        let star_bad = block_with(&[(476, b"zzz"), (508, b"tar\0")]);
        assert!(RawHeader::parse(&star_bad).is_err());
        // A `+` is not an octal digit to Go.
        assert!(RawHeader::parse(&block_with(&[(100, b"+000644\0")])).is_err());
    }

    #[test]
    fn gnu_sparse_pax_records_follow_go() {
        // Format 0.0: offset and numbytes records alternate and become a 0.1 map.
        let pax = PaxRecords::parse(&records(&[
            ("GNU.sparse.offset", "0"),
            ("GNU.sparse.numbytes", "5"),
            ("GNU.sparse.offset", "100"),
            ("GNU.sparse.numbytes", "3"),
        ]))
        .expect("parse");
        assert_eq!(pax.get(b"GNU.sparse.map"), Some(&b"0,5,100,3"[..]));
        assert!(PaxRecords::parse(&records(&[("GNU.sparse.numbytes", "5")])).is_err());
        let mut member = Member::new(
            block(b"GNUSparseFile.0/f", |_| {}).pipe(|b| RawHeader::parse(&b).expect("parse")),
            None,
            None,
            None,
        )
        .expect("member");
        let sparse_records = PaxRecords::parse(&records(&[
            ("GNU.sparse.major", "0"),
            ("GNU.sparse.minor", "1"),
            ("GNU.sparse.name", "f"),
            ("GNU.sparse.realsize", "200"),
            ("GNU.sparse.numblocks", "2"),
            ("GNU.sparse.map", "0,5,100,3"),
        ]))
        .expect("parse");
        assert_eq!(
            member.apply_pax_sparse(Some(&sparse_records)),
            Ok(PaxSparse::Map(vec![(0, 5), (100, 3)]))
        );
        assert_eq!((member.name.as_slice(), member.size), (&b"f"[..], 200));
        // An unknown version leaves a plain file.
        let unknown = PaxRecords::parse(&records(&[("GNU.sparse.major", "2")])).expect("parse");
        assert_eq!(member.apply_pax_sparse(Some(&unknown)), Ok(PaxSparse::None));
        // Format 1.0: the map is read in whole blocks from the data.
        let mut data = b"2\n0\n5\n100\n3\n".to_vec();
        data.resize(BLOCK_LEN, 0);
        let mut blocks = data.chunks(BLOCK_LEN);
        let map = parse_sparse_map_1x0(|block| {
            block.copy_from_slice(blocks.next().ok_or(HeaderError("end".into()))?);
            Ok(())
        });
        assert_eq!(map, Ok(vec![(0, 5), (100, 3)]));
        // A map that never ends is cut at 1 MiB.
        let endless = parse_sparse_map_1x0(|block| {
            block.fill(b'1');
            Ok(())
        });
        assert!(endless.is_err());
        assert_eq!(
            validate_sparse(&[(0, 5), (100, 3)], 200, 8),
            Ok((vec![(0, 5), (100, 3)], 200))
        );
        assert!(validate_sparse(&[(100, 3), (0, 5)], 200, 8).is_err());
        assert!(validate_sparse(&[(0, 5), (199, 3)], 200, 8).is_err());
        assert!(validate_sparse(&[(0, 5)], 200, 8).is_err());
        assert!(validate_sparse(&[(-1, 5)], 200, 5).is_err());
        assert!(validate_sparse(&[(i64::MAX, 1)], i64::MAX, 1).is_err());
    }

    #[test]
    fn global_headers_skip_records_that_do_not_parse() {
        let mut member = Member::new(
            RawHeader::parse(&block(b"g", |b| b[156] = b'g')).expect("parse"),
            None,
            None,
            None,
        )
        .expect("member");
        let records = PaxRecords::parse(b"11 path=pp\n10 uid=ab\n").expect("parse");
        assert!(member
            .clone()
            .merge_pax(&records, Strictness::Strict)
            .is_err());
        member
            .merge_pax(&records, Strictness::Lenient)
            .expect("lenient");
        assert_eq!(member.name, b"pp");
    }

    /// PAX records `<len> <key>=<value>\n`, lengths computed.
    fn records(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut data = Vec::new();
        for (key, value) in pairs {
            let body = format!(" {key}={value}\n");
            // The length counts its own digits: the smallest that adds up.
            let len = (body.len() + 1..)
                .find(|len| len.to_string().len() + body.len() == *len)
                .expect("a length");
            data.extend_from_slice(format!("{len}{body}").as_bytes());
        }
        data
    }

    /// Calls a function on a value, for building test inputs in one expression.
    trait Pipe: Sized {
        fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
            f(self)
        }
    }
    impl<T> Pipe for T {}

    #[test]
    fn padding_rounds_to_blocks() {
        assert_eq!(block_padding(0), 0);
        assert_eq!(block_padding(1), 511);
        assert_eq!(block_padding(512), 0);
        assert_eq!(block_padding(1025), 511);
    }
}
