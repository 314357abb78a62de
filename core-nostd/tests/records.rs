//! Manifest records: round trips, the postcard wire format FORMAT.md §11 states, and
//! hostile input (every truncation and byte change decodes to a value or an error,
//! never a panic).

use coffer_core::record::{EntryKind, EntryRecord, FrameRecord, ManifestHeader, MANIFEST_VERSION};
use coffer_core::Error;

fn entry(path: &[u8]) -> EntryRecord<'_> {
    EntryRecord {
        path,
        kind: EntryKind::Symlink,
        mode: 0o755,
        mtime: -5,
        size: 1 << 40,
        sha256: [9; 32],
        link_target: b"../target\xff",
        archive_offset: 1024,
    }
}

#[test]
fn a_manifest_round_trips_as_back_to_back_records() {
    let header = ManifestHeader {
        version: MANIFEST_VERSION,
        host: "nas-1",
        created: 1_790_000_000,
        key_id: [7; 16],
        entry_count: 2,
        content_bytes: 12345,
        archive_len: 20480,
        compressed_len: 999,
        frame_count: 1,
    };
    let frame = FrameRecord {
        archive_offset: 0,
        compressed_offset: 0,
    };
    let names: [&[u8]; 2] = [b"dir/caf\xc3\xa9", b"not utf-8 \xfe\xff"];
    let mut buf = vec![0u8; 4096];
    let mut used = 0;
    used += header.encode(&mut buf[used..]).unwrap().len();
    used += frame.encode(&mut buf[used..]).unwrap().len();
    for n in names {
        used += entry(n).encode(&mut buf[used..]).unwrap().len();
    }
    let (h, rest) = ManifestHeader::decode(&buf[..used]).unwrap();
    assert_eq!(h, header);
    let (f, mut rest) = FrameRecord::decode(rest).unwrap();
    assert_eq!(f, frame);
    for n in names {
        let (e, r) = EntryRecord::decode(rest).unwrap();
        assert_eq!(e, entry(n));
        rest = r;
    }
    assert!(rest.is_empty());
}

#[test]
fn the_encoding_is_postcard_wire_format() {
    // Varints are LEB128 (300 = ac 02); signed integers zigzag first (-5 = 9);
    // byte strings are a varint length then the bytes; enums a varint variant index.
    let mut buf = [0u8; 128];
    let frame = FrameRecord {
        archive_offset: 300,
        compressed_offset: 1,
    };
    assert_eq!(frame.encode(&mut buf).unwrap(), [0xac, 0x02, 0x01]);
    let e = EntryRecord {
        path: b"a",
        kind: EntryKind::Directory,
        mode: 0o700,
        mtime: -5,
        size: 0,
        sha256: [0; 32],
        link_target: b"",
        archive_offset: 2,
    };
    let mut expected = vec![0x01, b'a', 0x01, 0xc0, 0x03, 0x09, 0x00];
    expected.extend_from_slice(&[0; 32]);
    expected.extend_from_slice(&[0x00, 0x02]);
    assert_eq!(e.encode(&mut buf).unwrap(), &expected[..]);
}

#[test]
fn a_short_buffer_says_how_much_is_needed() {
    let e = entry(b"some/path");
    let mut big = [0u8; 256];
    let len = e.encode(&mut big).unwrap().len();
    let mut small = vec![0u8; len - 1];
    assert_eq!(
        e.encode(&mut small),
        Err(Error::BufferTooSmall {
            needed: len,
            provided: len - 1
        })
    );
}

#[test]
fn hostile_records_fail_cleanly() {
    let mut buf = [0u8; 256];
    let bytes = entry(b"x/y").encode(&mut buf).unwrap().to_vec();
    for cut in 0..bytes.len() {
        assert_eq!(
            EntryRecord::decode(&bytes[..cut]).map(|_| ()),
            Err(Error::MalformedRecord { record: "entry" }),
            "cut {cut}"
        );
    }
    for at in 0..bytes.len() {
        for v in [0x00, 0x7f, 0x80, 0xff] {
            let mut bad = bytes.clone();
            bad[at] = v;
            // Either another valid record or an error; never a panic or a read past the end.
            if let Ok((e, rest)) = EntryRecord::decode(&bad) {
                assert!(e.path.len() + e.link_target.len() <= bad.len());
                assert!(rest.len() < bad.len());
            }
        }
    }
    // A length prefix claiming more bytes than there are.
    assert!(EntryRecord::decode(&[0xff, 0xff, 0xff, 0xff, 0x0f, b'a']).is_err());
    // An unknown entry kind.
    let mut bad = bytes.clone();
    bad[4] = 7; // path "x/y" is 1 + 3 bytes, then the kind
    assert_eq!(
        EntryRecord::decode(&bad).map(|_| ()),
        Err(Error::MalformedRecord { record: "entry" })
    );
}
