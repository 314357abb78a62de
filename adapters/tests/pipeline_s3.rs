//! The backup pipeline over the S3 backend (s3s-fs on loopback, started by the test):
//! the archive goes up as a multipart upload, restores read it back whole and by range.

mod s3_support;
mod tree_support;

use coffer_adapters::pipeline::{self, BackupOptions, RestoreOptions};
use coffer_adapters::storage::{ObjectKey, Storage};
use coffer_core::{RustCrypto, SecretKey, Suite};

#[test]
fn a_tree_round_trips_through_s3() {
    let server = s3_support::Server::start();
    let store = s3_support::store(&server.endpoint());
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("data");
    tree_support::make_tree(&source);
    // Incompressible bytes past one 5 MiB part, so the archive needs a multipart upload.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let noise: Vec<u8> = (0..7 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(source.join("noise.bin"), noise).unwrap();
    let prefix = ObjectKey::new("tenant-1/agent-7").unwrap();
    let key = SecretKey::from_bytes([9; 32]);
    let options = BackupOptions {
        threads: 2,
        level: 3,
        suite: Suite::ChaCha20Poly1305,
        host: "nas".into(),
    };
    let summary = pipeline::backup(
        &RustCrypto,
        &store,
        &prefix,
        "first",
        &key,
        std::slice::from_ref(&source),
        &options,
    )
    .unwrap();
    // Larger than one 5 MiB part: the archive went up as a multipart upload.
    let archive = store.head(&summary.archive_key).unwrap().unwrap();
    assert!(archive.size > 5 << 20, "{}", archive.size);

    let whole = dir.path().join("whole");
    pipeline::restore(
        &RustCrypto,
        &store,
        &prefix,
        "first",
        &key,
        &whole,
        &RestoreOptions::default(),
    )
    .unwrap();
    assert_eq!(
        tree_support::describe(&whole.join("data")),
        tree_support::describe(&source)
    );

    let one = dir.path().join("one");
    let restored = pipeline::restore(
        &RustCrypto,
        &store,
        &prefix,
        "first",
        &key,
        &one,
        &RestoreOptions {
            paths: vec![b"data/a/b/c/large.bin".to_vec()],
        },
    )
    .unwrap();
    assert_eq!(restored.files, 1);
    assert_eq!(
        std::fs::read(one.join("data/a/b/c/large.bin")).unwrap(),
        std::fs::read(source.join("a/b/c/large.bin")).unwrap()
    );

    // Backups are write-once: the same name again is refused.
    let again = pipeline::backup(
        &RustCrypto,
        &store,
        &prefix,
        "first",
        &key,
        std::slice::from_ref(&source),
        &options,
    );
    assert!(
        matches!(again, Err(coffer_adapters::Error::AlreadyExists { .. })),
        "{again:?}"
    );
}
