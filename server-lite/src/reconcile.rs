//! The catalogue against storage. After a self-restore the database is as it was when
//! its self-backup was made: restore points whose snapshots were forgotten since are
//! listed again (a restore of one fails), and backups made since are not listed. This
//! compares each repository's snapshots in storage with the restore points the
//! database lists and, when asked to, removes the restore points whose snapshot is
//! gone. Snapshots with no restore point are counted, not added: the database no
//! longer knows which run and job made them (the repository still restores them).

use std::collections::{BTreeMap, BTreeSet};

use coffer_protocol::{DestinationId, TenantId};
use serde::Serialize;

use crate::db::audit::{self, AuditEntry, AuditOutcome};
use crate::db::{self as dbm, runs};
use crate::error::ApiResult;
use crate::run_access::{self, RepoOf};
use crate::state::AppState;

/// One repository compared.
#[derive(Debug, Clone, Serialize)]
pub struct RepositoryCheck {
    /// Its tenant.
    pub tenant_id: TenantId,
    /// The destination it is the repository of.
    pub destination_id: DestinationId,
    /// Restore points the database lists in it.
    pub restore_points: usize,
    /// Snapshots in storage (`null`: storage could not be listed).
    pub snapshots: Option<usize>,
    /// Snapshot IDs of restore points whose snapshot is not in storage.
    pub missing: Vec<String>,
    /// Snapshots in storage that no restore point lists.
    pub unlisted: usize,
    /// Restore points removed (with `apply`).
    pub removed: usize,
    /// Why storage could not be listed; nothing is removed then.
    pub error: Option<String>,
}

/// What a reconciliation found, and did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Whether restore points with a missing snapshot were removed.
    pub applied: bool,
    /// Each repository with restore points.
    pub repositories: Vec<RepositoryCheck>,
    /// Restore points whose snapshot is gone, in all.
    pub missing: usize,
    /// Restore points removed, in all.
    pub removed: usize,
    /// Repositories whose storage could not be listed.
    pub failed: usize,
}

/// Compares every repository's snapshots with the restore points listed; with `apply`,
/// removes those whose snapshot is gone, each repository's in one transaction with an
/// audit entry (`restore_point.missing`) in its tenant's log. A repository whose
/// storage cannot be listed is reported and left alone.
///
/// # Errors
/// The database's.
pub async fn reconcile(state: &AppState, apply: bool, actor: &str) -> ApiResult<Report> {
    let listed: BTreeMap<(DestinationId, TenantId), BTreeSet<String>> = state
        .db
        .read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT d.id, rp.tenant_id, rp.snapshot_id FROM restore_points rp
                 JOIN destinations d ON d.repository_id = rp.repository_id
                 WHERE rp.snapshot_id IS NOT NULL",
            )?;
            let mut out: BTreeMap<(DestinationId, TenantId), BTreeSet<String>> = BTreeMap::new();
            let rows = stmt.query_map([], |r| {
                Ok((
                    dbm::typed_id(0, r.get(0)?)?,
                    dbm::typed_id(1, r.get(1)?)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            for row in rows {
                let (dest, tenant, snapshot) = row?;
                out.entry((dest, tenant)).or_default().insert(snapshot);
            }
            Ok(out)
        })
        .await?;
    let mut report = Report {
        applied: apply,
        repositories: Vec::new(),
        missing: 0,
        removed: 0,
        failed: 0,
    };
    for ((dest, tenant), snapshots) in listed {
        let mut check = RepositoryCheck {
            tenant_id: tenant,
            destination_id: dest,
            restore_points: snapshots.len(),
            snapshots: None,
            missing: Vec::new(),
            unlisted: 0,
            removed: 0,
            error: None,
        };
        let stored =
            run_access::with_repository_of(state, RepoOf::Destination(dest.get()), |repo, _| {
                repo.list_ids("snapshots")
                    .map_err(crate::error::ApiError::internal)
            })
            .await;
        let stored: BTreeSet<String> = match stored {
            Ok(ids) => ids.into_iter().map(|(id, _)| hex::encode(id)).collect(),
            Err(e) => {
                check.error = Some(e.to_string());
                report.failed += 1;
                report.repositories.push(check);
                continue;
            }
        };
        check.snapshots = Some(stored.len());
        check.missing = snapshots.difference(&stored).cloned().collect();
        check.unlisted = stored.difference(&snapshots).count();
        report.missing += check.missing.len();
        if apply && !check.missing.is_empty() {
            let missing = check.missing.clone();
            let entry = AuditEntry {
                tenant_id: Some(tenant.get()),
                actor: actor.to_owned(),
                action: "restore_point.missing",
                target: format!("destination:{dest}"),
                outcome: AuditOutcome::Ok,
                detail: format!(
                    "removed the restore points of {} snapshot(s) gone from storage: {}",
                    missing.len(),
                    missing.join(", ")
                ),
            };
            check.removed = state
                .db
                .call(move |cat| {
                    dbm::immediate(cat.connection_mut(), |tx| {
                        let removed = runs::remove_restore_points(tx, tenant.get(), &missing)?;
                        audit::record(tx, &entry)?;
                        Ok(removed)
                    })
                })
                .await?;
            report.removed += check.removed;
        }
        report.repositories.push(check);
    }
    Ok(report)
}
