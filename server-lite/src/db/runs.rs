//! Runs (one piece of work for one agent) and the restore points backups leave.
//!
//! A run is `queued` until its agent claims it by polling, then `running` under a lease
//! that progress reports extend; it ends `succeeded` or `failed` by the agent's
//! completion, or `failed` ("timed out") when the lease lapses. Each run copies the
//! tenant, repository and destination it was made for, and a restore point copies its
//! run's, so history stays put if an agent moves.

use coffer_adapters::catalogue::rusqlite::{self, params, Connection, OptionalExtension, Row};
use coffer_protocol::report::Completion;
use coffer_protocol::secret::Secret;
use coffer_protocol::work::{BackupWork, RestoreWork, VerifyWork, Work, WorkItem};
use coffer_protocol::{
    AgentId, DestinationId, JobId, RepositoryId, RestorePointId, RunId, TenantId,
};
pub use coffer_protocol::{Outcome, RunKind, RunStatus};
use serde::Serialize;

use super::agents::DestinationRow;
use super::jobs::JobRow;
use super::{now, rfc3339};
use super::{DbError, DbResult};

/// A run, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// ID.
    pub id: RunId,
    /// Tenant at the time it was made.
    pub tenant_id: TenantId,
    /// The agent that does it.
    pub agent_id: AgentId,
    /// Repository at the time it was made.
    pub repository_id: RepositoryId,
    /// Destination at the time it was made.
    pub destination_id: DestinationId,
    /// The job, for backups.
    pub job_id: Option<JobId>,
    /// `backup`, `restore` or `verify`.
    pub kind: RunKind,
    /// `queued`, `running`, `succeeded` or `failed`.
    pub status: RunStatus,
    /// For restores and verifies.
    pub restore_point_id: Option<RestorePointId>,
    /// Backup name.
    pub name: Option<String>,
    /// Key prefix, relative to the destination.
    pub prefix: Option<String>,
    /// Restore target path.
    pub target: Option<String>,
    /// Who asked for it (`scheduler`, `operator:N`).
    pub requested_by: String,
    /// When it was made.
    pub created_at: String,
    /// When the agent claimed it.
    pub claimed_at: Option<String>,
    /// When its lease lapses, while running.
    pub lease_expires_at: Option<String>,
    /// When it ended.
    pub finished_at: Option<String>,
    /// Bytes processed.
    pub bytes: u64,
    /// Files processed.
    pub files: u64,
    /// Why it failed.
    pub error: Option<String>,
    /// The latest progress report's totals, rate and current path, while running.
    pub progress: Option<RunProgress>,
    /// Scheduled due times this backup stands for beyond its own: times that passed
    /// while the agent was offline (or the server stopped) coalesce into one run.
    pub missed_schedules: u32,
}

/// What a running run's agent last reported beyond its counts.
#[derive(Debug, Clone, Serialize)]
pub struct RunProgress {
    /// Bytes in all, when known.
    pub bytes_total: Option<u64>,
    /// Files in all, when known.
    pub files_total: Option<u64>,
    /// Bytes a second.
    pub rate: Option<u64>,
    /// Seconds left at that rate, when the total is known.
    pub eta_secs: Option<u64>,
    /// The file being worked on.
    pub current_path: Option<String>,
    /// When the report came.
    pub updated_at: String,
}

const RUN_COLUMNS: &str = "id, tenant_id, agent_id, repository_id, destination_id, job_id, kind, \
    status, restore_point_id, name, prefix, target, requested_by, created_at, claimed_at, \
    lease_expires_at, finished_at, bytes, files, error, paths, sources, level, completion, \
    bytes_total, files_total, rate, current_path, progress_at, missed_schedules, excludes";

/// A run's stored form.
#[derive(Debug, Clone)]
pub struct RunRow {
    /// The API's view.
    pub view: Run,
    /// Numeric ID.
    pub id: i64,
    /// Numeric tenant.
    pub tenant_id: i64,
    /// Numeric agent.
    pub agent_id: i64,
    /// Numeric repository.
    pub repository_id: i64,
    /// Numeric job.
    pub job_id: Option<i64>,
    /// Restore paths (JSON).
    pub paths: Option<String>,
    /// Backup sources (JSON).
    pub sources: Option<String>,
    /// Backup exclude patterns (JSON).
    pub excludes: Option<String>,
    /// zstd level.
    pub level: Option<u8>,
    /// The completion the agent sent, canonical JSON.
    pub completion: Option<String>,
    /// Lease, Unix seconds.
    pub lease_expires_at: Option<i64>,
}

fn run_from_row(row: &Row<'_>) -> rusqlite::Result<RunRow> {
    let id: i64 = row.get(0)?;
    let tenant_id: i64 = row.get(1)?;
    let agent_id: i64 = row.get(2)?;
    let repository_id: i64 = row.get(3)?;
    let job_id: Option<i64> = row.get(5)?;
    let lease: Option<i64> = row.get(15)?;
    Ok(RunRow {
        view: Run {
            id: super::typed_id(0, id)?,
            tenant_id: super::typed_id(1, tenant_id)?,
            agent_id: super::typed_id(2, agent_id)?,
            repository_id: super::typed_id(3, repository_id)?,
            destination_id: super::typed_id(4, row.get(4)?)?,
            job_id: job_id.map(|j| super::typed_id(5, j)).transpose()?,
            kind: super::named(row, 6)?,
            status: super::named(row, 7)?,
            restore_point_id: row
                .get::<_, Option<i64>>(8)?
                .map(|r| super::typed_id(8, r))
                .transpose()?,
            name: row.get(9)?,
            prefix: row.get(10)?,
            target: row.get(11)?,
            requested_by: row.get(12)?,
            created_at: rfc3339(row.get(13)?),
            claimed_at: row.get::<_, Option<i64>>(14)?.map(rfc3339),
            lease_expires_at: lease.map(rfc3339),
            finished_at: row.get::<_, Option<i64>>(16)?.map(rfc3339),
            bytes: row.get(17)?,
            files: row.get(18)?,
            error: row.get(19)?,
            progress: progress_from_row(row)?,
            missed_schedules: row.get(29)?,
        },
        id,
        tenant_id,
        agent_id,
        repository_id,
        job_id,
        paths: row.get(20)?,
        sources: row.get(21)?,
        excludes: row.get(30)?,
        level: row.get(22)?,
        completion: row.get(23)?,
        lease_expires_at: lease,
    })
}

fn progress_from_row(row: &Row<'_>) -> rusqlite::Result<Option<RunProgress>> {
    let Some(at) = row.get::<_, Option<i64>>(28)? else {
        return Ok(None);
    };
    let (bytes, bytes_total, rate): (u64, Option<u64>, Option<u64>) =
        (row.get(17)?, row.get(24)?, row.get(26)?);
    Ok(Some(RunProgress {
        bytes_total,
        files_total: row.get(25)?,
        rate,
        eta_secs: match (bytes_total, rate) {
            (Some(total), Some(rate)) if rate > 0 => Some(total.saturating_sub(bytes) / rate),
            _ => None,
        },
        current_path: row.get(27)?,
        updated_at: rfc3339(at),
    }))
}

/// Queues a backup of `job` into `dest` (the job's agent's destination).
///
/// # Errors
/// SQLite's.
pub fn enqueue_backup(
    conn: &Connection,
    job: &JobRow,
    dest: &DestinationRow,
    requested_by: &str,
) -> DbResult<i64> {
    let at = now();
    let stamp = jiff::Timestamp::from_second(at)
        .map(|t| t.strftime("%Y%m%dT%H%M%SZ").to_string())
        .unwrap_or_default();
    conn.execute(
        "INSERT INTO runs (id, tenant_id, agent_id, repository_id, destination_id, job_id, kind,
                           status, name, prefix, sources, level, requested_by, created_at,
                           excludes)
         VALUES (?12, ?1, ?2, ?3, ?4, ?5, 'backup', 'queued', ?6, ?7, ?8, ?9, ?10, ?11, ?13)",
        params![
            dest.tenant_id,
            dest.agent_id,
            dest.repository_id,
            dest.id,
            job.id,
            format!("{}-{stamp}", job.name),
            crate::repos::REPO_FOLDER,
            job.sources_json,
            job.level,
            requested_by,
            at,
            super::new_id(),
            job.excludes_json
        ],
    )?;
    // Names must be unique per run: two runs of one job in one second differ by ID.
    let id = conn.last_insert_rowid();
    conn.execute(
        "UPDATE runs SET name = name || '-' || id WHERE id = ?1",
        [id],
    )?;
    Ok(id)
}

/// Queues a restore or verify of `rp`, held in `dest`, by agent `agent_id` (the one that
/// made it, or another of the tenant).
///
/// # Errors
/// SQLite's.
#[allow(clippy::too_many_arguments)]
pub fn enqueue_restore(
    conn: &Connection,
    kind: RunKind,
    rp: &RestorePointRow,
    agent_id: i64,
    dest: &DestinationRow,
    target: Option<&str>,
    paths: &[String],
    requested_by: &str,
) -> DbResult<i64> {
    let paths_json = serde_json::to_string(paths).unwrap_or_else(|_| "[]".to_owned());
    conn.execute(
        "INSERT INTO runs (id, tenant_id, agent_id, repository_id, destination_id, kind, status,
                           restore_point_id, name, prefix, target, paths, requested_by,
                           created_at)
         VALUES (?13, ?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            rp.tenant_id,
            agent_id,
            rp.repository_id,
            dest.id,
            kind.as_str(),
            rp.id,
            rp.view.name,
            rp.view.prefix,
            target,
            paths_json,
            requested_by,
            now(),
            super::new_id()
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Run `id` of `tenant`.
///
/// # Errors
/// SQLite's.
pub fn run(conn: &Connection, tenant_id: i64, id: i64) -> DbResult<Option<RunRow>> {
    Ok(conn
        .query_row(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1 AND tenant_id = ?2"),
            [id, tenant_id],
            run_from_row,
        )
        .optional()?)
}

/// Run `id` of `agent`.
///
/// # Errors
/// SQLite's.
pub fn agent_run(conn: &Connection, agent_id: i64, id: i64) -> DbResult<Option<RunRow>> {
    Ok(conn
        .query_row(
            &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1 AND agent_id = ?2"),
            [id, agent_id],
            run_from_row,
        )
        .optional()?)
}

/// Which runs or restore points a list shows: each field set narrows it. Lists are
/// newest first; `before` (an ID from the previous page) pages on.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListFilter {
    /// Made by this agent.
    pub agent_id: Option<i64>,
    /// Of this job.
    pub job_id: Option<i64>,
    /// In this state (runs only).
    pub status: Option<RunStatus>,
    /// Made at or after this time (Unix seconds).
    pub since: Option<i64>,
    /// Made before this time.
    pub until: Option<i64>,
    /// With IDs below this one (the next page).
    pub before: Option<i64>,
    /// At most this many.
    pub limit: u32,
}

/// `tenant`'s runs that `filter` lets through, newest first.
///
/// # Errors
/// SQLite's.
pub fn runs(conn: &Connection, tenant_id: i64, filter: &ListFilter) -> DbResult<Vec<Run>> {
    let mut st = conn.prepare(&format!(
        "SELECT {RUN_COLUMNS} FROM runs
         WHERE tenant_id = ?1 AND (?2 IS NULL OR agent_id = ?2) AND (?3 IS NULL OR job_id = ?3)
           AND (?4 IS NULL OR status = ?4) AND (?5 IS NULL OR created_at >= ?5)
           AND (?6 IS NULL OR created_at < ?6) AND (?7 IS NULL OR id < ?7)
         ORDER BY id DESC LIMIT ?8"
    ))?;
    let rows = st.query_map(
        params![
            tenant_id,
            filter.agent_id,
            filter.job_id,
            filter.status.map(RunStatus::as_str),
            filter.since,
            filter.until,
            filter.before,
            filter.limit
        ],
        run_from_row,
    )?;
    Ok(rows.map(|r| r.map(|r| r.view)).collect::<Result<_, _>>()?)
}

/// Whether `agent` has queued work (cheap check before claiming).
///
/// # Errors
/// SQLite's.
pub fn has_queued(conn: &Connection, agent_id: i64) -> DbResult<bool> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM runs WHERE agent_id = ?1 AND status = 'queued' LIMIT 1",
            [agent_id],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Claims `agent`'s oldest queued run under a lease of `lease_secs`, unless it already
/// runs as many as it may at once; returns it and the lease's end.
///
/// # Errors
/// SQLite's.
pub fn claim_next(
    conn: &Connection,
    agent_id: i64,
    lease_secs: i64,
) -> DbResult<Option<(RunRow, i64)>> {
    // No more at once than the operator allows this agent.
    let (running, allowed): (i64, i64) = conn.query_row(
        "SELECT (SELECT count(*) FROM runs WHERE agent_id = ?1 AND status = 'running'),
                (SELECT max_concurrent_runs FROM agents WHERE id = ?1)",
        [agent_id],
        |r| Ok((r.get(0)?, r.get::<_, Option<i64>>(1)?.unwrap_or(1))),
    )?;
    if running >= allowed {
        return Ok(None);
    }
    let Some(row) = conn
        .query_row(
            &format!(
                "SELECT {RUN_COLUMNS} FROM runs WHERE agent_id = ?1 AND status = 'queued'
                 ORDER BY id LIMIT 1"
            ),
            [agent_id],
            run_from_row,
        )
        .optional()?
    else {
        return Ok(None);
    };
    let at = now();
    let lease = at.saturating_add(lease_secs);
    conn.execute(
        "UPDATE runs SET status = 'running', claimed_at = ?2, lease_expires_at = ?3
         WHERE id = ?1 AND status = 'queued'",
        params![row.id, at, lease],
    )?;
    Ok(Some((row, lease)))
}

/// Puts claimed run `id` back in the queue (its repository could not be prepared for
/// it yet: prune holds it).
///
/// # Errors
/// SQLite's.
pub fn unclaim(conn: &Connection, id: i64) -> DbResult<()> {
    conn.execute(
        "UPDATE runs SET status = 'queued', claimed_at = NULL, lease_expires_at = NULL
         WHERE id = ?1 AND status = 'running'",
        [id],
    )?;
    Ok(())
}

/// The work item of claimed run `row`, whose lease ends at `lease`; `key` is the key
/// prepared for a restore or verify (`run_access::prepare`).
///
/// # Errors
/// [`DbError::Corrupt`] for a run without what its kind needs; SQLite's.
pub fn work_of(conn: &Connection, row: &RunRow, lease: i64, key: Option<Secret>) -> DbResult<Work> {
    let name = row.view.name.clone().unwrap_or_default();
    let prefix = row.view.prefix.clone().unwrap_or_default();
    let missing = |what: &str| DbError::corrupt(format!("run {} has no {what}", row.id));
    let json_list = |text: &Option<String>, what: &str| -> DbResult<Vec<String>> {
        serde_json::from_str(text.as_deref().unwrap_or("[]"))
            .map_err(|e| DbError::corrupt(format!("run {}'s {what}: {e}", row.id)))
    };
    let snapshot = || -> DbResult<String> {
        let rp = row
            .view
            .restore_point_id
            .ok_or_else(|| missing("restore point"))?;
        conn.query_row(
            "SELECT snapshot_id FROM restore_points WHERE id = ?1",
            [rp.get()],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()?
        .flatten()
        .ok_or_else(|| missing("snapshot"))
    };
    let item = match row.view.kind {
        RunKind::Backup => {
            let job = row.view.job_id.ok_or_else(|| missing("job"))?;
            // The lower of the job's and the agent's limits.
            let limits: (Option<u64>, Option<u64>) = conn.query_row(
                "SELECT (SELECT upload_limit FROM jobs WHERE id = ?1),
                        (SELECT upload_limit FROM agents WHERE id = ?2)",
                params![job.get(), row.agent_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let upload_limit = match limits {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            WorkItem::Backup(BackupWork {
                job_id: job,
                sources: json_list(&row.sources, "sources")?,
                excludes: json_list(&row.excludes, "excludes")?,
                prefix,
                name,
                tags: vec![job_tag(job)],
                upload_limit,
            })
        }
        RunKind::Restore => WorkItem::Restore(RestoreWork {
            restore_point_id: row
                .view
                .restore_point_id
                .ok_or_else(|| missing("restore point"))?,
            prefix,
            name,
            snapshot: snapshot()?,
            key: key.ok_or_else(|| missing("key"))?,
            target: row.view.target.clone().unwrap_or_default(),
            paths: json_list(&row.paths, "paths")?,
            destination: foreign_destination(conn, row)?,
        }),
        RunKind::Verify => WorkItem::Verify(VerifyWork {
            restore_point_id: row
                .view
                .restore_point_id
                .ok_or_else(|| missing("restore point"))?,
            prefix,
            name,
            snapshot: snapshot()?,
            key: key.ok_or_else(|| missing("key"))?,
            destination: foreign_destination(conn, row)?,
        }),
    };
    Ok(Work {
        run_id: row.view.id,
        lease_expires_at: rfc3339(lease),
        item,
    })
}

/// The run's destination if it is not its agent's own (a restore of another agent's
/// restore point).
fn foreign_destination(
    conn: &Connection,
    row: &RunRow,
) -> DbResult<Option<coffer_protocol::enrol::Destination>> {
    let own = super::agents::destination_of_agent(conn, row.agent_id)?.map(|d| d.id);
    let run_dest = row.view.destination_id.get();
    if own == Some(run_dest) {
        return Ok(None);
    }
    let dest = super::agents::destination_by_id(conn, run_dest)?
        .ok_or_else(|| DbError::corrupt(format!("run {}'s destination is gone", row.id)))?;
    Ok(Some(coffer_protocol::enrol::Destination {
        id: row.view.destination_id,
        bucket: dest.bucket,
        prefix: dest.prefix,
    }))
}

/// The tag a job's snapshots carry (retention groups by it).
pub fn job_tag(job: JobId) -> String {
    format!("job:{job}")
}

/// Records progress of a running run and extends its lease. False if the run is not
/// running (finished, or timed out).
///
/// # Errors
/// SQLite's.
pub fn progress(
    conn: &Connection,
    run_id: i64,
    p: &coffer_protocol::report::Progress,
    lease_secs: i64,
) -> DbResult<Option<i64>> {
    let at = now();
    let lease = at.saturating_add(lease_secs);
    let changed = conn.execute(
        "UPDATE runs SET bytes = ?2, files = ?3, lease_expires_at = ?4, bytes_total = ?5,
                         files_total = ?6, rate = ?7, current_path = ?8, progress_at = ?9
         WHERE id = ?1 AND status = 'running'",
        params![
            run_id,
            p.bytes,
            p.files,
            lease,
            p.bytes_total,
            p.files_total,
            p.rate,
            p.current,
            at
        ],
    )?;
    Ok((changed == 1).then_some(lease))
}

/// Records `completion` of `run` (already checked to be the agent's, and its restore
/// point validated), in the caller's transaction. Idempotent for the same completion;
/// a different completion of a finished run is a 409.
///
/// # Errors
/// 409 as above; SQLite's.
pub fn complete(
    conn: &Connection,
    run: &RunRow,
    completion: &Completion,
    rp_created_at: Option<i64>,
    key_id: &str,
) -> DbResult<()> {
    let canonical = serde_json::to_string(completion).map_err(DbError::corrupt)?;
    if run.view.status != RunStatus::Running {
        if run.completion.as_deref() == Some(canonical.as_str()) {
            return Ok(());
        }
        return Err(DbError::Conflict {
            code: "run_finished",
            message: format!(
                "run {} is already {}{}",
                run.id,
                run.view.status,
                run.view
                    .error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            ),
        });
    }
    let at = now();
    let status = RunStatus::from(completion.status).as_str();
    conn.execute(
        "UPDATE runs SET status = ?2, finished_at = ?3, lease_expires_at = NULL, bytes = ?4,
                         files = ?5, error = ?6, completion = ?7
         WHERE id = ?1",
        params![
            run.id,
            status,
            at,
            completion.bytes,
            completion.files,
            completion.error,
            canonical
        ],
    )?;
    if let (Some(rp), Some(created_at)) = (&completion.restore_point, rp_created_at) {
        let rp_id = super::new_id();
        let inserted = conn.execute(
            "INSERT INTO restore_points (id, tenant_id, repository_id, agent_id, run_id, job_id, name,
                                         prefix, key_id, stored_bytes, content_bytes, files,
                                         created_at, recorded_at, snapshot_id)
             VALUES (?14, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?15)",
            params![
                run.tenant_id,
                run.repository_id,
                run.agent_id,
                run.id,
                run.job_id,
                rp.name,
                rp.prefix,
                key_id,
                rp.stored_bytes,
                rp.content_bytes,
                rp.files,
                created_at,
                at,
                rp_id,
                rp.snapshot
            ],
        );
        match inserted {
            // The backup run points at what it made (restore points name their run).
            Ok(_) => {
                conn.execute(
                    "UPDATE runs SET restore_point_id = ?2 WHERE id = ?1",
                    params![run.id, rp_id],
                )?;
            }
            // The only constraint a validated restore point can break: its name is
            // already taken in this repository and prefix.
            Err(e) if super::is_constraint(&e) => {
                return Err(DbError::Conflict {
                    code: "restore_point_exists",
                    message: format!(
                        "restore_point.name: {:?} already exists under this prefix",
                        rp.name
                    ),
                })
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Cancels run `id` of `tenant` if it is queued or running: it ends as failed, with
/// `reason` as its error, and an agent still working on it is refused its next progress
/// report and its completion (409). Returns whether it was cancelled.
///
/// # Errors
/// SQLite's.
pub fn cancel(conn: &Connection, tenant_id: i64, id: i64, reason: &str) -> DbResult<bool> {
    Ok(conn.execute(
        "UPDATE runs SET status = 'failed', error = ?3, finished_at = ?4, lease_expires_at = NULL
         WHERE id = ?1 AND tenant_id = ?2 AND status IN ('queued', 'running')",
        params![id, tenant_id, reason, now()],
    )? == 1)
}

/// Cancels the queued runs of `job_id` (before the job is deleted, so none of them is
/// handed out afterwards); returns their IDs.
///
/// # Errors
/// SQLite's.
pub fn cancel_queued_of_job(conn: &Connection, job_id: i64, reason: &str) -> DbResult<Vec<i64>> {
    let mut st = conn.prepare(
        "UPDATE runs SET status = 'failed', error = ?2, finished_at = ?3
         WHERE job_id = ?1 AND status = 'queued'
         RETURNING id",
    )?;
    let rows = st.query_map(params![job_id, reason, now()], |row| row.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The backup run of `job_id` waiting to be claimed, if any (the scheduler does not
/// stack another on it).
///
/// # Errors
/// SQLite's.
pub fn queued_backup_of_job(conn: &Connection, job_id: i64) -> DbResult<Option<i64>> {
    Ok(conn
        .query_row(
            "SELECT id FROM runs WHERE job_id = ?1 AND status = 'queued' ORDER BY id LIMIT 1",
            [job_id],
            |r| r.get(0),
        )
        .optional()?)
}

/// Records that run `id` also stands for `count` more due times of its job.
///
/// # Errors
/// SQLite's.
pub fn add_missed_schedules(conn: &Connection, id: i64, count: u32) -> DbResult<()> {
    if count > 0 {
        conn.execute(
            "UPDATE runs SET missed_schedules = missed_schedules + ?2 WHERE id = ?1",
            params![id, count],
        )?;
    }
    Ok(())
}

/// Fails every running run whose lease lapsed before `at`; returns their IDs.
///
/// # Errors
/// SQLite's.
pub fn expire_leases(conn: &Connection, at: i64) -> DbResult<Vec<(i64, i64)>> {
    let mut st = conn.prepare(
        "UPDATE runs SET status = 'failed', error = 'timed out', finished_at = ?1,
                         lease_expires_at = NULL
         WHERE status = 'running' AND lease_expires_at < ?1
         RETURNING id, tenant_id",
    )?;
    let rows = st.query_map([at], |row| Ok((row.get(0)?, row.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A restore point, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RestorePoint {
    /// ID.
    pub id: String,
    /// Tenant it was made under.
    pub tenant_id: String,
    /// Repository it was made under.
    pub repository_id: String,
    /// The agent that made it.
    pub agent_id: String,
    /// The run that made it.
    pub run_id: String,
    /// The job, if any.
    pub job_id: Option<String>,
    /// Backup name.
    pub name: String,
    /// Key prefix, relative to the destination.
    pub prefix: String,
    /// Repository key ID (hex).
    pub key_id: String,
    /// The snapshot in the repository (32 hex digits); `None` for an archive of the
    /// first agents, which the current agent cannot restore.
    pub snapshot_id: Option<String>,
    /// Bytes in storage.
    pub stored_bytes: u64,
    /// Bytes of content.
    pub content_bytes: u64,
    /// Files.
    pub files: u64,
    /// When the backup was taken.
    pub created_at: String,
    /// When the server recorded it.
    pub recorded_at: String,
}

/// A restore point's stored form.
#[derive(Debug, Clone)]
pub struct RestorePointRow {
    /// The API's view.
    pub view: RestorePoint,
    /// ID.
    pub id: i64,
    /// Tenant.
    pub tenant_id: i64,
    /// Repository.
    pub repository_id: i64,
    /// Agent.
    pub agent_id: i64,
}

const RP_COLUMNS: &str = "id, tenant_id, repository_id, agent_id, run_id, job_id, name, prefix, \
    key_id, stored_bytes, content_bytes, files, created_at, recorded_at, snapshot_id";

fn rp_from_row(row: &Row<'_>) -> rusqlite::Result<RestorePointRow> {
    let id: i64 = row.get(0)?;
    let tenant_id: i64 = row.get(1)?;
    let repository_id: i64 = row.get(2)?;
    let agent_id: i64 = row.get(3)?;
    Ok(RestorePointRow {
        view: RestorePoint {
            id: id.to_string(),
            tenant_id: tenant_id.to_string(),
            repository_id: repository_id.to_string(),
            agent_id: agent_id.to_string(),
            run_id: row.get::<_, i64>(4)?.to_string(),
            job_id: row.get::<_, Option<i64>>(5)?.map(|j| j.to_string()),
            name: row.get(6)?,
            prefix: row.get(7)?,
            key_id: row.get(8)?,
            snapshot_id: row.get(14)?,
            stored_bytes: row.get(9)?,
            content_bytes: row.get(10)?,
            files: row.get(11)?,
            created_at: rfc3339(row.get(12)?),
            recorded_at: rfc3339(row.get(13)?),
        },
        id,
        tenant_id,
        repository_id,
        agent_id,
    })
}

/// Removes `tenant`'s restore points of the given snapshots (forgotten by retention);
/// runs that restored or verified them keep their history without the link. Returns
/// how many went.
///
/// # Errors
/// SQLite's.
pub fn remove_restore_points(
    conn: &Connection,
    tenant_id: i64,
    snapshots: &[String],
) -> DbResult<usize> {
    let mut removed = 0;
    for snapshot in snapshots {
        conn.execute(
            "UPDATE runs SET restore_point_id = NULL WHERE restore_point_id IN
               (SELECT id FROM restore_points WHERE tenant_id = ?1 AND snapshot_id = ?2)",
            params![tenant_id, snapshot],
        )?;
        removed += conn.execute(
            "DELETE FROM restore_points WHERE tenant_id = ?1 AND snapshot_id = ?2",
            params![tenant_id, snapshot],
        )?;
    }
    Ok(removed)
}

/// Restore point `id` of `tenant`.
///
/// # Errors
/// SQLite's.
pub fn restore_point(
    conn: &Connection,
    tenant_id: i64,
    id: i64,
) -> DbResult<Option<RestorePointRow>> {
    Ok(conn
        .query_row(
            &format!("SELECT {RP_COLUMNS} FROM restore_points WHERE id = ?1 AND tenant_id = ?2"),
            [id, tenant_id],
            rp_from_row,
        )
        .optional()?)
}

/// `tenant`'s restore points that `filter` lets through (its `status` aside), newest
/// first.
///
/// # Errors
/// SQLite's.
pub fn restore_points(
    conn: &Connection,
    tenant_id: i64,
    filter: &ListFilter,
) -> DbResult<Vec<RestorePoint>> {
    let mut st = conn.prepare(&format!(
        "SELECT {RP_COLUMNS} FROM restore_points
         WHERE tenant_id = ?1 AND (?2 IS NULL OR agent_id = ?2) AND (?3 IS NULL OR job_id = ?3)
           AND (?4 IS NULL OR created_at >= ?4) AND (?5 IS NULL OR created_at < ?5)
           AND (?6 IS NULL OR id < ?6)
         ORDER BY id DESC LIMIT ?7"
    ))?;
    let rows = st.query_map(
        params![
            tenant_id,
            filter.agent_id,
            filter.job_id,
            filter.since,
            filter.until,
            filter.before,
            filter.limit
        ],
        rp_from_row,
    )?;
    Ok(rows.map(|r| r.map(|r| r.view)).collect::<Result<_, _>>()?)
}

/// The snapshots (hex IDs) of `tenant`'s restore points of `job_id`.
///
/// # Errors
/// SQLite's.
pub fn job_snapshots(conn: &Connection, tenant_id: i64, job_id: i64) -> DbResult<Vec<String>> {
    let mut st = conn.prepare(
        "SELECT snapshot_id FROM restore_points
         WHERE tenant_id = ?1 AND job_id = ?2 AND snapshot_id IS NOT NULL ORDER BY id",
    )?;
    let rows = st.query_map([tenant_id, job_id], |r| r.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}
