//! The agent's endpoints (`/v1/enroll`, `/v1/agent/...`), exactly as `agent-api.md`
//! describes them.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use coffer_adapters::catalogue::RepositoryId;
use coffer_adapters::storage::{ObjectKey, PresignOp};
use serde::{Deserialize, Serialize};
use serde_json::json;
use zeroize::Zeroizing;

use crate::auth::{self, Agent, ClientIp};
use crate::db::agents::{self, DestinationRow};
use crate::db::audit::{self, AuditEntry, AuditOutcome};
use crate::db::runs::{self, Completion, RunKind};
use crate::db::{self as dbm, backends, now, rfc3339, tenants, tokens};
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_id, ApiJson, Params};
use crate::keys;
use crate::state::AppState;
use crate::token::{NewToken, TokenHash, TokenKind};

/// The longest a poll may hold.
pub const MAX_POLL_SECS: u64 = 30;
/// A poll's hold when none is asked for.
pub const DEFAULT_POLL_SECS: u64 = 25;
/// Log lines per request, at most.
pub const MAX_LOG_LINES: usize = 1000;

/// The agent's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/enroll", post(enroll))
        .route("/v1/agent/repository-key", get(repository_key))
        .route("/v1/agent/heartbeat", post(heartbeat))
        .route("/v1/agent/poll", get(poll))
        .route("/v1/agent/runs/{run_id}/progress", post(progress))
        .route("/v1/agent/runs/{run_id}/complete", post(complete))
        .route("/v1/agent/logs", post(logs))
        .route("/v1/agent/presign", post(presign))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollRequest {
    token: String,
    hostname: String,
    #[serde(default)]
    version: String,
}

/// The repository as the agent receives it (the secret in base64).
#[derive(Serialize)]
struct RepositoryOut {
    id: String,
    key_id: String,
    suite: &'static str,
    #[serde(serialize_with = "expose")]
    key: Zeroizing<String>,
    key_version: u32,
}

/// Serializes a secret string: only into the one response that hands it over.
fn expose<S: serde::Serializer>(secret: &Zeroizing<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.as_str())
}

fn repository_out(
    id: RepositoryId,
    key: &coffer_core::SecretKey,
    suite: coffer_core::Suite,
) -> RepositoryOut {
    RepositoryOut {
        id: id.0.to_string(),
        key_id: hex::encode(key.id().as_bytes()),
        suite: keys::suite_name(suite),
        key: Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(key.expose_secret())),
        key_version: 1,
    }
}

fn check_text(field: &str, value: &str, max: usize, required: bool) -> ApiResult<()> {
    if required && value.is_empty() {
        return Err(ApiError::field(field, "must not be empty"));
    }
    if value.len() > max {
        return Err(ApiError::field(field, format!("longer than {max} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::field(field, "control characters are not allowed"));
    }
    Ok(())
}

async fn enroll(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<EnrollRequest>,
) -> ApiResult<Response> {
    let token = Zeroizing::new(req.token);
    auth::check_blocked(&state, ip)?;
    if let Err(not_until) = state.limits.enrol.check_key(&ip) {
        use governor::clock::{Clock, DefaultClock};
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        auth::audit(&state, deny(None, "anonymous", "enrolment rate limit", ip)).await;
        return Err(ApiError::RateLimited {
            retry_after: wait.as_secs() + 1,
        });
    }
    check_text("hostname", &req.hostname, 255, true)?;
    check_text("version", &req.version, 64, false)?;
    if TokenKind::of(&token) != Some(TokenKind::Enrolment) {
        auth::count_failure(&state, ip);
        auth::audit(
            &state,
            deny(None, "anonymous", "not an enrolment token", ip),
        )
        .await;
        return Err(ApiError::Unauthorized("unknown enrolment token"));
    }
    let hash = TokenHash::of(&token);
    let row = state
        .db
        .read(move |conn| tokens::find_token(conn, &hash))
        .await?;
    let Some(row) = row.filter(|r| r.kind == TokenKind::Enrolment) else {
        auth::count_failure(&state, ip);
        auth::audit(
            &state,
            deny(None, "anonymous", "unknown enrolment token", ip),
        )
        .await;
        return Err(ApiError::Unauthorized("unknown enrolment token"));
    };
    let actor = format!("enrolment:{}", row.id);
    if row.used_at.is_some() {
        auth::audit(
            &state,
            deny(row.tenant_id, &actor, "enrolment token reused", ip),
        )
        .await;
        return Err(used());
    }
    if row.revoked_at.is_some() || row.expires_at.is_some_and(|e| e <= now()) {
        auth::audit(
            &state,
            deny(row.tenant_id, &actor, "enrolment token expired", ip),
        )
        .await;
        return Err(ApiError::Gone {
            code: "enrolment_token_expired",
            message: "this enrolment token has expired",
        });
    }
    let tenant_id = row
        .tenant_id
        .ok_or_else(|| ApiError::internal("enrolment token without tenant"))?;
    let token_id = row.id;

    // Where this agent's objects go: a fresh prefix under its tenant, tested first.
    let tenant = state
        .db
        .call(move |cat| tenants::tenant(cat.connection(), tenant_id))
        .await?
        .ok_or_else(|| ApiError::internal("enrolment token of a missing tenant"))?;
    let backend_id: Option<i64> = tenant.backend_id.as_deref().and_then(|b| b.parse().ok());
    let backend = match backend_id {
        Some(id) => Some(
            state
                .db
                .call(move |cat| backends::backend(cat.connection(), id))
                .await?
                .ok_or_else(|| ApiError::internal("tenant of a missing backend"))?,
        ),
        None => None,
    };
    let prefix = format!("t{tenant_id}/{}", crate::token::random_hex(8));
    let bucket = backend
        .as_ref()
        .map_or_else(|| state.stores.bucket.clone(), |b| b.bucket.clone());
    let client = match &backend {
        Some(b) => Some(state.stores.backend_client(b, &state.kek)?),
        None => None,
    };
    {
        let (state, prefix) = (state.clone(), prefix.clone());
        tokio::task::spawn_blocking(move || state.stores.probe(client.as_ref(), &prefix))
            .await
            .map_err(ApiError::internal)??;
    }
    let tested_at = now();

    let hostname = req.hostname.clone();
    let version = req.version.clone();
    let st = state.clone();
    let location = match &backend {
        Some(b) => format!("s3://{}/{prefix}", b.bucket),
        None => format!("local:{}/{prefix}", state.stores.bucket),
    };
    let (agent_id, _dest_id, api_key, repo) = state
        .db
        .call(move |cat| {
            let name = keys::repository_name(tenant_id, &prefix);
            let (repo_id, key) =
                keys::create_repository(cat, &st.kek, tenant_id, &name, &location)?;
            let outcome = dbm::immediate(cat.connection_mut(), |tx| {
                if !tokens::use_token(tx, token_id)? {
                    return Err(used());
                }
                let agent_id = agents::insert_agent(tx, tenant_id, &hostname, &version)?;
                let dest_id = agents::insert_destination(
                    tx, tenant_id, agent_id, backend_id, &bucket, &prefix, repo_id.0, tested_at,
                )?;
                let api_key = NewToken::generate(TokenKind::Agent);
                tokens::insert_token(
                    tx,
                    TokenKind::Agent,
                    &api_key.hash,
                    Some(tenant_id),
                    Some(agent_id),
                    "",
                    None,
                )?;
                audit::record(
                    tx,
                    &AuditEntry {
                        tenant_id: Some(tenant_id),
                        actor: format!("enrolment:{token_id}"),
                        action: "agent.enrol",
                        target: format!("agent:{agent_id}"),
                        outcome: AuditOutcome::Ok,
                        detail: format!("hostname {hostname:?}, destination {bucket}/{prefix}"),
                    },
                )?;
                Ok((agent_id, dest_id, api_key.secret))
            });
            match outcome {
                Ok((agent_id, dest_id, secret)) => Ok((
                    agent_id,
                    dest_id,
                    secret,
                    repository_out(repo_id, &key, keys::SUITE),
                )),
                Err(e) => {
                    // The repository was made for this enrolment only.
                    let _ = cat.delete_repository(repo_id);
                    Err(e)
                }
            }
        })
        .await?;
    let dest = state
        .db
        .call(move |cat| agents::destination_of_agent(cat.connection(), agent_id))
        .await?
        .ok_or_else(|| ApiError::internal("destination vanished"))?;
    let body = json!({
        "agent_id": agent_id.to_string(),
        "api_key": api_key.as_str(),
        "tenant_id": tenant_id.to_string(),
        "destination": {"id": dest.id.to_string(), "bucket": dest.bucket, "prefix": dest.prefix},
        "repository": repo,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

fn used() -> ApiError {
    ApiError::Gone {
        code: "enrolment_token_used",
        message: "this enrolment token has already been used",
    }
}

fn deny(tenant_id: Option<i64>, actor: &str, detail: &str, ip: std::net::IpAddr) -> AuditEntry {
    AuditEntry {
        tenant_id,
        actor: actor.to_owned(),
        action: "agent.enrol",
        target: "enrolment".to_owned(),
        outcome: AuditOutcome::Denied,
        detail: format!("{detail} (from {ip})"),
    }
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
            Ok(repository_out(id, &key, repo.suite))
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
    bytes: u64,
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
            check_text("restore_point.name", &rp.name, 255, true)?;
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
    if req.lines.len() > MAX_LOG_LINES {
        return Err(ApiError::field(
            "lines",
            format!("at most {MAX_LOG_LINES} lines"),
        ));
    }
    let mut lines = Vec::with_capacity(req.lines.len());
    for (i, line) in req.lines.into_iter().enumerate() {
        if line.message.len() > 4096 {
            return Err(ApiError::field(
                &format!("lines[{i}].message"),
                "longer than 4096 bytes",
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
        lines.push((level.to_owned(), line.message, time.as_second()));
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
    #[serde(default)]
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
