//! File-system metadata for trees (FORMAT.md §18): reading a directory's entries into
//! [`Node`]s when backing up, and putting entries and their metadata back when
//! restoring. Linux first; it builds on the other unixes, where what they lack (device
//! nodes and FIFOs through `mknodat` on macOS, extended attributes on some) is skipped
//! or reported rather than a build failure.
//!
//! - Scanning ([`scan_dir`]) never follows a symbolic link: every entry is described by
//!   `lstat`, extended attributes are read with the `l*xattr` calls, and a link is
//!   recorded with its target. User and group names come from [`Owners`], which caches
//!   lookups for one run.
//! - Restoring ([`create_special`], [`apply_metadata`], [`SparseWriter`]) works in a
//!   target directory that the caller created and owns, on paths relative to it, and
//!   never follows a symbolic link below it: see `walk` for how.
//! - [`same_file`] decides whether a file may keep the content recorded for it in the
//!   previous snapshot.

mod owners;
mod restore;
mod sparse;
mod walk;

use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::tree::{self, Node, NodeKind, Xattr};
use crate::Error;

pub use owners::Owners;
pub use restore::{apply_metadata, create_special, running_as_root, Applied, Created};
pub use sparse::SparseWriter;
pub use walk::check_relative;

/// One entry of a scanned directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanned {
    /// The entry's full path: the scanned directory joined with the node's name.
    pub path: PathBuf,
    /// The entry as a tree records it, with placeholders where the caller fills in:
    /// a file's content is empty (`File { content: vec![] }`) and a directory's subtree
    /// is all zeros (`Dir { subtree: [0; 32] }`).
    pub node: Node,
}

/// The entries of directory `dir` (not recursive), sorted by name bytes as a tree lists
/// them, each described without following symbolic links.
///
/// User and group names are looked up through `owners`. Extended attributes are read;
/// a file system without them gives none, not an error. An entry that disappears
/// between the listing and its `lstat` is left out, as if listed a moment later.
///
/// # Errors
/// [`Error::Io`] naming the directory or the entry that could not be read;
/// [`Error::Tree`] naming an entry that no tree can record (a name, link target or
/// extended attribute over FORMAT.md §18's limits).
pub fn scan_dir(dir: &Path, owners: &mut Owners) -> Result<Vec<Scanned>, Error> {
    let listing = fs::read_dir(dir).map_err(|e| at("listing", dir, e))?;
    let mut entries = Vec::new();
    for entry in listing {
        let entry = entry.map_err(|e| at("listing", dir, e))?;
        let path = entry.path();
        match scan_entry(&path, entry.file_name().as_bytes(), owners) {
            Ok(node) => entries.push(Scanned { path, node }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(at("reading", &path, e)),
        }
    }
    entries.sort_by(|a, b| a.node.name.cmp(&b.node.name));
    for (index, entry) in entries.iter().enumerate() {
        tree::check_scanned(index, &entry.node).map_err(|source| Error::Tree {
            path: Some(entry.path.clone()),
            source,
        })?;
    }
    Ok(entries)
}

/// Whether `now` (just scanned) is the same file as `parent` (recorded in the previous
/// snapshot), so its recorded content can be reused without reading it: the same kind,
/// size, modification and status-change times to the nanosecond, and inode.
///
/// The device ID is not compared: it is not stable across reboots on some file systems
/// (btrfs subvolumes, NFS, some FUSE file systems number their devices as they mount),
/// and comparing it would make every file look changed after a reboot. The inode and
/// ctime still catch a file replaced by another, or rewritten with its mtime set back:
/// unlike the mtime, the ctime cannot be set by a program, and every such change
/// moves it.
pub fn same_file(parent: &Node, now: &Node) -> bool {
    core::mem::discriminant(&parent.kind) == core::mem::discriminant(&now.kind)
        && parent.size == now.size
        && parent.mtime == now.mtime
        && parent.mtime_ns == now.mtime_ns
        && parent.ctime == now.ctime
        && parent.ctime_ns == now.ctime_ns
        && parent.inode == now.inode
}

/// One entry, from its `lstat`.
fn scan_entry(path: &Path, name: &[u8], owners: &mut Owners) -> io::Result<Node> {
    let meta = fs::symlink_metadata(path)?;
    let kind = kind(path, &meta)?;
    let size = if meta.file_type().is_file() {
        meta.size()
    } else {
        0
    };
    Ok(Node {
        name: name.to_vec(),
        kind,
        mode: meta.mode() & tree::MODE_BITS,
        uid: meta.uid(),
        gid: meta.gid(),
        user: owners.user_name(meta.uid()),
        group: owners.group_name(meta.gid()),
        mtime: meta.mtime(),
        mtime_ns: nanos(meta.mtime_nsec())?,
        ctime: meta.ctime(),
        ctime_ns: nanos(meta.ctime_nsec())?,
        inode: meta.ino(),
        dev: meta.dev(),
        nlink: meta.nlink(),
        size,
        xattrs: read_xattrs(path)?,
    })
}

fn kind(path: &Path, meta: &Metadata) -> io::Result<NodeKind> {
    let t = meta.file_type();
    Ok(if t.is_file() {
        NodeKind::File {
            content: Vec::new(),
        }
    } else if t.is_dir() {
        NodeKind::Dir { subtree: [0; 32] }
    } else if t.is_symlink() {
        NodeKind::Symlink {
            target: fs::read_link(path)?.into_os_string().into_vec(),
        }
    } else if t.is_fifo() {
        NodeKind::Fifo
    } else if t.is_char_device() {
        NodeKind::CharDevice { rdev: meta.rdev() }
    } else if t.is_block_device() {
        NodeKind::BlockDevice { rdev: meta.rdev() }
    } else if t.is_socket() {
        NodeKind::Socket
    } else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a kind of file that trees cannot record",
        ));
    })
}

/// The kernel keeps nanoseconds in 0..1e9; anything else is refused, not wrapped.
fn nanos(ns: i64) -> io::Result<u32> {
    u32::try_from(ns)
        .ok()
        .filter(|&ns| ns < 1_000_000_000)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "nanoseconds out of range"))
}

/// The entry's extended attributes, sorted by name, without following a symbolic
/// link. None at all where the file system or platform does not support them.
fn read_xattrs(path: &Path) -> io::Result<Vec<Xattr>> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if unsupported(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut xattrs = Vec::new();
    for name in names {
        // Removed between the listing and now: as if listed a moment later.
        if let Some(value) = xattr::get(path, &name)? {
            xattrs.push(Xattr {
                name: name.into_vec(),
                value,
            });
        }
    }
    xattrs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(xattrs)
}

/// Whether an error says "this file system (or platform) has no extended attributes".
fn unsupported(e: &io::Error) -> bool {
    use rustix::io::Errno;
    e.kind() == io::ErrorKind::Unsupported
        || [Errno::NOTSUP, Errno::OPNOTSUPP]
            .iter()
            .any(|errno| e.raw_os_error() == Some(errno.raw_os_error()))
}

fn at(what: &str, path: &Path, e: io::Error) -> Error {
    Error::io(format!("{what} {}", path.display()), e)
}
