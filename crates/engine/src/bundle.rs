//! OCI runtime bundles (`ovl run-rootfs --bundle`, `ovl bundle`): a directory whose
//! `config.json` runs the container's command on its mounted root filesystem under runc or crun,
//! set up as `docker run` with default settings would set it up (`runtime-spec`).
//!
//! The process user is looked up in the container's own `/etc/passwd` and `/etc/group`, read
//! through the mounted root with in-root resolution: a symlink there resolves inside the
//! container (as Docker's `FollowSymlinkInScope` does), never to a file of the host, and only a
//! regular file is opened.

use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use runtime_spec::{ContainerSpec, EtcFiles, ExecUser};
use rustix::fs::{Mode, OFlags, CWD};
use rustix::io::Errno;
use store::ContainerRecord;

use crate::access::{self, Create};
use crate::error::{Context, Error, Result};
use crate::resolve;

/// The most of `/etc/passwd` or `/etc/group` read (far beyond any real one).
const MAX_ETC_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// The cgroup parent of bundle containers (Docker's is `/docker` under the cgroupfs driver).
const CGROUP_PARENT: &str = "/ovl";

/// `CGROUP2_SUPER_MAGIC` (include/uapi/linux/magic.h): `/sys/fs/cgroup` is the unified
/// hierarchy.
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// The files a bundle holds beside `config.json`, bind-mounted into the container.
const ETC_FILES: [&str; 3] = ["hostname", "hosts", "resolv.conf"];

/// `ovl bundle CONTAINER DIR`: mounts the container (unless it is mounted) and writes its bundle
/// into `dir`. Returns the bundle directory.
pub fn bundle(root_path: &Path, container: &str, dir: &Path) -> Result<PathBuf> {
    crate::container::require_root()?;
    let (root, _lock) =
        access::open_for_change(root_path, Create::No, "write a container's runtime bundle")?;
    let record = resolve::container(&root, container)?;
    let was_mounted = crate::container::is_mounted(&root, &record.id);
    let merged = crate::container::mount_container(&root, &record.id)
        .container_context("mounting container", container)?;
    if let Err(err) = write(&record, &merged, dir) {
        // A failed bundle leaves the container as it found it.
        if !was_mounted {
            let entry = crate::container::mounts_entry(&root, &record.id)?;
            crate::container::unmount_layer(&root, &entry.mount_id)
                .container_context("unmounting container", container)?;
        }
        return Err(err).container_context("writing the runtime bundle of container", container);
    }
    Ok(dir.to_path_buf())
}

/// Writes the bundle of the container `record`, mounted at `merged`, into `dir` (created if
/// missing; a `config.json` in it is refused). On failure nothing of the bundle is left.
pub fn write(record: &ContainerRecord, merged: &Path, dir: &Path) -> Result<()> {
    // The bind mounts name their sources absolutely: a runtime resolves a relative one against
    // its own working directory, not the bundle.
    let dir = &std::path::absolute(dir).map_err(|source| Error::io("resolving", dir, source))?;
    let config_path = dir.join("config.json");
    if config_path.symlink_metadata().is_ok() {
        return Err(Error::invalid(format!(
            "{} exists already: a bundle directory is written once",
            config_path.display()
        )));
    }
    let user_spec = config_string(record, "User");
    let user = exec_user(merged, &user_spec)?;
    let hostname = match config_string(record, "Hostname") {
        name if name.is_empty() => record.id.get(..12).unwrap_or(&record.id).to_string(),
        name => name,
    };
    let mut args = Vec::new();
    if !record.path.is_empty() {
        args.push(record.path.clone());
        args.extend(record.args.iter().cloned());
    }
    let env = store::json_strings(record.config.get("Env"));
    let working_dir = config_string(record, "WorkingDir");
    let dir_text = dir.display().to_string();
    let paths: Vec<String> = ETC_FILES
        .iter()
        .map(|name| format!("{}/{name}", dir_text.trim_end_matches('/')))
        .collect();
    let root_path = merged.display().to_string();
    let spec = runtime_spec::docker_spec(&ContainerSpec {
        container_id: &record.id,
        hostname: &hostname,
        args,
        env: &env,
        working_dir: &working_dir,
        user: &user,
        root_path: &root_path,
        etc_files: Some(EtcFiles {
            hostname: &paths[0],
            hosts: &paths[1],
            resolv_conf: &paths[2],
        }),
        cgroup_namespace: cgroup_v2(),
        cgroup_parent: CGROUP_PARENT,
    })
    .map_err(|err| Error::invalid(err.to_string()))?;
    let host_resolv_conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let contents = [
        format!("{hostname}\n"),
        runtime_spec::HOSTS_FILE.to_string(),
        runtime_spec::resolv_conf(&host_resolv_conf),
    ];
    let mut written = Written::new(dir)?;
    for (path, text) in paths.iter().zip(contents) {
        written.write(Path::new(path), text.as_bytes())?;
    }
    let mut json = serde_json::to_vec_pretty(&spec)?;
    json.push(b'\n');
    written.write(&config_path, &json)?;
    written.keep();
    Ok(())
}

/// The container's process user (its `User`, empty for root) from its own passwd and group.
fn exec_user(merged: &Path, user_spec: &str) -> Result<ExecUser> {
    let passwd = read_etc_file(merged, "etc/passwd")?;
    let group = read_etc_file(merged, "etc/group")?;
    runtime_spec::exec_user(user_spec, passwd.as_deref(), group.as_deref())
        .map_err(|err| Error::invalid(err.to_string()))
}

/// Reads the file at `path` (relative) of the root filesystem mounted at `merged`, resolved in
/// that root (symlinks included, as Docker's `FollowSymlinkInScope`); `None` when it is missing.
/// Anything but a regular file, or more than 16 MiB, is an error naming the path.
pub(crate) fn read_etc_file(merged: &Path, path: &str) -> Result<Option<Vec<u8>>> {
    let root = rustix::fs::openat(
        CWD,
        merged,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|errno| Error::io("opening", merged, errno.into()))?;
    let resolver = crate::kernel::resolver()?;
    {
        let failed = |errno: Errno| {
            Error::invalid(format!(
                "reading /{path} of the container (root {}): {}",
                merged.display(),
                std::io::Error::from(errno)
            ))
        };
        // The last component is followed too, inside the root, as Docker follows it.
        let fd = match resolver.open(root.as_fd(), path.as_bytes(), OFlags::PATH) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(errno) => return Err(failed(errno)),
        };
        let (_, file) = syscompat::Node::from_path_fd(fd)
            .and_then(syscompat::Node::with_regular)
            .map_err(failed)?;
        let Some(file) = file else {
            return Err(Error::invalid(format!(
                "/{path} of the container (root {}) is not a regular file",
                merged.display()
            )));
        };
        let mut bytes = Vec::new();
        std::fs::File::from(file)
            .take(MAX_ETC_FILE_SIZE + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| Error::io("reading", merged.join(path), source))?;
        if bytes.len() as u64 > MAX_ETC_FILE_SIZE {
            return Err(Error::invalid(format!(
                "/{path} of the container (root {}) is larger than {MAX_ETC_FILE_SIZE} bytes",
                merged.display()
            )));
        }
        Ok(Some(bytes))
    }
}

/// Whether `/sys/fs/cgroup` is the unified (v2) hierarchy.
#[allow(clippy::unnecessary_cast)] // `f_type` is i64 on x86_64, another width elsewhere.
fn cgroup_v2() -> bool {
    rustix::fs::statfs("/sys/fs/cgroup")
        .map(|stat| stat.f_type as i64 == CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

fn config_string(record: &ContainerRecord, key: &str) -> String {
    record
        .config
        .get(key)
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The files of a bundle being written, and its directory if this call made it: removed again
/// unless kept.
struct Written {
    dir: Option<PathBuf>,
    files: Vec<PathBuf>,
    keep: bool,
}

impl Written {
    fn new(dir: &Path) -> Result<Written> {
        let created = match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => true,
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => false,
            Err(source) => return Err(Error::io("creating the bundle directory", dir, source)),
        };
        Ok(Written {
            dir: created.then(|| dir.to_path_buf()),
            files: Vec::new(),
            keep: false,
        })
    }

    fn write(&mut self, path: &Path, bytes: &[u8]) -> Result<()> {
        self.files.push(path.to_path_buf());
        syscompat::atomic::write_atomic(path, bytes, 0o644)
            .map_err(|err| Error::io(err.step, err.path, err.source))
    }

    fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for Written {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        for file in &self.files {
            let _ = std::fs::remove_file(file);
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir(dir);
        }
    }
}
