//! The commands on deduplicated repositories (FORMAT.md Part II): where a repository
//! is, how it is unlocked, and which snapshot a command means. Each command lives in a
//! module of its own below.

pub(crate) mod args;
pub(crate) mod backup_cmd;
pub(crate) mod browse;
pub(crate) mod keys_cmd;
pub(crate) mod maintain;
pub(crate) mod mount;
pub(crate) mod restore_cmd;
pub(crate) mod snapshots_cmd;

use std::path::Path;
use std::sync::Arc;

use coffer_adapters::repo::keyfile::Unlock;
use coffer_adapters::repo::snapshot::Snapshot;
use coffer_adapters::repo::Repository;
use coffer_adapters::storage::{LocalStorage, Storage};
use zeroize::Zeroizing;

use crate::exit::{CliError, Result};
use crate::repo::{parse_location, s3_storage, Location};
use crate::secrets::{self, PassphraseSpec};

use self::args::RepoOpts;

/// The environment variable a passphrase is read from when no file is given.
pub(crate) const PASSWORD_ENV: &str = "COFFER_PASSWORD";

/// The storage and object prefix of `--repo`: a folder (its objects at its top), or
/// `s3://bucket/prefix`.
fn storage(opts: &RepoOpts, create: bool) -> Result<(Arc<dyn Storage>, String)> {
    match parse_location(&opts.repo)? {
        Location::Folder(dir) => {
            if create {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| CliError::io(format!("creating {}", dir.display()), e))?;
            } else if !dir.is_dir() {
                return Err(CliError::NotFound(format!(
                    "no repository at {}: the folder does not exist (create one with `coffer init`)",
                    dir.display()
                )));
            }
            let store = LocalStorage::open(&dir)?;
            Ok((Arc::new(store), String::new()))
        }
        Location::S3 { bucket, prefix } => {
            let store = s3_storage(&bucket, opts.s3_config.as_deref())?;
            Ok((Arc::new(store), prefix))
        }
    }
}

/// What unlocks the repository: the key file, else a passphrase (file, then
/// `$COFFER_PASSWORD`, then a prompt; asked twice if `confirm`).
pub(crate) fn unlock(opts: &RepoOpts, confirm: bool) -> Result<Unlock> {
    unlock_from(
        opts.key_file.as_deref(),
        opts.password_file.as_deref(),
        "Repository passphrase",
        confirm,
    )
}

/// An unlock from a key file or a passphrase source.
pub(crate) fn unlock_from(
    key_file: Option<&Path>,
    password_file: Option<&Path>,
    prompt: &str,
    confirm: bool,
) -> Result<Unlock> {
    if let Some(path) = key_file {
        return Ok(Unlock::Kek(crate::keys::read_key_file(path)?));
    }
    let phrase = secrets::passphrase(PassphraseSpec {
        file: password_file,
        env: PASSWORD_ENV,
        prompt,
        confirm,
    })?;
    Ok(Unlock::Passphrase(Zeroizing::new(
        phrase.as_bytes().to_vec(),
    )))
}

/// Opens the repository with its key (full or write-only), with the local object cache
/// at [`cache_dir`] unless `--no-cache` is given.
pub(crate) fn open(opts: &RepoOpts) -> Result<Repository> {
    let (store, prefix) = storage(opts, false)?;
    let unlock = unlock(opts, false)?;
    let repo = Repository::open(store, &prefix, &unlock)
        .map_err(|e| CliError::from(e).context(format!("opening the repository {}", opts.repo)))?;
    Ok(match cache_dir() {
        Some(dir) if !opts.no_cache => repo.with_cache(dir),
        _ => repo,
    })
}

/// Creates a repository; its first key comes from `opts`.
pub(crate) fn init(opts: &RepoOpts) -> Result<Repository> {
    let (store, prefix) = storage(opts, true)?;
    let unlock = unlock(opts, true)?;
    Ok(Repository::init(
        store,
        &prefix,
        &unlock,
        coffer_core::passphrase::Argon2Params::DEFAULT,
    )?)
}

/// Coffer's local cache folder: `$COFFER_CACHE_DIR`, else `$XDG_CACHE_HOME/coffer`,
/// else `~/.cache/coffer`; none if none of them is set. What is in it is sealed and
/// authenticated (FORMAT.md §22), never trusted, and rebuilt when lost.
pub(crate) fn cache_dir() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    std::env::var_os("COFFER_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("coffer")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/coffer")))
}

/// This machine's host name, as snapshots record it.
pub(crate) fn host_name() -> String {
    let uname = rustix::system::uname();
    uname.nodename().to_string_lossy().into_owned()
}

/// The snapshot a command names: `latest` (the newest, of `host` if given), or an ID
/// or a unique prefix of one.
pub(crate) fn select(
    repo: &Repository,
    which: &str,
    host: Option<&str>,
) -> Result<([u8; 16], Snapshot)> {
    if which == "latest" {
        let all = repo.snapshots()?;
        return all
            .into_iter()
            .rev()
            .find(|(_, s)| host.is_none_or(|h| s.host == h))
            .ok_or_else(|| CliError::NotFound("the repository has no snapshot yet".into()));
    }
    if which.len() < 4 || !which.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CliError::Usage(format!(
            "{which:?}: name a snapshot by `latest` or by its ID (at least 4 hex digits)"
        )));
    }
    let prefix = which.to_ascii_lowercase();
    let found: Vec<[u8; 16]> = repo
        .list_ids("snapshots")?
        .into_iter()
        .map(|(id, _)| id)
        .filter(|id| hex::encode(id).starts_with(&prefix))
        .collect();
    match found.as_slice() {
        [id] => Ok((*id, repo.read_snapshot(id)?)),
        [] => Err(CliError::NotFound(format!("no snapshot {which}"))),
        many => Err(CliError::Usage(format!(
            "{which} names {} snapshots: give more digits",
            many.len()
        ))),
    }
}

/// A snapshot ID as shown in lists: its first 8 hex digits.
pub(crate) fn short(id: &[u8; 16]) -> String {
    hex::encode(&id[..4])
}

/// A snapshot's time in the local time zone, as lists show it.
pub(crate) fn local_time(secs: i64) -> String {
    match jiff::Timestamp::from_second(secs) {
        Ok(t) => t
            .to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string(),
        Err(_) => secs.to_string(),
    }
}

/// A snapshot's time as RFC 3339 UTC, for `--json`.
pub(crate) fn rfc3339(secs: i64, ns: u32) -> String {
    jiff::Timestamp::new(secs, ns as i32).map_or_else(|_| secs.to_string(), |t| t.to_string())
}

/// A byte count for people: 1.5 GiB.
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A path recorded as raw bytes, for display.
pub(crate) fn shown(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}
