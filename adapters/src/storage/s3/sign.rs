//! Who signs an [`S3Storage`](super::S3Storage)'s requests: its own credentials
//! ([`sign_own`], also behind [`S3Storage::presign`](super::S3Storage::presign)), or
//! someone else holding them ([`Signer`]): an agent's storage has no credentials and
//! asks the server to sign each request, with the same operations as the server's
//! pre-signed URLs.

use std::fmt;
use std::time::Duration;

use rusty_s3::{Bucket, Credentials, S3Action};
use url::Url;

use super::{invalid, is_sha256_base64, MAX_PARTS};
use crate::storage::ObjectKey;
use crate::Error;

/// Signs the requests of an [`S3Storage`](super::S3Storage) made with
/// [`S3Storage::with_signer`](super::S3Storage::with_signer), for a client that holds
/// no storage credentials. An agent implements it by asking its server, which answers
/// with [`S3Storage::presign`](super::S3Storage::presign) on its own storage.
///
/// An error marked transient ([`Error::Backend`] with `transient: true`, e.g. the
/// server was unreachable) is retried like a failed request; any other ends the
/// operation.
pub trait Signer: Send + Sync {
    /// A signed request for `op` on `key`.
    ///
    /// # Errors
    /// Whatever kept the request from being signed.
    fn sign(&self, op: PresignOp<'_>, key: &ObjectKey) -> Result<PresignedRequest, Error>;
}

/// What a pre-signed URL lets its holder do (see [`S3Storage::presign`](super::S3Storage::presign) and the module
/// documentation for the multipart sequence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PresignOp<'a> {
    /// Read the object (a `Range` header may be added).
    Get,
    /// Read the object's size and ETag.
    Head,
    /// Delete the object.
    Delete,
    /// Store one object of at most 5 GiB in one request.
    Put {
        /// Refuse (412) if the key already holds an object.
        create_only: bool,
        /// If set, the URL works only for a body with this SHA-256 ([`checksum_sha256`](super::checksum_sha256)).
        checksum_sha256: Option<&'a str>,
    },
    /// Start a multipart upload; the answer holds the upload ID ([`parse_upload_id`](super::parse_upload_id)).
    CreateMultipartUpload {
        /// Declare SHA-256 part checksums: every part must then carry one.
        checksum_sha256: bool,
    },
    /// Upload one part.
    UploadPart {
        /// The upload.
        upload_id: &'a str,
        /// 1 to 10 000.
        part_number: u16,
        /// The part's SHA-256 ([`checksum_sha256`](super::checksum_sha256)); required if the upload was created
        /// with checksums.
        checksum_sha256: Option<&'a str>,
    },
    /// List the parts uploaded so far.
    ListParts {
        /// The upload.
        upload_id: &'a str,
    },
    /// Assemble the parts into the object (the body is [`complete_multipart_body`](super::complete_multipart_body)).
    CompleteMultipartUpload {
        /// The upload.
        upload_id: &'a str,
        /// Refuse (412) if the key already holds an object.
        create_only: bool,
    },
    /// Abandon the upload and free its parts.
    AbortMultipartUpload {
        /// The upload.
        upload_id: &'a str,
    },
    /// List one page of the objects under the key taken as a folder (the listing's
    /// prefix is the key and a `/`), keys plain (no `encoding-type`): `ListObjectsV2`.
    /// The prefix, page size and continuation token are all signed, so the URL lists
    /// that folder only.
    List {
        /// The previous page's `NextContinuationToken`.
        continuation_token: Option<&'a str>,
        /// Keys per page, 1 to 1000.
        max_keys: u16,
    },
}

/// A pre-signed request: send `method` to `url` with exactly `headers` (and the body,
/// if any). `Debug` leaves out the URL's query, which holds the signature.
#[derive(Clone, PartialEq, Eq)]
pub struct PresignedRequest {
    /// The HTTP method.
    pub method: &'static str,
    /// The URL, signature included.
    pub url: String,
    /// Headers the signature covers: the request must carry them with these values.
    pub headers: Vec<(&'static str, String)>,
}

impl fmt::Debug for PresignedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = self.url.split('?').next().unwrap_or_default();
        f.debug_struct("PresignedRequest")
            .field("method", &self.method)
            .field("url", &format_args!("{shown}?<signature>"))
            .field("headers", &self.headers)
            .finish()
    }
}

/// Signs `action` with `headers` among the signed headers.
fn signed<'a, A: S3Action<'a>>(
    mut action: A,
    headers: &[(&'static str, String)],
    expiry: Duration,
) -> Url {
    for (name, value) in headers {
        action.headers_mut().insert(*name, value.clone());
    }
    action.sign(expiry)
}

/// Signs `op` on `key` with `credentials` for `expiry` (checked by the caller).
pub(super) fn sign_own(
    bucket: &Bucket,
    credentials: &Credentials,
    op: PresignOp<'_>,
    key: &ObjectKey,
    expiry: Duration,
) -> Result<PresignedRequest, Error> {
    let check_upload = |id: &str| {
        if id.is_empty() {
            Err(invalid("empty multipart upload ID"))
        } else {
            Ok(())
        }
    };
    let check_sum = |sum: Option<&str>| match sum {
        Some(s) if !is_sha256_base64(s) => Err(invalid(
            "the checksum must be a base64 SHA-256 (44 characters)",
        )),
        _ => Ok(()),
    };
    let creds = Some(credentials);
    let k = key.as_str();
    let mut headers: Vec<(&'static str, String)> = Vec::new();
    let (method, url) = match op {
        PresignOp::Get => ("GET", signed(bucket.get_object(creds, k), &headers, expiry)),
        PresignOp::Head => ("HEAD", {
            // Asks for the stored SHA-256 too (create-only puts check it).
            headers.push(("x-amz-checksum-mode", "ENABLED".to_owned()));
            signed(bucket.head_object(creds, k), &headers, expiry)
        }),
        PresignOp::Delete => (
            "DELETE",
            signed(bucket.delete_object(creds, k), &headers, expiry),
        ),
        PresignOp::Put {
            create_only,
            checksum_sha256,
        } => {
            check_sum(checksum_sha256)?;
            if let Some(sum) = checksum_sha256 {
                headers.push(("x-amz-checksum-sha256", sum.to_owned()));
            }
            if create_only {
                headers.push(("if-none-match", "*".to_owned()));
            }
            ("PUT", signed(bucket.put_object(creds, k), &headers, expiry))
        }
        PresignOp::CreateMultipartUpload { checksum_sha256 } => {
            if checksum_sha256 {
                headers.push(("x-amz-checksum-algorithm", "SHA256".to_owned()));
            }
            (
                "POST",
                signed(bucket.create_multipart_upload(creds, k), &headers, expiry),
            )
        }
        PresignOp::UploadPart {
            upload_id,
            part_number,
            checksum_sha256,
        } => {
            check_upload(upload_id)?;
            check_sum(checksum_sha256)?;
            if !(1..=MAX_PARTS).contains(&part_number) {
                return Err(invalid("part numbers go from 1 to 10000"));
            }
            if let Some(sum) = checksum_sha256 {
                headers.push(("x-amz-checksum-sha256", sum.to_owned()));
            }
            let action = bucket.upload_part(creds, k, part_number, upload_id);
            ("PUT", signed(action, &headers, expiry))
        }
        PresignOp::ListParts { upload_id } => {
            check_upload(upload_id)?;
            (
                "GET",
                signed(bucket.list_parts(creds, k, upload_id), &headers, expiry),
            )
        }
        PresignOp::CompleteMultipartUpload {
            upload_id,
            create_only,
        } => {
            check_upload(upload_id)?;
            if create_only {
                headers.push(("if-none-match", "*".to_owned()));
            }
            let action =
                bucket.complete_multipart_upload(creds, k, upload_id, std::iter::empty::<&str>());
            ("POST", signed(action, &headers, expiry))
        }
        PresignOp::AbortMultipartUpload { upload_id } => {
            check_upload(upload_id)?;
            let action = bucket.abort_multipart_upload(creds, k, upload_id);
            ("DELETE", signed(action, &headers, expiry))
        }
        PresignOp::List {
            continuation_token,
            max_keys,
        } => {
            if !(1..=1000).contains(&max_keys) {
                return Err(invalid("a listing page holds 1 to 1000 keys"));
            }
            let mut action = bucket.list_objects_v2(creds);
            // Plain keys: services disagree on how `encoding-type=url` encodes them,
            // and valid keys need no escaping beyond XML's.
            action.query_mut().remove("encoding-type");
            action.with_prefix(format!("{k}/"));
            if let Some(token) = continuation_token {
                action.with_continuation_token(token);
            }
            action.with_max_keys(usize::from(max_keys));
            ("GET", signed(action, &headers, expiry))
        }
    };
    Ok(PresignedRequest {
        method,
        url: url.into(),
        headers,
    })
}
