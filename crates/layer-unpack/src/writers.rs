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
//! every small file. A batch keeps its files' data and names in one buffer and comes back empty
//! for reuse, so that the reading thread does not allocate for every file what another thread
//! frees (each such free waits for the allocator's lock of the thread that allocated).
//!
//! Ordering: a member that depends on a file's final metadata (a hardlink to it, which Docker
//! changes through the shared inode) waits for every handed-off file first ([`Writers::barrier`]);
//! so does the end of the archive. Removing or replacing a path while its inode is still being
//! written is harmless: the writer finishes an inode that is no longer linked.

use std::fs::File;
use std::io::Write;
use std::ops::Range;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;

use crate::apply::{finish_file, ApplyError};
use crate::plan::Metadata;

/// Files up to this size are handed to the writers with their data; larger ones are written by
/// the reading thread (their write is long enough not to need company).
pub(crate) const HANDOFF_MAX_LEN: usize = 256 * 1024;

/// A batch is sent once it holds this many files ([`batch_files`])...
const BATCH_FILES: usize = 16;
/// ...or this much data. With [`HANDOFF_MAX_LEN`], a batch holds less than 1.25 MiB.
const BATCH_BYTES: usize = 1024 * 1024;

/// Every file handed over and not yet finished holds an open descriptor and its data. The reading
/// thread waits before it hands over more than [`MAX_IN_FLIGHT_FILES`] files or this much data,
/// or more files than the whole process may have in flight ([`process_max_in_flight`]).
/// The queue has to be deep enough for the writers to lag behind by a scheduler time slice or
/// two without the reading thread waiting: on two cores, with at most 64 files in flight, the
/// reading thread of a load of 200,000 small files spent 0.45 to 0.96 s waiting for room.
const MAX_IN_FLIGHT_BYTES: usize = 8 * 1024 * 1024;
/// The data buffer a batch keeps for reuse: sixteen files of 8 KiB.
const KEPT_DATA_CAPACITY: usize = 128 * 1024;
/// The most files one unpack has in flight.
const MAX_IN_FLIGHT_FILES: usize = 640;

/// Files in flight across every unpack of this process (a load or a pull unpacks several layers
/// at once, as many as it is told to), and the signal that some were finished.
static PROCESS_IN_FLIGHT: Mutex<usize> = Mutex::new(0);
static PROCESS_FINISHED: Condvar = Condvar::new();

/// How many files the whole process may have in flight: a quarter of the descriptors it may open
/// (`RLIMIT_NOFILE`, read once), the rest being left to everything else; at least one batch.
fn process_max_in_flight() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| {
        usize::try_from(syscompat::descriptor_limit() / 4)
            .unwrap_or(usize::MAX)
            .max(batch_files())
    })
}

/// [`BATCH_FILES`], or fewer under a low `RLIMIT_NOFILE`: the batch being filled holds its files
/// open before they count as in flight, so that under a soft limit of 32 a commit of 10,000
/// files failed with `EMFILE` (16 filling, 16 in flight, and the rest of the process).
fn batch_files() -> usize {
    usize::try_from(syscompat::descriptor_limit() / 64)
        .unwrap_or(BATCH_FILES)
        .clamp(1, BATCH_FILES)
}

/// One file to finish: its descriptor and metadata, and where its data and its name (for
/// errors) lie in the batch's buffers.
struct FileJob {
    file: OwnedFd,
    data: Range<usize>,
    entry: Range<usize>,
    meta: Metadata,
}

/// Files handed over together, with one buffer for all their data and one for their names.
struct Batch {
    jobs: Vec<FileJob>,
    data: Vec<u8>,
    names: Vec<u8>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            jobs: Vec::with_capacity(batch_files()),
            data: Vec::with_capacity(KEPT_DATA_CAPACITY),
            names: Vec::new(),
        }
    }

    /// Empties the batch for reuse; a data buffer that grew for large files is let go, so that
    /// the batches kept for reuse stay small.
    fn clear(&mut self) {
        self.jobs.clear();
        self.data.clear();
        self.names.clear();
        if self.data.capacity() > KEPT_DATA_CAPACITY {
            self.data = Vec::with_capacity(KEPT_DATA_CAPACITY);
        }
    }

    /// The name of the first file, for a batch that could not be handed over.
    fn first_entry(&self) -> Vec<u8> {
        self.jobs
            .first()
            .map(|job| self.names[job.entry.clone()].to_vec())
            .unwrap_or_default()
    }
}

/// The first failure of a writer, with the member it concerned.
pub(crate) type WriterFailure = (Vec<u8>, ApplyError);

/// Files sent and not yet finished, and their data.
#[derive(Default)]
struct InFlight {
    files: usize,
    bytes: usize,
}

struct Shared {
    in_flight: Mutex<InFlight>,
    /// Signalled whenever a batch is finished.
    finished: Condvar,
    failure: Mutex<Option<WriterFailure>>,
}

pub(crate) struct Writers {
    sender: Option<SyncSender<Batch>>,
    /// Files not sent yet.
    batch: Batch,
    /// Batches the writers finished, emptied.
    spent: Receiver<Batch>,
    threads: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Writers {
    /// Starts `n_threads` writers (at least one).
    pub fn start(n_threads: usize) -> std::io::Result<Writers> {
        // The queue's bound only backs up `InFlight`'s.
        let (sender, receiver) = sync_channel::<Batch>(MAX_IN_FLIGHT_FILES / BATCH_FILES + 1);
        let receiver = Arc::new(Mutex::new(receiver));
        let (spent_sender, spent) = channel::<Batch>();
        let shared = Arc::new(Shared {
            in_flight: Mutex::new(InFlight::default()),
            finished: Condvar::new(),
            failure: Mutex::new(None),
        });
        let mut threads = Vec::new();
        for idx in 0..n_threads.max(1) {
            let receiver = Arc::clone(&receiver);
            let shared = Arc::clone(&shared);
            let spent = spent_sender.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("layer-writer-{idx}"))
                    .spawn(move || {
                        syscompat::helper_thread();
                        work(&receiver, &spent, &shared)
                    })?,
            );
        }
        Ok(Writers {
            sender: Some(sender),
            batch: Batch::new(),
            spent,
            threads,
            shared,
        })
    }

    /// The buffer the next file's data is to be appended to (see [`Writers::submit`]).
    pub fn data_buffer(&mut self) -> &mut Vec<u8> {
        &mut self.batch.data
    }

    /// Queues a file whose data are the bytes of [`Writers::data_buffer`] from `data_start` on,
    /// and whose name is `parent`'s components and `name` joined by `/`; fails with an earlier
    /// writer's failure instead, if there was one.
    pub fn submit(
        &mut self,
        file: OwnedFd,
        data_start: usize,
        meta: &Metadata,
        parent: &[Vec<u8>],
        name: &[u8],
    ) -> Result<(), WriterFailure> {
        self.check()?;
        let names = &mut self.batch.names;
        let entry_start = names.len();
        for component in parent {
            names.extend_from_slice(component);
            names.push(b'/');
        }
        names.extend_from_slice(name);
        let job = FileJob {
            file,
            data: data_start..self.batch.data.len(),
            entry: entry_start..names.len(),
            meta: meta.clone(),
        };
        self.batch.jobs.push(job);
        if self.batch.jobs.len() >= batch_files() || self.batch.data.len() >= BATCH_BYTES {
            self.send_batch()?;
        }
        Ok(())
    }

    /// Sends the files queued so far to the writers.
    fn send_batch(&mut self) -> Result<(), WriterFailure> {
        if self.batch.jobs.is_empty() {
            return Ok(());
        }
        let next = self.spent.try_recv().unwrap_or_else(|_| Batch::new());
        let batch = std::mem::replace(&mut self.batch, next);
        let (n_jobs, n_bytes) = (batch.jobs.len(), batch.data.len());
        // A batch that cannot be handed over is reported by its first file.
        let Some(sender) = &self.sender else {
            return Err((batch.first_entry(), stopped()));
        };
        let mut in_flight = lock(&self.shared.in_flight);
        // Nothing in flight is always room, whatever this batch holds.
        while in_flight.files > 0
            && (in_flight.files + n_jobs > MAX_IN_FLIGHT_FILES
                || in_flight.bytes + n_bytes > MAX_IN_FLIGHT_BYTES)
        {
            in_flight = wait(&self.shared.finished, in_flight);
        }
        in_flight.files += n_jobs;
        in_flight.bytes += n_bytes;
        drop(in_flight);
        // The process's bound: every file counted there is being finished by some unpack's
        // writers, which never wait for it, so the wait ends.
        let mut all = lock(&PROCESS_IN_FLIGHT);
        while *all > 0 && *all + n_jobs > process_max_in_flight() {
            all = wait(&PROCESS_FINISHED, all);
        }
        *all += n_jobs;
        drop(all);
        if let Err(returned) = sender.send(batch) {
            finished(&self.shared, n_jobs, n_bytes);
            return Err((returned.0.first_entry(), stopped()));
        }
        Ok(())
    }

    /// Waits until every queued file is finished; reports the first failure.
    pub fn barrier(&mut self) -> Result<(), WriterFailure> {
        self.send_batch()?;
        let mut in_flight = lock(&self.shared.in_flight);
        while in_flight.files > 0 {
            in_flight = wait(&self.shared.finished, in_flight);
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

fn work(receiver: &Mutex<Receiver<Batch>>, spent: &Sender<Batch>, shared: &Shared) {
    loop {
        // The lock is held only while taking one batch.
        let mut batch = match lock(receiver).recv() {
            Ok(batch) => batch,
            Err(_) => return,
        };
        let (n_jobs, n_bytes) = (batch.jobs.len(), batch.data.len());
        for job in batch.jobs.drain(..) {
            let mut file = File::from(job.file);
            let result = file
                .write_all(&batch.data[job.data])
                .map_err(|source| ApplyError {
                    operation: "write file data",
                    source,
                })
                .and_then(|()| finish_file(file.as_fd(), &job.meta));
            drop(file);
            if let Err(error) = result {
                let mut failure = lock(&shared.failure);
                if failure.is_none() {
                    *failure = Some((batch.names[job.entry].to_vec(), error));
                }
            }
        }
        batch.clear();
        // The reading thread may have finished; then the batch is simply freed.
        let _ = spent.send(batch);
        finished(shared, n_jobs, n_bytes);
    }
}

/// Takes a finished (or returned) batch out of the counts and wakes the reading thread.
fn finished(shared: &Shared, n_jobs: usize, n_bytes: usize) {
    let mut in_flight = lock(&shared.in_flight);
    in_flight.files = in_flight.files.saturating_sub(n_jobs);
    in_flight.bytes = in_flight.bytes.saturating_sub(n_bytes);
    drop(in_flight);
    shared.finished.notify_all();
    let mut all = lock(&PROCESS_IN_FLIGHT);
    *all = all.saturating_sub(n_jobs);
    drop(all);
    PROCESS_FINISHED.notify_all();
}

fn stopped() -> ApplyError {
    ApplyError {
        operation: "hand the file to a writer thread",
        source: std::io::Error::other("the writer threads stopped"),
    }
}

/// Waits on `condvar` with `guard`, as [`lock`] treats poisoning.
fn wait<'a, T>(
    condvar: &Condvar,
    guard: std::sync::MutexGuard<'a, T>,
) -> std::sync::MutexGuard<'a, T> {
    condvar
        .wait(guard)
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A poisoned lock only means a writer panicked; the data it guards is still consistent.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::{Mode, OFlags};

    fn meta() -> Metadata {
        Metadata {
            uid: rustix::process::getuid().as_raw(),
            gid: rustix::process::getgid().as_raw(),
            mode: 0o640,
            atime: None,
            mtime: 1_700_000_000_000_000_000,
            xattrs: Vec::new(),
        }
    }

    /// Hands `data` over as the file `dir/name`, opened with `flags`.
    fn submit(writers: &mut Writers, dir: &File, name: &str, data: &[u8], flags: OFlags) {
        let file = rustix::fs::openat(dir, name, flags | OFlags::CLOEXEC, Mode::from(0o600))
            .expect("create file");
        let buffer = writers.data_buffer();
        let start = buffer.len();
        buffer.extend_from_slice(data);
        writers
            .submit(file, start, &meta(), &[b"dir".to_vec()], name.as_bytes())
            .expect("submit");
    }

    const CREATE: OFlags = OFlags::WRONLY.union(OFlags::CREATE).union(OFlags::EXCL);

    /// A scratch directory, opened, and `n_threads` writers.
    fn started(n_threads: usize) -> (tempfile::TempDir, File, Writers) {
        let scratch = tempfile::tempdir().expect("tempdir");
        let dir = File::open(scratch.path()).expect("open dir");
        let writers = Writers::start(n_threads).expect("start writers");
        (scratch, dir, writers)
    }

    fn content(idx: usize) -> Vec<u8> {
        format!("file {idx}\n").repeat(idx % 700).into_bytes()
    }

    #[test]
    fn every_file_gets_its_own_data_across_reused_batches() {
        let (scratch, dir, mut writers) = started(2);
        for idx in 0..2000 {
            submit(
                &mut writers,
                &dir,
                &format!("f{idx}"),
                &content(idx),
                CREATE,
            );
        }
        writers.finish().expect("finish");
        for idx in 0..2000 {
            let written = std::fs::read(scratch.path().join(format!("f{idx}"))).expect("read");
            assert!(written == content(idx), "f{idx} holds another file's data");
        }
    }

    #[test]
    fn a_failing_file_is_named() {
        let (scratch, dir, mut writers) = started(1);
        for idx in 0..40 {
            submit(&mut writers, &dir, &format!("f{idx}"), b"data", CREATE);
        }
        // Opened for reading only: writing its data fails.
        std::fs::write(scratch.path().join("read-only"), b"").expect("create read-only");
        submit(&mut writers, &dir, "read-only", b"data", OFlags::RDONLY);
        let (entry, error) = writers.barrier().expect_err("the read-only file fails");
        assert_eq!(entry, b"dir/read-only");
        assert_eq!(error.operation, "write file data");
    }
}
