//! The backup's pack uploader: a thread that seals a closed pack to the repository's
//! public key and stores it, while the walking thread goes on cutting chunks. Storage
//! waits (a folder's fsync, an S3 round trip) then overlap the work. At most one pack
//! waits for the thread, which bounds memory; results come back in order.
//!
//! Randomness stays in order: the pack's ID and a 32-byte seed are drawn on the backup's
//! thread when the pack closes, and the thread seals with a ChaCha20 generator seeded
//! with it (from the OS, a CSPRNG seeded by a CSPRNG; in the reproducible mode, the same
//! bytes on every run).

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use rand_core::SeedableRng;

use super::index::{PackId, PackRecord};
use super::object::{self, RepoId, SealedKind};
use super::pack::TocEntry;
use super::recipient::RecipientPublic;
use crate::storage::{ObjectKey, PutMode, Storage};
use crate::Error;

/// A closed pack to seal and store.
pub struct Job {
    /// Its ID.
    pub id: PackId,
    /// Its object's name (relative to the repository) and full key.
    pub name: String,
    /// Where it goes.
    pub key: ObjectKey,
    /// Its plaintext.
    pub plain: Vec<u8>,
    /// Its blobs.
    pub entries: Vec<TocEntry>,
    /// The sealing randomness's seed.
    pub seed: [u8; 32],
}

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
    /// Starts the thread for the repository `repo` (its storage, public key and ID).
    pub fn start(store: Arc<dyn Storage>, public: RecipientPublic, repo: RepoId) -> Self {
        let (jobs, queue) = mpsc::sync_channel::<Job>(1);
        let (done_tx, done) = mpsc::channel();
        let handle = std::thread::spawn(move || {
            for job in queue {
                let result = upload(store.as_ref(), &public, &repo, job);
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

fn upload(
    store: &dyn Storage,
    public: &RecipientPublic,
    repo: &RepoId,
    job: Job,
) -> Result<PackRecord, Error> {
    let mut rng = rand_chacha::ChaCha20Rng::from_seed(job.seed);
    let sealed = object::seal_to_with(
        &mut rng,
        public,
        SealedKind::Pack,
        repo,
        &job.name,
        &job.plain,
    )?;
    drop(job.plain);
    store.put(&job.key, &mut sealed.as_slice(), PutMode::CreateOnly)?;
    Ok(PackRecord {
        id: job.id,
        object_len: sealed.len() as u64,
        entries: job.entries,
    })
}
