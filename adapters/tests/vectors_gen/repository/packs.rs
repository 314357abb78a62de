//! Pack plaintexts (§16) and index plaintexts (§17).

use coffer_adapters::repo::index::{IndexFile, PackRecord};
use coffer_adapters::repo::pack::{padme, BlobKind, Compression, PackBuilder, TocEntry};
use coffer_adapters::repo::workers::compress;
use serde_json::{json, Map, Value};

use super::super::{Expect, File};
use super::{fields, flip, h, hmac256, put, set};

/// The 18.5 worked example's tree blob: a real tree to store as a kind-1 blob.
pub const EXAMPLE_TREE: &str = "0201096e6f7465732e7478740003001111111111111111111111111111111111111111111111111111111111111111e8070180200022222222222222222222222222222222222222222222222222222222222222\
22ac02a403e8076405616c69636505757365727380c49fd50c959aef3a0100828008811001942a0108757365722e7461670178";

/// A blob to put in a pack: its plaintext, kind, and how to store it.
pub struct Blob {
    pub raw: Vec<u8>,
    pub kind: BlobKind,
    pub store: Store,
}

/// How a blob is stored.
#[derive(Clone, Copy)]
pub enum Store {
    /// As the engine's writer decides (zstd when that saves a sixteenth).
    Engine,
    /// As is.
    Raw,
    /// These exact stored bytes, compression 1.
    Zstd,
}

/// A pack plaintext built by the engine's `PackBuilder`, with its table.
pub struct Pack {
    pub plain: Vec<u8>,
    pub entries: Vec<TocEntry>,
    pub raws: Vec<Vec<u8>>,
    pub toc_offset: usize,
}

impl Pack {
    /// Where entry `i` starts in the plaintext.
    pub fn entry_at(&self, i: usize) -> usize {
        self.toc_offset + 4 + 48 * i
    }
}

pub fn blob_id(id_key: &[u8], raw: &[u8]) -> [u8; 32] {
    hmac256(id_key, &[raw]).try_into().unwrap()
}

pub fn build(id_key: &[u8], blobs: Vec<Blob>) -> Pack {
    let mut b = PackBuilder::new();
    let mut raws = Vec::new();
    for blob in blobs {
        let (stored, compression) = match blob.store {
            Store::Engine => compress(blob.raw.clone()).unwrap(),
            Store::Raw => (blob.raw.clone(), Compression::None),
            Store::Zstd => (
                zstd::bulk::compress(&blob.raw, 3).unwrap(),
                Compression::Zstd,
            ),
        };
        let id = blob_id(id_key, &blob.raw);
        b.add(id, blob.kind, compression, &stored, blob.raw.len())
            .unwrap();
        raws.push(blob.raw);
    }
    let toc_offset = b.len();
    let (plain, entries) = b.finish();
    Pack {
        plain,
        entries,
        raws,
        toc_offset,
    }
}

fn entry_json(e: &TocEntry) -> Map<String, Value> {
    fields(vec![
        ("id", h(&e.id)),
        ("kind", json!(e.kind as u8)),
        ("compression", json!(e.compression as u8)),
        ("offset", json!(e.offset)),
        ("storedLen", json!(e.stored_len)),
        ("rawLen", json!(e.raw_len)),
    ])
}

/// Text that compresses.
fn text(f: &mut File, lines: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..lines {
        let word = hex::encode(f.bytes(2));
        out.extend_from_slice(format!("{i:05} line of a log, word {word}\n").as_bytes());
    }
    out
}

fn valid_pack(f: &mut File, comment: &str, flags: &[&str], id_key: &[u8], p: &Pack) {
    let entries: Vec<Value> = p
        .entries
        .iter()
        .zip(&p.raws)
        .map(|(e, raw)| {
            let mut m = entry_json(e);
            m.insert("msg".into(), h(raw));
            Value::Object(m)
        })
        .collect();
    let toc_len = 4 + 48 * p.entries.len();
    let m = fields(vec![
        ("chunkIdKey", h(id_key)),
        ("pack", h(&p.plain)),
        ("tocOffset", json!(p.toc_offset)),
        ("tocLength", json!(toc_len)),
        ("unpaddedLength", json!(p.toc_offset + toc_len + 16)),
        ("entries", json!(entries)),
    ]);
    assert_eq!(
        p.plain.len() as u64,
        padme((p.toc_offset + toc_len + 16) as u64)
    );
    f.add_expect(comment, flags, m, Expect::Valid);
}

pub fn pack_group(f: &mut File) {
    f.group_field("type", json!("CofferPack"));
    let id_key: [u8; 32] = f.array();
    let tree = hex::decode(EXAMPLE_TREE).unwrap();

    let one = build(
        &id_key,
        vec![Blob {
            raw: f.bytes(1000),
            kind: BlobKind::Data,
            store: Store::Engine,
        }],
    );
    valid_pack(
        f,
        "one stored data blob of 1000 random bytes",
        &[],
        &id_key,
        &one,
    );
    let raw = f.bytes(700);
    let log = text(f, 80);
    let base = build(
        &id_key,
        vec![
            Blob {
                raw,
                kind: BlobKind::Data,
                store: Store::Raw,
            },
            Blob {
                raw: tree.clone(),
                kind: BlobKind::Tree,
                store: Store::Engine,
            },
            Blob {
                raw: log,
                kind: BlobKind::Data,
                store: Store::Zstd,
            },
        ],
    );
    valid_pack(
        f,
        "a stored data blob, a tree blob (FORMAT.md §18.5's) and a zstd data blob",
        &["Compressed"],
        &id_key,
        &base,
    );
    let exact = build(
        &id_key,
        vec![Blob {
            raw: f.bytes(1024 - 16 - 4 - 48),
            kind: BlobKind::Data,
            store: Store::Raw,
        }],
    );
    assert_eq!(exact.plain.len(), 1024);
    valid_pack(
        f,
        "blobs + table + trailer = 1024 = Padmé(1024): no padding",
        &["EdgeLength"],
        &id_key,
        &exact,
    );
    let mut blobs = Vec::new();
    for i in 0..10 {
        let raw = if i % 3 == 0 {
            text(f, 40 + i)
        } else {
            f.bytes(500 + 300 * i)
        };
        blobs.push(Blob {
            raw,
            kind: BlobKind::Data,
            store: Store::Engine,
        });
    }
    let ten = build(&id_key, blobs);
    valid_pack(
        f,
        "ten data blobs, some compressed",
        &["Compressed"],
        &id_key,
        &ten,
    );

    // ---- the second pack above, broken in every way ----
    let p = &base;
    let len = p.plain.len();
    let trailer = len - 16;
    let padding = trailer - (p.toc_offset + 4 + 48 * 3);
    assert!(padding > 0, "the base pack needs padding");
    let (e0, e1, e2) = (p.entry_at(0), p.entry_at(1), p.entry_at(2));
    let refused = |f: &mut File, comment: &str, flag: &str, plain: &[u8]| {
        let m = fields(vec![("chunkIdKey", h(&id_key)), ("pack", h(plain))]);
        f.add_expect(comment, &[flag], m, Expect::Named("RepoFormat"));
    };
    let u32le = |n: u32| n.to_le_bytes();
    refused(
        f,
        "trailer magic CPK3",
        "ModifiedMagic",
        &set(&p.plain, len - 1, b'3'),
    );
    refused(
        f,
        "trailer magic zeroed",
        "ModifiedMagic",
        &put(&p.plain, len - 4, &[0; 4]),
    );
    let toc_len = 4 + 48 * 3;
    refused(
        f,
        "toc_offset one past where the table still fits",
        "TocOutOfBounds",
        &put(
            &p.plain,
            trailer,
            &((trailer - toc_len + 1) as u64).to_le_bytes(),
        ),
    );
    refused(
        f,
        "toc_offset 2^64 - 2: toc_offset + toc_len overflows",
        "TocOutOfBounds",
        &put(&p.plain, trailer, &(u64::MAX - 1).to_le_bytes()),
    );
    refused(
        f,
        "toc_len 0",
        "TocOutOfBounds",
        &put(&p.plain, trailer + 8, &u32le(0)),
    );
    refused(
        f,
        "toc_len 3: no room for the count",
        "TocOutOfBounds",
        &put(&p.plain, trailer + 8, &u32le(3)),
    );
    refused(
        f,
        "table count 2 in a table of 3 entries",
        "TocLength",
        &put(&p.plain, p.toc_offset, &u32le(2)),
    );
    refused(
        f,
        "table count 2^32 - 1",
        "TocLength",
        &put(&p.plain, p.toc_offset, &u32le(u32::MAX)),
    );
    refused(
        f,
        "toc_len one more than 4 + 48n",
        "TocLength",
        &put(&p.plain, trailer + 8, &u32le(toc_len as u32 + 1)),
    );
    refused(f, "blob kind 2", "UnknownKind", &set(&p.plain, e0 + 32, 2));
    refused(
        f,
        "blob kind 255",
        "UnknownKind",
        &set(&p.plain, e1 + 32, 255),
    );
    refused(
        f,
        "compression 2",
        "UnknownCompression",
        &set(&p.plain, e2 + 33, 2),
    );
    refused(
        f,
        "entry byte 34 set",
        "ReservedBitsSet",
        &set(&p.plain, e0 + 34, 1),
    );
    refused(
        f,
        "entry byte 35 set",
        "ReservedBitsSet",
        &set(&p.plain, e2 + 35, 0x80),
    );
    let e = &p.entries;
    refused(
        f,
        "a stored blob with raw_len = stored_len + 1",
        "StoredLength",
        &put(&p.plain, e0 + 44, &u32le(e[0].raw_len + 1)),
    );
    refused(
        f,
        "a zstd blob with raw_len 2^30 - 2^20 + 1",
        "BlobTooLong",
        &put(&p.plain, e2 + 44, &u32le((1 << 30) - (1 << 20) + 1)),
    );
    refused(
        f,
        "the tree blob starts inside the first blob",
        "Overlap",
        &put(&p.plain, e1 + 36, &u32le(e[0].stored_len - 1)),
    );
    refused(
        f,
        "the last two entries at the same offset",
        "Overlap",
        &put(&p.plain, e2 + 36, &u32le(e[1].offset)),
    );
    refused(
        f,
        "the last blob runs one byte into the table",
        "BlobIntoToc",
        &put(&p.plain, e2 + 40, &u32le(e[2].stored_len + 1)),
    );
    refused(
        f,
        "a byte of the stored blob changed: it no longer has its ID",
        "WrongBlobId",
        &flip(&p.plain, 5, 0x01),
    );
    refused(
        f,
        "a byte of the tree blob's ID changed",
        "WrongBlobId",
        &flip(&p.plain, e1 + 31, 0x80),
    );
    let zstd_at = e[2].offset as usize;
    let garbage = f.bytes(e[2].stored_len as usize);
    refused(
        f,
        "the zstd blob's bytes replaced by random ones",
        "BadZstd",
        &put(&p.plain, zstd_at, &garbage),
    );
    refused(
        f,
        "the zstd blob decompresses to raw_len + 1 bytes: raw_len is one short",
        "BadZstd",
        &put(&p.plain, e2 + 44, &u32le(e[2].raw_len - 1)),
    );
    refused(
        f,
        "the zstd blob decompresses to raw_len - 1 bytes: raw_len is one more",
        "BadZstd",
        &put(&p.plain, e2 + 44, &u32le(e[2].raw_len + 1)),
    );
    refused(
        f,
        "the zstd frame cut by its last byte (stored_len - 1)",
        "BadZstd",
        &put(&p.plain, e2 + 40, &u32le(e[2].stored_len - 1)),
    );
    refused(f, "an empty plaintext", "Truncation", &[]);
    refused(
        f,
        "15 bytes: shorter than a trailer",
        "Truncation",
        &p.plain[len - 15..],
    );

    // ---- what a reader may refuse ----
    let may = |f: &mut File, comment: &str, flag: &str, plain: &[u8]| {
        let m = fields(vec![("chunkIdKey", h(&id_key)), ("pack", h(plain))]);
        f.add_expect(comment, &[flag], m, Expect::Acceptable);
    };
    may(
        f,
        "a padding byte is not zero",
        "Padding",
        &set(&p.plain, trailer - 1, 1),
    );
    let unpadded = [&p.plain[..trailer - padding], &p.plain[trailer..]].concat();
    may(
        f,
        "no padding: the length is not Padmé(U)",
        "Padding",
        &unpadded,
    );
    let longer = [
        &p.plain[..trailer],
        &vec![0u8; len + 1][..],
        &p.plain[trailer..],
    ]
    .concat();
    assert_ne!(padme(longer.len() as u64), longer.len() as u64);
    may(f, "padded to more than Padmé(U)", "Padding", &longer);

    let a = text(f, 30);
    let b = text(f, 30);
    let whole = [&a[..], &b].concat();
    let two_frames = [
        zstd::bulk::compress(&a, 3).unwrap(),
        zstd::bulk::compress(&b, 3).unwrap(),
    ]
    .concat();
    let skippable = [
        &[0x50, 0x2a, 0x4d, 0x18][..],
        &4u32.to_le_bytes(),
        b"skip",
        &zstd::bulk::compress(&whole, 3).unwrap(),
    ]
    .concat();
    for (comment, stored) in [
        ("a blob stored as two zstd frames", two_frames),
        (
            "a blob stored as a skippable frame and a zstd frame",
            skippable,
        ),
    ] {
        let mut builder = PackBuilder::new();
        builder
            .add(
                blob_id(&id_key, &whole),
                BlobKind::Data,
                Compression::Zstd,
                &stored,
                whole.len(),
            )
            .unwrap();
        let (plain, _) = builder.finish();
        may(f, comment, "ExtraZstdFrames", &plain);
    }
}

fn index_json(file: &IndexFile) -> Vec<(&'static str, Value)> {
    let packs: Vec<Value> = file
        .packs
        .iter()
        .map(|p| {
            json!({
                "id": hex::encode(p.id),
                "objectLength": p.object_len,
                "entries": p.entries.iter().map(|e| Value::Object(entry_json(e))).collect::<Vec<_>>(),
            })
        })
        .collect();
    vec![
        ("packs", json!(packs)),
        (
            "supersedes",
            json!(file.supersedes.iter().map(hex::encode).collect::<Vec<_>>()),
        ),
    ]
}

pub fn index_group(f: &mut File) {
    f.group_field("type", json!("CofferIndex"));
    let id_key: [u8; 32] = f.array();
    let entries_of = |f: &mut File, n: usize| {
        let blobs = (0..n)
            .map(|i| Blob {
                raw: if i % 2 == 0 {
                    text(f, 20)
                } else {
                    f.bytes(300)
                },
                kind: if i == n - 1 {
                    BlobKind::Tree
                } else {
                    BlobKind::Data
                },
                store: Store::Engine,
            })
            .collect();
        build(&id_key, blobs).entries
    };
    let three = entries_of(f, 3);
    let two = entries_of(f, 2);
    let one_pack = IndexFile {
        packs: vec![PackRecord {
            id: f.array(),
            object_len: 12_345,
            entries: three.clone(),
        }],
        supersedes: vec![f.array()],
    };
    let cases = [
        (
            "one pack of three blobs, superseding one index",
            &["Supersedes"][..],
            one_pack.clone(),
        ),
        (
            "no packs, supersedes nothing: 12 bytes",
            &["EdgeLength"][..],
            IndexFile::default(),
        ),
        (
            "two packs, supersedes nothing",
            &[][..],
            IndexFile {
                packs: vec![
                    PackRecord {
                        id: f.array(),
                        object_len: 1 << 24,
                        entries: two.clone(),
                    },
                    PackRecord {
                        id: f.array(),
                        object_len: u64::MAX,
                        entries: three.clone(),
                    },
                ],
                supersedes: Vec::new(),
            },
        ),
        (
            "no packs, superseding three indexes (a prune that deleted every pack)",
            &["Supersedes"][..],
            IndexFile {
                packs: Vec::new(),
                supersedes: vec![f.array(), f.array(), f.array()],
            },
        ),
    ];
    for (comment, flags, file) in cases {
        let mut m = fields(vec![("plaintext", h(&file.encode()))]);
        m.extend(
            index_json(&file)
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v)),
        );
        f.add_expect(comment, flags, m, Expect::Valid);
    }

    let b = one_pack.encode();
    assert_eq!(b.len(), 4 + 4 + 28 + 3 * 48 + 4 + 16);
    let refused = |f: &mut File, comment: &str, flag: &str, plain: &[u8]| {
        f.add_expect(
            comment,
            &[flag],
            fields(vec![("plaintext", h(plain))]),
            Expect::Named("RepoFormat"),
        );
    };
    refused(f, "magic CIX1", "ModifiedMagic", &set(&b, 3, b'1'));
    for (cut, what) in [
        (0, "empty"),
        (3, "inside the magic"),
        (6, "inside the pack count"),
        (20, "inside the pack ID"),
        (30, "inside the pack's object length"),
        (100, "inside an entry"),
        (4 + 4 + 28 + 3 * 48, "before the superseded count"),
        (b.len() - 1, "inside the superseded ID"),
    ] {
        refused(
            f,
            &format!("cut to {cut} bytes: {what}"),
            "Truncation",
            &b[..cut],
        );
    }
    let mut longer = b.clone();
    longer.push(0);
    refused(
        f,
        "a zero byte after the superseded list",
        "TrailingData",
        &longer,
    );
    refused(
        f,
        "pack count 2^32 - 1",
        "CountTooLarge",
        &put(&b, 4, &u32::MAX.to_le_bytes()),
    );
    refused(
        f,
        "pack count 2",
        "CountTooLarge",
        &put(&b, 4, &2u32.to_le_bytes()),
    );
    refused(
        f,
        "entry count 2^32 - 1",
        "CountTooLarge",
        &put(&b, 8 + 24, &u32::MAX.to_le_bytes()),
    );
    refused(
        f,
        "entry count 4: the superseded list leaves no room for a fourth entry",
        "CountTooLarge",
        &put(&b, 8 + 24, &4u32.to_le_bytes()),
    );
    let sup = 4 + 4 + 28 + 3 * 48;
    refused(
        f,
        "superseded count 2^28",
        "CountTooLarge",
        &put(&b, sup, &(1u32 << 28).to_le_bytes()),
    );
    let entry0 = 8 + 28;
    refused(
        f,
        "an entry of kind 2",
        "UnknownKind",
        &set(&b, entry0 + 32, 2),
    );
    refused(
        f,
        "an entry with byte 35 set",
        "ReservedBitsSet",
        &set(&b, entry0 + 35, 1),
    );
    let stored_entry = three
        .iter()
        .position(|e| e.compression == Compression::None)
        .unwrap();
    let at = entry0 + 48 * stored_entry + 44;
    refused(
        f,
        "a stored entry with raw_len = stored_len + 1",
        "StoredLength",
        &put(&b, at, &(three[stored_entry].raw_len + 1).to_le_bytes()),
    );
}
