//! Multipart uploads on the embedded store.
//!
//! Parts are written (temporary file, rename) into the staging folder under
//! `{upload_id}/{part}`, outside the object folder, so no part is ever visible as an
//! object. Completing streams the listed parts, in order, into one put of the object,
//! itself atomic; then the parts are removed. Part metadata (size, MD5 ETag, SHA-256)
//! is in the database.

use std::io::Read;

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use coffer_adapters::storage::{ObjectKey, PutMode, Storage};
use http_body_util::BodyExt;
use md5::{Digest as _, Md5};

use super::{
    blocking_body, checksum_header, create_only, set_header, xml, CheckedBody, S3Error, S3Result,
};
use crate::db::uploads::{self, Part, Upload};
use crate::state::AppState;

/// S3's smallest part, for all but the last.
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
/// The largest `CompleteMultipartUpload` body read.
const MAX_COMPLETE_BODY: usize = 2 * 1024 * 1024;

fn no_such_upload() -> S3Error {
    S3Error::new(
        StatusCode::NOT_FOUND,
        "NoSuchUpload",
        "the upload does not exist (completed, aborted or never created)",
    )
}

async fn find(state: &AppState, key: &ObjectKey, upload_id: &str) -> Result<Upload, S3Error> {
    let (id, bucket, k) = (
        upload_id.to_owned(),
        state.stores.bucket.clone(),
        key.as_str().to_owned(),
    );
    state
        .db
        .call(move |cat| Ok(uploads::get(cat.connection(), &id, &bucket, &k)?))
        .await
        .map_err(S3Error::internal)?
        .ok_or_else(no_such_upload)
}

/// `CreateMultipartUpload`.
pub async fn create(state: &AppState, key: &ObjectKey, headers: &HeaderMap) -> S3Result {
    let checksum = match headers.get("x-amz-checksum-algorithm") {
        None => false,
        Some(v) if v.as_bytes().eq_ignore_ascii_case(b"SHA256") => true,
        Some(_) => {
            return Err(S3Error::new(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "only SHA256 checksums are supported",
            ))
        }
    };
    let upload = Upload {
        id: crate::token::random_hex(16),
        bucket: state.stores.bucket.clone(),
        key: key.as_str().to_owned(),
        checksum,
    };
    let stored = upload.clone();
    state
        .db
        .call(move |cat| Ok(uploads::create(cat.connection(), &stored)?))
        .await
        .map_err(S3Error::internal)?;
    Ok(xml::initiated(&upload.bucket, &upload.key, &upload.id))
}

/// `UploadPart`.
pub async fn upload_part(
    state: &AppState,
    key: &ObjectKey,
    upload_id: &str,
    part_number: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> S3Result {
    let number: u16 = part_number
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=10_000).contains(n))
        .ok_or_else(|| {
            S3Error::new(
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                "partNumber must be from 1 to 10000",
            )
        })?;
    let upload = find(state, key, upload_id).await?;
    let expected = checksum_header(headers)?;
    if upload.checksum && expected.is_none() {
        return Err(S3Error::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "this upload declared SHA256 checksums: the part needs x-amz-checksum-sha256",
        ));
    }
    let part_key = staging_key(&upload.id, number)?;
    let (mut checked, info) = CheckedBody::new(blocking_body(body), expected.clone());
    let staging = state.stores.staging.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        staging.put(&part_key, &mut checked, PutMode::Overwrite)
    })
    .await
    .map_err(S3Error::internal)?;
    let info = std::mem::take(
        &mut *info
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    if let Err(e) = outcome {
        return Err(match info.failure {
            Some((status, code, message)) => S3Error::new(status, code, message),
            None => S3Error::from_put(e),
        });
    }
    let part = Part {
        number,
        size: info.len,
        etag: info.md5_hex.clone(),
        sha256: expected.is_some().then(|| info.sha256_b64.clone()),
    };
    let id = upload.id.clone();
    state
        .db
        .call(move |cat| Ok(uploads::put_part(cat.connection(), &id, &part)?))
        .await
        .map_err(S3Error::internal)?;
    let mut response = StatusCode::OK.into_response();
    set_header(&mut response, "etag", &format!("\"{}\"", info.md5_hex));
    if expected.is_some() {
        set_header(&mut response, "x-amz-checksum-sha256", &info.sha256_b64);
    }
    Ok(response)
}

/// `ListParts`.
pub async fn list_parts(state: &AppState, key: &ObjectKey, upload_id: &str) -> S3Result {
    let upload = find(state, key, upload_id).await?;
    let id = upload.id.clone();
    let parts = state
        .db
        .call(move |cat| Ok(uploads::parts(cat.connection(), &id)?))
        .await
        .map_err(S3Error::internal)?;
    Ok(xml::list_parts(
        &upload.bucket,
        &upload.key,
        &upload.id,
        &parts,
    ))
}

/// `AbortMultipartUpload`.
pub async fn abort(state: &AppState, key: &ObjectKey, upload_id: &str) -> S3Result {
    let upload = find(state, key, upload_id).await?;
    forget(state, &upload.id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `CompleteMultipartUpload`.
pub async fn complete(
    state: &AppState,
    key: &ObjectKey,
    upload_id: &str,
    headers: &HeaderMap,
    body: Body,
) -> S3Result {
    let upload = find(state, key, upload_id).await?;
    let limited = http_body_util::Limited::new(body, MAX_COMPLETE_BODY);
    let bytes = limited
        .collect()
        .await
        .map_err(|_| {
            S3Error::new(
                StatusCode::BAD_REQUEST,
                "MalformedXML",
                "the body is unreadable or larger than 2 MiB",
            )
        })?
        .to_bytes();
    let requested = parse_complete(&bytes)?;
    let id = upload.id.clone();
    let stored = state
        .db
        .call(move |cat| Ok(uploads::parts(cat.connection(), &id)?))
        .await
        .map_err(S3Error::internal)?;
    let chosen = check_parts(&requested, &stored, upload.checksum)?;

    let mode = if create_only(headers) {
        PutMode::CreateOnly
    } else {
        PutMode::Overwrite
    };
    let mut md5 = Md5::new();
    for p in &chosen {
        md5.update(hex::decode(&p.etag).unwrap_or_default());
    }
    let etag = format!("{}-{}", hex::encode(md5.finalize()), chosen.len());
    let files: Vec<std::path::PathBuf> = chosen
        .iter()
        .map(|p| {
            staging_key(&upload.id, p.number).map(|k| state.stores.staging.root().join(k.as_str()))
        })
        .collect::<Result<_, _>>()?;
    let store = state.stores.local.clone();
    let k = key.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut reader = Concat {
            files: files.into_iter(),
            current: None,
        };
        store.put(&k, &mut reader, mode)
    })
    .await
    .map_err(S3Error::internal)?;
    if let Err(e) = outcome {
        return Err(S3Error::from_put(e));
    }
    let size = chosen.iter().map(|p| p.size).sum();
    let meta = uploads::ObjectMeta {
        size,
        etag: etag.clone(),
        sha256: None,
    };
    super::record_meta(state, key, Some(meta)).await?;
    forget(state, &upload.id).await?;
    let location = format!("/s3/{}/{}", upload.bucket, upload.key);
    let mut response = xml::completed(&location, &upload.bucket, &upload.key, &etag);
    set_header(&mut response, "etag", &format!("\"{etag}\""));
    Ok(response)
}

/// Removes an upload's staged parts and its rows.
async fn forget(state: &AppState, upload_id: &str) -> Result<(), S3Error> {
    let dir = state.stores.staging.root().join(upload_id);
    match tokio::fs::remove_dir_all(&dir).await {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(S3Error::internal(e)),
    }
    let id = upload_id.to_owned();
    state
        .db
        .call(move |cat| Ok(uploads::delete(cat.connection(), &id)?))
        .await
        .map_err(S3Error::internal)
}

fn staging_key(upload_id: &str, number: u16) -> Result<ObjectKey, S3Error> {
    ObjectKey::new(format!("{upload_id}/{number:05}")).map_err(S3Error::internal)
}

/// A part named in a `CompleteMultipartUpload` body.
#[derive(Debug, PartialEq, Eq)]
struct Requested {
    number: u16,
    etag: String,
    sha256: Option<String>,
}

fn malformed(message: &'static str) -> S3Error {
    S3Error::new(StatusCode::BAD_REQUEST, "MalformedXML", message)
}

fn parse_complete(bytes: &[u8]) -> Result<Vec<Requested>, S3Error> {
    let text = std::str::from_utf8(bytes).map_err(|_| malformed("the body is not UTF-8"))?;
    let doc = roxmltree::Document::parse(text.trim_start())
        .map_err(|_| malformed("the body is not XML"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "CompleteMultipartUpload" {
        return Err(malformed("expected CompleteMultipartUpload"));
    }
    let child = |n: roxmltree::Node<'_, '_>, name: &str| {
        n.children()
            .find(|c| c.tag_name().name() == name)
            .and_then(|c| c.text())
            .map(str::trim)
            .map(str::to_owned)
    };
    let mut parts = Vec::new();
    for part in root.children().filter(|c| c.tag_name().name() == "Part") {
        let number = child(part, "PartNumber")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| malformed("a Part has no valid PartNumber"))?;
        let etag = child(part, "ETag").ok_or_else(|| malformed("a Part has no ETag"))?;
        parts.push(Requested {
            number,
            etag: etag.trim_matches('"').to_owned(),
            sha256: child(part, "ChecksumSHA256"),
        });
    }
    if parts.is_empty() {
        return Err(malformed("no parts listed"));
    }
    Ok(parts)
}

/// Checks the requested parts against those received, as S3 does: ascending numbers,
/// matching ETags (and checksums), every part but the last at least 5 MiB.
fn check_parts(
    requested: &[Requested],
    stored: &[Part],
    checksum: bool,
) -> Result<Vec<Part>, S3Error> {
    let invalid = |m: &'static str| S3Error::new(StatusCode::BAD_REQUEST, "InvalidPart", m);
    let mut chosen = Vec::with_capacity(requested.len());
    let mut last = 0u16;
    for r in requested {
        if r.number <= last {
            return Err(S3Error::new(
                StatusCode::BAD_REQUEST,
                "InvalidPartOrder",
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
        return Err(S3Error::new(
            StatusCode::BAD_REQUEST,
            "EntityTooSmall",
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

    #[test]
    fn complete_bodies_parse_and_parts_are_checked_like_s3() {
        let body = br#"<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Part><PartNumber>1</PartNumber><ETag>"aa"</ETag></Part><Part><PartNumber>2</PartNumber><ETag>bb</ETag></Part></CompleteMultipartUpload>"#;
        let req = parse_complete(body).unwrap();
        assert_eq!(req.len(), 2);
        assert_eq!(req[0].etag, "aa");
        let stored = [part(1, MIN_PART_BYTES, "aa"), part(2, 1, "bb")];
        assert_eq!(check_parts(&req, &stored, false).unwrap().len(), 2);
        let small = [part(1, 10, "aa"), part(2, 1, "bb")];
        assert_eq!(
            check_parts(&req, &small, false).unwrap_err().code,
            "EntityTooSmall"
        );
        let wrong = [part(1, MIN_PART_BYTES, "ab"), part(2, 1, "bb")];
        assert_eq!(
            check_parts(&req, &wrong, false).unwrap_err().code,
            "InvalidPart"
        );
        let reversed = [
            Requested {
                number: 2,
                etag: "bb".into(),
                sha256: None,
            },
            Requested {
                number: 1,
                etag: "aa".into(),
                sha256: None,
            },
        ];
        assert_eq!(
            check_parts(&reversed, &stored, false).unwrap_err().code,
            "InvalidPartOrder"
        );
        assert!(parse_complete(b"<x/>").is_err());
        assert!(parse_complete(b"<CompleteMultipartUpload/>").is_err());
        assert!(parse_complete(b"not xml").is_err());
    }
}
