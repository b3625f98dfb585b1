//! image-archive: reads image archives — docker-archive (`docker save`, with or without
//! `index.json`, plain or gzip'd as a whole), OCI image layout directories and OCI archives — into a
//! list of images whose configs and layer blobs are verified while streamed. Never writes outside
//! the scratch directory it is given.
//!
//! CONTRACT (the CLI depends on these signatures; extend, don't change):
#![deny(unsafe_code)]

use std::io::Read;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("image-archive: {0}")]
    Todo(String),
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
    _inner: Box<dyn Read>,
}

impl Read for BlobReader {
    fn read(&mut self, _buf: &mut [u8]) -> std::io::Result<usize> {
        todo!()
    }
}

impl BlobReader {
    /// Reads to EOF and verifies the blob digest, naming the member on mismatch.
    pub fn finish(self) -> Result<()> {
        todo!()
    }
}

#[derive(Debug)]
pub struct Archive {}

impl Archive {
    /// Opens `path` (a file or an OCI layout directory). A whole-archive gzip is decompressed into
    /// a temp file inside `scratch_dir`, removed when the Archive is dropped.
    pub fn open(_path: &Path, _scratch_dir: &Path, _options: &OpenOptions) -> Result<Archive> {
        todo!()
    }
    pub fn format(&self) -> Format {
        todo!()
    }
    pub fn images(&self) -> &[ImageSource] {
        todo!()
    }
    pub fn open_layer(&self, _layer: &LayerRef) -> Result<BlobReader> {
        todo!()
    }
}
