//! OCI image layouts (image-spec v1.0 `image-layout.md`) as a tar or a directory.
//!
//! Every image gets a manifest (`application/vnd.oci.image.manifest.v1+json`) naming its config
//! (the config bytes verbatim, so the config digest is the image id) and its layers. `index.json`
//! lists one entry per tag, annotated the way containerd's exporter does it:
//! `org.opencontainers.image.ref.name` holds the tag and `io.containerd.image.name` the full name
//! (`docker.io/library/name:tag`); an image saved by id gets one entry without annotations.
//! Blobs are stored once per digest. Archive members are sorted by name, as a walk of the layout
//! directory would list them, with mtime 0, so equal inputs give equal archives.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::tarball::TarWriter;
use super::{copy_layer, split_tag, Compression, Prepared, SaveImage, SaveOptions};
use crate::digest::{format_sha256, sha256_digest};
use crate::{Error, Result};

const OCI_LAYOUT_MEMBER: &str = "oci-layout";
const INDEX_MEMBER: &str = "index.json";
/// The layout version this writer follows.
const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// Buffer of the staged compressed layers and of blob files.
const WRITE_BUFFER_LEN: usize = 256 * 1024;

/// An OCI content descriptor, fields in the image-spec's Go struct order.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    schema_version: u32,
    media_type: &'static str,
    config: &'a Descriptor,
    layers: &'a [Descriptor],
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Index<'a> {
    schema_version: u32,
    media_type: &'static str,
    manifests: &'a [Descriptor],
}

/// Where a blob's bytes come from.
#[derive(Debug)]
enum BlobBody {
    Bytes(Vec<u8>),
    /// A compressed layer staged in a temp file (removed when dropped).
    Staged(tempfile::NamedTempFile),
    /// An uncompressed layer streamed from its source (indexes into the caller's list).
    Layer {
        image: usize,
        layer: usize,
    },
}

#[derive(Debug)]
struct Blob {
    size: u64,
    body: BlobBody,
}

/// The planned layout: blobs by hex digest and the bytes of `index.json`.
#[derive(Debug)]
struct Layout {
    blobs: BTreeMap<String, Blob>,
    index: Vec<u8>,
}

/// Writes the layout of `unique` as a tar to `out`.
pub(crate) fn write_archive(
    images: &mut [SaveImage],
    unique: &[Prepared],
    out: &mut dyn Write,
    options: &SaveOptions,
) -> Result<()> {
    let layout = plan(images, unique, options, &options.scratch_dir)?;
    let mut tar = TarWriter::new(out, &options.output);
    tar.dir("blobs/", 0)?;
    tar.dir("blobs/sha256/", 0)?;
    for (hex, blob) in layout.blobs {
        let name = format!("blobs/sha256/{hex}");
        tar.file_header(&name, blob.size, 0)?;
        match blob.body {
            BlobBody::Bytes(bytes) => {
                let output = tar.output().to_path_buf();
                tar.out()
                    .write_all(&bytes)
                    .map_err(|source| write_error(&output, &name, source))?;
            }
            BlobBody::Staged(staged) => {
                let output = tar.output().to_path_buf();
                copy_staged(&staged, blob.size, tar.out(), &output, &name)?;
            }
            BlobBody::Layer { image, layer } => {
                let output = tar.output().to_path_buf();
                copy_layer(&mut images[image], layer, tar.out(), &output)?;
            }
        }
        tar.pad(&name, blob.size)?;
    }
    tar.file(INDEX_MEMBER, &layout.index, 0)?;
    tar.file(OCI_LAYOUT_MEMBER, OCI_LAYOUT, 0)?;
    tar.finish()
}

/// Writes the layout of `unique` as the directory `dir`, built beside it and renamed into place.
pub(crate) fn write_layout(
    images: &mut [SaveImage],
    unique: &[Prepared],
    dir: &Path,
    options: &SaveOptions,
) -> Result<()> {
    let invalid = |reason: &'static str| Error::InvalidOutput {
        output: dir.to_path_buf(),
        reason,
    };
    match fs::symlink_metadata(dir) {
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(write_error(dir, "checking the output directory", source)),
        Ok(metadata) if !metadata.is_dir() => return Err(invalid("exists and is not a directory")),
        Ok(_) => {
            let mut entries =
                fs::read_dir(dir).map_err(|source| write_error(dir, "listing", source))?;
            if entries.next().is_some() {
                return Err(invalid("is a directory that is not empty"));
            }
        }
    }
    let file_name = dir
        .file_name()
        .ok_or_else(|| invalid("does not name a directory"))?;
    let parent = match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{}.ovl-save-", file_name.to_string_lossy()))
        .tempdir_in(parent)
        .map_err(|source| write_error(dir, "creating a temp directory beside it", source))?;
    let root = temp.path();
    let blobs_dir = root.join("blobs/sha256");
    for path in [root.to_path_buf(), root.join("blobs"), blobs_dir.clone()] {
        fs::create_dir_all(&path)
            .and_then(|()| fs::set_permissions(&path, fs::Permissions::from_mode(0o755)))
            .map_err(|source| write_error(&path, "creating directory", source))?;
    }
    let layout = plan(images, unique, options, &blobs_dir)?;
    for (hex, blob) in layout.blobs {
        let path = blobs_dir.join(&hex);
        match blob.body {
            BlobBody::Bytes(bytes) => write_file(&path, &bytes)?,
            BlobBody::Staged(staged) => persist(staged, &path)?,
            BlobBody::Layer { image, layer } => {
                let staged = new_temp(&blobs_dir, &path)?;
                let mut writer = BufWriter::with_capacity(WRITE_BUFFER_LEN, staged.as_file());
                copy_layer(&mut images[image], layer, &mut writer, &path)?;
                writer
                    .flush()
                    .map_err(|source| write_error(&path, "writing", source))?;
                drop(writer);
                persist(staged, &path)?;
            }
        }
    }
    write_file(&root.join(INDEX_MEMBER), &layout.index)?;
    write_file(&root.join(OCI_LAYOUT_MEMBER), OCI_LAYOUT)?;
    fs::rename(root, dir)
        .map_err(|source| write_error(dir, "renaming the finished layout into place", source))?;
    let mut temp = temp;
    temp.disable_cleanup(true);
    Ok(())
}

/// Plans every blob: configs, layers (staged in `scratch_dir` when compressed) and manifests,
/// and the index naming the manifests.
fn plan(
    images: &mut [SaveImage],
    unique: &[Prepared],
    options: &SaveOptions,
    scratch_dir: &Path,
) -> Result<Layout> {
    let mut blobs: BTreeMap<String, Blob> = BTreeMap::new();
    // DiffID → the descriptor of its blob, so that a layer shared by images is stored once.
    let mut layer_blobs: BTreeMap<String, Descriptor> = BTreeMap::new();
    let mut index_entries: Vec<Descriptor> = Vec::new();
    let layer_media_type = match options.compression {
        Compression::None => "application/vnd.oci.image.layer.v1.tar",
        Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
        Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
    };
    for prepared in unique {
        let mut layers = Vec::with_capacity(images[prepared.idx].layers.len());
        for layer_idx in 0..images[prepared.idx].layers.len() {
            let diff_id = images[prepared.idx].layers[layer_idx].diff_id.clone();
            if let Some(existing) = layer_blobs.get(&diff_id) {
                layers.push(existing.clone());
                continue;
            }
            let (digest, size, body) = match options.compression {
                Compression::None => (
                    diff_id.clone(),
                    images[prepared.idx].layers[layer_idx].tar_len,
                    BlobBody::Layer {
                        image: prepared.idx,
                        layer: layer_idx,
                    },
                ),
                compression => {
                    let image = &mut images[prepared.idx];
                    tracing::debug!(image = %image.name, %diff_id, compression = compression.name(), "compressing layer");
                    let (staged, digest, size) =
                        stage_compressed(image, layer_idx, compression, scratch_dir)?;
                    (digest, size, BlobBody::Staged(staged))
                }
            };
            let descriptor = Descriptor {
                media_type: layer_media_type.to_string(),
                digest: digest.clone(),
                size,
                annotations: BTreeMap::new(),
            };
            blobs.entry(hex_of(&digest)).or_insert(Blob { size, body });
            layer_blobs.insert(diff_id, descriptor.clone());
            layers.push(descriptor);
        }

        let image = &images[prepared.idx];
        let config = Descriptor {
            media_type: OCI_CONFIG.to_string(),
            digest: image.image_id.clone(),
            size: image.config.len() as u64,
            annotations: BTreeMap::new(),
        };
        blobs.entry(hex_of(&image.image_id)).or_insert(Blob {
            size: config.size,
            body: BlobBody::Bytes(image.config.clone()),
        });
        let manifest = gocompat::json::to_vec(&Manifest {
            schema_version: 2,
            media_type: OCI_MANIFEST,
            config: &config,
            layers: &layers,
        })
        .map_err(|err| encode_error(image, err))?;
        let manifest_digest = sha256_digest(&manifest);
        let manifest_descriptor = Descriptor {
            media_type: OCI_MANIFEST.to_string(),
            digest: manifest_digest.clone(),
            size: manifest.len() as u64,
            annotations: BTreeMap::new(),
        };
        blobs.entry(hex_of(&manifest_digest)).or_insert(Blob {
            size: manifest.len() as u64,
            body: BlobBody::Bytes(manifest),
        });
        if prepared.repo_tags.is_empty() {
            index_entries.push(manifest_descriptor.clone());
        }
        for tag in &prepared.repo_tags {
            let Some((repo, tag_only)) = split_tag(tag) else {
                continue;
            };
            let mut entry = manifest_descriptor.clone();
            entry.annotations.insert(
                CONTAINERD_NAME.to_string(),
                format!("{}:{tag_only}", full_repository(repo)),
            );
            entry
                .annotations
                .insert(REF_NAME.to_string(), tag_only.to_string());
            index_entries.push(entry);
        }
    }
    let index = gocompat::json::to_vec(&Index {
        schema_version: 2,
        media_type: OCI_INDEX,
        manifests: &index_entries,
    })
    .map_err(|err| Error::InvalidSaveImage {
        image: INDEX_MEMBER.to_string(),
        reason: format!("encoding json: {err}"),
    })?;
    Ok(Layout { blobs, index })
}

/// Compresses one layer into a temp file in `scratch_dir`; returns it with the blob's digest and
/// size.
fn stage_compressed(
    image: &mut SaveImage,
    layer_idx: usize,
    compression: Compression,
    scratch_dir: &Path,
) -> Result<(tempfile::NamedTempFile, String, u64)> {
    let staged = new_temp(scratch_dir, scratch_dir)?;
    let path = staged.path().to_path_buf();
    let file = staged
        .as_file()
        .try_clone()
        .map_err(|source| write_error(&path, "opening staged layer", source))?;
    let hashing = HashingWriter {
        inner: BufWriter::with_capacity(WRITE_BUFFER_LEN, file),
        hasher: Sha256::new(),
        n_written: 0,
    };
    let compress_error = |source| write_error(&path, "compressing layer", source);
    let hashing = match compression {
        Compression::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(hashing, flate2::Compression::default());
            copy_layer(image, layer_idx, &mut encoder, &path)?;
            encoder.finish().map_err(compress_error)?
        }
        Compression::Zstd => {
            let mut encoder =
                zstd::stream::write::Encoder::new(hashing, 0).map_err(compress_error)?;
            copy_layer(image, layer_idx, &mut encoder, &path)?;
            encoder.finish().map_err(compress_error)?
        }
        Compression::None => {
            let mut hashing = hashing;
            copy_layer(image, layer_idx, &mut hashing, &path)?;
            hashing
        }
    };
    let HashingWriter {
        mut inner,
        hasher,
        n_written,
    } = hashing;
    inner.flush().map_err(compress_error)?;
    drop(inner);
    Ok((staged, format_sha256(&hasher.finalize()), n_written))
}

/// Copies a staged blob of `size` bytes into the archive.
fn copy_staged(
    staged: &tempfile::NamedTempFile,
    size: u64,
    out: &mut dyn Write,
    output: &Path,
    member: &str,
) -> Result<()> {
    let mut file = staged
        .reopen()
        .map_err(|source| write_error(staged.path(), "reopening staged layer", source))?;
    let copied = io::copy(&mut file, out).map_err(|source| write_error(output, member, source))?;
    if copied != size {
        return Err(write_error(
            staged.path(),
            "reading staged layer",
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{copied} of {size} bytes"),
            ),
        ));
    }
    Ok(())
}

/// A temp file in `dir` for the blob that will become `target` (named in errors).
fn new_temp(dir: &Path, target: &Path) -> Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(".ovl-blob-")
        .tempfile_in(dir)
        .map_err(|source| write_error(target, "creating a temp file", source))
}

/// Renames a finished temp file to `path` with mode 0644.
fn persist(staged: tempfile::NamedTempFile, path: &Path) -> Result<()> {
    fs::set_permissions(staged.path(), fs::Permissions::from_mode(0o644))
        .map_err(|source| write_error(path, "setting mode", source))?;
    staged
        .persist(path)
        .map_err(|err| write_error(path, "renaming into place", err.error))?;
    Ok(())
}

/// Writes a small file of the layout with mode 0644.
fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = File::create(path).map_err(|source| write_error(path, "creating", source))?;
    file.write_all(bytes)
        .and_then(|()| file.set_permissions(fs::Permissions::from_mode(0o644)))
        .map_err(|source| write_error(path, "writing", source))
}

/// The repository with its registry and namespace made explicit, as in
/// `io.containerd.image.name`: `busybox` → `docker.io/library/busybox`, `me/app` →
/// `docker.io/me/app`; a name whose first component is a registry host stays as it is.
fn full_repository(repo: &str) -> String {
    match repo.split_once('/') {
        None => format!("docker.io/library/{repo}"),
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            repo.to_string()
        }
        Some(_) => format!("docker.io/{repo}"),
    }
}

fn hex_of(digest: &str) -> String {
    digest.trim_start_matches("sha256:").to_string()
}

fn write_error(path: &Path, operation: &str, source: io::Error) -> Error {
    Error::Write {
        output: PathBuf::from(path),
        operation: operation.to_string(),
        source,
    }
}

fn encode_error(image: &SaveImage, err: serde_json::Error) -> Error {
    Error::InvalidSaveImage {
        image: image.name.clone(),
        reason: format!("encoding json: {err}"),
    }
}

/// Counts and hashes what passes through to `inner`: the compressed blob.
struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    n_written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.n_written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_repository_adds_docker_hub_defaults() {
        for (name, full) in [
            ("busybox", "docker.io/library/busybox"),
            ("me/app", "docker.io/me/app"),
            ("localhost:5000/ns/app", "localhost:5000/ns/app"),
            ("quay.io/x/y", "quay.io/x/y"),
            ("localhost/app", "localhost/app"),
        ] {
            assert_eq!(full_repository(name), full);
        }
    }
}
