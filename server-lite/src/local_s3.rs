//! The embedded store's S3 endpoint: `/s3/{bucket}/{key...}`, answering the pre-signed
//! URLs the server hands agents when no S3 service is configured.
//!
//! Every request must carry a valid signature ([`sigv4`]); the server signs only keys
//! under the asking agent's destination, so the signature is also the scope check: a
//! URL moved to another key, method or query no longer matches. Supported: `PutObject`
//! (streamed to a temporary file and renamed: nothing partial is ever visible;
//! `If-None-Match: *`; `x-amz-checksum-sha256` checked before the rename),
//! `GetObject` (with `Range`), `HeadObject`, `DeleteObject`, and multipart uploads
//! ([`multipart`]). Errors are S3's XML.

pub mod multipart;
pub mod sigv4;
pub mod xml;

use std::io::{self, Read};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use coffer_adapters::storage::{ObjectKey, PutMode, Storage};
use futures_util::TryStreamExt;
use md5::{Digest as _, Md5};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::{ReaderStream, StreamReader, SyncIoBridge};

use crate::auth::ClientIp;
use crate::db::audit::{self, AuditEntry, AuditOutcome};
use crate::db::uploads;
use crate::state::AppState;

/// Where backend probes write (see `stores::probe`).
pub const PROBE_PREFIX: &str = "coffer-probe/";
/// How probe objects' names start (see `stores::probe`).
pub const PROBE_NAME: &str = ".probe-";

/// The largest object a single `PutObject` (or part) may carry: S3's limit.
pub const MAX_PUT_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// Answers one request to the embedded store.
pub async fn handle(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some((bucket, key)) = split_path(uri.path()) else {
        return xml::error(
            StatusCode::BAD_REQUEST,
            "InvalidURI",
            "expected /s3/{bucket}/{key}",
        );
    };
    // A valid signature passes even from an address over its failure quota (the agent
    // beside a guesser keeps working). A bad one counts against the address like a
    // failed login, and is not audited: it names no one, and its path is the caller's
    // invention (it would let anyone write into a tenant's log).
    if let Err(refusal) =
        state
            .stores
            .signer
            .verify(&method, &uri, &headers, jiff::Timestamp::now())
    {
        if let Err(crate::error::ApiError::RateLimited { retry_after }) =
            crate::auth::check_blocked(&state, ip)
        {
            let mut response = xml::error(
                StatusCode::SERVICE_UNAVAILABLE,
                "SlowDown",
                "too many refused requests",
            );
            set_header(&mut response, "retry-after", &retry_after.to_string());
            return response;
        }
        crate::auth::count_failure(&state, ip);
        tracing::debug!(%ip, code = refusal.code(), "embedded store: unsigned or badly signed request refused");
        return xml::error(StatusCode::FORBIDDEN, refusal.code(), refusal.message());
    }
    if bucket != state.stores.bucket {
        return xml::error(StatusCode::NOT_FOUND, "NoSuchBucket", "no such bucket");
    }
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    // `ListObjectsV2` is a GET of the bucket itself; its signed prefix is the scope.
    let listing = key.is_empty() && method == Method::GET;
    let scope = if listing {
        if param("list-type").as_deref() != Some("2") {
            return xml::error(
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                "only ListObjectsV2 (list-type=2) lists",
            );
        }
        param("prefix").unwrap_or_default()
    } else {
        key.clone()
    };
    // The server signs only keys under a destination's prefix; check it still holds
    // one whose agent is not revoked, so a revoked agent's URLs stop working at once.
    if let Err(response) = check_destination(&state, ip, &bucket, &scope, &method).await {
        return response;
    }
    if listing {
        return list_objects(
            &state,
            &bucket,
            &scope,
            param("continuation-token"),
            param("max-keys"),
        )
        .await
        .unwrap_or_else(S3Error::into_response);
    }
    let key = match ObjectKey::new(key) {
        Ok(k) => k,
        Err(coffer_adapters::Error::InvalidKey { reason, .. }) => {
            return xml::error(StatusCode::BAD_REQUEST, "InvalidArgument", reason)
        }
        Err(_) => return xml::error(StatusCode::BAD_REQUEST, "InvalidArgument", "invalid key"),
    };
    let has = |name: &str| query.iter().any(|(k, _)| k == name);
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let upload_id = get("uploadId");
    let result = match (&method, upload_id) {
        (&Method::PUT, Some(upload)) => {
            multipart::upload_part(&state, &key, &upload, get("partNumber"), &headers, body).await
        }
        (&Method::PUT, None) => put_object(&state, &key, &headers, body).await,
        (&Method::GET, Some(upload)) => multipart::list_parts(&state, &key, &upload).await,
        (&Method::GET, None) => get_object(&state, &key, &headers, false).await,
        (&Method::HEAD, None) => get_object(&state, &key, &headers, true).await,
        (&Method::DELETE, Some(upload)) => multipart::abort(&state, &key, &upload).await,
        (&Method::DELETE, None) => delete_object(&state, &key).await,
        (&Method::POST, None) if has("uploads") => multipart::create(&state, &key, &headers).await,
        (&Method::POST, Some(upload)) => {
            multipart::complete(&state, &key, &upload, &headers, body).await
        }
        _ => Err(S3Error::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "this method is not supported here",
        )),
    };
    result.unwrap_or_else(S3Error::into_response)
}

/// `ListObjectsV2`: the objects under `prefix`, in key order, a page of `max_keys`
/// (at most 1,000) after the continuation token (the last key of the page before).
async fn list_objects(
    state: &AppState,
    bucket: &str,
    prefix: &str,
    token: Option<String>,
    max_keys: Option<String>,
) -> Result<Response, S3Error> {
    let max: usize = match max_keys.as_deref().map(str::parse) {
        None => 1000,
        Some(Ok(n)) if (1..=1000).contains(&n) => n,
        Some(_) => {
            return Err(S3Error::new(
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                "max-keys must be from 1 to 1000",
            ))
        }
    };
    let local = state.stores.local.clone();
    let listed_prefix = prefix.to_owned();
    let objects = tokio::task::spawn_blocking(move || local.list(&listed_prefix))
        .await
        .map_err(S3Error::internal)?
        .map_err(S3Error::internal)?;
    let after: Vec<_> = objects
        .into_iter()
        .filter(|o| token.as_deref().is_none_or(|t| o.key.as_str() > t))
        .collect();
    let truncated = after.len() > max;
    let page = &after[..after.len().min(max)];
    let mut body = format!(
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>{}</Name>\
         <Prefix>{}</Prefix><KeyCount>{}</KeyCount><MaxKeys>{max}</MaxKeys>\
         <IsTruncated>{truncated}</IsTruncated>",
        xml::escape(bucket),
        xml::escape(prefix),
        page.len()
    );
    for o in page {
        body.push_str(&format!(
            "<Contents><Key>{}</Key><Size>{}</Size></Contents>",
            xml::escape(o.key.as_str()),
            o.size
        ));
    }
    if let (true, Some(last)) = (truncated, page.last()) {
        body.push_str(&format!(
            "<NextContinuationToken>{}</NextContinuationToken>",
            xml::escape(last.key.as_str())
        ));
    }
    body.push_str("</ListBucketResult>");
    Ok(xml::xml(StatusCode::OK, body))
}

/// Refuses a request whose key is under no destination, or under the destination of
/// a revoked agent (audited as denied).
async fn check_destination(
    state: &AppState,
    ip: std::net::IpAddr,
    bucket: &str,
    key: &str,
    method: &Method,
) -> Result<(), Response> {
    let mut segments = key.splitn(3, '/');
    let prefix = match (segments.next(), segments.next(), segments.next()) {
        (Some(a), Some(b), Some(_)) => format!("{a}/{b}"),
        _ => String::new(),
    };
    // Destination and backend probes (when an S3 backend is this very store) write
    // before any destination holds their prefix: only the exact random key of a probe
    // in flight passes, never a name pattern an agent could presign.
    if state.stores.live_probes.contains(key) || state.stores.creating.contains(&prefix) {
        return Ok(());
    }
    let (b, p) = (bucket.to_owned(), prefix.clone());
    let found = state
        .db
        .call(move |cat| {
            use coffer_adapters::catalogue::rusqlite::OptionalExtension;
            Ok(cat
                .connection()
                .query_row(
                    "SELECT d.tenant_id, a.revoked_at FROM destinations d
                     JOIN agents a ON a.id = d.agent_id
                     WHERE d.bucket = ?1 AND d.prefix = ?2",
                    (b, p),
                    |row| Ok((row.get::<_, i64>(0)?, row.get::<_, Option<i64>>(1)?)),
                )
                .optional()?)
        })
        .await
        .map_err(|e| S3Error::internal(format!("{e:?}")).into_response())?;
    let refusal = match found {
        Some((_, None)) => return Ok(()),
        Some((tenant, Some(_))) => (Some(tenant), "the destination's agent is revoked"),
        None => (None, "the key is under no destination"),
    };
    // A revoked agent retrying its URLs is refused each time, but audited only until
    // its address runs out of quota.
    if crate::auth::check_blocked(state, ip).is_err() {
        return Err(xml::error(StatusCode::FORBIDDEN, "AccessDenied", refusal.1));
    }
    crate::auth::count_failure(state, ip);
    let entry = AuditEntry {
        tenant_id: refusal.0,
        actor: "anonymous".to_owned(),
        action: "s3.request",
        target: format!("s3:{bucket}/{key}"),
        outcome: AuditOutcome::Denied,
        detail: format!("{method}: {}", refusal.1),
    };
    let _ = state
        .db
        .call(move |cat| Ok(audit::record(cat.connection(), &entry)?))
        .await;
    Err(xml::error(StatusCode::FORBIDDEN, "AccessDenied", refusal.1))
}

/// An S3 error answer, with the detail for the log kept apart.
#[derive(Debug)]
pub struct S3Error {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl S3Error {
    /// An error to send as it is.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        S3Error {
            status,
            code,
            message: message.into(),
        }
    }

    /// A 500 whose detail is only logged.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        let incident = crate::token::incident_id();
        tracing::error!(incident = %incident, "embedded store: {detail}");
        S3Error::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("internal error (incident {incident})"),
        )
    }
}

impl S3Error {
    /// The answer to a failed put into the local store: the caller's conflicts are
    /// 4xx, anything else a 500.
    pub(crate) fn from_put(e: coffer_adapters::Error) -> Self {
        match e {
            coffer_adapters::Error::AlreadyExists { .. } => S3Error::new(
                StatusCode::PRECONDITION_FAILED,
                "PreconditionFailed",
                "the key already holds an object",
            ),
            coffer_adapters::Error::KeyConflict { reason, .. } => {
                S3Error::new(StatusCode::CONFLICT, "KeyConflict", reason)
            }
            // The body stopped arriving, or the client went away mid-body: the
            // caller's doing, not the server's.
            coffer_adapters::Error::Io { ref source, .. }
                if crate::extract::body_timed_out(source) =>
            {
                S3Error::new(
                    StatusCode::BAD_REQUEST,
                    "RequestTimeout",
                    "the request body stopped arriving",
                )
            }
            coffer_adapters::Error::Io { ref source, .. } if body_broken(source) => S3Error::new(
                StatusCode::BAD_REQUEST,
                "IncompleteBody",
                "the request body ended before its declared length",
            ),
            other => S3Error::internal(other),
        }
    }
}

/// Whether an I/O error came from the client's body (hyper's), not from the disk.
fn body_broken(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<hyper::Error>() {
            return true;
        }
        next = e.source();
    }
    false
}

impl IntoResponse for S3Error {
    fn into_response(self) -> Response {
        xml::error(self.status, self.code, &self.message)
    }
}

type S3Result = Result<Response, S3Error>;

/// `/s3/{bucket}/{key...}` → (bucket, percent-decoded key).
fn split_path(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix("/s3/")?;
    let (bucket, key) = rest.split_once('/')?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .ok()
            .map(|c| c.into_owned())
    };
    Some((decode(bucket)?, decode(key)?))
}

/// What a body reader learned: sizes and digests, and why it failed, if it did.
#[derive(Default)]
pub(crate) struct BodyInfo {
    pub(crate) len: u64,
    pub(crate) md5_hex: String,
    pub(crate) sha256_b64: String,
    pub(crate) failure: Option<(StatusCode, &'static str, &'static str)>,
}

/// Reads a request body for storage: hashes it, caps its length, and fails at the end
/// if it does not match the expected SHA-256, so storage never renames a bad body into
/// place.
pub(crate) struct CheckedBody<R> {
    inner: R,
    md5: Md5,
    sha: Sha256,
    len: u64,
    expected_sha256: Option<String>,
    info: Arc<Mutex<BodyInfo>>,
}

impl<R: Read> CheckedBody<R> {
    pub(crate) fn new(inner: R, expected_sha256: Option<String>) -> (Self, Arc<Mutex<BodyInfo>>) {
        let info = Arc::new(Mutex::new(BodyInfo::default()));
        (
            CheckedBody {
                inner,
                md5: Md5::new(),
                sha: Sha256::new(),
                len: 0,
                expected_sha256,
                info: Arc::clone(&info),
            },
            info,
        )
    }

    fn fail(&self, failure: (StatusCode, &'static str, &'static str)) -> io::Error {
        self.info
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failure = Some(failure);
        io::Error::new(io::ErrorKind::InvalidData, failure.2)
    }
}

impl<R: Read> Read for CheckedBody<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            let sha = base64::engine::general_purpose::STANDARD.encode(self.sha.clone().finalize());
            if let Some(expected) = &self.expected_sha256 {
                if *expected != sha {
                    return Err(self.fail((
                        StatusCode::BAD_REQUEST,
                        "BadDigest",
                        "the body does not match x-amz-checksum-sha256",
                    )));
                }
            }
            let mut info = self.info.lock().unwrap_or_else(PoisonError::into_inner);
            info.len = self.len;
            info.md5_hex = hex::encode(self.md5.clone().finalize());
            info.sha256_b64 = sha;
            return Ok(0);
        }
        let chunk = buf.get(..n).unwrap_or_default();
        self.len = self.len.saturating_add(n as u64);
        if self.len > MAX_PUT_BYTES {
            return Err(self.fail((
                StatusCode::BAD_REQUEST,
                "EntityTooLarge",
                "the body is larger than 5 GiB",
            )));
        }
        self.md5.update(chunk);
        self.sha.update(chunk);
        Ok(n)
    }
}

/// The request body as a blocking reader (for `spawn_blocking`).
pub(crate) fn blocking_body(body: Body) -> SyncIoBridge<impl tokio::io::AsyncRead + Unpin> {
    let stream = body.into_data_stream().map_err(io::Error::other);
    SyncIoBridge::new(StreamReader::new(stream))
}

/// The checksum header, if any, checked for form.
pub(crate) fn checksum_header(headers: &HeaderMap) -> Result<Option<String>, S3Error> {
    match headers.get("x-amz-checksum-sha256") {
        None => Ok(None),
        Some(v) => {
            let text = v.to_str().unwrap_or_default();
            let ok = base64::engine::general_purpose::STANDARD
                .decode(text)
                .is_ok_and(|d| d.len() == 32);
            if ok {
                Ok(Some(text.to_owned()))
            } else {
                Err(S3Error::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequest",
                    "x-amz-checksum-sha256 is not a base64 SHA-256",
                ))
            }
        }
    }
}

/// Whether the request asks for create-only (`If-None-Match: *`).
pub(crate) fn create_only(headers: &HeaderMap) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == b"*")
}

async fn put_object(
    state: &AppState,
    key: &ObjectKey,
    headers: &HeaderMap,
    body: Body,
) -> S3Result {
    let expected = checksum_header(headers)?;
    let mode = if create_only(headers) {
        PutMode::CreateOnly
    } else {
        PutMode::Overwrite
    };
    let reader = blocking_body(body);
    let (mut checked, info) = CheckedBody::new(reader, expected.clone());
    let store = state.stores.local.clone();
    let k = key.clone();
    let outcome = tokio::task::spawn_blocking(move || store.put(&k, &mut checked, mode))
        .await
        .map_err(S3Error::internal)?;
    let info = std::mem::take(&mut *info.lock().unwrap_or_else(PoisonError::into_inner));
    match outcome {
        Ok(_) => {
            let meta = uploads::ObjectMeta {
                size: info.len,
                etag: info.md5_hex.clone(),
                sha256: Some(info.sha256_b64.clone()),
            };
            record_meta(state, key, Some(meta)).await?;
            let mut response = StatusCode::OK.into_response();
            set_header(&mut response, "etag", &format!("\"{}\"", info.md5_hex));
            if expected.is_some() {
                set_header(&mut response, "x-amz-checksum-sha256", &info.sha256_b64);
            }
            Ok(response)
        }
        Err(e) => Err(match info.failure {
            Some((status, code, message)) => S3Error::new(status, code, message),
            // A client that stops sending mid-body ends here too: log it, say little.
            None => S3Error::from_put(e),
        }),
    }
}

pub(crate) fn set_header(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, v);
    }
}

/// An opaque ETag for a stored file: its size and modification time (the embedded
/// store does not keep content digests beside objects).
fn file_etag(meta: &std::fs::Metadata) -> String {
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let digest = Sha256::digest(format!("{}:{modified}", meta.len()).as_bytes());
    hex::encode(&digest[..16])
}

/// Parses `bytes=a-b`, `bytes=a-` or `bytes=-n` against an object of `size` bytes into
/// a half-open range; `Err` if unsatisfiable, `Ok(None)` if absent or not a byte range.
fn parse_range(value: Option<&str>, size: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // multiple ranges: answer the whole object, as S3 does
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().map_err(|_| ())?;
            if n == 0 {
                return Err(());
            }
            (size.saturating_sub(n), size)
        }
        (a, "") => (a.parse().map_err(|_| ())?, size),
        (a, b) => {
            let a: u64 = a.parse().map_err(|_| ())?;
            let b: u64 = b.parse().map_err(|_| ())?;
            if b < a {
                return Ok(None);
            }
            (a, b.saturating_add(1).min(size))
        }
    };
    if start >= size {
        return Err(());
    }
    Ok(Some((start, end)))
}

async fn get_object(
    state: &AppState,
    key: &ObjectKey,
    headers: &HeaderMap,
    head: bool,
) -> S3Result {
    let path = state.stores.local.root().join(key.as_str());
    let not_found = || S3Error::new(StatusCode::NOT_FOUND, "NoSuchKey", "no such key");
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        // A key under an object ("a/b" where "a" is a file) names nothing either.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Err(not_found())
        }
        Err(e) => return Err(S3Error::internal(e)),
    };
    let meta = file.metadata().await.map_err(S3Error::internal)?;
    if !meta.is_file() {
        return Err(not_found());
    }
    let size = meta.len();
    let (bucket, k) = (state.stores.bucket.clone(), key.as_str().to_owned());
    let recorded = state
        .db
        .read(move |conn| Ok(uploads::meta(conn, &bucket, &k)?))
        .await
        .map_err(|e| S3Error::internal(format!("{e:?}")))?
        .filter(|m| m.size == meta.len());
    let etag = recorded
        .as_ref()
        .map_or_else(|| file_etag(&meta), |m| m.etag.clone());
    if let Some(want) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) {
        if want.trim().trim_matches('"') != etag {
            return Err(S3Error::new(
                StatusCode::PRECONDITION_FAILED,
                "PreconditionFailed",
                "the object's ETag does not match If-Match",
            ));
        }
    }
    let range = if head {
        None
    } else {
        parse_range(
            headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
            size,
        )
        .map_err(|()| {
            S3Error::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "InvalidRange",
                "the requested range is not satisfiable",
            )
        })?
    };
    let (status, start, end) = match range {
        Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e),
        None => (StatusCode::OK, 0, size),
    };
    let body = if head {
        Body::empty()
    } else {
        file.seek(io::SeekFrom::Start(start))
            .await
            .map_err(S3Error::internal)?;
        Body::from_stream(ReaderStream::new(file.take(end - start)))
    };
    let mut response = (status, body).into_response();
    set_header(&mut response, "etag", &format!("\"{etag}\""));
    set_header(&mut response, "accept-ranges", "bytes");
    if let Some(sum) = recorded.and_then(|m| m.sha256) {
        if status == StatusCode::OK {
            set_header(&mut response, "x-amz-checksum-sha256", &sum);
        }
    }
    set_header(&mut response, "content-length", &(end - start).to_string());
    if status == StatusCode::PARTIAL_CONTENT {
        set_header(
            &mut response,
            "content-range",
            &format!("bytes {start}-{}/{size}", end.saturating_sub(1)),
        );
    }
    Ok(response)
}

async fn delete_object(state: &AppState, key: &ObjectKey) -> S3Result {
    let store = state.stores.local.clone();
    let k = key.clone();
    tokio::task::spawn_blocking(move || store.delete(&k))
        .await
        .map_err(S3Error::internal)?
        .map_err(S3Error::internal)?;
    record_meta(state, key, None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Records an object's metadata after it is in place (`None`: after a delete).
pub(crate) async fn record_meta(
    state: &AppState,
    key: &ObjectKey,
    meta: Option<uploads::ObjectMeta>,
) -> Result<(), S3Error> {
    let (bucket, k) = (state.stores.bucket.clone(), key.as_str().to_owned());
    state
        .db
        .call(move |cat| match &meta {
            Some(m) => Ok(uploads::put_meta(cat.connection(), &bucket, &k, m)?),
            None => Ok(uploads::delete_meta(cat.connection(), &bucket, &k)?),
        })
        .await
        .map_err(|e| S3Error::internal(format!("{e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_like_s3() {
        assert_eq!(parse_range(None, 10), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-4"), 10), Ok(Some((0, 5))));
        assert_eq!(parse_range(Some("bytes=5-"), 10), Ok(Some((5, 10))));
        assert_eq!(parse_range(Some("bytes=-3"), 10), Ok(Some((7, 10))));
        assert_eq!(parse_range(Some("bytes=8-100"), 10), Ok(Some((8, 10))));
        assert_eq!(parse_range(Some("bytes=10-"), 10), Err(()));
        assert_eq!(parse_range(Some("bytes=x-"), 10), Err(()));
        assert_eq!(parse_range(Some("items=0-1"), 10), Ok(None));
    }

    #[test]
    fn paths_split_into_bucket_and_decoded_key() {
        assert_eq!(
            split_path("/s3/coffer/t1/a%20b/c"),
            Some(("coffer".to_owned(), "t1/a b/c".to_owned()))
        );
        assert_eq!(split_path("/s3/coffer"), None);
        assert_eq!(split_path("/other/x/y"), None);
    }
}
