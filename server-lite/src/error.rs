//! The server layer's one error type and how each kind becomes an HTTP answer.
//!
//! Every variant carries only what the caller may see. Internal failures (SQLite, I/O,
//! cryptography) are logged under an incident number and answered with that number
//! alone, so no path, query or key material reaches a client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// What went wrong with a request, as the API reports it
/// (`{"error": {"code", "message"}}`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the input is malformed; the message names the field.
    #[error("{message}")]
    BadRequest {
        /// Machine-readable code, e.g. `invalid_field`.
        code: &'static str,
        /// Human text naming the field.
        message: String,
    },
    /// 401: no credential, or an unknown, expired or revoked one.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 403: the credential is valid but this is not its to touch.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 404: no such object (or not one the caller may know about).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `agent`.
        what: &'static str,
    },
    /// 405: the route exists but not with this method (the `Allow` header lists
    /// those it takes).
    #[error("this route does not take {method}")]
    MethodNotAllowed {
        /// The method used.
        method: String,
    },
    /// 409: the request conflicts with the object's state.
    #[error("{message}")]
    Conflict {
        /// Machine-readable code.
        code: &'static str,
        /// Human text.
        message: String,
    },
    /// 410: a one-time token that was already used or has expired.
    #[error("{message}")]
    Gone {
        /// `enrolment_token_used` or `enrolment_token_expired`.
        code: &'static str,
        /// Human text.
        message: &'static str,
    },
    /// 413: the body is larger than the route accepts.
    #[error("the request body is larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// 408: the request body stopped arriving.
    #[error("the request body stopped arriving")]
    Timeout,
    /// 429: too many attempts; retry after this many seconds.
    #[error("too many requests; retry after {retry_after} s")]
    RateLimited {
        /// Seconds until a retry may succeed.
        retry_after: u64,
    },
    /// 503: a dependency (storage) is not reachable right now.
    #[error("{0}")]
    Unavailable(&'static str),
    /// 500: anything else. The detail is logged, never sent.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A 400 naming `field`.
    pub fn field(field: &str, problem: impl std::fmt::Display) -> Self {
        ApiError::BadRequest {
            code: "invalid_field",
            message: format!("{field}: {problem}"),
        }
    }

    /// A 500 whose `detail` goes to the log only.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        ApiError::Internal(detail.to_string())
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Gone { .. } => StatusCode::GONE,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Gone { code, .. } => code,
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound { .. } => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::TooLarge { .. } => "body_too_large",
            ApiError::Timeout => "request_timeout",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let message = match &self {
            ApiError::Internal(detail) => {
                let incident = crate::token::incident_id();
                tracing::error!(incident = %incident, "internal error: {detail}");
                format!("internal error (incident {incident})")
            }
            other => other.to_string(),
        };
        let body = json!({"error": {"code": self.code(), "message": message}});
        let mut response = (status, Json(body)).into_response();
        if let ApiError::RateLimited { retry_after } = self {
            if let Ok(value) = HeaderValue::from_str(&retry_after.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

impl From<coffer_adapters::Error> for ApiError {
    fn from(e: coffer_adapters::Error) -> Self {
        ApiError::internal(e)
    }
}

/// rusqlite as the adapters re-export it (one version in the tree).
impl From<coffer_adapters::catalogue::rusqlite::Error> for ApiError {
    fn from(e: coffer_adapters::catalogue::rusqlite::Error) -> Self {
        ApiError::internal(e)
    }
}

/// The database layer's errors, as the API answers them: conflicts are 409s, the rest
/// 500s whose detail goes to the log only.
impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        match e {
            crate::db::DbError::Conflict { code, message } => ApiError::Conflict { code, message },
            other => ApiError::internal(other),
        }
    }
}

/// Shorthand for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn body_of(e: ApiError) -> (StatusCode, String, Option<String>) {
        let response = e.into_response();
        let status = response.status();
        let retry = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(bytes.to_vec()).unwrap(), retry)
    }

    #[tokio::test]
    async fn internal_errors_say_nothing_and_others_say_what_to_fix() {
        let (status, body, _) = body_of(ApiError::internal(
            "opening /srv/secret/path: key 0xdeadbeef",
        ))
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            !body.contains("secret") && !body.contains("deadbeef"),
            "{body}"
        );
        assert!(body.contains("\"code\":\"internal\"") && body.contains("incident"));

        let (status, body, _) = body_of(ApiError::field("hostname", "must not be empty")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("hostname: must not be empty"), "{body}");

        let (status, _, retry) = body_of(ApiError::RateLimited { retry_after: 7 }).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(retry.as_deref(), Some("7"));

        let (status, body, _) = body_of(ApiError::TooLarge { limit: 65_536 }).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(body.contains("65536"));
    }
}
