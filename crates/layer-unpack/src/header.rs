//! Decoding tar headers with the semantics of Go's `archive/tar` reader, which is what Docker and
//! tar-split use: numeric fields (octal or base-256), format detection, checksum validation, PAX
//! records and GNU long names. The raw block layouts come from the `tar` crate; the decoding rules
//! are Go's, so that names, sizes and times agree with Docker byte for byte.

use std::collections::BTreeMap;

/// The size of a tar block; headers, padding and the end-of-archive marker are all made of them.
pub(crate) const BLOCK_LEN: usize = 512;

/// The largest PAX or GNU long-name payload accepted, as Go's `maxSpecialFileSize` (1 MiB).
pub(crate) const MAX_SPECIAL_FILE_LEN: u64 = 1 << 20;

/// Type flags of the tar format (POSIX ustar, PAX and GNU extensions).
pub(crate) mod typeflag {
    /// A regular file in old (pre-POSIX) archives; a directory when the name ends in `/`.
    pub const REG_A: u8 = b'\0';
    pub const REG: u8 = b'0';
    pub const LINK: u8 = b'1';
    pub const SYMLINK: u8 = b'2';
    pub const CHAR: u8 = b'3';
    pub const BLOCK: u8 = b'4';
    pub const DIR: u8 = b'5';
    pub const FIFO: u8 = b'6';
    /// PAX extended header for the next member.
    pub const PAX_LOCAL: u8 = b'x';
    /// PAX global extended header.
    pub const PAX_GLOBAL: u8 = b'g';
    /// GNU long name for the next member.
    pub const GNU_LONG_NAME: u8 = b'L';
    /// GNU long link name for the next member.
    pub const GNU_LONG_LINK: u8 = b'K';
    /// Old GNU sparse file.
    pub const GNU_SPARSE: u8 = b'S';
}

/// The PAX record key prefix carrying extended attributes (`SCHILY.xattr.<name>`).
const PAX_XATTR_PREFIX: &[u8] = b"SCHILY.xattr.";

/// The header formats Go tells apart by the magic field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Pre-POSIX: no magic, no user/group names, no device numbers, no prefix.
    V7,
    /// POSIX ustar (and PAX): `ustar\0` magic, names may be split into prefix and name.
    Ustar,
    /// Old GNU: `ustar  \0` magic, atime/ctime and sparse data where ustar has the prefix.
    Gnu,
}

/// A point in time in nanoseconds since the Unix epoch (may be negative).
pub(crate) type TimeNs = i128;

/// One header block decoded on its own (before PAX records or GNU long names are merged).
#[derive(Debug, Clone)]
pub(crate) struct RawHeader {
    pub format: Format,
    pub typeflag: u8,
    pub name: Vec<u8>,
    pub link_name: Vec<u8>,
    pub size: i64,
    pub mode: i64,
    pub uid: i64,
    pub gid: i64,
    pub mtime: TimeNs,
    pub atime: Option<TimeNs>,
    pub dev_major: i64,
    pub dev_minor: i64,
}

/// Why a header could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderError(pub String);

impl RawHeader {
    /// Decodes one 512-byte header block, validating its checksum.
    pub fn parse(block: &[u8; BLOCK_LEN]) -> Result<RawHeader, HeaderError> {
        let header = tar::Header::from_byte_slice(block);
        let old = header.as_old();
        let stored =
            parse_octal(&old.cksum).map_err(|_| HeaderError("invalid checksum field".into()))?;
        let (unsigned_sum, signed_sum) = checksums(block);
        if stored != unsigned_sum && stored != signed_sum {
            return Err(HeaderError(format!(
                "checksum mismatch: header says {stored}, block sums to {unsigned_sum}"
            )));
        }
        let format = if header.as_ustar().is_some() {
            Format::Ustar
        } else if header.as_gnu().is_some() {
            Format::Gnu
        } else {
            Format::V7
        };
        let field = |name: &'static str, bytes: &[u8]| {
            parse_numeric(bytes).map_err(|()| HeaderError(format!("invalid numeric field {name}")))
        };
        let mut raw = RawHeader {
            format,
            typeflag: old.linkflag[0],
            name: c_string(&old.name).to_vec(),
            link_name: c_string(&old.linkname).to_vec(),
            size: field("size", &old.size)?,
            mode: field("mode", &old.mode)?,
            uid: field("uid", &old.uid)?,
            gid: field("gid", &old.gid)?,
            mtime: i128::from(field("mtime", &old.mtime)?) * NANOS_PER_SEC,
            atime: None,
            dev_major: 0,
            dev_minor: 0,
        };
        if let Some(ustar) = header.as_ustar() {
            raw.dev_major = field("devmajor", &ustar.dev_major)?;
            raw.dev_minor = field("devminor", &ustar.dev_minor)?;
            let prefix = c_string(&ustar.prefix);
            if !prefix.is_empty() {
                let mut joined = prefix.to_vec();
                joined.push(b'/');
                joined.extend_from_slice(&raw.name);
                raw.name = joined;
            }
        } else if let Some(gnu) = header.as_gnu() {
            raw.dev_major = field("devmajor", &gnu.dev_major)?;
            raw.dev_minor = field("devminor", &gnu.dev_minor)?;
            // Go reads the GNU atime only when the field is set, and ignores it when it does not
            // parse (old Go writers put a ustar prefix there).
            if gnu.atime[0] != 0 {
                if let Ok(secs) = parse_numeric(&gnu.atime) {
                    raw.atime = Some(i128::from(secs) * NANOS_PER_SEC);
                }
            }
        }
        Ok(raw)
    }
}

/// A member of the archive as Go's `tar.Reader.Next` returns it: extended headers merged.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// The name exactly as decoded: PAX `path` or GNU long name applied, nothing cleaned.
    pub name: Vec<u8>,
    pub link_name: Vec<u8>,
    /// The type flag after Go's legacy conversion (`\0` becomes `0` or `5`).
    pub typeflag: u8,
    /// `hdr.Size`: the logical size (for old GNU sparse files the real size).
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
    /// For old GNU sparse files: the (offset, length) fragments of the data.
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
        let mut member = Member {
            name: raw.name,
            link_name: raw.link_name,
            typeflag: raw.typeflag,
            size: raw.size,
            mode: raw.mode,
            uid: raw.uid,
            gid: raw.gid,
            mtime: raw.mtime,
            atime: raw.atime,
            dev_major: raw.dev_major,
            dev_minor: raw.dev_minor,
            xattrs: BTreeMap::new(),
            sparse: None,
        };
        if let Some(pax) = pax {
            member.merge_pax(pax)?;
        }
        if let Some(name) = long_name {
            member.name = name;
        }
        if let Some(link) = long_link {
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
    pub fn merge_pax(&mut self, pax: &PaxRecords) -> Result<(), HeaderError> {
        for (key, value) in &pax.records {
            if value.is_empty() {
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

    /// Whether the member carries no data in the archive whatever its size field says (Go's
    /// `isHeaderOnlyType`).
    pub fn is_header_only(&self) -> bool {
        matches!(
            self.typeflag,
            typeflag::LINK
                | typeflag::SYMLINK
                | typeflag::CHAR
                | typeflag::BLOCK
                | typeflag::DIR
                | typeflag::FIFO
        )
    }
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
            records.insert(key.to_vec(), value.to_vec());
            data = &data[len..];
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

    #[test]
    fn padding_rounds_to_blocks() {
        assert_eq!(block_padding(0), 0);
        assert_eq!(block_padding(1), 511);
        assert_eq!(block_padding(512), 0);
        assert_eq!(block_padding(1025), 511);
    }
}
