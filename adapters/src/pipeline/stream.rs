//! Backups of one byte stream (a command's output, a database dump), never touching the
//! local disk: stream → zstd frames → seal → storage, and back to any writer.
//!
//! A stream backup named `N` is `P/backups/N.stream` (sealed with context
//! `coffer/stream\0N`, so it cannot be passed off as an archive, nor an archive as it)
//! and `P/backups/N.manifest`, whose one entry is a file named `N` holding the stream's
//! length and SHA-256. The compressed stream is the raw bytes, not a tar: a tar header
//! needs the length before the data, which a pipe cannot give without spooling it.

use std::io::{self, Read, Write};

use coffer_core::provider::{ChunkCipher, CryptoProvider};
use coffer_core::record::EntryKind;
use coffer_core::SecretKey;
use sha2::{Digest, Sha256};

use super::{context, frames, object_keys, read_manifest, BackupOptions, BackupSummary};
use super::{Entry, Manifest};
use crate::bridge::{core_error, OpenReader, SealReader};
use crate::storage::{ObjectKey, PutMode, Storage};
use crate::Error;

/// Whether a stored backup is a tree of files or one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupKind {
    /// Files, directories and links, as a tar archive (`N.archive`).
    Archive,
    /// One byte stream (`N.stream`).
    Stream,
}

/// The data object of stream backup `name` under `prefix`.
///
/// # Errors
/// [`Error::InvalidKey`] if `name` is not a single valid key segment.
pub fn stream_key(prefix: &ObjectKey, name: &str) -> Result<ObjectKey, Error> {
    object_keys(prefix, name)?;
    prefix.join(&format!("backups/{name}.stream"))
}

/// Which kind backup `name` is, from the data object present.
///
/// # Errors
/// [`Error::NotFound`] (naming the manifest) if neither data object exists; storage
/// errors.
pub fn backup_kind(
    store: &dyn Storage,
    prefix: &ObjectKey,
    name: &str,
) -> Result<BackupKind, Error> {
    let (archive, manifest) = object_keys(prefix, name)?;
    if store.head(&archive)?.is_some() {
        return Ok(BackupKind::Archive);
    }
    if store.head(&stream_key(prefix, name)?)?.is_some() {
        return Ok(BackupKind::Stream);
    }
    Err(Error::NotFound { key: manifest })
}

/// Backs up everything `source` yields as stream backup `name` under `prefix`.
///
/// The stream must end cleanly: a read error from `source` (a command that exited
/// non-zero, reported by the caller's reader) fails the backup, and then neither the
/// data object nor the manifest is stored.
///
/// # Errors
/// [`Error::AlreadyExists`] if a backup of that name exists; [`Error::Io`] if `source`
/// fails; storage errors.
pub fn backup_stream<P>(
    provider: &P,
    store: &dyn Storage,
    prefix: &ObjectKey,
    name: &str,
    key: &SecretKey,
    source: &mut (dyn Read + Send),
    options: &BackupOptions,
) -> Result<BackupSummary, Error>
where
    P: CryptoProvider,
    P::Cipher: ChunkCipher + Sync,
{
    let (archive_key, manifest_key) = object_keys(prefix, name)?;
    let data_key = stream_key(prefix, name)?;
    for existing in [&manifest_key, &archive_key, &data_key] {
        if store.head(existing)?.is_some() {
            return Err(Error::AlreadyExists {
                key: existing.clone(),
            });
        }
    }
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (mut writer, frames) = frames::compressor(options.threads, options.level);
    let (produced, stored, frames) = std::thread::scope(|scope| {
        // As in `backup`: a failing source drops the writer unfinished, which ends the
        // compressed stream with an error, so the put fails instead of storing it short.
        let producer = scope.spawn(move || {
            let mut hashing = Hashing {
                inner: source,
                hash: Sha256::new(),
                len: 0,
            };
            io::copy(&mut hashing, &mut writer)?;
            writer.finish()?;
            Ok::<_, io::Error>((hashing.len, hashing.hash.finalize()))
        });
        let sealer = SealReader::new(
            provider,
            options.suite,
            key,
            &context("stream", name),
            frames,
            options.threads,
        );
        // As in `backup`: after a failed put, the reading end is dropped before the
        // producer is joined, so a producer waiting for room stops (`BrokenPipe`).
        let (stored, frames) = match sealer {
            Ok(mut sealer) => match store.put(&data_key, &mut sealer, PutMode::CreateOnly) {
                Ok(n) => (Ok(n), Some(sealer.into_inner())),
                Err(e) => {
                    drop(sealer);
                    (Err(e), None)
                }
            },
            Err(e) => (Err(e), None),
        };
        let produced = producer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the stream reader panicked")));
        (produced, stored, frames)
    });
    let ((len, digest), data_stored, frames) = match (produced, stored, frames) {
        (Err(e), Err(stored), _) if e.kind() == io::ErrorKind::BrokenPipe => return Err(stored),
        (Err(e), stored, _) => {
            // The put normally fails too; if the source failed after its last byte was
            // taken, the stored object must not stay behind a failed backup.
            if stored.is_ok() {
                let _ = store.delete(&data_key);
            }
            return Err(Error::io("reading the stream to back up", e));
        }
        (Ok(_), Err(e), _) => return Err(e),
        (Ok(_), Ok(_), None) => unreachable!("a stored stream had a sealer"),
        (Ok(p), Ok(n), Some(f)) => (p, n, f),
    };
    let (archive_len, compressed_len) = frames.lengths();
    let manifest = Manifest {
        host: options.host.clone(),
        created,
        key_id: *key.id().as_bytes(),
        content_bytes: len,
        archive_len,
        compressed_len,
        frames: frames.frames().to_vec(),
        entries: vec![Entry {
            path: name.as_bytes().to_vec(),
            kind: EntryKind::File,
            mode: 0o600,
            mtime: created,
            size: len,
            sha256: digest.into(),
            link_target: Vec::new(),
            archive_offset: 0,
        }],
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
    let manifest_stored = match store.put(&manifest_key, &mut sealer, PutMode::CreateOnly) {
        Ok(n) => n,
        // Another backup of the same name got there first: the data object under this
        // name may be the winner's (a store that ignored create-only let both puts
        // through), so it stays; the winner's manifest describes it.
        Err(e @ Error::AlreadyExists { .. }) => return Err(e),
        Err(e) => {
            let _ = store.delete(&data_key);
            return Err(e);
        }
    };
    Ok(BackupSummary {
        archive_key: data_key,
        manifest_key,
        stored_bytes: data_stored + manifest_stored,
        manifest,
    })
}

/// Writes stream backup `name` to `out`, returning its length. Every byte written has
/// passed its chunk's tag; the whole stream's length and SHA-256 are checked against
/// the manifest at the end, so the caller must treat the output as valid only when this
/// returns `Ok` (commit a file by renaming it only then).
///
/// # Errors
/// [`Error::NotFound`]; [`Error::Core`] for a wrong key or damaged data (including a
/// stream whose length or SHA-256 differs from the manifest's, as `MalformedRecord`);
/// [`Error::Io`] if `out` fails; storage errors.
pub fn restore_stream<P: CryptoProvider<Cipher: Sync>>(
    provider: &P,
    store: &dyn Storage,
    prefix: &ObjectKey,
    name: &str,
    key: &SecretKey,
    out: &mut dyn Write,
) -> Result<u64, Error> {
    let manifest = read_manifest(provider, store, prefix, name, key)?;
    let entry = stream_entry(&manifest)?;
    let data_key = stream_key(prefix, name)?;
    let sealed = store.get(&data_key)?;
    let read_error = |e: io::Error| {
        core_error(&e).map_or_else(|| Error::io(format!("reading {data_key}"), e), Error::Core)
    };
    let opened = OpenReader::new(provider, key, &context("stream", name), sealed)?;
    // An empty stream has no zstd frame at all, which the decoder takes for a cut one.
    let mut plain: Box<dyn Read> = if manifest.compressed_len == 0 {
        Box::new(opened)
    } else {
        Box::new(zstd::stream::read::Decoder::new(opened).map_err(read_error)?)
    };
    let mut hash = Sha256::new();
    let mut len = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = plain.read(&mut buf).map_err(read_error)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        len += n as u64;
        out.write_all(&buf[..n])
            .map_err(|e| Error::io("writing the restored stream", e))?;
    }
    // Read the sealed stream to its verified end: a truncated or extended object fails
    // here even when the decompressor saw a whole last frame.
    io::copy(&mut plain, &mut io::sink()).map_err(read_error)?;
    check_content(entry, len, &hash.finalize())?;
    out.flush()
        .map_err(|e| Error::io("writing the restored stream", e))?;
    Ok(len)
}

/// The one file entry of a stream backup's manifest.
pub(crate) fn stream_entry(manifest: &Manifest) -> Result<&Entry, Error> {
    match &manifest.entries[..] {
        [entry] if entry.kind == EntryKind::File => Ok(entry),
        _ => Err(Error::Core(coffer_core::Error::MalformedRecord {
            record: "manifest (a stream backup has exactly one file entry)",
        })),
    }
}

/// Checks content read back against its manifest entry.
pub(crate) fn check_content(entry: &Entry, len: u64, digest: &[u8]) -> Result<(), Error> {
    if len != entry.size || digest != entry.sha256 {
        return Err(Error::Core(coffer_core::Error::MalformedRecord {
            record: "manifest entry (content does not match its SHA-256)",
        }));
    }
    Ok(())
}

/// Hashes and counts what is read through it.
pub(crate) struct Hashing<R> {
    pub(crate) inner: R,
    pub(crate) hash: Sha256,
    pub(crate) len: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}
