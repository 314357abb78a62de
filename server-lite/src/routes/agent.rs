//! The agent's endpoints (`/v1/enroll`, `/v1/agent/...`), exactly as `agent-api.md`
//! describes them.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use coffer_adapters::catalogue::RepositoryId;
use coffer_adapters::storage::{ObjectKey, PresignOp};
use coffer_protocol::enrol::RepositoryKey;
use coffer_protocol::presign::{PresignAnswer, PresignRequest};
use coffer_protocol::report::{
    Completion, Heartbeat, HeartbeatAnswer, LogLevel, Logs, Progress, ProgressAnswer,
};
use coffer_protocol::work::PollAnswer;
use coffer_protocol::Outcome;
use serde_json::json;

use crate::auth::Agent;
use crate::db::agents::{self, DestinationRow};
use crate::db::audit::{self, AuditEntry, AuditOutcome};
use crate::db::runs::{self, RunKind};
use crate::db::{self as dbm, backends, now, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::extract::{check_text, parse_id, ApiJson, Params};
use crate::state::AppState;

/// The longest a poll may hold.
pub const MAX_POLL_SECS: u64 = 30;
/// A poll's hold when none is asked for.
pub const DEFAULT_POLL_SECS: u64 = 25;
/// Log lines per request, at most.
pub const MAX_LOG_LINES: usize = 100;
/// The longest log message, in bytes.
pub const MAX_LOG_MESSAGE: usize = 2048;

/// The agent's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/agent/repository-key", post(repository_key))
        .route("/v1/agent/heartbeat", post(heartbeat))
        .route("/v1/agent/poll", get(poll))
        .route("/v1/agent/runs/{run_id}/progress", post(progress))
        .route("/v1/agent/runs/{run_id}/complete", post(complete))
        .route("/v1/agent/logs", post(logs))
        .route("/v1/agent/presign", post(presign))
}

async fn my_destination(state: &AppState, agent: &Agent) -> ApiResult<DestinationRow> {
    let id = agent.agent_id;
    state
        .db
        .call(move |cat| Ok(agents::destination_of_agent(cat.connection(), id)?))
        .await?
        .ok_or_else(|| ApiError::internal("agent without destination"))
}

/// Issues the agent a new write-only key file (after a reinstall lost its state) and
/// removes its previous one, so at most one key of the agent opens the repository.
async fn repository_key(
    State(state): State<AppState>,
    agent: Agent,
) -> ApiResult<Json<RepositoryKey>> {
    let agent_id = agent.agent_id;
    let (old, suite) = state
        .db
        .call(move |cat| {
            let old = agents::key_file(cat.connection(), agent_id)?;
            let dest = agents::destination_of_agent(cat.connection(), agent_id)?
                .ok_or_else(|| ApiError::internal("agent without destination"))?;
            let repo = cat
                .repository(RepositoryId(dest.repository_id))?
                .ok_or_else(|| ApiError::internal("destination without repository"))?;
            Ok((old, repo.suite))
        })
        .await?;
    let (kek, file) = crate::run_access::reissue_agent_key(&state, agent_id, old).await?;
    let dest = my_destination(&state, &agent).await?;
    let (tenant, actor, file_id) = (agent.tenant_id, agent.actor.clone(), file.clone());
    let repo_id = RepositoryId(dest.repository_id);
    state
        .db
        .call(move |cat| {
            agents::set_key_file(cat.connection(), agent_id, &file_id)?;
            audit::record(
                cat.connection(),
                &AuditEntry {
                    tenant_id: Some(tenant),
                    actor,
                    action: "repository_key.reissue",
                    target: format!("repository:{}", repo_id.0),
                    outcome: AuditOutcome::Ok,
                    detail: format!("write-only key file {file_id}"),
                },
            )?;
            Ok(())
        })
        .await?;
    Ok(Json(super::enrol::repository_out(repo_id, &kek, suite)?))
}

async fn heartbeat(
    State(state): State<AppState>,
    agent: Agent,
    ApiJson(req): ApiJson<Heartbeat>,
) -> ApiResult<Json<HeartbeatAnswer>> {
    let version = req.version.unwrap_or_default();
    check_text("version", &version, 64, false)?;
    let at = now();
    state.presence.beat(
        agent.agent_id,
        agents::Beat {
            at,
            version,
            platform: req.platform,
        },
    );
    Ok(Json(HeartbeatAnswer {
        server_time: rfc3339(at),
    }))
}

/// What happened to a run, for its audit action.
#[derive(Debug, Clone, Copy)]
enum RunEvent {
    Start,
    Success,
    Failure,
}

/// The audit action of a run event: `backup.start`, `restore.success`,
/// `verify.failure` and so on.
fn run_action(kind: RunKind, event: RunEvent) -> &'static str {
    match (kind, event) {
        (RunKind::Backup, RunEvent::Start) => "backup.start",
        (RunKind::Backup, RunEvent::Success) => "backup.success",
        (RunKind::Backup, RunEvent::Failure) => "backup.failure",
        (RunKind::Restore, RunEvent::Start) => "restore.start",
        (RunKind::Restore, RunEvent::Success) => "restore.success",
        (RunKind::Restore, RunEvent::Failure) => "restore.failure",
        (RunKind::Verify, RunEvent::Start) => "verify.start",
        (RunKind::Verify, RunEvent::Success) => "verify.success",
        (RunKind::Verify, RunEvent::Failure) => "verify.failure",
    }
}

async fn poll(
    State(state): State<AppState>,
    agent: Agent,
    params: Params,
) -> ApiResult<Json<PollAnswer>> {
    let wait = params.get::<u64>("wait_secs")?.unwrap_or(DEFAULT_POLL_SECS);
    if wait > MAX_POLL_SECS {
        return Err(ApiError::field(
            "wait_secs",
            format!("at most {MAX_POLL_SECS}"),
        ));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let waker = state.dispatch.waker(agent.agent_id);
    let lease = i64::try_from(state.config.lease.as_secs()).unwrap_or(i64::MAX);
    loop {
        let id = agent.agent_id;
        // Registered before the check, so a wake between check and wait is not lost.
        let notified = waker.notified();
        // Most polls find nothing: ask a reader first, take the writer only to claim.
        let queued = state
            .db
            .read(move |conn| Ok(runs::has_queued(conn, id)?))
            .await?;
        let claimed = if queued {
            state
                .db
                .call(move |cat| {
                    Ok(dbm::immediate(cat.connection_mut(), |tx| {
                        runs::claim_next(tx, id, lease)
                    })?)
                })
                .await?
        } else {
            None
        };
        if let Some((run, lease_end)) = claimed {
            match crate::run_access::prepare(&state, &run).await {
                Ok(key) => {
                    let (run_id, tenant) = (run.id, run.tenant_id);
                    let work = state
                        .db
                        .read(move |conn| Ok(runs::work_of(conn, &run, lease_end, key)?))
                        .await;
                    match work {
                        Ok(work) => {
                            let kind = work.item.kind();
                            crate::auth::audit(
                                &state,
                                AuditEntry {
                                    tenant_id: Some(tenant),
                                    actor: agent.actor.clone(),
                                    action: run_action(kind, RunEvent::Start),
                                    target: format!("run:{run_id}"),
                                    outcome: AuditOutcome::Ok,
                                    detail: format!("{kind} claimed"),
                                },
                            )
                            .await;
                            return Ok(Json(PollAnswer { work: Some(work) }));
                        }
                        // Its restore point was forgotten since it was queued.
                        Err(e) => {
                            tracing::warn!("run {run_id}: {e:?}");
                            let reason = "what the run needs is gone (its restore point was \
                                          forgotten by retention?)";
                            state
                                .db
                                .call(move |cat| {
                                    Ok(runs::cancel(cat.connection(), tenant, run_id, reason)?)
                                })
                                .await?;
                            continue;
                        }
                    }
                }
                // Prune holds the repository: the run waits in the queue, and the
                // poll looks again in a moment.
                Err(ApiError::Conflict {
                    code: "repository_locked",
                    ..
                }) => {
                    let run_id = run.id;
                    state
                        .db
                        .call(move |cat| Ok(runs::unclaim(cat.connection(), run_id)?))
                        .await?;
                    let again = tokio::time::Instant::now() + Duration::from_secs(2);
                    if again >= deadline {
                        return Ok(Json(PollAnswer { work: None }));
                    }
                    tokio::time::sleep_until(again).await;
                    continue;
                }
                Err(e) => {
                    // The run cannot start: it fails, saying why, and the poll goes on.
                    let reason = match &e {
                        ApiError::Conflict { message, .. } => message.clone(),
                        _ => "the server could not prepare the repository for it".to_owned(),
                    };
                    tracing::warn!("preparing run {}: {e:?}", run.id);
                    let (run_id, tenant) = (run.id, run.tenant_id);
                    state
                        .db
                        .call(move |cat| {
                            Ok(runs::cancel(cat.connection(), tenant, run_id, &reason)?)
                        })
                        .await?;
                    continue;
                }
            }
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return Ok(Json(PollAnswer { work: None }));
        }
    }
}

/// The agent's own run, or a 404 (audited if the run is someone else's).
async fn my_run(state: &AppState, agent: &Agent, run_id: &str) -> ApiResult<runs::RunRow> {
    let id = parse_id(run_id, "run")?;
    let agent_id = agent.agent_id;
    let found = state
        .db
        .call(move |cat| Ok(runs::agent_run(cat.connection(), agent_id, id)?))
        .await?;
    match found {
        Some(run) => Ok(run),
        None => Err(crate::routes::not_found(
            state,
            &agent.actor,
            Some(agent.tenant_id),
            "runs",
            "run",
            id,
        )
        .await),
    }
}

async fn progress(
    State(state): State<AppState>,
    agent: Agent,
    Path(run_id): Path<String>,
    ApiJson(req): ApiJson<Progress>,
) -> ApiResult<Json<ProgressAnswer>> {
    let run = my_run(&state, &agent, &run_id).await?;
    let lease = i64::try_from(state.config.lease.as_secs()).unwrap_or(i64::MAX);
    // A path is shown, never interpreted: odd bytes are cleaned, long ones cut.
    let mut req = req;
    req.current = req.current.map(|c| {
        crate::extract::clean_log_text(&c)
            .chars()
            .take(1024)
            .collect()
    });
    let updated = state
        .db
        .call(move |cat| Ok(runs::progress(cat.connection(), run.id, &req, lease)?))
        .await?;
    match updated {
        Some(lease) => Ok(Json(ProgressAnswer {
            lease_expires_at: rfc3339(lease),
        })),
        None => Err(ApiError::Conflict {
            code: "run_not_running",
            message: "the run is not running (finished, or its lease lapsed)".to_owned(),
        }),
    }
}

async fn complete(
    State(state): State<AppState>,
    agent: Agent,
    Path(run_id): Path<String>,
    ApiJson(req): ApiJson<Completion>,
) -> ApiResult<Json<serde_json::Value>> {
    let run = my_run(&state, &agent, &run_id).await?;
    if let Some(error) = &req.error {
        check_text("error", error, 4096, false)?;
    }
    let rp_created_at = match (&req.restore_point, run.view.kind, req.status) {
        (Some(rp), RunKind::Backup, Outcome::Succeeded) => {
            crate::extract::check_name("restore_point.name", &rp.name, 255, true)?;
            if rp.prefix != crate::repos::REPO_FOLDER {
                return Err(ApiError::field(
                    "restore_point.prefix",
                    format!(
                        "backups go to the repository in {:?}",
                        crate::repos::REPO_FOLDER
                    ),
                ));
            }
            if rp.snapshot.len() != 32 || hex::decode(&rp.snapshot).is_err() {
                return Err(ApiError::field(
                    "restore_point.snapshot",
                    "not a snapshot ID (32 hex digits)",
                ));
            }
            let created: jiff::Timestamp = rp
                .created_at
                .parse()
                .map_err(|_| ApiError::field("restore_point.created_at", "not an RFC 3339 time"))?;
            Some(created.as_second())
        }
        (Some(_), _, _) => {
            return Err(ApiError::field(
                "restore_point",
                "only a succeeded backup run records a restore point",
            ))
        }
        (None, RunKind::Backup, Outcome::Succeeded) => {
            return Err(ApiError::field(
                "restore_point",
                "a succeeded backup must report its restore point",
            ))
        }
        (None, _, _) => None,
    };
    let actor = agent.actor.clone();
    let outcome = req.status;
    let (run_kind, run_job, run_tenant) = (run.view.kind, run.job_id, run.tenant_id);
    let run_view = state
        .db
        .call(move |cat| {
            let repo = cat
                .repository(RepositoryId(run.repository_id))?
                .ok_or_else(|| ApiError::internal("run of a missing repository"))?;
            let key_id = hex::encode(repo.key_id.as_bytes());
            Ok(dbm::immediate(cat.connection_mut(), |tx| {
                let finished_before = run.view.status.is_finished();
                runs::complete(tx, &run, &req, rp_created_at, &key_id)?;
                // Once, not again for a repeated completion.
                if !finished_before {
                    let (event, outcome) = match req.status {
                        Outcome::Succeeded => (RunEvent::Success, AuditOutcome::Ok),
                        Outcome::Failed => (RunEvent::Failure, AuditOutcome::Failed),
                    };
                    match (req.status, run.view.kind, run.job_id) {
                        (Outcome::Failed, _, _) => crate::notify::run_failed(tx, run.id, now())?,
                        (Outcome::Succeeded, RunKind::Backup, Some(job)) => {
                            crate::notify::job_succeeded(tx, run.tenant_id, job, now())?;
                        }
                        _ => {}
                    }
                    audit::record(
                        tx,
                        &AuditEntry {
                            tenant_id: Some(run.tenant_id),
                            actor: actor.clone(),
                            action: run_action(run.view.kind, event),
                            target: format!("run:{}", run.id),
                            outcome,
                            detail: format!(
                                "{} files, {} bytes{}",
                                req.files,
                                req.bytes,
                                req.error
                                    .as_deref()
                                    .map(|e| format!(": {e}"))
                                    .unwrap_or_default()
                            ),
                        },
                    )?;
                }
                runs::run(tx, run.tenant_id, run.id)
            })?)
        })
        .await?;
    // The run ended: what the server held for it in storage (its lock or key file)
    // goes now rather than at the next tick; after a good backup, the job's retention.
    let st = state.clone();
    let retention = (run_kind == RunKind::Backup && outcome == Outcome::Succeeded)
        .then_some(run_job)
        .flatten()
        .map(|job| (run_tenant, job));
    // A run ended: the agent may take the next one now (its poll may be waiting).
    state.dispatch.wake(agent.agent_id);
    state.background.spawn(async move {
        if let Err(e) = crate::run_access::sweep(&st).await {
            tracing::warn!("releasing what ended runs held: {e:?}");
        }
        if let Some((tenant, job)) = retention {
            if let Err(e) = crate::retention::apply(
                &st,
                tenant,
                job,
                crate::db::retention_runs::Trigger::Backup,
            )
            .await
            {
                tracing::warn!("retention of job {job}: {e:?}");
            }
        }
    });
    Ok(Json(json!({ "run": run_view.map(|r| r.view) })))
}

async fn logs(
    State(state): State<AppState>,
    agent: Agent,
    ApiJson(req): ApiJson<Logs>,
) -> ApiResult<StatusCode> {
    // Every call counts, refused ones too.
    if let Err(not_until) = state.limits.agent_logs.check_key(&agent.agent_id) {
        use governor::clock::{Clock, DefaultClock};
        return Err(ApiError::RateLimited {
            retry_after: not_until
                .wait_time_from(DefaultClock::default().now())
                .as_secs()
                .saturating_add(1),
        });
    }
    if req.lines.len() > MAX_LOG_LINES {
        return Err(ApiError::field(
            "lines",
            format!("at most {MAX_LOG_LINES} lines"),
        ));
    }
    let mut lines = Vec::with_capacity(req.lines.len());
    for (i, line) in req.lines.into_iter().enumerate() {
        if line.message.len() > MAX_LOG_MESSAGE {
            return Err(ApiError::field(
                &format!("lines[{i}].message"),
                format!("longer than {MAX_LOG_MESSAGE} bytes"),
            ));
        }
        let time: jiff::Timestamp = line
            .time
            .parse()
            .map_err(|_| ApiError::field(&format!("lines[{i}].time"), "not an RFC 3339 time"))?;
        let level: LogLevel = line.level;
        lines.push((
            level.as_str().to_owned(),
            crate::extract::clean_log_text(&line.message),
            time.as_second(),
        ));
    }
    let (tenant, id) = (agent.tenant_id, agent.agent_id);
    state
        .db
        .call(move |cat| {
            Ok(dbm::immediate(cat.connection_mut(), |tx| {
                agents::insert_logs(tx, tenant, id, &lines)
            })?)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The destination a presign is for: the agent's own, or with `?run_id=` that of a
/// restore or verify it is running of another agent's restore point (reads only).
async fn presign_destination(
    state: &AppState,
    agent: &Agent,
    params: &Params,
    op: &PresignOp<'_>,
) -> ApiResult<DestinationRow> {
    let Some(run_id) = params.id("run_id", "run")? else {
        return my_destination(state, agent).await;
    };
    if !matches!(
        op,
        PresignOp::Get | PresignOp::Head | PresignOp::List { .. }
    ) {
        return Err(ApiError::Forbidden(
            "a run's own URLs only read: ask without run_id to write",
        ));
    }
    let agent_id = agent.agent_id;
    let dest = state
        .db
        .call(move |cat| {
            let Some(run) = runs::agent_run(cat.connection(), agent_id, run_id)? else {
                return Ok(None);
            };
            if run.view.status != runs::RunStatus::Running
                || !matches!(run.view.kind, RunKind::Restore | RunKind::Verify)
            {
                return Err(ApiError::Conflict {
                    code: "run_not_running",
                    message: format!(
                        "run {run_id} is a {} that is {}: only a running restore or verify reads through it",
                        run.view.kind, run.view.status
                    ),
                });
            }
            Ok(agents::destination_by_id(
                cat.connection(),
                run.view.destination_id.get(),
            )?)
        })
        .await?;
    dest.ok_or(ApiError::NotFound { what: "run" })
}

async fn presign(
    State(state): State<AppState>,
    agent: Agent,
    params: Params,
    ApiJson(req): ApiJson<PresignRequest>,
) -> ApiResult<Json<PresignAnswer>> {
    // The key is relative to the destination: validate it alone (no `..`, no leading
    // `/`), then under the destination's root prefix.
    let invalid_key = |e: coffer_adapters::Error| ApiError::BadRequest {
        code: "invalid_key",
        message: format!("key: {e}"),
    };
    ObjectKey::new(req.key()).map_err(invalid_key)?;
    let op = req.op();
    let dest = presign_destination(&state, &agent, &params, &op).await?;
    let full = ObjectKey::new(format!("{}/{}", dest.prefix, req.key())).map_err(invalid_key)?;
    // Agents add backups; they never replace or remove one. A stolen agent key (or a
    // compromised agent machine) must not be able to destroy the backups it made:
    // deletion is the server's retention and the operators', and it is audited.
    let refusal = match op {
        PresignOp::Delete => Some("agents cannot delete objects: retention and operators do"),
        PresignOp::Put {
            create_only: false, ..
        }
        | PresignOp::CompleteMultipartUpload {
            create_only: false, ..
        } => Some("agents may only create objects: create_only must be true"),
        _ => None,
    };
    if let Some(reason) = refusal {
        crate::auth::audit(
            &state,
            AuditEntry {
                tenant_id: Some(agent.tenant_id),
                actor: agent.actor.clone(),
                action: "presign",
                target: format!("object:{}", full.as_str()),
                outcome: AuditOutcome::Denied,
                detail: reason.to_owned(),
            },
        )
        .await;
        return Err(ApiError::Forbidden(reason));
    }
    let backend = match dest.backend_id {
        Some(id) => {
            state
                .db
                .call(move |cat| Ok(backends::backend(cat.connection(), id)?))
                .await?
        }
        None => None,
    };
    let expiry = state.config.presign_expiry;
    let signed = state
        .stores
        .presign(backend.as_ref(), &state.kek, op, &full, expiry)?;
    let expires_at = now() + i64::try_from(expiry.as_secs()).unwrap_or(0);
    Ok(Json(PresignAnswer::new(&signed, rfc3339(expires_at))))
}
