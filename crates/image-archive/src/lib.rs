//! image-archive: reads image archives — docker-archive (`docker save`, with or without
//! `index.json`, plain or gzip'd as a whole), OCI image layout directories and OCI archives — into a
//! list of images whose configs and layer blobs are verified while streamed. Never writes outside
//! the scratch directory it is given.
//!
//! The archive is never unpacked: a tar archive is indexed once (member name → data offset, size,
//! type, link target) and members are read as bounded ranges of the one open file. Symlinks and
//! hard links between members are resolved inside the archive only. An OCI layout directory is read
//! through `openat` with `O_NOFOLLOW` on every path component, and its blob paths are built from
//! validated digests only.
//!
//! The [`write`] module goes the other way: it writes images handed over as plain data (config
//! bytes, tags, and per layer a source of its uncompressed tar) as a docker-archive exactly as
//! Docker 20.10's `docker save` writes it, or as an OCI layout in a tar or a directory; every
//! layer is checked against its DiffID while written. It knows nothing of the data root.
//!
//! CONTRACT (the CLI depends on these signatures; extend, don't change):
#![deny(unsafe_code)]

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

mod digest;
mod docker;
mod oci;
mod source;
pub mod write;

pub use digest::MAX_JSON_SIZE;
pub use write::{
    write_docker_archive, write_oci_archive, write_oci_layout, Compression, LayerError,
    LayerSource, SaveImage, SaveLayer, SaveOptions,
};

/// Everything that can go wrong while reading or writing an archive. Every variant names the
/// archive (or the output) and, where there is one, the member, image or layer it concerns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("archive {archive}: {operation}: {source}")]
    Io {
        archive: PathBuf,
        operation: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("archive {archive}: member {member}: {operation}: {source}")]
    MemberIo {
        archive: PathBuf,
        member: String,
        operation: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("archive {archive}: invalid or truncated tar archive: {source}")]
    Tar {
        archive: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("archive {archive}: truncated archive: member {member} needs {needed} bytes but the file has {available}")]
    Truncated {
        archive: PathBuf,
        member: String,
        needed: u64,
        available: u64,
    },
    #[error("archive {archive}: truncated archive: no end-of-archive marker at byte {offset}{}", last_member.as_ref().map(|m| format!(" after member {m}")).unwrap_or_default())]
    MissingEndOfArchive {
        archive: PathBuf,
        /// The last member found, `None` for a file without any.
        last_member: Option<String>,
        offset: u64,
    },
    #[error("archive {archive}: neither manifest.json nor index.json found; not a docker-archive or oci archive")]
    UnknownFormat { archive: PathBuf },
    #[error(
        "archive {archive}: member {member} lists {count} entries, more than the limit of {limit}"
    )]
    TooManyEntries {
        archive: PathBuf,
        member: String,
        count: usize,
        limit: usize,
    },
    #[error("archive {archive}: missing member {member}")]
    MissingMember { archive: PathBuf, member: String },
    #[error(
        "archive {archive}: member {member}: unsafe member path (absolute, empty or containing ..)"
    )]
    UnsafeMemberPath { archive: PathBuf, member: String },
    #[error("archive {archive}: member {member}: link {link} to {target} leaves the archive")]
    LinkOutsideArchive {
        archive: PathBuf,
        member: String,
        link: String,
        target: String,
    },
    #[error("archive {archive}: member {member}: link {link} has absolute target {target}")]
    AbsoluteLink {
        archive: PathBuf,
        member: String,
        link: String,
        target: String,
    },
    #[error("archive {archive}: member {member}: too many levels of links")]
    LinkLoop { archive: PathBuf, member: String },
    #[error("archive {archive}: member {member}: not a regular file")]
    NotAFile { archive: PathBuf, member: String },
    #[error("archive {archive}: member {member}: {size} bytes exceeds the {limit}-byte limit for json documents")]
    TooLarge {
        archive: PathBuf,
        member: String,
        size: u64,
        limit: u64,
    },
    #[error("archive {archive}: member {member}: invalid json: {source}")]
    InvalidJson {
        archive: PathBuf,
        member: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("archive {archive}: member {member}: invalid digest {digest:?} (want sha256: and 64 lowercase hex digits)")]
    InvalidDigest {
        archive: PathBuf,
        member: String,
        digest: String,
    },
    #[error(
        "archive {archive}: member {member}: digest mismatch: expected {expected}, actual {actual}"
    )]
    DigestMismatch {
        archive: PathBuf,
        member: String,
        expected: String,
        actual: String,
    },
    #[error("archive {archive}: member {member}: size mismatch: descriptor says {expected} bytes, blob has {actual}")]
    SizeMismatch {
        archive: PathBuf,
        member: String,
        expected: u64,
        actual: u64,
    },
    #[error("archive {archive}: member {member}: invalid image config: {reason}")]
    InvalidConfig {
        archive: PathBuf,
        member: String,
        reason: String,
    },
    #[error("archive {archive}: member {member}: image has {layers} layers but rootfs.diff_ids has {diff_ids} entries")]
    LayerCountMismatch {
        archive: PathBuf,
        member: String,
        layers: usize,
        diff_ids: usize,
    },
    #[error("archive {archive}: member {member}: unsupported media type {media_type}")]
    UnsupportedMediaType {
        archive: PathBuf,
        member: String,
        media_type: String,
    },
    #[error(
        "archive {archive}: member {member}: no linux/amd64 manifest among {candidates} candidates"
    )]
    NoMatchingPlatform {
        archive: PathBuf,
        member: String,
        candidates: usize,
    },
    #[error("archive {archive}: member {member}: image indexes nested deeper than {limit} levels")]
    IndexTooDeep {
        archive: PathBuf,
        member: String,
        limit: usize,
    },
    #[error("archive {archive}: member {member}: lists no images")]
    NoImages { archive: PathBuf, member: String },
    #[error("writing {output}: {operation}")]
    Write {
        output: PathBuf,
        operation: String,
        #[source]
        source: std::io::Error,
    },
    #[error("output {output} {reason}")]
    InvalidOutput {
        output: PathBuf,
        reason: &'static str,
    },
    #[error(
        "{format} archives hold uncompressed layers; compression {compression} is not supported"
    )]
    UnsupportedCompression {
        format: &'static str,
        compression: &'static str,
    },
    #[error("image {image}: {reason}")]
    InvalidSaveImage { image: String, reason: String },
    #[error("image {image}: layer {diff_id}")]
    LayerSource {
        image: String,
        diff_id: String,
        #[source]
        source: write::LayerError,
    },
    #[error(
        "image {image}: layer {diff_id}: its tar has {actual} bytes, not the {expected} announced"
    )]
    LayerLength {
        image: String,
        diff_id: String,
        expected: u64,
        actual: String,
    },
    #[error("image {image}: layer {diff_id}: its tar hashes to {actual}, not to its DiffID")]
    LayerDigest {
        image: String,
        diff_id: String,
        actual: String,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    DockerArchive,
    OciLayout,
    OciArchive,
}

#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// `ovl load --name`: repository (or `name:tag`) for OCI images whose ref.name is a bare tag.
    pub name: Option<String>,
}

/// One layer of an image as found in the archive.
#[derive(Debug, Clone)]
pub struct LayerRef {
    /// Archive member path or blob path, for error messages.
    pub member: String,
    /// `sha256:<hex>` the blob must hash to (OCI descriptors); `None` for docker-archive members.
    pub digest: Option<String>,
    pub media_type: Option<String>,
    /// The DiffID the config names for this layer.
    pub diff_id: String,
}

/// One image in the archive.
#[derive(Debug, Clone)]
pub struct ImageSource {
    /// Config bytes exactly as stored (their sha256 is the image id); already verified.
    pub config: Vec<u8>,
    /// `sha256:<hex>` of `config`.
    pub image_id: String,
    /// Names to tag (`name:tag`), already combined per the OCI annotation rules.
    pub names: Vec<String>,
    pub layers: Vec<LayerRef>,
}

/// A raw (possibly compressed) layer blob; `finish` drains what is left and checks the digest.
pub struct BlobReader {
    inner: Box<dyn Read + Send>,
    /// The running hash and the digest it must end at; `None` for docker-archive members.
    verify: Option<(Sha256, String)>,
    archive: PathBuf,
    member: String,
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("archive", &self.archive)
            .field("member", &self.member)
            .field("expected", &self.verify.as_ref().map(|(_, d)| d))
            .finish_non_exhaustive()
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n_read = self.inner.read(buf)?;
        if let Some((hasher, _)) = &mut self.verify {
            hasher.update(&buf[..n_read]);
        }
        Ok(n_read)
    }
}

impl BlobReader {
    /// Reads to EOF and verifies the blob digest, naming the member on mismatch.
    pub fn finish(mut self) -> Result<()> {
        std::io::copy(&mut self, &mut std::io::sink()).map_err(|source| Error::MemberIo {
            archive: self.archive.clone(),
            member: self.member.clone(),
            operation: "reading layer blob",
            source,
        })?;
        if let Some((hasher, expected)) = self.verify {
            let actual = digest::format_sha256(&hasher.finalize());
            if actual != expected {
                return Err(Error::DigestMismatch {
                    archive: self.archive,
                    member: self.member,
                    expected,
                    actual,
                });
            }
        }
        Ok(())
    }

    /// The archive member or blob path this reader reads.
    pub fn member(&self) -> &str {
        &self.member
    }
}

/// An opened image archive: its format, its verified image list, and access to its layer blobs.
#[derive(Debug)]
pub struct Archive {
    path: PathBuf,
    format: Format,
    source: source::Source,
    images: Vec<ImageSource>,
}

impl Archive {
    /// Opens `path` (a file or an OCI layout directory). A whole-archive gzip is decompressed into
    /// a temp file inside `scratch_dir`, removed when the Archive is dropped.
    pub fn open(path: &Path, scratch_dir: &Path, options: &OpenOptions) -> Result<Archive> {
        let source = source::Source::open(path, scratch_dir)?;
        let format = match &source {
            source::Source::Dir(_) => Format::OciLayout,
            source::Source::Tar(tar) if tar.contains(docker::MANIFEST_MEMBER) => {
                Format::DockerArchive
            }
            source::Source::Tar(tar) if tar.contains(oci::INDEX_MEMBER) => Format::OciArchive,
            source::Source::Tar(_) => {
                return Err(Error::UnknownFormat {
                    archive: path.to_path_buf(),
                })
            }
        };
        tracing::debug!(archive = %path.display(), ?format, "detected archive format");
        let reader = source::MemberReader {
            archive: path,
            source: &source,
        };
        let images = match format {
            Format::DockerArchive => docker::read_images(&reader)?,
            Format::OciLayout | Format::OciArchive => oci::read_images(&reader, options)?,
        };
        for image in &images {
            tracing::debug!(
                archive = %path.display(),
                image_id = %image.image_id,
                names = ?image.names,
                n_layers = image.layers.len(),
                "found image"
            );
        }
        Ok(Archive {
            path: path.to_path_buf(),
            format,
            source,
            images,
        })
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn images(&self) -> &[ImageSource] {
        &self.images
    }

    /// The path the archive was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens a layer blob for streaming. For OCI formats the blob path is built from the layer's
    /// validated digest, and the returned reader verifies that digest in `finish`.
    pub fn open_layer(&self, layer: &LayerRef) -> Result<BlobReader> {
        let reader = source::MemberReader {
            archive: &self.path,
            source: &self.source,
        };
        let (member, verify) = match &layer.digest {
            Some(digest) => {
                let hex = digest::parse_sha256(digest).ok_or_else(|| Error::InvalidDigest {
                    archive: self.path.clone(),
                    member: layer.member.clone(),
                    digest: digest.clone(),
                })?;
                (
                    digest::blob_member(hex),
                    Some((Sha256::new(), digest.clone())),
                )
            }
            None => (reader.checked_reference(&layer.member)?, None),
        };
        let (inner, _size) = reader.open(&member)?;
        Ok(BlobReader {
            inner,
            verify,
            archive: self.path.clone(),
            member,
        })
    }
}
