//! An opened repository: its storage and prefix, configuration, keys and (loaded on
//! demand) index; creating one, its key files, listing and loading its objects; and,
//! when asked for, its local object cache ([`Repository::with_cache`]).

pub(crate) mod local_cache;

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use coffer_core::chunker::ChunkerParams;
use coffer_core::passphrase::Argon2Params;
use coffer_core::SecretKey;

use super::config::{names, ChunkerSizes, Config, CONFIG_NAME};
use super::index::{IndexFile, MemIndex};
use super::keyfile::{self, Unlock};
use super::keys::{derive, Access, RepoKeys};
use super::object::{self, PlainKind, RepoId, SealedKind};
use super::pack::BlobKind;
use super::random::{Reproducible, Source};
use super::snapshot::Snapshot;
use crate::storage::{ObjectKey, PutMode, Storage};
use crate::Error;
use local_cache::{LocalCache, TreeKey, OBJECT_DIRS};

/// The largest index object a reader loads.
pub const MAX_INDEX_OBJECT: u64 = 256 << 20;
/// The largest snapshot or key file object a reader loads.
const MAX_SMALL_OBJECT: u64 = 16 << 20;

/// A repository opened with one key file.
pub struct Repository {
    store: Arc<dyn Storage>,
    prefix: String,
    config: Config,
    keys: RepoKeys,
    key_file: [u8; 16],
    random: Source,
    cache: Option<LocalCache>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("prefix", &self.prefix)
            .field("id", &hex::encode(self.config.id))
            .field("keys", &self.keys)
            .field("cache", &self.cache.as_ref().map(LocalCache::root))
            .finish_non_exhaustive()
    }
}

/// How to create a repository ([`Repository::init_with`]).
#[derive(Debug)]
pub struct InitOptions {
    /// The chunker's parameters, within FORMAT.md §13.1's bounds; recorded in the
    /// configuration, and used by every backup into the repository.
    pub chunker: ChunkerSizes,
    /// Test vectors only: every random choice and clock reading of the repository from
    /// the caller (see [`Reproducible`]). A repository made with it is as secret as the
    /// seed of its generator.
    #[doc(hidden)]
    pub reproducible: Option<Reproducible>,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            chunker: ChunkerSizes::V2,
            reproducible: None,
        }
    }
}

/// A key file as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyListing {
    /// Its ID (object name).
    pub id: [u8; 16],
    /// Full or write-only.
    pub access: Access,
    /// Passphrase or key file.
    pub passphrase: bool,
    /// Whether it is the one this repository was opened with.
    pub current: bool,
}

impl Repository {
    /// Creates a repository under `prefix` (which must hold no configuration) with a
    /// fresh master key, and its first (full) key file.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] if a repository is there; storage and core errors.
    pub fn init(
        store: Arc<dyn Storage>,
        prefix: &str,
        unlock: &Unlock,
        params: Argon2Params,
    ) -> Result<Self, Error> {
        Self::init_with(store, prefix, unlock, params, InitOptions::default())
    }

    /// [`Repository::init`] with other chunker parameters (and, for test vectors, the
    /// reproducible mode).
    ///
    /// # Errors
    /// [`Error::Core`] `ParameterOutOfBounds` for chunker parameters outside FORMAT.md
    /// §13.1's bounds, before anything is written; as [`Repository::init`].
    pub fn init_with(
        store: Arc<dyn Storage>,
        prefix: &str,
        unlock: &Unlock,
        params: Argon2Params,
        options: InitOptions,
    ) -> Result<Self, Error> {
        let sizes = options.chunker;
        ChunkerParams::new(sizes.min_size, sizes.mask_bits, sizes.max_size)?;
        let random = Source::new(options.reproducible);
        let master = random.key();
        let keys = RepoKeys::full(&master);
        let config = Config {
            id: random.id(),
            chunker: sizes,
            public: keys.public().clone(),
            created: random.now().0,
        };
        let key_file = random.id();
        let file = keyfile::make_with(
            &mut random.rng(),
            &config.id,
            Access::Full,
            &master,
            unlock,
            params,
        )?;
        let repo = Repository {
            store,
            prefix: prefix.trim_end_matches('/').to_owned(),
            config,
            keys,
            key_file,
            random,
            cache: None,
        };
        // The key file first: a configuration without a way in would be useless.
        repo.put(&names::key(&key_file), &file)?;
        let sealed = repo
            .config
            .seal_with(&mut repo.random.rng(), repo.keys.config_key())?;
        repo.put(CONFIG_NAME, &sealed)?;
        Ok(repo)
    }

    /// Opens the repository under `prefix` with the first key file `unlock` opens.
    ///
    /// # Errors
    /// [`Error::NotFound`] without a configuration; [`Error::Core`] `WrongPassphrase`
    /// (or `WrongKey`) when no key file opens; storage errors.
    pub fn open(store: Arc<dyn Storage>, prefix: &str, unlock: &Unlock) -> Result<Self, Error> {
        let prefix = prefix.trim_end_matches('/').to_owned();
        let probe = Repository::bare(Arc::clone(&store), &prefix);
        let stored = probe.get(CONFIG_NAME, 4096)?;
        let id = Config::peek_id(&stored)?;
        let mut last_error = None;
        for (key_id, name) in probe.list_ids("keys")? {
            let file = match probe.get(&name, 4096) {
                Ok(file) => file,
                // Removed since the listing (a revoked key): it opens nothing now.
                Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            match keyfile::open(&name, &file, &id, unlock) {
                Ok(Some((access, secret))) => {
                    let keys = match access {
                        Access::Full => RepoKeys::full(&secret),
                        Access::WriteOnly => {
                            // The public key comes from the configuration, which only
                            // the writer secret's config key opens (storage cannot
                            // substitute its own).
                            let config_key = derive(&secret, super::keys::CONFIG_LABEL);
                            let config = Config::open(&stored, &config_key)?;
                            RepoKeys::write_only(secret, config.public)
                        }
                    };
                    let config = Config::open(&stored, keys.config_key())?;
                    if access == Access::Full && &config.public != keys.public() {
                        return Err(Error::RepoFormat {
                            object: CONFIG_NAME.to_owned(),
                            reason: "its public key is not the master key's".to_owned(),
                        });
                    }
                    return Ok(Repository {
                        store,
                        prefix,
                        config,
                        keys,
                        key_file: key_id,
                        random: Source::default(),
                        cache: None,
                    });
                }
                Ok(None) => {}
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or(Error::Core(coffer_core::Error::WrongPassphrase)))
    }

    fn bare(store: Arc<dyn Storage>, prefix: &str) -> Repository {
        // Placeholder keys and config for listing and reading before a key opens.
        let keys = RepoKeys::write_only(
            SecretKey::from_bytes([0; 32]),
            super::recipient::RecipientPublic::from_bytes([0; 32]),
        );
        Repository {
            store,
            prefix: prefix.to_owned(),
            config: Config {
                id: [0; 16],
                chunker: ChunkerSizes::V2,
                public: keys.public().clone(),
                created: 0,
            },
            keys,
            key_file: [0; 16],
            random: Source::default(),
            cache: None,
        }
    }

    /// This repository with a local object cache under `dir` (FORMAT.md §22.1), in
    /// `dir/<repository ID hex>/`: index objects and snapshots are kept whole, tree
    /// blobs as the sealed bytes their reads fetched, so a command over a mostly
    /// unchanged repository reads them from storage once.
    ///
    /// The cache is never trusted: an entry is opened and authenticated like storage's
    /// copy, and deleted (the object read from storage again) if it does not open; it is
    /// used only for an object the latest listing names (trees: the latest
    /// [`Repository::load_index`]), and the entries of objects no longer listed are
    /// deleted at that listing. Nothing about the cache is ever an error: a cache that
    /// cannot be written or read only costs storage reads.
    #[must_use]
    pub fn with_cache(mut self, dir: PathBuf) -> Self {
        self.cache = Some(LocalCache::new(&dir, &self.config.id));
        self
    }

    /// The local object cache, if [`Repository::with_cache`] set one.
    pub(crate) fn local_cache(&self) -> Option<&LocalCache> {
        self.cache.as_ref()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The keys this repository was opened with.
    pub fn keys(&self) -> &RepoKeys {
        &self.keys
    }

    /// The repository ID.
    pub fn id(&self) -> &RepoId {
        &self.config.id
    }

    /// The storage.
    pub fn store(&self) -> &Arc<dyn Storage> {
        &self.store
    }

    /// Where this repository's random choices and clock readings come from.
    pub(crate) fn random(&self) -> &Source {
        &self.random
    }

    /// The full object key of `name` under the prefix.
    ///
    /// # Errors
    /// [`Error::InvalidKey`].
    pub fn object(&self, name: &str) -> Result<ObjectKey, Error> {
        if self.prefix.is_empty() {
            ObjectKey::new(name)
        } else {
            ObjectKey::new(format!("{}/{name}", self.prefix))
        }
    }

    /// Writes `name` once (create-only where the storage honours it; names are random
    /// or content-derived, so correctness never rests on that).
    ///
    /// # Errors
    /// Storage errors.
    pub fn put(&self, name: &str, bytes: &[u8]) -> Result<(), Error> {
        let key = self.object(name)?;
        self.store
            .put(&key, &mut &bytes[..], PutMode::CreateOnly)
            .map(|_| ())
    }

    /// Reads `name` whole, refusing more than `limit` bytes.
    ///
    /// # Errors
    /// Storage errors; [`Error::RepoFormat`] over the limit.
    pub fn get(&self, name: &str, limit: u64) -> Result<Vec<u8>, Error> {
        let key = self.object(name)?;
        let mut out = Vec::new();
        self.store
            .get(&key)?
            .take(limit + 1)
            .read_to_end(&mut out)
            .map_err(|e| Error::io(format!("reading {key}"), e))?;
        if out.len() as u64 > limit {
            return Err(Error::RepoFormat {
                object: key.to_string(),
                reason: format!("larger than {limit} bytes"),
            });
        }
        Ok(out)
    }

    /// The IDs and names of the objects under `dir` (`keys`, `index`, `snapshots`,
    /// `data`, `locks`) whose names end in an ID; anything else there is ignored.
    ///
    /// # Errors
    /// Storage errors.
    pub fn list_ids(&self, dir: &str) -> Result<Vec<([u8; 16], String)>, Error> {
        let full = if self.prefix.is_empty() {
            format!("{dir}/")
        } else {
            format!("{}/{dir}/", self.prefix)
        };
        let strip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let mut out: Vec<([u8; 16], String)> = self
            .store
            .list(&full)?
            .into_iter()
            .filter_map(|m| {
                let name = m.key.as_str().get(strip..)?.to_owned();
                names::id_of(&name).map(|id| (id, name))
            })
            .collect();
        out.sort();
        if let (Some(cache), Some(dir)) =
            (&self.cache, OBJECT_DIRS.iter().copied().find(|d| *d == dir))
        {
            cache.listed(dir, out.iter().map(|(id, _)| *id).collect());
        }
        Ok(out)
    }

    /// Adds a key file wrapping this repository's master key (`Access::Full`, only
    /// from a full key) or its writer secret (`Access::WriteOnly`); returns its ID.
    ///
    /// # Errors
    /// [`Error::WriteOnlyKey`] for a full key asked of a write-only one.
    pub fn add_key(
        &self,
        access: Access,
        unlock: &Unlock,
        params: Argon2Params,
    ) -> Result<[u8; 16], Error> {
        let secret = match access {
            Access::Full => {
                return Err(Error::RepoFormat {
                    object: "keys".to_owned(),
                    reason: "a full key file needs the master key: use add_full_key".to_owned(),
                })
            }
            Access::WriteOnly => SecretKey::from_bytes(*self.keys.writer().expose_secret()),
        };
        let id = self.random.id();
        let file = keyfile::make_with(
            &mut self.random.rng(),
            &self.config.id,
            access,
            &secret,
            unlock,
            params,
        )?;
        self.put(&names::key(&id), &file)?;
        Ok(id)
    }

    /// Adds a full key file, given the master key (which only a full key file holds:
    /// open it again with `master_from`).
    ///
    /// # Errors
    /// As [`Repository::add_key`].
    pub fn add_full_key(
        &self,
        master: &SecretKey,
        unlock: &Unlock,
        params: Argon2Params,
    ) -> Result<[u8; 16], Error> {
        let candidate = RepoKeys::full(master);
        if candidate.public() != self.keys.public() || candidate.writer() != self.keys.writer() {
            return Err(Error::RepoFormat {
                object: "keys".to_owned(),
                reason: "that master key is not this repository's".to_owned(),
            });
        }
        let id = self.random.id();
        let file = keyfile::make_with(
            &mut self.random.rng(),
            &self.config.id,
            Access::Full,
            master,
            unlock,
            params,
        )?;
        self.put(&names::key(&id), &file)?;
        Ok(id)
    }

    /// The master key, from a full key file and its unlock.
    ///
    /// # Errors
    /// [`Error::WriteOnlyKey`] if the file opened is write-only.
    pub fn master_from(&self, unlock: &Unlock) -> Result<SecretKey, Error> {
        let name = names::key(&self.key_file);
        let file = self.get(&name, 4096)?;
        match keyfile::open(&name, &file, &self.config.id, unlock)? {
            Some((Access::Full, master)) => Ok(master),
            Some((Access::WriteOnly, _)) => Err(Error::WriteOnlyKey),
            None => Err(Error::Core(coffer_core::Error::WrongPassphrase)),
        }
    }

    /// The key files, without their secrets.
    ///
    /// # Errors
    /// Storage errors; a malformed key file.
    pub fn list_keys(&self) -> Result<Vec<KeyListing>, Error> {
        let mut out = Vec::new();
        for (id, name) in self.list_ids("keys")? {
            let file = match self.get(&name, 4096) {
                Ok(file) => file,
                // Removed since the listing.
                Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let info = keyfile::inspect(&name, &file)?;
            out.push(KeyListing {
                id,
                access: info.access,
                passphrase: info.passphrase,
                current: id == self.key_file,
            });
        }
        Ok(out)
    }

    /// Removes a key file; never the one in use, nor the last full one.
    ///
    /// # Errors
    /// [`Error::RepoFormat`] saying which rule refused it.
    pub fn remove_key(&self, id: &[u8; 16]) -> Result<(), Error> {
        let keys = self.list_keys()?;
        let refuse = |reason: &str| Error::RepoFormat {
            object: names::key(id),
            reason: reason.to_owned(),
        };
        let Some(target) = keys.iter().find(|k| &k.id == id) else {
            return Err(refuse("no such key file"));
        };
        if target.current {
            return Err(refuse(
                "the repository is open with this key: use another to remove it",
            ));
        }
        let full = keys.iter().filter(|k| k.access == Access::Full).count();
        if target.access == Access::Full && full == 1 {
            return Err(refuse("the last full key cannot be removed"));
        }
        self.store.delete(&self.object(&names::key(id))?)
    }

    /// Loads every index object into a memory index, skipping superseded ones.
    ///
    /// # Errors
    /// Storage and core errors; a malformed index.
    pub fn load_index(&self) -> Result<MemIndex, Error> {
        let mut files = Vec::new();
        for (id, name) in self.list_ids("index")? {
            match self.read_index(&name) {
                Ok(f) => files.push((id, f)),
                // Deleted since the listing: a prune replaced it by an index that
                // lists everything it did (and is in this listing or a later one).
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let superseded: std::collections::HashSet<[u8; 16]> = files
            .iter()
            .flat_map(|(_, f)| f.supersedes.iter().copied())
            .collect();
        let mut index = MemIndex::new();
        let mut trees = Vec::new();
        for (id, file) in &files {
            if !superseded.contains(id) {
                index.add_file(file);
                if self.cache.is_some() {
                    trees.extend(file.packs.iter().flat_map(|p| {
                        p.entries
                            .iter()
                            .filter(|e| e.kind == BlobKind::Tree)
                            .map(|e| TreeKey::new(p.id, e.offset, e.stored_len))
                    }));
                }
            }
        }
        index.merge_pending();
        if let Some(cache) = &self.cache {
            cache.set_trees(trees);
        }
        Ok(index)
    }

    /// Reads one index object.
    ///
    /// # Errors
    /// As [`Repository::load_index`].
    pub fn read_index(&self, name: &str) -> Result<IndexFile, Error> {
        let context = object::plain_context(PlainKind::Index, &self.config.id, name);
        self.get_opened(name, MAX_INDEX_OBJECT, |sealed| {
            let plain = object::open_bytes(self.keys.index_key(), &context, sealed)?;
            IndexFile::decode(name, &plain)
        })
    }

    /// Writes an index object; returns its ID.
    ///
    /// # Errors
    /// Storage and core errors.
    pub fn write_index(&self, file: &IndexFile) -> Result<[u8; 16], Error> {
        let id = self.random.id();
        let name = names::index(&id);
        let context = object::plain_context(PlainKind::Index, &self.config.id, &name);
        let sealed = object::seal_bytes_with(
            &mut self.random.rng(),
            self.keys.index_key(),
            &context,
            &file.encode(),
        )?;
        self.put(&name, &sealed)?;
        if let Some(cache) = &self.cache {
            cache.added("index", &id, &sealed);
        }
        Ok(id)
    }

    /// Writes a snapshot; returns its ID.
    ///
    /// # Errors
    /// Storage and core errors.
    pub fn write_snapshot(&self, snapshot: &Snapshot) -> Result<[u8; 16], Error> {
        let id = self.random.id();
        let name = names::snapshot(&id);
        let sealed = object::seal_to_with(
            &mut self.random.rng(),
            self.keys.public(),
            SealedKind::Snapshot,
            &self.config.id,
            &name,
            &snapshot.encode()?,
        )?;
        self.put(&name, &sealed)?;
        if let Some(cache) = &self.cache {
            cache.added("snapshots", &id, &sealed);
        }
        Ok(id)
    }

    /// Reads a snapshot (full keys only).
    ///
    /// # Errors
    /// [`Error::WriteOnlyKey`]; storage, core and format errors.
    pub fn read_snapshot(&self, id: &[u8; 16]) -> Result<Snapshot, Error> {
        let secret = self.keys.recipient()?;
        let name = names::snapshot(id);
        self.get_opened(&name, MAX_SMALL_OBJECT, |sealed| {
            let plain =
                object::open_from(secret, SealedKind::Snapshot, &self.config.id, &name, sealed)?;
            Snapshot::decode(&name, &plain)
        })
    }

    /// Every snapshot, oldest first (full keys only).
    ///
    /// # Errors
    /// As [`Repository::read_snapshot`].
    pub fn snapshots(&self) -> Result<Vec<([u8; 16], Snapshot)>, Error> {
        self.keys.recipient()?;
        let mut out = Vec::new();
        for (id, _) in self.list_ids("snapshots")? {
            match self.read_snapshot(&id) {
                Ok(s) => out.push((id, s)),
                // Forgotten since the listing.
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by_key(|(_, s)| (s.time, s.time_ns));
        Ok(out)
    }

    /// The snapshot whose ID starts with `prefix` (hex), if exactly one does.
    ///
    /// # Errors
    /// [`Error::RepoFormat`] for none or several.
    pub fn find_snapshot(&self, prefix: &str) -> Result<[u8; 16], Error> {
        let found: Vec<[u8; 16]> = self
            .list_ids("snapshots")?
            .into_iter()
            .filter(|(id, _)| hex::encode(id).starts_with(&prefix.to_ascii_lowercase()))
            .map(|(id, _)| id)
            .collect();
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(Error::RepoFormat {
                object: "snapshots".to_owned(),
                reason: format!("no snapshot {prefix}"),
            }),
            _ => Err(Error::RepoFormat {
                object: "snapshots".to_owned(),
                reason: format!("{prefix} names {} snapshots: give more digits", found.len()),
            }),
        }
    }
}

impl Repository {
    /// Object `name` read whole (at most `limit` bytes) and opened by `open`: from the
    /// local cache when it has an entry that opens (one that does not is deleted), else
    /// from storage (and then kept in the cache).
    fn get_opened<T>(
        &self,
        name: &str,
        limit: u64,
        open: impl Fn(&[u8]) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let slot = self
            .cache
            .as_ref()
            .and_then(|cache| cache_slot(name).map(|(dir, id)| (cache, dir, id)));
        if let Some((cache, dir, id)) = slot {
            if let Some(sealed) = cache.object(dir, &id, limit) {
                match open(&sealed) {
                    Ok(value) => return Ok(value),
                    Err(_) => cache.drop_object(dir, &id),
                }
            }
        }
        let sealed = self.get(name, limit)?;
        let value = open(&sealed)?;
        if let Some((cache, dir, id)) = slot {
            cache.store_object(dir, &id, &sealed);
        }
        Ok(value)
    }
}

/// The cache folder and ID of an object the cache keeps whole (an index object or a
/// snapshot, by its canonical name).
fn cache_slot(name: &str) -> Option<(&'static str, [u8; 16])> {
    let id = names::id_of(name)?;
    if name == names::index(&id) {
        Some(("index", id))
    } else if name == names::snapshot(&id) {
        Some(("snapshots", id))
    } else {
        None
    }
}
