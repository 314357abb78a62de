//! Multipart uploads on the embedded store.
//!
//! Parts are written (temporary file, rename) into the staging folder under
//! `{upload_id}/{part}`, outside the object folder, so no part is ever visible as an
//! object. Completing streams the listed parts, in order, into one put of the object,
//! itself atomic (and create-only with `If-None-Match: *`); then the parts are
//! removed. Uploads and their parts' metadata (size, MD5 ETag, SHA-256) are in the
//! database (`db::uploads`), so they survive a restart; the scheduler removes uploads
//! left unfinished for a day.

use std::io::Read;

use coffer_adapters::storage::{ObjectKey, PutMode};
use s3s::crypto::{Checksum as _, Md5};
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, ChecksumAlgorithm,
    CompleteMultipartUploadInput, CompleteMultipartUploadOutput, CreateMultipartUploadInput,
    CreateMultipartUploadOutput, ETag, ListPartsInput, ListPartsOutput, Timestamp, UploadPartInput,
    UploadPartOutput,
};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::body::{from_put, write};
use super::store::{admit, caller, checksum, put_mode, record_meta};
use super::{internal_error, Caller};
use crate::db::uploads::{self, Part, Upload};

/// S3's smallest part, for all but the last.
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
/// S3's largest part number.
const MAX_PARTS: u16 = 10_000;

/// `CreateMultipartUpload`.
pub(crate) async fn create(
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let caller = caller(&req)?;
    let input = req.input;
    let key = admit(&caller, &req.method, &input.bucket, &input.key).await?;
    let checksum = match &input.checksum_algorithm {
        None => false,
        Some(a) if a.as_str().eq_ignore_ascii_case(ChecksumAlgorithm::SHA256) => true,
        Some(_) => {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidRequest,
                "only SHA256 checksums are supported",
            ))
        }
    };
    let upload = Upload {
        id: crate::token::random_hex(16),
        bucket: caller.state.stores.bucket.clone(),
        key: key.as_str().to_owned(),
        checksum,
    };
    let stored = upload.clone();
    caller
        .state
        .db
        .call(move |cat| Ok(uploads::create(cat.connection(), &stored)?))
        .await
        .map_err(|e| internal_error(format!("{e:?}")))?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(upload.bucket),
        key: Some(upload.key),
        upload_id: Some(upload.id),
        checksum_algorithm: checksum
            .then(|| ChecksumAlgorithm::from_static(ChecksumAlgorithm::SHA256)),
        ..Default::default()
    }))
}

/// `UploadPart`.
pub(crate) async fn upload_part(
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let caller = caller(&req)?;
    let input = req.input;
    let key = admit(&caller, &req.method, &input.bucket, &input.key).await?;
    let number = u16::try_from(input.part_number)
        .ok()
        .filter(|n| (1..=MAX_PARTS).contains(n))
        .ok_or_else(|| {
            S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                "partNumber must be from 1 to 10000",
            )
        })?;
    let upload = find(&caller, &key, &input.upload_id).await?;
    let expected = checksum(input.checksum_sha256)?;
    if upload.checksum && expected.is_none() {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            "this upload declared SHA256 checksums: the part needs x-amz-checksum-sha256",
        ));
    }
    let staging = caller.state.stores.staging.clone();
    let part_key = staging_key(&upload.id, number)?;
    let info = write(
        staging,
        part_key,
        input.body,
        expected.clone(),
        PutMode::Overwrite,
    )
    .await?;
    let part = Part {
        number,
        size: info.len,
        etag: info.md5_hex.clone(),
        sha256: expected.is_some().then(|| info.sha256_b64.clone()),
    };
    let id = upload.id;
    caller
        .state
        .db
        .call(move |cat| Ok(uploads::put_part(cat.connection(), &id, &part)?))
        .await
        .map_err(|e| internal_error(format!("{e:?}")))?;
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(ETag::Strong(info.md5_hex)),
        checksum_sha256: expected.map(|_| info.sha256_b64),
        ..Default::default()
    }))
}

/// `ListParts` (never truncated: at most 10 000 parts).
pub(crate) async fn list_parts(
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let caller = caller(&req)?;
    let input = req.input;
    let key = admit(&caller, &req.method, &input.bucket, &input.key).await?;
    let upload = find(&caller, &key, &input.upload_id).await?;
    let stored = parts(&caller, &upload.id).await?;
    // When each part arrived: its staged file's time.
    let root = caller.state.stores.staging.root().to_owned();
    let id = upload.id.clone();
    let listed = tokio::task::spawn_blocking(move || {
        stored
            .into_iter()
            .map(|p| {
                let modified = staging_key(&id, p.number)
                    .ok()
                    .and_then(|k| std::fs::metadata(root.join(k.as_str())).ok())
                    .and_then(|m| m.modified().ok())
                    .unwrap_or(std::time::UNIX_EPOCH);
                s3s::dto::Part {
                    part_number: Some(i32::from(p.number)),
                    e_tag: Some(ETag::Strong(p.etag)),
                    size: Some(i64::try_from(p.size).unwrap_or(i64::MAX)),
                    checksum_sha256: p.sha256,
                    last_modified: Some(Timestamp::from(modified)),
                    ..Default::default()
                }
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(internal_error)?;
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(upload.bucket),
        key: Some(upload.key),
        upload_id: Some(upload.id),
        part_number_marker: Some(0),
        max_parts: Some(i32::from(MAX_PARTS)),
        is_truncated: Some(false),
        checksum_algorithm: upload
            .checksum
            .then(|| ChecksumAlgorithm::from_static(ChecksumAlgorithm::SHA256)),
        parts: Some(listed),
        ..Default::default()
    }))
}

/// `AbortMultipartUpload`.
pub(crate) async fn abort(
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let caller = caller(&req)?;
    let input = req.input;
    let key = admit(&caller, &req.method, &input.bucket, &input.key).await?;
    let upload = find(&caller, &key, &input.upload_id).await?;
    forget(&caller, &upload.id).await?;
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

/// `CompleteMultipartUpload`.
pub(crate) async fn complete(
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let caller = caller(&req)?;
    let input = req.input;
    let key = admit(&caller, &req.method, &input.bucket, &input.key).await?;
    let upload = find(&caller, &key, &input.upload_id).await?;
    let requested = requested_parts(input.multipart_upload)?;
    let stored = parts(&caller, &upload.id).await?;
    let chosen = check_parts(&requested, &stored, upload.checksum)?;

    let mut md5 = Md5::new();
    for p in &chosen {
        md5.update(&hex::decode(&p.etag).unwrap_or_default());
    }
    let etag = format!("{}-{}", hex::encode(md5.finalize()), chosen.len());
    let root = caller.state.stores.staging.root().to_owned();
    let files: Vec<std::path::PathBuf> = chosen
        .iter()
        .map(|p| staging_key(&upload.id, p.number).map(|k| root.join(k.as_str())))
        .collect::<Result<_, _>>()?;
    let store = caller.state.stores.local.clone();
    let mode = put_mode(input.if_none_match.as_ref());
    let k = key.clone();
    tokio::task::spawn_blocking(move || {
        let mut reader = Concat {
            files: files.into_iter(),
            current: None,
        };
        coffer_adapters::storage::Storage::put(&store, &k, &mut reader, mode)
    })
    .await
    .map_err(internal_error)?
    .map_err(from_put)?;
    let meta = uploads::ObjectMeta {
        size: chosen.iter().map(|p| p.size).sum(),
        etag: etag.clone(),
        sha256: None,
    };
    record_meta(&caller, &key, Some(meta)).await?;
    forget(&caller, &upload.id).await?;
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        location: Some(format!("/s3/{}/{}", upload.bucket, upload.key)),
        bucket: Some(upload.bucket),
        key: Some(upload.key),
        e_tag: Some(ETag::Strong(etag)),
        ..Default::default()
    }))
}

fn no_such_upload() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::NoSuchUpload,
        "the upload does not exist (completed, aborted or never created)",
    )
}

async fn find(caller: &Caller, key: &ObjectKey, upload_id: &str) -> S3Result<Upload> {
    let (id, bucket, k) = (
        upload_id.to_owned(),
        caller.state.stores.bucket.clone(),
        key.as_str().to_owned(),
    );
    caller
        .state
        .db
        .call(move |cat| Ok(uploads::get(cat.connection(), &id, &bucket, &k)?))
        .await
        .map_err(|e| internal_error(format!("{e:?}")))?
        .ok_or_else(no_such_upload)
}

async fn parts(caller: &Caller, upload_id: &str) -> S3Result<Vec<Part>> {
    let id = upload_id.to_owned();
    caller
        .state
        .db
        .call(move |cat| Ok(uploads::parts(cat.connection(), &id)?))
        .await
        .map_err(|e| internal_error(format!("{e:?}")))
}

/// Removes an upload's staged parts and its rows.
async fn forget(caller: &Caller, upload_id: &str) -> S3Result<()> {
    let dir = caller.state.stores.staging.root().join(upload_id);
    match tokio::fs::remove_dir_all(&dir).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(internal_error(e)),
    }
    let id = upload_id.to_owned();
    caller
        .state
        .db
        .call(move |cat| Ok(uploads::delete(cat.connection(), &id)?))
        .await
        .map_err(|e| internal_error(format!("{e:?}")))
}

fn staging_key(upload_id: &str, number: u16) -> S3Result<ObjectKey> {
    ObjectKey::new(format!("{upload_id}/{number:05}")).map_err(internal_error)
}

/// A part named in a `CompleteMultipartUpload` body.
#[derive(Debug, PartialEq, Eq)]
struct Requested {
    number: u16,
    etag: String,
    sha256: Option<String>,
}

fn malformed(message: &'static str) -> S3Error {
    S3Error::with_message(S3ErrorCode::MalformedXML, message)
}

fn requested_parts(body: Option<s3s::dto::CompletedMultipartUpload>) -> S3Result<Vec<Requested>> {
    let listed = body.and_then(|b| b.parts).unwrap_or_default();
    if listed.is_empty() {
        return Err(malformed("no parts listed"));
    }
    listed
        .into_iter()
        .map(|p| {
            let number = p
                .part_number
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| malformed("a Part has no valid PartNumber"))?;
            let etag = p.e_tag.ok_or_else(|| malformed("a Part has no ETag"))?;
            Ok(Requested {
                number,
                etag: etag.value().to_owned(),
                sha256: p.checksum_sha256.map(|s| s.trim().to_owned()),
            })
        })
        .collect()
}

/// Checks the requested parts against those received, as S3 does: ascending numbers,
/// matching ETags (and checksums), every part but the last at least 5 MiB.
fn check_parts(requested: &[Requested], stored: &[Part], checksum: bool) -> S3Result<Vec<Part>> {
    let invalid = |m: &'static str| S3Error::with_message(S3ErrorCode::InvalidPart, m);
    let mut chosen = Vec::with_capacity(requested.len());
    let mut last = 0u16;
    for r in requested {
        if r.number <= last {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidPartOrder,
                "parts must be listed in ascending order",
            ));
        }
        last = r.number;
        let part = stored
            .iter()
            .find(|p| p.number == r.number)
            .ok_or_else(|| invalid("a listed part was not uploaded"))?;
        if part.etag != r.etag {
            return Err(invalid("a listed part's ETag does not match"));
        }
        if checksum {
            match (&r.sha256, &part.sha256) {
                (Some(a), Some(b)) if a == b => {}
                (None, Some(_)) => {}
                _ => return Err(invalid("a listed part's checksum does not match")),
            }
        }
        chosen.push(part.clone());
    }
    let count = chosen.len();
    if chosen
        .iter()
        .take(count.saturating_sub(1))
        .any(|p| p.size < MIN_PART_BYTES)
    {
        return Err(S3Error::with_message(
            S3ErrorCode::EntityTooSmall,
            "every part but the last must be at least 5 MiB",
        ));
    }
    Ok(chosen)
}

/// The staged part files, one after another.
struct Concat {
    files: std::vec::IntoIter<std::path::PathBuf>,
    current: Option<std::fs::File>,
}

impl Read for Concat {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.current.is_none() {
                match self.files.next() {
                    Some(path) => self.current = Some(std::fs::File::open(path)?),
                    None => return Ok(0),
                }
            }
            if let Some(file) = &mut self.current {
                let n = file.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.current = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(number: u16, size: u64, etag: &str) -> Part {
        Part {
            number,
            size,
            etag: etag.to_owned(),
            sha256: None,
        }
    }

    fn requested(number: u16, etag: &str) -> Requested {
        Requested {
            number,
            etag: etag.into(),
            sha256: None,
        }
    }

    #[test]
    fn parts_are_checked_like_s3() {
        let req = [requested(1, "aa"), requested(2, "bb")];
        let stored = [part(1, MIN_PART_BYTES, "aa"), part(2, 1, "bb")];
        assert_eq!(check_parts(&req, &stored, false).unwrap().len(), 2);
        let code = |r: S3Result<Vec<Part>>| r.unwrap_err().code().as_str().to_owned();
        let small = [part(1, 10, "aa"), part(2, 1, "bb")];
        assert_eq!(code(check_parts(&req, &small, false)), "EntityTooSmall");
        let wrong = [part(1, MIN_PART_BYTES, "ab"), part(2, 1, "bb")];
        assert_eq!(code(check_parts(&req, &wrong, false)), "InvalidPart");
        let reversed = [requested(2, "bb"), requested(1, "aa")];
        assert_eq!(
            code(check_parts(&reversed, &stored, false)),
            "InvalidPartOrder"
        );
        assert!(requested_parts(None).is_err());
    }
}
