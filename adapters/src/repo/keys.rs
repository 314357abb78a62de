//! The keys of a repository (FORMAT.md §12): a full key derives everything from the
//! master key; a write-only key holds only the writer secret and the repository's
//! public key, so it can chunk, name, add and deduplicate data, but opens nothing that
//! is stored (packs and snapshots are sealed to the public key, §15).

use coffer_core::chunker::{ChunkIdKey, Chunker, ChunkerParams, WriterSecret};
use coffer_core::kdf::expand_sha512;
use coffer_core::SecretKey;
use zeroize::Zeroizing;

use super::recipient::{RecipientPublic, RecipientSecret};
use crate::Error;

/// The IKM of the repository's X25519 key pair, from `K` (§15).
pub const RECIPIENT_LABEL: &[u8] = b"coffer/v2 x25519";
/// The input key of index objects, from `W` (§17).
pub const INDEX_LABEL: &[u8] = b"coffer/v2 index";
/// The input key of the configuration object, from `W` (§20).
pub const CONFIG_LABEL: &[u8] = b"coffer/v2 config";
/// The input key of a write-only writer's local cache, from `W` (§22).
pub const CACHE_LABEL: &[u8] = b"coffer/v2 cache";

/// Derives a 32-byte key from `prk` under `label`.
pub fn derive(prk: &SecretKey, label: &[u8]) -> SecretKey {
    let mut out = Zeroizing::new([0u8; 32]);
    // 32 bytes is far inside HKDF's limit: this cannot fail.
    let _ = expand_sha512(prk.expose_secret(), &[label], &mut out[..]);
    SecretKey::from_bytes(*out)
}

/// What a key can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads and writes: holds the master key.
    Full,
    /// Adds data only: holds the writer secret and the public key.
    WriteOnly,
}

/// A repository's keys, as one opened key file gives them.
pub struct RepoKeys {
    writer: SecretKey,
    recipient: Option<RecipientSecret>,
    public: RecipientPublic,
    chunk_id: SecretKey,
    index: SecretKey,
    config: SecretKey,
    cache: SecretKey,
}

impl std::fmt::Debug for RepoKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoKeys")
            .field("access", &self.access())
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl RepoKeys {
    /// Everything, from the master key `K`.
    pub fn full(master: &SecretKey) -> Self {
        // W, like the chunker keys and the chunk ID key, is the core's derivation (§12).
        let writer = SecretKey::from_bytes(*WriterSecret::from_master(master).expose_secret());
        let recipient = RecipientSecret::from_master(master);
        let public = recipient.public();
        Self::from_parts(writer, Some(recipient), public)
    }

    /// A write-only key: the writer secret `W` and the repository's public key.
    pub fn write_only(writer: SecretKey, public: RecipientPublic) -> Self {
        Self::from_parts(writer, None, public)
    }

    fn from_parts(
        writer: SecretKey,
        recipient: Option<RecipientSecret>,
        public: RecipientPublic,
    ) -> Self {
        RepoKeys {
            chunk_id: SecretKey::from_bytes(
                *WriterSecret::from_bytes(*writer.expose_secret())
                    .chunk_id_key()
                    .expose_secret(),
            ),
            index: derive(&writer, INDEX_LABEL),
            config: derive(&writer, CONFIG_LABEL),
            cache: derive(&writer, CACHE_LABEL),
            writer,
            recipient,
            public,
        }
    }

    /// Full or write-only.
    pub fn access(&self) -> Access {
        if self.recipient.is_some() {
            Access::Full
        } else {
            Access::WriteOnly
        }
    }

    /// The writer secret `W` (chunker keys derive from it).
    pub fn writer(&self) -> &SecretKey {
        &self.writer
    }

    /// The chunk ID key.
    pub fn chunk_id_key(&self) -> &SecretKey {
        &self.chunk_id
    }

    /// The input key of index objects.
    pub fn index_key(&self) -> &SecretKey {
        &self.index
    }

    /// The input key of the configuration object.
    pub fn config_key(&self) -> &SecretKey {
        &self.config
    }

    /// The input key of the local cache.
    pub fn cache_key(&self) -> &SecretKey {
        &self.cache
    }

    /// The public key packs and snapshots are sealed to.
    pub fn public(&self) -> &RecipientPublic {
        &self.public
    }

    /// The secret that opens packs and snapshots.
    ///
    /// # Errors
    /// [`Error::WriteOnlyKey`] for a write-only key.
    pub fn recipient(&self) -> Result<&RecipientSecret, Error> {
        self.recipient.as_ref().ok_or(Error::WriteOnlyKey)
    }

    /// The chunk ID of `data` (HMAC-SHA-256 under the chunk ID key, §14).
    pub fn chunk_id(&self, data: &[u8]) -> [u8; 32] {
        let key = ChunkIdKey::from_bytes(*self.chunk_id.expose_secret());
        coffer_core::chunker::chunk_id(&key, data)
    }

    /// The keyed chunker with the repository's parameters.
    ///
    /// # Errors
    /// [`Error::Core`] for parameters out of bounds.
    pub fn chunker(&self, sizes: &super::config::ChunkerSizes) -> Result<Chunker, Error> {
        let params = ChunkerParams::new(sizes.min_size, sizes.mask_bits, sizes.max_size)?;
        let writer = WriterSecret::from_bytes(*self.writer.expose_secret());
        Ok(Chunker::from_writer_secret(&writer, params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_only_keys_share_everything_but_the_recipient_secret() {
        let master = SecretKey::from_bytes([9; 32]);
        let full = RepoKeys::full(&master);
        let writer = SecretKey::from_bytes(*full.writer().expose_secret());
        let wo = RepoKeys::write_only(writer, full.public().clone());
        assert_eq!(full.access(), Access::Full);
        assert_eq!(wo.access(), Access::WriteOnly);
        assert_eq!(full.chunk_id(b"x"), wo.chunk_id(b"x"));
        assert_eq!(full.index_key(), wo.index_key());
        assert!(matches!(wo.recipient(), Err(Error::WriteOnlyKey)));
        assert_ne!(full.chunk_id(b"x"), full.chunk_id(b"y"));
    }
}
