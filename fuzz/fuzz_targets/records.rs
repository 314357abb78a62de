//! `records`: the manifest records of FORMAT.md §11 on arbitrary bytes.
//!
//! Input: any bytes, decoded as a manifest would be: a header, then as many frame
//! records and entry records as the input holds (the counts are not trusted).
//!
//! Checks: decoding never panics and never reads past the input (every borrowed slice
//! lies inside it, and the rest shrinks); every record that decodes re-encodes into a
//! buffer of the size `encode` asks for and decodes back to the same value.
#![no_main]

use coffer_core::record::{EntryRecord, FrameRecord, ManifestHeader};
use coffer_core::Error;
use libfuzzer_sys::fuzz_target;

/// Re-encodes `$value` (into the size `encode` asks for) and checks it decodes back to
/// the same value with nothing left over.
macro_rules! round_trip {
    ($value:expr, $t:ty) => {{
        let value = $value;
        let mut small = [0u8; 8];
        let mut buf = match value.encode(&mut small) {
            Ok(b) => b.to_vec(),
            Err(Error::BufferTooSmall { needed, provided }) => {
                assert_eq!(provided, 8);
                let mut big = vec![0u8; needed];
                let n = value
                    .encode(&mut big)
                    .expect("encode into the size it asked for")
                    .len();
                big.truncate(n);
                big
            }
            Err(e) => panic!("encoding a decoded record: {e:?}"),
        };
        let (again, rest) = <$t>::decode(&buf).expect("decode what was encoded");
        assert_eq!(again, value);
        assert!(rest.is_empty());
        buf.clear();
    }};
}

fn inside(outer: &[u8], inner: &[u8]) -> bool {
    let (o, i) = (outer.as_ptr() as usize, inner.as_ptr() as usize);
    inner.is_empty() || (i >= o && i + inner.len() <= o + outer.len())
}

fuzz_target!(|data: &[u8]| {
    let Ok((header, mut rest)) = ManifestHeader::decode(data) else {
        // A header that fails still lets the entry decoder loose on the same bytes.
        let _ = EntryRecord::decode(data);
        return;
    };
    assert!(inside(data, header.host.as_bytes()));
    round_trip!(header, ManifestHeader);
    // Alternate frame and entry records until the input runs out or stops decoding.
    loop {
        let before = rest.len();
        if let Ok((frame, r)) = FrameRecord::decode(rest) {
            round_trip!(frame, FrameRecord);
            rest = r;
        }
        match EntryRecord::decode(rest) {
            Ok((entry, r)) => {
                assert!(inside(data, entry.path) && inside(data, entry.link_target));
                round_trip!(entry, EntryRecord);
                rest = r;
            }
            Err(Error::MalformedRecord { .. }) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
        if rest.len() >= before || rest.is_empty() {
            break;
        }
    }
});
