//! Retention, run by the server with its key: after each successful backup of a job,
//! the job's policy is applied to that job's snapshots (those tagged `job:<id>`), the
//! ones it does not keep are forgotten (snapshot objects deleted, restore points
//! removed), and the repository is pruned under its exclusive lock (FORMAT.md §23).
//!
//! Prune never runs beside a backup: the server holds a shared lock for every backup
//! run it dispatched (`run_access`), so prune's exclusive lock is refused while one
//! runs, and the prune waits for the job's next backup. Forgetting needs no lock (a
//! backup never reads another's snapshot). Each application is audited with what it
//! forgot and the bytes prune freed.

use coffer_adapters::repo::forget::{self, Policy};
use coffer_adapters::repo::prune::{self, PruneReport};
use coffer_adapters::Error as EngineError;

use crate::db::audit::{self, AuditEntry, AuditOutcome};
use crate::db::jobs::{self, Retention};
use crate::db::retention_runs::{self, NewRetentionRun, Trigger};
use crate::db::{self as dbm, now, runs};
use crate::error::{ApiError, ApiResult};
use crate::run_access;
use crate::state::AppState;

/// What applying a job's retention did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// The job's snapshots kept.
    pub kept: usize,
    /// Snapshots forgotten (hex IDs).
    pub forgotten: Vec<String>,
    /// Restore points removed with them.
    pub restore_points_removed: usize,
    /// What prune did; `None` if it was put off or there was nothing to collect.
    pub prune: Option<PruneReport>,
    /// Whether prune was put off (a backup holds the repository).
    pub prune_put_off: bool,
    /// The retention run recorded, for [`apply`].
    pub run_id: Option<i64>,
}

fn policy(r: &Retention) -> Policy {
    Policy {
        keep_last: r.keep_last,
        keep_daily: r.keep_daily,
        keep_weekly: r.keep_weekly,
        keep_monthly: r.keep_monthly,
        ..Policy::default()
    }
}

/// Applies job `job_id`'s retention (of `tenant_id`) and prunes, and records it as a
/// retention run (failed ones too) started by `trigger`. A job whose policy keeps
/// nothing in particular (all zero) keeps everything: nothing is forgotten, and no run
/// is recorded.
///
/// # Errors
/// 404 for a missing job; 500 for storage and database errors.
pub async fn apply(
    state: &AppState,
    tenant_id: i64,
    job_id: i64,
    trigger: Trigger,
) -> ApiResult<RetentionReport> {
    let started = now();
    let job = state
        .db
        .read(move |conn| Ok(jobs::job(conn, tenant_id, job_id)?))
        .await?
        .ok_or(ApiError::NotFound { what: "job" })?;
    let policy = policy(&job.retention);
    if policy.is_empty() {
        return Ok(RetentionReport::default());
    }
    let agent_id = job.agent_id;
    let outcome = apply_policy(state, tenant_id, job_id, agent_id, policy).await;
    let (report, error) = match &outcome {
        Ok(r) => (r.clone(), None),
        Err(ApiError::Internal(detail)) => (RetentionReport::default(), Some(detail.clone())),
        Err(e) => (RetentionReport::default(), Some(e.to_string())),
    };
    let id = state
        .db
        .call(move |cat| {
            let prune = match (&report.prune, report.prune_put_off) {
                (Some(_), _) => "done",
                (None, true) => "put_off",
                (None, false) => "none",
            };
            let p = report.prune.clone().unwrap_or_default();
            Ok(retention_runs::insert(
                cat.connection(),
                &NewRetentionRun {
                    tenant_id,
                    job_id,
                    agent_id,
                    trigger,
                    started_at: started,
                    finished_at: now(),
                    kept: report.kept as u64,
                    forgotten: &report.forgotten,
                    restore_points_removed: report.restore_points_removed as u64,
                    prune,
                    bytes_freed: p.bytes_freed,
                    packs_deleted: p.packs_deleted,
                    packs_repacked: p.packs_repacked,
                    error: error.as_deref(),
                },
            )?)
        })
        .await?;
    outcome.map(|r| RetentionReport {
        run_id: Some(id),
        ..r
    })
}

async fn apply_policy(
    state: &AppState,
    tenant_id: i64,
    job_id: i64,
    agent_id: i64,
    policy: Policy,
) -> ApiResult<RetentionReport> {
    let tag = runs::job_tag(coffer_protocol::JobId::try_from(job_id).map_err(ApiError::internal)?);
    let chosen = run_access::with_repository(state, agent_id, move |repo, _| {
        let mine: Vec<_> = repo
            .snapshots()
            .map_err(ApiError::internal)?
            .into_iter()
            .filter(|(_, s)| s.tags.contains(&tag))
            .collect();
        let decisions = forget::apply(&policy, &mine);
        let kept = decisions.iter().filter(|d| d.keep).count();
        let forget: Vec<String> = decisions
            .iter()
            .filter(|d| !d.keep)
            .map(|d| hex::encode(d.id))
            .collect();
        Ok((kept, forget))
    })
    .await?;
    let (kept, forget) = chosen;
    let removed = forget_snapshots(
        state,
        tenant_id,
        agent_id,
        forget,
        "retention.apply",
        "system",
        &format!("job:{job_id}"),
    )
    .await?;
    Ok(RetentionReport { kept, ..removed })
}

/// Applies the retention of every job with a policy whose retention has not run for a
/// day (so a job whose agent stopped backing up is still trimmed); called by the
/// scheduler, a few jobs a tick.
///
/// # Errors
/// Database errors finding the jobs (a job's own failure is recorded as its run).
pub async fn scheduled(state: &AppState, at: i64) -> ApiResult<usize> {
    let due = state
        .db
        .read(move |conn| Ok(retention_runs::due(conn, at - SCHEDULE_EVERY_SECS)?))
        .await?;
    let mut done = 0;
    for (tenant, job) in due.into_iter().take(SCHEDULED_PER_TICK) {
        if let Err(e) = apply(state, tenant, job, Trigger::Schedule).await {
            tracing::warn!("scheduled retention of job {job}: {e:?}");
        }
        done += 1;
    }
    Ok(done)
}

/// How often a job's retention runs when no backup runs it.
pub const SCHEDULE_EVERY_SECS: i64 = 24 * 3600;

/// Scheduled retention runs started per scheduler tick, at most.
const SCHEDULED_PER_TICK: usize = 4;

/// Forgets `snapshots` (hex IDs) of agent `agent_id`'s repository (deleting their
/// snapshot objects), removes their restore points, prunes under the exclusive lock
/// (put off while a backup holds the repository; the next retention or delete does
/// it), and audits it all as `action` on `target` by `actor`.
///
/// # Errors
/// 500 for storage and database errors (snapshots forgotten before one failed stay
/// forgotten; their restore points are removed only once all are).
pub async fn forget_snapshots(
    state: &AppState,
    tenant_id: i64,
    agent_id: i64,
    snapshots: Vec<String>,
    action: &'static str,
    actor: &str,
    target: &str,
) -> ApiResult<RetentionReport> {
    let host = format!("coffer-server ({target})");
    let pending = state
        .prune_pending
        .lock()
        .map(|p| p.contains(&agent_id))
        .unwrap_or(true);
    let report = run_access::with_repository(state, agent_id, move |repo, _| {
        let mut report = RetentionReport::default();
        for snapshot in snapshots {
            let id: [u8; 16] = hex::decode(&snapshot)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| ApiError::internal(format!("stored snapshot ID {snapshot:?}")))?;
            let name = coffer_adapters::repo::config::names::snapshot(&id);
            // Deleting is idempotent: one gone already (an earlier attempt) is fine.
            repo.store()
                .delete(&repo.object(&name).map_err(ApiError::internal)?)
                .map_err(ApiError::internal)?;
            report.forgotten.push(snapshot);
        }
        // Nothing forgotten and no prune put off: nothing to collect, so no
        // exclusive lock for nothing.
        if report.forgotten.is_empty() && !pending {
            return Ok(report);
        }
        report.prune = match prune::prune(repo, &host) {
            Ok(p) => Some(p),
            Err(EngineError::Locked { .. }) => {
                report.prune_put_off = true;
                None
            }
            Err(e) => return Err(ApiError::internal(e)),
        };
        Ok(report)
    })
    .await?;
    if let Ok(mut p) = state.prune_pending.lock() {
        match &report.prune {
            Some(_) => p.remove(&agent_id),
            None if !report.forgotten.is_empty() || pending => p.insert(agent_id),
            None => false,
        };
    }
    let forgotten = report.forgotten.clone();
    let detail = format!(
        "forgot {} ({}); {}",
        forgotten.len(),
        forgotten.join(", "),
        match &report.prune {
            Some(p) => format!(
                "prune freed {} bytes ({} packs deleted, {} repacked)",
                p.bytes_freed, p.packs_deleted, p.packs_repacked
            ),
            None if forgotten.is_empty() && !pending => "nothing to prune".to_owned(),
            None => "prune put off: a backup holds the repository".to_owned(),
        }
    );
    let (actor, target) = (actor.to_owned(), target.to_owned());
    let removed = state
        .db
        .call(move |cat| {
            Ok(dbm::immediate(cat.connection_mut(), |tx| {
                let removed = runs::remove_restore_points(tx, tenant_id, &forgotten)?;
                audit::record(
                    tx,
                    &AuditEntry {
                        tenant_id: Some(tenant_id),
                        actor,
                        action,
                        target,
                        outcome: AuditOutcome::Ok,
                        detail,
                    },
                )?;
                Ok::<_, dbm::DbError>(removed)
            })?)
        })
        .await?;
    Ok(RetentionReport {
        restore_points_removed: removed,
        ..report
    })
}

impl RetentionReport {
    /// The API's view: what was forgotten and what prune freed.
    pub fn view(&self) -> serde_json::Value {
        serde_json::json!({
            "retention_run_id": self.run_id.map(|id| id.to_string()),
            "kept": self.kept,
            "forgotten_snapshots": self.forgotten,
            "restore_points_removed": self.restore_points_removed,
            "prune": self.prune.as_ref().map(|p| serde_json::json!({
                "bytes_freed": p.bytes_freed,
                "packs_deleted": p.packs_deleted,
                "packs_repacked": p.packs_repacked,
            })),
        })
    }
}
