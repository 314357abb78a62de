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

/// A running server with a tenant, an operator token, and an agent enrolled in the
/// scratch folder's `agent` state folder.
struct Setup {
    server: Server,
    url: String,
    op: String,
    agent_id: String,
    port: u16,
    bin: PathBuf,
}

fn setup(s: &Scratch) -> Option<Setup> {
    let Some(bin) = server_binary() else {
        eprintln!("SKIPPED: no coffer-server binary (set COFFER_SERVER_BIN)");
        return None;
    };
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
    Some(Setup {
        server,
        url,
        op,
        agent_id,
        port,
        bin,
    })
}

fn run_job(url: &str, op: &str, agent_id: &str, src: &std::path::Path) -> String {
    let job = call(
        "POST",
        &format!("{url}/v1/jobs"),
        op,
        Some(json!({
        "agent_id": agent_id, "name": "nightly", "sources": [src.to_str().unwrap()],
        "schedule": "0 3 * * *", "retention": {"keep_last": 7}})),
    );
    let job_id = job["job"]["id"].as_str().unwrap().to_owned();
    call("POST", &format!("{url}/v1/jobs/{job_id}/run"), op, None);
    job_id
}

/// Results the agent keeps until delivered.
fn pending(s: &Scratch) -> Vec<String> {
    if s.path("agent/pending").is_dir() {
        s.names("agent/pending")
            .into_iter()
            .filter(|n| n.ends_with(".json"))
            .collect()
    } else {
        Vec::new()
    }
}

/// A child process killed when the test ends, passing or not.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn runs(url: &str, op: &str) -> Vec<Value> {
    call("GET", &format!("{url}/v1/runs"), op, None)["runs"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn enrol_back_up_restore_and_verify_through_the_server() {
    let s = Scratch::new();
    let Some(Setup {
        server,
        url,
        op,
        agent_id,
        ..
    }) = setup(&s)
    else {
        return;
    };
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
    run_job(&url, &op, &agent_id, &src);
    s.run(&["agent", "run", "--once", "--state-dir", "agent"])
        .ok();
    assert_eq!(runs(&url, &op)[0]["status"], "succeeded");
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
    let all = runs(&url, &op);
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|r| r["status"] == "succeeded"), "{all:?}");
    assert!(pending(&s).is_empty());

    // The server goes away: the agent says so with exit code 5 (the looping agent
    // retries with backoff instead).
    drop(server);
    s.run(&["agent", "run", "--once", "--state-dir", "agent"])
        .fails(5, "server unavailable");
}

#[test]
fn a_server_gone_mid_upload_fails_the_run_and_the_result_survives_an_agent_restart() {
    let s = Scratch::new();
    let Some(Setup {
        server,
        url,
        op,
        agent_id,
        port,
        bin,
    }) = setup(&s)
    else {
        return;
    };
    let src = s.path("src");
    std::fs::create_dir_all(&src).unwrap();
    let big = noise(100 << 20, 12);
    std::fs::write(src.join("one.bin"), &big).unwrap();
    std::fs::write(src.join("two.bin"), &big).unwrap();
    run_job(&url, &op, &agent_id, &src);
    let mut agent = Killed(
        s.cmd(&["agent", "run", "--state-dir", "agent"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // As soon as the agent claimed the run, the server goes away.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while runs(&url, &op)[0]["status"] != "running" {
        assert!(
            std::time::Instant::now() < deadline,
            "the run was never claimed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(server);
    // The backup fails; its result is kept, since it cannot be delivered.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while pending(&s).is_empty() {
        assert!(std::time::Instant::now() < deadline, "no result was kept");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    // The agent is killed (a reboot), the server comes back, the agent starts again.
    agent.0.kill().unwrap();
    agent.0.wait().unwrap();
    let kept = pending(&s);
    assert_eq!(kept.len(), 1, "{kept:?}");
    let server = start_server(&bin, &s.path("server-data"), port);
    s.run(&["agent", "run", "--once", "--state-dir", "agent"])
        .ok();
    let run = &runs(&url, &op)[0];
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        !run["error"].as_str().unwrap_or_default().is_empty(),
        "{run}"
    );
    assert!(pending(&s).is_empty());
    // The failure was also logged to the server (by the restarted agent's start line
    // at least; the failure line was sent while the server was away and is lost).
    let logs = call(
        "GET",
        &format!("{url}/v1/agents/{agent_id}/logs"),
        &op,
        None,
    );
    let text = logs["lines"].to_string();
    assert!(text.contains("started"), "{text}");
    // With the server back, the same job succeeds.
    let job_id = runs(&url, &op)[0]["job_id"].as_str().unwrap().to_owned();
    call("POST", &format!("{url}/v1/jobs/{job_id}/run"), &op, None);
    s.run(&["agent", "run", "--once", "--state-dir", "agent"])
        .ok();
    assert_eq!(runs(&url, &op)[0]["status"], "succeeded");
    drop(server);
}
