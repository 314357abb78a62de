//! HKDF-Expand-SHA-512 (RFC 5869 §2.3) and the labels Coffer derives under.
//!
//! The chunked-encryption scheme uses the 32-byte input key directly as the PRK of
//! HKDF-Expand-SHA-512. The `hkdf` crate refuses a PRK shorter than the hash output,
//! so Expand is composed here from the `hmac` crate: `T(i) = HMAC(prk, T(i-1) ‖ info ‖ i)`.
//! The Wycheproof HKDF-SHA-512 vectors check it (tests/wycheproof_primitives.rs).

use crate::Error;
use hmac::{Hmac, Mac};
use sha2::Sha512;
use zeroize::Zeroize;

/// Info label of key IDs: `HKDF-Expand-SHA-512(key, "coffer/v1 key-id", 16)`.
pub(crate) const KEY_ID_LABEL: &[u8] = b"coffer/v1 key-id";

// The v2 key hierarchy (FORMAT.md §12): the writer secret from the master key, and from
// the writer secret the keys of the chunker (§13) and of chunk IDs (§14).

/// Info label of the writer secret: `HKDF-Expand-SHA-512(K, "coffer/v2 writer", 32)`.
pub(crate) const WRITER_LABEL: &[u8] = b"coffer/v2 writer";
/// Info label of the chunker cipher key: `HKDF-Expand-SHA-512(W, "coffer/v2 chunker", 16)`.
pub(crate) const CHUNKER_CIPHER_LABEL: &[u8] = b"coffer/v2 chunker";
/// Info label of the chunker table key:
/// `HKDF-Expand-SHA-512(W, "coffer/v2 chunker-table", 16)`.
pub(crate) const CHUNKER_TABLE_LABEL: &[u8] = b"coffer/v2 chunker-table";
/// Info label of the chunk ID key: `HKDF-Expand-SHA-512(W, "coffer/v2 chunk-id", 32)`.
pub(crate) const CHUNK_ID_LABEL: &[u8] = b"coffer/v2 chunk-id";

const HASH_LEN: usize = 64;
const MAX_OKM_LEN: usize = 255 * HASH_LEN;

/// Fills `okm` with HKDF-Expand-SHA-512(prk, info = concatenation of `info`).
///
/// # Errors
/// [`Error::ParameterOutOfBounds`] if `okm` is longer than 255 × 64 bytes, the most
/// HKDF can produce (Coffer asks for at most 76).
pub fn expand_sha512(prk: &[u8], info: &[&[u8]], okm: &mut [u8]) -> Result<(), Error> {
    if okm.len() > MAX_OKM_LEN {
        return Err(Error::ParameterOutOfBounds {
            parameter: "HKDF output length",
            value: okm.len() as u64,
            min: 0,
            max: MAX_OKM_LEN as u64,
        });
    }
    let mut previous = [0u8; HASH_LEN];
    let mut previous_len = 0usize;
    for (counter, block) in (1u8..=255).zip(okm.chunks_mut(HASH_LEN)) {
        // HMAC accepts keys of any length; new_from_slice cannot fail for it.
        let Ok(mut mac) = Hmac::<Sha512>::new_from_slice(prk) else {
            return Err(Error::InvalidKeyLength { len: prk.len() });
        };
        mac.update(previous.get(..previous_len).unwrap_or_default());
        for part in info {
            mac.update(part);
        }
        mac.update(&[counter]);
        let mut t = mac.finalize().into_bytes();
        previous.copy_from_slice(&t);
        previous_len = HASH_LEN;
        let take = block.len();
        block.copy_from_slice(t.get(..take).unwrap_or_default());
        t.zeroize();
    }
    previous.zeroize();
    Ok(())
}
