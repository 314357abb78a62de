//! std::io over the core's sealed streams: [`SealReader`] turns any plaintext reader
//! into a reader of the sealed stream (what `Storage::put` and `io::copy` want), sealing
//! batches of chunks on several threads; [`OpenReader`] turns a sealed stream into its
//! plaintext, releasing each chunk only after its tag verified.

use std::io::{self, BufRead, IoSliceMut, Read};

use coffer_core::chunked::{ChunkKeys, CHUNK_LEN};
use coffer_core::provider::{ChunkCipher, CryptoProvider, TAG_LEN};
use coffer_core::stream::{self, StreamHeader, STREAM_PREFIX_LEN};
use coffer_core::{chunked, SecretKey, Suite};

use crate::Error;

pub mod relay;

/// Chunks each thread seals or opens per batch (128 × 16 KiB = 2 MiB): enough to
/// amortise starting the threads for each batch, which at 32 chunks cost a third of
/// the time of sealing 1 GiB (`bench/peers.py`).
const CHUNKS_PER_THREAD: usize = 128;

const SEALED_CHUNK_LEN: usize = CHUNK_LEN + TAG_LEN;

/// A reader of the sealed stream of everything `inner` yields.
///
/// Plaintext is read straight into its place in a batch of sealed chunks, sealed in
/// place on `threads` threads and handed out from there ([`BufRead`] without a copy).
/// Memory is that one batch, `threads × 128` chunks (4 MiB with two threads), whatever
/// the length of the input.
pub struct SealReader<R, C> {
    inner: R,
    keys: ChunkKeys<C>,
    threads: usize,
    /// The batch; `batch[pos..len]` is sealed and not yet handed out.
    batch: Vec<u8>,
    pos: usize,
    len: usize,
    next_index: u64,
    plaintext_len: u64,
    state: State,
}

/// Where a reader stands; a failure repeats, so no caller can skip past lost data.
#[derive(Clone, Copy)]
enum State {
    Going,
    Done,
    Failed(io::ErrorKind, Option<coffer_core::Error>),
}

impl State {
    fn error(self) -> Option<io::Error> {
        match self {
            State::Failed(kind, Some(core)) => Some(io::Error::new(kind, Error::Core(core))),
            State::Failed(kind, None) => Some(io::Error::new(
                kind,
                "an earlier read of this stream failed",
            )),
            _ => None,
        }
    }
}

/// The I/O error for a core error, and the state that repeats it.
fn core_failure(e: coffer_core::Error) -> (io::Error, State) {
    let kind = match e {
        coffer_core::Error::Io(kind) => kind.into(),
        _ => io::ErrorKind::InvalidData,
    };
    (
        io::Error::new(kind, Error::Core(e)),
        State::Failed(kind, Some(e)),
    )
}

impl<R: Read, C: ChunkCipher + Sync> SealReader<R, C> {
    /// Starts sealing `inner` under `key` with `context` bound, on `threads` threads.
    ///
    /// # Errors
    /// [`Error::Core`] if the provider cannot key the cipher.
    pub fn new<P: CryptoProvider<Cipher = C>>(
        provider: &P,
        suite: Suite,
        key: &SecretKey,
        context: &[u8],
        inner: R,
        threads: usize,
    ) -> Result<Self, Error> {
        let header = StreamHeader {
            suite,
            key_id: key.id(),
        }
        .encode();
        let (keys, preamble) = chunked::begin(
            provider,
            suite,
            key,
            &[&header, context],
            &mut rand_core::OsRng,
        )?;
        let threads = threads.max(1);
        // The header and preamble go out first, from the batch's place.
        let mut batch = vec![0u8; threads * CHUNKS_PER_THREAD * SEALED_CHUNK_LEN];
        let prefix = [&header[..], &preamble].concat();
        batch[..prefix.len()].copy_from_slice(&prefix);
        Ok(SealReader {
            inner,
            keys,
            threads,
            batch,
            pos: 0,
            len: prefix.len(),
            next_index: 0,
            plaintext_len: 0,
            state: State::Going,
        })
    }

    /// The plaintext reader, once sealing is over.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Plaintext bytes read from `inner` so far.
    pub fn plaintext_len(&self) -> u64 {
        self.plaintext_len
    }

    /// Reads the next batch of plaintext into its chunks' places and seals them.
    fn seal_batch(&mut self) -> io::Result<()> {
        let (used, at_end) = read_plaintext(&mut self.inner, &mut self.batch)?;
        self.plaintext_len += (used - used.div_ceil(SEALED_CHUNK_LEN) * TAG_LEN) as u64;
        let index = in_parallel(
            &self.keys,
            self.next_index,
            &mut self.batch[..used],
            self.threads,
            seal_one,
        )
        .map_err(|e| io::Error::other(Error::Core(e)))?;
        self.next_index = index;
        self.pos = 0;
        self.len = used;
        if at_end {
            self.state = State::Done;
        }
        Ok(())
    }
}

/// Seals or opens one chunk in place: its index, its body, its tag's place.
type ChunkWork<C> = fn(&ChunkKeys<C>, u64, &mut [u8], &mut [u8]) -> Result<(), coffer_core::Error>;

/// Runs `work` over the chunks laid out in `area` (each `body ‖ tag`, the last possibly
/// short; the first at index `first`) in one share of whole chunks per thread, the last
/// share on this thread. Returns the index after the last chunk, or the first failure
/// in stream order.
fn in_parallel<C: ChunkCipher + Sync>(
    keys: &ChunkKeys<C>,
    first: u64,
    area: &mut [u8],
    threads: usize,
    work: ChunkWork<C>,
) -> Result<u64, coffer_core::Error> {
    let chunks = area.len().div_ceil(SEALED_CHUNK_LEN);
    let per_thread = (chunks.div_ceil(threads) * SEALED_CHUNK_LEN).max(1);
    let mut shares: Vec<(u64, &mut [u8])> = Vec::new();
    let mut index = first;
    for share in area.chunks_mut(per_thread) {
        let count = share.len().div_ceil(SEALED_CHUNK_LEN) as u64;
        shares.push((index, share));
        index = index
            .checked_add(count)
            .ok_or(coffer_core::Error::StreamTooLong)?;
    }
    let last = shares.pop();
    let run = move |first: u64, share: &mut [u8]| each_chunk(keys, first, share, work);
    std::thread::scope(|scope| {
        let spawned: Vec<_> = shares
            .into_iter()
            .map(|(first, share)| scope.spawn(move || run(first, share)))
            .collect();
        let mine = last.map_or(Ok(()), |(first, share)| run(first, share));
        spawned
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(coffer_core::Error::Provider)))
            .chain([mine])
            .collect::<Result<(), _>>()
    })?;
    Ok(index)
}

/// Runs `work` over the chunks of `area` in order (each `body ‖ tag`, the last possibly
/// short), the first at index `first`.
fn each_chunk<C: ChunkCipher>(
    keys: &ChunkKeys<C>,
    first: u64,
    area: &mut [u8],
    work: ChunkWork<C>,
) -> Result<(), coffer_core::Error> {
    for (i, chunk) in area.chunks_mut(SEALED_CHUNK_LEN).enumerate() {
        let (body, tag) = chunk.split_at_mut(chunk.len() - TAG_LEN);
        work(keys, first + i as u64, body, tag)?;
    }
    Ok(())
}

/// Reads plaintext into the chunk places of `batch` (each `CHUNK_LEN` bytes of body
/// and a tag's room), in one vectored read where the reader can (a file: one `readv`
/// per batch, not one `read` per chunk): returns the length of the chunks laid out,
/// tags included, and whether the input ended. Full chunks are sealed as they come
/// (chunks carry no final flag); the stream ends with a short final chunk, empty if
/// the length is a multiple of 16 KiB.
fn read_plaintext(reader: &mut impl Read, batch: &mut [u8]) -> io::Result<(usize, bool)> {
    let slots = batch.len() / SEALED_CHUNK_LEN;
    let mut bodies: Vec<IoSliceMut> = batch
        .chunks_mut(SEALED_CHUNK_LEN)
        .take(slots)
        .map(|chunk| IoSliceMut::new(&mut chunk[..CHUNK_LEN]))
        .collect();
    let mut rest = &mut bodies[..];
    let mut got = 0;
    while !rest.is_empty() {
        match reader.read_vectored(rest) {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                IoSliceMut::advance_slices(&mut rest, n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let (full, tail) = (got / CHUNK_LEN, got % CHUNK_LEN);
    if full == slots {
        return Ok((slots * SEALED_CHUNK_LEN, false));
    }
    Ok((full * SEALED_CHUNK_LEN + tail + TAG_LEN, true))
}

/// Reads sealed chunks into `batch`: returns how many bytes came and whether the stream
/// ended. Every chunk but the last is full; the stream ends with a shorter one holding
/// at least its tag. Anything else (no final chunk after full ones, a piece of a tag)
/// is a truncated stream.
fn read_sealed(
    reader: &mut impl Read,
    batch: &mut [u8],
) -> Result<(usize, bool), coffer_core::Error> {
    let got = fill(reader, batch).map_err(core_io)?;
    let at_end = got < batch.len();
    if at_end && got % SEALED_CHUNK_LEN < TAG_LEN {
        return Err(coffer_core::Error::Truncated);
    }
    Ok((got, at_end))
}

/// Seals one chunk's body in place and writes its tag.
fn seal_one<C: ChunkCipher>(
    keys: &ChunkKeys<C>,
    index: u64,
    body: &mut [u8],
    tag: &mut [u8],
) -> Result<(), coffer_core::Error> {
    tag.copy_from_slice(&keys.seal_chunk(index, body)?);
    Ok(())
}

impl<R: Read, C: ChunkCipher + Sync> BufRead for SealReader<R, C> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.len {
            match self.state {
                State::Done => return Ok(&[]),
                State::Failed(..) => {
                    return Err(self.state.error().unwrap_or(io::ErrorKind::Other.into()))
                }
                State::Going => {
                    if let Err(e) = self.seal_batch() {
                        self.state = State::Failed(e.kind(), core_error(&e));
                        return Err(e);
                    }
                }
            }
        }
        Ok(&self.batch[self.pos..self.len])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.len);
    }
}

impl<R: Read, C: ChunkCipher + Sync> Read for SealReader<R, C> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_buffered(self, buf)
    }
}

/// The plaintext of a sealed stream read from `R`.
///
/// Chunks are read a batch at a time and opened in place on `threads` threads; a
/// batch's plaintext is released only after every chunk in it verified. A read that
/// fails (wrong key, corrupted chunk N, truncated) returns an [`io::Error`] wrapping
/// [`Error::Core`] (see [`core_error`]), and every later read fails the same way;
/// `Ok(0)` comes only after the final chunk verified.
pub struct OpenReader<R, C> {
    header: StreamHeader,
    inner: R,
    keys: ChunkKeys<C>,
    threads: usize,
    /// The batch, opened in place: chunk `i`'s plaintext starts at
    /// `i * SEALED_CHUNK_LEN`; `chunks` chunks, the last with `last_body` bytes.
    batch: Vec<u8>,
    chunks: usize,
    last_body: usize,
    /// What is handed out next: chunk `chunk` of the batch, from byte `pos`.
    chunk: usize,
    pos: usize,
    next_index: u64,
    state: State,
}

impl<R: Read, C: ChunkCipher + Sync> OpenReader<R, C> {
    /// Opens the stream `inner` with `key` and `context` on one thread: checks the
    /// header, the key ID and the commitment before any chunk.
    ///
    /// # Errors
    /// [`Error::Core`]: `WrongKey`, `CommitmentMismatch`, `BadMagic`, `Truncated`, ...
    pub fn new<P: CryptoProvider<Cipher = C>>(
        provider: &P,
        key: &SecretKey,
        context: &[u8],
        inner: R,
    ) -> Result<Self, Error> {
        Self::with_threads(provider, key, context, inner, 1)
    }

    /// As [`OpenReader::new`], opening chunks on `threads` threads.
    ///
    /// # Errors
    /// As [`OpenReader::new`].
    pub fn with_threads<P: CryptoProvider<Cipher = C>>(
        provider: &P,
        key: &SecretKey,
        context: &[u8],
        mut inner: R,
        threads: usize,
    ) -> Result<Self, Error> {
        let mut prefix = [0u8; STREAM_PREFIX_LEN];
        let got = fill(&mut inner, &mut prefix).map_err(core_io)?;
        let (header, keys) = stream::accept_prefix(provider, key, context, &prefix[..got])?;
        let threads = threads.max(1);
        Ok(OpenReader {
            header,
            inner,
            keys,
            threads,
            batch: vec![0u8; threads * CHUNKS_PER_THREAD * SEALED_CHUNK_LEN],
            chunks: 0,
            last_body: 0,
            chunk: 0,
            pos: 0,
            next_index: 0,
            state: State::Going,
        })
    }

    /// The stream's header (suite, key ID).
    pub fn header(&self) -> &StreamHeader {
        &self.header
    }

    /// Plaintext length of chunk `i` of the batch.
    fn body_len(&self, i: usize) -> usize {
        if i + 1 == self.chunks {
            self.last_body
        } else {
            CHUNK_LEN
        }
    }

    /// Reads the next batch of sealed chunks and opens them.
    fn open_batch(&mut self) -> Result<(), coffer_core::Error> {
        let (got, at_end) = read_sealed(&mut self.inner, &mut self.batch)?;
        let tail = got % SEALED_CHUNK_LEN;
        let index = in_parallel(
            &self.keys,
            self.next_index,
            &mut self.batch[..got],
            self.threads,
            open_one,
        )?;
        self.next_index = index;
        self.chunks = got.div_ceil(SEALED_CHUNK_LEN);
        self.last_body = if at_end { tail - TAG_LEN } else { CHUNK_LEN };
        self.chunk = 0;
        self.pos = 0;
        if at_end {
            self.state = State::Done;
        }
        Ok(())
    }
}

/// Opens one chunk's body in place against its tag.
fn open_one<C: ChunkCipher>(
    keys: &ChunkKeys<C>,
    index: u64,
    body: &mut [u8],
    tag: &mut [u8],
) -> Result<(), coffer_core::Error> {
    let mut expected = [0u8; TAG_LEN];
    expected.copy_from_slice(tag);
    keys.open_chunk(index, body, &expected)
}

impl<R: Read, C: ChunkCipher + Sync> BufRead for OpenReader<R, C> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        // Past the batch's chunks (or an emptied one): the next batch, if any.
        while self.chunk >= self.chunks || self.pos == self.body_len(self.chunk) {
            if self.chunk < self.chunks {
                self.chunk += 1;
                self.pos = 0;
                continue;
            }
            match self.state {
                State::Done => return Ok(&[]),
                State::Failed(..) => {
                    return Err(self.state.error().unwrap_or(io::ErrorKind::Other.into()))
                }
                State::Going => {
                    if let Err(e) = self.open_batch() {
                        self.batch.fill(0);
                        let (err, state) = core_failure(e);
                        self.state = state;
                        return Err(err);
                    }
                }
            }
        }
        let start = self.chunk * SEALED_CHUNK_LEN;
        Ok(&self.batch[start + self.pos..start + self.body_len(self.chunk)])
    }

    fn consume(&mut self, n: usize) {
        if self.chunk < self.chunks {
            self.pos = (self.pos + n).min(self.body_len(self.chunk));
        }
    }
}

impl<R: Read, C: ChunkCipher + Sync> Read for OpenReader<R, C> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_buffered(self, buf)
    }
}

/// `Read::read` through a reader's own buffer.
fn read_buffered(reader: &mut impl BufRead, buf: &mut [u8]) -> io::Result<usize> {
    let ready = reader.fill_buf()?;
    let n = buf.len().min(ready.len());
    buf[..n].copy_from_slice(&ready[..n]);
    reader.consume(n);
    Ok(n)
}

/// A read error of the sealed stream as the core's opener reports one.
fn core_io(e: io::Error) -> coffer_core::Error {
    coffer_core::Error::Io(embedded_io::ErrorKind::from(e.kind()))
}

/// Reads until `buf` is full or `reader` ends; returns how many bytes were read.
fn fill<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// The core error inside an I/O error from [`OpenReader`] or [`SealReader`], if any.
pub fn core_error(e: &io::Error) -> Option<coffer_core::Error> {
    match e.get_ref()?.downcast_ref::<Error>()? {
        Error::Core(core) => Some(*core),
        _ => None,
    }
}
