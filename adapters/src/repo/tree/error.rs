//! Why a tree blob was refused.

/// A tree blob, or a tree about to be encoded, breaks a rule of FORMAT.md §18.
///
/// Every variant is about the data, never about the caller: a blob from a damaged or
/// hostile repository, or a scanned entry that no tree can record. Node-level variants
/// name the node by its index in the tree's `nodes`; limits carry their numbers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TreeError {
    /// The blob is longer than any tree may be.
    #[error("tree blob is {len} bytes, over the limit of {max}")]
    BlobTooLarge {
        /// The blob's length.
        len: usize,
        /// The limit, [`MAX_BLOB_LEN`](super::MAX_BLOB_LEN).
        max: usize,
    },
    /// The tree's version is not the one this Coffer reads.
    #[error("tree version {found}: this Coffer reads version {expected}")]
    UnsupportedVersion {
        /// The version found.
        found: u8,
        /// The version this Coffer reads, [`TREE_VERSION`](super::TREE_VERSION).
        expected: u8,
    },
    /// The tree lists more nodes than any tree may.
    #[error("tree lists {count} nodes, over the limit of {max}")]
    TooManyNodes {
        /// The count the blob claims.
        count: u64,
        /// The limit, [`MAX_NODES`](super::MAX_NODES).
        max: u64,
    },
    /// The bytes are not a postcard-encoded tree: cut short, an unknown variant, a string
    /// that is not UTF-8, a varint too long for its type, ...
    #[error("tree blob does not decode: {source}")]
    Malformed {
        /// postcard's report.
        source: postcard::Error,
    },
    /// A whole tree decoded and bytes were left after it.
    #[error("tree blob has {count} bytes after the tree")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// The blob decodes, but is not the tree's one encoding (an overlong varint), so the
    /// same tree would get two blob IDs.
    #[error("tree blob is not the canonical encoding of its tree")]
    NotCanonical,
    /// A node's name is not a file name.
    #[error("node {node}: invalid name: {reason}")]
    InvalidName {
        /// The node's index.
        node: usize,
        /// What is wrong: empty, a `/`, a NUL byte, `.` or `..`.
        reason: &'static str,
    },
    /// A node's name does not sort after the one before it.
    #[error("node {node}: names are not sorted by their bytes")]
    NamesUnsorted {
        /// The index of the node out of order.
        node: usize,
    },
    /// A node has the same name as the one before it.
    #[error("node {node}: the same name as the node before it")]
    DuplicateName {
        /// The index of the second node with the name.
        node: usize,
    },
    /// A byte string of a node is over its limit.
    #[error("node {node}: {field} is {len} bytes, over the limit of {max}")]
    TooLong {
        /// The node's index.
        node: usize,
        /// Which: "name", "symbolic link target", "extended attribute name" or
        /// "extended attribute value".
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A nanoseconds field is a second or more.
    #[error("node {node}: {field} nanoseconds {value} are not below 1000000000")]
    NanosOutOfRange {
        /// The node's index.
        node: usize,
        /// "mtime" or "ctime".
        field: &'static str,
        /// The value found.
        value: u32,
    },
    /// A mode has bits beyond permissions, setuid, setgid and sticky.
    #[error("node {node}: mode {mode:#o} has bits outside 0o7777")]
    ModeOutOfRange {
        /// The node's index.
        node: usize,
        /// The mode found.
        mode: u32,
    },
    /// A file's pieces do not add up to its size.
    #[error("node {node}: content adds up to {content} bytes, but the file's size is {size}")]
    ContentMismatch {
        /// The node's index.
        node: usize,
        /// The sum of the pieces' lengths.
        content: u128,
        /// The node's size.
        size: u64,
    },
    /// A file has a piece of length zero (no writer makes one; FORMAT.md §18.3).
    #[error("node {node}: a piece of length zero")]
    EmptyPiece {
        /// The node's index.
        node: usize,
    },
    /// A node other than a file has a size.
    #[error("node {node}: size {size}, but only files have a size")]
    SizeNotZero {
        /// The node's index.
        node: usize,
        /// The size found.
        size: u64,
    },
    /// A symbolic link's target cannot be a link target.
    #[error("node {node}: invalid symbolic link target: {reason}")]
    InvalidSymlinkTarget {
        /// The node's index.
        node: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// An extended attribute's name cannot be an attribute name.
    #[error("node {node}: invalid extended attribute name: {reason}")]
    InvalidXattrName {
        /// The node's index.
        node: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// A node's extended attributes are not sorted by name.
    #[error("node {node}: extended attributes are not sorted by name")]
    XattrsUnsorted {
        /// The node's index.
        node: usize,
    },
    /// A node has two extended attributes of the same name.
    #[error("node {node}: two extended attributes have the same name")]
    DuplicateXattr {
        /// The node's index.
        node: usize,
    },
}
