//! Backups (restore points): one sealed archive and its sealed manifest in storage.
//!
//! A backup is recorded either at once when it is complete ([`Catalogue::record_backup`])
//! or when it starts ([`Catalogue::start_backup`]), so that a crash leaves a `running`
//! row naming the objects to clean up, and then completed or marked failed.
//!
//! Deleting: remove the rows first ([`Catalogue::delete_backup`], [`Catalogue::prune`]),
//! then the objects they return. A crash in between leaves unreferenced objects, which
//! a listing finds; the other order would leave rows pointing at nothing.

use coffer_core::record::ManifestHeader;
use coffer_core::KeyId;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior};

use super::repositories::require_repository;
use super::{
    conversion, key_id_from_hex, key_id_hex, BackupId, Catalogue, OrCatalogue, RepositoryId,
};
use crate::storage::ObjectKey;
use crate::Error;

/// Where a backup stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackupStatus {
    /// Started, not finished: its objects may be partial or missing.
    Running,
    /// Both objects are stored and the summary is recorded.
    Complete,
    /// It did not finish, or a check found it damaged.
    Failed,
}

/// What a complete backup holds, from its manifest, plus what it takes in storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BackupSummary {
    /// Files, directories and links.
    pub entry_count: u64,
    /// Bytes of file content.
    pub content_bytes: u64,
    /// Length of the uncompressed archive (tar) stream.
    pub archive_len: u64,
    /// Length of the compressed stream that was sealed.
    pub compressed_len: u64,
    /// Bytes stored: the sealed archive and the sealed manifest.
    pub stored_bytes: u64,
}

impl BackupSummary {
    /// The summary a manifest header states, with the bytes its objects take in storage.
    pub fn from_manifest(header: &ManifestHeader<'_>, stored_bytes: u64) -> Self {
        BackupSummary {
            entry_count: header.entry_count,
            content_bytes: header.content_bytes,
            archive_len: header.archive_len,
            compressed_len: header.compressed_len,
            stored_bytes,
        }
    }
}

/// A backup to record.
#[derive(Debug, Clone, Copy)]
pub struct NewBackup<'a> {
    /// The repository it belongs to.
    pub repository_id: RepositoryId,
    /// Its name, unique in the repository, 1 to 255 bytes.
    pub name: &'a str,
    /// The sealed archive's object.
    pub archive_key: &'a ObjectKey,
    /// The sealed manifest's object.
    pub manifest_key: &'a ObjectKey,
    /// The host it was made on.
    pub host: &'a str,
    /// When it started, Unix seconds (the manifest's `created`).
    pub created_at: i64,
    /// ID of the key both objects are sealed under.
    pub key_id: KeyId,
}

/// A backup's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// Row ID.
    pub id: BackupId,
    /// The repository it belongs to.
    pub repository_id: RepositoryId,
    /// Its name, unique in the repository.
    pub name: String,
    /// The sealed archive's object.
    pub archive_key: ObjectKey,
    /// The sealed manifest's object.
    pub manifest_key: ObjectKey,
    /// The host it was made on.
    pub host: String,
    /// When it started, Unix seconds.
    pub created_at: i64,
    /// When it completed or failed, Unix seconds; `None` while running.
    pub finished_at: Option<i64>,
    /// Running, complete or failed.
    pub status: BackupStatus,
    /// Its summary: always there when complete, possibly when failed.
    pub summary: Option<BackupSummary>,
    /// ID of the key its objects are sealed under.
    pub key_id: KeyId,
}

impl Catalogue {
    /// Records a complete backup with its summary, in one transaction.
    ///
    /// # Errors
    /// [`Error::CatalogueNotFound`] for a missing repository;
    /// [`Error::CatalogueConstraint`] if the name or an object key is already used in
    /// the repository, or a value is out of range; [`Error::CatalogueMisuse`] for a
    /// count beyond 2^63; [`Error::Catalogue`].
    pub fn record_backup(
        &mut self,
        new: &NewBackup<'_>,
        finished_at: i64,
        summary: &BackupSummary,
    ) -> Result<Backup, Error> {
        self.insert_backup(
            new,
            BackupStatus::Complete,
            Some(finished_at),
            Some(summary),
        )
    }

    /// Records a backup that is starting, as `running`, without a summary.
    ///
    /// # Errors
    /// As [`Catalogue::record_backup`].
    pub fn start_backup(&mut self, new: &NewBackup<'_>) -> Result<Backup, Error> {
        self.insert_backup(new, BackupStatus::Running, None, None)
    }

    /// Completes a running backup with its summary.
    ///
    /// # Errors
    /// [`Error::CatalogueNotFound`]; [`Error::CatalogueMisuse`] unless it is running;
    /// [`Error::Catalogue`].
    pub fn complete_backup(
        &mut self,
        id: BackupId,
        finished_at: i64,
        summary: &BackupSummary,
    ) -> Result<(), Error> {
        let what = || format!("completing {id}");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .or_catalogue(what)?;
        let backup = require_backup(&tx, id)?;
        if backup.status != BackupStatus::Running {
            return Err(Error::CatalogueMisuse {
                what: what(),
                reason: format!("it is {}, not running", status_name(backup.status)),
            });
        }
        tx.execute(
            "UPDATE backups
             SET status = 'complete', finished_at = ?2, entry_count = ?3, content_bytes = ?4,
                 archive_len = ?5, compressed_len = ?6, stored_bytes = ?7
             WHERE id = ?1",
            (
                id.0,
                finished_at,
                summary.entry_count,
                summary.content_bytes,
                summary.archive_len,
                summary.compressed_len,
                summary.stored_bytes,
            ),
        )
        .or_catalogue(what)?;
        tx.commit().or_catalogue(what)
    }

    /// Marks a backup failed: one that did not finish, or a complete one that a check
    /// found damaged (it keeps its summary and finishing time). Marking a failed
    /// backup again changes nothing.
    ///
    /// # Errors
    /// [`Error::CatalogueNotFound`]; [`Error::Catalogue`].
    pub fn mark_failed(&mut self, id: BackupId, finished_at: i64) -> Result<(), Error> {
        let changed = self
            .conn
            .execute(
                "UPDATE backups SET status = 'failed', finished_at = coalesce(finished_at, ?2)
                 WHERE id = ?1",
                (id.0, finished_at),
            )
            .or_catalogue(|| format!("marking {id} failed"))?;
        if changed == 0 {
            return Err(Error::CatalogueNotFound {
                what: id.to_string(),
            });
        }
        Ok(())
    }

    /// The backup with row ID `id`, if any.
    ///
    /// # Errors
    /// [`Error::Catalogue`]; [`Error::CatalogueInvalid`] for a row that does not read.
    pub fn backup(&self, id: BackupId) -> Result<Option<Backup>, Error> {
        select_backup(&self.conn, id)
    }

    /// The backup of `repository` named `name`, if any.
    ///
    /// # Errors
    /// As [`Catalogue::backup`].
    pub fn backup_by_name(
        &self,
        repository: RepositoryId,
        name: &str,
    ) -> Result<Option<Backup>, Error> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM backups WHERE repository_id = ?1 AND name = ?2"),
                (repository.0, name),
                from_row,
            )
            .optional()
            .or_catalogue(|| format!("reading backup {name:?} of {repository}"))
    }

    /// Every backup of `repository`, newest first (by start time, then row ID).
    ///
    /// # Errors
    /// As [`Catalogue::backup`].
    pub fn backups(&self, repository: RepositoryId) -> Result<Vec<Backup>, Error> {
        let what = || format!("listing the backups of {repository}");
        let mut statement = self
            .conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM backups WHERE repository_id = ?1
                 ORDER BY created_at DESC, id DESC"
            ))
            .or_catalogue(what)?;
        let rows = statement
            .query_map([repository.0], from_row)
            .or_catalogue(what)?;
        rows.collect::<Result<_, _>>().or_catalogue(what)
    }

    /// Deletes a backup's row and returns it, so the caller can delete its objects next.
    ///
    /// # Errors
    /// [`Error::CatalogueNotFound`]; [`Error::Catalogue`].
    pub fn delete_backup(&mut self, id: BackupId) -> Result<Backup, Error> {
        let what = || format!("deleting {id}");
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .or_catalogue(what)?;
        let backup = require_backup(&tx, id)?;
        tx.execute("DELETE FROM backups WHERE id = ?1", [id.0])
            .or_catalogue(what)?;
        tx.commit().or_catalogue(what)?;
        Ok(backup)
    }

    /// Deletes several backups of `repository` in one transaction and returns their
    /// rows (in the order of `ids`, duplicates once), for deleting their objects next.
    /// If any of them is missing or belongs to another repository, nothing is deleted.
    ///
    /// # Errors
    /// [`Error::CatalogueNotFound`] naming the first such backup; [`Error::Catalogue`].
    pub fn prune(
        &mut self,
        repository: RepositoryId,
        ids: &[BackupId],
    ) -> Result<Vec<Backup>, Error> {
        let what = || format!("pruning {} backups of {repository}", ids.len());
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .or_catalogue(what)?;
        let mut deleted: Vec<Backup> = Vec::with_capacity(ids.len());
        for &id in ids {
            if deleted.iter().any(|backup| backup.id == id) {
                continue;
            }
            let backup = match select_backup(&tx, id)? {
                Some(backup) if backup.repository_id == repository => backup,
                _ => {
                    return Err(Error::CatalogueNotFound {
                        what: format!("{id} in {repository}"),
                    })
                }
            };
            tx.execute("DELETE FROM backups WHERE id = ?1", [id.0])
                .or_catalogue(what)?;
            deleted.push(backup);
        }
        tx.commit().or_catalogue(what)?;
        Ok(deleted)
    }

    fn insert_backup(
        &mut self,
        new: &NewBackup<'_>,
        status: BackupStatus,
        finished_at: Option<i64>,
        summary: Option<&BackupSummary>,
    ) -> Result<Backup, Error> {
        let what = || format!("recording backup {:?} in {}", new.name, new.repository_id);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .or_catalogue(what)?;
        require_repository(&tx, new.repository_id)?;
        tx.execute(
            "INSERT INTO backups (repository_id, name, archive_key, manifest_key, host,
                                  created_at, finished_at, status, entry_count, content_bytes,
                                  archive_len, compressed_len, stored_bytes, key_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            rusqlite::params![
                new.repository_id.0,
                new.name,
                new.archive_key.as_str(),
                new.manifest_key.as_str(),
                new.host,
                new.created_at,
                finished_at,
                status_name(status),
                summary.map(|s| s.entry_count),
                summary.map(|s| s.content_bytes),
                summary.map(|s| s.archive_len),
                summary.map(|s| s.compressed_len),
                summary.map(|s| s.stored_bytes),
                key_id_hex(&new.key_id),
            ],
        )
        .or_catalogue(what)?;
        let id = BackupId(tx.last_insert_rowid());
        tx.commit().or_catalogue(what)?;
        Ok(Backup {
            id,
            repository_id: new.repository_id,
            name: new.name.to_owned(),
            archive_key: new.archive_key.clone(),
            manifest_key: new.manifest_key.clone(),
            host: new.host.to_owned(),
            created_at: new.created_at,
            finished_at,
            status,
            summary: summary.copied(),
            key_id: new.key_id,
        })
    }
}

fn select_backup(conn: &Connection, id: BackupId) -> Result<Option<Backup>, Error> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM backups WHERE id = ?1"),
        [id.0],
        from_row,
    )
    .optional()
    .or_catalogue(|| format!("reading {id}"))
}

fn require_backup(conn: &Connection, id: BackupId) -> Result<Backup, Error> {
    select_backup(conn, id)?.ok_or_else(|| Error::CatalogueNotFound {
        what: id.to_string(),
    })
}

const COLUMNS: &str = "id, repository_id, name, archive_key, manifest_key, host, created_at, \
                       finished_at, status, entry_count, content_bytes, archive_len, \
                       compressed_len, stored_bytes, key_id";

fn from_row(row: &Row<'_>) -> rusqlite::Result<Backup> {
    let object_key = |index: usize| -> rusqlite::Result<ObjectKey> {
        ObjectKey::new(row.get::<_, String>(index)?).map_err(|e| conversion(index, e))
    };
    let status = match row.get::<_, String>(8)?.as_str() {
        "running" => BackupStatus::Running,
        "complete" => BackupStatus::Complete,
        "failed" => BackupStatus::Failed,
        other => return Err(conversion(8, format!("unknown status {other:?}"))),
    };
    let summary = match row.get::<_, Option<u64>>(9)? {
        Some(entry_count) => Some(BackupSummary {
            entry_count,
            content_bytes: row.get(10)?,
            archive_len: row.get(11)?,
            compressed_len: row.get(12)?,
            stored_bytes: row.get(13)?,
        }),
        None => None,
    };
    Ok(Backup {
        id: BackupId(row.get(0)?),
        repository_id: RepositoryId(row.get(1)?),
        name: row.get(2)?,
        archive_key: object_key(3)?,
        manifest_key: object_key(4)?,
        host: row.get(5)?,
        created_at: row.get(6)?,
        finished_at: row.get(7)?,
        status,
        summary,
        key_id: key_id_from_hex(&row.get::<_, String>(14)?, 14)?,
    })
}

fn status_name(status: BackupStatus) -> &'static str {
    match status {
        BackupStatus::Running => "running",
        BackupStatus::Complete => "complete",
        BackupStatus::Failed => "failed",
    }
}
