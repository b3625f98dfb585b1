//! Rebuilding a layer tar from its tar-split stream and the unpacked layer directory (Go's
//! `asm.WriteOutputTarStream`).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::BorrowedFd;

use syscompat::Resolver;

use crate::{lossy_name, Crc64, Entry, Error, Result, Unpacker};

/// The size of the copy buffer for file data.
const COPY_BUFFER_LEN: usize = 128 * 1024;

/// Writes the reassembled tar to `out`, returning the number of bytes written.
///
/// Segment payloads are written as they are; for each file entry with data, the name is opened
/// below `layer_root` (symlinks, absolute or not, and `..` cannot leave it; a symlink as the last
/// component is refused) and exactly `size` bytes are copied while their CRC-64 is computed. A
/// file that is not regular, shorter or longer than `size`, or whose checksum differs is an error
/// naming the entry. As in Docker, bytes are written before the checksum of a file is known.
pub fn reassemble(
    tar_split_gz: impl Read,
    layer_root: BorrowedFd<'_>,
    resolver: Resolver,
    out: &mut dyn Write,
) -> Result<u64> {
    let mut unpacker = Unpacker::new(tar_split_gz);
    let mut buffer = vec![0u8; COPY_BUFFER_LEN];
    let mut n_written: u64 = 0;
    loop {
        let position = unpacker.position();
        let Some(entry) = unpacker.next().transpose()? else {
            break;
        };
        match entry {
            Entry::Segment { payload } => {
                out.write_all(&payload)
                    .map_err(|source| Error::WriteOutput { position, source })?;
                n_written += payload.len() as u64;
            }
            Entry::File { size: 0, .. } => {}
            Entry::File { name, size, crc } => {
                let expected = crc.ok_or_else(|| Error::MissingChecksum {
                    name: lossy_name(&name),
                    position,
                })?;
                let file = open_in_root(layer_root, resolver, &name, position)?;
                copy_file(
                    file,
                    &name,
                    position,
                    size,
                    u64::from_be_bytes(expected),
                    &mut buffer,
                    out,
                )?;
                n_written += size;
            }
        }
    }
    tracing::debug!(
        n_entries = unpacker.position(),
        n_written,
        "reassembled layer tar"
    );
    Ok(n_written)
}

/// Opens `name` read-only inside `layer_root` and checks that it is a regular file.
fn open_in_root(
    layer_root: BorrowedFd<'_>,
    resolver: Resolver,
    name: &[u8],
    position: u64,
) -> Result<File> {
    let open_error = |errno: rustix::io::Errno| Error::OpenFile {
        name: lossy_name(name),
        position,
        source: io::Error::from(errno),
    };
    // Only a regular file is opened: a device or FIFO planted under a file's name is described
    // through an O_PATH descriptor and refused without being opened.
    let (node, fd) = resolver
        .open_regular(layer_root, name)
        .map_err(open_error)?;
    if node.file_type() == rustix::fs::FileType::Symlink {
        return Err(open_error(rustix::io::Errno::LOOP));
    }
    let Some(fd) = fd else {
        return Err(Error::NotRegularFile {
            name: lossy_name(name),
            position,
        });
    };
    Ok(File::from(fd))
}

/// Copies exactly `size` bytes of `file` to `out` and checks their checksum and that the file
/// ends there.
fn copy_file(
    mut file: File,
    name: &[u8],
    position: u64,
    size: u64,
    expected: u64,
    buffer: &mut [u8],
    out: &mut dyn Write,
) -> Result<()> {
    let read_error = |source: io::Error| Error::ReadFile {
        name: lossy_name(name),
        position,
        source,
    };
    let mut crc = Crc64::new();
    let mut n_copied: u64 = 0;
    while n_copied < size {
        let chunk_len = usize::try_from(size - n_copied)
            .unwrap_or(usize::MAX)
            .min(buffer.len());
        let n_read = read_retrying(&mut file, &mut buffer[..chunk_len]).map_err(read_error)?;
        if n_read == 0 {
            return Err(Error::ShortFile {
                name: lossy_name(name),
                position,
                expected: size,
                actual: n_copied,
            });
        }
        let chunk = &buffer[..n_read];
        crc.update(chunk);
        out.write_all(chunk)
            .map_err(|source| Error::WriteOutput { position, source })?;
        n_copied += n_read as u64;
    }
    let mut probe = [0u8; 1];
    if read_retrying(&mut file, &mut probe).map_err(read_error)? != 0 {
        return Err(Error::LongFile {
            name: lossy_name(name),
            position,
            expected: size,
        });
    }
    let actual = crc.finish();
    if actual != expected {
        return Err(Error::ChecksumMismatch {
            name: lossy_name(name),
            position,
            expected,
            actual,
        });
    }
    Ok(())
}

fn read_retrying(file: &mut File, buffer: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(buffer) {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            result => return result,
        }
    }
}

/// The length in bytes of the tar [`reassemble`] would write: the segments' payloads plus the
/// files' recorded sizes. Reads only the tar-split stream, not the layer, so an archive writer can
/// put the length in a tar header before the layer's bytes.
pub fn reassembled_len(tar_split_gz: impl Read) -> Result<u64> {
    let mut unpacker = Unpacker::new(tar_split_gz);
    let mut n_bytes: u64 = 0;
    while let Some(entry) = unpacker.next().transpose()? {
        n_bytes += match entry {
            Entry::Segment { payload } => payload.len() as u64,
            Entry::File { size, .. } => size,
        };
    }
    Ok(n_bytes)
}
