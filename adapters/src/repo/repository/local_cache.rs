//! A reader's local object cache (FORMAT.md §22.1): copies of the index objects, the
//! snapshots and the stored bytes of tree blobs, so that a command over a large, mostly
//! unchanged repository (a nightly backup listing its parent's trees) reads almost
//! nothing from storage.
//!
//! The cache is never trusted. Every repository object is immutable once written and
//! sealed, so an entry holds the *stored sealed bytes* and is opened exactly as storage's
//! copy would be: an entry can make the engine accept nothing storage would not have
//! given it. An entry that does not open, authenticate or decode is deleted and the
//! object read from storage again. An entry is only used for an object the latest
//! listing of its folder (or, for trees, the latest loaded index) names, and the entries
//! of objects a listing no longer names are deleted then. Every cache operation is best
//! effort: a cache that cannot be read or written costs storage reads, never an error.
//!
//! Layout, under `<cache folder>/<repository ID hex>/` (folders 0700, files 0600, each
//! written to a temporary file and renamed):
//! - `index/<32 hex>` and `snapshots/<32 hex>`: the objects of those names, whole;
//! - `trees/<pack ID hex>-<offset>-<stored length>`: for a tree blob at that place, the
//!   pack's 96-byte header, the pack stream's prefix and the sealed chunks that cover
//!   the blob, concatenated (what [`super::super::trees::BlobReader`] fetches).

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use crate::repo::index::{Location, PackId};
use crate::repo::object::RepoId;

/// The folders of whole cached objects (their names in the repository).
pub(crate) const OBJECT_DIRS: [&str; 2] = ["index", "snapshots"];
/// The folder of cached tree blobs.
const TREES: &str = "trees";
/// A temporary file older than this is left over from a crash and removed.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// A tree blob's place: pack, offset and stored length (the name of its entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct TreeKey {
    pack: PackId,
    offset: u32,
    len: u32,
}

impl TreeKey {
    /// The key of the blob at `at`.
    pub(crate) fn of(at: &Location) -> Self {
        TreeKey {
            pack: at.pack,
            offset: at.offset,
            len: at.stored_len,
        }
    }

    /// The key of an index entry.
    pub(crate) fn new(pack: PackId, offset: u32, len: u32) -> Self {
        TreeKey { pack, offset, len }
    }

    fn file_name(&self) -> String {
        format!("{}-{}-{}", hex::encode(self.pack), self.offset, self.len)
    }

    fn parse(name: &str) -> Option<Self> {
        let mut parts = name.split('-');
        let mut pack = [0u8; 16];
        hex::decode_to_slice(parts.next()?, &mut pack).ok()?;
        let offset = parts.next()?.parse().ok()?;
        let len = parts.next()?.parse().ok()?;
        let key = TreeKey { pack, offset, len };
        // Only the canonical spelling (no `+`, no leading zeros).
        (parts.next().is_none() && key.file_name() == name).then_some(key)
    }
}

/// The cache of one repository.
#[derive(Debug)]
pub(crate) struct LocalCache {
    /// `<cache folder>/<repository ID hex>`.
    root: PathBuf,
    /// The IDs the latest listing of each of [`OBJECT_DIRS`] named.
    listed: Mutex<HashMap<&'static str, HashSet<[u8; 16]>>>,
    /// The tree blobs the latest loaded index lists, sorted (`None` before one).
    trees: Mutex<Option<Vec<TreeKey>>>,
}

impl LocalCache {
    /// The cache of repository `id` under `dir` (nothing is created until written).
    pub(crate) fn new(dir: &Path, id: &RepoId) -> Self {
        LocalCache {
            root: dir.join(hex::encode(id)),
            listed: Mutex::new(HashMap::new()),
            trees: Mutex::new(None),
        }
    }

    /// Where the repository's entries are.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Records a listing of `dir` (one of [`OBJECT_DIRS`]), and deletes the entries of
    /// objects it does not name.
    pub(crate) fn listed(&self, dir: &'static str, ids: HashSet<[u8; 16]>) {
        let keep = |name: &str| names_id(name).is_some_and(|id| ids.contains(&id));
        sweep(&self.root.join(dir), keep);
        lock(&self.listed).insert(dir, ids);
    }

    /// The cached copy of object `dir/<id>`, if the latest listing of `dir` names it
    /// and the entry is at most `limit` bytes; unverified.
    pub(crate) fn object(&self, dir: &'static str, id: &[u8; 16], limit: u64) -> Option<Vec<u8>> {
        let named = lock(&self.listed)
            .get(dir)
            .is_some_and(|ids| ids.contains(id));
        if !named {
            return None;
        }
        read_capped(&self.object_path(dir, id), limit)
    }

    /// Keeps `sealed` as the copy of object `dir/<id>` (read from storage and opened).
    pub(crate) fn store_object(&self, dir: &'static str, id: &[u8; 16], sealed: &[u8]) {
        write_entry(&self.root.join(dir), &hex::encode(id), &[sealed]);
    }

    /// Keeps `sealed`, an object this process has just written, and counts it as
    /// listed.
    pub(crate) fn added(&self, dir: &'static str, id: &[u8; 16], sealed: &[u8]) {
        self.store_object(dir, id, sealed);
        if let Some(ids) = lock(&self.listed).get_mut(dir) {
            ids.insert(*id);
        }
    }

    /// Deletes the entry of object `dir/<id>` (it did not open).
    pub(crate) fn drop_object(&self, dir: &'static str, id: &[u8; 16]) {
        let _ = std::fs::remove_file(self.object_path(dir, id));
    }

    /// Records the tree blobs the loaded index lists, and deletes the entries of every
    /// other (those of packs no index lists any more, after a prune).
    pub(crate) fn set_trees(&self, mut keys: Vec<TreeKey>) {
        keys.sort_unstable();
        keys.dedup();
        let keep =
            |name: &str| TreeKey::parse(name).is_some_and(|k| keys.binary_search(&k).is_ok());
        sweep(&self.root.join(TREES), keep);
        *lock(&self.trees) = Some(keys);
    }

    /// Whether the blob at `key` is a tree of the loaded index.
    pub(crate) fn is_tree(&self, key: &TreeKey) -> bool {
        lock(&self.trees)
            .as_ref()
            .is_some_and(|k| k.binary_search(key).is_ok())
    }

    /// The cached stored bytes of tree `key`, if they are `len` bytes; unverified.
    pub(crate) fn tree(&self, key: &TreeKey, len: u64) -> Option<Vec<u8>> {
        let bytes = read_capped(&self.root.join(TREES).join(key.file_name()), len)?;
        (bytes.len() as u64 == len).then_some(bytes)
    }

    /// Keeps the stored bytes of tree `key` (the concatenation of `pieces`).
    pub(crate) fn store_tree(&self, key: &TreeKey, pieces: &[&[u8]]) {
        write_entry(&self.root.join(TREES), &key.file_name(), pieces);
    }

    /// Deletes the entry of tree `key` (it did not open).
    pub(crate) fn drop_tree(&self, key: &TreeKey) {
        let _ = std::fs::remove_file(self.root.join(TREES).join(key.file_name()));
    }

    fn object_path(&self, dir: &str, id: &[u8; 16]) -> PathBuf {
        self.root.join(dir).join(hex::encode(id))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The ID an entry of an object folder is named by (32 lower-case hex digits).
fn names_id(name: &str) -> Option<[u8; 16]> {
    let mut id = [0u8; 16];
    hex::decode_to_slice(name, &mut id).ok()?;
    (hex::encode(id) == name).then_some(id)
}

/// A file's bytes if it has at most `limit`; `None` if it is missing, larger or
/// unreadable.
fn read_capped(path: &Path, limit: u64) -> Option<Vec<u8>> {
    let file = std::fs::File::open(path).ok()?;
    let mut out = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .ok()?;
    (out.len() as u64 <= limit).then_some(out)
}

/// Writes `dir/name` from `pieces` through a temporary file and a rename, creating
/// `dir` (0700); failures are ignored (the entry is simply missing).
fn write_entry(dir: &Path, name: &str, pieces: &[&[u8]]) {
    let write = || -> std::io::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        // NamedTempFile: mode 0600, in the same folder (so the rename is atomic),
        // removed if anything fails before it is persisted.
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        for p in pieces {
            tmp.write_all(p)?;
        }
        tmp.persist(dir.join(name)).map_err(|e| e.error)?;
        Ok(())
    };
    let _ = write();
}

/// Deletes the entries of `dir` that `keep` refuses, and temporary files left by a
/// crash (another process may be writing a fresh one).
fn sweep(dir: &Path, keep: impl Fn(&str) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else {
            let _ = std::fs::remove_file(e.path());
            continue;
        };
        if name.starts_with(".tmp") {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > STALE_TEMP);
            if !old {
                continue;
            }
        } else if keep(name) {
            continue;
        }
        let _ = std::fs::remove_file(e.path());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_names_round_trip_and_only_canonical_ones_parse() {
        let k = TreeKey::new([0xab; 16], 12, 345);
        assert_eq!(TreeKey::parse(&k.file_name()), Some(k));
        let hex = hex::encode([0xab; 16]);
        for bad in [
            format!("{hex}-012-345"),
            format!("{hex}-+12-345"),
            format!("{hex}-12-345-1"),
            format!("{}-12-345", hex.to_uppercase()),
            "x-1-2".to_owned(),
        ] {
            assert_eq!(TreeKey::parse(&bad), None, "{bad}");
        }
        assert!(names_id(&hex).is_some());
        assert!(names_id(&hex.to_uppercase()).is_none());
    }

    #[test]
    fn entries_are_used_only_when_listed_and_swept_when_not() {
        let dir = tempfile::tempdir().unwrap();
        let c = LocalCache::new(dir.path(), &[1; 16]);
        c.store_object("index", &[2; 16], b"two");
        c.store_object("index", &[3; 16], b"three");
        // Not listed yet: not used.
        assert_eq!(c.object("index", &[2; 16], 100), None);
        c.listed("index", HashSet::from([[2; 16]]));
        assert_eq!(
            c.object("index", &[2; 16], 100).as_deref(),
            Some(&b"two"[..])
        );
        assert_eq!(c.object("index", &[2; 16], 2), None, "over the limit");
        assert!(!c.object_path("index", &[3; 16]).exists(), "swept");
        c.added("index", &[4; 16], b"four");
        assert_eq!(
            c.object("index", &[4; 16], 100).as_deref(),
            Some(&b"four"[..])
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(c.root().join("index"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o700);
    }
}
