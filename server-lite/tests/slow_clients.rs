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
