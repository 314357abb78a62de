//! An operator's endpoints, every one confined to the operator's tenant: agents,
//! enrolment tokens, destinations (read-only: they are locked), jobs, runs and the
//! tenant's audit log. Restore points and restores are in `restores`.

use coffer_protocol::AgentStatus;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use coffer_adapters::catalogue::RepositoryId;
use coffer_core::envelope::Purpose;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Operator;
use crate::db::audit::{self, AuditEntry, AuditOutcome};
use crate::db::jobs;
use crate::db::runs;
use crate::db::{self as dbm, agents, now, rfc3339, tokens};
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_id, ApiJson, Params};
use crate::routes::not_found;
use crate::state::AppState;
use crate::token::{NewToken, TokenKind};

/// How long enrolment tokens live by default.
pub const DEFAULT_ENROLMENT_TTL: Duration = Duration::from_secs(3600);
/// Rows a list returns, at most.
const MAX_LIST: u32 = 1000;

/// The operator's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/enrolment-tokens",
            post(create_enrolment_token).get(list_enrolment_tokens),
        )
        .route(
            "/v1/enrolment-tokens/{id}/revoke",
            post(revoke_enrolment_token),
        )
        .route("/v1/agents", get(list_agents))
        .route(
            "/v1/agents/{id}",
            get(get_agent).patch(edit_agent).delete(delete_agent),
        )
        .route("/v1/agents/{id}/revoke", post(revoke_agent))
        .route("/v1/agents/{id}/upload-limit", post(set_agent_upload_limit))
        .route("/v1/agents/{id}/concurrency", post(set_agent_concurrency))
        .route("/v1/agents/{id}/logs", get(agent_logs))
        .route("/v1/destinations", get(list_destinations))
        .route(
            "/v1/destinations/{id}/recovery-key",
            post(destination_recovery_key),
        )
        .route(
            "/v1/destinations/{id}",
            get(get_destination).delete(delete_destination),
        )
        .route("/v1/runs", get(list_runs))
        .route("/v1/runs/{id}", get(get_run))
        .route("/v1/runs/{id}/retry", post(retry_run))
        .route("/v1/runs/{id}/cancel", post(cancel_run))
        .route("/v1/audit", get(tenant_audit))
        .route("/v1/usage", get(tenant_usage))
}

/// The `limit` parameter of list routes (default 100).
pub(super) fn limit(params: &Params) -> ApiResult<u32> {
    let limit = params.get::<u32>("limit")?.unwrap_or(100);
    if limit == 0 || limit > MAX_LIST {
        return Err(ApiError::field("limit", format!("from 1 to {MAX_LIST}")));
    }
    Ok(limit)
}

/// Writes an audit entry outside a transaction (logging, not failing, on error).
pub(super) async fn record(state: &AppState, entry: AuditEntry) {
    crate::auth::audit(state, entry).await;
}

/// An `ok` audit entry by this operator in its tenant.
pub(super) fn entry(
    op: &Operator,
    action: &'static str,
    target: String,
    detail: String,
) -> AuditEntry {
    AuditEntry {
        tenant_id: Some(op.tenant_id),
        actor: op.actor.clone(),
        action,
        target,
        outcome: AuditOutcome::Ok,
        detail,
    }
}

pub(crate) async fn list_enrolment_tokens(
    State(state): State<AppState>,
    op: Operator,
) -> ApiResult<Json<Value>> {
    let tenant = op.tenant_id;
    let list = state
        .db
        .call(move |cat| {
            Ok(tokens::list_tokens(
                cat.connection(),
                TokenKind::Enrolment,
                Some(tenant),
            )?)
        })
        .await?;
    Ok(Json(json!({ "tokens": list })))
}

/// Revokes an enrolment token not yet used: no agent can enrol with it any more. A used
/// one is a 409 (revoke the agent it enrolled instead).
async fn revoke_enrolment_token(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id, "enrolment token")?;
    let tenant = op.tenant_id;
    let e = entry(
        &op,
        "enrolment_token.revoke",
        format!("enrolment_token:{id}"),
        String::new(),
    );
    let outcome = state
        .db
        .call(move |cat| {
            dbm::immediate(cat.connection_mut(), |tx| {
                let outcome = tokens::revoke_token(tx, id, TokenKind::Enrolment, Some(tenant))?;
                if outcome == tokens::Revoked::Now {
                    audit::record(tx, &e)?;
                }
                Ok(outcome)
            })
        })
        .await?;
    match outcome {
        tokens::Revoked::Now | tokens::Revoked::Already => {
            Ok(Json(json!({"id": id.to_string(), "revoked": true})))
        }
        tokens::Revoked::Used => Err(ApiError::Conflict {
            code: "enrolment_token_used",
            message: "the token was already used; revoke the agent it enrolled".to_owned(),
        }),
        tokens::Revoked::Missing => Err(not_found(
            &state,
            &op.actor,
            Some(tenant),
            "tokens",
            "enrolment token",
            id,
        )
        .await),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnrolmentTokenRequest {
    #[serde(default)]
    ttl_secs: Option<u64>,
    #[serde(default)]
    label: String,
}

pub(crate) async fn create_enrolment_token(
    State(state): State<AppState>,
    op: Operator,
    ApiJson(req): ApiJson<EnrolmentTokenRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let ttl = req.ttl_secs.unwrap_or(DEFAULT_ENROLMENT_TTL.as_secs());
    let max = state.config.max_enrolment_ttl.as_secs();
    if ttl == 0 || ttl > max {
        return Err(ApiError::field("ttl_secs", format!("from 1 to {max}")));
    }
    crate::extract::check_name("label", &req.label, 200, false)?;
    let expires_at = now() + i64::try_from(ttl).unwrap_or(0);
    let token = NewToken::generate(TokenKind::Enrolment);
    let hash = token.hash.clone();
    let (tenant, label, e) = (
        op.tenant_id,
        req.label.clone(),
        entry(&op, "enrolment_token.create", String::new(), String::new()),
    );
    let id = state
        .db
        .call(move |cat| {
            dbm::immediate(cat.connection_mut(), |tx| {
                let id = tokens::insert_token(
                    tx,
                    TokenKind::Enrolment,
                    &hash,
                    Some(tenant),
                    None,
                    &label,
                    Some(expires_at),
                )?;
                audit::record(
                    tx,
                    &AuditEntry {
                        target: format!("enrolment_token:{id}"),
                        ..e
                    },
                )?;
                Ok(id)
            })
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": id.to_string(),
            "token": token.secret.as_str(),
            "tenant_id": op.tenant_id.to_string(),
            "expires_at": rfc3339(expires_at),
        })),
    ))
}

pub(crate) async fn list_agents(
    State(state): State<AppState>,
    op: Operator,
) -> ApiResult<Json<Value>> {
    let tenant = op.tenant_id;
    let list = state
        .db
        .call(move |cat| Ok(agents::agents(cat.connection(), tenant)?))
        .await?;
    let list: Vec<_> = list
        .into_iter()
        .map(|a| {
            let beat = state.presence.get(a.id.get());
            a.with_presence(beat)
        })
        .collect();
    Ok(Json(json!({ "agents": list })))
}

pub(super) async fn find_agent(
    state: &AppState,
    op: &Operator,
    id: &str,
) -> ApiResult<agents::Agent> {
    let id = parse_id(id, "agent")?;
    let tenant = op.tenant_id;
    match state
        .db
        .call(move |cat| Ok(agents::agent(cat.connection(), tenant, id)?))
        .await?
    {
        Some(a) => Ok(a.with_presence(state.presence.get(id))),
        None => Err(not_found(state, &op.actor, Some(tenant), "agents", "agent", id).await),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadLimitRequest {
    /// Bytes a second, or a size such as "10MiB/s"; null: no limit.
    upload_limit: Value,
}

/// Sets (or, with null, lifts) an agent's upload limit; its backups take the lower of
/// it and their job's.
async fn set_agent_upload_limit(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UploadLimitRequest>,
) -> ApiResult<Json<Value>> {
    let limit = match &req.upload_limit {
        Value::Null => None,
        v => Some(crate::extract::parse_rate("upload_limit", v)?),
    };
    let agent = find_agent(&state, &op, &id).await?;
    let agent_id = agent.id.get();
    let e = entry(
        &op,
        "agent.upload_limit",
        format!("agent:{agent_id}"),
        match limit {
            Some(l) => format!("{l} bytes a second"),
            None => "none".to_owned(),
        },
    );
    state
        .db
        .call(move |cat| {
            Ok(dbm::immediate(cat.connection_mut(), |tx| {
                agents::set_upload_limit(tx, agent_id, limit)?;
                audit::record(tx, &e)
            })?)
        })
        .await?;
    let agent = find_agent(&state, &op, &id).await?;
    Ok(Json(json!({ "agent": agent })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConcurrencyRequest {
    max_concurrent_runs: u8,
}

/// Sets how many runs an agent does at once (1 to 16).
async fn set_agent_concurrency(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ConcurrencyRequest>,
) -> ApiResult<Json<Value>> {
    let max = req.max_concurrent_runs;
    if !(1..=16).contains(&max) {
        return Err(ApiError::field("max_concurrent_runs", "from 1 to 16"));
    }
    let agent = find_agent(&state, &op, &id).await?;
    let agent_id = agent.id.get();
    let e = entry(
        &op,
        "agent.concurrency",
        format!("agent:{agent_id}"),
        format!("{max} runs at once"),
    );
    state
        .db
        .call(move |cat| {
            Ok(dbm::immediate(cat.connection_mut(), |tx| {
                agents::set_max_concurrent_runs(tx, agent_id, max)?;
                audit::record(tx, &e)
            })?)
        })
        .await?;
    // It may take more now.
    state.dispatch.wake(agent_id);
    let agent = find_agent(&state, &op, &id).await?;
    Ok(Json(json!({ "agent": agent })))
}

/// The most labels an agent carries.
const MAX_LABELS: usize = 32;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentPatch {
    #[serde(default)]
    name: Option<String>,
    /// Replaces all its labels.
    #[serde(default)]
    labels: Option<std::collections::BTreeMap<String, String>>,
}

/// Renames an agent and sets its labels.
async fn edit_agent(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<AgentPatch>,
) -> ApiResult<Json<Value>> {
    let agent = find_agent(&state, &op, &id).await?;
    let name = patch.name.unwrap_or(agent.name);
    crate::extract::check_name("name", &name, 100, true)?;
    let labels = patch.labels.unwrap_or(agent.labels);
    if labels.len() > MAX_LABELS {
        return Err(ApiError::field(
            "labels",
            format!("at most {MAX_LABELS} labels"),
        ));
    }
    for (k, v) in &labels {
        crate::extract::check_name("labels (a key)", k, 64, true)?;
        crate::extract::check_name(&format!("labels.{k}"), v, 200, false)?;
    }
    let agent_id = agent.id.get();
    let e = entry(
        &op,
        "agent.update",
        format!("agent:{agent_id}"),
        format!("name {name:?}, labels {labels:?}"),
    );
    state
        .db
        .call(move |cat| {
            Ok(dbm::immediate(cat.connection_mut(), |tx| {
                agents::set_name_and_labels(tx, agent_id, &name, &labels)?;
                audit::record(tx, &e)
            })?)
        })
        .await?;
    let agent = find_agent(&state, &op, &id).await?;
    Ok(Json(json!({ "agent": agent })))
}

/// Deletes a revoked agent from the lists (409 for one not revoked). Its restore points
/// stay, restorable on another agent.
async fn delete_agent(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let agent = find_agent(&state, &op, &id).await?;
    if agent.status != AgentStatus::Revoked {
        return Err(ApiError::Conflict {
            code: "agent_not_revoked",
            message: "revoke the agent first (POST /v1/agents/{id}/revoke)".to_owned(),
        });
    }
    let (tenant, agent_id) = (op.tenant_id, agent.id.get());
    let e = entry(
        &op,
        "agent.delete",
        format!("agent:{agent_id}"),
        "its restore points stay".to_owned(),
    );
    state
        .db
        .call(move |cat| {
            Ok(dbm::immediate(cat.connection_mut(), |tx| {
                if agents::delete_revoked(tx, tenant, agent_id)? {
                    audit::record(tx, &e)?;
                }
                Ok::<_, dbm::DbError>(())
            })?)
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn get_agent(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let agent = find_agent(&state, &op, &id).await?;
    let agent_id: i64 = agent.id.get();
    let dest = state
        .db
        .call(move |cat| Ok(agents::destination_of_agent(cat.connection(), agent_id)?))
        .await?;
    Ok(Json(
        json!({ "agent": agent, "destination": dest.map(|d| d.view()) }),
    ))
}

pub(crate) async fn revoke_agent(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let agent = find_agent(&state, &op, &id).await?;
    let agent_id: i64 = agent.id.get();
    let tenant = op.tenant_id;
    let e = entry(
        &op,
        "agent.revoke",
        format!("agent:{agent_id}"),
        String::new(),
    );
    let revoked = state
        .db
        .call(move |cat| {
            dbm::immediate(cat.connection_mut(), |tx| {
                let done = agents::revoke_agent(tx, tenant, agent_id)?;
                if done {
                    audit::record(tx, &e)?;
                }
                Ok(done)
            })
        })
        .await?;
    if !revoked {
        return Err(ApiError::Conflict {
            code: "already_revoked",
            message: "the agent is already revoked".to_owned(),
        });
    }
    state.dispatch.wake(agent_id);
    // Its write-only key file goes too (or, if storage is away, at the next sweep).
    if let Err(e) = crate::run_access::remove_revoked_keys(&state).await {
        tracing::warn!("removing agent {agent_id}'s key file: {e:?}; retried each tick");
    }
    let agent = find_agent(&state, &op, &id).await?;
    Ok(Json(json!({ "agent": agent })))
}

pub(crate) async fn agent_logs(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<Json<Value>> {
    let limit = limit(&params)?;
    let agent = find_agent(&state, &op, &id).await?;
    let agent_id: i64 = agent.id.get();
    let lines = state
        .db
        .call(move |cat| Ok(agents::logs(cat.connection(), agent_id, limit)?))
        .await?;
    Ok(Json(json!({ "lines": lines })))
}

async fn list_destinations(State(state): State<AppState>, op: Operator) -> ApiResult<Json<Value>> {
    let tenant = op.tenant_id;
    let list = state
        .db
        .call(move |cat| Ok(agents::destinations(cat.connection(), tenant)?))
        .await?;
    Ok(Json(
        json!({ "destinations": list.iter().map(agents::DestinationRow::view).collect::<Vec<_>>() }),
    ))
}

/// Destination `id` of the operator's tenant, or the 404 [`not_found`] gives.
async fn find_destination(
    state: &AppState,
    op: &Operator,
    id: &str,
) -> ApiResult<agents::DestinationRow> {
    let id = parse_id(id, "destination")?;
    let tenant = op.tenant_id;
    let found = state
        .db
        .read(move |conn| Ok(agents::destination(conn, tenant, id)?))
        .await?;
    match found {
        Some(dest) => Ok(dest),
        None => Err(not_found(
            state,
            &op.actor,
            Some(tenant),
            "destinations",
            "destination",
            id,
        )
        .await),
    }
}

/// Deletes a destination no longer in use (its agent deleted, no restore points left
/// in it, no run using it): every object under it is removed from storage. Audited with
/// what went.
async fn delete_destination(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let dest = find_destination(&state, &op, &id).await?;
    let id = dest.id;
    let busy = state
        .db
        .read(move |conn| Ok(agents::destination_in_use(conn, id)?))
        .await?;
    if let Some(why) = busy {
        return Err(ApiError::Conflict {
            code: "destination_in_use",
            message: format!("the destination is in use: {why}"),
        });
    }
    let (bytes, objects) = crate::stores::under_prefix(
        &state,
        dest.backend_id,
        dest.prefix.clone(),
        crate::stores::PrefixOp::Empty,
    )
    .await?;
    let e = entry(
        &op,
        "destination.delete",
        format!("destination:{id}"),
        format!(
            "{objects} objects, {bytes} bytes removed from {}/{}",
            dest.bucket, dest.prefix
        ),
    );
    state
        .db
        .call(move |cat| {
            Ok(dbm::immediate(cat.connection_mut(), |tx| {
                agents::mark_destination_deleted(tx, id)?;
                audit::record(tx, &e)
            })?)
        })
        .await?;
    Ok(Json(
        json!({ "deleted": true, "objects_removed": objects, "bytes_freed": bytes }),
    ))
}

/// A recovery key for a destination's repository: a new full-access key file is added
/// to the repository, and its key-encryption key is answered this once (base64), with
/// where the repository is. With it, `coffer restore -r LOCATION --key-file FILE`
/// restores without the server (`coffer server destination recovery-key` writes the
/// file). Audited; the key file's ID is answered so it can be removed later
/// (`coffer key remove`).
async fn destination_recovery_key(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let dest = find_destination(&state, &op, &id).await?;
    let id = dest.id;
    let of = crate::run_access::RepoOf::Destination(id);
    let (kek, file) = crate::run_access::with_repository_of(&state, of, |repo, server_key| {
        crate::repos::add_key(repo, coffer_adapters::repo::keys::Access::Full, server_key)
    })
    .await?;
    let folder = format!("{}/{}", dest.prefix, crate::repos::REPO_FOLDER);
    let location = match dest.backend_id {
        // Absolute: the CLI that reads it may run elsewhere than the server did.
        None => {
            let path = state.stores.local.root().join(&folder);
            std::path::absolute(&path)
                .unwrap_or(path)
                .display()
                .to_string()
        }
        Some(_) => format!("s3://{}/{folder}", dest.bucket),
    };
    let e = entry(
        &op,
        "destination.recovery_key",
        format!("destination:{id}"),
        format!("full key file {file} added to {location}"),
    );
    state
        .db
        .call(move |cat| Ok(audit::record(cat.connection(), &e)?))
        .await?;
    use base64::Engine as _;
    let key = zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD.encode(kek.expose_secret()),
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "key": key.as_str(),
            "key_file_id": file,
            "location": location,
            "bucket": dest.bucket,
            "folder": folder,
            "embedded_store": dest.backend_id.is_none(),
        })),
    ))
}

async fn get_destination(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let dest = find_destination(&state, &op, &id).await?;
    let repo_id = RepositoryId(dest.repository_id);
    let (repo, envelope) = state
        .db
        .call(move |cat| {
            let repo = cat.repository(repo_id)?;
            let envelope = cat.latest_envelope(repo_id, Purpose::RepositoryKey)?;
            Ok((repo, envelope))
        })
        .await?;
    // The repository's key never leaves through an operator route: only its ID and
    // how it is wrapped.
    let repository = repo.map(|r| {
        json!({
            "id": r.id.0.to_string(),
            "key_id": hex::encode(r.key_id.as_bytes()),
            "suite": crate::keys::suite_name(r.suite),
            "key_version": envelope.as_ref().map(|e| e.key_version),
            "kek_id": envelope.as_ref().and_then(|e| e.kek_id).map(|k| hex::encode(k.as_bytes())),
        })
    });
    Ok(Json(
        json!({ "destination": dest.view(), "repository": repository }),
    ))
}

pub(crate) async fn list_runs(
    State(state): State<AppState>,
    op: Operator,
    params: Params,
) -> ApiResult<Json<Value>> {
    let filter = list_filter(&params)?;
    let tenant = op.tenant_id;
    let list = state
        .db
        .call(move |cat| Ok(runs::runs(cat.connection(), tenant, &filter)?))
        .await?;
    let next = next_page(list.len(), &filter, list.last().map(|r| r.id.get()));
    Ok(Json(json!({ "runs": list, "next_before": next })))
}

/// A list's filters from its query: `agent_id`, `job_id`, `status` (runs), `since`,
/// `until` (RFC 3339), `before` (an ID: the next page), `limit`.
pub(super) fn list_filter(params: &Params) -> ApiResult<runs::ListFilter> {
    Ok(runs::ListFilter {
        agent_id: params.id("agent_id", "agent")?,
        job_id: params.id("job_id", "job")?,
        status: params.get::<runs::RunStatus>("status")?,
        since: params.time("since")?,
        until: params.time("until")?,
        before: params.id("before", "list position")?,
        limit: limit(params)?,
    })
}

/// The `before` that fetches the page after a full one (`None`: this was the last).
pub(super) fn next_page(
    len: usize,
    filter: &runs::ListFilter,
    last: Option<i64>,
) -> Option<String> {
    (len == filter.limit as usize)
        .then_some(last)
        .flatten()
        .map(|id| id.to_string())
}

pub(crate) async fn get_run(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id, "run")?;
    let tenant = op.tenant_id;
    match state
        .db
        .call(move |cat| Ok(runs::run(cat.connection(), tenant, id)?))
        .await?
    {
        Some(r) => Ok(Json(json!({ "run": r.view }))),
        None => Err(not_found(&state, &op.actor, Some(tenant), "runs", "run", id).await),
    }
}

/// Queues a failed run again, as a new run with the same work (a backup gets a new
/// name, so nothing the failed attempt left behind is in its way).
async fn retry_run(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let id = parse_id(&id, "run")?;
    let tenant = op.tenant_id;
    let actor = op.actor.clone();
    let e = entry(&op, "run.retry", format!("run:{id}"), String::new());
    let outcome = state
        .db
        .call(move |cat| {
            dbm::immediate(cat.connection_mut(), |tx| {
                let Some(old) = runs::run(tx, tenant, id)? else {
                    return Ok(None);
                };
                if old.view.status != runs::RunStatus::Failed {
                    return Err(ApiError::Conflict {
                        code: "run_not_failed",
                        message: format!(
                            "only failed runs are retried; this one is {}",
                            old.view.status
                        ),
                    });
                }
                if agents::agent(tx, tenant, old.agent_id)?
                    .is_none_or(|a| a.status == AgentStatus::Revoked)
                {
                    return Err(ApiError::Conflict {
                        code: "agent_revoked",
                        message: "the run's agent is revoked".to_owned(),
                    });
                }
                let dest = agents::destination_of_agent(tx, old.agent_id)?
                    .ok_or_else(|| ApiError::internal("agent without destination"))?;
                let new_id = match old.view.kind {
                    runs::RunKind::Backup => {
                        let job = match old.job_id {
                            Some(j) => jobs::job(tx, tenant, j)?,
                            None => None,
                        }
                        .ok_or(ApiError::Conflict {
                            code: "job_deleted",
                            message: "the run's job no longer exists".to_owned(),
                        })?;
                        runs::enqueue_backup(tx, &job, &dest, &actor)?
                    }
                    kind => {
                        // Its restore point may have been deleted since (by an
                        // operator or retention): nothing is left to retry.
                        let gone = || ApiError::Conflict {
                            code: "restore_point_deleted",
                            message: "the run's restore point has been deleted".to_owned(),
                        };
                        let rp_id: i64 = old
                            .view
                            .restore_point_id
                            .map(coffer_protocol::RestorePointId::get)
                            .ok_or_else(gone)?;
                        let rp = runs::restore_point(tx, tenant, rp_id)?.ok_or_else(gone)?;
                        let paths: Vec<String> = old
                            .paths
                            .as_deref()
                            .and_then(|p| serde_json::from_str(p).ok())
                            .unwrap_or_default();
                        // The same destination and agent as the failed attempt.
                        let rp_dest = agents::destination_by_id(tx, old.view.destination_id.get())?
                            .ok_or_else(|| ApiError::internal("run without destination"))?;
                        runs::enqueue_restore(
                            tx,
                            kind,
                            &rp,
                            old.agent_id,
                            &rp_dest,
                            old.view.target.as_deref(),
                            &paths,
                            &actor,
                        )?
                    }
                };
                audit::record(
                    tx,
                    &AuditEntry {
                        detail: format!("as run {new_id}"),
                        ..e
                    },
                )?;
                Ok(runs::run(tx, tenant, new_id)?)
            })
        })
        .await?;
    match outcome {
        Some(run) => {
            state.dispatch.wake(run.agent_id);
            Ok((StatusCode::CREATED, Json(json!({ "run": run.view }))))
        }
        None => Err(not_found(&state, &op.actor, Some(tenant), "runs", "run", id).await),
    }
}

/// Cancels a queued or running run (it ends as failed, "cancelled by" the operator).
pub(crate) async fn cancel_run(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id, "run")?;
    let tenant = op.tenant_id;
    let e = entry(&op, "run.cancel", format!("run:{id}"), String::new());
    let reason = format!("cancelled by {}", op.actor);
    let outcome = state
        .db
        .call(move |cat| {
            dbm::immediate(cat.connection_mut(), |tx| {
                let Some(run) = runs::run(tx, tenant, id)? else {
                    return Ok(None);
                };
                if !runs::cancel(tx, tenant, id, &reason)? {
                    return Err(ApiError::Conflict {
                        code: "run_finished",
                        message: format!("run {id} is already {}", run.view.status),
                    });
                }
                audit::record(tx, &e)?;
                Ok(runs::run(tx, tenant, id)?)
            })
        })
        .await?;
    match outcome {
        Some(run) => {
            state.dispatch.wake(run.agent_id);
            Ok(Json(json!({ "run": run.view })))
        }
        None => Err(not_found(&state, &op.actor, Some(tenant), "runs", "run", id).await),
    }
}

pub(crate) async fn tenant_audit(
    State(state): State<AppState>,
    op: Operator,
    params: Params,
) -> ApiResult<Json<Value>> {
    let limit = limit(&params)?;
    let tenant = op.tenant_id;
    let list = state
        .db
        .call(move |cat| Ok(audit::list(cat.connection(), Some(tenant), limit)?))
        .await?;
    Ok(Json(json!({ "entries": list })))
}

/// Storage use of the operator's tenant: per agent (listed from storage), per job, and
/// the totals.
pub(crate) async fn tenant_usage(
    State(state): State<AppState>,
    op: Operator,
) -> ApiResult<Json<Value>> {
    let usage = crate::usage::tenant(&state, op.tenant_id).await?;
    Ok(Json(json!({ "usage": usage })))
}
