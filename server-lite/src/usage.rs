//! Storage use: what each agent's repository holds in storage (its objects, listed
//! and summed: the bytes a bill counts, after deduplication and compression), what each
//! job's backups added, and the tenant's totals. The listing is done when asked, so the
//! figures are current; a repository whose storage cannot be listed is reported with
//! its error rather than failing the whole answer.

use serde::Serialize;

use crate::db::{now, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::stores::{under_prefix, PrefixOp};

/// One agent's repository in storage.
#[derive(Debug, Clone, Serialize)]
pub struct AgentUsage {
    /// The agent.
    pub agent_id: String,
    /// Its name.
    pub name: String,
    /// The destination holding its repository.
    pub destination_id: String,
    /// Bytes of the objects under the destination.
    pub stored_bytes: u64,
    /// How many objects.
    pub objects: u64,
    /// Its restore points.
    pub restore_points: u64,
    /// Why storage could not be listed, if it could not.
    pub error: Option<String>,
}

/// One job's backups.
#[derive(Debug, Clone, Serialize)]
pub struct JobUsage {
    /// The job.
    pub job_id: String,
    /// Its name.
    pub name: String,
    /// Its agent.
    pub agent_id: String,
    /// Its restore points.
    pub restore_points: u64,
    /// Bytes its kept backups added to storage (each backup's new packs).
    pub added_bytes: u64,
    /// Bytes of content its newest restore point holds.
    pub latest_content_bytes: u64,
}

/// A tenant's storage use.
#[derive(Debug, Clone, Serialize)]
pub struct TenantUsage {
    /// The tenant.
    pub tenant_id: String,
    /// Bytes in storage, all its agents' repositories.
    pub stored_bytes: u64,
    /// Objects in storage.
    pub objects: u64,
    /// Restore points.
    pub restore_points: u64,
    /// Per agent (deleted agents whose restore points remain included).
    pub agents: Vec<AgentUsage>,
    /// Per job.
    pub jobs: Vec<JobUsage>,
    /// When it was measured.
    pub measured_at: String,
}

/// Measures `tenant_id`'s storage use.
///
/// # Errors
/// Database errors (storage errors are reported per agent).
pub async fn tenant(state: &AppState, tenant_id: i64) -> ApiResult<TenantUsage> {
    let (dests, jobs) = state
        .db
        .read(move |conn| {
            let mut st = conn.prepare(
                "SELECT d.id, d.agent_id, coalesce(a.name, a.hostname), d.prefix, d.backend_id,
                        (SELECT count(*) FROM restore_points r WHERE r.agent_id = d.agent_id)
                 FROM destinations d JOIN agents a ON a.id = d.agent_id
                 WHERE d.tenant_id = ?1 AND (a.deleted_at IS NULL OR EXISTS
                       (SELECT 1 FROM restore_points r WHERE r.agent_id = d.agent_id))
                 ORDER BY d.id",
            )?;
            let dests = st
                .query_map([tenant_id], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                        r.get::<_, u64>(5)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut st = conn.prepare(
                "SELECT j.id, j.name, j.agent_id, count(r.id), coalesce(sum(r.stored_bytes), 0),
                        coalesce((SELECT content_bytes FROM restore_points l WHERE l.job_id = j.id
                                  ORDER BY l.id DESC LIMIT 1), 0)
                 FROM jobs j LEFT JOIN restore_points r ON r.job_id = j.id
                 WHERE j.tenant_id = ?1 GROUP BY j.id ORDER BY j.id",
            )?;
            let jobs = st
                .query_map([tenant_id], |r| {
                    Ok(JobUsage {
                        job_id: r.get::<_, i64>(0)?.to_string(),
                        name: r.get(1)?,
                        agent_id: r.get::<_, i64>(2)?.to_string(),
                        restore_points: r.get(3)?,
                        added_bytes: r.get(4)?,
                        latest_content_bytes: r.get(5)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok((dests, jobs))
        })
        .await
        .map_err(|e| ApiError::internal(format!("{e:?}")))?;
    let mut usage = TenantUsage {
        tenant_id: tenant_id.to_string(),
        stored_bytes: 0,
        objects: 0,
        restore_points: 0,
        agents: Vec::with_capacity(dests.len()),
        jobs,
        measured_at: rfc3339(now()),
    };
    for (dest_id, agent_id, name, prefix, backend_id, points) in dests {
        let listed = under_prefix(state, backend_id, prefix, PrefixOp::Measure).await;
        let (stored_bytes, objects, error) = match listed {
            Ok((bytes, count)) => (bytes, count, None),
            Err(e) => {
                state.metrics.storage_error();
                let why = match e {
                    ApiError::Internal(detail) => detail,
                    other => other.to_string(),
                };
                (0, 0, Some(why))
            }
        };
        usage.stored_bytes += stored_bytes;
        usage.objects += objects;
        usage.restore_points += points;
        usage.agents.push(AgentUsage {
            agent_id: agent_id.to_string(),
            name,
            destination_id: dest_id.to_string(),
            stored_bytes,
            objects,
            restore_points: points,
            error,
        });
    }
    Ok(usage)
}

/// Every tenant's totals, for the admin.
///
/// # Errors
/// Database errors.
pub async fn all(state: &AppState) -> ApiResult<Vec<TenantUsage>> {
    let tenants = state
        .db
        .read(|conn| Ok(crate::db::tenants::tenants(conn)?))
        .await?;
    let mut out = Vec::with_capacity(tenants.len());
    for t in tenants {
        let mut usage = tenant(state, t.id.get()).await?;
        // The admin's view: totals and agents, not every job.
        usage.jobs.clear();
        out.push(usage);
    }
    Ok(out)
}
