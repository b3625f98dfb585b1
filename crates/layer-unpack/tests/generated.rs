//! Tars generated here: hostile ones (symlinks planted to escape, `..` names, hardlinks out of
//! the root, overlay xattrs), one with every member type for a tar-split round trip, malformed
//! ones, and compressed streams.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use layer_unpack::{Compression, Error, UnpackOptions, UnpackReport};
use sha2::{Digest, Sha256};
use tar_split::{Crc64, Entry};

/// A ustar header with raw name and link name bytes (the `tar` crate's setters refuse `..`).
fn header(name: &[u8], flag: u8, size: u64, link: &[u8]) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    {
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        old.linkname[..link.len()].copy_from_slice(link);
    }
    header.set_entry_type(tar::EntryType::new(flag));
    header.set_size(size);
    header.set_mode(if flag == b'5' { 0o755 } else { 0o644 });
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_600_000_000);
    header.set_cksum();
    header
}

struct TarWriter(tar::Builder<Vec<u8>>);

impl TarWriter {
    fn new() -> TarWriter {
        TarWriter(tar::Builder::new(Vec::new()))
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.raw(name.as_bytes(), b'0', data, b"")
    }

    fn dir(&mut self, name: &str) -> &mut Self {
        self.raw(name.as_bytes(), b'5', b"", b"")
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(name.as_bytes(), b'2', b"", target.as_bytes())
    }

    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.raw(name.as_bytes(), b'1', b"", target.as_bytes())
    }

    fn raw(&mut self, name: &[u8], flag: u8, data: &[u8], link: &[u8]) -> &mut Self {
        let header = header(name, flag, data.len() as u64, link);
        self.0.append(&header, data).expect("append");
        self
    }

    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        self.0
            .append_pax_extensions(records.iter().copied())
            .expect("pax");
        self
    }

    fn finish(self) -> Vec<u8> {
        self.0.into_inner().expect("finish tar")
    }
}

/// A scratch directory holding `diff/` and, next to it, `sentinel/keep` which no layer may touch.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir(dir.path().join("diff")).expect("mkdir diff");
        fs::create_dir(dir.path().join("sentinel")).expect("mkdir sentinel");
        fs::write(dir.path().join("sentinel/keep"), b"keep").expect("write sentinel");
        Scratch { dir }
    }

    fn diff(&self) -> PathBuf {
        self.dir.path().join("diff")
    }

    fn unpack(&self, tar: &[u8]) -> (Result<UnpackReport, Error>, Vec<u8>) {
        let (result, tar_split_gz) = self.unpack_keeping_atimes(tar);
        // Whatever the members did, the size taken from the stream is what a walk finds.
        if let Ok(report) = &result {
            assert_eq!(
                report.size,
                layer_unpack::diff_size(&self.diff()).expect("walk the layer"),
                "size from the stream"
            );
        }
        (result, tar_split_gz)
    }

    /// `unpack` without the walk that checks the size (reading a directory sets its atime).
    fn unpack_keeping_atimes(&self, tar: &[u8]) -> (Result<UnpackReport, Error>, Vec<u8>) {
        let mut packer = tar_split::Packer::new(Vec::new());
        let result =
            layer_unpack::unpack(tar, &self.diff(), &mut packer, &UnpackOptions::default());
        (result, packer.finish().expect("finish tar-split"))
    }

    fn assert_outside_untouched(&self) {
        let mut top: Vec<_> = fs::read_dir(self.dir.path())
            .expect("list scratch")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        top.sort();
        assert_eq!(top, ["diff", "sentinel"]);
        let sentinel: Vec<_> = fs::read_dir(self.dir.path().join("sentinel"))
            .expect("list sentinel")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(sentinel, ["keep"]);
        assert_eq!(
            fs::read(self.dir.path().join("sentinel/keep")).expect("sentinel"),
            b"keep"
        );
    }
}

/// A name under `/etc` that no test run leaves behind.
fn host_etc_name() -> String {
    format!("ovl-layer-unpack-evil-{}", std::process::id())
}

#[test]
fn write_through_symlink_to_root_stays_inside_needs_root() {
    let scratch = Scratch::new();
    let evil = host_etc_name();
    let mut tar = TarWriter::new();
    tar.symlink("l", "/")
        .file(&format!("l/etc/{evil}"), b"evil")
        .symlink("up", "../../../../..")
        .file("up/sentinel/x", b"x")
        .raw(b"up/sentinel/.wh.keep", b'0', b"", b"");
    let (result, _) = scratch.unpack(&tar.finish());
    result.expect("contained unpack succeeds");
    assert!(!Path::new("/etc").join(&evil).exists());
    assert_eq!(
        fs::read(scratch.diff().join("etc").join(&evil)).expect("inside"),
        b"evil"
    );
    assert_eq!(
        fs::read(scratch.diff().join("sentinel/x")).expect("inside"),
        b"x"
    );
    let whiteout = fs::symlink_metadata(scratch.diff().join("sentinel/keep")).expect("whiteout");
    assert!(whiteout.file_type().is_char_device());
    scratch.assert_outside_untouched();
}

#[test]
fn symlink_replacing_a_directory_stays_inside_needs_root() {
    let scratch = Scratch::new();
    fs::create_dir(scratch.diff().join("d")).expect("mkdir d");
    fs::write(scratch.diff().join("d/old"), b"old").expect("write old");
    let mut tar = TarWriter::new();
    tar.symlink("d", "../sentinel")
        .dir("sentinel/")
        .file("d/x", b"x");
    let (result, _) = scratch.unpack(&tar.finish());
    result.expect("contained unpack succeeds");
    assert!(fs::symlink_metadata(scratch.diff().join("d"))
        .expect("d")
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::read(scratch.diff().join("sentinel/x")).expect("x"),
        b"x"
    );
    scratch.assert_outside_untouched();

    // Through a dangling symlink, as in Docker, the member cannot be created.
    let scratch = Scratch::new();
    let mut tar = TarWriter::new();
    tar.symlink("d", "../sentinel").file("d/x", b"x");
    let (result, _) = scratch.unpack(&tar.finish());
    assert!(
        matches!(result, Err(Error::Apply { ref entry, .. }) if entry == "d/x"),
        "{result:?}"
    );
    scratch.assert_outside_untouched();
}

#[test]
fn dotdot_names_are_rejected_needs_root() {
    for name in ["../x", "a/../../sentinel/keep", ".."] {
        let scratch = Scratch::new();
        let mut tar = TarWriter::new();
        tar.file(name, b"x");
        let (result, _) = scratch.unpack(&tar.finish());
        match result {
            Err(Error::InvalidEntry { entry, .. }) => assert_eq!(entry, name),
            other => panic!("{name}: expected a rejection, got {other:?}"),
        }
        scratch.assert_outside_untouched();
    }
}

#[test]
fn hardlinks_cannot_reach_outside_needs_root() {
    let passwd_links = fs::metadata("/etc/passwd").expect("passwd").nlink();

    // Refused: a link to a host path, through a planted symlink, out of the layer, and to a
    // directory; `Apply` when the target is looked up in the layer, `InvalidEntry` when its name
    // alone is refused.
    type Build = fn(&mut TarWriter);
    let refusals: [(&str, Build, bool); 4] = [
        (
            "absolute target",
            |tar| {
                tar.hardlink("h", "/etc/passwd");
            },
            false,
        ),
        (
            "through a symlink",
            |tar| {
                tar.symlink("l", "/").hardlink("h", "l/etc/passwd");
            },
            false,
        ),
        (
            "out of the layer",
            |tar| {
                tar.hardlink("h", "../sentinel/keep");
            },
            true,
        ),
        (
            "to a directory",
            |tar| {
                tar.dir("d/").hardlink("h", "d");
            },
            false,
        ),
    ];
    for (what, build, invalid_entry) in refusals {
        let scratch = Scratch::new();
        let mut tar = TarWriter::new();
        build(&mut tar);
        let (result, _) = scratch.unpack(&tar.finish());
        let refused = match &result {
            Err(Error::Apply { entry, .. }) => !invalid_entry && entry == "h",
            Err(Error::InvalidEntry { entry, .. }) => invalid_entry && entry == "h",
            _ => false,
        };
        assert!(refused, "{what}: {result:?}");
        scratch.assert_outside_untouched();
    }

    // A hardlink to a symlink links the symlink itself, never what it points to.
    let scratch = Scratch::new();
    let mut tar = TarWriter::new();
    tar.symlink("s", "/etc/passwd").hardlink("h", "s");
    let (result, _) = scratch.unpack(&tar.finish());
    result.expect("hardlink to symlink");
    let h = fs::symlink_metadata(scratch.diff().join("h")).expect("h");
    assert!(h.file_type().is_symlink());
    assert_eq!(h.nlink(), 2);

    assert_eq!(
        fs::metadata("/etc/passwd").expect("passwd").nlink(),
        passwd_links
    );
    scratch.assert_outside_untouched();
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    rustix::fs::lgetxattr(path, name, &mut buf)
        .ok()
        .map(|len| buf[..len].to_vec())
}

#[test]
fn overlay_xattrs_never_reach_the_layer_needs_root() {
    let scratch = Scratch::new();
    let mut tar = TarWriter::new();
    tar.pax(&[
        ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
        ("SCHILY.xattr.user.overlay.redirect", b"/x"),
        ("SCHILY.xattr.user.ok", b"1"),
    ])
    .dir("o/")
    .pax(&[
        ("SCHILY.xattr.trusted.overlay.origin", b"abc"),
        ("SCHILY.xattr.trusted.ok", b"2"),
    ])
    .file("o/f", b"f");
    let (result, _) = scratch.unpack(&tar.finish());
    result.expect("unpack");
    let dir = scratch.diff().join("o");
    assert_eq!(xattr(&dir, "trusted.overlay.opaque"), None);
    assert_eq!(xattr(&dir, "user.overlay.redirect"), None);
    assert_eq!(xattr(&dir, "user.ok"), Some(b"1".to_vec()));
    let file = dir.join("f");
    assert_eq!(xattr(&file, "trusted.overlay.origin"), None);
    assert_eq!(xattr(&file, "trusted.ok"), Some(b"2".to_vec()));
}

#[test]
fn malformed_archives_are_errors_naming_the_entry_needs_root() {
    // Data cut short.
    let mut tar = TarWriter::new();
    tar.file("big", &[7u8; 1000]);
    let bytes = tar.finish();
    let (result, _) = Scratch::new().unpack(&bytes[..512 + 100]);
    assert!(
        matches!(result, Err(Error::Truncated { ref entry, .. }) if entry == "big"),
        "{result:?}"
    );

    // The same path twice, after cleaning; the second never reaches the layer.
    let mut tar = TarWriter::new();
    tar.file("a", b"1").file("./a", b"2");
    let scratch = Scratch::new();
    let (result, _) = scratch.unpack(&tar.finish());
    assert!(
        matches!(result, Err(Error::DuplicatePath { ref entry }) if entry == "./a"),
        "{result:?}"
    );
    assert_eq!(fs::read(scratch.diff().join("a")).expect("a"), b"1");
    // Two PAX global headers with the same name are duplicates for tar-split too.
    let mut tar = TarWriter::new();
    for _ in 0..2 {
        let records = b"18 comment=global\n";
        let mut global = header(b"pax_global_header", b'g', records.len() as u64, b"");
        global.set_cksum();
        tar.0.append(&global, &records[..]).expect("global");
    }
    let (result, _) = Scratch::new().unpack(&tar.finish());
    assert!(
        matches!(result, Err(Error::DuplicatePath { ref entry }) if entry == "pax_global_header"),
        "{result:?}"
    );

    let mut tar = TarWriter::new();
    tar.raw(b"weird", b'Z', b"", b"");
    let (result, _) = Scratch::new().unpack(&tar.finish());
    assert!(
        matches!(result, Err(Error::InvalidEntry { ref entry, .. }) if entry == "weird"),
        "{result:?}"
    );

    for name in ["d/.wh.", "d/.wh..", "d/.wh..."] {
        let mut tar = TarWriter::new();
        tar.file(name, b"");
        let (result, _) = Scratch::new().unpack(&tar.finish());
        assert!(
            matches!(result, Err(Error::InvalidEntry { ref entry, .. }) if entry == name),
            "{name}: {result:?}"
        );
    }

    let mut tar = TarWriter::new();
    tar.pax(&[("uid", b"4294967296")]).file("u", b"");
    let (result, _) = Scratch::new().unpack(&tar.finish());
    assert!(
        matches!(result, Err(Error::InvalidEntry { ref entry, .. }) if entry == "u"),
        "{result:?}"
    );

    // A corrupted checksum.
    let mut tar = TarWriter::new();
    tar.file("c", b"");
    let mut bytes = tar.finish();
    bytes[0] ^= 1;
    let (result, _) = Scratch::new().unpack(&bytes);
    assert!(
        matches!(result, Err(Error::InvalidHeader { offset: 0, .. })),
        "{result:?}"
    );
}

fn sha256_id(bytes: &[u8]) -> String {
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// A tar with every member type and header flavour the unpacker handles, followed by trailing
/// bytes after the end-of-archive marker.
fn every_type_tar() -> (Vec<u8>, Vec<u8>) {
    let mut tar = TarWriter::new();
    tar.pax(&[
        ("mtime", b"1600000000.123456789"),
        ("atime", b"1700000000.5"),
    ])
    .dir("d/")
    .file("d/f", &[b'f'; 600])
    .file("d/block", &[b'b'; 512])
    .file("d/empty", b"")
    .symlink("d/s", "f");
    // A hardlink's mode and xattrs are those of the shared inode.
    let mut hardlink = header(b"d/h", b'1', 0, b"d/f");
    hardlink.set_mode(0o600);
    hardlink.set_cksum();
    tar.pax(&[("SCHILY.xattr.trusted.link", b"h")]);
    tar.0.append(&hardlink, &b""[..]).expect("hardlink");
    tar.pax(&[("SCHILY.xattr.trusted.fifo", b"p")])
        .raw(b"p", b'6', b"", b"")
        .raw(b"d/.wh.gone", b'0', b"", b"")
        .raw(b"d/.wh..wh..opq", b'0', b"", b"");
    let mut char_dev = header(b"c", b'3', 0, b"");
    char_dev.set_device_major(1).expect("major");
    char_dev.set_device_minor(3).expect("minor");
    char_dev.set_mode(0o2640);
    char_dev.set_cksum();
    tar.pax(&[("SCHILY.xattr.trusted.dev", b"c")]);
    tar.0.append(&char_dev, &b""[..]).expect("char");
    let mut block_dev = header(b"b", b'4', 0, b"");
    block_dev.set_device_major(7).expect("major");
    block_dev.set_device_minor(0).expect("minor");
    block_dev.set_cksum();
    tar.0.append(&block_dev, &b""[..]).expect("block");

    // GNU long name and long link, and a base-256 uid.
    let long_name = format!("long/{}", "n".repeat(150));
    let long_target = format!("/{}", "t".repeat(150));
    let mut gnu = tar::Header::new_gnu();
    gnu.set_entry_type(tar::EntryType::Regular);
    gnu.set_size(3);
    gnu.set_mode(0o4755);
    gnu.set_uid(3_000_000);
    gnu.set_gid(0);
    gnu.set_mtime(1_600_000_000);
    tar.0
        .append_data(&mut gnu, &long_name, &b"abc"[..])
        .expect("long name");
    let mut gnu_link = tar::Header::new_gnu();
    gnu_link.set_entry_type(tar::EntryType::Symlink);
    gnu_link.set_size(0);
    gnu_link.set_mode(0o777);
    gnu_link.set_mtime(1_600_000_000);
    tar.0
        .append_link(&mut gnu_link, "long/link", &long_target)
        .expect("long link");

    // A PAX path that is not UTF-8, a PAX global header, an old v7 header, and xattrs.
    tar.pax(&[("path", b"caf\xe9")])
        .file("cafe-short", b"latin1");
    let global_records = b"18 comment=global\n";
    let mut global = header(b"pax_global_header", b'g', global_records.len() as u64, b"");
    global.set_cksum();
    tar.0.append(&global, &global_records[..]).expect("global");
    let mut v7 = tar::Header::new_old();
    v7.as_old_mut().name[..2].copy_from_slice(b"v7");
    v7.set_size(2);
    v7.set_mode(0o640);
    v7.set_mtime(1_600_000_000);
    v7.set_cksum();
    tar.0.append(&v7, &b"v7"[..]).expect("v7");
    tar.pax(&[("SCHILY.xattr.user.k", b"v\nw")])
        .file("x", b"xattr");
    let mut bytes = tar.finish();
    // Record padding as tar(1) writes it, then junk: all of it is part of the layer.
    let trailing: Vec<u8> = [vec![0u8; 10240 - bytes.len() % 10240], b"junk".to_vec()].concat();
    bytes.extend_from_slice(&trailing);
    (bytes, trailing)
}

#[test]
fn every_member_type_round_trips_through_tar_split_needs_root() {
    let (tar, trailing) = every_type_tar();
    let scratch = Scratch::new();
    // Directory atimes are checked below.
    let (result, tar_split_gz) = scratch.unpack_keeping_atimes(&tar);
    let report = result.expect("unpack");
    assert_eq!(report.diff_id, sha256_id(&tar));
    assert_eq!(report.tar_bytes, tar.len() as u64);

    let diff = scratch.diff();
    assert_reassembles(&diff, &tar_split_gz, &tar);

    // Docker's segmentation at the end: the zero blocks, the trailing read, the final empty read.
    let entries: Vec<Entry> = tar_split::Unpacker::new(&tar_split_gz[..])
        .collect::<Result<_, _>>()
        .expect("entries");
    let n = entries.len();
    assert_eq!(
        entries[n - 1],
        Entry::Segment {
            payload: Vec::new()
        }
    );
    assert!(entries[n - 2] == Entry::Segment { payload: trailing });
    // The padding of the last member ("xattr", 5 bytes) and the two zero blocks.
    assert!(
        entries[n - 3]
            == Entry::Segment {
                payload: vec![0u8; 507 + 1024]
            }
    );
    assert!(entries.contains(&Entry::File {
        name: b"caf\xe9".to_vec(),
        size: 6,
        crc: Some(Crc64::checksum(b"latin1").to_be_bytes()),
    }));
    assert!(entries.contains(&Entry::File {
        name: b"pax_global_header".to_vec(),
        size: 0,
        crc: None,
    }));
    assert!(entries.contains(&Entry::File {
        name: b"d/".to_vec(),
        size: 0,
        crc: None,
    }));

    // The tree.
    let meta = |path: &str| fs::symlink_metadata(diff.join(path)).expect(path);
    let dir = meta("d");
    assert_eq!(
        (dir.mtime(), dir.mtime_nsec()),
        (1_600_000_000, 123_456_789)
    );
    assert_eq!(
        (dir.atime(), dir.atime_nsec()),
        (1_700_000_000, 500_000_000)
    );
    assert_eq!(
        xattr(&diff.join("d"), "trusted.overlay.opaque"),
        Some(b"y".to_vec())
    );
    assert!(meta("d/gone").file_type().is_char_device());
    assert_eq!(meta("d/h").ino(), meta("d/f").ino());
    assert_eq!(
        fs::read_link(diff.join("d/s")).expect("readlink"),
        Path::new("f")
    );
    assert_eq!(meta("d/f").mode() & 0o7777, 0o600);
    assert_eq!(
        xattr(&diff.join("d/f"), "trusted.link"),
        Some(b"h".to_vec())
    );
    assert!(meta("p").file_type().is_fifo());
    assert_eq!(xattr(&diff.join("p"), "trusted.fifo"), Some(b"p".to_vec()));
    assert_eq!(meta("c").rdev(), rustix::fs::makedev(1, 3));
    assert_eq!(meta("c").mode() & 0o7777, 0o2640);
    assert_eq!(xattr(&diff.join("c"), "trusted.dev"), Some(b"c".to_vec()));
    assert!(meta("b").file_type().is_block_device());
    let long = meta(&long_name_path());
    assert_eq!((long.uid(), long.mode() & 0o7777), (3_000_000, 0o4755));
    assert_eq!(
        fs::read_link(diff.join("long/link")).expect("long link"),
        Path::new(&format!("/{}", "t".repeat(150)))
    );
    assert_eq!(
        fs::read(diff.join(OsStr::from_bytes(b"caf\xe9"))).expect("latin1"),
        b"latin1"
    );
    assert!(!diff.join("pax_global_header").exists());
    assert_eq!(meta("v7").mode() & 0o7777, 0o640);
    assert_eq!(xattr(&diff.join("x"), "user.k"), Some(b"v\nw".to_vec()));
    // Checked last: the walk reads the directories.
    assert_eq!(
        report.size,
        layer_unpack::diff_size(&diff).expect("walk the layer")
    );
}

fn long_name_path() -> String {
    format!("long/{}", "n".repeat(150))
}

#[test]
fn old_gnu_sparse_file_is_refused_needs_root() {
    // dockerd 20.10 refuses the old GNU sparse type ("unhandled tar header type 83"), so ovl
    // does too; the 2^60-byte real size is never acted on.
    let mut sparse = tar::Header::new_gnu();
    sparse.set_entry_type(tar::EntryType::GNUSparse);
    sparse.set_size(1024);
    sparse.set_mode(0o644);
    sparse.set_mtime(1_600_000_000);
    {
        let gnu = sparse.as_gnu_mut().expect("gnu");
        gnu.name[..6].copy_from_slice(b"sparse");
        gnu.sparse[0].set_offset(0);
        gnu.sparse[0].set_length(512);
        gnu.sparse[1].set_offset(1 << 59);
        gnu.sparse[1].set_length(512);
        gnu.set_real_size(1 << 60);
    }
    sparse.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    let data = [vec![b'a'; 512], vec![b'b'; 512]].concat();
    builder.append(&sparse, &data[..]).expect("sparse");
    let tar = builder.into_inner().expect("finish");

    let scratch = Scratch::new();
    let started = std::time::Instant::now();
    let (result, _) = scratch.unpack(&tar);
    let error = result.expect_err("old GNU sparse member must be refused");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    let message = error.to_string();
    assert!(
        message.contains("sparse") && message.contains("83"),
        "{message}"
    );
    assert!(!scratch.diff().join("sparse").exists());
}

/// A PAX record `<len> <key>=<value>\n`.
fn pax_record(key: &str, value: &str) -> Vec<u8> {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len.to_string().len() + rest != len {
        len = len.to_string().len() + rest;
    }
    format!("{len} {key}={value}\n").into_bytes()
}

#[test]
fn pax_sparse_1_0_file_is_expanded_with_holes_and_reassembles_needs_root() {
    // GNU tar's `--sparse --sparse-version=1.0` layout, written by hand: the PAX records name
    // the real file and size, the data starts with the map (count, then offset and length per
    // fragment, one number a line, padded to a block), then the fragments.
    let real_size: u64 = 64 << 20;
    let fragments: [(u64, &[u8]); 2] = [(4096, b"first"), (real_size - 3, b"end")];
    let mut map = format!("{}\n", fragments.len());
    for (offset, data) in fragments {
        map.push_str(&format!("{offset}\n{}\n", data.len()));
    }
    let mut data = map.into_bytes();
    data.resize(512, 0);
    for (_, bytes) in fragments {
        data.extend_from_slice(bytes);
    }
    let records = [
        pax_record("GNU.sparse.major", "1"),
        pax_record("GNU.sparse.minor", "0"),
        pax_record("GNU.sparse.name", "dir/sparse"),
        pax_record("GNU.sparse.realsize", &real_size.to_string()),
    ]
    .concat();
    let mut tar = TarWriter::new();
    tar.raw(b"dir/GNUSparseFile.0/sparse", b'x', &records, b"");
    tar.raw(b"dir/GNUSparseFile.0/sparse", b'0', &data, b"");
    tar.file("after", b"after");
    let tar = tar.finish();

    let scratch = Scratch::new();
    let (result, tar_split_gz) = scratch.unpack(&tar);
    result.expect("unpack");
    let path = scratch.diff().join("dir/sparse");
    let meta = fs::metadata(&path).expect("the real file");
    assert_eq!(meta.len(), real_size);
    // Holes stay holes: two fragments take a few blocks, not 64 MiB.
    assert!(meta.blocks() * 512 < 1 << 20, "{} blocks", meta.blocks());
    let content = fs::read(&path).expect("read");
    assert!(content[..4096].iter().all(|&byte| byte == 0));
    assert_eq!(&content[4096..4101], b"first");
    assert_eq!(&content[real_size as usize - 3..], b"end");
    assert!(!scratch.diff().join("dir/GNUSparseFile.0").exists());
    assert_eq!(
        fs::read(scratch.diff().join("after")).expect("after"),
        b"after"
    );

    assert_reassembles(&scratch.diff(), &tar_split_gz, &tar);
}

#[test]
fn size_is_dockers_when_members_replace_what_earlier_ones_wrote_needs_root() {
    // (tar, expected size): Docker's size counts regular files and symlinks once per inode,
    // never directories, and only what is left at the end.
    let mut cases: Vec<(&str, Vec<u8>, i64)> = Vec::new();
    let mut tar = TarWriter::new();
    tar.file("a", b"0123456789")
        .hardlink("b", "a")
        .symlink("c", "a")
        .dir("d")
        .file("d/empty", b"");
    cases.push(("files, a hardlink, a symlink", tar.finish(), 10 + 1));
    let mut tar = TarWriter::new();
    tar.file("a/x", &[7; 100]).file("a", b"12345");
    cases.push(("a file replaces an implied directory", tar.finish(), 5));
    let mut tar = TarWriter::new();
    tar.file("f", b"0123456789").file(".wh.f", b"");
    cases.push(("a whiteout removes an earlier file", tar.finish(), 0));
    let mut tar = TarWriter::new();
    tar.file("t/big", &[1; 300])
        .hardlink("keep", "t/big")
        .symlink("t", "somewhere/else");
    cases.push((
        "a symlink replaces a directory whose file has another link",
        tar.finish(),
        300 + 14,
    ));
    for (what, tar, expected) in cases {
        let scratch = Scratch::new();
        let (result, _) = scratch.unpack(&tar);
        assert_eq!(result.expect(what).size, expected, "{what}");
    }
}

#[test]
fn a_directory_replaced_mid_stream_is_not_reached_through_its_old_descriptor_needs_root() {
    // `d/e` is reached from the members before it; `d` then becomes a symlink to `s`, and the
    // members after it must land in `s`, as a fresh resolution finds them, and nowhere else.
    let mut tar = TarWriter::new();
    tar.dir("s")
        .file("d/e/one", b"1")
        .file("d/e/two", b"2")
        .symlink("d", "s")
        .file("d/e/three", b"3")
        .file("d/four", b"4");
    let tar = tar.finish();
    let scratch = Scratch::new();
    let (result, _) = scratch.unpack(&tar);
    result.expect("unpack");
    let diff = scratch.diff();
    assert!(fs::symlink_metadata(diff.join("d"))
        .expect("d")
        .file_type()
        .is_symlink());
    assert_eq!(fs::read(diff.join("s/e/three")).expect("s/e/three"), b"3");
    assert_eq!(fs::read(diff.join("s/four")).expect("s/four"), b"4");
    assert!(!diff.join("s/e/one").exists());
    scratch.assert_outside_untouched();
}

#[test]
fn gzip_zstd_and_plain_streams_are_detected() {
    let (tar, _) = every_type_tar();
    let half = tar.len() / 2;
    // Two gzip members back to back, as `cat a.gz b.gz` makes.
    let mut gzip = Vec::new();
    for part in [&tar[..half], &tar[half..]] {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(part).expect("gzip");
        gzip.extend(encoder.finish().expect("gzip"));
    }
    let zstd = zstd::encode_all(&tar[..], 3).expect("zstd");
    for (blob, expected) in [
        (&gzip, Compression::Gzip),
        (&zstd, Compression::Zstd),
        (&tar, Compression::None),
    ] {
        // A one-byte buffer makes the magic arrive in pieces.
        let input = BufReader::with_capacity(1, &blob[..]);
        let (compression, mut reader) = layer_unpack::decompress(input).expect("decompress");
        assert_eq!(compression, expected);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).expect("read");
        assert!(out == tar, "{expected:?} stream decodes to the tar");
    }
    let (compression, mut reader) = layer_unpack::decompress(&b"ab"[..]).expect("short");
    assert_eq!(compression, Compression::None);
    let mut out = Vec::new();
    reader.read_to_end(&mut out).expect("read");
    assert_eq!(out, b"ab");
}

#[test]
fn unpacks_a_zstd_layer_end_to_end_needs_root() {
    let (tar, _) = every_type_tar();
    let zstd = zstd::encode_all(&tar[..], 3).expect("zstd");
    let (_, reader) = layer_unpack::decompress(&zstd[..]).expect("decompress");
    let scratch = Scratch::new();
    let mut packer = tar_split::Packer::new(Vec::new());
    let report = layer_unpack::unpack(
        reader,
        &scratch.diff(),
        &mut packer,
        &UnpackOptions::default(),
    )
    .expect("unpack");
    assert_eq!(report.diff_id, sha256_id(&tar));
}

/// The layer directory `diff` and its tar-split reassemble to `tar`, byte for byte.
fn assert_reassembles(diff: &Path, tar_split_gz: &[u8], tar: &[u8]) {
    let root = File::open(diff).expect("open diff");
    let mut rebuilt = Vec::new();
    tar_split::reassemble(tar_split_gz, root.as_fd(), Default::default(), &mut rebuilt)
        .expect("reassemble");
    assert!(rebuilt == tar, "reassembled tar differs");
}
