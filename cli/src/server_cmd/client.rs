//! The admin's and operators' side of the server API: JSON over HTTP with a bearer
//! token, each refusal turned into an error that names the server's code and message
//! and exits with its own code (see `crate::exit`).
//!
//! The token is held in [`Zeroizing`] and sent only in the `Authorization` header;
//! reqwest's errors are stripped of the URL, and no message here formats a header.

use std::io::Read;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder};
use reqwest::Method;
use serde_json::Value;
use zeroize::Zeroizing;

use super::config::Target;
use crate::exit::{CliError, Result};

/// How long any request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an idle connection is kept (below the server's 10-second idle limit).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest response read: a list of 1,000 runs or log lines fits many times over.
const MAX_BODY: u64 = 16 << 20;

/// A client of one server, holding its token.
pub(crate) struct ServerClient {
    base: String,
    token: Zeroizing<String>,
    http: Client,
}

impl ServerClient {
    /// A client of `target`.
    ///
    /// # Errors
    /// [`CliError::Usage`] for a URL that is not http(s).
    pub(crate) fn new(target: Target) -> Result<ServerClient> {
        let base = target.url.trim_end_matches('/').to_owned();
        if !(base.starts_with("https://") || base.starts_with("http://")) {
            return Err(CliError::Usage(format!(
                "{base}: the server URL must start with https:// or http://"
            )));
        }
        let http = Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .build()
            .map_err(|e| CliError::Other(format!("setting up HTTP: {e}")))?;
        Ok(ServerClient {
            base,
            token: target.token,
            http,
        })
    }

    /// The server's base URL.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// `GET path` with `query` pairs (those given).
    ///
    /// # Errors
    /// See [`ServerClient::send`].
    pub(crate) fn get(&self, path: &str, query: &[(&str, Option<String>)]) -> Result<Value> {
        let pairs: Vec<(&str, &str)> = query
            .iter()
            .filter_map(|(k, v)| v.as_deref().map(|v| (*k, v)))
            .collect();
        self.send(Method::GET, path, |r| r.query(&pairs), None)
    }

    /// `POST path` with `body` as JSON (`{}` if none).
    ///
    /// # Errors
    /// See [`ServerClient::send`].
    pub(crate) fn post(&self, path: &str, body: Option<&Value>) -> Result<Value> {
        let empty = Value::Object(serde_json::Map::new());
        self.send(Method::POST, path, |r| r, Some(body.unwrap_or(&empty)))
    }

    /// `PATCH path` with `body` as JSON.
    ///
    /// # Errors
    /// See [`ServerClient::send`].
    pub(crate) fn patch(&self, path: &str, body: &Value) -> Result<Value> {
        self.send(Method::PATCH, path, |r| r, Some(body))
    }

    /// `PUT path` with `body` as JSON.
    ///
    /// # Errors
    /// See [`ServerClient::send`].
    pub(crate) fn put(&self, path: &str, body: &Value) -> Result<Value> {
        self.send(Method::PUT, path, |r| r, Some(body))
    }

    /// `DELETE path` with `query` pairs (those given).
    ///
    /// # Errors
    /// See [`ServerClient::send`].
    pub(crate) fn delete(&self, path: &str, query: &[(&str, Option<String>)]) -> Result<Value> {
        let pairs: Vec<(&str, &str)> = query
            .iter()
            .filter_map(|(k, v)| v.as_deref().map(|v| (*k, v)))
            .collect();
        self.send(Method::DELETE, path, |r| r.query(&pairs), None)
    }

    /// Sends one request; an empty success body reads as `null`.
    ///
    /// # Errors
    /// [`CliError::Io`] if the server cannot be reached or fails (5xx, 429);
    /// otherwise, for a refusal, by status: 401/403 [`CliError::WrongKey`], 404
    /// [`CliError::NotFound`], 400/413/422 [`CliError::Usage`], any other
    /// [`CliError::Refused`]; each naming the server's error code and message.
    fn send(
        &self,
        method: Method,
        path: &str,
        build: impl FnOnce(RequestBuilder) -> RequestBuilder,
        body: Option<&Value>,
    ) -> Result<Value> {
        let what = format!("{method} {path}");
        let mut request = build(self.http.request(method, format!("{}{path}", self.base)))
            .bearer_auth(self.token.as_str());
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().map_err(|e| {
            CliError::Io(format!(
                "{what}: cannot reach the server at {}: {}",
                self.base,
                // reqwest's message names the URL, never the Authorization header.
                e.without_url()
            ))
        })?;
        let status = response.status();
        let mut bytes = Vec::new();
        response
            .take(MAX_BODY)
            .read_to_end(&mut bytes)
            .map_err(|e| CliError::Io(format!("{what}: reading the response: {e}")))?;
        if status.is_success() {
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(Value::Null);
            }
            return serde_json::from_slice(&bytes).map_err(|e| {
                CliError::Other(format!("{what}: the server's answer is not JSON: {e}"))
            });
        }
        let (code, message) = error_body(&bytes);
        let mut text = format!(
            "{what}: the server refused (HTTP {} {code}): {message}",
            status.as_u16()
        );
        if message == "route not found" {
            text.push_str(" (this server may be older than this command)");
        }
        Err(match status.as_u16() {
            401 | 403 => CliError::WrongKey(text),
            404 => CliError::NotFound(text),
            400 | 413 | 422 => CliError::Usage(text),
            405 => CliError::Refused(format!(
                "{text} (this server may be older than this command)"
            )),
            429 | 500..=599 => CliError::Io(text),
            _ => CliError::Refused(text),
        })
    }
}

/// The `{"error": {"code", "message"}}` of a refusal, or stand-ins if the body is
/// something else (a proxy's page).
fn error_body(bytes: &[u8]) -> (String, String) {
    let parsed: Option<Value> = serde_json::from_slice(bytes).ok();
    let field = |name: &str| {
        parsed
            .as_ref()
            .and_then(|v| v["error"][name].as_str())
            .map(|s| s.chars().filter(|c| !c.is_control()).take(500).collect())
    };
    (
        field("code").unwrap_or_else(|| "no_error_code".to_owned()),
        field("message").unwrap_or_else(|| "no error message in the answer".to_owned()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_read_and_stand_ins_used() {
        let (code, message) =
            error_body(br#"{"error": {"code": "unauthorized", "message": "bad token"}}"#);
        assert_eq!(
            (code.as_str(), message.as_str()),
            ("unauthorized", "bad token")
        );
        let (code, _) = error_body(b"<html>");
        assert_eq!(code, "no_error_code");
    }
}
