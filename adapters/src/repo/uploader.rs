//! The backup's pack uploader: a thread that stores each closed pack (already sealed,
//! in its temporary file: [`super::spill`]) while the walking thread goes on cutting
//! chunks. Storage waits (a folder's fsync, an S3 round trip) then overlap the work. At
//! most one pack waits for the thread; results come back in order.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::index::PackRecord;
use super::spill::SpilledPack;
use crate::storage::{PutMode, Storage};
use crate::Error;

/// A closed pack to store.
pub type Job = SpilledPack;

/// The uploader thread and its queues.
pub struct Uploader {
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Result<PackRecord, Error>>,
    handle: Option<JoinHandle<()>>,
    in_flight: usize,
}

impl std::fmt::Debug for Uploader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploader")
            .field("in_flight", &self.in_flight)
            .finish_non_exhaustive()
    }
}

impl Uploader {
    /// Starts the thread storing into `store`.
    pub fn start(store: Arc<dyn Storage>) -> Self {
        let (jobs, queue) = mpsc::sync_channel::<Job>(1);
        let (done_tx, done) = mpsc::channel();
        let handle = std::thread::spawn(move || {
            for job in queue {
                let result = upload(store.as_ref(), job);
                if done_tx.send(result).is_err() {
                    return;
                }
            }
        });
        Uploader {
            jobs: Some(jobs),
            done,
            handle: Some(handle),
            in_flight: 0,
        }
    }

    /// Queues a pack (waiting while one is already queued); returns the records of the
    /// packs stored since the last call.
    ///
    /// # Errors
    /// The first failure of an earlier pack; a thread that stopped.
    pub fn send(&mut self, job: Job) -> Result<Vec<PackRecord>, Error> {
        let mut stored = self.collect(false)?;
        let jobs = self.jobs.as_ref().ok_or_else(stopped)?;
        jobs.send(job).map_err(|_| stopped())?;
        self.in_flight += 1;
        stored.extend(self.collect(false)?);
        Ok(stored)
    }

    /// Waits for every queued pack; returns their records.
    ///
    /// # Errors
    /// As [`Uploader::send`].
    pub fn finish(&mut self) -> Result<Vec<PackRecord>, Error> {
        self.jobs.take();
        let stored = self.collect(true)?;
        if let Some(h) = self.handle.take() {
            h.join().map_err(|_| stopped())?;
        }
        Ok(stored)
    }

    fn collect(&mut self, wait: bool) -> Result<Vec<PackRecord>, Error> {
        let mut out = Vec::new();
        while self.in_flight > 0 {
            let next = if wait {
                self.done.recv().map_err(|_| stopped())
            } else {
                match self.done.try_recv() {
                    Ok(r) => Ok(r),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => Err(stopped()),
                }
            };
            self.in_flight -= 1;
            out.push(next??);
        }
        Ok(out)
    }
}

impl Drop for Uploader {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn stopped() -> Error {
    Error::io(
        "storing packs",
        std::io::Error::other("the pack uploader thread stopped"),
    )
}

fn upload(store: &dyn Storage, mut job: Job) -> Result<PackRecord, Error> {
    let stored = store.put(&job.key, &mut job.file, PutMode::CreateOnly)?;
    if stored != job.len {
        return Err(Error::io(
            format!("storing {}", job.name),
            std::io::Error::other(format!(
                "{stored} of the pack's {} bytes were stored",
                job.len
            )),
        ));
    }
    Ok(PackRecord {
        id: job.id,
        object_len: job.len,
        entries: job.entries,
    })
}
