//! The `coffer-server` command: one-command start on an empty data directory (KEK file
//! created with mode 0600, admin token printed once), `gen-kek`, `rotate-kek`,
//! `rotate-admin-token`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_coffer-server");

/// Starts `serve`, waits until it answers /healthz, returns its first stdout line (if
/// any) and stops it.
fn serve_once(data_dir: &std::path::Path) -> (Option<String>, String) {
    serve_once_with(data_dir, None)
}

fn serve_once_with(data_dir: &std::path::Path, kek_env: Option<&str>) -> (Option<String>, String) {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--data-dir"])
        .arg(data_dir)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .env_remove("COFFER_SERVER_KEK")
        .env_remove("COFFER_SERVER_KEK_FILE");
    if let Some(kek) = kek_env {
        command.env("COFFER_SERVER_KEK", kek);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                .unwrap();
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            if answer.contains("200 OK") {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let first = stdout.lines().next().and_then(Result::ok);
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (first, stderr)
}

#[test]
fn one_command_start_creates_the_kek_and_prints_the_admin_token_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("coffer-data");
    let (first, stderr) = serve_once(&data);
    let first = first.expect("the first start prints the admin token");
    let token = first.rsplit(' ').next().unwrap();
    assert!(token.starts_with("cfa_") && token.len() == 68, "{first}");
    assert!(stderr.contains("created a new server KEK"), "{stderr}");
    assert!(!stderr.contains(token));
    let kek = data.join("kek.hex");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&kek).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }
    // The database holds only the token's hash.
    let db = std::fs::read(data.join("coffer-server.sqlite")).unwrap();
    assert!(!db.windows(token.len()).any(|w| w == token.as_bytes()));

    let (again, stderr) = serve_once(&data);
    assert!(
        again.is_none(),
        "the admin token was printed again: {again:?}"
    );
    assert!(!stderr.contains("created a new server KEK"));
}

#[test]
fn gen_kek_and_rotate_kek_commands() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    serve_once(&data);
    let new = dir.path().join("new.kek");
    let out = Command::new(BIN)
        .args(["gen-kek", "--out"])
        .arg(&new)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key_text = std::fs::read_to_string(&new).unwrap();
    // The KEK itself is never printed.
    assert!(!String::from_utf8_lossy(&out.stdout).contains(key_text.trim()));
    let out = Command::new(BIN)
        .args(["gen-kek", "--out"])
        .arg(&new)
        .output()
        .unwrap();
    assert!(!out.status.success(), "gen-kek overwrote a KEK");

    let out = Command::new(BIN)
        .args(["rotate-kek", "--data-dir"])
        .arg(&data)
        .arg("--new-kek-file")
        .arg(&new)
        .env_remove("COFFER_SERVER_KEK")
        .env_remove("COFFER_SERVER_KEK_FILE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("rewrapped 0 repository key envelopes"));

    // A malformed KEK in the environment is refused with a clear message.
    let out = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(&data)
        .env("COFFER_SERVER_KEK", "not-hex")
        .env_remove("COFFER_SERVER_KEK_FILE")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("malformed"), "{stderr}");
    assert!(!stderr.contains("not-hex"));
}

#[test]
fn the_kek_can_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let kek = "ab".repeat(32);
    let (first, stderr) = serve_once_with(&data, Some(&kek));
    assert!(first.is_some_and(|l| l.contains("cfa_")));
    assert!(!stderr.contains("created a new server KEK"), "{stderr}");
    assert!(
        !data.join("kek.hex").exists(),
        "no KEK file when the environment holds it"
    );
    assert!(!stderr.contains(&kek));
}

#[tokio::test]
async fn rotate_admin_token_replaces_a_lost_token() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("coffer-data");
    let (first, _) = serve_once(&data);
    let old = first.unwrap().rsplit(' ').next().unwrap().to_owned();
    let out = Command::new(BIN)
        .args(["rotate-admin-token", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let line = String::from_utf8(out.stdout).unwrap();
    let new = line.trim().rsplit(' ').next().unwrap().to_owned();
    assert!(new.starts_with("cfa_") && new != old, "{line}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&new));

    let mut config = coffer_server::config::Config::new(
        data.clone(),
        url::Url::parse("http://127.0.0.1:9").unwrap(),
    );
    config.auth_failures_per_minute = 100;
    let started = coffer_server::Server::open(config, None).unwrap();
    assert!(
        started.admin_token.is_none(),
        "a revoked token is not a first start"
    );
    let app = coffer_server::app(started.state);
    for (token, want) in [(&old, StatusCode::UNAUTHORIZED), (&new, StatusCode::OK)] {
        let request = Request::get("/v1/admin/tenants")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        assert_eq!(app.clone().oneshot(request).await.unwrap().status(), want);
    }

    // No database there: a clear error, not a new database.
    let out = Command::new(BIN)
        .args(["rotate-admin-token", "--data-dir"])
        .arg(dir.path().join("nothing"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no server database"));
}
