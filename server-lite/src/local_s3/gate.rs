//! The gate: s3s verifies each request's signature over the path the client signed
//! (`/s3/...`), then hands what verified to the store with `/s3` and the signing
//! parameters taken off.
//!
//! Why two services: SigV4 signs the request's path, and s3s takes the bucket from the
//! same path it verifies. Under `/s3` the first segment is `s3`, so one service cannot
//! both verify `/s3/coffer/key` and route it as bucket `coffer`. The gate never routes
//! (its [`Gate`] route takes every request once it has authenticated); the store never
//! verifies (it has no credentials, and sees no signature).

use axum::http::{header, Method, StatusCode, Uri};
use http_body_util::BodyExt;
use s3s::auth::{S3Auth, SecretKey};
use s3s::route::S3Route;
use s3s::service::S3Service;
use s3s::{Body, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, S3};

use super::{internal_error, s3_error, Authenticated, Credentials};

/// The longest validity accepted, whatever a signed URL says (the server signs for
/// less).
pub const MAX_EXPIRES_SECS: u64 = 3600;
/// The largest XML body read (`CompleteMultipartUpload` of 10 000 parts fits).
pub const MAX_XML_BODY: usize = 2 * 1024 * 1024;

/// The query parameters of a pre-signed URL's signature, which the store never sees.
const SIGNING_PARAMS: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];

/// The gate's own operations: none (its route takes every request).
pub struct Unrouted;

impl S3 for Unrouted {}

/// The gate's view of the path puts `s3` where the bucket goes, too short for S3's
/// bucket names; the store checks the real bucket.
pub struct AnyBucketName;

impl s3s::validation::NameValidation for AnyBucketName {
    fn validate_bucket_name(&self, _name: &str) -> bool {
        true
    }
}

/// The server's one access key and its secret.
pub struct InternalAuth {
    access_key: String,
    secret: SecretKey,
}

impl InternalAuth {
    /// The auth of `credentials`.
    pub fn new(credentials: &Credentials) -> Self {
        InternalAuth {
            access_key: credentials.access_key.clone(),
            secret: SecretKey::from(credentials.secret.as_str()),
        }
    }
}

#[async_trait::async_trait]
impl S3Auth for InternalAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if access_key == self.access_key {
            Ok(self.secret.clone())
        } else {
            Err(s3s::s3_error!(InvalidAccessKeyId))
        }
    }
}

/// Takes every authenticated request to the store.
pub struct Gate {
    store: S3Service,
}

impl Gate {
    /// A gate in front of `store`.
    pub fn new(store: S3Service) -> Self {
        Gate { store }
    }
}

#[async_trait::async_trait]
impl S3Route for Gate {
    fn is_match(
        &self,
        _method: &Method,
        _uri: &Uri,
        _headers: &axum::http::HeaderMap,
        _extensions: &mut axum::http::Extensions,
    ) -> bool {
        true
    }

    async fn check_access(&self, req: &mut S3Request<Body>) -> S3Result<()> {
        if req.credentials.is_none() {
            return Err(S3Error::with_message(
                S3ErrorCode::AccessDenied,
                "the request is not signed",
            ));
        }
        let expires = signing_param(&req.uri, "X-Amz-Expires");
        if expires.is_some_and(|e| e.parse::<u64>().map_or(true, |e| e > MAX_EXPIRES_SECS)) {
            return Err(S3Error::with_message(
                S3ErrorCode::AccessDenied,
                "X-Amz-Expires is out of range",
            ));
        }
        if let Some(flag) = req.extensions.get::<Authenticated>() {
            flag.set();
        }
        Ok(())
    }

    async fn call(&self, req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        if !matches!(
            req.method,
            Method::GET | Method::HEAD | Method::PUT | Method::POST | Method::DELETE
        ) {
            return Err(not_supported());
        }
        let uri = store_uri(&req.uri)?;
        let mut headers = req.headers;
        headers.remove(header::AUTHORIZATION);
        // The store's only POST bodies are XML; read them here, so that one which stops
        // arriving is the caller's 400, not the store's 500.
        let body = if req.method == Method::POST {
            buffered(req.input).await?
        } else {
            req.input
        };
        let mut request = s3s::HttpRequest::new(body);
        *request.method_mut() = req.method;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        *request.extensions_mut() = req.extensions;
        let response = self
            .store
            .call(request)
            .await
            .map_err(|e| internal_error(format!("{e:?}")))?;
        let (parts, body) = response.into_parts();
        // Operations the store does not implement (s3s's 501) are the caller's mistake.
        if parts.status == StatusCode::NOT_IMPLEMENTED {
            return Err(not_supported());
        }
        Ok(S3Response {
            output: body,
            status: Some(parts.status),
            headers: parts.headers,
            extensions: parts.extensions,
        })
    }
}

fn not_supported() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::MethodNotAllowed,
        "this operation is not supported by the embedded store",
    )
}

/// The value of the signing parameter `name` in `uri`'s query, if present.
fn signing_param(uri: &Uri, name: &str) -> Option<String> {
    url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `/s3/{bucket}/{key}?{query}` → `/{bucket}/{key}?{query without the signature}`,
/// the rest left exactly as it came.
fn store_uri(uri: &Uri) -> S3Result<Uri> {
    let invalid = || s3s::s3_error!(InvalidURI);
    let path = uri
        .path()
        .strip_prefix("/s3")
        .filter(|p| p.is_empty() || p.starts_with('/'))
        .ok_or_else(invalid)?;
    let path = if path.is_empty() { "/" } else { path };
    let query: Vec<&str> = uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty() && !is_signing_param(pair))
        .collect();
    let uri = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    };
    uri.parse().map_err(|_| invalid())
}

fn is_signing_param(pair: &str) -> bool {
    let name = pair.split_once('=').map_or(pair, |(name, _)| name);
    let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
    SIGNING_PARAMS.contains(&name.as_ref())
}

/// A whole (small) request body, or the caller's error if it is too large or stops.
async fn buffered(body: Body) -> S3Result<Body> {
    match http_body_util::Limited::new(body, MAX_XML_BODY)
        .collect()
        .await
    {
        Ok(collected) => Ok(Body::from(collected.to_bytes())),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(s3_error(
            "MaxMessageLengthExceeded",
            StatusCode::BAD_REQUEST,
            "the body is larger than 2 MiB",
        )),
        Err(e) => Err(super::body_error(e.as_ref()).unwrap_or_else(|| {
            s3s::s3_error!(IncompleteBody, "the request body could not be read")
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_sees_the_path_without_s3_and_the_query_without_the_signature() {
        let uri: Uri = "/s3/coffer/t1/a%20b/c?uploadId=x&X-Amz-Signature=00&partNumber=2\
                        &X-Amz-Date=1&X%2DAmz%2DExpires=3"
            .parse()
            .unwrap();
        assert_eq!(
            store_uri(&uri).unwrap(),
            "/coffer/t1/a%20b/c?uploadId=x&partNumber=2"
        );
        let list: Uri = "/s3/coffer?list-type=2&prefix=t1%2Fa%2F&X-Amz-Algorithm=A"
            .parse()
            .unwrap();
        assert_eq!(
            store_uri(&list).unwrap(),
            "/coffer?list-type=2&prefix=t1%2Fa%2F"
        );
        assert_eq!(store_uri(&"/s3".parse().unwrap()).unwrap(), "/");
        assert!(store_uri(&"/s3x/coffer".parse().unwrap()).is_err());
    }
}
