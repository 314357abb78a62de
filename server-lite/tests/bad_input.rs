//! One test per class of bad input: enrolment tokens (wrong, expired, reused), revoked
//! keys, expired or tampered pre-signed URLs, path traversal, oversized bodies, wrong
//! types and malformed JSON, rate limits.

#[path = "support/harness.rs"]
mod harness;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use harness::{checksum, Harness};
use serde_json::json;

#[tokio::test]
async fn enrolment_tokens_that_are_wrong_expired_or_used_are_refused() {
    let h = Harness::new();
    let (tenant, op) = h.tenant("acme").await;
    let enrol = |token: String| {
        let h = &h;
        async move {
            h.call(
                Method::POST,
                "/v1/enroll",
                None,
                Some(json!({"token": token, "hostname": "nas", "version": "1"})),
            )
            .await
        }
    };
    // Unknown tokens, and tokens of another kind.
    let (status, body) = enrol(format!("cfe_{}", "0".repeat(64))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = enrol(op.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Used once, refused the second time.
    let token = h.enrolment_token(&op).await;
    let (status, _) = enrol(token.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = enrol(token).await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(body["error"]["code"], "enrolment_token_used");

    // Expired.
    let (_, body) = h
        .call(
            Method::POST,
            "/v1/enrolment-tokens",
            Some(&op),
            Some(json!({"ttl_secs": 1})),
        )
        .await;
    let token = body["token"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, body) = enrol(token).await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(body["error"]["code"], "enrolment_token_expired");

    // A TTL beyond the limit is refused, naming the field.
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/enrolment-tokens",
            Some(&op),
            Some(json!({"ttl_secs": 99999999})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("ttl_secs"));

    // Only one agent came of all this, and the refusals are audited.
    let (_, body) = h.call(Method::GET, "/v1/agents", Some(&op), None).await;
    assert_eq!(body["agents"].as_array().unwrap().len(), 1);
    let audit = h.audit(Some(&tenant)).await;
    let denied: Vec<_> = audit
        .iter()
        .filter(|e| e["action"] == "agent.enrol" && e["outcome"] == "denied")
        .collect();
    assert_eq!(denied.len(), 2, "{denied:?}");
}

#[tokio::test]
async fn a_revoked_agent_key_stops_working_at_once() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let job = h.job(&op, &agent.agent_id, "nightly").await;
    h.call(
        Method::POST,
        &format!("/v1/jobs/{job}/run"),
        Some(&op),
        None,
    )
    .await;
    let (status, _) = h
        .call(
            Method::POST,
            "/v1/agent/heartbeat",
            Some(&agent.api_key),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // A URL signed before the revocation...
    let (_, signed) = h
        .presign(&agent.api_key, json!({"op": "put", "key": "k/x"}))
        .await;
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/v1/agents/{}/revoke", agent.agent_id),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["agent"]["status"], "revoked");
    for (method, path) in [
        (Method::POST, "/v1/agent/heartbeat"),
        (Method::GET, "/v1/agent/poll?wait_secs=0"),
        (Method::POST, "/v1/agent/repository-key"),
    ] {
        let body = (method == Method::POST).then(|| json!({}));
        let (status, answer) = h.call(method, path, Some(&agent.api_key), body).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {answer}");
    }
    let (status, _) = h
        .presign(&agent.api_key, json!({"op": "get", "key": "x"}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // ...stops working at once too.
    let (status, _, body) = h.send_presigned(&signed, b"late".to_vec(), &[]).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(String::from_utf8_lossy(&body).contains("revoked"));
    // Its queued work was failed, and it cannot be given new work.
    let (_, body) = h.call(Method::GET, "/v1/runs", Some(&op), None).await;
    assert_eq!(body["runs"][0]["status"], "failed");
    assert_eq!(body["runs"][0]["error"], "agent revoked");
    let (status, _) = h
        .call(
            Method::POST,
            &format!("/v1/jobs/{job}/run"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = h
        .call(
            Method::POST,
            &format!("/v1/agents/{}/revoke", agent.agent_id),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    // Unknown and missing credentials too.
    let (status, _) = h
        .call(Method::GET, "/v1/agents", Some("cfo_nope"), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = h.call(Method::GET, "/v1/agents", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
}

#[tokio::test]
async fn expired_tampered_and_traversing_presigned_requests_are_refused() {
    let h = Harness::open(tempfile::tempdir().unwrap(), |c| {
        c.presign_expiry = std::time::Duration::from_secs(1);
    });
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let a = &agent.api_key;
    let data = b"object bytes".to_vec();
    let (_, put) = h
        .presign(
            a,
            json!({"op": "put", "key": "k/one", "checksum_sha256": checksum(&data)}),
        )
        .await;

    // A body that does not match the signed checksum: refused, nothing visible.
    let (status, _, body) = h.send_presigned(&put, b"other bytes".to_vec(), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("BadDigest"));
    let stored = h
        .dir
        .path()
        .join("objects")
        .join(&agent.prefix)
        .join("k/one");
    assert!(!stored.exists());
    // A payload hash that s3s checks as the body streams (`x-amz-content-sha256`, added
    // unsigned) and the body does not match: the caller's mistake, nothing visible.
    let (zeros, length) = ("0".repeat(64), data.len().to_string());
    let (status, _, body) = h
        .send_presigned(
            &put,
            data.clone(),
            &[
                ("x-amz-content-sha256", &zeros),
                ("content-length", &length),
            ],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(!stored.exists());

    // A signed header changed or left out: signature mismatch.
    let mut altered = put.clone();
    altered["headers"] = json!([["x-amz-checksum-sha256", checksum(b"other bytes")]]);
    let (status, _, body) = h
        .send_presigned(&altered, b"other bytes".to_vec(), &[])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&body).contains("SignatureDoesNotMatch"));
    let mut stripped = put.clone();
    stripped["headers"] = json!([]);
    assert_eq!(
        h.send_presigned(&stripped, data.clone(), &[]).await.0,
        StatusCode::FORBIDDEN
    );

    // Method, key, query and signature tampering.
    let url = put["url"].as_str().unwrap().to_owned();
    for tampered in [
        url.replace("k/one", "k/two"),
        url.replace("X-Amz-Expires=1", "X-Amz-Expires=3600"),
        format!("{url}&partNumber=1"),
        {
            let i = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
            let flipped = if &url[i..i + 1] == "0" { "1" } else { "0" };
            format!("{}{}{}", &url[..i], flipped, &url[i + 1..])
        },
    ] {
        let mut t = put.clone();
        t["url"] = json!(tampered);
        let (status, _, body) = h.send_presigned(&t, data.clone(), &[]).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "{tampered}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let mut as_delete = put.clone();
    as_delete["method"] = json!("DELETE");
    assert_eq!(
        h.send_presigned(&as_delete, Vec::new(), &[]).await.0,
        StatusCode::FORBIDDEN
    );
    // Unsigned requests, and traversal in the path of one.
    for path in [
        "/s3/coffer/x",
        "/s3/coffer/../../etc/passwd",
        "/s3/coffer/%2e%2e/kek.hex",
    ] {
        let (status, _, _) = h
            .send(Request::get(path).body(Body::empty()).unwrap())
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }

    // The untampered URL works, until it expires.
    assert_eq!(
        h.send_presigned(&put, data.clone(), &[]).await.0,
        StatusCode::OK
    );
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, _, body) = h.send_presigned(&put, data.clone(), &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("AccessDenied") && text.contains("Request has expired"),
        "{text}"
    );

    // Path traversal and absolute keys are refused before anything is signed.
    for key in [
        "../x",
        "a/../../b",
        "/etc/passwd",
        "a//b",
        "",
        "a\\b",
        ".coffer-tmp-1",
    ] {
        let (status, body) = h.presign(a, json!({"op": "put", "key": key})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{key:?}: {body}");
        assert_eq!(body["error"]["code"], "invalid_key");
    }
    // Bad presign parameters name the field.
    let (status, body) = h
        .presign(
            a,
            json!({"op": "upload_part", "key": "k", "part_number": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("upload_id"),
        "{body}"
    );
    let (status, body) = h.presign(a, json!({"op": "fly", "key": "k"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("op"),
        "{body}"
    );
}

#[tokio::test]
async fn oversized_malformed_and_mistyped_bodies_get_clear_errors() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let a = &agent.api_key;

    // Oversized: 413, with the limit.
    let big = json!({"lines": [{"level": "info", "message": "x".repeat(100_000), "time": "2026-11-23T10:00:00Z"}]});
    let (status, body) = h
        .call(Method::POST, "/v1/agent/logs", Some(a), Some(big))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "body_too_large");
    assert!(body["error"]["message"].as_str().unwrap().contains("65536"));

    // Wrong types name the field.
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/agent/runs/1/progress",
            Some(a),
            Some(json!({"bytes": "ten", "files": 1})),
        )
        .await;
    assert!(
        status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
        "{body}"
    );
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/jobs",
            Some(&op),
            Some(json!({"agent_id": agent.agent_id, "name": "n", "sources": "/not-a-list"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_field");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("sources"),
        "{body}"
    );
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/agent/heartbeat",
            Some(a),
            Some(json!({"version": 5})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("version"),
        "{body}"
    );
    // A platform that is not Rust's names for one (markup, capitals, a missing half) is
    // refused, naming the field.
    for platform in [
        json!({"os": "<b>linux</b>", "arch": "x86_64"}),
        json!({"os": "Linux", "arch": "x86_64"}),
        json!({"os": "linux"}),
        json!("linux/x86_64"),
    ] {
        let (status, body) = h
            .call(
                Method::POST,
                "/v1/agent/heartbeat",
                Some(a),
                Some(json!({"version": "1", "platform": platform})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{platform}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("platform"),
            "{body}"
        );
    }
    let (status, body) = h.call(Method::POST, "/v1/jobs", Some(&op), Some(json!({"agent_id": agent.agent_id, "name": "n", "sources": ["/x"], "schedule": "every day"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("schedule"),
        "{body}"
    );
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/jobs",
            Some(&op),
            Some(json!({"agent_id": agent.agent_id, "name": "n", "sources": ["relative"]})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("sources[0]"),
        "{body}"
    );
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/enroll",
            None,
            Some(json!({"token": "cfe_x", "hostname": "nas", "extra": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("extra"),
        "{body}"
    );

    // Malformed JSON and a missing content type.
    let request = Request::post("/v1/agent/heartbeat")
        .header("authorization", format!("Bearer {a}"))
        .header("content-type", "application/json")
        .body(Body::from("{\"version\": "))
        .unwrap();
    let (status, _, body) = h.send(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&body).contains("malformed_json"));
    let request = Request::post("/v1/agent/heartbeat")
        .header("authorization", format!("Bearer {a}"))
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(h.send(request).await.0, StatusCode::BAD_REQUEST);

    // Bad query parameters name the parameter.
    let (status, body) = h
        .call(Method::GET, "/v1/agent/poll?wait_secs=31", Some(a), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("wait_secs"));
    let (status, body) = h
        .call(Method::GET, "/v1/agent/poll?wait_secs=soon", Some(a), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("wait_secs"));
    let (status, body) = h
        .call(Method::GET, "/v1/runs?limit=0", Some(&op), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("limit"));

    // Completion with a restore point under another key, or escaping its prefix.
    let job = h.job(&op, &agent.agent_id, "nightly").await;
    h.call(
        Method::POST,
        &format!("/v1/jobs/{job}/run"),
        Some(&op),
        None,
    )
    .await;
    let (_, body) = h
        .call(Method::GET, "/v1/agent/poll?wait_secs=0", Some(a), None)
        .await;
    let run = body["work"]["run_id"].as_str().unwrap().to_owned();
    let rp = |snapshot: &str, prefix: &str| {
        json!({"status": "succeeded", "bytes": 1, "files": 1, "restore_point": {
        "name": "n", "prefix": prefix, "snapshot": snapshot, "stored_bytes": 1, "content_bytes": 1, "files": 1,
        "created_at": "2026-11-23T10:00:00Z"}})
    };
    let path = format!("/v1/agent/runs/{run}/complete");
    let (status, body) = h
        .call(
            Method::POST,
            &path,
            Some(a),
            Some(rp("not-a-snapshot", "repo")),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("restore_point.snapshot"),
        "{body}"
    );
    let (status, body) = h
        .call(
            Method::POST,
            &path,
            Some(a),
            Some(rp(&"ab".repeat(16), "../other")),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("restore_point.prefix"));
    // Unknown routes and IDs are JSON 404s, internal details never shown.
    let (status, body) = h
        .call(Method::GET, "/v1/agents/not-a-number", Some(&op), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn enrolment_and_failed_authentication_are_rate_limited() {
    let h = Harness::open(tempfile::tempdir().unwrap(), |c| {
        c.enrol_per_minute = 3;
        c.auth_failures_per_minute = 5;
    });
    let (_, op) = h.tenant("acme").await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (status, _) = h
            .call(
                Method::POST,
                "/v1/enroll",
                None,
                Some(json!({"token": format!("cfe_{}", "1".repeat(64)), "hostname": "n"})),
            )
            .await;
        statuses.push(status);
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );

    let h = Harness::open(tempfile::tempdir().unwrap(), |c| {
        c.auth_failures_per_minute = 5
    });
    let (_, op2) = h.tenant("acme").await;
    let mut last = None;
    for i in 0..10 {
        let request = Request::get("/v1/agents")
            .header("authorization", format!("Bearer cfo_guess{i}"))
            .body(Body::empty())
            .unwrap();
        let (status, headers, _) = h.send(request).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            last = headers.get("retry-after").cloned();
            break;
        }
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert!(
        last.is_some(),
        "no 429 with Retry-After after repeated failures"
    );
    // While the guesses from that address get 429, a valid token from it still works
    // (finding 3 of the probe: the real agent beside a guesser was locked out).
    let (status, _) = h.call(Method::GET, "/v1/agents", Some(&op2), None).await;
    assert_eq!(status, StatusCode::OK);
    let request = Request::get("/v1/agents")
        .header("authorization", "Bearer cfo_guess-again")
        .body(Body::empty())
        .unwrap();
    assert_eq!(h.send(request).await.0, StatusCode::TOO_MANY_REQUESTS);
    let _ = op;
}

#[tokio::test]
async fn the_embedded_store_takes_every_key_it_signs_up_to_its_length_limit() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    // A relative key that makes the full key exactly `total` bytes long.
    let key_of = |total: usize| {
        let n = total - agent.prefix.len() - 1;
        let k = (n - 1) / 201;
        let mut key = vec!["a".repeat(200); k].join("/");
        if k > 0 {
            key.push('/');
        }
        key.push_str(&"b".repeat(n - 201 * k));
        assert_eq!(agent.prefix.len() + 1 + key.len(), total);
        key
    };
    let limit = coffer_server::local_s3::MAX_KEY_BYTES;
    let data = b"at the limit".to_vec();
    let (status, put) = h
        .presign(
            &agent.api_key,
            json!({"op": "put", "key": key_of(limit), "checksum_sha256": checksum(&data)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{put}");
    let (status, _, body) = h.send_presigned(&put, data, &[]).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    // One byte more is refused before anything is signed, not signed and then refused.
    let (status, body) = h
        .presign(
            &agent.api_key,
            json!({"op": "put", "key": key_of(limit + 1)}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_key");
}

#[tokio::test]
async fn signatures_are_checked_for_the_public_host_the_time_and_the_validity() {
    use rusty_s3::actions::S3Action;
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let data = b"signed for here and now".to_vec();
    let (_, put) = h
        .presign(
            &agent.api_key,
            json!({"op": "put", "key": "k", "checksum_sha256": checksum(&data)}),
        )
        .await;
    assert_eq!(h.send_presigned(&put, data, &[]).await.0, StatusCode::OK);
    let creds = &h.state.stores.credentials;
    let credentials =
        rusty_s3::Credentials::new(creds.access_key.clone(), creds.secret.to_string());
    let key = format!("{}/k", agent.prefix);
    // A GET of the object signed with the server's credentials, for `origin`, at `at`,
    // valid for `secs`.
    let get = |origin: &str, at: jiff::Timestamp, secs: u64| {
        let endpoint = url::Url::parse(&format!("{origin}/s3/")).unwrap();
        let bucket =
            rusty_s3::Bucket::new(endpoint, rusty_s3::UrlStyle::Path, "coffer", "us-east-1")
                .unwrap();
        let url = bucket
            .get_object(Some(&credentials), &key)
            .sign_with_time(std::time::Duration::from_secs(secs), &at);
        Request::get(format!("{}?{}", url.path(), url.query().unwrap()))
            .body(Body::empty())
            .unwrap()
    };
    let now = jiff::Timestamp::now();
    let later = |s: i64| now.checked_add(jiff::SignedDuration::from_secs(s)).unwrap();
    let public = harness::PUBLIC_URL;
    assert_eq!(h.send(get(public, now, 60)).await.0, StatusCode::OK);
    // Verified against the public URL's host, whatever Host the request came with.
    let (status, _, body) = h.send(get("http://127.0.0.1:10", now, 60)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&body).contains("SignatureDoesNotMatch"));
    let mut with_host = get(public, now, 60);
    with_host
        .headers_mut()
        .insert("host", "elsewhere.example:8443".parse().unwrap());
    assert_eq!(h.send(with_host).await.0, StatusCode::OK);
    // A signing time a little ahead of the server's clock passes; five minutes ahead
    // does not; an hour back with a minute's validity has expired.
    assert_eq!(h.send(get(public, later(60), 60)).await.0, StatusCode::OK);
    assert_eq!(
        h.send(get(public, later(400), 60)).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, _, body) = h.send(get(public, later(-3600), 60)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&body).contains("Request has expired"));
    // Signed, but for longer than the store accepts.
    assert_eq!(h.send(get(public, now, 3600)).await.0, StatusCode::OK);
    assert_eq!(
        h.send(get(public, now, 3601)).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn repeated_bad_signatures_slow_the_address_down() {
    let h = Harness::open(tempfile::tempdir().unwrap(), |c| {
        c.auth_failures_per_minute = 5
    });
    let mut statuses = Vec::new();
    for i in 0..10 {
        let path = format!("/s3/coffer/t1/x/{i}?X-Amz-Signature=00");
        let (status, headers, body) = h
            .send(Request::get(path).body(Body::empty()).unwrap())
            .await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(String::from_utf8_lossy(&body).contains("SlowDown"));
            assert!(headers.get("retry-after").is_some());
        }
        statuses.push(status);
    }
    assert_eq!(statuses[0], StatusCode::FORBIDDEN);
    assert_eq!(statuses[9], StatusCode::SERVICE_UNAVAILABLE, "{statuses:?}");
}

#[tokio::test]
async fn behind_a_proxy_one_client_guessing_does_not_block_the_others() {
    let h = Harness::open(tempfile::tempdir().unwrap(), |c| {
        c.auth_failures_per_minute = 3;
        c.trust_forwarded_for = true;
    });
    let (_, op) = h.tenant("acme").await;
    let from = |ip: &str, token: &str| {
        Request::get("/v1/agents")
            .header("x-forwarded-for", format!("203.0.113.9, {ip}"))
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    let mut last = StatusCode::OK;
    for _ in 0..6 {
        last = h.send(from("198.51.100.1", "cfo_guess")).await.0;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
    // Another client behind the same proxy is not affected...
    assert_eq!(h.send(from("198.51.100.2", &op)).await.0, StatusCode::OK);
    // ...and on the guesser's own address a valid token still works while the guesses
    // stay refused.
    assert_eq!(h.send(from("198.51.100.1", &op)).await.0, StatusCode::OK);
    assert_eq!(
        h.send(from("198.51.100.1", "cfo_guess")).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}
