//! `/metrics`: refused without the scraper's token (and off when none is configured);
//! with it, the OpenMetrics text holds the runs by kind and status, the bytes and files
//! backed up, run durations, missed schedules, agents by status and request latencies
//! by route, matching what was done.

#[path = "support/harness.rs"]
mod harness;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;

use harness::Harness;

const TOKEN: &str = "scraper-token-0123456789";

async fn scrape(h: &Harness, token: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::builder().method(Method::GET).uri("/metrics");
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    let (status, _, body) = h.send(request.body(Body::empty()).unwrap()).await;
    (status, String::from_utf8(body).unwrap())
}

/// The value of the sample whose line starts with `series` (name and labels).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

#[tokio::test]
async fn metrics_count_what_was_done_and_need_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let h = Harness::open(dir, |c| {
        c.metrics_token_hash = Some(coffer_server::metrics::token_hash(TOKEN));
    });
    let (_, op) = h.tenant("acme").await;
    let agent = h.enrol(&op, "nas").await;
    let job = h.job(&op, &agent.agent_id, "nightly").await;
    h.run_now(&op, &job).await;
    let work = h.claim(&agent).await;
    let run = work["run_id"].as_str().unwrap().to_owned();
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/v1/agent/runs/{run}/complete"),
            Some(&agent.api_key),
            Some(
                json!({"status": "succeeded", "bytes": 12345, "files": 7, "restore_point": {
                "name": "one", "prefix": work["spec"]["prefix"], "snapshot": "ab".repeat(16),
                "stored_bytes": 100, "content_bytes": 12345, "files": 7,
                "created_at": "2026-11-30T10:00:00Z"}}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    h.run_now(&op, &job).await; // left queued
    h.state.background.idle().await;

    let (status, _) = scrape(&h, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = scrape(&h, Some("scraper-token-wrong-000000")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, text) = scrape(&h, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(
        sample(&text, r#"coffer_runs{kind="backup",status="succeeded"}"#),
        1.0
    );
    assert_eq!(
        sample(&text, r#"coffer_runs{kind="backup",status="queued"}"#),
        1.0
    );
    assert_eq!(sample(&text, "coffer_backup_bytes_total"), 12345.0);
    assert_eq!(sample(&text, "coffer_backup_files_total"), 7.0);
    assert_eq!(sample(&text, "coffer_missed_schedules_total"), 0.0);
    assert_eq!(
        sample(&text, r#"coffer_run_duration_seconds_count{kind="backup"}"#),
        1.0
    );
    assert_eq!(sample(&text, r#"coffer_agents{status="online"}"#), 1.0);
    assert_eq!(sample(&text, r#"coffer_agents{status="revoked"}"#), 0.0);
    assert_eq!(sample(&text, "coffer_storage_errors_total"), 0.0);
    // Requests are timed by the route they matched, not their path (which holds IDs).
    let completes = sample(
        &text,
        r#"coffer_http_request_duration_seconds_count{method="POST",route="/v1/agent/runs/{run_id}/complete",status="200"}"#,
    );
    assert_eq!(completes, 1.0);
    assert!(!text.contains(&run), "no run ID in the labels");
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
}

#[tokio::test]
async fn metrics_are_off_without_a_configured_token() {
    let h = Harness::new();
    let (status, body) = scrape(&h, Some(TOKEN)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body.contains("metrics-token-file"), "{body}");
}
