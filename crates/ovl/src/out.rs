//! The command's own standard output.
//!
//! A reader that stops early (`ovl inspect IMAGE | head -c 100`) closes the pipe; the next write
//! fails with `EPIPE`. That is not an error of the command, but only for writes to its own
//! stdout: a pipe ovl made for itself (commit's producer and unpacker) failing the same way is a
//! real error. So writes to stdout go through [`Stdout`], which marks such a failure with
//! [`StdoutClosed`], and `main` looks for that mark, not for any broken pipe. Messages to stderr
//! go through `errln!`, which never panics on a closed stderr.

use std::io::{self, StdoutLock, Write};

/// The mark on the error of a write to a closed stdout.
#[derive(Debug)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// The locked stdout, with a closed pipe marked.
pub struct Stdout(StdoutLock<'static>);

pub fn stdout() -> Stdout {
    Stdout(io::stdout().lock())
}

fn mark(err: io::Error) -> io::Error {
    if err.kind() == io::ErrorKind::BrokenPipe {
        io::Error::new(io::ErrorKind::BrokenPipe, StdoutClosed)
    } else {
        err
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(mark)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf).map_err(mark)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(mark)
    }
}

/// Whether `err` comes from a write to the command's own stdout after the reader went away.
pub fn is_stdout_closed(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        // An engine event callback's error is the content of `engine::Error::Event`, not a source.
        let cause = cause
            .downcast_ref::<engine::Error>()
            .and_then(engine::Error::event_error)
            .unwrap_or(cause);
        cause.is::<StdoutClosed>()
            || cause
                .downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.is::<StdoutClosed>())
    })
}

/// `println!` that returns the write's error (marked when stdout is closed) instead of
/// panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!($crate::out::stdout(), $($arg)*)?
    }};
}

/// `print!` that returns the write's error instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!($crate::out::stdout(), $($arg)*)?
    }};
}

/// `eprintln!` that never panics: a closed or full stderr loses the message, not the command.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `eprint!` that never panics.
macro_rules! err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

pub(crate) use {err, errln, out, outln};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_marked_broken_pipe_is_a_closed_stdout() {
        let own = anyhow::Error::from(mark(io::Error::from(io::ErrorKind::BrokenPipe)));
        assert!(is_stdout_closed(&own.context("printing")));
        let other = anyhow::Error::from(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(!is_stdout_closed(&other.context("writing the layer tar")));
    }
}
