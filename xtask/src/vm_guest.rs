//! The guest side of `cargo xtask vm-test`: `xtask vm-guest /vm/config.json`, run as the guest's
//! root by `vm-tests/init.sh`. Loads the kernel's modules, formats the scratch disks, runs the
//! scenarios against `/bin/ovl` and writes one `PASS|FAIL|SKIP <kernel>/<scenario> <detail>` line
//! per scenario to the second serial port, then a `SUMMARY` line. Everything it compares with
//! comes from the host: trees and diffs recorded from a real dockerd, and what the kernel's build
//! config says it offers.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use crate::vm::dump_name;

const RESULTS: &str = "/dev/ttyS1";
const OVL: &str = "/bin/ovl";
const CORPUS: &str = "/vm/corpus";
/// One more lower in the page-size fallback: `:l/` and a 26-character link id.
const LOWER_ENTRY_LEN: usize = 29;

enum Outcome {
    Pass(String),
    Skip(String),
}

struct Guest {
    config: Value,
    results: fs::File,
    mounted: BTreeMap<&'static str, PathBuf>,
    /// The deepest image the `deep` scenario mounted.
    deepest: Option<usize>,
    counts: [usize; 3],
}

pub fn vm_guest(args: &[String]) -> Result<()> {
    let config_path = args.first().context("usage: xtask vm-guest CONFIG")?;
    let config: Value = serde_json::from_slice(&fs::read(config_path)?)?;
    let results = fs::OpenOptions::new().write(true).open(RESULTS)?;
    let mut guest = Guest {
        config,
        results,
        mounted: BTreeMap::new(),
        deepest: None,
        counts: [0; 3],
    };
    let uptime = fs::read_to_string("/proc/uptime").unwrap_or_default();
    let uptime = uptime.split_whitespace().next().unwrap_or("?").to_string();
    guest.emit(&format!("BOOT {uptime} s to the runner"));
    load_modules("base")?;
    let scenarios: Vec<String> = guest.config["scenarios"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut overlay_loaded = false;
    for scenario in &scenarios {
        if scenario != "no-overlay-module" && !overlay_loaded {
            load_modules("overlay")?;
            overlay_loaded = true;
        }
        let started = Instant::now();
        let outcome = match scenario.as_str() {
            "no-overlay-module" => guest.no_overlay_module(),
            "conformance" => guest.conformance(),
            "filesystems" => guest.filesystems(),
            "centos7-trap" => guest.centos7_trap(),
            "deep" => guest.deep(),
            "probe" => guest.probe(),
            other => Err(anyhow::anyhow!("unknown scenario {other}")),
        };
        let secs = started.elapsed().as_secs_f64();
        let kernel = guest.config["kernel"].as_str().unwrap_or("?").to_string();
        let (word, detail, slot) = match outcome {
            Ok(Outcome::Pass(detail)) => ("PASS", detail, 0),
            Ok(Outcome::Skip(detail)) => ("SKIP", detail, 2),
            Err(err) => ("FAIL", format!("{err:#}"), 1),
        };
        guest.counts[slot] += 1;
        let detail = detail.replace('\n', " | ");
        guest.emit(&format!(
            "{word} {kernel}/{scenario} ({secs:.1} s) {detail}"
        ));
    }
    let [passed, failed, skipped] = guest.counts;
    guest.emit(&format!(
        "SUMMARY passed={passed} failed={failed} skipped={skipped}"
    ));
    // Containers a failed scenario left mounted, then the scratch filesystems.
    let _ = Command::new("umount")
        .args(["-a", "-t", "overlay"])
        .status();
    for target in guest.mounted.values() {
        let _ = Command::new("umount").arg(target).status();
    }
    Ok(())
}

impl Guest {
    fn emit(&mut self, line: &str) {
        println!("{line}");
        let _ = writeln!(self.results, "{line}");
        let _ = self.results.flush();
    }

    fn expect(&self, key: &str) -> Option<bool> {
        self.config["expect"][key].as_bool()
    }

    /// The mount point of a scratch filesystem, formatted and mounted on first use.
    fn fs(&mut self, kind: &'static str) -> Result<PathBuf> {
        if let Some(path) = self.mounted.get(kind) {
            return Ok(path.clone());
        }
        let target = PathBuf::from("/mnt").join(kind);
        fs::create_dir_all(&target)?;
        match kind {
            "ext4" => {
                let dev = disk("/dev/vda")?;
                sh(&format!("mkfs.ext4 -q -F {dev}"))?;
                sh(&format!("mount -t ext4 {dev} {}", target.display()))?;
            }
            "xfs" => {
                let dev = disk("/dev/vdb")?;
                sh(&format!("mkfs.xfs -q -f -n ftype=1 {dev}"))?;
                sh(&format!("mount -t xfs {dev} {}", target.display()))?;
            }
            "tmpfs" => sh(&format!(
                "mount -t tmpfs -o size=768m tmpfs {}",
                target.display()
            ))
            .map(drop)?,
            other => bail!("no scratch filesystem {other}"),
        }
        self.mounted.insert(kind, target.clone());
        Ok(target)
    }

    // --------------------------------------------------------------------------------------------
    // Scenarios

    /// Before overlay is loaded: `run-rootfs` is refused with the `modprobe overlay` remedy and
    /// leaves nothing behind (`load` needs no overlay and works).
    fn no_overlay_module(&mut self) -> Result<Outcome> {
        if overlay_registered() {
            return Ok(Outcome::Skip(
                "overlay is built into this kernel: it cannot be missing".to_string(),
            ));
        }
        let root = self.fs("ext4")?.join("no-overlay");
        ovl_ok(&root, &["load", "-i", &corpus("seed.tar")])?;
        // Names, modes and sizes: the probe's scratch dir comes and goes in overlay2/, so its
        // mtime changes.
        let names = |snapshot: Snapshot| -> Vec<(PathBuf, u32, u64)> {
            snapshot
                .into_iter()
                .map(|(path, (mode, size, _, _))| {
                    (
                        path,
                        mode,
                        if mode & 0o170000 == 0o040000 { 0 } else { size },
                    )
                })
                .collect()
        };
        let before = names(snapshot(&root)?);
        let out = ovl(&root, &["run-rootfs", "--name", "nomod", "ovl-seed:1"])?;
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        ensure!(
            out.status.code() == Some(1),
            "run-rootfs without overlay exited with {} (stderr: {stderr})",
            out.status
        );
        ensure!(
            stderr.contains("modprobe overlay"),
            "run-rootfs without overlay did not name the remedy: {stderr}"
        );
        let after = names(snapshot(&root)?);
        ensure!(
            before == after,
            "the refused run-rootfs left changes in the data root: {:?}",
            after
                .iter()
                .filter(|entry| !before.contains(entry))
                .take(5)
                .collect::<Vec<_>>()
        );
        let ps = ovl_ok(&root, &["ps", "-a", "-q"])?;
        ensure!(ps.trim().is_empty(), "a container is listed: {ps}");
        Ok(Outcome::Pass(format!(
            "refused, data root unchanged: {}",
            stderr.trim()
        )))
    }

    /// The conformance images: each merged tree as Docker's; the change's diff as docker diff;
    /// its commit, save and reload as docker commit's tree; fsck clean.
    fn conformance(&mut self) -> Result<Outcome> {
        let root = self.fs("ext4")?.join("conformance");
        let started = Instant::now();
        ovl_ok(&root, &["load", "-i", &corpus("conformance.tar")])?;
        let load_secs = started.elapsed().as_secs_f64();
        let images: Value = serde_json::from_slice(&fs::read(corpus("images.json"))?)?;
        let images: Vec<String> = images["images"]
            .as_array()
            .context("images.json has no images")?
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        for (i, tag) in images.iter().enumerate() {
            let name = format!("conf{i}");
            let merged = run_rootfs(&root, &name, tag)?;
            compare_dump(
                &format!("merged tree of {tag}"),
                &expected(&dump_name(tag))?,
                &merged,
            )?;
            ovl_ok(&root, &["rm", "-f", &name])?;
        }

        let merged = run_rootfs(&root, "change", "ovl-changes:1")?;
        let script = fs::read_to_string("/vm/change.sh")?;
        let out = Command::new("chroot")
            .arg(&merged)
            .args(["/bin/sh", "-c", &script])
            .output()?;
        ensure!(
            out.status.success(),
            "the change script failed in the container: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // docker diff lists the changes in the readdir order of Docker's own upperdir (a hash
        // order on ext4), so the lists are compared as sets of lines, as the host tests do.
        let diff = sorted_lines(&ovl_ok(&root, &["diff", "change"])?);
        let docker_diff = sorted_lines(&expected("change.diff")?);
        if diff != docker_diff {
            bail!(
                "ovl diff differs from docker diff:\n{}",
                line_difference(&docker_diff, &diff)
            );
        }
        ovl_ok(&root, &["commit", "change", "vm-committed:1"])?;
        let committed = expected("committed.dump")?;
        let merged = run_rootfs(&root, "committed", "vm-committed:1")?;
        compare_dump("the committed image's tree", &committed, &merged)?;
        let saved = root.with_file_name("vm-committed.tar");
        ovl_ok(
            &root,
            &["save", "-o", &saved.display().to_string(), "vm-committed:1"],
        )?;
        ovl_ok(&root, &["rm", "-f", "committed", "change"])?;
        ovl_ok(&root, &["rmi", "vm-committed:1"])?;
        ovl_ok(&root, &["load", "-i", &saved.display().to_string()])?;
        let merged = run_rootfs(&root, "reloaded", "vm-committed:1")?;
        compare_dump("the saved and reloaded commit's tree", &committed, &merged)?;
        ovl_ok(&root, &["rm", "-f", "reloaded"])?;
        ovl_ok(&root, &["fsck", "--verify-content"])?;
        Ok(Outcome::Pass(format!(
            "{} images ({}) merged as Docker's; diff ({} lines) as docker diff; commit, save, \
             reload as docker commit; fsck --verify-content clean; load took {load_secs:.1} s",
            images.len(),
            images.join(" "),
            diff.lines().count()
        )))
    }

    /// The seed image on ext4, XFS with ftype=1 and tmpfs: load, mount, tree, diff, commit, fsck.
    fn filesystems(&mut self) -> Result<Outcome> {
        let seed = expected(&dump_name("ovl-seed:1"))?;
        let mut done = Vec::new();
        for kind in ["ext4", "xfs", "tmpfs"] {
            let root = self.fs(kind)?.join("filesystems");
            let context = |what: &str| format!("{kind}: {what}");
            ovl_ok(&root, &["load", "-i", &corpus("seed.tar")]).with_context(|| context("load"))?;
            let merged = run_rootfs(&root, "fs", "ovl-seed:1").with_context(|| context("mount"))?;
            compare_dump(&context("merged tree of ovl-seed:1"), &seed, &merged)?;
            fs::write(merged.join("fs-test"), kind)?;
            let diff = ovl_ok(&root, &["diff", "fs"])?;
            ensure!(
                diff == "A /fs-test\n",
                "{}: diff after adding /fs-test is {diff:?}",
                kind
            );
            ovl_ok(&root, &["commit", "fs", "fs:1"]).with_context(|| context("commit"))?;
            let merged = run_rootfs(&root, "fs2", "fs:1")?;
            ensure!(
                fs::read_to_string(merged.join("fs-test"))? == kind,
                "{kind}: the committed layer lost /fs-test"
            );
            ovl_ok(&root, &["rm", "-f", "fs", "fs2"])?;
            ovl_ok(&root, &["fsck", "--verify-content"]).with_context(|| context("fsck"))?;
            done.push(kind);
        }
        Ok(Outcome::Pass(format!(
            "load, run-rootfs (tree as Docker's), diff, commit, fsck on {}",
            done.join(", ")
        )))
    }

    /// XFS V4 with ftype=0 (the CentOS 7 default): ovl refuses with the remedy, writing nothing.
    fn centos7_trap(&mut self) -> Result<Outcome> {
        let dev = disk("/dev/vdc")?;
        let mkfs = sh(&format!("mkfs.xfs -f -m crc=0 -n ftype=0 {dev} 2>&1"))?;
        ensure!(
            mkfs.contains("ftype=0"),
            "mkfs.xfs did not report ftype=0: {mkfs}"
        );
        let target = Path::new("/mnt/xfs-v4");
        fs::create_dir_all(target)?;
        let mount = Command::new("mount")
            .args(["-t", "xfs", &dev])
            .arg(target)
            .output()?;
        if !mount.status.success() {
            let kernel_says = dmesg_tail("XFS");
            if self.expect("xfs_v4") == Some(true) {
                bail!(
                    "the kernel config has CONFIG_XFS_SUPPORT_V4=y but mounting a V4 XFS failed: \
                     {kernel_says}"
                );
            }
            return Ok(Outcome::Skip(format!(
                "this kernel cannot mount XFS V4 (crc=0), so the trap cannot happen here: \
                 {kernel_says}"
            )));
        }
        self.mounted.insert("xfs-v4", target.to_path_buf());
        let root = target.join("docker");
        let before = snapshot(target)?;
        let mut refusals = Vec::new();
        for args in [
            vec!["load", "-i", &corpus("seed.tar")],
            vec!["run-rootfs", "--name", "trap", "ovl-seed:1"],
            vec!["tag", "ovl-seed:1", "other:1"],
        ] {
            let out = ovl(&root, &args)?;
            let stderr = String::from_utf8_lossy(&out.stderr).to_string();
            ensure!(
                out.status.code() == Some(1),
                "ovl {} on ftype=0 exited with {}: {stderr}",
                args[0],
                out.status
            );
            ensure!(
                stderr.contains("d_type") && stderr.contains("mkfs.xfs -n ftype=1"),
                "ovl {} on ftype=0 did not give the d_type message and remedy: {stderr}",
                args[0]
            );
            refusals.push(stderr.trim().to_string());
        }
        ensure_same_snapshot("the ftype=0 filesystem", &before, &snapshot(target)?)?;
        Ok(Outcome::Pass(format!(
            "load, run-rootfs and tag refused, nothing written: {}",
            refusals[0]
        )))
    }

    /// Without lowerdir+: the deepest image that fits in one page of relative mount data mounts,
    /// one more layer is refused. With it: a 500-layer image mounts.
    fn deep(&mut self) -> Result<Outcome> {
        let root = self.fs("ext4")?.join("deep");
        let lowerdir_plus = self.expect("lowerdir_plus") == Some(true);
        if lowerdir_plus {
            let max = self.config["deep_max"].as_u64().unwrap_or(500) as usize;
            let started = Instant::now();
            ovl_ok(&root, &["load", "-i", &corpus("deep-max.tar")])?;
            let load_secs = started.elapsed().as_secs_f64();
            let merged = run_rootfs(&root, "deep", &format!("deep:{max}"))?;
            check_deep_tree(&merged, max)?;
            ovl_ok(&root, &["rm", "-f", "deep"])?;
            self.deepest = Some(max);
            return Ok(Outcome::Pass(format!(
                "a {max}-layer image mounts with lowerdir+, every layer visible (load {load_secs:.1} s)"
            )));
        }
        let range = &self.config["deep_prefixes"];
        let (mut lo, mut hi) = (
            range[0].as_u64().unwrap_or(100) as usize,
            range[1].as_u64().unwrap_or(160) as usize,
        );
        ovl_ok(&root, &["load", "-i", &corpus("deep-prefixes.tar")])?;
        let try_mount = |n: usize| -> Result<bool> {
            let name = format!("deep{n}");
            let out = ovl(
                &root,
                &["run-rootfs", "--name", &name, &format!("deep:{n}")],
            )?;
            if out.status.success() {
                ovl_ok(&root, &["rm", "-f", &name])?;
                return Ok(true);
            }
            let stderr = String::from_utf8_lossy(&out.stderr);
            ensure!(
                stderr.contains("too many layers"),
                "deep:{n} failed for another reason than its depth: {stderr}"
            );
            Ok(false)
        };
        ensure!(try_mount(lo)?, "deep:{lo} does not mount");
        ensure!(
            !try_mount(hi)?,
            "deep:{hi} mounts without lowerdir+: the prefix range is too small"
        );
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if try_mount(mid)? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let deepest = lo;
        let before = snapshot_names(&root.join("overlay2"))?;
        let out = ovl(
            &root,
            &[
                "run-rootfs",
                "--name",
                "over",
                &format!("deep:{}", deepest + 1),
            ],
        )?;
        let refusal = String::from_utf8_lossy(&out.stderr).trim().to_string();
        ensure!(
            snapshot_names(&root.join("overlay2"))? == before,
            "the refused deep:{} left overlay2 entries behind",
            deepest + 1
        );
        let merged = run_rootfs(&root, "deepest", &format!("deep:{deepest}"))?;
        check_deep_tree(&merged, deepest)?;
        let options = super_options(&merged)?;
        let lowerdir = option_value(&options, "lowerdir").context("no lowerdir option")?;
        ensure!(
            lowerdir.split(':').all(|lower| lower.starts_with("l/")),
            "the deepest mount does not use relative l/ lowers: lowerdir={lowerdir}"
        );
        let upper = option_value(&options, "upperdir").context("no upperdir option")?;
        let work = option_value(&options, "workdir").context("no workdir option")?;
        let index_off = Path::new("/sys/module/overlay/parameters/index").exists();
        let data_len = format!("lowerdir={lowerdir},upperdir={upper},workdir={work}").len()
            + if index_off { ",index=off".len() } else { 0 };
        let limit = page_size()? - 1;
        ensure!(
            data_len <= limit && data_len + LOWER_ENTRY_LEN > limit,
            "deep:{deepest} is not the deepest that fits: its mount data is {data_len} bytes of \
             {limit}, one more lower adds {LOWER_ENTRY_LEN}"
        );
        ovl_ok(&root, &["rm", "-f", "deepest"])?;
        self.deepest = Some(deepest + 1);
        Ok(Outcome::Pass(format!(
            "deep:{deepest} mounts with relative l/ lowers ({} lowers with the init layer, \
             {data_len} of {limit} bytes of mount data); deep:{} refused: {refusal}",
            deepest + 1,
            deepest + 1
        )))
    }

    /// `ovl info` on ext4, XFS and tmpfs against the kernel's config and what `deep` found.
    fn probe(&mut self) -> Result<Outcome> {
        let release = fs::read_to_string("/proc/sys/kernel/osrelease")?
            .trim()
            .to_string();
        let mut report = Vec::new();
        for (kind, docker_name) in [("ext4", "extfs"), ("xfs", "xfs"), ("tmpfs", "tmpfs")] {
            let root = self.fs(kind)?.join("probe");
            ovl_ok(&root, &["load", "-i", &corpus("seed.tar")])?;
            let info: Value = serde_json::from_str(&ovl_ok(&root, &["info", "--format", "json"])?)?;
            let status: BTreeMap<String, String> = info["DriverStatus"]
                .as_array()
                .context("no DriverStatus")?
                .iter()
                .filter_map(|pair| {
                    Some((pair[0].as_str()?.to_string(), pair[1].as_str()?.to_string()))
                })
                .collect();
            let field = |name: &str| status.get(name).cloned().unwrap_or_default();
            ensure!(
                field("Backing Filesystem") == docker_name,
                "{kind}: backing filesystem {:?}, Docker calls it {docker_name}",
                field("Backing Filesystem")
            );
            ensure!(
                field("Supports d_type") == "true",
                "{kind}: d_type {:?}",
                field("Supports d_type")
            );
            ensure!(
                info["KernelVersion"].as_str() == Some(release.as_str()),
                "{kind}: kernel version {} is not {release}",
                info["KernelVersion"]
            );
            let checks = [
                (
                    "native diff",
                    field("Native Overlay Diff") == "true",
                    self.expect("native_diff"),
                ),
                (
                    "index=off",
                    info["IndexOff"].as_bool() == Some(true),
                    self.expect("index_param"),
                ),
                (
                    "lowerdir+",
                    info["LowerdirPlus"].as_bool() == Some(true),
                    self.expect("lowerdir_plus"),
                ),
            ];
            let mut said = Vec::new();
            for (what, found, expected) in checks {
                if let Some(expected) = expected {
                    ensure!(
                        found == expected,
                        "{kind}: ovl info says {what} {found}, the kernel's config says {expected}"
                    );
                }
                said.push(format!("{what} {found}"));
            }
            let max = info["MaxLayersPerMount"].as_u64().unwrap_or(0) as usize;
            if let Some(deepest) = self.deepest {
                ensure!(
                    max == deepest,
                    "{kind}: ovl info says at most {max} layers per mount, the deep scenario \
                     mounted {deepest}"
                );
            }
            said.push(format!("max layers {max}"));
            report.push(format!("{docker_name}: {}", said.join(", ")));
        }
        Ok(Outcome::Pass(report.join("; ")))
    }
}

// ------------------------------------------------------------------------------------------------
// Helpers

fn corpus(name: &str) -> String {
    format!("{CORPUS}/{name}")
}

fn expected(name: &str) -> Result<String> {
    let path = format!("{CORPUS}/expected/{name}");
    fs::read_to_string(&path).with_context(|| format!("reading {path}"))
}

fn ovl(root: &Path, args: &[&str]) -> Result<Output> {
    Command::new(OVL)
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .context("running /bin/ovl")
}

fn ovl_ok(root: &Path, args: &[&str]) -> Result<String> {
    let out = ovl(root, args)?;
    ensure!(
        out.status.success(),
        "ovl {} failed with {}: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn run_rootfs(root: &Path, name: &str, image: &str) -> Result<PathBuf> {
    let out = ovl_ok(root, &["run-rootfs", "--name", name, image])?;
    Ok(PathBuf::from(out.trim()))
}

fn sh(script: &str) -> Result<String> {
    let out = Command::new("/bin/sh").args(["-c", script]).output()?;
    ensure!(
        out.status.success(),
        "`{script}` failed with {}: {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn load_modules(group: &str) -> Result<()> {
    let order = fs::read_to_string("/vm/modules/order")?;
    for line in order.lines() {
        let Some((line_group, file)) = line.split_once(' ') else {
            continue;
        };
        if line_group != group {
            continue;
        }
        let out = Command::new("insmod")
            .arg(format!("/vm/modules/{file}"))
            .output()?;
        // A module the kernel already has (loaded as another's dependency) is fine.
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            out.status.success() || stderr.contains("File exists"),
            "insmod {file}: {stderr}"
        );
    }
    Ok(())
}

/// Waits for a virtio disk's device node (the driver probes asynchronously).
fn disk(dev: &str) -> Result<String> {
    let started = Instant::now();
    while !Path::new(dev).exists() {
        ensure!(
            started.elapsed() < Duration::from_secs(20),
            "{dev} did not appear"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(dev.to_string())
}

fn overlay_registered() -> bool {
    fs::read_to_string("/proc/filesystems")
        .unwrap_or_default()
        .lines()
        .any(|line| line.split_whitespace().last() == Some("overlay"))
}

fn dmesg_tail(needle: &str) -> String {
    let out = Command::new("dmesg").output();
    let text = out
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default();
    text.lines()
        .rev()
        .find(|line| line.contains(needle))
        .unwrap_or("(nothing in dmesg)")
        .trim()
        .to_string()
}

fn page_size() -> Result<usize> {
    let out = Command::new("getconf").arg("PAGESIZE").output();
    if let Ok(out) = out {
        if let Ok(size) = String::from_utf8_lossy(&out.stdout).trim().parse() {
            return Ok(size);
        }
    }
    // busybox has no getconf: the x86-64 page.
    Ok(4096)
}

/// The super options of the mount at `target`, from /proc/self/mountinfo.
fn super_options(target: &Path) -> Result<String> {
    let mountinfo = fs::read_to_string("/proc/self/mountinfo")?;
    let target = target.display().to_string();
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        if fields.get(4) != Some(&target.as_str()) {
            continue;
        }
        if let Some(dash) = fields.iter().position(|field| *field == "-") {
            if let Some(options) = fields.get(dash + 3) {
                return Ok(options.to_string());
            }
        }
    }
    bail!("{target} is not in /proc/self/mountinfo")
}

fn option_value(options: &str, key: &str) -> Option<String> {
    let prefix = format!("{key}=");
    options
        .split(',')
        .find_map(|option| option.strip_prefix(&prefix).map(str::to_string))
}

/// Layer i of the deep chain adds `/layers/<i>` and writes `/top`.
fn check_deep_tree(merged: &Path, n: usize) -> Result<()> {
    let count = fs::read_dir(merged.join("layers"))?.count();
    ensure!(count == n, "{n} layers, but /layers has {count} entries");
    let top = fs::read_to_string(merged.join("top"))?;
    ensure!(
        top == (n - 1).to_string(),
        "/top is {top:?}, layer {} wrote it last",
        n - 1
    );
    Ok(())
}

fn sorted_lines(text: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines.iter().map(|line| format!("{line}\n")).collect()
}

fn compare_dump(what: &str, expected: &str, merged: &Path) -> Result<()> {
    let actual = treedump::format(&ovl_tests::merged_dump(merged)?);
    if actual != expected {
        bail!(
            "{what} differs from Docker's:\n{}",
            line_difference(expected, &actual)
        );
    }
    Ok(())
}

/// Up to five lines only in `expected` and five only in `actual`.
fn line_difference(expected: &str, actual: &str) -> String {
    let expected_lines: std::collections::BTreeSet<&str> = expected.lines().collect();
    let actual_lines: std::collections::BTreeSet<&str> = actual.lines().collect();
    let mut out = Vec::new();
    for line in expected_lines.difference(&actual_lines).take(5) {
        out.push(format!("- {line}"));
    }
    for line in actual_lines.difference(&expected_lines).take(5) {
        out.push(format!("+ {line}"));
    }
    if out.is_empty() {
        out.push("(the same lines in another order)".to_string());
    }
    out.join("\n")
}

type Snapshot = BTreeMap<PathBuf, (u32, u64, i64, i64)>;

/// Every entry below `dir` (and `dir` itself): mode, size and mtime.
fn snapshot(dir: &Path) -> Result<Snapshot> {
    let mut out = BTreeMap::new();
    if dir.exists() {
        walk(dir, &mut out)?;
    }
    Ok(out)
}

fn walk(path: &Path, out: &mut Snapshot) -> Result<()> {
    let meta = fs::symlink_metadata(path)?;
    out.insert(
        path.to_path_buf(),
        (meta.mode(), meta.size(), meta.mtime(), meta.mtime_nsec()),
    );
    if meta.is_dir() {
        for entry in fs::read_dir(path)? {
            walk(&entry?.path(), out)?;
        }
    }
    Ok(())
}

fn snapshot_names(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    names.sort();
    Ok(names)
}

fn ensure_same_snapshot(what: &str, before: &Snapshot, after: &Snapshot) -> Result<()> {
    let changed: Vec<String> = after
        .iter()
        .filter(|(path, meta)| before.get(*path) != Some(meta))
        .map(|(path, _)| format!("{} changed or appeared", path.display()))
        .chain(
            before
                .keys()
                .filter(|path| !after.contains_key(*path))
                .map(|path| format!("{} vanished", path.display())),
        )
        .take(5)
        .collect();
    ensure!(
        changed.is_empty(),
        "{what} was written to: {}",
        changed.join("; ")
    );
    Ok(())
}
