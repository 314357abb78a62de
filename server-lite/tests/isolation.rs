//! Tenant isolation: a second tenant's operator and agent try every route on the
//! first tenant's objects and get 403 or 404, and each attempt is audited.

#[path = "support/harness.rs"]
mod harness;

use axum::http::{Method, StatusCode};
use harness::{checksum, Harness};
use serde_json::json;

#[tokio::test]
async fn a_second_tenant_cannot_reach_the_first_tenants_objects() {
    let h = Harness::new();
    let (tenant_a, op_a) = h.tenant("alpha").await;
    let (_tenant_b, op_b) = h.tenant("beta").await;
    let agent_a = h.enrol(&op_a, "a-nas").await;
    let agent_b = h.enrol(&op_b, "b-nas").await;

    // Tenant A: a job, a finished backup with a restore point, an object in storage.
    let job = h.job(&op_a, &agent_a.agent_id, "nightly").await;
    let (_, body) = h
        .call(
            Method::POST,
            &format!("/v1/jobs/{job}/run"),
            Some(&op_a),
            None,
        )
        .await;
    let run = body["run"]["id"].as_str().unwrap().to_owned();
    let (_, body) = h
        .call(
            Method::GET,
            "/v1/agent/poll?wait_secs=0",
            Some(&agent_a.api_key),
            None,
        )
        .await;
    let w = body["work"].clone();
    let (status, _) = h
        .call(Method::POST, &format!("/v1/agent/runs/{run}/complete"), Some(&agent_a.api_key),
              Some(json!({"status": "succeeded", "bytes": 1, "files": 1, "restore_point": {
                  "name": w["spec"]["name"], "prefix": w["spec"]["prefix"], "snapshot": "0123456789abcdef0123456789abcdef",
                  "stored_bytes": 1, "content_bytes": 1, "files": 1, "created_at": "2026-11-23T10:00:00Z"}})))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = h
        .call(Method::GET, "/v1/restore-points", Some(&op_a), None)
        .await;
    let rp = body["restore_points"][0]["id"].as_str().unwrap().to_owned();
    // A second run of A's, still queued, for the agent routes.
    let (_, body) = h
        .call(
            Method::POST,
            &format!("/v1/jobs/{job}/run"),
            Some(&op_a),
            None,
        )
        .await;
    let queued = body["run"]["id"].as_str().unwrap().to_owned();
    let data = b"tenant A's secret object".to_vec();
    let (_, put) = h
        .presign(
            &agent_a.api_key,
            json!({"op": "put", "key": "objects/x", "checksum_sha256": checksum(&data)}),
        )
        .await;
    assert_eq!(
        h.send_presigned(&put, data.clone(), &[]).await.0,
        StatusCode::OK
    );

    let before = h
        .audit(Some(&tenant_a))
        .await
        .iter()
        .filter(|e| e["outcome"] == "denied")
        .count();

    // B's operator, on every operator route naming A's objects.
    let a_agent = &agent_a.agent_id;
    let dest = &agent_a.destination_id;
    let attempts: Vec<(Method, String, Option<serde_json::Value>)> = vec![
        (Method::GET, format!("/v1/agents/{a_agent}"), None),
        (Method::POST, format!("/v1/agents/{a_agent}/revoke"), None),
        (Method::GET, format!("/v1/agents/{a_agent}/logs"), None),
        (Method::GET, format!("/v1/destinations/{dest}"), None),
        (Method::GET, format!("/v1/jobs/{job}"), None),
        (Method::DELETE, format!("/v1/jobs/{job}"), None),
        (Method::POST, format!("/v1/jobs/{job}/run"), None),
        (Method::GET, format!("/v1/runs/{run}"), None),
        (Method::POST, format!("/v1/runs/{run}/retry"), None),
        (Method::GET, format!("/v1/restore-points/{rp}"), None),
        (
            Method::POST,
            format!("/v1/restore-points/{rp}/restore"),
            Some(json!({"target": "/steal"})),
        ),
        (
            Method::POST,
            format!("/v1/restore-points/{rp}/verify"),
            None,
        ),
        (
            Method::POST,
            "/v1/jobs".to_owned(),
            Some(json!({"agent_id": a_agent, "name": "evil", "sources": ["/"]})),
        ),
    ];
    let count = attempts.len();
    for (method, path, body) in attempts {
        let (status, answer) = h.call(method.clone(), &path, Some(&op_b), body).await;
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::FORBIDDEN,
            "{method} {path}: {status} {answer}"
        );
    }
    // Bulk restore of A's restore point by B: refused per item.
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/restores",
            Some(&op_b),
            Some(json!({"items": [{"restore_point_id": rp, "target": "/steal"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["totals"]["queued"], 0);
    assert_eq!(body["results"][0]["error"]["code"], "not_found");
    // B's lists show nothing of A's.
    for (path, field) in [
        ("/v1/agents", "agents"),
        ("/v1/jobs", "jobs"),
        ("/v1/runs", "runs"),
        ("/v1/restore-points", "restore_points"),
        ("/v1/destinations", "destinations"),
    ] {
        let (_, body) = h.call(Method::GET, path, Some(&op_b), None).await;
        for item in body[field].as_array().unwrap() {
            assert_ne!(item["tenant_id"], tenant_a.as_str(), "{path} leaks {item}");
        }
    }

    // B's agent, on A's runs.
    for path in [
        format!("/v1/agent/runs/{queued}/progress"),
        format!("/v1/agent/runs/{run}/complete"),
    ] {
        let body = if path.ends_with("progress") {
            json!({"bytes": 1, "files": 1})
        } else {
            json!({"status": "failed", "bytes": 0, "files": 0, "error": "x"})
        };
        let (status, _) = h
            .call(Method::POST, &path, Some(&agent_b.api_key), Some(body))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    // B's agent never gets A's queued run.
    let (_, body) = h
        .call(
            Method::GET,
            "/v1/agent/poll?wait_secs=0",
            Some(&agent_b.api_key),
            None,
        )
        .await;
    assert!(body["work"].is_null());
    // B's agent cannot presign outside its own destination...
    for key in [
        format!("../{}/objects/x", agent_a.prefix),
        format!("/{}/objects/x", agent_a.prefix),
    ] {
        let (status, body) = h
            .presign(&agent_b.api_key, json!({"op": "get", "key": key}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{key}: {body}");
        assert_eq!(body["error"]["code"], "invalid_key");
    }
    // ...its URL for a key of its own resolves under its own prefix only...
    let (_, own) = h
        .presign(&agent_b.api_key, json!({"op": "get", "key": "objects/x"}))
        .await;
    assert_eq!(
        h.send_presigned(&own, Vec::new(), &[]).await.0,
        StatusCode::NOT_FOUND
    );
    // ...and pointing its signed URL at A's object breaks the signature.
    let mut moved = own.clone();
    moved["url"] = json!(own["url"]
        .as_str()
        .unwrap()
        .replace(&agent_b.prefix, &agent_a.prefix));
    let (status, _, body) = h.send_presigned(&moved, Vec::new(), &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(String::from_utf8_lossy(&body).contains("SignatureDoesNotMatch"));

    // Credentials of the wrong kind are refused outright.
    let (status, _) = h
        .call(Method::GET, "/v1/agents", Some(&agent_b.api_key), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = h
        .call(Method::GET, "/v1/agent/poll?wait_secs=0", Some(&op_b), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = h
        .call(Method::GET, "/v1/admin/tenants", Some(&op_b), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A is untouched: its agent is not revoked, its job exists, no run was queued for B.
    let (_, body) = h
        .call(
            Method::GET,
            &format!("/v1/agents/{a_agent}"),
            Some(&op_a),
            None,
        )
        .await;
    assert_ne!(body["agent"]["status"], "revoked");
    let (status, _) = h
        .call(Method::GET, &format!("/v1/jobs/{job}"), Some(&op_a), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = h.call(Method::GET, "/v1/runs", Some(&op_a), None).await;
    assert_eq!(body["runs"].as_array().unwrap().len(), 2);

    // Every attributable attempt on A's objects is in A's audit log as denied: the
    // operator routes, the bulk item and the two agent routes. The altered URL is not:
    // its signature names no one, and its path is whatever the caller wrote.
    let after = h.audit(Some(&tenant_a)).await;
    let denied: Vec<_> = after.iter().filter(|e| e["outcome"] == "denied").collect();
    assert!(
        denied.len() - before >= count + 1 + 2,
        "only {} new denied entries: {denied:#?}",
        denied.len() - before
    );
    assert!(!denied.iter().any(|e| e["action"] == "s3.request"));
    assert!(denied
        .iter()
        .any(|e| e["actor"].as_str().unwrap().starts_with("agent:")));
}
