//! The agent's endpoints (`/v1/enroll`, `/v1/agent/...`), exactly as `agent-api.md`
//! describes them.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use coffer_adapters::catalogue::RepositoryId;
use coffer_adapters::storage::{ObjectKey, PresignOp};
use serde::Deserialize;
use serde_json::json;

use crate::auth::Agent;
use crate::db::agents::{self, DestinationRow};
use crate::db::audit::{self, AuditEntry, AuditOutcome};
use crate::db::runs::{self, Completion, RunKind};
use crate::db::{self as dbm, backends, now, rfc3339};
use crate::error::{ApiError, ApiResult};
use crate::extract::{check_text, parse_id, ApiJson, Params};
use crate::keys;
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
        .route("/v1/agent/repository-key", get(repository_key))
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
        .call(move |cat| agents::destination_of_agent(cat.connection(), id))
        .await?
        .ok_or_else(|| ApiError::internal("agent without destination"))
}

async fn repository_key(
    State(state): State<AppState>,
    agent: Agent,
) -> ApiResult<Json<serde_json::Value>> {
    let dest = my_destination(&state, &agent).await?;
    let st = state.clone();
    let (tenant, actor) = (agent.tenant_id, agent.actor.clone());
    let repo = state
        .db
        .call(move |cat| {
            let id = RepositoryId(dest.repository_id);
            let (key, repo) = keys::repository_key(cat, &st.kek, dest.tenant_id, id)?;
            audit::record(
                cat.connection(),
                &AuditEntry {
                    tenant_id: Some(tenant),
                    actor,
                    action: "repository_key.fetch",
                    target: format!("repository:{}", id.0),
                    outcome: AuditOutcome::Ok,
                    detail: String::new(),
                },
            )?;
            Ok(super::enrol::repository_out(id, &key, repo.suite))
        })
        .await?;
    Ok(Json(
        serde_json::to_value(repo).map_err(ApiError::internal)?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Heartbeat {
    #[serde(default)]
    version: Option<String>,
}

async fn heartbeat(
    State(state): State<AppState>,
    agent: Agent,
    ApiJson(req): ApiJson<Heartbeat>,
) -> ApiResult<Json<serde_json::Value>> {
    let version = req.version.unwrap_or_default();
    check_text("version", &version, 64, false)?;
    let at = now();
    state.presence.beat(agent.agent_id, at, version);
    Ok(Json(json!({"server_time": rfc3339(at)})))
}

async fn poll(
    State(state): State<AppState>,
    agent: Agent,
    params: Params,
) -> ApiResult<Json<serde_json::Value>> {
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
            .read(move |conn| runs::has_queued(conn, id))
            .await?;
        let work = if queued {
            state
                .db
                .call(move |cat| {
                    dbm::immediate(cat.connection_mut(), |tx| runs::claim_next(tx, id, lease))
                })
                .await?
        } else {
            None
        };
        if let Some(work) = work {
            return Ok(Json(json!({ "work": work })));
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return Ok(Json(json!({ "work": null })));
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Progress {
    #[serde(deserialize_with = "crate::extract::count")]
    bytes: u64,
    #[serde(deserialize_with = "crate::extract::count")]
    files: u64,
}

/// The agent's own run, or a 404 (audited if the run is someone else's).
async fn my_run(state: &AppState, agent: &Agent, run_id: &str) -> ApiResult<runs::RunRow> {
    let id = parse_id(run_id, "run")?;
    let agent_id = agent.agent_id;
    let found = state
        .db
        .call(move |cat| runs::agent_run(cat.connection(), agent_id, id))
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
) -> ApiResult<Json<serde_json::Value>> {
    let run = my_run(&state, &agent, &run_id).await?;
    let lease = i64::try_from(state.config.lease.as_secs()).unwrap_or(i64::MAX);
    let updated = state
        .db
        .call(move |cat| runs::progress(cat.connection(), run.id, req.bytes, req.files, lease))
        .await?;
    match updated {
        Some(lease) => Ok(Json(json!({"lease_expires_at": rfc3339(lease)}))),
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
        (Some(rp), RunKind::Backup, runs::Outcome::Succeeded) => {
            crate::extract::check_name("restore_point.name", &rp.name, 255, true)?;
            ObjectKey::new(rp.prefix.clone())
                .map_err(|e| ApiError::field("restore_point.prefix", e))?;
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
        (None, RunKind::Backup, runs::Outcome::Succeeded) => {
            return Err(ApiError::field(
                "restore_point",
                "a succeeded backup must report its restore point",
            ))
        }
        (None, _, _) => None,
    };
    let actor = agent.actor.clone();
    let run_view = state
        .db
        .call(move |cat| {
            if let Some(rp) = &req.restore_point {
                let repo = cat
                    .repository(RepositoryId(run.repository_id))?
                    .ok_or_else(|| ApiError::internal("run of a missing repository"))?;
                if rp.key_id != hex::encode(repo.key_id.as_bytes()) {
                    return Err(ApiError::field(
                        "restore_point.key_id",
                        "not the key ID of this run's repository",
                    ));
                }
            }
            dbm::immediate(cat.connection_mut(), |tx| {
                runs::complete(tx, &run, &req, rp_created_at)?;
                if run.view.kind != RunKind::Backup {
                    audit::record(
                        tx,
                        &AuditEntry {
                            tenant_id: Some(run.tenant_id),
                            actor: actor.clone(),
                            action: "restore.complete",
                            target: format!("run:{}", run.id),
                            outcome: match req.status {
                                runs::Outcome::Succeeded => AuditOutcome::Ok,
                                runs::Outcome::Failed => AuditOutcome::Failed,
                            },
                            detail: format!("{:?}", run.view.kind).to_lowercase(),
                        },
                    )?;
                }
                runs::run(tx, run.tenant_id, run.id)
            })
        })
        .await?;
    Ok(Json(json!({ "run": run_view.map(|r| r.view) })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogLineIn {
    level: LogLevel,
    message: String,
    time: String,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum LogLevel {
    Info,
    Warn,
    Error,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Logs {
    lines: Vec<LogLineIn>,
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
        let level = match line.level {
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        };
        lines.push((
            level.to_owned(),
            crate::extract::clean_log_text(&line.message),
            time.as_second(),
        ));
    }
    let (tenant, id) = (agent.tenant_id, agent.agent_id);
    state
        .db
        .call(move |cat| {
            dbm::immediate(cat.connection_mut(), |tx| {
                agents::insert_logs(tx, tenant, id, &lines)
            })
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum Op {
    Put,
    Get,
    Head,
    Delete,
    CreateMultipart,
    UploadPart,
    ListParts,
    CompleteMultipart,
    AbortMultipart,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PresignRequest {
    op: Op,
    key: String,
    /// Agents only create: absent means `true`, and `false` is refused.
    #[serde(default = "create_only_default")]
    create_only: bool,
    /// A base64 SHA-256 (put, upload_part); for create_multipart, `true` or any
    /// checksum turns part checksums on.
    #[serde(default)]
    checksum_sha256: Option<serde_json::Value>,
    #[serde(default)]
    upload_id: Option<String>,
    #[serde(default)]
    part_number: Option<u16>,
}

fn create_only_default() -> bool {
    true
}

async fn presign(
    State(state): State<AppState>,
    agent: Agent,
    ApiJson(req): ApiJson<PresignRequest>,
) -> ApiResult<Json<serde_json::Value>> {
    // The key is relative to the destination: validate it alone (no `..`, no leading
    // `/`), then under the destination's root prefix.
    ObjectKey::new(req.key.clone()).map_err(|e| ApiError::BadRequest {
        code: "invalid_key",
        message: format!("key: {e}"),
    })?;
    let dest = my_destination(&state, &agent).await?;
    let full = ObjectKey::new(format!("{}/{}", dest.prefix, req.key)).map_err(|e| {
        ApiError::BadRequest {
            code: "invalid_key",
            message: format!("key: {e}"),
        }
    })?;
    let checksum: Option<String> = match &req.checksum_sha256 {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Bool(_)) => None,
        Some(_) => {
            return Err(ApiError::field(
                "checksum_sha256",
                "expected a base64 string or null",
            ))
        }
    };
    let checksum_flag =
        matches!(req.checksum_sha256, Some(serde_json::Value::Bool(true))) || checksum.is_some();
    let upload_id = || {
        req.upload_id
            .as_deref()
            .filter(|u| !u.is_empty())
            .ok_or_else(|| ApiError::field("upload_id", "required for this op"))
    };
    // Agents add backups; they never replace or remove one. A stolen agent key (or a
    // compromised agent machine) must not be able to destroy the backups it made:
    // deletion is the server's retention and the operators', and it is audited.
    let refusal = match req.op {
        Op::Delete => Some("agents cannot delete objects: retention and operators do"),
        Op::Put | Op::CompleteMultipart if !req.create_only => {
            Some("agents may only create objects: create_only must be true")
        }
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
    let op = match req.op {
        Op::Put => PresignOp::Put {
            create_only: req.create_only,
            checksum_sha256: checksum.as_deref(),
        },
        Op::Get => PresignOp::Get,
        Op::Head => PresignOp::Head,
        Op::Delete => PresignOp::Delete,
        Op::CreateMultipart => PresignOp::CreateMultipartUpload {
            checksum_sha256: checksum_flag,
        },
        Op::UploadPart => PresignOp::UploadPart {
            upload_id: upload_id()?,
            part_number: req
                .part_number
                .ok_or_else(|| ApiError::field("part_number", "required for upload_part"))?,
            checksum_sha256: checksum.as_deref(),
        },
        Op::ListParts => PresignOp::ListParts {
            upload_id: upload_id()?,
        },
        Op::CompleteMultipart => PresignOp::CompleteMultipartUpload {
            upload_id: upload_id()?,
            create_only: req.create_only,
        },
        Op::AbortMultipart => PresignOp::AbortMultipartUpload {
            upload_id: upload_id()?,
        },
    };
    let backend = match dest.backend_id {
        Some(id) => {
            state
                .db
                .call(move |cat| backends::backend(cat.connection(), id))
                .await?
        }
        None => None,
    };
    let expiry = state.config.presign_expiry;
    let signed = state
        .stores
        .presign(backend.as_ref(), &state.kek, op, &full, expiry)?;
    let expires_at = now() + i64::try_from(expiry.as_secs()).unwrap_or(0);
    Ok(Json(json!({
        "method": signed.method,
        "url": signed.url,
        "headers": signed.headers.iter().map(|(n, v)| [*n, v.as_str()]).collect::<Vec<_>>(),
        "expires_at": rfc3339(expires_at),
    })))
}
