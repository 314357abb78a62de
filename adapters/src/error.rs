//! The adapters' one error type.

use std::path::PathBuf;

use crate::storage::ObjectKey;

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
    /// An object key was refused before reaching any backend.
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey {
        /// The key as given.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// There is no object under this key.
    #[error("no object {key}")]
    NotFound {
        /// The key.
        key: ObjectKey,
    },
    /// A create-only put found an object already there.
    #[error("object {key} already exists")]
    AlreadyExists {
        /// The key.
        key: ObjectKey,
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
