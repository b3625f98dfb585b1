//! `ovl save` against Docker 20.10 and skopeo.
//!
//! - Images built by a private dockerd are saved by Docker, loaded by ovl and saved by ovl: the
//!   archives must be the same member for member (names, types, modes, owners, link targets,
//!   bytes; every `layer.tar` byte-identical), with one difference Docker's own writer makes
//!   unavoidable: a layer directory whose `layer.tar` is a link to an earlier copy carries the
//!   time of the save, so its mtimes are only checked to lie within the ovl run. Saved together,
//!   the images are compared as sets, because Docker orders them by Go map iteration.
//! - A second, fresh dockerd loads ovl's archive and runs its images.
//! - skopeo reads ovl's OCI archive and layout (gzip and zstd) and copies them, verifying every
//!   blob digest.
//! - Bad input: unknown names, a layer file changed after the load, a terminal as stdout, and
//!   option mistakes fail with exit status 1 and leave no output behind.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::io::Read as _;
use std::path::Path;
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Context as _};
use ovl_tests::{
    build_image, dockerd_with_base, image_config, require_root, require_skopeo, root_scratch,
    scratch_path, seed_context, sha256_digest, skopeo_json, tar_members, write_docker_archive,
    Dockerd, Failures, Ovl, Scratch, TarBuilder, TarMember, CHANGES_DOCKERFILE, SEED_DOCKERFILE,
};

/// The media type of a plain tar layer in the OCI image-spec.
const OCI_LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";

/// `dup`: the third layer repeats the DiffID of the first one above the base (the same file
/// copied to the same place twice), which Docker saves as a `layer.tar` link.
const DUP_DOCKERFILE: &str = r#"FROM ovl-base:1
COPY a.txt /data/a.txt
COPY b.txt /data/b.txt
COPY a.txt /data/a.txt
CMD ["/bin/sh"]
"#;

/// One archive member as the `tar` crate decodes it, with its raw header block.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Member {
    name: String,
    kind: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    uname: String,
    gname: String,
    mtime: u64,
    link: Option<String>,
    data: Vec<u8>,
    header: Vec<u8>,
}

fn read_members(path: &Path) -> anyhow::Result<Vec<Member>> {
    let file = fs::File::open(path).with_context(|| format!("open {}", path.display()))?;
    let lossy = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let member = |m: TarMember| -> anyhow::Result<Member> {
        let h = &m.header;
        Ok(Member {
            name: String::from_utf8(m.name).context("member name")?,
            kind: h.entry_type().as_byte(),
            mode: h.mode()?,
            uid: h.uid()?,
            gid: h.gid()?,
            uname: lossy(h.username_bytes().unwrap_or_default()),
            gname: lossy(h.groupname_bytes().unwrap_or_default()),
            mtime: h.mtime()?,
            link: m.link.as_deref().map(lossy),
            data: m.data,
            header: h.as_bytes().to_vec(),
        })
    };
    tar_members(file)?.into_iter().map(member).collect()
}

/// The layer directories whose `layer.tar` is a symlink: Docker stamps them with the time of
/// the save.
fn linked_layer_dirs(members: &[Member]) -> BTreeSet<String> {
    members
        .iter()
        .filter(|m| m.kind == b'2' && m.name.ends_with("/layer.tar"))
        .map(|m| m.name.trim_end_matches("layer.tar").to_string())
        .collect()
}

/// Compares a single-image archive of ovl with Docker's: same members in the same order, same
/// headers and bytes; in linked layer directories the mtime may differ and must lie in
/// `ovl_window`. Returns how many `layer.tar` files were compared and their total size.
fn compare_single(
    docker: &Path,
    ovl: &Path,
    ovl_window: (u64, u64),
) -> anyhow::Result<(usize, u64)> {
    let expected = read_members(docker)?;
    let actual = read_members(ovl)?;
    let expected_names: Vec<&str> = expected.iter().map(|m| m.name.as_str()).collect();
    let actual_names: Vec<&str> = actual.iter().map(|m| m.name.as_str()).collect();
    ensure!(
        expected_names == actual_names,
        "member lists differ:\n docker: {expected_names:?}\n ovl:    {actual_names:?}"
    );
    let linked = linked_layer_dirs(&expected);
    let mut n_layers = 0;
    let mut layer_bytes = 0;
    for (e, a) in expected.iter().zip(&actual) {
        let in_linked_dir = linked.iter().any(|dir| e.name.starts_with(dir.as_str()));
        if in_linked_dir {
            ensure!(
                (ovl_window.0..=ovl_window.1).contains(&a.mtime),
                "{}: mtime {} outside the ovl save ({:?})",
                a.name,
                a.mtime,
                ovl_window
            );
            ensure!(
                (&e.name, e.kind, e.mode, e.uid, e.gid, &e.uname, &e.gname, &e.link, &e.data)
                    == (
                        &a.name, a.kind, a.mode, a.uid, a.gid, &a.uname, &a.gname, &a.link, &a.data
                    ),
                "member {} differs: docker {:?} ovl {:?}",
                e.name,
                summary(e),
                summary(a)
            );
        } else {
            ensure!(
                e.header == a.header,
                "member {}: headers differ: docker {:?} ovl {:?}",
                e.name,
                summary(e),
                summary(a)
            );
            ensure!(
                e.data == a.data,
                "member {}: contents differ ({} vs {} bytes){}",
                e.name,
                e.data.len(),
                a.data.len(),
                if e.data.len() < 4096 {
                    format!(
                        "\n docker: {}\n ovl:    {}",
                        String::from_utf8_lossy(&e.data),
                        String::from_utf8_lossy(&a.data)
                    )
                } else {
                    String::new()
                }
            );
        }
        if e.name.ends_with("/layer.tar") && e.kind == b'0' {
            n_layers += 1;
            layer_bytes += e.data.len() as u64;
        }
    }
    if linked.is_empty() {
        ensure!(
            fs::read(docker)? == fs::read(ovl)?,
            "the archives are not byte-identical"
        );
    }
    Ok((n_layers, layer_bytes))
}

fn summary(m: &Member) -> String {
    format!(
        "type {} mode {:o} {}:{} {}/{} mtime {} size {} link {:?}",
        m.kind as char,
        m.mode,
        m.uid,
        m.gid,
        m.uname,
        m.gname,
        m.mtime,
        m.data.len(),
        m.link
    )
}

/// Compares multi-image archives, where Docker's image order (and so which copy of a shared
/// DiffID is the file and which the link) follows Go map iteration: same member names, same
/// `json`, `VERSION`, config, `repositories` members, the same `manifest.json` entries in any
/// order, and every `layer.tar` with the same content once links are followed.
fn compare_multi(docker: &Path, ovl: &Path) -> anyhow::Result<usize> {
    let expected = read_members(docker)?;
    let actual = read_members(ovl)?;
    let by_name = |members: &[Member]| -> BTreeMap<String, Member> {
        members
            .iter()
            .map(|m| (m.name.clone(), m.clone()))
            .collect()
    };
    let (expected, actual) = (by_name(&expected), by_name(&actual));
    let expected_names: Vec<&String> = expected.keys().collect();
    let actual_names: Vec<&String> = actual.keys().collect();
    ensure!(
        expected_names == actual_names,
        "member sets differ:\n docker: {expected_names:?}\n ovl:    {actual_names:?}"
    );
    let content = |members: &BTreeMap<String, Member>, name: &str| -> anyhow::Result<Vec<u8>> {
        let member = members.get(name).with_context(|| format!("no {name}"))?;
        match &member.link {
            Some(target) if member.kind == b'2' => {
                let resolved = target.trim_start_matches("../");
                let target = members
                    .get(resolved)
                    .with_context(|| format!("{name} links to missing {target}"))?;
                Ok(target.data.clone())
            }
            _ => Ok(member.data.clone()),
        }
    };
    let mut n_layers = 0;
    for name in expected.keys() {
        let (e, a) = (&expected[name], &actual[name]);
        // Which image writes a shared layer first, and so its mtime and whether its layer.tar
        // is the file or the link, follows Docker's image order; everything else must agree.
        if !name.ends_with("/layer.tar") {
            ensure!(
                (e.kind, e.mode, e.uid, e.gid, &e.uname, &e.gname)
                    == (a.kind, a.mode, a.uid, a.gid, &a.uname, &a.gname),
                "member {name}: docker {:?} ovl {:?}",
                summary(e),
                summary(a)
            );
        }
        if name == "manifest.json" {
            let parse = |m: &BTreeMap<String, Member>| -> anyhow::Result<BTreeSet<String>> {
                let items: Vec<serde_json::Value> = serde_json::from_slice(&m[name].data)?;
                Ok(items.iter().map(|item| item.to_string()).collect())
            };
            ensure!(
                parse(&expected)? == parse(&actual)?,
                "manifest.json entries differ"
            );
        } else if name.ends_with("/layer.tar") {
            ensure!(
                content(&expected, name)? == content(&actual, name)?,
                "{name}: layer contents differ"
            );
            n_layers += 1;
        } else if !name.ends_with('/') {
            ensure!(
                expected[name].data == actual[name].data,
                "{name}: contents differ"
            );
        }
    }
    Ok(n_layers)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Docker saves images built by its classic builder; ovl loads them and must save the same
/// archives; a fresh dockerd loads ovl's archive and runs the images.
#[test]
fn save_of_loaded_images_matches_docker_save_and_docker_loads_it_needs_root_and_dockerd() {
    const TEST: &str =
        "save_of_loaded_images_matches_docker_save_and_docker_loads_it_needs_root_and_dockerd";
    let Some(docker) = dockerd_with_base(TEST) else {
        return;
    };
    let total = Instant::now();
    let work = Scratch::new();
    let mut failures = Failures::default();
    build_image(&docker, "ovl-seed:1", SEED_DOCKERFILE, &seed_context());
    build_image(&docker, "ovl-changes:1", CHANGES_DOCKERFILE, &[]);
    build_image(
        &docker,
        "ovl-dup:1",
        DUP_DOCKERFILE,
        &[
            ("a.txt", b"aaa\n".to_vec(), 0o644),
            ("b.txt", b"bbb\n".to_vec(), 0o644),
        ],
    );
    eprintln!("timing: docker builds: {:.1?}", total.elapsed());
    let tags = ["ovl-base:1", "ovl-seed:1", "ovl-changes:1", "ovl-dup:1"];
    let dup_diff_ids = ovl_tests::image_diff_ids(&docker, "ovl-dup:1");
    if dup_diff_ids.get(1) != dup_diff_ids.get(3) {
        eprintln!("note: ovl-dup:1 has no repeated DiffID here: {dup_diff_ids:?}");
    }

    let ovl = Ovl::new(work.join("root"));
    let mut docker_archives = BTreeMap::new();
    for tag in tags {
        let archive = work.join(format!("docker-{}.tar", tag.replace(':', "_")));
        docker.save(tag, &archive);
        ovl.load(&archive)
            .unwrap_or_else(|e| panic!("ovl load {tag}: {e:#}"));
        docker_archives.insert(tag, archive);
    }

    // Each image alone, by tag.
    for tag in tags {
        let out = work.join(format!("ovl-{}.tar", tag.replace(':', "_")));
        let started = unix_now();
        let result = ovl.try_ok(["save", "-o", out.to_str().expect("utf-8 path"), tag]);
        let window = (started, unix_now());
        failures.check(
            &format!("ovl save {tag} matches docker save"),
            result.and_then(|_| {
                let (n_layers, n_bytes) = compare_single(&docker_archives[tag], &out, window)?;
                eprintln!("{tag}: {n_layers} layer.tar files ({n_bytes} bytes) byte-identical");
                Ok(())
            }),
        );
    }

    // By id: RepoTags null and no `repositories`, like Docker.
    let seed_id = docker.image_id("ovl-seed:1");
    let by_id_docker = work.join("docker-by-id.tar");
    docker.save(&seed_id, &by_id_docker);
    let by_id_ovl = work.join("ovl-by-id.tar");
    let started = unix_now();
    let result = ovl.try_ok([
        "save",
        "-o",
        by_id_ovl.to_str().expect("path"),
        &seed_id[7..19],
    ]);
    let window = (started, unix_now());
    failures.check(
        "ovl save <id prefix> matches docker save <id>",
        result.and_then(|_| compare_single(&by_id_docker, &by_id_ovl, window).map(drop)),
    );

    // All together, to stdout.
    let multi_docker = work.join("docker-multi.tar");
    docker.docker_ok([
        "save",
        "-o",
        multi_docker.to_str().expect("path"),
        "ovl-seed:1",
        "ovl-changes:1",
        "ovl-base:1",
        "ovl-dup:1",
    ]);
    let multi_ovl = work.join("ovl-multi.tar");
    let output = ovl
        .command([
            "save",
            "ovl-seed:1",
            "ovl-changes:1",
            "ovl-base:1",
            "ovl-dup:1",
        ])
        .stdout(fs::File::create(&multi_ovl).expect("create"))
        .output()
        .expect("run ovl save");
    failures.check(
        "ovl save of four images to stdout matches docker save as a set",
        if output.status.success() {
            compare_multi(&multi_docker, &multi_ovl).map(|n| eprintln!("multi: {n} layer.tar"))
        } else {
            Err(anyhow::anyhow!(
                "ovl save failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ))
        },
    );

    // A fresh dockerd loads ovl's archive and runs what it holds.
    let second = Dockerd::start(&scratch_path());
    failures.check("docker load of ovl's archive, then docker run", {
        let load = second.docker(["load", "-i", multi_ovl.to_str().expect("path")]);
        if !load.status.success() {
            Err(anyhow::anyhow!(
                "docker load failed: {}",
                String::from_utf8_lossy(&load.stderr)
            ))
        } else {
            check_docker_runs(&docker, &second, &tags)
        }
    });
    eprintln!("timing: whole test: {:.1?}", total.elapsed());
    failures.finish();
}

/// The images loaded into `second` have the ids they have in `first`, and run.
fn check_docker_runs(first: &Dockerd, second: &Dockerd, tags: &[&str]) -> anyhow::Result<()> {
    for tag in tags {
        ensure!(
            first.image_id(tag) == second.image_id(tag),
            "{tag}: image id changed through ovl save"
        );
    }
    for (tag, path, expected) in [
        ("ovl-seed:1", "/data/a/hello.txt", "hello\n"),
        ("ovl-changes:1", "/keep", "keep\n"),
        ("ovl-dup:1", "/data/b.txt", "bbb\n"),
    ] {
        let output = second.docker(["run", "--rm", "--network", "none", tag, "cat", path]);
        ensure!(
            output.status.success(),
            "docker run {tag} cat {path}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        ensure!(
            String::from_utf8_lossy(&output.stdout) == expected,
            "docker run {tag} cat {path} printed {:?}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Without Docker: a small image made here, loaded by ovl.

/// The tag of the small image.
const SMALL: &str = "save-small:1";

/// A layer tar with `files` (path, content), fixed mtime and mode.
fn layer(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = TarBuilder::new();
    for (path, content) in files {
        builder.file(path, content);
    }
    builder.finish()
}

/// Loads the small two-layer image into a fresh root; returns the root's ovl, its layers and
/// config.
fn small_image(work: &Scratch) -> (Ovl, Vec<Vec<u8>>, Vec<u8>) {
    let layers = vec![
        layer(&[("etc/hello", b"hello\n")]),
        layer(&[("etc/world", b"world\n"), ("etc/more", b"more\n")]),
    ];
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256_digest(l)).collect();
    let config = image_config(&diff_ids);
    let members = hex_layer_members(&layers);
    let archive = work.join("small.tar");
    write_docker_archive(&archive, &config, &members, &[SMALL]);
    let ovl = Ovl::new(work.join("root"));
    ovl.load(&archive).expect("ovl load");
    (ovl, layers, config)
}

/// `layers` as docker-archive members `<idx as 64 hex digits>/layer.tar`.
fn hex_layer_members(layers: &[Vec<u8>]) -> Vec<(String, Vec<u8>)> {
    let members = layers.iter().enumerate();
    members
        .map(|(idx, bytes)| (format!("{idx:064x}/layer.tar"), bytes.clone()))
        .collect()
}

/// The scratch directory, the data root, the layers and the config of a test on
/// [`small_image`].
type SmallImageTest = (Scratch, Ovl, Vec<Vec<u8>>, Vec<u8>);

/// The start of a test on [`small_image`]: `None` when it skips for lack of root.
fn small_image_root(test_name: &str) -> Option<SmallImageTest> {
    let work = root_scratch(test_name)?;
    let (ovl, layers, config) = small_image(&work);
    Some((work, ovl, layers, config))
}

/// The manifest digest and layer digests an OCI layout (as files) lists for its first image.
fn layout_digests(files: &BTreeMap<String, Vec<u8>>) -> anyhow::Result<(String, Vec<String>)> {
    let index: serde_json::Value =
        serde_json::from_slice(files.get("index.json").context("no index.json")?)?;
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .context("no manifest")?
        .to_string();
    let manifest: serde_json::Value = serde_json::from_slice(
        files
            .get(&format!("blobs/sha256/{}", &digest[7..]))
            .context("manifest blob")?,
    )?;
    let layers = manifest["layers"]
        .as_array()
        .context("layers")?
        .iter()
        .map(|l| l["digest"].as_str().unwrap_or_default().to_string())
        .collect();
    Ok((digest, layers))
}

fn layout_files(path: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    if path.is_dir() {
        for name in ["index.json", "oci-layout"] {
            files.insert(name.to_string(), fs::read(path.join(name))?);
        }
        for entry in fs::read_dir(path.join("blobs/sha256"))? {
            let entry = entry?;
            files.insert(
                format!("blobs/sha256/{}", entry.file_name().to_string_lossy()),
                fs::read(entry.path())?,
            );
        }
    } else {
        for member in read_members(path)? {
            if member.kind == b'0' {
                files.insert(member.name, member.data);
            }
        }
    }
    Ok(files)
}

#[test]
fn skopeo_reads_ovl_oci_archives_and_layouts_needs_root_and_skopeo() {
    const TEST: &str = "skopeo_reads_ovl_oci_archives_and_layouts_needs_root_and_skopeo";
    if !require_root(TEST) || !require_skopeo(TEST) {
        return;
    }
    let work = Scratch::new();
    let (ovl, layers, config) = small_image(&work);
    let mut failures = Failures::default();
    let formats = ["oci-archive", "oci"];
    let cases = formats
        .iter()
        .flat_map(|format| ["gzip", "zstd"].map(|c| (*format, c)));
    for (format, compression) in cases.chain([("oci", "none")]) {
        // The image-spec's layer media types: `+gzip`, `+zstd`, or none for a plain tar.
        let media_type = match compression {
            "none" => OCI_LAYER_MEDIA_TYPE.to_string(),
            compressed => format!("{OCI_LAYER_MEDIA_TYPE}+{compressed}"),
        };
        let what = format!("{format} with {compression} layers");
        let out = work.join(format!("{format}-{compression}"));
        let result = (|| -> anyhow::Result<()> {
            ovl.try_ok([
                "save",
                "--format",
                format,
                "--compression",
                compression,
                "-o",
                out.to_str().context("path")?,
                SMALL,
            ])?;
            let files = layout_files(&out)?;
            let (manifest_digest, layer_digests) = layout_digests(&files)?;
            let transport = if format == "oci" {
                "oci"
            } else {
                "oci-archive"
            };
            for reference in [
                format!("{transport}:{}", out.display()),
                format!("{transport}:{}:1", out.display()),
            ] {
                let inspect: serde_json::Value =
                    serde_json::from_slice(&skopeo_json(&["inspect", &reference])?)?;
                ensure!(
                    inspect["Digest"] == manifest_digest.as_str(),
                    "{reference}: skopeo sees manifest {}, index.json names {manifest_digest}",
                    inspect["Digest"]
                );
                ensure!(
                    inspect["Layers"] == serde_json::json!(layer_digests),
                    "{reference}: layers {} vs {layer_digests:?}",
                    inspect["Layers"]
                );
                let raw_manifest = skopeo_json(&["inspect", "--raw", &reference])?;
                ensure!(
                    sha256_digest(&raw_manifest) == manifest_digest,
                    "{reference}: skopeo read another manifest"
                );
                let manifest: serde_json::Value = serde_json::from_slice(&raw_manifest)?;
                let media_types: Vec<&str> = manifest["layers"]
                    .as_array()
                    .context("layers")?
                    .iter()
                    .map(|l| l["mediaType"].as_str().unwrap_or_default())
                    .collect();
                ensure!(
                    media_types == [media_type.as_str(), media_type.as_str()],
                    "{reference}: media types {media_types:?}"
                );
                let raw_config = skopeo_json(&["inspect", "--raw", "--config", &reference])?;
                ensure!(raw_config == config, "{reference}: config bytes differ");
            }
            // A copy verifies every blob against its digest.
            let copy = work.join(format!("copy-{format}-{compression}"));
            skopeo_json(&[
                "copy",
                &format!("{transport}:{}", out.display()),
                &format!("dir:{}", copy.display()),
            ])?;
            for (idx, digest) in layer_digests.iter().enumerate() {
                let blob = fs::read(copy.join(&digest[7..]))?;
                let tar = match compression {
                    "gzip" => {
                        let mut tar = Vec::new();
                        flate2::read::GzDecoder::new(blob.as_slice()).read_to_end(&mut tar)?;
                        tar
                    }
                    "zstd" => zstd::decode_all(blob.as_slice())?,
                    _ => blob,
                };
                ensure!(
                    tar == layers[idx],
                    "layer {idx} does not decompress to its tar"
                );
            }
            Ok(())
        })();
        failures.check(&what, result);
    }
    failures.finish();
}

/// `save --format <format> -o <out> <names>`.
fn save_args<'a>(format: &'a str, out: &'a Path, names: &'a [&'a str]) -> Vec<&'a OsStr> {
    let options = ["save", "--format", format, "-o"].map(OsStr::new);
    let names = names.iter().map(OsStr::new);
    options
        .into_iter()
        .chain([out.as_os_str()])
        .chain(names)
        .collect()
}

/// Files left in `dir` other than `expected`.
fn unexpected_files(dir: &Path, expected: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.retain(|name| !expected.contains(&name.as_str()));
    names.sort();
    names
}

#[test]
fn save_of_an_unknown_image_fails_naming_it_without_output_needs_root() {
    const TEST: &str = "save_of_an_unknown_image_fails_naming_it_without_output_needs_root";
    let Some((work, ovl, _, _)) = small_image_root(TEST) else {
        return;
    };
    let out_dir = work.join("out");
    fs::create_dir(&out_dir).expect("mkdir");
    for format in ["docker-archive", "oci-archive", "oci"] {
        let out = out_dir.join("unknown");
        let stderr = ovl.fail(save_args(format, &out, &[SMALL, "nosuch:1"]));
        assert!(stderr.contains("no such image: nosuch:1"), "{stderr}");
        assert_eq!(unexpected_files(&out_dir, &[]), Vec::<String>::new());
    }
    let stderr = ovl.fail(["save", "-o", "/dev/null", "0123456789ab"]);
    assert!(stderr.contains("0123456789ab"), "{stderr}");
}

#[test]
fn save_of_a_layer_changed_after_load_fails_naming_image_and_layer_needs_root() {
    const TEST: &str = "save_of_a_layer_changed_after_load_fails_naming_image_and_layer_needs_root";
    let Some((work, ovl, layers, _)) = small_image_root(TEST) else {
        return;
    };
    let top_diff_id = sha256_digest(&layers[1]);
    let upper = ovl.upper_dir(SMALL);
    let out_dir = work.join("out");
    fs::create_dir(&out_dir).expect("mkdir");
    // The pristine image saves.
    ovl.ok([
        "save",
        "-o",
        out_dir.join("good.tar").to_str().expect("path"),
        SMALL,
    ]);

    let mut failures = Failures::default();
    for (what, content) in [
        ("same size, other bytes", &b"WORLD\n"[..]),
        ("longer", &b"world, longer now\n"[..]),
        ("shorter", &b"w\n"[..]),
    ] {
        fs::write(upper.join("etc/world"), content).expect("change layer file");
        for format in ["docker-archive", "oci-archive", "oci"] {
            let out = out_dir.join(format!("bad-{format}"));
            let output = ovl.run(save_args(format, &out, &[SMALL]));
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            let result = (|| {
                ensure!(
                    output.status.code() == Some(1),
                    "exit status {:?}",
                    output.status
                );
                ensure!(
                    stderr.contains(SMALL) && stderr.contains(&top_diff_id),
                    "the message names neither image nor layer: {stderr}"
                );
                ensure!(
                    stderr.contains("etc/world"),
                    "the file is not named: {stderr}"
                );
                let left = unexpected_files(&out_dir, &["good.tar"]);
                ensure!(left.is_empty(), "left behind: {left:?}");
                Ok(())
            })();
            failures.check(&format!("{what}, --format {format}"), result);
            eprintln!("{what}, {format}: {}", stderr.trim());
        }
    }
    failures.finish();
}

#[test]
fn save_refuses_a_terminal_stdout_needs_root() {
    const TEST: &str = "save_refuses_a_terminal_stdout_needs_root";
    if !require_root(TEST) {
        return;
    }
    if !Path::new("/usr/bin/script").exists() {
        eprintln!("SKIP {TEST}: /usr/bin/script (util-linux) missing, no pty to test with");
        return;
    }
    let work = Scratch::new();
    let (ovl, _, _) = small_image(&work);
    let command = format!(
        "{} --root {} save {SMALL}",
        ovl.bin.display(),
        ovl.root.display()
    );
    // `script` runs the command with a pseudo-terminal as its stdout and returns its status.
    let output = Command::new("/usr/bin/script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run script");
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("cowardly refusing to save to a terminal"),
        "{text}"
    );
    // No archive bytes reached the terminal.
    assert!(!text.contains("manifest.json"), "{text}");
}

#[test]
fn save_option_mistakes_fail_before_any_output_needs_root() {
    const TEST: &str = "save_option_mistakes_fail_before_any_output_needs_root";
    let Some((work, ovl, _, _)) = small_image_root(TEST) else {
        return;
    };
    let (out, full) = (work.join("x.tar"), work.join("full"));
    fs::create_dir(&full).expect("mkdir");
    fs::write(full.join("x"), b"x").expect("write");
    let (out_arg, full_arg) = (out.to_str().expect("path"), full.to_str().expect("path"));
    // Each mistake and a word its message must carry.
    let mistakes: [(&[&str], &str); 3] = [
        (&["--compression", "gzip", "-o", out_arg], "docker-archive"),
        (&["--format", "oci"], "-o"),
        (&["--format", "oci", "-o", full_arg], "not empty"),
    ];
    for (options, word) in mistakes {
        let stderr = ovl.fail(["save"].iter().chain(options).chain(&[SMALL]));
        assert!(stderr.contains(word), "{options:?}: {stderr}");
    }
    assert!(!out.exists());
    // And a save to stdout is the same archive as one to a file.
    let to_file = work.join("file.tar");
    ovl.ok(["save", "-o", to_file.to_str().expect("path"), SMALL]);
    let piped = ovl.run(["save", SMALL]);
    assert!(piped.status.success());
    let file_bytes = fs::read(&to_file).expect("read");
    if file_bytes != piped.stdout {
        bail_differs(&file_bytes, &piped.stdout);
    }
}

fn bail_differs(a: &[u8], b: &[u8]) {
    let at = a.iter().zip(b).position(|(x, y)| x != y);
    panic!(
        "stdout and -o archives differ ({} vs {} bytes, first difference at {at:?})",
        a.len(),
        b.len()
    );
}

/// The `RepoTags` of each `manifest.json` entry of a docker-archive.
fn saved_repo_tags(path: &Path) -> anyhow::Result<Vec<serde_json::Value>> {
    let members = read_members(path)?;
    let manifest = members
        .iter()
        .find(|m| m.name == "manifest.json")
        .context("no manifest.json")?;
    let items: Vec<serde_json::Value> = serde_json::from_slice(&manifest.data)?;
    Ok(items.iter().map(|item| item["RepoTags"].clone()).collect())
}

/// Names select images and tags as `docker save` does: `name:tag` that tag, a bare name every
/// tag of the repository, an id (full, `sha256:`-prefixed or a prefix) no tag; an image named
/// twice is saved once.
#[test]
fn save_selects_tags_like_docker_save_needs_root() {
    const TEST: &str = "save_selects_tags_like_docker_save_needs_root";
    let Some((work, ovl, layers, config)) = small_image_root(TEST) else {
        return;
    };
    let members = hex_layer_members(&layers);
    let second_tag = work.join("second-tag.tar");
    write_docker_archive(&second_tag, &config, &members, &["save-small:2"]);
    ovl.load(&second_tag).expect("load second tag");
    let image_id = sha256_digest(&config);
    let out = work.join("out.tar");
    let out_arg = out.to_str().expect("path").to_string();
    for (names, expected) in [
        (
            vec!["save-small"],
            serde_json::json!([["save-small:1", "save-small:2"]]),
        ),
        (vec!["save-small:2"], serde_json::json!([["save-small:2"]])),
        (vec![image_id.as_str()], serde_json::json!([null])),
        (vec![&image_id[7..]], serde_json::json!([null])),
        (vec![&image_id[7..19], SMALL], serde_json::json!([[SMALL]])),
        (
            vec![SMALL, "save-small:2", SMALL],
            serde_json::json!([[SMALL, "save-small:2"]]),
        ),
    ] {
        let mut args = vec!["save", "-o", out_arg.as_str()];
        args.extend(names.iter().copied());
        ovl.ok(&args);
        let found = serde_json::Value::Array(saved_repo_tags(&out).expect("manifest"));
        assert_eq!(found, expected, "ovl save {names:?}");
    }
}
