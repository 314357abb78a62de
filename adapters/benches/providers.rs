//! The `ring` provider against the core's RustCrypto one, sealed streams against the raw
//! AEAD, in the same run: `cargo bench -p coffer-adapters --bench providers`.
//!
//! For each suite and each provider (`ring`, `RustCrypto`), 64 MiB are sealed and opened
//! four ways, as in coffer-core's `stream` benchmark:
//! - `stream/seal`: `chunked::Sealer::push` from the input slice (copies into the
//!   sealer's buffer, as reading a file into it would), ciphertext discarded;
//! - `stream/open`: `StreamOpener::next_chunk` over an in-memory reader (copies each
//!   chunk into the opener's buffer, as reading it from a file would);
//! - `raw/seal`, `raw/open`: the provider's AEAD in place over a ready buffer of the
//!   same 16 KiB chunks, with the same nonces and nothing else: the ceiling.
//!
//! Benchmark IDs are `<AEAD name>/<provider>/<way>`.
#![allow(missing_docs)]

use coffer_adapters::Ring;
use coffer_core::chunked::hazmat::ChunkKeys;
use coffer_core::chunked::{self, CHUNK_LEN, OPEN_BUFFER_LEN, SEAL_BUFFER_LEN};
use coffer_core::provider::{AeadKey, CryptoProvider, Tag};
use coffer_core::{RustCrypto, SecretKey, Suite};
use criterion::measurement::WallTime;
use criterion::{
    black_box, criterion_group, criterion_main, BatchSize, BenchmarkGroup, Criterion, Throughput,
};
use rand_core::SeedableRng;

const LEN: usize = 64 << 20;

/// Seals `data` as one message, passing each piece of ciphertext to `sink`.
fn seal<P: CryptoProvider>(
    provider: &P,
    suite: Suite,
    key: &SecretKey,
    data: &[u8],
    buf: &mut [u8],
    mut sink: impl FnMut(&[u8]),
) {
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let (mut sealer, preamble) =
        chunked::Sealer::new(provider, suite, key, &[], &mut rng, buf).unwrap();
    sink(&preamble);
    let mut rest = data;
    while !rest.is_empty() {
        let (n, ct) = sealer.push(rest).unwrap();
        sink(ct.unwrap_or_default());
        rest = &rest[n..];
    }
    sink(sealer.finish().unwrap().ciphertext());
}

/// Opens a message sealed by [`seal`] and returns the plaintext length.
fn open<P: CryptoProvider>(
    provider: &P,
    suite: Suite,
    key: &SecretKey,
    sealed: &[u8],
    buf: &mut [u8],
) -> usize {
    let mut opener = chunked::StreamOpener::new(provider, suite, key, &[], sealed, buf).unwrap();
    let mut total = 0;
    while let Some(chunk) = opener.next_chunk().unwrap() {
        total += chunk.len();
    }
    total
}

/// The four benchmarks of one provider and suite. `sealed` is `data` sealed under `key`.
fn bench_provider<P: CryptoProvider>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    provider: &P,
    suite: Suite,
    key: &SecretKey,
    data: &[u8],
    sealed: &[u8],
) {
    let mut seal_buf = vec![0u8; SEAL_BUFFER_LEN];
    group.bench_function(format!("{name}/stream/seal"), |b| {
        b.iter(|| {
            let mut emitted = 0;
            seal(provider, suite, key, data, &mut seal_buf, |ct| {
                emitted += ct.len();
            });
            emitted
        })
    });

    let mut open_buf = vec![0u8; OPEN_BUFFER_LEN];
    group.bench_function(format!("{name}/stream/open"), |b| {
        b.iter(|| assert_eq!(open(provider, suite, key, sealed, &mut open_buf), LEN))
    });

    let keys =
        ChunkKeys::from_raw(provider, suite, &AeadKey::from_bytes([7; 32]), [9; 12]).unwrap();
    group.bench_function(format!("{name}/raw/seal"), |b| {
        b.iter_batched_ref(
            || data.to_vec(),
            |plain| {
                for (i, chunk) in plain.chunks_mut(CHUNK_LEN).enumerate() {
                    black_box(keys.seal_chunk(i as u64, chunk).unwrap());
                }
            },
            BatchSize::LargeInput,
        )
    });

    // The same chunks sealed under the raw keys, opened in place.
    let mut raw_sealed = data.to_vec();
    let tags: Vec<Tag> = raw_sealed
        .chunks_mut(CHUNK_LEN)
        .enumerate()
        .map(|(i, c)| keys.seal_chunk(i as u64, c).unwrap())
        .collect();
    group.bench_function(format!("{name}/raw/open"), |b| {
        b.iter_batched_ref(
            || raw_sealed.clone(),
            |ct| {
                for (i, chunk) in ct.chunks_mut(CHUNK_LEN).enumerate() {
                    keys.open_chunk(i as u64, chunk, &tags[i]).unwrap();
                }
            },
            BatchSize::LargeInput,
        )
    });
}

fn bench(c: &mut Criterion) {
    let key = SecretKey::from_bytes([42; 32]);
    let data: Vec<u8> = (0..LEN).map(|i| (i * 31 % 251) as u8).collect();
    for suite in Suite::ALL {
        let mut group = c.benchmark_group(suite.aead_name());
        group.throughput(Throughput::Bytes(LEN as u64));
        group.sample_size(10);
        // Both providers seal identical bytes (tests/ring_provider.rs), so one sealed
        // message serves both openers.
        let mut sealed = Vec::with_capacity(LEN + LEN / 1000);
        seal(&Ring, suite, &key, &data, &mut [0; SEAL_BUFFER_LEN], |ct| {
            sealed.extend_from_slice(ct)
        });
        bench_provider(&mut group, "ring", &Ring, suite, &key, &data, &sealed);
        bench_provider(
            &mut group,
            "RustCrypto",
            &RustCrypto,
            suite,
            &key,
            &data,
            &sealed,
        );
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
