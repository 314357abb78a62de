//! Batches of chunks: the scheme's stream rules, kept once, for callers that seal or open
//! many chunks at a time, in place, on as many threads as they have. Sans-IO: no reader,
//! no writer, no allocation; the caller moves the bytes and runs the threads.
//!
//! A *batch buffer* is consecutive chunk places of [`ENCRYPTED_CHUNK_LEN`] bytes, each
//! `body ‖ tag`: chunk `k` of a batch at `k × ENCRYPTED_CHUNK_LEN`, its body first. These
//! are exactly the chunks' bytes on the wire, so a sealed batch is written out as it lies
//! and sealed input is read straight into one.
//!
//! ```text
//!   sealing                                    opening
//!   BatchSealer::new ─► sealer, cursor,        BatchOpener::new / stream::accept_prefix
//!                       preamble (write it)      ─► opener, cursor
//!   ┌► read plaintext into SealCursor::bodies   ┌► read sealed bytes into the buffer
//!   │  cursor.next_batch(buf, n, ended)         │  cursor.next_batch(n, ended)
//!   │    ─► Batch (its Layout)                  │    ─► Batch (its Layout), or Truncated
//!   │  batch.shares(buf, k): seal_share each,   │  batch.shares(buf, k): open_share each,
//!   │    on any thread                          │    on any thread
//!   │  write the layout's len() bytes of buf    │  all opened: release layout.bodies(buf)
//!   └─ until layout.is_final()                  └─ until layout.is_final()
//!      (then next_batch refuses)                   (then next_batch refuses)
//! ```
//!
//! The *cursors*, [`SealCursor`] and [`OpenCursor`], hold the stream position and apply
//! the format's rules (FORMAT.md §4.2–§4.5) to what the caller read: which chunk is final
//! (a full batch never ends a message, so a plaintext that fills its last batch gets its
//! empty final chunk in the next one), whether sealed input was cut short, every chunk's
//! index, and the limit of [`MAX_CHUNKS`]. They hand out a [`Batch`], which a caller can
//! only split into [`Share`]s of whole chunks and give, each once, to the
//! [`BatchSealer`] or [`BatchOpener`] made with that cursor; a share of another stream or
//! of the other direction is refused. The sealer and opener own the keys and work by
//! `&self`, so shares run on several threads when the cipher is `Sync`. So every index is
//! sealed once, and no chunk is final unless the input ended there.
//!
//! The cursor and the keys are separate values so that a pipeline can keep the cursor
//! with its reader (behind a lock) while workers seal or open earlier batches.
//!
//! **Released plaintext.** A share's chunks are opened in order, and on the first that
//! fails the whole share is zeroed. A batch's plaintext may be released once every one
//! of its shares opened; when one failed, the plaintext of the shares that did open is
//! the caller's to discard. As with [`super::StreamOpener`], batches released before a
//! failure are authentic, but the output is whole only once the final batch opened.

use core::fmt;
use core::ops::Range;

use rand_core::CryptoRngCore;
use zeroize::Zeroize;

use super::hazmat::{self, ChunkKeys};
use super::{CHUNK_LEN, ENCRYPTED_CHUNK_LEN, MAX_CHUNKS, PREAMBLE_LEN, SALT_LEN};
use crate::provider::{ChunkCipher, CryptoProvider, Suite, TAG_LEN};
use crate::secret::SecretKey;
use crate::Error;

/// The length of a batch buffer with room for `chunks` chunks.
pub const fn batch_len(chunks: usize) -> usize {
    chunks.saturating_mul(ENCRYPTED_CHUNK_LEN)
}

/// Seals the shares of batches laid out by its [`SealCursor`]. See the
/// [module docs](self) for the whole cycle.
///
/// ```text
///   new() ─► (sealer, cursor, preamble)
///   cursor.next_batch() ─► Batch ─► shares() ─► seal_share() each, any thread
/// ```
pub struct BatchSealer<C> {
    keys: ChunkKeys<C>,
    stream: StreamTag,
}

impl<C: ChunkCipher> BatchSealer<C> {
    /// Starts a message under `key` and `context`: draws a salt from `rng` and returns
    /// the sealer, its cursor, and the preamble (`salt ‖ commitment`) to write before any
    /// batch.
    ///
    /// # Errors
    /// [`Error::ParameterOutOfBounds`] for more than
    /// [`MAX_CONTEXT_PARTS`](super::MAX_CONTEXT_PARTS) context parts;
    /// [`Error::Provider`].
    pub fn new<P: CryptoProvider<Cipher = C>>(
        provider: &P,
        suite: Suite,
        key: &SecretKey,
        context: &[&[u8]],
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Self, SealCursor, [u8; PREAMBLE_LEN]), Error> {
        let (keys, preamble) = hazmat::begin(provider, suite, key, context, rng)?;
        let (sealer, cursor) = BatchSealer::from_keys(keys, &preamble);
        Ok((sealer, cursor, preamble))
    }

    /// A sealer and its cursor over keys from [`hazmat::begin`] and their preamble.
    pub(crate) fn from_keys(
        keys: ChunkKeys<C>,
        preamble: &[u8; PREAMBLE_LEN],
    ) -> (Self, SealCursor) {
        let stream = stream_tag(preamble);
        let cursor = SealCursor {
            stream,
            next_index: 0,
            plaintext_len: 0,
            position: Position::Going,
        };
        (BatchSealer { keys, stream }, cursor)
    }

    /// Seals every chunk of `share` in place: each body is encrypted and its tag written
    /// after it.
    ///
    /// # Errors
    /// [`Error::BatchMisuse`] for a share laid out by another stream's cursor or by an
    /// opener's; [`Error::Provider`].
    pub fn seal_share(&self, share: Share<'_>) -> Result<(), Error> {
        share.check(self.stream, Direction::Seal)?;
        let Share {
            first_index, area, ..
        } = share;
        for (i, chunk) in area.chunks_mut(ENCRYPTED_CHUNK_LEN).enumerate() {
            let (body, tag) = split_chunk(chunk)?;
            tag.copy_from_slice(
                &self
                    .keys
                    .seal_chunk(first_index.saturating_add(i as u64), body)?,
            );
        }
        Ok(())
    }
}

/// Opens the shares of batches laid out by its [`OpenCursor`]. See the
/// [module docs](self) for the whole cycle.
///
/// ```text
///   new() or stream::accept_prefix() ─► (opener, cursor)   (commitment checked)
///   cursor.next_batch() ─► Batch ─► shares() ─► open_share() each, any thread
/// ```
pub struct BatchOpener<C> {
    keys: ChunkKeys<C>,
    stream: StreamTag,
}

impl<C: ChunkCipher> BatchOpener<C> {
    /// Checks a message's preamble against the key and context, in constant time, and
    /// returns the opener of its chunks and its cursor.
    ///
    /// # Errors
    /// [`Error::CommitmentMismatch`] for a wrong key, wrong context or altered preamble;
    /// [`Error::ParameterOutOfBounds`] for too many context parts; [`Error::Provider`].
    pub fn new<P: CryptoProvider<Cipher = C>>(
        provider: &P,
        suite: Suite,
        key: &SecretKey,
        context: &[&[u8]],
        preamble: &[u8; PREAMBLE_LEN],
    ) -> Result<(Self, OpenCursor), Error> {
        let keys = hazmat::accept(provider, suite, key, context, preamble)?;
        Ok(BatchOpener::from_keys(keys, preamble))
    }

    /// An opener and its cursor over keys [`hazmat::accept`] returned for `preamble`.
    pub(crate) fn from_keys(
        keys: ChunkKeys<C>,
        preamble: &[u8; PREAMBLE_LEN],
    ) -> (Self, OpenCursor) {
        let stream = stream_tag(preamble);
        let cursor = OpenCursor {
            stream,
            next_index: 0,
            position: Position::Going,
        };
        (BatchOpener { keys, stream }, cursor)
    }

    /// Opens every chunk of `share` in place, in order: each body is verified against
    /// the tag after it and only then decrypted. If one fails, the whole share is
    /// zeroed, so it holds no plaintext at all.
    ///
    /// # Errors
    /// [`Error::CorruptedChunk`] naming the first chunk that failed;
    /// [`Error::BatchMisuse`] for a share laid out by another stream's cursor or by a
    /// sealer's; [`Error::Provider`].
    pub fn open_share(&self, share: Share<'_>) -> Result<(), Error> {
        share.check(self.stream, Direction::Open)?;
        let Share {
            first_index, area, ..
        } = share;
        let opened = open_each(&self.keys, first_index, area);
        if opened.is_err() {
            area.zeroize();
        }
        opened
    }
}

/// The stream position of a [`BatchSealer`]: lays out each batch of plaintext the caller
/// read, deciding which chunk is final and every chunk's index.
///
/// ```text
///   Going ─ next_batch(…, ended: false) or a full batch ─► Going
///     │
///     ├─ next_batch(…, ended: true), room for the final chunk ─► Ended
///     │     (every later next_batch: BatchMisuse)
///     └─ past MAX_CHUNKS ─► Failed (every later next_batch: StreamTooLong)
/// ```
///
/// A call refused for its arguments (`BufferTooSmall`, `ParameterOutOfBounds`) changes
/// nothing.
#[derive(Debug)]
#[must_use = "a message is sealed only when its final batch was laid out and sealed"]
pub struct SealCursor {
    stream: StreamTag,
    next_index: u64,
    plaintext_len: u64,
    position: Position,
}

impl SealCursor {
    /// The places in a batch buffer where plaintext goes, in order: the body of each of
    /// its `batch.len() / ENCRYPTED_CHUNK_LEN` chunk places, [`CHUNK_LEN`] bytes each.
    /// Fill them in order (one vectored read suits), then call
    /// [`SealCursor::next_batch`] with how many bytes were written.
    pub fn bodies(batch: &mut [u8]) -> impl Iterator<Item = &mut [u8]> {
        batch
            .chunks_exact_mut(ENCRYPTED_CHUNK_LEN)
            .map(|place| place.get_mut(..CHUNK_LEN).unwrap_or_default())
    }

    /// Lays out the next batch: `plaintext_len` bytes written into the first
    /// [`SealCursor::bodies`] of `batch`, and whether the input ended after them.
    ///
    /// Full chunks are never final. If the input ended and the batch has room left, its
    /// last chunk is the short final one (empty if `plaintext_len` is a multiple of
    /// [`CHUNK_LEN`]) and the batch is final. If the plaintext filled the batch, the
    /// batch is not final even when the input ended: the next call, with no plaintext
    /// and `ended`, lays out the empty final chunk.
    ///
    /// # Errors
    /// - [`Error::BufferTooSmall`] if `batch` has no room for one chunk;
    /// - [`Error::ParameterOutOfBounds`] if `plaintext_len` exceeds the bodies' room, or
    ///   leaves a partial chunk while the input has not ended;
    /// - [`Error::StreamTooLong`] if the batch would pass [`MAX_CHUNKS`] chunks; this
    ///   and every later call;
    /// - [`Error::BatchMisuse`] after the final batch.
    pub fn next_batch(
        &mut self,
        batch: &[u8],
        plaintext_len: usize,
        ended: bool,
    ) -> Result<Batch, Error> {
        self.position.check()?;
        let slots = batch
            .len()
            .checked_div(ENCRYPTED_CHUNK_LEN)
            .unwrap_or_default();
        if slots == 0 {
            return Err(Error::BufferTooSmall {
                needed: ENCRYPTED_CHUNK_LEN,
                provided: batch.len(),
            });
        }
        let room = slots.saturating_mul(CHUNK_LEN);
        if plaintext_len > room {
            return Err(Error::ParameterOutOfBounds {
                parameter: "plaintext bytes in a batch",
                value: plaintext_len as u64,
                min: 0,
                max: room as u64,
            });
        }
        let full = plaintext_len.checked_div(CHUNK_LEN).unwrap_or_default();
        let tail = plaintext_len.checked_rem(CHUNK_LEN).unwrap_or_default();
        if !ended && tail != 0 {
            return Err(Error::ParameterOutOfBounds {
                parameter: "plaintext bytes after the whole chunks of a batch, input not ended",
                value: tail as u64,
                min: 0,
                max: 0,
            });
        }
        // A full batch never ends the message: its empty final chunk needs a place.
        let is_final = ended && full < slots;
        let (chunks, last_body) = if is_final {
            (full.saturating_add(1), tail)
        } else {
            (full, CHUNK_LEN)
        };
        let first_index = self.position.claim(&mut self.next_index, chunks)?;
        self.plaintext_len = self.plaintext_len.saturating_add(plaintext_len as u64);
        if is_final {
            self.position = Position::Ended;
        }
        Ok(Batch {
            stream: self.stream,
            direction: Direction::Seal,
            layout: Layout {
                first_index,
                chunks,
                last_body,
                is_final,
            },
        })
    }

    /// Plaintext bytes in the batches laid out so far.
    pub fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }

    /// Whether the final batch was laid out.
    pub fn is_finished(&self) -> bool {
        matches!(self.position, Position::Ended)
    }
}

/// The stream position of a [`BatchOpener`]: lays out each batch of sealed bytes the
/// caller read, deciding which chunk is final, whether the input was cut short, and
/// every chunk's index.
///
/// ```text
///   Going ─ next_batch(n, ended: false), whole chunks ─► Going
///     │
///     ├─ next_batch(n, ended: true), a final chunk of ≥ 16 bytes ─► Ended
///     │     (every later next_batch: BatchMisuse)
///     └─ cut short, or past MAX_CHUNKS ─► Failed (every later next_batch: that error)
/// ```
///
/// A call refused for its arguments (`ParameterOutOfBounds`) changes nothing.
#[derive(Debug)]
pub struct OpenCursor {
    stream: StreamTag,
    next_index: u64,
    position: Position,
}

impl OpenCursor {
    /// Lays out the next batch: `sealed_len` bytes read into the start of a batch
    /// buffer, and whether the input ended after them.
    ///
    /// Before the end every chunk is full, so `sealed_len` must be a whole number of
    /// chunks. At the end the bytes after the full chunks are the final chunk, which
    /// holds at least its tag: fewer (none at all, after full chunks or in an empty
    /// message, or a piece of a tag) means the message was cut short.
    ///
    /// # Errors
    /// - [`Error::Truncated`] as above; this and every later call;
    /// - [`Error::StreamTooLong`] if the batch would pass [`MAX_CHUNKS`] chunks; this
    ///   and every later call;
    /// - [`Error::ParameterOutOfBounds`] if the input has not ended and `sealed_len`
    ///   leaves a partial chunk;
    /// - [`Error::BatchMisuse`] after the final batch.
    pub fn next_batch(&mut self, sealed_len: usize, ended: bool) -> Result<Batch, Error> {
        self.position.check()?;
        let full = sealed_len
            .checked_div(ENCRYPTED_CHUNK_LEN)
            .unwrap_or_default();
        let tail = sealed_len
            .checked_rem(ENCRYPTED_CHUNK_LEN)
            .unwrap_or_default();
        let (chunks, last_body) = if ended {
            // The final chunk holds at least its tag; anything less is a cut.
            let Some(body) = tail.checked_sub(TAG_LEN) else {
                return Err(self.position.fail(Error::Truncated));
            };
            (full.saturating_add(1), body)
        } else if tail == 0 {
            (full, CHUNK_LEN)
        } else {
            return Err(Error::ParameterOutOfBounds {
                parameter: "sealed bytes after the whole chunks of a batch, input not ended",
                value: tail as u64,
                min: 0,
                max: 0,
            });
        };
        let first_index = self.position.claim(&mut self.next_index, chunks)?;
        if ended {
            self.position = Position::Ended;
        }
        Ok(Batch {
            stream: self.stream,
            direction: Direction::Open,
            layout: Layout {
                first_index,
                chunks,
                last_body,
                is_final: ended,
            },
        })
    }

    /// Whether the final batch was laid out.
    pub fn is_finished(&self) -> bool {
        matches!(self.position, Position::Ended)
    }
}

/// One batch laid out by a cursor: its chunks' indices and places. It is used up by
/// splitting it into [`Share`]s, so each of its chunks is sealed or opened once; keep
/// its [`Layout`] to find the chunks afterwards.
#[must_use = "a batch's chunks are sealed or opened only through its shares"]
pub struct Batch {
    stream: StreamTag,
    direction: Direction,
    layout: Layout,
}

impl Batch {
    /// Where the batch's chunks lie, and what they are.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Splits the batch's chunks in `buf` (the buffer it was laid out for) into at most
    /// `parts` shares of whole chunks, in stream order, each as many chunks as the
    /// others but the last, which may have fewer (and holds the final chunk of a final
    /// batch). A batch of no chunks has no shares.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `buf` is shorter than the batch.
    pub fn shares(self, buf: &mut [u8], parts: usize) -> Result<Shares<'_>, Error> {
        let area = self.area(buf)?;
        let per_share = self.layout.chunks.div_ceil(parts.max(1)).max(1);
        Ok(Shares {
            stream: self.stream,
            direction: self.direction,
            next_index: self.layout.first_index,
            share_len: batch_len(per_share),
            rest: area,
        })
    }

    /// The whole batch as one share, to seal or open on this thread.
    ///
    /// # Errors
    /// [`Error::BufferTooSmall`] if `buf` is shorter than the batch.
    pub fn share(self, buf: &mut [u8]) -> Result<Share<'_>, Error> {
        let area = self.area(buf)?;
        Ok(Share {
            stream: self.stream,
            direction: self.direction,
            first_index: self.layout.first_index,
            area,
        })
    }

    fn area<'b>(&self, buf: &'b mut [u8]) -> Result<&'b mut [u8], Error> {
        let needed = self.layout.len();
        let provided = buf.len();
        buf.get_mut(..needed)
            .ok_or(Error::BufferTooSmall { needed, provided })
    }
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("direction", &self.direction)
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

/// Where a batch's chunks lie in its buffer, and what they are: chunk `k` of the batch
/// (stream index `first_index() + k`) at `k × ENCRYPTED_CHUNK_LEN`, its body first, then
/// its tag. Every chunk is full but the last of a final batch. The default is a batch of
/// no chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Layout {
    first_index: u64,
    chunks: usize,
    /// Body length of the last chunk: [`CHUNK_LEN`] unless the batch is final.
    last_body: usize,
    is_final: bool,
}

impl Layout {
    /// Stream index of the batch's first chunk.
    pub fn first_index(&self) -> u64 {
        self.first_index
    }

    /// Number of chunks in the batch.
    pub fn chunks(&self) -> usize {
        self.chunks
    }

    /// Bytes of the batch on the wire (bodies and tags): what a sealer writes, what an
    /// opener read.
    pub fn len(&self) -> usize {
        self.body(self.chunks.saturating_sub(1))
            .map_or(0, |body| body.end.saturating_add(TAG_LEN))
    }

    /// Whether the batch has no chunks.
    pub fn is_empty(&self) -> bool {
        self.chunks == 0
    }

    /// Whether the batch ends the message (its last chunk is the final one).
    pub fn is_final(&self) -> bool {
        self.is_final
    }

    /// Plaintext bytes in the batch: the sum of its bodies.
    pub fn plaintext_len(&self) -> usize {
        self.len()
            .saturating_sub(self.chunks.saturating_mul(TAG_LEN))
    }

    /// The place of chunk `chunk`'s body in the batch buffer, or `None` past the last.
    pub fn body(&self, chunk: usize) -> Option<Range<usize>> {
        if chunk >= self.chunks {
            return None;
        }
        let start = batch_len(chunk);
        let len = if chunk.saturating_add(1) == self.chunks {
            self.last_body
        } else {
            CHUNK_LEN
        };
        Some(start..start.saturating_add(len))
    }

    /// The bodies of the batch's chunks in `buf`, in order: after opening, the
    /// plaintext to release, without the tags between.
    pub fn bodies<'b>(&self, buf: &'b [u8]) -> impl Iterator<Item = &'b [u8]> {
        let layout = *self;
        (0..self.chunks).map(move |chunk| {
            layout
                .body(chunk)
                .and_then(|body| buf.get(body))
                .unwrap_or_default()
        })
    }
}

/// Shares of a batch, in stream order (see [`Batch::shares`]).
pub struct Shares<'a> {
    stream: StreamTag,
    direction: Direction,
    next_index: u64,
    share_len: usize,
    rest: &'a mut [u8],
}

impl<'a> Iterator for Shares<'a> {
    type Item = Share<'a>;

    fn next(&mut self) -> Option<Share<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = core::mem::take(&mut self.rest);
        let (area, rest) = rest.split_at_mut(self.share_len.min(rest.len()));
        self.rest = rest;
        let first_index = self.next_index;
        self.next_index = first_index.saturating_add(chunks_in(area.len()) as u64);
        Some(Share {
            stream: self.stream,
            direction: self.direction,
            first_index,
            area,
        })
    }
}

/// Whole chunks of one batch, in their place in its buffer, to be sealed or opened once
/// by [`BatchSealer::seal_share`] or [`BatchOpener::open_share`], on any thread.
#[must_use = "a share does nothing until it is sealed or opened"]
pub struct Share<'a> {
    stream: StreamTag,
    direction: Direction,
    first_index: u64,
    area: &'a mut [u8],
}

impl Share<'_> {
    /// Stream index of the share's first chunk.
    pub fn first_index(&self) -> u64 {
        self.first_index
    }

    /// Number of chunks in the share.
    pub fn chunks(&self) -> usize {
        chunks_in(self.area.len())
    }

    /// Bytes of the share's chunks, bodies and tags.
    pub fn len(&self) -> usize {
        self.area.len()
    }

    /// Whether the share has no chunks.
    pub fn is_empty(&self) -> bool {
        self.area.is_empty()
    }

    fn check(&self, stream: StreamTag, direction: Direction) -> Result<(), Error> {
        if self.direction != direction {
            return Err(Error::BatchMisuse {
                what: "a share laid out for the other direction",
            });
        }
        if self.stream != stream {
            return Err(Error::BatchMisuse {
                what: "a share laid out by another stream's cursor",
            });
        }
        Ok(())
    }
}

impl fmt::Debug for Share<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Share")
            .field("direction", &self.direction)
            .field("first_index", &self.first_index)
            .field("len", &self.area.len())
            .finish_non_exhaustive()
    }
}

/// Which stream a batch belongs to: the first bytes of its key commitment, which differ
/// between messages (they depend on the key, the salt and the context) and are public.
type StreamTag = [u8; 8];

fn stream_tag(preamble: &[u8; PREAMBLE_LEN]) -> StreamTag {
    let mut tag = [0u8; 8];
    if let Some(commitment) = preamble.get(SALT_LEN..SALT_LEN + 8) {
        tag.copy_from_slice(commitment);
    }
    tag
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Seal,
    Open,
}

/// Where a cursor stands.
#[derive(Debug, Clone, Copy)]
enum Position {
    Going,
    Ended,
    Failed(Error),
}

impl Position {
    /// Refuses a batch after the final one or after a failure.
    fn check(self) -> Result<(), Error> {
        match self {
            Position::Going => Ok(()),
            Position::Ended => Err(Error::BatchMisuse {
                what: "a batch asked for after the final one",
            }),
            Position::Failed(e) => Err(e),
        }
    }

    /// Remembers `e`, which every later call returns, and returns it.
    fn fail(&mut self, e: Error) -> Error {
        *self = Position::Failed(e);
        e
    }

    /// Takes the indices of `chunks` chunks from `next_index` on; returns the first.
    fn claim(&mut self, next_index: &mut u64, chunks: usize) -> Result<u64, Error> {
        let first = *next_index;
        match first
            .checked_add(chunks as u64)
            .filter(|&end| end <= MAX_CHUNKS)
        {
            Some(end) => {
                *next_index = end;
                Ok(first)
            }
            None => Err(self.fail(Error::StreamTooLong)),
        }
    }
}

/// Chunks in `len` bytes of a batch: full ones, and a short final one if any.
fn chunks_in(len: usize) -> usize {
    len.div_ceil(ENCRYPTED_CHUNK_LEN)
}

/// A chunk's body and its tag's place.
fn split_chunk(chunk: &mut [u8]) -> Result<(&mut [u8], &mut [u8]), Error> {
    // A share holds whole chunks of at least a tag each (the cursors lay them out so).
    let body_len = chunk.len().checked_sub(TAG_LEN).ok_or(Error::Provider)?;
    Ok(chunk.split_at_mut(body_len))
}

/// Opens the chunks of `area` in order, the first at index `first_index`.
fn open_each<C: ChunkCipher>(
    keys: &ChunkKeys<C>,
    first_index: u64,
    area: &mut [u8],
) -> Result<(), Error> {
    for (i, chunk) in area.chunks_mut(ENCRYPTED_CHUNK_LEN).enumerate() {
        let (body, tag_bytes) = split_chunk(chunk)?;
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(tag_bytes);
        keys.open_chunk(first_index.saturating_add(i as u64), body, &tag)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
