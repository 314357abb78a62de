//! The worked example of FORMAT.md §18, byte for byte.

use super::*;

/// FORMAT.md §18's example: one file of two chunks around a hole, with one extended
/// attribute.
fn example() -> Tree {
    Tree {
        version: 2,
        nodes: vec![Node {
            name: b"notes.txt".to_vec(),
            kind: NodeKind::File {
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
            size: 5396,
            xattrs: vec![Xattr {
                name: b"user.tag".to_vec(),
                value: b"x".to_vec(),
            }],
        }],
    }
}

/// The example's blob, field by field as FORMAT.md §18 lays it out.
const EXAMPLE_HEX: &str = concat!(
    "02",                   // version 2
    "01",                   // 1 node
    "096e6f7465732e747874", // name: length 9, "notes.txt"
    "00",                   // kind 0, File
    "03",                   // 3 pieces
    "00",                   // piece 0, Data: id, then len 1000
    "1111111111111111111111111111111111111111111111111111111111111111",
    "e807",
    "018020", // piece 1, Hole: len 4096
    "00",     // piece 2, Data: id, then len 300
    "2222222222222222222222222222222222222222222222222222222222222222",
    "ac02",
    "a403",               // mode 0o644 = 420
    "e807",               // uid 1000
    "64",                 // gid 100
    "05616c696365",       // user: length 5, "alice"
    "057573657273",       // group: length 5, "users"
    "80c49fd50c",         // mtime 1700000000, zigzag 3400000000
    "959aef3a",           // mtime_ns 123456789
    "01",                 // ctime -1, zigzag 1
    "00",                 // ctime_ns 0
    "828008",             // inode 131074
    "8110",               // dev 2049
    "01",                 // nlink 1
    "942a",               // size 5396 = 1000 + 4096 + 300
    "01",                 // 1 extended attribute
    "08757365722e746167", // name: length 8, "user.tag"
    "0178",               // value: length 1, "x"
);

#[test]
fn worked_example_matches_format_md() {
    let blob = example().encode();
    assert_eq!(hex::encode(&blob), EXAMPLE_HEX);
    assert_eq!(blob.len(), 135);
    assert_eq!(Tree::decode(&blob).unwrap(), example());
}

#[test]
fn leading_varint_reads_leb128() {
    assert_eq!(leading_varint(&[0x00]), Some(0));
    assert_eq!(leading_varint(&[0xac, 0x02, 0xff]), Some(300));
    assert_eq!(leading_varint(&[0x80]), None);
    let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    assert_eq!(leading_varint(&max), Some(u64::MAX));
    let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
    assert_eq!(leading_varint(&over), None);
}
