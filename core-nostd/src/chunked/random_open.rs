//! The random-access opener.

use embedded_io::{Read, Seek, SeekFrom};

use super::hazmat::{accept, ChunkKeys};
use super::stream_open::fill;
use super::{CHUNK_LEN, ENCRYPTED_CHUNK_LEN, OPEN_BUFFER_LEN, PREAMBLE_LEN};
use crate::provider::{ChunkCipher, CryptoProvider, Suite, TAG_LEN};
use crate::secret::SecretKey;
use crate::Error;

/// Opens any byte range of a message over [`Read`] + [`Seek`], reading only the chunks
/// that hold it, into the caller's buffer of [`OPEN_BUFFER_LEN`] bytes.
///
/// Chunk `k` starts at `start + PREAMBLE_LEN + k × ENCRYPTED_CHUNK_LEN`, and the total
/// length fixes where the final chunk is. Every chunk read is verified before its bytes
/// are copied out. A range read proves those bytes are authentic at that offset; it
/// does not prove the message was not cut short: [`RandomAccessOpener::verify_length`]
/// opens the final chunk, which authenticates the length.
pub struct RandomAccessOpener<R, C, B> {
    reader: R,
    keys: ChunkKeys<C>,
    buf: B,
    /// Offset of chunk 0 in the reader.
    chunks_start: u64,
    /// Number of chunks, the final one included.
    chunk_count: u64,
    /// Plaintext length of the final chunk.
    final_len: usize,
}

impl<R: Read + Seek, C: ChunkCipher, B: AsMut<[u8]>> RandomAccessOpener<R, C, B> {
    /// Reads the preamble of the message that starts at offset `start` and runs to the
    /// end of `reader`, checks the key commitment and works out the chunk layout.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`]; [`Error::Truncated`] if the length cannot be a valid
    /// message (a short preamble, or a final chunk shorter than a tag);
    /// [`Error::CommitmentMismatch`]; [`Error::StreamTooLong`]; [`Error::Io`].
    pub fn new<P: CryptoProvider<Cipher = C>>(
        provider: &P,
        suite: Suite,
        key: &SecretKey,
        context: &[&[u8]],
        mut reader: R,
        start: u64,
        mut buf: B,
    ) -> Result<Self, Error> {
        let provided = buf.as_mut().len();
        if provided < OPEN_BUFFER_LEN {
            return Err(Error::BufferTooSmall {
                needed: OPEN_BUFFER_LEN,
                provided,
            });
        }
        let end = reader.seek(SeekFrom::End(0)).map_err(Error::io)?;
        reader.seek(SeekFrom::Start(start)).map_err(Error::io)?;
        let mut preamble = [0u8; PREAMBLE_LEN];
        if fill(&mut reader, &mut preamble)? < PREAMBLE_LEN {
            return Err(Error::Truncated);
        }
        let keys = accept(provider, suite, key, context, &preamble)?;
        RandomAccessOpener::from_keys(
            reader,
            keys,
            buf,
            start.saturating_add(PREAMBLE_LEN as u64),
            end,
        )
    }

    /// An opener over checked keys for chunks from `chunks_start` to `end`.
    pub(crate) fn from_keys(
        reader: R,
        keys: ChunkKeys<C>,
        buf: B,
        chunks_start: u64,
        end: u64,
    ) -> Result<Self, Error> {
        let body = end.checked_sub(chunks_start).ok_or(Error::Truncated)?;
        let full = body
            .checked_div(ENCRYPTED_CHUNK_LEN as u64)
            .unwrap_or_default();
        let last = body
            .checked_rem(ENCRYPTED_CHUNK_LEN as u64)
            .unwrap_or_default();
        if last < TAG_LEN as u64 {
            // No room for the short final chunk: cut inside it, or right after a full chunk.
            return Err(Error::Truncated);
        }
        let chunk_count = full.saturating_add(1);
        if chunk_count > super::MAX_CHUNKS {
            return Err(Error::StreamTooLong);
        }
        Ok(RandomAccessOpener {
            reader,
            keys,
            buf,
            chunks_start,
            chunk_count,
            final_len: (last as usize).saturating_sub(TAG_LEN),
        })
    }

    /// The plaintext length the layout implies; authentic only after
    /// [`RandomAccessOpener::verify_length`] succeeded.
    pub fn len(&self) -> u64 {
        (self.chunk_count.saturating_sub(1))
            .saturating_mul(CHUNK_LEN as u64)
            .saturating_add(self.final_len as u64)
    }

    /// Whether the message is empty (see [`RandomAccessOpener::len`]).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of chunks, the final one included.
    pub fn chunk_count(&self) -> u64 {
        self.chunk_count
    }

    /// Opens the final chunk, which authenticates the message length, and returns it.
    ///
    /// # Errors
    /// [`Error::CorruptedChunk`] naming the final chunk; [`Error::Io`].
    pub fn verify_length(&mut self) -> Result<u64, Error> {
        self.open_chunk(self.chunk_count.saturating_sub(1))?;
        Ok(self.len())
    }

    /// Opens chunk `index` and returns its verified plaintext, valid until the next call.
    ///
    /// # Errors
    /// [`Error::ParameterOutOfBounds`] past the last chunk; [`Error::CorruptedChunk`];
    /// [`Error::Truncated`] if the reader is shorter than when it was measured;
    /// [`Error::Io`].
    pub fn open_chunk(&mut self, index: u64) -> Result<&[u8], Error> {
        let last = self.chunk_count.saturating_sub(1);
        if index > last {
            return Err(Error::ParameterOutOfBounds {
                parameter: "chunk index",
                value: index,
                min: 0,
                max: last,
            });
        }
        let body_len = if index == last {
            self.final_len
        } else {
            CHUNK_LEN
        };
        let offset = index
            .checked_mul(ENCRYPTED_CHUNK_LEN as u64)
            .and_then(|o| o.checked_add(self.chunks_start))
            .ok_or(Error::StreamTooLong)?;
        self.reader
            .seek(SeekFrom::Start(offset))
            .map_err(Error::io)?;
        let wire_len = body_len.saturating_add(TAG_LEN);
        let buf = self
            .buf
            .as_mut()
            .get_mut(..wire_len)
            .ok_or(Error::Provider)?;
        if fill(&mut self.reader, buf)? < wire_len {
            return Err(Error::Truncated);
        }
        let (body, tag_bytes) = buf.split_at_mut(body_len);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(tag_bytes);
        self.keys.open_chunk(index, body, &tag)?;
        Ok(body)
    }

    /// Copies verified plaintext from `offset` into `out`; returns how many bytes were
    /// copied (fewer than `out.len()` only at the end of the message).
    ///
    /// # Errors
    /// As [`RandomAccessOpener::open_chunk`].
    pub fn read_at(&mut self, offset: u64, out: &mut [u8]) -> Result<usize, Error> {
        let total = self.len();
        let mut done = 0usize;
        while done < out.len() {
            let at = offset.saturating_add(done as u64);
            if at >= total {
                break;
            }
            let index = at.checked_div(CHUNK_LEN as u64).unwrap_or_default();
            let within = at.checked_rem(CHUNK_LEN as u64).unwrap_or_default() as usize;
            let plain = self.open_chunk(index)?;
            let available = plain.get(within..).unwrap_or_default();
            let dst = out.get_mut(done..).unwrap_or_default();
            let n = available.len().min(dst.len());
            if let (Some(d), Some(s)) = (dst.get_mut(..n), available.get(..n)) {
                d.copy_from_slice(s);
            }
            if n == 0 {
                break;
            }
            done = done.saturating_add(n);
        }
        Ok(done)
    }

    /// Returns the reader.
    pub fn into_inner(self) -> R {
        self.reader
    }
}
