//! The reading stage of an unpack: a thread of its own reads the layer stream (decompressing it,
//! when the reader it is given is a decoder), hashes every byte for the DiffID and hands the
//! bytes over in chunks, so that the thread applying the archive only parses and writes.
//!
//! Chunks travel through a bounded channel and come back empty for reuse. When the applying side
//! stops early (an error), it drops its end; the reading thread's next send fails and it ends.

use std::io::{self, BufRead, Read};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};

use sha2::{Digest, Sha256};

use crate::archive::read_full;

/// The size of one chunk: large enough that handing it over costs little next to filling it.
const CHUNK_LEN: usize = 256 * 1024;

/// Chunks filled and not yet taken: with [`CHUNK_LEN`], 1 MiB read ahead.
const CHUNKS_AHEAD: usize = 4;

/// A buffer of [`CHUNK_LEN`] bytes and how many of them the reading thread filled.
type Chunk = (Vec<u8>, usize);

/// What the reading thread learnt of the whole stream.
pub(crate) struct StreamSummary {
    /// `sha256:<hex>` of every byte read.
    pub diff_id: String,
    pub n_bytes: u64,
}

/// The applying side: the chunks in order, as a buffered reader.
pub(crate) struct ChunkReader {
    chunks: Receiver<io::Result<Chunk>>,
    spent: Sender<Vec<u8>>,
    chunk: Vec<u8>,
    /// The bytes of `chunk` that hold data; a chunk keeps its full length for its next use.
    filled: usize,
    pos: usize,
    /// Bytes handed out so far: the offset in the stream of the next one.
    consumed: u64,
    /// The end of the stream was seen, or an error that ends it.
    done: bool,
}

/// The reading side's two ends of the channels.
pub(crate) struct ChunkWriter {
    chunks: SyncSender<io::Result<Chunk>>,
    spent: Receiver<Vec<u8>>,
}

/// A connected pair: run [`ChunkWriter::run`] on another thread, read from the [`ChunkReader`].
pub(crate) fn chunk_channel() -> (ChunkWriter, ChunkReader) {
    let (chunks_tx, chunks_rx) = sync_channel(CHUNKS_AHEAD);
    let (spent_tx, spent_rx) = channel();
    (
        ChunkWriter {
            chunks: chunks_tx,
            spent: spent_rx,
        },
        ChunkReader {
            chunks: chunks_rx,
            spent: spent_tx,
            chunk: Vec::new(),
            filled: 0,
            pos: 0,
            consumed: 0,
            done: false,
        },
    )
}

impl ChunkWriter {
    /// Reads `input` to its end (or first error, which the reader then sees), hashing it.
    /// Returns early, with what it read so far, when the reader is gone.
    pub fn run(self, mut input: impl Read) -> StreamSummary {
        let mut hasher = Sha256::new();
        let mut n_bytes: u64 = 0;
        loop {
            // A returned chunk is reused as it is: only the bytes read into it count.
            let mut chunk = self.spent.try_recv().unwrap_or_else(|_| vec![0; CHUNK_LEN]);
            let message = match read_full(&mut input, &mut chunk) {
                Ok(0) => break,
                Ok(n_read) => {
                    hasher.update(&chunk[..n_read]);
                    n_bytes += n_read as u64;
                    Ok((chunk, n_read))
                }
                Err(error) => Err(error),
            };
            let failed = message.is_err();
            if self.chunks.send(message).is_err() || failed {
                break;
            }
        }
        StreamSummary {
            diff_id: format!("sha256:{}", gocompat::digest::hex(&hasher.finalize())),
            n_bytes,
        }
    }
}

impl ChunkReader {
    /// The offset in the stream of the next byte handed out.
    pub fn offset(&self) -> u64 {
        self.consumed
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n_copied = available.len().min(buf.len());
        buf[..n_copied].copy_from_slice(&available[..n_copied]);
        self.consume(n_copied);
        Ok(n_copied)
    }
}

impl BufRead for ChunkReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.filled && !self.done {
            match self.chunks.recv() {
                Ok(Ok((next, filled))) => {
                    let spent = std::mem::replace(&mut self.chunk, next);
                    self.filled = filled;
                    self.pos = 0;
                    if !spent.is_empty() {
                        // The reading thread may have ended; the chunk is then simply dropped.
                        let _ = self.spent.send(spent);
                    }
                }
                Ok(Err(error)) => {
                    self.done = true;
                    return Err(error);
                }
                // The reading thread ended after the last chunk: the end of the stream.
                Err(_) => self.done = true,
            }
        }
        Ok(&self.chunk[self.pos..self.filled])
    }

    fn consume(&mut self, amount: usize) {
        let amount = amount.min(self.filled - self.pos);
        self.pos += amount;
        self.consumed += amount as u64;
    }
}
