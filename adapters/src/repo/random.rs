//! Where a repository's random choices and clock readings come from.
//!
//! A repository draws random bytes for its master key, object keys, HPKE ephemeral
//! keys, salts, object names and pack assignment, and reads the clock for its
//! configuration, snapshots and locks. All of it comes from the operating system,
//! except in the reproducible mode ([`Reproducible`], hidden from the docs), which
//! exists only so that `adapters/tests/vectors_gen` can write a whole repository
//! (`test-vectors/repository/`) byte for byte the same on every run and every machine:
//! every random byte from the caller's seeded generator, the caller's clock, the backed-up
//! paths read under a folder that stands for `/`, and each scanned entry passed through
//! the caller's function, which replaces what differs between machines (inode and device
//! numbers, change times, owners). A repository made that way is as secret as its seed,
//! which is public: never use it for data.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use coffer_core::SecretKey;
use rand_core::{CryptoRng, CryptoRngCore, RngCore};

use super::tree::Node;

/// The reproducible mode: what replaces the operating system's randomness and clock,
/// and the file system's machine-specific metadata. For test vectors only.
#[doc(hidden)]
pub struct Reproducible {
    /// Every random byte the repository draws.
    pub rng: Box<dyn CryptoRngCore + Send>,
    /// The clock: Unix seconds and nanoseconds.
    pub clock: Box<dyn FnMut() -> (i64, u32) + Send>,
    /// Backed-up paths are read under this folder and recorded as if it were `/`.
    pub root: PathBuf,
    /// Called on every entry a backup scans, before it is recorded.
    pub scanned: Box<dyn FnMut(&mut Node) + Send>,
}

impl std::fmt::Debug for Reproducible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reproducible")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// The operating system, or a [`Reproducible`] stand-in.
#[derive(Debug, Default)]
pub(crate) struct Source(Option<Mutex<Reproducible>>);

impl Source {
    /// From the operating system (`None`), or reproducible.
    pub(crate) fn new(reproducible: Option<Reproducible>) -> Self {
        Source(reproducible.map(Mutex::new))
    }

    fn with<T>(&self, f: impl FnOnce(&mut Reproducible) -> T) -> Option<T> {
        self.0
            .as_ref()
            .map(|m| f(&mut m.lock().unwrap_or_else(PoisonError::into_inner)))
    }

    /// A generator to hand to the functions that take one.
    pub(crate) fn rng(&self) -> Draw<'_> {
        Draw(self)
    }

    /// A fresh 16-byte ID (object names, the repository ID).
    pub(crate) fn id(&self) -> [u8; 16] {
        let mut id = [0u8; 16];
        self.rng().fill_bytes(&mut id);
        id
    }

    /// A fresh 32-byte key.
    pub(crate) fn key(&self) -> SecretKey {
        SecretKey::generate(&mut self.rng())
    }

    /// A number below `n` (at most a few: the bias of `% n` is below 2^-29).
    pub(crate) fn below(&self, n: usize) -> usize {
        (self.rng().next_u32() as usize) % n.max(1)
    }

    /// The time now: Unix seconds and nanoseconds.
    pub(crate) fn now(&self) -> (i64, u32) {
        self.with(|r| (r.clock)()).unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or((0, 0), |d| {
                    (
                        i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                        d.subsec_nanos(),
                    )
                })
        })
    }

    /// Whether this is the reproducible mode (durations are then recorded as 0).
    pub(crate) fn is_reproducible(&self) -> bool {
        self.0.is_some()
    }

    /// Where the backed-up path `path` (absolute) is read: itself, or under the
    /// reproducible mode's root.
    pub(crate) fn real_path(&self, path: &Path) -> PathBuf {
        self.with(|r| r.root.join(path.strip_prefix("/").unwrap_or(path)))
            .unwrap_or_else(|| path.to_owned())
    }

    /// Passes a scanned entry through the reproducible mode's function, if any.
    pub(crate) fn scanned(&self, node: &mut Node) {
        self.with(|r| (r.scanned)(node));
    }
}

/// Random bytes from a [`Source`].
pub(crate) struct Draw<'a>(&'a Source);

impl RngCore for Draw<'_> {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        if self.0.with(|r| r.rng.fill_bytes(dest)).is_none() {
            rand_core::OsRng.fill_bytes(dest);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for Draw<'_> {}
