//! The load and mount part of `cargo xtask bench`: `ovl load` of four images in four formats
//! against `docker load`, `podman load`, `umoci unpack` and the single-pipeline floors (`tar -x`,
//! `gzip -dc | tar -x`, `pigz -dc | tar -x`, `zstd -dc | tar -x` of every layer into its own
//! directory), `ovl run-rootfs` against `docker create` and `podman create` + `podman mount`, and
//! the peak RSS of every ovl command (GNU time's `%M`).
//!
//! `debian` and `smallfiles` are also loaded with `OVL_DISABLE_FEATURES=openat2`: the userspace
//! walk that resolves paths inside a layer on kernels without `openat2` (before 5.6), next to
//! the load with `openat2(RESOLVE_IN_ROOT)` in every run, so that their ratio comes from the same
//! runs.
//!
//! The corpus (`target/bench-corpus/load/<image>/`), built once and reused while its stamp holds:
//! - `debian`: `debootstrap --variant=minbase bookworm`, then a layer of packages (`vim-runtime`
//!   and Python 3.11's standard library, unpacked with `dpkg-deb -x`), a layer of deletions
//!   (whole-directory whiteouts, a file whiteout, an opaque directory), a layer of hardlinks,
//!   symlinks and a fifo, and a one-file layer;
//! - `smallfiles`: the busybox base layer and one layer of 200,000 files of 1–4 KiB;
//! - `deep`: 120 small layers that add, modify, delete (whiteouts) and re-create files;
//! - `big`: one 500 MiB layer, half of it incompressible.
//!
//! Each image is kept as its uncompressed layer tars, their gzip (`pigz -n`) and zstd (`-3`)
//! forms, a docker-archive with plain layers, one with gzip layers, and OCI layouts with gzip and
//! zstd layers (written by skopeo from the plain docker-archive).

use std::fs;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use ovl_tests::Dockerd;
use sha2::{Digest, Sha256};

use super::{fresh_page_cache, sync, timed, PeakRss, Podman, Sample};

pub const IMAGES: [&str; 4] = ["debian", "smallfiles", "deep", "big"];
const DEEP_LAYERS: usize = 120;
/// Bumped when a generator changes, so that cached corpus images are rebuilt.
const CORPUS_VERSION: u32 = 2;
const BIG_FILES: usize = 500;
/// Images also loaded with the userspace resolver: the two with many entries, where resolving
/// every member's parent is a visible part of a load (`deep` and `big` have a few hundred).
const RESOLVER_IMAGES: [&str; 2] = ["debian", "smallfiles"];
/// The CLI's variable for kernel features to treat as absent (crates/engine/src/kernel.rs).
pub(super) const DISABLE_FEATURES: &str = "OVL_DISABLE_FEATURES";
const MIB: usize = 1 << 20;
/// Packages added by `debian`'s second layer.
const DEBIAN_PACKAGES: [&str; 4] = [
    "vim-runtime",
    "libpython3.11-stdlib",
    "libpython3.11-minimal",
    "python3.11-minimal",
];

/// One corpus image and its forms.
#[derive(Debug, Clone)]
pub struct Image {
    pub name: String,
    pub tag: String,
    pub(super) dir: PathBuf,
    pub(super) n_layers: usize,
}

impl Image {
    pub(super) fn layer(&self, i: usize, suffix: &str) -> PathBuf {
        self.dir.join(format!("layers/{i}.tar{suffix}"))
    }
    fn docker_plain(&self) -> PathBuf {
        self.dir.join("docker-plain.tar")
    }
    pub(super) fn docker_gzip(&self) -> PathBuf {
        self.dir.join("docker-gzip.tar")
    }
    fn oci(&self, compression: &str) -> PathBuf {
        self.dir.join(format!("oci-{compression}"))
    }
}

/// Builds (or reuses) the corpus images named in `names`.
pub fn corpus(corpus_dir: &Path, names: &[String], smallfiles: usize) -> Result<Vec<Image>> {
    let mut images = Vec::new();
    for name in names {
        let dir = corpus_dir.join("load").join(name);
        let stamp = format!("{name} v{CORPUS_VERSION} smallfiles={smallfiles}");
        let tag = format!("bench-{name}:1");
        if fs::read_to_string(dir.join("stamp")).ok().as_deref() != Some(stamp.as_str()) {
            let partial = dir.with_extension("partial");
            let _ = fs::remove_dir_all(&partial);
            fs::create_dir_all(partial.join("layers"))?;
            eprintln!("bench: building the {name} corpus image");
            let n_layers = match name.as_str() {
                "debian" => debian_layers(&partial)?,
                "smallfiles" => {
                    fs::write(partial.join("layers/0.tar"), ovl_tests::base_rootfs_tar())?;
                    super::write_smallfiles_layer(&partial.join("layers/1.tar"), smallfiles)?;
                    2
                }
                "deep" => deep_layers(&partial)?,
                "big" => big_layer(&partial)?,
                other => anyhow::bail!("unknown corpus image {other}: use {}", IMAGES.join(",")),
            };
            forms(&partial, &tag, n_layers)?;
            fs::write(partial.join("stamp"), &stamp)?;
            let _ = fs::remove_dir_all(&dir);
            fs::rename(&partial, &dir)?;
        }
        let n_layers = fs::read_dir(dir.join("layers"))?
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.file_name().to_string_lossy().ends_with(".tar"))
            .count();
        images.push(Image {
            name: name.clone(),
            tag,
            dir,
            n_layers,
        });
    }
    Ok(images)
}

/// `tar` of a directory, sorted, numeric owners.
fn tar_dir(dir: &Path, out: &Path) -> Result<()> {
    crate::run(
        Command::new("tar")
            .args(["--sort=name", "--numeric-owner", "-C"])
            .arg(dir)
            .arg("-cf")
            .arg(out)
            .arg("."),
    )
}

fn debian_layers(out: &Path) -> Result<usize> {
    let work = out.join("work");
    let rootfs = work.join("rootfs");
    fs::create_dir_all(&work)?;
    crate::run(
        Command::new("debootstrap")
            .args(["--variant=minbase", "bookworm"])
            .arg(&rootfs)
            .arg("http://deb.debian.org/debian"),
    )
    .context("debootstrap (Debian package debootstrap; needs the Debian mirror)")?;
    tar_dir(&rootfs, &out.join("layers/0.tar"))?;

    let packages = work.join("packages");
    let debs = work.join("debs");
    fs::create_dir_all(&packages)?;
    fs::create_dir_all(&debs)?;
    crate::run(
        Command::new("apt-get")
            .current_dir(&debs)
            .args(["download", "-qq"])
            .args(DEBIAN_PACKAGES),
    )?;
    for entry in fs::read_dir(&debs)? {
        crate::run(
            Command::new("dpkg-deb")
                .arg("-x")
                .arg(entry?.path())
                .arg(&packages),
        )?;
    }
    tar_dir(&packages, &out.join("layers/1.tar"))?;

    let deletions = work.join("deletions");
    for dir in ["usr/share", "etc/apt/sources.list.d", "etc"] {
        fs::create_dir_all(deletions.join(dir))?;
    }
    for whiteout in ["usr/share/.wh.doc", "usr/share/.wh.man", "etc/.wh.motd"] {
        fs::write(deletions.join(whiteout), "")?;
    }
    fs::write(deletions.join("etc/apt/sources.list.d/.wh..wh..opq"), "")?;
    fs::write(
        deletions.join("etc/apt/sources.list.d/bench.list"),
        "deb http://deb.debian.org/debian bookworm main\n",
    )?;
    tar_dir(&deletions, &out.join("layers/2.tar"))?;

    let links = work.join("links");
    let dir = links.join("srv/links");
    fs::create_dir_all(&dir)?;
    fs::write(dir.join("orig"), "data\n")?;
    for i in 0..3 {
        fs::hard_link(dir.join("orig"), dir.join(format!("hard{i}")))?;
    }
    std::os::unix::fs::symlink("orig", dir.join("sym"))?;
    std::os::unix::fs::symlink("/etc/os-release", dir.join("abs"))?;
    crate::run(Command::new("mkfifo").arg(dir.join("fifo")))?;
    tar_dir(&links, &out.join("layers/3.tar"))?;

    let last = work.join("last");
    fs::create_dir_all(last.join("etc"))?;
    fs::write(last.join("etc/bench-release"), "bench 1\n")?;
    tar_dir(&last, &out.join("layers/4.tar"))?;
    fs::remove_dir_all(&work)?;
    Ok(5)
}

pub(super) fn directory(name: &str, mtime: i64) -> Result<Vec<u8>> {
    let header = gotar::Header {
        name: name.as_bytes().to_vec(),
        typeflag: gotar::typeflag::DIR,
        mode: 0o40755,
        mtime,
        ..gotar::Header::default()
    };
    Ok(header.encode()?)
}

pub(super) fn regular(name: &str, data: &[u8], mtime: i64) -> Result<Vec<u8>> {
    let header = gotar::Header {
        name: name.as_bytes().to_vec(),
        typeflag: gotar::typeflag::REG,
        mode: 0o100644,
        size: data.len() as i64,
        mtime,
        ..gotar::Header::default()
    };
    let mut out = header.encode()?;
    out.extend_from_slice(data);
    out.extend(std::iter::repeat_n(0u8, gotar::padding(data.len() as u64)));
    Ok(out)
}

/// Layer i adds `deep/f<i>`, appends to `deep/f<i-1>`, deletes `deep/f<i-3>` every third layer
/// and re-creates `deep/f<i-6>`, and replaces `deep/dir` (opaque) every tenth.
fn deep_layers(out: &Path) -> Result<usize> {
    for i in 0..DEEP_LAYERS {
        let mtime = 1_650_000_000 + i as i64;
        let mut tar = Vec::new();
        tar.extend(directory("deep/", mtime)?);
        tar.extend(regular(
            &format!("deep/f{i}"),
            format!("{i}\n").as_bytes(),
            mtime,
        )?);
        if i > 0 {
            tar.extend(regular(
                &format!("deep/f{}", i - 1),
                format!("{}\nm{i}\n", i - 1).as_bytes(),
                mtime,
            )?);
        }
        if i >= 3 && i % 3 == 0 {
            tar.extend(regular(&format!("deep/.wh.f{}", i - 3), b"", mtime)?);
        }
        if i >= 6 && i % 3 == 0 {
            tar.extend(regular(
                &format!("deep/f{}", i - 6),
                format!("again{i}\n").as_bytes(),
                mtime,
            )?);
        }
        if i % 10 == 0 {
            // Replaced as a layer tool writes it: the directory, then its opaque marker.
            tar.extend(directory("deep/dir/", mtime)?);
            if i > 0 {
                tar.extend(regular("deep/dir/.wh..wh..opq", b"", mtime)?);
            }
            tar.extend(regular(
                &format!("deep/dir/v{i}"),
                format!("{i}\n").as_bytes(),
                mtime,
            )?);
        }
        tar.extend(gotar::END_OF_ARCHIVE);
        fs::write(out.join(format!("layers/{i}.tar")), tar)?;
    }
    Ok(DEEP_LAYERS)
}

/// 500 files of 1 MiB: the even ones xorshift bytes (incompressible), the odd ones text.
fn big_layer(out: &Path) -> Result<usize> {
    let mut file = BufWriter::with_capacity(4 * MIB, fs::File::create(out.join("layers/0.tar"))?);
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut data = vec![0u8; MIB];
    for i in 0..BIG_FILES {
        if i % 2 == 0 {
            for chunk in data.chunks_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
            }
        } else {
            let line = format!("line of file {i}: the quick brown fox jumps over the lazy dog\n");
            for (j, byte) in data.iter_mut().enumerate() {
                *byte = line.as_bytes()[j % line.len()];
            }
        }
        file.write_all(&regular(&format!("big/{i:03}.bin"), &data, 1_600_000_000)?)?;
    }
    file.write_all(&gotar::END_OF_ARCHIVE)?;
    file.flush()?;
    Ok(1)
}

pub(super) fn sha256_file(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; MIB];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("sha256:{}", crate::hex(&hasher.finalize())))
}

/// The compressed layers, both docker-archives and both OCI layouts.
fn forms(dir: &Path, tag: &str, n_layers: usize) -> Result<()> {
    let mut diff_ids = Vec::new();
    for i in 0..n_layers {
        let layer = dir.join(format!("layers/{i}.tar"));
        diff_ids.push(sha256_file(&layer)?);
        crate::run(
            Command::new("pigz")
                .args(["-n", "-6", "-k", "-f"])
                .arg(&layer),
        )?;
        crate::run(
            Command::new("zstd")
                .args(["-q", "-3", "-T0", "-f", "-k"])
                .arg(&layer),
        )?;
    }
    let config = super::image_config(&diff_ids, "PATH=/usr/bin:/bin")?;
    for (archive, suffix) in [("docker-plain.tar", ""), ("docker-gzip.tar", ".gz")] {
        let members: Vec<(String, PathBuf)> = (0..n_layers)
            .map(|i| {
                (
                    format!("{i}/layer.tar"),
                    dir.join(format!("layers/{i}.tar{suffix}")),
                )
            })
            .collect();
        write_docker_archive(&dir.join(archive), &config, &members, tag)?;
    }
    for compression in ["gzip", "zstd"] {
        let target = format!(
            "oci:{}:{tag}",
            dir.join(format!("oci-{compression}")).display()
        );
        crate::run(
            Command::new("skopeo")
                .args(["copy", "-q", "--dest-compress-format", compression])
                .arg(format!(
                    "docker-archive:{}",
                    dir.join("docker-plain.tar").display()
                ))
                .arg(target),
        )?;
    }
    Ok(())
}

pub(super) fn write_docker_archive(
    path: &Path,
    config: &[u8],
    members: &[(String, PathBuf)],
    tag: &str,
) -> Result<()> {
    let config_name = format!("{}.json", crate::hex(&Sha256::digest(config)));
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name,
        "RepoTags": [tag],
        "Layers": members.iter().map(|(name, _)| name.clone()).collect::<Vec<_>>(),
    }]))?;
    let mut out = BufWriter::with_capacity(4 * MIB, fs::File::create(path)?);
    let mut member = |name: &str, data: &mut dyn Read, size: u64| {
        crate::tar_member(&mut out, name, data, size, 0)
    };
    member(&config_name, &mut &config[..], config.len() as u64)?;
    for (name, file) in members {
        let size = fs::metadata(file)?.len();
        member(name, &mut fs::File::open(file)?, size)?;
    }
    member("manifest.json", &mut &manifest[..], manifest.len() as u64)?;
    out.write_all(&gotar::END_OF_ARCHIVE)?;
    out.flush()?;
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Measuring

/// The row name of the mount floor: `sh -c` running util-linux `mount` and `umount`.
pub const BARE_MOUNT: &str = "mount -t overlay + umount of the same lowers (floor)";

/// A wall time and the peak RSS (KiB) of a command run under GNU time.
pub fn timed_rss(command: &Command, scratch: &Path) -> Result<(Duration, u64)> {
    let rss_file = scratch.join("rss");
    let (time, _) = timed(ovl_tests::under_gnu_time(command, &rss_file))?;
    Ok((time, ovl_tests::peak_rss_kib(&rss_file)?))
}

fn sample(name: String) -> Sample {
    Sample {
        name,
        times: Vec::new(),
    }
}

pub(super) fn shell(script: &str) -> Command {
    let mut command = Command::new("sh");
    command.args(["-c", script]);
    command
}

/// Every layer of `image` extracted by `pipeline` (`{}` is the layer file) into its own
/// directory below `target`.
fn floor(image: &Image, suffix: &str, pipeline: &str, target: &Path) -> Result<Command> {
    fs::create_dir_all(target)?;
    let mut script = String::new();
    for i in 0..image.n_layers {
        let dir = target.join(i.to_string());
        fs::create_dir_all(&dir)?;
        let layer = image.layer(i, suffix);
        script.push_str(&format!(
            "{} | tar -C '{}' -xf - && ",
            pipeline.replace("{}", &format!("'{}'", layer.display())),
            dir.display()
        ));
    }
    script.push_str("true");
    Ok(shell(&script))
}

/// What the load and mount parts measure with, and how often.
#[derive(Clone, Copy)]
pub struct Contenders<'a> {
    pub ovl_bin: &'a Path,
    pub docker: &'a Dockerd,
    pub podman: Option<&'a Podman>,
    pub scratch: &'a Path,
    pub runs: usize,
    /// Whether the load part runs Docker, podman, umoci and the floors besides ovl (not with
    /// `--no-peers`).
    pub peers: bool,
}

/// The load samples of every image and the notes on peak memory.
pub fn bench_loads(
    images: &[Image],
    contenders: Contenders<'_>,
) -> Result<(Vec<Sample>, Vec<String>, PeakRss)> {
    let Contenders {
        ovl_bin,
        docker,
        podman,
        scratch,
        runs,
        peers,
    } = contenders;
    let mut samples = Vec::new();
    let mut notes = Vec::new();
    let mut peak_rss = Vec::new();
    let work = scratch.join("load");
    // Whether this kernel has `openat2`, found on the first load that compares the resolvers.
    let mut kernel_has_openat2 = None;
    for image in images {
        let name = &image.name;
        let label = |what: &str| format!("{what} `{name}`");
        let mut group: Vec<Sample> = [
            "ovl load (docker-archive, gzip layers)",
            "one layer at a time: ovl load with OVL_LOAD_JOBS=1 (docker-archive, gzip)",
            USERSPACE_GZIP,
            "docker load (docker-archive, gzip layers)",
            "podman load (docker-archive, gzip layers)",
            "gzip -dc | tar -x of every layer (floor)",
            "pigz -dc | tar -x of every layer (floor)",
            "ovl load (docker-archive, plain layers)",
            USERSPACE_PLAIN,
            "docker load (docker-archive, plain layers)",
            "tar -x of every layer (floor)",
            "ovl load (OCI layout, gzip)",
            "umoci unpack (OCI layout, gzip)",
            "ovl load (OCI layout, zstd)",
            "zstd -dc | tar -x of every layer (floor)",
            LOAD_SYNCFS,
        ]
        .iter()
        .map(|what| sample(label(what)))
        .collect();
        let mut compare_resolvers =
            RESOLVER_IMAGES.contains(&name.as_str()) && kernel_has_openat2 != Some(false);
        let mut rss_max: u64 = 0;
        for run in 0..runs {
            let dir = work.join(format!("{name}-{run}"));
            fs::create_dir_all(&dir)?;
            // Only the rows that name a variable set it: an `OVL_DISABLE_FEATURES` of the
            // caller's would turn every other row into a userspace-resolver row too.
            let ovl_load = |input: &Path, root: &str, env: &[(&str, &str)]| {
                let mut command = Command::new(ovl_bin);
                command
                    .arg("--root")
                    .arg(dir.join(root))
                    .args(["load", "-q", "-i"])
                    .arg(input)
                    .env_remove(DISABLE_FEATURES)
                    .envs(env.iter().copied());
                command
            };
            // The load with `openat2` and the one with the userspace walk; every other run the
            // userspace one goes first, so that neither always pays for its place.
            let resolver_pair = |slot: usize, userspace_slot: usize, input: &Path, root: &str| {
                let mut pair = vec![(slot, ovl_load(input, root, &[]), input.to_path_buf())];
                if compare_resolvers {
                    pair.push((
                        userspace_slot,
                        ovl_load(
                            input,
                            &format!("{root}-userspace"),
                            &[(DISABLE_FEATURES, "openat2")],
                        ),
                        input.to_path_buf(),
                    ));
                    if run % 2 == 1 {
                        pair.reverse();
                    }
                }
                pair
            };
            let mut measure_ovl = |slot: usize, command: Command, input: &Path| -> Result<()> {
                fresh_page_cache(&[input, ovl_bin], &[])?;
                let (time, rss) = timed_rss(&command, scratch)?;
                group[slot].times.push(time);
                rss_max = rss_max.max(rss);
                Ok(())
            };
            let mut loads = resolver_pair(0, 2, &image.docker_gzip(), "ovl-gzip");
            loads.push((
                1,
                ovl_load(&image.docker_gzip(), "ovl-seq", &[("OVL_LOAD_JOBS", "1")]),
                image.docker_gzip(),
            ));
            loads.extend(resolver_pair(7, 8, &image.docker_plain(), "ovl-plain"));
            for (slot, compression) in [(11, "gzip"), (13, "zstd")] {
                let root = format!("ovl-oci-{compression}");
                let layout = image.oci(compression);
                loads.push((slot, ovl_load(&layout, &root, &[]), layout));
            }
            for (slot, command, input) in loads {
                measure_ovl(slot, command, &input)?;
            }
            if compare_resolvers && kernel_has_openat2.is_none() {
                let has_openat2 = check_resolvers(
                    ovl_bin,
                    &dir.join("ovl-gzip"),
                    &dir.join("ovl-gzip-userspace"),
                )?;
                kernel_has_openat2 = Some(has_openat2);
                if !has_openat2 {
                    // Both loads walked in userspace: there is nothing to compare.
                    compare_resolvers = false;
                    group[2].times.clear();
                    group[8].times.clear();
                    notes.push(
                        "this kernel has no `openat2`: every ovl load resolves paths with the \
                         userspace walk, and the userspace resolver rows are left out"
                            .to_string(),
                    );
                }
            }

            if peers {
                for (slot, archive) in [(3, image.docker_gzip()), (9, image.docker_plain())] {
                    fresh_page_cache(&[&archive], &[docker.data_root()])?;
                    let archive = archive.display().to_string();
                    group[slot]
                        .times
                        .push(timed(docker.docker_command(["load", "-q", "-i", &archive]))?.0);
                    docker.docker_ok(["rmi", "-f", &image.tag]);
                }
                if let Some(podman) = podman {
                    fresh_page_cache(&[&image.docker_gzip()], &[&podman.root])?;
                    let archive = image.docker_gzip().display().to_string();
                    group[4]
                        .times
                        .push(timed(podman.command(&["load", "-q", "-i", &archive]))?.0);
                    podman.ok(&["rmi", "-f", &format!("localhost/{}", image.tag)])?;
                }
                fresh_page_cache(&[&image.oci("gzip")], &[])?;
                let mut umoci = Command::new("umoci");
                umoci
                    .args(["unpack", "--image"])
                    .arg(format!("{}:{}", image.oci("gzip").display(), image.tag))
                    .arg(dir.join("umoci"));
                group[12].times.push(timed(umoci)?.0);
                for (slot, suffix, pipeline, target) in [
                    (5, ".gz", "gzip -dc {}", "floor-gzip"),
                    (6, ".gz", "pigz -dc {}", "floor-pigz"),
                    (10, "", "cat {}", "floor-tar"),
                    (14, ".zst", "zstd -q -dc {}", "floor-zstd"),
                ] {
                    let command = floor(image, suffix, pipeline, &dir.join(target))?;
                    let layers: Vec<PathBuf> = (0..image.n_layers)
                        .map(|i| image.layer(i, suffix))
                        .collect();
                    fresh_page_cache(
                        &layers.iter().map(PathBuf::as_path).collect::<Vec<_>>(),
                        &[],
                    )?;
                    group[slot].times.push(timed(command)?.0);
                    if slot == 10 {
                        // What a load adds to `tar -x` before it publishes: the data on disk.
                        let mut syncfs = Command::new("sync");
                        syncfs.arg("-f").arg(dir.join(target));
                        group[15].times.push(timed(syncfs)?.0);
                    }
                }
            }
            // The scratch filesystem holds one run of one image.
            fs::remove_dir_all(&dir)?;
            sync();
        }
        // The rows not measured for this image: podman's when it is not installed, the
        // userspace resolver's outside `RESOLVER_IMAGES`, every peer's with `--no-peers`.
        group.retain(|sample| !sample.times.is_empty());
        peak_rss.push((name.clone(), rss_max));
        notes.push(format!(
            "`{name}`: {} layers; peak RSS of its ovl loads {:.1} MiB",
            image.n_layers,
            rss_max as f64 / 1024.0
        ));
        samples.extend(group);
        let _ = fs::remove_dir_all(&work);
    }
    Ok((samples, notes, peak_rss))
}

/// The row of the `syncfs` right after the `tar -x` floor: what every load adds to it before it
/// publishes the layers.
pub const LOAD_SYNCFS: &str =
    "syncfs right after tar -x of every layer (what ovl adds before publishing)";

/// The row of `ovl load` with the userspace resolver, from a docker-archive with gzip layers;
/// its ratio in the report is to the `ovl load` row above it.
pub const USERSPACE_GZIP: &str =
    "userspace resolver: ovl load with OVL_DISABLE_FEATURES=openat2 (docker-archive, gzip)";
/// The same from a docker-archive with plain layers.
pub const USERSPACE_PLAIN: &str =
    "userspace resolver: ovl load with OVL_DISABLE_FEATURES=openat2 (docker-archive, plain)";

/// Whether the kernel has `openat2`, from `ovl info` of the store loaded without the variable;
/// fails unless the one loaded with it reports the userspace resolver.
fn check_resolvers(ovl_bin: &Path, kernel_root: &Path, userspace_root: &Path) -> Result<bool> {
    let resolver = |root: &Path, env: &[(&str, &str)]| -> Result<String> {
        let mut command = Command::new(ovl_bin);
        command
            .arg("--root")
            .arg(root)
            .args(["info", "--format", "json"])
            .env_remove(DISABLE_FEATURES)
            .envs(env.iter().copied());
        let info: serde_json::Value = serde_json::from_str(&timed(command)?.1)?;
        Ok(info["Resolver"]
            .as_str()
            .context("Resolver in ovl info --format json")?
            .to_string())
    };
    let userspace = resolver(userspace_root, &[(DISABLE_FEATURES, "openat2")])?;
    anyhow::ensure!(
        userspace == "userspace",
        "ovl info reports the {userspace} resolver with {DISABLE_FEATURES}=openat2"
    );
    Ok(resolver(kernel_root, &[])? == "openat2")
}

/// `ovl run-rootfs` of `image` (loaded once) against `docker create` and `podman create` +
/// `podman mount`.
pub fn bench_mounts(
    images: &[Image],
    contenders: Contenders<'_>,
) -> Result<(Vec<Sample>, PeakRss)> {
    let (ovl_bin, docker, podman) = (contenders.ovl_bin, contenders.docker, contenders.podman);
    let (scratch, runs) = (contenders.scratch, contenders.runs);
    let mut samples = Vec::new();
    let mut peak_rss = Vec::new();
    let root = scratch.join("mounts");
    for image in images {
        let name = &image.name;
        let archive = image.docker_gzip().display().to_string();
        let ovl = |args: &[&str]| {
            let mut command = Command::new(ovl_bin);
            command.arg("--root").arg(&root).args(args);
            command
        };
        timed(ovl(&["load", "-q", "-i", &archive]))?;
        docker.docker_ok(["load", "-q", "-i", &archive]);
        if let Some(podman) = podman {
            podman.ok(&["load", "-q", "-i", &archive])?;
        }
        let mut ovl_mount = sample(format!(
            "ovl run-rootfs `{name}` ({} layers)",
            image.n_layers
        ));
        let mut docker_create = sample(format!("docker create `{name}`"));
        let mut podman_create = sample(format!("podman create + podman mount `{name}`"));
        let mut bare_mount = sample(format!("{BARE_MOUNT} `{name}` ({} layers)", image.n_layers));
        let mut rss_max = 0;
        for run in 0..runs {
            let container = format!("m{run}");
            sync();
            ovl_mount
                .times
                .push(timed(ovl(&["run-rootfs", "--name", &container, &image.tag]))?.0);
            // The floor: the same lower layers (the container's `lower` file, init layer
            // included) mounted and unmounted by hand over an empty upperdir.
            let inspect = ovl_tests::stdout_of_success(ovl(&[
                "inspect",
                "-f",
                "{{.GraphDriver.Data.UpperDir}}",
                &container,
            ]))?;
            let layer_dir = PathBuf::from(String::from_utf8_lossy(&inspect).trim())
                .parent()
                .context("container layer dir")?
                .to_path_buf();
            let floor_dir = scratch.join(format!("bare-{run}"));
            for sub in ["upper", "work", "merged"] {
                fs::create_dir_all(floor_dir.join(sub))?;
            }
            let script = format!(
                "cd '{home}' && mount -t overlay overlay -o \"lowerdir=$(cat '{layer}/lower'),upperdir={f}/upper,workdir={f}/work,index=off\" '{f}/merged' && umount '{f}/merged'",
                home = root.join("overlay2").display(),
                layer = layer_dir.display(),
                f = floor_dir.display(),
            );
            sync();
            bare_mount.times.push(timed(shell(&script))?.0);
            let _ = fs::remove_dir_all(&floor_dir);
            timed(ovl(&["rm", "-f", &container]))?;
            // Peak RSS from a run of its own: GNU time would add its own start to the times.
            let (_, rss) = timed_rss(
                &ovl(&["run-rootfs", "--name", &container, &image.tag]),
                scratch,
            )?;
            rss_max = rss_max.max(rss);
            timed(ovl(&["rm", "-f", &container]))?;
            sync();
            docker_create.times.push(
                timed(docker.docker_command([
                    "create",
                    "--network",
                    "none",
                    "--name",
                    &container,
                    &image.tag,
                ]))?
                .0,
            );
            docker.docker_ok(["rm", "-f", &container]);
            if let Some(podman) = podman {
                sync();
                let script = format!(
                    "/usr/bin/podman --root '{0}/storage' --runroot '{0}/run' --storage-driver \
                     overlay --cgroup-manager cgroupfs --events-backend none create --name {1} \
                     --network none localhost/{2} >/dev/null && /usr/bin/podman --root \
                     '{0}/storage' --runroot '{0}/run' --storage-driver overlay \
                     --cgroup-manager cgroupfs --events-backend none mount {1} >/dev/null",
                    podman.root.display(),
                    container,
                    image.tag
                );
                podman_create.times.push(timed(shell(&script))?.0);
                podman.ok(&["rm", "-f", &container])?;
            }
        }
        peak_rss.push((format!("run-rootfs {name}"), rss_max));
        samples.push(ovl_mount);
        samples.push(bare_mount);
        samples.push(docker_create);
        if podman.is_some() {
            samples.push(podman_create);
        }
        docker.docker_ok(["rmi", "-f", &image.tag]);
        if let Some(podman) = podman {
            podman.ok(&["rmi", "-f", &format!("localhost/{}", image.tag)])?;
        }
    }
    let _ = Command::new("umount").arg("-R").arg(&root).status();
    Ok((samples, peak_rss))
}
