//! The guest side of `cargo xtask vm-test`: `xtask vm-guest /vm/config.json`, run as the guest's
//! root by `vm-tests/init.sh`. Loads the kernel's modules, formats the scratch disks and runs the
//! scenarios: natively against `/bin/ovl`, then once per lane of the config against the dist
//! binary with the lane's seccomp filter (`abi-lane`) on every `ovl` command, each run on freshly
//! formatted filesystems. It writes one `PASS|FAIL|SKIP <kernel>[/<lane>]/<scenario> (<seconds>
//! s) <detail>` line per scenario and run to the second serial port, then a `SUMMARY` line.
//! Everything it compares with comes from the host: trees and diffs recorded from a real dockerd,
//! and what the kernel's build config says it offers; a lane only takes system calls away.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use abi_lane::Lane;
use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use crate::vm::{dump_name, GUEST_LANE_OVL};

const RESULTS: &str = "/dev/ttyS1";
/// The ovl of the native run.
const OVL: &str = "/bin/ovl";
const CORPUS: &str = "/vm/corpus";
/// One more lower in the page-size fallback: `:l/` and a 26-character link id.
const LOWER_ENTRY_LEN: usize = 29;
/// `fsmount`, the last of the new mount API (`fsopen` 430, `fsconfig` 431, `fsmount` 432) that
/// `lowerdir+` is passed through: a lane ending below it has no `lowerdir+`
/// (arch/x86/entry/syscalls/syscall_64.tbl).
const SYS_FSMOUNT: u32 = 432;
/// `openat2` (Linux 5.6): the kernel resolver for paths inside layers.
const SYS_OPENAT2: u32 = 437;

enum Outcome {
    Pass(String),
    Skip(String),
}

/// The ovl binary of a run and the lane it runs under.
#[derive(Debug, Clone, Copy)]
struct Ovl {
    binary: &'static str,
    lane: Option<Lane>,
}

struct Guest {
    config: Value,
    results: fs::File,
    mounted: BTreeMap<&'static str, PathBuf>,
    /// The current run's ovl.
    ovl: Ovl,
    /// The deepest image the current run's `deep` scenario mounted (lowers with the init layer).
    deepest: Option<usize>,
    /// The deepest `deep:<n>` an earlier run found by its search: where a later run's search
    /// starts (the limit is the kernel's page, the same in every run).
    deep_hint: Option<usize>,
    counts: [usize; 3],
}

pub fn vm_guest(args: &[String]) -> Result<()> {
    let config_path = args.first().context("usage: xtask vm-guest CONFIG")?;
    let config: Value = serde_json::from_slice(&fs::read(config_path)?)?;
    let results = fs::OpenOptions::new().write(true).open(RESULTS)?;
    let strings = |key: &str| -> Vec<String> {
        config[key]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let scenarios = strings("scenarios");
    let lanes = strings("lanes")
        .iter()
        .map(|name| abi_lane::lane(name).with_context(|| format!("config names no lane {name}")))
        .collect::<Result<Vec<_>>>()?;
    let runs: Vec<Ovl> = std::iter::once(Ovl {
        binary: OVL,
        lane: None,
    })
    .chain(lanes.into_iter().map(|lane| Ovl {
        binary: GUEST_LANE_OVL,
        lane: Some(lane),
    }))
    .collect();
    let mut guest = Guest {
        config,
        results,
        mounted: BTreeMap::new(),
        ovl: runs[0],
        deepest: None,
        deep_hint: None,
        counts: [0; 3],
    };
    let uptime = fs::read_to_string("/proc/uptime").unwrap_or_default();
    let uptime = uptime.split_whitespace().next().unwrap_or("?").to_string();
    guest.emit(&format!("BOOT {uptime} s to the runner"));
    load_modules("base")?;
    // Every run's no-overlay-module first, while overlay is not loaded yet.
    let (before_overlay, after_overlay): (Vec<&String>, Vec<&String>) = scenarios
        .iter()
        .partition(|scenario| *scenario == "no-overlay-module");
    for scenario in &before_overlay {
        for ovl in &runs {
            guest.start_run(*ovl);
            guest.run_scenario(scenario);
        }
    }
    if !after_overlay.is_empty() {
        load_modules("overlay")?;
    }
    for ovl in &runs {
        guest.start_run(*ovl);
        for scenario in &after_overlay {
            guest.run_scenario(scenario);
        }
    }
    let [passed, failed, skipped] = guest.counts;
    guest.emit(&format!(
        "SUMMARY passed={passed} failed={failed} skipped={skipped}"
    ));
    guest.unmount_all();
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

    /// `lowerdir+` as the kernel's release says, unless the run's lane lacks the new mount API.
    fn expect_lowerdir_plus(&self) -> Option<bool> {
        match self.ovl.lane {
            Some(lane) if lane.last_syscall < SYS_FSMOUNT => Some(false),
            _ => self.expect("lowerdir_plus"),
        }
    }

    /// The in-root resolver `ovl info` must report: `openat2` where the kernel has it and the
    /// run's lane keeps it, the userspace walk otherwise.
    fn expect_resolver(&self) -> Option<&'static str> {
        let kernel = self.expect("openat2")?;
        let lane = self
            .ovl
            .lane
            .is_none_or(|lane| lane.last_syscall >= SYS_OPENAT2);
        Some(if kernel && lane {
            "openat2"
        } else {
            "userspace"
        })
    }

    /// `native` or the lane's name: the data roots' directory and the result lines' middle part.
    fn run_name(&self) -> &'static str {
        self.ovl.lane.map_or("native", |lane| lane.name)
    }

    /// Starts a run: its ovl, and fresh filesystems (formatted again on first use), so that no
    /// data root, probe cache (`ovl.probe`) or container of an earlier run is seen.
    fn start_run(&mut self, ovl: Ovl) {
        self.unmount_all();
        self.ovl = ovl;
        self.deepest = None;
    }

    /// Runs one scenario of the current run and emits its result line.
    fn run_scenario(&mut self, scenario: &str) {
        let started = Instant::now();
        let outcome = match scenario {
            "no-overlay-module" => self.no_overlay_module(),
            "conformance" => self.conformance(),
            "filesystems" => self.filesystems(),
            "centos7-trap" => self.centos7_trap(),
            "deep" => self.deep(),
            "probe" => self.probe(),
            other => Err(anyhow::anyhow!("unknown scenario {other}")),
        };
        let secs = started.elapsed().as_secs_f64();
        let kernel = self.config["kernel"].as_str().unwrap_or("?").to_string();
        let run = match self.ovl.lane {
            Some(lane) => format!("{}/", lane.name),
            None => String::new(),
        };
        let (word, detail, slot) = match outcome {
            Ok(Outcome::Pass(detail)) => ("PASS", detail, 0),
            Ok(Outcome::Skip(detail)) => ("SKIP", detail, 2),
            Err(err) => ("FAIL", format!("{err:#}"), 1),
        };
        self.counts[slot] += 1;
        let detail = detail.replace('\n', " | ");
        self.emit(&format!(
            "{word} {kernel}/{run}{scenario} ({secs:.1} s) {detail}"
        ));
    }

    /// Containers a scenario left mounted, then the scratch filesystems.
    fn unmount_all(&mut self) {
        let _ = Command::new("umount")
            .args(["-a", "-t", "overlay"])
            .status();
        for target in self.mounted.values() {
            let unmounted = Command::new("umount")
                .arg(target)
                .status()
                .is_ok_and(|status| status.success());
            if !unmounted {
                let _ = Command::new("umount").arg("-l").arg(target).status();
            }
        }
        self.mounted.clear();
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
        let ovl = self.ovl;
        if overlay_registered() {
            return Ok(Outcome::Skip(
                "overlay is built into this kernel: it cannot be missing".to_string(),
            ));
        }
        let root = self.fs("ext4")?.join(self.run_name()).join("no-overlay");
        ovl.ok(&root, &["load", "-i", &corpus("seed.tar")])?;
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
        let out = ovl.output(&root, &["run-rootfs", "--name", "nomod", "ovl-seed:1"])?;
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
        let ps = ovl.ok(&root, &["ps", "-a", "-q"])?;
        ensure!(ps.trim().is_empty(), "a container is listed: {ps}");
        Ok(Outcome::Pass(format!(
            "refused, data root unchanged: {}",
            stderr.trim()
        )))
    }

    /// The conformance images: each merged tree as Docker's; the change's diff as docker diff;
    /// its commit, save and reload as docker commit's tree; fsck clean.
    fn conformance(&mut self) -> Result<Outcome> {
        let ovl = self.ovl;
        let root = self.fs("ext4")?.join(self.run_name()).join("conformance");
        let started = Instant::now();
        ovl.ok(&root, &["load", "-i", &corpus("conformance.tar")])?;
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
            let merged = ovl.run_rootfs(&root, &name, tag)?;
            compare_dump(
                &format!("merged tree of {tag}"),
                &expected(&dump_name(tag))?,
                &merged,
            )?;
            ovl.ok(&root, &["rm", "-f", &name])?;
        }

        let merged = ovl.run_rootfs(&root, "change", "ovl-changes:1")?;
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
        let diff = sorted_lines(&ovl.ok(&root, &["diff", "change"])?);
        let docker_diff = sorted_lines(&expected("change.diff")?);
        if diff != docker_diff {
            bail!(
                "ovl diff differs from docker diff:\n{}",
                line_difference(&docker_diff, &diff)
            );
        }
        ovl.ok(&root, &["commit", "change", "vm-committed:1"])?;
        let committed = expected("committed.dump")?;
        let merged = ovl.run_rootfs(&root, "committed", "vm-committed:1")?;
        compare_dump("the committed image's tree", &committed, &merged)?;
        let saved = root.with_file_name("vm-committed.tar");
        ovl.ok(
            &root,
            &["save", "-o", &saved.display().to_string(), "vm-committed:1"],
        )?;
        ovl.ok(&root, &["rm", "-f", "committed", "change"])?;
        ovl.ok(&root, &["rmi", "vm-committed:1"])?;
        ovl.ok(&root, &["load", "-i", &saved.display().to_string()])?;
        let merged = ovl.run_rootfs(&root, "reloaded", "vm-committed:1")?;
        compare_dump("the saved and reloaded commit's tree", &committed, &merged)?;
        ovl.ok(&root, &["rm", "-f", "reloaded"])?;
        ovl.ok(&root, &["fsck", "--verify-content"])?;
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
        let ovl = self.ovl;
        let seed = expected(&dump_name("ovl-seed:1"))?;
        let mut done = Vec::new();
        for kind in ["ext4", "xfs", "tmpfs"] {
            let root = self.fs(kind)?.join(self.run_name()).join("filesystems");
            let context = |what: &str| format!("{kind}: {what}");
            ovl.ok(&root, &["load", "-i", &corpus("seed.tar")])
                .with_context(|| context("load"))?;
            let merged = ovl
                .run_rootfs(&root, "fs", "ovl-seed:1")
                .with_context(|| context("mount"))?;
            compare_dump(&context("merged tree of ovl-seed:1"), &seed, &merged)?;
            fs::write(merged.join("fs-test"), kind)?;
            let diff = ovl.ok(&root, &["diff", "fs"])?;
            ensure!(
                diff == "A /fs-test\n",
                "{}: diff after adding /fs-test is {diff:?}",
                kind
            );
            ovl.ok(&root, &["commit", "fs", "fs:1"])
                .with_context(|| context("commit"))?;
            let merged = ovl.run_rootfs(&root, "fs2", "fs:1")?;
            ensure!(
                fs::read_to_string(merged.join("fs-test"))? == kind,
                "{kind}: the committed layer lost /fs-test"
            );
            ovl.ok(&root, &["rm", "-f", "fs", "fs2"])?;
            ovl.ok(&root, &["fsck", "--verify-content"])
                .with_context(|| context("fsck"))?;
            done.push(kind);
        }
        Ok(Outcome::Pass(format!(
            "load, run-rootfs (tree as Docker's), diff, commit, fsck on {}",
            done.join(", ")
        )))
    }

    /// XFS V4 with ftype=0 (the CentOS 7 default): ovl refuses with the remedy, writing nothing.
    fn centos7_trap(&mut self) -> Result<Outcome> {
        let ovl = self.ovl;
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
            let out = ovl.output(&root, &args)?;
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
        let ovl = self.ovl;
        let root = self.fs("ext4")?.join(self.run_name()).join("deep");
        let lowerdir_plus = self.expect_lowerdir_plus() == Some(true);
        if lowerdir_plus {
            let max = self.config["deep_max"].as_u64().unwrap_or(500) as usize;
            let started = Instant::now();
            ovl.ok(&root, &["load", "-i", &corpus("deep-max.tar")])?;
            let load_secs = started.elapsed().as_secs_f64();
            let merged = ovl.run_rootfs(&root, "deep", &format!("deep:{max}"))?;
            check_deep_tree(&merged, max)?;
            ovl.ok(&root, &["rm", "-f", "deep"])?;
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
        ovl.ok(&root, &["load", "-i", &corpus("deep-prefixes.tar")])?;
        let try_mount = |n: usize| -> Result<bool> {
            let name = format!("deep{n}");
            let out = ovl.output(
                &root,
                &["run-rootfs", "--name", &name, &format!("deep:{n}")],
            )?;
            if out.status.success() {
                ovl.ok(&root, &["rm", "-f", &name])?;
                return Ok(true);
            }
            let stderr = String::from_utf8_lossy(&out.stderr);
            ensure!(
                stderr.contains("too many layers"),
                "deep:{n} failed for another reason than its depth: {stderr}"
            );
            Ok(false)
        };
        // An earlier run's answer first: two mounts instead of a search of about eight.
        let mut how = "found by a binary search".to_string();
        let hinted = match self.deep_hint.filter(|n| (lo..hi).contains(n)) {
            Some(n) if try_mount(n)? && !try_mount(n + 1)? => Some(n),
            _ => None,
        };
        if let Some(n) = hinted {
            (lo, hi) = (n, n + 1);
            how = format!(
                "as in the first run: deep:{n} mounts, deep:{} does not",
                n + 1
            );
        } else {
            ensure!(try_mount(lo)?, "deep:{lo} does not mount");
            ensure!(
                !try_mount(hi)?,
                "deep:{hi} mounts without lowerdir+: the prefix range is too small"
            );
        }
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if try_mount(mid)? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let deepest = lo;
        self.deep_hint.get_or_insert(deepest);
        let before = snapshot_names(&root.join("overlay2"))?;
        let out = ovl.output(
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
        let merged = ovl.run_rootfs(&root, "deepest", &format!("deep:{deepest}"))?;
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
        ovl.ok(&root, &["rm", "-f", "deepest"])?;
        self.deepest = Some(deepest + 1);
        Ok(Outcome::Pass(format!(
            "deep:{deepest} mounts with relative l/ lowers ({} lowers with the init layer, \
             {data_len} of {limit} bytes of mount data; {how}); deep:{} refused: {refusal}",
            deepest + 1,
            deepest + 1
        )))
    }

    /// `ovl info` on ext4, XFS and tmpfs against the kernel's config and what `deep` found.
    fn probe(&mut self) -> Result<Outcome> {
        let ovl = self.ovl;
        let release = fs::read_to_string("/proc/sys/kernel/osrelease")?
            .trim()
            .to_string();
        let mut report = Vec::new();
        for (kind, docker_name) in [("ext4", "extfs"), ("xfs", "xfs"), ("tmpfs", "tmpfs")] {
            let root = self.fs(kind)?.join(self.run_name()).join("probe");
            ovl.ok(&root, &["load", "-i", &corpus("seed.tar")])?;
            let info: Value = serde_json::from_str(&ovl.ok(&root, &["info", "--format", "json"])?)?;
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
                    self.expect_lowerdir_plus(),
                ),
                // A mount option, not a system call: no lane takes it away.
                (
                    "volatile",
                    info["Volatile"].as_bool() == Some(true),
                    self.expect("volatile"),
                ),
            ];
            // What the expectations come from: the kernel's config and release, and the lane.
            let source = match self.ovl.lane {
                Some(lane) => format!(
                    "the kernel's config under the {} lane (system calls up to {} {})",
                    lane.name, lane.last_syscall, lane.last_syscall_name
                ),
                None => "the kernel's config".to_string(),
            };
            let mut said = Vec::new();
            for (what, found, expected) in checks {
                if let Some(expected) = expected {
                    ensure!(
                        found == expected,
                        "{kind}: ovl info says {what} {found}, {source} says {expected}"
                    );
                }
                said.push(format!("{what} {found}"));
            }
            let resolver = info["Resolver"]
                .as_str()
                .with_context(|| format!("{kind}: ovl info --format json has no Resolver"))?;
            if let Some(expected) = self.expect_resolver() {
                ensure!(
                    resolver == expected,
                    "{kind}: ovl info says resolver {resolver}, {source} says {expected}"
                );
            }
            said.push(format!("resolver {resolver}"));
            if let Some(mount_path) = info["MountPath"].as_str() {
                said.push(format!("mount path {mount_path}"));
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

impl Ovl {
    /// `ovl --root ROOT ARGS...`, under the lane when there is one.
    fn output(&self, root: &Path, args: &[&str]) -> Result<Output> {
        let mut command = Command::new(self.binary);
        command.arg("--root").arg(root).args(args);
        if let Some(lane) = self.lane {
            lane.wrap(&mut command);
        }
        command.output().with_context(|| {
            format!(
                "running {}{}",
                self.binary,
                self.lane
                    .map(|lane| format!(" under the {} lane", lane.name))
                    .unwrap_or_default()
            )
        })
    }

    fn ok(&self, root: &Path, args: &[&str]) -> Result<String> {
        let out = self.output(root, args)?;
        ensure!(
            out.status.success(),
            "ovl {} failed with {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn run_rootfs(&self, root: &Path, name: &str, image: &str) -> Result<PathBuf> {
        let out = self.ok(root, &["run-rootfs", "--name", name, image])?;
        Ok(PathBuf::from(out.trim()))
    }
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
