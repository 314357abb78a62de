//! The catalogue against storage (`POST /v1/admin/reconcile`), as after a self-restore:
//! a restore point whose snapshot was forgotten behind the database's back is found,
//! left alone until asked, then removed and audited; a snapshot no restore point lists
//! is counted, not touched; operators may not ask; a malformed request is a 400; a
//! repository whose storage is down is reported and nothing there removed.

#[path = "support/harness.rs"]
mod harness;

use axum::http::{Method, StatusCode};
use coffer_adapters::repo::backup::{self, BackupOptions};
use coffer_adapters::repo::config::names;
use serde_json::{json, Value};

use harness::Harness;

async fn reconcile(h: &Harness, body: Value) -> Value {
    let (status, answer) = h
        .call(
            Method::POST,
            "/v1/admin/reconcile",
            Some(&h.admin),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["reconcile"].clone()
}

#[tokio::test]
async fn restore_points_whose_snapshot_is_gone_are_found_then_removed_when_asked() {
    let h = Harness::new();
    let (tenant, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let job = h.job(&op, &agent.agent_id, "nightly").await;
    let (src, first, second) = h.two_backups_a_change_apart(&op, &agent, &job).await;
    let (_, body) = h
        .call(Method::GET, "/v1/restore-points", Some(&op), None)
        .await;
    let snapshot_of = |id: &str| -> String {
        body["restore_points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|rp| rp["id"] == id)
            .and_then(|rp| rp["snapshot_id"].as_str())
            .unwrap_or_else(|| panic!("no snapshot for {id}: {body}"))
            .to_owned()
    };
    let (gone, kept) = (snapshot_of(&first), snapshot_of(&second));

    // Nothing out of step yet.
    let r = reconcile(&h, json!({})).await;
    assert_eq!(
        (r["missing"].clone(), r["removed"].clone()),
        (json!(0), json!(0))
    );
    assert_eq!(r["repositories"][0]["restore_points"], 2, "{r}");
    assert_eq!(r["repositories"][0]["snapshots"], 2, "{r}");

    // The first snapshot forgotten behind the database's back (as a self-restore to
    // before its forgetting leaves it), and a backup no run recorded.
    let repo = h.open_repository(&agent, &agent.key_b64).unwrap();
    let id: [u8; 16] = hex::decode(&gone).unwrap().try_into().unwrap();
    repo.store()
        .delete(&repo.object(&names::snapshot(&id)).unwrap())
        .unwrap();
    let options = BackupOptions {
        host: "nas".into(),
        lock_held_elsewhere: true,
        ..Default::default()
    };
    backup::backup(&repo, &[src.path().to_owned()], &options).unwrap();

    // Reported, nothing removed without `apply`; an operator may not ask; a malformed
    // request is refused.
    let r = reconcile(&h, json!({"apply": false})).await;
    let repo_check = &r["repositories"][0];
    assert_eq!(repo_check["missing"], json!([gone]), "{r}");
    assert_eq!(repo_check["unlisted"], 1, "{r}");
    assert_eq!(repo_check["snapshots"], 2, "{r}");
    assert_eq!(repo_check["tenant_id"], tenant.as_str());
    assert_eq!(repo_check["destination_id"], agent.destination_id.as_str());
    assert_eq!(
        (r["missing"].clone(), r["removed"].clone()),
        (json!(1), json!(0))
    );
    let (status, _) = h
        .call(
            Method::POST,
            "/v1/admin/reconcile",
            Some(&op),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/admin/reconcile",
            Some(&h.admin),
            Some(json!({"apply": "yes"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let listed = |body: &Value| -> Vec<String> {
        body["restore_points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|rp| rp["snapshot_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, body) = h
        .call(Method::GET, "/v1/restore-points", Some(&op), None)
        .await;
    assert_eq!(listed(&body).len(), 2);

    // Applied: the restore point of the gone snapshot is removed, the other kept, the
    // unlisted snapshot left in storage; the tenant's log says what went.
    let r = reconcile(&h, json!({"apply": true})).await;
    assert_eq!(
        (r["missing"].clone(), r["removed"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(r["applied"], true);
    let (_, body) = h
        .call(Method::GET, "/v1/restore-points", Some(&op), None)
        .await;
    assert_eq!(listed(&body), vec![kept.clone()]);
    assert_eq!(repo.list_ids("snapshots").unwrap().len(), 2);
    let audit = h.audit(Some(&tenant)).await;
    let entry = audit
        .iter()
        .find(|e| e["action"] == "restore_point.missing")
        .unwrap_or_else(|| panic!("no restore_point.missing entry: {audit:?}"));
    assert!(entry["detail"].as_str().unwrap().contains(&gone), "{entry}");
    let admin_log = h.audit(None).await;
    assert!(admin_log.iter().any(|e| e["action"] == "server.reconcile"));

    // In step again.
    let r = reconcile(&h, json!({"apply": true})).await;
    assert_eq!(
        (r["missing"].clone(), r["removed"].clone()),
        (json!(0), json!(0))
    );
    assert_eq!(r["repositories"][0]["unlisted"], 1);
}

/// A repository whose storage cannot be listed is reported with its error and left
/// alone, even with `apply`: a check that did not happen removes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_whose_storage_is_down_is_reported_and_nothing_there_removed() {
    // The harness's embedded store on a socket, to register as an S3 backend.
    let (h, addr, socket) = Harness::on_a_socket().await;
    let secret = h.state.stores.credentials.secret.to_string();
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/admin/backends",
            Some(&h.admin),
            Some(
                json!({"name": "remote", "endpoint": format!("http://{addr}/s3/"),
                        "bucket": "coffer", "access_key_id": "coffer-local",
                        "secret_access_key": secret}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let backend = body["backend"]["id"].as_str().unwrap().to_owned();
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/admin/tenants",
            Some(&h.admin),
            Some(json!({"name": "far", "backend_id": backend})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let tenant = body["tenant"]["id"].as_str().unwrap().to_owned();
    let (_, body) = h
        .call(
            Method::POST,
            &format!("/v1/admin/tenants/{tenant}/operator-tokens"),
            Some(&h.admin),
            Some(json!({"label": "ops"})),
        )
        .await;
    let op = body["token"].as_str().unwrap().to_owned();
    let agent = h.enrol(&op, "nas").await;
    let job = h.job(&op, &agent.agent_id, "nightly").await;
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("a.txt"), b"far away").unwrap();
    h.backup(&op, &agent, &job, src.path(), (10, 8)).await;
    let r = reconcile(&h, json!({})).await;
    assert_eq!(r["repositories"][0]["snapshots"], 1, "{r}");

    // The storage goes away.
    socket.stop().await;
    let r = reconcile(&h, json!({"apply": true})).await;
    let check = &r["repositories"][0];
    assert!(check["error"].is_string(), "{r}");
    assert!(check["snapshots"].is_null(), "{r}");
    assert_eq!(
        (check["removed"].clone(), r["failed"].clone()),
        (json!(0), json!(1))
    );
    let (_, body) = h
        .call(Method::GET, "/v1/restore-points", Some(&op), None)
        .await;
    assert_eq!(body["restore_points"].as_array().unwrap().len(), 1);
}
