//! The local object cache (FORMAT.md §22.1): with it, a backup of an unchanged tree reads
//! no index object, snapshot or tree it already had from storage (without it, it does);
//! a damaged entry is dropped and read again; entries of objects storage no longer lists
//! are removed and never used; a lost cache is rebuilt.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

mod repo_support;

use repo_support::{kek, random_bytes};

use coffer_adapters::repo::backup::{self, BackupOptions, BackupReport};
use coffer_adapters::repo::forget::{self, Policy};
use coffer_adapters::repo::prune;
use coffer_adapters::repo::restore::{self, RestoreOptions};
use coffer_adapters::repo::Repository;
use coffer_adapters::storage::{LocalStorage, ObjectKey, ObjectMeta, PutMode, Storage};
use coffer_adapters::Error;
use coffer_core::passphrase::Argon2Params;

/// Storage that counts whole and ranged reads by top folder (`index`, `snapshots`,
/// `data`, ...).
struct Counting {
    inner: LocalStorage,
    reads: Mutex<BTreeMap<(&'static str, String), u64>>,
}

impl Counting {
    fn new(root: &Path) -> Arc<Self> {
        Arc::new(Counting {
            inner: LocalStorage::open(root).unwrap(),
            reads: Mutex::new(BTreeMap::new()),
        })
    }

    fn count(&self, op: &'static str, key: &ObjectKey) {
        let top = key.as_str().split('/').next().unwrap_or("").to_owned();
        *self.reads.lock().unwrap().entry((op, top)).or_default() += 1;
    }

    /// Reads since the last call: (get index, get snapshots, get_range data).
    fn take(&self) -> Reads {
        let mut m = self.reads.lock().unwrap();
        let n = |op: &'static str, top: &str| m.get(&(op, top.to_owned())).copied().unwrap_or(0);
        let r = Reads {
            index: n("get", "index"),
            snapshots: n("get", "snapshots"),
            ranges: n("range", "data"),
        };
        m.clear();
        r
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reads {
    index: u64,
    snapshots: u64,
    /// Ranged reads of packs (in a backup: the parent's trees only).
    ranges: u64,
}

impl Storage for Counting {
    fn put(&self, key: &ObjectKey, data: &mut dyn Read, mode: PutMode) -> Result<u64, Error> {
        self.inner.put(key, data, mode)
    }

    fn get(&self, key: &ObjectKey) -> Result<Box<dyn Read + Send>, Error> {
        self.count("get", key);
        self.inner.get(key)
    }

    fn get_range(
        &self,
        key: &ObjectKey,
        start: u64,
        len: u64,
    ) -> Result<Box<dyn Read + Send>, Error> {
        self.count("range", key);
        self.inner.get_range(key, start, len)
    }

    fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>, Error> {
        self.inner.head(key)
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, Error> {
        self.inner.list(prefix)
    }

    fn delete(&self, key: &ObjectKey) -> Result<(), Error> {
        self.inner.delete(key)
    }
}

fn options() -> BackupOptions {
    BackupOptions {
        host: "h".into(),
        program: "test".into(),
        ..BackupOptions::default()
    }
}

/// `dirs` folders of `per_dir` small files each, and one bigger file.
fn make_tree(src: &Path, dirs: usize, per_dir: usize) {
    for d in 0..dirs {
        let dir = src.join(format!("d{:03}/sub", d));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..per_dir {
            std::fs::write(
                dir.join(format!("f{f:03}.txt")),
                format!("file {d}/{f}\n").repeat(1 + f % 7),
            )
            .unwrap();
        }
    }
    std::fs::write(src.join("big.bin"), random_bytes(600_000, 5)).unwrap();
}

struct Setup {
    _work: tempfile::TempDir,
    store: Arc<Counting>,
    src: PathBuf,
    cache: PathBuf,
    work: PathBuf,
}

fn setup(dirs: usize, per_dir: usize) -> Setup {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("repo");
    let src = work.path().join("src");
    make_tree(&src, dirs, per_dir);
    let store = Counting::new(&root);
    Repository::init(
        Arc::clone(&store) as Arc<dyn Storage>,
        "",
        &kek(1),
        Argon2Params::MIN,
    )
    .unwrap();
    Setup {
        store,
        src,
        cache: work.path().join("cache"),
        work: work.path().to_owned(),
        _work: work,
    }
}

impl Setup {
    fn open(&self) -> Repository {
        Repository::open(Arc::clone(&self.store) as Arc<dyn Storage>, "", &kek(1)).unwrap()
    }

    fn cached(&self) -> Repository {
        self.open().with_cache(self.cache.clone())
    }

    fn backup(&self, repo: &Repository) -> BackupReport {
        backup::backup(repo, std::slice::from_ref(&self.src), &options()).unwrap()
    }

    /// The repository's folder of cache entries.
    fn entries(&self, repo: &Repository) -> PathBuf {
        self.cache.join(hex::encode(repo.id()))
    }

    /// The names in the cache's `dir` folder.
    fn cached_names(&self, repo: &Repository, dir: &str) -> BTreeSet<String> {
        match std::fs::read_dir(self.entries(repo).join(dir)) {
            Ok(rd) => rd
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect(),
            Err(_) => BTreeSet::new(),
        }
    }

    /// The hex IDs storage lists under `dir`.
    fn stored_names(&self, repo: &Repository, dir: &str) -> BTreeSet<String> {
        repo.list_ids(dir)
            .unwrap()
            .into_iter()
            .map(|(id, _)| hex::encode(id))
            .collect()
    }

    fn restores(&self, repo: &Repository, id: &[u8; 16], out: &str) {
        let out = self.work.join(out);
        restore::restore(repo, id, &out, &RestoreOptions::default()).unwrap();
        let back = out.join(self.src.strip_prefix("/").unwrap());
        assert_eq!(files_of(&back), files_of(&self.src));
    }
}

/// With the cache, a backup reads no index object or snapshot, and of the parent's
/// trees only those the backup before wrote (the cache keeps trees as they are read):
/// the folders on the way from `/` to the source, whose times other processes change
/// (`/tmp`), and none else. Three reads at most per new tree: its stream prefix, its
/// chunks and its pack's header.
fn assert_warm(reads: Reads, previous: &BackupReport) {
    let new_trees = previous.summary.new_trees;
    assert!(
        reads.index == 0 && reads.snapshots == 0 && reads.ranges <= 3 * new_trees,
        "{reads:?} after a backup that wrote {new_trees} trees"
    );
}

fn files_of(p: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![p.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((
                    path.strip_prefix(p).unwrap().to_owned(),
                    std::fs::read(&path).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn an_unchanged_backup_reads_nothing_it_had_from_storage() {
    let s = setup(100, 30);
    // Without the cache: every backup reads every index object and snapshot, and the
    // parent's trees.
    let plain = s.open();
    s.backup(&plain);
    s.store.take();
    let report = s.backup(&plain);
    assert_eq!(report.changes.unchanged, 3001);
    let uncached = s.store.take();
    assert!(
        uncached.index >= 1 && uncached.snapshots >= 1 && uncached.ranges > 200,
        "{uncached:?}"
    );
    let plain_again = s.backup(&plain);
    assert_eq!(plain_again.changes.unchanged, 3001);
    let uncached_again = s.store.take();

    // With it: the objects the backups wrote are cached as written; the first backup
    // with it reads the parent's trees (keeping them), the next none.
    let repo = s.cached();
    let listed = |dir| s.stored_names(&repo, dir).len() as u64;
    let (indexes, snapshots) = (listed("index"), listed("snapshots"));
    let first = s.backup(&repo);
    let warming = s.store.take();
    assert_eq!(
        (warming.index, warming.snapshots),
        (indexes, snapshots),
        "{warming:?}"
    );
    assert!(warming.ranges > 200, "{warming:?}");
    let report = s.backup(&repo);
    assert_eq!(report.changes.unchanged, 3001);
    let warm = s.store.take();
    assert_warm(warm, &first);
    assert!(warm.ranges * 20 < warming.ranges, "{warm:?} {warming:?}");
    // Another process (a new Repository on the same cache) too.
    let other = s.cached();
    let last = s.backup(&other);
    assert_warm(s.store.take(), &report);
    s.backup(&other);
    assert_warm(s.store.take(), &last);
    eprintln!(
        "3000 files in 200 folders, reads of a backup: without cache {uncached:?}, \
         {uncached_again:?}; with it, first {warming:?}, then {warm:?} (the backup before \
         wrote {} trees)",
        first.summary.new_trees
    );
    // What the cache gave is what storage has.
    s.restores(&other, &report.snapshot, "out");
}

#[test]
fn a_damaged_entry_is_dropped_and_read_again() {
    let s = setup(6, 3);
    let repo = s.cached();
    let first = s.backup(&repo);
    let last = s.backup(&repo); // reads and keeps the trees
    s.store.take();
    let entries = s.entries(&repo);
    let index = s.cached_names(&repo, "index");
    let snapshots = s.cached_names(&repo, "snapshots");
    let trees = s.cached_names(&repo, "trees");
    assert_eq!(index, s.stored_names(&repo, "index"));
    assert_eq!(snapshots, s.stored_names(&repo, "snapshots"));
    assert_eq!(snapshots.len(), 2);
    assert!(trees.len() >= 14, "{trees:?}");
    let originals: BTreeMap<PathBuf, Vec<u8>> = [
        ("index", index.iter().next().unwrap()),
        ("snapshots", snapshots.iter().last().unwrap()),
    ]
    .into_iter()
    .chain(trees.iter().map(|t| ("trees", t)))
    .map(|(d, n)| {
        let p = entries.join(d).join(n);
        let b = std::fs::read(&p).unwrap();
        (p, b)
    })
    .collect();
    // Damage: a byte of an index object, of a snapshot, of a tree entry's pack header
    // magic, sealed key, stream prefix and chunks, and a truncated tree entry.
    let mut damaged = 0;
    for (i, (path, bytes)) in originals.iter().enumerate() {
        let mut b = bytes.clone();
        match i % 5 {
            0 => b[2] ^= 1,
            1 => b[50] ^= 0x80,
            2 => b[100] ^= 4,
            3 => {
                let n = b.len() - 20;
                b[n] ^= 1;
            }
            _ => b.truncate(b.len() - 1),
        }
        std::fs::write(path, b).unwrap();
        damaged += 1;
    }
    // A new process, as the next night's backup.
    let next = s.cached();
    let report = s.backup(&next);
    assert_eq!(report.changes.unchanged, 19);
    let reads = s.store.take();
    assert_eq!((reads.index, reads.snapshots), (1, 1), "{reads:?}");
    assert!(reads.ranges >= (damaged - 2) as u64, "{reads:?}");
    // Restoring both snapshots reads every tree there is; each damaged entry was read
    // again from storage and is whole.
    s.restores(&next, &first.snapshot, "out1");
    s.restores(&next, &last.snapshot, "out2");
    for (path, bytes) in &originals {
        assert!(
            &std::fs::read(path).unwrap() == bytes,
            "{} was not read again",
            path.display()
        );
    }
    // And the next backup reads nothing it had again.
    s.store.take();
    s.backup(&next);
    assert_warm(s.store.take(), &report);
}

#[test]
fn entries_of_objects_gone_from_storage_are_removed_and_never_used() {
    let s = setup(5, 4);
    let repo = s.cached();
    let first = s.backup(&repo);
    // Change a folder: its tree and the root's are new.
    std::fs::remove_dir_all(s.src.join("d001")).unwrap();
    std::fs::write(s.src.join("big.bin"), random_bytes(500_000, 9)).unwrap();
    let second = s.backup(&repo);
    s.backup(&repo);
    assert_eq!(
        s.cached_names(&repo, "index"),
        s.stored_names(&repo, "index")
    );
    let trees_before = s.cached_names(&repo, "trees");

    // Forget the first snapshot and prune: its index objects are replaced, its trees
    // and packs go.
    forget::forget(
        &repo,
        &Policy {
            keep_last: 2,
            ..Policy::default()
        },
        false,
    )
    .unwrap();
    let report = prune::prune(&repo, "h").unwrap();
    assert!(
        report.packs_deleted + report.packs_repacked > 0,
        "{report:?}"
    );
    let index = repo.load_index().unwrap();
    let repo_snapshots = repo.snapshots().unwrap();
    assert_eq!(repo_snapshots.len(), 2);
    assert_eq!(
        s.cached_names(&repo, "index"),
        s.stored_names(&repo, "index")
    );
    assert_eq!(
        s.cached_names(&repo, "snapshots"),
        s.stored_names(&repo, "snapshots")
    );
    assert!(!s
        .cached_names(&repo, "snapshots")
        .contains(&hex::encode(first.snapshot)));
    // Every tree entry left is of a pack the index lists.
    let packs: BTreeSet<String> = index.packs.iter().map(|(p, _)| hex::encode(p)).collect();
    let trees_after = s.cached_names(&repo, "trees");
    for t in &trees_after {
        assert!(packs.contains(t.split('-').next().unwrap()), "{t}");
    }
    assert!(trees_after.len() <= trees_before.len());
    s.restores(&repo, &second.snapshot, "out");

    // By hand: the index object of another source's backup deleted from storage (its
    // entry still cached), and another written. A new process must not use the entry.
    let other = s.work.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("x"), random_bytes(300_000, 77)).unwrap();
    let before: BTreeSet<String> = s.stored_names(&repo, "index");
    backup::backup(&repo, std::slice::from_ref(&other), &options()).unwrap();
    let gone = s
        .stored_names(&repo, "index")
        .difference(&before)
        .next()
        .unwrap()
        .clone();
    let entry = s.entries(&repo).join("index").join(&gone);
    let stale = std::fs::read(&entry).unwrap();
    s.store
        .delete(&ObjectKey::new(format!("index/{gone}")).unwrap())
        .unwrap();
    let fresh = s.cached();
    std::fs::write(s.src.join("new.txt"), b"new").unwrap();
    s.backup(&fresh);
    assert!(!entry.exists());
    assert_eq!(
        s.cached_names(&fresh, "index"),
        s.stored_names(&fresh, "index")
    );
    // Put the stale entry back, as a crashed sweep might leave it: still never used.
    std::fs::write(&entry, &stale).unwrap();
    let third = s.cached();
    let without = s.open().load_index().unwrap();
    let with = third.load_index().unwrap();
    assert_eq!(with.len(), without.len());
    assert_eq!(with.packs, without.packs);
    assert!(!entry.exists());
}

#[test]
fn a_lost_cache_is_rebuilt() {
    let s = setup(8, 5);
    let repo = s.cached();
    s.backup(&repo);
    s.backup(&repo);
    let dirs = ["index", "snapshots", "trees"];
    for d in dirs {
        assert!(!s.cached_names(&repo, d).is_empty(), "{d}");
    }
    std::fs::remove_dir_all(&s.cache).unwrap();
    s.store.take();
    // The same Repository and a new one both carry on, reading from storage.
    let last = s.backup(&repo);
    let reads = s.store.take();
    assert!(
        reads.index >= 1 && reads.snapshots >= 2 && reads.ranges > 0,
        "{reads:?}"
    );
    for d in dirs {
        assert!(!s.cached_names(&repo, d).is_empty(), "{d}");
    }
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(s.entries(&repo)).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o700);
    let next = s.cached();
    s.backup(&next);
    assert_warm(s.store.take(), &last);
    s.restores(&next, &last.snapshot, "out");
}
