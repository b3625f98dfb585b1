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

fn resolve_kernel(vm_dir: &Path, arg: &KernelArg, lanes: &LaneChoice) -> Result<Kernel> {
    let builtin = BUILTIN_KERNELS.iter().find(|k| k.name == arg.spec);
    let lanes = match lanes {
        LaneChoice::Default => builtin
            .map(|builtin| builtin.lanes.to_vec())
            .unwrap_or_default(),
        LaneChoice::All => abi_lane::LANES.map(|lane| lane.name).to_vec(),
        LaneChoice::Only(lanes) => lanes.clone(),
    };
    if let Some(builtin) = builtin {
        ensure!(
            arg.modules.is_none(),
            "--modules is for --kernel PATH, not the built-in {}",
            builtin.name
        );
        let mut kernel = builtin_kernel(vm_dir, builtin)?;
        kernel.lanes = lanes;
        return Ok(kernel);
    }
    let vmlinuz = PathBuf::from(&arg.spec);
    ensure!(
        vmlinuz.is_file(),
        "--kernel {}: neither a built-in kernel ({}) nor a kernel image file",
        arg.spec,
        BUILTIN_KERNELS
            .iter()
            .map(|k| k.name)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let modules = arg.modules.clone().with_context(|| {
        format!(
            "--kernel {} needs --modules <lib/modules/RELEASE>",
            arg.spec
        )
    })?;
    let release = modules
        .file_name()
        .and_then(|name| name.to_str())
        .map(str::to_string)
        .with_context(|| format!("--modules {} names no release", modules.display()))?;
    let config = vmlinuz
        .parent()
        .map(|dir| dir.join(format!("config-{release}")))
        .filter(|path| path.is_file());
    let file_name = vmlinuz
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Kernel {
        name: file_name,
        vmlinuz,
        modules,
        release,
        config,
        lanes,
    })
}

/// The newest package matching the built-in's pattern, downloaded and unpacked once.
fn builtin_kernel(vm_dir: &Path, builtin: &Builtin) -> Result<Kernel> {
    let kernels_dir = vm_dir.join("kernels");
    fs::create_dir_all(&kernels_dir)?;
    // Another release's packages come through a private apt configuration; the host's own
    // through the host's apt.
    let apt_config = match builtin.suite {
        Some(suite) => match private_apt(vm_dir, suite) {
            Ok(config) => Some(config),
            Err(err) => {
                eprintln!("vm-test: no apt source for {suite}: {err:#}");
                None
            }
        },
        None => None,
    };
    let apt = |program: &str| {
        let mut command = Command::new(program);
        if let Some(config) = &apt_config {
            command.env("APT_CONFIG", config);
        }
        command
    };
    let searched = match (builtin.suite, &apt_config) {
        // Without its private configuration, the host's apt would find the host's packages.
        (Some(_), None) => None,
        _ => Some(
            apt("apt-cache")
                .args(["search", "--names-only", builtin.pattern])
                .output()
                .context("running apt-cache search")?,
        ),
    };
    let mut packages: Vec<String> = searched
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect();
    packages.sort_by_key(|name| version_key(name));
    let package = match packages.last() {
        Some(package) => package.clone(),
        None => {
            // Offline: a package unpacked by an earlier run.
            let mut unpacked: Vec<String> = fs::read_dir(&kernels_dir)?
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".unpacked"))
                .map(|name| name.trim_end_matches(".unpacked").to_string())
                .filter(|name| {
                    let prefix = builtin.pattern.split(r"\.").next().unwrap_or_default();
                    name.starts_with(prefix.trim_start_matches('^'))
                })
                .collect();
            unpacked.sort_by_key(|name| version_key(name));
            unpacked.pop().with_context(|| {
                let source = match builtin.suite {
                    Some(suite) => format!(
                        "the private apt configuration for {suite} (target/vm/apt/{suite}) found \
                         none"
                    ),
                    None => "is bookworm(-security) in the apt sources, and `apt-get update` \
                             done?"
                        .to_string(),
                };
                format!(
                    "no Debian package matches {} for kernel {} ({source})",
                    builtin.pattern, builtin.name
                )
            })?
        }
    };
    let dir = kernels_dir.join(format!("{package}.unpacked"));
    if !dir.join("boot").is_dir() {
        let download = kernels_dir.join("download");
        let _ = fs::remove_dir_all(&download);
        fs::create_dir_all(&download)?;
        if let Ok(policy) = apt("apt-cache").args(["policy", &package]).output() {
            let origin = candidate_origin(&String::from_utf8_lossy(&policy.stdout));
            eprintln!("vm-test: apt-get download {package} ({origin})");
        }
        run(apt("apt-get")
            .current_dir(&download)
            // The download directory is root's: apt's sandbox user could not write to it.
            .args(["-o", "APT::Sandbox::User=root", "download", "-qq", &package]))?;
        let deb = fs::read_dir(&download)?
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.path())
            .find(|path| path.extension().is_some_and(|ext| ext == "deb"))
            .with_context(|| format!("apt-get download {package} left no .deb"))?;
        let partial = kernels_dir.join(format!("{package}.partial"));
        let _ = fs::remove_dir_all(&partial);
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&partial))?;
        fs::rename(&partial, &dir)?;
        fs::remove_dir_all(&download)?;
    }
    let boot = dir.join("boot");
    let vmlinuz = fs::read_dir(&boot)?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("vmlinuz-"))
        })
        .with_context(|| format!("no vmlinuz-* in {}", boot.display()))?;
    let release = vmlinuz
        .file_name()
        .map(|name| {
            name.to_string_lossy()
                .trim_start_matches("vmlinuz-")
                .to_string()
        })
        .unwrap_or_default();
    let config = boot.join(format!("config-{release}"));
    Ok(Kernel {
        name: builtin.name.to_string(),
        modules: dir.join("lib/modules").join(&release),
        vmlinuz,
        config: config.is_file().then_some(config),
        release,
        lanes: Vec::new(),
    })
}

/// The candidate version of an `apt-cache policy` output and the source it comes from, as
/// `5.10.262-1 from http://deb.debian.org/debian-security bullseye-security/main amd64 Packages`.
fn candidate_origin(policy: &str) -> String {
    let candidate = policy
        .lines()
        .find_map(|line| line.trim().strip_prefix("Candidate:"))
        .map(str::trim)
        .unwrap_or("?");
    let mut lines = policy.lines().map(str::trim);
    let origin = lines
        .by_ref()
        .find(|line| line.trim_start_matches("*** ").starts_with(candidate))
        .and_then(|_| lines.next())
        .map(|line| {
            // "500 http://... suite/component arch Packages": the priority goes.
            line.split_once(' ').map_or(line, |(_, rest)| rest)
        })
        .unwrap_or("?");
    format!("{candidate} from {origin}")
}

// ------------------------------------------------------------------------------------------------
// A private apt configuration

/// A Debian archive the host's apt uses: its URI and the `Signed-By` value that goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostSource {
    uri: String,
    signed_by: Option<String>,
    /// The file it was found in, for messages.
    file: PathBuf,
}

/// Sets up `target/vm/apt/<suite>/` — its own `apt.conf`, sources, package lists, cache and
/// dpkg status — for `suite` from the host's own Debian mirror, refreshes its lists when they
/// are missing, stale or for other sources, and returns the `APT_CONFIG` file to run apt with.
/// The host's /etc/apt is only read: `apt.conf` points every directory apt reads or writes,
/// configuration parts and preferences included, into the private directory.
fn private_apt(vm_dir: &Path, suite: &str) -> Result<PathBuf> {
    let (archive, security) = host_debian_sources()?;
    let dir = vm_dir.join("apt").join(suite);
    for sub in [
        "apt.conf.d",
        "preferences.d",
        "sources.list.d",
        "state/lists/partial",
        "cache/archives/partial",
    ] {
        fs::create_dir_all(dir.join(sub))?;
    }
    let status = dir.join("state/status");
    if !status.exists() {
        fs::write(&status, "")?;
    }
    let mut sources = format!(
        "# Written by `cargo xtask vm-test`: the host's Debian mirror ({}) with suite {suite}.\n",
        archive.file.display()
    );
    let mut entries = vec![(archive, suite.to_string())];
    if let Some(security) = security {
        entries.push((security, format!("{suite}-security")));
    }
    for (source, suite) in &entries {
        sources.push_str(&format!(
            "\nTypes: deb\nURIs: {}\nSuites: {suite}\nComponents: main\n",
            source.uri
        ));
        if let Some(signed_by) = &source.signed_by {
            sources.push_str(&format!("Signed-By: {signed_by}\n"));
        }
    }
    let sources_file = dir.join(format!("sources.list.d/{suite}.sources"));
    let path = |sub: &str| dir.join(sub).display().to_string();
    let config = [
        ("Dir::Etc::Main", path("apt.conf")),
        ("Dir::Etc::Parts", path("apt.conf.d")),
        ("Dir::Etc::SourceList", path("sources.list")),
        ("Dir::Etc::SourceParts", path("sources.list.d")),
        ("Dir::Etc::Preferences", path("preferences")),
        ("Dir::Etc::PreferencesParts", path("preferences.d")),
        ("Dir::State", path("state")),
        ("Dir::State::Lists", path("state/lists")),
        ("Dir::State::Status", path("state/status")),
        ("Dir::Cache", path("cache")),
        // The package lists only: no translations.
        ("Acquire::Languages", "none".to_string()),
        // Downloads go to directories root owns; apt would otherwise warn that its sandbox
        // user cannot write there, and then download as root all the same.
        ("APT::Sandbox::User", "root".to_string()),
    ]
    .iter()
    .map(|(key, value)| format!("{key} \"{value}\";\n"))
    .collect::<String>();
    let apt_conf = dir.join("apt.conf");
    let changed = fs::read_to_string(&sources_file).ok().as_deref() != Some(sources.as_str())
        || fs::read_to_string(&apt_conf).ok().as_deref() != Some(config.as_str());
    fs::write(&sources_file, &sources)?;
    fs::write(&apt_conf, &config)?;
    let updated = dir.join("state/updated");
    let fresh = fs::metadata(&updated)
        .and_then(|meta| meta.modified())
        .ok()
        .and_then(|time| time.elapsed().ok())
        .is_some_and(|age| age < APT_LISTS_MAX_AGE);
    if changed || !fresh {
        let _ = fs::remove_file(&updated);
        eprintln!(
            "vm-test: apt-get update of the private {suite} sources ({})",
            sources_file.display()
        );
        let status = Command::new("apt-get")
            .env("APT_CONFIG", &apt_conf)
            .args(["update", "-qq"])
            .status()
            .context("running apt-get update")?;
        if status.success() {
            fs::write(&updated, "")?;
        } else {
            // Offline: older lists, or a package unpacked by an earlier run, may still do.
            eprintln!("vm-test: apt-get update of the private {suite} sources failed: {status}");
        }
    }
    Ok(apt_conf)
}

/// The host's Debian archive and security archive: the sources whose suite is the host's own
/// release (`VERSION_CODENAME` of /etc/os-release) and `<codename>-security`, from
/// /etc/apt/sources.list and the `.list` and `.sources` files of /etc/apt/sources.list.d.
fn host_debian_sources() -> Result<(HostSource, Option<HostSource>)> {
    let os_release = fs::read_to_string("/etc/os-release").unwrap_or_default();
    let codename = os_release
        .lines()
        .find_map(|line| line.strip_prefix("VERSION_CODENAME="))
        .map(|value| value.trim_matches('"').to_string())
        .filter(|value| !value.is_empty())
        .context("/etc/os-release names no VERSION_CODENAME: is the host Debian?")?;
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut parts: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.path())
            .filter(|path| {
                path.extension()
                    .is_some_and(|ext| ext == "list" || ext == "sources")
            })
            .collect();
        parts.sort();
        files.extend(parts);
    }
    let mut entries = Vec::new();
    for file in &files {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        if file.extension().is_some_and(|ext| ext == "sources") {
            entries.extend(parse_deb822_sources(&text, file));
        } else {
            entries.extend(parse_one_line_sources(&text, file));
        }
    }
    let find = |suite: &str| {
        entries
            .iter()
            .find(|(_, suites)| suites.iter().any(|s| s == suite))
            .map(|(source, _)| source.clone())
    };
    let archive = find(&codename).with_context(|| {
        format!(
            "no `deb` source with suite {codename} in {}: the host's Debian mirror is needed",
            files
                .iter()
                .map(|file| file.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    Ok((archive, find(&format!("{codename}-security"))))
}

/// `deb [options] URI SUITE COMPONENT...` lines: each source with its suites.
fn parse_one_line_sources(text: &str, file: &Path) -> Vec<(HostSource, Vec<String>)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        let Some(rest) = line
            .strip_prefix("deb")
            .filter(|rest| rest.starts_with([' ', '\t']))
        else {
            continue;
        };
        let rest = rest.trim_start();
        let (options, rest) = match rest.strip_prefix('[') {
            Some(bracketed) => match bracketed.split_once(']') {
                Some((options, rest)) => (options, rest),
                None => continue,
            },
            None => ("", rest),
        };
        let signed_by = options
            .split_whitespace()
            .find_map(|option| option.strip_prefix("signed-by="))
            .map(str::to_string);
        let mut fields = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (fields.next(), fields.next()) else {
            continue;
        };
        out.push((
            HostSource {
                uri: uri.to_string(),
                signed_by,
                file: file.to_path_buf(),
            },
            vec![suite.to_string()],
        ));
    }
    out
}

/// deb822 stanzas (`Types:`, `URIs:`, `Suites:`, `Signed-By:`, `Enabled:`): each URI with the
/// stanza's suites. A multi-line `Signed-By` (an inline key) is kept with its continuation lines.
fn parse_deb822_sources(text: &str, file: &Path) -> Vec<(HostSource, Vec<String>)> {
    let mut out = Vec::new();
    let uncommented: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .collect();
    for stanza in uncommented.split(|line| line.trim().is_empty()) {
        let mut fields: BTreeMap<String, String> = BTreeMap::new();
        let mut last: Option<String> = None;
        for line in stanza {
            if line.starts_with([' ', '\t']) {
                if let Some(key) = &last {
                    if let Some(value) = fields.get_mut(key) {
                        value.push('\n');
                        value.push_str(line);
                    }
                }
                continue;
            }
            if let Some((key, value)) = line.split_once(':') {
                let key = key.trim().to_ascii_lowercase();
                fields.insert(key.clone(), value.trim().to_string());
                last = Some(key);
            }
        }
        let field = |key: &str| fields.get(key).map(String::as_str).unwrap_or_default();
        if !field("types").split_whitespace().any(|t| t == "deb")
            || field("enabled").eq_ignore_ascii_case("no")
        {
            continue;
        }
        let suites: Vec<String> = field("suites")
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let signed_by = fields.get("signed-by").cloned();
        for uri in field("uris").split_whitespace() {
            out.push((
                HostSource {
                    uri: uri.to_string(),
                    signed_by: signed_by.clone(),
                    file: file.to_path_buf(),
                },
                suites.clone(),
            ));
        }
    }
    out
}

/// Sorts package names by the numbers in them, so that `-56-` comes after `-9-`.
fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .filter_map(|part| part.parse().ok())
        .collect()
}

/// What the kernel's build config and release say it offers, for the guest to compare with what
/// `ovl info` finds by trying. `None` where the host cannot tell (no config file).
fn expectations(kernel: &Kernel) -> serde_json::Value {
    let numbers = version_key(&kernel.release);
    let (major, minor) = (
        numbers.first().copied().unwrap_or(0),
        numbers.get(1).copied().unwrap_or(0),
    );
    // The release is all there is to go on for system calls: `lowerdir+` came with 6.8
    // (fs/overlayfs/params.c), openat2 with 5.6.
    let lowerdir_plus = (major, minor) >= (6, 8);
    let openat2 = (major, minor) >= (5, 6);
    let config = kernel
        .config
        .as_ref()
        .and_then(|path| fs::read_to_string(path).ok());
    let option = |name: &str| -> Option<Option<String>> {
        let config = config.as_ref()?;
        let set = format!("{name}=");
        let unset = format!("# {name} is not set");
        for line in config.lines() {
            if let Some(value) = line.strip_prefix(&set) {
                return Some(Some(value.to_string()));
            }
            if line == unset {
                return Some(None);
            }
        }
        // Not mentioned at all: the option does not exist in this kernel.
        Some(Some("absent".to_string()))
    };
    let enabled = |name: &str| option(name).map(|value| value.as_deref() == Some("y"));
    json!({
        "lowerdir_plus": lowerdir_plus,
        "openat2": openat2,
        "xfs_v4": enabled("CONFIG_XFS_SUPPORT_V4"),
        // Docker uses naive diff when the kernel turns redirect_dir (or metacopy) on by default.
        "native_diff": match (enabled("CONFIG_OVERLAY_FS_REDIRECT_DIR"), enabled("CONFIG_OVERLAY_FS_METACOPY")) {
            (Some(redirect), Some(metacopy)) => Some(!redirect && !metacopy),
            _ => None,
        },
        // The `index` module parameter exists wherever the option exists, set or not.
        "index_param": option("CONFIG_OVERLAY_FS_INDEX").map(|value| value.as_deref() != Some("absent")),
    })
}

// ------------------------------------------------------------------------------------------------
// Modules

/// The modules to load, dependencies first: `(group, file name in the initramfs, bytes)`.
fn modules(kernel: &Kernel) -> Result<Vec<(&'static str, String, Vec<u8>)>> {
    let mut files = BTreeMap::new();
    index_modules(&kernel.modules.join("kernel"), &mut files)?;
    let builtin: BTreeSet<String> = fs::read_to_string(kernel.modules.join("modules.builtin"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.rsplit('/').next())
        .map(module_name)
        .collect();
    let mut loaded = BTreeSet::new();
    let mut out = Vec::new();
    for (group, names) in [
        ("base", &BASE_MODULES[..]),
        ("overlay", &OVERLAY_MODULES[..]),
    ] {
        for name in names {
            add_module(
                name,
                group,
                &files,
                &builtin,
                &mut loaded,
                &mut out,
                &kernel.modules,
            )?;
        }
    }
    Ok(out)
}

fn add_module(
    name: &str,
    group: &'static str,
    files: &BTreeMap<String, PathBuf>,
    builtin: &BTreeSet<String>,
    loaded: &mut BTreeSet<String>,
    out: &mut Vec<(&'static str, String, Vec<u8>)>,
    modules_dir: &Path,
) -> Result<()> {
    let name = name.replace('-', "_");
    if loaded.contains(&name) || builtin.contains(&name) {
        return Ok(());
    }
    let Some(path) = files.get(&name) else {
        if OPTIONAL_MODULES.contains(&name.as_str()) {
            return Ok(());
        }
        bail!(
            "module {name} is neither built into the kernel nor in {}",
            modules_dir.display()
        );
    };
    let bytes = decompress(path)?;
    loaded.insert(name.clone());
    for dep in modinfo(&bytes, "depends")
        .split(',')
        .filter(|dep| !dep.is_empty())
    {
        add_module(dep, group, files, builtin, loaded, out, modules_dir)?;
    }
    out.push((group, format!("{name}.ko"), bytes));
    Ok(())
}

fn module_name(file: &str) -> String {
    file.split(".ko")
        .next()
        .unwrap_or_default()
        .replace('-', "_")
}

fn index_modules(dir: &Path, files: &mut BTreeMap<String, PathBuf>) -> Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            index_modules(&path, files)?;
        } else {
            let file = entry.file_name().to_string_lossy().into_owned();
            if file.contains(".ko") {
                files.insert(module_name(&file), path);
            }
        }
    }
    Ok(())
}

fn decompress(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        Some("xz")
    } else if name.ends_with(".zst") {
        Some("zstd")
    } else if name.ends_with(".gz") {
        Some("gzip")
    } else {
        None
    };
    match tool {
        None => fs::read(path).with_context(|| format!("reading {}", path.display())),
        Some(tool) => {
            let out = Command::new(tool)
                .arg("-dc")
                .arg(path)
                .output()
                .with_context(|| format!("running {tool} -dc {}", path.display()))?;
            ensure!(
                out.status.success(),
                "{tool} -dc {} failed: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            Ok(out.stdout)
        }
    }
}

/// A `key=value` string of a module's `.modinfo` section (NUL-separated strings).
fn modinfo(bytes: &[u8], key: &str) -> String {
    let needle = format!("{key}=");
    bytes
        .split(|&b| b == 0)
        .find_map(|field| field.strip_prefix(needle.as_bytes()))
        .map(|value| String::from_utf8_lossy(value).into_owned())
        .unwrap_or_default()
}

// ------------------------------------------------------------------------------------------------
// The corpus

#[derive(Debug)]
struct Corpus {
    dir: PathBuf,
}

/// Builds `target/vm/corpus` unless its stamp says the inputs are unchanged.
fn corpus(vm_dir: &Path) -> Result<Corpus> {
    let dir = vm_dir.join("corpus");
    let mut stamp = Sha256::new();
    stamp.update(ovl_tests::SEED_DOCKERFILE);
    stamp.update(ovl_tests::CHANGES_DOCKERFILE);
    stamp.update(ovl_tests::deep_dockerfile());
    stamp.update(CHANGE_SCRIPT);
    stamp.update(format!("{DEEP_PREFIXES:?} {DEEP_MAX} v1"));
    stamp.update(fs::read(ovl_tests::BUSYBOX).context("reading /bin/busybox")?);
    let stamp = hex(&stamp.finalize());
    if fs::read_to_string(dir.join("stamp")).ok().as_deref() == Some(stamp.as_str()) {
        return Ok(Corpus { dir });
    }
    let partial = vm_dir.join("corpus.partial");
    let _ = fs::remove_dir_all(&partial);
    fs::create_dir_all(partial.join("expected"))?;
    docker_corpus(vm_dir, &partial)?;
    deep_corpus(&partial)?;
    fs::write(partial.join("stamp"), &stamp)?;
    let _ = fs::remove_dir_all(&dir);
    fs::rename(&partial, &dir)?;
    Ok(Corpus { dir })
}

/// Dump file name of an image tag.
pub fn dump_name(tag: &str) -> String {
    format!("{}.dump", tag.replace([':', '/'], "_"))
}

fn docker_corpus(vm_dir: &Path, out: &Path) -> Result<()> {
    let scratch = vm_dir.join("dockerd");
    if scratch.exists() {
        ovl_tests::unmount_below(&scratch);
        fs::remove_dir_all(&scratch)?;
    }
    let docker = ovl_tests::Dockerd::start(&scratch);
    let tags = ovl_tests::build_conformance_images(&docker);
    let mut save = vec!["save".to_string(), "-o".to_string()];
    save.push(out.join("conformance.tar").display().to_string());
    save.extend(tags.iter().cloned());
    docker.docker_ok(&save);
    docker.save("ovl-seed:1", &out.join("seed.tar"));
    let mut images = Vec::new();
    for tag in &tags {
        let dump = ovl_tests::docker_merged_dump(&docker, tag);
        fs::write(
            out.join("expected").join(dump_name(tag)),
            treedump::format(&dump),
        )?;
        images.push(tag.clone());
    }
    // The change, as `docker run` makes it: its diff and its commit's tree.
    docker.docker_ok([
        "run",
        "--name",
        "vm-change",
        "--network",
        "none",
        "ovl-changes:1",
        "/bin/sh",
        "-c",
        CHANGE_SCRIPT,
    ]);
    let diff = docker.docker_ok(["diff", "vm-change"]);
    fs::write(out.join("expected/change.diff"), diff)?;
    docker.docker_ok(["commit", "vm-change", "vm-committed:1"]);
    let committed = ovl_tests::docker_merged_dump(&docker, "vm-committed:1");
    fs::write(
        out.join("expected/committed.dump"),
        treedump::format(&committed),
    )?;
    docker.docker_ok(["rm", "-f", "vm-change"]);
    drop(docker);
    let _ = fs::remove_dir_all(&scratch);
    fs::write(
        out.join("images.json"),
        serde_json::to_vec_pretty(&json!({ "images": images }))?,
    )?;
    Ok(())
}

/// `deep-prefixes.tar`: `deep:<n>` for every n in [`DEEP_PREFIXES`], one chain of layers;
/// `deep-max.tar`: `deep:<DEEP_MAX>`, the kernel's stack limit.
fn deep_corpus(out: &Path) -> Result<()> {
    let layers: Vec<(String, Vec<u8>)> = (0..DEEP_MAX)
        .map(|i| (format!("layers/{i}.tar"), ovl_tests::deep_layer_tar(i)))
        .collect();
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|(_, bytes)| ovl_tests::sha256_digest(bytes))
        .collect();
    let prefixes: Vec<usize> = DEEP_PREFIXES.collect();
    let last = *prefixes.last().unwrap_or(&0);
    write_archive(
        &out.join("deep-prefixes.tar"),
        &layers[..last],
        &diff_ids,
        &prefixes,
    )?;
    write_archive(&out.join("deep-max.tar"), &layers, &diff_ids, &[DEEP_MAX])
}

/// A docker-archive with one manifest entry per prefix length, all sharing one chain of layers.
fn write_archive(
    path: &Path,
    layers: &[(String, Vec<u8>)],
    diff_ids: &[String],
    prefixes: &[usize],
) -> Result<()> {
    let mut out = std::io::BufWriter::new(fs::File::create(path)?);
    let mut member = |name: &str, mut bytes: &[u8]| {
        let size = bytes.len() as u64;
        crate::tar_member(&mut out, name, &mut bytes, size, 1_700_000_000)
    };
    for (name, bytes) in layers {
        member(name, bytes)?;
    }
    let mut manifest = Vec::new();
    for &n in prefixes {
        let config = ovl_tests::image_config(&diff_ids[..n]);
        let config_name = format!(
            "{}.json",
            ovl_tests::sha256_digest(&config).trim_start_matches("sha256:")
        );
        member(&config_name, &config)?;
        manifest.push(json!({
            "Config": config_name,
            "RepoTags": [format!("deep:{n}")],
            "Layers": layers[..n].iter().map(|(name, _)| name.clone()).collect::<Vec<_>>(),
        }));
    }
    member("manifest.json", &serde_json::to_vec(&manifest)?)?;
    out.write_all(&gotar::END_OF_ARCHIVE)?;
    out.flush()?;
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// The initramfs

/// The part every kernel shares: busybox, init, binaries and libraries, corpus. `lane_ovl`, the
/// binary the lanes run, goes in as [`GUEST_LANE_OVL`] when there are lanes.
fn common_initramfs(
    vm_dir: &Path,
    ovl: &Path,
    lane_ovl: Option<&Path>,
    runner: &Path,
    corpus: &Corpus,
    out: &Path,
) -> Result<()> {
    let stage = vm_dir.join("stage-common");
    let _ = fs::remove_dir_all(&stage);
    for dir in ["bin", "sbin", "etc", "root", "vm", "mnt", "tmp"] {
        fs::create_dir_all(stage.join(dir))?;
    }
    copy_exec(Path::new(ovl_tests::BUSYBOX), &stage.join("bin/busybox"))?;
    write_exec(&stage.join("init"), INIT_SCRIPT.as_bytes())?;
    let mut libs = BTreeSet::new();
    let mut binaries = vec![
        (ovl.to_path_buf(), "bin/ovl"),
        (runner.to_path_buf(), "bin/xtask"),
        (PathBuf::from("/usr/sbin/mke2fs"), "sbin/mkfs.ext4"),
        (PathBuf::from("/usr/sbin/mkfs.xfs"), "sbin/mkfs.xfs"),
    ];
    if let Some(lane_ovl) = lane_ovl {
        binaries.push((
            lane_ovl.to_path_buf(),
            GUEST_LANE_OVL.trim_start_matches('/'),
        ));
    }
    for (from, to) in binaries {
        copy_exec(&from, &stage.join(to))?;
        strip_debug(&stage.join(to));
        libs.extend(shared_libraries(&from)?);
    }
    for lib in &libs {
        let target = stage.join(lib.strip_prefix("/").unwrap_or(lib));
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::copy(lib, &target).with_context(|| format!("copying {}", lib.display()))?;
    }
    if Path::new("/etc/mke2fs.conf").exists() {
        fs::copy("/etc/mke2fs.conf", stage.join("etc/mke2fs.conf"))?;
    }
    fs::write(stage.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    fs::write(stage.join("etc/group"), "root:x:0:\n")?;
    copy_tree(&corpus.dir, &stage.join("vm/corpus"))?;
    fs::write(stage.join("vm/change.sh"), CHANGE_SCRIPT)?;
    cpio(&stage, out)?;
    fs::remove_dir_all(&stage)?;
    Ok(())
}

/// The per-kernel part: modules and the guest's config; appended to the common archive (the
/// kernel unpacks concatenated archives one after the other).
fn kernel_initramfs(
    vm_dir: &Path,
    kernel: &Kernel,
    common: &Path,
    options: &Options,
) -> Result<PathBuf> {
    let run_dir = vm_dir.join("run").join(&kernel.name);
    fs::create_dir_all(&run_dir)?;
    let stage = run_dir.join("stage");
    let _ = fs::remove_dir_all(&stage);
    fs::create_dir_all(stage.join("vm/modules"))?;
    let mut order = String::new();
    for (group, file, bytes) in modules(kernel)? {
        fs::write(stage.join("vm/modules").join(&file), bytes)?;
        order.push_str(&format!("{group} {file}\n"));
    }
    fs::write(stage.join("vm/modules/order"), order)?;
    let config = json!({
        "kernel": kernel.name,
        "release": kernel.release,
        "scenarios": options.scenarios,
        "lanes": kernel.lanes,
        "lane_ovl": GUEST_LANE_OVL,
        "expect": expectations(kernel),
        "deep_prefixes": [DEEP_PREFIXES.start(), DEEP_PREFIXES.end()],
        "deep_max": DEEP_MAX,
    });
    fs::write(
        stage.join("vm/config.json"),
        serde_json::to_vec_pretty(&config)?,
    )?;
    let own = run_dir.join("kernel.cpio.gz");
    cpio(&stage, &own)?;
    fs::remove_dir_all(&stage)?;
    let initramfs = run_dir.join("initramfs.cpio.gz");
    let mut bytes = fs::read(common)?;
    bytes.extend(fs::read(&own)?);
    fs::write(&initramfs, bytes)?;
    Ok(initramfs)
}

/// The absolute paths of the shared libraries `binary` loads (and its ELF interpreter), from ldd.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .with_context(|| format!("running ldd {}", binary.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut libs = Vec::new();
    for line in text.lines() {
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|path| path.starts_with('/')) {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

/// Drops the debug information of a staged binary (the debug ovl is about 95 MB with it, 15 MB
/// without): the guest unpacks every byte of the initramfs, under TCG slowly, and prints no
/// backtraces. Without `strip` the binary stays as it is.
fn strip_debug(binary: &Path) {
    let _ = Command::new("strip")
        .arg("--strip-debug")
        .arg(binary)
        .stderr(Stdio::null())
        .status();
}

fn copy_exec(from: &Path, to: &Path) -> Result<()> {
    fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    set_mode(to, 0o755)
}

fn write_exec(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes)?;
    set_mode(path, 0o755)
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// A gzip'ed newc cpio of `dir`, made with busybox cpio (no cpio package needed).
fn cpio(dir: &Path, out: &Path) -> Result<()> {
    let script = format!(
        "cd '{}' && find . | {} cpio -o -H newc 2>/dev/null | gzip -1 > '{}'",
        dir.display(),
        ovl_tests::BUSYBOX,
        out.display()
    );
    run(Command::new("sh").args(["-c", &script]))
}

// ------------------------------------------------------------------------------------------------
// QEMU

const QEMU: &str = "/usr/bin/qemu-system-x86_64";

/// `kvm` when a guest really boots with it (a present /dev/kvm is not enough: nested setups
/// fail on MSRs or hang), `tcg` otherwise.
fn accelerator(vm_dir: &Path, kernel: &Kernel) -> Result<&'static str> {
    if !Path::new("/dev/kvm").exists() {
        return Ok("tcg");
    }
    let dir = vm_dir.join("kvm-probe");
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("stage/bin"))?;
    copy_exec(
        Path::new(ovl_tests::BUSYBOX),
        &dir.join("stage/bin/busybox"),
    )?;
    write_exec(
        &dir.join("stage/init"),
        b"#!/bin/busybox sh\n/bin/busybox mkdir -p /dev\n/bin/busybox mount -t devtmpfs d /dev\necho KVM-OK > /dev/ttyS1\n/bin/busybox poweroff -f\n",
    )?;
    let initramfs = dir.join("probe.cpio.gz");
    cpio(&dir.join("stage"), &initramfs)?;
    let results = dir.join("results.log");
    let mut child = qemu_command(
        "kvm",
        kernel,
        &initramfs,
        &dir.join("console.log"),
        &results,
        &[],
        "",
    )
    .spawn()
    .context("starting qemu")?;
    let started = Instant::now();
    let ok = loop {
        if child.try_wait()?.is_some() {
            break fs::read_to_string(&results)
                .unwrap_or_default()
                .contains("KVM-OK");
        }
        if started.elapsed() > KVM_PROBE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = fs::remove_dir_all(&dir);
    Ok(if ok { "kvm" } else { "tcg" })
}

fn qemu_command(
    accel: &str,
    kernel: &Kernel,
    initramfs: &Path,
    console: &Path,
    results: &Path,
    disks: &[PathBuf],
    extra_append: &str,
) -> Command {
    let mut command = Command::new(QEMU);
    command
        .args(["-machine", &format!("q35,accel={accel}")])
        .args(["-m", &GUEST_MEMORY_MB.to_string()])
        .args(["-smp", "2"])
        .args(["-nodefaults", "-no-reboot", "-display", "none"])
        .arg("-kernel")
        .arg(&kernel.vmlinuz)
        .arg("-initrd")
        .arg(initramfs)
        .args([
            "-append",
            &format!("console=ttyS0 quiet panic=-1 rdinit=/init {extra_append}"),
        ])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-serial")
        .arg(format!("file:{}", results.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if accel == "kvm" {
        command.args(["-cpu", "max"]);
    }
    for disk in disks {
        command.args([
            "-drive",
            &format!("file={},format=raw,if=virtio,cache=unsafe", disk.display()),
        ]);
    }
    command
}

/// What one guest reported.
#[derive(Debug, Default)]
struct Report {
    passed: usize,
    failed: usize,
    skipped: usize,
    complete: bool,
    boot_secs: Option<f64>,
    /// From starting QEMU to its exit.
    total: Duration,
    /// Every result line, in the order the guest ran them.
    cells: Vec<Cell>,
    /// Why the guest did not finish (a timeout).
    error: Option<String>,
}

/// One scenario of one run: native, or under a lane.
#[derive(Debug)]
struct Cell {
    /// `native` or the lane's name.
    lane: String,
    scenario: String,
    /// `PASS`, `FAIL` or `SKIP`.
    word: String,
    secs: Option<f64>,
}

/// The run name of native results in the matrix.
const NATIVE: &str = "native";

impl Report {
    fn line(&self, kernel: &str) -> String {
        format!(
            "{kernel}: {} passed, {} failed, {} skipped{}; boot {} s, whole run {:.1} s",
            self.passed,
            self.failed,
            self.skipped,
            match (&self.error, self.complete) {
                (Some(error), _) => format!(" ({error})"),
                (None, true) => String::new(),
                (None, false) => " (no SUMMARY: the guest did not finish)".to_string(),
            },
            self.boot_secs
                .map(|secs| format!("{secs:.1}"))
                .unwrap_or_else(|| "?".to_string()),
            self.total.as_secs_f64()
        )
    }

    fn ok(&self) -> bool {
        self.error.is_none() && self.complete && self.failed == 0
    }

    /// Counts and keeps one result line of `kernel`'s guest.
    fn record(&mut self, kernel: &str, line: &str) {
        let mut words = line.split_whitespace();
        let word = words.next().unwrap_or_default();
        match word {
            "PASS" => self.passed += 1,
            "FAIL" => self.failed += 1,
            "SKIP" => self.skipped += 1,
            "SUMMARY" => self.complete = true,
            "BOOT" => self.boot_secs = words.next().and_then(|secs| secs.parse().ok()),
            _ => {}
        }
        if !matches!(word, "PASS" | "FAIL" | "SKIP") {
            return;
        }
        // `<kernel>/<scenario>` natively, `<kernel>/<lane>/<scenario>` under a lane.
        let name = words.next().unwrap_or_default();
        let run = name
            .strip_prefix(kernel)
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or(name);
        let (lane, scenario) = run.rsplit_once('/').unwrap_or((NATIVE, run));
        let secs = words
            .next()
            .and_then(|secs| secs.strip_prefix('('))
            .and_then(|secs| secs.parse().ok());
        self.cells.push(Cell {
            lane: lane.to_string(),
            scenario: scenario.to_string(),
            word: word.to_string(),
            secs,
        });
    }
}

/// The kernel × lane × scenario table of a whole vm-test, as markdown.
struct Matrix<'a> {
    accel: &'a str,
    /// Guests that ran at once.
    jobs: usize,
    /// The ovl of the native runs.
    native_ovl: String,
    /// The ovl of the lanes, when there were lanes.
    lane_ovl: Option<String>,
    scenarios: &'a [String],
    reports: &'a [(&'a Kernel, Report)],
    whole: Duration,
}

impl Matrix<'_> {
    fn render(&self) -> String {
        let mut out = String::from("## vm-test matrix\n\n");
        out.push_str(&format!(
            "`cargo xtask vm-test` under {}, {} guest{} at a time: ovl's {} natively{}. Seconds \
             are the guest's own clock; boot is QEMU's start to the runner; a run is the sum of \
             its scenarios.\n\n",
            self.accel.to_uppercase(),
            self.jobs,
            if self.jobs == 1 { "" } else { "s" },
            self.native_ovl,
            self.lane_ovl
                .as_ref()
                .map(|path| format!(", {path} under the lanes"))
                .unwrap_or_default()
        ));
        out.push_str("| kernel | boot | lane | ");
        out.push_str(&self.scenarios.join(" | "));
        out.push_str(" | run |\n|---|---:|---|");
        out.push_str(&"---|".repeat(self.scenarios.len()));
        out.push_str("---:|\n");
        for (kernel, report) in self.reports {
            let mut lanes: Vec<&str> = vec![NATIVE];
            lanes.extend(kernel.lanes.iter().copied());
            for cell in &report.cells {
                if !lanes.contains(&cell.lane.as_str()) {
                    lanes.push(&cell.lane);
                }
            }
            for (i, lane) in lanes.iter().enumerate() {
                let (name, boot) = if i == 0 {
                    (
                        format!("{} ({})", kernel.name, kernel.release),
                        report
                            .boot_secs
                            .map(|secs| format!("{secs:.1} s"))
                            .unwrap_or_else(|| "?".to_string()),
                    )
                } else {
                    (String::new(), String::new())
                };
                let mut sum = 0.0;
                let mut row = format!("| {name} | {boot} | {lane} |");
                for scenario in self.scenarios {
                    let cell = report
                        .cells
                        .iter()
                        .find(|cell| cell.lane == *lane && cell.scenario == *scenario);
                    let text = match cell {
                        Some(cell) => {
                            sum += cell.secs.unwrap_or(0.0);
                            match cell.secs {
                                Some(secs) => format!("{} {secs:.1} s", cell.word),
                                None => cell.word.clone(),
                            }
                        }
                        None => "–".to_string(),
                    };
                    row.push_str(&format!(" {text} |"));
                }
                row.push_str(&format!(" {sum:.1} s |\n"));
                out.push_str(&row);
            }
        }
        out.push('\n');
        let guests: Vec<String> = self
            .reports
            .iter()
            .map(|(kernel, report)| {
                format!(
                    "{} {:.0} s{}",
                    kernel.name,
                    report.total.as_secs_f64(),
                    report
                        .error
                        .as_ref()
                        .map(|error| format!(" ({error})"))
                        .unwrap_or_default()
                )
            })
            .collect();
        out.push_str(&format!(
            "Each guest from QEMU's start to its power-off: {}. The whole command: {:.0} s \
             ({:.1} min).\n",
            guests.join(", "),
            self.whole.as_secs_f64(),
            self.whole.as_secs_f64() / 60.0
        ));
        out
    }
}

/// Boots every kernel, `jobs` guests at once, each as soon as a slot is free, in the order
/// given; the outcomes in that order.
fn boot_all(
    vm_dir: &Path,
    kernels: &[Kernel],
    common: &Path,
    accel: &str,
    options: &Options,
    jobs: usize,
) -> Vec<Result<Report>> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let outcomes: Vec<std::sync::Mutex<Option<Result<Report>>>> = kernels
        .iter()
        .map(|_| std::sync::Mutex::new(None))
        .collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(kernel) = kernels.get(i) else {
                    break;
                };
                let outcome = boot(vm_dir, kernel, common, accel, options);
                if let Ok(mut slot) = outcomes[i].lock() {
                    *slot = Some(outcome);
                }
            });
        }
    });
    outcomes
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .ok()
                .flatten()
                .unwrap_or_else(|| Err(anyhow::anyhow!("the guest's thread panicked")))
        })
        .collect()
}

fn boot(
    vm_dir: &Path,
    kernel: &Kernel,
    common: &Path,
    accel: &str,
    options: &Options,
) -> Result<Report> {
    let initramfs = kernel_initramfs(vm_dir, kernel, common, options)?;
    let run_dir = vm_dir.join("run").join(&kernel.name);
    let mut disks = Vec::new();
    for i in 0..3 {
        let disk = run_dir.join(format!("disk{i}.img"));
        let file = fs::File::create(&disk)?;
        file.set_len(DISK_SIZE)?;
        disks.push(disk);
    }
    let console = run_dir.join("console.log");
    let results = run_dir.join("results.log");
    let _ = fs::remove_file(&results);
    fs::File::create(&results)?;
    eprintln!(
        "vm-test: booting {} ({}, {accel}; lanes: {}); console log {}",
        kernel.name,
        kernel.release,
        if kernel.lanes.is_empty() {
            "none".to_string()
        } else {
            kernel.lanes.join(", ")
        },
        console.display()
    );
    let started = Instant::now();
    let mut child = qemu_command(accel, kernel, &initramfs, &console, &results, &disks, "")
        .spawn()
        .context("starting qemu")?;
    let mut report = Report::default();
    let mut seen = 0usize;
    let mut timed_out = false;
    loop {
        let exited = child.try_wait()?;
        seen = read_results(&results, seen, &kernel.name, &mut report)?;
        if let Some(status) = exited {
            let mut stderr = String::new();
            if let Some(mut pipe) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
            }
            if !status.success() {
                eprintln!("vm-test: qemu exited with {status}: {stderr}");
            }
            break;
        }
        if started.elapsed() > options.timeout {
            timed_out = true;
            let _ = child.kill();
            let _ = child.wait();
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    report.total = started.elapsed();
    for disk in &disks {
        let _ = fs::remove_file(disk);
    }
    let _ = fs::remove_file(&initramfs);
    if !report.ok() || timed_out {
        print_tail(&console, 60);
    }
    if timed_out {
        report.error = Some(format!(
            "the guest did not power off within {} s (console log {})",
            options.timeout.as_secs(),
            console.display()
        ));
    }
    Ok(report)
}

/// Prints result lines past the first `seen` and records them; returns the new count.
fn read_results(path: &Path, seen: usize, kernel: &str, report: &mut Report) -> Result<usize> {
    let text = fs::read_to_string(path)?;
    // Only whole lines: the last one may still be being written.
    let complete = text.rfind('\n').map_or("", |end| &text[..=end]);
    let lines: Vec<&str> = complete.lines().collect();
    for line in lines.iter().skip(seen) {
        let line = line.trim_end_matches('\r');
        report.record(kernel, line);
        println!("[{kernel}] {line}");
        let _ = std::io::stdout().flush();
    }
    Ok(lines.len().max(seen))
}

fn print_tail(path: &Path, n: usize) {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    eprintln!("--- last {n} lines of {} ---", path.display());
    for line in &lines[lines.len().saturating_sub(n)..] {
        eprintln!("{line}");
    }
    eprintln!("---");
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
