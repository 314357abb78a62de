//! The agent end to end against the real lite server (`coffer-server`, built from the
//! workspace's `server-lite/`): enrol with a one-time token; a job whose cron schedule
//! comes due is dispatched by the server's scheduler to the running agent, which backs
//! up a tree with nested folders, empty files, a 100 MB file, symlinks, a non-UTF-8
//! name, modes and times through the server's pre-signed URLs; the restore point is
//! restored to a new folder and compared; once on the embedded store, once on an S3
//! backend (s3s-fs); and a server that is away.
//!
//! The server binary is `$COFFER_SERVER_BIN`, else the workspace's `coffer-server`,
//! built by the test (once per test process) into the profile folder `coffer` is in.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::server::{free_port, server_binary, start_server, Killed, Server};
use support::{noise, s3s, tree, Scratch};

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

/// An S3 backend for the tenant, as an admin registers one.
struct Backend<'a> {
    endpoint: &'a str,
    bucket: &'a str,
    access_key_id: &'a str,
    secret_access_key: &'a str,
}

fn setup(s: &Scratch, backend: Option<Backend<'_>>) -> Setup {
    let bin = server_binary();
    let port = free_port();
    let server = start_server(&bin, &s.path("server-data"), port);
    let url = server.url.clone();
    let mut tenant_req = json!({"name": "acme"});
    if let Some(b) = backend {
        // The secret travels in the request body only; the server seals it under its KEK.
        let created = call(
            "POST",
            &format!("{url}/v1/admin/backends"),
            &server.admin,
            Some(json!({
                "name": "s3s-fs", "endpoint": b.endpoint, "bucket": b.bucket,
                "access_key_id": b.access_key_id, "secret_access_key": b.secret_access_key})),
        );
        assert!(
            !created.to_string().contains(b.secret_access_key),
            "{created}"
        );
        tenant_req["backend_id"] = created["backend"]["id"].clone();
    }
    let tenant = call(
        "POST",
        &format!("{url}/v1/admin/tenants"),
        &server.admin,
        Some(tenant_req),
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
    Setup {
        server,
        url,
        op,
        agent_id,
        port,
        bin,
    }
}

fn run_job(url: &str, op: &str, agent_id: &str, src: &Path) -> String {
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

fn runs(url: &str, op: &str) -> Vec<Value> {
    call("GET", &format!("{url}/v1/runs"), op, None)["runs"]
        .as_array()
        .unwrap()
        .clone()
}

/// A cron expression (with seconds) matching once in the next hour: `secs` from now,
/// UTC like the scheduler, so the job comes due while the test waits.
fn due_in(secs: u64) -> String {
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + secs;
    format!("{} {} * * * *", at % 60, (at / 60) % 60)
}

/// Waits for a run `pred` accepts; any failed run, or none within `limit`, fails the
/// test with the runs and the agent's log.
fn wait_for_run(
    s: &Scratch,
    url: &str,
    op: &str,
    limit: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let all = runs(url, op);
        if let Some(run) = all.iter().find(|r| pred(r)) {
            return run.clone();
        }
        let failed = all.iter().any(|r| r["status"] == "failed");
        if failed || Instant::now() > deadline {
            let log = std::fs::read_to_string(s.path("agent.log")).unwrap_or_default();
            panic!("no such run (failed: {failed}): {all:#?}\nagent log:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Text of one source file, which no stored object may contain: they are sealed.
const MARKER: &[u8] = b"coffer e2e plaintext marker: readable in the store means unsealed\n";

/// The source tree: the shared tree of what backups meet, plus a 100 MB file (runs of
/// zeros and of noise, so it spans many chunks and frames yet is quick to make and to
/// compress) and the marker file.
fn make_source(src: &Path) {
    std::fs::create_dir_all(src.join("big")).unwrap();
    let mut big = vec![0u8; 100 << 20];
    for (i, block) in big.chunks_mut(10 << 20).enumerate() {
        block[..1 << 20].copy_from_slice(&noise(1 << 20, i as u64 + 11));
    }
    std::fs::write(src.join("big/hundred-mb.bin"), &big).unwrap();
    std::fs::write(src.join("big/marker.txt"), MARKER).unwrap();
    // Last, since it sets the times of everything in the tree.
    tree::make_tree(src);
}

/// The whole job as the issue states it: a job over the tree comes due, the scheduler
/// dispatches it to the running agent, the restore point is restored to a new folder
/// and verified; the trees are identical, and the objects under the destination's
/// prefix in `store_root` (the folder the store keeps keys in) are sealed.
fn scheduled_backup_restores_the_same_tree(s: &Scratch, setup: &Setup, store_root: &Path) {
    let (url, op) = (setup.url.as_str(), setup.op.as_str());
    let src = s.path("src");
    make_source(&src);
    let job = call(
        "POST",
        &format!("{url}/v1/jobs"),
        op,
        Some(json!({
            "agent_id": setup.agent_id, "name": "hourly", "sources": [src.to_str().unwrap()],
            "schedule": due_in(3), "retention": {"keep_last": 7}})),
    );
    let job_id = job["job"]["id"].clone();
    assert!(runs(url, op).is_empty(), "a run before the job came due");
    let log = std::fs::File::create(s.path("agent.log")).unwrap();
    let agent = Killed(
        s.cmd(&["agent", "run", "--state-dir", "agent"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    let backup = wait_for_run(s, url, op, Duration::from_secs(240), |r| {
        r["kind"] == "backup" && r["status"] == "succeeded"
    });
    eprintln!("scheduled backup done after {:?}", started.elapsed());
    // Nobody asked for it: the scheduler queued it.
    assert_eq!(backup["requested_by"], "scheduler", "{backup}");
    assert_eq!(backup["job_id"], job_id, "{backup}");
    assert_eq!(runs(url, op).len(), 1);
    let points = call("GET", &format!("{url}/v1/restore-points"), op, None);
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
        op,
        Some(json!({"target": target.to_str().unwrap(), "paths": []})),
    );
    wait_for_run(s, url, op, Duration::from_secs(240), |r| {
        r["kind"] == "restore" && r["status"] == "succeeded"
    });
    // A snapshot keeps its sources' absolute paths: they are restored under the target.
    let restored = target.join(src.strip_prefix("/").unwrap());
    let (want, got) = (tree::describe(&src), tree::describe(&restored));
    assert!(want.len() > 10, "{:?}", want.keys());
    assert_eq!(want, got);

    call(
        "POST",
        &format!("{url}/v1/restore-points/{point_id}/verify"),
        op,
        None,
    );
    wait_for_run(s, url, op, Duration::from_secs(240), |r| {
        r["kind"] == "verify" && r["status"] == "succeeded"
    });
    // Incremental: the next backup of the unchanged tree stores no pack, and one after
    // a small change stores only what changed (objects are create-only: each stored
    // object is one PUT).
    let destinations = call("GET", &format!("{url}/v1/destinations"), op, None);
    let repo_root = store_root
        .join(destinations["destinations"][0]["prefix"].as_str().unwrap())
        .join("repo");
    let stored = |dir: &str| {
        let mut found = Vec::new();
        tree::walk(&repo_root.join(dir), &mut found);
        found.retain(|p| p.is_file());
        found
    };
    let mut backups_done = 1;
    let mut backup_now = |what: &str| {
        call(
            "POST",
            &format!("{url}/v1/jobs/{}/run", job_id.as_str().unwrap()),
            op,
            None,
        );
        backups_done += 1;
        let want = backups_done;
        wait_for_run(s, url, op, Duration::from_secs(240), |_| {
            runs(url, op)
                .iter()
                .filter(|r| r["kind"] == "backup" && r["status"] == "succeeded")
                .count()
                == want
        });
        eprintln!("{what} backup done");
    };
    // Its files' data is all there: the only new objects are a few tree blobs for the
    // folders above the source, whose times changed (the restore target was made in
    // this test's scratch folder, in /tmp), each pack of them under 4 KiB.
    let new_packs = |before: &[PathBuf]| -> Vec<u64> {
        stored("data")
            .iter()
            .filter(|p| !before.contains(p))
            .filter_map(|p| p.metadata().ok().map(|m| m.len()))
            .collect()
    };
    let first = stored("data");
    backup_now("unchanged");
    let unchanged = new_packs(&first);
    assert!(
        unchanged.len() <= 2 && unchanged.iter().all(|len| *len < 4096),
        "an unchanged tree stored data: new packs of {unchanged:?} bytes"
    );
    assert_eq!(stored("snapshots").len(), 2);
    let second = stored("data");
    std::fs::write(src.join("big/changed.txt"), noise(200_000, 99)).unwrap();
    backup_now("changed");
    let changed = new_packs(&second);
    let total: u64 = changed.iter().sum();
    assert!(
        (200_000..400_000).contains(&total) && changed.len() <= 3,
        "a 200 kB change stored packs of {changed:?} bytes"
    );
    assert_eq!(stored("snapshots").len(), 3);

    // The server saw the result; the agent removes its pending copy just after the
    // server's answer, so give it that moment before stopping it.
    let delivered = Instant::now();
    while !pending(s).is_empty() && delivered.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(agent);
    assert!(pending(s).is_empty(), "{:?}", pending(s));

    let destinations = call("GET", &format!("{url}/v1/destinations"), op, None);
    let prefix = destinations["destinations"][0]["prefix"]
        .as_str()
        .unwrap()
        .to_owned();
    // The restore's and the verify's key files are gone from the repository once the
    // runs ended (the server's and the agent's own stay), and the agent's state holds
    // only what enrolment gave it, its sealed cache and its outbox.
    let keys_dir = store_root.join(&prefix).join("repo/keys");
    let count_keys = || {
        let mut found = Vec::new();
        tree::walk(&keys_dir, &mut found);
        found.iter().filter(|p| p.is_file()).count()
    };
    let swept = Instant::now();
    while count_keys() != 2 && swept.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(count_keys(), 2, "key files in {}", keys_dir.display());
    let mut kept: Vec<String> = std::fs::read_dir(s.path("agent"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    assert!(
        kept.iter().all(|name| [
            "agent.json",
            "api-key",
            "cache",
            "pending",
            "repository.key"
        ]
        .contains(&name.as_str())),
        "{kept:?}"
    );
    let mut stored = Vec::new();
    tree::walk(&store_root.join(&prefix), &mut stored);
    stored.retain(|p| p.is_file());
    // The server's retention and prune run after each backup, in the background: an
    // object listed here may be gone (an index superseded) by the time it is read.
    let total: u64 = stored
        .iter()
        .filter_map(|p| p.metadata().ok())
        .map(|m| m.len())
        .sum();
    assert!(
        total > 1 << 20,
        "{total} bytes stored under {prefix}: {stored:?}"
    );
    for object in &stored {
        let Ok(bytes) = std::fs::read(object) else {
            continue;
        };
        assert!(
            !bytes.windows(MARKER.len()).any(|w| w == MARKER),
            "plaintext in {}",
            object.display()
        );
    }
}

#[test]
fn the_scheduler_dispatches_a_backup_that_restores_the_same_tree_on_the_embedded_store() {
    let s = Scratch::new();
    let setup = setup(&s, None);
    // The token is one-time.
    s.run(&[
        "agent",
        "enroll",
        "--server",
        &setup.url,
        "--token-file",
        "token",
        "--state-dir",
        "agent2",
    ])
    .fails(3, "enrolment_token_used");
    scheduled_backup_restores_the_same_tree(&s, &setup, &s.path("server-data/objects"));

    // The server goes away: the agent says so with exit code 5 (the looping agent
    // retries with backoff instead).
    drop(setup);
    s.run(&["agent", "run", "--once", "--state-dir", "agent"])
        .fails(5, "server unavailable");
}

#[test]
fn the_scheduler_dispatches_a_backup_that_restores_the_same_tree_on_an_s3_backend() {
    let s = Scratch::new();
    let (_s3, endpoint) = s3s::start(&s.path("s3root"));
    let setup = setup(
        &s,
        Some(Backend {
            endpoint: &endpoint,
            bucket: s3s::BUCKET,
            access_key_id: s3s::ACCESS,
            secret_access_key: s3s::SECRET,
        }),
    );
    scheduled_backup_restores_the_same_tree(&s, &setup, &s.path("s3root").join(s3s::BUCKET));
    // Nothing went to the embedded store.
    let mut local = Vec::new();
    tree::walk(&s.path("server-data/objects"), &mut local);
    assert!(local.iter().all(|p| !p.is_file()), "{local:?}");
}

#[test]
fn a_server_gone_mid_upload_fails_the_run_and_the_result_survives_an_agent_restart() {
    let s = Scratch::new();
    let Setup {
        server,
        url,
        op,
        agent_id,
        port,
        bin,
    } = setup(&s, None);
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
    // The backup fails; its result is kept, since it cannot be delivered. Its uploads
    // retry with backoff first: under a loaded CI machine (other tests building and
    // running beside it) that took over two minutes once, alone about one.
    let deadline = std::time::Instant::now() + Duration::from_secs(360);
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
