//! The deduplicated repository end to end on a local folder: back up a tree with every
//! kind of entry, restore it identical; an unchanged tree is not read again; a changed
//! file is; a write-only key adds backups (with its cache) but opens nothing; two
//! writers at once both land; damage is refused, never restored.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

mod repo_support;

use repo_support::{kek, random_bytes};

use coffer_adapters::repo::backup::{self, BackupOptions};
use coffer_adapters::repo::keys::Access;
use coffer_adapters::repo::restore::{self, RestoreOptions};
use coffer_adapters::repo::Repository;
use coffer_adapters::storage::{LocalStorage, Storage};
use coffer_adapters::Error;
use coffer_core::passphrase::Argon2Params;

/// A tree with a big file (several chunks), small files, an empty file, a sparse file,
/// a symlink, a FIFO, hard links, an empty folder, nested folders.
fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("docs/deep/er")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::write(root.join("big.bin"), random_bytes(3_000_000, 7)).unwrap();
    std::fs::write(root.join("docs/a.txt"), b"alpha\n").unwrap();
    std::fs::write(root.join("docs/deep/er/b.txt"), b"beta\n".repeat(1000)).unwrap();
    std::fs::write(root.join("zero-length"), b"").unwrap();
    let sparse = std::fs::File::create(root.join("sparse.img")).unwrap();
    sparse.set_len(8 << 20).unwrap();
    drop(sparse);
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(root.join("sparse.img"))
            .unwrap();
        f.seek(SeekFrom::Start(5 << 20)).unwrap();
        f.write_all(&random_bytes(1000, 3)).unwrap();
    }
    std::os::unix::fs::symlink("docs/a.txt", root.join("link")).unwrap();
    std::os::unix::fs::symlink("/nowhere/at/all", root.join("dangling")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    std::fs::write(root.join("docs/linked"), b"one inode, two names").unwrap();
    std::fs::hard_link(root.join("docs/linked"), root.join("linked-too")).unwrap();
    std::fs::set_permissions(
        root.join("docs/a.txt"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    filetime::set_file_mtime(
        root.join("docs/a.txt"),
        filetime::FileTime::from_unix_time(1_700_000_000, 123_456_789),
    )
    .unwrap();
}

/// Every entry under `root`: relative path, kind, mode, size, mtime, content or target.
fn describe(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let ft = m.file_type();
            let detail = if ft.is_symlink() {
                format!("-> {}", std::fs::read_link(&p).unwrap().display())
            } else if ft.is_file() {
                let data = std::fs::read(&p).unwrap();
                format!("{} bytes, sha {}", data.len(), hex(&data))
            } else {
                String::new()
            };
            if ft.is_dir() {
                stack.push(p.clone());
            }
            let mtime = if ft.is_dir() { 0 } else { m.mtime() };
            let nsec = if ft.is_dir() { 0 } else { m.mtime_nsec() };
            out.push(format!(
                "{rel} {:o} {mtime}.{nsec} nlink {} {detail}",
                m.mode(),
                if ft.is_file() { m.nlink() } else { 0 }
            ));
        }
    }
    out.sort();
    out
}

fn hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn options() -> BackupOptions {
    BackupOptions {
        host: "test-host".into(),
        program: "coffer test".into(),
        ..BackupOptions::default()
    }
}

#[test]
fn a_tree_round_trips_and_unchanged_files_are_not_read_again() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    make_tree(&src);
    let store: Arc<dyn Storage> = Arc::new(LocalStorage::open(work.path().join("repo")).unwrap());
    let repo = Repository::init(Arc::clone(&store), "", &kek(1), Argon2Params::MIN).unwrap();

    let first = backup::backup(&repo, std::slice::from_ref(&src), &options()).unwrap();
    assert!(first.skipped.is_empty(), "{:?}", first.skipped);
    let s = &first.summary;
    assert_eq!(s.files, 7, "{s:?}");
    assert!(s.new_blobs >= 6, "{s:?}");
    assert_eq!(s.files_read, 7);

    let out = work.path().join("out");
    let report =
        restore::restore(&repo, &first.snapshot, &out, &RestoreOptions::default()).unwrap();
    let restored = out.join(src.strip_prefix("/").unwrap());
    assert_eq!(describe(&src), describe(&restored));
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    // The sparse file came back sparse.
    let m = std::fs::metadata(restored.join("sparse.img")).unwrap();
    assert!(
        m.blocks() * 512 < m.len() / 2,
        "{} blocks for {} bytes",
        m.blocks(),
        m.len()
    );

    // An unchanged tree: no file is read, no data blob is stored.
    let second = backup::backup(&repo, std::slice::from_ref(&src), &options()).unwrap();
    assert_eq!(second.summary.files_read, 0, "{:?}", second.summary);
    assert_eq!(second.summary.bytes_read, 0);
    assert_eq!(second.summary.new_blobs, 0);

    // One changed file is read again, and only its changed chunk is new.
    std::fs::write(src.join("docs/a.txt"), b"alpha, changed\n").unwrap();
    let third = backup::backup(&repo, std::slice::from_ref(&src), &options()).unwrap();
    assert_eq!(third.summary.files_read, 1, "{:?}", third.summary);
    assert_eq!(third.summary.new_blobs, 1);

    // Reopened with its key, the repository lists three snapshots.
    let reopened = Repository::open(Arc::clone(&store), "", &kek(1)).unwrap();
    assert_eq!(reopened.snapshots().unwrap().len(), 3);
    assert!(matches!(
        Repository::open(store, "", &kek(2)),
        Err(Error::Core(_))
    ));
}

#[test]
fn a_write_only_key_adds_backups_it_cannot_read() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    make_tree(&src);
    let store: Arc<dyn Storage> = Arc::new(LocalStorage::open(work.path().join("repo")).unwrap());
    let full = Repository::init(Arc::clone(&store), "", &kek(1), Argon2Params::MIN).unwrap();
    full.add_key(Access::WriteOnly, &kek(9), Argon2Params::MIN)
        .unwrap();
    let writer = Repository::open(Arc::clone(&store), "", &kek(9)).unwrap();
    assert_eq!(writer.keys().access(), Access::WriteOnly);

    let cache = work.path().join("cache");
    let opts = BackupOptions {
        cache_dir: Some(cache.clone()),
        ..options()
    };
    let first = backup::backup(&writer, std::slice::from_ref(&src), &opts).unwrap();
    assert_eq!(first.summary.files_read, 7);
    // It cannot list, read or restore what it wrote.
    assert!(matches!(writer.snapshots(), Err(Error::WriteOnlyKey)));
    assert!(matches!(
        restore::restore(
            &writer,
            &first.snapshot,
            &work.path().join("x"),
            &RestoreOptions::default()
        ),
        Err(Error::WriteOnlyKey)
    ));
    // Its cache lets the next backup skip unchanged files, and it deduplicates.
    let second = backup::backup(&writer, std::slice::from_ref(&src), &opts).unwrap();
    assert_eq!(second.summary.files_read, 0, "{:?}", second.summary);
    assert_eq!(second.summary.new_blobs, 0);
    // Without its cache it reads everything again, and still stores nothing new.
    std::fs::remove_dir_all(&cache).unwrap();
    let third = backup::backup(&writer, std::slice::from_ref(&src), &opts).unwrap();
    assert_eq!(third.summary.files_read, 7);
    assert_eq!(third.summary.new_blobs, 0);

    // The full key restores what the write-only key wrote.
    let out = work.path().join("out");
    restore::restore(&full, &second.snapshot, &out, &RestoreOptions::default()).unwrap();
    assert_eq!(
        describe(&src),
        describe(&out.join(src.strip_prefix("/").unwrap()))
    );
    assert_eq!(full.snapshots().unwrap().len(), 3);
}

#[test]
fn two_writers_at_once_both_land() {
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    make_tree(&a);
    std::fs::create_dir_all(&b).unwrap();
    std::fs::write(b.join("other.bin"), random_bytes(2_000_000, 99)).unwrap();
    std::fs::write(b.join("shared.bin"), random_bytes(3_000_000, 7)).unwrap();
    let store: Arc<dyn Storage> = Arc::new(LocalStorage::open(work.path().join("repo")).unwrap());
    Repository::init(Arc::clone(&store), "", &kek(1), Argon2Params::MIN).unwrap();
    let ids: Vec<[u8; 16]> = std::thread::scope(|s| {
        let handles: Vec<_> = [a.clone(), b.clone()]
            .into_iter()
            .map(|path| {
                let store = Arc::clone(&store);
                s.spawn(move || {
                    let repo = Repository::open(store, "", &kek(1)).unwrap();
                    backup::backup(&repo, &[path], &options()).unwrap().snapshot
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let repo = Repository::open(Arc::clone(&store), "", &kek(1)).unwrap();
    assert_eq!(repo.snapshots().unwrap().len(), 2);
    for (id, src) in ids.iter().zip([&a, &b]) {
        let out = work.path().join(format!("out-{}", hex::encode(id)));
        restore::restore(&repo, id, &out, &RestoreOptions::default()).unwrap();
        assert_eq!(
            describe(src),
            describe(&out.join(src.strip_prefix("/").unwrap()))
        );
    }
}

#[test]
fn a_damaged_pack_is_refused_and_nothing_damaged_is_restored() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), random_bytes(1_500_000, 5)).unwrap();
    let store: Arc<dyn Storage> = Arc::new(LocalStorage::open(work.path().join("repo")).unwrap());
    let repo = Repository::init(Arc::clone(&store), "", &kek(1), Argon2Params::MIN).unwrap();
    let snap = backup::backup(&repo, std::slice::from_ref(&src), &options())
        .unwrap()
        .snapshot;
    // Flip one byte in the middle of every pack.
    for (_, name) in repo.list_ids("data").unwrap_or_default() {
        let _ = name;
    }
    let mut packs = Vec::new();
    let mut stack = vec![work.path().join("repo/data")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                packs.push(p);
            }
        }
    }
    assert!(!packs.is_empty());
    for p in &packs {
        let mut b = std::fs::read(p).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0x40;
        std::fs::write(p, b).unwrap();
    }
    let out = work.path().join("out");
    let err = restore::restore(&repo, &snap, &out, &RestoreOptions::default()).unwrap_err();
    assert!(
        matches!(err, Error::Core(_) | Error::RepoFormat { .. }),
        "{err:?}"
    );
    // No file of the damaged content is in place.
    let restored = out.join(src.strip_prefix("/").unwrap()).join("f");
    assert!(!restored.exists());
}

#[test]
fn check_finds_missing_damaged_and_unindexed_objects_and_rebuild_repairs_the_index() {
    use coffer_adapters::repo::check::{self, ReadData};
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    make_tree(&src);
    let store: Arc<dyn Storage> = Arc::new(LocalStorage::open(work.path().join("repo")).unwrap());
    let repo = Repository::init(Arc::clone(&store), "", &kek(1), Argon2Params::MIN).unwrap();
    let snap = backup::backup(&repo, std::slice::from_ref(&src), &options())
        .unwrap()
        .snapshot;

    let report = check::check(&repo, ReadData::All).unwrap();
    assert!(report.ok(), "{:?}", report.errors);
    assert_eq!(report.snapshots, 1);
    assert!(report.trees > 3 && report.data_blobs > 5 && report.packs_read == report.packs);

    // Damaged index: reported; rebuilt from the packs, and the snapshot restores.
    let index_dir = work.path().join("repo/index");
    let index_file = std::fs::read_dir(&index_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut b = std::fs::read(&index_file).unwrap();
    let last = b.len() - 3;
    b[last] ^= 1;
    std::fs::write(&index_file, &b).unwrap();
    let report = check::check(&repo, ReadData::None).unwrap();
    assert!(!report.ok());
    assert!(!report.unindexed_packs.is_empty());
    let (rebuilt, problems) = check::rebuild_index(&repo).unwrap();
    assert!(problems.is_empty(), "{problems:?}");
    assert!(!rebuilt.packs.is_empty());
    let report = check::check(&repo, ReadData::All).unwrap();
    assert!(report.ok(), "{:?}", report.errors);
    let out = work.path().join("out");
    restore::restore(&repo, &snap, &out, &RestoreOptions::default()).unwrap();
    assert_eq!(
        describe(&src),
        describe(&out.join(src.strip_prefix("/").unwrap()))
    );

    // A damaged pack is found by reading data, not by the structure check; a missing
    // one by both.
    let mut packs = Vec::new();
    let mut stack = vec![work.path().join("repo/data")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p)
            } else {
                packs.push(p)
            }
        }
    }
    packs.sort();
    let mut b = std::fs::read(&packs[0]).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 1;
    std::fs::write(&packs[0], &b).unwrap();
    // Reading data names the damaged pack (the structure check notices it too when
    // the damage falls on a tree).
    let damaged = packs[0].file_name().unwrap().to_string_lossy().into_owned();
    let report = check::check(&repo, ReadData::All).unwrap();
    assert!(
        report.errors.iter().any(|e| e.contains(&damaged)),
        "{damaged}: {:?}",
        report.errors
    );
    std::fs::remove_file(&packs[1]).unwrap();
    let report = check::check(&repo, ReadData::None).unwrap();
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.contains("indexed but missing")),
        "{:?}",
        report.errors
    );
}
