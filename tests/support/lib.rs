//! Support library of the end-to-end tests: prerequisites, the `ovl` binary, a private dockerd
//! 20.10 with its own data root and bridge, the conformance image set, and readers of the layerdb
//! that work on Docker's and ovl's data roots alike (they share the format, spec §1).
//!
//! Everything that asserts a filesystem result goes through `treedump`; the expected side always
//! comes from Docker or from values written down here, never from ovl's output.
#![deny(unsafe_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use sha2::{Digest, Sha256};

pub use treedump::{compare, dump, format, DumpOptions, Record};

/// The Debian `docker.io` 20.10 daemon.
pub const DOCKERD: &str = "/usr/sbin/dockerd";
/// The 20.10 client from the same package (`/usr/local/bin/docker` is a newer client).
pub const DOCKER: &str = "/usr/bin/docker";
/// skopeo 1.9.3 from Debian.
pub const SKOPEO: &str = "/usr/bin/skopeo";
/// The static busybox of Debian's `busybox-static`, copied into the base image.
pub const BUSYBOX: &str = "/bin/busybox";
/// The tag of the base image every conformance Dockerfile starts from.
pub const BASE_IMAGE: &str = "ovl-base:1";
/// How long a private dockerd may take to answer `docker version`.
const DOCKERD_START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long dockerd may take to exit after SIGTERM before it is killed.
const DOCKERD_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Paths of a container root that Docker mounts over or bind-mounts from outside the image
/// (`/dev`, `/proc`, `/sys`, the files of `containers/<id>/`) or that the init layer creates
/// (`/.dockerenv`, `/etc/mtab`): both sides of a merged-view comparison leave them out.
pub const MERGED_EXCLUDES: [&str; 8] = [
    "dev",
    "proc",
    "sys",
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
    "etc/mtab",
    ".dockerenv",
];

/// The `security.capability` value of cap_net_bind_service+ep in VFS_CAP_REVISION_2 layout:
/// magic_etc = 0x02000001 (revision 2, effective flag) little-endian, permitted[0] = 1 << 10
/// (CAP_NET_BIND_SERVICE = 10), all other words 0.
pub const CAP_NET_BIND_SERVICE_EP: [u8; 20] = [
    0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00,
];

// ------------------------------------------------------------------------------------------------
// Prerequisites

/// True when running as root; else skips (or, under CI=true, fails) `test_name`.
pub fn require_root(test_name: &str) -> bool {
    if is_root() {
        true
    } else {
        missing(test_name, "not running as root")
    }
}

/// True when running as root with dockerd 20.10, its client and the static busybox installed.
pub fn require_dockerd(test_name: &str) -> bool {
    if !require_root(test_name) {
        return false;
    }
    for (path, package) in [
        (DOCKERD, "docker.io"),
        (DOCKER, "docker.io"),
        (BUSYBOX, "busybox-static"),
    ] {
        if !Path::new(path).exists() {
            return missing(test_name, &format!("{path} missing (install {package})"));
        }
    }
    true
}

/// True when /usr/bin/skopeo is installed.
pub fn require_skopeo(test_name: &str) -> bool {
    if Path::new(SKOPEO).exists() {
        true
    } else {
        missing(test_name, "/usr/bin/skopeo missing (install skopeo)")
    }
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Whether the program at `path` (from the Debian package `package`) is installed; a missing one
/// is a missing prerequisite.
pub fn require_program(test_name: &str, path: &str, package: &str) -> bool {
    Path::new(path).exists()
        || missing(
            test_name,
            &format!("{path} is missing (Debian package {package})"),
        )
}

/// Reports a missing prerequisite: a panic under CI=true, else a SKIP line; returns false.
fn missing(test_name: &str, reason: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test_name}: prerequisite missing under CI=true: {reason}");
    }
    eprintln!("SKIP {test_name}: {reason}");
    false
}

// ------------------------------------------------------------------------------------------------
// Scratch directories

static SCRATCH_COUNTER: AtomicUsize = AtomicUsize::new(0);
/// How many daemons this process has started; names the bridge of the next one.
static DOCKERD_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh, not yet created path `/var/tmp/ovl-tests-<pid>-<n>` (the same filesystem as /tmp
/// here, and one that supports overlay upper dirs).
pub fn scratch_path() -> PathBuf {
    let n = SCRATCH_COUNTER.fetch_add(1, Ordering::SeqCst);
    PathBuf::from(format!("/var/tmp/ovl-tests-{}-{n}", std::process::id()))
}

/// A scratch directory that is unmounted below and removed when dropped.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// Creates a fresh scratch directory (mode 0755, so that other users can traverse it).
    pub fn new() -> Scratch {
        let path = scratch_path();
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
        Scratch { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path/name`.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path.join(name)
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        unmount_below(&self.path);
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Detaches every mount at or below `dir`, deepest first, as listed in /proc/self/mountinfo.
pub fn unmount_below(dir: &Path) {
    let Ok(mountinfo) = fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut mount_points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(OsStr::from_bytes(&unescape_mountinfo(field))))
        .filter(|mount_point| mount_point.starts_with(dir))
        .collect();
    mount_points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    mount_points.dedup();
    for mount_point in mount_points {
        // A mount point can be stacked several times; detach until it is gone or fails.
        for _ in 0..8 {
            if nix::mount::umount2(&mount_point, nix::mount::MntFlags::MNT_DETACH).is_err() {
                break;
            }
        }
    }
}

/// Undoes the octal escapes (`\040` for a space) of a mountinfo field.
fn unescape_mountinfo(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value =
                (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

// ------------------------------------------------------------------------------------------------
// The ovl binary

/// The `ovl` binary: `OVL_BIN`, else `target/debug/ovl` beside the test executable's `deps/` dir.
pub fn ovl_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("OVL_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test executable has a parent dir");
    let profile_dir = if deps.ends_with("deps") {
        deps.parent().expect("deps has a parent dir")
    } else {
        deps
    };
    profile_dir.join("ovl")
}

/// The ABI lane every `ovl` command of the tests runs in: `OVL_ABI_LANE` (`centos7`, `rhel8`,
/// `ubuntu20.04`; see the `abi-lane` crate), none when unset.
pub fn abi_lane() -> Option<abi_lane::Lane> {
    abi_lane::from_env().unwrap_or_else(|err| panic!("{err}"))
}

/// The `ovl` CLI on one data root.
#[derive(Debug, Clone)]
pub struct Ovl {
    pub bin: PathBuf,
    pub root: PathBuf,
}

impl Ovl {
    /// `ovl --root <root>` with the binary from [`ovl_bin`].
    pub fn new(root: impl Into<PathBuf>) -> Ovl {
        Ovl {
            bin: ovl_bin(),
            root: root.into(),
        }
    }

    /// The command with `--root` set, ready for more arguments.
    pub fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(&self.bin);
        command.arg("--root").arg(&self.root).args(args);
        command.env_remove("OVL_ROOT");
        if let Some(lane) = abi_lane() {
            lane.wrap(&mut command);
        }
        command
    }

    /// Runs `ovl --root <root> args…` and returns its output whatever the exit status.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.command(args);
        command
            .output()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()))
    }

    /// Runs and returns stdout, or an error carrying the exit status and stderr.
    pub fn try_ok<I, S>(&self, args: I) -> anyhow::Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let output = self
            .command(&args)
            .output()
            .with_context(|| format!("spawn {}", self.bin.display()))?;
        ensure!(
            output.status.success(),
            "ovl {:?} failed with {}: {}",
            args,
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Runs and returns stdout; panics with stderr when the command fails.
    pub fn ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.try_ok(args).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Runs a command that must fail with exit status 1 and returns its stderr.
    pub fn fail<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let output = self.run(&args);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert_eq!(
            output.status.code(),
            Some(1),
            "ovl {args:?} should exit 1; stdout: {} stderr: {stderr}",
            String::from_utf8_lossy(&output.stdout)
        );
        stderr
    }

    /// `ovl load -i <archive>` and the image reference it reports (the first `Loaded image:`
    /// name, else the `Loaded image ID:`).
    pub fn load(&self, archive: &Path) -> anyhow::Result<String> {
        let stdout = self.try_ok([OsStr::new("load"), OsStr::new("-i"), archive.as_os_str()])?;
        parse_loaded(&stdout)
            .with_context(|| format!("no `Loaded image` line in ovl load output {stdout:?}"))
    }

    /// `ovl inspect <name>` parsed: the first element of the JSON array.
    pub fn inspect(&self, name: &str) -> anyhow::Result<serde_json::Value> {
        let stdout = self.try_ok(["inspect", name])?;
        let value: serde_json::Value =
            serde_json::from_str(&stdout).with_context(|| format!("ovl inspect {name}"))?;
        value
            .as_array()
            .and_then(|a| a.first())
            .cloned()
            .with_context(|| format!("ovl inspect {name} printed no array element: {stdout}"))
    }
}

/// The image named by `load` output (`Loaded image: name:tag` or `Loaded image ID: sha256:…`).
pub fn parse_loaded(stdout: &str) -> Option<String> {
    let tagged = stdout
        .lines()
        .find_map(|line| line.strip_prefix("Loaded image: "));
    let untagged = || {
        stdout
            .lines()
            .find_map(|line| line.strip_prefix("Loaded image ID: "))
    };
    tagged.or_else(untagged).map(|s| s.trim().to_string())
}

// ------------------------------------------------------------------------------------------------
// A private dockerd 20.10

/// A private dockerd with its own data root, exec root, socket and bridge; everything it started
/// is stopped and removed on drop.
#[derive(Debug)]
pub struct Dockerd {
    scratch: PathBuf,
    data_root: PathBuf,
    exec_root: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    bridge: String,
    child: Option<Child>,
}

impl Dockerd {
    /// Starts dockerd below `scratch` (created; removed again on drop) and waits until it answers.
    pub fn start(scratch: &Path) -> Dockerd {
        fs::create_dir_all(scratch).unwrap_or_else(|e| panic!("mkdir {}: {e}", scratch.display()));
        let n = DOCKERD_COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        // Interface names have at most 15 bytes; a second daemon of one process gets a suffix.
        let bridge = if n == 0 {
            format!("ovlt{}", pid % 10000)
        } else {
            format!("ovlt{}x{}", pid % 10000, n % 100)
        };
        let mut dockerd = Dockerd {
            scratch: scratch.to_path_buf(),
            data_root: scratch.join("data"),
            exec_root: scratch.join("exec"),
            socket: scratch.join("docker.sock"),
            log: scratch.join("dockerd.log"),
            bridge,
            child: None,
        };
        dockerd.create_bridge(pid, n);
        let config = scratch.join("daemon.json");
        fs::write(&config, b"{}\n").expect("write daemon.json");
        fs::create_dir_all(scratch.join("client-config")).expect("mkdir client config");
        let log = fs::File::create(&dockerd.log).expect("create dockerd log");
        let child = Command::new(DOCKERD)
            .arg("--config-file")
            .arg(&config)
            .arg("--data-root")
            .arg(&dockerd.data_root)
            .arg("--exec-root")
            .arg(&dockerd.exec_root)
            .arg("--pidfile")
            .arg(scratch.join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", dockerd.socket.display()))
            .args(["--storage-driver", "overlay2"])
            .args(["--iptables=false", "--ip-masq=false", "--ip6tables=false"])
            .args(["--userland-proxy=false", "--log-level", "info"])
            .arg("--bridge")
            .arg(&dockerd.bridge)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {DOCKERD}: {e}"));
        dockerd.child = Some(child);

        let started = Instant::now();
        loop {
            let answered = dockerd
                .docker(["version", "--format", "{{.Server.Version}}"])
                .status
                .success();
            if answered {
                break;
            }
            if let Some(child) = dockerd.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "dockerd exited with {status} during startup; log:\n{}",
                        dockerd.log_text()
                    );
                }
            }
            if started.elapsed() > DOCKERD_START_TIMEOUT {
                panic!(
                    "dockerd did not answer within {DOCKERD_START_TIMEOUT:?}; log:\n{}",
                    dockerd.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        dockerd
    }

    /// Creates the daemon's own bridge with an address in 10.213.<x>.0/24.
    fn create_bridge(&self, pid: u32, n: usize) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        let address = format!("10.213.{}.1/24", (pid as usize + n) % 250 + 1);
        for args in [
            vec!["link", "add", &self.bridge, "type", "bridge"],
            vec!["addr", "add", &address, "dev", &self.bridge],
            vec!["link", "set", &self.bridge, "up"],
        ] {
            let output = Command::new("ip").args(&args).output().expect("run ip");
            assert!(
                output.status.success(),
                "ip {args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    pub fn data_root(&self) -> &Path {
        &self.data_root
    }

    pub fn scratch(&self) -> &Path {
        &self.scratch
    }

    /// The daemon log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The 20.10 client on this daemon's socket (classic builder, a private client config).
    pub fn docker_command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(DOCKER);
        command
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args)
            .env("DOCKER_BUILDKIT", "0")
            .env("DOCKER_CONFIG", self.scratch.join("client-config"))
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null());
        command
    }

    /// Runs the client and returns its output whatever the status.
    pub fn docker<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.docker_command(args)
            .output()
            .unwrap_or_else(|e| panic!("spawn {DOCKER}: {e}"))
    }

    /// Runs the client and returns stdout; panics with stderr and the daemon log tail on failure.
    pub fn docker_ok<I, S>(&self, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let output = self.docker(&args);
        if !output.status.success() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            panic!(
                "docker {args:?} failed with {}:\nstdout: {}\nstderr: {}\ndockerd log tail:\n{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `docker image inspect -f '{{.Id}}'`.
    pub fn image_id(&self, image: &str) -> String {
        self.docker_ok(["image", "inspect", "-f", "{{.Id}}", image])
            .trim()
            .to_string()
    }

    /// `docker save -o <out> <image>`.
    pub fn save(&self, image: &str, out: &Path) {
        self.docker_ok([
            OsStr::new("save"),
            OsStr::new("-o"),
            out.as_os_str(),
            OsStr::new(image),
        ]);
    }

    /// Stops the daemon the way `systemctl stop docker` does, keeping its data root, containers
    /// and scratch directory; returns the scratch directory, where [`Dockerd::start`] starts a
    /// daemon on the same data root again (which then cleans everything up when dropped).
    pub fn stop_keeping_state(mut self) -> PathBuf {
        if let Some(mut child) = self.child.take() {
            self.terminate(&mut child);
        }
        kill_processes_mentioning(&self.scratch);
        unmount_below(&self.scratch);
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        self.scratch.clone()
    }

    /// SIGTERM, then SIGKILL after [`DOCKERD_STOP_TIMEOUT`].
    fn terminate(&self, child: &mut Child) {
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let stopping = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if stopping.elapsed() < DOCKERD_STOP_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
    }

    /// Stops and removes every container, stops the daemon and its containerd, unmounts and
    /// deletes everything it made.
    fn shutdown(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(None)) {
            let ids = self.docker(["ps", "-aq"]);
            let ids = String::from_utf8_lossy(&ids.stdout).into_owned();
            let ids: Vec<&str> = ids.split_whitespace().collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f"];
                args.extend(ids);
                let _ = self.docker(args);
            }
            self.terminate(&mut child);
        }
        kill_processes_mentioning(&self.scratch);
        unmount_below(&self.scratch);
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        let _ = fs::remove_dir_all(&self.scratch);
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// SIGKILLs the processes whose command line mentions `dir`: the containerd that dockerd started
/// for this data root and its shims (`-address <exec-root>/containerd/containerd.sock`). Only
/// processes of this test's daemon can name its scratch path.
fn kill_processes_mentioning(dir: &Path) {
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    // The trailing slash keeps `/var/tmp/ovl-tests-1-1` from matching `/var/tmp/ovl-tests-1-10`.
    let mut needle = dir.as_os_str().as_bytes().to_vec();
    needle.push(b'/');
    let needle = needle.as_slice();
    let own_pid = std::process::id() as i32;
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == own_pid {
            continue;
        }
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if cmdline.windows(needle.len()).any(|w| w == needle) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Images

/// Imports [`BASE_IMAGE`]: busybox with one symlink per applet in /bin, a minimal /etc/passwd and
/// /etc/group, and /tmp; made without network from the host's static busybox.
pub fn base_image(docker: &Dockerd) -> String {
    let tar = base_rootfs_tar();
    let path = docker.scratch().join("ovl-base.tar");
    fs::write(&path, tar).expect("write base tar");
    docker.docker_ok([
        OsStr::new("import"),
        path.as_os_str(),
        OsStr::new(BASE_IMAGE),
    ]);
    BASE_IMAGE.to_string()
}

/// The rootfs tar of the base image.
pub fn base_rootfs_tar() -> Vec<u8> {
    let busybox = fs::read(BUSYBOX).expect("read /bin/busybox");
    let list = Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .expect("busybox --list");
    let applets = String::from_utf8(list.stdout).expect("applet list is UTF-8");
    // A fixed mtime keeps the base layer's DiffID stable across runs.
    let mtime = 1_600_000_000;
    let mut builder = tar::Builder::new(Vec::new());
    for (dir, mode) in [
        ("bin/", 0o755),
        ("etc/", 0o755),
        ("tmp/", 0o1777),
        ("root/", 0o700),
    ] {
        append_entry(
            &mut builder,
            dir,
            tar::EntryType::Directory,
            mode,
            0,
            0,
            mtime,
            b"",
            None,
        );
    }
    append_entry(
        &mut builder,
        "bin/busybox",
        tar::EntryType::Regular,
        0o755,
        0,
        0,
        mtime,
        &busybox,
        None,
    );
    for applet in applets.lines().map(str::trim).filter(|a| !a.is_empty()) {
        if applet == "busybox" || applet.contains('/') {
            continue;
        }
        append_entry(
            &mut builder,
            &format!("bin/{applet}"),
            tar::EntryType::Symlink,
            0o777,
            0,
            0,
            mtime,
            b"",
            Some("busybox"),
        );
    }
    let passwd =
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    let group = b"root:x:0:\nnogroup:x:65534:\n";
    append_entry(
        &mut builder,
        "etc/passwd",
        tar::EntryType::Regular,
        0o644,
        0,
        0,
        mtime,
        passwd,
        None,
    );
    append_entry(
        &mut builder,
        "etc/group",
        tar::EntryType::Regular,
        0o644,
        0,
        0,
        mtime,
        group,
        None,
    );
    builder.into_inner().expect("finish base tar")
}

/// Appends one entry with a GNU-free ustar header.
#[allow(clippy::too_many_arguments)]
pub fn append_entry(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &str,
    entry_type: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    data: &[u8],
    link_name: Option<&str>,
) {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(entry_type);
    header.set_mode(mode);
    header.set_uid(uid);
    header.set_gid(gid);
    header.set_mtime(mtime);
    header.set_size(data.len() as u64);
    if let Some(link_name) = link_name {
        header.set_link_name(link_name).expect("link name");
    }
    builder
        .append_data(&mut header, path, data)
        .unwrap_or_else(|e| panic!("append {path}: {e}"));
}

/// A file of a build context: path relative to the context, content, mode.
pub type ContextFile<'a> = (&'a str, Vec<u8>, u32);

/// Builds `dockerfile` with the classic builder and `--network none`, the context holding
/// `context_files` (path, content, mode); returns the image id.
pub fn build_image(
    docker: &Dockerd,
    tag: &str,
    dockerfile: &str,
    context_files: &[ContextFile],
) -> String {
    let ctx = docker
        .scratch()
        .join(format!("ctx-{}", tag.replace([':', '/'], "_")));
    let _ = fs::remove_dir_all(&ctx);
    fs::create_dir_all(&ctx).expect("mkdir build context");
    fs::write(ctx.join("Dockerfile"), dockerfile).expect("write Dockerfile");
    for (path, content, mode) in context_files {
        let file = ctx.join(path);
        if let Some(parent) = file.parent() {
            fs::create_dir_all(parent).expect("mkdir in context");
        }
        fs::write(&file, content).expect("write context file");
        fs::set_permissions(&file, fs::Permissions::from_mode(*mode)).expect("chmod context file");
    }
    docker.docker_ok([
        OsStr::new("build"),
        OsStr::new("--network"),
        OsStr::new("none"),
        OsStr::new("-q"),
        OsStr::new("-t"),
        OsStr::new(tag),
        ctx.as_os_str(),
    ]);
    docker.image_id(tag)
}

/// `seed`: the instructions that make layers (RUN, COPY, ADD of a local tar that the builder
/// extracts, including a `security.capability` PAX record) and the ones that only change the
/// config (ENV, WORKDIR, CMD).
pub const SEED_DOCKERFILE: &str = r#"FROM ovl-base:1
RUN mkdir -p /data/a && echo hello > /data/a/hello.txt && chmod 640 /data/a/hello.txt
COPY copied.txt /data/copied.txt
COPY --chown=1000:1000 dir/ /data/dir/
ADD caps.tar /opt/
ENV GREETING=hi PATH=/bin
WORKDIR /work/sub
RUN echo "$GREETING" > greeting && ln -s greeting greeting.link
CMD ["/bin/sh"]
"#;

/// `changes`: whiteouts, an opaque directory, type changes, hardlinks, special files, special
/// mode bits, long and odd names, odd owners, old and new mtimes, and changes on top of all that.
pub const CHANGES_DOCKERFILE: &str = r#"FROM ovl-base:1
RUN mkdir -p /d1 /d2/sub /d3/sub /t/dir2link && echo a > /d1/a && echo b > /d1/b && echo x > /d2/x && echo s > /d2/sub/s && echo y > /d3/sub/y && echo f > /t/file2dir && echo in > /t/dir2link/in && echo gone > /gone && echo keep > /keep
RUN rm /d1/b /gone && rm -r /d2 && mkdir /d2 && echo new > /d2/new && rm -r /d3 && rm /t/file2dir && mkdir /t/file2dir && echo inner > /t/file2dir/inner && rm -r /t/dir2link && ln -s ../d1 /t/dir2link
RUN mkdir /links && echo data > /links/orig && ln /links/orig /links/hard1 && ln /links/orig /links/hard2 && ln /links/orig /links/hard3 && mkfifo /links/fifo && mkdir /devs && mknod /devs/null c 1 3 && mknod /devs/loop b 7 200 && chmod 0640 /devs/loop
RUN echo su > /suid && chmod 4755 /suid && echo sg > /sgid && chmod 2750 /sgid && mkdir /sticky && chmod 1777 /sticky && echo ugs > /sticky/f && chmod 6711 /sticky/f
RUN mkdir /names && cd /names && L=$(head -c 150 /dev/zero | tr '\0' L) && echo long > "$L" && D=$(head -c 100 /dev/zero | tr '\0' d) && mkdir -p "$D/$D" && echo deep > "$D/$D/$(head -c 95 /dev/zero | tr '\0' f)" && echo utf > 'héllo wörld-日本' && echo bad > "$(printf 'bad\377name')"
RUN mkdir /owners && echo o > /owners/a && chown 1234:5678 /owners/a && echo p > /owners/b && chown 70000:70000 /owners/b && mkdir /owners/d && chown 1234:5678 /owners/d && ln -s a /owners/l && chown -h 4321:8765 /owners/l
RUN mkdir /mt && echo old > /mt/old && touch -d '2001-02-03 04:05:06' /mt/old && ln -s old /mt/oldlink && touch -h -d '1999-12-31 23:59:59' /mt/oldlink && echo future > /mt/future && touch -d '2033-05-18 03:33:20' /mt/future
RUN echo more >> /links/hard1 && rm /links/hard2 && echo b2 > /d1/b && rm /d2/new && chmod 0700 /d1 && rm /devs/null && echo again > /gone && echo k > /links/k1 && ln /links/k1 /links/k2
"#;

/// How many RUN layers the `deep` image stacks on the base image.
pub const DEEP_RUN_LAYERS: usize = 105;

/// `deep`: 105 RUN layers that add, modify, delete and re-create files and a directory.
pub fn deep_dockerfile() -> String {
    let mut dockerfile = String::from("FROM ovl-base:1\nRUN mkdir /deep && echo 0 > /deep/f0\n");
    for i in 1..DEEP_RUN_LAYERS {
        let mut steps = vec![
            format!("echo {i} > /deep/f{i}"),
            format!("echo m{i} >> /deep/f{}", i - 1),
        ];
        if i >= 3 && i % 3 == 0 {
            steps.push(format!("rm /deep/f{}", i - 3));
        }
        if i >= 6 && i % 3 == 0 {
            steps.push(format!("echo again{i} > /deep/f{}", i - 6));
        }
        if i % 10 == 0 {
            steps.push(format!(
                "rm -rf /deep/dir && mkdir /deep/dir && echo {i} > /deep/dir/v{i}"
            ));
        }
        dockerfile.push_str("RUN ");
        dockerfile.push_str(&steps.join(" && "));
        dockerfile.push('\n');
    }
    dockerfile
}

/// Layer `i` adds `layers/<i>` (content `<i>\n`) and overwrites `top` with `<i>`.
pub fn deep_layer_tar(i: usize) -> Vec<u8> {
    let mtime = 1_650_000_000 + i as u64;
    let mut builder = tar::Builder::new(Vec::new());
    if i == 0 {
        append_entry(
            &mut builder,
            "layers/",
            tar::EntryType::Directory,
            0o755,
            0,
            0,
            mtime,
            b"",
            None,
        );
    }
    let content = format!("{i}\n");
    append_entry(
        &mut builder,
        &format!("layers/{i}"),
        tar::EntryType::Regular,
        0o644,
        0,
        0,
        mtime,
        content.as_bytes(),
        None,
    );
    append_entry(
        &mut builder,
        "top",
        tar::EntryType::Regular,
        0o644,
        0,
        0,
        mtime,
        i.to_string().as_bytes(),
        None,
    );
    builder.into_inner().expect("finish layer tar")
}

/// The build context of `seed`: plain files and `caps.tar`.
pub fn seed_context() -> Vec<ContextFile<'static>> {
    vec![
        ("copied.txt", b"copied from the context\n".to_vec(), 0o644),
        ("dir/script.sh", b"#!/bin/sh\necho script\n".to_vec(), 0o755),
        ("dir/sub/data", b"sub data".to_vec(), 0o600),
        ("caps.tar", caps_tar(), 0o644),
    ]
}

/// A tar for `ADD` with a file carrying `SCHILY.xattr.security.capability`, a private file of
/// another owner, and a symlink.
pub fn caps_tar() -> Vec<u8> {
    let mtime = 1_500_000_000;
    let mut builder = tar::Builder::new(Vec::new());
    append_entry(
        &mut builder,
        "capdir/",
        tar::EntryType::Directory,
        0o755,
        0,
        0,
        mtime,
        b"",
        None,
    );
    builder
        .append_pax_extensions([(
            "SCHILY.xattr.security.capability",
            &CAP_NET_BIND_SERVICE_EP[..],
        )])
        .expect("pax header");
    append_entry(
        &mut builder,
        "capdir/ping",
        tar::EntryType::Regular,
        0o755,
        0,
        0,
        mtime,
        b"#!/bin/sh\necho pong\n",
        None,
    );
    append_entry(
        &mut builder,
        "capdir/private",
        tar::EntryType::Regular,
        0o600,
        1000,
        1000,
        mtime,
        b"secret",
        None,
    );
    append_entry(
        &mut builder,
        "capdir/link",
        tar::EntryType::Symlink,
        0o777,
        0,
        0,
        mtime,
        b"",
        Some("ping"),
    );
    builder.into_inner().expect("finish caps tar")
}

/// Builds base, `ovl-seed:1`, `ovl-changes:1` and `ovl-deep:1`, printing how long each took;
/// returns the image tags.
pub fn build_conformance_images(docker: &Dockerd) -> Vec<String> {
    let started = Instant::now();
    base_image(docker);
    eprintln!(
        "timing: docker import {BASE_IMAGE}: {:.1?}",
        started.elapsed()
    );
    let mut tags = vec![BASE_IMAGE.to_string()];
    let builds: [(&str, String, Vec<ContextFile>); 3] = [
        ("ovl-seed:1", SEED_DOCKERFILE.to_string(), seed_context()),
        ("ovl-changes:1", CHANGES_DOCKERFILE.to_string(), vec![]),
        ("ovl-deep:1", deep_dockerfile(), vec![]),
    ];
    for (tag, dockerfile, context) in builds {
        let started = Instant::now();
        build_image(docker, tag, &dockerfile, &context);
        eprintln!("timing: docker build {tag}: {:.1?}", started.elapsed());
        tags.push(tag.to_string());
    }
    tags
}

// ------------------------------------------------------------------------------------------------
// layerdb and chain ids

/// One `layerdb/sha256/<chain>/` entry, the files' exact contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    pub diff: String,
    pub size: String,
    pub parent: Option<String>,
    pub cache_id: String,
}

/// Every layer of a data root, keyed by `sha256:<chain id>`, read straight from
/// `image/overlay2/layerdb/sha256/*` (entries that are not 64-hex dirs are ignored, like Docker).
pub fn layerdb(data_root: &Path) -> BTreeMap<String, LayerInfo> {
    let dir = layerdb_dir(data_root);
    let mut layers = BTreeMap::new();
    let Ok(entries) = fs::read_dir(&dir) else {
        return layers;
    };
    for entry in entries {
        let entry = entry.expect("read layerdb entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_hex64(&name) || !entry.path().is_dir() {
            continue;
        }
        let read = |file: &str| fs::read_to_string(entry.path().join(file));
        let text = |file: &str| {
            read(file).unwrap_or_else(|e| panic!("read {}/{file}: {e}", entry.path().display()))
        };
        layers.insert(
            format!("sha256:{name}"),
            LayerInfo {
                diff: text("diff"),
                size: text("size"),
                parent: read("parent").ok(),
                cache_id: text("cache-id"),
            },
        );
    }
    layers
}

/// `<root>/image/overlay2/layerdb/sha256`.
pub fn layerdb_dir(data_root: &Path) -> PathBuf {
    data_root.join("image/overlay2/layerdb/sha256")
}

pub fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

pub use gocompat::digest::hex;

/// ChainIDs of a DiffID list (spec §1.1): the first is the DiffID, each next one is
/// `sha256("<parent chain> <diff>")` over the full prefixed strings.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    gocompat::digest::chain_ids(diff_ids)
}

/// `RootFS.Layers` of an image according to Docker.
pub fn image_diff_ids(docker: &Dockerd, image: &str) -> Vec<String> {
    let json = docker.docker_ok(["image", "inspect", "-f", "{{json .RootFS.Layers}}", image]);
    serde_json::from_str(json.trim()).expect("RootFS.Layers is a JSON array of strings")
}

/// The ChainIDs of an image's layers, bottom first, computed from Docker's `RootFS.Layers`.
pub fn image_chain(docker: &Dockerd, image: &str) -> Vec<String> {
    chain_ids(&image_diff_ids(docker, image))
}

/// Reassembles a layer's tar from `tar-split.json.gz` and `overlay2/<cache-id>/diff` and returns
/// the sha256 digest of the result.
pub fn reassembled_digest(
    data_root: &Path,
    chain_id: &str,
    cache_id: &str,
) -> anyhow::Result<String> {
    let hex_id = chain_id.trim_start_matches("sha256:");
    let tar_split = layerdb_dir(data_root)
        .join(hex_id)
        .join("tar-split.json.gz");
    let file =
        fs::File::open(&tar_split).with_context(|| format!("open {}", tar_split.display()))?;
    let diff_dir = data_root.join("overlay2").join(cache_id).join("diff");
    let dir = fs::File::open(&diff_dir).with_context(|| format!("open {}", diff_dir.display()))?;
    let mut hasher = Sha256::new();
    tar_split::reassemble(
        std::io::BufReader::new(file),
        std::os::fd::AsFd::as_fd(&dir),
        Default::default(),
        &mut hasher,
    )
    .with_context(|| format!("reassemble layer {chain_id} from {}", diff_dir.display()))?;
    Ok(format!("sha256:{}", hex(&hasher.finalize())))
}

/// Checks that the reassembled tar of every layer of a data root hashes to its DiffID.
pub fn check_tar_split(data_root: &Path) -> anyhow::Result<usize> {
    let layers = layerdb(data_root);
    for (chain_id, entry) in &layers {
        let digest = reassembled_digest(data_root, chain_id, &entry.cache_id)?;
        ensure!(
            digest == entry.diff,
            "layer {chain_id}: reassembled tar has digest {digest}, diff says {}",
            entry.diff
        );
    }
    Ok(layers.len())
}

/// The invariants a data root keeps after any command, failed or not: `layerdb/tmp` is empty,
/// every `overlay2/<id>` dir (except `l`) belongs to a layer (its cache-id) or a container
/// (mount-id or init-id of a `layerdb/mounts` entry), and every `l/` link resolves.
pub fn check_root_consistent(data_root: &Path) -> anyhow::Result<()> {
    let tmp = data_root.join("image/overlay2/layerdb/tmp");
    if tmp.exists() {
        let leftovers: Vec<_> = fs::read_dir(&tmp)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        ensure!(
            leftovers.is_empty(),
            "{} holds {leftovers:?}",
            tmp.display()
        );
    }
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    for (chain_id, entry) in layerdb(data_root) {
        owners.insert(entry.cache_id.clone(), format!("layer {chain_id}"));
    }
    let mounts = data_root.join("image/overlay2/layerdb/mounts");
    if mounts.exists() {
        for entry in fs::read_dir(&mounts)? {
            let entry = entry?;
            for file in ["mount-id", "init-id"] {
                if let Ok(id) = fs::read_to_string(entry.path().join(file)) {
                    owners.insert(id, format!("container {:?}", entry.file_name()));
                }
            }
        }
    }
    let overlay = data_root.join("overlay2");
    if !overlay.exists() {
        return Ok(());
    }
    for entry in fs::read_dir(&overlay)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "l" {
            continue;
        }
        ensure!(
            owners.contains_key(&name),
            "{} belongs to no layerdb entry or container",
            entry.path().display()
        );
    }
    let links = overlay.join("l");
    if links.exists() {
        for entry in fs::read_dir(&links)? {
            let entry = entry?;
            ensure!(
                fs::metadata(entry.path()).is_ok(),
                "{} does not resolve (-> {:?})",
                entry.path().display(),
                fs::read_link(entry.path()).ok()
            );
        }
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Merged views

/// The dump options for comparing merged root filesystems.
pub fn merged_dump_options() -> DumpOptions {
    DumpOptions {
        one_filesystem: true,
        exclude: MERGED_EXCLUDES.iter().map(PathBuf::from).collect(),
        dir_mtimes: false,
    }
}

/// Docker's merged view of an image: the root of a running container (`/proc/<pid>/root`).
pub fn docker_merged_dump(docker: &Dockerd, image: &str) -> Vec<Record> {
    let id = docker
        .docker_ok([
            "run",
            "-d",
            "--network",
            "none",
            image,
            "/bin/sleep",
            "3600",
        ])
        .trim()
        .to_string();
    let pid = docker
        .docker_ok(["inspect", "-f", "{{.State.Pid}}", &id])
        .trim()
        .to_string();
    let root = PathBuf::from(format!("/proc/{pid}/root/"));
    let result = dump(&root, &merged_dump_options());
    docker.docker_ok(["rm", "-f", &id]);
    result.unwrap_or_else(|e| panic!("dump {} of {image}: {e}", root.display()))
}

/// When `OVL_TEST_DUMPS` names a directory, writes both sides of a comparison there as
/// `<name>.expected.txt` and `<name>.actual.txt` (for reading diffs longer than 40 lines).
pub fn save_dumps(name: &str, expected: &[Record], actual: &[Record]) {
    let Some(dir) = std::env::var_os("OVL_TEST_DUMPS") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let name = name.replace(['/', ':', ' '], "_");
    let _ = fs::create_dir_all(&dir);
    let _ = fs::write(dir.join(format!("{name}.expected.txt")), format(expected));
    let _ = fs::write(dir.join(format!("{name}.actual.txt")), format(actual));
}

/// A treedump of an ovl merged rootfs path with the same options as Docker's.
pub fn merged_dump(merged: &Path) -> anyhow::Result<Vec<Record>> {
    dump(merged, &merged_dump_options()).with_context(|| format!("dump {}", merged.display()))
}

// ------------------------------------------------------------------------------------------------
// Archives made in the tests

/// A minimal image config with the given DiffIDs (Go-like compact JSON, sorted keys).
pub fn image_config(diff_ids: &[String]) -> Vec<u8> {
    let config = serde_json::json!({
        "architecture": "amd64",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "created": "2024-01-01T00:00:00Z",
        "history": [],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    serde_json::to_vec(&config).expect("serialize config")
}

/// A docker-archive (`docker save` layout): `<member>` per layer as given (stored bytes may be
/// compressed), `<config id>.json` and `manifest.json`; returns the archive bytes.
pub fn docker_archive(config: &[u8], layers: &[(String, Vec<u8>)], repo_tags: &[&str]) -> Vec<u8> {
    let config_name = format!(
        "{}.json",
        sha256_digest(config).trim_start_matches("sha256:")
    );
    let mut builder = tar::Builder::new(Vec::new());
    let mtime = 1_700_000_000;
    let mut dirs_done = std::collections::BTreeSet::new();
    for (member, bytes) in layers {
        if let Some((dir, _)) = member.rsplit_once('/') {
            if dirs_done.insert(dir.to_string()) {
                append_entry(
                    &mut builder,
                    &format!("{dir}/"),
                    tar::EntryType::Directory,
                    0o755,
                    0,
                    0,
                    mtime,
                    b"",
                    None,
                );
            }
        }
        append_entry(
            &mut builder,
            member,
            tar::EntryType::Regular,
            0o644,
            0,
            0,
            mtime,
            bytes,
            None,
        );
    }
    append_entry(
        &mut builder,
        &config_name,
        tar::EntryType::Regular,
        0o644,
        0,
        0,
        mtime,
        config,
        None,
    );
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": if repo_tags.is_empty() { serde_json::Value::Null } else { serde_json::json!(repo_tags) },
        "Layers": layers.iter().map(|(member, _)| member.clone()).collect::<Vec<_>>(),
    }]);
    let mut manifest_bytes = serde_json::to_vec(&manifest).expect("serialize manifest");
    manifest_bytes.push(b'\n');
    append_entry(
        &mut builder,
        "manifest.json",
        tar::EntryType::Regular,
        0o644,
        0,
        0,
        0,
        &manifest_bytes,
        None,
    );
    builder.into_inner().expect("finish archive")
}

/// gzip of `bytes`.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip finish")
}

/// Runs `f`, recording a failure under `what` instead of stopping; [`Failures::finish`] panics
/// with all of them.
#[derive(Debug, Default)]
pub struct Failures {
    failures: Vec<String>,
}

impl Failures {
    pub fn check(&mut self, what: &str, result: anyhow::Result<()>) {
        match result {
            Ok(()) => eprintln!("ok: {what}"),
            Err(e) => {
                eprintln!("FAILED: {what}: {e:#}");
                self.failures.push(format!("{what}: {e:#}"));
            }
        }
    }

    pub fn finish(self) {
        if !self.failures.is_empty() {
            panic!(
                "{} check(s) failed:\n{}",
                self.failures.len(),
                self.failures.join("\n\n")
            );
        }
    }
}

/// Fails with the treedump diff when two dumps differ.
pub fn ensure_same_tree(what: &str, expected: &[Record], actual: &[Record]) -> anyhow::Result<()> {
    if let Some(diff) = compare(expected, actual) {
        bail!("{what}: {diff}");
    }
    Ok(())
}

/// Unmounts `container`, mounts its layers again with `redirect_dir=on` (which ovl never
/// passes), runs `change` on the merged path, and unmounts: what a container written through
/// such a mount leaves in its upperdir. Returns the container's upperdir.
pub fn change_through_redirect_dir(
    ovl: &Ovl,
    container: &str,
    change: impl FnOnce(&Path) -> anyhow::Result<()>,
) -> anyhow::Result<PathBuf> {
    let inspect = ovl.inspect(container)?;
    let data = &inspect["GraphDriver"]["Data"];
    let field = |key: &str| -> anyhow::Result<String> {
        Ok(data[key]
            .as_str()
            .with_context(|| format!("GraphDriver.Data.{key}"))?
            .to_string())
    };
    let merged = PathBuf::from(field("MergedDir")?);
    ovl.try_ok(["umount", container])?;
    fs::create_dir_all(&merged)?;
    let options = format!(
        "lowerdir={},upperdir={},workdir={},redirect_dir=on",
        field("LowerDir")?,
        field("UpperDir")?,
        field("WorkDir")?
    );
    let mounted = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &options])
        .arg(&merged)
        .status()?;
    ensure!(mounted.success(), "mount with redirect_dir=on");
    let changed = change(&merged);
    let _ = Command::new("umount").arg(&merged).status();
    changed?;
    Ok(PathBuf::from(field("UpperDir")?))
}

/// GNU time, which the peak-RSS measurements run commands under.
pub const GNU_TIME: &str = "/usr/bin/time";

/// `command` (its program, arguments and environment) run by GNU time, which writes the peak
/// resident memory to `report` in KiB. Measured so, and not from `wait4` of a child of the
/// caller: `exec` keeps the old image's high-water mark in `ru_maxrss`, so a child started from a
/// large process reports that process's memory. Hooks run before `exec` (an ABI lane's filter)
/// are not carried over: put them on the returned command.
pub fn under_gnu_time(command: &Command, report: &Path) -> Command {
    let mut timed = Command::new(GNU_TIME);
    timed.arg("-f").arg("%M").arg("-o").arg(report);
    timed.arg(command.get_program()).args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => timed.env(key, value),
            None => timed.env_remove(key),
        };
    }
    timed
}

/// The peak RSS in KiB that GNU time wrote to `report` (see [`under_gnu_time`]).
pub fn peak_rss_kib(report: &Path) -> anyhow::Result<u64> {
    let text =
        fs::read_to_string(report).with_context(|| format!("reading {}", report.display()))?;
    text.trim()
        .lines()
        .last()
        .unwrap_or_default()
        .parse()
        .with_context(|| format!("GNU time's %M in {}: {text:?}", report.display()))
}
