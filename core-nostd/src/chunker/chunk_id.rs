//! Chunk IDs (FORMAT.md §14): `HMAC-SHA-256(key = chunk ID key, message = the chunk)`.

use core::fmt;

use hmac::digest::generic_array::GenericArray;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroize;

use super::keys::{ChunkIdKey, CHUNK_ID_KEY_LEN};

/// Length of a chunk ID.
pub const CHUNK_ID_LEN: usize = 32;

/// SHA-256's block length, HMAC's key length after padding.
const SHA256_BLOCK_LEN: usize = 64;

/// The ID of a chunk held whole in memory: `HMAC-SHA-256(chunk ID key, chunk)`.
///
/// Equal chunks have equal IDs within a repository; without the key, an ID says nothing
/// about the content (storage never sees a plain hash of it).
pub fn chunk_id(key: &ChunkIdKey, chunk: &[u8]) -> [u8; CHUNK_ID_LEN] {
    let mut hasher = ChunkIdHasher::new(key);
    hasher.update(chunk);
    hasher.finalize()
}

/// A chunk ID computed over a chunk that arrives in pieces: [`ChunkIdHasher::update`]
/// with each piece in order, then [`ChunkIdHasher::finalize`]. The result is
/// [`chunk_id`] of the concatenation, however the chunk was split.
pub struct ChunkIdHasher(Hmac<Sha256>);

impl ChunkIdHasher {
    /// Starts the ID of a new chunk.
    pub fn new(key: &ChunkIdKey) -> Self {
        // RFC 2104 §2 step 1: a key shorter than the hash's block is padded with zeros to
        // the block length, so HMAC under the padded key is HMAC under the key itself,
        // and the fixed-length constructor cannot fail (unlike `new_from_slice`).
        let mut padded = [0u8; SHA256_BLOCK_LEN];
        if let Some(head) = padded.get_mut(..CHUNK_ID_KEY_LEN) {
            head.copy_from_slice(key.expose_secret());
        }
        let mac = <Hmac<Sha256> as Mac>::new(GenericArray::from_slice(&padded));
        padded.zeroize();
        ChunkIdHasher(mac)
    }

    /// Adds the next piece of the chunk.
    pub fn update(&mut self, piece: &[u8]) {
        self.0.update(piece);
    }

    /// The chunk's ID.
    #[must_use]
    pub fn finalize(self) -> [u8; CHUNK_ID_LEN] {
        self.0.finalize().into_bytes().into()
    }
}

impl fmt::Debug for ChunkIdHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChunkIdHasher(redacted)")
    }
}
