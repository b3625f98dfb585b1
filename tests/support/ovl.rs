//! The ovl binary under test, run with `--root` (and under the ABI lane `OVL_ABI_LANE` names).

use super::*;

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
    pub fn command(&self, args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> Command {
        let mut command = Command::new(&self.bin);
        command.arg("--root").arg(&self.root).args(args);
        command.env_remove("OVL_ROOT");
        if let Some(lane) = abi_lane() {
            lane.wrap(&mut command);
        }
        command
    }

    /// [`Ovl::command`] run through util-linux's `prlimit` with `limit` as the soft and hard
    /// `RLIMIT_NOFILE`.
    pub fn limited(
        &self,
        limit: u64,
        args: impl IntoIterator<Item = impl AsRef<OsStr>>,
    ) -> Command {
        self.limited_to(limit, limit, args)
    }

    /// [`Ovl::command`] run through util-linux's `prlimit` with `soft` and `hard` as its
    /// `RLIMIT_NOFILE`.
    pub fn limited_to(
        &self,
        soft: u64,
        hard: u64,
        args: impl IntoIterator<Item = impl AsRef<OsStr>>,
    ) -> Command {
        let inner = self.command(args);
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={soft}:{hard}"))
            .arg("--")
            .arg(inner.get_program())
            .args(inner.get_args());
        for (key, value) in inner.get_envs() {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        command
    }

    /// [`Ovl::limited_to`] run to success: its stdout, or a panic with the command and its
    /// stderr.
    pub fn limited_ok(
        &self,
        soft: u64,
        hard: u64,
        args: impl IntoIterator<Item = impl AsRef<OsStr>>,
    ) -> String {
        let stdout = stdout_of_success(self.limited_to(soft, hard, args))
            .unwrap_or_else(|e| panic!("{e:#}"));
        String::from_utf8_lossy(&stdout).into_owned()
    }

    /// Runs `ovl --root <root> args…` and returns its output whatever the exit status.
    pub fn run(&self, args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> Output {
        let mut command = self.command(args);
        command
            .output()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()))
    }

    /// Runs and returns stdout, or an error carrying the exit status and stderr.
    pub fn try_ok(
        &self,
        args: impl IntoIterator<Item = impl AsRef<OsStr>>,
    ) -> anyhow::Result<String> {
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
    pub fn ok(&self, args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> String {
        self.try_ok(args).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Runs a command that must fail with exit status 1 and returns its stderr.
    pub fn fail(&self, args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> String {
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

    /// Starts a command with its stdout and stderr piped.
    pub fn spawn_piped(&self, args: impl IntoIterator<Item = impl AsRef<OsStr>>) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ovl")
    }

    /// `ovl import <tarball> <reference>`, which must succeed; returns its stdout.
    pub fn import(&self, tarball: &Path, reference: &str) -> String {
        self.ok([
            OsStr::new("import"),
            tarball.as_os_str(),
            OsStr::new(reference),
        ])
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

    /// `GraphDriver.Data.UpperDir` of the container or image `name`: its top layer's `diff/`.
    pub fn upper_dir(&self, name: &str) -> PathBuf {
        let inspect = self
            .inspect(name)
            .unwrap_or_else(|err| panic!("inspect {name}: {err:#}"));
        PathBuf::from(
            inspect["GraphDriver"]["Data"]["UpperDir"]
                .as_str()
                .unwrap_or_else(|| panic!("no GraphDriver.Data.UpperDir for {name}")),
        )
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

/// Runs `script` with busybox sh inside an ovl container's merged root (`merged` as `run-rootfs` prints it).
pub fn chroot_sh(merged: &str, script: &str) -> anyhow::Result<()> {
    let status = Command::new("chroot")
        .arg(merged.trim())
        .args(["/bin/sh", "-c", script])
        .status()
        .context("chroot")?;
    ensure!(status.success(), "{script:?} failed in {merged}: {status}");
    Ok(())
}
