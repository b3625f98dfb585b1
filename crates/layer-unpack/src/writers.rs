//! Writer threads for the data and metadata of small regular files.
//!
//! Creating a file is a change of the layer's namespace and stays on the thread that reads the
//! archive, in archive order. What follows the creation only concerns the new inode: its data,
//! owner, xattrs, mode and times. That part is handed to a few writer threads together with the
//! open descriptor, so that on a machine with more than one core the kernel work of many small
//! files runs side by side. Writers never resolve a path: they only see descriptors the reading
//! thread opened with `O_CREAT | O_EXCL | O_NOFOLLOW`.
//!
//! Files go to the writers in batches, so that the reading thread does not wake a writer for
//! every small file.
//!
//! Ordering: a member that depends on a file's final metadata (a hardlink to it, which Docker
//! changes through the shared inode) waits for every handed-off file first ([`Writers::barrier`]);
//! so does the end of the archive. Removing or replacing a path while its inode is still being
//! written is harmless: the writer finishes an inode that is no longer linked.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use crate::apply::{finish_file, ApplyError};
use crate::plan::Metadata;

/// Files up to this size are handed to the writers with their data; larger ones are written by
/// the reading thread (their write is long enough not to need company).
pub(crate) const HANDOFF_MAX_LEN: usize = 256 * 1024;

/// A batch is sent once it holds this many files...
const BATCH_FILES: usize = 16;
/// ...or this much data. With [`HANDOFF_MAX_LEN`], a batch holds less than 1.25 MiB.
const BATCH_BYTES: usize = 1024 * 1024;

/// Batches waiting in the queue. Every queued file holds an open descriptor: with one batch
/// being filled and one per writer being written, a layer holds at most
/// `(QUEUE_LEN + 1 + writers) * BATCH_FILES` (112 with two writers), and a load unpacks up to
/// four layers at once within the usual limit of 1024 descriptors. The buffered data stays
/// under 7 MiB.
const QUEUE_LEN: usize = 4;

/// One file to finish: its descriptor, data and metadata, and its name for errors.
pub(crate) struct FileJob {
    pub file: OwnedFd,
    pub data: Vec<u8>,
    pub meta: Metadata,
    pub entry: Vec<u8>,
}

/// The first failure of a writer, with the member it concerned.
pub(crate) type WriterFailure = (Vec<u8>, ApplyError);

struct Shared {
    /// Jobs sent and not yet finished.
    in_flight: Mutex<usize>,
    idle: Condvar,
    failure: Mutex<Option<WriterFailure>>,
}

pub(crate) struct Writers {
    sender: Option<SyncSender<Vec<FileJob>>>,
    /// Files not sent yet, and the length of their data.
    batch: Vec<FileJob>,
    batch_bytes: usize,
    threads: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Writers {
    /// Starts `n_threads` writers (at least one).
    pub fn start(n_threads: usize) -> std::io::Result<Writers> {
        let (sender, receiver) = sync_channel::<Vec<FileJob>>(QUEUE_LEN);
        let receiver = Arc::new(Mutex::new(receiver));
        let shared = Arc::new(Shared {
            in_flight: Mutex::new(0),
            idle: Condvar::new(),
            failure: Mutex::new(None),
        });
        let mut threads = Vec::new();
        for idx in 0..n_threads.max(1) {
            let receiver = Arc::clone(&receiver);
            let shared = Arc::clone(&shared);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("layer-writer-{idx}"))
                    .spawn(move || work(&receiver, &shared))?,
            );
        }
        Ok(Writers {
            sender: Some(sender),
            batch: Vec::with_capacity(BATCH_FILES),
            batch_bytes: 0,
            threads,
            shared,
        })
    }

    /// Queues a file; fails with an earlier writer's failure instead, if there was one.
    pub fn submit(&mut self, job: FileJob) -> Result<(), WriterFailure> {
        self.check()?;
        self.batch_bytes += job.data.len();
        self.batch.push(job);
        if self.batch.len() >= BATCH_FILES || self.batch_bytes >= BATCH_BYTES {
            self.send_batch()?;
        }
        Ok(())
    }

    /// Sends the files queued so far to the writers.
    fn send_batch(&mut self) -> Result<(), WriterFailure> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_FILES));
        self.batch_bytes = 0;
        let n_jobs = batch.len();
        // A batch that cannot be handed over is reported by its first file.
        let Some(sender) = &self.sender else {
            return Err((first_entry(batch), stopped()));
        };
        *lock(&self.shared.in_flight) += n_jobs;
        if let Err(returned) = sender.send(batch) {
            let mut in_flight = lock(&self.shared.in_flight);
            *in_flight = in_flight.saturating_sub(n_jobs);
            return Err((first_entry(returned.0), stopped()));
        }
        Ok(())
    }

    /// Waits until every queued file is finished; reports the first failure.
    pub fn barrier(&mut self) -> Result<(), WriterFailure> {
        self.send_batch()?;
        let mut in_flight = lock(&self.shared.in_flight);
        while *in_flight > 0 {
            in_flight = self
                .shared
                .idle
                .wait(in_flight)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        drop(in_flight);
        self.check()
    }

    /// Finishes every queued file and stops the threads; reports the first failure.
    pub fn finish(mut self) -> Result<(), WriterFailure> {
        self.send_batch()?;
        self.stop();
        self.check()
    }

    fn check(&self) -> Result<(), WriterFailure> {
        match lock(&self.shared.failure).take() {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }

    fn stop(&mut self) {
        self.sender = None;
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Writers {
    /// An unpack that failed still waits for its writers: nothing writes into the layer directory
    /// after `unpack` returned. The files of the batch being filled are finished too: what the
    /// archive wrote before a failure is the same as without writer threads.
    fn drop(&mut self) {
        let _ = self.send_batch();
        self.stop();
    }
}

fn work(receiver: &Mutex<Receiver<Vec<FileJob>>>, shared: &Shared) {
    loop {
        // The lock is held only while taking one batch.
        let batch = match lock(receiver).recv() {
            Ok(batch) => batch,
            Err(_) => return,
        };
        let n_jobs = batch.len();
        for job in batch {
            let mut file = File::from(job.file);
            let result = file
                .write_all(&job.data)
                .map_err(|source| ApplyError {
                    operation: "write file data",
                    source,
                })
                .and_then(|()| finish_file(file.as_fd(), &job.meta));
            drop(file);
            if let Err(error) = result {
                let mut failure = lock(&shared.failure);
                if failure.is_none() {
                    *failure = Some((job.entry, error));
                }
            }
        }
        let mut in_flight = lock(&shared.in_flight);
        *in_flight = in_flight.saturating_sub(n_jobs);
        if *in_flight == 0 {
            shared.idle.notify_all();
        }
    }
}

fn first_entry(batch: Vec<FileJob>) -> Vec<u8> {
    batch
        .into_iter()
        .next()
        .map(|job| job.entry)
        .unwrap_or_default()
}

fn stopped() -> ApplyError {
    ApplyError {
        operation: "hand the file to a writer thread",
        source: std::io::Error::other("the writer threads stopped"),
    }
}

/// A poisoned lock only means a writer panicked; the data it guards is still consistent.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
