//! OCI runtime bundles' `config.json` as dockerd 20.10 writes it for `docker run IMAGE` with
//! default settings (moby `oci.DefaultSpec` plus `daemon/oci_linux.go`), so that a container
//! started from it by runc or crun is set up and confined as Docker's would be.
//!
//! Everything here is plain data: the container's process (from its config), its user (from
//! the image's passwd and group text, [`user`]), and the defaults. Reading files in the root
//! filesystem and writing the bundle is the engine's work.

pub mod spec;
pub mod user;

use std::collections::BTreeMap;

pub use spec::Spec;
pub use user::{exec_user, ExecUser, UserError};

use spec::{Capabilities, DeviceRule, Linux, Mount, Namespace, Process, Resources, Root, User};

/// The `PATH` Docker gives a Linux container whose image sets none (`system.DefaultPathEnv`).
pub const DEFAULT_PATH_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's default capabilities (`caps.DefaultCapabilities`), in its order.
pub const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Paths under /proc and /sys that Docker hides (`oci.DefaultSpec` `MaskedPaths`).
pub const MASKED_PATHS: [&str; 10] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

/// Paths under /proc that Docker makes read-only (`ReadonlyPaths`).
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// `/dev/shm`'s size in a Docker container (`config.DefaultShmSize`, 64 MiB).
const DEFAULT_SHM_SIZE: u64 = 64 * 1024 * 1024;

/// What a container's spec is made of.
#[derive(Debug, Clone)]
pub struct ContainerSpec<'a> {
    /// The container id: the cgroup is named after it.
    pub container_id: &'a str,
    /// The container's `Hostname` (Docker: the first 12 characters of the id).
    pub hostname: &'a str,
    /// The process: the container's `Path` followed by its `Args` (Entrypoint then Cmd).
    pub args: Vec<String>,
    /// The container's `Env` (the image's, with the run's own).
    pub env: &'a [String],
    /// `WorkingDir`; empty is `/`.
    pub working_dir: &'a str,
    pub user: &'a ExecUser,
    /// The root filesystem: the container's mounted merged directory.
    pub root_path: &'a str,
    /// Files bind-mounted over `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf`, as Docker
    /// mounts its own from the container's directory.
    pub etc_files: Option<EtcFiles<'a>>,
    /// Whether the container gets its own cgroup namespace: Docker's default on cgroup v2
    /// (`private`), not on v1 (`host`).
    pub cgroup_namespace: bool,
    /// The cgroup's parent (Docker: `/docker` under the cgroupfs driver).
    pub cgroup_parent: &'a str,
}

#[derive(Debug, Clone, Copy)]
pub struct EtcFiles<'a> {
    pub hostname: &'a str,
    pub hosts: &'a str,
    pub resolv_conf: &'a str,
}

/// Why a container gives no spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("no command specified")]
    NoCommand,
    #[error("the working directory '{0}' is invalid, it needs to be an absolute path")]
    RelativeWorkingDir(String),
}

/// The runtime spec Docker 20.10 would hand runc for this container with default settings,
/// without the parts that belong to the daemon (its seccomp and AppArmor profiles, the network
/// hook, resource limits left at zero).
pub fn docker_spec(container: &ContainerSpec<'_>) -> Result<Spec, SpecError> {
    if container.args.is_empty() {
        return Err(SpecError::NoCommand);
    }
    let cwd = match container.working_dir {
        "" => "/".to_string(),
        dir if dir.starts_with('/') => dir.to_string(),
        dir => return Err(SpecError::RelativeWorkingDir(dir.to_string())),
    };
    let capabilities: Vec<String> = DEFAULT_CAPABILITIES.map(str::to_string).to_vec();
    // Docker gives a process running as root the capabilities themselves; any other user only
    // the bounding set (what it could gain by executing a file with capabilities).
    let capabilities = if container.user.uid == 0 {
        Capabilities {
            bounding: capabilities.clone(),
            effective: capabilities.clone(),
            permitted: capabilities,
            ..Capabilities::default()
        }
    } else {
        Capabilities {
            bounding: capabilities,
            ..Capabilities::default()
        }
    };
    let mut namespaces = vec!["mount", "network", "uts", "pid", "ipc"];
    if container.cgroup_namespace {
        namespaces.push("cgroup");
    }
    Ok(Spec {
        oci_version: spec::OCI_VERSION.to_string(),
        process: Process {
            terminal: false,
            user: User {
                uid: container.user.uid,
                gid: container.user.gid,
                additional_gids: container.user.additional_gids.clone(),
            },
            args: container.args.clone(),
            env: process_env(container.env, container.hostname),
            cwd,
            capabilities,
            no_new_privileges: false,
            oom_score_adj: Some(0),
        },
        root: Root {
            path: container.root_path.to_string(),
            readonly: false,
        },
        hostname: container.hostname.to_string(),
        mounts: default_mounts(container.etc_files),
        linux: Linux {
            sysctl: default_sysctls(),
            resources: Resources {
                devices: default_device_rules(),
            },
            cgroups_path: format!(
                "{}/{}",
                container.cgroup_parent.trim_end_matches('/'),
                container.container_id
            ),
            namespaces: namespaces
                .into_iter()
                .map(|kind| Namespace {
                    kind: kind.to_string(),
                })
                .collect(),
            masked_paths: MASKED_PATHS.map(str::to_string).to_vec(),
            readonly_paths: READONLY_PATHS.map(str::to_string).to_vec(),
        },
    })
}

/// The process environment Docker builds (`CreateDaemonEnvironment` and moby's
/// `ReplaceOrAppendEnvValues`): `PATH` and `HOSTNAME` first, each replaced in place by the
/// container's own value or removed by a bare `KEY`; the container's other variables after them,
/// in their order and as they are (a name given twice is kept twice, as Docker keeps it).
pub fn process_env(env: &[String], hostname: &str) -> Vec<String> {
    let mut defaults: Vec<Option<String>> = vec![
        Some(DEFAULT_PATH_ENV.to_string()),
        Some(format!("HOSTNAME={hostname}")),
    ];
    let default_keys = ["PATH", "HOSTNAME"];
    let mut appended = Vec::new();
    for variable in env {
        let (key, has_value) = match variable.split_once('=') {
            Some((key, _)) => (key, true),
            None => (variable.as_str(), false),
        };
        match (default_keys.iter().position(|k| *k == key), has_value) {
            (Some(index), true) => defaults[index] = Some(variable.clone()),
            (Some(index), false) => defaults[index] = None,
            (None, true) => appended.push(variable.clone()),
            (None, false) => {}
        }
    }
    defaults.into_iter().flatten().chain(appended).collect()
}

/// The mounts of a Docker container with default settings, in Docker's order.
fn default_mounts(etc_files: Option<EtcFiles<'_>>) -> Vec<Mount> {
    let mount = |destination: &str, kind: &str, source: &str, options: &[&str]| Mount {
        destination: destination.to_string(),
        kind: kind.to_string(),
        source: source.to_string(),
        options: options.iter().map(|option| option.to_string()).collect(),
    };
    let shm_size = format!("size={DEFAULT_SHM_SIZE}");
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["ro", "nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        // Docker bind-mounts a tmpfs it made in the container's directory; a tmpfs of the same
        // options is the same to the process.
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", &shm_size],
        ),
    ];
    if let Some(files) = etc_files {
        for (destination, source) in [
            ("/etc/resolv.conf", files.resolv_conf),
            ("/etc/hostname", files.hostname),
            ("/etc/hosts", files.hosts),
        ] {
            mounts.push(mount(destination, "bind", source, &["rbind", "rprivate"]));
        }
    }
    mounts
}

/// The sysctls Docker 20.10 sets in a container with its own network namespace: unprivileged
/// ports from 0 and ping for every group.
fn default_sysctls() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "net.ipv4.ip_unprivileged_port_start".to_string(),
            "0".to_string(),
        ),
        (
            "net.ipv4.ping_group_range".to_string(),
            "0 2147483647".to_string(),
        ),
    ])
}

/// Docker's device cgroup rules: deny everything, then allow null, zero, full, urandom, random,
/// tty, console; deny the tun device explicitly. runc and crun create those same devices in the
/// container's `/dev` (the spec's default devices) and `/dev/pts/ptmx`.
fn default_device_rules() -> Vec<DeviceRule> {
    let rule = |allow: bool, major: i64, minor: i64| DeviceRule {
        allow,
        kind: Some("c".to_string()),
        major: Some(major),
        minor: Some(minor),
        access: "rwm".to_string(),
    };
    vec![
        DeviceRule {
            allow: false,
            kind: None,
            major: None,
            minor: None,
            access: "rwm".to_string(),
        },
        rule(true, 1, 5),
        rule(true, 1, 3),
        rule(true, 1, 9),
        rule(true, 1, 8),
        rule(true, 5, 0),
        rule(true, 5, 1),
        rule(false, 10, 229),
    ]
}

/// The `/etc/hosts` Docker writes for a container without a network (`--network none`): a
/// bundle's network namespace has only `lo`, so there is no address line for the hostname.
pub const HOSTS_FILE: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
    fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// The container's `/etc/resolv.conf` from the host's, as Docker filters it for a container
/// with its own network namespace (libnetwork `resolvconf.FilterResolvDNS`): nameservers on
/// loopback removed, Google's public servers when none is left.
pub fn resolv_conf(host: &str) -> String {
    let mut out = String::new();
    let mut n_nameservers = 0;
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let address = words.next().unwrap_or_default();
            if address.starts_with("127.") || address == "::1" {
                continue;
            }
            n_nameservers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if n_nameservers == 0 {
        out.push_str("\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

#[cfg(test)]
mod tests;
