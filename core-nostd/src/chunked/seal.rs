//! The push sealer.

use rand_core::CryptoRngCore;

use super::hazmat::{begin, ChunkKeys};
use super::{CHUNK_LEN, PREAMBLE_LEN, SEAL_BUFFER_LEN};
use crate::provider::{CryptoProvider, Suite, TAG_LEN};
use crate::secret::SecretKey;
use crate::Error;

/// Seals a message of any length, pushed in slices of any size, into the caller's
/// buffer of [`SEAL_BUFFER_LEN`] bytes.
///
/// ```text
///   new() ──► push()* ──► finish()
///   (write the      (write each        (write Sealed::ciphertext)
///    preamble)       emitted chunk)
/// ```
///
/// A full chunk is sealed lazily, by the next `push`, `flush_full` or `finish`: chunks
/// carry no final flag, so this changes no byte of the output, but it lets `advance`
/// stay infallible and lets `finish` emit the last full chunk and the (then empty) final
/// chunk together from the one buffer.
#[must_use = "a sealer does nothing until finish() emits the final chunk"]
pub struct Sealer<C, B> {
    keys: ChunkKeys<C>,
    buf: B,
    filled: usize,
    index: u64,
    emitted: bool,
}

impl<C: crate::provider::ChunkCipher, B: AsMut<[u8]>> Sealer<C, B> {
    /// Starts a message under `key` and `context`; returns the sealer and the preamble
    /// (`salt ‖ commitment`) to write before any chunk.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `buf` is shorter than [`SEAL_BUFFER_LEN`];
    /// [`Error::Provider`].
    pub fn new<P: CryptoProvider<Cipher = C>>(
        provider: &P,
        suite: Suite,
        key: &SecretKey,
        context: &[&[u8]],
        rng: &mut impl CryptoRngCore,
        mut buf: B,
    ) -> Result<(Self, [u8; PREAMBLE_LEN]), Error> {
        let provided = buf.as_mut().len();
        if provided < SEAL_BUFFER_LEN {
            return Err(Error::BufferTooSmall {
                needed: SEAL_BUFFER_LEN,
                provided,
            });
        }
        let (keys, preamble) = begin(provider, suite, key, context, rng)?;
        Ok((Sealer::from_keys(keys, buf), preamble))
    }

    /// A sealer over keys from [`super::hazmat::begin`], for callers that wrote the
    /// preamble.
    pub(crate) fn from_keys(keys: ChunkKeys<C>, buf: B) -> Self {
        Sealer {
            keys,
            buf,
            filled: 0,
            index: 0,
            emitted: false,
        }
    }

    /// Takes plaintext. Returns how many bytes of `input` were taken and, when a full
    /// chunk was sealed, its ciphertext (valid until the next call). Call again with
    /// the rest of `input` until it is all taken.
    ///
    /// # Errors
    /// [`Error::StreamTooLong`] past 2^38 chunks; [`Error::Provider`].
    pub fn push(&mut self, input: &[u8]) -> Result<(usize, Option<&[u8]>), Error> {
        if self.emitted {
            self.emitted = false;
            self.filled = 0;
        }
        if input.is_empty() {
            return Ok((0, None));
        }
        if self.filled == CHUNK_LEN {
            let sealed = self.seal_pending()?;
            return Ok((0, Some(sealed)));
        }
        let room = CHUNK_LEN.saturating_sub(self.filled);
        let take = room.min(input.len());
        let end = self.filled.saturating_add(take);
        if let (Some(dst), Some(src)) = (
            self.buf.as_mut().get_mut(self.filled..end),
            input.get(..take),
        ) {
            dst.copy_from_slice(src);
        }
        self.filled = end;
        Ok((take, None))
    }

    /// The free part of the pending chunk, to read plaintext into directly (no copy).
    /// Call [`Sealer::advance`] with how much was written, or [`Sealer::push`] an empty
    /// slice first if the last call emitted a chunk.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.emitted {
            self.emitted = false;
            self.filled = 0;
        }
        self.buf
            .as_mut()
            .get_mut(self.filled..CHUNK_LEN)
            .unwrap_or_default()
    }

    /// Marks `n` bytes of [`Sealer::spare`] as written plaintext. If that fills the
    /// chunk, nothing is sealed yet: the next push, `flush_full` or `finish` seals it.
    pub fn advance(&mut self, n: usize) {
        self.filled = self.filled.saturating_add(n).min(CHUNK_LEN);
    }

    /// Seals the full pending chunk if there is one, before more input is read into
    /// [`Sealer::spare`]. Returns its ciphertext.
    ///
    /// # Errors
    /// As [`Sealer::push`].
    pub fn flush_full(&mut self) -> Result<Option<&[u8]>, Error> {
        if self.emitted {
            self.emitted = false;
            self.filled = 0;
        }
        if self.filled == CHUNK_LEN {
            return self.seal_pending().map(Some);
        }
        Ok(None)
    }

    /// Ends the message: seals the final chunk (and the full one before it, if the
    /// pending chunk is full) and hands back the buffer with the last ciphertext.
    ///
    /// # Errors
    /// [`Error::StreamTooLong`]; [`Error::Provider`].
    pub fn finish(mut self) -> Result<Sealed<B>, Error> {
        if self.emitted {
            self.filled = 0;
        }
        let mut len = 0usize;
        if self.filled == CHUNK_LEN {
            self.seal_at(0, CHUNK_LEN)?;
            len = CHUNK_LEN + TAG_LEN;
            self.filled = 0;
        }
        // The final chunk: the pending bytes, or nothing after a full chunk.
        if len == 0 {
            self.seal_at(0, self.filled)?;
            len = self.filled.saturating_add(TAG_LEN);
        } else {
            self.seal_at(len, 0)?;
            len = len.saturating_add(TAG_LEN);
        }
        Ok(Sealed { buf: self.buf, len })
    }

    /// Bytes of plaintext sealed or pending so far.
    pub fn plaintext_len(&self) -> u64 {
        let pending = if self.emitted { 0 } else { self.filled };
        self.index
            .saturating_mul(CHUNK_LEN as u64)
            .saturating_add(pending as u64)
    }

    fn seal_pending(&mut self) -> Result<&[u8], Error> {
        self.seal_at(0, CHUNK_LEN)?;
        self.emitted = true;
        Ok(self
            .buf
            .as_mut()
            .get(..CHUNK_LEN + TAG_LEN)
            .unwrap_or_default())
    }

    /// Seals `buf[start..start + len]` as the next chunk, tag after it.
    fn seal_at(&mut self, start: usize, len: usize) -> Result<(), Error> {
        let end = start.saturating_add(len);
        let data = self
            .buf
            .as_mut()
            .get_mut(start..end)
            .ok_or(Error::Provider)?;
        let tag = self.keys.seal_chunk(self.index, data)?;
        let tag_end = end.saturating_add(TAG_LEN);
        self.buf
            .as_mut()
            .get_mut(end..tag_end)
            .ok_or(Error::Provider)?
            .copy_from_slice(&tag);
        self.index = self.index.checked_add(1).ok_or(Error::StreamTooLong)?;
        Ok(())
    }
}

/// The end of a sealed message: the last ciphertext bytes, in the caller's buffer.
#[must_use = "the final chunk must be written, or the message is truncated"]
pub struct Sealed<B> {
    buf: B,
    len: usize,
}

impl<B: AsRef<[u8]>> Sealed<B> {
    /// The last ciphertext bytes to write: the final chunk (after a full chunk, if the
    /// message length is a multiple of the chunk size).
    pub fn ciphertext(&self) -> &[u8] {
        self.buf.as_ref().get(..self.len).unwrap_or_default()
    }

    /// Returns the buffer.
    pub fn into_buffer(self) -> B {
        self.buf
    }
}
