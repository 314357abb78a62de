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
        _ => ApiError::BadRequest {
            code: "bad_body",
            message: "the body could not be read".to_owned(),
        },
    }
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
