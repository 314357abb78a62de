//! The agent end to end against the real lite server (`coffer-server`, built from the
//! workspace's `server-lite/`): enrol with a one-time token, run a backup job over a
//! tree with nested folders, empty files, a 100 MB file, symlinks, a non-UTF-8 name and
//! modes, through the server's pre-signed URLs; restore the restore point to a new
//! folder and compare; verify; and a server that is away.
//!
//! The server binary is `$COFFER_SERVER_BIN`, else `target/debug/coffer-server` of this
//! workspace. Without either the test says so and does nothing (the `cli` branch does
//! not hold the server; once both are on main the second path exists).

mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use support::{describe, make_tree, noise, Scratch};

struct Server {
    child: Child,
    url: String,
    admin: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server_binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("COFFER_SERVER_BIN") {
        return Some(PathBuf::from(bin));
    }
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/coffer-server");
    built.is_file().then_some(built)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_server(bin: &PathBuf, data: &std::path::Path, port: u16) -> Server {
    let mut child = Command::new(bin)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // The admin token (first start only) and the log line saying it listens, from
    // whichever stream carries them.
    let watch = |stream: Box<dyn std::io::Read + Send>,
                 tx: std::sync::mpsc::Sender<Option<String>>| {
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Some(t) = line.split_whitespace().find(|w| w.starts_with("cfa_")) {
                    let _ = tx.send(Some(t.to_owned()));
                }
                if line.contains("listening on") {
                    let _ = tx.send(None);
                }
            }
        });
    };
    watch(Box::new(child.stdout.take().unwrap()), tx.clone());
    watch(Box::new(child.stderr.take().unwrap()), tx);
    let mut admin = String::new();
    let mut listening = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !listening || (admin.is_empty() && !data.join("kek.hex").exists()) {
        match rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now())) {
            Ok(Some(token)) => admin = token,
            Ok(None) => listening = true,
            Err(_) => panic!("coffer-server did not start"),
        }
        if listening && !admin.is_empty() {
            break;
        }
    }
    Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
        admin,
    }
}

fn call(method: &str, url: &str, token: &str, body: Option<Value>) -> Value {
    let client = reqwest::blocking::Client::new();
    let mut req = match method {
        "GET" => client.get(url),
        _ => client.post(url),
    }
    .bearer_auth(token);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let resp = req.send().unwrap();
    let status = resp.status();
    let text = resp.text().unwrap();
    assert!(status.is_success(), "{method} {url}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

#[test]
fn enrol_back_up_restore_and_verify_through_the_server() {
    let Some(bin) = server_binary() else {
        eprintln!("SKIPPED: no coffer-server binary (set COFFER_SERVER_BIN)");
        return;
    };
    let s = Scratch::new();
    let port = free_port();
    let server = start_server(&bin, &s.path("server-data"), port);
    let url = server.url.clone();
    let tenant = call(
        "POST",
        &format!("{url}/v1/admin/tenants"),
        &server.admin,
        Some(json!({"name": "acme"})),
    );
    let tid = tenant["tenant"]["id"].as_str().unwrap().to_owned();
    let op = call(
        "POST",
        &format!("{url}/v1/admin/tenants/{tid}/operator-tokens"),
        &server.admin,
        Some(json!({"label": "ops"})),
    )["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = call(
        "POST",
        &format!("{url}/v1/enrolment-tokens"),
        &op,
        Some(json!({"ttl_secs": 600})),
    )["token"]
        .as_str()
        .unwrap()
        .to_owned();
    s.write("token", token.as_bytes());
    let enrolled = s
        .run(&[
            "agent",
            "enroll",
            "--server",
            &url,
            "--token-file",
            "token",
            "--state-dir",
            "agent",
            "--json",
        ])
        .ok()
        .json();
    let agent_id = enrolled["agent_id"].as_str().unwrap().to_owned();
    // The token is one-time.
    s.run(&[
        "agent",
        "enroll",
        "--server",
        &url,
        "--token-file",
        "token",
        "--state-dir",
        "agent2",
    ])
    .fails(3, "enrolment_token_used");

    let src = s.path("src");
    make_tree(&src);
    std::fs::write(src.join("a/hundred-mb.bin"), noise(100 << 20, 11)).unwrap();
    let job = call(
        "POST",
        &format!("{url}/v1/jobs"),
        &op,
        Some(json!({
        "agent_id": agent_id, "name": "nightly", "sources": [src.to_str().unwrap()],
        "schedule": "0 3 * * *", "retention": {"keep_last": 7}})),
    );
    let job_id = job["job"]["id"].as_str().unwrap().to_owned();
    call("POST", &format!("{url}/v1/jobs/{job_id}/run"), &op, None);
    s.run(&["agent", "run", "--once", "--state-dir", "agent"])
        .ok();
    let runs = call("GET", &format!("{url}/v1/runs"), &op, None);
    assert_eq!(runs["runs"][0]["status"], "succeeded", "{runs}");
    let points = call("GET", &format!("{url}/v1/restore-points"), &op, None);
    let point = &points["restore_points"][0];
    assert!(
        point["content_bytes"].as_u64().unwrap() > 100 << 20,
        "{point}"
    );
    let point_id = point["id"].as_str().unwrap().to_owned();

    let target = s.path("restored");
    call(
        "POST",
        &format!("{url}/v1/restore-points/{point_id}/restore"),
        &op,
        Some(json!({"target": target.to_str().unwrap(), "paths": []})),
    );
    s.run(&["agent", "run", "--once", "--state-dir", "agent"])
        .ok();
    assert_eq!(describe(&src), describe(&target.join("src")));

    call(
        "POST",
        &format!("{url}/v1/restore-points/{point_id}/verify"),
        &op,
        None,
    );
    s.run(&["agent", "run", "--once", "--state-dir", "agent"])
        .ok();
    let runs = call("GET", &format!("{url}/v1/runs"), &op, None);
    let statuses: Vec<_> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        statuses.iter().all(|(_, st)| st == "succeeded"),
        "{statuses:?}"
    );
    assert_eq!(statuses.len(), 3);
    assert!(s.names("agent/pending").is_empty());

    // The server goes away: the agent says so with exit code 5 (the looping agent
    // retries with backoff instead).
    drop(server);
    s.run(&["agent", "run", "--once", "--state-dir", "agent"])
        .fails(5, "server unavailable");
}
