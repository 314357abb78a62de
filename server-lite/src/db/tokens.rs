//! Tokens, stored as hashes (see `crate::token`).

use coffer_adapters::catalogue::rusqlite::{self, params, Connection, OptionalExtension};

use serde::Serialize;

use super::DbResult;
use super::{now, rfc3339};
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
        "INSERT INTO tokens (id, kind, lookup, hash, tenant_id, agent_id, label, created_at,
                             expires_at)
         VALUES (?9, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            kind.as_str(),
            hash.lookup(),
            &hash.hash[..],
            tenant_id,
            agent_id,
            label,
            now(),
            expires_at,
            super::new_id()
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The token whose hash is `hash`, compared in constant time after the index lookup.
///
/// # Errors
/// SQLite's.
pub fn find_token(conn: &Connection, hash: &TokenHash) -> DbResult<Option<TokenRow>> {
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
pub fn has_admin_token(conn: &Connection) -> DbResult<bool> {
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
pub fn use_token(conn: &Connection, id: i64) -> DbResult<bool> {
    Ok(conn.execute(
        "UPDATE tokens SET used_at = ?2 WHERE id = ?1 AND used_at IS NULL",
        params![id, now()],
    )? == 1)
}

/// A token as the API lists it: never its secret or hash.
#[derive(Debug, Clone, Serialize)]
pub struct TokenInfo {
    /// ID.
    pub id: String,
    /// The label given at creation.
    pub label: String,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Expires (enrolment tokens).
    pub expires_at: Option<String>,
    /// Used (enrolment tokens).
    pub used_at: Option<String>,
    /// Revoked.
    pub revoked_at: Option<String>,
}

/// The tokens of `kind` of `tenant_id` (`None`: admin tokens), newest first.
///
/// # Errors
/// SQLite's.
pub fn list_tokens(
    conn: &Connection,
    kind: TokenKind,
    tenant_id: Option<i64>,
) -> DbResult<Vec<TokenInfo>> {
    let mut st = conn.prepare(
        "SELECT id, label, created_at, expires_at, used_at, revoked_at FROM tokens
         WHERE kind = ?1 AND tenant_id IS ?2 ORDER BY created_at DESC, id DESC LIMIT 1000",
    )?;
    let rows = st.query_map(params![kind.as_str(), tenant_id], |row| {
        let time = |i| -> rusqlite::Result<Option<String>> {
            Ok(row.get::<_, Option<i64>>(i)?.map(rfc3339))
        };
        Ok(TokenInfo {
            id: row.get::<_, i64>(0)?.to_string(),
            label: row.get(1)?,
            created_at: rfc3339(row.get(2)?),
            expires_at: time(3)?,
            used_at: time(4)?,
            revoked_at: time(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What revoking a token found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// It is revoked now.
    Now,
    /// It already was.
    Already,
    /// A one-time token that was already used (revoke its agent instead).
    Used,
    /// No token of that kind and tenant.
    Missing,
}

/// Revokes token `id` if it is of `kind` and belongs to `tenant_id` (`None`: an admin
/// token). Idempotent.
///
/// # Errors
/// SQLite's.
pub fn revoke_token(
    conn: &Connection,
    id: i64,
    kind: TokenKind,
    tenant_id: Option<i64>,
) -> DbResult<Revoked> {
    let found: Option<(Option<i64>, Option<i64>)> = conn
        .query_row(
            "SELECT used_at, revoked_at FROM tokens WHERE id = ?1 AND kind = ?2 AND tenant_id IS ?3",
            params![id, kind.as_str(), tenant_id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    Ok(match found {
        None => Revoked::Missing,
        Some((_, Some(_))) => Revoked::Already,
        Some((Some(_), None)) => Revoked::Used,
        Some((None, None)) => {
            conn.execute(
                "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1",
                params![id, now()],
            )?;
            Revoked::Now
        }
    })
}

/// Revokes every live admin token; returns how many.
///
/// # Errors
/// SQLite's.
pub fn revoke_admin_tokens(conn: &Connection) -> DbResult<usize> {
    Ok(conn.execute(
        "UPDATE tokens SET revoked_at = ?1 WHERE kind = 'admin' AND revoked_at IS NULL",
        [now()],
    )?)
}
