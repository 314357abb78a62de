//! The audit log: who did what to which object of which tenant, and whether it was
//! allowed. Entries are written in the same transaction as the change they record
//! where there is one, so the log never claims a change that did not happen.

use coffer_adapters::catalogue::rusqlite::{params, Connection};
use serde::Serialize;

use super::DbResult;
use super::{now, rfc3339};

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
pub fn record(conn: &Connection, e: &AuditEntry) -> DbResult<()> {
    conn.execute(
        "INSERT INTO audit (id, at, tenant_id, actor, action, target, outcome, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            super::new_id(),
            now(),
            e.tenant_id,
            escape(&e.actor, MAX_FIELD),
            e.action,
            escape(&e.target, MAX_FIELD),
            e.outcome.as_str(),
            escape(&e.detail, MAX_DETAIL)
        ],
    )?;
    Ok(())
}

/// The longest actor or target stored, in bytes (before escaping).
const MAX_FIELD: usize = 300;
/// The longest detail stored, in bytes (before escaping).
const MAX_DETAIL: usize = 1000;

/// Text as the audit log stores it: anything that could move a terminal's cursor,
/// recolour it or hide text (control and invisible format characters) written as a
/// visible `\u{..}` escape, and cut at `max` bytes (marked with `…`). Parts of entries
/// can come from requests (a path, a name), and whoever reads the log must see what
/// was sent, not what it makes their terminal do.
pub fn escape(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max) + 8);
    for (i, c) in text.char_indices() {
        if i >= max {
            out.push('…');
            break;
        }
        if c.is_control() || crate::extract::is_deceptive(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// An audit entry, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AuditRecord {
    /// ID (time-ordered).
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
pub fn list(conn: &Connection, tenant_id: Option<i64>, limit: u32) -> DbResult<Vec<AuditRecord>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_text_is_escaped_and_bounded() {
        assert_eq!(escape("route:/v1/x", 300), "route:/v1/x");
        assert_eq!(
            escape("a\u{1b}[2J\r\nb\u{202e}", 300),
            "a\\u{1b}[2J\\u{d}\\u{a}b\\u{202e}"
        );
        let long = "x".repeat(5000);
        let cut = escape(&long, 1000);
        assert_eq!(cut.chars().count(), 1001);
        assert!(cut.ends_with('…'));
    }
}
