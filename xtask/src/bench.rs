//! `cargo xtask bench`: `ovl diff` and `ovl commit` against `docker diff` and `docker commit` of a
//! private dockerd 20.10, on containers of a large image (`smallfiles`: the busybox base layer and
//! one layer of 200,000 files of 1–4 KiB) that changed 1,000, 10,000 and 100,000 files, with the floors
//! a walk of the upperdir (`find`), `tar | sha256sum` of it, and `tar -x` of that layer into a
//! fresh directory (what any commit that writes the new layer must at least do). Every command
//! runs several times, alternating Docker and ovl, each after a `sync` so that none pays for the
//! previous one's dirty data; the report gives median, min and max, the ratio to ovl, and each
//! target of the issues marked met or not.
//!
//! The load, mount and pull parts (`bench/load.rs`, `bench/pull.rs`) measure ovl against Docker,
//! podman, umoci and floors on a corpus of four images. The scaling curves (`bench/curves.rs`)
//! follow load, run-rootfs, diff and commit over file, layer and change counts and image sizes.
//!
//! The corpus is generated deterministically into `target/bench-corpus/` and reused. Results go to
//! `docs/performance.md` (with machine, kernel and date; the plots in `docs/performance/`) and
//! `target/bench/results.json`, from which `--report-only` writes the report again.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use ovl_tests::{Dockerd, Ovl};
use sha2::{Digest, Sha256};

mod corpus;
mod curves;
mod load;
mod pull;
mod report;

use corpus::*;
use curves::Curve;
use report::*;

pub use curves::overlay_floor;

/// The peers, floors and registry the benchmark runs besides the test packages.
const BENCH_PACKAGES: [(&str, &str); 7] = [
    ("podman", "/usr/bin/podman"),
    ("attr", "/usr/bin/setfattr"),
    ("umoci", "/usr/bin/umoci"),
    ("pigz", "/usr/bin/pigz"),
    ("debootstrap", "/usr/sbin/debootstrap"),
    ("time", "/usr/bin/time"),
    ("docker-registry", "/usr/bin/docker-registry"),
];

/// Options of one run.
struct BenchOptions {
    n_files: usize,
    changes: Vec<usize>,
    runs: usize,
    write_docs: bool,
    /// Corpus images of the load part (empty: no load part).
    images: Vec<String>,
    /// Images whose `run-rootfs` is measured.
    mount_images: Vec<String>,
    /// Corpus images of the pull part (empty: no pull part).
    pull_images: Vec<String>,
    /// Whether the diff and commit part runs.
    changes_part: bool,
    /// Whether the load and pull parts run the peers and floors besides ovl.
    peers: bool,
    /// The size of the scratch filesystem in GiB; 0 runs on the host filesystem of `/var/tmp`.
    scratch_gib: u64,
    /// The number of entries of the one-layer image whose load's peak RSS is measured (0: none).
    n_entries: usize,
    /// File counts of the load and image-size curves (empty: none).
    curve_files: Vec<usize>,
    /// Layer counts of the mount curve (empty: none).
    curve_layers: Vec<usize>,
    /// Changes made in each image of the image-size curve.
    curve_changes: usize,
    /// The size of the curves' scratch filesystem in GiB.
    curve_gib: u64,
    /// Only the report again, from `target/bench/results.json` of an earlier run.
    report_only: bool,
}

impl BenchOptions {
    fn parse(args: &[String]) -> Result<BenchOptions> {
        let mut options = BenchOptions {
            n_files: 200_000,
            changes: vec![1_000, 10_000, 100_000],
            runs: 3,
            write_docs: true,
            images: load::IMAGES.iter().map(|s| s.to_string()).collect(),
            mount_images: vec!["deep".to_string(), "debian".to_string()],
            pull_images: load::IMAGES.iter().map(|s| s.to_string()).collect(),
            changes_part: true,
            peers: true,
            scratch_gib: SCRATCH_GIB,
            n_entries: 2_000_000,
            curve_files: curves::CURVE_FILES.to_vec(),
            curve_layers: curves::CURVE_LAYERS.to_vec(),
            curve_changes: curves::CURVE_CHANGES,
            curve_gib: curves::CURVE_GIB,
            report_only: false,
        };
        let counts = |text: &str| -> Result<Vec<usize>> {
            Ok(text
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::parse)
                .collect::<Result<_, _>>()?)
        };
        let list = |text: &str| -> Vec<String> {
            text.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().context("missing option value");
            match arg.as_str() {
                "--files" => options.n_files = value()?.parse()?,
                "--changes" => options.changes = counts(value()?)?,
                "--curve-files" => options.curve_files = counts(value()?)?,
                "--curve-layers" => options.curve_layers = counts(value()?)?,
                "--curve-changes" => options.curve_changes = value()?.parse()?,
                "--curve-gib" => options.curve_gib = value()?.parse()?,
                "--no-curves" => {
                    options.curve_files.clear();
                    options.curve_layers.clear();
                }
                "--report-only" => options.report_only = true,
                "--runs" => options.runs = value()?.parse()?,
                "--no-docs" => options.write_docs = false,
                "--images" => options.images = list(value()?),
                "--mount-images" => options.mount_images = list(value()?),
                "--no-changes" => options.changes_part = false,
                "--no-peers" => options.peers = false,
                "--pull-images" => options.pull_images = list(value()?),
                "--no-pull" => options.pull_images.clear(),
                "--scratch-gib" => options.scratch_gib = value()?.parse()?,
                "--entries" => options.n_entries = value()?.parse()?,
                // For iterating: one image, one repetition, nothing written to docs/.
                "--quick" => {
                    options.images = vec!["smallfiles".to_string()];
                    options.mount_images = vec!["deep".to_string()];
                    options.pull_images.clear();
                    options.changes = vec![10_000];
                    options.runs = 1;
                    options.n_entries = 0;
                    options.curve_files.clear();
                    options.curve_layers.clear();
                    options.write_docs = false;
                }
                "--no-load" => {
                    options.images.clear();
                    options.mount_images.clear();
                }
                other => bail!(
                    "unknown bench option {other}; use --files N --changes N,M --runs K --no-docs \
                     --images a,b --mount-images a,b --pull-images a,b --no-changes --no-load \
                     --no-pull --no-peers --scratch-gib G --entries N --curve-files a,b \
                     --curve-layers a,b --curve-changes N --curve-gib G --no-curves --quick \
                     --report-only"
                ),
            }
        }
        ensure!(options.runs > 0, "--runs must be at least 1");
        for image in options
            .images
            .iter()
            .chain(&options.mount_images)
            .chain(&options.pull_images)
        {
            ensure!(
                load::IMAGES.contains(&image.as_str()),
                "unknown corpus image {image}: use {}",
                load::IMAGES.join(",")
            );
        }
        ensure!(
            options.changes.iter().all(|&n| n <= options.n_files),
            "--changes cannot exceed --files"
        );
        ensure!(
            options
                .curve_files
                .iter()
                .all(|&n| options.curve_changes <= n),
            "--curve-changes cannot exceed the smallest of --curve-files"
        );
        Ok(options)
    }
}

/// Peak RSS (KiB) of an ovl command, by what it did.
type PeakRss = Vec<(String, u64)>;

/// Timings of one measured command.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    times: Vec<Duration>,
}

impl Sample {
    /// A sample of no runs yet.
    fn new(name: impl Into<String>) -> Sample {
        Sample {
            name: name.into(),
            times: Vec::new(),
        }
    }

    fn sorted(&self) -> Vec<Duration> {
        let mut times = self.times.clone();
        times.sort();
        times
    }
    fn median(&self) -> Duration {
        let times = self.sorted();
        times[times.len() / 2]
    }
    fn min(&self) -> Duration {
        self.sorted()[0]
    }
    fn max(&self) -> Duration {
        self.sorted()[self.times.len() - 1]
    }
}

pub fn bench(args: &[String]) -> Result<()> {
    let options = BenchOptions::parse(args)?;
    let root_dir = crate::workspace_root();
    let out_dir = root_dir.join("target/bench");
    let results_file = out_dir.join("results.json");
    if options.report_only {
        let saved: serde_json::Value = serde_json::from_slice(
            &fs::read(&results_file)
                .with_context(|| format!("reading {}", results_file.display()))?,
        )
        .with_context(|| format!("parsing {}", results_file.display()))?;
        let results = Results::from_json(&saved)?;
        // The options of the run that measured them, for what the report says about it.
        let run_options = BenchOptions::parse(&results.args)?;
        return write_report(
            &run_options,
            &results,
            &root_dir,
            options.write_docs && run_options.write_docs,
        );
    }
    ensure!(
        crate::is_root(),
        "cargo xtask bench needs root (mounts, dockerd)"
    );
    crate::deps()?;
    crate::install(&BENCH_PACKAGES)?;
    let corpus = root_dir.join("target/bench-corpus");
    fs::create_dir_all(&corpus)?;
    let archive = smallfiles_archive(&corpus, options.n_files)?;
    crate::run(Command::new(crate::cargo()).args(["build", "--release", "-p", "ovl"]))?;
    // Where that build went: `CARGO_TARGET_DIR` when set (a worktree sharing a build cache).
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root_dir.join("target"));
    let ovl_bin = target_dir.join("release/ovl");

    let scratch_fs = ScratchFs::create(
        PathBuf::from(format!("/var/tmp/ovl-bench-{}", std::process::id())),
        options.scratch_gib,
    )?;
    let scratch = scratch_fs.dir.clone();
    let result = run_bench(&options, &archive, &scratch, &ovl_bin);
    for dir in ["ovl", "ovl-small", "podman"] {
        let _ = Command::new("umount")
            .arg("-R")
            .arg(scratch.join(dir))
            .stderr(Stdio::null())
            .status();
    }
    drop(scratch_fs);
    let (samples, notes, peak_rss) = result?;
    // The curves after the tables, on a scratch filesystem and with a dockerd of their own.
    let (curves, curve_notes) = if options.curve_files.is_empty() && options.curve_layers.is_empty()
    {
        (Vec::new(), Vec::new())
    } else {
        curves::bench_curves(&options, &ovl_bin)?
    };
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let results = Results {
        args: args.to_vec(),
        date,
        samples,
        notes,
        peak_rss,
        curves,
        curve_notes,
    };
    fs::create_dir_all(&out_dir)?;
    fs::write(
        &results_file,
        serde_json::to_vec_pretty(&results.to_json())?,
    )?;
    write_report(&options, &results, &root_dir, options.write_docs)
}

/// Everything one run measured: what `target/bench/results.json` keeps, and what the report is
/// made from (again with `--report-only`).
struct Results {
    /// The run's options.
    args: Vec<String>,
    /// When the run ended.
    date: String,
    samples: Vec<Sample>,
    notes: Vec<String>,
    peak_rss: PeakRss,
    curves: Vec<Curve>,
    curve_notes: Vec<String>,
}

impl Results {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "args": self.args,
            "date": self.date,
            "samples": self.samples.iter().map(|s| serde_json::json!({
                "name": s.name,
                "seconds": s.times.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
                "median": s.median().as_secs_f64(),
            })).collect::<Vec<_>>(),
            "notes": self.notes,
            "peak_rss_kib": self.peak_rss,
            "curves": self.curves.iter().map(Curve::to_json).collect::<Vec<_>>(),
            "curve_notes": self.curve_notes,
        })
    }

    fn from_json(value: &serde_json::Value) -> Result<Results> {
        let strings = |key: &str| -> Result<Vec<String>> {
            value[key]
                .as_array()
                .with_context(|| format!("results.json: {key}"))?
                .iter()
                .map(|v| Ok(v.as_str().context("results.json: a string")?.to_string()))
                .collect()
        };
        let samples = value["samples"]
            .as_array()
            .context("results.json: samples")?
            .iter()
            .map(|s| -> Result<Sample> {
                Ok(Sample {
                    name: s["name"].as_str().context("sample name")?.to_string(),
                    times: s["seconds"]
                        .as_array()
                        .context("sample seconds")?
                        .iter()
                        .map(|t| Ok(Duration::from_secs_f64(t.as_f64().context("a time")?)))
                        .collect::<Result<_>>()?,
                })
            })
            .collect::<Result<_>>()?;
        let peak_rss = value["peak_rss_kib"]
            .as_array()
            .context("results.json: peak_rss_kib")?
            .iter()
            .map(|p| -> Result<(String, u64)> {
                Ok((
                    p[0].as_str().context("peak RSS name")?.to_string(),
                    p[1].as_u64().context("peak RSS KiB")?,
                ))
            })
            .collect::<Result<_>>()?;
        let curves = value["curves"]
            .as_array()
            .context("results.json: curves")?
            .iter()
            .map(Curve::from_json)
            .collect::<Result<_>>()?;
        Ok(Results {
            args: strings("args")?,
            date: value["date"]
                .as_str()
                .context("results.json: date")?
                .to_string(),
            samples,
            notes: strings("notes")?,
            peak_rss,
            curves,
            curve_notes: strings("curve_notes")?,
        })
    }
}

/// Writes the plots (to `docs/performance/` with the report, else to `target/bench/`) and prints
/// the report, writing it to `docs/performance.md` too when `write_docs`.
fn write_report(
    options: &BenchOptions,
    results: &Results,
    root_dir: &Path,
    write_docs: bool,
) -> Result<()> {
    let mut curves: Vec<Curve> = curves::changes_curve(options, &results.samples)
        .into_iter()
        .collect();
    curves.extend(results.curves.iter().cloned());
    let (plot_dir, link_dir) = if write_docs {
        (root_dir.join("docs/performance"), "performance".to_string())
    } else {
        let dir = root_dir.join("target/bench");
        let link = dir.display().to_string();
        (dir, link)
    };
    if !curves.is_empty() {
        fs::create_dir_all(&plot_dir)?;
    }
    for curve in &curves {
        fs::write(plot_dir.join(&curve.file), curves::svg(curve))?;
    }
    let report = report(options, results, &curves, &link_dir);
    println!("{report}");
    if write_docs {
        fs::write(root_dir.join("docs/performance.md"), report)?;
    }
    Ok(())
}

/// The default size of the scratch filesystem: one run of one corpus image, the largest
/// being `smallfiles` with twelve extractions of about 0.9 GB, plus the private dockerd's and
/// podman's stores.
const SCRATCH_GIB: u64 = 20;

/// Where every contender writes: an ext4 of its own on a loop device over a preallocated file,
/// mounted without `discard`. On a host filesystem mounted with `discard`, the deletions of one
/// run slow the file creations of the next for minutes; a filesystem of the benchmark's own keeps
/// every run in the same state. Unmounted and deleted when dropped.
struct ScratchFs {
    dir: PathBuf,
    image: Option<PathBuf>,
}

impl ScratchFs {
    fn create(dir: PathBuf, size_gib: u64) -> Result<ScratchFs> {
        let _ = Command::new("umount")
            .arg(&dir)
            .stderr(Stdio::null())
            .status();
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        if size_gib == 0 {
            return Ok(ScratchFs { dir, image: None });
        }
        let image = dir.with_extension("ext4");
        let parent = image.parent().context("scratch image parent")?;
        let available: u64 = String::from_utf8(
            Command::new("df")
                .args(["--output=avail", "-B1"])
                .arg(parent)
                .output()?
                .stdout,
        )?
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .parse()
        .context("df --output=avail")?;
        let size = size_gib << 30;
        ensure!(
            available > size + (2 << 30),
            "the scratch filesystem needs {size_gib} GiB and 2 GiB to spare on {}, which has {} \
             MiB free (use --scratch-gib G, or 0 to run on the host filesystem)",
            parent.display(),
            available >> 20
        );
        let fs = ScratchFs {
            dir,
            image: Some(image.clone()),
        };
        crate::run(
            Command::new("fallocate")
                .arg("-l")
                .arg(size.to_string())
                .arg(&image),
        )?;
        // One inode per 4 KiB: a run of `smallfiles` holds twelve copies of its 200,000 files,
        // more than the default of one per 16 KiB gives 20 GiB.
        crate::run(
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-i", "4096"])
                .arg(&image),
        )?;
        crate::run(
            Command::new("mount")
                .args(["-o", "loop,nodiscard"])
                .arg(&image)
                .arg(&fs.dir),
        )?;
        Ok(fs)
    }
}

impl Drop for ScratchFs {
    fn drop(&mut self) {
        if let Some(image) = &self.image {
            // A mount left below it (a container of a failed run) is taken along; a busy one is
            // detached, so that the loop device lets go of the image once it is free.
            let unmounted = Command::new("umount")
                .arg("-R")
                .arg(&self.dir)
                .status()
                .is_ok_and(|status| status.success());
            if !unmounted {
                let _ = Command::new("umount")
                    .args(["-R", "-l"])
                    .arg(&self.dir)
                    .status();
            }
            let _ = fs::remove_file(image);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn run_bench(
    options: &BenchOptions,
    archive: &Path,
    scratch: &Path,
    ovl_bin: &Path,
) -> Result<(Vec<Sample>, Vec<String>, PeakRss)> {
    let mut samples = Vec::new();
    let mut notes = Vec::new();
    let mut peak_rss = Vec::new();
    let docker = std::panic::catch_unwind(|| Dockerd::start(&scratch.join("docker")))
        .map_err(|_| anyhow::anyhow!("starting the private dockerd failed"))?;
    let ovl = Ovl {
        bin: ovl_bin.to_path_buf(),
        root: scratch.join("ovl"),
    };
    let archive_text = archive.to_str().context("utf-8 corpus path")?;
    let podman = Podman::new(&scratch.join("podman"));
    let contenders = load::Contenders {
        ovl_bin,
        docker: &docker,
        podman: podman.as_ref(),
        scratch,
        runs: options.runs,
        peers: options.peers,
    };

    // Loads first, while neither store holds any of the corpus layers.
    let mut wanted: Vec<String> = options.images.clone();
    for image in &options.mount_images {
        if !wanted.contains(image) {
            wanted.push(image.clone());
        }
    }
    if !wanted.is_empty() {
        let corpus_dir = crate::workspace_root().join("target/bench-corpus");
        let images = load::corpus(&corpus_dir, &wanted, options.n_files)?;
        let (load_images, mount_images): (Vec<_>, Vec<_>) = (
            images
                .iter()
                .filter(|image| options.images.contains(&image.name))
                .collect(),
            images
                .iter()
                .filter(|image| options.mount_images.contains(&image.name))
                .collect(),
        );
        let owned =
            |list: Vec<&load::Image>| -> Vec<load::Image> { list.into_iter().cloned().collect() };
        let (load_samples, load_notes, rss) = load::bench_loads(&owned(load_images), contenders)?;
        samples.extend(load_samples);
        notes.extend(load_notes);
        if !options.peers {
            notes.push(
                "`--no-peers`: the load part measured only ovl's loads, no Docker, podman, \
                 umoci or floor"
                    .to_string(),
            );
        }
        let (mount_samples, mount_rss) = load::bench_mounts(&owned(mount_images), contenders)?;
        samples.extend(mount_samples);
        peak_rss.extend(rss);
        peak_rss.extend(mount_rss);
    }
    if !options.pull_images.is_empty() {
        let corpus_dir = crate::workspace_root().join("target/bench-corpus");
        let images = load::corpus(&corpus_dir, &options.pull_images, options.n_files)?;
        let (pull_samples, pull_notes, rss) = pull::bench_pulls(&images, contenders)?;
        samples.extend(pull_samples);
        notes.extend(pull_notes);
        peak_rss.extend(rss);
        if !options.peers {
            notes.push(
                "`--no-peers`: the pull part measured only ovl's pulls, no Docker, podman, \
                 skopeo and umoci or floor"
                    .to_string(),
            );
        }
    }
    if options.n_entries > 0 {
        // Memory per layer entry: one load of a layer of that many empty files.
        let corpus_dir = crate::workspace_root().join("target/bench-corpus");
        let entries = entries_archive(&corpus_dir, options.n_entries)?;
        let mut command = Command::new(ovl_bin);
        command
            .arg("--root")
            .arg(scratch.join("ovl-entries"))
            .args(["load", "-q", "-i"])
            .arg(&entries);
        let (time, rss) = load::timed_rss(&command, scratch)?;
        notes.push(format!(
            "ovl load of a {}-entry layer: {:.1} s, peak RSS {:.1} MiB",
            options.n_entries,
            time.as_secs_f64(),
            rss as f64 / 1024.0
        ));
        peak_rss.push((format!("load of a {}-entry layer", options.n_entries), rss));
        let _ = fs::remove_dir_all(scratch.join("ovl-entries"));
    }
    if !options.changes_part {
        return Ok((samples, notes, peak_rss));
    }

    let started = Instant::now();
    docker.docker_ok(["load", "-i", archive_text]);
    notes.push(format!(
        "corpus load (once, not measured for ratios): docker load {:.1?}",
        started.elapsed()
    ));
    let started = Instant::now();
    ovl.try_ok(["load", "-i", archive_text])?;
    notes.push(format!("ovl load {:.1?}", started.elapsed()));
    if let Some(podman) = &podman {
        let started = Instant::now();
        podman.ok(&["load", "-q", "-i", archive_text])?;
        notes.push(format!("podman load {:.1?}", started.elapsed()));
    }

    for &n_changes in &options.changes {
        let script = change_script(n_changes);
        let docker_name = format!("dc{n_changes}");
        let ovl_name = format!("oc{n_changes}");
        let status = docker.run_and_wait(&docker_name, &["smallfiles:1", "/bin/sh", "-c", &script]);
        ensure!(status == "0", "the change script failed in Docker");
        let merged = ovl.try_ok(["run-rootfs", "--name", &ovl_name, "smallfiles:1"])?;
        chroot_script(&merged, &script, "ovl")?;
        let upper = upper_dir(&ovl, &ovl_name)?;
        // podman: a container whose root filesystem is changed through `podman mount`, as ovl's
        // is through its merged dir (this sandbox does not let podman's runtime set rlimits).
        let podman_name = format!("pc{n_changes}");
        let podman_upper = match &podman {
            Some(podman) => {
                podman.ok(&[
                    "create",
                    "--name",
                    &podman_name,
                    "--network",
                    "none",
                    "localhost/smallfiles:1",
                    "/bin/sh",
                ])?;
                let merged = podman.ok(&["mount", &podman_name])?;
                chroot_script(&merged, &script, "podman")?;
                podman.ok(&["unmount", &podman_name])?;
                Some(PathBuf::from(
                    podman
                        .ok(&[
                            "inspect",
                            "-f",
                            "{{.GraphDriver.Data.UpperDir}}",
                            &podman_name,
                        ])?
                        .trim(),
                ))
            }
            None => None,
        };

        let label = |what: &str| format!("{what} ({n_changes} changed files)");
        let mut docker_diff = Sample::new(label("docker diff"));
        let mut podman_diff = Sample::new(label("podman diff"));
        let mut podman_commit = Sample::new(label("podman commit"));
        let mut ovl_diff = Sample::new(label("ovl diff"));
        let mut find = Sample::new(label("find upperdir (floor)"));
        let mut docker_commit = Sample::new(label("docker commit"));
        let mut ovl_commit = Sample::new(label("ovl commit"));
        let mut tar_floor = Sample::new(label("tar of the upperdir into sha256sum (floor)"));
        let mut untar_floor =
            Sample::new(label("tar -x of that layer into a fresh directory (floor)"));
        let mut syncfs_cost = Sample::new(label(COMMIT_SYNCFS));
        let mut ovl_move = Sample::new(label(MOVING_COMMIT));
        let mut move_by_tools = Sample::new(label(MOVE_BY_TOOLS));
        let mut n_lines = (0, 0);
        let mut n_podman_lines = 0;
        for _ in 0..options.runs {
            sync();
            let (time, out) = timed(docker.docker_command(["diff", &docker_name]))?;
            docker_diff.times.push(time);
            n_lines.0 = out.lines().count();
            sync();
            let (time, out) = timed(ovl.command(["diff", &ovl_name]))?;
            ovl_diff.times.push(time);
            n_lines.1 = out.lines().count();
            if let Some(podman) = &podman {
                sync();
                let (time, out) = timed(podman.command(&["diff", &podman_name]))?;
                podman_diff.times.push(time);
                n_podman_lines = out.lines().count();
            }
            let mut walk = Command::new("find");
            walk.arg(&upper);
            find.times.push(timed(walk)?.0);
        }
        ensure!(
            n_lines.0 == n_lines.1,
            "docker diff listed {} changes, ovl diff {}",
            n_lines.0,
            n_lines.1
        );
        notes.push(format!(
            "{n_changes} changed files: docker diff and ovl diff list {} lines{}",
            n_lines.0,
            if podman.is_some() {
                format!(" (podman diff lists {n_podman_lines})")
            } else {
                String::new()
            }
        ));
        let docker_upper = PathBuf::from(
            docker
                .docker_ok([
                    "inspect",
                    "-f",
                    "{{.GraphDriver.Data.UpperDir}}",
                    &docker_name,
                ])
                .trim(),
        );
        for run in 0..options.runs {
            // One new file per run in both (stopped) containers: every commit makes a new layer,
            // none is a duplicate that the layer store would drop.
            for dir in [Some(&docker_upper), Some(&upper), podman_upper.as_ref()]
                .into_iter()
                .flatten()
            {
                fs::write(dir.join(format!("bench-run-{run}")), format!("{run}\n"))?;
            }
            let docker_tag = format!("dcommit{n_changes}:{run}");
            fresh_page_cache(&[&docker_upper], &[docker.data_root()])?;
            docker_commit
                .times
                .push(timed(docker.docker_command(["commit", &docker_name, &docker_tag]))?.0);
            if let Some(podman) = &podman {
                let tag = format!("pcommit{n_changes}:{run}");
                fresh_page_cache(
                    &podman_upper.as_deref().into_iter().collect::<Vec<_>>(),
                    &[&podman.root],
                )?;
                podman_commit
                    .times
                    .push(timed(podman.command(&["commit", "-q", &podman_name, &tag]))?.0);
            }
            let ovl_tag = format!("ocommit{n_changes}:{run}");
            fresh_page_cache(&[&upper, ovl_bin], &[&ovl.root])?;
            ovl_commit
                .times
                .push(timed(ovl.command(["commit", &ovl_name, &ovl_tag]))?.0);
            let mut tar = Command::new("sh");
            tar.arg("-c")
                .arg("tar -C \"$1\" -cf - . | sha256sum")
                .arg("sh")
                .arg(&upper);
            fresh_page_cache(&[&upper], &[])?;
            tar_floor.times.push(timed(tar)?.0);
            // The moving commit takes its container away: each run moves a fresh one holding a
            // copy of the same upperdir (plus a file of its own, so that its layer is new).
            let moved = format!("om{n_changes}-{run}");
            let moved_upper = container_with_upper(&ovl, &moved, &upper)?;
            fs::write(moved_upper.join(format!("bench-move-{run}")), "moved\n")?;
            fresh_page_cache(&[&moved_upper, ovl_bin], &[&ovl.root])?;
            let tag = format!("omove{n_changes}:{run}");
            ovl_move
                .times
                .push(timed(ovl.command(["commit", "--rm", &moved, &tag]))?.0);
            // The same work by standard tools, on a copy of the same upperdir that stays until
            // the end, as the untar floor's directories do.
            let copy = scratch.join(format!("by-tools-{n_changes}-{run}"));
            crate::run(
                Command::new("cp")
                    .args(["-a", "--preserve=all"])
                    .arg(&upper)
                    .arg(&copy),
            )?;
            let mut tools = Command::new("sh");
            tools
                .arg("-c")
                .arg(MOVE_BY_TOOLS_SCRIPT)
                .arg("sh")
                .arg(&copy);
            fresh_page_cache(&[&copy], &[])?;
            move_by_tools.times.push(timed(tools)?.0);
        }
        // The untar floor runs after every commit of this size: the directories it fills stay
        // until the end, so that no deletion changes how fast the filesystem allocates inodes
        // for the commits.
        let layer_tar = scratch.join(format!("layer-{n_changes}.tar"));
        let mut pack = Command::new("tar");
        pack.arg("-C")
            .arg(&upper)
            .args(["-cf"])
            .arg(&layer_tar)
            .arg(".");
        timed(pack)?;
        for run in 0..options.runs {
            let target = scratch.join(format!("untar-{n_changes}-{run}"));
            fs::create_dir_all(&target)?;
            let mut untar = Command::new("tar");
            untar.arg("-C").arg(&target).arg("-xf").arg(&layer_tar);
            fresh_page_cache(&[&layer_tar], &[])?;
            untar_floor.times.push(timed(untar)?.0);
            let mut syncfs = Command::new("sync");
            syncfs.arg("-f").arg(&target);
            syncfs_cost.times.push(timed(syncfs)?.0);
        }
        samples.extend([ovl_diff, docker_diff]);
        if podman.is_some() {
            samples.push(podman_diff);
        }
        samples.push(find);
        samples.extend([ovl_commit, docker_commit]);
        if podman.is_some() {
            samples.push(podman_commit);
        }
        samples.extend([tar_floor, untar_floor, syncfs_cost, ovl_move, move_by_tools]);
        docker.docker_ok(["rm", "-f", &docker_name]);
    }
    samples.extend(diff_on_smaller_image(options, ovl_bin, scratch)?);
    let (big_samples, big_notes) = commit_of_a_big_file(options, &ovl, scratch)?;
    samples.extend(big_samples);
    notes.extend(big_notes);
    Ok((samples, notes, peak_rss))
}

/// The row name of the `syncfs` right after the `tar -x` floor of a commit's layer.
pub(crate) const COMMIT_SYNCFS: &str =
    "syncfs right after that tar -x (what ovl adds before publishing)";

/// The row name of the moving commit in the changes part.
pub(crate) const MOVING_COMMIT: &str = "ovl commit --rm (moves the upperdir)";

/// The row name of what the moving commit does, done by standard tools one after another: read
/// and hash the upperdir's tar (the `tar | sha256sum` floor), remove overlay's xattrs that a
/// layer does not carry (`origin` of every copied-up entry, `impure` of directories), set every
/// entry's times, and sync the file system. It leaves out what only ovl does (the tar-split
/// record and the durable records of the image); it is the floor of the nearest honest target of
/// the moving commit.
pub(crate) const MOVE_BY_TOOLS: &str =
    "the moving commit's work by tools: tar | sha256sum, setfattr -x, touch, syncfs of a copy of the upperdir (floor)";

/// [`MOVE_BY_TOOLS`] on the directory `$1`. `setfattr -x` fails (and goes on) for an entry
/// without that xattr, as every one made anew in the container is.
const MOVE_BY_TOOLS_SCRIPT: &str = "cd \"$1\" && tar -cf - . | sha256sum > /dev/null && \
     { find . -print0 | xargs -0 setfattr -h -x trusted.overlay.origin 2> /dev/null; \
       find . -type d -print0 | xargs -0 setfattr -h -x trusted.overlay.impure 2> /dev/null; \
       find . -print0 | xargs -0 touch -h -d @1700000000; } && sync -f .";

/// The size of the one changed file of [`commit_of_a_big_file`].
const BIG_FILE_LEN: u64 = 1 << 30;

/// Creates the container `name` of `smallfiles:1`, unmounted, with a copy of `upper` (`cp -a`:
/// xattrs, hardlinks and times kept) as its upperdir; returns that upperdir.
fn container_with_upper(ovl: &Ovl, name: &str, upper: &Path) -> Result<PathBuf> {
    ovl.try_ok(["run-rootfs", "--name", name, "smallfiles:1"])?;
    ovl.try_ok(["umount", name])?;
    let target = upper_dir(ovl, name)?;
    crate::run(
        Command::new("cp")
            .args(["-a", "--preserve=all"])
            .arg(upper.join("."))
            .arg(&target),
    )?;
    Ok(target)
}

/// A container that changed one 1 GiB file, committed by copy and by move: time, and the bytes
/// the commit itself wrote (GNU time's file system outputs, 512-byte blocks).
fn commit_of_a_big_file(
    options: &BenchOptions,
    ovl: &Ovl,
    scratch: &Path,
) -> Result<(Vec<Sample>, Vec<String>)> {
    let mut copy = Sample::new("ovl commit (one changed file of 1 GiB)");
    let mut moving = Sample::new(format!("{MOVING_COMMIT} (one changed file of 1 GiB)"));
    let mut notes = Vec::new();
    let mut written = (0, 0);
    for run in 0..options.runs {
        let name = format!("big{run}");
        let merged = ovl.try_ok(["run-rootfs", "--name", &name, "smallfiles:1"])?;
        let mut data = fs::File::create(Path::new(merged.trim()).join("big"))?;
        let block: Vec<u8> = (0..1u32 << 20)
            .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
            .collect();
        for chunk in 0..BIG_FILE_LEN >> 20 {
            let mut block = block.clone();
            block[..8].copy_from_slice(&chunk.to_le_bytes());
            std::io::Write::write_all(&mut data, &block)?;
        }
        drop(data);
        ovl.try_ok(["umount", &name])?;
        let upper = upper_dir(ovl, &name)?;
        for (sample, args, written) in [
            (&mut copy, vec!["commit", &name], &mut written.0),
            (&mut moving, vec!["commit", "--rm", &name], &mut written.1),
        ] {
            // A file of each commit's own: the moved layer is not the copied one again (a layer
            // that exists already is not made a second time).
            fs::write(upper.join(format!("bench-{}", args.len())), "x\n")?;
            sync();
            let io_file = scratch.join("io");
            let mut command = Command::new("/usr/bin/time");
            command.arg("-f").arg("%O").arg("-o").arg(&io_file);
            command
                .arg(&ovl.bin)
                .arg("--root")
                .arg(&ovl.root)
                .args(&args);
            sample.times.push(timed(command)?.0);
            let blocks: u64 = fs::read_to_string(&io_file)?
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .parse()
                .context("GNU time %O")?;
            *written = blocks * 512;
        }
    }
    notes.push(format!(
        "one changed file of 1 GiB: the copying commit wrote {:.1} MiB, the moving commit {:.1} MiB \
         (GNU time's file system outputs of the ovl process, last run); target \"commits without \
         writing 1 GiB\": {}",
        written.0 as f64 / (1 << 20) as f64,
        written.1 as f64 / (1 << 20) as f64,
        if written.1 < BIG_FILE_LEN / 16 { "met" } else { "not met" }
    ));
    Ok((vec![copy, moving], notes))
}

/// The change count that [`diff_on_smaller_image`] repeats: 10,000 if measured, else the first.
fn smaller_image_changes(options: &BenchOptions) -> Option<usize> {
    options
        .changes
        .iter()
        .copied()
        .find(|&n| n == 10_000)
        .or(options.changes.first().copied())
}

/// That change count again, on a `smallfiles` image of only twice as many files: `ovl diff`
/// should take as long as on the full image, its time following the changes, not the image.
fn diff_on_smaller_image(
    options: &BenchOptions,
    ovl_bin: &Path,
    scratch: &Path,
) -> Result<Option<Sample>> {
    let Some(n_changes) = smaller_image_changes(options) else {
        return Ok(None);
    };
    let n_files = 2 * n_changes;
    if n_files >= options.n_files {
        return Ok(None);
    }
    let archive = smallfiles_archive(
        &crate::workspace_root().join("target/bench-corpus"),
        n_files,
    )?;
    let ovl = Ovl {
        bin: ovl_bin.to_path_buf(),
        root: scratch.join("ovl-small"),
    };
    ovl.try_ok(["load", "-i", archive.to_str().context("utf-8 corpus path")?])?;
    let merged = ovl.try_ok(["run-rootfs", "--name", "small", "smallfiles:1"])?;
    chroot_script(&merged, &change_script(n_changes), "ovl")?;
    let mut sample = Sample::new(format!(
        "ovl diff ({n_changes} changed files, image of {n_files} files)"
    ));
    for _ in 0..options.runs {
        sync();
        sample.times.push(timed(ovl.command(["diff", "small"]))?.0);
    }
    ovl.try_ok(["rm", "-f", "small"])?;
    Ok(Some(sample))
}

/// podman (Debian's package) with a storage of its own below the benchmark's scratch dir.
struct Podman {
    root: PathBuf,
}

impl Podman {
    /// `None` when podman is not installed: the report then says it was not measured.
    fn new(dir: &Path) -> Option<Podman> {
        Path::new("/usr/bin/podman").exists().then(|| Podman {
            root: dir.to_path_buf(),
        })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("/usr/bin/podman");
        command
            .arg("--root")
            .arg(self.root.join("storage"))
            .arg("--runroot")
            .arg(self.root.join("run"))
            .args([
                "--storage-driver",
                "overlay",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "none",
            ])
            .args(args);
        command
    }

    fn ok(&self, args: &[&str]) -> Result<String> {
        Ok(timed(self.command(args))?.1)
    }
}

/// Runs the change script with `/bin/sh` chrooted into a container's merged root.
fn chroot_script(merged: &str, script: &str, engine: &str) -> Result<()> {
    let status = Command::new("chroot")
        .arg(merged.trim())
        .args(["/bin/sh", "-c", script])
        .status()?;
    ensure!(
        status.success(),
        "the change script failed in the {engine} container"
    );
    Ok(())
}

/// Flushes dirty data before a timed command. Twice: the scratch file system sits on a loop
/// device over a file, and the first `sync` leaves what it wrote through the loop device dirty in
/// the page cache of that file (2.4-9 MB here), which the next `fsync` inside the scratch file
/// system then has to write; the second `sync` writes it.
fn sync() {
    for _ in 0..2 {
        let _ = Command::new("sync").status();
    }
}

/// The programs a load, pull or commit row runs, read back after the page cache is dropped
/// ([`fresh_page_cache`]) so that no row pays for paging its executable in from disk.
const PROGRAMS: [&str; 11] = [
    "docker",
    "podman",
    "umoci",
    "skopeo",
    "curl",
    "tar",
    "gzip",
    "pigz",
    "zstd",
    "sha256sum",
    "sh",
];

/// Starts one timed load, pull or commit from the memory state every other one starts from:
/// dirty data written back, the page cache and the dentry and inode caches dropped, then
/// `inputs` (files, or every file below a directory) and [`PROGRAMS`] read back into the page
/// cache; an ovl row passes the ovl binary among its `inputs`.
///
/// Without it a row's time depended on its place in the run. On a virtual machine whose host
/// takes back the memory the guest frees, the first touch of such a page faults to the host: a
/// 16 GiB allocation took 39 s the first time, 15 s right after and 33 s 20 s later. The same
/// `smallfiles` load took 4.5–5.3 s as the first three of a sequence on one file system and
/// 5.6–6.9 s as the fourth to sixth, whose page cache had to come from memory the host had
/// taken back, and 4.7 s again right after the caches were dropped.
///
/// `state` names data roots (ovl's, dockerd's, podman's) whose records are read back too: every
/// file but the layers' contents (`diff`, `merged` and `work` directories are skipped), so that
/// a daemonless command reading its state from disk does not pay for a cold cache that a
/// daemon keeping it in memory does not see.
fn fresh_page_cache(inputs: &[&Path], state: &[&Path]) -> Result<()> {
    sync();
    fs::write("/proc/sys/vm/drop_caches", "3\n").context("dropping the page cache")?;
    let mut script = String::new();
    // A peer's data root is made by its first command.
    for root in state.iter().filter(|root| root.exists()) {
        script.push_str(&format!(
            "find '{}' '(' -name diff -o -name merged -o -name work ')' -prune -o -type f \
             -exec cat {{}} + > /dev/null && ",
            root.display()
        ));
    }
    script.push_str("find");
    for path in inputs {
        script.push_str(&format!(" '{}'", path.display()));
    }
    for name in PROGRAMS {
        let on_path = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|path| path.is_file())
        });
        if let Some(path) = on_path {
            script.push_str(&format!(" '{}'", path.display()));
        }
    }
    script.push_str(" -type f -exec cat {} + > /dev/null");
    let status = Command::new("sh").args(["-c", &script]).status()?;
    ensure!(status.success(), "reading back {inputs:?} failed");
    // Reading a file whose atime is older than its ctime (every copy `cp -a` made, every file
    // written once) updates its atime: without this the timed command's first `fsync` wrote
    // the inodes of every file read back.
    sync();
    Ok(())
}

/// Appends to the first `n` files of the corpus layer (in `find` order).
fn change_script(n: usize) -> String {
    format!("find /sf -type f | head -n {n} | while read -r f; do echo x >> \"$f\"; done")
}

fn upper_dir(ovl: &Ovl, container: &str) -> Result<PathBuf> {
    let inspect = ovl.inspect(container)?;
    let upper = inspect["GraphDriver"]["Data"]["UpperDir"]
        .as_str()
        .context("GraphDriver.Data.UpperDir in ovl inspect")?;
    Ok(PathBuf::from(upper))
}

/// Runs a command with its output captured; returns the wall time and stdout.
fn timed(mut command: Command) -> Result<(Duration, String)> {
    command.stdin(Stdio::null()).stderr(Stdio::piped());
    let started = Instant::now();
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    let elapsed = started.elapsed();
    ensure!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((
        elapsed,
        String::from_utf8_lossy(&output.stdout).into_owned(),
    ))
}
