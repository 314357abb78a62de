//! The streaming opener.

use embedded_io::{ErrorType, Read};
use zeroize::Zeroize;

use super::hazmat::{accept, ChunkKeys};
use super::{CHUNK_LEN, ENCRYPTED_CHUNK_LEN, OPEN_BUFFER_LEN, PREAMBLE_LEN};
use crate::provider::{ChunkCipher, CryptoProvider, Suite, TAG_LEN};
use crate::secret::SecretKey;
use crate::Error;

/// Opens a message read from an [`embedded_io::Read`], one chunk at a time, into the
/// caller's buffer of [`OPEN_BUFFER_LEN`] bytes.
///
/// ```text
///   new() ─ commitment ok ─► Reading ─ final chunk verified ─► Done (read() = Ok(0))
///     │                        │
///     └─ error                 └─ any error ─► Failed (every later call: same error)
/// ```
///
/// A chunk's plaintext is released only after its tag verified. A message that turns
/// out truncated or corrupted after some full chunks has released those chunks (they
/// are authentic): callers must treat the output as valid only once a read returned
/// `Ok(0)`, which happens only after the final chunk verified.
pub struct StreamOpener<R, C, B> {
    reader: R,
    keys: ChunkKeys<C>,
    buf: B,
    index: u64,
    pos: usize,
    len: usize,
    state: State,
}

#[derive(Clone, Copy)]
enum State {
    Reading,
    Done,
    Failed(Error),
}

impl<R: Read, C: ChunkCipher, B: AsMut<[u8]>> StreamOpener<R, C, B> {
    /// Reads the preamble from `reader` and checks the key commitment.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`]; [`Error::Truncated`] if the preamble is incomplete;
    /// [`Error::CommitmentMismatch`]; [`Error::Io`].
    pub fn new<P: CryptoProvider<Cipher = C>>(
        provider: &P,
        suite: Suite,
        key: &SecretKey,
        context: &[&[u8]],
        mut reader: R,
        mut buf: B,
    ) -> Result<Self, Error> {
        let provided = buf.as_mut().len();
        if provided < OPEN_BUFFER_LEN {
            return Err(Error::BufferTooSmall {
                needed: OPEN_BUFFER_LEN,
                provided,
            });
        }
        let mut preamble = [0u8; PREAMBLE_LEN];
        if fill(&mut reader, &mut preamble)? < PREAMBLE_LEN {
            return Err(Error::Truncated);
        }
        let keys = accept(provider, suite, key, context, &preamble)?;
        Ok(StreamOpener::from_keys(reader, keys, buf))
    }

    /// An opener over keys whose preamble the caller already checked.
    pub(crate) fn from_keys(reader: R, keys: ChunkKeys<C>, buf: B) -> Self {
        StreamOpener {
            reader,
            keys,
            buf,
            index: 0,
            pos: 0,
            len: 0,
            state: State::Reading,
        }
    }

    /// The next chunk's verified plaintext, or `None` once the final chunk verified.
    /// The slice is valid until the next call. Bytes already taken through
    /// [`Read::read`] are not returned again.
    ///
    /// # Errors
    /// [`Error::CorruptedChunk`], [`Error::Truncated`], [`Error::Io`]; once an error is
    /// returned, every later call returns it again.
    pub fn next_chunk(&mut self) -> Result<Option<&[u8]>, Error> {
        if self.pos >= self.len {
            match self.state {
                State::Failed(e) => return Err(e),
                State::Done => return Ok(None),
                State::Reading => {
                    if let Err(e) = self.read_chunk() {
                        self.state = State::Failed(e);
                        return Err(e);
                    }
                }
            }
        }
        let start = self.pos;
        self.pos = self.len;
        if start == self.len && matches!(self.state, State::Done) {
            return Ok(None);
        }
        Ok(Some(
            self.buf.as_mut().get(start..self.len).unwrap_or_default(),
        ))
    }

    /// Plaintext bytes released so far.
    pub fn released(&self) -> u64 {
        let whole = self
            .index
            .saturating_sub(1)
            .saturating_mul(CHUNK_LEN as u64);
        if self.index == 0 {
            0
        } else {
            whole.saturating_add(self.pos as u64)
        }
    }

    /// Returns the reader, positioned after the message if it was read to the end.
    pub fn into_inner(self) -> R {
        self.reader
    }

    /// Reads and opens the next chunk into the buffer.
    fn read_chunk(&mut self) -> Result<(), Error> {
        let buf = self
            .buf
            .as_mut()
            .get_mut(..ENCRYPTED_CHUNK_LEN)
            .ok_or(Error::Provider)?;
        let got = fill(&mut self.reader, buf)?;
        if got < TAG_LEN {
            // Includes end of input straight after a full chunk: the final chunk is missing.
            buf.zeroize();
            return Err(Error::Truncated);
        }
        let body_len = got.saturating_sub(TAG_LEN);
        let (body, rest) = buf.split_at_mut(body_len);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(rest.get(..TAG_LEN).unwrap_or_default());
        self.keys.open_chunk(self.index, body, &tag)?;
        self.index = self.index.checked_add(1).ok_or(Error::StreamTooLong)?;
        self.pos = 0;
        self.len = body_len;
        if got < ENCRYPTED_CHUNK_LEN {
            // A short read means the reader reached its end: this was the final chunk.
            self.state = State::Done;
        }
        Ok(())
    }
}

impl<R, C, B> ErrorType for StreamOpener<R, C, B> {
    type Error = Error;
}

impl<R: Read, C: ChunkCipher, B: AsMut<[u8]>> Read for StreamOpener<R, C, B> {
    fn read(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        if out.is_empty() {
            return Ok(0);
        }
        if self.pos >= self.len {
            match self.state {
                State::Failed(e) => return Err(e),
                State::Done => return Ok(0),
                State::Reading => {
                    if let Err(e) = self.read_chunk() {
                        self.state = State::Failed(e);
                        return Err(e);
                    }
                }
            }
        }
        let available = self
            .buf
            .as_mut()
            .get(self.pos..self.len)
            .unwrap_or_default();
        let n = available.len().min(out.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), available.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.pos = self.pos.saturating_add(n);
        Ok(n)
    }
}

/// Reads until `buf` is full or the reader ends; returns how many bytes were read.
pub(crate) fn fill<R: Read>(reader: &mut R, buf: &mut [u8]) -> Result<usize, Error> {
    let mut got = 0usize;
    while let Some(rest) = buf.get_mut(got..) {
        if rest.is_empty() {
            break;
        }
        match reader.read(rest).map_err(Error::io)? {
            0 => break,
            n => got = got.saturating_add(n.min(rest.len())),
        }
    }
    Ok(got)
}
