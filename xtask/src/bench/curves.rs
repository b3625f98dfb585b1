//! The scaling curves: how ovl's time (and peak memory) grows with the number of files in a
//! layer, the number of layers of an image, the number of changes of a container and the size of
//! its image, beside Docker's where Docker can do the same, and the floors. Each point is one run
//! on a scratch filesystem of its own with a private dockerd of its own; the points are drawn as
//! SVG plots (log-log axes, written here without a plotting library) and tabulated with the
//! exponent of each segment, which is what says whether a line is as straight as it should be.

use std::fmt::Write as _;

use super::*;
use load::{directory, regular, shell, timed_rss, write_docker_archive};

/// The unit of a curve's values.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Unit {
    Seconds,
    Mib,
}

/// What a series should look like on log-log axes: growing in proportion to x (exponent 1), or
/// not growing at all (exponent 0).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Shape {
    Proportional,
    Flat,
}

/// One line of a plot: (x, value) points in x order.
#[derive(Clone, Debug)]
pub(super) struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    fn new(name: impl Into<String>) -> Series {
        Series {
            name: name.into(),
            points: Vec::new(),
        }
    }
}

/// One plot and its table.
#[derive(Clone, Debug)]
pub(super) struct Curve {
    /// The SVG's file name.
    pub file: String,
    pub title: String,
    /// What x counts ("files in the layer").
    pub x_label: String,
    pub unit: Unit,
    /// The shape every series is expected to have, unless its name is in `floors_flat`.
    pub shape: Shape,
    pub series: Vec<Series>,
}

impl Curve {
    pub(super) fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "file": self.file,
            "title": self.title,
            "x_label": self.x_label,
            "unit": match self.unit { Unit::Seconds => "s", Unit::Mib => "MiB" },
            "shape": match self.shape { Shape::Proportional => "proportional", Shape::Flat => "flat" },
            "series": self.series.iter().map(|s| serde_json::json!({
                "name": s.name,
                "points": s.points,
            })).collect::<Vec<_>>(),
        })
    }

    pub(super) fn from_json(value: &serde_json::Value) -> Result<Curve> {
        let text = |key: &str| -> Result<String> {
            Ok(value[key]
                .as_str()
                .with_context(|| format!("curve {key}"))?
                .to_string())
        };
        let series = value["series"]
            .as_array()
            .context("curve series")?
            .iter()
            .map(|s| -> Result<Series> {
                let points = s["points"]
                    .as_array()
                    .context("series points")?
                    .iter()
                    .map(|p| -> Result<(f64, f64)> {
                        Ok((
                            p[0].as_f64().context("point x")?,
                            p[1].as_f64().context("point y")?,
                        ))
                    })
                    .collect::<Result<_>>()?;
                Ok(Series {
                    name: s["name"].as_str().context("series name")?.to_string(),
                    points,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Curve {
            file: text("file")?,
            title: text("title")?,
            x_label: text("x_label")?,
            unit: if text("unit")? == "MiB" {
                Unit::Mib
            } else {
                Unit::Seconds
            },
            shape: if text("shape")? == "flat" {
                Shape::Flat
            } else {
                Shape::Proportional
            },
            series,
        })
    }
}

/// The default file counts of the load curve.
pub(super) const CURVE_FILES: [usize; 3] = [20_000, 200_000, 2_000_000];
/// The default layer counts of the mount curve.
pub(super) const CURVE_LAYERS: [usize; 4] = [1, 10, 120, 500];
/// The changes made in each image of the load curve (the image-size curve of diff and commit).
pub(super) const CURVE_CHANGES: usize = 10_000;
/// The size of the curves' own scratch filesystem: one extraction of the largest layer
/// (2,000,000 files of 1–4 KiB take about 9 GiB with their inodes) at a time, plus a container.
pub(super) const CURVE_GIB: u64 = 16;
/// Runs per point of the mount curve (each a few milliseconds).
const MOUNT_RUNS: usize = 5;

/// Measures every curve on a scratch filesystem of its own; returns the curves and notes.
pub(super) fn bench_curves(
    options: &BenchOptions,
    ovl_bin: &Path,
) -> Result<(Vec<Curve>, Vec<String>)> {
    let scratch_fs = ScratchFs::create(
        PathBuf::from(format!("/var/tmp/ovl-curves-{}", std::process::id())),
        options.curve_gib,
    )?;
    let scratch = scratch_fs.dir.clone();
    let result = (|| -> Result<(Vec<Curve>, Vec<String>)> {
        let docker = std::panic::catch_unwind(|| Dockerd::start(&scratch.join("docker")))
            .map_err(|_| anyhow::anyhow!("starting the private dockerd failed"))?;
        let mut notes = Vec::new();
        let mut curves = Vec::new();
        if !options.curve_files.is_empty() {
            curves.extend(files_curves(
                options, ovl_bin, &docker, &scratch, &mut notes,
            )?);
        }
        if !options.curve_layers.is_empty() {
            curves.push(layers_curve(
                &options.curve_layers,
                ovl_bin,
                &docker,
                &scratch,
                &mut notes,
            )?);
        }
        Ok((curves, notes))
    })();
    let _ = Command::new("umount")
        .arg("-R")
        .arg(scratch.join("ovl"))
        .stderr(Stdio::null())
        .status();
    drop(scratch_fs);
    result
}

/// Resets dockerd's peak RSS (`VmHWM`): writing 5 to `clear_refs` sets it to the current RSS.
fn reset_peak(pid: u32) -> Result<()> {
    fs::write(format!("/proc/{pid}/clear_refs"), "5").context("resetting dockerd's VmHWM")
}

/// dockerd's peak RSS in KiB since the last [`reset_peak`].
fn peak_kib(pid: u32) -> Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmHWM in dockerd's /proc status")
}

/// Load time and peak RSS against files in the layer, and diff and commit of
/// [`CURVE_CHANGES`] changes against the image's size, one run per point, in the order floor,
/// ovl, Docker, each after a `sync`, each contender's store removed before the next.
fn files_curves(
    options: &BenchOptions,
    ovl_bin: &Path,
    docker: &Dockerd,
    scratch: &Path,
    notes: &mut Vec<String>,
) -> Result<Vec<Curve>> {
    let corpus = crate::workspace_root().join("target/bench-corpus");
    let dockerd_pid = docker.pid().context("the private dockerd's pid")?;
    let k = options.curve_changes;
    let mut ovl_load = Series::new("ovl load");
    let mut docker_load = Series::new("docker load");
    let mut floor = Series::new("tar -x of both layers (floor)");
    let mut ovl_rss = Series::new("ovl load (peak RSS of the process)");
    let mut docker_rss = Series::new("dockerd during docker load (VmHWM, reset before)");
    let mut ovl_diff = Series::new("ovl diff");
    let mut docker_diff = Series::new("docker diff");
    let mut ovl_commit = Series::new("ovl commit");
    let mut docker_commit = Series::new("docker commit");
    let mut ovl_move = Series::new(MOVING_COMMIT);
    let script = change_script(k);
    for &n in &options.curve_files {
        let archive = smallfiles_archive(&corpus, n)?;
        let a = archive.to_str().context("utf-8 corpus path")?;
        let x = n as f64;
        eprintln!("bench: curves at {n} files");

        let target = scratch.join("floor");
        for i in ["0", "1"] {
            fs::create_dir_all(target.join(i))?;
        }
        let t = target.display();
        // Every contender reads the archive from the page cache, the first one too.
        fresh_page_cache(&[&archive], &[])?;
        let (time, _) = timed(shell(&format!(
            "tar -xOf '{a}' --occurrence base/layer.tar | tar -C '{t}/0' -xf - && \
             tar -xOf '{a}' --occurrence top/layer.tar | tar -C '{t}/1' -xf -"
        )))?;
        floor.points.push((x, time.as_secs_f64()));
        fs::remove_dir_all(&target)?;

        let ovl = Ovl {
            bin: ovl_bin.to_path_buf(),
            root: scratch.join("ovl"),
        };
        fresh_page_cache(&[&archive, ovl_bin], &[])?;
        let (time, rss) = timed_rss(&ovl.command(["load", "-q", "-i", a]), scratch)?;
        ovl_load.points.push((x, time.as_secs_f64()));
        ovl_rss.points.push((x, rss as f64 / 1024.0));
        let merged = ovl.try_ok(["run-rootfs", "--name", "curve", "smallfiles:1"])?;
        chroot_script(&merged, &script, "ovl")?;
        sync();
        let (time, ovl_lines) = timed(ovl.command(["diff", "curve"]))?;
        ovl_diff.points.push((x, time.as_secs_f64()));
        sync();
        let (time, _) = timed(ovl.command(["commit", "curve", "curve:copy"]))?;
        ovl_commit.points.push((x, time.as_secs_f64()));
        // A file of its own: the moved layer is not the copied one again.
        fs::write(Path::new(merged.trim()).join("bench-move"), "moved\n")?;
        sync();
        let (time, _) = timed(ovl.command(["commit", "--rm", "curve", "curve:moved"]))?;
        ovl_move.points.push((x, time.as_secs_f64()));
        fs::remove_dir_all(&ovl.root)?;

        fresh_page_cache(&[&archive], &[docker.data_root()])?;
        reset_peak(dockerd_pid)?;
        let (time, _) = timed(docker.docker_command(["load", "-q", "-i", a]))?;
        docker_load.points.push((x, time.as_secs_f64()));
        docker_rss
            .points
            .push((x, peak_kib(dockerd_pid)? as f64 / 1024.0));
        let status = docker.run_and_wait("curve", &["smallfiles:1", "/bin/sh", "-c", &script]);
        ensure!(status == "0", "the change script failed in Docker");
        sync();
        let (time, docker_lines) = timed(docker.docker_command(["diff", "curve"]))?;
        docker_diff.points.push((x, time.as_secs_f64()));
        ensure!(
            docker_lines.lines().count() == ovl_lines.lines().count(),
            "image of {n} files: docker diff listed {} changes, ovl diff {}",
            docker_lines.lines().count(),
            ovl_lines.lines().count()
        );
        sync();
        let (time, _) = timed(docker.docker_command(["commit", "curve", "curve:copy"]))?;
        docker_commit.points.push((x, time.as_secs_f64()));
        docker.docker_ok(["rm", "-f", "curve"]);
        docker.docker_ok(["rmi", "-f", "curve:copy", "smallfiles:1"]);
        sync();
    }
    notes.push(format!(
        "Curves of files: `smallfiles` images (the busybox base layer and one layer of that many \
         files of 1–4 KiB, plain layers in a docker-archive read from the page cache), one run \
         per point; the floor is GNU tar extracting each layer member of the archive into a \
         directory of its own. Diff and commit: {k} files changed as in the diff and commit rows."
    ));
    Ok(vec![
        Curve {
            file: "load-files.svg".to_string(),
            title: "Load time against files in the layer".to_string(),
            x_label: "files in the layer".to_string(),
            unit: Unit::Seconds,
            shape: Shape::Proportional,
            series: vec![ovl_load, docker_load, floor],
        },
        Curve {
            file: "load-rss.svg".to_string(),
            title: "Peak memory of a load against files in the layer".to_string(),
            x_label: "files in the layer".to_string(),
            unit: Unit::Mib,
            shape: Shape::Proportional,
            series: vec![ovl_rss, docker_rss],
        },
        Curve {
            file: "image-size.svg".to_string(),
            title: format!("Diff and commit of {k} changes against the image's size"),
            x_label: "files in the image".to_string(),
            unit: Unit::Seconds,
            shape: Shape::Flat,
            series: vec![ovl_diff, docker_diff, ovl_commit, docker_commit, ovl_move],
        },
    ])
}

/// A docker-archive of `layers:N`: N layers, layer i adding `layers/f<i>`, generated once per
/// count.
fn layers_archive(corpus: &Path, n: usize) -> Result<PathBuf> {
    let archive = corpus.join(format!("layers-{n}.tar"));
    if archive.exists() {
        return Ok(archive);
    }
    eprintln!("bench: generating {}", archive.display());
    let dir = corpus.join(format!("layers-{n}"));
    fs::create_dir_all(&dir)?;
    let mut diff_ids = Vec::new();
    let mut members = Vec::new();
    for i in 0..n {
        let mtime = 1_650_000_000 + i as i64;
        let mut tar = directory("layers/", mtime)?;
        tar.extend(regular(
            &format!("layers/f{i}"),
            format!("{i}\n").as_bytes(),
            mtime,
        )?);
        tar.extend(gotar::END_OF_ARCHIVE);
        diff_ids.push(format!("sha256:{}", crate::hex(&Sha256::digest(&tar))));
        let file = dir.join(format!("{i}.tar"));
        fs::write(&file, tar)?;
        members.push((format!("{i}/layer.tar"), file));
    }
    let config = image_config(&diff_ids, "PATH=/bin")?;
    let partial = archive.with_extension("tar.partial");
    write_docker_archive(&partial, &config, &members, &format!("layers:{n}"))?;
    fs::rename(&partial, &archive)?;
    fs::remove_dir_all(&dir)?;
    Ok(archive)
}

/// run-rootfs against the number of layers, beside `docker create` (while dockerd allows the
/// depth) and the floor: one overlay mount of the same lowers, made with `lowerdir+` (the only
/// way past a page of mount options) by `cargo xtask overlay-floor`, and unmounted.
fn layers_curve(
    layers: &[usize],
    ovl_bin: &Path,
    docker: &Dockerd,
    scratch: &Path,
    notes: &mut Vec<String>,
) -> Result<Curve> {
    let corpus = crate::workspace_root().join("target/bench-corpus");
    let xtask = std::env::current_exe()?;
    let ovl = Ovl {
        bin: ovl_bin.to_path_buf(),
        root: scratch.join("ovl"),
    };
    let mut ovl_series = Series::new("ovl run-rootfs");
    let mut floor_series = Series::new("overlay mount + umount of the same lowers (floor)");
    let mut docker_series = Series::new("docker create");
    for &n in layers {
        eprintln!("bench: curves at {n} layers");
        let archive = layers_archive(&corpus, n)?;
        let a = archive.to_str().context("utf-8 corpus path")?;
        let tag = format!("layers:{n}");
        ovl.try_ok(["load", "-q", "-i", a])?;
        let load = docker.docker(["load", "-q", "-i", a]);
        let loaded = load.status.success();
        let (mut ovl_times, mut floor_times, mut docker_times) =
            (Vec::new(), Vec::new(), Vec::new());
        // What Docker said when it could not load or create the image.
        let mut docker_refused = (!loaded).then(|| {
            format!(
                "`docker load` fails: {}",
                String::from_utf8_lossy(&load.stderr).trim()
            )
        });
        for run in 0..MOUNT_RUNS {
            let container = format!("l{n}-{run}");
            sync();
            ovl_times.push(timed(ovl.command(["run-rootfs", "--name", &container, &tag]))?.0);
            let layer_dir = upper_dir(&ovl, &container)?
                .parent()
                .context("container layer dir")?
                .to_path_buf();
            let floor_dir = scratch.join("bare");
            for sub in ["upper", "work", "merged"] {
                fs::create_dir_all(floor_dir.join(sub))?;
            }
            let mut command = Command::new(&xtask);
            command
                .arg("overlay-floor")
                .arg(ovl.root.join("overlay2"))
                .arg(layer_dir.join("lower"))
                .arg(&floor_dir);
            sync();
            floor_times.push(timed(command)?.0);
            fs::remove_dir_all(&floor_dir)?;
            ovl.try_ok(["rm", "-f", &container])?;
            if docker_refused.is_none() {
                sync();
                let started = Instant::now();
                let output = docker
                    .docker_command(["create", "--network", "none", "--name", &container, &tag])
                    .output()?;
                let elapsed = started.elapsed();
                if output.status.success() {
                    docker_times.push(elapsed);
                    docker.docker_ok(["rm", "-f", &container]);
                } else {
                    docker_refused = Some(format!(
                        "`docker create` fails: {}",
                        String::from_utf8_lossy(&output.stderr).trim()
                    ));
                }
            }
        }
        let median = |mut times: Vec<Duration>| {
            times.sort();
            times[times.len() / 2].as_secs_f64()
        };
        let x = n as f64;
        ovl_series.points.push((x, median(ovl_times)));
        floor_series.points.push((x, median(floor_times)));
        match docker_refused {
            Some(message) => notes.push(format!(
                "Curve of layers: Docker cannot run the image of {n} layers: {message}"
            )),
            None => docker_series.points.push((x, median(docker_times))),
        }
        if loaded {
            docker.docker_ok(["rmi", "-f", &tag]);
        }
    }
    notes.push(format!(
        "Curve of layers: images of that many one-file layers, the median of {MOUNT_RUNS} runs \
         per point; run-rootfs includes the init layer's creation and mount; the floor is one \
         process that mounts an overlay of the container's lowers (init layer included) with \
         one `lowerdir+` parameter each over an empty upperdir, and unmounts it."
    ));
    Ok(Curve {
        file: "mount-layers.svg".to_string(),
        title: "run-rootfs against the image's layers".to_string(),
        x_label: "layers in the image".to_string(),
        unit: Unit::Seconds,
        shape: Shape::Proportional,
        series: vec![ovl_series, floor_series, docker_series],
    })
}

/// `cargo xtask overlay-floor HOME LOWER_FILE DIR`: mounts an overlay of the lowers that
/// `LOWER_FILE` names (relative to `HOME`), each with `lowerdir+`, over `DIR/upper` and
/// `DIR/work` on `DIR/merged`, and unmounts it: the floor of run-rootfs.
pub fn overlay_floor(args: &[String]) -> Result<()> {
    use rustix::mount::{
        fsconfig_create, fsconfig_set_string, fsmount, fsopen, move_mount, unmount, FsMountFlags,
        FsOpenFlags, MountAttrFlags, MoveMountFlags, UnmountFlags,
    };
    let [home, lower_file, dir] = args else {
        bail!("usage: cargo xtask overlay-floor HOME LOWER_FILE DIR");
    };
    let home = Path::new(home);
    let dir = Path::new(dir);
    let lowers = fs::read_to_string(lower_file)?;
    let fs_fd = fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC)?;
    for lower in lowers.trim().split(':') {
        fsconfig_set_string(&fs_fd, "lowerdir+", home.join(lower))?;
    }
    fsconfig_set_string(&fs_fd, "upperdir", dir.join("upper"))?;
    fsconfig_set_string(&fs_fd, "workdir", dir.join("work"))?;
    fsconfig_set_string(&fs_fd, "index", "off")?;
    fsconfig_create(&fs_fd)?;
    let mount = fsmount(
        &fs_fd,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::empty(),
    )?;
    let merged = dir.join("merged");
    move_mount(
        &mount,
        "",
        rustix::fs::CWD,
        &merged,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?;
    // An open descriptor of the mount would keep it busy.
    drop(mount);
    drop(fs_fd);
    unmount(&merged, UnmountFlags::empty())?;
    Ok(())
}

/// The changes curve from the diff and commit rows: each contender's median against the number
/// of changed files.
pub(super) fn changes_curve(options: &BenchOptions, samples: &[Sample]) -> Option<Curve> {
    if options.changes.len() < 2 {
        return None;
    }
    let rows = [
        "ovl diff",
        "docker diff",
        "podman diff",
        "ovl commit",
        "docker commit",
        "podman commit",
        MOVING_COMMIT,
        "tar -x of that layer into a fresh directory (floor)",
        "tar of the upperdir into sha256sum (floor)",
    ];
    let series = rows
        .iter()
        .map(|row| Series {
            name: row.to_string(),
            points: options
                .changes
                .iter()
                .filter_map(|&n| {
                    let name = format!("{row} ({n} changed files)");
                    samples
                        .iter()
                        .find(|s| s.name == name)
                        .map(|s| (n as f64, s.median().as_secs_f64()))
                })
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect::<Vec<_>>();
    if series.is_empty() {
        return None;
    }
    Some(Curve {
        file: "changes.svg".to_string(),
        title: "Diff and commit against the container's changes".to_string(),
        x_label: "changed files".to_string(),
        unit: Unit::Seconds,
        shape: Shape::Proportional,
        series,
    })
}

// ------------------------------------------------------------------------------------------------
// Drawing

const WIDTH: f64 = 900.0;
const HEIGHT: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 370.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 56.0;
const COLOURS: [&str; 9] = [
    "#1f77b4", "#d62728", "#9467bd", "#2ca02c", "#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f",
    "#17becf",
];

/// A count as the x axis labels it: 1, 10, 100, 1k, 10k, 100k, 1M.
fn count_label(x: f64) -> String {
    match x {
        x if x >= 1e6 => format!("{}M", x / 1e6),
        x if x >= 1e3 => format!("{}k", x / 1e3),
        x => format!("{x}"),
    }
}

/// The power of ten `10^e` as the y axis labels it.
fn decade_label(e: i32, unit: Unit) -> String {
    let power = |e: i32| {
        if e >= 0 {
            format!("{}", 10u64.pow(e as u32))
        } else {
            format!("0.{}1", "0".repeat((-e - 1) as usize))
        }
    };
    match unit {
        Unit::Seconds if e < 0 => format!("{} ms", power(e + 3)),
        Unit::Seconds => format!("{} s", power(e)),
        Unit::Mib => format!("{} MiB", power(e)),
    }
}

/// A value for the tables: three significant digits.
pub(super) fn value_text(y: f64, unit: Unit) -> String {
    match unit {
        Unit::Seconds if y < 1.0 => format!("{:.1} ms", y * 1e3),
        Unit::Seconds => format!("{y:.2} s"),
        Unit::Mib => format!("{y:.1} MiB"),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The curve as an SVG document: log-log axes over whole decades, a line with dots per series
/// (floors dashed), the legend on the right.
pub(super) fn svg(curve: &Curve) -> String {
    let points = || curve.series.iter().flat_map(|s| s.points.iter());
    // The whole decades around the points, as powers of ten.
    let span = |values: Vec<f64>| {
        let lo = values
            .iter()
            .fold(f64::INFINITY, |a, &v| a.min(v.max(1e-6)));
        let hi = values.iter().fold(0f64, |a, &v| a.max(v));
        let (lo, hi) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
        (lo, hi.max(lo + 1))
    };
    let (x_lo, x_hi) = span(points().map(|p| p.0).collect());
    let (y_lo, y_hi) = span(points().map(|p| p.1).collect());
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let px = |x: f64| LEFT + (x.log10() - x_lo as f64) / f64::from(x_hi - x_lo) * plot_w;
    let py = |y: f64| {
        TOP + plot_h - (y.max(1e-6).log10() - y_lo as f64) / f64::from(y_hi - y_lo) * plot_h
    };
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" font-size=\"14\" text-anchor=\"middle\">{}</text>\n",
        LEFT + plot_w / 2.0,
        escape(&curve.title)
    );
    for e in x_lo..=x_hi {
        let x = 10f64.powi(e);
        let p = px(x);
        let _ = write!(
            out,
            "<line x1=\"{p:.1}\" y1=\"{TOP}\" x2=\"{p:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\n\
             <text x=\"{p:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
            TOP + plot_h,
            TOP + plot_h + 16.0,
            count_label(x)
        );
    }
    for e in y_lo..=y_hi {
        let p = py(10f64.powi(e));
        let _ = write!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{p:.1}\" x2=\"{:.1}\" y2=\"{p:.1}\" stroke=\"#ddd\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
            LEFT + plot_w,
            LEFT - 6.0,
            p + 4.0,
            decade_label(e, curve.unit)
        );
    }
    let _ = write!(
        out,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"none\" \
         stroke=\"#444\"/>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{} (log scale)</text>\n",
        LEFT + plot_w / 2.0,
        HEIGHT - 14.0,
        escape(&curve.x_label)
    );
    for (i, series) in curve.series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let dash = if series.name.contains("floor") {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        let path: Vec<String> = series
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            out,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/>",
            path.join(" ")
        );
        for &(x, y) in &series.points {
            let _ = writeln!(
                out,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\" fill=\"{colour}\"/>",
                px(x),
                py(y)
            );
        }
        let ly = TOP + 10.0 + 20.0 * i as f64;
        let lx = LEFT + plot_w + 16.0;
        let _ = write!(
            out,
            "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{colour}\" \
             stroke-width=\"2\"{dash}/>\n\
             <text x=\"{}\" y=\"{}\">{}</text>\n",
            lx + 24.0,
            lx + 30.0,
            ly + 4.0,
            escape(&series.name)
        );
    }
    out.push_str("</svg>\n");
    out
}

// ------------------------------------------------------------------------------------------------
// Tables

/// The exponent of each segment: how the value grows with x (1: in proportion, 0: not at all).
fn exponents(points: &[(f64, f64)]) -> Vec<f64> {
    points
        .windows(2)
        .map(|w| (w[1].1 / w[0].1).ln() / (w[1].0 / w[0].0).ln())
        .collect()
}

/// Whether an exponent is what the shape wants: within 0.25 of it.
fn straight(shape: Shape, exponent: f64) -> bool {
    let want = match shape {
        Shape::Proportional => 1.0,
        Shape::Flat => 0.0,
    };
    (exponent - want).abs() <= 0.25
}

/// The section of a curve: the plot, a table of its points and segment exponents, and the
/// segments that bend away from the expected shape.
pub(super) fn section(curve: &Curve, image_dir: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### {}\n", curve.title);
    let _ = writeln!(out, "![{}]({image_dir}/{})\n", curve.title, curve.file);
    let mut xs: Vec<f64> = curve
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let _ = write!(out, "| {} |", curve.x_label);
    for &x in &xs {
        let _ = write!(out, " {} |", count_label(x));
    }
    for pair in xs.windows(2) {
        let _ = write!(
            out,
            " exponent {}→{} |",
            count_label(pair[0]),
            count_label(pair[1])
        );
    }
    out.push_str("\n|---|");
    for _ in 0..(2 * xs.len()).saturating_sub(1) {
        out.push_str("---:|");
    }
    out.push('\n');
    let want = match curve.shape {
        Shape::Proportional => "1 (time in proportion to x)",
        Shape::Flat => "0 (time independent of x)",
    };
    let mut bends = Vec::new();
    for series in &curve.series {
        let _ = write!(out, "| {} |", series.name.replace('|', "\\|"));
        for &x in &xs {
            let cell = series
                .points
                .iter()
                .find(|p| p.0 == x)
                .map(|p| value_text(p.1, curve.unit))
                .unwrap_or_else(|| "—".to_string());
            let _ = write!(out, " {cell} |");
        }
        for pair in xs.windows(2) {
            let points: Vec<(f64, f64)> = series
                .points
                .iter()
                .filter(|p| p.0 == pair[0] || p.0 == pair[1])
                .copied()
                .collect();
            match exponents(&points).first() {
                Some(&e) => {
                    let _ = write!(out, " {e:.2} |");
                    if !straight(curve.shape, e) {
                        bends.push(format!(
                            "{} from {} to {}: exponent {e:.2}",
                            series.name,
                            count_label(pair[0]),
                            count_label(pair[1])
                        ));
                    }
                }
                None => out.push_str(" — |"),
            }
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "\nExpected exponent of every line: {want}; a segment more than 0.25 away bends."
    );
    if bends.is_empty() {
        out.push_str("No segment bends.\n\n");
    } else {
        out.push_str("Bends:\n");
        for bend in bends {
            let _ = writeln!(out, "- {bend}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponents_of_a_proportional_and_a_flat_line() {
        let e = exponents(&[(10.0, 2.0), (100.0, 20.0), (1000.0, 20.0)]);
        assert!((e[0] - 1.0).abs() < 1e-9 && e[1].abs() < 1e-9, "{e:?}");
        assert!(straight(Shape::Proportional, e[0]) && !straight(Shape::Proportional, e[1]));
        assert!(straight(Shape::Flat, e[1]) && !straight(Shape::Flat, e[0]));
    }

    #[test]
    fn plot_spans_whole_decades_and_json_round_trips() {
        let curve = Curve {
            file: "t.svg".to_string(),
            title: "a <b>".to_string(),
            x_label: "files".to_string(),
            unit: Unit::Seconds,
            shape: Shape::Proportional,
            series: vec![Series {
                name: "x (floor)".to_string(),
                points: vec![(20_000.0, 0.9), (2_000_000.0, 95.0)],
            }],
        };
        let text = svg(&curve);
        assert!(text.contains(">10k<") && text.contains(">10M<"), "{text}");
        assert!(
            text.contains(">100 ms<") && text.contains(">100 s<"),
            "{text}"
        );
        assert!(text.contains("a &lt;b&gt;") && text.contains("stroke-dasharray"));
        let back = Curve::from_json(&curve.to_json()).unwrap();
        assert_eq!(back.series[0].points, curve.series[0].points);
        assert_eq!((back.unit, back.shape), (curve.unit, curve.shape));
    }
}
