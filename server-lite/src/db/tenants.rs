//! Tenants, storage backends and tokens.

use coffer_adapters::catalogue::rusqlite::{self, params, Connection, OptionalExtension, Row};
use serde::Serialize;

use super::{now, rfc3339};
use crate::error::ApiResult;
use crate::token::{TokenHash, TokenKind};

/// A tenant, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    /// ID.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// The S3 backend its destinations use; `null` for the embedded store.
    pub backend_id: Option<String>,
    /// When it was created.
    pub created_at: String,
}

fn tenant_from_row(row: &Row<'_>) -> rusqlite::Result<Tenant> {
    Ok(Tenant {
        id: row.get::<_, i64>(0)?.to_string(),
        name: row.get(1)?,
        backend_id: row.get::<_, Option<i64>>(2)?.map(|b| b.to_string()),
        created_at: rfc3339(row.get(3)?),
    })
}

/// Creates a tenant.
///
/// # Errors
/// SQLite's (a taken name is a constraint error).
pub fn create_tenant(
    conn: &Connection,
    name: &str,
    backend_id: Option<i64>,
) -> rusqlite::Result<Tenant> {
    let at = now();
    conn.execute(
        "INSERT INTO tenants (name, backend_id, created_at) VALUES (?1, ?2, ?3)",
        params![name, backend_id, at],
    )?;
    Ok(Tenant {
        id: conn.last_insert_rowid().to_string(),
        name: name.to_owned(),
        backend_id: backend_id.map(|b| b.to_string()),
        created_at: rfc3339(at),
    })
}

/// Every tenant.
///
/// # Errors
/// SQLite's.
pub fn tenants(conn: &Connection) -> ApiResult<Vec<Tenant>> {
    let mut st =
        conn.prepare("SELECT id, name, backend_id, created_at FROM tenants ORDER BY id")?;
    let rows = st.query_map([], tenant_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The tenant `id`, if any.
///
/// # Errors
/// SQLite's.
pub fn tenant(conn: &Connection, id: i64) -> ApiResult<Option<Tenant>> {
    Ok(conn
        .query_row(
            "SELECT id, name, backend_id, created_at FROM tenants WHERE id = ?1",
            [id],
            tenant_from_row,
        )
        .optional()?)
}

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
        "INSERT INTO backends (name, endpoint, region, bucket, path_style, access_key_id,
                               secret_sealed, kek_id, created_at, tested_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
        params![
            b.name,
            b.endpoint,
            b.region,
            b.bucket,
            b.path_style,
            b.access_key_id,
            b.secret_sealed,
            kek_id,
            at
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
pub fn backend(conn: &Connection, id: i64) -> ApiResult<Option<BackendRow>> {
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
pub fn backends(conn: &Connection) -> ApiResult<Vec<BackendRow>> {
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
pub fn reseal_backend(conn: &Connection, id: i64, sealed: &[u8], kek_id: &str) -> ApiResult<()> {
    conn.execute(
        "UPDATE backends SET secret_sealed = ?2, kek_id = ?3 WHERE id = ?1",
        params![id, sealed, kek_id],
    )?;
    Ok(())
}

/// A stored token and the state of what it belongs to.
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// Row ID.
    pub id: i64,
    /// What it is.
    pub kind: TokenKind,
    /// Its SHA-256.
    pub hash: Vec<u8>,
    /// Its tenant (all but admin).
    pub tenant_id: Option<i64>,
    /// Its agent (agent keys).
    pub agent_id: Option<i64>,
    /// Expiry, if it has one.
    pub expires_at: Option<i64>,
    /// When a one-time token was used.
    pub used_at: Option<i64>,
    /// When it, or its agent, was revoked.
    pub revoked_at: Option<i64>,
}

/// Stores a token's hash.
///
/// # Errors
/// SQLite's.
pub fn insert_token(
    conn: &Connection,
    kind: TokenKind,
    hash: &TokenHash,
    tenant_id: Option<i64>,
    agent_id: Option<i64>,
    label: &str,
    expires_at: Option<i64>,
) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO tokens (kind, lookup, hash, tenant_id, agent_id, label, created_at,
                             expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            kind.as_str(),
            hash.lookup(),
            &hash.hash[..],
            tenant_id,
            agent_id,
            label,
            now(),
            expires_at
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The token whose hash is `hash`, compared in constant time after the index lookup.
///
/// # Errors
/// SQLite's.
pub fn find_token(conn: &Connection, hash: &TokenHash) -> ApiResult<Option<TokenRow>> {
    let row = conn
        .query_row(
            "SELECT t.id, t.kind, t.hash, t.tenant_id, t.agent_id, t.expires_at, t.used_at,
                    coalesce(t.revoked_at, a.revoked_at)
             FROM tokens t LEFT JOIN agents a ON a.id = t.agent_id
             WHERE t.lookup = ?1",
            [hash.lookup()],
            |row| {
                let kind = match row.get::<_, String>(1)?.as_str() {
                    "admin" => TokenKind::Admin,
                    "operator" => TokenKind::Operator,
                    "enrolment" => TokenKind::Enrolment,
                    _ => TokenKind::Agent,
                };
                Ok(TokenRow {
                    id: row.get(0)?,
                    kind,
                    hash: row.get(2)?,
                    tenant_id: row.get(3)?,
                    agent_id: row.get(4)?,
                    expires_at: row.get(5)?,
                    used_at: row.get(6)?,
                    revoked_at: row.get(7)?,
                })
            },
        )
        .optional()?;
    Ok(row.filter(|r| hash.matches(&r.hash)))
}

/// Whether an admin token exists (the first start creates one).
///
/// # Errors
/// SQLite's.
pub fn has_admin_token(conn: &Connection) -> ApiResult<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM tokens WHERE kind = 'admin' LIMIT 1",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Marks a one-time token used, unless it already was. Returns whether this call did.
///
/// # Errors
/// SQLite's.
pub fn use_token(conn: &Connection, id: i64) -> ApiResult<bool> {
    Ok(conn.execute(
        "UPDATE tokens SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL",
        params![id, now()],
    )? == 1)
}
