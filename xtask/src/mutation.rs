//! `cargo xtask mutation`: shows that the hostile-archive suite can catch a broken userspace
//! resolver.
//!
//! It copies the workspace's sources to `target/mutation/src`, removes the resolver's clamp there
//! (`..` at the root then opens the root's real parent, and an absolute symlink target starts
//! at the host's `/` instead of the layer's root), builds that `ovl`, and runs the hostile suite
//! on it in the `centos7` ABI lane, where there is no `openat2` and every path goes through the
//! userspace walk. The suite must fail; the command fails if it passes, and prints the tests
//! that caught the mutant. The mutant escapes for real, so it runs in a throwaway overlay of `/`
//! in a private mount namespace (see `sandboxed`): outside one, the corpus's whiteout over
//! `etc/passwd` replaces the host's `/etc/passwd` with a 0/0 character device.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};

/// The file mutated and the replacements made in it: (original, mutant).
const RESOLVER: &str = "crates/syscompat/src/in_root.rs";
const MUTATIONS: [(&str, &str); 2] = [
    (
        "        if component == b\"..\" {\n",
        "        if component == b\"..\" && !dirs.is_empty() {\n",
    ),
    (
        "        if target.starts_with(b\"/\") {\n            dirs.clear();\n        }\n",
        "        if target.starts_with(b\"/\") {\n            dirs.clear();\n            \
         dirs.push(rustix::fs::open(\"/\", OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?);\n        }\n",
    ),
];

pub fn mutation(_args: &[String]) -> Result<()> {
    let root = crate::workspace_root();
    let work = root.join("target/mutation");
    let src = work.join("src");
    if src.exists() {
        std::fs::remove_dir_all(&src).with_context(|| format!("removing {}", src.display()))?;
    }
    std::fs::create_dir_all(&src)?;
    for entry in [
        "Cargo.toml",
        "Cargo.lock",
        "crates",
        "tests",
        "xtask",
        ".cargo",
    ] {
        copy(&root.join(entry), &src.join(entry))?;
    }
    let resolver = src.join(RESOLVER);
    let mut text = std::fs::read_to_string(&resolver)?;
    for (original, mutant) in MUTATIONS {
        ensure!(
            text.matches(original).count() == 1,
            "{RESOLVER} no longer has the line the mutation replaces: {original:?}"
        );
        text = text.replace(original, mutant);
    }
    std::fs::write(&resolver, text)?;
    crate::run(
        Command::new(crate::cargo())
            .current_dir(&src)
            .env("CARGO_TARGET_DIR", work.join("target"))
            .args(["build", "-p", "ovl"]),
    )?;
    let mutant = work.join("target/debug/ovl");
    let suite = hostile_suite(&root)?;
    eprintln!(
        "xtask: running the hostile suite on the mutant {} in the centos7 lane, in a sandbox",
        mutant.display()
    );
    let output = sandboxed(&work, &suite, &mutant)?;
    let report = String::from_utf8_lossy(&output.stdout);
    let caught: Vec<&str> = report
        .lines()
        .filter(|line| line.starts_with("test ") && line.ends_with("FAILED"))
        .collect();
    if output.status.success() || caught.is_empty() {
        eprintln!("{report}{}", String::from_utf8_lossy(&output.stderr));
        bail!(
            "the hostile suite passed on a resolver without its clamp: it cannot catch an escape"
        );
    }
    println!("the mutant (resolver without its clamp) was caught by:");
    for line in &caught {
        println!("  {line}");
    }
    for line in report
        .lines()
        .filter(|line| line.starts_with("FAILED: ") || line.contains("escaped"))
    {
        println!("  {line}");
    }
    Ok(())
}

/// The tests of the hostile suite that need no dockerd.
const HOSTILE_TESTS: [&str; 2] = [
    "hostile_archives_are_rejected_or_contained_needs_root",
    "hostile_rootfs_tarballs_are_rejected_or_contained_needs_root",
];

/// Builds the hostile suite's test executable and returns its path.
fn hostile_suite(root: &Path) -> Result<PathBuf> {
    let output = Command::new(crate::cargo())
        .current_dir(root)
        .args(["test", "-p", "ovl-tests", "--test", "hostile", "--no-run"])
        .args(["--message-format", "json"])
        .output()
        .context("building the hostile suite")?;
    ensure!(output.status.success(), "building the hostile suite failed");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["target"]["name"] == "hostile")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .context("cargo named no hostile test executable")
}

/// Runs the suite on the mutant where its escapes cannot reach the host: in a private mount
/// namespace, chrooted into an overlay of `/` whose upper layer is a tmpfs that vanishes with the
/// namespace, with a tmpfs of its own as `/var/tmp` (where the tests make their data roots).
/// The mutant is expected to write outside its layers, through `..` and absolute symlinks, into
/// whatever `/` is.
fn sandboxed(work: &Path, suite: &Path, mutant: &Path) -> Result<std::process::Output> {
    let sandbox = work.join("sandbox");
    std::fs::create_dir_all(&sandbox)?;
    let script = r#"set -euo pipefail
sandbox=$1; shift
mount -t tmpfs -o size=4g ovl-mutation "$sandbox"
mkdir "$sandbox/upper" "$sandbox/work" "$sandbox/root"
mount -t overlay ovl-mutation -o "lowerdir=/,upperdir=$sandbox/upper,workdir=$sandbox/work" "$sandbox/root"
for dir in proc sys dev; do mount --rbind "/$dir" "$sandbox/root/$dir"; done
mount -t tmpfs -o size=8g ovl-mutation "$sandbox/root/var/tmp"
exec chroot "$sandbox/root" "$@"
"#;
    Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "bash",
            "-c",
            script,
            "sandbox",
        ])
        .arg(&sandbox)
        .args(["env", "OVL_ABI_LANE=centos7", "CI=true"])
        .arg(format!("OVL_BIN={}", mutant.display()))
        .arg(suite)
        .arg("--test-threads=1")
        .args(HOSTILE_TESTS)
        .output()
        .context("running the hostile suite in the sandbox")
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    if !from.exists() {
        return Ok(());
    }
    crate::run(Command::new("cp").arg("-a").arg(from).arg(to))
}
