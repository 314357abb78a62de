//! Throughput of the embedded store: a coffer-server started in-process on 127.0.0.1,
//! an agent enrolled over HTTP, then N pre-signed PUTs (create-only, with
//! `x-amz-checksum-sha256`, as agents send them) and N pre-signed GETs of 1 MiB objects,
//! then of 4 KiB objects, `--concurrency` requests at a time over keep-alive
//! connections. Prints requests per second and MiB/s for each phase.
//!
//! ```text
//! cargo run --release -p coffer-server --example store_bench -- --count 400 --concurrency 4
//! ```
//! Options: `--count N` (400 objects of each size), `--concurrency C` (4), `--data DIR`
//! (the server's data directory; a temporary one by default; its file system decides
//! much of the PUT figures, since every put is fsynced). URLs are pre-signed through
//! `/v1/agent/presign` before each phase, outside the timing. The storage is left as it
//! is between phases, so GETs read what the PUTs wrote (likely from the page cache).

use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use serde_json::{json, Value};

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let count = arg(&args, "--count", 400) as usize;
    let concurrency = arg(&args, "--concurrency", 4).max(1) as usize;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let data_dir = match args.iter().position(|a| a == "--data") {
        Some(i) => args.get(i + 1).ok_or("--data DIR")?.into(),
        None => dir.path().join("server"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(run(data_dir, count, concurrency))
}

async fn run(data_dir: std::path::PathBuf, count: usize, concurrency: usize) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let base = format!("http://{addr}");
    let mut config = coffer_server::config::Config::new(
        data_dir,
        url::Url::parse(&base).map_err(|e| e.to_string())?,
    );
    config.enrol_per_minute = 1_000_000;
    let started = coffer_server::Server::open(config, None).map_err(|e| e.to_string())?;
    let admin = started
        .admin_token
        .as_ref()
        .map(|t| t.to_string())
        .ok_or("no admin token")?;
    tokio::spawn(coffer_server::server::serve(
        listener,
        started.state,
        std::future::pending(),
    ));

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .map_err(|e| e.to_string())?;
    let agent = enrol(&client, &base, &admin).await?;
    println!(
        "embedded store on {addr}: {count} objects per size, {concurrency} at a time \
         (version {})",
        env!("CARGO_PKG_VERSION")
    );
    println!(
        "{:<6} {:>8} {:>7} {:>9} {:>10} {:>9}",
        "op", "size", "count", "seconds", "req/s", "MiB/s"
    );
    for (label, size) in [("1 MiB", 1024 * 1024), ("4 KiB", 4 * 1024)] {
        let body: axum::body::Bytes = (0..size).map(|i| (i % 251) as u8).collect();
        let sum = coffer_adapters::storage::s3::checksum_sha256(&body);
        let keys: Vec<String> = (0..count).map(|i| format!("bench/{label}/{i}")).collect();

        let mut puts = Vec::with_capacity(count);
        for key in &keys {
            puts.push(
                presign(
                    &client,
                    &base,
                    &agent,
                    json!({"op": "put", "key": key,
                    "create_only": true, "checksum_sha256": sum}),
                )
                .await?,
            );
        }
        let elapsed = phase(&client, puts, concurrency, Some(&body), 0).await?;
        report("PUT", label, size, count, elapsed);

        let mut gets = Vec::with_capacity(count);
        for key in &keys {
            gets.push(presign(&client, &base, &agent, json!({"op": "get", "key": key})).await?);
        }
        let elapsed = phase(&client, gets, concurrency, None, size).await?;
        report("GET", label, size, count, elapsed);
    }
    Ok(())
}

fn report(op: &str, label: &str, size: usize, count: usize, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    let mib = (size * count) as f64 / (1024.0 * 1024.0);
    println!(
        "{op:<6} {label:>8} {count:>7} {secs:>9.3} {:>10.1} {:>9.1}",
        count as f64 / secs,
        mib / secs
    );
}

/// Sends every signed request, `concurrency` at a time; PUTs carry `body`, and every
/// answer's body must be `answer_len` bytes long.
async fn phase(
    client: &reqwest::Client,
    signed: Vec<Value>,
    concurrency: usize,
    body: Option<&axum::body::Bytes>,
    answer_len: usize,
) -> Result<Duration, String> {
    let start = Instant::now();
    let results: Vec<Result<(), String>> = futures_util::stream::iter(signed)
        .map(|s| {
            let client = client.clone();
            let body = body.cloned();
            async move {
                let method: reqwest::Method = s["method"]
                    .as_str()
                    .unwrap_or("GET")
                    .parse()
                    .map_err(|_| "method")?;
                let url = s["url"].as_str().ok_or("no url")?;
                let mut request = client.request(method, url);
                for pair in s["headers"].as_array().into_iter().flatten() {
                    request = request.header(
                        pair[0].as_str().unwrap_or_default(),
                        pair[1].as_str().unwrap_or_default(),
                    );
                }
                if let Some(b) = body {
                    request = request.body(b);
                }
                let response = request.send().await.map_err(|e| e.to_string())?;
                let status = response.status();
                let got = response.bytes().await.map_err(|e| e.to_string())?;
                if !status.is_success() {
                    return Err(format!("{status}: {}", String::from_utf8_lossy(&got)));
                }
                if got.len() != answer_len {
                    return Err(format!("{} bytes back, not {answer_len}", got.len()));
                }
                Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = start.elapsed();
    for r in results {
        r?;
    }
    Ok(elapsed)
}

async fn call(
    client: &reqwest::Client,
    url: String,
    token: &str,
    body: Value,
) -> Result<Value, String> {
    let response = client
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let value: Value = response.json().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(value)
    } else {
        Err(format!("{status}: {value}"))
    }
}

async fn presign(
    client: &reqwest::Client,
    base: &str,
    agent: &str,
    body: Value,
) -> Result<Value, String> {
    call(client, format!("{base}/v1/agent/presign"), agent, body).await
}

/// A tenant, an operator and an enrolled agent; returns the agent's API key.
async fn enrol(client: &reqwest::Client, base: &str, admin: &str) -> Result<String, String> {
    let tenant = call(
        client,
        format!("{base}/v1/admin/tenants"),
        admin,
        json!({"name": "bench"}),
    )
    .await?;
    let id = tenant["tenant"]["id"].as_str().ok_or("no tenant id")?;
    let op = call(
        client,
        format!("{base}/v1/admin/tenants/{id}/operator-tokens"),
        admin,
        json!({}),
    )
    .await?;
    let op = op["token"].as_str().ok_or("no operator token")?;
    let enrolment = call(client, format!("{base}/v1/enrolment-tokens"), op, json!({})).await?;
    let token = enrolment["token"].as_str().ok_or("no enrolment token")?;
    let response = client
        .post(format!("{base}/v1/enroll"))
        .json(&json!({"token": token, "hostname": "bench", "version": "0.1.0"}))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let enrolled: Value = response.json().await.map_err(|e| e.to_string())?;
    enrolled["api_key"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("enrolment failed: {enrolled}"))
}
