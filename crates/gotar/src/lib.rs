//! gotar: tar headers encoded the way Go's `archive/tar` Writer encodes them.
//!
//! Docker builds every tar it produces (layer diffs for `docker commit`, `docker save` archives)
//! with Go's writer, and the bytes matter where digests are compared. This crate reproduces that
//! writer's choices (format.md §6.3): a plain USTAR header when everything fits (long names split into
//! prefix and name at a `/`), otherwise a PAX extended header (`<dir>/PaxHeaders.0/<base>`, records
//! sorted by key) followed by a USTAR-magic main header; zero-padded, NUL-terminated octal fields;
//! a checksum of six octal digits, NUL and space; device numbers always formatted.
//!
//! **Architecture invariant:** bytes in, bytes out; no file system access.
#![deny(unsafe_code)]

use std::collections::BTreeMap;

/// The size of a tar block.
pub const BLOCK_LEN: usize = 512;

/// Two zero blocks end an archive; Go's writer adds no further record padding.
pub const END_OF_ARCHIVE: [u8; 2 * BLOCK_LEN] = [0; 2 * BLOCK_LEN];

/// Type flags of the tar format (POSIX ustar, PAX and GNU extensions), for the encoders here and
/// the readers that decode what they or others wrote.
pub mod typeflag {
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
    pub const PAX: u8 = b'x';
    /// PAX global extended header.
    pub const PAX_GLOBAL: u8 = b'g';
    /// GNU long name for the next member.
    pub const GNU_LONG_NAME: u8 = b'L';
    /// GNU long link name for the next member.
    pub const GNU_LONG_LINK: u8 = b'K';
    /// Old GNU sparse file.
    pub const GNU_SPARSE: u8 = b'S';
}

/// Errors of the encoder.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("tar entry {name}: {field} {value} does not fit a header")]
    FieldTooLong {
        name: String,
        field: &'static str,
        value: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One tar member's header, with Go `tar.Header` meanings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// The member name (directories end with `/`); raw bytes.
    pub name: Vec<u8>,
    pub typeflag: u8,
    /// Permission bits, plus file-type bits where the producer adds them (Docker does).
    pub mode: i64,
    pub uid: i64,
    pub gid: i64,
    pub size: i64,
    /// Whole seconds since the epoch.
    pub mtime: i64,
    pub linkname: Vec<u8>,
    pub uname: Vec<u8>,
    pub gname: Vec<u8>,
    pub devmajor: i64,
    pub devminor: i64,
    /// Extended attributes, emitted as `SCHILY.xattr.<name>` PAX records (forcing PAX).
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

/// Field sizes of the V7/USTAR header (offsets are implied by `Layout`).
const NAME_LEN: usize = 100;
const PREFIX_LEN: usize = 155;
const UNAME_LEN: usize = 32;

/// Offsets of the header fields.
struct Layout;

impl Layout {
    const NAME: (usize, usize) = (0, 100);
    const MODE: (usize, usize) = (100, 8);
    const UID: (usize, usize) = (108, 8);
    const GID: (usize, usize) = (116, 8);
    const SIZE: (usize, usize) = (124, 12);
    const MTIME: (usize, usize) = (136, 12);
    const CHKSUM: (usize, usize) = (148, 8);
    const TYPEFLAG: usize = 156;
    const LINKNAME: (usize, usize) = (157, 100);
    const MAGIC: (usize, usize) = (257, 6);
    const VERSION: (usize, usize) = (263, 2);
    const UNAME: (usize, usize) = (265, 32);
    const GNAME: (usize, usize) = (297, 32);
    const DEVMAJOR: (usize, usize) = (329, 8);
    const DEVMINOR: (usize, usize) = (337, 8);
    const PREFIX: (usize, usize) = (345, 155);
}

impl Header {
    /// Encodes the header blocks of this member: an optional PAX extended header (its header
    /// block and padded records) followed by the main header block. The member's data, padded
    /// with [`padding`], follows in the archive.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut pax: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut ustar_ok = true;

        let name_needs_pax = self.name.len() > NAME_LEN || !self.name.is_ascii();
        let split = split_ustar_path(&self.name);
        if name_needs_pax {
            pax.insert("path".into(), self.name.clone());
            if split.is_none() {
                ustar_ok = false;
            }
        }
        if self.linkname.len() > NAME_LEN || !self.linkname.is_ascii() {
            pax.insert("linkpath".into(), self.linkname.clone());
            ustar_ok = false;
        }
        for (key, value) in [("uname", &self.uname), ("gname", &self.gname)] {
            if value.len() > UNAME_LEN || !value.is_ascii() {
                pax.insert(key.into(), value.clone());
                ustar_ok = false;
            }
        }
        for (key, value, width) in [
            ("uid", self.uid, Layout::UID.1),
            ("gid", self.gid, Layout::GID.1),
            ("size", self.size, Layout::SIZE.1),
        ] {
            if !fits_octal(width, value) {
                pax.insert(key.into(), value.to_string().into_bytes());
                ustar_ok = false;
            }
        }
        if !fits_octal(Layout::MTIME.1, self.mtime) {
            pax.insert("mtime".into(), self.mtime.to_string().into_bytes());
            ustar_ok = false;
        }
        for (field, value) in [("devmajor", self.devmajor), ("devminor", self.devminor)] {
            if !fits_octal(Layout::DEVMAJOR.1, value) {
                return Err(self.too_long(field, value.to_string()));
            }
        }
        for (key, value) in &self.xattrs {
            pax.insert(format!("SCHILY.xattr.{key}"), value.clone());
            ustar_ok = false;
        }

        if ustar_ok {
            let mut block = self.template();
            match split {
                Some((prefix, name)) if name_needs_pax => {
                    put_string(&mut block, Layout::NAME, name);
                    put_string(&mut block, Layout::PREFIX, prefix);
                }
                _ => put_string(&mut block, Layout::NAME, &self.name),
            }
            finish_block(&mut block);
            return Ok(block.to_vec());
        }

        let records = pax_records(&pax);
        let mut out = Vec::with_capacity(3 * BLOCK_LEN + records.len());
        out.extend_from_slice(&pax_header_block(&self.name, records.len()));
        out.extend_from_slice(&records);
        out.resize(out.len() + padding(records.len() as u64), 0);

        let mut block = self.template();
        put_string(&mut block, Layout::NAME, &to_ascii(&self.name));
        finish_block(&mut block);
        out.extend_from_slice(&block);
        Ok(out)
    }

    /// The V7 and USTAR fields common to both header kinds; numbers that do not fit are zero
    /// (their PAX records carry them), strings are made ASCII and cut to their fields.
    fn template(&self) -> [u8; BLOCK_LEN] {
        let mut block = [0u8; BLOCK_LEN];
        block[Layout::TYPEFLAG] = self.typeflag;
        put_string(&mut block, Layout::LINKNAME, &to_ascii(&self.linkname));
        put_octal(&mut block, Layout::MODE, self.mode);
        put_octal(&mut block, Layout::UID, self.uid);
        put_octal(&mut block, Layout::GID, self.gid);
        put_octal(&mut block, Layout::SIZE, self.size);
        put_octal(&mut block, Layout::MTIME, self.mtime);
        put_string(&mut block, Layout::UNAME, &to_ascii(&self.uname));
        put_string(&mut block, Layout::GNAME, &to_ascii(&self.gname));
        put_octal(&mut block, Layout::DEVMAJOR, self.devmajor);
        put_octal(&mut block, Layout::DEVMINOR, self.devminor);
        block
    }

    fn too_long(&self, field: &'static str, value: String) -> Error {
        Error::FieldTooLong {
            name: String::from_utf8_lossy(&self.name).into_owned(),
            field,
            value,
        }
    }
}

/// The number of zero bytes that pad `size` bytes of member data to a whole block.
pub fn padding(size: u64) -> usize {
    let rest = (size % BLOCK_LEN as u64) as usize;
    if rest == 0 {
        0
    } else {
        BLOCK_LEN - rest
    }
}

/// The header block of a PAX extended header for `name`: `<dir>/PaxHeaders.0/<base>`, made
/// ASCII, cut to 100 bytes and stripped of trailing slashes; mode, ids and mtime zero.
fn pax_header_block(name: &[u8], records_len: usize) -> [u8; BLOCK_LEN] {
    let (dir, base) = match name.iter().rposition(|&b| b == b'/') {
        // Go splits at the last slash; a trailing slash leaves an empty base.
        Some(idx) => (&name[..=idx], &name[idx + 1..]),
        None => (&name[..0], name),
    };
    let mut pax_name = path_join(dir, base);
    pax_name = to_ascii(&pax_name);
    pax_name.truncate(NAME_LEN);
    while pax_name.last() == Some(&b'/') {
        pax_name.pop();
    }
    let mut block = [0u8; BLOCK_LEN];
    block[Layout::TYPEFLAG] = typeflag::PAX;
    put_string(&mut block, Layout::NAME, &pax_name);
    put_octal(&mut block, Layout::MODE, 0);
    put_octal(&mut block, Layout::UID, 0);
    put_octal(&mut block, Layout::GID, 0);
    put_octal(&mut block, Layout::SIZE, records_len as i64);
    put_octal(&mut block, Layout::MTIME, 0);
    finish_block(&mut block);
    block
}

/// Go's `path.Join(dir, "PaxHeaders.0", base)`: joined with single slashes and cleaned.
fn path_join(dir: &[u8], base: &[u8]) -> Vec<u8> {
    let mut joined = Vec::with_capacity(dir.len() + base.len() + 14);
    joined.extend_from_slice(dir);
    if !joined.is_empty() && joined.last() != Some(&b'/') {
        joined.push(b'/');
    }
    joined.extend_from_slice(b"PaxHeaders.0");
    if !base.is_empty() {
        joined.push(b'/');
        joined.extend_from_slice(base);
    }
    gocompat::path::clean(&joined)
}

/// PAX records `"<len> <key>=<value>\n"` in key order, where `<len>` counts the whole record.
fn pax_records(records: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        let body_len = 1 + key.len() + 1 + value.len() + 1;
        let mut len = body_len + 1;
        while len != body_len + len.to_string().len() {
            len = body_len + len.to_string().len();
        }
        out.extend_from_slice(len.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(key.as_bytes());
        out.push(b'=');
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

/// Go's `splitUSTARPath`: a name longer than 100 bytes split at a `/` into a prefix of at most
/// 155 and a name of at most 100 bytes.
fn split_ustar_path(name: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut length = name.len();
    if length <= NAME_LEN || !name.is_ascii() {
        return None;
    }
    if length > PREFIX_LEN + 1 {
        length = PREFIX_LEN + 1;
    } else if name[length - 1] == b'/' {
        length -= 1;
    }
    let idx = name[..length].iter().rposition(|&b| b == b'/')?;
    let suffix_len = name.len() - idx - 1;
    if idx == 0 || suffix_len > NAME_LEN || suffix_len == 0 || idx > PREFIX_LEN {
        return None;
    }
    Some((&name[..idx], &name[idx + 1..]))
}

/// Whether `value` fits a NUL-terminated octal field of `width` bytes.
fn fits_octal(width: usize, value: i64) -> bool {
    let digits = (width - 1) as u32;
    value >= 0 && (digits >= 21 || value < 8i64.pow(digits))
}

/// Go's `toASCII`: drops every non-ASCII byte.
fn to_ascii(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().copied().filter(u8::is_ascii).collect()
}

/// Go's `formatString`: copies, NUL-terminates when room is left, and for a cut name that would
/// end in `/` replaces the trailing slashes by a NUL.
fn put_string(block: &mut [u8; BLOCK_LEN], (offset, len): (usize, usize), value: &[u8]) {
    let field = &mut block[offset..offset + len];
    let n = value.len().min(len);
    field[..n].copy_from_slice(&value[..n]);
    if value.len() < len {
        field[value.len()] = 0;
    }
    if value.len() > len && field[len - 1] == b'/' {
        let kept = len
            - value[..len]
                .iter()
                .rev()
                .take_while(|&&b| b == b'/')
                .count();
        field[kept] = 0;
    }
}

/// Go's `formatOctal`: zero-padded octal leaving room for a NUL; a value that does not fit is 0.
fn put_octal(block: &mut [u8; BLOCK_LEN], field: (usize, usize), value: i64) {
    let mut value = if fits_octal(field.1, value) { value } else { 0 };
    // The digits right-aligned in the field's width less one, zeros before them, then the NUL.
    let (offset, len) = field;
    for at in (offset..offset + len - 1).rev() {
        block[at] = b'0' + (value & 7) as u8;
        value >>= 3;
    }
    block[offset + len - 1] = 0;
}

/// Sets the USTAR magic and version and the checksum (six octal digits, NUL, space; computed
/// with the checksum field as spaces).
fn finish_block(block: &mut [u8; BLOCK_LEN]) {
    block[Layout::MAGIC.0..Layout::MAGIC.0 + Layout::MAGIC.1].copy_from_slice(b"ustar\0");
    block[Layout::VERSION.0..Layout::VERSION.0 + Layout::VERSION.1].copy_from_slice(b"00");
    let (offset, len) = Layout::CHKSUM;
    block[offset..offset + len].fill(b' ');
    let sum: i64 = block.iter().map(|&b| i64::from(b)).sum();
    put_octal(block, (offset, 7), sum);
    block[offset + 7] = b' ';
}

#[cfg(test)]
mod tests;
