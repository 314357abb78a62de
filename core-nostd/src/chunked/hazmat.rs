//! Hazardous materials: raw per-chunk access to a chunked-encryption message.
//!
//! Everything here seals or opens the chunk *the caller names*, by index, and none of it
//! knows where the message ends. Test-vector generators, benchmarks of the bare AEAD and
//! the core's own state machines need that; an application almost never does, because
//! it makes two mistakes easy that the format cannot recover from:
//!
//! - **Reusing an index reuses a nonce.** Chunk `i` is sealed with the nonce
//!   `base_nonce XOR be96(i)`. Sealing two different plaintexts at the same index of one
//!   message encrypts both under one key and one nonce: with AES-GCM or
//!   ChaCha20-Poly1305 that reveals the XOR of the two plaintexts and lets anyone who
//!   sees both forge tags for that message. Nothing here remembers which indices were
//!   used.
//! - **Nothing enforces the final-chunk rule.** A message is full chunks followed by
//!   exactly one short (possibly empty) final chunk, and it ends there
//!   (FORMAT.md §4.2). [`ChunkKeys`] seals a short chunk in the middle as readily as a
//!   full one, seals no final chunk unless told to, and opens chunks without noticing
//!   that the message was cut short after a full chunk or extended.
//!
//! The safe APIs keep the stream position themselves, choose every index once and
//! decide which chunk is final: [`super::Sealer`], [`super::StreamOpener`] and
//! [`super::RandomAccessOpener`] one chunk at a time; [`super::batch`] for batches of
//! chunks sealed or opened in place on several threads; [`super::seal_short`] and
//! [`super::open_short`] for a message of one short chunk; and [`crate::stream`] for
//! Coffer's sealed streams.

use rand_core::CryptoRngCore;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use super::{check_context, COMMITMENT_LEN, INFO_PREFIX, MAX_CHUNKS, PREAMBLE_LEN, SALT_LEN};
use crate::kdf;
use crate::provider::{AeadKey, ChunkCipher, CryptoProvider, Nonce, Suite, Tag, NONCE_LEN};
use crate::secret::SecretKey;
use crate::Error;

/// The keys of one message: what HKDF-Expand yields from the input key.
pub struct DerivedKeys {
    /// The AEAD key.
    pub aead_key: AeadKey,
    /// The base nonce, XORed with each chunk index.
    pub base_nonce: Nonce,
    /// The key commitment stored after the salt.
    pub commitment: [u8; COMMITMENT_LEN],
}

impl Drop for DerivedKeys {
    fn drop(&mut self) {
        self.base_nonce.zeroize();
        self.commitment.zeroize();
    }
}

impl DerivedKeys {
    /// Derives a message's keys from the input key, the salt and the context (the
    /// concatenation of `context`'s parts).
    ///
    /// # Errors
    /// [`Error::ParameterOutOfBounds`] if `context` has more than
    /// [`super::MAX_CONTEXT_PARTS`] parts (concatenate them first).
    pub fn derive(
        suite: Suite,
        key: &SecretKey,
        salt: &[u8; SALT_LEN],
        context: &[&[u8]],
    ) -> Result<Self, Error> {
        check_context(context)?;
        let mut okm = [0u8; 32 + NONCE_LEN + COMMITMENT_LEN];
        let name = suite.aead_name().as_bytes();
        let mut info: [&[u8]; 8] = [INFO_PREFIX, name, &[0], salt, &[], &[], &[], &[]];
        // Context parts after the four fixed ones; check_context bounded their number.
        for (slot, part) in info.iter_mut().skip(4).zip(context) {
            *slot = part;
        }
        let used = 4usize.saturating_add(context.len()).min(info.len());
        kdf::expand_sha512(
            key.expose_secret(),
            info.get(..used).unwrap_or_default(),
            &mut okm,
        )?;
        let mut keys = DerivedKeys {
            aead_key: AeadKey([0; 32]),
            base_nonce: [0; NONCE_LEN],
            commitment: [0; COMMITMENT_LEN],
        };
        let (k, rest) = okm.split_at(32);
        let (n, c) = rest.split_at(NONCE_LEN);
        keys.aead_key.0.copy_from_slice(k);
        keys.base_nonce.copy_from_slice(n);
        keys.commitment.copy_from_slice(c);
        okm.zeroize();
        Ok(keys)
    }
}

/// A keyed cipher and base nonce: seals and opens chunk `i` of one message, for any `i`
/// the caller names (see the [module docs](self) for why that is hazardous).
///
/// Chunks are independent, so a `ChunkKeys` can seal or open them in any order and on
/// several threads at once (if the cipher is `Sync`); the state machines of
/// [`super`] use it one chunk or one batch at a time.
pub struct ChunkKeys<C> {
    cipher: C,
    base_nonce: Nonce,
}

impl<C> Drop for ChunkKeys<C> {
    fn drop(&mut self) {
        self.base_nonce.zeroize();
    }
}

impl<C: ChunkCipher> ChunkKeys<C> {
    /// Keys for a message from its derived AEAD key and base nonce ("raw mode").
    ///
    /// # Errors
    /// [`Error::Provider`] if the provider cannot key the cipher.
    pub fn from_raw<P: CryptoProvider<Cipher = C>>(
        provider: &P,
        suite: Suite,
        aead_key: &AeadKey,
        base_nonce: Nonce,
    ) -> Result<Self, Error> {
        Ok(ChunkKeys {
            cipher: provider.cipher(suite, aead_key)?,
            base_nonce,
        })
    }

    /// Chunk `index`'s nonce: the base nonce XOR the 96-bit big-endian index.
    pub fn nonce(&self, index: u64) -> Nonce {
        let mut nonce = self.base_nonce;
        for (n, i) in nonce.iter_mut().rev().zip(index.to_be_bytes().iter().rev()) {
            *n ^= i;
        }
        nonce
    }

    /// Seals chunk `index` in place and returns its tag. Sealing another plaintext at
    /// an index already sealed reuses its nonce.
    ///
    /// # Errors
    /// [`Error::StreamTooLong`] past [`MAX_CHUNKS`]; [`Error::Provider`].
    pub fn seal_chunk(&self, index: u64, data: &mut [u8]) -> Result<Tag, Error> {
        if index >= MAX_CHUNKS {
            return Err(Error::StreamTooLong);
        }
        self.cipher.seal_in_place(&self.nonce(index), data)
    }

    /// Opens chunk `index` in place. On failure `data` is zeroed: nothing unverified is
    /// left for a caller to read.
    ///
    /// # Errors
    /// [`Error::CorruptedChunk`] if the tag does not verify; [`Error::StreamTooLong`].
    pub fn open_chunk(&self, index: u64, data: &mut [u8], tag: &Tag) -> Result<(), Error> {
        if index >= MAX_CHUNKS {
            data.zeroize();
            return Err(Error::StreamTooLong);
        }
        self.cipher
            .open_in_place(&self.nonce(index), data, tag)
            .map_err(|()| {
                data.zeroize();
                Error::CorruptedChunk { index }
            })
    }
}

/// Starts a message: draws a salt, derives the keys, and returns them with the
/// preamble (`salt ‖ commitment`) to write first.
///
/// # Errors
/// [`Error::ParameterOutOfBounds`] for too many context parts; [`Error::Provider`].
pub fn begin<P: CryptoProvider>(
    provider: &P,
    suite: Suite,
    key: &SecretKey,
    context: &[&[u8]],
    rng: &mut impl CryptoRngCore,
) -> Result<(ChunkKeys<P::Cipher>, [u8; PREAMBLE_LEN]), Error> {
    check_context(context)?;
    let mut salt = [0u8; SALT_LEN];
    rng.fill_bytes(&mut salt);
    let derived = DerivedKeys::derive(suite, key, &salt, context)?;
    let mut preamble = [0u8; PREAMBLE_LEN];
    let (s, c) = preamble.split_at_mut(SALT_LEN);
    s.copy_from_slice(&salt);
    c.copy_from_slice(&derived.commitment);
    let keys = ChunkKeys::from_raw(provider, suite, &derived.aead_key, derived.base_nonce)?;
    Ok((keys, preamble))
}

/// Checks a message's preamble against the key and context, in constant time, and
/// returns the keys to open its chunks.
///
/// # Errors
/// [`Error::CommitmentMismatch`] for a wrong key, wrong context or altered preamble.
pub fn accept<P: CryptoProvider>(
    provider: &P,
    suite: Suite,
    key: &SecretKey,
    context: &[&[u8]],
    preamble: &[u8; PREAMBLE_LEN],
) -> Result<ChunkKeys<P::Cipher>, Error> {
    check_context(context)?;
    let (salt, commitment) = preamble.split_at(SALT_LEN);
    let mut salt_array = [0u8; SALT_LEN];
    salt_array.copy_from_slice(salt);
    let derived = DerivedKeys::derive(suite, key, &salt_array, context)?;
    if !bool::from(derived.commitment.ct_eq(commitment)) {
        return Err(Error::CommitmentMismatch);
    }
    ChunkKeys::from_raw(provider, suite, &derived.aead_key, derived.base_nonce)
}
