//! The catalogue: what a NAS's CLI or the lite server knows about its repositories,
//! their key envelopes and their backups, in one SQLite file.
//!
//! The catalogue is an index, not the data: every object it names lives in storage,
//! sealed, and a backup's manifest carries its own summary. What it must never do is
//! lose a key envelope or point at half a change, so:
//!
//! - **WAL journal.** Readers never block the one writer and see a consistent snapshot,
//!   which is what lets the server answer list requests while an agent records a
//!   backup. WAL needs shared memory between processes, so the file must live on a
//!   local file system, never on a network share.
//! - **`synchronous = FULL`.** A committed transaction is on disk when `commit` returns.
//!   `NORMAL` would be corruption-safe in WAL mode too, but could roll back the last
//!   commits on power loss; a KEK rotation whose new envelopes vanish after the old KEK
//!   was destroyed loses every key it wrapped. The cost is one fsync of the WAL per
//!   transaction, nothing at a catalogue's write rate.
//! - **`foreign_keys = ON`**, checked after setting it (SQLite silently ignores it
//!   inside a transaction or when compiled without it): a backup cannot name a missing
//!   repository, and a repository cannot be deleted while backups refer to it.
//! - **A busy timeout** of [`BUSY_TIMEOUT`], so a second process waits for the writer
//!   instead of failing at once.
//! - **Every change that touches several rows runs in one `BEGIN IMMEDIATE`
//!   transaction.** Immediate, because a deferred transaction that reads and then
//!   writes fails with `SQLITE_BUSY_SNAPSHOT` (which no timeout retries) when another
//!   writer committed in between.
//! - **An application ID** ([`APPLICATION_ID`]) in the file header: Coffer stamps an
//!   empty database and refuses any other, so a wrong `--catalogue` path never adds
//!   tables to (or switches the journal of) another program's database.
//! - **Migrations** ([`migration`]): ordered SQL steps per component, one transaction
//!   each, refusing a database newer than the code.
//!
//! Tables are `STRICT` with `CHECK`s for every enumeration, ID and length. The
//! schema is [`ADAPTERS_MIGRATIONS`]; the server adds its own tables under the component
//! name `"server"` with [`Catalogue::migrate`].
//!
//! Times are Unix seconds. Key IDs are stored as 32 lowercase hex digits. Envelopes are
//! stored whole, as the core encodes them; the columns beside them are read from their
//! headers (see [`Catalogue::put_envelope`]), so they cannot disagree with the bytes.
//! Envelopes are not secret, but they are never logged.

mod backups;
mod envelopes;
pub mod migration;
mod repositories;
mod schema;

use std::fmt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use backups::{Backup, BackupStatus, BackupSummary, NewBackup};
pub use envelopes::{EnvelopeKind, StoredEnvelope};
pub use migration::{migrate, Migration};
pub use repositories::{NewRepository, Repository};
pub use rusqlite;
pub use schema::{ADAPTERS_COMPONENT, ADAPTERS_MIGRATIONS};

use coffer_core::{KeyId, Suite};
use rusqlite::{Connection, ErrorCode, TransactionBehavior};

use crate::Error;

/// How long a connection waits for another's write lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// `PRAGMA application_id` of a Coffer catalogue: "CFFR".
pub const APPLICATION_ID: i32 = 0x4346_4652;

/// A repository's row ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepositoryId(pub i64);

/// A key envelope's row ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvelopeId(pub i64);

/// A backup's (restore point's) row ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackupId(pub i64);

/// An open catalogue: one SQLite connection, configured and migrated.
///
/// A `Catalogue` is `Send` but not `Sync`; the server keeps one per worker (or behind a
/// mutex) and calls it from blocking threads. Several connections, in one process or
/// many, may open the same file: readers run alongside the writer.
#[derive(Debug)]
pub struct Catalogue {
    conn: Connection,
}

impl Catalogue {
    /// Opens (creating if needed) the catalogue at `path` and brings its schema up to
    /// date.
    ///
    /// # Errors
    /// [`Error::Catalogue`] if SQLite fails (not a database, unreadable, locked past
    /// [`BUSY_TIMEOUT`]); [`Error::CatalogueInvalid`] for another application's
    /// database or a setting that did not take effect (WAL, foreign keys);
    /// [`Error::CatalogueTooNew`] if a newer Coffer migrated it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let what = || format!("opening {}", path.display());
        let conn = Connection::open(path).or_catalogue(what)?;
        Self::configure(conn, true, &what)
    }

    /// Opens a private catalogue in memory (journal mode `memory`, not WAL), for tests
    /// and one-shot commands.
    ///
    /// # Errors
    /// As [`Catalogue::open`].
    pub fn open_in_memory() -> Result<Self, Error> {
        let what = || "opening an in-memory catalogue".to_owned();
        let conn = Connection::open_in_memory().or_catalogue(what)?;
        Self::configure(conn, false, &what)
    }

    /// Applies `migrations` for `component` (see [`migrate`]); the server calls this
    /// with its own list after opening.
    ///
    /// # Errors
    /// As [`migrate`].
    pub fn migrate(&mut self, component: &str, migrations: &[Migration]) -> Result<u32, Error> {
        migrate(&mut self.conn, component, migrations)
    }

    /// The connection, for a component's own tables. Leave `foreign_keys` on and run
    /// multi-row changes in `BEGIN IMMEDIATE` transactions.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The connection, mutably (to start transactions).
    pub fn connection_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    fn configure(
        mut conn: Connection,
        file: bool,
        what: &dyn Fn() -> String,
    ) -> Result<Self, Error> {
        conn.busy_timeout(BUSY_TIMEOUT).or_catalogue(what)?;
        // Before anything writes: never switch the journal of another program's file.
        claim_application_id(&mut conn, what)?;
        let mode =
            wal_mode(&conn).or_catalogue(|| format!("{}: setting WAL journal mode", what()))?;
        let expected = if file { "wal" } else { "memory" };
        if !mode.eq_ignore_ascii_case(expected) {
            return Err(Error::CatalogueInvalid {
                what: what(),
                reason: format!("journal mode is {mode:?}, not {expected:?}"),
            });
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .or_catalogue(|| format!("{}: setting synchronous = FULL", what()))?;
        conn.pragma_update(None, "foreign_keys", true)
            .or_catalogue(|| format!("{}: enabling foreign keys", what()))?;
        let foreign_keys: bool = conn
            .pragma_query_value(None, "foreign_keys", |row| row.get(0))
            .or_catalogue(|| format!("{}: reading foreign_keys", what()))?;
        if !foreign_keys {
            return Err(Error::CatalogueInvalid {
                what: what(),
                reason: "foreign key enforcement did not turn on".to_owned(),
            });
        }
        let mut catalogue = Catalogue { conn };
        catalogue.migrate(ADAPTERS_COMPONENT, ADAPTERS_MIGRATIONS)?;
        Ok(catalogue)
    }
}

impl fmt::Display for RepositoryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "repository {}", self.0)
    }
}

impl fmt::Display for EnvelopeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key envelope {}", self.0)
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "backup {}", self.0)
    }
}

/// Stamps an empty database with [`APPLICATION_ID`]; refuses one stamped otherwise,
/// or unstamped but holding tables.
/// Switches the journal to WAL. SQLite answers "busy" to this switch without calling
/// the busy handler while another connection opens the same new file at that moment
/// (seen with four processes creating one catalogue at once), so it is retried for up
/// to [`BUSY_TIMEOUT`] here.
fn wal_mode(conn: &Connection) -> rusqlite::Result<String> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == ErrorCode::DatabaseBusy && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

fn claim_application_id(conn: &mut Connection, what: &dyn Fn() -> String) -> Result<(), Error> {
    let reading = || format!("{}: reading the application ID", what());
    let read_id = |conn: &Connection| -> Result<i32, Error> {
        conn.pragma_query_value(None, "application_id", |row| row.get(0))
            .or_catalogue(reading)
    };
    if read_id(conn)? == APPLICATION_ID {
        return Ok(());
    }
    // Decide and stamp under the write lock: another process may be creating this
    // catalogue right now, and its tables must not make it look foreign to us.
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .or_catalogue(reading)?;
    let id = read_id(&tx)?;
    if id == APPLICATION_ID {
        return Ok(());
    }
    let objects: i64 = tx
        .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
        .or_catalogue(reading)?;
    if id != 0 || objects != 0 {
        return Err(Error::CatalogueInvalid {
            what: what(),
            reason: format!(
                "not a Coffer catalogue (application ID {id:#010x}, {objects} schema objects)"
            ),
        });
    }
    let stamping = || format!("{}: setting the application ID", what());
    tx.pragma_update(None, "application_id", APPLICATION_ID)
        .or_catalogue(stamping)?;
    tx.commit().or_catalogue(stamping)
}

/// Maps SQLite errors to [`Error::Catalogue`], or [`Error::CatalogueConstraint`] for a
/// broken `UNIQUE`, `FOREIGN KEY`, `CHECK` or `NOT NULL` rule.
trait OrCatalogue<T> {
    fn or_catalogue(self, what: impl FnOnce() -> String) -> Result<T, Error>;
}

impl<T> OrCatalogue<T> for rusqlite::Result<T> {
    fn or_catalogue(self, what: impl FnOnce() -> String) -> Result<T, Error> {
        self.map_err(|source| {
            let what = what();
            match source {
                rusqlite::Error::FromSqlConversionFailure(..)
                | rusqlite::Error::IntegralValueOutOfRange(..)
                | rusqlite::Error::InvalidColumnType(..) => Error::CatalogueInvalid {
                    reason: format!("a row does not read back: {source}"),
                    what,
                },
                rusqlite::Error::ToSqlConversionFailure(..) => Error::CatalogueMisuse {
                    reason: format!("a value does not fit its column: {source}"),
                    what,
                },
                _ if source.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
                    Error::CatalogueConstraint { what, source }
                }
                _ => Error::Catalogue { what, source },
            }
        })
    }
}

/// Now, in Unix seconds (0 for a clock before 1970).
fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// A key ID as stored: 32 lowercase hex digits.
fn key_id_hex(id: &KeyId) -> String {
    hex::encode(id.as_bytes())
}

/// Reads a stored key ID back, as a conversion error of column `index` if malformed.
fn key_id_from_hex(hex_id: &str, index: usize) -> rusqlite::Result<KeyId> {
    let mut bytes = [0u8; coffer_core::secret::KEY_ID_LEN];
    hex::decode_to_slice(hex_id, &mut bytes).map_err(|e| conversion(index, e))?;
    Ok(KeyId(bytes))
}

/// A suite as stored.
fn suite_name(suite: Suite) -> Result<&'static str, Error> {
    match suite {
        Suite::Aes256Gcm => Ok("aes-256-gcm"),
        Suite::ChaCha20Poly1305 => Ok("chacha20-poly1305"),
        other => Err(Error::CatalogueMisuse {
            what: "storing a suite".to_owned(),
            reason: format!("the catalogue has no name for suite {other:?}"),
        }),
    }
}

/// Reads a stored suite back.
fn suite_from_name(name: &str, index: usize) -> rusqlite::Result<Suite> {
    match name {
        "aes-256-gcm" => Ok(Suite::Aes256Gcm),
        "chacha20-poly1305" => Ok(Suite::ChaCha20Poly1305),
        other => Err(conversion(index, format!("unknown suite {other:?}"))),
    }
}

/// A column value that does not convert, as rusqlite reports its own.
fn conversion(
    index: usize,
    error: impl Into<Box<dyn std::error::Error + Send + Sync>>,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, error.into())
}
