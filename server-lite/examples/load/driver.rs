//! The load driver shared by `examples/load.rs` and the smoke test: enrols N agents
//! over HTTP, then has each heartbeat and poll in a loop for a while, recording every
//! request's latency and every error.
#![allow(dead_code, missing_docs, unreachable_pub)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub struct Options {
    /// `http://host:port` of the server.
    pub base: String,
    /// Its admin token.
    pub admin: String,
    /// Simulated agents.
    pub agents: usize,
    /// How long the heartbeat/poll phase lasts.
    pub duration: Duration,
    /// Each agent's pause between rounds (a round is a heartbeat and a poll).
    pub interval: Duration,
    /// `wait_secs` of each poll (0: answer at once).
    pub poll_wait: u64,
    /// Pre-signed URLs each agent asks for each round, as a nightly backup does: a
    /// listing of its index folder, then create-only puts of new packs (0: none).
    pub presigns: u32,
}

#[derive(Debug)]
pub struct Report {
    pub agents: usize,
    pub enrol_secs: f64,
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub first_errors: Vec<String>,
}

async fn post(
    client: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Value,
) -> Result<Value, String> {
    let mut request = client.post(url).json(&body);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let text = response.text().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}: {text}"));
    }
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// Enrols the agents and runs the load; returns the figures.
pub async fn run(opts: &Options) -> Result<Report, String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(opts.agents + 16)
        // As the agent does: under the server's 10-second idle limit.
        .pool_idle_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())?;
    let base = opts.base.clone();
    let tenant = post(
        &client,
        format!("{base}/v1/admin/tenants"),
        Some(&opts.admin),
        json!({"name": format!("load-{}", std::process::id())}),
    )
    .await?;
    let tenant = tenant["tenant"]["id"]
        .as_str()
        .ok_or("no tenant id")?
        .to_owned();
    let op = post(
        &client,
        format!("{base}/v1/admin/tenants/{tenant}/operator-tokens"),
        Some(&opts.admin),
        json!({}),
    )
    .await?;
    let op = op["token"].as_str().ok_or("no operator token")?.to_owned();

    // Enrol, 32 at a time.
    let started = Instant::now();
    let mut keys = Vec::with_capacity(opts.agents);
    let mut pending = tokio::task::JoinSet::new();
    for i in 0..opts.agents {
        if pending.len() >= 32 {
            keys.push(
                pending
                    .join_next()
                    .await
                    .ok_or("join")?
                    .map_err(|e| e.to_string())??,
            );
        }
        let (client, base, op) = (client.clone(), base.clone(), op.clone());
        pending.spawn(async move {
            let token = post(
                &client,
                format!("{base}/v1/enrolment-tokens"),
                Some(&op),
                json!({}),
            )
            .await?;
            let token = token["token"]
                .as_str()
                .ok_or("no enrolment token")?
                .to_owned();
            let enrolled = post(
                &client,
                format!("{base}/v1/enroll"),
                None,
                json!({"token": token, "hostname": format!("load-agent-{i}"), "version": "load"}),
            )
            .await?;
            enrolled["api_key"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| "no api key".to_owned())
        });
    }
    while let Some(key) = pending.join_next().await {
        keys.push(key.map_err(|e| e.to_string())??);
    }
    let enrol_secs = started.elapsed().as_secs_f64();

    // Heartbeat and poll until the deadline.
    let start = Instant::now();
    let deadline = start + opts.duration;
    let mut tasks = tokio::task::JoinSet::new();
    let count = keys.len().max(1) as u32;
    for (i, key) in keys.into_iter().enumerate() {
        let (client, base) = (client.clone(), base.clone());
        let interval = opts.interval;
        let wait = opts.poll_wait;
        let presigns = opts.presigns;
        // Spread the agents over one interval so they do not beat in lockstep.
        let offset = interval.checked_div(count).unwrap_or_default() * i as u32;
        tasks.spawn(async move {
            let mut latencies: Vec<u32> = Vec::new();
            let mut errors: Vec<String> = Vec::new();
            tokio::time::sleep(offset).await;
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = client
                    .post(format!("{base}/v1/agent/heartbeat"))
                    .bearer_auth(&key)
                    .json(&json!({"version": "load"}))
                    .send()
                    .await;
                note(r, t, &mut latencies, &mut errors).await;
                let t = Instant::now();
                let r = client
                    .get(format!("{base}/v1/agent/poll?wait_secs={wait}"))
                    .bearer_auth(&key)
                    .send()
                    .await;
                note(r, t, &mut latencies, &mut errors).await;
                for n in 0..presigns {
                    let body = if n == 0 {
                        json!({"op": "list", "key": "repo/index"})
                    } else {
                        json!({"op": "put", "key": format!("repo/data/{:02x}/{i:08x}{n:08x}", n % 256)})
                    };
                    let t = Instant::now();
                    let r = client
                        .post(format!("{base}/v1/agent/presign"))
                        .bearer_auth(&key)
                        .json(&body)
                        .send()
                        .await;
                    note(r, t, &mut latencies, &mut errors).await;
                }
                if !interval.is_zero() {
                    tokio::time::sleep(interval).await;
                }
            }
            (latencies, errors)
        });
    }
    let mut all: Vec<u32> = Vec::new();
    let mut errors = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (l, e) = done.map_err(|e| e.to_string())?;
        all.extend(l);
        errors.extend(e);
    }
    let elapsed = start.elapsed();
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return 0.0;
        }
        let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1;
        f64::from(all[i]) / 1000.0
    };
    let requests = (all.len() + errors.len()) as u64;
    Ok(Report {
        agents: opts.agents,
        enrol_secs,
        requests,
        errors: errors.len() as u64,
        elapsed,
        rps: requests as f64 / elapsed.as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: all.last().map_or(0.0, |m| f64::from(*m) / 1000.0),
        first_errors: errors.into_iter().take(5).collect(),
    })
}

async fn note(
    r: reqwest::Result<reqwest::Response>,
    t: Instant,
    latencies: &mut Vec<u32>,
    errors: &mut Vec<String>,
) {
    match r {
        Ok(resp) if resp.status().is_success() => {
            let ok = resp.bytes().await.is_ok();
            let micros = u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX);
            if ok {
                latencies.push(micros);
            } else {
                errors.push("body read failed".to_owned());
            }
        }
        Ok(resp) => errors.push(format!("status {}", resp.status())),
        Err(e) => {
            // The causes say which: refused, reset, closed while idle, timed out.
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                text.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            errors.push(text);
        }
    }
}
