//! The batch rules one by one, and the batch API against the streaming sealer and
//! opener: the same bytes for every length, batch size and share split.

use std::vec;
use std::vec::Vec;

use rand_core::SeedableRng;

use super::*;
use crate::chunked::{Sealer, StreamOpener, SEAL_BUFFER_LEN};
use crate::provider::RustCrypto;
use crate::stream;

const CTX: &[u8] = b"batch tests";

fn key() -> SecretKey {
    SecretKey::from_bytes([0x42; 32])
}

fn rng(seed: u64) -> rand_chacha::ChaCha20Rng {
    rand_chacha::ChaCha20Rng::seed_from_u64(seed)
}

fn plaintext(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i >> 14) as u8)
        .collect()
}

fn sealer(
    seed: u64,
) -> (
    BatchSealer<crate::provider::RustCryptoCipher>,
    SealCursor,
    [u8; 56],
) {
    BatchSealer::new(
        &RustCrypto,
        Suite::Aes256Gcm,
        &key(),
        &[CTX],
        &mut rng(seed),
    )
    .unwrap()
}

/// The message as the streaming sealer writes it, salt drawn from `seed`.
fn streaming_seal(suite: Suite, data: &[u8], seed: u64) -> Vec<u8> {
    let mut buf = [0u8; SEAL_BUFFER_LEN];
    let (mut sealer, preamble) = Sealer::new(
        &RustCrypto,
        suite,
        &key(),
        &[CTX],
        &mut rng(seed),
        &mut buf[..],
    )
    .unwrap();
    let mut out = preamble.to_vec();
    let mut rest = data;
    while !rest.is_empty() {
        let (taken, chunk) = sealer.push(rest).unwrap();
        out.extend_from_slice(chunk.unwrap_or_default());
        rest = &rest[taken..];
    }
    out.extend_from_slice(sealer.finish().unwrap().ciphertext());
    out
}

/// The plaintext the streaming opener releases, and how it ends.
fn streaming_open(suite: Suite, sealed: &[u8]) -> (Vec<u8>, Result<(), Error>) {
    let mut buf = vec![0u8; ENCRYPTED_CHUNK_LEN];
    let mut out = Vec::new();
    let mut opener =
        match StreamOpener::new(&RustCrypto, suite, &key(), &[CTX], sealed, &mut buf[..]) {
            Ok(o) => o,
            Err(e) => return (out, Err(e)),
        };
    loop {
        match opener.next_chunk() {
            Ok(Some(chunk)) => out.extend_from_slice(chunk),
            Ok(None) => return (out, Ok(())),
            Err(e) => return (out, Err(e)),
        }
    }
}

/// Seals `data` with the batch API: batches of `slots` chunk places (plus `slack`
/// unused bytes), each split into `parts` shares. The input's end is found as a reader
/// finds it (a short read) or, with `knows_end`, as soon as the last byte was taken.
fn batch_seal(
    suite: Suite,
    data: &[u8],
    seed: u64,
    slots: usize,
    parts: usize,
    knows_end: bool,
) -> Vec<u8> {
    let (sealer, mut cursor, preamble) =
        BatchSealer::new(&RustCrypto, suite, &key(), &[CTX], &mut rng(seed)).unwrap();
    let mut out = preamble.to_vec();
    let mut buf = vec![0xa5u8; batch_len(slots) + 100];
    let mut rest = data;
    loop {
        let mut filled = 0;
        for body in SealCursor::bodies(&mut buf) {
            let n = body.len().min(rest.len());
            body[..n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            filled += n;
            if n < body.len() {
                break;
            }
        }
        let ended = if knows_end {
            rest.is_empty()
        } else {
            filled < slots * CHUNK_LEN
        };
        let batch = cursor.next_batch(&buf, filled, ended).unwrap();
        let layout = batch.layout();
        assert_eq!(layout.plaintext_len(), filled);
        for share in batch.shares(&mut buf, parts).unwrap() {
            sealer.seal_share(share).unwrap();
        }
        out.extend_from_slice(&buf[..layout.len()]);
        if layout.is_final() {
            assert!(cursor.is_finished());
            assert_eq!(cursor.plaintext_len(), data.len() as u64);
            return out;
        }
    }
}

/// Opens `sealed` with the batch API, reading `slots` chunks at a time and opening each
/// batch in `parts` shares; releases a batch only when all its shares opened.
fn batch_open(
    suite: Suite,
    sealed: &[u8],
    slots: usize,
    parts: usize,
) -> (Vec<u8>, Result<(), Error>) {
    let mut out = Vec::new();
    let Some(preamble) = sealed.get(..PREAMBLE_LEN) else {
        return (out, Err(Error::Truncated));
    };
    let preamble: [u8; PREAMBLE_LEN] = preamble.try_into().unwrap();
    let (opener, mut cursor) = match BatchOpener::new(&RustCrypto, suite, &key(), &[CTX], &preamble)
    {
        Ok(o) => o,
        Err(e) => return (out, Err(e)),
    };
    let mut rest = &sealed[PREAMBLE_LEN..];
    let mut buf = vec![0u8; batch_len(slots)];
    loop {
        let n = buf.len().min(rest.len());
        buf[..n].copy_from_slice(&rest[..n]);
        rest = &rest[n..];
        let batch = match cursor.next_batch(n, n < buf.len()) {
            Ok(b) => b,
            Err(e) => return (out, Err(e)),
        };
        let layout = batch.layout();
        let mut opened = Ok(());
        for share in batch.shares(&mut buf, parts).unwrap() {
            let result = opener.open_share(share);
            opened = opened.and(result);
        }
        if let Err(e) = opened {
            return (out, Err(e));
        }
        for body in layout.bodies(&buf) {
            out.extend_from_slice(body);
        }
        if layout.is_final() {
            assert!(cursor.is_finished());
            return (out, Ok(()));
        }
    }
}

const LENGTHS: [usize; 12] = [
    0,
    1,
    100,
    CHUNK_LEN - 1,
    CHUNK_LEN,
    CHUNK_LEN + 1,
    2 * CHUNK_LEN,
    3 * CHUNK_LEN,
    3 * CHUNK_LEN + 5,
    4 * CHUNK_LEN,
    6 * CHUNK_LEN + 7,
    7 * CHUNK_LEN,
];

#[test]
fn batches_seal_the_same_bytes_as_the_streaming_sealer() {
    for suite in Suite::ALL {
        for (seed, &len) in LENGTHS.iter().enumerate() {
            let data = plaintext(len);
            let want = streaming_seal(suite, &data, seed as u64);
            assert_eq!(
                want.len(),
                PREAMBLE_LEN + len + TAG_LEN * (len / CHUNK_LEN + 1)
            );
            for slots in [1, 2, 3, 4] {
                for parts in [1, 2, 3, 5] {
                    for knows_end in [false, true] {
                        let got = batch_seal(suite, &data, seed as u64, slots, parts, knows_end);
                        assert!(
                            got == want,
                            "{suite:?} len {len} slots {slots} parts {parts} knows_end {knows_end}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn batches_open_what_the_streaming_sealer_wrote() {
    for suite in Suite::ALL {
        for (seed, &len) in LENGTHS.iter().enumerate() {
            let data = plaintext(len);
            let sealed = streaming_seal(suite, &data, seed as u64);
            for slots in [1, 2, 3, 7] {
                for parts in [1, 2, 3] {
                    let (out, end) = batch_open(suite, &sealed, slots, parts);
                    assert_eq!(
                        end,
                        Ok(()),
                        "{suite:?} len {len} slots {slots} parts {parts}"
                    );
                    assert!(
                        out == data,
                        "{suite:?} len {len} slots {slots} parts {parts}"
                    );
                }
            }
        }
    }
}

#[test]
fn batches_refuse_flipped_bits_and_cuts_as_the_streaming_opener_does() {
    let suite = Suite::ChaCha20Poly1305;
    let data = plaintext(5 * CHUNK_LEN + 300);
    let sealed = streaming_seal(suite, &data, 9);
    let chunk_at = |i: usize| PREAMBLE_LEN + i * ENCRYPTED_CHUNK_LEN;
    let mut damaged: Vec<(&str, Vec<u8>, Error)> = Vec::new();
    for (what, at, index) in [
        ("chunk 0's body", chunk_at(0) + 7, 0),
        ("chunk 1's tag", chunk_at(1) + CHUNK_LEN + 15, 1),
        ("chunk 4's body", chunk_at(4), 4),
        ("the final chunk's body", chunk_at(5) + 299, 5),
        ("the final chunk's tag", sealed.len() - 1, 5),
    ] {
        let mut bytes = sealed.clone();
        bytes[at] ^= 0x10;
        damaged.push((what, bytes, Error::CorruptedChunk { index }));
    }
    let mut preamble = sealed.clone();
    preamble[30] ^= 1;
    damaged.push(("the commitment", preamble, Error::CommitmentMismatch));
    for k in 0..=5 {
        damaged.push((
            "cut after full chunks",
            sealed[..chunk_at(k)].to_vec(),
            Error::Truncated,
        ));
    }
    damaged.push((
        "a piece of the final tag",
        sealed[..chunk_at(5) + 15].to_vec(),
        Error::Truncated,
    ));
    damaged.push((
        "cut inside the final chunk",
        sealed[..chunk_at(5) + 16].to_vec(),
        Error::CorruptedChunk { index: 5 },
    ));
    damaged.push((
        "cut inside chunk 2",
        sealed[..chunk_at(2) + 5000].to_vec(),
        Error::CorruptedChunk { index: 2 },
    ));
    let mut trailing = sealed.clone();
    trailing.extend_from_slice(b"xyz");
    damaged.push((
        "trailing bytes",
        trailing,
        Error::CorruptedChunk { index: 5 },
    ));
    let mut swapped = sealed.clone();
    swapped.copy_within(chunk_at(1)..chunk_at(2), chunk_at(0));
    damaged.push((
        "chunk 1 in chunk 0's place",
        swapped,
        Error::CorruptedChunk { index: 0 },
    ));

    for (what, bytes, want) in &damaged {
        let (streamed, end) = streaming_open(suite, bytes);
        assert_eq!(end, Err(*want), "streaming opener: {what}");
        for slots in [1, 2, 4, 6] {
            for parts in [1, 3] {
                let (out, end) = batch_open(suite, bytes, slots, parts);
                assert_eq!(end, Err(*want), "{what}, slots {slots} parts {parts}");
                // Only whole batches before the failing one came out, all authentic.
                assert_eq!(out.len() % (slots * CHUNK_LEN), 0, "{what}, slots {slots}");
                assert!(out.len() <= streamed.len(), "{what}, slots {slots}");
                assert!(out == data[..out.len()], "{what}, slots {slots}");
            }
        }
    }
}

#[test]
fn a_failed_share_is_zeroed_whole() {
    let data = plaintext(3 * CHUNK_LEN + 10);
    let mut sealed = streaming_seal(Suite::Aes256Gcm, &data, 3);
    sealed[PREAMBLE_LEN + 2 * ENCRYPTED_CHUNK_LEN + 1] ^= 1;
    let preamble: [u8; PREAMBLE_LEN] = sealed[..PREAMBLE_LEN].try_into().unwrap();
    let (opener, mut cursor) =
        BatchOpener::new(&RustCrypto, Suite::Aes256Gcm, &key(), &[CTX], &preamble).unwrap();
    let body = &sealed[PREAMBLE_LEN..];
    let mut buf = vec![0u8; batch_len(8)];
    buf[..body.len()].copy_from_slice(body);
    let batch = cursor.next_batch(body.len(), true).unwrap();
    let layout = batch.layout();
    assert_eq!(layout.len(), body.len());
    let mut shares = batch.shares(&mut buf, 2).unwrap();
    // Chunks 0 and 1 open; chunks 2 and 3 fail at 2.
    opener.open_share(shares.next().unwrap()).unwrap();
    assert_eq!(
        opener.open_share(shares.next().unwrap()),
        Err(Error::CorruptedChunk { index: 2 })
    );
    assert!(shares.next().is_none());
    assert!(buf[..2 * ENCRYPTED_CHUNK_LEN]
        .chunks(ENCRYPTED_CHUNK_LEN)
        .zip(data.chunks(CHUNK_LEN))
        .all(|(chunk, plain)| &chunk[..CHUNK_LEN] == plain));
    assert!(buf[2 * ENCRYPTED_CHUNK_LEN..body.len()]
        .iter()
        .all(|&b| b == 0));
}

#[test]
fn a_plaintext_that_fills_the_batch_ends_with_an_empty_final_chunk_in_the_next_batch() {
    let (_, mut cursor, _) = sealer(1);
    let buf = vec![0u8; batch_len(2)];
    // The input ended exactly at the end of a full batch: no place for the final chunk.
    let batch = cursor.next_batch(&buf, 2 * CHUNK_LEN, true).unwrap();
    let layout = batch.layout();
    assert_eq!(layout.first_index(), 0);
    assert_eq!(layout.chunks(), 2);
    assert_eq!(layout.len(), 2 * ENCRYPTED_CHUNK_LEN);
    assert!(!layout.is_final());
    assert!(!cursor.is_finished());
    let last = cursor.next_batch(&buf, 0, true).unwrap().layout();
    assert_eq!(last.first_index(), 2);
    assert_eq!(last.chunks(), 1);
    assert_eq!(last.len(), TAG_LEN);
    assert_eq!(last.plaintext_len(), 0);
    assert_eq!(last.body(0), Some(0..0));
    assert!(last.is_final());
    assert!(cursor.is_finished());
    assert_eq!(cursor.plaintext_len(), 2 * CHUNK_LEN as u64);

    // With room left, the empty final chunk follows in the same batch.
    let (_, mut cursor, _) = sealer(1);
    let buf = vec![0u8; batch_len(3)];
    let layout = cursor
        .next_batch(&buf, 2 * CHUNK_LEN, true)
        .unwrap()
        .layout();
    assert_eq!(layout.chunks(), 3);
    assert_eq!(layout.len(), 2 * ENCRYPTED_CHUNK_LEN + TAG_LEN);
    assert_eq!(
        layout.body(2),
        Some(2 * ENCRYPTED_CHUNK_LEN..2 * ENCRYPTED_CHUNK_LEN)
    );
    assert!(layout.is_final());
}

#[test]
fn a_short_final_chunk_ends_its_batch() {
    let (_, mut cursor, _) = sealer(2);
    let buf = vec![0u8; batch_len(4)];
    let layout = cursor
        .next_batch(&buf, CHUNK_LEN + 100, true)
        .unwrap()
        .layout();
    assert_eq!(layout.chunks(), 2);
    assert_eq!(layout.len(), ENCRYPTED_CHUNK_LEN + 100 + TAG_LEN);
    assert_eq!(layout.plaintext_len(), CHUNK_LEN + 100);
    assert_eq!(layout.body(0), Some(0..CHUNK_LEN));
    assert_eq!(
        layout.body(1),
        Some(ENCRYPTED_CHUNK_LEN..ENCRYPTED_CHUNK_LEN + 100)
    );
    assert_eq!(layout.body(2), None);
    assert!(layout.is_final());

    // The opener reads the same layout back from the bytes.
    let (_, mut cursor) = open_cursor();
    assert_eq!(
        cursor
            .next_batch(ENCRYPTED_CHUNK_LEN + 100 + TAG_LEN, true)
            .unwrap()
            .layout(),
        layout
    );
}

#[test]
fn empty_input_is_one_empty_final_chunk() {
    let (sealer, mut cursor, preamble) = sealer(3);
    let mut buf = vec![0u8; batch_len(1)];
    let batch = cursor.next_batch(&buf, 0, true).unwrap();
    let layout = batch.layout();
    assert_eq!((layout.first_index(), layout.chunks()), (0, 1));
    assert_eq!(layout.len(), TAG_LEN);
    assert!(layout.is_final());
    sealer.seal_share(batch.share(&mut buf).unwrap()).unwrap();
    let mut sealed = preamble.to_vec();
    sealed.extend_from_slice(&buf[..TAG_LEN]);
    assert_eq!(sealed, streaming_seal(Suite::Aes256Gcm, &[], 3));
    assert_eq!(
        streaming_open(Suite::Aes256Gcm, &sealed),
        (Vec::new(), Ok(()))
    );
}

fn open_cursor() -> (BatchOpener<crate::provider::RustCryptoCipher>, OpenCursor) {
    let (_, _, preamble) = sealer(4);
    BatchOpener::new(&RustCrypto, Suite::Aes256Gcm, &key(), &[CTX], &preamble).unwrap()
}

#[test]
fn the_opener_refuses_truncated_input() {
    // Nothing at all after the preamble: no final chunk. The error repeats.
    let (_, mut cursor) = open_cursor();
    assert_eq!(cursor.next_batch(0, true).unwrap_err(), Error::Truncated);
    assert_eq!(cursor.next_batch(0, true).unwrap_err(), Error::Truncated);
    assert_eq!(
        cursor.next_batch(ENCRYPTED_CHUNK_LEN, false).unwrap_err(),
        Error::Truncated
    );

    // Full chunks, then less than a tag.
    for tail in [0, 1, TAG_LEN - 1] {
        let (_, mut cursor) = open_cursor();
        assert_eq!(
            cursor
                .next_batch(2 * ENCRYPTED_CHUNK_LEN + tail, true)
                .unwrap_err(),
            Error::Truncated,
            "tail {tail}"
        );
    }

    // A full batch, then the input ended: the final chunk is missing.
    let (_, mut cursor) = open_cursor();
    let full = cursor.next_batch(3 * ENCRYPTED_CHUNK_LEN, false).unwrap();
    assert_eq!(full.layout().chunks(), 3);
    assert!(!full.layout().is_final());
    assert_eq!(cursor.next_batch(0, true).unwrap_err(), Error::Truncated);

    // Exactly a tag: an empty final chunk.
    let (_, mut cursor) = open_cursor();
    let layout = cursor.next_batch(TAG_LEN, true).unwrap().layout();
    assert_eq!((layout.chunks(), layout.plaintext_len()), (1, 0));
    assert!(layout.is_final());
}

#[test]
fn the_index_stops_at_max_chunks() {
    let buf = vec![0u8; batch_len(2)];
    let (near_end, mut cursor, _) = sealer(5);
    cursor.next_index = MAX_CHUNKS - 2;
    let mut work = vec![7u8; batch_len(2)];
    let batch = cursor.next_batch(&buf, 2 * CHUNK_LEN, false).unwrap();
    assert_eq!(batch.layout().first_index(), MAX_CHUNKS - 2);
    // Chunks 2^38 - 2 and 2^38 - 1 are sealed: the last index the scheme allows.
    near_end
        .seal_share(batch.share(&mut work).unwrap())
        .unwrap();
    // The final chunk would be chunk 2^38.
    assert_eq!(
        cursor.next_batch(&buf, 0, true).unwrap_err(),
        Error::StreamTooLong
    );
    assert_eq!(
        cursor.next_batch(&buf, 0, true).unwrap_err(),
        Error::StreamTooLong
    );

    // A batch that would cross the limit is refused whole.
    let (_, mut cursor, _) = sealer(5);
    cursor.next_index = MAX_CHUNKS - 1;
    assert_eq!(
        cursor.next_batch(&buf, 2 * CHUNK_LEN, false).unwrap_err(),
        Error::StreamTooLong
    );
    let (_, mut cursor, _) = sealer(5);
    cursor.next_index = MAX_CHUNKS - 1;
    let last = cursor.next_batch(&buf, 5, true).unwrap().layout();
    assert_eq!((last.first_index(), last.chunks()), (MAX_CHUNKS - 1, 1));
    // Far past it, without overflowing.
    let (_, mut cursor, _) = sealer(5);
    cursor.next_index = u64::MAX;
    assert_eq!(
        cursor.next_batch(&buf, 5, true).unwrap_err(),
        Error::StreamTooLong
    );

    let (_, mut cursor) = open_cursor();
    cursor.next_index = MAX_CHUNKS - 1;
    assert_eq!(
        cursor
            .next_batch(ENCRYPTED_CHUNK_LEN + 20, true)
            .unwrap_err(),
        Error::StreamTooLong
    );
    assert_eq!(
        cursor.next_batch(20, true).unwrap_err(),
        Error::StreamTooLong
    );
    let (_, mut cursor) = open_cursor();
    cursor.next_index = MAX_CHUNKS - 1;
    let last = cursor.next_batch(20, true).unwrap().layout();
    assert_eq!(last.first_index(), MAX_CHUNKS - 1);
}

#[test]
fn no_batch_after_the_final_one() {
    let buf = vec![0u8; batch_len(2)];
    let (_, mut cursor, _) = sealer(6);
    assert!(cursor
        .next_batch(&buf, 10, true)
        .unwrap()
        .layout()
        .is_final());
    for ended in [false, true] {
        assert!(matches!(
            cursor.next_batch(&buf, 0, ended),
            Err(Error::BatchMisuse { .. })
        ));
    }
    let (_, mut cursor) = open_cursor();
    assert!(cursor.next_batch(30, true).unwrap().layout().is_final());
    assert!(cursor.is_finished());
    for ended in [false, true] {
        assert!(matches!(
            cursor.next_batch(0, ended),
            Err(Error::BatchMisuse { .. })
        ));
    }
}

#[test]
fn shares_are_whole_chunks_in_stream_order() {
    let (_, mut cursor, _) = sealer(7);
    let mut buf = vec![0u8; batch_len(7)];
    let first = cursor.next_batch(&buf, 7 * CHUNK_LEN, false).unwrap();
    let shares: Vec<(u64, usize, usize)> = first
        .shares(&mut buf, 3)
        .unwrap()
        .map(|s| (s.first_index(), s.chunks(), s.len()))
        .collect();
    let e = ENCRYPTED_CHUNK_LEN;
    assert_eq!(shares, [(0, 3, 3 * e), (3, 3, 3 * e), (6, 1, e)]);

    let last = cursor.next_batch(&buf, 6 * CHUNK_LEN + 10, true).unwrap();
    let layout = last.layout();
    assert_eq!(layout.chunks(), 7);
    let shares: Vec<(u64, usize, usize)> = last
        .shares(&mut buf, 10)
        .unwrap()
        .map(|s| (s.first_index(), s.chunks(), s.len()))
        .collect();
    assert_eq!(shares.len(), 7);
    assert_eq!(shares[0], (7, 1, e));
    assert_eq!(shares[6], (13, 1, 10 + TAG_LEN));

    // No more shares than asked, at least one.
    let (_, mut cursor, _) = sealer(7);
    for (parts, counts) in [
        (0, vec![5]),
        (1, vec![5]),
        (2, vec![3, 2]),
        (4, vec![2, 2, 1]),
    ] {
        let (_, mut c, _) = sealer(7);
        let batch = c.next_batch(&buf, 4 * CHUNK_LEN + 1, true).unwrap();
        let got: Vec<usize> = batch
            .shares(&mut buf, parts)
            .unwrap()
            .map(|s| s.chunks())
            .collect();
        assert_eq!(got, counts, "{parts} parts");
    }
    // A batch of no chunks has no shares.
    let none = cursor.next_batch(&buf, 0, false).unwrap();
    assert!(none.layout().is_empty());
    assert_eq!(none.shares(&mut buf, 3).unwrap().count(), 0);
}

#[test]
fn misuse_is_refused_and_changes_nothing() {
    let (sealer_a, mut cursor_a, _) = sealer(8);
    let (sealer_b, mut cursor_b, _) = sealer(9);
    let mut buf = vec![0u8; batch_len(2)];

    let short = vec![0u8; ENCRYPTED_CHUNK_LEN - 1];
    assert!(matches!(
        cursor_a.next_batch(&short, 0, true),
        Err(Error::BufferTooSmall { .. })
    ));
    assert!(matches!(
        cursor_a.next_batch(&buf, 2 * CHUNK_LEN + 1, true),
        Err(Error::ParameterOutOfBounds { value, max, .. })
            if value == 2 * CHUNK_LEN as u64 + 1 && max == 2 * CHUNK_LEN as u64
    ));
    assert!(matches!(
        cursor_a.next_batch(&buf, CHUNK_LEN + 1, false),
        Err(Error::ParameterOutOfBounds { value: 1, .. })
    ));
    // None of that moved the cursor.
    let batch = cursor_a.next_batch(&buf, CHUNK_LEN, false).unwrap();
    assert_eq!(batch.layout().first_index(), 0);
    assert_eq!(cursor_a.plaintext_len(), CHUNK_LEN as u64);

    // A share goes to the sealer of its own stream only.
    let share = batch.share(&mut buf).unwrap();
    assert!(matches!(
        sealer_b.seal_share(share),
        Err(Error::BatchMisuse { .. })
    ));
    let batch = cursor_b.next_batch(&buf, CHUNK_LEN, false).unwrap();
    sealer_b.seal_share(batch.share(&mut buf).unwrap()).unwrap();
    let batch = cursor_a.next_batch(&buf, 0, true).unwrap();
    assert!(matches!(
        batch.share(&mut buf[..TAG_LEN - 1]),
        Err(Error::BufferTooSmall {
            needed: TAG_LEN,
            ..
        })
    ));
    let batch = cursor_b.next_batch(&buf, 0, true).unwrap();
    assert!(matches!(
        sealer_a.seal_share(batch.share(&mut buf).unwrap()),
        Err(Error::BatchMisuse { .. })
    ));

    // And to its own direction only: an opener's share is not sealed, nor a sealer's opened.
    let (_, mut cursor, preamble) = sealer(10);
    let (opener, mut open) =
        BatchOpener::new(&RustCrypto, Suite::Aes256Gcm, &key(), &[CTX], &preamble).unwrap();
    let (sealer_c, _) = BatchSealer::from_keys(
        hazmat::accept(&RustCrypto, Suite::Aes256Gcm, &key(), &[CTX], &preamble).unwrap(),
        &preamble,
    );
    let batch = open.next_batch(ENCRYPTED_CHUNK_LEN, false).unwrap();
    assert!(matches!(
        sealer_c.seal_share(batch.share(&mut buf).unwrap()),
        Err(Error::BatchMisuse { .. })
    ));
    let batch = cursor.next_batch(&buf, CHUNK_LEN, false).unwrap();
    assert!(matches!(
        opener.open_share(batch.share(&mut buf).unwrap()),
        Err(Error::BatchMisuse { .. })
    ));
    assert!(matches!(
        open.next_batch(ENCRYPTED_CHUNK_LEN + 1, false),
        Err(Error::ParameterOutOfBounds { value: 1, .. })
    ));
    assert_eq!(
        open.next_batch(ENCRYPTED_CHUNK_LEN, false)
            .unwrap()
            .layout()
            .first_index(),
        1
    );
}

#[test]
fn stream_batches_are_the_streams_of_stream_seal() {
    let key = key();
    for suite in Suite::ALL {
        for len in [0, 5, CHUNK_LEN, 3 * CHUNK_LEN + 1] {
            let data = plaintext(len);
            // stream::seal, pushed.
            let mut seal_buf = [0u8; SEAL_BUFFER_LEN];
            let (mut sealer, prefix) = stream::seal(
                &RustCrypto,
                suite,
                &key,
                CTX,
                &mut rng(11),
                &mut seal_buf[..],
            )
            .unwrap();
            let mut want = prefix.to_vec();
            let mut rest = &data[..];
            while !rest.is_empty() {
                let (n, chunk) = sealer.push(rest).unwrap();
                want.extend_from_slice(chunk.unwrap_or_default());
                rest = &rest[n..];
            }
            want.extend_from_slice(sealer.finish().unwrap().ciphertext());

            // stream::seal_batches, two chunks a batch.
            let (sealer, mut cursor, prefix) =
                stream::seal_batches(&RustCrypto, suite, &key, CTX, &mut rng(11)).unwrap();
            let mut got = prefix.to_vec();
            let mut buf = vec![0u8; batch_len(2)];
            let mut rest = &data[..];
            loop {
                let mut filled = 0;
                for body in SealCursor::bodies(&mut buf) {
                    let n = body.len().min(rest.len());
                    body[..n].copy_from_slice(&rest[..n]);
                    rest = &rest[n..];
                    filled += n;
                }
                let batch = cursor
                    .next_batch(&buf, filled, filled < 2 * CHUNK_LEN)
                    .unwrap();
                let layout = batch.layout();
                sealer.seal_share(batch.share(&mut buf).unwrap()).unwrap();
                got.extend_from_slice(&buf[..layout.len()]);
                if layout.is_final() {
                    break;
                }
            }
            assert!(got == want, "{suite:?} {len}");

            // stream::accept_prefix opens it; another key is told which key it wants.
            let (split, chunks) = got.split_at(stream::STREAM_PREFIX_LEN);
            let (header, opener, mut cursor) =
                stream::accept_prefix(&RustCrypto, &key, CTX, split).unwrap();
            assert_eq!((header.suite, header.key_id), (suite, key.id()));
            let mut buf = chunks.to_vec();
            let batch = cursor.next_batch(buf.len(), true).unwrap();
            let layout = batch.layout();
            opener.open_share(batch.share(&mut buf).unwrap()).unwrap();
            assert!(layout
                .bodies(&buf)
                .flatten()
                .copied()
                .eq(data.iter().copied()));
            let other = SecretKey::from_bytes([1; 32]);
            assert_eq!(
                stream::accept_prefix(&RustCrypto, &other, CTX, split).err(),
                Some(Error::WrongKey { expected: key.id() })
            );
            assert_eq!(
                stream::accept_prefix(&RustCrypto, &key, CTX, &split[..87]).err(),
                Some(Error::Truncated)
            );
        }
    }
}
