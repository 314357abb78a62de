//! The notification pages: the operator's tenant channels under `/ui/notifications`
//! and the server's own under `/ui/admin/notifications` (one template, one set of
//! handlers, each calling the API's operator or admin handler), the tenant's alert
//! settings form; and the admin's backend test and self-backups page. Each calls the
//! API's own handler with the session's operator or admin.

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::pages::{number, request};
use super::session::Session;
use super::{page, Form, Post, Signed, UiResult};
use crate::auth::{Admin, Operator};
use crate::db::notify::{AlertKind, AlertSettings};
use crate::error::{ApiError, ApiResult};
use crate::extract::Params;
use crate::routes::{admin, notify};
use crate::state::AppState;

/// The pages.
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(channel_routes::<false>())
        .merge(channel_routes::<true>())
        .route("/ui/notifications/settings", post(set_settings))
        .route("/ui/admin/backends/{id}/test", post(test_backend))
        .route(
            "/ui/admin/self-backups",
            get(self_backups).post(self_backup_now),
        )
        .route("/ui/admin/reconcile", post(reconcile))
}

/// The channel pages and actions under [`prefix`]`(ADMIN)`: the tenant's (`ADMIN`
/// false) or the server's own.
fn channel_routes<const ADMIN: bool>() -> Router<AppState> {
    let at = prefix(ADMIN);
    Router::new()
        .route(at, get(notifications::<ADMIN>))
        .route(&format!("{at}/webhooks"), post(add_webhook::<ADMIN>))
        .route(&format!("{at}/emails"), post(add_email::<ADMIN>))
        .route(
            &format!("{at}/channels/{{id}}"),
            post(update_channel::<ADMIN>),
        )
        .route(
            &format!("{at}/channels/{{id}}/test"),
            post(test_channel::<ADMIN>),
        )
        .route(
            &format!("{at}/channels/{{id}}/delete"),
            get(delete_confirm::<ADMIN>).post(delete_channel::<ADMIN>),
        )
}

/// Where the tenant's (`admin` false) or the server's notification pages are.
fn prefix(admin: bool) -> &'static str {
    if admin {
        "/ui/admin/notifications"
    } else {
        "/ui/notifications"
    }
}

/// What each kind of alert a channel may be limited to is, in words.
const KINDS: [(AlertKind, &str); 6] = [
    (AlertKind::RunFailed, "a run failed"),
    (AlertKind::MissedSchedule, "a job missed its schedule"),
    (AlertKind::AgentOffline, "an agent went offline"),
    (AlertKind::StorageFailed, "storage failed its test"),
    (
        AlertKind::SelfBackupFailed,
        "the server's self-backup failed",
    ),
    (AlertKind::UpgradeRolledBack, "an upgrade was rolled back"),
];

/// Whose notifications a page works on: the operator's tenant, or the server (the
/// admin). Each method calls the API's handler for that side, so the page is answered
/// exactly as its API route would be.
enum Owner {
    Tenant(Operator),
    Server(Admin),
}

impl Owner {
    /// The session's side: the admin's for the admin's pages, else the operator's (a
    /// session of the other kind is refused with the API's 403).
    fn of(session: &Session, admin: bool) -> ApiResult<Self> {
        Ok(if admin {
            Owner::Server(session.admin()?)
        } else {
            Owner::Tenant(session.operator()?)
        })
    }

    fn prefix(&self) -> &'static str {
        prefix(matches!(self, Owner::Server(_)))
    }

    async fn channels(&self, state: &AppState) -> ApiResult<Value> {
        let st = State(state.clone());
        let Json(v) = match self {
            Owner::Tenant(op) => notify::op_channels(st, op.clone()).await?,
            Owner::Server(a) => notify::admin_channels(st, a.clone()).await?,
        };
        Ok(v)
    }

    async fn alerts(&self, state: &AppState, params: Params) -> ApiResult<Value> {
        let st = State(state.clone());
        let Json(v) = match self {
            Owner::Tenant(op) => notify::op_alerts(st, op.clone(), params).await?,
            Owner::Server(a) => notify::admin_alerts(st, a.clone(), params).await?,
        };
        Ok(v)
    }

    async fn deliveries(&self, state: &AppState, params: Params) -> ApiResult<Value> {
        let st = State(state.clone());
        let Json(v) = match self {
            Owner::Tenant(op) => notify::op_deliveries(st, op.clone(), params).await?,
            Owner::Server(a) => notify::admin_deliveries(st, a.clone(), params).await?,
        };
        Ok(v)
    }

    /// The alert settings: the tenant's, or the defaults the server's own alerts use.
    async fn settings(&self, state: &AppState) -> ApiResult<Value> {
        match self {
            Owner::Tenant(op) => Ok(notify::op_settings(State(state.clone()), op.clone())
                .await?
                .0["settings"]
                .take()),
            Owner::Server(_) => {
                serde_json::to_value(AlertSettings::default()).map_err(ApiError::internal)
            }
        }
    }

    async fn create(&self, state: &AppState, body: Value) -> ApiResult<Value> {
        let st = State(state.clone());
        let (_, Json(v)) = match self {
            Owner::Tenant(op) => notify::op_create(st, op.clone(), request(body)?).await?,
            Owner::Server(a) => notify::admin_create(st, a.clone(), request(body)?).await?,
        };
        Ok(v)
    }

    async fn update(&self, state: &AppState, id: String, body: Value) -> ApiResult<Value> {
        let st = State(state.clone());
        let Json(v) = match self {
            Owner::Tenant(op) => {
                notify::op_update(st, op.clone(), Path(id), request(body)?).await?
            }
            Owner::Server(a) => {
                notify::admin_update(st, a.clone(), Path(id), request(body)?).await?
            }
        };
        Ok(v)
    }

    async fn delete(&self, state: &AppState, id: String) -> ApiResult<()> {
        let st = State(state.clone());
        match self {
            Owner::Tenant(op) => notify::op_delete(st, op.clone(), Path(id)).await?,
            Owner::Server(a) => notify::admin_delete(st, a.clone(), Path(id)).await?,
        };
        Ok(())
    }

    async fn test(&self, state: &AppState, id: String) -> ApiResult<Value> {
        let st = State(state.clone());
        let Json(v) = match self {
            Owner::Tenant(op) => notify::op_test(st, op.clone(), Path(id)).await?,
            Owner::Server(a) => notify::admin_test(st, a.clone(), Path(id)).await?,
        };
        Ok(v)
    }
}

/// `context` with the fields of `extra` (an action's outcome) added.
fn with(mut context: Value, extra: Value) -> Value {
    if let (Value::Object(map), Value::Object(more)) = (&mut context, extra) {
        map.extend(more);
    }
    context
}

/// The page: channels (with their names for the deliveries), open alerts, the newest
/// deliveries, the alert settings, and `extra` (what an action did).
async fn notifications_page(
    state: &AppState,
    s: &Session,
    owner: &Owner,
    extra: Value,
) -> UiResult<Html<String>> {
    let channels = owner.channels(state).await?["channels"].take();
    let open = Params([("open".to_owned(), "true".to_owned())].into());
    let alerts = owner.alerts(state, open).await?["alerts"].take();
    let recent = Params([("limit".to_owned(), "20".to_owned())].into());
    let deliveries = owner.deliveries(state, recent).await?["deliveries"].take();
    let names: Map<String, Value> = channels
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c["id"].as_str()?.to_owned(), c["name"].clone())))
        .collect();
    let kinds: Vec<Value> = KINDS
        .iter()
        .map(|(k, words)| json!({"name": k.as_str(), "words": words}))
        .collect();
    let bounds: Map<String, Value> = notify::SETTING_MIN
        .iter()
        .map(|(name, min)| ((*name).to_owned(), json!(min)))
        .collect();
    let context = json!({
        "admin": matches!(owner, Owner::Server(_)),
        "prefix": owner.prefix(),
        "channels": channels,
        "names": names,
        "kinds": kinds,
        "alerts": alerts,
        "deliveries": deliveries,
        "settings": owner.settings(state).await?,
        "bounds": {"min": bounds, "max": notify::SETTING_MAX},
    });
    Ok(page(s, "notifications.html", with(context, extra)))
}

async fn notifications<const ADMIN: bool>(
    State(state): State<AppState>,
    Signed(s): Signed,
) -> UiResult<Html<String>> {
    let owner = Owner::of(&s, ADMIN)?;
    notifications_page(&state, &s, &owner, json!({})).await
}

async fn add(state: AppState, post: Post, admin: bool, body: Value) -> UiResult<Html<String>> {
    let owner = Owner::of(&post.session, admin)?;
    let added = owner.create(&state, body).await?;
    notifications_page(&state, &post.session, &owner, json!({ "added": added })).await
}

async fn add_webhook<const ADMIN: bool>(
    State(state): State<AppState>,
    post: Post,
) -> UiResult<Html<String>> {
    let body = json!({
        "name": post.form.text("name").unwrap_or_default(),
        "kind": "webhook",
        "webhook": {"url": post.form.text("url").unwrap_or_default()},
    });
    add(state, post, ADMIN, body).await
}

async fn add_email<const ADMIN: bool>(
    State(state): State<AppState>,
    post: Post,
) -> UiResult<Html<String>> {
    let f = &post.form;
    let mut email = json!({
        "host": f.text("host").unwrap_or_default(),
        "tls": f.text("tls").unwrap_or_else(|| "starttls".to_owned()),
        "from": f.text("from").unwrap_or_default(),
        // One or more addresses, comma-separated (as `<input type=email multiple>`
        // sends them); the API checks each and how many.
        "to": f
            .text("to")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .collect::<Vec<_>>(),
    });
    if let Some(port) = number(f, "port")? {
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
    add(state, post, ADMIN, body).await
}

/// A channel turned on or off (`enabled`), or limited to the alerts ticked (`events`,
/// with `set_events` present: none ticked is every alert), through the API's PATCH.
async fn update_channel<const ADMIN: bool>(
    State(state): State<AppState>,
    Path(id): Path<String>,
    post: Post,
) -> UiResult<Html<String>> {
    let owner = Owner::of(&post.session, ADMIN)?;
    let body = patch_of(&post.form)?;
    let updated = owner.update(&state, id, body).await?;
    notifications_page(&state, &post.session, &owner, json!({ "updated": updated })).await
}

/// The API's channel patch from the form's fields.
fn patch_of(form: &Form) -> ApiResult<Value> {
    let mut body = json!({});
    match form.text("enabled").as_deref() {
        None => {}
        Some("true") => body["enabled"] = json!(true),
        Some("false") => body["enabled"] = json!(false),
        Some(_) => return Err(ApiError::field("enabled", "true or false")),
    }
    if form.get("set_events").is_some() {
        body["events"] = json!(form.all("events"));
    }
    Ok(body)
}

async fn test_channel<const ADMIN: bool>(
    State(state): State<AppState>,
    Path(id): Path<String>,
    post: Post,
) -> UiResult<Html<String>> {
    let owner = Owner::of(&post.session, ADMIN)?;
    let sent = owner.test(&state, id).await?;
    notifications_page(
        &state,
        &post.session,
        &owner,
        json!({ "tested": sent["delivery"] }),
    )
    .await
}

/// The channel's delete, asked first (its deliveries' history goes with it).
async fn delete_confirm<const ADMIN: bool>(
    State(state): State<AppState>,
    Signed(s): Signed,
    Path(id): Path<String>,
) -> UiResult<Html<String>> {
    let owner = Owner::of(&s, ADMIN)?;
    let list = owner.channels(&state).await?;
    let channel = list["channels"]
        .as_array()
        .and_then(|l| l.iter().find(|c| c["id"].as_str() == Some(id.as_str())))
        .ok_or(ApiError::NotFound { what: "channel" })?;
    let name = channel["name"].as_str().unwrap_or_default();
    let at = owner.prefix();
    Ok(page(
        &s,
        "confirm.html",
        json!({
            "title": format!("Delete channel {name}?"),
            "message": "It gets no more alerts, and the record of what was sent to it goes with it. This cannot be undone.",
            "action": format!("{at}/channels/{id}/delete"),
            "button": "Delete the channel",
            "back": at,
        }),
    ))
}

async fn delete_channel<const ADMIN: bool>(
    State(state): State<AppState>,
    Path(id): Path<String>,
    post: Post,
) -> UiResult<Redirect> {
    let owner = Owner::of(&post.session, ADMIN)?;
    owner.delete(&state, id).await?;
    Ok(Redirect::to(owner.prefix()))
}

/// The tenant's alert settings from the form, through the API's PUT: saved, or the
/// page again with what was typed and the API's refusal, at its status.
async fn set_settings(State(state): State<AppState>, post: Post) -> UiResult<Response> {
    let op = post.session.operator()?;
    let owner = Owner::Tenant(op.clone());
    let saved = async {
        let mut body = Map::new();
        for (name, _) in notify::SETTING_MIN {
            let value =
                number(&post.form, name)?.ok_or_else(|| ApiError::field(name, "required"))?;
            body.insert(name.to_owned(), json!(value));
        }
        notify::op_set_settings(State(state.clone()), op, request(Value::Object(body))?).await
    }
    .await;
    match saved {
        Ok(_) => Ok(notifications_page(
            &state,
            &post.session,
            &owner,
            json!({"settings_saved": true}),
        )
        .await?
        .into_response()),
        Err(e) if e.status().is_client_error() => {
            let typed: Map<String, Value> = notify::SETTING_MIN
                .iter()
                .map(|(name, _)| ((*name).to_owned(), json!(post.form.get(name))))
                .collect();
            let extra = json!({"settings_error": e.to_string(), "typed": typed});
            let html = notifications_page(&state, &post.session, &owner, extra).await?;
            Ok((e.status(), html).into_response())
        }
        Err(e) => Err(e.into()),
    }
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
    let kek = crate::repos::copy_key(&state.kek);
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

/// The restore points against storage (after a self-restore), through the API's
/// reconcile: checked, or with `apply=true` the ones whose snapshot is gone removed.
async fn reconcile(State(state): State<AppState>, post: Post) -> UiResult<Html<String>> {
    let a = post.session.admin()?;
    let apply = post.form.text("apply").as_deref() == Some("true");
    let Json(v) =
        admin::reconcile(State(state.clone()), a, request(json!({ "apply": apply }))?).await?;
    self_backups_page(
        &state,
        &post.session,
        json!({ "reconciled": v["reconcile"] }),
    )
    .await
}
