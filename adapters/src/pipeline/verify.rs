//! Checking a stored backup end to end without writing anything: every chunk's tag, the
//! archive against the manifest entry by entry (path, kind, length, SHA-256, link
//! target), and the sealed stream to its verified end.

use std::io;

use coffer_core::provider::CryptoProvider;
use coffer_core::record::EntryKind;
use coffer_core::SecretKey;
use sha2::{Digest, Sha256};

use super::stream::{backup_kind, check_content, stream_entry, BackupKind, Hashing};
use super::{context, object_keys, read_manifest, restore_stream, Manifest};
use crate::bridge::{core_error, OpenReader};
use crate::storage::{ObjectKey, Storage};
use crate::Error;

/// What a verification read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifySummary {
    /// Archive or stream.
    pub kind: BackupKind,
    /// Entries checked (1 for a stream).
    pub entries: u64,
    /// Bytes of content hashed and compared.
    pub bytes: u64,
    /// The manifest, as read.
    pub manifest: Manifest,
}

/// Reads backup `name` (archive or stream) in full and checks it against its manifest.
///
/// # Errors
/// [`Error::NotFound`]; [`Error::Core`] for a wrong key or damaged data (a content
/// mismatch is `MalformedRecord`); [`Error::HostileArchivePath`] for an archive whose
/// entries do not match the manifest; storage errors.
pub fn verify<P: CryptoProvider<Cipher: Sync>>(
    provider: &P,
    store: &dyn Storage,
    prefix: &ObjectKey,
    name: &str,
    key: &SecretKey,
) -> Result<VerifySummary, Error> {
    match backup_kind(store, prefix, name)? {
        BackupKind::Stream => {
            let manifest = read_manifest(provider, store, prefix, name, key)?;
            stream_entry(&manifest)?;
            let bytes = restore_stream(provider, store, prefix, name, key, &mut io::sink())?;
            Ok(VerifySummary {
                kind: BackupKind::Stream,
                entries: 1,
                bytes,
                manifest,
            })
        }
        BackupKind::Archive => verify_archive(provider, store, prefix, name, key),
    }
}

fn verify_archive<P: CryptoProvider<Cipher: Sync>>(
    provider: &P,
    store: &dyn Storage,
    prefix: &ObjectKey,
    name: &str,
    key: &SecretKey,
) -> Result<VerifySummary, Error> {
    let manifest = read_manifest(provider, store, prefix, name, key)?;
    let (archive_key, _) = object_keys(prefix, name)?;
    let read_error = |e: io::Error| {
        core_error(&e).map_or_else(
            || Error::io(format!("reading {archive_key}"), e),
            Error::Core,
        )
    };
    let sealed = store.get(&archive_key)?;
    let opened = OpenReader::new(provider, key, &context("archive", name), sealed)?;
    let mut plain = zstd::stream::read::Decoder::new(opened).map_err(read_error)?;
    let mut bytes = 0u64;
    {
        let mut archive = tar::Archive::new(&mut plain);
        let mut expected = manifest.entries.iter();
        for entry in archive.entries().map_err(read_error)? {
            let mut entry = entry.map_err(read_error)?;
            let path = entry.path_bytes().into_owned();
            let meta = expected
                .next()
                .ok_or_else(|| hostile(&path, "not in the manifest"))?;
            if meta.path != path {
                return Err(hostile(&path, "does not match the manifest"));
            }
            let kind = match entry.header().entry_type() {
                tar::EntryType::Directory => EntryKind::Directory,
                tar::EntryType::Symlink => EntryKind::Symlink,
                _ => EntryKind::File,
            };
            if kind != meta.kind {
                return Err(hostile(&path, "its kind does not match the manifest"));
            }
            if kind == EntryKind::Symlink {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                if target != meta.link_target {
                    return Err(hostile(
                        &path,
                        "its link target does not match the manifest",
                    ));
                }
            }
            let mut hashing = Hashing {
                inner: &mut entry,
                hash: Sha256::new(),
                len: 0,
            };
            io::copy(&mut hashing, &mut io::sink()).map_err(read_error)?;
            if kind == EntryKind::File {
                check_content(meta, hashing.len, &hashing.hash.finalize())?;
            }
            bytes += hashing.len;
        }
        if let Some(missing) = expected.next() {
            return Err(hostile(
                &missing.path,
                "in the manifest but not in the archive",
            ));
        }
    }
    // To the sealed stream's verified end, as a restore does.
    io::copy(&mut plain, &mut io::sink()).map_err(read_error)?;
    let mut rest = plain.finish();
    io::copy(&mut rest, &mut io::sink()).map_err(read_error)?;
    Ok(VerifySummary {
        kind: BackupKind::Archive,
        entries: manifest.entries.len() as u64,
        bytes,
        manifest,
    })
}

fn hostile(path: &[u8], reason: &'static str) -> Error {
    Error::HostileArchivePath {
        path: String::from_utf8_lossy(path).into_owned(),
        reason,
    }
}
