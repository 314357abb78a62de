//! Multipart uploads to the embedded store: the upload and its parts' metadata (the
//! parts' bytes are files in the staging folder).

use coffer_adapters::catalogue::rusqlite::{params, Connection, OptionalExtension};

use super::now;
use super::DbResult;

/// An upload in progress.
#[derive(Debug, Clone)]
pub struct Upload {
    /// Its ID (random hex).
    pub id: String,
    /// Bucket.
    pub bucket: String,
    /// The object key it will become.
    pub key: String,
    /// Whether parts must carry SHA-256 checksums.
    pub checksum: bool,
}

/// A part received.
#[derive(Debug, Clone)]
pub struct Part {
    /// 1 to 10 000.
    pub number: u16,
    /// Bytes.
    pub size: u64,
    /// MD5 in hex, as S3 gives parts.
    pub etag: String,
    /// SHA-256 in base64, if it carried one.
    pub sha256: Option<String>,
}

/// Starts an upload.
///
/// # Errors
/// SQLite's.
pub fn create(conn: &Connection, u: &Upload) -> DbResult<()> {
    conn.execute(
        "INSERT INTO uploads (id, bucket, key, checksum, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![u.id, u.bucket, u.key, u.checksum, now()],
    )?;
    Ok(())
}

/// Upload `id` to `bucket`/`key`, if it exists.
///
/// # Errors
/// SQLite's.
pub fn get(conn: &Connection, id: &str, bucket: &str, key: &str) -> DbResult<Option<Upload>> {
    Ok(conn
        .query_row(
            "SELECT id, bucket, key, checksum FROM uploads WHERE id = ?1 AND bucket = ?2
             AND key = ?3",
            params![id, bucket, key],
            |row| {
                Ok(Upload {
                    id: row.get(0)?,
                    bucket: row.get(1)?,
                    key: row.get(2)?,
                    checksum: row.get(3)?,
                })
            },
        )
        .optional()?)
}

/// Records (or replaces) a part.
///
/// # Errors
/// SQLite's.
pub fn put_part(conn: &Connection, upload: &str, p: &Part) -> DbResult<()> {
    conn.execute(
        "INSERT INTO upload_parts (upload_id, part_number, size, etag, sha256)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (upload_id, part_number) DO UPDATE
         SET size = excluded.size, etag = excluded.etag, sha256 = excluded.sha256",
        params![upload, p.number, p.size, p.etag, p.sha256],
    )?;
    Ok(())
}

/// The parts of an upload, by number.
///
/// # Errors
/// SQLite's.
pub fn parts(conn: &Connection, upload: &str) -> DbResult<Vec<Part>> {
    let mut st = conn.prepare(
        "SELECT part_number, size, etag, sha256 FROM upload_parts WHERE upload_id = ?1
         ORDER BY part_number",
    )?;
    let rows = st.query_map([upload], |row| {
        Ok(Part {
            number: row.get(0)?,
            size: row.get(1)?,
            etag: row.get(2)?,
            sha256: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Forgets an upload and its parts.
///
/// # Errors
/// SQLite's.
pub fn delete(conn: &Connection, id: &str) -> DbResult<()> {
    conn.execute("DELETE FROM uploads WHERE id = ?1", [id])?;
    Ok(())
}

/// Forgets uploads started before `before` (abandoned) and returns their IDs, so the
/// caller can remove their staged parts.
///
/// # Errors
/// SQLite's.
pub fn remove_stale(conn: &Connection, before: i64) -> DbResult<Vec<String>> {
    let mut st = conn.prepare("DELETE FROM uploads WHERE created_at < ?1 RETURNING id")?;
    let rows = st.query_map([before], |row| row.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What the embedded store keeps about a stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Its size when recorded.
    pub size: u64,
    /// Its ETag (without quotes).
    pub etag: String,
    /// Its SHA-256 in base64, for single puts.
    pub sha256: Option<String>,
}

/// Records (replacing) an object's metadata.
///
/// # Errors
/// SQLite's.
pub fn put_meta(conn: &Connection, bucket: &str, key: &str, m: &ObjectMeta) -> DbResult<()> {
    conn.execute(
        "INSERT INTO object_meta (bucket, key, size, etag, sha256) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (bucket, key) DO UPDATE
         SET size = excluded.size, etag = excluded.etag, sha256 = excluded.sha256",
        params![bucket, key, m.size, m.etag, m.sha256],
    )?;
    Ok(())
}

/// An object's metadata, if recorded.
///
/// # Errors
/// SQLite's.
pub fn meta(conn: &Connection, bucket: &str, key: &str) -> DbResult<Option<ObjectMeta>> {
    Ok(conn
        .query_row(
            "SELECT size, etag, sha256 FROM object_meta WHERE bucket = ?1 AND key = ?2",
            params![bucket, key],
            |row| {
                Ok(ObjectMeta {
                    size: row.get(0)?,
                    etag: row.get(1)?,
                    sha256: row.get(2)?,
                })
            },
        )
        .optional()?)
}

/// Forgets an object's metadata.
///
/// # Errors
/// SQLite's.
pub fn delete_meta(conn: &Connection, bucket: &str, key: &str) -> DbResult<()> {
    conn.execute(
        "DELETE FROM object_meta WHERE bucket = ?1 AND key = ?2",
        params![bucket, key],
    )?;
    Ok(())
}
