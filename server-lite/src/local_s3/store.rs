//! The store: s3s's `S3` trait over the server's storage folder.
//!
//! Objects are the files of [`Stores::local`](crate::stores::Stores) (writes go through
//! `LocalStorage::put`: a temporary file, fsynced, renamed or, create-only, hard-linked
//! into place). What a file cannot say, the ETag and SHA-256 a put computed, is in the
//! database (`db::uploads::ObjectMeta`). Every operation first admits its request: the
//! bucket, a destination holding the key (or listing prefix) whose agent is not
//! revoked, and a valid [`ObjectKey`].

use std::io;

use axum::http::Method;
use base64::Engine as _;
use coffer_adapters::storage::{ObjectKey, PutMode, Storage};
use s3s::crypto::{Checksum as _, Sha256};
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, ChecksumMode,
    CompleteMultipartUploadInput, CompleteMultipartUploadOutput, CreateMultipartUploadInput,
    CreateMultipartUploadOutput, DeleteObjectInput, DeleteObjectOutput, ETag, ETagCondition,
    GetObjectInput, GetObjectOutput, HeadObjectInput, HeadObjectOutput, ListObjectsV2Input,
    ListObjectsV2Output, ListPartsInput, ListPartsOutput, PutObjectInput, PutObjectOutput,
    StreamingBlob, Timestamp, UploadPartInput, UploadPartOutput,
};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result, S3};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio_util::io::ReaderStream;

use super::{internal_error, Caller, MAX_PUT_BYTES};
use crate::db::audit::{self, AuditEntry, AuditOutcome};
use crate::db::uploads;

/// How much of a file a GET reads at a time.
const READ_CHUNK: usize = 256 * 1024;

/// The embedded store's operations.
pub struct Store;

#[async_trait::async_trait]
impl S3 for Store {
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let caller = caller(&req)?;
        let input = req.input;
        let key = admit(&caller, &req.method, &input.bucket, &input.key).await?;
        let expected = checksum(input.checksum_sha256)?;
        if input
            .content_length
            .is_some_and(|n| u64::try_from(n).map_or(true, |n| n > MAX_PUT_BYTES))
        {
            return Err(too_large());
        }
        let mode = put_mode(input.if_none_match.as_ref());
        let store = caller.state.stores.local.clone();
        let info =
            super::body::write(store, key.clone(), input.body, expected.clone(), mode).await?;
        let meta = uploads::ObjectMeta {
            size: info.len,
            etag: info.md5_hex.clone(),
            sha256: Some(info.sha256_b64.clone()),
        };
        record_meta(&caller, &key, Some(meta)).await?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(info.md5_hex)),
            checksum_sha256: expected.map(|_| info.sha256_b64),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let caller = caller(&req)?;
        let input = req.input;
        let key = admit(&caller, &req.method, &input.bucket, &input.key).await?;
        let Found {
            mut file,
            size,
            modified,
            etag,
            sha256,
        } = find(&caller, &key).await?;
        check_if_match(input.if_match.as_ref(), &etag)?;
        let range = match input.range {
            Some(r) => Some(r.check(size)?),
            None => None,
        };
        let (start, end) = range.as_ref().map_or((0, size), |r| (r.start, r.end));
        file.seek(io::SeekFrom::Start(start))
            .await
            .map_err(internal_error)?;
        let body = ReaderStream::with_capacity(file.take(end - start), READ_CHUNK);
        let whole = range.is_none();
        Ok(S3Response::new(GetObjectOutput {
            body: Some(StreamingBlob::wrap(body)),
            content_length: Some(to_i64(end - start)),
            content_range: range.map(|_| format!("bytes {start}-{}/{size}", end - 1)),
            accept_ranges: Some("bytes".to_owned()),
            e_tag: Some(ETag::Strong(etag)),
            last_modified: modified,
            // A checksum describes the whole object, never a range of it.
            checksum_sha256: sha256
                .filter(|_| whole && wants_checksum(input.checksum_mode.as_ref())),
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let caller = caller(&req)?;
        let input = req.input;
        let key = admit(&caller, &req.method, &input.bucket, &input.key).await?;
        let found = find(&caller, &key).await?;
        check_if_match(input.if_match.as_ref(), &found.etag)?;
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(to_i64(found.size)),
            accept_ranges: Some("bytes".to_owned()),
            e_tag: Some(ETag::Strong(found.etag)),
            last_modified: found.modified,
            checksum_sha256: found
                .sha256
                .filter(|_| wants_checksum(input.checksum_mode.as_ref())),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let caller = caller(&req)?;
        let input = req.input;
        let key = admit(&caller, &req.method, &input.bucket, &input.key).await?;
        let store = caller.state.stores.local.clone();
        let k = key.clone();
        match tokio::task::spawn_blocking(move || store.delete(&k))
            .await
            .map_err(internal_error)?
        {
            Ok(()) => {}
            // A key under an object ("a/b" where "a" is a file) holds nothing to delete.
            Err(coffer_adapters::Error::Io { source, .. })
                if source.kind() == io::ErrorKind::NotADirectory => {}
            Err(e) => return Err(internal_error(e)),
        }
        record_meta(&caller, &key, None).await?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        super::listing::list_objects_v2(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        super::multipart::create(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        super::multipart::upload_part(req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        super::multipart::list_parts(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        super::multipart::complete(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        super::multipart::abort(req).await
    }
}

/// Who sent a request (put there by [`super::handle`]).
pub(crate) fn caller<T>(req: &S3Request<T>) -> S3Result<Caller> {
    req.extensions
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| internal_error("a request reached the store without its caller"))
}

/// Admits a request for `key` in `bucket`: the bucket is this store's, a destination
/// holds the key and its agent is not revoked, and the key is valid.
///
/// # Errors
/// `NoSuchBucket`, `AccessDenied` (audited), `InvalidArgument`.
pub(crate) async fn admit(
    caller: &Caller,
    method: &Method,
    bucket: &str,
    key: &str,
) -> S3Result<ObjectKey> {
    check_bucket(caller, bucket)?;
    // Destination and backend probes (when an S3 backend is this very store) write
    // before any destination holds their prefix: only the exact random key of a probe
    // in flight passes, never a name pattern an agent could presign; so do the
    // server's own writes of a repository being created for a destination not yet
    // recorded (`Stores::creating`).
    let creating = {
        let mut segments = key.splitn(3, '/');
        match (segments.next(), segments.next(), segments.next()) {
            (Some(a), Some(b), Some(_)) => {
                caller.state.stores.creating.contains(&format!("{a}/{b}"))
            }
            _ => false,
        }
    };
    if !caller.state.stores.live_probes.contains(key) && !creating {
        check_destination(caller, bucket, key, method).await?;
    }
    ObjectKey::new(key).map_err(|e| match e {
        coffer_adapters::Error::InvalidKey { reason, .. } => {
            S3Error::with_message(S3ErrorCode::InvalidArgument, reason)
        }
        _ => S3Error::with_message(S3ErrorCode::InvalidArgument, "invalid key"),
    })
}

pub(crate) fn check_bucket(caller: &Caller, bucket: &str) -> S3Result<()> {
    if bucket == caller.state.stores.bucket {
        Ok(())
    } else {
        Err(s3s::s3_error!(NoSuchBucket))
    }
}

/// Refuses a request whose key (or listing prefix) is under no destination, or under
/// the destination of a revoked agent (audited as denied) unless it reads while a live
/// agent runs a restore or verify of that destination (the URLs of such a run are
/// signed for reads only).
pub(crate) async fn check_destination(
    caller: &Caller,
    bucket: &str,
    key: &str,
    method: &Method,
) -> S3Result<()> {
    let state = &caller.state;
    let mut segments = key.splitn(3, '/');
    let prefix = match (segments.next(), segments.next(), segments.next()) {
        (Some(a), Some(b), Some(_)) => format!("{a}/{b}"),
        _ => String::new(),
    };
    let (b, p) = (bucket.to_owned(), prefix);
    let found = state
        .db
        .call(move |cat| {
            use coffer_adapters::catalogue::rusqlite::OptionalExtension;
            Ok(cat
                .connection()
                .query_row(
                    // A revoked agent's destination is still read by a restore or
                    // verify of its restore points that a live agent is running.
                    "SELECT d.tenant_id, a.revoked_at,
                            EXISTS (SELECT 1 FROM runs r JOIN agents b ON b.id = r.agent_id
                                    WHERE r.destination_id = d.id AND r.status = 'running'
                                      AND r.kind IN ('restore', 'verify')
                                      AND b.revoked_at IS NULL)
                     FROM destinations d
                     JOIN agents a ON a.id = d.agent_id
                     WHERE d.bucket = ?1 AND d.prefix = ?2 AND d.deleted_at IS NULL",
                    (b, p),
                    |row| {
                        Ok((
                            row.get::<_, i64>(0)?,
                            row.get::<_, Option<i64>>(1)?,
                            row.get::<_, bool>(2)?,
                        ))
                    },
                )
                .optional()?)
        })
        .await
        .map_err(|e| internal_error(format!("{e:?}")))?;
    let reads = matches!(*method, Method::GET | Method::HEAD);
    let refusal = match found {
        Some((_, None, _)) => return Ok(()),
        Some((_, Some(_), true)) if reads => return Ok(()),
        Some((tenant, Some(_), _)) => (Some(tenant), "the destination's agent is revoked"),
        None => (None, "the key is under no destination"),
    };
    let denied = || S3Error::with_message(S3ErrorCode::AccessDenied, refusal.1);
    // A revoked agent retrying its URLs is refused each time, but audited only until
    // its address runs out of quota.
    if crate::auth::check_blocked(state, caller.ip).is_err() {
        return Err(denied());
    }
    crate::auth::count_failure(state, caller.ip);
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
    Err(denied())
}

/// An object found on disk, with what the database recorded about it.
struct Found {
    file: tokio::fs::File,
    size: u64,
    modified: Option<Timestamp>,
    etag: String,
    sha256: Option<String>,
}

async fn find(caller: &Caller, key: &ObjectKey) -> S3Result<Found> {
    let state = &caller.state;
    let path = state.stores.local.root().join(key.as_str());
    let file = match tokio::fs::File::open(&path).await {
        Ok(f) => f,
        // A key under an object ("a/b" where "a" is a file) names nothing either.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Err(s3s::s3_error!(NoSuchKey))
        }
        Err(e) => return Err(internal_error(e)),
    };
    let meta = file.metadata().await.map_err(internal_error)?;
    if !meta.is_file() {
        return Err(s3s::s3_error!(NoSuchKey));
    }
    let (bucket, k) = (state.stores.bucket.clone(), key.as_str().to_owned());
    let recorded = state
        .db
        .read(move |conn| Ok(uploads::meta(conn, &bucket, &k)?))
        .await
        .map_err(|e| internal_error(format!("{e:?}")))?
        .filter(|m| m.size == meta.len());
    let (etag, sha256) = match recorded {
        Some(m) => (m.etag, m.sha256),
        None => (file_etag(&meta), None),
    };
    Ok(Found {
        file,
        size: meta.len(),
        modified: meta.modified().ok().map(Timestamp::from),
        etag,
        sha256,
    })
}

/// An opaque ETag for a file the database knows nothing of: its size and modification
/// time.
pub(crate) fn file_etag(meta: &std::fs::Metadata) -> String {
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let digest = Sha256::checksum(format!("{}:{modified}", meta.len()).as_bytes());
    hex::encode(digest.as_ref().get(..16).unwrap_or_default())
}

fn check_if_match(condition: Option<&ETagCondition>, etag: &str) -> S3Result<()> {
    match condition {
        Some(ETagCondition::ETag(want)) if want.value() != etag => Err(S3Error::with_message(
            S3ErrorCode::PreconditionFailed,
            "the object's ETag does not match If-Match",
        )),
        _ => Ok(()),
    }
}

fn wants_checksum(mode: Option<&ChecksumMode>) -> bool {
    mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED))
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn too_large() -> S3Error {
    S3Error::with_message(S3ErrorCode::EntityTooLarge, "the body is larger than 5 GiB")
}

/// Create-only for `If-None-Match: *`; other conditions are not supported on puts and
/// are ignored, as before.
pub(crate) fn put_mode(condition: Option<&ETagCondition>) -> PutMode {
    if condition.is_some_and(ETagCondition::is_any) {
        PutMode::CreateOnly
    } else {
        PutMode::Overwrite
    }
}

/// The `x-amz-checksum-sha256` value, checked for form.
pub(crate) fn checksum(value: Option<String>) -> S3Result<Option<String>> {
    match value {
        None => Ok(None),
        Some(text) => {
            let ok = base64::engine::general_purpose::STANDARD
                .decode(&text)
                .is_ok_and(|d| d.len() == 32);
            if ok {
                Ok(Some(text))
            } else {
                Err(S3Error::with_message(
                    S3ErrorCode::InvalidRequest,
                    "x-amz-checksum-sha256 is not a base64 SHA-256",
                ))
            }
        }
    }
}

/// Records an object's metadata after it is in place (`None`: after a delete).
pub(crate) async fn record_meta(
    caller: &Caller,
    key: &ObjectKey,
    meta: Option<uploads::ObjectMeta>,
) -> S3Result<()> {
    let state = &caller.state;
    let (bucket, k) = (state.stores.bucket.clone(), key.as_str().to_owned());
    state
        .db
        .call(move |cat| match &meta {
            Some(m) => Ok(uploads::put_meta(cat.connection(), &bucket, &k, m)?),
            None => Ok(uploads::delete_meta(cat.connection(), &bucket, &k)?),
        })
        .await
        .map_err(|e| internal_error(format!("{e:?}")))
}
