//! Objects in an S3-compatible bucket (AWS S3, MinIO, Garage, Ceph RGW, s3s-fs, ...).
//!
//! Every request is signed by [`rusty_s3`] (SigV4 query-string signing: Coffer has no
//! signer of its own) and sent with `reqwest`'s blocking client. Bodies are not covered
//! by the signature (`UNSIGNED-PAYLOAD`); their integrity is `x-amz-checksum-sha256`,
//! which is itself a signed header and which the service checks against the bytes.
//!
//! # Puts
//! The length of the data is not known in advance. The first part (8 MiB by default) is
//! read; if the data ends within it, it is one `PutObject`. Otherwise it is a multipart
//! upload: parts are read one after another and uploaded by up to
//! [`S3Config::parts_in_flight`] threads, with at most that many part buffers alive at
//! any time, so a put's memory is bounded by `parts_in_flight × part size` whatever
//! the object's size. A multipart object becomes visible only when
//! `CompleteMultipartUpload` succeeds; any failure before that (a failing source, a
//! part that keeps failing, a refused create-only complete) aborts the upload, so the
//! key keeps its previous object, or none.
//!
//! Part sizes grow with the object so that S3's 10 000-part limit is far away: parts
//! 1–2000 have the configured size, the next 2000 twice that, and so on (five steps),
//! which allows objects of about 484 GiB with the default 8 MiB parts.
//!
//! # Retries
//! Each request is tried up to [`S3Config::max_attempts`] times when it fails for a
//! reason that may pass: HTTP 5xx, 429, `SlowDown`, `RequestTimeout`, a timeout, a
//! refused or broken connection. The waits grow exponentially with random jitter (and
//! honour `Retry-After`). Retries are made safe where a request's outcome is unknown:
//! - a part whose upload failed is first looked up with `ListParts`, and sent again
//!   only if the service does not already hold it with the same size and SHA-256
//!   (services that do not report part checksums, like s3s-fs, just get it again);
//! - a `CompleteMultipartUpload` or create-only `PutObject` whose answer was lost is
//!   followed by a `HeadObject`: if the key holds exactly what was uploaded (the
//!   multipart ETag, or the object's SHA-256), the put succeeded, even if the retry is
//!   refused with "no such upload" or "precondition failed".
//!
//! An upload whose `CreateMultipartUpload` answer was lost may stay behind as an
//! invisible, unfinished upload; configure the bucket's lifecycle rule
//! `AbortIncompleteMultipartUpload` (a day is plenty) to collect those.
//!
//! # Reads
//! `get` and `get_range` stream the body; a connection that breaks mid-body is resumed
//! with a ranged request pinned to the object's ETag (`If-Match`), so a reader never
//! splices two versions of an object.
//!
//! # Pre-signed URLs
//! [`S3Storage::presign`] makes short-lived URLs (at most [`MAX_PRESIGN_EXPIRY`]) that
//! let a client without credentials do one operation on one key. An agent uploads a
//! large object through such URLs only, with the server presigning each step:
//! 1. [`PresignOp::CreateMultipartUpload`]: the agent POSTs to it (with the returned
//!    headers) and reads the upload ID with [`parse_upload_id`].
//! 2. For each part, in order: the agent reads the next part (at least 5 MiB, except
//!    the last; at most 10 000 parts), computes [`checksum_sha256`] of it, asks for a
//!    [`PresignOp::UploadPart`] URL naming that checksum, PUTs the bytes with the
//!    returned headers, and keeps the response's `ETag`.
//! 3. [`PresignOp::CompleteMultipartUpload`]: the agent POSTs
//!    [`complete_multipart_body`] of its parts, and checks the answer with
//!    [`check_complete_response`] (S3 can answer 200 with an error in the body).
//! 4. On any failure: [`PresignOp::AbortMultipartUpload`], a DELETE.
//!
//! An agent need not do those steps by hand: [`S3Storage::with_signer`] makes a storage
//! without credentials whose every request (puts, multipart, reads, deletes, with the
//! retries above) is signed by a [`Signer`], e.g. one that asks the server.
//!
//! Secrets: the secret key is held zeroized-on-drop (in [`S3Config`] and inside
//! `rusty_s3::Credentials`), never printed by `Debug`, and no error carries a request
//! URL (signed URLs are bearer tokens for their lifetime).

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use md5::Md5;
use reqwest::blocking::{Client, Response};
use reqwest::{Method, StatusCode};
use rusty_s3::actions::CreateMultipartUpload;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use sha2::{Digest as _, Sha256};
use url::Url;
use zeroize::Zeroizing;

use super::{ObjectKey, ObjectMeta, PutMode, Storage};
use crate::Error;

mod sign;
pub use sign::{PresignOp, PresignedRequest, Signer};

const MIB: usize = 1 << 20;
/// The default part size of multipart uploads.
pub const DEFAULT_PART_SIZE: usize = 8 * MIB;
/// S3's smallest part (all parts but the last).
pub const MIN_PART_SIZE: usize = 5 * MIB;
/// The largest configurable part size (parts of big objects grow past it, up to 1 GiB).
pub const MAX_PART_SIZE: usize = 256 * MIB;
/// S3's largest part number.
pub const MAX_PARTS: u16 = 10_000;
/// The longest a pre-signed URL may stay valid.
pub const MAX_PRESIGN_EXPIRY: Duration = Duration::from_secs(3600);

/// Parts per part-size step: parts 1–2000 have the configured size, 2001–4000 twice
/// that, ... (see the module documentation).
const PARTS_PER_SIZE_STEP: u16 = 2_000;
/// The largest a grown part gets.
const MAX_GROWN_PART: usize = 1 << 30;
/// How long the signatures of Coffer's own requests stay valid: long enough for a
/// request to start after being signed, short enough to be useless if it leaked.
const OWN_SIGNATURE_EXPIRY: Duration = Duration::from_secs(15 * 60);
/// How much of an error response is read for its code and message.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;
/// Connections are not kept idle longer than this (servers drop them anyway).
const POOL_IDLE: Duration = Duration::from_secs(30);

/// Where and how to reach a bucket. The secret key is zeroized when this is dropped,
/// and `Debug` shows `<redacted>` in its place.
#[derive(Clone)]
pub struct S3Config {
    /// The service's base URL, e.g. `https://s3.eu-west-1.amazonaws.com` or
    /// `http://127.0.0.1:9000`.
    pub endpoint: String,
    /// The signing region, e.g. `eu-west-1` (`us-east-1` for most other services).
    pub region: String,
    /// The bucket's name.
    pub bucket: String,
    /// Path-style addressing (`endpoint/bucket/key`) instead of virtual-hosted style
    /// (`bucket.endpoint/key`); most self-hosted services need it.
    pub path_style: bool,
    /// The access key ID.
    pub access_key_id: String,
    secret_access_key: Zeroizing<String>,
    /// The part size of multipart uploads, from [`MIN_PART_SIZE`] to [`MAX_PART_SIZE`];
    /// objects up to this size are one `PutObject`.
    pub part_size: usize,
    /// How many parts are uploaded at once, 1 to 16; also how many part buffers a put
    /// holds at most.
    pub parts_in_flight: usize,
    /// How long a request may take to connect, send a body-less request and get its
    /// response headers, and how long any one read of a response body may wait.
    pub request_timeout: Duration,
    /// The slowest upload rate tolerated, in bytes per second: a request with a body
    /// gets `request_timeout` plus its length divided by this.
    pub min_upload_rate: u64,
    /// Tries per request (1 = no retries).
    pub max_attempts: u32,
    /// The first retry waits about this long; each further one twice as long.
    pub retry_base_delay: Duration,
    /// No retry waits longer than this.
    pub retry_max_delay: Duration,
    /// Keys per listing request (`max-keys`), 1 to 1000.
    pub list_page_size: u16,
    /// For a storage whose requests someone else signs: the prefix that signer puts
    /// before every key (an agent's destination root). Listings name whole keys, so it
    /// is cut from theirs, and keys outside it are not this storage's.
    pub signer_root: String,
}

impl S3Config {
    /// A configuration with the defaults: path-style addressing, 8 MiB parts, 3 parts
    /// in flight, 30 s request timeout, 1 MiB/s minimum upload rate, 5 attempts with
    /// waits from 200 ms up to 10 s.
    pub fn new(
        endpoint: impl Into<String>,
        region: impl Into<String>,
        bucket: impl Into<String>,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> Self {
        S3Config {
            endpoint: endpoint.into(),
            region: region.into(),
            bucket: bucket.into(),
            path_style: true,
            access_key_id: access_key_id.into(),
            secret_access_key: Zeroizing::new(secret_access_key.into()),
            part_size: DEFAULT_PART_SIZE,
            parts_in_flight: 3,
            request_timeout: Duration::from_secs(30),
            min_upload_rate: MIB as u64,
            max_attempts: 5,
            retry_base_delay: Duration::from_millis(200),
            retry_max_delay: Duration::from_secs(10),
            list_page_size: 1000,
            signer_root: String::new(),
        }
    }

    /// Transfer settings for a storage whose requests someone else signs
    /// ([`S3Storage::with_signer`]): the defaults above, and no endpoint or credentials
    /// (the signed URLs carry what they need).
    pub fn for_signer(bucket: impl Into<String>) -> Self {
        S3Config::new("", "", bucket, "", "")
    }

    /// Replaces the secret access key (the old one is zeroized).
    pub fn set_secret_access_key(&mut self, secret: impl Into<String>) {
        self.secret_access_key = Zeroizing::new(secret.into());
    }
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("path_style", &self.path_style)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("part_size", &self.part_size)
            .field("parts_in_flight", &self.parts_in_flight)
            .field("request_timeout", &self.request_timeout)
            .field("min_upload_rate", &self.min_upload_rate)
            .field("max_attempts", &self.max_attempts)
            .field("retry_base_delay", &self.retry_base_delay)
            .field("retry_max_delay", &self.retry_max_delay)
            .field("list_page_size", &self.list_page_size)
            .field("signer_root", &self.signer_root)
            .finish()
    }
}

/// A bucket of objects. Cheap to clone (clones share one connection pool).
#[derive(Clone)]
pub struct S3Storage {
    inner: Arc<Inner>,
}

struct Inner {
    signing: Signing,
    bucket_name: String,
    client: Client,
    part_size: usize,
    parts_in_flight: usize,
    request_timeout: Duration,
    min_upload_rate: u64,
    max_attempts: u32,
    retry_base_delay: Duration,
    retry_max_delay: Duration,
    list_page_size: u16,
    signer_root: String,
}

/// Headers to send with a request: name (lower case) and value.
type Headers = Vec<(&'static str, String)>;

/// Who signs the requests.
enum Signing {
    /// This process, with the bucket's credentials.
    Own {
        bucket: Bucket,
        credentials: Credentials,
    },
    /// Someone else, per request (an agent's server).
    Remote(Arc<dyn Signer>),
}

impl fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        let mut d = f.debug_struct("S3Storage");
        match &i.signing {
            Signing::Own {
                bucket,
                credentials,
            } => d
                .field("base_url", &bucket.base_url().as_str())
                .field("region", &bucket.region())
                .field("access_key_id", &credentials.key()),
            Signing::Remote(_) => d.field("signing", &"remote"),
        };
        d.field("part_size", &i.part_size)
            .field("parts_in_flight", &i.parts_in_flight)
            .finish_non_exhaustive()
    }
}

fn invalid(reason: impl Into<String>) -> Error {
    Error::InvalidConfig {
        reason: reason.into(),
    }
}

impl S3Storage {
    /// Checks `config` and prepares the client (no request is made).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the setting that is wrong.
    pub fn new(config: &S3Config) -> Result<Self, Error> {
        let endpoint = Url::parse(&config.endpoint)
            .map_err(|e| invalid(format!("endpoint {:?}: {e}", config.endpoint)))?;
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(invalid("endpoint: the scheme must be http or https"));
        }
        if !endpoint.username().is_empty() || endpoint.password().is_some() {
            return Err(invalid(
                "endpoint: credentials belong in the access key settings, not the URL",
            ));
        }
        if endpoint.query().is_some() || endpoint.fragment().is_some() {
            return Err(invalid("endpoint: no query or fragment allowed"));
        }
        if config.region.is_empty() {
            return Err(invalid("region: empty"));
        }
        if config.bucket.is_empty()
            || !config
                .bucket
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        {
            return Err(invalid(format!(
                "bucket {:?}: not a bucket name",
                config.bucket
            )));
        }
        if config.access_key_id.is_empty() || config.secret_access_key.is_empty() {
            return Err(invalid("the access key ID and secret key must both be set"));
        }
        let style = if config.path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let bucket = Bucket::new(
            endpoint,
            style,
            config.bucket.clone(),
            config.region.clone(),
        )
        .map_err(|e| invalid(format!("endpoint: {e}")))?;
        let credentials = Credentials::new(
            config.access_key_id.clone(),
            config.secret_access_key.as_str(),
        );
        Self::build(
            Signing::Own {
                bucket,
                credentials,
            },
            config,
        )
    }

    /// A storage that holds no credentials: `signer` signs each of its requests (an
    /// agent's, whose server signs them). Of `config` only the transfer settings are
    /// used (part size, parts in flight, timeouts, retries) and `bucket` (for
    /// [`bucket`](Self::bucket)); [`S3Config::for_signer`] makes one. Such a storage
    /// cannot [`list`](Storage::list) or [`presign`](Self::presign).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the transfer setting that is wrong.
    pub fn with_signer(signer: Arc<dyn Signer>, config: &S3Config) -> Result<Self, Error> {
        Self::build(Signing::Remote(signer), config)
    }

    fn build(signing: Signing, config: &S3Config) -> Result<Self, Error> {
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&config.part_size) {
            return Err(invalid(format!(
                "part size {}: must be from {MIN_PART_SIZE} to {MAX_PART_SIZE} bytes",
                config.part_size
            )));
        }
        if !(1..=16).contains(&config.parts_in_flight) {
            return Err(invalid("parts in flight: must be from 1 to 16"));
        }
        if config.request_timeout.is_zero() || config.min_upload_rate == 0 {
            return Err(invalid(
                "the request timeout and minimum upload rate must be positive",
            ));
        }
        if !(1..=20).contains(&config.max_attempts) {
            return Err(invalid("attempts: must be from 1 to 20"));
        }
        if !(1..=1000).contains(&config.list_page_size) {
            return Err(invalid("list page size: must be from 1 to 1000"));
        }
        let client = Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .pool_idle_timeout(POOL_IDLE)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| invalid(format!("HTTP client: {}", e.without_url())))?;
        Ok(S3Storage {
            inner: Arc::new(Inner {
                signing,
                bucket_name: config.bucket.clone(),
                client,
                part_size: config.part_size,
                parts_in_flight: config.parts_in_flight,
                request_timeout: config.request_timeout,
                min_upload_rate: config.min_upload_rate,
                max_attempts: config.max_attempts,
                retry_base_delay: config.retry_base_delay,
                retry_max_delay: config.retry_max_delay.max(config.retry_base_delay),
                list_page_size: config.list_page_size,
                signer_root: config.signer_root.trim_end_matches('/').to_owned(),
            }),
        })
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.inner.bucket_name
    }

    /// A URL, valid for `expiry` (1 s to [`MAX_PRESIGN_EXPIRY`]), with which a client
    /// holding no credentials can do `op` on `key`. The client must send the returned
    /// headers unchanged (they are part of the signature).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an expiry out of range, an empty upload ID, a part
    /// number outside 1–10 000 or a checksum that is not a base64 SHA-256, and for a
    /// storage made [`with_signer`](Self::with_signer), which holds no credentials.
    pub fn presign(
        &self,
        op: PresignOp<'_>,
        key: &ObjectKey,
        expiry: Duration,
    ) -> Result<PresignedRequest, Error> {
        if expiry < Duration::from_secs(1) || expiry > MAX_PRESIGN_EXPIRY {
            return Err(invalid(format!(
                "pre-signed URL expiry {expiry:?}: must be from 1 s to {MAX_PRESIGN_EXPIRY:?}"
            )));
        }
        match &self.inner.signing {
            Signing::Own {
                bucket,
                credentials,
            } => sign::sign_own(bucket, credentials, op, key, expiry),
            Signing::Remote(_) => Err(invalid(
                "this storage's requests are signed by someone else; it cannot presign",
            )),
        }
    }
}

/// One uploaded part, for [`complete_multipart_body`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    /// Its number, 1 to 10 000.
    pub part_number: u16,
    /// The `ETag` header of its upload's response, as given.
    pub etag: String,
    /// Its SHA-256 in base64, if the upload was created with checksums.
    pub checksum_sha256: Option<String>,
}

/// The base64 SHA-256 of `data`, as `x-amz-checksum-sha256` carries it.
pub fn checksum_sha256(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(data))
}

fn is_sha256_base64(s: &str) -> bool {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .is_ok_and(|d| d.len() == 32)
}

/// The body of a `CompleteMultipartUpload` request for `parts` (sorted by number here).
pub fn complete_multipart_body(parts: &[CompletedPart]) -> String {
    let mut parts: Vec<&CompletedPart> = parts.iter().collect();
    parts.sort_by_key(|p| p.part_number);
    let mut body =
        String::from("<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for p in parts {
        body.push_str("<Part><PartNumber>");
        body.push_str(&p.part_number.to_string());
        body.push_str("</PartNumber><ETag>");
        body.push_str(&xml_escape(&p.etag));
        body.push_str("</ETag>");
        if let Some(sum) = &p.checksum_sha256 {
            body.push_str("<ChecksumSHA256>");
            body.push_str(&xml_escape(sum));
            body.push_str("</ChecksumSHA256>");
        }
        body.push_str("</Part>");
    }
    body.push_str("</CompleteMultipartUpload>");
    body
}

/// The upload ID in a `CreateMultipartUpload` answer.
///
/// # Errors
/// [`Error::Backend`] if the answer is not one.
pub fn parse_upload_id(xml: &str) -> Result<String, Error> {
    CreateMultipartUpload::parse_response(xml)
        .map(|r| r.upload_id().to_owned())
        .map_err(|e| Error::Backend {
            operation: "CreateMultipartUpload",
            key: String::new(),
            status: None,
            code: "MalformedResponse".into(),
            message: format!("no upload ID in the answer: {e}"),
            transient: false,
        })
}

/// Checks the body of a `CompleteMultipartUpload` answer: S3 may answer 200 and still
/// report an error in the body.
///
/// # Errors
/// [`Error::Backend`] with the reported code and message.
pub fn check_complete_response(xml: &str) -> Result<(), Error> {
    match parse_error_body(xml) {
        Some((code, message)) => Err(Error::Backend {
            operation: "CompleteMultipartUpload",
            key: String::new(),
            status: Some(200),
            transient: is_transient_code(&code),
            code,
            message,
        }),
        None => Ok(()),
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

// --- requests, errors, retries ---

/// Why an attempt failed, and whether another may succeed.
enum Failure {
    /// Worth retrying (after the given `Retry-After`, if any).
    Transient(Error, Option<Duration>),
    /// Final.
    Permanent(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Permanent(e)
    }
}

fn is_transient_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

fn is_transient_code(code: &str) -> bool {
    matches!(
        code,
        "RequestTimeout"
            | "SlowDown"
            | "InternalError"
            | "ServiceUnavailable"
            | "Throttling"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "ConditionalRequestConflict"
    )
}

fn backend(
    operation: &'static str,
    key: &str,
    status: Option<u16>,
    code: impl Into<String>,
    message: impl Into<String>,
    transient: bool,
) -> Error {
    Error::Backend {
        operation,
        key: key.to_owned(),
        status,
        code: code.into(),
        message: message.into(),
        transient,
    }
}

/// A transport error's description, without the request URL (it holds a signature).
fn describe_transport(e: reqwest::Error) -> (String, String) {
    let e = e.without_url();
    let code = if e.is_timeout() {
        "Timeout"
    } else if e.is_connect() {
        "ConnectionFailed"
    } else {
        "TransportError"
    };
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    (code.to_owned(), message)
}

/// The same I/O error, with any request URL taken out of it.
fn sanitize_io(e: io::Error) -> io::Error {
    let kind = e.kind();
    match e.into_inner() {
        Some(inner) => match inner.downcast::<reqwest::Error>() {
            Ok(re) => {
                let timeout = re.is_timeout();
                let (_, message) = describe_transport(*re);
                let kind = if timeout {
                    io::ErrorKind::TimedOut
                } else {
                    kind
                };
                io::Error::new(kind, message)
            }
            Err(other) => io::Error::new(kind, other),
        },
        None => io::Error::from(kind),
    }
}

fn parse_error_body(text: &str) -> Option<(String, String)> {
    let doc = roxmltree::Document::parse(text.trim_start()).ok()?;
    let root = doc.root_element();
    if root.tag_name().name() != "Error" {
        return None;
    }
    let code = child_text(root, "Code")
        .unwrap_or("UnknownError")
        .to_owned();
    let message = child_text(root, "Message").unwrap_or_default().to_owned();
    Some((code, message))
}

fn child<'a, 'i>(node: roxmltree::Node<'a, 'i>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
    node.children().find(|c| c.tag_name().name() == name)
}

fn child_text<'a>(node: roxmltree::Node<'a, '_>, name: &str) -> Option<&'a str> {
    child(node, name).map(|c| c.text().unwrap_or_default())
}

fn header_str<'r>(resp: &'r Response, name: &str) -> Option<&'r str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

fn retry_after(resp: &Response) -> Option<Duration> {
    header_str(resp, "retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// An ETag without quotes or weak marker.
fn bare_etag(etag: &str) -> &str {
    etag.trim().trim_start_matches("W/").trim_matches('"')
}

/// The ETag S3 gives a multipart object: the MD5 of the parts' MD5s, then `-count`.
/// `None` when a part's ETag is not an MD5 (encrypted buckets, some services).
fn multipart_etag(parts: &[CompletedPart]) -> Option<String> {
    let mut md5 = Md5::new();
    for p in parts {
        let raw = hex::decode(bare_etag(&p.etag)).ok()?;
        if raw.len() != 16 {
            return None;
        }
        md5.update(&raw);
    }
    Some(format!("{}-{}", hex::encode(md5.finalize()), parts.len()))
}

/// A value in [0, 1) that differs from call to call, for jitter.
fn jitter_fraction() -> f64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// What a `HeadObject` tells.
struct HeadInfo {
    size: u64,
    etag: Option<String>,
    checksum_sha256: Option<String>,
}

impl Inner {
    /// The wait before retry number `attempt` (1 = the first retry): half the
    /// exponential step plus a random share of the other half, at least `Retry-After`.
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let step = self
            .retry_base_delay
            .saturating_mul(1u32 << (attempt - 1).min(20))
            .min(self.retry_max_delay);
        let wait = step / 2 + (step / 2).mul_f64(jitter_fraction());
        match retry_after {
            Some(after) => wait.max(after.min(self.retry_max_delay)),
            None => wait,
        }
    }

    /// Runs `attempt` (given its number, from 1) until it succeeds, fails for good, or
    /// the attempts run out.
    fn retry<T>(&self, mut attempt: impl FnMut(u32) -> Result<T, Failure>) -> Result<T, Error> {
        let mut n = 1;
        loop {
            match attempt(n) {
                Ok(v) => return Ok(v),
                Err(Failure::Permanent(e)) => return Err(e),
                Err(Failure::Transient(e, after)) => {
                    if n >= self.max_attempts {
                        return Err(e);
                    }
                    std::thread::sleep(self.backoff(n, after));
                    n += 1;
                }
            }
        }
    }

    /// Sends one request. 2xx answers and those in `pass` come back as `Ok`; others
    /// become a [`Failure`] carrying the service's error code and message.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        operation: &'static str,
        key: &str,
        method: Method,
        url: Url,
        headers: &[(&'static str, String)],
        body: Option<Bytes>,
        pass: &[StatusCode],
    ) -> Result<Response, Failure> {
        let mut request = self.client.request(method, url);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if let Some(body) = body {
            let extra = Duration::from_secs_f64(body.len() as f64 / self.min_upload_rate as f64);
            request = request.timeout(self.request_timeout + extra).body(body);
        }
        match request.send() {
            Err(e) => {
                let (code, message) = describe_transport(e);
                Err(Failure::Transient(
                    backend(operation, key, None, code, message, true),
                    None,
                ))
            }
            Ok(resp) if resp.status().is_success() || pass.contains(&resp.status()) => Ok(resp),
            Ok(resp) => Err(self.failure(operation, key, resp)),
        }
    }

    /// Turns an error answer into a [`Failure`].
    fn failure(&self, operation: &'static str, key: &str, resp: Response) -> Failure {
        let status = resp.status();
        let after = retry_after(&resp);
        let mut text = String::new();
        let _ = resp.take(ERROR_BODY_LIMIT).read_to_string(&mut text);
        // A HEAD answer has no body, and some services send none with other errors:
        // then the status says what went wrong, so the message is never empty.
        let (code, message) = parse_error_body(&text).unwrap_or_else(|| {
            let reason = status.canonical_reason().unwrap_or("unknown error");
            (
                reason.replace(' ', ""),
                format!(
                    "HTTP {} {reason} (the service sent no error body)",
                    status.as_u16()
                ),
            )
        });
        let transient = is_transient_status(status) || is_transient_code(&code);
        let error = backend(
            operation,
            key,
            Some(status.as_u16()),
            code,
            message,
            transient,
        );
        if transient {
            Failure::Transient(error, after)
        } else {
            Failure::Permanent(error)
        }
    }

    /// Reads a (small) answer body; a failure to read it is transient.
    fn body_text(
        &self,
        operation: &'static str,
        key: &str,
        resp: Response,
    ) -> Result<String, Failure> {
        let mut text = String::new();
        match resp.take(16 * MIB as u64).read_to_string(&mut text) {
            Ok(_) => Ok(text),
            Err(e) => Err(Failure::Transient(
                backend(
                    operation,
                    key,
                    None,
                    "TransportError",
                    sanitize_io(e).to_string(),
                    true,
                ),
                None,
            )),
        }
    }

    /// Signs one of this storage's own requests: the URL, and the headers to send.
    fn sign(
        &self,
        operation: &'static str,
        op: PresignOp<'_>,
        key: &str,
    ) -> Result<(Url, Headers), Failure> {
        let object_key = ObjectKey::new(key)?;
        let request = match &self.signing {
            Signing::Own {
                bucket,
                credentials,
            } => sign::sign_own(bucket, credentials, op, &object_key, OWN_SIGNATURE_EXPIRY)?,
            Signing::Remote(signer) => signer.sign(op, &object_key).map_err(|e| match e {
                Error::Backend {
                    transient: true, ..
                } => Failure::Transient(e, None),
                e => Failure::Permanent(e),
            })?,
        };
        let url = Url::parse(&request.url).map_err(|_| {
            Failure::Permanent(backend(
                operation,
                key,
                None,
                "InvalidSignedUrl",
                "the signer returned something that is not a URL",
                false,
            ))
        })?;
        Ok((url, request.headers))
    }

    fn head_info(&self, key: &str) -> Result<Option<HeadInfo>, Error> {
        self.retry(|_| {
            let (url, headers) = self.sign("HeadObject", PresignOp::Head, key)?;
            let resp = self.send(
                "HeadObject",
                key,
                Method::HEAD,
                url,
                &headers,
                None,
                &[StatusCode::NOT_FOUND],
            )?;
            if resp.status() == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            // Not `content_length()`: for a HEAD, that is the (empty) body's length.
            let size = header_str(&resp, "content-length")
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| {
                    backend(
                        "HeadObject",
                        key,
                        Some(resp.status().as_u16()),
                        "MalformedResponse",
                        "no Content-Length",
                        false,
                    )
                })?;
            Ok(Some(HeadInfo {
                size,
                etag: header_str(&resp, "etag").map(|e| bare_etag(e).to_owned()),
                checksum_sha256: header_str(&resp, "x-amz-checksum-sha256").map(str::to_owned),
            }))
        })
    }

    /// Opens the object from `from` to `end` (exclusive; `None` for its end). `None`
    /// when the range starts past the object's end.
    fn open(
        self: &Arc<Self>,
        key: &str,
        from: u64,
        end: Option<u64>,
        if_match: Option<&str>,
    ) -> Result<Option<ObjectReader>, Error> {
        let mut headers: Vec<(&'static str, String)> = Vec::new();
        match end {
            Some(end) => headers.push(("range", format!("bytes={from}-{}", end - 1))),
            None if from > 0 => headers.push(("range", format!("bytes={from}-"))),
            None => {}
        }
        if let Some(etag) = if_match {
            headers.push(("if-match", format!("\"{etag}\"")));
        }
        let resp = self.retry(|_| {
            // Range and If-Match are not signed: they only narrow what is read.
            let (url, mut all) = self.sign("GetObject", PresignOp::Get, key)?;
            all.extend(headers.iter().cloned());
            self.send(
                "GetObject",
                key,
                Method::GET,
                url,
                &all,
                None,
                &[
                    StatusCode::NOT_FOUND,
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    StatusCode::PRECONDITION_FAILED,
                ],
            )
        })?;
        match resp.status() {
            StatusCode::NOT_FOUND => Err(Error::NotFound {
                key: ObjectKey::new(key)?,
            }),
            StatusCode::RANGE_NOT_SATISFIABLE => Ok(None),
            StatusCode::PRECONDITION_FAILED => Err(backend(
                "GetObject",
                key,
                Some(412),
                "PreconditionFailed",
                "the object was replaced while it was being read",
                false,
            )),
            status => {
                let etag = header_str(&resp, "etag").map(|e| bare_etag(e).to_owned());
                // A server that ignores Range answers 200 with the whole object.
                let skip = if status == StatusCode::PARTIAL_CONTENT {
                    0
                } else {
                    from
                };
                Ok(Some(ObjectReader {
                    inner: Arc::clone(self),
                    key: key.to_owned(),
                    resp: Some(resp),
                    skip,
                    pos: from,
                    end,
                    etag: etag.or_else(|| if_match.map(str::to_owned)),
                    resumes_left: self.max_attempts.saturating_sub(1),
                }))
            }
        }
    }

    // --- puts ---

    fn put_single(&self, key: &ObjectKey, data: Vec<u8>, mode: PutMode) -> Result<u64, Error> {
        let k = key.as_str();
        let len = data.len() as u64;
        let checksum = checksum_sha256(&data);
        let body = Bytes::from(data);
        let op = PresignOp::Put {
            create_only: mode == PutMode::CreateOnly,
            checksum_sha256: Some(&checksum),
        };
        self.retry(|attempt| {
            let (url, headers) = self.sign("PutObject", op, k)?;
            let resp = self.send(
                "PutObject",
                k,
                Method::PUT,
                url,
                &headers,
                Some(body.clone()),
                &[StatusCode::PRECONDITION_FAILED],
            )?;
            if resp.status() == StatusCode::PRECONDITION_FAILED {
                // After an attempt whose answer was lost, the object there may be ours.
                if attempt > 1 {
                    if let Some(h) = self.head_info(k)? {
                        if h.size == len && h.checksum_sha256.as_deref() == Some(&checksum) {
                            return Ok(());
                        }
                    }
                }
                return Err(Failure::Permanent(Error::AlreadyExists {
                    key: key.clone(),
                }));
            }
            Ok(())
        })?;
        Ok(len)
    }

    fn put_multipart(
        &self,
        key: &ObjectKey,
        first: Vec<u8>,
        src: &mut Source<'_>,
        mode: PutMode,
    ) -> Result<u64, Error> {
        let k = key.as_str();
        // Cheap early refusal before uploading gigabytes; If-None-Match on Complete
        // is what makes create-only safe against a concurrent writer.
        if mode == PutMode::CreateOnly && self.head_info(k)?.is_some() {
            return Err(Error::AlreadyExists { key: key.clone() });
        }
        let upload_id = self.create_multipart(k)?;
        let outcome = self
            .upload_parts(k, &upload_id, first, src)
            .and_then(|(parts, size)| {
                self.complete_multipart(key, &upload_id, &parts, size, mode)?;
                Ok(size)
            });
        if outcome.is_err() {
            // Nothing is visible before Complete; this frees the parts. If it fails
            // too, the bucket's lifecycle rule collects the upload.
            let _ = self.abort_multipart(k, &upload_id);
        }
        outcome
    }

    fn create_multipart(&self, key: &str) -> Result<String, Error> {
        let op = PresignOp::CreateMultipartUpload {
            checksum_sha256: true,
        };
        self.retry(|_| {
            let (url, headers) = self.sign("CreateMultipartUpload", op, key)?;
            let resp = self.send(
                "CreateMultipartUpload",
                key,
                Method::POST,
                url,
                &headers,
                Some(Bytes::new()),
                &[],
            )?;
            let text = self.body_text("CreateMultipartUpload", key, resp)?;
            parse_upload_id(&text).map_err(|e| {
                Failure::Permanent(match e {
                    Error::Backend { message, .. } => backend(
                        "CreateMultipartUpload",
                        key,
                        None,
                        "MalformedResponse",
                        message,
                        false,
                    ),
                    other => other,
                })
            })
        })
    }

    /// The size of part `number`.
    fn part_len(&self, number: u16) -> usize {
        let step = u32::from((number.max(1) - 1) / PARTS_PER_SIZE_STEP);
        (self.part_size << step).min(MAX_GROWN_PART.max(self.part_size))
    }

    /// Reads and uploads every part, `first` being part 1, with at most
    /// `parts_in_flight` part buffers alive.
    fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        first: Vec<u8>,
        src: &mut Source<'_>,
    ) -> Result<(Vec<CompletedPart>, u64), Error> {
        let workers = self.parts_in_flight;
        let (job_tx, job_rx) = sync_channel::<(u16, Vec<u8>)>(0);
        let job_rx = Mutex::new(job_rx);
        // One token per part buffer: the reader takes one before filling a buffer,
        // the worker that uploaded it gives it back.
        let (slot_tx, slot_rx) = sync_channel::<()>(workers);
        for _ in 0..workers {
            slot_tx
                .send(())
                .expect("the slot channel has room for every slot");
        }
        let done: Mutex<Vec<(CompletedPart, u64)>> = Mutex::new(Vec::new());
        let failed: Mutex<Option<Error>> = Mutex::new(None);
        let stop = AtomicBool::new(false);
        let fail = |e: Error| {
            let mut f = failed.lock().unwrap_or_else(PoisonError::into_inner);
            if f.is_none() {
                *f = Some(e);
            }
            stop.store(true, Ordering::SeqCst);
        };

        std::thread::scope(|s| {
            for _ in 0..workers {
                let (job_rx, slot_tx, done, stop, fail) =
                    (&job_rx, slot_tx.clone(), &done, &stop, &fail);
                s.spawn(move || loop {
                    let job = job_rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok((number, data)) = job else { break };
                    if !stop.load(Ordering::SeqCst) {
                        match self.upload_part(key, upload_id, number, data) {
                            Ok(part) => done
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .push(part),
                            Err(e) => fail(e),
                        }
                    }
                    let _ = slot_tx.send(());
                });
            }
            drop(slot_tx);

            let mut number: u16 = 1;
            let mut buf = first;
            let _ = slot_rx.recv();
            loop {
                if job_tx.send((number, buf)).is_err() {
                    break;
                }
                if slot_rx.recv().is_err() || stop.load(Ordering::SeqCst) {
                    break;
                }
                if number == MAX_PARTS {
                    match src.at_eof() {
                        Ok(true) => {}
                        Ok(false) => fail(backend(
                            "UploadPart",
                            key,
                            None,
                            "TooManyParts",
                            "the object needs more than 10000 parts: raise the part size",
                            false,
                        )),
                        Err(e) => fail(Error::io(format!("reading the data for {key}"), e)),
                    }
                    break;
                }
                let want = self.part_len(number + 1);
                let mut next = Vec::new();
                if next.try_reserve_exact(want).is_err() {
                    fail(Error::io(
                        format!("allocating a {want}-byte part buffer for {key}"),
                        io::Error::from(io::ErrorKind::OutOfMemory),
                    ));
                    break;
                }
                match src.fill(&mut next, want) {
                    Ok(()) if next.is_empty() => break,
                    Ok(()) => {
                        number += 1;
                        buf = next;
                    }
                    Err(e) => {
                        fail(Error::io(format!("reading the data for {key}"), e));
                        break;
                    }
                }
            }
            drop(job_tx);
        });

        if let Some(e) = failed.into_inner().unwrap_or_else(PoisonError::into_inner) {
            return Err(e);
        }
        let mut parts = done.into_inner().unwrap_or_else(PoisonError::into_inner);
        parts.sort_by_key(|(p, _)| p.part_number);
        let contiguous = parts
            .iter()
            .enumerate()
            .all(|(i, (p, _))| usize::from(p.part_number) == i + 1);
        if !contiguous || parts.is_empty() {
            return Err(backend(
                "UploadPart",
                key,
                None,
                "InternalInconsistency",
                "not every part was uploaded",
                false,
            ));
        }
        let size = parts.iter().map(|(_, len)| len).sum();
        Ok((parts.into_iter().map(|(p, _)| p).collect(), size))
    }

    fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u16,
        data: Vec<u8>,
    ) -> Result<(CompletedPart, u64), Error> {
        let checksum = checksum_sha256(&data);
        let size = data.len() as u64;
        let body = Bytes::from(data);
        let op = PresignOp::UploadPart {
            upload_id,
            part_number: number,
            checksum_sha256: Some(&checksum),
        };
        let etag = self.retry(|attempt| {
            if attempt > 1 {
                if let Some(etag) = self.listed_part(key, upload_id, number, size, &checksum) {
                    return Ok(etag);
                }
            }
            let (url, headers) = self.sign("UploadPart", op, key)?;
            let resp = self.send(
                "UploadPart",
                key,
                Method::PUT,
                url,
                &headers,
                Some(body.clone()),
                &[],
            )?;
            match header_str(&resp, "etag") {
                Some(etag) if !bare_etag(etag).is_empty() => Ok(etag.to_owned()),
                _ => Err(Failure::Permanent(backend(
                    "UploadPart",
                    key,
                    Some(resp.status().as_u16()),
                    "MalformedResponse",
                    "no ETag in the answer",
                    false,
                ))),
            }
        })?;
        let part = CompletedPart {
            part_number: number,
            etag,
            checksum_sha256: Some(checksum),
        };
        Ok((part, size))
    }

    /// The ETag of part `number` if the service already holds it with this size and
    /// SHA-256 (an earlier attempt may have landed though its answer was lost).
    fn listed_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u16,
        size: u64,
        checksum: &str,
    ) -> Option<String> {
        let (url, headers) = match &self.signing {
            // Just the one part: the listing starts after the part before it.
            Signing::Own {
                bucket,
                credentials,
            } => {
                let mut action = bucket.list_parts(Some(credentials), key, upload_id);
                if number > 1 {
                    action.set_part_number_marker(number - 1);
                }
                action.set_max_parts(1);
                (action.sign(OWN_SIGNATURE_EXPIRY), Vec::new())
            }
            // The signer signs the plain listing (up to 1000 parts).
            Signing::Remote(_) => self
                .sign("ListParts", PresignOp::ListParts { upload_id }, key)
                .ok()?,
        };
        let resp = self
            .send("ListParts", key, Method::GET, url, &headers, None, &[])
            .ok()?;
        let text = self.body_text("ListParts", key, resp).ok()?;
        let doc = roxmltree::Document::parse(&text).ok()?;
        let found = doc.root_element().children().find(|p| {
            p.tag_name().name() == "Part"
                && child_text(*p, "PartNumber").and_then(|n| n.trim().parse().ok()) == Some(number)
        })?;
        let listed_size = child_text(found, "Size").and_then(|s| s.trim().parse::<u64>().ok());
        let listed_sum = child_text(found, "ChecksumSHA256").map(str::trim);
        let etag = child_text(found, "ETag").map(str::trim).unwrap_or_default();
        (listed_size == Some(size) && listed_sum == Some(checksum) && !bare_etag(etag).is_empty())
            .then(|| etag.to_owned())
    }

    /// Whether `key` holds the multipart object of `size` bytes with this ETag.
    fn holds_upload(
        &self,
        key: &str,
        size: u64,
        expected_etag: Option<&str>,
    ) -> Result<bool, Error> {
        let Some(expected) = expected_etag else {
            return Ok(false);
        };
        Ok(self
            .head_info(key)?
            .is_some_and(|h| h.size == size && h.etag.as_deref() == Some(expected)))
    }

    fn complete_multipart(
        &self,
        key: &ObjectKey,
        upload_id: &str,
        parts: &[CompletedPart],
        size: u64,
        mode: PutMode,
    ) -> Result<(), Error> {
        let k = key.as_str();
        let body = Bytes::from(complete_multipart_body(parts));
        let expected = multipart_etag(parts);
        let op = PresignOp::CompleteMultipartUpload {
            upload_id,
            create_only: mode == PutMode::CreateOnly,
        };
        let outcome = self.retry(|attempt| {
            // The previous attempt's answer may have been lost after it succeeded.
            if attempt > 1 && self.holds_upload(k, size, expected.as_deref())? {
                return Ok(());
            }
            let (url, headers) = self.sign("CompleteMultipartUpload", op, k)?;
            let resp = self.send(
                "CompleteMultipartUpload",
                k,
                Method::POST,
                url,
                &headers,
                Some(body.clone()),
                &[StatusCode::PRECONDITION_FAILED],
            )?;
            if resp.status() == StatusCode::PRECONDITION_FAILED {
                return Err(Failure::Permanent(Error::AlreadyExists {
                    key: key.clone(),
                }));
            }
            let text = self.body_text("CompleteMultipartUpload", k, resp)?;
            match parse_error_body(&text) {
                Some((code, message)) => {
                    let transient = is_transient_code(&code);
                    let e = backend(
                        "CompleteMultipartUpload",
                        k,
                        Some(200),
                        code,
                        message,
                        transient,
                    );
                    Err(if transient {
                        Failure::Transient(e, None)
                    } else {
                        Failure::Permanent(e)
                    })
                }
                None => Ok(()),
            }
        });
        match outcome {
            Err(e @ Error::Backend { .. }) => {
                // Every attempt's answer may have been lost after one of them succeeded.
                match self.holds_upload(k, size, expected.as_deref()) {
                    Ok(true) => Ok(()),
                    _ => Err(e),
                }
            }
            other => other,
        }
    }

    fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<(), Error> {
        self.retry(|_| {
            let op = PresignOp::AbortMultipartUpload { upload_id };
            let (url, headers) = self.sign("AbortMultipartUpload", op, key)?;
            self.send(
                "AbortMultipartUpload",
                key,
                Method::DELETE,
                url,
                &headers,
                None,
                &[StatusCode::NOT_FOUND],
            )
            .map(drop)
        })
    }
}

/// The data being put: reads whole parts, and can look one byte ahead for the end.
struct Source<'a> {
    inner: &'a mut dyn Read,
    carry: Option<u8>,
}

impl Source<'_> {
    /// Appends up to `want` bytes to `buf` (fewer only at the end of the data).
    fn fill(&mut self, buf: &mut Vec<u8>, want: usize) -> io::Result<()> {
        if let Some(b) = self.carry.take() {
            buf.push(b);
        }
        let more = want.saturating_sub(buf.len()) as u64;
        (&mut *self.inner).take(more).read_to_end(buf)?;
        Ok(())
    }

    /// Whether the data has ended (reads, and keeps, one byte to find out).
    fn at_eof(&mut self) -> io::Result<bool> {
        if self.carry.is_some() {
            return Ok(false);
        }
        let mut b = [0u8];
        loop {
            match self.inner.read(&mut b) {
                Ok(0) => return Ok(true),
                Ok(_) => {
                    self.carry = Some(b[0]);
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// An object's body as a stream. A connection that breaks mid-body is reopened at the
/// current offset with `If-Match` on the object's ETag, so the bytes all come from one
/// version of the object.
struct ObjectReader {
    inner: Arc<Inner>,
    key: String,
    resp: Option<Response>,
    /// Bytes of `resp` to discard first (the server ignored the Range header).
    skip: u64,
    /// The offset, in the object, of the next byte to hand out.
    pos: u64,
    /// Where to stop (exclusive); `None` for the object's end.
    end: Option<u64>,
    etag: Option<String>,
    resumes_left: u32,
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let remaining = self.end.map_or(u64::MAX, |e| e.saturating_sub(self.pos));
            if buf.is_empty() || remaining == 0 {
                return Ok(0);
            }
            let Some(resp) = self.resp.as_mut() else {
                return Ok(0);
            };
            let result = if self.skip > 0 {
                let n = buf
                    .len()
                    .min(usize::try_from(self.skip).unwrap_or(usize::MAX));
                match resp.read(&mut buf[..n]) {
                    Ok(0) => return Ok(0), // the object ends before the range starts
                    Ok(n) => {
                        self.skip -= n as u64;
                        continue;
                    }
                    Err(e) => Err(e),
                }
            } else {
                let n = buf
                    .len()
                    .min(usize::try_from(remaining).unwrap_or(usize::MAX));
                resp.read(&mut buf[..n])
            };
            match result {
                Ok(n) => {
                    self.pos += n as u64;
                    if n > 0 {
                        self.resumes_left = self.inner.max_attempts.saturating_sub(1);
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let e = sanitize_io(e);
                    let Some(etag) = self.etag.clone() else {
                        return Err(e);
                    };
                    if self.resumes_left == 0 {
                        return Err(e);
                    }
                    self.resumes_left -= 1;
                    let attempt = self.inner.max_attempts - self.resumes_left - 1;
                    std::thread::sleep(self.inner.backoff(attempt.max(1), None));
                    self.resp = None;
                    match self.inner.open(&self.key, self.pos, self.end, Some(&etag)) {
                        Ok(Some(mut reopened)) => {
                            self.resp = reopened.resp.take();
                            self.skip = reopened.skip;
                        }
                        Ok(None) => return Ok(0),
                        Err(e) => return Err(io::Error::other(e.to_string())),
                    }
                }
            }
        }
    }
}

/// One page of a listing: (key, size) pairs and the continuation token, if truncated.
type ListPage = (Vec<(String, u64)>, Option<String>);

fn parse_list(text: &str) -> Option<ListPage> {
    let doc = roxmltree::Document::parse(text.trim_start()).ok()?;
    let root = doc.root_element();
    if root.tag_name().name() != "ListBucketResult" {
        return None;
    }
    let mut objects = Vec::new();
    for c in root
        .children()
        .filter(|c| c.tag_name().name() == "Contents")
    {
        let key = child_text(c, "Key")?.to_owned();
        let size = child_text(c, "Size")?.trim().parse().ok()?;
        objects.push((key, size));
    }
    let truncated = child_text(root, "IsTruncated").is_some_and(|t| t.trim() == "true");
    if !truncated {
        return Some((objects, None));
    }
    let next = child_text(root, "NextContinuationToken").filter(|t| !t.is_empty())?;
    Some((objects, Some(next.to_owned())))
}

impl Inner {
    fn list_page(&self, prefix: &str, token: Option<&str>) -> Result<ListPage, Error> {
        let (bucket, credentials) = match &self.signing {
            Signing::Own {
                bucket,
                credentials,
            } => (bucket, credentials),
            Signing::Remote(_) => return self.list_page_signed(prefix, token),
        };
        self.retry(|_| {
            let mut action = bucket.list_objects_v2(Some(credentials));
            // Plain keys: services disagree on how `encoding-type=url` encodes them,
            // and valid keys need no escaping beyond XML's.
            action.query_mut().remove("encoding-type");
            if !prefix.is_empty() {
                action.with_prefix(prefix);
            }
            if let Some(token) = token {
                action.with_continuation_token(token);
            }
            action.with_max_keys(usize::from(self.list_page_size));
            let url = action.sign(OWN_SIGNATURE_EXPIRY);
            let resp = self.send("ListObjectsV2", prefix, Method::GET, url, &[], None, &[])?;
            let text = self.body_text("ListObjectsV2", prefix, resp)?;
            parse_list(&text).ok_or_else(|| malformed_list(prefix))
        })
    }

    /// A page of a listing someone else signs: only of a folder (`prefix` ends in
    /// `/`), whose keys come back under the signer's root, which is cut off.
    fn list_page_signed(&self, prefix: &str, token: Option<&str>) -> Result<ListPage, Error> {
        let folder = prefix.strip_suffix('/').ok_or_else(|| {
            invalid(format!(
                "listing {prefix:?}: a storage whose requests someone else signs lists \
                 folders only (a prefix ending in '/')"
            ))
        })?;
        let op = PresignOp::List {
            continuation_token: token,
            max_keys: self.list_page_size,
        };
        let (mut objects, next) = self.retry(|_| {
            let (url, headers) = self.sign("ListObjectsV2", op, folder)?;
            let resp = self.send(
                "ListObjectsV2",
                prefix,
                Method::GET,
                url,
                &headers,
                None,
                &[],
            )?;
            let text = self.body_text("ListObjectsV2", prefix, resp)?;
            parse_list(&text).ok_or_else(|| malformed_list(prefix))
        })?;
        if !self.signer_root.is_empty() {
            let root = format!("{}/", self.signer_root);
            objects.retain_mut(|(key, _)| match key.strip_prefix(&root) {
                Some(rest) => {
                    *key = rest.to_owned();
                    true
                }
                None => false,
            });
        }
        Ok((objects, next))
    }
}

fn malformed_list(prefix: &str) -> Failure {
    Failure::Permanent(backend(
        "ListObjectsV2",
        prefix,
        None,
        "MalformedResponse",
        "not a ListObjectsV2 answer",
        false,
    ))
}

impl Storage for S3Storage {
    fn put(&self, key: &ObjectKey, data: &mut dyn Read, mode: PutMode) -> Result<u64, Error> {
        let i = &self.inner;
        let read_error = |e| Error::io(format!("reading the data for {key}"), e);
        let mut src = Source {
            inner: data,
            carry: None,
        };
        let mut first = Vec::new();
        let first_len = i.part_len(1);
        src.fill(&mut first, first_len).map_err(read_error)?;
        if first.len() < first_len || src.at_eof().map_err(read_error)? {
            return i.put_single(key, first, mode);
        }
        i.put_multipart(key, first, &mut src, mode)
    }

    fn get(&self, key: &ObjectKey) -> Result<Box<dyn Read + Send>, Error> {
        match self.inner.open(key.as_str(), 0, None, None)? {
            Some(reader) => Ok(Box::new(reader)),
            None => Ok(Box::new(io::empty())),
        }
    }

    fn get_range(
        &self,
        key: &ObjectKey,
        start: u64,
        len: u64,
    ) -> Result<Box<dyn Read + Send>, Error> {
        if len == 0 {
            return match self.head(key)? {
                Some(_) => Ok(Box::new(io::empty())),
                None => Err(Error::NotFound { key: key.clone() }),
            };
        }
        let end = start.checked_add(len);
        match self.inner.open(key.as_str(), start, end, None)? {
            Some(reader) => Ok(Box::new(reader)),
            // The range starts at or past the end of the object.
            None => Ok(Box::new(io::empty())),
        }
    }

    fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>, Error> {
        Ok(self.inner.head_info(key.as_str())?.map(|h| ObjectMeta {
            key: key.clone(),
            size: h.size,
        }))
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, Error> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let (objects, next) = self.inner.list_page(prefix, token.as_deref())?;
            out.extend(objects.into_iter().filter_map(|(key, size)| {
                // Keys Coffer could not have written are not Coffer's objects.
                ObjectKey::new(key).ok().map(|key| ObjectMeta { key, size })
            }));
            match next {
                Some(next) if token.as_deref() != Some(next.as_str()) => token = Some(next),
                Some(_) => {
                    return Err(backend(
                        "ListObjectsV2",
                        prefix,
                        None,
                        "MalformedResponse",
                        "the listing repeated its continuation token",
                        false,
                    ))
                }
                None => break,
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn delete(&self, key: &ObjectKey) -> Result<(), Error> {
        let i = &self.inner;
        let k = key.as_str();
        i.retry(|_| {
            let (url, headers) = i.sign("DeleteObject", PresignOp::Delete, k)?;
            i.send(
                "DeleteObject",
                k,
                Method::DELETE,
                url,
                &headers,
                None,
                &[StatusCode::NOT_FOUND],
            )
            .map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> S3Config {
        S3Config::new(
            "http://127.0.0.1:9",
            "us-east-1",
            "bucket",
            "AKIDEXAMPLE",
            "super-secret-key-material",
        )
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let cfg = config();
        let store = S3Storage::new(&cfg).unwrap();
        for shown in [
            format!("{cfg:?}"),
            format!("{store:?}"),
            format!("{store:#?}"),
        ] {
            assert!(!shown.contains("super-secret"), "{shown}");
            assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
        }
        let key = ObjectKey::new("a/b").unwrap();
        let presigned = store
            .presign(PresignOp::Get, &key, Duration::from_secs(60))
            .unwrap();
        assert!(presigned.url.contains("X-Amz-Signature="));
        assert!(!presigned.url.contains("super-secret"));
        assert!(!format!("{presigned:?}").contains("X-Amz-Signature"));
    }

    #[test]
    fn bad_settings_are_refused_without_echoing_the_secret() {
        let mut bad = Vec::new();
        let mut c = config();
        c.part_size = MIN_PART_SIZE - 1;
        bad.push(c);
        let mut c = config();
        c.parts_in_flight = 0;
        bad.push(c);
        let mut c = config();
        c.endpoint = "ftp://example".into();
        bad.push(c);
        let mut c = config();
        c.endpoint = "http://user:pw@example".into();
        bad.push(c);
        let mut c = config();
        c.set_secret_access_key("");
        bad.push(c);
        let mut c = config();
        c.max_attempts = 0;
        bad.push(c);
        for c in bad {
            match S3Storage::new(&c) {
                Err(e @ Error::InvalidConfig { .. }) => {
                    assert!(!e.to_string().contains("super-secret"))
                }
                other => panic!("{c:?} accepted: {other:?}"),
            }
        }
    }

    #[test]
    fn presign_checks_its_arguments() {
        let store = S3Storage::new(&config()).unwrap();
        let key = ObjectKey::new("k").unwrap();
        for expiry in [Duration::ZERO, Duration::from_secs(3601)] {
            assert!(store.presign(PresignOp::Get, &key, expiry).is_err());
        }
        let hour = MAX_PRESIGN_EXPIRY;
        assert!(store.presign(PresignOp::Head, &key, hour).is_ok());
        let bad_part = PresignOp::UploadPart {
            upload_id: "u",
            part_number: 0,
            checksum_sha256: None,
        };
        assert!(store.presign(bad_part, &key, hour).is_err());
        let bad_sum = PresignOp::Put {
            create_only: false,
            checksum_sha256: Some("not base64"),
        };
        assert!(store.presign(bad_sum, &key, hour).is_err());
        let sum = checksum_sha256(b"x");
        let put = store
            .presign(
                PresignOp::Put {
                    create_only: true,
                    checksum_sha256: Some(&sum),
                },
                &key,
                hour,
            )
            .unwrap();
        assert_eq!(put.method, "PUT");
        assert!(
            put.url
                .contains("X-Amz-SignedHeaders=host%3Bif-none-match%3Bx-amz-checksum-sha256"),
            "{}",
            put.url
        );
    }

    #[test]
    fn part_sizes_grow_so_ten_thousand_parts_hold_large_objects() {
        let store = S3Storage::new(&config()).unwrap();
        let i = &store.inner;
        assert_eq!(i.part_len(1), DEFAULT_PART_SIZE);
        assert_eq!(i.part_len(2000), DEFAULT_PART_SIZE);
        assert_eq!(i.part_len(2001), 2 * DEFAULT_PART_SIZE);
        assert_eq!(i.part_len(10_000), 16 * DEFAULT_PART_SIZE);
        let total: u64 = (1..=MAX_PARTS).map(|n| i.part_len(n) as u64).sum();
        assert!(total > 480 << 30, "{total}");
    }

    #[test]
    fn multipart_etag_is_the_md5_of_the_part_md5s() {
        // Two parts, "a" and "b": the ETag S3 (and s3s-fs) give such an object.
        let part = |n: u16, data: &[u8]| CompletedPart {
            part_number: n,
            etag: format!("\"{}\"", hex::encode(Md5::digest(data))),
            checksum_sha256: None,
        };
        let parts = [part(1, b"a"), part(2, b"b")];
        let mut md5 = Md5::new();
        md5.update(Md5::digest(b"a"));
        md5.update(Md5::digest(b"b"));
        assert_eq!(
            multipart_etag(&parts).unwrap(),
            format!("{}-2", hex::encode(md5.finalize()))
        );
        let odd = [CompletedPart {
            part_number: 1,
            etag: "\"not-an-md5\"".into(),
            checksum_sha256: None,
        }];
        assert_eq!(multipart_etag(&odd), None);
    }

    #[test]
    fn xml_answers_are_read_tolerantly() {
        let list = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name>
<Contents><Key>a/x&amp;y</Key><Size>3</Size></Contents>
<Contents><Key>a/z</Key><LastModified>2024-01-01T00:00:00Z</LastModified><ETag>"e"</ETag><Size>0</Size></Contents>
<IsTruncated>true</IsTruncated><NextContinuationToken>tok</NextContinuationToken></ListBucketResult>"#;
        let (objects, next) = parse_list(list).unwrap();
        assert_eq!(objects, [("a/x&y".to_owned(), 3), ("a/z".to_owned(), 0)]);
        assert_eq!(next.as_deref(), Some("tok"));
        let error = "<Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>";
        assert_eq!(
            parse_error_body(error),
            Some(("SlowDown".into(), "Reduce your rate".into()))
        );
        assert!(check_complete_response(error).is_err());
        assert!(check_complete_response("<CompleteMultipartUploadResult/>").is_ok());
        let body = complete_multipart_body(&[
            CompletedPart {
                part_number: 2,
                etag: "\"b\"".into(),
                checksum_sha256: None,
            },
            CompletedPart {
                part_number: 1,
                etag: "\"a&\"".into(),
                checksum_sha256: Some("c".into()),
            },
        ]);
        assert!(body.contains(
            "<Part><PartNumber>1</PartNumber><ETag>\"a&amp;\"</ETag><ChecksumSHA256>c</ChecksumSHA256></Part><Part><PartNumber>2</PartNumber>"
        ), "{body}");
    }
}
