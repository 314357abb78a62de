//! std::io over the core's sealed streams: [`SealReader`] turns any plaintext reader
//! into a reader of the sealed stream (what `Storage::put` and `io::copy` want), sealing
//! batches of chunks on several threads; [`OpenReader`] turns a sealed stream into its
//! plaintext, releasing each chunk only after its tag verified.

use std::io::{self, BufRead, IoSliceMut, Read};

use coffer_core::chunked::batch::{
    batch_len, BatchOpener, BatchSealer, Layout, OpenCursor, SealCursor, Share, Shares,
};
use coffer_core::provider::{ChunkCipher, CryptoProvider};
use coffer_core::stream::{self, StreamHeader, STREAM_PREFIX_LEN};
use coffer_core::{SecretKey, Suite};

use crate::Error;

pub mod relay;

/// Chunks each thread seals or opens per batch (128 × 16 KiB = 2 MiB): enough to
/// amortise starting the threads for each batch, which at 32 chunks cost a third of
/// the time of sealing 1 GiB (`bench/peers.py`).
const CHUNKS_PER_THREAD: usize = 128;

/// A reader of the sealed stream of everything `inner` yields.
///
/// Plaintext is read straight into its place in a batch of sealed chunks (the bodies the
/// core's [`SealCursor`] names), sealed in place on `threads` threads and handed out from
/// there ([`BufRead`] without a copy); the core lays out each batch (which chunk is
/// final, every index). Memory is that one batch, `threads × 128` chunks (4 MiB with two threads), whatever
/// the length of the input.
pub struct SealReader<R, C> {
    inner: R,
    sealer: BatchSealer<C>,
    cursor: SealCursor,
    threads: usize,
    /// The batch; `batch[pos..len]` is sealed and not yet handed out.
    batch: Vec<u8>,
    pos: usize,
    len: usize,
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
        let (sealer, cursor, prefix) =
            stream::seal_batches(provider, suite, key, context, &mut rand_core::OsRng)?;
        let threads = threads.max(1);
        // The header and preamble go out first, from the batch's place.
        let mut batch = vec![0u8; batch_len(threads * CHUNKS_PER_THREAD)];
        batch[..prefix.len()].copy_from_slice(&prefix);
        Ok(SealReader {
            inner,
            sealer,
            cursor,
            threads,
            batch,
            pos: 0,
            len: prefix.len(),
            state: State::Going,
        })
    }

    /// The plaintext reader, once sealing is over.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Plaintext bytes read from `inner` so far.
    pub fn plaintext_len(&self) -> u64 {
        self.cursor.plaintext_len()
    }

    /// Reads the next batch of plaintext into its chunks' places and seals them.
    fn seal_batch(&mut self) -> io::Result<()> {
        let (filled, ended) = read_bodies(&mut self.inner, SealCursor::bodies(&mut self.batch))?;
        let sealing = |e| io::Error::other(Error::Core(e));
        let batch = self
            .cursor
            .next_batch(&self.batch, filled, ended)
            .map_err(sealing)?;
        let layout = batch.layout();
        let shares = batch
            .shares(&mut self.batch, self.threads)
            .map_err(sealing)?;
        in_parallel(shares, |share| self.sealer.seal_share(share)).map_err(sealing)?;
        self.pos = 0;
        self.len = layout.len();
        if layout.is_final() {
            self.state = State::Done;
        }
        Ok(())
    }
}

/// Runs `work` on each share, one share per thread, the last on this thread. Returns the
/// first failure in stream order.
fn in_parallel<'a>(
    shares: Shares<'a>,
    work: impl Fn(Share<'a>) -> Result<(), coffer_core::Error> + Sync,
) -> Result<(), coffer_core::Error> {
    let mut shares: Vec<Share<'a>> = shares.collect();
    let last = shares.pop();
    let work = &work;
    std::thread::scope(|scope| {
        let spawned: Vec<_> = shares
            .into_iter()
            .map(|share| scope.spawn(move || work(share)))
            .collect();
        let mine = last.map_or(Ok(()), work);
        spawned
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(coffer_core::Error::Provider)))
            .chain([mine])
            .collect::<Result<(), _>>()
    })
}

/// Reads plaintext into the chunk bodies the core names (`SealCursor::bodies`), in one
/// vectored read where the reader can (a file: one `readv` per batch, not one `read` per
/// chunk): returns how many bytes came and whether the input ended (a read returned
/// nothing before every body was full).
fn read_bodies<'b>(
    reader: &mut impl Read,
    bodies: impl Iterator<Item = &'b mut [u8]>,
) -> io::Result<(usize, bool)> {
    let mut bodies: Vec<IoSliceMut> = bodies.map(IoSliceMut::new).collect();
    let mut rest = &mut bodies[..];
    let mut got = 0;
    while !rest.is_empty() {
        match reader.read_vectored(rest) {
            Ok(0) => return Ok((got, true)),
            Ok(n) => {
                got += n;
                IoSliceMut::advance_slices(&mut rest, n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((got, false))
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
    opener: BatchOpener<C>,
    cursor: OpenCursor,
    threads: usize,
    /// The batch, opened in place where `layout` says.
    batch: Vec<u8>,
    layout: Layout,
    /// What is handed out next: chunk `chunk` of the batch, from byte `pos` of its body.
    chunk: usize,
    pos: usize,
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
        let (header, opener, cursor) =
            stream::accept_prefix(provider, key, context, &prefix[..got])?;
        let threads = threads.max(1);
        Ok(OpenReader {
            header,
            inner,
            opener,
            cursor,
            threads,
            batch: vec![0u8; batch_len(threads * CHUNKS_PER_THREAD)],
            layout: Layout::default(),
            chunk: 0,
            pos: 0,
            state: State::Going,
        })
    }

    /// The stream's header (suite, key ID).
    pub fn header(&self) -> &StreamHeader {
        &self.header
    }

    /// Plaintext length of chunk `i` of the batch.
    fn body_len(&self, i: usize) -> usize {
        self.layout.body(i).map_or(0, |body| body.len())
    }

    /// Reads the next batch of sealed chunks and opens them.
    fn open_batch(&mut self) -> Result<(), coffer_core::Error> {
        let got = fill(&mut self.inner, &mut self.batch).map_err(core_io)?;
        let batch = self.cursor.next_batch(got, got < self.batch.len())?;
        let layout = batch.layout();
        let shares = batch.shares(&mut self.batch, self.threads)?;
        in_parallel(shares, |share| self.opener.open_share(share))?;
        self.layout = layout;
        self.chunk = 0;
        self.pos = 0;
        if layout.is_final() {
            self.state = State::Done;
        }
        Ok(())
    }
}

impl<R: Read, C: ChunkCipher + Sync> BufRead for OpenReader<R, C> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        // Past the batch's chunks (or an emptied one): the next batch, if any.
        while self.chunk >= self.layout.chunks() || self.pos == self.body_len(self.chunk) {
            if self.chunk < self.layout.chunks() {
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
        let body = self.layout.body(self.chunk).unwrap_or_default();
        Ok(&self.batch[body.start + self.pos..body.end])
    }

    fn consume(&mut self, n: usize) {
        if self.chunk < self.layout.chunks() {
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
