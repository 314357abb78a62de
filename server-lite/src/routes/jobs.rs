//! Jobs: create, list, view (with the next five due times), edit, run now, delete.
//! Editing keeps the job's ID, agent, repository and history; deleting keeps its
//! restore points unless asked to remove them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use coffer_protocol::AgentStatus;
use serde::Deserialize;
use serde_json::{json, Value};

use super::operator::{entry, find_agent};
use crate::auth::Operator;
use crate::db::audit::{self, AuditEntry};
use crate::db::jobs::{self, JobSpec, Retention};
use crate::db::{self as dbm, agents, now, retention_runs, runs};
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_id, ApiJson, Params};
use crate::routes::not_found;
use crate::scheduler;
use crate::state::AppState;

/// The job routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/jobs", post(create_job).get(list_jobs))
        .route(
            "/v1/jobs/{id}",
            get(get_job).patch(edit_job).delete(delete_job),
        )
        .route("/v1/jobs/{id}/run", post(run_job))
        .route(
            "/v1/jobs/{id}/retention",
            get(list_retention_runs).post(run_retention),
        )
}

/// The most sources, and exclude patterns, a job has.
const MAX_PATHS: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JobRequest {
    agent_id: String,
    name: String,
    sources: Vec<String>,
    #[serde(default)]
    excludes: Vec<String>,
    #[serde(default)]
    schedule: Option<String>,
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    retention: Retention,
    #[serde(default = "default_level")]
    level: u8,
    /// Bytes a second, or a size such as "10MiB/s"; absent or null: no limit.
    #[serde(default)]
    upload_limit: Option<Value>,
}

fn default_level() -> u8 {
    3
}

/// An edit: each field present replaces the job's; `schedule` and `upload_limit` set
/// to null remove them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JobPatch {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    sources: Option<Vec<String>>,
    #[serde(default)]
    excludes: Option<Vec<String>>,
    #[serde(default)]
    schedule: Option<Value>,
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    retention: Option<Retention>,
    #[serde(default)]
    level: Option<u8>,
    #[serde(default)]
    upload_limit: Option<Value>,
}

fn upload_limit(value: &Value) -> ApiResult<Option<u64>> {
    match value {
        Value::Null => Ok(None),
        v => Ok(Some(crate::extract::parse_rate("upload_limit", v)?)),
    }
}

/// Checks a job's spec; returns when it is next due (from `at`).
fn validate(spec: &JobSpec, at: i64) -> ApiResult<Option<i64>> {
    crate::extract::check_name("name", &spec.name, 100, true)?;
    if spec.name.contains('/') {
        return Err(ApiError::field("name", "'/' is not allowed"));
    }
    if spec.sources.is_empty() || spec.sources.len() > MAX_PATHS {
        return Err(ApiError::field(
            "sources",
            format!("from 1 to {MAX_PATHS} absolute paths"),
        ));
    }
    for (i, s) in spec.sources.iter().enumerate() {
        crate::extract::check_absolute_path(&format!("sources[{i}]"), s)?;
    }
    if spec.excludes.len() > MAX_PATHS {
        return Err(ApiError::field(
            "excludes",
            format!("at most {MAX_PATHS} patterns"),
        ));
    }
    for (i, pattern) in spec.excludes.iter().enumerate() {
        let field = format!("excludes[{i}]");
        crate::extract::check_name(&field, pattern, 4096, true)?;
        // The agent applies them with the engine's filter: refuse here what it would.
        coffer_adapters::repo::filter::Filter::new()
            .exclude(pattern)
            .map_err(|e| ApiError::field(&field, e.to_string()))?;
    }
    if !(1..=22).contains(&spec.level) {
        return Err(ApiError::field("level", "from 1 to 22"));
    }
    let zone =
        scheduler::parse_zone(&spec.time_zone).map_err(|e| ApiError::field("time_zone", e))?;
    match &spec.schedule {
        Some(expr) => {
            scheduler::check_interval(expr, zone, at)
                .map_err(|e| ApiError::field("schedule", e))?;
            Ok(Some(
                scheduler::next_after(expr, zone, at)
                    .map_err(|e| ApiError::field("schedule", e))?,
            ))
        }
        None => Ok(None),
    }
}

fn name_taken(e: &coffer_adapters::catalogue::rusqlite::Error) -> Option<ApiError> {
    dbm::is_constraint(e).then(|| ApiError::Conflict {
        code: "job_exists",
        message: "name: the agent already has a job of this name".to_owned(),
    })
}

pub(crate) async fn create_job(
    State(state): State<AppState>,
    op: Operator,
    ApiJson(req): ApiJson<JobRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let spec = JobSpec {
        name: req.name,
        sources: req.sources,
        excludes: req.excludes,
        schedule: req.schedule,
        time_zone: req.time_zone.unwrap_or_else(|| "UTC".to_owned()),
        retention: req.retention,
        level: req.level,
        upload_limit: upload_limit(req.upload_limit.as_ref().unwrap_or(&Value::Null))?,
    };
    let next = validate(&spec, now())?;
    let agent = find_agent(&state, &op, &req.agent_id).await?;
    if agent.status == AgentStatus::Revoked {
        return Err(ApiError::Conflict {
            code: "agent_revoked",
            message: "agent_id: the agent is revoked".to_owned(),
        });
    }
    let agent_id: i64 = agent.id.get();
    let tenant = op.tenant_id;
    let e = entry(
        &op,
        "job.create",
        String::new(),
        format!("name {:?}", spec.name),
    );
    let job = state
        .db
        .call(move |cat| {
            dbm::immediate(cat.connection_mut(), |tx| {
                let job = jobs::insert_job(tx, tenant, agent_id, &spec, next)
                    .map_err(|e| name_taken(&e).unwrap_or_else(|| e.into()))?;
                audit::record(
                    tx,
                    &AuditEntry {
                        target: format!("job:{}", job.id),
                        ..e
                    },
                )?;
                Ok(job)
            })
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "job": job.view() }))))
}

/// Edits a job in place. A new schedule or time zone recomputes when it is next due;
/// runs already queued keep the work they were queued with.
pub(crate) async fn edit_job(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<JobPatch>,
) -> ApiResult<Json<Value>> {
    let job = find_job(&state, &op, &id).await?;
    let old = job.spec();
    let mut spec = old.clone();
    if let Some(v) = patch.name {
        spec.name = v;
    }
    if let Some(v) = patch.sources {
        spec.sources = v;
    }
    if let Some(v) = patch.excludes {
        spec.excludes = v;
    }
    match patch.schedule {
        None => {}
        Some(Value::Null) => spec.schedule = None,
        Some(Value::String(s)) => spec.schedule = Some(s),
        Some(_) => {
            return Err(ApiError::field(
                "schedule",
                "a cron expression, or null for run-now only",
            ))
        }
    }
    if let Some(v) = patch.time_zone {
        spec.time_zone = v;
    }
    if let Some(v) = patch.retention {
        spec.retention = v;
    }
    if let Some(v) = patch.level {
        spec.level = v;
    }
    if let Some(v) = &patch.upload_limit {
        spec.upload_limit = upload_limit(v)?;
    }
    let recomputed = validate(&spec, now())?;
    // An unchanged schedule keeps its due time (an edit does not skip or add a run).
    let next = if spec.schedule == old.schedule && spec.time_zone == old.time_zone {
        job.next_run_at
    } else {
        recomputed
    };
    let changed = changes(&old, &spec);
    let (tenant, job_id) = (op.tenant_id, job.id);
    let e = entry(
        &op,
        "job.update",
        format!("job:{job_id}"),
        changed.join("; "),
    );
    let job = state
        .db
        .call(move |cat| {
            dbm::immediate(cat.connection_mut(), |tx| {
                jobs::update_job(tx, job_id, &spec, next)
                    .map_err(|e| name_taken(&e).unwrap_or_else(|| e.into()))?;
                audit::record(tx, &e)?;
                Ok(jobs::job(tx, tenant, job_id)?)
            })
        })
        .await?
        .ok_or_else(|| ApiError::internal("job vanished"))?;
    Ok(Json(json!({ "job": job.view() })))
}

/// What an edit changed, for the audit log (names of fields, and the new schedule).
fn changes(old: &JobSpec, new: &JobSpec) -> Vec<String> {
    let mut out = Vec::new();
    if old.name != new.name {
        out.push(format!("name {:?}", new.name));
    }
    if old.sources != new.sources {
        out.push(format!("sources {:?}", new.sources));
    }
    if old.excludes != new.excludes {
        out.push(format!("excludes {:?}", new.excludes));
    }
    if old.schedule != new.schedule {
        out.push(format!("schedule {:?}", new.schedule));
    }
    if old.time_zone != new.time_zone {
        out.push(format!("time_zone {}", new.time_zone));
    }
    if old.retention != new.retention {
        out.push(format!("retention {:?}", new.retention));
    }
    if old.level != new.level {
        out.push(format!("level {}", new.level));
    }
    if old.upload_limit != new.upload_limit {
        out.push(format!("upload_limit {:?}", new.upload_limit));
    }
    if out.is_empty() {
        out.push("nothing changed".to_owned());
    }
    out
}

pub(crate) async fn list_jobs(
    State(state): State<AppState>,
    op: Operator,
    params: Params,
) -> ApiResult<Json<Value>> {
    let agent = params.id("agent_id", "agent")?;
    let tenant = op.tenant_id;
    let list = state
        .db
        .call(move |cat| Ok(jobs::jobs(cat.connection(), tenant)?))
        .await?;
    Ok(Json(json!({
        "jobs": list
            .iter()
            .filter(|j| agent.is_none_or(|a| j.agent_id == a))
            .map(jobs::JobRow::view)
            .collect::<Vec<_>>()
    })))
}

pub(super) async fn find_job(state: &AppState, op: &Operator, id: &str) -> ApiResult<jobs::JobRow> {
    let id = parse_id(id, "job")?;
    let tenant = op.tenant_id;
    match state
        .db
        .call(move |cat| Ok(jobs::job(cat.connection(), tenant, id)?))
        .await?
    {
        Some(j) => Ok(j),
        None => Err(not_found(state, &op.actor, Some(tenant), "jobs", "job", id).await),
    }
}

pub(crate) async fn get_job(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({ "job": find_job(&state, &op, &id).await?.view() }),
    ))
}

/// What becomes of a deleted job's restore points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RestorePoints {
    /// They stay, restorable, without a job.
    Keep,
    /// Their snapshots are forgotten and the repository pruned.
    Delete,
}

pub(crate) async fn delete_job(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let choice = match params.0.get("restore_points").map(String::as_str) {
        None | Some("keep") => RestorePoints::Keep,
        Some("delete") => RestorePoints::Delete,
        Some(_) => return Err(ApiError::field("restore_points", "keep or delete")),
    };
    let job = find_job(&state, &op, &id).await?;
    let (tenant, job_id, agent_id) = (op.tenant_id, job.id, job.agent_id);
    // First the restore points (if asked): a failure leaves the job in place to retry.
    let removed = match choice {
        RestorePoints::Keep => None,
        RestorePoints::Delete => {
            let snapshots = state
                .db
                .read(move |conn| Ok(runs::job_snapshots(conn, tenant, job_id)?))
                .await?;
            Some(
                crate::retention::forget_snapshots(
                    &state,
                    tenant,
                    agent_id,
                    snapshots,
                    "job.delete_restore_points",
                    &op.actor,
                    &format!("job:{job_id}"),
                )
                .await?,
            )
        }
    };
    let e = entry(&op, "job.delete", format!("job:{job_id}"), String::new());
    let kept = choice == RestorePoints::Keep;
    state
        .db
        .call(move |cat| {
            Ok(dbm::immediate(cat.connection_mut(), |tx| {
                // Its queued runs go with it: none is handed out after the delete.
                let dropped = runs::cancel_queued_of_job(tx, job_id, "cancelled: job deleted")?;
                jobs::delete_job(tx, tenant, job_id)?;
                audit::record(
                    tx,
                    &AuditEntry {
                        detail: format!(
                            "{} queued run(s) cancelled; restore points {}",
                            dropped.len(),
                            if kept { "kept" } else { "deleted" }
                        ),
                        ..e
                    },
                )
            })?)
        })
        .await?;
    Ok(Json(json!({
        "deleted": true,
        "restore_points": if kept { "kept" } else { "deleted" },
        "removed": removed.map(|r| r.view()),
    })))
}

pub(crate) async fn run_job(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let job = find_job(&state, &op, &id).await?;
    let (tenant, actor) = (op.tenant_id, op.actor.clone());
    let e = entry(&op, "job.run_now", format!("job:{}", job.id), String::new());
    let run = state
        .db
        .call(move |cat| {
            dbm::immediate(cat.connection_mut(), |tx| {
                let dest = agents::destination_of_agent(tx, job.agent_id)?
                    .ok_or_else(|| ApiError::internal("agent without destination"))?;
                if agents::agent(tx, tenant, job.agent_id)?
                    .is_some_and(|a| a.status == AgentStatus::Revoked)
                {
                    return Err(ApiError::Conflict {
                        code: "agent_revoked",
                        message: "the job's agent is revoked".to_owned(),
                    });
                }
                let run_id = runs::enqueue_backup(tx, &job, &dest, &actor)?;
                audit::record(tx, &e)?;
                Ok(runs::run(tx, tenant, run_id)?)
            })
        })
        .await?
        .ok_or_else(|| ApiError::internal("run vanished"))?;
    state.dispatch.wake(run.agent_id);
    Ok((StatusCode::CREATED, Json(json!({ "run": run.view }))))
}

/// The job's retention runs, newest first: what each forgot and what prune freed.
pub(crate) async fn list_retention_runs(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let limit = super::operator::limit(&params)?;
    let job = find_job(&state, &op, &id).await?;
    let (tenant, job_id) = (op.tenant_id, job.id);
    let list = state
        .db
        .read(move |conn| Ok(retention_runs::list(conn, tenant, Some(job_id), limit)?))
        .await?;
    Ok(Json(json!({ "retention_runs": list })))
}

/// Applies the job's retention now (and prunes); answers the retention run.
async fn run_retention(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let job = find_job(&state, &op, &id).await?;
    let (tenant, job_id) = (op.tenant_id, job.id);
    if job.retention == Retention::default() {
        return Err(ApiError::Conflict {
            code: "no_retention",
            message: "the job keeps every restore point: set its retention first".to_owned(),
        });
    }
    let e = entry(
        &op,
        "retention.request",
        format!("job:{job_id}"),
        String::new(),
    );
    super::operator::record(&state, e).await;
    let report =
        crate::retention::apply(&state, tenant, job_id, retention_runs::Trigger::Operator).await?;
    let run_id = report
        .run_id
        .ok_or_else(|| ApiError::internal("retention recorded no run"))?;
    let run = state
        .db
        .read(move |conn| Ok(retention_runs::get(conn, tenant, run_id)?))
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "retention_run": run }))))
}
