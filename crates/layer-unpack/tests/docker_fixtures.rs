//! Unpacking layers written by a real dockerd 20.10.24 (copied from the shared fixtures) and
//! comparing with what Docker itself recorded: the DiffID and size in the layerdb entry of
//! `commit-layer.tar`, and Docker's own tar-split of it. The unpacked trees are checked against
//! the tar headers as read by the `tar` crate, an independent reader.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    fs::read(data(name)).expect("read test data")
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

struct Unpacked {
    _dir: tempfile::TempDir,
    diff: PathBuf,
    report: layer_unpack::UnpackReport,
    tar_split_gz: Vec<u8>,
}

fn unpack(tar: &[u8]) -> Unpacked {
    unpack_with(tar, None)
}

fn unpack_with(tar: &[u8], writers: Option<usize>) -> Unpacked {
    let dir = tempfile::tempdir().expect("tempdir");
    let diff = dir.path().join("diff");
    fs::create_dir(&diff).expect("mkdir diff");
    let mut packer = tar_split::Packer::new(Vec::new());
    let report = layer_unpack::unpack(
        tar,
        &diff,
        &mut packer,
        &layer_unpack::UnpackOptions {
            writers,
            ..Default::default()
        },
    )
    .expect("unpack");
    let tar_split_gz = packer.finish().expect("finish tar-split");
    // The size the report takes from the stream is what a walk of the layer finds.
    assert_eq!(
        report.size,
        layer_unpack::diff_size(&diff).expect("size"),
        "size from the stream"
    );
    Unpacked {
        _dir: dir,
        diff,
        report,
        tar_split_gz,
    }
}

fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

fn reassemble(unpacked: &Unpacked) -> Vec<u8> {
    let root = File::open(&unpacked.diff).expect("open diff");
    let mut out = Vec::new();
    tar_split::reassemble(
        &unpacked.tar_split_gz[..],
        root.as_fd(),
        Default::default(),
        &mut out,
    )
    .expect("reassemble");
    out
}

#[test]
fn commit_layer_matches_docker_layerdb_needs_root() {
    let tar = read("commit-layer.tar");
    let unpacked = unpack(&tar);
    let layerdb_diff = fs::read_to_string(data("layerdb-commit-entry/diff")).expect("diff");
    assert_eq!(unpacked.report.diff_id, layerdb_diff);
    assert_eq!(
        unpacked.report.diff_id,
        format!("sha256:{}", sha256_hex(&tar))
    );
    assert_eq!(unpacked.report.tar_bytes, tar.len() as u64);
    assert_eq!(unpacked.report.n_entries, 22);

    let docker_json = read("commit-layer.tar-split.json");
    let ours = gunzip(&unpacked.tar_split_gz);
    assert!(
        ours == docker_json,
        "tar-split differs from Docker's:\n{}",
        String::from_utf8_lossy(&ours)
    );

    let layerdb_size = fs::read_to_string(data("layerdb-commit-entry/size")).expect("size");
    assert_eq!(
        layer_unpack::diff_size(&unpacked.diff)
            .expect("size")
            .to_string(),
        layerdb_size
    );
    assert_eq!(reassemble(&unpacked), tar);
}

/// The metadata each member of a tar has according to the `tar` crate's reader.
struct Expected {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    kind: tar::EntryType,
    link: Option<PathBuf>,
    data: Vec<u8>,
    xattrs: BTreeMap<String, Vec<u8>>,
}

fn reference_entries(tar: &[u8]) -> BTreeMap<PathBuf, Expected> {
    let mut archive = tar::Archive::new(tar);
    let mut out = BTreeMap::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let path = entry.path().expect("path").into_owned();
        let mut xattrs = BTreeMap::new();
        if let Some(extensions) = entry.pax_extensions().expect("pax") {
            for extension in extensions {
                let extension = extension.expect("pax record");
                if let Some(name) = extension
                    .key()
                    .expect("utf-8 key")
                    .strip_prefix("SCHILY.xattr.")
                {
                    xattrs.insert(name.to_owned(), extension.value_bytes().to_vec());
                }
            }
        }
        let header = entry.header().clone();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("data");
        out.insert(
            path,
            Expected {
                mode: header.mode().expect("mode") & 0o7777,
                uid: header.uid().expect("uid"),
                gid: header.gid().expect("gid"),
                mtime: header.mtime().expect("mtime"),
                kind: header.entry_type(),
                link: header
                    .link_name()
                    .expect("link")
                    .map(|link| link.into_owned()),
                data,
                xattrs,
            },
        );
    }
    out
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    match rustix::fs::lgetxattr(path, name, &mut buf) {
        Ok(len) => {
            buf.truncate(len);
            Some(buf)
        }
        Err(_) => None,
    }
}

/// Checks every ordinary member of `tar` against the unpacked tree.
fn assert_tree_matches(tar: &[u8], diff: &Path) {
    for (path, expected) in reference_entries(tar) {
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if name.starts_with(".wh.") {
            continue;
        }
        let on_disk = diff.join(&path);
        let meta = fs::symlink_metadata(&on_disk).unwrap_or_else(|e| panic!("{path:?}: {e}"));
        assert_eq!(u64::from(meta.uid()), expected.uid, "{path:?} uid");
        assert_eq!(u64::from(meta.gid()), expected.gid, "{path:?} gid");
        assert_eq!(meta.mtime() as u64, expected.mtime, "{path:?} mtime");
        match expected.kind {
            tar::EntryType::Symlink => {
                assert!(meta.file_type().is_symlink(), "{path:?} is a symlink");
                assert_eq!(
                    fs::read_link(&on_disk).expect("readlink"),
                    expected.link.clone().expect("link")
                );
                continue;
            }
            tar::EntryType::Directory => assert!(meta.is_dir(), "{path:?} is a dir"),
            tar::EntryType::Regular => {
                assert!(meta.is_file(), "{path:?} is a file");
                assert_eq!(fs::read(&on_disk).expect("read"), expected.data, "{path:?}");
            }
            tar::EntryType::Link => {
                let target = diff.join(expected.link.clone().expect("link"));
                assert_eq!(
                    meta.ino(),
                    fs::symlink_metadata(target).expect("target").ino(),
                    "{path:?} shares the target's inode"
                );
            }
            tar::EntryType::Fifo => assert!(meta.file_type().is_fifo(), "{path:?} is a fifo"),
            tar::EntryType::Char => assert!(meta.file_type().is_char_device(), "{path:?}"),
            other => panic!("unexpected type {other:?} in fixture"),
        }
        assert_eq!(meta.mode() & 0o7777, expected.mode, "{path:?} mode");
        for (name, value) in &expected.xattrs {
            assert_eq!(
                xattr(&on_disk, name).as_ref(),
                Some(value),
                "{path:?} xattr {name}"
            );
        }
    }
}

fn assert_whiteout(path: &Path) {
    let meta = fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    assert!(
        meta.file_type().is_char_device(),
        "{path:?} is a char device"
    );
    assert_eq!(meta.rdev(), 0, "{path:?} is device 0/0");
    assert_eq!(meta.mode() & 0o7777, 0, "{path:?} has mode 0");
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
}

#[test]
fn commit_layer_tree_needs_root() {
    let tar = read("commit-layer.tar");
    let unpacked = unpack(&tar);
    let diff = &unpacked.diff;
    assert_tree_matches(&tar, diff);

    // Whiteouts became 0/0 character devices named after what they hide; the markers are gone.
    assert_whiteout(&diff.join("bin/echo"));
    assert_whiteout(&diff.join("d1/b"));
    assert_whiteout(&diff.join("d3/sym"));
    assert!(!diff.join("bin/.wh.echo").exists());
    assert_eq!(
        xattr(&diff.join("d2"), "trusted.overlay.opaque"),
        Some(b"y".to_vec())
    );
    assert!(fs::symlink_metadata(diff.join("d2/.wh..wh..opq")).is_err());
    assert_eq!(xattr(&diff.join("d1"), "trusted.overlay.opaque"), None);

    // The hardlink and the capability, checked by hand as well.
    let hl = fs::metadata(diff.join("n1/hl")).expect("hl");
    let f = fs::metadata(diff.join("n1/n2/f")).expect("f");
    assert_eq!((hl.ino(), hl.nlink()), (f.ino(), 2));
    let cap = xattr(&diff.join("n1/capfile"), "security.capability").expect("capability");
    assert_eq!(
        cap,
        [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    assert!(fs::symlink_metadata(diff.join("n1/fifo"))
        .expect("fifo")
        .file_type()
        .is_fifo());
    let long_dir = "L".repeat(120);
    let long_file = format!("{long_dir}/sub/{}", "f".repeat(110));
    assert_eq!(fs::read(diff.join(long_file)).expect("long name"), b"long");
}

#[test]
fn build_and_commit2_layers_round_trip_needs_root() {
    for name in ["build-layer.tar", "commit2-layer.tar"] {
        let tar = read(name);
        let unpacked = unpack(&tar);
        assert_eq!(
            unpacked.report.diff_id,
            format!("sha256:{}", sha256_hex(&tar)),
            "{name}"
        );
        assert_tree_matches(&tar, &unpacked.diff);
        assert_eq!(reassemble(&unpacked), tar, "{name}");
    }
    let unpacked = unpack(&read("build-layer.tar"));
    let h1 = fs::metadata(unpacked.diff.join("d3/h1")).expect("h1");
    assert_eq!(h1.mode() & 0o7777, 0o4755);
    assert_eq!(h1.nlink(), 2);
    // Seven 2-byte files, the hardlink counted once, the 5-byte symlink "/d1/a" (format.md §3.2).
    assert_eq!(
        layer_unpack::diff_size(&unpacked.diff).expect("size"),
        7 * 2 + 5
    );

    let unpacked = unpack(&read("commit2-layer.tar"));
    let cdev = fs::symlink_metadata(unpacked.diff.join("cdev")).expect("cdev");
    assert_eq!(cdev.rdev(), rustix::fs::makedev(1, 3));
    let u1 = fs::metadata(unpacked.diff.join("u1")).expect("u1");
    assert_eq!((u1.uid(), u1.gid()), (12345, 54321));
}

/// Files finished by writer threads or by the reading thread give the same layer: every member
/// as the tar says, and the tar reassembled byte for byte.
#[test]
fn every_writer_count_gives_the_same_layer_needs_root() {
    for fixture in ["commit-layer.tar", "commit2-layer.tar", "build-layer.tar"] {
        let tar = read(fixture);
        for writers in [Some(0), Some(1), Some(3)] {
            let unpacked = unpack_with(&tar, writers);
            assert_tree_matches(&tar, &unpacked.diff);
            assert!(
                reassemble(&unpacked) == tar,
                "{fixture} with {writers:?} writers does not reassemble byte for byte"
            );
        }
    }
}
