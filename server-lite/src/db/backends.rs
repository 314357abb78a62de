//! S3 backends an admin registered (their secret keys sealed under the KEK).

use coffer_adapters::catalogue::rusqlite::{self, params, Connection, OptionalExtension, Row};

use super::now;
use super::DbResult;

/// A stored S3 backend (the secret stays sealed).
#[derive(Debug, Clone)]
pub struct BackendRow {
    /// ID.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// The service's URL.
    pub endpoint: String,
    /// Signing region.
    pub region: String,
    /// Bucket.
    pub bucket: String,
    /// Path-style addressing.
    pub path_style: bool,
    /// Access key ID.
    pub access_key_id: String,
    /// The secret key sealed under the KEK.
    pub secret_sealed: Vec<u8>,
    /// When it was created.
    pub created_at: i64,
}

/// Stores a backend whose probe succeeded.
///
/// # Errors
/// SQLite's.
pub fn insert_backend(conn: &Connection, b: &BackendRow, kek_id: &str) -> rusqlite::Result<i64> {
    let at = now();
    conn.execute(
        "INSERT INTO backends (id, name, endpoint, region, bucket, path_style, access_key_id,
                               secret_sealed, kek_id, created_at, tested_at)
         VALUES (?10, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
        params![
            b.name,
            b.endpoint,
            b.region,
            b.bucket,
            b.path_style,
            b.access_key_id,
            b.secret_sealed,
            kek_id,
            at,
            super::new_id()
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

fn backend_from_row(row: &Row<'_>) -> rusqlite::Result<BackendRow> {
    Ok(BackendRow {
        id: row.get(0)?,
        name: row.get(1)?,
        endpoint: row.get(2)?,
        region: row.get(3)?,
        bucket: row.get(4)?,
        path_style: row.get(5)?,
        access_key_id: row.get(6)?,
        secret_sealed: row.get(7)?,
        created_at: row.get(8)?,
    })
}

const BACKEND_COLUMNS: &str =
    "id, name, endpoint, region, bucket, path_style, access_key_id, secret_sealed, created_at";

/// The backend `id`, if any.
///
/// # Errors
/// SQLite's.
pub fn backend(conn: &Connection, id: i64) -> DbResult<Option<BackendRow>> {
    Ok(conn
        .query_row(
            &format!("SELECT {BACKEND_COLUMNS} FROM backends WHERE id = ?1"),
            [id],
            backend_from_row,
        )
        .optional()?)
}

/// Every backend.
///
/// # Errors
/// SQLite's.
pub fn backends(conn: &Connection) -> DbResult<Vec<BackendRow>> {
    let mut st = conn.prepare(&format!(
        "SELECT {BACKEND_COLUMNS} FROM backends ORDER BY id"
    ))?;
    let rows = st.query_map([], backend_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Replaces a backend's sealed secret (KEK rotation).
///
/// # Errors
/// SQLite's.
pub fn reseal_backend(conn: &Connection, id: i64, sealed: &[u8], kek_id: &str) -> DbResult<()> {
    conn.execute(
        "UPDATE backends SET secret_sealed = ?2, kek_id = ?3 WHERE id = ?1",
        params![id, sealed, kek_id],
    )?;
    Ok(())
}
