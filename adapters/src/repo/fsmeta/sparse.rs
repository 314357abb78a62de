//! Writing a file's content so that its holes stay holes.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::Error;

/// Writes one file's content from the pieces its node lists, in order: data pieces are
/// written where they belong, hole pieces are skipped over, and [`finish`] sets the
/// file's length to the whole size, so a hole is never written and stays a hole on
/// file systems that have them (and reads as zeros on those that do not).
///
/// ```text
/// new(file, size) ──▶ data(bytes) / hole(len), any number, in file order ──▶ finish() ──▶ File
/// ```
///
/// Writes are positional (`pwrite` at the running offset), which is the seek the
/// holes need without a file position to keep in step. The file must start empty:
/// a skipped hole over old bytes would keep them.
///
/// [`finish`]: SparseWriter::finish
#[must_use = "call finish(): it sets the length that trailing holes need, and checks it"]
#[derive(Debug)]
pub struct SparseWriter {
    file: File,
    pos: u64,
    size: u64,
}

impl SparseWriter {
    /// Starts writing `size` bytes of content into `file`, which must be empty.
    ///
    /// # Errors
    /// [`Error::Io`] if `file` is not empty or its length cannot be read.
    pub fn new(file: File, size: u64) -> Result<Self, Error> {
        let len = file.metadata().map_err(write_error)?.len();
        if len != 0 {
            return Err(misuse("the file to write into is not empty"));
        }
        Ok(SparseWriter { file, pos: 0, size })
    }

    /// Writes the next data piece.
    ///
    /// # Errors
    /// [`Error::Io`] if the pieces would pass the size given to [`SparseWriter::new`],
    /// or the write fails.
    pub fn data(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        let end = self.advance(len)?;
        self.file
            .write_all_at(bytes, self.pos)
            .map_err(write_error)?;
        self.pos = end;
        Ok(())
    }

    /// Skips the next `len` bytes: a hole.
    ///
    /// # Errors
    /// [`Error::Io`] if the pieces would pass the size given to [`SparseWriter::new`].
    pub fn hole(&mut self, len: u64) -> Result<(), Error> {
        self.pos = self.advance(len)?;
        Ok(())
    }

    /// Sets the file's length to the whole size (which ends any trailing hole) and
    /// gives the file back, content complete but not synced.
    ///
    /// # Errors
    /// [`Error::Io`] if the pieces fell short of the size, or setting the length fails.
    pub fn finish(self) -> Result<File, Error> {
        if self.pos != self.size {
            return Err(misuse(
                "the pieces written add up to less than the file's size",
            ));
        }
        self.file.set_len(self.size).map_err(write_error)?;
        Ok(self.file)
    }

    /// Where a piece of `len` bytes ends, if it ends within the size.
    fn advance(&self, len: u64) -> Result<u64, Error> {
        self.pos
            .checked_add(len)
            .filter(|&end| end <= self.size)
            .ok_or_else(|| misuse("the pieces written add up to more than the file's size"))
    }
}

fn write_error(e: io::Error) -> Error {
    Error::io("writing restored file content", e)
}

fn misuse(what: &'static str) -> Error {
    write_error(io::Error::new(io::ErrorKind::InvalidInput, what))
}
