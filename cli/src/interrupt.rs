//! Ctrl-C and SIGTERM during long work: the first one sets a flag that the byte
//! counters on every stream check, so the work fails through its ordinary error path,
//! which removes temporary files, staging folders and unfinished backups; a second one
//! ends the process at once (exit 130).
//!
//! The handlers are installed only when long work starts (after any prompt), so a
//! prompt is still interrupted the usual way, with the terminal restored.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

/// The exit code of an interrupted command (128 + SIGINT).
pub(crate) const EXIT_CODE: u8 = 130;

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Installs the handlers (once; later calls do nothing).
pub(crate) fn install() {
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // Registered first, so it sees the flag as it was before this signal.
            let _ = signal_hook::flag::register_conditional_shutdown(
                signal,
                i32::from(EXIT_CODE),
                Arc::clone(&flag),
            );
            let _ = signal_hook::flag::register(signal, Arc::clone(&flag));
        }
        flag
    });
}

/// Installs the handlers and returns the flag they set, for work that polls it.
pub(crate) fn flag() -> Arc<AtomicBool> {
    install();
    FLAG.get()
        .map_or_else(|| Arc::new(AtomicBool::new(false)), Arc::clone)
}

/// Whether an interrupt arrived.
pub(crate) fn interrupted() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::Relaxed))
}

/// An error if an interrupt arrived (not `ErrorKind::Interrupted`, which callers retry).
pub(crate) fn check() -> io::Result<()> {
    if interrupted() {
        return Err(io::Error::other("interrupted"));
    }
    Ok(())
}
