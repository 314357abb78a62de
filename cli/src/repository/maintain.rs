//! Keeping a repository: `forget`, `prune`, `check` and `unlock`.

use coffer_adapters::repo::check::{self, ReadData};
use coffer_adapters::repo::forget::{self, Policy};
use coffer_adapters::repo::{locks, prune};
use serde_json::json;

use super::args::{CheckCmd, ForgetCmd, KeepArgs, RepoOnly};
use super::{local_time, open, short, size};
use crate::exit::{CliError, Result};
use crate::output::emit;

/// `--keep-within`: restic's `2y5m7d3h` form, or any span jiff reads ('10 days').
fn within_secs(text: &str) -> Result<u64> {
    let bad = || {
        CliError::Usage(format!(
            "--keep-within {text:?}: give a duration such as 7d, 2y5m, 36h or '10 days'"
        ))
    };
    let mut secs = 0u64;
    let mut digits = String::new();
    let compact =
        text.chars().all(|c| c.is_ascii_alphanumeric()) && text.chars().any(|c| c.is_ascii_digit());
    if compact {
        for c in text.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let n: u64 = digits.parse().map_err(|_| bad())?;
            digits.clear();
            // Calendar units as restic counts them: a year 365 days, a month 30.
            let unit = match c {
                'y' => 365 * 86_400,
                'm' => 30 * 86_400,
                'w' => 7 * 86_400,
                'd' => 86_400,
                'h' => 3_600,
                _ => return Err(bad()),
            };
            secs = secs.saturating_add(n.saturating_mul(unit));
        }
        if !digits.is_empty() {
            return Err(bad());
        }
        return Ok(secs);
    }
    let span: jiff::Span = text.parse().map_err(|_| bad())?;
    let total = span
        .total((jiff::Unit::Second, jiff::civil::date(1970, 1, 1)))
        .map_err(|_| bad())?;
    if total < 0.0 {
        return Err(bad());
    }
    Ok(total as u64)
}

fn policy(keep: &KeepArgs) -> Result<Policy> {
    Ok(Policy {
        keep_last: keep.keep_last.unwrap_or(0),
        keep_hourly: keep.keep_hourly.unwrap_or(0),
        keep_daily: keep.keep_daily.unwrap_or(0),
        keep_weekly: keep.keep_weekly.unwrap_or(0),
        keep_monthly: keep.keep_monthly.unwrap_or(0),
        keep_yearly: keep.keep_yearly.unwrap_or(0),
        keep_within_secs: keep
            .keep_within
            .as_deref()
            .map(within_secs)
            .transpose()?
            .unwrap_or(0),
    })
}

/// `coffer forget`.
pub(crate) fn forget(cmd: &ForgetCmd, json: bool) -> Result<()> {
    let policy = policy(&cmd.keep)?;
    if policy.is_empty() {
        return Err(CliError::Usage(
            "give at least one --keep-* rule: a policy that keeps nothing would forget every snapshot".into(),
        ));
    }
    let repo = open(&cmd.repo)?;
    let snapshots = repo.snapshots()?;
    let decisions = forget::forget(&repo, &policy, cmd.dry_run)?;
    let mut text = String::new();
    let mut list = Vec::new();
    for d in &decisions {
        let Some((_, s)) = snapshots.iter().find(|(id, _)| *id == d.id) else {
            continue;
        };
        list.push(json!({
            "id": hex::encode(d.id),
            "time": super::rfc3339(s.time, s.time_ns),
            "host": s.host,
            "keep": d.keep,
            "reasons": d.reasons,
        }));
        text.push_str(&format!(
            "{} {}  {}  {:<12} {}\n",
            if d.keep { "keep  " } else { "remove" },
            short(&d.id),
            local_time(s.time),
            s.host,
            d.reasons.join(", ")
        ));
    }
    let removed = decisions.iter().filter(|d| !d.keep).count();
    text.push_str(&format!(
        "{} {removed} of {} snapshots",
        if cmd.dry_run {
            "would remove"
        } else {
            "removed"
        },
        decisions.len()
    ));
    emit(
        json,
        json!({"message_type": "forget", "dry_run": cmd.dry_run, "snapshots": list}),
        &text,
    )?;
    if cmd.prune && !cmd.dry_run {
        prune_repo(&repo, json)?;
    }
    Ok(())
}

/// `coffer prune`.
pub(crate) fn prune(cmd: &RepoOnly, json: bool) -> Result<()> {
    let repo = open(&cmd.repo)?;
    prune_repo(&repo, json)
}

fn prune_repo(repo: &coffer_adapters::repo::Repository, json: bool) -> Result<()> {
    let flag = crate::interrupt::flag();
    let cancelled = move || flag.load(std::sync::atomic::Ordering::Relaxed);
    let r = prune::prune_with(repo, &super::host_name(), &cancelled).map_err(|e| match e {
        coffer_adapters::Error::Locked { .. } => CliError::Locked(format!(
            "prune must wait: {e}. A prune needs the repository to itself; it can run once \
             the backups holding locks finish (`coffer unlock` removes only stale locks)"
        )),
        other => other.into(),
    })?;
    emit(
        json,
        json!({
            "message_type": "prune",
            "blobs_used": r.used_blobs,
            "packs_kept": r.packs_kept,
            "packs_deleted": r.packs_deleted,
            "packs_repacked": r.packs_repacked,
            "packs_written": r.packs_written,
            "unindexed_deleted": r.unindexed_deleted,
            "bytes_freed": r.bytes_freed,
        }),
        &format!(
            "prune: {} packs kept, {} deleted, {} repacked into {}, {} unindexed removed; {} freed",
            r.packs_kept,
            r.packs_deleted,
            r.packs_repacked,
            r.packs_written,
            r.unindexed_deleted,
            size(r.bytes_freed.max(0) as u64)
        ),
    )
}

/// `--read-data-subset`: `N%` or `n/t`.
fn subset(text: &str) -> Result<ReadData> {
    let bad = || {
        CliError::Usage(format!(
            "--read-data-subset {text:?}: give N% (1-100) or n/t"
        ))
    };
    if let Some(p) = text.strip_suffix('%') {
        let n: u8 = p.trim().parse().map_err(|_| bad())?;
        if !(1..=100).contains(&n) {
            return Err(bad());
        }
        return Ok(ReadData::Percent(n));
    }
    let (n, of) = text.split_once('/').ok_or_else(bad)?;
    let (n, of): (u32, u32) = (
        n.parse().map_err(|_| bad())?,
        of.parse().map_err(|_| bad())?,
    );
    if n == 0 || of == 0 || n > of {
        return Err(bad());
    }
    Ok(ReadData::Slice { n, of })
}

/// `coffer check`.
pub(crate) fn check(cmd: &CheckCmd, json: bool) -> Result<()> {
    let read = match (&cmd.read_data_subset, cmd.read_data) {
        (Some(s), _) => subset(s)?,
        (None, true) => ReadData::All,
        (None, false) => ReadData::None,
    };
    // Check what storage holds, never the local cache's copies.
    let mut opts = cmd.repo.clone();
    opts.no_cache = true;
    let repo = open(&opts)?;
    let r = check::check(&repo, read)?;
    let text = {
        let mut t = format!(
            "{} snapshots, {} trees, {} data blobs, {} packs ({} read)",
            r.snapshots, r.trees, r.data_blobs, r.packs, r.packs_read
        );
        if !r.unindexed_packs.is_empty() {
            t.push_str(&format!(
                "\n{} packs are not in any index yet (a backup running or interrupted; prune removes them)",
                r.unindexed_packs.len()
            ));
        }
        for e in &r.errors {
            t.push_str(&format!("\nerror: {e}"));
        }
        if !r.affected.is_empty() {
            t.push_str("\nfiles whose data is lost or damaged:");
            for (sid, path, pack) in &r.affected {
                t.push_str(&format!(
                    "\n  snapshot {} {path} (pack {})",
                    short(sid),
                    hex::encode(pack)
                ));
            }
        }
        if r.ok() {
            t.push_str("\nno errors were found");
        }
        t
    };
    emit(
        json,
        json!({
            "message_type": "check",
            "snapshots": r.snapshots,
            "trees": r.trees,
            "data_blobs": r.data_blobs,
            "packs": r.packs,
            "packs_read": r.packs_read,
            "unindexed_packs": r.unindexed_packs.len(),
            "errors": r.errors,
            "affected": r.affected.iter().map(|(sid, path, pack)| json!({
                "snapshot_id": hex::encode(sid), "path": path, "pack": hex::encode(pack),
            })).collect::<Vec<_>>(),
        }),
        &text,
    )?;
    if r.ok() {
        Ok(())
    } else {
        Err(CliError::Corrupt(format!(
            "check found {} errors (listed above)",
            r.errors.len()
        )))
    }
}

/// `coffer unlock`: removes stale locks only.
pub(crate) fn unlock(cmd: &RepoOnly, json: bool) -> Result<()> {
    let repo = open(&cmd.repo)?;
    let removed = locks::remove_stale(&repo)?;
    let left = locks::list(&repo)?.len();
    emit(
        json,
        json!({"message_type": "unlock", "removed": removed, "remaining": left}),
        &format!(
            "removed {removed} stale locks; {left} live locks remain (their processes are running)"
        ),
    )
}

/// `coffer stats`: what the repository holds and what its index costs in memory.
pub(crate) fn stats(cmd: &RepoOnly, json: bool) -> Result<()> {
    let repo = open(&cmd.repo)?;
    let snapshots = repo.list_ids("snapshots")?.len();
    let index = repo.load_index()?;
    let stored: u64 = index.packs.iter().map(|(_, len)| len).sum();
    let blobs = index.len();
    let per_blob = index.heap_bytes() as f64 / blobs.max(1) as f64;
    emit(
        json,
        json!({
            "message_type": "stats",
            "snapshots": snapshots,
            "packs": index.packs.len(),
            "blobs": blobs,
            "stored_bytes": stored,
            "index_memory_bytes": index.heap_bytes(),
            "index_bytes_per_blob": per_blob,
        }),
        &format!(
            "{snapshots} snapshots; {blobs} blobs in {} packs, {} stored; in-memory index {} ({per_blob:.1} bytes per blob)",
            index.packs.len(),
            size(stored),
            size(index.heap_bytes() as u64)
        ),
    )
}
