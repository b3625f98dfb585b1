//! `cargo xtask vm-test [--kernel NAME|PATH [--modules DIR]]... [--scenario NAME]... [--timeout S]
//! [--release]`: boots other kernels under QEMU and runs ovl's scenarios inside them as root.
//!
//! The host side, in order:
//! 1. the corpus (`target/vm/corpus`): the conformance images built and saved by a private
//!    dockerd 20.10, the merged tree of each as Docker shows it in a running container, the
//!    `docker diff` and committed tree of one change (`vm-tests/change.sh`), and generated deep
//!    images; kept between runs while its inputs are unchanged;
//! 2. each kernel: a built-in one is a Debian package fetched with `apt-get download` and unpacked
//!    with `dpkg-deb -x` into `target/vm/kernels/` (nothing is installed into the host's /boot);
//!    `--kernel PATH --modules DIR` takes any other kernel image and its `lib/modules/<release>`;
//! 3. an initramfs: static busybox, `vm-tests/init.sh` as /init, the ovl binary and this xtask
//!    binary (the guest runner, `vm_guest.rs`) with their shared libraries, `mkfs.ext4` and
//!    `mkfs.xfs` with theirs, the kernel's modules for virtio, ext4, xfs, loop and overlay (with
//!    their dependencies, decompressed), the corpus and the guest's `config.json`;
//! 4. `qemu-system-x86_64` with KVM when a probe guest really boots with it, TCG otherwise, three
//!    scratch disk files on virtio, the console on the first serial port and results on the
//!    second: one `PASS|FAIL|SKIP <kernel>/<scenario> <detail>` line per scenario and a
//!    `SUMMARY` line. A guest that does not power off within the timeout fails the run.

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

/// Built-in kernels: a name, and the Debian package names that provide it (the newest match of
/// the pattern among the packages apt knows).
struct Builtin {
    name: &'static str,
    /// An `apt-cache search --names-only` regular expression.
    pattern: &'static str,
}

const BUILTIN_KERNELS: [Builtin; 2] = [
    Builtin {
        name: "debian-6.1",
        pattern: r"^linux-image-6\.1\.0-[0-9]+-amd64$",
    },
    Builtin {
        name: "debian-6.12",
        pattern: r"^linux-image-6\.12\.[0-9]+\+deb12-amd64$",
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
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1500);
const KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug)]
struct KernelArg {
    spec: String,
    modules: Option<PathBuf>,
}

#[derive(Debug)]
struct Options {
    kernels: Vec<KernelArg>,
    scenarios: Vec<String>,
    timeout: Duration,
    release: bool,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        kernels: Vec::new(),
        scenarios: Vec::new(),
        timeout: DEFAULT_TIMEOUT,
        release: false,
    };
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
            "--timeout" => {
                let secs: u64 = value("--timeout")?
                    .parse()
                    .context("--timeout takes seconds")?;
                options.timeout = Duration::from_secs(secs);
            }
            "--release" => options.release = true,
            other => bail!(
                "unknown vm-test argument {other:?}: cargo xtask vm-test [--kernel NAME|PATH \
                 [--modules DIR]]... [--scenario NAME]... [--timeout SECONDS] [--release]"
            ),
        }
    }
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
        .map(|arg| resolve_kernel(&vm_dir, arg))
        .collect::<Result<Vec<_>>>()?;

    let common = vm_dir.join("common.cpio.gz");
    common_initramfs(&vm_dir, &ovl, &runner, &corpus, &common)?;
    let accel = accelerator(&vm_dir, &kernels[0])?;
    eprintln!("vm-test: accelerator {accel}");

    let mut failed = Vec::new();
    let mut summary = Vec::new();
    for kernel in &kernels {
        let outcome = boot(&vm_dir, kernel, &common, accel, &options)
            .with_context(|| format!("kernel {}", kernel.name));
        match outcome {
            Ok(report) => {
                if report.failed > 0 || !report.complete {
                    failed.push(kernel.name.clone());
                }
                summary.push(report.line(&kernel.name));
            }
            Err(err) => {
                eprintln!("vm-test: {err:#}");
                failed.push(kernel.name.clone());
                summary.push(format!("{}: error: {err:#}", kernel.name));
            }
        }
    }
    println!("vm-test summary ({accel}):");
    for line in &summary {
        println!("  {line}");
    }
    if !failed.is_empty() {
        bail!("vm-test failed on {}", failed.join(", "));
    }
    Ok(())
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
}

fn resolve_kernel(vm_dir: &Path, arg: &KernelArg) -> Result<Kernel> {
    if let Some(builtin) = BUILTIN_KERNELS.iter().find(|k| k.name == arg.spec) {
        ensure!(
            arg.modules.is_none(),
            "--modules is for --kernel PATH, not the built-in {}",
            builtin.name
        );
        return builtin_kernel(vm_dir, builtin);
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
    })
}

/// The newest package matching the built-in's pattern, downloaded and unpacked once.
fn builtin_kernel(vm_dir: &Path, builtin: &Builtin) -> Result<Kernel> {
    let kernels_dir = vm_dir.join("kernels");
    fs::create_dir_all(&kernels_dir)?;
    let search = Command::new("apt-cache")
        .args(["search", "--names-only", builtin.pattern])
        .output()
        .context("running apt-cache search")?;
    let mut packages: Vec<String> = String::from_utf8_lossy(&search.stdout)
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
                format!(
                    "no Debian package matches {} for kernel {} (is bookworm(-security) in the \
                     apt sources, and `apt-get update` done?)",
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
        eprintln!("vm-test: apt-get download {package}");
        run(Command::new("apt-get")
            .current_dir(&download)
            .args(["download", "-qq", &package]))?;
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
    })
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
    let lowerdir_plus = (major, minor) >= (6, 8);
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

/// The part every kernel shares: busybox, init, binaries and libraries, corpus.
fn common_initramfs(
    vm_dir: &Path,
    ovl: &Path,
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
    for (from, to) in [
        (ovl.to_path_buf(), "bin/ovl"),
        (runner.to_path_buf(), "bin/xtask"),
        (PathBuf::from("/usr/sbin/mke2fs"), "sbin/mkfs.ext4"),
        (PathBuf::from("/usr/sbin/mkfs.xfs"), "sbin/mkfs.xfs"),
    ] {
        copy_exec(&from, &stage.join(to))?;
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

#[derive(Debug, Default)]
struct Report {
    passed: usize,
    failed: usize,
    skipped: usize,
    complete: bool,
    boot_secs: Option<f64>,
    total: Duration,
}

impl Report {
    fn line(&self, kernel: &str) -> String {
        format!(
            "{kernel}: {} passed, {} failed, {} skipped{}; boot {} s, whole run {:.1} s",
            self.passed,
            self.failed,
            self.skipped,
            if self.complete {
                ""
            } else {
                " (no SUMMARY: the guest did not finish)"
            },
            self.boot_secs
                .map(|secs| format!("{secs:.1}"))
                .unwrap_or_else(|| "?".to_string()),
            self.total.as_secs_f64()
        )
    }
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
        "vm-test: booting {} ({}, {accel}); console log {}",
        kernel.name,
        kernel.release,
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
    if timed_out || !report.complete || report.failed > 0 {
        print_tail(&console, 60);
    }
    if timed_out {
        bail!(
            "the guest did not power off within {:?} (console log {})",
            options.timeout,
            console.display()
        );
    }
    Ok(report)
}

/// Prints result lines past the first `seen` and counts them; returns the new count.
fn read_results(path: &Path, seen: usize, kernel: &str, report: &mut Report) -> Result<usize> {
    let text = fs::read_to_string(path)?;
    // Only whole lines: the last one may still be being written.
    let complete = text.rfind('\n').map_or("", |end| &text[..=end]);
    let lines: Vec<&str> = complete.lines().collect();
    for line in lines.iter().skip(seen) {
        let line = line.trim_end_matches('\r');
        match line.split_whitespace().next() {
            Some("PASS") => report.passed += 1,
            Some("FAIL") => report.failed += 1,
            Some("SKIP") => report.skipped += 1,
            Some("SUMMARY") => report.complete = true,
            Some("BOOT") => {
                report.boot_secs = line
                    .split_whitespace()
                    .nth(1)
                    .and_then(|secs| secs.parse().ok())
            }
            _ => {}
        }
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
