//! `coffer server …` end to end against the real lite server, with the CLI alone: the
//! admin logs in and makes a tenant and an operator token; the operator makes an
//! enrolment token, an agent enrols and runs, a job is made and run with `--wait`, its
//! run and restore point are listed (tables and `--json`), restored with `--wait` and
//! compared, verified; the agent is revoked and the audit log names every step. Also:
//! a refused token, a server away, a token file others can read, and that no output
//! but the ones meant to show a new token ever holds a token.

mod support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use serde_json::Value;
use support::server::{free_port, server_binary, start_server, start_server_with, Killed};
use support::{Run, Scratch};

/// Exit codes of `coffer` (cli/src/exit.rs).
const USAGE: i32 = 2;
const WRONG_KEY: i32 = 3;
const IO: i32 = 5;
const NOT_FOUND: i32 = 6;
const REFUSED: i32 = 10;

/// Runs `coffer server ARGS` with `env`, no token or URL from the test's own
/// environment, and the config folder inside the scratch folder; keeps every output so
/// the test can check at the end that no token leaked.
struct Ctl<'a> {
    s: &'a Scratch,
    outputs: std::cell::RefCell<Vec<(String, String)>>,
}

impl Ctl<'_> {
    fn run(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&[u8]>) -> Run {
        let mut full = vec!["server"];
        full.extend_from_slice(args);
        let mut env: Vec<(&str, &str)> = env.to_vec();
        let config = self.s.path("config");
        env.push(("XDG_CONFIG_HOME", config.to_str().unwrap()));
        let run = {
            let mut c = self.s.cmd(&full);
            c.env_remove("COFFER_SERVER_URL")
                .env_remove("COFFER_SERVER_TOKEN");
            for (k, v) in &env {
                c.env(k, v);
            }
            c.stdout(Stdio::piped()).stderr(Stdio::piped());
            if stdin.is_some() {
                c.stdin(Stdio::piped());
            }
            let mut child = c.spawn().unwrap();
            if let Some(input) = stdin {
                child.stdin.take().unwrap().write_all(input).unwrap();
            }
            let out = child.wait_with_output().unwrap();
            Run {
                code: out.status.code().unwrap_or(-1),
                stdout: out.stdout,
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        };
        self.outputs.borrow_mut().push((
            format!("coffer {}", full.join(" ")),
            format!("{}{}", run.stdout_text(), run.stderr),
        ));
        run
    }
}

fn regular_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, fs::read(e.path()).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// `base` then `more`.
fn with<'a>(base: &[&'a str], more: &[&'a str]) -> Vec<&'a str> {
    base.iter().chain(more).copied().collect()
}

fn field(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {v}"))
        .to_owned()
}

#[test]
fn the_whole_life_cycle_through_the_cli() {
    let s = Scratch::new();
    let ctl = Ctl {
        s: &s,
        outputs: Default::default(),
    };
    let port = free_port();
    let server = start_server(&server_binary(), &s.path("server-data"), port);
    let url = server.url.clone();

    // The admin logs in: the token comes on stdin, goes to a 0600 file, and is checked.
    let login = ctl
        .run(
            &["--url", &url, "--config", "admin.toml", "login", "--json"],
            &[],
            Some(format!("{}\n", server.admin).as_bytes()),
        )
        .ok();
    assert_eq!(login.json()["kind"], "admin", "{}", login.stdout_text());
    let mode = fs::metadata(s.path("admin.toml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let admin = ["--config", "admin.toml"];

    let tenant = ctl
        .run(
            &with(&admin, &["tenant", "create", "acme", "--json"]),
            &[],
            None,
        )
        .ok()
        .json();
    let tenant_id = field(&tenant["tenant"], "id");
    let tenants = ctl
        .run(&with(&admin, &["tenant", "list"]), &[], None)
        .ok()
        .stdout_text();
    let row = tenants
        .lines()
        .find(|l| l.contains("acme"))
        .unwrap_or_else(|| panic!("no acme in:\n{tenants}"));
    assert!(row.starts_with(&tenant_id), "{tenants}");
    assert!(tenants.starts_with("ID"), "{tenants}");

    // The operator token: shown once, by this command alone.
    let created = ctl
        .run(
            &with(
                &admin,
                &["operator", "create", &tenant_id, "--label", "ops", "--json"],
            ),
            &[],
            None,
        )
        .ok()
        .json();
    let op_token = field(&created, "token");
    let op_token_id = field(&created, "id");
    let listed = ctl
        .run(&with(&admin, &["operator", "list", &tenant_id]), &[], None)
        .ok()
        .stdout_text();
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&op_token_id) && l.contains("ops")),
        "{listed}"
    );
    fs::write(s.path("op.token"), &op_token).unwrap();
    fs::set_permissions(s.path("op.token"), fs::Permissions::from_mode(0o600)).unwrap();
    let op = ["--url", &url, "--token-file", "op.token"];
    let op_env = [
        ("COFFER_SERVER_URL", url.as_str()),
        ("COFFER_SERVER_TOKEN", op_token.as_str()),
    ];

    // An enrolment token, and an agent enrolled with it and running.
    let enrol = ctl
        .run(
            &[
                "token", "create", "--ttl", "600", "--label", "host1", "--json",
            ],
            &op_env,
            None,
        )
        .ok()
        .json();
    let enrol_id = field(&enrol, "id");
    s.write("enrol.token", field(&enrol, "token").as_bytes());
    let enrolled = s
        .run(&[
            "agent",
            "enroll",
            "--server",
            &url,
            "--token-file",
            "enrol.token",
            "--state-dir",
            "agent",
            "--json",
        ])
        .ok()
        .json();
    let agent_id = field(&enrolled, "agent_id");
    let tokens = ctl
        .run(&["token", "list", "--json"], &op_env, None)
        .ok()
        .json();
    let used = tokens["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == enrol_id.as_str())
        .unwrap_or_else(|| panic!("{tokens}"));
    assert!(
        used["used_at"].is_string(),
        "the token is not marked used: {used}"
    );
    let log = fs::File::create(s.path("agent.log")).unwrap();
    let _agent = Killed(
        s.cmd(&["agent", "run", "--state-dir", "agent"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let agents = ctl
        .run(&with(&op, &["agent", "list"]), &[], None)
        .ok()
        .stdout_text();
    assert!(agents.lines().any(|l| l.starts_with(&agent_id)), "{agents}");
    // The agent reported the machine it runs on when it enrolled.
    let platform = format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH);
    assert!(
        agents.lines().next().unwrap().contains("PLATFORM")
            && agents
                .lines()
                .any(|l| l.starts_with(&agent_id) && l.contains(&platform)),
        "{agents}"
    );
    let dests = ctl
        .run(&["destination", "list", "--json"], &op_env, None)
        .ok()
        .json();
    assert_eq!(
        dests["destinations"][0]["agent_id"],
        agent_id.as_str(),
        "{dests}"
    );

    // A job over a small tree, run with --wait.
    let src = s.path("src");
    for (path, body) in [
        ("a.txt", &b"alpha\n"[..]),
        ("empty", b""),
        ("sub/b.bin", &support::noise(200_000, 7)),
        ("sub/deeper/c.txt", b"gamma\n"),
        ("sub/deeper/d.txt", b"delta\n"),
    ] {
        let p = src.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, body).unwrap();
    }
    let want = regular_files(&src);
    let job = ctl
        .run(
            &[
                "job",
                "create",
                "--agent",
                &agent_id,
                "--name",
                "nightly",
                "--source",
                src.to_str().unwrap(),
                "--keep-last",
                "3",
                "--json",
            ],
            &op_env,
            None,
        )
        .ok()
        .json();
    let job_id = field(&job["job"], "id");
    assert_eq!(job["job"]["retention"]["keep_last"], 3, "{job}");
    let jobs = ctl.run(&["job", "list"], &op_env, None).ok().stdout_text();
    assert!(
        jobs.lines()
            .any(|l| l.starts_with(&job_id) && l.contains("nightly")),
        "{jobs}"
    );
    let ran = ctl.run(&["job", "run", &job_id, "--wait"], &op_env, None);
    assert_eq!(
        ran.code,
        0,
        "job run --wait failed: {}\nagent log:\n{}",
        ran.stderr,
        fs::read_to_string(s.path("agent.log")).unwrap_or_default()
    );
    assert!(
        ran.stdout_text().contains("backup) succeeded"),
        "{}",
        ran.stdout_text()
    );

    // The run and its restore point, as tables and as JSON.
    let runs = ctl
        .run(&["run", "list", "--json"], &op_env, None)
        .ok()
        .json();
    let backup = &runs["runs"][0];
    assert_eq!(backup["kind"], "backup", "{runs}");
    assert_eq!(backup["status"], "succeeded", "{runs}");
    assert_eq!(backup["job_id"], job_id.as_str(), "{runs}");
    assert_eq!(backup["files"], want.len() as u64, "{runs}");
    // Counters mean the same for every kind of run: regular files, content bytes.
    let content: u64 = want.iter().map(|(_, body)| body.len() as u64).sum();
    assert_eq!(backup["bytes"], content, "{runs}");
    let run_id = field(backup, "id");
    let table = ctl.run(&["run", "list"], &op_env, None).ok().stdout_text();
    let row = table
        .lines()
        .find(|l| l.starts_with(&format!("{run_id} ")))
        .unwrap_or_else(|| panic!("no run {run_id} in:\n{table}"));
    assert!(
        row.contains("backup") && row.contains("succeeded"),
        "{table}"
    );

    let points = ctl
        .run(&["restore-point", "list", "--json"], &op_env, None)
        .ok()
        .json();
    let list = points["restore_points"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{points}");
    let point = &list[0];
    assert_eq!(point["files"], want.len() as u64, "{points}");
    assert_eq!(point["job_id"], job_id.as_str(), "{points}");
    assert_eq!(point["run_id"], run_id.as_str(), "{points}");
    let point_id = field(point, "id");
    let table = ctl
        .run(&["restore-point", "list"], &op_env, None)
        .ok()
        .stdout_text();
    let row = table
        .lines()
        .find(|l| l.starts_with(&format!("{point_id} ")))
        .unwrap_or_else(|| panic!("no restore point {point_id} in:\n{table}"));
    assert!(
        row.split_whitespace().any(|c| c == want.len().to_string()),
        "no file count {} in {row:?}",
        want.len()
    );
    // The catalogue and storage agree: the agent's real snapshot is there.
    let reconciled = ctl
        .run(&with(&admin, &["reconcile"]), &[], None)
        .ok()
        .stdout_text();
    assert!(
        reconciled.contains("no restore point names a snapshot gone from storage")
            && reconciled
                .lines()
                .nth(1)
                .is_some_and(|l| l.split_whitespace().nth(2) == Some("1")),
        "{reconciled}"
    );
    let files = ctl
        .run(
            &[
                "restore-point",
                "files",
                &point_id,
                "--path",
                src.to_str().unwrap(),
                "--json",
            ],
            &op_env,
            None,
        )
        .ok()
        .json();
    let names: Vec<&str> = files["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.txt", "empty", "sub"], "{files}");

    // Restored with --wait into a new folder: the same tree.
    let target = s.path("restored");
    let restored = ctl.run(
        &[
            "restore-point",
            "restore",
            &point_id,
            "--target",
            target.to_str().unwrap(),
            "--wait",
        ],
        &op_env,
        None,
    );
    assert_eq!(restored.code, 0, "restore --wait: {}", restored.stderr);
    assert!(
        restored.stdout_text().contains("restore) succeeded"),
        "{}",
        restored.stdout_text()
    );
    let got = regular_files(&target.join(src.strip_prefix("/").unwrap()));
    assert_eq!(got, want, "the restored tree differs");

    let verified = ctl
        .run(
            &["restore-point", "verify", &point_id, "--wait", "--json"],
            &op_env,
            None,
        )
        .ok()
        .json();
    assert_eq!(verified["run"]["kind"], "verify", "{verified}");
    assert_eq!(verified["run"]["status"], "succeeded", "{verified}");
    assert_eq!(verified["run"]["files"], want.len() as u64, "{verified}");
    assert_eq!(verified["run"]["bytes"], content, "{verified}");

    // Without the server: a recovery key from it, then the CLI alone restores the
    // repository where it lies (here the embedded store's folder), the same tree.
    let dest_id = field(&dests["destinations"][0], "id");
    let recovery = ctl
        .run(
            &[
                "destination",
                "recovery-key",
                &dest_id,
                "--out",
                s.path("recovery.key").to_str().unwrap(),
                "--json",
            ],
            &op_env,
            None,
        )
        .ok()
        .json();
    assert!(
        recovery.get("key").is_none(),
        "the key is not printed: {recovery}"
    );
    let location = field(&recovery, "location");
    let mode = fs::metadata(s.path("recovery.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "the key file is private");
    let snapshots = s
        .run(&[
            "snapshots",
            "-r",
            &location,
            "--key-file",
            "recovery.key",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(snapshots.as_array().map(Vec::len), Some(1), "{snapshots}");
    let offline = s.path("restored-offline");
    s.run(&[
        "restore",
        "latest",
        "-r",
        &location,
        "--key-file",
        "recovery.key",
        "-t",
        offline.to_str().unwrap(),
    ])
    .ok();
    let got = regular_files(&offline.join(src.strip_prefix("/").unwrap()));
    assert_eq!(got, want, "the tree restored without the server differs");

    // `run get --wait` on a run queued without waiting.
    let queued = ctl
        .run(&["job", "run", &job_id, "--json"], &op_env, None)
        .ok()
        .json();
    let second = field(&queued["run"], "id");
    assert_ne!(second, run_id);
    let end = ctl
        .run(&["run", "get", &second, "--wait", "--json"], &op_env, None)
        .ok()
        .json();
    assert_eq!(end["run"]["status"], "succeeded", "{end}");
    let shown = ctl
        .run(&["run", "get", &second], &op_env, None)
        .ok()
        .stdout_text();
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("status") && l.ends_with("succeeded")),
        "{shown}"
    );

    // The job is edited in place: same ID, its restore point still its own; the next
    // backup leaves out what the new exclude pattern names.
    let updated = ctl
        .run(
            &["job", "update", &job_id, "--exclude", "*.bin", "--json"],
            &op_env,
            None,
        )
        .ok()
        .json();
    assert_eq!(updated["job"]["id"], job_id.as_str(), "{updated}");
    assert_eq!(updated["job"]["excludes"][0], "*.bin", "{updated}");
    let kept = ctl
        .run(
            &["restore-point", "list", "--job", &job_id, "--json"],
            &op_env,
            None,
        )
        .ok()
        .json();
    assert!(
        kept["restore_points"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == point_id.as_str()),
        "{kept}"
    );
    ctl.run(&["job", "run", &job_id, "--wait"], &op_env, None)
        .ok();
    let newest = ctl
        .run(
            &["restore-point", "list", "--job", &job_id, "--json"],
            &op_env,
            None,
        )
        .ok()
        .json();
    let newest_id = field(&newest["restore_points"][0], "id");
    let sub = src.join("sub");
    let listed = ctl
        .run(
            &[
                "restore-point",
                "files",
                &newest_id,
                "--path",
                sub.to_str().unwrap(),
                "--json",
            ],
            &op_env,
            None,
        )
        .ok()
        .json();
    let names: Vec<&str> = listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["deeper"], "b.bin is excluded now: {listed}");

    // Retention, asked for now: a run of its own; the job keeps its last 3, all there
    // are so far.
    let applied = ctl
        .run(
            &["job", "retention", &job_id, "--now", "--json"],
            &op_env,
            None,
        )
        .ok()
        .json();
    assert_eq!(applied["retention_run"]["trigger"], "operator", "{applied}");
    assert_eq!(applied["retention_run"]["status"], "succeeded", "{applied}");
    assert_eq!(applied["retention_run"]["kept"], 3, "{applied}");
    let table = ctl
        .run(&["job", "retention", &job_id], &op_env, None)
        .ok()
        .stdout_text();
    let row = field(&applied["retention_run"], "id");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&row) && l.contains("operator")),
        "{table}"
    );

    // A second machine, named at enrolment; enrolment prints its exact start command.
    let enrol2 = ctl
        .run(&["token", "create", "--json"], &op_env, None)
        .ok()
        .json();
    s.write("enrol2.token", field(&enrol2, "token").as_bytes());
    let second_agent = s
        .run(&[
            "agent",
            "enroll",
            "--server",
            &url,
            "--token-file",
            "enrol2.token",
            "--state-dir",
            "agent2",
            "--name",
            "spare",
        ])
        .ok();
    let said = second_agent.stdout_text() + &second_agent.stderr;
    let start = format!(
        "coffer agent run --state-dir {}",
        s.path("agent2").display()
    );
    assert!(said.contains(&start), "{said}");
    let agents2 = ctl
        .run(&["agent", "list", "--json"], &op_env, None)
        .ok()
        .json();
    let spare = agents2["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "spare")
        .unwrap_or_else(|| panic!("no agent named spare: {agents2}"));
    let spare_id = field(spare, "id");
    let log2 = fs::File::create(s.path("agent2.log")).unwrap();
    let _agent2 = Killed(
        s.cmd(&["agent", "run", "--state-dir", "agent2"])
            .stdout(Stdio::null())
            .stderr(log2)
            .spawn()
            .unwrap(),
    );

    // Revoked: the agent shows so, and a verify on it is refused with its own code.
    let revoked = ctl
        .run(&with(&op, &["agent", "revoke", &agent_id]), &[], None)
        .ok()
        .stdout_text();
    assert!(revoked.contains("revoked"), "{revoked}");
    let agents = ctl
        .run(&["agent", "list", "--json"], &op_env, None)
        .ok()
        .json();
    assert_eq!(agents["agents"][0]["status"], "revoked", "{agents}");
    ctl.run(&["restore-point", "verify", &point_id], &op_env, None)
        .fails(REFUSED, "agent_revoked");
    ctl.run(&["run", "get", "999999"], &op_env, None)
        .fails(NOT_FOUND, "not_found");

    // The machine is gone for good: deleted, and its restore point restored on the
    // spare machine, the same tree.
    ctl.run(&["agent", "delete", &agent_id], &op_env, None).ok();
    let target2 = s.path("restored-elsewhere");
    let elsewhere = ctl.run(
        &[
            "restore-point",
            "restore",
            &point_id,
            "--agent",
            &spare_id,
            "--target",
            target2.to_str().unwrap(),
            "--wait",
        ],
        &op_env,
        None,
    );
    assert_eq!(
        elsewhere.code,
        0,
        "restore on another agent: {}\nagent log:\n{}",
        elsewhere.stderr,
        fs::read_to_string(s.path("agent2.log")).unwrap_or_default()
    );
    let got = regular_files(&target2.join(src.strip_prefix("/").unwrap()));
    assert_eq!(got, want, "the tree restored elsewhere differs");

    // The audit log names each step, the tenant's and the whole server's.
    let audit = ctl.run(&["audit"], &op_env, None).ok().stdout_text();
    for action in [
        "enrolment_token.create",
        "job.create",
        "job.run_now",
        "restore.request",
        "verify.request",
        "agent.revoke",
        "job.update",
        "agent.delete",
        "destination.recovery_key",
        "backup.start",
        "backup.success",
        "restore.success",
        "verify.success",
    ] {
        assert!(
            audit
                .lines()
                .any(|l| l.split_whitespace().any(|w| w == action)),
            "no {action} in the audit log:\n{audit}"
        );
    }
    let all = ctl
        .run(&with(&admin, &["audit", "--admin", "--json"]), &[], None)
        .ok()
        .json();
    let actions: Vec<&str> = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for action in ["tenant.create", "operator_token.create", "agent.revoke"] {
        assert!(actions.contains(&action), "no {action} in {actions:?}");
    }

    // A refused token: its own exit code, the server's code named, the token not.
    let bogus = "cfo_not-a-real-token-0123456789";
    let refused = ctl
        .run(
            &["agent", "list"],
            &[
                ("COFFER_SERVER_URL", url.as_str()),
                ("COFFER_SERVER_TOKEN", bogus),
            ],
            None,
        )
        .fails(WRONG_KEY, "unauthorized");
    assert!(!refused.stderr.contains(bogus), "{}", refused.stderr);
    let json_error = ctl
        .run(
            &["agent", "list", "--json"],
            &[
                ("COFFER_SERVER_URL", url.as_str()),
                ("COFFER_SERVER_TOKEN", bogus),
            ],
            None,
        )
        .fails(WRONG_KEY, "unauthorized")
        .json();
    assert_eq!(json_error["error"]["code"], WRONG_KEY, "{json_error}");
    // The admin token is not an operator's, and the operator's not the admin's.
    ctl.run(&with(&admin, &["agent", "list"]), &[], None)
        .fails(WRONG_KEY, "HTTP 40");
    ctl.run(&["tenant", "list"], &op_env, None)
        .fails(WRONG_KEY, "HTTP 40");

    // A server away: another code.
    let away = format!("http://127.0.0.1:{}", free_port());
    ctl.run(
        &["--url", &away, "agent", "list"],
        &[("COFFER_SERVER_TOKEN", bogus)],
        None,
    )
    .fails(IO, "cannot reach the server");

    // A token file others can read is refused, before anything is sent.
    fs::set_permissions(s.path("op.token"), fs::Permissions::from_mode(0o644)).unwrap();
    ctl.run(&with(&op, &["agent", "list"]), &[], None)
        .fails(USAGE, "chmod 600");
    fs::set_permissions(s.path("admin.toml"), fs::Permissions::from_mode(0o640)).unwrap();
    ctl.run(&with(&admin, &["tenant", "list"]), &[], None)
        .fails(USAGE, "open to others");
    // No token anywhere: a clear usage error.
    ctl.run(&["--url", &url, "agent", "list"], &[], None)
        .fails(USAGE, "no token");

    // The tenant goes, with everything it has, once its name confirms it.
    let admin_env = [
        ("COFFER_SERVER_URL", url.as_str()),
        ("COFFER_SERVER_TOKEN", server.admin.as_str()),
    ];
    ctl.run(
        &["tenant", "delete", &tenant_id, "--purge"],
        &admin_env,
        None,
    )
    .fails(USAGE, "--confirm");
    ctl.run(
        &[
            "tenant",
            "delete",
            &tenant_id,
            "--purge",
            "--confirm",
            "acme",
        ],
        &admin_env,
        None,
    )
    .ok();
    let left = ctl
        .run(&["tenant", "list", "--json"], &admin_env, None)
        .ok()
        .json();
    assert_eq!(left["tenants"].as_array().map(Vec::len), Some(0), "{left}");
    ctl.run(&["agent", "list"], &op_env, None)
        .fails(WRONG_KEY, "unauthorized");

    // The tokens appear only where a new token is the answer.
    for (command, output) in ctl.outputs.borrow().iter() {
        let shows_new_token =
            command.contains("operator create") || command.contains("token create");
        for token in [server.admin.as_str(), op_token.as_str()] {
            assert!(
                shows_new_token || !output.contains(token),
                "a token in the output of {command}:\n{output}"
            );
        }
    }
}

/// A 100 MB backup, slowed by an upload limit so that it lasts several seconds: while
/// it runs, the server gets a progress report at least every 2 s (read back here from
/// the run's view, whose `updated_at` has whole seconds), with files and bytes done,
/// the totals, a rate and the current path; at the end the counters equal the totals.
#[test]
fn progress_arrives_every_two_seconds_during_a_100_mb_backup() {
    let s = Scratch::new();
    let ctl = Ctl {
        s: &s,
        outputs: Default::default(),
    };
    let server = start_server(&server_binary(), &s.path("server-data"), free_port());
    let url = server.url.clone();
    let admin_env = [
        ("COFFER_SERVER_URL", url.as_str()),
        ("COFFER_SERVER_TOKEN", server.admin.as_str()),
    ];
    let tenant = ctl
        .run(&["tenant", "create", "acme", "--json"], &admin_env, None)
        .ok()
        .json();
    let tenant_id = field(&tenant["tenant"], "id");
    let op = ctl
        .run(
            &["operator", "create", &tenant_id, "--json"],
            &admin_env,
            None,
        )
        .ok()
        .json();
    let op_token = field(&op, "token");
    let op_env = [
        ("COFFER_SERVER_URL", url.as_str()),
        ("COFFER_SERVER_TOKEN", op_token.as_str()),
    ];
    let enrol = ctl
        .run(&["token", "create", "--json"], &op_env, None)
        .ok()
        .json();
    s.write("enrol.token", field(&enrol, "token").as_bytes());
    let enrolled = s
        .run(&[
            "agent",
            "enroll",
            "--server",
            &url,
            "--token-file",
            "enrol.token",
            "--state-dir",
            "agent",
            "--json",
        ])
        .ok()
        .json();
    let agent_id = field(&enrolled, "agent_id");
    let _agent = Killed(
        s.cmd(&["agent", "run", "--state-dir", "agent"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // 100 MB in 20 files of random bytes (nothing compresses or deduplicates).
    let src = s.path("big");
    fs::create_dir_all(&src).unwrap();
    let (count, each) = (20u64, 5_000_000usize);
    for i in 0..count {
        fs::write(src.join(format!("f{i:02}")), support::noise(each, 100 + i)).unwrap();
    }
    let total = count * each as u64;
    let job = ctl
        .run(
            &[
                "job",
                "create",
                "--agent",
                &agent_id,
                "--name",
                "big",
                "--source",
                src.to_str().unwrap(),
                "--upload-limit",
                "5MiB/s",
                "--json",
            ],
            &op_env,
            None,
        )
        .ok()
        .json();
    let job_id = field(&job["job"], "id");
    let queued = ctl
        .run(&["job", "run", &job_id, "--json"], &op_env, None)
        .ok()
        .json();
    let run_id = field(&queued["run"], "id");

    // Read the run back until it ends, keeping each distinct progress report.
    let mut reports: Vec<Value> = Vec::new();
    let end = loop {
        let v = ctl
            .run(&["run", "get", &run_id, "--json"], &op_env, None)
            .ok()
            .json();
        let run = v["run"].clone();
        let p = &run["progress"];
        if run["status"] == "running"
            && p.is_object()
            && reports.last().map(|l| &l["updated_at"]) != Some(&p["updated_at"])
        {
            reports.push(p.clone());
        }
        if run["status"] == "succeeded" || run["status"] == "failed" {
            break run;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(end["status"], "succeeded", "{end}");
    assert_eq!(end["files"], count, "{end}");
    assert_eq!(end["bytes"], total, "{end}");
    assert!(
        reports.len() >= 3,
        "a few reports in a backup of several seconds: {reports:#?} {end}"
    );
    let times: Vec<i64> = reports
        .iter()
        .map(|p| {
            p["updated_at"]
                .as_str()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .unwrap()
                .as_second()
        })
        .collect();
    for pair in times.windows(2) {
        // Every 2 s; the view's whole seconds (and polling) can make it look like 3.
        assert!(pair[1] - pair[0] <= 3, "a gap between reports: {times:?}");
    }
    // Totals from the start's scan, a file being worked on; a rate and an ETA while
    // files are read (a backup then waiting on its uploads reports rate 0).
    for p in &reports {
        assert_eq!(p["files_total"], count, "{p}");
        assert_eq!(p["bytes_total"], total, "{p}");
        assert!(
            p["current_path"]
                .as_str()
                .is_some_and(|c| c.contains("big")),
            "{p}"
        );
    }
    assert!(
        reports
            .iter()
            .any(|p| p["rate"].as_u64().unwrap_or(0) > 0 && p["eta_secs"].is_u64()),
        "{reports:#?}"
    );
}

/// Every route of `openapi.json` that an admin or operator uses has a `coffer server`
/// command: its path appears in the command line's client code. (Agent routes, the
/// embedded store, the server's own documents and the scraper's `/metrics` are the
/// agent's and tools'.)
#[test]
fn every_operator_and_admin_route_has_a_command() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let spec: Value = serde_json::from_str(
        &fs::read_to_string(root.join("../server-lite/openapi.json")).unwrap(),
    )
    .unwrap();
    let mut source = fs::read_to_string(root.join("src/server_cmd.rs")).unwrap();
    for entry in fs::read_dir(root.join("src/server_cmd")).unwrap() {
        source.push_str(&fs::read_to_string(entry.unwrap().path()).unwrap());
    }
    let mut checked = 0;
    for (path, _) in spec["paths"].as_object().unwrap() {
        if path.starts_with("/v1/agent/")
            || path.starts_with("/s3/")
            || ["/v1/enroll", "/openapi.json", "/healthz", "/metrics"].contains(&path.as_str())
        {
            continue;
        }
        // `/v1/jobs/{id}/run` is written `format!("/v1/jobs/{}/run", …)`.
        let mut pattern = String::new();
        let mut in_brace = false;
        for c in path.chars() {
            match c {
                '{' => {
                    in_brace = true;
                    pattern.push_str("{}");
                }
                '}' => in_brace = false,
                c if !in_brace => pattern.push(c),
                _ => {}
            }
        }
        assert!(
            source.contains(&format!("\"{pattern}\"")) || source.contains(&format!("\"{pattern}/")),
            "no coffer server command calls {path}"
        );
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} routes checked");
}

/// A webhook receiver for the notification commands: Python's http.server on
/// 127.0.0.1, answering 204 and appending each request's signature header and body as
/// a JSON line to `log`.
fn webhook_receiver(port: u16, log: &Path) -> Killed {
    let script = r#"
import http.server, json, sys
log = sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"])).decode()
        with open(log, "a") as f:
            f.write(json.dumps({"signature": self.headers.get("webhook-signature"),
                                "id": self.headers.get("webhook-id"), "body": body}) + "\n")
        self.send_response(204)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;
    let child = std::process::Command::new("python3")
        .args(["-c", script, &port.to_string(), log.to_str().unwrap()])
        .spawn()
        .unwrap();
    // Until it accepts connections.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the receiver did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Killed(child)
}

/// `coffer server notify …` and `backend test`: a webhook channel added (its signing
/// secret printed once), listed, tested (the receiver gets a signed sample), turned
/// off; the alert settings changed; deliveries and alerts listed; the server's own
/// channels with --admin; a channel whose receiver is down fails its test with the
/// refusal exit code; an unknown backend is not found.
#[test]
fn notification_channels_through_the_cli() {
    let s = Scratch::new();
    let ctl = Ctl {
        s: &s,
        outputs: Default::default(),
    };
    let port = free_port();
    let server = start_server_with(
        &server_binary(),
        &s.path("server-data"),
        port,
        &["--notify-allow-private-webhooks"],
    );
    let url = server.url.clone();
    let admin_env = [
        ("COFFER_SERVER_URL", url.as_str()),
        ("COFFER_SERVER_TOKEN", server.admin.as_str()),
    ];
    let tenant = ctl
        .run(&["tenant", "create", "acme", "--json"], &admin_env, None)
        .ok()
        .json();
    let tenant_id = field(&tenant["tenant"], "id");
    let op = ctl
        .run(
            &["operator", "create", &tenant_id, "--json"],
            &admin_env,
            None,
        )
        .ok()
        .json();
    let op_token = field(&op, "token");
    let op_env = [
        ("COFFER_SERVER_URL", url.as_str()),
        ("COFFER_SERVER_TOKEN", op_token.as_str()),
    ];

    let hook_port = free_port();
    let log = s.path("hooks.jsonl");
    let _receiver = webhook_receiver(hook_port, &log);
    let hook_url = format!("http://127.0.0.1:{hook_port}/hook");
    let added = ctl
        .run(
            &["notify", "add", "ops", "--webhook-url", &hook_url],
            &op_env,
            None,
        )
        .ok()
        .stdout_text();
    let secret = added
        .lines()
        .find(|l| l.starts_with("whsec_"))
        .unwrap_or_else(|| panic!("no secret shown: {added}"))
        .to_owned();
    let channels = ctl
        .run(&["notify", "channels", "--json"], &op_env, None)
        .ok()
        .json();
    let channel = field(&channels["channels"][0], "id");
    assert!(!channels.to_string().contains(&secret), "shown once only");
    let table = ctl
        .run(&["notify", "channels"], &op_env, None)
        .ok()
        .stdout_text();
    let row = table.lines().find(|l| l.starts_with(&channel)).unwrap();
    assert!(
        row.contains(&hook_url) && row.contains("all") && row.ends_with("yes"),
        "{table}"
    );

    let tested = ctl
        .run(&["notify", "test", &channel], &op_env, None)
        .ok()
        .stdout_text();
    assert!(tested.contains("sample sent"), "{tested}");
    let line = fs::read_to_string(&log).unwrap();
    let got: Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert!(
        got["signature"].as_str().unwrap().starts_with("v1,"),
        "{got}"
    );
    let body: Value = serde_json::from_str(got["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["type"], "test");

    ctl.run(&["notify", "update", &channel, "--disable"], &op_env, None)
        .ok();
    let table = ctl
        .run(&["notify", "channels"], &op_env, None)
        .ok()
        .stdout_text();
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&channel) && l.ends_with("no")),
        "{table}"
    );
    let deliveries = ctl
        .run(&["notify", "deliveries", "--json"], &op_env, None)
        .ok()
        .json();
    assert_eq!(
        deliveries["deliveries"][0]["status"], "sent",
        "{deliveries}"
    );
    let alerts = ctl
        .run(&["notify", "alerts", "--json"], &op_env, None)
        .ok()
        .json();
    assert_eq!(alerts["alerts"][0]["kind"], "test", "{alerts}");
    let settings = ctl
        .run(
            &["notify", "settings", "--missed-grace", "900"],
            &op_env,
            None,
        )
        .ok()
        .stdout_text();
    assert!(settings.contains("900 s past due"), "{settings}");
    let r = ctl.run(&["notify", "settings", "--repeat", "1"], &op_env, None);
    assert_eq!(r.code, USAGE, "{}", r.stderr);
    assert!(r.stderr.contains("repeat_secs"), "{}", r.stderr);

    // A receiver that is not there: the test fails, with the refusal exit code.
    let down = format!("http://127.0.0.1:{}/hook", free_port());
    let added = ctl
        .run(
            &["notify", "add", "down", "--webhook-url", &down, "--json"],
            &op_env,
            None,
        )
        .ok()
        .json();
    let r = ctl.run(
        &["notify", "test", &field(&added["channel"], "id")],
        &op_env,
        None,
    );
    assert_eq!(r.code, REFUSED, "{}", r.stderr);
    assert!(r.stderr.contains("did not go through"), "{}", r.stderr);

    // The server's own channels, with the admin token.
    let added = ctl
        .run(
            &[
                "notify",
                "add",
                "server",
                "--webhook-url",
                &hook_url,
                "--admin",
                "--json",
            ],
            &admin_env,
            None,
        )
        .ok()
        .json();
    let id = field(&added["channel"], "id");
    let listed = ctl
        .run(
            &["notify", "channels", "--admin", "--json"],
            &admin_env,
            None,
        )
        .ok()
        .json();
    assert_eq!(listed["channels"].as_array().unwrap().len(), 1);
    ctl.run(&["notify", "test", &id, "--admin"], &admin_env, None)
        .ok();
    ctl.run(&["notify", "deliveries", "--admin"], &admin_env, None)
        .ok();
    ctl.run(&["notify", "alerts", "--admin"], &admin_env, None)
        .ok();
    ctl.run(&["notify", "delete", &id, "--admin"], &admin_env, None)
        .ok();
    // The operator cannot see it.
    let r = ctl.run(&["notify", "delete", &id], &op_env, None);
    assert_eq!(r.code, NOT_FOUND, "{}", r.stderr);

    let r = ctl.run(&["backend", "test", "99"], &admin_env, None);
    assert_eq!(r.code, NOT_FOUND, "{}", r.stderr);
    for (command, output) in ctl.outputs.borrow().iter() {
        if !command.contains("notify add") {
            assert!(!output.contains(&secret), "{command} showed the secret");
        }
    }
}
