//! The router: every route, its body limits and tracing, and the fallbacks.

pub mod admin;
pub mod agent;
pub mod enrol;
pub mod jobs;
pub mod notify;
pub mod operator;
pub mod restores;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use tower_http::timeout::RequestBodyTimeoutLayer;
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
    let limit = state.config.json_body_limit;
    let api = Router::new()
        .merge(admin::routes())
        .merge(operator::routes())
        .merge(jobs::routes())
        .merge(notify::routes())
        .merge(restores::routes())
        .merge(enrol::routes())
        .merge(agent::routes())
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(move |request, next| {
            refuse_declared_length(request, next, limit as u64)
        }));
    // The embedded store streams bodies itself (up to 5 GiB a request), so the JSON
    // limit does not apply there.
    let s3 = Router::new()
        .route("/s3/{*path}", any(crate::local_s3::handle))
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn(|request, next| {
            refuse_declared_length(request, next, crate::local_s3::MAX_PUT_BYTES)
        }));
    Router::new()
        .merge(api)
        .merge(s3)
        // The dashboard: pages for people, kept out of the API description.
        .merge(crate::ui::routes())
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(crate::metrics::serve))
        .fallback(|uri: axum::http::Uri| async move {
            if uri.path().starts_with("/ui/") {
                crate::ui::not_found().await
            } else {
                ApiError::NotFound { what: "route" }.into_response()
            }
        })
        .layer(middleware::from_fn(json_method_not_allowed))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::observe,
        ))
        // A body that stops arriving ends the request (408 or S3's RequestTimeout)
        // instead of holding a task and a connection for ever.
        .layer(RequestBodyTimeoutLayer::new(state.config.body_read_timeout))
        .layer(middleware::from_fn(crate::local_s3::note_body_length))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Refuses at once a request whose declared `Content-Length` is over `limit`, before
/// any of its body is read (413; S3's `EntityTooLarge` on the embedded store).
async fn refuse_declared_length(request: Request, next: Next, limit: u64) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > limit => {
            if request.uri().path().starts_with("/s3/") {
                let mut e = s3s::S3Error::with_message(
                    s3s::S3ErrorCode::EntityTooLarge,
                    "the declared body is larger than 5 GiB",
                );
                e.set_status_code(StatusCode::PAYLOAD_TOO_LARGE);
                crate::local_s3::error(e)
            } else {
                ApiError::TooLarge {
                    limit: usize::try_from(limit).unwrap_or(usize::MAX),
                }
                .into_response()
            }
        }
        _ => next.run(request).await,
    }
}

/// The router answers a known path with an unknown method by an empty 405: give it
/// the JSON error shape every other error has, keeping its `Allow` header.
async fn json_method_not_allowed(request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let response = next.run(request).await;
    if response.status() != StatusCode::METHOD_NOT_ALLOWED
        || response.headers().get(header::CONTENT_TYPE).is_some()
    {
        return response;
    }
    let allow = response.headers().get(header::ALLOW).cloned();
    let mut json = ApiError::MethodNotAllowed { method }.into_response();
    if let Some(allow) = allow {
        json.headers_mut().insert(header::ALLOW, allow);
    }
    json
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
/// probing or misusing IDs. The answer is the same either way and costs the same: the
/// owner is looked up in both cases and the audit row is written after the response,
/// so neither the body nor the time tells a caller whether the ID exists.
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
        .read(move |conn| Ok(agents::owner_of(conn, table, id)?))
        .await
        .ok()
        .flatten();
    if let Some(owner) = owner.filter(|o| Some(*o) != caller_tenant) {
        let entry = AuditEntry {
            tenant_id: Some(owner),
            actor: actor.to_owned(),
            action: "access",
            target: format!("{what}:{id}"),
            outcome: AuditOutcome::Denied,
            detail: format!(
                "cross-tenant access from tenant {}",
                caller_tenant.map_or_else(|| "none".to_owned(), |t| t.to_string())
            ),
        };
        let st = state.clone();
        state
            .background
            .spawn(async move { crate::auth::audit(&st, entry).await });
    }
    ApiError::NotFound { what }
}
