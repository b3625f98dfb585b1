//! A pipe between two threads of this process: what one writes, the other reads, in chunks
//! handed over whole through a bounded channel and handed back empty for reuse. A kernel pipe
//! copies every byte in and out of the kernel, a page at a time; here the only copies are into
//! the writer's chunk and out of the reader's.
//!
//! Dropping the reader makes the writer's next hand-over fail with `BrokenPipe`; dropping the
//! writer ends the stream for the reader after the chunks already handed over (what was written
//! since the last full chunk or `flush` is dropped with it, as after a failed producer).
//!
//! [`through_pipe`] runs a layer tar's producer and consumer on its two ends (commit, and fsck's
//! verification of a layer).

use std::io::{self, BufRead, Read, Write};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};

/// One chunk and how many of its bytes hold data.
type Chunk = (Vec<u8>, usize);

/// The writing end.
pub(crate) struct ChunkWriter {
    full: SyncSender<Chunk>,
    empty: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    filled: usize,
}

/// The reading end, a buffered reader over the chunks in order.
pub(crate) struct ChunkReader {
    full: Receiver<Chunk>,
    empty: Sender<Vec<u8>>,
    chunk: Vec<u8>,
    filled: usize,
    pos: usize,
}

/// A connected pair of ends whose chunks hold `chunk_len` bytes, with at most `n_ahead` of them
/// written and not yet taken.
pub(crate) fn chunk_pipe(chunk_len: usize, n_ahead: usize) -> (ChunkWriter, ChunkReader) {
    let (full_tx, full_rx) = sync_channel(n_ahead);
    let (empty_tx, empty_rx) = channel();
    (
        ChunkWriter {
            full: full_tx,
            empty: empty_rx,
            chunk: vec![0; chunk_len],
            filled: 0,
        },
        ChunkReader {
            full: full_rx,
            empty: empty_tx,
            chunk: Vec::new(),
            filled: 0,
            pos: 0,
        },
    )
}

impl ChunkWriter {
    /// Hands the filled part of the chunk over and takes an empty one.
    fn hand_over(&mut self) -> io::Result<()> {
        if self.filled == 0 {
            return Ok(());
        }
        let len = self.chunk.len();
        let next = self.empty.try_recv().unwrap_or_else(|_| vec![0; len]);
        let full = std::mem::replace(&mut self.chunk, next);
        let filled = std::mem::take(&mut self.filled);
        self.full.send((full, filled)).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the reading end of the layer stream is gone",
            )
        })
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.filled == self.chunk.len() {
            self.hand_over()?;
        }
        let n_copied = buf.len().min(self.chunk.len() - self.filled);
        self.chunk[self.filled..self.filled + n_copied].copy_from_slice(&buf[..n_copied]);
        self.filled += n_copied;
        Ok(n_copied)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.hand_over()
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n_copied = self.fill_buf()?.read(buf)?;
        self.consume(n_copied);
        Ok(n_copied)
    }
}

impl BufRead for ChunkReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.filled {
            // A closed channel is the end of the stream: nothing more is available.
            if let Ok((next, filled)) = self.full.recv() {
                let spent = std::mem::replace(&mut self.chunk, next);
                if !spent.is_empty() {
                    // The writer may be gone; the chunk is then dropped.
                    let _ = self.empty.send(spent);
                }
                self.filled = filled;
                self.pos = 0;
            }
        }
        Ok(&self.chunk[self.pos..self.filled])
    }

    fn consume(&mut self, amount: usize) {
        self.pos += amount.min(self.filled - self.pos);
    }
}

/// The chunks of the pipe between the tar producer and the unpacker, and how many the producer
/// may write ahead (1 MiB).
const PIPE_CHUNK_LEN: usize = 256 * 1024;
const PIPE_CHUNKS_AHEAD: usize = 4;

/// Runs `produce` (a layer tar writer) on a thread of its own into a pipe that `consume` reads
/// (at most `max_layer_size` bytes of it). The producer's error explains a consumer that saw a
/// cut stream; a producer that only saw the pipe close explains nothing: the consumer failed
/// first, and its error (a name too long, a full disk) is the one the user gets.
/// The stack of the thread that produces the tar: a layer walk recurses once per directory level,
/// up to 2,048 levels within `PATH_MAX` (a debug build took more than the default 2 MiB for
/// 1,500). Only the pages it touches are ever allocated.
const PRODUCER_STACK_LEN: usize = 64 * 1024 * 1024;

pub(crate) fn through_pipe<T, E: Into<store::ApplyError>>(
    max_layer_size: Option<u64>,
    produce: impl FnOnce(&mut dyn Write) -> Result<(), E> + Send,
    consume: impl FnOnce(crate::layers::SizeLimit<ChunkReader>) -> layer_unpack::Result<T>,
) -> Result<T, store::ApplyError> {
    let (mut writer, reader) = chunk_pipe(PIPE_CHUNK_LEN, PIPE_CHUNKS_AHEAD);
    let produced = std::thread::scope(|scope| -> Result<_, store::ApplyError> {
        let producer = std::thread::Builder::new()
            .name("layer-pack".to_string())
            .stack_size(PRODUCER_STACK_LEN)
            .spawn_scoped(scope, move || -> Result<(), store::ApplyError> {
                produce(&mut writer).map_err(Into::into)?;
                writer.flush()?;
                Ok(())
            })?;
        let limited = crate::layers::SizeLimit {
            inner: reader,
            n_bytes: 0,
            max_len: max_layer_size.unwrap_or(u64::MAX),
        };
        let consumed = consume(limited);
        let produced = producer
            .join()
            .unwrap_or_else(|_| Err("the layer tar producer panicked".into()));
        Ok((produced, consumed))
    })?;
    match produced {
        (Err(pack_err), Err(unpack_err)) if is_closed_pipe(pack_err.as_ref()) => {
            Err(unpack_err.into())
        }
        (Err(pack_err), _) => Err(pack_err),
        (Ok(()), Err(unpack_err)) => Err(unpack_err.into()),
        (Ok(()), Ok(report)) => Ok(report),
    }
}

/// Whether `err` is, or is caused by, a write to a pipe whose reader has gone.
fn is_closed_pipe(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(err) = cause {
        let io = err.downcast_ref::<std::io::Error>();
        if io.is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) {
            return true;
        }
        cause = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_arrive_in_order_across_chunks() {
        let (mut writer, mut reader) = chunk_pipe(7, 2);
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 251) as u8).collect();
        let sent = data.clone();
        let producer = std::thread::spawn(move || {
            for piece in sent.chunks(13) {
                writer.write_all(piece).expect("write");
            }
            writer.flush().expect("flush");
        });
        let mut received = Vec::new();
        reader.read_to_end(&mut received).expect("read");
        producer.join().expect("producer");
        assert_eq!(received, data);
    }

    #[test]
    fn a_gone_reader_breaks_the_pipe() {
        let (mut writer, reader) = chunk_pipe(4, 1);
        drop(reader);
        let err = writer.write_all(b"0123456789").expect_err("no reader");
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn unflushed_bytes_of_a_dropped_writer_are_not_read() {
        let (mut writer, mut reader) = chunk_pipe(4, 4);
        writer.write_all(b"abcdef").expect("write");
        drop(writer);
        let mut received = Vec::new();
        reader.read_to_end(&mut received).expect("read");
        assert_eq!(received, b"abcd");
    }
}
