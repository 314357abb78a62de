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
    /// A path asked for is not in the snapshot (or not what it must be there).
    #[error("{path}: not in the snapshot")]
    NotInSnapshot {
        /// The path, as asked.
        path: String,
    },
    /// A create-only put found an object already there.
    #[error("object {key} already exists")]
    AlreadyExists {
        /// The key.
        key: ObjectKey,
    },
    /// A key that a folder-backed store cannot hold beside the objects it already has:
    /// it names a folder of other objects, or lies under an existing object.
    #[error("object {key} cannot be stored here: {reason}")]
    KeyConflict {
        /// The key.
        key: ObjectKey,
        /// Which of the two it is.
        reason: &'static str,
    },
    /// Another process holds a lock that conflicts (a prune while backups run, or a
    /// backup while prune runs).
    #[error("the repository is locked by {holder}; try again when it is done (a lock of a process that died goes stale after 30 minutes)")]
    Locked {
        /// Who holds it.
        holder: String,
    },
    /// The operation reads what a repository stores, and the key is write-only.
    #[error("this key is write-only: it can add backups but not read them")]
    WriteOnlyKey,
    /// An object key sealed to the repository's public key did not open (or could not
    /// be sealed). Says nothing more, as any authentication failure.
    #[error("{0}")]
    Recipient(&'static str),
    /// A repository object is authentic but not what the format allows, or an object
    /// the repository needs is in the wrong place.
    #[error("repository object {object}: {reason}")]
    RepoFormat {
        /// The object's key, or what it is.
        object: String,
        /// What is wrong, with the limit where there is one.
        reason: String,
    },
    /// A storage backend (S3) refused or failed a request, after any retries. Carries
    /// the service's error code and message, never a credential or a signed URL.
    #[error(
        "storage backend: {operation} {key:?} failed: {code}{}: {message}",
        http_status(*.status)
    )]
    Backend {
        /// The S3 operation, e.g. "PutObject" or "UploadPart".
        operation: &'static str,
        /// The object key (or the listed prefix).
        key: String,
        /// The HTTP status, if a response came back at all.
        status: Option<u16>,
        /// The service's error code ("NoSuchBucket", "SlowDown", ...), or what went
        /// wrong on the way ("Timeout", "ConnectionFailed").
        code: String,
        /// The service's message, or the transport error's description.
        message: String,
        /// True when the last attempt still failed for a reason worth retrying later
        /// (5xx, throttling, a timeout, a broken connection).
        transient: bool,
    },
    /// A storage backend's configuration, or a request made of it, is not usable.
    #[error("storage configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// The caller asked the work to stop (Ctrl-C); what was written is consistent: an
    /// interrupted backup leaves packs no index lists yet (prune removes them), an
    /// interrupted prune deletes nothing it still needed.
    #[error("interrupted")]
    Cancelled,
    /// A backup's exclude pattern or size is not usable.
    #[error("exclude pattern {pattern:?}: {reason}")]
    BadPattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An archive entry would land outside the restore folder, or does not match the
    /// backup's manifest; nothing was written for it.
    #[error("refusing archive entry {path:?}: {reason}")]
    HostileArchivePath {
        /// The entry's path, as stored (lossily decoded).
        path: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A tree blob (one directory's listing, FORMAT.md §18) broke a rule of the format,
    /// or a scanned directory entry cannot be recorded in one (`path` names it then).
    #[error("{}{source}", tree_path(path.as_deref()))]
    Tree {
        /// The scanned entry, when the tree is being built from a directory.
        path: Option<PathBuf>,
        /// The rule broken.
        source: crate::repo::tree::TreeError,
    },
    /// A restore would replace something already there.
    #[error("{} already exists; not overwriting it", path.display())]
    DestinationExists {
        /// The path.
        path: PathBuf,
    },
    /// A vector file is not in the format its README describes.
    #[error("{}: malformed vector file: {reason}", path.display())]
    MalformedVectors {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The catalogue's SQLite database failed (I/O, locked past the busy timeout,
    /// not a database, ...), with what was being done.
    #[error("catalogue: {what}: {source}")]
    Catalogue {
        /// What Coffer was doing, naming the row or file.
        what: String,
        /// The underlying error.
        source: rusqlite::Error,
    },
    /// The catalogue refused a change that breaks one of its rules: a name already
    /// taken, a row still referred to (a repository with backups), a value out of range.
    #[error("catalogue refused {what}: {source}")]
    CatalogueConstraint {
        /// What Coffer was doing.
        what: String,
        /// SQLite's report, naming the constraint.
        source: rusqlite::Error,
    },
    /// A catalogue row the caller named does not exist.
    #[error("catalogue has no {what}")]
    CatalogueNotFound {
        /// The row, e.g. "repository 7" or "backup 12".
        what: String,
    },
    /// The catalogue was migrated by a newer Coffer than this one; it is left untouched.
    #[error(
        "catalogue schema {component:?} is at version {found}, but this Coffer knows \
         versions up to {supported}: upgrade Coffer"
    )]
    CatalogueTooNew {
        /// The component whose schema is too new ("adapters", "server").
        component: String,
        /// The version the database is at.
        found: u32,
        /// The newest version this build knows.
        supported: u32,
    },
    /// The database is not a usable Coffer catalogue (another application's file, a
    /// setting that did not take effect, a row Coffer cannot read back).
    #[error("catalogue {what}: {reason}")]
    CatalogueInvalid {
        /// The file, setting or row.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A catalogue call was used wrongly: a rewrap that changed the wrapped key, a
    /// migration list that is empty or named twice, ...
    #[error("catalogue misuse while {what}: {reason}")]
    CatalogueMisuse {
        /// What was being done.
        what: String,
        /// What the caller got wrong.
        reason: String,
    },
}

fn http_status(status: Option<u16>) -> String {
    status.map_or_else(String::new, |s| format!(" (HTTP {s})"))
}

fn tree_path(path: Option<&std::path::Path>) -> String {
    path.map_or_else(String::new, |p| format!("{}: ", p.display()))
}

impl From<crate::repo::tree::TreeError> for Error {
    fn from(source: crate::repo::tree::TreeError) -> Self {
        Error::Tree { path: None, source }
    }
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
