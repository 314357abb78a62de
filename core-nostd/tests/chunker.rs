//! The chunker against a plain transcription of FORMAT.md §12–§14
//! (`common/chunker_reference.rs`: every position tested from its window's definition,
//! no batching, no skipping): the same keys, table, decisions, cuts and chunk IDs, on
//! random data fed in random slicings, across small parameters and the v2 ones.

mod common;

use coffer_core::chunker::{
    chunk_id, ChunkIdHasher, ChunkIdKey, Chunker, ChunkerKeys, ChunkerParams, WriterSecret,
};
use coffer_core::SecretKey;
use common::chunker_reference as reference;
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

fn random_bytes(rng: &mut ChaCha20Rng, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    rng.fill_bytes(&mut out);
    out
}

fn below(rng: &mut ChaCha20Rng, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

/// Cuts through `ChunkStream` with the data split at random (empty slices included).
fn streamed(chunker: &Chunker, data: &[u8], rng: &mut ChaCha20Rng, max_piece: usize) -> Vec<usize> {
    let mut stream = chunker.stream();
    let mut ends = Vec::new();
    let mut offset = 0;
    let mut chunk_start = 0;
    while offset < data.len() {
        let len = below(rng, max_piece + 1).min(data.len() - offset);
        let mut piece = &data[offset..offset + len];
        let mut at = offset;
        while let Some(k) = stream.next_cut(piece) {
            assert!(k <= piece.len());
            at += k;
            assert!(at > chunk_start, "an empty chunk");
            ends.push(at);
            chunk_start = at;
            piece = &piece[k..];
        }
        assert_eq!(stream.chunk_len(), at + piece.len() - chunk_start);
        offset += len;
    }
    if let Some(last) = stream.finish() {
        assert_eq!(chunk_start + last, data.len());
        ends.push(data.len());
    }
    ends
}

struct Case {
    keys: reference::Keys,
    chunker: Chunker,
    params: (usize, u32, usize),
}

impl Case {
    fn new(writer: [u8; 32], min: u32, mask: u32, max: u32) -> Case {
        let params = ChunkerParams::new(min, mask, max).unwrap();
        Case {
            keys: reference::Keys::from_writer(&writer),
            chunker: Chunker::from_writer_secret(&WriterSecret::from_bytes(writer), params),
            params: (min as usize, mask, max as usize),
        }
    }

    fn reference_cuts(&self, data: &[u8]) -> Vec<usize> {
        reference::cuts(&self.keys.cipher, &self.keys.table, self.params, data)
    }

    /// The chunker's cuts, one-shot and in several slicings, all equal the reference's.
    fn check(&self, data: &[u8], rng: &mut ChaCha20Rng, slicings: usize) -> Vec<usize> {
        let expected = self.reference_cuts(data);
        let (min, _, max) = self.params;
        let mut start = 0;
        for (i, &end) in expected.iter().enumerate() {
            assert!(end - start <= max);
            assert!(end - start >= min || i + 1 == expected.len());
            start = end;
        }
        let one_shot: Vec<usize> = self.chunker.cuts(data).collect();
        assert_eq!(one_shot, expected, "one-shot, {} bytes", data.len());
        for round in 0..slicings {
            let max_piece = [1, 7, 64, 65, 300, 5000, 1 << 20][round % 7];
            let got = streamed(&self.chunker, data, rng, max_piece);
            assert_eq!(
                got,
                expected,
                "pieces up to {max_piece} bytes, {} bytes",
                data.len()
            );
        }
        expected
    }
}

#[test]
fn keys_table_and_decisions_match_the_reference() {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    for _ in 0..4 {
        let master: [u8; 32] = random_bytes(&mut rng, 32).try_into().unwrap();
        let want = reference::Keys::from_master(&master);
        let writer = WriterSecret::from_master(&SecretKey::from_bytes(master));
        assert_eq!(writer.expose_secret(), &want.writer);
        let keys = writer.chunker_keys();
        assert_eq!(keys.cipher_key(), &want.cipher);
        assert_eq!(keys.table_key(), &want.table);
        assert_eq!(writer.chunk_id_key().expose_secret(), &want.chunk_id);

        let table = reference::table(&want.table);
        let cipher = <aes::Aes128 as aes::cipher::KeyInit>::new((&want.cipher).into());
        for mask in [1, 2, 5] {
            let chunker = Chunker::new(&keys, ChunkerParams::new(64, mask, 65).unwrap());
            for b in 0..=255u8 {
                assert_eq!(chunker.expose_table_entry(b), table[b as usize]);
            }
            for _ in 0..64 {
                let window: [u8; 64] = random_bytes(&mut rng, 64).try_into().unwrap();
                assert_eq!(
                    chunker.is_cut_point(&window),
                    reference::decision(&cipher, &table, mask, &window)
                );
            }
        }
    }
}

#[test]
fn small_parameters_random_data_and_slicings() {
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    let mut chunks = 0;
    for round in 0..60 {
        let writer: [u8; 32] = random_bytes(&mut rng, 32).try_into().unwrap();
        let mask = 4 + (round % 5) as u32;
        let case = Case::new(writer, 256, mask, 2048);
        let len = below(&mut rng, 40_000);
        let data = random_bytes(&mut rng, len);
        chunks += case.check(&data, &mut rng, 7).len();
    }
    assert!(chunks > 1000, "{chunks} chunks");
}

#[test]
fn extreme_small_parameters() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    // min_size = 64 (the first window starts at the chunk's start), max_size = min + 1,
    // one mask bit (half the positions cut), a large mask (cuts are all at max_size).
    for (min, mask, max) in [
        (64, 1, 65),
        (64, 1, 200),
        (64, 3, 64 * 1024),
        (100, 2, 101),
        (65, 31, 129),
        (127, 1, 1000),
    ] {
        for _ in 0..8 {
            let writer: [u8; 32] = random_bytes(&mut rng, 32).try_into().unwrap();
            let case = Case::new(writer, min, mask, max);
            let len = below(&mut rng, 6000);
            let data = random_bytes(&mut rng, len);
            case.check(&data, &mut rng, 7);
        }
    }
}

#[test]
fn boundary_lengths() {
    let mut rng = ChaCha20Rng::seed_from_u64(4);
    let (min, max) = (256usize, 2048usize);
    for mask in [1, 4, 8] {
        let writer: [u8; 32] = random_bytes(&mut rng, 32).try_into().unwrap();
        let case = Case::new(writer, min as u32, mask, max as u32);
        for n in [
            0,
            1,
            63,
            64,
            min - 1,
            min,
            min + 1,
            min + 2,
            max - 1,
            max,
            max + 1,
            2 * max,
            2 * max + min,
        ] {
            let data = random_bytes(&mut rng, n);
            let cuts = case.check(&data, &mut rng, 7);
            match n {
                0 => assert!(cuts.is_empty()),
                n if n <= min => assert_eq!(cuts, [n]),
                _ => assert_eq!(cuts.last(), Some(&n)),
            }
        }
    }
}

#[test]
fn v2_parameters_on_a_few_mib() {
    let mut rng = ChaCha20Rng::seed_from_u64(5);
    let writer: [u8; 32] = random_bytes(&mut rng, 32).try_into().unwrap();
    let p = ChunkerParams::V2;
    let case = Case::new(writer, p.min_size(), p.mask_bits(), p.max_size());
    let data = random_bytes(&mut rng, 4 << 20);
    let cuts = case.check(&data, &mut rng, 4);
    assert!(cuts.len() >= 5, "{cuts:?}");
    // Constant data: every window is the same, and for this byte the reference decides
    // no cut, so the chunks are exactly max_size long (known without running the
    // reference over 7 million positions).
    let table = reference::table(&case.keys.table);
    let cipher = <aes::Aes128 as aes::cipher::KeyInit>::new((&case.keys.cipher).into());
    let byte = (0..=255u8)
        .find(|&b| !reference::decision(&cipher, &table, p.mask_bits(), &[b; 64]))
        .unwrap();
    let max = p.max_size() as usize;
    let data = vec![byte; 2 * max + 1000];
    let want = [max, 2 * max, 2 * max + 1000];
    assert_eq!(case.chunker.cuts(&data).collect::<Vec<_>>(), want);
    assert_eq!(streamed(&case.chunker, &data, &mut rng, 100_000), want);
}

#[test]
fn chunk_ids_match_the_reference_in_any_pieces() {
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    for len in [0, 1, 55, 56, 64, 65, 1000, 100_000] {
        let key_bytes: [u8; 32] = random_bytes(&mut rng, 32).try_into().unwrap();
        let key = ChunkIdKey::from_bytes(key_bytes);
        let data = random_bytes(&mut rng, len);
        let want = reference::chunk_id(&key_bytes, &data);
        assert_eq!(chunk_id(&key, &data), want);
        for _ in 0..4 {
            let mut hasher = ChunkIdHasher::new(&key);
            let mut rest = &data[..];
            while !rest.is_empty() {
                let n = below(&mut rng, rest.len() + 1);
                hasher.update(&rest[..n]);
                rest = &rest[n..];
            }
            assert_eq!(hasher.finalize(), want);
        }
    }
    // Through the writer secret, the ID key is §12's.
    let writer: [u8; 32] = random_bytes(&mut rng, 32).try_into().unwrap();
    let keys = reference::Keys::from_writer(&writer);
    let id_key = WriterSecret::from_bytes(writer).chunk_id_key();
    assert_eq!(
        chunk_id(&id_key, b"chunk"),
        reference::chunk_id(&keys.chunk_id, b"chunk")
    );
    let _ = ChunkerKeys::from_bytes(keys.cipher, keys.table);
}
