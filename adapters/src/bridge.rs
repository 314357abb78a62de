//! std::io over the core's sealed streams: [`SealReader`] turns any plaintext reader
//! into a reader of the sealed stream (what `Storage::put` and `io::copy` want), sealing
//! batches of chunks on several threads; [`OpenReader`] turns a sealed stream into its
//! plaintext, releasing each chunk only after its tag verified.

use std::io::{self, Read};

use coffer_core::chunked::{self, ChunkKeys, CHUNK_LEN, OPEN_BUFFER_LEN};
use coffer_core::provider::{ChunkCipher, CryptoProvider, TAG_LEN};
use coffer_core::stream::{self, StreamHeader};
use coffer_core::{SecretKey, Suite};
use embedded_io_adapters::std::FromStd;

use crate::Error;

/// Chunks each sealing thread takes per batch: big enough to amortise the thread
/// hand-off, small enough that a batch stays in cache (8 × 16 KiB).
const CHUNKS_PER_THREAD: usize = 8;

const SEALED_CHUNK_LEN: usize = CHUNK_LEN + TAG_LEN;

/// A reader of the sealed stream of everything `inner` yields.
///
/// Memory is two batch buffers of `threads × 8` chunks (256 KiB each with two
/// threads), whatever the length of the input.
pub struct SealReader<R, C> {
    inner: R,
    keys: ChunkKeys<C>,
    threads: usize,
    plain: Vec<u8>,
    sealed: Vec<u8>,
    sealed_pos: usize,
    next_index: u64,
    plaintext_len: u64,
    finished: bool,
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
        Ok(SealReader {
            inner,
            keys,
            threads,
            plain: Vec::with_capacity(threads * CHUNKS_PER_THREAD * CHUNK_LEN),
            sealed: [&header[..], &preamble].concat(),
            sealed_pos: 0,
            next_index: 0,
            plaintext_len: 0,
            finished: false,
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

    /// Reads the next batch of plaintext and seals it into `self.sealed`.
    fn seal_batch(&mut self) -> io::Result<()> {
        let capacity = self.plain.capacity();
        self.plain.clear();
        let mut at_end = false;
        while self.plain.len() < capacity {
            let start = self.plain.len();
            self.plain.resize(capacity, 0);
            match self.inner.read(&mut self.plain[start..]) {
                Ok(0) => {
                    self.plain.truncate(start);
                    at_end = true;
                    break;
                }
                Ok(n) => self.plain.truncate(start + n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => self.plain.truncate(start),
                Err(e) => {
                    self.plain.truncate(start);
                    return Err(e);
                }
            }
        }
        self.plaintext_len += self.plain.len() as u64;
        // Full chunks are sealed as they come (chunks carry no final flag); at the end
        // comes the short final chunk, empty if the length is a multiple of 16 KiB.
        let full = self.plain.len() / CHUNK_LEN;
        let count = if at_end { full + 1 } else { full };
        self.sealed.clear();
        self.sealed_pos = 0;
        for piece in self.plain.chunks(CHUNK_LEN) {
            self.sealed.extend_from_slice(piece);
            self.sealed.extend_from_slice(&[0; TAG_LEN]);
        }
        if at_end && self.plain.len() % CHUNK_LEN == 0 {
            self.sealed.extend_from_slice(&[0; TAG_LEN]);
        }
        // Split the batch into one share of whole chunks per thread; the last share
        // runs on this thread.
        let per_thread = count.div_ceil(self.threads).max(1) * SEALED_CHUNK_LEN;
        let keys = &self.keys;
        let mut shares: Vec<(u64, &mut [u8])> = Vec::new();
        let mut index = self.next_index;
        for share in self.sealed.chunks_mut(per_thread) {
            let chunks = share.len().div_ceil(SEALED_CHUNK_LEN) as u64;
            shares.push((index, share));
            index += chunks;
        }
        let last = shares.pop();
        let result = std::thread::scope(|scope| {
            let spawned: Vec<_> = shares
                .into_iter()
                .map(|(first, share)| scope.spawn(move || seal_in_place(keys, first, share)))
                .collect();
            let mine = last.map_or(Ok(()), |(first, share)| seal_in_place(keys, first, share));
            spawned
                .into_iter()
                .map(|h| h.join().unwrap_or(Err(coffer_core::Error::Provider)))
                .chain([mine])
                .collect::<Result<(), _>>()
        });
        result.map_err(|e| io::Error::other(Error::Core(e)))?;
        self.next_index += count as u64;
        self.finished = at_end;
        Ok(())
    }
}

/// Seals the chunks laid out in `area` (each `body ‖ tag slot`, the last possibly
/// short), the first at index `first`.
fn seal_in_place<C: ChunkCipher>(
    keys: &ChunkKeys<C>,
    first: u64,
    area: &mut [u8],
) -> Result<(), coffer_core::Error> {
    for (i, chunk) in area.chunks_mut(SEALED_CHUNK_LEN).enumerate() {
        let body_len = chunk.len() - TAG_LEN;
        let (body, tag_slot) = chunk.split_at_mut(body_len);
        let tag = keys.seal_chunk(first + i as u64, body)?;
        tag_slot.copy_from_slice(&tag);
    }
    Ok(())
}

impl<R: Read, C: ChunkCipher + Sync> Read for SealReader<R, C> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.sealed_pos == self.sealed.len() {
            if self.finished {
                return Ok(0);
            }
            self.seal_batch()?;
        }
        let n = buf.len().min(self.sealed.len() - self.sealed_pos);
        buf[..n].copy_from_slice(&self.sealed[self.sealed_pos..self.sealed_pos + n]);
        self.sealed_pos += n;
        Ok(n)
    }
}

/// The plaintext of a sealed stream read from `R`.
///
/// A read that fails (wrong key, corrupted chunk N, truncated) returns an
/// [`io::Error`] wrapping [`Error::Core`] (see [`core_error`]), and every later read
/// fails the same way; `Ok(0)` comes only after the final chunk verified.
pub struct OpenReader<R: Read, C> {
    header: StreamHeader,
    opener: chunked::StreamOpener<FromStd<R>, C, Vec<u8>>,
}

impl<R: Read, C: ChunkCipher> OpenReader<R, C> {
    /// Opens the stream `inner` with `key` and `context`: checks the header, the key ID
    /// and the commitment before any chunk.
    ///
    /// # Errors
    /// [`Error::Core`]: `WrongKey`, `CommitmentMismatch`, `BadMagic`, `Truncated`, ...
    pub fn new<P: CryptoProvider<Cipher = C>>(
        provider: &P,
        key: &SecretKey,
        context: &[u8],
        inner: R,
    ) -> Result<Self, Error> {
        let (header, opener) = stream::open(
            provider,
            key,
            context,
            FromStd::new(inner),
            vec![0u8; OPEN_BUFFER_LEN],
        )?;
        Ok(OpenReader { header, opener })
    }

    /// The stream's header (suite, key ID).
    pub fn header(&self) -> &StreamHeader {
        &self.header
    }
}

impl<R: Read, C: ChunkCipher> Read for OpenReader<R, C> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        embedded_io::Read::read(&mut self.opener, buf).map_err(|e| {
            let kind = match e {
                coffer_core::Error::Io(kind) => kind.into(),
                _ => io::ErrorKind::InvalidData,
            };
            io::Error::new(kind, Error::Core(e))
        })
    }
}

/// The core error inside an I/O error from [`OpenReader`] or [`SealReader`], if any.
pub fn core_error(e: &io::Error) -> Option<coffer_core::Error> {
    match e.get_ref()?.downcast_ref::<Error>()? {
        Error::Core(core) => Some(*core),
        _ => None,
    }
}
