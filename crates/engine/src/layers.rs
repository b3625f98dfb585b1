//! The layer machinery every image source shares (archives, registries): begin the missing
//! layers of a chain bottom up, unpack them several at once from their blobs, check each DiffID,
//! commit them bottom up, and remove them again when the image is not stored.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use store::{AppliedLayer, DataRoot, Layer, LayerParent, PendingLayer};

use crate::error::{Context, Error, Result};
use crate::{Event, Events};

/// A layer's blob as its source streams it: compressed or not (detected by magic), with
/// whatever check the source makes at its end (a digest) in `finish`.
pub(crate) trait LayerBlob: Read + Send {
    /// Reads what is left and makes the source's final check.
    fn finish(self: Box<Self>) -> std::result::Result<(), store::ApplyError>;
}

impl LayerBlob for image_archive::BlobReader {
    fn finish(self: Box<Self>) -> std::result::Result<(), store::ApplyError> {
        Ok(image_archive::BlobReader::finish(*self)?)
    }
}

/// One layer of an image being stored, between `begin_layer` and `commit`.
pub(crate) struct LayerWork<'r> {
    /// Index of the layer in the image (0 = bottom).
    pub(crate) index: usize,
    /// How errors and progress name the layer (archive member, blob digest).
    pub(crate) label: String,
    /// The DiffID the image config names for it.
    pub(crate) diff_id: String,
    pub(crate) pending: PendingLayer<'r>,
    pub(crate) tar_bytes: u64,
}

/// The chain of an image bottom up: the layers the root has already are reused (reported as
/// [`Event::LayerExists`] with their index), the first missing one and every layer above it are
/// begun. Returns the work and the ChainIDs of the whole chain.
pub(crate) fn begin_chain<'r>(
    root: &'r DataRoot,
    layers: &[(String, String)],
    progress: &Progress<'_>,
    on_exists: &mut dyn FnMut(usize, &str) -> Event,
) -> Result<(Vec<LayerWork<'r>>, Vec<String>)> {
    let mut parent: Option<LayerParent> = None;
    let mut work: Vec<LayerWork<'r>> = Vec::new();
    let mut chain_ids = Vec::with_capacity(layers.len());
    for (index, (label, diff_id)) in layers.iter().enumerate() {
        let chain_id = store::chain_id(parent.as_ref().map(|p| p.chain_id.as_str()), diff_id);
        chain_ids.push(chain_id.clone());
        if work.is_empty() {
            if let Some(existing) = root.layer(&chain_id)? {
                progress.emit(on_exists(index, diff_id))?;
                parent = Some(LayerParent::from(&existing));
                continue;
            }
        }
        let pending = root
            .begin_layer(parent.as_ref())
            .layer_context("loading layer", label)?;
        parent = Some(LayerParent {
            chain_id,
            cache_id: pending.cache_id().to_string(),
        });
        work.push(LayerWork {
            index,
            label: label.clone(),
            diff_id: diff_id.clone(),
            pending,
            tar_bytes: 0,
        });
    }
    Ok((work, chain_ids))
}

/// Syncs the unpacked layers once and commits them bottom up, each becoming visible by its
/// layerdb rename; `on_loaded` makes the event of each.
pub(crate) fn commit_chain(
    root: &DataRoot,
    work: Vec<LayerWork<'_>>,
    registered: &mut Registered<'_>,
    progress: &Progress<'_>,
    on_loaded: &mut dyn FnMut(&LayerWork<'_>) -> Event,
) -> Result<()> {
    if work.is_empty() {
        return Ok(());
    }
    crate::interrupt::check()?;
    root.sync_filesystem()
        .context("syncing the loaded layers to disk")?;
    for item in work {
        crate::interrupt::check()?;
        let event = on_loaded(&item);
        let layer = item
            .pending
            .commit_synced_batch()
            .layer_context("loading layer", &item.label)?;
        registered.push(&layer);
        progress.emit(event)?;
    }
    root.sync_layerdb()
        .context("syncing the layer database directory")?;
    Ok(())
}

/// How many layers are unpacked at once: `OVL_LOAD_JOBS`, or one per CPU up to four (each
/// layer also has its own writer threads, see layer-unpack), and one per 64 descriptors the
/// process may open (each holds its blob, its parent directories and its writers' files open:
/// under a soft `RLIMIT_NOFILE` of 32, two layers at once failed with `EMFILE` where one at a
/// time loads).
pub(crate) fn layer_jobs() -> usize {
    if let Some(jobs) = std::env::var("OVL_LOAD_JOBS")
        .ok()
        .and_then(|text| text.parse::<usize>().ok())
    {
        return jobs.max(1);
    }
    within_descriptor_limit(
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 4),
    )
}

/// `jobs` layers at once, or fewer under a low `RLIMIT_NOFILE`: one per 64 descriptors the
/// process may open, at least one.
pub(crate) fn within_descriptor_limit(jobs: usize) -> usize {
    let by_descriptors = usize::try_from(syscompat::descriptor_limit() / 64).unwrap_or(usize::MAX);
    jobs.min(by_descriptors).max(1)
}

/// The opener of a layer's blob, by the layer's index in the image.
pub(crate) type OpenBlob<'s> = dyn Fn(usize) -> Result<Box<dyn LayerBlob + 's>> + Sync + 's;

/// Applies every pending layer, `jobs` at once (see [`run_at_once`]), while the data root's
/// filesystem writes back what they wrote so far (see [`with_early_writeback`]).
pub(crate) fn apply_layers(
    root: &DataRoot,
    work: &mut [LayerWork<'_>],
    open: &OpenBlob<'_>,
    progress: &Progress<'_>,
    max_layer_size: Option<u64>,
    jobs: usize,
) -> Result<()> {
    with_early_writeback(root, LOAD_WRITEBACK_INTERVAL, || {
        run_at_once(work, jobs, &|item| {
            apply_one(item, open, progress, max_layer_size)
        })
    })
}

/// How often [`with_early_writeback`] flushes while a load unpacks. Every 100 ms instead of
/// every 500 ms took a load of `debian` from an OCI layout with zstd from 0.741 s to 0.650 s and
/// from a docker-archive with gzip from 0.749 s to 0.688 s (medians of four and five loads, the
/// bench's way), with `smallfiles` (5.7 s), `deep` (0.12 s) and `big` (one 500 MiB layer) the
/// same within their spread; every 50 ms was no better than 100 ms.
const LOAD_WRITEBACK_INTERVAL: Duration = Duration::from_millis(100);

/// Runs `run` while a thread flushes the data root's filesystem (`syncfs`) every `interval`:
/// the disk writes what `run` wrote so far (a load's or a copying commit's files, a moving
/// commit's settled inodes) while the CPU still works, and the one `syncfs` before the layers
/// are committed ([`commit_chain`], `PendingLayer::commit`) only waits for what came last.
/// That final `syncfs` is still what makes them durable: an early one's error is ignored here,
/// as the final one reports it.
///
/// The thread is told to stop when `run` returns but not waited for: a flush in progress then
/// ends on its own, beside the caller's final one. Waiting for it cost 0.5 s of a 1.2 s load of
/// one 500 MiB layer: a `syncfs` that starts while the files are still being written keeps
/// waiting for writeback started after it, where one that starts after the last write waits
/// only for what is dirty (0.7 s in all without the wait, as without any early flush).
pub(crate) fn with_early_writeback<T>(
    root: &DataRoot,
    interval: Duration,
    run: impl FnOnce() -> T,
) -> T {
    let home = root.overlay_home();
    let Ok(dir) = File::open(&home) else {
        return run();
    };
    let done = Arc::new((Mutex::new(false), Condvar::new()));
    let flag = Arc::clone(&done);
    let spawned = std::thread::Builder::new()
        .name("early-writeback".into())
        .spawn(move || {
            let (lock, wake) = &*flag;
            let Ok(mut finished) = lock.lock() else {
                return;
            };
            loop {
                match wake.wait_timeout(finished, interval) {
                    Ok((guard, _)) => finished = guard,
                    Err(_) => return,
                }
                if *finished {
                    return;
                }
                drop(finished);
                let _ = rustix::fs::syncfs(&dir);
                finished = match lock.lock() {
                    Ok(guard) => guard,
                    Err(_) => return,
                };
            }
        });
    let result = run();
    if let Ok(mut finished) = done.0.lock() {
        *finished = true;
    }
    done.1.notify_all();
    // Not joined (see above); a thread that could not be started flushed nothing.
    drop(spawned);
    result
}

/// Runs `run` on every item, `jobs` at once, in order of index. On failure the error returned is
/// that of the lowest failing item, as a one-by-one run would report it: items above a failure
/// are not started, items below it still run to the end.
pub(crate) fn run_at_once<T: Send>(
    items: &mut [T],
    jobs: usize,
    run: &(dyn Fn(&mut T) -> Result<()> + Sync),
) -> Result<()> {
    let jobs = jobs.min(items.len());
    if jobs <= 1 {
        return items.iter_mut().try_for_each(run);
    }
    let next = AtomicUsize::new(0);
    let lowest_failure = AtomicUsize::new(usize::MAX);
    let slots: Vec<Mutex<&mut T>> = items.iter_mut().map(Mutex::new).collect();
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
                if let Err(err) = run(&mut item) {
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
    item: &mut LayerWork<'_>,
    open: &OpenBlob<'_>,
    progress: &Progress<'_>,
    max_layer_size: Option<u64>,
) -> Result<()> {
    let mut blob = Some(open(item.index).layer_context("opening layer", &item.label)?);
    let label = item.label.as_str();
    let expected = item.diff_id.as_str();
    let mut tar_bytes = 0;
    item.pending
        .apply(&mut |diff_dir, tar_split| {
            let mut reader = blob.take().ok_or("layer blob consumed twice")?;
            let applied = apply_layer(
                &mut reader,
                diff_dir,
                tar_split,
                progress,
                label,
                max_layer_size,
            );
            let (applied, n_bytes) = match applied {
                Ok(applied) => applied,
                // A blob that is not what its digest says explains any failure to read it (a
                // corrupt gzip stream, a truncated tar): the source's own check names it.
                Err(err) if crate::interrupt::interrupted() => return Err(err),
                Err(err) => {
                    reader.finish()?;
                    return Err(err);
                }
            };
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
        .layer_context("loading layer", label)?;
    item.tar_bytes = tar_bytes;
    Ok(())
}

/// Decompresses (by magic), unpacks, records tar-split and measures one layer: the body of every
/// `apply` call. Returns the layer and the length of its uncompressed tar.
pub(crate) fn apply_layer(
    raw: &mut (dyn Read + Send),
    diff_dir: &Path,
    tar_split: &mut dyn Write,
    progress: &Progress<'_>,
    label: &str,
    max_len: Option<u64>,
) -> std::result::Result<(AppliedLayer, u64), store::ApplyError> {
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
    Ok((
        AppliedLayer {
            diff_id: report.diff_id,
            size: report.size,
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

/// Layers registered for one image, removed again unless the image is stored.
pub(crate) struct Registered<'a> {
    root: &'a DataRoot,
    chain_ids: Vec<String>,
}

impl<'a> Registered<'a> {
    pub(crate) fn new(root: &'a DataRoot) -> Self {
        Registered {
            root,
            chain_ids: Vec::new(),
        }
    }
    pub(crate) fn push(&mut self, layer: &Layer) {
        self.chain_ids.push(layer.chain_id.clone());
    }
    pub(crate) fn keep(&mut self) {
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
pub(crate) struct Progress<'a> {
    events: Mutex<Events<'a>>,
}

impl<'a> Progress<'a> {
    pub(crate) fn new(events: Events<'a>) -> Progress<'a> {
        Progress {
            events: Mutex::new(events),
        }
    }

    /// Reports an event of the calling thread; the callback's error is returned.
    pub(crate) fn emit(&self, event: Event) -> Result<()> {
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
        if crate::interrupt::interrupted() {
            // Not `ErrorKind::Interrupted`, which readers retry.
            return Err(std::io::Error::other(Error::Interrupted));
        }
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
