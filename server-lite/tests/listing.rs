//! `ListObjectsV2` on the embedded store: listings pre-signed (here with rusty-s3 and the
//! server's internal credentials, as the server will sign them) for a prefix under an
//! agent's destination return exactly the objects under it, in order, a page at a time;
//! the signature covers the prefix, so a listing moved to another prefix is refused.

#[path = "support/harness.rs"]
mod harness;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use harness::{checksum, Enrolled, Harness, PUBLIC_URL};
use rusty_s3::actions::{ListObjectsV2, S3Action};
use rusty_s3::{Bucket, Credentials, UrlStyle};
use serde_json::json;
use url::Url;

/// Lists of the embedded store, signed the way the server signs its URLs.
struct Lister {
    bucket: Bucket,
    credentials: Credentials,
}

impl Lister {
    fn new(h: &Harness) -> Self {
        let creds = &h.state.stores.credentials;
        let endpoint = Url::parse(&format!("{PUBLIC_URL}/s3/")).unwrap();
        Lister {
            bucket: Bucket::new(endpoint, UrlStyle::Path, "coffer", "us-east-1").unwrap(),
            credentials: Credentials::new(creds.access_key.clone(), creds.secret.to_string()),
        }
    }

    /// A signed listing URL of `prefix`, pages of `max_keys`, after `token`.
    fn url(&self, prefix: &str, max_keys: usize, token: Option<&str>) -> Url {
        let mut action = self.bucket.list_objects_v2(Some(&self.credentials));
        action.with_prefix(prefix);
        action.with_max_keys(max_keys);
        if let Some(t) = token {
            action.with_continuation_token(t);
        }
        action.sign(Duration::from_secs(60))
    }
}

async fn get(h: &Harness, url: &Url) -> (StatusCode, String) {
    let path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
    let (status, _, body) = h
        .send(Request::get(path).body(Body::empty()).unwrap())
        .await;
    (status, String::from_utf8(body).unwrap())
}

/// Every key under `prefix`, following continuation tokens; and how many pages.
async fn list_all(
    h: &Harness,
    lister: &Lister,
    prefix: &str,
    max_keys: usize,
) -> (Vec<String>, usize) {
    let (mut keys, mut pages, mut token) = (Vec::new(), 0, None::<String>);
    loop {
        let (status, body) = get(h, &lister.url(prefix, max_keys, token.as_deref())).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let page = ListObjectsV2::parse_response(&body).unwrap();
        assert!(page.contents.len() <= max_keys);
        keys.extend(page.contents.into_iter().map(|c| c.key));
        pages += 1;
        match page.next_continuation_token {
            Some(t) => token = Some(t),
            None => return (keys, pages),
        }
    }
}

async fn put(h: &Harness, agent: &Enrolled, key: &str) {
    let data = key.as_bytes().to_vec();
    let (status, signed) = h
        .presign(
            &agent.api_key,
            json!({"op": "put", "key": key, "create_only": true, "checksum_sha256": checksum(&data)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    assert_eq!(h.send_presigned(&signed, data, &[]).await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_signed_listing_returns_exactly_the_objects_under_its_prefix_a_page_at_a_time() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let a = h.enrol(&op, "nas-a").await;
    let b = h.enrol(&op, "nas-b").await;
    let under = [
        "jobs/1/a",
        "jobs/1/a b+c",
        "jobs/1/b",
        "jobs/1/c/d",
        "jobs/1/c/d0",
    ];
    for key in under.iter().chain(&["jobs/10/e", "jobs/2/f", "other"]) {
        put(&h, &a, key).await;
    }
    put(&h, &b, "jobs/1/theirs").await;
    let lister = Lister::new(&h);

    // Exactly the keys under the prefix, sorted, whatever the page size; "jobs/10/"
    // shares the characters "jobs/1" but not the prefix "jobs/1/".
    let mut expected: Vec<String> = under.iter().map(|k| format!("{}/{k}", a.prefix)).collect();
    expected.sort();
    for max_keys in [1, 2, 1000] {
        let (keys, pages) = list_all(&h, &lister, &format!("{}/jobs/1/", a.prefix), max_keys).await;
        assert_eq!(keys, expected, "pages of {max_keys}");
        assert_eq!(
            pages,
            expected.len().div_ceil(max_keys),
            "pages of {max_keys}"
        );
    }
    // The whole destination: all of A's objects, none of B's.
    // (Enrolment made the destination's repository: its configuration and key files
    // are there too.)
    let (keys, _) = list_all(&h, &lister, &format!("{}/", a.prefix), 3).await;
    let repo = format!("{}/repo/", a.prefix);
    assert_eq!(
        keys.iter().filter(|k| !k.starts_with(&repo)).count(),
        under.len() + 3
    );
    assert_eq!(
        keys.iter().filter(|k| k.starts_with(&repo)).count(),
        3,
        "{keys:?}"
    );
    assert!(keys
        .iter()
        .all(|k| k.starts_with(&format!("{}/", a.prefix))));
    let (keys, _) = list_all(&h, &lister, &format!("{}/jobs/", b.prefix), 10).await;
    assert_eq!(keys, [format!("{}/jobs/1/theirs", b.prefix)]);
    // A prefix with nothing under it: an empty page.
    let (keys, pages) = list_all(&h, &lister, &format!("{}/none/", a.prefix), 10).await;
    assert!(keys.is_empty());
    assert_eq!(pages, 1);
    // Without encoding-type=url (which rusty-s3 asks for), keys come back as they are.
    let url = lister.url(&format!("{}/jobs/1/", a.prefix), 1000, None);
    let (status, body) = get(&h, &url).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("%20b%2Bc"), "{body}");
    let plain = {
        let mut action = lister.bucket.list_objects_v2(Some(&lister.credentials));
        action.with_prefix(format!("{}/jobs/1/", a.prefix));
        action.query_mut().remove("encoding-type");
        action.sign(Duration::from_secs(60))
    };
    let (status, body) = get(&h, &plain).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains(&format!("<Key>{}/jobs/1/a b+c</Key>", a.prefix)),
        "{body}"
    );
}

#[tokio::test]
async fn a_listing_moved_to_another_prefix_or_outside_a_destination_is_refused() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let a = h.enrol(&op, "nas-a").await;
    let b = h.enrol(&op, "nas-b").await;
    put(&h, &b, "secret/object").await;
    let lister = Lister::new(&h);

    // A's listing URL with B's prefix put in: the signature no longer matches.
    let url = lister.url(&format!("{}/", a.prefix), 100, None);
    let mut moved = url.clone();
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "prefix" {
                format!("{}/", b.prefix)
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    moved.query_pairs_mut().clear().extend_pairs(&pairs);
    let (status, body) = get(&h, &moved).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("SignatureDoesNotMatch"), "{body}");
    assert!(!body.contains("secret/object"));
    // Dropping the prefix, or another page size, breaks it too.
    let mut unscoped = url.clone();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "prefix")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    unscoped.query_pairs_mut().clear().extend_pairs(&kept);
    assert_eq!(get(&h, &unscoped).await.0, StatusCode::FORBIDDEN);
    let resized = Url::parse(&url.as_str().replace("max-keys=100", "max-keys=1000")).unwrap();
    assert_eq!(get(&h, &resized).await.0, StatusCode::FORBIDDEN);
    // Unsigned: refused.
    let (status, _, _) = h
        .send(
            Request::get(format!("/s3/coffer?list-type=2&prefix={}/", a.prefix))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Validly signed, but not under one destination: the whole bucket, a tenant, a
    // destination's name without its "/", or a folder escaping it.
    let tenant = a.prefix.split('/').next().unwrap();
    for prefix in [
        String::new(),
        format!("{tenant}/"),
        a.prefix.clone(),
        format!("{}/../", a.prefix),
    ] {
        let (status, body) = get(&h, &lister.url(&prefix, 10, None)).await;
        assert!(
            status == StatusCode::FORBIDDEN || status == StatusCode::BAD_REQUEST,
            "{prefix:?}: {status} {body}"
        );
        assert!(!body.contains("<Contents>"), "{prefix:?}: {body}");
    }
    // A revoked agent's destination cannot be listed any more.
    let (status, _) = h
        .call(
            Method::POST,
            &format!("/v1/agents/{}/revoke", b.agent_id),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = get(&h, &lister.url(&format!("{}/", b.prefix), 10, None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body.contains("revoked"), "{body}");
}
