//! Sealing or opening a whole stream from a reader into a writer, with reading, the
//! AEAD and writing overlapped on several threads.
//!
//! [`SealReader`](super::SealReader) and [`OpenReader`](super::OpenReader) read a
//! batch, then seal it on every core, then hand it out: one core idles while the other
//! reads. A [`Relay`] runs one more worker than there are threads; each worker takes the
//! next batch from the reader (in turn), seals or opens it alone, and writes it when
//! every earlier batch has been written, so reading one batch overlaps sealing others.
//! `coffer seal` and `coffer open` use it; it is what brings them near the raw AEAD's
//! speed (`bench/peers.sh`).
//!
//! Opening keeps the readers' rule: a batch's plaintext is written only after every
//! chunk in it verified, and nothing after the first failure in stream order.
//!
//! The stream's rules (which chunk is final, truncation, chunk indices) are the core's
//! ([`coffer_core::chunked::batch`]): the cursor stays with the reader, behind its lock,
//! and lays out each batch as it is read; the workers only seal or open what it laid out.

use std::io::{self, IoSlice, Read, Write};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use coffer_core::chunked::batch::{
    batch_len, Batch, BatchOpener, BatchSealer, Layout, OpenCursor, SealCursor, Share,
};
use coffer_core::provider::{ChunkCipher, CryptoProvider};
use coffer_core::stream::{self, StreamHeader, STREAM_PREFIX_LEN};
use coffer_core::{SecretKey, Suite};

use super::{core_failure, core_io, fill, read_bodies};
use crate::Error;

/// Chunks in one worker's batch (2 MiB): large enough that taking turns costs little,
/// small enough that memory stays a few MiB whatever the input's length.
const BATCH_CHUNKS: usize = 128;

/// A stream ready to be sealed or opened into a writer by [`Relay::run`].
pub struct Relay<R, C> {
    reader: R,
    keys: Keys<C>,
    cursor: Cursor,
    header: StreamHeader,
    /// Seal: the header and preamble, written before the first chunk. Open: empty.
    prefix: Vec<u8>,
}

/// The core's sealer or opener: what the workers share.
enum Keys<C> {
    Seal(BatchSealer<C>),
    Open(BatchOpener<C>),
}

/// The core's cursor of the same direction: what the reader's side keeps.
enum Cursor {
    Seal(SealCursor),
    Open(OpenCursor),
}

#[derive(Clone, Copy, PartialEq)]
enum Direction {
    Seal,
    Open,
}

/// What a finished relay read and wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relayed {
    /// Bytes read from the reader after [`Relay::seal`] or [`Relay::open`] started:
    /// the plaintext when sealing, the chunks (after the prefix) when opening.
    pub read: u64,
    /// Bytes written: the whole sealed stream when sealing, the plaintext when opening.
    pub written: u64,
}

/// Why a relay stopped.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Reading failed, or what was read is not a valid stream under this key (wrong
    /// key, corrupted chunk N, truncated: the [`io::Error`] wraps [`Error::Core`], as
    /// [`OpenReader`](super::OpenReader)'s errors do; see [`super::core_error`]).
    #[error("{0}")]
    Input(io::Error),
    /// Writing failed (disk full, closed pipe, ...).
    #[error("{0}")]
    Output(io::Error),
}

impl<R: Read + Send, C: ChunkCipher + Sync> Relay<R, C> {
    /// Starts sealing `reader` under `key` with `context` bound.
    ///
    /// # Errors
    /// [`Error::Core`] if the provider cannot key the cipher.
    pub fn seal<P: CryptoProvider<Cipher = C>>(
        provider: &P,
        suite: Suite,
        key: &SecretKey,
        context: &[u8],
        reader: R,
    ) -> Result<Self, Error> {
        let (sealer, cursor, prefix) =
            stream::seal_batches(provider, suite, key, context, &mut rand_core::OsRng)?;
        Ok(Relay {
            reader,
            keys: Keys::Seal(sealer),
            cursor: Cursor::Seal(cursor),
            header: StreamHeader {
                suite,
                key_id: key.id(),
            },
            prefix: prefix.to_vec(),
        })
    }

    /// Starts opening the sealed stream `reader` with `key` and `context`: reads and
    /// checks the header, the key ID and the commitment before any chunk.
    ///
    /// # Errors
    /// [`Error::Core`]: `WrongKey`, `CommitmentMismatch`, `BadMagic`, `Truncated`, ...
    pub fn open<P: CryptoProvider<Cipher = C>>(
        provider: &P,
        key: &SecretKey,
        context: &[u8],
        mut reader: R,
    ) -> Result<Self, Error> {
        let mut prefix = [0u8; STREAM_PREFIX_LEN];
        let got = fill(&mut reader, &mut prefix).map_err(core_io)?;
        let (header, opener, cursor) =
            stream::accept_prefix(provider, key, context, &prefix[..got])?;
        Ok(Relay {
            reader,
            keys: Keys::Open(opener),
            cursor: Cursor::Open(cursor),
            header,
            prefix: Vec::new(),
        })
    }

    /// The stream's header (suite, key ID).
    pub fn header(&self) -> &StreamHeader {
        &self.header
    }

    /// Seals or opens everything into `writer` on `threads` threads (plus one).
    ///
    /// # Errors
    /// The first [`Failure`] in stream order; nothing after it was written.
    pub fn run<W: Write + Send>(self, mut writer: W, threads: usize) -> Result<Relayed, Failure> {
        write_all(&mut writer, &[IoSlice::new(&self.prefix)]).map_err(Failure::Output)?;
        let shared = Shared {
            intake: Mutex::new(Intake {
                reader: self.reader,
                cursor: self.cursor,
                next_seq: 0,
                read: 0,
                ended: false,
            }),
            outlet: Mutex::new(Outlet {
                writer,
                next_seq: 0,
                written: self.prefix.len() as u64,
                failure: None,
            }),
            turn: Condvar::new(),
        };
        let keys = &self.keys;
        std::thread::scope(|scope| {
            for _ in 0..threads.max(1) {
                scope.spawn(|| worker(&shared, keys));
            }
            worker(&shared, keys);
        });
        let outlet = shared
            .outlet
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(failure) = outlet.failure {
            return Err(failure);
        }
        let intake = shared
            .intake
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        Ok(Relayed {
            read: intake.read,
            written: outlet.written,
        })
    }
}

/// The reader's side: batches are numbered and laid out as they are read.
struct Intake<R> {
    reader: R,
    cursor: Cursor,
    next_seq: u64,
    read: u64,
    /// The stream ended, or reading it failed: nothing more is taken.
    ended: bool,
}

/// The writer's side: batches go out in number order.
struct Outlet<W> {
    writer: W,
    next_seq: u64,
    written: u64,
    failure: Option<Failure>,
}

struct Shared<R, W> {
    intake: Mutex<Intake<R>>,
    outlet: Mutex<Outlet<W>>,
    /// Signalled whenever a batch went out or the relay failed.
    turn: Condvar,
}

/// One worker: take a batch, seal or open it, write it in turn; until the stream ends
/// or the relay fails.
fn worker<R: Read, W: Write, C: ChunkCipher>(shared: &Shared<R, W>, keys: &Keys<C>) {
    // A worker that panics must not leave the others waiting for its turn.
    struct OnPanic<'a, R, W>(&'a Shared<R, W>);
    impl<R, W> Drop for OnPanic<'_, R, W> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                let mut outlet = lock(&self.0.outlet);
                outlet
                    .failure
                    .get_or_insert(Failure::Input(io::Error::other("a relay worker panicked")));
                self.0.turn.notify_all();
            }
        }
    }
    let _guard = OnPanic(shared);
    let direction = keys.direction();
    let mut buf = vec![0u8; batch_len(BATCH_CHUNKS)];
    loop {
        let Some((seq, taken)) = take(shared, direction, &mut buf) else {
            return;
        };
        let processed = taken.and_then(|batch| {
            let layout = batch.layout();
            batch
                .share(&mut buf)
                .and_then(|share| keys.run(share))
                .map(|()| layout)
                .map_err(|e| failure(e, direction))
        });
        let mut outlet = lock(&shared.outlet);
        while outlet.next_seq != seq && outlet.failure.is_none() {
            outlet = shared
                .turn
                .wait(outlet)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if outlet.failure.is_none() {
            let written = processed.and_then(|layout| {
                emit(&mut outlet.writer, &buf, &layout, direction).map_err(Failure::Output)
            });
            match written {
                Ok(n) => outlet.written += n,
                Err(f) => outlet.failure = Some(f),
            }
            outlet.next_seq += 1;
        }
        let stop = outlet.failure.is_some();
        drop(outlet);
        shared.turn.notify_all();
        if stop {
            // Drop what this worker opened but may no longer release.
            buf.fill(0);
            return;
        }
    }
}

impl<C: ChunkCipher> Keys<C> {
    fn direction(&self) -> Direction {
        match self {
            Keys::Seal(_) => Direction::Seal,
            Keys::Open(_) => Direction::Open,
        }
    }

    /// Seals or opens a share in place.
    fn run(&self, share: Share<'_>) -> Result<(), coffer_core::Error> {
        match self {
            Keys::Seal(sealer) => sealer.seal_share(share),
            Keys::Open(opener) => opener.open_share(share),
        }
    }
}

/// Takes the next batch from the reader into `buf`: `None` once the stream ended or
/// reading failed, else the batch's number and the batch as the cursor laid it out, or
/// why it could not be read.
fn take<R: Read, W>(
    shared: &Shared<R, W>,
    direction: Direction,
    buf: &mut [u8],
) -> Option<(u64, Result<Batch, Failure>)> {
    let mut intake = lock(&shared.intake);
    if intake.ended {
        return None;
    }
    let seq = intake.next_seq;
    intake.next_seq += 1;
    let Intake { reader, cursor, .. } = &mut *intake;
    let batch = match cursor {
        Cursor::Seal(cursor) => read_bodies(reader, SealCursor::bodies(buf))
            .map_err(Failure::Input)
            .and_then(|(filled, ended)| {
                cursor
                    .next_batch(buf, filled, ended)
                    .map_err(|e| failure(e, direction))
            }),
        Cursor::Open(cursor) => fill(reader, buf)
            .map_err(core_io)
            .and_then(|got| cursor.next_batch(got, got < buf.len()))
            .map_err(|e| failure(e, direction)),
    };
    if let Ok(batch) = &batch {
        let layout = batch.layout();
        intake.read += match direction {
            Direction::Seal => layout.plaintext_len(),
            Direction::Open => layout.len(),
        } as u64;
    }
    intake.ended = batch.as_ref().map_or(true, |b| b.layout().is_final());
    Some((seq, batch))
}

/// Writes a processed batch: the sealed chunks as they lie, or the opened bodies
/// without the tags between them (one vectored write, no copy). Returns the bytes
/// written.
fn emit(
    writer: &mut impl Write,
    buf: &[u8],
    layout: &Layout,
    direction: Direction,
) -> io::Result<u64> {
    match direction {
        Direction::Seal => {
            write_all(writer, &[IoSlice::new(&buf[..layout.len()])])?;
            Ok(layout.len() as u64)
        }
        Direction::Open => {
            let bodies: Vec<IoSlice> = layout.bodies(buf).map(IoSlice::new).collect();
            write_all(writer, &bodies)?;
            Ok(layout.plaintext_len() as u64)
        }
    }
}

/// Writes every slice, however the writer splits them.
fn write_all(writer: &mut impl Write, slices: &[IoSlice]) -> io::Result<()> {
    let mut owned: Vec<IoSlice> = slices.iter().filter(|s| !s.is_empty()).copied().collect();
    let mut rest = &mut owned[..];
    while !rest.is_empty() {
        match writer.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The failure for a core error met while sealing or opening.
fn failure(e: coffer_core::Error, direction: Direction) -> Failure {
    match direction {
        Direction::Open => Failure::Input(core_failure(e).0),
        Direction::Seal => Failure::Input(io::Error::other(Error::Core(e))),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
