//! Notifications: alerts raised by what happens (a run fails) or seen by looking (a job
//! missed its schedule, an agent is offline), sent to each tenant's channels by email
//! and webhook, grouped while they repeat, retried with backoff and recorded.
//!
//! Each pass ([`tick`]) looks for conditions, queues a delivery per channel for each
//! alert with something new to say, then attempts the deliveries that are due. Time
//! is the caller's (`at`), so tests step through grace periods and retries.

pub mod email;
pub mod message;
pub mod webhook;

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use coffer_adapters::catalogue::rusqlite::{params, Connection, OptionalExtension};

use crate::db::notify::{
    self as store, AlertKind, AlertSettings, Attempt, ChannelKind, ChannelRow, NewAlert,
};
use crate::db::{self as dbm, now, DbResult};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use message::Event;

/// The context a channel's sealed secret is bound to: its ID, so a secret cannot be
/// moved to another channel (another tenant's) in the database and still open.
pub fn secret_context(channel_id: i64) -> Vec<u8> {
    format!("coffer-server/v1 notification-secret channel={channel_id}").into_bytes()
}

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pass {
    /// Alerts opened by looking (missed schedules, offline agents).
    pub opened: usize,
    /// Alerts closed because their condition cleared.
    pub resolved: usize,
    /// Deliveries queued.
    pub queued: usize,
    /// Deliveries sent.
    pub sent: usize,
    /// Attempts that failed and will be retried.
    pub retried: usize,
    /// Deliveries given up.
    pub failed: usize,
}

/// Runs passes until the process ends; tests the storage backends every
/// `storage_test_interval`.
pub async fn run(state: AppState) {
    let mut interval = tokio::time::interval(state.config.scheduler_tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tested = tokio::time::Instant::now();
    loop {
        interval.tick().await;
        if tested.elapsed() >= state.config.notify.storage_test_interval {
            tested = tokio::time::Instant::now();
            test_backends(&state).await;
        }
        if let Err(e) = tick(&state, now()).await {
            tracing::error!("notification pass failed: {e:?}");
        }
    }
}

/// Tests every registered backend; a failure opens its alert (logged here too).
async fn test_backends(state: &AppState) {
    let list = match state
        .db
        .read(|conn| Ok(crate::db::backends::backends(conn)?))
        .await
    {
        Ok(list) => list,
        Err(e) => {
            tracing::error!("listing backends to test: {e:?}");
            return;
        }
    };
    for b in list {
        if let Err(e) = crate::stores::test_backend(state, &b).await {
            tracing::warn!("storage backend {:?} failed its test: {e}", b.name);
        }
    }
}

/// One pass at time `at`.
///
/// # Errors
/// Database errors.
pub async fn tick(state: &AppState, at: i64) -> ApiResult<Pass> {
    // Heartbeats wait in memory for the scheduler to write them: write them now, so
    // an agent that just came back is not taken for offline.
    crate::scheduler::flush_presence(state).await?;
    let mut pass = state
        .db
        .call(move |cat| {
            dbm::immediate(cat.connection_mut(), |tx| {
                let mut pass = Pass::default();
                look(tx, at, &mut pass)?;
                fan_out(tx, at, &mut pass)?;
                Ok::<_, ApiError>(pass)
            })
        })
        .await?;
    deliver(state, at, &mut pass).await?;
    Ok(pass)
}

/// Opens alerts for conditions that hold and closes those that cleared.
fn look(tx: &Connection, at: i64, pass: &mut Pass) -> DbResult<()> {
    settle(
        tx,
        AlertKind::MissedSchedule,
        &missed_schedules(tx, at)?,
        at,
        pass,
    )?;
    settle(
        tx,
        AlertKind::AgentOffline,
        &offline_agents(tx, at)?,
        at,
        pass,
    )
}

/// Holds each alert of `holding` (all of `kind`) open and closes the open ones of
/// `kind` that are not among them: their condition cleared.
fn settle(
    tx: &Connection,
    kind: AlertKind,
    holding: &[NewAlert],
    at: i64,
    pass: &mut Pass,
) -> DbResult<()> {
    let mut still = std::collections::BTreeSet::new();
    for alert in holding {
        still.insert((alert.tenant_id, alert.subject.clone()));
        if store::hold(tx, alert, at)? {
            pass.opened += 1;
        }
    }
    for (tenant, subject) in store::open_subjects(tx, kind)? {
        if !still.contains(&(tenant, subject.clone()))
            && store::resolve(tx, tenant, kind, &subject, at)?
        {
            pass.resolved += 1;
        }
    }
    Ok(())
}

/// Jobs due whose run has waited past the grace: a scheduled backup still queued.
fn missed_schedules(tx: &Connection, at: i64) -> DbResult<Vec<NewAlert>> {
    let default = AlertSettings::default();
    let mut st = tx.prepare(
        "SELECT r.tenant_id, r.job_id, j.name, coalesce(a.name, a.hostname), r.created_at,
                r.missed_schedules, coalesce(s.missed_grace_secs, ?2)
         FROM runs r JOIN jobs j ON j.id = r.job_id JOIN agents a ON a.id = r.agent_id
              LEFT JOIN alert_settings s ON s.tenant_id = r.tenant_id
         WHERE r.status = 'queued' AND r.kind = 'backup' AND r.requested_by = 'scheduler'
           AND r.created_at + coalesce(s.missed_grace_secs, ?2) <= ?1",
    )?;
    let rows = st.query_map(params![at, default.missed_grace_secs], |row| {
        let (tenant, job, name): (i64, i64, String) = (row.get(0)?, row.get(1)?, row.get(2)?);
        let (agent, due, also_missed, grace): (String, i64, u32, i64) =
            (row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?);
        Ok(NewAlert {
            tenant_id: Some(tenant),
            kind: AlertKind::MissedSchedule,
            subject: format!("job:{job}"),
            summary: format!("Job \"{name}\" on {agent} missed its schedule"),
            detail: format!(
                "The backup due at {} has not started {} minutes later (the grace is {} \
                 minutes). The agent {agent} has not taken it: check that it runs and \
                 reaches the server.{}",
                dbm::rfc3339(due),
                (at - due) / 60,
                grace / 60,
                if also_missed > 0 {
                    format!(" {also_missed} later due times also passed while it waited.")
                } else {
                    String::new()
                }
            ),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Agents not heard from for longer than their tenant's threshold.
fn offline_agents(tx: &Connection, at: i64) -> DbResult<Vec<NewAlert>> {
    let default = AlertSettings::default();
    let mut st = tx.prepare(
        "SELECT a.tenant_id, a.id, coalesce(a.name, a.hostname),
                coalesce(a.last_seen_at, a.enrolled_at), a.last_seen_at IS NULL,
                coalesce(s.offline_after_secs, ?2)
         FROM agents a LEFT JOIN alert_settings s ON s.tenant_id = a.tenant_id
         WHERE a.revoked_at IS NULL AND a.deleted_at IS NULL
           AND coalesce(a.last_seen_at, a.enrolled_at) + coalesce(s.offline_after_secs, ?2) <= ?1",
    )?;
    let rows = st.query_map(params![at, default.offline_after_secs], |row| {
        let (tenant, agent, name): (i64, i64, String) = (row.get(0)?, row.get(1)?, row.get(2)?);
        let (seen, never, threshold): (i64, bool, i64) = (row.get(3)?, row.get(4)?, row.get(5)?);
        Ok(NewAlert {
            tenant_id: Some(tenant),
            kind: AlertKind::AgentOffline,
            subject: format!("agent:{agent}"),
            summary: format!("Agent {name} is offline"),
            detail: format!(
                "{} {} ({} minutes ago; the threshold is {} minutes). Its scheduled \
                 backups wait until it is back.",
                if never {
                    "It has not been heard from since it enrolled at"
                } else {
                    "It was last heard from at"
                },
                dbm::rfc3339(seen),
                (at - seen) / 60,
                threshold / 60
            ),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Queues a delivery to each channel that takes it for every alert with something
/// new to say, and notes the alert as sent up to now.
fn fan_out(tx: &Connection, at: i64, pass: &mut Pass) -> DbResult<()> {
    for pending in store::to_send(tx, at)? {
        let alert_id: i64 = pending.alert.id.parse().unwrap_or_default();
        let channels = store::channels(tx, pending.tenant_id)?;
        let takers: Vec<&ChannelRow> = channels
            .iter()
            .filter(|c| c.takes(pending.alert.kind))
            .collect();
        if takers.is_empty() && pending.tenant_id.is_none() {
            // The server's own alerts (self-backup, upgrade) are at least in the log.
            tracing::error!(
                "{}: {} (no server notification channel is set up)",
                pending.alert.kind.as_str(),
                pending.alert.summary
            );
        }
        let payload = serde_json::to_string(&Event::of(&pending.alert, at))
            .map_err(crate::db::DbError::corrupt)?;
        for channel in takers {
            store::enqueue(
                tx,
                pending.tenant_id,
                alert_id,
                channel.id,
                &message_id(),
                &payload,
                at,
            )?;
            pass.queued += 1;
        }
        store::mark_sent(tx, alert_id, pending.occurrences, at)?;
    }
    Ok(())
}

/// A message ID: `msg_` and 16 random bytes in hex (a receiver drops duplicates by it).
fn message_id() -> String {
    use rand_core::RngCore;
    let mut bytes = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut bytes);
    format!("msg_{}", hex::encode(bytes))
}

/// The wait after the `attempts`-th failed attempt, or `None` when that was the last.
fn retry_delay(config: &crate::config::NotifyConfig, attempts: u32) -> Option<Duration> {
    if attempts >= config.max_attempts {
        return None;
    }
    ExponentialBuilder::default()
        .with_min_delay(config.min_delay)
        .with_max_delay(config.max_delay)
        .with_factor(2.0)
        .with_jitter()
        .with_max_times(config.max_attempts as usize)
        .build()
        .nth(attempts.saturating_sub(1) as usize)
}

/// Attempts the deliveries due at `at`, one at a time (there are few, and a slow
/// receiver should not hold many connections).
async fn deliver(state: &AppState, at: i64, pass: &mut Pass) -> ApiResult<()> {
    let due = state
        .db
        .read(move |conn| Ok(store::due(conn, at, 50)?))
        .await?;
    for d in due {
        let (channel_id, tenant) = (d.channel_id, d.tenant_id);
        let Some(channel) = state
            .db
            .read(move |conn| Ok(store::channel(conn, tenant, channel_id)?))
            .await?
        else {
            continue;
        };
        let outcome = attempt(state, &channel, &d.message_id, &d.payload).await;
        let attempts = d.attempts + 1;
        let record = match outcome {
            Ok(()) => {
                pass.sent += 1;
                Attempt::Sent
            }
            Err(error) => match retry_delay(&state.config.notify, attempts) {
                Some(wait) => {
                    pass.retried += 1;
                    Attempt::Retry {
                        error,
                        next_at: at + i64::try_from(wait.as_secs()).unwrap_or(i64::MAX / 2).max(1),
                    }
                }
                None => {
                    pass.failed += 1;
                    Attempt::GiveUp { error }
                }
            },
        };
        state.metrics.notification(channel.kind, &record);
        if let Attempt::GiveUp { error } = &record {
            tracing::warn!(
                "notification {} to channel {} given up after {attempts} attempts: {error}",
                d.message_id,
                channel.name
            );
        }
        let id = d.id;
        state
            .db
            .call(move |cat| Ok(store::record_attempt(cat.connection(), id, &record, at)?))
            .await?;
    }
    Ok(())
}

/// One attempt to send `payload` (an [`Event`]) through `channel`.
async fn attempt(
    state: &AppState,
    channel: &ChannelRow,
    message_id: &str,
    payload: &str,
) -> Result<(), String> {
    let secret = channel
        .secret
        .as_deref()
        .map(|sealed| crate::keys::open_secret(&state.kek, &secret_context(channel.id), sealed))
        .transpose()
        .map_err(|_| "the channel's secret does not open under the server's key".to_owned())?;
    let timeout = state.config.notify.timeout;
    match channel.kind {
        ChannelKind::Email => {
            let config: email::EmailConfig = serde_json::from_value(channel.config.clone())
                .map_err(|e| format!("the channel's settings: {e}"))?;
            let event: Event =
                serde_json::from_str(payload).map_err(|e| format!("the message: {e}"))?;
            email::send(&config, secret, &event, message_id, timeout).await
        }
        ChannelKind::Webhook => {
            let config: webhook::WebhookConfig = serde_json::from_value(channel.config.clone())
                .map_err(|e| format!("the channel's settings: {e}"))?;
            let secret = secret.ok_or("the webhook has no signing secret")?;
            let secret = std::str::from_utf8(&secret)
                .map_err(|_| "the signing secret is not text".to_owned())?;
            webhook::send(
                &config,
                secret,
                payload,
                message_id,
                timeout,
                state.config.notify.allow_private_webhooks,
            )
            .await
        }
    }
}

/// Sends a sample through channel `id` of `tenant` now (one attempt; a failure is
/// retried like any delivery) and returns the delivery as recorded.
///
/// # Errors
/// 404 for a channel the caller cannot see; database errors.
pub async fn test_channel(
    state: &AppState,
    tenant_id: Option<i64>,
    channel_id: i64,
) -> ApiResult<store::Delivery> {
    let at = now();
    let (channel, delivery_id, message_id, payload) = state
        .db
        .call(move |cat| {
            dbm::immediate(cat.connection_mut(), |tx| {
                let channel = store::channel(tx, tenant_id, channel_id)?
                    .ok_or(ApiError::NotFound { what: "channel" })?;
                let alert = store::insert_test_alert(tx, tenant_id, at)?;
                let payload =
                    serde_json::to_string(&Event::of(&alert, at)).map_err(ApiError::internal)?;
                let mid = message_id();
                let alert_id: i64 = alert.id.parse().unwrap_or_default();
                let id = store::enqueue(tx, tenant_id, alert_id, channel.id, &mid, &payload, at)?;
                Ok::<_, ApiError>((channel, id, mid, payload))
            })
        })
        .await?;
    let outcome = attempt(state, &channel, &message_id, &payload).await;
    let record = match outcome {
        Ok(()) => Attempt::Sent,
        Err(error) => match retry_delay(&state.config.notify, 1) {
            Some(wait) => Attempt::Retry {
                error,
                next_at: at + i64::try_from(wait.as_secs()).unwrap_or(1).max(1),
            },
            None => Attempt::GiveUp { error },
        },
    };
    state.metrics.notification(channel.kind, &record);
    state
        .db
        .call(move |cat| {
            let conn = cat.connection();
            store::record_attempt(conn, delivery_id, &record, at)?;
            store::delivery(conn, delivery_id)?
                .ok_or_else(|| ApiError::internal("delivery just recorded"))
        })
        .await
}

/// A run ended failed: raises its alert (one per job, repeats counted on it; one per
/// run for a run of no job). Called in the transaction that failed it.
///
/// # Errors
/// SQLite's.
pub fn run_failed(tx: &Connection, run_id: i64, at: i64) -> DbResult<()> {
    /// What the message says about the run.
    struct Failed {
        tenant: i64,
        kind: String,
        job: Option<i64>,
        job_name: Option<String>,
        agent: String,
        error: Option<String>,
    }
    let row = tx
        .query_row(
            "SELECT r.tenant_id, r.kind, r.job_id, j.name, coalesce(a.name, a.hostname), r.error
             FROM runs r JOIN agents a ON a.id = r.agent_id LEFT JOIN jobs j ON j.id = r.job_id
             WHERE r.id = ?1",
            [run_id],
            |row| {
                Ok(Failed {
                    tenant: row.get(0)?,
                    kind: row.get(1)?,
                    job: row.get(2)?,
                    job_name: row.get(3)?,
                    agent: row.get(4)?,
                    error: row.get(5)?,
                })
            },
        )
        .optional()?;
    let Some(Failed {
        tenant,
        kind,
        job,
        job_name,
        agent,
        error,
    }) = row
    else {
        return Ok(());
    };
    let (subject, summary) = match (job, job_name) {
        (Some(job), Some(name)) if kind == "backup" => (
            format!("job:{job}"),
            format!("Backup of job \"{name}\" on {agent} failed"),
        ),
        _ => (
            format!("run:{run_id}"),
            format!("The {kind} run {run_id} on {agent} failed"),
        ),
    };
    store::raise(
        tx,
        &NewAlert {
            tenant_id: Some(tenant),
            kind: AlertKind::RunFailed,
            subject,
            summary,
            detail: format!(
                "Run {run_id} ({kind}) failed: {}",
                error.as_deref().unwrap_or("no reason given")
            ),
        },
        at,
    )?;
    Ok(())
}

/// A backup of `job` succeeded: its failure alert, if open, clears.
///
/// # Errors
/// SQLite's.
pub fn job_succeeded(tx: &Connection, tenant_id: i64, job_id: i64, at: i64) -> DbResult<()> {
    store::resolve(
        tx,
        Some(tenant_id),
        AlertKind::RunFailed,
        &format!("job:{job_id}"),
        at,
    )?;
    Ok(())
}

/// A storage backend was tested: on failure its `storage.failed` alert is raised for
/// the server and for each tenant with a destination on it; on success they clear.
///
/// # Errors
/// SQLite's.
pub fn storage_tested(
    tx: &Connection,
    backend_id: i64,
    name: &str,
    error: Option<&str>,
    at: i64,
) -> DbResult<()> {
    let mut st = tx.prepare(
        "SELECT DISTINCT tenant_id FROM destinations
         WHERE backend_id = ?1 AND deleted_at IS NULL",
    )?;
    let mut tenants: Vec<Option<i64>> = st
        .query_map([backend_id], |row| row.get::<_, i64>(0).map(Some))?
        .collect::<Result<_, _>>()?;
    tenants.push(None);
    let subject = format!("backend:{backend_id}");
    for tenant in tenants {
        match error {
            Some(e) => {
                store::raise(
                    tx,
                    &NewAlert {
                        tenant_id: tenant,
                        kind: AlertKind::StorageFailed,
                        subject: subject.clone(),
                        summary: format!("Storage backend \"{name}\" failed its test"),
                        detail: format!(
                            "The test (write, read back and delete a probe object) failed: {e}. \
                             Backups to destinations on it fail until it passes again."
                        ),
                    },
                    at,
                )?;
            }
            None => {
                store::resolve(tx, tenant, AlertKind::StorageFailed, &subject, at)?;
            }
        }
    }
    Ok(())
}

/// Raises one of the server's own alerts (a self-backup failed, an upgrade rolled
/// back): sent to the server's channels, logged at error level, and in the audit log.
///
/// # Errors
/// SQLite's.
pub fn server_alert(
    tx: &Connection,
    kind: AlertKind,
    subject: &str,
    summary: &str,
    detail: &str,
    at: i64,
) -> DbResult<()> {
    tracing::error!("{}: {summary}: {detail}", kind.as_str());
    crate::db::audit::record(
        tx,
        &crate::db::audit::AuditEntry {
            tenant_id: None,
            actor: "system".to_owned(),
            action: kind.as_str(),
            target: subject.to_owned(),
            outcome: crate::db::audit::AuditOutcome::Failed,
            detail: format!("{summary}: {detail}"),
        },
    )?;
    store::raise(
        tx,
        &NewAlert {
            tenant_id: None,
            kind,
            subject: subject.to_owned(),
            summary: summary.to_owned(),
            detail: detail.to_owned(),
        },
        at,
    )?;
    Ok(())
}
