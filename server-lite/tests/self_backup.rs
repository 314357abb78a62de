//! The server backing itself up, through the `coffer-server` binary and a real server
//! process: a self-backup made while an agent writes; the Python reader (written from
//! FORMAT.md) opens it; a preview listing exactly what was created since; a restore
//! (the running server stopped and started again) after which the later rows are gone
//! and the earlier ones intact, and whose pre-restore self-backup restores back; an
//! emergency restore of a database truncated on purpose, with a typed confirmation;
//! rebuilding on an empty data directory from the backups and the recovery kit alone;
//! an older binary refusing a newer database.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[path = "support/harness.rs"]
mod harness;

const BIN: &str = env!("CARGO_BIN_EXE_coffer-server");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn cmd(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_remove("COFFER_SERVER_KEK")
        .env_remove("COFFER_SERVER_KEK_FILE")
        .env_remove("COFFER_SELF_BACKUP_PASSPHRASE");
    c
}

fn run(args: &[&str]) -> Output {
    cmd(args).stdin(Stdio::null()).output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Whatever serves the data directory when the test ends (the restore starts its own
/// server process) is stopped.
struct Served {
    data: PathBuf,
    first: Option<Child>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut c) = self.first.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Ok(text) = std::fs::read(self.data.join("server.pid.json")) {
            if let Ok(v) = serde_json::from_slice::<Value>(&text) {
                let _ = Command::new("kill")
                    .arg(v["pid"].as_u64().unwrap_or(0).to_string())
                    .status();
            }
        }
    }
}

fn wait_healthy(base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::blocking::get(format!("{base}/healthz"))
        .map_or(true, |r| !r.status().is_success())
    {
        assert!(
            Instant::now() < deadline,
            "the server did not answer /healthz"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts `serve`; returns the process, its URL and the admin token (first start).
fn serve(data: &Path, port: u16) -> (Child, String, Option<String>) {
    let mut child = cmd(&[
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
    ])
    .arg(data)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(t) = line.split_whitespace().find(|w| w.starts_with("cfa_")) {
                let _ = tx.send(t.to_owned());
            }
        }
    });
    wait_healthy(&base);
    let token = rx.recv_timeout(Duration::from_millis(500)).ok();
    (child, base, token)
}

fn call(
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::blocking::Client::new();
    let mut r = client
        .request(method, format!("{base}{path}"))
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let response = r.send().unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

fn tenant_names(base: &str, admin: &str) -> Vec<String> {
    let (status, body) = call(base, reqwest::Method::GET, "/v1/admin/tenants", admin, None);
    assert_eq!(status, 200, "{body}");
    let mut names: Vec<String> = body["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

fn tenant(base: &str, admin: &str, name: &str) -> String {
    let (status, body) = call(
        base,
        reqwest::Method::POST,
        "/v1/admin/tenants",
        admin,
        Some(json!({"name": name})),
    );
    assert_eq!(status, 201, "{body}");
    let id = body["tenant"]["id"].as_str().unwrap().to_owned();
    let (status, body) = call(
        base,
        reqwest::Method::POST,
        &format!("/v1/admin/tenants/{id}/operator-tokens"),
        admin,
        Some(json!({})),
    );
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

fn enrol(base: &str, op: &str, host: &str) -> (String, String) {
    let (_, body) = call(
        base,
        reqwest::Method::POST,
        "/v1/enrolment-tokens",
        op,
        Some(json!({})),
    );
    let response = reqwest::blocking::Client::new()
        .post(format!("{base}/v1/enroll"))
        .json(&json!({"token": body["token"], "hostname": host, "version": "0.1.0"}))
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let v: Value = response.json().unwrap();
    (
        v["agent_id"].as_str().unwrap().to_owned(),
        v["api_key"].as_str().unwrap().to_owned(),
    )
}

fn stored(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".cfsb"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_self_backup_while_agents_write_previews_restores_and_restores_back() {
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("data");
    let backups = scratch.path().join("self-backups");
    let kit = scratch.path().join("recovery.kit");
    let port = free_port();
    let (child, base, admin) = serve(&data, port);
    let mut served = Served {
        data: data.clone(),
        first: Some(child),
    };
    let admin = admin.expect("the first start prints the admin token");
    let op = tenant(&base, &admin, "acme");
    let (agent_id, agent_key) = enrol(&base, &op, "nas");

    let d = data.to_str().unwrap();
    ok(run(&[
        "self-backup",
        "init",
        "--data-dir",
        d,
        "--to",
        backups.to_str().unwrap(),
        "--keep",
        "5",
        "--kit-out",
        kit.to_str().unwrap(),
    ]));
    assert!(std::fs::read_to_string(&kit)
        .unwrap()
        .starts_with("COFFER RECOVERY KIT v1"));

    // The agent writes (logs, heartbeats) the whole time the self-backup runs.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, base, key) = (stop.clone(), base.clone(), agent_key.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let (status, _) = call(
                    &base,
                    reqwest::Method::POST,
                    "/v1/agent/logs",
                    &key,
                    Some(
                        json!({"lines": [{"level": "info", "message": format!("line {n}"), "time": "2026-12-01T00:00:00Z"}]}),
                    ),
                );
                assert!(status == 200 || status == 204 || status == 429, "{status}");
                call(
                    &base,
                    reqwest::Method::POST,
                    "/v1/agent/heartbeat",
                    &key,
                    Some(json!({})),
                );
                n += 1;
            }
            n
        })
    };
    std::thread::sleep(Duration::from_millis(200));
    let made = ok(run(&["self-backup", "run", "--data-dir", d, "--json"]));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let writes = writer.join().unwrap();
    assert!(writes > 0);
    let made: Value = serde_json::from_str(&made).unwrap();
    let first = made["name"].as_str().unwrap().to_owned();
    assert_eq!(made["metadata"]["counts"]["tenants"], 1);
    assert_eq!(made["metadata"]["counts"]["agents"], 1);
    assert_eq!(made["metadata"]["reason"], "manual");
    assert_eq!(stored(&backups), vec![first.clone()]);
    // The KEK is inside, sealed: not in the file in the clear.
    let file = std::fs::read(backups.join(&first)).unwrap();
    let kek_hex = std::fs::read_to_string(data.join("kek.hex")).unwrap();
    let kek = hex::decode(kek_hex.trim()).unwrap();
    assert!(!file.windows(32).any(|w| w == kek.as_slice()));
    assert!(!file.windows(15).any(|w| w == b"SQLite format 3"));

    // The Python reader, written from FORMAT.md, opens it and prints the same record.
    let py = Command::new("python3")
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../test-vectors/python/coffer_selfbackup.py"),
        )
        .arg(backups.join(&first))
        .args(["--kit-file", kit.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let read: Value = serde_json::from_slice(&py.stdout).unwrap();
    let read = if read.get("metadata").is_some() {
        read["metadata"].clone()
    } else {
        read
    };
    assert_eq!(read["database"], made["metadata"]["database"], "{read}");
    assert_eq!(read["counts"], made["metadata"]["counts"]);

    // After the backup: another tenant, a job and its run, a rename.
    let op2 = tenant(&base, &admin, "globex");
    let (status, body) = call(
        &base,
        reqwest::Method::POST,
        "/v1/jobs",
        &op,
        Some(json!({"agent_id": agent_id, "name": "nightly", "sources": ["/srv"]})),
    );
    assert_eq!(status, 201, "{body}");
    let job = body["job"]["id"].as_str().unwrap().to_owned();
    let (status, body) = call(
        &base,
        reqwest::Method::POST,
        &format!("/v1/jobs/{job}/run"),
        &op,
        None,
    );
    assert_eq!(status, 201, "{body}");
    let run_id = body["run"]["id"].as_str().unwrap().to_owned();
    let (status, _) = call(
        &base,
        reqwest::Method::PATCH,
        &format!("/v1/agents/{agent_id}"),
        &op,
        Some(json!({"name": "renamed"})),
    );
    assert_eq!(status, 200);

    // The preview lists exactly what came since.
    let preview = ok(run(&[
        "self-restore",
        "--data-dir",
        d,
        &first,
        "--kit-file",
        kit.to_str().unwrap(),
        "--preview",
        "--json",
    ]));
    let preview: Value = serde_json::from_str(&preview).unwrap();
    let t = &preview["preview"]["tables"];
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&t["tenants"]["created_since"]), ["globex"], "{preview}");
    assert_eq!(ids(&t["jobs"]["created_since"]), ["nightly"]);
    assert_eq!(t["runs"]["created_since"][0]["id"].to_string(), run_id);
    assert_eq!(t["runs"]["created_since"].as_array().unwrap().len(), 1);
    assert_eq!(ids(&t["agents"]["changed_since"]), ["renamed (was nas)"]);
    assert!(t["tenants"]["deleted_since"].as_array().unwrap().is_empty());
    assert_eq!(preview["preview"]["schema"], "same");
    let text = ok(run(&[
        "self-restore",
        "--data-dir",
        d,
        &first,
        "--kit-file",
        kit.to_str().unwrap(),
        "--preview",
    ]));
    assert!(
        text.contains("lose 1 tenants created since: globex"),
        "{text}"
    );
    assert!(
        text.contains("lose 1 jobs created since: nightly"),
        "{text}"
    );

    // Without confirmation nothing happens.
    let out = run(&[
        "self-restore",
        "--data-dir",
        d,
        &first,
        "--kit-file",
        kit.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was changed"));
    assert_eq!(tenant_names(&base, &admin), ["acme", "globex"]);

    // The restore: the running server is stopped and started again.
    let done = ok(run(&[
        "self-restore",
        "--data-dir",
        d,
        &first,
        "--kit-file",
        kit.to_str().unwrap(),
        "--yes",
        "--json",
    ]));
    let done: Value = serde_json::from_str(&done).unwrap();
    let done = &done["restored"];
    assert!(done["restarted_server"].is_u64(), "{done}");
    let pre = done["pre_restore"]["name"].as_str().unwrap().to_owned();
    assert!(pre.contains("-pre-restore-"));
    if let Some(mut c) = served.first.take() {
        // The first process was stopped by the restore.
        let status = c.wait().unwrap();
        assert!(status.success(), "it stopped gracefully: {status}");
    }
    wait_healthy(&base);
    assert_eq!(tenant_names(&base, &admin), ["acme"]);
    let (status, _) = call(
        &base,
        reqwest::Method::GET,
        &format!("/v1/jobs/{job}"),
        &op,
        None,
    );
    assert_eq!(status, 404, "the job made after the backup is gone");
    let (status, body) = call(
        &base,
        reqwest::Method::GET,
        &format!("/v1/agents/{agent_id}"),
        &op,
        None,
    );
    assert_eq!(status, 200, "the agent from before is intact");
    assert_eq!(body["agent"]["hostname"], "nas");
    assert!(body["agent"]["name"] != "renamed", "{body}");
    let (status, _) = call(&base, reqwest::Method::GET, "/v1/agents", &op2, None);
    assert_eq!(status, 401, "globex's token went with globex");
    assert!(stored(&backups).contains(&pre));

    // The pre-restore self-backup restores back what the restore took away.
    ok(run(&[
        "self-restore",
        "--data-dir",
        d,
        &pre,
        "--kit-file",
        kit.to_str().unwrap(),
        "--yes",
    ]));
    wait_healthy(&base);
    assert_eq!(tenant_names(&base, &admin), ["acme", "globex"]);
    let (status, _) = call(
        &base,
        reqwest::Method::GET,
        &format!("/v1/jobs/{job}"),
        &op,
        None,
    );
    assert_eq!(status, 200);
    let (status, body) = call(&base, reqwest::Method::GET, "/v1/admin/audit", &admin, None);
    assert_eq!(status, 200);
    assert!(body.to_string().contains("self_backup.create"), "{body}");

    let listed = ok(run(&["self-backup", "list", "--data-dir", d]));
    assert!(listed.contains(&first) && listed.contains(&pre), "{listed}");
    drop(served);
}

#[test]
fn emergency_restore_rebuilds_a_truncated_database_and_a_new_machine() {
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("data");
    let backups = scratch.path().join("self-backups");
    let kit = scratch.path().join("recovery.kit");
    let passphrase = scratch.path().join("passphrase");
    std::fs::write(&passphrase, "a long passphrase for tests\n").unwrap();
    let port = free_port();
    let (mut child, base, admin) = serve(&data, port);
    let admin = admin.unwrap();
    tenant(&base, &admin, "acme");
    let d = data.to_str().unwrap();
    ok(run(&[
        "self-backup",
        "init",
        "--data-dir",
        d,
        "--to",
        backups.to_str().unwrap(),
        "--kit-out",
        kit.to_str().unwrap(),
        "--passphrase-file",
        passphrase.to_str().unwrap(),
    ]));
    ok(run(&["self-backup", "run", "--data-dir", d]));
    child.kill().unwrap();
    child.wait().unwrap();

    // The database is cut short (after its log is written into it): the server will
    // not start.
    let db = data.join("coffer-server.sqlite");
    let conn = coffer_adapters::catalogue::rusqlite::Connection::open(&db).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    let file = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    file.set_len(10_000).unwrap();
    drop(file);
    let out = cmd(&[
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
        d,
    ])
    .stdin(Stdio::null())
    .output()
    .unwrap();
    assert!(!out.status.success(), "a truncated database does not serve");

    // Listing finds the backup; a wrong word typed changes nothing.
    let listing = ok(run(&["emergency-restore", "--data-dir", d, "--list"]));
    assert!(listing.contains(".cfsb"), "{listing}");
    let mut c = cmd(&[
        "emergency-restore",
        "--data-dir",
        d,
        "--kit-file",
        kit.to_str().unwrap(),
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    c.stdin.take().unwrap().write_all(b"yes\n").unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("seal verified"));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("does not open"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(
        std::fs::metadata(&db).unwrap().len(),
        10_000,
        "nothing changed"
    );

    // Typed RESTORE: restored; the server serves acme again with the same admin token.
    let mut c = cmd(&[
        "emergency-restore",
        "--data-dir",
        d,
        "--kit-file",
        kit.to_str().unwrap(),
    ])
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    c.stdin.take().unwrap().write_all(b"RESTORE\n").unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut child, base, _) = serve(&data, port);
    assert_eq!(tenant_names(&base, &admin), ["acme"]);
    child.kill().unwrap();
    child.wait().unwrap();

    // A new machine: an empty data directory, the backups' folder and the passphrase.
    let fresh = scratch.path().join("new-machine");
    let out = cmd(&[
        "emergency-restore",
        "--data-dir",
        fresh.to_str().unwrap(),
        "--from",
        backups.to_str().unwrap(),
        "--passphrase-file",
        passphrase.to_str().unwrap(),
        "--yes",
    ])
    .stdin(Stdio::null())
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("KEK was written"));
    assert_eq!(
        std::fs::read_to_string(fresh.join("kek.hex")).unwrap(),
        std::fs::read_to_string(data.join("kek.hex")).unwrap()
    );
    let port2 = free_port();
    let (mut child, base, _) = serve(&fresh, port2);
    assert_eq!(tenant_names(&base, &admin), ["acme"]);
    child.kill().unwrap();
    child.wait().unwrap();

    // Another kit does not open it.
    let other = scratch.path().join("other.kit");
    std::fs::write(
        &other,
        coffer_adapters::kit::recovery_kit(&coffer_core::SecretKey::from_bytes([9; 32])).as_bytes(),
    )
    .unwrap();
    let out = run(&[
        "emergency-restore",
        "--data-dir",
        fresh.to_str().unwrap(),
        "--from",
        backups.to_str().unwrap(),
        "--kit-file",
        other.to_str().unwrap(),
        "--yes",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("recovery key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_older_binary_refuses_a_newer_database() {
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("data");
    let port = free_port();
    let (mut child, _, _) = serve(&data, port);
    child.kill().unwrap();
    child.wait().unwrap();
    let conn =
        coffer_adapters::catalogue::rusqlite::Connection::open(data.join("coffer-server.sqlite"))
            .unwrap();
    conn.execute(
        "UPDATE schema_version SET version = version + 5 WHERE component = 'server'",
        [],
    )
    .unwrap();
    drop(conn);
    let out = run(&[
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("newer") || err.contains("upgrade"), "{err}");
    assert!(err.contains("server"), "{err}");
}

/// The schedule, in the server process: a due self-backup is made and the next due
/// time set; one that fails (its folder gone, a file in its place) is recorded as
/// failed, audited, and opens a `self_backup.failed` alert for the server's channels;
/// the next good one clears it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_self_backups_run_when_due_and_failures_raise_an_alert() {
    let h = harness::Harness::new();
    let data = h.state.config.data_dir.clone();
    let backups = tempfile::tempdir().unwrap();
    let to = backups.path().join("sb");
    coffer_server::selfbackup::init(
        &data,
        &coffer_server::selfbackup::InitOptions {
            destination: coffer_server::selfbackup::Destination::Local { path: to.clone() },
            keep: 2,
            schedule: coffer_server::selfbackup::DEFAULT_SCHEDULE.to_owned(),
            passphrase: None,
        },
    )
    .unwrap();
    let due = |conn: &coffer_adapters::catalogue::rusqlite::Connection| -> i64 {
        conn.query_row("SELECT next_run_at FROM self_backup_settings", [], |r| {
            r.get(0)
        })
        .unwrap()
    };
    let conn = coffer_server::selfbackup::open_live(&data).unwrap();
    let next = due(&conn);
    assert!(next > coffer_server::db::now(), "weekly, in the future");
    // Not due: nothing.
    coffer_server::selfbackup::scheduled(&h.state).await;
    assert!(stored(&to).is_empty());
    // Due: made, and the next due time moves on.
    for _ in 0..3 {
        conn.execute("UPDATE self_backup_settings SET next_run_at = 1", [])
            .unwrap();
        coffer_server::selfbackup::scheduled(&h.state).await;
        assert!(due(&conn) > coffer_server::db::now());
        std::thread::sleep(Duration::from_millis(1100));
    }
    let names = stored(&to);
    assert_eq!(names.len(), 2, "keep 2: {names:?}");
    assert!(names.iter().all(|n| n.contains("-scheduled-")));

    // The destination breaks: recorded, audited, alerted.
    std::fs::remove_dir_all(&to).unwrap();
    std::fs::write(&to, b"not a folder").unwrap();
    conn.execute("UPDATE self_backup_settings SET next_run_at = 1", [])
        .unwrap();
    coffer_server::selfbackup::scheduled(&h.state).await;
    let (status, alerts) = h
        .call(
            axum::http::Method::GET,
            "/v1/admin/alerts?open=true",
            Some(&h.admin),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let open: Vec<&Value> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "self_backup.failed")
        .collect();
    assert_eq!(open.len(), 1, "{alerts}");
    assert!(open[0]["detail"].as_str().unwrap().contains("scheduled"));
    let failed: String = conn
        .query_row(
            "SELECT status FROM self_backups ORDER BY created_at DESC, rowid DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(failed, "failed");
    let audit = h.audit(None).await;
    assert!(
        audit.iter().any(|e| e["action"] == "self_backup.failed"),
        "{audit:?}"
    );

    // Fixed: the next one succeeds and the alert clears.
    std::fs::remove_file(&to).unwrap();
    conn.execute("UPDATE self_backup_settings SET next_run_at = 1", [])
        .unwrap();
    coffer_server::selfbackup::scheduled(&h.state).await;
    assert_eq!(stored(&to).len(), 1);
    let (_, alerts) = h
        .call(
            axum::http::Method::GET,
            "/v1/admin/alerts?open=true",
            Some(&h.admin),
            None,
        )
        .await;
    assert!(
        !alerts.to_string().contains("self_backup.failed"),
        "{alerts}"
    );
}

fn script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Upgrades of a running server (run from a copy of the binary, which the upgrade
/// replaces): one to a binary that fails its health check is rolled back — the old
/// binary and database are back and serving, the data acknowledged before is there,
/// the rollback is alerted; one that passes keeps the new binary.
#[test]
fn an_upgrade_that_fails_its_health_check_rolls_back_and_one_that_passes_stays() {
    let scratch = tempfile::tempdir().unwrap();
    let data = scratch.path().join("data");
    let bin_dir = scratch.path().join("bin");
    std::fs::create_dir(&bin_dir).unwrap();
    let installed = bin_dir.join("coffer-server");
    std::fs::copy(BIN, &installed).unwrap();
    let real = scratch.path().join("coffer-server-real");
    std::fs::copy(BIN, &real).unwrap();
    let port = free_port();
    let mut first = Command::new(&installed)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(&data)
        .env_remove("COFFER_SERVER_KEK")
        .env_remove("COFFER_SERVER_KEK_FILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut line = String::new();
    BufReader::new(first.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let admin = line.split_whitespace().last().unwrap().to_owned();
    wait_healthy(&base);
    let _served = Served {
        data: data.clone(),
        first: None,
    };
    let d = data.to_str().unwrap();
    // Without self-backups set up, the upgrade refuses before changing anything.
    let fail = scratch.path().join("fail.sh");
    script(
        &fail,
        "if [ \"$1\" = --version ]; then echo 'coffer-server 9.9.9'; exit 0; fi\necho broken >&2; exit 3",
    );
    let out = run(&[
        "upgrade",
        "--data-dir",
        d,
        "--binary",
        fail.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("self-backup init"));
    ok(run(&[
        "self-backup",
        "init",
        "--data-dir",
        d,
        "--to",
        scratch.path().join("sb").to_str().unwrap(),
        "--kit-out",
        scratch.path().join("kit").to_str().unwrap(),
    ]));
    tenant(&base, &admin, "acme");

    // A binary that does not start: rolled back.
    let out = run(&[
        "upgrade",
        "--data-dir",
        d,
        "--binary",
        fail.to_str().unwrap(),
        "--health-timeout",
        "20",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("rolled back") && err.contains("serving"),
        "{err}"
    );
    assert!(
        first.wait().unwrap().success(),
        "the old server stopped gracefully"
    );
    wait_healthy(&base);
    assert_eq!(
        tenant_names(&base, &admin),
        ["acme"],
        "no acknowledged data lost"
    );
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(BIN).unwrap(),
        "the old binary is back"
    );
    let (_, alerts) = call(
        &base,
        reqwest::Method::GET,
        "/v1/admin/alerts",
        &admin,
        None,
    );
    assert!(
        alerts.to_string().contains("upgrade.rolled_back"),
        "{alerts}"
    );
    let sb = stored(&scratch.path().join("sb"));
    assert!(sb.iter().any(|n| n.contains("-pre-upgrade-")), "{sb:?}");

    // A binary that serves: kept.
    let good = scratch.path().join("good.sh");
    script(
        &good,
        &format!(
            "if [ \"$1\" = --version ]; then echo 'coffer-server 9.9.9'; exit 0; fi\nexec '{}' \"$@\"",
            real.display()
        ),
    );
    let out = run(&[
        "upgrade",
        "--data-dir",
        d,
        "--binary",
        good.to_str().unwrap(),
        "--json",
    ]);
    let done: Value = serde_json::from_str(&ok(out)).unwrap();
    assert_eq!(done["to_version"], "9.9.9");
    assert_eq!(done["from_version"], env!("CARGO_PKG_VERSION"));
    wait_healthy(&base);
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(&good).unwrap(),
        "the new binary stays"
    );
    tenant(&base, &admin, "after-upgrade");
    assert_eq!(tenant_names(&base, &admin), ["acme", "after-upgrade"]);
}

#[path = "../../cli/tests/support/s3s.rs"]
#[allow(dead_code, unreachable_pub)]
mod s3s;

/// Self-backups to an S3 bucket (s3s-fs, a real S3 server, on 127.0.0.1) through a
/// registered backend; an emergency restore reads them back from the bucket — once told
/// where with flags, once from the settings file the data directory keeps — with the
/// secret key from the environment.
#[test]
fn self_backups_go_to_an_s3_bucket_and_an_emergency_restore_reads_them_back() {
    let scratch = tempfile::tempdir().unwrap();
    let (_s3, endpoint) = s3s::start(&scratch.path().join("s3"));
    let data = scratch.path().join("data");
    let kit = scratch.path().join("kit");
    let port = free_port();
    let (child, base, admin) = serve(&data, port);
    let _served = Served {
        data: data.clone(),
        first: Some(child),
    };
    let admin = admin.unwrap();
    let (status, body) = call(
        &base,
        reqwest::Method::POST,
        "/v1/admin/backends",
        &admin,
        Some(
            json!({"name": "offsite", "endpoint": endpoint, "bucket": s3s::BUCKET,
                    "access_key_id": s3s::ACCESS, "secret_access_key": s3s::SECRET}),
        ),
    );
    assert_eq!(status, 201, "{body}");
    let backend = body["backend"]["id"].as_str().unwrap().to_owned();
    tenant(&base, &admin, "acme");
    let d = data.to_str().unwrap();
    ok(run(&[
        "self-backup",
        "init",
        "--data-dir",
        d,
        "--backend",
        &backend,
        "--prefix",
        "server/self",
        "--kit-out",
        kit.to_str().unwrap(),
    ]));
    let made: Value =
        serde_json::from_str(&ok(run(&["self-backup", "run", "--data-dir", d, "--json"]))).unwrap();
    let name = made["name"].as_str().unwrap();
    let object = scratch
        .path()
        .join("s3")
        .join(s3s::BUCKET)
        .join("server/self")
        .join(name);
    assert!(object.is_file(), "{} is in the bucket", object.display());
    let listed = ok(run(&["self-backup", "list", "--data-dir", d]));
    assert!(listed.contains(name), "{listed}");
    let settings = std::fs::read_to_string(data.join("self-backup.json")).unwrap();
    assert!(
        !settings.contains(s3s::SECRET),
        "no secret beside the database"
    );

    // A new machine, told where the bucket is.
    let fresh = scratch.path().join("fresh");
    let out = cmd(&[
        "emergency-restore",
        "--data-dir",
        fresh.to_str().unwrap(),
        "--s3-endpoint",
        &endpoint,
        "--bucket",
        s3s::BUCKET,
        "--prefix",
        "server/self",
        "--access-key-id",
        s3s::ACCESS,
        "--kit-file",
        kit.to_str().unwrap(),
        "--yes",
    ])
    .env("COFFER_S3_SECRET_ACCESS_KEY", s3s::SECRET)
    .stdin(Stdio::null())
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut second, base2, _) = serve(&fresh, free_port());
    assert_eq!(tenant_names(&base2, &admin), ["acme"]);
    second.kill().unwrap();
    second.wait().unwrap();

    // The settings file alone says where: a data directory that kept it (its database
    // lost) needs only the secret key.
    let kept = scratch.path().join("kept");
    std::fs::create_dir(&kept).unwrap();
    std::fs::copy(data.join("self-backup.json"), kept.join("self-backup.json")).unwrap();
    let out = cmd(&[
        "emergency-restore",
        "--data-dir",
        kept.to_str().unwrap(),
        "--kit-file",
        kit.to_str().unwrap(),
        "--yes",
    ])
    .stdin(Stdio::null())
    .output()
    .unwrap();
    assert!(!out.status.success(), "no secret key given");
    assert!(String::from_utf8_lossy(&out.stderr).contains("COFFER_S3_SECRET_ACCESS_KEY"));
    let out = cmd(&[
        "emergency-restore",
        "--data-dir",
        kept.to_str().unwrap(),
        "--kit-file",
        kit.to_str().unwrap(),
        "--yes",
    ])
    .env("COFFER_S3_SECRET_ACCESS_KEY", s3s::SECRET)
    .stdin(Stdio::null())
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(kept.join("coffer-server.sqlite").is_file());
}

/// A self-backup made by an older server (its database one schema version behind) is
/// migrated by the restore: the preview says so, and the restored database is at this
/// binary's version with its rows.
#[test]
fn a_backup_older_than_the_binary_is_migrated_by_the_restore() {
    use coffer_server::selfbackup::format::{self, Contents, Counts, Digest256, Metadata, Reason};
    let scratch = tempfile::tempdir().unwrap();
    let migrations = coffer_server::db::SERVER_MIGRATIONS;
    let older = u32::try_from(migrations.len() - 1).unwrap();
    let built = scratch.path().join("built.sqlite");
    let mut cat = coffer_adapters::catalogue::Catalogue::open(&built).unwrap();
    cat.migrate("server", &migrations[..migrations.len() - 1])
        .unwrap();
    cat.connection()
        .execute(
            "INSERT INTO tenants (id, name, created_at) VALUES (7, 'old-tenant', 0)",
            [],
        )
        .unwrap();
    // One standalone file, its log folded in.
    let image = scratch.path().join("image.sqlite");
    cat.connection()
        .execute("VACUUM INTO ?1", [image.to_str().unwrap()])
        .unwrap();
    drop(cat);
    let database = std::fs::read(&image).unwrap();
    let kek = coffer_core::SecretKey::from_bytes([3; 32]);
    let r = coffer_core::SecretKey::from_bytes([4; 32]);
    let contents = Contents {
        metadata: Metadata {
            format: 1,
            server_version: "0.0.9".into(),
            schema_version: older,
            created_at: "2026-01-01T00:00:00Z".into(),
            reason: Reason::Scheduled,
            counts: Counts {
                tenants: 1,
                ..Counts::default()
            },
            database: Digest256 {
                size: database.len() as u64,
                sha256: format::sha256_hex(&database),
            },
            config_sha256: format::sha256_hex(b"{}"),
            kek_id: kek.id().to_string(),
        },
        kek,
        config: b"{}".to_vec(),
        database,
    };
    let file = format::seal(&format::Recipient::of(&r, None).unwrap(), &contents).unwrap();
    let from = scratch.path().join("backups");
    std::fs::create_dir(&from).unwrap();
    std::fs::write(
        from.join("selfbackup-20260101T000000Z-scheduled-00000000.cfsb"),
        file,
    )
    .unwrap();
    let kit = scratch.path().join("kit");
    std::fs::write(&kit, coffer_adapters::kit::recovery_kit(&r).as_bytes()).unwrap();

    let data = scratch.path().join("data");
    let out = ok(run(&[
        "emergency-restore",
        "--data-dir",
        data.to_str().unwrap(),
        "--from",
        from.to_str().unwrap(),
        "--kit-file",
        kit.to_str().unwrap(),
        "--yes",
        "--json",
    ]));
    let json_start = out.find('{').unwrap();
    let done: Value = serde_json::from_str(&out[json_start..]).unwrap();
    assert_eq!(done["preview"]["schema"], "older", "{done}");
    assert_eq!(done["restored"]["schema_version"], older + 1);
    let conn =
        coffer_adapters::catalogue::rusqlite::Connection::open(data.join("coffer-server.sqlite"))
            .unwrap();
    let version: u32 = conn
        .query_row(
            "SELECT version FROM schema_version WHERE component = 'server'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, older + 1, "migrated to this binary's schema");
    let name: String = conn
        .query_row("SELECT name FROM tenants WHERE id = 7", [], |r| r.get(0))
        .unwrap();
    assert_eq!(name, "old-tenant");
    // The tables the newer schema adds are there.
    conn.query_row("SELECT count(*) FROM self_backups", [], |r| {
        r.get::<_, i64>(0)
    })
    .unwrap();
}
