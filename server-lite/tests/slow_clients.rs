//! Finding 4 of the probe (issue 14): slow and oversized requests on a real socket.
//! Headers that trickle in, a body shorter than it declared, a declared length over the
//! limit, and more connections than the server serves at once. Waits are bounded so a
//! regression fails instead of hanging; nothing here measures speed.

#[path = "support/harness.rs"]
mod harness;

use std::time::Duration;

use coffer_server::{server, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Live {
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

async fn start(tweak: impl FnOnce(&mut coffer_server::config::Config)) -> Live {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = harness::test_config(dir.path());
    config.public_url = url::Url::parse(&format!("http://{addr}")).unwrap();
    tweak(&mut config);
    let started = Server::open(config, None).unwrap();
    tokio::spawn(server::serve(
        listener,
        started.state,
        std::future::pending(),
    ));
    Live { addr, _dir: dir }
}

/// Reads until the server closes the connection or `limit` passes; returns what came
/// and whether the connection was closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&out).into(), true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (String::from_utf8_lossy(&out).into(), false),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_04_headers_sent_slowly_are_cut_off() {
    let live = start(|c| c.header_read_timeout = Duration::from_secs(2)).await;
    let mut stream = TcpStream::connect(live.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // One header line a second: the headers never finish within the timeout.
    let trickle = async {
        for i in 0..30 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if stream
                .write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                return i;
            }
        }
        30
    };
    let lines = trickle.await;
    assert!(
        lines < 30,
        "the connection was still open after 30 slow header lines"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_04_a_body_shorter_than_declared_is_answered() {
    let live = start(|c| c.body_read_timeout = Duration::from_secs(2)).await;
    let mut stream = TcpStream::connect(live.addr).await.unwrap();
    stream
        .write_all(
            b"POST /v1/enroll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"to",
        )
        .await
        .unwrap();
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(20)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("request_timeout"), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_04_oversized_declared_lengths_are_refused_before_the_body() {
    let live = start(|_| {}).await;
    for (path, status) in [
        ("/v1/enroll", "413"),
        ("/s3/coffer/t1/a1/x?X-Amz-Signature=00", "413"),
    ] {
        let mut stream = TcpStream::connect(live.addr).await.unwrap();
        let declared = if path.starts_with("/s3/") {
            6u64 << 30
        } else {
            1 << 30
        };
        stream
            .write_all(
                format!(
                    "PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                     Content-Length: {declared}\r\n\r\n"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{path}: {answer:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_04_connections_beyond_the_limit_wait_their_turn() {
    let live = start(|c| {
        c.max_connections = 2;
        c.header_read_timeout = Duration::from_secs(30);
    })
    .await;
    // Two connections that say nothing hold both places.
    let first = TcpStream::connect(live.addr).await.unwrap();
    let _second = TcpStream::connect(live.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut third = TcpStream::connect(live.addr).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let (answer, _) = read_until_closed(&mut third, Duration::from_secs(1)).await;
    assert!(answer.is_empty(), "served beyond the limit: {answer:?}");
    // One place frees: the waiting client is served.
    drop(first);
    let (answer, _) = read_until_closed(&mut third, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_store_upload_that_stalls_or_breaks_is_the_callers_400_and_leaves_nothing() {
    use serde_json::{json, Value};
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = harness::test_config(dir.path());
    config.public_url = url::Url::parse(&format!("http://{addr}")).unwrap();
    config.body_read_timeout = Duration::from_secs(2);
    let started = Server::open(config, None).unwrap();
    let admin = started.admin_token.unwrap().to_string();
    tokio::spawn(server::serve(
        listener,
        started.state,
        std::future::pending(),
    ));
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    let post = |path: &str, token: Option<&str>, body: Value| {
        let mut request = client.post(format!("{base}{path}")).json(&body);
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let tenant = post("/v1/admin/tenants", Some(&admin), json!({"name": "slow"})).await;
    let id = tenant["tenant"]["id"].as_str().unwrap();
    let path = format!("/v1/admin/tenants/{id}/operator-tokens");
    let op = post(&path, Some(&admin), json!({})).await;
    let op = op["token"].as_str().unwrap();
    let enrolment = post("/v1/enrolment-tokens", Some(op), json!({})).await;
    let enrolled = post(
        "/v1/enroll",
        None,
        json!({"token": enrolment["token"], "hostname": "slow", "version": "0.1.0"}),
    )
    .await;
    let agent = enrolled["api_key"].as_str().unwrap();
    let prefix = enrolled["destination"]["prefix"].as_str().unwrap();

    for (key, hang_up, expected) in [
        ("stalled", false, "RequestTimeout"),
        ("broken", true, "IncompleteBody"),
    ] {
        let signed = post(
            "/v1/agent/presign",
            Some(agent),
            json!({"op": "put", "key": key}),
        )
        .await;
        let url = url::Url::parse(signed["url"].as_str().unwrap()).unwrap();
        let mut head = format!(
            "PUT {}?{} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n",
            url.path(),
            url.query().unwrap()
        );
        for pair in signed["headers"].as_array().unwrap() {
            head.push_str(&format!(
                "{}: {}\r\n",
                pair[0].as_str().unwrap(),
                pair[1].as_str().unwrap()
            ));
        }
        head.push_str("\r\n");
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&[7u8; 10]).await.unwrap();
        if hang_up {
            // No more body, and no more of anything: the server sees the body end
            // short of its declared length.
            stream.shutdown().await.unwrap();
        }
        let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(20)).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{key}: {answer:?}");
        assert!(answer.contains(expected), "{key}: {answer:?}");
        let stored = dir.path().join("objects").join(prefix).join(key);
        assert!(!stored.exists(), "{key}: a partial object is visible");
    }
}
