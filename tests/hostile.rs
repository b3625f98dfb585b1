//! Hostile archives and layers: the real `ovl` binary loads (and imports) each one into a data root
//! that sits inside a "world" of sentinel files, and every case must either be rejected (exit 1,
//! the culprit named on stderr, nothing registered, nothing half-written) or contained (exit 0,
//! its effect inside the new layer's `diff/`). After every case, whatever its outcome, the
//! sentinel tree is unchanged, no marker the case aimed at appears outside the data root, the
//! host's `/etc/passwd` and `/etc/shadow` are untouched and `ovl fsck` finds nothing wrong.
//!
//! The expected outcome of each case is written by hand from Docker 20.10's rules
//! (`pkg/archive/archive.go` `Unpack` and `createTarFile` with the overlay whiteout converter,
//! `pkg/chrootarchive`, `image/tarexport/load.go`, Go's `archive/tar` and `compress/gzip`
//! readers), never taken from ovl. Each case also says what Docker does with it, and a third test
//! checks that against a private dockerd; where ovl is deliberately stricter than Docker, the
//! case says so. `docs/security.md` has the table of cases.
//!
//! `OVL_HOSTILE_CORPUS=<dir>` also writes every generated archive there, to feed them to other
//! tools (a real dockerd, a fuzzer's seed corpus).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, ensure, Context as _};
use ovl_tests::{
    base_rootfs_tar, check_root_consistent, hex, image_config, layerdb, require_dockerd,
    require_root, scratch_path, sha256_digest, Dockerd, Failures, Ovl, Scratch,
};
use sha2::{Digest, Sha256};

const TEST_LOAD: &str = "hostile_archives_are_rejected_or_contained_needs_root";
const TEST_IMPORT: &str = "hostile_rootfs_tarballs_are_rejected_or_contained_needs_root";
const TEST_DOCKER: &str = "hostile_archives_in_docker_needs_root_and_dockerd";
/// Docker 20.10 decompresses gzip layers with this program when it is on PATH (moby
/// pkg/archive `gzDecompress`), and with Go's reader otherwise.
const UNPIGZ: &str = "/usr/bin/unpigz";

/// The tag of the base image every load case builds on.
const BASE_TAG: &str = "base:1";
/// The archive member holding the base layer in every load case.
const BASE_MEMBER: &str = "base/layer.tar";
/// How long one ovl command may run before it counts as hung and is killed.
const COMMAND_DEADLINE: Duration = Duration::from_secs(30);
/// The limit the gzip bombs are loaded with (`--max-layer-size`), and the same in bytes.
const BOMB_LIMIT: &str = "100MiB";
const BOMB_LIMIT_BYTES: &str = "104857600";
/// What a gzip bomb inflates to: 2 GiB of zeros as one file.
const BOMB_FILE_LEN: u64 = 2 << 30;
/// A manifest with this many entries must be handled within [`HUGE_MANIFEST_DEADLINE`] and
/// [`HUGE_MANIFEST_MAX_RSS_KIB`].
const HUGE_MANIFEST_ENTRIES: usize = 1_000_000;
const HUGE_MANIFEST_DEADLINE: Duration = Duration::from_secs(10);
/// 512 MiB: ten times what a load of ordinary images needs, far below what holding a million
/// image configs at once would take.
const HUGE_MANIFEST_MAX_RSS_KIB: i64 = 512 << 10;
/// Linux's `XATTR_SIZE_MAX` is 64 KiB; this value is three times as large.
const HUGE_XATTR_LEN: usize = 200 << 10;
/// The host directories a marker must never appear in.
const MARKER_DIRS: [&str; 4] = ["/", "/etc", "/tmp", "/var/tmp"];
/// The host files whose metadata and content must not change.
const HOST_FILES: [&str; 2] = ["/etc/passwd", "/etc/shadow"];
/// The mtime of every sentinel entry.
const SENTINEL_MTIME: u64 = 1_234_567_890;

#[test]
fn hostile_archives_are_rejected_or_contained_needs_root() {
    if !require_root(TEST_LOAD) {
        return;
    }
    let env = World::new();
    let mut failures = Failures::default();
    let started = Instant::now();
    let cases = load_cases(&env.base);
    eprintln!(
        "timing: generating {} load cases: {:.1?}",
        cases.len(),
        started.elapsed()
    );
    for case in &cases {
        failures.check(&format!("{}: {}", case.name, case.what), env.run_case(case));
    }
    failures.check(
        "every layer that was contained reassembles to its DiffID (fsck --verify-content)",
        env.fsck(true),
    );
    eprintln!("timing: {TEST_LOAD}: {:.1?}", started.elapsed());
    failures.finish();
}

#[test]
fn hostile_rootfs_tarballs_are_rejected_or_contained_needs_root() {
    if !require_root(TEST_IMPORT) {
        return;
    }
    let env = World::new();
    let mut failures = Failures::default();
    let started = Instant::now();
    for case in &import_cases() {
        failures.check(&format!("{}: {}", case.name, case.what), env.run_case(case));
    }
    eprintln!("timing: {TEST_IMPORT}: {:.1?}", started.elapsed());
    failures.finish();
}

/// The same cases against a private dockerd 20.10, whose data root sits in a sentinel tree of
/// its own: Docker must load or refuse each as its `docker` field says, a contained case must
/// pass the same check on Docker's layer, and nothing may escape. This is what the Docker column
/// of `docs/security.md` rests on.
#[test]
fn hostile_archives_in_docker_needs_root_and_dockerd() {
    if !require_dockerd(TEST_DOCKER) {
        return;
    }
    let scratch = scratch_path();
    fs::create_dir_all(scratch.join("inputs")).expect("mkdir inputs");
    plant_sentinels(&scratch).expect("plant the sentinel tree");
    let docker = Dockerd::start(&scratch);
    let started = Instant::now();
    let mut cases = load_cases(&Base::new());
    cases.extend(import_cases());
    let mut failures = Failures::default();
    for case in &cases {
        if let Docker::NotRun(why) = case.docker {
            eprintln!("not run in Docker: {}: {why}", case.name);
            continue;
        }
        failures.check(
            &format!("docker: {}: {}", case.name, case.what),
            docker_case(&docker, &scratch, case),
        );
    }
    eprintln!("timing: {TEST_DOCKER}: {:.1?}", started.elapsed());
    failures.finish();
}

/// The names in a private dockerd's scratch directory that are Docker's own or the test's, left
/// out of the sentinel snapshot there.
const DOCKERD_SCRATCH_NAMES: [&str; 8] = [
    "data",
    "exec",
    "docker.sock",
    "docker.pid",
    "dockerd.log",
    "daemon.json",
    "client-config",
    "inputs",
];

/// The check Docker's layer must pass: the case's own when Docker contains it alike, else the
/// one that shows Docker's different result.
fn docker_layer_check(case: &Case) -> Option<&ContainCheck> {
    match (&case.docker, &case.expect, &case.docker_check) {
        (Docker::Same, Expect::Contain(check), _) | (Docker::Loads(_), _, Some(check)) => {
            Some(check)
        }
        _ => None,
    }
}

fn docker_case(docker: &Dockerd, scratch: &Path, case: &Case) -> anyhow::Result<()> {
    let sentinel_before = sentinel_snapshot(scratch, &DOCKERD_SCRATCH_NAMES)?;
    let host_files_before = host_file_states()?;
    let input = scratch.join("inputs").join(format!("{}.tar", case.name));
    fs::write(&input, &case.input)?;
    let args: Vec<OsString> = match case.via {
        Via::Load => vec!["load".into(), "-i".into(), input.clone().into()],
        Via::Import => vec![
            "import".into(),
            input.clone().into(),
            case.tag.clone().into(),
        ],
    };
    let run = run_bounded(docker.docker_command(&args), COMMAND_DEADLINE)?;
    let _ = fs::remove_file(&input);
    eprintln!(
        "docker case {}: exit {:?} in {:.2?}; stderr: {}",
        case.name,
        run.code,
        run.elapsed,
        run.stderr.trim_end()
    );
    if let Docker::Loads(why) = case.docker {
        eprintln!("  where Docker differs from ovl: {why}");
    }
    let mut problems = Vec::new();
    let should_load = match (&case.docker, &case.expect) {
        (Docker::Loads(_), _) | (Docker::Same, Expect::Contain(_) | Expect::Bounded) => true,
        (Docker::Same, Expect::Reject(_)) | (Docker::NotRun(_), _) => false,
    };
    let loaded = run.code == Some(0);
    if run.timed_out {
        problems.push("docker did not end within its deadline".to_string());
    } else if loaded != should_load {
        problems.push(format!(
            "docker {} exited {:?}, but the table says Docker {}; stderr: {}",
            if case.via == Via::Load {
                "load"
            } else {
                "import"
            },
            run.code,
            if should_load {
                "loads it"
            } else {
                "refuses it"
            },
            run.stderr
        ));
    } else if let (true, Some(check)) = (loaded, docker_layer_check(case)) {
        let inspect = docker.docker(["image", "inspect", case.tag.as_str()]);
        let images: serde_json::Value = serde_json::from_slice(&inspect.stdout)
            .with_context(|| format!("docker image inspect {}", case.tag))?;
        let image = &images[0];
        let upper = image["GraphDriver"]["Data"]["UpperDir"]
            .as_str()
            .with_context(|| format!("no UpperDir in docker image inspect {}", case.tag))?;
        if let Err(e) = check(Path::new(upper), image) {
            problems.push(format!("Docker's layer {upper}: {e:#}"));
        }
    }
    let sentinel_after = sentinel_snapshot(scratch, &DOCKERD_SCRATCH_NAMES)?;
    host_invariants(
        &sentinel_before,
        &sentinel_after,
        &host_files_before,
        &mut problems,
    )?;
    if problems.is_empty() {
        Ok(())
    } else {
        bail!("{}", problems.join("\n"))
    }
}

// ------------------------------------------------------------------------------------------------
// The cases

/// How a case reaches the data root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// `ovl load -i <archive>`.
    Load,
    /// `ovl import <tarball> <tag>`.
    Import,
}

/// A check of the contained result: the new layer's `diff/` and the image's `ovl inspect`.
type ContainCheck = Box<dyn Fn(&Path, &serde_json::Value) -> anyhow::Result<()>>;

enum Expect {
    /// Exit status 1; stderr holds one string of every group; nothing registered.
    Reject(Vec<Vec<String>>),
    /// Exit status 0; the check passes on the image's top layer.
    Contain(ContainCheck),
    /// Either outcome, within [`HUGE_MANIFEST_DEADLINE`] and [`HUGE_MANIFEST_MAX_RSS_KIB`].
    Bounded,
}

struct Case {
    name: String,
    what: &'static str,
    /// What Docker 20.10 does with the same input.
    docker: Docker,
    /// For a case Docker loads differently: a check of Docker's layer that shows how.
    docker_check: Option<ContainCheck>,
    via: Via,
    /// The archive (load) or tarball (import).
    input: Vec<u8>,
    /// More arguments after the command's own.
    args: Vec<String>,
    tag: String,
    expect: Expect,
}

/// What Docker 20.10 does with a case, as a private dockerd shows it
/// (`hostile_archives_in_docker_needs_root_and_dockerd`).
#[derive(Debug, Clone, Copy)]
enum Docker {
    /// The same outcome; for a contained case the same check passes on Docker's layer.
    Same,
    /// Docker loads what ovl rejects, or loads it with another result; why.
    Loads(&'static str),
    /// Not run against Docker; why.
    NotRun(&'static str),
}

impl Case {
    fn in_docker(mut self, docker: Docker) -> Case {
        self.docker = docker;
        self
    }

    /// Docker loads the case differently, as `check` shows on Docker's layer.
    fn in_docker_checked(
        mut self,
        why: &'static str,
        check: impl Fn(&Path, &serde_json::Value) -> anyhow::Result<()> + 'static,
    ) -> Case {
        self.docker = Docker::Loads(why);
        self.docker_check = Some(Box::new(check));
        self
    }
}

/// `ovl-hostile-<pid>-<case>`: a name that nothing but this case can create.
fn marker(case: &str) -> String {
    format!("ovl-hostile-{}-{case}", std::process::id())
}

fn tag_of(case: &str) -> String {
    format!("hostile/{case}:1")
}

fn layer_member(case: &str) -> String {
    format!("hostile-{case}/layer.tar")
}

/// Every stderr needle group: one of the strings must appear.
fn needles(groups: &[&[&str]]) -> Vec<Vec<String>> {
    groups
        .iter()
        .map(|group| group.iter().map(|s| (*s).to_string()).collect())
        .collect()
}

/// A rejection that names the layer member and, in its own group each, `more`.
fn reject_naming(case: &str, more: &[&str]) -> Expect {
    let mut groups = vec![vec![layer_member(case)]];
    groups.extend(more.iter().map(|s| vec![(*s).to_string()]));
    Expect::Reject(groups)
}

fn contain(check: impl Fn(&Path, &serde_json::Value) -> anyhow::Result<()> + 'static) -> Expect {
    Expect::Contain(Box::new(check))
}

/// A load case: the base layer and `blob` (whose uncompressed tar hashes to `diff_id`) as the
/// image's two layers.
fn layer_case_blob(
    base: &Base,
    name: &str,
    what: &'static str,
    blob: Vec<u8>,
    diff_id: String,
    expect: Expect,
) -> Case {
    let config = image_config(&[base.diff_id.clone(), diff_id]);
    let tag = tag_of(name);
    let input = ArchiveBuilder::new()
        .file(BASE_MEMBER, &base.tar)
        .file(&layer_member(name), &blob)
        .config(&config)
        .manifest(&[(
            &config_member(&config),
            &[BASE_MEMBER, &layer_member(name)],
            &tag,
        )])
        .finish();
    Case {
        name: name.to_string(),
        what,
        docker: Docker::Same,
        docker_check: None,
        via: Via::Load,
        input,
        args: Vec::new(),
        tag,
        expect,
    }
}

/// A load case of an uncompressed layer tar.
fn layer_case(base: &Base, name: &str, what: &'static str, tar: Vec<u8>, expect: Expect) -> Case {
    let diff_id = sha256_digest(&tar);
    layer_case_blob(base, name, what, tar, diff_id, expect)
}

/// An archive-level case: the archive as given, the tag it would load under.
fn archive_case(name: &str, what: &'static str, input: Vec<u8>, expect: Expect) -> Case {
    Case {
        name: name.to_string(),
        what,
        docker: Docker::Same,
        docker_check: None,
        via: Via::Load,
        input,
        args: Vec::new(),
        tag: tag_of(name),
        expect,
    }
}

/// `<sha256 of the config>.json`, the config member name `docker save` writes.
fn config_member(config: &[u8]) -> String {
    format!(
        "{}.json",
        sha256_digest(config).trim_start_matches("sha256:")
    )
}

/// The layer cases and archive-level cases of `ovl load`.
#[allow(clippy::too_many_lines)]
fn load_cases(base: &Base) -> Vec<Case> {
    let mut cases = Vec::new();

    // ---- entry names
    let m = marker("name-dotdot");
    let at_root = m.clone();
    let entry = format!("../{m}");
    cases.push(layer_case(
        base,
        "name-dotdot",
        "a member named ../x climbs out of the layer: refused, naming it",
        RawTar::new().file(&entry, b"evil").finish(),
        reject_naming("name-dotdot", &[&entry]),
    )
    .in_docker_checked(
        "Docker unpacks chrooted into the layer directory, where .. stops at the root: x is written at the layer root",
        move |diff, _| expect_file(diff, &at_root, b"evil", 0o644),
    ));

    let m = marker("name-inner-dotdot");
    let at_root = m.clone();
    let entry = format!("a/../../{m}");
    cases.push(layer_case(
        base,
        "name-inner-dotdot",
        "a/../../x cleans to ../x: refused",
        RawTar::new().dir("a/").file(&entry, b"evil").finish(),
        reject_naming("name-inner-dotdot", &[&entry]),
    )
    .in_docker_checked(
        "Docker unpacks chrooted into the layer directory, where .. stops at the root: x is written at the layer root",
        move |diff, _| expect_file(diff, &at_root, b"evil", 0o644),
    ));

    let m = marker("name-absolute");
    let entry = format!("/etc/{m}");
    let inside = format!("etc/{m}");
    cases.push(layer_case(
        base,
        "name-absolute",
        "an absolute name is taken relative to the layer root, as Docker joins it to the layer dir",
        RawTar::new().file(&entry, b"absolute").finish(),
        contain(move |diff, _| expect_file(diff, &inside, b"absolute", 0o644)),
    ));

    cases.push(
        layer_case(
            base,
            "name-empty",
            "a regular file with an empty name names the layer root: refused (Docker skips it)",
            RawTar::new().file("", b"nameless").finish(),
            reject_naming("name-empty", &[]),
        )
        .in_docker_checked(
            "Docker skips a member whose name cleans to `.` (its data and metadata are dropped)",
            |diff, _| expect_empty_dir(diff),
        ),
    );

    let mut tar = RawTar::new();
    tar.pax(&[(b"path", b"nul\0inside")])
        .file("benign-nul", b"x");
    cases.push(layer_case(
        base,
        "name-nul",
        "a PAX path holding a NUL byte is an invalid header (Go: ErrHeader)",
        tar.finish(),
        reject_naming("name-nul", &[]),
    ));

    let long_name: String = (0..50)
        .map(|idx| format!("component-{idx:03}-{}", "x".repeat(85)))
        .collect::<Vec<_>>()
        .join("/");
    assert!(long_name.len() > 4096 && long_name.len() < 5100);
    let mut tar = RawTar::new();
    tar.pax(&[(b"path", long_name.as_bytes())])
        .file("benign-long", b"x");
    cases.push(layer_case(
        base,
        "name-long-path",
        "a 5000-byte PAX path is longer than PATH_MAX: the kernel refuses it (ENAMETOOLONG)",
        tar.finish(),
        reject_naming("name-long-path", &[&long_name[..60]]),
    ));

    let long_component = format!("d/{}", "c".repeat(300));
    let mut tar = RawTar::new();
    tar.pax(&[(b"path", long_component.as_bytes())])
        .file("benign-component", b"x");
    cases.push(layer_case(
        base,
        "name-long-component",
        "a 300-byte name component is longer than NAME_MAX (ENAMETOOLONG)",
        tar.finish(),
        reject_naming("name-long-component", &[&long_component[..60]]),
    ));

    let mut tar = RawTar::new();
    tar.member(
        &Hdr {
            mode: 0o700,
            uid: 1234,
            gid: 1234,
            ..Hdr::new(b"./", b'5')
        },
        b"",
    );
    cases.push(layer_case(
        base,
        "name-dot-dir",
        "a ./ directory member is the layer root: skipped, its mode and owner are not applied",
        tar.finish(),
        contain(|diff, _| {
            let meta = fs::symlink_metadata(diff)?;
            ensure!(
                (meta.mode() & 0o7777, meta.uid(), meta.gid()) == (0o755, 0, 0),
                "the layer root has mode {:o} and owner {}:{}, not 0755 root:root",
                meta.mode() & 0o7777,
                meta.uid(),
                meta.gid()
            );
            Ok(())
        }),
    ));

    cases.push(
        layer_case(
            base,
            "name-dot-file",
            "a regular file named . would replace the layer root: refused (Docker skips it)",
            RawTar::new().file(".", b"dot").finish(),
            reject_naming("name-dot-file", &[]),
        )
        .in_docker_checked(
            "Docker skips a member whose name cleans to `.` (its data and metadata are dropped)",
            |diff, _| expect_empty_dir(diff),
        ),
    );

    let m = marker("name-pax-dotdot");
    let at_root = m.clone();
    let entry = format!("../{m}");
    let mut tar = RawTar::new();
    tar.pax(&[(b"path", entry.as_bytes())])
        .file("benign", b"evil");
    cases.push(layer_case(
        base,
        "name-pax-dotdot",
        "a PAX path record overrides a benign ustar name with ../x: refused",
        tar.finish(),
        reject_naming("name-pax-dotdot", &[&entry]),
    )
    .in_docker_checked(
        "Docker unpacks chrooted into the layer directory, where .. stops at the root: x is written at the layer root",
        move |diff, _| expect_file(diff, &at_root, b"evil", 0o644),
    ));

    let m = marker("name-gnu-dotdot");
    let at_root = m.clone();
    let entry = format!("../{m}");
    let mut tar = RawTar::new();
    tar.gnu_long_name(entry.as_bytes()).file("benign", b"evil");
    cases.push(layer_case(
        base,
        "name-gnu-dotdot",
        "a GNU long name (type L) naming ../x: refused",
        tar.finish(),
        reject_naming("name-gnu-dotdot", &[&entry]),
    )
    .in_docker_checked(
        "Docker unpacks chrooted into the layer directory, where .. stops at the root: x is written at the layer root",
        move |diff, _| expect_file(diff, &at_root, b"evil", 0o644),
    ));

    // ---- symlink games
    let m = marker("symlink-root-file");
    let inside = format!("etc/{m}");
    cases.push(layer_case(
        base,
        "symlink-root-file",
        "l -> / then l/etc/x as a file: written to the layer's etc/x",
        RawTar::new()
            .symlink("l", "/")
            .file(&format!("l/etc/{m}"), b"through l")
            .finish(),
        contain(move |diff, _| {
            expect_symlink(diff, "l", "/")?;
            expect_file(diff, &inside, b"through l", 0o644)
        }),
    ));

    let m = marker("symlink-root-dir");
    let inside = format!("etc/{m}");
    cases.push(layer_case(
        base,
        "symlink-root-dir",
        "l -> ../../../../../../../.. then l/etc/x/ as a directory: created in the layer's etc/",
        RawTar::new()
            .symlink("l", "../../../../../../../..")
            .dir(&format!("l/etc/{m}/"))
            .finish(),
        contain(move |diff, _| {
            expect_symlink(diff, "l", "../../../../../../../..")?;
            expect_dir(diff, &inside)
        }),
    ));

    cases.push(layer_case(
        base,
        "symlink-root-hardlink",
        "l -> / then a hardlink to l/etc/passwd: the target is looked up in the layer, where it is missing",
        RawTar::new()
            .symlink("l", "/")
            .hardlink("link-to-passwd", "l/etc/passwd")
            .finish(),
        reject_naming("symlink-root-hardlink", &["link-to-passwd"]),
    ));

    cases.push(layer_case(
        base,
        "symlink-root-hardlink-inside",
        "l -> / then a hardlink to l/etc/passwd where the layer has etc/passwd: links the layer's file",
        RawTar::new()
            .symlink("l", "/")
            .dir("etc/")
            .file("etc/passwd", b"layer passwd\n")
            .hardlink("link-to-passwd", "l/etc/passwd")
            .finish(),
        contain(|diff, _| {
            expect_file(diff, "link-to-passwd", b"layer passwd\n", 0o644)?;
            expect_same_inode(diff, "link-to-passwd", "etc/passwd")
        }),
    ));

    cases.push(layer_case(
        base,
        "symlink-world-whiteout",
        "l -> ../../../.. (the sentinel tree, seen from diff/) then l/.wh.keep: the whiteout lands in the layer",
        RawTar::new()
            .symlink("l", "../../../..")
            .file("l/.wh.keep", b"")
            .finish(),
        contain(|diff, _| {
            expect_symlink(diff, "l", "../../../..")?;
            expect_whiteout(diff, "keep")
        }),
    ));

    cases.push(layer_case(
        base,
        "symlink-root-whiteout-etc",
        "l -> / then l/etc/.wh.passwd: the whiteout is the layer's etc/passwd, never the host's",
        RawTar::new()
            .symlink("l", "/")
            .file("l/etc/.wh.passwd", b"")
            .finish(),
        contain(|diff, _| expect_whiteout(diff, "etc/passwd")),
    ));

    let m = marker("symlink-swap-dir");
    let (inside, inside_deep) = (m.clone(), format!("etc/{m}"));
    cases.push(layer_case(
        base,
        "symlink-swap-dir",
        "a directory d is replaced (through x -> .) by a symlink d -> ../../../.., then d/x is written",
        RawTar::new()
            .symlink("x", ".")
            .dir("d/")
            .file("d/a", b"")
            .symlink("x/d", "../../../..")
            .file(&format!("d/{m}"), b"through d")
            .file(&format!("d/etc/{m}"), b"deeper")
            .finish(),
        contain(move |diff, _| {
            expect_symlink(diff, "d", "../../../..")?;
            expect_file(diff, &inside, b"through d", 0o644)?;
            expect_file(diff, &inside_deep, b"deeper", 0o644)?;
            expect_absent(diff, "a")
        }),
    ));

    let m = marker("symlink-chain");
    let inside = format!("etc/{m}");
    cases.push(layer_case(
        base,
        "symlink-chain",
        "a -> b, b -> c, c -> ../../../.. then a/keep and a/etc/x: all inside the layer",
        RawTar::new()
            .symlink("a", "b")
            .symlink("b", "c")
            .symlink("c", "../../../..")
            .file("a/keep", b"overwritten?")
            .file(&format!("a/etc/{m}"), b"chained")
            .finish(),
        contain(move |diff, _| {
            expect_symlink(diff, "c", "../../../..")?;
            expect_file(diff, "keep", b"overwritten?", 0o644)?;
            expect_file(diff, &inside, b"chained", 0o644)
        }),
    ));

    cases.push(layer_case(
        base,
        "symlink-dotdot-sentinel",
        "s -> ../../../../sentinel-dir then s/inner: the target is missing inside the layer, so it fails",
        RawTar::new()
            .symlink("s", "../../../../sentinel-dir")
            .file("s/inner", b"evil")
            .finish(),
        reject_naming("symlink-dotdot-sentinel", &["s/inner"]),
    ));

    cases.push(layer_case(
        base,
        "symlink-dotdot-sentinel-present",
        "s -> ../../../../sentinel-dir where the layer has sentinel-dir/: s/inner goes there",
        RawTar::new()
            .dir("sentinel-dir/")
            .symlink("s", "../../../../sentinel-dir")
            .file("s/inner", b"evil")
            .finish(),
        contain(|diff, _| expect_file(diff, "sentinel-dir/inner", b"evil", 0o644)),
    ));

    // ---- hardlinks
    cases.push(layer_case(
        base,
        "hardlink-dotdot",
        "a hardlink to ../../../../keep climbs out of the layer: refused before anything is linked",
        RawTar::new()
            .hardlink("link-out", "../../../../keep")
            .finish(),
        reject_naming("hardlink-dotdot", &["link-out"]),
    ));

    cases.push(layer_case(
        base,
        "hardlink-etc-passwd",
        "a hardlink to /etc/passwd: looked up in the layer, where it is missing",
        RawTar::new()
            .hardlink("link-passwd", "/etc/passwd")
            .finish(),
        reject_naming("hardlink-etc-passwd", &["link-passwd"]),
    ));

    let mut tar = RawTar::new();
    tar.symlink("s", "../../../../keep");
    tar.member(
        &Hdr {
            mode: 0o777,
            uid: 4321,
            gid: 4321,
            mtime: 1,
            link: b"s".to_vec(),
            ..Hdr::new(b"h", b'1')
        },
        b"",
    );
    tar.symlink("p", "/etc/passwd");
    tar.member(
        &Hdr {
            mode: 0o777,
            mtime: 1,
            link: b"p".to_vec(),
            ..Hdr::new(b"hp", b'1')
        },
        b"",
    );
    cases.push(layer_case(
        base,
        "hardlink-to-outside-symlink",
        "hardlinks to symlinks pointing at the sentinel tree and /etc/passwd: link the symlinks; their mode and mtime reach nothing",
        tar.finish(),
        contain(|diff, _| {
            expect_symlink(diff, "h", "../../../../keep")?;
            expect_same_inode(diff, "h", "s")?;
            expect_symlink(diff, "hp", "/etc/passwd")?;
            expect_same_inode(diff, "hp", "p")
        }),
    ));

    cases.push(layer_case(
        base,
        "hardlink-forward",
        "a hardlink to a path that a later member creates: its target does not exist yet",
        RawTar::new()
            .hardlink("early-link", "later")
            .file("later", b"later")
            .finish(),
        reject_naming("hardlink-forward", &["early-link"]),
    ));

    cases.push(layer_case(
        base,
        "hardlink-dir",
        "a hardlink to a directory: refused (link(2) gives EPERM)",
        RawTar::new().dir("d/").hardlink("dir-link", "d").finish(),
        reject_naming("hardlink-dir", &["dir-link"]),
    ));

    // ---- whiteouts
    for (name, entry, what) in [
        (
            "whiteout-empty",
            ".wh.",
            ".wh. hides nothing: Docker's mknod of the directory itself fails",
        ),
        (
            "whiteout-dot",
            ".wh..",
            ".wh.. would hide the directory it is in: refused",
        ),
        (
            "whiteout-dotdot",
            ".wh...",
            ".wh... would hide the parent directory: refused",
        ),
    ] {
        cases.push(layer_case(
            base,
            name,
            what,
            RawTar::new()
                .dir("d/")
                .file(&format!("d/{entry}"), b"")
                .finish(),
            reject_naming(name, &[&format!("d/{entry}")]),
        ));
    }

    cases.push(layer_case(
        base,
        "whiteout-parent",
        "../.wh.keep climbs out of the layer: refused",
        RawTar::new().file("../.wh.keep", b"").finish(),
        reject_naming("whiteout-parent", &["../.wh.keep"]),
    )
    .in_docker_checked(
        "Docker unpacks chrooted into the layer directory: ../.wh.keep whites out keep at the layer root",
        |diff, _| expect_whiteout(diff, "keep"),
    ));

    cases.push(layer_case(
        base,
        "whiteout-opaque-root",
        ".wh..wh..opq at the layer root: the layer root itself becomes opaque, as in Docker",
        RawTar::new()
            .file("opaque-root-file", b"f")
            .file(".wh..wh..opq", b"")
            .finish(),
        contain(|diff, _| {
            expect_xattr(diff, "trusted.overlay.opaque", Some(b"y"))?;
            expect_file(diff, "opaque-root-file", b"f", 0o644)
        }),
    ));

    cases.push(layer_case(
        base,
        "whiteout-opaque-under-symlink",
        "l -> ../../../.. then l/sentinel-dir/.wh..wh..opq: the opaque directory is the layer's",
        RawTar::new()
            .symlink("l", "../../../..")
            .file("l/sentinel-dir/.wh..wh..opq", b"")
            .finish(),
        contain(|diff, _| {
            expect_dir(diff, "sentinel-dir")?;
            expect_xattr(
                &diff.join("sentinel-dir"),
                "trusted.overlay.opaque",
                Some(b"y"),
            )
        }),
    ));

    // ---- xattrs
    let overlay_records: [(&[u8], &[u8]); 5] = [
        (b"SCHILY.xattr.trusted.overlay.opaque", b"y"),
        (b"SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
        (
            b"SCHILY.xattr.trusted.overlay.metacopy",
            b"\x00\x04\x00\x00",
        ),
        (b"SCHILY.xattr.user.overlay.opaque", b"y"),
        (b"SCHILY.xattr.user.kept", b"1"),
    ];
    let mut tar = RawTar::new();
    tar.pax(&overlay_records).dir("xd/");
    tar.pax(&overlay_records).file("xd/xf", b"xattrs");
    cases.push(layer_case(
        base,
        "xattr-overlay",
        "trusted.overlay.{opaque,redirect,metacopy} and user.overlay.opaque on a file and a dir: dropped, user.kept stays",
        tar.finish(),
        contain(|diff, _| {
            for rel in ["xd", "xd/xf"] {
                let path = diff.join(rel);
                for name in [
                    "trusted.overlay.opaque",
                    "trusted.overlay.redirect",
                    "trusted.overlay.metacopy",
                    "user.overlay.opaque",
                ] {
                    expect_xattr(&path, name, None)?;
                }
                expect_xattr(&path, "user.kept", Some(b"1"))?;
            }
            Ok(())
        }),
    )
    .in_docker_checked(
        "Docker sets every SCHILY.xattr record, the overlay ones included, so they act on the mount",
        |diff, _| {
            let dir = diff.join("xd");
            expect_xattr(&dir, "trusted.overlay.opaque", Some(b"y"))?;
            expect_xattr(&dir, "trusted.overlay.redirect", Some(b"/etc"))?;
            expect_xattr(&dir.join("xf"), "user.overlay.opaque", Some(b"y"))
        },
    ));

    let huge = vec![b'v'; HUGE_XATTR_LEN];
    let mut tar = RawTar::new();
    tar.pax(&[(b"SCHILY.xattr.user.huge", &huge)])
        .file("huge-xattr", b"x");
    cases.push(layer_case(
        base,
        "xattr-huge",
        "a 200 KiB xattr value is beyond XATTR_SIZE_MAX: setxattr fails (E2BIG) and so does the layer",
        tar.finish(),
        reject_naming("xattr-huge", &["huge-xattr"]),
    ));

    // ---- metadata
    let mut tar = RawTar::new();
    tar.pax(&[(b"uid", b"4294967296")]).file("big-uid", b"x");
    cases.push(layer_case(
        base,
        "uid-beyond-32-bits",
        "PAX uid=4294967296 does not fit a uid_t: refused (Docker's lchown truncates it to 0, root)",
        tar.finish(),
        reject_naming("uid-beyond-32-bits", &["big-uid"]),
    )
    .in_docker_checked(
        "Docker passes the uid to lchown, whose 32-bit uid_t truncates 2^32 to 0: the file is root's",
        |diff, _| {
            let meta = fs::symlink_metadata(diff.join("big-uid"))?;
            ensure!(meta.uid() == 0, "big-uid is owned by {}", meta.uid());
            Ok(())
        },
    ));

    let mut tar = RawTar::new();
    tar.member(
        &Hdr {
            size_field: Some([0xff; 12]),
            ..Hdr::new(b"negative-size", b'0')
        },
        b"",
    );
    cases.push(layer_case(
        base,
        "size-negative",
        "a base-256 size of -1: invalid header (Go: ErrHeader)",
        tar.finish(),
        reject_naming("size-negative", &["negative-size"]),
    ));

    let mut tar = RawTar::new();
    tar.member(
        &Hdr {
            size_field: Some(octal_field::<12>(10_000)),
            ..Hdr::new(b"short-data", b'0')
        },
        &[b's'; 100],
    );
    cases.push(layer_case(
        base,
        "size-truncated",
        "a size of 10000 with 100 bytes of data and then the end of the stream: unexpected EOF",
        tar.unterminated(),
        reject_naming("size-truncated", &["short-data"]),
    ));

    let mut tar = RawTar::new();
    tar.member(
        &Hdr {
            mode: 0o666,
            dev: (1, 3),
            ..Hdr::new(b"dev-null", b'3')
        },
        b"",
    )
    .member(
        &Hdr {
            mode: 0o660,
            gid: 6,
            dev: (8, 0),
            ..Hdr::new(b"dev-sda", b'4')
        },
        b"",
    );
    cases.push(layer_case(
        base,
        "device-nodes",
        "a char device 1:3 and a block device 8:0: kept as nodes in the layer, never opened",
        tar.finish(),
        contain(|diff, _| {
            expect_device(diff, "dev-null", 'c', (1, 3), 0o666)?;
            expect_device(diff, "dev-sda", 'b', (8, 0), 0o660)
        }),
    ));

    let m = marker("setuid-root");
    let script = format!("#!/bin/sh\ntouch /tmp/{m}\n");
    let expected_script = script.clone();
    let mut tar = RawTar::new();
    tar.member(
        &Hdr {
            mode: 0o4755,
            ..Hdr::new(b"suid-root", b'0')
        },
        script.as_bytes(),
    );
    cases.push(layer_case(
        base,
        "setuid-root",
        "a setuid-root script: kept as data with mode 4755 and owner root, never executed",
        tar.finish(),
        contain(move |diff, _| {
            expect_file(diff, "suid-root", expected_script.as_bytes(), 0o4755)?;
            let meta = fs::symlink_metadata(diff.join("suid-root"))?;
            ensure!(meta.uid() == 0, "suid-root is owned by {}", meta.uid());
            Ok(())
        }),
    ));

    // ---- compression
    let (bomb, bomb_diff_id) = gzip_bomb().clone();
    eprintln!(
        "gzip bomb: {} bytes of gzip inflating to {} bytes",
        bomb.len(),
        BOMB_FILE_LEN + 1536
    );
    let mut case = layer_case_blob(
        base,
        "gzip-bomb",
        "a gzip bomb (2 GiB of zeros) loaded with --max-layer-size 100MiB: stopped at the limit",
        bomb,
        bomb_diff_id,
        Expect::Reject(vec![
            vec![layer_member("gzip-bomb")],
            vec![BOMB_LIMIT_BYTES.to_string(), BOMB_LIMIT.to_string()],
        ]),
    );
    case.args = vec!["--max-layer-size".into(), BOMB_LIMIT.into()];
    case.docker = Docker::NotRun("Docker has no size limit: it would write all 2 GiB");
    cases.push(case);

    let tar = RawTar::new().file("gzip-trailing", b"data").finish();
    let diff_id = sha256_digest(&tar);
    let mut blob = gzip(&tar);
    blob.extend_from_slice(b"this is not a gzip member header, it is trailing garbage");
    let mut case = layer_case_blob(
        base,
        "gzip-trailing-garbage",
        "garbage after the gzip member: Go's multistream reader fails on the next header",
        blob,
        diff_id,
        reject_naming("gzip-trailing-garbage", &[]),
    );
    if Path::new(UNPIGZ).exists() {
        case = case.in_docker_checked(
            "with pigz installed, dockerd decompresses through unpigz, which warns about the \
             trailing garbage and ignores it: the layer loads",
            |diff, _| expect_file(diff, "gzip-trailing", b"data", 0o644),
        );
    }
    cases.push(case);

    let content: Vec<u8> = (0..20_000u32)
        .flat_map(|idx| format!("line {idx}\n").into_bytes())
        .collect();
    let tar = RawTar::new().file("gzip-concatenated", &content).finish();
    let diff_id = sha256_digest(&tar);
    let half = tar.len() / 2 + 7;
    let mut blob = gzip(&tar[..half]);
    blob.extend_from_slice(&gzip(&tar[half..]));
    cases.push(layer_case_blob(
        base,
        "gzip-concatenated",
        "two concatenated gzip members make one stream (RFC 1952): loaded",
        blob,
        diff_id,
        contain(move |diff, _| expect_file(diff, "gzip-concatenated", &content, 0o644)),
    ));

    let noise: Vec<u8> = (0..200_000u32)
        .flat_map(|idx| format!("{:x}", idx.wrapping_mul(2_654_435_761)).into_bytes())
        .collect();
    let tar = RawTar::new().file("zstd-damaged", &noise).finish();
    let diff_id = sha256_digest(&tar);
    let mut blob = zstd_with_checksum(&tar);
    let middle = blob.len() / 2;
    for byte in &mut blob[middle..middle + 32] {
        *byte ^= 0xa5;
    }
    cases.push(layer_case_blob(
        base,
        "zstd-damaged",
        "a zstd frame with a damaged block: decoding (or the frame checksum, or the DiffID) fails",
        blob,
        diff_id,
        reject_naming("zstd-damaged", &[]),
    ));

    // ---- PAX size records that disagree with the ustar size field: Go's reader, and so
    // Docker, always takes the PAX size; readers that did not (tokio-tar, TARmageddon; tar-rs up
    // to 0.4.44) saw other members than Docker does.
    let smuggled_data = b"smuggled\n";
    let smuggled_header = Hdr::new(b"smuggled", b'0').block(smuggled_data.len() as u64);
    let mut hidden = smuggled_header.to_vec();
    hidden.extend_from_slice(smuggled_data);
    hidden.resize(1024, 0);
    let mut tar = RawTar::new();
    tar.pax(&[(b"size", b"1024")]).member(
        &Hdr {
            size_field: Some(octal_field::<12>(0)),
            ..Hdr::new(b"outer", b'0')
        },
        &hidden,
    );
    let expected_outer = hidden.clone();
    cases.push(layer_case(
        base,
        "pax-size-hides-member",
        "ustar size 0 but PAX size 1024 (TARmageddon): the 1024 bytes, a header among them, are outer's data",
        tar.finish(),
        contain(move |diff, _| {
            expect_file(diff, "outer", &expected_outer, 0o644)?;
            expect_absent(diff, "smuggled")
        }),
    ));

    let mut tar = RawTar::new();
    let mut after = smuggled_header.to_vec();
    after.extend_from_slice(smuggled_data);
    tar.pax(&[(b"size", b"0")]).member(
        &Hdr {
            size_field: Some(octal_field::<12>(512)),
            ..Hdr::new(b"outer", b'0')
        },
        &after,
    );
    cases.push(layer_case(
        base,
        "pax-size-reveals-member",
        "ustar size 512 but PAX size 0 (tar-rs <= 0.4.44 read 512): outer is empty and the next block is a member",
        tar.finish(),
        contain(move |diff, _| {
            expect_file(diff, "outer", b"", 0o644)?;
            expect_file(diff, "smuggled", smuggled_data, 0o644)
        }),
    ));

    // ---- archive level
    let name = "archive-pax-size";
    let layer = RawTar::new()
        .file("archive-pax-size", b"the image Docker sees")
        .finish();
    let config = image_config(&[base.diff_id.clone(), sha256_digest(&layer)]);
    let tag = tag_of(name);
    let manifest = manifest_json(&[(
        &config_member(&config),
        &[BASE_MEMBER, &layer_member(name)],
        &tag,
    )]);
    let mut hidden = Hdr {
        mtime: 1_700_000_000,
        ..Hdr::new(b"manifest.json", b'0')
    }
    .block(manifest.len() as u64)
    .to_vec();
    hidden.extend_from_slice(&manifest);
    let input = ArchiveBuilder::new()
        .file(BASE_MEMBER, &base.tar)
        .file(&layer_member(name), &layer)
        .config(&config)
        .raw(|tar| {
            tar.pax(&[(b"size", b"0")]).member(
                &Hdr {
                    size_field: Some(octal_field::<12>(512)),
                    ..Hdr::new(b"decoy", b'0')
                },
                &hidden,
            );
        })
        .finish();
    cases.push(archive_case(
        name,
        "the archive's manifest.json follows a member whose PAX size 0 overrides a ustar size of 512: found as Docker finds it",
        input,
        contain(|diff, _| expect_file(diff, "archive-pax-size", b"the image Docker sees", 0o644)),
    ));

    let valid_layer = |name: &str| {
        RawTar::new()
            .file(&format!("archive-{name}"), name.as_bytes())
            .finish()
    };
    for (name, what, bad_member) in [
        (
            "manifest-layer-dotdot",
            "manifest.json names a layer ../x/layer.tar outside the archive",
            "../x/layer.tar",
        ),
        (
            "manifest-layer-absolute",
            "manifest.json names the layer /etc/passwd",
            "/etc/passwd",
        ),
    ] {
        let layer = valid_layer(name);
        let config = image_config(&[base.diff_id.clone(), sha256_digest(&layer)]);
        let tag = tag_of(name);
        let input = ArchiveBuilder::new()
            .file(BASE_MEMBER, &base.tar)
            .file(&layer_member(name), &layer)
            .config(&config)
            .manifest(&[(&config_member(&config), &[BASE_MEMBER, bad_member], &tag)])
            .finish();
        cases.push(archive_case(
            name,
            what,
            input,
            Expect::Reject(needles(&[&[bad_member]])),
        ));
    }
    for (name, what, bad_config) in [
        (
            "manifest-config-dotdot",
            "manifest.json names the config ../config.json",
            "../config.json",
        ),
        (
            "manifest-config-absolute",
            "manifest.json names the config /etc/passwd",
            "/etc/passwd",
        ),
    ] {
        let layer = valid_layer(name);
        let config = image_config(&[base.diff_id.clone(), sha256_digest(&layer)]);
        let tag = tag_of(name);
        let input = ArchiveBuilder::new()
            .file(BASE_MEMBER, &base.tar)
            .file(&layer_member(name), &layer)
            .config(&config)
            .manifest(&[(bad_config, &[BASE_MEMBER, &layer_member(name)], &tag)])
            .finish();
        cases.push(archive_case(
            name,
            what,
            input,
            Expect::Reject(needles(&[&[bad_config]])),
        ));
    }

    let name = "config-id-mismatch";
    let layer = valid_layer(name);
    let config = image_config(&[base.diff_id.clone(), sha256_digest(&layer)]);
    let real_id = sha256_digest(&config);
    let wrong_member = format!(
        "{}.json",
        sha256_digest(b"another config").trim_start_matches("sha256:")
    );
    let tag = tag_of(name);
    let input = ArchiveBuilder::new()
        .file(BASE_MEMBER, &base.tar)
        .file(&layer_member(name), &layer)
        .file(&wrong_member, &config)
        .manifest(&[(&wrong_member, &[BASE_MEMBER, &layer_member(name)], &tag)])
        .finish();
    cases.push(archive_case(
        name,
        "the config is stored as <other id>.json: its bytes do not hash to the id its name promises",
        input,
        Expect::Reject(needles(&[&[&wrong_member]])),
    )
    .in_docker_checked(
        "Docker never compares a config with its member name and loads it under its real id",
        move |_, image| {
            ensure!(
                image["Id"] == real_id.as_str(),
                "Docker's image id is {}, not {real_id}",
                image["Id"]
            );
            Ok(())
        },
    ));

    let name = "diffid-mismatch";
    let layer = valid_layer(name);
    let wrong = sha256_digest(b"not this layer");
    cases.push(layer_case_blob(
        base,
        name,
        "the config's DiffID is not the layer's: the layer is unpacked, found wrong and removed",
        layer,
        wrong.clone(),
        reject_naming(name, &[wrong.trim_start_matches("sha256:")]),
    ));

    let name = "missing-layer";
    let layer = valid_layer(name);
    let config = image_config(&[base.diff_id.clone(), sha256_digest(&layer)]);
    let tag = tag_of(name);
    let input = ArchiveBuilder::new()
        .file(BASE_MEMBER, &base.tar)
        .config(&config)
        .manifest(&[(
            &config_member(&config),
            &[BASE_MEMBER, &layer_member(name)],
            &tag,
        )])
        .finish();
    cases.push(archive_case(
        name,
        "manifest.json names a layer blob the archive does not have",
        input,
        reject_naming(name, &[]),
    ));

    let name = "layer-twice";
    let layer = RawTar::new().file("twice", b"listed twice").finish();
    let layer_diff_id = sha256_digest(&layer);
    let config = image_config(&[
        base.diff_id.clone(),
        layer_diff_id.clone(),
        layer_diff_id.clone(),
    ]);
    let tag = tag_of(name);
    let input = ArchiveBuilder::new()
        .file(BASE_MEMBER, &base.tar)
        .file(&layer_member(name), &layer)
        .config(&config)
        .manifest(&[(
            &config_member(&config),
            &[BASE_MEMBER, &layer_member(name), &layer_member(name)],
            &tag,
        )])
        .finish();
    let base_diff_id = base.diff_id.clone();
    cases.push(archive_case(
        name,
        "the same layer listed twice (valid in Docker): three layers, the last two alike",
        input,
        contain(move |diff, image| {
            expect_file(diff, "twice", b"listed twice", 0o644)?;
            let layers = &image["RootFS"]["Layers"];
            let expected = serde_json::json!([base_diff_id.as_str(), layer_diff_id, layer_diff_id]);
            ensure!(
                *layers == expected,
                "RootFS.Layers is {layers}, not {expected}"
            );
            Ok(())
        }),
    ));

    let name = "manifest-huge";
    let config = image_config(std::slice::from_ref(&base.diff_id));
    let mut manifest = Vec::with_capacity(HUGE_MANIFEST_ENTRIES * 44);
    manifest.push(b'[');
    for idx in 0..HUGE_MANIFEST_ENTRIES {
        if idx > 0 {
            manifest.push(b',');
        }
        manifest.extend_from_slice(br#"{"Config":"c.json","Layers":["b/layer.tar"]}"#);
    }
    manifest.push(b']');
    let input = ArchiveBuilder::new()
        .file("b/layer.tar", &base.tar)
        .file("c.json", &config)
        .file("manifest.json", &manifest)
        .finish();
    cases.push(
        archive_case(
            name,
            "manifest.json with 10^6 images (43 MB): must end within 10 s and 512 MiB",
            input,
            Expect::Bounded,
        )
        .in_docker(Docker::NotRun(
            "Docker handles the million images one after the other, for minutes",
        )),
    );

    let name = "manifest-huge-layers";
    let layer_names: Vec<&str> = vec!["b/layer.tar"; HUGE_MANIFEST_ENTRIES];
    let diff_ids = vec![base.diff_id.clone(); HUGE_MANIFEST_ENTRIES];
    let config = image_config(&diff_ids);
    let tag = tag_of(name);
    let input = ArchiveBuilder::new()
        .file("b/layer.tar", &base.tar)
        .config(&config)
        .manifest(&[(&config_member(&config), &layer_names, &tag)])
        .finish();
    cases.push(
        archive_case(
            name,
            "one image with 10^6 layers (a 75 MB config): must end within 10 s and 512 MiB",
            input,
            Expect::Bounded,
        )
        .in_docker(Docker::NotRun(
            "Docker unpacks 125 copies of the base layer before its depth limit stops the load",
        )),
    );

    cases.push(archive_case(
        "manifest-invalid-json",
        "manifest.json is not JSON",
        ArchiveBuilder::new()
            .file(BASE_MEMBER, &base.tar)
            .file("manifest.json", br#"[{"Config": "x.json", "Layers": ["#)
            .finish(),
        Expect::Reject(needles(&[&["manifest.json"]])),
    ));

    for (name, what, target) in [
        (
            "layer-symlink-etc-passwd",
            "the layer member is a symlink to /etc/passwd",
            "/etc/passwd",
        ),
        (
            "layer-symlink-dotdot",
            "the layer member is a symlink to ../x, outside the archive",
            "../../x",
        ),
    ] {
        let layer = valid_layer(name);
        let config = image_config(&[base.diff_id.clone(), sha256_digest(&layer)]);
        let tag = tag_of(name);
        let input = ArchiveBuilder::new()
            .file(BASE_MEMBER, &base.tar)
            .symlink(&layer_member(name), target)
            .config(&config)
            .manifest(&[(
                &config_member(&config),
                &[BASE_MEMBER, &layer_member(name)],
                &tag,
            )])
            .finish();
        cases.push(archive_case(
            name,
            what,
            input,
            reject_naming(name, &[target]),
        ));
    }

    cases
}

/// Layer cases run through `ovl import` as rootfs tarballs.
fn import_cases() -> Vec<Case> {
    let import = |name: &str, what: &'static str, input: Vec<u8>, expect: Expect| Case {
        name: name.to_string(),
        what,
        docker: Docker::Same,
        docker_check: None,
        via: Via::Import,
        input,
        args: Vec::new(),
        tag: tag_of(name),
        expect,
    };
    let file_needle = |name: &str| format!("{name}.tar");
    let mut cases = Vec::new();

    let m = marker("import-dotdot");
    let at_root = m.clone();
    let entry = format!("../{m}");
    cases.push(import(
        "import-dotdot",
        "a tarball member named ../x: refused",
        RawTar::new().file(&entry, b"evil").finish(),
        Expect::Reject(vec![vec![file_needle("import-dotdot")], vec![entry.clone()]]),
    )
    .in_docker_checked(
        "Docker unpacks chrooted into the layer directory, where .. stops at the root: x is written at the layer root",
        move |diff, _| expect_file(diff, &at_root, b"evil", 0o644),
    ));

    let m = marker("import-symlink-root");
    let inside = format!("etc/{m}");
    cases.push(import(
        "import-symlink-root",
        "l -> / then l/etc/x: written to the layer's etc/x",
        RawTar::new()
            .symlink("l", "/")
            .file(&format!("l/etc/{m}"), b"imported through l")
            .finish(),
        contain(move |diff, _| expect_file(diff, &inside, b"imported through l", 0o644)),
    ));

    cases.push(import(
        "import-hardlink-passwd",
        "a hardlink to /etc/passwd: missing in the layer",
        RawTar::new()
            .hardlink("link-passwd", "/etc/passwd")
            .finish(),
        Expect::Reject(vec![
            vec![file_needle("import-hardlink-passwd")],
            vec!["link-passwd".into()],
        ]),
    ));

    cases.push(import(
        "import-whiteout-symlink",
        "l -> ../../../.. then l/.wh.keep: the whiteout lands in the layer",
        RawTar::new()
            .symlink("l", "../../../..")
            .file("l/.wh.keep", b"")
            .finish(),
        contain(|diff, _| expect_whiteout(diff, "keep")),
    ));

    let mut tar = RawTar::new();
    tar.pax(&[(b"SCHILY.xattr.trusted.overlay.redirect", b"/etc")])
        .dir("redirected/");
    cases.push(
        import(
            "import-xattr-redirect",
            "trusted.overlay.redirect on a directory: dropped",
            tar.finish(),
            contain(|diff, _| {
                expect_xattr(&diff.join("redirected"), "trusted.overlay.redirect", None)
            }),
        )
        .in_docker_checked(
            "Docker sets trusted.overlay.redirect on the directory",
            |diff, _| {
                expect_xattr(
                    &diff.join("redirected"),
                    "trusted.overlay.redirect",
                    Some(b"/etc"),
                )
            },
        ),
    );

    let bomb = gzip_bomb().0.clone();
    let mut case = import(
        "import-gzip-bomb",
        "a gzip bomb imported with --max-layer-size 100MiB: stopped at the limit",
        bomb,
        Expect::Reject(vec![
            vec![file_needle("import-gzip-bomb")],
            vec![BOMB_LIMIT_BYTES.to_string(), BOMB_LIMIT.to_string()],
        ]),
    );
    case.args = vec!["--max-layer-size".into(), BOMB_LIMIT.into()];
    case.docker = Docker::NotRun("Docker has no size limit: it would write all 2 GiB");
    cases.push(case);

    cases
}

// ------------------------------------------------------------------------------------------------
// Checks of a contained result

fn expect_file(diff: &Path, rel: &str, content: &[u8], mode: u32) -> anyhow::Result<()> {
    let path = diff.join(rel);
    let meta = fs::symlink_metadata(&path).with_context(|| format!("lstat {rel} in the layer"))?;
    ensure!(meta.file_type().is_file(), "{rel} is not a regular file");
    ensure!(
        meta.mode() & 0o7777 == mode,
        "{rel} has mode {:o}, not {mode:o}",
        meta.mode() & 0o7777
    );
    let actual = fs::read(&path).with_context(|| format!("read {rel}"))?;
    ensure!(
        actual == content,
        "{rel} holds {} bytes that differ from the {} expected",
        actual.len(),
        content.len()
    );
    Ok(())
}

fn expect_dir(diff: &Path, rel: &str) -> anyhow::Result<()> {
    let meta = fs::symlink_metadata(diff.join(rel)).with_context(|| format!("lstat {rel}"))?;
    ensure!(meta.file_type().is_dir(), "{rel} is not a directory");
    Ok(())
}

fn expect_symlink(diff: &Path, rel: &str, target: &str) -> anyhow::Result<()> {
    let path = diff.join(rel);
    let meta = fs::symlink_metadata(&path).with_context(|| format!("lstat {rel}"))?;
    ensure!(meta.file_type().is_symlink(), "{rel} is not a symlink");
    let actual = fs::read_link(&path)?;
    ensure!(
        actual == Path::new(target),
        "{rel} points to {actual:?}, not {target:?}"
    );
    Ok(())
}

/// An overlay whiteout: a 0/0 character device.
fn expect_whiteout(diff: &Path, rel: &str) -> anyhow::Result<()> {
    expect_device(diff, rel, 'c', (0, 0), 0)
}

fn expect_device(
    diff: &Path,
    rel: &str,
    kind: char,
    numbers: (u32, u32),
    mode: u32,
) -> anyhow::Result<()> {
    let meta = fs::symlink_metadata(diff.join(rel)).with_context(|| format!("lstat {rel}"))?;
    let file_type = meta.file_type();
    let actual_kind = if file_type.is_char_device() {
        'c'
    } else if file_type.is_block_device() {
        'b'
    } else {
        '?'
    };
    let rdev = meta.rdev();
    let actual = (
        nix::sys::stat::major(rdev) as u32,
        nix::sys::stat::minor(rdev) as u32,
    );
    ensure!(
        (actual_kind, actual, meta.mode() & 0o7777) == (kind, numbers, mode),
        "{rel} is {actual_kind} {}:{} mode {:o}, not {kind} {}:{} mode {mode:o}",
        actual.0,
        actual.1,
        meta.mode() & 0o7777,
        numbers.0,
        numbers.1
    );
    Ok(())
}

/// The layer holds nothing.
fn expect_empty_dir(diff: &Path) -> anyhow::Result<()> {
    let names: Vec<_> = fs::read_dir(diff)?
        .map(|entry| entry.map(|entry| entry.file_name()))
        .collect::<Result<_, _>>()?;
    ensure!(names.is_empty(), "the layer holds {names:?}");
    Ok(())
}

fn expect_absent(diff: &Path, rel: &str) -> anyhow::Result<()> {
    ensure!(
        fs::symlink_metadata(diff.join(rel)).is_err(),
        "{rel} exists in the layer"
    );
    Ok(())
}

fn expect_same_inode(diff: &Path, a: &str, b: &str) -> anyhow::Result<()> {
    let first = fs::symlink_metadata(diff.join(a))?;
    let second = fs::symlink_metadata(diff.join(b))?;
    ensure!(
        (first.dev(), first.ino()) == (second.dev(), second.ino()),
        "{a} and {b} are not hardlinks of one inode"
    );
    Ok(())
}

fn expect_xattr(path: &Path, name: &str, value: Option<&[u8]>) -> anyhow::Result<()> {
    let actual = sys::get_xattr(path, name).with_context(|| format!("getxattr {name}"))?;
    ensure!(
        actual.as_deref() == value,
        "{}: xattr {name} is {:?}, not {:?}",
        path.display(),
        actual.as_deref().map(String::from_utf8_lossy),
        value.map(String::from_utf8_lossy)
    );
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// The world: sentinel tree, data root, base image

struct World {
    scratch: Scratch,
    ovl: Ovl,
    base: Base,
}

/// The base layer every load case builds on: the harness's base rootfs tar and its DiffID.
struct Base {
    tar: Vec<u8>,
    diff_id: String,
}

impl Base {
    fn new() -> Base {
        let tar = base_rootfs_tar();
        Base {
            diff_id: sha256_digest(&tar),
            tar,
        }
    }
}

/// What is recorded before a case and compared after it.
struct Before {
    sentinel: BTreeMap<Vec<u8>, String>,
    host_files: Vec<String>,
    layers: Vec<String>,
    images: String,
}

/// The outcome of one ovl command.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
    max_rss_kib: i64,
    timed_out: bool,
}

impl World {
    fn new() -> World {
        let scratch = Scratch::new();
        let world = World {
            ovl: Ovl::new(scratch.join("world/root")),
            base: Base::new(),
            scratch,
        };
        fs::create_dir_all(world.inputs()).expect("mkdir inputs");
        plant_sentinels(&world.world()).expect("plant the sentinel tree");
        let base = world.inputs().join("base.tar");
        fs::write(&base, &world.base.tar).expect("write base tar");
        world.ovl.ok([
            OsString::from("import"),
            base.into_os_string(),
            OsString::from(BASE_TAG),
        ]);
        world
    }

    /// The directory holding the sentinel tree and, as `root`, the data root.
    fn world(&self) -> PathBuf {
        self.scratch.join("world")
    }

    /// Where archives are written, outside the world.
    fn inputs(&self) -> PathBuf {
        self.scratch.join("inputs")
    }

    /// `ovl images --no-trunc` without the columns that change with the clock: repository, tag
    /// and image id per line.
    fn images(&self) -> anyhow::Result<String> {
        let listing = self.ovl.try_ok(["images", "--no-trunc"])?;
        Ok(listing
            .lines()
            .map(|line| {
                line.split_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n"))
    }

    fn before(&self) -> anyhow::Result<Before> {
        Ok(Before {
            sentinel: sentinel_snapshot(&self.world(), &["root"])?,
            host_files: host_file_states()?,
            layers: layerdb(&self.ovl.root).into_keys().collect(),
            images: self.images()?,
        })
    }

    fn run_case(&self, case: &Case) -> anyhow::Result<()> {
        let before = self.before()?;
        let input = self.inputs().join(format!("{}.tar", case.name));
        fs::write(&input, &case.input).with_context(|| format!("write {}", input.display()))?;
        if let Some(corpus) = std::env::var_os("OVL_HOSTILE_CORPUS") {
            let corpus = PathBuf::from(corpus);
            fs::create_dir_all(&corpus)?;
            let kind = match case.via {
                Via::Load => "load",
                Via::Import => "import",
            };
            fs::write(
                corpus.join(format!("{kind}-{}.tar", case.name)),
                &case.input,
            )?;
        }
        let mut args: Vec<OsString> = match case.via {
            Via::Load => vec!["load".into(), "-i".into(), input.clone().into()],
            Via::Import => vec![
                "import".into(),
                input.clone().into(),
                case.tag.clone().into(),
            ],
        };
        args.extend(case.args.iter().map(OsString::from));
        let deadline = match case.expect {
            Expect::Bounded => HUGE_MANIFEST_DEADLINE,
            _ => COMMAND_DEADLINE,
        };
        let run = run_bounded(self.ovl.command(&args), deadline)?;
        eprintln!(
            "case {}: exit {:?} in {:.2?}, max RSS {} KiB{}",
            case.name,
            run.code,
            run.elapsed,
            run.max_rss_kib,
            if run.timed_out {
                " (killed: deadline)"
            } else {
                ""
            }
        );
        let stderr_tail: String = run.stderr.chars().take(2000).collect();
        eprintln!("  stderr: {}", stderr_tail.trim_end());
        let _ = fs::remove_file(&input);

        let outcome = self.check_outcome(case, &run, &before);
        let invariants = self.check_invariants(case, &before);
        match (outcome, invariants) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(e), Ok(())) | (Ok(()), Err(e)) => Err(e),
            (Err(a), Err(b)) => Err(anyhow::anyhow!("{a:#}\nand: {b:#}")),
        }
    }

    fn check_outcome(&self, case: &Case, run: &Run, before: &Before) -> anyhow::Result<()> {
        let command = format!(
            "ovl --root {} {} {}",
            self.ovl.root.display(),
            match case.via {
                Via::Load => format!("load -i <{}.tar>", case.name),
                Via::Import => format!("import <{}.tar> {}", case.name, case.tag),
            },
            case.args.join(" ")
        );
        ensure!(
            !run.timed_out || matches!(case.expect, Expect::Bounded),
            "{command} did not end within {COMMAND_DEADLINE:?}"
        );
        match &case.expect {
            Expect::Reject(groups) => {
                ensure!(
                    run.code == Some(1),
                    "{command} should be rejected with exit status 1, got {:?}; stdout: {} stderr: {}",
                    run.code,
                    run.stdout,
                    run.stderr
                );
                for group in groups {
                    ensure!(
                        group
                            .iter()
                            .any(|needle| run.stderr.contains(needle.as_str())),
                        "{command}: stderr should name {group:?}, got: {}",
                        run.stderr
                    );
                }
                let layers: Vec<String> = layerdb(&self.ovl.root).into_keys().collect();
                ensure!(
                    layers == before.layers,
                    "{command} was rejected but the layers changed: before {:?}, after {layers:?}",
                    before.layers
                );
                let images = self.images()?;
                ensure!(
                    images == before.images,
                    "{command} was rejected but ovl images changed:\n{}\nbecame\n{images}",
                    before.images
                );
                let inspect = self.ovl.run(["inspect", case.tag.as_str()]);
                ensure!(
                    inspect.status.code() == Some(1),
                    "{command} was rejected but {} exists",
                    case.tag
                );
                let tmp = self.ovl.root.join("tmp");
                if tmp.exists() {
                    let left: Vec<_> = fs::read_dir(&tmp)?
                        .map(|entry| entry.map(|entry| entry.file_name()))
                        .collect::<Result<_, _>>()?;
                    ensure!(left.is_empty(), "{} holds {left:?}", tmp.display());
                }
                Ok(())
            }
            Expect::Contain(check) => {
                ensure!(
                    run.code == Some(0),
                    "{command} should load and contain the layer (exit 0), got {:?}; stderr: {}",
                    run.code,
                    run.stderr
                );
                let image = self.ovl.inspect(&case.tag)?;
                let upper = image["GraphDriver"]["Data"]["UpperDir"]
                    .as_str()
                    .with_context(|| format!("no GraphDriver.Data.UpperDir for {}", case.tag))?;
                let diff = PathBuf::from(upper);
                ensure!(
                    diff.starts_with(&self.ovl.root),
                    "UpperDir {upper} is not inside the data root"
                );
                check(&diff, &image).with_context(|| format!("{command}: layer {upper}"))
            }
            Expect::Bounded => {
                let mut problems = Vec::new();
                if run.timed_out {
                    problems.push(format!(
                        "{command} was still running after {HUGE_MANIFEST_DEADLINE:?} and was killed"
                    ));
                } else if !matches!(run.code, Some(0 | 1)) {
                    problems.push(format!(
                        "{command} should end with exit 0 or 1, got {:?}; stderr: {}",
                        run.code, run.stderr
                    ));
                }
                if run.max_rss_kib > HUGE_MANIFEST_MAX_RSS_KIB {
                    problems.push(format!(
                        "{command} used {} KiB of memory{}, more than {HUGE_MANIFEST_MAX_RSS_KIB} KiB",
                        run.max_rss_kib,
                        if run.timed_out { " by then" } else { "" }
                    ));
                }
                if problems.is_empty() {
                    Ok(())
                } else {
                    bail!("{}", problems.join("; "))
                }
            }
        }
    }

    /// What must hold after every case: the sentinel tree, the host's files and marker
    /// directories, and a data root that `fsck` finds clean.
    fn check_invariants(&self, case: &Case, before: &Before) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        let after = sentinel_snapshot(&self.world(), &["root"])?;
        host_invariants(&before.sentinel, &after, &before.host_files, &mut problems)?;
        if let Err(e) = self.fsck(false) {
            problems.push(format!("{e:#}"));
        }
        if let Err(e) = check_root_consistent(&self.ovl.root) {
            problems.push(format!("data root after {}: {e:#}", case.name));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            bail!("{}", problems.join("\n"))
        }
    }

    /// `ovl fsck` (with `--verify-content` when asked) exits 0 and reports nothing corrupt and
    /// no leftovers.
    fn fsck(&self, verify_content: bool) -> anyhow::Result<()> {
        let mut args = vec!["fsck"];
        if verify_content {
            args.push("--verify-content");
        }
        let output = self.ovl.run(&args);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(
            output.status.code() == Some(0) && stdout.contains(": 0 corrupt, 0 leftovers"),
            "ovl fsck{} exited {:?}, wanted 0 with `0 corrupt, 0 leftovers`:\n{stdout}{stderr}",
            if verify_content {
                " --verify-content"
            } else {
                ""
            },
            output.status.code()
        );
        Ok(())
    }
}

/// Files, a private file of another owner, a setuid file, a directory with an inner file, a
/// decoy `etc/passwd`, a symlink and an empty directory, all with known modes and mtimes.
/// The depth matters: from `world/root/overlay2/<id>/diff`, `../../../..` is `world`.
fn plant_sentinels(world: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(world.join("sentinel-dir"))?;
    fs::create_dir_all(world.join("etc"))?;
    fs::create_dir_all(world.join("empty-dir"))?;
    let files: [(&str, &[u8], u32, u32); 5] = [
        ("keep", b"keep me\n", 0o644, 0),
        ("secret", b"secret\n", 0o600, 1234),
        ("suid", b"#!/bin/sh\n", 0o4755, 0),
        ("sentinel-dir/inner", b"inner\n", 0o640, 0),
        ("etc/passwd", b"decoy:x:0:0::/:/bin/sh\n", 0o644, 0),
    ];
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(SENTINEL_MTIME);
    for (rel, content, mode, owner) in files {
        let path = world.join(rel);
        fs::write(&path, content)?;
        std::os::unix::fs::chown(&path, Some(owner), Some(owner))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
        fs::File::options()
            .write(true)
            .open(&path)?
            .set_modified(mtime)?;
    }
    symlink("keep", world.join("link-to-keep"))?;
    for rel in ["sentinel-dir", "etc", "empty-dir", "."] {
        fs::File::open(world.join(rel))?.set_modified(mtime)?;
    }
    Ok(())
}

/// Adds to `problems` how the sentinel tree changed, which markers escaped (and removes them),
/// and whether the host's files changed.
fn host_invariants(
    before: &BTreeMap<Vec<u8>, String>,
    after: &BTreeMap<Vec<u8>, String>,
    host_files_before: &[String],
    problems: &mut Vec<String>,
) -> anyhow::Result<()> {
    if after != before {
        let mut diff = Vec::new();
        for (path, line) in before {
            match after.get(path) {
                None => diff.push(format!("- {line}")),
                Some(now) if now != line => diff.push(format!("- {line}\n+ {now}")),
                Some(_) => {}
            }
        }
        for (path, line) in after {
            if !before.contains_key(path) {
                diff.push(format!("+ {line}"));
            }
        }
        problems.push(format!("the sentinel tree changed:\n{}", diff.join("\n")));
    }
    let leaked = leaked_markers();
    if !leaked.is_empty() {
        problems.push(format!("markers escaped the data root: {leaked:?}"));
        for path in &leaked {
            let _ = fs::remove_dir_all(path).or_else(|_| fs::remove_file(path));
        }
    }
    let host_files = host_file_states()?;
    if host_files != host_files_before {
        problems.push(format!(
            "host files changed: {host_files_before:?} became {host_files:?}"
        ));
    }
    Ok(())
}

/// One line per entry under `world` (the top-level names in `skip` excluded), keyed by path:
/// type, mode, owner, size, link count, mtime, ctime, content hash, symlink target, device
/// numbers and every xattr. The world directory itself is included.
fn sentinel_snapshot(world: &Path, skip: &[&str]) -> anyhow::Result<BTreeMap<Vec<u8>, String>> {
    let mut lines = BTreeMap::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let path = world.join(&rel);
        let meta =
            fs::symlink_metadata(&path).with_context(|| format!("lstat {}", path.display()))?;
        let file_type = meta.file_type();
        let mut line = format!(
            "/{} mode={:o} uid={} gid={} size={} nlink={} mtime={}.{} ctime={}.{}",
            rel.display(),
            meta.mode(),
            meta.uid(),
            meta.gid(),
            meta.size(),
            meta.nlink(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.ctime(),
            meta.ctime_nsec()
        );
        if file_type.is_file() {
            line.push_str(&format!(
                " sha256={}",
                hex(&Sha256::digest(fs::read(&path)?))
            ));
        } else if file_type.is_symlink() {
            line.push_str(&format!(" target={:?}", fs::read_link(&path)?));
        } else if file_type.is_char_device() || file_type.is_block_device() {
            line.push_str(&format!(" rdev={}", meta.rdev()));
        }
        for (name, value) in sys::list_xattrs(&path)? {
            line.push_str(&format!(
                " xattr.{}={}",
                String::from_utf8_lossy(&name),
                hex(&value)
            ));
        }
        lines.insert(rel.as_os_str().as_bytes().to_vec(), line);
        if file_type.is_dir() {
            for entry in fs::read_dir(&path)? {
                let entry = entry?;
                let child = rel.join(entry.file_name());
                if !skip.iter().any(|name| child == Path::new(name)) {
                    pending.push(child);
                }
            }
        }
    }
    Ok(lines)
}

/// Mode, owner, size, link count, mtime, ctime and content hash of `/etc/passwd` and
/// `/etc/shadow`.
fn host_file_states() -> anyhow::Result<Vec<String>> {
    HOST_FILES
        .iter()
        .map(|path| {
            let meta = fs::symlink_metadata(path).with_context(|| format!("lstat {path}"))?;
            Ok(format!(
                "{path} mode={:o} uid={} size={} nlink={} mtime={}.{} ctime={}.{} sha256={}",
                meta.mode(),
                meta.uid(),
                meta.size(),
                meta.nlink(),
                meta.mtime(),
                meta.mtime_nsec(),
                meta.ctime(),
                meta.ctime_nsec(),
                hex(&Sha256::digest(fs::read(path)?))
            ))
        })
        .collect()
}

/// Every entry named `ovl-hostile-<pid>-*` in the host directories cases aim at.
fn leaked_markers() -> Vec<PathBuf> {
    let prefix = format!("ovl-hostile-{}-", std::process::id());
    let mut leaked = Vec::new();
    for dir in MARKER_DIRS {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_name().as_bytes().starts_with(prefix.as_bytes()) {
                leaked.push(entry.path());
            }
        }
    }
    leaked
}

/// Runs `command` with stdout and stderr in temp files, kills it at `deadline`, and measures its
/// peak RSS as `VmHWM` of `/proc/<pid>/status`, read every few milliseconds until it exits.
/// (`wait4`'s `ru_maxrss` would not do: Linux carries the RSS of the forking test process over
/// the `exec`.)
fn run_bounded(mut command: Command, deadline: Duration) -> anyhow::Result<Run> {
    let stdout = tempfile::tempfile()?;
    let stderr = tempfile::tempfile()?;
    command
        .stdin(Stdio::null())
        .stdout(stdout.try_clone()?)
        .stderr(stderr.try_clone()?);
    let started = Instant::now();
    let child = command.spawn().context("spawn ovl")?;
    let pid = child.id() as i32;
    let mut timed_out = false;
    let mut max_rss_kib = 0;
    let status = loop {
        max_rss_kib = max_rss_kib.max(peak_rss_kib(pid).unwrap_or(0));
        if let Some(status) = sys::wait4(pid, true)? {
            break status;
        }
        if started.elapsed() > deadline {
            timed_out = true;
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            break sys::wait4(pid, false)?.context("wait4 after SIGKILL")?;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed = started.elapsed();
    let read = |mut file: fs::File| -> anyhow::Result<String> {
        use std::io::{Read as _, Seek as _};
        file.seek(std::io::SeekFrom::Start(0))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    Ok(Run {
        code: libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status)),
        stdout: read(stdout)?,
        stderr: read(stderr)?,
        elapsed,
        max_rss_kib,
        timed_out,
    })
}

/// `VmHWM` (peak resident set size) of a running process, in KiB.
fn peak_rss_kib(pid: i32) -> Option<i64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

// ------------------------------------------------------------------------------------------------
// Generators: raw tar headers, archives, compressed streams

/// One tar header, written byte for byte as given: the `tar` crate refuses `..`, NUL bytes,
/// empty names and sizes it cannot encode, which are what these cases need.
#[derive(Debug, Clone)]
struct Hdr {
    /// At most 100 bytes; longer names go through [`RawTar::pax`] or [`RawTar::gnu_long_name`].
    name: Vec<u8>,
    flag: u8,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: u64,
    link: Vec<u8>,
    dev: (u32, u32),
    /// The raw 12-byte size field, instead of the data length in octal.
    size_field: Option<[u8; 12]>,
    /// The old GNU magic (`ustar  \0`) instead of POSIX ustar's.
    gnu: bool,
}

impl Hdr {
    fn new(name: &[u8], flag: u8) -> Hdr {
        Hdr {
            name: name.to_vec(),
            flag,
            mode: if flag == b'5' { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            mtime: 1_600_000_000,
            link: Vec::new(),
            dev: (0, 0),
            size_field: None,
            gnu: false,
        }
    }

    /// The 512-byte header block for `data_len` bytes of data.
    fn block(&self, data_len: u64) -> [u8; 512] {
        let mut block = [0u8; 512];
        assert!(
            self.name.len() <= 100 && self.link.len() <= 100,
            "name too long for ustar"
        );
        block[..self.name.len()].copy_from_slice(&self.name);
        block[100..108].copy_from_slice(&octal_field::<8>(u64::from(self.mode)));
        block[108..116].copy_from_slice(&octal_field::<8>(u64::from(self.uid)));
        block[116..124].copy_from_slice(&octal_field::<8>(u64::from(self.gid)));
        let size = self
            .size_field
            .unwrap_or_else(|| octal_field::<12>(data_len));
        block[124..136].copy_from_slice(&size);
        block[136..148].copy_from_slice(&octal_field::<12>(self.mtime));
        block[156] = self.flag;
        block[157..157 + self.link.len()].copy_from_slice(&self.link);
        if self.gnu {
            block[257..265].copy_from_slice(b"ustar  \0");
        } else {
            block[257..263].copy_from_slice(b"ustar\0");
            block[263..265].copy_from_slice(b"00");
        }
        block[265..269].copy_from_slice(b"root");
        block[297..301].copy_from_slice(b"root");
        block[329..337].copy_from_slice(&octal_field::<8>(u64::from(self.dev.0)));
        block[337..345].copy_from_slice(&octal_field::<8>(u64::from(self.dev.1)));
        // The checksum is the sum of all bytes with its own field counted as spaces.
        block[148..156].copy_from_slice(b"        ");
        let sum: u32 = block.iter().map(|&byte| u32::from(byte)).sum();
        block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        block
    }
}

/// `value` as zero-padded octal digits filling all but the last byte, which is NUL.
fn octal_field<const N: usize>(value: u64) -> [u8; N] {
    let text = format!("{value:0width$o}\0", width = N - 1);
    assert_eq!(text.len(), N, "{value} does not fit {N} octal bytes");
    let mut field = [0u8; N];
    field.copy_from_slice(text.as_bytes());
    field
}

/// A tar stream built from raw headers.
#[derive(Debug, Default)]
struct RawTar {
    bytes: Vec<u8>,
}

impl RawTar {
    fn new() -> RawTar {
        RawTar::default()
    }

    /// A header, the data and the padding to a whole block.
    fn member(&mut self, header: &Hdr, data: &[u8]) -> &mut Self {
        self.bytes
            .extend_from_slice(&header.block(data.len() as u64));
        self.bytes.extend_from_slice(data);
        let padding = (512 - data.len() % 512) % 512;
        self.bytes.resize(self.bytes.len() + padding, 0);
        self
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.member(&Hdr::new(name.as_bytes(), b'0'), data)
    }

    fn dir(&mut self, name: &str) -> &mut Self {
        self.member(&Hdr::new(name.as_bytes(), b'5'), b"")
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        let header = Hdr {
            mode: 0o777,
            link: target.as_bytes().to_vec(),
            ..Hdr::new(name.as_bytes(), b'2')
        };
        self.member(&header, b"")
    }

    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        let header = Hdr {
            link: target.as_bytes().to_vec(),
            ..Hdr::new(name.as_bytes(), b'1')
        };
        self.member(&header, b"")
    }

    /// A PAX extended header (type `x`) for the next member, records in the given order.
    fn pax(&mut self, records: &[(&[u8], &[u8])]) -> &mut Self {
        let mut data = Vec::new();
        for (key, value) in records {
            // "<len> <key>=<value>\n", where <len> counts the whole record including itself.
            let rest = key.len() + value.len() + 3;
            let mut len = rest + 1;
            while len.to_string().len() + rest != len {
                len = len.to_string().len() + rest;
            }
            data.extend_from_slice(len.to_string().as_bytes());
            data.push(b' ');
            data.extend_from_slice(key);
            data.push(b'=');
            data.extend_from_slice(value);
            data.push(b'\n');
        }
        self.member(&Hdr::new(b"PaxHeaders.0/next", b'x'), &data)
    }

    /// A GNU long name header (type `L`) for the next member.
    fn gnu_long_name(&mut self, name: &[u8]) -> &mut Self {
        let mut data = name.to_vec();
        data.push(0);
        let header = Hdr {
            gnu: true,
            ..Hdr::new(b"././@LongLink", b'L')
        };
        self.member(&header, &data)
    }

    /// The stream with its end-of-archive marker (two zero blocks).
    fn finish(&mut self) -> Vec<u8> {
        let mut bytes = std::mem::take(&mut self.bytes);
        bytes.resize(bytes.len() + 1024, 0);
        bytes
    }

    /// The stream as it is, without end-of-archive marker.
    fn unterminated(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.bytes)
    }
}

/// A docker-archive assembled member by member, `manifest.json` as given.
struct ArchiveBuilder {
    tar: RawTar,
}

impl ArchiveBuilder {
    fn new() -> ArchiveBuilder {
        ArchiveBuilder { tar: RawTar::new() }
    }

    fn file(mut self, name: &str, data: &[u8]) -> Self {
        let header = Hdr {
            mtime: 1_700_000_000,
            ..Hdr::new(name.as_bytes(), b'0')
        };
        self.tar.member(&header, data);
        self
    }

    fn symlink(mut self, name: &str, target: &str) -> Self {
        self.tar.symlink(name, target);
        self
    }

    /// The config as `<sha256>.json`.
    fn config(self, config: &[u8]) -> Self {
        let name = config_member(config);
        self.file(&name, config)
    }

    /// `manifest.json` with one item per (config member, layer members, tag).
    fn manifest(self, items: &[(&str, &[&str], &str)]) -> Self {
        self.file("manifest.json", &manifest_json(items))
    }

    /// Appends raw members.
    fn raw(mut self, append: impl FnOnce(&mut RawTar)) -> Self {
        append(&mut self.tar);
        self
    }

    fn finish(mut self) -> Vec<u8> {
        self.tar.finish()
    }
}

/// `manifest.json` with one item per (config member, layer members, tag).
fn manifest_json(items: &[(&str, &[&str], &str)]) -> Vec<u8> {
    let manifest: Vec<serde_json::Value> = items
        .iter()
        .map(|(config, layers, tag)| {
            serde_json::json!({"Config": config, "RepoTags": [tag], "Layers": layers})
        })
        .collect();
    serde_json::to_vec(&manifest).expect("serialize manifest")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    gzip_level(bytes, flate2::Compression::default())
}

fn gzip_level(bytes: &[u8], level: flate2::Compression) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip finish")
}

fn zstd_with_checksum(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).expect("zstd encoder");
    encoder.include_checksum(true).expect("zstd checksum flag");
    encoder.write_all(bytes).expect("zstd");
    encoder.finish().expect("zstd finish")
}

/// A layer whose one file is [`BOMB_FILE_LEN`] zeros, as concatenated gzip members: the header,
/// the same 16 MiB of zeros at deflate's best ratio (about 1000:1) 128 times, the end-of-archive
/// marker. About 2 MiB in all; returns the blob and its DiffID, computed once per test run (it
/// hashes 2 GiB).
fn gzip_bomb() -> &'static (Vec<u8>, String) {
    static BOMB: OnceLock<(Vec<u8>, String)> = OnceLock::new();
    BOMB.get_or_init(make_gzip_bomb)
}

fn make_gzip_bomb() -> (Vec<u8>, String) {
    /// The zeros compressed once and repeated.
    const CHUNK_LEN: usize = 16 << 20;
    let header = Hdr::new(b"zeros", b'0').block(BOMB_FILE_LEN);
    let mut blob = gzip(&header);
    let zeros = vec![0u8; CHUNK_LEN];
    let chunk = gzip_level(&zeros, flate2::Compression::best());
    let mut hasher = Sha256::new();
    hasher.update(header);
    for _ in 0..BOMB_FILE_LEN / CHUNK_LEN as u64 {
        blob.extend_from_slice(&chunk);
        hasher.update(&zeros);
    }
    let end = [0u8; 1024];
    blob.extend_from_slice(&gzip(&end));
    hasher.update(end);
    (blob, format!("sha256:{}", hex(&hasher.finalize())))
}

// ------------------------------------------------------------------------------------------------
// The syscalls std does not offer

mod sys {
    use std::ffi::CString;
    use std::io;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    fn c_path(path: &Path) -> io::Result<CString> {
        CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
    }

    /// Every xattr of `path` (not following a symlink), sorted by name.
    pub fn list_xattrs(path: &Path) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let c_path = c_path(path)?;
        let mut names = vec![0u8; 64 * 1024];
        // SAFETY: `llistxattr` writes at most `names.len()` bytes into `names`, which lives for
        // the call; `c_path` is NUL-terminated.
        let len =
            unsafe { libc::llistxattr(c_path.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
        if len < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut xattrs = Vec::new();
        for name in names[..len as usize].split(|&byte| byte == 0) {
            if name.is_empty() {
                continue;
            }
            let c_name = CString::new(name).map_err(|_| io::ErrorKind::InvalidData)?;
            let value = get(&c_path, &c_name)?.unwrap_or_default();
            xattrs.push((name.to_vec(), value));
        }
        xattrs.sort();
        Ok(xattrs)
    }

    /// The xattr `name` of `path` (not following a symlink), `None` when it has none.
    pub fn get_xattr(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
        let c_name = CString::new(name).map_err(|_| io::ErrorKind::InvalidInput)?;
        get(&c_path(path)?, &c_name)
    }

    fn get(c_path: &CString, c_name: &CString) -> io::Result<Option<Vec<u8>>> {
        let mut value = vec![0u8; 256 * 1024];
        // SAFETY: `lgetxattr` writes at most `value.len()` bytes into `value`; both strings are
        // NUL-terminated and outlive the call.
        let len = unsafe {
            libc::lgetxattr(
                c_path.as_ptr(),
                c_name.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if len < 0 {
            let error = io::Error::last_os_error();
            return match error.raw_os_error() {
                Some(libc::ENODATA) => Ok(None),
                _ => Err(error),
            };
        }
        value.truncate(len as usize);
        Ok(Some(value))
    }

    /// Reaps the child `pid`: its wait status, or `None` when `no_hang` and it still runs.
    pub fn wait4(pid: i32, no_hang: bool) -> io::Result<Option<i32>> {
        let mut status: libc::c_int = 0;
        let flags = if no_hang { libc::WNOHANG } else { 0 };
        loop {
            // SAFETY: `status` is valid for writes for the duration of the call; a null `rusage`
            // pointer asks for no resource usage.
            let ret = unsafe { libc::wait4(pid, &mut status, flags, std::ptr::null_mut()) };
            if ret == -1 {
                let error = io::Error::last_os_error();
                if error.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(error);
            }
            return Ok((ret != 0).then_some(status));
        }
    }
}
