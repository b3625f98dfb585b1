//! Saving images to a docker-archive (as `docker save` of Docker 20.10 writes it), an OCI
//! archive or an OCI layout directory.
//!
//! Names are resolved as `docker save` resolves them: `name:tag` saves that tag, a bare `name`
//! every tag of that repository, an image id or unique id prefix the image without tags. Each
//! layer's tar is reassembled from its `tar-split.json.gz` and its `diff/` directory while the
//! archive is written, and must hash to its DiffID. A file output is written to a temp file beside
//! it and renamed into place only when complete.

use std::io::{BufReader, BufWriter, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use crate::error::{Context, Error, Result};
pub use image_archive::Compression;
use image_archive::{LayerError, LayerSource, SaveImage, SaveLayer, SaveOptions};
use store::{DataRoot, Reference};

use crate::resolve;

/// Buffer between the archive writer and a file or stdout.
const OUTPUT_BUFFER_LEN: usize = 1 << 20;
/// Buffer for reading a layer's tar-split stream.
const TAR_SPLIT_BUFFER_LEN: usize = 64 * 1024;

/// The archive formats `save` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveFormat {
    /// `docker save`'s format (Docker 20.10), read by `docker load`.
    DockerArchive,
    /// A tar of an OCI image layout.
    OciArchive,
    /// An OCI image layout directory.
    Oci,
}

/// Where `save` writes the archive.
pub enum SaveOutput<'a> {
    /// A file (written to a temp file beside it and renamed into place when complete), or the
    /// directory to create for [`SaveFormat::Oci`].
    Path(PathBuf),
    /// A stream such as stdout; scratch files go to the data root's `tmp/`.
    Stream(&'a mut dyn Write),
}

/// Writes the images `names` select (see [`resolve_names`]) as one archive. The root's lock is
/// held for the whole save, so that no ovl command removes a layer while it is read; nothing in
/// the root changes.
pub fn save(
    root_path: &Path,
    names: &[String],
    format: SaveFormat,
    compression: Compression,
    output: SaveOutput<'_>,
) -> Result<()> {
    let root = DataRoot::open(root_path).root_context("opening data root", root_path)?;
    // Held for the whole save, so that no ovl command removes a layer while it is read.
    let _lock = root.lock()?;
    let mut images = Vec::new();
    for (image_id, name, repo_tags) in resolve_names(&root, names)? {
        images.push(stored_image(&root, &image_id, &name, repo_tags)?);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));

    match output {
        SaveOutput::Path(path) if format == SaveFormat::Oci => {
            let options = SaveOptions {
                output: path.clone(),
                compression,
                now,
                scratch_dir: path.clone(),
            };
            image_archive::write_oci_layout(&mut images, &path, &options)
                .path_context("saving to", &path)?;
        }
        SaveOutput::Path(path) => {
            let dir = parent_dir(&path);
            let options = SaveOptions {
                output: path.clone(),
                compression,
                now,
                scratch_dir: dir.to_path_buf(),
            };
            write_file_atomically(&path, |out| {
                write_archive(format, &mut images, out, &options)
            })
            .path_context("saving to", &path)?;
        }
        SaveOutput::Stream(_) if format == SaveFormat::Oci => {
            return Err(Error::invalid(
                "--format oci writes a directory: give it with -o DIR",
            ));
        }
        SaveOutput::Stream(stream) => {
            let scratch_dir = if format == SaveFormat::DockerArchive {
                root.tmp_dir()
            } else {
                root.create_tmp_dir()?
            };
            let options = SaveOptions {
                output: PathBuf::from("-"),
                compression,
                now,
                scratch_dir,
            };
            let mut out = BufWriter::with_capacity(OUTPUT_BUFFER_LEN, stream);
            write_archive(format, &mut images, &mut out, &options).context("saving to stdout")?;
            out.flush()
                .map_err(|source| Error::io("saving to", "stdout", source))?;
        }
    }
    Ok(())
}

fn write_archive(
    format: SaveFormat,
    images: &mut [SaveImage],
    out: &mut dyn Write,
    options: &SaveOptions,
) -> image_archive::Result<()> {
    match format {
        SaveFormat::OciArchive => image_archive::write_oci_archive(images, out, options),
        _ => image_archive::write_docker_archive(images, out, options),
    }
}

/// The directory a file output lives in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Runs `write` on a temp file beside `path` ([`syscompat::atomic::AtomicFile`]) and puts it in
/// place once written and synced; on any error the temp file is removed and `path` is left as it
/// was. The file gets mode 0600, like the file `docker save -o` writes.
pub(crate) fn write_file_atomically<E: Into<Error>>(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::result::Result<(), E>,
) -> Result<()> {
    let atomic_error =
        |err: syscompat::atomic::AtomicError| Error::io(err.step, &err.path, err.source);
    let staged = syscompat::atomic::AtomicFile::create(path, 0o600).map_err(atomic_error)?;
    let mut out = BufWriter::with_capacity(OUTPUT_BUFFER_LEN, staged.file());
    write(&mut out).map_err(Into::into)?;
    out.flush()
        .map_err(|source| Error::io("writing", staged.temp_path(), source))?;
    drop(out);
    staged.commit().map_err(atomic_error)
}

/// The images the names select, in the order first named, each with how it was named and the
/// tags to record (merged when several names select one image), as `docker save` does.
pub fn resolve_names(
    root: &DataRoot,
    names: &[String],
) -> Result<Vec<(String, String, Vec<String>)>> {
    let references = root.references().context("reading repositories.json")?;
    let mut selected: Vec<(String, String, Vec<String>)> = Vec::new();
    let mut add = |image_id: String, name: &str, tag: Option<String>| {
        let idx = match selected.iter().position(|(id, _, _)| *id == image_id) {
            Some(idx) => idx,
            None => {
                selected.push((image_id, name.to_string(), Vec::new()));
                selected.len() - 1
            }
        };
        if let Some(tag) = tag {
            if !selected[idx].2.contains(&tag) {
                selected[idx].2.push(tag);
            }
        }
    };
    for name in names {
        let parsed = Reference::parse(name).ok();
        match parsed {
            // A bare repository name: every tag of it, sorted; none at all makes it an id prefix.
            Some(reference) if !has_tag(name) => {
                let tagged: Vec<&(String, String)> = references
                    .iter()
                    .filter(|(key, _)| {
                        !key.contains('@')
                            && Reference::parse(key).is_ok_and(|found| found.repo == reference.repo)
                    })
                    .collect();
                if tagged.is_empty() {
                    add(resolve::image(root, name)?, name, None);
                }
                for (key, image_id) in tagged {
                    add(image_id.clone(), name, Some(key.clone()));
                }
            }
            // `name:tag` saves that tag; `sha256:<id>` parses as one too but names an image id.
            Some(reference) => {
                let key = reference.familiar();
                match references.iter().find(|(found, _)| *found == key) {
                    Some((_, image_id)) => add(image_id.clone(), name, Some(key)),
                    None => add(resolve::image(root, name)?, name, None),
                }
            }
            None => add(resolve::image(root, name)?, name, None),
        }
    }
    Ok(selected)
}

/// Whether a name carries a tag: a `:` after its last `/`.
fn has_tag(name: &str) -> bool {
    let last_component = name.rsplit('/').next().unwrap_or(name);
    last_component.contains(':')
}

/// An image of the data root with its layers as sources reading its tar-split and `diff/`.
pub(crate) fn stored_image(
    root: &DataRoot,
    image_id: &str,
    name: &str,
    repo_tags: Vec<String>,
) -> Result<SaveImage> {
    let config = root
        .image_config_bytes(image_id)
        .image_context("image", name)?;
    let mut layers = Vec::new();
    for (diff_id, layer) in stored_layers(root, image_id, name)? {
        let tar_len = layer
            .tar_len()
            .map_err(|err| layer.error(name, &diff_id, err))?;
        layers.push(SaveLayer {
            diff_id,
            tar_len,
            source: Box::new(layer),
        });
    }
    let parent = root.image_parent(image_id).image_context("image", name)?;
    Ok(SaveImage {
        name: name.to_string(),
        image_id: image_id.to_string(),
        config,
        repo_tags,
        parent,
        layers,
    })
}

/// The layers of an image bottom up, each with its DiffID, checked against the image's chain
/// (registered, with the DiffID the config names).
pub(crate) fn stored_layers(
    root: &DataRoot,
    image_id: &str,
    name: &str,
) -> Result<Vec<(String, StoredLayer)>> {
    let parsed = root.image_config(image_id).image_context("image", name)?;
    let diff_ids = &parsed.rootfs.diff_ids;
    let chain_ids = store::chain_ids(diff_ids);
    let mut layers = Vec::with_capacity(diff_ids.len());
    for (diff_id, chain_id) in diff_ids.iter().zip(chain_ids) {
        let found = (|| -> Result<_> {
            let layer = root
                .layer(&chain_id)?
                .ok_or_else(|| Error::inconsistent("not in the data root"))?;
            if layer.diff_id != *diff_id {
                return Err(Error::inconsistent(format!(
                    "its layerdb entry records DiffID {}",
                    layer.diff_id
                )));
            }
            Ok((
                root.tar_split_path(&chain_id)?,
                root.existing_overlay_dir(&layer.cache_id)?.join("diff"),
            ))
        })();
        let (tar_split, diff_dir) =
            found.map_err(|err| saved_layer_error(name, diff_id, &chain_id, err))?;
        layers.push((
            diff_id.clone(),
            StoredLayer {
                chain_id,
                tar_split,
                diff_dir,
            },
        ));
    }
    Ok(layers)
}

/// A registered layer: its tar is the tar-split stream replayed over the files of `diff/`.
pub(crate) struct StoredLayer {
    chain_id: String,
    tar_split: PathBuf,
    diff_dir: PathBuf,
}

impl StoredLayer {
    /// The length of the layer's tar, from its tar-split record (for archive headers written
    /// before the tar).
    fn tar_len(&self) -> Result<u64> {
        store::open_regular(&self.tar_split)
            .map_err(Error::from)
            .and_then(|file| {
                Ok(tar_split::reassembled_len(BufReader::with_capacity(
                    TAR_SPLIT_BUFFER_LEN,
                    file,
                ))?)
            })
            .path_context("reading", &self.tar_split)
    }

    /// `err` as the error of this layer of the image `name`.
    fn error(&self, name: &str, diff_id: &str, err: Error) -> Error {
        saved_layer_error(name, diff_id, &self.chain_id, err)
    }
}

fn saved_layer_error(name: &str, diff_id: &str, chain_id: &str, err: Error) -> Error {
    Error::SavedLayer {
        image: name.to_string(),
        diff_id: diff_id.to_string(),
        chain_id: chain_id.to_string(),
        source: Box::new(err),
    }
}

impl LayerSource for StoredLayer {
    fn write_tar(&mut self, out: &mut dyn Write) -> std::result::Result<(), LayerError> {
        let file = store::open_regular(&self.tar_split).path_context("opening", &self.tar_split)?;
        let dir = rustix::fs::open(
            &self.diff_dir,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::NOFOLLOW
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|errno| Error::io("opening", &self.diff_dir, errno.into()))?;
        tar_split::reassemble(
            BufReader::with_capacity(TAR_SPLIT_BUFFER_LEN, file),
            dir.as_fd(),
            crate::kernel::resolver()?,
            out,
        )
        .path_context("reassembling from", &self.diff_dir)?;
        Ok(())
    }
}
