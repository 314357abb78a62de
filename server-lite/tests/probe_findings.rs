//! One regression test per finding of the loopback probe (issue 14), named after the
//! finding's number. Each failed before its fix; `SECURITY.md` lists them.

#[path = "support/harness.rs"]
mod harness;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use harness::{checksum, Enrolled, Harness};
use serde_json::{json, Value};

/// Claims the agent's next work (a backup must be queued) and returns it.
fn completion(work: &Value, name: &str) -> Value {
    json!({"status": "succeeded", "bytes": 1, "files": 1, "restore_point": {
        "name": name, "prefix": work["spec"]["prefix"], "snapshot": "0123456789abcdef0123456789abcdef",
        "stored_bytes": 1, "content_bytes": 1, "files": 1,
        "created_at": "2026-11-23T10:00:00Z"}})
}

async fn revoke(h: &Harness, op: &str, agent: &Enrolled) {
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/v1/agents/{}/revoke", agent.agent_id),
            Some(op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn finding_01_probe_named_keys_are_checked_for_revocation_like_any_other() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let data = b"not a probe".to_vec();
    let key = "x/.probe-0123456789abcdef";
    let (status, put) = h
        .presign(
            &agent.api_key,
            json!({"op": "put", "key": key, "checksum_sha256": checksum(&data)}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{put}");
    let (_, get) = h
        .presign(&agent.api_key, json!({"op": "get", "key": key}))
        .await;
    assert_eq!(
        h.send_presigned(&put, data.clone(), &[]).await.0,
        StatusCode::OK
    );
    revoke(&h, &op, &agent).await;
    // The URLs are still within their 15 minutes, and their key looks like a probe's:
    // both are refused at once all the same.
    let (status, _, body) = h.send_presigned(&get, Vec::new(), &[]).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, _, _) = h.send_presigned(&put, data, &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A revoked agent cannot presign any more either.
    let (status, _) = h
        .presign(&agent.api_key, json!({"op": "put", "key": "y/.probe-1"}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn finding_02_unauthenticated_requests_leave_no_audit_rows_and_denials_are_throttled() {
    let h = Harness::open(tempfile::tempdir().unwrap(), |c| {
        c.auth_failures_per_minute = 5;
    });
    let (tenant, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let before = h.audit(Some(&tenant)).await.len();
    // A crafted, unsigned path under the tenant's prefix, with escape sequences.
    let path = format!(
        "/s3/coffer/{}/%1b%5b2J%0d%0aforged%20entry?X-Amz-Signature=00",
        agent.prefix
    );
    let (status, _, _) = h
        .send(Request::get(&path).body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let after = h.audit(Some(&tenant)).await;
    assert_eq!(after.len(), before, "{after:#?}");

    // Revoked tokens count as failures: after the quota, 429 and no more audit rows.
    revoke(&h, &op, &agent).await;
    let before = h.audit(Some(&tenant)).await.len();
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let (status, _) = h
            .call(
                Method::POST,
                "/v1/agent/heartbeat",
                Some(&agent.api_key),
                Some(json!({})),
            )
            .await;
        statuses.push(status);
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let added = h.audit(Some(&tenant)).await.len() - before;
    assert!(added <= 6, "{added} audit rows for 20 refused requests");
}

#[tokio::test]
async fn finding_03_limiter_state_stays_bounded() {
    use coffer_server::state::MAX_TRACKED;
    let h = Harness::new();
    let past = std::time::Instant::now();
    let future = past + std::time::Duration::from_secs(60);
    for i in 0..(MAX_TRACKED as u32 + 1000) {
        let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::from(i));
        h.state.limits.block(ip, future);
    }
    assert_eq!(h.state.limits.tracked(), MAX_TRACKED);

    // Lapsed blocks are forgotten by the scheduler's trim.
    let h = Harness::new();
    for i in 0..100u32 {
        h.state
            .limits
            .block(std::net::IpAddr::V4(std::net::Ipv4Addr::from(i)), past);
    }
    assert_eq!(h.state.limits.tracked(), 100);
    h.state.limits.trim();
    assert_eq!(h.state.limits.tracked(), 0);
}

#[tokio::test]
async fn finding_05_a_callers_mistakes_are_4xx() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let job = h.job(&op, &agent.agent_id, "nightly").await;

    // u64::MAX in a byte count.
    let run = h.run_now(&op, &job).await;
    let work = h.claim(&agent).await;
    assert_eq!(work["run_id"], run.as_str());
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/v1/agent/runs/{run}/progress"),
            Some(&agent.api_key),
            Some(json!({"bytes": u64::MAX, "files": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let mut done = completion(&work, "taken");
    done["bytes"] = json!(u64::MAX);
    let path = format!("/v1/agent/runs/{run}/complete");
    let (status, body) = h
        .call(Method::POST, &path, Some(&agent.api_key), Some(done))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = h
        .call(
            Method::POST,
            &path,
            Some(&agent.api_key),
            Some(completion(&work, "taken")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A restore point name that is already taken (same job, so same prefix).
    let run = h.run_now(&op, &job).await;
    let work = h.claim(&agent).await;
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/v1/agent/runs/{run}/complete"),
            Some(&agent.api_key),
            Some(completion(&work, "taken")),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "restore_point_exists");

    // Embedded-store puts on a folder key, under a file, with a 300-byte segment.
    let put = |key: String| {
        let h = &h;
        let agent = &agent;
        async move {
            let (status, signed) = h
                .presign(&agent.api_key, json!({"op": "put", "key": key}))
                .await;
            if status != StatusCode::OK {
                return status;
            }
            h.send_presigned(&signed, b"x".to_vec(), &[]).await.0
        }
    };
    assert_eq!(put("d/inner".into()).await, StatusCode::OK);
    assert_eq!(put("d".into()).await, StatusCode::CONFLICT);
    assert_eq!(put("f".into()).await, StatusCode::OK);
    assert_eq!(put("f/under".into()).await, StatusCode::CONFLICT);
    assert_eq!(
        put("s/".to_owned() + &"a".repeat(300)).await,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn finding_06_agent_logs_are_bounded_rate_limited_and_cleaned() {
    let h = Harness::open(tempfile::tempdir().unwrap(), |c| {
        c.agent_logs_per_minute = 3;
    });
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let line = |m: &str| json!({"level": "error", "message": m, "time": "2026-11-23T10:00:00Z"});
    let send = |lines: Vec<Value>| {
        let h = &h;
        let key = agent.api_key.clone();
        async move {
            h.call(
                Method::POST,
                "/v1/agent/logs",
                Some(&key),
                Some(json!({"lines": lines})),
            )
            .await
        }
    };
    let (status, _) = send(vec![line("disk\u{1b}[2J full\r\nNUL\u{0} here\tok")]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = send(vec![line("x"); 101]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = send(vec![line(&"y".repeat(3000))]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // The failed calls count too: the fourth call in the minute is refused.
    let (status, _) = send(vec![line("z")]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

    let (_, body) = h
        .call(
            Method::GET,
            &format!("/v1/agents/{}/logs", agent.agent_id),
            Some(&op),
            None,
        )
        .await;
    let message = body["lines"][0]["message"].as_str().unwrap().to_owned();
    assert_eq!(
        message,
        "disk\u{fffd}[2J full\u{fffd}\nNUL\u{fffd} here\tok"
    );

    // Retention keeps the newest lines of an agent.
    let kept = coffer_server::db::agents::LOG_LINES_KEPT;
    let (tenant, id) = (
        agent.tenant_id.parse().unwrap(),
        agent.agent_id.parse().unwrap(),
    );
    let lines: Vec<(String, String, i64)> = (0..kept + 50)
        .map(|i| ("info".to_owned(), format!("line {i}"), 0))
        .collect();
    h.state.db.blocking(|cat| {
        coffer_server::db::agents::insert_logs(cat.connection(), tenant, id, &lines).unwrap()
    });
    let count: i64 = h.state.db.blocking(|cat| {
        cat.connection()
            .query_row("SELECT count(*) FROM agent_logs", [], |r| r.get(0))
            .unwrap()
    });
    assert_eq!(count, kept);
}

#[tokio::test]
async fn finding_07_schedules_have_a_minimum_and_runs_can_be_cancelled() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    for schedule in ["* * * * * *", "* * * * *", "*/2 * * * *"] {
        let (status, body) = h
            .call(
                Method::POST,
                "/v1/jobs",
                Some(&op),
                Some(
                    json!({"agent_id": agent.agent_id, "name": "busy", "sources": ["/x"],
                            "schedule": schedule}),
                ),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{schedule}: {body}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("schedule"));
    }

    // Cancel: a queued run ends, is not handed out, and cannot be cancelled twice.
    let job = h.job(&op, &agent.agent_id, "nightly").await;
    let run = h.run_now(&op, &job).await;
    let cancel = format!("/v1/runs/{run}/cancel");
    let (status, body) = h.call(Method::POST, &cancel, Some(&op), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["run"]["status"], "failed");
    assert!(body["run"]["error"]
        .as_str()
        .unwrap()
        .starts_with("cancelled by operator:"));
    assert!(h.claim(&agent).await.is_null());
    let (status, _) = h.call(Method::POST, &cancel, Some(&op), None).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // A running run can be cancelled too: the agent's next report is refused.
    let run = h.run_now(&op, &job).await;
    assert_eq!(h.claim(&agent).await["run_id"], run.as_str());
    let (status, _) = h
        .call(
            Method::POST,
            &format!("/v1/runs/{run}/cancel"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = h
        .call(
            Method::POST,
            &format!("/v1/agent/runs/{run}/progress"),
            Some(&agent.api_key),
            Some(json!({"bytes": 1, "files": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Deleting a job drops its queued runs.
    let run = h.run_now(&op, &job).await;
    let (status, body) = h
        .call(Method::DELETE, &format!("/v1/jobs/{job}"), Some(&op), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["restore_points"], "kept");
    assert!(h.claim(&agent).await.is_null());
    let (_, body) = h
        .call(Method::GET, &format!("/v1/runs/{run}"), Some(&op), None)
        .await;
    assert_eq!(body["run"]["status"], "failed", "{body}");

    // The scheduler does not stack runs behind one still queued.
    let job = h.job(&op, &agent.agent_id, "hourly").await;
    let (_, body) = h
        .call(Method::GET, &format!("/v1/jobs/{job}"), Some(&op), None)
        .await;
    let due: jiff::Timestamp = body["job"]["next_run_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let first = coffer_server::scheduler::tick(&h.state, due.as_second())
        .await
        .unwrap();
    assert_eq!(first.queued.len(), 1);
    let second = coffer_server::scheduler::tick(&h.state, due.as_second() + 86_400)
        .await
        .unwrap();
    assert!(second.queued.is_empty());
    assert_eq!(second.skipped.len(), 1);
}

#[tokio::test]
async fn finding_08_agents_cannot_delete_or_overwrite() {
    let h = Harness::new();
    let (tenant, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let a = &agent.api_key;
    let (status, body) = h
        .presign(a, json!({"op": "delete", "key": "jobs/1/b.manifest"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = h
        .presign(a, json!({"op": "put", "key": "k", "create_only": false}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = h
        .presign(
            a,
            json!({"op": "complete_multipart", "key": "k", "upload_id": "u", "create_only": false}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let denied = h
        .audit(Some(&tenant))
        .await
        .into_iter()
        .filter(|e| e["action"] == "presign" && e["outcome"] == "denied")
        .count();
    assert_eq!(denied, 3);

    // A put without create_only is create-only: a second one cannot replace the first.
    let (_, put) = h.presign(a, json!({"op": "put", "key": "once"})).await;
    assert_eq!(
        h.send_presigned(&put, b"first".to_vec(), &[]).await.0,
        StatusCode::OK
    );
    let (_, again) = h.presign(a, json!({"op": "put", "key": "once"})).await;
    assert_eq!(
        h.send_presigned(&again, b"second".to_vec(), &[]).await.0,
        StatusCode::PRECONDITION_FAILED
    );
}

#[tokio::test]
async fn finding_09_operator_enrolment_and_admin_tokens_can_be_revoked_or_rotated() {
    let h = Harness::new();
    let (tenant, op) = h.tenant("acme").await;

    // Operator tokens: listed without secrets, revoked by the admin.
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/v1/admin/tenants/{tenant}/operator-tokens"),
            Some(&h.admin),
            Some(json!({"label": "second"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (second_id, second) = (
        body["id"].as_str().unwrap().to_owned(),
        body["token"].as_str().unwrap().to_owned(),
    );
    let list = format!("/v1/admin/tenants/{tenant}/operator-tokens");
    let (_, body) = h.call(Method::GET, &list, Some(&h.admin), None).await;
    assert_eq!(body["tokens"].as_array().unwrap().len(), 2);
    assert!(!body.to_string().contains(&second));
    let (status, _) = h.call(Method::GET, "/v1/agents", Some(&second), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = h
        .call(
            Method::POST,
            &format!("{list}/{second_id}/revoke"),
            Some(&h.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = h.call(Method::GET, "/v1/agents", Some(&second), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = h.call(Method::GET, "/v1/agents", Some(&op), None).await;
    assert_eq!(status, StatusCode::OK);

    // Enrolment tokens: an unused one revoked cannot enrol; a used one is a 409.
    let (_, body) = h
        .call(
            Method::POST,
            "/v1/enrolment-tokens",
            Some(&op),
            Some(json!({"label": "nas"})),
        )
        .await;
    let (id, token) = (
        body["id"].as_str().unwrap().to_owned(),
        body["token"].as_str().unwrap().to_owned(),
    );
    let (status, _) = h
        .call(
            Method::POST,
            &format!("/v1/enrolment-tokens/{id}/revoke"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/enroll",
            None,
            Some(json!({"token": token, "hostname": "nas"})),
        )
        .await;
    assert_eq!(status, StatusCode::GONE);
    assert_eq!(body["error"]["code"], "enrolment_token_revoked");
    h.enrol(&op, "nas2").await;
    let (_, body) = h
        .call(Method::GET, "/v1/enrolment-tokens", Some(&op), None)
        .await;
    let used = body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| !t["used_at"].is_null())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = h
        .call(
            Method::POST,
            &format!("/v1/enrolment-tokens/{used}/revoke"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // The admin token rotates: the old one stops, the new one works.
    let (status, body) = h
        .call(Method::POST, "/v1/admin/token/rotate", Some(&h.admin), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let new_admin = body["token"].as_str().unwrap().to_owned();
    let (status, _) = h
        .call(Method::GET, "/v1/admin/tenants", Some(&h.admin), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = h
        .call(Method::GET, "/v1/admin/tenants", Some(&new_admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn finding_10_ids_do_not_count_and_missing_looks_like_forbidden() {
    let h = Harness::new();
    let (_, op_a) = h.tenant("a").await;
    let agent_a = h.enrol(&op_a, "nas-a").await;
    let mut ids = Vec::new();
    for name in ["j1", "j2", "j3"] {
        ids.push(
            h.job(&op_a, &agent_a.agent_id, name)
                .await
                .parse::<i64>()
                .unwrap(),
        );
    }
    let (_, op_b) = h.tenant("b").await;
    let agent_b = h.enrol(&op_b, "nas-b").await;
    let first_of_b: i64 = h.job(&op_b, &agent_b.agent_id, "j1").await.parse().unwrap();
    ids.push(first_of_b);
    // Time-ordered, not counted: each ID's high bits are its creation time in
    // milliseconds since 2025 (within a minute of now), whatever was made before it.
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
        - 1_735_689_600_000;
    let tenant_b: i64 = agent_b.tenant_id.parse().unwrap();
    ids.push(tenant_b);
    for id in &ids {
        assert!((now_ms - (id >> 12)).abs() < 60_000, "{id} in {ids:?}");
    }
    assert!(ids[..4].windows(2).all(|p| p[1] > p[0]), "{ids:?}");

    // B asking for A's job and for a job that does not exist: the same answer.
    let theirs = h
        .call(
            Method::GET,
            &format!("/v1/jobs/{}", ids[0]),
            Some(&op_b),
            None,
        )
        .await;
    let missing = h
        .call(
            Method::GET,
            &format!("/v1/jobs/{}", ids[0] + 7),
            Some(&op_b),
            None,
        )
        .await;
    assert_eq!(theirs, missing);
    assert_eq!(theirs.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn finding_11_deceptive_names_and_traversing_targets_are_refused() {
    let h = Harness::new();
    for name in ["nas1\u{202e}gpj.exe\u{200b}", "a\u{2066}b"] {
        let (status, body) = h
            .call(
                Method::POST,
                "/v1/admin/tenants",
                Some(&h.admin),
                Some(json!({"name": name})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    let (_, op) = h.tenant("acme").await;
    for label in ["a\u{0}b", "a\u{1b}[31mb"] {
        let (status, _) = h
            .call(
                Method::POST,
                "/v1/enrolment-tokens",
                Some(&op),
                Some(json!({"label": label})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{label:?}");
    }
    let token = h.enrolment_token(&op).await;
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/enroll",
            None,
            Some(json!({"token": token, "hostname": "nas1\u{202e}gpj.exe"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let agent = h.enrol(&op, "nas").await;
    let (status, _) = h
        .call(
            Method::POST,
            "/v1/jobs",
            Some(&op),
            Some(
                json!({"agent_id": agent.agent_id, "name": "night\u{200b}ly",
                        "sources": ["/x"]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A restore target with `..` is refused before any agent sees it.
    let job = h.job(&op, &agent.agent_id, "nightly").await;
    let run = h.run_now(&op, &job).await;
    let work = h.claim(&agent).await;
    let (status, _) = h
        .call(
            Method::POST,
            &format!("/v1/agent/runs/{run}/complete"),
            Some(&agent.api_key),
            Some(completion(&work, "b1")),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = h
        .call(Method::GET, "/v1/restore-points", Some(&op), None)
        .await;
    let rp = body["restore_points"][0]["id"].as_str().unwrap().to_owned();
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/v1/restore-points/{rp}/restore"),
            Some(&op),
            Some(json!({"target": "/srv/restore/../../etc"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("target"));
}
