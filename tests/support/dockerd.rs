//! A private dockerd 20.10 with its own data root, exec root, socket and bridge, removed with
//! its containers and mounts when dropped.

use super::*;

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
    pub(super) fn create_bridge(&self, pid: u32, n: usize) {
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

    /// The daemon's `--exec-root` (containerd's state, with the bundles of running containers,
    /// is below it).
    pub fn exec_root(&self) -> &Path {
        &self.exec_root
    }

    pub fn scratch(&self) -> &Path {
        &self.scratch
    }

    /// The daemon's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The daemon log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The 20.10 client on this daemon's socket (classic builder, a private client config).
    pub fn docker_command(&self, args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> Command {
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
    pub fn docker(&self, args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> Output {
        self.docker_command(args)
            .output()
            .unwrap_or_else(|e| panic!("spawn {DOCKER}: {e}"))
    }

    /// Runs the client and returns stdout; panics with stderr and the daemon log tail on failure.
    pub fn docker_ok(&self, args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> String {
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

    /// `docker run -d --network none --name <name> <image_and_args>`, then `docker wait`: the
    /// container's exit status as `docker wait` prints it.
    pub fn run_and_wait(&self, name: &str, image_and_args: &[&str]) -> String {
        let mut args = vec!["run", "-d", "--network", "none", "--name", name];
        args.extend_from_slice(image_and_args);
        self.docker_ok(args);
        self.docker_ok(["wait", name]).trim().to_string()
    }

    /// Stops the daemon the way `systemctl stop docker` does, keeping its data root, containers
    /// and scratch directory; returns the scratch directory, where [`Dockerd::start`] starts a
    /// daemon on the same data root again (which then cleans everything up when dropped).
    pub fn stop_keeping_state(mut self) -> PathBuf {
        if let Some(mut child) = self.child.take() {
            self.terminate(&mut child);
        }
        self.release_host_state();
        self.scratch.clone()
    }

    /// Kills what is left of the daemon's processes, unmounts below its scratch directory and
    /// deletes its bridge.
    fn release_host_state(&self) {
        kill_processes_mentioning(&self.scratch);
        unmount_below(&self.scratch);
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
    }

    /// SIGTERM, then SIGKILL after [`DOCKERD_STOP_TIMEOUT`].
    pub(super) fn terminate(&self, child: &mut Child) {
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
    pub(super) fn shutdown(&mut self) {
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
        self.release_host_state();
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
pub(super) fn kill_processes_mentioning(dir: &Path) {
    let Ok(entries) = fs::read_dir("/proc") else {
        return;
    };
    // The trailing slash keeps `/var/tmp/ovl-tests-1-1` from matching `/var/tmp/ovl-tests-1-10`.
    let mut needle = dir.as_os_str().as_bytes().to_vec();
    needle.push(b'/');
    let needle = needle.as_slice();
    let own_pid = std::process::id() as i32;
    for entry in entries.flatten() {
        let pid = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok());
        let Some(pid) = pid.filter(|pid| *pid != own_pid) else {
            continue;
        };
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

/// The start of a test that needs a dockerd: `None` when it skips ([`require_dockerd`]), else a
/// fresh scratch directory.
pub fn dockerd_scratch(test_name: &str) -> Option<Scratch> {
    require_dockerd(test_name).then(Scratch::new)
}

/// The start of a test that needs a dockerd: `None` when it skips ([`require_dockerd`]), else a
/// private dockerd in a scratch directory of its own with the base image imported.
pub fn dockerd_with_base(test_name: &str) -> Option<Dockerd> {
    if !require_dockerd(test_name) {
        return None;
    }
    let docker = Dockerd::start(&scratch_path());
    base_image(&docker);
    Some(docker)
}
