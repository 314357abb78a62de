//! Locks (FORMAT.md §23): prune must not delete a blob that a backup running at the
//! same time has just deduplicated against. Backups hold shared locks, prune an
//! exclusive one; each writes its lock object first and lists the others after, so of
//! two that start together at least one sees the other (listing is strongly consistent
//! on S3 and on a folder). No conditional write is involved.
//!
//! A lock is `locks/<random id>`, a sealed stream under the index key (a write-only
//! key takes shared locks too), holding who took it and when. A lock not refreshed
//! for [`STALE_AFTER_SECS`] belongs to a process that died: it is ignored (and prune
//! removes it). Holders refresh theirs every [`REFRESH_SECS`].

use serde::{Deserialize, Serialize};

use super::config::names;
use super::object::{self, PlainKind};
use super::Repository;
use crate::Error;

/// A lock older than this is stale.
pub const STALE_AFTER_SECS: i64 = 30 * 60;
/// How often a holder rewrites its lock.
pub const REFRESH_SECS: i64 = 5 * 60;

/// A lock's content. Field order is the wire format (postcard).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Prune's (true) or a backup's (false).
    pub exclusive: bool,
    /// The host that holds it.
    pub host: String,
    /// Its process ID there.
    pub pid: u32,
    /// When it was (re)written, Unix seconds.
    pub time: i64,
}

/// A lock this process holds; released (deleted) by [`Lock::release`] or on drop.
pub struct Lock<'r> {
    repo: &'r Repository,
    id: [u8; 16],
    info: LockInfo,
    released: bool,
}

impl std::fmt::Debug for Lock<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock")
            .field("id", &hex::encode(self.id))
            .field("info", &self.info)
            .finish()
    }
}

/// The repository's clock (the system's, but in the reproducible mode of test vectors,
/// where a lock then never goes stale or needs a refresh while it is held).
fn now(repo: &Repository) -> i64 {
    repo.random().now().0
}

fn write(repo: &Repository, id: &[u8; 16], info: &LockInfo) -> Result<(), Error> {
    let name = names::lock(id);
    let plain = postcard::to_allocvec(info).map_err(|e| Error::RepoFormat {
        object: name.clone(),
        reason: e.to_string(),
    })?;
    let context = object::plain_context(PlainKind::Lock, repo.id(), &name);
    let sealed = object::seal_bytes_with(
        &mut repo.random().rng(),
        repo.keys().index_key(),
        &context,
        &plain,
    )?;
    let key = repo.object(&name)?;
    repo.store().put(
        &key,
        &mut sealed.as_slice(),
        crate::storage::PutMode::Overwrite,
    )?;
    Ok(())
}

/// Every lock in the repository that opens and decodes, with its ID. One that does not
/// is reported as a held exclusive lock of unknown origin (safe: it blocks prune).
///
/// # Errors
/// Storage errors listing them.
pub fn list(repo: &Repository) -> Result<Vec<([u8; 16], LockInfo)>, Error> {
    let mut out = Vec::new();
    for (id, name) in repo.list_ids("locks")? {
        let sealed = match repo.get(&name, 4096) {
            Ok(s) => Some(s),
            // Released between the listing and now: it holds nothing any more.
            Err(Error::NotFound { .. }) => continue,
            Err(_) => None,
        };
        let info = sealed.and_then(|sealed| {
            let context = object::plain_context(PlainKind::Lock, repo.id(), &name);
            let plain = object::open_bytes(repo.keys().index_key(), &context, &sealed).ok()?;
            let (info, rest) = postcard::take_from_bytes::<LockInfo>(&plain).ok()?;
            rest.is_empty().then_some(info)
        });
        out.push((
            id,
            info.unwrap_or(LockInfo {
                exclusive: true,
                host: "(unreadable lock)".to_owned(),
                pid: 0,
                time: now(repo),
            }),
        ));
    }
    Ok(out)
}

impl<'r> Lock<'r> {
    /// Takes a lock: writes it, then refuses (removing it again) if a live lock that
    /// conflicts is there: any live lock for an exclusive one, a live exclusive lock for
    /// a shared one.
    ///
    /// # Errors
    /// [`Error::Locked`] naming the holder; storage errors.
    pub fn take(repo: &'r Repository, exclusive: bool, host: &str) -> Result<Self, Error> {
        let id = repo.random().id();
        let info = LockInfo {
            exclusive,
            host: host.to_owned(),
            pid: std::process::id(),
            time: now(repo),
        };
        write(repo, &id, &info)?;
        let lock = Lock {
            repo,
            id,
            info,
            released: false,
        };
        let at = now(repo);
        for (other, theirs) in list(repo)? {
            if other == id || at - theirs.time > STALE_AFTER_SECS {
                continue;
            }
            if exclusive || theirs.exclusive {
                let holder = format!(
                    "{} lock of {} (pid {}), {} s old",
                    if theirs.exclusive {
                        "an exclusive"
                    } else {
                        "a shared"
                    },
                    theirs.host,
                    theirs.pid,
                    at - theirs.time
                );
                lock.release()?;
                return Err(Error::Locked { holder });
            }
        }
        Ok(lock)
    }

    /// Rewrites the lock if it is due, so it does not go stale while held.
    ///
    /// # Errors
    /// Storage errors.
    pub fn refresh(&mut self) -> Result<(), Error> {
        if now(self.repo) - self.info.time >= REFRESH_SECS {
            self.info.time = now(self.repo);
            write(self.repo, &self.id, &self.info)?;
        }
        Ok(())
    }

    /// Lets the lock outlive this handle: it stays in storage, and its holder renews it
    /// ([`renew`]) and removes it ([`remove`]) by ID. For a holder that keeps locks
    /// across requests, as the lite server does for the backups it dispatches.
    #[must_use]
    pub fn detach(mut self) -> ([u8; 16], LockInfo) {
        self.released = true;
        (self.id, self.info.clone())
    }

    /// Removes the lock.
    ///
    /// # Errors
    /// Storage errors.
    pub fn release(mut self) -> Result<(), Error> {
        self.released = true;
        self.repo
            .store()
            .delete(&self.repo.object(&names::lock(&self.id))?)
    }
}

impl Drop for Lock<'_> {
    fn drop(&mut self) {
        if !self.released {
            if let Ok(key) = self.repo.object(&names::lock(&self.id)) {
                let _ = self.repo.store().delete(&key);
            }
        }
    }
}

/// Rewrites detached lock `id` with `info` at the current time, so it does not go
/// stale ([`Lock::detach`]).
///
/// # Errors
/// Storage errors.
pub fn renew(repo: &Repository, id: &[u8; 16], info: &mut LockInfo) -> Result<(), Error> {
    info.time = now(repo);
    write(repo, id, info)
}

/// Removes detached lock `id` ([`Lock::detach`]); one already gone is not an error.
///
/// # Errors
/// Storage errors.
pub fn remove(repo: &Repository, id: &[u8; 16]) -> Result<(), Error> {
    match repo.store().delete(&repo.object(&names::lock(id))?) {
        Err(Error::NotFound { .. }) | Ok(()) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Removes stale locks (prune does, holding its own exclusive lock); returns how many.
///
/// # Errors
/// Storage errors.
pub fn remove_stale(repo: &Repository) -> Result<usize, Error> {
    let at = now(repo);
    let mut removed = 0;
    for (id, info) in list(repo)? {
        if at - info.time > STALE_AFTER_SECS {
            repo.store().delete(&repo.object(&names::lock(&id))?)?;
            removed += 1;
        }
    }
    Ok(removed)
}
