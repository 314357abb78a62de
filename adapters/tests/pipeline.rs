//! The backup pipeline end to end over the local backend: trees round-trip exactly,
//! one file restores from a few ranges, hostile archives are refused, damage and wrong
//! keys fail without leaving partial files.

mod tree_support;

use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use coffer_adapters::bridge::SealReader;
use coffer_adapters::pipeline::{self, BackupOptions, Entry, Manifest, RestoreOptions};
use coffer_adapters::storage::{LocalStorage, ObjectKey, ObjectMeta, PutMode, Storage};
use coffer_adapters::Error;
use coffer_core::record::EntryKind;
use coffer_core::{RustCrypto, SecretKey, Suite};
use sha2::{Digest, Sha256};
use tree_support::{describe, make_tree, walk};

struct Fixture {
    _dir: tempfile::TempDir,
    source: PathBuf,
    store: LocalStorage,
    prefix: ObjectKey,
    key: SecretKey,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("data");
    make_tree(&source);
    let store = LocalStorage::open(dir.path().join("store")).unwrap();
    Fixture {
        source,
        store,
        prefix: ObjectKey::new("tenant/repo").unwrap(),
        key: SecretKey::from_bytes([21; 32]),
        _dir: dir,
    }
}

fn options(threads: usize, suite: Suite) -> BackupOptions {
    BackupOptions {
        threads,
        level: 3,
        suite,
        host: "test-host".into(),
    }
}

#[test]
fn a_tree_round_trips_exactly() {
    let f = fixture();
    for (threads, suite) in [(1, Suite::Aes256Gcm), (2, Suite::ChaCha20Poly1305)] {
        let name = format!("b{threads}");
        let summary = pipeline::backup(
            &RustCrypto,
            &f.store,
            &f.prefix,
            &name,
            &f.key,
            std::slice::from_ref(&f.source),
            &options(threads, suite),
        )
        .unwrap();
        let m = &summary.manifest;
        assert_eq!(m.host, "test-host");
        assert_eq!(m.key_id, *f.key.id().as_bytes());
        assert!(
            m.frames.len() >= 5,
            "9 MiB in 2 MiB frames: {}",
            m.frames.len()
        );
        assert_eq!(m.content_bytes, (9 << 20) + 13 + 13 + 10);
        assert_eq!(
            pipeline::read_manifest(&RustCrypto, &f.store, &f.prefix, &name, &f.key).unwrap(),
            *m
        );

        let out = f._dir.path().join(format!("restored-{threads}"));
        let restored = pipeline::restore(
            &RustCrypto,
            &f.store,
            &f.prefix,
            &name,
            &f.key,
            &out,
            &RestoreOptions::default(),
        )
        .unwrap();
        assert_eq!(restored.files, 5);
        assert_eq!(restored.links, 2);
        assert_eq!(describe(&out.join("data")), describe(&f.source));
        assert_eq!(
            fs::metadata(out.join("data")).unwrap().mtime(),
            1_500_000_000
        );
    }
}

/// Counts the bytes a backend hands out.
struct Counting {
    inner: LocalStorage,
    read: AtomicU64,
}

impl Storage for Counting {
    fn put(&self, key: &ObjectKey, data: &mut dyn Read, mode: PutMode) -> Result<u64, Error> {
        self.inner.put(key, data, mode)
    }
    fn get(&self, key: &ObjectKey) -> Result<Box<dyn Read + Send>, Error> {
        let mut all = Vec::new();
        self.inner.get(key)?.read_to_end(&mut all).unwrap();
        self.read.fetch_add(all.len() as u64, Ordering::Relaxed);
        Ok(Box::new(std::io::Cursor::new(all)))
    }
    fn get_range(
        &self,
        key: &ObjectKey,
        start: u64,
        len: u64,
    ) -> Result<Box<dyn Read + Send>, Error> {
        let mut all = Vec::new();
        self.inner
            .get_range(key, start, len)?
            .read_to_end(&mut all)
            .unwrap();
        self.read.fetch_add(all.len() as u64, Ordering::Relaxed);
        Ok(Box::new(std::io::Cursor::new(all)))
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

#[test]
fn one_file_restores_from_the_ranges_that_hold_it() {
    let f = fixture();
    let summary = pipeline::backup(
        &RustCrypto,
        &f.store,
        &f.prefix,
        "b",
        &f.key,
        std::slice::from_ref(&f.source),
        &options(2, Suite::Aes256Gcm),
    )
    .unwrap();
    let archive_size = f.store.head(&summary.archive_key).unwrap().unwrap().size;
    let counting = Counting {
        inner: f.store.clone(),
        read: AtomicU64::new(0),
    };
    let out = f._dir.path().join("one");
    let restored = pipeline::restore(
        &RustCrypto,
        &counting,
        &f.prefix,
        "b",
        &f.key,
        &out,
        &RestoreOptions {
            paths: vec![b"data/a/b/small.txt".to_vec()],
        },
    )
    .unwrap();
    assert_eq!(restored.files, 1);
    assert_eq!(
        fs::read(out.join("data/a/b/small.txt")).unwrap(),
        b"hello coffer\n"
    );
    let manifest_size = f.store.head(&summary.manifest_key).unwrap().unwrap().size;
    let read = counting.read.load(Ordering::Relaxed) - manifest_size;
    assert!(
        read <= 3 << 20,
        "read {read} bytes of a {archive_size}-byte archive"
    );
    assert!(archive_size > 4 << 20);
}

/// Seals a hand-made tar stream and manifest as backup `name`, as a hostile writer
/// holding the key could.
fn store_forged(f: &Fixture, name: &str, tar_bytes: Vec<u8>, entries: Vec<Entry>) {
    let compressed = zstd::bulk::compress(&tar_bytes, 3).unwrap();
    let (archive_key, manifest_key) = pipeline::object_keys(&f.prefix, name).unwrap();
    let ctx = format!("coffer/archive\0{name}");
    let mut sealer = SealReader::new(
        &RustCrypto,
        Suite::Aes256Gcm,
        &f.key,
        ctx.as_bytes(),
        &compressed[..],
        1,
    )
    .unwrap();
    f.store
        .put(&archive_key, &mut sealer, PutMode::CreateOnly)
        .unwrap();
    let manifest = Manifest {
        host: "evil".into(),
        created: 0,
        key_id: *f.key.id().as_bytes(),
        content_bytes: 0,
        archive_len: tar_bytes.len() as u64,
        compressed_len: compressed.len() as u64,
        frames: vec![coffer_core::record::FrameRecord {
            archive_offset: 0,
            compressed_offset: 0,
        }],
        entries,
    };
    let bytes = manifest.encode();
    let ctx = format!("coffer/manifest\0{name}");
    let mut sealer = SealReader::new(
        &RustCrypto,
        Suite::Aes256Gcm,
        &f.key,
        ctx.as_bytes(),
        &bytes[..],
        1,
    )
    .unwrap();
    f.store
        .put(&manifest_key, &mut sealer, PutMode::CreateOnly)
        .unwrap();
}

fn raw_entry(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &[u8],
    kind: tar::EntryType,
    link: &[u8],
    data: &[u8],
) {
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path);
    h.as_gnu_mut().unwrap().linkname[..link.len()].copy_from_slice(link);
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    builder.append(&h, data).unwrap();
}

fn manifest_entry(path: &[u8], kind: EntryKind, link: &[u8], data: &[u8]) -> Entry {
    Entry {
        path: path.to_vec(),
        kind,
        mode: 0o644,
        mtime: 0,
        size: data.len() as u64,
        sha256: Sha256::digest(data).into(),
        link_target: link.to_vec(),
        archive_offset: 0,
    }
}

#[test]
fn hostile_archive_paths_are_refused() {
    let f = fixture();
    let outside = f._dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    type Item<'a> = (&'a [u8], EntryKind, &'a [u8]);
    let cases: Vec<(&str, Vec<Item>)> = vec![
        ("dotdot", vec![(b"../escaped", EntryKind::File, b"")]),
        ("absolute", vec![(b"/tmp/escaped", EntryKind::File, b"")]),
        (
            "through-link",
            vec![
                (b"link", EntryKind::Symlink, outside.as_os_str().as_bytes()),
                (b"link/escaped", EntryKind::File, b""),
            ],
        ),
    ];
    for (name, items) in cases {
        let mut builder = tar::Builder::new(Vec::new());
        let mut entries = Vec::new();
        for (path, kind, link) in &items {
            let t = if *kind == EntryKind::Symlink {
                tar::EntryType::Symlink
            } else {
                tar::EntryType::Regular
            };
            raw_entry(&mut builder, path, t, link, b"x");
            let data: &[u8] = if *kind == EntryKind::Symlink {
                b""
            } else {
                b"x"
            };
            entries.push(manifest_entry(path, *kind, link, data));
        }
        let tar_bytes = builder.into_inner().unwrap();
        store_forged(&f, name, tar_bytes, entries);
        let target = f._dir.path().join(format!("target-{name}"));
        match pipeline::restore(
            &RustCrypto,
            &f.store,
            &f.prefix,
            name,
            &f.key,
            &target,
            &RestoreOptions::default(),
        ) {
            Err(Error::HostileArchivePath { .. }) => {}
            other => panic!("{name}: {other:?}"),
        }
        assert!(!outside.join("escaped").exists(), "{name}");
        assert!(!f._dir.path().join("escaped").exists(), "{name}");
    }
}

#[test]
fn wrong_key_damage_and_unreadable_sources_fail_cleanly() {
    let f = fixture();
    // 3 MiB that zstd cannot shrink, sorted last: the archive outgrows the opener's
    // first 2 MiB batch, so the files before it verify before the damage near the end.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..3 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    fs::write(f.source.join("zz-noise.bin"), noise).unwrap();
    let summary = pipeline::backup(
        &RustCrypto,
        &f.store,
        &f.prefix,
        "b",
        &f.key,
        std::slice::from_ref(&f.source),
        &options(2, Suite::Aes256Gcm),
    )
    .unwrap();
    let other = SecretKey::from_bytes([22; 32]);
    let target = f._dir.path().join("wrong-key");
    match pipeline::restore(
        &RustCrypto,
        &f.store,
        &f.prefix,
        "b",
        &other,
        &target,
        &RestoreOptions::default(),
    ) {
        Err(Error::Core(coffer_core::Error::WrongKey { expected })) => {
            assert_eq!(expected, f.key.id())
        }
        other => panic!("{other:?}"),
    }

    // Flip a byte late in the archive: restore fails, and what it wrote before is only
    // whole, verified files: no temporaries, nothing torn.
    let path = f.store.root().join(summary.archive_key.as_str());
    let mut bytes = fs::read(&path).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 1;
    fs::write(&path, &bytes).unwrap();
    let target = f._dir.path().join("damaged");
    let err = pipeline::restore(
        &RustCrypto,
        &f.store,
        &f.prefix,
        "b",
        &f.key,
        &target,
        &RestoreOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::Core(coffer_core::Error::CorruptedChunk { .. })),
        "{err:?}"
    );
    let mut all = Vec::new();
    walk(&target, &mut all);
    // The files verified before the damage (all but those in the last chunk) stay.
    let whole = all
        .iter()
        .filter(|p| fs::symlink_metadata(p).unwrap().is_file())
        .count();
    assert!(whole > 0, "nothing restored before the damage");
    for p in all {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.starts_with(".coffer-restore-"),
            "temporary left: {}",
            p.display()
        );
        if fs::symlink_metadata(&p).unwrap().is_file() {
            let rel = p.strip_prefix(&target).unwrap();
            assert_eq!(
                fs::read(&p).unwrap(),
                fs::read(f.source.parent().unwrap().join(rel)).unwrap()
            );
        }
    }

    // A source that cannot be read fails the backup and stores nothing.
    let locked = f._dir.path().join("locked");
    fs::create_dir(&locked).unwrap();
    fs::write(locked.join("secret"), b"x").unwrap();
    fs::set_permissions(locked.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
    if fs::read(locked.join("secret")).is_err() {
        let err = pipeline::backup(
            &RustCrypto,
            &f.store,
            &f.prefix,
            "c",
            &f.key,
            std::slice::from_ref(&locked),
            &options(2, Suite::Aes256Gcm),
        )
        .unwrap_err();
        assert!(err.to_string().contains("secret"), "{err}");
        assert!(f.store.list("tenant/repo/backups/c.").unwrap().is_empty());
    }
    // A missing source also fails, naming it.
    let err = pipeline::backup(
        &RustCrypto,
        &f.store,
        &f.prefix,
        "d",
        &f.key,
        &[f._dir.path().join("nope")],
        &options(1, Suite::Aes256Gcm),
    )
    .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
    assert!(f.store.list("tenant/repo/backups/d.").unwrap().is_empty());
}
