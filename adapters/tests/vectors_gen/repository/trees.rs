//! Trees (§18) and snapshots (§19): postcard bytes and their decoded fields.
//!
//! Valid blobs are encoded by the engine (`Tree::encode`, `Snapshot::encode`) and checked
//! against a transcription of §18.1-§18.2 and §19 here, which also makes the blobs no
//! writer would: overlong varints, values out of their types, unknown variants.

use coffer_adapters::repo::snapshot::{Snapshot, Summary};
use coffer_adapters::repo::tree::{ContentRef, Node, NodeKind, Tree, Xattr};
use serde_json::{json, Map, Value};

use super::super::{zlib, Expect, File};
use super::packs::EXAMPLE_TREE;
use super::{fields, h, hex_list, set};

// ---------------------------------------------------------------------------------------
// §18.1 wire rules, transcribed

fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

/// The same value in one more byte than needed: the last group gets a continuation bit
/// and a zero group follows.
fn overlong(n: u64) -> Vec<u8> {
    let mut v = varint(n);
    *v.last_mut().unwrap() |= 0x80;
    v.push(0);
    v
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

fn bytes(b: &[u8]) -> Vec<u8> {
    [varint(b.len() as u64), b.to_vec()].concat()
}

/// A one-node tree as named segments, so a test can replace one field's bytes.
fn segments(node: &Node) -> Vec<(&'static str, Vec<u8>)> {
    let mut s = vec![
        ("version", vec![2]),
        ("count", varint(1)),
        ("name", bytes(&node.name)),
    ];
    match &node.kind {
        NodeKind::File { content } => {
            s.push(("kind", varint(0)));
            s.push(("pieces", varint(content.len() as u64)));
            for c in content {
                match c {
                    ContentRef::Data { id, len } => {
                        s.push(("piece", varint(0)));
                        s.push(("id", id.to_vec()));
                        s.push(("len", varint(u64::from(*len))));
                    }
                    ContentRef::Hole { len } => {
                        s.push(("piece", varint(1)));
                        s.push(("len", varint(*len)));
                    }
                }
            }
        }
        NodeKind::Dir { subtree } => {
            s.push(("kind", varint(1)));
            s.push(("subtree", subtree.to_vec()));
        }
        NodeKind::Symlink { target } => {
            s.push(("kind", varint(2)));
            s.push(("target", bytes(target)));
        }
        NodeKind::Fifo => s.push(("kind", varint(3))),
        NodeKind::CharDevice { rdev } => {
            s.push(("kind", varint(4)));
            s.push(("rdev", varint(*rdev)));
        }
        NodeKind::BlockDevice { rdev } => {
            s.push(("kind", varint(5)));
            s.push(("rdev", varint(*rdev)));
        }
        NodeKind::Socket => s.push(("kind", varint(6))),
    }
    s.extend([
        ("mode", varint(u64::from(node.mode))),
        ("uid", varint(u64::from(node.uid))),
        ("gid", varint(u64::from(node.gid))),
        ("user", bytes(node.user.as_bytes())),
        ("group", bytes(node.group.as_bytes())),
        ("mtime", varint(zigzag(node.mtime))),
        ("mtime_ns", varint(u64::from(node.mtime_ns))),
        ("ctime", varint(zigzag(node.ctime))),
        ("ctime_ns", varint(u64::from(node.ctime_ns))),
        ("inode", varint(node.inode)),
        ("dev", varint(node.dev)),
        ("nlink", varint(node.nlink)),
        ("size", varint(node.size)),
        ("xattrs", varint(node.xattrs.len() as u64)),
    ]);
    for x in &node.xattrs {
        s.push(("xattr", [bytes(&x.name), bytes(&x.value)].concat()));
    }
    s
}

fn join(s: &[(&str, Vec<u8>)]) -> Vec<u8> {
    s.iter().flat_map(|(_, b)| b.clone()).collect()
}

/// The one-node tree with segment `field` (its first occurrence) replaced.
fn with(node: &Node, field: &str, new: Vec<u8>) -> Vec<u8> {
    let mut s = segments(node);
    let i = s.iter().position(|(n, _)| *n == field).unwrap();
    s[i].1 = new;
    join(&s)
}

// ---------------------------------------------------------------------------------------
// Nodes

fn node(name: &[u8], kind: NodeKind) -> Node {
    let size = match &kind {
        NodeKind::File { content } => content.iter().fold(0u64, |a, c| a.wrapping_add(c.len())),
        _ => 0,
    };
    Node {
        name: name.to_vec(),
        kind,
        mode: 0o644,
        uid: 1000,
        gid: 100,
        user: "alice".into(),
        group: "users".into(),
        mtime: 1_700_000_000,
        mtime_ns: 250_000_000,
        ctime: 1_700_000_100,
        ctime_ns: 0,
        inode: 4242,
        dev: 2049,
        nlink: 1,
        size,
        xattrs: Vec::new(),
    }
}

fn file(name: &[u8], content: Vec<ContentRef>) -> Node {
    node(name, NodeKind::File { content })
}

fn data(id: u8, len: u32) -> ContentRef {
    ContentRef::Data { id: [id; 32], len }
}

fn xattr(name: &[u8], value: &[u8]) -> Xattr {
    Xattr {
        name: name.to_vec(),
        value: value.to_vec(),
    }
}

/// A node as the tests' `nodes` give it.
fn node_json(n: &Node) -> Value {
    let mut m: Map<String, Value> = fields(vec![("name", h(&n.name))]);
    let kind = match &n.kind {
        NodeKind::File { content } => {
            let pieces: Vec<Value> = content
                .iter()
                .map(|c| match c {
                    ContentRef::Data { id, len } => {
                        json!({"type": "data", "id": hex::encode(id), "len": len})
                    }
                    ContentRef::Hole { len } => json!({"type": "hole", "len": len}),
                })
                .collect();
            m.insert("content".into(), json!(pieces));
            "file"
        }
        NodeKind::Dir { subtree } => {
            m.insert("subtree".into(), h(subtree));
            "dir"
        }
        NodeKind::Symlink { target } => {
            m.insert("target".into(), h(target));
            "symlink"
        }
        NodeKind::Fifo => "fifo",
        NodeKind::CharDevice { rdev } => {
            m.insert("rdev".into(), json!(rdev));
            "charDevice"
        }
        NodeKind::BlockDevice { rdev } => {
            m.insert("rdev".into(), json!(rdev));
            "blockDevice"
        }
        NodeKind::Socket => "socket",
    };
    m.insert("kind".into(), json!(kind));
    for (k, v) in [
        ("mode", json!(n.mode)),
        ("uid", json!(n.uid)),
        ("gid", json!(n.gid)),
        ("user", json!(n.user)),
        ("group", json!(n.group)),
        ("mtime", json!(n.mtime)),
        ("mtimeNs", json!(n.mtime_ns)),
        ("ctime", json!(n.ctime)),
        ("ctimeNs", json!(n.ctime_ns)),
        ("inode", json!(n.inode)),
        ("dev", json!(n.dev)),
        ("nlink", json!(n.nlink)),
        ("size", json!(n.size)),
    ] {
        m.insert(k.into(), v);
    }
    let xattrs: Vec<Value> = n
        .xattrs
        .iter()
        .map(|x| json!({"name": hex::encode(&x.name), "value": hex::encode(&x.value)}))
        .collect();
    m.insert("xattrs".into(), json!(xattrs));
    Value::Object(m)
}

fn valid_tree(f: &mut File, comment: &str, flags: &[&str], nodes: Vec<Node>) -> Vec<u8> {
    let tree = Tree { version: 2, nodes };
    let blob = tree.encode();
    if tree.nodes.len() == 1 {
        assert_eq!(
            join(&segments(&tree.nodes[0])),
            blob,
            "transcription differs"
        );
    }
    let m = fields(vec![
        ("blob", h(&blob)),
        (
            "nodes",
            json!(tree.nodes.iter().map(node_json).collect::<Vec<_>>()),
        ),
    ]);
    f.add_expect(comment, flags, m, Expect::Valid);
    blob
}

fn refused(f: &mut File, comment: &str, flag: &str, blob: &[u8], error: &str) {
    f.add_expect(
        comment,
        &[flag],
        fields(vec![("blob", h(blob))]),
        Expect::Named(error),
    );
}

/// A tree of `nodes` as given (sorted or not), by the engine's encoder.
fn tree_of(nodes: Vec<Node>) -> Vec<u8> {
    Tree { version: 2, nodes }.encode()
}

pub fn tree_group(f: &mut File) {
    f.group_field("type", json!("CofferTree"));

    // ---- valid ----
    let mut example = file(
        b"notes.txt",
        vec![
            data(0x11, 1000),
            ContentRef::Hole { len: 4096 },
            data(0x22, 300),
        ],
    );
    example.mtime_ns = 123_456_789;
    example.ctime = -1;
    example.inode = 131_074;
    example.xattrs = vec![xattr(b"user.tag", b"x")];
    let blob = valid_tree(
        f,
        "FORMAT.md §18.5's worked example",
        &["FormatExample"],
        vec![example.clone()],
    );
    assert_eq!(hex::encode(&blob), EXAMPLE_TREE);
    valid_tree(f, "a tree with no nodes", &["EdgeLength"], Vec::new());

    let subtree: [u8; 32] = f.array();
    let mut kinds = vec![
        file(
            b"a-file",
            vec![
                data(0x33, 5000),
                ContentRef::Hole { len: 1 << 20 },
                data(0x44, 17),
            ],
        ),
        node(b"b-dir", NodeKind::Dir { subtree }),
        node(
            b"c-link",
            NodeKind::Symlink {
                target: b"../a-file".to_vec(),
            },
        ),
        node(b"d-fifo", NodeKind::Fifo),
        node(b"e-char", NodeKind::CharDevice { rdev: 0x0103 }),
        node(b"f-block", NodeKind::BlockDevice { rdev: 0x0801 }),
        node(b"g-socket", NodeKind::Socket),
        file(b"h-empty", Vec::new()),
        file(b"i-holes", vec![ContentRef::Hole { len: 4096 }]),
    ];
    kinds[1].mode = 0o755;
    kinds[2].mode = 0o777;
    kinds[4].mode = 0o600;
    kinds[6].mode = 0o755;
    valid_tree(f, "every kind of node; a file with a hole between two chunks, an empty file, a file of one hole", &["NodeKinds", "Hole"], kinds);

    let mut latin = file(b"caf\xe9.txt", vec![data(0x55, 3)]);
    latin.xattrs = vec![xattr(b"user.\xff\xfe", b"\x00\xff")];
    let weird = node(
        b"\xff\xfe\xfd",
        NodeKind::Symlink {
            target: b"/tmp/\xe9t\xe9".to_vec(),
        },
    );
    valid_tree(
        f,
        "names, a link target and an extended attribute that are not UTF-8",
        &["NonUtf8"],
        vec![latin, weird],
    );

    let mut x = file(b"tagged", vec![data(0x66, 10)]);
    x.xattrs = vec![
        xattr(b"security.selinux", b"system_u:object_r:user_home_t:s0\x00"),
        xattr(b"user.a", b""),
        xattr(b"user.ab", b"prefix sorts first"),
        xattr(b"user.b", &[0; 40]),
    ];
    valid_tree(
        f,
        "extended attributes sorted by name bytes, a proper prefix first, one empty value",
        &["Xattrs"],
        vec![x],
    );

    let order: Vec<Node> = [&b"A"[..], b"a", b"ab", b"b", b"\x7f", b"\x80", b"\xff"]
        .iter()
        .map(|n| node(n, NodeKind::Fifo))
        .collect();
    valid_tree(
        f,
        "names in unsigned byte order: A, a, ab, b, 7f, 80, ff",
        &["EdgeValue"],
        order,
    );

    let mut edge = file(b"huge-sparse", vec![ContentRef::Hole { len: u64::MAX }]);
    edge.mode = 0o7777;
    edge.uid = u32::MAX;
    edge.gid = u32::MAX;
    edge.mtime = i64::MIN;
    edge.mtime_ns = 999_999_999;
    edge.ctime = i64::MAX;
    edge.ctime_ns = 999_999_999;
    edge.inode = u64::MAX;
    edge.dev = u64::MAX;
    edge.nlink = u64::MAX;
    let mut dev = node(b"max-device", NodeKind::BlockDevice { rdev: u64::MAX });
    dev.mtime = -1;
    dev.mode = 0;
    valid_tree(f, "edge values: size 2^64 - 1 of one hole, mode 0o7777, u32 and u64 maxima, i64::MIN and i64::MAX times, 999999999 ns", &["EdgeValue", "Hole"], vec![edge, dev]);

    let long_name = vec![b'n'; 4096];
    let mut long = node(
        &long_name,
        NodeKind::Symlink {
            target: vec![b't'; 4096],
        },
    );
    long.xattrs = vec![xattr(&[b'x'; 255], &vec![0xab; 65536])];
    valid_tree(
        f,
        "a 4096-byte name and link target, a 255-byte attribute name with a 65536-byte value",
        &["EdgeLength"],
        vec![long],
    );

    // ---- rules 1 to 4 ----
    let small = file(b"f", vec![data(0x77, 10)]);
    let good = tree_of(vec![small.clone()]);
    let mut oversized = vec![2u8, 0];
    oversized.resize((64 << 20) + 1, 0);
    f.add_expect(
        "a blob of 64 MiB + 1 bytes (zlib-compressed here)",
        &["Oversized"],
        fields(vec![("blobCompressed", h(&zlib(&oversized)))]),
        Expect::Named("BlobTooLarge"),
    );
    refused(
        f,
        "version 1",
        "UnsupportedVersion",
        &set(&good, 0, 1),
        "UnsupportedVersion",
    );
    refused(
        f,
        "version 3",
        "UnsupportedVersion",
        &set(&good, 0, 3),
        "UnsupportedVersion",
    );
    refused(f, "an empty blob", "Truncation", &[], "Malformed");
    refused(f, "the version byte alone", "Truncation", &[2], "Malformed");
    refused(
        f,
        "cut by its last byte",
        "Truncation",
        &good[..good.len() - 1],
        "Malformed",
    );
    refused(
        f,
        "node count 4194305",
        "TooManyNodes",
        &[&[2][..], &varint(4_194_305)].concat(),
        "TooManyNodes",
    );
    refused(
        f,
        "node count 2^64 - 1",
        "TooManyNodes",
        &[&[2][..], &varint(u64::MAX)].concat(),
        "TooManyNodes",
    );
    refused(
        f,
        "node count 4194304 (the limit) and no nodes",
        "Truncation",
        &[&[2][..], &varint(4_194_304)].concat(),
        "Malformed",
    );
    let mut extra = good.clone();
    extra.push(0);
    refused(
        f,
        "a zero byte after the tree",
        "TrailingData",
        &extra,
        "TrailingBytes",
    );
    refused(
        f,
        "a second tree after the tree",
        "TrailingData",
        &[&good[..], &good].concat(),
        "TrailingBytes",
    );
    refused(
        f,
        "NodeKind variant 7",
        "Malformed",
        &with(&small, "kind", varint(7)),
        "Malformed",
    );
    refused(
        f,
        "ContentRef variant 2",
        "Malformed",
        &with(&small, "piece", varint(2)),
        "Malformed",
    );
    refused(
        f,
        "a user name that is not UTF-8",
        "Malformed",
        &with(&small, "user", bytes(b"\xffuser")),
        "Malformed",
    );
    refused(
        f,
        "a mode of 2^32: too large for a u32",
        "Malformed",
        &with(&small, "mode", varint(1 << 32)),
        "Malformed",
    );
    refused(
        f,
        "a Data length of 2^32: too large for a u32",
        "Malformed",
        &with(&small, "len", varint(1 << 32)),
        "Malformed",
    );
    refused(
        f,
        "an inode varint of 11 bytes",
        "Malformed",
        &with(&small, "inode", [vec![0x80; 10], vec![0]].concat()),
        "Malformed",
    );

    // ---- rule 5 ----
    let bad_node = |f: &mut File, comment: &str, flag: &str, n: Node, error: &str| {
        refused(f, comment, flag, &tree_of(vec![n]), error);
    };
    for (name, what) in [
        (&b""[..], "empty"),
        (b"a/b", "holding '/'"),
        (b"a\x00b", "holding 00"),
        (b".", "'.'"),
        (b"..", "'..'"),
    ] {
        let mut n = small.clone();
        n.name = name.to_vec();
        bad_node(
            f,
            &format!("a name {what}"),
            "InvalidName",
            n,
            "InvalidName",
        );
    }
    let mut n = small.clone();
    n.name = vec![b'n'; 4097];
    bad_node(f, "a name of 4097 bytes", "InvalidName", n, "TooLong");
    let mut n = small.clone();
    n.mode = 0o10000;
    bad_node(f, "mode 0o10000", "ModeOutOfRange", n, "ModeOutOfRange");
    let mut n = small.clone();
    n.mode = u32::MAX;
    bad_node(f, "mode 2^32 - 1", "ModeOutOfRange", n, "ModeOutOfRange");
    let mut n = small.clone();
    n.mtime_ns = 1_000_000_000;
    bad_node(f, "mtime_ns 10^9", "NanosOutOfRange", n, "NanosOutOfRange");
    let mut n = small.clone();
    n.ctime_ns = u32::MAX;
    bad_node(
        f,
        "ctime_ns 2^32 - 1",
        "NanosOutOfRange",
        n,
        "NanosOutOfRange",
    );
    let mut n = small.clone();
    n.size = 11;
    bad_node(
        f,
        "size one more than the pieces",
        "ContentMismatch",
        n,
        "ContentMismatch",
    );
    let mut n = small.clone();
    n.size = 9;
    bad_node(
        f,
        "size one less than the pieces",
        "ContentMismatch",
        n,
        "ContentMismatch",
    );
    let mut n = file(
        b"f",
        vec![
            ContentRef::Hole { len: 1 << 63 },
            ContentRef::Hole { len: 1 << 63 },
        ],
    );
    n.size = 0;
    bad_node(
        f,
        "two holes of 2^63 and size 0: the sum wraps to 0 in 64 bits",
        "ContentMismatch",
        n,
        "ContentMismatch",
    );
    let mut n = file(
        b"f",
        vec![ContentRef::Hole { len: u64::MAX }, data(0x77, 1)],
    );
    n.size = 0;
    bad_node(
        f,
        "a hole of 2^64 - 1 and a chunk of 1 byte, size 0: the sum wraps to 0",
        "ContentMismatch",
        n,
        "ContentMismatch",
    );
    let mut n = file(b"f", Vec::new());
    n.size = 1;
    bad_node(
        f,
        "no pieces and size 1",
        "ContentMismatch",
        n,
        "ContentMismatch",
    );
    bad_node(
        f,
        "a Data piece of length 0",
        "EmptyPiece",
        file(b"f", vec![data(0x77, 10), data(0x78, 0)]),
        "EmptyPiece",
    );
    bad_node(
        f,
        "a Hole of length 0",
        "EmptyPiece",
        file(b"f", vec![ContentRef::Hole { len: 0 }, data(0x77, 10)]),
        "EmptyPiece",
    );
    for (kind, what) in [
        (NodeKind::Dir { subtree: [9; 32] }, "a directory"),
        (
            NodeKind::Symlink {
                target: b"t".to_vec(),
            },
            "a symbolic link",
        ),
        (NodeKind::Fifo, "a FIFO"),
        (NodeKind::Socket, "a socket"),
    ] {
        let mut n = node(b"x", kind);
        n.size = 1;
        bad_node(
            f,
            &format!("{what} of size 1"),
            "SizeNotZero",
            n,
            "SizeNotZero",
        );
    }
    bad_node(
        f,
        "an empty link target",
        "InvalidSymlinkTarget",
        node(b"l", NodeKind::Symlink { target: Vec::new() }),
        "InvalidSymlinkTarget",
    );
    bad_node(
        f,
        "a link target holding 00",
        "InvalidSymlinkTarget",
        node(
            b"l",
            NodeKind::Symlink {
                target: b"a\x00b".to_vec(),
            },
        ),
        "InvalidSymlinkTarget",
    );
    bad_node(
        f,
        "a link target of 4097 bytes",
        "InvalidSymlinkTarget",
        node(
            b"l",
            NodeKind::Symlink {
                target: vec![b't'; 4097],
            },
        ),
        "TooLong",
    );
    for (x, what, error) in [
        (
            xattr(b"", b"v"),
            "an empty attribute name",
            "InvalidXattrName",
        ),
        (
            xattr(b"user.a\x00b", b"v"),
            "an attribute name holding 00",
            "InvalidXattrName",
        ),
        (
            xattr(&[b'x'; 256], b"v"),
            "an attribute name of 256 bytes",
            "TooLong",
        ),
        (
            xattr(b"user.big", &vec![0; 65537]),
            "an attribute value of 65537 bytes",
            "TooLong",
        ),
    ] {
        let mut n = small.clone();
        n.xattrs = vec![x];
        bad_node(f, what, "InvalidXattr", n, error);
    }
    for (names, what, flag, error) in [
        (
            vec![&b"user.b"[..], b"user.a"],
            "attributes out of order",
            "Unsorted",
            "XattrsUnsorted",
        ),
        (
            vec![&b"user.ab"[..], b"user.a"],
            "attribute names with the longer first",
            "Unsorted",
            "XattrsUnsorted",
        ),
        (
            vec![&b"user.a"[..], b"user.a"],
            "two attributes of the same name",
            "Duplicate",
            "DuplicateXattr",
        ),
    ] {
        let mut n = small.clone();
        n.xattrs = names.iter().map(|name| xattr(name, b"v")).collect();
        bad_node(f, what, flag, n, error);
    }

    // ---- rule 6 ----
    let named = |name: &[u8]| {
        let mut n = small.clone();
        n.name = name.to_vec();
        n
    };
    refused(
        f,
        "names out of order: b, a",
        "Unsorted",
        &tree_of(vec![named(b"b"), named(b"a")]),
        "NamesUnsorted",
    );
    refused(
        f,
        "names with the longer first: ab, a",
        "Unsorted",
        &tree_of(vec![named(b"ab"), named(b"a")]),
        "NamesUnsorted",
    );
    refused(
        f,
        "names compared as signed bytes: 80 before 41",
        "Unsorted",
        &tree_of(vec![named(b"\x80"), named(b"A")]),
        "NamesUnsorted",
    );
    refused(
        f,
        "two nodes named a",
        "Duplicate",
        &tree_of(vec![named(b"a"), named(b"a")]),
        "DuplicateName",
    );
    refused(
        f,
        "three nodes, the last two named c",
        "Duplicate",
        &tree_of(vec![named(b"a"), named(b"c"), named(b"c")]),
        "DuplicateName",
    );

    // ---- rule 7: every other field right, one varint in a longer form ----
    for (field, value) in [
        ("count", 1u64),
        ("name", 1),
        ("kind", 0),
        ("pieces", 1),
        ("len", 10),
        ("mode", u64::from(small.mode)),
        ("mtime", zigzag(small.mtime)),
        ("mtime_ns", u64::from(small.mtime_ns)),
        ("size", 10),
        ("xattrs", 0),
    ] {
        let new = if field == "name" {
            [overlong(value), b"f".to_vec()].concat()
        } else {
            overlong(value)
        };
        refused(
            f,
            &format!("{field} as an overlong varint"),
            "NonCanonical",
            &with(&small, field, new),
            "NotCanonical",
        );
    }
}

// ---------------------------------------------------------------------------------------
// Snapshots

/// §19's record as named segments (a transcription checked against the engine).
fn snapshot_segments(s: &Snapshot) -> Vec<(&'static str, Vec<u8>)> {
    let option = |o: Option<Vec<u8>>| match o {
        None => vec![0],
        Some(b) => [vec![1], b].concat(),
    };
    let mut seq = varint(s.paths.len() as u64);
    for p in &s.paths {
        seq.extend(bytes(p));
    }
    let mut tags = varint(s.tags.len() as u64);
    for t in &s.tags {
        tags.extend(bytes(t.as_bytes()));
    }
    let u = &s.summary;
    let summary: Vec<u8> = [
        u.files,
        u.dirs,
        u.others,
        u.bytes,
        u.files_read,
        u.bytes_read,
        u.new_blobs,
        u.new_trees,
        u.new_raw_bytes,
        u.new_stored_bytes,
        u.packs,
        u.duration_ms,
    ]
    .iter()
    .flat_map(|n| varint(*n))
    .collect();
    vec![
        ("version", vec![s.version]),
        ("time", varint(zigzag(s.time))),
        ("time_ns", varint(u64::from(s.time_ns))),
        ("host", bytes(s.host.as_bytes())),
        ("user", bytes(s.user.as_bytes())),
        ("paths", seq),
        ("tags", tags),
        ("parent", option(s.parent.map(|p| p.to_vec()))),
        ("tree", s.tree.to_vec()),
        ("program", bytes(s.program.as_bytes())),
        (
            "command",
            option(s.command.as_ref().map(|c| bytes(c.as_bytes()))),
        ),
        ("summary", summary),
    ]
}

fn snapshot_with(s: &Snapshot, field: &str, new: Vec<u8>) -> Vec<u8> {
    let mut segs = snapshot_segments(s);
    let i = segs.iter().position(|(n, _)| *n == field).unwrap();
    segs[i].1 = new;
    join(&segs)
}

fn snapshot_json(s: &Snapshot) -> Value {
    let u = &s.summary;
    json!({
        "version": s.version,
        "time": s.time,
        "timeNs": s.time_ns,
        "host": s.host,
        "user": s.user,
        "paths": hex_list(&s.paths),
        "tags": s.tags,
        "parent": s.parent.map(hex::encode),
        "tree": hex::encode(s.tree),
        "program": s.program,
        "command": s.command,
        "summary": {
            "files": u.files, "dirs": u.dirs, "others": u.others, "bytes": u.bytes,
            "filesRead": u.files_read, "bytesRead": u.bytes_read, "newBlobs": u.new_blobs,
            "newTrees": u.new_trees, "newRawBytes": u.new_raw_bytes,
            "newStoredBytes": u.new_stored_bytes, "packs": u.packs, "durationMs": u.duration_ms,
        },
    })
}

pub fn snapshot_group(f: &mut File) {
    f.group_field("type", json!("CofferSnapshot"));
    let daily = Snapshot {
        version: 2,
        time: 1_767_225_600,
        time_ns: 123_456_789,
        host: "nas.example".into(),
        user: "root".into(),
        paths: vec![b"/home".to_vec(), b"/srv/data".to_vec()],
        tags: vec!["daily".into(), "offsite".into()],
        parent: Some(f.array()),
        tree: f.array(),
        program: "coffer 0.1.0".into(),
        command: None,
        summary: Summary {
            files: 1_234,
            dirs: 56,
            others: 7,
            bytes: 9_876_543_210,
            files_read: 12,
            bytes_read: 3_456_789,
            new_blobs: 8,
            new_trees: 5,
            new_raw_bytes: 2_000_000,
            new_stored_bytes: 1_500_000,
            packs: 1,
            duration_ms: 4_321,
        },
    };
    let command = Snapshot {
        paths: vec![b"/db.sql".to_vec()],
        tags: Vec::new(),
        parent: None,
        tree: f.array(),
        command: Some("pg_dump --format=plain shop".into()),
        ..daily.clone()
    };
    let edge = Snapshot {
        version: 2,
        time: -1,
        time_ns: 999_999_999,
        host: String::new(),
        user: String::new(),
        paths: vec![b"/caf\xe9".to_vec(), b"/".to_vec()],
        tags: vec![String::new(), "ünïcödé".into()],
        parent: None,
        tree: [0; 32],
        program: String::new(),
        command: Some(String::new()),
        summary: Summary {
            files: u64::MAX,
            dirs: u64::MAX,
            others: u64::MAX,
            bytes: u64::MAX,
            files_read: u64::MAX,
            bytes_read: u64::MAX,
            new_blobs: u64::MAX,
            new_trees: u64::MAX,
            new_raw_bytes: u64::MAX,
            new_stored_bytes: u64::MAX,
            packs: u64::MAX,
            duration_ms: u64::MAX,
        },
    };
    let no_paths = Snapshot {
        paths: Vec::new(),
        tags: Vec::new(),
        time: i64::MIN,
        summary: Summary::default(),
        ..edge.clone()
    };
    for (comment, flags, s) in [
        ("a daily backup of two paths with a parent", &[][..], &daily),
        ("a command's output", &[][..], &command),
        ("edge values: time -1 and 999999999 ns, empty strings, a path that is not UTF-8, u64 maxima", &["EdgeValue", "NonUtf8"][..], &edge),
        ("no paths and no tags, time i64::MIN, a zero summary", &["EdgeValue"][..], &no_paths),
    ] {
        let plain = s.encode().unwrap();
        assert_eq!(join(&snapshot_segments(s)), plain, "transcription differs");
        let m = fields(vec![("plaintext", h(&plain)), ("snapshot", snapshot_json(s))]);
        f.add_expect(comment, flags, m, Expect::Valid);
    }

    let good = daily.encode().unwrap();
    let refused = |f: &mut File, comment: &str, flag: &str, plain: &[u8]| {
        f.add_expect(
            comment,
            &[flag],
            fields(vec![("plaintext", h(plain))]),
            Expect::Named("RepoFormat"),
        );
    };
    let mut extra = good.clone();
    extra.push(0);
    refused(f, "a zero byte after the snapshot", "TrailingData", &extra);
    refused(f, "version 1", "UnsupportedVersion", &set(&good, 0, 1));
    refused(f, "version 3", "UnsupportedVersion", &set(&good, 0, 3));
    refused(
        f,
        "time_ns 10^9",
        "NanosOutOfRange",
        &snapshot_with(&daily, "time_ns", varint(1_000_000_000)),
    );
    refused(f, "an empty plaintext", "Truncation", &[]);
    refused(
        f,
        "cut by its last byte",
        "Truncation",
        &good[..good.len() - 1],
    );
    refused(
        f,
        "cut inside the tree ID",
        "Truncation",
        &good[..good.len() - 40],
    );
    refused(
        f,
        "parent option byte 2",
        "Malformed",
        &snapshot_with(&daily, "parent", [vec![2], vec![0; 16]].concat()),
    );
    refused(
        f,
        "a host that is not UTF-8",
        "Malformed",
        &snapshot_with(&daily, "host", bytes(b"nas\xc3")),
    );
    refused(
        f,
        "a tag that is not UTF-8",
        "Malformed",
        &snapshot_with(&daily, "tags", [varint(1), bytes(b"\xed\xa0\x80")].concat()),
    );
    refused(
        f,
        "time_ns of 2^32: too large for a u32",
        "Malformed",
        &snapshot_with(&daily, "time_ns", varint(1 << 32)),
    );
    let mut big = daily.clone();
    big.paths = vec![vec![b'/'; 16 << 20]];
    let plain = big.encode().unwrap();
    assert!(plain.len() > 16 << 20);
    f.add_expect(
        "a plaintext over 16 MiB (one long path; zlib-compressed here)",
        &["Oversized"],
        fields(vec![("plaintextCompressed", h(&zlib(&plain)))]),
        Expect::Named("RepoFormat"),
    );
    for (field, value) in [
        ("time_ns", u64::from(daily.time_ns)),
        ("host", daily.host.len() as u64),
    ] {
        let new = if field == "host" {
            [overlong(value), daily.host.as_bytes().to_vec()].concat()
        } else {
            overlong(value)
        };
        f.add_expect(
            &format!("{field} as an overlong varint"),
            &["NonCanonical"],
            fields(vec![("plaintext", h(&snapshot_with(&daily, field, new)))]),
            Expect::Acceptable,
        );
    }
}
