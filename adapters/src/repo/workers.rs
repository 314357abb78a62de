//! The backup's worker threads: each chunk's ID (a MAC over every byte) and its
//! compression run here, on every core, while the walking thread reads and cuts the
//! next chunks. Results come back tagged with their submission number, and the walker
//! takes them in order, so a file's content list is in file order whatever finished
//! first. At most a window of chunks is in flight, which bounds memory.

use std::collections::BTreeMap;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use coffer_core::chunker::{chunk_id, ChunkIdKey};

use super::index::MemIndex;
use super::pack::Compression;
use crate::Error;

/// zstd level for blobs.
pub const ZSTD_LEVEL: i32 = 3;

/// A chunk, hashed and (unless known or all zeros) compressed.
#[derive(Debug)]
pub struct Prepared {
    /// Its ID.
    pub id: [u8; 32],
    /// Its length.
    pub raw_len: usize,
    /// All zero bytes: a hole, stored as nothing.
    pub zero: bool,
    /// What to store (the compressed bytes or the raw ones), unless the repository had
    /// the chunk already when the backup started, or it is a hole.
    pub stored: Option<(Vec<u8>, Compression)>,
}

/// Compresses `raw` if that saves at least a sixteenth.
///
/// # Errors
/// zstd's (out of memory).
pub fn compress(raw: Vec<u8>) -> Result<(Vec<u8>, Compression), Error> {
    let compressed =
        zstd::bulk::compress(&raw, ZSTD_LEVEL).map_err(|e| Error::io("compressing a blob", e))?;
    if compressed.len() + raw.len() / 16 < raw.len() {
        Ok((compressed, Compression::Zstd))
    } else {
        Ok((raw, Compression::None))
    }
}

type Job = (u64, Vec<u8>);
type Done = (u64, Result<Prepared, Error>);

/// A pool of worker threads, fed and drained by one thread.
pub struct Workers {
    jobs: Option<Sender<Job>>,
    results: Receiver<Done>,
    finished: BTreeMap<u64, Result<Prepared, Error>>,
    next: u64,
    handles: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("threads", &self.handles.len())
            .field("submitted", &self.next)
            .finish_non_exhaustive()
    }
}

impl Workers {
    /// Starts `threads` workers hashing with `key` and skipping compression of chunks
    /// `known` already holds.
    pub fn start(threads: usize, key: Arc<ChunkIdKey>, known: Arc<MemIndex>) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (done, results) = mpsc::channel::<Done>();
        let queue = Arc::new(Mutex::new(queue));
        let handles = (0..threads.max(1))
            .map(|_| {
                let (queue, done, key, known) = (
                    Arc::clone(&queue),
                    done.clone(),
                    Arc::clone(&key),
                    Arc::clone(&known),
                );
                std::thread::spawn(move || loop {
                    let job = match queue.lock() {
                        Ok(q) => q.recv(),
                        Err(_) => return,
                    };
                    let Ok((seq, raw)) = job else {
                        return;
                    };
                    let prepared = prepare(&key, &known, raw);
                    if done.send((seq, prepared)).is_err() {
                        return;
                    }
                })
            })
            .collect();
        Workers {
            jobs: Some(jobs),
            results,
            finished: BTreeMap::new(),
            next: 0,
            handles,
        }
    }

    /// Hands a chunk to the workers; returns its ticket.
    pub fn submit(&mut self, raw: Vec<u8>) -> u64 {
        let seq = self.next;
        self.next += 1;
        if let Some(jobs) = &self.jobs {
            if jobs.send((seq, raw)).is_err() {
                self.finished.insert(seq, Err(workers_gone()));
            }
        }
        seq
    }

    /// Waits for the chunk of `ticket`.
    ///
    /// # Errors
    /// What preparing it failed with; workers that died.
    pub fn take(&mut self, ticket: u64) -> Result<Prepared, Error> {
        loop {
            if let Some(result) = self.finished.remove(&ticket) {
                return result;
            }
            match self.results.recv() {
                Ok((seq, result)) => {
                    self.finished.insert(seq, result);
                }
                Err(_) => return Err(workers_gone()),
            }
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.jobs.take();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

fn workers_gone() -> Error {
    Error::io(
        "preparing chunks",
        std::io::Error::other("the backup's worker threads stopped"),
    )
}

fn prepare(key: &ChunkIdKey, known: &MemIndex, raw: Vec<u8>) -> Result<Prepared, Error> {
    let raw_len = raw.len();
    if raw.iter().all(|b| *b == 0) {
        return Ok(Prepared {
            id: [0; 32],
            raw_len,
            zero: true,
            stored: None,
        });
    }
    let id = chunk_id(key, &raw);
    let stored = if known.contains(&id) {
        None
    } else {
        Some(compress(raw)?)
    };
    Ok(Prepared {
        id,
        raw_len,
        zero: false,
        stored,
    })
}
