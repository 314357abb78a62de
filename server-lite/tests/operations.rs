//! What an operator does day to day, through the API: editing a job in place (its ID,
//! restore points and due time stay; its time zone moves it), an agent offline across
//! several due times getting one run, list filters and pages, agent names, labels and
//! deletes, a revoked agent's restore point read by another agent through URLs signed
//! for that run only, storage use, deleting destinations and tenants, and a 405 with
//! the JSON error shape.

#[path = "support/harness.rs"]
mod harness;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{json, Value};

use harness::{Enrolled, Harness};

/// Claims the agent's next run and reports it succeeded with a restore point named
/// `name`; returns the run's ID.
async fn backup_done(h: &Harness, agent: &Enrolled, name: &str, snapshot: &str) -> String {
    let work = h.claim(agent).await;
    let run = work["run_id"].as_str().expect("a run to claim").to_owned();
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/v1/agent/runs/{run}/complete"),
            Some(&agent.api_key),
            Some(
                json!({"status": "succeeded", "bytes": 10, "files": 2, "restore_point": {
                "name": name, "prefix": work["spec"]["prefix"], "snapshot": snapshot,
                "stored_bytes": 10, "content_bytes": 20, "files": 2,
                "created_at": "2026-11-30T10:00:00Z"}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    h.state.background.idle().await;
    run
}

fn unix(rfc3339: &Value) -> i64 {
    rfc3339
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_second()
}

#[tokio::test]
async fn an_edited_job_keeps_its_id_restore_points_and_due_time_and_its_zone_moves_it() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let job = h.job(&op, &agent.agent_id, "nightly").await;
    h.run_now(&op, &job).await;
    let run = backup_done(&h, &agent, "first", &"ab".repeat(16)).await;

    let (_, before) = h
        .call(Method::GET, &format!("/v1/jobs/{job}"), Some(&op), None)
        .await;
    // Five due times, a day apart at 03:00 UTC.
    let due: Vec<i64> = before["job"]["next_runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(unix)
        .collect();
    assert_eq!(due.len(), 5, "{before}");
    assert!(due.iter().all(|t| t % 86_400 == 3 * 3600), "{due:?}");
    assert!(due.windows(2).all(|w| w[1] - w[0] == 86_400), "{due:?}");

    // Sources and excludes change; the schedule does not, so neither does its due time.
    let (status, edited) = h
        .call(
            Method::PATCH,
            &format!("/v1/jobs/{job}"),
            Some(&op),
            Some(
                json!({"sources": ["/srv/data", "/etc"], "excludes": ["*.tmp", "cache/"],
                        "upload_limit": "5MiB/s"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["job"]["id"], job.as_str());
    assert_eq!(edited["job"]["sources"], json!(["/srv/data", "/etc"]));
    assert_eq!(edited["job"]["excludes"], json!(["*.tmp", "cache/"]));
    assert_eq!(edited["job"]["upload_limit"], 5 * 1024 * 1024);
    assert_eq!(edited["job"]["next_run_at"], before["job"]["next_run_at"]);
    assert_eq!(edited["job"]["retention"], before["job"]["retention"]);

    // Its restore point is still its own, and the backup run links to it.
    let (_, points) = h
        .call(
            Method::GET,
            &format!("/v1/restore-points?job_id={job}"),
            Some(&op),
            None,
        )
        .await;
    let points = points["restore_points"].as_array().unwrap().clone();
    assert_eq!(points.len(), 1);
    assert_eq!(points[0]["run_id"], run.as_str());
    let (_, shown) = h
        .call(Method::GET, &format!("/v1/runs/{run}"), Some(&op), None)
        .await;
    assert_eq!(shown["run"]["restore_point_id"], points[0]["id"]);

    // The next backup carries the new sources and excludes.
    h.run_now(&op, &job).await;
    let work = h.claim(&agent).await;
    assert_eq!(work["spec"]["sources"], json!(["/srv/data", "/etc"]));
    assert_eq!(work["spec"]["excludes"], json!(["*.tmp", "cache/"]));
    assert_eq!(work["spec"]["upload_limit"], 5 * 1024 * 1024);

    // A time zone moves the due times: 03:00 in Berlin is 02:00 or 01:00 UTC.
    let (status, zoned) = h
        .call(
            Method::PATCH,
            &format!("/v1/jobs/{job}"),
            Some(&op),
            Some(json!({"time_zone": "Europe/Berlin"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{zoned}");
    assert_eq!(zoned["job"]["time_zone"], "Europe/Berlin");
    for t in zoned["job"]["next_runs"].as_array().unwrap() {
        let hour = unix(t) % 86_400 / 3600;
        assert!(hour == 1 || hour == 2, "{t}");
    }

    // Mistakes name their field; nothing changes.
    for (patch, field) in [
        (json!({"time_zone": "Mars/Olympus"}), "time_zone"),
        (json!({"schedule": "0 3 * *"}), "seconds first"),
        (json!({"excludes": ["!keep"]}), "excludes[0]"),
        (json!({"sources": []}), "sources"),
        (json!({"schedule": 5}), "schedule"),
    ] {
        let (status, body) = h
            .call(
                Method::PATCH,
                &format!("/v1/jobs/{job}"),
                Some(&op),
                Some(patch.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{patch}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{patch}: {message}");
    }
    let (_, after) = h
        .call(Method::GET, &format!("/v1/jobs/{job}"), Some(&op), None)
        .await;
    assert_eq!(after["job"], zoned["job"]);

    // Each edit is audited with what changed.
    let audit = h.audit(None).await;
    let updates: Vec<&str> = audit
        .iter()
        .filter(|e| e["action"] == "job.update")
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert_eq!(updates.len(), 2, "{updates:?}");
    assert!(updates
        .iter()
        .any(|d| d.contains("time_zone Europe/Berlin")));
    assert!(updates.iter().any(|d| d.contains("excludes")));
}

#[tokio::test]
async fn an_agent_offline_across_three_due_times_gets_one_run_that_says_so() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/jobs",
            Some(&op),
            Some(json!({"agent_id": agent.agent_id, "name": "hourly",
                        "sources": ["/srv"], "schedule": "0 * * * *"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let job = body["job"]["id"].as_str().unwrap().to_owned();
    let first = unix(&body["job"]["next_run_at"]);

    // Three due times pass while the agent does not poll.
    let mut queued = Vec::new();
    for k in 0..3 {
        let tick = coffer_server::scheduler::tick(&h.state, first + k * 3600 + 1)
            .await
            .unwrap();
        queued.extend(tick.queued);
    }
    assert_eq!(queued.len(), 1, "one run, not a backlog");
    let (_, runs) = h
        .call(
            Method::GET,
            &format!("/v1/runs?job_id={job}&status=queued"),
            Some(&op),
            None,
        )
        .await;
    let runs = runs["runs"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["missed_schedules"], 2, "{runs:?}");

    // The server stopped for five hours: one more run, standing for them all.
    backup_done(&h, &agent, "caught-up", &"cd".repeat(16)).await;
    let (_, view) = h
        .call(Method::GET, &format!("/v1/jobs/{job}"), Some(&op), None)
        .await;
    let due = unix(&view["job"]["next_run_at"]);
    let tick = coffer_server::scheduler::tick(&h.state, due + 4 * 3600 + 1)
        .await
        .unwrap();
    assert_eq!(tick.queued.len(), 1);
    let (_, run) = h
        .call(
            Method::GET,
            &format!("/v1/runs/{}", tick.queued[0]),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(run["run"]["missed_schedules"], 4, "{run}");
    assert!(h.claim(&agent).await["run_id"].is_string());
    assert!(h.claim(&agent).await.is_null(), "no second run");
}

#[tokio::test]
async fn lists_filter_by_job_agent_status_and_time_and_page() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let other = h.enrol(&op, "laptop").await;
    let job = h.job(&op, &agent.agent_id, "nightly").await;
    let job2 = h.job(&op, &other.agent_id, "docs").await;
    let mut mine = Vec::new();
    for i in 0..3 {
        h.run_now(&op, &job).await;
        mine.push(backup_done(&h, &agent, &format!("b{i}"), &format!("{i:032x}")).await);
    }
    let theirs = h.run_now(&op, &job2).await;

    let get = |path: String| {
        let h = &h;
        let op = op.clone();
        async move {
            let (status, body) = h.call(Method::GET, &path, Some(&op), None).await;
            assert_eq!(status, StatusCode::OK, "{path}: {body}");
            body
        }
    };
    let ids = |v: &Value, key: &str| -> Vec<String> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let newest_first: Vec<String> = mine.iter().rev().cloned().collect();
    let body = get(format!("/v1/runs?job_id={job}")).await;
    assert_eq!(ids(&body, "runs"), newest_first);
    let body = get(format!("/v1/runs?agent_id={}", other.agent_id)).await;
    assert_eq!(ids(&body, "runs"), std::slice::from_ref(&theirs));
    let body = get("/v1/runs?status=queued".to_owned()).await;
    assert_eq!(ids(&body, "runs"), std::slice::from_ref(&theirs));
    let body = get("/v1/runs?status=succeeded&limit=2".to_owned()).await;
    assert_eq!(ids(&body, "runs"), newest_first[..2]);
    let next = body["next_before"].as_str().unwrap().to_owned();
    let body = get(format!("/v1/runs?status=succeeded&limit=2&before={next}")).await;
    assert_eq!(ids(&body, "runs"), newest_first[2..]);
    assert!(body["next_before"].is_null());
    let body = get("/v1/runs?since=2999-01-01T00:00:00Z".to_owned()).await;
    assert!(body["runs"].as_array().unwrap().is_empty());
    let body = get("/v1/runs?until=2999-01-01T00:00:00Z&limit=1000".to_owned()).await;
    assert_eq!(body["runs"].as_array().unwrap().len(), 4);
    let body = get(format!("/v1/restore-points?agent_id={}", agent.agent_id)).await;
    assert_eq!(body["restore_points"].as_array().unwrap().len(), 3);
    let body = get(format!("/v1/restore-points?agent_id={}", other.agent_id)).await;
    assert!(body["restore_points"].as_array().unwrap().is_empty());

    for bad in [
        "/v1/runs?status=sleeping",
        "/v1/runs?since=yesterday",
        "/v1/runs?job_id=x",
        "/v1/restore-points?status=queued",
    ] {
        let (status, body) = h.call(Method::GET, bad, Some(&op), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
}

#[tokio::test]
async fn agents_are_named_labelled_and_deleted_after_revocation_and_their_points_restore_elsewhere()
{
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "vm").await;
    let other = h.enrol(&op, "vm").await;
    let job = h.job(&op, &agent.agent_id, "nightly").await;
    h.run_now(&op, &job).await;
    backup_done(&h, &agent, "made-by-the-old-one", &"ef".repeat(16)).await;
    let (_, points) = h
        .call(Method::GET, "/v1/restore-points", Some(&op), None)
        .await;
    let point = points["restore_points"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Named (both enrolled as "vm") and labelled.
    let (status, body) = h
        .call(
            Method::PATCH,
            &format!("/v1/agents/{}", other.agent_id),
            Some(&op),
            Some(json!({"name": "vm-spare", "labels": {"site": "basement", "role": "spare"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["agent"]["name"], "vm-spare");
    assert_eq!(body["agent"]["hostname"], "vm");
    assert_eq!(body["agent"]["labels"]["site"], "basement");
    let (status, _) = h
        .call(
            Method::PATCH,
            &format!("/v1/agents/{}", other.agent_id),
            Some(&op),
            Some(json!({"name": ""})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A live agent is not deleted; a revoked one is, and leaves the lists.
    let path = format!("/v1/agents/{}", agent.agent_id);
    let (status, body) = h.call(Method::DELETE, &path, Some(&op), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "agent_not_revoked");
    let (status, _) = h
        .call(Method::POST, &format!("{path}/revoke"), Some(&op), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    // Its restore point, by default on its own (revoked) agent: refused, saying how.
    let restore = format!("/v1/restore-points/{point}/restore");
    let (status, body) = h
        .call(
            Method::POST,
            &restore,
            Some(&op),
            Some(json!({"target": "/srv/r"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("agent_id"));
    let (status, _) = h.call(Method::DELETE, &path, Some(&op), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = h.call(Method::GET, &path, Some(&op), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, agents) = h.call(Method::GET, "/v1/agents", Some(&op), None).await;
    assert_eq!(agents["agents"].as_array().unwrap().len(), 1);

    // On the other agent: the work names the old agent's destination, and the run's
    // URLs read it, only it, only to read, and only while the run runs.
    let (status, body) = h
        .call(
            Method::POST,
            &restore,
            Some(&op),
            Some(json!({"target": "/srv/r", "agent_id": other.agent_id})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["run"]["agent_id"], other.agent_id.as_str());
    let work = h.claim(&other).await;
    let run = work["run_id"].as_str().unwrap().to_owned();
    assert_eq!(work["kind"], "restore");
    assert_eq!(work["spec"]["destination"]["prefix"], agent.prefix.as_str());
    let with_run = |op: Value| {
        let (h, key, run) = (&h, other.api_key.clone(), run.clone());
        async move {
            h.call(
                Method::POST,
                &format!("/v1/agent/presign?run_id={run}"),
                Some(&key),
                Some(op),
            )
            .await
        }
    };
    let (status, body) = with_run(json!({"op": "get", "key": "repo/config"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["url"].as_str().unwrap().contains(&agent.prefix),
        "{body}"
    );
    let (status, _) = with_run(json!({"op": "put", "key": "repo/x"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Another agent cannot use the run.
    let (status, _) = h
        .call(
            Method::POST,
            &format!("/v1/agent/presign?run_id={run}"),
            Some(&agent.api_key),
            Some(json!({"op": "get", "key": "repo/config"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the revoked agent's key");
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/v1/agent/runs/{run}/complete"),
            Some(&other.api_key),
            Some(json!({"status": "succeeded", "bytes": 1, "files": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = with_run(json!({"op": "get", "key": "repo/config"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "run_not_running");

    let audit = h.audit(None).await;
    for action in [
        "agent.update",
        "agent.delete",
        "restore.start",
        "restore.success",
        "backup.start",
        "backup.success",
    ] {
        assert!(
            audit.iter().any(|e| e["action"] == action),
            "no {action} in the audit log"
        );
    }
}

#[tokio::test]
async fn storage_use_is_listed_and_unused_destinations_and_empty_tenants_are_deleted() {
    let h = Harness::new();
    let (tenant, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;

    // Enrolment made the repository: its objects are what storage holds.
    let objects = h.store().list(&format!("{}/", agent.prefix)).unwrap();
    assert!(!objects.is_empty());
    let bytes: u64 = objects.iter().map(|o| o.size).sum();
    let (status, body) = h.call(Method::GET, "/v1/usage", Some(&op), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let usage = &body["usage"];
    assert_eq!(usage["stored_bytes"], bytes);
    assert_eq!(usage["objects"], objects.len());
    assert_eq!(usage["agents"][0]["agent_id"], agent.agent_id.as_str());
    assert_eq!(usage["agents"][0]["stored_bytes"], bytes);
    let (status, all) = h
        .call(Method::GET, "/v1/admin/usage", Some(&h.admin), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["stored_bytes"], bytes);

    // In use: the destination stays, and so does the tenant.
    let dest = format!("/v1/destinations/{}", agent.destination_id);
    let (status, body) = h.call(Method::DELETE, &dest, Some(&op), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "destination_in_use");
    let (status, body) = h
        .call(
            Method::DELETE,
            &format!("/v1/admin/tenants/{tenant}"),
            Some(&h.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "tenant_not_empty");

    // Revoked and deleted agent: its destination goes, with every object in it.
    let agent_path = format!("/v1/agents/{}", agent.agent_id);
    h.call(
        Method::POST,
        &format!("{agent_path}/revoke"),
        Some(&op),
        None,
    )
    .await;
    let (status, _) = h.call(Method::DELETE, &agent_path, Some(&op), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Revoking removed the agent's key file from the repository.
    let objects = h.store().list(&format!("{}/", agent.prefix)).unwrap();
    let bytes: u64 = objects.iter().map(|o| o.size).sum();
    let (status, body) = h.call(Method::DELETE, &dest, Some(&op), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["objects_removed"], objects.len());
    assert_eq!(body["bytes_freed"], bytes);
    assert!(h
        .store()
        .list(&format!("{}/", agent.prefix))
        .unwrap()
        .is_empty());
    let (status, _) = h.call(Method::GET, &dest, Some(&op), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The tenant is empty now: deleted, its operator token stops working.
    let (status, _) = h
        .call(
            Method::DELETE,
            &format!("/v1/admin/tenants/{tenant}"),
            Some(&h.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = h.call(Method::GET, "/v1/agents", Some(&op), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, tenants) = h
        .call(Method::GET, "/v1/admin/tenants", Some(&h.admin), None)
        .await;
    assert!(tenants["tenants"].as_array().unwrap().is_empty());
    // Its name is free again.
    let (again, _) = h.tenant("acme").await;
    assert_ne!(again, tenant);
}

#[tokio::test]
async fn a_known_route_with_another_method_is_a_json_405_with_allow() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let request = Request::builder()
        .method(Method::PUT)
        .uri("/v1/jobs/1")
        .header("authorization", format!("Bearer {op}"))
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = h.send(request).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("PUT"));
    let allow = headers.get("allow").unwrap().to_str().unwrap().to_owned();
    for m in ["GET", "PATCH", "DELETE"] {
        assert!(allow.contains(m), "{allow}");
    }
    assert_eq!(
        headers.get("content-type").unwrap(),
        "application/json",
        "{headers:?}"
    );
}

#[tokio::test]
async fn a_purge_removes_a_tenant_with_everything_it_has_once_confirmed() {
    let h = Harness::new();
    let (tenant, op) = h.tenant("acme").await;
    let (other_tenant, other_op) = h.tenant("other").await;
    let agent = h.enrol(&op, "nas").await;
    let other = h.enrol(&other_op, "nas").await;
    let job = h.job(&op, &agent.agent_id, "nightly").await;
    h.run_now(&op, &job).await;
    backup_done(&h, &agent, "one", &"ab".repeat(16)).await;
    h.run_now(&op, &job).await; // queued: the purge fails it
    assert!(!h
        .store()
        .list(&format!("{}/", agent.prefix))
        .unwrap()
        .is_empty());

    let path = format!("/v1/admin/tenants/{tenant}?purge=true");
    let (status, body) = h.call(Method::DELETE, &path, Some(&h.admin), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("confirm"));
    let (status, _) = h
        .call(
            Method::DELETE,
            &format!("{path}&confirm=other"),
            Some(&h.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "the wrong name");
    let (status, body) = h
        .call(
            Method::DELETE,
            &format!("{path}&confirm=acme"),
            Some(&h.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // Its storage is empty, its tokens and its agent's key stop working, it is gone
    // from the lists; the other tenant is untouched.
    assert!(h
        .store()
        .list(&format!("{}/", agent.prefix))
        .unwrap()
        .is_empty());
    let (status, _) = h.call(Method::GET, "/v1/agents", Some(&op), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = h
        .call(
            Method::GET,
            "/v1/agent/poll?wait_secs=0",
            Some(&agent.api_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, tenants) = h
        .call(Method::GET, "/v1/admin/tenants", Some(&h.admin), None)
        .await;
    let ids: Vec<&str> = tenants["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [other_tenant.as_str()]);
    assert!(!h
        .store()
        .list(&format!("{}/", other.prefix))
        .unwrap()
        .is_empty());
    let (status, _) = h
        .call(Method::GET, "/v1/agents", Some(&other_op), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, audit) = h
        .call(Method::GET, "/v1/admin/audit", Some(&h.admin), None)
        .await;
    let purge = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "tenant.purge")
        .expect("the purge is audited");
    assert!(
        purge["detail"].as_str().unwrap().contains("objects"),
        "{purge}"
    );
}
