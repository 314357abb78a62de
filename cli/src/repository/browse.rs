//! Looking inside snapshots without restoring them: `ls`, `dump`, `find` and `diff`.
//! Trees are read and verified blob by blob; file content is written only chunk by
//! verified chunk.

use std::io::Write;

use coffer_adapters::repo::browse::Browser;
use coffer_adapters::repo::snapshot::Snapshot;
use coffer_adapters::repo::tree::{ContentRef, Node, NodeKind};
use coffer_adapters::repo::Repository;
use globset::{GlobBuilder, GlobMatcher};
use serde_json::json;

use super::args::{DiffCmd, DumpCmd, FindCmd, LsCmd};
use super::{local_time, open, select, short, shown};
use crate::exit::{CliError, Result};

/// Writes a file node's content: each chunk after it verified, holes as zeros.
/// Returns the bytes written.
fn write_node(browser: &mut Browser<'_>, node: &Node, out: &mut dyn Write) -> Result<u64> {
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
                let data = browser.blob(id)?;
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

/// The node at `path` of `snapshot`.
pub(crate) fn find_node(repo: &Repository, snapshot: &Snapshot, path: &str) -> Result<Node> {
    Ok(Browser::new(repo)?.node(snapshot, path)?)
}

/// Writes a file node's content into `out`; returns its length.
pub(crate) fn write_content(repo: &Repository, node: &Node, out: &mut dyn Write) -> Result<u64> {
    write_node(&mut Browser::new(repo)?, node, out)
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
    write_node(&mut browser, &node, &mut out).map(|_| ())
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
        browser.walk::<CliError>("", &snapshot.tree, &mut |path, node| {
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

/// `coffer diff`.
pub(crate) fn diff(cmd: &DiffCmd, json: bool) -> Result<()> {
    let repo = open(&cmd.repo)?;
    let (a_id, a) = select(&repo, &cmd.from, None)?;
    let (b_id, b) = select(&repo, &cmd.to, None)?;
    let mut browser = Browser::new(&repo)?;
    let changes = browser.diff(&a, &b)?;
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
