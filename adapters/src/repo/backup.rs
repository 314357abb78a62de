//! Backing up into a repository: walk the paths, reuse what the parent snapshot says
//! about unchanged files, cut changed files into keyed chunks, store each chunk once,
//! write the trees bottom-up, then the packs' index and the snapshot.
//!
//! Packs are filled [`OPEN_PACKS`] at a time and each new blob goes to one of them at
//! random, so the order and timing of uploaded packs does not follow the files (a large
//! file is not a run of consecutive packs). Nothing is locked: packs, indexes and
//! snapshots have random names and are written once, so backups running at the same
//! time, from one host or many, never write the same name.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use coffer_core::chunker::{ChunkIdKey, Chunker};

use super::cache::{self, WriterCache};
use super::filter::Filter;
use super::fsmeta::{self, Owners};
use super::index::{MemIndex, PackRecord};
use super::keys::Access;
use super::locks::Lock;
use super::pack::{BlobKind, Compression, PACK_TARGET};
use super::snapshot::{Snapshot, Summary, SNAPSHOT_VERSION};
use super::spill::SpillPack;
use super::tree::{ContentRef, Node, NodeKind, Tree};
use super::trees::TreeReader;
use super::uploader::Uploader;
use super::workers::{compress, Workers};
use super::Repository;
use crate::Error;

/// Packs filled at once.
pub const OPEN_PACKS: usize = 3;
/// Chunks handed to the workers and not yet taken back, at most.
const IN_FLIGHT: usize = 4;

/// One of the open packs.
#[derive(Debug)]
enum OpenPack {
    /// No blob yet: its keys are drawn, and its file made, at its first blob.
    Empty,
    /// A dry run's: only its blobs' bytes are counted.
    Counted(usize),
    /// Being sealed into its temporary file.
    Spilling(Box<SpillPack>),
}

impl OpenPack {
    fn fresh(dry_run: bool) -> Self {
        if dry_run {
            OpenPack::Counted(0)
        } else {
            OpenPack::Empty
        }
    }
}
/// Bytes read from a file at a time.
const READ_LEN: usize = 1 << 20;

/// Which snapshot unchanged files are taken from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Parent {
    /// The newest snapshot of the same host and paths (a full key), or the local
    /// cache of the last backup (a write-only key).
    #[default]
    Latest,
    /// None: read every file.
    None,
    /// This one.
    Snapshot([u8; 16]),
}

/// How to back up.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// The host recorded (and matched for the parent).
    pub host: String,
    /// Tags.
    pub tags: Vec<String>,
    /// The parent.
    pub parent: Parent,
    /// Read every file, even those the parent says are unchanged.
    pub force_read: bool,
    /// Where a write-only key keeps its cache of the last backup's trees.
    pub cache_dir: Option<PathBuf>,
    /// The program recorded, e.g. `coffer 0.1.0`.
    pub program: String,
    /// What to leave out.
    pub filter: Filter,
    /// Read and chunk everything, but store nothing: no pack, index or snapshot.
    pub dry_run: bool,
    /// Called as each file is started, for a progress display.
    pub progress: Option<ProgressFn>,
    /// The time recorded instead of now (Unix seconds and nanoseconds), as restic's
    /// `backup --time` does: for importing old backups, and tests of retention.
    pub time: Option<(i64, u32)>,
    /// Set (by a signal handler) to stop the backup: it fails with [`Error::Cancelled`]
    /// at the next file or read, writes no index or snapshot, and removes its lock.
    pub cancel: Option<Arc<AtomicBool>>,
    /// Someone else holds a shared lock on the repository for this backup (a server
    /// for the agent it dispatched, whose storage URLs cannot overwrite or delete), so
    /// the backup takes none of its own.
    pub lock_held_elsewhere: bool,
}

/// Where a running backup stands, as [`BackupOptions::progress`] is told.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// Files seen so far (read or unchanged).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Bytes read from files and streams.
    pub bytes_read: u64,
    /// Raw bytes of new blobs so far.
    pub new_bytes: u64,
    /// The file being started.
    pub current: PathBuf,
}

/// A progress callback; called on the backup's own thread, so it should be quick.
#[derive(Clone)]
pub struct ProgressFn(pub Arc<dyn Fn(&Progress) + Send + Sync>);

impl std::fmt::Debug for ProgressFn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressFn")
    }
}

/// How the files of a backup compare with its parent's (not stored in the snapshot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileChanges {
    /// Files the parent does not have.
    pub new: u64,
    /// Files whose content differs from the parent's.
    pub changed: u64,
    /// Files with the parent's content (most not even read).
    pub unchanged: u64,
    /// Entries left out by the filter (an excluded folder counts once).
    pub excluded: u64,
}

/// What a backup did.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The new snapshot.
    pub snapshot: [u8; 16],
    /// Its totals.
    pub summary: Summary,
    /// Entries that could not be read and are not in the snapshot, with why.
    pub skipped: Vec<(PathBuf, String)>,
    /// New, changed, unchanged and excluded files.
    pub changes: FileChanges,
    /// A dry run: nothing was stored and `snapshot` names nothing (all zeros).
    pub dry_run: bool,
}

/// The backup's shared lock, unless [`BackupOptions::lock_held_elsewhere`].
fn take_lock<'r>(repo: &'r Repository, options: &BackupOptions) -> Result<Option<Lock<'r>>, Error> {
    if options.lock_held_elsewhere {
        return Ok(None);
    }
    Lock::take(repo, false, &options.host).map(Some)
}

/// Backs up `paths` (absolute or relative to the working directory).
///
/// # Errors
/// Storage, core and format errors; a path that does not exist. Entries that vanish
/// or cannot be read during the walk are skipped and reported, not errors.
pub fn backup(
    repo: &Repository,
    paths: &[PathBuf],
    options: &BackupOptions,
) -> Result<BackupReport, Error> {
    let started = Instant::now();
    let start_time = options.time.unwrap_or_else(|| repo.random().now());
    let mut sources = Vec::new();
    for p in paths {
        let abs = std::path::absolute(p).map_err(|e| Error::io(format!("{}", p.display()), e))?;
        // The path is recorded as given and read where it is (elsewhere only in the
        // reproducible mode of test vectors, whose folder stands for `/`).
        let real = repo.random().real_path(&abs);
        std::fs::symlink_metadata(&real)
            .map_err(|e| Error::io(format!("{}", real.display()), e))?;
        sources.push(abs);
    }
    sources.sort();
    sources.dedup();
    let raw_paths: Vec<Vec<u8>> = sources.iter().map(|p| path_bytes(p)).collect();

    let lock = take_lock(repo, options)?;
    let mut w = Writer::new(repo, lock, options)?;
    let parent = w.parent_for(options, &raw_paths)?;
    let root = {
        let trie = Trie::build(&sources);
        let parent_root = match &parent {
            Some((_, root)) => w.trees.tree(&w.index, root)?,
            None => None,
        };
        w.save_trie(
            &repo.random().real_path(Path::new("/")),
            &trie,
            parent_root.as_ref(),
            options.force_read,
        )?
    };
    let snapshot = w.finish(
        options,
        raw_paths,
        parent.map(|(id, _)| id),
        root,
        None,
        start_time,
        started,
    )?;
    Ok(snapshot)
}

/// Backs up a stream (a command's output) as one file named `name` at the root of a
/// snapshot, chunked and deduplicated like any file.
///
/// # Errors
/// As [`backup`]; a read error of the stream fails the backup (nothing is recorded).
pub fn backup_stream(
    repo: &Repository,
    name: &str,
    reader: &mut dyn Read,
    command: String,
    options: &BackupOptions,
) -> Result<BackupReport, Error> {
    let started = Instant::now();
    let start_time = options.time.unwrap_or_else(|| repo.random().now());
    let lock = take_lock(repo, options)?;
    let mut w = Writer::new(repo, lock, options)?;
    w.changes.new += 1;
    let (content, size) = w.save_reader(reader, &format!("the output of {command}"))?;
    let (secs, ns) = start_time;
    let node = Node {
        name: name.as_bytes().to_vec(),
        kind: NodeKind::File { content },
        mode: 0o600,
        uid: 0,
        gid: 0,
        user: String::new(),
        group: String::new(),
        mtime: secs,
        mtime_ns: ns,
        ctime: secs,
        ctime_ns: ns,
        inode: 0,
        dev: 0,
        nlink: 1,
        size,
        xattrs: Vec::new(),
    };
    w.summary.files += 1;
    w.summary.bytes += size;
    let root = w.save_tree(vec![node])?;
    w.finish(
        options,
        vec![format!("/{name}").into_bytes()],
        None,
        root,
        Some(command),
        start_time,
        started,
    )
}

/// A parent snapshot's ID and its root tree's ID.
type ParentRoot = ([u8; 16], [u8; 32]);

/// One backup's writing state.
struct Writer<'r> {
    repo: &'r Repository,
    /// The index as the backup started (shared with the workers).
    index: Arc<MemIndex>,
    /// Blobs this backup stored (in open packs or written ones).
    session: HashSet<[u8; 32]>,
    chunker: Arc<Chunker>,
    workers: Workers,
    uploader: Uploader,
    trees: TreeReader<'r>,
    open: Vec<OpenPack>,
    written: Vec<PackRecord>,
    summary: Summary,
    skipped: Vec<(PathBuf, String)>,
    owners: Owners,
    /// The shared lock that keeps prune away.
    lock: Option<Lock<'r>>,
    /// Every tree of the new snapshot, for a write-only key's cache.
    new_trees: BTreeMap<[u8; 32], Vec<u8>>,
    filter: Filter,
    /// The device of the path given that the walk is under (`--one-file-system`).
    source_dev: u64,
    changes: FileChanges,
    dry_run: bool,
    progress: Option<ProgressFn>,
    /// The file being read: its path, size as scanned, and bytes read so far.
    reading: Option<(PathBuf, u64, u64)>,
    cancel: Option<Arc<AtomicBool>>,
}

impl<'r> Writer<'r> {
    fn new(
        repo: &'r Repository,
        lock: Option<Lock<'r>>,
        options: &BackupOptions,
    ) -> Result<Self, Error> {
        // The index is read after the lock is held: a prune that finished before has
        // written its index, and none can start until the lock goes.
        let index = Arc::new(repo.load_index()?);
        let key = Arc::new(ChunkIdKey::from_bytes(
            *repo.keys().chunk_id_key().expose_secret(),
        ));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Writer {
            repo,
            chunker: Arc::new(repo.keys().chunker(&repo.config().chunker)?),
            workers: Workers::start(threads, key, Arc::clone(&index)),
            trees: TreeReader::new(repo),
            index,
            session: HashSet::new(),
            uploader: Uploader::start(Arc::clone(repo.store())),
            open: (0..OPEN_PACKS)
                .map(|_| OpenPack::fresh(options.dry_run))
                .collect(),
            written: Vec::new(),
            summary: Summary::default(),
            skipped: Vec::new(),
            owners: Owners::new(),
            lock,
            new_trees: BTreeMap::new(),
            filter: options.filter.clone(),
            source_dev: 0,
            changes: FileChanges::default(),
            dry_run: options.dry_run,
            progress: options.progress.clone(),
            reading: None,
            cancel: options.cancel.clone(),
        })
    }

    /// The parent snapshot and its root tree.
    fn parent_for(
        &mut self,
        options: &BackupOptions,
        paths: &[Vec<u8>],
    ) -> Result<Option<ParentRoot>, Error> {
        if self.repo.keys().access() == Access::WriteOnly {
            let Some(dir) = &options.cache_dir else {
                return Ok(None);
            };
            if options.parent == Parent::None {
                return Ok(None);
            }
            let found = cache::load(self.repo, dir, &options.host, paths)?;
            return Ok(found.map(|c: WriterCache| {
                let parent = (c.snapshot, c.root);
                self.trees.add_cached(c.trees);
                parent
            }));
        }
        match &options.parent {
            Parent::None => Ok(None),
            Parent::Snapshot(id) => {
                let s = self.repo.read_snapshot(id)?;
                Ok(Some((*id, s.tree)))
            }
            Parent::Latest => Ok(self
                .repo
                .snapshots()?
                .into_iter()
                .rev()
                .find(|(_, s)| s.host == options.host && s.paths == paths && s.command.is_none())
                .map(|(id, s)| (id, s.tree))),
        }
    }

    /// Saves the trie of source paths under `at`; returns the tree ID.
    fn save_trie(
        &mut self,
        at: &Path,
        trie: &Trie,
        parent: Option<&Tree>,
        force: bool,
    ) -> Result<[u8; 32], Error> {
        let mut nodes = Vec::new();
        for (name, child) in &trie.children {
            let path = at.join(std::ffi::OsStr::from_bytes(name));
            let Some(mut node) = self.lstat(&path)? else {
                continue;
            };
            let parent_node = parent.and_then(|t| find(t, name));
            match child {
                TrieNode::Source => {
                    self.source_dev = node.dev;
                    if self.filter.excludes(&path, &node, node.dev).is_some() {
                        self.changes.excluded += 1;
                        continue;
                    }
                    match self.save_entry(&path, node, parent_node, force) {
                        Ok(node) => nodes.push(node),
                        Err(Error::Cancelled) => return Err(Error::Cancelled),
                        Err(e) => self.skip(&path, &e),
                    }
                }
                TrieNode::Inner(sub) => {
                    let sub_parent = self.parent_subtree(parent_node)?;
                    if !matches!(node.kind, NodeKind::Dir { .. }) {
                        continue;
                    }
                    let id = self.save_trie(&path, sub, sub_parent.as_ref(), force)?;
                    node.kind = NodeKind::Dir { subtree: id };
                    self.summary.dirs += 1;
                    nodes.push(node);
                }
            }
        }
        self.save_tree(nodes)
    }

    fn lstat(&mut self, path: &Path) -> Result<Option<Node>, Error> {
        let parent = path.parent().unwrap_or(Path::new("/"));
        let name = path.file_name().map(|n| n.as_encoded_bytes().to_vec());
        let scanned = fsmeta::scan_dir(parent, &mut self.owners)?;
        Ok(scanned
            .into_iter()
            .find(|s| Some(&s.node.name) == name.as_ref())
            .map(|mut s| {
                self.repo.random().scanned(&mut s.node);
                s.node
            }))
    }

    /// [`Error::Cancelled`] once the caller asked to stop.
    fn check_cancel(&self) -> Result<(), Error> {
        match &self.cancel {
            Some(flag) if flag.load(Ordering::Relaxed) => Err(Error::Cancelled),
            _ => Ok(()),
        }
    }

    /// Tells the progress callback where the backup stands: as each file starts, and
    /// after each read of one. The file being read counts with what was read of it.
    fn tell(&self) {
        if let Some(ProgressFn(f)) = &self.progress {
            let (current, size, read) = self.reading.clone().unwrap_or_default();
            f(&Progress {
                files: self.summary.files,
                bytes: self.summary.bytes - size + read.min(size),
                bytes_read: self.summary.bytes_read,
                new_bytes: self.summary.new_raw_bytes,
                current,
            });
        }
    }

    fn skip(&mut self, path: &Path, e: &Error) {
        self.skipped.push((path.to_owned(), e.to_string()));
    }

    fn parent_subtree(&mut self, parent: Option<&Node>) -> Result<Option<Tree>, Error> {
        match parent.map(|n| &n.kind) {
            Some(NodeKind::Dir { subtree }) => self.trees.tree(&self.index, subtree),
            _ => Ok(None),
        }
    }

    /// Fills in one scanned entry: a file's content, a directory's subtree.
    fn save_entry(
        &mut self,
        path: &Path,
        mut node: Node,
        parent: Option<&Node>,
        force: bool,
    ) -> Result<Node, Error> {
        match &node.kind {
            NodeKind::File { .. } => {
                self.summary.files += 1;
                self.summary.bytes += node.size;
                self.reading = Some((path.to_owned(), node.size, 0));
                self.tell();
                let reusable = parent.filter(|p| !force && fsmeta::same_file(p, &node));
                let reused = match reusable.map(|p| &p.kind) {
                    Some(NodeKind::File { content }) if self.all_stored(content) => {
                        Some(content.clone())
                    }
                    _ => None,
                };
                let content = match reused {
                    Some(c) => c,
                    None => {
                        let mut file = std::fs::File::open(path)
                            .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
                        self.summary.files_read += 1;
                        let (content, size) =
                            self.save_reader(&mut file, &path.display().to_string())?;
                        // The length read is what the tree records, even if the file
                        // changed between lstat and reading.
                        node.size = size;
                        content
                    }
                };
                self.reading = None;
                match parent.map(|p| &p.kind) {
                    None => self.changes.new += 1,
                    Some(NodeKind::File { content: before }) if *before == content => {
                        self.changes.unchanged += 1;
                    }
                    Some(_) => self.changes.changed += 1,
                }
                node.kind = NodeKind::File { content };
            }
            NodeKind::Dir { .. } => {
                self.summary.dirs += 1;
                let sub_parent = self.parent_subtree(parent)?;
                let id = self.save_dir(path, sub_parent.as_ref(), force)?;
                node.kind = NodeKind::Dir { subtree: id };
            }
            _ => self.summary.others += 1,
        }
        Ok(node)
    }

    fn all_stored(&self, content: &[ContentRef]) -> bool {
        content.iter().all(|c| match c {
            ContentRef::Data { id, .. } => self.index.contains(id) || self.session.contains(id),
            ContentRef::Hole { .. } => true,
        })
    }

    /// Saves a directory's entries; returns its tree ID.
    fn save_dir(
        &mut self,
        dir: &Path,
        parent: Option<&Tree>,
        force: bool,
    ) -> Result<[u8; 32], Error> {
        let scanned = fsmeta::scan_dir(dir, &mut self.owners)?;
        let mut nodes = Vec::with_capacity(scanned.len());
        for mut s in scanned {
            self.check_cancel()?;
            self.repo.random().scanned(&mut s.node);
            if self
                .filter
                .excludes(&s.path, &s.node, self.source_dev)
                .is_some()
            {
                self.changes.excluded += 1;
                continue;
            }
            let parent_node = parent.and_then(|t| find(t, &s.node.name));
            match self.save_entry(&s.path, s.node, parent_node, force) {
                Ok(node) => nodes.push(node),
                Err(Error::Cancelled) => return Err(Error::Cancelled),
                Err(e) => self.skip(&s.path, &e),
            }
        }
        self.save_tree(nodes)
    }

    fn save_tree(&mut self, nodes: Vec<Node>) -> Result<[u8; 32], Error> {
        let tree = Tree { version: 2, nodes };
        let bytes = tree.encode();
        let id = self.add_blob(BlobKind::Tree, &bytes)?;
        self.new_trees.insert(id, bytes);
        Ok(id)
    }

    /// Chunks a stream and stores its chunks; returns the content list and length. The
    /// chunks are hashed and compressed by the workers while this thread reads on; at
    /// most [`IN_FLIGHT`] are out at once.
    fn save_reader(
        &mut self,
        reader: &mut dyn Read,
        what: &str,
    ) -> Result<(Vec<ContentRef>, u64), Error> {
        let chunker = Arc::clone(&self.chunker);
        let mut stream = chunker.stream();
        let mut buf = vec![0u8; READ_LEN];
        let mut chunk: Vec<u8> = Vec::new();
        let mut content = Vec::new();
        let mut tickets = std::collections::VecDeque::new();
        let mut total = 0u64;
        loop {
            self.check_cancel()?;
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(format!("reading {what}"), e)),
            };
            total += n as u64;
            self.summary.bytes_read += n as u64;
            if let Some((_, _, read)) = &mut self.reading {
                *read += n as u64;
                self.tell();
            }
            let mut rest = &buf[..n];
            while let Some(k) = stream.next_cut(rest) {
                chunk.extend_from_slice(&rest[..k]);
                tickets.push_back(self.workers.submit(std::mem::take(&mut chunk)));
                while tickets.len() > IN_FLIGHT {
                    if let Some(t) = tickets.pop_front() {
                        content.push(self.save_prepared(t)?);
                    }
                }
                rest = &rest[k..];
            }
            chunk.extend_from_slice(rest);
        }
        if stream.finish().is_some() {
            tickets.push_back(self.workers.submit(chunk));
        }
        for t in tickets {
            content.push(self.save_prepared(t)?);
        }
        Ok((content, total))
    }

    /// Takes a prepared chunk back from the workers and stores it if it is new.
    fn save_prepared(&mut self, ticket: u64) -> Result<ContentRef, Error> {
        let p = self.workers.take(ticket)?;
        // Runs of zeros are holes: restored sparse, stored as nothing.
        if p.zero {
            return Ok(ContentRef::Hole {
                len: p.raw_len as u64,
            });
        }
        let piece = ContentRef::Data {
            id: p.id,
            len: p.raw_len as u32,
        };
        if self.index.contains(&p.id) || self.session.contains(&p.id) {
            return Ok(piece);
        }
        let Some((stored, compression)) = p.stored else {
            return Ok(piece);
        };
        self.store(p.id, BlobKind::Data, compression, &stored, p.raw_len)?;
        Ok(piece)
    }

    /// Stores a blob (a tree) unless the repository has it; returns its ID.
    fn add_blob(&mut self, kind: BlobKind, raw: &[u8]) -> Result<[u8; 32], Error> {
        let id = self.repo.keys().chunk_id(raw);
        if self.index.contains(&id) || self.session.contains(&id) {
            return Ok(id);
        }
        let (stored, compression) = compress(raw.to_vec())?;
        self.store(id, kind, compression, &stored, raw.len())?;
        Ok(id)
    }

    /// Puts a new blob into one of the open packs, chosen at random.
    fn store(
        &mut self,
        id: [u8; 32],
        kind: BlobKind,
        compression: Compression,
        stored: &[u8],
        raw_len: usize,
    ) -> Result<(), Error> {
        let slot = self.repo.random().below(OPEN_PACKS);
        let filled = match &mut self.open[slot] {
            OpenPack::Counted(n) => {
                *n += stored.len();
                *n
            }
            OpenPack::Spilling(pack) => {
                pack.add(id, kind, compression, stored, raw_len)?;
                pack.body_len()
            }
            OpenPack::Empty => {
                let mut pack = Box::new(SpillPack::start(self.repo)?);
                pack.add(id, kind, compression, stored, raw_len)?;
                let filled = pack.body_len();
                self.open[slot] = OpenPack::Spilling(pack);
                filled
            }
        };
        self.session.insert(id);
        match kind {
            BlobKind::Data => self.summary.new_blobs += 1,
            BlobKind::Tree => self.summary.new_trees += 1,
        }
        self.summary.new_raw_bytes += raw_len as u64;
        self.summary.new_stored_bytes += stored.len() as u64;
        if filled >= PACK_TARGET {
            self.flush(slot)?;
        }
        Ok(())
    }

    /// Closes open pack `slot`, hands it to the uploader, and records its blobs.
    fn flush(&mut self, slot: usize) -> Result<(), Error> {
        let pack = match std::mem::replace(&mut self.open[slot], OpenPack::fresh(self.dry_run)) {
            OpenPack::Empty | OpenPack::Counted(0) => return Ok(()),
            OpenPack::Counted(_) => {
                self.summary.packs += 1;
                return Ok(());
            }
            OpenPack::Spilling(pack) => pack,
        };
        self.summary.packs += 1;
        let stored = self.uploader.send((*pack).finish()?)?;
        self.record(stored);
        if let Some(lock) = &mut self.lock {
            lock.refresh()?;
        }
        Ok(())
    }

    fn record(&mut self, stored: Vec<PackRecord>) {
        self.written.extend(stored);
    }

    /// Flushes the packs, writes their index, then the snapshot (the last object: a
    /// snapshot never names a blob that is not stored and indexed), and the cache.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        mut self,
        options: &BackupOptions,
        paths: Vec<Vec<u8>>,
        parent: Option<[u8; 16]>,
        root: [u8; 32],
        command: Option<String>,
        start_time: (i64, u32),
        started: Instant,
    ) -> Result<BackupReport, Error> {
        for slot in 0..OPEN_PACKS {
            self.flush(slot)?;
        }
        let stored = self.uploader.finish()?;
        self.record(stored);
        if self.dry_run {
            if let Some(lock) = self.lock.take() {
                lock.release()?;
            }
            return Ok(BackupReport {
                snapshot: [0; 16],
                summary: self.summary,
                skipped: self.skipped,
                changes: self.changes,
                dry_run: true,
            });
        }
        if !self.written.is_empty() {
            self.repo.write_index(&super::index::IndexFile {
                packs: std::mem::take(&mut self.written),
                supersedes: Vec::new(),
            })?;
        }
        let (time, time_ns) = start_time;
        // The reproducible mode (test vectors) records no duration and no user, which
        // differ from run to run and machine to machine.
        let reproducible = self.repo.random().is_reproducible();
        self.summary.duration_ms = if reproducible {
            0
        } else {
            u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
        };
        let user = if reproducible {
            String::new()
        } else {
            self.owners.user_name(rustix::process::geteuid().as_raw())
        };
        let snapshot = Snapshot {
            version: SNAPSHOT_VERSION,
            time,
            time_ns,
            host: options.host.clone(),
            user,
            paths: paths.clone(),
            tags: options.tags.clone(),
            parent,
            tree: root,
            program: options.program.clone(),
            command,
            summary: self.summary.clone(),
        };
        let id = self.repo.write_snapshot(&snapshot)?;
        if let Some(lock) = self.lock.take() {
            lock.release()?;
        }
        if self.repo.keys().access() == Access::WriteOnly {
            if let Some(dir) = &options.cache_dir {
                cache::save(
                    self.repo,
                    dir,
                    &options.host,
                    &paths,
                    &WriterCache {
                        snapshot: id,
                        root,
                        trees: std::mem::take(&mut self.new_trees),
                    },
                )?;
            }
        }
        Ok(BackupReport {
            snapshot: id,
            summary: self.summary,
            skipped: self.skipped,
            changes: self.changes,
            dry_run: false,
        })
    }
}

fn find<'t>(tree: &'t Tree, name: &[u8]) -> Option<&'t Node> {
    tree.nodes
        .binary_search_by(|n| n.name.as_slice().cmp(name))
        .ok()
        .map(|i| &tree.nodes[i])
}

/// The source paths as a tree of path components.
#[derive(Debug, Default)]
struct Trie {
    children: BTreeMap<Vec<u8>, TrieNode>,
}

#[derive(Debug)]
enum TrieNode {
    /// A path given: everything under it is backed up.
    Source,
    /// A directory on the way to one.
    Inner(Trie),
}

impl Trie {
    fn build(sources: &[PathBuf]) -> Trie {
        let mut root = Trie::default();
        for source in sources {
            let parts: Vec<Vec<u8>> = source
                .components()
                .filter_map(|c| match c {
                    std::path::Component::Normal(n) => Some(n.as_encoded_bytes().to_vec()),
                    _ => None,
                })
                .collect();
            root.insert(&parts);
        }
        root
    }

    fn insert(&mut self, parts: &[Vec<u8>]) {
        let Some((first, rest)) = parts.split_first() else {
            return;
        };
        if rest.is_empty() {
            self.children.insert(first.clone(), TrieNode::Source);
            return;
        }
        let child = self
            .children
            .entry(first.clone())
            .or_insert_with(|| TrieNode::Inner(Trie::default()));
        if let TrieNode::Inner(t) = child {
            t.insert(rest);
        }
        // Under a source already: covered by it.
    }
}

fn path_bytes(p: &Path) -> Vec<u8> {
    p.as_os_str().as_encoded_bytes().to_vec()
}
