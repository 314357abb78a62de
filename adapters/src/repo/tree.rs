//! Tree blobs: one directory's listing, as FORMAT.md §18 specifies.
//!
//! A snapshot's file system is a tree of these blobs. Each lists the entries of one
//! directory ([`Node`]s); a subdirectory's entry names its own tree blob by ID, so a
//! directory whose contents did not change encodes to the same bytes, gets the same
//! blob ID, and costs nothing to store again, and neither does anything above it that
//! did not change. That only works if one tree has exactly one encoding, so the
//! encoding is canonical and a reader holds writers to it: nodes sorted by name,
//! extended attributes sorted by name, no trailing bytes, no overlong varints.
//!
//! The codec is postcard 1.x over the serde derives below: the field order of each
//! type *is* the wire format, so fields must never be reordered, and a change to any
//! of them is a new tree version. Every limit a reader enforces is a constant here,
//! checked before anything is sized by what the blob claims (the node count is read
//! from the blob's prefix and capped before postcard allocates for it).
//!
//! Hard links are not a kind of node: files of one snapshot with the same `dev` and
//! `inode` and an `nlink` above 1 were one file when backed up, and the restore links
//! them together again.

mod check;
mod error;

use serde::{Deserialize, Serialize};

pub use error::TreeError;

/// The one tree version this Coffer writes and reads.
pub const TREE_VERSION: u8 = 2;
/// The longest tree blob a reader accepts: 64 MiB.
pub const MAX_BLOB_LEN: usize = 64 << 20;
/// The most nodes one tree may list.
pub const MAX_NODES: u64 = 4_194_304;
/// The longest node name, in bytes (Linux's `PATH_MAX`; names are at most 255 bytes on
/// most file systems, but some allow more).
pub const MAX_NAME_LEN: usize = 4096;
/// The longest symbolic-link target, in bytes (Linux's `PATH_MAX`).
pub const MAX_SYMLINK_TARGET_LEN: usize = 4096;
/// The longest extended-attribute name, in bytes (Linux's `XATTR_NAME_MAX`).
pub const MAX_XATTR_NAME_LEN: usize = 255;
/// The largest extended-attribute value, in bytes (Linux's `XATTR_SIZE_MAX`).
pub const MAX_XATTR_VALUE_LEN: usize = 65_536;
/// The mode bits a node records: permissions plus setuid, setgid and sticky.
pub const MODE_BITS: u32 = 0o7777;

/// One directory's listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    /// The tree version: [`TREE_VERSION`].
    pub version: u8,
    /// The directory's entries, sorted by name bytes, names unique.
    pub nodes: Vec<Node>,
}

/// One directory entry and its metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The entry's name, raw bytes (not necessarily UTF-8): not empty, no `/`, no NUL,
    /// not `.` or `..`, at most [`MAX_NAME_LEN`] bytes.
    pub name: Vec<u8>,
    /// What the entry is, with what only that kind has.
    pub kind: NodeKind,
    /// `st_mode & 0o7777`: permission bits, setuid, setgid, sticky.
    pub mode: u32,
    /// Owner's user ID at backup time.
    pub uid: u32,
    /// Owner's group ID at backup time.
    pub gid: u32,
    /// The owner's user name at backup time; empty if unknown. A restore prefers the
    /// ID this name has on the restoring machine.
    pub user: String,
    /// The group's name at backup time; empty if unknown.
    pub group: String,
    /// Modification time, Unix seconds.
    pub mtime: i64,
    /// Nanoseconds past `mtime`, below 1 000 000 000.
    pub mtime_ns: u32,
    /// Status-change time, Unix seconds: change detection only, never restored.
    pub ctime: i64,
    /// Nanoseconds past `ctime`, below 1 000 000 000.
    pub ctime_ns: u32,
    /// Inode number: change detection and hard links.
    pub inode: u64,
    /// Device ID of the file system holding the entry: hard links.
    pub dev: u64,
    /// Number of hard links.
    pub nlink: u64,
    /// A file's length in bytes, holes included; 0 for every other kind.
    pub size: u64,
    /// Extended attributes, sorted by name, names unique.
    pub xattrs: Vec<Xattr>,
}

/// One extended attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    /// Its name with the namespace prefix (`user.`, `security.`, ...): not empty, no
    /// NUL, at most [`MAX_XATTR_NAME_LEN`] bytes.
    pub name: Vec<u8>,
    /// Its value, at most [`MAX_XATTR_VALUE_LEN`] bytes.
    pub value: Vec<u8>,
}

/// What a node is. The variant order is the wire format: variant `i` is encoded as `i`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    /// 0: a regular file, as the pieces of its content in order.
    File {
        /// Chunks and holes; their lengths add up to the node's `size`.
        content: Vec<ContentRef>,
    },
    /// 1: a directory.
    Dir {
        /// The blob ID of the directory's own tree.
        subtree: [u8; 32],
    },
    /// 2: a symbolic link.
    Symlink {
        /// Where it points, raw bytes: not empty, no NUL, at most
        /// [`MAX_SYMLINK_TARGET_LEN`] bytes. Never followed by Coffer.
        target: Vec<u8>,
    },
    /// 3: a named pipe.
    Fifo,
    /// 4: a character device.
    CharDevice {
        /// Its device number (`st_rdev`).
        rdev: u64,
    },
    /// 5: a block device.
    BlockDevice {
        /// Its device number (`st_rdev`).
        rdev: u64,
    },
    /// 6: a Unix socket: recorded so the listing is complete; a restore skips it with
    /// a warning, as a socket means nothing without the program listening on it.
    Socket,
}

/// One piece of a file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContentRef {
    /// 0: a chunk, by chunk ID (FORMAT.md §14).
    Data {
        /// The chunk's ID.
        id: [u8; 32],
        /// The chunk's plaintext length.
        len: u32,
    },
    /// 1: a run of zero bytes that the file system stores as a hole; a restore leaves it
    /// unwritten, so it stays a hole where the file system supports them.
    Hole {
        /// The run's length.
        len: u64,
    },
}

impl ContentRef {
    /// The number of file bytes this piece covers.
    pub fn len(&self) -> u64 {
        match *self {
            ContentRef::Data { len, .. } => u64::from(len),
            ContentRef::Hole { len } => len,
        }
    }

    /// Whether the piece covers no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Tree {
    /// The tree's blob: its postcard encoding.
    ///
    /// Writes the tree as given. A writer must list nodes and extended attributes sorted
    /// and within the limits, or readers refuse the blob: [`Tree::check`] says whether
    /// they will.
    pub fn encode(&self) -> Vec<u8> {
        // postcard fails only on a full fixed-size buffer, a sequence of unknown length,
        // or a custom error raised by a `Serialize` impl: a `Vec` never fills, and every
        // type here is derived, with lengths known.
        postcard::to_allocvec(self).expect("encoding a tree into a Vec cannot fail")
    }

    /// Decodes and checks a tree blob.
    ///
    /// # Errors
    /// A [`TreeError`] for anything FORMAT.md §18 does not allow: a blob over
    /// [`MAX_BLOB_LEN`], a version other than [`TREE_VERSION`], over [`MAX_NODES`]
    /// nodes, bytes that do not decode or are left over, a non-canonical encoding,
    /// and every rule of [`Tree::check`].
    pub fn decode(blob: &[u8]) -> Result<Tree, TreeError> {
        if blob.len() > MAX_BLOB_LEN {
            return Err(TreeError::BlobTooLarge {
                len: blob.len(),
                max: MAX_BLOB_LEN,
            });
        }
        if let Some(&found) = blob.first() {
            if found != TREE_VERSION {
                return Err(TreeError::UnsupportedVersion {
                    found,
                    expected: TREE_VERSION,
                });
            }
        }
        // The node count is the varint after the version byte: cap it before postcard
        // sizes anything by it.
        if let Some(count) = blob.get(1..).and_then(leading_varint) {
            if count > MAX_NODES {
                return Err(TreeError::TooManyNodes {
                    count,
                    max: MAX_NODES,
                });
            }
        }
        let (tree, rest) = postcard::take_from_bytes::<Tree>(blob)
            .map_err(|source| TreeError::Malformed { source })?;
        if !rest.is_empty() {
            return Err(TreeError::TrailingBytes { count: rest.len() });
        }
        tree.check()?;
        // postcard accepts overlong varints; only the shortest encoding is the tree's.
        if tree.encode() != blob {
            return Err(TreeError::NotCanonical);
        }
        Ok(tree)
    }

    /// Checks every rule of FORMAT.md §18 that is not about bytes: the version, the
    /// node count, names sorted and unique and well formed, extended attributes sorted
    /// and unique and within their limits, nanoseconds, modes, sizes, and file content
    /// that adds up to the file's size.
    ///
    /// # Errors
    /// The first rule broken, as a [`TreeError`] naming the node by its index.
    pub fn check(&self) -> Result<(), TreeError> {
        check::tree(self)
    }
}

/// Checks one node on its own, as [`Tree::check`] does, except that a file's content
/// is not compared with its size: a scan fills content in later. `index` is only for
/// the error.
pub(crate) fn check_scanned(index: usize, node: &Node) -> Result<(), TreeError> {
    check::node(index, node, false)
}

/// The LEB128 varint at the start of `bytes`, if there is a whole one that fits a u64.
fn leading_varint(bytes: &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, &byte) in bytes.iter().take(10).enumerate() {
        let bits = u64::from(byte & 0x7f);
        let shift = 7 * u32::try_from(i).ok()?;
        value |= bits.checked_shl(shift).filter(|v| v >> shift == bits)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests;
