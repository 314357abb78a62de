//! Checking the pre-signed URLs of the embedded store.
//!
//! The server signed them with rusty-s3 (through `S3Storage::presign`) and its own
//! internal credentials, so it checks them the same way: it signs the request it
//! received again, with rusty-s3's signer at the request's own `X-Amz-Date`, over the
//! server's public URL, the received path and query, and the received values of the
//! headers the URL says are signed, and compares the two signatures in constant time.
//! Anything altered (method, key, query, a signed header, the expiry) changes the
//! signature. Expiry is checked against the server's clock.

use axum::http::{HeaderMap, Method, Uri};
use jiff::Timestamp;
use subtle::ConstantTimeEq;
use url::Url;
use zeroize::Zeroizing;

/// The longest validity the server accepts, whatever the URL says.
pub const MAX_EXPIRES: u64 = 3600;
/// How far ahead of the server's clock a signing time may be.
const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// The credentials and place the embedded store's URLs are signed for.
pub struct Signer {
    /// `scheme://host[:port]` of the server, as agents reach it.
    pub origin: Url,
    /// Signing region.
    pub region: String,
    /// Access key ID.
    pub access_key: String,
    /// Secret key, random per server start.
    pub secret: Zeroizing<String>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("origin", &self.origin.as_str())
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Why a request is refused, as S3 would say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Missing or malformed signing parameters.
    AccessDenied(&'static str),
    /// Past its expiry.
    Expired,
    /// The signature does not match the request.
    SignatureDoesNotMatch,
}

impl Refusal {
    /// S3's error code.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::AccessDenied(_) | Refusal::Expired => "AccessDenied",
            Refusal::SignatureDoesNotMatch => "SignatureDoesNotMatch",
        }
    }

    /// S3's message.
    pub fn message(&self) -> &'static str {
        match self {
            Refusal::AccessDenied(m) => m,
            Refusal::Expired => "Request has expired",
            Refusal::SignatureDoesNotMatch => {
                "The request signature we calculated does not match the signature you provided"
            }
        }
    }
}

const SIGNING_PARAMS: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];

impl Signer {
    /// Checks the signature of a request at time `now`.
    ///
    /// # Errors
    /// [`Refusal`] saying why.
    pub fn verify(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        now: Timestamp,
    ) -> Result<(), Refusal> {
        let missing = Refusal::AccessDenied("the request is not pre-signed");
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
                .into_owned()
                .collect();
        let param = |name: &str| {
            let mut found = pairs.iter().filter(|(k, _)| k == name);
            match (found.next(), found.next()) {
                (Some((_, v)), None) => Ok(v.as_str()),
                _ => Err(missing.clone()),
            }
        };
        if param("X-Amz-Algorithm")? != "AWS4-HMAC-SHA256" {
            return Err(Refusal::AccessDenied("unsupported signing algorithm"));
        }
        if pairs.iter().any(|(k, _)| k == "X-Amz-Security-Token") {
            return Err(Refusal::AccessDenied("session tokens are not accepted"));
        }
        let date = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", param("X-Amz-Date")?)
            .ok()
            .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
            .map(|z| z.timestamp())
            .ok_or(Refusal::AccessDenied("malformed X-Amz-Date"))?;
        let expires: u64 = param("X-Amz-Expires")?
            .parse()
            .map_err(|_| Refusal::AccessDenied("malformed X-Amz-Expires"))?;
        if expires == 0 || expires > MAX_EXPIRES {
            return Err(Refusal::AccessDenied("X-Amz-Expires out of range"));
        }
        let credential = param("X-Amz-Credential")?;
        if credential.split('/').next() != Some(self.access_key.as_str()) {
            return Err(Refusal::AccessDenied("unknown access key"));
        }
        let signed_at = date.as_second();
        let age = now.as_second() - signed_at;
        if age < -MAX_CLOCK_SKEW_SECS {
            return Err(Refusal::AccessDenied("Request is not valid yet"));
        }
        // `expires` is at most 3600, so the cast cannot wrap.
        if age > expires as i64 {
            return Err(Refusal::Expired);
        }
        let signature = param("X-Amz-Signature")?;

        // The headers the URL says are signed, with the values this request carries.
        let mut signed: Vec<(String, String)> = Vec::new();
        for name in param("X-Amz-SignedHeaders")?.split(';') {
            if name == "host" {
                continue; // the signer adds the host from the public URL
            }
            let value = headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .ok_or(Refusal::SignatureDoesNotMatch)?;
            signed.push((name.to_owned(), value.trim().to_owned()));
        }
        signed.sort();
        let mut query: Vec<(String, String)> = pairs
            .iter()
            .filter(|(k, _)| !SIGNING_PARAMS.contains(&k.as_str()))
            .cloned()
            .collect();
        query.sort();

        let method = match *method {
            Method::GET => rusty_s3::Method::Get,
            Method::HEAD => rusty_s3::Method::Head,
            Method::PUT => rusty_s3::Method::Put,
            Method::POST => rusty_s3::Method::Post,
            Method::DELETE => rusty_s3::Method::Delete,
            _ => return Err(Refusal::SignatureDoesNotMatch),
        };
        let mut url = self.origin.clone();
        url.set_path(uri.path());
        let expected = rusty_s3::signing::sign(
            &date,
            method,
            url,
            &self.access_key,
            &self.secret,
            None,
            &self.region,
            expires,
            query.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            signed.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let expected_signature = expected
            .query_pairs()
            .find(|(k, _)| k == "X-Amz-Signature")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        if bool::from(expected_signature.as_bytes().ct_eq(signature.as_bytes())) {
            Ok(())
        } else {
            Err(Refusal::SignatureDoesNotMatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::HeaderValue;
    use coffer_adapters::storage::{ObjectKey, PresignOp, S3Config, S3Storage};

    use super::*;

    fn setup(origin: &str) -> (Signer, S3Storage) {
        let config = S3Config::new(
            "http://127.0.0.1:9/s3/",
            "us-east-1",
            "coffer",
            "ak",
            "sk-secret",
        );
        let signer = Signer {
            origin: Url::parse(origin).unwrap(),
            region: "us-east-1".into(),
            access_key: "ak".into(),
            secret: Zeroizing::new("sk-secret".into()),
        };
        (signer, S3Storage::new(&config).unwrap())
    }

    fn request(p: &coffer_adapters::storage::PresignedRequest) -> (Method, Uri, HeaderMap) {
        let url = Url::parse(&p.url).unwrap();
        let uri: Uri = format!("{}?{}", url.path(), url.query().unwrap())
            .parse()
            .unwrap();
        let mut headers = HeaderMap::new();
        for (n, v) in &p.headers {
            headers.insert(*n, HeaderValue::from_str(v).unwrap());
        }
        (p.method.parse().unwrap(), uri, headers)
    }

    #[test]
    fn presigned_requests_verify_until_expiry_and_not_once_altered() {
        let (signer, s3) = setup("http://127.0.0.1:9/");
        let key = ObjectKey::new("t1/abc/k").unwrap();
        let sum = coffer_adapters::storage::s3::checksum_sha256(b"x");
        let op = PresignOp::Put {
            create_only: true,
            checksum_sha256: Some(&sum),
        };
        let signed = s3.presign(op, &key, Duration::from_secs(60)).unwrap();
        let (method, uri, headers) = request(&signed);
        let now = Timestamp::now();
        assert_eq!(signer.verify(&method, &uri, &headers, now), Ok(()));
        let later = |s: i64| now.checked_add(jiff::SignedDuration::from_secs(s)).unwrap();
        assert_eq!(signer.verify(&method, &uri, &headers, later(58)), Ok(()));
        assert_eq!(
            signer.verify(&method, &uri, &headers, later(62)),
            Err(Refusal::Expired)
        );
        assert!(matches!(
            signer.verify(&method, &uri, &headers, later(-400)),
            Err(Refusal::AccessDenied(_))
        ));
        // Another method, another signed header value, a missing one.
        assert_eq!(
            signer.verify(&Method::GET, &uri, &headers, now),
            Err(Refusal::SignatureDoesNotMatch)
        );
        let mut other = headers.clone();
        other.insert("if-none-match", HeaderValue::from_static("\"etag\""));
        assert_eq!(
            signer.verify(&method, &uri, &other, now),
            Err(Refusal::SignatureDoesNotMatch)
        );
        let mut missing = headers.clone();
        missing.remove("x-amz-checksum-sha256");
        assert_eq!(
            signer.verify(&method, &uri, &missing, now),
            Err(Refusal::SignatureDoesNotMatch)
        );
        // Signed for another host: a server at another origin refuses it.
        let (elsewhere, _) = setup("http://127.0.0.1:10/");
        assert_eq!(
            elsewhere.verify(&method, &uri, &headers, now),
            Err(Refusal::SignatureDoesNotMatch)
        );
        // Not pre-signed at all, or with a duplicated signing parameter.
        let bare: Uri = "/s3/coffer/t1/abc/k".parse().unwrap();
        assert!(matches!(
            signer.verify(&method, &bare, &headers, now),
            Err(Refusal::AccessDenied(_))
        ));
        let doubled: Uri = format!("{uri}&X-Amz-Date=20260101T000000Z")
            .parse()
            .unwrap();
        assert!(matches!(
            signer.verify(&method, &doubled, &headers, now),
            Err(Refusal::AccessDenied(_))
        ));
    }
}
