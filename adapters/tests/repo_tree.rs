//! The tree layer of repositories: the tree codec (FORMAT.md §18) on generated trees
//! and on every kind of broken blob, then a real directory scanned, restored through
//! `fsmeta` into another, and scanned again; and the restore's refusals.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use coffer_adapters::repo::fsmeta::{
    apply_metadata, create_special, running_as_root, same_file, scan_dir, Created, Owners, Scanned,
    SparseWriter,
};
use coffer_adapters::repo::tree::{
    ContentRef, Node, NodeKind, Tree, TreeError, Xattr, MAX_BLOB_LEN, MAX_NODES,
};
use coffer_adapters::Error;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------
// The codec

fn node(name: &[u8], kind: NodeKind, size: u64) -> Node {
    Node {
        name: name.to_vec(),
        kind,
        mode: 0o644,
        uid: 1000,
        gid: 1000,
        user: "alice".into(),
        group: "alice".into(),
        mtime: 1_700_000_000,
        mtime_ns: 5,
        ctime: 1_700_000_001,
        ctime_ns: 999_999_999,
        inode: 7,
        dev: 2049,
        nlink: 1,
        size,
        xattrs: Vec::new(),
    }
}

fn fifo(name: &[u8]) -> Node {
    node(name, NodeKind::Fifo, 0)
}

/// A tree with one node of every kind, a hole, extended attributes and a name that is
/// not UTF-8.
fn every_kind() -> Tree {
    let mut file = node(
        b"file",
        NodeKind::File {
            content: vec![
                ContentRef::Data {
                    id: [1; 32],
                    len: 10,
                },
                ContentRef::Hole { len: 1 << 40 },
            ],
        },
        10 + (1 << 40),
    );
    file.xattrs = vec![
        Xattr {
            name: b"security.selinux".to_vec(),
            value: b"system_u:object_r:user_home_t:s0\0".to_vec(),
        },
        Xattr {
            name: b"user.\xff".to_vec(),
            value: vec![],
        },
    ];
    let nodes = vec![
        node(b"block", NodeKind::BlockDevice { rdev: 0x803 }, 0),
        node(b"caf\xe9", NodeKind::File { content: vec![] }, 0),
        node(b"char", NodeKind::CharDevice { rdev: 0x103 }, 0),
        node(b"dir", NodeKind::Dir { subtree: [9; 32] }, 0),
        fifo(b"fifo"),
        file,
        node(b"sock", NodeKind::Socket, 0),
        node(
            b"symlink",
            NodeKind::Symlink {
                target: b"../\x80/x".to_vec(),
            },
            0,
        ),
    ];
    Tree { version: 2, nodes }
}

#[test]
fn every_kind_round_trips() {
    let tree = every_kind();
    tree.check().unwrap();
    assert_eq!(Tree::decode(&tree.encode()).unwrap(), tree);
}

fn arb_name() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 1..12).prop_filter("not a file name", |n| {
        !n.contains(&b'/') && !n.contains(&0) && n.as_slice() != b"." && n.as_slice() != b".."
    })
}

fn arb_content() -> impl Strategy<Value = Vec<ContentRef>> {
    let piece = prop_oneof![
        (any::<[u8; 32]>(), any::<u32>()).prop_map(|(id, len)| ContentRef::Data { id, len }),
        (0..(1u64 << 50)).prop_map(|len| ContentRef::Hole { len }),
    ];
    prop::collection::vec(piece, 0..5)
}

fn arb_kind() -> impl Strategy<Value = NodeKind> {
    let target = prop::collection::vec(1..=255u8, 1..40);
    prop_oneof![
        arb_content().prop_map(|content| NodeKind::File { content }),
        any::<[u8; 32]>().prop_map(|subtree| NodeKind::Dir { subtree }),
        target.prop_map(|target| NodeKind::Symlink { target }),
        Just(NodeKind::Fifo),
        any::<u64>().prop_map(|rdev| NodeKind::CharDevice { rdev }),
        any::<u64>().prop_map(|rdev| NodeKind::BlockDevice { rdev }),
        Just(NodeKind::Socket),
    ]
}

fn arb_xattrs() -> impl Strategy<Value = Vec<Xattr>> {
    let name = prop::collection::vec(1..=255u8, 1..20);
    let value = prop::collection::vec(any::<u8>(), 0..40);
    prop::collection::btree_map(name, value, 0..4).prop_map(|m| {
        m.into_iter()
            .map(|(name, value)| Xattr { name, value })
            .collect()
    })
}

fn arb_node(name: Vec<u8>) -> impl Strategy<Value = Node> {
    let ids = (any::<u32>(), any::<u32>(), ".{0,8}", ".{0,8}");
    let times = (
        any::<i64>(),
        0..1_000_000_000u32,
        any::<i64>(),
        0..1_000_000_000u32,
    );
    let numbers = (0..=0o7777u32, any::<u64>(), any::<u64>(), any::<u64>());
    (arb_kind(), ids, times, numbers, arb_xattrs()).prop_map(
        move |(kind, (uid, gid, user, group), (mtime, mtime_ns, ctime, ctime_ns), n, xattrs)| {
            let (mode, inode, dev, nlink) = n;
            let size = match &kind {
                NodeKind::File { content } => content.iter().map(ContentRef::len).sum(),
                _ => 0,
            };
            Node {
                name: name.clone(),
                kind,
                mode,
                uid,
                gid,
                user,
                group,
                mtime,
                mtime_ns,
                ctime,
                ctime_ns,
                inode,
                dev,
                nlink,
                size,
                xattrs,
            }
        },
    )
}

fn arb_tree() -> impl Strategy<Value = Tree> {
    prop::collection::btree_set(arb_name(), 0..8).prop_flat_map(|names: BTreeSet<Vec<u8>>| {
        let nodes: Vec<_> = names.into_iter().map(arb_node).collect();
        nodes.prop_map(|nodes| Tree { version: 2, nodes })
    })
}

proptest! {
    #[test]
    fn generated_trees_round_trip(tree in arb_tree()) {
        prop_assert!(tree.check().is_ok());
        let blob = tree.encode();
        prop_assert_eq!(Tree::decode(&blob).unwrap(), tree);
    }

    #[test]
    fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut blob = vec![2];
        blob.extend(bytes);
        let _ = Tree::decode(&blob);
    }
}

/// Decodes the encoding of `tree`, which breaks one rule.
fn refused(tree: &Tree) -> TreeError {
    Tree::decode(&tree.encode()).unwrap_err()
}

fn one(node: Node) -> Tree {
    Tree {
        version: 2,
        nodes: vec![node],
    }
}

#[test]
fn decode_refuses_trailing_bytes() {
    let mut blob = every_kind().encode();
    blob.push(0);
    assert!(matches!(
        Tree::decode(&blob),
        Err(TreeError::TrailingBytes { count: 1 })
    ));
}

#[test]
fn decode_refuses_a_wrong_version() {
    let mut tree = every_kind();
    tree.version = 1;
    assert!(matches!(
        refused(&tree),
        TreeError::UnsupportedVersion {
            found: 1,
            expected: 2
        }
    ));
}

#[test]
fn decode_refuses_unsorted_names() {
    let tree = Tree {
        version: 2,
        nodes: vec![fifo(b"b"), fifo(b"a")],
    };
    assert!(matches!(
        refused(&tree),
        TreeError::NamesUnsorted { node: 1 }
    ));
}

#[test]
fn decode_refuses_duplicate_names() {
    let tree = Tree {
        version: 2,
        nodes: vec![fifo(b"a"), fifo(b"b"), fifo(b"b")],
    };
    assert!(matches!(
        refused(&tree),
        TreeError::DuplicateName { node: 2 }
    ));
}

#[test]
fn decode_refuses_bad_names() {
    for name in [&b""[..], b"a/b", b"/", b"a\0b", b".", b".."] {
        assert!(
            matches!(
                refused(&one(fifo(name))),
                TreeError::InvalidName { node: 0, .. }
            ),
            "{name:?}"
        );
    }
}

#[test]
fn decode_refuses_a_name_over_4096_bytes() {
    assert!(Tree::decode(&one(fifo(&[b'n'; 4096])).encode()).is_ok());
    assert!(matches!(
        refused(&one(fifo(&[b'n'; 4097]))),
        TreeError::TooLong {
            field: "name",
            len: 4097,
            max: 4096,
            ..
        }
    ));
}

#[test]
fn decode_refuses_nanoseconds_of_a_second_or_more() {
    let mut n = fifo(b"a");
    n.mtime_ns = 1_000_000_000;
    assert!(matches!(
        refused(&one(n)),
        TreeError::NanosOutOfRange {
            field: "mtime",
            value: 1_000_000_000,
            ..
        }
    ));
    let mut n = fifo(b"a");
    n.ctime_ns = u32::MAX;
    assert!(matches!(
        refused(&one(n)),
        TreeError::NanosOutOfRange { field: "ctime", .. }
    ));
}

#[test]
fn decode_refuses_a_symlink_target_over_4096_bytes() {
    let link = |len| {
        let target = vec![b't'; len];
        node(b"l", NodeKind::Symlink { target }, 0)
    };
    assert!(Tree::decode(&one(link(4096)).encode()).is_ok());
    assert!(matches!(
        refused(&one(link(4097))),
        TreeError::TooLong {
            field: "symbolic link target",
            len: 4097,
            max: 4096,
            ..
        }
    ));
}

#[test]
fn decode_refuses_an_empty_symlink_target() {
    let link = node(b"l", NodeKind::Symlink { target: vec![] }, 0);
    assert!(matches!(
        refused(&one(link)),
        TreeError::InvalidSymlinkTarget { node: 0, .. }
    ));
}

fn with_xattrs(xattrs: Vec<(Vec<u8>, Vec<u8>)>) -> Tree {
    let mut n = fifo(b"a");
    n.xattrs = xattrs
        .into_iter()
        .map(|(name, value)| Xattr { name, value })
        .collect();
    one(n)
}

#[test]
fn decode_refuses_an_xattr_name_over_255_bytes() {
    let tree = with_xattrs(vec![(vec![b'x'; 256], vec![])]);
    assert!(matches!(
        refused(&tree),
        TreeError::TooLong {
            field: "extended attribute name",
            len: 256,
            max: 255,
            ..
        }
    ));
}

#[test]
fn decode_refuses_an_xattr_value_over_65536_bytes() {
    assert!(
        Tree::decode(&with_xattrs(vec![(b"user.a".to_vec(), vec![0; 65_536])]).encode()).is_ok()
    );
    let tree = with_xattrs(vec![(b"user.a".to_vec(), vec![0; 65_537])]);
    assert!(matches!(
        refused(&tree),
        TreeError::TooLong {
            field: "extended attribute value",
            len: 65_537,
            max: 65_536,
            ..
        }
    ));
}

#[test]
fn decode_refuses_unsorted_xattrs() {
    let tree = with_xattrs(vec![
        (b"user.b".to_vec(), vec![]),
        (b"user.a".to_vec(), vec![]),
    ]);
    assert!(matches!(
        refused(&tree),
        TreeError::XattrsUnsorted { node: 0 }
    ));
}

#[test]
fn decode_refuses_duplicate_xattrs() {
    let tree = with_xattrs(vec![
        (b"user.a".to_vec(), vec![1]),
        (b"user.a".to_vec(), vec![2]),
    ]);
    assert!(matches!(
        refused(&tree),
        TreeError::DuplicateXattr { node: 0 }
    ));
}

#[test]
fn decode_refuses_an_empty_xattr_name() {
    let tree = with_xattrs(vec![(vec![], vec![])]);
    assert!(matches!(
        refused(&tree),
        TreeError::InvalidXattrName { node: 0, .. }
    ));
}

#[test]
fn decode_refuses_more_than_4194304_nodes() {
    // The version, then the node count as a varint: refused before any node is read.
    let mut blob = vec![2];
    let mut count = MAX_NODES + 1;
    while count >= 0x80 {
        blob.push((count as u8) | 0x80);
        count >>= 7;
    }
    blob.push(count as u8);
    assert!(matches!(
        Tree::decode(&blob),
        Err(TreeError::TooManyNodes {
            count: 4_194_305,
            max: 4_194_304
        })
    ));
}

#[test]
fn decode_refuses_a_blob_over_64_mib() {
    let mut blob = vec![0u8; MAX_BLOB_LEN + 1];
    blob[0] = 2;
    assert!(matches!(
        Tree::decode(&blob),
        Err(TreeError::BlobTooLarge {
            len: 67_108_865,
            max: 67_108_864
        })
    ));
}

#[test]
fn decode_refuses_content_that_does_not_add_up_to_the_size() {
    let content = vec![
        ContentRef::Data {
            id: [0; 32],
            len: 100,
        },
        ContentRef::Hole { len: 50 },
    ];
    let file = node(b"f", NodeKind::File { content }, 151);
    assert!(matches!(
        refused(&one(file)),
        TreeError::ContentMismatch {
            node: 0,
            content: 150,
            size: 151
        }
    ));
}

#[test]
fn decode_refuses_a_mode_beyond_0o7777() {
    let mut n = fifo(b"a");
    n.mode = 0o10644;
    assert!(matches!(
        refused(&one(n)),
        TreeError::ModeOutOfRange { mode: 0o10644, .. }
    ));
}

#[test]
fn decode_refuses_a_size_on_anything_but_a_file() {
    let dir = node(b"d", NodeKind::Dir { subtree: [0; 32] }, 4096);
    assert!(matches!(
        refused(&one(dir)),
        TreeError::SizeNotZero { size: 4096, .. }
    ));
}

#[test]
fn decode_refuses_an_overlong_varint() {
    // The node count 1 as `81 00` instead of `01`: the same tree, another blob.
    let blob = one(fifo(b"a")).encode();
    let mut overlong = vec![2, 0x81, 0x00];
    overlong.extend_from_slice(&blob[2..]);
    assert!(matches!(
        Tree::decode(&overlong),
        Err(TreeError::NotCanonical)
    ));
}

#[test]
fn decode_refuses_bytes_that_are_not_a_tree() {
    let blob = one(fifo(b"a")).encode();
    assert!(matches!(
        Tree::decode(&blob[..blob.len() - 1]),
        Err(TreeError::Malformed { .. })
    ));
    assert!(matches!(
        Tree::decode(&[]),
        Err(TreeError::Malformed { .. })
    ));
    // Kind 7 does not exist.
    let mut bad_kind = blob.clone();
    bad_kind[4] = 7;
    assert!(matches!(
        Tree::decode(&bad_kind),
        Err(TreeError::Malformed { .. })
    ));
}

#[test]
fn decode_refuses_a_user_name_that_is_not_utf8() {
    let mut n = fifo(b"a");
    n.user = "\u{e9}".into(); // c3 a9 in UTF-8
    let mut blob = one(n).encode();
    let at = blob.windows(2).position(|w| w == [0xc3, 0xa9]).unwrap();
    blob[at] = 0xe9;
    assert!(matches!(
        Tree::decode(&blob),
        Err(TreeError::Malformed { .. })
    ));
}

// ---------------------------------------------------------------------------------
// A real directory: scan, restore, scan again

fn set_times(path: &Path, secs: i64, nanos: u32) {
    let t = filetime::FileTime::from_unix_time(secs, nanos);
    filetime::set_symlink_file_times(path, t, t).unwrap();
}

/// Whether `path` took a `user.` attribute; prints why not when it did not.
fn try_user_xattr(path: &Path) -> bool {
    match xattr::set(path, "user.coffer", b"test value") {
        Ok(()) => true,
        Err(e) => {
            eprintln!(
                "NOTE: {} refuses user extended attributes ({e}); \
                 the extended-attribute part of this test did not run",
                path.display()
            );
            false
        }
    }
}

struct Source {
    _dir: tempfile::TempDir,
    root: PathBuf,
    xattrs: bool,
}

fn make_source() -> Source {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("src");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("regular"), b"hello coffer\n").unwrap();
    fs::set_permissions(root.join("regular"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    let sparse = File::create(root.join("sparse")).unwrap();
    sparse.set_len(1 << 20).unwrap();
    sparse.write_all_at(b"tail bytes", 1 << 20).unwrap();
    drop(sparse);
    std::os::unix::fs::symlink("regular", root.join("link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/coffer", root.join("dangling")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o620),
        0,
    )
    .unwrap();
    fs::create_dir(root.join("subdir")).unwrap();
    fs::set_permissions(root.join("subdir"), fs::Permissions::from_mode(0o750)).unwrap();
    fs::write(root.join("hard-a"), b"linked\n").unwrap();
    fs::hard_link(root.join("hard-a"), root.join("hard-b")).unwrap();
    fs::write(
        root.join(std::ffi::OsStr::from_bytes(b"caf\xe9")),
        b"latin-1 name",
    )
    .unwrap();
    fs::write(root.join("with-xattr"), b"attributes").unwrap();
    fs::set_permissions(root.join("with-xattr"), fs::Permissions::from_mode(0o444)).unwrap();
    let xattrs = try_user_xattr(&root.join("with-xattr"));
    for (i, entry) in fs::read_dir(&root).unwrap().enumerate() {
        set_times(
            &entry.unwrap().path(),
            1_600_000_000 + i as i64,
            123_456_789 + i as u32,
        );
    }
    set_times(&root.join("subdir"), 1_500_000_000, 999_999_999);
    Source {
        _dir: dir,
        root,
        xattrs,
    }
}

/// A file's pieces as a backup would list them: 64 KiB blocks, all-zero ones as holes
/// (`None`), each with its length.
fn pieces(path: &Path) -> Vec<(u64, Option<Vec<u8>>)> {
    let mut bytes = Vec::new();
    File::open(path).unwrap().read_to_end(&mut bytes).unwrap();
    bytes
        .chunks(64 << 10)
        .map(|block| {
            let data = (!block.iter().all(|&b| b == 0)).then(|| block.to_vec());
            (block.len() as u64, data)
        })
        .collect()
}

/// Restores `scanned` into `to` as the engine would: files (content through
/// `SparseWriter`, hard links linked), directories and special files, then metadata,
/// directories last.
fn restore(scanned: &[Scanned], to: &Path, owners: &mut Owners) {
    let as_root = running_as_root();
    let mut first_of_inode: HashMap<(u64, u64), PathBuf> = HashMap::new();
    for entry in scanned {
        let rel = Path::new(std::ffi::OsStr::from_bytes(&entry.node.name));
        let n = &entry.node;
        match &n.kind {
            NodeKind::File { .. } => {
                let linked = (n.nlink > 1)
                    .then(|| first_of_inode.get(&(n.dev, n.inode)))
                    .flatten();
                if let Some(first) = linked {
                    fs::hard_link(to.join(first), to.join(rel)).unwrap();
                } else {
                    let file = File::create_new(to.join(rel)).unwrap();
                    let mut writer = SparseWriter::new(file, n.size).unwrap();
                    for (len, data) in pieces(&entry.path) {
                        match data {
                            Some(data) => writer.data(&data).unwrap(),
                            None => writer.hole(len).unwrap(),
                        }
                    }
                    writer.finish().unwrap();
                    first_of_inode.insert((n.dev, n.inode), rel.to_owned());
                }
            }
            NodeKind::Dir { .. } => fs::create_dir(to.join(rel)).unwrap(),
            _ => assert_eq!(create_special(to, rel, n).unwrap(), Created::Created),
        }
        if !matches!(n.kind, NodeKind::Dir { .. }) {
            let applied = apply_metadata(to, rel, n, as_root, owners).unwrap();
            assert!(
                applied.skipped_xattrs.is_empty(),
                "{:?}",
                applied.skipped_xattrs
            );
        }
    }
    for entry in scanned
        .iter()
        .filter(|e| matches!(e.node.kind, NodeKind::Dir { .. }))
    {
        let rel = Path::new(std::ffi::OsStr::from_bytes(&entry.node.name));
        let applied = apply_metadata(to, rel, &entry.node, as_root, owners).unwrap();
        assert!(applied.skipped_xattrs.is_empty());
    }
}

#[test]
fn a_directory_survives_scan_and_restore() {
    let src = make_source();
    let mut owners = Owners::new();
    let scanned = scan_dir(&src.root, &mut owners).unwrap();
    let names: Vec<&[u8]> = scanned.iter().map(|s| s.node.name.as_slice()).collect();
    assert_eq!(
        names,
        [
            &b"caf\xe9"[..],
            b"dangling",
            b"empty",
            b"fifo",
            b"hard-a",
            b"hard-b",
            b"link",
            b"regular",
            b"sparse",
            b"subdir",
            b"with-xattr",
        ]
    );
    let by_name: BTreeMap<&[u8], &Node> = scanned
        .iter()
        .map(|s| (s.node.name.as_slice(), &s.node))
        .collect();
    assert_eq!(by_name[&b"regular"[..]].size, 13);
    assert_eq!(by_name[&b"regular"[..]].mode, 0o640);
    assert_eq!(by_name[&b"sparse"[..]].size, (1 << 20) + 10);
    assert_eq!(
        by_name[&b"dangling"[..]].kind,
        NodeKind::Symlink {
            target: b"/nonexistent/coffer".to_vec()
        }
    );
    assert_eq!(by_name[&b"fifo"[..]].kind, NodeKind::Fifo);
    assert_eq!(
        by_name[&b"subdir"[..]].kind,
        NodeKind::Dir { subtree: [0; 32] }
    );
    assert_eq!(by_name[&b"subdir"[..]].mtime_ns, 999_999_999);
    let (a, b) = (by_name[&b"hard-a"[..]], by_name[&b"hard-b"[..]]);
    assert_eq!((a.dev, a.inode, a.nlink), (b.dev, b.inode, 2));
    if src.xattrs {
        assert_eq!(
            by_name[&b"with-xattr"[..]].xattrs,
            [Xattr {
                name: b"user.coffer".to_vec(),
                value: b"test value".to_vec()
            }]
        );
    }
    let me = rustix::process::geteuid().as_raw();
    assert_eq!(by_name[&b"regular"[..]].uid, me);
    assert_eq!(by_name[&b"regular"[..]].user, owners.user_name(me));

    let out = tempfile::tempdir().unwrap();
    restore(&scanned, out.path(), &mut owners);
    let again = scan_dir(out.path(), &mut owners).unwrap();
    assert_eq!(again.len(), scanned.len());
    for (before, after) in scanned.iter().zip(&again) {
        let (x, y) = (&before.node, &after.node);
        let name = String::from_utf8_lossy(&x.name);
        assert_eq!(x.name, y.name);
        assert_eq!(x.kind, y.kind, "{name}");
        assert_eq!(x.mode, y.mode, "{name}");
        assert_eq!((x.uid, x.gid), (y.uid, y.gid), "{name}");
        assert_eq!((&x.user, &x.group), (&y.user, &y.group), "{name}");
        assert_eq!((x.mtime, x.mtime_ns), (y.mtime, y.mtime_ns), "{name}");
        assert_eq!(x.size, y.size, "{name}");
        assert_eq!(x.xattrs, y.xattrs, "{name}");
    }
    let restored: BTreeMap<&[u8], &Scanned> =
        again.iter().map(|s| (s.node.name.as_slice(), s)).collect();
    let (a, b) = (
        &restored[&b"hard-a"[..]].node,
        &restored[&b"hard-b"[..]].node,
    );
    assert_eq!((a.inode, a.nlink), (b.inode, 2), "hard links linked again");
    for name in ["regular", "sparse", "hard-b", "with-xattr"] {
        assert_eq!(
            fs::read(src.root.join(name)).unwrap(),
            fs::read(out.path().join(name)).unwrap(),
            "{name}"
        );
    }
    let sparse = fs::metadata(out.path().join("sparse")).unwrap();
    assert!(
        sparse.blocks() * 512 < sparse.size(),
        "the restored sparse file allocates {} blocks for {} bytes",
        sparse.blocks(),
        sparse.size()
    );
}

#[test]
fn same_file_ignores_the_device_but_not_changes() {
    let src = make_source();
    let mut owners = Owners::new();
    let before = scan_dir(&src.root, &mut owners).unwrap();
    let regular = |scan: &[Scanned]| {
        scan.iter()
            .find(|s| s.node.name == b"regular")
            .unwrap()
            .node
            .clone()
    };
    let parent = regular(&before);
    let mut rebooted = parent.clone();
    rebooted.dev += 1;
    assert!(same_file(&parent, &rebooted));
    set_times(&src.root.join("regular"), parent.mtime, parent.mtime_ns + 1);
    assert!(!same_file(
        &parent,
        &regular(&scan_dir(&src.root, &mut owners).unwrap())
    ));
}

#[test]
fn devices_are_created_only_when_permitted_and_sockets_never() {
    let out = tempfile::tempdir().unwrap();
    let null = fs::metadata("/dev/null").unwrap().rdev();
    let device = node(b"null", NodeKind::CharDevice { rdev: null }, 0);
    match create_special(out.path(), Path::new("null"), &device).unwrap() {
        Created::Created => {
            assert!(running_as_root());
            let made = fs::symlink_metadata(out.path().join("null")).unwrap();
            assert_eq!(made.rdev(), null);
        }
        Created::Skipped { reason } => eprintln!("NOTE: device node skipped: {reason}"),
    }
    let socket = node(b"sock", NodeKind::Socket, 0);
    assert!(matches!(
        create_special(out.path(), Path::new("sock"), &socket).unwrap(),
        Created::Skipped { .. }
    ));
    assert!(fs::symlink_metadata(out.path().join("sock")).is_err());
}

// ---------------------------------------------------------------------------------
// Refusals

fn link_node(target: &[u8]) -> Node {
    node(
        b"x",
        NodeKind::Symlink {
            target: target.to_vec(),
        },
        0,
    )
}

fn is_refusal(result: Result<impl std::fmt::Debug, Error>) -> bool {
    matches!(result, Err(Error::HostileArchivePath { .. }))
}

#[test]
fn restore_refuses_paths_outside_the_target() {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("target");
    fs::create_dir(&target).unwrap();
    let mut owners = Owners::new();
    for rel in ["../escape", "a/../../escape", "/tmp/escape", "", "./x"] {
        let rel = Path::new(rel);
        assert!(
            is_refusal(create_special(&target, rel, &link_node(b"t"))),
            "{rel:?}"
        );
        let applied = apply_metadata(&target, rel, &fifo(b"x"), false, &mut owners);
        assert!(is_refusal(applied), "{rel:?}");
    }
    assert!(fs::symlink_metadata(out.path().join("escape")).is_err());
}

#[test]
fn restore_never_writes_through_a_symlinked_parent() {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("target");
    let outside = out.path().join("outside");
    fs::create_dir(&target).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("victim"), b"keep me").unwrap();
    fs::set_permissions(outside.join("victim"), fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&outside, target.join("evil")).unwrap();
    let mut owners = Owners::new();

    let made = create_special(&target, Path::new("evil/link"), &link_node(b"/etc/passwd"));
    assert!(is_refusal(made));
    assert!(fs::symlink_metadata(outside.join("link")).is_err());

    let mut victim = node(b"victim", NodeKind::File { content: vec![] }, 0);
    victim.mode = 0o777;
    let applied = apply_metadata(
        &target,
        Path::new("evil/victim"),
        &victim,
        true,
        &mut owners,
    );
    assert!(is_refusal(applied));
    let mode = fs::metadata(outside.join("victim")).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o600);

    // Deeper too: a real directory, then the link.
    fs::create_dir(target.join("real")).unwrap();
    std::os::unix::fs::symlink(&outside, target.join("real/evil")).unwrap();
    let deep = apply_metadata(
        &target,
        Path::new("real/evil/victim"),
        &victim,
        true,
        &mut owners,
    );
    assert!(is_refusal(deep));

    // A link where the tree has a file: refused, not followed.
    std::os::unix::fs::symlink(outside.join("victim"), target.join("leaf")).unwrap();
    let leaf = apply_metadata(&target, Path::new("leaf"), &victim, true, &mut owners);
    assert!(is_refusal(leaf));
    let mode = fs::metadata(outside.join("victim")).unwrap().mode() & 0o7777;
    assert_eq!(mode, 0o600);
}

#[test]
fn create_special_never_replaces_anything() {
    let out = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/nonexistent", out.path().join("there")).unwrap();
    let made = create_special(out.path(), Path::new("there"), &fifo(b"there"));
    assert!(matches!(made, Err(Error::DestinationExists { .. })));
}

#[test]
fn sparse_writer_holds_the_caller_to_the_size() {
    let out = tempfile::tempdir().unwrap();
    let file = || File::create(out.path().join("f")).unwrap();
    let mut w = SparseWriter::new(file(), 10).unwrap();
    w.hole(4).unwrap();
    assert!(w.data(b"too long").is_err());
    let w = SparseWriter::new(file(), 10).unwrap();
    assert!(w.finish().is_err());
    let mut w = SparseWriter::new(file(), 10).unwrap();
    w.data(b"abc").unwrap();
    w.hole(7).unwrap();
    let f = w.finish().unwrap();
    assert_eq!(f.metadata().unwrap().len(), 10);
    assert_eq!(
        fs::read(out.path().join("f")).unwrap(),
        b"abc\0\0\0\0\0\0\0"
    );
    let nonempty = fs::OpenOptions::new()
        .write(true)
        .open(out.path().join("f"))
        .unwrap();
    assert!(SparseWriter::new(nonempty, 10).is_err());
}

#[test]
fn ownership_goes_by_name_then_by_number_and_only_as_root() {
    if !running_as_root() {
        eprintln!("NOTE: not root; restoring ownership is root's only, so this test did not run");
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let mut owners = Owners::new();
    let owner_of = |name: &str| {
        let meta = fs::metadata(out.path().join(name)).unwrap();
        (meta.uid(), meta.gid())
    };
    for name in ["by-name", "by-number", "not-root"] {
        fs::write(out.path().join(name), b"").unwrap();
    }
    // "root" exists everywhere: its name wins over the recorded number.
    let mut by_name = node(b"by-name", NodeKind::File { content: vec![] }, 0);
    (by_name.uid, by_name.gid) = (4321, 4321);
    (by_name.user, by_name.group) = ("root".into(), "root".into());
    let applied = apply_metadata(
        out.path(),
        Path::new("by-name"),
        &by_name,
        true,
        &mut owners,
    );
    assert!(applied.unwrap().skipped_xattrs.is_empty());
    assert_eq!(owner_of("by-name"), (0, 0));
    // A name unknown here: the recorded number.
    let mut by_number = node(b"by-number", NodeKind::File { content: vec![] }, 0);
    (by_number.uid, by_number.gid) = (4321, 4322);
    (by_number.user, by_number.group) = ("coffer-no-such-user".into(), String::new());
    let applied = apply_metadata(
        out.path(),
        Path::new("by-number"),
        &by_number,
        true,
        &mut owners,
    );
    assert!(applied.unwrap().skipped_xattrs.is_empty());
    assert_eq!(owner_of("by-number"), (4321, 4322));
    // Not as root: left as it is.
    let mut not_root = by_number.clone();
    not_root.name = b"not-root".to_vec();
    let applied = apply_metadata(
        out.path(),
        Path::new("not-root"),
        &not_root,
        false,
        &mut owners,
    );
    assert!(applied.unwrap().skipped_xattrs.is_empty());
    assert_eq!(owner_of("not-root"), (0, 0));
}
