//! `/metrics`: the server's figures in the OpenMetrics text format (which Prometheus
//! scrapes), through the Prometheus project's own client crate. Served only to a
//! scraper that presents the metrics token (`--metrics-token-file`); without one
//! configured the route is off.
//!
//! What the database knows (runs by kind and status, bytes and files backed up, run
//! durations, missed schedules, agents by status) is read at each scrape, so the
//! figures survive restarts; what only the process sees (request latencies by route,
//! storage errors) is counted as it happens.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::db::agents::OFFLINE_AFTER_SECS;
use crate::db::now;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A request's labels: its method, the route it matched (not the path, which holds
/// IDs), and its status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    kind: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentLabel {
    status: String,
}

fn request_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

fn run_histogram() -> Histogram {
    // 1 s to about 9 hours.
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

/// What the process counts as it goes.
#[derive(Debug)]
pub struct Metrics {
    requests: Family<RequestLabels, Histogram>,
    storage_errors: AtomicU64,
    notifications: Family<DeliveryLabels, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    channel: String,
    outcome: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Family::new_with_constructor(request_histogram),
            storage_errors: AtomicU64::new(0),
            notifications: Family::default(),
        }
    }
}

impl Metrics {
    /// Counts one failed storage operation of the server's own (retention, prune,
    /// run keys and locks, listings).
    pub fn storage_error(&self) {
        self.storage_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one attempt to deliver a notification, by channel kind and outcome
    /// (`sent`, `retry`: failed and will be retried, `failed`: given up).
    pub fn notification(
        &self,
        channel: crate::db::notify::ChannelKind,
        attempt: &crate::db::notify::Attempt,
    ) {
        use crate::db::notify::Attempt;
        let outcome = match attempt {
            Attempt::Sent => "sent",
            Attempt::Retry { .. } => "retry",
            Attempt::GiveUp { .. } => "failed",
        };
        self.notifications
            .get_or_create(&DeliveryLabels {
                channel: channel.as_str().to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
    }
}

/// Times every request, labelled by the route it matched.
pub async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .observe(started.elapsed().as_secs_f64());
    response
}

/// The SHA-256 of a metrics token, as the server keeps it.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

/// `GET /metrics`.
pub async fn serve(State(state): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let Some(expected) = state.config.metrics_token_hash else {
        return Err(ApiError::NotFound {
            what: "route (metrics are off: start the server with --metrics-token-file)",
        });
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(token_hash);
    match presented {
        Some(hash) if bool::from(hash.ct_eq(&expected)) => {}
        _ => {
            return Err(ApiError::Unauthorized(
                "the metrics token is missing or wrong",
            ))
        }
    }
    let text = render(&state).await?;
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// What the database says, read for one scrape.
struct Snapshot {
    runs: Vec<(String, String, i64)>,
    backup_bytes: u64,
    backup_files: u64,
    missed: u64,
    durations: Vec<(String, i64)>,
    /// When each live agent was last heard from.
    seen: Vec<Option<i64>>,
    revoked: i64,
}

/// The rows one scrape reads.
type Rows = (
    Vec<(String, String, i64)>,
    i64,
    i64,
    i64,
    Vec<(String, i64)>,
    Vec<(i64, Option<i64>)>,
    i64,
);

async fn render(state: &AppState) -> ApiResult<String> {
    let snap: Rows = state
        .db
        .read(|conn| {
            let mut st =
                conn.prepare("SELECT kind, status, count(*) FROM runs GROUP BY kind, status")?;
            let runs = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            let (backup_bytes, backup_files, missed): (i64, i64, i64) = conn.query_row(
                "SELECT coalesce(sum(bytes) FILTER (WHERE kind = 'backup' AND status = 'succeeded'), 0),
                        coalesce(sum(files) FILTER (WHERE kind = 'backup' AND status = 'succeeded'), 0),
                        coalesce(sum(missed_schedules), 0)
                 FROM runs",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let mut st = conn.prepare(
                "SELECT kind, finished_at - claimed_at FROM runs
                 WHERE finished_at IS NOT NULL AND claimed_at IS NOT NULL",
            )?;
            let durations = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            let mut st = conn.prepare(
                "SELECT id, last_seen_at FROM agents WHERE revoked_at IS NULL AND deleted_at IS NULL",
            )?;
            let agents = st
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<i64>>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            let revoked: i64 = conn.query_row(
                "SELECT count(*) FROM agents WHERE revoked_at IS NOT NULL AND deleted_at IS NULL",
                [],
                |r| r.get(0),
            )?;
            Ok((runs, backup_bytes, backup_files, missed, durations, agents, revoked))
        })
        .await?;
    let (runs, backup_bytes, backup_files, missed, durations, agents, revoked) = snap;
    // Heartbeats held in memory are newer than the database's.
    let seen = agents
        .into_iter()
        .map(|(id, at)| state.presence.get(id).map(|b| b.at).or(at))
        .collect();
    let snap = Snapshot {
        runs,
        backup_bytes: u64::try_from(backup_bytes).unwrap_or(0),
        backup_files: u64::try_from(backup_files).unwrap_or(0),
        missed: u64::try_from(missed).unwrap_or(0),
        durations,
        seen,
        revoked,
    };
    let mut registry = Registry::with_prefix("coffer");
    register(&mut registry, state, &snap);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).map_err(ApiError::internal)?;
    Ok(text)
}

fn register(registry: &mut Registry, state: &AppState, snap: &Snapshot) {
    let runs = Family::<RunLabels, Gauge>::default();
    for (kind, status, n) in &snap.runs {
        runs.get_or_create(&RunLabels {
            kind: kind.clone(),
            status: status.clone(),
        })
        .set(*n);
    }
    registry.register("runs", "Runs by kind and status", runs);

    let bytes = Counter::<u64>::default();
    bytes.inc_by(snap.backup_bytes);
    registry.register("backup_bytes", "Content bytes of succeeded backups", bytes);
    let files = Counter::<u64>::default();
    files.inc_by(snap.backup_files);
    registry.register("backup_files", "Files of succeeded backups", files);
    let missed = Counter::<u64>::default();
    missed.inc_by(snap.missed);
    registry.register(
        "missed_schedules",
        "Scheduled due times that passed while a job's run waited (offline agent, stopped server)",
        missed,
    );

    let durations = Family::<KindLabel, Histogram>::new_with_constructor(run_histogram);
    for (kind, secs) in &snap.durations {
        #[allow(clippy::cast_precision_loss)]
        durations
            .get_or_create(&KindLabel { kind: kind.clone() })
            .observe(*secs as f64);
    }
    registry.register(
        "run_duration_seconds",
        "From claim to end, of finished runs",
        durations,
    );

    let agents = Family::<AgentLabel, Gauge>::default();
    let at = now();
    let online = snap
        .seen
        .iter()
        .filter(|s| s.is_some_and(|t| at - t <= OFFLINE_AFTER_SECS))
        .count();
    for (status, n) in [("online", online), ("offline", snap.seen.len() - online)] {
        agents
            .get_or_create(&AgentLabel {
                status: status.to_owned(),
            })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    agents
        .get_or_create(&AgentLabel {
            status: "revoked".to_owned(),
        })
        .set(snap.revoked);
    registry.register("agents", "Agents by status", agents);

    let storage = Counter::<u64>::default();
    storage.inc_by(state.metrics.storage_errors.load(Ordering::Relaxed));
    registry.register(
        "storage_errors",
        "Failed storage operations of the server's own",
        storage,
    );
    registry.register(
        "notification_deliveries",
        "Attempts to deliver notifications, by channel kind and outcome",
        state.metrics.notifications.clone(),
    );
    registry.register(
        "http_request_duration_seconds",
        "API requests by method, matched route and status",
        state.metrics.requests.clone(),
    );
}
