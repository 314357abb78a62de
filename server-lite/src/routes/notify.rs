//! Notification channels, alert settings, alerts and deliveries: a tenant's (the
//! operator's, under `/v1/notifications` and `/v1/alerts`) and the server's own (the
//! admin's, under `/v1/admin/...`), and the admin's storage test.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::auth::{Admin, Operator};
use crate::db::audit::{self, AuditEntry, AuditOutcome};
use crate::db::notify::{self as store, AlertKind, AlertSettings, ChannelKind, DeliveryStatus};
use crate::db::{self as dbm, backends, now};
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_id, ApiJson, Params};
use crate::notify::{email::EmailConfig, webhook::WebhookConfig};
use crate::state::AppState;

/// The notification routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/notifications/channels",
            post(op_create).get(op_channels),
        )
        .route(
            "/v1/notifications/channels/{id}",
            axum::routing::patch(op_update).delete(op_delete),
        )
        .route("/v1/notifications/channels/{id}/test", post(op_test))
        .route("/v1/notifications/deliveries", get(op_deliveries))
        .route(
            "/v1/notifications/settings",
            get(op_settings).put(op_set_settings),
        )
        .route("/v1/alerts", get(op_alerts))
        .route(
            "/v1/admin/notifications/channels",
            post(admin_create).get(admin_channels),
        )
        .route(
            "/v1/admin/notifications/channels/{id}",
            axum::routing::patch(admin_update).delete(admin_delete),
        )
        .route(
            "/v1/admin/notifications/channels/{id}/test",
            post(admin_test),
        )
        .route("/v1/admin/notifications/deliveries", get(admin_deliveries))
        .route("/v1/admin/alerts", get(admin_alerts))
        .route("/v1/admin/backends/{id}/test", post(test_backend))
}

/// The least each alert setting may be (seconds), in the order of [`AlertSettings`]'s
/// fields (the dashboard's settings form shows the same bounds).
pub(crate) const SETTING_MIN: [(&str, i64); 3] = [
    ("missed_grace_secs", 60),
    ("offline_after_secs", 120),
    ("repeat_secs", 300),
];

/// The most any alert setting may be (seconds): 30 days.
pub(crate) const SETTING_MAX: i64 = 30 * 86_400;

/// Whose channels a request works on, and who is asking.
struct Scope {
    tenant_id: Option<i64>,
    actor: String,
}

impl From<&Operator> for Scope {
    fn from(op: &Operator) -> Self {
        Scope {
            tenant_id: Some(op.tenant_id),
            actor: op.actor.clone(),
        }
    }
}

impl From<&Admin> for Scope {
    fn from(admin: &Admin) -> Self {
        Scope {
            tenant_id: None,
            actor: admin.actor.clone(),
        }
    }
}

impl Scope {
    fn entry(&self, action: &'static str, target: String, detail: String) -> AuditEntry {
        AuditEntry {
            tenant_id: self.tenant_id,
            actor: self.actor.clone(),
            action,
            target,
            outcome: AuditOutcome::Ok,
            detail,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChannelRequest {
    name: String,
    kind: ChannelKind,
    #[serde(default)]
    email: Option<EmailConfig>,
    /// The SMTP password (sealed under the KEK, never shown again).
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    webhook: Option<WebhookConfig>,
    /// The webhook's signing secret (`whsec_...`); absent: the server makes one and
    /// shows it once.
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    events: Vec<String>,
}

fn parse_events(events: &[String]) -> ApiResult<Vec<AlertKind>> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            AlertKind::parse(e)
                .filter(|k| *k != AlertKind::Test)
                .ok_or_else(|| {
                    ApiError::field(
                        &format!("events[{i}]"),
                        format!(
                            "one of {}",
                            AlertKind::ALL
                                .iter()
                                .filter(|k| **k != AlertKind::Test)
                                .map(|k| k.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })
        })
        .collect()
}

async fn create(
    state: AppState,
    scope: Scope,
    req: ChannelRequest,
) -> ApiResult<(StatusCode, Json<Value>)> {
    crate::extract::check_name("name", &req.name, 128, true)?;
    let events = parse_events(&req.events)?;
    let field = |(f, m): (String, String)| ApiError::field(&f, m);
    // The secret to seal, and the one to show (only one the server made).
    let (config, secret, shown): (Value, Option<Zeroizing<String>>, Option<Zeroizing<String>>) =
        match req.kind {
            ChannelKind::Email => {
                let email = req
                    .email
                    .ok_or_else(|| ApiError::field("email", "required for an email channel"))?;
                if req.webhook.is_some() || req.secret.is_some() {
                    return Err(ApiError::field("webhook", "only for a webhook channel"));
                }
                email.check().map_err(field)?;
                if email.username.is_some() != req.password.is_some() {
                    return Err(ApiError::field(
                        "password",
                        "give a password with a username, and neither without the other",
                    ));
                }
                (
                    serde_json::to_value(&email).map_err(ApiError::internal)?,
                    req.password.map(Zeroizing::new),
                    None,
                )
            }
            ChannelKind::Webhook => {
                let hook = req
                    .webhook
                    .ok_or_else(|| ApiError::field("webhook", "required for a webhook channel"))?;
                if req.email.is_some() || req.password.is_some() {
                    return Err(ApiError::field("email", "only for an email channel"));
                }
                hook.check().map_err(field)?;
                let (secret, shown) = match req.secret {
                    Some(s) => {
                        if !s.starts_with("whsec_") || standardwebhooks::Webhook::new(&s).is_err() {
                            return Err(ApiError::field(
                                "secret",
                                "a Standard Webhooks secret: whsec_ and base64",
                            ));
                        }
                        (Zeroizing::new(s), None)
                    }
                    None => {
                        let s = crate::notify::webhook::new_secret();
                        (s.clone(), Some(s))
                    }
                };
                (
                    serde_json::to_value(&hook).map_err(ApiError::internal)?,
                    Some(secret),
                    shown,
                )
            }
        };
    let id = dbm::new_id();
    let sealed = secret
        .map(|s| {
            crate::keys::seal_secret(&state.kek, &crate::notify::secret_context(id), s.as_bytes())
        })
        .transpose()?;
    let new = store::NewChannel {
        id,
        tenant_id: scope.tenant_id,
        name: req.name,
        kind: req.kind,
        config,
        secret: sealed,
        events,
    };
    let e = scope.entry(
        "notification_channel.create",
        format!("channel:{id}"),
        format!("{} {:?}", new.kind.as_str(), new.name),
    );
    let channel = state
        .db
        .call(move |cat| {
            dbm::immediate(cat.connection_mut(), |tx| {
                let row = store::insert_channel(tx, &new, now())?;
                audit::record(tx, &e)?;
                Ok::<_, ApiError>(row)
            })
        })
        .await?;
    let mut body = json!({ "channel": channel.view() });
    if let Some(secret) = shown {
        // Shown once: the receiver verifies signatures with it.
        body["secret"] = Value::String(secret.to_string());
    }
    Ok((StatusCode::CREATED, Json(body)))
}

async fn channels(state: AppState, scope: Scope) -> ApiResult<Json<Value>> {
    let tenant = scope.tenant_id;
    let list = state
        .db
        .read(move |conn| Ok(store::channels(conn, tenant)?))
        .await?;
    let views: Vec<_> = list.iter().map(store::ChannelRow::view).collect();
    Ok(Json(json!({ "channels": views })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChannelPatch {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    events: Option<Vec<String>>,
}

async fn update(
    state: AppState,
    scope: Scope,
    id: &str,
    patch: ChannelPatch,
) -> ApiResult<Json<Value>> {
    let id = parse_id(id, "channel")?;
    let events = patch.events.as_deref().map(parse_events).transpose()?;
    let tenant = scope.tenant_id;
    let e = scope.entry(
        "notification_channel.update",
        format!("channel:{id}"),
        format!(
            "{}{}",
            patch
                .enabled
                .map(|on| format!("enabled {on} "))
                .unwrap_or_default(),
            events
                .as_ref()
                .map(|ev| format!("events {}", ev.len()))
                .unwrap_or_default()
        ),
    );
    let row = state
        .db
        .call(move |cat| {
            dbm::immediate(cat.connection_mut(), |tx| {
                if store::channel(tx, tenant, id)?.is_none() {
                    return Err(ApiError::NotFound { what: "channel" });
                }
                if let Some(on) = patch.enabled {
                    store::set_enabled(tx, tenant, id, on)?;
                }
                if let Some(events) = &events {
                    store::set_events(tx, tenant, id, events)?;
                }
                audit::record(tx, &e)?;
                store::channel(tx, tenant, id)?.ok_or(ApiError::NotFound { what: "channel" })
            })
        })
        .await?;
    Ok(Json(json!({ "channel": row.view() })))
}

async fn delete(state: AppState, scope: Scope, id: &str) -> ApiResult<StatusCode> {
    let id = parse_id(id, "channel")?;
    let tenant = scope.tenant_id;
    let e = scope.entry(
        "notification_channel.delete",
        format!("channel:{id}"),
        String::new(),
    );
    state
        .db
        .call(move |cat| {
            dbm::immediate(cat.connection_mut(), |tx| {
                if !store::delete_channel(tx, tenant, id)? {
                    return Err(ApiError::NotFound { what: "channel" });
                }
                audit::record(tx, &e)?;
                Ok(())
            })
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn test(state: AppState, scope: Scope, id: &str) -> ApiResult<Json<Value>> {
    let id = parse_id(id, "channel")?;
    let delivery = crate::notify::test_channel(&state, scope.tenant_id, id).await?;
    let mut e = scope.entry(
        "notification_channel.test",
        format!("channel:{id}"),
        delivery.last_error.clone().unwrap_or_default(),
    );
    if delivery.status != "sent" {
        e.outcome = AuditOutcome::Failed;
    }
    crate::auth::audit(&state, e).await;
    Ok(Json(json!({ "delivery": delivery })))
}

fn limit_of(params: &Params) -> ApiResult<u32> {
    match params.0.get("limit") {
        None => Ok(100),
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| ApiError::field("limit", "from 1 to 1000")),
    }
}

async fn deliveries(state: AppState, scope: Scope, params: Params) -> ApiResult<Json<Value>> {
    let status = match params.0.get("status").map(String::as_str) {
        None => None,
        Some("pending") => Some(DeliveryStatus::Pending),
        Some("sent") => Some(DeliveryStatus::Sent),
        Some("failed") => Some(DeliveryStatus::Failed),
        Some(_) => return Err(ApiError::field("status", "pending, sent or failed")),
    };
    let limit = limit_of(&params)?;
    let tenant = scope.tenant_id;
    let list = state
        .db
        .read(move |conn| Ok(store::deliveries(conn, tenant, status, limit)?))
        .await?;
    Ok(Json(json!({ "deliveries": list })))
}

async fn alerts(state: AppState, scope: Scope, params: Params) -> ApiResult<Json<Value>> {
    let open = match params.0.get("open").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::field("open", "true or false")),
    };
    let limit = limit_of(&params)?;
    let tenant = scope.tenant_id;
    let list = state
        .db
        .read(move |conn| Ok(store::alerts(conn, tenant, open, limit)?))
        .await?;
    Ok(Json(json!({ "alerts": list })))
}

pub(crate) async fn op_create(
    State(state): State<AppState>,
    op: Operator,
    ApiJson(req): ApiJson<ChannelRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    create(state, (&op).into(), req).await
}

pub(crate) async fn admin_create(
    State(state): State<AppState>,
    admin: Admin,
    ApiJson(req): ApiJson<ChannelRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    create(state, (&admin).into(), req).await
}

pub(crate) async fn op_channels(
    State(state): State<AppState>,
    op: Operator,
) -> ApiResult<Json<Value>> {
    channels(state, (&op).into()).await
}

pub(crate) async fn admin_channels(
    State(state): State<AppState>,
    admin: Admin,
) -> ApiResult<Json<Value>> {
    channels(state, (&admin).into()).await
}

pub(crate) async fn op_update(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<ChannelPatch>,
) -> ApiResult<Json<Value>> {
    update(state, (&op).into(), &id, patch).await
}

pub(crate) async fn admin_update(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<ChannelPatch>,
) -> ApiResult<Json<Value>> {
    update(state, (&admin).into(), &id, patch).await
}

pub(crate) async fn op_delete(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    delete(state, (&op).into(), &id).await
}

pub(crate) async fn admin_delete(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    delete(state, (&admin).into(), &id).await
}

pub(crate) async fn op_test(
    State(state): State<AppState>,
    op: Operator,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    test(state, (&op).into(), &id).await
}

pub(crate) async fn admin_test(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    test(state, (&admin).into(), &id).await
}

pub(crate) async fn op_deliveries(
    State(state): State<AppState>,
    op: Operator,
    params: Params,
) -> ApiResult<Json<Value>> {
    deliveries(state, (&op).into(), params).await
}

pub(crate) async fn admin_deliveries(
    State(state): State<AppState>,
    admin: Admin,
    params: Params,
) -> ApiResult<Json<Value>> {
    deliveries(state, (&admin).into(), params).await
}

pub(crate) async fn op_alerts(
    State(state): State<AppState>,
    op: Operator,
    params: Params,
) -> ApiResult<Json<Value>> {
    alerts(state, (&op).into(), params).await
}

pub(crate) async fn admin_alerts(
    State(state): State<AppState>,
    admin: Admin,
    params: Params,
) -> ApiResult<Json<Value>> {
    alerts(state, (&admin).into(), params).await
}

pub(crate) async fn op_settings(
    State(state): State<AppState>,
    op: Operator,
) -> ApiResult<Json<Value>> {
    let tenant = op.tenant_id;
    let s = state
        .db
        .read(move |conn| Ok(store::settings(conn, Some(tenant))?))
        .await?;
    Ok(Json(json!({ "settings": s })))
}

pub(crate) async fn op_set_settings(
    State(state): State<AppState>,
    op: Operator,
    ApiJson(s): ApiJson<AlertSettings>,
) -> ApiResult<Json<Value>> {
    let values = [s.missed_grace_secs, s.offline_after_secs, s.repeat_secs];
    for ((field, min), value) in SETTING_MIN.into_iter().zip(values) {
        if !(min..=SETTING_MAX).contains(&value) {
            return Err(ApiError::field(
                field,
                format!("from {min} to {SETTING_MAX} seconds"),
            ));
        }
    }
    let tenant = op.tenant_id;
    let e = Scope::from(&op).entry(
        "alert_settings.update",
        format!("tenant:{tenant}"),
        format!(
            "grace {} s, offline after {} s, repeat {} s",
            s.missed_grace_secs, s.offline_after_secs, s.repeat_secs
        ),
    );
    state
        .db
        .call(move |cat| {
            dbm::immediate(cat.connection_mut(), |tx| {
                store::set_settings(tx, tenant, &s)?;
                audit::record(tx, &e)?;
                Ok::<_, ApiError>(())
            })
        })
        .await?;
    Ok(Json(json!({ "settings": s })))
}

/// Tests a registered storage backend (writes, reads back and deletes a probe
/// object). A failure opens a `storage.failed` alert for the server and for every
/// tenant with a destination on it; a pass clears them. The answer is 200 either way:
/// the test ran, and its result is in the body.
pub(crate) async fn test_backend(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id, "backend")?;
    let row = state
        .db
        .read(move |conn| Ok(backends::backend(conn, id)?))
        .await?
        .ok_or(ApiError::NotFound { what: "backend" })?;
    let result = crate::stores::test_backend(&state, &row).await;
    let error = result.as_ref().err().map(ToString::to_string);
    let mut e = Scope::from(&admin).entry(
        "backend.test",
        format!("backend:{id}"),
        error.clone().unwrap_or_default(),
    );
    if error.is_some() {
        e.outcome = AuditOutcome::Failed;
    }
    crate::auth::audit(&state, e).await;
    Ok(Json(json!({
        "backend_id": id.to_string(),
        "ok": error.is_none(),
        "error": error,
    })))
}
