//! The whole agent life cycle through the real router: enrol, heartbeat, poll, presign
//! and upload through the embedded store, complete, restore point recorded, restore
//! dispatched and completed.

#[path = "support/harness.rs"]
mod harness;

use axum::http::{Method, StatusCode};
use base64::Engine;
use harness::{checksum, Harness};
use serde_json::json;

#[tokio::test]
async fn agent_life_cycle_from_enrolment_to_restore() {
    let h = Harness::new();
    assert!(h.admin.starts_with("cfa_"));
    let (tenant, op) = h.tenant("acme").await;
    assert!(op.starts_with("cfo_"));
    let agent = h.enrol(&op, "nas1").await;
    assert!(agent.api_key.starts_with("cfg_"));
    assert_eq!(agent.tenant_id, tenant);
    assert!(agent.prefix.starts_with(&format!("t{tenant}/")));
    let key = base64::engine::general_purpose::STANDARD
        .decode(&agent.key_b64)
        .unwrap();
    assert_eq!(key.len(), 32);
    let secret = coffer_core::SecretKey::try_from_slice(&key).unwrap();
    assert_eq!(hex::encode(secret.id().as_bytes()), agent.key_id);
    let a = agent.api_key.as_str();

    // The key opens the repository for writing only.
    let repo = h.open_repository(&agent, &agent.key_b64).unwrap();
    assert_eq!(
        repo.keys().access(),
        coffer_adapters::repo::keys::Access::WriteOnly
    );
    // An agent that lost its state gets a new key; the old one then opens nothing.
    let (status, body) = h
        .call(Method::POST, "/v1/agent/repository-key", Some(a), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_ne!(body["key"], agent.key_b64.as_str());
    assert_eq!(
        (
            body["suite"].as_str(),
            body["access"].as_str(),
            body["folder"].as_str()
        ),
        (Some("aes-256-gcm"), Some("write-only"), Some("repo"))
    );
    assert!(h.open_repository(&agent, &agent.key_b64).is_err());
    let reissued = body["key"].as_str().unwrap().to_owned();
    assert!(h.open_repository(&agent, &reissued).is_ok());
    let agent = harness::Enrolled {
        key_b64: reissued,
        ..agent.clone()
    };
    let a = agent.api_key.as_str();

    // Heartbeat: online, version recorded.
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/agent/heartbeat",
            Some(a),
            Some(json!({"version": "0.1.1"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["server_time"].as_str().unwrap().ends_with('Z'));
    let (_, body) = h
        .call(
            Method::GET,
            &format!("/v1/agents/{}", agent.agent_id),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(body["agent"]["status"], "online");
    assert_eq!(body["agent"]["version"], "0.1.1");
    assert_eq!(body["destination"]["prefix"], agent.prefix.as_str());
    assert_eq!(body["destination"]["locked"], true);

    // Nothing to do yet: a short poll answers null.
    let (status, body) = h
        .call(Method::GET, "/v1/agent/poll?wait_secs=0", Some(a), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["work"].is_null(), "{body}");

    // A job, run now; a waiting poll is woken with the work.
    let job = h.job(&op, &agent.agent_id, "nightly").await;
    let poll = {
        let app = h.app.clone();
        let a = a.to_owned();
        tokio::spawn(async move {
            use tower::ServiceExt;
            let req = axum::http::Request::get("/v1/agent/poll?wait_secs=10")
                .header("authorization", format!("Bearer {a}"))
                .body(axum::body::Body::empty())
                .unwrap();
            let resp = app.oneshot(req).await.unwrap();
            let bytes = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap()
                .to_bytes();
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/v1/jobs/{job}/run"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let run_id = body["run"]["id"].as_str().unwrap().to_owned();
    let work = tokio::time::timeout(std::time::Duration::from_secs(5), poll)
        .await
        .unwrap()
        .unwrap();
    let work = &work["work"];
    assert_eq!(work["run_id"], run_id.as_str());
    assert_eq!(work["kind"], "backup");
    assert_eq!(work["spec"]["sources"], json!(["/srv/data"]));
    let prefix = work["spec"]["prefix"].as_str().unwrap().to_owned();
    let name = work["spec"]["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("nightly-"));

    // Progress extends the lease.
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/v1/agent/runs/{run_id}/progress"),
            Some(a),
            Some(json!({"bytes": 10, "files": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Upload an object through a pre-signed URL (create-only, checksummed).
    let data = b"sealed archive bytes".repeat(100);
    let object = format!("{prefix}/{name}.archive");
    let (status, signed) = h
        .presign(a, json!({"op": "put", "key": object, "create_only": true, "checksum_sha256": checksum(&data)}))
        .await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    assert_eq!(signed["method"], "PUT");
    assert!(signed["url"]
        .as_str()
        .unwrap()
        .contains(&format!("/s3/coffer/{}/", agent.prefix)));
    let (status, headers, _) = h.send_presigned(&signed, data.clone(), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let put_etag = headers["etag"].to_str().unwrap().to_owned();
    // S3's ETag of a single put: the body's MD5.
    assert_eq!(
        put_etag,
        format!(
            "\"{}\"",
            hex::encode(<md5::Md5 as md5::Digest>::digest(&data))
        )
    );
    let stored = h
        .dir
        .path()
        .join("objects")
        .join(&agent.prefix)
        .join(&object);
    assert_eq!(std::fs::read(&stored).unwrap(), data);
    // Create-only: the same URL again is refused, the object unchanged.
    let (status, _, body) = h.send_presigned(&signed, data.clone(), &[]).await;
    assert_eq!(
        status,
        StatusCode::PRECONDITION_FAILED,
        "{}",
        String::from_utf8_lossy(&body)
    );

    // Read it back, whole, by range, and its size.
    let (_, get) = h.presign(a, json!({"op": "get", "key": object})).await;
    let (status, _, body) = h.send_presigned(&get, Vec::new(), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, data);
    let (status, headers, body) = h
        .send_presigned(&get, Vec::new(), &[("range", "bytes=5-9")])
        .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, &data[5..10]);
    assert_eq!(
        headers["content-range"],
        format!("bytes 5-9/{}", data.len()).as_str()
    );
    let (_, head) = h.presign(a, json!({"op": "head", "key": object})).await;
    let (status, headers, _) = h.send_presigned(&head, Vec::new(), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-length"], data.len().to_string().as_str());
    // HEAD answers with the put's ETag and SHA-256, as S3 clients check after a retry.
    assert_eq!(headers["etag"], put_etag.as_str());
    assert_eq!(headers["x-amz-checksum-sha256"], checksum(&data).as_str());

    // Complete with the restore point; the same completion again is fine, a different
    // one is a conflict.
    let completion = json!({
        "status": "succeeded", "bytes": 2000, "files": 3, "error": null,
        "restore_point": {"name": name, "prefix": prefix, "snapshot": "0123456789abcdef0123456789abcdef",
                          "stored_bytes": data.len(), "content_bytes": 1500, "files": 3,
                          "created_at": "2026-11-23T10:00:00Z"}
    });
    let path = format!("/v1/agent/runs/{run_id}/complete");
    let (status, body) = h
        .call(Method::POST, &path, Some(a), Some(completion.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["run"]["status"], "succeeded");
    let (status, _) = h
        .call(Method::POST, &path, Some(a), Some(completion.clone()))
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut different = completion.clone();
    different["bytes"] = json!(1);
    let (status, body) = h.call(Method::POST, &path, Some(a), Some(different)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");

    // The restore point is recorded under the run's tenant and repository.
    let (_, body) = h
        .call(Method::GET, "/v1/restore-points", Some(&op), None)
        .await;
    let rps = body["restore_points"].as_array().unwrap();
    assert_eq!(rps.len(), 1);
    let rp = &rps[0];
    assert_eq!(rp["name"], name.as_str());
    assert_eq!(rp["tenant_id"], tenant.as_str());
    assert_eq!(rp["repository_id"], agent.repository_id.as_str());
    assert_eq!(rp["run_id"], run_id.as_str());
    let rp_id = rp["id"].as_str().unwrap().to_owned();

    // Restore it: the agent is handed the restore, and reports it done.
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/v1/restore-points/{rp_id}/restore"),
            Some(&op),
            Some(json!({"target": "/restore/here", "paths": ["etc/hosts"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let restore_run = body["run"]["id"].as_str().unwrap().to_owned();
    let (_, body) = h
        .call(Method::GET, "/v1/agent/poll?wait_secs=1", Some(a), None)
        .await;
    let work = &body["work"];
    assert_eq!(work["kind"], "restore");
    assert_eq!(work["run_id"], restore_run.as_str());
    assert_eq!(work["spec"]["restore_point_id"], rp_id.as_str());
    assert_eq!(work["spec"]["target"], "/restore/here");
    assert_eq!(work["spec"]["paths"], json!(["etc/hosts"]));
    assert_eq!(work["spec"]["prefix"], prefix.as_str());
    let (status, body) = h
        .call(Method::POST, &format!("/v1/agent/runs/{restore_run}/complete"), Some(a),
              Some(json!({"status": "succeeded", "bytes": 2000, "files": 1, "error": null, "restore_point": null})))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Verify is dispatched the same way.
    let (status, _) = h
        .call(
            Method::POST,
            &format!("/v1/restore-points/{rp_id}/verify"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, body) = h
        .call(Method::GET, "/v1/agent/poll?wait_secs=1", Some(a), None)
        .await;
    assert_eq!(body["work"]["kind"], "verify");
    assert_eq!(body["work"]["spec"]["name"], name.as_str());

    // Logs arrive and can be read by the operator.
    let (status, _) = h
        .call(Method::POST, "/v1/agent/logs", Some(a), Some(json!({"lines": [{"level": "info", "message": "backup done", "time": "2026-11-23T10:00:01Z"}]})))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, body) = h
        .call(
            Method::GET,
            &format!("/v1/agents/{}/logs", agent.agent_id),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(body["lines"][0]["message"], "backup done");

    // The agent cannot delete what it stored: deletion is the server's.
    let (status, _) = h.presign(a, json!({"op": "delete", "key": object})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(stored.exists());

    // The audit log has the enrolment and the restore.
    let entries = h.audit(Some(&tenant)).await;
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for wanted in [
        "agent.enrol",
        "restore.request",
        "verify.request",
        "job.run_now",
        "repository_key.reissue",
    ] {
        assert!(
            actions.contains(&wanted),
            "{wanted} missing from {actions:?}"
        );
    }
    // Every use of the admin token is on the record.
    let all = h.audit(None).await;
    assert!(
        all.iter()
            .any(|e| e["action"] == "admin_token.use"
                && e["target"] == "route:POST /v1/admin/tenants")
    );
    let (status, body) = h.call(Method::GET, "/v1/audit", Some(&op), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body["entries"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn multipart_upload_through_presigned_urls() {
    use coffer_adapters::storage::s3::{
        check_complete_response, complete_multipart_body, parse_upload_id, CompletedPart,
    };
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas1").await;
    let a = agent.api_key.as_str();
    let key = "jobs/1/big.archive";
    let (status, create) = h
        .presign(
            a,
            json!({"op": "create_multipart", "key": key, "checksum_sha256": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{create}");
    assert_eq!(create["method"], "POST");
    let (status, _, body) = h.send_presigned(&create, Vec::new(), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let upload_id = parse_upload_id(std::str::from_utf8(&body).unwrap()).unwrap();

    let part1: Vec<u8> = (0..5 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let part2 = b"the last part is short".to_vec();
    let mut parts = Vec::new();
    for (n, data) in [(1u16, &part1), (2, &part2)] {
        let sum = checksum(data);
        let (status, signed) = h
            .presign(a, json!({"op": "upload_part", "key": key, "upload_id": upload_id, "part_number": n, "checksum_sha256": sum}))
            .await;
        assert_eq!(status, StatusCode::OK, "{signed}");
        let (status, headers, _) = h.send_presigned(&signed, data.clone(), &[]).await;
        assert_eq!(status, StatusCode::OK);
        parts.push(CompletedPart {
            part_number: n,
            etag: headers["etag"].to_str().unwrap().to_owned(),
            checksum_sha256: Some(sum),
        });
    }
    // Nothing is visible before completion.
    let (_, head) = h.presign(a, json!({"op": "head", "key": key})).await;
    assert_eq!(
        h.send_presigned(&head, Vec::new(), &[]).await.0,
        StatusCode::NOT_FOUND
    );

    // ListParts answers in the shape rusty-s3 parses.
    let (_, list) = h
        .presign(
            a,
            json!({"op": "list_parts", "key": key, "upload_id": upload_id}),
        )
        .await;
    let (status, _, body) = h.send_presigned(&list, Vec::new(), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let listed =
        rusty_s3::actions::ListParts::parse_response(std::str::from_utf8(&body).unwrap()).unwrap();
    assert_eq!(listed.parts.len(), 2);
    assert_eq!(listed.parts[0].size, part1.len() as u64);

    let (_, complete) = h
        .presign(a, json!({"op": "complete_multipart", "key": key, "upload_id": upload_id, "create_only": true}))
        .await;
    let (status, _, body) = h
        .send_presigned(&complete, complete_multipart_body(&parts).into_bytes(), &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    check_complete_response(std::str::from_utf8(&body).unwrap()).unwrap();
    let (_, head) = h.presign(a, json!({"op": "head", "key": key})).await;
    let (status, headers, _) = h.send_presigned(&head, Vec::new(), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let mut md5s = Vec::new();
    for p in &parts {
        md5s.extend(hex::decode(p.etag.trim_matches('"')).unwrap());
    }
    let multipart_etag = format!(
        "\"{}-2\"",
        hex::encode(<md5::Md5 as md5::Digest>::digest(&md5s))
    );
    assert_eq!(headers["etag"], multipart_etag.as_str());
    let stored = std::fs::read(h.dir.path().join("objects").join(&agent.prefix).join(key)).unwrap();
    assert_eq!(stored.len(), part1.len() + part2.len());
    assert_eq!(&stored[..part1.len()], &part1[..]);
    assert_eq!(&stored[part1.len()..], &part2[..]);
    // The upload is gone: completing again, or listing, finds no such upload.
    let (status, _, _) = h.send_presigned(&list, Vec::new(), &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(std::fs::read_dir(h.dir.path().join("staging"))
        .unwrap()
        .next()
        .is_none());

    // An aborted upload leaves nothing.
    let (_, create) = h
        .presign(a, json!({"op": "create_multipart", "key": "jobs/1/other"}))
        .await;
    let (_, _, body) = h.send_presigned(&create, Vec::new(), &[]).await;
    let upload_id = parse_upload_id(std::str::from_utf8(&body).unwrap()).unwrap();
    let (_, part) = h.presign(a, json!({"op": "upload_part", "key": "jobs/1/other", "upload_id": upload_id, "part_number": 1})).await;
    assert_eq!(
        h.send_presigned(&part, b"abc".to_vec(), &[]).await.0,
        StatusCode::OK
    );
    let (_, abort) = h
        .presign(
            a,
            json!({"op": "abort_multipart", "key": "jobs/1/other", "upload_id": upload_id}),
        )
        .await;
    assert_eq!(
        h.send_presigned(&abort, Vec::new(), &[]).await.0,
        StatusCode::NO_CONTENT
    );
    assert!(std::fs::read_dir(h.dir.path().join("staging"))
        .unwrap()
        .next()
        .is_none());
    assert!(!h
        .dir
        .path()
        .join("objects")
        .join(&agent.prefix)
        .join("jobs/1/other")
        .exists());

    // An upload left unfinished is removed by the scheduler after a day.
    let (_, create) = h
        .presign(a, json!({"op": "create_multipart", "key": "jobs/1/left"}))
        .await;
    let (_, _, body) = h.send_presigned(&create, Vec::new(), &[]).await;
    let upload_id = parse_upload_id(std::str::from_utf8(&body).unwrap()).unwrap();
    let (_, part) = h
        .presign(a, json!({"op": "upload_part", "key": "jobs/1/left", "upload_id": upload_id, "part_number": 1}))
        .await;
    assert_eq!(
        h.send_presigned(&part, b"abc".to_vec(), &[]).await.0,
        StatusCode::OK
    );
    let now = jiff::Timestamp::now().as_second();
    let tick = coffer_server::scheduler::tick(&h.state, now).await.unwrap();
    assert_eq!(tick.stale_uploads, 0);
    let tick = coffer_server::scheduler::tick(&h.state, now + 2 * 86_400)
        .await
        .unwrap();
    assert_eq!(tick.stale_uploads, 1);
    assert!(std::fs::read_dir(h.dir.path().join("staging"))
        .unwrap()
        .next()
        .is_none());
    let (_, list) = h
        .presign(
            a,
            json!({"op": "list_parts", "key": "jobs/1/left", "upload_id": upload_id}),
        )
        .await;
    assert_eq!(
        h.send_presigned(&list, Vec::new(), &[]).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn scheduler_queues_due_jobs_and_times_out_abandoned_runs() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas1").await;
    let a = agent.api_key.as_str();
    let job = h.job(&op, &agent.agent_id, "nightly").await;
    let (_, body) = h
        .call(Method::GET, &format!("/v1/jobs/{job}"), Some(&op), None)
        .await;
    let next: jiff::Timestamp = body["job"]["next_run_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        next.as_second() % 86_400,
        3 * 3600,
        "0 3 * * * is 03:00 UTC"
    );

    // At the due time the scheduler queues a run and moves the job a day on.
    let tick = coffer_server::scheduler::tick(&h.state, next.as_second())
        .await
        .unwrap();
    assert_eq!(tick.queued.len(), 1);
    let (_, body) = h
        .call(Method::GET, &format!("/v1/jobs/{job}"), Some(&op), None)
        .await;
    let after: jiff::Timestamp = body["job"]["next_run_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(after.as_second(), next.as_second() + 86_400);

    // The agent claims it and vanishes: after the lease, the run is failed.
    let (_, body) = h
        .call(Method::GET, "/v1/agent/poll?wait_secs=0", Some(a), None)
        .await;
    let run_id = body["work"]["run_id"].as_str().unwrap().to_owned();
    let lease: jiff::Timestamp = body["work"]["lease_expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let tick = coffer_server::scheduler::tick(&h.state, lease.as_second() - 1)
        .await
        .unwrap();
    assert!(tick.timed_out.is_empty());
    let tick = coffer_server::scheduler::tick(&h.state, lease.as_second() + 1)
        .await
        .unwrap();
    assert_eq!(tick.timed_out, vec![run_id.parse::<i64>().unwrap()]);
    let (_, body) = h
        .call(Method::GET, &format!("/v1/runs/{run_id}"), Some(&op), None)
        .await;
    assert_eq!(body["run"]["status"], "failed");
    assert_eq!(body["run"]["error"], "timed out");
    // A late completion is refused: the run is over.
    let (status, _) = h
        .call(
            Method::POST,
            &format!("/v1/agent/runs/{run_id}/complete"),
            Some(a),
            Some(json!({"status": "failed", "bytes": 0, "files": 0, "error": "late"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // The operator retries it: a new run with the same work, handed out again.
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/v1/runs/{run_id}/retry"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let retried = body["run"]["id"].as_str().unwrap().to_owned();
    assert_ne!(retried, run_id);
    assert_eq!(body["run"]["job_id"], job.as_str());
    let (_, body) = h
        .call(Method::GET, "/v1/agent/poll?wait_secs=0", Some(a), None)
        .await;
    assert_eq!(body["work"]["run_id"], retried.as_str());
    assert_eq!(body["work"]["spec"]["sources"], json!(["/srv/data"]));
    // Only failed runs are retried.
    let (status, _) = h
        .call(
            Method::POST,
            &format!("/v1/runs/{retried}/retry"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn bulk_restore_reports_each_item_and_totals() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let mut rps = Vec::new();
    for host in ["nas1", "nas2"] {
        let agent = h.enrol(&op, host).await;
        let job = h.job(&op, &agent.agent_id, "nightly").await;
        h.call(
            Method::POST,
            &format!("/v1/jobs/{job}/run"),
            Some(&op),
            None,
        )
        .await;
        let (_, body) = h
            .call(
                Method::GET,
                "/v1/agent/poll?wait_secs=0",
                Some(&agent.api_key),
                None,
            )
            .await;
        let w = &body["work"];
        let (status, body) = h
            .call(Method::POST, &format!("/v1/agent/runs/{}/complete", w["run_id"].as_str().unwrap()), Some(&agent.api_key),
                  Some(json!({"status": "succeeded", "bytes": 1, "files": 1, "restore_point": {
                      "name": w["spec"]["name"], "prefix": w["spec"]["prefix"], "snapshot": "0123456789abcdef0123456789abcdef",
                      "stored_bytes": 1, "content_bytes": 1, "files": 1, "created_at": "2026-11-23T10:00:00Z"}})))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        rps.push(body["run"]["id"].as_str().unwrap().to_owned());
    }
    let (_, body) = h
        .call(Method::GET, "/v1/restore-points", Some(&op), None)
        .await;
    let ids: Vec<String> = body["restore_points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/restores",
            Some(&op),
            Some(json!({"items": [
                {"restore_point_id": ids[0], "target": "/r/a"},
                {"restore_point_id": ids[1], "target": "/r/b"},
                {"restore_point_id": "999", "target": "/r/c"},
            ]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["totals"],
        json!({"requested": 3, "queued": 2, "failed": 1})
    );
    assert_eq!(body["results"][0]["status"], "queued");
    assert_eq!(body["results"][2]["status"], "failed");
    assert_eq!(body["results"][2]["error"]["code"], "not_found");
    // Each restore went to the agent that made the restore point.
    assert_ne!(
        body["results"][0]["agent_id"],
        body["results"][1]["agent_id"]
    );
}
