//! Reading blobs back: find a blob in the index, open its pack's key once per pack,
//! fetch only the sealed chunks that cover the blob, decompress it, and check that its
//! MAC is its ID before anyone sees it. Trees are read through [`TreeReader`], which a
//! write-only writer feeds from its local cache instead (it cannot open packs).
//!
//! With a local object cache ([`Repository::with_cache`]), the stored sealed bytes of
//! every tree blob read (the pack's header, its stream prefix and the chunks that cover
//! the blob) are kept, and read back from there next time, opened and verified exactly as
//! storage's copy. Data blobs are never cached.

use std::collections::{BTreeMap, HashMap};

use coffer_core::chunker::ChunkIdKey;
use coffer_core::SecretKey;

use super::config::names;
use super::index::{Location, MemIndex, PackId};
use super::object::{self, SealedKind, StreamRange, OBJECT_HEADER_LEN};
use super::pack::{Compression, MAX_BLOB_LEN};
use super::repository::local_cache::{LocalCache, TreeKey};
use super::tree::Tree;
use super::Repository;
use crate::Error;

/// Reads blobs of one repository, remembering each pack's opened key.
pub struct BlobReader<'r> {
    repo: &'r Repository,
    pack_keys: HashMap<PackId, (SecretKey, Vec<u8>)>,
    /// The header each key of `pack_keys` was opened from.
    headers: HashMap<PackId, Vec<u8>>,
}

impl std::fmt::Debug for BlobReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("packs_opened", &self.pack_keys.len())
            .finish_non_exhaustive()
    }
}

impl<'r> BlobReader<'r> {
    /// A reader (full keys only, checked on the first read).
    pub fn new(repo: &'r Repository) -> Self {
        BlobReader {
            repo,
            pack_keys: HashMap::new(),
            headers: HashMap::new(),
        }
    }

    /// The key and context of a pack, from its 96-byte header.
    ///
    /// # Errors
    /// [`Error::WriteOnlyKey`]; storage and recipient errors.
    pub fn pack_key(&mut self, pack: &PackId) -> Result<&(SecretKey, Vec<u8>), Error> {
        if !self.pack_keys.contains_key(pack) {
            let secret = self.repo.keys().recipient()?;
            let name = names::pack(pack);
            let key = self.repo.object(&name)?;
            let mut header = Vec::with_capacity(OBJECT_HEADER_LEN);
            std::io::Read::read_to_end(
                &mut self
                    .repo
                    .store()
                    .get_range(&key, 0, OBJECT_HEADER_LEN as u64)?,
                &mut header,
            )
            .map_err(|e| Error::io(format!("reading {key}"), e))?;
            let opened =
                object::object_key(secret, SealedKind::Pack, self.repo.id(), &name, &header)?;
            self.pack_keys.insert(*pack, opened);
            self.headers.insert(*pack, header);
        }
        self.pack_keys.get(pack).ok_or_else(|| Error::RepoFormat {
            object: names::pack(pack),
            reason: "pack key lost".to_owned(),
        })
    }

    /// A blob's stored bytes (still compressed), fetched by range.
    ///
    /// # Errors
    /// As [`BlobReader::pack_key`]; a chunk that does not verify.
    pub fn stored(&mut self, at: &Location) -> Result<Vec<u8>, Error> {
        let name = names::pack(&at.pack);
        let repo = self.repo;
        let object = repo.object(&name)?;
        let (key, context) = self.pack_key(&at.pack)?;
        object::read_range(
            repo.store().as_ref(),
            &object,
            at.object_len,
            OBJECT_HEADER_LEN as u64,
            key,
            context,
            u64::from(at.offset),
            u64::from(at.stored_len),
        )
    }

    /// Blob `id`, checked against its ID.
    ///
    /// # Errors
    /// [`Error::RepoFormat`] if the index does not list it or it is not what its ID
    /// says; as [`BlobReader::stored`].
    pub fn read(&mut self, index: &MemIndex, id: &[u8; 32]) -> Result<Vec<u8>, Error> {
        let at = index.locate(id).ok_or_else(|| Error::RepoFormat {
            object: format!("blob {}", hex::encode(id)),
            reason: "not in any index".to_owned(),
        })?;
        let repo = self.repo;
        if let Some(cache) = repo.local_cache() {
            let key = TreeKey::of(&at);
            if cache.is_tree(&key) {
                return self.read_tree(cache, &key, &at, id);
            }
        }
        let stored = self.stored(&at)?;
        decode_blob(self.repo, id, &stored, at.compression, None)
    }

    /// Tree blob `id` at `at`: from the cache if its entry opens and verifies (else the
    /// entry goes), else from storage, keeping the sealed bytes read.
    fn read_tree(
        &mut self,
        cache: &LocalCache,
        key: &TreeKey,
        at: &Location,
        id: &[u8; 32],
    ) -> Result<Vec<u8>, Error> {
        let range = StreamRange {
            object_len: at.object_len,
            stream_start: OBJECT_HEADER_LEN as u64,
            offset: u64::from(at.offset),
            len: u64::from(at.stored_len),
        };
        let Some(((_, prefix_len), (_, body_len))) = range.pieces() else {
            // Empty or past the pack's end: the uncached path says which.
            let stored = self.stored(at)?;
            return decode_blob(self.repo, id, &stored, at.compression, None);
        };
        let entry_len = OBJECT_HEADER_LEN as u64 + prefix_len + body_len;
        if let Some(entry) = cache.tree(key, entry_len) {
            match self.open_cached(at, &range, &entry, prefix_len) {
                Ok(stored) => match decode_blob(self.repo, id, &stored, at.compression, None) {
                    Ok(raw) => return Ok(raw),
                    Err(_) => cache.drop_tree(key),
                },
                Err(_) => cache.drop_tree(key),
            }
        }
        let repo = self.repo;
        let object = repo.object(&names::pack(&at.pack))?;
        let sealed = object::fetch_range(repo.store().as_ref(), &object, &range)?;
        let (pack_key, context) = self.pack_key(&at.pack)?;
        let stored = object::open_range(pack_key, context, &range, &sealed.prefix, &sealed.body)?;
        let raw = decode_blob(repo, id, &stored, at.compression, None)?;
        if let Some(header) = self.headers.get(&at.pack) {
            cache.store_tree(key, &[header, &sealed.prefix, &sealed.body]);
        }
        Ok(raw)
    }

    /// The stored bytes of a cached tree entry (pack header ‖ stream prefix ‖ chunks),
    /// opened under the pack's key: the one already known (the entry's header must then
    /// be the same), else the one the entry's header opens to.
    fn open_cached(
        &mut self,
        at: &Location,
        range: &StreamRange,
        entry: &[u8],
        prefix_len: u64,
    ) -> Result<Vec<u8>, Error> {
        let bad = || Error::RepoFormat {
            object: format!("cached tree in {}", names::pack(&at.pack)),
            reason: "malformed cache entry".to_owned(),
        };
        let (header, rest) = entry.split_at_checked(OBJECT_HEADER_LEN).ok_or_else(bad)?;
        let prefix_len = usize::try_from(prefix_len).map_err(|_| bad())?;
        let (prefix, body) = rest.split_at_checked(prefix_len).ok_or_else(bad)?;
        match self.headers.get(&at.pack) {
            Some(known) if known.as_slice() != header => return Err(bad()),
            Some(_) => {}
            None => {
                let secret = self.repo.keys().recipient()?;
                let name = names::pack(&at.pack);
                let opened =
                    object::object_key(secret, SealedKind::Pack, self.repo.id(), &name, header)?;
                self.pack_keys.insert(at.pack, opened);
                self.headers.insert(at.pack, header.to_vec());
            }
        }
        let (pack_key, context) = self.pack_keys.get(&at.pack).ok_or_else(bad)?;
        object::open_range(pack_key, context, range, prefix, body)
    }
}

/// Decompresses (bounded by `expected_len` or [`MAX_BLOB_LEN`]) and checks the MAC.
///
/// # Errors
/// [`Error::RepoFormat`] naming the blob.
pub fn decode_blob(
    repo: &Repository,
    id: &[u8; 32],
    stored: &[u8],
    compression: Compression,
    expected_len: Option<usize>,
) -> Result<Vec<u8>, Error> {
    decode_blob_with(
        repo.keys().chunk_id_key(),
        id,
        stored,
        compression,
        expected_len,
    )
}

/// [`decode_blob`] under a chunk ID key rather than a repository's.
///
/// # Errors
/// As [`decode_blob`].
pub fn decode_blob_with(
    chunk_id_key: &SecretKey,
    id: &[u8; 32],
    stored: &[u8],
    compression: Compression,
    expected_len: Option<usize>,
) -> Result<Vec<u8>, Error> {
    let bad = |reason: &str| Error::RepoFormat {
        object: format!("blob {}", hex::encode(id)),
        reason: reason.to_owned(),
    };
    let raw = match compression {
        Compression::None => stored.to_vec(),
        Compression::Zstd => {
            let limit = expected_len.unwrap_or(MAX_BLOB_LEN);
            zstd::bulk::decompress(stored, limit).map_err(|_| bad("does not decompress"))?
        }
    };
    if let Some(n) = expected_len {
        if raw.len() != n {
            return Err(bad("has another length than the tree says"));
        }
    }
    let key = ChunkIdKey::from_bytes(*chunk_id_key.expose_secret());
    if &coffer_core::chunker::chunk_id(&key, &raw) != id {
        return Err(bad("its content does not match its ID"));
    }
    Ok(raw)
}

/// Trees by ID: from packs (a full key) or from a writer's cache.
pub struct TreeReader<'r> {
    blobs: BlobReader<'r>,
    cached: BTreeMap<[u8; 32], Vec<u8>>,
}

impl std::fmt::Debug for TreeReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TreeReader")
            .field("cached", &self.cached.len())
            .finish_non_exhaustive()
    }
}

impl<'r> TreeReader<'r> {
    /// A reader over `repo`.
    pub fn new(repo: &'r Repository) -> Self {
        TreeReader {
            blobs: BlobReader::new(repo),
            cached: BTreeMap::new(),
        }
    }

    /// Trees the caller already has (a write-only writer's cache).
    pub fn add_cached(&mut self, trees: BTreeMap<[u8; 32], Vec<u8>>) {
        self.cached.extend(trees);
    }

    /// Tree `id`: from the cache, else from the repository when the key can read it,
    /// else `None` (a write-only key without a cache reads every file again).
    ///
    /// # Errors
    /// Storage, core and format errors of a tree the repository should have.
    pub fn tree(&mut self, index: &MemIndex, id: &[u8; 32]) -> Result<Option<Tree>, Error> {
        if let Some(bytes) = self.cached.get(id) {
            return Ok(Some(decode_tree(bytes)?));
        }
        if self.blobs.repo.keys().recipient().is_err() {
            return Ok(None);
        }
        let bytes = self.blobs.read(index, id)?;
        Ok(Some(decode_tree(&bytes)?))
    }
}

/// Decodes a tree blob.
///
/// # Errors
/// [`Error::Tree`].
pub fn decode_tree(bytes: &[u8]) -> Result<Tree, Error> {
    Tree::decode(bytes).map_err(|source| Error::Tree { path: None, source })
}
