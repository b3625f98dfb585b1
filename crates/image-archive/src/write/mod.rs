//! Writing image archives: a docker-archive exactly as Docker 20.10's `docker save` writes it
//! (format.md §11.1), an OCI image layout as a tar (`oci-archive`) or as a directory.
//!
//! The caller hands over the images as plain data ([`SaveImage`]: the config bytes, the tags, and
//! per layer its DiffID, the exact length of its uncompressed tar and a [`LayerSource`] that
//! writes that tar). Each layer's tar is hashed while it is written and must hash to its DiffID
//! and have the announced length; anything else fails the save naming the image and the layer.
//! Nothing here knows the data root.
//!
//! - [`write_docker_archive`]: the member list is planned first (v1 ids, `json`, `VERSION`,
//!   `manifest.json`, `repositories`, modes and times as Docker's writer gives them, sorted as
//!   Docker's walk of its temp dir yields them), then written in one pass; layers stream from
//!   their sources.
//! - [`write_oci_archive`] and [`write_oci_layout`]: uncompressed layers stream from their sources
//!   (their digest is their DiffID); gzip and zstd layers are compressed once per DiffID into
//!   temp files in the scratch directory, because a blob's digest must be known before the
//!   manifest that names it.

mod docker;
mod oci;
mod tarball;
mod v1;

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::digest::{format_sha256, parse_sha256, sha256_digest};
use crate::{Error, Result};

/// What a [`LayerSource`] may fail with; kept as the error's source so that the cause (a file of
/// the layer that changed, an I/O error) stays visible.
pub type LayerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Produces the uncompressed tar of one layer, byte for byte the tar its DiffID was computed
/// from.
pub trait LayerSource {
    /// Writes the whole tar to `out`. The writer checks the length and the digest of what
    /// arrives; a source only reports its own failures.
    fn write_tar(&mut self, out: &mut dyn Write) -> std::result::Result<(), LayerError>;
}

/// One layer of an image to save.
pub struct SaveLayer {
    /// `sha256:<hex>` of the uncompressed tar; must equal the config's `rootfs.diff_ids` entry.
    pub diff_id: String,
    /// The exact length of the uncompressed tar, written into headers before the tar itself.
    pub tar_len: u64,
    pub source: Box<dyn LayerSource>,
}

impl std::fmt::Debug for SaveLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaveLayer")
            .field("diff_id", &self.diff_id)
            .field("tar_len", &self.tar_len)
            .finish_non_exhaustive()
    }
}

/// One image to save.
#[derive(Debug)]
pub struct SaveImage {
    /// How the image was named (a tag, an id), for error messages.
    pub name: String,
    /// `sha256:<hex>` of `config`.
    pub image_id: String,
    /// The config bytes, written verbatim.
    pub config: Vec<u8>,
    /// Familiar `repo:tag` names to record for the image (empty: saved by id, untagged).
    pub repo_tags: Vec<String>,
    /// The image's parent image id, if it has one; recorded in `manifest.json` only when the
    /// parent is saved in the same archive, as Docker does.
    pub parent: Option<String>,
    /// Bottom layer first, one per `rootfs.diff_ids` entry.
    pub layers: Vec<SaveLayer>,
}

/// How layers are stored in an OCI layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// The name used on the command line and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// Settings of one save.
#[derive(Debug, Clone)]
pub struct SaveOptions {
    /// The output as the user named it (a path, or `-` for stdout), for error messages.
    pub output: PathBuf,
    /// Layer compression of the OCI formats; a docker-archive takes only [`Compression::None`].
    pub compression: Compression,
    /// The time of the save in seconds since the epoch. Docker stamps a layer directory whose
    /// `layer.tar` is a link to an earlier copy with the time of the save rather than the image's
    /// creation time.
    pub now: i64,
    /// Where compressed OCI layers are staged before they are written (an archive's own directory
    /// or the data root's `tmp/`). Unused by [`write_oci_layout`], which stages inside the layout.
    pub scratch_dir: PathBuf,
}

/// Writes `images` to `out` as a docker-archive, as `docker save` of Docker 20.10 does.
/// Images with the same id are written once, with the tags of all of them.
pub fn write_docker_archive(
    images: &mut [SaveImage],
    out: &mut dyn Write,
    options: &SaveOptions,
) -> Result<()> {
    if options.compression != Compression::None {
        return Err(Error::UnsupportedCompression {
            format: "docker-archive",
            compression: options.compression.name(),
        });
    }
    let unique = prepare(images)?;
    let plan = docker::plan(images, &unique, options.now)?;
    docker::write(images, &plan, out, &options.output)
}

/// Writes `images` to `out` as a tar of an OCI image layout, layers compressed as
/// `options.compression` says.
pub fn write_oci_archive(
    images: &mut [SaveImage],
    out: &mut dyn Write,
    options: &SaveOptions,
) -> Result<()> {
    let unique = prepare(images)?;
    oci::write_archive(images, &unique, out, options)
}

/// Writes `images` as an OCI image layout directory at `dir`, which must not exist or be an empty
/// directory. The layout is built in a temp directory beside `dir` and renamed into place when
/// complete; on any error nothing is left behind.
pub fn write_oci_layout(images: &mut [SaveImage], dir: &Path, options: &SaveOptions) -> Result<()> {
    let unique = prepare(images)?;
    oci::write_layout(images, &unique, dir, options)
}

/// An image to write: its index in the caller's list, all tags given to its id, and its
/// ChainIDs.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub(crate) idx: usize,
    pub(crate) repo_tags: Vec<String>,
    pub(crate) chain_ids: Vec<String>,
}

/// Checks every image (id, config, layers against `rootfs.diff_ids`) and merges images listed
/// more than once, keeping the first position and every tag.
fn prepare(images: &[SaveImage]) -> Result<Vec<Prepared>> {
    let mut unique: Vec<Prepared> = Vec::new();
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for (idx, image) in images.iter().enumerate() {
        if let Some(&first) = by_id.get(image.image_id.as_str()) {
            let merged = &mut unique[first].repo_tags;
            for tag in &image.repo_tags {
                if !merged.contains(tag) {
                    merged.push(tag.clone());
                }
            }
            continue;
        }
        check_image(image)?;
        let diff_ids: Vec<&str> = image.layers.iter().map(|l| l.diff_id.as_str()).collect();
        let mut repo_tags = Vec::new();
        for tag in &image.repo_tags {
            if split_tag(tag).is_none() {
                return Err(invalid_image(
                    image,
                    format!("{tag:?} is not a repo:tag name"),
                ));
            }
            if !repo_tags.contains(tag) {
                repo_tags.push(tag.clone());
            }
        }
        by_id.insert(image.image_id.as_str(), unique.len());
        unique.push(Prepared {
            idx,
            repo_tags,
            chain_ids: chain_ids(&diff_ids),
        });
    }
    Ok(unique)
}

fn check_image(image: &SaveImage) -> Result<()> {
    let actual = sha256_digest(&image.config);
    if actual != image.image_id {
        return Err(invalid_image(
            image,
            format!("config hashes to {actual}, not to the image id"),
        ));
    }
    #[derive(serde::Deserialize)]
    struct Probe {
        rootfs: Option<RootFs>,
    }
    #[derive(serde::Deserialize)]
    struct RootFs {
        #[serde(default)]
        diff_ids: Vec<String>,
    }
    let probe: Probe = serde_json::from_slice(&image.config)
        .map_err(|err| invalid_image(image, format!("invalid json: {err}")))?;
    let diff_ids = probe.rootfs.map(|r| r.diff_ids).unwrap_or_default();
    let given: Vec<&str> = image.layers.iter().map(|l| l.diff_id.as_str()).collect();
    if diff_ids != given {
        return Err(invalid_image(
            image,
            format!(
                "rootfs.diff_ids lists {} layers that differ from the {} layers given",
                diff_ids.len(),
                given.len()
            ),
        ));
    }
    if let Some(bad) = given.iter().find(|d| parse_sha256(d).is_none()) {
        return Err(invalid_image(image, format!("invalid DiffID {bad:?}")));
    }
    Ok(())
}

fn invalid_image(image: &SaveImage, reason: String) -> Error {
    Error::InvalidSaveImage {
        image: image.name.clone(),
        reason,
    }
}

/// ChainIDs of a DiffID list (format.md §3.1).
fn chain_ids(diff_ids: &[&str]) -> Vec<String> {
    gocompat::digest::chain_ids(diff_ids)
}

/// Splits a familiar `repo:tag` at the `:` after its last `/`.
fn split_tag(name: &str) -> Option<(&str, &str)> {
    let last_slash = name.rfind('/').map_or(0, |idx| idx + 1);
    let colon = last_slash + name[last_slash..].find(':')?;
    let (repo, tag) = (&name[..colon], &name[colon + 1..]);
    (!repo.is_empty() && !tag.is_empty()).then_some((repo, tag))
}

/// Streams layer `layer_idx` of `image` into `out`, checking that the source writes exactly
/// `tar_len` bytes that hash to the DiffID. A failure of `out` itself is reported as a write
/// error of `output`.
fn copy_layer(
    image: &mut SaveImage,
    layer_idx: usize,
    out: &mut dyn Write,
    output: &Path,
) -> Result<()> {
    let image_name = image.name.clone();
    let layer = &mut image.layers[layer_idx];
    let mut writer = LayerWriter {
        out,
        hasher: Sha256::new(),
        n_written: 0,
        limit: layer.tar_len,
        overflow: None,
        out_error: None,
    };
    let result = layer.source.write_tar(&mut writer);
    let LayerWriter {
        hasher,
        n_written,
        overflow,
        out_error,
        ..
    } = writer;
    if let Some(source) = out_error {
        return Err(Error::Write {
            output: output.to_path_buf(),
            operation: format!("writing layer {} of image {image_name}", layer.diff_id),
            source,
        });
    }
    if let Some(attempted) = overflow {
        return Err(Error::LayerLength {
            image: image_name,
            diff_id: layer.diff_id.clone(),
            expected: layer.tar_len,
            actual: format!("at least {attempted}"),
        });
    }
    result.map_err(|source| Error::LayerSource {
        image: image_name.clone(),
        diff_id: layer.diff_id.clone(),
        source,
    })?;
    if n_written != layer.tar_len {
        return Err(Error::LayerLength {
            image: image_name,
            diff_id: layer.diff_id.clone(),
            expected: layer.tar_len,
            actual: n_written.to_string(),
        });
    }
    let actual = format_sha256(&hasher.finalize());
    if actual != layer.diff_id {
        return Err(Error::LayerDigest {
            image: image_name,
            diff_id: layer.diff_id.clone(),
            actual,
        });
    }
    Ok(())
}

/// The writer a layer source writes into: hashes, counts, refuses bytes past the announced
/// length, and keeps the output's own error apart from the source's.
struct LayerWriter<'a> {
    out: &'a mut dyn Write,
    hasher: Sha256,
    n_written: u64,
    limit: u64,
    /// How many bytes the source tried to have written when it passed the limit.
    overflow: Option<u64>,
    out_error: Option<io::Error>,
}

impl Write for LayerWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let attempted = self.n_written + buf.len() as u64;
        if attempted > self.limit {
            self.overflow = Some(attempted);
            return Err(io::Error::other(format!(
                "the layer tar is longer than the {} bytes announced",
                self.limit
            )));
        }
        match self.out.write(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.n_written += n as u64;
                Ok(n)
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => Err(err),
            Err(err) => {
                let copy = io::Error::new(err.kind(), err.to_string());
                self.out_error.get_or_insert(err);
                Err(copy)
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_spec() {
        let [a, b] = ["a", "b"].map(|fill| format!("sha256:{}", fill.repeat(64)));
        let chain = chain_ids(&[a.as_str(), b.as_str()]);
        assert_eq!(chain[0], a);
        assert_eq!(chain[1], sha256_digest(format!("{a} {b}").as_bytes()));
    }

    #[test]
    fn tags_split_after_the_last_slash() {
        assert_eq!(split_tag("busybox:1"), Some(("busybox", "1")));
        assert_eq!(
            split_tag("localhost:5000/ns/app:v1"),
            Some(("localhost:5000/ns/app", "v1"))
        );
        assert_eq!(split_tag("localhost:5000/ns/app"), None);
        assert_eq!(split_tag("app:"), None);
    }
}
