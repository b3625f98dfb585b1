//! `ovl save`: images to a docker-archive as Docker 20.10 writes it (spec §9.1), an OCI archive or
//! an OCI layout directory.
//!
//! Every layer tar is reassembled from its tar-split record and its `diff/` (so a loaded layer
//! comes out byte for byte as it went in) and hashed while written: a layer whose bytes do not
//! hash to its DiffID fails the save. Output goes to a temporary name beside the target and is
//! renamed into place only when complete.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Read, Seek, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use store::{DataRoot, Layer, Reference};

use crate::{dockerfile, resolve};

#[derive(clap::Args, Debug)]
pub struct SaveArgs {
    /// Write to this file (a directory for `--format oci`) instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// `docker-archive` (default), `oci-archive` or `oci` (a layout directory).
    #[arg(long, default_value = "docker-archive")]
    format: String,
    /// Layer compression for the OCI formats: `gzip` (default), `zstd` or `none`.
    #[arg(long)]
    compression: Option<String>,
    /// Images: `name:tag`, id or unique id prefix.
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    DockerArchive,
    OciArchive,
    OciLayout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

/// One image to save.
struct SaveImage {
    image_id: String,
    config: Vec<u8>,
    parsed: Map<String, Value>,
    /// Familiar `name:tag` references given on the command line.
    tags: Vec<String>,
    layers: Vec<Layer>,
}

pub fn save(root_path: &Path, args: &SaveArgs) -> Result<()> {
    let format = match args.format.as_str() {
        "docker-archive" | "docker" => Format::DockerArchive,
        "oci-archive" => Format::OciArchive,
        "oci" => Format::OciLayout,
        other => bail!("unknown --format {other}: use docker-archive, oci-archive or oci"),
    };
    let compression = match (format, args.compression.as_deref()) {
        (Format::DockerArchive, None | Some("none")) => Compression::None,
        (Format::DockerArchive, Some(other)) => {
            bail!("--compression {other} is not possible with docker-archive: its layers are uncompressed tars")
        }
        (_, None | Some("gzip")) => Compression::Gzip,
        (_, Some("zstd")) => Compression::Zstd,
        (_, Some("none")) => Compression::None,
        (_, Some(other)) => bail!("unknown --compression {other}: use gzip, zstd or none"),
    };
    if format == Format::OciLayout && args.output.is_none() {
        bail!("--format oci writes a directory: name it with -o");
    }
    if args.output.is_none() && std::io::stdout().is_terminal() {
        bail!("cowardly refusing to save to a terminal. Use the -o flag or redirect");
    }

    let root = DataRoot::open(root_path)?;
    let _lock = root.lock()?;
    let mut images: Vec<SaveImage> = Vec::new();
    for text in &args.images {
        let image_id = resolve::image(&root, text)?;
        let tag = Reference::parse(text)
            .ok()
            .map(|reference| reference.familiar())
            .filter(|familiar| {
                root.references().ok().is_some_and(|refs| {
                    refs.iter()
                        .any(|(name, id)| name == familiar && *id == image_id)
                })
            });
        if let Some(existing) = images.iter_mut().find(|i| i.image_id == image_id) {
            existing.tags.extend(tag);
            continue;
        }
        let config = root
            .image_config_bytes(&image_id)
            .with_context(|| format!("reading image {text}"))?;
        let parsed: Map<String, Value> = serde_json::from_slice(&config)
            .with_context(|| format!("parsing the config of image {text}"))?;
        let diff_ids: Vec<String> = parsed
            .get("rootfs")
            .and_then(|rootfs| rootfs.get("diff_ids"))
            .and_then(Value::as_array)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| id.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        ensure!(
            !diff_ids.is_empty(),
            "image {text} has no layers: empty export - not implemented"
        );
        let chain = store::chain_ids(&diff_ids);
        let layers = chain
            .iter()
            .map(|chain_id| {
                root.layer(chain_id)?
                    .with_context(|| format!("layer {chain_id} of image {text} is missing"))
            })
            .collect::<Result<Vec<_>>>()?;
        images.push(SaveImage {
            image_id,
            config,
            parsed,
            tags: tag.into_iter().collect(),
            layers,
        });
    }

    match &args.output {
        Some(output) if format == Format::OciLayout => {
            write_layout_dir(&root, &images, compression, output)
        }
        Some(output) => {
            let parent = output
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let file_name = output
                .file_name()
                .with_context(|| format!("-o {} names no file", output.display()))?;
            let mut partial = tempfile::Builder::new()
                .prefix(&format!(".{}.", file_name.to_string_lossy()))
                .suffix(".partial")
                .tempfile_in(parent)
                .with_context(|| {
                    format!("creating a temporary file beside {}", output.display())
                })?;
            {
                let mut out = BufWriter::with_capacity(1 << 20, partial.as_file_mut());
                write_archive(&root, &images, format, compression, parent, &mut out)?;
                out.flush()
                    .with_context(|| format!("writing {}", output.display()))?;
            }
            partial
                .as_file()
                .sync_all()
                .with_context(|| format!("writing {}", output.display()))?;
            partial
                .persist(output)
                .with_context(|| format!("renaming the archive to {}", output.display()))?;
            set_mode(output, 0o644);
            Ok(())
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
            std::fs::create_dir_all(root.tmp_dir())
                .with_context(|| format!("creating {}", root.tmp_dir().display()))?;
            write_archive(
                &root,
                &images,
                format,
                compression,
                &root.tmp_dir(),
                &mut out,
            )?;
            out.flush().context("writing to stdout")?;
            Ok(())
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

fn write_archive(
    root: &DataRoot,
    images: &[SaveImage],
    format: Format,
    compression: Compression,
    scratch: &Path,
    out: &mut dyn Write,
) -> Result<()> {
    match format {
        Format::DockerArchive => write_docker_archive(root, images, out),
        _ => {
            let mut tar = TarOut { out };
            write_oci(
                root,
                images,
                compression,
                scratch,
                &mut OciSink::Tar(&mut tar),
            )?;
            tar.finish()
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Layers

/// The reassembled tar of `layer`, written to `out` and checked against its DiffID while written.
fn write_layer(root: &DataRoot, image: &str, layer: &Layer, out: &mut dyn Write) -> Result<u64> {
    let context = || {
        format!(
            "image {image}: layer {} (DiffID {})",
            layer.chain_id, layer.diff_id
        )
    };
    let tar_split = root.tar_split_path(&layer.chain_id)?;
    let gz = File::open(&tar_split)
        .with_context(|| format!("{}: opening {}", context(), tar_split.display()))?;
    let diff_dir = root.overlay_dir(&layer.cache_id).join("diff");
    let dir = File::open(&diff_dir)
        .with_context(|| format!("{}: opening {}", context(), diff_dir.display()))?;
    let mut hashing = HashingWriter {
        inner: out,
        hasher: Sha256::new(),
    };
    let n_bytes = tar_split::reassemble(std::io::BufReader::new(gz), dir.as_fd(), &mut hashing)
        .with_context(context)?;
    let actual = format!("sha256:{}", hex(&hashing.hasher.finalize()));
    ensure!(
        actual == layer.diff_id,
        "{}: the reassembled layer hashes to {actual}",
        context()
    );
    Ok(n_bytes)
}

fn layer_len(root: &DataRoot, layer: &Layer) -> Result<u64> {
    let tar_split = root.tar_split_path(&layer.chain_id)?;
    let gz = File::open(&tar_split).with_context(|| format!("opening {}", tar_split.display()))?;
    tar_split::reassembled_len(std::io::BufReader::new(gz))
        .with_context(|| format!("reading {}", tar_split.display()))
}

struct HashingWriter<'a> {
    inner: &'a mut dyn Write,
    hasher: Sha256,
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ------------------------------------------------------------------------------------------------
// Tar output with Go's headers

struct TarOut<'a> {
    out: &'a mut dyn Write,
}

impl TarOut<'_> {
    fn header(&mut self, header: &gotar::Header) -> Result<()> {
        self.out.write_all(&header.encode()?)?;
        Ok(())
    }

    fn file(&mut self, name: &str, mtime: i64, data: &[u8]) -> Result<()> {
        self.header(&file_header(name, mtime, data.len() as u64))?;
        self.out.write_all(data)?;
        self.pad(data.len() as u64)
    }

    fn pad(&mut self, size: u64) -> Result<()> {
        self.out
            .write_all(&[0u8; gotar::BLOCK_LEN][..gotar::padding(size)])?;
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        self.out.write_all(&gotar::END_OF_ARCHIVE)?;
        Ok(())
    }
}

/// A regular member as Docker's archive of its temp dir has it: 0644 with type bits, root.
fn file_header(name: &str, mtime: i64, size: u64) -> gotar::Header {
    gotar::Header {
        name: name.as_bytes().to_vec(),
        typeflag: gotar::typeflag::REG,
        mode: 0o100644,
        size: size as i64,
        mtime,
        uname: b"root".to_vec(),
        gname: b"root".to_vec(),
        ..gotar::Header::default()
    }
}

fn dir_header(name: &str, mtime: i64) -> gotar::Header {
    gotar::Header {
        name: format!("{name}/").into_bytes(),
        typeflag: gotar::typeflag::DIR,
        mode: 0o40755,
        mtime,
        uname: b"root".to_vec(),
        gname: b"root".to_vec(),
        ..gotar::Header::default()
    }
}

// ------------------------------------------------------------------------------------------------
// docker-archive

/// One member of the docker-archive, in the order Docker's walk of its temp dir gives.
enum Member<'a> {
    Dir {
        name: String,
        mtime: i64,
    },
    Bytes {
        name: String,
        mtime: i64,
        data: Vec<u8>,
    },
    Layer {
        name: String,
        mtime: i64,
        image: &'a str,
        layer: &'a Layer,
    },
    Symlink {
        name: String,
        target: String,
    },
}

impl Member<'_> {
    fn name(&self) -> &str {
        match self {
            Member::Dir { name, .. }
            | Member::Bytes { name, .. }
            | Member::Layer { name, .. }
            | Member::Symlink { name, .. } => name,
        }
    }
}

fn write_docker_archive(root: &DataRoot, images: &[SaveImage], out: &mut dyn Write) -> Result<()> {
    let mut members: Vec<Member> = Vec::new();
    let mut saved_v1_ids: HashMap<String, ()> = HashMap::new();
    let mut diff_id_paths: HashMap<String, String> = HashMap::new();
    let mut manifest: Vec<Value> = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let saved_ids: Vec<&str> = images.iter().map(|i| i.image_id.as_str()).collect();

    for image in images {
        let created = image
            .parsed
            .get("created")
            .and_then(Value::as_str)
            .and_then(crate::format::parse_rfc3339)
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64);
        let chain = store::chain_ids(
            &image
                .layers
                .iter()
                .map(|l| l.diff_id.clone())
                .collect::<Vec<_>>(),
        );
        let mut parent_v1: Option<String> = None;
        let mut v1_ids = Vec::new();
        for (idx, layer) in image.layers.iter().enumerate() {
            let is_top = idx + 1 == image.layers.len();
            let v1_image = if is_top {
                v1_fields(&image.parsed)
            } else {
                empty_v1_fields()
            };
            let v1_id = v1_id(&v1_image, &chain[idx], parent_v1.as_deref())?;
            let legacy = legacy_json(&v1_image, &v1_id, parent_v1.as_deref(), &image.parsed)?;
            if saved_v1_ids.insert(v1_id.clone(), ()).is_none() {
                let mtime = created;
                members.push(Member::Dir {
                    name: v1_id.clone(),
                    mtime,
                });
                members.push(Member::Bytes {
                    name: format!("{v1_id}/VERSION"),
                    mtime,
                    data: b"1.0".to_vec(),
                });
                members.push(Member::Bytes {
                    name: format!("{v1_id}/json"),
                    mtime,
                    data: legacy,
                });
                let layer_name = format!("{v1_id}/layer.tar");
                match diff_id_paths.get(&layer.diff_id) {
                    Some(first) => members.push(Member::Symlink {
                        name: layer_name,
                        target: format!("../{first}"),
                    }),
                    None => {
                        diff_id_paths.insert(layer.diff_id.clone(), layer_name.clone());
                        members.push(Member::Layer {
                            name: layer_name,
                            mtime: created,
                            image: &image.image_id,
                            layer,
                        });
                    }
                }
            }
            v1_ids.push(v1_id.clone());
            parent_v1 = Some(format!("sha256:{v1_id}"));
        }
        let config_hex = image.image_id.trim_start_matches("sha256:");
        members.push(Member::Bytes {
            name: format!("{config_hex}.json"),
            mtime: created,
            data: image.config.clone(),
        });
        let top = v1_ids.last().cloned().unwrap_or_default();
        for tag in &image.tags {
            let reference = Reference::parse(tag)?;
            repositories
                .entry(reference.repo)
                .or_default()
                .insert(reference.tag, top.clone());
        }
        let mut item = Map::new();
        item.insert("Config".into(), Value::String(format!("{config_hex}.json")));
        item.insert(
            "RepoTags".into(),
            if image.tags.is_empty() {
                Value::Null
            } else {
                Value::Array(image.tags.iter().cloned().map(Value::String).collect())
            },
        );
        item.insert(
            "Layers".into(),
            Value::Array(
                v1_ids
                    .iter()
                    .map(|id| Value::String(format!("{id}/layer.tar")))
                    .collect(),
            ),
        );
        if let Ok(Some(parent)) = root.image_parent(&image.image_id) {
            if saved_ids.contains(&parent.as_str()) {
                item.insert("Parent".into(), Value::String(parent));
            }
        }
        manifest.push(Value::Object(item));
    }
    let mut manifest_bytes = store::go_json(&manifest)?;
    manifest_bytes.push(b'\n');
    members.push(Member::Bytes {
        name: "manifest.json".into(),
        mtime: 0,
        data: manifest_bytes,
    });
    if !repositories.is_empty() {
        let mut bytes = store::go_json(&repositories)?;
        bytes.push(b'\n');
        members.push(Member::Bytes {
            name: "repositories".into(),
            mtime: 0,
            data: bytes,
        });
    }
    // Docker tars its temp dir: names in byte order, a directory before its entries.
    members.sort_by(|a, b| walk_key(a.name()).cmp(&walk_key(b.name())));

    let mut tar = TarOut { out };
    for member in &members {
        match member {
            Member::Dir { name, mtime } => tar.header(&dir_header(name, *mtime))?,
            Member::Bytes { name, mtime, data } => tar.file(name, *mtime, data)?,
            Member::Symlink { name, target } => tar.header(&gotar::Header {
                name: name.as_bytes().to_vec(),
                typeflag: gotar::typeflag::SYMLINK,
                mode: 0o120777,
                linkname: target.as_bytes().to_vec(),
                uname: b"root".to_vec(),
                gname: b"root".to_vec(),
                ..gotar::Header::default()
            })?,
            Member::Layer {
                name,
                mtime,
                image,
                layer,
            } => {
                let size = layer_len(root, layer)?;
                tar.header(&file_header(name, *mtime, size))?;
                let written = write_layer(root, image, layer, tar.out)?;
                ensure!(
                    written == size,
                    "image {image}: layer {}: reassembled {written} bytes, its tar-split records {size}",
                    layer.chain_id
                );
                tar.pad(size)?;
            }
        }
    }
    tar.finish()
}

/// The sort key of a walk of a directory tree: path components compared one by one.
fn walk_key(name: &str) -> Vec<&[u8]> {
    name.split('/').map(str::as_bytes).collect()
}

/// The V1Image fields of an image config (what Go's `image.V1Image` keeps when it decodes one),
/// in struct order; `created` and `container_config` are always present.
fn v1_fields(config: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    let text = |key: &str| {
        config
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if let Some(comment) = text("comment") {
        out.insert("comment".into(), Value::String(comment.into()));
    }
    out.insert(
        "created".into(),
        Value::String(text("created").unwrap_or("0001-01-01T00:00:00Z").into()),
    );
    if let Some(container) = text("container") {
        out.insert("container".into(), Value::String(container.into()));
    }
    let container_config = config
        .get("container_config")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    out.insert(
        "container_config".into(),
        Value::Object(dockerfile::canonical_config(&container_config)),
    );
    for key in ["docker_version", "author"] {
        if let Some(value) = text(key) {
            out.insert(key.into(), Value::String(value.into()));
        }
    }
    if let Some(inner) = config.get("config").and_then(Value::as_object) {
        out.insert(
            "config".into(),
            Value::Object(dockerfile::canonical_config(inner)),
        );
    }
    for key in ["architecture", "variant", "os"] {
        if let Some(value) = text(key) {
            out.insert(key.into(), Value::String(value.into()));
        }
    }
    out
}

/// The V1Image Docker uses for every layer but the top one: only the epoch as `created` (the
/// daemon formats it in its local time zone; ovl writes UTC, as a daemon running in UTC does).
fn empty_v1_fields() -> Map<String, Value> {
    let mut out = Map::new();
    out.insert(
        "created".into(),
        Value::String("1970-01-01T00:00:00Z".into()),
    );
    out.insert(
        "container_config".into(),
        Value::Object(dockerfile::canonical_config(&Map::new())),
    );
    out
}

/// Docker's legacy v1 id: sha256 of the V1Image's JSON as a map with sorted keys, plus
/// `layer_id` (the ChainID) and `parent` (the previous v1 id as a digest).
fn v1_id(v1_image: &Map<String, Value>, chain_id: &str, parent: Option<&str>) -> Result<String> {
    let mut sorted: BTreeMap<String, Value> = v1_image.clone().into_iter().collect();
    sorted.insert("layer_id".into(), Value::String(chain_id.into()));
    if let Some(parent) = parent {
        sorted.insert("parent".into(), Value::String(parent.into()));
    }
    Ok(hex(&Sha256::digest(store::go_json(&sorted)?)))
}

/// The `<v1id>/json` file: the V1Image in struct order with its `id`, `parent` (hex) and `os`.
fn legacy_json(
    v1_image: &Map<String, Value>,
    v1_id: &str,
    parent: Option<&str>,
    config: &Map<String, Value>,
) -> Result<Vec<u8>> {
    let mut fields = v1_image.clone();
    if let Some(os) = config
        .get("os")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        fields.insert("os".into(), Value::String(os.into()));
    }
    let mut out = Map::new();
    out.insert("id".into(), Value::String(v1_id.into()));
    if let Some(parent) = parent {
        out.insert(
            "parent".into(),
            Value::String(parent.trim_start_matches("sha256:").into()),
        );
    }
    for key in [
        "comment",
        "created",
        "container",
        "container_config",
        "docker_version",
        "author",
        "config",
        "architecture",
        "variant",
        "os",
    ] {
        if let Some(value) = fields.get(key) {
            out.insert(key.into(), value.clone());
        }
    }
    Ok(store::go_json(&out)?)
}

// ------------------------------------------------------------------------------------------------
// OCI

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

enum OciSink<'a, 'b> {
    Tar(&'a mut TarOut<'b>),
    Dir(&'a Path),
}

impl OciSink<'_, '_> {
    /// Adds `blobs/sha256/<hex>` from bytes.
    fn blob(&mut self, digest: &str, data: &[u8], written: &mut HashMap<String, ()>) -> Result<()> {
        if written.insert(digest.to_string(), ()).is_some() {
            return Ok(());
        }
        let name = blob_name(digest);
        match self {
            OciSink::Tar(tar) => tar.file(&name, 0, data),
            OciSink::Dir(dir) => {
                store::write_atomic(&dir.join(&name), data, 0o644)?;
                Ok(())
            }
        }
    }

    /// Adds a blob from a finished temporary file.
    fn blob_file(
        &mut self,
        digest: &str,
        mut file: tempfile::NamedTempFile,
        size: u64,
        written: &mut HashMap<String, ()>,
    ) -> Result<()> {
        if written.insert(digest.to_string(), ()).is_some() {
            return Ok(());
        }
        let name = blob_name(digest);
        match self {
            OciSink::Tar(tar) => {
                tar.header(&file_header(&name, 0, size))?;
                file.as_file_mut().rewind()?;
                let copied = std::io::copy(&mut file.as_file_mut().take(size), tar.out)?;
                ensure!(
                    copied == size,
                    "blob {digest}: copied {copied} of {size} bytes"
                );
                tar.pad(size)
            }
            OciSink::Dir(dir) => {
                file.persist(dir.join(&name))
                    .with_context(|| format!("moving blob {digest} into place"))?;
                set_mode(&dir.join(&name), 0o644);
                Ok(())
            }
        }
    }
}

/// The fully qualified repository name containerd uses: `docker.io/library/` for official images.
fn full_name(repo: &str) -> String {
    let first = repo.split('/').next().unwrap_or("");
    if repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost") {
        repo.to_string()
    } else if repo.contains('/') {
        format!("docker.io/{repo}")
    } else {
        format!("docker.io/library/{repo}")
    }
}

fn blob_name(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

fn write_oci(
    root: &DataRoot,
    images: &[SaveImage],
    compression: Compression,
    scratch: &Path,
    sink: &mut OciSink,
) -> Result<()> {
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    let mut written: HashMap<String, ()> = HashMap::new();
    if let OciSink::Tar(tar) = sink {
        tar.header(&dir_header("blobs", 0))?;
        tar.header(&dir_header("blobs/sha256", 0))?;
    }
    let mut index_entries = Vec::new();
    for image in images {
        let mut layer_descriptors = Vec::new();
        for layer in &image.layers {
            let mut temp = tempfile::Builder::new()
                .prefix(".ovl-blob-")
                .tempfile_in(scratch)
                .with_context(|| format!("creating a temporary blob in {}", scratch.display()))?;
            let (digest, size) = {
                let file = BufWriter::with_capacity(1 << 20, temp.as_file_mut());
                let mut counted = HashingCounter {
                    inner: file,
                    hasher: Sha256::new(),
                    n_bytes: 0,
                };
                match compression {
                    Compression::None => {
                        write_layer(root, &image.image_id, layer, &mut counted)?;
                    }
                    Compression::Gzip => {
                        let mut encoder = flate2::write::GzEncoder::new(
                            &mut counted,
                            flate2::Compression::default(),
                        );
                        write_layer(root, &image.image_id, layer, &mut encoder)?;
                        encoder.finish()?;
                    }
                    Compression::Zstd => {
                        let mut encoder = zstd::stream::write::Encoder::new(&mut counted, 3)?;
                        write_layer(root, &image.image_id, layer, &mut encoder)?;
                        encoder.finish()?;
                    }
                }
                counted.inner.flush()?;
                (
                    format!("sha256:{}", hex(&counted.hasher.clone().finalize())),
                    counted.n_bytes,
                )
            };
            let media_type = match compression {
                Compression::None => "application/vnd.oci.image.layer.v1.tar",
                Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
                Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            };
            sink.blob_file(&digest, temp, size, &mut written)?;
            layer_descriptors.push(serde_json::json!({
                "mediaType": media_type, "digest": digest, "size": size,
            }));
        }
        sink.blob(&image.image_id, &image.config, &mut written)?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": image.image_id, "size": image.config.len()},
            "layers": layer_descriptors,
        });
        let manifest_bytes = serde_json::to_vec(&manifest)?;
        let manifest_digest = format!("sha256:{}", hex(&Sha256::digest(&manifest_bytes)));
        sink.blob(&manifest_digest, &manifest_bytes, &mut written)?;
        let descriptor = |annotations: Option<Value>| {
            let mut entry = serde_json::json!({
                "mediaType": OCI_MANIFEST, "digest": manifest_digest, "size": manifest_bytes.len(),
            });
            if let (Some(object), Some(annotations)) = (entry.as_object_mut(), annotations) {
                object.insert("annotations".into(), annotations);
            }
            entry
        };
        if image.tags.is_empty() {
            index_entries.push(descriptor(None));
        }
        for tag in &image.tags {
            let reference = Reference::parse(tag)?;
            index_entries.push(descriptor(Some(serde_json::json!({
                "io.containerd.image.name": format!("{}:{}", full_name(&reference.repo), reference.tag),
                "org.opencontainers.image.ref.name": reference.tag,
            }))));
        }
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index_entries,
    }))?;
    match sink {
        OciSink::Tar(tar) => {
            tar.file("index.json", 0, &index)?;
            tar.file("oci-layout", 0, layout)?;
        }
        OciSink::Dir(dir) => {
            store::write_atomic(&dir.join("oci-layout"), layout, 0o644)?;
            store::write_atomic(&dir.join("index.json"), &index, 0o644)?;
        }
    }
    Ok(())
}

struct HashingCounter<W: Write> {
    inner: W,
    hasher: Sha256,
    n_bytes: u64,
}

impl<W: Write> Write for HashingCounter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.n_bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// `--format oci -o DIR`: the layout is built in a temporary directory beside DIR and renamed.
fn write_layout_dir(
    root: &DataRoot,
    images: &[SaveImage],
    compression: Compression,
    output: &Path,
) -> Result<()> {
    if let Ok(mut entries) = std::fs::read_dir(output) {
        ensure!(
            entries.next().is_none(),
            "{} exists and is not empty",
            output.display()
        );
        std::fs::remove_dir(output).with_context(|| format!("replacing {}", output.display()))?;
    }
    let parent = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let staging = tempfile::Builder::new()
        .prefix(".ovl-oci-")
        .tempdir_in(parent)
        .with_context(|| format!("creating a staging directory in {}", parent.display()))?;
    std::fs::create_dir_all(staging.path().join("blobs/sha256"))?;
    write_oci(
        root,
        images,
        compression,
        staging.path(),
        &mut OciSink::Dir(staging.path()),
    )?;
    let staged = staging.keep();
    set_mode(&staged, 0o755);
    std::fs::rename(&staged, output).map_err(|err| {
        let _ = std::fs::remove_dir_all(&staged);
        anyhow::anyhow!("renaming the layout to {}: {err}", output.display())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walk_order_puts_a_directory_before_its_entries_and_names_in_byte_order() {
        let mut names = vec![
            "manifest.json",
            "ab.json",
            "ab/layer.tar",
            "ab/VERSION",
            "ab",
            "ab/json",
            "0f",
            "repositories",
        ];
        names.sort_by(|a, b| walk_key(a).cmp(&walk_key(b)));
        assert_eq!(
            names,
            [
                "0f",
                "ab",
                "ab/VERSION",
                "ab/json",
                "ab/layer.tar",
                "ab.json",
                "manifest.json",
                "repositories"
            ]
        );
    }
}
