//! Loading image archives and importing rootfs tarballs into registered layers and images.
//!
//! A load begins the missing layers of an image bottom up (overlay2 dir, `l/` link, `lower` file,
//! write-set), unpacks them several at once (overlay2 layers are independent directories), syncs
//! the filesystem once and commits them bottom up, each one becoming visible only by its layerdb
//! rename. When a step fails, what was begun is dropped and the layers this load committed are
//! removed again, so a failed load leaves the data root as it found it.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::error::{Context, Error, Result};
use image_archive::{Archive, LayerRef, OpenOptions};
use store::{AppliedLayer, DataRoot, Layer, LayerParent, PendingLayer, Reference};

use crate::access::{self, Create};
use crate::config::{self, History, ImageConfig, RootFs};
use crate::{Event, Events};

/// How to load an archive.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Repository (or `name:tag`) for OCI images whose `ref.name` annotation is a bare tag.
    pub name: Option<String>,
    /// Refuse a layer whose uncompressed tar is larger than this.
    pub max_layer_size: Option<u64>,
}

/// Loads every image of the archive at `input` (docker-archive, plain or gzip'd, OCI archive or
/// OCI layout directory), reporting [`Event::LayerExists`], [`Event::LayerProgress`],
/// [`Event::LayerLoaded`] and [`Event::ImageLoaded`]. A failed image leaves the layers it
/// registered removed again.
pub fn load(root_path: &Path, input: &Path, args: &LoadOptions, events: Events<'_>) -> Result<()> {
    let (root, _lock) = access::open_for_change(root_path, Create::Yes, "load images")?;
    let options = OpenOptions {
        name: args.name.clone(),
    };
    let archive =
        Archive::open(input, &root.tmp_dir(), &options).path_context("reading archive", input)?;
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
        // The chain bottom up: layers already stored are reused; the first missing one and every
        // layer above it are begun (overlay2 dir, link, lower file, write-set) in order.
        let mut parent: Option<LayerParent> = None;
        let mut work: Vec<LayerWork> = Vec::new();
        for layer_ref in &image.layers {
            let chain_id = store::chain_id(
                parent.as_ref().map(|p| p.chain_id.as_str()),
                &layer_ref.diff_id,
            );
            if work.is_empty() {
                if let Some(existing) = root.layer(&chain_id)? {
                    progress.emit(Event::LayerExists {
                        diff_id: layer_ref.diff_id.clone(),
                    })?;
                    parent = Some(LayerParent::from(&existing));
                    continue;
                }
            }
            let pending = root
                .begin_layer(parent.as_ref())
                .layer_context("loading layer", &layer_ref.member)?;
            parent = Some(LayerParent {
                chain_id,
                cache_id: pending.cache_id().to_string(),
            });
            work.push(LayerWork {
                layer_ref,
                pending,
                tar_bytes: 0,
            });
        }
        // Overlay2 layers are independent directories: they are unpacked at once.
        apply_layers(&archive, &mut work, &progress, args.max_layer_size)?;
        // One syncfs for all of them, then each becomes visible bottom up.
        if !work.is_empty() {
            root.sync_filesystem()
                .context("syncing the loaded layers to disk")?;
        }
        let n_layers = work.len();
        for item in work {
            let layer = item
                .pending
                .commit_synced_batch()
                .layer_context("loading layer", &item.layer_ref.member)?;
            registered.push(&layer);
            progress.emit(Event::LayerLoaded {
                label: item.layer_ref.member.clone(),
                tar_bytes: item.tar_bytes,
            })?;
        }
        if n_layers > 0 {
            root.sync_layerdb()
                .context("syncing the layer database directory")?;
        }
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
            let (applied, n_bytes) = apply_layer(
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
    let image_id = root.put_image(&config)?;
    registered.keep();
    if let Some(reference) = reference {
        root.add_reference(&reference, &image_id)?;
        root.set_last_updated(&image_id)?;
    }
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

/// One layer of a load between `begin_layer` and `commit`.
struct LayerWork<'a, 'r> {
    layer_ref: &'a LayerRef,
    pending: PendingLayer<'r>,
    tar_bytes: u64,
}

/// How many layers a load unpacks at once: `OVL_LOAD_JOBS`, or one per CPU up to four (each
/// layer also has its own writer threads, see layer-unpack).
fn layer_jobs() -> usize {
    if let Some(jobs) = std::env::var("OVL_LOAD_JOBS")
        .ok()
        .and_then(|text| text.parse::<usize>().ok())
    {
        return jobs.max(1);
    }
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4)
}

/// Applies every pending layer, several at once. On failure, the error reported is that of the
/// lowest failing layer in the chain, as a one-by-one load would report it: layers above a
/// failure are not started, layers below it still run to the end.
fn apply_layers(
    archive: &Archive,
    work: &mut [LayerWork<'_, '_>],
    progress: &Progress,
    max_layer_size: Option<u64>,
) -> Result<()> {
    let jobs = layer_jobs().min(work.len());
    if jobs <= 1 {
        for item in work.iter_mut() {
            apply_one(archive, item, progress, max_layer_size)?;
        }
        return Ok(());
    }
    let next = AtomicUsize::new(0);
    let lowest_failure = AtomicUsize::new(usize::MAX);
    let slots: Vec<Mutex<&mut LayerWork<'_, '_>>> = work.iter_mut().map(Mutex::new).collect();
    let errors: Mutex<Vec<(usize, Error)>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                if index >= slots.len() || index > lowest_failure.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut item) = slots[index].lock() else {
                    break;
                };
                if let Err(err) = apply_one(archive, &mut item, progress, max_layer_size) {
                    lowest_failure.fetch_min(index, Ordering::SeqCst);
                    if let Ok(mut errors) = errors.lock() {
                        errors.push((index, err));
                    }
                }
            });
        }
    });
    let mut errors = errors.into_inner().map_err(|_| Error::WorkerPanicked)?;
    errors.sort_by_key(|(index, _)| *index);
    match errors.into_iter().next() {
        Some((_, err)) => Err(err),
        None => Ok(()),
    }
}

/// Opens one layer's blob, applies it into its pending layer and checks its DiffID.
fn apply_one(
    archive: &Archive,
    item: &mut LayerWork<'_, '_>,
    progress: &Progress,
    max_layer_size: Option<u64>,
) -> Result<()> {
    let layer_ref = item.layer_ref;
    let mut blob = Some(
        archive
            .open_layer(layer_ref)
            .layer_context("opening layer", &layer_ref.member)?,
    );
    let label = layer_ref.member.as_str();
    let expected = layer_ref.diff_id.as_str();
    let mut tar_bytes = 0;
    item.pending
        .apply(&mut |diff_dir, tar_split| {
            let mut reader = blob.take().ok_or("layer blob consumed twice")?;
            let (applied, n_bytes) = apply_layer(
                &mut reader,
                diff_dir,
                tar_split,
                progress,
                label,
                max_layer_size,
            )?;
            reader.finish()?;
            if applied.diff_id != expected {
                return Err(format!(
                    "layer {label}: DiffID mismatch: the image config names {expected}, the layer content is {}",
                    applied.diff_id
                )
                .into());
            }
            tar_bytes = n_bytes;
            Ok(applied)
        })
        .layer_context("loading layer", &layer_ref.member)?;
    item.tar_bytes = tar_bytes;
    Ok(())
}

/// Decompresses (by magic), unpacks, records tar-split and measures one layer: the body of every
/// `apply` call. Returns the layer and the length of its uncompressed tar.
fn apply_layer(
    raw: &mut (dyn Read + Send),
    diff_dir: &Path,
    tar_split: &mut dyn Write,
    progress: &Progress,
    label: &str,
    max_len: Option<u64>,
) -> Result<(AppliedLayer, u64), store::ApplyError> {
    let counted = CountingReader {
        inner: raw,
        n_bytes: 0,
        progress,
        label,
    };
    let (_compression, tar) =
        layer_unpack::decompress(BufReader::with_capacity(256 * 1024, counted))?;
    let tar = SizeLimit {
        inner: tar,
        n_bytes: 0,
        max_len: max_len.unwrap_or(u64::MAX),
    };
    let mut packer = tar_split::Packer::new(tar_split);
    // The limit also holds for the real sizes sparse files declare, checked before each is made.
    let options = layer_unpack::UnpackOptions {
        max_layer_size: max_len,
        ..crate::kernel::unpack_options()?
    };
    let report = layer_unpack::unpack(tar, diff_dir, &mut packer, &options)?;
    packer.finish()?;
    let size = layer_unpack::diff_size(diff_dir)?;
    Ok((
        AppliedLayer {
            diff_id: report.diff_id,
            size,
        },
        report.tar_bytes,
    ))
}

/// Fails the read that takes the uncompressed stream past `max_len` bytes.
pub(crate) struct SizeLimit<R> {
    pub(crate) inner: R,
    pub(crate) n_bytes: u64,
    pub(crate) max_len: u64,
}

impl<R: Read> Read for SizeLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n_read = self.inner.read(buf)?;
        self.n_bytes += n_read as u64;
        if self.n_bytes > self.max_len {
            return Err(std::io::Error::other(format!(
                "the uncompressed layer is larger than the limit of {} bytes (--max-layer-size)",
                self.max_len
            )));
        }
        Ok(n_read)
    }
}

/// Layers registered by one image of a load, removed again unless the image is stored.
struct Registered<'a> {
    root: &'a DataRoot,
    chain_ids: Vec<String>,
}

impl<'a> Registered<'a> {
    fn new(root: &'a DataRoot) -> Self {
        Registered {
            root,
            chain_ids: Vec::new(),
        }
    }
    fn push(&mut self, layer: &Layer) {
        self.chain_ids.push(layer.chain_id.clone());
    }
    fn keep(&mut self) {
        self.chain_ids.clear();
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        for chain_id in self.chain_ids.iter().rev() {
            if let Err(err) = self.root.remove_layer(chain_id) {
                tracing::error!(%chain_id, error = %err, "removing a layer of a failed load");
            }
        }
    }
}

/// The caller's event callback, shared by the threads that apply layers.
struct Progress<'a> {
    events: Mutex<Events<'a>>,
}

impl<'a> Progress<'a> {
    fn new(events: Events<'a>) -> Progress<'a> {
        Progress {
            events: Mutex::new(events),
        }
    }

    /// Reports an event of the calling thread; the callback's error is returned.
    fn emit(&self, event: Event) -> Result<()> {
        let mut events = self.events.lock().map_err(|_| Error::WorkerPanicked)?;
        Ok((*events)(event)?)
    }

    /// Reports a layer's progress from any thread; the callback's error is ignored.
    fn update(&self, label: &str, n_bytes: u64) {
        let _ = self.emit(Event::LayerProgress {
            label: label.to_string(),
            n_bytes,
        });
    }
}

struct CountingReader<'a, 'e> {
    inner: &'a mut (dyn Read + Send),
    n_bytes: u64,
    progress: &'a Progress<'e>,
    label: &'a str,
}

impl Read for CountingReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let before = self.n_bytes >> 22;
        self.n_bytes += n as u64;
        if self.n_bytes >> 22 != before {
            self.progress.update(self.label, self.n_bytes);
        }
        Ok(n)
    }
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

    #[test]
    fn the_limit_fails_the_read_past_it() {
        let mut limited = SizeLimit {
            inner: &[7u8; 10][..],
            n_bytes: 0,
            max_len: 6,
        };
        let mut buf = [0u8; 4];
        assert_eq!(limited.read(&mut buf).ok(), Some(4));
        assert!(limited.read(&mut buf).is_err());
    }
}
