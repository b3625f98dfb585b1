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
use ovl_tests::tar_builder::{octal_field, Header, TarBuilder};
use ovl_tests::{
    base_rootfs_tar, check_root_consistent, hex, image_config, layerdb, require_dockerd,
    require_root, scratch_path, sha256_digest, Dockerd, Failures, Ovl, Scratch,
};
use sha2::{Digest, Sha256};

mod archive;
mod case;
mod cases_archive;
mod cases_content;
mod cases_entries;
mod docker;
mod expect;
mod sys;
mod world;

use archive::*;
use case::*;
use cases_archive::*;
use cases_content::*;
use cases_entries::*;
use docker::*;
use expect::*;
use world::*;

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

const TEST_LOAD: &str = "hostile_archives_are_rejected_or_contained_needs_root";

#[test]
fn hostile_archives_are_rejected_or_contained_needs_root() {
    run_in_world(TEST_LOAD, |env| load_cases(&env.base), true);
}

const TEST_IMPORT: &str = "hostile_rootfs_tarballs_are_rejected_or_contained_needs_root";

#[test]
fn hostile_rootfs_tarballs_are_rejected_or_contained_needs_root() {
    run_in_world(TEST_IMPORT, |_| import_cases(), false);
}

/// Runs the cases `make_cases` gives in a fresh world, each checked; with `verify_content`,
/// `fsck --verify-content` must then find every contained layer reassembling to its DiffID.
fn run_in_world(
    test_name: &str,
    make_cases: impl FnOnce(&World) -> Vec<Case>,
    verify_content: bool,
) {
    if !require_root(test_name) {
        return;
    }
    let env = World::new();
    let mut failures = Failures::default();
    let started = Instant::now();
    let cases = make_cases(&env);
    eprintln!(
        "timing: generating {} cases: {:.1?}",
        cases.len(),
        started.elapsed()
    );
    for case in &cases {
        failures.check(&format!("{}: {}", case.name, case.what), env.run_case(case));
    }
    if verify_content {
        failures.check(
            "every layer that was contained reassembles to its DiffID (fsck --verify-content)",
            env.fsck(true),
        );
    }
    eprintln!("timing: {test_name}: {:.1?}", started.elapsed());
    failures.finish();
}

const TEST_DOCKER: &str = "hostile_archives_in_docker_needs_root_and_dockerd";

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
