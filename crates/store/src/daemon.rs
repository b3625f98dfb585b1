//! Is a dockerd using this data root? dockerd keeps its image, layer and container stores in
//! memory and writes them back whenever it likes, so a change made beside a live daemon is lost
//! or, worse, half-overwritten. Two independent signs are looked for, without writing anything:
//!
//! - the bolt databases a live dockerd keeps open hold an exclusive `flock` (bbolt locks a
//!   read-write database for as long as it is open): `network/files/local-kv.db`,
//!   `volumes/metadata.db`, `builder/fscache.db`;
//! - a `dockerd` process whose data root (`--data-root`, the older `-g`/`--graph`, `data-root` in
//!   its `--config-file`, else `/var/lib/docker`) is this directory.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Bolt databases a running dockerd holds open (and locked) below its data root.
const LOCKED_DATABASES: [&str; 3] = [
    "network/files/local-kv.db",
    "volumes/metadata.db",
    "builder/fscache.db",
];

/// dockerd's built-in defaults.
const DEFAULT_DATA_ROOT: &str = "/var/lib/docker";
const DEFAULT_CONFIG_FILE: &str = "/etc/docker/daemon.json";

/// Why a data root is taken to be in use by a dockerd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveDaemon {
    /// The dockerd process, when one was found.
    pub pid: Option<u32>,
    /// What showed it, for the error message.
    pub evidence: String,
}

impl std::fmt::Display for LiveDaemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pid {
            Some(pid) => write!(f, "dockerd (pid {pid}) {}", self.evidence),
            None => write!(f, "a dockerd {}", self.evidence),
        }
    }
}

/// The dockerd using `root`, if any. Reads only; a root that does not exist has none.
pub fn live_dockerd(root: &Path) -> Option<LiveDaemon> {
    let canonical = fs::canonicalize(root).ok()?;
    let process = dockerd_processes()
        .into_iter()
        .find(|(_, data_root)| data_root == &canonical)
        .map(|(pid, _)| pid);
    for database in LOCKED_DATABASES {
        if is_locked(&canonical.join(database)) {
            return Some(LiveDaemon {
                pid: process,
                evidence: format!("holds the lock of {}", canonical.join(database).display()),
            });
        }
    }
    process.map(|pid| LiveDaemon {
        pid: Some(pid),
        evidence: format!("runs with data root {}", canonical.display()),
    })
}

/// Whether another process holds an exclusive `flock` on `path` (a missing file is not locked).
fn is_locked(path: &Path) -> bool {
    // Opened read-only and without O_CREAT: probing changes nothing, not even an atime that
    // matters (bbolt never looks at it).
    let Ok(file) = fs::File::open(path) else {
        return false;
    };
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockShared) {
        Ok(()) => false,
        Err(errno) => errno == rustix::io::Errno::WOULDBLOCK,
    }
}

/// Every running `dockerd` with its canonical data root.
fn dockerd_processes() -> Vec<(u32, PathBuf)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    // The numeric entries of /proc, one a process.
    let processes = entries.flatten().filter_map(|entry| {
        let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
        Some((pid, entry.path()))
    });
    // Every command that changes a root runs this scan: each process costs one `openat` below
    // the open /proc and one `read`, the most any check of a name can cost.
    let Ok(proc_fd) = rustix::fs::open(
        "/proc",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return Vec::new();
    };
    for (pid, proc_dir) in processes {
        if !is_dockerd(&proc_fd, pid) {
            continue;
        }
        let Ok(cmdline) = fs::read(proc_dir.join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline
            .split(|&b| b == 0)
            .filter(|arg| !arg.is_empty())
            .collect();
        let data_root = data_root_of(&args);
        // Relative paths on dockerd's command line are relative to its working directory.
        let cwd = fs::read_link(proc_dir.join("cwd")).unwrap_or_else(|_| PathBuf::from("/"));
        let absolute = cwd.join(data_root);
        if let Ok(canonical) = fs::canonicalize(&absolute) {
            found.push((pid, canonical));
        }
    }
    found
}

/// Whether `/proc/<pid>/comm` reads `dockerd`.
fn is_dockerd(proc_fd: &rustix::fd::OwnedFd, pid: u32) -> bool {
    let Ok(comm) = rustix::fs::openat(
        proc_fd,
        format!("{pid}/comm"),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return false;
    };
    // A comm is at most 15 bytes and a newline: one read gets all of it.
    let mut buf = [0u8; 32];
    matches!(rustix::io::read(&comm, &mut buf), Ok(n) if &buf[..n] == b"dockerd\n")
}

/// The data root a dockerd command line selects.
fn data_root_of(args: &[&[u8]]) -> PathBuf {
    let mut data_root = None;
    let mut config_file = None;
    let mut idx = 1;
    while idx < args.len() {
        let arg = args[idx];
        let next = args.get(idx + 1).copied();
        for (flag, is_data_root) in [
            (&b"--data-root"[..], true),
            (b"--graph", true),
            (b"-g", true),
            (b"--config-file", false),
        ] {
            let value = if arg == flag {
                idx += 1;
                next
            } else {
                arg.strip_prefix(flag)
                    .and_then(|rest| rest.strip_prefix(b"="))
            };
            if let Some(value) = value {
                if is_data_root {
                    data_root = Some(value.to_vec());
                } else {
                    config_file = Some(value.to_vec());
                }
                break;
            }
        }
        idx += 1;
    }
    if let Some(data_root) = data_root {
        return PathBuf::from(std::ffi::OsStr::from_bytes(&data_root));
    }
    let config_file = config_file.map_or_else(
        || PathBuf::from(DEFAULT_CONFIG_FILE),
        |raw| PathBuf::from(std::ffi::OsStr::from_bytes(&raw)),
    );
    fs::read(&config_file)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .and_then(|config| {
            ["data-root", "graph"]
                .iter()
                .find_map(|key| config.get(*key)?.as_str().map(PathBuf::from))
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_ROOT))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<&[u8]> {
        line.split(' ').map(str::as_bytes).collect()
    }

    #[test]
    fn data_root_flags_in_every_spelling() {
        for (line, expected) in [
            ("dockerd --data-root /srv/d -H unix:///x", "/srv/d"),
            ("dockerd --data-root=/srv/e", "/srv/e"),
            ("dockerd -g /old", "/old"),
            ("dockerd --graph=/older", "/older"),
        ] {
            assert_eq!(data_root_of(&args(line)), PathBuf::from(expected), "{line}");
        }
    }

    #[test]
    fn data_root_from_the_config_file_or_the_default() {
        let dir = std::env::temp_dir().join(format!("ovl-daemon-test-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("test setup");
        let config = dir.join("daemon.json");
        fs::write(&config, br#"{"data-root": "/from/config"}"#).expect("test setup");
        let line = format!("dockerd --config-file {}", config.display());
        assert_eq!(data_root_of(&args(&line)), PathBuf::from("/from/config"));
        fs::write(&config, b"{}").expect("test setup");
        assert_eq!(data_root_of(&args(&line)), PathBuf::from(DEFAULT_DATA_ROOT));
        fs::remove_dir_all(&dir).expect("test setup");
    }

    #[test]
    fn a_locked_database_is_seen_and_an_unlocked_one_is_not() {
        let dir = std::env::temp_dir().join(format!("ovl-lock-test-{}", std::process::id()));
        fs::create_dir_all(dir.join("network/files")).expect("test setup");
        let db = dir.join("network/files/local-kv.db");
        fs::write(&db, b"").expect("test setup");
        assert_eq!(live_dockerd(&dir), None);
        // An exclusive lock from another open file description, as bbolt holds it.
        let holder = fs::File::open(&db).expect("test setup");
        rustix::fs::flock(&holder, rustix::fs::FlockOperation::LockExclusive).expect("test setup");
        let live = live_dockerd(&dir).expect("the lock is seen");
        assert!(live.evidence.contains("local-kv.db"), "{live}");
        drop(holder);
        assert_eq!(live_dockerd(&dir), None);
        fs::remove_dir_all(&dir).expect("test setup");
    }
}
