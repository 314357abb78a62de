//! The administrator's pages: tenants, their operator tokens (a new one shown once),
//! storage backends, and the whole audit log. Each calls the API's admin handler with
//! the session's [`Admin`].

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::pages::{filter_audit, request};
use super::session::Session;
use super::{page, Post, Signed, UiResult};
use crate::auth::Admin;
use crate::extract::Params;
use crate::routes::admin;
use crate::state::AppState;

/// The admin's pages.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui/admin/tenants", get(tenants).post(create_tenant))
        .route("/ui/admin/tenants/{id}", get(tenant))
        .route("/ui/admin/tenants/{id}/tokens", post(create_token))
        .route(
            "/ui/admin/tenants/{id}/tokens/{token}/revoke",
            post(revoke_token),
        )
        .route("/ui/admin/backends", get(backends).post(create_backend))
        .route("/ui/admin/audit", get(audit))
}

fn admin_of(session: &Session) -> UiResult<Admin> {
    Ok(session.admin()?)
}

async fn tenants(State(state): State<AppState>, Signed(s): Signed) -> UiResult<Html<String>> {
    let a = admin_of(&s)?;
    let list = admin::list_tenants(State(state.clone()), a.clone())
        .await?
        .0;
    let backends = admin::list_backends(State(state), a).await?.0;
    Ok(page(
        &s,
        "tenants.html",
        json!({"tenants": list["tenants"], "backends": backends["backends"]}),
    ))
}

async fn create_tenant(State(state): State<AppState>, post: Post) -> UiResult<Redirect> {
    let a = admin_of(&post.session)?;
    let body = json!({
        "name": post.form.text("name").unwrap_or_default(),
        "backend_id": post.form.text("backend_id"),
    });
    let (_, Json(v)) = admin::create_tenant(State(state), a, request(body)?).await?;
    let id = v["tenant"]["id"].as_str().unwrap_or_default();
    Ok(Redirect::to(&format!("/ui/admin/tenants/{id}")))
}

async fn tenant_page(
    state: &AppState,
    s: &Session,
    id: &str,
    created: Option<Value>,
) -> UiResult<Html<String>> {
    let a = admin_of(s)?;
    let tokens = admin::list_operator_tokens(State(state.clone()), a.clone(), Path(id.to_owned()))
        .await?
        .0;
    let list = admin::list_tenants(State(state.clone()), a).await?.0;
    let tenant = list["tenants"]
        .as_array()
        .and_then(|l| l.iter().find(|t| t["id"].as_str() == Some(id)).cloned())
        .unwrap_or(Value::Null);
    Ok(page(
        s,
        "tenant.html",
        json!({"tenant": tenant, "tokens": tokens["tokens"], "created": created}),
    ))
}

async fn tenant(
    State(state): State<AppState>,
    Signed(s): Signed,
    Path(id): Path<String>,
) -> UiResult<Html<String>> {
    tenant_page(&state, &s, &id, None).await
}

/// A new operator token for the tenant, shown this once.
async fn create_token(
    State(state): State<AppState>,
    Path(id): Path<String>,
    post: Post,
) -> UiResult<Response> {
    let a = admin_of(&post.session)?;
    let body = json!({"label": post.form.text("label").unwrap_or_default()});
    let (_, Json(v)) =
        admin::create_operator_token(State(state.clone()), a, Path(id.clone()), request(body)?)
            .await?;
    let html = tenant_page(&state, &post.session, &id, Some(v)).await?;
    Ok((StatusCode::CREATED, html).into_response())
}

async fn revoke_token(
    State(state): State<AppState>,
    Path((id, token)): Path<(String, String)>,
    post: Post,
) -> UiResult<Redirect> {
    let a = admin_of(&post.session)?;
    let _revoked = admin::revoke_operator_token(State(state), a, Path((id.clone(), token))).await?;
    Ok(Redirect::to(&format!("/ui/admin/tenants/{id}")))
}

async fn backends(State(state): State<AppState>, Signed(s): Signed) -> UiResult<Html<String>> {
    let a = admin_of(&s)?;
    let list = admin::list_backends(State(state), a).await?.0;
    Ok(page(
        &s,
        "backends.html",
        json!({"backends": list["backends"]}),
    ))
}

/// Registers an S3 backend (the API probes it before storing it).
async fn create_backend(State(state): State<AppState>, post: Post) -> UiResult<Redirect> {
    let a = admin_of(&post.session)?;
    let f = &post.form;
    let mut body = json!({
        "name": f.text("name").unwrap_or_default(),
        "endpoint": f.text("endpoint").unwrap_or_default(),
        "bucket": f.text("bucket").unwrap_or_default(),
        "path_style": f.get("path_style").is_some(),
        "access_key_id": f.text("access_key_id").unwrap_or_default(),
        "secret_access_key": f.get("secret_access_key").unwrap_or_default(),
    });
    if let Some(region) = f.text("region") {
        body["region"] = json!(region);
    }
    let _created = admin::create_backend(State(state), a, request(body)?).await?;
    Ok(Redirect::to("/ui/admin/backends"))
}

async fn audit(
    State(state): State<AppState>,
    Signed(s): Signed,
    query: Params,
) -> UiResult<Html<String>> {
    let a = admin_of(&s)?;
    let limit = query
        .0
        .get("limit")
        .cloned()
        .unwrap_or_else(|| "200".to_owned());
    let mut api = Params::default();
    api.0.insert("limit".to_owned(), limit.clone());
    if let Some(t) = query.0.get("tenant_id").filter(|t| !t.is_empty()) {
        api.0.insert("tenant_id".to_owned(), t.clone());
    }
    let list = admin::all_audit(State(state), a, api).await?.0;
    let (entries, mut filter) = filter_audit(&list["entries"], &query);
    filter["tenant_id"] = json!(query.0.get("tenant_id"));
    Ok(page(
        &s,
        "audit.html",
        json!({"entries": entries, "filter": filter, "limit": limit, "admin": true}),
    ))
}
