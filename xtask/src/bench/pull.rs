//! The pull part of `cargo xtask bench`: `ovl pull` of the corpus images from a registry on the
//! loopback interface against `docker pull` into the private dockerd, `podman pull`, `skopeo copy`
//! to an OCI layout followed by `umoci unpack` (timed as one command), and two floors that fetch
//! every layer blob with `curl` into `gzip -dc | tar -x`, each layer into its own directory: one
//! layer after another (the floor of the target) and all layers at once (`ovl pull` downloads up
//! to three at once, dockerd's default of `--max-concurrent-downloads`).
//!
//! The registry is Debian's `docker-registry` (distribution 2.8) with a configuration of its own,
//! plain HTTP on 127.0.0.1 at a free port (never 5000, which a registry of the machine may hold),
//! its storage on the scratch filesystem. Each image is pushed once, in its gzip form, with
//! `skopeo copy` from a `dir:` layout (skopeo's directory transport) whose blobs are the config of
//! the image's gzip docker-archive and the corpus's `layers/<i>.tar.gz` themselves: skopeo 1.9
//! copying from the docker-archive recompresses every layer (its docker-archive source hands the
//! layers out uncompressed, to match their DiffIDs, and the copy gzips them again with its own
//! settings), while from a directory of compressed blobs it sends them as they are. The manifest
//! the registry then serves is checked against those files, so that every contender downloads
//! the bytes the load part reads; a note says what skopeo did if it changed them.
//! The registry's files are read once before the runs: every contender finds them in the page
//! cache, so what is measured is the client, not the registry's disk.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use sha2::{Digest, Sha256};

use super::load::{self, shell, timed_rss, Contenders, Image};
use super::{fresh_page_cache, sync, timed, PeakRss, Sample};

/// The row of `ovl pull`; every row's label ends with the image name in backquotes.
pub const ROW_OVL_PULL: &str = "ovl pull";
/// The row of `docker pull` into the private dockerd.
pub const DOCKER_PULL: &str = "docker pull";
/// The row of `podman pull`.
pub const PODMAN_PULL: &str = "podman pull";
/// The row of `skopeo copy` to an OCI layout and `umoci unpack` of it.
pub const SKOPEO_UMOCI: &str = "skopeo copy to an OCI layout + umoci unpack";
/// The floor of the target: one `curl | gzip -dc | tar -x` pipeline per layer, in sequence.
pub const FLOOR: &str = "curl | gzip -dc | tar -x of every layer blob, one after another (floor)";
/// The same pipelines all started at once and waited for (no target).
pub const PARALLEL_FLOOR: &str =
    "curl | gzip -dc | tar -x of every layer blob, all layers at once (parallel floor)";

/// Debian's registry (package docker-registry, distribution 2.8).
const REGISTRY: &str = "/usr/bin/docker-registry";
/// The port a registry listens on by default: another registry of the machine may hold it, and
/// a benchmark that pushed into that one would measure someone else's images.
const DEFAULT_REGISTRY_PORT: u16 = 5000;
/// How long the registry may take to answer `GET /v2/` after it was started.
const REGISTRY_START_TIMEOUT: Duration = Duration::from_secs(30);
/// The CLI's variable for the number of blobs downloaded at once: unset, so that `ovl pull` runs
/// with its default of 3, as dockerd does.
const MAX_CONCURRENT_DOWNLOADS: &str = "OVL_MAX_CONCURRENT_DOWNLOADS";
/// The tag every corpus image is pushed under.
const TAG: &str = "1";

/// The pull samples of every image, the notes (how skopeo pushed, blob sizes, peak memory) and
/// the peak RSS of `ovl pull` per image.
pub fn bench_pulls(
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
    let registry = Registry::start(&scratch.join("registry"))?;
    let work = scratch.join("pull");
    for image in images {
        let name = &image.name;
        let pushed = registry.push(image)?;
        notes.push(pushed.note.clone());
        let mut group: Vec<Sample> = Contender::ALL
            .iter()
            .map(|contender| Sample::new(format!("{} `{name}`", contender.label())))
            .collect();
        let mut rss_max: u64 = 0;
        for run in 0..runs {
            let dir = work.join(format!("{name}-{run}"));
            fs::create_dir_all(&dir)?;
            let mut order: Vec<Contender> = Contender::ALL
                .into_iter()
                .filter(|contender| match contender {
                    Contender::Ovl => true,
                    Contender::Podman => peers && podman.is_some(),
                    _ => peers,
                })
                .collect();
            // Every other run in the opposite order, so that no contender always pays for its
            // place (the page cache, the disk's state after the previous one's writes).
            if run % 2 == 1 {
                order.reverse();
            }
            for contender in order {
                // Every blob in the page cache, for every contender alike.
                let state: Vec<&Path> = match contender {
                    Contender::Docker => vec![docker.data_root()],
                    Contender::Podman => podman
                        .map(|podman| podman.root.as_path())
                        .into_iter()
                        .collect(),
                    _ => Vec::new(),
                };
                fresh_page_cache(&[&registry.storage(), ovl_bin], &state)?;
                let time = match contender {
                    Contender::Ovl => {
                        let root = dir.join("ovl");
                        let mut command = Command::new(ovl_bin);
                        command
                            .arg("--root")
                            .arg(&root)
                            .args(["pull", "-q", &pushed.reference])
                            .env_remove(MAX_CONCURRENT_DOWNLOADS)
                            .env_remove(load::DISABLE_FEATURES);
                        let (time, rss) = timed_rss(&command, scratch)?;
                        rss_max = rss_max.max(rss);
                        check_ovl_pull(ovl_bin, &root, &pushed)?;
                        time
                    }
                    Contender::Docker => {
                        let command = docker.docker_command(["pull", "-q", &pushed.reference]);
                        let time = timed(command)?.0;
                        // Layers and all: the next run downloads everything again.
                        docker.docker_ok(["rmi", "-f", &pushed.reference]);
                        time
                    }
                    Contender::Podman => {
                        let podman = podman.context("podman row without podman")?;
                        let command = podman.command(&[
                            "pull",
                            "-q",
                            "--tls-verify=false",
                            &pushed.reference,
                        ]);
                        let time = timed(command)?.0;
                        podman.ok(&["rmi", "-f", &pushed.reference])?;
                        time
                    }
                    Contender::SkopeoUmoci => {
                        let layout = dir.join("oci");
                        timed(shell(&format!(
                            "skopeo copy -q --src-tls-verify=false 'docker://{}' 'oci:{}:{TAG}' && \
                             umoci unpack --image '{}:{TAG}' '{}'",
                            pushed.reference,
                            layout.display(),
                            layout.display(),
                            dir.join("bundle").display()
                        )))?
                        .0
                    }
                    Contender::Floor => {
                        let command = floor(&registry, &pushed, &dir.join("floor"), false)?;
                        timed(command)?.0
                    }
                    Contender::ParallelFloor => {
                        let command = floor(&registry, &pushed, &dir.join("parallel-floor"), true)?;
                        timed(command)?.0
                    }
                };
                group[contender as usize].times.push(time);
            }
            // The scratch filesystem holds one run of one image.
            fs::remove_dir_all(&dir)?;
            sync();
        }
        group.retain(|sample| !sample.times.is_empty());
        samples.extend(group);
        peak_rss.push((format!("{ROW_OVL_PULL} `{name}`"), rss_max));
        let blob_bytes: u64 = pushed.layers.iter().map(|layer| layer.size).sum();
        notes.push(format!(
            "`{name}` pulled: layers {}, gzip blobs {:.1} KiB in all; peak RSS of its ovl pulls \
             {:.1} MiB",
            pushed.layers.len(),
            blob_bytes as f64 / 1024.0,
            rss_max as f64 / 1024.0
        ));
        let _ = fs::remove_dir_all(&work);
    }
    Ok((samples, notes, peak_rss))
}

/// What is measured, in the order of the first run (and of the report's rows).
#[derive(Debug, Clone, Copy)]
enum Contender {
    Ovl,
    Docker,
    Podman,
    SkopeoUmoci,
    Floor,
    ParallelFloor,
}

impl Contender {
    const ALL: [Contender; 6] = [
        Contender::Ovl,
        Contender::Docker,
        Contender::Podman,
        Contender::SkopeoUmoci,
        Contender::Floor,
        Contender::ParallelFloor,
    ];

    fn label(self) -> &'static str {
        match self {
            Contender::Ovl => ROW_OVL_PULL,
            Contender::Docker => DOCKER_PULL,
            Contender::Podman => PODMAN_PULL,
            Contender::SkopeoUmoci => SKOPEO_UMOCI,
            Contender::Floor => FLOOR,
            Contender::ParallelFloor => PARALLEL_FLOOR,
        }
    }
}

/// A layer blob as the pushed manifest lists it.
#[derive(Debug, Clone)]
struct Layer {
    digest: String,
    media_type: String,
    size: u64,
}

/// A corpus image in the registry.
#[derive(Debug, Clone)]
struct Pushed {
    /// `bench-<name>`.
    repository: String,
    /// `127.0.0.1:PORT/bench-<name>:1`.
    reference: String,
    layers: Vec<Layer>,
    /// What skopeo did with the corpus's gzip blobs.
    note: String,
}

/// Debian's `docker-registry` serving a storage directory of its own on a free loopback port.
/// Killed when dropped, so that a failed run leaves no registry behind.
struct Registry {
    child: Child,
    /// `127.0.0.1:PORT`.
    host: String,
    dir: PathBuf,
}

impl Registry {
    /// Writes the configuration below `dir` (created) and starts the registry; returns once it
    /// answers `GET /v2/`.
    fn start(dir: &Path) -> Result<Registry> {
        fs::create_dir_all(dir.join("storage"))?;
        let host = format!("127.0.0.1:{}", free_port()?);
        // No authentication, no access log (a line per request on the benchmark's CPUs), the
        // blob descriptor cache of Debian's own configuration.
        let config = dir.join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  cache:\n    \
                 blobdescriptor: inmemory\n\
                 http:\n  addr: {host}\n",
                dir.join("storage").display()
            ),
        )?;
        let log = fs::File::create(dir.join("registry.log"))?;
        let child = Command::new(REGISTRY)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {REGISTRY} (Debian package docker-registry)"))?;
        let mut registry = Registry {
            child,
            host,
            dir: dir.to_path_buf(),
        };
        let started = Instant::now();
        loop {
            let answered = curl()
                .arg(format!("http://{}/v2/", registry.host))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?
                .success();
            if answered {
                return Ok(registry);
            }
            if let Some(status) = registry.child.try_wait()? {
                bail!(
                    "{REGISTRY} exited with {status} during startup; log:\n{}",
                    registry.log_text()
                );
            }
            ensure!(
                started.elapsed() < REGISTRY_START_TIMEOUT,
                "{REGISTRY} did not answer on {} within {REGISTRY_START_TIMEOUT:?}; log:\n{}",
                registry.host,
                registry.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn storage(&self) -> PathBuf {
        self.dir.join("storage")
    }

    fn log_text(&self) -> String {
        fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    fn blob_url(&self, repository: &str, digest: &str) -> String {
        format!("http://{}/v2/{repository}/blobs/{digest}", self.host)
    }

    /// Pushes the gzip form of `image` with skopeo (see [`dir_layout`]) and reads back the
    /// manifest the registry serves; its layers must be the corpus's gzip files, or the note
    /// says how not.
    fn push(&self, image: &Image) -> Result<Pushed> {
        let repository = format!("bench-{}", image.name);
        let reference = format!("{}/{repository}:{TAG}", self.host);
        let layout = self.dir.join(format!("push-{}", image.name));
        let corpus_digests = dir_layout(image, &layout)?;
        let started = Instant::now();
        crate::run(
            Command::new("skopeo")
                .args(["copy", "-q", "--dest-tls-verify=false"])
                .arg(format!("dir:{}", layout.display()))
                .arg(format!("docker://{reference}")),
        )
        .with_context(|| format!("pushing {} with skopeo", image.name))?;
        let pushed_in = started.elapsed();
        fs::remove_dir_all(&layout)?;
        let (_, text) = timed({
            let mut command = curl();
            command
                .args([
                    "-H",
                    "Accept: application/vnd.docker.distribution.manifest.v2+json",
                    "-H",
                    "Accept: application/vnd.oci.image.manifest.v1+json",
                ])
                .arg(format!(
                    "http://{}/v2/{repository}/manifests/{TAG}",
                    self.host
                ));
            command
        })?;
        let manifest: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("manifest of {reference}"))?;
        let layers = manifest["layers"]
            .as_array()
            .with_context(|| format!("no layers in the manifest of {reference}: {text}"))?
            .iter()
            .map(|layer| {
                Ok(Layer {
                    digest: layer["digest"]
                        .as_str()
                        .context("layer digest in the manifest")?
                        .to_string(),
                    media_type: layer["mediaType"]
                        .as_str()
                        .context("layer mediaType in the manifest")?
                        .to_string(),
                    size: layer["size"]
                        .as_u64()
                        .context("layer size in the manifest")?,
                })
            })
            .collect::<Result<Vec<Layer>>>()?;
        ensure!(
            layers.len() == image.n_layers,
            "the manifest of {reference} lists {} layers, the corpus image has {}",
            layers.len(),
            image.n_layers
        );
        let mut changed = Vec::new();
        for (i, (layer, corpus_digest)) in layers.iter().zip(&corpus_digests).enumerate() {
            if layer.digest != *corpus_digest || !layer.media_type.ends_with("gzip") {
                changed.push(format!(
                    "layer {i} is {} {} (the corpus's layers/{i}.tar.gz is {corpus_digest})",
                    layer.media_type, layer.digest
                ));
            }
        }
        let media_type = manifest["mediaType"].as_str().unwrap_or("no mediaType");
        let note = if changed.is_empty() {
            format!(
                "`{}` pushed once with `skopeo copy` in {:.1} s ({media_type}): its {} layer \
                 blobs are the corpus's `layers/<i>.tar.gz`, byte for byte (digests checked)",
                image.name,
                pushed_in.as_secs_f64(),
                layers.len()
            )
        } else {
            format!(
                "`{}` pushed once with `skopeo copy` ({media_type}), but skopeo changed the \
                 blobs: {}",
                image.name,
                changed.join("; ")
            )
        };
        Ok(Pushed {
            repository,
            reference,
            layers,
            note,
        })
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `image` as a `dir:` layout into `dir` (replaced): the config of its gzip
/// docker-archive, a Docker schema 2 manifest with gzip layers, and symlinks to the corpus's
/// `layers/<i>.tar.gz` as the layer blobs. Returns the digests of those layer files.
fn dir_layout(image: &Image, dir: &Path) -> Result<Vec<String>> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir)?;
    let archive = image.docker_gzip();
    let member = |name: &str| -> Result<String> {
        let mut command = Command::new("tar");
        command.arg("-xOf").arg(&archive).arg(name);
        Ok(timed(command)?.1)
    };
    let archive_manifest: serde_json::Value = serde_json::from_str(&member("manifest.json")?)?;
    let config_name = archive_manifest[0]["Config"]
        .as_str()
        .with_context(|| format!("Config in the manifest.json of {}", archive.display()))?;
    let config = member(config_name)?;
    let config_hex = crate::hex(&Sha256::digest(config.as_bytes()));
    fs::write(dir.join(&config_hex), &config)?;
    let mut digests = Vec::new();
    let mut layers = Vec::new();
    for i in 0..image.n_layers {
        let file = image.layer(i, ".gz");
        let digest = load::sha256_file(&file)?;
        let hex = digest.strip_prefix("sha256:").context("sha256 digest")?;
        std::os::unix::fs::symlink(&file, dir.join(hex))?;
        layers.push(serde_json::json!({
            "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "size": fs::metadata(&file)?.len(),
            "digest": digest,
        }));
        digests.push(digest);
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": config.len(),
            "digest": format!("sha256:{config_hex}"),
        },
        "layers": layers,
    });
    fs::write(dir.join("manifest.json"), serde_json::to_vec(&manifest)?)?;
    // The marker skopeo writes into a layout of its directory transport.
    fs::write(dir.join("version"), "Directory Transport Version: 1.1\n")?;
    Ok(digests)
}

/// A loopback port nothing listens on now (the kernel's choice for port 0), never
/// [`DEFAULT_REGISTRY_PORT`].
fn free_port() -> Result<u16> {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        if port != DEFAULT_REGISTRY_PORT {
            return Ok(port);
        }
    }
}

/// `curl` that fails on HTTP errors and never goes through a proxy of the environment.
fn curl() -> Command {
    let mut command = Command::new("curl");
    command.args(["-sS", "-f", "--noproxy", "*"]);
    command
}

/// Every layer blob of `pushed` fetched with curl, decompressed and extracted into its own
/// directory below `target`: one pipeline after another, or with `parallel` all started at once
/// and waited for.
fn floor(registry: &Registry, pushed: &Pushed, target: &Path, parallel: bool) -> Result<Command> {
    // bash for `pipefail`: a failed download must fail the floor, not look like a fast one.
    let mut script = String::from("set -euo pipefail\npids=()\n");
    for (i, layer) in pushed.layers.iter().enumerate() {
        let dir = target.join(i.to_string());
        fs::create_dir_all(&dir)?;
        let decompress = if layer.media_type.ends_with("gzip") {
            "gzip -dc"
        } else if layer.media_type.ends_with("zstd") {
            "zstd -q -dc"
        } else if layer.media_type.ends_with("tar") {
            "cat"
        } else {
            bail!("layer {i} of {} is {}", pushed.reference, layer.media_type);
        };
        let pipeline = format!(
            "curl -sS -f --noproxy '*' '{}' | {decompress} | tar -C '{}' -xf -",
            registry.blob_url(&pushed.repository, &layer.digest),
            dir.display()
        );
        if parallel {
            script.push_str(&format!("{{ {pipeline}; }} &\npids+=($!)\n"));
        } else {
            script.push_str(&format!("{pipeline}\n"));
        }
    }
    script.push_str("for pid in \"${pids[@]}\"; do wait \"$pid\"; done\n");
    let mut command = Command::new("bash");
    command.arg("-c").arg(script);
    Ok(command)
}

/// Fails unless the store of an `ovl pull` holds the pushed image with all its layers.
fn check_ovl_pull(ovl_bin: &Path, root: &Path, pushed: &Pushed) -> Result<()> {
    let mut command = Command::new(ovl_bin);
    command
        .arg("--root")
        .arg(root)
        .args(["inspect", "--type", "image", "-f", "{{len .RootFS.Layers}}"])
        .arg(&pushed.reference);
    let n_layers = timed(command)?.1;
    ensure!(
        n_layers.trim() == pushed.layers.len().to_string(),
        "ovl pull of {} registered {} layers, the manifest lists {}",
        pushed.reference,
        n_layers.trim(),
        pushed.layers.len()
    );
    Ok(())
}
