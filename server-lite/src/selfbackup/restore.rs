//! Putting a self-backup's database in place of the live one.
//!
//! In order: refuse a backup whose schema is newer than this binary's; take a
//! pre-restore self-backup of the live database (when it opens and self-backups are set
//! up); stop the running server if there is one (SIGTERM: it stops accepting requests
//! and finishes those in flight); put the backup's database in place atomically (written
//! beside it, synced, renamed over it; the old write-ahead log removed first so it
//! cannot be replayed onto the restored file); write the backup's KEK where there is
//! none (a new machine); open the database, which runs the migrations of a backup
//! older than this binary, and check `PRAGMA integrity_check`; record the restore in
//! the audit log; start the server again with its arguments if it was running.
//!
//! Runs in flight at the backup's time are, in the restored database, running with a
//! lapsed lease or queued: the scheduler fails the former as timed out at its first
//! tick, and agents take the latter again. Runs and restore points made after the
//! backup are gone from the database; their snapshots stay in the repositories.

use std::path::Path;
use std::time::Duration;

use coffer_core::SecretKey;
use serde::Serialize;

use super::format::{Contents, Reason};
use super::{process, Made, Result, SelfBackupError, DATABASE_FILE};

/// How long a stopping or starting server is waited for.
const WAIT: Duration = Duration::from_secs(60);

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    /// The pre-restore self-backup, if one was made.
    pub pre_restore: Option<Made>,
    /// Why none was made.
    pub pre_restore_skipped: Option<String>,
    /// Whether a running server was stopped (and started again).
    pub restarted_server: Option<u32>,
    /// Schema version after migrations.
    pub schema_version: u32,
    /// Whether the backup's KEK was written to the data directory (there was none).
    pub kek_written: bool,
}

/// Restores `contents` into `data_dir`. `kek` is the live KEK when known (for the
/// pre-restore backup).
///
/// # Errors
/// A newer schema; a running server that does not stop; I/O; a restored database
/// that fails its integrity check.
pub fn restore(
    data_dir: &Path,
    kek: Option<&SecretKey>,
    contents: &Contents,
    source: &str,
) -> Result<Restored> {
    let supported = crate::db::schema_version_supported();
    if contents.metadata.schema_version > supported {
        return Err(SelfBackupError::Usage(format!(
            "the backup's schema ({}) is newer than this coffer-server's ({supported}): \
             restore it with coffer-server {} or later",
            contents.metadata.schema_version, contents.metadata.server_version
        )));
    }
    if !data_dir.exists() {
        // A new machine's: the server's alone, as `serve` makes it.
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .map_err(|e| SelfBackupError::Io(format!("{}: {e}", data_dir.display())))?;
    }
    // The live state first, in case this restore was the mistake.
    let db_path = data_dir.join(DATABASE_FILE);
    let readable = super::open_live(data_dir).and_then(|c| super::counts_of(&c).map(|_| ()));
    let (pre_restore, pre_restore_skipped) = match (kek, readable) {
        _ if !db_path.exists() => (
            None,
            Some("there is no live database here: the restore creates it".to_owned()),
        ),
        (_, Err(e)) => {
            // Kept aside, not overwritten: it may still hold something someone needs.
            let aside = data_dir.join(format!("{DATABASE_FILE}.unreadable-{}", crate::db::now()));
            std::fs::rename(&db_path, &aside)
                .map_err(|e| SelfBackupError::Io(format!("{}: {e}", db_path.display())))?;
            (
                None,
                Some(format!(
                    "the live database does not open ({e}); it was moved to {}",
                    aside.display()
                )),
            )
        }
        (Some(kek), Ok(())) => match super::make(data_dir, kek, Reason::PreRestore) {
            Ok(made) => (Some(made), None),
            Err(SelfBackupError::NotSetUp) => {
                (None, Some("self-backups are not set up here".to_owned()))
            }
            Err(e) => {
                return Err(SelfBackupError::Io(format!(
                    "the pre-restore self-backup failed, so nothing was restored: {e}"
                )))
            }
        },
        (None, Ok(())) => (
            None,
            Some("the live KEK is not available (no KEK file in the data directory)".to_owned()),
        ),
    };
    let running = process::running(data_dir)?;
    if let Some(server) = &running {
        process::stop(data_dir, server, WAIT)?;
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".restoring-")
        .tempfile_in(data_dir)
        .map_err(|e| SelfBackupError::Io(format!("{}: {e}", data_dir.display())))?;
    {
        use std::io::Write as _;
        tmp.write_all(&contents.database)
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| SelfBackupError::Io(format!("writing the restored database: {e}")))?;
    }
    for suffix in ["-wal", "-shm"] {
        let side = data_dir.join(format!("{DATABASE_FILE}{suffix}"));
        match std::fs::remove_file(&side) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(SelfBackupError::Io(format!("{}: {e}", side.display()))),
        }
    }
    tmp.persist(&db_path)
        .map_err(|e| SelfBackupError::Io(format!("{}: {}", db_path.display(), e.error)))?;
    if let Ok(dir) = std::fs::File::open(data_dir) {
        let _ = dir.sync_all();
    }
    let kek_path = data_dir.join(crate::kek::DEFAULT_KEK_FILE);
    let kek_written = if kek.is_none() && !kek_path.exists() {
        crate::kek::write_file(&kek_path, &contents.kek)
            .map_err(|e| SelfBackupError::Io(format!("{}: {e}", kek_path.display())))?;
        true
    } else {
        false
    };
    // Opening migrates an older schema.
    let db = crate::db::Db::open(&db_path)
        .map_err(|e| SelfBackupError::Database(format!("the restored database: {e}")))?;
    let schema_version = db.blocking(|cat| -> Result<u32> {
        let conn = cat.connection();
        let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(SelfBackupError::Database(format!(
                "the restored database fails its integrity check: {check}"
            )));
        }
        super::refresh_settings_file(conn, data_dir)?;
        crate::db::audit::record(
            conn,
            &crate::db::audit::AuditEntry {
                tenant_id: None,
                actor: "system".to_owned(),
                action: "self_backup.restore",
                target: format!("self-backup:{source}"),
                outcome: crate::db::audit::AuditOutcome::Ok,
                detail: format!(
                    "made {} ({}), schema {} (now {supported})",
                    contents.metadata.created_at,
                    contents.metadata.reason.as_str(),
                    contents.metadata.schema_version
                ),
            },
        )
        .map_err(|e| SelfBackupError::Database(e.to_string()))?;
        Ok(supported)
    })?;
    drop(db);
    let restarted_server = match &running {
        Some(server) => Some(process::start(data_dir, &server.exe, &server.args, WAIT)?),
        None => None,
    };
    Ok(Restored {
        pre_restore,
        pre_restore_skipped,
        restarted_server,
        schema_version,
        kek_written,
    })
}
