//! Backups back into a folder: the whole archive as one stream, or chosen paths by
//! reading only the byte ranges (frames, then chunks) that hold them.
//!
//! Every path is checked before anything is written: absolute paths, `..` and paths
//! through a symbolic link are refused. Each file is written to a temporary name,
//! checked against the manifest's SHA-256, and renamed into place only when whole and
//! on disk: verified files wait in batches (512 files or 256 MiB), the filesystem is
//! synced once per batch (one `syncfs`, not one `fsync` per file: restoring 25,000
//! small files spent most of its time in `fsync`), then the batch is renamed.
//! Directories get their modes and times last, deepest first, and a last sync makes
//! a reported success durable.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use coffer_core::chunked::OPEN_BUFFER_LEN;
use coffer_core::provider::CryptoProvider;
use coffer_core::record::EntryKind;
use coffer_core::SecretKey;
use embedded_io::{ErrorType, Seek, SeekFrom};
use sha2::{Digest, Sha256};

use super::{context, object_keys, read_manifest, Entry, Manifest};
use crate::bridge::{core_error, OpenReader};
use crate::storage::{ObjectKey, Storage};
use crate::Error;

/// What to restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Restore only these paths (as stored, raw bytes) and everything under them; all
    /// when empty.
    pub paths: Vec<Vec<u8>>,
}

/// What a restore wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreSummary {
    /// Regular files written.
    pub files: u64,
    /// Directories created.
    pub directories: u64,
    /// Symbolic links created.
    pub links: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// Restores backup `name` into `target` (created if missing; existing paths are not
/// overwritten).
///
/// # Errors
/// [`Error::Core`] for a wrong key or damaged data (files completed before the damage
/// stay, each whole and verified); [`Error::HostileArchivePath`];
/// [`Error::DestinationExists`]; storage and I/O errors.
pub fn restore<P: CryptoProvider<Cipher: Sync>>(
    provider: &P,
    store: &dyn Storage,
    prefix: &ObjectKey,
    name: &str,
    key: &SecretKey,
    target: &Path,
    options: &RestoreOptions,
) -> Result<RestoreSummary, Error> {
    let manifest = read_manifest(provider, store, prefix, name, key)?;
    fs::create_dir_all(target)
        .map_err(|e| Error::io(format!("creating {}", target.display()), e))?;
    let mut out = Extractor {
        target: target.to_owned(),
        summary: RestoreSummary::default(),
        directories: Vec::new(),
        settling: Vec::new(),
        settling_bytes: 0,
    };
    let extracted = extract(
        provider, store, prefix, name, key, &manifest, options, &mut out,
    );
    // Files verified before a failure stay: settle them whatever happened.
    let settled = out.settle();
    extracted?;
    settled?;
    out.finish()?;
    Ok(out.summary)
}

/// Extracts what `options` chooses of backup `name` into `out`.
#[allow(clippy::too_many_arguments)]
fn extract<P: CryptoProvider<Cipher: Sync>>(
    provider: &P,
    store: &dyn Storage,
    prefix: &ObjectKey,
    name: &str,
    key: &SecretKey,
    manifest: &Manifest,
    options: &RestoreOptions,
    out: &mut Extractor,
) -> Result<(), Error> {
    let (archive_key, _) = object_keys(prefix, name)?;
    let ctx = context("archive", name);
    let io_error = |e: io::Error| {
        core_error(&e).map_or_else(
            || Error::io(format!("reading {archive_key}"), e),
            Error::Core,
        )
    };
    if options.paths.is_empty() {
        let sealed = store.get(&archive_key)?;
        let mut plain =
            zstd::stream::read::Decoder::new(OpenReader::new(provider, key, &ctx, sealed)?)
                .map_err(io_error)?;
        out.extract_all(&manifest.entries, &mut plain, &io_error)?;
        // The tar stream ends before the sealed stream does: read to its verified end,
        // so a truncated or extended archive is an error even after the last file.
        io::copy(&mut plain, &mut io::sink()).map_err(io_error)?;
    } else {
        let selected = select(manifest, &options.paths);
        if selected.is_empty() {
            return Err(Error::io(
                "choosing paths to restore",
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "no entry of the backup matches the given paths",
                ),
            ));
        }
        let mut opener = RangeSource::open(provider, store, &archive_key, key, &ctx)?;
        for span in spans(manifest, &selected) {
            let mut plain = opener
                .archive_range(manifest, span.start, span.end)
                .map_err(io_error)?;
            out.extract_all(
                &manifest.entries[span.first..span.last],
                &mut plain,
                &io_error,
            )?;
        }
    }
    Ok(())
}

/// Indexes of the entries under any of `paths`.
fn select(manifest: &Manifest, paths: &[Vec<u8>]) -> Vec<usize> {
    let under = |entry: &[u8], p: &[u8]| {
        let p = p.strip_suffix(b"/").unwrap_or(p);
        entry == p || (entry.starts_with(p) && entry.get(p.len()) == Some(&b'/'))
    };
    (0..manifest.entries.len())
        .filter(|&i| paths.iter().any(|p| under(&manifest.entries[i].path, p)))
        .collect()
}

/// A run of consecutive entries, and the archive bytes they occupy.
struct Span {
    first: usize,
    last: usize,
    start: u64,
    end: u64,
}

fn spans(manifest: &Manifest, selected: &[usize]) -> Vec<Span> {
    let end_of = |i: usize| {
        manifest
            .entries
            .get(i + 1)
            .map_or(manifest.archive_len, |next| next.archive_offset)
    };
    let mut out: Vec<Span> = Vec::new();
    for &i in selected {
        match out.last_mut() {
            Some(span) if span.last == i => {
                span.last = i + 1;
                span.end = end_of(i);
            }
            _ => out.push(Span {
                first: i,
                last: i + 1,
                start: manifest.entries[i].archive_offset,
                end: end_of(i),
            }),
        }
    }
    out
}

/// Verified files wait under their temporary names until this many are written...
const SETTLE_FILES: usize = 512;
/// ...or this many bytes.
const SETTLE_BYTES: u64 = 256 << 20;

/// Writes tar entries under the target, checked against the manifest.
struct Extractor {
    target: PathBuf,
    summary: RestoreSummary,
    directories: Vec<(PathBuf, u32, i64)>,
    /// Verified files under temporary names (removed if dropped), with where they go
    /// and their length.
    settling: Vec<(tempfile::TempPath, PathBuf, u64)>,
    settling_bytes: u64,
}

impl Extractor {
    fn extract_all(
        &mut self,
        expected: &[Entry],
        plain: &mut dyn Read,
        io_error: &dyn Fn(io::Error) -> Error,
    ) -> Result<(), Error> {
        let mut archive = tar::Archive::new(plain);
        let mut expected = expected.iter();
        for entry in archive.entries().map_err(io_error)? {
            let mut entry = entry.map_err(io_error)?;
            let path = entry.path_bytes().into_owned();
            let Some(meta) = expected.next() else {
                return Err(hostile(&path, "not in the manifest"));
            };
            if meta.path != path {
                return Err(hostile(&path, "does not match the manifest"));
            }
            self.extract(&mut entry, meta, io_error)?;
        }
        if let Some(missing) = expected.next() {
            return Err(hostile(
                &missing.path,
                "in the manifest but not in the archive",
            ));
        }
        Ok(())
    }

    fn extract(
        &mut self,
        entry: &mut dyn Read,
        meta: &Entry,
        io_error: &dyn Fn(io::Error) -> Error,
    ) -> Result<(), Error> {
        let dest = self.destination(&meta.path)?;
        let at = |e: io::Error| Error::io(format!("restoring {}", dest.display()), e);
        match meta.kind {
            EntryKind::Directory => {
                match fs::create_dir(&dest) {
                    Ok(()) => self.summary.directories += 1,
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dest.is_dir() => {}
                    Err(e) => return Err(at(e)),
                }
                self.directories.push((dest, meta.mode, meta.mtime));
            }
            EntryKind::Symlink => {
                if fs::symlink_metadata(&dest).is_ok() {
                    return Err(Error::DestinationExists { path: dest });
                }
                let target = Path::new(std::ffi::OsStr::from_bytes(&meta.link_target));
                std::os::unix::fs::symlink(target, &dest).map_err(at)?;
                let t = filetime::FileTime::from_unix_time(meta.mtime, 0);
                filetime::set_symlink_file_times(&dest, t, t).map_err(at)?;
                self.summary.links += 1;
            }
            EntryKind::File => {
                if fs::symlink_metadata(&dest).is_ok() {
                    return Err(Error::DestinationExists { path: dest });
                }
                let dir = dest.parent().unwrap_or(&self.target).to_owned();
                let mut tmp = tempfile::Builder::new()
                    .prefix(".coffer-restore-")
                    .tempfile_in(&dir)
                    .map_err(at)?;
                let mut hash = Sha256::new();
                let mut buf = vec![0u8; 64 << 10];
                let mut len = 0u64;
                loop {
                    let n = entry.read(&mut buf).map_err(io_error)?;
                    if n == 0 {
                        break;
                    }
                    hash.update(&buf[..n]);
                    tmp.write_all(&buf[..n]).map_err(at)?;
                    len += n as u64;
                }
                if len != meta.size || hash.finalize()[..] != meta.sha256[..] {
                    return Err(Error::Core(coffer_core::Error::MalformedRecord {
                        record: "manifest entry (content does not match its SHA-256)",
                    }));
                }
                fs::set_permissions(tmp.path(), fs::Permissions::from_mode(meta.mode))
                    .map_err(at)?;
                let t = filetime::FileTime::from_unix_time(meta.mtime, 0);
                filetime::set_file_times(tmp.path(), t, t).map_err(at)?;
                self.settling.push((tmp.into_temp_path(), dest, len));
                self.settling_bytes += len;
                if self.settling.len() >= SETTLE_FILES || self.settling_bytes >= SETTLE_BYTES {
                    self.settle()?;
                }
            }
        }
        Ok(())
    }

    /// Where a stored path lands: a relative path of normal components, under the
    /// target, not through any symbolic link.
    fn destination(&self, stored: &[u8]) -> Result<PathBuf, Error> {
        let path = Path::new(std::ffi::OsStr::from_bytes(stored));
        if stored.is_empty()
            || path
                .components()
                .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(hostile(stored, "absolute, empty, or containing '..'"));
        }
        let mut dest = self.target.clone();
        let components: Vec<_> = path.components().collect();
        for (i, c) in components.iter().enumerate() {
            dest.push(c);
            let last = i + 1 == components.len();
            match fs::symlink_metadata(&dest) {
                Ok(m) if m.file_type().is_symlink() && !last => {
                    return Err(hostile(stored, "leads through a symbolic link"))
                }
                Ok(_) => {}
                Err(_) if !last => {
                    fs::create_dir(&dest)
                        .map_err(|e| Error::io(format!("creating {}", dest.display()), e))?;
                }
                Err(_) => {}
            }
        }
        Ok(dest)
    }

    /// Syncs the files waiting under temporary names to disk, then renames them into
    /// place: a file appears under its name only once whole and durable.
    fn settle(&mut self) -> Result<(), Error> {
        if self.settling.is_empty() {
            return Ok(());
        }
        self.sync()?;
        for (tmp, dest, len) in self.settling.drain(..) {
            // Create-only: never replace something that appeared meanwhile.
            tmp.persist_noclobber(&dest)
                .map_err(|e| Error::io(format!("restoring {}", dest.display()), e.error))?;
            self.summary.files += 1;
            self.summary.bytes += len;
        }
        self.settling_bytes = 0;
        Ok(())
    }

    /// Writes everything of the target's filesystem to disk.
    fn sync(&self) -> Result<(), Error> {
        let at = |e: io::Error| Error::io(format!("syncing {}", self.target.display()), e);
        let dir = fs::File::open(&self.target).map_err(at)?;
        rustix::fs::syncfs(&dir).map_err(|e| at(e.into()))
    }

    /// Directory modes and times, deepest first, now that their contents are in place;
    /// then one last sync, so a restore that reports success is on disk.
    fn finish(&mut self) -> Result<(), Error> {
        self.directories
            .sort_by_key(|(p, _, _)| std::cmp::Reverse(p.components().count()));
        for (dir, mode, mtime) in self.directories.drain(..) {
            let at = |e: io::Error| Error::io(format!("restoring {}", dir.display()), e);
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).map_err(at)?;
            let t = filetime::FileTime::from_unix_time(mtime, 0);
            filetime::set_file_times(&dir, t, t).map_err(at)?;
        }
        self.sync()
    }
}

fn hostile(path: &[u8], reason: &'static str) -> Error {
    Error::HostileArchivePath {
        path: String::from_utf8_lossy(path).into_owned(),
        reason,
    }
}

/// Random access to a stored sealed archive, fetching windows of it by range.
struct RangeSource<'a, C> {
    opener: coffer_core::chunked::RandomAccessOpener<StoredObject<'a>, C, Vec<u8>>,
}

impl<'a, C: coffer_core::provider::ChunkCipher> RangeSource<'a, C> {
    fn open<P: CryptoProvider<Cipher = C>>(
        provider: &P,
        store: &'a dyn Storage,
        key: &ObjectKey,
        secret: &SecretKey,
        ctx: &[u8],
    ) -> Result<Self, Error> {
        let size = store
            .head(key)?
            .ok_or_else(|| Error::NotFound { key: key.clone() })?
            .size;
        let object = StoredObject {
            store,
            key: key.clone(),
            size,
            pos: 0,
            window: Vec::new(),
            window_start: 0,
        };
        let (_, opener) = coffer_core::stream::open_random_access(
            provider,
            secret,
            ctx,
            object,
            0,
            vec![0u8; OPEN_BUFFER_LEN],
        )?;
        Ok(RangeSource { opener })
    }

    /// The archive (tar) bytes `start..end`, decompressed from the frames that hold them.
    fn archive_range(
        &mut self,
        manifest: &Manifest,
        start: u64,
        end: u64,
    ) -> io::Result<Box<dyn Read + '_>> {
        let frames = &manifest.frames;
        let first = frames
            .partition_point(|f| f.archive_offset <= start)
            .saturating_sub(1);
        let after = frames.partition_point(|f| f.archive_offset < end);
        let frame = frames
            .get(first)
            .ok_or_else(|| io::Error::other("the manifest has no frames"))?;
        let c_end = frames
            .get(after)
            .map_or(manifest.compressed_len, |f| f.compressed_offset);
        let compressed = SealedRange {
            opener: &mut self.opener,
            pos: frame.compressed_offset,
            end: c_end,
        };
        let mut plain = zstd::stream::read::Decoder::new(compressed)?;
        io::copy(
            &mut (&mut plain).take(start - frame.archive_offset),
            &mut io::sink(),
        )?;
        Ok(Box::new(plain.take(end - start)))
    }
}

/// Plaintext bytes `pos..end` of a sealed stream, each chunk verified before use.
struct SealedRange<'o, O> {
    opener: &'o mut O,
    pos: u64,
    end: u64,
}

impl<R, C, B> Read for SealedRange<'_, coffer_core::chunked::RandomAccessOpener<R, C, B>>
where
    R: embedded_io::Read + embedded_io::Seek,
    C: coffer_core::provider::ChunkCipher,
    B: AsMut<[u8]>,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min((self.end - self.pos) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self
            .opener
            .read_at(self.pos, &mut buf[..want])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, Error::Core(e)))?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// A stored object as an embedded-io reader with seeking, fetched in 1 MiB windows.
struct StoredObject<'a> {
    store: &'a dyn Storage,
    key: ObjectKey,
    size: u64,
    pos: u64,
    window: Vec<u8>,
    window_start: u64,
}

const WINDOW: u64 = 1 << 20;

impl ErrorType for StoredObject<'_> {
    type Error = embedded_io::ErrorKind;
}

impl embedded_io::Read for StoredObject<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let in_window = self.pos >= self.window_start
            && self.pos < self.window_start + self.window.len() as u64;
        if !in_window {
            let len = WINDOW.min(self.size - self.pos);
            let mut window = Vec::with_capacity(len as usize);
            self.store
                .get_range(&self.key, self.pos, len)
                .and_then(|mut r| {
                    r.read_to_end(&mut window)
                        .map_err(|e| Error::io("reading a range", e))
                })
                .map_err(|_| embedded_io::ErrorKind::Other)?;
            self.window = window;
            self.window_start = self.pos;
        }
        let offset = (self.pos - self.window_start) as usize;
        let n = buf.len().min(self.window.len() - offset);
        buf[..n].copy_from_slice(&self.window[offset..offset + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for StoredObject<'_> {
    fn seek(&mut self, pos: SeekFrom) -> Result<u64, Self::Error> {
        let new = match pos {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = new.ok_or(embedded_io::ErrorKind::InvalidInput)?;
        Ok(self.pos)
    }
}
