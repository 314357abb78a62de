//! A small repository written by the engine: `test-vectors/repository/`.
//!
//! The generator builds a source tree in a temporary folder, creates a repository with
//! small chunker parameters, adds a write-only key file and a passphrase key file, backs
//! the tree up, changes it and backs it up again, all through the engine's own
//! `Repository::init_with`, `add_key`, `add_full_key` and `backup`. The engine runs in its
//! reproducible mode (`repo::random::Reproducible`): every random byte from a generator
//! seeded here, the clock set here, the tree read as if its folder were `/`, and each
//! scanned entry's machine-specific metadata (inode and device numbers, change time,
//! owner, link count of directories, extended attributes) replaced by fixed values.
//! The repository is then the same, byte for byte, on every run and every machine.
//!
//! What a restore must give back is written down from the source tree as built here
//! (never from reading the repository) in the README's listing.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use coffer_adapters::repo::backup::{self, BackupOptions};
use coffer_adapters::repo::config::ChunkerSizes;
use coffer_adapters::repo::keyfile::Unlock;
use coffer_adapters::repo::keys::Access;
use coffer_adapters::repo::random::Reproducible;
use coffer_adapters::repo::tree::{Node, NodeKind};
use coffer_adapters::repo::{InitOptions, Repository};
use coffer_adapters::storage::LocalStorage;
use coffer_core::passphrase::Argon2Params;
use coffer_core::SecretKey;
use filetime::FileTime;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The folder under `test-vectors/`.
pub const DIR: &str = "repository";
/// The passphrase of the passphrase key file.
pub const PASSPHRASE: &str = "correct horse battery staple";
/// The host the backups record.
const HOST: &str = "vectors.example";
/// The chunker parameters: small, so a few KiB make many chunks.
const CHUNKER: ChunkerSizes = ChunkerSizes {
    min_size: 256,
    mask_bits: 6,
    max_size: 4096,
};
/// When the repository was created, and when each backup ran.
const CREATED: (i64, u32) = (1_767_222_000, 0);
const BACKUP_TIMES: [(i64, u32); 2] = [(1_767_225_600, 123_456_789), (1_767_312_000, 987_654_321)];

/// What an entry of the source tree is.
#[derive(Clone)]
pub enum What {
    Dir,
    File(Vec<u8>),
    Link(Vec<u8>),
    Fifo,
    Socket,
    /// A second name of the file at this path.
    HardLink(Vec<u8>),
}

/// One entry, its path relative to the folder that stands for `/`.
#[derive(Clone)]
pub struct Entry {
    pub path: Vec<u8>,
    pub what: What,
    pub mode: u32,
    pub mtime: (i64, u32),
}

fn entry(path: &[u8], what: What, mode: u32, n: i64) -> Entry {
    // A different nanosecond mtime for each entry.
    let mtime = (
        1_767_000_000 + n * 3_607,
        (n as u32 * 123_456_791) % 1_000_000_000,
    );
    Entry {
        path: path.to_vec(),
        what,
        mode,
        mtime,
    }
}

fn log_lines(rng: &mut ChaCha20Rng, from: usize, to: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in from..to {
        let request = rng.next_u32() % 10_000;
        out.extend_from_slice(
            format!(
                "2026-01-01T00:{:02}:{:02}Z GET /item/{request} 200 ({i})\n",
                i / 60 % 60,
                i % 60
            )
            .as_bytes(),
        );
    }
    out
}

fn random(rng: &mut ChaCha20Rng, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    rng.fill_bytes(&mut out);
    out
}

/// The source tree of each snapshot.
pub fn trees(rng: &mut ChaCha20Rng) -> [Vec<Entry>; 2] {
    let photo = random(rng, 12_000);
    let log = log_lines(rng, 0, 300);
    let sparse = [random(rng, 3000), vec![0; 20_000], random(rng, 1000)].concat();
    let readme = b"Coffer test-vector source tree.\n".repeat(40);
    let first = vec![
        entry(b"home", What::Dir, 0o755, 1),
        entry(b"home/alice", What::Dir, 0o700, 2),
        entry(
            b"home/alice/.profile",
            What::File(b"export EDITOR=vi\n".to_vec()),
            0o644,
            3,
        ),
        entry(
            b"home/alice/notes.md",
            What::File(b"# Notes\n\n- back up the NAS\n".repeat(20)),
            0o600,
            4,
        ),
        entry(b"srv", What::Dir, 0o755, 5),
        entry(b"srv/data", What::Dir, 0o755, 6),
        entry(b"srv/data/README.txt", What::File(readme), 0o644, 7),
        entry(
            b"srv/data/caf\xe9.txt",
            What::File(b"a name that is not UTF-8\n".to_vec()),
            0o644,
            8,
        ),
        entry(b"srv/data/control.sock", What::Socket, 0o755, 9),
        entry(
            b"srv/data/dangling",
            What::Link(b"/nonexistent/target".to_vec()),
            0o777,
            10,
        ),
        entry(b"srv/data/disk.img", What::File(sparse), 0o640, 11),
        entry(b"srv/data/empty", What::File(Vec::new()), 0o644, 12),
        entry(
            b"srv/data/hard-a",
            What::File(b"one inode, two names\n".to_vec()),
            0o640,
            13,
        ),
        entry(
            b"srv/data/hard-b",
            What::HardLink(b"srv/data/hard-a".to_vec()),
            0o640,
            13,
        ),
        entry(
            b"srv/data/link",
            What::Link(b"README.txt".to_vec()),
            0o777,
            14,
        ),
        entry(b"srv/data/logs", What::Dir, 0o750, 15),
        entry(b"srv/data/logs/app.log", What::File(log.clone()), 0o640, 16),
        entry(b"srv/data/photos", What::Dir, 0o755, 17),
        entry(
            b"srv/data/photos/cat-copy.jpg",
            What::File(photo.clone()),
            0o600,
            18,
        ),
        entry(b"srv/data/photos/cat.jpg", What::File(photo), 0o644, 19),
        entry(b"srv/data/pipe", What::Fifo, 0o620, 20),
        entry(
            b"srv/data/run.sh",
            What::File(b"#!/bin/sh\necho hello\n".to_vec()),
            0o755,
            21,
        ),
        entry(b"srv/data/shared", What::Dir, 0o1777, 22),
        entry(
            b"srv/data/shared/todo.txt",
            What::File(b"nothing\n".to_vec()),
            0o666,
            23,
        ),
    ];
    // The second backup: the log grew, a file appeared (so srv/data changed), the rest
    // is as it was.
    let mut second = first.clone();
    for e in &mut second {
        if e.path == b"srv/data/logs/app.log" {
            let more = log_lines(rng, 300, 340);
            e.what = What::File([log.clone(), more].concat());
            e.mtime = (e.mtime.0 + 86_400, 5);
        }
        if e.path == b"srv/data" {
            e.mtime = (e.mtime.0 + 86_400, 6);
        }
    }
    second.push(entry(
        b"srv/data/new.txt",
        What::File(b"added for the second snapshot\n".to_vec()),
        0o644,
        24,
    ));
    second.sort_by(|a, b| a.path.cmp(&b.path));
    [first, second]
}

fn os(path: &[u8]) -> &Path {
    Path::new(std::ffi::OsStr::from_bytes(path))
}

/// Makes (or updates) the entries under `root`, then sets every mode and mtime, the
/// directories' last and deepest first.
fn materialize(root: &Path, entries: &[Entry]) {
    for e in entries {
        let p = root.join(os(&e.path));
        let exists = std::fs::symlink_metadata(&p).is_ok();
        match &e.what {
            What::Dir if !exists => std::fs::create_dir(&p).unwrap(),
            What::File(content) => std::fs::write(&p, content).unwrap(),
            What::Link(target) if !exists => std::os::unix::fs::symlink(os(target), &p).unwrap(),
            What::Fifo if !exists => rustix::fs::mknodat(
                rustix::fs::CWD,
                &p,
                rustix::fs::FileType::Fifo,
                rustix::fs::Mode::from_raw_mode(0o600),
                0,
            )
            .unwrap(),
            What::Socket if !exists => {
                drop(std::os::unix::net::UnixListener::bind(&p).unwrap());
            }
            What::HardLink(first) if !exists => {
                std::fs::hard_link(root.join(os(first)), &p).unwrap()
            }
            _ => {}
        }
    }
    for e in entries.iter().rev() {
        let p = root.join(os(&e.path));
        if !matches!(e.what, What::Link(_)) {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(e.mode)).unwrap();
        }
        let t = FileTime::from_unix_time(e.mtime.0, e.mtime.1);
        filetime::set_symlink_file_times(&p, t, t).unwrap();
    }
}

/// Replaces what differs between machines in a scanned entry (see the module's docs).
fn normalizer() -> Box<dyn FnMut(&mut Node) + Send> {
    let mut inodes: HashMap<(u64, u64), u64> = HashMap::new();
    Box::new(move |n: &mut Node| {
        let next = inodes.len() as u64 + 1;
        n.inode = *inodes.entry((n.dev, n.inode)).or_insert(next);
        n.dev = 1;
        n.uid = 1000;
        n.gid = 1000;
        n.user = "alice".into();
        n.group = "alice".into();
        n.ctime = n.mtime;
        n.ctime_ns = n.mtime_ns;
        n.xattrs.clear();
        if matches!(n.kind, NodeKind::Dir { .. }) {
            n.nlink = 1;
        }
    })
}

/// The repository's files (path under `test-vectors/repository/`, bytes), README.md and
/// the key files' secrets included, in path order.
pub fn repository_files() -> Vec<(String, Vec<u8>)> {
    let mut rng = ChaCha20Rng::seed_from_u64(0xC0FF_EE07);
    let kek: [u8; 32] = random(&mut rng, 32).try_into().unwrap();
    let wo_kek: [u8; 32] = random(&mut rng, 32).try_into().unwrap();
    let engine_seed: [u8; 32] = random(&mut rng, 32).try_into().unwrap();
    let trees = trees(&mut rng);

    let src = tempfile::tempdir().unwrap();
    let root = src.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let out = tempfile::tempdir().unwrap();
    let store = Arc::new(LocalStorage::open(out.path()).unwrap());
    let now = Arc::new(Mutex::new(CREATED));
    let clock = Arc::clone(&now);
    let options = InitOptions {
        chunker: CHUNKER,
        reproducible: Some(Reproducible {
            rng: Box::new(ChaCha20Rng::from_seed(engine_seed)),
            clock: Box::new(move || *clock.lock().unwrap()),
            root: root.clone(),
            scanned: normalizer(),
        }),
    };
    let min = Argon2Params::MIN;
    let by_kek = Unlock::Kek(SecretKey::from_bytes(kek));
    let repo = Repository::init_with(store, "", &by_kek, min, options).unwrap();
    repo.add_key(
        Access::WriteOnly,
        &Unlock::Kek(SecretKey::from_bytes(wo_kek)),
        min,
    )
    .unwrap();
    let master = repo.master_from(&by_kek).unwrap();
    let by_pass = Unlock::Passphrase(Zeroizing::new(PASSPHRASE.as_bytes().to_vec()));
    repo.add_full_key(&master, &by_pass, min).unwrap();

    let mut snapshots = Vec::new();
    for (entries, time) in trees.iter().zip(BACKUP_TIMES) {
        materialize(&root, entries);
        *now.lock().unwrap() = time;
        let report = backup::backup(
            &repo,
            &[PathBuf::from("/srv/data"), PathBuf::from("/home/alice")],
            &BackupOptions {
                host: HOST.into(),
                tags: vec!["daily".into()],
                program: "coffer test vectors".into(),
                ..BackupOptions::default()
            },
        )
        .unwrap();
        assert!(report.skipped.is_empty(), "{:?}", report.skipped);
        snapshots.push((report.snapshot, time));
    }

    let mut files = Vec::new();
    collect(out.path(), out.path(), &mut files);
    files.push((
        "README.md".into(),
        readme(&kek, &wo_kek, &snapshots, &trees).into_bytes(),
    ));
    files.push((
        "kek.hex".into(),
        format!("{}\n", hex::encode(kek)).into_bytes(),
    ));
    files.push((
        "write-only-kek.hex".into(),
        format!("{}\n", hex::encode(wo_kek)).into_bytes(),
    ));
    files.push((
        "passphrase.txt".into(),
        format!("{PASSPHRASE}\n").into_bytes(),
    ));
    files.sort();
    files
}

fn collect(base: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            collect(base, &p, out);
        } else {
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            out.push((rel, std::fs::read(&p).unwrap()));
        }
    }
}

/// A path or link target as the listing writes it: bytes outside printable ASCII, and
/// `\`, `|` and `` ` ``, as `\xNN`.
pub fn escape(b: &[u8]) -> String {
    b.iter()
        .map(|&c| {
            if (0x20..0x7f).contains(&c) && !b"\\|`".contains(&c) {
                (c as char).to_string()
            } else {
                format!("\\x{c:02x}")
            }
        })
        .collect()
}

/// One line of `coffer_repo.py snapshots`: ID, UTC time to the nanosecond, host, paths.
fn snapshot_line(id: &[u8; 16], (secs, ns): (i64, u32)) -> String {
    let stamp = jiff::Timestamp::from_second(secs)
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%S");
    format!(
        "{}  {stamp}.{ns:09}Z  {HOST}  /home/alice /srv/data",
        hex::encode(id)
    )
}

fn row(snapshot: usize, e: &Entry, entries: &[Entry]) -> String {
    let (kind, size, content) = match &e.what {
        What::Dir => ("dir", 0, "-".to_owned()),
        What::File(c) => (
            "file",
            c.len(),
            format!("sha256:{}", hex::encode(Sha256::digest(c))),
        ),
        What::HardLink(first) => {
            let Some(What::File(c)) = entries.iter().find(|x| &x.path == first).map(|x| &x.what)
            else {
                unreachable!()
            };
            (
                "file",
                c.len(),
                format!(
                    "sha256:{} link:{}",
                    hex::encode(Sha256::digest(c)),
                    escape(first)
                ),
            )
        }
        What::Link(t) => ("symlink", 0, format!("target:{}", escape(t))),
        What::Fifo => ("fifo", 0, "-".to_owned()),
        What::Socket => ("socket", 0, "skipped".to_owned()),
    };
    format!(
        "| {snapshot} | `{}` | {kind} | {:04o} | {}.{:09} | {size} | {content} |",
        escape(&e.path),
        e.mode,
        e.mtime.0,
        e.mtime.1
    )
}

fn readme(
    kek: &[u8; 32],
    wo_kek: &[u8; 32],
    snapshots: &[([u8; 16], (i64, u32))],
    trees: &[Vec<Entry>; 2],
) -> String {
    let mut out = String::from(README_HEAD);
    out += &format!(
        "\n| file | unlocks |\n| --- | --- |\n| `kek.hex` | a full key: KEK `{}` |\n| `write-only-kek.hex` | a write-only key: KEK `{}` |\n| `passphrase.txt` | a full key: passphrase `{PASSPHRASE}` (Argon2id 8192 KiB, 1 pass, 1 lane) |\n",
        hex::encode(kek),
        hex::encode(wo_kek)
    );
    out += "\n## Snapshots\n\n`coffer_repo.py snapshots` prints, oldest first:\n\n```\n";
    for (id, time) in snapshots {
        out += &snapshot_line(id, *time);
        out.push('\n');
    }
    out +=
        "```\n\nSnapshot 1 is the first line, snapshot 2 the second (its parent is snapshot 1).\n";
    out += README_LISTING;
    out += "| snapshot | path | kind | mode | mtime | size | content |\n| --- | --- | --- | --- | --- | --- | --- |\n";
    for (i, entries) in trees.iter().enumerate() {
        for e in entries {
            out += &row(i + 1, e, entries);
            out.push('\n');
        }
    }
    out
}

const README_HEAD: &str = "# A small repository (format v2)

Generated by `adapters/tests/vectors_gen/repository/whole.rs`; do not edit. `cargo test -p
coffer-adapters --test coffer_vectors` fails if these files differ from what it makes, and
restores both snapshots with the Rust engine; `python3 test-vectors/python/apply_vectors.py`
restores them with `coffer_repo.py`. Both compare what they restore with the listing below.

This folder is the repository's root: `config`, `keys/`, `index/`, `snapshots/` and `data/`
are FORMAT.md §21's objects; `README.md` and the three secrets below are not part of it.

**How it was made.** `Repository::init_with` with the chunker parameters `min_size` 256,
`mask_bits` 6, `max_size` 4096 (FORMAT.md §13.1's bounds allow them; they make many
chunks of a few KiB) and a full key file under the KEK; then a write-only key file under a
second KEK and a full key file under a passphrase; then two backups of `/srv/data` and
`/home/alice` (host `vectors.example`, tag `daily`), the second after `srv/data/logs/app.log`
grew and `srv/data/new.txt` appeared, with the first as its parent (unchanged files are
taken from it; unchanged trees, such as `home/alice`'s, are the same blobs).

The engine ran in its reproducible mode, so these bytes come out the same on every run:
every random byte (master key, repository ID, object names, object keys, HPKE ephemeral
keys, salts, the pack each blob goes to) from a ChaCha20 generator with a fixed seed; the
configuration's time and each snapshot's time set by the generator; the source folder read
as if it were `/`; and in every entry scanned, what differs between machines replaced:
inodes numbered 1, 2, … in the order the backup meets them (hard links share theirs),
device 1, owner 1000 `alice`, group 1000 `alice`, ctime equal to mtime, directories' link
count 1, no extended attributes. The snapshots record user `\"\"` and a duration of 0 ms.

**Source tree.** `home/alice` holds a profile and notes; `srv/data` holds a text file, a file
whose name is not UTF-8 (`caf\\xe9.txt`), a Unix socket (recorded, not restored), a dangling
and a relative symbolic link, a 24000-byte disk image whose middle 20000 bytes are zeros
(stored as holes), an empty file, two names of one inode (`hard-a`, `hard-b`), a log that
compresses, two copies of a 12000-byte random photo (stored once), a FIFO, a script, and a
sticky, world-writable folder.
";

const README_LISTING: &str = "
## What a restore gives back

Each snapshot restores to these entries under the target folder (`/srv/data` comes back as
`TARGET/srv/data`), and to nothing else. `mode` is the permission bits in octal (not
applied to symbolic links, whose mode is 0777 on Linux); `mtime` is Unix seconds and
nanoseconds; `content` is the SHA-256 of a file's bytes (with `link:` naming the file it is
a hard link to), a link's target, or `skipped` for a socket, which is not restored. In
paths and targets, bytes outside printable ASCII are written `\\xNN`. Owners are restored
only by root; this listing does not check them.

";
