//! The destinations' deduplicated repositories (FORMAT.md Part II), as the server keeps
//! them: one per destination, in its `repo/` folder.
//!
//! Who holds what: the server opens the repository's full key file with the secret it
//! keeps wrapped under the KEK (the catalogue's repository key serves as that file's
//! key-encryption key). Each agent gets a write-only key file of its own, unlocked by a
//! random key-encryption key only the agent keeps: it can add backups and deduplicate
//! against them, and open nothing stored. A restore or verify run gets a full key file
//! made for that run alone, removed when the run ends. Revoking an agent removes its
//! key file.
//!
//! Everything here does storage I/O: call it from blocking threads.

use std::sync::Arc;

use coffer_adapters::repo::keyfile::Unlock;
use coffer_adapters::repo::keys::Access;
use coffer_adapters::repo::{InitOptions, Repository};
use coffer_adapters::storage::Storage;
use coffer_core::passphrase::Argon2Params;
use coffer_core::SecretKey;
use rand_core::OsRng;

use crate::error::{ApiError, ApiResult};

/// The repository's folder under a destination's prefix.
pub const REPO_FOLDER: &str = "repo";

/// A key file's ID, as the database keeps it (32 hex digits).
pub type KeyFileId = String;

/// Where the repository of the destination at `dest_prefix` lives.
pub fn repo_prefix(dest_prefix: &str) -> String {
    format!("{dest_prefix}/{REPO_FOLDER}")
}

fn engine(what: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("{what}: {e}"))
}

/// Creates the repository of a new destination, its full key file unlocked by
/// `server_kek` (the catalogue's repository key).
///
/// # Errors
/// 500 for storage and engine errors.
pub fn init(
    store: Arc<dyn Storage>,
    dest_prefix: &str,
    server_kek: &SecretKey,
) -> ApiResult<Repository> {
    Repository::init_with(
        store,
        &repo_prefix(dest_prefix),
        &Unlock::Kek(copy_key(server_kek)),
        // Unused: the key file is wrapped under a key, not a passphrase.
        Argon2Params::DEFAULT,
        InitOptions::default(),
    )
    .map_err(|e| engine("creating the repository", e))
}

/// Opens the repository with the server's full key.
///
/// # Errors
/// 500 for storage and engine errors.
pub fn open_full(
    store: Arc<dyn Storage>,
    dest_prefix: &str,
    server_kek: &SecretKey,
) -> ApiResult<Repository> {
    Repository::open(
        store,
        &repo_prefix(dest_prefix),
        &Unlock::Kek(copy_key(server_kek)),
    )
    .map_err(|e| engine("opening the repository", e))
}

/// Adds a key file of `access` unlocked by a fresh random key-encryption key, and
/// returns that key and the file's ID. A full key file needs the master key, which
/// `server_kek` opens.
///
/// # Errors
/// 500 for storage and engine errors.
pub fn add_key(
    repo: &Repository,
    access: Access,
    server_kek: &SecretKey,
) -> ApiResult<(SecretKey, KeyFileId)> {
    let kek = SecretKey::generate(&mut OsRng);
    let unlock = Unlock::Kek(copy_key(&kek));
    let id = match access {
        Access::Full => {
            let master = repo
                .master_from(&Unlock::Kek(copy_key(server_kek)))
                .map_err(|e| engine("reading the master key", e))?;
            repo.add_full_key(&master, &unlock, Argon2Params::DEFAULT)
        }
        Access::WriteOnly => repo.add_key(Access::WriteOnly, &unlock, Argon2Params::DEFAULT),
    }
    .map_err(|e| engine("adding a key file", e))?;
    Ok((kek, hex::encode(id)))
}

/// Removes key file `id` (a revoked agent's, a finished run's). One already gone is
/// not an error.
///
/// # Errors
/// 500 for storage and engine errors, and for an ID that is not one.
pub fn remove_key(repo: &Repository, id: &str) -> ApiResult<()> {
    let raw: [u8; 16] = hex::decode(id)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| ApiError::internal(format!("{id:?} is not a key file ID")))?;
    let present = repo
        .list_keys()
        .map_err(|e| engine("listing key files", e))?
        .iter()
        .any(|k| k.id == raw);
    if !present {
        return Ok(());
    }
    repo.remove_key(&raw)
        .map_err(|e| engine("removing a key file", e))
}

/// A second handle on a key (`SecretKey` is deliberately not `Clone`) for a task that
/// outlives the borrow; both are wiped on drop.
pub(crate) fn copy_key(key: &SecretKey) -> SecretKey {
    SecretKey::from_bytes(*key.expose_secret())
}
