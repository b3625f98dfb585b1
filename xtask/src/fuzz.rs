//! `cargo xtask fuzz [--seconds N] [--sanitizer none|address] [TARGET...]`: the cargo fuzz
//! targets in `fuzz/` (the layer applier, the image archive reader, the tar-split reader), each
//! run for a bounded time from a seed corpus of the project's own test data.
//!
//! cargo-fuzz is installed from crates.io when missing. The targets build with the machine's
//! stable toolchain (`RUSTC_BOOTSTRAP=1` lets it take the unstable flags libFuzzer needs);
//! `--sanitizer address` adds AddressSanitizer for longer runs.
//!
//! The layer applier runs a second time in the `centos7` ABI lane (`OVL_ABI_LANE`, which the
//! target installs in its own process): every system call newer than Linux 3.10 fails with
//! `ENOSYS`, so paths are resolved by the userspace walk instead of `openat2`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Targets that run again under an ABI lane, and the lane.
const LANE_RUNS: [(&str, &str); 1] = [("unpack", "centos7")];

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
    let lane_runs = LANE_RUNS
        .iter()
        .filter(|(name, _)| chosen.iter().any(|chosen| chosen == name))
        .map(|(name, lane)| (name.to_string(), Some(*lane)));
    let runs: Vec<(String, Option<&str>)> = chosen
        .iter()
        .map(|name| (name.clone(), None))
        .chain(lane_runs)
        .collect();
    for (name, lane) in &runs {
        let corpus = seed_corpus(&root, name)?;
        let in_lane = lane
            .map(|lane| format!(" in the {lane} lane"))
            .unwrap_or_default();
        eprintln!("xtask: fuzzing {name}{in_lane} for {seconds} s");
        crate::run(
            cargo_fuzz(&fuzz_dir)
                .env("OVL_ABI_LANE", lane.unwrap_or(""))
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
