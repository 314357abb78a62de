//! What the server keeps in an agent's repository for a run while it lasts, and
//! removes after.
//!
//! - A backup: the repository's shared lock (FORMAT.md §23), taken by the server when
//!   the agent claims the run, renewed while it runs, removed when it ends. The agent's
//!   URLs are create-only and cannot delete, so it could neither refresh nor release a
//!   lock of its own; with the server holding it, prune (the server's, under an
//!   exclusive lock) never runs beside a backup.
//! - A restore or verify: a full key file made for the run alone, its key-encryption
//!   key handed to the agent in the work item (and kept nowhere else), removed when the
//!   run ends, however it ends (completed, failed, cancelled, timed out, agent revoked).
//!
//! [`prepare`] runs at claim time; [`sweep`] on every scheduler tick finds what ended
//! runs still hold, and the locks due for renewal. Both record what they did in the
//! run's row, so a restart of the server loses nothing: the next sweep finishes it.

use std::collections::BTreeMap;

use base64::Engine as _;
use coffer_adapters::catalogue::rusqlite::{params, OptionalExtension};
use coffer_adapters::catalogue::RepositoryId;
use coffer_adapters::repo::keys::Access;
use coffer_adapters::repo::locks::{self, Lock, LockInfo, REFRESH_SECS};
use coffer_adapters::repo::Repository;
use coffer_core::SecretKey;
use coffer_protocol::secret::Secret;

use crate::db::agents::{self, DestinationRow};
use crate::db::runs::{RunKind, RunRow};
use crate::db::{backends, now};
use crate::error::{ApiError, ApiResult};
use crate::keys;
use crate::repos;
use crate::state::AppState;

/// The host a server-held lock names.
fn lock_host(run_id: i64) -> String {
    format!("coffer-server run {run_id}")
}

fn lock_info(run_id: i64) -> LockInfo {
    LockInfo {
        exclusive: false,
        host: lock_host(run_id),
        pid: std::process::id(),
        time: 0,
    }
}

fn id16(hex_id: &str) -> ApiResult<[u8; 16]> {
    hex::decode(hex_id)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ApiError::internal(format!("{hex_id:?} is not a stored ID")))
}

/// Which repository to open: an agent's (its destination's), or a destination's.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RepoOf {
    /// The repository of this agent's destination.
    Agent(i64),
    /// The repository of this destination.
    Destination(i64),
}

/// The destination, its backend and the server's key of its repository.
async fn repository_of(
    state: &AppState,
    of: RepoOf,
) -> ApiResult<(DestinationRow, Option<backends::BackendRow>, SecretKey)> {
    let st = state.clone();
    state
        .db
        .call(move |cat| {
            let dest = match of {
                RepoOf::Agent(id) => agents::destination_of_agent(cat.connection(), id)?,
                RepoOf::Destination(id) => agents::destination_by_id(cat.connection(), id)?,
            }
            .ok_or_else(|| ApiError::internal(format!("{of:?} has no destination")))?;
            let backend = match dest.backend_id {
                Some(id) => backends::backend(cat.connection(), id)?,
                None => None,
            };
            let (key, _) = keys::repository_key(
                cat,
                &st.kek,
                dest.tenant_id,
                RepositoryId(dest.repository_id),
            )?;
            Ok((dest, backend, key))
        })
        .await
}

/// Opens agent `agent_id`'s repository with the server's key and runs `f` on it, on a
/// blocking thread.
pub(crate) async fn with_repository<T: Send + 'static>(
    state: &AppState,
    agent_id: i64,
    f: impl FnOnce(&Repository, &SecretKey) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    with_repository_of(state, RepoOf::Agent(agent_id), f).await
}

/// Opens the repository `of` names with the server's key and runs `f` on it, on a
/// blocking thread.
pub(crate) async fn with_repository_of<T: Send + 'static>(
    state: &AppState,
    of: RepoOf,
    f: impl FnOnce(&Repository, &SecretKey) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let (dest, backend, key) = repository_of(state, of).await?;
    let st = state.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let store = st.stores.storage(backend.as_ref(), &st.kek)?;
        let repo = repos::open_full(store, &dest.prefix, &key)?;
        f(&repo, &key)
    })
    .await
    .map_err(ApiError::internal)?;
    // Storage and engine failures are 500s here; conflicts (a lock held) are not.
    if let Err(ApiError::Internal(_)) = &outcome {
        state.metrics.storage_error();
    }
    outcome
}

/// Prepares a run its agent just claimed: a backup's shared lock, or a restore's or
/// verify's key file, whose key-encryption key (base64) is returned for the work item.
///
/// # Errors
/// 409 `repository_locked` while prune holds the repository; 500 for storage and
/// database errors.
pub async fn prepare(state: &AppState, run: &RunRow) -> ApiResult<Option<Secret>> {
    let (run_id, kind) = (run.id, run.view.kind);
    // The run's destination: a restore may be done by an agent other than the one
    // that made the restore point.
    let of = RepoOf::Destination(run.view.destination_id.get());
    let prepared = with_repository_of(state, of, move |repo, server_key| {
        Ok(match kind {
            RunKind::Backup => {
                let lock = Lock::take(repo, false, &lock_host(run_id)).map_err(|e| match e {
                    coffer_adapters::Error::Locked { holder } => ApiError::Conflict {
                        code: "repository_locked",
                        message: format!("the repository is locked: {holder}"),
                    },
                    other => ApiError::internal(other),
                })?;
                let (id, _) = lock.detach();
                (Some(hex::encode(id)), None)
            }
            RunKind::Restore | RunKind::Verify => {
                let (kek, file) = repos::add_key(repo, Access::Full, server_key)?;
                let encoded = base64::engine::general_purpose::STANDARD.encode(kek.expose_secret());
                (None, Some((file, Secret::new(encoded))))
            }
        })
    })
    .await?;
    let (lock_id, key) = prepared;
    let key_file = key.as_ref().map(|(file, _)| file.clone());
    let at = now();
    state
        .db
        .call(move |cat| {
            cat.connection().execute(
                "UPDATE runs SET lock_id = ?2, run_key_file = ?3, access_renewed_at = ?4
                 WHERE id = ?1",
                params![run_id, lock_id, key_file, at],
            )?;
            Ok(())
        })
        .await?;
    Ok(key.map(|(_, secret)| secret))
}

/// Adds a new write-only key file for agent `agent_id` and removes its previous one
/// (`old`); returns the new file's key-encryption key and ID.
///
/// # Errors
/// 500 for storage and database errors.
pub async fn reissue_agent_key(
    state: &AppState,
    agent_id: i64,
    old: Option<String>,
) -> ApiResult<(SecretKey, repos::KeyFileId)> {
    with_repository(state, agent_id, move |repo, server_key| {
        let new = repos::add_key(repo, Access::WriteOnly, server_key)?;
        if let Some(old) = old {
            repos::remove_key(repo, &old)?;
        }
        Ok(new)
    })
    .await
}

/// Removes the write-only key files of revoked agents: their keys then open nothing.
/// Returns how many went; one whose storage is away now stays for the next call.
///
/// # Errors
/// Database errors.
pub async fn remove_revoked_keys(state: &AppState) -> ApiResult<usize> {
    let revoked: Vec<(i64, String)> = state
        .db
        .read(|conn| {
            let mut st = conn.prepare(
                "SELECT id, key_file FROM agents
                 WHERE revoked_at IS NOT NULL AND key_file IS NOT NULL",
            )?;
            let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows
                .collect::<Result<_, _>>()
                .map_err(crate::db::DbError::from)?)
        })
        .await?;
    let mut removed = 0;
    for (agent, file) in revoked {
        let gone =
            with_repository(state, agent, move |repo, _| repos::remove_key(repo, &file)).await;
        if let Err(e) = gone {
            tracing::warn!("removing revoked agent {agent}'s key file: {e:?}");
            continue;
        }
        state
            .db
            .call(move |cat| {
                cat.connection()
                    .execute("UPDATE agents SET key_file = NULL WHERE id = ?1", [agent])?;
                Ok(())
            })
            .await?;
        removed += 1;
    }
    Ok(removed)
}

/// What a sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sweep {
    /// Locks of ended backups removed.
    pub locks_removed: usize,
    /// Key files of ended restores and verifies removed.
    pub keys_removed: usize,
    /// Locks of running backups renewed.
    pub locks_renewed: usize,
    /// Key files of revoked agents removed.
    pub agent_keys_removed: usize,
}

/// One run's holdings, as stored.
struct Held {
    run_id: i64,
    finished: bool,
    lock_id: Option<String>,
    key_file: Option<String>,
    renewed_at: i64,
}

/// Removes what ended runs hold and renews the locks of running backups that are due,
/// one repository at a time. A repository that cannot be reached now is left for the
/// next sweep.
///
/// # Errors
/// Database errors.
pub async fn sweep(state: &AppState) -> ApiResult<Sweep> {
    let at = now();
    let held: Vec<(i64, Held)> = state
        .db
        .read(move |conn| {
            let mut st = conn.prepare(
                "SELECT id, destination_id, status IN ('succeeded', 'failed'), lock_id, run_key_file,
                        coalesce(access_renewed_at, 0)
                 FROM runs WHERE lock_id IS NOT NULL OR run_key_file IS NOT NULL",
            )?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(1)?,
                    Held {
                        run_id: r.get(0)?,
                        finished: r.get(2)?,
                        lock_id: r.get(3)?,
                        key_file: r.get(4)?,
                        renewed_at: r.get(5)?,
                    },
                ))
            })?;
            Ok(rows
                .collect::<Result<_, _>>()
                .map_err(crate::db::DbError::from)?)
        })
        .await?;
    let mut by_destination: BTreeMap<i64, Vec<Held>> = BTreeMap::new();
    for (destination, h) in held {
        if h.finished || at - h.renewed_at >= REFRESH_SECS {
            by_destination.entry(destination).or_default().push(h);
        }
    }
    let mut sweep = Sweep {
        agent_keys_removed: remove_revoked_keys(state).await?,
        ..Sweep::default()
    };
    for (destination, runs) in by_destination {
        let of = RepoOf::Destination(destination);
        let done = with_repository_of(state, of, move |repo, _| {
            let mut done = Vec::new();
            for h in runs {
                if h.finished {
                    if let Some(lock) = &h.lock_id {
                        locks::remove(repo, &id16(lock)?).map_err(ApiError::internal)?;
                    }
                    if let Some(file) = &h.key_file {
                        repos::remove_key(repo, file)?;
                    }
                } else if let Some(lock) = &h.lock_id {
                    locks::renew(repo, &id16(lock)?, &mut lock_info(h.run_id))
                        .map_err(ApiError::internal)?;
                }
                done.push(h);
            }
            Ok(done)
        })
        .await;
        let done = match done {
            Ok(done) => done,
            Err(e) => {
                tracing::warn!(
                    "destination {destination}'s repository: {e:?}; left for the next sweep"
                );
                continue;
            }
        };
        for h in &done {
            if h.finished {
                sweep.locks_removed += usize::from(h.lock_id.is_some());
                sweep.keys_removed += usize::from(h.key_file.is_some());
            } else {
                sweep.locks_renewed += 1;
            }
        }
        let updates: Vec<(i64, bool)> = done.iter().map(|h| (h.run_id, h.finished)).collect();
        state
            .db
            .call(move |cat| {
                let conn = cat.connection();
                for (run, finished) in updates {
                    if finished {
                        conn.execute(
                            "UPDATE runs SET lock_id = NULL, run_key_file = NULL WHERE id = ?1",
                            [run],
                        )?;
                    } else {
                        conn.execute(
                            "UPDATE runs SET access_renewed_at = ?2 WHERE id = ?1",
                            params![run, at],
                        )?;
                    }
                }
                Ok(())
            })
            .await?;
    }
    Ok(sweep)
}

/// Whether run `id` still holds anything in storage (for tests and diagnostics).
///
/// # Errors
/// Database errors.
pub async fn holds(state: &AppState, id: i64) -> ApiResult<bool> {
    state
        .db
        .read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT 1 FROM runs WHERE id = ?1
                     AND (lock_id IS NOT NULL OR run_key_file IS NOT NULL)",
                    [id],
                    |_| Ok(()),
                )
                .optional()
                .map_err(crate::db::DbError::from)?
                .is_some())
        })
        .await
}
