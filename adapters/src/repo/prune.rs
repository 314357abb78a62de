//! Garbage collection: remove the data no snapshot uses any more.
//!
//! Under an exclusive lock (no backup can be deduplicating against what goes away):
//! every snapshot's trees are walked to find the blobs in use; packs none of whose
//! blobs is used are deleted; packs mostly unused (less than [`REPACK_BELOW`] of their
//! stored bytes in use) have their used blobs copied into new packs, then are deleted;
//! packs no index lists (left by a backup that was killed) are deleted.
//!
//! The order makes every crash safe: new packs are written, then one new index that
//! lists every pack kept and supersedes every index there was; only then are the old
//! indexes and the dropped packs deleted. Killed before the new index, the repository
//! is as it was plus unindexed packs; killed after, the new index already says where
//! every blob in use is, and leftovers are deleted by the next prune.

use std::collections::{BTreeMap, HashSet};

use super::check::{read_pack, stored_packs};
use super::config::names;
use super::index::{IndexFile, MemIndex, PackId, PackRecord};
use super::locks::{self, Lock};
use super::object::{self, SealedKind};
use super::pack::{PackBuilder, PACK_TARGET};
use super::tree::{ContentRef, NodeKind};
use super::trees::{decode_tree, BlobReader};
use super::Repository;
use crate::Error;

/// A pack with less than this share of its stored bytes in use is repacked.
pub const REPACK_BELOW: f64 = 0.5;

/// What a prune did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Blobs in use.
    pub used_blobs: u64,
    /// Packs kept as they are.
    pub packs_kept: u64,
    /// Packs deleted whole (no blob in use).
    pub packs_deleted: u64,
    /// Packs repacked.
    pub packs_repacked: u64,
    /// Packs written by repacking.
    pub packs_written: u64,
    /// Unindexed packs deleted.
    pub unindexed_deleted: u64,
    /// Stored bytes freed (packs deleted, less packs written).
    pub bytes_freed: i64,
}

/// Prunes `repo` (full key). Forget snapshots first; prune removes what none of the
/// remaining ones use.
///
/// # Errors
/// [`Error::Locked`] while a backup runs; [`Error::WriteOnlyKey`]; storage, core and
/// format errors (nothing is deleted before the new index is written).
pub fn prune(repo: &Repository, host: &str) -> Result<PruneReport, Error> {
    prune_with(repo, host, &|| false)
}

/// [`prune`], stopping with [`Error::Cancelled`] when `cancelled()` says so: between
/// packs while repacking, before the new index, and between deletions (each state a
/// kill could leave too, so `check` passes after it and no kept snapshot loses data).
///
/// # Errors
/// As [`prune`]; [`Error::Cancelled`].
pub fn prune_with(
    repo: &Repository,
    host: &str,
    cancelled: &dyn Fn() -> bool,
) -> Result<PruneReport, Error> {
    repo.keys().recipient()?;
    let lock = Lock::take(repo, true, host)?;
    let stop = || {
        if cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    };
    let result = prune_locked(repo, &stop);
    let released = lock.release();
    let report = result?;
    released?;
    Ok(report)
}

fn prune_locked(
    repo: &Repository,
    stop: &dyn Fn() -> Result<(), Error>,
) -> Result<PruneReport, Error> {
    locks::remove_stale(repo)?;
    let mut report = PruneReport::default();
    let old_indexes = repo.list_ids("index")?;
    let index = repo.load_index()?;
    let mut records: BTreeMap<PackId, PackRecord> = BTreeMap::new();
    for (_, name) in &old_indexes {
        for p in repo.read_index(name)?.packs {
            records.entry(p.id).or_insert(p);
        }
    }

    // The blobs in use: every tree, and every data blob a tree names.
    let used = used_blobs(repo, &index)?;
    report.used_blobs = used.len() as u64;

    let mut keep = Vec::new();
    let mut drop_packs = Vec::new();
    let mut repack = Vec::new();
    let mut placed: HashSet<[u8; 32]> = HashSet::new();
    for (id, rec) in &records {
        let total: u64 = rec.entries.iter().map(|e| u64::from(e.stored_len)).sum();
        // A blob stored twice (two backups at once) is in use once: the first pack
        // that has it keeps it.
        let in_use: u64 = rec
            .entries
            .iter()
            .filter(|e| used.contains(&e.id) && !placed.contains(&e.id))
            .map(|e| u64::from(e.stored_len))
            .sum();
        if in_use == 0 {
            drop_packs.push(*id);
        } else if (in_use as f64) < REPACK_BELOW * total as f64 {
            repack.push(*id);
        } else {
            for e in &rec.entries {
                placed.insert(e.id);
            }
            keep.push(rec.clone());
        }
    }

    // Copy the used blobs of packs being repacked, not yet placed in a kept pack.
    let mut written = Vec::new();
    let mut builder = PackBuilder::new();
    for id in &repack {
        stop()?;
        let entries = read_pack_blobs(repo, id)?;
        for (entry, stored) in entries {
            if !used.contains(&entry.id) || !placed.insert(entry.id) {
                continue;
            }
            builder.add(
                entry.id,
                entry.kind,
                entry.compression,
                &stored,
                entry.raw_len as usize,
            )?;
            if builder.len() >= PACK_TARGET {
                written.push(write_pack(repo, std::mem::take(&mut builder))?);
            }
        }
    }
    if !builder.is_empty() {
        written.push(write_pack(repo, builder)?);
    }

    // One index for everything kept; it supersedes every index there was.
    let new_index = IndexFile {
        packs: keep
            .iter()
            .cloned()
            .chain(written.iter().cloned())
            .collect(),
        supersedes: old_indexes.iter().map(|(id, _)| *id).collect(),
    };
    stop()?;
    repo.write_index(&new_index)?;

    // Now nothing refers to the old indexes or the dropped packs.
    for (_, name) in &old_indexes {
        stop()?;
        repo.store().delete(&repo.object(name)?)?;
    }
    let stored = stored_packs(repo)?;
    let listed: HashSet<PackId> = new_index.packs.iter().map(|p| p.id).collect();
    for (id, len) in &stored {
        if listed.contains(id) {
            continue;
        }
        stop()?;
        let was_indexed = records.contains_key(id);
        repo.store().delete(&repo.object(&names::pack(id))?)?;
        report.bytes_freed += i64::try_from(*len).unwrap_or(i64::MAX);
        if !was_indexed {
            report.unindexed_deleted += 1;
        }
    }
    for p in &written {
        report.bytes_freed -= i64::try_from(p.object_len).unwrap_or(i64::MAX);
    }
    report.packs_kept = keep.len() as u64;
    report.packs_deleted = drop_packs.len() as u64;
    report.packs_repacked = repack.len() as u64;
    report.packs_written = written.len() as u64;
    Ok(report)
}

/// Every blob any snapshot uses.
fn used_blobs(repo: &Repository, index: &MemIndex) -> Result<HashSet<[u8; 32]>, Error> {
    let mut used = HashSet::new();
    let mut blobs = BlobReader::new(repo);
    for (_, snapshot) in repo.snapshots()? {
        let mut stack = vec![snapshot.tree];
        while let Some(tid) = stack.pop() {
            if !used.insert(tid) {
                continue;
            }
            let tree = decode_tree(&blobs.read(index, &tid)?)?;
            for node in &tree.nodes {
                match &node.kind {
                    NodeKind::Dir { subtree } => stack.push(*subtree),
                    NodeKind::File { content } => {
                        for c in content {
                            if let ContentRef::Data { id, .. } = c {
                                used.insert(*id);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(used)
}

/// A pack's entries with their stored bytes (verified).
fn read_pack_blobs(
    repo: &Repository,
    id: &PackId,
) -> Result<Vec<(super::pack::TocEntry, Vec<u8>)>, Error> {
    let entries = read_pack(repo, id, None)?;
    let name = names::pack(id);
    let sealed = repo.get(&name, super::pack::MAX_PACK_LEN + (1 << 24))?;
    let plain = object::open_from(
        repo.keys().recipient()?,
        SealedKind::Pack,
        repo.id(),
        &name,
        &sealed,
    )?;
    Ok(entries
        .into_iter()
        .map(|e| {
            let stored = plain[e.offset as usize..(e.offset + e.stored_len) as usize].to_vec();
            (e, stored)
        })
        .collect())
}

fn write_pack(repo: &Repository, builder: PackBuilder) -> Result<PackRecord, Error> {
    let (plain, entries) = builder.finish();
    let id = names::random_id();
    let name = names::pack(&id);
    let sealed = object::seal_to(
        repo.keys().public(),
        SealedKind::Pack,
        repo.id(),
        &name,
        &plain,
    )?;
    repo.put(&name, &sealed)?;
    Ok(PackRecord {
        id,
        object_len: sealed.len() as u64,
        entries,
    })
}
