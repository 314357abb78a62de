//! The operator's notification page (channels, a test button, open alerts, recent
//! deliveries) and the admin's backend test and self-backups page. Each calls the
//! API's own handler with the session's operator or admin.

use axum::extract::{Path, State};
use axum::response::Html;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::pages::request;
use super::session::Session;
use super::{page, Post, Signed, UiResult};
use crate::extract::Params;
use crate::routes::{admin, notify};
use crate::state::AppState;

/// The pages.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui/notifications", get(notifications))
        .route("/ui/notifications/webhooks", post(add_webhook))
        .route("/ui/notifications/emails", post(add_email))
        .route("/ui/notifications/channels/{id}/test", post(test_channel))
        .route("/ui/admin/backends/{id}/test", post(test_backend))
        .route(
            "/ui/admin/self-backups",
            get(self_backups).post(self_backup_now),
        )
}

/// `context` with the fields of `extra` (an action's outcome) added.
fn with(mut context: Value, extra: Value) -> Value {
    if let (Value::Object(map), Value::Object(more)) = (&mut context, extra) {
        map.extend(more);
    }
    context
}

async fn notifications_page(state: &AppState, s: &Session, extra: Value) -> UiResult<Html<String>> {
    let op = s.operator()?;
    let channels = notify::op_channels(State(state.clone()), op.clone())
        .await?
        .0;
    let mut open = Params::default();
    open.0.insert("open".to_owned(), "true".to_owned());
    let alerts = notify::op_alerts(State(state.clone()), op.clone(), open)
        .await?
        .0;
    let mut recent = Params::default();
    recent.0.insert("limit".to_owned(), "20".to_owned());
    let deliveries = notify::op_deliveries(State(state.clone()), op.clone(), recent)
        .await?
        .0;
    let tenant = op.tenant_id;
    let settings = state
        .db
        .read(move |conn| Ok(crate::db::notify::settings(conn, Some(tenant))?))
        .await?;
    let context = json!({
        "channels": channels["channels"],
        "alerts": alerts["alerts"],
        "deliveries": deliveries["deliveries"],
        "settings": settings,
    });
    Ok(page(s, "notifications.html", with(context, extra)))
}

async fn notifications(State(state): State<AppState>, Signed(s): Signed) -> UiResult<Html<String>> {
    notifications_page(&state, &s, json!({})).await
}

async fn add(state: AppState, post: Post, body: Value) -> UiResult<Html<String>> {
    let op = post.session.operator()?;
    let (_, Json(added)) = notify::op_create(State(state.clone()), op, request(body)?).await?;
    notifications_page(&state, &post.session, json!({ "added": added })).await
}

async fn add_webhook(State(state): State<AppState>, post: Post) -> UiResult<Html<String>> {
    let body = json!({
        "name": post.form.text("name").unwrap_or_default(),
        "kind": "webhook",
        "webhook": {"url": post.form.text("url").unwrap_or_default()},
    });
    add(state, post, body).await
}

async fn add_email(State(state): State<AppState>, post: Post) -> UiResult<Html<String>> {
    let f = &post.form;
    let mut email = json!({
        "host": f.text("host").unwrap_or_default(),
        "tls": f.text("tls").unwrap_or_else(|| "starttls".to_owned()),
        "from": f.text("from").unwrap_or_default(),
        "to": [f.text("to").unwrap_or_default()],
    });
    if let Some(port) = super::pages::number(f, "port")? {
        email["port"] = json!(port);
    }
    let mut body = json!({
        "name": f.text("name").unwrap_or_default(),
        "kind": "email",
    });
    if let Some(user) = f.text("username") {
        email["username"] = json!(user);
        body["password"] = json!(f.get("password").unwrap_or_default());
    }
    body["email"] = email;
    add(state, post, body).await
}

async fn test_channel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    post: Post,
) -> UiResult<Html<String>> {
    let op = post.session.operator()?;
    let sent = notify::op_test(State(state.clone()), op, Path(id)).await?.0;
    notifications_page(&state, &post.session, json!({ "tested": sent["delivery"] })).await
}

async fn test_backend(
    State(state): State<AppState>,
    Path(id): Path<String>,
    post: Post,
) -> UiResult<Html<String>> {
    let a = post.session.admin()?;
    let tested = notify::test_backend(State(state.clone()), a.clone(), Path(id))
        .await?
        .0;
    let list = admin::list_backends(State(state), a).await?.0;
    Ok(page(
        &post.session,
        "backends.html",
        json!({"backends": list["backends"], "tested": tested}),
    ))
}

async fn self_backups_page(state: &AppState, s: &Session, extra: Value) -> UiResult<Html<String>> {
    s.admin()?;
    let data_dir = state.config.data_dir.clone();
    let (settings, recorded) = tokio::task::spawn_blocking(move || {
        let conn = crate::selfbackup::open_live(&data_dir)?;
        let settings = crate::selfbackup::settings(&conn)?.map(|s| {
            json!({
                "destination": s.destination,
                "keep": s.keep,
                "schedule": s.schedule,
                "next_run_at": s.next_run_at.map(crate::db::rfc3339),
                "key_id": s.recipient.key_id.to_string(),
                "passphrase": s.recipient.envelope.is_some(),
            })
        });
        Ok::<_, crate::selfbackup::SelfBackupError>((
            settings,
            crate::selfbackup::recorded(&conn, 50)?,
        ))
    })
    .await
    .map_err(crate::error::ApiError::internal)?
    .map_err(crate::error::ApiError::internal)?;
    let context = json!({"settings": settings, "recorded": recorded});
    Ok(page(s, "self_backups.html", with(context, extra)))
}

async fn self_backups(State(state): State<AppState>, Signed(s): Signed) -> UiResult<Html<String>> {
    self_backups_page(&state, &s, json!({})).await
}

/// A manual self-backup now (on a blocking thread: it copies and seals the database).
async fn self_backup_now(State(state): State<AppState>, post: Post) -> UiResult<Html<String>> {
    let a = post.session.admin()?;
    let data_dir = state.config.data_dir.clone();
    let kek = coffer_core::SecretKey::from_bytes(*state.kek.expose_secret());
    let made = tokio::task::spawn_blocking(move || {
        crate::selfbackup::make(&data_dir, &kek, crate::selfbackup::format::Reason::Manual)
    })
    .await
    .map_err(crate::error::ApiError::internal)?;
    crate::auth::audit(
        &state,
        crate::db::audit::AuditEntry {
            tenant_id: None,
            actor: a.actor.clone(),
            action: "self_backup.run",
            target: "server".to_owned(),
            outcome: if made.is_ok() {
                crate::db::audit::AuditOutcome::Ok
            } else {
                crate::db::audit::AuditOutcome::Failed
            },
            detail: String::from("from the dashboard"),
        },
    )
    .await;
    let extra = match made {
        Ok(m) => json!({"made": {"name": m.name, "size": m.size}}),
        Err(e) => json!({"failed": e.to_string()}),
    };
    self_backups_page(&state, &post.session, extra).await
}
