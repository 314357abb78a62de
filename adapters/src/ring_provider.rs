//! The chunk AEAD on `ring`: assembly AES-256-GCM and ChaCha20-Poly1305 for x86-64 and
//! aarch64 with runtime CPU detection, several times faster than the portable
//! [`RustCrypto`](coffer_core::RustCrypto) provider on the same machine.
//!
//! It only seals and opens chunks: keys, nonces, chunk boundaries and the order of
//! checks stay in the core's state machines, so both providers produce identical bytes
//! (`tests/ring_provider.rs` checks this) and pass every vector file.
//!
//! Two differences from the RustCrypto provider, both inside `ring` and out of reach
//! without `unsafe`:
//! - `ring`'s key schedule is opaque and not wiped when a [`RingCipher`] drops. The
//!   [`AeadKey`] it was made from is the core's, which wipes it; this provider copies no
//!   key bytes of its own.
//! - `ring` decrypts and authenticates in one pass, so a chunk whose tag fails was
//!   briefly plaintext in the caller's buffer; `ring` zeroes it before returning the
//!   error, so no unverified plaintext is ever handed back (the core zeroes it again).

use coffer_core::provider::{AeadKey, ChunkCipher, CryptoProvider, Nonce, Tag};
use coffer_core::{Error as CoreError, Suite};
use ring::aead::{self, Aad, LessSafeKey, UnboundKey};

/// The `ring` provider. [`crate::default_provider`] returns it while the `ring` feature
/// is on (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct Ring;

/// A chunk cipher of the [`Ring`] provider: one keyed `ring` AEAD.
pub struct RingCipher(LessSafeKey);

impl core::fmt::Debug for RingCipher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The algorithm only, never key material.
        f.debug_tuple("RingCipher")
            .field(self.0.algorithm())
            .finish()
    }
}

impl CryptoProvider for Ring {
    type Cipher = RingCipher;

    fn cipher(&self, suite: Suite, key: &AeadKey) -> Result<RingCipher, CoreError> {
        let algorithm = match suite {
            Suite::Aes256Gcm => &aead::AES_256_GCM,
            Suite::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
            // A suite added to the core later has no ring algorithm here yet.
            _ => return Err(CoreError::Provider),
        };
        let key =
            UnboundKey::new(algorithm, key.expose_secret()).map_err(|_| CoreError::Provider)?;
        Ok(RingCipher(LessSafeKey::new(key)))
    }
}

impl ChunkCipher for RingCipher {
    fn seal_in_place(&self, nonce: &Nonce, data: &mut [u8]) -> Result<Tag, CoreError> {
        // The core derives a fresh base nonce per message and XORs in the chunk index, so
        // each nonce is unique for its key.
        let nonce = aead::Nonce::assume_unique_for_key(*nonce);
        let tag = self
            .0
            .seal_in_place_separate_tag(nonce, Aad::empty(), data)
            .map_err(|_| CoreError::Provider)?;
        tag.as_ref().try_into().map_err(|_| CoreError::Provider)
    }

    fn open_in_place(&self, nonce: &Nonce, data: &mut [u8], tag: &Tag) -> Result<(), ()> {
        let nonce = aead::Nonce::assume_unique_for_key(*nonce);
        // On a bad tag ring zeroes `data` before it returns the error.
        self.0
            .open_in_place_separate_tag(nonce, Aad::empty(), aead::Tag::from(*tag), data, 0..)
            .map(drop)
            .map_err(drop)
    }
}
