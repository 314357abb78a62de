//! Request extractors whose rejections speak the API's error format: malformed JSON or
//! parameters get a 400 naming the field, an oversized body a 413.

use std::collections::HashMap;
use std::str::FromStr;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A JSON body; rejections become [`ApiError`]s naming the field.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(&rejection, state.config.json_body_limit)),
        }
    }
}

/// Maps axum's JSON rejections to the API's errors (`limit`: the body limit, for 413).
pub fn json_rejection(rejection: &JsonRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::TooLarge { limit };
    }
    match rejection {
        JsonRejection::JsonDataError(e) => {
            // axum's text is "Failed to deserialize ...: <path>: <problem>"; keep the
            // path and problem (serde's, so it names the field and never echoes data
            // beyond the offending token).
            let text = e.body_text();
            let detail = text
                .split_once("target type: ")
                .map_or(text.as_str(), |(_, d)| d)
                .to_owned();
            ApiError::BadRequest {
                code: "invalid_field",
                message: detail,
            }
        }
        JsonRejection::JsonSyntaxError(_) => ApiError::BadRequest {
            code: "malformed_json",
            message: "the body is not valid JSON".to_owned(),
        },
        JsonRejection::MissingJsonContentType(_) => ApiError::BadRequest {
            code: "unsupported_media_type",
            message: "content-type must be application/json".to_owned(),
        },
        other if body_timed_out(other) => ApiError::Timeout,
        _ => ApiError::BadRequest {
            code: "bad_body",
            message: "the body could not be read".to_owned(),
        },
    }
}

/// Whether `error`, or anything it wraps, is the body read timeout's.
pub fn body_timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// Query parameters, parsed field by field so errors name the field.
#[derive(Debug, Default)]
pub struct Params(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
        {
            Ok(q) => Ok(Params(q.0)),
            Err(QueryRejection::FailedToDeserializeQueryString(_)) | Err(_) => {
                Err(ApiError::BadRequest {
                    code: "invalid_query",
                    message: "the query string is malformed".to_owned(),
                })
            }
        }
    }
}

impl Params {
    /// Parameter `name` as a `T`, if present.
    ///
    /// # Errors
    /// 400 naming `name`.
    pub fn get<T: FromStr>(&self, name: &str) -> Result<Option<T>, ApiError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::field(name, "not a valid value")),
        }
    }

    /// Parameter `name` as the ID of a `what`, if present.
    ///
    /// # Errors
    /// 400 naming `name`.
    pub fn id(&self, name: &str, what: &str) -> Result<Option<i64>, ApiError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .map(Some)
                .ok_or_else(|| ApiError::field(name, format!("not a {what} ID"))),
        }
    }

    /// Parameter `name` as a time (RFC 3339, such as `2026-11-30T03:00:00Z`), in Unix
    /// seconds, if present.
    ///
    /// # Errors
    /// 400 naming `name`.
    pub fn time(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.0.get(name) {
            None => Ok(None),
            Some(v) => v
                .parse::<jiff::Timestamp>()
                .map(|t| Some(t.as_second()))
                .map_err(|_| {
                    ApiError::field(name, "an RFC 3339 time such as 2026-11-30T03:00:00Z")
                }),
        }
    }
}

/// The slowest upload limit taken, bytes a second: anything lower is a typo.
pub const MIN_UPLOAD_LIMIT: u64 = 1024;

/// An upload limit as people write it: bytes a second as a number, or a size with an
/// optional `/s` (`"10MiB/s"`, `"500 KB/s"`; units as the `bytesize` crate reads them).
///
/// # Errors
/// 400 naming `field`.
pub fn parse_rate(field: &str, value: &serde_json::Value) -> ApiResult<u64> {
    let bytes = match value {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s
            .trim()
            .trim_end_matches("/s")
            .trim()
            .parse::<bytesize::ByteSize>()
            .ok()
            .map(|b| b.as_u64()),
        _ => None,
    }
    .ok_or_else(|| {
        ApiError::field(
            field,
            "expected bytes a second, as a number or a size such as \"10MiB/s\"",
        )
    })?;
    if bytes < MIN_UPLOAD_LIMIT {
        return Err(ApiError::field(
            field,
            format!("at least {MIN_UPLOAD_LIMIT} bytes a second"),
        ));
    }
    Ok(bytes)
}

/// An ID from a path: our IDs are decimal; anything else names nothing (404).
///
/// # Errors
/// 404 `what`.
pub fn parse_id(text: &str, what: &'static str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or(ApiError::NotFound { what })
}

/// Checks a name people read in a list (a tenant, job, host, backend or token label):
/// as [`check_text`], and no Unicode format or separator characters either, so a name
/// cannot display as something else (`nas1\u{202e}gpj.exe` showing as `nas1exe.jpg`)
/// or hide characters (zero-width spaces, tag characters).
///
/// # Errors
/// 400 naming `field` and the first character refused.
pub fn check_name(field: &str, value: &str, max: usize, required: bool) -> ApiResult<()> {
    check_text(field, value, max, required)?;
    if let Some(c) = value.chars().find(|c| is_deceptive(*c)) {
        return Err(ApiError::field(
            field,
            format!(
                "U+{:04X}: bidirectional, zero-width and other invisible characters are not \
                 allowed",
                u32::from(c)
            ),
        ));
    }
    Ok(())
}

/// Whether `c` changes how text around it displays without showing itself: format
/// characters (bidirectional controls, zero-width joiners, tags), line and paragraph
/// separators, surrogates and private-use characters.
pub fn is_deceptive(c: char) -> bool {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    matches!(
        c.general_category(),
        GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::Surrogate
            | GeneralCategory::PrivateUse
    )
}

/// A log message fit to show on a terminal or a page: control characters other than
/// tab and newline (ESC, NUL, CR, ...) and invisible format characters become U+FFFD,
/// so a line cannot move a cursor, recolour a terminal or hide text.
pub fn clean_log_text(text: &str) -> String {
    text.chars()
        .map(|c| {
            if (c.is_control() && c != '\n' && c != '\t') || is_deceptive(c) {
                char::REPLACEMENT_CHARACTER
            } else {
                c
            }
        })
        .collect()
}

/// Checks an absolute path an agent will act on (a restore target, a backup source):
/// absolute, at most 4096 bytes, no control characters, and no `.` or `..` segment, so
/// the path the operator sees is the path the agent uses.
///
/// # Errors
/// 400 naming `field`.
pub fn check_absolute_path(field: &str, value: &str) -> ApiResult<()> {
    if !value.starts_with('/') || value.len() > 4096 || value.chars().any(char::is_control) {
        return Err(ApiError::field(field, "must be an absolute path"));
    }
    if value.split('/').any(|s| s == ".." || s == ".") {
        return Err(ApiError::field(
            field,
            "must not contain '.' or '..' segments",
        ));
    }
    Ok(())
}

/// Checks a free-text field: length, presence, no control characters.
///
/// # Errors
/// 400 naming `field`.
pub fn check_text(field: &str, value: &str, max: usize, required: bool) -> ApiResult<()> {
    if required && value.is_empty() {
        return Err(ApiError::field(field, "must not be empty"));
    }
    if value.len() > max {
        return Err(ApiError::field(field, format!("longer than {max} bytes")));
    }
    if value.chars().any(char::is_control) {
        return Err(ApiError::field(field, "control characters are not allowed"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refuse_bidirectional_and_invisible_characters() {
        assert!(check_name("name", "nas-1 (Büro)", 100, true).is_ok());
        for bad in [
            "nas1\u{202e}gpj.exe",
            "a\u{200b}b",
            "a\u{2066}b",
            "\u{feff}x",
            "x\u{e0041}",
            "a\u{2028}b",
            "a\u{0}b",
            "a\u{1b}[31mb",
        ] {
            let e = check_name("name", bad, 100, true).unwrap_err();
            assert_eq!(e.status(), axum::http::StatusCode::BAD_REQUEST, "{bad:?}");
            assert!(e.to_string().starts_with("name: "), "{e}");
        }
    }

    #[test]
    fn log_text_keeps_newlines_and_tabs_and_replaces_other_controls() {
        assert_eq!(
            clean_log_text("a\tb\nc\r\n\u{1b}[2J\u{0}\u{202e}z"),
            "a\tb\nc\u{fffd}\n\u{fffd}[2J\u{fffd}\u{fffd}z"
        );
    }

    #[test]
    fn paths_refuse_dot_segments() {
        assert!(check_absolute_path("target", "/srv/restore/x..y").is_ok());
        for bad in ["/srv/../etc", "/srv/..", "/./x", "relative", "/a\nb"] {
            assert!(check_absolute_path("target", bad).is_err(), "{bad:?}");
        }
    }
}
