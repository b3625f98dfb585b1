//! Writer threads for the data and metadata of small regular files.
//!
//! Creating a file is a change of the layer's namespace and stays on the thread that reads the
//! archive, in archive order. What follows the creation only concerns the new inode: its data,
//! owner, xattrs, mode and times. That part is handed to a few writer threads together with the
//! open descriptor, so that on a machine with more than one core the kernel work of many small
//! files runs side by side. Writers never resolve a path: they only see descriptors the reading
//! thread opened with `O_CREAT | O_EXCL | O_NOFOLLOW`.
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

/// Jobs waiting in the queue: with [`HANDOFF_MAX_LEN`] this bounds the buffered data to 16 MiB.
const QUEUE_LEN: usize = 64;

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
    sender: Option<SyncSender<FileJob>>,
    threads: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Writers {
    /// Starts `n_threads` writers (at least one).
    pub fn start(n_threads: usize) -> std::io::Result<Writers> {
        let (sender, receiver) = sync_channel::<FileJob>(QUEUE_LEN);
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
            threads,
            shared,
        })
    }

    /// Queues a file; fails with an earlier writer's failure instead, if there was one.
    pub fn submit(&self, job: FileJob) -> Result<(), WriterFailure> {
        self.check()?;
        let Some(sender) = &self.sender else {
            return Err((job.entry, stopped()));
        };
        *lock(&self.shared.in_flight) += 1;
        if let Err(returned) = sender.send(job) {
            self.done_one();
            return Err((returned.0.entry, stopped()));
        }
        Ok(())
    }

    /// Waits until every queued file is finished; reports the first failure.
    pub fn barrier(&self) -> Result<(), WriterFailure> {
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
        self.stop();
        self.check()
    }

    fn check(&self) -> Result<(), WriterFailure> {
        match lock(&self.shared.failure).take() {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }

    fn done_one(&self) {
        let mut in_flight = lock(&self.shared.in_flight);
        *in_flight = in_flight.saturating_sub(1);
        if *in_flight == 0 {
            self.shared.idle.notify_all();
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
    /// after `unpack` returned.
    fn drop(&mut self) {
        self.stop();
    }
}

fn work(receiver: &Mutex<Receiver<FileJob>>, shared: &Shared) {
    loop {
        // The lock is held only while taking one job.
        let job = match lock(receiver).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
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
        let mut in_flight = lock(&shared.in_flight);
        *in_flight = in_flight.saturating_sub(1);
        if *in_flight == 0 {
            shared.idle.notify_all();
        }
    }
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
