//! The behaviour every `Storage` backend must have, run against each backend by the
//! backend's own test file.
#![allow(dead_code, unreachable_pub)]

use std::io::Read;

use coffer_adapters::storage::{ObjectKey, PutMode, Storage};
use coffer_adapters::Error;

pub fn key(s: &str) -> ObjectKey {
    ObjectKey::new(s).unwrap()
}

pub fn read_all(mut r: Box<dyn Read + Send>) -> Vec<u8> {
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    out
}

/// Deterministic bytes that differ per `seed` and position.
pub fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ seed)
        .collect()
}

/// A reader that yields its data in small, uneven pieces and never says how long it is.
pub struct Trickle {
    data: Vec<u8>,
    pos: usize,
}

impl Trickle {
    pub fn new(data: Vec<u8>) -> Self {
        Trickle { data, pos: 0 }
    }
}

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let step = 1 + (self.pos * 7919) % 70_000;
        let n = step.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Runs every check against `store`, using keys under `prefix`. `large` is the size of
/// the big object (past an S3 backend's part size, to cover multipart).
pub fn run(store: &dyn Storage, prefix: &str, large: usize) {
    let k = |name: &str| key(&format!("{prefix}/{name}"));

    // Put, get, head, range; sizes 0, small, large with an unknown length.
    for (name, len, seed) in [
        ("empty", 0usize, 1u8),
        ("small", 1000, 2),
        ("large", large, 3),
    ] {
        let body = data(len, seed);
        let n = store
            .put(
                &k(name),
                &mut Trickle::new(body.clone()),
                PutMode::Overwrite,
            )
            .unwrap();
        assert_eq!(n, len as u64, "{name}");
        assert_eq!(read_all(store.get(&k(name)).unwrap()), body, "{name}");
        assert_eq!(store.head(&k(name)).unwrap().unwrap().size, len as u64);
    }
    let body = data(large, 3);
    for (start, len) in [
        (0u64, 10u64),
        (5, 1),
        (large as u64 - 7, 7),
        (large as u64 / 2, 100_000),
        (large as u64 - 3, 10),
    ] {
        let got = read_all(store.get_range(&k("large"), start, len).unwrap());
        let end = (start + len).min(large as u64) as usize;
        assert_eq!(got, body[start as usize..end], "range {start}+{len}");
    }

    // Overwrite replaces; create-only refuses an existing key and leaves it intact.
    store
        .put(&k("small"), &mut &data(10, 9)[..], PutMode::Overwrite)
        .unwrap();
    assert_eq!(read_all(store.get(&k("small")).unwrap()), data(10, 9));
    match store.put(&k("small"), &mut &b"other"[..], PutMode::CreateOnly) {
        Err(Error::AlreadyExists { key }) => assert_eq!(key, k("small")),
        other => panic!("create-only over an existing object: {other:?}"),
    }
    assert_eq!(read_all(store.get(&k("small")).unwrap()), data(10, 9));
    store
        .put(&k("fresh/once"), &mut &b"once"[..], PutMode::CreateOnly)
        .unwrap();
    assert_eq!(read_all(store.get(&k("fresh/once")).unwrap()), b"once");

    // A failing reader leaves no object behind and the old one in place.
    struct Failing(usize);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("source failed"));
            }
            let n = self.0.min(buf.len()).min(50_000);
            buf[..n].fill(0xAA);
            self.0 -= n;
            Ok(n)
        }
    }
    assert!(store
        .put(&k("broken"), &mut Failing(large), PutMode::Overwrite)
        .is_err());
    assert!(store.head(&k("broken")).unwrap().is_none());
    assert!(store
        .put(&k("small"), &mut Failing(large), PutMode::Overwrite)
        .is_err());
    assert_eq!(read_all(store.get(&k("small")).unwrap()), data(10, 9));

    // Listing is sorted, by prefix, and shows only whole objects.
    let listed: Vec<(String, u64)> = store
        .list(&format!("{prefix}/"))
        .unwrap()
        .into_iter()
        .map(|m| (m.key.to_string(), m.size))
        .collect();
    let expected: Vec<(String, u64)> = vec![
        (format!("{prefix}/empty"), 0),
        (format!("{prefix}/fresh/once"), 4),
        (format!("{prefix}/large"), large as u64),
        (format!("{prefix}/small"), 10),
    ];
    assert_eq!(listed, expected);
    assert_eq!(store.list(&format!("{prefix}/fresh/")).unwrap().len(), 1);

    // Missing objects: NotFound on get, None on head, delete is idempotent.
    match store.get(&k("missing")) {
        Err(Error::NotFound { key }) => assert_eq!(key, k("missing")),
        Err(e) => panic!("get of a missing object: {e:?}"),
        Ok(_) => panic!("get of a missing object succeeded"),
    }
    assert!(store.head(&k("missing")).unwrap().is_none());
    store.delete(&k("missing")).unwrap();
    for name in ["empty", "small", "large", "fresh/once"] {
        store.delete(&k(name)).unwrap();
        assert!(store.head(&k(name)).unwrap().is_none(), "{name}");
    }
    assert!(store.list(&format!("{prefix}/")).unwrap().is_empty());
}
