//! Tokens, stored as hashes (see `crate::token`).

use coffer_adapters::catalogue::rusqlite::{self, params, Connection, OptionalExtension};

use super::now;
use crate::error::ApiResult;
use crate::token::{TokenHash, TokenKind};

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
