//! The SQLite catalogue: connection settings, migrations (idempotent, upgrade from the
//! previous version, refusal of a newer one), foreign keys, unique and check
//! constraints, envelopes and atomic rewrapping, backups and pruning, and a reader
//! beside a writer in WAL mode. Every test uses a real file so WAL applies.

use std::path::{Path, PathBuf};

use coffer_adapters::catalogue::rusqlite::{self, ErrorCode};
use coffer_adapters::catalogue::{
    migrate, Backup, BackupId, BackupStatus, BackupSummary, Catalogue, EnvelopeKind, Migration,
    NewBackup, NewRepository, Repository, RepositoryId, StoredEnvelope, ADAPTERS_COMPONENT,
    ADAPTERS_MIGRATIONS, APPLICATION_ID,
};
use coffer_adapters::storage::ObjectKey;
use coffer_adapters::Error;
use coffer_core::envelope::{rewrap_key, unwrap_key, wrap_key, Purpose, KEY_ENVELOPE_LEN};
use coffer_core::passphrase::{
    wrap_with_passphrase, Argon2Block, Argon2Params, PASSPHRASE_ENVELOPE_LEN,
};
use coffer_core::{KeyId, RustCrypto, SecretKey, Suite};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

const CONTEXT: &[u8] = b"tenant/repository";

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("catalogue.sqlite")
}

fn open(path: &Path) -> Catalogue {
    Catalogue::open(path).unwrap()
}

fn key(byte: u8) -> SecretKey {
    SecretKey::from_bytes([byte; 32])
}

fn wrap(
    kek: &SecretKey,
    key: &SecretKey,
    purpose: Purpose,
    version: u32,
) -> [u8; KEY_ENVELOPE_LEN] {
    let mut rng = ChaCha20Rng::seed_from_u64(u64::from(version));
    wrap_key(
        &RustCrypto,
        Suite::Aes256Gcm,
        kek,
        key,
        purpose,
        version,
        CONTEXT,
        &mut rng,
    )
    .unwrap()
}

fn create_repo(catalogue: &mut Catalogue, name: &str, kek: &SecretKey) -> Repository {
    let repo_key = key(0x11);
    let envelope = wrap(kek, &repo_key, Purpose::RepositoryKey, 1);
    catalogue
        .create_repository(
            &NewRepository {
                name,
                location: "local:/srv/backups",
                suite: Suite::Aes256Gcm,
                key_id: repo_key.id(),
            },
            &[&envelope],
        )
        .unwrap()
}

fn summary(n: u64) -> BackupSummary {
    BackupSummary {
        entry_count: n,
        content_bytes: 1000 * n,
        archive_len: 1024 * n,
        compressed_len: 500 * n,
        stored_bytes: 600 * n,
    }
}

fn object(repo: &Repository, name: &str, what: &str) -> ObjectKey {
    ObjectKey::new(format!("{}/{name}/{what}", repo.name)).unwrap()
}

fn new_backup<'a>(
    repo: &Repository,
    name: &'a str,
    archive: &'a ObjectKey,
    manifest: &'a ObjectKey,
    created_at: i64,
) -> NewBackup<'a> {
    NewBackup {
        repository_id: repo.id,
        name,
        archive_key: archive,
        manifest_key: manifest,
        host: "nas",
        created_at,
        key_id: repo.key_id,
    }
}

fn record(catalogue: &mut Catalogue, repo: &Repository, name: &str, created_at: i64) -> Backup {
    let archive = object(repo, name, "archive");
    let manifest = object(repo, name, "manifest");
    catalogue
        .record_backup(
            &new_backup(repo, name, &archive, &manifest, created_at),
            created_at + 60,
            &summary(3),
        )
        .unwrap()
}

fn names(backups: &[Backup]) -> Vec<&str> {
    backups.iter().map(|b| b.name.as_str()).collect()
}

fn version(catalogue: &Catalogue, component: &str) -> Option<u32> {
    coffer_adapters::catalogue::migration::current_version(catalogue.connection(), component)
        .unwrap()
}

fn is_constraint(error: &Error) -> bool {
    matches!(error, Error::CatalogueConstraint { .. })
}

// --- connection and migrations ---

#[test]
fn opening_sets_wal_full_sync_foreign_keys_busy_timeout_and_the_application_id() {
    let dir = tempfile::tempdir().unwrap();
    let catalogue = open(&db_path(&dir));
    let conn = catalogue.connection();
    let pragma = |name: &str| -> String {
        conn.query_row(&format!("PRAGMA {name}"), [], |row| {
            row.get::<_, rusqlite::types::Value>(0)
        })
        .map(|v| format!("{v:?}"))
        .unwrap()
    };
    assert_eq!(pragma("journal_mode"), r#"Text("wal")"#);
    assert_eq!(pragma("foreign_keys"), "Integer(1)");
    assert_eq!(pragma("synchronous"), "Integer(2)", "FULL");
    assert_eq!(pragma("busy_timeout"), "Integer(5000)");
    assert_eq!(
        pragma("application_id"),
        format!("Integer({APPLICATION_ID})")
    );
    assert_eq!(version(&catalogue, ADAPTERS_COMPONENT), Some(1));
    assert_eq!(ADAPTERS_MIGRATIONS.len(), 1);
}

#[test]
fn in_memory_catalogues_work_too() {
    let mut catalogue = Catalogue::open_in_memory().unwrap();
    let repo = create_repo(&mut catalogue, "mem", &key(1));
    assert_eq!(catalogue.repositories().unwrap(), vec![repo]);
}

#[test]
fn processes_creating_one_catalogue_at_once_all_succeed() {
    for round in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let path = db_path(&dir);
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(4));
        let openers: Vec<_> = (0..4)
            .map(|i| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let mut catalogue = Catalogue::open(&path)
                        .unwrap_or_else(|e| panic!("round {round}, opener {i}: {e}"));
                    create_repo(&mut catalogue, &format!("r{i}"), &key(1));
                })
            })
            .collect();
        for opener in openers {
            opener.join().unwrap();
        }
        let catalogue = open(&path);
        assert_eq!(catalogue.repositories().unwrap().len(), 4);
        assert_eq!(version(&catalogue, ADAPTERS_COMPONENT), Some(1));
    }
}

#[test]
fn reopening_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let repo = create_repo(&mut open(&path), "photos", &key(1));
    for _ in 0..3 {
        let catalogue = open(&path);
        assert_eq!(version(&catalogue, ADAPTERS_COMPONENT), Some(1));
        assert_eq!(catalogue.repositories().unwrap(), vec![repo.clone()]);
        let rows: i64 = catalogue
            .connection()
            .query_row("SELECT count(*) FROM schema_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 1);
    }
}

#[test]
fn a_newer_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let repo = create_repo(&mut open(&path), "photos", &key(1));
    {
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute(
            "UPDATE schema_version SET version = 2 WHERE component = 'adapters'",
            [],
        )
        .unwrap();
    }
    let error = Catalogue::open(&path).unwrap_err();
    assert!(
        matches!(
            &error,
            Error::CatalogueTooNew { component, found: 2, supported: 1 } if component == "adapters"
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("upgrade Coffer"), "{error}");
    let raw = rusqlite::Connection::open(&path).unwrap();
    let (version, name): (u32, String) = raw
        .query_row(
            "SELECT version, (SELECT name FROM repositories WHERE id = ?1) FROM schema_version",
            [repo.id.0],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!((version, name.as_str()), (2, "photos"));
}

const TEST_V1: &[Migration] = &[Migration {
    description: "notes",
    sql: "CREATE TABLE test_notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL) STRICT;",
}];

const TEST_V2: &[Migration] = &[
    TEST_V1[0],
    Migration {
        description: "note authors",
        sql: "ALTER TABLE test_notes ADD COLUMN author TEXT NOT NULL DEFAULT 'unknown';
              CREATE INDEX test_notes_by_author ON test_notes (author);",
    },
];

#[test]
fn a_component_upgrades_from_the_previous_version_in_its_own_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    {
        let mut catalogue = open(&path);
        assert_eq!(catalogue.migrate("test", TEST_V1).unwrap(), 1);
        catalogue
            .connection()
            .execute("INSERT INTO test_notes (body) VALUES ('kept')", [])
            .unwrap();
    }
    let mut catalogue = open(&path);
    assert_eq!(catalogue.migrate("test", TEST_V1).unwrap(), 1, "idempotent");
    assert_eq!(catalogue.migrate("test", TEST_V2).unwrap(), 2);
    assert_eq!(catalogue.migrate("test", TEST_V2).unwrap(), 2, "idempotent");
    let (body, author): (String, String) = catalogue
        .connection()
        .query_row("SELECT body, author FROM test_notes", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .unwrap();
    assert_eq!((body.as_str(), author.as_str()), ("kept", "unknown"));
    assert_eq!(version(&catalogue, "test"), Some(2));
    assert_eq!(version(&catalogue, ADAPTERS_COMPONENT), Some(1));
    // The old code refuses the upgraded component, and only that one.
    let error = catalogue.migrate("test", TEST_V1).unwrap_err();
    assert!(
        matches!(
            error,
            Error::CatalogueTooNew {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{error:?}"
    );
    drop(catalogue);
    open(&path);
}

#[test]
fn a_failing_step_rolls_back_alone_and_names_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mut catalogue = open(&db_path(&dir));
    let broken = &[
        TEST_V1[0],
        Migration {
            description: "broken step",
            sql: "CREATE TABLE half_done (x INTEGER) STRICT; INSERT INTO no_such_table VALUES (1);",
        },
    ];
    let error = catalogue.migrate("test", broken).unwrap_err();
    assert!(matches!(error, Error::Catalogue { .. }), "{error:?}");
    assert!(
        error.to_string().contains("version 2 (broken step)"),
        "{error}"
    );
    assert_eq!(version(&catalogue, "test"), Some(1));
    let half_done: i64 = catalogue
        .connection()
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE name = 'half_done'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(half_done, 0);
}

#[test]
fn a_step_leaving_dangling_foreign_keys_is_rolled_back() {
    let mut catalogue = Catalogue::open_in_memory().unwrap();
    let dangling = &[Migration {
        description: "dangling",
        sql: "PRAGMA defer_foreign_keys = ON;
              INSERT INTO backups (repository_id, name, archive_key, manifest_key, host,
                                   created_at, status, key_id)
              VALUES (42, 'x', 'a', 'm', 'h', 0, 'running', '00000000000000000000000000000000');",
    }];
    // Deferred, so only the runner's own check after the step can catch it.
    let error = migrate(catalogue.connection_mut(), "test", dangling).unwrap_err();
    assert!(
        matches!(&error, Error::CatalogueInvalid { reason, .. } if reason.contains("backups")),
        "{error:?}"
    );
    assert_eq!(version(&catalogue, "test"), None);
    assert!(catalogue.backups(RepositoryId(42)).unwrap().is_empty());
}

#[test]
fn empty_component_names_are_refused() {
    let mut catalogue = Catalogue::open_in_memory().unwrap();
    let error = catalogue.migrate("", TEST_V1).unwrap_err();
    assert!(matches!(error, Error::CatalogueMisuse { .. }), "{error:?}");
}

#[test]
fn another_applications_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    {
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute_batch("CREATE TABLE bookmarks (url TEXT);")
            .unwrap();
    }
    let error = Catalogue::open(&path).unwrap_err();
    assert!(
        matches!(&error, Error::CatalogueInvalid { reason, .. } if reason.contains("not a Coffer catalogue")),
        "{error:?}"
    );
    let raw = rusqlite::Connection::open(&path).unwrap();
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
    let tables: i64 = raw
        .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
        .unwrap();
    assert_eq!(tables, 1);
}

#[test]
fn a_file_that_is_not_a_database_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    std::fs::write(&path, vec![0x5a; 4096]).unwrap();
    let error = Catalogue::open(&path).unwrap_err();
    assert!(matches!(error, Error::Catalogue { .. }), "{error:?}");
    assert!(error.to_string().contains("catalogue.sqlite"), "{error}");
}

// --- constraints ---

#[test]
fn foreign_keys_are_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let mut catalogue = open(&db_path(&dir));
    let repo = create_repo(&mut catalogue, "photos", &key(1));

    // The rule itself, below the API.
    let raw = catalogue
        .connection()
        .execute(
            "INSERT INTO backups (repository_id, name, archive_key, manifest_key, host,
                                  created_at, status, key_id)
             VALUES (999, 'x', 'a', 'm', 'h', 0, 'running', ?1)",
            [hex::encode(repo.key_id.as_bytes())],
        )
        .unwrap_err();
    assert_eq!(
        raw.sqlite_error_code(),
        Some(ErrorCode::ConstraintViolation)
    );
    assert!(raw.to_string().contains("FOREIGN KEY"), "{raw}");

    // The API names the missing repository.
    let missing = Repository {
        id: RepositoryId(999),
        ..repo.clone()
    };
    let archive = object(&missing, "b", "archive");
    let manifest = object(&missing, "b", "manifest");
    let error = catalogue
        .record_backup(
            &new_backup(&missing, "b", &archive, &manifest, 1),
            2,
            &summary(1),
        )
        .unwrap_err();
    assert!(
        matches!(&error, Error::CatalogueNotFound { what } if what == "repository 999"),
        "{error:?}"
    );
    let error = catalogue.put_envelope(
        RepositoryId(999),
        &wrap(&key(1), &key(2), Purpose::ProfileKey, 1),
    );
    assert!(
        matches!(error, Err(Error::CatalogueNotFound { .. })),
        "{error:?}"
    );

    // A repository with backups cannot be deleted; without, it goes with its envelopes.
    let backup = record(&mut catalogue, &repo, "monday", 100);
    let error = catalogue.delete_repository(repo.id).unwrap_err();
    assert!(is_constraint(&error), "{error:?}");
    assert!(error.to_string().contains("FOREIGN KEY"), "{error}");
    assert!(catalogue.repository(repo.id).unwrap().is_some());
    assert_eq!(catalogue.envelopes(repo.id).unwrap().len(), 1);
    catalogue.delete_backup(backup.id).unwrap();
    catalogue.delete_repository(repo.id).unwrap();
    assert!(catalogue.repository(repo.id).unwrap().is_none());
    assert!(catalogue.envelopes(repo.id).unwrap().is_empty());
    assert!(matches!(
        catalogue.delete_repository(repo.id),
        Err(Error::CatalogueNotFound { .. })
    ));
}

#[test]
fn unique_constraints_hold() {
    let dir = tempfile::tempdir().unwrap();
    let mut catalogue = open(&db_path(&dir));
    let kek = key(1);
    let photos = create_repo(&mut catalogue, "photos", &kek);
    let mail = create_repo(&mut catalogue, "mail", &kek);

    let error = catalogue
        .create_repository(
            &NewRepository {
                name: "photos",
                location: "s3://bucket/other",
                suite: Suite::ChaCha20Poly1305,
                key_id: key(9).id(),
            },
            &[],
        )
        .unwrap_err();
    assert!(is_constraint(&error), "{error:?}");
    assert!(error.to_string().contains("repositories.name"), "{error}");

    record(&mut catalogue, &photos, "monday", 100);
    let archive = object(&photos, "monday", "archive");
    let manifest = object(&photos, "monday", "manifest");
    // Same name in the same repository; same objects under another name.
    let other_archive = object(&photos, "tuesday", "archive");
    let other_manifest = object(&photos, "tuesday", "manifest");
    for (name, a, m) in [
        ("monday", &other_archive, &other_manifest),
        ("tuesday", &archive, &other_manifest),
        ("tuesday", &other_archive, &manifest),
    ] {
        let error = catalogue
            .record_backup(&new_backup(&photos, name, a, m, 200), 300, &summary(1))
            .unwrap_err();
        assert!(is_constraint(&error), "{name}: {error:?}");
    }
    // The same name in another repository is fine.
    record(&mut catalogue, &mail, "monday", 100);

    // One envelope per purpose and key version.
    let again = wrap(&kek, &key(0x11), Purpose::RepositoryKey, 1);
    let error = catalogue.put_envelope(photos.id, &again).unwrap_err();
    assert!(is_constraint(&error), "{error:?}");
    // Two at creation is refused whole: no repository is left behind.
    let error = catalogue
        .create_repository(
            &NewRepository {
                name: "twice",
                location: "local:/x",
                suite: Suite::Aes256Gcm,
                key_id: key(0x11).id(),
            },
            &[&again, &again],
        )
        .unwrap_err();
    assert!(is_constraint(&error), "{error:?}");
    assert!(catalogue.repository_by_name("twice").unwrap().is_none());
}

#[test]
fn check_constraints_refuse_bad_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut catalogue = open(&db_path(&dir));
    let repo = create_repo(&mut catalogue, "photos", &key(1));
    let conn = catalogue.connection();
    let insert_repo = |suite: &str, key_id: &str| {
        conn.execute(
            "INSERT INTO repositories (name, location, suite, key_id, created_at)
             VALUES ('raw', 'local:/raw', ?1, ?2, 0)",
            [suite, key_id],
        )
    };
    let good_id = "0123456789abcdef0123456789abcdef";
    for (suite, key_id) in [
        ("rot13", good_id),
        ("aes-256-gcm", "0123456789ABCDEF0123456789ABCDEF"),
        ("aes-256-gcm", "0123"),
    ] {
        let error = insert_repo(suite, key_id).unwrap_err();
        assert_eq!(
            error.sqlite_error_code(),
            Some(ErrorCode::ConstraintViolation),
            "{error}"
        );
    }
    // STRICT: text in an integer column is refused, not stored.
    let error = conn
        .execute(
            "INSERT INTO repositories (name, location, suite, key_id, created_at)
             VALUES ('raw', 'local:/raw', 'aes-256-gcm', ?1, 'yesterday')",
            [good_id],
        )
        .unwrap_err();
    assert_eq!(
        error.sqlite_error_code(),
        Some(ErrorCode::ConstraintViolation),
        "{error}"
    );
    // A complete backup needs its summary; a running one has no finishing time.
    for (status, finished, entries) in [("complete", "1", "NULL"), ("running", "1", "NULL")] {
        let error = conn
            .execute(
                &format!(
                    "INSERT INTO backups (repository_id, name, archive_key, manifest_key, host,
                                          created_at, finished_at, status, entry_count, key_id)
                     VALUES (?1, 'x', 'a', 'm', 'h', 0, {finished}, '{status}', {entries}, ?2)"
                ),
                rusqlite::params![repo.id.0, good_id],
            )
            .unwrap_err();
        assert_eq!(
            error.sqlite_error_code(),
            Some(ErrorCode::ConstraintViolation),
            "{error}"
        );
    }
    // Envelope bytes that are not an envelope never reach SQL.
    let error = catalogue
        .put_envelope(repo.id, b"COFFER/Knot an envelope")
        .unwrap_err();
    assert!(matches!(error, Error::Core(_)), "{error:?}");
    // Counts beyond what SQLite stores are caller misuse.
    let archive = object(&repo, "huge", "archive");
    let manifest = object(&repo, "huge", "manifest");
    let error = catalogue
        .record_backup(
            &new_backup(&repo, "huge", &archive, &manifest, 1),
            2,
            &BackupSummary {
                content_bytes: u64::MAX,
                ..summary(1)
            },
        )
        .unwrap_err();
    assert!(matches!(error, Error::CatalogueMisuse { .. }), "{error:?}");
}

// --- envelopes ---

#[test]
fn envelopes_are_described_by_their_headers_and_the_latest_version_wins() {
    let dir = tempfile::tempdir().unwrap();
    let mut catalogue = open(&db_path(&dir));
    let kek = key(1);
    let repo = create_repo(&mut catalogue, "photos", &kek);
    let v2_key = key(0x22);
    catalogue
        .put_envelope(repo.id, &wrap(&kek, &v2_key, Purpose::RepositoryKey, 2))
        .unwrap();
    catalogue
        .put_envelope(repo.id, &wrap(&kek, &key(0x33), Purpose::ProfileKey, 7))
        .unwrap();

    let latest = catalogue
        .latest_envelope(repo.id, Purpose::RepositoryKey)
        .unwrap()
        .unwrap();
    assert_eq!(latest.key_version, 2);
    assert_eq!(latest.key_id, v2_key.id());
    assert_eq!(latest.kek_id, Some(kek.id()));
    assert_eq!(latest.kind, EnvelopeKind::Key);
    assert_eq!(latest.suite, Suite::Aes256Gcm);
    let (unwrapped, _) = unwrap_key(
        &RustCrypto,
        &kek,
        &latest.envelope,
        Purpose::RepositoryKey,
        CONTEXT,
    )
    .unwrap();
    assert_eq!(unwrapped, v2_key);

    let v1 = catalogue
        .envelope(repo.id, Purpose::RepositoryKey, 1)
        .unwrap()
        .unwrap();
    assert_eq!(v1.key_id, repo.key_id);
    assert!(catalogue
        .envelope(repo.id, Purpose::RepositoryKey, 3)
        .unwrap()
        .is_none());
    assert!(catalogue
        .latest_envelope(repo.id, Purpose::MasterKey)
        .unwrap()
        .is_none());
    let all = catalogue.envelopes(repo.id).unwrap();
    let listed: Vec<(Purpose, u32)> = all.iter().map(|e| (e.purpose, e.key_version)).collect();
    assert_eq!(
        listed,
        [
            (Purpose::ProfileKey, 7),
            (Purpose::RepositoryKey, 1),
            (Purpose::RepositoryKey, 2)
        ]
    );
}

#[test]
fn passphrase_envelopes_have_no_kek_id() {
    let mut catalogue = Catalogue::open_in_memory().unwrap();
    let repo = create_repo(&mut catalogue, "photos", &key(1));
    let master = key(0x44);
    let params = Argon2Params::MIN;
    let mut memory = vec![Argon2Block::default(); params.blocks()];
    let envelope = wrap_with_passphrase(
        &RustCrypto,
        Suite::ChaCha20Poly1305,
        b"correct horse",
        &master,
        Purpose::MasterKey,
        1,
        params,
        CONTEXT,
        &mut ChaCha20Rng::seed_from_u64(5),
        &mut memory,
    )
    .unwrap();
    assert_eq!(envelope.len(), PASSPHRASE_ENVELOPE_LEN);
    let stored = catalogue.put_envelope(repo.id, &envelope).unwrap();
    assert_eq!(stored.kind, EnvelopeKind::Passphrase);
    assert_eq!(stored.kek_id, None);
    assert_eq!(stored.suite, Suite::ChaCha20Poly1305);
    assert_eq!(stored.key_id, master.id());
    let read = catalogue
        .latest_envelope(repo.id, Purpose::MasterKey)
        .unwrap()
        .unwrap();
    assert_eq!(read, stored);
    assert_eq!(read.envelope, envelope);
}

/// A repository with three envelopes under `old_kek`.
fn three_envelopes(catalogue: &mut Catalogue, name: &str, old_kek: &SecretKey) -> Repository {
    let repo = create_repo(catalogue, name, old_kek);
    for (purpose, version, byte) in [
        (Purpose::RepositoryKey, 2, 0x22),
        (Purpose::ProfileKey, 1, 0x33),
    ] {
        catalogue
            .put_envelope(repo.id, &wrap(old_kek, &key(byte), purpose, version))
            .unwrap();
    }
    repo
}

fn rewrap_under<'a>(
    old_kek: &SecretKey,
    new_kek: &'a SecretKey,
) -> impl FnMut(&StoredEnvelope) -> Result<[u8; KEY_ENVELOPE_LEN], Error> + 'a {
    let old_kek = SecretKey::from_bytes(*old_kek.expose_secret());
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    move |old| {
        Ok(rewrap_key(
            &RustCrypto,
            &old_kek,
            new_kek,
            &old.envelope,
            old.purpose,
            CONTEXT,
            Suite::ChaCha20Poly1305,
            &mut rng,
        )?)
    }
}

#[test]
fn rewrap_all_replaces_every_envelope_of_the_repository() {
    let dir = tempfile::tempdir().unwrap();
    let mut catalogue = open(&db_path(&dir));
    let (old_kek, new_kek) = (key(1), key(2));
    let repo = three_envelopes(&mut catalogue, "photos", &old_kek);
    let other = create_repo(&mut catalogue, "mail", &old_kek);
    let before = catalogue.envelopes(repo.id).unwrap();

    let count = catalogue
        .rewrap_all(repo.id, rewrap_under(&old_kek, &new_kek))
        .unwrap();
    assert_eq!(count, 3);
    let after = catalogue.envelopes(repo.id).unwrap();
    assert_eq!(after.len(), 3);
    for (old, new) in before.iter().zip(&after) {
        assert_eq!(
            (new.id, new.purpose, new.key_version),
            (old.id, old.purpose, old.key_version)
        );
        assert_eq!(new.kek_id, Some(new_kek.id()));
        assert_eq!(new.suite, Suite::ChaCha20Poly1305);
        assert_eq!(new.created_at, old.created_at);
        assert_ne!(new.envelope, old.envelope);
        let (opened, _) =
            unwrap_key(&RustCrypto, &new_kek, &new.envelope, new.purpose, CONTEXT).unwrap();
        assert_eq!(opened.id(), old.key_id);
    }
    // The other repository is untouched.
    let untouched = catalogue.envelopes(other.id).unwrap();
    assert_eq!(untouched[0].kek_id, Some(old_kek.id()));
    assert!(matches!(
        catalogue.rewrap_all(RepositoryId(999), rewrap_under(&old_kek, &new_kek)),
        Err(Error::CatalogueNotFound { .. })
    ));
}

#[test]
fn rewrap_all_rolls_back_entirely_when_the_callback_fails_midway() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let mut catalogue = open(&path);
    let (old_kek, new_kek) = (key(1), key(2));
    let repo = three_envelopes(&mut catalogue, "photos", &old_kek);
    let before = catalogue.envelopes(repo.id).unwrap();

    let mut good = rewrap_under(&old_kek, &new_kek);
    let mut calls = 0;
    let error = catalogue
        .rewrap_all(repo.id, |old| {
            calls += 1;
            if calls == 3 {
                // As a real failure would: the third envelope under the wrong KEK.
                let wrong = key(7);
                return Ok(rewrap_key(
                    &RustCrypto,
                    &wrong,
                    &new_kek,
                    &old.envelope,
                    old.purpose,
                    CONTEXT,
                    Suite::Aes256Gcm,
                    &mut ChaCha20Rng::seed_from_u64(1),
                )?);
            }
            good(old)
        })
        .unwrap_err();
    assert_eq!(calls, 3);
    assert!(
        matches!(error, Error::Core(coffer_core::Error::WrongKey { .. })),
        "{error:?}"
    );
    assert_eq!(catalogue.envelopes(repo.id).unwrap(), before);
    // And from another connection, so nothing is merely cached.
    assert_eq!(open(&path).envelopes(repo.id).unwrap(), before);
}

#[test]
fn rewrap_refuses_an_envelope_for_another_key_and_changes_nothing() {
    let mut catalogue = Catalogue::open_in_memory().unwrap();
    let (old_kek, new_kek) = (key(1), key(2));
    let repo = three_envelopes(&mut catalogue, "photos", &old_kek);
    let before = catalogue.envelopes(repo.id).unwrap();
    let error = catalogue
        .rewrap_all(repo.id, |old| {
            Ok(wrap(&new_kek, &key(0x99), old.purpose, old.key_version))
        })
        .unwrap_err();
    assert!(matches!(error, Error::CatalogueMisuse { .. }), "{error:?}");
    let error = catalogue
        .rewrap_all(repo.id, |_| Ok(vec![0u8; 152]))
        .unwrap_err();
    assert!(matches!(error, Error::Core(_)), "{error:?}");
    assert_eq!(catalogue.envelopes(repo.id).unwrap(), before);
}

#[test]
fn rewrap_kek_rotates_one_kek_across_repositories() {
    let mut catalogue = Catalogue::open_in_memory().unwrap();
    let (old_kek, other_kek, new_kek) = (key(1), key(3), key(2));
    let a = three_envelopes(&mut catalogue, "a", &old_kek);
    let b = create_repo(&mut catalogue, "b", &old_kek);
    let c = create_repo(&mut catalogue, "c", &other_kek);
    let count = catalogue
        .rewrap_kek(&old_kek.id(), rewrap_under(&old_kek, &new_kek))
        .unwrap();
    assert_eq!(count, 4);
    let kek_ids = |repo: &Repository| -> Vec<Option<KeyId>> {
        catalogue
            .envelopes(repo.id)
            .unwrap()
            .iter()
            .map(|e| e.kek_id)
            .collect()
    };
    assert_eq!(kek_ids(&a), vec![Some(new_kek.id()); 3]);
    assert_eq!(kek_ids(&b), vec![Some(new_kek.id())]);
    assert_eq!(kek_ids(&c), vec![Some(other_kek.id())]);
    assert_eq!(
        catalogue
            .rewrap_kek(&old_kek.id(), rewrap_under(&old_kek, &new_kek))
            .unwrap(),
        0
    );
}

// --- backups ---

#[test]
fn backups_list_newest_first_per_repository() {
    let dir = tempfile::tempdir().unwrap();
    let mut catalogue = open(&db_path(&dir));
    let photos = create_repo(&mut catalogue, "photos", &key(1));
    let mail = create_repo(&mut catalogue, "mail", &key(1));
    for (name, created_at) in [("b", 300), ("a", 100), ("c", 200), ("d", 300)] {
        record(&mut catalogue, &photos, name, created_at);
    }
    record(&mut catalogue, &mail, "z", 1000);
    let listed = catalogue.backups(photos.id).unwrap();
    // Same start time: the later row first.
    assert_eq!(names(&listed), ["d", "b", "c", "a"]);
    assert_eq!(names(&catalogue.backups(mail.id).unwrap()), ["z"]);
    assert!(catalogue.backups(RepositoryId(999)).unwrap().is_empty());

    let d = &listed[0];
    assert_eq!(d.status, BackupStatus::Complete);
    assert_eq!(d.summary, Some(summary(3)));
    assert_eq!(d.finished_at, Some(360));
    assert_eq!(d.archive_key, object(&photos, "d", "archive"));
    assert_eq!(d.key_id, photos.key_id);
    assert_eq!(catalogue.backup(d.id).unwrap().as_ref(), Some(d));
    assert_eq!(
        catalogue.backup_by_name(photos.id, "d").unwrap().as_ref(),
        Some(d)
    );
    assert!(catalogue.backup_by_name(mail.id, "d").unwrap().is_none());

    // The listing uses the index.
    let plan: Vec<String> = {
        let conn = catalogue.connection();
        let mut statement = conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT * FROM backups WHERE repository_id = 1
                 ORDER BY created_at DESC, id DESC",
            )
            .unwrap();
        let rows = statement
            .query_map([], |row| row.get::<_, String>(3))
            .unwrap();
        rows.map(Result::unwrap).collect()
    };
    assert!(
        plan.iter().any(|p| p.contains("backups_by_time")),
        "{plan:?}"
    );
    assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "{plan:?}");
}

#[test]
fn a_backup_runs_then_completes_or_fails() {
    let dir = tempfile::tempdir().unwrap();
    let mut catalogue = open(&db_path(&dir));
    let repo = create_repo(&mut catalogue, "photos", &key(1));
    let archive = object(&repo, "monday", "archive");
    let manifest = object(&repo, "monday", "manifest");
    let started = catalogue
        .start_backup(&new_backup(&repo, "monday", &archive, &manifest, 100))
        .unwrap();
    assert_eq!(started.status, BackupStatus::Running);
    assert_eq!((started.finished_at, started.summary), (None, None));
    assert_eq!(catalogue.backup(started.id).unwrap(), Some(started.clone()));

    catalogue
        .complete_backup(started.id, 160, &summary(9))
        .unwrap();
    let done = catalogue.backup(started.id).unwrap().unwrap();
    assert_eq!(done.status, BackupStatus::Complete);
    assert_eq!(
        (done.finished_at, done.summary),
        (Some(160), Some(summary(9)))
    );
    let error = catalogue
        .complete_backup(started.id, 170, &summary(9))
        .unwrap_err();
    assert!(matches!(error, Error::CatalogueMisuse { .. }), "{error:?}");

    // A check found it damaged: failed, keeping when it finished and what it held.
    catalogue.mark_failed(started.id, 500).unwrap();
    catalogue.mark_failed(started.id, 600).unwrap();
    let failed = catalogue.backup(started.id).unwrap().unwrap();
    assert_eq!(failed.status, BackupStatus::Failed);
    assert_eq!(
        (failed.finished_at, failed.summary),
        (Some(160), Some(summary(9)))
    );

    // A run that never finished.
    let archive = object(&repo, "tuesday", "archive");
    let manifest = object(&repo, "tuesday", "manifest");
    let crashed = catalogue
        .start_backup(&new_backup(&repo, "tuesday", &archive, &manifest, 200))
        .unwrap();
    catalogue.mark_failed(crashed.id, 250).unwrap();
    let crashed = catalogue.backup(crashed.id).unwrap().unwrap();
    assert_eq!(crashed.status, BackupStatus::Failed);
    assert_eq!((crashed.finished_at, crashed.summary), (Some(250), None));

    assert!(matches!(
        catalogue.mark_failed(BackupId(999), 1),
        Err(Error::CatalogueNotFound { .. })
    ));
    assert!(matches!(
        catalogue.complete_backup(BackupId(999), 1, &summary(1)),
        Err(Error::CatalogueNotFound { .. })
    ));
}

#[test]
fn delete_and_prune_return_the_rows_and_prune_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut catalogue = open(&db_path(&dir));
    let photos = create_repo(&mut catalogue, "photos", &key(1));
    let mail = create_repo(&mut catalogue, "mail", &key(1));
    let [a, b, c, d] = ["a", "b", "c", "d"].map(|name| record(&mut catalogue, &photos, name, 100));
    let foreign = record(&mut catalogue, &mail, "m", 100);

    let deleted = catalogue.delete_backup(a.id).unwrap();
    assert_eq!(deleted, a);
    assert!(matches!(
        catalogue.delete_backup(a.id),
        Err(Error::CatalogueNotFound { .. })
    ));

    // A missing ID, or another repository's backup, and nothing is deleted.
    for bad in [BackupId(999), foreign.id] {
        let error = catalogue.prune(photos.id, &[b.id, bad, c.id]).unwrap_err();
        assert!(
            matches!(error, Error::CatalogueNotFound { .. }),
            "{error:?}"
        );
        assert_eq!(
            names(&catalogue.backups(photos.id).unwrap()),
            ["d", "c", "b"]
        );
    }
    assert_eq!(names(&catalogue.backups(mail.id).unwrap()), ["m"]);

    let pruned = catalogue.prune(photos.id, &[c.id, b.id, c.id]).unwrap();
    assert_eq!(pruned, vec![c, b]);
    assert_eq!(catalogue.backups(photos.id).unwrap(), vec![d]);
    assert!(catalogue.prune(photos.id, &[]).unwrap().is_empty());
}

// --- concurrency ---

#[test]
fn in_wal_mode_a_reader_keeps_its_snapshot_while_a_writer_commits() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let mut writer = open(&path);
    let repo = create_repo(&mut writer, "photos", &key(1));
    record(&mut writer, &repo, "first", 100);

    let reader = open(&path);
    let count = |c: &Catalogue| c.backups(repo.id).unwrap().len();
    reader.connection().execute_batch("BEGIN").unwrap();
    assert_eq!(count(&reader), 1);

    // The writer neither waits for the reader nor disturbs it.
    let started = std::time::Instant::now();
    record(&mut writer, &repo, "second", 200);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    assert_eq!(count(&writer), 2);
    assert_eq!(count(&reader), 1, "the reader's snapshot");
    reader.connection().execute_batch("COMMIT").unwrap();
    assert_eq!(count(&reader), 2);
}

#[test]
fn a_writer_thread_and_a_reader_thread_share_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let repo = create_repo(&mut open(&path), "photos", &key(1));
    const WRITES: usize = 40;

    let writer = {
        let (path, repo) = (path.clone(), repo.clone());
        std::thread::spawn(move || {
            let mut catalogue = open(&path);
            for i in 0..WRITES {
                record(&mut catalogue, &repo, &format!("b{i:02}"), i as i64);
            }
        })
    };
    let reader = std::thread::spawn(move || {
        let catalogue = open(&path);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut seen = 0;
        while seen < WRITES {
            assert!(
                std::time::Instant::now() < deadline,
                "the writer stalled at {seen}"
            );
            let listed = catalogue.backups(repo.id).unwrap();
            assert!(listed.len() >= seen, "a reader never goes back in time");
            // Each listing is one consistent snapshot: b(n-1) down to b00.
            let expected: Vec<String> = (0..listed.len())
                .rev()
                .map(|i| format!("b{i:02}"))
                .collect();
            assert_eq!(names(&listed), expected);
            seen = listed.len();
        }
    });
    writer.join().unwrap();
    reader.join().unwrap();
}
