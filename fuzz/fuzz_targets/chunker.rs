//! `chunker`: the keyed chunker (FORMAT.md §13) with fuzzer-chosen small parameters,
//! key, input and slicing, and chunk IDs (§14) over the pieces.
//!
//! Input layout (little-endian; missing bytes read as 0):
//! ```text
//! 0   u16 min_size  = 64 + n % 1024
//! 2   u8  mask_bits = 1 + n % 31
//! 3   u16 max_size  = min_size + 1 + n % 4096
//! 5   u8  key byte (cipher key [k; 16], table key [k ^ 0x5A; 16])
//! 6   u8  slicing: the largest slice is 2^(n % 13) bytes
//! 7   u64 seed of the slice sizes (0 up to the largest, empty slices included)
//! 15  the input
//! ```
//! Checks: `ChunkStream::next_cut` over the input in those slices gives the same cuts
//! as `Chunker::cuts` over the whole, and as §13.4 run position by position on
//! `is_cut_point` (each window's hash from its definition: no rolling, no batching, no
//! skipping); every `Some(k)` lies within its slice; no chunk is empty or longer than
//! `max_size`, and none but the last is shorter than `min_size`; the chunks add up to
//! the input; `ChunkIdHasher` fed the chunk's pieces gives `chunk_id` of the chunk.
#![no_main]

use coffer_core::chunker::{
    chunk_id, ChunkIdHasher, ChunkIdKey, Chunker, ChunkerKeys, ChunkerParams, WINDOW_LEN,
};
use coffer_fuzz::{Input, Sizes};
use libfuzzer_sys::fuzz_target;

/// FORMAT.md §13.4 as written, one position at a time.
fn spec_cuts(chunker: &Chunker, data: &[u8]) -> Vec<usize> {
    let p = chunker.params();
    let (min, max) = (p.min_size() as usize, p.max_size() as usize);
    let n = data.len();
    let mut ends = Vec::new();
    let mut s = 0;
    while s < n {
        if n - s <= min {
            ends.push(n);
            break;
        }
        let mut end = (s + max).min(n);
        for p in s + min..n.min(s + max) {
            let window: &[u8; WINDOW_LEN] = data[p - WINDOW_LEN..p].try_into().unwrap();
            if chunker.is_cut_point(window) {
                end = p;
                break;
            }
        }
        ends.push(end);
        s = end;
    }
    ends
}

fuzz_target!(|bytes: &[u8]| {
    let mut input = Input::new(bytes);
    let min_size = 64 + u32::from(input.u16()) % 1024;
    let mask_bits = 1 + u32::from(input.u8()) % 31;
    let max_size = min_size + 1 + u32::from(input.u16()) % 4096;
    let key = input.u8();
    let largest = 1u64 << (input.u8() % 13);
    let mut sizes = Sizes::new(input.u64());
    let data = input.rest();

    let params = ChunkerParams::new(min_size, mask_bits, max_size).expect("mapped into bounds");
    let chunker = Chunker::new(
        &ChunkerKeys::from_bytes([key; 16], [key ^ 0x5A; 16]),
        params,
    );
    let id_key = ChunkIdKey::from_bytes([key; 32]);

    let whole: Vec<usize> = chunker.cuts(data).collect();
    assert_eq!(whole, spec_cuts(&chunker, data), "one-shot against §13.4");

    // The same data in slices; each chunk's ID from its pieces.
    let mut stream = chunker.stream();
    let mut streamed = Vec::new();
    let mut hasher = ChunkIdHasher::new(&id_key);
    let (mut offset, mut start) = (0usize, 0usize);
    while offset < data.len() {
        let len = (sizes.below(largest + 1) as usize).min(data.len() - offset);
        let mut piece = &data[offset..offset + len];
        let mut at = offset;
        while let Some(k) = stream.next_cut(piece) {
            assert!(
                k <= piece.len(),
                "cut {k} past a {}-byte slice",
                piece.len()
            );
            hasher.update(&piece[..k]);
            at += k;
            assert_eq!(
                std::mem::replace(&mut hasher, ChunkIdHasher::new(&id_key)).finalize(),
                chunk_id(&id_key, &data[start..at]),
                "incremental chunk ID"
            );
            streamed.push(at);
            start = at;
            piece = &piece[k..];
        }
        hasher.update(piece);
        assert_eq!(stream.chunk_len(), at + piece.len() - start);
        offset += len;
    }
    if let Some(last) = stream.finish() {
        assert_eq!(start + last, data.len());
        assert_eq!(hasher.finalize(), chunk_id(&id_key, &data[start..]));
        streamed.push(data.len());
    }
    assert_eq!(
        streamed, whole,
        "slices up to {largest} bytes against one-shot"
    );

    let mut start = 0;
    for (i, &end) in whole.iter().enumerate() {
        let len = end - start;
        assert!(
            len > 0 && len <= max_size as usize,
            "chunk {i}: {len} bytes"
        );
        assert!(
            len >= min_size as usize || i + 1 == whole.len(),
            "chunk {i}: {len} bytes"
        );
        start = end;
    }
    assert_eq!(start, data.len());
});
