//! The agent's side of the server API (`/work/agent-api.md`, v1): JSON over HTTP with
//! the agent's API key as a bearer token, errors sorted by what the agent should do.

use std::time::Duration;

use coffer_protocol::ErrorBody;
use reqwest::blocking::{Client, Response};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::exit::CliError;

/// How long any request may take; a poll holds up to 30 s, so more than that.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an idle connection is kept for the next request (below the server's
/// 10-second idle limit).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest response body read (work items and keys are small).
const MAX_BODY: u64 = 1 << 20;

/// Why a request failed.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// The server or the network is away, overloaded or failing (connection errors,
    /// timeouts, 5xx, 429): retry later, after `retry_after` if the server said.
    Transient {
        /// What happened.
        message: String,
        /// The server's `Retry-After`, in seconds.
        retry_after: Option<u64>,
    },
    /// The server refused the request for good (4xx): retrying the same will not help.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The error code from the body (`enrolment_token_used`, ...).
        code: String,
        /// The message from the body.
        message: String,
    },
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Transient { message, .. } => write!(f, "server unavailable: {message}"),
            ApiError::Refused {
                status,
                code,
                message,
            } => write!(f, "server refused (HTTP {status} {code}): {message}"),
        }
    }
}

impl From<ApiError> for CliError {
    fn from(e: ApiError) -> Self {
        let text = e.to_string();
        match e {
            ApiError::Transient { .. } => CliError::Io(text),
            ApiError::Refused { status, .. } => match status {
                401 | 403 | 410 => CliError::WrongKey(text),
                404 => CliError::NotFound(text),
                409 => CliError::Exists(text),
                400 | 413 | 422 => CliError::Usage(text),
                _ => CliError::Other(text),
            },
        }
    }
}

/// A client of one server, with or without the agent's API key.
pub(crate) struct Api {
    base: String,
    api_key: Option<Zeroizing<String>>,
    http: Client,
}

impl Api {
    /// A client of the server at `base` (e.g. `https://coffer.example`).
    pub(crate) fn new(base: &str, api_key: Option<Zeroizing<String>>) -> Result<Api, CliError> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(CliError::Usage(format!(
                "{base}: the server URL must start with https:// or http://"
            )));
        }
        let http = Client::builder()
            .timeout(REQUEST_TIMEOUT)
            // The server drops a kept-alive connection idle for 10 s; reusing one it
            // is closing at that moment fails the request, so let go of it first.
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build()
            .map_err(|e| CliError::Other(format!("setting up HTTP: {e}")))?;
        Ok(Api {
            base,
            api_key,
            http,
        })
    }

    /// The server's base URL.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// `GET path`, returning the JSON body as `T`.
    pub(crate) fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.send(self.http.get(format!("{}{path}", self.base)))
    }

    /// `POST path` with `body` as JSON, returning the JSON body as `T` (an empty body
    /// reads as `null`, so as `()`).
    pub(crate) fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let body = serde_json::to_vec(body).map_err(|e| ApiError::Refused {
            status: 0,
            code: "unencodable".into(),
            message: e.to_string(),
        })?;
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/json")
                .body(body),
        )
    }

    fn send<T: DeserializeOwned>(
        &self,
        mut request: reqwest::blocking::RequestBuilder,
    ) -> Result<T, ApiError> {
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key.as_str());
        }
        let response = request.send().map_err(|e| ApiError::Transient {
            // reqwest's message names the URL, never the Authorization header.
            message: e.without_url().to_string(),
            retry_after: None,
        })?;
        read(response)
    }
}

fn read<T: DeserializeOwned>(response: Response) -> Result<T, ApiError> {
    use std::io::Read;
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let mut body = Vec::new();
    let read = response.take(MAX_BODY).read_to_end(&mut body);
    if status.is_success() {
        read.map_err(|e| ApiError::Transient {
            message: format!("reading the response: {e}"),
            retry_after: None,
        })?;
        let text: &[u8] = if body.is_empty() { b"null" } else { &body };
        return serde_json::from_slice(text).map_err(|e| ApiError::Refused {
            status: status.as_u16(),
            code: "bad_response".into(),
            message: format!("the response is not what the contract says: {e}"),
        });
    }
    let (code, message) = serde_json::from_slice::<ErrorBody>(&body)
        .map(|b| (b.error.code, b.error.message))
        .unwrap_or_default();
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return Err(ApiError::Transient {
            message: format!("HTTP {} {code} {message}", status.as_u16())
                .trim()
                .to_owned(),
            retry_after,
        });
    }
    Err(ApiError::Refused {
        status: status.as_u16(),
        code,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_exit_codes_and_unavailability_to_io() {
        let refused = |status| ApiError::Refused {
            status,
            code: "c".into(),
            message: "m".into(),
        };
        assert_eq!(CliError::from(refused(410)).code(), crate::exit::WRONG_KEY);
        assert_eq!(CliError::from(refused(401)).code(), crate::exit::WRONG_KEY);
        assert_eq!(CliError::from(refused(404)).code(), crate::exit::NOT_FOUND);
        assert_eq!(CliError::from(refused(400)).code(), crate::exit::USAGE);
        let away = ApiError::Transient {
            message: "connection refused".into(),
            retry_after: None,
        };
        assert_eq!(CliError::from(away).code(), crate::exit::IO);
        assert!(Api::new("ftp://x", None).is_err());
    }
}
