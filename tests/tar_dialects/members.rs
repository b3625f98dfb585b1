//! Raw tar members, byte for byte, in every dialect the corpus needs.

use super::*;

/// Members followed by the end-of-archive marker.
pub(super) fn layer(members: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = members.concat();
    bytes.resize(bytes.len() + 1024, 0);
    bytes
}

pub(super) fn file_member(name: &[u8], data: &[u8]) -> Vec<u8> {
    Block::ustar(name, b'0', data.len() as u64).member(data)
}

/// A file whose header name is `name` and whose data is `data` (the size may come from PAX).
pub(super) fn with_data(name: &[u8], data: &[u8]) -> Vec<u8> {
    Block::ustar(name, b'0', 0).member(data)
}

pub(super) fn typed_member(name: &[u8], flag: u8) -> Vec<u8> {
    Block::ustar(name, flag, 4).member(b"data")
}

pub(super) fn symlink_member(name: &[u8], target: &[u8]) -> Vec<u8> {
    let mut block = Block::ustar(name, b'2', 0);
    block.octal::<8>(MODE, 0o777).set(LINKNAME, target);
    block.member(b"")
}

/// A file of 4 bytes (`data`) whose header fields at the given offsets are replaced.
pub(super) fn with_fields(name: &[u8], fields: &[(usize, &[u8])]) -> Vec<u8> {
    let mut block = Block::ustar(name, b'0', 4);
    for (at, bytes) in fields {
        block.set(*at, bytes);
    }
    block.member(b"data")
}

/// A pre-POSIX header: no magic, no owner names, no device numbers.
pub(super) fn v7(name: &[u8], flag: u8, data: &[u8]) -> Vec<u8> {
    let mut block = Block::ustar(name, flag, data.len() as u64);
    block.0[MAGIC..].fill(0);
    block.member(data)
}

/// A ustar-magic header with the given version field and prefix, holding `data`.
pub(super) fn ustar_version(version: &[u8; 2], prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut block = Block::ustar(name, b'0', 4);
    block.set(MAGIC + 6, version).set(PREFIX, prefix);
    block.member(b"data")
}

/// An old GNU header (`ustar  \0`) whose prefix area (GNU's atime, ctime, ...) holds `prefix`.
pub(super) fn gnu_with_prefix(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut block = Block::ustar(name, b'0', 4);
    block.set(MAGIC, b"ustar  \0").set(PREFIX, prefix);
    block.member(b"data")
}

/// An old GNU header with valid octal atime and ctime in the prefix area.
pub(super) fn gnu_with_times(name: &[u8]) -> Vec<u8> {
    let mut block = Block::ustar(name, b'0', 4);
    block.set(MAGIC, b"ustar  \0");
    block
        .octal::<12>(PREFIX, MTIME)
        .octal::<12>(PREFIX + 12, MTIME);
    block.member(b"data")
}

/// A star header: ustar magic, `tar\0` trailer, a 131-byte prefix, octal atime and ctime.
pub(super) fn star_with_prefix(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut block = Block::ustar(name, b'0', 4);
    block
        .set(PREFIX, prefix)
        .octal::<12>(476, MTIME)
        .octal::<12>(488, MTIME)
        .set(508, b"tar\0");
    block.member(b"data")
}

/// A star header whose atime does not parse: Go refuses the header.
pub(super) fn star_bad_atime(name: &[u8]) -> Vec<u8> {
    let mut block = Block::ustar(name, b'0', 4);
    block.set(476, b"zzzzzzzzzzz\0").set(508, b"tar\0");
    block.member(b"data")
}

pub(super) fn gnu_special(flag: u8, value: &[u8]) -> Vec<u8> {
    let mut data = value.to_vec();
    data.push(0);
    let mut block = Block::ustar(b"././@LongLink", flag, data.len() as u64);
    block.set(MAGIC, b"ustar  \0");
    block.member(&data)
}

pub(super) fn gnu_long_name(name: &[u8]) -> Vec<u8> {
    gnu_special(b'L', name)
}

pub(super) fn gnu_long_link(target: &[u8]) -> Vec<u8> {
    gnu_special(b'K', target)
}

/// A PAX record `<len> <key>=<value>\n`, where `<len>` counts the whole record.
pub(super) fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len.to_string().len() + rest != len {
        len = len.to_string().len() + rest;
    }
    [
        format!("{len} {key}=").into_bytes(),
        value.to_vec(),
        b"\n".to_vec(),
    ]
    .concat()
}

pub(super) fn pax_raw(data: &[u8]) -> Vec<u8> {
    Block::ustar(b"PaxHeaders.0/next", b'x', data.len() as u64).member(data)
}

pub(super) fn pax(records: &[(&str, &[u8])]) -> Vec<u8> {
    let data: Vec<u8> = records
        .iter()
        .flat_map(|(key, value)| pax_record(key, value))
        .collect();
    pax_raw(&data)
}

pub(super) fn pax_global(records: &[(&str, &[u8])]) -> Vec<u8> {
    let data: Vec<u8> = records
        .iter()
        .flat_map(|(key, value)| pax_record(key, value))
        .collect();
    Block::ustar(b"pax_global_header", b'g', data.len() as u64).member(&data)
}

/// `value` in base-256: the first byte 0x80, then big-endian (two's complement for -1).
pub(super) fn base256<const N: usize>(value: u64) -> [u8; N] {
    let mut field = [if value == u64::MAX { 0xff } else { 0 }; N];
    field[N - 8..].copy_from_slice(&value.to_be_bytes());
    field[0] |= 0x80;
    field
}

/// A symlink whose size field is base-256 -1: Go ignores sizes of types without data.
pub(super) fn negative_size_symlink() -> Vec<u8> {
    let mut block = Block::ustar(b"nsl", b'2', 0);
    block
        .octal::<8>(MODE, 0o777)
        .set(LINKNAME, b"target")
        .set(SIZE, &base256::<12>(u64::MAX));
    block.member(b"")
}

/// A directory whose size field says 1024 with no data after it.
pub(super) fn dir_with_size(name: &[u8], size: u64) -> Vec<u8> {
    let mut block = Block::ustar(name, b'5', 0);
    block.octal::<12>(SIZE, size);
    block.member(b"")
}

/// A member whose owner name has a byte above 0x7f and whose checksum is the signed sum of its
/// bytes (as old Sun tar computed it).
pub(super) fn signed_checksum_member() -> Vec<u8> {
    let mut block = Block::ustar(b"signed", b'0', 4).0;
    block[UNAME..UNAME + 4].copy_from_slice(b"r\xe9\xe9t");
    block[CHKSUM..CHKSUM + 8].copy_from_slice(b"        ");
    let sum: i64 = block.iter().map(|&byte| i64::from(byte as i8)).sum();
    block[CHKSUM..CHKSUM + 8].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut bytes = block.to_vec();
    bytes.extend_from_slice(b"data");
    bytes.resize(1024, 0);
    bytes
}

pub(super) fn bad_checksum_member() -> Vec<u8> {
    let mut bytes = file_member(b"bad", b"data");
    bytes[CHKSUM..CHKSUM + 8].copy_from_slice(b"000001\0 ");
    bytes
}

/// 3 MiB of non-zero data.
pub(super) fn big_data() -> Vec<u8> {
    (0..3u32 << 20).map(|idx| (idx % 251) as u8 + 1).collect()
}

/// The content of a sparse file of `real_size` bytes with `fragments`.
pub(super) fn sparse_bytes(real_size: usize, fragments: &[(usize, &[u8])]) -> Vec<u8> {
    let mut content = vec![0u8; real_size];
    for (offset, data) in fragments {
        content[*offset..offset + data.len()].copy_from_slice(data);
    }
    content
}

/// A PAX sparse 1.0 member as GNU tar writes it: the records name the real file and size, the
/// data starts with the map (count, then offset and length per fragment, one decimal number a
/// line, padded to a block), then the fragments' bytes.
pub(super) fn pax_sparse_1x0_layer(
    name: &str,
    real_size: u64,
    fragments: &[(u64, Vec<u8>)],
) -> Vec<u8> {
    let mut map = format!("{}\n", fragments.len());
    for (offset, data) in fragments {
        map.push_str(&format!("{offset}\n{}\n", data.len()));
    }
    let mut data = map.into_bytes();
    data.resize(data.len().div_ceil(512) * 512, 0);
    for (_, bytes) in fragments {
        data.extend_from_slice(bytes);
    }
    let stored_name = format!("GNUSparseFile.0/{name}");
    layer(&[
        pax(&[
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.name", name.as_bytes()),
            ("GNU.sparse.realsize", real_size.to_string().as_bytes()),
        ]),
        Block::ustar(stored_name.as_bytes(), b'0', data.len() as u64).member(&data),
    ])
}

/// A PAX 1.0 sparse member whose map runs over 1 MiB (Go 1.19.2's `errSparseTooLong`).
pub(super) fn sparse_map_too_long() -> Vec<u8> {
    let n_entries = 200_000u64;
    let mut map = format!("{n_entries}\n");
    for idx in 0..n_entries {
        map.push_str(&format!("{}\n0\n", idx * 2));
    }
    let mut data = map.into_bytes();
    data.resize(data.len().div_ceil(512) * 512, 0);
    layer(&[
        pax(&[
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.name", b"long-map"),
            ("GNU.sparse.realsize", b"400000"),
        ]),
        Block::ustar(b"GNUSparseFile.0/long-map", b'0', data.len() as u64).member(&data),
    ])
}

/// An old GNU sparse member (type `S`) declaring `real_size` bytes, with the fragments'
/// (offset, length) in the header and their data ('s' bytes) after it.
pub(super) fn old_gnu_sparse_layer(
    name: &str,
    real_size: u64,
    fragments: &[(u64, u64)],
) -> Vec<u8> {
    assert!(fragments.len() <= 4, "the header holds four fragments");
    let data_len: u64 = fragments.iter().map(|(_, len)| len).sum();
    let mut block = Block::ustar(name.as_bytes(), b'S', data_len);
    block.set(MAGIC, b"ustar  \0");
    // Numbers beyond 11 octal digits are written in base-256, as GNU tar writes them.
    let number = |block: &mut Block, at: usize, value: u64| {
        if value < 8u64.pow(11) {
            block.octal::<12>(at, value);
        } else {
            block.set(at, &base256::<12>(value));
        }
    };
    for (idx, (offset, len)) in fragments.iter().enumerate() {
        number(&mut block, 386 + idx * 24, *offset);
        number(&mut block, 386 + idx * 24 + 12, *len);
    }
    number(&mut block, 483, real_size);
    layer(&[block.member(&vec![b's'; data_len as usize])])
}
