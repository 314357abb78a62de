//! The audit log: who did what to which object of which tenant, and whether it was
//! allowed. Entries are written in the same transaction as the change they record
//! where there is one, so the log never claims a change that did not happen.

use coffer_adapters::catalogue::rusqlite::{params, Connection};
use serde::Serialize;

use super::{now, rfc3339};
use crate::error::ApiResult;

/// How an audited action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditOutcome {
    /// Done.
    Ok,
    /// Refused: not the caller's, bad credential, rate limited, bad signature.
    Denied,
    /// Attempted and failed.
    Failed,
}

impl AuditOutcome {
    fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Ok => "ok",
            AuditOutcome::Denied => "denied",
            AuditOutcome::Failed => "failed",
        }
    }
}

/// One audit entry to write.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// The tenant concerned (the caller's, or the object's owner for a denied access).
    pub tenant_id: Option<i64>,
    /// Who: `admin:N`, `operator:N`, `agent:N`, `enrolment:N`, `anonymous`, `system`.
    pub actor: String,
    /// What: `agent.enrol`, `agent.revoke`, `kek.rotate`, `restore.request`, ...
    pub action: &'static str,
    /// On what: `agent:5`, `run:9`, `s3:bucket/key`, ...
    pub target: String,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Free text, never a secret.
    pub detail: String,
}

/// Writes an entry.
///
/// # Errors
/// SQLite's.
pub fn record(conn: &Connection, e: &AuditEntry) -> ApiResult<()> {
    conn.execute(
        "INSERT INTO audit (at, tenant_id, actor, action, target, outcome, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            now(),
            e.tenant_id,
            e.actor,
            e.action,
            e.target,
            e.outcome.as_str(),
            e.detail
        ],
    )?;
    Ok(())
}

/// An audit entry, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    /// ID (increasing).
    pub id: String,
    /// When.
    pub at: String,
    /// Tenant concerned.
    pub tenant_id: Option<String>,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: String,
    /// `ok`, `denied` or `failed`.
    pub outcome: String,
    /// Detail.
    pub detail: String,
}

/// The newest `limit` entries, of one tenant or (`None`) of all, newest first.
///
/// # Errors
/// SQLite's.
pub fn list(conn: &Connection, tenant_id: Option<i64>, limit: u32) -> ApiResult<Vec<AuditRecord>> {
    let sql = match tenant_id {
        Some(_) => {
            "SELECT id, at, tenant_id, actor, action, target, outcome, detail FROM audit
             WHERE tenant_id = ?1 ORDER BY id DESC LIMIT ?2"
        }
        None => {
            "SELECT id, at, tenant_id, actor, action, target, outcome, detail FROM audit
             WHERE ?1 IS NULL ORDER BY id DESC LIMIT ?2"
        }
    };
    let mut st = conn.prepare(sql)?;
    let rows = st.query_map(params![tenant_id, limit], |row| {
        Ok(AuditRecord {
            id: row.get::<_, i64>(0)?.to_string(),
            at: rfc3339(row.get(1)?),
            tenant_id: row.get::<_, Option<i64>>(2)?.map(|t| t.to_string()),
            actor: row.get(3)?,
            action: row.get(4)?,
            target: row.get(5)?,
            outcome: row.get(6)?,
            detail: row.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
