//! Repositories: where they live, how they are unlocked, and their catalogue.
//!
//! A repository is a folder (`--repo /srv/backups`) or a bucket prefix
//! (`--repo s3://bucket/prefix`). Its objects, under the prefix (`data` in a folder):
//! - `keys/repository`: the repository key's envelope, a passphrase envelope
//!   (`COFFER/P`) or a key-wrap envelope under a key file (`COFFER/K`), purpose
//!   `repository`, context `coffer/cli`. The repository key itself is random; changing
//!   the passphrase or key file rewraps this envelope and nothing else.
//! - `backups/NAME.archive` or `backups/NAME.stream`, and `backups/NAME.manifest`.
//!
//! The catalogue (SQLite) indexes them: `catalogue.sqlite` in a folder repository, a
//! cache file for S3. It can always be rebuilt from the objects (with the key, to read
//! the manifests), and is, whenever it is missing.

use std::io::Read;
use std::path::{Path, PathBuf};

use coffer_adapters::catalogue::{
    Backup, BackupSummary, Catalogue, NewBackup, NewRepository, Repository,
};
use coffer_adapters::pipeline::{self, BackupKind};
use coffer_adapters::storage::{LocalStorage, ObjectKey, S3Config, S3Storage, Storage};
use coffer_core::envelope::{KeyEnvelope, Purpose};
use coffer_core::passphrase::PassphraseEnvelope;
use coffer_core::SecretKey;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::args::{RepoArgs, SecretArgs};
use crate::exit::{CliError, Result};
use crate::keys::{self, Detected, ENVELOPE_CONTEXT};
use crate::secrets::{self, PassphraseSpec, PASSPHRASE_ENV};

/// The name of the one repository a CLI catalogue holds.
const REPOSITORY_NAME: &str = "default";
/// The object prefix inside a folder repository.
const LOCAL_PREFIX: &str = "data";
/// The object prefix in a bucket when `s3://bucket` names none.
pub(crate) const DEFAULT_S3_PREFIX: &str = "coffer";
/// The catalogue file of a folder repository.
pub(crate) const CATALOGUE_FILE: &str = "catalogue.sqlite";

/// An open repository.
pub(crate) struct Repo {
    /// Where it is, as shown: `local:/abs/path` or `s3://bucket/prefix`.
    pub(crate) location: String,
    /// Its objects.
    pub(crate) store: Box<dyn Storage>,
    /// The prefix its objects live under.
    pub(crate) prefix: ObjectKey,
    /// Its catalogue.
    pub(crate) catalogue: Catalogue,
    /// Its catalogue row, once known.
    pub(crate) repository: Option<Repository>,
}

/// A repository's location, parsed.
pub(crate) enum Location {
    Folder(PathBuf),
    S3 { bucket: String, prefix: String },
}

pub(crate) fn parse_location(repo: &str) -> Result<Location> {
    if let Some(rest) = repo.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(CliError::Usage(format!("{repo}: no bucket name")));
        }
        let prefix = prefix.trim_end_matches('/');
        let prefix = if prefix.is_empty() {
            DEFAULT_S3_PREFIX
        } else {
            prefix
        };
        return Ok(Location::S3 {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        });
    }
    if repo.contains("://") {
        return Err(CliError::Usage(format!(
            "{repo}: a repository is a folder or s3://bucket/prefix"
        )));
    }
    Ok(Location::Folder(PathBuf::from(repo)))
}

/// S3 settings: `KEY=VALUE` lines of a config file, overridden by the environment.
fn s3_setting(file: &[(String, Zeroizing<String>)], name: &str) -> Option<Zeroizing<String>> {
    std::env::var(name)
        .ok()
        .map(Zeroizing::new)
        .or_else(|| file.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
}

fn read_s3_config(path: Option<&Path>) -> Result<Vec<(String, Zeroizing<String>)>> {
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    let bytes = secrets::read_secret_file(path)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| CliError::Usage(format!("{}: not UTF-8 text", path.display())))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            // The line may hold a secret: name it by number only.
            return Err(CliError::Usage(format!(
                "{} line {}: expected KEY=VALUE",
                path.display(),
                n + 1
            )));
        };
        out.push((k.trim().to_owned(), Zeroizing::new(v.trim().to_owned())));
    }
    Ok(out)
}

pub(crate) fn s3_storage(bucket: &str, config_file: Option<&Path>) -> Result<S3Storage> {
    let file = read_s3_config(config_file)?;
    let get = |names: &[&str]| names.iter().find_map(|n| s3_setting(&file, n));
    let missing = |what: &str| {
        CliError::Usage(format!(
            "S3: {what} is not set (environment or --s3-config file)"
        ))
    };
    let endpoint = get(&["COFFER_S3_ENDPOINT"]).ok_or_else(|| missing("COFFER_S3_ENDPOINT"))?;
    let region = get(&["COFFER_S3_REGION", "AWS_REGION"])
        .unwrap_or_else(|| Zeroizing::new("us-east-1".into()));
    let access = get(&["COFFER_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"])
        .ok_or_else(|| missing("COFFER_S3_ACCESS_KEY_ID (or AWS_ACCESS_KEY_ID)"))?;
    let secret = get(&["COFFER_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"])
        .ok_or_else(|| missing("COFFER_S3_SECRET_ACCESS_KEY (or AWS_SECRET_ACCESS_KEY)"))?;
    let mut config = S3Config::new(
        endpoint.as_str(),
        region.as_str(),
        bucket,
        access.as_str(),
        secret.as_str(),
    );
    config.path_style = get(&["COFFER_S3_VIRTUAL_HOSTED"]).is_none_or(|v| v.as_str() != "1");
    Ok(S3Storage::new(&config)?)
}

/// The default catalogue of an S3 repository: a cache file named after the location.
fn s3_catalogue_path(location: &str, bucket: &str) -> Result<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .ok_or_else(|| {
            CliError::Usage("no cache folder ($XDG_CACHE_HOME, $HOME): give --catalogue".into())
        })?;
    let dir = base.join("coffer");
    std::fs::create_dir_all(&dir)
        .map_err(|e| CliError::io(format!("creating {}", dir.display()), e))?;
    let digest = Sha256::digest(location.as_bytes());
    Ok(dir.join(format!("s3-{bucket}-{}.sqlite", hex::encode(&digest[..8]))))
}

impl Repo {
    /// Opens the repository (creating its folder and catalogue if `create`).
    ///
    /// # Errors
    /// [`CliError::NotFound`] if there is no repository there (unless `create`);
    /// [`CliError::Exists`] if `create` and there is one; usage, I/O and catalogue
    /// errors.
    pub(crate) fn open(args: &RepoArgs, create: bool) -> Result<Repo> {
        let (location, store, prefix, catalogue_path): (String, Box<dyn Storage>, _, _) =
            match parse_location(&args.repo)? {
                Location::Folder(path) => {
                    // Checked before the folder is opened as a store (which creates it
                    // and sweeps it for temporaries): a mistyped --repo must not touch
                    // someone's home folder.
                    let envelope = path.join(LOCAL_PREFIX).join("keys/repository");
                    if !create && !envelope.is_file() {
                        return Err(CliError::NotFound(format!(
                            "no Coffer repository at {}: run coffer init",
                            path.display()
                        )));
                    }
                    if create && !envelope.exists() {
                        let occupied = std::fs::read_dir(&path)
                            .map(|mut d| d.next().is_some())
                            .unwrap_or(false);
                        if occupied {
                            return Err(CliError::Exists(format!(
                                "{} is not empty: a new repository needs an empty or new folder",
                                path.display()
                            )));
                        }
                    }
                    let store = LocalStorage::open(&path)?;
                    let abs = std::fs::canonicalize(&path)
                        .map_err(|e| CliError::io(format!("opening {}", path.display()), e))?;
                    (
                        format!("local:{}", abs.display()),
                        Box::new(store),
                        LOCAL_PREFIX.to_owned(),
                        path.join(CATALOGUE_FILE),
                    )
                }
                Location::S3 { bucket, prefix } => {
                    let store = s3_storage(&bucket, args.s3_config.as_deref())?;
                    let location = format!("s3://{bucket}/{prefix}");
                    let catalogue = s3_catalogue_path(&location, &bucket)?;
                    (location, Box::new(store), prefix, catalogue)
                }
            };
        let prefix = ObjectKey::new(prefix)?;
        let exists = store.head(&envelope_key(&prefix)?)?.is_some();
        if create && exists {
            return Err(CliError::Exists(format!(
                "{location} already holds a Coffer repository"
            )));
        }
        if !create && !exists {
            return Err(CliError::NotFound(format!(
                "no Coffer repository at {location} (no key envelope): run coffer init"
            )));
        }
        let catalogue_path = args.catalogue.clone().unwrap_or(catalogue_path);
        let catalogue = Catalogue::open(&catalogue_path)?;
        let repository = catalogue.repository_by_name(REPOSITORY_NAME)?;
        Ok(Repo {
            location,
            store,
            prefix,
            catalogue,
            repository,
        })
    }

    /// Stores `envelope` as the repository's key envelope and records the repository.
    ///
    /// # Errors
    /// [`CliError::Exists`] if a repository is there already; storage and catalogue
    /// errors.
    pub(crate) fn init(&mut self, envelope: &[u8], key: &SecretKey) -> Result<()> {
        let key_object = envelope_key(&self.prefix)?;
        self.store.put(
            &key_object,
            &mut &envelope[..],
            coffer_adapters::storage::PutMode::CreateOnly,
        )?;
        if let Some(stale) = self.repository.take() {
            // A catalogue left by an earlier repository at this place: start afresh.
            for b in self.catalogue.backups(stale.id)? {
                self.catalogue.delete_backup(b.id)?;
            }
            self.catalogue.delete_repository(stale.id)?;
        }
        self.repository = Some(self.catalogue.create_repository(
            &NewRepository {
                name: REPOSITORY_NAME,
                location: &self.location,
                suite: coffer_core::Suite::Aes256Gcm,
                key_id: key.id(),
            },
            &[envelope],
        )?);
        Ok(())
    }

    /// The repository key envelope as stored.
    ///
    /// # Errors
    /// Storage errors; [`CliError::Corrupt`] for an object too large to be one.
    pub(crate) fn envelope(&self) -> Result<Vec<u8>> {
        let key = envelope_key(&self.prefix)?;
        let mut bytes = Vec::new();
        self.store
            .get(&key)?
            .take(4096)
            .read_to_end(&mut bytes)
            .map_err(|e| CliError::io(format!("reading {key}"), e))?;
        Ok(bytes)
    }

    /// Replaces the key envelope (a rewrap): the object first, then the catalogue.
    ///
    /// # Errors
    /// Storage and catalogue errors.
    pub(crate) fn replace_envelope(&mut self, envelope: &[u8]) -> Result<()> {
        let key = envelope_key(&self.prefix)?;
        self.store.put(
            &key,
            &mut &envelope[..],
            coffer_adapters::storage::PutMode::Overwrite,
        )?;
        if let Some(repository) = &self.repository {
            self.catalogue
                .rewrap_all(repository.id, |_| Ok(envelope.to_vec()))?;
        }
        Ok(())
    }

    /// Opens the key envelope with the secret given (key file, or passphrase from its
    /// file, the environment or a prompt) and returns the repository key.
    ///
    /// # Errors
    /// [`CliError::WrongKey`] for a wrong key file or passphrase; [`CliError::Usage`]
    /// if the kind of secret given does not fit the envelope; [`CliError::Corrupt`].
    pub(crate) fn unlock(&self, secret: &SecretArgs) -> Result<SecretKey> {
        let envelope = self.envelope()?;
        let what = format!("unlocking {}", self.location);
        let key = match keys::detect(&envelope) {
            Detected::KeyEnvelope => {
                let Some(key_file) = &secret.key_file else {
                    let kek = KeyEnvelope::decode(&envelope)
                        .map(|e| e.kek_id.to_string())
                        .unwrap_or_else(|_| "?".into());
                    return Err(CliError::Usage(format!(
                        "{} is locked with the key file of ID {kek}: give --key-file",
                        self.location
                    )));
                };
                let kek = keys::read_key_file(key_file)?;
                keys::unwrap_kek(&envelope, &kek, Purpose::RepositoryKey, ENVELOPE_CONTEXT)
            }
            Detected::PassphraseEnvelope => {
                PassphraseEnvelope::decode(&envelope)
                    .map_err(|e| CliError::from(e).context(&what))?;
                if secret.key_file.is_some() {
                    return Err(CliError::Usage(format!(
                        "{} is locked with a passphrase, not a key file: give \
                         --passphrase-file or set {PASSPHRASE_ENV}",
                        self.location
                    )));
                }
                let phrase = secrets::passphrase(PassphraseSpec {
                    file: secret.passphrase_file.as_deref(),
                    env: PASSPHRASE_ENV,
                    prompt: "Repository passphrase",
                    confirm: false,
                })?;
                keys::unwrap_passphrase(
                    &envelope,
                    &phrase,
                    Purpose::RepositoryKey,
                    ENVELOPE_CONTEXT,
                )
            }
            _ => Err(CliError::Corrupt(
                "the key envelope is not a Coffer envelope".into(),
            )),
        }
        .map_err(|e| e.context(&what))?;
        if let Some(repository) = &self.repository {
            if repository.key_id != key.id() {
                return Err(CliError::Corrupt(format!(
                    "the catalogue belongs to another repository (key {}, not {}): \
                     move it away to rebuild it",
                    repository.key_id,
                    key.id()
                )));
            }
        }
        Ok(key)
    }

    /// The catalogue row, rebuilding the catalogue from the stored objects if it is
    /// missing (which needs the key, to read the manifests).
    ///
    /// # Errors
    /// As [`Repo::unlock`]; storage and catalogue errors.
    pub(crate) fn repository(
        &mut self,
        secret: &SecretArgs,
        key: Option<&SecretKey>,
    ) -> Result<Repository> {
        if let Some(r) = &self.repository {
            return Ok(r.clone());
        }
        let unlocked;
        let key = match key {
            Some(k) => k,
            None => {
                eprintln!(
                    "coffer: no catalogue for {}: rebuilding it from storage",
                    self.location
                );
                unlocked = self.unlock(secret)?;
                &unlocked
            }
        };
        self.rebuild(key)
    }

    fn rebuild(&mut self, key: &SecretKey) -> Result<Repository> {
        let envelope = self.envelope()?;
        let repository = self.catalogue.create_repository(
            &NewRepository {
                name: REPOSITORY_NAME,
                location: &self.location,
                suite: coffer_core::Suite::Aes256Gcm,
                key_id: key.id(),
            },
            &[&envelope],
        )?;
        let listed = self.store.list(&format!("{}/backups", self.prefix))?;
        let provider = coffer_adapters::default_provider();
        for meta in &listed {
            let Some(name) = meta
                .key
                .as_str()
                .rsplit('/')
                .next()
                .and_then(|n| n.strip_suffix(".manifest"))
            else {
                continue;
            };
            let manifest = match pipeline::read_manifest(
                &provider,
                self.store.as_ref(),
                &self.prefix,
                name,
                key,
            ) {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("coffer: skipping backup {name:?}: {}", CliError::from(e));
                    continue;
                }
            };
            let (archive_key, manifest_key) = pipeline::object_keys(&self.prefix, name)?;
            let data_key = match pipeline::backup_kind(self.store.as_ref(), &self.prefix, name) {
                Ok(BackupKind::Archive) => archive_key,
                Ok(BackupKind::Stream) => pipeline::stream_key(&self.prefix, name)?,
                Err(_) => {
                    eprintln!("coffer: skipping backup {name:?}: its data object is missing");
                    continue;
                }
            };
            let data_size = self.store.head(&data_key)?.map_or(0, |m| m.size);
            let summary = BackupSummary {
                entry_count: manifest.entries.len() as u64,
                content_bytes: manifest.content_bytes,
                archive_len: manifest.archive_len,
                compressed_len: manifest.compressed_len,
                stored_bytes: data_size + meta.size,
            };
            self.catalogue.record_backup(
                &NewBackup {
                    repository_id: repository.id,
                    name,
                    archive_key: &data_key,
                    manifest_key: &manifest_key,
                    host: &manifest.host,
                    created_at: manifest.created,
                    key_id: key.id(),
                },
                manifest.created,
                &summary,
            )?;
        }
        self.repository = Some(repository.clone());
        Ok(repository)
    }

    /// The backup named `name`, from the catalogue.
    ///
    /// # Errors
    /// [`CliError::NotFound`]; catalogue errors.
    pub(crate) fn backup(
        &mut self,
        secret: &SecretArgs,
        key: Option<&SecretKey>,
        name: &str,
    ) -> Result<Backup> {
        let repository = self.repository(secret, key)?;
        self.catalogue
            .backup_by_name(repository.id, name)?
            .ok_or_else(|| {
                CliError::NotFound(format!("no backup named {name:?} in {}", self.location))
            })
    }
}

/// The key envelope's object.
fn envelope_key(prefix: &ObjectKey) -> Result<ObjectKey> {
    Ok(prefix.join("keys/repository")?)
}

/// Whether a backup's data object is a stream (a command's output).
pub(crate) fn is_stream(backup: &Backup) -> bool {
    backup.archive_key.as_str().ends_with(".stream")
}
