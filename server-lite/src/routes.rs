//! The router: every route, its body limits and tracing, and the fallbacks.

pub mod admin;
pub mod agent;
pub mod enrol;
pub mod operator;
pub mod restores;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use axum::Router;
use tower_http::trace::TraceLayer;

use crate::db::agents;
use crate::db::audit::{AuditEntry, AuditOutcome};
use crate::error::ApiError;
use crate::state::AppState;

/// The OpenAPI description served at `/openapi.json` (kept in the repository as
/// `server-lite/openapi.json`; a test checks it lists every route).
pub const OPENAPI: &str = include_str!("../openapi.json");

/// The whole application, ready to serve or to drive with `oneshot`.
pub fn app(state: AppState) -> Router {
    let api = Router::new()
        .merge(admin::routes())
        .merge(operator::routes())
        .merge(restores::routes())
        .merge(enrol::routes())
        .merge(agent::routes())
        .layer(DefaultBodyLimit::max(state.config.json_body_limit));
    // The embedded store streams bodies itself (up to 5 GiB a request), so the JSON
    // limit does not apply there.
    let s3 = Router::new()
        .route("/s3/{*path}", any(crate::local_s3::handle))
        .layer(DefaultBodyLimit::disable());
    Router::new()
        .merge(api)
        .merge(s3)
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async { ApiError::NotFound { what: "route" } })
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn openapi() -> impl IntoResponse {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}

/// The 404 for an object the caller cannot see. If it exists under another tenant,
/// the attempt is audited as denied (in the owner's log), since that is someone
/// probing or misusing IDs; the answer is the same either way, so it does not reveal
/// what exists.
pub async fn not_found(
    state: &AppState,
    actor: &str,
    caller_tenant: Option<i64>,
    table: &'static str,
    what: &'static str,
    id: i64,
) -> ApiError {
    let owner = state
        .db
        .call(move |cat| agents::owner_of(cat.connection(), table, id))
        .await
        .ok()
        .flatten();
    if let Some(owner) = owner.filter(|o| Some(*o) != caller_tenant) {
        crate::auth::audit(
            state,
            AuditEntry {
                tenant_id: Some(owner),
                actor: actor.to_owned(),
                action: "access",
                target: format!("{what}:{id}"),
                outcome: AuditOutcome::Denied,
                detail: format!(
                    "cross-tenant access from tenant {}",
                    caller_tenant.map_or_else(|| "none".to_owned(), |t| t.to_string())
                ),
            },
        )
        .await;
    }
    ApiError::NotFound { what }
}
