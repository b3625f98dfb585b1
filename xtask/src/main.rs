//! The project's task runner: `cargo xtask TASK`, one of the tasks below.
//!
//! - `demo`: builds ovl, makes a small busybox image archive, and runs load, images, run-rootfs,
//!   ps, inspect, a change in the container, diff, commit, save, a runtime bundle of the committed
//!   image run by runc and exported, umount, rm, rmi and a reload of the saved archive in a
//!   scratch data root (needs root).
//! - `test`: installs the Debian packages the tests need (when missing) and runs the whole suite.
//! - `deps`: only the package installation.
//! - `bench`: ovl's load, run-rootfs, pull, diff and commit against Docker, podman, umoci and
//!   floors, with scaling curves; writes `docs/performance.md` (see `bench.rs`).
//! - `overlay-floor HOME LOWER_FILE DIR`: one overlay mount and unmount of a container's lowers,
//!   the floor of the bench's mount curve.
//! - `fuzz`: the cargo fuzz targets for a bounded time each (see `fuzz.rs`); `test` runs them for
//!   20 s each after the suite.
//! - `vm-test`: the scenarios of `vm-tests/` on other kernels under QEMU (see `vm.rs` for the host
//!   side, `vm_guest.rs` for the guest side); `test` runs all of them on the three built-in
//!   kernels, natively and under the ABI lanes of the old hosts.
//! - `vm-guest`: the guest runner itself, started by the guest's /init.
//! - `dist`: `target/dist/ovl`, a release build that needs at most glibc 2.17, built with zig
//!   (see `dist.rs`).
//! - `lane NAME COMMAND...`: a command under an ABI lane (`abi-lane`: the system calls of CentOS
//!   7's, RHEL 8's or Ubuntu 20.04's kernel), as the tests run ovl there.
//! - `mutation`: the hostile suite against an `ovl` whose userspace resolver lost its clamp; it
//!   must fail (see `mutation.rs`).
//! - `man`: the manual pages of a release build in `target/man` (see `package.rs`).
//! - `deb`: `target/deb/ovl_<version>_<arch>.deb`, a Debian package of a release build with the
//!   manual pages, the bash, zsh and fish completions and a machine-readable copyright file.
//! - `install [--prefix DIR] [--destdir DIR]`: the binary, manual pages and completions below
//!   `DESTDIR/PREFIX` (`/usr/local` by default), laid out as `deb` lays out the package.

mod bench;
mod dist;
mod fuzz;
mod mutation;
mod package;
mod vm;
mod vm_guest;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use gocompat::digest::hex;
use sha2::{Digest, Sha256};

/// Debian packages the tests and the demo use, with the command that shows each is installed.
const DEBIAN_PACKAGES: [(&str, &str); 18] = [
    ("docker.io", "/usr/sbin/dockerd"),
    ("skopeo", "/usr/bin/skopeo"),
    ("busybox-static", "/bin/busybox"),
    ("xfsprogs", "/usr/sbin/mkfs.xfs"),
    ("zstd", "/usr/bin/zstd"),
    ("iproute2", "/usr/sbin/ip"),
    ("qemu-system-x86", "/usr/bin/qemu-system-x86_64"),
    ("e2fsprogs", "/usr/sbin/mke2fs"),
    ("xz-utils", "/usr/bin/xz"),
    ("time", "/usr/bin/time"),
    ("docker-registry", "/usr/bin/docker-registry"),
    ("apache2-utils", "/usr/bin/htpasswd"),
    ("openssl", "/usr/bin/openssl"),
    ("runc", "/usr/sbin/runc"),
    ("crun", "/usr/bin/crun"),
    ("umoci", "/usr/bin/umoci"),
    ("debootstrap", "/usr/sbin/debootstrap"),
    ("dpkg-dev", "/usr/bin/dpkg-shlibdeps"),
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("demo") => demo(),
        Some("test") => test(&args[1..]),
        Some("deps") => deps(),
        Some("bench") => bench::bench(&args[1..]),
        Some("overlay-floor") => bench::overlay_floor(&args[1..]),
        Some("fuzz") => fuzz::fuzz(&args[1..]),
        Some("vm-test") => vm::vm_test(&args[1..]),
        Some("vm-guest") => vm_guest::vm_guest(&args[1..]),
        Some("lane") => lane(&args[1..]),
        Some("mutation") => mutation::mutation(&args[1..]),
        Some("dist") => dist::dist(&args[1..]),
        Some("man") => package::man(&args[1..]),
        Some("deb") => package::deb(&args[1..]),
        Some("install") => package::install(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask demo | test [cargo test args] | deps | bench [options] | fuzz [options] \
                 | vm-test [options] | dist | lane NAME COMMAND... | mutation | man | deb \
                 | install [--prefix DIR] [--destdir DIR]"
            );
            std::process::exit(2);
        }
    }
}

/// `cargo xtask lane NAME COMMAND [ARGS...]`: runs a command under an ABI lane (`abi-lane`), as
/// the tests do, to try ovl by hand as it would run on that kernel.
fn lane(args: &[String]) -> Result<()> {
    let [name, program, rest @ ..] = args else {
        bail!(
            "usage: cargo xtask lane {} COMMAND [ARGS...]",
            abi_lane::LANES.map(|lane| lane.name).join("|")
        );
    };
    let Some(lane) = abi_lane::lane(name) else {
        bail!("no lane {name:?}");
    };
    let mut command = Command::new(program);
    command.args(rest);
    lane.wrap(&mut command);
    let status = command
        .status()
        .with_context(|| format!("running {program} under the {name} lane"))?;
    std::process::exit(status.code().unwrap_or(1));
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| out.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// Installs missing Debian packages with apt-get (root only; otherwise says what is missing).
fn deps() -> Result<()> {
    install(&DEBIAN_PACKAGES)
}

/// Installs those of `packages` whose probe path is missing.
fn install(packages: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(_, probe)| !Path::new(probe).exists())
        .map(|(name, _)| *name)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing Debian packages {}: install them with `sudo apt-get install {}`",
            missing.join(", "),
            missing.join(" ")
        );
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    run(Command::new("apt-get").args(["update", "-qq"]))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn test(extra: &[String]) -> Result<()> {
    deps()?;
    let root = workspace_root();
    run(Command::new(cargo())
        .current_dir(&root)
        .args(["build", "--workspace", "--bins"]))?;
    run(Command::new(cargo())
        .current_dir(&root)
        .args(["test", "--workspace"])
        .args(extra))?;
    // The suites that must hold on the oldest kernel again in the centos7 lane with the binary
    // built for old hosts, a bounded fuzz run of every target (the long runs are documented in
    // docs/testing.md), then the kernel matrix under QEMU.
    if extra.is_empty() {
        host_lane_suites(&root, "centos7")?;
        fuzz::fuzz(&["--seconds".to_string(), "20".to_string()])?;
        vm::vm_test(&[])?;
    }
    Ok(())
}

/// The end-to-end suites that run a second time under an ABI lane on the host: every `ovl` they
/// start is `target/dist/ovl` with the lane's seccomp filter, so paths inside layers go through
/// the userspace resolver and every other fallback is taken.
const HOST_LANE_SUITES: [&str; 9] = [
    "old_kernels",
    "hostile",
    "hostile_container",
    "hostile_root",
    "crash",
    "bad_input",
    "lifecycle",
    "full_disk",
    "fsck",
];

fn host_lane_suites(root: &Path, lane: &str) -> Result<()> {
    let ovl = dist::dist_binary()?;
    eprintln!(
        "xtask: {} in the {lane} lane with {}",
        HOST_LANE_SUITES.join(", "),
        ovl.display()
    );
    let mut command = Command::new(cargo());
    command
        .current_dir(root)
        .env("OVL_ABI_LANE", lane)
        .env("OVL_BIN", &ovl)
        .args(["test", "-p", "ovl-tests"]);
    for suite in HOST_LANE_SUITES {
        command.args(["--test", suite]);
    }
    run(&mut command)
}

fn demo() -> Result<()> {
    if !is_root() {
        bail!("the demo mounts overlays: run it as root (sudo -E cargo xtask demo)");
    }
    deps()?;
    let root = workspace_root();
    run(Command::new(cargo())
        .current_dir(&root)
        .args(["build", "--release", "-p", "ovl"]))?;
    let ovl = root.join("target/release/ovl");
    let scratch = root.join("target/demo");
    if scratch.join("root").exists() {
        // A previous demo may have left a mount behind if it was interrupted.
        let _ = Command::new(&ovl)
            .args(["--root"])
            .arg(scratch.join("root"))
            .args(["rm", "-f", "demo", "web"])
            .output();
        std::fs::remove_dir_all(&scratch)
            .with_context(|| format!("removing {}", scratch.display()))?;
    }
    std::fs::create_dir_all(&scratch)?;
    let archive = make_demo_archive(&scratch)?;
    let data_root = scratch.join("root");
    let step = |args: &[&str]| -> Result<String> {
        println!("$ ovl --root {} {}", data_root.display(), args.join(" "));
        let out = Command::new(&ovl)
            .arg("--root")
            .arg(&data_root)
            .args(args)
            .output()?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            bail!("ovl {} failed with {}", args.join(" "), out.status);
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    step(&["load", "-i", &archive.display().to_string()])?;
    step(&["images"])?;
    let merged = step(&["run-rootfs", "--name", "demo", "demo:1"])?;
    println!("$ chroot {merged} /bin/sh -c 'cat /etc/motd; ls /; ls /etc'");
    run(Command::new("chroot").arg(&merged).args([
        "/bin/sh",
        "-c",
        "cat /etc/motd; ls /; ls /etc",
    ]))?;
    step(&["ps", "-a"])?;
    step(&["inspect", "--type", "container", "demo"])?;
    let change =
        "echo changed > /etc/motd; rm -r /proc; mkdir -p /srv/www && echo hi > /srv/www/index.html";
    println!("$ chroot {merged} /bin/sh -c '{change}'");
    run(Command::new("chroot")
        .arg(&merged)
        .args(["/bin/sh", "-c", change]))?;
    step(&["diff", "demo"])?;
    step(&[
        "commit",
        "-m",
        "demo change",
        "-c",
        "WORKDIR /srv/www",
        "demo",
        "demo:2",
    ])?;
    let saved = scratch.join("demo2.tar");
    step(&["save", "-o", &saved.display().to_string(), "demo:2"])?;
    // The committed image run by runc from a runtime bundle, then exported as a tar.
    let bundle = scratch.join("bundle");
    step(&[
        "run-rootfs",
        "--name",
        "web",
        "--bundle",
        &bundle.display().to_string(),
        "demo:2",
        "sh",
        "-c",
        "pwd; cat index.html; id",
    ])?;
    println!("$ runc run --bundle {} demo-web", bundle.display());
    run(Command::new("runc")
        .arg("run")
        .arg("--bundle")
        .arg(&bundle)
        .arg("demo-web")
        .stdin(std::process::Stdio::null()))?;
    step(&[
        "export",
        "-o",
        &scratch.join("web.tar").display().to_string(),
        "web",
    ])?;
    step(&["rm", "-f", "web"])?;
    registry_round_trip(&ovl, &scratch, &step)?;
    step(&["umount", "demo"])?;
    step(&["rm", "demo"])?;
    step(&["rmi", "demo:2", "demo:1"])?;
    step(&["load", "-i", &saved.display().to_string()])?;
    step(&["images"])?;
    step(&["rmi", "demo:2"])?;
    println!("demo done: data root left at {}", data_root.display());
    Ok(())
}

/// The demo's registry part: a private Debian `docker-registry` on a free loopback port, `ovl
/// push` of the committed image, `ovl pull` of it into a second data root, and `ovl save | ovl
/// load` through a pipe into a third.
fn registry_round_trip(
    ovl: &Path,
    scratch: &Path,
    step: &dyn Fn(&[&str]) -> Result<String>,
) -> Result<()> {
    // The tests' registry harness: Debian's docker-registry on a free loopback port, with a
    // storage directory of its own, killed when dropped.
    let registry =
        ovl_tests::Registry::start(&scratch.join("registry"), ovl_tests::RegistryAuth::None);
    let remote = format!("{}/demo:2", registry.host());
    step(&["tag", "demo:2", &remote])?;
    step(&["push", &remote])?;
    let pulled = scratch.join("root-pulled");
    let in_pulled = |args: &[&str]| -> Result<()> {
        println!("$ ovl --root {} {}", pulled.display(), args.join(" "));
        run(Command::new(ovl).arg("--root").arg(&pulled).args(args))
    };
    in_pulled(&["pull", &remote])?;
    in_pulled(&["images", "--digests"])?;
    let piped = scratch.join("root-piped");
    let script = format!(
        "'{0}' --root '{1}' save demo:2 | '{0}' --root '{2}' load",
        ovl.display(),
        scratch.join("root").display(),
        piped.display()
    );
    println!("$ ovl save demo:2 | ovl --root {} load", piped.display());
    run(Command::new("bash").args(["-o", "pipefail", "-c", &script]))?;
    step(&["rmi", &remote])?;
    drop(registry);
    Ok(())
}

/// A two-layer docker-archive: a busybox rootfs, then a layer that adds /etc/motd and deletes
/// /etc/issue (a whiteout).
fn make_demo_archive(scratch: &Path) -> Result<PathBuf> {
    let rootfs = scratch.join("rootfs");
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::create_dir_all(rootfs.join("etc"))?;
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .context("copying /bin/busybox (Debian busybox-static)")?;
    let applets = Command::new("/bin/busybox").arg("--list").output()?;
    for applet in String::from_utf8_lossy(&applets.stdout).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", bin.join(applet))?;
        }
    }
    std::fs::write(rootfs.join("etc/issue"), "busybox demo\n")?;
    std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    let image_dir = scratch.join("image");
    let layers = image_dir.join("layers");
    std::fs::create_dir_all(&layers)?;
    let tar = |dir: &Path, out: &Path, entries: &[&str]| {
        run(Command::new("tar")
            .args([
                "--numeric-owner",
                "--owner=0",
                "--group=0",
                "--sort=name",
                "-C",
            ])
            .arg(dir)
            .arg("-cf")
            .arg(out)
            .args(entries))
    };
    tar(&rootfs, &layers.join("1.tar"), &["."])?;
    let top = scratch.join("top");
    std::fs::create_dir_all(top.join("etc"))?;
    std::fs::write(top.join("etc/motd"), "hello from an ovl container layer\n")?;
    std::fs::write(top.join("etc/.wh.issue"), "")?;
    tar(
        &top,
        &layers.join("2.tar"),
        &["--no-recursion", "etc", "etc/motd", "etc/.wh.issue"],
    )?;
    let mut diff_ids = Vec::new();
    for name in ["1.tar", "2.tar"] {
        diff_ids.push(format!(
            "sha256:{}",
            hex(&Sha256::digest(std::fs::read(layers.join(name))?))
        ));
    }
    let created = "2026-01-01T00:00:00Z";
    let config = serde_json::json!({
        "architecture": "amd64",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "created": created,
        "history": [{"created": created, "created_by": "busybox rootfs"}, {"created": created, "created_by": "motd"}],
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config_bytes = serde_json::to_vec(&config)?;
    let config_name = format!("{}.json", hex(&Sha256::digest(&config_bytes)));
    std::fs::write(image_dir.join(&config_name), &config_bytes)?;
    let manifest = serde_json::json!([{"Config": config_name, "RepoTags": ["demo:1"], "Layers": ["layers/1.tar", "layers/2.tar"]}]);
    std::fs::write(
        image_dir.join("manifest.json"),
        serde_json::to_vec(&manifest)?,
    )?;
    let archive = scratch.join("demo.tar");
    tar(
        &image_dir,
        &archive,
        &["manifest.json", &config_name, "layers"],
    )?;
    Ok(archive)
}

/// Writes one regular-file member (mode 0644, the given mtime) of `size` bytes read from `data`,
/// with its padding: the archives the benchmark and the QEMU corpus generate.
fn tar_member(
    out: &mut dyn std::io::Write,
    name: &str,
    data: &mut dyn std::io::Read,
    size: u64,
    mtime: i64,
) -> Result<()> {
    let header = gotar::Header {
        name: name.as_bytes().to_vec(),
        typeflag: gotar::typeflag::REG,
        mode: 0o644,
        size: size as i64,
        mtime,
        ..gotar::Header::default()
    };
    out.write_all(&header.encode()?)?;
    let copied = std::io::copy(data, out)?;
    anyhow::ensure!(
        copied == size,
        "member {name}: wrote {copied} of {size} bytes"
    );
    out.write_all(&vec![0u8; gotar::padding(size)])?;
    Ok(())
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed with {status}");
    }
    Ok(())
}
