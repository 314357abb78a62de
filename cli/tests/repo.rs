//! Repositories through the built binary: init, backup, restore, list, verify, prune,
//! command-output backups, and every failure with its exit code and nothing left.

mod support;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use coffer_adapters::bridge::SealReader;
use coffer_adapters::pipeline::{self, Entry, Manifest};
use coffer_adapters::storage::{LocalStorage, ObjectKey, PutMode, Storage};
use coffer_core::envelope::{self, Purpose};
use coffer_core::record::{EntryKind, FrameRecord};
use coffer_core::{RustCrypto, SecretKey, Suite};
use sha2::{Digest, Sha256};
use support::tree::{describe, make_tree, walk};
use support::{noise, Scratch};

/// A scratch folder with a key file, a source tree and a repository `repo`.
fn setup() -> Scratch {
    let s = Scratch::new();
    s.key("k.key");
    make_tree(&s.path("src"));
    s.run(&["archive", "init", "--repo", "repo", "--key-file", "k.key"])
        .ok();
    s
}

/// The bytes in the regular files under `root`, as a backup counts its content.
fn file_bytes(root: &Path) -> u64 {
    let mut all = Vec::new();
    walk(root, &mut all);
    all.iter()
        .map(|p| std::fs::symlink_metadata(p).unwrap())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

fn with_repo<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut v = args.to_vec();
    v.extend(["--repo", "repo", "--key-file", "k.key"]);
    v
}

#[test]
fn a_tree_round_trips_exactly_and_lists_and_verifies() {
    let s = setup();
    s.run(&with_repo(&["archive", "backup", "src", "--name", "t1"]))
        .ok();
    s.run(&with_repo(&["archive", "restore", "t1", "--to", "out"]))
        .ok();
    assert_eq!(describe(&s.path("src")), describe(&s.path("out/src")));
    assert_eq!(s.names("out"), vec!["src"], "no staging folder left");
    let listed = s
        .run(&with_repo(&["archive", "list", "--json"]))
        .ok()
        .json();
    let b = &listed["backups"][0];
    assert_eq!(b["name"], "t1");
    assert_eq!(b["status"], "complete");
    assert_eq!(b["kind"], "files");
    assert_eq!(b["content_bytes"], file_bytes(&s.path("src")));
    // The sealed archive and manifest, as they lie in the repository.
    assert_eq!(b["stored_bytes"], file_bytes(&s.path("repo/data/backups")));
    assert_eq!(b["key_id"].as_str().unwrap().len(), 32);
    let text = s.run(&with_repo(&["archive", "list"])).ok().stdout_text();
    assert!(text.contains("t1") && text.contains("complete"), "{text}");
    let v = s
        .run(&with_repo(&["archive", "verify", "t1", "--json"]))
        .ok()
        .json();
    assert_eq!(v["ok"], true);
    assert_eq!(v["bytes"], b["content_bytes"]);
    // Chosen paths only; a second restore never overwrites the first.
    s.run(&with_repo(&[
        "archive", "restore", "t1", "--to", "part", "src/a/b",
    ]))
    .ok();
    assert!(s.path("part/src/a/b/c/large.bin").exists());
    assert!(s.path("part/src/a").is_dir());
    assert!(!s.path("part/src/a/script.sh").exists());
    s.run(&with_repo(&["archive", "restore", "t1", "--to", "out"]))
        .fails(7, "already exists");
    assert_eq!(describe(&s.path("src")), describe(&s.path("out/src")));
}

#[test]
fn missing_things_and_taken_names_have_their_codes() {
    let s = setup();
    s.run(&["archive", "init", "--repo", "repo", "--key-file", "k.key"])
        .fails(7, "already holds a Coffer repository");
    s.run(&["archive", "list", "--repo", "nowhere"])
        .fails(6, "no Coffer repository at nowhere");
    // No secret given: nothing is created.
    s.run(&["archive", "init", "--repo", "new-repo"])
        .fails(2, "COFFER_PASSPHRASE");
    assert!(!s.path("new-repo").exists());
    // A folder that is not a repository is neither used nor made into one.
    s.run(&["archive", "list", "--repo", "src"])
        .fails(6, "no Coffer repository");
    s.run(&["archive", "init", "--repo", "src", "--key-file", "k.key"])
        .fails(7, "is not empty");
    assert!(!s.path("src/catalogue.sqlite").exists() && !s.path("src/data").exists());
    s.run(&with_repo(&["archive", "restore", "nope", "--to", "out"]))
        .fails(6, "no backup named \"nope\"");
    s.run(&with_repo(&["archive", "backup", "src", "--name", "x"]))
        .ok();
    s.run(&with_repo(&["archive", "backup", "src", "--name", "x"]))
        .fails(7, "a backup named \"x\" exists");
    s.run(&with_repo(&["archive", "backup", "src", "--name", "a/b"]))
        .fails(2, "one path segment");
    s.run(&with_repo(&[
        "archive",
        "backup",
        "missing-folder",
        "--name",
        "y",
    ]))
    .fails(6, "missing-folder");
    let listed = s
        .run(&with_repo(&["archive", "list", "--json"]))
        .ok()
        .json();
    assert_eq!(listed["backups"].as_array().unwrap().len(), 1);
    assert!(!s.path("out").exists());
}

#[test]
fn wrong_key_file_and_wrong_passphrase_exit_3() {
    let s = setup();
    s.key("other.key");
    s.run(&with_repo(&["archive", "backup", "src", "--name", "t"]))
        .ok();
    s.run(&[
        "archive",
        "restore",
        "t",
        "--to",
        "out",
        "--repo",
        "repo",
        "--key-file",
        "other.key",
    ])
    .fails(3, "wrong key");
    assert!(!s.path("out").exists());
    let pass = ("COFFER_PASSPHRASE", "repo passphrase");
    s.run_env(&["archive", "init", "--repo", "prepo"], &[pass])
        .ok();
    s.run_env(
        &["archive", "backup", "src", "--name", "t", "--repo", "prepo"],
        &[pass],
    )
    .ok();
    s.run_env(
        &["archive", "restore", "t", "--to", "out", "--repo", "prepo"],
        &[("COFFER_PASSPHRASE", "not it")],
    )
    .fails(3, "wrong passphrase");
    s.run(&[
        "archive",
        "verify",
        "t",
        "--repo",
        "prepo",
        "--key-file",
        "k.key",
    ])
    .fails(2, "locked with a passphrase");
    assert!(!s.path("out").exists());
    // Changing the repository's passphrase keeps every backup readable.
    s.write("new.txt", b"brand new\n");
    s.run_env(
        &[
            "key",
            "rewrap",
            "--repo",
            "prepo",
            "--new-passphrase-file",
            "new.txt",
        ],
        &[pass],
    )
    .ok();
    s.run_env(&["archive", "verify", "t", "--repo", "prepo"], &[pass])
        .fails(3, "wrong passphrase");
    s.run(&[
        "archive",
        "verify",
        "t",
        "--repo",
        "prepo",
        "--passphrase-file",
        "new.txt",
    ])
    .ok();
}

#[test]
fn bit_flipped_and_truncated_backups_exit_4_and_restore_nothing() {
    let s = setup();
    s.run(&with_repo(&["archive", "backup", "src", "--name", "t"]))
        .ok();
    let archive = s.path("repo/data/backups/t.archive");
    let good = fs::read(&archive).unwrap();
    let mut flipped = good.clone();
    flipped[good.len() / 2] ^= 0x20;
    fs::write(&archive, &flipped).unwrap();
    s.run(&with_repo(&["archive", "restore", "t", "--to", "out"]))
        .fails(4, "is corrupted");
    assert!(!s.path("out").exists(), "restore left files behind");
    s.run(&with_repo(&["archive", "verify", "t"]))
        .fails(4, "is corrupted");
    let listed = s
        .run(&with_repo(&["archive", "list", "--json"]))
        .ok()
        .json();
    assert_eq!(listed["backups"][0]["status"], "failed");
    // Truncated: cut off the last 1000 bytes; the restore target existed before and
    // stays as it was (empty).
    fs::write(&archive, &good[..good.len() - 1000]).unwrap();
    fs::create_dir(s.path("out")).unwrap();
    let run = s.run(&with_repo(&["archive", "restore", "t", "--to", "out"]));
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(s.names("out").is_empty(), "left: {:?}", s.names("out"));
    // A damaged manifest is caught before anything is read.
    fs::write(&archive, &good).unwrap();
    let manifest = s.path("repo/data/backups/t.manifest");
    let mut m = fs::read(&manifest).unwrap();
    let last = m.len() - 1;
    m[last] ^= 1;
    fs::write(&manifest, &m).unwrap();
    s.run(&with_repo(&["archive", "restore", "t", "--to", "out"]))
        .fails(4, "corrupted");
    assert!(s.names("out").is_empty());
}

/// The repository key, unwrapped from the stored envelope with the key file.
fn repository_key(s: &Scratch) -> SecretKey {
    let text = fs::read_to_string(s.path("k.key")).unwrap();
    let hex_key = text
        .lines()
        .find_map(|l| l.strip_prefix("coffer-key-v1:"))
        .unwrap();
    let kek = SecretKey::try_from_slice(&hex::decode(hex_key).unwrap()).unwrap();
    let env = fs::read(s.path("repo/data/keys/repository")).unwrap();
    envelope::unwrap_key(
        &RustCrypto,
        &kek,
        &env,
        Purpose::RepositoryKey,
        b"coffer/cli",
    )
    .unwrap()
    .0
}

/// Stores a hand-made tar and manifest as backup `name`, as a hostile writer holding
/// the key could.
fn forge(s: &Scratch, key: &SecretKey, name: &str, entries: &[(&[u8], EntryKind, &[u8])]) {
    let mut builder = tar::Builder::new(Vec::new());
    let mut manifest_entries = Vec::new();
    for (path, kind, link) in entries {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path);
        h.as_gnu_mut().unwrap().linkname[..link.len()].copy_from_slice(link);
        let data: &[u8] = if *kind == EntryKind::File {
            b"pwned"
        } else {
            b""
        };
        h.set_entry_type(match kind {
            EntryKind::Symlink => tar::EntryType::Symlink,
            _ => tar::EntryType::Regular,
        });
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder.append(&h, data).unwrap();
        manifest_entries.push(Entry {
            path: path.to_vec(),
            kind: *kind,
            mode: 0o644,
            mtime: 0,
            size: data.len() as u64,
            sha256: Sha256::digest(data).into(),
            link_target: link.to_vec(),
            archive_offset: 0,
        });
    }
    let tar_bytes = builder.into_inner().unwrap();
    let compressed = zstd::bulk::compress(&tar_bytes, 3).unwrap();
    let store = LocalStorage::open(s.path("repo")).unwrap();
    let prefix = ObjectKey::new("data").unwrap();
    let (archive_key, manifest_key) = pipeline::object_keys(&prefix, name).unwrap();
    let manifest = Manifest {
        host: "evil".into(),
        created: 0,
        key_id: *key.id().as_bytes(),
        content_bytes: 0,
        archive_len: tar_bytes.len() as u64,
        compressed_len: compressed.len() as u64,
        frames: vec![FrameRecord {
            archive_offset: 0,
            compressed_offset: 0,
        }],
        entries: manifest_entries,
    }
    .encode();
    for (object, role, bytes) in [
        (&archive_key, "archive", &compressed[..]),
        (&manifest_key, "manifest", &manifest[..]),
    ] {
        let ctx = format!("coffer/{role}\0{name}");
        let mut sealer =
            SealReader::new(&RustCrypto, Suite::Aes256Gcm, key, ctx.as_bytes(), bytes, 1).unwrap();
        store.put(object, &mut sealer, PutMode::CreateOnly).unwrap();
    }
}

#[test]
fn hostile_archive_paths_never_land_outside_the_target() {
    let s = setup();
    let key = repository_key(&s);
    let outside = s.path("outside");
    fs::create_dir(&outside).unwrap();
    let outside_bytes = outside.as_os_str().as_bytes().to_vec();
    forge(&s, &key, "dotdot", &[(b"../escaped", EntryKind::File, b"")]);
    forge(
        &s,
        &key,
        "absolute",
        &[(b"/tmp/coffer-escaped", EntryKind::File, b"")],
    );
    forge(
        &s,
        &key,
        "through-link",
        &[
            (b"link", EntryKind::Symlink, &outside_bytes),
            (b"link/escaped", EntryKind::File, b""),
        ],
    );
    // The forged backups are not in the catalogue: rebuilding it from storage finds
    // them (and the rebuild is worth testing anyway).
    fs::remove_file(s.path("repo/catalogue.sqlite")).unwrap();
    let listed = s
        .run(&with_repo(&["archive", "list", "--json"]))
        .ok()
        .json();
    assert_eq!(listed["backups"].as_array().unwrap().len(), 3);
    for name in ["dotdot", "absolute", "through-link"] {
        let target = format!("target-{name}");
        s.run(&with_repo(&["archive", "restore", name, "--to", &target]))
            .fails(4, "refusing archive entry");
        assert!(!s.path(&target).exists(), "{name}: target left behind");
        assert!(!outside.join("escaped").exists(), "{name}");
        assert!(!s.path("escaped").exists(), "{name}");
        assert!(
            !std::path::Path::new("/tmp/coffer-escaped").exists(),
            "{name}"
        );
    }
}

#[test]
fn command_output_backs_up_without_temp_files_and_restores_to_a_file_or_command() {
    let s = setup();
    s.write("dump-source", &noise(3 << 20, 5));
    s.run(&with_repo(&[
        "archive",
        "backup",
        "--from-command",
        "cat dump-source",
        "--name",
        "db.sql",
    ]))
    .ok();
    s.run(&with_repo(&[
        "archive",
        "restore",
        "db.sql",
        "--to-file",
        "restored.sql",
    ]))
    .ok();
    assert_eq!(
        fs::read(s.path("restored.sql")).unwrap(),
        fs::read(s.path("dump-source")).unwrap()
    );
    s.run(&with_repo(&[
        "archive",
        "restore",
        "db.sql",
        "--to-command",
        "cat > piped.sql",
    ]))
    .ok();
    assert_eq!(
        fs::read(s.path("piped.sql")).unwrap(),
        fs::read(s.path("dump-source")).unwrap()
    );
    s.run(&with_repo(&["archive", "verify", "db.sql"])).ok();
    s.run(&with_repo(&["archive", "restore", "db.sql", "--to", "dir"]))
        .fails(2, "--to-file or --to-command");
    // A command that fails, even after writing output, leaves no backup anywhere.
    s.run(&with_repo(&[
        "archive",
        "backup",
        "--from-command",
        "head -c 3000000 dump-source; exit 3",
        "--name",
        "bad",
    ]))
    .fails(1, "the command failed (exit status: 3)");
    let listed = s
        .run(&with_repo(&["archive", "list", "--json"]))
        .ok()
        .json();
    let names: Vec<_> = listed["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, vec!["db.sql"]);
    let objects = s.names("repo/data/backups");
    assert_eq!(objects, vec!["db.sql.manifest", "db.sql.stream"]);
    // A damaged stream backup: the file is never committed, the command is killed.
    let stream = s.path("repo/data/backups/db.sql.stream");
    let mut bytes = fs::read(&stream).unwrap();
    let at = bytes.len() - 5000;
    bytes[at] ^= 1;
    fs::write(&stream, &bytes).unwrap();
    s.run(&with_repo(&[
        "archive",
        "restore",
        "db.sql",
        "--to-file",
        "again.sql",
    ]))
    .fails(4, "is corrupted");
    assert!(!s.path("again.sql").exists());
    assert!(s.names("").iter().all(|n| !n.starts_with(".coffer")));
}

#[test]
fn prune_keeps_what_the_policy_says_and_dry_run_deletes_nothing() {
    let s = setup();
    fs::write(s.path("one"), b"1").unwrap();
    for name in ["b1", "b2", "b3", "b4"] {
        s.run(&with_repo(&["archive", "backup", "one", "--name", name]))
            .ok();
    }
    s.run(&with_repo(&["archive", "prune"]))
        .fails(2, "needs a policy");
    let dry = s
        .run(&with_repo(&[
            "archive",
            "prune",
            "--keep-last",
            "2",
            "--dry-run",
            "--json",
        ]))
        .ok()
        .json();
    assert_eq!(dry["deleted"], serde_json::json!(["b2", "b1"]));
    assert_eq!(s.names("repo/data/backups").len(), 8);
    let done = s
        .run(&with_repo(&[
            "archive",
            "prune",
            "--keep-last",
            "2",
            "--json",
        ]))
        .ok()
        .json();
    assert_eq!(done["kept"], serde_json::json!(["b4", "b3"]));
    assert_eq!(
        s.names("repo/data/backups"),
        vec!["b3.archive", "b3.manifest", "b4.archive", "b4.manifest"]
    );
    // All made today: one daily keeps only the newest.
    let daily = s
        .run(&with_repo(&[
            "archive",
            "prune",
            "--keep-daily",
            "1",
            "--json",
        ]))
        .ok()
        .json();
    assert_eq!(daily["kept"], serde_json::json!(["b4"]));
    let listed = s
        .run(&with_repo(&["archive", "list", "--json"]))
        .ok()
        .json();
    assert_eq!(listed["backups"].as_array().unwrap().len(), 1);
}

#[test]
fn a_full_disk_on_restore_exits_5_and_leaves_nothing() {
    let s = setup();
    s.run(&with_repo(&["archive", "backup", "src", "--name", "t"]))
        .ok();
    let script = "\"$COFFER\" archive restore t --to small/out --repo repo --key-file k.key";
    let (how, run) = s.with_small_disk(script);
    eprintln!("full disk simulated with {how}");
    assert_eq!(run.code, 5, "{how}: {}", run.stderr);
    assert!(
        run.stdout_text().trim_end().ends_with("LEFT:"),
        "{how}: left behind: {}",
        run.stdout_text()
    );
}

#[test]
fn vectors_verify_counts_and_fails_on_a_bad_vector() {
    let s = Scratch::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../test-vectors");
    let run = s.run(&["vectors", "verify", dir, "--json"]).ok();
    let report = run.json();
    assert_eq!(report["failed"], 0);
    assert!(report["tests"].as_u64().unwrap() > 100, "{report}");
    // A copy with one expected result changed must fail.
    fs::create_dir(s.path("vectors")).unwrap();
    let original = fs::read_to_string(format!("{dir}/coffer_key_envelope_test.json")).unwrap();
    let changed = original.replacen("\"valid\"", "\"invalid\"", 1);
    assert_ne!(changed, original);
    s.write("vectors/coffer_key_envelope_test.json", changed.as_bytes());
    let run = s.run(&["vectors", "verify", "vectors"]);
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stdout_text().contains("1 failed"),
        "{}",
        run.stdout_text()
    );
}

#[test]
fn ctrl_c_during_a_restore_exits_130_and_leaves_nothing() {
    let s = setup();
    fs::create_dir(s.path("big")).unwrap();
    fs::write(s.path("big/noise.bin"), noise(200 << 20, 3)).unwrap();
    s.run(&with_repo(&["archive", "backup", "big", "--name", "b"]))
        .ok();
    fs::create_dir(s.path("out")).unwrap();
    let child = s
        .cmd(&with_repo(&["archive", "restore", "b", "--to", "out"]))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Once the staging folder holds a file being written, interrupt.
    let started = || {
        s.names("out").iter().any(|n| {
            n.starts_with(".coffer-restore-")
                && fs::read_dir(s.path(&format!("out/{n}"))).is_ok_and(|mut d| d.next().is_some())
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut child = child;
    while !started() {
        assert!(
            std::time::Instant::now() < deadline,
            "the restore never started"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the interrupt"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(s.names("out").is_empty(), "left: {:?}", s.names("out"));
}
