//! Round trips at every length around chunk boundaries, for many input slicings and
//! read sizes, through every way in and out, with both suites.

mod common;

use coffer_core::chunked::{self, CHUNK_LEN, OPEN_BUFFER_LEN, SEAL_BUFFER_LEN};
use coffer_core::{stream, RustCrypto, SecretKey, Suite};
use common::{open_stream, plaintext, rng, seal_stream, Cursor};

fn lengths() -> Vec<usize> {
    let mut out = vec![0, 1, 2, 15, 16, 17];
    for k in 1..=5 {
        let b = k * CHUNK_LEN;
        out.extend([b - 17, b - 16, b - 1, b, b + 1, b + 16]);
    }
    out
}

const SLICINGS: [usize; 9] = [
    1,
    3,
    16,
    1000,
    CHUNK_LEN - 1,
    CHUNK_LEN,
    CHUNK_LEN + 1,
    3 * CHUNK_LEN + 7,
    usize::MAX,
];

#[test]
fn every_length_every_slicing_both_suites() {
    let key = SecretKey::generate(&mut rng(1));
    for suite in Suite::ALL {
        for len in lengths() {
            let data = plaintext(len, 7);
            let mut reference: Option<Vec<u8>> = None;
            for slice in SLICINGS {
                if slice == 1 && len > 2 * CHUNK_LEN + 1 {
                    continue; // byte-at-a-time on the longest inputs adds time, not coverage
                }
                let sealed = seal_stream(suite, &key, b"ctx", &data, slice, 42);
                // The slicing never changes the bytes.
                match &reference {
                    Some(r) => assert_eq!(&sealed, r, "suite {suite:?} len {len} slice {slice}"),
                    None => reference = Some(sealed.clone()),
                }
                // Length on the wire: prefix + one tag per chunk, final chunk always there.
                let chunks = len / CHUNK_LEN + 1;
                assert_eq!(sealed.len(), stream::STREAM_PREFIX_LEN + len + 16 * chunks);
            }
            let sealed = reference.unwrap();
            for step in [1usize, 5000, CHUNK_LEN, 1 << 20] {
                if step == 1 && len > CHUNK_LEN + 1 {
                    continue;
                }
                let (opened, result) = open_stream(&key, b"ctx", &sealed, step);
                assert_eq!(result, Ok(()), "suite {suite:?} len {len} step {step}");
                assert_eq!(opened, data, "suite {suite:?} len {len} step {step}");
            }
        }
    }
}

/// Reading through `spare`/`advance` (no copy) gives the same bytes as `push`.
#[test]
fn spare_and_advance_match_push() {
    let key = SecretKey::generate(&mut rng(2));
    for len in lengths() {
        let data = plaintext(len, 3);
        let expected = seal_stream(Suite::Aes256Gcm, &key, b"", &data, 1000, 9);
        let mut buf = vec![0u8; SEAL_BUFFER_LEN];
        let (mut sealer, prefix) = stream::seal(
            &RustCrypto,
            Suite::Aes256Gcm,
            &key,
            b"",
            &mut rng(9),
            &mut buf[..],
        )
        .unwrap();
        let mut out = prefix.to_vec();
        let mut rest = &data[..];
        while !rest.is_empty() {
            if let Some(ct) = sealer.flush_full().unwrap() {
                out.extend_from_slice(ct);
            }
            let spare = sealer.spare();
            let n = spare.len().min(rest.len()).min(777);
            spare[..n].copy_from_slice(&rest[..n]);
            sealer.advance(n);
            rest = &rest[n..];
        }
        assert_eq!(sealer.plaintext_len(), len as u64);
        out.extend_from_slice(sealer.finish().unwrap().ciphertext());
        assert_eq!(out, expected, "len {len}");
    }
}

/// The streaming opener's zero-copy `next_chunk` and the random-access opener agree.
#[test]
fn next_chunk_and_random_access_read_back() {
    let key = SecretKey::generate(&mut rng(3));
    for suite in Suite::ALL {
        for len in lengths() {
            let data = plaintext(len, 11);
            let sealed = seal_stream(suite, &key, b"repo-1", &data, usize::MAX, 5);

            let mut buf = vec![0u8; OPEN_BUFFER_LEN];
            let (header, mut opener) = stream::open(
                &RustCrypto,
                &key,
                b"repo-1",
                Cursor::with_step(&sealed, 999),
                &mut buf[..],
            )
            .unwrap();
            assert_eq!(header.key_id, key.id());
            assert_eq!(header.suite, suite);
            let mut got = Vec::new();
            while let Some(chunk) = opener.next_chunk().unwrap() {
                got.extend_from_slice(chunk);
            }
            assert_eq!(got, data);
            assert_eq!(opener.next_chunk().unwrap(), None, "stays ended");

            // Random access, with the stream placed after 5 unrelated bytes.
            let mut placed = b"xxxxx".to_vec();
            placed.extend_from_slice(&sealed);
            let mut buf = vec![0u8; OPEN_BUFFER_LEN];
            let (_, mut ra) = stream::open_random_access(
                &RustCrypto,
                &key,
                b"repo-1",
                Cursor::new(&placed),
                5,
                &mut buf[..],
            )
            .unwrap();
            assert_eq!(ra.verify_length().unwrap(), len as u64);
            for (offset, size) in [
                (0usize, len),
                (len / 3, len / 2),
                (len.saturating_sub(1), 10),
                (CHUNK_LEN - 1, 2),
            ] {
                let mut out = vec![0u8; size];
                let n = ra.read_at(offset as u64, &mut out).unwrap();
                let end = (offset + size).min(len);
                let want = if offset < len {
                    &data[offset..end]
                } else {
                    &[][..]
                };
                assert_eq!(&out[..n], want, "len {len} offset {offset} size {size}");
            }
        }
    }
}

/// The chunked layer alone, as an integrator would use it: no Coffer header.
#[test]
fn chunked_layer_round_trip() {
    let key = SecretKey::generate(&mut rng(4));
    let data = plaintext(3 * CHUNK_LEN + 5, 1);
    let mut buf = vec![0u8; SEAL_BUFFER_LEN];
    let (mut sealer, preamble) = chunked::Sealer::new(
        &RustCrypto,
        Suite::ChaCha20Poly1305,
        &key,
        &[b"a", b"b"],
        &mut rng(8),
        &mut buf[..],
    )
    .unwrap();
    let mut out = preamble.to_vec();
    let mut rest = &data[..];
    while !rest.is_empty() {
        let (n, ct) = sealer.push(rest).unwrap();
        if let Some(ct) = ct {
            out.extend_from_slice(ct);
        }
        rest = &rest[n..];
    }
    out.extend_from_slice(sealer.finish().unwrap().ciphertext());
    // Context parts are concatenated: "a" ‖ "b" = "ab".
    let mut buf = vec![0u8; OPEN_BUFFER_LEN];
    let mut opener = chunked::StreamOpener::new(
        &RustCrypto,
        Suite::ChaCha20Poly1305,
        &key,
        &[b"ab"],
        Cursor::new(&out),
        &mut buf[..],
    )
    .unwrap();
    let mut got = Vec::new();
    while let Some(c) = opener.next_chunk().unwrap() {
        got.extend_from_slice(c);
    }
    assert_eq!(got, data);
}

#[test]
fn buffers_too_small_are_refused() {
    let key = SecretKey::generate(&mut rng(5));
    let mut small = vec![0u8; SEAL_BUFFER_LEN - 1];
    let err = stream::seal(
        &RustCrypto,
        Suite::Aes256Gcm,
        &key,
        b"",
        &mut rng(1),
        &mut small[..],
    )
    .err()
    .unwrap();
    assert_eq!(
        err,
        coffer_core::Error::BufferTooSmall {
            needed: SEAL_BUFFER_LEN,
            provided: SEAL_BUFFER_LEN - 1
        }
    );
    let sealed = seal_stream(Suite::Aes256Gcm, &key, b"", b"hi", 10, 1);
    let mut small = vec![0u8; OPEN_BUFFER_LEN - 1];
    let err = stream::open(&RustCrypto, &key, b"", Cursor::new(&sealed), &mut small[..])
        .err()
        .unwrap();
    assert!(matches!(err, coffer_core::Error::BufferTooSmall { .. }));
}
