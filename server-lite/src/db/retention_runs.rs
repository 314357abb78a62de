//! Retention runs: each application of a job's retention, with what it forgot and what
//! prune freed (a run of its own, beside the agents' runs).

use coffer_adapters::catalogue::rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;

use super::{rfc3339, DbResult};

/// What started a retention run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A successful backup of the job.
    Backup,
    /// The daily schedule (a job whose backups stopped still has its retention run).
    Schedule,
    /// An operator asked for it.
    Operator,
}

impl Trigger {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Backup => "backup",
            Trigger::Schedule => "schedule",
            Trigger::Operator => "operator",
        }
    }
}

/// A retention run, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RetentionRun {
    /// ID.
    pub id: String,
    /// The job (`null` once deleted).
    pub job_id: Option<String>,
    /// The agent whose repository it pruned.
    pub agent_id: String,
    /// `backup`, `schedule` or `operator`.
    pub trigger: String,
    /// `succeeded` or `failed`.
    pub status: String,
    /// When it started.
    pub started_at: String,
    /// When it ended.
    pub finished_at: String,
    /// The job's snapshots kept.
    pub kept: u64,
    /// Snapshots forgotten (hex IDs).
    pub forgotten: Vec<String>,
    /// Restore points removed with them.
    pub restore_points_removed: u64,
    /// `done`, `put_off` (a backup held the repository) or `none` (nothing to collect).
    pub prune: String,
    /// Bytes prune freed.
    pub bytes_freed: i64,
    /// Packs deleted.
    pub packs_deleted: u64,
    /// Packs repacked.
    pub packs_repacked: u64,
    /// Why it failed.
    pub error: Option<String>,
}

/// A retention run to record.
#[derive(Debug, Clone)]
pub struct NewRetentionRun<'a> {
    /// Tenant.
    pub tenant_id: i64,
    /// Job.
    pub job_id: i64,
    /// Agent.
    pub agent_id: i64,
    /// What started it.
    pub trigger: Trigger,
    /// When it started.
    pub started_at: i64,
    /// When it ended.
    pub finished_at: i64,
    /// Snapshots kept.
    pub kept: u64,
    /// Snapshots forgotten.
    pub forgotten: &'a [String],
    /// Restore points removed.
    pub restore_points_removed: u64,
    /// `done`, `put_off` or `none`.
    pub prune: &'static str,
    /// Bytes freed.
    pub bytes_freed: i64,
    /// Packs deleted.
    pub packs_deleted: u64,
    /// Packs repacked.
    pub packs_repacked: u64,
    /// Why it failed (`None`: it succeeded).
    pub error: Option<&'a str>,
}

/// Records a retention run; returns its ID.
///
/// # Errors
/// SQLite's.
pub fn insert(conn: &Connection, run: &NewRetentionRun<'_>) -> DbResult<i64> {
    let id = super::new_id();
    conn.execute(
        "INSERT INTO retention_runs (id, tenant_id, job_id, agent_id, trigger, status,
                                     started_at, finished_at, kept, forgotten,
                                     restore_points_removed, prune, bytes_freed,
                                     packs_deleted, packs_repacked, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
        params![
            id,
            run.tenant_id,
            run.job_id,
            run.agent_id,
            run.trigger.as_str(),
            if run.error.is_some() {
                "failed"
            } else {
                "succeeded"
            },
            run.started_at,
            run.finished_at,
            run.kept,
            serde_json::to_string(run.forgotten).unwrap_or_else(|_| "[]".to_owned()),
            run.restore_points_removed,
            run.prune,
            run.bytes_freed,
            run.packs_deleted,
            run.packs_repacked,
            run.error
        ],
    )?;
    Ok(id)
}

const COLUMNS: &str = "id, job_id, agent_id, trigger, status, started_at, finished_at, kept, \
    forgotten, restore_points_removed, prune, bytes_freed, packs_deleted, packs_repacked, error";

fn from_row(row: &Row<'_>) -> coffer_adapters::catalogue::rusqlite::Result<RetentionRun> {
    Ok(RetentionRun {
        id: row.get::<_, i64>(0)?.to_string(),
        job_id: row.get::<_, Option<i64>>(1)?.map(|j| j.to_string()),
        agent_id: row.get::<_, i64>(2)?.to_string(),
        trigger: row.get(3)?,
        status: row.get(4)?,
        started_at: rfc3339(row.get(5)?),
        finished_at: rfc3339(row.get(6)?),
        kept: row.get(7)?,
        forgotten: serde_json::from_str(&row.get::<_, String>(8)?).unwrap_or_default(),
        restore_points_removed: row.get(9)?,
        prune: row.get(10)?,
        bytes_freed: row.get(11)?,
        packs_deleted: row.get(12)?,
        packs_repacked: row.get(13)?,
        error: row.get(14)?,
    })
}

/// `tenant`'s newest `limit` retention runs, of one job if given.
///
/// # Errors
/// SQLite's.
pub fn list(
    conn: &Connection,
    tenant_id: i64,
    job_id: Option<i64>,
    limit: u32,
) -> DbResult<Vec<RetentionRun>> {
    let mut st = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM retention_runs
         WHERE tenant_id = ?1 AND (?2 IS NULL OR job_id = ?2) ORDER BY id DESC LIMIT ?3"
    ))?;
    let rows = st.query_map(params![tenant_id, job_id, limit], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Retention run `id` of `tenant`.
///
/// # Errors
/// SQLite's.
pub fn get(conn: &Connection, tenant_id: i64, id: i64) -> DbResult<Option<RetentionRun>> {
    Ok(conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM retention_runs WHERE id = ?1 AND tenant_id = ?2"),
            [id, tenant_id],
            from_row,
        )
        .optional()?)
}

/// Jobs (tenant, ID) with a retention policy whose retention has not run since
/// `since` (the daily schedule's candidates), whose agents are not deleted.
///
/// # Errors
/// SQLite's.
pub fn due(conn: &Connection, since: i64) -> DbResult<Vec<(i64, i64)>> {
    let mut st = conn.prepare(
        "SELECT j.tenant_id, j.id FROM jobs j JOIN agents a ON a.id = j.agent_id
         WHERE (j.keep_last + j.keep_daily + j.keep_weekly + j.keep_monthly) > 0
           AND a.deleted_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM retention_runs r
                           WHERE r.job_id = j.id AND r.started_at >= ?1)
         ORDER BY j.id",
    )?;
    let rows = st.query_map([since], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}
