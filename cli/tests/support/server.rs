//! The lite server (`coffer-server`) for end-to-end tests: built once per test process
//! next to `coffer` (or `$COFFER_SERVER_BIN`), started on 127.0.0.1 over a scratch
//! data folder, its one-time admin token read from its output. (The same harness as
//! `agent.rs`'s, which predates this module.)

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct Server {
    pub child: Child,
    pub url: String,
    pub admin: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server binary: `$COFFER_SERVER_BIN`, else built with the cargo running this
/// test, next to `coffer` (same target folder and profile), so it is never missing
/// nor stale.
pub fn server_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("COFFER_SERVER_BIN") {
        return PathBuf::from(bin);
    }
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let profile_dir = Path::new(super::BIN).parent().unwrap();
            let target_dir = profile_dir.parent().unwrap();
            let mut build = Command::new(env!("CARGO"));
            build
                .args([
                    "build",
                    "-p",
                    "coffer-server",
                    "--bin",
                    "coffer-server",
                    "--locked",
                ])
                .arg("--target-dir")
                .arg(target_dir)
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            match profile_dir.file_name().and_then(|n| n.to_str()) {
                Some("debug") => {}
                Some("release") => {
                    build.arg("--release");
                }
                Some(other) => {
                    build.args(["--profile", other]);
                }
                None => panic!("no profile folder for {}", super::BIN),
            }
            let status = build
                .status()
                .expect("running cargo to build coffer-server");
            assert!(status.success(), "building coffer-server failed: {status}");
            let bin = profile_dir.join("coffer-server");
            assert!(bin.is_file(), "cargo built no {}", bin.display());
            bin
        })
        .clone()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the server over `data` and waits until it listens; on a first start (no
/// data folder yet) also for the one-time admin token it prints, which may arrive on
/// either stream in either order.
pub fn start_server(bin: &Path, data: &Path, port: u16) -> Server {
    start_server_with(bin, data, port, &[])
}

/// [`start_server`] with more `serve` options.
pub fn start_server_with(bin: &Path, data: &Path, port: u16, extra: &[&str]) -> Server {
    let first_start = !data.exists();
    let mut child = Command::new(bin)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
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
    let deadline = Instant::now() + Duration::from_secs(30);
    while !listening || (first_start && admin.is_empty()) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Some(token)) => admin = token,
            Ok(None) => listening = true,
            Err(_) => panic!(
                "coffer-server did not start (listening: {listening}, admin token: {})",
                !admin.is_empty()
            ),
        }
    }
    Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
        admin,
    }
}

/// A child process killed when the test ends, passing or not.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
