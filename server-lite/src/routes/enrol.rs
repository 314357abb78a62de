//! Enrolment (`POST /v1/enroll`): a one-time token becomes an agent with an API key,
//! a locked destination (tested first) and a repository whose key is wrapped under the
//! KEK, all in one transaction.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use coffer_adapters::catalogue::RepositoryId;
use coffer_adapters::repo::keys::Access;
use coffer_protocol::enrol::{Destination, EnrollAnswer, EnrollRequest, KeyAccess, RepositoryKey};
use coffer_protocol::secret::Secret;
use coffer_protocol::{AgentId, DestinationId, TenantId};

use crate::auth::{self, ClientIp};
use crate::db::agents;
use crate::db::audit::{self, AuditEntry, AuditOutcome};
use crate::db::{self as dbm, backends, now, tenants, tokens};
use crate::error::{ApiError, ApiResult};
use crate::extract::{check_text, ApiJson};
use crate::keys;
use crate::repos;
use crate::state::AppState;
use crate::token::{NewToken, TokenHash, TokenKind};

/// The enrolment route (no credential: the token is in the body).
pub fn routes() -> Router<AppState> {
    Router::new().route("/v1/enroll", post(enroll))
}

/// The repository as the agent receives it: the key-encryption key of the agent's own
/// write-only key file, in base64.
///
/// # Errors
/// 500 for a repository ID or suite the wire cannot carry.
pub(crate) fn repository_out(
    id: RepositoryId,
    agent_kek: &coffer_core::SecretKey,
    suite: coffer_core::Suite,
) -> ApiResult<RepositoryKey> {
    Ok(RepositoryKey {
        id: coffer_protocol::RepositoryId::try_from(id.0).map_err(ApiError::internal)?,
        folder: repos::REPO_FOLDER.to_owned(),
        access: KeyAccess::WriteOnly,
        key_id: hex::encode(agent_kek.id().as_bytes()),
        suite: suite.try_into().map_err(ApiError::internal)?,
        key: Secret::new(
            base64::engine::general_purpose::STANDARD.encode(agent_kek.expose_secret()),
        ),
    })
}

/// Creates the destination's repository under `prefix` (its full key file opened by
/// `server_key`) and a write-only key file for the agent; returns the agent's
/// key-encryption key and that file's ID. Blocking.
fn create_repository(
    state: &AppState,
    backend: Option<&backends::BackendRow>,
    prefix: &str,
    server_key: &coffer_core::SecretKey,
) -> ApiResult<(coffer_core::SecretKey, repos::KeyFileId)> {
    let store = state.stores.storage(backend, &state.kek)?;
    state.stores.creating(prefix, || {
        let repo = repos::init(store, prefix, server_key)?;
        repos::add_key(&repo, Access::WriteOnly, server_key)
    })
}

async fn enroll(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<EnrollRequest>,
) -> ApiResult<Response> {
    let token = req.token.into_inner();
    crate::extract::check_name("hostname", &req.hostname, 255, true)?;
    if let Some(name) = &req.name {
        crate::extract::check_name("name", name, 100, true)?;
    }
    check_text("version", &req.version, 64, false)?;
    let row = if TokenKind::of(&token) == Some(TokenKind::Enrolment) {
        let hash = TokenHash::of(&token);
        state
            .db
            .read(move |conn| Ok(tokens::find_token(conn, &hash)?))
            .await?
            .filter(|r| r.kind == TokenKind::Enrolment)
    } else {
        None
    };
    // A live token enrols whatever its address did before; every refusal counts against
    // the address (enrolment has its own, tighter quota) and, once over it, is answered
    // 429 without touching the audit log.
    let refusal = match &row {
        None => Some((
            None,
            "anonymous".to_owned(),
            "unknown enrolment token",
            ApiError::Unauthorized("unknown enrolment token"),
        )),
        Some(row) => {
            let actor = format!("enrolment:{}", row.id);
            if row.used_at.is_some() {
                Some((row.tenant_id, actor, "enrolment token reused", used()))
            } else if row.revoked_at.is_some() {
                Some((
                    row.tenant_id,
                    actor,
                    "enrolment token revoked",
                    ApiError::Gone {
                        code: "enrolment_token_revoked",
                        message: "this enrolment token has been revoked",
                    },
                ))
            } else if row.expires_at.is_some_and(|e| e <= now()) {
                Some((
                    row.tenant_id,
                    actor,
                    "enrolment token expired",
                    ApiError::Gone {
                        code: "enrolment_token_expired",
                        message: "this enrolment token has expired",
                    },
                ))
            } else {
                None
            }
        }
    };
    let row = match (refusal, row) {
        (None, Some(row)) => row,
        (Some((tenant, actor, detail, error)), _) => {
            auth::check_blocked(&state, ip)?;
            if let Err(not_until) = state.limits.enrol.check_key(&ip) {
                use governor::clock::{Clock, DefaultClock};
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                state.limits.block(ip, std::time::Instant::now() + wait);
                auth::audit(&state, deny(None, "anonymous", "enrolment rate limit", ip)).await;
                return Err(ApiError::RateLimited {
                    retry_after: wait.as_secs() + 1,
                });
            }
            auth::count_failure(&state, ip);
            auth::audit(&state, deny(tenant, &actor, detail, ip)).await;
            return Err(error);
        }
        (None, None) => return Err(ApiError::internal("enrolment without a token row")),
    };
    let tenant_id = row
        .tenant_id
        .ok_or_else(|| ApiError::internal("enrolment token without tenant"))?;
    let token_id = row.id;

    // Where this agent's objects go: a fresh prefix under its tenant, tested first.
    let tenant = state
        .db
        .call(move |cat| Ok(tenants::tenant(cat.connection(), tenant_id)?))
        .await?
        .ok_or_else(|| ApiError::internal("enrolment token of a missing tenant"))?;
    let backend_id: Option<i64> = tenant.backend_id.as_deref().and_then(|b| b.parse().ok());
    let backend = match backend_id {
        Some(id) => Some(
            state
                .db
                .call(move |cat| Ok(backends::backend(cat.connection(), id)?))
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
    let name = req.name.clone().unwrap_or_else(|| hostname.clone());
    let version = req.version.clone();
    let platform = req.platform.clone();
    let st = state.clone();
    let location = match &backend {
        Some(b) => format!("s3://{}/{prefix}", b.bucket),
        None => format!("local:{}/{prefix}", state.stores.bucket),
    };
    // The catalogue's entry first (it holds the server's key, wrapped under the KEK),
    // then the repository in storage with the agent's write-only key file, then the
    // agent. A failure on the way removes the catalogue entry; a repository left in
    // storage under the fresh random prefix is never used.
    let (repo_id, server_key) = {
        let (st, prefix) = (st.clone(), prefix.clone());
        state
            .db
            .call(move |cat| {
                let name = keys::repository_name(tenant_id, &prefix);
                keys::create_repository(cat, &st.kek, tenant_id, &name, &location)
            })
            .await?
    };
    let created = {
        let (st, prefix) = (state.clone(), prefix.clone());
        let server_key = crate::repos::copy_key(&server_key);
        tokio::task::spawn_blocking(move || {
            create_repository(&st, backend.as_ref(), &prefix, &server_key)
        })
        .await
        .map_err(ApiError::internal)
        .and_then(|r| r)
    };
    let (agent_kek, key_file) = match created {
        Ok(created) => created,
        Err(e) => {
            let _ = state
                .db
                .call(move |cat| Ok(cat.delete_repository(repo_id)?))
                .await;
            return Err(e);
        }
    };
    drop(server_key);
    let (agent_id, _dest_id, api_key, repo) = state
        .db
        .call(move |cat| {
            let outcome = dbm::immediate(cat.connection_mut(), |tx| {
                if !tokens::use_token(tx, token_id)? {
                    return Err(used());
                }
                let agent_id = agents::insert_agent(
                    tx,
                    tenant_id,
                    &name,
                    &hostname,
                    &version,
                    platform.as_ref(),
                )?;
                agents::set_key_file(tx, agent_id, &key_file)?;
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
                        detail: format!(
                            "name {name:?}, hostname {hostname:?}, destination {bucket}/{prefix}"
                        ),
                    },
                )?;
                Ok((agent_id, dest_id, api_key.secret))
            });
            match outcome {
                Ok((agent_id, dest_id, secret)) => Ok((
                    agent_id,
                    dest_id,
                    secret,
                    repository_out(repo_id, &agent_kek, keys::SUITE)?,
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
        .call(move |cat| Ok(agents::destination_of_agent(cat.connection(), agent_id)?))
        .await?
        .ok_or_else(|| ApiError::internal("destination vanished"))?;
    let body = EnrollAnswer {
        agent_id: AgentId::try_from(agent_id).map_err(ApiError::internal)?,
        api_key: Secret::new(api_key.to_string()),
        tenant_id: TenantId::try_from(tenant_id).map_err(ApiError::internal)?,
        destination: Destination {
            id: DestinationId::try_from(dest.id).map_err(ApiError::internal)?,
            bucket: dest.bucket,
            prefix: dest.prefix,
        },
        repository: repo,
    };
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
