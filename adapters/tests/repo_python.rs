//! The repository format v2 read by a second implementation: the Python reader in
//! `test-vectors/python/coffer_repo.py`, written from FORMAT.md alone, restores a
//! snapshot this crate wrote, and the restored tree must equal the source in every
//! path, kind, content, mode, owner, nanosecond mtime, symlink target, hard link and
//! `user.` extended attribute. It also lists the snapshots.
//!
//! The test fails, never skips, when python3 or the reader's packages are missing:
//! `python3 -m pip install -r test-vectors/python/requirements.txt`.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use coffer_adapters::repo::backup::{self, BackupOptions};
use coffer_adapters::repo::check;
use coffer_adapters::repo::keyfile::Unlock;
use coffer_adapters::repo::keys::Access;
use coffer_adapters::repo::Repository;
use coffer_adapters::storage::{LocalStorage, Storage};
use coffer_core::passphrase::Argon2Params;
use coffer_core::SecretKey;
use filetime::FileTime;
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

const INSTALL_HINT: &str = "python3 -m pip install -r test-vectors/python/requirements.txt";
const XATTR_NAME: &str = "user.coffer.test";
const PASSPHRASE: &[u8] = b"correct horse battery staple";

fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    OsRng.fill_bytes(&mut out);
    out
}

/// A nanosecond mtime that differs per entry, set without following symlinks.
fn set_mtime(path: &Path, seed: i64) {
    let t = FileTime::from_unix_time(
        1_600_000_000 + seed * 7_919,
        (seed * 123_457 % 1_000_000_000) as u32,
    );
    filetime::set_symlink_file_times(path, t, t).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Every kind the format records (but devices and sockets), in assorted modes, with
/// nanosecond mtimes set last, deepest first. Returns whether `user.` xattrs stuck.
fn make_tree(root: &Path) -> bool {
    let non_utf8 = root.join(OsStr::from_bytes(b"caf\xe9-latin1 name"));
    for d in ["a/b/c", "empty", "ro", "sticky"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("empty-file"), b"").unwrap();
    std::fs::write(root.join("big.bin"), random_bytes(3_000_000)).unwrap();
    std::fs::write(root.join("a/b/c/deep.txt"), b"deep\n".repeat(300)).unwrap();
    std::fs::write(root.join("a/b/notes.txt"), b"version one\n").unwrap();
    std::fs::write(root.join("ro/inside"), b"in a read-only folder").unwrap();
    std::fs::write(&non_utf8, b"a name that is not UTF-8").unwrap();
    std::fs::write(root.join("setuid-tool"), b"#!/bin/sh\n").unwrap();
    make_sparse(&root.join("sparse.img"));
    std::os::unix::fs::symlink("a/b/notes.txt", root.join("link")).unwrap();
    std::os::unix::fs::symlink("/nowhere/at/all", root.join("dangling")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    std::fs::write(root.join("a/linked"), b"one inode, two names").unwrap();
    std::fs::hard_link(root.join("a/linked"), root.join("linked-too")).unwrap();
    let xattrs = xattr::set(root.join("a/b/notes.txt"), XATTR_NAME, b"tagged\0value").is_ok();
    if rustix::process::geteuid().is_root() {
        // A number with no name on this machine: restored as the number.
        std::os::unix::fs::lchown(root.join("a/b/c/deep.txt"), Some(54_321), Some(54_322)).unwrap();
    }
    for (path, mode) in [
        ("big.bin", 0o600),
        ("a/b/notes.txt", 0o640),
        ("a/b/c/deep.txt", 0o444),
        ("setuid-tool", 0o4755),
        ("empty-file", 0o604),
        ("fifo", 0o620),
        ("a/b/c", 0o750),
        ("ro", 0o555),
        ("sticky", 0o1777),
        ("empty", 0o700),
    ] {
        chmod(&root.join(path), mode);
    }
    set_all_mtimes(root);
    xattrs
}

/// 12 MiB that start with a 5 MiB hole (a whole chunk of zeros whatever the cut
/// points) and hold 1000 random bytes at 5 MiB and at 9 MiB.
fn make_sparse(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    f.set_len(12 << 20).unwrap();
    for at in [5u64 << 20, 9 << 20] {
        f.seek(SeekFrom::Start(at)).unwrap();
        f.write_all(&random_bytes(1000)).unwrap();
    }
}

/// Distinct nanosecond mtimes on every entry, children before their folder.
fn set_all_mtimes(root: &Path) {
    let mut entries = walk(root);
    entries.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, p) in entries.iter().enumerate() {
        set_mtime(p, i as i64 + 1);
    }
    set_mtime(root, 0);
}

/// Every path under `root` (not `root` itself), without following symlinks.
fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

/// One entry, everything compared: kind and mode, owner, mtime to the nanosecond,
/// content (or target), link count, `user.` xattrs.
fn describe_entry(path: &Path) -> String {
    let m = std::fs::symlink_metadata(path).unwrap();
    let ft = m.file_type();
    let detail = if ft.is_symlink() {
        format!("-> {:?}", std::fs::read_link(path).unwrap())
    } else if ft.is_file() {
        let data = std::fs::read(path).unwrap();
        format!("{} bytes sha256 {}", data.len(), sha256_hex(&data))
    } else {
        String::new()
    };
    // A symlink's mode bits are always 777 on Linux; its type is what counts.
    let mode = if ft.is_symlink() {
        m.mode() & !0o7777
    } else {
        m.mode()
    };
    let mut xattrs: Vec<String> = xattr::list(path)
        .map(|names| names.collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.as_bytes().starts_with(b"user."))
        .map(|n| {
            let v = xattr::get(path, &n).unwrap().unwrap_or_default();
            format!("{}={}", n.to_string_lossy(), hex::encode(v))
        })
        .collect();
    xattrs.sort();
    format!(
        "mode {mode:o} owner {}:{} mtime {}.{:09} nlink {} xattrs [{}] {detail}",
        m.uid(),
        m.gid(),
        m.mtime(),
        m.mtime_nsec(),
        if ft.is_dir() { 0 } else { m.nlink() },
        xattrs.join(", ")
    )
}

/// Relative path (as bytes, escaped) -> description, for `root` and everything under it.
fn describe(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert(".".to_owned(), describe_entry(root));
    for p in walk(root) {
        let rel = p
            .strip_prefix(root)
            .unwrap()
            .as_os_str()
            .as_bytes()
            .escape_ascii();
        out.insert(rel.to_string(), describe_entry(&p));
    }
    out
}

/// The sets of paths that share an inode (hard links), as relative paths.
fn link_groups(root: &Path) -> Vec<Vec<String>> {
    let mut by_inode: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    for p in walk(root) {
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.is_file() && m.nlink() > 1 {
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .escape_ascii();
            by_inode
                .entry((m.dev(), m.ino()))
                .or_default()
                .push(rel.to_string());
        }
    }
    let mut groups: Vec<Vec<String>> = by_inode
        .into_values()
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    groups.sort();
    groups
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-vectors/python/coffer_repo.py")
}

/// Runs `python3 args…`, failing (never skipping) when python3 is missing.
fn python<S: AsRef<OsStr>>(args: &[S]) -> Output {
    match Command::new("python3").args(args).output() {
        Ok(out) => out,
        Err(e) => panic!("cannot run python3 ({e}); install Python 3 and then: {INSTALL_HINT}"),
    }
}

/// The reader's packages must be importable; a missing one fails the test.
fn require_python_packages() {
    let out = python(&["-c", "import cryptography, argon2, zstandard"]);
    assert!(
        out.status.success(),
        "the Python reader's packages are missing ({}); run: {INSTALL_HINT}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Runs the reader's command line and returns its standard output.
fn run_reader(args: &[&OsStr]) -> String {
    let script = script();
    let mut all: Vec<&OsStr> = vec![script.as_os_str()];
    all.extend_from_slice(args);
    let out = python(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "the Python reader's packages are missing: {INSTALL_HINT}\n{stderr}"
    );
    assert!(
        out.status.success(),
        "coffer_repo.py {args:?} failed:\n{stderr}"
    );
    assert!(stderr.trim().is_empty(), "coffer_repo.py warned:\n{stderr}");
    String::from_utf8(out.stdout).unwrap()
}

fn write_kek_file(path: &Path, kek: &[u8; 32]) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    writeln!(f, "{}", hex::encode(kek)).unwrap();
}

fn options() -> BackupOptions {
    BackupOptions {
        host: "python-test-host".into(),
        program: "coffer repo_python test".into(),
        ..BackupOptions::default()
    }
}

#[test]
fn the_python_reader_restores_what_coffer_backed_up() {
    require_python_packages();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let xattrs = make_tree(&src);

    let mut kek = [0u8; 32];
    OsRng.fill_bytes(&mut kek);
    let unlock = Unlock::Kek(SecretKey::from_bytes(kek));
    let repo_dir = work.path().join("repo");
    let store: Arc<dyn Storage> = Arc::new(LocalStorage::open(&repo_dir).unwrap());
    let repo = Repository::init(Arc::clone(&store), "", &unlock, Argon2Params::MIN).unwrap();

    let first = backup::backup(&repo, std::slice::from_ref(&src), &options()).unwrap();
    assert!(first.skipped.is_empty(), "{:?}", first.skipped);
    let second = backup::backup(&repo, std::slice::from_ref(&src), &options()).unwrap();
    assert_eq!(second.summary.new_blobs, 0, "{:?}", second.summary);
    // A change: new content and a new nanosecond mtime.
    std::fs::write(src.join("a/b/notes.txt"), b"version two, longer\n").unwrap();
    set_mtime(&src.join("a/b/notes.txt"), 4242);
    let third = backup::backup(&repo, std::slice::from_ref(&src), &options()).unwrap();
    assert!(third.skipped.is_empty(), "{:?}", third.skipped);
    assert_eq!(third.summary.files_read, 1, "{:?}", third.summary);
    // An index superseding the others (FORMAT.md §17), a full key file under a
    // passphrase and a write-only one under another KEK (§21).
    let (rebuilt, problems) = check::rebuild_index(&repo).unwrap();
    assert!(
        problems.is_empty() && !rebuilt.packs.is_empty(),
        "{problems:?}"
    );
    let master = repo.master_from(&unlock).unwrap();
    let passphrase = Unlock::Passphrase(Zeroizing::new(PASSPHRASE.to_vec()));
    repo.add_full_key(&master, &passphrase, Argon2Params::MIN)
        .unwrap();
    let mut writer_kek = [0u8; 32];
    OsRng.fill_bytes(&mut writer_kek);
    let writer_unlock = Unlock::Kek(SecretKey::from_bytes(writer_kek));
    repo.add_key(Access::WriteOnly, &writer_unlock, Argon2Params::MIN)
        .unwrap();

    let kek_file = work.path().join("kek.hex");
    write_kek_file(&kek_file, &kek);
    let out = work.path().join("restored");
    let snapshot_hex = hex::encode(third.snapshot);
    run_reader(&[
        OsStr::new("restore"),
        OsStr::new("--repo"),
        repo_dir.as_os_str(),
        OsStr::new("--kek-file"),
        kek_file.as_os_str(),
        OsStr::new("--snapshot"),
        OsStr::new(&snapshot_hex[..12]),
        OsStr::new("--target"),
        out.as_os_str(),
    ]);

    // The root tree holds the path's components from `/` down (FORMAT.md §19).
    let restored = out.join(src.strip_prefix("/").unwrap());
    let (want, got) = (describe(&src), describe(&restored));
    assert_eq!(
        want.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "the same paths"
    );
    for (path, entry) in &want {
        assert_eq!(entry, &got[path], "{path}");
    }
    assert_eq!(link_groups(&src), link_groups(&restored), "hard links");
    assert_eq!(link_groups(&restored).len(), 1, "one pair of hard links");
    if xattrs {
        assert!(
            got["a/b/notes.txt"].contains(XATTR_NAME),
            "{}",
            got["a/b/notes.txt"]
        );
    }
    // Holes came back as holes.
    let (s, r) = (
        std::fs::metadata(src.join("sparse.img")).unwrap(),
        std::fs::metadata(restored.join("sparse.img")).unwrap(),
    );
    if s.blocks() * 512 < s.len() / 2 {
        assert!(
            r.blocks() * 512 < r.len() / 2,
            "restored sparse file: {} blocks for {} bytes",
            r.blocks(),
            r.len()
        );
    }

    // The listing: one line per snapshot, each naming its ID, host and path.
    let listing = run_reader(&[
        OsStr::new("snapshots"),
        OsStr::new("--repo"),
        repo_dir.as_os_str(),
        OsStr::new("--kek-file"),
        kek_file.as_os_str(),
    ]);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 3, "{listing}");
    let mut listed: Vec<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    let mut ids: Vec<String> = [first.snapshot, second.snapshot, third.snapshot]
        .iter()
        .map(hex::encode)
        .collect();
    listed.sort_unstable();
    ids.sort();
    assert_eq!(listed, ids, "{listing}");
    let src_text = src.to_str().unwrap();
    for line in &lines {
        assert!(
            line.contains("python-test-host") && line.contains(src_text),
            "{line}"
        );
    }

    // The passphrase key file opens too (Argon2id, §7) and lists the same.
    let passphrase_file = work.path().join("passphrase");
    std::fs::write(&passphrase_file, PASSPHRASE).unwrap();
    let by_passphrase = run_reader(&[
        OsStr::new("snapshots"),
        OsStr::new("--repo"),
        repo_dir.as_os_str(),
        OsStr::new("--passphrase-file"),
        passphrase_file.as_os_str(),
    ]);
    assert_eq!(by_passphrase, listing);

    // A write-only key opens the repository but no snapshot (§12).
    let writer_kek_file = work.path().join("writer-kek.hex");
    write_kek_file(&writer_kek_file, &writer_kek);
    let script = script();
    let refused = python(&[
        script.as_os_str(),
        OsStr::new("snapshots"),
        OsStr::new("--repo"),
        repo_dir.as_os_str(),
        OsStr::new("--kek-file"),
        writer_kek_file.as_os_str(),
    ]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("write-only"),
        "{stderr}"
    );
}
