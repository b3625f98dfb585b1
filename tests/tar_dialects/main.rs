//! Tar dialects: every layer tar must mean to ovl what it means to dockerd 20.10, which reads each
//! layer twice, with Go 1.19's `archive/tar` (`pkg/archive` unpacking it) and with tar-split's
//! fork of it (recording it): Docker loads a layer only when both accept it. A parser
//! differential is how CVE-2026-33055 happened (tar-rs and Go disagreed on which size counts), so
//! the cases here put every header field at its edges — ustar, GNU, PAX, star and v7 headers,
//! prefix against long names, NUL-terminated, space-padded and base-256 numbers, PAX records
//! overriding every field, global headers, sparse files in every format, empty and large sizes,
//! framing at the end — and each must load the same way in ovl and in a private dockerd: the same
//! acceptance, layerdb `size`, layer tree and `save` round trip. Where Docker's behaviour is
//! unsafe ovl refuses instead, and the case says so (docs/security.md, "Tar dialects").
//!
//! Expected values are written by hand from Go's rules (`archive/tar` `reader.go`,
//! `pkg/archive` `createTarFile`) or come from the real dockerd; never from ovl.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use ovl_tests::tar_builder::field::{CHKSUM, LINKNAME, MAGIC, MODE, PREFIX, SIZE, UNAME};
use ovl_tests::tar_builder::Block;
use ovl_tests::{
    compare, docker_archive, dockerd_scratch, dump, image_config, layerdb, require_root,
    root_scratch_ovl, scratch_path, sha256_digest, Dockerd, DumpOptions, Failures, Ovl, Scratch,
};

mod corpus;
mod members;

use corpus::*;
use members::*;

/// How long a command on a small archive may take: refusing a member that declares 2^60 bytes
/// must not depend on that number.
const SMALL_ARCHIVE_DEADLINE: Duration = Duration::from_secs(10);
/// GNU tar from Debian, the independent writer of the sparse formats.
const GNU_TAR: &str = "/usr/bin/tar";
/// The mtime of every generated member.
const MTIME: u64 = 1_600_000_000;

// ------------------------------------------------------------------------------------------------
// Item 8: work is bounded by the archive's bytes

const TEST_HUGE: &str = "old_gnu_sparse_2_pow_60_is_refused_before_any_work_needs_root";

#[test]
fn old_gnu_sparse_2_pow_60_is_refused_before_any_work_needs_root() {
    let Some((scratch, ovl)) = root_scratch_ovl(TEST_HUGE, "root") else {
        return;
    };
    let mut failures = Failures::default();

    // An old GNU sparse member declaring 2^60 bytes in a 10 KiB tar.
    let old_gnu = old_gnu_sparse_layer("huge", 1 << 60, &[((1 << 60) - 512, 512)]);
    assert!(old_gnu.len() <= 10 << 10);
    // The same declaration in PAX sparse 1.0, which Docker would expand (and spin on).
    let pax = pax_sparse_1x0_layer("huge", 1 << 60, &[((1 << 60) - 512, b"x".repeat(512))]);
    for (what, layer, limit, expect) in [
        ("old GNU, no limit", &old_gnu, None, "83"),
        ("old GNU, 100MiB limit", &old_gnu, Some("100MiB"), "83"),
        ("PAX 1.0, 100MiB limit", &pax, Some("100MiB"), "104857600"),
    ] {
        for via in ["import", "load"] {
            failures.check(
                &format!("{what} via {via}"),
                refused_quickly(&ovl, &scratch, via, layer, limit, &["huge", expect]),
            );
        }
    }
    // Without a limit the PAX member is still bounded by the archive's bytes: the file system
    // refuses a file of 2^60 bytes (ext4: 16 TiB at most), or the holes cost nothing.
    failures.check("PAX 1.0, no limit: bounded", {
        let input = scratch.join("pax-huge.tar");
        fs::write(&input, &pax).expect("write input");
        let started = Instant::now();
        run_bounded(ovl.command(["import".as_ref(), input.as_os_str()])).map(|output| {
            eprintln!(
                "PAX 2^60 without limit: {:?} in {:.2?}: {}",
                output.status.code(),
                started.elapsed(),
                String::from_utf8_lossy(&output.stderr).trim()
            )
        })
    });
    failures.finish();
}

/// Runs `ovl import` or `ovl load` of the layer and requires exit 1 within the deadline, every
/// needle on stderr and nothing registered.
fn refused_quickly(
    ovl: &Ovl,
    scratch: &Scratch,
    via: &str,
    layer: &[u8],
    limit: Option<&str>,
    needles: &[&str],
) -> anyhow::Result<()> {
    let input = scratch.join(format!("input-{via}.tar"));
    let mut args: Vec<String> = vec![via.to_string()];
    if let Some(limit) = limit {
        args.extend(["--max-layer-size".to_string(), limit.to_string()]);
    }
    if via == "load" {
        fs::write(&input, one_layer_archive(layer, "huge:1"))?;
        args.extend(["-i".to_string(), input.display().to_string()]);
    } else {
        fs::write(&input, layer)?;
        args.extend([input.display().to_string(), "huge:1".to_string()]);
    }
    let started = Instant::now();
    let output = run_bounded(ovl.command(&args))?;
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!(
        "ovl {args:?}: {:?} in {elapsed:.2?}: {}",
        output.status.code(),
        stderr.trim()
    );
    ensure!(
        output.status.code() == Some(1),
        "exit {:?}, expected 1",
        output.status.code()
    );
    for needle in needles {
        ensure!(
            stderr.contains(needle),
            "stderr does not name {needle:?}: {stderr}"
        );
    }
    if ovl.root.exists() {
        let images = ovl.try_ok(["images", "-q"])?;
        ensure!(
            images.trim().is_empty(),
            "an image was registered: {images}"
        );
    }
    ensure!(layerdb(&ovl.root).is_empty(), "a layer was registered");
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Item 9: a loaded layer always reassembles to its DiffID

const TEST_ROUND_TRIP: &str = "old_gnu_sparse_layer_save_round_trips_or_is_refused_needs_root";

#[test]
fn old_gnu_sparse_layer_save_round_trips_or_is_refused_needs_root() {
    if !require_root(TEST_ROUND_TRIP) {
        return;
    }
    if !Path::new(GNU_TAR).exists() {
        panic!("{GNU_TAR} missing (Debian's tar is essential)");
    }
    let scratch = Scratch::new();
    let ovl = Ovl::new(scratch.join("root"));
    let mut failures = Failures::default();

    // What `tar --sparse` writes by default: an old GNU sparse member, refused like dockerd.
    let old_gnu = gnu_tar_sparse(&scratch, &["--format=gnu"]);
    assert_eq!(old_gnu[156], b'S', "GNU tar wrote no old GNU sparse member");
    failures.check("old GNU (tar --sparse --format=gnu) is refused", {
        let archive = scratch.join("old-gnu.tar");
        fs::write(&archive, one_layer_archive(&old_gnu, "sparse:old")).expect("write");
        let output = ovl.run(["load".as_ref(), "-i".as_ref(), archive.as_os_str()]);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (|| {
            ensure!(
                output.status.code() == Some(1),
                "exit {:?}: {stderr}",
                output.status.code()
            );
            ensure!(
                stderr.contains("sparse") && stderr.contains("83"),
                "{stderr}"
            );
            ensure!(layerdb(&ovl.root).is_empty(), "a layer was registered");
            Ok(())
        })()
    });

    // PAX sparse, as GNU tar writes each version: loaded as the real file, saved back byte
    // for byte.
    for version in ["0.0", "0.1", "1.0"] {
        let layer = gnu_tar_sparse(
            &scratch,
            &["--format=pax", &format!("--sparse-version={version}")],
        );
        failures.check(
            &format!("PAX sparse {version} (GNU tar) round-trips"),
            sparse_round_trip(&ovl, &scratch, &layer, version, SPARSE_REAL_SIZE),
        );
    }
    // Hand-written PAX 1.0 members: the 1000-byte file of the issue and a 60 GB one (Docker
    // writes 60 GB of zeros for it; ovl two fragments).
    for (tag, real_size) in [("small", 1000u64), ("large", 60_000_000_000)] {
        let layer = pax_sparse_1x0_layer(
            "file",
            real_size,
            &[(0, b"head".to_vec()), (real_size - 4, b"tail".to_vec())],
        );
        failures.check(
            &format!("PAX sparse 1.0 of {real_size} bytes round-trips"),
            (|| {
                let image = format!("sparse:{tag}");
                let (size, diff) =
                    load_one_layer(&ovl, &scratch, &layer, &image, &format!("{tag}.tar"))?;
                ensure!(
                    size == real_size.to_string(),
                    "layerdb size {size}, expected {real_size}"
                );
                let file = diff.join("file");
                let meta = fs::metadata(&file)?;
                ensure!(meta.len() == real_size, "length {}", meta.len());
                ensure!(
                    meta.blocks() * 512 < 1 << 20,
                    "holes were written: {} blocks",
                    meta.blocks()
                );
                let mut head = [0u8; 4];
                fs::File::open(&file)?.read_exact(&mut head)?;
                ensure!(&head == b"head");
                ensure!(
                    saved_layer(&ovl, &image)? == layer,
                    "ovl save changed the layer"
                );
                Ok(())
            })(),
        );
    }
    failures.check("fsck --verify-content is clean", {
        ovl.try_ok(["fsck", "--verify-content"])
            .map(|out| eprintln!("{out}"))
    });
    failures.finish();
}

/// The sparse file GNU tar archives: 1 MB with data at 4096 and just before the end.
const SPARSE_REAL_SIZE: u64 = 1_000_000;
const SPARSE_DATA: [(u64, &[u8]); 2] = [(4096, b"hello, sparse"), (SPARSE_REAL_SIZE - 5, b"world")];

/// The expected content of the sparse file, written by hand.
fn sparse_content() -> Vec<u8> {
    let mut content = vec![0u8; SPARSE_REAL_SIZE as usize];
    for (offset, data) in SPARSE_DATA {
        content[offset as usize..offset as usize + data.len()].copy_from_slice(data);
    }
    content
}

/// A layer tar GNU tar writes of `sparse` (the file of [`sparse_content`], with holes) with
/// `--sparse` and the given options.
fn gnu_tar_sparse(scratch: &Scratch, options: &[&str]) -> Vec<u8> {
    let dir = scratch.join("gnu-tar-src");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("mkdir");
    let file = fs::File::create(dir.join("sparse")).expect("create sparse file");
    for (offset, data) in SPARSE_DATA {
        std::os::unix::fs::FileExt::write_all_at(&file, data, offset).expect("write");
    }
    file.set_len(SPARSE_REAL_SIZE).expect("set length");
    drop(file);
    let out = scratch.join("gnu-tar-out.tar");
    let status = Command::new(GNU_TAR)
        .args(["--sparse", "--numeric-owner", "--owner=0", "--group=0"])
        .arg(format!("--mtime=@{MTIME}"))
        .args(options)
        .arg("-C")
        .arg(&dir)
        .arg("-cf")
        .arg(&out)
        .arg("sparse")
        .status()
        .expect("run tar");
    assert!(status.success(), "tar {options:?} failed");
    fs::read(out).expect("read tar output")
}

fn sparse_round_trip(
    ovl: &Ovl,
    scratch: &Scratch,
    layer: &[u8],
    version: &str,
    real_size: u64,
) -> anyhow::Result<()> {
    let image = format!("sparse:{}", version.replace('.', "-"));
    let (size, diff) = load_one_layer(ovl, scratch, layer, &image, &format!("{version}.tar"))?;
    ensure!(
        size == real_size.to_string(),
        "layerdb size {size}, expected {real_size}"
    );
    let file = diff.join("sparse");
    ensure!(fs::read(&file)? == sparse_content(), "content differs");
    let entries: Vec<_> = fs::read_dir(&diff)?.collect::<Result<_, _>>()?;
    ensure!(
        entries.len() == 1,
        "the layer holds more than the file: {entries:?}"
    );
    ensure!(
        fs::metadata(&file)?.blocks() * 512 < 256 << 10,
        "holes were written"
    );
    ensure!(
        saved_layer(ovl, &image)? == layer,
        "ovl save changed the layer"
    );
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Item 10: headers read as Go reads them

const TEST_PREFIX: &str = "gnu_magic_with_prefix_field_reads_as_go_reads_it_needs_root";

#[test]
fn gnu_magic_with_prefix_field_reads_as_go_reads_it_needs_root() {
    let Some((scratch, ovl)) = root_scratch_ovl(TEST_PREFIX, "root") else {
        return;
    };
    // Each member alone in a layer, and the path Go's reader gives it.
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        // GNU magic, the prefix area holding text: atime does not parse, so Go takes the area
        // as a ustar prefix (as pre-1.8 Go writers made it).
        (
            "gnu-prefix-text",
            layer(&[gnu_with_prefix(b"pfx/dir", b"foo")]),
            "pfx/dir/foo",
        ),
        // GNU magic, atime and ctime valid octal: no prefix.
        ("gnu-times-octal", layer(&[gnu_with_times(b"foo")]), "foo"),
        // GNU magic, unparsable times, a non-ASCII prefix: no prefix either.
        (
            "gnu-prefix-non-ascii",
            layer(&[gnu_with_prefix(b"\xe9t\xe9", b"foo")]),
            "foo",
        ),
        // `ustar\0` magic with any version is ustar to Go: the prefix counts.
        (
            "ustar-version-nul",
            layer(&[ustar_version(b"\0\0", b"pv", b"file")]),
            "pv/file",
        ),
        // star: `tar\0` in the last four bytes, a 131-byte prefix, then atime and ctime.
        (
            "star-prefix",
            layer(&[star_with_prefix(b"starpfx", b"file")]),
            "starpfx/file",
        ),
        // An empty GNU long name keeps the header's name.
        (
            "gnu-long-name-empty",
            layer(&[gnu_long_name(b""), file_member(b"kept", b"k")]),
            "kept",
        ),
    ];
    let mut failures = Failures::default();
    for (name, layer, expected) in cases {
        failures.check(
            name,
            (|| {
                let image = format!("prefix:{name}");
                let (_, diff) =
                    load_one_layer(&ovl, &scratch, &layer, &image, &format!("{name}.tar"))?;
                let files = files_below(&diff)?;
                ensure!(
                    files == [expected.to_string()],
                    "files {files:?}, Go reads {expected:?}"
                );
                ensure!(
                    saved_layer(&ovl, &image)? == layer,
                    "ovl save changed the layer"
                );
                Ok(())
            })(),
        );
    }
    failures.finish();
}

/// The non-directory paths below `dir`, sorted.
fn files_below(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in fs::read_dir(&current)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else {
                let rel = entry
                    .path()
                    .strip_prefix(dir)?
                    .to_string_lossy()
                    .into_owned();
                files.push(rel);
            }
        }
    }
    files.sort();
    Ok(files)
}

// ------------------------------------------------------------------------------------------------
// The differential test against the private dockerd

/// What dockerd 20.10 does with a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Docker {
    /// `docker load` succeeds.
    Loads,
    /// `docker load` fails.
    Refuses,
}

/// What `docker save` gives back for a loaded case, as the private dockerd showed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DockerSave {
    /// The saved `layer.tar` is the layer byte for byte.
    RoundTrips,
    /// `docker save` fails: Docker's tar-split cannot rebuild the layer.
    Fails,
}

struct Case {
    name: &'static str,
    layer: Vec<u8>,
    docker: Docker,
    /// Where ovl refuses what Docker loads, why (docs/security.md marks these **stricter**).
    ovl_stricter: Option<&'static str>,
    docker_save: DockerSave,
    /// Paths (relative, `/`-separated) the layer must hold by Go's rules, each with its content
    /// for files (`None` for directories and other nodes); checked on Docker's and ovl's layers.
    expect: Vec<(&'static str, Option<Vec<u8>>)>,
}

impl Case {
    fn new(name: &'static str, docker: Docker, layer: Vec<u8>) -> Case {
        Case {
            name,
            layer,
            docker,
            ovl_stricter: None,
            docker_save: DockerSave::RoundTrips,
            expect: Vec::new(),
        }
    }

    fn expect(mut self, path: &'static str, content: Option<&[u8]>) -> Case {
        self.expect.push((path, content.map(<[u8]>::to_vec)));
        self
    }

    fn save(mut self, docker_save: DockerSave) -> Case {
        self.docker_save = docker_save;
        self
    }

    fn stricter(mut self, why: &'static str) -> Case {
        self.ovl_stricter = Some(why);
        self
    }
}

const TEST_DIFFERENTIAL: &str = "tar_dialects_load_as_in_dockerd_needs_root_and_dockerd";

#[test]
fn tar_dialects_load_as_in_dockerd_needs_root_and_dockerd() {
    let Some(scratch) = dockerd_scratch(TEST_DIFFERENTIAL) else {
        return;
    };
    let docker = Dockerd::start(&scratch_path());
    let ovl = Ovl::new(scratch.join("root"));
    let version = docker.docker_ok([
        "version",
        "--format",
        "{{.Server.Version}} {{.Server.GoVersion}}",
    ]);
    eprintln!("dockerd {}", version.trim());
    let cases = corpus(&scratch);
    if let Ok(dir) = std::env::var("OVL_TAR_DIALECTS_CORPUS") {
        fs::create_dir_all(&dir).expect("mkdir corpus");
        for case in &cases {
            fs::write(
                Path::new(&dir).join(format!("{}.tar", case.name)),
                &case.layer,
            )
            .expect("write corpus");
        }
    }
    let started = Instant::now();
    let mut failures = Failures::default();
    let mut table = Vec::new();
    for case in &cases {
        let result = differential(&docker, &ovl, &scratch, case);
        if let Ok(row) = &result {
            table.push(row.clone());
        }
        failures.check(case.name, result.map(|_| ()));
    }
    eprintln!("case | docker | ovl | size (docker/ovl) | docker save | ovl save");
    for row in &table {
        eprintln!("{row}");
    }
    failures.check("ovl fsck --verify-content", {
        ovl.try_ok(["fsck", "--verify-content"])
            .map(|out| eprintln!("{out}"))
    });
    eprintln!(
        "timing: {TEST_DIFFERENTIAL}: {} cases in {:.1?}",
        cases.len(),
        started.elapsed()
    );
    let docker_scratch = docker.scratch().to_path_buf();
    drop(docker);
    let _ = fs::remove_dir_all(&docker_scratch);
    failures.finish();
}

/// Loads one case into Docker and ovl and compares; returns a line for the summary table.
fn differential(
    docker: &Dockerd,
    ovl: &Ovl,
    scratch: &Scratch,
    case: &Case,
) -> anyhow::Result<String> {
    let image = format!("dialect-{}:1", case.name);
    let archive = scratch.join(format!("{}.archive.tar", case.name));
    fs::write(&archive, one_layer_archive(&case.layer, &image))?;
    let diff_id = sha256_digest(&case.layer);

    let docker_load = docker.docker(["load".as_ref(), "-i".as_ref(), archive.as_os_str()]);
    let docker_loaded = docker_load.status.success();
    let ovl_load = ovl.run(["load".as_ref(), "-i".as_ref(), archive.as_os_str()]);
    let ovl_loaded = ovl_load.status.success();
    let _ = fs::remove_file(&archive);
    let stderr = |output: &Output| String::from_utf8_lossy(&output.stderr).trim().to_string();
    eprintln!(
        "case {}: docker {} ({}), ovl {} ({})",
        case.name,
        if docker_loaded { "loads" } else { "refuses" },
        stderr(&docker_load),
        if ovl_loaded { "loads" } else { "refuses" },
        stderr(&ovl_load),
    );
    ensure!(
        docker_loaded == (case.docker == Docker::Loads),
        "docker load {}, but the case says Docker {:?}: {}",
        if docker_loaded { "succeeded" } else { "failed" },
        case.docker,
        stderr(&docker_load)
    );
    let ovl_should_load = case.docker == Docker::Loads && case.ovl_stricter.is_none();
    ensure!(
        ovl_loaded == ovl_should_load,
        "ovl load {} where it should {}: {}",
        if ovl_loaded { "succeeded" } else { "failed" },
        if ovl_should_load { "load" } else { "refuse" },
        stderr(&ovl_load)
    );
    if !ovl_loaded {
        ensure!(
            ovl_load.status.code() == Some(1),
            "ovl exit {:?}",
            ovl_load.status.code()
        );
        ensure!(
            !layerdb(&ovl.root).contains_key(&diff_id),
            "ovl registered the refused layer"
        );
    }
    let mut row = format!(
        "{} | {} | {}",
        case.name,
        if docker_loaded { "loads" } else { "refuses" },
        if ovl_loaded { "loads" } else { "refuses" }
    );
    if !docker_loaded {
        return Ok(row);
    }

    let (docker_size, docker_diff) = layer_of(docker.data_root(), &diff_id)?;
    for (path, content) in &case.expect {
        check_expected(&docker_diff, path, content.as_deref()).context("Docker's layer")?;
    }
    let docker_save = saved_docker_layer(docker, &image)?;
    let docker_saved = match &docker_save {
        Ok(bytes) if *bytes == case.layer => DockerSave::RoundTrips,
        Ok(_) => bail!("docker save gave other bytes than the layer"),
        Err(error) => {
            eprintln!("  docker save: {error}");
            DockerSave::Fails
        }
    };
    ensure!(
        docker_saved == case.docker_save,
        "docker save {docker_saved:?}, the case says {:?}",
        case.docker_save
    );
    if !ovl_loaded {
        row.push_str(&format!(" | {docker_size}/- | {docker_saved:?} | -"));
        return Ok(row);
    }
    let (ovl_size, ovl_diff) = ovl_layer(&ovl.root, &diff_id)?;
    for (path, content) in &case.expect {
        check_expected(&ovl_diff, path, content.as_deref()).context("ovl's layer")?;
    }
    ensure!(
        ovl_size == docker_size,
        "layerdb size: ovl {ovl_size}, Docker {docker_size}"
    );
    let options = DumpOptions::default();
    let docker_tree = dump(&docker_diff, &options)?;
    let ovl_tree = dump(&ovl_diff, &options)?;
    if let Some(difference) = compare(&docker_tree, &ovl_tree) {
        bail!("ovl's layer differs from Docker's: {difference}");
    }
    ensure!(
        saved_layer(ovl, &image)? == case.layer,
        "ovl save changed the layer"
    );
    row.push_str(&format!(
        " | {docker_size}/{ovl_size} | {docker_saved:?} | round-trips"
    ));
    Ok(row)
}

fn check_expected(diff: &Path, path: &str, content: Option<&[u8]>) -> anyhow::Result<()> {
    let full = diff.join(path);
    let meta = fs::symlink_metadata(&full).with_context(|| format!("{path} is missing"))?;
    if let Some(content) = content {
        ensure!(meta.is_file(), "{path} is not a file");
        ensure!(fs::read(&full)? == content, "{path} has other content");
    }
    Ok(())
}

/// The layerdb `size` and `diff/` of the one-layer image's layer in a Docker-format data root.
fn layer_of(data_root: &Path, diff_id: &str) -> anyhow::Result<(String, PathBuf)> {
    let layers = layerdb(data_root);
    let info = layers
        .get(diff_id)
        .with_context(|| format!("no layer {diff_id} in {}", data_root.display()))?;
    Ok((
        info.size.clone(),
        data_root.join("overlay2").join(&info.cache_id).join("diff"),
    ))
}

fn ovl_layer(root: &Path, diff_id: &str) -> anyhow::Result<(String, PathBuf)> {
    layer_of(root, diff_id)
}

/// `ovl save` of a one-layer image and its `layer.tar`.
fn saved_layer(ovl: &Ovl, image: &str) -> anyhow::Result<Vec<u8>> {
    let out = ovl
        .root
        .with_extension(format!("save-{}.tar", image.replace(':', "-")));
    ovl.try_ok(["save", "-o", out.to_str().context("utf-8 path")?, image])?;
    let layer = first_layer_of_archive(&fs::read(&out)?);
    let _ = fs::remove_file(&out);
    layer
}

/// `docker save` of a one-layer image: its `layer.tar`, or the reason it failed.
fn saved_docker_layer(docker: &Dockerd, image: &str) -> anyhow::Result<Result<Vec<u8>, String>> {
    let out = docker.scratch().join("save.tar");
    let output = docker.docker([
        "save".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
        image.as_ref(),
    ]);
    if !output.status.success() {
        let _ = fs::remove_file(&out);
        return Ok(Err(String::from_utf8_lossy(&output.stderr)
            .trim()
            .to_string()));
    }
    let layer = first_layer_of_archive(&fs::read(&out)?);
    let _ = fs::remove_file(&out);
    Ok(Ok(layer?))
}

/// The first layer named by a docker-archive's `manifest.json`.
fn first_layer_of_archive(archive: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut members: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut reader = tar::Archive::new(archive);
    for entry in reader.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        members.insert(name, bytes);
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(members.get("manifest.json").context("no manifest.json")?)?;
    let layer = manifest[0]["Layers"][0]
        .as_str()
        .context("no layer in the manifest")?;
    members
        .remove(layer)
        .with_context(|| format!("no member {layer}"))
}

/// Loads `layer` with ovl as the one layer of image `image` (the archive written to
/// `scratch/<archive_name>`); returns the layer's layerdb `size` and its `diff` directory.
fn load_one_layer(
    ovl: &Ovl,
    scratch: &Scratch,
    layer: &[u8],
    image: &str,
    archive_name: &str,
) -> anyhow::Result<(String, PathBuf)> {
    let archive = scratch.join(archive_name);
    fs::write(&archive, one_layer_archive(layer, image))?;
    ovl.load(&archive)?;
    ovl_layer(&ovl.root, &sha256_digest(layer))
}

/// A docker-archive holding `layer` as its one layer, tagged `image`.
fn one_layer_archive(layer: &[u8], image: &str) -> Vec<u8> {
    let diff_id = sha256_digest(layer);
    let config = image_config(std::slice::from_ref(&diff_id));
    let member = format!("{}/layer.tar", diff_id.trim_start_matches("sha256:"));
    docker_archive(&config, &[(member, layer.to_vec())], &[image])
}

/// Runs a command to its end within [`SMALL_ARCHIVE_DEADLINE`]; a command still running then is
/// killed and is an error.
fn run_bounded(mut command: Command) -> anyhow::Result<Output> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().context("spawn")?;
    loop {
        if child.try_wait()?.is_some() {
            return Ok(child.wait_with_output()?);
        }
        if started.elapsed() > SMALL_ARCHIVE_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            bail!("still running after {SMALL_ARCHIVE_DEADLINE:?}: work is not bounded by the archive");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
