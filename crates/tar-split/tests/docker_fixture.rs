//! Checks against artefacts written by a real dockerd 20.10.24 (copied from the shared fixtures):
//! `commit-layer.tar` (a `docker commit` layer), its decompressed tar-split as Docker wrote it,
//! the gzip'd tar-split straight from the layerdb, and the layer's DiffID from the layerdb `diff`
//! file.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command;

use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};
use syscompat::Resolver;
use tar_split::{reassemble, Crc64, Entry, Error, Packer, Unpacker};

/// The directory of the Docker-written fixtures.
const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");

fn read(name: &str) -> Vec<u8> {
    fs::read(Path::new(DATA).join(name)).expect("read test data")
}

/// Docker's decompressed tar-split, gzip'd here with an independent encoder.
fn docker_tar_split_gz() -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder
        .write_all(&read("commit-layer.tar-split.json"))
        .expect("gzip");
    encoder.finish().expect("gzip")
}

fn entries(gz: &[u8]) -> Vec<Entry> {
    Unpacker::new(gz)
        .collect::<Result<_, _>>()
        .expect("docker tar-split parses")
}

/// Extracts `commit-layer.tar` with GNU tar, an extractor independent of ovl.
fn extract_with_gnu_tar() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let status = Command::new("tar")
        .arg("-xpf")
        .arg(Path::new(DATA).join("commit-layer.tar"))
        .arg("-C")
        .arg(dir.path())
        .status()
        .expect("run GNU tar");
    assert!(status.success(), "tar failed: {status}");
    dir
}

fn reassemble_dir(root: &Path, tar_split_gz: &[u8]) -> Result<(u64, Vec<u8>), Error> {
    reassemble_dir_with(root, tar_split_gz, Resolver::default())
}

fn reassemble_dir_with(
    root: &Path,
    tar_split_gz: &[u8],
    resolver: Resolver,
) -> Result<(u64, Vec<u8>), Error> {
    let root_dir = File::open(root).expect("open layer root");
    let mut out = Vec::new();
    let n_written = reassemble(tar_split_gz, root_dir.as_fd(), resolver, &mut out)?;
    Ok((n_written, out))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[test]
fn reemitting_docker_entries_through_packer_is_byte_identical() {
    let docker_ndjson = read("commit-layer.tar-split.json");
    let entries = entries(&docker_tar_split_gz());
    assert_eq!(entries.len(), 46, "Docker's file has positions 0..=45");

    let mut packer = Packer::new(Vec::new());
    let last_idx = entries.len() - 1;
    for (idx, entry) in entries.iter().enumerate() {
        match entry {
            Entry::Segment { payload } => {
                packer.add_segment(payload).expect("add segment");
                // The final segment is left to `finish`, which always writes one.
                if idx != last_idx {
                    packer.flush_segment().expect("flush segment");
                }
            }
            Entry::File { name, size, crc } => {
                packer.add_file(name, *size, *crc).expect("add file")
            }
        }
    }
    let gz = packer.finish().expect("finish");

    let docker_gz = read("commit-layer.tar-split.json.gz");
    assert_eq!(&gz[..10], &docker_gz[..10], "gzip header must be Go's");
    let mut ndjson = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut ndjson)
        .expect("gunzip");
    assert_eq!(
        String::from_utf8_lossy(&ndjson),
        String::from_utf8_lossy(&docker_ndjson)
    );
    assert_eq!(ndjson, docker_ndjson);
}

#[test]
fn unpacker_reads_the_gzip_docker_wrote() {
    let from_docker_gz = entries(&read("commit-layer.tar-split.json.gz"));
    assert_eq!(from_docker_gz, entries(&docker_tar_split_gz()));
    assert_eq!(
        from_docker_gz[13],
        Entry::File {
            name: b"d1/a".to_vec(),
            size: 3,
            crc: Some([0x61, 0x31, 0xC4, 0x20, 0, 0, 0, 0])
        }
    );
    assert_eq!(
        from_docker_gz[7],
        Entry::File {
            name: b"bin/".to_vec(),
            size: 0,
            crc: None
        }
    );
}

#[test]
fn reassembling_gnu_tar_extraction_reproduces_the_docker_layer() {
    let layer_tar = read("commit-layer.tar");
    let diff_id = String::from_utf8(read("commit-layer.diff")).expect("utf-8 diff id");
    let root = extract_with_gnu_tar();

    let (n_written, out) = reassemble_dir(root.path(), &docker_tar_split_gz()).expect("reassemble");
    assert_eq!(n_written, 18944);
    assert_eq!(n_written, out.len() as u64);
    assert_eq!(
        tar_split::reassembled_len(&docker_tar_split_gz()[..]).expect("length"),
        layer_tar.len() as u64
    );
    assert_eq!(format!("sha256:{}", sha256_hex(&out)), diff_id);
    assert_eq!(sha256_hex(&out), sha256_hex(&layer_tar));
    assert!(out == layer_tar);

    // The gzip exactly as Docker stored it gives the same result.
    let (_, out) =
        reassemble_dir(root.path(), &read("commit-layer.tar-split.json.gz")).expect("reassemble");
    assert!(out == layer_tar);
}

#[test]
fn modified_file_fails_reassembly_naming_it() {
    let root = extract_with_gnu_tar();
    // Same size, different content: only the checksum can notice.
    fs::write(root.path().join("d1/a"), b"a3\n").expect("modify");
    let err = reassemble_dir(root.path(), &docker_tar_split_gz()).expect_err("checksum mismatch");
    assert!(
        matches!(err, Error::ChecksumMismatch { ref name, position: 13, expected: 0x6131_C420_0000_0000, .. } if name == "d1/a"),
        "{err:?}"
    );
    assert!(err.to_string().contains("\"d1/a\""), "{err}");
}

#[test]
fn truncated_extended_or_replaced_files_fail_reassembly() {
    let gz = docker_tar_split_gz();

    let root = extract_with_gnu_tar();
    fs::write(root.path().join("n1/capfile"), b"ca").expect("truncate");
    let err = reassemble_dir(root.path(), &gz).expect_err("short file");
    assert!(
        matches!(err, Error::ShortFile { ref name, expected: 3, actual: 2, .. } if name == "n1/capfile"),
        "{err:?}"
    );

    let root = extract_with_gnu_tar();
    fs::write(root.path().join("n1/capfile"), b"capX").expect("extend");
    let err = reassemble_dir(root.path(), &gz).expect_err("long file");
    assert!(
        matches!(err, Error::LongFile { ref name, expected: 3, .. } if name == "n1/capfile"),
        "{err:?}"
    );

    // A FIFO under a file's name must neither block nor be read.
    let root = extract_with_gnu_tar();
    fs::remove_file(root.path().join("n1/capfile")).expect("remove");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.path().join("n1/capfile"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .expect("mkfifo");
    let err = reassemble_dir(root.path(), &gz).expect_err("not a regular file");
    assert!(
        matches!(err, Error::NotRegularFile { ref name, .. } if name == "n1/capfile"),
        "{err:?}"
    );

    let root = extract_with_gnu_tar();
    fs::remove_file(root.path().join("d2/new")).expect("remove");
    let err = reassemble_dir(root.path(), &gz).expect_err("missing file");
    assert!(
        matches!(err, Error::OpenFile { ref name, position: 23, .. } if name == "d2/new"),
        "{err:?}"
    );
}

/// A tar-split holding one file entry `name` whose size and checksum are those of `content`.
fn single_file_tar_split(name: &[u8], content: &[u8]) -> Vec<u8> {
    let mut packer = Packer::new(Vec::new());
    packer.add_segment(b"HDR").expect("segment");
    let crc = Crc64::checksum(content).to_be_bytes();
    packer
        .add_file(name, content.len() as u64, Some(crc))
        .expect("file");
    packer.finish().expect("finish")
}

/// Both resolvers: `openat2` where the kernel has it, and the userspace walk older kernels get.
#[test]
fn symlinks_in_the_layer_root_cannot_reach_host_files() {
    for resolver in [Resolver::Kernel, Resolver::Userspace] {
        symlinks_stay_in_the_layer_root(resolver);
    }
}

fn symlinks_stay_in_the_layer_root(resolver: Resolver) {
    let host_passwd = fs::read("/etc/passwd").expect("read /etc/passwd");
    let root = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink("/etc", root.path().join("evil")).expect("symlink");
    std::os::unix::fs::symlink("../../../../etc", root.path().join("evil_relative"))
        .expect("symlink");
    std::os::unix::fs::symlink("/etc/passwd", root.path().join("pw")).expect("symlink");

    // With the checksum of the host's /etc/passwd, reading that file would succeed: every attempt
    // must fail instead.
    for name in [
        "evil/passwd",
        "evil_relative/passwd",
        "../../../../../etc/passwd",
        "/etc/passwd",
        "pw",
    ] {
        let gz = single_file_tar_split(name.as_bytes(), &host_passwd);
        let err = reassemble_dir_with(root.path(), &gz, resolver).expect_err(name);
        assert!(
            matches!(err, Error::OpenFile { name: ref got, .. } if got == name),
            "{name} with {resolver:?}: {err:?}"
        );
    }

    // The same names resolve inside the root, where a decoy file is read instead.
    fs::create_dir(root.path().join("etc")).expect("mkdir");
    fs::write(root.path().join("etc/passwd"), b"inside\n").expect("decoy");
    for name in [
        "evil/passwd",
        "evil_relative/passwd",
        "../../../../../etc/passwd",
        "/etc/passwd",
    ] {
        let gz = single_file_tar_split(name.as_bytes(), b"inside\n");
        let (_, out) = reassemble_dir_with(root.path(), &gz, resolver).expect(name);
        assert_eq!(out, b"HDRinside\n", "{name} with {resolver:?}");
    }
    // A symlink as the last component is never followed.
    let gz = single_file_tar_split(b"pw", b"inside\n");
    let err = reassemble_dir_with(root.path(), &gz, resolver).expect_err("final symlink");
    assert!(matches!(err, Error::OpenFile { .. }), "{err:?}");
}
