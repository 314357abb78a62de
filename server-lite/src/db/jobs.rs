//! Jobs: what an agent backs up, when, and how much it keeps.

use coffer_adapters::catalogue::rusqlite::{self, params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::DbResult;
use super::{now, rfc3339};

/// How many restore points a job keeps (the agent prunes by these).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// The newest N.
    #[serde(default)]
    pub keep_last: u32,
    /// The newest of each of the last N days.
    #[serde(default)]
    pub keep_daily: u32,
    /// The newest of each of the last N weeks.
    #[serde(default)]
    pub keep_weekly: u32,
    /// The newest of each of the last N months.
    #[serde(default)]
    pub keep_monthly: u32,
}

/// A job, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    /// ID.
    pub id: String,
    /// Tenant.
    pub tenant_id: String,
    /// The agent that runs it.
    pub agent_id: String,
    /// Name, unique per agent.
    pub name: String,
    /// Absolute paths to back up.
    pub sources: Vec<String>,
    /// Cron expression (UTC), or `null` for run-now only.
    pub schedule: Option<String>,
    /// What to keep.
    pub retention: Retention,
    /// zstd level.
    pub level: u8,
    /// The most bytes a second its backups upload; `null`: no limit of its own.
    pub upload_limit: Option<u64>,
    /// When the scheduler next makes a run.
    pub next_run_at: Option<String>,
    /// When it was created.
    pub created_at: String,
}

/// A job's stored form, for making runs.
#[derive(Debug, Clone)]
pub struct JobRow {
    /// ID.
    pub id: i64,
    /// Tenant.
    pub tenant_id: i64,
    /// Agent.
    pub agent_id: i64,
    /// Name.
    pub name: String,
    /// Sources, as JSON text.
    pub sources_json: String,
    /// Cron expression.
    pub schedule: Option<String>,
    /// Retention.
    pub retention: Retention,
    /// zstd level.
    pub level: u8,
    /// Next due time.
    pub next_run_at: Option<i64>,
    /// Created.
    pub created_at: i64,
    /// Upload limit, bytes a second.
    pub upload_limit: Option<u64>,
}

impl JobRow {
    /// The API's view.
    pub fn view(&self) -> Job {
        Job {
            id: self.id.to_string(),
            tenant_id: self.tenant_id.to_string(),
            agent_id: self.agent_id.to_string(),
            name: self.name.clone(),
            sources: serde_json::from_str(&self.sources_json).unwrap_or_default(),
            schedule: self.schedule.clone(),
            retention: self.retention,
            level: self.level,
            upload_limit: self.upload_limit,
            next_run_at: self.next_run_at.map(rfc3339),
            created_at: rfc3339(self.created_at),
        }
    }
}

const COLUMNS: &str = "id, tenant_id, agent_id, name, sources, schedule, keep_last, keep_daily, \
                       keep_weekly, keep_monthly, level, next_run_at, created_at, upload_limit";

fn from_row(row: &Row<'_>) -> rusqlite::Result<JobRow> {
    Ok(JobRow {
        id: row.get(0)?,
        tenant_id: row.get(1)?,
        agent_id: row.get(2)?,
        name: row.get(3)?,
        sources_json: row.get(4)?,
        schedule: row.get(5)?,
        retention: Retention {
            keep_last: row.get(6)?,
            keep_daily: row.get(7)?,
            keep_weekly: row.get(8)?,
            keep_monthly: row.get(9)?,
        },
        level: row.get(10)?,
        next_run_at: row.get(11)?,
        created_at: row.get(12)?,
        upload_limit: row.get(13)?,
    })
}

/// Sets job `id`'s upload limit (bytes a second; `None`: none of its own).
///
/// # Errors
/// SQLite's.
pub fn set_upload_limit(conn: &Connection, id: i64, limit: Option<u64>) -> DbResult<()> {
    conn.execute(
        "UPDATE jobs SET upload_limit = ?2 WHERE id = ?1",
        params![id, limit],
    )?;
    Ok(())
}

/// Stores a job (the caller has validated everything).
///
/// # Errors
/// SQLite's; a constraint error if the agent has a job of this name.
#[allow(clippy::too_many_arguments)]
pub fn insert_job(
    conn: &Connection,
    tenant_id: i64,
    agent_id: i64,
    name: &str,
    sources: &[String],
    schedule: Option<&str>,
    retention: Retention,
    level: u8,
    next_run_at: Option<i64>,
) -> rusqlite::Result<JobRow> {
    let at = now();
    let sources_json = serde_json::to_string(sources).unwrap_or_else(|_| "[]".to_owned());
    conn.execute(
        "INSERT INTO jobs (id, tenant_id, agent_id, name, sources, schedule, keep_last, keep_daily,
                           keep_weekly, keep_monthly, level, next_run_at, created_at)
         VALUES (?13, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            tenant_id,
            agent_id,
            name,
            sources_json,
            schedule,
            retention.keep_last,
            retention.keep_daily,
            retention.keep_weekly,
            retention.keep_monthly,
            level,
            next_run_at,
            at,
            super::new_id()
        ],
    )?;
    Ok(JobRow {
        id: conn.last_insert_rowid(),
        tenant_id,
        agent_id,
        name: name.to_owned(),
        sources_json,
        schedule: schedule.map(str::to_owned),
        retention,
        level,
        next_run_at,
        created_at: at,
        upload_limit: None,
    })
}

/// Job `id` of `tenant`.
///
/// # Errors
/// SQLite's.
pub fn job(conn: &Connection, tenant_id: i64, id: i64) -> DbResult<Option<JobRow>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1 AND tenant_id = ?2"),
            [id, tenant_id],
            from_row,
        )
        .optional()?)
}

/// Every job of `tenant`.
///
/// # Errors
/// SQLite's.
pub fn jobs(conn: &Connection, tenant_id: i64) -> DbResult<Vec<JobRow>> {
    let mut st = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE tenant_id = ?1 ORDER BY id"
    ))?;
    let rows = st.query_map([tenant_id], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Deletes job `id` of `tenant` (its runs keep their history). Returns whether it
/// existed.
///
/// # Errors
/// SQLite's.
pub fn delete_job(conn: &Connection, tenant_id: i64, id: i64) -> DbResult<bool> {
    Ok(conn.execute(
        "DELETE FROM jobs WHERE id = ?1 AND tenant_id = ?2",
        [id, tenant_id],
    )? == 1)
}

/// Jobs due at `at` (whose agents are not revoked).
///
/// # Errors
/// SQLite's.
pub fn due_jobs(conn: &Connection, at: i64) -> DbResult<Vec<JobRow>> {
    let mut st = conn.prepare(&format!(
        "SELECT {} FROM jobs j JOIN agents a ON a.id = j.agent_id
         WHERE j.next_run_at IS NOT NULL AND j.next_run_at <= ?1 AND a.revoked_at IS NULL
         ORDER BY j.next_run_at",
        COLUMNS
            .split(", ")
            .map(|c| format!("j.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    ))?;
    let rows = st.query_map([at], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Sets when a job is next due.
///
/// # Errors
/// SQLite's.
pub fn set_next_run(conn: &Connection, id: i64, next: Option<i64>) -> DbResult<()> {
    conn.execute(
        "UPDATE jobs SET next_run_at = ?2 WHERE id = ?1",
        params![id, next],
    )?;
    Ok(())
}
