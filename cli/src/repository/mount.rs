//! `coffer mount`: a repository's snapshots as a read-only FUSE file system, laid out
//! as restic lays them out:
//!
//! ```text
//! MOUNTPOINT/snapshots/2026-05-01T10:15:00-1a2b3c4d/   one snapshot's root folder
//! MOUNTPOINT/snapshots/latest -> the newest of them
//! MOUNTPOINT/hosts/HOST/…                              the same, one host's only
//! MOUNTPOINT/ids/FULL-HEX-ID/                          each by its full ID
//! ```
//!
//! Nothing is read before it is asked for: a folder's tree when something first looks
//! into it, a file's chunks when those bytes are read, each verified by `BlobReader`
//! before any of its bytes reach the kernel. Holes read as zeros. The last few chunks
//! stay decoded, so the kernel's 128 KiB reads of one large chunk fetch it once.
//!
//! Inodes are numbered as entries are met (a folder's children together, when it is
//! first listed or looked into) and kept until unmount, so one path keeps its number.
//! The snapshots shown are those the repository held when it was mounted.
//!
//! Threads: `fuser` runs the file system on a thread of its own and wants it `'static`,
//! but the blob reader borrows the repository; so the repository stays on the calling
//! thread, which answers the file system's requests for trees and chunks over a channel
//! until the file system is gone. A third thread waits for Ctrl-C or SIGTERM and
//! unmounts as `fusermount3 -u` does; if the mount is busy, it says so and keeps
//! serving. An unmount from outside ends the command too.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::ffi::OsStr;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coffer_adapters::repo::index::MemIndex;
use coffer_adapters::repo::snapshot::Snapshot;
use coffer_adapters::repo::tree::{ContentRef, Node, NodeKind, Tree, MODE_BITS};
use coffer_adapters::repo::trees::{decode_tree, BlobReader};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    MountOption, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry,
    ReplyOpen, ReplyXattr, Request, SessionUnmounter,
};

use super::args::MountCmd;
use super::{open, short};
use crate::exit::{CliError, Result};

/// How long the kernel may keep attributes and entries: what a snapshot holds never
/// changes, so only memory bounds this.
const TTL: Duration = Duration::from_secs(60);
/// How many decoded chunks stay in memory for the reads that follow.
const CACHED_CHUNKS: usize = 4;
/// The root folder's inode, as FUSE numbers it.
const ROOT: u64 = 1;

/// `coffer mount`: serves the file system until it is unmounted.
pub(crate) fn run(cmd: &MountCmd) -> Result<()> {
    let repo = open(&cmd.repo)?;
    // A write-only key stops here (exit 8), before anything is mounted.
    let snapshots = repo.snapshots()?;
    let index = repo.load_index()?;
    let mut blobs = BlobReader::new(&repo);
    if let Some((_, newest)) = snapshots.last() {
        decode_tree(&blobs.read(&index, &newest.tree)?)?;
    }
    let shown = cmd.mountpoint.display();
    let mountpoint = std::fs::canonicalize(&cmd.mountpoint)
        .map_err(|e| CliError::io(format!("the mount point {shown}"), e))?;
    let meta = std::fs::metadata(&mountpoint)
        .map_err(|e| CliError::io(format!("the mount point {shown}"), e))?;
    if !meta.is_dir() {
        return Err(CliError::Usage(format!("{shown}: not a folder")));
    }

    // Before mounting, so a Ctrl-C from then on unmounts instead of killing the process.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .map_err(|e| CliError::io("installing the Ctrl-C handler", e))?;
    }

    let (jobs, requests) = mpsc::channel();
    let fs = SnapshotFs {
        jobs,
        state: Mutex::new(State::new(&snapshots, (meta.uid(), meta.gid()))),
    };
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::RO,
        MountOption::FSName("coffer".to_owned()),
        MountOption::Subtype("coffer".to_owned()),
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    let mut session = fuser::Session::new(fs, &mountpoint, &config).map_err(|e| {
        CliError::io(
            format!("mounting on {shown} (FUSE needs /dev/fuse, and fusermount3 if not root)"),
            e,
        )
    })?;
    let unmounter = session.unmount_callable();
    let helper = fusermount();
    let how = helper.as_deref().and_then(Path::file_name).map_or_else(
        || "umount".into(),
        |n| format!("{} -u", n.to_string_lossy()),
    );
    eprintln!("mounted at {shown}; Ctrl-C or `{how} {shown}` to unmount");

    let served = thread::Builder::new()
        .name("coffer-fuse".to_owned())
        .spawn(move || session.run())
        .map_err(|e| CliError::io("starting the file system's thread", e))?;
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = Arc::clone(&done);
        thread::spawn(move || watch(&stop, &done, &mountpoint, helper.as_deref(), unmounter))
    };
    // Until the file system, and with it the channel's sender, is dropped at unmount.
    serve(&index, &mut blobs, requests);
    let ended = served.join();
    done.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    match ended {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(CliError::io("serving the file system", e)),
        Err(_) => Err(CliError::Other("the file system's thread panicked".into())),
    }
}

/// What the file system asks of the thread holding the repository.
enum Job {
    /// A tree, verified and decoded.
    Tree([u8; 32], Sender<Result<Tree>>),
    /// A chunk, verified.
    Chunk([u8; 32], Sender<Result<Vec<u8>>>),
}

/// Answers jobs until every sender is gone.
fn serve(index: &MemIndex, blobs: &mut BlobReader<'_>, requests: Receiver<Job>) {
    for job in requests {
        // A send fails only if the asker is gone, and then nobody waits for the answer.
        match job {
            Job::Tree(id, back) => {
                let tree = blobs
                    .read(index, &id)
                    .and_then(|blob| decode_tree(&blob))
                    .map_err(|e| CliError::from(e).context(format!("tree {}", hex::encode(id))));
                let _ = back.send(tree);
            }
            Job::Chunk(id, back) => {
                let chunk = blobs
                    .read(index, &id)
                    .map_err(|e| CliError::from(e).context(format!("chunk {}", hex::encode(id))));
                let _ = back.send(chunk);
            }
        }
    }
}

/// Sends a job and waits for its answer; a failure is reported on stderr and reaches
/// the reader as EIO.
fn ask<T>(jobs: &Sender<Job>, job: impl FnOnce(Sender<Result<T>>) -> Job) -> Result<T, Errno> {
    let (back, answer) = mpsc::channel();
    jobs.send(job(back)).map_err(|_| Errno::EIO)?;
    match answer.recv() {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => {
            eprintln!("coffer: reading {e}");
            Err(Errno::EIO)
        }
        Err(_) => Err(Errno::EIO),
    }
}

/// Until `done`: on each Ctrl-C or SIGTERM, unmount (the session then ends by itself).
fn watch(
    stop: &AtomicBool,
    done: &AtomicBool,
    mountpoint: &Path,
    helper: Option<&Path>,
    mut unmounter: SessionUnmounter,
) {
    while !done.load(Ordering::Relaxed) {
        if stop.swap(false, Ordering::Relaxed) {
            if let Err(why) = unmount(mountpoint, helper, &mut unmounter) {
                eprintln!(
                    "coffer: cannot unmount {}: {why}; close what uses it and try again",
                    mountpoint.display()
                );
            }
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Unmounts through `fusermount3 -u` (which may be retried when busy), else through
/// fuser's own unmount (root without the helper).
fn unmount(
    mountpoint: &Path,
    helper: Option<&Path>,
    unmounter: &mut SessionUnmounter,
) -> Result<(), String> {
    let Some(helper) = helper else {
        return unmounter.unmount().map_err(|e| e.to_string());
    };
    let out = Command::new(helper)
        .arg("-u")
        .arg("--")
        .arg(mountpoint)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {}: {e}", helper.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// The `fusermount3` (else `fusermount`) on `$PATH`.
fn fusermount() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    ["fusermount3", "fusermount"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// The file system: its inodes and chunk cache, and the way to the repository.
struct SnapshotFs {
    jobs: Sender<Job>,
    state: Mutex<State>,
}

impl SnapshotFs {
    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing in `State` is left half-changed by a panic that matters to readers.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Everything else is refused: the mount is read-only, so the kernel answers writes
/// with EROFS before they get here, and fuser's defaults refuse the rest.
impl Filesystem for SnapshotFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let mut state = self.state();
        match state
            .lookup(&self.jobs, parent.0, name.as_bytes())
            .and_then(|ino| state.attr(ino))
        {
            Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.state().attr(ino.0) {
            Ok(attr) => reply.attr(&TTL, &attr),
            Err(e) => reply.error(e),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let state = self.state();
        match state.get(ino.0).map(|i| &i.what) {
            Ok(What::Latest { target, .. }) => reply.data(target),
            Ok(What::Node(entry)) => match &entry.node.kind {
                NodeKind::Symlink { target } => reply.data(target),
                _ => reply.error(Errno::EINVAL),
            },
            Ok(What::Folder { .. }) => reply.error(Errno::EINVAL),
            Err(e) => reply.error(e),
        }
    }

    fn open(&self, _req: &Request, _ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        // What a snapshot holds never changes: the page cache may outlive this open.
        reply.opened(FileHandle(0), FopenFlags::FOPEN_KEEP_CACHE);
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.state().read(&self.jobs, ino.0, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match self.state().readdir(&self.jobs, ino.0, offset, &mut reply) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(e),
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let state = self.state();
        let value = match state.get(ino.0).map(|i| &i.what) {
            Ok(What::Node(entry)) => entry
                .node
                .xattrs
                .iter()
                .find(|x| x.name == name.as_bytes())
                .map(|x| x.value.as_slice()),
            Ok(_) => None,
            Err(e) => return reply.error(e),
        };
        match value {
            Some(value) => reply_xattr(value, size, reply),
            None => reply.error(Errno::NO_XATTR),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let state = self.state();
        let mut names = Vec::new();
        match state.get(ino.0).map(|i| &i.what) {
            Ok(What::Node(entry)) => {
                for x in &entry.node.xattrs {
                    names.extend_from_slice(&x.name);
                    names.push(0);
                }
            }
            Ok(_) => {}
            Err(e) => return reply.error(e),
        }
        reply_xattr(&names, size, reply);
    }
}

/// An extended attribute's value (or the list of names) as getxattr(2) answers: its size
/// when asked with size 0, ERANGE when it does not fit.
fn reply_xattr(value: &[u8], size: u32, reply: ReplyXattr) {
    let len = u32::try_from(value.len()).unwrap_or(u32::MAX);
    if size == 0 {
        reply.size(len);
    } else if len > size {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(value);
    }
}

/// The inodes (inode `n` at index `n - 1`) and the last chunks read.
struct State {
    inodes: Vec<Inode>,
    /// Most recently used first.
    chunks: VecDeque<([u8; 32], Vec<u8>)>,
    /// Who the mount's own folders belong to: the mount point's owner.
    owner: (u32, u32),
}

/// One inode: where it is, and what.
struct Inode {
    parent: u64,
    what: What,
}

/// What an inode is.
// Nearly every inode is a `Node`: boxing it would only add an allocation to each.
#[allow(clippy::large_enum_variant)]
enum What {
    /// A folder of the mount's own: the root, `snapshots`, `hosts`, a host, `ids`. Its
    /// entries are sorted by name.
    Folder {
        entries: Vec<(Vec<u8>, u64)>,
        mtime: i64,
    },
    /// A `latest` link to the newest snapshot's folder beside it.
    Latest { target: Vec<u8>, mtime: i64 },
    /// An entry of a snapshot (its root folder too).
    Node(Entry),
}

/// An entry of a snapshot.
struct Entry {
    node: Node,
    /// A folder's children, once it was listed: consecutive inodes, in the tree's order
    /// (sorted by name).
    children: Option<Range<u64>>,
    /// A file's pieces' end offsets: the running totals of their lengths.
    ends: Vec<u64>,
}

impl Entry {
    fn new(node: Node) -> Self {
        let ends = match &node.kind {
            NodeKind::File { content } => content
                .iter()
                .scan(0u64, |at, piece| {
                    *at = at.saturating_add(piece.len());
                    Some(*at)
                })
                .collect(),
            _ => Vec::new(),
        };
        Entry {
            node,
            children: None,
            ends,
        }
    }
}

impl State {
    /// The mount's own folders for these snapshots (oldest first), snapshots unread.
    fn new(snapshots: &[([u8; 16], Snapshot)], owner: (u32, u32)) -> Self {
        let mut state = State {
            inodes: Vec::new(),
            chunks: VecDeque::new(),
            owner,
        };
        let newest = snapshots.last().map_or(0, |(_, s)| s.time);
        let names = folder_names(snapshots);
        let named: Vec<(&str, &Snapshot)> = names
            .iter()
            .map(String::as_str)
            .zip(snapshots.iter().map(|(_, s)| s))
            .collect();
        let root = state.folder(ROOT, newest);

        let all = state.folder(root, newest);
        let entries = state.snapshot_folders(all, &named, true);
        state.fill(all, entries);

        let hosts = state.folder(root, newest);
        let mut by_host: BTreeMap<String, Vec<(&str, &Snapshot)>> = BTreeMap::new();
        for &(name, snapshot) in &named {
            by_host
                .entry(host_folder(&snapshot.host))
                .or_default()
                .push((name, snapshot));
        }
        let mut host_entries = Vec::new();
        for (host, members) in by_host {
            let mtime = members.last().map_or(newest, |(_, s)| s.time);
            let dir = state.folder(hosts, mtime);
            let entries = state.snapshot_folders(dir, &members, true);
            state.fill(dir, entries);
            host_entries.push((host.into_bytes(), dir));
        }
        state.fill(hosts, host_entries);

        let ids = state.folder(root, newest);
        let by_id: Vec<(String, &Snapshot)> = snapshots
            .iter()
            .map(|(id, s)| (hex::encode(id), s))
            .collect();
        let by_id: Vec<(&str, &Snapshot)> = by_id.iter().map(|(n, s)| (n.as_str(), *s)).collect();
        let entries = state.snapshot_folders(ids, &by_id, false);
        state.fill(ids, entries);

        state.fill(
            root,
            vec![
                (b"hosts".to_vec(), hosts),
                (b"ids".to_vec(), ids),
                (b"snapshots".to_vec(), all),
            ],
        );
        state
    }

    /// Adds an inode; returns its number.
    fn push(&mut self, parent: u64, what: What) -> u64 {
        self.inodes.push(Inode { parent, what });
        self.inodes.len() as u64
    }

    /// Adds an empty folder of the mount's own.
    fn folder(&mut self, parent: u64, mtime: i64) -> u64 {
        self.push(
            parent,
            What::Folder {
                entries: Vec::new(),
                mtime,
            },
        )
    }

    /// Sets a folder's entries, sorted.
    fn fill(&mut self, folder: u64, mut list: Vec<(Vec<u8>, u64)>) {
        list.sort();
        if let Ok(Inode {
            what: What::Folder { entries, .. },
            ..
        }) = self.get_mut(folder)
        {
            *entries = list;
        }
    }

    /// The root folders of `members` (oldest first) in `folder`, and a `latest` link to
    /// the newest if asked for.
    fn snapshot_folders(
        &mut self,
        folder: u64,
        members: &[(&str, &Snapshot)],
        latest: bool,
    ) -> Vec<(Vec<u8>, u64)> {
        let mut entries = Vec::new();
        for &(name, snapshot) in members {
            let root = self.push(
                folder,
                What::Node(Entry::new(root_node(snapshot, self.owner))),
            );
            entries.push((name.as_bytes().to_vec(), root));
        }
        if let (true, Some(&(name, newest))) = (latest, members.last()) {
            let link = self.push(
                folder,
                What::Latest {
                    target: name.as_bytes().to_vec(),
                    mtime: newest.time,
                },
            );
            entries.push((b"latest".to_vec(), link));
        }
        entries
    }

    fn get(&self, ino: u64) -> Result<&Inode, Errno> {
        inode(&self.inodes, ino)
    }

    fn get_mut(&mut self, ino: u64) -> Result<&mut Inode, Errno> {
        index(ino)
            .and_then(|i| self.inodes.get_mut(i))
            .ok_or(Errno::ENOENT)
    }

    /// The attributes of inode `ino`.
    fn attr(&self, ino: u64) -> Result<FileAttr, Errno> {
        let (uid, gid) = self.owner;
        let own = |kind, perm, size: u64, mtime| FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: 0,
            atime: time(mtime, 0),
            mtime: time(mtime, 0),
            ctime: time(mtime, 0),
            crtime: time(mtime, 0),
            kind,
            perm,
            nlink: if kind == FileType::Directory { 2 } else { 1 },
            uid,
            gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        };
        Ok(match &self.get(ino)?.what {
            What::Folder { mtime, .. } => own(FileType::Directory, 0o555, 0, *mtime),
            What::Latest { target, mtime } => {
                own(FileType::Symlink, 0o777, target.len() as u64, *mtime)
            }
            What::Node(entry) => node_attr(ino, &entry.node),
        })
    }

    /// The children of folder `ino` of a snapshot, listed on first use.
    fn children(&mut self, jobs: &Sender<Job>, ino: u64) -> Result<Range<u64>, Errno> {
        let subtree = match &self.get(ino)?.what {
            What::Node(Entry {
                children: Some(range),
                ..
            }) => return Ok(range.clone()),
            What::Node(Entry {
                node:
                    Node {
                        kind: NodeKind::Dir { subtree },
                        ..
                    },
                ..
            }) => *subtree,
            _ => return Err(Errno::ENOTDIR),
        };
        let tree = ask(jobs, |back| Job::Tree(subtree, back))?;
        let first = self.inodes.len() as u64 + 1;
        for node in tree.nodes {
            self.push(ino, What::Node(Entry::new(node)));
        }
        let range = first..self.inodes.len() as u64 + 1;
        if let Ok(Inode {
            what: What::Node(entry),
            ..
        }) = self.get_mut(ino)
        {
            entry.children = Some(range.clone());
        }
        Ok(range)
    }

    /// The inode of `name` in folder `parent`.
    fn lookup(&mut self, jobs: &Sender<Job>, parent: u64, name: &[u8]) -> Result<u64, Errno> {
        if let What::Folder { entries, .. } = &self.get(parent)?.what {
            return entries
                .binary_search_by(|(n, _)| n.as_slice().cmp(name))
                .ok()
                .and_then(|i| entries.get(i))
                .map(|&(_, ino)| ino)
                .ok_or(Errno::ENOENT);
        }
        let range = self.children(jobs, parent)?;
        let kids = index_range(&range)
            .and_then(|r| self.inodes.get(r))
            .ok_or(Errno::EIO)?;
        kids.binary_search_by(|kid| node_name(kid).cmp(name))
            .map(|i| range.start + i as u64)
            .map_err(|_| Errno::ENOENT)
    }

    /// Fills `reply` with folder `ino`'s entries from position `offset` (`.` and `..`
    /// first); each entry's offset is the position after it.
    fn readdir(
        &mut self,
        jobs: &Sender<Job>,
        ino: u64,
        offset: u64,
        reply: &mut ReplyDirectory,
    ) -> Result<(), Errno> {
        let kids = match &self.get(ino)?.what {
            What::Folder { .. } => None,
            _ => Some(self.children(jobs, ino)?),
        };
        let dir = self.get(ino)?;
        let mut at = offset;
        loop {
            let (child, name): (u64, &[u8]) = match at {
                0 => (ino, b"."),
                1 => (dir.parent, b".."),
                n => {
                    let k = n - 2;
                    let found = match (&dir.what, &kids) {
                        (What::Folder { entries, .. }, _) => usize::try_from(k)
                            .ok()
                            .and_then(|k| entries.get(k))
                            .map(|(name, ino)| (*ino, name.as_slice())),
                        (_, Some(range)) => range
                            .start
                            .checked_add(k)
                            .filter(|c| range.contains(c))
                            .and_then(|c| Some((c, node_name(self.get(c).ok()?)))),
                        _ => None,
                    };
                    match found {
                        Some(found) => found,
                        None => return Ok(()),
                    }
                }
            };
            let kind = self.get(child).map_or(FileType::Directory, file_type);
            if reply.add(INodeNo(child), at + 1, kind, OsStr::from_bytes(name)) {
                return Ok(()); // Full: the kernel asks again from `at`.
            }
            at += 1;
        }
    }

    /// Up to `size` bytes of file `ino` from `offset`: each chunk verified, holes as
    /// zeros.
    fn read(
        &mut self,
        jobs: &Sender<Job>,
        ino: u64,
        offset: u64,
        size: u32,
    ) -> Result<Vec<u8>, Errno> {
        let State { inodes, chunks, .. } = self;
        let entry = match &inode(inodes, ino)?.what {
            What::Node(entry) => entry,
            _ => return Err(Errno::EISDIR),
        };
        let content = match &entry.node.kind {
            NodeKind::File { content } => content,
            NodeKind::Dir { .. } => return Err(Errno::EISDIR),
            _ => return Err(Errno::EINVAL),
        };
        let mut out = Vec::new();
        for (piece, from, to) in spans(&entry.ends, offset, u64::from(size)) {
            let (Ok(from), Ok(to)) = (usize::try_from(from), usize::try_from(to)) else {
                return Err(Errno::EIO);
            };
            match content.get(piece) {
                Some(ContentRef::Hole { .. }) => out.resize(out.len() + (to - from), 0),
                Some(ContentRef::Data { id, len }) => {
                    let data = chunk(chunks, jobs, id)?;
                    if data.len() as u64 != u64::from(*len) {
                        eprintln!(
                            "coffer: reading chunk {}: {} bytes, where the tree says {len}",
                            hex::encode(id),
                            data.len()
                        );
                        return Err(Errno::EIO);
                    }
                    out.extend_from_slice(data.get(from..to).ok_or(Errno::EIO)?);
                }
                None => return Err(Errno::EIO),
            }
        }
        Ok(out)
    }
}

/// Inode `ino` of `inodes`.
fn inode(inodes: &[Inode], ino: u64) -> Result<&Inode, Errno> {
    index(ino).and_then(|i| inodes.get(i)).ok_or(Errno::ENOENT)
}

/// Where inode `ino` is in the list of inodes.
fn index(ino: u64) -> Option<usize> {
    usize::try_from(ino).ok()?.checked_sub(1)
}

/// Where a range of inodes is in the list of inodes.
fn index_range(range: &Range<u64>) -> Option<Range<usize>> {
    Some(index(range.start)?..index(range.end)?)
}

/// The name of a snapshot's entry (the only inodes listed as a folder's children).
fn node_name(inode: &Inode) -> &[u8] {
    match &inode.what {
        What::Node(entry) => &entry.node.name,
        _ => b"",
    }
}

/// Chunk `id`, from the cache or else from the repository; it becomes the most recent.
fn chunk<'c>(
    chunks: &'c mut VecDeque<([u8; 32], Vec<u8>)>,
    jobs: &Sender<Job>,
    id: &[u8; 32],
) -> Result<&'c [u8], Errno> {
    match chunks.iter().position(|(c, _)| c == id) {
        Some(at) => {
            if let Some(hit) = chunks.remove(at) {
                chunks.push_front(hit);
            }
        }
        None => {
            let data = ask(jobs, |back| Job::Chunk(*id, back))?;
            chunks.push_front((*id, data));
            chunks.truncate(CACHED_CHUNKS);
        }
    }
    chunks
        .front()
        .map(|(_, data)| data.as_slice())
        .ok_or(Errno::EIO)
}

/// The pieces a read of `len` bytes at `offset` covers, as `(piece, from, to)`: the
/// byte range within each piece. `ends` are the pieces' end offsets; nothing past the
/// last is covered.
fn spans(ends: &[u64], offset: u64, len: u64) -> Vec<(usize, u64, u64)> {
    let total = ends.last().copied().unwrap_or(0);
    let end = offset.saturating_add(len).min(total);
    let mut out = Vec::new();
    let mut piece = ends.partition_point(|&e| e <= offset);
    let mut at = offset;
    while at < end {
        let Some(&piece_end) = ends.get(piece) else {
            break;
        };
        let start = piece
            .checked_sub(1)
            .and_then(|p| ends.get(p))
            .copied()
            .unwrap_or(0);
        let to = end.min(piece_end);
        if to > at {
            out.push((piece, at - start, to - start));
            at = to;
        }
        piece += 1;
    }
    out
}

/// The kind of an inode, as a directory listing says it.
fn file_type(inode: &Inode) -> FileType {
    match &inode.what {
        What::Folder { .. } => FileType::Directory,
        What::Latest { .. } => FileType::Symlink,
        What::Node(entry) => node_type(&entry.node),
    }
}

/// A snapshot entry's kind.
fn node_type(node: &Node) -> FileType {
    match node.kind {
        NodeKind::File { .. } => FileType::RegularFile,
        NodeKind::Dir { .. } => FileType::Directory,
        NodeKind::Symlink { .. } => FileType::Symlink,
        NodeKind::Fifo => FileType::NamedPipe,
        NodeKind::CharDevice { .. } => FileType::CharDevice,
        NodeKind::BlockDevice { .. } => FileType::BlockDevice,
        NodeKind::Socket => FileType::Socket,
    }
}

/// A snapshot entry's attributes, as the tree recorded them.
fn node_attr(ino: u64, node: &Node) -> FileAttr {
    let (size, rdev) = match &node.kind {
        NodeKind::File { .. } => (node.size, 0),
        NodeKind::Symlink { target } => (target.len() as u64, 0),
        NodeKind::CharDevice { rdev } | NodeKind::BlockDevice { rdev } => (0, *rdev),
        _ => (0, 0),
    };
    let mtime = time(node.mtime, node.mtime_ns);
    FileAttr {
        ino: INodeNo(ino),
        size,
        blocks: size.div_ceil(512),
        atime: mtime,
        mtime,
        ctime: time(node.ctime, node.ctime_ns),
        crtime: mtime,
        kind: node_type(node),
        perm: (node.mode & MODE_BITS) as u16,
        nlink: u32::try_from(node.nlink).unwrap_or(u32::MAX).max(1),
        uid: node.uid,
        gid: node.gid,
        // The kernel's 32-bit encoding, which matches st_rdev's for the usual numbers.
        rdev: u32::try_from(rdev).unwrap_or(0),
        blksize: 4096,
        flags: 0,
    }
}

/// A snapshot's root folder, as an entry: the mount point's owner's, read-only.
fn root_node(snapshot: &Snapshot, (uid, gid): (u32, u32)) -> Node {
    Node {
        name: Vec::new(),
        kind: NodeKind::Dir {
            subtree: snapshot.tree,
        },
        mode: 0o555,
        uid,
        gid,
        user: String::new(),
        group: String::new(),
        mtime: snapshot.time,
        mtime_ns: snapshot.time_ns,
        ctime: snapshot.time,
        ctime_ns: snapshot.time_ns,
        inode: 0,
        dev: 0,
        nlink: 2,
        size: 0,
        xattrs: Vec::new(),
    }
}

/// Unix seconds and nanoseconds as a `SystemTime` (the epoch if out of range).
fn time(secs: i64, ns: u32) -> SystemTime {
    let whole = Duration::from_secs(secs.unsigned_abs());
    let at = if secs >= 0 {
        UNIX_EPOCH.checked_add(whole)
    } else {
        UNIX_EPOCH.checked_sub(whole)
    };
    at.and_then(|t| t.checked_add(Duration::from_nanos(u64::from(ns.min(999_999_999)))))
        .unwrap_or(UNIX_EPOCH)
}

/// Each snapshot's folder name: its local time and short ID,
/// `2026-05-01T10:15:00-1a2b3c4d`; the full ID where two would have the same name.
fn folder_names(snapshots: &[([u8; 16], Snapshot)]) -> Vec<String> {
    let mut seen = HashSet::new();
    snapshots
        .iter()
        .map(|(id, snapshot)| {
            let time = jiff::Timestamp::from_second(snapshot.time).map_or_else(
                |_| snapshot.time.to_string(),
                |t| {
                    t.to_zoned(jiff::tz::TimeZone::system())
                        .strftime("%Y-%m-%dT%H:%M:%S")
                        .to_string()
                },
            );
            let name = format!("{time}-{}", short(id));
            let name = if seen.contains(&name) {
                format!("{time}-{}", hex::encode(id))
            } else {
                name
            };
            seen.insert(name.clone());
            name
        })
        .collect()
}

/// A host name as a folder name: no `/` or NUL, not empty, `.` or `..`.
fn host_folder(host: &str) -> String {
    let name: String = host
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    match name.as_str() {
        "" | "." | ".." => format!("_{name}"),
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::{host_folder, spans, time};
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn reads_map_to_the_pieces_they_cover() {
        // Pieces of 10, 0, 5 and 20 bytes.
        let ends = [10, 10, 15, 35];
        assert_eq!(spans(&ends, 0, 4), vec![(0, 0, 4)]);
        assert_eq!(spans(&ends, 8, 4), vec![(0, 8, 10), (2, 0, 2)]);
        assert_eq!(
            spans(&ends, 5, 100),
            vec![(0, 5, 10), (2, 0, 5), (3, 0, 20)]
        );
        assert_eq!(spans(&ends, 10, 5), vec![(2, 0, 5)]);
        assert_eq!(spans(&ends, 34, 10), vec![(3, 19, 20)]);
        assert!(spans(&ends, 35, 10).is_empty());
        assert!(spans(&ends, u64::MAX, u64::MAX).is_empty());
        assert!(spans(&[], 0, 10).is_empty());
    }

    #[test]
    fn host_names_are_safe_folder_names() {
        assert_eq!(host_folder("laptop"), "laptop");
        assert_eq!(host_folder("a/b"), "a_b");
        assert_eq!(host_folder(""), "_");
        assert_eq!(host_folder(".."), "_..");
    }

    #[test]
    fn times_before_the_epoch_and_far_out_do_not_panic() {
        assert_eq!(time(-1, 0), UNIX_EPOCH - Duration::from_secs(1));
        assert_eq!(time(1, 5), UNIX_EPOCH + Duration::new(1, 5));
        let _ = time(i64::MAX, u32::MAX);
        let _ = time(i64::MIN, 0);
    }
}
