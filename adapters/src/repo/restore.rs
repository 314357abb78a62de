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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::filter::Filter;
use super::fsmeta::{self, Created, Owners, SparseWriter};
use super::index::MemIndex;
use super::tree::{ContentRef, Node, NodeKind};
use super::trees::{decode_blob, decode_tree, BlobReader};
use super::Repository;
use crate::Error;

/// What a restore does with an entry that already exists in the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Overwrite {
    /// Leave it as it is (reported in [`RestoreReport::kept`]); only missing entries
    /// are created.
    #[default]
    Never,
    /// Replace a file only if its content differs from the snapshot's (checked by
    /// chunk IDs); leave other existing entries as they are.
    IfChanged,
    /// Replace every entry the snapshot has (an existing folder is merged into, never
    /// removed).
    Always,
}

/// How to restore.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Only these paths of the snapshot (as listed, e.g. `/srv/data/a.txt`), with
    /// everything under them; empty for all.
    pub include: Vec<Vec<u8>>,
    /// Threads writing files (0: one per core).
    pub threads: usize,
    /// What to do with entries that exist already.
    pub overwrite: Overwrite,
    /// Told after each file, from the writing threads.
    pub progress: Option<RestoreProgressFn>,
    /// Entries to leave out, matched as backups match them against the snapshot's
    /// absolute paths (an excluded folder with everything under it).
    pub exclude: Filter,
}

/// Where a running restore stands.
#[derive(Debug, Clone, Copy, Default)]
pub struct RestoreProgress {
    /// Files done (written or kept).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Files to do in all.
    pub total_files: u64,
    /// Their bytes.
    pub total_bytes: u64,
}

/// A restore progress callback; called from several threads, so it should be quick.
#[derive(Clone)]
pub struct RestoreProgressFn(pub Arc<dyn Fn(&RestoreProgress) + Send + Sync>);

impl std::fmt::Debug for RestoreProgressFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RestoreProgressFn")
    }
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
    /// Existing entries left as they were (the overwrite policy, or the same content).
    pub kept: u64,
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
            if !wanted(&options.include, &rel) || excluded(options, &rel, &node) {
                continue;
            }
            match &node.kind {
                NodeKind::Dir { subtree } => {
                    fsmeta::check_relative(&rel)?;
                    let path = target.join(&rel);
                    match existing(&path) {
                        // A folder there already: restore into it; its own metadata is
                        // set only if the policy replaces what exists.
                        Some(Existing::Dir) => {
                            if options.overwrite == Overwrite::Always {
                                dirs.push((rel.clone(), node.clone()));
                            } else {
                                report.kept += 1;
                            }
                        }
                        Some(Existing::Other) if options.overwrite != Overwrite::Always => {
                            report.kept += 1;
                            report
                                .skipped
                                .push((rel, "something else exists there".into()));
                            continue;
                        }
                        other => {
                            if other.is_some() {
                                remove(&path)?;
                            }
                            std::fs::create_dir(&path).map_err(|e| {
                                Error::io(format!("creating {}", path.display()), e)
                            })?;
                            set_private(&path);
                            report.dirs += 1;
                            dirs.push((rel.clone(), node.clone()));
                        }
                    }
                    let sub = decode_tree(&blobs.read(&index, subtree)?)?;
                    stack.push((rel, sub));
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
    let written = write_files(repo, &index, target, &writes, options)?;
    for (job, w) in writes.iter().zip(&written) {
        if *w {
            report.files += 1;
            report.bytes += job.node.size;
        } else {
            report.kept += 1;
        }
    }
    let writes: Vec<&FileJob> = writes
        .iter()
        .zip(&written)
        .filter(|(_, w)| **w)
        .map(|(j, _)| j)
        .collect();
    for (rel, first) in &links {
        fsmeta::check_relative(rel)?;
        let path = target.join(rel);
        if existing(&path).is_some() {
            if options.overwrite == Overwrite::Never {
                report.kept += 1;
                continue;
            }
            remove(&path)?;
        }
        std::fs::hard_link(target.join(first), &path)
            .map_err(|e| Error::io(format!("linking {}", path.display()), e))?;
        report.files += 1;
    }
    let as_root = fsmeta::running_as_root();
    let mut owners = Owners::new();
    for (rel, node) in &specials {
        fsmeta::check_relative(rel)?;
        if existing(&target.join(rel)).is_some() {
            if options.overwrite != Overwrite::Always {
                report.kept += 1;
                continue;
            }
            remove(&target.join(rel))?;
        }
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
    match std::fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::DestinationExists {
            path: target.to_owned(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir_all(target)
            .map_err(|e| Error::io(format!("creating {}", target.display()), e)),
        Err(e) => Err(Error::io(format!("reading {}", target.display()), e)),
    }
}

/// What is at a path of the target already (never following a symbolic link).
enum Existing {
    Dir,
    Other,
}

fn existing(path: &Path) -> Option<Existing> {
    let m = std::fs::symlink_metadata(path).ok()?;
    Some(if m.is_dir() {
        Existing::Dir
    } else {
        Existing::Other
    })
}

/// Removes an entry the snapshot replaces (a folder only if empty: a restore never
/// deletes what the snapshot does not have).
fn remove(path: &Path) -> Result<(), Error> {
    let result = match existing(path) {
        Some(Existing::Dir) => std::fs::remove_dir(path),
        Some(Existing::Other) => std::fs::remove_file(path),
        None => Ok(()),
    };
    result.map_err(|e| Error::io(format!("replacing {}", path.display()), e))
}

fn set_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700));
}

/// Whether `options.exclude` leaves out the entry at `rel` (relative to the root).
fn excluded(options: &RestoreOptions, rel: &Path, node: &Node) -> bool {
    options
        .exclude
        .excludes(&Path::new("/").join(rel), node, node.dev)
        .is_some()
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
/// Writes the files on `options.threads` threads, each taking the next file in turn;
/// returns, for each job, whether it was written (else kept as it was).
fn write_files(
    repo: &Repository,
    index: &MemIndex,
    target: &Path,
    jobs: &[FileJob],
    options: &RestoreOptions,
) -> Result<Vec<bool>, Error> {
    let threads = options.threads;
    let written: Vec<AtomicBool> = jobs.iter().map(|_| AtomicBool::new(false)).collect();
    let (done_files, done_bytes) = (AtomicU64::new(0), AtomicU64::new(0));
    let total_bytes = jobs.iter().map(|j| j.node.size).sum();
    let tell = |job: &FileJob| {
        let files = done_files.fetch_add(1, Ordering::Relaxed) + 1;
        let bytes = done_bytes.fetch_add(job.node.size, Ordering::Relaxed) + job.node.size;
        if let Some(RestoreProgressFn(f)) = &options.progress {
            f(&RestoreProgress {
                files,
                bytes,
                total_files: jobs.len() as u64,
                total_bytes,
            });
        }
    };
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
                    match write_file(repo, index, &mut blobs, target, job, options.overwrite) {
                        Ok(w) => {
                            written[i].store(w, Ordering::Relaxed);
                            tell(job);
                        }
                        Err(e) => {
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert(e);
                            }
                            return;
                        }
                    }
                }
            });
        }
    });
    match failure.into_inner() {
        Ok(Some(e)) => Err(e),
        Ok(None) => Ok(written.iter().map(|w| w.load(Ordering::Relaxed)).collect()),
        Err(_) => Err(Error::io(
            "restoring files",
            std::io::Error::other("a restore thread panicked"),
        )),
    }
}

/// Writes one file (under a temporary name until all of it verified); returns whether
/// it was written, or an existing one kept as the policy says.
fn write_file(
    repo: &Repository,
    index: &MemIndex,
    blobs: &mut BlobReader<'_>,
    target: &Path,
    job: &FileJob,
    overwrite: Overwrite,
) -> Result<bool, Error> {
    fsmeta::check_relative(&job.rel)?;
    let path = target.join(&job.rel);
    let replace = match (existing(&path), overwrite) {
        (None, _) => false,
        (Some(_), Overwrite::Never) => return Ok(false),
        (Some(Existing::Dir), _) => {
            return Err(Error::io(
                format!("restoring {}", path.display()),
                std::io::Error::other("a folder is in the way of this file"),
            ))
        }
        (Some(Existing::Other), Overwrite::IfChanged) => {
            let NodeKind::File { content } = &job.node.kind else {
                return Ok(false);
            };
            if same_content(repo, &path, content).unwrap_or(false) {
                return Ok(false);
            }
            true
        }
        (Some(Existing::Other), Overwrite::Always) => true,
    };
    let dir = path.parent().unwrap_or(target);
    let at = |e: std::io::Error| Error::io(format!("writing {}", path.display()), e);
    let tmp = tempfile::Builder::new()
        .prefix(".coffer-restore-")
        .tempfile_in(dir)
        .map_err(at)?;
    let NodeKind::File { content } = &job.node.kind else {
        return Ok(false);
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
    if replace {
        // An atomic rename over the old file: it is whole before and after.
        tmp.persist(&path).map_err(|e| at(e.error))?;
    } else {
        tmp.persist_noclobber(&path).map_err(|e| at(e.error))?;
    }
    Ok(true)
}

/// Whether the file at `path` holds exactly `content`; `Err` if it cannot be read.
fn same_content(repo: &Repository, path: &Path, content: &[ContentRef]) -> std::io::Result<bool> {
    Ok(compare(&chunk_id_key(repo), path, content)?.is_none())
}

fn chunk_id_key(repo: &Repository) -> coffer_core::chunker::ChunkIdKey {
    coffer_core::chunker::ChunkIdKey::from_bytes(*repo.keys().chunk_id_key().expose_secret())
}

/// How the file at `path` differs from `content` (chunk IDs recomputed from its bytes,
/// holes zeros, nothing after the end), or `None` if it does not.
fn compare(
    key: &coffer_core::chunker::ChunkIdKey,
    path: &Path,
    content: &[ContentRef],
) -> std::io::Result<Option<String>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 16];
    for (n, piece) in content.iter().enumerate() {
        let (mut left, id) = match piece {
            ContentRef::Data { id, len } => (u64::from(*len), Some(id)),
            ContentRef::Hole { len } => (*len, None),
        };
        let mut hasher = coffer_core::chunker::ChunkIdHasher::new(key);
        while left > 0 {
            let take = left.min(buf.len() as u64) as usize;
            match file.read_exact(&mut buf[..take]) {
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Ok(Some("shorter than in the snapshot".to_owned()));
                }
                other => other?,
            }
            match id {
                Some(_) => hasher.update(&buf[..take]),
                None if buf[..take].iter().any(|&b| b != 0) => {
                    return Ok(Some(format!("piece {n}: a hole holds data")));
                }
                None => {}
            }
            left -= take as u64;
        }
        if id.is_some_and(|id| hasher.finalize() != *id) {
            return Ok(Some(format!("chunk {n} differs from the snapshot")));
        }
    }
    if file.read(&mut [0u8; 1])? != 0 {
        return Ok(Some("longer than in the snapshot".to_owned()));
    }
    Ok(None)
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
    while let Some((rel_dir, tree)) = stack.pop() {
        for node in tree.nodes {
            let rel = rel_dir.join(std::ffi::OsStr::from_bytes(&node.name));
            if !wanted(&options.include, &rel) || excluded(options, &rel, &node) {
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
            let mismatch = compare(&key, &path, content);
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
