//! Compression in independent zstd frames, on several threads, in bounded memory.
//!
//! The archive stream is cut into blocks of [`BLOCK_LEN`] bytes; each block becomes one
//! zstd frame, compressed by a pool of workers, and the frames come out in order. The
//! positions of every frame in the archive and in the compressed stream are recorded so
//! a restore can start decompressing at any frame. At most `2 × workers + 2` blocks are
//! alive at once, whatever the size of the input: the writer takes a token before it
//! sends a block and the reader returns it when the frame has been read out, so a slow
//! block cannot let the others pile up behind it.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use coffer_core::record::FrameRecord;

/// Archive bytes per frame: small enough that restoring one file decompresses little
/// more than it needs, large enough that zstd's ratio barely suffers.
pub const BLOCK_LEN: usize = 2 << 20;

type Block = io::Result<(u64, Vec<u8>)>;

/// Buffers handed back for reuse, so the allocator sees the same few blocks over and
/// over and peak memory is the same for 256 MiB of input as for 4 GiB.
#[derive(Clone, Default)]
struct Pool(Arc<Mutex<Vec<Vec<u8>>>>);

impl Pool {
    fn take(&self, capacity: usize) -> Vec<u8> {
        let reused = self.0.lock().ok().and_then(|mut p| p.pop());
        let mut buf = reused.unwrap_or_default();
        buf.clear();
        buf.reserve(capacity);
        buf
    }

    fn give(&self, buf: Vec<u8>) {
        if let Ok(mut p) = self.0.lock() {
            p.push(buf);
        }
    }
}

/// The error a writer gets when the reading end was dropped (its consumer failed):
/// `BrokenPipe`, so the pipeline can tell it from a failure of the source itself.
fn abandoned(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, what.to_owned())
}

/// The writing end: archive bytes in, blocks out to the workers.
pub(crate) struct BlockWriter {
    block: Vec<u8>,
    seq: u64,
    to_workers: SyncSender<Block>,
    tokens: Receiver<()>,
    blocks: Pool,
    finished: bool,
}

impl BlockWriter {
    fn send_block(&mut self) -> io::Result<()> {
        self.tokens
            .recv()
            .map_err(|_| abandoned("the compressed stream was abandoned"))?;
        let fresh = self.blocks.take(BLOCK_LEN);
        let block = std::mem::replace(&mut self.block, fresh);
        self.to_workers
            .send(Ok((self.seq, block)))
            .map_err(|_| abandoned("the compressors stopped"))?;
        self.seq += 1;
        Ok(())
    }

    /// Sends the last block; the stream then ends.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        if !self.block.is_empty() {
            self.send_block()?;
        }
        self.finished = true;
        Ok(())
    }
}

impl Drop for BlockWriter {
    /// A writer dropped unfinished (its producer failed) ends the stream with an error,
    /// so the reading side fails rather than taking a short archive for a whole one.
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.to_workers.send(Err(io::Error::other(
                "the archive ended before it was finished",
            )));
        }
    }
}

impl Write for BlockWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(BLOCK_LEN - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == BLOCK_LEN {
            self.send_block()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The reading end: the compressed stream, frames in order.
pub(crate) struct FrameReader {
    from_workers: Receiver<io::Result<(u64, usize, Vec<u8>)>>,
    waiting: BTreeMap<u64, (usize, Vec<u8>)>,
    next_seq: u64,
    current: Vec<u8>,
    pos: usize,
    archive_offset: u64,
    compressed_offset: u64,
    frames: Vec<FrameRecord>,
    workers: Vec<JoinHandle<()>>,
    tokens: SyncSender<()>,
    frames_pool: Pool,
    done: bool,
}

impl FrameReader {
    /// Where each frame starts; complete once the reader returned `Ok(0)`.
    pub(crate) fn frames(&self) -> &[FrameRecord] {
        &self.frames
    }

    /// Total archive bytes and compressed bytes so far.
    pub(crate) fn lengths(&self) -> (u64, u64) {
        (self.archive_offset, self.compressed_offset)
    }

    fn next_frame(&mut self) -> io::Result<bool> {
        loop {
            if let Some((len, frame)) = self.waiting.remove(&self.next_seq) {
                self.frames.push(FrameRecord {
                    archive_offset: self.archive_offset,
                    compressed_offset: self.compressed_offset,
                });
                self.archive_offset += len as u64;
                self.compressed_offset += frame.len() as u64;
                self.frames_pool
                    .give(std::mem::replace(&mut self.current, frame));
                self.pos = 0;
                // The previous frame is read out: its block's token goes back. At most
                // `in_flight` tokens exist, so this never blocks.
                let _ = self.tokens.try_send(());
                self.next_seq += 1;
                return Ok(true);
            }
            match self.from_workers.recv() {
                Ok(Ok((seq, len, frame))) => {
                    self.waiting.insert(seq, (len, frame));
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => {
                    if !self.waiting.is_empty() {
                        return Err(io::Error::other("a compressed frame went missing"));
                    }
                    for w in self.workers.drain(..) {
                        w.join()
                            .map_err(|_| io::Error::other("a compressor thread panicked"))?;
                    }
                    return Ok(false);
                }
            }
        }
    }
}

impl Read for FrameReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            if self.done || !self.next_frame()? {
                self.done = true;
                return Ok(0);
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A writer for archive bytes and a reader of their compressed frames, joined by
/// `workers` compression threads at zstd `level`.
pub(crate) fn compressor(workers: usize, level: i32) -> (BlockWriter, FrameReader) {
    let workers = workers.max(1);
    let in_flight = 2 * workers + 2;
    let (token_tx, tokens) = sync_channel(in_flight);
    for _ in 0..in_flight {
        let _ = token_tx.try_send(());
    }
    let (to_workers, blocks) = sync_channel::<Block>(workers);
    let (to_reader, from_workers) = sync_channel(workers);
    let blocks = Arc::new(Mutex::new(blocks));
    let (block_pool, frame_pool) = (Pool::default(), Pool::default());
    let handles = (0..workers)
        .map(|_| {
            let blocks = Arc::clone(&blocks);
            let to_reader = to_reader.clone();
            let (block_pool, frame_pool) = (block_pool.clone(), frame_pool.clone());
            let mut compressor = zstd::bulk::Compressor::new(level);
            std::thread::spawn(move || loop {
                let next = match blocks.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                let message = match next {
                    Err(_) => return, // the writer finished
                    Ok(Err(e)) => Err(e),
                    Ok(Ok((seq, block))) => {
                        let mut frame =
                            frame_pool.take(zstd::zstd_safe::compress_bound(block.len()));
                        let done = compressor
                            .as_mut()
                            .map_err(|e| io::Error::other(e.to_string()))
                            .and_then(|c| c.compress_to_buffer(&block, &mut frame));
                        let len = block.len();
                        block_pool.give(block);
                        done.map(|_| (seq, len, frame))
                    }
                };
                let failed = message.is_err();
                if to_reader.send(message).is_err() || failed {
                    return;
                }
            })
        })
        .collect();
    (
        BlockWriter {
            block: block_pool.take(BLOCK_LEN),
            seq: 0,
            to_workers,
            tokens,
            blocks: block_pool,
            finished: false,
        },
        FrameReader {
            from_workers,
            waiting: BTreeMap::new(),
            next_seq: 0,
            current: Vec::new(),
            pos: 0,
            archive_offset: 0,
            compressed_offset: 0,
            frames: Vec::new(),
            workers: handles,
            tokens: token_tx,
            frames_pool: frame_pool,
            done: false,
        },
    )
}
