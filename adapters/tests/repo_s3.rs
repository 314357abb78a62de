//! The deduplicated repository on S3, against two servers started by the tests on
//! loopback (s3s-fs, and moto's server): a tree round trips under a prefix and checks
//! with its data read; and two writers at once both land on a store that ignores
//! create-only puts (as some S3 implementations ignore `If-None-Match`), because no
//! correctness rests on conditional writes.

mod s3_support;
mod tree_support;

use std::io::Read;
use std::sync::Arc;

use coffer_adapters::repo::backup::{self, BackupOptions};
use coffer_adapters::repo::check::{self, ReadData};
use coffer_adapters::repo::keyfile::Unlock;
use coffer_adapters::repo::restore::{self, RestoreOptions};
use coffer_adapters::repo::Repository;
use coffer_adapters::storage::{ObjectKey, ObjectMeta, PutMode, S3Storage, Storage};
use coffer_adapters::Error;
use coffer_core::passphrase::Argon2Params;
use coffer_core::SecretKey;

fn kek() -> Unlock {
    Unlock::Kek(SecretKey::from_bytes([7; 32]))
}

fn options(host: &str) -> BackupOptions {
    BackupOptions {
        host: host.into(),
        program: "test".into(),
        ..BackupOptions::default()
    }
}

#[test]
fn a_tree_round_trips_through_s3s_fs_and_checks() {
    round_trip(&s3_support::Server::start());
}

#[test]
fn a_tree_round_trips_through_moto_and_checks() {
    round_trip(&s3_support::Server::start_moto());
}

#[test]
fn two_writers_at_once_land_on_moto_without_create_only() {
    two_writers(&s3_support::Server::start_moto());
}

#[test]
fn two_writers_at_once_land_on_s3s_fs_without_create_only() {
    two_writers(&s3_support::Server::start());
}

fn round_trip(server: &s3_support::Server) {
    let store: Arc<dyn Storage> = Arc::new(s3_support::store(&server.endpoint()));
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("data");
    tree_support::make_tree(&src);
    let repo = Repository::init(
        Arc::clone(&store),
        "tenant-1/repo",
        &kek(),
        Argon2Params::MIN,
    )
    .unwrap();
    let first = backup::backup(&repo, std::slice::from_ref(&src), &options("nas")).unwrap();
    let second = backup::backup(&repo, std::slice::from_ref(&src), &options("nas")).unwrap();
    assert_eq!(second.summary.files_read, 0, "{:?}", second.summary);
    let repo = Repository::open(Arc::clone(&store), "tenant-1/repo", &kek()).unwrap();
    let out = dir.path().join("out");
    restore::restore(&repo, &first.snapshot, &out, &RestoreOptions::default()).unwrap();
    assert_eq!(
        tree_support::describe(&src),
        tree_support::describe(&out.join(src.strip_prefix("/").unwrap()))
    );
    let report = check::check(&repo, ReadData::All).unwrap();
    assert!(report.ok(), "{:?}", report.errors);
}

/// A store that treats create-only puts as plain puts, as a server that ignores
/// `If-None-Match` does.
struct IgnoresCreateOnly(S3Storage);

impl Storage for IgnoresCreateOnly {
    fn put(&self, key: &ObjectKey, data: &mut dyn Read, _mode: PutMode) -> Result<u64, Error> {
        self.0.put(key, data, PutMode::Overwrite)
    }
    fn get(&self, key: &ObjectKey) -> Result<Box<dyn Read + Send>, Error> {
        self.0.get(key)
    }
    fn get_range(
        &self,
        key: &ObjectKey,
        start: u64,
        len: u64,
    ) -> Result<Box<dyn Read + Send>, Error> {
        self.0.get_range(key, start, len)
    }
    fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>, Error> {
        self.0.head(key)
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, Error> {
        self.0.list(prefix)
    }
    fn delete(&self, key: &ObjectKey) -> Result<(), Error> {
        self.0.delete(key)
    }
}

fn two_writers(server: &s3_support::Server) {
    let store: Arc<dyn Storage> =
        Arc::new(IgnoresCreateOnly(s3_support::store(&server.endpoint())));
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    tree_support::make_tree(&a);
    tree_support::make_tree(&b);
    std::fs::write(b.join("extra"), b"only in b").unwrap();
    Repository::init(Arc::clone(&store), "r", &kek(), Argon2Params::MIN).unwrap();
    let ids: Vec<[u8; 16]> = std::thread::scope(|s| {
        let handles: Vec<_> = [(a.clone(), "host-a"), (b.clone(), "host-b")]
            .into_iter()
            .map(|(path, host)| {
                let store = Arc::clone(&store);
                s.spawn(move || {
                    let repo = Repository::open(store, "r", &kek()).unwrap();
                    backup::backup(&repo, &[path], &options(host))
                        .unwrap()
                        .snapshot
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let repo = Repository::open(Arc::clone(&store), "r", &kek()).unwrap();
    assert_eq!(repo.snapshots().unwrap().len(), 2);
    for (id, src) in ids.iter().zip([&a, &b]) {
        let out = dir.path().join(hex::encode(id));
        restore::restore(&repo, id, &out, &RestoreOptions::default()).unwrap();
        assert_eq!(
            tree_support::describe(src),
            tree_support::describe(&out.join(src.strip_prefix("/").unwrap()))
        );
    }
    assert!(check::check(&repo, ReadData::All).unwrap().ok());
}
