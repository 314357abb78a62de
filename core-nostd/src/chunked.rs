//! The C2SP chunked-encryption scheme (c2sp.org/chunked-encryption), usable on its own.
//!
//! A message is `salt(24) ‖ commitment(32) ‖ chunks`. From the 32-byte input key,
//! `aead_key(32) ‖ base_nonce(12) ‖ commitment(32) = HKDF-Expand-SHA-512(prk = input key,
//! info = "c2sp.org/chunked-encryption@v1+" ‖ aead_name ‖ 0x00 ‖ salt ‖ context)`.
//! Chunks hold [`CHUNK_LEN`] bytes of plaintext, each followed by its tag; the final
//! chunk is always shorter than [`CHUNK_LEN`] (possibly empty), so every length has one
//! encoding. Chunk `i` is sealed with nonce `base_nonce XOR be96(i)` and empty AAD.
//!
//! The Coffer formats ([`crate::stream`], [`crate::envelope`]) are this scheme with a
//! header bound as the start of the context. Wycheproof's Cobblestone-256 vectors apply
//! to this layer directly.

mod random_open;
mod seal;
mod stream_open;

pub use random_open::RandomAccessOpener;
pub use seal::{Sealed, Sealer};
pub(crate) use stream_open::fill as stream_open_fill;
pub use stream_open::StreamOpener;

use rand_core::CryptoRngCore;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::kdf;
use crate::provider::{
    AeadKey, ChunkCipher, CryptoProvider, Nonce, Suite, Tag, NONCE_LEN, TAG_LEN,
};
use crate::secret::SecretKey;
use crate::Error;

/// Plaintext bytes in every chunk but the final one: 16 KiB.
pub const CHUNK_LEN: usize = 16 * 1024;
/// A full chunk on the wire: plaintext plus tag.
pub const ENCRYPTED_CHUNK_LEN: usize = CHUNK_LEN + TAG_LEN;
/// Length of the random salt.
pub const SALT_LEN: usize = 24;
/// Length of the key commitment.
pub const COMMITMENT_LEN: usize = 32;
/// Length of the message preamble, `salt ‖ commitment`.
pub const PREAMBLE_LEN: usize = SALT_LEN + COMMITMENT_LEN;
/// The scheme's limit on chunks per message.
pub const MAX_CHUNKS: u64 = 1 << 38;
/// The buffer a [`Sealer`] needs: one chunk and room for a final empty chunk's tag.
pub const SEAL_BUFFER_LEN: usize = CHUNK_LEN + 2 * TAG_LEN;
/// The buffer an opener needs: one encrypted chunk.
pub const OPEN_BUFFER_LEN: usize = ENCRYPTED_CHUNK_LEN;

/// HKDF info prefix of the scheme.
pub const INFO_PREFIX: &[u8] = b"c2sp.org/chunked-encryption@v1+";

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
    /// [`Error::ParameterOutOfBounds`] if `context` has more than [`MAX_CONTEXT_PARTS`]
    /// parts (concatenate them first).
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

/// The most context parts [`DerivedKeys::derive`] takes.
pub const MAX_CONTEXT_PARTS: usize = 4;

/// A keyed cipher and base nonce: seals and opens chunk `i` of one message.
///
/// Chunks are independent, so a `ChunkKeys` can seal or open them in any order and on
/// several threads at once (if the cipher is `Sync`); the state machines in this module
/// use it one chunk at a time.
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

    /// Seals chunk `index` in place and returns its tag.
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
/// [`Error::Provider`].
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

fn check_context(context: &[&[u8]]) -> Result<(), Error> {
    if context.len() > MAX_CONTEXT_PARTS {
        return Err(Error::ParameterOutOfBounds {
            parameter: "context parts",
            value: context.len() as u64,
            min: 0,
            max: MAX_CONTEXT_PARTS as u64,
        });
    }
    Ok(())
}

/// Seals a message shorter than one chunk held entirely in `data`, in place: on return
/// `data[..len]` is the ciphertext of its single final chunk. Used by envelopes.
///
/// # Errors
/// [`Error::ParameterOutOfBounds`] if `data` is a chunk or longer; [`Error::Provider`].
pub fn seal_short<P: CryptoProvider>(
    provider: &P,
    suite: Suite,
    key: &SecretKey,
    context: &[&[u8]],
    rng: &mut impl CryptoRngCore,
    data: &mut [u8],
) -> Result<([u8; PREAMBLE_LEN], Tag), Error> {
    if data.len() >= CHUNK_LEN {
        return Err(Error::ParameterOutOfBounds {
            parameter: "short message length",
            value: data.len() as u64,
            min: 0,
            max: (CHUNK_LEN - 1) as u64,
        });
    }
    let (keys, preamble) = begin(provider, suite, key, context, rng)?;
    let tag = keys.seal_chunk(0, data)?;
    Ok((preamble, tag))
}

/// Opens a complete message of one short chunk held in memory: `message` is
/// `preamble ‖ ciphertext ‖ tag`, and the plaintext is written to `out`, which must be
/// exactly as long as the plaintext.
///
/// # Errors
/// [`Error::Truncated`] or [`Error::TrailingData`] if `message` is not exactly that
/// long; [`Error::CommitmentMismatch`]; [`Error::CorruptedChunk`].
pub fn open_short<P: CryptoProvider>(
    provider: &P,
    suite: Suite,
    key: &SecretKey,
    context: &[&[u8]],
    message: &[u8],
    out: &mut [u8],
) -> Result<(), Error> {
    let expected = out.len().saturating_add(PREAMBLE_LEN + TAG_LEN);
    match message.len() {
        n if n < expected => return Err(Error::Truncated),
        n if n > expected => return Err(Error::TrailingData),
        _ => {}
    }
    let (preamble, rest) = message.split_at(PREAMBLE_LEN);
    let (body, tag) = rest.split_at(out.len());
    let mut preamble_array = [0u8; PREAMBLE_LEN];
    preamble_array.copy_from_slice(preamble);
    let keys = accept(provider, suite, key, context, &preamble_array)?;
    let mut tag_array = [0u8; TAG_LEN];
    tag_array.copy_from_slice(tag);
    out.copy_from_slice(body);
    keys.open_chunk(0, out, &tag_array)
}
