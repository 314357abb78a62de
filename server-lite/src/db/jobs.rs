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
    /// What it does.
    #[serde(flatten)]
    pub spec: JobSpec,
    /// When the scheduler next makes a run.
    pub next_run_at: Option<String>,
    /// The next five times the schedule is due (from `next_run_at`).
    pub next_runs: Vec<String>,
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
    /// Exclude patterns, as JSON text.
    pub excludes_json: String,
    /// Cron expression.
    pub schedule: Option<String>,
    /// IANA time zone of the schedule.
    pub time_zone: String,
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
    /// The next five due times, starting at `next_run_at`.
    pub fn next_runs(&self) -> Vec<i64> {
        let (Some(expr), Some(next)) = (&self.schedule, self.next_run_at) else {
            return Vec::new();
        };
        let zone = crate::scheduler::parse_zone(&self.time_zone).unwrap_or(chrono_tz::Tz::UTC);
        let mut times = vec![next];
        times.extend(
            crate::scheduler::next_times(
                expr,
                zone,
                next + crate::scheduler::MIN_INTERVAL_SECS - 1,
                4,
            )
            .unwrap_or_default(),
        );
        times
    }

    /// The API's view.
    pub fn view(&self) -> Job {
        Job {
            id: self.id.to_string(),
            tenant_id: self.tenant_id.to_string(),
            agent_id: self.agent_id.to_string(),
            spec: self.spec(),
            next_run_at: self.next_run_at.map(rfc3339),
            next_runs: self.next_runs().into_iter().map(rfc3339).collect(),
            created_at: rfc3339(self.created_at),
        }
    }
}

const COLUMNS: &str = "id, tenant_id, agent_id, name, sources, schedule, keep_last, keep_daily, \
                       keep_weekly, keep_monthly, level, next_run_at, created_at, upload_limit, \
                       excludes, time_zone";

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
        excludes_json: row.get(14)?,
        time_zone: row.get(15)?,
    })
}

/// What a job does, validated: what creating one sets and editing one changes (and
/// what the API's view shows of it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobSpec {
    /// Name, unique per agent.
    pub name: String,
    /// Absolute paths to back up.
    pub sources: Vec<String>,
    /// Exclude patterns (restic's rules, as `coffer backup --exclude`).
    pub excludes: Vec<String>,
    /// Cron expression, read in `time_zone`, or `null` for run-now only.
    pub schedule: Option<String>,
    /// The IANA time zone of the schedule.
    pub time_zone: String,
    /// What to keep.
    pub retention: Retention,
    /// zstd level.
    pub level: u8,
    /// The most bytes a second its backups upload; `null`: no limit of its own.
    pub upload_limit: Option<u64>,
}

impl JobRow {
    /// What the job does now.
    pub fn spec(&self) -> JobSpec {
        JobSpec {
            name: self.name.clone(),
            sources: serde_json::from_str(&self.sources_json).unwrap_or_default(),
            excludes: serde_json::from_str(&self.excludes_json).unwrap_or_default(),
            schedule: self.schedule.clone(),
            time_zone: self.time_zone.clone(),
            retention: self.retention,
            level: self.level,
            upload_limit: self.upload_limit,
        }
    }
}

/// Stores a job (the caller has validated everything).
///
/// # Errors
/// SQLite's; a constraint error if the agent has a job of this name.
pub fn insert_job(
    conn: &Connection,
    tenant_id: i64,
    agent_id: i64,
    spec: &JobSpec,
    next_run_at: Option<i64>,
) -> rusqlite::Result<JobRow> {
    let at = now();
    let sources_json = serde_json::to_string(&spec.sources).unwrap_or_else(|_| "[]".to_owned());
    let excludes_json = serde_json::to_string(&spec.excludes).unwrap_or_else(|_| "[]".to_owned());
    conn.execute(
        "INSERT INTO jobs (id, tenant_id, agent_id, name, sources, schedule, keep_last, keep_daily,
                           keep_weekly, keep_monthly, level, next_run_at, created_at, upload_limit,
                           excludes, time_zone)
         VALUES (?13, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?14, ?15, ?16)",
        params![
            tenant_id,
            agent_id,
            spec.name,
            sources_json,
            spec.schedule,
            spec.retention.keep_last,
            spec.retention.keep_daily,
            spec.retention.keep_weekly,
            spec.retention.keep_monthly,
            spec.level,
            next_run_at,
            at,
            super::new_id(),
            spec.upload_limit,
            excludes_json,
            spec.time_zone
        ],
    )?;
    Ok(JobRow {
        id: conn.last_insert_rowid(),
        tenant_id,
        agent_id,
        name: spec.name.clone(),
        sources_json,
        excludes_json,
        schedule: spec.schedule.clone(),
        time_zone: spec.time_zone.clone(),
        retention: spec.retention,
        level: spec.level,
        next_run_at,
        created_at: at,
        upload_limit: spec.upload_limit,
    })
}

/// Replaces what job `id` does (its ID, agent, repository and history stay).
///
/// # Errors
/// SQLite's; a constraint error if the agent has another job of the new name.
pub fn update_job(
    conn: &Connection,
    id: i64,
    spec: &JobSpec,
    next_run_at: Option<i64>,
) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE jobs SET name = ?2, sources = ?3, excludes = ?4, schedule = ?5, time_zone = ?6,
                         keep_last = ?7, keep_daily = ?8, keep_weekly = ?9, keep_monthly = ?10,
                         level = ?11, upload_limit = ?12, next_run_at = ?13
         WHERE id = ?1",
        params![
            id,
            spec.name,
            serde_json::to_string(&spec.sources).unwrap_or_else(|_| "[]".to_owned()),
            serde_json::to_string(&spec.excludes).unwrap_or_else(|_| "[]".to_owned()),
            spec.schedule,
            spec.time_zone,
            spec.retention.keep_last,
            spec.retention.keep_daily,
            spec.retention.keep_weekly,
            spec.retention.keep_monthly,
            spec.level,
            spec.upload_limit,
            next_run_at
        ],
    )?;
    Ok(())
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
