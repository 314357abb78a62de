//! Checking a repository's structure (and, on request, its data), and rebuilding its
//! index from the packs alone.
//!
//! The structure check reads every index, lists the packs in storage, and walks every
//! snapshot's trees: every indexed pack must exist with the length the index says,
//! every blob a tree names must be indexed, every tree must decode. Reading data opens
//! the chosen packs whole, parses their tables of contents, checks that every blob
//! decompresses to what its ID says, and that the index agrees with the pack.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use coffer_core::SecretKey;

use super::config::names;
use super::index::{IndexFile, MemIndex, PackId, PackRecord};
use super::object::{self, SealedKind};
use super::pack::{self, TocEntry, TRAILER_LEN};
use super::tree::{ContentRef, NodeKind};
use super::trees::{decode_blob_with, decode_tree, BlobReader};
use super::Repository;
use crate::Error;

/// Which packs to read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadData {
    /// None: structure only.
    #[default]
    None,
    /// Every pack.
    All,
    /// About this percentage of the packs (chosen at random).
    Percent(u8),
    /// Slice `n` of `of` (1-based), by pack ID order, so `of` runs read everything.
    Slice {
        /// Which slice.
        n: u32,
        /// Of how many.
        of: u32,
    },
}

/// What a check found.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Snapshots walked.
    pub snapshots: u64,
    /// Distinct trees decoded.
    pub trees: u64,
    /// Distinct data blobs referenced.
    pub data_blobs: u64,
    /// Packs the indexes list.
    pub packs: u64,
    /// Packs read whole.
    pub packs_read: u64,
    /// Packs in storage that no index lists (a backup running, or one that was killed
    /// before writing its index: `rebuild_index` adds them, prune removes them).
    pub unindexed_packs: Vec<PackId>,
    /// Problems, each naming the object.
    pub errors: Vec<String>,
    /// Files whose content lies in a missing or damaged pack: the snapshot, the file's
    /// path (a folder, ending in `/`, when its listing itself is lost: everything in
    /// it), and the pack (at most [`MAX_AFFECTED`]).
    pub affected: Vec<([u8; 16], String, PackId)>,
}

/// The most affected files a report lists.
pub const MAX_AFFECTED: usize = 1000;

impl CheckReport {
    /// Whether nothing is wrong.
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Checks `repo` (a full key: trees and packs must be opened).
///
/// # Errors
/// [`Error::WriteOnlyKey`]; storage errors that stop the check itself (listing).
/// Problems with objects are collected in the report, not returned as errors.
pub fn check(repo: &Repository, read_data: ReadData) -> Result<CheckReport, Error> {
    repo.keys().recipient()?;
    let mut report = CheckReport::default();
    let stored = stored_packs(repo)?;
    let mut index = MemIndex::new();
    let mut records: BTreeMap<PackId, PackRecord> = BTreeMap::new();
    let mut bad_packs: Vec<PackId> = Vec::new();
    let mut superseded = HashSet::new();
    let mut files = Vec::new();
    for (id, name) in repo.list_ids("index")? {
        match repo.read_index(&name) {
            Ok(f) => {
                superseded.extend(f.supersedes.iter().copied());
                files.push((id, f));
            }
            Err(e) => report.errors.push(format!("{name}: {e}")),
        }
    }
    for (id, f) in &files {
        if superseded.contains(id) {
            continue;
        }
        index.add_file(f);
        for p in &f.packs {
            records.entry(p.id).or_insert_with(|| p.clone());
        }
    }
    index.merge_pending();
    report.packs = records.len() as u64;
    for (id, rec) in &records {
        match stored.get(id) {
            None => {
                bad_packs.push(*id);
                report
                    .errors
                    .push(format!("{}: indexed but missing", names::pack(id)));
            }
            Some(len) if *len != rec.object_len => report.errors.push(format!(
                "{}: {} bytes in storage, {} in the index",
                names::pack(id),
                len,
                rec.object_len
            )),
            Some(_) => {}
        }
    }
    report.unindexed_packs = stored
        .keys()
        .filter(|id| !records.contains_key(*id))
        .copied()
        .collect();

    // Every snapshot's trees, each tree once.
    let mut blobs = BlobReader::new(repo);
    let mut seen_trees = HashSet::new();
    let mut data = HashSet::new();
    for (sid, _) in repo.list_ids("snapshots")? {
        let snapshot = match repo.read_snapshot(&sid) {
            Ok(s) => s,
            Err(e) => {
                report
                    .errors
                    .push(format!("{}: {e}", names::snapshot(&sid)));
                continue;
            }
        };
        report.snapshots += 1;
        let mut stack = vec![snapshot.tree];
        while let Some(tid) = stack.pop() {
            if !seen_trees.insert(tid) {
                continue;
            }
            let tree = match blobs.read(&index, &tid).and_then(|b| decode_tree(&b)) {
                Ok(t) => t,
                Err(e) => {
                    report.errors.push(format!(
                        "tree {} of {}: {e}",
                        hex::encode(tid),
                        names::snapshot(&sid)
                    ));
                    continue;
                }
            };
            report.trees += 1;
            for node in &tree.nodes {
                match &node.kind {
                    NodeKind::Dir { subtree } => stack.push(*subtree),
                    NodeKind::File { content } => {
                        for c in content {
                            if let ContentRef::Data { id, .. } = c {
                                if data.insert(*id) && !index.contains(id) {
                                    report.errors.push(format!(
                                        "blob {} (in {}): in no index",
                                        hex::encode(id),
                                        names::snapshot(&sid)
                                    ));
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    report.data_blobs = data.len() as u64;

    for (id, rec) in selected(&records, read_data) {
        if !stored.contains_key(id) {
            continue;
        }
        report.packs_read += 1;
        if let Err(e) = read_pack(repo, id, Some(&rec.entries)) {
            bad_packs.push(*id);
            report.errors.push(format!("{}: {e}", names::pack(id)));
        }
    }
    if !bad_packs.is_empty() {
        let bad: HashMap<[u8; 32], PackId> = bad_packs
            .iter()
            .filter_map(|p| records.get(p))
            .flat_map(|r| r.entries.iter().map(move |e| (e.id, r.id)))
            .collect();
        report.affected = affected_files(repo, &index, &bad)?;
    }
    Ok(report)
}

/// The files of every snapshot with content in `bad` (blob → pack), by path.
fn affected_files(
    repo: &Repository,
    index: &MemIndex,
    bad: &HashMap<[u8; 32], PackId>,
) -> Result<Vec<([u8; 16], String, PackId)>, Error> {
    let mut out = Vec::new();
    let mut blobs = BlobReader::new(repo);
    for (sid, _) in repo.list_ids("snapshots")? {
        let Ok(snapshot) = repo.read_snapshot(&sid) else {
            continue;
        };
        let mut stack = vec![(String::new(), snapshot.tree)];
        while let Some((dir, tid)) = stack.pop() {
            // A tree that cannot be read is an error reported above; if its pack is the
            // bad one, everything in the folder is affected, shown as `folder/`.
            let Ok(tree) = blobs.read(index, &tid).and_then(|b| decode_tree(&b)) else {
                if let Some(pack) = bad.get(&tid) {
                    out.push((sid, format!("{dir}/"), *pack));
                }
                continue;
            };
            for node in &tree.nodes {
                let path = format!("{dir}/{}", String::from_utf8_lossy(&node.name));
                match &node.kind {
                    NodeKind::Dir { subtree } => stack.push((path, *subtree)),
                    NodeKind::File { content } => {
                        let hit = content.iter().find_map(|c| match c {
                            ContentRef::Data { id, .. } => bad.get(id),
                            ContentRef::Hole { .. } => None,
                        });
                        if let Some(pack) = hit {
                            out.push((sid, path, *pack));
                            if out.len() >= MAX_AFFECTED {
                                return Ok(out);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(out)
}

/// Packs in storage with their lengths.
pub(crate) fn stored_packs(repo: &Repository) -> Result<HashMap<PackId, u64>, Error> {
    let prefix = repo.object("data")?;
    let mut out = HashMap::new();
    for meta in repo.store().list(&format!("{prefix}/"))? {
        if let Some(id) = names::id_of(meta.key.as_str()) {
            out.insert(id, meta.size);
        }
    }
    Ok(out)
}

fn selected(
    records: &BTreeMap<PackId, PackRecord>,
    read_data: ReadData,
) -> Vec<(&PackId, &PackRecord)> {
    let all = records.iter();
    match read_data {
        ReadData::None => Vec::new(),
        ReadData::All => all.collect(),
        ReadData::Percent(p) => {
            use rand_core::RngCore;
            all.filter(|_| rand_core::OsRng.next_u32() % 100 < u32::from(p.min(100)))
                .collect()
        }
        ReadData::Slice { n, of } => {
            let of = of.max(1) as usize;
            let n = n.clamp(1, of as u32) as usize - 1;
            all.enumerate()
                .filter(|(i, _)| i % of == n)
                .map(|(_, r)| r)
                .collect()
        }
    }
}

/// Reads pack `id` whole: opens it, parses its table of contents, checks every blob,
/// and (given the index's entries) that the index says what the pack says.
///
/// # Errors
/// A description of the first problem.
pub fn read_pack(
    repo: &Repository,
    id: &PackId,
    indexed: Option<&[TocEntry]>,
) -> Result<Vec<TocEntry>, Error> {
    let name = names::pack(id);
    let secret = repo.keys().recipient()?;
    let sealed = repo.get(&name, pack::MAX_PACK_LEN + (1 << 24))?;
    let plain = object::open_from(secret, SealedKind::Pack, repo.id(), &name, &sealed)?;
    let bad = |reason: String| Error::RepoFormat {
        object: name.clone(),
        reason,
    };
    let toc = read_pack_plaintext(&name, &plain, repo.keys().chunk_id_key(), |_, _| {})?;
    if let Some(indexed) = indexed {
        let a: BTreeSet<_> = toc.iter().map(|e| (e.id, e.offset, e.stored_len)).collect();
        let b: BTreeSet<_> = indexed
            .iter()
            .map(|e| (e.id, e.offset, e.stored_len))
            .collect();
        if a != b {
            return Err(bad(
                "the index and the pack's table of contents disagree".to_owned()
            ));
        }
    }
    Ok(toc)
}

/// Reads a pack's whole plaintext (FORMAT.md §16): the trailer, the table of contents,
/// and every blob, decompressed and checked against its ID under `chunk_id_key`, each
/// handed to `blob` once it checked. Returns the table of contents.
///
/// # Errors
/// [`Error::RepoFormat`] naming `name` and the first rule broken.
pub fn read_pack_plaintext(
    name: &str,
    plain: &[u8],
    chunk_id_key: &SecretKey,
    mut blob: impl FnMut(&TocEntry, Vec<u8>),
) -> Result<Vec<TocEntry>, Error> {
    let bad = |reason: String| Error::RepoFormat {
        object: name.to_owned(),
        reason,
    };
    if plain.len() < TRAILER_LEN {
        return Err(bad("shorter than a trailer".to_owned()));
    }
    let (toc_off, toc_len) =
        pack::parse_trailer(&plain[plain.len() - TRAILER_LEN..], plain.len() as u64)
            .map_err(&bad)?;
    let toc = pack::parse_toc(
        &plain[toc_off as usize..(toc_off + toc_len) as usize],
        toc_off,
    )
    .map_err(&bad)?;
    for e in &toc {
        let stored = &plain[e.offset as usize..(e.offset + e.stored_len) as usize];
        let raw = decode_blob_with(
            chunk_id_key,
            &e.id,
            stored,
            e.compression,
            Some(e.raw_len as usize),
        )?;
        blob(e, raw);
    }
    Ok(toc)
}

/// Rebuilds the index from the packs alone: reads every pack in storage, and writes one
/// index object listing them all that supersedes every index there was; then removes
/// the old index objects. Packs that do not open are reported and left out.
///
/// # Errors
/// Storage and core errors writing the new index.
pub fn rebuild_index(repo: &Repository) -> Result<(IndexFile, Vec<String>), Error> {
    let old: Vec<([u8; 16], String)> = repo.list_ids("index")?;
    let mut file = IndexFile {
        packs: Vec::new(),
        supersedes: old.iter().map(|(id, _)| *id).collect(),
    };
    let mut problems = Vec::new();
    let stored = stored_packs(repo)?;
    let mut ids: Vec<&PackId> = stored.keys().collect();
    ids.sort();
    for id in ids {
        match read_pack(repo, id, None) {
            Ok(entries) => file.packs.push(PackRecord {
                id: *id,
                object_len: stored[id],
                entries,
            }),
            Err(e) => problems.push(format!("{}: {e}", names::pack(id))),
        }
    }
    repo.write_index(&file)?;
    for (_, name) in old {
        repo.store().delete(&repo.object(&name)?)?;
    }
    Ok((file, problems))
}
