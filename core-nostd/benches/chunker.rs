//! Chunker throughput against its own primitives, in the same run:
//! `cargo bench -p coffer-core --bench chunker`.
//!
//! On 64 MiB of random data with the v2 parameters, every figure in bytes of that input:
//! - `chunker/cuts`: `Chunker::cuts`, the cut points alone (FORMAT.md §13);
//! - `aes-128/same-blocks`: raw AES-128 `encrypt_blocks` over as many blocks as the
//!   chunker tested positions, 16 blocks a call as the chunker calls it: the chunker's
//!   cost if its hash were free;
//! - `hmac-sha256/chunk-ids`: `chunk_id` over every chunk (§14), the MAC a writer runs
//!   over the same bytes.
#![allow(missing_docs)]

use aes::cipher::{BlockEncrypt, KeyInit};
use aes::{Aes128Enc, Block};
use coffer_core::chunker::{chunk_id, Chunker, ChunkerParams, WriterSecret};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use rand_core::{RngCore, SeedableRng};

const LEN: usize = 64 << 20;

/// Positions FORMAT.md §13.4 tests for these chunks: from `min_size` up to the cut
/// point, `max_size` or the end of the data.
fn tested_positions(ends: &[usize], params: ChunkerParams) -> usize {
    let (min, max) = (params.min_size() as usize, params.max_size() as usize);
    let mut start = 0;
    let mut tested = 0;
    for (i, &end) in ends.iter().enumerate() {
        let len = end - start;
        tested += if i + 1 == ends.len() {
            len.saturating_sub(min)
        } else if len == max {
            max - min
        } else {
            len - min + 1
        };
        start = end;
    }
    tested
}

fn bench(c: &mut Criterion) {
    let mut data = vec![0u8; LEN];
    rand_chacha::ChaCha20Rng::seed_from_u64(1).fill_bytes(&mut data);
    let writer = WriterSecret::from_bytes([42; 32]);
    let params = ChunkerParams::V2;
    let chunker = Chunker::from_writer_secret(&writer, params);
    let id_key = writer.chunk_id_key();

    let ends: Vec<usize> = chunker.cuts(&data).collect();
    let tested = tested_positions(&ends, params);
    println!(
        "{} chunks, mean {} bytes; {tested} positions tested ({:.1}% of the bytes)",
        ends.len(),
        LEN / ends.len(),
        100.0 * tested as f64 / LEN as f64
    );

    let mut group = c.benchmark_group("chunker-v2-64MiB");
    group.throughput(Throughput::Bytes(LEN as u64));
    group.sample_size(10);

    group.bench_function("chunker/cuts", |b| {
        b.iter(|| chunker.cuts(black_box(&data)).count())
    });

    let aes = Aes128Enc::new(&[9u8; 16].into());
    group.bench_function("aes-128/same-blocks", |b| {
        let mut blocks = [Block::default(); 16];
        b.iter(|| {
            let mut left = tested;
            while left > 0 {
                let n = left.min(16);
                aes.encrypt_blocks(&mut blocks[..n]);
                left -= n;
            }
            black_box(&blocks);
        })
    });

    group.bench_function("hmac-sha256/chunk-ids", |b| {
        b.iter(|| {
            let mut start = 0;
            for &end in &ends {
                black_box(chunk_id(&id_key, &data[start..end]));
                start = end;
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
