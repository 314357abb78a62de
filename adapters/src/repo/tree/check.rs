//! The rules of FORMAT.md §18 that a decoded tree must also satisfy.

use super::{
    Node, NodeKind, Tree, TreeError, MAX_NAME_LEN, MAX_NODES, MAX_SYMLINK_TARGET_LEN,
    MAX_XATTR_NAME_LEN, MAX_XATTR_VALUE_LEN, MODE_BITS, TREE_VERSION,
};

const NANOS_PER_SECOND: u32 = 1_000_000_000;

/// Every rule, node by node, then the order of names.
pub(super) fn tree(tree: &Tree) -> Result<(), TreeError> {
    if tree.version != TREE_VERSION {
        return Err(TreeError::UnsupportedVersion {
            found: tree.version,
            expected: TREE_VERSION,
        });
    }
    let count = u64::try_from(tree.nodes.len()).unwrap_or(u64::MAX);
    if count > MAX_NODES {
        return Err(TreeError::TooManyNodes {
            count,
            max: MAX_NODES,
        });
    }
    for (index, node) in tree.nodes.iter().enumerate() {
        self::node(index, node, true)?;
    }
    for (index, pair) in tree.nodes.windows(2).enumerate() {
        if let [a, b] = pair {
            in_order(&a.name, &b.name).map_err(|duplicate| names_error(duplicate, index + 1))?;
        }
    }
    Ok(())
}

/// The rules about one node. With `content`, a file's pieces must add up to its size.
pub(super) fn node(index: usize, node: &Node, content: bool) -> Result<(), TreeError> {
    name(index, &node.name)?;
    if node.mode & !MODE_BITS != 0 {
        return Err(TreeError::ModeOutOfRange {
            node: index,
            mode: node.mode,
        });
    }
    nanos(index, "mtime", node.mtime_ns)?;
    nanos(index, "ctime", node.ctime_ns)?;
    match &node.kind {
        NodeKind::File { content: pieces } => {
            if content && pieces.iter().any(super::ContentRef::is_empty) {
                return Err(TreeError::EmptyPiece { node: index });
            }
            // At most a few million pieces of at most 2^64 bytes each: no u128 overflow.
            let total = pieces
                .iter()
                .fold(0u128, |sum, p| sum.saturating_add(u128::from(p.len())));
            if content && total != u128::from(node.size) {
                return Err(TreeError::ContentMismatch {
                    node: index,
                    content: total,
                    size: node.size,
                });
            }
        }
        NodeKind::Symlink { target } => {
            if target.len() > MAX_SYMLINK_TARGET_LEN {
                return Err(too_long(
                    index,
                    "symbolic link target",
                    target.len(),
                    MAX_SYMLINK_TARGET_LEN,
                ));
            }
            if target.is_empty() || target.contains(&0) {
                return Err(TreeError::InvalidSymlinkTarget {
                    node: index,
                    reason: "empty, or containing a NUL byte",
                });
            }
        }
        _ => {}
    }
    if !matches!(node.kind, NodeKind::File { .. }) && node.size != 0 {
        return Err(TreeError::SizeNotZero {
            node: index,
            size: node.size,
        });
    }
    for xattr in &node.xattrs {
        if xattr.name.len() > MAX_XATTR_NAME_LEN {
            let len = xattr.name.len();
            return Err(too_long(
                index,
                "extended attribute name",
                len,
                MAX_XATTR_NAME_LEN,
            ));
        }
        if xattr.name.is_empty() || xattr.name.contains(&0) {
            return Err(TreeError::InvalidXattrName {
                node: index,
                reason: "empty, or containing a NUL byte",
            });
        }
        if xattr.value.len() > MAX_XATTR_VALUE_LEN {
            let len = xattr.value.len();
            return Err(too_long(
                index,
                "extended attribute value",
                len,
                MAX_XATTR_VALUE_LEN,
            ));
        }
    }
    for pair in node.xattrs.windows(2) {
        if let [a, b] = pair {
            in_order(&a.name, &b.name).map_err(|duplicate| {
                if duplicate {
                    TreeError::DuplicateXattr { node: index }
                } else {
                    TreeError::XattrsUnsorted { node: index }
                }
            })?;
        }
    }
    Ok(())
}

fn name(index: usize, name: &[u8]) -> Result<(), TreeError> {
    if name.len() > MAX_NAME_LEN {
        return Err(too_long(index, "name", name.len(), MAX_NAME_LEN));
    }
    let reason = if name.is_empty() {
        "empty"
    } else if name.contains(&b'/') {
        "contains '/'"
    } else if name.contains(&0) {
        "contains a NUL byte"
    } else if name == b"." || name == b".." {
        "is '.' or '..'"
    } else {
        return Ok(());
    };
    Err(TreeError::InvalidName {
        node: index,
        reason,
    })
}

fn nanos(index: usize, field: &'static str, value: u32) -> Result<(), TreeError> {
    if value >= NANOS_PER_SECOND {
        return Err(TreeError::NanosOutOfRange {
            node: index,
            field,
            value,
        });
    }
    Ok(())
}

/// `Ok` when `a < b` bytewise; else `Err(true)` for equal, `Err(false)` for out of order.
fn in_order(a: &[u8], b: &[u8]) -> Result<(), bool> {
    match a.cmp(b) {
        core::cmp::Ordering::Less => Ok(()),
        core::cmp::Ordering::Equal => Err(true),
        core::cmp::Ordering::Greater => Err(false),
    }
}

fn names_error(duplicate: bool, index: usize) -> TreeError {
    if duplicate {
        TreeError::DuplicateName { node: index }
    } else {
        TreeError::NamesUnsorted { node: index }
    }
}

fn too_long(index: usize, field: &'static str, len: usize, max: usize) -> TreeError {
    TreeError::TooLong {
        node: index,
        field,
        len,
        max,
    }
}
