//! Agents, their destinations and their log lines.

use coffer_adapters::catalogue::rusqlite::{self, params, Connection, OptionalExtension, Row};
use coffer_protocol::{AgentId, AgentStatus, Platform, TenantId};
use serde::Serialize;

use super::DbResult;
use super::{now, rfc3339};

/// An agent that has not been heard from for this long is shown offline.
pub const OFFLINE_AFTER_SECS: i64 = 90;

/// An agent, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Agent {
    /// ID.
    pub id: AgentId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// Its name (given at enrolment, default the host name; operators rename it).
    pub name: String,
    /// Hostname it enrolled with.
    pub hostname: String,
    /// Labels operators gave it.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Version it last reported.
    pub version: String,
    /// The operating system and architecture it last reported (`null` until it does).
    pub platform: Option<Platform>,
    /// `online`, `offline` or `revoked`.
    pub status: AgentStatus,
    /// When it enrolled.
    pub enrolled_at: String,
    /// When it was last heard from.
    pub last_seen_at: Option<String>,
    /// When it was revoked.
    pub revoked_at: Option<String>,
    /// The most bytes a second its backups upload; `null`: no limit of its own.
    pub upload_limit: Option<u64>,
    /// How many runs it does at once, at most.
    pub max_concurrent_runs: u8,
}

const AGENT_COLUMNS: &str =
    "id, tenant_id, hostname, version, enrolled_at, last_seen_at, revoked_at, upload_limit, \
     max_concurrent_runs, coalesce(name, hostname), labels, os, arch";

fn agent_from_row(row: &Row<'_>) -> rusqlite::Result<Agent> {
    let last_seen: Option<i64> = row.get(5)?;
    let revoked: Option<i64> = row.get(6)?;
    let status = match (revoked, last_seen) {
        (Some(_), _) => AgentStatus::Revoked,
        (None, Some(seen)) if now() - seen <= OFFLINE_AFTER_SECS => AgentStatus::Online,
        _ => AgentStatus::Offline,
    };
    Ok(Agent {
        id: super::typed_id(0, row.get(0)?)?,
        tenant_id: super::typed_id(1, row.get(1)?)?,
        name: row.get(9)?,
        hostname: row.get(2)?,
        labels: serde_json::from_str(&row.get::<_, String>(10)?).unwrap_or_default(),
        version: row.get(3)?,
        platform: match (row.get(11)?, row.get(12)?) {
            (Some(os), Some(arch)) => Platform::new(os, arch).ok(),
            _ => None,
        },
        status,
        enrolled_at: rfc3339(row.get(4)?),
        last_seen_at: last_seen.map(rfc3339),
        revoked_at: revoked.map(rfc3339),
        upload_limit: row.get(7)?,
        max_concurrent_runs: row.get(8)?,
    })
}

/// Sets agent `id`'s upload limit (bytes a second; `None`: none).
///
/// # Errors
/// SQLite's.
pub fn set_upload_limit(conn: &Connection, id: i64, limit: Option<u64>) -> DbResult<()> {
    conn.execute(
        "UPDATE agents SET upload_limit = ?2 WHERE id = ?1",
        params![id, limit],
    )?;
    Ok(())
}

/// Sets how many runs agent `id` does at once (1 to 16).
///
/// # Errors
/// SQLite's.
pub fn set_max_concurrent_runs(conn: &Connection, id: i64, max: u8) -> DbResult<()> {
    conn.execute(
        "UPDATE agents SET max_concurrent_runs = ?2 WHERE id = ?1",
        params![id, max],
    )?;
    Ok(())
}

/// Records the ID of agent `id`'s write-only key file in its repository.
///
/// # Errors
/// SQLite's.
pub fn set_key_file(conn: &Connection, id: i64, key_file: &str) -> DbResult<()> {
    conn.execute(
        "UPDATE agents SET key_file = ?2 WHERE id = ?1",
        params![id, key_file],
    )?;
    Ok(())
}

/// The ID of agent `id`'s write-only key file, if it has one.
///
/// # Errors
/// SQLite's.
pub fn key_file(conn: &Connection, id: i64) -> DbResult<Option<String>> {
    Ok(conn
        .query_row("SELECT key_file FROM agents WHERE id = ?1", [id], |r| {
            r.get::<_, Option<String>>(0)
        })
        .optional()?
        .flatten())
}

/// Records a new agent.
///
/// # Errors
/// SQLite's.
pub fn insert_agent(
    conn: &Connection,
    tenant_id: i64,
    name: &str,
    hostname: &str,
    version: &str,
    platform: Option<&Platform>,
) -> rusqlite::Result<i64> {
    let at = now();
    conn.execute(
        "INSERT INTO agents (id, tenant_id, hostname, version, enrolled_at, last_seen_at, name,
                             os, arch)
         VALUES (?5, ?1, ?2, ?3, ?4, ?4, ?6, ?7, ?8)",
        params![
            tenant_id,
            hostname,
            version,
            at,
            super::new_id(),
            name,
            platform.map(|p| &p.os),
            platform.map(|p| &p.arch)
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Agent `id` of `tenant`.
///
/// # Errors
/// SQLite's.
pub fn agent(conn: &Connection, tenant_id: i64, id: i64) -> DbResult<Option<Agent>> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {AGENT_COLUMNS} FROM agents
                 WHERE id = ?1 AND tenant_id = ?2 AND deleted_at IS NULL"
            ),
            [id, tenant_id],
            agent_from_row,
        )
        .optional()?)
}

/// Every agent of `tenant`.
///
/// # Errors
/// SQLite's.
pub fn agents(conn: &Connection, tenant_id: i64) -> DbResult<Vec<Agent>> {
    let mut st = conn.prepare(&format!(
        "SELECT {AGENT_COLUMNS} FROM agents WHERE tenant_id = ?1 AND deleted_at IS NULL ORDER BY id"
    ))?;
    let rows = st.query_map([tenant_id], agent_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Renames agent `id` and sets its labels.
///
/// # Errors
/// SQLite's.
pub fn set_name_and_labels(
    conn: &Connection,
    id: i64,
    name: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> DbResult<()> {
    conn.execute(
        "UPDATE agents SET name = ?2, labels = ?3 WHERE id = ?1",
        params![
            id,
            name,
            serde_json::to_string(labels).unwrap_or_else(|_| "{}".to_owned())
        ],
    )?;
    Ok(())
}

/// Deletes revoked agent `id` of `tenant` from the lists: its log lines and tokens
/// go; the row stays for its runs and restore points, which stay restorable. False if
/// there is no such revoked agent.
///
/// # Errors
/// SQLite's.
pub fn delete_revoked(conn: &Connection, tenant_id: i64, id: i64) -> DbResult<bool> {
    let changed = conn.execute(
        "UPDATE agents SET deleted_at = ?3
         WHERE id = ?1 AND tenant_id = ?2 AND revoked_at IS NOT NULL AND deleted_at IS NULL",
        params![id, tenant_id, now()],
    )?;
    if changed == 1 {
        conn.execute("DELETE FROM agent_logs WHERE agent_id = ?1", [id])?;
    }
    Ok(changed == 1)
}

/// Revokes agent `id` of `tenant` and its API key, and fails its queued work. Returns
/// false if there is no such agent or it was revoked already.
///
/// # Errors
/// SQLite's.
pub fn revoke_agent(conn: &Connection, tenant_id: i64, id: i64) -> DbResult<bool> {
    let at = now();
    let changed = conn.execute(
        "UPDATE agents SET revoked_at = ?3 WHERE id = ?1 AND tenant_id = ?2 AND revoked_at IS NULL",
        params![id, tenant_id, at],
    )?;
    if changed == 0 {
        return Ok(false);
    }
    conn.execute(
        "UPDATE tokens SET revoked_at = ?2 WHERE agent_id = ?1 AND revoked_at IS NULL",
        params![id, at],
    )?;
    conn.execute(
        "UPDATE runs SET status = 'failed', finished_at = ?2, error = 'agent revoked',
                         lease_expires_at = NULL
         WHERE agent_id = ?1 AND status IN ('queued', 'running')",
        params![id, at],
    )?;
    Ok(true)
}

/// An agent's heartbeat: when, and what it reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beat {
    /// When (Unix seconds).
    pub at: i64,
    /// The agent's version.
    pub version: String,
    /// Its platform, if it reported one (an older agent's beat keeps the one stored).
    pub platform: Option<Platform>,
}

/// Records a heartbeat (never moving "last seen" back).
///
/// # Errors
/// SQLite's.
pub fn heartbeat(conn: &Connection, id: i64, beat: &Beat) -> DbResult<()> {
    let platform = beat.platform.as_ref();
    conn.execute(
        "UPDATE agents SET last_seen_at = max(coalesce(last_seen_at, 0), ?2), version = ?3,
                           os = coalesce(?4, os), arch = coalesce(?5, arch)
         WHERE id = ?1",
        params![
            id,
            beat.at,
            beat.version,
            platform.map(|p| &p.os),
            platform.map(|p| &p.arch)
        ],
    )?;
    Ok(())
}

impl Agent {
    /// Applies a heartbeat not yet written to the database.
    pub fn with_presence(mut self, beat: Option<Beat>) -> Self {
        if let Some(Beat {
            at,
            version,
            platform,
        }) = beat
        {
            self.last_seen_at = Some(rfc3339(at));
            self.version = version;
            if platform.is_some() {
                self.platform = platform;
            }
            if self.status != AgentStatus::Revoked && now() - at <= OFFLINE_AFTER_SECS {
                self.status = AgentStatus::Online;
            }
        }
        self
    }
}

/// A destination: where one agent's objects live. Locked: nothing changes it.
#[derive(Debug, Clone, Serialize)]
pub struct Destination {
    /// ID.
    pub id: String,
    /// Its tenant.
    pub tenant_id: String,
    /// The agent it belongs to.
    pub agent_id: String,
    /// The S3 backend; `null` for the embedded store.
    pub backend_id: Option<String>,
    /// Bucket.
    pub bucket: String,
    /// Root prefix of every key the agent uses.
    pub prefix: String,
    /// The repository whose key seals what is stored here.
    pub repository_id: String,
    /// Always true: destinations cannot be repointed.
    pub locked: bool,
    /// When the probe (write, read back, delete) last succeeded.
    pub tested_at: String,
    /// When it was created.
    pub created_at: String,
}

/// The stored form of a destination, with numeric IDs.
#[derive(Debug, Clone)]
pub struct DestinationRow {
    /// ID.
    pub id: i64,
    /// Tenant.
    pub tenant_id: i64,
    /// Agent.
    pub agent_id: i64,
    /// S3 backend, `None` for the embedded store.
    pub backend_id: Option<i64>,
    /// Bucket.
    pub bucket: String,
    /// Root prefix.
    pub prefix: String,
    /// Repository.
    pub repository_id: i64,
    /// Last successful probe.
    pub tested_at: i64,
    /// Creation.
    pub created_at: i64,
}

impl DestinationRow {
    /// The API's view.
    pub fn view(&self) -> Destination {
        Destination {
            id: self.id.to_string(),
            tenant_id: self.tenant_id.to_string(),
            agent_id: self.agent_id.to_string(),
            backend_id: self.backend_id.map(|b| b.to_string()),
            bucket: self.bucket.clone(),
            prefix: self.prefix.clone(),
            repository_id: self.repository_id.to_string(),
            locked: true,
            tested_at: rfc3339(self.tested_at),
            created_at: rfc3339(self.created_at),
        }
    }
}

const DEST_COLUMNS: &str =
    "id, tenant_id, agent_id, backend_id, bucket, prefix, repository_id, tested_at, created_at";

fn dest_from_row(row: &Row<'_>) -> rusqlite::Result<DestinationRow> {
    Ok(DestinationRow {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        agent_id: row.get(2)?,
        backend_id: row.get(3)?,
        bucket: row.get(4)?,
        prefix: row.get(5)?,
        repository_id: row.get(6)?,
        tested_at: row.get(7)?,
        created_at: row.get(8)?,
    })
}

/// Records a destination (its bucket and prefix must be free: `UNIQUE`).
///
/// # Errors
/// SQLite's; a constraint error if another destination has this bucket and prefix.
#[allow(clippy::too_many_arguments)]
pub fn insert_destination(
    conn: &Connection,
    tenant_id: i64,
    agent_id: i64,
    backend_id: Option<i64>,
    bucket: &str,
    prefix: &str,
    repository_id: i64,
    tested_at: i64,
) -> rusqlite::Result<i64> {
    conn.execute(
        "INSERT INTO destinations (id, tenant_id, agent_id, backend_id, bucket, prefix,
                                   repository_id, tested_at, created_at)
         VALUES (?9, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            tenant_id,
            agent_id,
            backend_id,
            bucket,
            prefix,
            repository_id,
            tested_at,
            now(),
            super::new_id()
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// The destination of `agent_id`.
///
/// # Errors
/// SQLite's.
pub fn destination_of_agent(conn: &Connection, agent_id: i64) -> DbResult<Option<DestinationRow>> {
    Ok(conn
        .query_row(
            &format!("SELECT {DEST_COLUMNS} FROM destinations WHERE agent_id = ?1"),
            [agent_id],
            dest_from_row,
        )
        .optional()?)
}

/// Destination `id`, whatever its tenant (for the server's own work on it).
///
/// # Errors
/// SQLite's.
pub fn destination_by_id(conn: &Connection, id: i64) -> DbResult<Option<DestinationRow>> {
    Ok(conn
        .query_row(
            &format!("SELECT {DEST_COLUMNS} FROM destinations WHERE id = ?1"),
            [id],
            dest_from_row,
        )
        .optional()?)
}

/// Why destination `id` is still in use, if it is: its agent is not deleted, restore
/// points remain in it, or runs use it.
///
/// # Errors
/// SQLite's.
pub fn destination_in_use(conn: &Connection, id: i64) -> DbResult<Option<String>> {
    let (agent_live, points, runs): (bool, u64, u64) = conn.query_row(
        "SELECT (SELECT a.deleted_at IS NULL FROM agents a WHERE a.id = d.agent_id),
                (SELECT count(*) FROM restore_points r WHERE r.repository_id = d.repository_id),
                (SELECT count(*) FROM runs u WHERE u.destination_id = d.id
                   AND u.status IN ('queued', 'running'))
         FROM destinations d WHERE d.id = ?1",
        [id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    Ok(if agent_live {
        Some("its agent is not deleted (revoke, then delete it first)".to_owned())
    } else if points > 0 {
        Some(format!("{points} restore point(s) are still in it"))
    } else if runs > 0 {
        Some(format!("{runs} run(s) still use it"))
    } else {
        None
    })
}

/// Marks destination `id` deleted (its objects are gone from storage).
///
/// # Errors
/// SQLite's.
pub fn mark_destination_deleted(conn: &Connection, id: i64) -> DbResult<()> {
    conn.execute(
        "UPDATE destinations SET deleted_at = ?2 WHERE id = ?1",
        params![id, now()],
    )?;
    Ok(())
}

/// Destination `id` of `tenant`.
///
/// # Errors
/// SQLite's.
pub fn destination(conn: &Connection, tenant_id: i64, id: i64) -> DbResult<Option<DestinationRow>> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {DEST_COLUMNS} FROM destinations
                 WHERE id = ?1 AND tenant_id = ?2 AND deleted_at IS NULL"
            ),
            [id, tenant_id],
            dest_from_row,
        )
        .optional()?)
}

/// Every destination of `tenant`.
///
/// # Errors
/// SQLite's.
pub fn destinations(conn: &Connection, tenant_id: i64) -> DbResult<Vec<DestinationRow>> {
    let mut st = conn.prepare(&format!(
        "SELECT {DEST_COLUMNS} FROM destinations WHERE tenant_id = ?1 AND deleted_at IS NULL
         ORDER BY id"
    ))?;
    let rows = st.query_map([tenant_id], dest_from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One log line from an agent.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    /// `info`, `warn` or `error`.
    pub level: String,
    /// The text.
    pub message: String,
    /// When the agent says it happened.
    pub time: String,
    /// When the server received it.
    pub received_at: String,
}

/// Stores log lines (`(level, message, unix time)`).
///
/// # Errors
/// SQLite's.
pub fn insert_logs(
    conn: &Connection,
    tenant_id: i64,
    agent_id: i64,
    lines: &[(String, String, i64)],
) -> DbResult<()> {
    let at = now();
    let mut st = conn.prepare(
        "INSERT INTO agent_logs (tenant_id, agent_id, level, message, time, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (level, message, time) in lines {
        st.execute(params![tenant_id, agent_id, level, message, time, at])?;
    }
    // Retention: the newest lines of each agent, and none older than the window, so
    // an agent (or a stolen agent key) cannot fill the server's disk with logs.
    conn.execute(
        "DELETE FROM agent_logs WHERE agent_id = ?1 AND (received_at < ?2 OR id <
            (SELECT id FROM agent_logs WHERE agent_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?3))",
        params![
            agent_id,
            at.saturating_sub(LOG_RETENTION_SECS),
            LOG_LINES_KEPT - 1
        ],
    )?;
    Ok(())
}

/// Log lines kept per agent (the newest).
pub const LOG_LINES_KEPT: i64 = 5_000;
/// How long log lines are kept.
pub const LOG_RETENTION_SECS: i64 = 30 * 24 * 3600;

/// The last `limit` log lines of an agent, newest first.
///
/// # Errors
/// SQLite's.
pub fn logs(conn: &Connection, agent_id: i64, limit: u32) -> DbResult<Vec<LogLine>> {
    let mut st = conn.prepare(
        "SELECT level, message, time, received_at FROM agent_logs WHERE agent_id = ?1
         ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = st.query_map(params![agent_id, limit], |row| {
        Ok(LogLine {
            level: row.get(0)?,
            message: row.get(1)?,
            time: rfc3339(row.get(2)?),
            received_at: rfc3339(row.get(3)?),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The tenant an agent belongs to, whoever asks (to tell "not yours" from "missing"
/// in the audit log; the caller still answers 404).
///
/// # Errors
/// SQLite's.
pub fn owner_of(conn: &Connection, table: &str, id: i64) -> DbResult<Option<i64>> {
    // `table` is one of our own names, never input.
    Ok(conn
        .query_row(
            &format!("SELECT tenant_id FROM {table} WHERE id = ?1"),
            [id],
            |row| row.get(0),
        )
        .optional()?)
}
