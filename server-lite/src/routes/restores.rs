//! An operator's restore points and restores: one restore point to a path, many at
//! once (each item reported, with totals), or a verify; each goes to the agent that
//! made the restore point. Confined to the operator's tenant like every operator route.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use coffer_adapters::repo::browse::Browser;
use coffer_adapters::repo::tree::NodeKind;
use coffer_protocol::AgentStatus;
use serde::Deserialize;
use serde_json::{json, Value};

use super::operator::{entry, record};
use crate::auth::Operator;
use crate::db::audit::{self, AuditEntry};
use crate::db::runs::{self, RunKind};
use crate::db::{self as dbm, agents};
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_id, ApiJson, Params};
use crate::routes::not_found;
use crate::state::AppState;

/// Items in one bulk restore, at most.
pub const MAX_BULK_ITEMS: usize = 100;

/// The restore routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/restore-points", get(list_restore_points))
        .route(
            "/v1/restore-points/{id}",
            get(get_restore_point).delete(delete_restore_point),
        )
        .route("/v1/restore-points/{id}/restore", post(restore))
        .route("/v1/restore-points/{id}/verify", post(verify))
        .route("/v1/restore-points/{id}/files", get(files))
        .route("/v1/restore-points/{id}/diff", get(diff))
        .route("/v1/restores", post(bulk_restore))
}

pub(crate) async fn list_restore_points(
    State(state): State<AppState>,
    op: Operator,
    params: Params,
) -> ApiResult<Json<Value>> {
    if params.0.contains_key("status") {
        return Err(ApiError::field("status", "restore points have no status"));
    }
    let filter = super::operator::list_filter(&params)?;
    let tenant = op.tenant_id;
    let list = state
        .db
        .call(move |cat| Ok(runs::restore_points(cat.connection(), tenant, &filter)?))
        .await?;
    let last = list.last().and_then(|r| r.id.parse().ok());
    let next = super::operator::next_page(list.len(), &filter, last);
    Ok(Json(json!({ "restore_points": list, "next_before": next })))
}

pub(crate) async fn get_restore_point(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id, "restore point")?;
    let tenant = op.tenant_id;
    match state
        .db
        .call(move |cat| Ok(runs::restore_point(cat.connection(), tenant, id)?))
        .await?
    {
        Some(r) => Ok(Json(json!({ "restore_point": r.view }))),
        None => Err(not_found(
            &state,
            &op.actor,
            Some(tenant),
            "restore_points",
            "restore point",
            id,
        )
        .await),
    }
}

/// Deletes a restore point: its snapshot is forgotten, the repository pruned (data no
/// other restore point uses is removed; put off while a backup holds the repository),
/// and the restore point removed. Audited with what prune freed.
async fn delete_restore_point(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id, "restore point")?;
    let tenant = op.tenant_id;
    let rp = state
        .db
        .read(move |conn| Ok(runs::restore_point(conn, tenant, id)?))
        .await?;
    let Some(rp) = rp else {
        return Err(not_found(
            &state,
            &op.actor,
            Some(tenant),
            "restore_points",
            "restore point",
            id,
        )
        .await);
    };
    let Some(snapshot) = rp.view.snapshot_id.clone() else {
        return Err(ApiError::Conflict {
            code: "not_a_snapshot",
            message: "an archive of the first agents: it is not in a repository this server prunes"
                .to_owned(),
        });
    };
    let report = crate::retention::forget_snapshots(
        &state,
        tenant,
        rp.agent_id,
        vec![snapshot],
        "restore_point.delete",
        &op.actor,
        &format!("restore_point:{id}"),
    )
    .await?;
    Ok(Json(json!({ "deleted": true, "removed": report.view() })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RestoreRequest {
    target: String,
    #[serde(default)]
    paths: Vec<String>,
    /// The agent to restore on (default: the one that made the restore point); any
    /// live agent of the tenant.
    #[serde(default)]
    agent_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkItem {
    restore_point_id: String,
    target: String,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    agent_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BulkRequest {
    items: Vec<BulkItem>,
}

fn check_restore(field: &str, target: &str, paths: &[String]) -> ApiResult<()> {
    crate::extract::check_absolute_path(&format!("{field}target"), target)?;
    if paths.len() > 1000 {
        return Err(ApiError::field(
            &format!("{field}paths"),
            "at most 1000 paths",
        ));
    }
    for (i, p) in paths.iter().enumerate() {
        // As the restore point's file listing shows them (absolute), or relative to
        // its root.
        let inside = p.strip_prefix('/').unwrap_or(p);
        if inside.is_empty()
            || inside.split('/').any(|s| s == ".." || s.is_empty())
            || p.chars().any(char::is_control)
        {
            return Err(ApiError::field(
                &format!("{field}paths[{i}]"),
                "must be a path inside the restore point, as its file listing shows it",
            ));
        }
    }
    Ok(())
}

/// Queues a restore (or verify) of restore point `rp_id` by agent `on` (default: the
/// one that made it). The run reads the restore point's destination whichever agent
/// does it, so a revoked agent's restore points restore on another.
async fn queue_restore(
    state: &AppState,
    op: &Operator,
    kind: RunKind,
    rp_id: i64,
    target: Option<String>,
    paths: Vec<String>,
    on: Option<i64>,
) -> ApiResult<runs::Run> {
    let tenant = op.tenant_id;
    let actor = op.actor.clone();
    let action = if kind == RunKind::Restore {
        "restore.request"
    } else {
        "verify.request"
    };
    let e = entry(
        op,
        action,
        format!("restore_point:{rp_id}"),
        target
            .clone()
            .map(|t| format!("to {t}"))
            .unwrap_or_default(),
    );
    let outcome = state
        .db
        .call(move |cat| {
            dbm::immediate(cat.connection_mut(), |tx| {
                let Some(rp) = runs::restore_point(tx, tenant, rp_id)? else {
                    return Ok(None);
                };
                let dest = agents::destination_of_agent(tx, rp.agent_id)?
                    .ok_or_else(|| ApiError::internal("agent without destination"))?;
                let agent_id = on.unwrap_or(rp.agent_id);
                match agents::agent(tx, tenant, agent_id)? {
                    None => return Err(ApiError::field("agent_id", "no such agent")),
                    Some(a) if a.status == AgentStatus::Revoked => {
                        return Err(ApiError::Conflict {
                            code: "agent_revoked",
                            message: if on.is_some() {
                                "agent_id: the agent is revoked".to_owned()
                            } else {
                                "the agent that made this restore point is revoked: \
                                 give agent_id to restore on another agent"
                                    .to_owned()
                            },
                        });
                    }
                    Some(_) => {}
                }
                let run_id = runs::enqueue_restore(
                    tx,
                    kind,
                    &rp,
                    agent_id,
                    &dest,
                    target.as_deref(),
                    &paths,
                    &actor,
                )?;
                audit::record(
                    tx,
                    &AuditEntry {
                        detail: format!("{} (run {run_id})", e.detail),
                        ..e
                    },
                )?;
                Ok(runs::run(tx, tenant, run_id)?)
            })
        })
        .await?;
    match outcome {
        Some(run) => {
            state.dispatch.wake(run.agent_id);
            Ok(run.view)
        }
        None => Err(not_found(
            state,
            &op.actor,
            Some(tenant),
            "restore_points",
            "restore point",
            rp_id,
        )
        .await),
    }
}

pub(crate) async fn restore(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RestoreRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = parse_id(&id, "restore point")?;
    check_restore("", &req.target, &req.paths)?;
    let on = agent_field("agent_id", req.agent_id.as_deref())?;
    let run = queue_restore(
        &state,
        &op,
        RunKind::Restore,
        id,
        Some(req.target),
        req.paths,
        on,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "run": run }))))
}

/// An optional agent ID field: 400 naming `field` if it is not one.
fn agent_field(field: &str, value: Option<&str>) -> ApiResult<Option<i64>> {
    value
        .map(|v| parse_id(v, "agent").map_err(|_| ApiError::field(field, "not an agent ID")))
        .transpose()
}

/// Queues a verify, by the agent that made the restore point or `?agent_id=`.
async fn verify(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = parse_id(&id, "restore point")?;
    let on = params.id("agent_id", "agent")?;
    let run = queue_restore(&state, &op, RunKind::Verify, id, None, Vec::new(), on).await?;
    Ok((StatusCode::CREATED, Json(json!({ "run": run }))))
}

/// One request, several restores: each item is queued on its own (one failing does
/// not stop the others) and reported with the totals.
pub(crate) async fn bulk_restore(
    State(state): State<AppState>,
    op: Operator,
    ApiJson(req): ApiJson<BulkRequest>,
) -> ApiResult<Json<Value>> {
    if req.items.is_empty() || req.items.len() > MAX_BULK_ITEMS {
        return Err(ApiError::field(
            "items",
            format!("from 1 to {MAX_BULK_ITEMS} items"),
        ));
    }
    for (i, item) in req.items.iter().enumerate() {
        check_restore(&format!("items[{i}]."), &item.target, &item.paths)?;
    }
    let mut results = Vec::with_capacity(req.items.len());
    let mut queued = 0usize;
    for (i, item) in req.items.into_iter().enumerate() {
        let on = agent_field(&format!("items[{i}].agent_id"), item.agent_id.as_deref());
        let outcome = match (parse_id(&item.restore_point_id, "restore point"), on) {
            (Ok(id), Ok(on)) => {
                queue_restore(
                    &state,
                    &op,
                    RunKind::Restore,
                    id,
                    Some(item.target),
                    item.paths,
                    on,
                )
                .await
            }
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        match outcome {
            Ok(run) => {
                queued += 1;
                results.push(json!({"restore_point_id": item.restore_point_id, "status": "queued", "run_id": run.id, "agent_id": run.agent_id, "error": null}));
            }
            Err(e) => {
                results.push(json!({"restore_point_id": item.restore_point_id, "status": "failed", "run_id": null, "error": {"code": e.code(), "message": e.to_string()}}));
            }
        }
    }
    let total = results.len();
    record(
        &state,
        entry(
            &op,
            "restore.bulk",
            "restores".to_owned(),
            format!("{queued} of {total} queued"),
        ),
    )
    .await;
    Ok(Json(json!({
        "results": results,
        "totals": {"requested": total, "queued": queued, "failed": total - queued},
    })))
}

/// Restore point `id` of the operator's tenant with its snapshot, or the 404 (audited)
/// or 409 (an archive of the first agents, which has no snapshot).
async fn snapshot_point(
    state: &AppState,
    op: &Operator,
    id: &str,
) -> ApiResult<(runs::RestorePointRow, [u8; 16])> {
    let id = parse_id(id, "restore point")?;
    let tenant = op.tenant_id;
    let Some(rp) = state
        .db
        .call(move |cat| Ok(runs::restore_point(cat.connection(), tenant, id)?))
        .await?
    else {
        return Err(not_found(
            state,
            &op.actor,
            Some(tenant),
            "restore_points",
            "restore point",
            id,
        )
        .await);
    };
    let snapshot = rp
        .view
        .snapshot_id
        .as_deref()
        .and_then(|s| hex::decode(s).ok())
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .ok_or(ApiError::Conflict {
            code: "no_snapshot",
            message: "this restore point is an archive of an earlier agent, not a snapshot"
                .to_owned(),
        })?;
    Ok((rp, snapshot))
}

/// An engine error reading a restore point, as the API answers it.
fn browse_error(e: coffer_adapters::Error) -> ApiError {
    match e {
        coffer_adapters::Error::NotFound { .. } => ApiError::Conflict {
            code: "snapshot_missing",
            message: "the restore point's snapshot is not in its repository (removed from \
                      storage?)"
                .to_owned(),
        },
        coffer_adapters::Error::NotInSnapshot { path } => ApiError::BadRequest {
            code: "not_in_snapshot",
            message: format!("path: {path} is not a folder in the restore point"),
        },
        other => ApiError::internal(other),
    }
}

/// The entries of one folder of a restore point (`?path=/srv/data`, default `/`),
/// read by the server with its key.
pub(crate) async fn files(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let (rp, snapshot) = snapshot_point(&state, &op, &id).await?;
    let path = params
        .get::<String>("path")?
        .unwrap_or_else(|| "/".to_owned());
    crate::extract::check_absolute_path("path", &path)?;
    let listed = path.clone();
    let entries = crate::run_access::with_repository(&state, rp.agent_id, move |repo, _| {
        let snap = repo.read_snapshot(&snapshot).map_err(browse_error)?;
        let mut browser = Browser::new(repo).map_err(ApiError::internal)?;
        let entries = browser.list(&snap, &listed).map_err(browse_error)?;
        Ok(entries
            .into_iter()
            .map(|(path, node)| {
                json!({
                    "name": String::from_utf8_lossy(&node.name),
                    "path": path,
                    "type": match node.kind {
                        NodeKind::File { .. } => "file",
                        NodeKind::Dir { .. } => "dir",
                        NodeKind::Symlink { .. } => "symlink",
                        _ => "other",
                    },
                    "size": node.size,
                    "mode": node.mode,
                    "mtime": crate::db::rfc3339(node.mtime),
                })
            })
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(Json(
        json!({"restore_point_id": rp.view.id, "path": path, "entries": entries}),
    ))
}

/// What changed from this restore point to another of the same repository
/// (`?to=<id>`): each path added, removed, modified, changed in metadata only, or
/// changed in type, with counts.
pub(crate) async fn diff(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let to = params
        .get::<String>("to")?
        .ok_or_else(|| ApiError::field("to", "the restore point to compare with is required"))?;
    let (from_rp, from) = snapshot_point(&state, &op, &id).await?;
    let (to_rp, to) = snapshot_point(&state, &op, &to).await?;
    if from_rp.repository_id != to_rp.repository_id {
        return Err(ApiError::Conflict {
            code: "different_repositories",
            message: "the two restore points are in different repositories".to_owned(),
        });
    }
    let changes = crate::run_access::with_repository(&state, from_rp.agent_id, move |repo, _| {
        let a = repo.read_snapshot(&from).map_err(browse_error)?;
        let b = repo.read_snapshot(&to).map_err(browse_error)?;
        let mut browser = Browser::new(repo).map_err(ApiError::internal)?;
        browser.diff(&a, &b).map_err(ApiError::internal)
    })
    .await?;
    let mut counts = std::collections::BTreeMap::new();
    let list: Vec<Value> = changes
        .iter()
        .map(|(change, path)| {
            *counts.entry(change.name()).or_insert(0u64) += 1;
            json!({"path": path, "change": change.name()})
        })
        .collect();
    Ok(Json(json!({
        "from": from_rp.view.id, "to": to_rp.view.id, "changes": list, "counts": counts,
    })))
}
