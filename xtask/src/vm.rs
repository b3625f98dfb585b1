//! `cargo xtask vm-test [--kernel NAME|PATH [--modules DIR]]... [--scenario NAME]...
//! [--lane NAME|none]... [--all] [--timeout S] [--release]`: boots other kernels under QEMU and
//! runs ovl's scenarios inside them as root, natively and under ABI lanes.
//!
//! The host side, in order:
//! 1. the corpus (`target/vm/corpus`): the conformance images built and saved by a private
//!    dockerd 20.10, the merged tree of each as Docker shows it in a running container, the
//!    `docker diff` and committed tree of one change (`vm-tests/change.sh`), and generated deep
//!    images; kept between runs while its inputs are unchanged;
//! 2. each kernel: a built-in one is a Debian package fetched with `apt-get download` and unpacked
//!    with `dpkg-deb -x` into `target/vm/kernels/` (nothing is installed into the host's /boot);
//!    packages of another Debian release than the host's come through a private apt
//!    configuration under `target/vm/apt/<suite>/` that points at the host's own Debian mirror
//!    (the host's /etc/apt is only read); `--kernel PATH --modules DIR` takes any other kernel
//!    image and its `lib/modules/<release>`;
//! 3. an initramfs: static busybox, `vm-tests/init.sh` as /init, the ovl binary, the glibc 2.17
//!    dist binary (`cargo xtask dist`) for the lanes, and this xtask binary (the guest runner,
//!    `vm_guest.rs`) with their shared libraries, `mkfs.ext4` and `mkfs.xfs` with theirs, the
//!    kernel's modules for virtio, ext4, xfs, loop and overlay (with their dependencies,
//!    decompressed), the corpus and the guest's `config.json`;
//! 4. `qemu-system-x86_64` with KVM when a probe guest really boots with it, TCG otherwise, three
//!    scratch disk files on virtio, the console on the first serial port and results on the
//!    second: one `PASS|FAIL|SKIP <kernel>[/<lane>]/<scenario> (<seconds> s) <detail>` line per
//!    scenario and run, and a `SUMMARY` line. A guest that does not power off within the timeout
//!    fails the run;
//! 5. the matrix: kernel × lane × scenario with the outcome and seconds, and each kernel's boot
//!    time, printed and written to `target/vm/matrix.md`.
//!
//! One boot per kernel runs every scenario natively first, then once per lane (the `abi-lane`
//! seccomp filter on every `ovl` command: the system calls of CentOS 7's, RHEL 8's or Ubuntu
//! 20.04's kernel), each run on freshly formatted filesystems.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::{cargo, hex, is_root, run, workspace_root};

mod corpus;
mod initramfs;
mod kernels;
mod qemu;

pub use corpus::dump_name;
use corpus::*;
use initramfs::*;
use kernels::*;
use qemu::*;

/// The scenarios, in the order the guest runs them.
pub const SCENARIOS: [&str; 6] = [
    "no-overlay-module",
    "conformance",
    "filesystems",
    "centos7-trap",
    "deep",
    "probe",
];

/// Built-in kernels: a name, the Debian package names that provide it (the newest match of the
/// pattern among the packages apt knows), where apt finds them, and the lanes run on it by
/// default. The order is the order they boot in: oldest first.
struct Builtin {
    name: &'static str,
    /// An `apt-cache search --names-only` regular expression.
    pattern: &'static str,
    /// `None`: the host's own apt sources. `Some(suite)`: another Debian release, through a
    /// private apt configuration with the host's Debian mirror and that suite (plus
    /// `<suite>-security` where the host has a security source).
    suite: Option<&'static str>,
    /// Lanes run on this kernel when no `--lane` or `--all` says otherwise.
    lanes: &'static [&'static str],
}

/// The lanes of the Docker 20.10 hosts, run on the kernels old enough to matter for them: the
/// lanes take system calls away, so a kernel newer than 6.1 adds nothing to them but time.
const OLD_HOST_LANES: [&str; 3] = ["centos7", "rhel8", "ubuntu20.04"];

const BUILTIN_KERNELS: [Builtin; 3] = [
    Builtin {
        name: "debian-5.10",
        pattern: r"^linux-image-5\.10\.0-[0-9]+-amd64$",
        suite: Some("bullseye"),
        lanes: &OLD_HOST_LANES,
    },
    Builtin {
        name: "debian-6.1",
        pattern: r"^linux-image-6\.1\.0-[0-9]+-amd64$",
        suite: None,
        lanes: &OLD_HOST_LANES,
    },
    Builtin {
        name: "debian-6.12",
        pattern: r"^linux-image-6\.12\.[0-9]+\+deb12-amd64$",
        suite: None,
        lanes: &[],
    },
];

/// Modules the guest loads, in this order, each after its dependencies. `crc32c_generic` is
/// there because ext4 and xfs ask the crypto API for crc32c, which would otherwise need a
/// modprobe the guest does not have.
const BASE_MODULES: [&str; 6] = [
    "virtio_pci",
    "virtio_blk",
    "crc32c_generic",
    "ext4",
    "xfs",
    "loop",
];
/// Wanted where the kernel has them: other kernels name their crc32c driver otherwise or build
/// it in.
const OPTIONAL_MODULES: [&str; 1] = ["crc32c_generic"];
/// Loaded after the `no-overlay-module` scenario.
const OVERLAY_MODULES: [&str; 1] = ["overlay"];

/// The shell change both Docker and the guest make in a container of `ovl-changes:1`.
pub const CHANGE_SCRIPT: &str = include_str!("../../vm-tests/change.sh");
const INIT_SCRIPT: &str = include_str!("../../vm-tests/init.sh");

/// The deep images: tags `deep:<n>` for these prefix lengths of one chain of generated layers.
pub const DEEP_PREFIXES: std::ops::RangeInclusive<usize> = 100..=160;
pub const DEEP_MAX: usize = 500;

const GUEST_MEMORY_MB: u32 = 2048;
const DISK_SIZE: u64 = 1 << 30;
/// One guest runs every scenario natively and then once per lane: four runs of about a minute
/// each under TCG on the old kernels, with a wide margin for a loaded host.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3000);
const KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(20);
/// Where the guest finds the dist binary the lanes run.
pub(crate) const GUEST_LANE_OVL: &str = "/bin/ovl-dist";
/// A private apt configuration's package lists are refreshed when older than this.
const APT_LISTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug)]
struct KernelArg {
    spec: String,
    modules: Option<PathBuf>,
}

/// Which lanes run after the native run.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LaneChoice {
    /// Each built-in kernel's own list (`Builtin::lanes`); none on a `--kernel PATH`.
    Default,
    /// Every lane on every kernel (`--all`).
    All,
    /// Exactly these on every kernel (`--lane NAME`...; empty with `--lane none`).
    Only(Vec<&'static str>),
}

#[derive(Debug)]
struct Options {
    kernels: Vec<KernelArg>,
    scenarios: Vec<String>,
    lanes: LaneChoice,
    timeout: Duration,
    release: bool,
    /// Guests that run at once; `None`: one per host core, at most one per kernel.
    jobs: Option<usize>,
}

const USAGE: &str =
    "cargo xtask vm-test [--kernel NAME|PATH [--modules DIR]]... [--scenario NAME]... \
                     [--lane NAME|none]... [--all] [--jobs N] [--timeout SECONDS] [--release]";

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        kernels: Vec::new(),
        scenarios: Vec::new(),
        lanes: LaneChoice::Default,
        timeout: DEFAULT_TIMEOUT,
        release: false,
        jobs: None,
    };
    let mut all = false;
    let mut only: Option<Vec<&'static str>> = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .cloned()
                .with_context(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--kernel" => options.kernels.push(KernelArg {
                spec: value("--kernel")?,
                modules: None,
            }),
            "--modules" => {
                let dir = PathBuf::from(value("--modules")?);
                let last = options
                    .kernels
                    .last_mut()
                    .context("--modules belongs after the --kernel PATH it is for")?;
                last.modules = Some(dir);
            }
            "--scenario" => {
                let name = value("--scenario")?;
                ensure!(
                    SCENARIOS.contains(&name.as_str()),
                    "unknown scenario {name:?}: the scenarios are {}",
                    SCENARIOS.join(", ")
                );
                options.scenarios.push(name);
            }
            "--lane" => {
                let name = value("--lane")?;
                let lanes = only.get_or_insert_with(Vec::new);
                if name != "none" {
                    let lane = abi_lane::lane(&name).with_context(|| {
                        format!(
                            "unknown lane {name:?}: the lanes are {}, or none",
                            abi_lane::LANES.map(|lane| lane.name).join(", ")
                        )
                    })?;
                    if !lanes.contains(&lane.name) {
                        lanes.push(lane.name);
                    }
                }
            }
            "--all" => all = true,
            "--timeout" => {
                let secs: u64 = value("--timeout")?
                    .parse()
                    .context("--timeout takes seconds")?;
                options.timeout = Duration::from_secs(secs);
            }
            "--release" => options.release = true,
            "--jobs" => {
                let jobs: usize = value("--jobs")?
                    .parse()
                    .context("--jobs takes a number of guests")?;
                ensure!(jobs > 0, "--jobs takes at least 1");
                options.jobs = Some(jobs);
            }
            other => bail!("unknown vm-test argument {other:?}: {USAGE}"),
        }
    }
    options.lanes = match (all, only) {
        (true, Some(_)) => bail!("--all runs every lane: it does not go with --lane"),
        (true, None) => LaneChoice::All,
        (false, Some(lanes)) => LaneChoice::Only(lanes),
        (false, None) => LaneChoice::Default,
    };
    if options.kernels.is_empty() {
        options.kernels = BUILTIN_KERNELS
            .iter()
            .map(|kernel| KernelArg {
                spec: kernel.name.to_string(),
                modules: None,
            })
            .collect();
    }
    if options.scenarios.is_empty() {
        options.scenarios = SCENARIOS.iter().map(|name| name.to_string()).collect();
    }
    Ok(options)
}

pub fn vm_test(args: &[String]) -> Result<()> {
    let options = parse(args)?;
    if !is_root() {
        bail!("vm-test starts a private dockerd for its corpus: run it as root");
    }
    let whole = Instant::now();
    crate::deps()?;
    let root = workspace_root();
    let vm_dir = root.join("target/vm");
    fs::create_dir_all(&vm_dir)?;

    let profile = if options.release { "release" } else { "debug" };
    let mut build = Command::new(cargo());
    build.current_dir(&root).args(["build", "-p", "ovl"]);
    if options.release {
        build.arg("--release");
    }
    run(&mut build)?;
    let ovl = root.join("target").join(profile).join("ovl");
    let runner = std::env::current_exe().context("finding the xtask binary")?;

    let started = Instant::now();
    let corpus = corpus(&vm_dir)?;
    eprintln!("vm-test: corpus ready in {:.1?}", started.elapsed());

    let kernels = options
        .kernels
        .iter()
        .map(|arg| resolve_kernel(&vm_dir, arg, &options.lanes))
        .collect::<Result<Vec<_>>>()?;
    let lane_ovl = if kernels.iter().any(|kernel| !kernel.lanes.is_empty()) {
        Some(lane_binary()?)
    } else {
        None
    };

    let common = vm_dir.join("common.cpio.gz");
    common_initramfs(
        &vm_dir,
        &ovl,
        lane_ovl.as_deref(),
        &runner,
        &corpus,
        &common,
    )?;
    let accel = accelerator(&vm_dir, &kernels[0])?;
    eprintln!("vm-test: accelerator {accel}");

    let jobs = options.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1)
            .min(kernels.len())
    });
    let outcomes = boot_all(&vm_dir, &kernels, &common, accel, &options, jobs);
    let mut failed = Vec::new();
    let mut summary = Vec::new();
    let mut reports = Vec::new();
    for (kernel, outcome) in kernels.iter().zip(outcomes) {
        let outcome = outcome.with_context(|| format!("kernel {}", kernel.name));
        match outcome {
            Ok(report) => {
                if !report.ok() {
                    failed.push(kernel.name.clone());
                }
                summary.push(report.line(&kernel.name));
                reports.push((kernel, report));
            }
            Err(err) => {
                eprintln!("vm-test: {err:#}");
                failed.push(kernel.name.clone());
                summary.push(format!("{}: error: {err:#}", kernel.name));
            }
        }
    }
    let matrix = Matrix {
        accel,
        jobs,
        native_ovl: format!("{profile} build"),
        lane_ovl: lane_ovl.as_ref().map(|path| path.display().to_string()),
        scenarios: &options.scenarios,
        reports: &reports,
        whole: whole.elapsed(),
    }
    .render();
    println!("vm-test summary ({accel}):");
    for line in &summary {
        println!("  {line}");
    }
    println!();
    print!("{matrix}");
    let matrix_path = vm_dir.join("matrix.md");
    fs::write(&matrix_path, &matrix)?;
    println!("(also in {})", matrix_path.display());
    if !failed.is_empty() {
        bail!("vm-test failed on {}", failed.join(", "));
    }
    Ok(())
}

/// The ovl binary the lanes run: the glibc 2.17 release build of `cargo xtask dist`, the binary
/// users of the old hosts get (built, or brought up to date, here).
fn lane_binary() -> Result<PathBuf> {
    crate::dist::dist_binary().context("building target/dist/ovl for the lanes (cargo xtask dist)")
}

// ------------------------------------------------------------------------------------------------
// Kernels

#[derive(Debug)]
struct Kernel {
    name: String,
    vmlinuz: PathBuf,
    /// `lib/modules/<release>`.
    modules: PathBuf,
    release: String,
    config: Option<PathBuf>,
    /// The lanes the guest runs after the native run, in this order.
    lanes: Vec<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deb822_sources_give_each_uri_with_its_suites_and_key() {
        let text = "Types: deb\n# a comment\nURIs: http://deb.debian.org/debian\nSuites: bookworm \
                    bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/k.gpg\n\n\
                    Types: deb-src\nURIs: http://src.example\nSuites: bookworm\n\n\
                    Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: \
                    bookworm-security\nComponents: main\nEnabled: no\n";
        let entries = parse_deb822_sources(text, Path::new("x.sources"));
        assert_eq!(entries.len(), 1);
        let (source, suites) = &entries[0];
        assert_eq!(source.uri, "http://deb.debian.org/debian");
        assert_eq!(
            source.signed_by.as_deref(),
            Some("/usr/share/keyrings/k.gpg")
        );
        assert_eq!(suites, &["bookworm", "bookworm-updates"]);
    }

    #[test]
    fn one_line_sources_keep_signed_by_and_skip_deb_src() {
        let text = "deb [arch=amd64 signed-by=/k.gpg] http://mirror/debian bookworm main\n\
                    deb-src http://mirror/debian bookworm main\n\
                    # deb http://old/debian bookworm main\n\
                    deb\thttp://security/debian-security bookworm-security main # trailing\n";
        let entries = parse_one_line_sources(text, Path::new("sources.list"));
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].0.uri, "http://mirror/debian");
        assert_eq!(entries[0].0.signed_by.as_deref(), Some("/k.gpg"));
        assert_eq!(entries[0].1, ["bookworm"]);
        assert_eq!(entries[1].0.uri, "http://security/debian-security");
        assert_eq!(entries[1].1, ["bookworm-security"]);
    }

    #[test]
    fn candidate_origin_names_the_suite_of_the_candidate() {
        let policy = "linux-image-5.10.0-46-amd64:\n  Installed: (none)\n  Candidate: \
                      5.10.262-1\n  Version table:\n     5.10.262-1 500\n        500 \
                      http://deb.debian.org/debian-security bullseye-security/main amd64 Packages\n";
        assert_eq!(
            candidate_origin(policy),
            "5.10.262-1 from http://deb.debian.org/debian-security bullseye-security/main amd64 \
             Packages"
        );
    }

    #[test]
    fn result_lines_name_the_lane_and_the_seconds() {
        let mut report = Report::default();
        for line in [
            "BOOT 3.71 s to the runner",
            "PASS debian-6.1/deep (11.8 s) deep:122 mounts",
            "FAIL debian-6.1/centos7/probe (2.5 s) ext4: no",
            "SKIP debian-6.1/rhel8/centos7-trap (0.4 s) cannot",
            "SUMMARY passed=1 failed=1 skipped=1",
        ] {
            report.record("debian-6.1", line);
        }
        assert_eq!((report.passed, report.failed, report.skipped), (1, 1, 1));
        assert!(report.complete && !report.ok());
        assert_eq!(report.boot_secs, Some(3.71));
        let cells: Vec<(&str, &str, &str, Option<f64>)> = report
            .cells
            .iter()
            .map(|cell| {
                (
                    cell.lane.as_str(),
                    cell.scenario.as_str(),
                    cell.word.as_str(),
                    cell.secs,
                )
            })
            .collect();
        assert_eq!(
            cells,
            [
                (NATIVE, "deep", "PASS", Some(11.8)),
                ("centos7", "probe", "FAIL", Some(2.5)),
                ("rhel8", "centos7-trap", "SKIP", Some(0.4)),
            ]
        );
    }

    #[test]
    fn lanes_default_per_kernel_and_are_chosen_by_options() {
        let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(parse(&[]).map(|o| o.lanes).ok(), Some(LaneChoice::Default));
        assert_eq!(
            parse(&args(&["--all"])).map(|o| o.lanes).ok(),
            Some(LaneChoice::All)
        );
        assert_eq!(
            parse(&args(&["--lane", "none"])).map(|o| o.lanes).ok(),
            Some(LaneChoice::Only(Vec::new()))
        );
        assert_eq!(
            parse(&args(&["--lane", "rhel8", "--lane", "centos7"]))
                .map(|o| o.lanes)
                .ok(),
            Some(LaneChoice::Only(vec!["rhel8", "centos7"]))
        );
        assert!(parse(&args(&["--lane", "centos6"])).is_err());
        assert!(parse(&args(&["--all", "--lane", "rhel8"])).is_err());
        let old = BUILTIN_KERNELS.iter().find(|k| k.name == "debian-5.10");
        assert_eq!(old.map(|k| k.lanes), Some(&OLD_HOST_LANES[..]));
        let new = BUILTIN_KERNELS.iter().find(|k| k.name == "debian-6.12");
        assert!(new.is_some_and(|k| k.lanes.is_empty()));
    }
}
