//! The server's database: the adapters' catalogue (repositories and key envelopes) plus
//! the server's own tables, migrated under the component name [`SERVER_COMPONENT`].
//!
//! One SQLite connection behind a mutex, used from blocking threads only
//! ([`Db::call`]), so no async worker ever waits on SQLite's locks or fsyncs. The
//! catalogue's settings hold here too: WAL, `synchronous = FULL` (an acknowledged
//! change is on disk), foreign keys on, multi-row changes in `BEGIN IMMEDIATE`
//! transactions.
//!
//! Queries live in submodules named for what they hold.

pub mod agents;
pub mod audit;
pub mod backends;
pub mod jobs;
pub mod notify;
pub mod retention_runs;
pub mod runs;
mod schema;
pub mod tenants;
pub mod tokens;
pub mod uploads;

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use coffer_adapters::catalogue::rusqlite::{self, Connection, TransactionBehavior};
use coffer_adapters::catalogue::Catalogue;

pub use schema::{SERVER_COMPONENT, SERVER_MIGRATIONS};

// The handlers' closures answer in the API's terms; [`Db::call`] and [`Db::read`] are
// where the two layers meet, and `?` maps each query's [`DbError`] on the way out.
use crate::error::{ApiError, ApiResult};

/// What can go wrong in the database layer; the routes map it to HTTP
/// (`impl From<DbError> for ApiError`), nothing here knows about statuses.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite failed (I/O, busy past the timeout, a constraint not handled).
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The change conflicts with what is stored (a finished run completed differently,
    /// a name taken).
    #[error("{message}")]
    Conflict {
        /// A stable `snake_case` code.
        code: &'static str,
        /// What conflicts.
        message: String,
    },
    /// Something stored does not read back as what was written (a row without what its
    /// kind needs, JSON that does not parse).
    #[error("stored data: {0}")]
    Corrupt(String),
    /// The blocking task running the query died.
    #[error("database task failed: {0}")]
    Task(String),
}

impl DbError {
    /// Stored data that does not read back, described by `detail`.
    pub fn corrupt(detail: impl std::fmt::Display) -> Self {
        DbError::Corrupt(detail.to_string())
    }
}

/// The server schema version this binary writes (its migrations' count): a database
/// at a higher one was migrated by a newer coffer-server.
pub fn schema_version_supported() -> u32 {
    u32::try_from(SERVER_MIGRATIONS.len()).unwrap_or(u32::MAX)
}

/// Shorthand for queries.
pub type DbResult<T> = Result<T, DbError>;

/// The shared database handle. Cheap to clone.
///
/// Writes (and reads that must see them in the same transaction) go through the one
/// read-write connection ([`Db::call`]); the hot read-only lookups (token hashes,
/// "is there work?") go through a small pool of read-only connections
/// ([`Db::read`]), which WAL lets run beside the writer, so a writer's fsync does not
/// hold up every agent's authentication.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Mutex<Catalogue>>,
    readers: Arc<Readers>,
}

/// Idle read-only connections, opened on demand.
struct Readers {
    path: std::path::PathBuf,
    idle: Mutex<Vec<Connection>>,
}

/// Read-only connections kept idle at most.
const MAX_IDLE_READERS: usize = 8;

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Db")
    }
}

impl Db {
    /// Opens (creating and migrating if needed) the database at `path`.
    ///
    /// # Errors
    /// What [`Catalogue::open`] and the migrations report.
    pub fn open(path: &Path) -> Result<Self, coffer_adapters::Error> {
        let mut catalogue = Catalogue::open(path)?;
        catalogue.migrate(SERVER_COMPONENT, SERVER_MIGRATIONS)?;
        Ok(Db {
            inner: Arc::new(Mutex::new(catalogue)),
            readers: Arc::new(Readers {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Runs a read-only `f` on a read-only connection, on a blocking thread.
    ///
    /// # Errors
    /// What `f` returns; SQLite's error opening a connection; a 500 if the task died.
    pub async fn read<T, F>(&self, f: F) -> ApiResult<T>
    where
        F: FnOnce(&Connection) -> ApiResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || {
            let pooled = readers
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            let conn = match pooled {
                Some(c) => c,
                None => {
                    let c = Connection::open_with_flags(
                        &readers.path,
                        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )
                    .map_err(DbError::from)?;
                    c.busy_timeout(coffer_adapters::catalogue::BUSY_TIMEOUT)
                        .map_err(DbError::from)?;
                    c
                }
            };
            let result = f(&conn);
            let mut idle = readers.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
            result
        })
        .await
        .map_err(|e| ApiError::from(DbError::Task(e.to_string())))?
    }

    /// Runs `f` with the catalogue on a blocking thread.
    ///
    /// # Errors
    /// What `f` returns; a 500 if the blocking task died.
    pub async fn call<T, F>(&self, f: F) -> ApiResult<T>
    where
        F: FnOnce(&mut Catalogue) -> ApiResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let mut guard = inner.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut guard)
        })
        .await
        .map_err(|e| ApiError::from(DbError::Task(e.to_string())))?
    }

    /// Runs `f` with the catalogue on the current thread (start-up, commands, tests).
    pub fn blocking<T>(&self, f: impl FnOnce(&mut Catalogue) -> T) -> T {
        let mut guard = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }
}

/// Runs `f` in a `BEGIN IMMEDIATE` transaction, committing if it succeeds.
///
/// # Errors
/// What `f` returns, or SQLite's error (as a 500).
pub fn immediate<T, E: From<DbError>>(
    conn: &mut Connection,
    f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, E>,
) -> Result<T, E> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(DbError::from)?;
    let value = f(&tx)?;
    tx.commit().map_err(DbError::from)?;
    Ok(value)
}

/// Milliseconds from the Unix epoch to 2025-01-01T00:00:00Z, where IDs' clocks start.
const ID_EPOCH_MS: i64 = 1_735_689_600_000;

/// A new row ID: time-ordered and random, never a count. Its bits are the milliseconds
/// since 2025 (41 bits, enough until 2094) over 12 random bits, so IDs sort by creation,
/// stay below 2^53 (exact in every JSON reader), and say nothing about how many objects
/// of any kind the server holds. Within one process they only grow: a collision in the
/// same millisecond, or a clock stepping back, moves on by a random step.
pub fn new_id() -> i64 {
    use rand_core::RngCore as _;
    use std::sync::atomic::{AtomicI64, Ordering};
    static LAST: AtomicI64 = AtomicI64::new(0);
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .saturating_sub(ID_EPOCH_MS)
        .clamp(0, (1 << 41) - 1);
    let random = i64::from(rand_core::OsRng.next_u32() & 0xfff);
    let candidate = (ms << 12) | random;
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let id = if candidate > last {
            candidate
        } else {
            last + 1 + (random & 0xff)
        };
        match LAST.compare_exchange_weak(last, id, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return id,
            Err(seen) => last = seen,
        }
    }
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Unix seconds as RFC 3339 UTC, as the API writes times.
pub fn rfc3339(unix: i64) -> String {
    jiff::Timestamp::from_second(unix)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Column `index`'s row ID as a typed ID: a stored ID that is not positive is a
/// conversion error, never a default.
///
/// # Errors
/// `FromSqlConversionFailure` naming the column.
pub fn typed_id<T: TryFrom<i64>>(index: usize, raw: i64) -> rusqlite::Result<T> {
    T::try_from(raw).map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Integer,
            format!("{raw} is not a row ID").into(),
        )
    })
}

/// Column `index` as one of a closed set of names ([`coffer_protocol::status`]): a
/// stored name the set lacks is a conversion error, never a default.
///
/// # Errors
/// SQLite's, or `FromSqlConversionFailure` naming the column.
pub fn named<T>(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<T>
where
    T: std::str::FromStr<Err = coffer_protocol::status::UnknownName>,
{
    let text: String = row.get(index)?;
    text.parse()
        .map_err(|e: coffer_protocol::status::UnknownName| {
            rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, e.into())
        })
}

/// Whether an error is a broken `UNIQUE` (or other) constraint.
pub fn is_constraint(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
}
