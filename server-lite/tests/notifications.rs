//! Notifications, against a real SMTP sink (aiosmtpd, STARTTLS required, a certificate
//! made here) and a webhook receiver, both on 127.0.0.1: a failing run, a missed
//! schedule and an offline agent each produce exactly one message per channel with the
//! right content and a valid Standard Webhooks signature (checked with HMAC-SHA256
//! here, not with the library the server signs with); repeats are grouped; a receiver
//! that is down gets retries with growing waits and then a recorded failure; the test
//! button; secrets sealed; another tenant sees none of it; `/metrics` counts the
//! attempts. Time is stepped by passing
//! `at` to the notifier's pass.

#[path = "support/harness.rs"]
mod harness;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, Method, StatusCode};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use harness::{Enrolled, Harness};

/// What the webhook receiver got: headers and body of each request.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(HeaderMap, String)>>>);

impl Received {
    fn all(&self) -> Vec<(HeaderMap, String)> {
        self.0.lock().unwrap().clone()
    }
}

/// A webhook receiver on 127.0.0.1 answering 204 after `failures` 503s.
async fn receiver(failures: usize) -> (String, Received) {
    let received = Received::default();
    let left = Arc::new(Mutex::new(failures));
    let r = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let (r, left) = (r.clone(), Arc::clone(&left));
            async move {
                r.0.lock().unwrap().push((headers, body));
                let mut left = left.lock().unwrap();
                if *left > 0 {
                    *left -= 1;
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}

/// Checks a Standard Webhooks signature by the scheme's definition: base64 of
/// HMAC-SHA256 over `id.timestamp.body`, keyed by the secret's base64-decoded bytes.
fn signature_valid(secret: &str, headers: &HeaderMap, body: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let id = headers["webhook-id"].to_str().unwrap();
    let ts = headers["webhook-timestamp"].to_str().unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let fresh = (now - ts.parse::<i64>().unwrap()).abs() < 300;
    fresh
        && headers["webhook-signature"]
            .to_str()
            .unwrap()
            .split(' ')
            .any(|s| s == format!("v1,{expected}"))
}

/// The SMTP sink: a Python aiosmtpd process requiring STARTTLS with a certificate for
/// 127.0.0.1 made here. Stops when dropped.
struct SmtpSink {
    child: Child,
    port: u16,
    out: PathBuf,
    ca_pem: String,
    _dir: tempfile::TempDir,
}

impl SmtpSink {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
        let ca_pem = cert.cert.pem();
        std::fs::write(dir.path().join("cert.pem"), &ca_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), cert.key_pair.serialize_pem()).unwrap();
        let out = dir.path().join("mail");
        std::fs::create_dir(&out).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(dir.path().join("cert.pem"))
            .arg(dir.path().join("key.pem"))
            .arg(&out)
            .arg("coffer")
            .arg("smtp-password-123")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "ready",
            "the SMTP sink did not start: install aiosmtpd (python3 -m pip install aiosmtpd)"
        );
        SmtpSink {
            child,
            port,
            out,
            ca_pem,
            _dir: dir,
        }
    }

    /// The messages received so far, oldest first.
    fn messages(&self) -> Vec<Value> {
        let mut names: Vec<_> = std::fs::read_dir(&self.out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn now() -> i64 {
    coffer_server::db::now()
}

/// The webhook bodies received, by event type.
fn by_type(received: &Received) -> HashMap<String, Vec<Value>> {
    let mut out: HashMap<String, Vec<Value>> = HashMap::new();
    for (_, body) in received.all() {
        let v: Value = serde_json::from_str(&body).unwrap();
        out.entry(v["type"].as_str().unwrap().to_owned())
            .or_default()
            .push(v);
    }
    out
}

/// The emails received whose subject contains `needle`.
fn mails_about(sink: &SmtpSink, needle: &str) -> Vec<Value> {
    sink.messages()
        .into_iter()
        .filter(|m| {
            m["content"]
                .as_str()
                .unwrap()
                .lines()
                .any(|l| l.starts_with("Subject:") && l.contains(needle))
        })
        .collect()
}

async fn fail_run(h: &Harness, agent: &Enrolled, error: &str) {
    let work = h.claim(agent).await;
    let run = work["run_id"].as_str().expect("a run to claim").to_owned();
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/v1/agent/runs/{run}/complete"),
            Some(&agent.api_key),
            Some(json!({"status": "failed", "bytes": 0, "files": 0, "error": error})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn settings(h: &Harness, op: &str, grace: i64, offline: i64) {
    let (status, body) = h
        .call(
            Method::PUT,
            "/v1/notifications/settings",
            Some(op),
            Some(
                json!({"missed_grace_secs": grace, "offline_after_secs": offline,
                        "repeat_secs": 6 * 3600}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

const METRICS_TOKEN: &str = "scraper-token-0123456789";

async fn scrape(h: &Harness) -> String {
    let request = axum::http::Request::builder()
        .uri("/metrics")
        .header("authorization", format!("Bearer {METRICS_TOKEN}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, _, body) = h.send(request).await;
    assert_eq!(status, StatusCode::OK);
    String::from_utf8(body).unwrap()
}

/// The value of the sample whose line starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

async fn pass(h: &Harness, at: i64) -> coffer_server::notify::Pass {
    coffer_server::notify::tick(&h.state, at).await.unwrap()
}

/// Adds a webhook channel to `url` and an email channel to the sink; returns the
/// webhook's signing secret.
async fn channels(h: &Harness, op: &str, url: &str, sink: &SmtpSink) -> String {
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/notifications/channels",
            Some(op),
            Some(json!({"name": "ops hook", "kind": "webhook", "webhook": {"url": url}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/notifications/channels",
            Some(op),
            Some(json!({"name": "ops mail", "kind": "email",
                        "email": {"host": "127.0.0.1", "port": sink.port, "tls": "starttls",
                                  "username": "coffer", "from": "coffer@example.com",
                                  "to": ["ops@example.com"], "ca_pem": sink.ca_pem},
                        "password": "smtp-password-123"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(
        body.get("secret").is_none(),
        "an email channel shows no secret"
    );
    secret
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_run_a_missed_schedule_and_an_offline_agent_each_send_one_message() {
    let sink = SmtpSink::start();
    let (url, received) = receiver(0).await;
    let h = Harness::open(tempfile::tempdir().unwrap(), |c| {
        c.notify.allow_private_webhooks = true;
    });
    let (_, op) = h.tenant("acme").await;
    let secret = channels(&h, &op, &url, &sink).await;

    // Listing shows no secret, and the database holds none in the clear.
    let (_, list) = h
        .call(Method::GET, "/v1/notifications/channels", Some(&op), None)
        .await;
    assert_eq!(list["channels"].as_array().unwrap().len(), 2);
    assert!(!list.to_string().contains(&secret));
    assert!(!list.to_string().contains("smtp-password-123"));
    let db = std::fs::read(h.state.config.database_path()).unwrap();
    for needle in [secret.as_bytes(), b"smtp-password-123".as_slice()] {
        assert!(
            !db.windows(needle.len()).any(|w| w == needle),
            "a channel secret is in the database in the clear"
        );
    }

    // The offline threshold far off until that part of the test.
    settings(&h, &op, 3600, 30 * 86_400).await;
    let agent = h.enrol(&op, "nas").await;
    let job = h.job(&op, &agent.agent_id, "nightly").await;
    let start = now();

    // A failed run: one message on each channel.
    h.run_now(&op, &job).await;
    fail_run(&h, &agent, "disk on fire").await;
    let p = pass(&h, start).await;
    assert_eq!((p.queued, p.sent, p.failed), (2, 2, 0), "{p:?}");
    let hooks = by_type(&received);
    assert_eq!(hooks["run.failed"].len(), 1, "{hooks:?}");
    let event = &hooks["run.failed"][0];
    assert_eq!(event["data"]["subject"], format!("job:{job}"));
    assert!(event["data"]["summary"]
        .as_str()
        .unwrap()
        .contains("nightly"));
    assert!(event["data"]["detail"]
        .as_str()
        .unwrap()
        .contains("disk on fire"));
    for (headers, body) in received.all() {
        assert!(signature_valid(&secret, &headers, &body), "bad signature");
    }
    // A signature with another secret does not pass the check (it can fail).
    let (headers, body) = &received.all()[0];
    assert!(!signature_valid(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        headers,
        body
    ));
    let mails = mails_about(&sink, "nightly");
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0]["tls"], true, "STARTTLS was used");
    assert_eq!(mails[0]["rcpt_tos"], json!(["ops@example.com"]));
    assert!(mails[0]["content"]
        .as_str()
        .unwrap()
        .contains("disk on fire"));

    // It fails again: grouped on the open alert, nothing sent until the repeat
    // interval (6 h by default) has passed; then one reminder counting both.
    h.run_now(&op, &job).await;
    fail_run(&h, &agent, "still on fire").await;
    let p = pass(&h, start + 60).await;
    assert_eq!(p.queued, 0, "{p:?}");
    assert_eq!(by_type(&received)["run.failed"].len(), 1);
    let p = pass(&h, start + 6 * 3600 + 60).await;
    assert_eq!(p.queued, 2, "{p:?}");
    let failed = &by_type(&received)["run.failed"];
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[1]["data"]["reminder"], true);
    assert_eq!(failed[1]["data"]["occurrences"], 2);
    let (_, alerts) = h
        .call(Method::GET, "/v1/alerts?open=true", Some(&op), None)
        .await;
    let open: Vec<&Value> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "run.failed")
        .collect();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["occurrences"], 2);

    // A missed schedule: the scheduler queues the due run; the agent does not take
    // it. Within the grace (1 h) nothing; past it, one message; then no more.
    let (_, view) = h
        .call(Method::GET, &format!("/v1/jobs/{job}"), Some(&op), None)
        .await;
    let due: jiff::Timestamp = view["job"]["next_run_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let tick = coffer_server::scheduler::tick(&h.state, due.as_second() + 1)
        .await
        .unwrap();
    assert_eq!(tick.queued.len(), 1);
    let queued_at = now();
    pass(&h, queued_at + 3000).await;
    assert!(!by_type(&received).contains_key("job.missed_schedule"));
    pass(&h, queued_at + 3700).await;
    let hooks = by_type(&received);
    assert_eq!(hooks["job.missed_schedule"].len(), 1, "{hooks:?}");
    assert_eq!(
        hooks["job.missed_schedule"][0]["data"]["subject"],
        format!("job:{job}")
    );
    assert_eq!(mails_about(&sink, "missed its schedule").len(), 1);
    pass(&h, queued_at + 4000).await;
    assert_eq!(by_type(&received)["job.missed_schedule"].len(), 1);

    assert!(!by_type(&received).contains_key("agent.offline"));

    // With a threshold of 2 h, the agent (silent since it enrolled) is offline: one
    // message, and no more while it stays away.
    settings(&h, &op, 3600, 7200).await;
    pass(&h, now() + 7300).await;
    pass(&h, now() + 9000).await;
    let hooks = by_type(&received);
    assert_eq!(hooks["agent.offline"].len(), 1, "{hooks:?}");
    assert_eq!(
        hooks["agent.offline"][0]["data"]["subject"],
        format!("agent:{}", agent.agent_id)
    );
    assert_eq!(mails_about(&sink, "is offline").len(), 1);

    // The agent takes the run (a poll is a beat): both alerts clear.
    let work = h.claim(&agent).await;
    assert!(work["run_id"].is_string());
    pass(&h, now()).await;
    let (_, alerts) = h
        .call(Method::GET, "/v1/alerts?open=true", Some(&op), None)
        .await;
    let kinds: Vec<&str> = alerts["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert!(!kinds.contains(&"job.missed_schedule"), "{kinds:?}");
    assert!(!kinds.contains(&"agent.offline"), "{kinds:?}");

    // Every delivery is recorded as sent, and the metrics count them.
    let (_, deliveries) = h
        .call(Method::GET, "/v1/notifications/deliveries", Some(&op), None)
        .await;
    let list = deliveries["deliveries"].as_array().unwrap();
    assert_eq!(list.len(), 2 * 4, "{deliveries}");
    assert!(list.iter().all(|d| d["status"] == "sent"), "{deliveries}");

    // The test button sends a sample now.
    let (_, channels) = h
        .call(Method::GET, "/v1/notifications/channels", Some(&op), None)
        .await;
    let hook_id = channels["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == "webhook")
        .map(|c| c["id"].as_str().unwrap().to_owned())
        .unwrap();
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/v1/notifications/channels/{hook_id}/test"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["delivery"]["status"], "sent", "{body}");
    assert_eq!(by_type(&received)["test"].len(), 1);

    // Another tenant sees none of it and cannot touch the channel.
    let (_, other) = h.tenant("globex").await;
    let (_, list) = h
        .call(
            Method::GET,
            "/v1/notifications/channels",
            Some(&other),
            None,
        )
        .await;
    assert_eq!(list["channels"], json!([]));
    let (_, alerts) = h.call(Method::GET, "/v1/alerts", Some(&other), None).await;
    assert_eq!(alerts["alerts"], json!([]));
    for (method, path) in [
        (
            Method::POST,
            format!("/v1/notifications/channels/{hook_id}/test"),
        ),
        (
            Method::DELETE,
            format!("/v1/notifications/channels/{hook_id}"),
        ),
    ] {
        let (status, _) = h.call(method, &path, Some(&other), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, _) = h
        .call(
            Method::PATCH,
            &format!("/v1/notifications/channels/{hook_id}"),
            Some(&other),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    h.state.background.idle().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_gets_retries_with_backoff_then_a_recorded_failure() {
    // A port nothing listens on.
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let h = Harness::open(tempfile::tempdir().unwrap(), |c| {
        c.notify.allow_private_webhooks = true;
        c.metrics_token_hash = Some(coffer_server::metrics::token_hash(METRICS_TOKEN));
    });
    let (_, op) = h.tenant("acme").await;
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/notifications/channels",
            Some(&op),
            Some(
                json!({"name": "down", "kind": "webhook", "events": ["run.failed"],
                        "webhook": {"url": format!("http://{down}/hook")}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let agent = h.enrol(&op, "nas").await;
    let job = h.job(&op, &agent.agent_id, "nightly").await;
    h.run_now(&op, &job).await;
    fail_run(&h, &agent, "boom").await;

    let max = h.state.config.notify.max_attempts;
    let mut at = now();
    let mut waits = Vec::new();
    for attempt in 1..=max {
        let p = pass(&h, at).await;
        let (_, d) = h
            .call(Method::GET, "/v1/notifications/deliveries", Some(&op), None)
            .await;
        let d = d["deliveries"][0].clone();
        assert_eq!(d["attempts"], attempt, "{d}");
        assert!(
            d["last_error"].as_str().unwrap().contains("POST"),
            "the error is recorded: {d}"
        );
        if attempt < max {
            assert_eq!((p.retried, p.failed), (1, 0), "{p:?}");
            assert_eq!(d["status"], "pending");
            let next: jiff::Timestamp = d["next_attempt_at"].as_str().unwrap().parse().unwrap();
            waits.push(next.as_second() - at);
            // Not before it is due.
            let p = pass(&h, next.as_second() - 1).await;
            assert_eq!(p.retried + p.sent + p.failed, 0, "{p:?}");
            at = next.as_second();
        } else {
            assert_eq!((p.retried, p.failed), (0, 1), "{p:?}");
            assert_eq!(d["status"], "failed", "{d}");
            assert!(d["finished_at"].is_string());
        }
    }
    // 30 s, then about twice as long each time (jitter adds up to as much again),
    // capped at an hour.
    assert!(waits[0] >= 30 && waits[0] < 60, "{waits:?}");
    for pair in waits.windows(2) {
        assert!(
            pair[1] >= pair[0] || pair[1] >= 3600,
            "waits grow: {waits:?}"
        );
    }
    assert!(waits.iter().all(|w| *w <= 7200), "{waits:?}");
    // Given up: no further attempt, however long.
    let p = pass(&h, at + 10 * 86_400).await;
    assert_eq!(p.retried + p.sent + p.failed, 0);
    // The scraper sees each attempt.
    let metrics = scrape(&h).await;
    assert_eq!(
        sample(
            &metrics,
            "coffer_notification_deliveries_total{channel=\"webhook\",outcome=\"retry\"}"
        ),
        f64::from(max - 1)
    );
    assert_eq!(
        sample(
            &metrics,
            "coffer_notification_deliveries_total{channel=\"webhook\",outcome=\"failed\"}"
        ),
        1.0
    );

    // A receiver that fails twice then answers gets the same message ID each time.
    let (url, received) = receiver(2).await;
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/notifications/channels",
            Some(&op),
            Some(
                json!({"name": "flaky", "kind": "webhook", "webhook": {"url": url},
                        "events": ["run.failed"]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["channel"]["id"].as_str().unwrap().to_owned();
    let (_, sent) = h
        .call(
            Method::POST,
            &format!("/v1/notifications/channels/{id}/test"),
            Some(&op),
            None,
        )
        .await;
    assert_eq!(sent["delivery"]["status"], "pending", "{sent}");
    let mut at = now();
    for _ in 0..3 {
        at += 7200;
        pass(&h, at).await;
    }
    let all = received.all();
    assert_eq!(all.len(), 3, "two refusals, then accepted");
    let ids: Vec<_> = all.iter().map(|(h, _)| h["webhook-id"].clone()).collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "one message ID");
    let (_, d) = h
        .call(
            Method::GET,
            "/v1/notifications/deliveries?status=sent",
            Some(&op),
            None,
        )
        .await;
    assert_eq!(d["deliveries"][0]["attempts"], 3, "{d}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_to_private_addresses_are_refused_unless_allowed_and_bad_channels_say_why() {
    let (url, received) = receiver(0).await;
    let h = Harness::new();
    let (_, op) = h.tenant("acme").await;
    let (status, body) = h
        .call(
            Method::POST,
            "/v1/notifications/channels",
            Some(&op),
            Some(json!({"name": "inside", "kind": "webhook", "webhook": {"url": url}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["channel"]["id"].as_str().unwrap().to_owned();
    let (_, sent) = h
        .call(
            Method::POST,
            &format!("/v1/notifications/channels/{id}/test"),
            Some(&op),
            None,
        )
        .await;
    let error = sent["delivery"]["last_error"].as_str().unwrap();
    assert!(
        error.contains("127.0.0.1") && error.contains("allow-private"),
        "{error}"
    );
    assert!(
        received.all().is_empty(),
        "nothing reached the private address"
    );

    for (body, field) in [
        (
            json!({"name": "x", "kind": "webhook", "webhook": {"url": "ftp://example.com/"}}),
            "webhook.url",
        ),
        (json!({"name": "x", "kind": "email"}), "email"),
        (
            json!({"name": "x", "kind": "email", "email": {"host": "smtp.example.com", "tls": "none", "from": "a@example.com", "to": ["b@example.com"]}}),
            "email.tls",
        ),
        (
            json!({"name": "x", "kind": "email", "email": {"host": "smtp.example.com", "from": "nobody", "to": ["a@example.com"]}}),
            "email.from",
        ),
        (
            json!({"name": "x", "kind": "email", "email": {"host": "smtp.example.com", "from": "a@example.com", "to": []}}),
            "email.to",
        ),
        (
            json!({"name": "x", "kind": "webhook", "webhook": {"url": "https://example.com/"}, "events": ["nope"]}),
            "events[0]",
        ),
        (
            json!({"name": "x", "kind": "webhook", "webhook": {"url": "https://example.com/"}, "secret": "plain"}),
            "secret",
        ),
    ] {
        let (status, answer) = h
            .call(
                Method::POST,
                "/v1/notifications/channels",
                Some(&op),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(answer.to_string().contains(field), "{field}: {answer}");
    }
    let (status, _) = h
        .call(
            Method::PUT,
            "/v1/notifications/settings",
            Some(&op),
            Some(json!({"missed_grace_secs": 1, "offline_after_secs": 600, "repeat_secs": 3600})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = h
        .call(
            Method::PUT,
            "/v1/notifications/settings",
            Some(&op),
            Some(json!({"missed_grace_secs": 900, "offline_after_secs": 600, "repeat_secs": 3600})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, body) = h
        .call(Method::GET, "/v1/notifications/settings", Some(&op), None)
        .await;
    assert_eq!(body["settings"]["missed_grace_secs"], 900);
    h.state.background.idle().await;
}
