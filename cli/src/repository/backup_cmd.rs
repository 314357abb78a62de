//! `coffer backup`: paths or a command's output into a repository, with restic's
//! excludes, a progress line on a terminal and `--json` status and summary lines.

use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coffer_adapters::repo::backup::{
    self, BackupOptions, BackupReport, Parent, Progress, ProgressFn,
};
use coffer_adapters::repo::filter::Filter;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use super::args::BackupCmd;
use super::{open, select, short, size};
use crate::exit::{CliError, Result};
use crate::output::emit;

/// The exclusion rules the flags ask for.
fn filter(cmd: &BackupCmd) -> Result<Filter> {
    let mut f = Filter::new();
    for p in &cmd.excludes {
        f = f.exclude(p)?;
    }
    for file in &cmd.exclude_files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| CliError::io(format!("reading {}", file.display()), e))?;
        f = f
            .exclude_lines(&text)
            .map_err(|e| CliError::from(e).context(file.display()))?;
    }
    for spec in &cmd.exclude_if_present {
        f = f.exclude_if_present(spec)?;
    }
    if cmd.exclude_caches {
        f = f.exclude_caches();
    }
    Ok(f.one_file_system(cmd.one_file_system)
        .larger_than(cmd.exclude_larger_than))
}

/// Shows a running backup: a spinner line on a terminal, a status line a second in
/// `--json`, nothing when stderr is piped.
fn progress(json: bool, paths: &[PathBuf]) -> (Option<ProgressFn>, Option<ProgressBar>) {
    let started = Instant::now();
    let scan = Scan::start(paths, json || io::stderr().is_terminal());
    if json {
        let last = Mutex::new(Instant::now());
        let f = move |p: &Progress| {
            let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
            if last.elapsed() < Duration::from_secs(1) {
                return;
            }
            *last = Instant::now();
            let mut status = json!({
                "message_type": "status",
                "seconds_elapsed": started.elapsed().as_secs(),
                "files_done": p.files,
                "bytes_done": p.bytes,
                "bytes_read": p.bytes_read,
                "bytes_added": p.new_bytes,
                "current_file": p.current.display().to_string(),
            });
            if let Some((files, bytes)) = scan.totals() {
                status["total_files"] = files.into();
                status["total_bytes"] = bytes.into();
                status["percent_done"] = (p.bytes as f64 / bytes.max(1) as f64).min(1.0).into();
                if let Some(eta) = eta(p.bytes, bytes, started) {
                    status["seconds_remaining"] = eta.as_secs().into();
                }
            }
            println!("{status}");
        };
        return (Some(ProgressFn(Arc::new(f))), None);
    }
    if !io::stderr().is_terminal() {
        return (None, None);
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
        ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let shown = bar.clone();
    let f = move |p: &Progress| {
        let secs = started.elapsed().as_secs_f64().max(0.001);
        let done = match scan.totals() {
            Some((files, bytes)) => format!(
                "{}/{files} files, {}/{}{}",
                p.files,
                size(p.bytes),
                size(bytes),
                eta(p.bytes, bytes, started)
                    .map(|d| format!(" ETA {}:{:02}", d.as_secs() / 60, d.as_secs() % 60))
                    .unwrap_or_default()
            ),
            None => format!("{} files, {}", p.files, size(p.bytes)),
        };
        shown.set_message(format!(
            "{done}; {} read ({}/s), {} new  {}",
            size(p.bytes_read),
            size((p.bytes_read as f64 / secs) as u64),
            size(p.new_bytes),
            p.current.display()
        ));
    };
    (Some(ProgressFn(Arc::new(f))), Some(bar))
}

/// The time left if the rate so far holds, once there is a rate.
fn eta(done: u64, total: u64, started: Instant) -> Option<Duration> {
    let secs = started.elapsed().as_secs_f64();
    if done == 0 || secs < 1.0 {
        return None;
    }
    let left = total.saturating_sub(done) as f64 / (done as f64 / secs);
    Some(Duration::from_secs_f64(left.min(1e7)))
}

/// A walk of the paths beside the backup that counts their files and bytes, for the
/// progress display's totals and ETA (restic's scanner). Excludes are not applied, so
/// the totals are an upper bound.
struct Scan {
    files: AtomicU64,
    bytes: AtomicU64,
    done: AtomicBool,
}

impl Scan {
    fn start(paths: &[PathBuf], wanted: bool) -> Arc<Scan> {
        let scan = Arc::new(Scan {
            files: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            done: AtomicBool::new(false),
        });
        if wanted && !paths.is_empty() {
            let (mine, paths) = (Arc::clone(&scan), paths.to_vec());
            std::thread::spawn(move || {
                let mut stack = paths;
                while let Some(p) = stack.pop() {
                    let Ok(m) = std::fs::symlink_metadata(&p) else {
                        continue;
                    };
                    if m.is_dir() {
                        if let Ok(entries) = std::fs::read_dir(&p) {
                            stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
                        }
                    } else if m.is_file() {
                        mine.files.fetch_add(1, Ordering::Relaxed);
                        mine.bytes.fetch_add(m.len(), Ordering::Relaxed);
                    }
                }
                mine.done.store(true, Ordering::Release);
            });
        }
        scan
    }

    /// The totals, once the walk is over.
    fn totals(&self) -> Option<(u64, u64)> {
        self.done.load(Ordering::Acquire).then(|| {
            (
                self.files.load(Ordering::Relaxed),
                self.bytes.load(Ordering::Relaxed),
            )
        })
    }
}

/// `--time`: a civil date and time in the local time zone (`2026-11-30 10:15:00`,
/// also with a `T`, or a date alone), or an RFC 3339 instant.
fn parse_time(text: &str) -> Result<(i64, u32)> {
    let bad = || {
        CliError::Usage(format!(
            "--time {text:?}: give a time such as '2026-11-30 10:15:00'"
        ))
    };
    let instant = match text.parse::<jiff::Timestamp>() {
        Ok(t) => t,
        Err(_) => {
            let civil: jiff::civil::DateTime = text
                .parse()
                .or_else(|_| {
                    text.parse::<jiff::civil::Date>()
                        .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
                })
                .map_err(|_| bad())?;
            civil
                .to_zoned(jiff::tz::TimeZone::system())
                .map_err(|_| bad())?
                .timestamp()
        }
    };
    Ok((
        instant.as_second(),
        instant.subsec_nanosecond().max(0) as u32,
    ))
}

/// `coffer backup`.
pub(crate) fn run(cmd: &BackupCmd, json: bool) -> Result<()> {
    let repo = open(&cmd.repo)?;
    let host = cmd.host.clone().unwrap_or_else(super::host_name);
    let parent = match &cmd.parent {
        None => Parent::Latest,
        Some(which) => Parent::Snapshot(select(&repo, which, Some(&host))?.0),
    };
    let (progress, bar) = progress(json, &cmd.paths);
    let options = BackupOptions {
        host,
        tags: cmd.tags.clone(),
        parent,
        force_read: cmd.force,
        cache_dir: crate::repository::cache_dir().filter(|_| !cmd.repo.no_cache),
        program: format!("coffer {}", env!("CARGO_PKG_VERSION")),
        filter: filter(cmd)?,
        dry_run: cmd.dry_run,
        progress,
        cancel: Some(crate::interrupt::flag()),
        time: cmd.time.as_deref().map(parse_time).transpose()?,
        lock_held_elsewhere: false,
    };
    let report = match &cmd.from_command {
        Some(command) => crate::backup::backup_command(command, |out| {
            backup::backup_stream(&repo, &cmd.stdin_name, out, command.clone(), &options)
        }),
        None => backup::backup(&repo, &cmd.paths, &options).map_err(CliError::from),
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    summary(&report?, json)
}

/// Prints what the backup did: lines for people, a `summary` message for scripts.
fn summary(r: &BackupReport, json: bool) -> Result<()> {
    for (path, why) in &r.skipped {
        if json {
            println!(
                "{}",
                json!({"message_type": "error", "item": path.display().to_string(), "error": why})
            );
        } else {
            eprintln!("warning: {} not backed up: {why}", path.display());
        }
    }
    let s = &r.summary;
    let c = &r.changes;
    let id = hex::encode(r.snapshot);
    let value = json!({
        "message_type": "summary",
        "dry_run": r.dry_run,
        "snapshot_id": if r.dry_run { serde_json::Value::Null } else { id.clone().into() },
        "files_new": c.new,
        "files_changed": c.changed,
        "files_unmodified": c.unchanged,
        "excluded": c.excluded,
        "files_skipped": r.skipped.len(),
        "dirs": s.dirs,
        "others": s.others,
        "total_files_processed": s.files,
        "total_bytes_processed": s.bytes,
        "bytes_read": s.bytes_read,
        "data_blobs": s.new_blobs,
        "tree_blobs": s.new_trees,
        "data_added": s.new_raw_bytes,
        "data_added_packed": s.new_stored_bytes,
        "packs": s.packs,
        "total_duration_ms": s.duration_ms,
    });
    let what = if r.dry_run {
        "would be snapshot (dry run: nothing stored)".to_owned()
    } else {
        format!("snapshot {} saved", short(&r.snapshot))
    };
    let text = format!(
        "Files: {} new, {} changed, {} unmodified{}\n\
         Dirs: {}\n\
         Added to the repository: {} ({} stored, {} packs)\n\
         processed {} files, {} in {:.1} s\n\
         {what}",
        c.new,
        c.changed,
        c.unchanged,
        if c.excluded > 0 {
            format!(", {} excluded", c.excluded)
        } else {
            String::new()
        },
        s.dirs,
        size(s.new_raw_bytes),
        size(s.new_stored_bytes),
        s.packs,
        s.files,
        size(s.bytes),
        s.duration_ms as f64 / 1000.0,
    );
    emit(json, value, &text)
}
