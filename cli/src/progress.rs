//! Progress bars for long work: bytes, rate and ETA on stderr when it is a terminal,
//! nothing at all otherwise (pipes, logs, `--json`).

use std::io::{self, IsTerminal, Read, Write};

use coffer_adapters::storage::{ObjectKey, ObjectMeta, PutMode, Storage};
use coffer_adapters::Error;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar for `total` bytes (a spinner with bytes and rate when unknown),
/// drawn only when `show` is true and stderr is a terminal.
/// Long work starts here, so this also installs the interrupt handlers.
pub(crate) fn bar(total: Option<u64>, message: &str, show: bool) -> ProgressBar {
    crate::interrupt::install();
    if !show || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match total {
        Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        ),
        None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_style(
            ProgressStyle::with_template("{spinner} {msg} {bytes} {binary_bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_message(message.to_owned());
    bar
}

/// Counts bytes read through it into a progress bar, and stops at an interrupt.
pub(crate) struct Counting<R> {
    /// The reader.
    pub(crate) inner: R,
    /// The bar.
    pub(crate) bar: ProgressBar,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        crate::interrupt::check()?;
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
    // Sealing reads a batch of chunk bodies in one call (readv).
    fn read_vectored(&mut self, bufs: &mut [io::IoSliceMut<'_>]) -> io::Result<usize> {
        crate::interrupt::check()?;
        let n = self.inner.read_vectored(bufs)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        crate::interrupt::check()?;
        let n = self.inner.write(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A store that counts the bytes put into it and read from it, so the pipeline's
/// progress shows without the pipeline knowing about bars.
pub(crate) struct ProgressStorage<'a> {
    /// The store.
    pub(crate) inner: &'a dyn Storage,
    /// The bar.
    pub(crate) bar: ProgressBar,
}

impl Storage for ProgressStorage<'_> {
    fn put(&self, key: &ObjectKey, data: &mut dyn Read, mode: PutMode) -> Result<u64, Error> {
        let mut counting = Counting {
            inner: data,
            bar: self.bar.clone(),
        };
        self.inner.put(key, &mut counting, mode)
    }

    fn get(&self, key: &ObjectKey) -> Result<Box<dyn Read + Send>, Error> {
        let inner = self.inner.get(key)?;
        Ok(Box::new(Counting {
            inner,
            bar: self.bar.clone(),
        }))
    }

    fn get_range(
        &self,
        key: &ObjectKey,
        start: u64,
        len: u64,
    ) -> Result<Box<dyn Read + Send>, Error> {
        let inner = self.inner.get_range(key, start, len)?;
        Ok(Box::new(Counting {
            inner,
            bar: self.bar.clone(),
        }))
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
