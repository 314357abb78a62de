//! The dashboard: server-rendered pages under `/ui/`, served by the server itself
//! (templates and assets are compiled into the binary; nothing is built with Node).
//!
//! One authorisation path: a page turns its session into the same [`Operator`] or
//! [`Admin`](crate::auth::Admin) value the API's extractors make from a bearer token
//! and calls the API's own handler with it, then renders the JSON view that handler
//! answers. So a page sees exactly what its API route would, a cross-tenant ID gets
//! the API's 404 (audited the same way), and an API error is shown as a readable page
//! with the API's status.
//!
//! Forms post `application/x-www-form-urlencoded`; every POST but sign-in needs the
//! session, its CSRF token in the `csrf` field (compared in constant time) and a
//! same-origin request (`Origin`, or lacking it `Sec-Fetch-Site`). Secrets a page
//! shows once (enrolment and operator tokens) are in that one response only.

pub mod admin;
pub mod notify;
pub mod pages;
pub mod session;
pub mod templates;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::auth::{self, ClientIp};
use crate::db::audit::{AuditEntry, AuditOutcome};
use crate::db::tokens;
use crate::error::ApiError;
use crate::state::AppState;
use crate::token::{TokenHash, TokenKind};
use session::Session;

/// The dashboard's stylesheet.
const CSS: &str = include_str!("ui/assets/app.css");
/// The dashboard's one script (live run progress, schedule preview).
const JS: &str = include_str!("ui/assets/app.js");

/// The answer to a path under `/ui/` that is no page: a readable 404.
pub async fn not_found() -> Response {
    let mut response = UiError::Api(ApiError::NotFound { what: "page" }).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"),
    );
    response
}

/// The dashboard's routes, and `/` sending a browser to it.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(home))
        .route("/ui/assets/app.css", get(css))
        .route("/ui/assets/app.js", get(js))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .merge(pages::routes())
        .merge(admin::routes())
        .merge(notify::routes())
        .layer(axum::middleware::from_fn(security_headers))
}

/// Headers every dashboard answer carries: no framing (clickjacking), no sniffing, no
/// referrer leaving the site, no caching of pages that may show a secret once, and a
/// content security policy that runs only the dashboard's own script and style.
async fn security_headers(request: Request, next: axum::middleware::Next) -> Response {
    let asset = request.uri().path().starts_with("/ui/assets/");
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !asset {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        CSS,
    )
}

async fn js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        JS,
    )
}

/// Why a dashboard request was not answered with its page.
#[derive(Debug)]
pub enum UiError {
    /// No live session: to the sign-in page.
    SignIn,
    /// What the API layer refused, shown with its status.
    Api(ApiError),
    /// A POST without the session's CSRF token, or from another origin (403).
    Csrf(&'static str),
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        UiError::Api(e)
    }
}

/// Shorthand for page handlers.
pub type UiResult<T> = Result<T, UiError>;

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (status, title, message, retry) = match self {
            UiError::SignIn => return Redirect::to("/ui/login").into_response(),
            UiError::Csrf(why) => (
                StatusCode::FORBIDDEN,
                "Request refused".to_owned(),
                why.to_owned(),
                None,
            ),
            UiError::Api(e) => {
                let status = e.status();
                let retry = match &e {
                    ApiError::RateLimited { retry_after } => Some(*retry_after),
                    _ => None,
                };
                let message = match &e {
                    ApiError::Internal(detail) => {
                        let incident = crate::token::incident_id();
                        tracing::error!(incident = %incident, "internal error: {detail}");
                        format!("internal error (incident {incident})")
                    }
                    other => other.to_string(),
                };
                (
                    status,
                    status.canonical_reason().unwrap_or("Error").to_owned(),
                    message,
                    retry,
                )
            }
        };
        let body = templates::render(
            "error.html",
            json!({"title": title, "status": status.as_u16(), "message": message}),
        );
        let mut response = (status, body).into_response();
        if let Some(retry) = retry {
            if let Ok(v) = HeaderValue::from_str(&retry.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

/// A signed-in request (GET pages): without a live session, the sign-in page.
pub struct Signed(pub Session);

impl FromRequestParts<AppState> for Signed {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> UiResult<Self> {
        match session::load(state, parts).await? {
            Some(s) => Ok(Signed(s)),
            None => Err(UiError::SignIn),
        }
    }
}

/// A form posted by a signed-in session from this site, its CSRF token checked.
pub struct Post {
    /// The session.
    pub session: Session,
    /// The form's fields, in order (a name may repeat: checkboxes).
    pub form: Form,
}

impl FromRequest<AppState> for Post {
    type Rejection = UiError;

    async fn from_request(request: Request, state: &AppState) -> UiResult<Self> {
        let (parts, body) = request.into_parts();
        same_origin(state, &parts)?;
        let Some(session) = session::load(state, &parts).await? else {
            return Err(UiError::SignIn);
        };
        let form = Form::from_request(Request::from_parts(parts, body), state).await?;
        let presented = form.get("csrf").unwrap_or("");
        if !session.csrf_matches(presented) {
            return Err(UiError::Csrf(
                "this form is out of date or did not come from this dashboard: reload the \
                 page and try again",
            ));
        }
        Ok(Post { session, form })
    }
}

/// An url-encoded form's fields.
#[derive(Debug, Default)]
pub struct Form(pub Vec<(String, String)>);

impl Form {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed, `None` if absent or empty.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The non-empty lines of `name` (a textarea of one item a line).
    pub fn lines(&self, name: &str) -> Vec<String> {
        self.get(name)
            .unwrap_or("")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

impl FromRequest<AppState> for Form {
    type Rejection = UiError;

    async fn from_request(request: Request, state: &AppState) -> UiResult<Self> {
        let typed = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !typed {
            return Err(ApiError::BadRequest {
                code: "invalid_body",
                message: "a form (application/x-www-form-urlencoded) is expected".to_owned(),
            }
            .into());
        }
        let limit = state.config.json_body_limit;
        let bytes = axum::body::to_bytes(request.into_body(), limit)
            .await
            .map_err(|_| ApiError::TooLarge { limit })?;
        Ok(Form(parse_form(&bytes)))
    }
}

fn parse_form(bytes: &Bytes) -> Vec<(String, String)> {
    url::form_urlencoded::parse(bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Refuses a POST from another origin: its `Origin` must be this server's (as the
/// browser reached it: `Host`, or the configured public URL), and lacking an `Origin`,
/// `Sec-Fetch-Site` must not say `cross-site`.
fn same_origin(state: &AppState, parts: &Parts) -> UiResult<()> {
    if parts.method != Method::POST {
        return Ok(());
    }
    let refused = UiError::Csrf("this form was sent from another site; it was not carried out");
    if let Some(origin) = parts.headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let scheme = if session::over_https(state, parts) {
            "https"
        } else {
            "http"
        };
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let public = state.config.public_url.origin().ascii_serialization();
        if origin == public || (!host.is_empty() && origin == format!("{scheme}://{host}")) {
            return Ok(());
        }
        return Err(refused);
    }
    match parts
        .headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
    {
        Some("cross-site") => Err(refused),
        _ => Ok(()),
    }
}

/// `/ui/`: the operator's agents, or the admin's tenants.
async fn home(Signed(session): Signed) -> Redirect {
    match session.kind {
        TokenKind::Admin => Redirect::to("/ui/admin/tenants"),
        _ => Redirect::to("/ui/agents"),
    }
}

async fn login_page(State(state): State<AppState>, parts: Parts) -> Response {
    if let Ok(Some(_)) = session::load(&state, &parts).await {
        return Redirect::to("/ui/").into_response();
    }
    Html(templates::render("login.html", json!({}))).into_response()
}

/// Sign-in: the token from the form's password field, checked like a bearer token.
/// A live operator or admin token gets a session; anything else is refused, counted
/// against the address and audited exactly as a bad bearer token is (and, once the
/// address's quota is out, answered 429 without looking at the token).
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    request: Request,
) -> UiResult<Response> {
    let (parts, body) = request.into_parts();
    same_origin(&state, &parts)?;
    let secure = session::over_https(&state, &parts);
    let form = Form::from_request(Request::from_parts(parts, body), &state).await?;
    let presented = zeroize::Zeroizing::new(form.get("token").unwrap_or("").trim().to_owned());
    drop(form);
    let row = match TokenKind::of(&presented) {
        Some(TokenKind::Operator | TokenKind::Admin) => {
            let hash = TokenHash::of(&presented);
            state
                .db
                .read(move |conn| Ok(tokens::find_token(conn, &hash)?))
                .await?
                .filter(|r| TokenHash::of(&presented).matches(&r.hash))
        }
        _ => None,
    };
    let at = crate::db::now();
    let refusal = match &row {
        None => Some((None, "anonymous".to_owned(), "unknown credential")),
        Some(r) => {
            let actor = format!("{}:{}", r.kind.as_str(), r.id);
            if r.revoked_at.is_some() {
                Some((r.tenant_id, actor, "revoked credential"))
            } else if r.expires_at.is_some_and(|e| e <= at) {
                Some((r.tenant_id, actor, "expired credential"))
            } else if !matches!(r.kind, TokenKind::Operator | TokenKind::Admin) {
                Some((r.tenant_id, actor, "wrong kind of credential"))
            } else {
                None
            }
        }
    };
    match (refusal, row) {
        (None, Some(row)) => {
            let new = session::create(&state, row.id).await?;
            auth::audit(
                &state,
                AuditEntry {
                    tenant_id: row.tenant_id,
                    actor: format!("{}:{}", row.kind.as_str(), row.id),
                    action: "dashboard.sign_in",
                    target: "dashboard".to_owned(),
                    outcome: AuditOutcome::Ok,
                    detail: format!("from {ip}"),
                },
            )
            .await;
            let mut response = Redirect::to("/ui/").into_response();
            if let Ok(v) = HeaderValue::from_str(&session::set_cookie(Some(&new.value), secure)) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
            Ok(response)
        }
        (Some((tenant_id, actor, detail)), _) => {
            auth::check_blocked(&state, ip)?;
            auth::count_failure(&state, ip);
            auth::audit(
                &state,
                AuditEntry {
                    tenant_id,
                    actor,
                    action: "auth",
                    target: "route:/ui/login".to_owned(),
                    outcome: AuditOutcome::Denied,
                    detail: format!("{detail} from {ip}"),
                },
            )
            .await;
            let body = templates::render(
                "login.html",
                json!({"error": "That token was not accepted: it is unknown, revoked, expired, or not an operator or admin token."}),
            );
            Ok((StatusCode::UNAUTHORIZED, Html(body)).into_response())
        }
        (None, None) => Err(ApiError::internal("sign-in without a token row").into()),
    }
}

/// Sign-out: the session's row is deleted and the cookie removed.
async fn logout(State(state): State<AppState>, post: Post) -> UiResult<Response> {
    session::delete(&state, &post.session).await?;
    auth::audit(
        &state,
        AuditEntry {
            tenant_id: post.session.tenant_id,
            actor: post.session.actor(),
            action: "dashboard.sign_out",
            target: "dashboard".to_owned(),
            outcome: AuditOutcome::Ok,
            detail: String::new(),
        },
    )
    .await;
    let mut response = Redirect::to("/ui/login").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(None, false)) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

/// A page: `template` rendered with `context` plus the session's navigation and CSRF
/// token.
pub fn page(session: &Session, template: &str, mut context: Value) -> Html<String> {
    if let Value::Object(map) = &mut context {
        map.insert("csrf".to_owned(), Value::String(session.csrf().to_string()));
        map.insert(
            "role".to_owned(),
            Value::String(session.kind.as_str().to_owned()),
        );
        map.insert("actor".to_owned(), Value::String(session.actor()));
    }
    Html(templates::render(template, context))
}
