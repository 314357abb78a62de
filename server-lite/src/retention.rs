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
use crate::db::{self as dbm, runs};
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
    /// What prune did; `None` if it was put off (a backup holds the repository).
    pub prune: Option<PruneReport>,
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

/// Applies job `job_id`'s retention (of `tenant_id`) and prunes. A job whose policy
/// keeps nothing in particular (all zero) keeps everything: nothing is forgotten.
///
/// # Errors
/// 404 for a missing job; 500 for storage and database errors.
pub async fn apply(state: &AppState, tenant_id: i64, job_id: i64) -> ApiResult<RetentionReport> {
    let job = state
        .db
        .read(move |conn| Ok(jobs::job(conn, tenant_id, job_id)?))
        .await?
        .ok_or(ApiError::NotFound { what: "job" })?;
    let policy = policy(&job.retention);
    if policy.is_empty() {
        return Ok(RetentionReport::default());
    }
    let tag = runs::job_tag(coffer_protocol::JobId::try_from(job_id).map_err(ApiError::internal)?);
    let chosen = run_access::with_repository(state, job.agent_id, move |repo, _| {
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
        job.agent_id,
        forget,
        "retention.apply",
        "system",
        &format!("job:{job_id}"),
    )
    .await?;
    Ok(RetentionReport { kept, ..removed })
}

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
            Err(EngineError::Locked { .. }) => None,
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
