//! Looking inside snapshots without restoring them: `ls`, `dump`, `find` and `diff`.
//! Trees are read and verified blob by blob; file content is written only chunk by
//! verified chunk.

use std::io::Write;

use coffer_adapters::repo::index::MemIndex;
use coffer_adapters::repo::snapshot::Snapshot;
use coffer_adapters::repo::tree::{ContentRef, Node, NodeKind, Tree};
use coffer_adapters::repo::trees::{decode_tree, BlobReader};
use coffer_adapters::repo::Repository;
use globset::{GlobBuilder, GlobMatcher};
use serde_json::json;

use super::args::{DiffCmd, DumpCmd, FindCmd, LsCmd};
use super::{local_time, open, select, short, shown};
use crate::exit::{CliError, Result};

/// Reads trees and blobs of one repository through one loaded index.
pub(crate) struct Browser<'r> {
    index: MemIndex,
    blobs: BlobReader<'r>,
}

impl<'r> Browser<'r> {
    pub(crate) fn new(repo: &'r Repository) -> Result<Self> {
        Ok(Browser {
            index: repo.load_index()?,
            blobs: BlobReader::new(repo),
        })
    }

    /// Tree `id`, verified.
    pub(crate) fn tree(&mut self, id: &[u8; 32]) -> Result<Tree> {
        Ok(decode_tree(&self.blobs.read(&self.index, id)?)?)
    }

    /// The node at `path` (absolute, as `ls` shows it) in `snapshot`; the root folder
    /// for `/`.
    pub(crate) fn node(&mut self, snapshot: &Snapshot, path: &str) -> Result<Node> {
        let mut node = root_node(snapshot);
        for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
            let NodeKind::Dir { subtree } = node.kind else {
                return Err(CliError::NotFound(format!("{path}: not in the snapshot")));
            };
            let tree = self.tree(&subtree)?;
            node = tree
                .nodes
                .into_iter()
                .find(|n| n.name == part.as_bytes())
                .ok_or_else(|| CliError::NotFound(format!("{path}: not in the snapshot")))?;
        }
        Ok(node)
    }

    /// Writes a file node's content: each chunk after it verified, holes as zeros.
    /// Returns the bytes written.
    pub(crate) fn write_content(&mut self, node: &Node, out: &mut dyn Write) -> Result<u64> {
        let NodeKind::File { content } = &node.kind else {
            return Err(CliError::Usage(format!(
                "{}: not a regular file",
                shown(&node.name)
            )));
        };
        let mut written = 0u64;
        let zeros = vec![0u8; 1 << 16];
        for piece in content {
            match piece {
                ContentRef::Data { id, .. } => {
                    let data = self.blobs.read(&self.index, id)?;
                    out.write_all(&data)
                        .map_err(|e| CliError::io("writing the file's content", e))?;
                    written += data.len() as u64;
                }
                ContentRef::Hole { len } => {
                    let mut left = *len;
                    while left > 0 {
                        let n = left.min(zeros.len() as u64) as usize;
                        out.write_all(&zeros[..n])
                            .map_err(|e| CliError::io("writing the file's content", e))?;
                        left -= n as u64;
                    }
                    written += len;
                }
            }
        }
        out.flush()
            .map_err(|e| CliError::io("writing the file's content", e))?;
        Ok(written)
    }

    /// Calls `each(path, node)` for every node under `dir` (depth first, sorted).
    fn walk(
        &mut self,
        dir: &str,
        subtree: &[u8; 32],
        each: &mut dyn FnMut(&str, &Node) -> Result<()>,
    ) -> Result<()> {
        for node in self.tree(subtree)?.nodes {
            let path = join(dir, &node.name);
            each(&path, &node)?;
            if let NodeKind::Dir { subtree } = &node.kind {
                self.walk(&path, subtree, each)?;
            }
        }
        Ok(())
    }
}

/// The root folder of a snapshot as a node.
fn root_node(snapshot: &Snapshot) -> Node {
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

fn join(dir: &str, name: &[u8]) -> String {
    format!("{}/{}", dir.trim_end_matches('/'), shown(name))
}

/// The node at `path` of `snapshot`.
pub(crate) fn find_node(repo: &Repository, snapshot: &Snapshot, path: &str) -> Result<Node> {
    Browser::new(repo)?.node(snapshot, path)
}

/// Writes a file node's content into `out`; returns its length.
pub(crate) fn write_content(repo: &Repository, node: &Node, out: &mut dyn Write) -> Result<u64> {
    Browser::new(repo)?.write_content(node, out)
}

/// `ls -l`'s type letter and permission bits.
fn mode_string(node: &Node) -> String {
    let kind = match node.kind {
        NodeKind::File { .. } => '-',
        NodeKind::Dir { .. } => 'd',
        NodeKind::Symlink { .. } => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::CharDevice { .. } => 'c',
        NodeKind::BlockDevice { .. } => 'b',
        NodeKind::Socket => 's',
    };
    let mut s = String::from(kind);
    for shift in [6, 3, 0] {
        let bits = (node.mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn kind_name(node: &Node) -> &'static str {
    match node.kind {
        NodeKind::File { .. } => "file",
        NodeKind::Dir { .. } => "dir",
        NodeKind::Symlink { .. } => "symlink",
        NodeKind::Fifo => "fifo",
        NodeKind::CharDevice { .. } => "chardev",
        NodeKind::BlockDevice { .. } => "blockdev",
        NodeKind::Socket => "socket",
    }
}

fn node_json(path: &str, node: &Node) -> serde_json::Value {
    let mut v = json!({
        "message_type": "node",
        "path": path,
        "type": kind_name(node),
        "mode": node.mode & 0o7777,
        "uid": node.uid,
        "gid": node.gid,
        "user": node.user,
        "group": node.group,
        "size": node.size,
        "mtime": super::rfc3339(node.mtime, node.mtime_ns),
    });
    if let NodeKind::Symlink { target } = &node.kind {
        v["link_target"] = shown(target).into();
    }
    v
}

fn print_node(out: &mut impl Write, path: &str, node: &Node, long: bool, json: bool) -> Result<()> {
    let line = if json {
        node_json(path, node).to_string()
    } else if long {
        let link = match &node.kind {
            NodeKind::Symlink { target } => format!(" -> {}", shown(target)),
            _ => String::new(),
        };
        format!(
            "{} {:>8} {:>8} {:>12} {} {path}{link}",
            mode_string(node),
            if node.user.is_empty() {
                node.uid.to_string()
            } else {
                node.user.clone()
            },
            if node.group.is_empty() {
                node.gid.to_string()
            } else {
                node.group.clone()
            },
            node.size,
            local_time(node.mtime),
        )
    } else {
        path.to_owned()
    };
    writeln!(out, "{line}").map_err(|e| CliError::io("writing to stdout", e))
}

/// `coffer ls`.
pub(crate) fn ls(cmd: &LsCmd, json: bool) -> Result<()> {
    let repo = open(&cmd.repo)?;
    let (id, snapshot) = select(&repo, &cmd.snapshot, None)?;
    let mut browser = Browser::new(&repo)?;
    let start = cmd.path.clone().unwrap_or_else(|| "/".to_owned());
    let node = browser.node(&snapshot, &start)?;
    let mut out = std::io::stdout().lock();
    if json {
        let head = json!({"message_type": "snapshot", "id": hex::encode(id), "time": super::rfc3339(snapshot.time, snapshot.time_ns), "host": snapshot.host});
        writeln!(out, "{head}").map_err(|e| CliError::io("writing to stdout", e))?;
    }
    let base = if start == "/" {
        String::new()
    } else {
        format!("/{}", start.trim_matches('/'))
    };
    match &node.kind {
        NodeKind::Dir { subtree } => {
            if !base.is_empty() {
                print_node(&mut out, &base, &node, cmd.long, json)?;
            }
            browser.walk(&base, subtree, &mut |path, n| {
                print_node(&mut out, path, n, cmd.long, json)
            })
        }
        _ => print_node(&mut out, &base, &node, cmd.long, json),
    }
}

/// `coffer dump`.
pub(crate) fn dump(cmd: &DumpCmd) -> Result<()> {
    let repo = open(&cmd.repo)?;
    let (_, snapshot) = select(&repo, &cmd.snapshot, None)?;
    let mut browser = Browser::new(&repo)?;
    let node = browser.node(&snapshot, &cmd.file)?;
    let mut out = std::io::stdout().lock();
    browser.write_content(&node, &mut out).map(|_| ())
}

/// A glob as `find` reads it: against names, or whole paths if it has a `/`.
fn matcher(pattern: &str) -> Result<(GlobMatcher, bool)> {
    let whole = pattern.contains('/');
    let glob = GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| CliError::Usage(format!("pattern {pattern:?}: {}", e.kind())))?;
    Ok((glob.compile_matcher(), whole))
}

/// `coffer find`.
pub(crate) fn find(cmd: &FindCmd, json: bool) -> Result<()> {
    let (glob, whole) = matcher(&cmd.pattern)?;
    let repo = open(&cmd.repo)?;
    let mut browser = Browser::new(&repo)?;
    let mut out = std::io::stdout().lock();
    let mut total = 0u64;
    for (id, snapshot) in repo.snapshots()? {
        let mut hits = Vec::new();
        browser.walk("", &snapshot.tree, &mut |path, node| {
            let name = path.rsplit('/').next().unwrap_or(path);
            if glob.is_match(if whole { path } else { name }) {
                hits.push((path.to_owned(), node.clone()));
            }
            Ok(())
        })?;
        if hits.is_empty() {
            continue;
        }
        total += hits.len() as u64;
        if !json {
            writeln!(
                out,
                "snapshot {} of {} on {}:",
                short(&id),
                local_time(snapshot.time),
                snapshot.host
            )
            .map_err(|e| CliError::io("writing to stdout", e))?;
        }
        for (path, node) in &hits {
            if json {
                let mut v = node_json(path, node);
                v["snapshot_id"] = hex::encode(id).into();
                writeln!(out, "{v}").map_err(|e| CliError::io("writing to stdout", e))?;
            } else {
                print_node(&mut out, path, node, true, false)?;
            }
        }
    }
    if total == 0 && !json {
        eprintln!("no match for {:?}", cmd.pattern);
    }
    Ok(())
}

/// How one path differs between two snapshots.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    Added,
    Removed,
    /// Content (or link target, device) changed.
    Modified,
    /// Only metadata: mode, owner, times, extended attributes.
    Metadata,
    /// Now another kind of entry.
    Kind,
}

impl Change {
    fn symbol(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Modified => 'M',
            Change::Metadata => 'U',
            Change::Kind => 'T',
        }
    }
    fn name(self) -> &'static str {
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
fn compare(a: &Node, b: &Node) -> Option<Change> {
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

/// `coffer diff`.
pub(crate) fn diff(cmd: &DiffCmd, json: bool) -> Result<()> {
    let repo = open(&cmd.repo)?;
    let (a_id, a) = select(&repo, &cmd.from, None)?;
    let (b_id, b) = select(&repo, &cmd.to, None)?;
    let mut browser = Browser::new(&repo)?;
    let mut changes: Vec<(Change, String)> = Vec::new();
    diff_trees(&mut browser, "", Some(&a.tree), Some(&b.tree), &mut changes)?;
    let mut out = std::io::stdout().lock();
    let mut counts = std::collections::BTreeMap::new();
    for (change, path) in &changes {
        *counts.entry(change.name()).or_insert(0u64) += 1;
        let line = if json {
            json!({"message_type": "change", "path": path, "modifier": change.symbol().to_string(), "change": change.name()}).to_string()
        } else {
            format!("{}    {path}", change.symbol())
        };
        writeln!(out, "{line}").map_err(|e| CliError::io("writing to stdout", e))?;
    }
    let summary = if json {
        json!({"message_type": "statistics", "source_snapshot": hex::encode(a_id), "target_snapshot": hex::encode(b_id), "changes": counts}).to_string()
    } else {
        format!(
            "\n{} added, {} removed, {} modified, {} metadata only, {} changed type",
            counts.get("added").unwrap_or(&0),
            counts.get("removed").unwrap_or(&0),
            counts.get("modified").unwrap_or(&0),
            counts.get("metadata").unwrap_or(&0),
            counts.get("type").unwrap_or(&0),
        )
    };
    writeln!(out, "{summary}").map_err(|e| CliError::io("writing to stdout", e))
}

/// Adds the changes between two folders' trees (either may be absent) under `dir`.
fn diff_trees(
    browser: &mut Browser<'_>,
    dir: &str,
    a: Option<&[u8; 32]>,
    b: Option<&[u8; 32]>,
    changes: &mut Vec<(Change, String)>,
) -> Result<()> {
    if a.is_some() && a == b {
        return Ok(()); // The same tree: nothing under it changed.
    }
    let a_nodes = match a {
        Some(id) => browser.tree(id)?.nodes,
        None => Vec::new(),
    };
    let b_nodes = match b {
        Some(id) => browser.tree(id)?.nodes,
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
            diff_trees(browser, &path, sa.as_ref(), sb.as_ref(), changes)?;
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
