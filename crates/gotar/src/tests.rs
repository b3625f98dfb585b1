//! The encoder against tars Docker 20.10 wrote (`docker commit` and `docker build` layers): each
//! archive is decoded into headers and data, re-encoded, and must come out byte for byte.

use super::*;
use treedump::fixture::first_difference;

fn parse_octal(field: &[u8]) -> i64 {
    let text: Vec<u8> = field
        .iter()
        .copied()
        .filter(|b| (b'0'..=b'7').contains(b))
        .collect();
    if text.is_empty() {
        return 0;
    }
    i64::from_str_radix(std::str::from_utf8(&text).expect("octal digits"), 8).expect("octal")
}

fn field_string(block: &[u8], (offset, len): (usize, usize)) -> Vec<u8> {
    let field = &block[offset..offset + len];
    let end = field.iter().position(|&b| b == 0).unwrap_or(len);
    field[..end].to_vec()
}

fn parse_pax(records: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut rest = records;
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ').expect("record length");
        let len: usize = std::str::from_utf8(&rest[..space])
            .expect("length text")
            .parse()
            .expect("length");
        let record = &rest[space + 1..len - 1];
        let eq = record.iter().position(|&b| b == b'=').expect("key=value");
        out.insert(
            String::from_utf8(record[..eq].to_vec()).expect("key"),
            record[eq + 1..].to_vec(),
        );
        rest = &rest[len..];
    }
    out
}

/// Decodes an archive into (header, data) pairs, folding PAX records into the headers.
fn decode(archive: &[u8]) -> Vec<(Header, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = 0;
    let mut pax = BTreeMap::new();
    while offset + BLOCK_LEN <= archive.len() {
        let block = &archive[offset..offset + BLOCK_LEN];
        if block.iter().all(|&b| b == 0) {
            break;
        }
        let size = parse_octal(&block[124..136]) as usize;
        let data_start = offset + BLOCK_LEN;
        let data = archive[data_start..data_start + size].to_vec();
        offset = data_start + size + padding(size as u64);
        if block[156] == typeflag::PAX {
            pax = parse_pax(&data);
            continue;
        }
        let mut name = field_string(block, Layout::NAME);
        let prefix = field_string(block, Layout::PREFIX);
        if !prefix.is_empty() {
            name = [prefix, b"/".to_vec(), name].concat();
        }
        let mut header = Header {
            name,
            typeflag: block[156],
            mode: parse_octal(&block[100..108]),
            uid: parse_octal(&block[108..116]),
            gid: parse_octal(&block[116..124]),
            size: size as i64,
            mtime: parse_octal(&block[136..148]),
            linkname: field_string(block, Layout::LINKNAME),
            uname: field_string(block, Layout::UNAME),
            gname: field_string(block, Layout::GNAME),
            devmajor: parse_octal(&block[329..337]),
            devminor: parse_octal(&block[337..345]),
            xattrs: BTreeMap::new(),
        };
        for (key, value) in std::mem::take(&mut pax) {
            match key.as_str() {
                "path" => header.name = value,
                "linkpath" => header.linkname = value,
                _ => {
                    let xattr = key.strip_prefix("SCHILY.xattr.").expect("known PAX key");
                    header.xattrs.insert(xattr.to_string(), value);
                }
            }
        }
        out.push((header, data));
    }
    out
}

fn encode_all(entries: &[(Header, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (header, data) in entries {
        out.extend_from_slice(&header.encode().expect("encodable"));
        out.extend_from_slice(data);
        out.resize(out.len() + padding(data.len() as u64), 0);
    }
    out.extend_from_slice(&END_OF_ARCHIVE);
    out
}

fn check_fixture(bytes: &[u8]) {
    let entries = decode(bytes);
    assert!(entries.len() > 3);
    let encoded = encode_all(&entries);
    assert!(
        encoded == bytes,
        "re-encoded archive differs: {}",
        first_difference(&encoded, bytes)
    );
}

#[test]
fn docker_commit_layer_reencodes_byte_for_byte() {
    // PAX path records (long and split names), a security.capability xattr, whiteouts with the
    // shared-inode link name, an opaque marker, a fifo and a hardlink.
    check_fixture(include_bytes!("../tests/data/commit-layer.tar"));
}

#[test]
fn docker_commit_layer_with_devices_and_unknown_owners_reencodes_byte_for_byte() {
    check_fixture(include_bytes!("../tests/data/commit2-layer.tar"));
}

#[test]
fn docker_build_layer_reencodes_byte_for_byte() {
    check_fixture(include_bytes!("../tests/data/build-layer.tar"));
}

#[test]
fn long_names_split_at_a_slash_stay_ustar() {
    let name = [vec![b'd'; 120], b"/file".to_vec()].concat();
    let header = Header {
        name: name.clone(),
        typeflag: typeflag::REG,
        mode: 0o100644,
        ..Header::default()
    };
    let encoded = header.encode().expect("encodable");
    assert_eq!(encoded.len(), BLOCK_LEN);
    assert_eq!(&encoded[0..5], b"file\0");
    assert_eq!(&encoded[345..465], &name[..120]);
}

#[test]
fn non_ascii_names_and_big_ids_use_pax_records() {
    let header = Header {
        name: b"caf\xc3\xa9".to_vec(),
        typeflag: typeflag::REG,
        mode: 0o100644,
        uid: 70_000_000,
        mtime: -5,
        ..Header::default()
    };
    let encoded = header.encode().expect("encodable");
    assert_eq!(encoded[156], typeflag::PAX);
    assert_eq!(&encoded[0..17], b"PaxHeaders.0/caf\0");
    let records =
        parse_pax(&encoded[BLOCK_LEN..BLOCK_LEN + parse_octal(&encoded[124..136]) as usize]);
    assert_eq!(records["path"], b"caf\xc3\xa9");
    assert_eq!(records["uid"], b"70000000");
    assert_eq!(records["mtime"], b"-5");
    let main = &encoded[encoded.len() - BLOCK_LEN..];
    assert_eq!(&main[0..4], b"caf\0");
    assert_eq!(&main[108..116], b"0000000\0");
}

#[test]
fn pax_record_lengths_count_their_own_digits() {
    // A record whose length crosses from two to three digits.
    for value_len in 80..100 {
        let mut records = BTreeMap::new();
        records.insert("path".to_string(), vec![b'a'; value_len]);
        let encoded = pax_records(&records);
        let parsed = parse_pax(&encoded);
        assert_eq!(parsed["path"].len(), value_len);
    }
}
