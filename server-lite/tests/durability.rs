//! What survives a restart, and the KEK: start-up refusals, rotation that keeps old
//! backups restorable, locked and unique destinations.

#[path = "support/harness.rs"]
mod harness;

use axum::http::{Method, StatusCode};
use coffer_server::kek::{self, KekSource};
use coffer_server::server::StartError;
use coffer_server::Server;
use harness::{test_config, Harness};
use serde_json::json;

#[tokio::test]
async fn a_restart_loses_nothing_that_was_acknowledged() {
    let h = Harness::new();
    let admin = h.admin.clone();
    let (tenant, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
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
    let w = body["work"].clone();
    let run = w["run_id"].as_str().unwrap().to_owned();
    let (status, _) = h
        .call(Method::POST, &format!("/v1/agent/runs/{run}/complete"), Some(&agent.api_key),
              Some(json!({"status": "succeeded", "bytes": 42, "files": 2, "restore_point": {
                  "name": w["spec"]["name"], "prefix": w["spec"]["prefix"], "snapshot": "0123456789abcdef0123456789abcdef",
                  "stored_bytes": 40, "content_bytes": 42, "files": 2, "created_at": "2026-11-23T10:00:00Z"}})))
        .await;
    assert_eq!(status, StatusCode::OK);

    // Stop the server right after the acknowledgement and start another on the data.
    let Harness {
        dir, state, app, ..
    } = h;
    drop(app);
    drop(state);
    let h = Harness::open(dir, |_| {});
    assert!(
        h.admin.is_empty(),
        "the admin token is printed on the first start only"
    );
    let (status, body) = h
        .call(Method::GET, &format!("/v1/runs/{run}"), Some(&op), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["run"]["status"], "succeeded");
    assert_eq!(body["run"]["bytes"], 42);
    let (_, body) = h
        .call(Method::GET, "/v1/restore-points", Some(&op), None)
        .await;
    assert_eq!(body["restore_points"][0]["run_id"], run.as_str());
    assert_eq!(body["restore_points"][0]["tenant_id"], tenant.as_str());
    // Credentials issued before the restart still work, and so does the agent's key.
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/agent/heartbeat",
            Some(&agent.api_key),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    h.open_repository(&agent, &agent.key_b64)
        .expect("the agent's key opens its repository after a restart");
    let (status, _) = h
        .call(Method::GET, "/v1/admin/tenants", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn start_up_refuses_a_missing_malformed_or_wrong_kek() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    h.enrol(&op, "nas").await; // now the database holds a key wrapped under the KEK
    let Harness {
        dir, state, app, ..
    } = h;
    drop((state, app));
    let kek_file = dir.path().join(kek::DEFAULT_KEK_FILE);
    let saved = std::fs::read(&kek_file).unwrap();

    // The default KEK file is gone: refused, not silently replaced.
    std::fs::remove_file(&kek_file).unwrap();
    let e = Server::open(test_config(dir.path()), None).unwrap_err();
    assert!(matches!(e, StartError::KekLost(_)), "{e}");
    assert!(!kek_file.exists());

    // A configured file that is missing or malformed: a clear message, no key in it.
    let other = dir.path().join("other.kek");
    let e = Server::open(
        test_config(dir.path()),
        Some(KekSource::File(other.clone())),
    )
    .unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
    kek::generate_file(&other).unwrap();
    std::fs::write(&other, "zz".repeat(32)).unwrap();
    let e = Server::open(
        test_config(dir.path()),
        Some(KekSource::File(other.clone())),
    )
    .unwrap_err();
    assert!(e.to_string().contains("malformed"), "{e}");

    // A well-formed KEK that is not the database's.
    std::fs::remove_file(&other).unwrap();
    kek::generate_file(&other).unwrap();
    let e = Server::open(test_config(dir.path()), Some(KekSource::File(other))).unwrap_err();
    assert!(matches!(e, StartError::WrongKek { .. }), "{e}");

    // The right one starts.
    std::fs::write(&kek_file, saved).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&kek_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    Server::open(test_config(dir.path()), None).unwrap();
}

#[tokio::test]
async fn kek_rotation_rewraps_every_key_and_old_backups_still_open() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let first = h.enrol(&op, "nas1").await;
    let second = h.enrol(&op, "nas2").await;

    // A backup made with the first agent's write-only key before the rotation.
    let source = tempfile::tempdir().unwrap();
    std::fs::write(
        source.path().join("notes.txt"),
        b"files backed up before the KEK rotation".repeat(1000),
    )
    .unwrap();
    let snapshot = {
        let repo = h.open_repository(&first, &first.key_b64).unwrap();
        let options = coffer_adapters::repo::backup::BackupOptions {
            host: "nas1".into(),
            lock_held_elsewhere: true,
            ..Default::default()
        };
        coffer_adapters::repo::backup::backup(&repo, &[source.path().to_owned()], &options)
            .unwrap()
            .snapshot
    };

    let Harness {
        dir, state, app, ..
    } = h;
    drop((state, app));
    let old_file = dir.path().join(kek::DEFAULT_KEK_FILE);
    let new_file = dir.path().join("new.kek");
    kek::generate_file(&new_file).unwrap();

    // A wrong "current" KEK changes nothing.
    let stranger = dir.path().join("stranger.kek");
    kek::generate_file(&stranger).unwrap();
    assert!(coffer_server::keys::rotate_data_dir(
        dir.path(),
        &KekSource::File(stranger),
        &new_file
    )
    .is_err());
    Server::open(test_config(dir.path()), None).expect("still under the old KEK");

    let (report, new_id) = coffer_server::keys::rotate_data_dir(
        dir.path(),
        &KekSource::File(old_file.clone()),
        &new_file,
    )
    .unwrap();
    assert_eq!(report.envelopes, 2);
    assert_eq!(
        new_id,
        hex::encode(kek::load_file(&new_file).unwrap().id().as_bytes())
    );

    // The old KEK no longer starts the server; the new one does, and hands out the
    // same repository keys, which open the old backup.
    let e = Server::open(test_config(dir.path()), None).unwrap_err();
    assert!(matches!(e, StartError::WrongKek { .. }), "{e}");
    let mut config = test_config(dir.path());
    config.enrol_per_minute = 1000;
    let started = Server::open(config, Some(KekSource::File(new_file))).unwrap();
    let app = coffer_server::app(started.state.clone());
    let h = Harness {
        dir,
        state: started.state,
        app,
        admin: String::new(),
    };
    // The server's key of each repository opens under the new KEK: it issues the
    // agents new write-only keys, and restores what was backed up before.
    for agent in [&first, &second] {
        let (status, body) = h
            .call(
                Method::POST,
                "/v1/agent/repository-key",
                Some(&agent.api_key),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        h.open_repository(agent, body["key"].as_str().unwrap())
            .expect("the reissued key opens the repository");
    }
    let repo_id: i64 = first.repository_id.parse().unwrap();
    let tenant: i64 = first.tenant_id.parse().unwrap();
    let server_key = h.state.db.blocking(|cat| {
        coffer_server::keys::repository_key(
            cat,
            &h.state.kek,
            tenant,
            coffer_adapters::catalogue::RepositoryId(repo_id),
        )
        .unwrap()
        .0
    });
    let repo = coffer_server::repos::open_full(h.store(), &first.prefix, &server_key).unwrap();
    let target = tempfile::tempdir().unwrap();
    coffer_adapters::repo::restore::restore(&repo, &snapshot, target.path(), &Default::default())
        .unwrap();
    let restored = target
        .path()
        .join(source.path().strip_prefix("/").unwrap())
        .join("notes.txt");
    assert_eq!(
        std::fs::read(restored).unwrap(),
        b"files backed up before the KEK rotation".repeat(1000)
    );
    // The destination reports the new KEK ID; the rotation is audited.
    let (_, body) = h
        .call(
            Method::GET,
            &format!("/v1/destinations/{}", first.destination_id),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(body["repository"]["kek_id"], new_id.as_str());
    let rotated: i64 = h.state.db.blocking(|cat| {
        cat.connection()
            .query_row(
                "SELECT count(*) FROM audit WHERE action = 'kek.rotate'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    });
    assert_eq!(rotated, 1);
}

#[tokio::test]
async fn destinations_are_unique_and_locked_in_the_database() {
    use coffer_server::db::agents;
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let a = h.enrol(&op, "nas1").await;
    let b = h.enrol(&op, "nas2").await;
    assert_ne!(a.prefix, b.prefix);
    h.state.db.blocking(|cat| {
        let conn = cat.connection();
        let a_id: i64 = a.agent_id.parse().unwrap();
        let b_dest = agents::destination_of_agent(conn, b.agent_id.parse().unwrap())
            .unwrap()
            .unwrap();
        // A second destination on A's bucket and prefix: the UNIQUE constraint refuses.
        let e = agents::insert_destination(
            conn,
            b_dest.tenant_id,
            b_dest.agent_id,
            None,
            &a.bucket,
            &a.prefix,
            b_dest.repository_id,
            0,
        )
        .unwrap_err();
        assert!(coffer_server::db::is_constraint(&e), "{e}");
        // Repointing a destination: the trigger refuses, whatever the caller.
        let e = conn
            .execute(
                "UPDATE destinations SET prefix = 'elsewhere' WHERE agent_id = ?1",
                [a_id],
            )
            .unwrap_err();
        assert!(e.to_string().contains("locked"), "{e}");
        let e = conn
            .execute(
                "UPDATE destinations SET bucket = 'other' WHERE agent_id = ?1",
                [a_id],
            )
            .unwrap_err();
        assert!(e.to_string().contains("locked"), "{e}");
    });
    // And no API writes destinations: only GET routes exist for them.
    let (status, _) = h
        .call(
            Method::PUT,
            &format!("/v1/destinations/{}", a.destination_id),
            Some(&op),
            Some(json!({"prefix": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = h
        .call(
            Method::PATCH,
            &format!("/v1/destinations/{}", a.destination_id),
            Some(&op),
            Some(json!({"prefix": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn debug_output_carries_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let started = Server::open(test_config(dir.path()), None).unwrap();
    let token = started.admin_token.as_ref().unwrap().to_string();
    let kek = std::fs::read_to_string(dir.path().join(kek::DEFAULT_KEK_FILE)).unwrap();
    let signer_secret = started.state.stores.credentials.secret.to_string();
    let shown = format!(
        "{started:?} {:?} {:?}",
        started.state, started.state.stores.credentials
    );
    for secret in [token.as_str(), kek.trim(), signer_secret.as_str()] {
        assert!(!shown.contains(secret), "a secret in Debug output: {shown}");
    }
    assert!(shown.contains("redacted"));
}

#[tokio::test]
async fn heartbeats_are_written_in_batches_and_survive_a_restart() {
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/agent/heartbeat",
            Some(&agent.api_key),
            Some(json!({"version": "9.9.9", "platform": {"os": "freebsd", "arch": "riscv64"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Shown at once (from memory)...
    let (_, body) = h.call(Method::GET, "/v1/agents", Some(&op), None).await;
    assert_eq!(body["agents"][0]["version"], "9.9.9");
    assert_eq!(body["agents"][0]["status"], "online");
    assert_eq!(
        body["agents"][0]["platform"],
        json!({"os": "freebsd", "arch": "riscv64"})
    );
    // ...and written by the next flush, in one transaction.
    assert_eq!(
        coffer_server::scheduler::flush_presence(&h.state)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        coffer_server::scheduler::flush_presence(&h.state)
            .await
            .unwrap(),
        0
    );
    let Harness {
        dir, state, app, ..
    } = h;
    drop((state, app));
    let h = Harness::open(dir, |_| {});
    let (_, body) = h.call(Method::GET, "/v1/agents", Some(&op), None).await;
    assert_eq!(body["agents"][0]["version"], "9.9.9");
    assert!(body["agents"][0]["last_seen_at"].is_string());
    assert_eq!(body["agents"][0]["platform"]["arch"], "riscv64");
    // A heartbeat without a platform (an older agent) keeps the one last reported, in
    // memory and once written.
    let (status, _) = h
        .call(
            Method::POST,
            "/v1/agent/heartbeat",
            Some(&agent.api_key),
            Some(json!({"version": "9.9.10"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = h.call(Method::GET, "/v1/agents", Some(&op), None).await;
    assert_eq!(body["agents"][0]["version"], "9.9.10");
    assert_eq!(body["agents"][0]["platform"]["os"], "freebsd");
    coffer_server::scheduler::flush_presence(&h.state)
        .await
        .unwrap();
    let (_, body) = h.call(Method::GET, "/v1/agents", Some(&op), None).await;
    assert_eq!(
        body["agents"][0]["platform"],
        json!({"os": "freebsd", "arch": "riscv64"})
    );
}

#[tokio::test]
async fn runs_and_restore_points_keep_the_tenant_and_repository_they_were_made_under() {
    let h = Harness::new();
    let (tenant_a, op_a) = h.tenant("alpha").await;
    let (tenant_b, op_b) = h.tenant("beta").await;
    let agent = h.enrol(&op_a, "nas").await;
    let job = h.job(&op_a, &agent.agent_id, "nightly").await;
    h.call(
        Method::POST,
        &format!("/v1/jobs/{job}/run"),
        Some(&op_a),
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
    let w = body["work"].clone();
    let run = w["run_id"].as_str().unwrap().to_owned();
    let (status, _) = h
        .call(Method::POST, &format!("/v1/agent/runs/{run}/complete"), Some(&agent.api_key),
              Some(json!({"status": "succeeded", "bytes": 1, "files": 1, "restore_point": {
                  "name": w["spec"]["name"], "prefix": w["spec"]["prefix"], "snapshot": "0123456789abcdef0123456789abcdef",
                  "stored_bytes": 1, "content_bytes": 1, "files": 1, "created_at": "2026-11-23T10:00:00Z"}})))
        .await;
    assert_eq!(status, StatusCode::OK);

    // The agent moves to tenant B (no API does this; an administrator's database
    // change stands in for whatever moves it).
    let agent_id: i64 = agent.agent_id.parse().unwrap();
    let b: i64 = tenant_b.parse().unwrap();
    h.state.db.blocking(|cat| {
        cat.connection()
            .execute(
                "UPDATE agents SET tenant_id = ?1 WHERE id = ?2",
                [b, agent_id],
            )
            .unwrap();
    });
    // Its history stays with tenant A and A's repository.
    let (status, body) = h
        .call(Method::GET, &format!("/v1/runs/{run}"), Some(&op_a), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["run"]["tenant_id"], tenant_a.as_str());
    assert_eq!(body["run"]["repository_id"], agent.repository_id.as_str());
    let (_, body) = h
        .call(Method::GET, "/v1/restore-points", Some(&op_a), None)
        .await;
    assert_eq!(body["restore_points"][0]["tenant_id"], tenant_a.as_str());
    assert_eq!(
        body["restore_points"][0]["repository_id"],
        agent.repository_id.as_str()
    );
    let (_, body) = h
        .call(Method::GET, "/v1/restore-points", Some(&op_b), None)
        .await;
    assert!(body["restore_points"].as_array().unwrap().is_empty());
    let (status, _) = h
        .call(Method::GET, &format!("/v1/runs/{run}"), Some(&op_b), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
