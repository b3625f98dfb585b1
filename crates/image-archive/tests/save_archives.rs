//! The archive writer against archives Docker 20.10 wrote. `tests/data/docker-save-*.tar` come
//! from `docker save` of a private dockerd 20.10.24: `tiny-app:1` (four layers, the last one's
//! DiffID repeating the second's, so its `layer.tar` is a link), `rich:1` (a config using every
//! `container.Config` field a Dockerfile can set, HTML-escaped label values, an author), `foreign`
//! (a hand-written config that `docker load` accepted: mixed-case keys, `Cmd` as a string, a
//! `+02:00` creation time with trailing zeros, a `Size` key, no `container_config`, an arm64
//! platform, a registry name), and `tiny-app:1 tiny-base:1` saved together (a DiffID shared
//! across images). The layers, configs and tags are read back from Docker's archive and handed to
//! the writer; its output must be Docker's archive byte for byte.
//!
//! The OCI formats are checked by reading them back with this crate's reader.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use image_archive::{
    write_docker_archive, write_oci_archive, write_oci_layout, Archive, Compression, Error, Format,
    LayerError, LayerSource, OpenOptions, SaveImage, SaveLayer, SaveOptions,
};
use sha2::{Digest, Sha256};

const FIXTURES: [&str; 4] = [
    "docker-save-tiny-app.tar",
    "docker-save-rich.tar",
    "docker-save-foreign.tar",
    "docker-save-two-images.tar",
];

fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn sha256(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// One member of a tar as the `tar` crate decodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    name: String,
    kind: tar::EntryType,
    mode: u32,
    mtime: u64,
    link: Option<String>,
    data: Vec<u8>,
    /// The raw 512-byte header.
    header: Vec<u8>,
}

fn members(bytes: &[u8]) -> Vec<Member> {
    let mut archive = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let name = String::from_utf8(entry.path_bytes().into_owned()).expect("utf-8 name");
        let header = entry.header().clone();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("member data");
        out.push(Member {
            name,
            kind: header.entry_type(),
            mode: header.mode().expect("mode"),
            mtime: header.mtime().expect("mtime"),
            link: entry
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned()),
            data,
            header: header.as_bytes().to_vec(),
        });
    }
    out
}

/// An image as Docker's archive holds it.
#[derive(Debug, Clone)]
struct DockerImage {
    config: Vec<u8>,
    repo_tags: Vec<String>,
    layers: Vec<Vec<u8>>,
}

/// The images of a docker-archive in manifest order, and the mtime Docker gave members it wrote
/// at the time of the save (layer directories holding a link), if any.
/// The images of the `docker save` fixture of `tiny-app:1`.
fn tiny_app_images() -> Vec<DockerImage> {
    let bytes = fs::read(fixture_path("docker-save-tiny-app.tar")).expect("fixture");
    docker_images(&bytes).0
}

fn docker_images(bytes: &[u8]) -> (Vec<DockerImage>, Option<i64>) {
    let members = members(bytes);
    let by_name: BTreeMap<&str, &Member> = members.iter().map(|m| (m.name.as_str(), m)).collect();
    let data = |name: &str| -> Vec<u8> {
        let mut name = name.to_string();
        loop {
            let member = by_name
                .get(name.as_str())
                .unwrap_or_else(|| panic!("member {name}"));
            match &member.link {
                Some(target) if member.kind == tar::EntryType::Symlink => {
                    let dir = Path::new(&name).parent().expect("parent");
                    let joined = dir.join(target);
                    let mut parts: Vec<String> = Vec::new();
                    for part in joined.components() {
                        match part {
                            std::path::Component::ParentDir => {
                                parts.pop();
                            }
                            std::path::Component::Normal(p) => {
                                parts.push(p.to_string_lossy().into_owned())
                            }
                            _ => {}
                        }
                    }
                    name = parts.join("/");
                }
                _ => return member.data.clone(),
            }
        }
    };
    let manifest: serde_json::Value =
        serde_json::from_slice(&data("manifest.json")).expect("manifest json");
    let images = manifest
        .as_array()
        .expect("manifest array")
        .iter()
        .map(|item| DockerImage {
            config: data(item["Config"].as_str().expect("Config")),
            repo_tags: item["RepoTags"]
                .as_array()
                .map(|tags| {
                    tags.iter()
                        .map(|t| t.as_str().expect("tag").to_string())
                        .collect()
                })
                .unwrap_or_default(),
            layers: item["Layers"]
                .as_array()
                .expect("Layers")
                .iter()
                .map(|l| data(l.as_str().expect("layer")))
                .collect(),
        })
        .collect();
    let link_time = members
        .iter()
        .find(|m| m.kind == tar::EntryType::Symlink)
        .map(|m| m.mtime as i64);
    (images, link_time)
}

/// A layer source serving bytes from memory, in small writes.
struct MemorySource(Vec<u8>);

impl LayerSource for MemorySource {
    fn write_tar(&mut self, out: &mut dyn Write) -> Result<(), LayerError> {
        for chunk in self.0.chunks(1000) {
            out.write_all(chunk)?;
        }
        Ok(())
    }
}

fn diff_ids(config: &[u8]) -> Vec<String> {
    let value: serde_json::Value = serde_json::from_slice(config).expect("config json");
    value["rootfs"]["diff_ids"]
        .as_array()
        .expect("diff_ids")
        .iter()
        .map(|d| d.as_str().expect("diff id").to_string())
        .collect()
}

fn save_image(image: &DockerImage, name: &str) -> SaveImage {
    let layers = image
        .layers
        .iter()
        .zip(diff_ids(&image.config))
        .map(|(bytes, diff_id)| SaveLayer {
            diff_id,
            tar_len: bytes.len() as u64,
            source: Box::new(MemorySource(bytes.clone())),
        })
        .collect();
    SaveImage {
        name: name.to_string(),
        image_id: sha256(&image.config),
        config: image.config.clone(),
        repo_tags: image.repo_tags.clone(),
        parent: None,
        layers,
    }
}

fn options(compression: Compression, now: i64, scratch: &Path) -> SaveOptions {
    SaveOptions {
        output: PathBuf::from("test-output"),
        compression,
        now,
        scratch_dir: scratch.to_path_buf(),
    }
}

fn docker_archive_of(images: &mut [SaveImage], now: i64) -> Result<Vec<u8>, Error> {
    let scratch = tempfile::tempdir().expect("scratch");
    let mut out = Vec::new();
    write_docker_archive(
        images,
        &mut out,
        &options(Compression::None, now, scratch.path()),
    )?;
    Ok(out)
}

/// Names the first member where two archives differ.
fn first_difference(expected: &[u8], actual: &[u8]) -> String {
    let expected = members(expected);
    let actual = members(actual);
    for (e, a) in expected.iter().zip(&actual) {
        if e != a {
            return format!(
                "member {} (docker) vs {} (ovl): header equal {}, data equal {}\n docker data: {}\n ovl data:    {}",
                e.name,
                a.name,
                e.header == a.header,
                e.data == a.data,
                String::from_utf8_lossy(&e.data[..e.data.len().min(600)]),
                String::from_utf8_lossy(&a.data[..a.data.len().min(600)]),
            );
        }
    }
    format!(
        "{} members (docker) vs {} (ovl)",
        expected.len(),
        actual.len()
    )
}

#[test]
fn docker_archive_is_byte_identical_to_docker_save() {
    for fixture in FIXTURES {
        let expected = fs::read(fixture_path(fixture)).expect("fixture");
        let (images, link_time) = docker_images(&expected);
        let mut save: Vec<SaveImage> = images
            .iter()
            .enumerate()
            .map(|(idx, image)| save_image(image, &format!("{fixture}#{idx}")))
            .collect();
        let actual = docker_archive_of(&mut save, link_time.unwrap_or(0)).expect("write");
        assert!(
            actual == expected,
            "{fixture}: ovl's archive differs from docker save's: {}",
            first_difference(&expected, &actual)
        );
    }
}

#[test]
fn docker_archive_by_id_has_null_repo_tags_and_no_repositories() {
    let tagged = fs::read(fixture_path("docker-save-tiny-app.tar")).expect("fixture");
    let expected_manifest =
        fs::read(fixture_path("docker-save-tiny-app-by-id.manifest.json")).expect("fixture");
    let (images, link_time) = docker_images(&tagged);
    let mut untagged = images[0].clone();
    untagged.repo_tags.clear();
    let actual = docker_archive_of(
        &mut [save_image(&untagged, "by id")],
        link_time.unwrap_or(0),
    )
    .expect("write");
    let mut expected: Vec<Member> = members(&tagged)
        .into_iter()
        .filter(|m| m.name != "repositories")
        .collect();
    let manifest = expected
        .iter_mut()
        .find(|m| m.name == "manifest.json")
        .expect("manifest member");
    manifest.data = expected_manifest;
    let actual = members(&actual);
    assert_eq!(actual.len(), expected.len());
    for (e, a) in expected.iter().zip(&actual) {
        assert_eq!(
            (&e.name, e.kind, e.mode, e.mtime, &e.link, &e.data),
            (&a.name, a.kind, a.mode, a.mtime, &a.link, &a.data),
            "member {}",
            e.name
        );
    }
}

#[test]
fn docker_archive_records_a_parent_saved_alongside() {
    let bytes = fs::read(fixture_path("docker-save-two-images.tar")).expect("fixture");
    let (images, _) = docker_images(&bytes);
    let mut save: Vec<SaveImage> = images
        .iter()
        .map(|image| save_image(image, "img"))
        .collect();
    let base_id = save[1].image_id.clone();
    save[0].parent = Some(base_id.clone());
    save[1].parent = Some(format!("sha256:{}", "0".repeat(64)));
    let out = docker_archive_of(&mut save, 0).expect("write");
    let manifest = members(&out)
        .into_iter()
        .find(|m| m.name == "manifest.json")
        .expect("manifest");
    let manifest: serde_json::Value = serde_json::from_slice(&manifest.data).expect("json");
    assert_eq!(manifest[0]["Parent"], base_id.as_str());
    assert!(manifest[1].get("Parent").is_none(), "{manifest}");
}

#[test]
fn the_same_image_named_twice_is_saved_once_with_both_tags() {
    let images = tiny_app_images();
    let mut first = save_image(&images[0], "tiny-app:1");
    first.repo_tags = vec!["tiny-app:1".to_string()];
    let mut second = save_image(&images[0], "tiny-app:2");
    second.repo_tags = vec!["tiny-app:2".to_string(), "tiny-app:1".to_string()];
    let out = docker_archive_of(&mut [first, second], 0).expect("write");
    let by_name: BTreeMap<String, Member> = members(&out)
        .into_iter()
        .map(|m| (m.name.clone(), m))
        .collect();
    let manifest: serde_json::Value =
        serde_json::from_slice(&by_name["manifest.json"].data).expect("json");
    assert_eq!(manifest.as_array().expect("array").len(), 1);
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!(["tiny-app:1", "tiny-app:2"])
    );
    let top = manifest[0]["Layers"][3]
        .as_str()
        .expect("layer")
        .trim_end_matches("/layer.tar")
        .to_string();
    assert_eq!(
        String::from_utf8_lossy(&by_name["repositories"].data),
        format!("{{\"tiny-app\":{{\"1\":\"{top}\",\"2\":\"{top}\"}}}}\n")
    );
}

/// Every image of every fixture, written in one format and read back.
fn round_trip(format: Format, compression: Compression) {
    for fixture in FIXTURES {
        let bytes = fs::read(fixture_path(fixture)).expect("fixture");
        let (images, _) = docker_images(&bytes);
        let mut save: Vec<SaveImage> = images
            .iter()
            .map(|image| save_image(image, fixture))
            .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let scratch = tempfile::tempdir().expect("scratch");
        let options = options(compression, 0, scratch.path());
        let path = match format {
            Format::DockerArchive | Format::OciArchive => {
                let path = dir.path().join("out.tar");
                let mut file = fs::File::create(&path).expect("create");
                if format == Format::DockerArchive {
                    write_docker_archive(&mut save, &mut file, &options).expect("write");
                } else {
                    write_oci_archive(&mut save, &mut file, &options).expect("write");
                }
                path
            }
            Format::OciLayout => {
                let path = dir.path().join("layout");
                write_oci_layout(&mut save, &path, &options).expect("write");
                path
            }
        };
        assert_eq!(
            fs::read_dir(scratch.path()).expect("scratch").count(),
            0,
            "{fixture}: staged layers are removed"
        );
        let read_scratch = tempfile::tempdir().expect("scratch");
        let archive =
            Archive::open(&path, read_scratch.path(), &OpenOptions::default()).expect("read back");
        assert_eq!(archive.format(), format);
        assert_eq!(archive.images().len(), images.len(), "{fixture}");
        for (found, image) in archive.images().iter().zip(&images) {
            assert_eq!(found.config, image.config, "{fixture}");
            assert_eq!(found.image_id, sha256(&image.config));
            let mut names = found.names.clone();
            if format != Format::DockerArchive {
                // The reader gives OCI names in full; Docker Hub names come back with their
                // registry and namespace.
                for name in &mut names {
                    if let Some(short) = name.strip_prefix("docker.io/library/") {
                        *name = short.to_string();
                    }
                }
            }
            assert_eq!(names, image.repo_tags, "{fixture}");
            assert_eq!(found.layers.len(), image.layers.len());
            for (layer, expected) in found.layers.iter().zip(&image.layers) {
                let mut reader = archive.open_layer(layer).expect("open layer");
                let mut raw = Vec::new();
                reader.read_to_end(&mut raw).expect("read layer");
                reader.finish().expect("layer digest");
                let tar = match compression {
                    Compression::None => raw,
                    Compression::Gzip => {
                        let mut tar = Vec::new();
                        flate2::read::GzDecoder::new(raw.as_slice())
                            .read_to_end(&mut tar)
                            .expect("gunzip");
                        tar
                    }
                    Compression::Zstd => zstd::decode_all(raw.as_slice()).expect("unzstd"),
                };
                assert!(tar == *expected, "{fixture}: layer {}", layer.member);
                assert_eq!(sha256(&tar), layer.diff_id);
            }
        }
    }
}

#[test]
fn docker_archive_round_trips_through_the_reader() {
    round_trip(Format::DockerArchive, Compression::None);
}

#[test]
fn oci_archive_round_trips_uncompressed_gzip_and_zstd() {
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        round_trip(Format::OciArchive, compression);
    }
}

#[test]
fn oci_layout_round_trips_uncompressed_gzip_and_zstd() {
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        round_trip(Format::OciLayout, compression);
    }
}

#[test]
fn oci_layout_stores_shared_layers_once_and_names_tags_like_containerd() {
    let bytes = fs::read(fixture_path("docker-save-two-images.tar")).expect("fixture");
    let (images, _) = docker_images(&bytes);
    let mut save: Vec<SaveImage> = images.iter().map(|i| save_image(i, "img")).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("layout");
    write_oci_layout(&mut save, &path, &options(Compression::Gzip, 0, dir.path())).expect("write");
    // tiny-app has four layers (one DiffID twice), tiny-base one shared with tiny-app: three
    // distinct layers, two configs and two manifests.
    let n_blobs = fs::read_dir(path.join("blobs/sha256"))
        .expect("blobs")
        .count();
    assert_eq!(n_blobs, 3 + 2 + 2);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(path.join("index.json")).expect("index")).expect("json");
    assert_eq!(index["schemaVersion"], 2);
    let annotations: Vec<&serde_json::Value> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| &m["annotations"])
        .collect();
    assert_eq!(
        annotations,
        [
            &serde_json::json!({"io.containerd.image.name": "docker.io/library/tiny-app:1", "org.opencontainers.image.ref.name": "1"}),
            &serde_json::json!({"io.containerd.image.name": "docker.io/library/tiny-base:1", "org.opencontainers.image.ref.name": "1"}),
        ]
    );
    assert_eq!(
        fs::read(path.join("oci-layout")).expect("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#
    );
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(leftovers, [std::ffi::OsString::from("layout")]);
}

#[test]
fn oci_archive_output_is_reproducible() {
    let bytes = fs::read(fixture_path("docker-save-rich.tar")).expect("fixture");
    let (images, _) = docker_images(&bytes);
    let scratch = tempfile::tempdir().expect("scratch");
    let mut outputs = Vec::new();
    for _ in 0..2 {
        let mut out = Vec::new();
        write_oci_archive(
            &mut [save_image(&images[0], "rich:1")],
            &mut out,
            &options(Compression::Zstd, 0, scratch.path()),
        )
        .expect("write");
        outputs.push(out);
    }
    assert!(outputs[0] == outputs[1]);
    let names: Vec<String> = members(&outputs[0]).into_iter().map(|m| m.name).collect();
    assert_eq!(names[..2], ["blobs/", "blobs/sha256/"]);
    assert_eq!(names[names.len() - 2..], ["index.json", "oci-layout"]);
    let mut blob_names = names[2..names.len() - 2].to_vec();
    blob_names.sort();
    assert_eq!(blob_names, names[2..names.len() - 2]);
}

/// A source that writes something other than the layer.
struct BadSource {
    bytes: Vec<u8>,
    fail: bool,
}

impl LayerSource for BadSource {
    fn write_tar(&mut self, out: &mut dyn Write) -> Result<(), LayerError> {
        out.write_all(&self.bytes)?;
        if self.fail {
            return Err("etc/passwd changed since the layer was registered".into());
        }
        Ok(())
    }
}

fn tiny_app_with_layer(layer_idx: usize, source: BadSource, tar_len: Option<u64>) -> SaveImage {
    let images = tiny_app_images();
    let mut image = save_image(&images[0], "tiny-app:1");
    if let Some(tar_len) = tar_len {
        image.layers[layer_idx].tar_len = tar_len;
    }
    image.layers[layer_idx].source = Box::new(source);
    image
}

#[test]
fn a_layer_that_does_not_hash_to_its_diff_id_fails_naming_image_and_layer() {
    let images = tiny_app_images();
    // One byte of file data flipped: same length, another digest.
    let mut changed = images[0].layers[1].clone();
    let flipped = changed.len() - 1100;
    changed[flipped] ^= 0xff;
    let diff_id = diff_ids(&images[0].config)[1].clone();
    let scratch = tempfile::tempdir().expect("scratch");
    for compression in [Compression::None, Compression::Gzip] {
        let mut image = tiny_app_with_layer(
            1,
            BadSource {
                bytes: changed.clone(),
                fail: false,
            },
            None,
        );
        let mut out = Vec::new();
        let options = options(compression, 0, scratch.path());
        let err = if compression == Compression::None {
            write_docker_archive(std::slice::from_mut(&mut image), &mut out, &options)
        } else {
            write_oci_archive(std::slice::from_mut(&mut image), &mut out, &options)
        }
        .expect_err("a changed layer must fail the save");
        let text = err.to_string();
        assert!(matches!(err, Error::LayerDigest { .. }), "{text}");
        assert!(
            text.contains("tiny-app:1") && text.contains(&diff_id),
            "{text}"
        );
    }
    assert_eq!(fs::read_dir(scratch.path()).expect("scratch").count(), 0);
}

#[test]
fn a_failing_source_keeps_its_cause_and_a_short_one_is_refused() {
    let scratch = tempfile::tempdir().expect("scratch");
    let mut image = tiny_app_with_layer(
        2,
        BadSource {
            bytes: vec![0; 512],
            fail: true,
        },
        None,
    );
    let mut out = Vec::new();
    let err = write_docker_archive(
        std::slice::from_mut(&mut image),
        &mut out,
        &options(Compression::None, 0, scratch.path()),
    )
    .expect_err("source failure");
    assert!(matches!(err, Error::LayerSource { .. }), "{err}");
    let cause = std::error::Error::source(&err).expect("cause").to_string();
    assert!(cause.contains("etc/passwd changed"), "{cause}");

    // A layer shorter, then longer, than the recorded size.
    for (len, what) in [(512, "short layer"), (4096, "long layer")] {
        let mut image = tiny_app_with_layer(
            2,
            BadSource {
                bytes: vec![0; len],
                fail: false,
            },
            None,
        );
        let err = write_docker_archive(
            std::slice::from_mut(&mut image),
            &mut Vec::new(),
            &options(Compression::None, 0, scratch.path()),
        )
        .expect_err(what);
        assert!(matches!(err, Error::LayerLength { .. }), "{what}: {err}");
    }
}

#[test]
fn docker_archive_refuses_compression() {
    let scratch = tempfile::tempdir().expect("scratch");
    let images = tiny_app_images();
    let err = write_docker_archive(
        &mut [save_image(&images[0], "tiny-app:1")],
        &mut Vec::new(),
        &options(Compression::Gzip, 0, scratch.path()),
    )
    .expect_err("gzip");
    assert!(matches!(err, Error::UnsupportedCompression { .. }), "{err}");
}

#[test]
fn oci_layout_refuses_a_non_empty_directory_and_leaves_nothing_on_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let images = tiny_app_images();

    let full = dir.path().join("full");
    fs::create_dir(&full).expect("mkdir");
    fs::write(full.join("keep"), b"x").expect("write");
    let err = write_oci_layout(
        &mut [save_image(&images[0], "tiny-app:1")],
        &full,
        &options(Compression::None, 0, dir.path()),
    )
    .expect_err("non-empty dir");
    assert!(matches!(err, Error::InvalidOutput { .. }), "{err}");

    let empty = dir.path().join("empty");
    fs::create_dir(&empty).expect("mkdir");
    // Layer 3 repeats layer 1's DiffID and is never read; layer 2 is.
    let mut image = tiny_app_with_layer(
        2,
        BadSource {
            bytes: vec![1; 10],
            fail: false,
        },
        Some(10),
    );
    let err = write_oci_layout(
        std::slice::from_mut(&mut image),
        &empty,
        &options(Compression::Zstd, 0, dir.path()),
    )
    .expect_err("bad layer");
    assert!(matches!(err, Error::LayerDigest { .. }), "{err}");
    assert_eq!(fs::read_dir(&empty).expect("empty").count(), 0);
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["empty", "full"]);

    let mut image = save_image(&images[0], "tiny-app:1");
    write_oci_layout(
        std::slice::from_mut(&mut image),
        &empty,
        &options(Compression::Zstd, 0, dir.path()),
    )
    .expect("an empty directory is replaced by the layout");
    assert!(empty.join("index.json").is_file());
}

#[test]
fn an_image_without_layers_fits_an_oci_layout_but_not_a_docker_archive() {
    let config = br#"{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    let image = || SaveImage {
        name: "empty:1".to_string(),
        image_id: sha256(&config),
        config: config.clone(),
        repo_tags: vec!["empty:1".to_string()],
        parent: None,
        layers: Vec::new(),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let err = write_docker_archive(
        &mut [image()],
        &mut Vec::new(),
        &options(Compression::None, 0, dir.path()),
    )
    .expect_err("docker-archive");
    assert!(
        matches!(err, Error::InvalidSaveImage { .. }) && err.to_string().contains("empty:1"),
        "{err}"
    );
    let path = dir.path().join("empty.tar");
    let mut file = fs::File::create(&path).expect("create");
    write_oci_archive(
        &mut [image()],
        &mut file,
        &options(Compression::Gzip, 0, dir.path()),
    )
    .expect("oci-archive");
    let scratch = tempfile::tempdir().expect("scratch");
    let archive = Archive::open(&path, scratch.path(), &OpenOptions::default()).expect("read");
    assert_eq!(archive.images()[0].config, config);
    assert!(archive.images()[0].layers.is_empty());
}

#[test]
fn layers_that_do_not_match_the_config_are_refused() {
    let images = tiny_app_images();
    let mut image = save_image(&images[0], "tiny-app:1");
    image.layers.pop();
    let err = write_docker_archive(
        &mut [image],
        &mut Vec::new(),
        &options(Compression::None, 0, Path::new("/nonexistent")),
    )
    .expect_err("three layers for four diff_ids");
    assert!(matches!(err, Error::InvalidSaveImage { .. }), "{err}");
    let mut image = save_image(&images[0], "tiny-app:1");
    image.image_id = format!("sha256:{}", "0".repeat(64));
    let err = write_docker_archive(
        &mut [image],
        &mut Vec::new(),
        &options(Compression::None, 0, Path::new("/nonexistent")),
    )
    .expect_err("wrong id");
    assert!(err.to_string().contains("not to the image id"), "{err}");
}
