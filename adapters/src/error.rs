//! The adapters' one error type.

use std::path::PathBuf;

/// What can go wrong in the adapters. Core errors keep their meaning and are wrapped,
/// not flattened into text, so callers can still act on "wrong key" or "corrupted
/// chunk N".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The core refused the data: wrong key, corrupted chunk, truncated, ...
    #[error(transparent)]
    Core(#[from] coffer_core::Error),
    /// An operating-system I/O error, with what was being done.
    #[error("{what}: {source}")]
    Io {
        /// What Coffer was doing, naming the file where there is one.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A vector file is not in the format its README describes.
    #[error("{}: malformed vector file: {reason}", path.display())]
    MalformedVectors {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl Error {
    /// An I/O error while doing `what`.
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}
