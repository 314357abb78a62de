//! The keys of FORMAT.md §12 that chunking needs: the writer secret `W`, and from it the
//! chunker's two AES-128 keys and the chunk ID key.

use core::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::kdf;
use crate::secret::{SecretKey, KEY_LEN};
use crate::Error;

/// Length of each of the chunker's AES-128 keys.
pub const CHUNKER_KEY_LEN: usize = 16;
/// Length of the chunk ID key.
pub const CHUNK_ID_KEY_LEN: usize = 32;

/// The writer secret `W` (FORMAT.md §12): `HKDF-Expand-SHA-512(K, "coffer/v2 writer", 32)`
/// of the master key `K`.
///
/// A write-only key holds `W` instead of `K`: enough to chunk, name chunks and add data,
/// nothing that opens what is stored. Wiped on drop; no `Clone`, `Copy` or `Default`;
/// `Debug` is redacted; equality is constant time.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct WriterSecret([u8; KEY_LEN]);

impl WriterSecret {
    /// Derives `W` from the repository's master key.
    pub fn from_master(master: &SecretKey) -> Self {
        let mut w = WriterSecret([0; KEY_LEN]);
        // 32 bytes is far inside HKDF's 255-block limit: this cannot fail.
        let _ = kdf::expand_sha512(master.expose_secret(), &[kdf::WRITER_LABEL], &mut w.0);
        w
    }

    /// Wraps 32 bytes as a writer secret (a write-only key's own copy of `W`). The caller
    /// should wipe its own copy.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        WriterSecret(bytes)
    }

    /// Takes a writer secret from a slice.
    ///
    /// # Errors
    /// [`Error::InvalidKeyLength`] if the slice is not 32 bytes long.
    pub fn try_from_slice(bytes: &[u8]) -> Result<Self, Error> {
        let array: [u8; KEY_LEN] = bytes
            .try_into()
            .map_err(|_| Error::InvalidKeyLength { len: bytes.len() })?;
        Ok(WriterSecret(array))
    }

    /// The secret's bytes, for wrapping it into a write-only key.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The chunker's keys: `HKDF-Expand-SHA-512(W, "coffer/v2 chunker", 16)` (the cipher
    /// key `c`) and `HKDF-Expand-SHA-512(W, "coffer/v2 chunker-table", 16)` (the table
    /// key `t`).
    pub fn chunker_keys(&self) -> ChunkerKeys {
        let mut keys = ChunkerKeys {
            cipher: [0; CHUNKER_KEY_LEN],
            table: [0; CHUNKER_KEY_LEN],
        };
        // 16 bytes each: these cannot fail.
        let _ = kdf::expand_sha512(&self.0, &[kdf::CHUNKER_CIPHER_LABEL], &mut keys.cipher);
        let _ = kdf::expand_sha512(&self.0, &[kdf::CHUNKER_TABLE_LABEL], &mut keys.table);
        keys
    }

    /// The chunk ID key: `HKDF-Expand-SHA-512(W, "coffer/v2 chunk-id", 32)`.
    pub fn chunk_id_key(&self) -> ChunkIdKey {
        let mut key = ChunkIdKey([0; CHUNK_ID_KEY_LEN]);
        // 32 bytes: this cannot fail.
        let _ = kdf::expand_sha512(&self.0, &[kdf::CHUNK_ID_LABEL], &mut key.0);
        key
    }
}

impl fmt::Debug for WriterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WriterSecret(redacted)")
    }
}

impl ConstantTimeEq for WriterSecret {
    fn ct_eq(&self, other: &Self) -> subtle::Choice {
        self.0.ct_eq(&other.0)
    }
}

impl PartialEq for WriterSecret {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for WriterSecret {}

/// The chunker's two AES-128 keys (FORMAT.md §12): the cipher key `c`, which makes the
/// cut decision (§13.3), and the table key `t`, which makes the hash's table (§13.2).
///
/// Wiped on drop; no `Clone`, `Copy` or `Default`; `Debug` is redacted.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct ChunkerKeys {
    cipher: [u8; CHUNKER_KEY_LEN],
    table: [u8; CHUNKER_KEY_LEN],
}

impl ChunkerKeys {
    /// Wraps the two keys, for a caller that derived them itself.
    pub fn from_bytes(cipher: [u8; CHUNKER_KEY_LEN], table: [u8; CHUNKER_KEY_LEN]) -> Self {
        ChunkerKeys { cipher, table }
    }

    /// The chunker cipher key `c`.
    pub fn cipher_key(&self) -> &[u8; CHUNKER_KEY_LEN] {
        &self.cipher
    }

    /// The chunker table key `t`.
    pub fn table_key(&self) -> &[u8; CHUNKER_KEY_LEN] {
        &self.table
    }
}

impl fmt::Debug for ChunkerKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChunkerKeys(redacted)")
    }
}

/// The chunk ID key (FORMAT.md §12), the HMAC-SHA-256 key of chunk IDs (§14).
///
/// Wiped on drop; no `Clone`, `Copy` or `Default`; `Debug` is redacted.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct ChunkIdKey([u8; CHUNK_ID_KEY_LEN]);

impl ChunkIdKey {
    /// Wraps 32 bytes as a chunk ID key, for a caller that derived it itself.
    pub fn from_bytes(bytes: [u8; CHUNK_ID_KEY_LEN]) -> Self {
        ChunkIdKey(bytes)
    }

    /// The key's bytes.
    pub fn expose_secret(&self) -> &[u8; CHUNK_ID_KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for ChunkIdKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChunkIdKey(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    #[test]
    fn debug_is_redacted() {
        let w = WriterSecret::from_bytes([0xAB; KEY_LEN]);
        let keys = w.chunker_keys();
        let id = w.chunk_id_key();
        for shown in [format!("{w:?}"), format!("{keys:?}"), format!("{id:?}")] {
            assert!(shown.contains("redacted"), "{shown}");
            assert!(!shown.contains("ab"), "{shown}");
            assert!(!shown.contains("171"), "{shown}");
        }
    }

    #[test]
    fn derivations_differ_and_are_stable() {
        let master = SecretKey::from_bytes([1; KEY_LEN]);
        let w = WriterSecret::from_master(&master);
        assert_eq!(
            w,
            WriterSecret::from_master(&SecretKey::from_bytes([1; KEY_LEN]))
        );
        assert_ne!(
            w,
            WriterSecret::from_master(&SecretKey::from_bytes([2; KEY_LEN]))
        );
        assert_ne!(w.expose_secret(), master.expose_secret());
        let keys = w.chunker_keys();
        assert_ne!(keys.cipher_key(), keys.table_key());
        assert_ne!(
            keys.cipher_key()[..],
            w.chunk_id_key().expose_secret()[..16]
        );
    }

    #[test]
    fn wrong_length_is_rejected() {
        assert_eq!(
            WriterSecret::try_from_slice(&[0; 33]).unwrap_err(),
            Error::InvalidKeyLength { len: 33 }
        );
        assert!(WriterSecret::try_from_slice(&[0; 32]).is_ok());
    }
}
