//! Ctrl-C and SIGTERM during a long operation (load, pull): the first one makes the operation
//! fail at its next check, so that its guards remove what it began (pending layers, layers
//! registered for an image not yet stored) and nothing half-done stays visible; a second one
//! ends the process at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use crate::error::{Error, Result};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// The exit status of a process ended by a second signal (128 + SIGINT, as shells report it).
const SECOND_SIGNAL_EXIT: i32 = 130;

/// Turns SIGINT and SIGTERM into a flag the operations check. Called once by a program before a
/// long operation; without it, the signals keep their default action.
pub fn install() -> Result<()> {
    let flag = FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registered first, so that it sees the flag before the second registration sets it.
        signal_hook::flag::register_conditional_shutdown(
            signal,
            SECOND_SIGNAL_EXIT,
            Arc::clone(flag),
        )
        .and_then(|_| signal_hook::flag::register(signal, Arc::clone(flag)))
        .map_err(|source| Error::io("installing a handler of", "SIGINT/SIGTERM", source))?;
    }
    Ok(())
}

/// Whether a signal asked the operation to stop.
pub fn interrupted() -> bool {
    FLAG.get().is_some_and(|flag| flag.load(Ordering::SeqCst))
}

/// Fails with [`Error::Interrupted`] once a signal asked the operation to stop.
pub fn check() -> Result<()> {
    if interrupted() {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}
