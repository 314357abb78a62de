//! Paths into a tar stream, noting for each entry what the manifest needs.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use coffer_core::record::EntryKind;
use sha2::{Digest, Sha256};

/// One entry of a backup, as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the backup (raw bytes).
    pub path: Vec<u8>,
    /// File, directory or link.
    pub kind: EntryKind,
    /// Permission bits.
    pub mode: u32,
    /// Modification time, Unix seconds.
    pub mtime: i64,
    /// Content length.
    pub size: u64,
    /// SHA-256 of the content.
    pub sha256: [u8; 32],
    /// A link's target.
    pub link_target: Vec<u8>,
    /// Where the entry's first tar header starts in the archive.
    pub archive_offset: u64,
}

/// Counts what passes through to the inner writer.
struct Counting<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Hashes what is read through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    len: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// Writes `sources` (files, directories, links; directories recursively, links not
/// followed) as a tar stream into `out`. Each source is stored under its own file
/// name; a directory's contents under its name. Returns the entries in archive order.
pub(crate) fn write_archive<W: Write>(sources: &[PathBuf], out: W) -> io::Result<(Vec<Entry>, W)> {
    let mut builder = tar::Builder::new(Counting {
        inner: out,
        count: 0,
    });
    builder.follow_symlinks(false);
    let mut entries = Vec::new();
    for source in sources {
        let name = source
            .file_name()
            .map_or_else(|| PathBuf::from("root"), PathBuf::from);
        add(&mut builder, source, &name, &mut entries)?;
    }
    builder.finish()?;
    let counting = builder.into_inner()?;
    Ok((entries, counting.inner))
}

fn add<W: Write>(
    builder: &mut tar::Builder<Counting<W>>,
    path: &Path,
    name: &Path,
    entries: &mut Vec<Entry>,
) -> io::Result<()> {
    let context = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let meta = fs::symlink_metadata(path).map_err(context)?;
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
    let offset = builder.get_ref().count;
    let mut entry = Entry {
        path: name.as_os_str().as_bytes().to_vec(),
        kind: EntryKind::File,
        mode: meta.mode() & 0o7777,
        mtime: meta.mtime(),
        size: 0,
        sha256: Sha256::digest([]).into(),
        link_target: Vec::new(),
        archive_offset: offset,
    };
    let kind = meta.file_type();
    if kind.is_symlink() {
        let target = fs::read_link(path).map_err(context)?;
        entry.kind = EntryKind::Symlink;
        entry.link_target = target.as_os_str().as_bytes().to_vec();
        header.set_size(0);
        builder
            .append_link(&mut header, name, &target)
            .map_err(context)?;
        entries.push(entry);
    } else if kind.is_dir() {
        entry.kind = EntryKind::Directory;
        builder
            .append_data(&mut header, name, io::empty())
            .map_err(context)?;
        entries.push(entry);
        let mut children: Vec<_> = fs::read_dir(path)
            .map_err(context)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .map_err(context)?;
        children.sort();
        for child in children {
            add(builder, &path.join(&child), &name.join(&child), entries)?;
        }
    } else if kind.is_file() {
        let file = File::open(path).map_err(context)?;
        let mut hashing = Hashing {
            inner: file.take(meta.len()),
            hash: Sha256::new(),
            len: 0,
        };
        builder
            .append_data(&mut header, name, &mut hashing)
            .map_err(context)?;
        if hashing.len != meta.len() {
            return Err(io::Error::other(format!(
                "{}: changed size while being read",
                path.display()
            )));
        }
        entry.size = hashing.len;
        entry.sha256 = hashing.hash.finalize().into();
        entries.push(entry);
    }
    // Sockets, FIFOs and devices are not backed up.
    Ok(())
}
