//! Dashboard sessions: an operator or admin token, typed once into the sign-in form,
//! is exchanged for a random cookie value. Only the SHA-256 of that value is stored
//! (`web_sessions.id_hash`), with the token's row ID: every request looks the token up
//! again, so revoking or expiring the token ends its sessions on their next request.
//! Sessions end after [`IDLE`] without use, and at most [`MAX_AGE`] after sign-in.

use axum::http::header;
use axum::http::request::Parts;
use coffer_adapters::catalogue::rusqlite::{params, OptionalExtension};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::auth::{Admin, Operator};
use crate::db::now;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::token::TokenKind;

/// The cookie's name.
pub const COOKIE: &str = "coffer_session";
/// A session unused this long (seconds) has ended.
pub const IDLE: i64 = 12 * 3600;
/// A session ends this long (seconds) after sign-in however much it is used.
pub const MAX_AGE: i64 = 7 * 24 * 3600;
/// `last_used_at` is written at most this often (seconds), so reading pages does not
/// write the database on every request.
const TOUCH_EVERY: i64 = 60;

/// A signed-in session: whose token it is and its CSRF token.
pub struct Session {
    id_hash: [u8; 32],
    /// The token's row ID.
    pub token_id: i64,
    /// Operator or admin.
    pub kind: TokenKind,
    /// The operator's tenant.
    pub tenant_id: Option<i64>,
    csrf: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("token_id", &self.token_id)
            .field("kind", &self.kind.as_str())
            .field("tenant_id", &self.tenant_id)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The CSRF token every form of this session carries (hex).
    pub fn csrf(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(*self.csrf))
    }

    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        let Ok(bytes) = hex::decode(presented) else {
            return false;
        };
        bytes.len() == 32 && bool::from(self.csrf.as_slice().ct_eq(&bytes))
    }

    /// The session as the API's operator, exactly as the bearer extractor makes it.
    ///
    /// # Errors
    /// 403 for an admin's session on an operator's page.
    pub fn operator(&self) -> ApiResult<Operator> {
        match (self.kind, self.tenant_id) {
            (TokenKind::Operator, Some(tenant_id)) => Ok(Operator {
                tenant_id,
                actor: format!("operator:{}", self.token_id),
            }),
            _ => Err(ApiError::Forbidden(
                "these pages are an operator's: sign in with an operator token",
            )),
        }
    }

    /// The session as the API's admin.
    ///
    /// # Errors
    /// 403 for an operator's session on an admin's page.
    pub fn admin(&self) -> ApiResult<Admin> {
        match self.kind {
            TokenKind::Admin => Ok(Admin {
                actor: format!("admin:{}", self.token_id),
            }),
            _ => Err(ApiError::Forbidden(
                "these pages are the administrator's: sign in with the admin token",
            )),
        }
    }

    /// The actor this session acts as (`operator:N` or `admin:N`).
    pub fn actor(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.token_id)
    }
}

/// A new session's cookie value (shown to the browser only) and what is stored.
pub struct NewSession {
    /// The cookie value (hex of 32 random bytes), wiped on drop.
    pub value: Zeroizing<String>,
}

/// Starts a session for token `token_id`, and drops sessions that have ended.
///
/// # Errors
/// The database's.
pub async fn create(state: &AppState, token_id: i64) -> ApiResult<NewSession> {
    let mut raw = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(raw.as_mut());
    let value = Zeroizing::new(hex::encode(*raw));
    let id_hash: [u8; 32] = Sha256::digest(value.as_bytes()).into();
    let mut csrf = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(csrf.as_mut());
    let csrf = csrf.to_vec();
    state
        .db
        .call(move |cat| {
            let at = now();
            let conn = cat.connection();
            conn.execute(
                "DELETE FROM web_sessions WHERE expires_at <= ?1",
                params![at],
            )?;
            conn.execute(
                "INSERT INTO web_sessions (id_hash, token_id, csrf, created_at, last_used_at,
                     expires_at) VALUES (?1, ?2, ?3, ?4, ?4, ?5)",
                params![id_hash.to_vec(), token_id, csrf, at, at + IDLE],
            )?;
            Ok(())
        })
        .await?;
    Ok(NewSession { value })
}

/// The session the request's cookie names, if it is live and so is its token. A
/// session that has ended (idle, too old, or its token revoked or expired) is deleted.
///
/// # Errors
/// The database's.
pub async fn load(state: &AppState, parts: &Parts) -> ApiResult<Option<Session>> {
    let Some(value) = cookie_value(parts) else {
        return Ok(None);
    };
    let id_hash: [u8; 32] = Sha256::digest(value.as_bytes()).into();
    state
        .db
        .call(move |cat| {
            let conn = cat.connection();
            let row = conn
                .query_row(
                    "SELECT s.token_id, s.csrf, s.created_at, s.last_used_at, s.expires_at,
                            t.kind, t.tenant_id, t.expires_at, t.revoked_at
                     FROM web_sessions s JOIN tokens t ON t.id = s.token_id
                     WHERE s.id_hash = ?1",
                    [id_hash.to_vec()],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            Zeroizing::new(r.get::<_, Vec<u8>>(1)?),
                            r.get::<_, i64>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, i64>(4)?,
                            r.get::<_, String>(5)?,
                            r.get::<_, Option<i64>>(6)?,
                            r.get::<_, Option<i64>>(7)?,
                            r.get::<_, Option<i64>>(8)?,
                        ))
                    },
                )
                .optional()?;
            let Some((token_id, csrf, created, used, expires, kind, tenant, t_exp, revoked)) = row
            else {
                return Ok(None);
            };
            let at = now();
            let kind = match kind.as_str() {
                "operator" => Some(TokenKind::Operator),
                "admin" => Some(TokenKind::Admin),
                _ => None,
            };
            let live = expires > at
                && created + MAX_AGE > at
                && revoked.is_none()
                && t_exp.is_none_or(|e| e > at);
            let (Some(kind), true, Ok(csrf)) = (kind, live, <[u8; 32]>::try_from(csrf.as_slice()))
            else {
                conn.execute(
                    "DELETE FROM web_sessions WHERE id_hash = ?1",
                    [id_hash.to_vec()],
                )?;
                return Ok(None);
            };
            if at - used >= TOUCH_EVERY {
                conn.execute(
                    "UPDATE web_sessions SET last_used_at = ?2, expires_at = ?3
                     WHERE id_hash = ?1",
                    params![id_hash.to_vec(), at, (at + IDLE).min(created + MAX_AGE)],
                )?;
            }
            Ok(Some(Session {
                id_hash,
                token_id,
                kind,
                tenant_id: tenant,
                csrf: Zeroizing::new(csrf),
            }))
        })
        .await
}

/// Whether `session` is still signed in: not signed out, its token neither revoked
/// nor expired, and younger than [`MAX_AGE`]. A long-lived response (a run's event
/// stream) asks this as it goes, so sign-out or a revoked token ends it too. Idleness
/// is not checked: watching the stream is use of the session.
///
/// # Errors
/// The database's.
pub async fn is_live(state: &AppState, session: &SessionKey) -> ApiResult<bool> {
    let id_hash = session.0.to_vec();
    state
        .db
        .read(move |conn| {
            let at = now();
            Ok(conn
                .query_row(
                    "SELECT 1 FROM web_sessions s JOIN tokens t ON t.id = s.token_id
                     WHERE s.id_hash = ?1 AND s.created_at + ?2 > ?3 AND t.revoked_at IS NULL
                       AND (t.expires_at IS NULL OR t.expires_at > ?3)",
                    params![id_hash, MAX_AGE, at],
                    |_| Ok(()),
                )
                .optional()?
                .is_some())
        })
        .await
}

/// What names a session for [`is_live`], without its CSRF token: a response that
/// outlives its request keeps this rather than the session.
#[derive(Debug, Clone, Copy)]
pub struct SessionKey([u8; 32]);

impl Session {
    /// This session's [`SessionKey`].
    pub fn key(&self) -> SessionKey {
        SessionKey(self.id_hash)
    }
}

/// Ends `session` (sign-out): its row is deleted.
///
/// # Errors
/// The database's.
pub async fn delete(state: &AppState, session: &Session) -> ApiResult<()> {
    let id_hash = session.id_hash.to_vec();
    state
        .db
        .call(move |cat| {
            cat.connection()
                .execute("DELETE FROM web_sessions WHERE id_hash = ?1", [id_hash])?;
            Ok(())
        })
        .await
}

/// The session cookie's value from the request, if it has one of the right shape.
fn cookie_value(parts: &Parts) -> Option<Zeroizing<String>> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| Zeroizing::new(c.value().to_owned()))
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether the request came over https: the configured public URL says so, or (only
/// when the server is told it sits behind a reverse proxy) `X-Forwarded-Proto` does.
/// The server itself never terminates TLS.
pub fn over_https(state: &AppState, parts: &Parts) -> bool {
    state.config.public_url.scheme() == "https"
        || (state.config.trust_forwarded_for
            && parts
                .headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("https")))
}

/// The `Set-Cookie` value that hands the browser `value` (or, with `None`, removes the
/// cookie): HttpOnly, SameSite=Strict, Path=/ui, Secure over https.
pub fn set_cookie(value: Option<&str>, secure: bool) -> String {
    let mut c = cookie::Cookie::build((COOKIE, value.unwrap_or("").to_owned()))
        .path("/ui")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(secure);
    if value.is_none() {
        c = c.max_age(cookie::time::Duration::ZERO);
    }
    c.build().to_string()
}
