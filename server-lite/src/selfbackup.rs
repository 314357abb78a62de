//! The server backing itself up (FORMAT.md §26): a consistent copy of its database
//! (SQLite's online backup API, so it runs while the server serves), its settings and
//! its KEK, sealed to a recovery key whose private half only the admin holds (a
//! recovery kit, and optionally a passphrase), written to a local folder or a registered
//! S3 backend, the last N kept; on the admin's schedule (weekly by default), by hand,
//! and before a restore or an upgrade.
//!
//! - `format`: the file;
//! - `preview`: what a restore would change, compared with the live database;
//! - `restore`: swapping the database for a backup's;
//! - `process`: the running server's lock, and stopping and starting it;
//! - `upgrade`: replacing the binary, checking health, rolling back.

pub mod format;
pub mod preview;
pub mod process;
pub mod restore;
pub mod upgrade;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use coffer_adapters::catalogue::rusqlite::{self, params, Connection, OptionalExtension};
use coffer_adapters::storage::{LocalStorage, ObjectKey, PutMode, Storage};
use coffer_core::{KeyId, SecretKey};
use serde::{Deserialize, Serialize};

use crate::db::notify::AlertKind;
use crate::db::{now, rfc3339};
use format::{Contents, Counts, Digest256, Metadata, Reason, Recipient};

/// The database file's name in the data directory.
pub const DATABASE_FILE: &str = "coffer-server.sqlite";
/// The settings the running server writes at start, copied into each self-backup.
pub const CONFIG_FILE: &str = "server-config.json";
/// Where self-backups go and whose key they are sealed to, beside the database, so an
/// emergency restore finds them when the database does not open.
pub const SETTINGS_FILE: &str = "self-backup.json";
/// The default schedule: Sundays at 03:00 UTC.
pub const DEFAULT_SCHEDULE: &str = "0 3 * * 0";
/// Self-backups kept by default.
pub const DEFAULT_KEEP: u32 = 8;

/// What goes wrong with self-backups.
#[derive(Debug, thiserror::Error)]
pub enum SelfBackupError {
    /// `self-backup init` was not run.
    #[error("self-backups are not set up: run `coffer-server self-backup init` first")]
    NotSetUp,
    /// The caller's mistake, named.
    #[error("{0}")]
    Usage(String),
    /// The file.
    #[error(transparent)]
    Format(#[from] format::FormatError),
    /// Storage.
    #[error("self-backup storage: {0}")]
    Storage(String),
    /// The database.
    #[error("database: {0}")]
    Database(String),
    /// Local files.
    #[error("{0}")]
    Io(String),
}

impl From<rusqlite::Error> for SelfBackupError {
    fn from(e: rusqlite::Error) -> Self {
        SelfBackupError::Database(e.to_string())
    }
}

impl From<coffer_adapters::Error> for SelfBackupError {
    fn from(e: coffer_adapters::Error) -> Self {
        SelfBackupError::Storage(e.to_string())
    }
}

type Result<T> = std::result::Result<T, SelfBackupError>;

/// Where self-backups go.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Destination {
    /// A folder on this machine (best on another disk, or a mounted share).
    Local {
        /// The folder.
        path: PathBuf,
    },
    /// A registered S3 backend, under a prefix.
    Backend {
        /// The backend.
        backend_id: i64,
        /// The prefix in its bucket.
        prefix: String,
    },
}

/// The settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where they go.
    pub destination: Destination,
    /// How many are kept.
    pub keep: u32,
    /// When (cron, UTC).
    pub schedule: String,
    /// The recovery key's public half.
    pub recipient: Recipient,
    /// When the next scheduled one is due.
    pub next_run_at: Option<i64>,
}

/// What the admin keeps beside the database (no secret in it).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SettingsFile {
    /// Where they go.
    pub destination: Destination,
    /// The recovery key's ID.
    pub key_id: String,
    /// For a backend destination, its endpoint, bucket and access key ID (its secret is
    /// in the database, sealed, and in the environment for an emergency restore).
    #[serde(default)]
    pub backend: Option<BackendLocation>,
}

/// Where a backend destination is, without its secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackendLocation {
    /// The endpoint URL.
    pub endpoint: String,
    /// The region.
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// Path-style addressing.
    pub path_style: bool,
    /// The access key ID.
    pub access_key_id: String,
}

/// Reads the settings row.
///
/// # Errors
/// SQLite's; stored data that does not read back.
pub fn settings(conn: &Connection) -> Result<Option<Settings>> {
    let row = conn
        .query_row(
            "SELECT destination, keep, schedule, key_id, public_key, passphrase_envelope,
                    next_run_at
             FROM self_backup_settings WHERE id = 1",
            [],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, u32>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, Vec<u8>>(3)?,
                    row.get::<_, Vec<u8>>(4)?,
                    row.get::<_, Option<Vec<u8>>>(5)?,
                    row.get::<_, Option<i64>>(6)?,
                ))
            },
        )
        .optional()?;
    let Some((dest, keep, schedule, key_id, public, envelope, next)) = row else {
        return Ok(None);
    };
    let destination = serde_json::from_str(&dest)
        .map_err(|e| SelfBackupError::Database(format!("self-backup destination: {e}")))?;
    let key_id: [u8; 16] = key_id
        .try_into()
        .map_err(|_| SelfBackupError::Database("self-backup key ID".into()))?;
    let public: [u8; 32] = public
        .try_into()
        .map_err(|_| SelfBackupError::Database("self-backup public key".into()))?;
    Ok(Some(Settings {
        destination,
        keep,
        schedule,
        recipient: Recipient {
            key_id: KeyId(key_id),
            public: coffer_adapters::repo::recipient::RecipientPublic::from_bytes(public),
            envelope,
        },
        next_run_at: next,
    }))
}

/// What `init` was asked.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Where they go.
    pub destination: Destination,
    /// How many are kept.
    pub keep: u32,
    /// When (cron, UTC).
    pub schedule: String,
    /// A passphrase that opens them too (besides the kit).
    pub passphrase: Option<zeroize::Zeroizing<String>>,
}

/// Sets self-backups up (or anew, with a new recovery key): makes the recovery key,
/// stores its public half and the settings, writes the settings file beside the
/// database. Returns the recovery key, for the caller to show once as a kit.
///
/// # Errors
/// A schedule or destination refused; SQLite's.
pub fn init(data_dir: &Path, options: &InitOptions) -> Result<SecretKey> {
    let zone = chrono_tz::Tz::UTC;
    let next = crate::scheduler::next_after(&options.schedule, zone, now())
        .map_err(|e| SelfBackupError::Usage(format!("--schedule: {e}")))?;
    if !(1..=1000).contains(&options.keep) {
        return Err(SelfBackupError::Usage("--keep: from 1 to 1000".into()));
    }
    let conn = open_live(data_dir)?;
    let backend = match &options.destination {
        Destination::Local { path } => {
            if !path.is_absolute() {
                return Err(SelfBackupError::Usage(format!(
                    "--to {}: give an absolute path",
                    path.display()
                )));
            }
            std::fs::create_dir_all(path)
                .map_err(|e| SelfBackupError::Io(format!("{}: {e}", path.display())))?;
            None
        }
        Destination::Backend { backend_id, prefix } => {
            if prefix.is_empty() || prefix.starts_with('/') || prefix.contains("..") {
                return Err(SelfBackupError::Usage(
                    "--prefix: a relative key prefix such as coffer-server/self-backups".into(),
                ));
            }
            Some(backend_location(&conn, *backend_id)?.ok_or_else(|| {
                SelfBackupError::Usage(format!("--backend {backend_id}: no such backend"))
            })?)
        }
    };
    let r = SecretKey::generate(&mut rand_core::OsRng);
    let recipient = Recipient::of(&r, options.passphrase.as_deref().map(String::as_bytes))?;
    conn.execute(
        "INSERT INTO self_backup_settings (id, destination, keep, schedule, key_id, public_key,
                                           passphrase_envelope, next_run_at, updated_at)
         VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (id) DO UPDATE SET destination = ?1, keep = ?2, schedule = ?3,
             key_id = ?4, public_key = ?5, passphrase_envelope = ?6, next_run_at = ?7,
             updated_at = ?8",
        params![
            serde_json::to_string(&options.destination).unwrap_or_default(),
            options.keep,
            options.schedule,
            recipient.key_id.as_bytes().to_vec(),
            recipient.public.as_bytes().to_vec(),
            recipient.envelope,
            next,
            now()
        ],
    )?;
    crate::db::audit::record(
        &conn,
        &crate::db::audit::AuditEntry {
            tenant_id: None,
            actor: "system".to_owned(),
            action: "self_backup.init",
            target: format!("recovery-key:{}", r.id()),
            outcome: crate::db::audit::AuditOutcome::Ok,
            detail: format!(
                "keep {}, schedule {:?}, passphrase {}",
                options.keep,
                options.schedule,
                options.passphrase.is_some()
            ),
        },
    )
    .map_err(|e| SelfBackupError::Database(e.to_string()))?;
    write_settings_file(
        data_dir,
        &SettingsFile {
            destination: options.destination.clone(),
            key_id: r.id().to_string(),
            backend,
        },
    )?;
    Ok(r)
}

fn backend_location(conn: &Connection, backend_id: i64) -> Result<Option<BackendLocation>> {
    Ok(crate::db::backends::backend(conn, backend_id)
        .map_err(|e| SelfBackupError::Database(e.to_string()))?
        .map(|row| BackendLocation {
            endpoint: row.endpoint.to_string(),
            region: row.region.clone(),
            bucket: row.bucket.clone(),
            path_style: row.path_style,
            access_key_id: row.access_key_id.clone(),
        }))
}

fn write_settings_file(data_dir: &Path, file: &SettingsFile) -> Result<()> {
    write_file(
        &data_dir.join(SETTINGS_FILE),
        &serde_json::to_vec_pretty(file).unwrap_or_default(),
    )
}

/// Writes the settings file from the database's settings (after a restore on a new
/// machine, so the next emergency restore finds the self-backups without being told).
///
/// # Errors
/// SQLite's; I/O.
pub fn refresh_settings_file(conn: &Connection, data_dir: &Path) -> Result<()> {
    let Some(s) = settings(conn)? else {
        return Ok(());
    };
    let backend = match &s.destination {
        Destination::Local { .. } => None,
        Destination::Backend { backend_id, .. } => backend_location(conn, *backend_id)?,
    };
    write_settings_file(
        data_dir,
        &SettingsFile {
            destination: s.destination,
            key_id: s.recipient.key_id.to_string(),
            backend,
        },
    )
}

/// The live database, read-write, waiting for the running server's writes.
///
/// # Errors
/// There is no database; SQLite's.
pub fn open_live(data_dir: &Path) -> Result<Connection> {
    let path = data_dir.join(DATABASE_FILE);
    if !path.exists() {
        return Err(SelfBackupError::Usage(format!(
            "{}: no server database here (--data-dir)",
            path.display()
        )));
    }
    let conn = Connection::open(&path)?;
    conn.busy_timeout(coffer_adapters::catalogue::BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(conn)
}

/// Writes `data` to `path` through a temporary file and a rename (mode 0600).
///
/// # Errors
/// I/O, naming the file.
pub fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    let what = |e: std::io::Error| SelfBackupError::Io(format!("{}: {e}", path.display()));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(what)?;
    tmp.write_all(data)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(what)?;
    tmp.persist(path).map_err(|e| what(e.error))?;
    Ok(())
}

/// The store and prefix of a destination (a backend's secret opened with `kek`).
///
/// # Errors
/// A backend that is gone or does not open.
pub fn storage(
    conn: &Connection,
    kek: &SecretKey,
    destination: &Destination,
) -> Result<(Arc<dyn Storage>, String)> {
    match destination {
        Destination::Local { path } => Ok((Arc::new(LocalStorage::open(path)?), String::new())),
        Destination::Backend { backend_id, prefix } => {
            let row = crate::db::backends::backend(conn, *backend_id)
                .map_err(|e| SelfBackupError::Database(e.to_string()))?
                .ok_or_else(|| {
                    SelfBackupError::Storage(format!("backend {backend_id} no longer exists"))
                })?;
            let secret = crate::keys::open_secret(
                kek,
                &crate::keys::backend_context(&row.name),
                &row.secret_sealed,
            )
            .map_err(|_| SelfBackupError::Storage("the backend's secret does not open".into()))?;
            let secret = String::from_utf8_lossy(&secret).into_owned();
            let client =
                crate::stores::s3_client(&row, &secret).map_err(SelfBackupError::Storage)?;
            Ok((Arc::new(client), prefix.clone()))
        }
    }
}

fn key_in(prefix: &str, name: &str) -> Result<ObjectKey> {
    let full = if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{}/{name}", prefix.trim_end_matches('/'))
    };
    ObjectKey::new(full).map_err(|e| SelfBackupError::Storage(e.to_string()))
}

/// A self-backup in its destination.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// The file's name.
    pub name: String,
    /// Its size.
    pub size: u64,
}

/// The self-backups in a destination, oldest first (their names start with the time).
///
/// # Errors
/// Storage errors.
pub fn list_in(store: &dyn Storage, prefix: &str) -> Result<Vec<Listed>> {
    let list_prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("{}/", prefix.trim_end_matches('/'))
    };
    let mut out: Vec<Listed> = store
        .list(&list_prefix)?
        .into_iter()
        .filter_map(|meta| {
            let name = meta.key.as_str().rsplit('/').next()?.to_owned();
            (name.starts_with("selfbackup-") && name.ends_with(".cfsb")).then_some(Listed {
                name,
                size: meta.size,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Reads self-backup `name` from a destination.
///
/// # Errors
/// Storage errors (a missing one too).
pub fn fetch(store: &dyn Storage, prefix: &str, name: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    store
        .get(&key_in(prefix, name)?)?
        .read_to_end(&mut out)
        .map_err(|e| SelfBackupError::Storage(format!("reading {name}: {e}")))?;
    Ok(out)
}

/// A self-backup made.
#[derive(Debug, Clone, Serialize)]
pub struct Made {
    /// Its name in the destination.
    pub name: String,
    /// The file's size.
    pub size: u64,
    /// Its metadata.
    pub metadata: Metadata,
    /// Older self-backups removed to keep the last N.
    pub removed: Vec<String>,
}

/// A consistent copy of the live database (SQLite's online backup API: it runs beside
/// the server's writers), read into memory.
///
/// # Errors
/// SQLite's; I/O.
pub fn snapshot_database(data_dir: &Path) -> Result<Vec<u8>> {
    let conn = open_live(data_dir)?;
    let tmp = tempfile::Builder::new()
        .prefix(".self-backup-")
        .suffix(".sqlite")
        .tempfile_in(data_dir)
        .map_err(|e| SelfBackupError::Io(format!("{}: {e}", data_dir.display())))?;
    conn.backup(rusqlite::MAIN_DB, tmp.path(), None)?;
    std::fs::read(tmp.path()).map_err(|e| SelfBackupError::Io(format!("reading the copy: {e}")))
}

/// Row counts and schema version of a database file.
///
/// # Errors
/// SQLite's.
pub fn counts_of(conn: &Connection) -> Result<(Counts, u32)> {
    let count = |table: &str| -> Result<u64> {
        Ok(conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?)
    };
    let version: u32 = conn
        .query_row(
            "SELECT version FROM schema_version WHERE component = 'server'",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    Ok((
        Counts {
            tenants: count("tenants")?,
            agents: count("agents")?,
            jobs: count("jobs")?,
            runs: count("runs")?,
            restore_points: count("restore_points")?,
        },
        version,
    ))
}

/// Opens a database image (a backup's) as a read-only connection over a temporary file.
///
/// # Errors
/// I/O; SQLite's.
pub fn open_image(image: &[u8], dir: &Path) -> Result<(Connection, tempfile::TempPath)> {
    let tmp = tempfile::Builder::new()
        .prefix(".self-backup-image-")
        .suffix(".sqlite")
        .tempfile_in(dir)
        .map_err(|e| SelfBackupError::Io(format!("{}: {e}", dir.display())))?;
    std::fs::write(tmp.path(), image)
        .map_err(|e| SelfBackupError::Io(format!("writing a copy: {e}")))?;
    let path = tmp.into_temp_path();
    let conn = Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    Ok((conn, path))
}

/// Makes a self-backup of the server in `data_dir` now, for `reason`, and keeps the
/// last N. Its outcome is recorded in the database (a failure also as a
/// `self_backup.failed` alert to the server's channels, and in the audit log).
///
/// # Errors
/// Not set up; what failed.
pub fn make(data_dir: &Path, kek: &SecretKey, reason: Reason) -> Result<Made> {
    let conn = open_live(data_dir)?;
    let settings = settings(&conn)?.ok_or(SelfBackupError::NotSetUp)?;
    let at = now();
    let name = format!(
        "selfbackup-{}-{}-{}.cfsb",
        jiff::Timestamp::from_second(at)
            .map(|t| t.strftime("%Y%m%dT%H%M%SZ").to_string())
            .unwrap_or_default(),
        reason.as_str(),
        &crate::token::random_hex(4)
    );
    let result = make_named(&conn, data_dir, kek, reason, &settings, &name, at);
    let (status, size, sha, error) = match &result {
        Ok(made) => (
            "succeeded",
            Some(made.size),
            Some(made.metadata.database.sha256.clone()),
            None,
        ),
        Err(e) => ("failed", None, None, Some(e.to_string())),
    };
    conn.execute(
        "INSERT INTO self_backups (id, name, reason, status, created_at, size, sha256, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            crate::db::new_id(),
            name,
            reason.as_str(),
            status,
            at,
            size,
            sha,
            error
        ],
    )?;
    match &result {
        Ok(made) => crate::db::audit::record(
            &conn,
            &crate::db::audit::AuditEntry {
                tenant_id: None,
                actor: "system".to_owned(),
                action: "self_backup.create",
                target: format!("self-backup:{name}"),
                outcome: crate::db::audit::AuditOutcome::Ok,
                detail: format!(
                    "{}, {} bytes, database sha256 {}; removed {}",
                    reason.as_str(),
                    made.size,
                    made.metadata.database.sha256,
                    made.removed.len()
                ),
            },
        )
        .map_err(|e| SelfBackupError::Database(e.to_string()))?,
        Err(e) => crate::notify::server_alert(
            &conn,
            AlertKind::SelfBackupFailed,
            "self-backup",
            "The server's self-backup failed",
            &format!("The {} self-backup {name} failed: {e}", reason.as_str()),
            at,
        )
        .map_err(|e| SelfBackupError::Database(e.to_string()))?,
    }
    if result.is_ok() {
        // A success clears the alert of an earlier failure.
        crate::db::notify::resolve(&conn, None, AlertKind::SelfBackupFailed, "self-backup", at)
            .map_err(|e| SelfBackupError::Database(e.to_string()))?;
    }
    result
}

fn make_named(
    conn: &Connection,
    data_dir: &Path,
    kek: &SecretKey,
    reason: Reason,
    settings: &Settings,
    name: &str,
    at: i64,
) -> Result<Made> {
    let database = snapshot_database(data_dir)?;
    let (image, _tmp) = open_image(&database, data_dir)?;
    let (counts, schema_version) = counts_of(&image)?;
    drop(image);
    let config = std::fs::read(data_dir.join(CONFIG_FILE)).unwrap_or_else(|_| b"{}".to_vec());
    let metadata = Metadata {
        format: 1,
        server_version: env!("CARGO_PKG_VERSION").to_owned(),
        schema_version,
        created_at: rfc3339(at),
        reason,
        counts,
        database: Digest256 {
            size: database.len() as u64,
            sha256: format::sha256_hex(&database),
        },
        config_sha256: format::sha256_hex(&config),
        kek_id: kek.id().to_string(),
    };
    let contents = Contents {
        metadata: metadata.clone(),
        kek: crate::repos::copy_key(kek),
        config,
        database,
    };
    let file = format::seal(&settings.recipient, &contents)?;
    let (store, prefix) = storage(conn, kek, &settings.destination)?;
    store.put(
        &key_in(&prefix, name)?,
        &mut file.as_slice(),
        PutMode::CreateOnly,
    )?;
    // Keep the last N: the oldest go (names sort by time).
    let listed = list_in(store.as_ref(), &prefix)?;
    let excess = listed.len().saturating_sub(settings.keep as usize);
    let mut removed = Vec::new();
    for old in listed.into_iter().take(excess) {
        store.delete(&key_in(&prefix, &old.name)?)?;
        removed.push(old.name);
    }
    Ok(Made {
        name: name.to_owned(),
        size: file.len() as u64,
        metadata,
        removed,
    })
}

/// The self-backups recorded in the database, newest first.
///
/// # Errors
/// SQLite's.
pub fn recorded(conn: &Connection, limit: u32) -> Result<Vec<serde_json::Value>> {
    let mut st = conn.prepare(
        "SELECT name, reason, status, created_at, size, sha256, error FROM self_backups
         ORDER BY created_at DESC, id DESC LIMIT ?1",
    )?;
    let rows = st.query_map([limit], |row| {
        Ok(serde_json::json!({
            "name": row.get::<_, String>(0)?,
            "reason": row.get::<_, String>(1)?,
            "status": row.get::<_, String>(2)?,
            "created_at": rfc3339(row.get(3)?),
            "size": row.get::<_, Option<i64>>(4)?,
            "sha256": row.get::<_, Option<String>>(5)?,
            "error": row.get::<_, Option<String>>(6)?,
        }))
    })?;
    Ok(rows.collect::<std::result::Result<_, _>>()?)
}

/// The server's scheduled self-backup: when due, made on a blocking thread and the
/// next due time set. Failures are recorded by [`make`].
pub async fn scheduled(state: &crate::state::AppState) {
    let data_dir = state.config.data_dir.clone();
    let kek = crate::repos::copy_key(&state.kek);
    let outcome = tokio::task::spawn_blocking(move || -> Result<Option<Made>> {
        let conn = open_live(&data_dir)?;
        let Some(s) = settings(&conn)? else {
            return Ok(None);
        };
        let at = now();
        if s.next_run_at.is_none_or(|due| due > at) {
            return Ok(None);
        }
        let next = crate::scheduler::next_after(&s.schedule, chrono_tz::Tz::UTC, at).ok();
        conn.execute(
            "UPDATE self_backup_settings SET next_run_at = ?1 WHERE id = 1",
            [next],
        )?;
        drop(conn);
        make(&data_dir, &kek, Reason::Scheduled).map(Some)
    })
    .await;
    match outcome {
        Ok(Ok(Some(made))) => tracing::info!("scheduled self-backup {} made", made.name),
        Ok(Ok(None)) => {}
        Ok(Err(e)) => tracing::error!("scheduled self-backup failed: {e}"),
        Err(e) => tracing::error!("scheduled self-backup task failed: {e}"),
    }
}
