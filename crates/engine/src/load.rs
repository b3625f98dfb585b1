//! Loading image archives and importing rootfs tarballs into registered layers and images.
//!
//! A load begins the missing layers of an image bottom up (overlay2 dir, `l/` link, `lower` file,
//! write-set), unpacks them several at once (overlay2 layers are independent directories), syncs
//! the filesystem once and commits them bottom up, each one becoming visible only by its layerdb
//! rename. When a step fails, what was begun is dropped and the layers this load committed are
//! removed again, so a failed load leaves the data root as it found it.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use crate::error::{Context, Error, Result};
use image_archive::{Archive, OpenOptions};
use store::Reference;

use crate::access::{self, Create};
use crate::config::{self, History, ImageConfig, RootFs};
use crate::layers::{self, LayerBlob, Progress, Registered};
use crate::{Event, Events};

/// How to load an archive.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Repository (or `name:tag`) for OCI images whose `ref.name` annotation is a bare tag.
    pub name: Option<String>,
    /// Refuse a layer whose uncompressed tar is larger than this.
    pub max_layer_size: Option<u64>,
}

/// Where a load reads its archive.
pub enum LoadInput<'a> {
    /// A file or an OCI layout directory.
    Path(&'a Path),
    /// A stream that cannot seek (a pipe, `docker save app | ovl load`). It is copied into a
    /// file in the data root's `tmp/` first, removed when the load ends: an archive's index
    /// (`manifest.json`, `index.json`) may come last, after the layers it describes.
    Stream(&'a mut dyn Read),
}

impl std::fmt::Debug for LoadInput<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadInput::Path(path) => f.debug_tuple("Path").field(path).finish(),
            LoadInput::Stream(_) => f.write_str("Stream"),
        }
    }
}

/// Loads every image of the archive `input` (docker-archive, plain or gzip'd, OCI archive or
/// OCI layout directory), reporting [`Event::LayerExists`], [`Event::LayerProgress`],
/// [`Event::LayerLoaded`] and [`Event::ImageLoaded`]. A failed image leaves the layers it
/// registered removed again.
pub fn load(
    root_path: &Path,
    input: LoadInput<'_>,
    args: &LoadOptions,
    events: Events<'_>,
) -> Result<()> {
    let (root, _lock) = access::open_for_change(root_path, Create::Yes, "load images")?;
    let options = OpenOptions {
        name: args.name.clone(),
    };
    let archive = match input {
        LoadInput::Path(path) => {
            Archive::open(path, &root.tmp_dir(), &options).path_context("reading archive", path)?
        }
        LoadInput::Stream(reader) => {
            let spooled = spool(&root, reader)?;
            // The archive keeps its own descriptor of the spool file, which is unlinked now.
            Archive::open(spooled.path(), &root.tmp_dir(), &options)
                .context("reading the archive from stdin")?
        }
    };
    // Every name is checked before any layer is written: a name Docker would refuse (such as
    // `sha256:<hex>`, which would shadow an image id) leaves nothing behind.
    for image in archive.images() {
        for name in &image.names {
            Reference::parse(name).image_context("image name", name)?;
        }
    }
    let progress = Progress::new(events);
    for image in archive.images() {
        let mut registered = Registered::new(&root);
        let chain: Vec<(String, String)> = image
            .layers
            .iter()
            .map(|layer| (layer.member.clone(), layer.diff_id.clone()))
            .collect();
        let (mut work, _chain_ids) =
            layers::begin_chain(&root, &chain, &progress, &mut |_, diff_id| {
                Event::LayerExists {
                    diff_id: diff_id.to_string(),
                }
            })?;
        // Overlay2 layers are independent directories: they are unpacked at once.
        let open = |index: usize| -> Result<Box<dyn LayerBlob + '_>> {
            let blob = archive
                .open_layer(&image.layers[index])
                .layer_context("opening layer", &image.layers[index].member)?;
            Ok(Box::new(blob))
        };
        layers::apply_layers(
            &root,
            &mut work,
            &open,
            &progress,
            args.max_layer_size,
            layers::layer_jobs(),
        )?;
        layers::commit_chain(&root, work, &mut registered, &progress, &mut |item| {
            Event::LayerLoaded {
                label: item.label.clone(),
                tar_bytes: item.tar_bytes,
            }
        })?;
        crate::interrupt::check()?;
        let image_id = root
            .put_image(&image.config)
            .context("storing image config")?;
        if image_id != image.image_id {
            return Err(Error::inconsistent(format!(
                "image config stored as {image_id} but the archive names {}",
                image.image_id
            )));
        }
        registered.keep();
        if image.names.is_empty() {
            progress.emit(Event::ImageLoaded {
                image_id: image_id.clone(),
                name: None,
            })?;
        }
        for name in &image.names {
            let reference = Reference::parse(name).image_context("image name", name)?;
            root.add_reference(&reference, &image_id)?;
            progress.emit(Event::ImageLoaded {
                image_id: image_id.clone(),
                name: Some(reference.familiar()),
            })?;
        }
    }
    Ok(())
}

/// Copies a stream into a new file in the root's `tmp/`, removed on drop.
fn spool(root: &store::DataRoot, reader: &mut dyn Read) -> Result<tempfile::NamedTempFile> {
    let tmp_dir = root.create_tmp_dir()?;
    let mut file = tempfile::Builder::new()
        .prefix("stdin-")
        .tempfile_in(&tmp_dir)
        .map_err(|source| Error::io("creating a file in", &tmp_dir, source))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file.as_file_mut());
    let n_bytes = std::io::copy(reader, &mut out)
        .and_then(|n_bytes| out.flush().map(|()| n_bytes))
        .map_err(|source| Error::io("reading the archive from", "stdin", source))?;
    drop(out);
    if n_bytes == 0 {
        return Err(Error::invalid(
            "requested load from stdin, but stdin is empty",
        ));
    }
    Ok(file)
}

/// What `import` makes of a rootfs tarball.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The `name[:tag]` to give the image.
    pub reference: Option<String>,
    /// Commit message recorded in the image history.
    pub message: Option<String>,
    /// Refuse a tarball whose uncompressed size is larger than this.
    pub max_layer_size: Option<u64>,
}

/// Creates a one-layer image from the rootfs tarball `file` (plain, gzip or zstd), like
/// `docker import`, reporting [`Event::LayerProgress`] and [`Event::LayerLoaded`]; returns the
/// image id.
pub fn import(
    root_path: &Path,
    file_path: &Path,
    args: &ImportOptions,
    events: Events<'_>,
) -> Result<String> {
    let reference = args
        .reference
        .as_deref()
        .map(Reference::parse)
        .transpose()
        .context("image name")?;
    let (root, _lock) = access::open_for_change(root_path, Create::Yes, "import an image")?;
    let file = File::open(file_path).map_err(|source| Error::io("opening", file_path, source))?;
    let progress = Progress::new(events);
    let label = file_path.display().to_string();
    let mut input = Some(file);
    let mut tar_bytes = 0;
    let layer = root
        .register_layer(None, &mut |diff_dir, tar_split| {
            let mut file = input.take().ok_or("input consumed twice")?;
            let (applied, n_bytes) = layers::apply_layer(
                &mut file,
                diff_dir,
                tar_split,
                &progress,
                &label,
                args.max_layer_size,
            )?;
            tar_bytes = n_bytes;
            Ok(applied)
        })
        .path_context("importing", file_path)?;
    let mut registered = Registered::new(&root);
    registered.push(&layer);
    progress.emit(Event::LayerLoaded { label, tar_bytes })?;
    let created = store::now_rfc3339_nano();
    let comment = args
        .message
        .clone()
        .unwrap_or_else(|| "Imported from -".to_string());
    let config = import_config(&layer.diff_id, &created, &comment)?;
    let image_id = root.publish_image(&config, None, reference.as_ref())?;
    registered.keep();
    Ok(image_id)
}

/// The config Docker 20.10's `docker import` writes (image.Image marshalled with sorted top-level
/// keys, a zero `container.Config` for both config fields), with ovl's own version string.
fn import_config(diff_id: &str, created: &str, comment: &str) -> Result<Vec<u8>> {
    let config = ImageConfig {
        architecture: config::host_architecture(),
        comment: Some(comment.to_string()),
        created: created.to_string(),
        docker_version: config::DOCKER_VERSION.to_string(),
        history: vec![serde_json::to_value(History {
            created: created.to_string(),
            comment: Some(comment.to_string()),
            ..History::default()
        })?],
        os: "linux".to_string(),
        rootfs: RootFs {
            kind: "layers".to_string(),
            diff_ids: vec![diff_id.to_string()],
        },
        ..ImageConfig::default()
    };
    Ok(store::go_json(&config)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of the config `docker import` writes, as ovl wrote them from a JSON literal.
    #[test]
    fn import_config_has_dockers_keys_and_zero_container_configs() {
        let bytes =
            import_config("sha256:abc", "2026-01-01T00:00:00Z", "Imported from -").expect("config");
        let zero = concat!(
            r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"#,
            r#""AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"#,
            r#""StdinOnce":false,"Env":null,"Cmd":null,"Image":"","Volumes":null,"#,
            r#""WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null}"#
        );
        let expected = format!(
            concat!(
                r#"{{"architecture":"{}","comment":"Imported from -","config":{},"#,
                r#""container_config":{},"created":"2026-01-01T00:00:00Z","#,
                r#""docker_version":"{}","history":[{{"created":"2026-01-01T00:00:00Z","#,
                r#""comment":"Imported from -"}}],"os":"linux","#,
                r#""rootfs":{{"type":"layers","diff_ids":["sha256:abc"]}}}}"#
            ),
            config::host_architecture(),
            zero,
            zero,
            config::DOCKER_VERSION
        );
        assert_eq!(String::from_utf8_lossy(&bytes), expected);
    }
}
