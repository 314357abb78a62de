//! What the S3 backend's tests run against: a real S3-compatible server (s3s-fs, on a
//! free loopback port, over a temporary folder, killed on drop), a fault-injecting TCP
//! proxy to put between Coffer and it, and boto3 as an independent client.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use coffer_adapters::storage::{S3Config, S3Storage};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

pub const ACCESS_KEY: &str = "coffer-test-access-key";
pub const SECRET_KEY: &str = "coffer-test-secret-DO-NOT-PRINT";
pub const REGION: &str = "us-east-1";
pub const BUCKET: &str = "coffer-test";

const INSTALL_HINT: &str = "the S3 tests need the s3s-fs server: install it with \
     `cargo install s3s-fs --version 0.14.1 --features binary --locked` (.ci/run does)";

fn s3s_fs_binary() -> PathBuf {
    let on_path = Command::new("s3s-fs")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if on_path {
        return PathBuf::from("s3s-fs");
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")));
    if let Some(bin) = cargo_home.map(|h| h.join("bin/s3s-fs")) {
        if bin.is_file() {
            return bin;
        }
    }
    panic!("{INSTALL_HINT}");
}

/// An s3s-fs server with one bucket, [`BUCKET`]; killed when dropped.
pub struct Server {
    /// None for a server someone else runs ([`Server::start`]'s `COFFER_TEST_S3_ENDPOINT`).
    child: Option<Child>,
    root: tempfile::TempDir,
    pub addr: SocketAddr,
}

impl Server {
    /// Starts s3s-fs; or, when `COFFER_TEST_S3_ENDPOINT` names one (`http://IP:PORT`),
    /// uses that server, whose bucket [`BUCKET`] must exist and take the key in
    /// `COFFER_TEST_S3_ACCESS_KEY`/`COFFER_TEST_S3_SECRET_KEY` (`scripts/garage.sh`
    /// runs the repository tests so against a 3-node Garage cluster).
    pub fn start() -> Server {
        let root = tempfile::tempdir().unwrap();
        if let Ok(endpoint) = std::env::var("COFFER_TEST_S3_ENDPOINT") {
            let addr = endpoint
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .parse()
                .expect("COFFER_TEST_S3_ENDPOINT: http://IP:PORT");
            return Server {
                child: None,
                root,
                addr,
            };
        }
        let mut child = Command::new(s3s_fs_binary())
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root.path())
            .env("RUST_LOG", "s3s_fs=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting s3s-fs: {e}; {INSTALL_HINT}"));
        // It logs the address it bound ("server is running at http://127.0.0.1:N");
        // the rest of its log is drained so it never blocks on a full pipe.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("server is running at http://").nth(1) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(rest.trim().to_owned());
                    }
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => addr.parse().unwrap(),
            Err(_) => {
                let _ = child.kill();
                panic!("s3s-fs did not report its address within 20 s");
            }
        };
        let server = Server {
            child: Some(child),
            root,
            addr,
        };
        server.create_bucket();
        server
    }

    /// moto's S3 server (`python3 -m moto.server`, from `pip install "moto[server]"`)
    /// on a free loopback port, with the test bucket. moto checks no signatures: it is
    /// here for what its S3 does (listing, multipart, ranges, conditional puts), not for
    /// authentication.
    pub fn start_moto() -> Server {
        const HINT: &str = "the moto S3 tests need moto's server:              `python3 -m pip install \"moto[server]\"` (.ci/run does)";
        let root = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting moto: {e}; {HINT}"));
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("moto exited ({status}) before it listened; {HINT}");
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("moto did not listen within 30 s; {HINT}");
            }
            thread::sleep(Duration::from_millis(100));
        }
        let server = Server {
            child: Some(child),
            root,
            addr,
        };
        server.create_bucket();
        server
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The folder s3s-fs keeps its data in.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    fn create_bucket(&self) {
        let bucket = Bucket::new(
            self.endpoint().parse().unwrap(),
            UrlStyle::Path,
            BUCKET,
            REGION,
        )
        .unwrap();
        let creds = Credentials::new(ACCESS_KEY, SECRET_KEY);
        let url = bucket.create_bucket(&creds).sign(Duration::from_secs(60));
        // An explicit empty body: moto wants a Content-Length on the PUT.
        let resp = reqwest::blocking::Client::new()
            .put(url)
            .header("content-length", "0")
            .body(Vec::new())
            .send()
            .expect("CreateBucket");
        assert!(
            resp.status().is_success(),
            "CreateBucket: {}",
            resp.status()
        );
    }

    /// Multipart uploads s3s-fs still holds (it keeps `.upload-ID.json` and
    /// `.upload_id-ID.part-N` files in its root). s3s-fs does not implement
    /// ListMultipartUploads, so its folder is where dangling uploads show.
    pub fn dangling_uploads(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.root())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(".upload-") || n.starts_with(".upload_id-"))
            .collect();
        names.sort();
        names
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A configuration for a server at `endpoint` with small parts and quick retries.
pub fn config(endpoint: &str) -> S3Config {
    let from_env = |name: &str, default: &str| std::env::var(name).unwrap_or(default.to_owned());
    let mut c = S3Config::new(
        endpoint,
        REGION,
        BUCKET,
        from_env("COFFER_TEST_S3_ACCESS_KEY", ACCESS_KEY),
        from_env("COFFER_TEST_S3_SECRET_KEY", SECRET_KEY),
    );
    c.part_size = 5 << 20;
    c.parts_in_flight = 2;
    c.request_timeout = Duration::from_secs(10);
    c.retry_base_delay = Duration::from_millis(20);
    c.retry_max_delay = Duration::from_millis(200);
    c
}

pub fn store(endpoint: &str) -> S3Storage {
    S3Storage::new(&config(endpoint)).unwrap()
}

// --- boto3 ---

/// Runs `ops` (JSON list of operations, see s3_boto3.py) with boto3 against `server`,
/// returning what the script printed.
pub fn boto3(server: &Server, ops: &serde_json::Value) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/s3_boto3.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(server.endpoint())
        .arg(BUCKET)
        .arg(ops.to_string())
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env("AWS_DEFAULT_REGION", REGION)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .unwrap_or_else(|e| panic!("running python3: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the boto3 script failed (needs `python3 -m pip install boto3`): {stderr}"
    );
    serde_json::from_slice(&out.stdout).expect("the boto3 script prints JSON")
}

// --- the fault-injecting proxy ---

/// Which S3 operation a request is, told from its method and query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    PutObject,
    CreateMultipart,
    UploadPart,
    Complete,
    Abort,
    ListParts,
    Head,
    Get,
    Other,
}

fn classify(method: &str, target: &str) -> Op {
    let query = target.split_once('?').map_or("", |(_, q)| q);
    let has = |name: &str| query.split('&').any(|p| p.split('=').next() == Some(name));
    match method {
        "PUT" if has("partNumber") => Op::UploadPart,
        "PUT" => Op::PutObject,
        "POST" if has("uploads") => Op::CreateMultipart,
        "POST" if has("uploadId") => Op::Complete,
        "DELETE" if has("uploadId") => Op::Abort,
        "GET" if has("uploadId") => Op::ListParts,
        "HEAD" => Op::Head,
        "GET" => Op::Get,
        _ => Op::Other,
    }
}

/// What the proxy does to a request instead of forwarding it faithfully.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forwards the head and half the body, then closes both connections.
    DropMidRequest,
    /// Forwards the whole request, then closes the client's connection instead of
    /// passing the answer on: the server did it, the client cannot know.
    DropResponse,
    /// Takes the request and answers nothing for this long, then closes.
    Stall(Duration),
    /// Answers this status itself (500 InternalError, 503 SlowDown, ...).
    Status(u16),
    /// Forwards the request with one body byte flipped.
    CorruptBody,
    /// Forwards the request, passes on the answer's head and half its body, closes.
    TruncateResponse,
}

/// Applies `fault` to occurrences `from..from + count` (1-based) of `op`.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub op: Op,
    pub from: usize,
    pub count: usize,
    pub fault: Fault,
}

type Hook = Box<dyn Fn(Op) + Send + Sync>;

struct Shared {
    upstream: SocketAddr,
    rules: Mutex<Vec<Rule>>,
    counts: Mutex<HashMap<Op, usize>>,
    /// (operation, fault applied) for every request, in arrival order.
    log: Mutex<Vec<(Op, Option<Fault>)>>,
    /// Runs when a request arrives, before it is forwarded or faulted.
    hook: Mutex<Option<Arc<Hook>>>,
}

/// A TCP proxy on 127.0.0.1 that forwards one HTTP/1.1 request per connection to the
/// server (forcing `Connection: close` both ways) and injects faults by rule.
pub struct Proxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream,
            rules: Mutex::new(Vec::new()),
            counts: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            hook: Mutex::new(None),
        });
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let shared = Arc::clone(&shared);
                    thread::spawn(move || {
                        let _ = serve(&shared, conn);
                    });
                }
            });
        }
        Proxy { addr, shared, stop }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the rules and forgets the counts and the log.
    pub fn set_rules(&self, rules: &[Rule]) {
        *self.shared.rules.lock().unwrap() = rules.to_vec();
        self.shared.counts.lock().unwrap().clear();
        self.shared.log.lock().unwrap().clear();
    }

    pub fn set_hook(&self, hook: Option<Hook>) {
        *self.shared.hook.lock().unwrap() = hook.map(Arc::new);
    }

    pub fn log(&self) -> Vec<(Op, Option<Fault>)> {
        self.shared.log.lock().unwrap().clone()
    }

    /// How many faults were applied.
    pub fn faults_applied(&self) -> usize {
        self.log().iter().filter(|(_, f)| f.is_some()).count()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr); // wakes the accept loop
    }
}

fn read_head(conn: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte)? == 0 {
            return Ok(None);
        }
        head.push(byte[0]);
        if head.len() > 64 * 1024 {
            return Ok(None);
        }
    }
    Ok(Some(head))
}

/// The head with any `Connection` header replaced by `Connection: close`.
fn close_after(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for line in text.trim_end_matches("\r\n").split("\r\n") {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .split("\r\n")
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0)
}

fn serve(shared: &Shared, mut client: TcpStream) -> std::io::Result<()> {
    let Some(head) = read_head(&mut client)? else {
        return Ok(());
    };
    let request_line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut words = request_line.split(' ');
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let op = classify(method, target);
    let fault = {
        let mut counts = shared.counts.lock().unwrap();
        let n = counts.entry(op).or_insert(0);
        *n += 1;
        let n = *n;
        shared
            .rules
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.op == op && (r.from..r.from + r.count).contains(&n))
            .map(|r| r.fault)
    };
    shared.log.lock().unwrap().push((op, fault));
    let hook = shared.hook.lock().unwrap().clone();
    if let Some(hook) = hook {
        hook(op);
    }

    let len = content_length(&head);
    let mut body = vec![0u8; len];
    let read_body = |client: &mut TcpStream, body: &mut [u8]| client.read_exact(body);

    match fault {
        Some(Fault::DropMidRequest) => {
            let half = len / 2;
            read_body(&mut client, &mut body[..half])?;
            let mut upstream = TcpStream::connect(shared.upstream)?;
            upstream.write_all(&close_after(&head))?;
            upstream.write_all(&body[..half])?;
            let _ = upstream.shutdown(Shutdown::Both);
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        Some(Fault::Stall(d)) => {
            read_body(&mut client, &mut body)?;
            thread::sleep(d);
            let _ = client.shutdown(Shutdown::Both);
            return Ok(());
        }
        Some(Fault::Status(status)) => {
            read_body(&mut client, &mut body)?;
            let code = if status == 503 {
                "SlowDown"
            } else {
                "InternalError"
            };
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
                 <Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
            );
            let answer = format!(
                "HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\n\
                 Content-Length: {}\r\nRetry-After: 0\r\nConnection: close\r\n\r\n{xml}",
                xml.len()
            );
            client.write_all(answer.as_bytes())?;
            let _ = client.shutdown(Shutdown::Write);
            return Ok(());
        }
        _ => {}
    }

    read_body(&mut client, &mut body)?;
    if fault == Some(Fault::CorruptBody) && !body.is_empty() {
        let mid = body.len() / 2;
        body[mid] ^= 0x01;
    }
    let mut upstream = TcpStream::connect(shared.upstream)?;
    upstream.write_all(&close_after(&head))?;
    upstream.write_all(&body)?;
    // The server closes after its answer (Connection: close).
    let Some(answer_head) = read_head(&mut upstream)? else {
        return Ok(());
    };
    let mut rest = Vec::new();
    upstream.read_to_end(&mut rest)?;
    if fault == Some(Fault::DropResponse) {
        let _ = client.shutdown(Shutdown::Both);
        return Ok(());
    }
    if fault == Some(Fault::TruncateResponse) {
        rest.truncate(rest.len() / 2);
    }
    client.write_all(&close_after(&answer_head))?;
    client.write_all(&rest)?;
    let _ = client.shutdown(Shutdown::Write);
    Ok(())
}
