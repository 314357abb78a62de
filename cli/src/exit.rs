//! The CLI's one error type and the exit codes it maps to.
//!
//! Every error names what is wrong and where; none carries a key, a passphrase or a
//! credential (the core's and the adapters' errors never hold one either).

use std::io;

use coffer_adapters::bridge::core_error;
use coffer_adapters::Error as AdaptersError;
use coffer_core::Error as CoreError;

/// Success.
pub(crate) const OK: u8 = 0;
/// Any failure not listed below.
pub(crate) const OTHER: u8 = 1;
/// Bad usage: a wrong or missing argument, a missing secret (clap uses 2 as well).
pub(crate) const USAGE: u8 = 2;
/// The key or passphrase given does not open the data.
pub(crate) const WRONG_KEY: u8 = 3;
/// The data is corrupted, truncated, or not a Coffer object.
pub(crate) const CORRUPT: u8 = 4;
/// Reading or writing failed: a file, the disk (full), the network, the store.
pub(crate) const IO: u8 = 5;
/// The file, backup, repository or object named does not exist.
pub(crate) const NOT_FOUND: u8 = 6;
/// The destination already exists; Coffer does not overwrite it.
pub(crate) const EXISTS: u8 = 7;
/// The key is write-only: it adds backups but cannot read them.
pub(crate) const WRITE_ONLY: u8 = 8;
/// The repository is locked by another process (a prune, or a backup for a prune).
pub(crate) const LOCKED: u8 = 9;
/// The server refused the request for another reason (a conflict with the object's
/// state, a token already used): `coffer server`.
pub(crate) const REFUSED: u8 = 10;
/// A run the command followed (`--wait`) ended failed: `coffer server`.
pub(crate) const RUN_FAILED: u8 = 11;

/// The exit-code table, as shown by `coffer --help`.
pub(crate) const TABLE: &str = "Exit codes:
  0  success
  1  other failure
  2  usage error (bad or missing argument, no secret given)
  3  wrong key or passphrase; a token the server refuses
  4  corrupted, truncated or tampered data, or not a Coffer object
  5  I/O failure: file, disk full, network, storage service, server away
  6  not found: file, repository, backup
  7  already exists: Coffer never overwrites
  8  the key is write-only: it can add backups but not read, restore or prune them
  9  the repository is locked by another process; try again when it is done
  10  the server refused the request (conflict with the object's state)
  11  a followed run (--wait) failed
  130  interrupted (Ctrl-C, SIGTERM): temporaries removed, nothing partial kept";

/// What went wrong, by what the user can do about it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// A wrong or missing argument.
    #[error("{0}")]
    Usage(String),
    /// The key or passphrase does not open the data.
    #[error("{0}")]
    WrongKey(String),
    /// Damaged, truncated, tampered or foreign data.
    #[error("{0}")]
    Corrupt(String),
    /// An I/O, disk, network or storage failure.
    #[error("{0}")]
    Io(String),
    /// Something named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The destination exists already.
    #[error("{0}")]
    Exists(String),
    /// A write-only key was asked to read.
    #[error("{0}")]
    WriteOnly(String),
    /// Another process holds the repository's lock.
    #[error("{0}")]
    Locked(String),
    /// The server refused the request (other than for the token, a missing object or
    /// a bad argument).
    #[error("{0}")]
    Refused(String),
    /// A run followed to its end failed.
    #[error("{0}")]
    RunFailed(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

impl CliError {
    /// The process exit code for this error.
    pub(crate) fn code(&self) -> u8 {
        match self {
            CliError::Usage(_) => USAGE,
            CliError::WrongKey(_) => WRONG_KEY,
            CliError::Corrupt(_) => CORRUPT,
            CliError::Io(_) => IO,
            CliError::NotFound(_) => NOT_FOUND,
            CliError::Exists(_) => EXISTS,
            CliError::WriteOnly(_) => WRITE_ONLY,
            CliError::Locked(_) => LOCKED,
            CliError::Refused(_) => REFUSED,
            CliError::RunFailed(_) => RUN_FAILED,
            CliError::Other(_) => OTHER,
        }
    }

    /// Prefixes the message with what was being done.
    pub(crate) fn context(self, what: impl std::fmt::Display) -> Self {
        let wrap = |m: String| format!("{what}: {m}");
        match self {
            CliError::Usage(m) => CliError::Usage(wrap(m)),
            CliError::WrongKey(m) => CliError::WrongKey(wrap(m)),
            CliError::Corrupt(m) => CliError::Corrupt(wrap(m)),
            CliError::Io(m) => CliError::Io(wrap(m)),
            CliError::NotFound(m) => CliError::NotFound(wrap(m)),
            CliError::Exists(m) => CliError::Exists(wrap(m)),
            CliError::WriteOnly(m) => CliError::WriteOnly(wrap(m)),
            CliError::Locked(m) => CliError::Locked(wrap(m)),
            CliError::Refused(m) => CliError::Refused(wrap(m)),
            CliError::RunFailed(m) => CliError::RunFailed(wrap(m)),
            CliError::Other(m) => CliError::Other(wrap(m)),
        }
    }

    /// An I/O error while doing `what` (which names the file).
    pub(crate) fn io(what: impl std::fmt::Display, e: io::Error) -> Self {
        if let Some(core) = core_error(&e) {
            return CliError::from(core).context(what);
        }
        let message = format!("{what}: {e}");
        match e.kind() {
            io::ErrorKind::NotFound => CliError::NotFound(message),
            io::ErrorKind::AlreadyExists => CliError::Exists(message),
            _ => CliError::Io(message),
        }
    }
}

impl From<CoreError> for CliError {
    fn from(e: CoreError) -> Self {
        let message = e.to_string();
        match e {
            CoreError::WrongKey { .. } | CoreError::WrongPassphrase => CliError::WrongKey(message),
            CoreError::Io(_) => CliError::Io(message),
            CoreError::InvalidKeyLength { .. }
            | CoreError::BufferTooSmall { .. }
            | CoreError::StreamTooLong
            | CoreError::Provider => CliError::Other(message),
            // A commitment mismatch after the key ID matched means the header, salt or
            // commitment changed: damage, not a wrong key. Everything else here is
            // damaged, truncated, tampered or foreign input.
            _ => CliError::Corrupt(message),
        }
    }
}

impl From<AdaptersError> for CliError {
    fn from(e: AdaptersError) -> Self {
        match e {
            AdaptersError::Core(core) => core.into(),
            AdaptersError::Io { what, source } => CliError::io(what, source),
            AdaptersError::NotFound { .. }
            | AdaptersError::NotInSnapshot { .. }
            | AdaptersError::CatalogueNotFound { .. } => CliError::NotFound(e.to_string()),
            AdaptersError::AlreadyExists { .. } | AdaptersError::DestinationExists { .. } => {
                CliError::Exists(e.to_string())
            }
            AdaptersError::HostileArchivePath { .. } | AdaptersError::MalformedVectors { .. } => {
                CliError::Corrupt(e.to_string())
            }
            AdaptersError::Backend { .. } | AdaptersError::Catalogue { .. } => {
                CliError::Io(e.to_string())
            }
            AdaptersError::InvalidKey { .. }
            | AdaptersError::InvalidConfig { .. }
            | AdaptersError::BadPattern { .. } => CliError::Usage(e.to_string()),
            AdaptersError::WriteOnlyKey => CliError::WriteOnly(e.to_string()),
            AdaptersError::Locked { .. } => CliError::Locked(e.to_string()),
            AdaptersError::RepoFormat { .. } => CliError::Corrupt(e.to_string()),
            _ => CliError::Other(e.to_string()),
        }
    }
}

/// The CLI's result type.
pub(crate) type Result<T, E = CliError> = std::result::Result<T, E>;
