//! Restoring a snapshot (or part of it) into a folder.
//!
//! Directories are created first (private until the end), then files are written on
//! several threads, each under a temporary name in its own directory and renamed into
//! place only once every chunk of it was fetched, decompressed and found to match its
//! ID; holes are skipped so sparse files stay sparse. Hard links are made to the first
//! restored copy of their inode. Metadata comes last: files and special files, then
//! directories deepest first (their times would change as their contents are written).
//! Nothing is written outside the target: names are checked, and the metadata and
//! special-file calls never follow a symbolic link (see `fsmeta`).

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::fsmeta::{self, Created, Owners, SparseWriter};
use super::index::MemIndex;
use super::tree::{ContentRef, Node, NodeKind};
use super::trees::{decode_blob, decode_tree, BlobReader};
use super::Repository;
use crate::Error;

/// How to restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Only these paths of the snapshot (as listed, e.g. `/srv/data/a.txt`), with
    /// everything under them; empty for all.
    pub include: Vec<Vec<u8>>,
    /// Threads writing files (0: one per core).
    pub threads: usize,
}

/// What a restore did.
#[derive(Debug, Clone, Default)]
pub struct RestoreReport {
    /// Files written.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Links, FIFOs and devices created.
    pub others: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// Entries not restored (device nodes without root, sockets), with why.
    pub skipped: Vec<(PathBuf, String)>,
}

struct FileJob {
    rel: PathBuf,
    node: Node,
}

/// Restores snapshot `id` into `target`, which must be empty or not exist.
///
/// # Errors
/// [`Error::DestinationExists`] for a non-empty target; storage, core and format
/// errors (a damaged blob fails the restore, and the files verified before it stay).
pub fn restore(
    repo: &Repository,
    id: &[u8; 16],
    target: &Path,
    options: &RestoreOptions,
) -> Result<RestoreReport, Error> {
    let snapshot = repo.read_snapshot(id)?;
    let index = repo.load_index()?;
    prepare_target(target)?;
    let mut report = RestoreReport::default();
    let mut blobs = BlobReader::new(repo);
    let mut files = Vec::new();
    let mut specials = Vec::new();
    let mut dirs = Vec::new();
    let root = decode_tree(&blobs.read(&index, &snapshot.tree)?)?;
    // Depth-first over the trees, creating directories as they come.
    let mut stack = vec![(PathBuf::new(), root)];
    while let Some((rel_dir, tree)) = stack.pop() {
        for node in tree.nodes {
            let rel = rel_dir.join(std::ffi::OsStr::from_bytes(&node.name));
            if !wanted(&options.include, &rel) {
                continue;
            }
            match &node.kind {
                NodeKind::Dir { subtree } => {
                    fsmeta::check_relative(&rel)?;
                    let path = target.join(&rel);
                    std::fs::create_dir(&path)
                        .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
                    set_private(&path);
                    report.dirs += 1;
                    let sub = decode_tree(&blobs.read(&index, subtree)?)?;
                    stack.push((rel.clone(), sub));
                    dirs.push((rel, node));
                }
                NodeKind::File { .. } => files.push(FileJob { rel, node }),
                _ => specials.push((rel, node)),
            }
        }
    }
    // Hard links: one copy of each inode is written, the others link to it.
    let mut first_of: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let mut links = Vec::new();
    let mut writes = Vec::new();
    for job in files {
        if job.node.nlink > 1 {
            match first_of.get(&(job.node.dev, job.node.inode)) {
                Some(first) => {
                    links.push((job.rel, first.clone()));
                    continue;
                }
                None => {
                    first_of.insert((job.node.dev, job.node.inode), job.rel.clone());
                }
            }
        }
        writes.push(job);
    }
    write_files(repo, &index, target, &writes, options.threads)?;
    for job in &writes {
        report.files += 1;
        report.bytes += job.node.size;
    }
    for (rel, first) in &links {
        fsmeta::check_relative(rel)?;
        std::fs::hard_link(target.join(first), target.join(rel))
            .map_err(|e| Error::io(format!("linking {}", target.join(rel).display()), e))?;
        report.files += 1;
    }
    let as_root = fsmeta::running_as_root();
    let mut owners = Owners::new();
    for (rel, node) in &specials {
        match fsmeta::create_special(target, rel, node)? {
            Created::Created => {
                report.others += 1;
                let _ = fsmeta::apply_metadata(target, rel, node, as_root, &mut owners)?;
            }
            Created::Skipped { reason } => report.skipped.push((rel.clone(), reason.to_owned())),
        }
    }
    for job in &writes {
        let _ = fsmeta::apply_metadata(target, &job.rel, &job.node, as_root, &mut owners)?;
    }
    // Deepest directories first, so restoring a directory's times is the last change
    // made inside its parent.
    dirs.sort_by_key(|(rel, _)| std::cmp::Reverse(rel.components().count()));
    for (rel, node) in &dirs {
        let _ = fsmeta::apply_metadata(target, rel, node, as_root, &mut owners)?;
    }
    Ok(report)
}

fn prepare_target(target: &Path) -> Result<(), Error> {
    match std::fs::read_dir(target) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::DestinationExists {
                    path: target.to_owned(),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(target)
            .map_err(|e| Error::io(format!("creating {}", target.display()), e)),
        Err(e) => Err(Error::io(format!("reading {}", target.display()), e)),
    }
}

fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700));
}

/// Whether `rel` (relative to the snapshot's root) is to be restored: it is under one
/// of `include`, or on the way to one.
fn wanted(include: &[Vec<u8>], rel: &Path) -> bool {
    if include.is_empty() {
        return true;
    }
    let rel = rel.as_os_str().as_encoded_bytes();
    include.iter().any(|inc| {
        let inc = inc.strip_prefix(b"/").unwrap_or(inc);
        let under = rel.starts_with(inc) && (rel.len() == inc.len() || rel[inc.len()] == b'/');
        let above = inc.starts_with(rel) && (inc.len() == rel.len() || inc[rel.len()] == b'/');
        under || above
    })
}

/// Writes the files on `threads` threads, each taking the next file in turn.
fn write_files(
    repo: &Repository,
    index: &MemIndex,
    target: &Path,
    jobs: &[FileJob],
    threads: usize,
) -> Result<(), Error> {
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        threads
    }
    .min(jobs.len().max(1));
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut blobs = BlobReader::new(repo);
                loop {
                    if failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else {
                        return;
                    };
                    if let Err(e) = write_file(repo, index, &mut blobs, target, job) {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e);
                        }
                        return;
                    }
                }
            });
        }
    });
    match failure.into_inner() {
        Ok(Some(e)) => Err(e),
        Ok(None) => Ok(()),
        Err(_) => Err(Error::io(
            "restoring files",
            std::io::Error::other("a restore thread panicked"),
        )),
    }
}

fn write_file(
    repo: &Repository,
    index: &MemIndex,
    blobs: &mut BlobReader<'_>,
    target: &Path,
    job: &FileJob,
) -> Result<(), Error> {
    fsmeta::check_relative(&job.rel)?;
    let path = target.join(&job.rel);
    let dir = path.parent().unwrap_or(target);
    let at = |e: std::io::Error| Error::io(format!("writing {}", path.display()), e);
    let tmp = tempfile::Builder::new()
        .prefix(".coffer-restore-")
        .tempfile_in(dir)
        .map_err(at)?;
    let NodeKind::File { content } = &job.node.kind else {
        return Ok(());
    };
    let mut writer = SparseWriter::new(tmp.reopen().map_err(at)?, job.node.size)?;
    for piece in content {
        match piece {
            ContentRef::Hole { len } => writer.hole(*len)?,
            ContentRef::Data { id, len } => {
                let loc = index.locate(id).ok_or_else(|| Error::RepoFormat {
                    object: format!("blob {}", hex::encode(id)),
                    reason: format!("needed by {} but in no index", job.rel.display()),
                })?;
                let stored = blobs.stored(&loc)?;
                let raw = decode_blob(repo, id, &stored, loc.compression, Some(*len as usize))?;
                write_sparsely(&mut writer, &raw)?;
            }
        }
    }
    let file = writer.finish()?;
    file.sync_data().map_err(at)?;
    drop(file);
    tmp.persist_noclobber(&path).map_err(|e| at(e.error))?;
    Ok(())
}

/// Writes `data`, skipping whole 4 KiB blocks of zeros as holes: a chunk can hold both
/// data and long zero runs (a sparse file's holes are often not chunk-aligned), and
/// written zeros would take disk space the original did not.
fn write_sparsely(writer: &mut SparseWriter, data: &[u8]) -> Result<(), Error> {
    const BLOCK: usize = 4096;
    let mut run = 0; // start of the data run not yet written
    let mut at = 0;
    while at < data.len() {
        let end = (at + BLOCK).min(data.len());
        if end - at == BLOCK && data[at..end].iter().all(|b| *b == 0) {
            if run < at {
                writer.data(&data[run..at])?;
            }
            writer.hole(BLOCK as u64)?;
            run = end;
        }
        at = end;
    }
    if run < data.len() {
        writer.data(&data[run..])?;
    }
    Ok(())
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Files read back.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files that differ from the snapshot or could not be read, with why.
    pub mismatches: Vec<(PathBuf, String)>,
}

/// Reads back the files a [`restore`] of snapshot `id` wrote under `target` (with the
/// same `include`) and checks each against the snapshot: every chunk's ID recomputed
/// from the bytes on disk (FORMAT.md §14), every hole zeros, nothing after the end.
/// Nothing is downloaded but the trees.
///
/// # Errors
/// Storage, core and format errors reading the trees; a file that differs is reported
/// in [`VerifyReport::mismatches`], not as an error.
pub fn verify(
    repo: &Repository,
    id: &[u8; 16],
    target: &Path,
    options: &RestoreOptions,
) -> Result<VerifyReport, Error> {
    use std::io::Read;
    let key =
        coffer_core::chunker::ChunkIdKey::from_bytes(*repo.keys().chunk_id_key().expose_secret());
    let snapshot = repo.read_snapshot(id)?;
    let index = repo.load_index()?;
    let mut blobs = BlobReader::new(repo);
    let mut report = VerifyReport::default();
    let mut stack = vec![(
        PathBuf::new(),
        decode_tree(&blobs.read(&index, &snapshot.tree)?)?,
    )];
    let mut buf = Vec::new();
    while let Some((rel_dir, tree)) = stack.pop() {
        for node in tree.nodes {
            let rel = rel_dir.join(std::ffi::OsStr::from_bytes(&node.name));
            if !wanted(&options.include, &rel) {
                continue;
            }
            let content = match &node.kind {
                NodeKind::Dir { subtree } => {
                    stack.push((rel, decode_tree(&blobs.read(&index, subtree)?)?));
                    continue;
                }
                NodeKind::File { content } => content,
                _ => continue,
            };
            fsmeta::check_relative(&rel)?;
            let path = target.join(&rel);
            let mismatch = (|| -> Result<Option<String>, std::io::Error> {
                let mut file = std::fs::File::open(&path)?;
                for (n, piece) in content.iter().enumerate() {
                    let len = match piece {
                        ContentRef::Data { len, .. } => *len as usize,
                        ContentRef::Hole { len } => usize::try_from(*len).unwrap_or(usize::MAX),
                    };
                    buf.resize(len.min(1 << 26), 0);
                    let mut left = len;
                    let mut hasher = coffer_core::chunker::ChunkIdHasher::new(&key);
                    while left > 0 {
                        let take = left.min(buf.len());
                        file.read_exact(&mut buf[..take])?;
                        match piece {
                            ContentRef::Data { .. } => hasher.update(&buf[..take]),
                            ContentRef::Hole { .. } if buf[..take].iter().any(|&b| b != 0) => {
                                return Ok(Some(format!("piece {n}: a hole holds data")));
                            }
                            ContentRef::Hole { .. } => {}
                        }
                        left -= take;
                    }
                    if let ContentRef::Data { id, .. } = piece {
                        if hasher.finalize() != *id {
                            return Ok(Some(format!("chunk {n} differs from the snapshot")));
                        }
                    }
                }
                if file.read(&mut [0u8; 1])? != 0 {
                    return Ok(Some("longer than in the snapshot".to_owned()));
                }
                Ok(None)
            })();
            report.files += 1;
            report.bytes += node.size;
            match mismatch {
                Ok(None) => {}
                Ok(Some(why)) => report.mismatches.push((rel, why)),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    report
                        .mismatches
                        .push((rel, "shorter than in the snapshot".to_owned()));
                }
                Err(e) => report.mismatches.push((rel, e.to_string())),
            }
        }
    }
    Ok(report)
}
