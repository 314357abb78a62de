//! Every single-bit flip, every truncation, chunk reordering, duplication and splicing
//! of sealed streams is rejected, with the error that names what is wrong, and no
//! unverified plaintext is released.

mod common;

use coffer_core::chunked::{CHUNK_LEN, ENCRYPTED_CHUNK_LEN};
use coffer_core::stream::STREAM_PREFIX_LEN;
use coffer_core::{Error, SecretKey, Suite};
use common::{open_all, open_stream, plaintext, rng, seal_stream};

/// The error a flip at byte `at` must give.
fn expected_error(at: usize, key: &SecretKey) -> Error {
    match at {
        0..=7 => Error::BadMagic,
        8 => Error::UnsupportedVersion { version: 0 },
        9 => Error::UnsupportedSuite { suite: 0 },
        10..=15 => Error::ReservedBitsSet,
        16..=31 => Error::WrongKey { expected: key.id() },
        32..=87 => Error::CommitmentMismatch,
        _ => Error::CorruptedChunk {
            index: ((at - STREAM_PREFIX_LEN) / ENCRYPTED_CHUNK_LEN) as u64,
        },
    }
}

fn same_kind(a: &Error, b: &Error) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
        && !matches!((a, b), (Error::CorruptedChunk { index: x }, Error::CorruptedChunk { index: y }) if x != y)
}

#[test]
fn every_single_bit_flip_is_rejected_with_its_error() {
    let key = SecretKey::generate(&mut rng(10));
    for suite in Suite::ALL {
        for len in [0usize, 1, 100] {
            let data = plaintext(len, 1);
            let sealed = seal_stream(suite, &key, b"ctx", &data, usize::MAX, 1);
            for at in 0..sealed.len() {
                for bit in 0..8 {
                    let mut bad = sealed.clone();
                    bad[at] ^= 1 << bit;
                    let (released, result) = open_stream(&key, b"ctx", &bad, 4096);
                    let err = result.expect_err("a flipped stream must not open");
                    assert!(
                        same_kind(&err, &expected_error(at, &key)),
                        "len {len} byte {at} bit {bit}: {err:?}"
                    );
                    assert!(
                        released.is_empty(),
                        "len {len} byte {at}: plaintext released"
                    );
                }
            }
        }
    }
}

/// Multi-chunk streams: one flipped bit per byte, cycling the bit. Chunks before the
/// damaged one may be released (they are authentic); the damaged one never is.
/// Offsets to damage a sealed stream of `len` bytes at: every one in streams up to a
/// few KiB; in longer ones every offset within 64 bytes of the prefix, of each chunk's
/// start, of each tag and of the end, and every 61st byte between. Opening is
/// quadratic in the offset, and every offset of a 32 KiB stream takes minutes under
/// qemu without reaching any code path the probed offsets miss.
fn probe_offsets(len: usize) -> Vec<usize> {
    if len <= 4096 {
        return (0..len).collect();
    }
    let mut marks = vec![0, STREAM_PREFIX_LEN, len];
    let mut chunk = STREAM_PREFIX_LEN;
    while chunk < len {
        marks.push(chunk);
        marks.push(chunk + CHUNK_LEN);
        chunk += ENCRYPTED_CHUNK_LEN;
    }
    (0..len)
        .filter(|&at| at % 61 == 0 || marks.iter().any(|&m| at.abs_diff(m) <= 64))
        .collect()
}

#[test]
fn a_flip_anywhere_in_a_three_chunk_stream_is_rejected() {
    let key = SecretKey::generate(&mut rng(11));
    let data = plaintext(2 * CHUNK_LEN + 300, 2);
    let sealed = seal_stream(Suite::Aes256Gcm, &key, b"", &data, usize::MAX, 2);
    for at in probe_offsets(sealed.len()) {
        let mut bad = sealed.clone();
        bad[at] ^= 1 << (at % 8);
        let (released, result) = open_stream(&key, b"", &bad, 1 << 16);
        let err = result.expect_err("must fail");
        let expected = expected_error(at, &key);
        assert!(
            same_kind(&err, &expected),
            "byte {at}: {err:?} vs {expected:?}"
        );
        if let Error::CorruptedChunk { index } = err {
            assert_eq!(released.len(), index as usize * CHUNK_LEN, "byte {at}");
            assert_eq!(released[..], data[..released.len()]);
        }
    }
}

#[test]
fn truncation_at_every_offset_is_rejected() {
    let key = SecretKey::generate(&mut rng(12));
    for len in [
        0usize,
        1,
        100,
        1000,
        CHUNK_LEN - 1,
        CHUNK_LEN,
        CHUNK_LEN + 100,
    ] {
        let data = plaintext(len, 3);
        let sealed = seal_stream(Suite::ChaCha20Poly1305, &key, b"c", &data, usize::MAX, 3);
        for cut in probe_offsets(sealed.len()) {
            let (released, result) = open_stream(&key, b"c", &sealed[..cut], 1 << 16);
            let err = result.expect_err("a truncated stream must not open");
            assert!(
                released.len() % CHUNK_LEN == 0 && released[..] == data[..released.len()],
                "cut {cut}"
            );
            // Only whole verified chunks come out; all of them only when just the empty
            // final chunk is missing, and the error still says the stream is cut short.
            assert!(released.len() <= len, "cut {cut}");
            if released.len() == len {
                assert_eq!(err, Error::Truncated, "cut {cut}");
            }
            if cut < STREAM_PREFIX_LEN {
                assert_eq!(err, Error::Truncated, "cut {cut}");
            }
            if cut >= STREAM_PREFIX_LEN && (cut - STREAM_PREFIX_LEN) % ENCRYPTED_CHUNK_LEN == 0 {
                assert_eq!(
                    err,
                    Error::Truncated,
                    "cut {cut}: a missing final chunk is truncation"
                );
            }
        }
    }
}

fn chunks(sealed: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>) {
    let (prefix, body) = sealed.split_at(STREAM_PREFIX_LEN);
    (
        prefix.to_vec(),
        body.chunks(ENCRYPTED_CHUNK_LEN)
            .map(|c| c.to_vec())
            .collect(),
    )
}

fn join(prefix: &[u8], parts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = prefix.to_vec();
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

#[test]
fn reorder_duplicate_splice_and_trailing_data_are_rejected() {
    let key = SecretKey::generate(&mut rng(13));
    let data = plaintext(3 * CHUNK_LEN + 10, 4);
    let a = seal_stream(Suite::Aes256Gcm, &key, b"r", &data, usize::MAX, 100);
    let b = seal_stream(Suite::Aes256Gcm, &key, b"r", &data, usize::MAX, 200);
    assert_ne!(a, b, "fresh salt per stream");
    let (pa, ca) = chunks(&a);
    let (pb, cb) = chunks(&b);
    assert_eq!(open_all(&key, b"r", &join(&pa, &ca)).unwrap(), data);

    let swapped = join(
        &pa,
        &[ca[1].clone(), ca[0].clone(), ca[2].clone(), ca[3].clone()],
    );
    assert_eq!(
        open_all(&key, b"r", &swapped),
        Err(Error::CorruptedChunk { index: 0 })
    );
    let duplicated = join(
        &pa,
        &[ca[0].clone(), ca[0].clone(), ca[2].clone(), ca[3].clone()],
    );
    assert_eq!(
        open_all(&key, b"r", &duplicated),
        Err(Error::CorruptedChunk { index: 1 })
    );
    let dropped = join(&pa, &[ca[0].clone(), ca[2].clone(), ca[3].clone()]);
    assert_eq!(
        open_all(&key, b"r", &dropped),
        Err(Error::CorruptedChunk { index: 1 })
    );
    // Same key, same context, same position: a chunk from another stream still fails.
    let spliced = join(
        &pa,
        &[ca[0].clone(), cb[1].clone(), ca[2].clone(), ca[3].clone()],
    );
    assert_eq!(
        open_all(&key, b"r", &spliced),
        Err(Error::CorruptedChunk { index: 1 })
    );
    // Another stream's prefix in front of this stream's chunks.
    let reprefixed = join(&pb, &ca);
    assert_eq!(
        open_all(&key, b"r", &reprefixed),
        Err(Error::CorruptedChunk { index: 0 })
    );
    // Trailing garbage, or a valid chunk after the final one.
    let mut garbage = a.clone();
    garbage.extend_from_slice(&[0u8; 20]);
    assert!(open_all(&key, b"r", &garbage).is_err());
    let extended = join(
        &pa,
        &[
            ca[0].clone(),
            ca[1].clone(),
            ca[2].clone(),
            ca[3].clone(),
            cb[3].clone(),
        ],
    );
    assert!(open_all(&key, b"r", &extended).is_err());
    // A final chunk grown to full size (the following chunk dropped) is truncation.
    let no_final = join(&pa, &ca[..3]);
    assert_eq!(open_all(&key, b"r", &no_final), Err(Error::Truncated));
}

#[test]
fn wrong_key_names_the_expected_key_and_wrong_context_fails_the_commitment() {
    let key = SecretKey::generate(&mut rng(14));
    let other = SecretKey::generate(&mut rng(15));
    let sealed = seal_stream(
        Suite::Aes256Gcm,
        &key,
        b"tenant-a/repo-1",
        b"secret data",
        4,
        1,
    );
    assert_eq!(
        open_all(&other, b"tenant-a/repo-1", &sealed),
        Err(Error::WrongKey { expected: key.id() })
    );
    assert_eq!(
        open_all(&key, b"tenant-b/repo-1", &sealed),
        Err(Error::CommitmentMismatch)
    );
    assert_eq!(
        open_all(&key, b"tenant-a/repo-1", &sealed).unwrap(),
        b"secret data"
    );
    let shown = Error::WrongKey { expected: key.id() }.to_string();
    assert!(shown.contains(&key.id().to_string()), "{shown}");
}

#[test]
fn a_foreign_file_is_not_coffer() {
    let key = SecretKey::generate(&mut rng(16));
    assert_eq!(
        open_all(&key, b"", b"PK\x03\x04 a zip file, not ours"),
        Err(Error::BadMagic)
    );
    assert_eq!(open_all(&key, b"", b""), Err(Error::Truncated));
    assert_eq!(open_all(&key, b"", b"COFF"), Err(Error::Truncated));
}
