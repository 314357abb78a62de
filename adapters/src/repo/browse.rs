//! Looking inside snapshots without restoring them: the node at a path, a folder's
//! entries, a walk of everything under a folder, and the differences between two
//! snapshots. Trees are read and verified blob by blob (a full key only).

use super::index::MemIndex;
use super::snapshot::Snapshot;
use super::tree::{Node, NodeKind, Tree};
use super::trees::{decode_tree, BlobReader};
use super::Repository;
use crate::Error;

/// Reads trees and blobs of one repository through one loaded index.
pub struct Browser<'r> {
    index: MemIndex,
    blobs: BlobReader<'r>,
}

impl std::fmt::Debug for Browser<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser").finish_non_exhaustive()
    }
}

impl<'r> Browser<'r> {
    /// A browser of `repo`, its index loaded.
    ///
    /// # Errors
    /// Storage, core and format errors loading the index.
    pub fn new(repo: &'r Repository) -> Result<Self, Error> {
        Ok(Browser {
            index: repo.load_index()?,
            blobs: BlobReader::new(repo),
        })
    }

    /// Tree `id`, verified.
    ///
    /// # Errors
    /// [`Error::WriteOnlyKey`]; storage, core and format errors.
    pub fn tree(&mut self, id: &[u8; 32]) -> Result<Tree, Error> {
        decode_tree(&self.blobs.read(&self.index, id)?)
    }

    /// Blob `id` (a chunk of file data), verified.
    ///
    /// # Errors
    /// As [`Browser::tree`].
    pub fn blob(&mut self, id: &[u8; 32]) -> Result<Vec<u8>, Error> {
        self.blobs.read(&self.index, id)
    }

    /// The node at `path` (absolute, `/`-separated, as listings show it) in
    /// `snapshot`; the root folder for `/`.
    ///
    /// # Errors
    /// [`Error::NotInSnapshot`]; as [`Browser::tree`].
    pub fn node(&mut self, snapshot: &Snapshot, path: &str) -> Result<Node, Error> {
        let missing = || Error::NotInSnapshot {
            path: path.to_owned(),
        };
        let mut node = root_node(snapshot);
        for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
            let NodeKind::Dir { subtree } = node.kind else {
                return Err(missing());
            };
            node = self
                .tree(&subtree)?
                .nodes
                .into_iter()
                .find(|n| n.name == part.as_bytes())
                .ok_or_else(missing)?;
        }
        Ok(node)
    }

    /// The entries of the folder at `path` in `snapshot`, with their paths.
    ///
    /// # Errors
    /// [`Error::NotInSnapshot`] for a path that is not there or not a folder; as
    /// [`Browser::tree`].
    pub fn list(&mut self, snapshot: &Snapshot, path: &str) -> Result<Vec<(String, Node)>, Error> {
        let NodeKind::Dir { subtree } = self.node(snapshot, path)?.kind else {
            return Err(Error::NotInSnapshot {
                path: format!("{path} (not a folder)"),
            });
        };
        Ok(self
            .tree(&subtree)?
            .nodes
            .into_iter()
            .map(|n| (join(path, &n.name), n))
            .collect())
    }

    /// Calls `each(path, node)` for every node under the folder `subtree` at `dir`
    /// (depth first, in name order).
    ///
    /// # Errors
    /// What `each` returns; as [`Browser::tree`].
    pub fn walk<E: From<Error>>(
        &mut self,
        dir: &str,
        subtree: &[u8; 32],
        each: &mut dyn FnMut(&str, &Node) -> Result<(), E>,
    ) -> Result<(), E> {
        for node in self.tree(subtree)?.nodes {
            let path = join(dir, &node.name);
            each(&path, &node)?;
            if let NodeKind::Dir { subtree } = &node.kind {
                self.walk(&path, subtree, each)?;
            }
        }
        Ok(())
    }

    /// How snapshot `b` differs from snapshot `a`, path by path in name order.
    ///
    /// # Errors
    /// As [`Browser::tree`].
    pub fn diff(&mut self, a: &Snapshot, b: &Snapshot) -> Result<Vec<(Change, String)>, Error> {
        let mut changes = Vec::new();
        self.diff_trees("", Some(&a.tree), Some(&b.tree), &mut changes)?;
        Ok(changes)
    }

    /// Adds the changes between two folders' trees (either may be absent) under `dir`.
    fn diff_trees(
        &mut self,
        dir: &str,
        a: Option<&[u8; 32]>,
        b: Option<&[u8; 32]>,
        changes: &mut Vec<(Change, String)>,
    ) -> Result<(), Error> {
        if a.is_some() && a == b {
            return Ok(()); // The same tree: nothing under it changed.
        }
        let a_nodes = match a {
            Some(id) => self.tree(id)?.nodes,
            None => Vec::new(),
        };
        let b_nodes = match b {
            Some(id) => self.tree(id)?.nodes,
            None => Vec::new(),
        };
        let (mut i, mut j) = (0, 0);
        // Both lists are sorted by name (FORMAT.md §18): merge them.
        while i < a_nodes.len() || j < b_nodes.len() {
            let order = match (a_nodes.get(i), b_nodes.get(j)) {
                (Some(x), Some(y)) => x.name.cmp(&y.name),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            let (x, y) = match order {
                std::cmp::Ordering::Less => (a_nodes.get(i), None),
                std::cmp::Ordering::Greater => (None, b_nodes.get(j)),
                std::cmp::Ordering::Equal => (a_nodes.get(i), b_nodes.get(j)),
            };
            let name = x.or(y).map(|n| n.name.clone()).unwrap_or_default();
            let path = join(dir, &name);
            let sub = |n: Option<&Node>| match n.map(|n| &n.kind) {
                Some(NodeKind::Dir { subtree }) => Some(*subtree),
                _ => None,
            };
            match (x, y) {
                (Some(_), None) => changes.push((Change::Removed, path.clone())),
                (None, Some(_)) => changes.push((Change::Added, path.clone())),
                (Some(x), Some(y)) => {
                    if let Some(c) = compare(x, y) {
                        changes.push((c, path.clone()));
                    }
                }
                (None, None) => {}
            }
            let (sa, sb) = (sub(x), sub(y));
            if sa.is_some() || sb.is_some() {
                self.diff_trees(&path, sa.as_ref(), sb.as_ref(), changes)?;
            }
            if order != std::cmp::Ordering::Greater {
                i += 1;
            }
            if order != std::cmp::Ordering::Less {
                j += 1;
            }
        }
        Ok(())
    }
}

/// The root folder of a snapshot as a node.
pub fn root_node(snapshot: &Snapshot) -> Node {
    Node {
        name: Vec::new(),
        kind: NodeKind::Dir {
            subtree: snapshot.tree,
        },
        mode: 0o40755,
        uid: 0,
        gid: 0,
        user: String::new(),
        group: String::new(),
        mtime: snapshot.time,
        mtime_ns: 0,
        ctime: snapshot.time,
        ctime_ns: 0,
        inode: 0,
        dev: 0,
        nlink: 1,
        size: 0,
        xattrs: Vec::new(),
    }
}

/// `name` under the folder `dir`, as listings show paths (names lossily decoded).
pub fn join(dir: &str, name: &[u8]) -> String {
    format!(
        "{}/{}",
        dir.trim_end_matches('/'),
        String::from_utf8_lossy(name)
    )
}

/// How one path differs between two snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// Only in the second.
    Added,
    /// Only in the first.
    Removed,
    /// Content (or link target, device) changed.
    Modified,
    /// Only metadata: mode, owner, times, extended attributes.
    Metadata,
    /// Now another kind of entry.
    Kind,
}

impl Change {
    /// restic's one-letter modifier.
    pub fn symbol(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Modified => 'M',
            Change::Metadata => 'U',
            Change::Kind => 'T',
        }
    }

    /// The change's name in JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Modified => "modified",
            Change::Metadata => "metadata",
            Change::Kind => "type",
        }
    }
}

/// Compares two nodes of one path (same name).
pub fn compare(a: &Node, b: &Node) -> Option<Change> {
    let same_kind = std::mem::discriminant(&a.kind) == std::mem::discriminant(&b.kind);
    if !same_kind {
        return Some(Change::Kind);
    }
    let content_differs = match (&a.kind, &b.kind) {
        (NodeKind::File { content: x }, NodeKind::File { content: y }) => x != y,
        (NodeKind::Dir { .. }, NodeKind::Dir { .. }) => false,
        (x, y) => x != y,
    };
    if content_differs {
        return Some(Change::Modified);
    }
    let meta = (a.mode, a.uid, a.gid, a.mtime, a.mtime_ns, &a.xattrs)
        != (b.mode, b.uid, b.gid, b.mtime, b.mtime_ns, &b.xattrs);
    meta.then_some(Change::Metadata)
}
