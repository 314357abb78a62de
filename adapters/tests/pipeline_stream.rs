//! Stream backups (a command's output) and end-to-end verification over the local
//! backend: round trips byte for byte, a failing source leaves nothing, damage and wrong
//! keys are caught by restore and verify.

mod tree_support;

use std::io::{self, Read};

use coffer_adapters::pipeline::{self, BackupKind, BackupOptions};
use coffer_adapters::storage::{LocalStorage, ObjectKey, Storage};
use coffer_adapters::Error;
use coffer_core::{RustCrypto, SecretKey};

fn setup() -> (tempfile::TempDir, LocalStorage, ObjectKey, SecretKey) {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStorage::open(dir.path().join("store")).unwrap();
    (
        dir,
        store,
        ObjectKey::new("repo").unwrap(),
        SecretKey::from_bytes([9; 32]),
    )
}

fn options() -> BackupOptions {
    BackupOptions {
        threads: 2,
        ..BackupOptions::default()
    }
}

/// Pseudo-random bytes that compress a little: 5 MiB crosses frame boundaries.
fn data(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i % 3 == 0 {
                b'a'
            } else {
                x as u8
            }
        })
        .collect()
}

#[test]
fn stream_backup_round_trips_and_verifies() {
    let (_dir, store, prefix, key) = setup();
    let input = data(5 << 20);
    let summary = pipeline::backup_stream(
        &RustCrypto,
        &store,
        &prefix,
        "db.sql",
        &key,
        &mut &input[..],
        &options(),
    )
    .unwrap();
    assert_eq!(summary.manifest.content_bytes, input.len() as u64);
    assert!(summary.manifest.frames.len() >= 3);
    assert_eq!(
        pipeline::backup_kind(&store, &prefix, "db.sql").unwrap(),
        BackupKind::Stream
    );
    let mut out = Vec::new();
    let n =
        pipeline::restore_stream(&RustCrypto, &store, &prefix, "db.sql", &key, &mut out).unwrap();
    assert_eq!(n, input.len() as u64);
    assert!(out == input, "restored stream differs");
    let verified = pipeline::verify(&RustCrypto, &store, &prefix, "db.sql", &key).unwrap();
    assert_eq!((verified.kind, verified.bytes), (BackupKind::Stream, n));
    // The same name cannot be used twice, as a stream or as an archive.
    let again = pipeline::backup_stream(
        &RustCrypto,
        &store,
        &prefix,
        "db.sql",
        &key,
        &mut &b"x"[..],
        &options(),
    );
    assert!(
        matches!(again, Err(Error::AlreadyExists { .. })),
        "{again:?}"
    );
}

#[test]
fn empty_stream_round_trips() {
    let (_dir, store, prefix, key) = setup();
    pipeline::backup_stream(
        &RustCrypto,
        &store,
        &prefix,
        "empty",
        &key,
        &mut io::empty(),
        &options(),
    )
    .unwrap();
    let mut out = vec![1u8];
    out.clear();
    assert_eq!(
        pipeline::restore_stream(&RustCrypto, &store, &prefix, "empty", &key, &mut out).unwrap(),
        0
    );
    assert!(out.is_empty());
}

/// Yields some bytes, then fails, like a command that exits non-zero midway.
struct FailingSource(usize);

impl Read for FailingSource {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0 == 0 {
            return Err(io::Error::other("the command exited with status 2"));
        }
        let n = buf.len().min(self.0);
        buf[..n].fill(7);
        self.0 -= n;
        Ok(n)
    }
}

#[test]
fn a_failing_source_leaves_no_object() {
    let (_dir, store, prefix, key) = setup();
    let result = pipeline::backup_stream(
        &RustCrypto,
        &store,
        &prefix,
        "dump",
        &key,
        &mut FailingSource(3 << 20),
        &options(),
    );
    let err = result.unwrap_err().to_string();
    assert!(err.contains("exited with status 2"), "{err}");
    assert_eq!(store.list("").unwrap(), vec![]);
}

#[test]
fn damage_and_wrong_keys_are_caught_by_restore_and_verify() {
    let (dir, store, prefix, key) = setup();
    let input = data(100_000);
    pipeline::backup_stream(
        &RustCrypto,
        &store,
        &prefix,
        "s",
        &key,
        &mut &input[..],
        &options(),
    )
    .unwrap();
    let other = SecretKey::from_bytes([10; 32]);
    let err = pipeline::verify(&RustCrypto, &store, &prefix, "s", &other).unwrap_err();
    assert!(
        matches!(err, Error::Core(coffer_core::Error::WrongKey { .. })),
        "{err:?}"
    );
    let path = dir.path().join("store/repo/backups/s.stream");
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();
    let err = pipeline::verify(&RustCrypto, &store, &prefix, "s", &key).unwrap_err();
    assert!(
        matches!(err, Error::Core(coffer_core::Error::CorruptedChunk { .. })),
        "{err:?}"
    );
    bytes[middle] ^= 0x10;
    bytes.truncate(bytes.len() - 100);
    std::fs::write(&path, &bytes).unwrap();
    let mut out = Vec::new();
    let err =
        pipeline::restore_stream(&RustCrypto, &store, &prefix, "s", &key, &mut out).unwrap_err();
    assert!(matches!(err, Error::Core(_)), "{err:?}");
}

#[test]
fn verify_checks_a_tree_backup_and_catches_a_flipped_bit() {
    let (dir, store, prefix, key) = setup();
    let source = dir.path().join("tree");
    tree_support::make_tree(&source);
    pipeline::backup(
        &RustCrypto,
        &store,
        &prefix,
        "t",
        &key,
        std::slice::from_ref(&source),
        &options(),
    )
    .unwrap();
    let verified = pipeline::verify(&RustCrypto, &store, &prefix, "t", &key).unwrap();
    assert_eq!(verified.kind, BackupKind::Archive);
    assert_eq!(verified.entries, verified.manifest.entries.len() as u64);
    assert_eq!(verified.bytes, verified.manifest.content_bytes);
    let path = dir.path().join("store/repo/backups/t.archive");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 40;
    bytes[at] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let err = pipeline::verify(&RustCrypto, &store, &prefix, "t", &key).unwrap_err();
    assert!(matches!(err, Error::Core(_)), "{err:?}");
}

/// A store whose puts fail after `after` bytes, like a server that goes away
/// mid-upload.
struct GoneMidUpload {
    inner: LocalStorage,
    after: u64,
}

impl Storage for GoneMidUpload {
    fn put(
        &self,
        key: &ObjectKey,
        data: &mut dyn Read,
        _mode: coffer_adapters::storage::PutMode,
    ) -> Result<u64, Error> {
        io::copy(&mut data.take(self.after), &mut io::sink()).unwrap();
        Err(Error::Backend {
            operation: "UploadPart",
            key: key.to_string(),
            status: None,
            code: "ConnectionFailed".into(),
            message: "the server went away".into(),
            transient: true,
        })
    }
    fn get(&self, key: &ObjectKey) -> Result<Box<dyn Read + Send>, Error> {
        self.inner.get(key)
    }
    fn get_range(&self, key: &ObjectKey, s: u64, l: u64) -> Result<Box<dyn Read + Send>, Error> {
        self.inner.get_range(key, s, l)
    }
    fn head(&self, key: &ObjectKey) -> Result<Option<coffer_adapters::storage::ObjectMeta>, Error> {
        self.inner.head(key)
    }
    fn list(&self, prefix: &str) -> Result<Vec<coffer_adapters::storage::ObjectMeta>, Error> {
        self.inner.list(prefix)
    }
    fn delete(&self, key: &ObjectKey) -> Result<(), Error> {
        self.inner.delete(key)
    }
}

/// Runs `f` on a thread and fails the test if it does not return within a minute.
fn within_a_minute<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .expect("the backup hung after the store failed")
}

#[test]
fn a_store_failing_mid_upload_fails_the_backup_instead_of_hanging() {
    // Large enough that the archiver is blocked on a full pipeline when the put fails.
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("big.bin");
    std::fs::write(&source, data(48 << 20)).unwrap();
    let root = dir.path().join("store");
    let err = within_a_minute(move || {
        let store = GoneMidUpload {
            inner: LocalStorage::open(root).unwrap(),
            after: 1 << 20,
        };
        pipeline::backup(
            &RustCrypto,
            &store,
            &ObjectKey::new("repo").unwrap(),
            "b",
            &SecretKey::from_bytes([9; 32]),
            &[source],
            &options(),
        )
        .unwrap_err()
    });
    assert!(err.to_string().contains("the server went away"), "{err}");
    let err = within_a_minute(move || {
        let dir = tempfile::tempdir().unwrap();
        let store = GoneMidUpload {
            inner: LocalStorage::open(dir.path()).unwrap(),
            after: 1 << 20,
        };
        let input = data(48 << 20);
        pipeline::backup_stream(
            &RustCrypto,
            &store,
            &ObjectKey::new("repo").unwrap(),
            "s",
            &SecretKey::from_bytes([9; 32]),
            &mut &input[..],
            &options(),
        )
        .unwrap_err()
    });
    assert!(err.to_string().contains("the server went away"), "{err}");
}
