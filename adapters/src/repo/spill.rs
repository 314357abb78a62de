//! A backup's open packs, sealed as they fill into unnamed temporary files (FORMAT.md
//! §22.2), so memory does not hold whole packs: three packs fill at once, and another
//! is being stored, which in memory cost ~40 MiB of a backup's peak. restic keeps its
//! open packs in temporary files too; here the file holds only the pack object's own
//! bytes (the object header, then the sealed stream as its chunks are sealed), never
//! plaintext, and the file has no name, so nothing is left behind by a crash.
//!
//! A pack's object key, sealed key and stream salt are drawn when it opens, which is
//! when its name (bound into its context) must be known.

use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};

use coffer_core::chunked::Sealer;
use coffer_core::chunked::SEAL_BUFFER_LEN;
use coffer_core::provider::CryptoProvider;
use coffer_core::stream;

use super::config::names;
use super::index::PackId;
use super::object::{self, SealedKind, SUITE};
use super::pack::{self, BlobKind, Compression, TocEntry};
use super::Repository;
use crate::storage::ObjectKey;
use crate::{default_provider, DefaultProvider, Error};

type Cipher = <DefaultProvider as CryptoProvider>::Cipher;

/// A pack being filled: blobs go through the sealer into the file.
pub struct SpillPack {
    id: PackId,
    name: String,
    key: ObjectKey,
    sealer: Sealer<Cipher, Box<[u8]>>,
    file: BufWriter<File>,
    body_len: usize,
    entries: Vec<TocEntry>,
}

impl std::fmt::Debug for SpillPack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpillPack")
            .field("name", &self.name)
            .field("body_len", &self.body_len)
            .field("blobs", &self.entries.len())
            .finish_non_exhaustive()
    }
}

/// A closed pack: its object's bytes in a file, read from the start.
#[derive(Debug)]
pub struct SpilledPack {
    /// Its ID.
    pub id: PackId,
    /// Its object's name (relative to the repository).
    pub name: String,
    /// Where it goes.
    pub key: ObjectKey,
    /// The object, positioned at its start.
    pub file: File,
    /// The object's length.
    pub len: u64,
    /// Its blobs.
    pub entries: Vec<TocEntry>,
}

fn spill_error(e: io::Error) -> Error {
    Error::io("writing a pack to a temporary file", e)
}

impl SpillPack {
    /// Opens a new pack of `repo` (a fresh random ID) in a temporary file.
    ///
    /// # Errors
    /// The temporary file's; the key seal's.
    pub fn start(repo: &Repository) -> Result<Self, Error> {
        let random = repo.random();
        let id: PackId = random.id();
        let name = names::pack(&id);
        let key = repo.object(&name)?;
        let (header, object_key, context) = object::start_sealed(
            &mut random.rng(),
            repo.keys().public(),
            SealedKind::Pack,
            repo.id(),
            &name,
        )?;
        let buf = vec![0u8; SEAL_BUFFER_LEN].into_boxed_slice();
        let (sealer, prefix) = stream::seal(
            &default_provider(),
            SUITE,
            &object_key,
            &context,
            &mut random.rng(),
            buf,
        )?;
        let mut file =
            BufWriter::with_capacity(64 << 10, tempfile::tempfile().map_err(spill_error)?);
        file.write_all(&header).map_err(spill_error)?;
        file.write_all(&prefix).map_err(spill_error)?;
        Ok(SpillPack {
            id,
            name,
            key,
            sealer,
            file,
            body_len: 0,
            entries: Vec::new(),
        })
    }

    /// Adds a blob's stored bytes.
    ///
    /// # Errors
    /// [`Error::RepoFormat`] for a blob over [`pack::MAX_BLOB_LEN`]; the file's.
    pub fn add(
        &mut self,
        id: [u8; 32],
        kind: BlobKind,
        compression: Compression,
        stored: &[u8],
        raw_len: usize,
    ) -> Result<(), Error> {
        let entry = TocEntry::placed(self.body_len, id, kind, compression, stored.len(), raw_len)?;
        self.seal(stored)?;
        self.entries.push(entry);
        self.body_len += stored.len();
        Ok(())
    }

    /// Bytes of blobs so far.
    pub fn body_len(&self) -> usize {
        self.body_len
    }

    /// Seals the table of contents, padding and trailer, and the final chunk; returns
    /// the file rewound.
    ///
    /// # Errors
    /// The file's; the sealer's.
    pub fn finish(mut self) -> Result<SpilledPack, Error> {
        let tail = pack::tail(self.body_len, &self.entries);
        self.seal(&tail)?;
        let SpillPack {
            id,
            name,
            key,
            sealer,
            mut file,
            entries,
            ..
        } = self;
        let last = sealer.finish()?;
        file.write_all(last.ciphertext()).map_err(spill_error)?;
        let mut file = file.into_inner().map_err(|e| spill_error(e.into_error()))?;
        let len = file.stream_position().map_err(spill_error)?;
        file.rewind().map_err(spill_error)?;
        Ok(SpilledPack {
            id,
            name,
            key,
            file,
            len,
            entries,
        })
    }

    fn seal(&mut self, mut rest: &[u8]) -> Result<(), Error> {
        while !rest.is_empty() {
            let (taken, sealed) = self.sealer.push(rest)?;
            if let Some(chunk) = sealed {
                self.file.write_all(chunk).map_err(spill_error)?;
            }
            rest = &rest[taken..];
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;
    use std::sync::Arc;

    use coffer_core::passphrase::Argon2Params;
    use coffer_core::SecretKey;

    use super::*;
    use crate::repo::keyfile::Unlock;
    use crate::repo::pack::PackBuilder;
    use crate::storage::LocalStorage;

    #[test]
    fn a_spilled_pack_is_the_sealed_object_of_the_packs_plaintext_and_holds_no_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalStorage::open(dir.path()).unwrap());
        let unlock = Unlock::Kek(SecretKey::from_bytes([9; 32]));
        let repo = Repository::init(store, "", &unlock, Argon2Params::MIN).unwrap();

        // Blobs that span several 16 KiB stream chunks, with a marker to look for.
        let marker = b"plaintext that must never reach the disk";
        let first: Vec<u8> = marker.iter().copied().cycle().take(40_000).collect();
        let second: Vec<u8> = (0..70_001u32).map(|i| (i % 253) as u8).collect();
        let blobs = [([1u8; 32], &first), ([2u8; 32], &second)];

        let mut spill = SpillPack::start(&repo).unwrap();
        let mut plain = PackBuilder::new();
        for (id, blob) in blobs {
            let raw = blob.len();
            spill
                .add(id, BlobKind::Data, Compression::None, blob, raw)
                .unwrap();
            plain
                .add(id, BlobKind::Data, Compression::None, blob, raw)
                .unwrap();
        }
        assert_eq!(spill.body_len(), first.len() + second.len());
        let mut spilled = spill.finish().unwrap();
        let mut object = Vec::new();
        spilled.file.read_to_end(&mut object).unwrap();
        assert_eq!(object.len() as u64, spilled.len);
        assert!(!object.windows(marker.len()).any(|w| w == marker));

        let (plaintext, entries) = plain.finish();
        assert_eq!(spilled.entries, entries);
        let secret = repo.keys().recipient().unwrap();
        let opened =
            object::open_from(secret, SealedKind::Pack, repo.id(), &spilled.name, &object).unwrap();
        assert_eq!(opened, plaintext);
        assert_eq!(spilled.key, repo.object(&spilled.name).unwrap());
    }
}
