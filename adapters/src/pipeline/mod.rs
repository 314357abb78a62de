//! The backup pipeline: paths → tar → zstd frames → sealed stream → [`Storage`], and
//! back. Streaming in bounded memory whatever the input size; compression runs on a
//! pool of threads, sealing on another, so both cores are busy.
//!
//! A backup named `N` under prefix `P` is two write-once objects: `P/backups/N.archive`,
//! the sealed compressed tar stream, and `P/backups/N.manifest`, the sealed manifest
//! (summary, frame table, entries with SHA-256). The manifest is written last: a backup
//! without one is incomplete. Each object's name is bound into its sealing context, so
//! one backup's archive cannot be passed off as another's.
//!
//! A backup of one byte stream (a command's output) is `P/backups/N.stream` and its
//! manifest instead ([`backup_stream`], [`restore_stream`]); [`verify`] checks either
//! kind end to end without writing anything.

pub mod archive;
mod frames;
pub mod manifest;
mod restore;
mod stream;
mod verify;

use std::io::Read;
use std::path::PathBuf;

use coffer_core::provider::{ChunkCipher, CryptoProvider};
use coffer_core::{SecretKey, Suite};

pub use archive::Entry;
pub use frames::BLOCK_LEN;
pub use manifest::Manifest;
pub use restore::{restore, RestoreOptions, RestoreSummary};
pub use stream::{backup_kind, backup_stream, restore_stream, stream_key, BackupKind};
pub use verify::{verify, VerifySummary};

use crate::bridge::{OpenReader, SealReader};
use crate::storage::{ObjectKey, PutMode, Storage};
use crate::Error;

/// How to make a backup.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// Threads for compression, and again for sealing.
    pub threads: usize,
    /// zstd level.
    pub level: i32,
    /// The chunk AEAD.
    pub suite: Suite,
    /// The host name recorded in the manifest.
    pub host: String,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            level: 3,
            suite: Suite::Aes256Gcm,
            host: hostname(),
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// What a backup stored.
#[derive(Debug, Clone)]
pub struct BackupSummary {
    /// The archive object.
    pub archive_key: ObjectKey,
    /// The manifest object.
    pub manifest_key: ObjectKey,
    /// Sealed bytes stored (archive + manifest).
    pub stored_bytes: u64,
    /// The manifest that was stored.
    pub manifest: Manifest,
}

/// The objects of backup `name` under `prefix`.
///
/// # Errors
/// [`Error::InvalidKey`] if `name` is not a single valid key segment.
pub fn object_keys(prefix: &ObjectKey, name: &str) -> Result<(ObjectKey, ObjectKey), Error> {
    if name.contains('/') {
        return Err(Error::InvalidKey {
            key: name.into(),
            reason: "a backup name is one path segment",
        });
    }
    Ok((
        prefix.join(&format!("backups/{name}.archive"))?,
        prefix.join(&format!("backups/{name}.manifest"))?,
    ))
}

fn context(role: &str, name: &str) -> Vec<u8> {
    format!("coffer/{role}\0{name}").into_bytes()
}

/// Backs up `sources` as backup `name` under `prefix`, sealed under `key`.
///
/// # Errors
/// [`Error::AlreadyExists`] if the backup exists; [`Error::Io`] naming the path that
/// could not be read; storage errors. On error no manifest is written, and the archive
/// object is not written either unless the failure came after it was complete.
pub fn backup<P>(
    provider: &P,
    store: &dyn Storage,
    prefix: &ObjectKey,
    name: &str,
    key: &SecretKey,
    sources: &[PathBuf],
    options: &BackupOptions,
) -> Result<BackupSummary, Error>
where
    P: CryptoProvider,
    P::Cipher: ChunkCipher + Sync,
{
    let (archive_key, manifest_key) = object_keys(prefix, name)?;
    if store.head(&manifest_key)?.is_some() {
        return Err(Error::AlreadyExists { key: manifest_key });
    }
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (writer, frames) = frames::compressor(options.threads, options.level);
    let sources = sources.to_vec();
    // A failing archiver drops its writer unfinished, which ends the compressed stream
    // with an error, so the put below fails instead of storing a short archive.
    let producer = std::thread::spawn(move || {
        let (entries, writer) = archive::write_archive(&sources, writer)?;
        writer.finish()?;
        Ok::<_, std::io::Error>(entries)
    });
    let mut sealer = SealReader::new(
        provider,
        options.suite,
        key,
        &context("archive", name),
        frames,
        options.threads,
    )?;
    let stored = store.put(&archive_key, &mut sealer, PutMode::CreateOnly);
    // A failed put (storage gone mid-upload) leaves the compressed stream unread: drop
    // its reading end before waiting for the archiver, which would otherwise wait
    // forever for room to write; it then stops with a `BrokenPipe` error.
    let frames = match stored {
        Ok(_) => Some(sealer.into_inner()),
        Err(_) => {
            drop(sealer);
            None
        }
    };
    let produced = producer
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the archiver panicked")));
    let (entries, archive_stored, frames) = match (produced, stored, frames) {
        (Err(e), Err(stored), _) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            return Err(stored)
        }
        (Err(e), _, _) => return Err(Error::io("archiving the sources", e)),
        (Ok(_), Err(e), _) => return Err(e),
        (Ok(entries), Ok(n), Some(frames)) => (entries, n, frames),
        (Ok(_), Ok(_), None) => unreachable!("a stored archive kept its frames"),
    };
    let (archive_len, compressed_len) = frames.lengths();
    let manifest = Manifest {
        host: options.host.clone(),
        created,
        key_id: *key.id().as_bytes(),
        content_bytes: entries.iter().map(|e| e.size).sum(),
        archive_len,
        compressed_len,
        frames: frames.frames().to_vec(),
        entries,
    };
    let bytes = manifest.encode();
    let mut sealer = SealReader::new(
        provider,
        options.suite,
        key,
        &context("manifest", name),
        &bytes[..],
        1,
    )?;
    let manifest_stored = store.put(&manifest_key, &mut sealer, PutMode::CreateOnly)?;
    Ok(BackupSummary {
        archive_key,
        manifest_key,
        stored_bytes: archive_stored + manifest_stored,
        manifest,
    })
}

/// Reads and checks backup `name`'s manifest.
///
/// # Errors
/// [`Error::NotFound`]; [`Error::Core`] for a wrong key or damaged manifest.
pub fn read_manifest<P: CryptoProvider<Cipher: Sync>>(
    provider: &P,
    store: &dyn Storage,
    prefix: &ObjectKey,
    name: &str,
    key: &SecretKey,
) -> Result<Manifest, Error> {
    let (_, manifest_key) = object_keys(prefix, name)?;
    let mut reader = OpenReader::new(
        provider,
        key,
        &context("manifest", name),
        store.get(&manifest_key)?,
    )?;
    let mut bytes = Vec::new();
    reader.read_to_end(&mut bytes).map_err(|e| {
        crate::bridge::core_error(&e).map_or_else(
            || Error::io(format!("reading {manifest_key}"), e),
            Error::Core,
        )
    })?;
    Manifest::decode(&bytes)
}
