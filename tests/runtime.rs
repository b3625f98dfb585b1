//! Running what ovl assembles: OCI runtime bundles under Debian's runc and crun against `docker
//! run` of the same images in the private dockerd, the bundle's `config.json` against the spec
//! dockerd hands its runtime and against umoci's, hostile passwd files, `ovl export` against
//! `docker export`, and `ovl mount`/`unmount`.
//!
//! Every test needs root, the private dockerd, runc and crun (and umoci and skopeo where said).

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ovl_tests::*;
use serde_json::Value;

const RUNC: &str = "/usr/sbin/runc";
const CRUN: &str = "/usr/bin/crun";
const UMOCI: &str = "/usr/bin/umoci";

/// An image with a user of its own, supplementary groups, a working directory and a variable,
/// whose default command prints what identifies the process.
const APP_DOCKERFILE: &str = r#"FROM ovl-base:1
RUN echo 'app:x:1000:1000:app:/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1000:' >> /etc/group && echo 'staff:x:50:app' >> /etc/group && echo 'wheel:x:10:root,app' >> /etc/group && mkdir -p /srv /home/app && chown 1000:1000 /home/app
USER app
WORKDIR /srv
ENV X=1
CMD ["sh", "-c", "id; pwd; env | sort; grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status; cat /etc/hostname; hostname"]
"#;

/// What a process sees of its root filesystem and of itself: every entry outside the kernel's
/// and the runtime's mounts with its type, mode, owner and link target, every regular file's
/// digest, then identity, directory and environment.
const LISTING: &str = "find / -xdev -exec stat -c '%N|%A|%u|%g' {} + \
    | grep -v -E \"^'/(dev|proc|sys)['/]|^'/etc/(hosts|hostname|resolv.conf)'\" | sort; \
    find / -xdev -type f ! -path '/etc/hosts' ! -path '/etc/hostname' ! -path '/etc/resolv.conf' \
    -exec md5sum {} + | sort; id; pwd; env | sort";

/// The runtimes a bundle is run with.
#[derive(Debug, Clone, Copy)]
enum Runtime {
    Runc,
    Crun,
}

impl Runtime {
    const ALL: [Runtime; 2] = [Runtime::Runc, Runtime::Crun];

    /// `runc|crun run --bundle DIR ID` with no stdin; its output whatever the status.
    ///
    /// crun 1.8 refuses a hybrid cgroup layout (v1 controllers beside a cgroup2 mount at
    /// `/sys/fs/cgroup/unified` that holds controllers, as some hosts have): it is run in a mount
    /// namespace of its own without that mount, which changes nothing for the container.
    fn run(self, bundle: &Path, id: &str) -> Output {
        let mut command = match self {
            Runtime::Runc => Command::new(RUNC),
            Runtime::Crun => {
                let mut command = Command::new("unshare");
                command.args([
                    "-m",
                    "sh",
                    "-c",
                    "umount /sys/fs/cgroup/unified 2>/dev/null; exec \"$@\"",
                    "sh",
                    CRUN,
                ]);
                command
            }
        };
        command
            .args(["run", "--bundle"])
            .arg(bundle)
            .arg(id)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|err| panic!("spawn {self:?}: {err}"))
    }
}

fn require_runtimes(test_name: &str) -> bool {
    require_dockerd(test_name)
        && require_program(test_name, RUNC, "runc")
        && require_program(test_name, CRUN, "crun")
}

/// Which conformance images a test needs beside the base and app images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Images {
    /// Seed, changes and the 105-layer deep image.
    Conformance,
    /// Seed and changes.
    SeedAndChanges,
    BaseOnly,
}

/// A private dockerd with the images `images` names and the app image, and an ovl root with all
/// of them loaded from `docker save`.
fn docker_and_ovl(test_name: &str, images: Images) -> Option<(Dockerd, Ovl)> {
    if !require_runtimes(test_name) {
        return None;
    }
    let docker = Dockerd::start(&scratch_path());
    let mut images = match images {
        Images::Conformance => build_conformance_images(&docker),
        Images::SeedAndChanges => {
            let mut tags = vec![base_image(&docker)];
            build_image(&docker, "ovl-seed:1", SEED_DOCKERFILE, &seed_context());
            build_image(&docker, "ovl-changes:1", CHANGES_DOCKERFILE, &[]);
            tags.extend(["ovl-seed:1".to_string(), "ovl-changes:1".to_string()]);
            tags
        }
        Images::BaseOnly => vec![base_image(&docker)],
    };
    build_image(&docker, "ovl-app:1", APP_DOCKERFILE, &[]);
    images.push("ovl-app:1".to_string());
    let ovl = Ovl::new(docker.scratch().join("ovl-root"));
    let archive = docker.scratch().join("images.tar");
    let mut save = vec!["save", "-o"];
    let archive_text = archive.display().to_string();
    save.push(&archive_text);
    save.extend(images.iter().map(String::as_str));
    docker.docker_ok(save);
    ovl.ok([OsStr::new("load"), OsStr::new("-i"), archive.as_os_str()]);
    Some((docker, ovl))
}

/// `docker run --network none --name NAME ARGS…`: stdout, stderr and the exit status, with the
/// container's hostname replaced by `HOSTNAME` and the container removed.
fn docker_run(docker: &Dockerd, name: &str, args: &[&str]) -> (String, String, Option<i32>) {
    let mut full = vec!["run", "--network", "none", "--name", name];
    full.extend_from_slice(args);
    let output = docker.docker(&full);
    let hostname = docker
        .docker(["inspect", "-f", "{{.Config.Hostname}}", name])
        .stdout;
    let hostname = String::from_utf8_lossy(&hostname).trim().to_string();
    docker.docker(["rm", "-f", name]);
    (
        normalise(&String::from_utf8_lossy(&output.stdout), &hostname),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        output.status.code(),
    )
}

/// `ovl run-rootfs --name NAME --bundle DIR ARGS…` then the runtime on the bundle: stdout with
/// the container's hostname replaced by `HOSTNAME`, and the exit status.
fn ovl_run(
    ovl: &Ovl,
    runtime: Runtime,
    name: &str,
    bundle: &Path,
    args: &[&str],
) -> (String, Option<i32>) {
    let mut full = vec![
        OsStr::new("run-rootfs"),
        OsStr::new("--name"),
        OsStr::new(name),
        OsStr::new("--bundle"),
        bundle.as_os_str(),
    ];
    full.extend(args.iter().map(OsStr::new));
    ovl.ok(full);
    let hostname = ovl.ok(["inspect", "-f", "{{.Config.Hostname}}", name]);
    let output = runtime.run(bundle, name);
    assert!(
        output.stderr.is_empty() || output.status.success(),
        "{runtime:?} run of {name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (
        normalise(&String::from_utf8_lossy(&output.stdout), hostname.trim()),
        output.status.code(),
    )
}

fn normalise(text: &str, hostname: &str) -> String {
    if hostname.is_empty() {
        return text.to_string();
    }
    text.replace(hostname, "HOSTNAME")
}

fn container_count(ovl: &Ovl) -> usize {
    ovl.ok(["ps", "-aq"]).lines().count()
}

#[test]
fn bundles_run_under_runc_and_crun_as_docker_run_runs_the_image_needs_root_and_dockerd_runc_crun() {
    let test =
        "bundles_run_under_runc_and_crun_as_docker_run_runs_the_image_needs_root_and_dockerd_runc_crun";
    let Some((docker, ovl)) = docker_and_ovl(test, Images::Conformance) else {
        return;
    };
    let bundles = docker.scratch().join("bundles");
    fs::create_dir_all(&bundles).expect("mkdir bundles");
    let mut n = 0;
    let mut next = |prefix: &str| {
        n += 1;
        (format!("{prefix}{n}"), bundles.join(format!("b{n}")))
    };
    for image in [
        BASE_IMAGE,
        "ovl-seed:1",
        "ovl-changes:1",
        "ovl-deep:1",
        "ovl-app:1",
    ] {
        // The image's own command.
        let (docker_out, docker_err, docker_status) = docker_run(&docker, "d-default", &[image]);
        if docker_status == Some(0) {
            for runtime in Runtime::ALL {
                let (name, bundle) = next("default");
                let (out, status) = ovl_run(&ovl, runtime, &name, &bundle, &[image]);
                assert_eq!(status, Some(0), "{image} under {runtime:?}");
                assert_eq!(out, docker_out, "{image}'s command under {runtime:?}");
            }
        } else {
            // No command: Docker refuses it; so does ovl, creating nothing.
            assert!(
                docker_err.contains("No command specified"),
                "docker run {image}: {docker_err}"
            );
            let before = container_count(&ovl);
            let (_, bundle) = next("none");
            let err = ovl.fail([
                OsStr::new("run-rootfs"),
                OsStr::new("--bundle"),
                bundle.as_os_str(),
                OsStr::new(image),
            ]);
            assert!(err.contains("no command specified"), "{image}: {err}");
            assert!(
                !bundle.exists(),
                "a refused bundle left {}",
                bundle.display()
            );
            assert_eq!(
                container_count(&ovl),
                before,
                "a refused run-rootfs left a container"
            );
        }
        // What the process sees, as root and as the image's user.
        for user in [None, Some("root")] {
            let mut args: Vec<&str> = Vec::new();
            if let Some(user) = user {
                args.extend(["-u", user]);
            }
            args.extend([image, "sh", "-c", LISTING]);
            let (docker_out, docker_err, docker_status) = docker_run(&docker, "d-listing", &args);
            assert_eq!(docker_status, Some(0), "docker run {args:?}: {docker_err}");
            assert!(
                docker_out.lines().count() > 20,
                "{image}: short listing {docker_out}"
            );
            for runtime in Runtime::ALL {
                let (name, bundle) = next("listing");
                let (out, status) = ovl_run(&ovl, runtime, &name, &bundle, &args);
                assert_eq!(status, Some(0), "{args:?} under {runtime:?}");
                if out != docker_out {
                    let docker_lines: BTreeSet<&str> = docker_out.lines().collect();
                    let ovl_lines: BTreeSet<&str> = out.lines().collect();
                    panic!(
                        "{args:?} under {runtime:?} differs from docker run:\nonly docker: {:?}\nonly ovl: {:?}",
                        docker_lines.difference(&ovl_lines).collect::<Vec<_>>(),
                        ovl_lines.difference(&docker_lines).collect::<Vec<_>>()
                    );
                }
            }
        }
    }
    // The app image under other users, as `docker run -u` gives them.
    for user in ["1000:50", "root", "2000"] {
        let args = ["-u", user, "ovl-app:1", "sh", "-c", "id; pwd; env | sort"];
        let (docker_out, _, docker_status) = docker_run(&docker, "d-user", &args);
        assert_eq!(docker_status, Some(0));
        for runtime in Runtime::ALL {
            let (name, bundle) = next("user");
            let (out, _) = ovl_run(&ovl, runtime, &name, &bundle, &args);
            // runc (Docker's runtime) sets HOME to `/` for a user the image's passwd does not
            // know; crun leaves it unset, with Docker's spec as with ovl's.
            let expected = match runtime {
                Runtime::Crun if user == "2000" => docker_out.replace("HOME=/\n", ""),
                _ => docker_out.clone(),
            };
            assert_eq!(out, expected, "-u {user} under {runtime:?}");
        }
    }
    // The options docker run takes for the process.
    let args = [
        "-e",
        "X=2",
        "-e",
        "Y=3",
        "-w",
        "/tmp",
        "--entrypoint",
        "env",
        "ovl-app:1",
    ];
    let (docker_out, _, _) = docker_run(&docker, "d-options", &args);
    for runtime in Runtime::ALL {
        let (name, bundle) = next("options");
        let (out, _) = ovl_run(&ovl, runtime, &name, &bundle, &args);
        let sorted = |text: &str| text.lines().map(str::to_string).collect::<BTreeSet<_>>();
        assert_eq!(
            sorted(&out),
            sorted(&docker_out),
            "options under {runtime:?}"
        );
    }
}

/// The paths where two JSON values differ: objects by key, anything else as a whole.
fn differences(a: &Value, b: &Value, path: &str, out: &mut BTreeSet<String>) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                differences(
                    a.get(key).unwrap_or(&Value::Null),
                    b.get(key).unwrap_or(&Value::Null),
                    &child,
                    out,
                );
            }
        }
        _ if a == b => {}
        _ => {
            out.insert(path.to_string());
        }
    }
}

/// The bind mounts' sources are the runtime's own files: compared by name only.
fn without_bind_sources(mut spec: Value) -> Value {
    if let Some(mounts) = spec["mounts"].as_array_mut() {
        for mount in mounts {
            if mount["type"] == "bind" {
                let source = mount["source"].as_str().unwrap_or_default();
                let name = source.rsplit('/').next().unwrap_or_default().to_string();
                mount["source"] = Value::String(name);
            }
        }
    }
    spec
}

fn hostname_normalised(mut spec: Value) -> Value {
    let hostname = spec["hostname"].as_str().unwrap_or_default().to_string();
    if let Some(env) = spec["process"]["env"].as_array_mut() {
        for variable in env {
            if let Some(text) = variable.as_str() {
                *variable = Value::String(normalise(text, &hostname));
            }
        }
    }
    spec
}

#[test]
fn config_json_is_dockers_spec_but_for_the_daemons_own_parts_needs_root_and_dockerd_runc_crun_umoci_skopeo(
) {
    let test = "config_json_is_dockers_spec_but_for_the_daemons_own_parts_needs_root_and_dockerd_runc_crun_umoci_skopeo";
    if !(require_program(test, UMOCI, "umoci") && require_skopeo(test)) {
        return;
    }
    let Some((docker, ovl)) = docker_and_ovl(test, Images::BaseOnly) else {
        return;
    };
    // The spec dockerd hands containerd's runc shim for a running container.
    let docker_id = docker
        .docker_ok([
            "run",
            "-d",
            "--network",
            "none",
            "ovl-app:1",
            "sleep",
            "600",
        ])
        .trim()
        .to_string();
    let docker_spec_path = docker
        .exec_root()
        .join("containerd/daemon/io.containerd.runtime.v2.task/moby")
        .join(&docker_id)
        .join("config.json");
    let docker_spec: Value = serde_json::from_slice(
        &fs::read(&docker_spec_path)
            .unwrap_or_else(|err| panic!("{}: {err}", docker_spec_path.display())),
    )
    .expect("docker's config.json");
    let bundle = docker.scratch().join("bundle");
    ovl.ok([
        OsStr::new("run-rootfs"),
        OsStr::new("--name"),
        OsStr::new("app"),
        OsStr::new("--bundle"),
        bundle.as_os_str(),
        OsStr::new("ovl-app:1"),
        OsStr::new("sleep"),
        OsStr::new("600"),
    ]);
    let ovl_spec: Value =
        serde_json::from_slice(&fs::read(bundle.join("config.json")).expect("read config.json"))
            .expect("ovl's config.json");
    // `ovl bundle` of the same container, unmounted first, writes the same spec (it mounts the
    // container again, at the same path); a bundle directory is written once.
    ovl.ok(["umount", "app"]);
    let again = docker.scratch().join("bundle-again");
    assert_eq!(
        ovl.ok([OsStr::new("bundle"), OsStr::new("app"), again.as_os_str()])
            .trim(),
        again.display().to_string()
    );
    let again_spec: Value =
        serde_json::from_slice(&fs::read(again.join("config.json")).expect("read config.json"))
            .expect("ovl bundle's config.json");
    assert_eq!(
        without_bind_sources(again_spec),
        without_bind_sources(ovl_spec.clone())
    );
    // Refused for an unmounted container: it is left unmounted.
    ovl.ok(["umount", "app"]);
    let err = ovl.fail([OsStr::new("bundle"), OsStr::new("app"), again.as_os_str()]);
    let status = ovl.ok(["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(
        status.lines().any(|line| line == "app Created"),
        "a refused bundle left the container mounted: {status}"
    );
    assert!(
        err.contains(&again.join("config.json").display().to_string()) && err.contains("exists"),
        "{err}"
    );
    let mut differ = BTreeSet::new();
    differences(
        &hostname_normalised(without_bind_sources(docker_spec.clone())),
        &hostname_normalised(without_bind_sources(ovl_spec.clone())),
        "",
        &mut differ,
    );
    // Each of these is listed with its reason in docs/cli.md ("Runtime bundles"). The daemon's
    // profiles are there only where the host has seccomp and AppArmor.
    let mut expected: BTreeSet<String> = [
        "ociVersion",
        "root.path",
        "hostname",
        "hooks",
        "linux.cgroupsPath",
        "linux.resources.memory",
        "linux.resources.cpu",
        "linux.resources.blockIO",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    if docker_spec["linux"].get("seccomp").is_some() {
        expected.insert("linux.seccomp".to_string());
    }
    if docker_spec["process"].get("apparmorProfile").is_some() {
        expected.insert("process.apparmorProfile".to_string());
    }
    assert_eq!(
        differ, expected,
        "docker's spec:\n{docker_spec:#}\novl's spec:\n{ovl_spec:#}"
    );
    assert_eq!(ovl_spec["ociVersion"], "1.0.2");
    let merged = ovl.ok(["inspect", "-f", "{{.GraphDriver.Data.MergedDir}}", "app"]);
    assert_eq!(ovl_spec["root"]["path"], merged.trim());
    let ovl_id = ovl.ok(["inspect", "-f", "{{.Id}}", "app"]);
    assert_eq!(ovl_spec["hostname"], ovl_id.trim()[..12]);
    assert_eq!(
        ovl_spec["linux"]["cgroupsPath"],
        format!("/ovl/{}", ovl_id.trim())
    );
    // The process as `docker inspect` shows the container's config.
    for field in ["Env", "Cmd", "WorkingDir", "User", "Entrypoint"] {
        let format = format!("{{{{json .Config.{field}}}}}");
        let docker_value = docker.docker_ok(["inspect", "-f", &format, &docker_id]);
        let ovl_value = ovl.ok(["inspect", "-f", &format, "app"]);
        let docker_value = normalise(&docker_value, &docker_id[..12]);
        let ovl_value = normalise(&ovl_value, &ovl_id.trim()[..12]);
        assert_eq!(ovl_value, docker_value, "inspect .Config.{field}");
    }
    // Capabilities inside the running Docker container and under runc from the bundle.
    let caps = "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status";
    let docker_caps = docker.docker_ok(["exec", &docker_id, "sh", "-c", caps]);
    let (ovl_caps, _) = ovl_run(
        &ovl,
        Runtime::Runc,
        "caps",
        &docker.scratch().join("caps-bundle"),
        &["ovl-app:1", "sh", "-c", caps],
    );
    assert_eq!(ovl_caps, docker_caps);
    assert!(
        docker_caps.contains("CapBnd:\t00000000a80425fb"),
        "{docker_caps}"
    );

    // umoci's bundle of the same image, converted by skopeo to an OCI layout.
    let archive = docker.scratch().join("app.tar");
    docker.save("ovl-app:1", &archive);
    let layout = docker.scratch().join("layout");
    let status = Command::new(SKOPEO)
        .arg("copy")
        .arg("-q")
        .arg(format!("docker-archive:{}", archive.display()))
        .arg(format!("oci:{}:app", layout.display()))
        .status()
        .expect("spawn skopeo");
    assert!(status.success(), "skopeo copy");
    let umoci_bundle = docker.scratch().join("umoci-bundle");
    let output = Command::new(UMOCI)
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:app", layout.display()))
        .arg(&umoci_bundle)
        .output()
        .expect("spawn umoci");
    assert!(
        output.status.success(),
        "umoci unpack: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    // ovl's bundle of the image as it is (umoci knows no container and no command line).
    let image_bundle = docker.scratch().join("image-bundle");
    ovl.ok([
        OsStr::new("run-rootfs"),
        OsStr::new("--bundle"),
        image_bundle.as_os_str(),
        OsStr::new("ovl-app:1"),
    ]);
    let ovl_spec: Value = serde_json::from_slice(
        &fs::read(image_bundle.join("config.json")).expect("read config.json"),
    )
    .expect("ovl's config.json");
    let umoci_spec: Value = serde_json::from_slice(
        &fs::read(umoci_bundle.join("config.json")).expect("read umoci's config.json"),
    )
    .expect("umoci's config.json");
    // The process both derive from the image config.
    assert_eq!(umoci_spec["process"]["args"], ovl_spec["process"]["args"]);
    assert_eq!(umoci_spec["process"]["cwd"], ovl_spec["process"]["cwd"]);
    assert_eq!(
        umoci_spec["process"]["user"]["uid"],
        ovl_spec["process"]["user"]["uid"]
    );
    assert_eq!(
        umoci_spec["process"]["user"]["gid"],
        ovl_spec["process"]["user"]["gid"]
    );
    let mut differ = BTreeSet::new();
    differences(
        &without_bind_sources(umoci_spec.clone()),
        &without_bind_sources(ovl_spec.clone()),
        "",
        &mut differ,
    );
    let expected: BTreeSet<String> = [
        "ociVersion",
        "annotations",
        "hostname",
        "mounts",
        "root.path",
        "process.terminal",
        "process.env",
        "process.user.additionalGids",
        "process.capabilities.bounding",
        "process.capabilities.effective",
        "process.capabilities.inheritable",
        "process.capabilities.permitted",
        "process.capabilities.ambient",
        "process.rlimits",
        "process.noNewPrivileges",
        "process.oomScoreAdj",
        "linux.cgroupsPath",
        "linux.sysctl",
        "linux.resources.devices",
        "linux.namespaces",
        "linux.maskedPaths",
        "linux.readonlyPaths",
    ]
    .into_iter()
    .map(str::to_string)
    .collect();
    assert_eq!(
        differ, expected,
        "umoci's spec:\n{umoci_spec:#}\novl's spec:\n{ovl_spec:#}"
    );
    docker.docker_ok(["rm", "-f", &docker_id]);
}

/// Builds an image from a rootfs tar with `docker import` and the given changes; also loads it
/// into the ovl root through `docker save`.
fn import_image(docker: &Dockerd, ovl: &Ovl, tag: &str, rootfs: Vec<u8>, changes: &[&str]) {
    let path = docker
        .scratch()
        .join(format!("{}.rootfs.tar", tag.replace(':', "_")));
    fs::write(&path, rootfs).expect("write rootfs tar");
    let mut args = vec![OsStr::new("import")];
    for change in changes {
        args.extend([OsStr::new("-c"), OsStr::new(change)]);
    }
    args.extend([path.as_os_str(), OsStr::new(tag)]);
    docker.docker_ok(args);
    let archive = docker
        .scratch()
        .join(format!("{}.tar", tag.replace(':', "_")));
    docker.save(tag, &archive);
    ovl.ok([OsStr::new("load"), OsStr::new("-i"), archive.as_os_str()]);
}

/// A busybox rootfs whose `/etc` entries are the given ones.
fn rootfs_with_etc(etc: impl FnOnce(&mut TarBuilder)) -> Vec<u8> {
    let mut builder = TarBuilder::at(1_600_000_000);
    builder.mode(0o755).dir("bin/");
    builder
        .mode(0o755)
        .file("bin/busybox", &fs::read(BUSYBOX).expect("read busybox"));
    for applet in ["sh", "id", "cat"] {
        builder.symlink(&format!("bin/{applet}"), "busybox");
    }
    builder.mode(0o755).dir("etc/");
    etc(&mut builder);
    builder.finish()
}

#[test]
fn hostile_passwd_files_resolve_inside_the_rootfs_as_docker_resolves_them_needs_root_and_dockerd_runc_crun(
) {
    let test = "hostile_passwd_files_resolve_inside_the_rootfs_as_docker_resolves_them_needs_root_and_dockerd_runc_crun";
    let Some((docker, ovl)) = docker_and_ovl(test, Images::BaseOnly) else {
        return;
    };
    // The host's shadow file names root: were it read as the image's passwd, "root" would be
    // found (with the password-change day as uid) and the run would start.
    let host_shadow = fs::read_to_string("/etc/shadow").unwrap_or_default();
    assert!(
        host_shadow.starts_with("root:"),
        "the host has no /etc/shadow with root first"
    );
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "ovl-hostile-abs:1",
            rootfs_with_etc(|b| {
                b.symlink("etc/passwd", "/etc/shadow");
                b.symlink("etc/group", "/etc/gshadow");
            }),
            "root",
        ),
        (
            "ovl-hostile-rel:1",
            rootfs_with_etc(|b| {
                b.symlink("etc/passwd", "../../../../../../../../etc/shadow");
            }),
            "root",
        ),
        (
            "ovl-hostile-proc:1",
            rootfs_with_etc(|b| {
                b.symlink("etc/passwd", "/proc/self/root/etc/shadow");
            }),
            "root",
        ),
        (
            "ovl-hostile-missing:1",
            rootfs_with_etc(|b| {
                b.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n");
            }),
            "ghost",
        ),
    ];
    for (tag, rootfs, user) in cases {
        import_image(
            &docker,
            &ovl,
            tag,
            rootfs,
            &[&format!("USER {user}"), "CMD [\"id\"]"],
        );
        let (_, docker_err, docker_status) = docker_run(&docker, "d-hostile", &[tag]);
        assert_ne!(docker_status, Some(0), "docker run {tag} succeeded");
        let message = format!("unable to find user {user}: no matching entries in passwd file");
        assert!(
            docker_err.contains(&message),
            "docker run {tag}: {docker_err}"
        );
        // With openat2's RESOLVE_IN_ROOT, and with the userspace walk old kernels use.
        for disabled in ["", "openat2"] {
            let before = container_count(&ovl);
            let bundle = docker
                .scratch()
                .join(format!("bundle-{}-{disabled}", tag.replace(':', "_")));
            let output = ovl
                .command([
                    OsStr::new("run-rootfs"),
                    OsStr::new("--bundle"),
                    bundle.as_os_str(),
                    OsStr::new(tag),
                ])
                .env("OVL_DISABLE_FEATURES", disabled)
                .output()
                .expect("spawn ovl");
            let err = String::from_utf8_lossy(&output.stderr);
            assert_eq!(output.status.code(), Some(1), "{tag} ({disabled}): {err}");
            assert!(
                err.contains(&message),
                "ovl run-rootfs --bundle {tag} ({disabled}): {err}"
            );
            assert!(
                !bundle.exists(),
                "{tag}: a refused bundle left its directory"
            );
            assert_eq!(container_count(&ovl), before, "{tag}: a container was left");
            let mounts = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
            assert!(
                !mounts.contains(&ovl.root.display().to_string()),
                "{tag}: a mount was left under the root"
            );
        }
    }
    // A symlink inside the image resolves inside it, as Docker resolves it.
    import_image(
        &docker,
        &ovl,
        "ovl-linked:1",
        rootfs_with_etc(|b| {
            b.file(
                "etc/real-passwd",
                b"root:x:0:0:root:/root:/bin/sh\napp:x:1234:4321:app:/:/bin/sh\n",
            );
            b.symlink("etc/passwd", "/etc/real-passwd");
        }),
        &["USER app", "CMD [\"id\"]"],
    );
    let (docker_out, _, docker_status) = docker_run(&docker, "d-linked", &["ovl-linked:1"]);
    assert_eq!(docker_status, Some(0));
    assert!(docker_out.starts_with("uid=1234"), "{docker_out}");
    for runtime in Runtime::ALL {
        let bundle = docker.scratch().join(format!("linked-{runtime:?}"));
        let (out, _) = ovl_run(
            &ovl,
            runtime,
            &format!("linked-{runtime:?}"),
            &bundle,
            &["ovl-linked:1"],
        );
        assert_eq!(out, docker_out, "under {runtime:?}");
    }
    // A FIFO as /etc/passwd is refused, never opened (an open would wait for a writer).
    import_image(
        &docker,
        &ovl,
        "ovl-fifo:1",
        rootfs_with_etc(|b| {
            b.device("etc/passwd", b'6', 0, 0);
        }),
        &["USER app", "CMD [\"id\"]"],
    );
    let bundle = docker.scratch().join("bundle-fifo");
    let mut child = ovl
        .command([
            OsStr::new("run-rootfs"),
            OsStr::new("--bundle"),
            bundle.as_os_str(),
            OsStr::new("ovl-fifo:1"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ovl");
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            panic!("ovl run-rootfs --bundle hung on a FIFO /etc/passwd");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("output");
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/etc/passwd") && err.contains("not a regular file"),
        "{err}"
    );
    assert!(!bundle.exists());
}

/// Entries of a tar by name (without a trailing `/`): type, mode, owner ids and names, link
/// target, device numbers and content; modification times are left out.
fn tar_entries(bytes: &[u8]) -> std::collections::BTreeMap<Vec<u8>, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        let header = entry.header().clone();
        let mut name = entry.path_bytes().into_owned();
        if name.ends_with(b"/") {
            name.pop();
        }
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut content).expect("read entry");
        let text = format!(
            "type {:?} mode {:o} owner {}:{} names {:?}:{:?} link {:?} dev {:?},{:?} content {}",
            header.entry_type(),
            header.mode().unwrap_or(0),
            header.uid().unwrap_or(0),
            header.gid().unwrap_or(0),
            header.username().ok().flatten(),
            header.groupname().ok().flatten(),
            header.link_name_bytes().map(|name| name.into_owned()),
            header.device_major().ok().flatten(),
            header.device_minor().ok().flatten(),
            hex_digest(&content),
        );
        out.insert(name, text);
    }
    out
}

fn hex_digest(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[test]
fn export_equals_docker_export_and_mount_unmount_work_needs_root_and_dockerd_runc_crun() {
    let test =
        "export_equals_docker_export_and_mount_unmount_work_needs_root_and_dockerd_runc_crun";
    let Some((docker, ovl)) = docker_and_ovl(test, Images::SeedAndChanges) else {
        return;
    };
    // The same changes, made by the same command: in a Docker container, and in ovl's
    // container under runc.
    let changes =
        "mkdir -p /srv && echo hi > /srv/new && rm /bin/ls && mkdir /srv/d && chmod 700 /srv/d && \
        ln -s /nowhere /srv/l && chown 1000:50 /srv/new && mkfifo /srv/fifo && \
        rm -r /etc/group && ln /srv/new /srv/hard && echo x >> /etc/passwd";
    for image in ["ovl-app:1", "ovl-changes:1", "ovl-seed:1"] {
        let name = format!("x{}", image.replace([':', '-'], ""));
        docker.docker_ok([
            "run",
            "--network",
            "none",
            "-u",
            "root",
            "--name",
            &name,
            image,
            "sh",
            "-c",
            changes,
        ]);
        let docker_tar = docker
            .docker_command(["export", &name])
            .output()
            .expect("docker export");
        assert!(docker_tar.status.success());
        let bundle = docker.scratch().join(format!("bundle-{name}"));
        let (_, status) = ovl_run(
            &ovl,
            Runtime::Runc,
            &name,
            &bundle,
            &["-u", "root", image, "sh", "-c", changes],
        );
        assert_eq!(status, Some(0));
        // Exported while mounted, and after an unmount (mounted for the export only).
        let mounted = ovl.command(["export", &name]).output().expect("ovl export");
        assert!(
            mounted.status.success(),
            "{}",
            String::from_utf8_lossy(&mounted.stderr)
        );
        ovl.ok(["unmount", &name]);
        let file = docker.scratch().join(format!("{name}.tar"));
        ovl.ok([
            OsStr::new("export"),
            OsStr::new("-o"),
            file.as_os_str(),
            OsStr::new(&name),
        ]);
        let status = ovl.ok(["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
        assert!(
            status.lines().any(|line| line == format!("{name} Created")),
            "export left {name} mounted: {status}"
        );
        let unmounted = fs::read(&file).expect("read export");
        let docker_entries = tar_entries(&docker_tar.stdout);
        for (what, bytes) in [("mounted", &mounted.stdout), ("-o file", &unmounted)] {
            let ovl_entries = tar_entries(bytes);
            let keys: BTreeSet<&Vec<u8>> =
                docker_entries.keys().chain(ovl_entries.keys()).collect();
            let differ: Vec<String> = keys
                .into_iter()
                .filter(|key| docker_entries.get(*key) != ovl_entries.get(*key))
                .map(|key| {
                    format!(
                        "{}: docker {:?} ovl {:?}",
                        String::from_utf8_lossy(key),
                        docker_entries.get(key),
                        ovl_entries.get(key)
                    )
                })
                .collect();
            assert!(
                differ.is_empty(),
                "{image} export ({what}) differs:\n{}",
                differ.join("\n")
            );
        }
        assert!(docker_entries.len() > 20);
    }
    // mount / unmount as podman names them.
    let name = "xovlapp1";
    let merged = ovl.ok(["mount", name]);
    let merged = PathBuf::from(merged.trim());
    assert!(merged.join("srv/new").exists(), "{}", merged.display());
    assert_eq!(ovl.ok(["mount", name]).trim(), merged.display().to_string());
    let mounts = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(mounts.contains(&merged.display().to_string()));
    assert_eq!(ovl.ok(["unmount", name]).trim(), name);
    assert!(!merged.join("srv/new").exists());
    let err = ovl.fail(["mount", "no-such-container"]);
    assert!(err.contains("no-such-container"), "{err}");
}
