//! Write-only agents: what an agent's key and URLs can and cannot do to the repository
//! it backs up into, and what the server holds in storage for a run, and removes after.

#[path = "support/harness.rs"]
mod harness;

use axum::http::{Method, StatusCode};
use coffer_adapters::repo::backup::{self, BackupOptions};
use coffer_adapters::repo::check::{self, ReadData};
use coffer_adapters::repo::keyfile::{self, Unlock};
use coffer_adapters::repo::keys::Access;
use coffer_adapters::repo::{locks, restore, Repository};
use coffer_adapters::Error;
use coffer_server::db::retention_runs::Trigger;
use harness::{noise, Enrolled, Harness};
use serde_json::{json, Value};

/// A small tree to back up.
fn source() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("etc")).unwrap();
    std::fs::write(dir.path().join("etc/hosts"), b"127.0.0.1 nas\n".repeat(100)).unwrap();
    std::fs::write(
        dir.path().join("notes.txt"),
        b"only for the owner".repeat(5000),
    )
    .unwrap();
    dir
}

/// Backs `dir` up as the agent does: its write-only key, the lock held elsewhere.
fn agent_backup(h: &Harness, agent: &Enrolled, dir: &std::path::Path) -> [u8; 16] {
    let repo = h.open_repository(agent, &agent.key_b64).unwrap();
    let options = BackupOptions {
        host: "nas".into(),
        lock_held_elsewhere: true,
        ..Default::default()
    };
    backup::backup(&repo, &[dir.to_owned()], &options)
        .unwrap()
        .snapshot
}

fn server_repository(h: &Harness, agent: &Enrolled) -> Repository {
    let (repo_id, tenant): (i64, i64) = (
        agent.repository_id.parse().unwrap(),
        agent.tenant_id.parse().unwrap(),
    );
    let key = h.state.db.blocking(|cat| {
        coffer_server::keys::repository_key(
            cat,
            &h.state.kek,
            tenant,
            coffer_adapters::catalogue::RepositoryId(repo_id),
        )
        .unwrap()
        .0
    });
    coffer_server::repos::open_full(h.store(), &agent.prefix, &key).unwrap()
}

fn key_files(h: &Harness, agent: &Enrolled) -> usize {
    server_repository(h, agent).list_keys().unwrap().len()
}

#[tokio::test]
async fn an_agents_key_adds_backups_but_opens_nothing_stored() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let src = source();
    let snapshot = agent_backup(&h, &agent, src.path());
    // A second backup of the same tree deduplicates against the first, through the
    // agent's sealed view of the index: nothing new is stored.
    let repo = h.open_repository(&agent, &agent.key_b64).unwrap();
    assert_eq!(repo.keys().access(), Access::WriteOnly);
    let again = backup::backup(
        &repo,
        &[src.path().to_owned()],
        &BackupOptions {
            host: "nas".into(),
            lock_held_elsewhere: true,
            parent: backup::Parent::None,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(again.summary.new_blobs, 0, "{:?}", again.summary);

    // With everything the agent keeps, the snapshot, its trees and its packs stay shut.
    assert!(matches!(
        repo.read_snapshot(&snapshot),
        Err(Error::WriteOnlyKey)
    ));
    assert!(repo.snapshots().is_err());
    let target = tempfile::tempdir().unwrap();
    assert!(restore::restore(&repo, &snapshot, target.path(), &Default::default()).is_err());
    assert!(check::check(&repo, ReadData::All).is_err());
    // No key file in the repository opens as a full key with the agent's key.
    let kek = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(&agent.key_b64)
            .unwrap()
    };
    let mut write_only = 0;
    for (_, name) in repo.list_ids("keys").unwrap() {
        let file = repo.get(&name, 4096).unwrap();
        let unlock = Unlock::Kek(coffer_core::SecretKey::try_from_slice(&kek).unwrap());
        match keyfile::open(&name, &file, repo.id(), &unlock) {
            Ok(Some((Access::WriteOnly, _))) => write_only += 1,
            Ok(Some((Access::Full, _))) => panic!("the agent's key opens {name} as full"),
            Ok(None) | Err(_) => {}
        }
    }
    assert_eq!(write_only, 1);
    // Nor does any stored object hold the plaintext.
    let mut stored = Vec::new();
    for meta in h.store().list(&format!("{}/", agent.prefix)).unwrap() {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut h.store().get(&meta.key).unwrap(), &mut bytes).unwrap();
        assert!(
            !bytes.windows(18).any(|w| w == b"only for the owner"),
            "plaintext in {}",
            meta.key
        );
        stored.push(meta.key);
    }
    assert!(stored.len() > 5, "{stored:?}");

    // The server's key reads it all back.
    let full = server_repository(&h, &agent);
    full.read_snapshot(&snapshot).unwrap();
    let target = tempfile::tempdir().unwrap();
    restore::restore(&full, &snapshot, target.path(), &Default::default()).unwrap();
    let restored = target.path().join(src.path().strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read(restored.join("notes.txt")).unwrap(),
        b"only for the owner".repeat(5000)
    );
}

async fn poll(h: &Harness, agent: &Enrolled) -> Value {
    let (status, body) = h
        .call(
            Method::GET,
            "/v1/agent/poll?wait_secs=0",
            Some(&agent.api_key),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["work"].clone()
}

async fn complete(h: &Harness, agent: &Enrolled, run: &str, body: Value) {
    let (status, answer) = h
        .call(
            Method::POST,
            &format!("/v1/agent/runs/{run}/complete"),
            Some(&agent.api_key),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn the_server_holds_a_backups_lock_and_a_restores_key_only_while_the_run_lasts() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let job = h.job(&op, &agent.agent_id, "nightly").await;
    let (status, _) = h
        .call(
            Method::POST,
            &format!("/v1/jobs/{job}/run"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // Claimed: the server's shared lock is in the repository, so prune keeps away.
    let work = poll(&h, &agent).await;
    assert_eq!(work["kind"], "backup", "{work}");
    assert_eq!(work["spec"]["prefix"], "repo");
    let repo = server_repository(&h, &agent);
    let held = locks::list(&repo).unwrap();
    assert_eq!(held.len(), 1, "{held:?}");
    assert!(!held[0].1.exclusive && held[0].1.host.starts_with("coffer-server run"));
    assert!(matches!(
        locks::Lock::take(&repo, true, "prune"),
        Err(Error::Locked { .. })
    ));
    // Progress while it runs: counts, totals, rate and the current path, with an ETA.
    let run = work["run_id"].as_str().unwrap().to_owned();
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/v1/agent/runs/{run}/progress"),
            Some(&agent.api_key),
            Some(
                json!({"bytes": 50, "files": 1, "bytes_total": 150, "files_total": 3,
                        "rate": 25, "current": "/srv/a\u{1b}b"}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = h
        .call(Method::GET, &format!("/v1/runs/{run}"), Some(&op), None)
        .await;
    let progress = &body["run"]["progress"];
    assert_eq!(
        (
            &progress["bytes_total"],
            &progress["files_total"],
            &progress["eta_secs"]
        ),
        (&json!(150), &json!(3), &json!(4)),
        "{body}"
    );
    assert_eq!(progress["current_path"], "/srv/a\u{fffd}b");
    assert_eq!(body["run"]["bytes"], 50);
    let src = source();
    let snapshot = agent_backup(&h, &agent, src.path());
    complete(
        &h,
        &agent,
        &run,
        json!({"status": "succeeded", "bytes": 10, "files": 2, "restore_point": {
            "name": work["spec"]["name"], "prefix": "repo", "snapshot": hex::encode(snapshot),
            "stored_bytes": 10, "content_bytes": 10, "files": 2,
            "created_at": "2026-11-30T10:00:00Z"}}),
    )
    .await;
    coffer_server::run_access::sweep(&h.state).await.unwrap();
    assert!(locks::list(&repo).unwrap().is_empty());
    assert!(
        !coffer_server::run_access::holds(&h.state, run.parse().unwrap())
            .await
            .unwrap()
    );

    // A restore: the work item carries a key that opens the repository in full...
    let (_, body) = h
        .call(Method::GET, "/v1/restore-points", Some(&op), None)
        .await;
    let point = &body["restore_points"][0];
    assert_eq!(point["snapshot_id"], hex::encode(snapshot));
    let point_id = point["id"].as_str().unwrap().to_owned();
    assert_eq!(key_files(&h, &agent), 2, "the server's and the agent's");
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/v1/restore-points/{point_id}/restore"),
            Some(&op),
            Some(json!({"target": "/restore/here", "paths": []})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let work = poll(&h, &agent).await;
    assert_eq!(work["kind"], "restore", "{work}");
    assert_eq!(work["spec"]["snapshot"], hex::encode(snapshot));
    let run_key = work["spec"]["key"].as_str().unwrap().to_owned();
    let opened = h.open_repository(&agent, &run_key).unwrap();
    assert_eq!(opened.keys().access(), Access::Full);
    opened.read_snapshot(&snapshot).unwrap();
    assert_eq!(key_files(&h, &agent), 3);
    // ... until the run ends, however it ends (here: the agent reports a failure).
    let run = work["run_id"].as_str().unwrap().to_owned();
    complete(
        &h,
        &agent,
        &run,
        json!({"status": "failed", "bytes": 0, "files": 0, "error": "disk full"}),
    )
    .await;
    coffer_server::run_access::sweep(&h.state).await.unwrap();
    assert!(h.open_repository(&agent, &run_key).is_err());
    assert_eq!(key_files(&h, &agent), 2);

    // A verify whose agent never answers: the key goes when the run is cancelled.
    let (status, _) = h
        .call(
            Method::POST,
            &format!("/v1/restore-points/{point_id}/verify"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let work = poll(&h, &agent).await;
    let run_key = work["spec"]["key"].as_str().unwrap().to_owned();
    assert!(h.open_repository(&agent, &run_key).is_ok());
    let run = work["run_id"].as_str().unwrap().to_owned();
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/v1/runs/{run}/cancel"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let swept = coffer_server::run_access::sweep(&h.state).await.unwrap();
    assert_eq!(swept.keys_removed, 1, "{swept:?}");
    assert!(h.open_repository(&agent, &run_key).is_err());
}

#[tokio::test]
async fn a_revoked_agents_key_opens_nothing_and_agents_list_only_their_own_repository() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let a = h.enrol(&op, "nas-a").await;
    let b = h.enrol(&op, "nas-b").await;
    let (src_a, src_b) = (source(), source());
    agent_backup(&h, &a, src_a.path());
    agent_backup(&h, &b, src_b.path());

    // B's listing of its index folder names B's index objects only, relative to B's
    // destination: A's are out of reach of any URL B can get.
    let (status, signed) = h
        .presign(&b.api_key, json!({"op": "list", "key": "repo/index"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    let (status, _, body) = h.send_presigned(&signed, Vec::new(), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains(&format!("<Key>{}/repo/index/", b.prefix)),
        "{text}"
    );
    assert!(!text.contains(&a.prefix), "{text}");
    for outside in ["../x", "/repo", "repo/../../t1"] {
        let (status, _) = h
            .presign(&b.api_key, json!({"op": "list", "key": outside}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{outside}");
    }

    // Revoked: its key file is gone, so its key opens nothing; the other agent's stays.
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/v1/agents/{}/revoke", a.agent_id),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(h.open_repository(&a, &a.key_b64).is_err());
    assert_eq!(key_files(&h, &a), 1, "the server's full key file only");
    assert!(h.open_repository(&b, &b.key_b64).is_ok());
}

#[tokio::test]
async fn retention_runs_on_the_server_after_each_backup_and_prune_waits_for_running_backups() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/jobs",
            Some(&op),
            Some(
                json!({"agent_id": agent.agent_id, "name": "keep2", "sources": ["/srv"],
                        "schedule": "0 3 * * *", "retention": {"keep_last": 2}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let job = body["job"]["id"].as_str().unwrap().to_owned();
    // Each backup holds a file of its own (the one before is gone), so what only the
    // forgotten backups hold is garbage for prune.
    let src = tempfile::tempdir().unwrap();
    for n in 0..4u64 {
        if n > 0 {
            std::fs::remove_file(src.path().join(format!("day-{}.bin", n - 1))).unwrap();
        }
        std::fs::write(src.path().join(format!("day-{n}.bin")), noise(300_000, n)).unwrap();
        h.backup(&op, &agent, &job, src.path(), (1, 1)).await;
    }
    let (_, body) = h
        .call(Method::GET, "/v1/restore-points", Some(&op), None)
        .await;
    let points = body["restore_points"].as_array().unwrap();
    assert_eq!(points.len(), 2, "{points:#?}");
    let full = server_repository(&h, &agent);
    let mut kept: Vec<String> = full
        .snapshots()
        .unwrap()
        .iter()
        .map(|(id, _)| hex::encode(id))
        .collect();
    kept.sort();
    let mut listed: Vec<String> = points
        .iter()
        .map(|p| p["snapshot_id"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    assert_eq!(kept, listed, "the restore points are the snapshots kept");
    let report = check::check(&full, ReadData::All).unwrap();
    assert!(report.ok(), "{:?}", report.errors);
    // The two newest backups restore; the data only the forgotten ones held is gone.
    for (id, snap) in full.snapshots().unwrap() {
        let target = tempfile::tempdir().unwrap();
        restore::restore(&full, &id, target.path(), &Default::default()).unwrap();
        assert!(snap.time > 0);
    }
    let audit = h.audit(None).await;
    let applied: Vec<&Value> = audit
        .iter()
        .filter(|e| e["action"] == "retention.apply")
        .collect();
    assert_eq!(applied.len(), 4, "{applied:#?}");
    assert!(
        applied.iter().any(|e| {
            let detail = e["detail"].as_str().unwrap();
            detail.contains("forgot 1") && !detail.contains("prune freed 0 bytes")
        }),
        "{applied:#?}"
    );

    // A backup in flight holds the repository: retention forgets, prune waits.
    let (status, _) = h
        .call(
            Method::POST,
            &format!("/v1/jobs/{job}/run"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let work = poll(&h, &agent).await;
    let tenant: i64 = agent.tenant_id.parse().unwrap();
    let report =
        coffer_server::retention::apply(&h.state, tenant, job.parse().unwrap(), Trigger::Operator)
            .await
            .unwrap();
    assert_eq!(report.prune, None, "{report:?}");
    assert_eq!(report.kept, 2);
    // Deleting a restore point meanwhile forgets its snapshot; its prune is put off.
    let (_, body) = h
        .call(Method::GET, "/v1/restore-points", Some(&op), None)
        .await;
    let victim = body["restore_points"][0]["id"].as_str().unwrap().to_owned();
    let (status, body) = h
        .call(
            Method::DELETE,
            &format!("/v1/restore-points/{victim}"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["removed"]["forgotten_snapshots"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(body["removed"]["prune"].is_null(), "{body}");
    let (status, _) = h
        .call(
            Method::GET,
            &format!("/v1/restore-points/{victim}"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let run = work["run_id"].as_str().unwrap().to_owned();
    complete(
        &h,
        &agent,
        &run,
        json!({"status": "failed", "bytes": 0, "files": 0, "error": "interrupted"}),
    )
    .await;
    h.state.background.idle().await;
    // The put-off prune happens at the next retention, though it forgets nothing.
    let report =
        coffer_server::retention::apply(&h.state, tenant, job.parse().unwrap(), Trigger::Operator)
            .await
            .unwrap();
    assert!(report.forgotten.is_empty(), "{report:?}");
    let prune = report.prune.expect("the put-off prune runs");
    assert!(prune.bytes_freed > 0, "{prune:?}");
    let audit = h.audit(None).await;
    assert!(audit.iter().any(|e| e["action"] == "restore_point.delete"));

    // Each application is a retention run of its own, with what it forgot and freed.
    let (status, body) = h
        .call(
            Method::GET,
            &format!("/v1/jobs/{job}/retention"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let retention_runs = body["retention_runs"].as_array().unwrap();
    let latest = &retention_runs[0];
    assert_eq!(latest["trigger"], "operator", "{latest}");
    assert_eq!(latest["status"], "succeeded");
    assert_eq!(latest["prune"], "done");
    assert_eq!(latest["bytes_freed"], prune.bytes_freed);
    assert_eq!(retention_runs[1]["prune"], "none", "{body}");
    let after_backups: Vec<&Value> = retention_runs
        .iter()
        .filter(|r| r["trigger"] == "backup")
        .collect();
    assert_eq!(after_backups.len(), 4, "{body}");
    assert!(after_backups
        .iter()
        .any(|r| r["forgotten"].as_array().unwrap().len() == 1
            && r["bytes_freed"].as_i64() > Some(0)));
    // The daily schedule runs it again once a day has passed, not before.
    let now = coffer_server::db::now();
    assert_eq!(
        coffer_server::retention::scheduled(&h.state, now)
            .await
            .unwrap(),
        0
    );
    let later = now + coffer_server::retention::SCHEDULE_EVERY_SECS + 60;
    assert_eq!(
        coffer_server::retention::scheduled(&h.state, later)
            .await
            .unwrap(),
        1
    );
    let (_, body) = h
        .call(
            Method::GET,
            &format!("/v1/jobs/{job}/retention?limit=1"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(body["retention_runs"][0]["trigger"], "schedule", "{body}");
    // Asked for by an operator, through the API.
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/v1/jobs/{job}/retention"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["retention_run"]["trigger"], "operator");
    assert_eq!(body["retention_run"]["kept"], 1, "{body}");
}

#[tokio::test]
async fn restore_points_are_snapshots_listed_restored_in_part_and_diffed_through_the_api() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let job = h.job(&op, &agent.agent_id, "nightly").await;
    let (src, first, second) = h.two_backups_a_change_apart(&op, &agent, &job).await;
    let dir = src.path().to_str().unwrap().to_owned();

    let (status, body) = h
        .call(
            Method::GET,
            &format!("/v1/restore-points/{first}/files?path={dir}"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<&str> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.txt", "b.txt"]);
    assert_eq!(body["entries"][1]["size"], 6);
    assert_eq!(body["entries"][1]["path"], format!("{dir}/b.txt"));
    let (status, body) = h
        .call(
            Method::GET,
            &format!("/v1/restore-points/{first}/files?path={dir}/nothing"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "not_in_snapshot");

    let (status, body) = h
        .call(
            Method::GET,
            &format!("/v1/restore-points/{first}/diff?to={second}"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let changes: Vec<(String, String)> = body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_owned(),
                c["change"].as_str().unwrap().to_owned(),
            )
        })
        .filter(|(p, _)| p.starts_with(&format!("{dir}/")))
        .collect();
    assert_eq!(
        changes,
        [
            (format!("{dir}/a.txt"), "removed".to_owned()),
            (format!("{dir}/b.txt"), "modified".to_owned()),
            (format!("{dir}/c.txt"), "added".to_owned()),
        ]
    );
    assert_eq!(body["counts"]["added"], 1);

    // A restore of chosen paths hands the agent those paths; restored with the run's
    // key, only they come back.
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/v1/restore-points/{second}/restore"),
            Some(&op),
            Some(json!({"target": "/restore/here", "paths": [format!("{dir}/c.txt")]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let work = poll(&h, &agent).await;
    assert_eq!(work["spec"]["paths"], json!([format!("{dir}/c.txt")]));
    let repo = h
        .open_repository(&agent, work["spec"]["key"].as_str().unwrap())
        .unwrap();
    let snapshot: [u8; 16] = hex::decode(work["spec"]["snapshot"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let target = tempfile::tempdir().unwrap();
    let options = restore::RestoreOptions {
        include: vec![format!("{dir}/c.txt").into_bytes()],
        ..Default::default()
    };
    restore::restore(&repo, &snapshot, target.path(), &options).unwrap();
    let restored = target.path().join(dir.trim_start_matches('/'));
    assert_eq!(std::fs::read(restored.join("c.txt")).unwrap(), b"new");
    assert!(!restored.join("b.txt").exists());
}

#[tokio::test]
async fn backups_carry_the_lower_of_the_agents_and_the_jobs_upload_limits() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let new_job = |limit: Value| {
        json!({"agent_id": agent.agent_id, "name": format!("j{}", limit.to_string().len()),
               "sources": ["/srv"], "upload_limit": limit})
    };
    for bad in [json!("fast"), json!("10 B/s"), json!(-5), json!(true)] {
        let (status, body) = h
            .call(
                Method::POST,
                "/v1/jobs",
                Some(&op),
                Some(new_job(bad.clone())),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("upload_limit"));
    }
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/jobs",
            Some(&op),
            Some(new_job(json!("10MiB/s"))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["job"]["upload_limit"], 10 << 20);
    let job = body["job"]["id"].as_str().unwrap().to_owned();
    assert_eq!(backup_limit(&h, &op, &agent, &job).await, 10 << 20);
    let path = format!("/v1/agents/{}/upload-limit", agent.agent_id);
    let (status, body) = h
        .call(
            Method::POST,
            &path,
            Some(&op),
            Some(json!({"upload_limit": "5 MiB/s"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["agent"]["upload_limit"], 5 << 20);
    assert_eq!(backup_limit(&h, &op, &agent, &job).await, 5 << 20);
    let (status, _) = h
        .call(
            Method::POST,
            &path,
            Some(&op),
            Some(json!({"upload_limit": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(backup_limit(&h, &op, &agent, &job).await, 10 << 20);
}

/// Runs `job` once and returns the upload limit its work item carried.
async fn backup_limit(h: &Harness, op: &str, agent: &Enrolled, job: &str) -> Value {
    h.call(Method::POST, &format!("/v1/jobs/{job}/run"), Some(op), None)
        .await;
    let work = poll(h, agent).await;
    let run = work["run_id"].as_str().unwrap().to_owned();
    complete(
        h,
        agent,
        &run,
        json!({"status": "failed", "bytes": 0, "files": 0, "error": "test"}),
    )
    .await;
    work["spec"]["upload_limit"].clone()
}

#[tokio::test]
async fn an_agent_runs_no_more_at_once_than_its_operator_allows() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let (_, body) = h
        .call(
            Method::GET,
            &format!("/v1/agents/{}", agent.agent_id),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(body["agent"]["max_concurrent_runs"], 1, "{body}");
    let jobs = [
        h.job(&op, &agent.agent_id, "a").await,
        h.job(&op, &agent.agent_id, "b").await,
        h.job(&op, &agent.agent_id, "c").await,
    ];
    for job in &jobs {
        let (status, _) = h
            .call(
                Method::POST,
                &format!("/v1/jobs/{job}/run"),
                Some(&op),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
    }
    let first = poll(&h, &agent).await;
    assert_eq!(first["kind"], "backup");
    assert!(poll(&h, &agent).await.is_null(), "a second run at once");
    let path = format!("/v1/agents/{}/concurrency", agent.agent_id);
    for bad in [0, 17] {
        let (status, _) = h
            .call(
                Method::POST,
                &path,
                Some(&op),
                Some(json!({"max_concurrent_runs": bad})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let (status, body) = h
        .call(
            Method::POST,
            &path,
            Some(&op),
            Some(json!({"max_concurrent_runs": 2})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let second = poll(&h, &agent).await;
    assert_eq!(second["kind"], "backup");
    assert_ne!(second["run_id"], first["run_id"]);
    assert!(poll(&h, &agent).await.is_null(), "a third run at once");
    // One ends: the next is handed out.
    let run = first["run_id"].as_str().unwrap().to_owned();
    complete(
        &h,
        &agent,
        &run,
        json!({"status": "failed", "bytes": 0, "files": 0, "error": "test"}),
    )
    .await;
    let third = poll(&h, &agent).await;
    assert_eq!(third["kind"], "backup", "{third}");
}

#[tokio::test]
async fn a_backup_waits_in_the_queue_while_prune_holds_the_repository() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let job = h.job(&op, &agent.agent_id, "nightly").await;
    let repo = server_repository(&h, &agent);
    let prune = locks::Lock::take(&repo, true, "prune").unwrap();
    let (status, _) = h
        .call(
            Method::POST,
            &format!("/v1/jobs/{job}/run"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(poll(&h, &agent).await.is_null());
    let (_, body) = h.call(Method::GET, "/v1/runs", Some(&op), None).await;
    assert_eq!(body["runs"][0]["status"], "queued", "{body}");
    prune.release().unwrap();
    let work = poll(&h, &agent).await;
    assert_eq!(work["kind"], "backup", "{work}");
}
