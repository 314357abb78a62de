//! Index objects (FORMAT.md §17) and the in-memory index.
//!
//! An index object maps blob IDs to their pack, offset and lengths. It is sealed under
//! the index key, which write-only keys hold too: a writer must know which chunks
//! exist to deduplicate against them. What that tells a write-only key holder (blob IDs
//! and sizes, never contents) is in FORMAT.md's security notes.
//!
//! In memory, every blob costs one 44-byte [`Slot`] in a sorted vector (binary search),
//! plus its pack's share of a 24-byte pack record; blobs added by the running backup
//! wait in a small map until [`MemIndex::merge_pending`].

use std::collections::HashMap;

use super::pack::{BlobKind, Compression, TocEntry, TOC_ENTRY_LEN};
use crate::Error;

/// The first four bytes of an index plaintext.
pub const INDEX_MAGIC: &[u8; 4] = b"CIX2";
/// A pack's ID: 16 random bytes (its object name is their hex).
pub type PackId = [u8; 16];

/// One pack's entries, as an index object lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackRecord {
    /// The pack.
    pub id: PackId,
    /// Its object's length in storage (for ranged reads).
    pub object_len: u64,
    /// Its blobs.
    pub entries: Vec<TocEntry>,
}

/// An index object's content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndexFile {
    /// Packs and their blobs.
    pub packs: Vec<PackRecord>,
    /// Index objects this one replaces (their names), once it is written: prune and
    /// rebuild list them so readers ignore the old ones.
    pub supersedes: Vec<[u8; 16]>,
}

impl IndexFile {
    /// `"CIX2" ‖ u32le(pack count) ‖ packs ‖ u32le(superseded count) ‖ IDs`, each pack
    /// `id(16) ‖ u64le(object_len) ‖ u32le(entry count) ‖ entries (48 bytes each)`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(INDEX_MAGIC);
        out.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        for p in &self.packs {
            out.extend_from_slice(&p.id);
            out.extend_from_slice(&p.object_len.to_le_bytes());
            out.extend_from_slice(&(p.entries.len() as u32).to_le_bytes());
            for e in &p.entries {
                e.encode(&mut out);
            }
        }
        out.extend_from_slice(&(self.supersedes.len() as u32).to_le_bytes());
        for s in &self.supersedes {
            out.extend_from_slice(s);
        }
        out
    }

    /// Reads an index plaintext, refusing anything malformed or left over.
    ///
    /// # Errors
    /// [`Error::RepoFormat`] naming `name` and what is wrong.
    pub fn decode(name: &str, b: &[u8]) -> Result<Self, Error> {
        let bad = |reason: String| Error::RepoFormat {
            object: name.to_owned(),
            reason,
        };
        let mut r = Cursor { b, pos: 0 };
        if r.take(4).map_err(&bad)? != INDEX_MAGIC {
            return Err(bad("not an index (magic)".to_owned()));
        }
        let packs = r.u32().map_err(&bad)? as usize;
        let mut out = IndexFile::default();
        for _ in 0..packs {
            let mut id = [0u8; 16];
            id.copy_from_slice(r.take(16).map_err(&bad)?);
            let object_len = r.u64().map_err(&bad)?;
            let n = r.u32().map_err(&bad)? as usize;
            if n.saturating_mul(TOC_ENTRY_LEN) > b.len() {
                return Err(bad(format!("{n} entries cannot fit")));
            }
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                entries.push(TocEntry::decode(r.take(TOC_ENTRY_LEN).map_err(&bad)?).map_err(&bad)?);
            }
            out.packs.push(PackRecord {
                id,
                object_len,
                entries,
            });
        }
        let superseded = r.u32().map_err(&bad)? as usize;
        for _ in 0..superseded {
            let mut id = [0u8; 16];
            id.copy_from_slice(r.take(16).map_err(&bad)?);
            out.supersedes.push(id);
        }
        if r.pos != b.len() {
            return Err(bad("bytes after the index".to_owned()));
        }
        Ok(out)
    }
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.b.len());
        let end = end.ok_or_else(|| "truncated".to_owned())?;
        let out = &self.b[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
}

/// One blob in memory: 44 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    /// Blob ID.
    pub id: [u8; 32],
    /// Index into [`MemIndex::packs`].
    pub pack: u32,
    /// Offset in the pack's plaintext.
    pub offset: u32,
    /// Stored length, with the top bit set when the blob is zstd-compressed.
    pub len_and_flag: u32,
}

const ZSTD_FLAG: u32 = 1 << 31;

/// Where a blob is, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// The pack.
    pub pack: PackId,
    /// Its object's length.
    pub object_len: u64,
    /// Offset of the blob in the pack's plaintext.
    pub offset: u32,
    /// Stored length.
    pub stored_len: u32,
    /// Raw or zstd.
    pub compression: Compression,
}

/// Every blob the repository's indexes list, compactly.
#[derive(Debug, Default)]
pub struct MemIndex {
    /// Packs, in the order first seen.
    pub packs: Vec<(PackId, u64)>,
    pack_numbers: HashMap<PackId, u32>,
    sorted: Vec<Slot>,
    pending: HashMap<[u8; 32], Slot>,
}

impl MemIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds every blob of an index object (duplicates keep the first location).
    pub fn add_file(&mut self, file: &IndexFile) {
        for p in &file.packs {
            self.add_pack(p.id, p.object_len, &p.entries);
        }
    }

    /// Adds a pack's blobs.
    pub fn add_pack(&mut self, id: PackId, object_len: u64, entries: &[TocEntry]) {
        let number = match self.pack_numbers.get(&id) {
            Some(n) => *n,
            None => {
                let n = self.packs.len() as u32;
                self.packs.push((id, object_len));
                self.pack_numbers.insert(id, n);
                n
            }
        };
        for e in entries {
            if self.contains(&e.id) {
                continue;
            }
            let flag = if e.compression == Compression::Zstd {
                ZSTD_FLAG
            } else {
                0
            };
            self.pending.insert(
                e.id,
                Slot {
                    id: e.id,
                    pack: number,
                    offset: e.offset,
                    len_and_flag: e.stored_len | flag,
                },
            );
        }
    }

    /// Moves blobs added since the last merge into the sorted vector.
    pub fn merge_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        // The map goes (not just emptied: an emptied map keeps its capacity).
        let pending = std::mem::take(&mut self.pending);
        self.sorted.extend(pending.into_values());
        self.sorted.sort_unstable_by_key(|a| a.id);
        self.sorted.shrink_to_fit();
    }

    /// Whether a blob is known.
    pub fn contains(&self, id: &[u8; 32]) -> bool {
        self.slot(id).is_some()
    }

    fn slot(&self, id: &[u8; 32]) -> Option<&Slot> {
        self.pending.get(id).or_else(|| {
            self.sorted
                .binary_search_by(|s| s.id.cmp(id))
                .ok()
                .map(|i| &self.sorted[i])
        })
    }

    /// Where a blob is.
    pub fn locate(&self, id: &[u8; 32]) -> Option<Location> {
        let s = self.slot(id)?;
        let (pack, object_len) = *self.packs.get(s.pack as usize)?;
        Some(Location {
            pack,
            object_len,
            offset: s.offset,
            stored_len: s.len_and_flag & !ZSTD_FLAG,
            compression: if s.len_and_flag & ZSTD_FLAG != 0 {
                Compression::Zstd
            } else {
                Compression::None
            },
        })
    }

    /// Blobs known.
    pub fn len(&self) -> usize {
        self.sorted.len() + self.pending.len()
    }

    /// Whether no blob is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the index holds on the heap now (vectors at capacity, the pending map
    /// estimated), for the figure "bytes per blob".
    pub fn heap_bytes(&self) -> usize {
        self.sorted.capacity() * std::mem::size_of::<Slot>()
            + self.packs.capacity() * std::mem::size_of::<(PackId, u64)>()
            + self.pack_numbers.capacity() * (16 + 4 + 8)
            + self.pending.capacity() * (32 + std::mem::size_of::<Slot>() + 8)
    }
}

/// A [`TocEntry`] from its parts (for tests and the writer).
pub fn entry(
    id: [u8; 32],
    kind: BlobKind,
    compression: Compression,
    offset: u32,
    stored_len: u32,
    raw_len: u32,
) -> TocEntry {
    TocEntry {
        id,
        kind,
        compression,
        offset,
        stored_len,
        raw_len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_files_round_trip_and_refuse_leftovers() {
        let f = IndexFile {
            packs: vec![PackRecord {
                id: [7; 16],
                object_len: 1234,
                entries: vec![
                    entry([1; 32], BlobKind::Data, Compression::Zstd, 0, 10, 20),
                    entry([2; 32], BlobKind::Tree, Compression::None, 10, 5, 5),
                ],
            }],
            supersedes: vec![[9; 16]],
        };
        let b = f.encode();
        assert_eq!(IndexFile::decode("i", &b).unwrap(), f);
        let mut extra = b.clone();
        extra.push(0);
        assert!(IndexFile::decode("i", &extra).is_err());
        assert!(IndexFile::decode("i", &b[..b.len() - 1]).is_err());
        let mut huge = b.clone();
        huge[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(IndexFile::decode("i", &huge).is_err());
    }

    #[test]
    fn the_memory_index_finds_blobs_in_44_bytes_each() {
        assert_eq!(std::mem::size_of::<Slot>(), 44);
        let mut m = MemIndex::new();
        let entries: Vec<TocEntry> = (0..1000u32)
            .map(|i| {
                let mut id = [0u8; 32];
                id[..4].copy_from_slice(&i.to_le_bytes());
                entry(id, BlobKind::Data, Compression::Zstd, i * 10, 10, 30)
            })
            .collect();
        m.add_pack([1; 16], 99, &entries);
        assert!(m.contains(&entries[5].id));
        m.merge_pending();
        let loc = m.locate(&entries[500].id).unwrap();
        assert_eq!((loc.pack, loc.offset, loc.stored_len), ([1; 16], 5000, 10));
        assert_eq!(loc.compression, Compression::Zstd);
        assert!(m.locate(&[0xff; 32]).is_none());
        // A second copy elsewhere does not replace the first.
        m.add_pack([2; 16], 99, &entries[..1]);
        assert_eq!(m.locate(&entries[0].id).unwrap().pack, [1; 16]);
    }
}
