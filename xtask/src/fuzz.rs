//! `cargo xtask fuzz [--seconds N] [--sanitizer none|address] [TARGET...]`: the cargo fuzz
//! targets in `fuzz/` (the layer applier, the image archive reader, the tar-split reader), each
//! run for a bounded time from a seed corpus of the project's own test data.
//!
//! cargo-fuzz is installed from crates.io when missing. The targets build with the machine's
//! stable toolchain (`RUSTC_BOOTSTRAP=1` lets it take the unstable flags libFuzzer needs);
//! `--sanitizer address` adds AddressSanitizer for longer runs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The targets and the test data their seed corpus is copied from.
const TARGETS: [(&str, &[&str]); 3] = [
    (
        "unpack",
        &[
            "crates/layer-unpack/tests/data/build-layer.tar",
            "crates/layer-unpack/tests/data/commit-layer.tar",
            "crates/layer-unpack/tests/data/commit2-layer.tar",
        ],
    ),
    (
        "archive",
        &[
            "crates/image-archive/tests/data/docker-save-tiny-app.tar",
            "crates/image-archive/tests/data/docker-save-two-images.tar",
        ],
    ),
    (
        "tar_split",
        &["crates/tar-split/tests/data/commit-layer.tar-split.json.gz"],
    ),
];

pub fn fuzz(args: &[String]) -> Result<()> {
    let mut seconds: u64 = 20;
    let mut sanitizer = "none".to_string();
    let mut chosen = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .context("--seconds needs a value")?
                    .parse()
                    .context("--seconds")?
            }
            "--sanitizer" => sanitizer = args.next().context("--sanitizer needs a value")?.clone(),
            name if TARGETS.iter().any(|(target, _)| *target == name) => {
                chosen.push(name.to_string())
            }
            other => bail!(
                "unknown fuzz option or target {other}; targets: {}",
                TARGETS.map(|(name, _)| name).join(", ")
            ),
        }
    }
    if chosen.is_empty() {
        chosen = TARGETS.iter().map(|(name, _)| name.to_string()).collect();
    }
    let root = crate::workspace_root();
    ensure_cargo_fuzz()?;
    let fuzz_dir = root.join("fuzz");
    for name in &chosen {
        crate::run(cargo_fuzz(&fuzz_dir).args(["build", "--sanitizer", &sanitizer, name]))?;
    }
    for name in &chosen {
        let corpus = seed_corpus(&root, name)?;
        eprintln!("xtask: fuzzing {name} for {seconds} s");
        crate::run(
            cargo_fuzz(&fuzz_dir)
                .args(["run", "--sanitizer", &sanitizer, name])
                .arg(&corpus)
                .arg("--")
                .arg(format!("-max_total_time={seconds}"))
                .arg("-rss_limit_mb=4096")
                .arg("-print_final_stats=1"),
        )?;
    }
    Ok(())
}

fn cargo_fuzz(fuzz_dir: &Path) -> Command {
    let mut command = Command::new(crate::cargo());
    command
        .current_dir(fuzz_dir)
        .arg("fuzz")
        .env("RUSTC_BOOTSTRAP", "1");
    command
}

/// Installs cargo-fuzz from crates.io unless `cargo fuzz` already answers.
fn ensure_cargo_fuzz() -> Result<()> {
    let answers = Command::new(crate::cargo())
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if answers {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz");
    crate::run(Command::new(crate::cargo()).args(["install", "cargo-fuzz", "--locked"]))
}

/// `target/fuzz-corpus/<target>`, holding at least the seeds from the test data.
fn seed_corpus(root: &Path, target: &str) -> Result<PathBuf> {
    let dir = root.join("target/fuzz-corpus").join(target);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let seeds = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .map(|(_, seeds)| *seeds)
        .unwrap_or_default();
    for seed in seeds {
        let from = root.join(seed);
        let name = from.file_name().context("seed file name")?;
        std::fs::copy(&from, dir.join(name))
            .with_context(|| format!("copying seed {}", from.display()))?;
    }
    Ok(dir)
}
