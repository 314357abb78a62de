//! The scheduler: a tokio task that, every tick, queues a backup run for each job that
//! is due (and computes its next time from its cron expression, parsed by `croner`),
//! and fails claimed runs whose lease lapsed ("timed out"). Database work runs on the
//! blocking pool; due agents' long polls are woken.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

use crate::db::audit::{self, AuditEntry, AuditOutcome};
use crate::db::{self as dbm, agents, jobs, now, runs, uploads};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// What a schedule is: croner's cron, 5 fields or 6 with the seconds first.
pub const CRON_FORMS: &str = "5 fields (minute hour day-of-month month day-of-week), \
                              or 6 with seconds first (second minute hour day-of-month month day-of-week)";

/// Parses a cron expression (5 fields, or 6 with the seconds field first).
///
/// # Errors
/// croner's description of what is wrong, with the forms it takes.
pub fn parse(expr: &str) -> Result<Cron, String> {
    if expr.len() > 200 {
        return Err("longer than 200 bytes".to_owned());
    }
    Cron::new(expr)
        .with_seconds_optional()
        .parse()
        .map_err(|e| format!("not a cron expression ({e}); use {CRON_FORMS}"))
}

/// Parses an IANA time zone name (`Europe/Berlin`, `UTC`).
///
/// # Errors
/// What is wrong.
pub fn parse_zone(name: &str) -> Result<Tz, String> {
    name.parse::<Tz>().map_err(|_| {
        format!("{name:?} is not an IANA time zone name (such as Europe/Berlin or UTC)")
    })
}

/// The shortest time between two scheduled runs of a job. A backup every second (or
/// every minute) only piles up runs; the scheduler never queues one sooner than this
/// after the last, whatever the expression says.
pub const MIN_INTERVAL_SECS: i64 = 300;

/// How many upcoming times [`check_interval`] looks at.
const INTERVAL_LOOKAHEAD: usize = 500;

/// Checks that `expr` in `zone` never matches two times closer than
/// [`MIN_INTERVAL_SECS`] among its next occurrences after `unix`.
///
/// # Errors
/// What is wrong (parse errors included).
pub fn check_interval(expr: &str, zone: Tz, unix: i64) -> Result<(), String> {
    let times = next_times(expr, zone, unix, INTERVAL_LOOKAHEAD)?;
    for pair in times.windows(2) {
        if pair[1] - pair[0] < MIN_INTERVAL_SECS {
            return Err(format!(
                "runs {} s apart; the shortest interval is {MIN_INTERVAL_SECS} s",
                pair[1] - pair[0]
            ));
        }
    }
    Ok(())
}

/// The first time strictly after `unix` that `expr` matches in `zone`, in Unix
/// seconds.
///
/// # Errors
/// A parse error, or an expression that never matches.
pub fn next_after(expr: &str, zone: Tz, unix: i64) -> Result<i64, String> {
    next_times(expr, zone, unix, 1)?
        .first()
        .copied()
        .ok_or_else(|| "has no next occurrence".to_owned())
}

/// Up to `count` times after `unix` that `expr` matches in `zone` (fewer if it stops
/// matching).
///
/// # Errors
/// A parse error, or no occurrence at all.
pub fn next_times(expr: &str, zone: Tz, unix: i64, count: usize) -> Result<Vec<i64>, String> {
    let cron = parse(expr)?;
    let from: DateTime<Utc> =
        DateTime::from_timestamp(unix, 0).ok_or_else(|| "time out of range".to_owned())?;
    let mut at = from.with_timezone(&zone);
    let mut times = Vec::with_capacity(count);
    while times.len() < count {
        match cron.find_next_occurrence(&at, false) {
            Ok(t) => {
                times.push(t.timestamp());
                at = t;
            }
            Err(e) if times.is_empty() => return Err(format!("has no next occurrence: {e}")),
            Err(_) => break,
        }
    }
    Ok(times)
}

/// How many times `expr` matched in `zone` from `since` (inclusive) up to `until`
/// (inclusive), counted up to `cap`: the schedules an offline agent or a stopped server
/// missed.
pub fn occurrences_between(expr: &str, zone: Tz, since: i64, until: i64, cap: usize) -> u32 {
    let Ok(times) = next_times(expr, zone, since - 1, cap) else {
        return 0;
    };
    u32::try_from(times.iter().filter(|t| **t <= until).count()).unwrap_or(u32::MAX)
}

/// Missed due times counted for one run, at most (a job every 5 minutes on a server
/// stopped for a month would otherwise be counted one by one).
const MISSED_COUNT_CAP: usize = 10_000;

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
                for (agent, beat) in &written {
                    agents::heartbeat(tx, *agent, beat)?;
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
        if let Err(e) = crate::retention::scheduled(&state, now()).await {
            tracing::error!("scheduled retention failed: {e:?}");
        }
        crate::selfbackup::scheduled(&state).await;
        state.limits.trim();
        // The proof of life an upgrade's health check waits for.
        let tick_file = state
            .config
            .data_dir
            .join(crate::selfbackup::upgrade::TICK_FILE);
        if let Err(e) = tokio::fs::write(&tick_file, now().to_string()).await {
            tracing::warn!("{}: {e}", tick_file.display());
        }
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
                    let zone = parse_zone(&job.time_zone).unwrap_or(Tz::UTC);
                    // At least the minimum interval on, even for a job stored before
                    // the minimum was enforced.
                    let next = job
                        .schedule
                        .as_deref()
                        .and_then(|s| next_after(s, zone, at + MIN_INTERVAL_SECS - 1).ok());
                    jobs::set_next_run(tx, job.id, next)?;
                    let Some(dest) = agents::destination_of_agent(tx, job.agent_id)? else {
                        continue;
                    };
                    // Due times that passed while the server was stopped are missed
                    // too: they come back as this one run.
                    let due_times = match (&job.schedule, job.next_run_at) {
                        (Some(expr), Some(due)) => {
                            occurrences_between(expr, zone, due, at, MISSED_COUNT_CAP).max(1)
                        }
                        _ => 1,
                    };
                    // A run still waiting for the agent covers this time too: backups
                    // of one job never stack up behind an offline agent. It records
                    // how many due times it stands for.
                    if let Some(waiting) = runs::queued_backup_of_job(tx, job.id)? {
                        runs::add_missed_schedules(tx, waiting, due_times)?;
                        tick.skipped.push(job.id);
                        continue;
                    }
                    let run = runs::enqueue_backup(tx, &job, &dest, "scheduler")?;
                    runs::add_missed_schedules(tx, run, due_times - 1)?;
                    tick.queued.push(run);
                    wake.push(job.agent_id);
                }
                for (run, tenant) in runs::expire_leases(tx, at)? {
                    tick.timed_out.push(run);
                    crate::notify::run_failed(tx, run, at)?;
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
        let utc = Tz::UTC;
        assert_eq!(next_after("0 * * * *", utc, base).unwrap(), base + 3600);
        assert_eq!(
            next_after("*/15 * * * *", utc, base + 1).unwrap(),
            base + 900
        );
        assert_eq!(
            next_after("30 2 * * *", utc, base).unwrap() % 86_400,
            2 * 3600 + 1800
        );
        let e = next_after("not cron", utc, base).unwrap_err();
        assert!(e.contains("cron") && e.contains("seconds first"), "{e}");
        assert!(next_after("61 * * * *", utc, base).is_err());
        // Six fields: the seconds come first (this is 03:00:30, not 00:30:03).
        assert_eq!(
            next_after("30 0 3 * * *", utc, base).unwrap() % 86_400,
            3 * 3600 + 30
        );
    }

    #[test]
    fn schedules_more_often_than_the_minimum_are_refused() {
        let base = 1_795_428_000;
        let utc = Tz::UTC;
        assert!(check_interval("0 3 * * *", utc, base).is_ok());
        assert!(check_interval("*/5 * * * *", utc, base).is_ok());
        assert!(check_interval("15 40 * * * *", utc, base).is_ok());
        for expr in ["* * * * * *", "* * * * *", "*/4 * * * *", "0,1 3 * * *"] {
            let e = check_interval(expr, utc, base).unwrap_err();
            assert!(e.contains("shortest interval is 300 s"), "{expr}: {e}");
        }
    }

    #[test]
    fn schedules_follow_their_time_zone_across_daylight_saving() {
        // 2026-03-28T12:00:00Z: Berlin is UTC+1 until 2026-03-29 02:00 local, then +2.
        let base = 1_774_699_200;
        let berlin = parse_zone("Europe/Berlin").unwrap();
        let times = next_times("0 3 * * *", berlin, base, 3).unwrap();
        // It is 13:00 local, so the next 03:00 is the 29th's, after the change
        // (UTC+2: 01:00Z), then the 30th's and the 31st's.
        let hours: Vec<i64> = times.iter().map(|t| t % 86_400 / 3600).collect();
        assert_eq!(hours, [1, 1, 1]);
        let utc_times = next_times("0 3 * * *", Tz::UTC, base, 1).unwrap();
        assert_eq!(utc_times[0] % 86_400 / 3600, 3);
        // Before the change, 03:00 in Berlin is 02:00Z.
        let winter = next_times("0 3 * * *", berlin, base - 2 * 86_400, 1).unwrap();
        assert_eq!(winter[0] % 86_400 / 3600, 2);
        assert!(parse_zone("Mars/Olympus").unwrap_err().contains("IANA"));
    }

    #[test]
    fn missed_due_times_are_counted() {
        let base = 1_795_428_000; // 10:00Z
                                  // Hourly, due at 10:00, now 13:30: 10:00, 11:00, 12:00, 13:00.
        assert_eq!(
            occurrences_between("0 * * * *", Tz::UTC, base, base + 12_600, 100),
            4
        );
        assert_eq!(
            occurrences_between("0 * * * *", Tz::UTC, base, base, 100),
            1
        );
        assert_eq!(
            occurrences_between("0 * * * *", Tz::UTC, base, base + 12_600, 2),
            2
        );
    }
}
