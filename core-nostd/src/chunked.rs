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
//!
//! Every API here but [`hazmat`] keeps the stream position itself: it picks each chunk
//! index once and decides which chunk is final. [`Sealer`], [`StreamOpener`] and
//! [`RandomAccessOpener`] work one chunk at a time in a caller buffer of one chunk;
//! [`batch`] lays out batches of many chunks in a caller buffer and seals or opens them
//! in place, on as many threads as the caller has. [`hazmat`] seals and opens chunks by
//! caller-chosen index, for vectors and benchmarks.

pub mod batch;
pub mod hazmat;
mod random_open;
mod seal;
mod stream_open;

pub use random_open::RandomAccessOpener;
pub use seal::{Sealed, Sealer};
pub(crate) use stream_open::fill as stream_open_fill;
pub use stream_open::StreamOpener;

use rand_core::CryptoRngCore;

use crate::provider::{CryptoProvider, Suite, Tag, TAG_LEN};
use crate::secret::SecretKey;
use crate::Error;
use hazmat::{accept, begin};

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

/// The most context parts [`hazmat::DerivedKeys::derive`] takes.
pub const MAX_CONTEXT_PARTS: usize = 4;

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
