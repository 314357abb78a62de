//! Who is calling: bearer tokens checked against their stored hashes, per route kind.
//!
//! Each extractor ([`Admin`], [`Operator`], [`Agent`]) accepts only its own kind of
//! token, live (not revoked, not expired). A failed authentication is audited and
//! counted against the client address; an address that runs out of its quota gets 429
//! until it refills, before any token is even looked at, so guessing is throttled.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};

use crate::db::audit::{self, AuditEntry, AuditOutcome};
use crate::db::{now, tokens};
use crate::error::ApiError;
use crate::state::AppState;
use crate::token::{TokenHash, TokenKind};

/// The server's administrator.
#[derive(Debug, Clone)]
pub struct Admin {
    /// `admin:N`.
    pub actor: String,
}

/// An operator of one tenant.
#[derive(Debug, Clone)]
pub struct Operator {
    /// The tenant every request is confined to.
    pub tenant_id: i64,
    /// `operator:N`.
    pub actor: String,
}

/// An enrolled, unrevoked agent.
#[derive(Debug, Clone)]
pub struct Agent {
    /// The agent.
    pub agent_id: i64,
    /// Its tenant.
    pub tenant_id: i64,
    /// `agent:N`.
    pub actor: String,
}

/// The client's address: the socket's peer (unspecified when there is none, as
/// under `oneshot`), or, when the server is told it sits behind a reverse proxy, the
/// last address in `X-Forwarded-For` (the one that proxy saw).
pub fn client_ip(parts: &Parts, trust_forwarded_for: bool) -> IpAddr {
    if trust_forwarded_for {
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .last()
            .and_then(|ip| ip.trim().parse().ok());
        if let Some(ip) = forwarded {
            return ip;
        }
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// Refuses an address whose failure quota ran out.
///
/// # Errors
/// 429 with the seconds to wait.
pub fn check_blocked(state: &AppState, ip: IpAddr) -> Result<(), ApiError> {
    let mut blocked = state
        .limits
        .blocked
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(until) = blocked.get(&ip) {
        let now = Instant::now();
        if *until > now {
            return Err(ApiError::RateLimited {
                retry_after: (*until - now).as_secs() + 1,
            });
        }
        blocked.remove(&ip);
    }
    Ok(())
}

/// Counts a failed authentication from `ip`; blocks it when the quota runs out.
pub fn count_failure(state: &AppState, ip: IpAddr) {
    if let Err(not_until) = state.limits.auth_failures.check_key(&ip) {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        state.limits.block(ip, Instant::now() + wait);
    }
}

/// Records an audit entry, logging (not failing) if the database refuses.
pub async fn audit(state: &AppState, entry: AuditEntry) {
    if let Err(e) = state
        .db
        .call(move |cat| Ok(audit::record(cat.connection(), &entry)?))
        .await
    {
        tracing::error!("writing the audit log failed: {e:?}");
    }
}

/// A token of kind `want`, live. Returns (token ID, tenant, agent).
///
/// A valid credential is let through even from an address whose failure quota ran out,
/// so a guesser on the same address (or behind the same NAT) cannot lock out the agent
/// or operator beside it. Every refusal (unknown, revoked, expired or wrong-kind
/// token, or none) counts against the address; once its quota is out, refusals are
/// answered 429 and no longer audited, so they cannot flood the audit log either.
async fn authenticate(
    parts: &Parts,
    state: &AppState,
    want: TokenKind,
) -> Result<(i64, Option<i64>, Option<i64>), ApiError> {
    let ip = client_ip(parts, state.config.trust_forwarded_for);
    let presented = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let row = match presented {
        // Not even shaped like one of our tokens: no need to look it up.
        Some(presented) if TokenKind::of(presented).is_some() => {
            let hash = TokenHash::of(presented);
            state
                .db
                .read(move |conn| Ok(tokens::find_token(conn, &hash)?))
                .await?
        }
        _ => None,
    };
    let refusal = match &row {
        None if presented.is_none() => Refusal::new(None, "anonymous", "no bearer token")
            .answer(ApiError::Unauthorized("a bearer token is required")),
        None => Refusal::new(None, "anonymous", "unknown token")
            .answer(ApiError::Unauthorized("unknown token")),
        Some(row) => {
            let actor = format!("{}:{}", row.kind.as_str(), row.agent_id.unwrap_or(row.id));
            if row.revoked_at.is_some() {
                Refusal::new(row.tenant_id, &actor, "revoked credential")
                    .answer(ApiError::Unauthorized("this credential has been revoked"))
            } else if row.expires_at.is_some_and(|e| e <= now()) {
                Refusal::new(row.tenant_id, &actor, "expired credential")
                    .answer(ApiError::Unauthorized("this credential has expired"))
            } else if row.kind != want {
                Refusal::new(
                    row.tenant_id,
                    &actor,
                    &format!("{} token on a {} route", row.kind.as_str(), want.as_str()),
                )
                .answer(ApiError::Forbidden("this credential cannot use this route"))
            } else {
                return Ok((row.id, row.tenant_id, row.agent_id));
            }
        }
    };
    check_blocked(state, ip)?;
    count_failure(state, ip);
    audit(
        state,
        AuditEntry {
            tenant_id: refusal.tenant_id,
            actor: refusal.actor,
            action: "auth",
            target: format!("route:{}", parts.uri.path()),
            outcome: AuditOutcome::Denied,
            detail: format!("{} from {ip}", refusal.detail),
        },
    )
    .await;
    Err(refusal.error)
}

/// Why a request was refused, for the audit log and the answer.
struct Refusal {
    tenant_id: Option<i64>,
    actor: String,
    detail: String,
    error: ApiError,
}

impl Refusal {
    fn new(tenant_id: Option<i64>, actor: &str, detail: &str) -> Self {
        Refusal {
            tenant_id,
            actor: actor.to_owned(),
            detail: detail.to_owned(),
            error: ApiError::Unauthorized("unauthorized"),
        }
    }

    fn answer(self, error: ApiError) -> Self {
        Refusal { error, ..self }
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (id, _, _) = authenticate(parts, state, TokenKind::Admin).await?;
        // The admin token opens every tenant: each use is on the record.
        audit(
            state,
            AuditEntry {
                tenant_id: None,
                actor: format!("admin:{id}"),
                action: "admin_token.use",
                target: format!("route:{} {}", parts.method, parts.uri.path()),
                outcome: AuditOutcome::Ok,
                detail: String::new(),
            },
        )
        .await;
        Ok(Admin {
            actor: format!("admin:{id}"),
        })
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (id, tenant, _) = authenticate(parts, state, TokenKind::Operator).await?;
        let tenant_id =
            tenant.ok_or_else(|| ApiError::internal("operator token without tenant"))?;
        Ok(Operator {
            tenant_id,
            actor: format!("operator:{id}"),
        })
    }
}

impl FromRequestParts<AppState> for Agent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (_, tenant, agent) = authenticate(parts, state, TokenKind::Agent).await?;
        match (tenant, agent) {
            (Some(tenant_id), Some(agent_id)) => Ok(Agent {
                agent_id,
                tenant_id,
                actor: format!("agent:{agent_id}"),
            }),
            _ => Err(ApiError::internal("agent token without agent")),
        }
    }
}

/// The client's address, as an extractor (unspecified under `oneshot`).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts, state.config.trust_forwarded_for)))
    }
}
