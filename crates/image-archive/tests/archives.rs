//! Reads archives built here by hand (tar::Builder, real sha256 digests) and, when skopeo is
//! installed, archives converted by skopeo. Expected ids and digests are computed independently
//! from the bytes the test writes.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use image_archive::{Archive, Error, Format, OpenOptions};
use sha2::{Digest, Sha256};

const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

/// Asserts that `err` is the variant `$variant` naming the archive member `$member`.
macro_rules! assert_err_member {
    ($err:expr, $variant:path, $member:expr) => {
        assert!(
            matches!(&$err, $variant { member, .. } if *member == $member),
            "{}",
            $err
        )
    };
}

/// Asserts that `err` is a digest mismatch of `member`.
fn assert_digest_mismatch(err: &Error, member: &str, expected: &str, actual: &str) {
    match err {
        Error::DigestMismatch {
            member: found_member,
            expected: found_expected,
            actual: found_actual,
            ..
        } => assert_eq!(
            (
                found_member.as_str(),
                found_expected.as_str(),
                found_actual.as_str()
            ),
            (member, expected, actual)
        ),
        other => panic!("unexpected error {other}"),
    }
}

fn sha256(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").expect("sha256 digest")
}

fn file_header(size: usize, mode: u32) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_size(size as u64);
    header.set_mode(mode);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header
}

fn append_file(builder: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
    let mut header = file_header(data.len(), 0o644);
    builder
        .append_data(&mut header, path, data)
        .expect("append file");
}

fn append_symlink(builder: &mut tar::Builder<Vec<u8>>, path: &str, target: &str) {
    let mut header = file_header(0, 0o777);
    header.set_entry_type(tar::EntryType::Symlink);
    builder
        .append_link(&mut header, path, target)
        .expect("append symlink");
}

/// An uncompressed layer tar holding one file.
fn layer_tar(file_name: &str, content: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    append_file(&mut builder, file_name, content);
    builder.into_inner().expect("finish layer tar")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip finish")
}

/// A minimal image config naming `diff_ids`.
fn config_json(diff_ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("config json")
}

/// The pieces of a two-layer test image.
struct TestImage {
    layers: Vec<Vec<u8>>,
    diff_ids: Vec<String>,
    config: Vec<u8>,
    image_id: String,
}

fn test_image() -> TestImage {
    let layers = vec![
        layer_tar("hello.txt", b"hello\n"),
        layer_tar("world.txt", b"world, from the second layer\n"),
    ];
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    let config = config_json(&diff_ids);
    let image_id = sha256(&config);
    TestImage {
        layers,
        diff_ids,
        config,
        image_id,
    }
}

fn image_clone(image: &TestImage) -> TestImage {
    TestImage {
        layers: image.layers.clone(),
        diff_ids: image.diff_ids.clone(),
        config: image.config.clone(),
        image_id: image.image_id.clone(),
    }
}

/// `docker save` shaped tar: `<v1id>/layer.tar` per layer, `<id>.json`, `manifest.json`.
/// `layer_members` overrides the names manifest.json lists; `extra` adds members.
fn docker_archive(
    image: &TestImage,
    repo_tags: Option<Vec<&str>>,
    layer_members: Option<Vec<String>>,
    extra: impl FnOnce(&mut tar::Builder<Vec<u8>>),
) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut members = Vec::new();
    for (idx, layer) in image.layers.iter().enumerate() {
        let v1id = format!("{idx:064x}");
        let member = format!("{v1id}/layer.tar");
        append_file(&mut builder, &format!("{v1id}/VERSION"), b"1.0");
        append_file(&mut builder, &member, layer);
        members.push(member);
    }
    let config_name = format!("{}.json", hex(&image.image_id));
    append_file(&mut builder, &config_name, &image.config);
    extra(&mut builder);
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": repo_tags,
        "Layers": layer_members.unwrap_or(members),
    }]);
    let mut manifest_bytes = serde_json::to_vec(&manifest).expect("manifest json");
    manifest_bytes.push(b'\n');
    append_file(&mut builder, "manifest.json", &manifest_bytes);
    builder.into_inner().expect("finish archive")
}

/// Writes `bytes` to `dir/name` and returns the path.
fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).expect("write test file");
    path
}

fn read_all_layers(archive: &Archive) -> Vec<Vec<u8>> {
    let image = &archive.images()[0];
    image
        .layers
        .iter()
        .map(|layer| {
            let mut reader = archive.open_layer(layer).expect("open layer");
            let mut bytes = Vec::new();
            reader.read_to_end(&mut bytes).expect("read layer");
            reader.finish().expect("finish layer");
            bytes
        })
        .collect()
}

/// A temp dir for the test's files and one for the reader's scratch files.
fn dir_and_scratch() -> (tempfile::TempDir, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let scratch = tempfile::tempdir().expect("scratch");
    (dir, scratch)
}

fn open(path: &Path, scratch: &Path) -> Result<Archive, Error> {
    Archive::open(path, scratch, &OpenOptions::default())
}

#[test]
fn docker_archive_plain_yields_id_tags_diff_ids_and_layer_bytes() {
    let (dir, scratch) = dir_and_scratch();
    let image = test_image();
    let bytes = docker_archive(&image, Some(vec!["example.com/app:v1"]), None, |_| {});
    let path = write_file(dir.path(), "image.tar", &bytes);
    let archive = open(&path, scratch.path()).expect("open archive");
    assert_eq!(archive.format(), Format::DockerArchive);
    assert_eq!(archive.images().len(), 1);
    let found = &archive.images()[0];
    assert_eq!(found.image_id, image.image_id);
    assert_eq!(found.config, image.config);
    assert_eq!(found.names, ["example.com/app:v1"]);
    let diff_ids: Vec<&str> = found.layers.iter().map(|l| l.diff_id.as_str()).collect();
    assert_eq!(diff_ids, image.diff_ids);
    assert!(found.layers.iter().all(|l| l.digest.is_none()));
    assert_eq!(found.layers[1].member, format!("{:064x}/layer.tar", 1));
    assert_eq!(read_all_layers(&archive), image.layers);
    assert_eq!(fs::read_dir(scratch.path()).expect("scratch").count(), 0);
}

#[test]
fn docker_archive_gzipped_decompresses_into_scratch_and_cleans_up() {
    let (dir, scratch) = dir_and_scratch();
    let image = test_image();
    let bytes = docker_archive(&image, None, None, |_| {});
    let path = write_file(dir.path(), "image.tar.gz", &gzip(&bytes));
    let archive = open(&path, scratch.path()).expect("open archive");
    assert_eq!(archive.format(), Format::DockerArchive);
    assert_eq!(fs::read_dir(scratch.path()).expect("scratch").count(), 1);
    let found = &archive.images()[0];
    assert_eq!(found.image_id, image.image_id);
    assert!(found.names.is_empty(), "RepoTags null means no names");
    assert_eq!(read_all_layers(&archive), image.layers);
    drop(archive);
    assert_eq!(fs::read_dir(scratch.path()).expect("scratch").count(), 0);
}

#[test]
fn docker_archive_with_dot_slash_member_names_is_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = test_image();
    let members: Vec<String> = (0..2)
        .map(|idx| format!("./{idx:064x}/layer.tar"))
        .collect();
    let bytes = docker_archive(&image, None, Some(members), |_| {});
    let path = write_file(dir.path(), "image.tar", &bytes);
    let archive = open(&path, dir.path()).expect("open archive");
    assert_eq!(read_all_layers(&archive), image.layers);
}

#[test]
fn docker_archive_symlinked_duplicate_layer_is_resolved_inside_the_archive() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The same layer twice, as `docker save` writes it: one real layer.tar, and the later one a
    // relative symlink to it.
    let layer = layer_tar("hello.txt", b"hello\n");
    let diff_ids = vec![sha256(&layer), sha256(&layer)];
    let config = config_json(&diff_ids);
    let stored = TestImage {
        layers: vec![layer.clone()],
        diff_ids,
        image_id: sha256(&config),
        config,
    };
    let first = format!("{:064x}/layer.tar", 0);
    let second = format!("{:064x}/layer.tar", 7);
    let bytes = docker_archive(
        &stored,
        None,
        Some(vec![first.clone(), second.clone()]),
        |builder| append_symlink(builder, &second, &format!("../{first}")),
    );
    let path = write_file(dir.path(), "image.tar", &bytes);
    let archive = open(&path, dir.path()).expect("open archive");
    assert_eq!(archive.images()[0].layers[1].member, second);
    assert_eq!(read_all_layers(&archive), [layer.clone(), layer]);
}

#[test]
fn docker_archive_symlink_leaving_the_archive_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = test_image();
    let evil = "evil/layer.tar".to_string();
    let members = vec![format!("{:064x}/layer.tar", 0), evil.clone()];
    let bytes = docker_archive(&image, None, Some(members.clone()), |builder| {
        append_symlink(builder, "evil/layer.tar", "../../etc/passwd")
    });
    let path = write_file(dir.path(), "image.tar", &bytes);
    let err = open(&path, dir.path()).expect_err("link out of the archive");
    assert!(
        matches!(&err, Error::LinkOutsideArchive { member, target, .. } if *member == evil && target == "../../etc/passwd"),
        "{err}"
    );
    assert!(err.to_string().contains("evil/layer.tar"), "{err}");

    let bytes = docker_archive(&image, None, Some(members), |builder| {
        append_symlink(builder, "evil/layer.tar", "/etc/passwd")
    });
    let path = write_file(dir.path(), "image2.tar", &bytes);
    let err = open(&path, dir.path()).expect_err("absolute link");
    assert_err_member!(err, Error::AbsoluteLink, evil);
}

#[test]
fn docker_archive_dotdot_or_absolute_member_in_manifest_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = test_image();
    for bad in ["../outside/layer.tar", "/etc/passwd", "a/../../b"] {
        let members = vec![format!("{:064x}/layer.tar", 0), bad.to_string()];
        let bytes = docker_archive(&image, None, Some(members), |_| {});
        let path = write_file(dir.path(), "image.tar", &bytes);
        let err = open(&path, dir.path()).expect_err("unsafe member");
        assert_err_member!(err, Error::UnsafeMemberPath, bad);
        assert!(err.to_string().contains(bad), "{err}");
    }
}

#[test]
fn docker_archive_config_name_must_match_its_content() {
    let image = test_image();
    let wrong_id = sha256(b"some other config");
    let mut fake = image_clone(&image);
    fake.image_id = wrong_id.clone();
    let bytes = docker_archive(&fake, None, None, |_| {});
    let err = open_bytes_err(&bytes, "config name mismatch");
    assert_digest_mismatch(
        &err,
        &format!("{}.json", hex(&wrong_id)),
        &wrong_id,
        &image.image_id,
    );
}

#[test]
fn docker_archive_layer_count_must_match_diff_ids() {
    let image = test_image();
    let bytes = docker_archive(
        &image,
        None,
        Some(vec![format!("{:064x}/layer.tar", 0)]),
        |_| {},
    );
    let err = open_bytes_err(&bytes, "count mismatch");
    assert!(
        matches!(
            &err,
            Error::LayerCountMismatch {
                layers: 1,
                diff_ids: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn docker_archive_missing_layer_member_is_named() {
    let image = test_image();
    let members = vec![
        format!("{:064x}/layer.tar", 0),
        "nope/layer.tar".to_string(),
    ];
    let bytes = docker_archive(&image, None, Some(members), |_| {});
    let err = open_bytes_err(&bytes, "missing member");
    assert_err_member!(err, Error::MissingMember, "nope/layer.tar");
}

#[test]
fn docker_archive_invalid_manifest_json_is_named() {
    let mut builder = tar::Builder::new(Vec::new());
    append_file(&mut builder, "manifest.json", b"[{\"Config\": ");
    let bytes = builder.into_inner().expect("tar");
    let err = open_bytes_err(&bytes, "invalid json");
    assert_err_member!(err, Error::InvalidJson, "manifest.json");
}

#[test]
fn truncated_archive_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = test_image();
    let bytes = docker_archive(&image, None, None, |_| {});
    // Cut inside the data of the first layer.tar: header blocks for VERSION (512 + 512), then the
    // layer.tar header (512) and its data.
    let cut = 512 * 3 + 100;
    let path = write_file(dir.path(), "image.tar", &bytes[..cut]);
    let err = open(&path, dir.path()).expect_err("truncated");
    assert_err_member!(err, Error::Truncated, format!("{:064x}/layer.tar", 0));
    // A cut inside a header block is a tar error.
    let path = write_file(dir.path(), "image2.tar", &bytes[..512 * 2 + 200]);
    let err = open(&path, dir.path()).expect_err("truncated header");
    assert!(matches!(&err, Error::Tar { .. }), "{err}");
    // A truncated gzip stream fails while decompressing.
    let gz = gzip(&bytes);
    let path = write_file(dir.path(), "image.tar.gz", &gz[..gz.len() / 2]);
    let err = open(&path, dir.path()).expect_err("truncated gzip");
    assert!(
        matches!(
            &err,
            Error::Io {
                operation: "decompressing archive",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn archive_cut_at_a_block_boundary_is_reported_as_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = test_image();
    let bytes = docker_archive(&image, None, None, |_| {});
    // tar::Builder ends the archive with two zero blocks (1024 bytes); without them the file
    // stops right after manifest.json's data.
    let cut = bytes.len() - 1024;
    let path = write_file(dir.path(), "image.tar", &bytes[..cut]);
    let err = open(&path, dir.path()).expect_err("no end marker");
    assert!(
        matches!(&err, Error::MissingEndOfArchive { last_member: Some(member), offset, .. }
            if member == "manifest.json" && *offset == cut as u64),
        "{err}"
    );
    assert!(err.to_string().contains("truncated"), "{err}");
    // Cut just before manifest.json's header block: the config is the last member left. Its data
    // (padded to 512-byte blocks) ends where manifest.json's header starts.
    let manifest_len = serde_json::to_vec(&serde_json::json!([{
        "Config": format!("{}.json", hex(&image.image_id)),
        "RepoTags": null,
        "Layers": [format!("{:064x}/layer.tar", 0), format!("{:064x}/layer.tar", 1)],
    }]))
    .expect("manifest")
    .len()
        + 1;
    let cut = bytes.len() - 1024 - manifest_len.div_ceil(512) * 512 - 512;
    let path = write_file(dir.path(), "image2.tar", &bytes[..cut]);
    let err = open(&path, dir.path()).expect_err("manifest cut off");
    let config_member = format!("{}.json", hex(&image.image_id));
    assert!(
        matches!(&err, Error::MissingEndOfArchive { last_member: Some(member), .. }
            if *member == config_member),
        "{err}"
    );
    // An empty file has no members and no end marker.
    let path = write_file(dir.path(), "empty.tar", b"");
    let err = open(&path, dir.path()).expect_err("empty file");
    assert!(
        matches!(
            &err,
            Error::MissingEndOfArchive {
                last_member: None,
                offset: 0,
                ..
            }
        ),
        "{err}"
    );
}

/// The Docker 20.10 image id of tests/data/image-config-build.json (the sha256 of the file, as
/// Docker stored it) and the DiffIDs Docker wrote into it; the second is the sha256 of
/// tests/data/build-layer.tar, the layer Docker's classic builder produced for it.
const DOCKER_BUILD_IMAGE_ID: &str =
    "sha256:5abcbabfa2d767a1ea805ced0961226cf08493bcc415684ace4be8de2fb771af";
const DOCKER_BUILD_DIFF_IDS: [&str; 2] = [
    "sha256:dbb48825f54dbaa2cf1de0829b3f4a8c1e6645cd4163be30090da819d6c99e23",
    "sha256:dccdf5d381b1ccdd57a500de962f55aea0fc5d5ac86885e23daec1c2bdf3d08b",
];

#[test]
fn docker_archive_with_docker_written_config_and_layer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let config = fs::read(data.join("image-config-build.json")).expect("config fixture");
    let build_layer = fs::read(data.join("build-layer.tar")).expect("layer fixture");
    // The base layer is not among the fixtures; a docker-archive's layers are verified against
    // their DiffIDs only when unpacked, so a stand-in is enough to read the archive.
    let base_layer = layer_tar("base.txt", b"stand-in for the base layer\n");
    let image = TestImage {
        layers: vec![base_layer, build_layer.clone()],
        diff_ids: DOCKER_BUILD_DIFF_IDS
            .iter()
            .map(|d| d.to_string())
            .collect(),
        config,
        image_id: DOCKER_BUILD_IMAGE_ID.to_string(),
    };
    let bytes = docker_archive(&image, Some(vec!["seed:latest"]), None, |_| {});
    let path = write_file(dir.path(), "image.tar", &bytes);
    let archive = open(&path, dir.path()).expect("open archive");
    let found = &archive.images()[0];
    assert_eq!(found.image_id, DOCKER_BUILD_IMAGE_ID);
    assert_eq!(found.names, ["seed:latest"]);
    let diff_ids: Vec<&str> = found.layers.iter().map(|l| l.diff_id.as_str()).collect();
    assert_eq!(diff_ids, DOCKER_BUILD_DIFF_IDS);
    let layers = read_all_layers(&archive);
    assert_eq!(sha256(&layers[1]), DOCKER_BUILD_DIFF_IDS[1]);
}

#[test]
fn docker_25_archive_with_index_json_prefers_manifest_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = test_image();
    let bytes = docker_archive(&image, Some(vec!["app:1"]), None, |builder| {
        append_file(builder, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        append_file(builder, "index.json", b"not even json");
    });
    let path = write_file(dir.path(), "image.tar", &bytes);
    let archive = open(&path, dir.path()).expect("open archive");
    assert_eq!(archive.format(), Format::DockerArchive);
    assert_eq!(archive.images()[0].names, ["app:1"]);
}

/// An OCI layout under construction: blobs by digest plus index entries.
struct Layout {
    blobs: Vec<(String, Vec<u8>)>,
}

impl Layout {
    fn new() -> Layout {
        Layout { blobs: Vec::new() }
    }

    fn add_blob(&mut self, bytes: Vec<u8>) -> serde_json::Value {
        let digest = sha256(&bytes);
        let size = bytes.len();
        self.blobs.push((digest.clone(), bytes));
        serde_json::json!({"digest": digest, "size": size})
    }

    /// Adds gzip'd layers, the config and a manifest; returns the manifest descriptor.
    fn add_image(&mut self, image: &TestImage) -> serde_json::Value {
        let mut layers = Vec::new();
        for layer in &image.layers {
            let mut descriptor = self.add_blob(gzip(layer));
            descriptor["mediaType"] = OCI_LAYER_GZIP.into();
            layers.push(descriptor);
        }
        let mut config = self.add_blob(image.config.clone());
        config["mediaType"] = OCI_CONFIG.into();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": layers,
        });
        let mut descriptor = self.add_blob(serde_json::to_vec(&manifest).expect("manifest"));
        descriptor["mediaType"] = OCI_MANIFEST.into();
        descriptor
    }

    fn index(manifests: Vec<serde_json::Value>) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": manifests,
        }))
        .expect("index")
    }

    fn write_dir(&self, dir: &Path, index: &[u8]) {
        fs::create_dir_all(dir.join("blobs/sha256")).expect("mkdir blobs");
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("write");
        fs::write(dir.join("index.json"), index).expect("write index");
        for (digest, bytes) in &self.blobs {
            fs::write(dir.join("blobs/sha256").join(hex(digest)), bytes).expect("write blob");
        }
    }

    fn tar(&self, index: &[u8]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        append_file(
            &mut builder,
            "oci-layout",
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        );
        append_file(&mut builder, "index.json", index);
        for (digest, bytes) in &self.blobs {
            append_file(
                &mut builder,
                &format!("./blobs/sha256/{}", hex(digest)),
                bytes,
            );
        }
        builder.into_inner().expect("finish tar")
    }
}

/// The test image in a new layout, and its manifest descriptor.
fn layout_of_test_image() -> (TestImage, Layout, serde_json::Value) {
    let image = test_image();
    let mut layout = Layout::new();
    let manifest = layout.add_image(&image);
    (image, layout, manifest)
}

/// A temp dir holding an OCI layout of the unnamed test image.
fn oci_layout_dir() -> (tempfile::TempDir, TestImage) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (image, layout, manifest) = layout_of_test_image();
    layout.write_dir(dir.path(), &Layout::index(vec![manifest]));
    (dir, image)
}

/// The file of the blob `digest` in the layout at `dir`.
fn blob_path(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs/sha256").join(hex(digest))
}

fn with_annotations(
    mut descriptor: serde_json::Value,
    pairs: &[(&str, &str)],
) -> serde_json::Value {
    let map: serde_json::Map<String, serde_json::Value> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::from(*v)))
        .collect();
    descriptor["annotations"] = serde_json::Value::Object(map);
    descriptor
}

fn assert_oci_image(archive: &Archive, image: &TestImage) {
    let found = &archive.images()[0];
    assert_eq!(found.image_id, image.image_id);
    assert_eq!(found.config, image.config);
    let diff_ids: Vec<&str> = found.layers.iter().map(|l| l.diff_id.as_str()).collect();
    assert_eq!(diff_ids, image.diff_ids);
    for (layer, tar) in found.layers.iter().zip(&image.layers) {
        let blob_digest = sha256(&gzip(tar));
        assert_eq!(layer.digest.as_deref(), Some(blob_digest.as_str()));
        assert_eq!(layer.member, format!("blobs/sha256/{}", hex(&blob_digest)));
        assert_eq!(layer.media_type.as_deref(), Some(OCI_LAYER_GZIP));
    }
    let compressed: Vec<Vec<u8>> = image.layers.iter().map(|l| gzip(l)).collect();
    assert_eq!(read_all_layers(archive), compressed);
}

#[test]
fn oci_layout_dir_with_full_ref_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (image, layout, manifest) = layout_of_test_image();
    let index = Layout::index(vec![with_annotations(
        manifest,
        &[(REF_NAME, "example.com/team/app:1.2")],
    )]);
    layout.write_dir(dir.path(), &index);
    let archive = open(dir.path(), dir.path()).expect("open layout");
    assert_eq!(archive.format(), Format::OciLayout);
    assert_eq!(archive.images()[0].names, ["example.com/team/app:1.2"]);
    assert_oci_image(&archive, &image);
}

#[test]
fn oci_archive_with_bare_tag_names() {
    let (dir, scratch) = dir_and_scratch();
    let (image, layout, manifest) = layout_of_test_image();

    // A bare tag with io.containerd.image.name takes that annotation's repository.
    let index = Layout::index(vec![with_annotations(
        manifest.clone(),
        &[
            (REF_NAME, "v2"),
            (CONTAINERD_NAME, "docker.io/library/app:latest"),
        ],
    )]);
    let path = write_file(dir.path(), "image.oci.tar", &layout.tar(&index));
    let archive = open(&path, scratch.path()).expect("open oci archive");
    assert_eq!(archive.format(), Format::OciArchive);
    assert_eq!(archive.images()[0].names, ["docker.io/library/app:v2"]);
    assert_oci_image(&archive, &image);

    // A bare tag alone takes OpenOptions::name, or gives no name at all.
    let index = Layout::index(vec![with_annotations(manifest, &[(REF_NAME, "v3")])]);
    let path = write_file(dir.path(), "image2.oci.tar", &layout.tar(&index));
    let options = OpenOptions {
        name: Some("example.com/app".to_string()),
    };
    let archive = Archive::open(&path, scratch.path(), &options).expect("open with name");
    assert_eq!(archive.images()[0].names, ["example.com/app:v3"]);
    let archive = open(&path, scratch.path()).expect("open without name");
    assert!(archive.images()[0].names.is_empty());
    assert_eq!(fs::read_dir(scratch.path()).expect("scratch").count(), 0);
}

#[test]
fn oci_nested_index_picks_linux_amd64_and_merges_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = test_image();
    let other = TestImage {
        layers: vec![layer_tar("arm.txt", b"arm64\n")],
        ..image_clone(&image)
    };
    let other = TestImage {
        config: config_json(&[sha256(&other.layers[0])]),
        diff_ids: vec![sha256(&other.layers[0])],
        ..other
    };
    let mut layout = Layout::new();
    let mut arm = layout.add_image(&other);
    arm["platform"] = serde_json::json!({"os": "linux", "architecture": "arm64"});
    let mut amd = layout.add_image(&image);
    amd["platform"] = serde_json::json!({"os": "linux", "architecture": "amd64"});
    let nested = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [arm, amd.clone()],
    });
    let mut nested_descriptor = layout.add_blob(serde_json::to_vec(&nested).expect("nested"));
    nested_descriptor["mediaType"] = OCI_INDEX.into();
    let index = Layout::index(vec![
        with_annotations(nested_descriptor, &[(REF_NAME, "app:multi")]),
        with_annotations(amd, &[(REF_NAME, "app:amd64")]),
    ]);
    layout.write_dir(dir.path(), &index);
    let archive = open(dir.path(), dir.path()).expect("open layout");
    assert_eq!(archive.images().len(), 1);
    assert_eq!(archive.images()[0].names, ["app:multi", "app:amd64"]);
    assert_oci_image(&archive, &image);
}

#[test]
fn oci_index_json_listing_platform_variants_loads_linux_amd64_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = test_image();
    let arm_layer = layer_tar("arm.txt", b"arm64\n");
    let arm_config = config_json(&[sha256(&arm_layer)]);
    let arm_image = TestImage {
        layers: vec![arm_layer.clone()],
        diff_ids: vec![sha256(&arm_layer)],
        image_id: sha256(&arm_config),
        config: arm_config,
    };
    let mut layout = Layout::new();
    let mut arm = layout.add_image(&arm_image);
    arm["platform"] = serde_json::json!({"os": "linux", "architecture": "arm64"});
    let mut amd = layout.add_image(&image);
    amd["platform"] = serde_json::json!({"os": "linux", "architecture": "amd64"});
    // An attestation manifest is no image, even without a platform.
    let attestation = with_annotations(
        layout.add_image(&arm_image),
        &[("vnd.docker.reference.type", "attestation-manifest")],
    );
    let index = Layout::index(vec![
        with_annotations(arm, &[(REF_NAME, "app:latest")]),
        with_annotations(amd, &[(REF_NAME, "app:latest")]),
        attestation,
    ]);
    layout.write_dir(dir.path(), &index);
    let archive = open(dir.path(), dir.path()).expect("open layout");
    assert_eq!(archive.images().len(), 1);
    assert_eq!(archive.images()[0].names, ["app:latest"]);
    assert_oci_image(&archive, &image);
}

#[test]
fn oci_index_json_with_attestations_only_lists_no_images() {
    let dir = tempfile::tempdir().expect("tempdir");
    let image = test_image();
    let mut layout = Layout::new();
    let attestation = with_annotations(
        layout.add_image(&image),
        &[("vnd.docker.reference.type", "attestation-manifest")],
    );
    layout.write_dir(dir.path(), &Layout::index(vec![attestation]));
    let err = open(dir.path(), dir.path()).expect_err("no images");
    assert_err_member!(err, Error::NoImages, "index.json");
}

#[test]
fn oci_config_digest_mismatch_names_the_config_blob() {
    let (dir, image) = oci_layout_dir();
    // Replace the config blob's content behind its digest.
    let config_path = blob_path(dir.path(), &image.image_id);
    let tampered = config_json(&[image.diff_ids[1].clone(), image.diff_ids[0].clone()]);
    fs::write(&config_path, &tampered).expect("tamper");
    let err = open(dir.path(), dir.path()).expect_err("config mismatch");
    assert_digest_mismatch(
        &err,
        &format!("blobs/sha256/{}", hex(&image.image_id)),
        &image.image_id,
        &sha256(&tampered),
    );
}

#[test]
fn oci_layer_digest_mismatch_is_detected_at_finish() {
    let (dir, image) = oci_layout_dir();
    let expected = sha256(&gzip(&image.layers[1]));
    let tampered = gzip(b"not the layer");
    fs::write(blob_path(dir.path(), &expected), &tampered).expect("tamper");
    let archive = open(dir.path(), dir.path()).expect("open layout");
    let layer = &archive.images()[0].layers[1];
    let mut reader = archive.open_layer(layer).expect("open layer");
    let mut first = [0u8; 4];
    reader.read_exact(&mut first).expect("read some");
    let err = reader.finish().expect_err("digest mismatch");
    assert_digest_mismatch(
        &err,
        &format!("blobs/sha256/{}", hex(&expected)),
        &expected,
        &sha256(&tampered),
    );
    assert!(err.to_string().contains(&expected), "{err}");
}

#[test]
fn oci_layout_blob_symlink_is_not_followed() {
    let (dir, image) = oci_layout_dir();
    let outside = dir.path().join("outside");
    let blob = blob_path(dir.path(), &sha256(&gzip(&image.layers[0])));
    fs::rename(&blob, &outside).expect("move blob");
    std::os::unix::fs::symlink(&outside, &blob).expect("symlink");
    let err = open(dir.path(), dir.path()).expect_err("symlinked blob");
    assert!(matches!(&err, Error::NotAFile { .. }), "{err}");
}

/// A FIFO (or a device node) in a blob's place is refused without being opened: opening a FIFO
/// for reading blocks until a writer comes, and opening a device can act on it.
#[test]
fn oci_layout_blob_fifo_is_refused_without_being_opened() {
    let (dir, image) = oci_layout_dir();
    let blob = blob_path(dir.path(), &sha256(&gzip(&image.layers[0])));
    fs::remove_file(&blob).expect("remove blob");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &blob,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .expect("mkfifo");
    let (sender, receiver) = std::sync::mpsc::channel();
    let path = dir.path().to_path_buf();
    std::thread::spawn(move || {
        let result = open(&path, &path)
            .map(|_| ())
            .map_err(|err| err.to_string());
        let _ = sender.send(result);
    });
    let result = receiver
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("opening the layout blocked on the FIFO");
    let err = result.expect_err("a FIFO blob");
    assert!(err.contains("blobs/sha256/"), "{err}");
}

#[test]
fn oci_invalid_digest_in_index_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = Layout::new();
    let index = Layout::index(vec![serde_json::json!({
        "mediaType": OCI_MANIFEST,
        "digest": "sha256:../../../../etc/passwd",
        "size": 1,
    })]);
    layout.write_dir(dir.path(), &index);
    let err = open(dir.path(), dir.path()).expect_err("invalid digest");
    assert_err_member!(err, Error::InvalidDigest, "index.json");
}

#[test]
fn oversized_index_json_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = Layout::new();
    layout.write_dir(dir.path(), b"{}");
    // A sparse file just over the 64 MiB limit costs no disk space.
    let file = fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("index.json"))
        .expect("open index");
    file.set_len((64 << 20) + 1).expect("grow index");
    let err = open(dir.path(), dir.path()).expect_err("too large");
    assert_err_member!(err, Error::TooLarge, "index.json");
}

#[test]
fn plain_file_that_is_no_image_archive_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = layer_tar("hello.txt", b"hi");
    let path = write_file(dir.path(), "rootfs.tar", &bytes);
    let err = open(&path, dir.path()).expect_err("unknown format");
    assert!(matches!(&err, Error::UnknownFormat { .. }), "{err}");
}

/// Runs skopeo, failing the test with its stderr when it fails.
fn skopeo(args: &[&str]) {
    let output = std::process::Command::new("skopeo")
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("run skopeo: {err}"));
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        panic!("skopeo {args:?} failed: {stderr}");
    }
}

#[test]
fn skopeo_converted_oci_layout_and_archive_match_docker_archive_needs_skopeo() {
    let available = std::process::Command::new("skopeo")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "skopeo is required when CI=true"
        );
        println!("SKIP: skopeo not installed");
        return;
    }
    let (dir, scratch) = dir_and_scratch();
    let image = test_image();
    let bytes = docker_archive(&image, Some(vec!["example.com/app:v1"]), None, |_| {});
    let docker_path = write_file(dir.path(), "image.tar", &bytes);
    let layout_dir = dir.path().join("layout");
    let oci_archive = dir.path().join("image.oci.tar");
    let source = format!("docker-archive:{}", docker_path.display());
    skopeo(&[
        "--insecure-policy",
        "copy",
        "--quiet",
        &source,
        &format!("oci:{}:example.com/app:v1", layout_dir.display()),
    ]);
    skopeo(&[
        "--insecure-policy",
        "copy",
        "--quiet",
        &source,
        &format!("oci-archive:{}:example.com/app:v1", oci_archive.display()),
    ]);
    for (path, format) in [
        (layout_dir.as_path(), Format::OciLayout),
        (oci_archive.as_path(), Format::OciArchive),
    ] {
        let archive = open(path, scratch.path()).expect("open skopeo output");
        assert_eq!(archive.format(), format);
        assert_eq!(archive.images().len(), 1);
        let found = &archive.images()[0];
        assert_eq!(found.image_id, image.image_id, "{}", path.display());
        assert_eq!(found.names, ["example.com/app:v1"]);
        let diff_ids: Vec<&str> = found.layers.iter().map(|l| l.diff_id.as_str()).collect();
        assert_eq!(diff_ids, image.diff_ids);
        for layer in &found.layers {
            let mut reader = archive.open_layer(layer).expect("open layer");
            std::io::copy(&mut reader, &mut std::io::sink()).expect("read layer");
            reader.finish().expect("layer digest");
        }
    }
}

#[test]
fn gzipped_oci_archive_with_hard_linked_blob_is_read() {
    let (dir, scratch) = dir_and_scratch();
    let (image, layout, manifest) = layout_of_test_image();
    let index = Layout::index(vec![with_annotations(manifest, &[(REF_NAME, "app:hl")])]);
    // Move the first layer blob to another member and leave a hard link in its place.
    let first_layer = sha256(&gzip(&image.layers[0]));
    let mut builder = tar::Builder::new(Vec::new());
    append_file(
        &mut builder,
        "oci-layout",
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    );
    append_file(&mut builder, "index.json", &index);
    for (digest, bytes) in &layout.blobs {
        let name = format!("blobs/sha256/{}", hex(digest));
        if *digest == first_layer {
            append_file(&mut builder, "stash/blob", bytes);
            let mut header = file_header(0, 0o644);
            header.set_entry_type(tar::EntryType::Link);
            builder
                .append_link(&mut header, &name, "./stash/blob")
                .expect("append hard link");
        } else {
            append_file(&mut builder, &name, bytes);
        }
    }
    let bytes = builder.into_inner().expect("finish tar");
    let path = write_file(dir.path(), "image.oci.tar.gz", &gzip(&bytes));
    let archive = open(&path, scratch.path()).expect("open gzip'd oci archive");
    assert_eq!(archive.format(), Format::OciArchive);
    assert_eq!(archive.images()[0].names, ["app:hl"]);
    assert_oci_image(&archive, &image);
}

/// The error `open` gives for an archive file holding `bytes`.
fn open_bytes_err(bytes: &[u8], what: &str) -> Error {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_file(dir.path(), "image.tar", bytes);
    open(&path, dir.path()).expect_err(what)
}
