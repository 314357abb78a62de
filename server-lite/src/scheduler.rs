//! The scheduler: a tokio task that, every tick, queues a backup run for each job that
//! is due (and computes its next time from its cron expression, parsed by `croner`),
//! and fails claimed runs whose lease lapsed ("timed out"). Database work runs on the
//! blocking pool; due agents' long polls are woken.

use chrono::{DateTime, Utc};
use croner::Cron;

use crate::db::audit::{self, AuditEntry, AuditOutcome};
use crate::db::{self as dbm, agents, jobs, now, runs, uploads};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Parses a cron expression (5 fields, or 6 with seconds; UTC).
///
/// # Errors
/// croner's description of what is wrong.
pub fn parse(expr: &str) -> Result<Cron, String> {
    if expr.len() > 200 {
        return Err("longer than 200 bytes".to_owned());
    }
    Cron::new(expr)
        .with_seconds_optional()
        .parse()
        .map_err(|e| format!("not a cron expression: {e}"))
}

/// The shortest time between two scheduled runs of a job. A backup every second (or
/// every minute) only piles up runs; the scheduler never queues one sooner than this
/// after the last, whatever the expression says.
pub const MIN_INTERVAL_SECS: i64 = 300;

/// How many upcoming times [`check_interval`] looks at.
const INTERVAL_LOOKAHEAD: usize = 500;

/// Checks that `expr` never matches two times closer than [`MIN_INTERVAL_SECS`] among
/// its next occurrences after `unix`.
///
/// # Errors
/// What is wrong (parse errors included).
pub fn check_interval(expr: &str, unix: i64) -> Result<(), String> {
    let mut previous = next_after(expr, unix)?;
    for _ in 0..INTERVAL_LOOKAHEAD {
        let Ok(next) = next_after(expr, previous) else {
            return Ok(());
        };
        if next - previous < MIN_INTERVAL_SECS {
            return Err(format!(
                "runs {} s apart; the shortest interval is {MIN_INTERVAL_SECS} s",
                next - previous
            ));
        }
        previous = next;
    }
    Ok(())
}

/// The first time strictly after `unix` that `expr` matches, in Unix seconds.
///
/// # Errors
/// A parse error, or an expression that never matches.
pub fn next_after(expr: &str, unix: i64) -> Result<i64, String> {
    let cron = parse(expr)?;
    let from: DateTime<Utc> =
        DateTime::from_timestamp(unix, 0).ok_or_else(|| "time out of range".to_owned())?;
    cron.find_next_occurrence(&from, false)
        .map(|t| t.timestamp())
        .map_err(|e| format!("has no next occurrence: {e}"))
}

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tick {
    /// Runs queued for due jobs.
    pub queued: Vec<i64>,
    /// Runs failed because their lease lapsed.
    pub timed_out: Vec<i64>,
    /// Jobs due whose previous run was still queued (no second run queued).
    pub skipped: Vec<i64>,
    /// Abandoned multipart uploads removed from the embedded store's staging folder.
    pub stale_uploads: usize,
}

/// A multipart upload to the embedded store not completed within this long is
/// abandoned: its parts are removed (S3's lifecycle rule does the same).
pub const UPLOAD_MAX_AGE_SECS: i64 = 24 * 3600;

/// Writes the heartbeats held in memory, in one transaction.
///
/// # Errors
/// Database errors (the heartbeats are kept for the next try).
pub async fn flush_presence(state: &AppState) -> ApiResult<usize> {
    let beats = state.presence.take();
    if beats.is_empty() {
        return Ok(0);
    }
    let count = beats.len();
    let written = beats.clone();
    let result = state
        .db
        .call(move |cat| {
            dbm::immediate(cat.connection_mut(), |tx| {
                for (agent, (at, version)) in &written {
                    agents::heartbeat(tx, *agent, *at, version)?;
                }
                Ok(())
            })
        })
        .await;
    match result {
        Ok(()) => Ok(count),
        Err(e) => {
            state.presence.restore(beats);
            Err(e)
        }
    }
}

/// Runs the scheduler until the process ends.
pub async fn run(state: AppState) {
    let mut interval = tokio::time::interval(state.config.scheduler_tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if let Err(e) = tick(&state, now()).await {
            tracing::error!("scheduler tick failed: {e:?}");
        }
        if let Err(e) = flush_presence(&state).await {
            tracing::error!("writing heartbeats failed: {e:?}");
        }
        if let Err(e) = crate::run_access::sweep(&state).await {
            tracing::error!("releasing what ended runs held in storage failed: {e:?}");
        }
        state.limits.trim();
    }
}

/// One pass at time `at`: queue due jobs, fail lapsed leases.
///
/// # Errors
/// Database errors.
pub async fn tick(state: &AppState, at: i64) -> ApiResult<Tick> {
    let (mut tick, wake, stale) = state
        .db
        .call(move |cat| {
            dbm::immediate(cat.connection_mut(), |tx| {
                let mut tick = Tick::default();
                let mut wake = Vec::new();
                for job in jobs::due_jobs(tx, at)? {
                    // At least the minimum interval on, even for a job stored before
                    // the minimum was enforced.
                    let next = job
                        .schedule
                        .as_deref()
                        .and_then(|s| next_after(s, at + MIN_INTERVAL_SECS - 1).ok());
                    jobs::set_next_run(tx, job.id, next)?;
                    let Some(dest) = agents::destination_of_agent(tx, job.agent_id)? else {
                        continue;
                    };
                    // A run still waiting for the agent covers this time too: backups
                    // of one job never stack up behind an offline agent.
                    if runs::job_has_queued(tx, job.id)? {
                        tick.skipped.push(job.id);
                        continue;
                    }
                    tick.queued
                        .push(runs::enqueue_backup(tx, &job, &dest, "scheduler")?);
                    wake.push(job.agent_id);
                }
                for (run, tenant) in runs::expire_leases(tx, at)? {
                    tick.timed_out.push(run);
                    audit::record(
                        tx,
                        &AuditEntry {
                            tenant_id: Some(tenant),
                            actor: "system".to_owned(),
                            action: "run.timeout",
                            target: format!("run:{run}"),
                            outcome: AuditOutcome::Failed,
                            detail: "claimed but not finished before its lease lapsed".to_owned(),
                        },
                    )?;
                }
                let stale = uploads::remove_stale(tx, at - UPLOAD_MAX_AGE_SECS)?;
                Ok::<_, ApiError>((tick, wake, stale))
            })
        })
        .await?;
    for id in &stale {
        // IDs are our own hex, so the path stays in the staging folder.
        let dir = state.stores.staging.root().join(id);
        if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("removing abandoned upload {id}: {e}");
            }
        }
    }
    tick.stale_uploads = stale.len();
    for agent in wake {
        state.dispatch.wake(agent);
    }
    Ok(tick)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cron_expressions_give_the_next_time_and_bad_ones_say_why() {
        // 2026-11-23T10:00:00Z
        let base = 1_795_428_000;
        assert_eq!(next_after("0 * * * *", base).unwrap(), base + 3600);
        assert_eq!(next_after("*/15 * * * *", base + 1).unwrap(), base + 900);
        assert_eq!(
            next_after("30 2 * * *", base).unwrap() % 86_400,
            2 * 3600 + 1800
        );
        assert!(next_after("not cron", base).unwrap_err().contains("cron"));
        assert!(next_after("61 * * * *", base).is_err());
    }

    #[test]
    fn schedules_more_often_than_the_minimum_are_refused() {
        let base = 1_795_428_000;
        assert!(check_interval("0 3 * * *", base).is_ok());
        assert!(check_interval("*/5 * * * *", base).is_ok());
        assert!(check_interval("15 40 * * * *", base).is_ok());
        for expr in ["* * * * * *", "* * * * *", "*/4 * * * *", "0,1 3 * * *"] {
            let e = check_interval(expr, base).unwrap_err();
            assert!(e.contains("shortest interval is 300 s"), "{expr}: {e}");
        }
    }
}
