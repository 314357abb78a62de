//! An upload rate limit: a storage whose puts read their bodies no faster than a set
//! number of bytes a second (GCRA, by the `governor` crate), so a backup shares a slow
//! uplink. Reads (restores, index loads) are not limited.

use std::io::Read;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use super::{ObjectKey, ObjectMeta, PutMode, Storage};
use crate::Error;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Bytes taken from the limiter at a time, at most.
const STEP: u32 = 16 * 1024;

/// `inner`, with every put's body read at most `bytes_per_sec`. Parts a put has read
/// go out at the storage's pace, so over a long upload the rate is the limit.
pub struct Throttled {
    inner: Arc<dyn Storage>,
    limiter: DefaultDirectRateLimiter,
    /// Bytes a step may take (the burst: a tenth of a second's worth, at least 1).
    step: NonZeroU32,
}

impl Throttled {
    /// `inner` limited to `bytes_per_sec` (at least 1) of uploads.
    pub fn new(inner: Arc<dyn Storage>, bytes_per_sec: u64) -> Self {
        let rate = NonZeroU32::new(u32::try_from(bytes_per_sec).unwrap_or(u32::MAX).max(1))
            .unwrap_or(NonZeroU32::MIN);
        // A tenth of a second's worth may go at once: smooth, and a step fits in it.
        let burst = NonZeroU32::new((rate.get() / 10).clamp(1, STEP)).unwrap_or(NonZeroU32::MIN);
        Throttled {
            inner,
            limiter: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            step: burst,
        }
    }
}

/// A body read through the limiter.
struct Paced<'a> {
    inner: &'a mut dyn Read,
    limiter: &'a DefaultDirectRateLimiter,
    step: NonZeroU32,
}

impl Read for Paced<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf.len().min(self.step.get() as usize);
        let n = self.inner.read(&mut buf[..want])?;
        let Some(cells) = NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX)) else {
            return Ok(0);
        };
        // `cells` never exceeds the burst, so the limiter always answers in time.
        while let Ok(Err(not_until)) = self.limiter.check_n(cells) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            std::thread::sleep(wait.max(Duration::from_micros(100)));
        }
        Ok(n)
    }
}

impl Storage for Throttled {
    fn put(&self, key: &ObjectKey, data: &mut dyn Read, mode: PutMode) -> Result<u64, Error> {
        let mut paced = Paced {
            inner: data,
            limiter: &self.limiter,
            step: self.step,
        };
        self.inner.put(key, &mut paced, mode)
    }

    fn get(&self, key: &ObjectKey) -> Result<Box<dyn Read + Send>, Error> {
        self.inner.get(key)
    }

    fn get_range(
        &self,
        key: &ObjectKey,
        start: u64,
        len: u64,
    ) -> Result<Box<dyn Read + Send>, Error> {
        self.inner.get_range(key, start, len)
    }

    fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>, Error> {
        self.inner.head(key)
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, Error> {
        self.inner.list(prefix)
    }

    fn delete(&self, key: &ObjectKey) -> Result<(), Error> {
        self.inner.delete(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::LocalStorage;

    #[test]
    fn puts_arrive_whole_and_reads_pass_through() {
        let dir = tempfile::tempdir().unwrap();
        let store = Throttled::new(Arc::new(LocalStorage::open(dir.path()).unwrap()), 1 << 30);
        let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let key = ObjectKey::new("a/b").unwrap();
        assert_eq!(
            store
                .put(&key, &mut body.as_slice(), PutMode::CreateOnly)
                .unwrap(),
            body.len() as u64
        );
        let mut back = Vec::new();
        store.get(&key).unwrap().read_to_end(&mut back).unwrap();
        assert!(back == body);
        assert_eq!(store.list("a/").unwrap().len(), 1);
        // A rate below one byte a second is taken as one: never a zero quota.
        let slow = Throttled::new(Arc::new(LocalStorage::open(dir.path()).unwrap()), 0);
        assert_eq!(slow.step.get(), 1);
    }
}
