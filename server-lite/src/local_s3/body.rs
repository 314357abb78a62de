//! Request bodies into storage: streamed from s3s into `LocalStorage::put` on a
//! blocking thread, hashed (MD5 for the ETag, SHA-256 for the checksum) and capped on
//! the way, and refused at their end if they do not match their checksum, so nothing
//! that did not arrive whole and intact is ever renamed into place.

use std::io::{self, Read};
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::StatusCode;
use base64::Engine as _;
use coffer_adapters::storage::{LocalStorage, ObjectKey, PutMode, Storage};
use futures_util::TryStreamExt as _;
use s3s::crypto::{Checksum as _, Md5, Sha256};
use s3s::dto::StreamingBlob;
use s3s::{S3Error, S3ErrorCode, S3Result};
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::store::too_large;
use super::{internal_error, s3_error, MAX_PUT_BYTES};

/// What a body reader learned: size and digests.
#[derive(Default)]
pub(crate) struct BodyInfo {
    pub(crate) len: u64,
    pub(crate) md5_hex: String,
    pub(crate) sha256_b64: String,
}

/// Streams `body` into `key` of `store` (a temporary file, renamed or linked into place
/// only once the whole body arrived and matched `expected`).
///
/// # Errors
/// `BadDigest`, `EntityTooLarge`, `PreconditionFailed` (create-only, the key exists),
/// `KeyConflict`, the caller's body errors; anything else is a 500.
pub(crate) async fn write(
    store: LocalStorage,
    key: ObjectKey,
    body: Option<StreamingBlob>,
    expected: Option<String>,
    mode: PutMode,
) -> S3Result<BodyInfo> {
    let reader: Box<dyn Read + Send> = match body {
        None => Box::new(io::empty()),
        Some(blob) => Box::new(SyncIoBridge::new(StreamReader::new(
            blob.map_err(|e| io::Error::other(BodyError(e))),
        ))),
    };
    let (mut checked, outcome) = CheckedBody::new(reader, expected);
    let result = tokio::task::spawn_blocking(move || store.put(&key, &mut checked, mode))
        .await
        .map_err(internal_error)?;
    let outcome = std::mem::take(&mut *outcome.lock().unwrap_or_else(PoisonError::into_inner));
    match (result, outcome) {
        (Ok(_), Outcome::Read(info)) => Ok(info),
        (Ok(_), _) => Err(internal_error("a put ended before its body did")),
        (Err(_), Outcome::Refused(e)) => Err(e),
        (Err(e), _) => Err(from_put(e)),
    }
}

/// The answer to a failed put into the local store: the caller's conflicts and body
/// failures are 4xx, anything else a 500.
pub(crate) fn from_put(e: coffer_adapters::Error) -> S3Error {
    match e {
        coffer_adapters::Error::AlreadyExists { .. } => S3Error::with_message(
            S3ErrorCode::PreconditionFailed,
            "the key already holds an object",
        ),
        coffer_adapters::Error::KeyConflict { reason, .. } => {
            s3_error("KeyConflict", StatusCode::CONFLICT, reason)
        }
        // The body stopped arriving, the client went away mid-body, or s3s refused
        // the body it was streaming (a wrong `x-amz-content-sha256`, an aws-chunked
        // body that does not verify): the caller's doing, not the server's.
        coffer_adapters::Error::Io { ref source, .. } => {
            match source.get_ref().and_then(|e| e.downcast_ref::<BodyError>()) {
                Some(body) => super::body_error(body).unwrap_or_else(|| {
                    S3Error::with_message(
                        S3ErrorCode::InvalidRequest,
                        format!("the request body was refused: {}", body.0),
                    )
                }),
                None => internal_error(e),
            }
        }
        other => internal_error(other),
    }
}

/// An error of the request body's stream (as opposed to the disk's).
#[derive(Debug)]
struct BodyError(s3s::StdError);

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "request body: {}", self.0)
    }
}

impl std::error::Error for BodyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// How reading a body ended.
#[derive(Default)]
enum Outcome {
    /// Not yet.
    #[default]
    Reading,
    /// Whole, and as expected.
    Read(BodyInfo),
    /// Refused: too large, or not matching its checksum.
    Refused(S3Error),
}

/// Reads a request body for storage: hashes it, caps its length, and fails at the end
/// if it does not match the expected SHA-256, so storage never renames a bad body into
/// place.
pub(crate) struct CheckedBody<R> {
    inner: R,
    md5: Option<Md5>,
    sha: Option<Sha256>,
    len: u64,
    expected_sha256: Option<String>,
    outcome: Arc<Mutex<Outcome>>,
}

impl<R: Read> CheckedBody<R> {
    fn new(inner: R, expected_sha256: Option<String>) -> (Self, Arc<Mutex<Outcome>>) {
        let outcome = Arc::new(Mutex::new(Outcome::Reading));
        (
            CheckedBody {
                inner,
                md5: Some(Md5::new()),
                sha: Some(Sha256::new()),
                len: 0,
                expected_sha256,
                outcome: Arc::clone(&outcome),
            },
            outcome,
        )
    }

    fn end(&self, outcome: Outcome) {
        *self.outcome.lock().unwrap_or_else(PoisonError::into_inner) = outcome;
    }

    fn refuse(&self, e: S3Error) -> io::Error {
        let message = e.message().unwrap_or("refused").to_owned();
        self.end(Outcome::Refused(e));
        io::Error::new(io::ErrorKind::InvalidData, message)
    }
}

impl<R: Read> Read for CheckedBody<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            let (Some(md5), Some(sha)) = (self.md5.take(), self.sha.take()) else {
                return Ok(0); // read to the end before
            };
            let sha = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
            if self.expected_sha256.as_ref().is_some_and(|e| *e != sha) {
                return Err(self.refuse(S3Error::with_message(
                    S3ErrorCode::BadDigest,
                    "the body does not match x-amz-checksum-sha256",
                )));
            }
            self.end(Outcome::Read(BodyInfo {
                len: self.len,
                md5_hex: hex::encode(md5.finalize()),
                sha256_b64: sha,
            }));
            return Ok(0);
        }
        let chunk = buf.get(..n).unwrap_or_default();
        self.len = self.len.saturating_add(n as u64);
        if self.len > MAX_PUT_BYTES {
            return Err(self.refuse(too_large()));
        }
        if let (Some(md5), Some(sha)) = (&mut self.md5, &mut self.sha) {
            md5.update(chunk);
            sha.update(chunk);
        }
        Ok(n)
    }
}
