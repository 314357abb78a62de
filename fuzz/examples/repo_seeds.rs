//! Writes the seeds of the repository fuzz targets: valid objects made by the adapters'
//! encoders (and, for sealed objects, the deterministic sealing of
//! `coffer_fuzz::repo`), checked here against the adapters' own decoders and openers.
//!
//! Usage: `cargo run --example repo_seeds -- <dir>` writes `<dir>/<target>/<label>`;
//! `seed-corpora.sh` runs it and copies the files into `corpus/<target>/` under their
//! SHA-1, like every other seed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use coffer_adapters::repo::cache::WriterCache;
use coffer_adapters::repo::config::Config;
use coffer_adapters::repo::index::{IndexFile, PackRecord};
use coffer_adapters::repo::keyfile::{self, Unlock};
use coffer_adapters::repo::keys::Access;
use coffer_adapters::repo::locks::LockInfo;
use coffer_adapters::repo::object::{self, SUITE};
use coffer_adapters::repo::pack::{self, BlobKind, Compression, PackBuilder, TRAILER_LEN};
use coffer_adapters::repo::snapshot::{Snapshot, Summary};
use coffer_adapters::repo::tree::{ContentRef, Node, NodeKind, Tree, Xattr};
use coffer_core::envelope::Purpose;
use coffer_core::passphrase::{self, Argon2Block, Argon2Params};
use coffer_core::RustCrypto;
use coffer_fuzz::repo::{self as fixtures, valid, KEY_FILE_NAME, REPO_ID};
use coffer_fuzz::{fuzz_key, rng};
use zeroize::Zeroizing;

/// FORMAT.md §18.5's worked example, whose encoding the spec gives in hex.
const SPEC_TREE_HEX: &str = "0201096e6f7465732e7478740003001111111111111111111111111111111111111111111111111111111111111111e8070180200022222222222222222222222222222222222222222222222222222222222222\
22ac02a403e8076405616c69636505757365727380c49fd50c959aef3a0100828008811001942a0108757365722e7461670178";

struct Out(PathBuf);

impl Out {
    fn put(&self, target: &str, label: &str, bytes: &[u8]) {
        let dir = self.0.join(target);
        std::fs::create_dir_all(&dir).expect("creating the seed folder");
        std::fs::write(dir.join(label), bytes).expect("writing a seed");
    }
}

fn main() {
    let dir = std::env::args_os().nth(1).expect("usage: repo_seeds <dir>");
    let out = Out(Path::new(&dir).to_path_buf());
    packs_and_indexes(&out);
    trees(&out);
    snapshots(&out);
    configs(&out);
    key_files(&out);
    sealed(&out);
    small_records(&out);
}

fn packs_and_indexes(out: &Out) {
    let many: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; usize::from(i) * 3]).collect();
    let mut builder = PackBuilder::new();
    for (i, blob) in many.iter().enumerate() {
        let (kind, compression) = match i % 3 {
            0 => (BlobKind::Data, Compression::None),
            1 => (BlobKind::Tree, Compression::None),
            _ => (BlobKind::Data, Compression::Zstd),
        };
        let raw_len = blob.len() * (1 + usize::from(compression == Compression::Zstd));
        builder
            .add([i as u8; 32], kind, compression, blob, raw_len)
            .expect("small blobs");
    }
    let (big, big_entries) = builder.finish();
    let (one, one_entries) = {
        let mut b = PackBuilder::new();
        b.add([9; 32], BlobKind::Data, Compression::None, b"x", 1)
            .expect("a small blob");
        b.finish()
    };
    let empty = PackBuilder::new().finish().0;
    for (label, plain) in [
        ("empty", &empty),
        ("one", &one),
        ("sample", &fixtures::sample_pack()),
        ("twenty", &big),
    ] {
        let at = plain.len() - TRAILER_LEN;
        let (off, len) = pack::parse_trailer(&plain[at..], plain.len() as u64).expect("trailer");
        pack::parse_toc(&plain[off as usize..(off + len) as usize], off).expect("table");
        out.put("repo_pack_toc", label, plain);
    }

    let indexes = [
        ("empty", IndexFile::default()),
        (
            "two-packs",
            IndexFile {
                packs: vec![
                    PackRecord {
                        id: [1; 16],
                        object_len: 4096,
                        entries: one_entries,
                    },
                    PackRecord {
                        id: [2; 16],
                        object_len: 1 << 20,
                        entries: big_entries,
                    },
                ],
                supersedes: vec![[3; 16], [4; 16]],
            },
        ),
    ];
    for (label, index) in indexes {
        let bytes = index.encode();
        assert_eq!(IndexFile::decode("index", &bytes).expect("index"), index);
        out.put("repo_index", label, &bytes);
    }
}

fn node(name: &str, kind: NodeKind, size: u64) -> Node {
    Node {
        name: name.as_bytes().to_vec(),
        kind,
        mode: 0o644,
        uid: 1000,
        gid: 100,
        user: "alice".into(),
        group: "users".into(),
        mtime: 1_700_000_000,
        mtime_ns: 123_456_789,
        ctime: -1,
        ctime_ns: 0,
        inode: 131_074,
        dev: 2049,
        nlink: 1,
        size,
        xattrs: Vec::new(),
    }
}

fn trees(out: &Out) {
    let mut notes = node(
        "notes.txt",
        NodeKind::File {
            content: vec![
                ContentRef::Data {
                    id: [0x11; 32],
                    len: 1000,
                },
                ContentRef::Hole { len: 4096 },
                ContentRef::Data {
                    id: [0x22; 32],
                    len: 300,
                },
            ],
        },
        5396,
    );
    notes.xattrs = vec![Xattr {
        name: b"user.tag".to_vec(),
        value: b"x".to_vec(),
    }];
    let spec = Tree {
        version: 2,
        nodes: vec![notes],
    };
    assert_eq!(hex::encode(spec.encode()), SPEC_TREE_HEX, "FORMAT.md §18.5");

    let mut kinds = vec![
        node("block", NodeKind::BlockDevice { rdev: 0x0801 }, 0),
        node("char", NodeKind::CharDevice { rdev: 0x0501 }, 0),
        node(
            "dir",
            NodeKind::Dir {
                subtree: [0x33; 32],
            },
            0,
        ),
        node("empty", NodeKind::File { content: vec![] }, 0),
        node("fifo", NodeKind::Fifo, 0),
        node(
            "link",
            NodeKind::Symlink {
                target: b"../dir".to_vec(),
            },
            0,
        ),
        node("sock", NodeKind::Socket, 0),
    ];
    kinds[2].xattrs = vec![
        Xattr {
            name: b"security.selinux".to_vec(),
            value: b"system_u:object_r:data_t:s0".to_vec(),
        },
        Xattr {
            name: b"user.a".to_vec(),
            value: Vec::new(),
        },
    ];
    let all = Tree {
        version: 2,
        nodes: kinds,
    };
    let empty = Tree {
        version: 2,
        nodes: Vec::new(),
    };
    for (label, tree) in [
        ("spec-18.5", &spec),
        ("every-kind", &all),
        ("empty", &empty),
    ] {
        let bytes = tree.encode();
        assert_eq!(&Tree::decode(&bytes).expect("tree"), tree);
        out.put("repo_tree", label, &bytes);
    }
}

fn snapshots(out: &Out) {
    let minimal = Snapshot {
        version: 2,
        time: 0,
        time_ns: 0,
        host: String::new(),
        user: String::new(),
        paths: Vec::new(),
        tags: Vec::new(),
        parent: None,
        tree: [0; 32],
        program: String::new(),
        command: None,
        summary: Summary::default(),
    }
    .encode()
    .expect("snapshot");
    for (label, bytes) in [("full", fixtures::sample_snapshot()), ("minimal", minimal)] {
        Snapshot::decode("snapshot", &bytes).expect("snapshot");
        out.put("repo_snapshot", label, &bytes);
    }
}

fn configs(out: &Out) {
    let v = valid();
    let key = fixtures::config_key();
    assert_eq!(
        Config::open(&v.config_object, &key).expect("config"),
        v.config
    );
    out.put("repo_config", "valid", &v.config_object);
    out.put("repo_config", "plaintext", &v.config.encode());

    // Sealed under the right key and context, and still refused.
    let mut moved = v.config.clone();
    moved.id = [0xee; 16];
    let mut bad_chunker = v.config.clone();
    bad_chunker.chunker.mask_bits = 40;
    let refused = [
        (
            "other-id-inside",
            fixtures::seal_config(&REPO_ID, &moved.encode(), 11),
        ),
        (
            "short-plaintext",
            fixtures::seal_config(&REPO_ID, &v.config.encode()[..75], 12),
        ),
        (
            "bad-chunker",
            fixtures::seal_config(&REPO_ID, &bad_chunker.encode(), 13),
        ),
    ];
    for (label, bytes) in refused {
        assert!(Config::open(&bytes, &key).is_err(), "{label}");
        out.put("repo_config", label, &bytes);
    }
    out.put(
        "repo_config",
        "bad-chunker-plaintext",
        &bad_chunker.encode(),
    );
}

fn key_files(out: &Out) {
    let v = valid();
    for f in &v.key_files {
        let got = keyfile::open(
            KEY_FILE_NAME,
            &f.bytes,
            &REPO_ID,
            &Unlock::Kek(fixtures::kek()),
        )
        .expect("key file")
        .expect("a key file under this KEK");
        assert_eq!((got.0, &got.1), (f.access, &f.secret));
        out.put("repo_keyfile", &format!("valid-{:?}", f.access), &f.bytes);
    }

    // Another KEK's file, and another repository's: Ok(None) and an error.
    let other_kek = fixtures::key_file(Access::Full, 2, &REPO_ID, &fuzz_key(), &fuzz_key(), 21);
    let unlock = Unlock::Kek(fixtures::kek());
    assert!(keyfile::open(KEY_FILE_NAME, &other_kek, &REPO_ID, &unlock)
        .expect("another KEK's file")
        .is_none());
    out.put("repo_keyfile", "other-kek", &other_kek);
    let other_repo = fixtures::key_file(
        Access::Full,
        2,
        &[0xee; 16],
        &fuzz_key(),
        &fixtures::kek(),
        22,
    );
    assert!(keyfile::open(KEY_FILE_NAME, &other_repo, &REPO_ID, &unlock).is_err());
    out.put("repo_keyfile", "other-repo", &other_repo);

    // A passphrase file (Argon2id at its minimum): a KEK gets Ok(None) without a run.
    let passphrase = b"fuzz passphrase";
    let mut file = fixtures::key_file_head(Access::WriteOnly, 1, &REPO_ID);
    let mut memory = vec![Argon2Block::default(); Argon2Params::MIN.blocks()];
    let env = passphrase::wrap_with_passphrase(
        &RustCrypto,
        SUITE,
        passphrase,
        &fixtures::writer(),
        Purpose::RepositoryKey,
        1,
        Argon2Params::MIN,
        &fixtures::key_file_context(&file, &REPO_ID),
        &mut rng(23),
        &mut memory,
    )
    .expect("passphrase envelope");
    file.extend_from_slice(&env);
    let pass = Unlock::Passphrase(Zeroizing::new(passphrase.to_vec()));
    let (access, secret) = keyfile::open(KEY_FILE_NAME, &file, &REPO_ID, &pass)
        .expect("passphrase file")
        .expect("a passphrase file opens with its passphrase");
    assert_eq!((access, secret), (Access::WriteOnly, fixtures::writer()));
    assert!(keyfile::open(KEY_FILE_NAME, &file, &REPO_ID, &unlock)
        .expect("a passphrase file given a KEK")
        .is_none());
    out.put("repo_keyfile", "passphrase", &file);
}

fn sealed(out: &Out) {
    let v = valid();
    for s in &v.sealed {
        let opened = object::open_from(&v.secret, s.kind, &REPO_ID, &s.name, &s.bytes)
            .expect("a sealed object");
        assert_eq!(opened, s.plaintext);
        let (key, _) = object::object_key(&v.secret, s.kind, &REPO_ID, &s.name, &s.bytes)
            .expect("its object key");
        assert!(key == s.key);
        out.put("repo_sealed_object", &format!("{:?}", s.kind), &s.bytes);
    }
}

fn small_records(out: &Out) {
    for (label, lock) in [
        (
            "lock-exclusive",
            LockInfo {
                exclusive: true,
                host: "nas".into(),
                pid: 4242,
                time: 1_790_000_000,
            },
        ),
        (
            "lock-shared",
            LockInfo {
                exclusive: false,
                host: String::new(),
                pid: u32::MAX,
                time: -1,
            },
        ),
    ] {
        out.put(
            "repo_postcard_small",
            label,
            &postcard::to_allocvec(&lock).expect("lock"),
        );
    }
    let tree = Tree {
        version: 2,
        nodes: Vec::new(),
    }
    .encode();
    let cache = WriterCache {
        snapshot: [0xcd; 16],
        root: [0x11; 32],
        trees: BTreeMap::from([([0x11; 32], tree.clone()), ([0x22; 32], tree)]),
    };
    out.put(
        "repo_postcard_small",
        "cache",
        &postcard::to_allocvec(&cache).expect("cache"),
    );
    out.put(
        "repo_postcard_small",
        "cache-empty",
        &postcard::to_allocvec(&WriterCache::default()).expect("cache"),
    );
}
