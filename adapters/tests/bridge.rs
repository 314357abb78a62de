//! The std::io bridges: the parallel sealer produces streams the core opens, for every
//! length around chunk and batch boundaries and any thread count; the open reader
//! releases nothing unverified and reports the core's errors.

use std::io::Read;

use coffer_adapters::bridge::{core_error, OpenReader, SealReader};
use coffer_core::chunked::CHUNK_LEN;
use coffer_core::{Error, RustCrypto, SecretKey, Suite};

fn plaintext(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 65536) as u8)
        .collect()
}

fn seal(suite: Suite, key: &SecretKey, ctx: &[u8], data: &[u8], threads: usize) -> Vec<u8> {
    let mut sealer = SealReader::new(&RustCrypto, suite, key, ctx, data, threads).unwrap();
    let mut out = Vec::new();
    sealer.read_to_end(&mut out).unwrap();
    assert_eq!(sealer.plaintext_len(), data.len() as u64);
    out
}

fn open(key: &SecretKey, ctx: &[u8], sealed: &[u8]) -> (Vec<u8>, Result<(), std::io::Error>) {
    let mut out = Vec::new();
    let mut reader = match OpenReader::new(&RustCrypto, key, ctx, sealed) {
        Ok(r) => r,
        Err(e) => return (out, Err(std::io::Error::other(e))),
    };
    let mut buf = vec![0u8; 10_000];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return (out, Ok(())),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Err(e)),
        }
    }
}

#[test]
fn parallel_sealing_round_trips_at_every_boundary() {
    let key = SecretKey::from_bytes([3; 32]);
    // 16 chunks is one batch with two threads; cover lengths around it and its multiples.
    let mut lengths = vec![0, 1, CHUNK_LEN - 1, CHUNK_LEN, CHUNK_LEN + 1];
    for chunks in [8usize, 16, 24, 32, 33] {
        for delta in [-1isize, 0, 1] {
            lengths.push((chunks * CHUNK_LEN).checked_add_signed(delta).unwrap());
        }
    }
    for suite in Suite::ALL {
        for threads in [1, 2, 3] {
            for &len in &lengths {
                let data = plaintext(len);
                let sealed = seal(suite, &key, b"ctx", &data, threads);
                let expected_len = 88 + len + 16 * (len / CHUNK_LEN + 1);
                assert_eq!(sealed.len(), expected_len, "{suite:?} {threads} {len}");
                let (out, result) = open(&key, b"ctx", &sealed);
                result.unwrap();
                assert!(out == data, "{suite:?} threads {threads} len {len}");
            }
        }
    }
}

#[test]
fn open_reader_reports_the_core_error_and_releases_nothing_unverified() {
    let key = SecretKey::from_bytes([4; 32]);
    let data = plaintext(3 * CHUNK_LEN + 5);
    let sealed = seal(Suite::Aes256Gcm, &key, b"", &data, 2);

    let mut bad = sealed.clone();
    bad[88 + CHUNK_LEN + 16 + 100] ^= 1; // inside chunk 1
    let (out, result) = open(&key, b"", &bad);
    let err = result.unwrap_err();
    assert_eq!(core_error(&err), Some(Error::CorruptedChunk { index: 1 }));
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert_eq!(out, data[..CHUNK_LEN]);

    let (out, result) = open(&key, b"", &sealed[..sealed.len() - 1]);
    assert!(result.is_err());
    assert!(out.len() <= 3 * CHUNK_LEN);

    let other = SecretKey::from_bytes([5; 32]);
    match OpenReader::new(&RustCrypto, &other, b"", &sealed[..]) {
        Err(coffer_adapters::Error::Core(Error::WrongKey { expected })) => {
            assert_eq!(expected, key.id())
        }
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("opened with the wrong key"),
    }
}
