//! The Debian package of `cargo xtask deb`, installed with apt into a clean Debian 12 root made by
//! debootstrap: the binary runs, `man ovl-load` shows the command's page, bash completes `ovl lo`
//! to the three commands starting with `lo`, dpkg lists every packaged file, and removing the
//! package removes the binary.
//!
//! The root comes from `debootstrap --variant=minbase` with man-db and bash-completion, from the
//! host's Debian mirror, so the test needs root and the network. To keep repeated runs fast, the
//! fresh root is kept as a tarball in cargo's temporary directory for tests and reused; every run
//! extracts it anew into a scratch directory, so no run sees what an earlier one installed.
//! Commands in the root run in a private mount namespace with their own `/proc` and `/dev/pts`,
//! which disappear with the namespace, so nothing stays mounted even if the test is killed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use ovl_tests::{require_program, require_root, Scratch};

/// The Debian release of the root, and the packages added to the minimal base: `man` and the
/// bash-completion framework.
const SUITE: &str = "bookworm";
const INCLUDE: &str = "man-db,bash-completion";
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn assert_success(what: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{what} failed with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// The host's Debian mirror: the first `URIs:` of the deb822 sources, else the first `deb` line
/// of sources.list, else deb.debian.org.
fn debian_mirror() -> String {
    if let Ok(sources) = fs::read_to_string("/etc/apt/sources.list.d/debian.sources") {
        if let Some(uri) = sources
            .lines()
            .find_map(|line| line.strip_prefix("URIs:"))
            .and_then(|uris| uris.split_whitespace().next())
        {
            return uri.to_string();
        }
    }
    if let Ok(list) = fs::read_to_string("/etc/apt/sources.list") {
        for line in list.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("deb") {
                continue;
            }
            // `deb [arch=amd64 signed-by=...] URI suite ...`: skip the options.
            let mut uri = words.next();
            if uri.is_some_and(|word| word.starts_with('[')) {
                uri = words.find(|word| word.ends_with(']')).and(words.next());
            }
            if let Some(uri) = uri {
                return uri.to_string();
            }
        }
    }
    DEFAULT_MIRROR.to_string()
}

/// `cargo xtask deb`; returns the package's path (the last line it prints).
fn build_deb() -> PathBuf {
    let output = Command::new(cargo())
        .current_dir(workspace())
        .args(["xtask", "deb"])
        .output()
        .expect("run cargo xtask deb");
    assert_success("cargo xtask deb", &output);
    let stdout = text(&output.stdout);
    let path = PathBuf::from(
        stdout
            .lines()
            .last()
            .expect("cargo xtask deb printed a path"),
    );
    assert!(
        path.extension().is_some_and(|ext| ext == "deb") && path.is_file(),
        "{path:?}"
    );
    path
}

/// The tarball of a fresh debootstrapped root, made on the first run (in a private mount
/// namespace, so the `/proc` and `/sys` debootstrap mounts cannot outlive it) and reused after.
fn cached_root_tarball() -> PathBuf {
    let tarball = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "debian-{SUITE}-minbase-{}.tar",
        INCLUDE.replace(',', "-")
    ));
    if tarball.is_file() {
        eprintln!("packaging: reusing {}", tarball.display());
        return tarball;
    }
    let work = Scratch::new();
    let root = work.join("root");
    let mirror = debian_mirror();
    let started = Instant::now();
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--"])
        .args(["debootstrap", "--variant=minbase"])
        .arg(format!("--include={INCLUDE}"))
        .arg(SUITE)
        .arg(&root)
        .arg(&mirror)
        .output()
        .expect("run debootstrap");
    assert_success(&format!("debootstrap {SUITE} from {mirror}"), &output);
    eprintln!(
        "packaging: debootstrap {SUITE} from {mirror} took {:.1?}",
        started.elapsed()
    );
    fs::create_dir_all(tarball.parent().expect("the tarball has a directory"))
        .expect("create the target tmp directory");
    let partial = tarball.with_extension("tar.partial");
    let output = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(&root)
        .arg("-cf")
        .arg(&partial)
        .arg(".")
        .output()
        .expect("run tar");
    assert_success("tar of the debootstrapped root", &output);
    fs::rename(&partial, &tarball).expect("rename the root tarball into place");
    tarball
}

/// A clean Debian root in a scratch directory (removed when dropped).
struct DebianRoot {
    scratch: Scratch,
}

impl DebianRoot {
    fn extract(tarball: &Path) -> DebianRoot {
        let scratch = Scratch::new();
        fs::create_dir(scratch.join("root")).expect("create the root directory");
        let output = Command::new("tar")
            .args(["--numeric-owner", "-xpf"])
            .arg(tarball)
            .arg("-C")
            .arg(scratch.join("root"))
            .output()
            .expect("run tar");
        assert_success("extracting the Debian root", &output);
        DebianRoot { scratch }
    }

    fn path(&self) -> PathBuf {
        self.scratch.join("root")
    }

    /// Runs `args` chrooted into the root with a plain environment (`LANG=C`, no frontend for
    /// debconf, man pages 80 columns wide), in a private mount namespace with its own `/proc` and
    /// `/dev/pts`.
    fn run(&self, args: &[&str]) -> Output {
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(
                "mount -t proc proc \"$0/proc\" \
                 && mount -t devpts -o newinstance,ptmxmode=0666 devpts \"$0/dev/pts\" \
                 && exec chroot \"$0\" \"$@\"",
            )
            .arg(self.path())
            .args(args)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", "/root")
            .env("LANG", "C")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("MANWIDTH", "80")
            .output()
            .expect("run unshare and chroot")
    }

    /// [`DebianRoot::run`] that must succeed; returns stdout.
    fn run_ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert_success(&format!("chroot {}", args.join(" ")), &output);
        text(&output.stdout)
    }
}

/// What bash offers for `ovl lo<TAB>`: the completion function `complete -p ovl` names after
/// bash-completion's loader read the packaged script, called as bash calls it.
const BASH_COMPLETE_OVL_LO: &str = r#"
source /usr/share/bash-completion/bash_completion
_completion_loader ovl
spec=$(complete -p ovl) || exit 3
function=${spec##*-F }
function=${function%% *}
COMP_WORDS=(ovl lo)
COMP_CWORD=1
COMP_LINE='ovl lo'
COMP_POINT=6
"$function" ovl lo ovl
printf '%s\n' "${COMPREPLY[@]}"
"#;

#[test]
fn deb_installs_and_works_in_a_clean_debian_12_chroot_needs_root_and_network() {
    let name = "deb_installs_and_works_in_a_clean_debian_12_chroot_needs_root_and_network";
    if !require_root(name)
        || !require_program(name, "/usr/sbin/debootstrap", "debootstrap")
        || !require_program(name, "/usr/bin/dpkg-deb", "dpkg")
        || !require_program(name, "/usr/bin/dpkg-shlibdeps", "dpkg-dev")
    {
        return;
    }
    let started = Instant::now();
    let deb = build_deb();
    eprintln!("packaging: cargo xtask deb took {:.1?}", started.elapsed());
    let tarball = cached_root_tarball();
    let root = DebianRoot::extract(&tarball);
    let deb_name = deb
        .file_name()
        .and_then(|name| name.to_str())
        .expect("the package has a UTF-8 name")
        .to_string();
    fs::copy(&deb, root.path().join("tmp").join(&deb_name)).expect("copy the package in");

    // Only packages of the minimal root may satisfy the dependencies: with its package lists
    // gone, apt knows no package it could download. (`--no-download` would say the same, but
    // apt 2.6 then refuses the local package as a path that is not absolute.)
    let lists = root.path().join("var/lib/apt/lists");
    for entry in fs::read_dir(&lists).expect("read the root's apt lists") {
        let entry = entry.expect("read the root's apt lists");
        if entry.file_type().expect("file type").is_file() {
            fs::remove_file(entry.path()).expect("remove a package list");
        }
    }
    let install = root.run(&["apt-get", "install", "-y", &format!("/tmp/{deb_name}")]);
    assert_success("apt-get install of the package", &install);

    let version = root.run_ok(&["ovl", "--version"]);
    assert_eq!(
        version.trim(),
        format!("ovl {}", env!("CARGO_PKG_VERSION")),
        "ovl --version in the root"
    );

    let page = root.run_ok(&["man", "-P", "cat", "ovl-load"]);
    for expected in [
        "OVL-LOAD(1)",
        "ovl-load - Load images from",
        "--max-layer-size",
    ] {
        assert!(
            page.contains(expected),
            "man ovl-load lacks {expected:?}:\n{page}"
        );
    }

    let offered = root.run_ok(&["bash", "-c", BASH_COMPLETE_OVL_LO]);
    let offered: Vec<&str> = offered.lines().collect();
    for expected in ["load", "login", "logout"] {
        assert!(
            offered.contains(&expected),
            "ovl lo<TAB> offers {offered:?}"
        );
    }
    assert!(!offered.contains(&"pull"), "ovl lo<TAB> offers {offered:?}");

    let listed = root.run_ok(&["dpkg", "-L", "ovl"]);
    for expected in [
        "/usr/bin/ovl",
        "/usr/share/man/man1/ovl.1.gz",
        "/usr/share/man/man1/ovl-load.1.gz",
        "/usr/share/man/man1/ovl-system-df.1.gz",
        "/usr/share/bash-completion/completions/ovl",
        "/usr/share/zsh/vendor-completions/_ovl",
        "/usr/share/fish/vendor_completions.d/ovl.fish",
        "/usr/share/doc/ovl/copyright",
        "/usr/share/doc/ovl/changelog.Debian.gz",
    ] {
        assert!(
            listed.lines().any(|line| line == expected),
            "dpkg -L ovl lacks {expected}:\n{listed}"
        );
    }

    root.run_ok(&["apt-get", "remove", "-y", "ovl"]);
    assert!(
        !root.path().join("usr/bin/ovl").exists(),
        "apt-get remove left /usr/bin/ovl"
    );
    eprintln!("packaging: the whole test took {:.1?}", started.elapsed());
}
