//! `coffer init`, `coffer list`, `coffer prune`, and `coffer key rewrap --repo`.

use std::collections::HashSet;

use coffer_adapters::catalogue::{Backup, BackupStatus};
use coffer_core::envelope::Purpose;
use coffer_core::SecretKey;
use serde_json::{json, Value};

use crate::args::{InitArgs, ListArgs, PruneArgs, RepoArgs, RewrapArgs, SecretArgs};
use crate::calendar;
use crate::exit::{CliError, Result};
use crate::key_cmd::{unwrap_any, wrap_new};
use crate::keys::{self, ENVELOPE_CONTEXT};
use crate::output::emit;
use crate::repo::{is_stream, Repo};
use crate::secrets::{self, PassphraseSpec, PASSPHRASE_ENV};

/// `coffer init`.
///
/// # Errors
/// [`CliError::Exists`] if a repository is there; secret, storage, catalogue errors.
pub(crate) fn init(args: &InitArgs, json: bool) -> Result<()> {
    // The secret first: a missing passphrase or key file must not leave a half-made
    // repository folder behind.
    let key = SecretKey::generate(&mut rand_core::OsRng);
    let (envelope, locked_with) = match &args.secret.key_file {
        Some(path) => {
            let kek = keys::read_key_file(path)?;
            (
                keys::wrap_kek(&key, &kek, Purpose::RepositoryKey, ENVELOPE_CONTEXT)?,
                format!("key file {}", kek.id()),
            )
        }
        None => {
            let phrase = secrets::passphrase(PassphraseSpec {
                file: args.secret.passphrase_file.as_deref(),
                env: PASSPHRASE_ENV,
                prompt: "New repository passphrase",
                confirm: true,
            })?;
            (
                keys::wrap_passphrase(&key, &phrase, Purpose::RepositoryKey, ENVELOPE_CONTEXT)?,
                "passphrase".to_owned(),
            )
        }
    };
    let mut repo = Repo::open(&args.repo, true)?;
    repo.init(&envelope, &key)?;
    emit(
        json,
        json!({"repository": repo.location, "key_id": key.id().to_string(),
               "locked_with": locked_with}),
        &format!(
            "created repository {} (repository key {}, locked with {locked_with})",
            repo.location,
            key.id()
        ),
    )
}

fn status(s: BackupStatus) -> &'static str {
    match s {
        BackupStatus::Running => "running",
        BackupStatus::Complete => "complete",
        BackupStatus::Failed => "failed",
    }
}

fn backup_json(b: &Backup) -> Value {
    json!({
        "name": b.name,
        "kind": if is_stream(b) { "command" } else { "files" },
        "created": calendar::rfc3339(b.created_at),
        "created_unix": b.created_at,
        "status": status(b.status),
        "host": b.host,
        "key_id": b.key_id.to_string(),
        "entries": b.summary.map(|s| s.entry_count),
        "content_bytes": b.summary.map(|s| s.content_bytes),
        "stored_bytes": b.summary.map(|s| s.stored_bytes),
    })
}

/// Bytes for people: `1.5 MiB`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `coffer list`.
///
/// # Errors
/// Not found, catalogue and (when rebuilding) secret errors.
pub(crate) fn list(args: &ListArgs, json: bool) -> Result<()> {
    let mut repo = Repo::open(&args.repo, false)?;
    let repository = repo.repository(&args.secret, None)?;
    let backups = repo.catalogue.backups(repository.id)?;
    let mut text = format!(
        "{:<20}  {:<30}  {:>10}  {:>10}  {:<8}  {:<7}  KEY ID",
        "CREATED (UTC)", "NAME", "CONTENT", "STORED", "STATUS", "KIND"
    );
    for b in &backups {
        let size = |f: fn(&coffer_adapters::catalogue::BackupSummary) -> u64| {
            b.summary.map_or("-".into(), |s| human_bytes(f(&s)))
        };
        text.push_str(&format!(
            "\n{:<20}  {:<30}  {:>10}  {:>10}  {:<8}  {:<7}  {}",
            calendar::rfc3339(b.created_at),
            b.name,
            size(|s| s.content_bytes),
            size(|s| s.stored_bytes),
            status(b.status),
            if is_stream(b) { "command" } else { "files" },
            b.key_id
        ));
    }
    if backups.is_empty() {
        text = format!("no backups in {}", repo.location);
    }
    emit(
        json,
        json!({"repository": repo.location,
               "backups": backups.iter().map(backup_json).collect::<Vec<_>>()}),
        &text,
    )
}

/// Which backups a policy keeps, given complete backups newest first.
pub(crate) fn kept(backups: &[Backup], args: &PruneArgs) -> HashSet<i64> {
    let mut keep = HashSet::new();
    if let Some(n) = args.keep_last {
        keep.extend(backups.iter().take(n as usize).map(|b| b.id.0));
    }
    let mut by_period = |n: Option<u32>, period: &dyn Fn(i64) -> (i64, i64)| {
        let Some(n) = n else { return };
        let mut seen = HashSet::new();
        for b in backups {
            if seen.len() == n as usize {
                break;
            }
            // The newest backup of each period, for the newest `n` periods.
            if seen.insert(period(b.created_at)) {
                keep.insert(b.id.0);
            }
        }
    };
    by_period(args.keep_daily, &|t| (calendar::day(t), 0));
    by_period(args.keep_weekly, &|t| {
        let (y, w) = calendar::iso_week(t);
        (y, i64::from(w))
    });
    by_period(args.keep_monthly, &|t| {
        let (y, m) = calendar::month(t);
        (y, i64::from(m))
    });
    keep
}

/// `coffer prune`.
///
/// # Errors
/// [`CliError::Usage`] without any `--keep-*`; catalogue and storage errors.
pub(crate) fn prune(args: &PruneArgs, json: bool) -> Result<()> {
    if args.keep_last.is_none()
        && args.keep_daily.is_none()
        && args.keep_weekly.is_none()
        && args.keep_monthly.is_none()
    {
        return Err(CliError::Usage(
            "prune needs a policy: --keep-last, --keep-daily, --keep-weekly or --keep-monthly"
                .into(),
        ));
    }
    let mut repo = Repo::open(&args.repo, false)?;
    let repository = repo.repository(&args.secret, None)?;
    // Only complete backups count and go; running and failed ones are left alone.
    let complete: Vec<Backup> = repo
        .catalogue
        .backups(repository.id)?
        .into_iter()
        .filter(|b| b.status == BackupStatus::Complete)
        .collect();
    let keep = kept(&complete, args);
    let (kept, gone): (Vec<&Backup>, Vec<&Backup>) =
        complete.iter().partition(|b| keep.contains(&b.id.0));
    let names = |v: &[&Backup]| v.iter().map(|b| b.name.clone()).collect::<Vec<_>>();
    if !args.dry_run && !gone.is_empty() {
        let ids: Vec<_> = gone.iter().map(|b| b.id).collect();
        // Rows first, then objects: a crash in between leaves unreferenced objects,
        // never rows that point at nothing.
        let deleted = repo.catalogue.prune(repository.id, &ids)?;
        for b in &deleted {
            repo.store.delete(&b.manifest_key)?;
            repo.store.delete(&b.archive_key)?;
        }
    }
    let verb = if args.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    let mut text = format!("kept {}, {verb} {}", kept.len(), gone.len());
    for b in &gone {
        text.push_str(&format!(
            "\n  {verb} {} ({})",
            b.name,
            calendar::rfc3339(b.created_at)
        ));
    }
    emit(
        json,
        json!({"dry_run": args.dry_run, "kept": names(&kept), "deleted": names(&gone)}),
        &text,
    )
}

/// `coffer key rewrap --repo`: the repository's key envelope under a new passphrase
/// or key file. The repository key stays, so every backup stays readable.
///
/// # Errors
/// Secret, storage and catalogue errors.
pub(crate) fn rewrap(args: &RewrapArgs, json: bool) -> Result<()> {
    let repo_args = RepoArgs {
        repo: args.repo.clone().unwrap_or_default(),
        catalogue: args.catalogue.clone(),
        s3_config: std::env::var_os("COFFER_S3_CONFIG").map(std::path::PathBuf::from),
    };
    let mut repo = Repo::open(&repo_args, false)?;
    let old = repo.envelope()?;
    let (key, purpose) = unwrap_any(
        &old,
        args.passphrase_file.as_deref(),
        args.kek_file.as_deref(),
        &repo.location,
    )?;
    let secret = SecretArgs {
        key_file: None,
        passphrase_file: None,
    };
    repo.repository(&secret, Some(&key))?;
    let new = wrap_new(
        &key,
        purpose,
        args.new_passphrase_file.as_deref(),
        args.new_kek_file.as_deref(),
    )?;
    repo.replace_envelope(&new)?;
    emit(
        json,
        json!({"repository": repo.location, "key_id": key.id().to_string()}),
        &format!("rewrapped the key of {} (key {})", repo.location, key.id()),
    )
}
