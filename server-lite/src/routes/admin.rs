//! The administrator's endpoints: tenants, operator tokens, S3 backends, the whole
//! audit log.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::auth::Admin;
use crate::db::audit::{self, AuditEntry, AuditOutcome};
use crate::db::backends::{self, BackendRow};
use crate::db::{self as dbm, now, rfc3339};
use crate::db::{agents, tenants, tokens};
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_id, ApiJson, Params};
use crate::keys;
use crate::state::AppState;
use crate::token::{NewToken, TokenKind};

/// The admin's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/tenants", post(create_tenant).get(list_tenants))
        .route("/v1/admin/tenants/{id}", delete(delete_tenant))
        .route(
            "/v1/admin/tenants/{id}/operator-tokens",
            post(create_operator_token).get(list_operator_tokens),
        )
        .route(
            "/v1/admin/tenants/{id}/operator-tokens/{token_id}/revoke",
            post(revoke_operator_token),
        )
        .route("/v1/admin/token/rotate", post(rotate_admin_token))
        .route(
            "/v1/admin/backends",
            post(create_backend).get(list_backends),
        )
        .route("/v1/admin/audit", get(all_audit))
        .route("/v1/admin/usage", get(all_usage))
        .route("/v1/admin/reconcile", post(reconcile))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReconcileRequest {
    /// Remove the restore points whose snapshot is gone (default: only report them).
    #[serde(default)]
    apply: bool,
}

/// Compares each repository's snapshots in storage with the restore points listed
/// (after a self-restore, chiefly): a report, and with `apply` the removal of restore
/// points whose snapshot is gone. Audited.
pub(crate) async fn reconcile(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(req): ApiJson<ReconcileRequest>,
) -> ApiResult<Json<Value>> {
    let report = crate::reconcile::reconcile(&state, req.apply, &admin.actor).await?;
    let mut e = ok(&admin, None, "server.reconcile", String::new());
    e.detail = format!(
        "{} repositories, {} restore points with a missing snapshot, {} removed, {} not listed",
        report.repositories.len(),
        report.missing,
        report.removed,
        report.failed
    );
    crate::auth::audit(&state, e).await;
    Ok(Json(json!({ "reconcile": report })))
}

fn ok(admin: &Admin, tenant_id: Option<i64>, action: &'static str, target: String) -> AuditEntry {
    AuditEntry {
        tenant_id,
        actor: admin.actor.clone(),
        action,
        target,
        outcome: AuditOutcome::Ok,
        detail: String::new(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TenantRequest {
    name: String,
    #[serde(default)]
    backend_id: Option<String>,
}

pub(crate) async fn create_tenant(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(req): ApiJson<TenantRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    crate::extract::check_name("name", &req.name, 100, true)?;
    let backend_id = match &req.backend_id {
        Some(b) => Some(
            parse_id(b, "backend").map_err(|_| ApiError::field("backend_id", "no such backend"))?,
        ),
        None => None,
    };
    let e = ok(&admin, None, "tenant.create", String::new());
    let tenant = state
        .db
        .call(move |cat| {
            dbm::immediate(cat.connection_mut(), |tx| {
                if let Some(b) = backend_id {
                    if backends::backend(tx, b)?.is_none() {
                        return Err(ApiError::field("backend_id", "no such backend"));
                    }
                }
                let tenant = tenants::create_tenant(tx, &req.name, backend_id).map_err(|e| {
                    if dbm::is_constraint(&e) {
                        ApiError::Conflict {
                            code: "tenant_exists",
                            message: "name: a tenant of this name exists".to_owned(),
                        }
                    } else {
                        e.into()
                    }
                })?;
                let id: i64 = tenant.id.get();
                audit::record(
                    tx,
                    &AuditEntry {
                        tenant_id: Some(id),
                        target: format!("tenant:{id}"),
                        ..e
                    },
                )?;
                Ok(tenant)
            })
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "tenant": tenant }))))
}

/// Deletes a tenant with no agents, jobs or restore points left (409 naming what is
/// left otherwise: delete those first; there is no purge that does it in one go).
async fn delete_tenant(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    params: Params,
) -> ApiResult<StatusCode> {
    let id = parse_id(&id, "tenant")?;
    match params.0.get("purge").map(String::as_str) {
        None | Some("false") => {}
        Some("true") => return purge_tenant(&state, &admin, id, params.0.get("confirm")).await,
        Some(_) => return Err(ApiError::field("purge", "true or false")),
    }
    let e = ok(&admin, Some(id), "tenant.delete", format!("tenant:{id}"));
    state
        .db
        .call(move |cat| {
            dbm::immediate(cat.connection_mut(), |tx| {
                if tenants::tenant(tx, id)?.is_none() {
                    return Err(ApiError::NotFound { what: "tenant" });
                }
                let (agents, jobs, points) = tenants::contents(tx, id)?;
                if agents + jobs + points > 0 {
                    return Err(ApiError::Conflict {
                        code: "tenant_not_empty",
                        message: format!(
                            "the tenant still has {agents} agent(s), {jobs} job(s) and {points} \
                             restore point(s): delete them first (agents after revoking them)"
                        ),
                    });
                }
                tenants::delete_empty(tx, id)?;
                Ok(audit::record(tx, &e)?)
            })
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a tenant with everything it has: its agents are revoked (their queued and
/// running runs fail), every object of its destinations is removed from storage, its
/// restore points, jobs, destinations and agents leave the database's lists, and the
/// tenant is deleted as an empty one. Irreversible, so `confirm` must be the tenant's
/// name. Audited as `tenant.purge` with what went.
async fn purge_tenant(
    state: &AppState,
    admin: &Admin,
    id: i64,
    confirm: Option<&String>,
) -> ApiResult<StatusCode> {
    let tenant = state
        .db
        .read(move |conn| Ok(tenants::tenant(conn, id)?))
        .await?
        .ok_or(ApiError::NotFound { what: "tenant" })?;
    if confirm != Some(&tenant.name) {
        return Err(ApiError::field(
            "confirm",
            "a purge removes every backup of the tenant: give confirm=<its name>",
        ));
    }
    // Revoke its agents first: nothing of theirs writes while storage is emptied.
    let dests = state
        .db
        .call(move |cat| {
            dbm::immediate(cat.connection_mut(), |tx| {
                let live: Vec<i64> = {
                    let mut st = tx.prepare(
                        "SELECT id FROM agents WHERE tenant_id = ?1 AND revoked_at IS NULL",
                    )?;
                    let rows = st.query_map([id], |r| r.get(0))?;
                    rows.collect::<Result<_, _>>()?
                };
                for agent in live {
                    agents::revoke_agent(tx, id, agent)?;
                }
                Ok::<_, ApiError>(agents::destinations(tx, id)?)
            })
        })
        .await?;
    let mut objects = 0u64;
    let mut bytes = 0u64;
    for dest in &dests {
        let (size, n) = crate::stores::under_prefix(
            state,
            dest.backend_id,
            dest.prefix.clone(),
            crate::stores::PrefixOp::Empty,
        )
        .await?;
        objects += n;
        bytes += size;
    }
    let detail = format!(
        "tenant {:?}: {} destination(s), {objects} objects, {bytes} bytes removed from storage",
        tenant.name,
        dests.len()
    );
    let e = AuditEntry {
        detail,
        ..ok(admin, Some(id), "tenant.purge", format!("tenant:{id}"))
    };
    state
        .db
        .call(move |cat| {
            dbm::immediate(cat.connection_mut(), |tx| {
                tenants::purge_rows(tx, id)?;
                tenants::delete_empty(tx, id)?;
                Ok(audit::record(tx, &e)?)
            })
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn list_tenants(
    State(state): State<AppState>,
    _admin: Admin,
) -> ApiResult<Json<Value>> {
    let list = state
        .db
        .call(|cat| Ok(tenants::tenants(cat.connection())?))
        .await?;
    Ok(Json(json!({ "tenants": list })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OperatorTokenRequest {
    #[serde(default)]
    label: String,
}

pub(crate) async fn create_operator_token(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<OperatorTokenRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let tenant_id = parse_id(&id, "tenant")?;
    crate::extract::check_name("label", &req.label, 200, false)?;
    let token = NewToken::generate(TokenKind::Operator);
    let hash = token.hash.clone();
    let e = ok(
        &admin,
        Some(tenant_id),
        "operator_token.create",
        String::new(),
    );
    let token_id = state
        .db
        .call(move |cat| {
            dbm::immediate(cat.connection_mut(), |tx| {
                if tenants::tenant(tx, tenant_id)?.is_none() {
                    return Err(ApiError::NotFound { what: "tenant" });
                }
                let id = tokens::insert_token(
                    tx,
                    TokenKind::Operator,
                    &hash,
                    Some(tenant_id),
                    None,
                    &req.label,
                    None,
                )?;
                audit::record(
                    tx,
                    &AuditEntry {
                        target: format!("operator_token:{id}"),
                        ..e
                    },
                )?;
                Ok(id)
            })
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": token_id.to_string(), "tenant_id": tenant_id.to_string(), "token": token.secret.as_str()}),
        ),
    ))
}

pub(crate) async fn list_operator_tokens(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let tenant_id = parse_id(&id, "tenant")?;
    let list = state
        .db
        .call(move |cat| {
            if tenants::tenant(cat.connection(), tenant_id)?.is_none() {
                return Err(ApiError::NotFound { what: "tenant" });
            }
            Ok(tokens::list_tokens(
                cat.connection(),
                TokenKind::Operator,
                Some(tenant_id),
            )?)
        })
        .await?;
    Ok(Json(json!({ "tokens": list })))
}

/// Revokes an operator token: every later request with it is refused (401).
pub(crate) async fn revoke_operator_token(
    State(state): State<AppState>,
    admin: Admin,
    Path((id, token_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let tenant_id = parse_id(&id, "tenant")?;
    let token_id = parse_id(&token_id, "operator token")?;
    let e = ok(
        &admin,
        Some(tenant_id),
        "operator_token.revoke",
        format!("operator_token:{token_id}"),
    );
    let outcome = state
        .db
        .call(move |cat| {
            dbm::immediate(cat.connection_mut(), |tx| {
                let outcome =
                    tokens::revoke_token(tx, token_id, TokenKind::Operator, Some(tenant_id))?;
                if outcome == tokens::Revoked::Now {
                    audit::record(tx, &e)?;
                }
                Ok(outcome)
            })
        })
        .await?;
    match outcome {
        tokens::Revoked::Now | tokens::Revoked::Already => {
            Ok(Json(json!({"id": token_id.to_string(), "revoked": true})))
        }
        tokens::Revoked::Used | tokens::Revoked::Missing => Err(ApiError::NotFound {
            what: "operator token",
        }),
    }
}

/// Replaces the admin token: a new one is made and shown once, and every other admin
/// token (the one this request used included) stops working at once.
async fn rotate_admin_token(
    State(state): State<AppState>,
    admin: Admin,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let token = NewToken::generate(TokenKind::Admin);
    let hash = token.hash.clone();
    let actor = admin.actor.clone();
    let id = state
        .db
        .call(move |cat| {
            dbm::immediate(cat.connection_mut(), |tx| {
                let revoked = tokens::revoke_admin_tokens(tx)?;
                let id =
                    tokens::insert_token(tx, TokenKind::Admin, &hash, None, None, "rotated", None)?;
                audit::record(
                    tx,
                    &AuditEntry {
                        tenant_id: None,
                        actor,
                        action: "admin_token.rotate",
                        target: format!("admin:{id}"),
                        outcome: AuditOutcome::Ok,
                        detail: format!("{revoked} admin token(s) revoked"),
                    },
                )?;
                Ok(id)
            })
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id.to_string(), "token": token.secret.as_str()})),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackendRequest {
    name: String,
    endpoint: String,
    #[serde(default = "default_region")]
    region: String,
    bucket: String,
    #[serde(default = "yes")]
    path_style: bool,
    access_key_id: String,
    secret_access_key: String,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

fn yes() -> bool {
    true
}

/// Registers an S3 backend: the settings are checked, a probe object is written, read
/// back and deleted with them, and only then is the backend stored, its secret key
/// sealed under the KEK.
pub(crate) async fn create_backend(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(req): ApiJson<BackendRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let secret = Zeroizing::new(req.secret_access_key);
    crate::extract::check_name("name", &req.name, 100, true)?;
    let mut row = BackendRow {
        id: 0,
        name: req.name,
        endpoint: req.endpoint,
        region: req.region,
        bucket: req.bucket,
        path_style: req.path_style,
        access_key_id: req.access_key_id,
        secret_sealed: Vec::new(),
        created_at: now(),
    };
    let client =
        crate::stores::s3_client(&row, &secret).map_err(|e| ApiError::field("backend", e))?;
    let st = state.clone();
    tokio::task::spawn_blocking(move || {
        crate::stores::probe(
            &client,
            crate::local_s3::PROBE_PREFIX.trim_end_matches('/'),
            &st.stores.live_probes,
        )
    })
    .await
    .map_err(ApiError::internal)??;
    row.secret_sealed = keys::seal_secret(
        &state.kek,
        &keys::backend_context(&row.name),
        secret.as_bytes(),
    )?;
    let kek_id = hex::encode(state.kek.id().as_bytes());
    let e = ok(&admin, None, "backend.create", String::new());
    let stored = row.clone();
    let id = state
        .db
        .call(move |cat| {
            dbm::immediate(cat.connection_mut(), |tx| {
                let id = backends::insert_backend(tx, &stored, &kek_id).map_err(|e| {
                    if dbm::is_constraint(&e) {
                        ApiError::Conflict {
                            code: "backend_exists",
                            message: "name: a backend of this name exists".to_owned(),
                        }
                    } else {
                        e.into()
                    }
                })?;
                audit::record(
                    tx,
                    &AuditEntry {
                        target: format!("backend:{id}"),
                        ..e
                    },
                )?;
                Ok(id)
            })
        })
        .await?;
    row.id = id;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "backend": backend_view(&row) })),
    ))
}

fn backend_view(b: &BackendRow) -> Value {
    json!({
        "id": b.id.to_string(),
        "name": b.name,
        "endpoint": b.endpoint,
        "region": b.region,
        "bucket": b.bucket,
        "path_style": b.path_style,
        "access_key_id": b.access_key_id,
        "created_at": rfc3339(b.created_at),
    })
}

pub(crate) async fn list_backends(
    State(state): State<AppState>,
    _admin: Admin,
) -> ApiResult<Json<Value>> {
    let list = state
        .db
        .call(|cat| Ok(backends::backends(cat.connection())?))
        .await?;
    Ok(Json(
        json!({ "backends": list.iter().map(backend_view).collect::<Vec<_>>() }),
    ))
}

pub(crate) async fn all_audit(
    State(state): State<AppState>,
    _admin: Admin,
    params: Params,
) -> ApiResult<Json<Value>> {
    let limit = params.get::<u32>("limit")?.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::field("limit", "from 1 to 1000"));
    }
    let tenant = params.get::<i64>("tenant_id")?;
    let list = state
        .db
        .call(move |cat| Ok(audit::list(cat.connection(), tenant, limit)?))
        .await?;
    Ok(Json(json!({ "entries": list })))
}

/// Every tenant's storage use (per agent and totals).
async fn all_usage(State(state): State<AppState>, _admin: Admin) -> ApiResult<Json<Value>> {
    let tenants = crate::usage::all(&state).await?;
    let stored_bytes: u64 = tenants.iter().map(|t| t.stored_bytes).sum();
    Ok(Json(
        json!({ "stored_bytes": stored_bytes, "tenants": tenants }),
    ))
}
