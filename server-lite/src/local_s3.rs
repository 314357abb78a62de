//! The embedded store's S3 endpoint: `/s3/{bucket}/{key...}`, answering the pre-signed
//! URLs the server hands agents when no S3 service is configured.
//!
//! S3 itself comes from the [`s3s`] crate: its request routing, its XML, and its SigV4
//! verification of header-signed and pre-signed requests. The server supplies the
//! credentials and the operations, in two s3s services:
//!
//! - The *gate* sees each request as it arrived, path `/s3/...` included, because that
//!   path is what the client signed. It verifies the signature with the server's
//!   internal credentials ([`Credentials`]) and expiry, and passes what verified to the
//!   store ([`gate`]). It must not route: under `/s3` it would take `s3` for the bucket.
//! - The *store* sees the request with `/s3` and the signing parameters taken off, and
//!   routes it path-style to [`store::Store`], the `S3` trait over the storage folder:
//!   `PutObject` (streamed to a temporary file and renamed: nothing partial is ever
//!   visible; `If-None-Match: *` is atomic; `x-amz-checksum-sha256` is checked before
//!   the rename), `GetObject` (with `Range` and `If-Match`), `HeadObject`,
//!   `DeleteObject`, `ListObjectsV2` ([`listing`]) and multipart uploads ([`multipart`]).
//!
//! The server signs only keys (and listing prefixes) under the asking agent's
//! destination, so the signature is also the scope check: a URL moved to another key,
//! prefix, method or query no longer verifies. The store still checks that a
//! destination holds the key and that its agent is not revoked, so a revoked agent's
//! URLs stop working at once. A request refused before it authenticated counts
//! against its address like a failed login and is not audited; an address over its
//! quota is answered `SlowDown`. Errors are S3's XML.

mod body;
pub mod gate;
pub mod listing;
pub mod multipart;
pub mod store;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3Error, S3ErrorCode};
use url::Url;
use zeroize::Zeroizing;

use crate::auth::ClientIp;
use crate::state::AppState;

/// Where backend probes write (see `stores::probe`).
pub const PROBE_PREFIX: &str = "coffer-probe/";
/// How probe objects' names start (see `stores::probe`).
pub const PROBE_NAME: &str = ".probe-";

/// The largest object a single `PutObject` (or part) may carry: S3's limit.
pub const MAX_PUT_BYTES: u64 = 5 * 1024 * 1024 * 1024;

/// The longest key the embedded store holds: S3's 1,024 bytes less `coffer/`, since the
/// gate, which checks S3's limit, sees the bucket as part of the key.
pub const MAX_KEY_BYTES: usize = 1024 - crate::stores::LOCAL_BUCKET.len() - 1;

/// How far ahead of the server's clock a pre-signed URL's signing time may be.
const MAX_CLOCK_SKEW_SECS: u32 = 300;

/// The credentials and place the embedded store's URLs are signed for.
pub struct Credentials {
    /// `scheme://host[:port]` of the server, as agents reach it: the `Host` that
    /// requests are verified against, whatever header they arrive with.
    pub origin: Url,
    /// Signing region.
    pub region: String,
    /// Access key ID.
    pub access_key: String,
    /// Secret key, random per server start.
    pub secret: Zeroizing<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("origin", &self.origin.as_str())
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// The two s3s services of the embedded store, built once per start.
pub struct Service {
    gate: S3Service,
    host: HeaderValue,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service").finish_non_exhaustive()
    }
}

impl Service {
    /// The gate and store for `credentials`.
    ///
    /// # Errors
    /// An origin whose host cannot be a `Host` header.
    pub fn new(credentials: &Credentials) -> Result<Self, String> {
        let host = credentials
            .origin
            .host_str()
            .ok_or_else(|| format!("public URL {}: no host", credentials.origin))?;
        let host = match credentials.origin.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let host = HeaderValue::from_str(&host)
            .map_err(|_| format!("public URL {}: not a Host header", credentials.origin))?;

        let mut config = s3s::config::S3Config::default();
        config.presigned_url_max_skew_time_secs = MAX_CLOCK_SKEW_SECS;
        let config = Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(config)));

        let store = {
            let mut builder = S3ServiceBuilder::new(store::Store);
            builder.set_config(config.clone());
            builder.build()
        };
        let mut builder = S3ServiceBuilder::new(gate::Unrouted);
        builder.set_config(config);
        builder.set_auth(gate::InternalAuth::new(credentials));
        builder.set_route(gate::Gate::new(store));
        builder.set_validation(gate::AnyBucketName);
        Ok(Service {
            gate: builder.build(),
            host,
        })
    }
}

/// What a request carries through both services: who sent it and the server's state,
/// for the store's destination checks and audit.
#[derive(Clone)]
pub(crate) struct Caller {
    pub(crate) ip: IpAddr,
    pub(crate) state: AppState,
}

/// Set by the gate once a request has authenticated.
#[derive(Clone, Default)]
pub(crate) struct Authenticated(Arc<AtomicBool>);

impl Authenticated {
    pub(crate) fn set(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Answers one request to the embedded store.
pub async fn handle(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    request: Request,
) -> Response {
    let (mut parts, body) = request.into_parts();
    // URLs are signed for the public URL's host: verify them against that, whatever
    // Host the request came with (a reverse proxy may have rewritten it).
    parts
        .headers
        .insert(header::HOST, state.stores.embedded.host.clone());
    let authenticated = Authenticated::default();
    parts.extensions.insert(authenticated.clone());
    parts.extensions.insert(Caller {
        ip,
        state: state.clone(),
    });
    let length = parts.extensions.get::<BodyLength>().and_then(|l| l.0);
    let body = SizedBody { body, length };
    let request = s3s::HttpRequest::from_parts(parts, s3s::Body::http_body_unsync(body));
    let response = match state.stores.embedded.gate.call(request).await {
        Ok(response) => response.map(axum::body::Body::new),
        Err(e) => return error(internal_error(format!("{e:?}"))),
    };
    if authenticated.get() {
        return response;
    }
    // Refused before it authenticated. A valid signature passes even from an address
    // over its failure quota (the agent beside a guesser keeps working); this one
    // counts against the address like a failed login, and is not audited: it names no
    // one, and its path is the caller's invention.
    if let Err(crate::error::ApiError::RateLimited { retry_after }) =
        crate::auth::check_blocked(&state, ip)
    {
        let mut response = error(S3Error::with_message(
            S3ErrorCode::SlowDown,
            "too many refused requests",
        ));
        if let Ok(v) = HeaderValue::from_str(&retry_after.max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    }
    crate::auth::count_failure(&state, ip);
    tracing::debug!(%ip, status = %response.status(), "embedded store: unsigned or badly signed request refused");
    // s3s answers a bad signature, an expired URL or an unknown key 403 itself; other
    // refusals before authentication (malformed or unsupported signing parameters, a
    // path it cannot parse) are the same thing to this store: not validly signed.
    if response.status() == StatusCode::FORBIDDEN {
        response
    } else {
        error(S3Error::with_message(
            S3ErrorCode::AccessDenied,
            "the request is not validly signed",
        ))
    }
}

/// The exact length of a request's body as the connection framed it (its
/// `Content-Length`, or 0 for an HTTP/1 request with neither that nor
/// `Transfer-Encoding`), noted by [`note_body_length`] before the body read timeout
/// wraps the body and hides it. s3s needs it to check a payload hash
/// (`x-amz-content-sha256`) of a request without `Content-Length`, such as a GET.
#[derive(Clone, Copy, Debug)]
pub struct BodyLength(Option<u64>);

/// Notes [`BodyLength`] of requests to the embedded store (a middleware, outside the
/// body read timeout).
pub async fn note_body_length(mut request: Request, next: axum::middleware::Next) -> Response {
    if request.uri().path().starts_with("/s3/") {
        let length = hyper::body::Body::size_hint(request.body()).exact();
        request.extensions_mut().insert(BodyLength(length));
    }
    next.run(request).await
}

/// A request body that tells its exact length, when known.
struct SizedBody {
    body: axum::body::Body,
    length: Option<u64>,
}

impl hyper::body::Body for SizedBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, axum::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self.length {
            Some(n) => hyper::body::SizeHint::with_exact(n),
            None => self.body.size_hint(),
        }
    }
}

/// An S3 error as the answer.
pub fn error(e: S3Error) -> Response {
    match e.to_http_response() {
        Ok(response) => response.map(axum::body::Body::new),
        Err(e) => {
            tracing::error!("embedded store: an error answer could not be written: {e:?}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// An S3 error with S3's `code` and this `message`, answered with `status` when the
/// code is not one s3s knows (S3 has no code for every case here).
pub(crate) fn s3_error(code: &str, status: StatusCode, message: impl Into<String>) -> S3Error {
    let code = S3ErrorCode::from_bytes(code.as_bytes()).unwrap_or(S3ErrorCode::InvalidRequest);
    let known = code.status_code();
    let mut e = S3Error::with_message(code, message.into());
    if known.is_none() {
        e.set_status_code(status);
    }
    e
}

/// The caller's error for a request body that failed to arrive: it stopped arriving
/// (the body read timeout), or the client went away mid-body. `None` if the failure
/// is not the body's (a disk error, say).
pub(crate) fn body_error(error: &(dyn std::error::Error + 'static)) -> Option<S3Error> {
    if crate::extract::body_timed_out(error) {
        return Some(S3Error::with_message(
            S3ErrorCode::RequestTimeout,
            "the request body stopped arriving",
        ));
    }
    let mut next = Some(error);
    while let Some(e) = next {
        if e.is::<hyper::Error>() {
            return Some(S3Error::with_message(
                S3ErrorCode::IncompleteBody,
                "the request body ended before its declared length",
            ));
        }
        next = e.source();
    }
    None
}

/// A 500 whose detail is only logged, with the incident number in the answer.
pub(crate) fn internal_error(detail: impl std::fmt::Display) -> S3Error {
    let incident = crate::token::incident_id();
    tracing::error!(incident = %incident, "embedded store: {detail}");
    S3Error::with_message(
        S3ErrorCode::InternalError,
        format!("internal error (incident {incident})"),
    )
}
